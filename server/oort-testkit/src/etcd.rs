//! [`EtcdServer`]: a real etcd for a test, on free loopback ports, with its
//! data in a temporary directory; stopped when dropped. [`EtcdCluster`]:
//! several such members forming one cluster, any of which can be killed.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long etcd may take to serve.
const START: Duration = Duration::from_secs(20);

/// One etcd member, a cluster of its own.
pub struct EtcdServer {
    /// `127.0.0.1:<port>` of its client endpoint.
    pub endpoint: String,
    child: Child,
    _data: tempfile::TempDir,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

/// A member about to start: its name and ports.
struct Member {
    name: String,
    client: u16,
    peer: u16,
}

impl Member {
    fn new(name: String) -> Self {
        Member { name, client: free_port(), peer: free_port() }
    }

    fn peer_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.peer)
    }

    /// Spawns it as one of `cluster` (`name=peer-url,...`).
    fn spawn(&self, cluster: &str) -> EtcdServer {
        let data = tempfile::tempdir().expect("a temporary directory");
        let client_url = format!("http://127.0.0.1:{}", self.client);
        let peer_url = self.peer_url();
        let child = Command::new("etcd")
            .arg("--data-dir")
            .arg(data.path())
            .args(["--name", &self.name, "--listen-client-urls", &client_url, "--advertise-client-urls", &client_url])
            .args(["--listen-peer-urls", &peer_url, "--initial-advertise-peer-urls", &peer_url])
            .args(["--initial-cluster", cluster, "--log-level", "error"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the etcd tests need etcd (`apt-get install -y etcd-server`)");
        EtcdServer { endpoint: format!("127.0.0.1:{}", self.client), child, _data: data }
    }
}

/// Waits until `endpoint` takes connections.
fn wait_serving(endpoint: &str) {
    let address: SocketAddr = endpoint.parse().expect("an address");
    let deadline = Instant::now() + START;
    while TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_err() {
        assert!(Instant::now() < deadline, "etcd did not serve within {START:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl EtcdServer {
    /// Starts `etcd` (Debian's `etcd-server`, installed by
    /// scripts/install-brokers.sh) and waits until it takes connections.
    pub fn start() -> Self {
        let member = Member::new("test".into());
        let server = member.spawn(&format!("test={}", member.peer_url()));
        wait_serving(&server.endpoint);
        server
    }
}

/// Several etcd members forming one cluster on loopback.
pub struct EtcdCluster {
    /// The members, `None` once killed.
    pub members: Vec<Option<EtcdServer>>,
}

impl EtcdCluster {
    /// Starts `size` members and waits until each takes connections.
    pub fn start(size: usize) -> Self {
        let members: Vec<Member> = (0..size).map(|i| Member::new(format!("m{i}"))).collect();
        let cluster = members.iter().map(|m| format!("{}={}", m.name, m.peer_url())).collect::<Vec<_>>().join(",");
        let servers: Vec<EtcdServer> = members.iter().map(|m| m.spawn(&cluster)).collect();
        for server in &servers {
            wait_serving(&server.endpoint);
        }
        EtcdCluster { members: servers.into_iter().map(Some).collect() }
    }

    /// Every member's client endpoint, comma-separated (as `--catalog etcd://…` takes them).
    pub fn endpoints(&self) -> String {
        let endpoints = self.members.iter().flatten().map(|m| m.endpoint.as_str());
        endpoints.collect::<Vec<_>>().join(",")
    }

    /// Kills member `index` (SIGKILL).
    pub fn kill(&mut self, index: usize) {
        drop(self.members[index].take());
    }
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
