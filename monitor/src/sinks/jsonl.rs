//! A JSON-lines file: every record appended as one line (the record's own
//! JSON, as `monitor events --json` shows it), written and synced to disk
//! before the cursor moves. The file is created mode 0600: records hold no
//! raw PII, but they do say who touched what.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use crate::model::{FollowError, Follower, Record};

/// Appends records to a file, one JSON object per line.
pub struct JsonlFile {
    name: String,
    path: PathBuf,
    file: File,
}

impl JsonlFile {
    /// Opens (or creates, mode 0600) `path` for appending.
    pub fn open(path: &Path) -> std::io::Result<Self> {
        let file = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(path)?;
        Ok(Self {
            name: format!("jsonl:{}", path.display()),
            path: path.to_owned(),
            file,
        })
    }
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
