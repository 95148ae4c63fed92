//! Turning `--server` and the credentials into a connected gRPC channel that
//! sends `authorization: Bearer <token>` on every call.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::error::{Error, error_chain};

/// How long to wait for the TCP (and HTTP/2) connection, so that a wrong
/// address fails quickly instead of hanging a script.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The file, in the server's data directory, of the admin token it generates.
pub const ADMIN_TOKEN_FILE: &str = "admin.token";

/// A channel to oortd that carries the token.
pub type Conn = InterceptedService<Channel, Bearer>;

/// Adds `authorization: Bearer <token>` to each request (nothing without a token).
#[derive(Clone)]
pub struct Bearer(Option<MetadataValue<Ascii>>);

impl Interceptor for Bearer {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request.metadata_mut().insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// Where to connect and with what.
#[derive(Debug, Clone, Default)]
pub struct Target {
    /// `host:port`, `http://host:port` or `https://host:port`.
    pub server: String,
    /// `--token`/`OORT_TOKEN`; else read from `<data_dir>/admin.token`.
    pub token: Option<String>,
    /// Where the server keeps its data, to find its generated admin token.
    pub data_dir: PathBuf,
    /// CA (PEM) that signed the server's certificate; implies TLS.
    pub ca_cert: Option<PathBuf>,
    /// Client certificate and key (PEM), for mTLS.
    pub identity: Option<(PathBuf, PathBuf)>,
}

impl Target {
    /// The token to send: the one given, else the server's generated admin
    /// token if this user can read it, else none (the server will say so).
    pub fn token(&self) -> Result<Option<String>, Error> {
        if let Some(token) = self.token.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
            return Ok(Some(token.to_string()));
        }
        let path = self.data_dir.join(ADMIN_TOKEN_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok(Some(text.trim().to_string()).filter(|t| !t.is_empty())),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(Error::usage(format!("cannot read the admin token {}: {error}", path.display()))),
        }
    }
}

/// Accepts `host:port` as well as `http(s)://host:port`, because users type the
/// former and tonic needs the latter. `tls` makes a bare `host:port` https.
pub fn normalize_address(server: &str, tls: bool) -> Result<String, Error> {
    let server = server.trim();
    if server.is_empty() {
        return Err(Error::usage("--server is empty; expected host:port or http(s)://host:port"));
    }
    if server.contains("://") && !server.starts_with("http://") && !server.starts_with("https://") {
        return Err(Error::usage(format!(
            "--server {server}: unsupported scheme; expected host:port or http(s)://host:port"
        )));
    }
    if tls && server.starts_with("http://") {
        return Err(Error::usage(format!("--server {server}: --ca-cert means TLS; use https:// or host:port")));
    }
    let address = match server.contains("://") {
        true => server.to_string(),
        false if tls => format!("https://{server}"),
        false => format!("http://{server}"),
    };
    Ok(address.trim_end_matches('/').to_string())
}

/// Connects eagerly, so that an unreachable server is reported as such (with
/// the address) rather than as the failure of whatever request came first.
pub async fn connect(target: &Target, timeout: Option<std::time::Duration>) -> Result<Conn, Error> {
    let address = normalize_address(&target.server, target.ca_cert.is_some())?;
    let mut endpoint = Endpoint::from_shared(address.clone())
        .map_err(|e| Error::usage(format!("--server {}: invalid address: {}", target.server, error_chain(&e))))?
        .connect_timeout(CONNECT_TIMEOUT);
    if let Some(timeout) = timeout {
        // Each call's deadline, also sent to the server (grpc-timeout).
        endpoint = endpoint.timeout(timeout);
    }
    if address.starts_with("https://") {
        endpoint = endpoint.tls_config(tls_config(target)?).map_err(|e| Error::usage(error_chain(&e)))?;
    }
    let token = match target.token()? {
        Some(token) => Some(
            format!("Bearer {token}")
                .parse()
                .map_err(|_| Error::usage("the token has characters a header cannot carry"))?,
        ),
        None => None,
    };
    let channel = endpoint.connect().await.map_err(|e| Error::Connect { addr: address, cause: error_chain(&e) })?;
    Ok(InterceptedService::new(channel, Bearer(token)))
}

fn tls_config(target: &Target) -> Result<ClientTlsConfig, Error> {
    let read =
        |path: &Path| std::fs::read(path).map_err(|e| Error::usage(format!("cannot read {}: {e}", path.display())));
    let ca = target.ca_cert.as_deref().ok_or_else(|| {
        Error::usage("https:// needs --ca-cert (or OORT_CA_CERT): the CA that signed the server's certificate")
    })?;
    let mut config = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(read(ca)?));
    if let Some((cert, key)) = &target.identity {
        config = config.identity(Identity::from_pem(read(cert)?, read(key)?));
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_gets_a_scheme() {
        assert_eq!(normalize_address("127.0.0.1:9081", false).unwrap(), "http://127.0.0.1:9081");
        assert_eq!(normalize_address("localhost:1", false).unwrap(), "http://localhost:1");
        assert_eq!(normalize_address("localhost:1", true).unwrap(), "https://localhost:1");
    }

    #[test]
    fn urls_are_kept() {
        assert_eq!(normalize_address("http://10.0.0.1:9081/", false).unwrap(), "http://10.0.0.1:9081");
        assert_eq!(normalize_address("https://h:1", true).unwrap(), "https://h:1");
    }

    #[test]
    fn other_schemes_and_plaintext_with_a_ca_are_usage_errors() {
        assert!(matches!(normalize_address("tcp://h:1", false), Err(Error::Usage(_))));
        assert!(matches!(normalize_address("  ", false), Err(Error::Usage(_))));
        assert!(matches!(normalize_address("http://h:1", true), Err(Error::Usage(_))));
    }

    #[test]
    fn the_token_comes_from_the_flag_else_the_data_dir() {
        let dir = tempfile::tempdir().unwrap();
        let mut target = Target { data_dir: dir.path().into(), ..Target::default() };
        assert_eq!(target.token().unwrap(), None);
        std::fs::write(dir.path().join(ADMIN_TOKEN_FILE), "oort_abc\n").unwrap();
        assert_eq!(target.token().unwrap().as_deref(), Some("oort_abc"));
        target.token = Some("given".into());
        assert_eq!(target.token().unwrap().as_deref(), Some("given"));
    }

    #[tokio::test]
    async fn unreachable_server_names_the_address() {
        // Port 1 on loopback is essentially never listening.
        let target = Target { server: "127.0.0.1:1".into(), ..Target::default() };
        let err = connect(&target, None).await.expect_err("nothing listens on port 1");
        let text = err.to_string();
        assert!(text.contains("http://127.0.0.1:1"), "{text}");
        assert!(matches!(err, Error::Connect { .. }));
    }
}
