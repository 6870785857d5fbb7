//! The record: every access to classified data, every egress with PII,
//! every policy violation and every analyst query, in a sled store, chained
//! with HMAC-SHA256 so that any change, removal or reordering is found by
//! [`Store::verify`].
//!
//! Trees: `records` (seq → MAC ‖ JSON), and the indexes `by_time`,
//! `by_role`, `by_object`, `by_fingerprint`, `alerts` (keys only). The
//! chain: `mac[n] = HMAC(key, mac[n-1] ‖ seq ‖ json)`, starting from 32 zero
//! bytes, or from the anchor the retention task leaves when it removes the
//! oldest records (the removal is itself a record in the chain).

pub mod query;
pub mod writer;

use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};

use ring::hmac;
use serde::{Deserialize, Serialize};

use std::time::{SystemTime, UNIX_EPOCH};

use crate::classify::{Access, Action};
use crate::event::{Detail, Event, PiiFinding};
use crate::policy::Alert;

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
}

/// What came of an access.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Allowed by policy.
    Allowed,
    /// Broke the policy (see `alert`).
    Violation,
    /// The call failed (see `errno`).
    Failed,
    /// Refused by the daemon (a query from a caller without access).
    Refused,
}

/// One record (the fields PCI DSS 10.2.2 asks for). Never holds a raw PII value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Position in the chain (1, 2, ...); set when stored.
    pub seq: u64,
    /// When it happened, RFC 3339 UTC.
    pub time: String,
    /// The same, nanoseconds since the Unix epoch.
    pub time_ns: u64,
    /// Host name.
    pub host: Arc<str>,
    /// Process id (the analyst's, for queries).
    pub pid: u32,
    /// Executable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exe: Option<Arc<str>>,
    /// Task name.
    pub comm: String,
    /// Real uid.
    pub uid: u32,
    /// User name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<Arc<str>>,
    /// The process's role.
    pub role: Arc<str>,
    /// What was done.
    pub action: Action,
    /// The path, `addr:port`, or the query.
    pub object: String,
    /// The destination's name (TLS SNI, HTTP Host).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dest_host: Option<String>,
    /// The data class.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub class: Option<Arc<str>>,
    /// Bytes moved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes: Option<i64>,
    /// PII found: masked and fingerprinted only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<PiiFinding>,
    /// What came of it.
    pub outcome: Outcome,
    /// The error, when the call failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errno: Option<String>,
    /// The alert, when it broke the policy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alert: Option<Alert>,
}

impl Record {
    /// The record of `access` by `event`'s process, with the policy's alert if any.
    pub fn of_access(host: &Arc<str>, event: &Event, access: Access, alert: Option<Alert>) -> Self {
        let p = &event.process;
        let when = humantime::parse_rfc3339(&event.time).unwrap_or_else(|_| SystemTime::now());
        let (findings, dest_host) = match &event.detail {
            Detail::Payload(info) => (info.findings.clone(), info.dest_host.clone()),
            _ => (Vec::new(), None),
        };
        let outcome = if alert.is_some() {
            Outcome::Violation
        } else if access.errno.is_some() {
            Outcome::Failed
        } else {
            Outcome::Allowed
        };
        Record {
            seq: 0,
            time: event.time.clone(),
            time_ns: when
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64),
            host: host.clone(),
            pid: p.pid,
            exe: p.exe.clone(),
            comm: p.comm.clone(),
            uid: p.uid,
            user: p.user.clone(),
            role: p
                .role
                .clone()
                .unwrap_or_else(|| Arc::from(crate::roles::UNASSIGNED)),
            action: access.action,
            object: access.object,
            dest_host,
            class: access.class,
            bytes: access.bytes,
            findings,
            outcome,
            errno: access.errno,
            alert,
        }
    }
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

/// The chain's end: the last seq and its MAC.
struct Head {
    seq: u64,
    mac: [u8; MAC_LEN],
}

/// The sled store and the chain key.
pub struct Store {
    db: sled::Db,
    records: sled::Tree,
    by_time: sled::Tree,
    by_role: sled::Tree,
    by_object: sled::Tree,
    by_fingerprint: sled::Tree,
    alerts: sled::Tree,
    meta: sled::Tree,
    key: hmac::Key,
    head: Mutex<Head>,
    /// Retention (write) excludes verification (read).
    trim: RwLock<()>,
}

/// `a ‖ 0 ‖ b`: the key layout of the string indexes.
fn join(a: &str, rest: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(a.len() + 1 + rest.len());
    k.extend_from_slice(a.as_bytes());
    k.push(0);
    k.extend_from_slice(rest);
    k
}

/// `time ‖ seq`, big-endian, so keys sort by time.
fn time_seq(time_ns: u64, seq: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&time_ns.to_be_bytes());
    k[8..].copy_from_slice(&seq.to_be_bytes());
    k
}

/// The seq at the end of an index key.
fn seq_of_key(k: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&k[k.len() - 8..]);
    u64::from_be_bytes(b)
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
    pub fn open(dir: &Path, key_file: &Path) -> Result<Self, StoreError> {
        let key = monitor_pii::load_or_create_key(key_file)?;
        let db = sled::Config::new()
            .path(dir)
            .mode(sled::Mode::HighThroughput)
            .open()?;
        let records = db.open_tree("records")?;
        let meta = db.open_tree("meta")?;
        let head = match records.last()? {
            Some((k, v)) => {
                let mut mac = [0u8; MAC_LEN];
                mac.copy_from_slice(&v[..MAC_LEN.min(v.len())]);
                Head {
                    seq: seq_of_key(&k),
                    mac,
                }
            }
            None => {
                let (seq, mac) = anchor(&meta)?;
                Head { seq, mac }
            }
        };
        Ok(Self {
            by_time: db.open_tree("by_time")?,
            by_role: db.open_tree("by_role")?,
            by_object: db.open_tree("by_object")?,
            by_fingerprint: db.open_tree("by_fingerprint")?,
            alerts: db.open_tree("alerts")?,
            records,
            meta,
            db,
            key: hmac::Key::new(hmac::HMAC_SHA256, &key),
            head: Mutex::new(head),
            trim: RwLock::new(()),
        })
    }

    /// Appends `batch` in order: assigns each its seq, chains it, indexes it,
    /// and flushes to disk once. Returns the last seq.
    pub fn append(&self, batch: &mut [Record]) -> Result<u64, StoreError> {
        let mut head = self.head.lock().expect("head lock");
        let mut records = sled::Batch::default();
        let mut by_time = sled::Batch::default();
        let mut by_role = sled::Batch::default();
        let mut by_object = sled::Batch::default();
        let mut by_fingerprint = sled::Batch::default();
        let mut alerts = sled::Batch::default();
        let (mut seq, mut prev) = (head.seq, head.mac);
        for rec in batch.iter_mut() {
            seq += 1;
            rec.seq = seq;
            let json =
                serde_json::to_vec(rec).map_err(|source| StoreError::Json { seq, source })?;
            let mac = chain_mac(&self.key, &prev, seq, &json);
            let mut value = Vec::with_capacity(MAC_LEN + json.len());
            value.extend_from_slice(&mac);
            value.extend_from_slice(&json);
            records.insert(&seq.to_be_bytes(), value);
            let ts = time_seq(rec.time_ns, seq);
            by_time.insert(&ts, &[]);
            by_role.insert(join(&rec.role, &ts), &[]);
            by_object.insert(join(&rec.object, &ts), &[]);
            for f in &rec.findings {
                by_fingerprint.insert(join(&f.fingerprint, &ts), &[]);
            }
            if rec.alert.is_some() {
                alerts.insert(&ts, &[]);
            }
            prev = mac;
        }
        self.records.apply_batch(records)?;
        self.by_time.apply_batch(by_time)?;
        self.by_role.apply_batch(by_role)?;
        self.by_object.apply_batch(by_object)?;
        self.by_fingerprint.apply_batch(by_fingerprint)?;
        self.alerts.apply_batch(alerts)?;
        self.db.flush()?;
        head.seq = seq;
        head.mac = prev;
        Ok(seq)
    }

    /// The record `seq`, if stored.
    pub fn get(&self, seq: u64) -> Result<Option<Record>, StoreError> {
        match self.records.get(seq.to_be_bytes())? {
            None => Ok(None),
            Some(v) => serde_json::from_slice(&v[MAC_LEN.min(v.len())..])
                .map(Some)
                .map_err(|source| StoreError::Json { seq, source }),
        }
    }

    /// Number of records stored.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// True when nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Walks the chain from its anchor and names the first record that is
    /// altered, missing or out of place.
    pub fn verify(&self) -> Result<VerifyReport, StoreError> {
        let _guard = self.trim.read().expect("trim lock");
        let (anchor_seq, mut prev) = anchor(&self.meta)?;
        let mut report = VerifyReport {
            checked: 0,
            first: anchor_seq + 1,
            last: anchor_seq,
            first_bad: None,
        };
        for (expect, item) in (anchor_seq + 1..).zip(self.records.iter()) {
            let (k, v) = item?;
            let seq = if k.len() == 8 { seq_of_key(&k) } else { 0 };
            let bad = |why: String| Some((expect.max(seq), why));
            if k.len() != 8 || seq != expect {
                report.first_bad = if seq > expect {
                    Some((
                        expect,
                        format!("record {expect} is missing (next stored is {seq})"),
                    ))
                } else {
                    bad(format!("unexpected key {k:?} in the record tree"))
                };
                break;
            }
            if v.len() < MAC_LEN || chain_mac(&self.key, &prev, seq, &v[MAC_LEN..]) != v[..MAC_LEN]
            {
                report.first_bad =
                    bad(format!("record {seq} was altered (its MAC does not match)"));
                break;
            }
            match serde_json::from_slice::<Record>(&v[MAC_LEN..]) {
                Ok(r) if r.seq == seq => {}
                _ => {
                    report.first_bad = bad(format!("record {seq} does not decode"));
                    break;
                }
            }
            prev.copy_from_slice(&v[..MAC_LEN]);
            report.checked += 1;
            report.last = seq;
        }
        Ok(report)
    }

    /// Removes the oldest records, in chain order, while older than
    /// `cutoff_ns`; moves the anchor past them. Returns (count, last removed seq).
    pub fn trim_before(&self, cutoff_ns: u64) -> Result<(u64, u64), StoreError> {
        let _guard = self.trim.write().expect("trim lock");
        let mut removed = 0;
        let mut last = 0;
        let mut last_mac = [0u8; MAC_LEN];
        for item in self.records.iter() {
            let (k, v) = item?;
            let seq = seq_of_key(&k);
            let rec: Record = serde_json::from_slice(&v[MAC_LEN.min(v.len())..])
                .map_err(|source| StoreError::Json { seq, source })?;
            if rec.time_ns >= cutoff_ns {
                break;
            }
            let ts = time_seq(rec.time_ns, seq);
            self.by_time.remove(ts)?;
            self.by_role.remove(join(&rec.role, &ts))?;
            self.by_object.remove(join(&rec.object, &ts))?;
            for f in &rec.findings {
                self.by_fingerprint.remove(join(&f.fingerprint, &ts))?;
            }
            self.alerts.remove(ts)?;
            last_mac.copy_from_slice(&v[..MAC_LEN]);
            // The anchor moves before the record goes, so a crash in between
            // leaves a chain that still verifies.
            let mut a = Vec::with_capacity(8 + MAC_LEN);
            a.extend_from_slice(&seq.to_be_bytes());
            a.extend_from_slice(&last_mac);
            self.meta.insert("anchor", a)?;
            self.records.remove(k)?;
            removed += 1;
            last = seq;
        }
        self.db.flush()?;
        Ok((removed, last))
    }

    /// The sled trees, for the query module.
    pub(crate) fn trees(&self) -> Trees<'_> {
        Trees {
            by_time: &self.by_time,
            by_role: &self.by_role,
            by_object: &self.by_object,
            by_fingerprint: &self.by_fingerprint,
            alerts: &self.alerts,
        }
    }
}

/// The index trees.
pub(crate) struct Trees<'a> {
    pub by_time: &'a sled::Tree,
    pub by_role: &'a sled::Tree,
    pub by_object: &'a sled::Tree,
    pub by_fingerprint: &'a sled::Tree,
    pub alerts: &'a sled::Tree,
}

fn anchor(meta: &sled::Tree) -> Result<(u64, [u8; MAC_LEN]), StoreError> {
    let mut mac = [0u8; MAC_LEN];
    Ok(match meta.get("anchor")? {
        Some(v) if v.len() == 8 + MAC_LEN => {
            mac.copy_from_slice(&v[8..]);
            (seq_of_key(&v[..8]), mac)
        }
        _ => (0, mac),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
        }
    }

    fn temp() -> std::path::PathBuf {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let d = std::env::temp_dir().join(format!("monitor-store-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn chain_verifies_and_names_the_altered_record() {
        let dir = temp();
        let key = dir.join("record.key");
        {
            let store = Store::open(&dir.join("db"), &key).unwrap();
            let mut batch: Vec<Record> = (0..10).map(|i| record(i, "r", "/p")).collect();
            assert_eq!(store.append(&mut batch).unwrap(), 10);
            let report = store.verify().unwrap();
            assert!(report.ok(), "{report:?}");
            assert_eq!((report.checked, report.first, report.last), (10, 1, 10));
            // Flip one byte of record 4's JSON.
            let mut v = store
                .records
                .get(4u64.to_be_bytes())
                .unwrap()
                .unwrap()
                .to_vec();
            let i = v.len() - 3;
            v[i] ^= 1;
            store.records.insert(4u64.to_be_bytes(), v).unwrap();
            let report = store.verify().unwrap();
            assert_eq!(report.first_bad.as_ref().unwrap().0, 4, "{report:?}");
            assert!(report.first_bad.unwrap().1.contains("altered"));
            // Removing a record is found too.
            store.records.remove(4u64.to_be_bytes()).unwrap();
            let report = store.verify().unwrap();
            assert!(report.first_bad.unwrap().1.contains("record 4 is missing"));
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_chain_survives_reopening_and_retention() {
        let dir = temp();
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
        assert_eq!(store.trim_before(25).unwrap(), (3, 3));
        let report = store.verify().unwrap();
        assert!(report.ok(), "{report:?}");
        assert_eq!((report.first, report.last, report.checked), (4, 6, 3));
        assert!(store.get(2).unwrap().is_none());
        drop(store);
        // Reopened after retention removed everything but the anchor.
        let store = Store::open(&dir.join("db"), &key).unwrap();
        store.trim_before(u64::MAX).unwrap();
        drop(store);
        let store = Store::open(&dir.join("db"), &key).unwrap();
        assert_eq!(store.append(&mut [record(200, "r", "/p")]).unwrap(), 7);
        assert!(store.verify().unwrap().ok());
        drop(store);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
