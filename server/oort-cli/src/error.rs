//! The errors of the `oort` command and the exit code each one maps to.
//!
//! Scripts branch on the exit code, so the mapping is part of the CLI's
//! contract and lives here, in one place:
//!
//! | code | meaning |
//! | ---- | ------- |
//! | 0 | success |
//! | 1 | the server answered with an error (any gRPC status but UNAVAILABLE), or output failed |
//! | 2 | bad usage: wrong arguments (reported by clap) or invalid local input such as a rule file |
//! | 3 | the server could not be reached (connection refused, timeout, UNAVAILABLE) |

use std::process::ExitCode;

use tonic::Code;

/// Exit code for a server-side error.
pub const EXIT_SERVER: u8 = 1;
/// Exit code for bad usage or invalid input, the same code clap uses.
pub const EXIT_USAGE: u8 = 2;
/// Exit code when the server cannot be reached.
pub const EXIT_UNREACHABLE: u8 = 3;

/// Everything that can make the `oort` command fail.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Invalid arguments or local input, found before any request is sent.
    #[error("{0}")]
    Usage(String),
    /// The connection to the server could not be established.
    #[error("could not connect to oortd at {addr}: {cause}")]
    Connect {
        /// The address as dialled.
        addr: String,
        /// The underlying cause, flattened into one line.
        cause: String,
    },
    /// The server answered a request with an error status.
    #[error("{}", status_line(.0))]
    Status(Box<tonic::Status>),
    /// Writing the output failed (a closed pipe is not reported).
    #[error("cannot write output: {0}")]
    Output(#[from] std::io::Error),
    /// A bug in the CLI itself, e.g. a message missing from the descriptor set.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<tonic::Status> for Error {
    fn from(status: tonic::Status) -> Self {
        Error::Status(Box::new(status))
    }
}

impl Error {
    /// Shorthand for a usage error.
    pub fn usage(message: impl Into<String>) -> Self {
        Error::Usage(message.into())
    }

    /// The process exit code documented in the module header.
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(self.exit_number())
    }

    fn exit_number(&self) -> u8 {
        match self {
            Error::Usage(_) => EXIT_USAGE,
            Error::Connect { .. } => EXIT_UNREACHABLE,
            Error::Status(status) if status.code() == Code::Unavailable => EXIT_UNREACHABLE,
            Error::Status(_) | Error::Output(_) | Error::Internal(_) => EXIT_SERVER,
        }
    }

    /// Whether the error is only a closed stdout (e.g. `oort rule tail x | head`),
    /// which is how a reader says it has seen enough, not a failure.
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, Error::Output(e) if e.kind() == std::io::ErrorKind::BrokenPipe)
    }

    /// A second line for stderr that tells the user what to do, if there is one.
    pub fn hint(&self) -> Option<&'static str> {
        match self.exit_number() {
            EXIT_UNREACHABLE => {
                Some("hint: is oortd running? Start it with `oortd`, or point --server (or OORT_SERVER) at it.")
            }
            _ if matches!(self, Error::Status(status) if status.code() == Code::Unauthenticated) => Some(
                "hint: pass --token (or OORT_TOKEN), or --data-dir (or OORT_DATA_DIR) of the server, whose admin.token is read when readable.",
            ),
            _ => None,
        }
    }
}

/// `<code in words>: <message>`, e.g. `not found: stream demo does not exist`.
fn status_line(status: &tonic::Status) -> String {
    let words = code_words(status.code());
    if status.message().is_empty() { words.to_string() } else { format!("{words}: {}", status.message()) }
}

/// The gRPC status code as lower-case words, because tonic's `Display` gives a
/// sentence ("Some requested entity was not found") that reads badly after `error:`.
pub fn code_words(code: Code) -> &'static str {
    match code {
        Code::Ok => "ok",
        Code::Cancelled => "cancelled",
        Code::Unknown => "unknown",
        Code::InvalidArgument => "invalid argument",
        Code::DeadlineExceeded => "deadline exceeded",
        Code::NotFound => "not found",
        Code::AlreadyExists => "already exists",
        Code::PermissionDenied => "permission denied",
        Code::ResourceExhausted => "resource exhausted",
        Code::FailedPrecondition => "failed precondition",
        Code::Aborted => "aborted",
        Code::OutOfRange => "out of range",
        Code::Unimplemented => "unimplemented",
        Code::Internal => "internal",
        Code::Unavailable => "unavailable",
        Code::DataLoss => "data loss",
        Code::Unauthenticated => "unauthenticated",
    }
}

/// Joins an error and its sources with `: `, skipping repeats, so that a
/// transport failure shows its real cause ("Connection refused") on one line.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = current {
        let text = e.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        current = e.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_prints_code_in_words_then_message() {
        let err = Error::from(tonic::Status::not_found("stream demo does not exist"));
        assert_eq!(err.to_string(), "not found: stream demo does not exist");
        assert_eq!(err.exit_number(), EXIT_SERVER);
        assert!(err.hint().is_none());
    }

    #[test]
    fn status_without_message_prints_only_the_code() {
        let err = Error::from(tonic::Status::new(Code::Unimplemented, ""));
        assert_eq!(err.to_string(), "unimplemented");
    }

    #[test]
    fn unreachable_server_has_its_own_exit_code_and_a_hint() {
        let err = Error::Connect { addr: "http://127.0.0.1:9081".into(), cause: "refused".into() };
        assert_eq!(err.exit_number(), EXIT_UNREACHABLE);
        assert!(err.hint().unwrap_or_default().contains("oortd"));
        let unavailable = Error::from(tonic::Status::unavailable("gone"));
        assert_eq!(unavailable.exit_number(), EXIT_UNREACHABLE);
    }

    #[test]
    fn usage_errors_exit_like_clap() {
        assert_eq!(Error::usage("bad").exit_number(), EXIT_USAGE);
    }
}
