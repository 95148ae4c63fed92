//! Downloading a plugin archive from an http(s) URL, through the server's
//! egress policy: internal addresses are refused unless `egress_allow` names
//! them, so that the API cannot be used to reach into the network the server
//! sits in. The address checked is the address connected to (no second DNS
//! lookup), and redirects are not followed.

use std::time::Duration;

use oort_policy::EgressPolicy;

use crate::archive::MAX_UNPACKED_BYTES;
use crate::error::HostError;

/// Downloads the archive at `url`.
pub async fn download(url: &str, egress: &EgressPolicy) -> Result<Vec<u8>, HostError> {
    let parsed = reqwest::Url::parse(url).map_err(|e| HostError::Invalid(format!("bad URL '{url}': {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(HostError::Invalid(format!("bad URL '{url}': only http and https are supported")));
    }
    let host = parsed.host_str().ok_or_else(|| HostError::Invalid(format!("bad URL '{url}': no host")))?.to_owned();
    let port = parsed.port_or_known_default().unwrap_or(80);
    let bare = host.trim_start_matches('[').trim_end_matches(']').to_owned();
    let addrs = egress.resolve(&bare, port).await.map_err(|e| match e {
        oort_policy::EgressError::Resolve { .. } => HostError::Download(e.to_string()),
        refused => HostError::Refused(refused.to_string()),
    })?;
    let addr = addrs.first().copied().ok_or_else(|| HostError::Download(format!("{host} has no address")))?;
    // reqwest is built without a TLS crypto provider (ring rather than its aws-lc-rs); an
    // installed one stays.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(120))
        .resolve(&bare, addr)
        .build()
        .map_err(|e| HostError::Download(e.to_string()))?;
    let mut response = client.get(parsed).send().await.map_err(|e| HostError::Download(e.to_string()))?;
    if !response.status().is_success() {
        return Err(HostError::Download(format!("{url} answered {}", response.status())));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| HostError::Download(e.to_string()))? {
        body.extend_from_slice(&chunk);
        if body.len() as u64 > MAX_UNPACKED_BYTES {
            return Err(HostError::Download(format!("{url} is larger than {MAX_UNPACKED_BYTES} bytes")));
        }
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn loopback_urls_are_refused_by_default() {
        let policy = EgressPolicy::default();
        let error = download("http://127.0.0.1:9/x.zip", &policy).await.unwrap_err();
        assert!(matches!(error, HostError::Refused(_)), "{error}");
        let error = download("http://localhost:9/x.zip", &policy).await.unwrap_err();
        assert!(matches!(error, HostError::Refused(_)), "a name that resolves to loopback: {error}");
        assert!(matches!(download("ftp://example.com/x.zip", &policy).await.unwrap_err(), HostError::Invalid(_)));
    }
}
