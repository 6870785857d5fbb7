//! `monitor scan`: the PII detector over files, directories, stdin, or JSON
//! lines. Over files it is a sanitization check: findings as
//! `path:line:col`, and an exit status like grep's (0 nothing found, 1
//! findings, 2 an error).

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use monitor_pii::{Detector, FingerprintKey, PiiRules};
use serde_json::json;

/// Where the daemon keeps the per-host fingerprint key.
pub const DEFAULT_KEY_FILE: &str = "/var/lib/monitor/fingerprint.key";

/// Output shape for findings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One aligned line per finding.
    Text,
    /// One JSON object per finding.
    Json,
}

/// Options of `monitor scan`.
#[derive(Debug, Clone, clap::Args)]
pub struct ScanOptions {
    /// Files or directories (walked, binary files skipped), or `-` for stdin.
    #[arg(default_value = "-")]
    pub inputs: Vec<PathBuf>,
    /// Only findings of at least this severity (the `[pii_severity]` of
    /// the shipped classes: low, medium, high, critical) are reported and
    /// count for the exit status.
    #[arg(long)]
    pub min_severity: Option<crate::model::Severity>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Read JSON lines; print `{"id": ..., "findings": [...]}` per line, offsets into the text field (UTF-8 bytes).
    #[arg(long)]
    pub jsonl: bool,
    /// With --jsonl: the field holding the text.
    #[arg(long, default_value = "text")]
    pub text_field: String,
    /// With --jsonl: the field holding the record id.
    #[arg(long, default_value = "id")]
    pub id_field: String,
    /// A detector rules file to use instead of the shipped one.
    #[arg(long)]
    pub rules: Option<PathBuf>,
    /// The fingerprint key (created, mode 0600, if absent).
    #[arg(long, default_value = DEFAULT_KEY_FILE)]
    pub key_file: PathBuf,
}

/// Loads the rules (shipped defaults unless a file is given).
pub fn load_rules(path: Option<&Path>) -> anyhow::Result<PiiRules> {
    match path {
        None => Ok(PiiRules::defaults()),
        Some(p) => {
            let src =
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            Ok(PiiRules::parse(&src, &p.display().to_string())?)
        }
    }
}

/// The host key, or (when it cannot be read or created, e.g. not root) a
/// one-off key, said so on stderr: fingerprints then match only within this run.
pub fn load_key(path: &Path) -> anyhow::Result<FingerprintKey> {
    match FingerprintKey::load_or_create(path) {
        Ok(k) => Ok(k),
        Err(e @ monitor_pii::mask::KeyError::BadLength(_)) => Err(e.into()),
        Err(e) => {
            eprintln!(
                "monitor scan: {e}; using a one-off key (fingerprints will not match the daemon's)"
            );
            Ok(FingerprintKey::ephemeral()?)
        }
    }
}

/// What a scan came to.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// Findings reported.
    pub findings: u64,
    /// Inputs (files, JSON lines) that could not be read.
    pub unreadable: u64,
}

/// Runs the scan.
pub fn run(opts: &ScanOptions) -> anyhow::Result<Outcome> {
    let detector = Detector::new(
        load_rules(opts.rules.as_deref())?,
        load_key(&opts.key_file)?,
    );
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let stdin_only = opts.inputs.iter().all(|p| p.as_os_str() == "-");
    if opts.jsonl {
        anyhow::ensure!(stdin_only, "--jsonl reads standard input only");
        let bad = scan_jsonl(&detector, Box::new(std::io::stdin().lock()), opts, &mut out)?;
        return Ok(Outcome {
            findings: 0,
            unreadable: bad,
        });
    }
    let severity = crate::rules::RuleSet::load(None)
        .map_err(|e| anyhow::anyhow!("the shipped rules: {e}"))?
        .classes;
    let wanted = |kind: &str| {
        opts.min_severity
            .is_none_or(|min| severity.severity_of_pii(kind) >= min)
    };
    let mut outcome = Outcome::default();
    let mut per_kind: std::collections::BTreeMap<String, u64> = Default::default();
    let (mut files, mut with_findings) = (0u64, 0u64);
    let mut rows = Aligned::default();
    let mut scan_one =
        |name: &[u8], input: &[u8], out: &mut dyn std::io::Write| -> anyhow::Result<()> {
            files += 1;
            // A name is shown as the record shows it (`\xNN` for a byte that is
            // not UTF-8, `\\` for a backslash).
            let name = crate::enrich::paths::text(name);
            // Names are an attacker's to choose: nothing in one moves the
            // terminal's cursor or reverses the text.
            let shown = super::analyst::visible(&name);
            let findings: Vec<_> = detector
                .scan(input)
                .into_iter()
                .filter(|f| wanted(f.kind.name()))
                .collect();
            // Line starts only for a file that has something to show.
            let lines = if findings.is_empty() {
                LineIndex(Vec::new())
            } else {
                LineIndex::new(input)
            };
            let mut found = 0;
            for f in findings {
                found += 1;
                *per_kind.entry(f.kind.name().to_owned()).or_default() += 1;
                match opts.format {
                    Format::Json => {
                        let (line, col) = lines.at(f.start);
                        let mut v = serde_json::to_value(&f)?;
                        v["path"] = json!(name);
                        v["line"] = json!(line);
                        v["col"] = json!(col);
                        serde_json::to_writer(&mut *out, &v)?;
                        writeln!(out)?;
                    }
                    Format::Text => {
                        let (line, col) = lines.at(f.start);
                        rows.push(
                            format!("{shown}:{line}:{col}:"),
                            format!(
                                "{:<16} {:<28} {:.2}  {}",
                                f.kind.name(),
                                f.masked,
                                f.score,
                                f.fingerprint
                            ),
                            out,
                        )?;
                    }
                }
            }
            if found > 0 {
                with_findings += 1;
            }
            outcome.findings += found;
            Ok(())
        };
    for input in &opts.inputs {
        if input.as_os_str() == "-" {
            let mut bytes = Vec::new();
            std::io::stdin().lock().read_to_end(&mut bytes)?;
            scan_one(b"-", &bytes, &mut out)?;
            continue;
        }
        let walk = ignore::WalkBuilder::new(input)
            // A sanitization check reads what is there: hidden files and
            // ignored ones (`.env`, build output) included.
            .standard_filters(false)
            .follow_links(false)
            .build();
        for entry in walk {
            let entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    eprintln!("monitor scan: {e}");
                    outcome.unreadable += 1;
                    continue;
                }
            };
            if !entry.file_type().is_some_and(|t| t.is_file()) {
                continue;
            }
            let path = entry.path();
            let bytes = match std::fs::read(path) {
                Ok(b) => b,
                Err(e) => {
                    eprintln!("monitor scan: {}: {e}", path.display());
                    outcome.unreadable += 1;
                    continue;
                }
            };
            // Binary files (a NUL in the first 8 KiB, as grep decides) are skipped.
            if bytes[..bytes.len().min(8192)].contains(&0) {
                continue;
            }
            scan_one(
                std::os::unix::ffi::OsStrExt::as_bytes(path.as_os_str()),
                &bytes,
                &mut out,
            )?;
        }
    }
    rows.flush(&mut out)?;
    out.flush()?;
    let kinds: Vec<String> = per_kind.iter().map(|(k, n)| format!("{k} {n}")).collect();
    eprintln!(
        "monitor scan: {} finding{} in {with_findings} of {files} file{}{}",
        outcome.findings,
        if outcome.findings == 1 { "" } else { "s" },
        if files == 1 { "" } else { "s" },
        if kinds.is_empty() {
            String::new()
        } else {
            format!(" ({})", kinds.join(", "))
        }
    );
    Ok(outcome)
}

/// Text findings, their `path:line:col:` padded to one width, written in
/// blocks so a large tree is not held whole: the width is the longest
/// location so far (at most [`Aligned::MAX_WIDTH`]), so it only grows.
#[derive(Default)]
struct Aligned {
    rows: Vec<(String, String)>,
    width: usize,
}

impl Aligned {
    /// Rows held before they are written.
    const BLOCK: usize = 4096;
    /// Widest a location pads to; a longer one is written whole.
    const MAX_WIDTH: usize = 72;

    fn push(
        &mut self,
        location: String,
        rest: String,
        out: &mut dyn std::io::Write,
    ) -> std::io::Result<()> {
        self.rows.push((location, rest));
        if self.rows.len() >= Self::BLOCK {
            self.flush(out)?;
        }
        Ok(())
    }

    fn flush(&mut self, out: &mut dyn std::io::Write) -> std::io::Result<()> {
        for (location, _) in &self.rows {
            self.width = self
                .width
                .max(location.chars().count().min(Self::MAX_WIDTH));
        }
        for (location, rest) in self.rows.drain(..) {
            writeln!(out, "{location:<w$} {rest}", w = self.width)?;
        }
        Ok(())
    }
}

/// Line starts of a text, for `line:col` (both from 1; the column counts
/// bytes, as grep's and compilers' do).
struct LineIndex(Vec<usize>);

impl LineIndex {
    fn new(text: &[u8]) -> Self {
        let mut starts = vec![0];
        starts.extend(
            text.iter()
                .enumerate()
                .filter(|(_, &b)| b == b'\n')
                .map(|(i, _)| i + 1),
        );
        Self(starts)
    }

    /// The line and column of byte `offset`.
    fn at(&self, offset: usize) -> (usize, usize) {
        let line = self.0.partition_point(|&s| s <= offset);
        (line, offset - self.0[line - 1] + 1)
    }
}

/// `--jsonl`: one `{"id": ..., "findings": [...]}` line per input line.
/// The record is parsed into borrowed raw fields (only the text is
/// decoded, and only when it holds escapes); the id is echoed as written.
fn scan_jsonl(
    detector: &Detector,
    reader: Box<dyn std::io::Read>,
    opts: &ScanOptions,
    out: &mut impl std::io::Write,
) -> anyhow::Result<u64> {
    use std::borrow::Cow;
    use std::collections::HashMap;

    use serde_json::value::RawValue;

    let mut bad = 0;
    let mut reader = BufReader::with_capacity(1 << 16, reader);
    let mut line = String::new();
    for n in 1.. {
        line.clear();
        if reader
            .read_line(&mut line)
            .with_context(|| format!("reading line {n}"))?
            == 0
        {
            break;
        }
        if line.trim().is_empty() {
            continue;
        }
        let record: HashMap<Cow<'_, str>, &RawValue> = match serde_json::from_str(&line) {
            Ok(v) => v,
            Err(e) => {
                bad += 1;
                eprintln!("monitor scan: line {n}: not a JSON object: {e}");
                continue;
            }
        };
        let text = record
            .get(opts.text_field.as_str())
            .and_then(|raw| serde_json::from_str::<Cow<'_, str>>(raw.get()).ok());
        let Some(text) = text else {
            bad += 1;
            eprintln!(
                "monitor scan: line {n}: no string field `{}`",
                opts.text_field
            );
            continue;
        };
        let id = record
            .get(opts.id_field.as_str())
            .map_or("null", |raw| raw.get());
        let findings = detector.scan(text.as_bytes());
        write!(out, "{{\"id\":{id},\"findings\":")?;
        serde_json::to_writer(&mut *out, &findings)?;
        out.write_all(b"}\n")?;
    }
    out.flush()?;
    Ok(bad)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn options() -> ScanOptions {
        ScanOptions {
            inputs: vec![PathBuf::from("-")],
            min_severity: None,
            format: Format::Text,
            jsonl: true,
            text_field: "text".into(),
            id_field: "id".into(),
            rules: None,
            key_file: PathBuf::new(),
        }
    }

    #[test]
    fn json_lines_give_one_answer_each_and_count_the_bad_ones() {
        let detector = Detector::new(PiiRules::defaults(), FingerprintKey::from_bytes(&[7; 32]));
        let input = concat!(
            "{\"id\": {\"conv\": \"a-1\", \"turn\": 3}, \"text\": \"card 4111 1111 1111 1111\"}\n",
            "\n",
            "{\"text\": \"line one\\ncall 415-555-0132\", \"id\": 7}\n",
            "not json\n",
            "[1, 2]\n",
            "{\"id\": 9, \"text\": 12}\n",
            "{\"id\": 10, \"body\": \"no text field\"}\n",
            "{\"text\": \"nothing here\"}\n",
        );
        let mut out = Vec::new();
        let bad = scan_jsonl(
            &detector,
            Box::new(std::io::Cursor::new(input.as_bytes().to_vec())),
            &options(),
            &mut out,
        )
        .unwrap();
        assert_eq!(bad, 4, "not JSON, not an object, a number, no field");
        let lines: Vec<Value> = String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 3);
        // The id comes back as it was written, whatever its JSON type.
        assert_eq!(lines[0]["id"], json!({"conv": "a-1", "turn": 3}));
        assert_eq!(lines[0]["findings"][0]["type"], "CREDIT_CARD");
        assert_eq!(lines[0]["findings"][0]["start"], 5);
        // Offsets are into the decoded text (the escape is one byte).
        assert_eq!(lines[1]["id"], 7);
        assert_eq!(lines[1]["findings"][0]["type"], "PHONE_NUMBER");
        assert_eq!(lines[1]["findings"][0]["start"], 14);
        assert_eq!(lines[2]["id"], Value::Null);
        assert_eq!(lines[2]["findings"], json!([]));
        // No raw value leaves the detector.
        assert!(!lines[0].to_string().contains("4111 1111 1111 1111"));
    }
}
