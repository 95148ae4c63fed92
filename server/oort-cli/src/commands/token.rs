//! `oort token`: tokens and their hashes for `oort.toml`, made locally. The
//! server keeps only hashes, so a leaked config file leaks no credential.

use std::io::Read;

use sha2::{Digest, Sha256};

use crate::cli::TokenCommand;
use crate::error::Error;

const ROLES: [&str; 4] = ["admin", "editor", "viewer", "publisher"];

/// Runs `oort token ...`.
pub fn run(command: TokenCommand) -> Result<(), Error> {
    match command {
        TokenCommand::New { name, role } => {
            if !ROLES.contains(&role.as_str()) {
                return Err(Error::usage(format!("unknown role {role:?}; the roles are {}", ROLES.join(", "))));
            }
            let token = generate()?;
            println!("{token}");
            eprintln!(
                "# give the token above to the client (OORT_TOKEN or --token); add this to oort.toml:\n[[tokens]]\nname = {name:?}\nrole = {role:?}\nhash = \"{}\"",
                hash(&token)
            );
            Ok(())
        }
        TokenCommand::Hash => {
            let mut token = String::new();
            std::io::stdin().read_to_string(&mut token).map_err(|e| Error::usage(format!("cannot read stdin: {e}")))?;
            let token = token.trim();
            if token.is_empty() {
                return Err(Error::usage("no token on stdin"));
            }
            println!("{}", hash(token));
            Ok(())
        }
    }
}

/// `sha256:<hex>` of a token, the form oortd's `[[tokens]]` takes.
fn hash(token: &str) -> String {
    format!("sha256:{}", hex(&Sha256::digest(token.as_bytes())))
}

/// `oort_` and 256 random bits in hex.
fn generate() -> Result<String, Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| Error::Internal(format!("no randomness: {e}")))?;
    Ok(format!("oort_{}", hex(&bytes)))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_is_the_one_oortd_expects() {
        // The same vector as oortd's auth::token tests.
        assert_eq!(hash("abc"), "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        let token = generate().unwrap();
        assert!(token.starts_with("oort_") && token.len() == 69);
    }
}
