//! Unpacking a plugin zip safely: every entry must stay inside the target
//! folder (no `..`, no absolute path, no symlink), and the whole is bounded in
//! size so that a zip bomb cannot fill the disk.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::error::HostError;

/// Most bytes an archive may unpack to.
pub const MAX_UNPACKED_BYTES: u64 = 512 * 1024 * 1024;

/// Whether an entry name is a relative path with no `..` component: stricter
/// than the zip crate's `enclosed_name`, which maps `/a` to `a` and allows `a/../b`.
fn is_plain_relative(name: &str) -> bool {
    let absolute = name.starts_with(['/', '\\']) || name.as_bytes().get(1) == Some(&b':');
    !absolute && !name.split(['/', '\\']).any(|c| c == "..") && !name.contains('\0')
}

/// Unpacks `bytes` (a zip) into `dest`, which must exist; returns the files
/// written, relative to `dest`.
pub fn unpack(bytes: &[u8], dest: &Path) -> Result<Vec<PathBuf>, HostError> {
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes))
        .map_err(|e| HostError::Archive(format!("not a zip archive: {e}")))?;
    let mut files = Vec::new();
    let mut total: u64 = 0;
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i).map_err(|e| HostError::Archive(format!("entry {i}: {e}")))?;
        let raw_name = entry.name().map(|n| n.into_owned()).unwrap_or_else(|_| format!("#{i}"));
        let Some(relative) = entry.enclosed_name().filter(|_| is_plain_relative(&raw_name)) else {
            return Err(HostError::Archive(format!("entry '{raw_name}' escapes the archive's folder")));
        };
        if entry.is_symlink() {
            return Err(HostError::Archive(format!(
                "entry '{raw_name}' is a symbolic link; plugins may not contain links"
            )));
        }
        let target = dest.join(&relative);
        if entry.is_dir() {
            std::fs::create_dir_all(&target).map_err(|e| HostError::io("unpacking", e))?;
            continue;
        }
        total = total.saturating_add(entry.size());
        if total > MAX_UNPACKED_BYTES {
            return Err(HostError::Archive(format!("the archive unpacks to more than {MAX_UNPACKED_BYTES} bytes")));
        }
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(|e| HostError::io("unpacking", e))?;
        }
        let mut content = Vec::with_capacity(entry.size().min(MAX_UNPACKED_BYTES) as usize);
        // `take` bounds what a lying size header could make us write.
        (&mut entry)
            .take(MAX_UNPACKED_BYTES + 1)
            .read_to_end(&mut content)
            .map_err(|e| HostError::Archive(format!("entry '{raw_name}' is corrupt: {e}")))?;
        std::fs::write(&target, &content).map_err(|e| HostError::io("unpacking", e))?;
        files.push(relative);
    }
    Ok(files)
}

#[cfg(test)]
pub(crate) mod tests {
    use std::io::Write;

    use super::*;

    /// A zip of `(name, content)` entries.
    pub(crate) fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = std::io::Cursor::new(Vec::new());
        let mut zip = zip::ZipWriter::new(&mut out);
        for (name, content) in entries {
            zip.start_file(*name, zip::write::SimpleFileOptions::default()).unwrap();
            zip.write_all(content).unwrap();
        }
        zip.finish().unwrap();
        out.into_inner()
    }

    #[test]
    fn unpacks_inside_the_folder_and_refuses_escapes() {
        let dir = tempfile::tempdir().unwrap();
        let files = unpack(&zip_of(&[("manifest.json", b"{}"), ("lib/a.so", b"x")]), dir.path()).unwrap();
        assert_eq!(files, [PathBuf::from("manifest.json"), PathBuf::from("lib/a.so")]);
        assert_eq!(std::fs::read(dir.path().join("lib/a.so")).unwrap(), b"x");

        for bad in ["../evil.so", "/etc/evil.so", "a/../../evil.so"] {
            let error = unpack(&zip_of(&[(bad, b"x")]), dir.path()).unwrap_err().to_string();
            assert!(error.contains("escapes the archive's folder"), "{bad}: {error}");
        }
        assert!(!dir.path().parent().unwrap().join("evil.so").exists());
        let error = unpack(b"not a zip", dir.path()).unwrap_err().to_string();
        assert!(error.contains("not a zip archive"), "{error}");
    }

    #[test]
    fn refuses_symlinks() {
        let mut out = std::io::Cursor::new(Vec::new());
        let mut zip = zip::ZipWriter::new(&mut out);
        zip.add_symlink("link", "/etc/passwd", zip::write::SimpleFileOptions::default()).unwrap();
        zip.finish().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let error = unpack(&out.into_inner(), dir.path()).unwrap_err().to_string();
        assert!(error.contains("symbolic link"), "{error}");
    }
}
