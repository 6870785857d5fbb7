//! A JSON-lines file: every record appended as one line (the record's own
//! JSON, as `monitor events --json` shows it, or another shape such as
//! ECS), written and synced to disk before the cursor moves, optionally
//! rotated by size (`FILE` → `FILE.1` → … → `FILE.N`, the oldest dropped).
//! The file is created mode 0600: records hold no raw PII, but they do say
//! who touched what.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use crate::model::{FollowError, Follower, Record};

/// How a record becomes one line (without its newline); `None` skips it.
pub type LineOf = Box<dyn Fn(&Record) -> Option<String> + Send>;

/// Appends records to a file, one JSON object per line.
pub struct JsonlFile {
    name: String,
    path: PathBuf,
    file: File,
    size: u64,
    line_of: LineOf,
    rotate: Option<(u64, u32)>,
}

impl JsonlFile {
    /// Opens (or creates, mode 0600) `path` for appending every record as
    /// its own JSON. A line left half-written by a crash is cut off: its
    /// records were not acknowledged, so they are written again, whole.
    pub fn open(path: &Path) -> std::io::Result<Self> {
        Self::with(
            format!("jsonl:{}", path.display()),
            path,
            Box::new(|r| serde_json::to_string(r).ok()),
            None,
        )
    }

    /// A file named `name` (the follower's) whose lines `line_of` makes,
    /// rotated once it would pass `max_bytes`, keeping `keep` old files.
    pub fn with(
        name: String,
        path: &Path,
        line_of: LineOf,
        rotate: Option<(u64, u32)>,
    ) -> std::io::Result<Self> {
        let file = open_append(path)?;
        cut_partial_line(&file)?;
        Ok(Self {
            name,
            path: path.to_owned(),
            size: file.metadata()?.len(),
            file,
            line_of,
            rotate,
        })
    }

    /// Moves `FILE.i` to `FILE.i+1` (dropping the last), `FILE` to
    /// `FILE.1`, and starts a new `FILE`.
    fn rotate(&mut self, keep: u32) -> std::io::Result<()> {
        let numbered = |i: u32| PathBuf::from(format!("{}.{i}", self.path.display()));
        for i in (1..keep).rev() {
            match std::fs::rename(numbered(i), numbered(i + 1)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        if keep > 0 {
            std::fs::rename(&self.path, numbered(1))?;
        } else {
            std::fs::remove_file(&self.path)?;
        }
        self.file = open_append(&self.path)?;
        self.size = 0;
        Ok(())
    }
}

/// Opens `path` for appending, mode 0600 (a file that existed before is
/// brought to the same tight mode).
fn open_append(path: &Path) -> std::io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(file)
}

/// Truncates `file` after its last newline (or to empty when it has none).
fn cut_partial_line(file: &File) -> std::io::Result<()> {
    use std::io::{Read as _, Seek as _, SeekFrom};
    let len = file.metadata()?.len();
    let mut end = len;
    let mut buf = [0u8; 4096];
    let mut f = file;
    while end > 0 {
        let start = end.saturating_sub(buf.len() as u64);
        let n = (end - start) as usize;
        f.seek(SeekFrom::Start(start))?;
        f.read_exact(&mut buf[..n])?;
        if let Some(i) = buf[..n].iter().rposition(|&b| b == b'\n') {
            end = start + i as u64 + 1;
            break;
        }
        end = start;
    }
    if end != len {
        tracing::warn!(
            cut = len - end,
            "a half-written line at the end of the sink file was cut off"
        );
        file.set_len(end)?;
    }
    Ok(())
}

impl Follower for JsonlFile {
    fn name(&self) -> &str {
        &self.name
    }

    fn handle(&mut self, records: &[Record]) -> Result<(), FollowError> {
        let mut out = Vec::with_capacity(1 << 16);
        for r in records {
            let Some(line) = (self.line_of)(r) else {
                continue;
            };
            if let Some((max, keep)) = self.rotate {
                let pending = (out.len() + line.len() + 1) as u64;
                if self.size > 0 && self.size + pending > max {
                    self.file.write_all(&out)?;
                    self.file.sync_data()?;
                    out.clear();
                    self.rotate(keep)
                        .map_err(|e| format!("rotating {}: {e}", self.path.display()))?;
                }
            }
            out.extend_from_slice(line.as_bytes());
            out.push(b'\n');
        }
        self.file
            .write_all(&out)
            .and_then(|()| self.file.sync_data())
            .map_err(|e| format!("{}: {e}", self.path.display()))?;
        self.size += out.len() as u64;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_half_written_line_is_cut_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.jsonl");
        std::fs::write(&path, "{\"seq\":1}\n{\"seq\":2}\n{\"seq\":3,\"obj").unwrap();
        drop(JsonlFile::open(&path).unwrap());
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "{\"seq\":1}\n{\"seq\":2}\n"
        );
        std::fs::write(&path, "no newline at all").unwrap();
        drop(JsonlFile::open(&path).unwrap());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "");
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&path).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
        drop(JsonlFile::open(&dir.path().join("new.jsonl")).unwrap());
    }
}
