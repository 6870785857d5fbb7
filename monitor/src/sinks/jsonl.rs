//! A JSON-lines file: every record appended as one line (the record's own
//! JSON, as `monitor events --json` shows it), written and synced to disk
//! before the cursor moves. The file is created mode 0600: records hold no
//! raw PII, but they do say who touched what.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write as _};
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use crate::model::{FollowError, Follower, Record};

/// Appends records to a file, one JSON object per line.
pub struct JsonlFile {
    name: String,
    path: PathBuf,
    file: File,
}

impl JsonlFile {
    /// Opens (or creates, mode 0600) `path` for appending. A line left
    /// half-written by a crash is cut off: its records were not acknowledged,
    /// so they are written again, whole.
    pub fn open(path: &Path) -> std::io::Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .mode(0o600)
            .open(path)?;
        // A file that existed before keeps the same tight mode.
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        cut_partial_line(&file)?;
        Ok(Self {
            name: format!("jsonl:{}", path.display()),
            path: path.to_owned(),
            file,
        })
    }
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
        let mut out = BufWriter::with_capacity(1 << 16, &self.file);
        for r in records {
            serde_json::to_writer(&mut out, r)?;
            out.write_all(b"\n")?;
        }
        out.flush()
            .and_then(|()| self.file.sync_data())
            .map_err(|e| format!("{}: {e}", self.path.display()).into())
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
