//! With a shared catalog, each plugin's archive is kept in the catalog under
//! its SHA-256 (`oort_store::Catalog::get_plugin_archive`) and each server
//! installs its own copy of it: the record's folder is the folder of the
//! server that installed it, not of the others. [`LocalCopies`] is what this
//! server installed, by plugin name: which archive, in which folder, kept in
//! `<data_dir>/plugins/shared-copies.json`, so that a restart loads its copy
//! rather than installing the archive again.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;

/// This server's copy of a plugin of the shared catalog.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LocalCopy {
    /// The SHA-256 of the archive it was installed from.
    pub sha256: String,
    /// Its folder, relative to the plugin directory.
    pub dir: String,
}

/// The copies of this server, by plugin name, saved on every change.
pub struct LocalCopies {
    path: PathBuf,
    copies: Mutex<BTreeMap<String, LocalCopy>>,
}

impl LocalCopies {
    /// The copies saved in `path`; none if it does not exist or does not read.
    pub fn open(path: PathBuf) -> Self {
        let copies =
            std::fs::read(&path).ok().and_then(|bytes| serde_json::from_slice(&bytes).ok()).unwrap_or_default();
        Self { path, copies: Mutex::new(copies) }
    }

    /// The copy of plugin `name`, if this server has one.
    pub fn get(&self, name: &str) -> Option<LocalCopy> {
        self.lock().get(name).cloned()
    }

    /// This server now has `copy` of plugin `name`.
    pub fn set(&self, name: &str, copy: LocalCopy) {
        let mut copies = self.lock();
        copies.insert(name.to_owned(), copy);
        self.save(&copies);
    }

    /// This server no longer has a copy of plugin `name`.
    pub fn remove(&self, name: &str) {
        let mut copies = self.lock();
        if copies.remove(name).is_some() {
            self.save(&copies);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, LocalCopy>> {
        self.copies.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes the copies (to a temporary file renamed over the old one); a
    /// failure is logged: the next start installs the archives again.
    fn save(&self, copies: &BTreeMap<String, LocalCopy>) {
        let temporary = self.path.with_extension("json.tmp");
        let written = serde_json::to_vec_pretty(copies)
            .map_err(std::io::Error::other)
            .and_then(|bytes| std::fs::write(&temporary, bytes))
            .and_then(|()| std::fs::rename(&temporary, &self.path));
        if let Err(error) = written {
            tracing::warn!(path = %self.path.display(), %error, "cannot save this server's copies of shared plugins");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_are_kept_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shared-copies.json");
        let copies = LocalCopies::open(path.clone());
        assert_eq!(copies.get("p"), None);
        let copy = LocalCopy { sha256: "ab".into(), dir: "p-1".into() };
        copies.set("p", copy.clone());
        copies.set("q", LocalCopy { sha256: "cd".into(), dir: "q-1".into() });
        copies.remove("q");
        let again = LocalCopies::open(path);
        assert_eq!((again.get("p"), again.get("q")), (Some(copy), None));
    }
}
