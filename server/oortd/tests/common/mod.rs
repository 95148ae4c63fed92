//! Test harness: runs the real `oortd` binary on a free port with a temporary
//! data directory (through `oort-testkit`, which reads its ready line), waits
//! for health SERVING, and hands out generated clients.

#![allow(dead_code)] // each test binary uses a different part of the harness

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use oort_testkit::ServerProcess;

use oort_proto::v1::rule_service_client::RuleServiceClient;
use oort_proto::v1::stream_service_client::StreamServiceClient;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

pub mod delivery;
pub mod demo;

const START_TIMEOUT: Duration = Duration::from_secs(30);

/// The admin token every test server accepts (`OORT_AUTH_TOKEN`).
pub const TOKEN: &str = "test-admin-token-0123456789abcdef";

/// A channel that sends `authorization: Bearer <token>` on every call.
pub type AuthChannel = InterceptedService<Channel, Bearer>;

/// Adds a bearer token to each request.
#[derive(Clone)]
pub struct Bearer(pub MetadataValue<Ascii>);

impl Bearer {
    pub fn new(token: &str) -> Self {
        Bearer(format!("Bearer {token}").parse().expect("a token is ASCII"))
    }
}

impl Interceptor for Bearer {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        request.metadata_mut().insert("authorization", self.0.clone());
        Ok(request)
    }
}

/// A running `oortd`.
pub struct Oortd {
    process: ServerProcess,
    /// `127.0.0.1:<port>` it listens on.
    pub addr: String,
    /// `127.0.0.1:<port>` of its HTTP push endpoint, if it logged one.
    pub push_addr: Option<String>,
    /// `127.0.0.1:<port>` of its metrics endpoint, if it logged one.
    pub metrics_addr: Option<String>,
    /// Its data directory.
    pub data_dir: PathBuf,
    /// Every line it has logged so far.
    pub log: Arc<Mutex<Vec<String>>>,
    /// The CA (PEM) of its TLS certificate, when it serves TLS.
    pub tls_ca: Option<String>,
}

impl Oortd {
    /// Starts `oortd` on a free port with `data_dir`, and waits until it serves.
    pub async fn start(data_dir: &Path) -> Oortd {
        let mut command = Self::command();
        command.args(["--listen", "127.0.0.1:0", "--http-push-listen", "127.0.0.1:0", "--data-dir"]).arg(data_dir);
        Self::launch(command, data_dir).await
    }

    /// A field of the server's `/proc/<pid>/status` in KiB (`VmRSS`, `VmHWM`).
    pub fn memory_kib(&self, field: &str) -> u64 {
        self.process.memory_kib(field)
    }

    /// [`Oortd::start`] in `dir` (data in `dir/data`) with `toml` as its
    /// `oort.toml`, without HTTP push.
    pub async fn start_with_config(dir: &Path, toml: &str) -> Oortd {
        let config = dir.join("oort.toml");
        std::fs::write(&config, toml).unwrap();
        let data = dir.join("data");
        let mut command = Self::command();
        command.args(["--listen", "127.0.0.1:0", "--http-push-listen", "off", "--config"]).arg(&config);
        command.arg("--data-dir").arg(&data);
        Self::launch(command, &data).await
    }

    /// The `oortd` command with a clean environment (no OORT_* variables but
    /// `OORT_AUTH_TOKEN=`[`TOKEN`] and `OORT_EGRESS_ALLOW` of loopback, where
    /// the tests' services listen) and piped stderr; add flags, variables or a
    /// working directory, then `launch`. Tests of the egress policy remove it.
    pub fn command() -> Command {
        let mut command = oort_testkit::server_command(Path::new(env!("CARGO_BIN_EXE_oortd")));
        command.env("OORT_EGRESS_ALLOW", "127.0.0.0/8,::1,localhost").env("OORT_AUTH_TOKEN", TOKEN);
        command
    }

    /// Spawns `command` (which must make oortd use `data_dir`) and waits until it serves.
    pub async fn launch(command: Command, data_dir: &Path) -> Oortd {
        Self::launch_tls(command, data_dir, None).await
    }

    /// [`Oortd::launch`] for a server with TLS whose certificate `ca` (PEM) signed.
    pub async fn launch_tls(command: Command, data_dir: &Path, tls_ca: Option<String>) -> Oortd {
        let process = ServerProcess::spawn(command, START_TIMEOUT);
        let ready = process.ready.clone();
        let log = Arc::clone(&process.log);
        let (addr, push_addr, metrics_addr) = (ready.api, ready.http_push, ready.metrics);
        let server = Oortd { process, addr, push_addr, metrics_addr, data_dir: data_dir.to_owned(), log, tls_ca };
        server.wait_serving().await;
        server
    }

    /// `http://addr` (`https://` with TLS), for clients.
    pub fn url(&self) -> String {
        let scheme = if self.tls_ca.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// Copies `file` into the server's `<data_dir>/uploads` (where archives
    /// named by path must be) and returns the copy's path.
    pub fn upload(&self, file: &Path) -> String {
        let copy = self.data_dir.join("uploads").join(file.file_name().expect("a file name"));
        std::fs::copy(file, &copy).expect("copy into uploads");
        copy.display().to_string()
    }

    /// Whether a logged line contains every one of `parts`.
    pub fn logged(&self, parts: &[&str]) -> bool {
        self.process.logged(parts)
    }

    /// A connection without credentials.
    pub async fn plain_channel(&self) -> Channel {
        let mut endpoint = Channel::from_shared(self.url()).unwrap();
        if let Some(ca) = &self.tls_ca {
            let tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca));
            endpoint = endpoint.tls_config(tls).unwrap();
        }
        endpoint.connect().await.expect("connects to oortd")
    }

    /// A connection with the admin [`TOKEN`].
    pub async fn channel(&self) -> AuthChannel {
        self.channel_with(TOKEN).await
    }

    /// A connection with `token`.
    pub async fn channel_with(&self, token: &str) -> AuthChannel {
        InterceptedService::new(self.plain_channel().await, Bearer::new(token))
    }

    pub async fn streams(&self) -> StreamServiceClient<AuthChannel> {
        StreamServiceClient::new(self.channel().await)
    }

    pub async fn rules(&self) -> RuleServiceClient<AuthChannel> {
        RuleServiceClient::new(self.channel().await)
    }

    async fn wait_serving(&self) {
        let mut health = HealthClient::new(self.plain_channel().await);
        let response = health.check(HealthCheckRequest { service: String::new() }).await.expect("health answers");
        assert_eq!(
            response.into_inner().status,
            tonic_health::pb::health_check_response::ServingStatus::Serving as i32
        );
    }

    /// Sends SIGTERM and waits for a clean exit, letting the runtime run meanwhile
    /// so that this process's client connections can see the server go away.
    pub async fn terminate(mut self) {
        let pid = self.process.child().id().to_string();
        let status = Command::new("kill").args(["-TERM", &pid]).status().expect("kill runs");
        assert!(status.success());
        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        let exit = loop {
            if let Some(exit) = self.process.child().try_wait().expect("try_wait") {
                break exit;
            }
            assert!(tokio::time::Instant::now() < deadline, "oortd did not exit after SIGTERM");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert!(exit.success(), "oortd exited with {exit} after SIGTERM");
    }

    /// Kills the process with SIGKILL: no shutdown code runs.
    pub fn kill9(mut self) {
        self.process.child().kill().expect("SIGKILL");
        self.process.child().wait().expect("reaped");
    }
}

/// grpcurl from $GRPCURL, $PATH, or `go install`'s bin directory.
pub fn grpcurl() -> PathBuf {
    if let Some(path) = std::env::var_os("GRPCURL") {
        return path.into();
    }
    let candidates = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain(std::env::var_os("HOME").map(|h| PathBuf::from(h).join("go/bin")));
    for dir in candidates {
        let path = dir.join("grpcurl");
        if path.is_file() {
            return path;
        }
    }
    panic!(
        "grpcurl not found: install it with `go install github.com/fullstorydev/grpcurl/cmd/grpcurl@v1.9.3` (scripts/install-tools.sh does)"
    );
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

/// An action of sink type `sink` with string properties.
pub fn action(sink: &str, props: &[(&str, &str)]) -> oort_proto::v1::Action {
    let fields = props
        .iter()
        .map(|(k, v)| {
            (k.to_string(), prost_types::Value { kind: Some(prost_types::value::Kind::StringValue(v.to_string())) })
        })
        .collect();
    oort_proto::v1::Action { r#type: sink.into(), props: Some(prost_types::Struct { fields }) }
}

/// An action of sink type `sink` with these properties (a JSON object).
pub fn action_json(sink: &str, props: serde_json::Value) -> oort_proto::v1::Action {
    fn value(json: serde_json::Value) -> prost_types::Value {
        use prost_types::value::Kind;
        let kind = match json {
            serde_json::Value::Null => Kind::NullValue(0),
            serde_json::Value::Bool(b) => Kind::BoolValue(b),
            serde_json::Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap()),
            serde_json::Value::String(s) => Kind::StringValue(s),
            serde_json::Value::Array(items) => {
                Kind::ListValue(prost_types::ListValue { values: items.into_iter().map(value).collect() })
            }
            serde_json::Value::Object(fields) => Kind::StructValue(prost_types::Struct {
                fields: fields.into_iter().map(|(k, v)| (k, value(v))).collect(),
            }),
        };
        prost_types::Value { kind: Some(kind) }
    }
    let Some(prost_types::value::Kind::StructValue(props)) = value(props).kind else { panic!("props are an object") };
    oort_proto::v1::Action { r#type: sink.into(), props: Some(props) }
}

/// A rule with default options.
pub fn rule(id: &str, sql: &str, actions: Vec<oort_proto::v1::Action>) -> oort_proto::v1::Rule {
    oort_proto::v1::Rule { id: id.into(), sql: sql.into(), actions, ..Default::default() }
}

/// A BIGINT value.
pub fn int(v: i64) -> oort_proto::v1::Value {
    oort_proto::v1::Value { kind: Some(oort_proto::v1::value::Kind::IntValue(v)) }
}

/// A FLOAT value.
pub fn float(v: f64) -> oort_proto::v1::Value {
    oort_proto::v1::Value { kind: Some(oort_proto::v1::value::Kind::FloatValue(v)) }
}

/// A STRING value.
pub fn string(v: &str) -> oort_proto::v1::Value {
    oort_proto::v1::Value { kind: Some(oort_proto::v1::value::Kind::StringValue(v.into())) }
}
