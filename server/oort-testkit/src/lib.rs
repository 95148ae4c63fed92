//! Starting the real `oortd` in tests: [`server_command`] makes a command with
//! a clean environment, [`ServerProcess::spawn`] runs it and waits for the
//! server's ready line (one JSON object on stdout, written when it serves),
//! keeping everything it logs. Every test harness of the workspace uses these,
//! so the readiness contract is read in one place. [`etcd::EtcdServer`] is a
//! real etcd for the tests of the shared catalog.

pub mod etcd;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

/// Where the server says it listens, from its ready line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ready {
    /// The gRPC API, `host:port`.
    pub api: String,
    /// The HTTP push endpoint, if it serves one.
    pub http_push: Option<String>,
    /// The metrics endpoint, if it serves one.
    pub metrics: Option<String>,
}

impl Ready {
    /// The addresses of a ready line; `None` for any other line.
    pub fn parse(line: &str) -> Option<Ready> {
        let ready: serde_json::Value = serde_json::from_str(line).ok()?;
        if ready["oortd"] != "ready" {
            return None;
        }
        let address = |key: &str| ready[key].as_str().map(str::to_owned);
        Some(Ready { api: address("api")?, http_push: address("http_push"), metrics: address("metrics") })
    }
}

/// `binary` with none of the `OORT_*` variables that would change what a test
/// sets up (address, data directory, credentials, TLS, roots, egress), stdin
/// closed and both outputs piped. Tests add flags and variables.
pub fn server_command(binary: &Path) -> Command {
    let mut command = Command::new(binary);
    for variable in [
        "OORT_LISTEN",
        "OORT_DATA_DIR",
        "OORT_AUTH_TOKEN",
        "OORT_TLS_CERT",
        "OORT_TLS_KEY",
        "OORT_TLS_CLIENT_CA",
        "OORT_ALLOW_INSECURE_LISTEN",
        "OORT_FILE_ROOTS",
        "OORT_EGRESS_ALLOW",
    ] {
        command.env_remove(variable);
    }
    command.env("RUST_LOG", "info").stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    command
}

/// A running `oortd`, killed when dropped.
pub struct ServerProcess {
    child: Child,
    /// Its addresses.
    pub ready: Ready,
    /// Every line it has logged so far (also echoed to the test's stderr as `[oortd] …`).
    pub log: Arc<Mutex<Vec<String>>>,
}

impl ServerProcess {
    /// Spawns `command` (both outputs piped) and waits up to `timeout` for its
    /// ready line. Panics, with what it logged, if it does not come.
    pub fn spawn(mut command: Command, timeout: Duration) -> ServerProcess {
        let mut child = command.spawn().expect("oortd starts");
        let log = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().expect("stderr is piped");
        let kept = Arc::clone(&log);
        // Drained to the end, so the server never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[oortd] {line}");
                kept.lock().unwrap_or_else(|p| p.into_inner()).push(line);
            }
        });
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(ready) = Ready::parse(&line) {
                    let _ = tx.send(ready);
                }
            }
        });
        match rx.recv_timeout(timeout) {
            Ok(ready) => ServerProcess { child, ready, log },
            Err(e) => {
                let status = child.try_wait().ok().flatten();
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "oortd did not say it is ready ({e}; exit status {status:?}); it logged:\n{}",
                    log.lock().unwrap_or_else(|p| p.into_inner()).join("\n")
                )
            }
        }
    }

    /// The process.
    pub fn child(&mut self) -> &mut Child {
        &mut self.child
    }

    /// Whether a logged line contains every one of `parts`.
    pub fn logged(&self, parts: &[&str]) -> bool {
        let log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        log.iter().any(|line| parts.iter().all(|part| line.contains(part)))
    }

    /// A field of its `/proc/<pid>/status`, in KiB (`VmRSS`, `VmHWM`).
    pub fn memory_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).expect("/proc status");
        let line = status.lines().find_map(|l| l.strip_prefix(field)?.strip_prefix(':')).expect("the field");
        line.trim().trim_end_matches("kB").trim().parse().expect("a number of kB")
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ready_line_and_only_it_gives_the_addresses() {
        let line = r#"{"api":"127.0.0.1:1","http_push":null,"metrics":"127.0.0.1:2","oortd":"ready"}"#;
        let ready = Ready::parse(line).unwrap();
        assert_eq!(ready.api, "127.0.0.1:1");
        assert_eq!((ready.http_push, ready.metrics.as_deref()), (None, Some("127.0.0.1:2")));
        assert!(Ready::parse(r#"{"level":"INFO","fields":{"message":"oortd listening"}}"#).is_none());
        assert!(Ready::parse("INFO oortd listening addr=127.0.0.1:1").is_none());
    }
}
