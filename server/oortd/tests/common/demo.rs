//! The example external service of `testdata/external/` (Python: grpcio and the
//! standard library's HTTP server), started by the tests with the venv that
//! `testdata/external/setup.sh` creates.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// `testdata/external/` of the workspace.
pub fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/external")
}

/// A running demo service, stopped when dropped.
pub struct Demo {
    child: Child,
    /// Port of its gRPC server.
    pub grpc_port: u16,
    /// Port of its HTTP server.
    pub http_port: u16,
}

impl Demo {
    /// Starts the service on free ports and waits for its READY line.
    pub fn start() -> Demo {
        let python = dir().join(".venv/bin/python");
        assert!(
            python.exists(),
            "the external test services need their Python venv: run testdata/external/setup.sh first (missing {})",
            python.display()
        );
        let include = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../oort-external/proto");
        let mut child = Command::new(python)
            .arg(dir().join("demo_server.py"))
            // Stops with this test process, even one killed before its Drop runs.
            .arg("--exit-on-stdin-close")
            .arg("--include")
            .arg(include)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the demo service starts");
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(rest) = line.strip_prefix("READY ") {
                    let port = |key: &str| {
                        rest.split_whitespace()
                            .find_map(|kv| kv.strip_prefix(key))
                            .and_then(|p| p.parse::<u16>().ok())
                            .expect("READY names its ports")
                    };
                    let _ = tx.send((port("grpc="), port("http=")));
                }
            }
        });
        let (grpc_port, http_port) =
            rx.recv_timeout(Duration::from_secs(60)).expect("the demo service prints READY within 60 s");
        Demo { child, grpc_port, http_port }
    }

    /// `demo.json` with this service's ports.
    pub fn description_json(&self) -> String {
        std::fs::read_to_string(dir().join("demo.json"))
            .expect("demo.json")
            .replace("GRPC_PORT", &self.grpc_port.to_string())
            .replace("HTTP_PORT", &self.http_port.to_string())
    }

    /// Stops the service (its port then refuses connections).
    pub fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The demo's .proto files, named as they import each other.
pub fn proto_files() -> Vec<oort_proto::v1::ProtoFile> {
    ["demo/v1/demo.proto", "demo/v1/types.proto"]
        .iter()
        .map(|name| oort_proto::v1::ProtoFile {
            name: (*name).into(),
            content: std::fs::read_to_string(dir().join("proto").join(name)).expect("demo proto"),
        })
        .collect()
}
