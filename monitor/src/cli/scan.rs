//! `monitor scan`: the PII detector over files, directories, stdin, or JSON
//! lines. Over files it is a sanitization check: findings as
//! `path:line:col`, and an exit status like grep's (0 nothing found, 1
//! findings, 2 an error).

use std::io::{Read as _, Write as _};
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
    /// With --jsonl: threads answering lines (0: one per core). The
    /// answers come out in input order whatever the count.
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
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
/// The record is read in one pass that keeps only the two fields asked
/// for: the text borrowed from the line (decoded only when it holds
/// escapes), the id echoed as written. A line that is not a JSON object
/// with a string text (or not UTF-8) is counted and reported, not fatal.
/// Lines are read in batches, each answered by up to `--threads` threads
/// sharing it in runs; the answers are written in input order.
fn scan_jsonl(
    detector: &Detector,
    mut reader: Box<dyn std::io::Read>,
    opts: &ScanOptions,
    out: &mut impl std::io::Write,
) -> anyhow::Result<u64> {
    let threads = match opts.threads {
        0 => std::thread::available_parallelism().map_or(1, usize::from),
        n => n,
    };
    let fields = jsonl::Fields {
        text: &opts.text_field,
        id: &opts.id_field,
    };
    // Input is read a block at a time into one buffer and answered a
    // batch of its whole lines at a time (no copy of each line); a line
    // cut by a read waits at the front for the rest.
    let mut buf: Vec<u8> = Vec::with_capacity(2 * READ_BYTES);
    // Kept from read to read: each is larger than the allocator's mmap
    // threshold, so one made anew each time is mapped, faulted in page by
    // page and unmapped.
    let mut lines: Vec<(usize, usize)> = Vec::new();
    let mut answers: Vec<Answers> = (0..threads).map(|_| Answers::default()).collect();
    let (mut first, mut bad, mut eof) = (1, 0, false);
    while !eof {
        let read = fill(&mut reader, &mut buf, READ_BYTES)
            .with_context(|| format!("reading line {first}"))?;
        eof = read == 0;
        let whole = if eof {
            buf.len()
        } else {
            match memchr::memrchr(b'\n', &buf) {
                Some(last) => last + 1,
                // One line longer than a read: read on.
                None => continue,
            }
        };
        let block = &buf[..whole];
        // UTF-8 is checked once for the whole read, so that no string of
        // it is checked again on its own; a read that fails the check is
        // read as bytes, each string checked as the parser meets it.
        let block = match std::str::from_utf8(block) {
            Ok(text) => Block::Text(text),
            Err(_) => Block::Bytes(block),
        };
        lines.clear();
        let mut start = 0;
        for end in memchr::memchr_iter(b'\n', block.bytes()) {
            lines.push((start, end + 1));
            start = end + 1;
        }
        if start < whole {
            lines.push((start, whole));
        }
        for batch in lines.chunks(BATCH_LINES) {
            // A share per thread, none too small to be worth a thread.
            let per = batch.len().div_ceil(threads).max(MIN_LINES_PER_THREAD);
            if batch.len() <= per {
                answer_lines(detector, fields, first, block, batch, &mut answers[0]);
            } else {
                std::thread::scope(|s| {
                    // No more shares than threads, nor than answers.
                    let shares = batch.chunks(per).zip(answers.iter_mut());
                    for (k, (share, a)) in shares.enumerate() {
                        let first = first + k * per;
                        s.spawn(move || answer_lines(detector, fields, first, block, share, a));
                    }
                });
            }
            for a in &mut answers {
                for e in &a.errors {
                    eprintln!("monitor scan: {e}");
                }
                out.write_all(&a.out)?;
                bad += a.bad;
                a.clear();
            }
            first += batch.len();
        }
        buf.drain(..whole);
    }
    out.flush()?;
    Ok(bad)
}

/// Lines answered together: each thread's share of a batch costs
/// milliseconds, so starting threads per batch costs little.
const BATCH_LINES: usize = 8192;
/// Bytes read at a time (a longer line is read on until it ends).
const READ_BYTES: usize = 1 << 20;

/// Appends at least `want` bytes of `reader` to `buf`, or all it has left;
/// returns how many (0: the input has ended).
fn fill(reader: &mut impl std::io::Read, buf: &mut Vec<u8>, want: usize) -> std::io::Result<usize> {
    let start = buf.len();
    buf.resize(start + want, 0);
    let mut filled = start;
    while filled < start + want {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                buf.truncate(filled);
                return Err(e);
            }
        }
    }
    buf.truncate(filled);
    Ok(filled - start)
}
/// The fewest lines worth a thread of their own.
const MIN_LINES_PER_THREAD: usize = 256;

/// The answers to a run of lines: their output lines, the lines that
/// could not be read, and why.
#[derive(Default)]
struct Answers {
    out: Vec<u8>,
    bad: u64,
    errors: Vec<String>,
}

impl Answers {
    /// Empties them for the next run, keeping the output's room.
    fn clear(&mut self) {
        self.out.clear();
        self.bad = 0;
        self.errors.clear();
    }
}

/// A read of input: text if it was valid UTF-8 as a whole, else bytes.
#[derive(Clone, Copy)]
enum Block<'a> {
    Text(&'a str),
    Bytes(&'a [u8]),
}

impl Block<'_> {
    fn bytes(&self) -> &[u8] {
        match self {
            Block::Text(t) => t.as_bytes(),
            Block::Bytes(b) => b,
        }
    }
}

/// Reads one record, the whole of `de`'s input.
fn read_record<'de, R: serde_json::de::Read<'de>>(
    de: &mut serde_json::Deserializer<R>,
    reader: jsonl::Reader<'_, '_>,
) -> serde_json::Result<jsonl::Record<'de>> {
    use serde::de::DeserializeSeed as _;
    let record = reader.deserialize(&mut *de)?;
    de.end()?;
    Ok(record)
}

/// Appends to `a` the answers to the `lines` of `block` (each a start and
/// an end), the first of which is line `first` of the input.
fn answer_lines(
    detector: &Detector,
    fields: jsonl::Fields<'_>,
    first: usize,
    block: Block<'_>,
    lines: &[(usize, usize)],
    a: &mut Answers,
) {
    // About one output byte per input byte, so the buffer seldom grows.
    a.out
        .reserve(lines.iter().map(|(start, end)| end - start).sum::<usize>());
    // The text of a line that holds escapes, decoded here rather than
    // into a new string per line.
    let mut scratch = String::new();
    for (k, &(start, end)) in lines.iter().enumerate() {
        let n = first + k;
        if block.bytes()[start..end].trim_ascii().is_empty() {
            continue;
        }
        let reader = jsonl::Reader {
            fields,
            scratch: &mut scratch,
        };
        let record = match block {
            // A line ends at a `\n` or the read's end: a character's boundary.
            Block::Text(t) => read_record(
                &mut serde_json::Deserializer::from_str(&t[start..end]),
                reader,
            ),
            Block::Bytes(b) => read_record(
                &mut serde_json::Deserializer::from_slice(&b[start..end]),
                reader,
            ),
        };
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                a.bad += 1;
                a.errors.push(format!("line {n}: not a JSON object: {e}"));
                continue;
            }
        };
        let text = match record.text {
            Some(jsonl::Text::Borrowed(t)) => t,
            Some(jsonl::Text::Scratch) => scratch.as_str(),
            None => {
                a.bad += 1;
                a.errors
                    .push(format!("line {n}: no string field `{}`", fields.text));
                continue;
            }
        };
        let id = record.id.map_or("null", |raw| raw.get());
        let findings = detector.scan(text.as_bytes());
        write_answer(&mut a.out, id, &findings);
    }
}

/// Appends `{"id":<id>,"findings":[...]}` and a newline: the findings as
/// their `Serialize` writes them (the same bytes, a test holds it to
/// that), without the formatting machinery a short record paid for.
fn write_answer(out: &mut Vec<u8>, id: &str, findings: &[monitor_pii::Finding]) {
    use monitor_pii::Kind;
    // Writing to a `Vec` cannot fail.
    let string = |out: &mut Vec<u8>, s: &str| {
        let _ = serde_json::to_writer(&mut *out, s);
    };
    let mut numbers = itoa::Buffer::new();
    out.extend_from_slice(b"{\"id\":");
    out.extend_from_slice(id.as_bytes());
    out.extend_from_slice(b",\"findings\":[");
    for (k, f) in findings.iter().enumerate() {
        if k > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"type\":");
        match &f.kind {
            // Built-in names are capitals and `_`: nothing to escape.
            Kind::Builtin(t) => {
                out.push(b'"');
                out.extend_from_slice(t.name().as_bytes());
                out.push(b'"');
            }
            Kind::Custom(name) => string(out, name),
        }
        out.extend_from_slice(b",\"start\":");
        out.extend_from_slice(numbers.format(f.start).as_bytes());
        out.extend_from_slice(b",\"end\":");
        out.extend_from_slice(numbers.format(f.end).as_bytes());
        out.extend_from_slice(b",\"score\":");
        push_score(out, f.score);
        out.extend_from_slice(b",\"masked\":");
        string(out, f.masked.as_str());
        // Hex digits: nothing to escape.
        out.extend_from_slice(b",\"fingerprint\":\"");
        out.extend_from_slice(f.fingerprint.as_str().as_bytes());
        out.extend_from_slice(b"\"}");
    }
    out.extend_from_slice(b"]}\n");
}

/// A finding's score as its `Serialize` writes it: rounded to hundredths,
/// in the shortest form that reads back (`0.9`, `0.07`, `1.0`).
fn push_score(out: &mut Vec<u8>, score: f32) {
    let hundredths = (f64::from(score) * 100.0).round();
    if !(0.0..=100.0).contains(&hundredths) {
        let _ = serde_json::to_writer(&mut *out, &(hundredths / 100.0));
        return;
    }
    let h = hundredths as u8;
    let (units, tenths, last) = (h / 100, h / 10 % 10, h % 10);
    out.extend_from_slice(&[b'0' + units, b'.', b'0' + tenths]);
    if last != 0 {
        out.push(b'0' + last);
    }
}

/// The one-pass reader of a `--jsonl` record.
mod jsonl {
    use std::borrow::Cow;
    use std::fmt;

    use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
    use serde_json::value::RawValue;

    /// The names of the two fields a record is read for.
    #[derive(Clone, Copy)]
    pub struct Fields<'o> {
        pub text: &'o str,
        pub id: &'o str,
    }

    /// Reads a record for `fields`; a text that holds escapes is decoded
    /// into `scratch`.
    pub struct Reader<'o, 's> {
        pub fields: Fields<'o>,
        pub scratch: &'s mut String,
    }

    /// Where a record's text is.
    pub enum Text<'de> {
        /// In the line, as written (it holds no escape).
        Borrowed(&'de str),
        /// Decoded into the reader's scratch string.
        Scratch,
    }

    /// What a record gave: its text if that field is a string, its id as
    /// written. A repeated field counts as its last value.
    pub struct Record<'de> {
        pub text: Option<Text<'de>>,
        pub id: Option<&'de RawValue>,
    }

    impl<'de> DeserializeSeed<'de> for Reader<'_, '_> {
        type Value = Record<'de>;

        fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Record<'de>, D::Error> {
            d.deserialize_map(self)
        }
    }

    impl<'de> Visitor<'de> for Reader<'_, '_> {
        type Value = Record<'de>;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a JSON object")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Record<'de>, A::Error> {
            let mut record = Record {
                text: None,
                id: None,
            };
            while let Some(key) = map.next_key::<Str<'de>>()? {
                if key.0 == self.fields.text {
                    // Read raw and unescaped here, into the one scratch
                    // string: serde_json would unescape it into a buffer
                    // of its own, new for each line.
                    let raw: &'de RawValue = map.next_value()?;
                    record.text = text_of(raw.get(), self.scratch).map_err(de::Error::custom)?;
                } else if key.0 == self.fields.id {
                    record.id = Some(map.next_value()?);
                } else {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            Ok(record)
        }
    }

    /// A JSON string, borrowed when it holds no escape.
    struct Str<'de>(Cow<'de, str>);

    impl<'de> de::Deserialize<'de> for Str<'de> {
        fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_str(StrVisitor).map(Str)
        }
    }

    struct StrVisitor;

    impl<'de> Visitor<'de> for StrVisitor {
        type Value = Cow<'de, str>;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a string")
        }

        fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
            Ok(Cow::Borrowed(v))
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Cow::Owned(v.to_owned()))
        }

        fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
            Ok(Cow::Owned(v))
        }
    }

    /// A raw JSON value's text if it is a string (`None` for any other
    /// value): borrowed if it holds no escape, else unescaped into
    /// `scratch`. The parser has checked its syntax (escapes, hex digits,
    /// no control bytes); what is left to check is that its `\u` escapes
    /// pair their surrogates, as serde_json checks a string it reads.
    pub fn text_of<'de>(
        raw: &'de str,
        scratch: &mut String,
    ) -> Result<Option<Text<'de>>, &'static str> {
        let Some(inner) = raw.strip_prefix('"').and_then(|r| r.strip_suffix('"')) else {
            return Ok(None);
        };
        let Some(first) = memchr::memchr(b'\\', inner.as_bytes()) else {
            return Ok(Some(Text::Borrowed(inner)));
        };
        scratch.clear();
        scratch.push_str(&inner[..first]);
        let mut rest = &inner[first..];
        while let Some(escaped) = rest.strip_prefix('\\') {
            let mut chars = escaped.chars();
            let c = match chars.next() {
                Some('b') => '\u{8}',
                Some('f') => '\u{c}',
                Some('n') => '\n',
                Some('r') => '\r',
                Some('t') => '\t',
                Some('u') => {
                    let (c, after) = unicode_escape(&escaped[1..])?;
                    chars = after.chars();
                    c
                }
                // `"`, `\\`, `/`: the parser lets no other byte follow a `\\`.
                Some(c) => c,
                None => return Err("a string ends in a lone `\\`"),
            };
            scratch.push(c);
            rest = chars.as_str();
            let run = memchr::memchr(b'\\', rest.as_bytes()).unwrap_or(rest.len());
            scratch.push_str(&rest[..run]);
            rest = &rest[run..];
        }
        Ok(Some(Text::Scratch))
    }

    /// The character of the `\u` escape whose hex digits start `s`, a
    /// surrogate pair's two escapes read as one; and what follows it.
    fn unicode_escape(s: &str) -> Result<(char, &str), &'static str> {
        let hex = |s: &str| {
            s.get(..4)
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .ok_or("a `\\u` escape without four hex digits")
        };
        let n = hex(s)?;
        let rest = &s[4..];
        match n {
            0xDC00..=0xDFFF => Err("a lone trailing surrogate in a hex escape"),
            0xD800..=0xDBFF => {
                let low = rest
                    .strip_prefix("\\u")
                    .map(hex)
                    .transpose()?
                    .filter(|low| (0xDC00..=0xDFFF).contains(low))
                    .ok_or("a lone leading surrogate in a hex escape")?;
                let c = 0x10000 + ((n - 0xD800) << 10) + (low - 0xDC00);
                Ok((
                    char::from_u32(c).expect("a surrogate pair's character"),
                    &rest[6..],
                ))
            }
            _ => Ok((
                char::from_u32(n).expect("a character outside the surrogates"),
                rest,
            )),
        }
    }
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
            threads: 1,
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
            "{\"id\": 11, \"text\": \"a\"} trailing\n",
        );
        let mut input = input.as_bytes().to_vec();
        // Not UTF-8: counted, and the lines after it are still read.
        input.extend_from_slice(b"{\"id\": 12, \"text\": \"\xff\"}\n");
        input.extend_from_slice(
            b"{\"id\": 13, \"text\": \"first\", \"text\": \"4111 1111 1111 1111\"}",
        );
        let mut out = Vec::new();
        let bad = scan_jsonl(
            &detector,
            Box::new(std::io::Cursor::new(input)),
            &options(),
            &mut out,
        )
        .unwrap();
        assert_eq!(
            bad, 6,
            "not JSON, not an object, a number, no field, trailing bytes, not UTF-8"
        );
        let lines: Vec<Value> = String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 4);
        // A repeated field counts as its last value (as a map would).
        assert_eq!(lines[3]["id"], 13);
        assert_eq!(lines[3]["findings"][0]["type"], "CREDIT_CARD");
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

    /// The text of a JSON string token as serde_json reads it.
    fn serde_text(token: &str) -> Result<String, ()> {
        serde_json::from_str::<String>(token).map_err(|_| ())
    }

    /// The text of a raw value as the reader gives it.
    fn our_text(raw: &str) -> Result<Option<String>, ()> {
        let mut scratch = String::from("left over");
        match jsonl::text_of(raw, &mut scratch) {
            Ok(Some(jsonl::Text::Borrowed(t))) => Ok(Some(t.to_owned())),
            Ok(Some(jsonl::Text::Scratch)) => Ok(Some(scratch)),
            Ok(None) => Ok(None),
            Err(_) => Err(()),
        }
    }

    #[test]
    fn strings_are_unescaped_as_serde_json_unescapes_them() {
        for token in [
            r#""""#,
            r#""plain""#,
            r#""\"\\\/\b\f\n\r\t""#,
            r#""a\u0041\u00e9\u20AC b""#,
            r#""\ud83d\ude00 pair""#,
            r#""lone \ud83d""#,
            r#""lone \ud83d\n""#,
            r#""lone \ude00""#,
            r#""two leads \ud83d\ud83d""#,
            r#""café \u00e9""#,
        ] {
            assert_eq!(
                our_text(token).map(Option::unwrap),
                serde_text(token),
                "{token}"
            );
        }
        // Values that are no string have no text.
        for raw in ["12", "null", "{\"a\":\"b\"}", "[\"x\"]", "true"] {
            assert_eq!(our_text(raw), Ok(None), "{raw}");
        }
    }

    use proptest::strategy::Strategy as _;

    proptest::proptest! {
        /// Any string token serde_json accepts (escapes, surrogates paired
        /// or lone, any text between them) reads the same, and any it
        /// refuses is refused.
        #[test]
        fn generated_strings_unescape_as_serde_json_does(
            pieces in proptest::collection::vec(
                proptest::prop_oneof![
                    "[^\"\\\\\u{0}-\u{1f}]{0,4}",
                    proptest::sample::select(vec![
                        r"\\", r#"\""#, r"\/", r"\b", r"\f", r"\n", r"\r", r"\t",
                    ]).prop_map(str::to_owned),
                    proptest::prop_oneof![
                        0u32..0x80,
                        0xD7F0u32..0xE010,
                        0u32..0x10000,
                    ].prop_map(|n| format!("\\u{n:04x}")),
                ],
                0..12,
            )
        ) {
            let token = format!("\"{}\"", pieces.concat());
            let ours = our_text(&token).map(Option::unwrap);
            proptest::prop_assert_eq!(ours, serde_text(&token), "{}", token);
        }

        /// Whatever a string holds, serde_json's own escaping of it reads back.
        #[test]
        fn escaped_strings_read_back(text in "\\PC*") {
            let token = serde_json::to_string(&text).unwrap();
            proptest::prop_assert_eq!(our_text(&token), Ok(Some(text)));
        }
    }

    /// A read checked as UTF-8 whole and one read as bytes (it held a line
    /// that is not UTF-8) answer each line alike.
    #[test]
    fn lines_read_as_text_or_as_bytes_answer_alike() {
        let detector = Detector::new(PiiRules::defaults(), FingerprintKey::from_bytes(&[7; 32]));
        let mut input = monitor_pii::synth::eval_corpus(200, 5);
        input.push_str("{\"id\": 1, \"text\": \"call \\u0034\\u0031\\u0035-555-0132\"}\n");
        input.push_str("{\"id\": 2, \"text\": \"Grüße, 4111 1111 1111 1111\"}\n");
        input.push_str("not json\n");
        let mut lines = Vec::new();
        let mut start = 0;
        for line in input.split_inclusive('\n') {
            lines.push((start, start + line.len()));
            start += line.len();
        }
        let fields = jsonl::Fields {
            text: "text",
            id: "id",
        };
        let answer = |block| {
            let mut a = Answers::default();
            answer_lines(&detector, fields, 1, block, &lines, &mut a);
            a
        };
        let text = answer(Block::Text(&input));
        let bytes = answer(Block::Bytes(input.as_bytes()));
        assert_eq!((text.bad, &text.errors), (1, &bytes.errors));
        assert_eq!(text.out, bytes.out);
        assert_eq!(text.out.iter().filter(|&&b| b == b'\n').count(), 202);
        // Both escapes and the card were read.
        let answers = String::from_utf8(text.out).unwrap();
        let last: Vec<Value> = answers
            .lines()
            .rev()
            .take(2)
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(last[1]["findings"][0]["type"], "PHONE_NUMBER");
        assert_eq!(last[0]["findings"][0]["type"], "CREDIT_CARD");
    }

    #[test]
    fn answers_are_the_bytes_serde_writes() {
        let detector = Detector::new(PiiRules::defaults(), FingerprintKey::from_bytes(&[7; 32]));
        let serde_answer = |id: &str, findings: &[monitor_pii::Finding]| {
            let mut out = format!("{{\"id\":{id},\"findings\":").into_bytes();
            serde_json::to_writer(&mut out, findings).unwrap();
            out.extend_from_slice(b"}\n");
            out
        };
        let corpus = monitor_pii::synth::eval_corpus(300, 11);
        let mut findings = Vec::new();
        for line in corpus.lines() {
            let v: Value = serde_json::from_str(line).unwrap();
            let found = detector.scan(v["text"].as_str().unwrap().as_bytes());
            let mut out = Vec::new();
            write_answer(&mut out, "17", &found);
            assert_eq!(out, serde_answer("17", &found), "{line}");
            findings.extend(found);
        }
        assert!(
            findings.len() > 300,
            "the corpus gives findings of every kind"
        );
        // Every score a finding can have, and a custom name that needs escapes.
        let mut f = findings[0].clone();
        f.kind = monitor_pii::Kind::Custom("RISK \"quoted\" \\ name".into());
        for k in 0..=1000 {
            f.score = k as f32 / 1000.0;
            let mut out = Vec::new();
            write_answer(&mut out, "{\"a\":[1]}", std::slice::from_ref(&f));
            assert_eq!(out, serde_answer("{\"a\":[1]}", std::slice::from_ref(&f)));
        }
        let mut out = Vec::new();
        write_answer(&mut out, "null", &[]);
        assert_eq!(out, serde_answer("null", &[]));
    }

    /// Input that arrives a few bytes at a time, or in one line longer
    /// than a read, is answered line by line as if it came whole.
    #[test]
    fn lines_cut_by_reads_and_longer_than_a_read_are_answered_whole() {
        /// Gives at most `step` bytes per read.
        struct Trickle(std::io::Cursor<Vec<u8>>, usize);
        impl std::io::Read for Trickle {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                let n = buf.len().min(self.1);
                self.0.read(&mut buf[..n])
            }
        }
        let detector = Detector::new(PiiRules::defaults(), FingerprintKey::from_bytes(&[7; 32]));
        let long = format!(
            "{} card 4111 1111 1111 1111",
            "words ".repeat(READ_BYTES / 5)
        );
        let mut input = String::new();
        for i in 0..40 {
            let text = if i == 17 {
                long.clone()
            } else {
                format!("call 415-555-{i:04} now")
            };
            input.push_str(&json!({"id": i, "text": text}).to_string());
            input.push('\n');
        }
        // The last line has no newline.
        input.push_str(r#"{"id": 40, "text": "mail ana@example.com"}"#);
        let run = |step: usize| {
            let mut out = Vec::new();
            let reader = Trickle(std::io::Cursor::new(input.clone().into_bytes()), step);
            let bad = scan_jsonl(&detector, Box::new(reader), &options(), &mut out).unwrap();
            assert_eq!(bad, 0);
            String::from_utf8(out).unwrap()
        };
        let whole = run(usize::MAX);
        let answers: Vec<Value> = whole
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(answers.len(), 41);
        for (i, a) in answers.iter().enumerate() {
            assert_eq!(a["id"], i, "{a}");
            let kind = match i {
                17 => "CREDIT_CARD",
                40 => "EMAIL_ADDRESS",
                _ => "PHONE_NUMBER",
            };
            assert_eq!(a["findings"][0]["type"], kind, "{a}");
        }
        for step in [1, 7, 4096] {
            assert_eq!(run(step), whole, "reads of {step} bytes");
        }
    }

    #[test]
    fn threads_answer_lines_in_input_order_as_one_does() {
        let detector = Detector::new(PiiRules::defaults(), FingerprintKey::from_bytes(&[7; 32]));
        // Enough lines for two batches, each shared by the threads, with
        // findings, empty answers and bad lines throughout.
        let mut input = String::new();
        let (mut want_bad, mut want_out) = (0, 0);
        for i in 0..(BATCH_LINES + 3 * MIN_LINES_PER_THREAD + 17) {
            if matches!(i % 5, 2 | 4) {
                want_bad += 1;
            } else {
                want_out += 1;
            }
            let line = match i % 5 {
                0 => json!({"id": i, "text": format!("card 4111 1111 1111 1111 ref {i}")})
                    .to_string(),
                1 => json!({"id": i, "text": "nothing to see"}).to_string(),
                2 => format!("not json {i}"),
                3 => {
                    json!({"id": i, "text": format!("call 415-555-{:04}", i % 10_000)}).to_string()
                }
                _ => json!({"id": i, "body": "no text"}).to_string(),
            };
            input.push_str(&line);
            input.push('\n');
        }
        let run = |threads: usize| {
            let mut out = Vec::new();
            let opts = ScanOptions {
                threads,
                ..options()
            };
            let bad = scan_jsonl(
                &detector,
                Box::new(std::io::Cursor::new(input.clone().into_bytes())),
                &opts,
                &mut out,
            )
            .unwrap();
            (bad, out)
        };
        let (bad, one) = run(1);
        let lines = String::from_utf8(one.clone()).unwrap();
        assert_eq!(bad, want_bad);
        assert_eq!(lines.lines().count(), want_out);
        let ids: Vec<u64> = lines
            .lines()
            .map(|l| {
                serde_json::from_str::<Value>(l).unwrap()["id"]
                    .as_u64()
                    .unwrap()
            })
            .collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "in input order");
        for threads in [2, 3, 8] {
            assert_eq!(run(threads), (bad, one.clone()), "{threads} threads");
        }
    }
}
