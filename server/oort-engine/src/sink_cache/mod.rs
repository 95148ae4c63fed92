//! The sink cache (eKuiper's `enableCache`): the results a sink failed to
//! deliver wait here, to be sent again, so that a sink that is down holds
//! neither the rule nor its other sinks back.
//!
//! Results are kept in pages of `bufferPageSize`, in order. The oldest stay in
//! memory up to `memoryCacheThreshold`; past it, whole pages go to disk, one
//! file each (`<dir>/<page number>-<results>.page`, written atomically), and
//! come back into memory when the results before them were sent. Past
//! `maxDiskCache` results on disk, or the server's bound in bytes
//! (`max_sink_cache_bytes`), the oldest page is dropped and counted.
//! [`SinkCache::persist`] writes what is only in memory to disk: the rule
//! calls it at every checkpoint (so that a checkpoint never counts as
//! delivered a result that only memory holds) and when it stops. What was
//! sent from a page is forgotten when the whole page was sent: after a crash,
//! the rest of a page may be sent a second time, never lost.

pub(crate) mod config;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

pub use config::{CacheSizes, ResendPriority, SINK_CACHE_OPTIONS, SinkCacheConfig};

use crate::durable::{self, ReadError};
use crate::rule::ActionDefinition;
use crate::value::Map;

/// The first bytes of a page file: the format and its version.
const MAGIC: &[u8; 8] = b"OORTSC01";

/// One result waiting in the cache: its number in the rule
/// ([`crate::Sink::collect_numbered`]) and its rows.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CachedResult {
    /// Its number.
    pub sequence: u64,
    /// Its rows.
    pub rows: Vec<Map>,
}

/// Why the cache failed.
#[derive(Debug, thiserror::Error)]
pub enum SinkCacheError {
    /// The file system refused.
    #[error("sink cache in {dir}: {source}")]
    Io {
        /// The cache's directory.
        dir: PathBuf,
        /// What failed.
        source: io::Error,
    },
    /// A page on disk was damaged; its results are lost (and counted).
    #[error("sink cache page {path} is damaged ({reason}): its {lost} results are lost")]
    Damaged {
        /// The page's file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
        /// How many results it held.
        lost: usize,
    },
    /// The rule stopped while the cache was being written: what it held in
    /// memory then is lost, what was on disk stays.
    #[error("the sink cache was abandoned by an operation the rule's stop interrupted")]
    Abandoned,
}

/// A page of results, in memory or only on disk.
#[derive(Debug)]
struct Page {
    /// Its number: pages are sent in this order.
    id: u64,
    /// Its results when in memory.
    rows: Option<VecDeque<CachedResult>>,
    /// How many results it holds.
    len: usize,
    /// The size of its file.
    bytes: u64,
    /// The name of its file, if it has one.
    file: Option<String>,
    /// Whether the file holds every result the page holds.
    saved: bool,
}

/// The results one sink of one rule failed to deliver, in order.
#[derive(Debug)]
pub struct SinkCache {
    dir: PathBuf,
    sizes: CacheSizes,
    max_disk_bytes: u64,
    disk_bytes: u64,
    pages: VecDeque<Page>,
    next_id: u64,
    len: usize,
    in_memory: usize,
    /// A page file was written or renamed since the directory was last synced.
    dir_dirty: bool,
}

impl SinkCache {
    /// The cache kept in `dir` (created if missing), with the pages a
    /// previous run left there, holding at most `max_disk_bytes` on disk.
    pub fn open(dir: impl Into<PathBuf>, sizes: CacheSizes, max_disk_bytes: u64) -> Result<Self, SinkCacheError> {
        let dir = dir.into();
        let io_error = |source| SinkCacheError::Io { dir: dir.clone(), source };
        fs::create_dir_all(&dir).map_err(io_error)?;
        let mut pages = Vec::new();
        for entry in fs::read_dir(&dir).map_err(io_error)? {
            let entry = entry.map_err(io_error)?;
            let name = entry.file_name().to_string_lossy().into_owned();
            match parse_page_name(&name) {
                Some((id, len)) => {
                    let bytes = entry.metadata().map_err(io_error)?.len();
                    pages.push(Page { id, rows: None, len, bytes, file: Some(name), saved: true });
                }
                // What a crash left half written.
                None if name.ends_with(".partial") => durable::remove(&dir.join(&name)).map_err(io_error)?,
                None => {}
            }
        }
        pages.sort_by_key(|p| p.id);
        let next_id = pages.last().map_or(0, |p| p.id + 1);
        let len = pages.iter().map(|p| p.len).sum();
        let disk_bytes = pages.iter().map(|p| p.bytes).sum();
        let pages = pages.into();
        Ok(Self { dir, sizes, max_disk_bytes, disk_bytes, pages, next_id, len, in_memory: 0, dir_dirty: false })
    }

    /// How many results it holds.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Adds a result after the others. Returns how many of the oldest were
    /// dropped to make room (a whole page, when the disk's share is full).
    pub fn push(&mut self, result: CachedResult) -> Result<usize, SinkCacheError> {
        let page_size = self.sizes.page;
        let fits = self.pages.back().is_some_and(|p| p.rows.is_some() && p.len < page_size);
        if !fits {
            let id = self.next_id;
            self.next_id += 1;
            let page = Page { id, rows: Some(VecDeque::new()), len: 0, bytes: 0, file: None, saved: false };
            self.pages.push_back(page);
        }
        let page = self.pages.back_mut().expect("a page to push to");
        page.rows.as_mut().expect("a page in memory").push_back(result);
        page.len += 1;
        page.saved = false;
        self.len += 1;
        self.in_memory += 1;
        // Past the memory's share, the newest full page (never the first,
        // which is being sent) goes to disk.
        while self.in_memory > self.sizes.memory {
            let newest_full = (1..self.pages.len()).rev().find(|&i| {
                let page = &self.pages[i];
                page.rows.is_some() && page.len >= page_size
            });
            let Some(i) = newest_full else { break };
            self.offload(i)?;
        }
        self.within_bounds()
    }

    /// Drops the oldest pages while it holds more than its bounds allow (not
    /// the last page); returns how many results they held.
    fn within_bounds(&mut self) -> Result<usize, SinkCacheError> {
        let mut dropped = 0;
        while (self.len > self.sizes.memory + self.sizes.disk || self.disk_bytes > self.max_disk_bytes)
            && self.pages.len() > 1
        {
            dropped += self.drop_oldest()?;
        }
        Ok(dropped)
    }

    /// The oldest result, loaded from disk if it is there. A damaged page is
    /// dropped (its results counted in the error) and the next one is tried
    /// by the next call.
    pub fn front(&mut self) -> Result<Option<&CachedResult>, SinkCacheError> {
        let Some(page) = self.pages.front_mut() else { return Ok(None) };
        if page.rows.is_none() {
            let name = page.file.clone().expect("a page not in memory is on disk");
            let path = self.dir.join(&name);
            let loaded = match durable::read(&path, MAGIC) {
                Ok(Some(body)) => postcard::from_bytes::<VecDeque<CachedResult>>(&body).map_err(|e| e.to_string()),
                Ok(None) => Err("its file is gone".to_owned()),
                Err(ReadError::Io(source)) => return Err(SinkCacheError::Io { dir: self.dir.clone(), source }),
                Err(e @ ReadError::Damaged(_)) => Err(e.to_string()),
            };
            match loaded {
                Ok(rows) if rows.len() == page.len => {
                    self.in_memory += rows.len();
                    page.rows = Some(rows);
                }
                other => {
                    let reason = other.err().unwrap_or_else(|| "it holds another number of results".into());
                    let lost = self.drop_oldest()?;
                    return Err(SinkCacheError::Damaged { path, reason, lost });
                }
            }
        }
        Ok(self.pages.front().and_then(|p| p.rows.as_ref()).and_then(VecDeque::front))
    }

    /// Forgets the oldest result ([`front`](Self::front)), sent; a page whose
    /// results were all sent is deleted from disk.
    pub fn pop(&mut self) -> Result<(), SinkCacheError> {
        let Some(page) = self.pages.front_mut() else { return Ok(()) };
        let Some(rows) = page.rows.as_mut() else { return Ok(()) };
        if rows.pop_front().is_some() {
            page.len -= 1;
            self.len -= 1;
            self.in_memory -= 1;
        }
        if page.len == 0 {
            self.drop_oldest()?;
        }
        Ok(())
    }

    /// Writes to disk every page that is only in memory, and makes it
    /// durable: what the cache holds now survives a crash. Returns how many
    /// of the oldest results were dropped to stay within its bound in bytes.
    pub fn persist(&mut self) -> Result<usize, SinkCacheError> {
        for i in 0..self.pages.len() {
            if !self.pages[i].saved {
                self.write_page(i)?;
            }
        }
        if self.dir_dirty {
            durable::sync_dir(&self.dir).map_err(|source| SinkCacheError::Io { dir: self.dir.clone(), source })?;
            self.dir_dirty = false;
        }
        self.within_bounds()
    }

    /// Drops everything it holds, on disk too; returns how many results.
    pub fn clear(&mut self) -> Result<usize, SinkCacheError> {
        let mut dropped = 0;
        while !self.pages.is_empty() {
            dropped += self.drop_oldest()?;
        }
        Ok(dropped)
    }

    /// Writes page `i` to its file, replacing the one it had.
    fn write_page(&mut self, i: usize) -> Result<(), SinkCacheError> {
        let io_error = |source| SinkCacheError::Io { dir: self.dir.clone(), source };
        let page = &self.pages[i];
        let rows = page.rows.as_ref().expect("only a page in memory changes");
        let body = postcard::to_stdvec(rows).map_err(|e| io_error(io::Error::other(e)))?;
        let name = page_name(page.id, page.len);
        let bytes = durable::write(&self.dir.join(&name), MAGIC, &body).map_err(io_error)? as u64;
        self.disk_bytes = self.disk_bytes - self.pages[i].bytes + bytes;
        self.pages[i].bytes = bytes;
        let old = self.pages[i].file.replace(name.clone());
        if let Some(old) = old.filter(|old| *old != name) {
            durable::remove(&self.dir.join(old)).map_err(io_error)?;
        }
        self.pages[i].saved = true;
        self.dir_dirty = true;
        Ok(())
    }

    /// Sends page `i` to disk and frees its memory.
    fn offload(&mut self, i: usize) -> Result<(), SinkCacheError> {
        if !self.pages[i].saved {
            self.write_page(i)?;
        }
        let page = &mut self.pages[i];
        if page.rows.take().is_some() {
            self.in_memory -= page.len;
        }
        Ok(())
    }

    /// Drops the oldest page, from disk too; returns how many results it held.
    fn drop_oldest(&mut self) -> Result<usize, SinkCacheError> {
        let Some(page) = self.pages.pop_front() else { return Ok(0) };
        self.len -= page.len;
        self.disk_bytes -= page.bytes;
        if page.rows.is_some() {
            self.in_memory -= page.len;
        }
        if let Some(file) = &page.file {
            durable::remove(&self.dir.join(file))
                .map_err(|source| SinkCacheError::Io { dir: self.dir.clone(), source })?;
        }
        Ok(page.len)
    }
}

fn page_name(id: u64, len: usize) -> String {
    format!("{id:020}-{len}.page")
}

/// The number and the length of a page, from its file's name.
fn parse_page_name(name: &str) -> Option<(u64, usize)> {
    let (id, len) = name.strip_suffix(".page")?.split_once('-')?;
    Some((id.parse().ok()?, len.parse().ok()?))
}

/// Where the caches of the rules' sinks are kept: a directory per rule
/// (its id in hex), in it one per cached action, named by the action's index
/// and a checksum of its type and properties, so that an action that changed
/// does not send what was cached for the one it replaced.
#[derive(Debug)]
pub struct SinkCaches {
    root: PathBuf,
}

impl SinkCaches {
    /// The caches under `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The directory of the cache of action `index` of a rule. Changing the
    /// cache's own properties keeps the cache.
    pub fn dir(&self, rule_id: &str, index: usize, action: &ActionDefinition) -> PathBuf {
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(action.sink_type.as_bytes());
        let mut props = action.props.clone();
        props.retain(|key, _| !SINK_CACHE_OPTIONS.iter().any(|o| o.key == key));
        hasher.update(serde_json::Value::Object(props).to_string().as_bytes());
        self.root.join(crate::checkpoint::file_name(rule_id)).join(format!("{index}-{:08x}", hasher.finalize()))
    }

    /// Removes the caches of a rule other than `keep` (those of actions it no
    /// longer has); returns how many results they held.
    pub fn retain(&self, rule_id: &str, keep: &[PathBuf]) -> io::Result<usize> {
        let dir = self.root.join(crate::checkpoint::file_name(rule_id));
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e),
        };
        let mut dropped = 0;
        for entry in entries {
            let path = entry?.path();
            if !keep.contains(&path) {
                dropped += fs::read_dir(&path)?
                    .filter_map(|e| parse_page_name(&e.ok()?.file_name().to_string_lossy()))
                    .map(|(_, len)| len)
                    .sum::<usize>();
                remove_dir(&path)?;
            }
        }
        Ok(dropped)
    }

    /// Removes every cache of a rule (it was deleted).
    pub fn forget(&self, rule_id: &str) -> io::Result<()> {
        remove_dir(&self.root.join(crate::checkpoint::file_name(rule_id)))
    }
}

fn remove_dir(dir: &Path) -> io::Result<()> {
    match fs::remove_dir_all(dir) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}
