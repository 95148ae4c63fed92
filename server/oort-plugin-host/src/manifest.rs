//! `manifest.json`: what a plugin archive says it contains. The host checks it
//! against what the code itself reports (a native library's table, a portable
//! process's `Describe`), so that a catalog entry never promises a symbol the
//! code does not have.
//!
//! [`Manifest::parse`] reads either kind; [`Manifest::kind`] tells which, and
//! [`Manifest::portable`] checks the fields a portable plugin needs.

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
    /// A Python portable plugin's requirements (pip's `name>=version` lines);
    /// by default those of `requirements.txt` at the archive's root, if any.
    #[serde(default)]
    pub requirements: Option<Vec<String>>,
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

/// How a plugin runs, as its manifest says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManifestKind {
    /// A dynamic library loaded into the server.
    Native,
    /// A process of its own, speaking `oort.plugin.v1`.
    Portable,
}

impl ManifestKind {
    /// The word used in manifests and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            ManifestKind::Native => "native",
            ManifestKind::Portable => "portable",
        }
    }
}

/// What a portable plugin's manifest adds: how to start it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortableEntry {
    /// `python`, `node`, `go`, `rust`...: decides how the executable is run.
    pub language: String,
    /// The program, a relative path inside the archive.
    pub executable: String,
}

impl Manifest {
    /// Parses a manifest of either kind; an unknown kind is an error.
    pub fn parse(bytes: &[u8]) -> Result<Manifest, HostError> {
        let manifest: Manifest =
            serde_json::from_slice(bytes).map_err(|e| HostError::Manifest(format!("manifest.json: {e}")))?;
        manifest.checked_kind()?;
        Ok(manifest)
    }

    fn checked_kind(&self) -> Result<ManifestKind, HostError> {
        match self.kind.as_deref() {
            None | Some("native") => Ok(ManifestKind::Native),
            Some("portable") => Ok(ManifestKind::Portable),
            Some(other) => {
                Err(HostError::Manifest(format!("kind is \"{other}\"; a plugin is \"native\" or \"portable\"")))
            }
        }
    }

    /// Native (the default) or portable.
    pub fn kind(&self) -> ManifestKind {
        self.checked_kind().unwrap_or(ManifestKind::Native)
    }

    /// Fails unless the manifest is of kind `expected`, saying how to install it instead.
    pub fn expect_kind(&self, expected: ManifestKind) -> Result<(), HostError> {
        let kind = self.kind();
        if kind == expected {
            return Ok(());
        }
        let proto = match kind {
            ManifestKind::Native => "PLUGIN_KIND_NATIVE",
            ManifestKind::Portable => "PLUGIN_KIND_PORTABLE",
        };
        Err(HostError::Manifest(format!(
            "the manifest describes a {} plugin but the request installs a {} one: install it with kind {proto}",
            kind.as_str(),
            expected.as_str()
        )))
    }

    /// The language and executable of a portable plugin; both are required,
    /// and the executable must be a plain relative path.
    pub fn portable(&self) -> Result<PortableEntry, HostError> {
        self.expect_kind(ManifestKind::Portable)?;
        let language = self.language.clone().filter(|l| !l.trim().is_empty()).ok_or_else(|| {
            HostError::Manifest("a portable plugin needs `language` (python, go, rust, node...)".into())
        })?;
        let executable = self.executable.clone().filter(|e| !e.trim().is_empty()).ok_or_else(|| {
            HostError::Manifest("a portable plugin needs `executable`, its program in the archive".into())
        })?;
        let path = std::path::Path::new(&executable);
        let plain = path.components().all(|c| matches!(c, std::path::Component::Normal(_)));
        if !plain {
            return Err(HostError::Manifest(format!(
                "the executable '{executable}' must be a relative path inside the archive"
            )));
        }
        if self.library.is_some() {
            return Err(HostError::Manifest(
                "`library` is for native plugins; a portable plugin has `executable`".into(),
            ));
        }
        Ok(PortableEntry { language: language.to_ascii_lowercase(), executable })
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
        assert_eq!(m.kind(), ManifestKind::Native);
        let error = Manifest::parse(br#"{"name": "m", "version": "1", "kind": "wasm"}"#).unwrap_err().to_string();
        assert!(error.contains("wasm"), "{error}");
    }

    #[test]
    fn portable_manifests_need_a_language_and_a_plain_executable() {
        let m = Manifest::parse(
            br#"{"name": "p", "version": "1", "kind": "portable", "language": "Python", "executable": "main.py"}"#,
        )
        .unwrap();
        assert_eq!(m.portable().unwrap(), PortableEntry { language: "python".into(), executable: "main.py".into() });
        assert!(m.expect_kind(ManifestKind::Native).unwrap_err().to_string().contains("PLUGIN_KIND_PORTABLE"));
        let no_exe =
            Manifest::parse(br#"{"name": "p", "version": "1", "kind": "portable", "language": "go"}"#).unwrap();
        assert!(no_exe.portable().unwrap_err().to_string().contains("executable"));
        for bad in ["../x", "/bin/sh"] {
            let text = format!(
                r#"{{"name": "p", "version": "1", "kind": "portable", "language": "go", "executable": "{bad}"}}"#
            );
            let error = Manifest::parse(text.as_bytes()).unwrap().portable().unwrap_err().to_string();
            assert!(error.contains("relative path"), "{bad}: {error}");
        }
    }
}
