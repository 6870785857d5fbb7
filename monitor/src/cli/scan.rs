//! `monitor scan`: the PII detector over a file, stdin, or JSON lines.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use monitor_pii::{Detector, FingerprintKey, PiiRules};
use serde_json::{json, Value};

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
    /// The input file, or `-` for stdin.
    #[arg(default_value = "-")]
    pub input: PathBuf,
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

/// Runs the scan; returns how many input records could not be read.
pub fn run(opts: &ScanOptions) -> anyhow::Result<u64> {
    let detector = Detector::new(
        load_rules(opts.rules.as_deref())?,
        load_key(&opts.key_file)?,
    );
    let reader: Box<dyn std::io::Read> = if opts.input.as_os_str() == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(
            std::fs::File::open(&opts.input)
                .with_context(|| format!("opening {}", opts.input.display()))?,
        )
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    if opts.jsonl {
        return scan_jsonl(&detector, reader, opts, &mut out);
    }
    let mut input = Vec::new();
    BufReader::new(reader).read_to_end(&mut input)?;
    for f in detector.scan(&input) {
        match opts.format {
            Format::Json => {
                serde_json::to_writer(&mut out, &f)?;
                writeln!(out)?;
            }
            Format::Text => writeln!(
                out,
                "{:>8}-{:<8} {:<16} {:.2}  {:<28} {}",
                f.start,
                f.end,
                f.kind.name(),
                f.score,
                f.masked,
                f.fingerprint
            )?,
        }
    }
    out.flush()?;
    Ok(0)
}

fn scan_jsonl(
    detector: &Detector,
    reader: Box<dyn std::io::Read>,
    opts: &ScanOptions,
    out: &mut impl std::io::Write,
) -> anyhow::Result<u64> {
    let mut bad = 0;
    for (n, line) in BufReader::new(reader).lines().enumerate() {
        let line = line.with_context(|| format!("reading line {}", n + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        let record: Value = match serde_json::from_str(&line) {
            Ok(v) => v,
            Err(e) => {
                bad += 1;
                eprintln!("monitor scan: line {}: not JSON: {e}", n + 1);
                continue;
            }
        };
        let Some(text) = record.get(&opts.text_field).and_then(Value::as_str) else {
            bad += 1;
            eprintln!(
                "monitor scan: line {}: no string field `{}`",
                n + 1,
                opts.text_field
            );
            continue;
        };
        let id = record.get(&opts.id_field).cloned().unwrap_or(Value::Null);
        let findings = detector.scan(text.as_bytes());
        serde_json::to_writer(&mut *out, &json!({ "id": id, "findings": findings }))?;
        writeln!(out)?;
    }
    out.flush()?;
    Ok(bad)
}
