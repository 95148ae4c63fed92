//! `manifest.json`: what a plugin archive says it contains. The host checks it
//! against what the library itself reports, so that a catalog entry never
//! promises a symbol the code does not have.

use serde::Deserialize;

use crate::error::HostError;

/// A plugin's manifest.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Plugin name; must match the request and the library.
    pub name: String,
    /// Plugin version; must match the library.
    pub version: String,
    /// `native` (the default) or `portable`.
    #[serde(default)]
    pub kind: Option<String>,
    /// A native plugin's library file in the archive; by default the only
    /// `.so`/`.dylib` file in it.
    #[serde(default)]
    pub library: Option<String>,
    /// A portable plugin's language (unused by native plugins).
    #[serde(default)]
    pub language: Option<String>,
    /// A portable plugin's executable (unused by native plugins).
    #[serde(default)]
    pub executable: Option<String>,
    /// One-line description.
    #[serde(default)]
    pub description: Option<String>,
    /// Functions it provides.
    #[serde(default)]
    pub functions: Vec<ManifestSymbol>,
    /// Source types it provides.
    #[serde(default)]
    pub sources: Vec<ManifestSymbol>,
    /// Sink types it provides.
    #[serde(default)]
    pub sinks: Vec<ManifestSymbol>,
}

/// One symbol in the manifest.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestSymbol {
    /// Name as used in SQL, streams or actions.
    pub name: String,
    /// For functions: whether it aggregates.
    #[serde(default)]
    pub aggregate: bool,
    /// One-line description.
    #[serde(default)]
    pub description: Option<String>,
}

impl Manifest {
    /// Parses a manifest.
    pub fn parse(bytes: &[u8]) -> Result<Manifest, HostError> {
        let manifest: Manifest =
            serde_json::from_slice(bytes).map_err(|e| HostError::Manifest(format!("manifest.json: {e}")))?;
        if let Some(kind) = manifest.kind.as_deref().filter(|k| *k != "native") {
            return Err(HostError::Manifest(format!("kind is \"{kind}\"; this installs native plugins only")));
        }
        Ok(manifest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_refuses_unknown_fields() {
        let m = Manifest::parse(br#"{"name": "m", "version": "1", "functions": [{"name": "f", "aggregate": true}]}"#)
            .unwrap();
        assert!(m.functions[0].aggregate);
        let error = Manifest::parse(br#"{"name": "m", "version": "1", "funktions": []}"#).unwrap_err().to_string();
        assert!(error.contains("funktions"), "{error}");
        assert!(Manifest::parse(b"{").is_err());
    }
}
