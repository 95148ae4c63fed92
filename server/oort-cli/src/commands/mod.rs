//! The commands: each one validates its local input first (so that mistakes
//! exit with 2 without touching the network), then connects, calls one RPC and
//! prints the answer.

mod connection;
mod connector;
mod function;
mod plugin;
mod publish;
mod rule;
mod schema;
mod service;
mod state;
mod stream;
mod token;

use std::io::Read;
use std::path::Path;

use crate::cli::{Cli, Command};
use crate::client::{self, Conn, Target};
use crate::error::Error;

/// How long a call may take unless `--timeout` says otherwise.
const DEFAULT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// What every command needs from the global flags.
pub struct Ctx {
    target: Target,
    /// Print proto3 JSON instead of tables.
    pub json: bool,
    /// `--timeout`, if given.
    timeout: Option<std::time::Duration>,
}

impl Ctx {
    /// Connects to the server, each call bounded by `--timeout` (30 s by
    /// default); called only once the input is known to be valid.
    pub async fn channel(&self) -> Result<Conn, Error> {
        client::connect(&self.target, Some(self.timeout.unwrap_or(DEFAULT_TIMEOUT))).await
    }

    /// `--timeout`, if given.
    pub fn timeout(&self) -> Option<std::time::Duration> {
        self.timeout
    }

    /// Connects for a call that may rightly take long (a tail, a plugin
    /// install): bounded only by an explicit `--timeout`.
    pub async fn long_channel(&self) -> Result<Conn, Error> {
        client::connect(&self.target, self.timeout).await
    }
}

/// Prints the completion script of `shell` for the whole command line.
fn completions(shell: clap_complete::Shell) -> Result<(), Error> {
    use clap::CommandFactory;
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "oort", &mut script);
    crate::output::emit(&String::from_utf8_lossy(&script))
}

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> Result<(), Error> {
    let identity = match (cli.connection.cert, cli.connection.key) {
        (Some(cert), Some(key)) => Some((cert, key)),
        (None, None) => None,
        _ => return Err(Error::usage("--cert and --key go together")),
    };
    let target = Target {
        server: cli.server,
        token: cli.connection.token,
        data_dir: cli.connection.data_dir,
        ca_cert: cli.connection.ca_cert,
        identity,
    };
    let timeout = cli.timeout.map(std::time::Duration::from_secs);
    let ctx = Ctx { target, json: cli.json, timeout };
    match cli.command {
        Command::Token(command) => token::run(command),
        Command::Completions { shell } => completions(shell),
        Command::Function(command) => function::run(&ctx, command).await,
        Command::Stream(command) => stream::run(&ctx, command).await,
        Command::Rule(command) => rule::run(&ctx, command).await,
        Command::Health => health(&ctx).await,
        Command::Plugin(command) => plugin::run(&ctx, command).await,
        Command::Service(command) => service::run(&ctx, command).await,
        Command::Connector(command) => connector::run(&ctx, command).await,
        Command::Connection(command) => connection::run(&ctx, command).await,
        Command::Schema(command) => schema::run(&ctx, command).await,
        Command::State(command) => state::run(&ctx, command).await,
        Command::Publish { stream, file } => publish::run(&ctx, stream, &file).await,
    }
}

/// `oort health`: the server's overall status from grpc.health.v1.
async fn health(ctx: &Ctx) -> Result<(), Error> {
    use tonic_health::pb::health_check_response::ServingStatus;
    let mut client = tonic_health::pb::health_client::HealthClient::new(ctx.channel().await?);
    let response = client.check(tonic_health::pb::HealthCheckRequest { service: String::new() }).await?;
    let status = ServingStatus::try_from(response.into_inner().status).unwrap_or(ServingStatus::Unknown);
    if ctx.json {
        println!("{}", serde_json::json!({ "status": status.as_str_name() }));
    } else {
        println!("{}", status.as_str_name());
    }
    match status {
        ServingStatus::Serving => Ok(()),
        other => Err(tonic::Status::unavailable(format!("oortd is {}", other.as_str_name())).into()),
    }
}

/// Reads a file, or stdin for `-`; an unreadable file is a usage error.
pub fn read_input(path: &Path) -> Result<String, Error> {
    if is_stdin(path) {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).map_err(|e| Error::usage(format!("cannot read stdin: {e}")))?;
        return Ok(text);
    }
    std::fs::read_to_string(path).map_err(|e| Error::usage(format!("cannot read {}: {e}", path.display())))
}

/// How to name an input in messages: the path, or `<stdin>`.
pub fn input_name(path: &Path) -> String {
    if is_stdin(path) { "<stdin>".to_string() } else { path.display().to_string() }
}

pub fn is_stdin(path: &Path) -> bool {
    path == Path::new("-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_file_is_a_usage_error_naming_it() {
        let err = read_input(Path::new("/nonexistent/oort-cli-test.sql")).unwrap_err();
        assert!(matches!(err, Error::Usage(ref m) if m.contains("/nonexistent/oort-cli-test.sql")), "{err}");
    }

    #[test]
    fn dash_means_stdin() {
        assert_eq!(input_name(Path::new("-")), "<stdin>");
        assert_eq!(input_name(Path::new("a.json")), "a.json");
    }
}
