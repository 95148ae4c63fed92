//! Which property, header or option names carry a secret: their values are
//! write-only through the API (returned as `***`), and refused where they
//! would be shown (a stream's options).

/// Whether a property, header or option of this name carries a secret.
pub fn is_secret(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    const EXACT: [&str; 5] = ["authorization", "proxy-authorization", "cookie", "x-api-key", "apikey"];
    const PARTS: [&str; 7] = ["token", "password", "passwd", "secret", "credential", "api-key", "api_key"];
    EXACT.contains(&key.as_str()) || PARTS.iter().any(|part| key.contains(part))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_named_so() {
        for secret in ["Authorization", "password", "saslPassword", "X-Api-Key", "refresh_token", "clientSecret"] {
            assert!(is_secret(secret), "{secret}");
        }
        for plain in ["Accept", "server", "username", "topic"] {
            assert!(!is_secret(plain), "{plain}");
        }
    }
}
