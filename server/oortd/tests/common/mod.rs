//! Test harness: runs the real `oortd` binary on a free port with a temporary
//! data directory, waits for its "listening" log line and for health SERVING,
//! and hands out generated clients.

#![allow(dead_code)] // each test binary uses a different part of the harness

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use oort_proto::v1::rule_service_client::RuleServiceClient;
use oort_proto::v1::stream_service_client::StreamServiceClient;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

pub mod demo;

const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A running `oortd`.
pub struct Oortd {
    child: Child,
    /// `127.0.0.1:<port>` it listens on.
    pub addr: String,
    /// `127.0.0.1:<port>` of its HTTP push endpoint, if it logged one.
    pub push_addr: Option<String>,
    /// `127.0.0.1:<port>` of its metrics endpoint, if it logged one.
    pub metrics_addr: Option<String>,
    /// Its data directory.
    pub data_dir: PathBuf,
}

impl Oortd {
    /// Starts `oortd` on a free port with `data_dir`, and waits until it serves.
    pub async fn start(data_dir: &Path) -> Oortd {
        let mut command = Self::command();
        command.args(["--listen", "127.0.0.1:0", "--http-push-listen", "127.0.0.1:0", "--data-dir"]).arg(data_dir);
        Self::launch(command, data_dir).await
    }

    /// The `oortd` command with a clean environment (no OORT_* variables) and
    /// piped stderr; add flags, variables or a working directory, then `launch`.
    pub fn command() -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_oortd"));
        command
            .env_remove("OORT_LISTEN")
            .env_remove("OORT_DATA_DIR")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        command
    }

    /// Spawns `command` (which must make oortd use `data_dir`) and waits until it serves.
    pub async fn launch(mut command: Command, data_dir: &Path) -> Oortd {
        let mut child = command.spawn().expect("oortd starts");
        let Addresses { api: addr, push: push_addr, metrics: metrics_addr } = wait_for_address(&mut child);
        let server = Oortd { child, addr, push_addr, metrics_addr, data_dir: data_dir.to_owned() };
        server.wait_serving().await;
        server
    }

    /// `http://addr`, for clients.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub async fn channel(&self) -> Channel {
        Channel::from_shared(self.url()).unwrap().connect().await.expect("connects to oortd")
    }

    pub async fn streams(&self) -> StreamServiceClient<Channel> {
        StreamServiceClient::new(self.channel().await)
    }

    pub async fn rules(&self) -> RuleServiceClient<Channel> {
        RuleServiceClient::new(self.channel().await)
    }

    async fn wait_serving(&self) {
        let mut health = HealthClient::new(self.channel().await);
        let response = health.check(HealthCheckRequest { service: String::new() }).await.expect("health answers");
        assert_eq!(
            response.into_inner().status,
            tonic_health::pb::health_check_response::ServingStatus::Serving as i32
        );
    }

    /// Sends SIGTERM and waits for a clean exit, letting the runtime run meanwhile
    /// so that this process's client connections can see the server go away.
    pub async fn terminate(mut self) {
        let pid = self.child.id().to_string();
        let status = Command::new("kill").args(["-TERM", &pid]).status().expect("kill runs");
        assert!(status.success());
        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        let exit = loop {
            if let Some(exit) = self.child.try_wait().expect("try_wait") {
                break exit;
            }
            assert!(tokio::time::Instant::now() < deadline, "oortd did not exit after SIGTERM");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert!(exit.success(), "oortd exited with {exit} after SIGTERM");
    }

    /// Kills the process with SIGKILL: no shutdown code runs.
    pub fn kill9(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reaped");
    }
}

impl Drop for Oortd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The addresses a server logged.
struct Addresses {
    api: String,
    push: Option<String>,
    metrics: Option<String>,
}

/// Reads stderr until the "oortd listening" line (the lines of the HTTP
/// endpoints, if any, come before it), then keeps draining (and echoing) it in
/// a thread so the server never blocks on a full pipe.
fn wait_for_address(child: &mut Child) -> Addresses {
    let stderr = child.stderr.take().expect("stderr is piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let (mut push, mut metrics) = (None, None);
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("[oortd] {line}");
            let addr = || line.split("addr=").nth(1).and_then(|rest| rest.split_whitespace().next()).map(str::to_owned);
            if line.contains("http push listening") {
                push = addr();
            } else if line.contains("metrics listening") {
                metrics = addr();
            } else if let Some(api) = addr().filter(|_| line.contains("oortd listening")) {
                let _ = tx.send(Addresses { api, push: push.take(), metrics: metrics.take() });
            }
        }
    });
    rx.recv_timeout(START_TIMEOUT).expect("oortd logs the address it listens on")
}

/// The code and message of a failed call, for assertions.
pub fn code_of<T: std::fmt::Debug>(result: Result<T, tonic::Status>) -> (tonic::Code, String) {
    let status = result.expect_err("the call should fail");
    (status.code(), status.message().to_owned())
}

/// An HTTP client. reqwest is built without a TLS crypto provider (the server
/// installs ring before it builds one), so the tests install it too.
pub fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}
