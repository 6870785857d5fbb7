//! The record: every access to classified data, every egress with PII,
//! every policy violation and every analyst query, in a sled store, chained
//! with HMAC-SHA256 so that any change, removal or reordering is found by
//! [`Store::verify`].
//!
//! Trees: `records` (first seq → up to 32 entries of seq ‖ length ‖ MAC ‖
//! JSON) and `index` (posting lists of time ‖ seq pairs, one per batch and
//! name: all records, alerts, by role, by object, by fingerprint). The
//! chain: `mac[n] = HMAC(key, mac[n-1] ‖ seq ‖ json)`, starting from 32 zero
//! bytes, or from the anchor the retention task leaves when it removes the
//! oldest records (the removal is itself a record in the chain).
//!
//! The record is also a stream: followers ([`follow`]) read it after their
//! own durable cursor (the `cursors` tree), and retention waits for them.

pub mod follow;
pub mod query;
pub mod writer;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Condvar, Mutex, RwLock};

use ring::hmac;
use serde::{Deserialize, Serialize};

use crate::model::Record;

const MAC_LEN: usize = 32;

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// sled failed.
    #[error("record store: {0}")]
    Sled(#[from] sled::Error),
    /// A record could not be (de)serialized.
    #[error("record {seq}: {source}")]
    Json {
        /// Which record.
        seq: u64,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// The chain key could not be loaded.
    #[error(transparent)]
    Key(#[from] monitor_pii::KeyError),
    /// The store is being reopened after a write failure; try again.
    #[error("record store is being reopened after a write failure")]
    Reopening,
    /// The directory asked for holds no record store (nothing was created).
    #[error("{dir} is not a record store: {why}")]
    NotAStore {
        /// The directory.
        dir: std::path::PathBuf,
        /// What is missing.
        why: String,
    },
    /// Another process (or handle) still holds the store's lock after
    /// [`LOCK_WAIT`].
    #[error(
        "record store {dir} is locked by another process (a running daemon? ask it over its socket instead)"
    )]
    Locked {
        /// The store directory.
        dir: std::path::PathBuf,
    },
    /// The store's filesystem has too little room for the batch and the
    /// reserve (see [`DISK_RESERVE_BYTES`]); nothing was written.
    #[error(
        "record store {dir}: {free} bytes free on its filesystem, short of the {need} a batch of {bytes} needs with the reserve"
    )]
    Full {
        /// The store directory.
        dir: std::path::PathBuf,
        /// Bytes free to the daemon.
        free: u64,
        /// Bytes the batch asked for (twice its records, and the reserve).
        need: u64,
        /// The batch's records, serialized.
        bytes: u64,
    },
    /// The store's filesystem could not be asked how much room it has.
    #[error("record store {dir}: free space unknown: {source}")]
    Statvfs {
        /// The store directory.
        dir: std::path::PathBuf,
        /// The cause.
        #[source]
        source: nix::Error,
    },
}

/// Room the store leaves free on its filesystem. An append that would leave
/// less is refused before sled writes anything, and is held and retried as
/// any write failure is. sled 0.34 can wedge when a log write fails for
/// want of space (a flush waits for a write that never comes; see
/// `vendor/sled/PATCHES.md`): a store that stops short of the end, for
/// itself and for sled's own background writes, does not meet that when it
/// is the store that fills the disk.
pub const DISK_RESERVE_BYTES: u64 = 16 << 20;

/// The store's page cache by default (sled's own default is 1 GiB). The
/// vendored sled evicts within a few pages of this (see
/// `vendor/sled/PATCHES.md`); beyond it sled keeps a few dozen bytes per
/// page of the store.
pub const DEFAULT_CACHE_BYTES: u64 = 16 << 20;

/// Keeps the C allocator from holding on to memory the store once used.
/// Call it once, first thing in the process.
///
/// glibc serves a block of at least its mmap threshold (128 KiB to start)
/// with a mapping of its own, returned to the system on free; but each such
/// free raises the threshold to the freed size (up to 32 MiB), after which
/// blocks that size come from the heap and stay there when freed. The
/// store's batches (posting lists, chunks of records, sled's buffers) are
/// such blocks, so the daemon's memory grew with each larger batch. Pinning
/// the threshold stops that; a no-op elsewhere than glibc.
pub fn pin_allocator_threshold() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; 128 KiB is glibc's
    // own default threshold.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 << 10);
    }
}

/// Hands the allocator's free pages back to the system. Freed blocks in the
/// middle of glibc's heaps (one per thread that allocates: the pipeline,
/// the writer, sled's and tokio's workers) are otherwise kept for reuse, so
/// resident memory creeps up with fragmentation though the live heap does
/// not. The daemon calls this on each status tick; a no-op elsewhere than glibc.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns unused pages; it takes the arenas' locks.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// How long `Store::open` waits for another handle's lock to go. sled
/// releases its file lock from a background thread after the handle is
/// dropped, so a restart (or a reopen in the same process) can find the lock
/// still held for a few milliseconds.
pub const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Whether sled failed to open because another handle holds the lock. sled
/// 0.34 reports this only as an `Other` error with its own wording (the
/// `flock` errno is formatted into the message), so the message is the test.
fn is_lock_held(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::Other && e.to_string().starts_with("could not acquire lock")
}

/// Opens the sled database in `dir`, retrying while its lock is held, for at
/// most `wait`. Any other error returns at once.
fn open_db(dir: &Path, wait: std::time::Duration, cache: u64) -> Result<sled::Db, StoreError> {
    let config = sled::Config::new()
        .path(dir)
        .cache_capacity(cache)
        .mode(sled::Mode::HighThroughput);
    let deadline = std::time::Instant::now() + wait;
    let mut pause = std::time::Duration::from_millis(5);
    loop {
        match config.open() {
            Err(sled::Error::Io(e)) if is_lock_held(&e) => {
                let now = std::time::Instant::now();
                if now >= deadline {
                    return Err(StoreError::Locked { dir: dir.into() });
                }
                std::thread::sleep(pause.min(deadline - now));
                pause = (pause * 2).min(std::time::Duration::from_millis(100));
            }
            other => return Ok(other?),
        }
    }
}

/// What [`Store::read_after_where`] read.
#[derive(Debug, Default)]
pub struct Read {
    /// The records wanted, in order.
    pub records: Vec<Record>,
    /// The last seq looked at (the one asked after, when none was).
    pub through: u64,
    /// Records looked at, wanted or not.
    pub seen: usize,
}

/// The outcome of walking the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyReport {
    /// Records checked.
    pub checked: u64,
    /// The chain's first seq (after retention).
    pub first: u64,
    /// The last seq.
    pub last: u64,
    /// The first record that fails, and why.
    pub first_bad: Option<(u64, String)>,
}

impl VerifyReport {
    /// True when the whole chain verifies.
    pub fn ok(&self) -> bool {
        self.first_bad.is_none()
    }
}

/// Where a follower stands: the last seq it handled, and how many records
/// retention removed before it could handle them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Cursor {
    /// The last record handled.
    pub seq: u64,
    /// Records removed before this follower handled them.
    pub lost: u64,
}

/// What a retention pass did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Trim {
    /// Records removed.
    pub removed: u64,
    /// The last removed seq.
    pub last: u64,
    /// Followers that lost records they had not handled, and how many.
    pub lost: Vec<(String, u64)>,
}

/// The chain's end: the last seq and its MAC.
struct Head {
    seq: u64,
    mac: [u8; MAC_LEN],
}

/// The sled handles of an open store (cheap to clone: each is shared).
#[derive(Clone)]
struct Trees {
    db: sled::Db,
    records: sled::Tree,
    index: sled::Tree,
    meta: sled::Tree,
    cursors: sled::Tree,
    state: sled::Tree,
}

impl Trees {
    fn open(dir: &Path, wait: std::time::Duration, cache: u64) -> Result<Self, StoreError> {
        let db = open_db(dir, wait, cache)?;
        Ok(Self {
            records: db.open_tree("records")?,
            index: db.open_tree("index")?,
            meta: db.open_tree("meta")?,
            cursors: db.open_tree("cursors")?,
            state: db.open_tree("state")?,
            db,
        })
    }

    /// The chain's end as stored, and the postings past the index's mark.
    fn load(&self) -> Result<(Head, Pending), StoreError> {
        let mut head = {
            let (seq, mac) = anchor(&self.meta)?;
            Head { seq, mac }
        };
        if let Some((_, v)) = self.records.last()? {
            if let Some(Some(e)) = entries(&v).last() {
                head.seq = e.seq;
                head.mac.copy_from_slice(e.mac);
            }
        }
        let indexed = self.index.get(INDEXED)?.map_or(0, |v| be(&v));
        let mut pending = Pending::default();
        for item in self.records.range((indexed + 1).to_be_bytes()..) {
            let (_, chunk) = item?;
            for e in entries(&chunk).flatten() {
                if let Ok(rec) = parse_record(e.json) {
                    pending.add(&rec);
                }
            }
        }
        Ok((head, pending))
    }
}

/// The sled store and the chain key.
pub struct Store {
    dir: std::path::PathBuf,
    cache: u64,
    /// `None` only while [`Store::reopen`] replaces a failed handle.
    trees: RwLock<Option<Trees>>,
    key: hmac::Key,
    head: Mutex<Head>,
    /// Signalled when the head moves (records appended).
    grown: Condvar,
    /// The followers running now: only they hold retention back.
    followers: Mutex<Vec<String>>,
    /// Postings not yet in the `index` tree (see [`Pending`]).
    pending: Mutex<Pending>,
    /// Retention (write) excludes verification (read).
    trim: RwLock<()>,
    /// Held around every sled write and flush, so one thread at a time
    /// writes. sled 0.34 could hang on a full disk when a follower's flush
    /// (waiting for the log to reach disk, holding sled's concurrency
    /// guard) met the writer's batch (waiting for that guard exclusively):
    /// the thread that writes the log out then waited too.
    writes: Mutex<()>,
    /// Held by the thread that appends or reopens, for the whole of it, so
    /// that `head` is held only to read or move the head: the followers and
    /// the status never wait on the store's I/O, nor on a long batch being
    /// chained.
    appending: Mutex<()>,
}

/// Posting lists gathered in memory over several batches before they go to
/// the `index` tree as one list per name: sled pays per key written, so a
/// path touched many times costs one write per flush, not one per batch.
/// The records are the truth: after a crash, postings past the index's
/// `indexed` mark are rebuilt from them on open.
#[derive(Default)]
struct Pending {
    lists: HashMap<(u8, Box<str>), Vec<u8>>,
    pairs: usize,
    since: Option<std::time::Instant>,
}

/// Pairs held in memory before the postings are written.
const PENDING_PAIRS: usize = 1 << 21;
/// Age at which held postings are written regardless.
const PENDING_AGE: std::time::Duration = std::time::Duration::from_secs(5);
/// Bytes of posting lists per sled batch (see [`Store::write_postings`]).
const INDEX_BATCH_BYTES: usize = 256 << 10;
/// Pairs in a posting list before the next pairs start a new one.
const LIST_PAIRS: usize = 1024;
/// The file in the store's directory noting the chain's end (see
/// [`Store::write_head_file`]).
const HEAD_FILE: &str = "head";
/// The index key holding the last seq whose postings are written.
const INDEXED: &[u8] = b"\xffindexed";

impl Pending {
    fn add(&mut self, rec: &Record) {
        if self.pairs == 0 {
            self.since = Some(std::time::Instant::now());
        }
        let mut pair = [0u8; 16];
        pair[..8].copy_from_slice(&rec.time_ns.to_be_bytes());
        pair[8..].copy_from_slice(&rec.seq.to_be_bytes());
        let mut post = |kind: u8, name: &str| {
            self.lists
                .entry((kind, Box::from(name)))
                .or_default()
                .extend_from_slice(&pair);
            self.pairs += 1;
        };
        post(posting::ALL, "");
        post(posting::ROLE, &rec.role);
        post(posting::OBJECT, &rec.object);
        for f in &rec.findings {
            post(posting::FINGERPRINT, &f.fingerprint);
        }
        if rec.alert.is_some() {
            post(posting::ALERT, "");
        }
    }

    fn due(&self) -> bool {
        self.pairs >= PENDING_PAIRS || self.since.is_some_and(|t| t.elapsed() >= PENDING_AGE)
    }
}

/// Records per value in the `records` tree.
const CHUNK: usize = 32;
/// Bytes before an entry's JSON: seq, JSON length, MAC.
const ENTRY_HEAD: usize = 8 + 4 + MAC_LEN;

/// The posting lists in the `index` tree, by their key's first byte.
pub(crate) mod posting {
    /// Every record (time queries).
    pub const ALL: u8 = b't';
    /// Records with an alert.
    pub const ALERT: u8 = b'a';
    /// By role name.
    pub const ROLE: u8 = b'r';
    /// By object (path or destination).
    pub const OBJECT: u8 = b'o';
    /// By finding fingerprint.
    pub const FINGERPRINT: u8 = b'f';
}

/// `kind ‖ name ‖ 0`: the key prefix of one posting list.
pub(crate) fn posting_prefix(kind: u8, name: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(name.len() + 10 + 8);
    k.push(kind);
    k.extend_from_slice(name.as_bytes());
    k.push(0);
    k
}

/// A key and its value, to write.
type KeyValue = (Vec<u8>, Vec<u8>);

/// The key and value that add `pairs` (time ‖ seq, in seq order) to the
/// posting list of `kind` and `name`: its newest list grown, while that holds
/// fewer than [`LIST_PAIRS`], or a new list keyed by its first seq. Pairs the
/// list already holds are left out; `None` when nothing is left.
fn extend_list(
    index: &sled::Tree,
    kind: u8,
    name: &str,
    pairs: &[u8],
) -> Result<Option<KeyValue>, StoreError> {
    let prefix = posting_prefix(kind, name);
    let newest = index.scan_prefix(&prefix).next_back().transpose()?;
    let held = newest.as_ref().map_or(0, |(_, v)| v.len() - v.len() % 16);
    let last_seq = match &newest {
        Some((_, v)) if held >= 16 => be(&v[held - 8..held]),
        _ => 0,
    };
    let fresh: Vec<u8> = pairs
        .chunks_exact(16)
        .filter(|p| be(&p[8..]) > last_seq)
        .flatten()
        .copied()
        .collect();
    if fresh.is_empty() {
        return Ok(None);
    }
    match newest {
        Some((key, value)) if held / 16 < LIST_PAIRS => {
            let mut grown = Vec::with_capacity(held + fresh.len());
            grown.extend_from_slice(&value[..held]);
            grown.extend_from_slice(&fresh);
            Ok(Some((key.to_vec(), grown)))
        }
        _ => {
            let mut key = prefix;
            key.extend_from_slice(&fresh[8..16]);
            Ok(Some((key, fresh)))
        }
    }
}

/// A head as a heartbeat writes it: `SEQ:MAC` (MAC in hex).
pub fn parse_head(s: &str) -> Result<(u64, String), String> {
    let bad = || format!("bad head `{s}` (expected SEQ:MAC, as a heartbeat carries it)");
    let (seq, mac) = s.split_once(':').ok_or_else(bad)?;
    let seq = seq.parse::<u64>().map_err(|_| bad())?;
    if mac.len() != 64 || !mac.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad());
    }
    Ok((seq, mac.to_ascii_lowercase()))
}

/// Bytes in lowercase hex.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn be(bytes: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&bytes[..8]);
    u64::from_be_bytes(b)
}

/// One stored record inside a chunk.
struct Entry<'a> {
    seq: u64,
    mac: &'a [u8],
    json: &'a [u8],
}

/// The entries of a chunk; `None` marks a malformed remainder.
fn entries(mut chunk: &[u8]) -> impl Iterator<Item = Option<Entry<'_>>> {
    let mut broken = false;
    std::iter::from_fn(move || {
        if chunk.is_empty() || broken {
            return None;
        }
        if chunk.len() < ENTRY_HEAD {
            broken = true;
            return Some(None);
        }
        let seq = be(chunk);
        let len = u32::from_be_bytes([chunk[8], chunk[9], chunk[10], chunk[11]]) as usize;
        if chunk.len() < ENTRY_HEAD + len {
            broken = true;
            return Some(None);
        }
        let e = Entry {
            seq,
            mac: &chunk[12..ENTRY_HEAD],
            json: &chunk[ENTRY_HEAD..ENTRY_HEAD + len],
        };
        chunk = &chunk[ENTRY_HEAD + len..];
        Some(Some(e))
    })
}

fn chain_mac(key: &hmac::Key, prev: &[u8], seq: u64, json: &[u8]) -> [u8; MAC_LEN] {
    let mut ctx = hmac::Context::with_key(key);
    ctx.update(prev);
    ctx.update(&seq.to_be_bytes());
    ctx.update(json);
    let mut mac = [0u8; MAC_LEN];
    mac.copy_from_slice(ctx.sign().as_ref());
    mac
}

impl Store {
    /// Opens (or creates) the store in `dir`, with the chain key at `key_file`
    /// (created 0600 on first use).
    /// Waits up to [`LOCK_WAIT`] for another handle's lock to go.
    pub fn open(dir: &Path, key_file: &Path) -> Result<Self, StoreError> {
        Self::open_waiting(dir, key_file, LOCK_WAIT, DEFAULT_CACHE_BYTES)
    }

    /// [`Store::open`] for a store that must already exist, with its key:
    /// for checks (`monitor verify --store`), which must never create an
    /// empty store where a typo pointed them and call it intact.
    pub fn open_existing(dir: &Path, key_file: &Path) -> Result<Self, StoreError> {
        let not_a_store = |why: String| StoreError::NotAStore {
            dir: dir.to_owned(),
            why,
        };
        for file in ["conf", "db"] {
            if !dir.join(file).is_file() {
                return Err(not_a_store(format!(
                    "it has no sled `{file}` file (give the store itself, e.g. /var/lib/monitor/record)"
                )));
            }
        }
        if std::fs::symlink_metadata(key_file).is_err() {
            return Err(not_a_store(format!(
                "its chain key {} does not exist",
                key_file.display()
            )));
        }
        Self::open(dir, key_file)
    }

    /// [`Store::open`] with a page cache of at most `cache` bytes.
    pub fn open_with_cache(dir: &Path, key_file: &Path, cache: u64) -> Result<Self, StoreError> {
        Self::open_waiting(dir, key_file, LOCK_WAIT, cache)
    }

    /// [`Store::open`], waiting at most `wait` for the lock.
    fn open_waiting(
        dir: &Path,
        key_file: &Path,
        wait: std::time::Duration,
        cache: u64,
    ) -> Result<Self, StoreError> {
        let key = monitor_pii::load_or_create_key(key_file)?;
        let trees = Trees::open(dir, wait, cache)?;
        let (head, pending) = trees.load()?;
        Ok(Self {
            dir: dir.to_owned(),
            cache,
            trees: RwLock::new(Some(trees)),
            pending: Mutex::new(pending),
            key: hmac::Key::new(hmac::HMAC_SHA256, &key),
            head: Mutex::new(head),
            grown: Condvar::new(),
            followers: Mutex::new(Vec::new()),
            trim: RwLock::new(()),
            writes: Mutex::new(()),
            appending: Mutex::new(()),
        })
    }

    /// The open handles (a clone: no lock is held while they are used).
    fn t(&self) -> Result<Trees, StoreError> {
        self.trees
            .read()
            .expect("trees lock")
            .clone()
            .ok_or(StoreError::Reopening)
    }

    /// Drops the sled handle and opens the store again: after a write
    /// failure (a full disk) sled refuses every later write until reopened.
    /// What was not on disk is gone; the head and the held postings are
    /// read back from what is. The caller appends again what it still holds.
    ///
    /// Readers meanwhile get [`StoreError::Reopening`] at once rather than
    /// waiting: sled's handle is dropped and opened again outside every
    /// lock that a reader takes.
    pub fn reopen(&self) -> Result<(), StoreError> {
        let _appending = self.appending.lock().expect("appending lock");
        let _trim = self.trim.write().expect("trim lock");
        let old = self.trees.write().expect("trees lock").take();
        drop(old);
        let fresh = Trees::open(&self.dir, LOCK_WAIT, self.cache)?;
        let (h, pending) = fresh.load()?;
        *self.head.lock().expect("head lock") = h;
        *self.pending.lock().expect("pending lock") = pending;
        *self.trees.write().expect("trees lock") = Some(fresh);
        Ok(())
    }

    /// Appends `batch` in order: assigns each its seq, chains it, indexes it,
    /// and flushes to disk once. Returns the last seq.
    ///
    /// Records are stored 32 to a value, and each index gets one posting
    /// list per batch and name (pairs of time and seq), so a batch costs
    /// sled a few writes per distinct object rather than six per record.
    pub fn append(&self, batch: &mut [Record]) -> Result<u64, StoreError> {
        let _appending = self.appending.lock().expect("appending lock");
        let t = self.t()?;
        let (mut seq, mut prev) = {
            let head = self.head.lock().expect("head lock");
            (head.seq, head.mac)
        };
        let first = seq + 1;
        let mut records = sled::Batch::default();
        let mut chunk: Vec<u8> = Vec::new();
        let mut chunk_first = first;
        let mut bytes = 0u64;
        for (i, rec) in batch.iter_mut().enumerate() {
            seq += 1;
            rec.seq = seq;
            let json =
                serde_json::to_vec(rec).map_err(|source| StoreError::Json { seq, source })?;
            let mac = chain_mac(&self.key, &prev, seq, &json);
            if i % CHUNK == 0 && !chunk.is_empty() {
                bytes += chunk.len() as u64;
                records.insert(&chunk_first.to_be_bytes(), std::mem::take(&mut chunk));
            }
            if chunk.is_empty() {
                chunk_first = seq;
            }
            chunk.extend_from_slice(&seq.to_be_bytes());
            chunk.extend_from_slice(&(json.len() as u32).to_be_bytes());
            chunk.extend_from_slice(&mac);
            chunk.extend_from_slice(&json);
            prev = mac;
        }
        if !chunk.is_empty() {
            bytes += chunk.len() as u64;
            records.insert(&chunk_first.to_be_bytes(), chunk);
        }
        self.check_room(bytes)?;
        {
            let _writes = self.writes.lock().expect("writes lock");
            t.records.apply_batch(records)?;
            // Only what is on disk moves the head: a batch that fails here
            // is appended again, with the same seqs, by the writer.
            t.db.flush()?;
        }
        {
            let mut head = self.head.lock().expect("head lock");
            head.seq = seq;
            head.mac = prev;
        }
        self.grown.notify_all();
        self.write_head_file(seq, &prev);
        let mut pending = self.pending.lock().expect("pending lock");
        for rec in batch.iter() {
            pending.add(rec);
        }
        if pending.due() {
            // Postings are rebuilt from the records if this does not reach disk.
            self.write_postings(&mut pending, seq)?;
        }
        Ok(seq)
    }

    /// Refuses a batch of `bytes` (serialized) when the store's filesystem
    /// would keep less than [`DISK_RESERVE_BYTES`] after it: sled writes a
    /// batch to its log, then its pages again as it compacts, so twice the
    /// batch is asked for.
    fn check_room(&self, bytes: u64) -> Result<(), StoreError> {
        let fs = nix::sys::statvfs::statvfs(&self.dir).map_err(|source| StoreError::Statvfs {
            dir: self.dir.clone(),
            source,
        })?;
        let free = fs.blocks_available().saturating_mul(fs.fragment_size());
        let need = bytes.saturating_mul(2).saturating_add(DISK_RESERVE_BYTES);
        if free < need {
            return Err(StoreError::Full {
                dir: self.dir.clone(),
                free,
                need,
                bytes,
            });
        }
        Ok(())
    }

    /// Writes the held postings to the `index` tree in key order, then the
    /// mark `through`.
    ///
    /// A name's pairs are appended to its newest list while that holds fewer
    /// than [`LIST_PAIRS`]; only then does a new key start. sled keeps a
    /// little memory for every page of every tree, so keys must grow with
    /// the pairs stored, not with the flushes that wrote them.
    ///
    /// The lists go in sled batches of at most [`INDEX_BATCH_BYTES`]: sled
    /// keeps every node a batch replaces until the batch ends, so one batch
    /// of every list would hold hundreds of megabytes for a moment (and the
    /// allocator keeps what it once held). Splitting is safe: the mark goes
    /// last, and after a crash the lists past it are rebuilt from the
    /// records, where pairs a list already holds are skipped.
    fn write_postings(&self, pending: &mut Pending, through: u64) -> Result<(), StoreError> {
        let t = self.t()?;
        let _writes = self.writes.lock().expect("writes lock");
        let mut lists: Vec<_> = pending.lists.drain().collect();
        lists.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let mut index = sled::Batch::default();
        let mut bytes = 0;
        for ((kind, name), pairs) in lists {
            let Some((key, value)) = extend_list(&t.index, kind, &name, &pairs)? else {
                continue;
            };
            bytes += key.len() + value.len();
            index.insert(key, value);
            if bytes >= INDEX_BATCH_BYTES {
                t.index.apply_batch(std::mem::take(&mut index))?;
                bytes = 0;
            }
        }
        index.insert(INDEXED, &through.to_be_bytes());
        t.index.apply_batch(index)?;
        pending.pairs = 0;
        pending.since = None;
        Ok(())
    }

    /// Writes held postings once they are old enough (the writer calls this when idle).
    pub fn maintain(&self) -> Result<(), StoreError> {
        self.write_held(false)
    }

    /// Writes every held posting and flushes (on shutdown).
    pub fn sync(&self) -> Result<(), StoreError> {
        self.write_held(true)
    }

    /// Writes the held postings (all of them, or only when due) and flushes.
    fn write_held(&self, all: bool) -> Result<(), StoreError> {
        let _appending = self.appending.lock().expect("appending lock");
        let t = self.t()?;
        let mut pending = self.pending.lock().expect("pending lock");
        if pending.pairs == 0 || !(all || pending.due()) {
            return Ok(());
        }
        let through = self.head.lock().expect("head lock").seq;
        self.write_postings(&mut pending, through)?;
        let _writes = self.writes.lock().expect("writes lock");
        t.db.flush()?;
        Ok(())
    }

    /// The names of the held posting lists of one kind.
    pub(crate) fn pending_names(&self, kind: u8) -> Vec<String> {
        let pending = self.pending.lock().expect("pending lock");
        pending
            .lists
            .keys()
            .filter(|(k, _)| *k == kind)
            .map(|(_, n)| n.to_string())
            .collect()
    }

    /// The held pairs of one posting list (newest last).
    pub(crate) fn pending_pairs(&self, kind: u8, name: &str, prefix_match: bool) -> Vec<u8> {
        let pending = self.pending.lock().expect("pending lock");
        if !prefix_match {
            return pending
                .lists
                .get(&(kind, Box::from(name)))
                .cloned()
                .unwrap_or_default();
        }
        let mut out = Vec::new();
        for ((k, n), pairs) in &pending.lists {
            let hit = if prefix_match {
                n.starts_with(name)
            } else {
                **n == *name
            };
            if *k == kind && hit {
                out.extend_from_slice(pairs);
            }
        }
        out
    }

    /// The record `seq`, if stored.
    pub fn get(&self, seq: u64) -> Result<Option<Record>, StoreError> {
        let t = self.t()?;
        let Some(item) = t.records.range(..=seq.to_be_bytes()).next_back() else {
            return Ok(None);
        };
        let (_, chunk) = item?;
        for e in entries(&chunk).flatten() {
            if e.seq == seq {
                return parse_record(e.json)
                    .map(Some)
                    .map_err(|source| StoreError::Json { seq, source });
            }
        }
        Ok(None)
    }

    /// Number of records stored, or `None` while the store is reopening
    /// (or cannot be read): never waits on a write.
    pub fn records(&self) -> Option<u64> {
        let anchor = self.t().and_then(|t| anchor(&t.meta)).ok()?.0;
        Some(self.head().saturating_sub(anchor))
    }

    /// Bytes the store takes on disk, or `None` while it is reopening.
    pub fn size_on_disk(&self) -> Option<u64> {
        self.t().and_then(|t| Ok(t.db.size_on_disk()?)).ok()
    }

    /// Notes the chain's end, once on disk, in a file beside sled's own
    /// (`head`: `SEQ:MAC`). sled drops whatever follows a message that
    /// fails its checksum as a write torn by a crash, so a byte changed on
    /// disk could cut the record's tail without a trace; `verify` compares
    /// the chain with this note. Written after sled's flush, so after a
    /// crash it can only be behind the store, never ahead. Best effort: a
    /// failure to write it costs only this check.
    fn write_head_file(&self, seq: u64, mac: &[u8; MAC_LEN]) {
        let text = format!("{seq}:{}\n", hex(mac));
        let _ = std::fs::write(self.dir.join(HEAD_FILE), text);
    }

    /// The head [`Store::write_head_file`] noted, if it reads back.
    fn head_file(&self) -> Option<(u64, String)> {
        let text = std::fs::read_to_string(self.dir.join(HEAD_FILE)).ok()?;
        parse_head(text.trim()).ok()
    }

    /// Walks the chain from its anchor and names the first record that is
    /// altered, missing or out of place, then checks its end against the
    /// head the store noted beside it.
    pub fn verify(&self) -> Result<VerifyReport, StoreError> {
        let mut report = self.verify_chain()?;
        if report.first_bad.is_none() {
            if let Some((seq, mac)) = self.head_file() {
                if let Some(why) = self.against_head(&report, seq, &mac)? {
                    report.first_bad = Some((
                        seq.min(report.last + 1),
                        format!("{why} (the store's own note of its end): damaged on disk; possible tampering"),
                    ));
                }
            }
        }
        Ok(report)
    }

    /// What is wrong with the chain `report` describes, measured against a
    /// head (`seq`, `mac`) taken earlier; `None` when it holds.
    fn against_head(
        &self,
        report: &VerifyReport,
        seq: u64,
        mac: &str,
    ) -> Result<Option<String>, StoreError> {
        Ok(if seq > report.last {
            Some(format!(
                "the record ends at {} but a head taken earlier is at {seq}: records {}..={seq} were removed",
                report.last,
                report.last + 1
            ))
        } else if seq < report.first {
            None // Removed by retention since: nothing left to compare.
        } else {
            match self.mac_of(seq)? {
                Some(m) if m.eq_ignore_ascii_case(mac) => None,
                Some(_) => Some(format!(
                    "record {seq} does not carry the MAC a head taken earlier holds: the record was rewritten"
                )),
                None => Some(format!("record {seq} is missing")),
            }
        })
    }

    /// Walks the chain from its anchor and names the first record that is
    /// altered, missing or out of place.
    fn verify_chain(&self) -> Result<VerifyReport, StoreError> {
        let t = self.t()?;
        let _guard = self.trim.read().expect("trim lock");
        let (anchor_seq, mut prev) = anchor(&t.meta)?;
        let mut report = VerifyReport {
            checked: 0,
            first: anchor_seq + 1,
            last: anchor_seq,
            first_bad: None,
        };
        for item in t.records.iter() {
            let (k, chunk) = match item {
                Err(sled::Error::Corruption { at, .. }) => {
                    report.first_bad = Some((
                        report.last + 1,
                        format!(
                            "the store is damaged on disk after record {} (sled: corruption at {at:?}); possible tampering",
                            report.last
                        ),
                    ));
                    break;
                }
                other => other?,
            };
            if let Err(why) = self.verify_chunk(&k, &chunk, &mut prev, &mut report) {
                report.first_bad = Some((report.last + 1, why));
                break;
            }
        }
        Ok(report)
    }

    /// Checks one chunk, continuing the chain from `prev`; counts what
    /// verifies into `report` and says why the first bad record is bad.
    fn verify_chunk(
        &self,
        key: &[u8],
        chunk: &[u8],
        prev: &mut [u8; MAC_LEN],
        report: &mut VerifyReport,
    ) -> Result<(), String> {
        let expect = report.last + 1;
        if key.len() != 8 || be(key) < expect {
            return Err(format!("record {expect} is out of place (key {key:?})"));
        }
        if be(key) > expect {
            return Err(format!(
                "record {expect} is missing (next stored is {}): removed, or damaged on disk; possible tampering",
                be(key)
            ));
        }
        for e in entries(chunk) {
            let expect = report.last + 1;
            let e = e.ok_or_else(|| format!("record {expect} does not decode"))?;
            if e.seq != expect {
                return Err(format!("record {expect} is missing or moved"));
            }
            if chain_mac(&self.key, prev, e.seq, e.json) != e.mac {
                return Err(format!(
                    "record {expect} was altered (its MAC does not match)"
                ));
            }
            if !parse_record(e.json).is_ok_and(|r| r.seq == e.seq) {
                return Err(format!("record {expect} does not decode"));
            }
            prev.copy_from_slice(e.mac);
            report.checked += 1;
            report.last = expect;
        }
        Ok(())
    }

    /// Removes the oldest records, whole chunks at a time, while every record
    /// in the chunk is older than `cutoff_ns`; moves the anchor past them and
    /// drops their postings. Returns (count, last removed seq).
    ///
    /// Records a running follower has not passed stay, unless they are also
    /// older than `hold_ns`: then they go anyway, the follower's cursor moves
    /// past them, and what it lost is counted in [`Trim::lost`].
    pub fn trim_before(&self, cutoff_ns: u64) -> Result<(u64, u64), StoreError> {
        self.trim(cutoff_ns, cutoff_ns).map(|t| (t.removed, t.last))
    }

    /// [`Store::trim_before`], holding records a follower still needs until
    /// they are older than `hold_ns` (at most `cutoff_ns`).
    pub fn trim(&self, cutoff_ns: u64, hold_ns: u64) -> Result<Trim, StoreError> {
        let t = self.t()?;
        self.sync()?;
        let _guard = self.trim.write().expect("trim lock");
        let _writes = self.writes.lock().expect("writes lock");
        // Read before the anchor moves: a follower with no saved cursor yet
        // stands at the anchor, and would seem to lose nothing.
        let followers = self.followers.lock().expect("followers lock").clone();
        let cursors = followers
            .into_iter()
            .map(|name| Ok((self.cursor(&name)?, name)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        let passed = cursors.iter().map(|(c, _)| c.seq).min().unwrap_or(u64::MAX);
        let mut removed = 0;
        let mut last = 0;
        for item in t.records.iter() {
            let (k, chunk) = item?;
            let mut end: Option<(u64, Vec<u8>)> = None;
            let mut n = 0;
            for e in entries(&chunk).flatten() {
                let time = parse_record(e.json)
                    .map_err(|source| StoreError::Json { seq: e.seq, source })?
                    .time_ns;
                let held = e.seq > passed && time >= hold_ns.min(cutoff_ns);
                if time >= cutoff_ns || held {
                    end = None;
                    break;
                }
                n += 1;
                end = Some((e.seq, e.mac.to_vec()));
            }
            let Some((seq, mac)) = end else { break };
            // The anchor moves before the records go, so a crash in between
            // leaves a chain that still verifies.
            let mut a = Vec::with_capacity(8 + MAC_LEN);
            a.extend_from_slice(&seq.to_be_bytes());
            a.extend_from_slice(&mac);
            t.meta.insert("anchor", a)?;
            t.records.remove(k)?;
            removed += n;
            last = seq;
        }
        if removed > 0 {
            for item in t.index.iter() {
                let (k, pairs) = item?;
                if &*k == INDEXED {
                    continue;
                }
                let keep: Vec<u8> = pairs
                    .chunks_exact(16)
                    .filter(|p| be(&p[8..]) > last)
                    .flatten()
                    .copied()
                    .collect();
                if keep.is_empty() {
                    t.index.remove(k)?;
                } else if keep.len() != pairs.len() {
                    t.index.insert(k, keep)?;
                }
            }
        }
        let mut lost = Vec::new();
        for (c, name) in cursors {
            if removed > 0 && c.seq < last {
                let n = last - c.seq;
                self.put_cursor(
                    &name,
                    Cursor {
                        seq: last,
                        lost: c.lost + n,
                    },
                )?;
                lost.push((name, n));
            }
        }
        t.db.flush()?;
        Ok(Trim {
            removed,
            last,
            lost,
        })
    }

    /// The chain's head: the last seq and its MAC (hex), for heartbeats
    /// that leave the host.
    pub fn head_mac(&self) -> (u64, String) {
        let h = self.head.lock().expect("head lock");
        (h.seq, hex(&h.mac))
    }

    /// The MAC (hex) stored with record `seq`, if it is kept.
    pub fn mac_of(&self, seq: u64) -> Result<Option<String>, StoreError> {
        let t = self.t()?;
        let Some(item) = t.records.range(..=seq.to_be_bytes()).next_back() else {
            return Ok(None);
        };
        let (_, chunk) = item?;
        let mac = entries(&chunk)
            .flatten()
            .find(|e| e.seq == seq)
            .map(|e| e.mac.iter().map(|b| format!("{b:02x}")).collect());
        Ok(mac)
    }

    /// [`Store::verify`], and then a check against a head taken off the
    /// host earlier (`seq` and its MAC, as a heartbeat carried it): the
    /// record must still hold that record with that MAC. A record cut back
    /// past it, or rewritten, fails here even when what is left verifies.
    pub fn verify_with_head(&self, head: Option<(u64, &str)>) -> Result<VerifyReport, StoreError> {
        let mut report = self.verify()?;
        let Some((seq, mac)) = head else {
            return Ok(report);
        };
        if report.first_bad.is_some() {
            return Ok(report);
        }
        if let Some(why) = self.against_head(&report, seq, mac)? {
            report.first_bad = Some((seq, why));
        }
        Ok(report)
    }

    /// The last record stored, if any is kept.
    pub fn last(&self) -> Result<Option<Record>, StoreError> {
        match self.head() {
            0 => Ok(None),
            seq => self.get(seq),
        }
    }

    /// The seq of the last record stored (0 when none ever was).
    pub fn head(&self) -> u64 {
        self.head.lock().expect("head lock").seq
    }

    /// Waits up to `timeout` for the head to pass `seq`; returns the head.
    pub fn wait_past(&self, seq: u64, timeout: std::time::Duration) -> u64 {
        let head = self.head.lock().expect("head lock");
        let (head, _) = self
            .grown
            .wait_timeout_while(head, timeout, |h| h.seq <= seq)
            .expect("head lock");
        head.seq
    }

    /// Up to `max` records after `seq` and up to the head, in order, parsing
    /// only those whose JSON `wants` accepts: [`Read::through`] says how far
    /// it looked, so a reader that passed over every one still moves on.
    /// Records removed by retention are simply not there: the first looked
    /// at may be past `seq + 1`.
    pub fn read_after_where(
        &self,
        seq: u64,
        max: usize,
        wants: impl Fn(&[u8]) -> bool,
    ) -> Result<Read, StoreError> {
        let t = self.t()?;
        // Only what is on disk: a batch whose flush failed is not handed out.
        let head = self.head();
        let mut read = Read {
            records: Vec::new(),
            through: seq,
            seen: 0,
        };
        let from = t
            .records
            .range(..=(seq + 1).to_be_bytes())
            .next_back()
            .transpose()?
            .map_or(seq + 1, |(k, _)| be(&k));
        for item in t.records.range(from.to_be_bytes()..) {
            let (_, chunk) = item?;
            for e in entries(&chunk).flatten() {
                if e.seq <= seq {
                    continue;
                }
                if e.seq > head {
                    return Ok(read);
                }
                if wants(e.json) {
                    let rec = parse_record(e.json)
                        .map_err(|source| StoreError::Json { seq: e.seq, source })?;
                    read.records.push(rec);
                }
                read.through = e.seq;
                read.seen += 1;
                if read.seen >= max {
                    return Ok(read);
                }
            }
        }
        Ok(read)
    }

    /// Follower `name`'s cursor. A follower seen for the first time starts
    /// at the chain's anchor: it is handed every record still kept.
    pub fn cursor(&self, name: &str) -> Result<Cursor, StoreError> {
        let t = self.t()?;
        Ok(match t.cursors.get(name)? {
            Some(v) if v.len() == 16 => Cursor {
                seq: be(&v[..8]),
                lost: be(&v[8..]),
            },
            _ => Cursor {
                seq: anchor(&t.meta)?.0,
                lost: 0,
            },
        })
    }

    /// Moves follower `name`'s cursor to `seq` (it has handled everything up
    /// to there), durably; returns the cursor as stored.
    pub fn advance(&self, name: &str, seq: u64) -> Result<Cursor, StoreError> {
        let t = self.t()?;
        let _writes = self.writes.lock().expect("writes lock");
        let c = Cursor {
            seq,
            lost: self.cursor(name)?.lost,
        };
        self.put_cursor(name, c)?;
        t.cursors.flush()?;
        Ok(c)
    }

    fn put_cursor(&self, name: &str, c: Cursor) -> Result<(), StoreError> {
        let t = self.t()?;
        let mut v = [0u8; 16];
        v[..8].copy_from_slice(&c.seq.to_be_bytes());
        v[8..].copy_from_slice(&c.lost.to_be_bytes());
        t.cursors.insert(name, &v)?;
        Ok(())
    }

    /// What follower `name` saved of its own state (the anomaly learner's
    /// baselines), if anything.
    pub fn state(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.t()?.state.get(name)?.map(|v| v.to_vec()))
    }

    /// Saves follower `name`'s own state, durably.
    pub fn save_state(&self, name: &str, value: &[u8]) -> Result<(), StoreError> {
        let t = self.t()?;
        let _writes = self.writes.lock().expect("writes lock");
        t.state.insert(name, value)?;
        t.state.flush()?;
        Ok(())
    }

    /// Registers a running follower: from now on retention waits for it.
    /// A cursor behind the anchor (records removed while it was away) moves
    /// to the anchor, and the gap is counted as lost; returns that gap.
    pub fn register_follower(&self, name: &str) -> Result<u64, StoreError> {
        let t = self.t()?;
        let _guard = self.trim.write().expect("trim lock");
        let _writes = self.writes.lock().expect("writes lock");
        let mut followers = self.followers.lock().expect("followers lock");
        if !followers.iter().any(|f| f == name) {
            followers.push(name.to_owned());
        }
        let anchor = anchor(&t.meta)?.0;
        let c = self.cursor(name)?;
        if c.seq >= anchor {
            return Ok(0);
        }
        let gap = anchor - c.seq;
        self.put_cursor(
            name,
            Cursor {
                seq: anchor,
                lost: c.lost + gap,
            },
        )?;
        t.cursors.flush()?;
        Ok(gap)
    }

    /// Stops waiting for follower `name` in retention (it was stopped).
    pub fn unregister_follower(&self, name: &str) {
        self.followers
            .lock()
            .expect("followers lock")
            .retain(|f| f != name);
    }

    /// The posting lists, for the query module.
    pub(crate) fn index(&self) -> Result<sled::Tree, StoreError> {
        Ok(self.t()?.index)
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        if let Err(e) = self.sync() {
            tracing::error!(error = %e, "record index not written at close (rebuilt at next open)");
        }
    }
}

/// Parses a stored record's JSON. The bytes are checked for UTF-8 whole
/// and then read as text, which spares serde_json checking each string on
/// its own (15-20% of a parse); bytes that are not UTF-8 are parsed as
/// bytes, for serde_json's own error.
fn parse_record(json: &[u8]) -> Result<Record, serde_json::Error> {
    match std::str::from_utf8(json) {
        Ok(text) => serde_json::from_str(text),
        Err(_) => serde_json::from_slice(json),
    }
}

fn anchor(meta: &sled::Tree) -> Result<(u64, [u8; MAC_LEN]), StoreError> {
    let mut mac = [0u8; MAC_LEN];
    Ok(match meta.get("anchor")? {
        Some(v) if v.len() == 8 + MAC_LEN => {
            mac.copy_from_slice(&v[8..]);
            (be(&v[..8]), mac)
        }
        _ => (0, mac),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::model::{Action, Outcome};

    pub(crate) fn record(time_ns: u64, role: &str, object: &str) -> Record {
        Record {
            seq: 0,
            time: String::new(),
            time_ns,
            host: "h".into(),
            pid: 1,
            exe: None,
            comm: "cat".into(),
            uid: 1000,
            user: Some("alice".into()),
            role: role.into(),
            action: Action::Read,
            object: object.into(),
            dest_host: None,
            class: Some("cardholder-data".into()),
            bytes: None,
            findings: vec![],
            outcome: Outcome::Allowed,
            errno: None,
            alert: None,
            truncated: false,
            tls: false,
            run: None,
            via: None,
            reason: None,
            context: None,
            repeats: None,
        }
    }

    fn temp() -> tempfile::TempDir {
        tempfile::tempdir().unwrap()
    }

    #[test]
    fn chain_verifies_and_names_the_altered_record() {
        let tmp = temp();
        let dir = tmp.path();
        let key = dir.join("record.key");
        {
            let store = Store::open(&dir.join("db"), &key).unwrap();
            let mut batch: Vec<Record> = (0..10).map(|i| record(i, "r", "/p")).collect();
            assert_eq!(store.append(&mut batch).unwrap(), 10);
            let report = store.verify().unwrap();
            assert!(report.ok(), "{report:?}");
            assert_eq!((report.checked, report.first, report.last), (10, 1, 10));
            // Flip one byte of record 4's JSON.
            let chunk = store
                .t()
                .unwrap()
                .records
                .get(1u64.to_be_bytes())
                .unwrap()
                .unwrap()
                .to_vec();
            let at = chunk.windows(9).position(|w| w == b"{\"seq\":4,").unwrap();
            let mut flipped = chunk.clone();
            flipped[at + 12] ^= 1;
            store
                .t()
                .unwrap()
                .records
                .insert(1u64.to_be_bytes(), flipped)
                .unwrap();
            let report = store.verify().unwrap();
            assert_eq!(report.first_bad.as_ref().unwrap().0, 4, "{report:?}");
            assert!(report.first_bad.unwrap().1.contains("altered"));
            assert_eq!(report.checked, 3);
            // Removing a record is found too.
            let without_4: Vec<u8> = entries(&chunk)
                .flatten()
                .filter(|e| e.seq != 4)
                .flat_map(|e| {
                    let mut v = e.seq.to_be_bytes().to_vec();
                    v.extend_from_slice(&(e.json.len() as u32).to_be_bytes());
                    v.extend_from_slice(e.mac);
                    v.extend_from_slice(e.json);
                    v
                })
                .collect();
            store
                .t()
                .unwrap()
                .records
                .insert(1u64.to_be_bytes(), without_4)
                .unwrap();
            let report = store.verify().unwrap();
            assert!(report.first_bad.unwrap().1.contains("record 4 is missing"));
            // So is a cut-off chunk.
            store
                .t()
                .unwrap()
                .records
                .insert(1u64.to_be_bytes(), &chunk[..chunk.len() - 5])
                .unwrap();
            let report = store.verify().unwrap();
            assert_eq!(report.first_bad.unwrap().0, 10);
        }
    }

    #[test]
    fn the_chain_survives_reopening_and_retention() {
        let tmp = temp();
        let dir = tmp.path();
        let key = dir.join("record.key");
        {
            let store = Store::open(&dir.join("db"), &key).unwrap();
            store
                .append(
                    &mut (0..5)
                        .map(|i| record(i * 10, "r", "/p"))
                        .collect::<Vec<_>>(),
                )
                .unwrap();
        }
        let store = Store::open(&dir.join("db"), &key).unwrap();
        store.append(&mut [record(100, "r", "/p")]).unwrap();
        assert!(store.verify().unwrap().ok());
        // Retention removes whole chunks: records 1-5 share one with a
        // record at time 40, so nothing goes before 45.
        assert_eq!(store.trim_before(25).unwrap(), (0, 0));
        assert_eq!(store.trim_before(45).unwrap(), (5, 5));
        let report = store.verify().unwrap();
        assert!(report.ok(), "{report:?}");
        assert_eq!((report.first, report.last, report.checked), (6, 6, 1));
        assert!(store.get(2).unwrap().is_none());
        assert_eq!(store.get(6).unwrap().unwrap().time_ns, 100);
        drop(store);
        // Reopened after retention removed everything but the anchor.
        let store = Store::open(&dir.join("db"), &key).unwrap();
        store.trim_before(u64::MAX).unwrap();
        drop(store);
        let store = Store::open(&dir.join("db"), &key).unwrap();
        assert_eq!(store.append(&mut [record(200, "r", "/p")]).unwrap(), 7);
        assert!(store.verify().unwrap().ok());
        assert_eq!(store.records(), Some(1));
        drop(store);
    }

    /// A snapshot whose write failed (a full disk) leaves a partial
    /// `snap.*.generating` file; the store opens past it, on the last
    /// finished snapshot and the log, with every record.
    #[test]
    fn an_unfinished_snapshot_does_not_stop_the_store_opening() {
        let tmp = temp();
        let dir = tmp.path();
        let key = dir.join("record.key");
        let store = Store::open(&dir.join("db"), &key).unwrap();
        store
            .append(&mut (0..40).map(|i| record(i, "r", "/p")).collect::<Vec<_>>())
            .unwrap();
        drop(store);
        // Sorted after every finished snapshot's name: the one read first.
        std::fs::write(
            dir.join("db/snap.FFFFFFFFFFFFFFF0.generating"),
            vec![0xA5; 4096],
        )
        .unwrap();
        let store = Store::open(&dir.join("db"), &key).unwrap();
        let report = store.verify().unwrap();
        assert!(report.ok(), "{report:?}");
        assert_eq!((report.first, report.last), (1, 40));
        assert_eq!(store.append(&mut [record(100, "r", "/p")]).unwrap(), 41);
    }

    /// The posting keys of one name, and the pairs they hold.
    fn posting_lists(store: &Store, kind: u8, name: &str) -> (usize, Vec<u64>) {
        let mut keys = 0;
        let mut seqs = Vec::new();
        for item in store
            .index()
            .unwrap()
            .scan_prefix(posting_prefix(kind, name))
        {
            let (_, pairs) = item.unwrap();
            keys += 1;
            seqs.extend(pairs.chunks_exact(16).map(|p| be(&p[8..])));
        }
        (keys, seqs)
    }

    #[test]
    fn a_name_keeps_one_posting_list_across_flushes_until_it_is_full() {
        let tmp = temp();
        let dir = tmp.path();
        let key = dir.join("record.key");
        let store = Store::open(&dir.join("db"), &key).unwrap();
        // 100 flushes, each holding one access to a hot path and one to a
        // path never seen again: sled keeps memory per page, so the keys
        // must follow the pairs, not the flushes.
        for i in 0..100u64 {
            let mut batch = [record(i, "r", "/hot"), record(i, "r", &format!("/cold{i}"))];
            store.append(&mut batch).unwrap();
            store.sync().unwrap();
        }
        let (keys, seqs) = posting_lists(&store, posting::OBJECT, "/hot");
        assert_eq!(keys, 1);
        assert_eq!(seqs, (0..100).map(|i| 2 * i + 1).collect::<Vec<_>>());
        assert_eq!(posting_lists(&store, posting::ROLE, "r").0, 1);
        let all = query::Filter::default();
        assert_eq!(store.who_accessed("/hot", &all).unwrap().records.len(), 100);

        // A crash after some lists were written but before the mark: the
        // lists past the mark are rebuilt from the records, and what a list
        // already holds is not added twice.
        store
            .index()
            .unwrap()
            .insert(INDEXED, &0u64.to_be_bytes())
            .unwrap();
        drop(store);
        let store = Store::open(&dir.join("db"), &key).unwrap();
        store.sync().unwrap();
        let (keys, again) = posting_lists(&store, posting::OBJECT, "/hot");
        assert_eq!((keys, &again), (1, &seqs));
        assert_eq!(store.who_accessed("/hot", &all).unwrap().records.len(), 100);

        // A full list is closed: the next pairs start a second one.
        let mut hot: Vec<Record> = (0..LIST_PAIRS as u64)
            .map(|i| record(i, "r", "/hot"))
            .collect();
        store.append(&mut hot).unwrap();
        store.sync().unwrap();
        store.append(&mut [record(0, "r", "/hot")]).unwrap();
        store.sync().unwrap();
        let (keys, seqs) = posting_lists(&store, posting::OBJECT, "/hot");
        assert_eq!((keys, seqs.len()), (2, 100 + LIST_PAIRS + 1));
        assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "pairs in order, none twice"
        );
    }

    #[test]
    fn a_check_opens_only_an_existing_store_and_creates_nothing() {
        let tmp = temp();
        let dir = tmp.path();
        let key = dir.join("record.key");
        let missing = dir.join("typo");
        let err = Store::open_existing(&missing, &key)
            .err()
            .expect("no store there");
        assert!(matches!(err, StoreError::NotAStore { .. }), "{err:?}");
        assert!(err.to_string().contains("is not a record store"), "{err}");
        assert!(!missing.exists() && !key.exists(), "nothing is created");
        let err = Store::open_existing(dir, &key)
            .err()
            .expect("the state dir is no store");
        assert!(err.to_string().contains("no sled `conf` file"), "{err}");
        assert_eq!(
            std::fs::read_dir(dir).unwrap().count(),
            0,
            "nothing is created"
        );
        {
            let store = Store::open(&dir.join("db"), &key).unwrap();
            store.append(&mut [record(1, "r", "/p")]).unwrap();
        }
        let err = Store::open_existing(&dir.join("db"), &dir.join("other.key"))
            .err()
            .expect("a key that does not exist");
        assert!(err.to_string().contains("does not exist"), "{err}");
        assert!(!dir.join("other.key").exists());
        let store = Store::open_existing(&dir.join("db"), &key).unwrap();
        assert_eq!(store.verify().unwrap().checked, 1);
    }

    #[test]
    fn a_byte_changed_on_disk_is_reported_not_raised() {
        let tmp = temp();
        let dir = tmp.path();
        let key = dir.join("record.key");
        {
            let store = Store::open(&dir.join("db"), &key).unwrap();
            for i in 0..20 {
                let mut batch: Vec<Record> = (0..100)
                    .map(|j| record(i * 100 + j, "r", &format!("/srv/cards/customer-{j}.json")))
                    .collect();
                store.append(&mut batch).unwrap();
            }
        }
        let db = dir.join("db").join("db");
        let mut bytes = std::fs::read(&db).unwrap();
        let needle = br#""object":"/srv/cards/customer-42.json""#;
        let hits: Vec<usize> = (0..bytes.len() - needle.len())
            .filter(|&i| &bytes[i..i + needle.len()] == needle)
            .collect();
        assert!(!hits.is_empty(), "a stored record on disk");
        for at in hits {
            bytes[at + 12] ^= 0x20;
        }
        std::fs::write(&db, bytes).unwrap();
        // sled drops what fails its checksum; the chain says where.
        let report = Store::open_existing(&dir.join("db"), &key)
            .unwrap()
            .verify()
            .unwrap();
        let (seq, why) = report.first_bad.expect("the damage is found");
        assert!(seq <= 43, "{seq}: {why}");
        assert!(why.contains("possible tampering"), "{why}");
    }

    #[test]
    fn a_held_store_is_refused_with_a_clear_error_and_a_released_one_opens() {
        let tmp = temp();
        let dir = tmp.path();
        let key = dir.join("record.key");
        let held = Store::open(&dir.join("db"), &key).unwrap();
        let wait = std::time::Duration::from_millis(50);
        let err = Store::open_waiting(&dir.join("db"), &key, wait, DEFAULT_CACHE_BYTES)
            .err()
            .expect("a second handle must not open a held store");
        assert!(matches!(err, StoreError::Locked { .. }), "{err:?}");
        assert!(err.to_string().contains("locked by another process"));
        // Released from another thread while the open waits: it gets in.
        let release = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(20));
            drop(held);
        });
        let store = Store::open(&dir.join("db"), &key).unwrap();
        release.join().unwrap();
        assert_eq!(store.append(&mut [record(1, "r", "/p")]).unwrap(), 1);
        drop(store);
    }

    #[test]
    fn cursors_persist_and_retention_waits_for_followers() {
        let tmp = temp();
        let dir = tmp.path();
        let key = dir.join("record.key");
        {
            let store = Store::open(&dir.join("db"), &key).unwrap();
            let mut batch: Vec<Record> = (0..100).map(|i| record(i, "r", "/p")).collect();
            store.append(&mut batch).unwrap();
            // Reads cross chunk boundaries and start after the given seq.
            let got = store.read_after_where(30, 10, |_| true).unwrap().records;
            let seqs: Vec<u64> = got.iter().map(|r| r.seq).collect();
            assert_eq!(seqs, (31..=40).collect::<Vec<_>>());
            assert_eq!(
                store.read_after_where(100, 10, |_| true).unwrap().records,
                vec![]
            );
            // A new follower starts at the anchor; its cursor is durable.
            assert_eq!(store.cursor("f").unwrap(), Cursor { seq: 0, lost: 0 });
            assert_eq!(store.register_follower("f").unwrap(), 0);
            store.advance("f", 40).unwrap();
        }
        let store = Store::open(&dir.join("db"), &key).unwrap();
        assert_eq!(store.cursor("f").unwrap().seq, 40);
        // Not registered in this process: retention does not wait for it.
        assert_eq!(store.trim(10, 10).unwrap().removed, 0); // chunk 1-32 has time 10+
        store.register_follower("f").unwrap();
        // Everything is past retention, but "f" has handled only up to 40:
        // chunks past it stay while they are younger than the hold.
        let t = store.trim(u64::MAX, 0).unwrap();
        assert_eq!((t.removed, t.last, t.lost.len()), (32, 32, 0));
        // Past the hold they go, and what "f" had not handled is counted.
        let t = store.trim(u64::MAX, u64::MAX).unwrap();
        assert_eq!((t.removed, t.last), (68, 100));
        assert_eq!(t.lost, vec![("f".to_owned(), 60)]);
        assert_eq!(store.cursor("f").unwrap(), Cursor { seq: 100, lost: 60 });
        // A follower that was away while records went is moved up on register.
        store.put_cursor("g", Cursor { seq: 5, lost: 0 }).unwrap();
        assert_eq!(store.register_follower("g").unwrap(), 95);
        assert_eq!(store.cursor("g").unwrap(), Cursor { seq: 100, lost: 95 });
        drop(store);
    }

    #[test]
    fn a_stored_record_parses_as_text_and_bytes_that_are_not_utf8_are_an_error() {
        let rec = record(5, "r", "/srv/caf\u{e9}");
        let json = serde_json::to_vec(&rec).unwrap();
        assert_eq!(parse_record(&json).unwrap(), rec);
        let mut bad = json.clone();
        let at = memchr::memmem::find(&bad, "\u{e9}".as_bytes()).unwrap();
        bad[at] = 0xff;
        assert!(parse_record(&bad).is_err());
        assert!(parse_record(&json[..json.len() - 1]).is_err());
    }

    #[test]
    fn a_filtered_read_parses_only_what_is_wanted_and_says_how_far_it_looked() {
        let tmp = temp();
        let store = Store::open(&tmp.path().join("db"), &tmp.path().join("record.key")).unwrap();
        let mut batch: Vec<Record> = (0..100)
            .map(|i| record(i, "r", if i % 10 == 0 { "/wanted" } else { "/p" }))
            .collect();
        store.append(&mut batch).unwrap();
        let wanted = |json: &[u8]| memchr::memmem::find(json, b"/wanted").is_some();
        let read = store.read_after_where(5, 30, wanted).unwrap();
        let seqs: Vec<u64> = read.records.iter().map(|r| r.seq).collect();
        assert_eq!(seqs, vec![11, 21, 31]);
        assert_eq!((read.through, read.seen), (35, 30));
        // None wanted: it still says how far it looked.
        let read = store.read_after_where(91, 30, |_| false).unwrap();
        assert!(read.records.is_empty());
        assert_eq!((read.through, read.seen), (100, 9));
        // Past the head: nothing looked at.
        let read = store.read_after_where(100, 30, |_| true).unwrap();
        assert_eq!((read.through, read.seen), (100, 0));
        drop(store);
    }

    #[test]
    fn retention_counts_what_a_follower_with_no_cursor_yet_loses() {
        let tmp = temp();
        let store = Store::open(&tmp.path().join("db"), &tmp.path().join("record.key")).unwrap();
        let mut batch: Vec<Record> = (0..40).map(|i| record(i, "r", "/p")).collect();
        store.append(&mut batch).unwrap();
        // Registered, never advanced: it stands at the anchor (0).
        store.register_follower("new").unwrap();
        let t = store.trim(u64::MAX, u64::MAX).unwrap();
        assert_eq!((t.removed, t.last), (40, 40));
        assert_eq!(t.lost, vec![("new".to_owned(), 40)]);
        assert_eq!(store.cursor("new").unwrap(), Cursor { seq: 40, lost: 40 });
        drop(store);
    }

    /// A follower that fails its first two batches, then records what it got.
    struct Flaky {
        failures: u32,
        got: std::sync::Arc<Mutex<Vec<u64>>>,
    }

    impl crate::model::Follower for Flaky {
        fn name(&self) -> &str {
            "flaky"
        }
        fn handle(&mut self, records: &[Record]) -> Result<(), crate::model::FollowError> {
            if self.failures < 2 {
                self.failures += 1;
                return Err("destination down".into());
            }
            self.got
                .lock()
                .unwrap()
                .extend(records.iter().map(|r| r.seq));
            Ok(())
        }
    }

    #[test]
    fn a_failing_follower_is_retried_and_misses_nothing() {
        let tmp = temp();
        let dir = tmp.path();
        let store = std::sync::Arc::new(Store::open(&dir.join("db"), &dir.join("k")).unwrap());
        let got = std::sync::Arc::new(Mutex::new(Vec::new()));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut f = follow::spawn(
            store.clone(),
            Box::new(Flaky {
                failures: 0,
                got: got.clone(),
            }),
            stop.clone(),
        )
        .unwrap();
        for _ in 0..3 {
            let mut batch: Vec<Record> = (0..700).map(|i| record(i, "r", "/p")).collect();
            store.append(&mut batch).unwrap();
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while f.status(store.head()).lag > 0 {
            assert!(std::time::Instant::now() < deadline, "follower stuck");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let s = f.status(store.head());
        assert_eq!((s.cursor, s.handled, s.errors, s.lost), (2100, 2100, 2, 0));
        assert_eq!(*got.lock().unwrap(), (1..=2100).collect::<Vec<u64>>());
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        f.join();
        assert_eq!(store.cursor("flaky").unwrap().seq, 2100);
        drop(store);
    }

    #[test]
    fn a_head_taken_off_the_host_exposes_a_cut_or_rewritten_record() {
        let tmp = temp();
        let dir = tmp.path();
        let key = dir.join("k");
        let store = Store::open(&dir.join("a"), &key).unwrap();
        store
            .append(&mut (0..100).map(|i| record(i, "r", "/p")).collect::<Vec<_>>())
            .unwrap();
        let (seq, mac) = store.head_mac();
        assert_eq!(seq, 100);
        assert!(store.verify_with_head(Some((seq, &mac))).unwrap().ok());
        assert_eq!(store.mac_of(100).unwrap().as_deref(), Some(mac.as_str()));
        drop(store);
        // The same key, the record cut back to 50: what is left verifies,
        // the head the SIEM holds does not.
        let cut = Store::open(&dir.join("b"), &key).unwrap();
        cut.append(&mut (0..50).map(|i| record(i, "r", "/p")).collect::<Vec<_>>())
            .unwrap();
        assert!(cut.verify().unwrap().ok());
        let r = cut.verify_with_head(Some((seq, &mac))).unwrap();
        assert!(r
            .first_bad
            .unwrap()
            .1
            .contains("records 51..=100 were removed"));
        // Rewritten: as long as before, one record different.
        cut.append(
            &mut (50..100)
                .map(|i| record(i, "r", if i == 70 { "/q" } else { "/p" }))
                .collect::<Vec<_>>(),
        )
        .unwrap();
        assert!(cut.verify().unwrap().ok());
        let r = cut.verify_with_head(Some((seq, &mac))).unwrap();
        assert!(r.first_bad.unwrap().1.contains("was rewritten"));
    }
}
