//! Paths that clients name, confined to roots.
//!
//! A path is resolved the way the kernel will open it: relative paths under
//! the first root, `..` applied, then every symlink of the part that exists
//! followed (`canonicalize`). The result must lie inside a root. What does not
//! exist yet (a sink's new file) is checked on the canonical form of its
//! nearest existing ancestor, and may contain no `..` of its own.

use std::fmt;
use std::path::{Component, Path, PathBuf};

/// Why a path is refused. Messages name the allowed roots, so a user knows
/// where to put the file.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PathError {
    /// The path is empty.
    #[error("the path is empty")]
    Empty,
    /// The path resolves outside every root.
    #[error(
        "{path} is outside the allowed directories ({roots}); put the file there, or add a directory to file_roots in oort.toml"
    )]
    Outside {
        /// The path as given.
        path: String,
        /// The roots, comma-separated.
        roots: String,
    },
    /// The path exists but is not what the use needs (a device, a FIFO, a socket...).
    #[error("{path} is not a regular file{}", if *.directory_ok { " or a directory" } else { "" })]
    NotRegular {
        /// The path as given.
        path: String,
        /// Whether a directory would have done.
        directory_ok: bool,
    },
    /// The path must exist and does not.
    #[error("{path} does not exist")]
    Missing {
        /// The path as given.
        path: String,
    },
    /// The file system refused a look-up.
    #[error("{path}: {message}")]
    Io {
        /// The path as given.
        path: String,
        /// The error.
        message: String,
    },
}

/// What the path will be used for, which decides what may be at its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathUse {
    /// Read: a regular file or a directory of files (a file source), which may
    /// not exist yet (it is read later, and checked again then).
    ReadFileOrDirectory,
    /// Read: an existing regular file (a plugin archive).
    ReadFile,
    /// Write: a regular file, or nothing yet (a file sink creates it).
    Write,
}

/// The directories client-named paths must stay in, canonical.
#[derive(Clone, PartialEq, Eq)]
pub struct FileRoots {
    roots: Vec<PathBuf>,
}

impl fmt::Debug for FileRoots {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

impl FileRoots {
    /// Creates each root that does not exist and keeps their canonical forms;
    /// the first one is where relative paths resolve.
    pub fn create(roots: impl IntoIterator<Item = PathBuf>) -> std::io::Result<Self> {
        let mut canonical = Vec::new();
        for root in roots {
            std::fs::create_dir_all(&root)?;
            let root = root.canonicalize()?;
            if !canonical.contains(&root) {
                canonical.push(root);
            }
        }
        if canonical.is_empty() {
            return Err(std::io::Error::other("at least one file root is needed"));
        }
        Ok(Self { roots: canonical })
    }

    /// The roots, canonical.
    pub fn roots(&self) -> &[PathBuf] {
        &self.roots
    }

    /// Whether any root contains `path` or lies inside it (canonical forms).
    pub fn overlaps(&self, path: &Path) -> bool {
        let path = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
        self.roots.iter().any(|root| path.starts_with(root) || root.starts_with(&path))
    }

    /// The roots, comma-separated, for messages.
    pub fn describe(&self) -> String {
        self.roots.iter().map(|r| r.display().to_string()).collect::<Vec<_>>().join(", ")
    }

    /// Resolves `path` (relative ones under the first root) and checks that it
    /// stays inside a root and that what is there suits `usage`.
    pub fn resolve(&self, path: &str, usage: PathUse) -> Result<PathBuf, PathError> {
        if path.trim().is_empty() {
            return Err(PathError::Empty);
        }
        let given = Path::new(path);
        let joined = if given.is_absolute() { given.to_path_buf() } else { self.roots[0].join(given) };
        let io = |e: std::io::Error| PathError::Io { path: path.to_string(), message: e.to_string() };
        let outside = || PathError::Outside { path: path.to_string(), roots: self.describe() };
        let lexical = normalize(&joined).ok_or_else(outside)?;
        // The deepest existing ancestor, with its symlinks followed; the rest is new.
        let mut existing = lexical.as_path();
        let mut rest = Vec::new();
        let resolved = loop {
            match existing.canonicalize() {
                Ok(canonical) => break canonical,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    rest.push(existing.file_name().ok_or_else(outside)?.to_owned());
                    existing = existing.parent().ok_or_else(outside)?;
                }
                Err(e) => return Err(io(e)),
            }
        };
        let full = rest.iter().rev().fold(resolved, |full, part| full.join(part));
        if !self.roots.iter().any(|root| full.starts_with(root)) {
            return Err(outside());
        }
        match std::fs::metadata(&full) {
            Ok(meta) if meta.is_file() => Ok(full),
            Ok(meta) if meta.is_dir() && usage == PathUse::ReadFileOrDirectory => Ok(full),
            Ok(_) => Err(PathError::NotRegular {
                path: path.to_string(),
                directory_ok: usage == PathUse::ReadFileOrDirectory,
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && usage != PathUse::ReadFile => Ok(full),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(PathError::Missing { path: path.to_string() }),
            Err(e) => Err(io(e)),
        }
    }
}

/// `path` with `.` dropped and `..` applied; `None` if `..` climbs above `/`.
fn normalize(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::ParentDir => {
                if !out.pop() || out.as_os_str().is_empty() {
                    return None;
                }
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    fn setup() -> (tempfile::TempDir, FileRoots) {
        let dir = tempfile::tempdir().unwrap();
        let roots = FileRoots::create([dir.path().join("files"), dir.path().join("more")]).unwrap();
        std::fs::write(dir.path().join("files/in.csv"), "a\n1\n").unwrap();
        std::fs::write(dir.path().join("secret"), "x").unwrap();
        (dir, roots)
    }

    #[test]
    fn relative_paths_resolve_under_the_first_root() {
        let (dir, roots) = setup();
        let files = dir.path().join("files").canonicalize().unwrap();
        assert_eq!(roots.resolve("in.csv", PathUse::ReadFile).unwrap(), files.join("in.csv"));
        assert_eq!(roots.resolve("./sub/../in.csv", PathUse::ReadFile).unwrap(), files.join("in.csv"));
        assert_eq!(roots.resolve("out/new.jsonl", PathUse::Write).unwrap(), files.join("out/new.jsonl"));
        let other = dir.path().join("more/x.json").display().to_string();
        assert!(roots.resolve(&other, PathUse::Write).is_ok(), "any root will do");
    }

    #[test]
    fn paths_that_leave_the_roots_are_refused_naming_them() {
        let (dir, roots) = setup();
        let error = roots.resolve("/etc/passwd", PathUse::ReadFile).unwrap_err();
        assert!(matches!(error, PathError::Outside { .. }));
        assert!(error.to_string().contains(&dir.path().join("files").canonicalize().unwrap().display().to_string()));
        assert!(matches!(roots.resolve("../secret", PathUse::ReadFile), Err(PathError::Outside { .. })));
        assert!(matches!(roots.resolve("../../../../../../../..", PathUse::Write), Err(PathError::Outside { .. })));
        assert!(matches!(roots.resolve("new/../../secret", PathUse::Write), Err(PathError::Outside { .. })));
        let catalog = dir.path().join("catalog/db").display().to_string();
        assert!(matches!(roots.resolve(&catalog, PathUse::Write), Err(PathError::Outside { .. })));
        assert_eq!(roots.resolve(" ", PathUse::Write), Err(PathError::Empty));
    }

    #[test]
    fn symlinks_are_followed_before_the_check() {
        let (dir, roots) = setup();
        symlink(dir.path().join("secret"), dir.path().join("files/link")).unwrap();
        symlink(dir.path(), dir.path().join("files/up")).unwrap();
        assert!(matches!(roots.resolve("link", PathUse::ReadFile), Err(PathError::Outside { .. })));
        assert!(matches!(roots.resolve("up/secret", PathUse::ReadFile), Err(PathError::Outside { .. })));
        assert!(matches!(roots.resolve("up/new-file", PathUse::Write), Err(PathError::Outside { .. })));
        symlink(dir.path().join("files/in.csv"), dir.path().join("files/inside")).unwrap();
        assert!(roots.resolve("inside", PathUse::ReadFile).is_ok(), "a link that stays inside is fine");
    }

    #[test]
    fn only_regular_files_and_directories_where_they_fit() {
        let (dir, roots) = setup();
        assert!(roots.resolve(".", PathUse::ReadFileOrDirectory).is_ok());
        assert!(matches!(roots.resolve(".", PathUse::ReadFile), Err(PathError::NotRegular { .. })));
        assert!(matches!(roots.resolve(".", PathUse::Write), Err(PathError::NotRegular { .. })));
        assert!(matches!(roots.resolve("nope.csv", PathUse::ReadFile), Err(PathError::Missing { .. })));
        assert!(roots.resolve("later.csv", PathUse::ReadFileOrDirectory).is_ok(), "a source's file may come later");
        symlink("/dev/zero", dir.path().join("files/zero")).unwrap();
        assert!(roots.resolve("zero", PathUse::ReadFile).is_err());
        let fifo = dir.path().join("files/fifo");
        assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
        let error = roots.resolve("fifo", PathUse::ReadFileOrDirectory).unwrap_err();
        assert!(error.to_string().contains("not a regular file or a directory"), "{error}");
        assert!(matches!(roots.resolve("fifo", PathUse::Write), Err(PathError::NotRegular { .. })));
    }

    #[test]
    fn overlaps_sees_parents_and_children() {
        let (dir, roots) = setup();
        assert!(roots.overlaps(dir.path()), "the data dir holds a root");
        assert!(roots.overlaps(&dir.path().join("files/sub")));
        assert!(!roots.overlaps(&dir.path().join("catalog")));
    }
}
