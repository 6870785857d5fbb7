//! The daemon's self-report: what is attached and every counter of work
//! done and records lost. The daemon rewrites it periodically (atomically)
//! and `monitor status` reads it.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Default location of the status file.
pub const DEFAULT_STATUS_FILE: &str = "/run/monitor/status.json";

/// Counters kept by the kernel programs, summed over CPUs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelCounters {
    /// Records written to the ring buffer.
    pub emitted: u64,
    /// Records lost because the ring buffer was full.
    pub ringbuf_full: u64,
    /// Records sent with a string cut short.
    pub truncated: u64,
    /// Syscall exits seen without their entry (attached mid-call, or evicted).
    pub args_missing: u64,
    /// Payloads cut at the capture limit.
    #[serde(default)]
    pub payload_truncated: u64,
    /// Cut paths whose classified-ancestor walk could not finish (their
    /// class is unknown; each is recorded).
    #[serde(default)]
    pub mark_unresolved: u64,
    /// TLS writes stopped before encryption (card number, enforcing role).
    #[serde(default)]
    pub prevented: u64,
    /// Opens whose path came from the kernel's path cache (not walked).
    #[serde(default)]
    pub path_cached: u64,
    /// Opens counted in the kernel instead of sent (each is in a later
    /// record's count).
    #[serde(default)]
    pub repeats_counted: u64,
    /// Opens sent one by one because every kernel repeat window was taken.
    #[serde(default)]
    pub repeats_uncounted: u64,
}

/// Counters kept by the userspace pipeline.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PipelineCounters {
    /// Records read from the ring buffer.
    pub received: u64,
    /// Records that could not be decoded (dropped).
    pub decode_errors: u64,
    /// Events a sink failed to take (dropped for that sink).
    pub sink_errors: u64,
    /// Payload streams dropped because too many were open.
    #[serde(default)]
    pub streams_evicted: u64,
    /// Records that could not be handed to the record writer (dropped).
    #[serde(default)]
    pub record_errors: u64,
    /// Repeated accesses stored one by one because every repeat window was
    /// taken (stored, not lost).
    #[serde(default)]
    pub repeats_uncounted: u64,
    /// Opens sent by path id whose path the daemon no longer had (recorded
    /// under a placeholder path; never expected).
    #[serde(default)]
    pub paths_unknown: u64,
    /// Sends recorded but not scanned for PII: the daemon was behind and
    /// passed over the busiest connections (each is recorded with a
    /// `send-not-inspected` alert).
    #[serde(default)]
    pub sends_not_inspected: u64,
    /// Bytes of records taken from the ring buffer and waiting in the
    /// daemon's memory to be handled (the daemon is behind).
    #[serde(default)]
    pub backlog_bytes: u64,
    /// The most bytes that waited there at once since the start.
    #[serde(default)]
    pub backlog_peak_bytes: u64,
}

/// How long the record writer may spend on one piece of work (a batch, a
/// retry, a retention pass over a large store) before the daemon takes it
/// for wedged: it says so, and stops feeding the service manager's
/// watchdog so that the service is restarted.
pub const WRITER_STUCK: std::time::Duration = std::time::Duration::from_secs(300);

/// The access record's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordCounters {
    /// Records stored.
    pub stored: u64,
    /// Records the store failed to write (dropped).
    pub failed: u64,
    /// Records removed by retention.
    pub expired: u64,
    /// Attempts to write the store that failed.
    #[serde(default)]
    pub write_errors: u64,
    /// Records held in memory while the store cannot write.
    #[serde(default)]
    pub held: u64,
    /// Records waiting in the writer's queue.
    #[serde(default)]
    pub queued: u64,
    /// Seconds the writer has spent on the work it is doing now (0 while it
    /// waits for records); past [`WRITER_STUCK`] it is taken for wedged.
    #[serde(default)]
    pub busy_secs: u64,
    /// The store's last write error ("TIME: ERROR"), since the start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// One follower of the record: where its cursor stands and what it lost.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FollowerStatus {
    /// The follower's name.
    pub name: String,
    /// The last record it handled.
    pub cursor: u64,
    /// Records stored after its cursor (not yet handled).
    pub lag: u64,
    /// Records handled since the daemon started.
    pub handled: u64,
    /// Batches that failed and were retried.
    pub errors: u64,
    /// Records retention removed before it handled them.
    pub lost: u64,
    /// Since when it has been failing (RFC 3339); absent when it is fine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failing_since: Option<String>,
    /// Its last error while failing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// A snapshot of the daemon's state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// The daemon's pid.
    pub pid: u32,
    /// The daemon's version.
    pub version: String,
    /// When it started (RFC 3339).
    pub started: String,
    /// When this snapshot was taken (RFC 3339).
    pub updated: String,
    /// The tracepoints attached.
    pub attached: Vec<String>,
    /// Ring buffer size in bytes.
    pub ring_bytes: u32,
    /// Processes in the process table.
    pub processes_tracked: usize,
    /// Kernel-side counters.
    pub kernel: KernelCounters,
    /// Userspace counters.
    pub pipeline: PipelineCounters,
    /// Binaries and libraries hooked for TLS plaintext, as `PATH (flavour)`.
    #[serde(default)]
    pub tls_libraries: Vec<String>,
    /// What TLS capture does not see.
    #[serde(default)]
    pub tls_not_covered: String,
    /// What in-kernel prevention does here, and its limits.
    #[serde(default)]
    pub prevention: String,
    /// Ways data can leave that no probe sees on this kernel.
    #[serde(default)]
    pub side_doors_not_covered: String,
    /// Executables seen starting TLS whose plaintext is not read (no
    /// hooked library or binary serves them: rustls, Java, stripped Go...).
    #[serde(default)]
    pub tls_blind: Vec<String>,
    /// The access record.
    #[serde(default)]
    pub record: RecordCounters,
    /// The record's followers.
    #[serde(default)]
    pub followers: Vec<FollowerStatus>,
    /// Events received per second since the previous snapshot.
    #[serde(default)]
    pub events_per_sec: f64,
    /// Records in the store (after retention).
    #[serde(default)]
    pub store_records: u64,
    /// Bytes the store takes on disk.
    #[serde(default)]
    pub store_bytes: u64,
    /// The rule files in force, `NAME=FROM@sha256:HEX` each.
    #[serde(default)]
    pub rules: Vec<String>,
    /// When the rules in force were loaded (RFC 3339).
    #[serde(default)]
    pub rules_loaded: String,
    /// The last refused reload ("TIME: ERROR"), since the start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reload_error: Option<String>,
}

impl Status {
    /// How long the daemon had run when this snapshot was taken (`3d 4h`,
    /// `2h 13m`, `5m 2s`).
    pub fn uptime(&self) -> Option<String> {
        let at = |s: &str| humantime::parse_rfc3339_weak(s).ok();
        let secs = at(&self.updated)?
            .duration_since(at(&self.started)?)
            .ok()?
            .as_secs();
        let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
        Some(match (d, h, m) {
            (0, 0, _) => format!("{m}m {s}s"),
            (0, _, _) => format!("{h}h {m}m"),
            _ => format!("{d}d {h}h"),
        })
    }

    /// Records lost anywhere: ring buffer full, undecodable, or refused by a sink.
    pub fn dropped(&self) -> u64 {
        self.kernel.ringbuf_full
            + self.pipeline.decode_errors
            + self.pipeline.sink_errors
            + self.pipeline.record_errors
            + self.record.failed
    }

    /// Writes the snapshot to `path` atomically (temp file + rename), mode 0644.
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        use std::os::unix::fs::PermissionsExt as _;
        if let Some(dir) = path.parent() {
            if !dir.exists() {
                std::fs::create_dir_all(dir)?;
                std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
            }
        }
        let tmp: PathBuf = path.with_extension("json.tmp");
        let mut f = std::fs::File::create(&tmp)?;
        // Counters and probe names only, no record content: analysts read it.
        f.set_permissions(std::fs::Permissions::from_mode(0o644))?;
        serde_json::to_writer_pretty(&mut f, self)?;
        f.write_all(b"\n")?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    }

    /// Reads a snapshot.
    pub fn read(path: &Path) -> std::io::Result<Self> {
        let bytes = std::fs::read(path)?;
        serde_json::from_slice(&bytes).map_err(std::io::Error::other)
    }

    /// Whether the daemon that wrote this is still running.
    pub fn daemon_alive(&self) -> bool {
        Path::new(&format!("/proc/{}", self.pid)).exists()
    }

    /// The report as a table: what runs, what flows, what was lost, and
    /// each component's last error.
    pub fn render(&self) -> String {
        let state = if self.daemon_alive() {
            "running"
        } else {
            "NOT RUNNING (stale status)"
        };
        let k = &self.kernel;
        let p = &self.pipeline;
        let r = &self.record;
        let mut out = format!(
            "monitor {}: {state}, pid {}, started {}{}\nupdated {}\n",
            self.version,
            self.pid,
            self.started,
            self.uptime()
                .map(|u| format!(" (up {u})"))
                .unwrap_or_default(),
            self.updated
        );
        let mut t = Table(&mut out);
        t.section("RULES");
        t.row(
            "loaded",
            if self.rules_loaded.is_empty() {
                "-".to_owned()
            } else {
                self.rules_loaded.clone()
            },
        );
        for file in &self.rules {
            let (name, from) = file.split_once('=').unwrap_or((file, ""));
            t.row(name, from.to_owned());
        }
        let (tracepoints, other): (Vec<&String>, Vec<&String>) =
            self.attached.iter().partition(|a| a.contains(':'));
        t.section("PROBES");
        t.row(
            "tracepoints",
            format!("{} ({})", tracepoints.len(), join(&tracepoints)),
        );
        if !other.is_empty() {
            t.row("other", join(&other));
        }
        t.row(
            "TLS uprobes",
            if self.tls_libraries.is_empty() {
                "none found".to_owned()
            } else {
                self.tls_libraries.join(", ")
            },
        );
        t.row(
            "TLS not read from",
            if self.tls_blind.is_empty() {
                "none seen".to_owned()
            } else {
                self.tls_blind.join(", ")
            },
        );
        t.row("TLS not covered", self.tls_not_covered.clone());
        t.row("not seen", self.side_doors_not_covered.clone());
        t.row("prevention", self.prevention.clone());
        t.section("FLOW");
        t.row("events/s", format!("{:.1}", self.events_per_sec));
        t.row("writes prevented", k.prevented.to_string());
        t.row("emitted (kernel)", k.emitted.to_string());
        t.row("paths from cache", k.path_cached.to_string());
        t.row("opens counted (kernel)", k.repeats_counted.to_string());
        t.row("received", p.received.to_string());
        t.row("ring buffer", format!("{} MiB", self.ring_bytes >> 20));
        t.row(
            "backlog",
            format!(
                "{:.1} MiB waiting, {:.1} MiB at most",
                p.backlog_bytes as f64 / f64::from(1 << 20),
                p.backlog_peak_bytes as f64 / f64::from(1 << 20)
            ),
        );
        t.row("processes tracked", self.processes_tracked.to_string());
        t.row("writer queue", format!("{} records", r.queued));
        if r.busy_secs >= WRITER_STUCK.as_secs() {
            t.row(
                "writer",
                format!("WEDGED: one write has taken {} s", r.busy_secs),
            );
        }
        t.row(
            "store",
            format!(
                "{} records, {:.1} MiB on disk, {} stored since start, {} expired",
                self.store_records,
                self.store_bytes as f64 / f64::from(1 << 20),
                r.stored,
                r.expired
            ),
        );
        t.section("DROPPED");
        t.row("DROPPED total:", self.dropped().to_string());
        t.row("ring buffer full", k.ringbuf_full.to_string());
        t.row("decode errors", p.decode_errors.to_string());
        t.row("sink errors", p.sink_errors.to_string());
        t.row("record errors", (p.record_errors + r.failed).to_string());
        t.section("DEGRADED");
        t.row("truncated strings", k.truncated.to_string());
        t.row("truncated payloads", k.payload_truncated.to_string());
        t.row("unresolved paths", k.mark_unresolved.to_string());
        t.row("streams evicted", p.streams_evicted.to_string());
        t.row("sends not inspected", p.sends_not_inspected.to_string());
        t.row(
            "repeats uncounted",
            (p.repeats_uncounted + k.repeats_uncounted).to_string(),
        );
        t.row("paths unknown", p.paths_unknown.to_string());
        t.row("exits without args", k.args_missing.to_string());
        t.section("LAST ERRORS");
        t.row(
            "store",
            match &r.last_error {
                Some(e) => format!(
                    "{e} ({} failed writes, {} records held)",
                    r.write_errors, r.held
                ),
                None => "none".to_owned(),
            },
        );
        t.row(
            "reload",
            self.reload_error
                .clone()
                .unwrap_or_else(|| "none".to_owned()),
        );
        t.section("FOLLOWERS");
        if self.followers.is_empty() {
            t.row("(none)", String::new());
        }
        for f in &self.followers {
            t.row(
                &f.name,
                format!(
                    "{}, cursor {}, {} behind, {} handled, {} failed batches{}",
                    match (&f.failing_since, &f.last_error) {
                        (Some(since), Some(e)) => format!("FAILING since {since} ({e})"),
                        _ => "ok".to_owned(),
                    },
                    f.cursor,
                    f.lag,
                    f.handled,
                    f.errors,
                    if f.lost > 0 {
                        format!(", LOST {} to retention", f.lost)
                    } else {
                        String::new()
                    }
                ),
            );
        }
        out
    }
}

/// The report being laid out: a heading per section, then name/value rows.
struct Table<'a>(&'a mut String);

impl Table<'_> {
    fn section(&mut self, title: &str) {
        let _ = writeln!(self.0, "\n[{title}]");
    }

    fn row(&mut self, name: &str, value: String) {
        let _ = writeln!(self.0, "  {name:<22}{value}");
    }
}

fn join(items: &[&String]) -> String {
    items
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("status.json");
        let status = Status {
            pid: std::process::id(),
            version: "0.1.0".into(),
            kernel: KernelCounters {
                ringbuf_full: 3,
                ..Default::default()
            },
            pipeline: PipelineCounters {
                decode_errors: 2,
                ..Default::default()
            },
            ..Default::default()
        };
        status.write(&path).unwrap();
        let back = Status::read(&path).unwrap();
        assert_eq!(back, status);
        assert_eq!(back.dropped(), 5);
        assert!(back.daemon_alive());
        assert!(
            back.render().contains("DROPPED total:        5"),
            "{}",
            back.render()
        );
    }

    #[test]
    fn the_report_names_the_rules_in_force_and_the_uptime() {
        let status = Status {
            started: "2026-12-04T08:00:00.5Z".into(),
            updated: "2026-12-04T10:13:07Z".into(),
            rules_loaded: "2026-12-04T09:00:00Z".into(),
            rules: vec!["roles.toml=/etc/monitor/rules/roles.toml@sha256:0123456789abcdef".into()],
            ..Default::default()
        };
        let text = status.render();
        assert!(
            text.contains("started 2026-12-04T08:00:00.5Z (up 2h 13m)"),
            "{text}"
        );
        assert!(text.contains("\n[RULES]\n  loaded                2026-12-04T09:00:00Z\n  roles.toml            /etc/monitor/rules/roles.toml@sha256:0123456789abcdef\n"), "{text}");
        let days = Status {
            updated: "2026-12-07T12:00:00Z".into(),
            ..status.clone()
        };
        assert_eq!(days.uptime().as_deref(), Some("3d 3h"));
        let minutes = Status {
            updated: "2026-12-04T08:05:02.5Z".into(),
            ..status
        };
        assert_eq!(minutes.uptime().as_deref(), Some("5m 2s"));
    }
}
