//! Files that a crash leaves whole: the previous version or the new one,
//! never a mix, and never a damaged one read as if it were good. Each is
//! `[magic: 8 bytes][crc32 of the body, little-endian][body]`.

use std::fs;
use std::io::{self, Write};
use std::path::Path;

/// Why a file could not be read back.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReadError {
    /// The file system refused.
    #[error(transparent)]
    Io(#[from] io::Error),
    /// It is not a file of this kind, or it was damaged.
    #[error("{0}")]
    Damaged(&'static str),
}

/// Replaces `path` with `body`, durably once `sync_dir` of its directory
/// returned too: written beside it, synced, renamed. Returns the file's size.
pub(crate) fn write(path: &Path, magic: &[u8; 8], body: &[u8]) -> io::Result<usize> {
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    let mut file = fs::File::create(&partial)?;
    file.write_all(magic)?;
    file.write_all(&crc32fast::hash(body).to_le_bytes())?;
    file.write_all(body)?;
    file.sync_data()?;
    fs::rename(&partial, path)?;
    Ok(magic.len() + 4 + body.len())
}

/// The body of a file that [`write`] wrote; `None` if there is no such file.
pub(crate) fn read(path: &Path, magic: &[u8; 8]) -> Result<Option<Vec<u8>>, ReadError> {
    let mut bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let body = bytes.strip_prefix(magic.as_slice()).ok_or(ReadError::Damaged("not a file of this kind"))?;
    let (crc, body) = body.split_first_chunk::<4>().ok_or(ReadError::Damaged("truncated"))?;
    if u32::from_le_bytes(*crc) != crc32fast::hash(body) {
        return Err(ReadError::Damaged("its checksum does not match"));
    }
    bytes.drain(..magic.len() + 4);
    Ok(Some(bytes))
}

/// Makes the renames in `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

/// Removes a file; one that is not there is already removed.
pub(crate) fn remove(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}
