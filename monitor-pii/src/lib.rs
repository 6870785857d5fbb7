//! The PII and secret detector.
//!
//! One engine serves the daemon's payload streams and `monitor scan`:
//!
//! - [`scan`] finds candidates (numeric groups, `@`, literal triggers) in
//!   one view of the input; [`validate`] holds the checksums and structural
//!   rules; [`context`] the hotwords that raise or lower a score;
//! - [`decode`] makes URL-decoded, JSON-unescaped and base64-decoded views,
//!   mapped back to offsets in the original bytes;
//! - [`mask`] turns a value into what may leave the detector: a mask and a
//!   keyed fingerprint. **No raw value leaves this crate**: [`Finding`] has
//!   no field that holds it;
//! - [`rules`] reads thresholds and custom detectors (`rules/pii.toml`);
//! - [`stream`] scans a stream chunk by chunk;
//! - [`synth`] makes labeled synthetic text for the benchmarks and the evaluation corpus;
//!   [`eval`] scores findings against labels.

mod address;
mod anchored;
pub mod bytemask;
pub mod context;
pub mod decode;
pub mod eval;
pub mod mask;
pub mod names;
pub mod rules;
pub mod scan;
pub mod stream;
pub mod synth;
pub mod types;
pub mod validate;

use std::cell::RefCell;
use std::sync::Arc;

use serde::Serialize;

pub use mask::{load_or_create_key, BadFingerprint, Fingerprint, FingerprintKey, KeyError, Masked};
pub use rules::{PiiRules, RulesError};
pub use stream::StreamScanner;
pub use types::PiiType;

use scan::{Candidate, Scanner};

/// How many base64 layers are looked inside.
const MAX_DEPTH: usize = 3;

/// What kind of data a finding is.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A built-in type.
    Builtin(PiiType),
    /// A custom detector from the rules.
    Custom(Arc<str>),
}

impl Kind {
    /// The type name (`CREDIT_CARD`, or the custom detector's name).
    pub fn name(&self) -> &str {
        match self {
            Kind::Builtin(t) => t.name(),
            Kind::Custom(n) => n,
        }
    }
}

impl Serialize for Kind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

/// One finding. It holds no raw value: only where it is, how sure the
/// detector is, a mask and a keyed fingerprint.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    /// The type.
    #[serde(rename = "type")]
    pub kind: Kind,
    /// Byte offset of the start, in the input as given.
    pub start: usize,
    /// Byte offset of the end (exclusive).
    pub end: usize,
    /// Confidence, 0 to 1 (two decimals in JSON).
    #[serde(serialize_with = "two_decimals")]
    pub score: f32,
    /// The value masked (cards: at most the first 6 and last 4 digits).
    pub masked: Masked,
    /// HMAC-SHA256 of the normalized value under the host key (hex, 128 bits).
    pub fingerprint: Fingerprint,
}

fn two_decimals<S: serde::Serializer>(score: &f32, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64((f64::from(*score) * 100.0).round() / 100.0)
}

/// The detector: compiled triggers, rules, and the fingerprint key.
pub struct Detector {
    scanner: Scanner,
    rules: PiiRules,
    key: FingerprintKey,
    /// How far around an escape decoded views reach.
    margin: usize,
}

impl Detector {
    /// A detector with the given rules and key.
    pub fn new(rules: PiiRules, key: FingerprintKey) -> Self {
        // The name lists (read once per process) and the compiled grammars
        // take about as long to build: side by side where a thread can
        // start, else the lists are read at the first scan. A later
        // detector (a reload) finds them read and starts no thread.
        let scanner = if names::loaded() {
            Scanner::new()
        } else {
            std::thread::scope(|s| {
                let lists = std::thread::Builder::new().spawn_scoped(s, names::load);
                let scanner = Scanner::new();
                if let Ok(lists) = lists {
                    // Reading them cannot fail: the lists are built in.
                    let _ = lists.join();
                }
                scanner
            })
        };
        Self {
            scanner,
            rules,
            key,
            margin: decode::REGION_MARGIN,
        }
    }

    /// A detector with other rules and the same fingerprint key (a reload:
    /// fingerprints stay comparable across it).
    pub fn with_rules(&self, rules: PiiRules) -> Self {
        Self::new(rules, self.key.clone())
    }

    /// Whether findings of type `name` can exist: a built-in type or one of
    /// this detector's custom ones.
    pub fn knows_type(&self, name: &str) -> bool {
        PiiType::from_name(name).is_some() || self.rules.custom.iter().any(|d| &*d.name == name)
    }

    /// Every type name findings can have, built-in first.
    pub fn type_names(&self) -> Vec<String> {
        PiiType::ALL
            .iter()
            .map(|t| Kind::Builtin(*t).name().to_owned())
            .chain(self.rules.custom.iter().map(|d| d.name.to_string()))
            .collect()
    }

    /// A new stream (feed it with this detector).
    pub fn stream(&self) -> StreamScanner {
        StreamScanner::new()
    }

    /// A keyed digest of arbitrary bytes (e.g. a whole payload), so equal
    /// payloads correlate without being stored.
    pub fn digest(&self, bytes: &[u8]) -> Fingerprint {
        self.key.fingerprint("PAYLOAD", bytes)
    }

    /// The fingerprint `value` would have as a finding of type `kind`: lets an
    /// analyst ask where a value went without the store ever holding it.
    pub fn fingerprint_of(&self, kind: &Kind, value: &[u8]) -> Fingerprint {
        let builtin = match kind {
            Kind::Builtin(t) => Some(*t),
            Kind::Custom(_) => None,
        };
        let norm = mask::normalize(builtin, value);
        self.key.fingerprint(kind.name(), &norm)
    }

    /// Every finding in `text`, ordered by offset.
    pub fn scan(&self, text: &[u8]) -> Vec<Finding> {
        self.scan_ending_after(text, 0)
    }

    /// The findings of [`Detector::scan`] that end after `end`: the others
    /// are chosen as `scan` chooses them (they still win or lose overlaps)
    /// but never masked or fingerprinted. For a stream, whose text starts
    /// with bytes already reported.
    pub fn scan_ending_after(&self, text: &[u8], end: usize) -> Vec<Finding> {
        if text.is_empty() {
            return Vec::new();
        }
        thread_local! {
            /// Each thread's working space, kept from scan to scan, so a
            /// scan allocates only its findings.
            static SCRATCH: RefCell<Scratch> = RefCell::default();
        }
        SCRATCH.with(|s| match s.try_borrow_mut() {
            Ok(mut s) => self.scan_with(text, end, &mut s),
            // Not reached (a scan makes no scan), but never a panic.
            Err(_) => self.scan_with(text, end, &mut Scratch::default()),
        })
    }

    /// [`Detector::scan_ending_after`] in `scratch`.
    fn scan_with(&self, text: &[u8], end: usize, scratch: &mut Scratch) -> Vec<Finding> {
        let Scratch {
            cands,
            chosen,
            norm,
        } = scratch;
        cands.clear();
        self.candidates(text, 0, cands);
        cands.retain(|c| match c.kind {
            Some(t) => self.rules.enabled(t) && c.score >= self.rules.threshold(t),
            None => c.score >= self.rules.custom[c.custom as usize].threshold,
        });
        resolve(cands, chosen);
        let findings = chosen
            .iter()
            .filter(|c| c.end > end)
            .map(|c| self.finding(text, c, norm))
            .collect();
        // What a huge text needed is not kept for the next.
        for v in [cands, chosen] {
            v.clear();
            v.shrink_to(KEPT_CANDIDATES);
        }
        findings
    }

    /// The finding for `c`; `norm` is scratch space for the normalized value.
    fn finding(&self, text: &[u8], c: &Candidate, norm: &mut Vec<u8>) -> Finding {
        let kind = match c.kind {
            Some(t) => Kind::Builtin(t),
            None => Kind::Custom(self.rules.custom[c.custom as usize].name.clone()),
        };
        // A finding from a decoded view spans encoded bytes; mask what it decodes to.
        let raw = &text[c.start..c.end];
        let decoded = if c.decoded { reveal(raw) } else { None };
        let value = decoded.as_deref().unwrap_or(raw);
        mask::normalize_into(c.kind, value, norm);
        Finding {
            masked: mask::mask(c.kind, value, norm),
            fingerprint: self.key.fingerprint(kind.name(), norm),
            kind,
            start: c.start,
            end: c.end,
            score: c.score,
        }
    }

    fn candidates(&self, text: &[u8], depth: usize, out: &mut Vec<Candidate>) {
        let census = bytemask::Census::of(text);
        self.scanner.scan_counted(text, census, out);
        self.custom(text, out);
        if depth == 0 && census.escape {
            self.escaped(text, out);
        }
        // A run worth decoding mixes cases.
        if census.upper && text.len() >= decode::MIN_BASE64 {
            self.base64(text, depth, out);
        }
    }

    /// Candidates in URL-decoded and JSON-unescaped views of the stretches
    /// of `text` around escapes (see [`decode::escaped_regions`]).
    fn escaped(&self, text: &[u8], out: &mut Vec<Candidate>) {
        let margin = self.margin;
        // A stretch cut out of the text has false edges: a value there may
        // look whole, or lose its hotwords. Candidates that near are left to
        // the raw scan (with no escape within a quarter margin they hold none).
        let edge = margin / 4;
        for (s, e) in decode::escaped_regions(text, margin) {
            let part = &text[s..e];
            let clear = |start: usize, end: usize| {
                (s == 0 || start >= s + edge) && (e == text.len() || end + edge <= e)
            };
            for view in [decode::url_decoded(part), decode::json_unescaped(part)]
                .into_iter()
                .flatten()
            {
                let mut inner = Vec::new();
                self.scanner.scan(&view.bytes, &mut inner);
                self.custom(&view.bytes, &mut inner);
                for mut c in inner {
                    let (start, end) = view.original(c.start, c.end);
                    (c.start, c.end) = (s + start, s + end);
                    if clear(c.start, c.end) {
                        c.decoded = true;
                        out.push(c);
                    }
                }
            }
        }
    }

    fn base64(&self, text: &[u8], depth: usize, out: &mut Vec<Candidate>) {
        if depth >= MAX_DEPTH {
            return;
        }
        for (s, e) in decode::base64_runs(text) {
            let Some(decoded) = decode::base64_text(&text[s..e]) else {
                continue;
            };
            let mut inner = Vec::new();
            self.candidates(&decoded, depth + 1, &mut inner);
            for mut c in inner {
                // The whole encoded run is the finding's extent in the original.
                c.start = s;
                c.end = e;
                c.decoded = true;
                out.push(c);
            }
        }
    }

    fn custom(&self, text: &[u8], out: &mut Vec<Candidate>) {
        for (i, d) in self.rules.custom.iter().enumerate() {
            let span = regex_automata::Span::from(0..text.len());
            if d.prefixes
                .as_ref()
                .is_some_and(|p| p.find(text, span).is_none())
            {
                continue;
            }
            for m in d.pattern.find_iter(text) {
                if m.is_empty() || !d.validator.check(m.as_bytes()) {
                    continue;
                }
                let near = [
                    context::before(text, m.start(), context::BEFORE),
                    context::after(text, m.end(), context::AFTER),
                ];
                let hot = d
                    .hotwords
                    .iter()
                    .any(|w| near.iter().any(|t| context::contains_ci(t, w.as_bytes())));
                out.push(Candidate {
                    kind: None,
                    custom: i as u16,
                    start: m.start(),
                    end: m.end(),
                    score: (d.score + if hot { 0.3 } else { 0.0 }).min(1.0),
                    decoded: false,
                });
            }
        }
    }
}

/// The decoded text of an encoded span (base64, `%XX`, `\u`), if it is one.
fn reveal(raw: &[u8]) -> Option<Vec<u8>> {
    if let Some(v) = decode::url_decoded(raw) {
        return Some(v.bytes);
    }
    if let Some(v) = decode::json_unescaped(raw) {
        return Some(v.bytes);
    }
    if raw.len() >= decode::MIN_BASE64
        && raw
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'/' | b'=' | b'-' | b'_'))
    {
        let mut inner = decode::base64_text(raw)?;
        // Nested layers: keep decoding while it still looks like base64.
        for _ in 1..MAX_DEPTH {
            let runs = decode::base64_runs(&inner);
            match runs.as_slice() {
                [(0, e)] if *e == inner.len() => match decode::base64_text(&inner) {
                    Some(next) => inner = next,
                    None => break,
                },
                _ => break,
            }
        }
        return Some(inner);
    }
    None
}

/// Candidates' room a thread keeps between scans.
const KEPT_CANDIDATES: usize = 1024;

/// Working space a scan reuses.
#[derive(Default)]
struct Scratch {
    /// Every candidate.
    cands: Vec<Candidate>,
    /// The candidates [`resolve`] keeps.
    chosen: Vec<Candidate>,
    /// A finding's normalized value.
    norm: Vec<u8>,
}

/// Chooses among overlapping candidates (into `out`, cleared first):
/// within each cluster of overlapping spans, the highest-priority type
/// wins, then the higher score, then the longer span. Identical
/// duplicates (a value seen raw and decoded) collapse.
fn resolve(cands: &mut Vec<Candidate>, out: &mut Vec<Candidate>) {
    out.clear();
    // Digits inside a credential (a Slack token's team and user ids, a key's
    // body) are part of it, not a card or a phone number.
    let mut tokens: Vec<(usize, usize)> = cands
        .iter()
        .filter(|c| !c.decoded && c.kind.is_some_and(PiiType::is_credential))
        .map(|c| (c.start, c.end))
        .collect();
    if !tokens.is_empty() {
        // By start, each with the furthest end of any token starting at or
        // before it: a candidate lies inside a token when the token
        // starting last at or before it reaches its end.
        tokens.sort_unstable();
        let mut reach = Vec::with_capacity(tokens.len());
        let mut furthest = 0;
        for &(_, e) in &tokens {
            furthest = furthest.max(e);
            reach.push(furthest);
        }
        cands.retain(|c| {
            if c.decoded || c.kind.is_none_or(PiiType::is_credential) {
                return true;
            }
            let k = tokens.partition_point(|&(s, _)| s <= c.start);
            k == 0 || reach[k - 1] < c.end
        });
    }
    cands.sort_by_key(|c| (c.start, std::cmp::Reverse(c.end)));
    let mut i = 0;
    while i < cands.len() {
        let mut j = i + 1;
        let mut reach = cands[i].end;
        while j < cands.len() && cands[j].start < reach {
            reach = reach.max(cands[j].end);
            j += 1;
        }
        let cluster = &mut cands[i..j];
        if cluster.len() == 1 {
            out.push(cluster[0].clone());
        } else {
            cluster.sort_by(|a, b| {
                let pa = a.kind.map_or(usize::MAX - 1, PiiType::priority);
                let pb = b.kind.map_or(usize::MAX - 1, PiiType::priority);
                pa.cmp(&pb)
                    .then(b.score.total_cmp(&a.score))
                    .then((b.end - b.start).cmp(&(a.end - a.start)))
                    .then(a.decoded.cmp(&b.decoded))
            });
            let mut kept: Vec<Candidate> = Vec::new();
            for c in cluster.iter() {
                if kept.iter().all(|k| c.end <= k.start || c.start >= k.end) {
                    kept.push(c.clone());
                }
            }
            kept.sort_by_key(|c| c.start);
            out.extend(kept);
        }
        i = j;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detector() -> Detector {
        Detector::new(PiiRules::defaults(), FingerprintKey::from_bytes(&[7; 32]))
    }

    #[test]
    fn a_value_fingerprints_the_same_in_every_written_form() {
        // A bare digit run is also valid base64; it must not be "revealed".
        let d = detector();
        let forms = [
            "4111111111111111",
            "card 4111 1111 1111 1111",
            "card=4111-1111-1111-1111",
        ];
        let fps: Vec<(Masked, Fingerprint)> = forms
            .iter()
            .map(|t| {
                let f = d.scan(t.as_bytes()).remove(0);
                (f.masked, f.fingerprint)
            })
            .collect();
        assert!(fps.iter().all(|f| *f == fps[0]), "{fps:?}");
        assert_eq!(fps[0].0, "411111******1111");
        let kind = Kind::Builtin(PiiType::CreditCard);
        assert_eq!(d.fingerprint_of(&kind, b"4111 1111 1111 1111"), fps[0].1);
    }

    fn found(text: &str) -> Vec<(String, String, String)> {
        detector()
            .scan(text.as_bytes())
            .into_iter()
            .map(|f| {
                (
                    f.kind.name().to_owned(),
                    text[f.start..f.end].to_owned(),
                    f.masked.into(),
                )
            })
            .collect()
    }

    #[test]
    fn raw_values_never_appear_in_findings() {
        let text = "card 4111 1111 1111 1111, ssn 123-45-6789, jane@example.com";
        for f in detector().scan(text.as_bytes()) {
            let json = serde_json::to_string(&f).unwrap();
            assert!(!json.contains("4111 1111 1111 1111") && !json.contains("4111111111111111"));
            assert!(!json.contains("123-45-6789") && !json.contains("jane@"));
        }
    }

    #[test]
    fn decoded_views_report_original_offsets() {
        let text = "q=card%3A%204111%201111%201111%201111&x=1";
        let f = found(text);
        assert_eq!(f[0].0, "CREDIT_CARD");
        assert_eq!(f[0].1, "4111%201111%201111%201111");
        assert_eq!(f[0].2, "411111******1111");

        // A form post with no `%XX`: the spaces typed in the number are `+`.
        let form = "name=Jo+Li&card=4111+1111+1111+1111&ssn=123+45+6789&exp=12";
        let f = found(form);
        let kinds: Vec<_> = f
            .iter()
            .map(|f| (f.0.as_str(), f.1.as_str(), f.2.as_str()))
            .collect();
        assert!(
            kinds.contains(&("CREDIT_CARD", "4111+1111+1111+1111", "411111******1111")),
            "{kinds:?}"
        );
        assert!(
            kinds.contains(&("US_SSN", "123+45+6789", "***-**-6789")),
            "{kinds:?}"
        );
        // A name in a query string, its space a `+`.
        let query = "GET /search?customer=Maria+Lopez&zip=94110 HTTP/1.1";
        let f = found(query);
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(
            (f[0].0.as_str(), f[0].1.as_str()),
            ("PERSON", "Maria+Lopez")
        );

        let json = r#"{"msg":"my card is \u0034111111111111111"}"#;
        let f = found(json);
        assert_eq!(f[0].1, r"\u0034111111111111111");

        use base64::Engine as _;
        let inner = base64::engine::general_purpose::STANDARD.encode("ssn: 123-45-6789 thanks");
        let outer = base64::engine::general_purpose::STANDARD.encode(&inner);
        let text = format!("blob={outer};");
        let f = found(&text);
        assert_eq!(f[0].0, "US_SSN");
        assert_eq!(f[0].1, outer);
        assert_eq!(f[0].2, "***-**-6789");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        #[test]
        fn decoding_around_escapes_finds_what_decoding_everything_finds(
            parts in proptest::collection::vec(
                proptest::sample::select(vec![
                    "card ", "4111 1111 1111 1111", "4111%201111%201111%201111", "%20", "%34",
                    "\\u0034111 1111 1111 1111", "ssn 123-45-6789", "ssn 123%2D45%2D6789",
                    " ", "\n", "jane%40example.com", "call 202-555-0143", "order 12",
                    "lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor ",
                ]),
                0..60,
            ),
        ) {
            let text = parts.concat();
            let mut near = detector();
            near.margin = 512;
            let mut whole = detector();
            whole.margin = usize::MAX / 4;
            let got = near.scan(text.as_bytes());
            proptest::prop_assert_eq!(got, whole.scan(text.as_bytes()));
        }
    }

    #[test]
    fn overlaps_keep_the_highest_priority() {
        // 16 digits that pass Luhn are a card, not a phone or account number.
        let f = found("account number 4111111111111111");
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].0, "CREDIT_CARD");
    }

    #[test]
    fn digits_inside_a_credential_are_the_credential() {
        // A Slack token whose user id passes Luhn, after a payment word.
        let f =
            found("payment token xoxb-37816193616-046674534568-Hyf2ExJ9jjemDGq0RKqULWkl recently");
        assert_eq!(
            f.iter().map(|(k, _, _)| k.as_str()).collect::<Vec<_>>(),
            ["SLACK_TOKEN"]
        );
    }

    #[test]
    fn custom_detectors_from_rules() {
        let rules = PiiRules::parse(
            "[[custom]]\nname = \"EMPLOYEE_ID\"\npattern = 'EMP-[0-9]{4}'\nhotwords = [\"employee\"]\nscore = 0.3\n",
            "t.toml",
        )
        .unwrap();
        let d = Detector::new(rules, FingerprintKey::from_bytes(&[7; 32]));
        let f =
            d.scan(b"employee EMP-1234; the rest of this note is about something else: EMP-9999");
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].kind.name(), "EMPLOYEE_ID");
        assert_eq!(f[0].start, 9);
    }

    #[test]
    fn fingerprint_of_matches_findings() {
        let d = detector();
        let f = &d.scan(b"pay 4111-1111-1111-1111 now")[0];
        assert_eq!(
            d.fingerprint_of(&Kind::Builtin(PiiType::CreditCard), b"4111111111111111"),
            f.fingerprint
        );
    }

    #[test]
    fn scanning_past_an_end_builds_only_what_ends_after_it() {
        let d = detector();
        let text = synth::corpus_text("contact", 4096, 3).into_bytes();
        let all = d.scan(&text);
        assert!(all.len() > 10);
        for end in [0, 1, 100, 777, 2048, text.len() - 1, text.len()] {
            let want: Vec<_> = all.iter().filter(|f| f.end > end).cloned().collect();
            assert_eq!(d.scan_ending_after(&text, end), want, "past {end}");
        }
    }

    #[test]
    fn streams_find_split_values_once_with_absolute_offsets() {
        let d = detector();
        let text = b"hello there, my card is 4111 1111 1111 1111 and that is all";
        for split in 1..text.len() {
            let mut s = d.stream();
            let mut all = s.feed(&d, &text[..split]);
            all.extend(s.feed(&d, &text[split..]));
            all.extend(s.finish(&d));
            assert_eq!(all.len(), 1, "split at {split}: {all:?}");
            assert_eq!((all[0].start, all[0].end), (24, 43));
        }
    }

    #[test]
    fn a_stream_fed_joined_finds_what_one_scan_finds_each_in_the_chunk_it_ends_in() {
        let d = detector();
        let text = synth::corpus_text("contact", 8192, 5).into_bytes();
        let whole = d.scan(&text);
        assert!(whole.len() > 10, "{}", whole.len());
        let chunks: Vec<&[u8]> = text.chunks(61).collect();
        let mut s = d.stream();
        let each = s.feed_joined(&d, &chunks);
        assert_eq!(each.len(), chunks.len());
        for (k, findings) in each.iter().enumerate() {
            for f in findings {
                assert!(
                    f.end > k * 61 && f.end <= (k + 1) * 61,
                    "{f:?} in chunk {k}"
                );
            }
        }
        assert_eq!(each.concat(), whole);
        assert!(s.carry_len() <= stream::OVERLAP);
        assert_eq!(s.position(), text.len() as u64);
        assert!(s.feed_joined(&d, &[]).is_empty());
        // A value one chunk ends and the next extends is reported once, whole.
        let card = b"my card is 4111 1111 1111 1111 thanks";
        let mut s = d.stream();
        let each = s.feed_joined(&d, &[&card[..20], b"", &card[20..]]);
        assert!(each[0].is_empty() && each[1].is_empty(), "{each:?}");
        assert_eq!(each[2].len(), 1);
        assert_eq!((each[2][0].start, each[2][0].end), (11, 30));
    }

    #[test]
    fn stream_memory_is_bounded() {
        let d = detector();
        let mut s = d.stream();
        let chunk = vec![b'a'; 10_000];
        for _ in 0..20 {
            s.feed(&d, &chunk);
        }
        assert!(s.carry_len() <= stream::OVERLAP);
        assert_eq!(s.position(), 200_000);
    }
}
