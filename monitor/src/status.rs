//! The daemon's self-report: what is attached and every counter of work
//! done and records lost. The daemon rewrites it periodically (atomically)
//! and `monitor status` reads it.

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
}

/// The access record's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
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
    /// OpenSSL libraries hooked for TLS plaintext.
    #[serde(default)]
    pub tls_libraries: Vec<String>,
    /// What TLS capture does not see.
    #[serde(default)]
    pub tls_not_covered: String,
    /// The access record.
    #[serde(default)]
    pub record: RecordCounters,
    /// The record's followers.
    #[serde(default)]
    pub followers: Vec<FollowerStatus>,
}

impl Status {
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

    /// A short human-readable report.
    pub fn render(&self) -> String {
        let state = if self.daemon_alive() {
            "running"
        } else {
            "NOT RUNNING (stale status)"
        };
        let k = &self.kernel;
        let p = &self.pipeline;
        let mut out = format!(
            "monitor {version}: {state}, pid {pid}, started {started}\n\
             updated:            {updated}\n\
             probes attached:    {n} ({attached})\n\
             ring buffer:        {ring} MiB\n\
             processes tracked:  {procs}\n\
             records emitted:    {emitted}\n\
             records received:   {received}\n\
             DROPPED total:      {dropped}\n\
             \x20 ring buffer full: {full}\n\
             \x20 decode errors:    {dec}\n\
             \x20 sink errors:      {sink}\n\
             \x20 record errors:    {recerr}\n\
             records stored:     {stored} (expired {expired})\n\
             record write errors:{werr} ({held} records held)\n\
             truncated strings:  {trunc}\n\
             truncated payloads: {ptrunc}\n\
             unresolved paths:   {unresolved}\n\
             streams evicted:    {evicted}\n\
             exits without args: {missing}\n\
             TLS hooked:         {tls}\n\
             TLS not covered:    {uncovered}\n",
            version = self.version,
            pid = self.pid,
            started = self.started,
            updated = self.updated,
            n = self.attached.len(),
            attached = self.attached.join(", "),
            ring = self.ring_bytes >> 20,
            procs = self.processes_tracked,
            emitted = k.emitted,
            received = p.received,
            dropped = self.dropped(),
            full = k.ringbuf_full,
            dec = p.decode_errors,
            sink = p.sink_errors,
            recerr = p.record_errors + self.record.failed,
            stored = self.record.stored,
            expired = self.record.expired,
            werr = self.record.write_errors,
            held = self.record.held,
            trunc = k.truncated,
            missing = k.args_missing,
            ptrunc = k.payload_truncated,
            unresolved = k.mark_unresolved,
            evicted = p.streams_evicted,
            tls = if self.tls_libraries.is_empty() {
                "none found".to_owned()
            } else {
                self.tls_libraries.join(", ")
            },
            uncovered = self.tls_not_covered,
        );
        if self.followers.is_empty() {
            out.push_str("followers:          none\n");
        }
        for f in &self.followers {
            out.push_str(&format!(
                "follower {}: {}, cursor {}, {} behind, {} handled, {} failed batches{}\n",
                f.name,
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
            ));
        }
        out
    }
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
        assert!(back.render().contains("DROPPED total:      5"));
    }
}
