//! The control-plane benchmark: idle RSS, start-up time and CreateRule latency
//! of a real `oortd` process, each with its baseline from the same run.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use oort_proto::v1::rule_service_client::RuleServiceClient;
use oort_proto::v1::stream_service_client::StreamServiceClient;
use oort_proto::v1::{Action, CreateRuleRequest, CreateStreamRequest, GetRuleRequest, Rule};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

/// The admin token of the servers the benchmarks start (`OORT_AUTH_TOKEN`).
pub(crate) const TOKEN: &str = "loadgen-admin-token-0123456789abcdef";

/// A channel that sends the token, when the server wants one.
pub(crate) type AuthChannel = InterceptedService<Channel, Bearer>;

/// Adds `authorization: Bearer` [`TOKEN`] to each request, or nothing.
#[derive(Clone)]
pub(crate) struct Bearer(Option<MetadataValue<Ascii>>);

impl Interceptor for Bearer {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request.metadata_mut().insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// A running oortd under measurement.
pub(crate) struct Server {
    child: Child,
    addr: String,
    auth: bool,
}

impl Server {
    /// Spawns oortd (with authentication, as it ships) and waits for its
    /// "listening" line; returns it with the time from spawn to health SERVING.
    pub(crate) async fn start(binary: &Path, data_dir: &Path) -> Result<(Server, Duration)> {
        Self::start_with(binary, data_dir, true).await
    }

    /// [`Server::start`]; without `auth`, with `auth = false` in its oort.toml.
    pub(crate) async fn start_with(binary: &Path, data_dir: &Path, auth: bool) -> Result<(Server, Duration)> {
        Self::start_with_args(binary, data_dir, auth, &[]).await
    }

    /// [`Server::start_with`], with more flags.
    pub(crate) async fn start_with_args(
        binary: &Path,
        data_dir: &Path,
        auth: bool,
        flags: &[&str],
    ) -> Result<(Server, Duration)> {
        let mut command = Command::new(binary);
        command.args(flags);
        if !auth {
            let config = data_dir.with_extension("noauth.toml");
            std::fs::write(&config, "auth = false\n")?;
            command.arg("--config").arg(config);
        }
        let started = Instant::now();
        let mut child = command
            .args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .env("RUST_LOG", "warn,oortd::server=info,oort::audit=info")
            .env("OORT_AUTH_TOKEN", TOKEN)
            // The benchmarks' services and sinks listen on loopback.
            .env("OORT_EGRESS_ALLOW", "127.0.0.0/8")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot run {}", binary.display()))?;
        // Logs (audit lines included, as in production) are drained, not shown.
        let stderr = child.stderr.take().context("stderr is piped")?;
        std::thread::spawn(move || BufReader::new(stderr).lines().map_while(Result::ok).for_each(drop));
        // The ready line: one JSON line on stdout with the addresses.
        let stdout = child.stdout.take().context("stdout is piped")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(ready) = oort_testkit::Ready::parse(&line) {
                    let _ = tx.send(ready.api);
                }
            }
        });
        let addr = rx.recv_timeout(Duration::from_secs(60)).context("oortd did not say it is ready")?;
        let server = Server { child, addr, auth };
        let mut health = HealthClient::new(server.channel().await?);
        health.check(HealthCheckRequest { service: String::new() }).await.context("health check")?;
        Ok((server, started.elapsed()))
    }

    /// The address it listens on.
    pub(crate) fn addr(&self) -> &str {
        &self.addr
    }

    pub(crate) async fn channel(&self) -> Result<AuthChannel> {
        let channel = Channel::from_shared(format!("http://{}", self.addr))?.connect().await?;
        let bearer = self.auth.then(|| format!("Bearer {TOKEN}").parse()).transpose()?;
        Ok(InterceptedService::new(channel, Bearer(bearer)))
    }

    /// Resident set size from /proc, in KiB.
    pub(crate) fn rss_kib(&self) -> Result<u64> {
        self.proc_status_kib("VmRSS")
    }

    /// The largest resident set size so far, from /proc, in KiB.
    pub(crate) fn peak_rss_kib(&self) -> Result<u64> {
        self.proc_status_kib("VmHWM")
    }

    fn proc_status_kib(&self, field: &str) -> Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .ok_or_else(|| anyhow!("no {field} in /proc status"))
    }

    /// CPU time the server has used so far (user + system), from /proc.
    pub(crate) fn cpu_time(&self) -> Result<Duration> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id()))?;
        // Fields after the command name (which is in parentheses and may hold spaces);
        // utime and stime are the 14th and 15th fields of the line.
        let rest = stat.rsplit_once(')').map(|(_, rest)| rest).ok_or_else(|| anyhow!("bad /proc stat"))?;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks =
            |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).ok_or_else(|| anyhow!("bad /proc stat"));
        // /proc counts in USER_HZ, 100 a second on Linux whatever the kernel's HZ.
        Ok(Duration::from_millis((ticks(11)? + ticks(12)?) * 10))
    }

    /// SIGTERM, then wait for a clean exit.
    pub(crate) fn stop(mut self) -> Result<()> {
        let status = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status()?;
        if !status.success() {
            bail!("kill failed");
        }
        let exit = self.child.wait()?;
        if !exit.success() {
            bail!("oortd exited with {exit}");
        }
        Ok(())
    }
}

impl Server {
    /// SIGKILL: no shutdown code runs.
    pub(crate) fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Latency percentiles of a sample, in microseconds.
pub(crate) struct Percentiles {
    pub(crate) p50: f64,
    pub(crate) p99: f64,
    pub(crate) max: f64,
}

pub(crate) fn percentiles(samples: &mut [Duration]) -> Percentiles {
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1e6;
    Percentiles { p50: at(0.50), p99: at(0.99), max: at(1.0) }
}

fn median(samples: &mut [Duration]) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn rule(i: usize) -> Rule {
    Rule {
        id: format!("rule_{i:05}"),
        sql: format!("SELECT temperature, humidity FROM demo WHERE temperature > {i}"),
        actions: vec![Action { r#type: "log".into(), props: None }],
        ..Default::default()
    }
}

async fn time_startups(binary: &Path, data_dir: &Path, count: usize) -> Result<Duration> {
    let mut samples = Vec::with_capacity(count);
    for _ in 0..count {
        let (server, elapsed) = Server::start(binary, data_dir).await?;
        samples.push(elapsed);
        server.stop()?;
    }
    Ok(median(&mut samples))
}

pub async fn run(binary: &Path, rules: usize, startups: usize, keep: Option<PathBuf>) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let data_dir = keep.unwrap_or_else(|| dir.path().join("data"));

    let startup_empty = time_startups(binary, &data_dir, startups).await?;
    let (server, _) = Server::start(binary, &data_dir).await?;
    // Let start-up allocations settle before reading the idle footprint.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_empty = server.rss_kib()?;

    let channel = server.channel().await?;
    let mut streams = StreamServiceClient::new(channel.clone());
    let mut client = RuleServiceClient::new(channel);
    streams
        .create_stream(CreateStreamRequest {
            sql: r#"CREATE STREAM demo (temperature FLOAT, humidity BIGINT) WITH (DATASOURCE="demo", FORMAT="json", TYPE="memory")"#.into(),
        })
        .await?;
    let mut create = Vec::with_capacity(rules);
    for i in 0..rules {
        let started = Instant::now();
        client.create_rule(CreateRuleRequest { rule: Some(rule(i)) }).await?;
        create.push(started.elapsed());
    }
    let mut get = Vec::with_capacity(rules);
    for i in 0..rules {
        let started = Instant::now();
        client.get_rule(GetRuleRequest { id: rule(i).id }).await?;
        get.push(started.elapsed());
    }
    server.stop()?;

    let startup_full = time_startups(binary, &data_dir, startups).await?;
    let (server, _) = Server::start(binary, &data_dir).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_full = server.rss_kib()?;
    server.stop()?;

    let create = percentiles(&mut create);
    let get = percentiles(&mut get);
    crate::out!("| figure | value | baseline (same run) | ratio |");
    crate::out!("|---|---|---|---|");
    crate::out!(
        "| idle RSS, {rules} rules | {:.1} MiB | {:.1} MiB (empty catalog) | {:.2} |",
        rss_full as f64 / 1024.0,
        rss_empty as f64 / 1024.0,
        rss_full as f64 / rss_empty as f64
    );
    crate::out!(
        "| start-up to SERVING, {rules} rules (median of {startups}) | {:.0} ms | {:.0} ms (empty catalog) | {:.2} |",
        startup_full.as_secs_f64() * 1e3,
        startup_empty.as_secs_f64() * 1e3,
        startup_full.as_secs_f64() / startup_empty.as_secs_f64()
    );
    crate::out!(
        "| CreateRule p50 over {rules} rules | {:.0} µs | {:.0} µs (GetRule p50) | {:.2} |",
        create.p50,
        get.p50,
        create.p50 / get.p50
    );
    crate::out!(
        "| CreateRule p99 over {rules} rules | {:.0} µs | {:.0} µs (GetRule p99) | {:.2} |",
        create.p99,
        get.p99,
        create.p99 / get.p99
    );
    crate::out!("| CreateRule max | {:.0} µs | {:.0} µs (GetRule max) | |", create.max, get.max);
    let mib = |kib: u64| kib as f64 / 1024.0;
    crate::report::figure("idle RSS, empty catalog", mib(rss_empty), "MiB");
    crate::report::against(format!("idle RSS, {rules} rules"), mib(rss_full), "MiB", "empty catalog", mib(rss_empty));
    crate::report::figure(
        "memory per running rule",
        (mib(rss_full) - mib(rss_empty)) * 1024.0 / rules.max(1) as f64,
        "KiB",
    );
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    crate::report::against(
        format!("start-up to SERVING, {rules} rules"),
        ms(startup_full),
        "ms",
        "empty catalog",
        ms(startup_empty),
    );
    crate::report::against(format!("CreateRule p50 over {rules} rules"), create.p50, "µs", "GetRule p50", get.p50);
    crate::report::against(format!("CreateRule p99 over {rules} rules"), create.p99, "µs", "GetRule p99", get.p99);
    Ok(())
}
