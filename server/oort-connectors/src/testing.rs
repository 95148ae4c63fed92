//! Test support (feature `testing`): a real MQTT broker (Debian's mosquitto,
//! `apt-get install -y mosquitto`) started on a free port of 127.0.0.1 and
//! killed on drop, and a plain rumqttc client to talk to it. Used by this
//! crate's tests and by the server's end-to-end tests.

#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

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
}

impl Broker {
    /// A broker on a free port that does not run yet (see [`Broker::run`]).
    pub fn not_started() -> Self {
        Broker { port: free_port(), dir: tempfile::tempdir().unwrap(), child: None }
    }

    /// Starts a broker on a free port.
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut broker = Broker { port: free_port(), dir, child: None };
        broker.run().await;
        broker
    }

    pub fn url(&self) -> String {
        format!("tcp://127.0.0.1:{}", self.port)
    }

    /// Starts mosquitto and waits until it accepts connections.
    pub async fn run(&mut self) {
        let conf = self.dir.path().join("mosquitto.conf");
        std::fs::write(&conf, format!("listener {} 127.0.0.1\nallow_anonymous true\npersistence false\n", self.port))
            .unwrap();
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

/// A plain rumqttc client, its event loop polled in a task that forwards what
/// the broker sends.
pub struct TestClient {
    client: AsyncClient,
    events: mpsc::UnboundedReceiver<Packet>,
    task: tokio::task::JoinHandle<()>,
}

impl TestClient {
    pub async fn connect(broker: &Broker) -> Self {
        let options = MqttOptions::new(format!("test-{:08x}", fastrand::u32(..)), "127.0.0.1", broker.port);
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
