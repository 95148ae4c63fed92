//! TLS to a broker, with eKuiper's properties: `rootCaPath` (default: the
//! system's CAs), `certificationPath` and `privateKeyPath` for a client
//! certificate, and `insecureSkipVerify`. The files are read when the stream
//! or rule is created, from inside the server's file roots: a client may not
//! make the server read any file.

use std::sync::Arc;

use oort_engine::ConnectorError;
use oort_policy::{FileRoots, PathUse};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

/// The TLS properties of a connection, with eKuiper's names.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TlsProps {
    /// The client certificate (PEM), inside the server's file roots.
    pub certification_path: Option<String>,
    /// The client certificate's private key (PEM), inside the file roots.
    pub private_key_path: Option<String>,
    /// The CA certificates (PEM) the broker's certificate must chain to,
    /// inside the file roots; default: the system's.
    pub root_ca_path: Option<String>,
    /// Accept any broker certificate. For tests only: anyone on the path can
    /// then read and change the traffic.
    pub insecure_skip_verify: bool,
}

/// The names of [`TlsProps`], for the connectors' lists of known properties.
pub const PROPS: [&str; 4] = ["certificationPath", "privateKeyPath", "rootCaPath", "insecureSkipVerify"];

impl TlsProps {
    /// Whether any TLS property is set.
    pub fn any(&self) -> bool {
        *self != Self::default()
    }

    /// The rustls configuration of these properties; `what` (`mqtt`, `nats`)
    /// and `server` name the connection in messages.
    pub(crate) fn client_config(
        &self,
        files: &FileRoots,
        what: &str,
        server: &str,
    ) -> Result<Arc<ClientConfig>, ConnectorError> {
        let error = |message: String| ConnectorError::Config(format!("{what}: {message}"));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| error(format!("TLS: {e}")))?;
        let builder = if self.insecure_skip_verify {
            tracing::warn!(server, "{what}: insecureSkipVerify: the broker's certificate is not checked");
            builder.dangerous().with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        } else if let Some(path) = &self.root_ca_path {
            let mut roots = RootCertStore::empty();
            for cert in certificates(files, "rootCaPath", path).map_err(error)? {
                roots.add(cert).map_err(|e| error(format!("rootCaPath {path:?}: {e}")))?;
            }
            builder.with_root_certificates(roots)
        } else {
            use rustls_platform_verifier::BuilderVerifierExt;
            builder.with_platform_verifier().map_err(|e| error(format!("TLS: {e}")))?
        };
        let tls = match (&self.certification_path, &self.private_key_path) {
            (Some(cert), Some(key)) => {
                let chain = certificates(files, "certificationPath", cert).map_err(error)?;
                let key_path = read_path(files, "privateKeyPath", key).map_err(error)?;
                let key = PrivateKeyDer::from_pem_file(&key_path)
                    .map_err(|e| error(format!("privateKeyPath {key:?}: {e}")))?;
                builder.with_client_auth_cert(chain, key).map_err(|e| error(format!("client certificate: {e}")))?
            }
            (None, None) => builder.with_no_client_auth(),
            _ => return Err(error("a client certificate needs both certificationPath and privateKeyPath".into())),
        };
        Ok(Arc::new(tls))
    }
}

fn read_path(files: &FileRoots, key: &str, path: &str) -> Result<std::path::PathBuf, String> {
    files.resolve(path, PathUse::ReadFile).map_err(|e| format!("{key}: {e}"))
}

/// The certificates of a PEM file; none is an error.
fn certificates(files: &FileRoots, key: &str, path: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let file = read_path(files, key, path)?;
    let certs = CertificateDer::pem_file_iter(&file)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{key} {path:?}: {e}"))?;
    if certs.is_empty() {
        return Err(format!("{key} {path:?} holds no PEM certificate"));
    }
    Ok(certs)
}

/// `insecureSkipVerify`: any certificate, though the handshake's signatures
/// are still checked.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
