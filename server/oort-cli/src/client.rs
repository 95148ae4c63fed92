//! Turning `--server` into a connected gRPC channel.

use std::time::Duration;

use tonic::transport::{Channel, Endpoint};

use crate::error::{Error, error_chain};

/// How long to wait for the TCP (and HTTP/2) connection, so that a wrong
/// address fails quickly instead of hanging a script.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Accepts `host:port` as well as `http://host:port`, because users type the
/// former and tonic needs the latter.
pub fn normalize_address(server: &str) -> Result<String, Error> {
    let server = server.trim();
    if server.is_empty() {
        return Err(Error::usage("--server is empty; expected host:port or http://host:port"));
    }
    if server.starts_with("https://") {
        return Err(Error::usage(format!("--server {server}: TLS is not supported by this client; use http://")));
    }
    if server.contains("://") && !server.starts_with("http://") {
        return Err(Error::usage(format!(
            "--server {server}: unsupported scheme; expected host:port or http://host:port"
        )));
    }
    let address = if server.starts_with("http://") { server.to_string() } else { format!("http://{server}") };
    Ok(address.trim_end_matches('/').to_string())
}

/// Connects eagerly, so that an unreachable server is reported as such (with
/// the address) rather than as the failure of whatever request came first.
pub async fn connect(server: &str) -> Result<Channel, Error> {
    let address = normalize_address(server)?;
    let endpoint = Endpoint::from_shared(address.clone())
        .map_err(|e| Error::usage(format!("--server {server}: invalid address: {}", error_chain(&e))))?
        .connect_timeout(CONNECT_TIMEOUT);
    endpoint.connect().await.map_err(|e| Error::Connect { addr: address, cause: error_chain(&e) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_gets_a_scheme() {
        assert_eq!(normalize_address("127.0.0.1:9081").unwrap(), "http://127.0.0.1:9081");
        assert_eq!(normalize_address("localhost:1").unwrap(), "http://localhost:1");
    }

    #[test]
    fn http_url_is_kept() {
        assert_eq!(normalize_address("http://10.0.0.1:9081/").unwrap(), "http://10.0.0.1:9081");
    }

    #[test]
    fn https_and_other_schemes_are_usage_errors() {
        assert!(matches!(normalize_address("https://h:1"), Err(Error::Usage(_))));
        assert!(matches!(normalize_address("tcp://h:1"), Err(Error::Usage(_))));
        assert!(matches!(normalize_address("  "), Err(Error::Usage(_))));
    }

    #[tokio::test]
    async fn unreachable_server_names_the_address() {
        // Port 1 on loopback is essentially never listening.
        let err = connect("127.0.0.1:1").await.expect_err("nothing listens on port 1");
        let text = err.to_string();
        assert!(text.contains("http://127.0.0.1:1"), "{text}");
        assert!(matches!(err, Error::Connect { .. }));
    }
}
