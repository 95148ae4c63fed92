//! Tokens: their hashes as written in `oort.toml`, fresh random tokens, and
//! the admin token a server with no configured token generates for itself.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// The prefix of a hash in `oort.toml`.
const PREFIX: &str = "sha256:";
/// The file, in the data directory, of the generated admin token.
pub const ADMIN_TOKEN_FILE: &str = "admin.token";
/// Random bytes in a generated token (256 bits).
const TOKEN_BYTES: usize = 32;
/// Shortest token accepted from `OORT_AUTH_TOKEN`: a guessable token is no lock.
pub const MIN_TOKEN_LEN: usize = 16;

/// SHA-256 of a token.
pub fn hash(token: &[u8]) -> [u8; 32] {
    Sha256::digest(token).into()
}

/// `sha256:<64 hex digits>`, the form `oort.toml` takes.
pub fn format_hash(hash: &[u8; 32]) -> String {
    let mut text = String::with_capacity(PREFIX.len() + 64);
    text.push_str(PREFIX);
    for byte in hash {
        text.push_str(&format!("{byte:02x}"));
    }
    text
}

/// Reads `sha256:<64 hex digits>`.
pub fn parse_hash(text: &str) -> Result<[u8; 32], String> {
    let hex = text.strip_prefix(PREFIX).filter(|hex| hex.len() == 64 && hex.is_ascii()).ok_or_else(|| {
        format!(
            "expected \"sha256:\" and 64 hex digits (make one with `oort token new`), got {} characters",
            text.len()
        )
    })?;
    let mut hash = [0u8; 32];
    for (i, byte) in hash.iter_mut().enumerate() {
        *byte =
            u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| "not a hex digit in the hash".to_string())?;
    }
    Ok(hash)
}

/// A fresh token: `oort_` and 256 random bits in hex.
pub fn generate() -> std::io::Result<String> {
    let mut bytes = [0u8; TOKEN_BYTES];
    getrandom::fill(&mut bytes).map_err(std::io::Error::other)?;
    Ok(format!("oort_{}", format_hash(&bytes).trim_start_matches(PREFIX)))
}

/// The admin token of `<data_dir>/admin.token`, created (mode 0600, written
/// before anyone can open it) if absent. Returns the token, the file's path and
/// whether it was created now.
pub fn load_or_create_admin(data_dir: &Path) -> std::io::Result<(String, PathBuf, bool)> {
    let path = data_dir.join(ADMIN_TOKEN_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let mode = std::fs::metadata(&path)?.permissions().mode();
            if mode & 0o077 != 0 {
                tracing::warn!(path = %path.display(), mode = format!("{:o}", mode & 0o777), "the admin token file is readable by others; chmod 600 it");
            }
            let token = text.trim().to_string();
            if token.len() < MIN_TOKEN_LEN {
                return Err(std::io::Error::other(format!(
                    "{} holds no token of at least {MIN_TOKEN_LEN} characters",
                    path.display()
                )));
            }
            Ok((token, path, false))
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let token = generate()?;
            let mut file = OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path)?;
            file.write_all(format!("{token}\n").as_bytes())?;
            file.sync_all()?;
            Ok((token, path, true))
        }
        Err(error) => Err(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_round_trip_and_match_a_known_vector() {
        let hash = hash(b"abc");
        let text = format_hash(&hash);
        assert_eq!(text, "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(parse_hash(&text).unwrap(), hash);
        assert!(parse_hash("ba7816bf").unwrap_err().contains("sha256:"));
        assert!(parse_hash(&text.replace('b', "g")).is_err());
    }

    #[test]
    fn generated_tokens_differ_and_the_admin_file_is_private() {
        assert_ne!(generate().unwrap(), generate().unwrap());
        let dir = tempfile::tempdir().unwrap();
        let (token, path, created) = load_or_create_admin(dir.path()).unwrap();
        assert!(created && token.starts_with("oort_") && token.len() == 69, "{token}");
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let (again, _, created) = load_or_create_admin(dir.path()).unwrap();
        assert_eq!((again, created), (token, false));
    }
}
