//! [`EtcdServer`]: a real etcd for a test, on free loopback ports, with its
//! data in a temporary directory; stopped when dropped.

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

impl EtcdServer {
    /// Starts `etcd` (Debian's `etcd-server`, installed by
    /// scripts/install-brokers.sh) and waits until it takes connections.
    pub fn start() -> Self {
        let data = tempfile::tempdir().expect("a temporary directory");
        let (client, peer) = (free_port(), free_port());
        let client_url = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let child = Command::new("etcd")
            .arg("--data-dir")
            .arg(data.path())
            .args(["--name", "test", "--listen-client-urls", &client_url, "--advertise-client-urls", &client_url])
            .args(["--listen-peer-urls", &peer_url, "--initial-advertise-peer-urls", &peer_url])
            .args(["--initial-cluster", &format!("test={peer_url}"), "--log-level", "error"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the etcd tests need etcd (`apt-get install -y etcd-server`)");
        let endpoint = format!("127.0.0.1:{client}");
        let address: SocketAddr = endpoint.parse().expect("an address");
        let deadline = Instant::now() + START;
        while TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_err() {
            assert!(Instant::now() < deadline, "etcd did not serve within {START:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
        EtcdServer { endpoint, child, _data: data }
    }
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
