//! One plugin process: started with the protocol's environment, its handshake
//! line read from stdout within the start timeout, its stderr copied line by
//! line into the server log, and a gRPC channel over its Unix socket (and a
//! second one, made on first use, for function calls: [`Process::call_client`]). The
//! process is killed when [`Process`] is dropped (or by [`Process::kill`]);
//! [`Process::shutdown`] asks it to exit first.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use oort_proto::plugin::v1::ShutdownRequest;
use oort_proto::plugin::v1::plugin_service_client::PluginServiceClient;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, BufReader};
use tokio::process::{ChildStdin, Command};
use tokio::sync::{Notify, watch};
use tonic::transport::{Channel, Endpoint, Uri};

use super::output::{self, LogBudget};
use crate::error::HostError;

/// The environment variable that tells a program it is started by oortd.
pub const COOKIE_KEY: &str = "OORT_PLUGIN_MAGIC_COOKIE";
/// Its value.
pub const COOKIE_VALUE: &str = "oort-plugin-7c2b1d9e";
/// The protocol version this server speaks.
pub const PROTOCOL_VERSION: u32 = 1;
/// Longest line kept from a plugin's stdout or stderr; the rest of the line is dropped.
const MAX_LINE: usize = 8 * 1024;
/// Lines of stderr kept to explain a failure.
const STDERR_TAIL: usize = 20;
/// Largest message accepted from a plugin.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// How to start one process.
#[derive(Debug, Clone)]
pub struct Launch {
    /// Plugin name, for logs and errors.
    pub plugin: String,
    /// The program to run.
    pub program: PathBuf,
    /// Its arguments (the script, for interpreted languages).
    pub args: Vec<PathBuf>,
    /// Working directory: the plugin's unpacked folder.
    pub dir: PathBuf,
    /// The socket path to give it.
    pub socket: PathBuf,
    /// How long it may take to print its handshake and answer health checks.
    pub start_timeout: Duration,
    /// What `OORT_PLUGIN_SHUTDOWN_GRACE_MS` says.
    pub shutdown_grace: Duration,
}

/// The last lines a process wrote to stderr.
#[derive(Clone, Default)]
pub struct StderrTail(Arc<Mutex<VecDeque<String>>>);

impl StderrTail {
    pub(crate) fn push(&self, line: String) {
        let mut tail = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if tail.len() == STDERR_TAIL {
            tail.pop_front();
        }
        tail.push_back(line);
    }

    /// The lines, joined, or a note that there were none.
    pub fn text(&self) -> String {
        let tail = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if tail.is_empty() {
            "(stderr was empty)".to_owned()
        } else {
            tail.iter().cloned().collect::<Vec<_>>().join(" | ")
        }
    }
}

/// A running plugin process.
pub struct Process {
    /// Its process id.
    pub pid: u32,
    /// A client on its socket.
    pub client: PluginServiceClient<Channel>,
    /// The channel, for the health client.
    pub channel: Channel,
    /// Where it serves, and how long a connection may take.
    address: Address,
    connect_timeout: Duration,
    /// The connection of function calls, made by the first call.
    calls: tokio::sync::OnceCell<PluginServiceClient<Channel>>,
    /// The last lines of its stderr.
    pub stderr: StderrTail,
    /// Holds the plugin's stdin open: dropping it tells the plugin to exit.
    stdin: Mutex<Option<ChildStdin>>,
    kill: Arc<Notify>,
    /// `Some(how it ended)` once it has exited.
    pub exited: watch::Receiver<Option<String>>,
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill.notify_one();
    }
}

/// Reads one line of at most [`MAX_LINE`] bytes (longer ones are cut); `None` at EOF.
pub(crate) async fn read_line<R: AsyncBufRead + Unpin>(reader: &mut R) -> Option<String> {
    let mut line = Vec::new();
    let mut any = false;
    loop {
        let buf = match reader.fill_buf().await {
            Ok(buf) => buf,
            Err(_) => return None,
        };
        if buf.is_empty() {
            return any.then(|| String::from_utf8_lossy(&line).into_owned());
        }
        any = true;
        let (chunk, done) = match buf.iter().position(|b| *b == b'\n') {
            Some(i) => (&buf[..i], i + 1),
            None => (buf, buf.len()),
        };
        let room = MAX_LINE.saturating_sub(line.len());
        line.extend_from_slice(&chunk[..chunk.len().min(room)]);
        let newline = done > chunk.len();
        reader.consume(done);
        if newline {
            let text = String::from_utf8_lossy(&line);
            return Some(text.trim_end_matches('\r').to_owned());
        }
    }
}

/// Where the handshake says the plugin listens.
#[derive(Debug, PartialEq, Eq)]
enum Address {
    Unix(PathBuf),
    Tcp(std::net::SocketAddr),
}

/// Parses `OORT_PLUGIN|1|unix|<path>`.
fn parse_handshake(line: &str, expected_socket: &std::path::Path) -> Result<Address, String> {
    let parts: Vec<&str> = line.splitn(4, '|').collect();
    let [magic, version, network, address] = parts.as_slice() else {
        return Err(format!("its first line on stdout is not a handshake: {line:?}"));
    };
    if *magic != "OORT_PLUGIN" {
        return Err(format!("its first line on stdout is not a handshake: {line:?}"));
    }
    if version.trim() != PROTOCOL_VERSION.to_string() {
        return Err(format!("it speaks protocol version {version}, this server speaks {PROTOCOL_VERSION}"));
    }
    match *network {
        "unix" if std::path::Path::new(address) == expected_socket => Ok(Address::Unix(PathBuf::from(address))),
        "unix" => {
            Err(format!("it listens on {address}, not on the socket it was given ({})", expected_socket.display()))
        }
        "tcp" => match address.parse::<std::net::SocketAddr>() {
            Ok(addr) if addr.ip().is_loopback() => Ok(Address::Tcp(addr)),
            _ => Err(format!("its tcp address {address:?} is not on 127.0.0.1")),
        },
        other => Err(format!("its handshake names an unknown network {other:?}")),
    }
}

async fn connect(address: &Address, timeout: Duration) -> Result<Channel, String> {
    let endpoint = |uri: String| {
        Endpoint::from_shared(uri).map(|e| {
            e.connect_timeout(timeout)
                .initial_stream_window_size(Some(4 * 1024 * 1024))
                .initial_connection_window_size(Some(16 * 1024 * 1024))
                .tcp_nodelay(true)
        })
    };
    match address {
        Address::Unix(path) => {
            let path = path.clone();
            let endpoint = endpoint("http://plugin.localhost".into()).map_err(|e| e.to_string())?;
            let connector = tower::service_fn(move |_: Uri| {
                let path = path.clone();
                async move {
                    Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(tokio::net::UnixStream::connect(path).await?))
                }
            });
            endpoint.connect_with_connector(connector).await.map_err(|e| format!("cannot connect to its socket: {e}"))
        }
        Address::Tcp(addr) => endpoint(format!("http://{addr}"))
            .map_err(|e| e.to_string())?
            .connect()
            .await
            .map_err(|e| format!("cannot connect to {addr}: {e}")),
    }
}

/// The variables of the server's environment that a plugin process gets,
/// besides the `OORT_PLUGIN_*` ones of the protocol (plugins/PROTOCOL.md).
pub const INHERITED_ENV: [&str; 8] = ["PATH", "HOME", "USER", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR"];

/// Starts the process and waits for its handshake; connects to its socket.
pub async fn spawn(launch: &Launch) -> Result<Process, HostError> {
    let name = &launch.plugin;
    let fail = |message: String| HostError::Start { plugin: name.clone(), message };
    let _ = std::fs::remove_file(&launch.socket);
    let mut command = Command::new(&launch.program);
    // A minimal environment: the server's may hold secrets (OORT_AUTH_TOKEN,
    // cloud credentials) that a plugin has no business reading.
    command.env_clear();
    for name in INHERITED_ENV {
        if let Some(value) = std::env::var_os(name) {
            command.env(name, value);
        }
    }
    command
        .args(&launch.args)
        .current_dir(&launch.dir)
        .env(COOKIE_KEY, COOKIE_VALUE)
        .env("OORT_PLUGIN_PROTOCOL", PROTOCOL_VERSION.to_string())
        .env("OORT_PLUGIN_SOCKET", &launch.socket)
        .env("OORT_PLUGIN_SHUTDOWN_GRACE_MS", launch.shutdown_grace.as_millis().to_string())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let mut child = command.spawn().map_err(|e| fail(format!("cannot run {}: {e}", launch.program.display())))?;
    let pid = child.id().unwrap_or_default();
    let stdin = child.stdin.take();
    let stdout = child.stdout.take();
    let stderr_pipe = child.stderr.take();

    let stderr = StderrTail::default();
    let budget = Arc::new(LogBudget::default());
    let stderr_done = {
        let (tail, plugin, budget) = (stderr.clone(), name.clone(), Arc::clone(&budget));
        tokio::spawn(async move {
            let Some(pipe) = stderr_pipe else { return };
            let mut reader = BufReader::new(pipe);
            while let Some(line) = read_line(&mut reader).await {
                output::log_line(&budget, &plugin, pid, "stderr", &line);
                tail.push(line);
            }
            output::report_suppressed(&plugin, pid, budget.take_suppressed());
        })
    };

    let kill = Arc::new(Notify::new());
    let (exit_tx, exited) = watch::channel(None);
    {
        let kill = Arc::clone(&kill);
        tokio::spawn(async move {
            let status = tokio::select! {
                status = child.wait() => status,
                () = kill.notified() => {
                    let _ = child.start_kill();
                    child.wait().await
                }
            };
            let how = match status {
                Ok(status) => describe_exit(status),
                Err(e) => format!("could not be waited for: {e}"),
            };
            let _ = exit_tx.send(Some(how));
        });
    }
    // From here on, a failure kills the process (the guard's drop).
    let guard = KillGuard(Arc::clone(&kill));

    let Some(stdout) = stdout else { return Err(fail("its stdout could not be read".into())) };
    let mut stdout = BufReader::new(stdout);
    let mut exit_watch = exited.clone();
    let first = tokio::select! {
        line = read_line(&mut stdout) => line,
        () = wait_exit(&mut exit_watch) => None,
        () = tokio::time::sleep(launch.start_timeout) => {
            return Err(fail(format!(
                "it did not print its handshake line (OORT_PLUGIN|1|unix|<socket>) on stdout within {} ms; stderr: {}",
                launch.start_timeout.as_millis(),
                stderr.text()
            )));
        }
    };
    let Some(line) = first else {
        // Give stderr a moment to drain, then explain how it ended.
        let _ = tokio::time::timeout(Duration::from_millis(500), stderr_done).await;
        let _ = tokio::time::timeout(Duration::from_millis(500), wait_exit(&mut exit_watch)).await;
        let how = exit_watch.borrow().clone().unwrap_or_else(|| "closed its stdout".to_owned());
        return Err(fail(format!("it {how} before printing its handshake line; stderr: {}", stderr.text())));
    };
    let address = parse_handshake(&line, &launch.socket).map_err(&fail)?;
    {
        // The rest of stdout goes to the log too, so a chatty plugin never blocks on a full pipe.
        let plugin = name.clone();
        tokio::spawn(async move {
            while let Some(line) = read_line(&mut stdout).await {
                output::log_line(&budget, &plugin, pid, "stdout", &line);
            }
            output::report_suppressed(&plugin, pid, budget.take_suppressed());
        });
    }
    let channel =
        connect(&address, launch.start_timeout).await.map_err(|m| fail(format!("{m}; stderr: {}", stderr.text())))?;
    let client = plugin_client(channel.clone());
    std::mem::forget(guard);
    Ok(Process {
        pid,
        client,
        channel,
        address,
        connect_timeout: launch.start_timeout,
        calls: tokio::sync::OnceCell::new(),
        stderr,
        stdin: Mutex::new(stdin),
        kill,
        exited,
    })
}

fn plugin_client(channel: Channel) -> PluginServiceClient<Channel> {
    PluginServiceClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES)
}

struct KillGuard(Arc<Notify>);

impl Drop for KillGuard {
    fn drop(&mut self) {
        self.0.notify_one();
    }
}

/// Waits until the process has exited (dropping the watch's guard, which is not `Send`).
pub async fn wait_exit(exited: &mut watch::Receiver<Option<String>>) {
    let _ = exited.wait_for(Option::is_some).await.map(|_| ());
}

fn describe_exit(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(signal)) => format!("was killed by signal {signal}"),
        _ => format!("ended ({status})"),
    }
}

impl Process {
    /// A client on a connection of its own for function calls, made on the
    /// first call on the runtime that call runs on (the host's `CallRuntime`,
    /// which the calling threads drive themselves): so that a call's bytes are
    /// written and its answer read on the caller's thread.
    pub async fn call_client(&self) -> Result<PluginServiceClient<Channel>, String> {
        let connect = || async { connect(&self.address, self.connect_timeout).await.map(plugin_client) };
        self.calls.get_or_try_init(connect).await.cloned()
    }

    /// Whether it has exited.
    pub fn has_exited(&self) -> bool {
        self.exited.borrow().is_some()
    }

    /// Kills it now (SIGKILL).
    pub fn kill(&self) {
        self.kill.notify_one();
    }

    /// Asks it to exit (Shutdown, then its stdin closed), waits up to `grace`,
    /// then kills it.
    pub async fn shutdown(&self, grace: Duration) {
        let mut client = self.client.clone();
        let _ = tokio::time::timeout(grace, client.shutdown(ShutdownRequest {})).await;
        drop(self.stdin.lock().unwrap_or_else(|p| p.into_inner()).take());
        let mut exited = self.exited.clone();
        if tokio::time::timeout(grace, wait_exit(&mut exited)).await.is_err() {
            self.kill();
            let _ = tokio::time::timeout(Duration::from_secs(5), wait_exit(&mut exited)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshakes_are_checked() {
        let socket = std::path::Path::new("/run/x/p.sock");
        assert_eq!(parse_handshake("OORT_PLUGIN|1|unix|/run/x/p.sock", socket), Ok(Address::Unix(socket.into())));
        assert!(parse_handshake("OORT_PLUGIN|2|unix|/run/x/p.sock", socket).unwrap_err().contains("version 2"));
        assert!(parse_handshake("hello", socket).unwrap_err().contains("not a handshake"));
        assert!(parse_handshake("OORT_PLUGIN|1|unix|/tmp/other", socket).unwrap_err().contains("not on the socket"));
        assert!(parse_handshake("OORT_PLUGIN|1|tcp|10.0.0.1:80", socket).is_err());
        assert!(matches!(parse_handshake("OORT_PLUGIN|1|tcp|127.0.0.1:80", socket), Ok(Address::Tcp(_))));
    }

    #[tokio::test]
    async fn long_lines_are_cut() {
        let text = format!("{}\nshort\n", "x".repeat(MAX_LINE * 2));
        let mut reader = BufReader::new(text.as_bytes());
        assert_eq!(read_line(&mut reader).await.map(|l| l.len()), Some(MAX_LINE));
        assert_eq!(read_line(&mut reader).await.as_deref(), Some("short"));
        assert_eq!(read_line(&mut reader).await, None);
    }
}
