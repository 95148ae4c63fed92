//! Test harness for the CLI's end-to-end tests: runs the real `oortd` binary on
//! a free port with a data directory of its own, waits for its "listening" log
//! line, and runs the real `oort` binary against it.
//!
//! `oortd` is not a dependency of this crate, so cargo does not build it for
//! these tests: it must already be in the same target directory as `oort`
//! (`scripts/test.sh` runs `cargo build --workspace --bins` before testing).
//!
//! There is no `oort` command to publish events yet, so [`Oortd::publish`]
//! uses the generated gRPC client of `EventService` directly, and [`Tail`]
//! runs a long-lived `oort` (such as `oort rule tail`) and reads its output
//! line by line.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use oort_proto::v1::event_service_client::EventServiceClient;
use oort_proto::v1::{Event, PublishRequest, Value, value};
use oort_testkit::ServerProcess;

/// How long `oortd` may take to log the address it listens on.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A directory under the system temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    /// A new empty directory, unique to this process and call.
    fn new() -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!("oort-cli-e2e-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        let path = std::env::temp_dir().join(name);
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create a temp dir");
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Writes `contents` to `name` in this directory and returns its path.
    pub fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, contents).expect("write a test file");
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running `oortd` with a fresh catalog, killed on drop.
pub struct Oortd {
    /// Kept for its lifetime: dropping it kills the server.
    _process: ServerProcess,
    /// `127.0.0.1:<port>` it listens on.
    pub addr: String,
    /// Its working directory; the catalog is in `data/` below it, and tests may
    /// put their input files here too.
    pub dir: TempDir,
}

/// The `oortd` binary, next to the `oort` binary cargo built for these tests.
fn oortd_binary() -> PathBuf {
    let path = Path::new(env!("CARGO_BIN_EXE_oort")).with_file_name(format!("oortd{}", std::env::consts::EXE_SUFFIX));
    assert!(path.exists(), "build the server first: cargo build --bins ({} does not exist)", path.display());
    path
}

impl Oortd {
    /// Starts `oortd --listen 127.0.0.1:0` on an empty data directory and waits
    /// until it has logged the address it listens on.
    pub fn start() -> Oortd {
        Self::start_with_config("")
    }

    /// [`Oortd::start`] with `toml` as its oort.toml.
    pub fn start_with_config(toml: &str) -> Oortd {
        let dir = TempDir::new();
        dir.write("oort.toml", toml);
        let mut command = oort_testkit::server_command(&oortd_binary());
        command
            .args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path().join("data"))
            // The oort.toml of the working directory is read.
            .current_dir(dir.path())
            // The tests' services, when any, listen on loopback.
            .env("OORT_EGRESS_ALLOW", "127.0.0.0/8");
        let process = ServerProcess::spawn(command, START_TIMEOUT);
        let addr = process.ready.api.clone();
        Oortd { _process: process, addr, dir }
    }

    /// Runs `oort --server <this server> ARGS...` with empty stdin.
    pub fn oort(&self, args: &[&str]) -> Output {
        self.oort_with_stdin(args, "")
    }

    /// The server's data directory, where it wrote its admin token.
    pub fn data_dir(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    /// The admin token the server generated at its start.
    pub fn token(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("data/admin.token"))
            .expect("oortd wrote admin.token")
            .trim()
            .into()
    }

    /// Runs `oort --server <this server> ARGS...` with `stdin` as its input;
    /// the CLI finds the token in the server's data directory, as it does by default.
    pub fn oort_with_stdin(&self, args: &[&str], stdin: &str) -> Output {
        let data_dir = self.data_dir();
        let mut all = vec!["--server", self.addr.as_str(), "--data-dir", &data_dir];
        all.extend_from_slice(args);
        run_oort(&all, stdin, &[])
    }

    /// Starts `oort --server <this server> ARGS...` in the background, with its
    /// stdout read line by line (for `oort rule tail`).
    pub fn spawn_oort(&self, args: &[&str]) -> Tail {
        let mut child = Command::new(env!("CARGO_BIN_EXE_oort"))
            .arg("--server")
            .arg(&self.addr)
            .args(["--data-dir", &self.data_dir()])
            .args(args)
            .env_remove("OORT_SERVER")
            .env_remove("OORT_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("oort runs");
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Tail { child, lines }
    }

    /// Publishes `events` to `stream` with `EventService.Publish` (one call,
    /// client-streaming) and returns how many the server accepted.
    pub fn publish(&self, stream: &str, events: Vec<Event>) -> u64 {
        let url = format!("http://{}", self.addr);
        let bearer: tonic::metadata::MetadataValue<_> = format!("Bearer {}", self.token()).parse().unwrap();
        let requests: Vec<PublishRequest> = events
            .into_iter()
            .map(|event| PublishRequest { stream: stream.to_owned(), event: Some(event), ..Default::default() })
            .collect();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime");
        runtime.block_on(async move {
            let channel =
                tonic::transport::Channel::from_shared(url).unwrap().connect().await.expect("connect to oortd");
            let mut client = EventServiceClient::with_interceptor(channel, move |mut request: tonic::Request<()>| {
                request.metadata_mut().insert("authorization", bearer.clone());
                Ok(request)
            });
            let response = client.publish(tokio_stream::iter(requests)).await.expect("Publish succeeds");
            response.into_inner().accepted
        })
    }
}

/// An event with these fields.
pub fn event(fields: &[(&str, value::Kind)]) -> Event {
    Event {
        fields: fields.iter().map(|(name, kind)| ((*name).to_owned(), Value { kind: Some(kind.clone()) })).collect(),
        ..Default::default()
    }
}

/// A running `oort` whose stdout is read line by line; killed on drop.
pub struct Tail {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Tail {
    /// The next line of stdout; `Err(Timeout)` if none came within `timeout`,
    /// `Err(Disconnected)` once stdout is closed and every line was read.
    pub fn line(&self, timeout: Duration) -> Result<String, mpsc::RecvTimeoutError> {
        self.lines.recv_timeout(timeout)
    }

    /// Like [`Tail::line`], but panics with what the command printed on
    /// stderr if no line comes.
    #[track_caller]
    pub fn expect_line(&mut self, timeout: Duration) -> String {
        match self.line(timeout) {
            Ok(line) => line,
            Err(e) => panic!("no line from oort ({e}); stderr:\n{}", self.kill()),
        }
    }

    /// Waits for the command to end by itself, once its stdout is closed
    /// (`line` returned `Disconnected`), and returns its exit code and stderr.
    pub fn wait(&mut self) -> (Option<i32>, String) {
        let status = self.child.wait().expect("wait for oort");
        (status.code(), self.stderr())
    }

    /// Kills the command and returns what it printed on stderr.
    pub fn kill(&mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.stderr()
    }

    fn stderr(&mut self) -> String {
        let mut text = String::new();
        if let Some(mut pipe) = self.child.stderr.take() {
            let _ = pipe.read_to_string(&mut text);
        }
        text
    }
}

impl Drop for Tail {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the `oort` binary with `args`, `stdin` as input and extra environment
/// variables; `OORT_SERVER` from the caller's environment is not inherited.
pub fn run_oort(args: &[&str], stdin: &str, env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_oort"));
    command
        .args(args)
        .env_remove("OORT_SERVER")
        .env_remove("OORT_TOKEN")
        .env_remove("OORT_DATA_DIR")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, value) in env {
        command.env(key, value);
    }
    let mut child = command.spawn().expect("oort runs");
    let mut pipe = child.stdin.take().expect("stdin is piped");
    pipe.write_all(stdin.as_bytes()).expect("write oort's stdin");
    drop(pipe);
    child.wait_with_output().expect("oort finishes")
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts exit code 0 and empty stderr, and returns stdout.
#[track_caller]
pub fn success(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(0), "stdout: {}\nstderr: {}", stdout(out), stderr(out));
    assert!(out.stderr.is_empty(), "stderr: {}", stderr(out));
    stdout(out)
}

/// Asserts exit code 0 and that stdout is exactly one JSON document, and returns it.
#[track_caller]
pub fn json(out: &Output) -> serde_json::Value {
    let text = success(out);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}):\n{text}"))
}

/// Asserts that `oort` failed with `code`, printed nothing on stdout and
/// `error: ...` on stderr, and returns stderr.
#[track_caller]
pub fn failure(out: &Output, code: i32) -> String {
    assert_eq!(out.status.code(), Some(code), "stdout: {}\nstderr: {}", stdout(out), stderr(out));
    assert!(out.stdout.is_empty(), "stdout: {}", stdout(out));
    let err = stderr(out);
    assert!(err.starts_with("error: "), "{err}");
    err
}

/// Asserts that the server answered with an error: exit code 1, nothing on
/// stdout, exactly one `error: ...` line on stderr; returns that line.
#[track_caller]
pub fn server_error(out: &Output) -> String {
    let err = failure(out, 1);
    assert_eq!(err.lines().count(), 1, "{err}");
    err.trim_end().to_owned()
}
