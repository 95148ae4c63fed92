//! Test support (feature `testing`): a real MQTT broker (Debian's mosquitto,
//! `apt-get install -y mosquitto`) started on a free port of 127.0.0.1 and
//! killed on drop, and a plain rumqttc client to talk to it. Used by this
//! crate's tests and by the server's end-to-end tests.

#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

mod sql;
pub use sql::{PG_PASSWORD, PG_USER, PostgresServer, sqlite_execute, sqlite_rows};

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio::sync::mpsc;
use tokio::time::{Instant, timeout};

/// Bound of every wait on the broker or a connector.
pub const WAIT: Duration = Duration::from_secs(20);

/// The mosquitto binary, or a panic that says how to install it.
pub fn mosquitto() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let candidates = std::iter::once(PathBuf::from("/usr/sbin/mosquitto"))
        .chain(std::env::split_paths(&path).map(|d| d.join("mosquitto")));
    for path in candidates {
        if path.is_file() {
            return path;
        }
    }
    panic!("the mqtt tests need a real broker: install mosquitto (`apt-get install -y mosquitto`)");
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A mosquitto process listening on 127.0.0.1:`port`; killed on drop.
pub struct Broker {
    /// The port it listens on, on 127.0.0.1.
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
    /// The settings of its listener (`mosquitto.conf` lines).
    settings: String,
}

impl Broker {
    /// A broker on a free port that does not run yet (see [`Broker::run`]).
    pub fn not_started() -> Self {
        Broker {
            port: free_port(),
            dir: tempfile::tempdir().unwrap(),
            child: None,
            settings: "allow_anonymous true\n".into(),
        }
    }

    /// Starts a broker on a free port.
    pub async fn start() -> Self {
        let mut broker = Self::not_started();
        broker.run().await;
        broker
    }

    /// Starts a broker that takes only `user` with `password`.
    pub async fn start_with_password(user: &str, password: &str) -> Self {
        let mut broker = Self::not_started();
        let file = broker.dir.path().join("passwd");
        let made = Command::new("mosquitto_passwd").arg("-b").arg("-c").arg(&file).args([user, password]).status();
        assert!(made.unwrap().success(), "mosquitto_passwd (Debian's mosquitto package) makes the password file");
        broker.settings = format!("allow_anonymous false\npassword_file {}\n", file.display());
        broker.run().await;
        broker
    }

    /// Starts a broker that speaks TLS only, with a certificate for
    /// 127.0.0.1 signed by a CA of its own, whose PEM is [`Broker::ca_pem`].
    pub async fn start_tls() -> Self {
        let mut broker = Self::not_started();
        certificates(broker.dir.path(), "client");
        let path = |name: &str| broker.dir.path().join(name).display().to_string();
        broker.settings =
            format!("allow_anonymous true\ncertfile {}\nkeyfile {}\n", path("server.pem"), path("server.key"));
        broker.run().await;
        broker
    }

    /// The CA of a TLS broker's certificate, PEM.
    pub fn ca_pem(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("ca.pem")).unwrap()
    }

    pub fn url(&self) -> String {
        format!("tcp://127.0.0.1:{}", self.port)
    }

    /// Starts mosquitto and waits until it accepts connections.
    pub async fn run(&mut self) {
        let conf = self.dir.path().join("mosquitto.conf");
        let listener = format!("persistence false\nlistener {} 127.0.0.1\n{}", self.port, self.settings);
        std::fs::write(&conf, listener).unwrap();
        let log = self.dir.path().join("mosquitto.log");
        let deadline = Instant::now() + WAIT;
        loop {
            let mut child = Command::new(mosquitto())
                .arg("-c")
                .arg(&conf)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).unwrap())
                .spawn()
                .expect("start mosquitto");
            // Polls until the port accepts; a broker that exited (port not yet free) is started again.
            loop {
                if tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await.is_ok() {
                    self.child = Some(child);
                    return;
                }
                if child.try_wait().unwrap().is_some() {
                    break;
                }
                assert!(Instant::now() < deadline, "mosquitto not ready: {}", std::fs::read_to_string(&log).unwrap());
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            assert!(Instant::now() < deadline, "mosquitto exited: {}", std::fs::read_to_string(&log).unwrap());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills the broker and starts a new one on the same port.
    pub async fn restart(&mut self) {
        self.kill();
        self.run().await;
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A CA (`ca.pem`), a server certificate for 127.0.0.1 and localhost
/// (`server.pem`, `server.key`) and a client certificate with Common Name
/// `common_name` (`client.pem`, `client.key`), written into `dir`.
pub fn certificates(dir: &std::path::Path, common_name: &str) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, "oort test CA");
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    let server = vec!["127.0.0.1".to_string(), "localhost".to_string()];
    for (name, sans, cn) in [("server", server, "oortd"), ("client", vec![], common_name)] {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(sans).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        let cert = params.signed_by(&key, &ca).unwrap();
        std::fs::write(dir.join(format!("{name}.pem")), cert.pem()).unwrap();
        std::fs::write(dir.join(format!("{name}.key")), key.serialize_pem()).unwrap();
    }
}

/// A plain rumqttc client, its event loop polled in a task that forwards what
/// the broker sends.
pub struct TestClient {
    client: AsyncClient,
    events: mpsc::UnboundedReceiver<Packet>,
    task: tokio::task::JoinHandle<()>,
}

impl TestClient {
    pub async fn connect(broker: &Broker) -> Self {
        Self::connect_with(broker, None, false).await
    }

    /// A client that logs in as `user` with `password`.
    pub async fn connect_as(broker: &Broker, user: &str, password: &str) -> Self {
        Self::connect_with(broker, Some((user, password)), false).await
    }

    /// A client of a TLS broker ([`Broker::start_tls`]) that trusts its CA.
    pub async fn connect_tls(broker: &Broker) -> Self {
        Self::connect_with(broker, None, true).await
    }

    async fn connect_with(broker: &Broker, credentials: Option<(&str, &str)>, tls: bool) -> Self {
        let mut options = MqttOptions::new(format!("test-{:08x}", fastrand::u32(..)), "127.0.0.1", broker.port);
        if let Some((user, password)) = credentials {
            options.set_credentials(user, password);
        }
        if tls {
            use rustls::pki_types::CertificateDer;
            use rustls::pki_types::pem::PemObject;
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(broker.ca_pem().as_bytes()) {
                roots.add(cert.unwrap()).unwrap();
            }
            let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth();
            let tls = rumqttc::TlsConfiguration::Rustls(std::sync::Arc::new(config));
            options.set_transport(rumqttc::Transport::tls_with_config(tls));
        }
        let (client, mut eventloop) = AsyncClient::new(options, 64);
        let (tx, mut events) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(packet)) => {
                        if tx.send(packet).is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        });
        let connected = timeout(WAIT, async {
            while let Some(packet) = events.recv().await {
                if matches!(packet, Packet::ConnAck(_)) {
                    return;
                }
            }
        });
        connected.await.expect("test client connects");
        TestClient { client, events, task }
    }

    pub async fn subscribe(&mut self, filter: &str, qos: QoS) {
        self.client.subscribe(filter, qos).await.unwrap();
        let subscribed = timeout(WAIT, async {
            while let Some(packet) = self.events.recv().await {
                if matches!(packet, Packet::SubAck(_)) {
                    return;
                }
            }
        });
        subscribed.await.expect("the broker acknowledges the subscription");
    }

    pub async fn publish(&self, topic: &str, payload: &[u8]) {
        self.client.publish(topic, QoS::AtLeastOnce, false, payload.to_vec()).await.unwrap();
    }

    /// The next message: (topic, payload, qos).
    pub async fn message(&mut self) -> (String, Vec<u8>, QoS) {
        let next = timeout(WAIT, async {
            while let Some(packet) = self.events.recv().await {
                if let Packet::Publish(p) = packet {
                    return (p.topic, p.payload.to_vec(), p.qos);
                }
            }
            panic!("test client stopped");
        });
        next.await.expect("a message arrives")
    }
}

impl Drop for TestClient {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The nats-server binary (`scripts/install-brokers.sh` builds it with `go
/// install`), or a panic that says how to get it.
pub fn nats_server() -> PathBuf {
    let gopath = Command::new("go").args(["env", "GOPATH"]).output().ok();
    let gobin = gopath.map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()).join("bin"));
    let path = std::env::var_os("PATH").unwrap_or_default();
    let candidates = gobin.into_iter().chain(std::env::split_paths(&path)).map(|d| d.join("nats-server"));
    for path in candidates {
        if path.is_file() {
            return path;
        }
    }
    panic!("the nats tests need a real server: run scripts/install-brokers.sh (go install nats-server)");
}

/// A nats-server with JetStream on a free port of 127.0.0.1; killed on drop.
pub struct NatsServer {
    /// The port it listens on, on 127.0.0.1.
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
    /// `--user` and `--pass`, when it wants them.
    credentials: Option<(String, String)>,
}

impl NatsServer {
    /// Starts a server that takes anyone.
    pub async fn start() -> Self {
        Self::start_with(None).await
    }

    /// Starts a server that takes only `user` with `password`.
    pub async fn start_with_password(user: &str, password: &str) -> Self {
        Self::start_with(Some((user.to_owned(), password.to_owned()))).await
    }

    async fn start_with(credentials: Option<(String, String)>) -> Self {
        let mut server = NatsServer { port: free_port(), dir: tempfile::tempdir().unwrap(), child: None, credentials };
        server.run().await;
        server
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Starts the process (again, on the same port and store) and waits until it accepts connections.
    pub async fn run(&mut self) {
        let log = self.dir.path().join("nats.log");
        let mut command = Command::new(nats_server());
        command.args(["-js", "-a", "127.0.0.1", "-p", &self.port.to_string(), "-sd"]).arg(self.dir.path().join("js"));
        if let Some((user, password)) = &self.credentials {
            command.args(["--user", user, "--pass", password]);
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start nats-server");
        self.child = Some(child);
        let deadline = Instant::now() + WAIT;
        while tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await.is_err() {
            assert!(Instant::now() < deadline, "nats-server not ready: {}", std::fs::read_to_string(&log).unwrap());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A client of this server.
    pub async fn client(&self) -> async_nats::Client {
        let mut options = async_nats::ConnectOptions::new();
        if let Some((user, password)) = &self.credentials {
            options = options.user_and_password(user.clone(), password.clone());
        }
        options.connect(self.url()).await.expect("a client connects to nats-server")
    }

    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A single-node Kafka (KRaft) on a free port of 127.0.0.1, run by
/// `scripts/run-kafka.sh` from the jars `scripts/install-brokers.sh` fetched;
/// killed on drop. Topics are created on first use, with one partition.
pub struct KafkaBroker {
    /// The port clients connect to, on 127.0.0.1.
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl KafkaBroker {
    /// Starts a broker and waits until it serves (3 to 5 s).
    pub async fn start() -> Self {
        Self::launch(None).await
    }

    /// Starts a broker with, besides its plaintext port, a SASL_SSL port
    /// (returned) that takes SCRAM-SHA-512 logins of `user`: its certificate
    /// is `certificates`' server one in `certs` (for 127.0.0.1).
    pub async fn start_tls(certs: &std::path::Path, user: &str, password: &str) -> (Self, u16) {
        let keystore = certs.join("kafka-keystore.pem");
        let key = std::fs::read_to_string(certs.join("server.key")).unwrap();
        let cert = std::fs::read_to_string(certs.join("server.pem")).unwrap();
        std::fs::write(&keystore, format!("{key}{cert}")).unwrap();
        let tls_port = free_port();
        let broker = Self::launch(Some((tls_port, keystore, user.to_owned(), password.to_owned()))).await;
        let deadline = Instant::now() + Duration::from_secs(30);
        while tokio::net::TcpStream::connect(("127.0.0.1", tls_port)).await.is_err() {
            assert!(Instant::now() < deadline, "kafka's TLS port not open");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        (broker, tls_port)
    }

    async fn launch(tls: Option<(u16, PathBuf, String, String)>) -> Self {
        let mut broker = KafkaBroker { port: free_port(), dir: tempfile::tempdir().unwrap(), child: None };
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/run-kafka.sh");
        let log = broker.dir.path().join("kafka.log");
        let mut command = Command::new("bash");
        if let Some((port, keystore, user, password)) = tls {
            command
                .env("KAFKA_TLS_PORT", port.to_string())
                .env("KAFKA_TLS_KEYSTORE", keystore)
                .env("KAFKA_SCRAM_USER", user)
                .env("KAFKA_SCRAM_PASSWORD", password);
        }
        let child = command
            .arg(&script)
            .arg(broker.port.to_string())
            .arg(broker.dir.path().join("data"))
            .env("KAFKA_LOG_LEVEL", "WARN")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(Stdio::from(std::fs::File::options().append(true).open(&log).unwrap()))
            .spawn()
            .expect("start scripts/run-kafka.sh (bash, java 17+)");
        broker.child = Some(child);
        // The port opens when the broker serves.
        let deadline = Instant::now() + Duration::from_secs(60);
        while tokio::net::TcpStream::connect(("127.0.0.1", broker.port)).await.is_err() {
            let exited = broker.child.as_mut().and_then(|c| c.try_wait().ok().flatten());
            let log = || std::fs::read_to_string(&log).unwrap_or_default();
            assert!(exited.is_none(), "kafka exited: {}", log());
            assert!(Instant::now() < deadline, "kafka not ready: {}", log());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        broker
    }

    /// `127.0.0.1:<port>`, the bootstrap server.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for KafkaBroker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A redis-server (Debian's `redis-server`) on a free port of 127.0.0.1,
/// without persistence; killed on drop.
pub struct RedisServer {
    /// The port it listens on, on 127.0.0.1.
    pub port: u16,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts a server, with `requirepass` when a password is given.
    pub async fn start(password: Option<&str>) -> Self {
        Self::launch(password, None).await
    }

    /// Starts a server that takes only TLS, with `certificates`' server
    /// certificate in `certs` (clients are not asked for one).
    pub async fn start_tls(certs: &std::path::Path) -> Self {
        Self::launch(None, Some(certs)).await
    }

    async fn launch(password: Option<&str>, tls: Option<&std::path::Path>) -> Self {
        let port = free_port();
        let mut command = Command::new("redis-server");
        command.args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]);
        match tls {
            None => command.args(["--port", &port.to_string()]),
            Some(certs) => command
                .args(["--port", "0", "--tls-port", &port.to_string(), "--tls-auth-clients", "no"])
                .arg("--tls-cert-file")
                .arg(certs.join("server.pem"))
                .arg("--tls-key-file")
                .arg(certs.join("server.key"))
                .arg("--tls-ca-cert-file")
                .arg(certs.join("ca.pem")),
        };
        if let Some(password) = password {
            command.args(["--requirepass", password]);
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the redis tests need redis-server (`apt-get install -y redis-server`)");
        let deadline = Instant::now() + WAIT;
        while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            assert!(Instant::now() < deadline, "redis-server not ready");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        RedisServer { port, child: Some(child) }
    }

    /// `127.0.0.1:<port>`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
