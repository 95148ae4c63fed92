//! Who is calling, and may they: bearer tokens and client certificates mapped
//! to roles, checked on every RPC by one tower layer in front of all services.
//!
//! - [`rights`]: roles, rights, and the right each method needs.
//! - [`layer`]: the tower layer: `UNAUTHENTICATED`, `PERMISSION_DENIED`, the audit line.
//! - [`token`]: token hashes (`sha256:<hex>`), fresh tokens, `<data_dir>/admin.token`.
//!
//! Tokens are kept as SHA-256 hashes only: they are random and long, so a fast
//! hash is as safe as a slow one, and costs well under a microsecond a call.
//! The comparison is constant-time over every configured token.

pub mod layer;
pub mod rights;
pub mod token;

use std::collections::HashMap;
use std::sync::Arc;

use http::HeaderMap;
use subtle::ConstantTimeEq;

pub use layer::AuthLayer;
pub use rights::{Right, Role};

/// The identity of an authenticated call, put in the request's extensions.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The token's name or the certificate's Common Name.
    pub name: Arc<str>,
    /// What it may do.
    pub role: Role,
}

/// One accepted token, by its hash.
#[derive(Debug, Clone)]
pub struct TokenEntry {
    /// Shown in audit lines and messages, never the token.
    pub name: Arc<str>,
    /// Its role.
    pub role: Role,
    /// SHA-256 of the token.
    pub hash: [u8; 32],
}

/// Why a call is not authenticated. The message never echoes the credential.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    /// No `authorization` metadata and no mapped client certificate.
    #[error(
        "missing credentials: send `authorization: Bearer <token>` (an admin token is written to admin.token in the server's data directory at its first start)"
    )]
    Missing,
    /// `authorization` is not `Bearer <token>`.
    #[error("malformed `authorization` metadata: expected `Bearer <token>`")]
    Malformed,
    /// No configured token has this hash.
    #[error("invalid token")]
    InvalidToken,
}

/// The credentials the server accepts.
#[derive(Debug, Default)]
pub struct Authenticator {
    tokens: Vec<TokenEntry>,
    /// Client certificate Common Name → role (mTLS).
    certificates: HashMap<String, Role>,
}

impl Authenticator {
    /// Accepts `tokens` and the certificates whose Common Name is in `certificates`.
    pub fn new(tokens: Vec<TokenEntry>, certificates: HashMap<String, Role>) -> Self {
        Self { tokens, certificates }
    }

    /// How many tokens are accepted.
    pub fn token_count(&self) -> usize {
        self.tokens.len()
    }

    /// Identifies a call by its bearer token, else by its client certificate.
    /// A token that is present but wrong is refused even if a certificate
    /// would do: a wrong credential is always an error.
    pub fn authenticate(&self, headers: &HeaderMap, common_name: Option<&str>) -> Result<Caller, AuthError> {
        if let Some(value) = headers.get(http::header::AUTHORIZATION) {
            let token = bearer(value.as_bytes()).ok_or(AuthError::Malformed)?;
            return self.by_token(token).ok_or(AuthError::InvalidToken);
        }
        common_name
            .and_then(|name| self.certificates.get_key_value(name))
            .map(|(name, role)| Caller { name: name.as_str().into(), role: *role })
            .ok_or(AuthError::Missing)
    }

    /// The entry whose hash matches, comparing against all of them so that the
    /// time taken says nothing about which (or whether one) matched.
    fn by_token(&self, token: &[u8]) -> Option<Caller> {
        let hash = token::hash(token);
        let mut found = None;
        for entry in &self.tokens {
            if bool::from(entry.hash.ct_eq(&hash)) {
                found = Some(Caller { name: Arc::clone(&entry.name), role: entry.role });
            }
        }
        found
    }
}

/// The token of `Bearer <token>` (the scheme is case-insensitive, RFC 7235).
fn bearer(value: &[u8]) -> Option<&[u8]> {
    let (scheme, rest) = value.split_at_checked(7)?;
    (scheme.eq_ignore_ascii_case(b"bearer ") && !rest.is_empty()).then_some(rest.trim_ascii())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(http::header::AUTHORIZATION, value.parse().unwrap());
        headers
    }

    fn authenticator() -> Authenticator {
        let entry =
            |name: &str, role, token: &str| TokenEntry { name: name.into(), role, hash: token::hash(token.as_bytes()) };
        Authenticator::new(
            vec![entry("ops", Role::Admin, "secret-one"), entry("ci", Role::Editor, "secret-two")],
            HashMap::from([("reader".to_string(), Role::Viewer)]),
        )
    }

    #[test]
    fn tokens_map_to_their_names_and_roles() {
        let auth = authenticator();
        let caller = auth.authenticate(&headers("Bearer secret-two"), None).unwrap();
        assert_eq!((&*caller.name, caller.role), ("ci", Role::Editor));
        let caller = auth.authenticate(&headers("bearer secret-one"), None).unwrap();
        assert_eq!((&*caller.name, caller.role), ("ops", Role::Admin));
    }

    #[test]
    fn wrong_missing_and_malformed_credentials_are_refused() {
        let auth = authenticator();
        assert_eq!(auth.authenticate(&headers("Bearer secret-three"), None).unwrap_err(), AuthError::InvalidToken);
        assert_eq!(auth.authenticate(&headers("Basic c2VjcmV0"), None).unwrap_err(), AuthError::Malformed);
        assert_eq!(auth.authenticate(&headers("Bearer "), None).unwrap_err(), AuthError::Malformed);
        assert_eq!(auth.authenticate(&HeaderMap::new(), None).unwrap_err(), AuthError::Missing);
        assert_eq!(auth.authenticate(&HeaderMap::new(), Some("stranger")).unwrap_err(), AuthError::Missing);
        // A wrong token is not rescued by a good certificate.
        assert_eq!(auth.authenticate(&headers("Bearer nope"), Some("reader")).unwrap_err(), AuthError::InvalidToken);
    }

    #[test]
    fn a_mapped_certificate_authenticates() {
        let caller = authenticator().authenticate(&HeaderMap::new(), Some("reader")).unwrap();
        assert_eq!((&*caller.name, caller.role), ("reader", Role::Viewer));
    }
}
