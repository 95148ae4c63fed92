//! Downloading a plugin archive from an http(s) URL. Private, loopback and
//! link-local addresses are refused unless the configuration allows them, so
//! that the API cannot be used to reach into the network the server sits in;
//! the address checked is the address connected to (no second DNS lookup), and
//! redirects are not followed.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::archive::MAX_UNPACKED_BYTES;
use crate::error::HostError;

/// Whether an address is private, loopback, link-local or otherwise not public.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64 // 100.64/10, carrier-grade NAT
        }
        IpAddr::V6(v6) => {
            let segments = v6.segments();
            v6.is_loopback()
                || v6.is_unspecified()
                || (segments[0] & 0xfe00) == 0xfc00 // unique local
                || (segments[0] & 0xffc0) == 0xfe80 // link-local
                || v6.to_ipv4_mapped().is_some_and(|v4| is_private(IpAddr::V4(v4)))
        }
    }
}

/// Downloads the archive at `url`.
pub async fn download(url: &str, allow_private: bool) -> Result<Vec<u8>, HostError> {
    let parsed = reqwest::Url::parse(url).map_err(|e| HostError::Invalid(format!("bad URL '{url}': {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(HostError::Invalid(format!("bad URL '{url}': only http and https are supported")));
    }
    let host = parsed.host_str().ok_or_else(|| HostError::Invalid(format!("bad URL '{url}': no host")))?.to_owned();
    let port = parsed.port_or_known_default().unwrap_or(80);
    let bare = host.trim_start_matches('[').trim_end_matches(']').to_owned();
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((bare.as_str(), port))
        .await
        .map_err(|e| HostError::Download(format!("cannot resolve {host}: {e}")))?
        .collect();
    let addr = addrs.first().copied().ok_or_else(|| HostError::Download(format!("{host} has no address")))?;
    if !allow_private && let Some(private) = addrs.iter().find(|a| is_private(a.ip())) {
        return Err(HostError::Refused(format!(
            "refusing to download from {host} ({}): private and loopback addresses are disabled (set plugin_allow_private_urls = true in oort.toml to allow them)",
            private.ip()
        )));
    }
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

    #[test]
    fn private_addresses_are_recognised() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.0.1",
            "172.16.0.1",
            "169.254.169.254",
            "::1",
            "fd00::1",
            "::ffff:10.0.0.1",
            "0.0.0.0",
        ] {
            assert!(is_private(private.parse().unwrap()), "{private}");
        }
        for public in ["1.1.1.1", "2606:4700::1111"] {
            assert!(!is_private(public.parse().unwrap()), "{public}");
        }
    }

    #[tokio::test]
    async fn loopback_urls_are_refused_by_default() {
        let error = download("http://127.0.0.1:9/x.zip", false).await.unwrap_err();
        assert!(matches!(error, HostError::Refused(_)), "{error}");
        assert!(matches!(download("ftp://example.com/x.zip", false).await.unwrap_err(), HostError::Invalid(_)));
    }
}
