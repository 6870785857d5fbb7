//! Candidate finding over one view of the input (the raw bytes, or a decoded
//! copy). Three cheap passes feed the validators:
//!
//! - numeric groups: digit runs joined by single separators (run starts
//!   come from a digit mask of 64 bytes at a time), tried against card, SSN,
//!   ITIN, routing, account, phone, IP, date, CVV, street-address and IBAN
//!   shapes;
//! - `@` (memchr) for e-mail addresses;
//! - literal triggers for secrets and name hotwords (two Aho-Corasick
//!   passes; in a text of 128 bytes or less, the starts of their first two
//!   bytes, which give the same matches without the automata's fixed cost).

use std::cell::OnceCell;

use aho_corasick::{AhoCorasick, MatchKind};
use regex::bytes::Regex;

use crate::bytemask::{self, Census, Classes, Run, BLOCK};
use crate::context::{self, Cat, LazyNear as Near};
use crate::types::PiiType;
use crate::validate;

/// A possible finding before thresholds and overlap resolution.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// Built-in type, or `None` for a custom detector (see `custom`).
    pub kind: Option<PiiType>,
    /// Index of the custom detector.
    pub custom: u16,
    /// Byte offsets in the view.
    pub start: usize,
    /// End offset (exclusive).
    pub end: usize,
    /// Confidence 0..=1.
    pub score: f32,
    /// Found in a decoded view (URL, JSON escapes, base64): the span holds
    /// the encoded form.
    pub decoded: bool,
}

impl Candidate {
    pub(crate) fn new(kind: PiiType, start: usize, end: usize, score: f32) -> Self {
        Self {
            kind: Some(kind),
            custom: 0,
            start,
            end,
            score: score.clamp(0.0, 1.0),
            decoded: false,
        }
    }
}

/// Literal triggers, in pattern order (earlier wins at the same position).
/// Few and short, so one SIMD (Teddy) pass finds them. The set is chosen
/// for that pass: families share one trigger (`xox` for Slack's `xoxb-`,
/// `xoxp-`, ...; `Mr`, `Ms` for the titles) and the handlers check the
/// rest, which roughly halves the pass's false starts.
const TRIGGERS: &[&str] = &[
    "AKIA",
    "ASIA",
    "github_pat_",
    "ghp_",
    "gho_",
    "ghu_",
    "ghs_",
    "ghr_",
    "xox",
    "sk-",
    "eyJ",
    "-----BEGIN ",
    // Name fields (`name`, `first_name`, `lastName`, `cardholder_name`, ...) and titles.
    "name",
    "Name",
    "NAME",
    "Mr",
    "Ms",
];
const SECRET_TRIGGERS: usize = 12;

/// More secret prefixes, in a second pass of their own: added to the one
/// above they would push its pattern set past what its fast (Teddy)
/// search takes, which slowed every scan several times over.
const MORE_SECRET_TRIGGERS: &[&str] = &[
    "ABIA",
    "ACCA",
    "AIza",
    "_live_",
    "_test_",
    "_prod_",
    "hooks.slack.com/",
    "xapp-",
    // JWT headers that are pretty-printed JSON: `{\n  "`, `{\n\t`, `{\r\n`, `{ "`.
    "ewog",
    "ewoJ",
    "ew0K",
    "eyAi",
];

/// Cues before a name written in lower case, as chat often is (`my name
/// is maria lopez`): in the second pass too, after
/// [`MORE_SECRET_TRIGGERS`] (four more, with `i'm ` and `this is `, cost
/// that pass its fast search: clean text fell from 1.16 to 0.70 GiB/s;
/// `i'm` and `it's` are found from their apostrophes instead).
const LOWER_CASE_NAME_CUES: &[&str] = &["name is ", "name's "];

/// Compiled pieces shared by every scan.
pub struct Scanner {
    triggers: AhoCorasick,
    more_triggers: AhoCorasick,
    /// The patterns of `more_triggers`, in order.
    more_literals: Vec<&'static str>,
    address: crate::address::Grammar,
    /// A day and a month name before a year (`March 3, 1985`, `3rd of
    /// March 1985`, `3. März 1985`, `3 de marzo de 1985`).
    month_day: Regex,
    words: context::Hotwords,
}

impl Scanner {
    /// Builds the automaton and the address grammar.
    pub fn new() -> Self {
        let triggers = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostFirst)
            .build(TRIGGERS)
            .expect("static trigger set");
        // One list for both searches of these triggers: the pattern
        // numbers of each are positions in it.
        let more_literals: Vec<&'static str> = MORE_SECRET_TRIGGERS
            .iter()
            .chain(LOWER_CASE_NAME_CUES)
            .copied()
            .collect();
        let more_triggers = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostFirst)
            .build(&more_literals)
            .expect("static trigger set");

        let months = MONTHS
            .iter()
            .map(|(name, _)| *name)
            .collect::<Vec<_>>()
            .join("|");
        let month_day = Regex::new(&format!(
            r"(?i)(?:(?-u:\b)(?:{months})\.?\s+\d{{1,2}}(?:st|nd|rd|th)?,?|(?-u:\b)\d{{1,2}}(?:st|nd|rd|th|er|\.)?\s+(?:of\s+|de\s+)?(?:{months})\.?,?(?:\s+de)?)\s+$"
        ))
        .expect("static month grammar");
        Self {
            triggers,
            more_triggers,
            more_literals,
            address: crate::address::Grammar::new(),
            month_day,
            words: context::Hotwords::new(),
        }
    }

    /// Appends every candidate in `text` to `out`.
    pub fn scan(&self, text: &[u8], out: &mut Vec<Candidate>) {
        self.scan_counted(text, Census::of(text), out);
    }

    /// [`Scanner::scan`] of a text whose [`Census`] is taken: the passes
    /// whose trigger bytes it lacks are skipped.
    pub fn scan_counted(&self, text: &[u8], census: Census, out: &mut Vec<Candidate>) {
        if census.digit {
            numeric_groups::<true>(self, text, out);
        }
        if census.at {
            emails(text, out);
        }
        if census.assign {
            colons_and_equals(text, out);
        }
        if census.upper || census.high {
            crate::names::running_text(text, out);
        }
        // `’` ends in a byte of a non-ASCII character.
        if census.apostrophe || census.high {
            crate::names::lower_case_after_apostrophe(text, out);
        }
        let trigger = |out: &mut Vec<Candidate>, start: usize, end: usize, k: usize| {
            if k < SECRET_TRIGGERS {
                secret(text, start, end, out);
            } else {
                person(text, start, end, out);
            }
        };
        let more_trigger = |out: &mut Vec<Candidate>, start: usize, end: usize, k: usize| {
            if k < MORE_SECRET_TRIGGERS.len() {
                secret(text, start, end, out);
            } else {
                crate::names::lower_case_after_cue(text, end, out);
            }
        };
        if text.len() <= bytemask::PAIR_TEXT_MAX {
            // Aho-Corasick's fixed cost per search (tens of ns) is most of
            // a short text's: its matches are found from the starts of
            // the triggers' first two bytes instead, the same ones.
            let starts = bytemask::pair_starts(text, TRIGGER_PAIRS);
            literal_matches(text, &starts, TRIGGERS, |s, e, k| trigger(out, s, e, k));
            literal_matches(text, &starts, &self.more_literals, |s, e, k| {
                more_trigger(out, s, e, k)
            });
        } else {
            for m in self.triggers.find_iter(text) {
                trigger(out, m.start(), m.end(), m.pattern().as_usize());
            }
            for m in self.more_triggers.find_iter(text) {
                more_trigger(out, m.start(), m.end(), m.pattern().as_usize());
            }
        }
    }
}

/// The first two bytes of every trigger ([`TRIGGERS`],
/// [`MORE_SECRET_TRIGGERS`], [`LOWER_CASE_NAME_CUES`]); a test holds them
/// to the lists.
const TRIGGER_PAIRS: bytemask::Pairs<'static> = &[
    (b'A', b"KSBCI"),
    (b'g', b"ih"),
    (b'x', b"oa"),
    (b's', b"k"),
    (b'e', b"yw"),
    (b'-', b"-"),
    (b'n', b"a"),
    (b'N', b"aA"),
    (b'M', b"rs"),
    (b'_', b"ltp"),
    (b'h', b"o"),
];

/// The matches of `patterns` in a short `text` that Aho-Corasick's
/// leftmost-first search gives, in order: at each start in `starts` (the
/// positions of [`TRIGGER_PAIRS`]) past the last match, the first pattern
/// that matches there. `found` gets each match's start, end and pattern.
fn literal_matches(
    text: &[u8],
    starts: &[u64],
    patterns: &[&str],
    mut found: impl FnMut(usize, usize, usize),
) {
    let mut next = 0;
    for (w, &word) in starts.iter().enumerate() {
        let mut bits = word;
        while bits != 0 {
            let at = w * BLOCK + bits.trailing_zeros() as usize;
            bits &= bits - 1;
            if at < next {
                continue;
            }
            let rest = &text[at..];
            // Every pattern is two bytes or more; most are ruled out by
            // those two before a comparison of the rest.
            let pair = (rest[0], rest.get(1).copied());
            let fits = |p: &&str| {
                let p = p.as_bytes();
                (p[0], Some(p[1])) == pair && rest.starts_with(p)
            };
            if let Some(k) = patterns.iter().position(fits) {
                next = at + patterns[k].len();
                found(at, next, k);
            }
        }
    }
}

#[cfg(test)]
impl Scanner {
    /// One scanner for every test (building one compiles its grammars).
    pub(crate) fn shared() -> &'static Scanner {
        static SCANNER: std::sync::OnceLock<Scanner> = std::sync::OnceLock::new();
        SCANNER.get_or_init(Scanner::new)
    }
}

impl Default for Scanner {
    fn default() -> Self {
        Self::new()
    }
}

#[inline]
fn is_alnum(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// The starts of digit runs, in order, found an aligned block of bytes at
/// a time.
struct RunStarts {
    /// Start of the block `bits` describes (a multiple of [`BLOCK`]), or
    /// `usize::MAX` before the first.
    base: usize,
    /// Run starts in the block not yet returned (bit k: `base + k`).
    bits: u64,
}

impl RunStarts {
    fn new() -> Self {
        Self {
            base: usize::MAX,
            bits: 0,
        }
    }

    /// Digits in the block at `base` that start a run and a word: the
    /// previous byte is not a digit or letter (digits inside an identifier
    /// are never a value), except after two capitals (an IBAN's country).
    fn in_block(classes: &mut Classes<'_>, base: usize) -> u64 {
        let (_, m) = classes.block(base);
        if m.digit == 0 {
            return 0;
        }
        let text = classes.text();
        let prev = |back: usize| base >= back && text[base - back].is_ascii_alphanumeric();
        let word = m.digit | m.letter;
        let after_word = word << 1 | u64::from(prev(1));
        let mut starts = m.digit & !after_word;
        // Digits after a letter: few, so the two capitals are checked a byte at a time.
        let mut after_letter = m.digit & (m.letter << 1 | u64::from(prev(1)));
        while after_letter != 0 {
            let k = after_letter.trailing_zeros() as usize;
            after_letter &= after_letter - 1;
            // (No branch: whether two capitals come before is data.)
            let i = base + k;
            let capitals =
                i >= 2 && text[i - 1].is_ascii_uppercase() & text[i - 2].is_ascii_uppercase();
            starts |= u64::from(capitals) << k;
        }
        starts
    }

    /// Forgets the block read, so a position before the last one returned
    /// can be asked for.
    fn rewind(&mut self) {
        self.base = usize::MAX;
    }

    /// The first run start at or after `i`.
    fn next_from(&mut self, classes: &mut Classes<'_>, i: usize) -> Option<usize> {
        let len = classes.text().len();
        if i >= len {
            return None;
        }
        let base = i & !(BLOCK - 1);
        if base != self.base {
            self.base = base;
            self.bits = Self::in_block(classes, base);
        }
        self.bits &= u64::MAX << (i - base);
        while self.bits == 0 {
            self.base += BLOCK;
            if self.base >= len {
                return None;
            }
            self.bits = Self::in_block(classes, self.base);
        }
        let start = self.base + self.bits.trailing_zeros() as usize;
        self.bits &= self.bits - 1;
        Some(start)
    }
}

/// Up to this many digit blocks form one group.
const MAX_BLOCKS: usize = 8;

/// A run of digit blocks joined by single separators.
struct Group {
    blocks: [(usize, usize); MAX_BLOCKS],
    seps: [u8; MAX_BLOCKS],
    n: usize,
    /// Full, with more blocks after it: the next group starts again at its
    /// middle, so a value across the cut (the third of three cards in a
    /// row) is read whole.
    full: bool,
}

impl Group {
    fn block_len(&self, k: usize) -> usize {
        self.blocks[k].1 - self.blocks[k].0
    }
}

/// Blocks `a..=b` of a group, joined by one kind of separator: the unit
/// every shape is tried on.
struct Span<'g> {
    /// The group.
    g: &'g Group,
    /// First and last block.
    a: usize,
    b: usize,
    /// The separator between the blocks (0 for a single block).
    sep: u8,
    /// Byte offsets of the span.
    start: usize,
    end: usize,
    /// The digits, separators left out.
    digits: &'g [u8],
    /// The length of each block.
    lens: &'g [usize],
    /// Whether a CVV hotword ends shortly before the group: asked once per
    /// group, whichever of its blocks asks first.
    cvv_before: &'g OnceCell<bool>,
}

impl Span<'_> {
    /// How many blocks.
    fn blocks(&self) -> usize {
        self.b - self.a + 1
    }
}

/// Reads the group starting at `start` into `g`; returns its end.
fn parse_group(classes: &mut Classes<'_>, start: usize, g: &mut Group) -> usize {
    let text = classes.text();
    // The count is kept in a register and stored once.
    let mut n = 0;
    let mut i = start;
    loop {
        let s = i;
        i = classes.run_end(i, Run::Digits);
        g.blocks[n] = (s, i);
        n += 1;
        if n == MAX_BLOCKS || i >= text.len() {
            break;
        }
        // ") " and ")" join an area code in parentheses; other separators are single bytes.
        let (sep, skip) = match text[i] {
            b')' if text.get(i + 1) == Some(&b' ') => (b')', 2),
            c @ (b' ' | b'-' | b'.' | b'/' | b':' | b')') => (c, 1),
            _ => break,
        };
        if !text.get(i + skip).is_some_and(u8::is_ascii_digit) {
            break;
        }
        g.seps[n] = sep;
        i += skip;
    }
    g.n = n;
    g.full = n == MAX_BLOCKS
        && matches!(text.get(i), Some(b' ' | b'-' | b'.' | b'/' | b':' | b')'))
        && text.get(i + 1).is_some_and(u8::is_ascii_digit);
    i
}

/// Candidates from the numeric groups of `text`. `GATED`: skip the spans
/// [`joined_shape_fits`] rules out and the CVV and account lookups its
/// [`PairGate`] rules out (always, but for the test that checks the gates
/// drop no candidate).
fn numeric_groups<const GATED: bool>(sc: &Scanner, text: &[u8], out: &mut Vec<Candidate>) {
    let mut g = Group {
        blocks: [(0, 0); MAX_BLOCKS],
        seps: [0; MAX_BLOCKS],
        n: 0,
        full: false,
    };
    let mut classes = Classes::new(text);
    let mut runs = RunStarts::new();
    let mut i = 0;
    // After a full group: the candidates it pushed (`out[lo..hi]`) and its end.
    let mut reread: Option<(usize, usize, usize)> = None;
    while let Some(j) = runs.next_from(&mut classes, i) {
        i = j;
        if i > 0 && is_alnum(text[i - 1]) {
            // Digits inside a word: an IBAN starts with two capitals, anything else is an identifier.
            if i >= 2
                && text[i - 1].is_ascii_uppercase()
                && text[i - 2].is_ascii_uppercase()
                && (i == 2 || !is_alnum(text[i - 3]))
            {
                if let Some(end) = iban(text, i - 2, out) {
                    i = end;
                    continue;
                }
            }
            i = classes.run_end(i, Run::Word);
            continue;
        }
        let end = parse_group(&mut classes, i, &mut g);
        // Digits running into letters are an identifier ("123abc"), except a house number.
        let glued = text
            .get(end)
            .is_some_and(|&c| c.is_ascii_alphabetic() || c == b'_');
        if !glued {
            let before = out.len();
            classify::<GATED>(sc, text, &g, out);
            if let Some((lo, hi, limit)) = reread.take() {
                // What the previous group found in the blocks read again.
                let mut k = before;
                while k < out.len() {
                    let c = &out[k];
                    if c.end <= limit
                        && out[lo..hi]
                            .iter()
                            .any(|p| (p.start, p.end, p.kind) == (c.start, c.end, c.kind))
                    {
                        out.remove(k);
                    } else {
                        k += 1;
                    }
                }
            }
            if g.full {
                reread = Some((before, out.len(), end));
                // Again from the group's middle (the run starts before
                // `end` are read anew).
                i = g.blocks[MAX_BLOCKS / 2].0;
                runs.rewind();
            } else {
                // The group ends at a byte that is no digit, letter or `_`.
                i = end;
            }
        } else {
            if g.n == 1 {
                street_address(sc, text, g.blocks[0].0, g.blocks[0].1, out);
            }
            i = classes.run_end(end, Run::Word);
        }
    }
}

fn score_context(cx: &Near<'_>, base: f32, boost: f32, cat: Cat) -> f32 {
    let mut score = base;
    if cx.around(cat) {
        score += boost;
    }
    if cx.before(Cat::Reference, 16) {
        score -= 0.4;
    }
    score
}

/// Longest digit string any shape takes (a 19-digit card).
const MAX_DIGITS: usize = 19;

fn classify<const GATED: bool>(sc: &Scanner, text: &[u8], g: &Group, out: &mut Vec<Candidate>) {
    // One pass over the group's context serves every shape tried below.
    let cx = &Near::new(&sc.words, text, g.blocks[0].0, g.blocks[g.n - 1].1);
    let cvv_before = &OnceCell::new();
    let mut lens = [0usize; MAX_BLOCKS];
    for (k, len) in lens.iter_mut().enumerate().take(g.n) {
        *len = g.block_len(k);
    }
    // Blocks a..=b joined by one separator, their digits copied together.
    const LANE: usize = 32;
    let mut digits = [0u8; MAX_DIGITS + LANE];
    for a in 0..g.n - 1 {
        let sep = g.seps[a + 1];
        let mut n = lens[a];
        for b in a + 1..g.n {
            n += lens[b];
            // No shape takes more digits, or mixed separators.
            if n > MAX_DIGITS || g.seps[b] != sep {
                break;
            }
            let (start, end) = (g.blocks[a].0, g.blocks[b].1);
            if GATED && !joined_shape_fits(text, start, sep, n, &lens[a..=b]) {
                continue;
            }
            let mut len = 0;
            for &(s, e) in &g.blocks[a..=b] {
                // A whole lane where the text has one (no call to copy a
                // few bytes); the next block overwrites what is past `e`.
                match text.get(s..s + LANE) {
                    Some(lane) => digits[len..len + LANE].copy_from_slice(lane),
                    None => digits[len..len + e - s].copy_from_slice(&text[s..e]),
                }
                len += e - s;
            }
            let span = Span {
                g,
                a,
                b,
                sep,
                start,
                end,
                digits: &digits[..n],
                lens: &lens[a..=b],
                cvv_before,
            };
            shapes::<GATED>(sc, cx, text, &span, out);
        }
    }
    // Then each block on its own, its digits read in place (the context
    // a joined shape looked up serves them too).
    for a in 0..g.n {
        let (start, end) = g.blocks[a];
        if end - start <= 2 {
            // Too short for any shape but a house number, or a country code
            // before an area code in parentheses.
            street_address(sc, text, start, end, out);
            if start > 0 && text[start - 1] == b'+' {
                phone_area_in_parens(cx, text, start, out);
            }
        } else if end - start <= MAX_DIGITS {
            let span = Span {
                g,
                a,
                b: a,
                sep: 0,
                start,
                end,
                digits: &text[start..end],
                lens: &lens[a..=a],
                cvv_before,
            };
            shapes::<GATED>(sc, cx, text, &span, out);
        }
    }
}

/// Whether some shape takes the blocks of `lens`, joined by `sep` from
/// `start`, `n` digits in all: the first checks of [`card`], [`ssn_like`],
/// [`phone`], [`ipv4`] and [`date_of_birth`] at once, so most spans cut
/// out of a longer group cost no call.
#[inline]
fn joined_shape_fits(text: &[u8], start: usize, sep: u8, n: usize, lens: &[usize]) -> bool {
    // E.164 takes any block lengths, and so does a national number.
    if start > 0 && text[start - 1] == b'+' && (8..=15).contains(&n)
        || trunk_zero_fits(text, start, sep, n)
    {
        return true;
    }
    // Cards are 4-4-4 (3 blocks, 12 digits) to 4-4-4-4-3 (5 blocks), or 4-6-5.
    let card = (12..=19).contains(&n) && matches!(sep, b' ' | b'-');
    match lens.len() {
        // "(AAA) EEE-NNNN".
        2 => lens == [3, 3],
        // SSN 3-2-4, dates, AAA-EEE-NNNN.
        3 => {
            card || (matches!(sep, b' ' | b'/' | b'-' | b'.') && (n == 9 || n == 10 || sep != b' '))
        }
        // Dotted quads, 1-AAA-EEE-NNNN.
        4 => card || sep == b'.' || lens == [1, 3, 3, 4],
        _ => card,
    }
}

/// A national phone number's shape: a trunk zero then a non-zero digit, 9
/// to 11 digits in all, blocks joined by spaces or hyphens.
#[inline]
fn trunk_zero_fits(text: &[u8], start: usize, sep: u8, n: usize) -> bool {
    (9..=11).contains(&n)
        && matches!(sep, b' ' | b'-')
        && text[start] == b'0'
        && text.get(start + 1).is_some_and(|&c| c != b'0')
        && (start == 0 || text[start - 1] != b'+')
}

/// Tries every shape that `span`'s digit count, block count and separator allow.
#[inline(always)]
fn shapes<const GATED: bool>(
    sc: &Scanner,
    cx: &Near<'_>,
    text: &[u8],
    span: &Span<'_>,
    out: &mut Vec<Candidate>,
) {
    let (n, nb, sep) = (span.digits.len(), span.blocks(), span.sep);
    if n >= 12 {
        card(cx, text, span, out);
    }
    if n == 9 {
        ssn_like(cx, span, out);
    }
    // The shortest phone shape, "(AAA) EEE-NNNN" seen as two blocks, has
    // six digits. Before the single-block shapes: the context a phone
    // looks up answers their account question.
    if n >= 6 {
        phone(cx, text, span, out);
    }
    if n <= 3 && span.start > 0 && text[span.start - 1] == b'+' {
        phone_area_in_parens(cx, text, span.start, out);
    }
    if nb == 1 {
        single_block::<GATED>(sc, cx, text, span, out);
    }
    if nb == 4 && sep == b'.' {
        ipv4(cx, text, span, out);
    }
    if nb == 3 && matches!(sep, b'/' | b'-' | b'.') {
        date_of_birth(cx, text, span, out);
    }
    if nb == 1 && n == 4 {
        date_of_birth_in_words(sc, cx, text, span, out);
    }
}

/// Month names and abbreviations (en, de, fr, es), longest first within a
/// language so the alternation takes the whole word, with their numbers.
const MONTHS: &[(&str, u32)] = &[
    ("january", 1),
    ("february", 2),
    ("march", 3),
    ("april", 4),
    ("may", 5),
    ("june", 6),
    ("july", 7),
    ("august", 8),
    ("september", 9),
    ("october", 10),
    ("november", 11),
    ("december", 12),
    ("sept", 9),
    ("jan", 1),
    ("feb", 2),
    ("mar", 3),
    ("apr", 4),
    ("jun", 6),
    ("jul", 7),
    ("aug", 8),
    ("sep", 9),
    ("oct", 10),
    ("nov", 11),
    ("dec", 12),
    ("januar", 1),
    ("jänner", 1),
    ("februar", 2),
    ("märz", 3),
    ("maerz", 3),
    ("mai", 5),
    ("juni", 6),
    ("juli", 7),
    ("oktober", 10),
    ("dezember", 12),
    ("okt", 10),
    ("dez", 12),
    ("janvier", 1),
    ("février", 2),
    ("fevrier", 2),
    ("mars", 3),
    ("avril", 4),
    ("juin", 6),
    ("juillet", 7),
    ("août", 8),
    ("aout", 8),
    ("septembre", 9),
    ("octobre", 10),
    ("novembre", 11),
    ("décembre", 12),
    ("decembre", 12),
    ("janv", 1),
    ("févr", 2),
    ("avr", 4),
    ("juil", 7),
    ("déc", 12),
    ("enero", 1),
    ("febrero", 2),
    ("marzo", 3),
    ("abril", 4),
    ("mayo", 5),
    ("junio", 6),
    ("julio", 7),
    ("agosto", 8),
    ("septiembre", 9),
    ("setiembre", 9),
    ("octubre", 10),
    ("noviembre", 11),
    ("diciembre", 12),
    ("ene", 1),
    ("abr", 4),
    ("ago", 8),
    ("dic", 12),
];

/// A birth date written with a month name, ending in the four-digit year
/// `span` holds, after a birth word: the month and day are read off the
/// text before the year.
#[cold]
fn date_of_birth_in_words(
    sc: &Scanner,
    cx: &Near<'_>,
    text: &[u8],
    span: &Span<'_>,
    out: &mut Vec<Candidate>,
) {
    let Span {
        start, end, digits, ..
    } = *span;
    let year = validate::num(digits);
    // A birth word shortly before (or a year that ends a chat turn), first:
    // most years are not birth dates.
    if !(1900..=2030).contains(&year) || !text[..start].ends_with(b" ") {
        return;
    }
    let cued = cx.before(Cat::Birth, 72);
    if !cued && !ends_turn(text, end) {
        return;
    }
    // The day and month sit in the 40 bytes before the year (from a
    // character's first byte).
    let mut from = start.saturating_sub(40);
    while from < start && (text[from] & 0xC0) == 0x80 {
        from += 1;
    }
    let window = &text[from..start];
    // The DFA finds the words; their day and month are read by hand (the
    // groups would cost a backtracking search).
    let Some(m) = sc.month_day.find(window) else {
        return;
    };
    let Some((month, day)) = month_and_day(m.as_bytes()) else {
        return;
    };
    let from = from + m.start();
    if !cued && !answers_birth_question(cx, text, from, end) {
        return;
    }
    if validate::date(year, month, day) {
        out.push(Candidate::new(PiiType::DateOfBirth, from, end, 0.85));
    }
}

/// The month (1-12) and day written in `words` (a match of the month
/// grammar): its month name and its first run of digits.
fn month_and_day(words: &[u8]) -> Option<(u32, u32)> {
    let mut month = None;
    let mut day = None;
    // Runs of letters (a byte past ASCII belongs to a letter: `März`) and
    // of digits.
    for run in words.split(|c| c.is_ascii() && !c.is_ascii_alphanumeric()) {
        let digits = run.iter().take_while(|c| c.is_ascii_digit()).count();
        if digits > 0 {
            day = day.or(Some(validate::num(&run[..digits])));
            continue;
        }
        if month.is_none() {
            let name = String::from_utf8_lossy(run).to_lowercase();
            month = MONTHS.iter().find(|(n, _)| *n == name).map(|&(_, m)| m);
        }
    }
    Some((month?, day?))
}

fn card(cx: &Near<'_>, text: &[u8], span: &Span<'_>, out: &mut Vec<Candidate>) {
    let Span {
        start,
        end,
        sep,
        digits,
        lens,
        ..
    } = *span;
    let n = digits.len();
    if !(12..=19).contains(&n) || !matches!(sep, 0 | b' ' | b'-') {
        return;
    }
    // Grouped numbers must look like card groupings: 4-4-4-4(-3), 4-6-5, 4-6-4.
    let nb = lens.len();
    if nb > 1 {
        let fours = lens[..nb - 1].iter().all(|&l| l == 4) && (1..=4).contains(&lens[nb - 1]);
        let amex = lens == [4, 6, 5] || lens == [4, 6, 4];
        if !(fours || amex) {
            return;
        }
    }
    if !validate::luhn(digits) || digits.iter().all(|&c| c == digits[0]) {
        return;
    }
    // Track data: ";PAN=..." (track 2) or "%BPAN^NAME^..." (track 1).
    if nb == 1 {
        let before = if start > 0 { text[start - 1] } else { 0 };
        let after = text.get(end).copied().unwrap_or(0);
        let t1 = before == b'B' && start >= 2 && text[start - 2] == b'%' && after == b'^';
        let t2 = before == b';' && after == b'=';
        if t1 || t2 {
            let s = if t1 { start - 2 } else { start - 1 };
            let limit = (s + 80).min(text.len());
            let e = text[end..limit]
                .iter()
                .position(|&c| c == b'?')
                .map(|p| end + p + 1)
                .unwrap_or_else(|| {
                    end + text[end..limit]
                        .iter()
                        .position(|c| c.is_ascii_whitespace() || *c == b'"')
                        .unwrap_or(limit - end)
                });
            out.push(Candidate::new(PiiType::CardTrackData, s, e, 0.99));
            return;
        }
    }
    let issuer = validate::card_issuer(digits).is_some();
    let base = if issuer { 0.85 } else { 0.35 };
    // A reference word ("order #") lowers a card's score, but a Luhn-valid
    // number with a known issuer stays above the threshold: a card number
    // typed where an order number belongs is still cardholder data, and for
    // card data a lower score beats silence.
    let floor = if issuer { 0.6 } else { 0.0 };
    let score = score_context(cx, base, 0.3, Cat::Card).max(floor);
    out.push(Candidate::new(PiiType::CreditCard, start, end, score));
}

fn ssn_like(cx: &Near<'_>, span: &Span<'_>, out: &mut Vec<Candidate>) {
    let Span {
        g,
        a,
        start,
        end,
        sep,
        digits,
        ..
    } = *span;
    let nb = span.blocks();
    let shaped = nb == 3
        && matches!(sep, b'-' | b' ' | b'.')
        && g.block_len(a) == 3
        && g.block_len(a + 1) == 2
        && g.block_len(a + 2) == 4;
    // A routing number written 4-4-1 (`3222-7162-7`), as on a check.
    let routing_shaped = nb == 3
        && sep == b'-'
        && g.block_len(a) == 4
        && g.block_len(a + 1) == 4
        && g.block_len(a + 2) == 1;
    if routing_shaped {
        if validate::aba_routing(digits) {
            let score = score_context(cx, 0.6, 0.3, Cat::Routing);
            out.push(Candidate::new(PiiType::UsBankRouting, start, end, score));
        }
        return;
    }
    if nb != 1 && !shaped {
        return;
    }
    // Dots (`078.05.1123`) are a rarer way to write one: less on shape alone.
    let (base, boost) = match (shaped, sep) {
        (true, b'.') => (0.5, 0.45),
        (true, _) => (0.6, 0.35),
        _ => (0.2, 0.45),
    };
    if validate::itin(digits) {
        let score = score_context(cx, base + 0.05, boost, Cat::Ssn);
        out.push(Candidate::new(PiiType::UsItin, start, end, score));
    } else if validate::ssn(digits) {
        let score = score_context(cx, base, boost, Cat::Ssn);
        out.push(Candidate::new(PiiType::UsSsn, start, end, score));
    }
    if nb == 1 && validate::aba_routing(digits) {
        let score = score_context(cx, 0.2, 0.6, Cat::Routing);
        out.push(Candidate::new(PiiType::UsBankRouting, start, end, score));
    }
}

/// A summary of a category's hotwords for skipping its context lookup:
/// every hotword holds one of the letter pairs, within `back` bytes before
/// a number it ends `dist` bytes before. Where those bytes hold none, the
/// lookup would find nothing.
struct PairGate {
    cat: Cat,
    dist: usize,
    pairs: bytemask::Pairs<'static>,
    back: usize,
}

/// CVV hotwords ([`context::words::CVV`]) have a 'c' then one of "viosa"
/// among their last seven bytes ("card verifi-ca-tion"); the 32 bytes
/// before are two sixteen-pair steps with the group's first byte.
const CVV_GATE: PairGate = PairGate {
    cat: Cat::Cvv,
    dist: 24,
    pairs: &[(b'c', b"viosa")],
    back: 32,
};

/// Account hotwords ([`context::words::ACCOUNT`]): "cc" (account, acct),
/// "ck" (checking), "a/" (a/c), "gs" (savings), the first byte at most 14
/// bytes into the word; the 48 bytes before are three sixteen-pair steps.
const ACCOUNT_GATE: PairGate = PairGate {
    cat: Cat::Account,
    dist: 32,
    pairs: &[(b'c', b"ck"), (b'a', b"/"), (b'g', b"s")],
    back: 48,
};

impl PairGate {
    /// Whether a hotword of the category ends within `dist` bytes before
    /// the group (`GATED`: skip the lookup where the pairs rule it out).
    #[inline(always)]
    fn hotword_before<const GATED: bool>(&self, cx: &Near<'_>, text: &[u8]) -> bool {
        let start = cx.start();
        let window = &text[start.saturating_sub(self.back)..start + 1];
        if GATED && !cx.knows_before() && !bytemask::has_letter_pair(window, self.pairs) {
            return false;
        }
        cx.before(self.cat, self.dist)
    }
}

/// The word for an account, in the languages served, when it comes right
/// before a number (`account 483920175`, `Konto: 532013000`): alone, a
/// few bytes further off, it says nothing (`account alert 402211`).
const ACCOUNT_WORDS: &[&[u8]] = &[
    b"account",
    b"acct",
    b"konto",
    b"kontonummer",
    b"compte",
    b"cuenta",
    b"conto",
    b"rekening",
    b"rekeningnummer",
];

/// Whether one of [`ACCOUNT_WORDS`] comes right before `start`: a space,
/// a colon, `#`, `no.` or `is` between.
fn account_named_before(text: &[u8], start: usize) -> bool {
    let mut k = start;
    let skip = |k: &mut usize, what: &[u8]| {
        let hit = *k >= what.len() && text[*k - what.len()..*k].eq_ignore_ascii_case(what);
        if hit {
            *k -= what.len();
        }
        hit
    };
    // Separators, then `no.`/`is`/`#`, then separators again.
    while k > 0 && matches!(text[k - 1], b' ' | b':' | b'#') && start - k < 3 {
        k -= 1;
    }
    if skip(&mut k, b"no.") || skip(&mut k, b"is") || skip(&mut k, b"nr.") {
        while k > 0 && matches!(text[k - 1], b' ' | b':') && start - k < 8 {
            k -= 1;
        }
    }
    if k == start {
        return false;
    }
    let mut s = k;
    while s > 0 && text[s - 1].is_ascii_alphabetic() && k - s < 14 {
        s -= 1;
    }
    let word = &text[s..k];
    (s == 0 || !text[s - 1].is_ascii_alphanumeric())
        && ACCOUNT_WORDS.iter().any(|w| word.eq_ignore_ascii_case(w))
}

/// Whether the 3 or 4 digits at `start..end`, after a CVV word, are the
/// code itself: the first number after the word, not an amount (`$129`,
/// `129.00`), an extension (`ext 1234`, `x1234`), an expiry (`exp 1227`),
/// nor the value of a JSON key `"cid"` (a client or content id).
#[cold]
fn cvv_stands_alone(sc: &Scanner, text: &[u8], start: usize, end: usize) -> bool {
    let Some((hs, he)) = sc
        .words
        .nearest_before(text, start, Cat::Cvv, CVV_GATE.dist)
    else {
        return false;
    };
    let between = &text[he..start];
    if between.iter().any(u8::is_ascii_digit) {
        return false;
    }
    let quoted_cid = text[hs..he].eq_ignore_ascii_case(b"cid")
        && hs > 0
        && text[hs - 1] == b'"'
        && text.get(he) == Some(&b'"');
    let currency = text[..start].ends_with(b"$")
        || text[..start].ends_with("€".as_bytes())
        || text[..start].ends_with("£".as_bytes())
        || text[start.saturating_sub(4)..start].eq_ignore_ascii_case(b"usd ");
    let decimal = text.get(end) == Some(&b'.') && text.get(end + 1).is_some_and(u8::is_ascii_digit);
    let lead = &text[start.saturating_sub(6)..start];
    let lead = lead.to_ascii_lowercase();
    let extension = lead.ends_with(b"x") || lead.windows(3).any(|w| w == b"ext");
    let expiry = lead.windows(3).any(|w| w == b"exp");
    !(quoted_cid || currency || decimal || extension || expiry)
}

/// A card security code written after its card's number and expiry, as
/// pasted card details and payment logs have it (`4111… 12/26 123`,
/// `card …, exp 10/28, code 412`): the expiry (`MM/YY` or `MM/YYYY`) right
/// before it, separators and `code` at most between, and a card number
/// (a candidate already pushed) ending shortly before the expiry with no
/// digit between; no lower-case word after it.
fn follows_card_and_expiry(text: &[u8], start: usize, end: usize, out: &[Candidate]) -> bool {
    // A word after it makes it a count (`12/26 100 units`).
    if text.get(end) == Some(&b' ') && text.get(end + 1).is_some_and(u8::is_ascii_lowercase) {
        return false;
    }
    let separators = |mut k: usize| {
        while k > 0
            && start - k < 8
            && matches!(text[k - 1], b' ' | b',' | b';' | b'|' | b':' | b'\t')
        {
            k -= 1;
        }
        k
    };
    let mut k = separators(start);
    if k == start || k < 5 {
        return false;
    }
    if text[k - 4..k].eq_ignore_ascii_case(b"code") {
        k = separators(k - 4);
    }
    // The expiry's year, then its month.
    let digits_before = |k: usize| {
        text[..k]
            .iter()
            .rev()
            .take(5)
            .take_while(|c| c.is_ascii_digit())
            .count()
    };
    let year = digits_before(k);
    if !matches!(year, 2 | 4) || k < year + 2 || text[k - year - 1] != b'/' {
        return false;
    }
    let month_end = k - year - 1;
    let m = digits_before(month_end);
    let month_start = month_end - m;
    if !(1..=2).contains(&m) || !(1..=12).contains(&validate::num(&text[month_start..month_end])) {
        return false;
    }
    out.iter().rev().take(8).any(|c| {
        c.kind == Some(PiiType::CreditCard)
            && c.end <= month_start
            && month_start - c.end <= 24
            && !text[c.end..month_start].iter().any(u8::is_ascii_digit)
    })
}

fn single_block<const GATED: bool>(
    sc: &Scanner,
    cx: &Near<'_>,
    text: &[u8],
    span: &Span<'_>,
    out: &mut Vec<Candidate>,
) {
    let Span {
        start,
        end,
        digits,
        cvv_before,
        ..
    } = *span;
    let n = digits.len();
    if (3..=4).contains(&n)
        && (*cvv_before.get_or_init(|| CVV_GATE.hotword_before::<GATED>(cx, text))
            && cvv_stands_alone(sc, text, start, end)
            || start > 0 && ends_turn(text, end) && answers_cvv_question(cx, text, start)
            || follows_card_and_expiry(text, start, end, out))
    {
        out.push(Candidate::new(PiiType::Cvv, start, end, 0.85));
    }
    if (6..=17).contains(&n)
        && (ACCOUNT_GATE.hotword_before::<GATED>(cx, text) || account_named_before(text, start))
    {
        out.push(Candidate::new(PiiType::BankAccount, start, end, 0.75));
    }
    if n <= 6 {
        street_address(sc, text, start, end, out);
    }
}

/// A street address around the house number `text[start..digits_end]`.
#[inline]
fn street_address(
    sc: &Scanner,
    text: &[u8],
    start: usize,
    digits_end: usize,
    out: &mut Vec<Candidate>,
) {
    crate::address::at_number(&sc.address, text, start, digits_end, out);
}

fn phone(cx: &Near<'_>, text: &[u8], span: &Span<'_>, out: &mut Vec<Candidate>) {
    let Span {
        g,
        a,
        start,
        end,
        sep,
        digits,
        lens,
        ..
    } = *span;
    let nb = lens.len();
    let n = digits.len();
    let plus = start > 0 && text[start - 1] == b'+';
    if !plus && trunk_zero_fits(text, start, sep, n) && nb >= 2 {
        // A national number with its trunk zero (`07700 900123`,
        // `090-1234-5678`): only beside a phone's words.
        let score = score_context(cx, 0.3, 0.4, Cat::Phone);
        out.push(Candidate::new(PiiType::PhoneNumber, start, end, score));
        return;
    }
    // Every shape below but E.164 has ten or eleven digits, or is "(AAA) EEE".
    if !plus && !matches!(n, 10 | 11) && lens != [3, 3] {
        return;
    }
    if plus {
        // E.164: +CC and 7 to 12 more digits.
        if !(8..=15).contains(&n) || !matches!(sep, 0 | b' ' | b'-' | b'.' | b')') {
            return;
        }
        if let Some(cc) = validate::e164_country_code(digits) {
            if cc == 1 && !validate::nanp(&digits[1..]) {
                return;
            }
            let score = score_context(cx, 0.7, 0.2, Cat::Phone);
            out.push(Candidate::new(PiiType::PhoneNumber, start - 1, end, score));
        }
        return;
    }
    // NANP: (AAA) EEE-NNNN, AAA-EEE-NNNN, AAA.EEE.NNNN, optional leading 1.
    let (nanp_digits, shaped) = match (nb, lens) {
        (1, [10]) => (digits, false),
        (1, [11]) if digits[0] == b'1' => (&digits[1..], false),
        (3, [3, 3, 4]) => (digits, true),
        (4, [1, 3, 3, 4]) if digits[0] == b'1' => (&digits[1..], true),
        _ => {
            // "(202) 555-0143": ')' then '-' are not uniform; accept that exact shape.
            if nb == 2 && lens == [3, 3] && start > 0 && text[start - 1] == b'(' {
                phone_paren(cx, text, g, a, start, out);
            }
            return;
        }
    };
    if !validate::nanp(nanp_digits) || (shaped && !matches!(sep, b'-' | b'.' | b' ')) {
        return;
    }
    let (base, boost) = if shaped { (0.6, 0.3) } else { (0.25, 0.4) };
    let score = score_context(cx, base, boost, Cat::Phone);
    out.push(Candidate::new(PiiType::PhoneNumber, start, end, score));
}

/// `+CC (A) NNNN NNNN`: a country code, the area code in parentheses (its
/// trunk zero sometimes kept, `(0)20`), then groups of digits; 8 to 15
/// digits in all, as E.164 allows.
#[cold]
fn phone_area_in_parens(cx: &Near<'_>, text: &[u8], start: usize, out: &mut Vec<Candidate>) {
    let mut digits = Vec::with_capacity(16);
    let mut i = start;
    let mut end = start;
    let mut parens = 0;
    while i < text.len() && digits.len() <= 15 {
        let c = text[i];
        if c.is_ascii_digit() {
            digits.push(c);
            i += 1;
            end = i;
        } else if c == b'(' && parens == 0 && text.get(i + 1).is_some_and(u8::is_ascii_digit) {
            parens = 1;
            i += 1;
        } else if c == b')' && parens == 1 {
            parens = 2;
            i += 1;
        } else if matches!(c, b' ' | b'-' | b'.')
            && text
                .get(i + 1)
                .is_some_and(|&d| d.is_ascii_digit() || d == b'(')
        {
            i += 1;
        } else {
            break;
        }
    }
    if parens != 2
        || !(8..=15).contains(&digits.len())
        || text.get(end).is_some_and(|&c| is_alnum(c))
    {
        return;
    }
    if validate::e164_country_code(&digits).is_some() {
        let score = score_context(cx, 0.7, 0.2, Cat::Phone);
        out.push(Candidate::new(PiiType::PhoneNumber, start - 1, end, score));
    }
}

/// `(AAA) EEE-NNNN`: the group parser stops at the mixed separators.
#[cold]
fn phone_paren(
    cx: &Near<'_>,
    text: &[u8],
    g: &Group,
    a: usize,
    start: usize,
    out: &mut Vec<Candidate>,
) {
    let exch_end = g.blocks[a + 1].1;
    if text.get(exch_end) != Some(&b'-') {
        return;
    }
    let rest = &text[exch_end + 1..];
    let k = rest.iter().take_while(|c| c.is_ascii_digit()).count();
    if k != 4 || rest.get(4).is_some_and(|&c| is_alnum(c)) {
        return;
    }
    let mut d = Vec::with_capacity(10);
    d.extend_from_slice(&text[g.blocks[a].0..g.blocks[a].1]);
    d.extend_from_slice(&text[g.blocks[a + 1].0..exch_end]);
    d.extend_from_slice(&rest[..4]);
    if validate::nanp(&d) {
        let end = exch_end + 5;
        let score = score_context(cx, 0.65, 0.3, Cat::Phone);
        out.push(Candidate::new(PiiType::PhoneNumber, start - 1, end, score));
    }
}

fn ipv4(cx: &Near<'_>, text: &[u8], span: &Span<'_>, out: &mut Vec<Candidate>) {
    let Span {
        g, a, start, end, ..
    } = *span;
    // A fifth dotted part, after or before, means a version or OID, not an address.
    let dotted_digit = |dot: usize, digit: usize| {
        text.get(dot) == Some(&b'.') && text.get(digit).is_some_and(u8::is_ascii_digit)
    };
    if dotted_digit(end, end + 1) || (start >= 2 && dotted_digit(start - 1, start - 2)) {
        return;
    }
    let mut octets = [0u32; 4];
    for (k, o) in octets.iter_mut().enumerate() {
        let (s, e) = g.blocks[a + k];
        if e - s > 3 || (e - s > 1 && text[s] == b'0') {
            return;
        }
        *o = validate::num(&text[s..e]);
        if *o > 255 {
            return;
        }
    }
    if octets == [0, 0, 0, 0] || octets == [255, 255, 255, 255] {
        return;
    }
    let score = score_context(cx, 0.6, 0.2, Cat::Ip);
    out.push(Candidate::new(PiiType::IpAddress, start, end, score));
}

fn date_of_birth(cx: &Near<'_>, text: &[u8], span: &Span<'_>, out: &mut Vec<Candidate>) {
    let Span {
        g, a, start, end, ..
    } = *span;
    let value = |k: usize| {
        let (s, e) = g.blocks[a + k];
        validate::num(&text[s..e])
    };
    // The lengths first: most dotted or dashed triples are no date.
    let valid = match (g.block_len(a), g.block_len(a + 1), g.block_len(a + 2)) {
        (4, 1..=2, 1..=2) => validate::date(value(0), value(1), value(2)),
        (1..=2, 1..=2, 4) => {
            let (p0, p1, p2) = (value(0), value(1), value(2));
            validate::date(p2, p0, p1) || validate::date(p2, p1, p0)
        }
        // A two-digit year (`07/22/91`): 19xx, or 20xx up to 30.
        (1..=2, 1..=2, 2) => {
            let (p0, p1, yy) = (value(0), value(1), value(2));
            let year = if yy <= 30 { 2000 + yy } else { 1900 + yy };
            validate::date(year, p0, p1) || validate::date(year, p1, p0)
        }
        _ => false,
    };
    if !valid {
        return;
    }
    if cx.before(Cat::Birth, 32) || answers_birth_question(cx, text, start, end) {
        out.push(Candidate::new(PiiType::DateOfBirth, start, end, 0.85));
    }
}

/// Bytes a speaker label (`Customer:`, `[10:32] user:`) may take before
/// an answer.
const MAX_LABEL: usize = 40;

/// How far back the turn before an answer is searched for its question.
pub(crate) const PREVIOUS_TURN: usize = 160;

/// Whether a date at `start..end` is given as the answer to a question
/// about birth: it is the whole of a chat turn (after a speaker label, if
/// any), and the turn before names a birth word (`Agent: And your date of
/// birth?` / `Customer: 03/14/1985`). Turns end at line breaks, raw or
/// escaped in JSON (`\n`), and at quotes (the messages of an LLM request).
fn answers_birth_question(cx: &Near<'_>, text: &[u8], start: usize, end: usize) -> bool {
    if !ends_turn(text, end) {
        return false;
    }
    let Some(turn) = turn_start(text, start) else {
        return false;
    };
    turn > 0 && cx.within(Cat::Birth, turn.saturating_sub(PREVIOUS_TURN), turn)
}

/// Whether a 3- or 4-digit number at `start` is given as the answer
/// to a question about the card's security code: the whole of a chat turn
/// (after a label and a few filler words), and the last sentence before
/// the turn names the code (`Agent: and the three digits on the back of
/// the card?` / `Customer: sure, 318`). Only the last sentence: `the CVV
/// checks out. Which extension?` asks for something else. The caller has
/// checked that the number ends its turn ([`ends_turn`]): most numbers do
/// not, and are ruled out before this call.
#[cold]
fn answers_cvv_question(cx: &Near<'_>, text: &[u8], start: usize) -> bool {
    let Some(turn) = turn_start(text, start) else {
        return false;
    };
    // A JSON key's value (`"cid":219`) is no turn of its own.
    if turn > 0 && text[turn - 1] == b'"' && text[turn..start].starts_with(b":") {
        return false;
    }
    // The turn before ends at the break `turn_start` stopped at (a line
    // break, an escaped one, or a quote); its last sentence starts after
    // the last `. `, `? `, `! ` or line break before that.
    let asked_end = if text[..turn].ends_with(b"\\n") {
        turn - 2
    } else {
        turn.saturating_sub(1)
    };
    let floor = asked_end.saturating_sub(PREVIOUS_TURN);
    let region = &text[floor..asked_end];
    let sentence = region
        .windows(2)
        .rposition(|w| matches!(w, [b'.' | b'?' | b'!', b' '] | [b'\\', b'n']) || w[1] == b'\n')
        .map_or(floor, |k| floor + k + 2);
    sentence < asked_end && cx.within(Cat::Cvv, sentence, asked_end)
}

/// Whether a chat turn ends at `end`: a little punctuation at most, then a
/// line break, a closing quote or the end of the text.
fn ends_turn(text: &[u8], end: usize) -> bool {
    let rest = &text[end..];
    let k = rest
        .iter()
        .take(3)
        .take_while(|c| matches!(c, b' ' | b'.' | b'!' | b','))
        .count();
    let rest = &rest[k..];
    rest.is_empty() || matches!(rest[0], b'\n' | b'\r' | b'"') || rest.starts_with(b"\\n")
}

/// Where the chat turn holding `start` begins, when nothing but a speaker
/// label comes before `start` in it.
fn turn_start(text: &[u8], start: usize) -> Option<usize> {
    let floor = start.saturating_sub(MAX_LABEL);
    let mut k = start;
    let turn = loop {
        if k == 0 {
            break 0;
        }
        match text[k - 1] {
            b'\n' | b'"' => break k,
            b'n' if k >= 2 && text[k - 2] == b'\\' => break k,
            _ if k == floor => return None,
            _ => k -= 1,
        }
    };
    // A speaker label, then at most a few filler words (`sure,`, `yes
    // it's`, `ok`): a chat answer seldom comes bare.
    let before = &text[turn..start];
    let label_end = before
        .iter()
        .rposition(|&c| c == b':' || c == b'>')
        .map_or(0, |k| k + 1);
    let label = before[..label_end].trim_ascii();
    let label_ok = label.is_empty() || label.ends_with(b":") || label.ends_with(b">");
    (label_ok && only_fillers(&before[label_end..])).then_some(turn)
}

/// Words a chat answer may open with before the value itself.
const FILLERS: &[&[u8]] = &[
    b"sure",
    b"yes",
    b"yeah",
    b"yep",
    b"ok",
    b"okay",
    b"um",
    b"umm",
    b"uh",
    b"er",
    b"oh",
    b"so",
    b"right",
    b"alright",
    b"it's",
    b"its",
    b"it",
    b"is",
    b"that's",
    b"it\xe2\x80\x99s",
];

/// Whether `lead` is nothing but up to three [`FILLERS`], separated by
/// spaces and commas.
fn only_fillers(lead: &[u8]) -> bool {
    let mut words = 0;
    for w in lead.split(|&c| matches!(c, b' ' | b',')) {
        if w.is_empty() {
            continue;
        }
        words += 1;
        if words > 3 || !FILLERS.iter().any(|f| w.eq_ignore_ascii_case(f)) {
            return false;
        }
    }
    true
}

/// An IBAN starting at `start` (two capitals, two check digits, then the
/// BBAN, optionally in groups of four separated by single spaces).
/// Rare (two capitals before digits): kept out of the scan loop's way.
#[cold]
fn iban(text: &[u8], start: usize, out: &mut Vec<Candidate>) -> Option<usize> {
    // The country first: most capitals before digits name none.
    let want = validate::iban_length(text.get(start..start + 2)?)?;
    let mut chars = [0u8; 34];
    let mut len = 0;
    let mut i = start;
    let mut end = start;
    while i < text.len() && len < chars.len() {
        let c = text[i];
        if c.is_ascii_uppercase() || c.is_ascii_digit() {
            chars[len] = c;
            len += 1;
            i += 1;
            end = i;
        } else if matches!(c, b' ' | b'-')
            && len % 4 == 0
            && text
                .get(i + 1)
                .is_some_and(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
        {
            i += 1;
        } else {
            break;
        }
    }
    if len < want {
        return None;
    }
    let chars = &chars[..want];
    // Recompute the end for exactly `want` characters.
    let mut seen = 0;
    let mut e = start;
    while seen < want && e < end {
        if !matches!(text[e], b' ' | b'-') {
            seen += 1;
        }
        e += 1;
    }
    if text.get(e).is_some_and(|&c| is_alnum(c)) || !validate::iban(chars) {
        return None;
    }
    out.push(Candidate::new(PiiType::IbanCode, start, e, 0.95));
    Some(e)
}

/// IPv6 addresses in every RFC 4291 / 5952 form: full, compressed (`::`),
/// with an embedded IPv4 tail and a zone id (`%eth0`). Each `::` or a colon
/// between hex digits is a seed; the span of hex digits, colons and dots
/// around it must parse as an address (so a time, `12:30:45`, or a MAC
/// address, six groups with no `::`, does not) and hold at least three
/// groups or five hex digits (`::1` alone is not worth a finding).
/// One pass over every `:`, `=` and `",`: IPv6 seeds, secret assignments
/// and fields that hold a name's part (`first=Jamal`).
fn colons_and_equals(text: &[u8], out: &mut Vec<Candidate>) {
    let mut ipv6_done = 0;
    // Whether the last byte of the previous block was a quote.
    let mut quote_carry = 0;
    // In blocks, as bit masks: JSON and logs hold a colon every few dozen
    // bytes, too many for a search that stops at each.
    let blocks = bytemask::Blocks::new(text);
    for base in (0..text.len()).step_by(bytemask::BLOCK) {
        // A comma right after a quote too: a name and a value passed
        // together, `getenv("api_token", "…")`.
        let [quotes, colons, equals, commas] = blocks.equal(base, [b'"', b':', b'=', b',']);
        let after_quote = (quotes << 1) | quote_carry;
        quote_carry = quotes >> 63;
        let mut ops = colons | equals | (commas & after_quote);
        while ops != 0 {
            let at = base + ops.trailing_zeros() as usize;
            ops &= ops - 1;
            assigned_secret(text, at, out);
            crate::names::name_part_field(text, at, out);
            if text[at] == b':' && at >= ipv6_done {
                ipv6_done = ipv6(text, at, out);
            }
        }
    }
}

/// An IPv6 address around the colon at `colon`; returns where the bytes
/// looked at end (colons before it need no second look).
fn ipv6(text: &[u8], colon: usize, out: &mut Vec<Candidate>) -> usize {
    let part = |c: u8| c.is_ascii_hexdigit() || c == b':' || c == b'.';
    let mut done = colon;
    {
        let before = colon.checked_sub(1).map(|i| text[i]);
        let after = text.get(colon + 1).copied();
        let seed = matches!(before, Some(c) if c.is_ascii_hexdigit() || c == b':')
            && matches!(after, Some(c) if c.is_ascii_hexdigit() || c == b':');
        if !seed {
            return done;
        }
        let mut s = colon;
        while s > 0 && part(text[s - 1]) && colon - s < 45 {
            s -= 1;
        }
        let mut e = colon + 1;
        while e < text.len() && part(text[e]) && e - s < 45 {
            e += 1;
        }
        // Trailing punctuation: a sentence's full stop, a lone colon.
        while e > colon + 1 && matches!(text[e - 1], b'.') {
            e -= 1;
        }
        while s < colon && text[s] == b'.' {
            s += 1;
        }
        done = e;
        // Seven colons, or six and an IPv4 tail, or a `::`: anything else
        // (a time, `12:30:45`; a MAC address) is no address, unparsed.
        let span = &text[s..e];
        let colons = span.iter().filter(|&&c| c == b':').count();
        if colons < 6 && !span.windows(2).any(|w| w == b"::") {
            return done;
        }
        // A word glued on either side (`std::io`, `0x1f:`) is not an address.
        if s > 0 && (text[s - 1].is_ascii_alphanumeric() || text[s - 1] == b'_')
            || text
                .get(e)
                .is_some_and(|&c| c.is_ascii_alphanumeric() && c != b'%')
        {
            return done;
        }
        let Ok(addr) = std::str::from_utf8(&text[s..e]) else {
            return done;
        };
        if addr.parse::<std::net::Ipv6Addr>().is_err() {
            return done;
        }
        let groups = addr.split(':').filter(|g| !g.is_empty()).count();
        let hex = addr.bytes().filter(u8::is_ascii_hexdigit).count();
        if groups < 3 && hex < 5 {
            return done;
        }
        // A zone id: `%` and an interface name.
        if text.get(e) == Some(&b'%') {
            let k = run(text, e + 1, |c| c.is_ascii_alphanumeric() || c == b'_', 16);
            if k > 0 {
                e += 1 + k;
                done = e;
            }
        }
        out.push(Candidate::new(PiiType::IpAddress, s, e, 0.85));
    }
    done
}

/// Names whose value is a secret, as the end of a key in an assignment
/// (`client_secret`, `DB_PASSWORD`, `api_token`), lower case.
const SECRET_NAMES: &[&[u8]] = &[
    b"secret",
    b"password",
    b"passwd",
    b"pwd",
    b"token",
    b"api_key",
    b"apikey",
    b"api-key",
    b"access_key",
    b"secret_key",
    b"private_key",
    b"credentials",
    b"credential",
    b"_auth",
];

/// Google API keys published as examples (the Firebase SDKs' samples, as
/// gitleaks lists them): public, so no finding.
const PUBLIC_GOOGLE_KEYS: &[&[u8]] = &[
    b"AIzaSyabcdefghijklmnopqrstuvwxyz1234567",
    b"AIzaSyAnLA7NfeLquW1tJFpx_eQCxoX-oo6YyIs",
    b"AIzaSyCkEhVjf3pduRDt6d1yKOMitrUEke8agEM",
    b"AIzaSyDMAScliyLx7F0NPDEJi1QmyCgHIAODrlU",
    b"AIzaSyD3asb-2pEZVqMkmL6M9N6nHZRR_znhrh0",
    b"AIzayDNSXIbFmlXbIE6mCzDLQAqITYefhixbX4A",
    b"AIzaSyAdOS2zB6NCsk1pCdZ4-P6GBdi_UUPwX7c",
    b"AIzaSyASWm6HmTMdYWpgMnjRBjxcQ9CKctWmLd4",
    b"AIzaSyANUvH9H9BsUccjsu2pCmEkOPjjaXeDQgY",
    b"AIzaSyA5_iVawFQ8ABuTZNUdcwERLJv_a_p4wtM",
    b"AIzaSyA4UrcGxgwQFTfaI3no3t7Lt1sjmdnP5sQ",
    b"AIzaSyDSb51JiIcB6OJpwwMicseKRhhrOq1cS7g",
    b"AIzaSyBF2RrAIm4a0mO64EShQfqfd2AFnzAvvuU",
    b"AIzaSyBcE-OOIbhjyR83gm4r2MFCu4MJmprNXsw",
    b"AIzaSyB8qGxt4ec15vitgn44duC5ucxaOi4FmqE",
    b"AIzaSyA8vmApnrHNFE0bApF4hoZ11srVL_n0nvY",
];

/// Key names that hold no secret although they end in a secret's name:
/// public and publishable keys, anti-forgery tokens, package coordinates.
const NOT_SECRET_NAMES: &[&[u8]] = &[b"public", b"publishable", b"csrf", b"xsrf", b"jsonwebtoken"];

/// Values that stand for a secret rather than being one.
const PLACEHOLDERS: &[&[u8]] = &[
    b"example",
    b"changeme",
    b"change_me",
    b"placeholder",
    b"dummy",
    b"redacted",
    b"your",
    b"xxxx",
    b"****",
    b"....",
    b"<",
    b"${",
    b"{{",
    b"%(",
    b"null",
    b"none",
    b"true",
    b"false",
    b"password",
    b"secret",
];

/// Whether a key's last three bytes are those of one of [`SECRET_NAMES`]
/// (a test holds the two together): most keys are ruled out here.
#[inline]
fn ends_like_a_secret_name(tail: &[u8]) -> bool {
    let &[a, b, c] = tail else {
        return false;
    };
    let tail = [
        a.to_ascii_lowercase(),
        b.to_ascii_lowercase(),
        c.to_ascii_lowercase(),
    ];
    matches!(
        &tail,
        b"ret" | b"ord" | b"swd" | b"pwd" | b"ken" | b"key" | b"als" | b"ial" | b"uth"
    )
}

/// Generic assignments of a secret: `client_secret = "…"`, `passwd: …`,
/// `"api_token": "…"`, `DB_PASSWORD=…`. The key must end in a secret's
/// name; the value must look random (no spaces, at least 8 characters,
/// letters and digits, entropy over 3) and not be a placeholder.
fn assigned_secret(text: &[u8], op: usize, out: &mut Vec<Candidate>) {
    let key_ok = |c: u8| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.');
    {
        // The key: skip a closing quote and spaces, then the name.
        let mut k = op;
        while k > 0 && text[k - 1] == b' ' && op - k < 4 {
            k -= 1;
        }
        if k > 0 && text[k - 1] == b']' {
            k -= 1;
        }
        if k > 0 && matches!(text[k - 1], b'"' | b'\'') {
            k -= 1;
        }
        let key_end = k;
        // Every secret name ends in one of these: most keys are ruled out
        // before their name is read.
        if k < 3 {
            return;
        }
        if !ends_like_a_secret_name(&text[k - 3..k]) {
            return;
        }
        while k > 0 && key_ok(text[k - 1]) && key_end - k < 40 {
            k -= 1;
        }
        let key = &text[k..key_end];
        if key.len() < 3
            || !SECRET_NAMES
                .iter()
                .any(|n| key.len() >= n.len() && key[key.len() - n.len()..].eq_ignore_ascii_case(n))
            || NOT_SECRET_NAMES
                .iter()
                .any(|n| key.windows(n.len()).any(|w| w.eq_ignore_ascii_case(n)))
        {
            return;
        }
        // The value: `=>`, spaces and an opening quote first.
        let mut v = op + 1;
        if text.get(v) == Some(&b'>') {
            v += 1;
        }
        while v < text.len() && text[v] == b' ' && v - op < 4 {
            v += 1;
        }
        let quote = text.get(v).copied().filter(|c| matches!(c, b'"' | b'\''));
        if quote.is_some() {
            v += 1;
        }
        let value_ok = |c: u8| {
            c.is_ascii_graphic() && !matches!(c, b'"' | b'\'' | b',' | b';' | b'&' | b'}' | b')')
        };
        let n = run(text, v, value_ok, 128);
        let value = &text[v..v + n];
        let closed = match quote {
            Some(q) => text.get(v + n) == Some(&q),
            None => !text.get(v + n).is_some_and(|c| c.is_ascii_graphic()) || n < 128,
        };
        let letters = value.iter().filter(|c| c.is_ascii_alphabetic()).count();
        let digits = value.iter().filter(|c| c.is_ascii_digit()).count();
        let placeholder = PLACEHOLDERS
            .iter()
            .any(|p| value.windows(p.len()).any(|w| w.eq_ignore_ascii_case(p)));
        if (8..128).contains(&n)
            && closed
            && letters > 0
            && digits > 0
            && !placeholder
            && validate::entropy(value) > 3.0
        {
            out.push(Candidate::new(PiiType::ApiKey, v, v + n, 0.8));
        }
    }
}

fn emails(text: &[u8], out: &mut Vec<Candidate>) {
    let local_ok =
        |c: u8| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'%' | b'+' | b'-');
    let domain_ok = |c: u8| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-');
    for at in memchr::memchr_iter(b'@', text) {
        let mut s = at;
        while s > 0 && local_ok(text[s - 1]) && at - s < 64 {
            s -= 1;
        }
        while s < at && matches!(text[s], b'.' | b'-' | b'+') {
            s += 1;
        }
        let mut e = at + 1;
        while e < text.len() && domain_ok(text[e]) && e - at < 255 {
            e += 1;
        }
        while e > at + 1 && matches!(text[e - 1], b'.' | b'-') {
            e -= 1;
        }
        if s == at || e <= at + 1 {
            continue;
        }
        let domain = &text[at + 1..e];
        let Some(dot) = domain.iter().rposition(|&c| c == b'.') else {
            continue;
        };
        let tld = &domain[dot + 1..];
        // A top-level domain is letters, or punycode (`xn--p1ai`).
        let tld_ok = tld.iter().all(u8::is_ascii_alphabetic)
            || tld.starts_with(b"xn--")
                && tld.len() > 4
                && tld[4..].iter().all(u8::is_ascii_alphanumeric);
        if tld.len() < 2 || !tld_ok || domain.contains(&b'@') {
            continue;
        }
        if text[s..at].ends_with(b".") || domain.windows(2).any(|w| w == b"..") {
            continue;
        }
        out.push(Candidate::new(PiiType::EmailAddress, s, e, 0.9));
    }
}

/// Length of the run of bytes satisfying `ok` from `i`.
fn run(text: &[u8], i: usize, ok: impl Fn(u8) -> bool, max: usize) -> usize {
    text[i..].iter().take(max).take_while(|&&c| ok(c)).count()
}

fn secret(text: &[u8], start: usize, tend: usize, out: &mut Vec<Candidate>) {
    // A prefix starts a word (Stripe's `_live_` sits inside one: its
    // handler looks before it).
    if start > 0 && is_alnum(text[start - 1]) && !matches!(text[start], b'-' | b'_') {
        return;
    }
    let trigger = &text[start..tend];
    let word = |c: u8| c.is_ascii_alphanumeric();
    let token = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b'-';
    let bounded = |e: usize| !text.get(e).is_some_and(|&c| token(c));
    match trigger {
        b"AIza" => {
            // Google API keys: AIza and 35 of [A-Za-z0-9_-].
            let k = run(text, tend, token, 36);
            let e = tend + k;
            if k == 35
                && bounded(e)
                && validate::entropy(&text[tend..e]) > 3.0
                && !PUBLIC_GOOGLE_KEYS.contains(&&text[start..e])
            {
                out.push(Candidate::new(PiiType::ApiKey, start, e, 0.9));
            }
        }
        b"_live_" | b"_test_" | b"_prod_" => stripe(text, start, tend, out),
        b"hooks.slack.com/" => slack_webhook(text, start, tend, out),
        b"xapp-" => {
            // Slack app-level tokens: xapp-1-A0123ABCD-1234567890123-<hex>.
            let k = run(text, tend, |c| word(c) || c == b'-', 140);
            let e = tend + k;
            let body = &text[tend..e];
            let parts = body.split(|&c| c == b'-').count();
            if k >= 40 && parts >= 4 && bounded(e) && validate::entropy(body) > 3.0 {
                out.push(Candidate::new(PiiType::SlackToken, start, e, 0.9));
            }
        }
        b"AKIA" | b"ASIA" | b"ABIA" | b"ACCA" => {
            let k = run(
                text,
                tend,
                |c| c.is_ascii_uppercase() || c.is_ascii_digit(),
                17,
            );
            let e = tend + k;
            let body = &text[tend..e];
            if k == 16 && bounded(e) && !body.ends_with(b"EXAMPLE") && validate::entropy(body) > 2.5
            {
                out.push(Candidate::new(PiiType::AwsAccessKey, start, e, 0.9));
            }
        }
        b"github_pat_" => {
            let k = run(text, tend, |c| word(c) || c == b'_', 90);
            let e = tend + k;
            if (70..=90).contains(&k) && bounded(e) && validate::entropy(&text[tend..e]) > 3.5 {
                out.push(Candidate::new(PiiType::GithubToken, start, e, 0.95));
            }
        }
        b"ghp_" | b"gho_" | b"ghu_" | b"ghs_" | b"ghr_" => {
            let k = run(text, tend, word, 41);
            let e = tend + k;
            if (36..=40).contains(&k) && bounded(e) && validate::entropy(&text[tend..e]) > 3.5 {
                out.push(Candidate::new(PiiType::GithubToken, start, e, 0.95));
            }
        }
        b"xox" => {
            // xoxb-, xoxp-, xoxa-, xoxr-, xoxs-, xoxe-; a refresh token
            // `xoxe.xoxp-` is one token.
            let tend = if text[tend..].starts_with(b"e.xox") {
                tend + 5
            } else {
                tend
            };
            let kind = text.get(tend).copied();
            if !matches!(kind, Some(b'b' | b'p' | b'a' | b'r' | b's' | b'e' | b'o'))
                || text.get(tend + 1) != Some(&b'-')
            {
                return;
            }
            let tend = tend + 2;
            let k = run(text, tend, |c| word(c) || c == b'-', 512);
            let e = tend + k;
            let body = &text[tend..e];
            let digits = body.iter().filter(|c| c.is_ascii_digit()).count();
            // Team and user ids: a version (`1`, `2`) or eight digits and
            // more; legacy `xoxo-`/`xoxs-` tokens have shorter ones.
            let ids_ok = matches!(kind, Some(b'o' | b's'))
                || body
                    .split(|&c| c == b'-')
                    .filter(|g| g.iter().all(u8::is_ascii_digit))
                    .all(|g| g.len() <= 1 || g.len() >= 8);
            // A token cut short by a placeholder (`…-####`) is none.
            let placeholder = body.ends_with(b"-") || matches!(text.get(e), Some(b'#' | b'*'));
            // The digits of its ids carry much of its randomness, so a
            // token with the full shape needs less entropy.
            let shaped = body.iter().filter(|&&c| c == b'-').count() >= 3;
            let entropy = validate::entropy(body);
            if (20..512).contains(&k)
                && bounded(e)
                && digits >= 6
                && ids_ok
                && !placeholder
                && (entropy > 3.0 || shaped && entropy > 2.5)
            {
                out.push(Candidate::new(PiiType::SlackToken, start, e, 0.9));
            }
        }
        b"sk-" => {
            let k = run(text, tend, token, 200);
            let e = tend + k;
            let body = &text[tend..e];
            let has_digit = body.iter().any(u8::is_ascii_digit);
            let has_upper = body.iter().any(u8::is_ascii_uppercase);
            let has_lower = body.iter().any(u8::is_ascii_lowercase);
            if k >= 20
                && bounded(e)
                && has_digit
                && has_upper
                && has_lower
                && validate::entropy(body) > 4.0
            {
                out.push(Candidate::new(PiiType::ApiKey, start, e, 0.85));
            }
        }
        b"eyJ" | b"ewog" | b"ewoJ" | b"ew0K" | b"eyAi" => jwt(text, start, out),
        _ => private_key(text, start, tend, out),
    }
}

/// Stripe secret and restricted keys: `sk_` or `rk_`, `live_`/`test_`/`prod_`,
/// then 10 to 99 alphanumerics (publishable `pk_` keys are not secrets).
/// The trigger is the mode (`_live_`); the two bytes before name the key.
fn stripe(text: &[u8], mode: usize, body_start: usize, out: &mut Vec<Candidate>) {
    if mode < 2 || !matches!(&text[mode - 2..mode], b"sk" | b"rk") {
        return;
    }
    let start = mode - 2;
    if start > 0 && is_alnum(text[start - 1]) {
        return;
    }
    let k = run(text, body_start, |c| c.is_ascii_alphanumeric(), 100);
    let e = body_start + k;
    let bounded = !text
        .get(e)
        .is_some_and(|&c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-');
    let body = &text[body_start..e];
    if (10..=99).contains(&k)
        && bounded
        && body.iter().any(u8::is_ascii_digit)
        && validate::entropy(body) > 3.0
    {
        out.push(Candidate::new(PiiType::ApiKey, start, e, 0.9));
    }
}

/// A Slack incoming-webhook URL (its path is the credential), from the
/// scheme when there is one.
fn slack_webhook(text: &[u8], start: usize, tend: usize, out: &mut Vec<Candidate>) {
    let rest = &text[tend..];
    let Some(kind) = [&b"services/"[..], b"workflows/", b"triggers/"]
        .into_iter()
        .find(|k| rest.starts_with(k))
    else {
        return;
    };
    let path_start = tend + kind.len();
    let k = run(
        text,
        path_start,
        |c| c.is_ascii_alphanumeric() || matches!(c, b'/' | b'+'),
        120,
    );
    let path = &text[path_start..path_start + k];
    if k < 40 || validate::entropy(path) < 3.5 {
        return;
    }
    let from = if text[..start].ends_with(b"https://") {
        start - 8
    } else {
        start
    };
    out.push(Candidate::new(
        PiiType::SlackToken,
        from,
        path_start + k,
        0.9,
    ));
}

fn jwt(text: &[u8], start: usize, out: &mut Vec<Candidate>) {
    use base64::Engine as _;
    let b64u = |c: u8| c.is_ascii_alphanumeric() || c == b'-' || c == b'_';
    let h = run(text, start, b64u, 2048);
    let p_start = start + h + 1;
    if text.get(start + h) != Some(&b'.') || p_start >= text.len() {
        return;
    }
    let p = run(text, p_start, b64u, 16384);
    let s_start = p_start + p + 1;
    if p < 4 || text.get(p_start + p) != Some(&b'.') {
        return;
    }
    let s = if s_start < text.len() {
        run(text, s_start, b64u, 1024)
    } else {
        0
    };
    let header = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(&text[start..start + h])
        .unwrap_or_default();
    if header.starts_with(b"{") && context::contains_ci(&header, b"\"alg\"") {
        out.push(Candidate::new(PiiType::Jwt, start, s_start + s, 0.95));
    }
}

fn private_key(text: &[u8], start: usize, tend: usize, out: &mut Vec<Candidate>) {
    let head_end = (tend + 40).min(text.len());
    let Some(dash) = memchr::memmem::find(&text[tend..head_end], b"-----") else {
        return;
    };
    let label = &text[tend..tend + dash];
    if !label.ends_with(b"PRIVATE KEY") && !label.ends_with(b"PRIVATE KEY BLOCK") {
        return;
    }
    let body_start = tend + dash + 5;
    let limit = (body_start + 16 * 1024).min(text.len());
    let end = match memchr::memmem::find(&text[body_start..limit], b"-----END ") {
        Some(p) => {
            let tail = body_start + p + 9;
            memchr::memmem::find(&text[tail..limit], b"-----")
                .map(|q| tail + q + 5)
                .unwrap_or(limit)
        }
        None => {
            body_start
                + run(
                    text,
                    body_start,
                    |c| {
                        c.is_ascii_alphanumeric()
                            || matches!(c, b'+' | b'/' | b'=' | b'\n' | b'\r' | b'\\')
                    },
                    16 * 1024,
                )
        }
    };
    // A placeholder (`...`, `<key here>`, a line of X) is not a key: a real
    // body holds at least 64 base64 characters and looks random.
    let body: Vec<u8> = text[body_start..end]
        .iter()
        .copied()
        .filter(|&c| c.is_ascii_alphanumeric() || c == b'+' || c == b'/')
        .collect();
    let armored = &body[..body.len().min(4096)];
    if body.len() < 64 || validate::entropy(armored) < 4.0 {
        return;
    }
    out.push(Candidate::new(PiiType::PrivateKey, start, end, 0.99));
}

/// Words that follow a name hotword but are not names.
const NOT_NAMES: &[&str] = &[
    "The",
    "This",
    "That",
    "Customer",
    "Service",
    "Support",
    "Account",
    "Card",
    "Number",
    "Please",
    "Null",
    "None",
    "Unknown",
    "Agent",
    "Manager",
    "Name",
    "Team",
    "Department",
    "Care",
    "Id",
    "ID",
    "Is",
    "Was",
    "And",
    "Or",
    "Of",
    "On",
    "In",
    "At",
    "To",
    "For",
    "With",
    "Your",
    "My",
    "Our",
    "Their",
    "Here",
    "There",
    "Yes",
    "No",
    "Thank",
    "Thanks",
    "Hello",
    "Hi",
    "Dear",
    "Field",
    "Value",
    "String",
    "Type",
    "Test",
    "User",
    "Admin",
    "Email",
    "Phone",
    "Address",
    "Bot",
    "Assistant",
    "Sir",
    "Madam",
];

fn person(text: &[u8], start: usize, tend: usize, out: &mut Vec<Candidate>) {
    let trigger = &text[start..tend];
    let prev = if start > 0 { text[start - 1] } else { b' ' };
    let is_field = trigger.eq_ignore_ascii_case(b"name");
    let mut tend = tend;
    let is_title = trigger.starts_with(b"M");
    if is_title {
        // Mr, Mrs, Ms, optionally with a period, then a space.
        tend = start + 2;
        if trigger == b"Mr" && text.get(tend) == Some(&b's') {
            tend += 1;
        }
        if text.get(tend) == Some(&b'.') {
            tend += 1;
        }
        if text.get(tend) != Some(&b' ') || prev.is_ascii_alphanumeric() {
            return;
        }
    } else if is_field {
        // `name`, `first_name`, `lastName`, `customer_name`; not `username`, `filename`.
        let field_prefix = [&b"first"[..], b"last", b"full", b"customer", b"card_holder"]
            .iter()
            .any(|p| {
                text[..start]
                    .strip_suffix(&b"_"[..])
                    .unwrap_or(&text[..start])
                    .ends_with(p)
            });
        if prev.is_ascii_alphabetic() && !field_prefix {
            return;
        }
        if text.get(tend).is_some_and(|c| c.is_ascii_alphabetic()) {
            return; // "names"
        }
    } else {
        return;
    }
    let mut i = tend;
    let limit = (tend + 12).min(text.len());
    if is_field {
        // `name: X`, `name = X`, `"name": "X"`, `name is X`
        while i < limit && matches!(text[i], b'"' | b'\'' | b':' | b'=' | b' ' | b'\t') {
            i += 1;
        }
        if text[i.min(text.len())..].starts_with(b"is ") {
            i += 3;
        }
        if i == tend {
            return;
        }
    } else {
        if text.get(i) == Some(&b'.') {
            i += 1;
        }
        while i < limit && text[i] == b' ' {
            i += 1;
        }
    }
    let (end, words) = capitalized_words(text, i, 3);
    if words == 0 {
        return;
    }
    let score = if is_title { 0.75 } else { 0.7 };
    out.push(Candidate::new(PiiType::Person, i, end, score));
}

/// Up to `max` capitalized words (Unicode letters) from `i`, separated by single spaces.
fn capitalized_words(text: &[u8], mut i: usize, max: usize) -> (usize, usize) {
    let mut end = i;
    let mut count = 0;
    while count < max && i < text.len() {
        let rest = &text[i..(i + 40).min(text.len())];
        let s = match std::str::from_utf8(rest) {
            Ok(s) => s,
            Err(e) => std::str::from_utf8(&rest[..e.valid_up_to()]).unwrap_or(""),
        };
        let mut chars = s.char_indices();
        let Some((_, first)) = chars.next() else {
            break;
        };
        if !first.is_uppercase() {
            break;
        }
        let mut wend = first.len_utf8();
        for (p, c) in chars {
            if c.is_alphabetic() || c == '\'' || c == '’' || c == '-' {
                wend = p + c.len_utf8();
            } else {
                break;
            }
        }
        let word = &s[..wend];
        if wend < 2 && count == 0
            || NOT_NAMES.contains(&word)
            || word.chars().all(char::is_uppercase) && wend > 1
        {
            break;
        }
        count += 1;
        end = i + wend;
        i = end;
        if text.get(i) == Some(&b' ') {
            i += 1;
        } else {
            break;
        }
    }
    (end, count)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<(PiiType, String)> {
        let mut out = Vec::new();
        Scanner::shared().scan(text.as_bytes(), &mut out);
        out.iter()
            .filter(|c| c.score >= 0.5)
            .map(|c| (c.kind.unwrap(), text[c.start..c.end].to_owned()))
            .collect()
    }

    fn has(text: &str, kind: PiiType, value: &str) -> bool {
        kinds(text).iter().any(|(k, v)| *k == kind && v == value)
    }

    fn lacks(text: &str, kind: PiiType) -> bool {
        kinds(text).iter().all(|(k, _)| *k != kind)
    }

    proptest::proptest! {
        /// A national number with a trunk zero is a phone beside a phone's
        /// word, and nothing without one.
        #[test]
        fn national_numbers_need_a_phone_word(
            second in 1u8..=9,
            rest in proptest::collection::vec(0u8..=9, 7..=9),
            cut in 2usize..=4,
            sep in proptest::sample::select(vec![" ", "-"]),
        ) {
            let digits: String = std::iter::once(0)
                .chain(std::iter::once(second))
                .chain(rest)
                .map(|d| char::from(b'0' + d))
                .collect();
            let number = format!("{}{sep}{}", &digits[..cut], &digits[cut..]);
            let called = format!("please call me on {number} tonight");
            proptest::prop_assert!(has(&called, PiiType::PhoneNumber, &number), "{:?} {:?}", called, kinds(&called));
            let plain = format!("the batch {number} was shipped");
            proptest::prop_assert!(!has(&plain, PiiType::PhoneNumber, &number), "{:?}", plain);
        }

        /// A routing number written 4-4-1 is found when its check digit
        /// holds, and not when it does not.
        #[test]
        fn routing_numbers_four_four_one(
            prefix in proptest::sample::select(vec![1u32, 5, 12, 21, 26, 32, 61, 67, 72, 80]),
            body in 0u32..1_000_000,
            wrong in 1u8..=9,
        ) {
            let first8 = format!("{prefix:02}{body:06}");
            let check = validate::aba_check_digit(first8.as_bytes());
            let good = format!("{}-{}-{}", &first8[..4], &first8[4..], char::from(check));
            let text = format!("use {good} please");
            proptest::prop_assert!(has(&text, PiiType::UsBankRouting, &good), "{:?}", text);
            let bad_digit = b'0' + (check - b'0' + wrong) % 10;
            let bad = format!("{}-{}-{}", &first8[..4], &first8[4..], char::from(bad_digit));
            let text = format!("use {bad} please");
            proptest::prop_assert!(!has(&text, PiiType::UsBankRouting, &bad), "{:?}", text);
        }

        /// Slack bot tokens with real ids are found; ids of two to seven
        /// digits are not.
        #[test]
        fn slack_token_ids(
            team in "[1-9][0-9]{9,12}",
            user in "[1-9][0-9]{9,12}",
            secret in "[a-zA-Z0-9]{24}",
            short in "[1-9][0-9]{1,6}",
        ) {
            let token = format!("xoxb-{team}-{user}-{secret}");
            proptest::prop_assume!(validate::entropy(&token.as_bytes()[5..]) > 3.0);
            let text = format!("token: {token}");
            proptest::prop_assert!(has(&text, PiiType::SlackToken, &token), "{:?}", text);
            let fake = format!("xoxb-{short}-{user}-{secret}");
            let text = format!("token: {fake}");
            proptest::prop_assert!(kinds(&text).iter().all(|(k, _)| *k != PiiType::SlackToken), "{:?}", text);
        }

        /// Stripe secret keys are found; publishable keys are not.
        #[test]
        fn stripe_secret_keys(mode in proptest::sample::select(vec!["live", "test", "prod"]), body in "[a-zA-Z]{12}[0-9]{4}[a-zA-Z0-9]{8}") {
            let key = format!("sk_{mode}_{body}");
            let text = format!("STRIPE_KEY={key}");
            proptest::prop_assert!(has(&text, PiiType::ApiKey, &key), "{:?}", text);
            let public = format!("pk_{mode}_{body}");
            let text = format!("key {public} here");
            proptest::prop_assert!(lacks(&text, PiiType::ApiKey), "{:?}", text);
        }

        /// Google API keys are found at 35 characters after `AIza`, not at 34.
        #[test]
        fn google_api_keys(body in "[A-Za-z0-9_-]{35}") {
            proptest::prop_assume!(validate::entropy(body.as_bytes()) > 3.0);
            let key = format!("AIza{body}");
            let text = format!("key={key}&x");
            proptest::prop_assert!(has(&text, PiiType::ApiKey, &key), "{:?}", text);
            let short = format!("key={}&x", &key[..key.len() - 1]);
            proptest::prop_assert!(kinds(&short).iter().all(|(k, _)| *k != PiiType::ApiKey), "{:?}", short);
        }

        /// A numeric birth date with a two-digit year is found after a
        /// birth word, and not without one or when no day exists.
        #[test]
        fn birth_dates_with_two_digit_years(
            month in 1u32..=12,
            day in 1u32..=28,
            yy in 0u32..100,
            sep in proptest::sample::select(vec!["/", "-", "."]),
        ) {
            let date = format!("{month:02}{sep}{day:02}{sep}{yy:02}");
            let text = format!("Customer: my DOB is {date}, thanks");
            proptest::prop_assert!(has(&text, PiiType::DateOfBirth, &date), "{}: {:?}", text, kinds(&text));
            // No month 13 or day 32 in either order; no birth word.
            let bad = format!("{:02}{sep}{:02}{sep}{yy:02}", month + 12, day + 31);
            let text = format!("Customer: my DOB is {bad}, thanks");
            proptest::prop_assert!(lacks(&text, PiiType::DateOfBirth), "{}: {:?}", text, kinds(&text));
            let text = format!("Release {date} of the tool");
            proptest::prop_assert!(lacks(&text, PiiType::DateOfBirth), "{}: {:?}", text, kinds(&text));
        }

        /// A birth date with a month name (any language's, full or short,
        /// in any of the orders people write) is found after a birth word
        /// when the day exists, and not when it does not or with no birth
        /// word.
        #[test]
        fn birth_dates_with_month_names(
            pick in 0usize..MONTHS.len(),
            year in 1930u32..=2010,
            day_seed in 1u32..=31,
            form in 0usize..4,
        ) {
            let (name, month) = MONTHS[pick];
            let name = {
                let mut c = name.chars();
                c.next().map(|f| f.to_uppercase().chain(c).collect::<String>()).unwrap_or_default()
            };
            let last = (28..=31).rev().find(|&d| validate::date(year, month, d)).unwrap();
            let write = |day: u32| match form {
                0 => format!("{name} {day}, {year}"),
                1 => format!("{day} {name} {year}"),
                2 => format!("{day}. {name} {year}"),
                _ => format!("{day} de {name} de {year}"),
            };
            let date = write(1 + (day_seed - 1) % last);
            let text = format!("date of birth: {date} ok");
            proptest::prop_assert!(has(&text, PiiType::DateOfBirth, &date), "{:?} {:?}", text, kinds(&text));
            let text = format!("the meeting on {date} ok");
            proptest::prop_assert!(lacks(&text, PiiType::DateOfBirth), "{:?}", text);
            let text = format!("date of birth: {} ok", write(last + 1));
            proptest::prop_assert!(lacks(&text, PiiType::DateOfBirth), "{:?}", text);
        }

        /// An SSN written with dots is found beside its word when its parts
        /// are ones the SSA issues, and not when its group is `00`.
        #[test]
        fn ssns_with_dots(area in 1u32..900, group in 1u32..100, serial in 1u32..10_000) {
            proptest::prop_assume!(area != 666);
            let ssn = format!("{area:03}.{group:02}.{serial:04}");
            proptest::prop_assume!(validate::ssn(ssn.replace('.', "").as_bytes()));
            let text = format!("my ssn is {ssn} ok");
            proptest::prop_assert!(has(&text, PiiType::UsSsn, &ssn), "{:?} {:?}", text, kinds(&text));
            let bad = format!("{area:03}.00.{serial:04}");
            let text = format!("my ssn is {bad} ok");
            proptest::prop_assert!(lacks(&text, PiiType::UsSsn), "{:?}", text);
        }

        /// A German IBAN written in dashed groups of four is found when its
        /// check digits hold, and not with one digit changed.
        #[test]
        fn ibans_with_dashes(bban in "[0-9]{18}", at in 0usize..18, delta in 1u8..=9) {
            let check = |bban: &str| {
                // The country and `00` moved to the end, letters as numbers (D=13, E=14).
                let r = format!("{bban}131400")
                    .bytes()
                    .fold(0u32, |r, d| (r * 10 + u32::from(d - b'0')) % 97);
                98 - r
            };
            let dashed = |iban: &str| {
                iban.as_bytes().chunks(4).map(|c| std::str::from_utf8(c).unwrap()).collect::<Vec<_>>().join("-")
            };
            let digits = check(&bban);
            let good = dashed(&format!("DE{digits:02}{bban}"));
            let text = format!("IBAN {good} please");
            proptest::prop_assert!(has(&text, PiiType::IbanCode, &good), "{:?} {:?}", text, kinds(&text));
            let mut wrong = bban.into_bytes();
            wrong[at] = b'0' + (wrong[at] - b'0' + delta) % 10;
            let bad = dashed(&format!("DE{digits:02}{}", String::from_utf8(wrong).unwrap()));
            let text = format!("IBAN {bad} please");
            proptest::prop_assert!(lacks(&text, PiiType::IbanCode), "{:?}", text);
        }

        /// A PGP private key block is found whole; the same armour around a
        /// placeholder body is not a key.
        #[test]
        fn pgp_private_key_blocks(
            lines in proptest::collection::vec("[A-Za-z0-9+/]{64}", 2..5),
            filler in proptest::sample::select(vec!["X", "x", "A", "0", "."]),
        ) {
            let armour = |body: &str| {
                format!("-----BEGIN PGP PRIVATE KEY BLOCK-----\n\n{body}\n-----END PGP PRIVATE KEY BLOCK-----")
            };
            let key = armour(&lines.join("\n"));
            proptest::prop_assert!(has(&key, PiiType::PrivateKey, &key), "{:?}", key);
            let dummy = armour(&filler.repeat(64));
            proptest::prop_assert!(lacks(&dummy, PiiType::PrivateKey), "{:?}", dummy);
        }
    }

    proptest::proptest! {
        /// Every IPv6 address with some substance is found, in its canonical
        /// (compressed) form and written out in full.
        #[test]
        fn ipv6_addresses_are_found(bits in proptest::prelude::any::<u128>()) {
            let addr = std::net::Ipv6Addr::from(bits);
            let short = addr.to_string();
            let segs = addr.segments();
            let full = segs.map(|g| format!("{g:04x}")).join(":");
            for form in [short, full] {
                let groups = form.split(':').filter(|g| !g.is_empty()).count();
                let hex = form.bytes().filter(u8::is_ascii_hexdigit).count();
                if groups < 3 && hex < 5 {
                    continue;
                }
                let text = format!("peer [{form}] connected");
                proptest::prop_assert!(has(&text, PiiType::IpAddress, &form), "{} {:?}", form, kinds(&text));
            }
        }

        /// The span gate is a copy of the shapes' first checks, and the
        /// CVV prefilter a summary of the CVV hotwords: a shape or hotword
        /// added or widened without them would lose candidates silently.
        #[test]
        fn the_gates_drop_no_candidate(
            groups in proptest::collection::vec(
                (
                    proptest::sample::select(vec![
                        "", "card ", "ssn ", "phone ", "dob: ", "account number ", "ip ", "order #",
                        "cvv ", "call +", "(", "routing ", "born ", "CSC noted for the form ab: ",
                        "card verification number on the form: ", "security code, it is ",
                        "acct ", "A/C ", "savings ", "bank account on file for the refund is ",
                        "checking, the one I use for the form: ",
                    ]),
                    // Block lengths: the shapes' own groupings, or any.
                    proptest::prop_oneof![
                        proptest::sample::select(vec![
                            vec![4, 4, 4, 4], vec![4, 4, 4, 4, 3], vec![4, 6, 5], vec![4, 6, 4],
                            vec![3, 2, 4], vec![3, 3, 4], vec![1, 3, 3, 4], vec![2, 2, 4],
                            vec![4, 2, 2], vec![1, 1, 4], vec![3, 3], vec![1, 1, 1, 1],
                            vec![3, 3, 3, 3], vec![2, 4, 4], vec![2, 3, 3, 4], vec![5, 4, 4],
                        ]),
                        proptest::collection::vec(1usize..8, 1..7),
                    ],
                    proptest::sample::select(vec![" ", "-", ".", "/", ":", ")", ") "]),
                    proptest::option::of(proptest::sample::select(vec![" ", "-", ".", "/"])),
                    proptest::collection::vec(0u8..10, 40),
                ),
                1..4,
            ),
        ) {
            let mut text = String::new();
            for (prefix, lens, sep, odd_sep, digits) in &groups {
                text.push_str(prefix);
                let mut pool = digits.iter().cycle();
                for (k, len) in lens.iter().enumerate() {
                    match k {
                        0 => {}
                        // One odd separator, when drawn, before the last block.
                        _ if k + 1 == lens.len() => text.push_str(odd_sep.unwrap_or(sep)),
                        _ => text.push_str(sep),
                    }
                    for _ in 0..*len {
                        text.push(char::from(b'0' + pool.next().unwrap()));
                    }
                }
                text.push_str(" then ");
            }
            let sc = Scanner::shared();
            let found = |gated: bool| {
                let mut out = Vec::new();
                if gated {
                    numeric_groups::<true>(sc, text.as_bytes(), &mut out);
                } else {
                    numeric_groups::<false>(sc, text.as_bytes(), &mut out);
                }
                let mut v: Vec<_> = out
                    .iter()
                    .map(|c| (c.start, c.end, c.kind, c.score.to_bits()))
                    .collect();
                v.sort();
                v
            };
            proptest::prop_assert_eq!(found(true), found(false), "{}", text);
        }

        #[test]
        fn security_codes_answering_a_question_about_them(
            code in "[0-9]{3,4}",
            question in proptest::sample::select(vec![
                "What is the CVV?",
                "and the security code on the back, please?",
                "Please read me the three digits on the back of your card.",
                "can I get the cvc",
            ]),
            lead in proptest::sample::select(vec!["", "sure, ", "yes it's ", "ok ", "um, "]),
            other in proptest::sample::select(vec![
                "Which extension should I transfer you to?",
                "How many attempts have you made?",
                "What is the amount?",
            ]),
        ) {
            let answer = format!("Customer: {lead}{code}");
            // Found when the question is about the code.
            let text = format!("Agent: {question}\n{answer}");
            proptest::prop_assert!(has(&text, PiiType::Cvv, &code), "{}: {:?}", text, kinds(&text));
            // Not when the question after it is about something else.
            let text = format!("Agent: {question} Thanks. {other}\n{answer}");
            proptest::prop_assert!(lacks(&text, PiiType::Cvv), "{}: {:?}", text, kinds(&text));
            // Not when more than a lead-in comes before it.
            let text = format!("Agent: {question}\nCustomer: the card ends {code}");
            proptest::prop_assert!(lacks(&text, PiiType::Cvv), "{}: {:?}", text, kinds(&text));
        }

        #[test]
        fn birth_dates_after_birth_words_in_other_languages(
            day in 1u32..=28,
            month in 1u32..=12,
            year in 1930u32..=2005,
            word in proptest::sample::select(vec!["geb.", "né le", "nato il", "nata il", "data di nascita:"]),
        ) {
            let date = format!("{day:02}.{month:02}.{year}");
            let text = format!("Kunde Jonas, {word} {date}, Kontakt per Mail");
            proptest::prop_assert!(has(&text, PiiType::DateOfBirth, &date), "{}: {:?}", text, kinds(&text));
            // Without the word, a date is a date.
            let text = format!("Kunde Jonas, Termin {date}, Kontakt per Mail");
            proptest::prop_assert!(lacks(&text, PiiType::DateOfBirth), "{}: {:?}", text, kinds(&text));
        }

        #[test]
        fn security_codes_after_their_card_and_expiry(
            body in "4[0-9]{14}",
            month in 1u32..=12,
            year in proptest::sample::select(vec!["26", "2027"]),
            code in "[0-9]{3,4}",
            join in proptest::sample::select(vec![" ", " | ", ", exp ", " expiry date: "]),
            before in proptest::sample::select(vec![" ", ", ", " | ", ", code ", " code: "]),
        ) {
            let card = format!("{body}{}", crate::synth::luhn_digit(&body));
            let text = format!("card {card}{join}{month:02}/{year}{before}{code}");
            proptest::prop_assert!(has(&text, PiiType::Cvv, &code), "{}: {:?}", text, kinds(&text));
            // Not after a month that is none, a date with a digit between it
            // and the card, or with a word after it.
            let text = format!("card {card}{join}{}/{year}{before}{code}", month + 12);
            proptest::prop_assert!(lacks(&text, PiiType::Cvv), "{}: {:?}", text, kinds(&text));
            let text = format!("card {card} and 2 more, {month:02}/{year}{before}{code}");
            proptest::prop_assert!(lacks(&text, PiiType::Cvv), "{}: {:?}", text, kinds(&text));
            let text = format!("card {card}{join}{month:02}/{year}{before}{code} units");
            proptest::prop_assert!(lacks(&text, PiiType::Cvv), "{}: {:?}", text, kinds(&text));
        }

        #[test]
        fn account_numbers_after_the_word(
            number in "[1-9][0-9]{7,11}",
            word in proptest::sample::select(vec!["account", "Account", "acct", "Konto", "compte", "cuenta", "rekening"]),
            sep in proptest::sample::select(vec![" ", ": ", " #", " no. ", " is "]),
            filler in proptest::sample::select(vec![" alert ", " was opened, ticket ", " and order "]),
        ) {
            let text = format!("please use {word}{sep}{number} for it");
            proptest::prop_assert!(has(&text, PiiType::BankAccount, &number), "{}: {:?}", text, kinds(&text));
            // A word between the account word and the number: no account
            // number (`acct` is a hotword on its own, a few words off too).
            let word = if word == "acct" { "account" } else { word };
            let text = format!("please use {word}{filler}{number} for it");
            proptest::prop_assert!(lacks(&text, PiiType::BankAccount), "{}: {:?}", text, kinds(&text));
        }

        #[test]
        fn run_starts_are_digits_starting_a_word_or_after_two_capitals(
            text in proptest::collection::vec(proptest::sample::select(b"0123456789 aZQ_-".to_vec()), 0..300),
            skips in proptest::collection::vec(0usize..90, 0..8),
        ) {
            let want: Vec<usize> = (0..text.len())
                .filter(|&k| {
                    let upper = |j: usize| text[j].is_ascii_uppercase();
                    text[k].is_ascii_digit()
                        && (k == 0
                            || !text[k - 1].is_ascii_alphanumeric()
                            || (k >= 2 && upper(k - 1) && upper(k - 2)))
                })
                .collect();
            let (mut classes, mut runs) = (Classes::new(&text), RunStarts::new());
            let (mut i, mut skips) = (0, skips.into_iter().cycle());
            loop {
                let got = runs.next_from(&mut classes, i);
                proptest::prop_assert_eq!(got, want.iter().copied().find(|&k| k >= i));
                let Some(k) = got else { break };
                // Ask from further on now and then, as the scanner does after a group.
                i = k + 1 + skips.next().unwrap_or(0);
            }
        }
    }

    /// Every trigger starts with one of [`TRIGGER_PAIRS`], and the short
    /// texts' search finds what Aho-Corasick finds.
    #[test]
    fn short_texts_find_the_triggers_aho_corasick_finds() {
        let sc = Scanner::shared();
        for t in TRIGGERS
            .iter()
            .chain(MORE_SECRET_TRIGGERS)
            .chain(LOWER_CASE_NAME_CUES)
        {
            let b = t.as_bytes();
            assert!(
                TRIGGER_PAIRS
                    .iter()
                    .any(|&(f, s)| b[0] == f && s.contains(&b[1])),
                "{t} starts with no pair"
            );
        }
        let check = |text: &[u8]| {
            let starts = bytemask::pair_starts(text, TRIGGER_PAIRS);
            for (ac, patterns) in [
                (&sc.triggers, TRIGGERS),
                (&sc.more_triggers, sc.more_literals.as_slice()),
            ] {
                let want: Vec<_> = ac
                    .find_iter(text)
                    .map(|m| (m.start(), m.end(), m.pattern().as_usize()))
                    .collect();
                let mut got = Vec::new();
                literal_matches(text, &starts, patterns, |s, e, k| got.push((s, e, k)));
                assert_eq!(got, want, "{}", String::from_utf8_lossy(text));
            }
        };
        // Triggers run together, overlapping and cut short, among other bytes.
        let pieces: Vec<&str> = TRIGGERS
            .iter()
            .chain(MORE_SECRET_TRIGGERS)
            .chain(LOWER_CASE_NAME_CUES)
            .copied()
            .chain([
                "na", "Nam", "ey", "gh", "-", "_", "x", " ", "e", "M", "A", "AK",
            ])
            .collect();
        let mut seed = 7u64;
        let mut next = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) as usize
        };
        for _ in 0..20_000 {
            let len = next() % (bytemask::PAIR_TEXT_MAX + 1);
            let mut text = Vec::new();
            while text.len() < len {
                text.extend_from_slice(pieces[next() % pieces.len()].as_bytes());
            }
            text.truncate(len);
            check(&text);
        }
        let corpus = crate::synth::corpus_text("dense", 1 << 17, 9);
        for line in corpus.lines() {
            check(&line.as_bytes()[..line.len().min(bytemask::PAIR_TEXT_MAX)]);
        }
    }

    /// The census skips a pass only when its trigger bytes are absent:
    /// every line of generated traffic, whole or cut short, gives the same
    /// candidates with and without it.
    #[test]
    fn the_census_drops_no_candidate() {
        let sc = Scanner::shared();
        let found = |text: &[u8], census: Census| {
            let mut out = Vec::new();
            sc.scan_counted(text, census, &mut out);
            out.iter()
                .map(|c| (c.start, c.end, c.kind, c.score.to_bits()))
                .collect::<Vec<_>>()
        };
        let mut checked = 0;
        for kind in ["contact", "dense", "clean"] {
            let text = crate::synth::corpus_text(kind, 1 << 17, 5);
            for line in text.lines() {
                let line = line.as_bytes();
                for cut in [line.len(), line.len() / 2, line.len().min(20)] {
                    let part = &line[..cut];
                    let census = Census::of(part);
                    assert_eq!(
                        found(part, census),
                        found(part, Census::ALL),
                        "{}",
                        String::from_utf8_lossy(part)
                    );
                    checked += usize::from(census != Census::ALL);
                }
            }
        }
        assert!(
            checked > 1000,
            "{checked} texts had a census that skips a pass"
        );
    }

    #[test]
    fn every_gated_hotword_holds_a_pair_within_reach() {
        // Each hotword, ending as far before a number as its category looks
        // and in either case, must leave one of the gate's pairs in the
        // bytes the gate reads.
        let hot = context::Hotwords::new();
        for (gate, list) in [
            (&CVV_GATE, context::words::CVV),
            (&ACCOUNT_GATE, context::words::ACCOUNT),
        ] {
            for word in list {
                for word in [word.to_string(), word.to_uppercase()] {
                    let text = format!("{word}{}1234", " ".repeat(gate.dist));
                    let start = text.len() - 4;
                    let window = &text.as_bytes()[start.saturating_sub(gate.back)..start + 1];
                    assert!(bytemask::has_letter_pair(window, gate.pairs), "{word}");
                    let near = Near::new(&hot, text.as_bytes(), start, start + 4);
                    assert!(
                        near.before(gate.cat, gate.dist),
                        "{word} is no hotword of its category"
                    );
                }
            }
        }
    }

    #[test]
    fn cards_in_common_shapes() {
        assert!(has(
            "card 4111 1111 1111 1111 exp",
            PiiType::CreditCard,
            "4111 1111 1111 1111"
        ));
        assert!(has(
            "pay with 4111-1111-1111-1111.",
            PiiType::CreditCard,
            "4111-1111-1111-1111"
        ));
        assert!(has(
            "{\"pan\":\"4111111111111111\"}",
            PiiType::CreditCard,
            "4111111111111111"
        ));
        assert!(has(
            "amex 3782 822463 10005",
            PiiType::CreditCard,
            "3782 822463 10005"
        ));
        assert!(!has(
            "4111 1111 1111 1112",
            PiiType::CreditCard,
            "4111 1111 1111 1112"
        ));
        assert!(kinds("order 1234-5678-9012-3456").is_empty());
        // A real card where a reference belongs is still reported.
        assert!(has(
            "order #4539147051321884 shipped",
            PiiType::CreditCard,
            "4539147051321884"
        ));
        assert!(has(
            "ticket 4111 1111 1111 1111",
            PiiType::CreditCard,
            "4111 1111 1111 1111"
        ));
    }

    #[test]
    fn track_data_and_cvv() {
        let t = kinds(";4111111111111111=25121010000012300000?");
        assert_eq!(t[0].0, PiiType::CardTrackData);
        assert!(has("cvv: 123", PiiType::Cvv, "123"));
        // The hotword ends 21 bytes back, its last 'c' 27 bytes back.
        assert!(has(
            "card verification number on the form: 123",
            PiiType::Cvv,
            "123"
        ));
        assert!(!has("we have 123 apples", PiiType::Cvv, "123"));
        // The UK's CV2, and the code in German.
        for text in ["CV2 is 123", "Sicherheitscode: 123", "the card code is 123"] {
            assert!(has(text, PiiType::Cvv, "123"), "{text}: {:?}", kinds(text));
        }
        // Numbers near a CVV word that are not the code.
        for text in [
            "security code 123, amount $129",
            "cvv ok, total $129",
            "security code: call ext 1234",
            "cvv verified, card exp 1227",
            "cvv 123 then 456",
            "{\"cid\":219,\"sub\":\"x\"}",
            "security code charge 129.00",
        ] {
            let cvvs: Vec<_> = kinds(text)
                .into_iter()
                .filter(|(k, _)| *k == PiiType::Cvv)
                .map(|(_, v)| v)
                .collect();
            assert!(cvvs.iter().all(|v| v == "123"), "{text}: {cvvs:?}");
        }
        assert!(has("CID 1234 on the front", PiiType::Cvv, "1234"));
        assert!(has("{\"cvv\": \"321\"}", PiiType::Cvv, "321"));
    }

    #[test]
    fn ssn_needs_shape_or_hotword() {
        assert!(has("SSN 123-45-6789", PiiType::UsSsn, "123-45-6789"));
        assert!(has("my ssn is 123456789", PiiType::UsSsn, "123456789"));
        assert!(!has("id 123456789", PiiType::UsSsn, "123456789"));
        assert!(kinds("123-45 6789")
            .iter()
            .all(|(k, _)| *k != PiiType::UsSsn));
        assert!(!has("000-12-3456", PiiType::UsSsn, "000-12-3456"));
        assert!(has("ITIN 912-70-1234", PiiType::UsItin, "912-70-1234"));
    }

    #[test]
    fn phones_not_in_identifiers() {
        assert!(has(
            "call me at (202) 555-0143",
            PiiType::PhoneNumber,
            "(202) 555-0143"
        ));
        assert!(has(
            "phone: 202-555-0143",
            PiiType::PhoneNumber,
            "202-555-0143"
        ));
        for dotted in ["1.202.555.0143", "1-202-555-0143", "202.555.0143"] {
            assert!(has(&format!("tel {dotted}"), PiiType::PhoneNumber, dotted));
        }
        assert!(has(
            "+44 7911 123456",
            PiiType::PhoneNumber,
            "+44 7911 123456"
        ));
        assert!(kinds("id 550e8400-e29b-41d4-a716-446655440000").is_empty());
        assert!(kinds("at 2024-01-15T10:30:00Z").is_empty());
    }

    #[test]
    fn other_types() {
        assert!(has(
            "mail jane.doe@example.com now",
            PiiType::EmailAddress,
            "jane.doe@example.com"
        ));
        assert!(has("from 10.1.2.3 ok", PiiType::IpAddress, "10.1.2.3"));
        for addr in [
            "2001:0db8:85a3:0000:0000:8a2e:0370:7334",
            "2001:db8:85a3::8a2e:370:7334",
            "fe80::1ff:fe23:4567:890a%eth0",
            "::ffff:192.0.2.128",
            "2001:db8::1",
            "FE80::0202:B3FF:FE1E:8329",
        ] {
            assert!(
                has(
                    &format!("client {addr}, port 443."),
                    PiiType::IpAddress,
                    addr
                ),
                "{addr}: {:?}",
                kinds(&format!("client {addr}, port 443."))
            );
        }
        for not in [
            "at 12:30:45 today",
            "mac 00:1A:2B:3C:4D:5E here",
            "use std::io::Read",
            "ratio 3:2:1",
            "loopback ::1 only",
            "2026-12-04T03:50:00Z",
        ] {
            assert!(lacks(not, PiiType::IpAddress), "{not}: {:?}", kinds(not));
        }
        assert!(kinds("version 1.2.3.4.5").is_empty());
        // Four of five dotted parts are no address, whichever end is left out.
        assert!(kinds("at 10.6.0.10.159 now").is_empty());
        assert!(has("DOB: 03/15/1985", PiiType::DateOfBirth, "03/15/1985"));
        assert!(!has("on 03/15/1985", PiiType::DateOfBirth, "03/15/1985"));
        assert!(has(
            "IBAN GB82 WEST 1234 5698 7654 32",
            PiiType::IbanCode,
            "GB82 WEST 1234 5698 7654 32"
        ));
        assert!(has(
            "routing number 021000021",
            PiiType::UsBankRouting,
            "021000021"
        ));
        assert!(has(
            "account number 12345678901",
            PiiType::BankAccount,
            "12345678901"
        ));
        assert!(has(
            "lives at 1600 Pennsylvania Avenue, Washington, DC 20500",
            PiiType::StreetAddress,
            "1600 Pennsylvania Avenue, Washington, DC 20500"
        ));
        for gap in ["\t", "\u{a0}", " "] {
            let text = format!("lives at 12{gap}Main Street");
            assert!(has(&text, PiiType::StreetAddress, &text[9..]), "{text:?}");
        }
        assert!(has("name: John Smith", PiiType::Person, "John Smith"));
        assert!(has("{\"first_name\": \"María\"}", PiiType::Person, "María"));
        assert!(has(
            "spoke with Mrs. Jane Doe today",
            PiiType::Person,
            "Jane Doe"
        ));
        assert!(!has("the filename: Report", PiiType::Person, "Report"));
        // Titles: Mr, Mrs, Ms, with or without a period, and nothing else.
        // (A name in no list, so only the title can make it one.)
        for title in ["Mr", "Mr.", "Mrs", "Mrs.", "Ms", "Ms."] {
            let text = format!("spoke with {title} Zorblat Quenk today");
            assert!(has(&text, PiiType::Person, "Zorblat Quenk"), "{title}");
        }
        for not_title in ["Mss.", "Msg", "Mrx", "HMr."] {
            let text = format!("spoke with {not_title} Zorblat Quenk today");
            assert!(!has(&text, PiiType::Person, "Zorblat Quenk"), "{not_title}");
        }
    }

    #[test]
    fn three_cards_in_a_row_are_three_findings() {
        let text = "4012888888881881 4012-8888-8888-1881 4012 8888 8888 1881";
        for card in [
            "4012888888881881",
            "4012-8888-8888-1881",
            "4012 8888 8888 1881",
        ] {
            let at = text.rfind(card).unwrap();
            assert!(
                kinds(text)
                    .iter()
                    .any(|(k, s)| *k == PiiType::CreditCard && s == &text[at..at + card.len()]),
                "{card}: {:?}",
                kinds(text)
            );
        }
        // UATP and Dankort numbers are cards too.
        assert!(has(
            "122000000000003",
            PiiType::CreditCard,
            "122000000000003"
        ));
        assert!(has(
            "5019717010103742",
            PiiType::CreditCard,
            "5019717010103742"
        ));
    }

    #[test]
    fn routing_numbers_written_four_four_one_need_no_word() {
        assert!(has("3222-7162-7", PiiType::UsBankRouting, "3222-7162-7"));
        // The checksum still decides.
        assert!(!has("3222-7162-8", PiiType::UsBankRouting, "3222-7162-8"));
    }

    #[test]
    fn national_numbers_with_a_trunk_zero_beside_a_phone_word() {
        for number in [
            "09-7625400",
            "090-1234-5678",
            "07700 900123",
            "0161 496 0753",
        ] {
            let text = format!("my phone number is {number}");
            assert!(has(&text, PiiType::PhoneNumber, number), "{text}");
            // Alone, the shape is too common (references, codes) to count.
            let bare = format!("reference {number} attached");
            assert!(!has(&bare, PiiType::PhoneNumber, number), "{bare}");
        }
    }

    #[test]
    fn peers_secret_vectors() {
        // Slack refresh and config tokens are long; legacy ones have short ids.
        let long = format!(
            "xoxe.xoxp-1-{}",
            "Mi0yLTM0MTQwNDE0MDE3Ni0zNjU5NDY0Njg4MTct".repeat(4)
        );
        assert!(has(&format!("t = \"{long}\""), PiiType::SlackToken, &long));
        let legacy = "xoxo-523423-234243-234233-e039d02840a0b9379c";
        assert!(has(legacy, PiiType::SlackToken, legacy));
        let workspace = "xoxa-2-511111111-31111111111-3111111111111-e039d02840a0b9379c";
        assert!(has(workspace, PiiType::SlackToken, workspace));
        // Short ids and placeholders are not tokens.
        for fake in [
            "xoxp-1234-1234-1234-4ddbc191d40ee098cbaae6f3523ada2d",
            "xoxp-572370529330-573807301142-572331691188-####################",
        ] {
            assert!(
                kinds(fake).iter().all(|(k, _)| *k != PiiType::SlackToken),
                "{fake}"
            );
        }
        // Google's published example keys are public.
        assert!(kinds("AIzaSyabcdefghijklmnopqrstuvwxyz1234567").is_empty());
        // Public tokens, anti-forgery tokens and package coordinates hold no secret.
        for text in [
            "publicToken = \"9Cnzj4p4WGeKLs1Pt8QuKUpRKfFLfRYC9AIKjbJTWit\"",
            "csrf-token=Mj2qykJO5rELyHgezQ69nzUX0i3OH67V7+V4eUrLfpuyOuxmiW9rhROG/Whikle15syazJOkrjJa3U2AbhIvUw==",
            "notes = \"Maven - io.jsonwebtoken:jjwt-jackson-0.11.2\"",
        ] {
            assert!(kinds(text).iter().all(|(k, _)| *k != PiiType::ApiKey), "{text}");
        }
        // A name and a value passed together, and credentials by name.
        assert!(has(
            "GetEnvOrDefault(\"api_token\", \"dafa7817-e246-48f3-91a7-e87653d587b8\")",
            PiiType::ApiKey,
            "dafa7817-e246-48f3-91a7-e87653d587b8"
        ));
        assert!(has(
            "\"credentials\" : \"0afae57f3ccfd9d7f5767067bc48b30f719e271ba470488056e37ab35d4b6506\"",
            PiiType::ApiKey,
            "0afae57f3ccfd9d7f5767067bc48b30f719e271ba470488056e37ab35d4b6506"
        ));
    }

    #[test]
    fn slack_tokens_need_a_known_prefix() {
        let body = "1234567890-1234567890-aB3dE5fG7hI9jK1lM3nO5pQ7";
        for prefix in ["xoxb-", "xoxp-", "xoxa-", "xoxr-", "xoxs-", "xoxe-"] {
            let token = format!("{prefix}{body}");
            assert!(
                has(&format!("token {token} here"), PiiType::SlackToken, &token),
                "{prefix}"
            );
        }
        for prefix in ["xoxq-", "xox-", "xoxb_", "axoxb-"] {
            let text = format!("token {prefix}{body} here");
            assert!(
                kinds(&text).iter().all(|(k, _)| *k != PiiType::SlackToken),
                "{prefix}"
            );
        }
    }

    #[test]
    fn secrets_with_entropy_gates() {
        assert!(has(
            "key=AKIAZ4X7QPLM2NB8KD5R;",
            PiiType::AwsAccessKey,
            "AKIAZ4X7QPLM2NB8KD5R"
        ));
        assert!(!has(
            "AKIAIOSFODNN7EXAMPLE",
            PiiType::AwsAccessKey,
            "AKIAIOSFODNN7EXAMPLE"
        ));
        assert!(kinds("AKIAAAAAAAAAAAAAAAAA").is_empty());
        let gh = "ghp_a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8";
        assert!(has(&format!("token {gh}"), PiiType::GithubToken, gh));
        let sk = "sk-proj-Q7b9Xk2LmN4pR8sT1vW3yZ6aC0dF5gH";
        assert!(has(
            &format!("Authorization: Bearer {sk}"),
            PiiType::ApiKey,
            sk
        ));
        assert!(kinds("pip install sk-learn-toolkit-aaaaaaaaaaaa").is_empty());
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.c2lnbmF0dXJlLXZhbHVl";
        assert!(has(jwt, PiiType::Jwt, jwt));
        let pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun\nVTLw7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u+qKhbwKfBstIs+bMY2Zkp18gnTxK\n-----END RSA PRIVATE KEY-----";
        assert!(has(pem, PiiType::PrivateKey, pem));
    }

    #[test]
    fn birth_dates_in_words() {
        for (text, value) in [
            ("DOB: March 3, 1985", "March 3, 1985"),
            ("born on the 3rd of March 1985.", "3rd of March 1985"),
            ("date of birth 14 Feb 1990", "14 Feb 1990"),
            ("geboren am 3. März 1985", "3. März 1985"),
            ("date de naissance : 1er avril 1979", "1er avril 1979"),
            (
                "fecha de nacimiento 3 de marzo de 1985",
                "3 de marzo de 1985",
            ),
        ] {
            assert!(
                has(text, PiiType::DateOfBirth, value),
                "{text}: {:?}",
                kinds(text)
            );
        }
        for text in [
            "the meeting is on March 3, 1985 at noon",
            "born in May 1985",
            "DOB: February 30, 1985",
            "birthday party on March 3, 2099",
        ] {
            assert!(
                lacks(text, PiiType::DateOfBirth),
                "{text}: {:?}",
                kinds(text)
            );
        }
    }

    #[test]
    fn birth_dates_given_as_the_answer_to_the_turn_before() {
        for (text, value) in [
            (
                "Agent: Thanks. To verify the account, can you give me your date of birth please?\nCustomer: 03/14/1985",
                "03/14/1985",
            ),
            (
                "Agent: Could you confirm the date you were born, as it appears on your passport?\nCustomer: March 14, 1985.\nAgent: Thank you.",
                "March 14, 1985",
            ),
            (
                r#"{"messages":[{"role":"assistant","content":"Before I look into the dispute I need to confirm the date of birth on the account."},{"role":"user","content":"14/03/1985"}]}"#,
                "14/03/1985",
            ),
            (
                r#"{"text":"Bot: What is the account holder's date of birth, as on the card application?\nUser: 1985-03-14"}"#,
                "1985-03-14",
            ),
            ("Customer: my DOB is 07/22/91", "07/22/91"),
            ("Geburtsdatum 3.4.79", "3.4.79"),
            (
                "Agent: and your date of birth?\nCustomer: sure, 22/07/91",
                "22/07/91",
            ),
        ] {
            assert!(
                has(text, PiiType::DateOfBirth, value),
                "{text}: {:?}",
                kinds(text)
            );
        }
        for text in [
            // A two-digit year with no birth word; a version; no date.
            "Release 07/22/91 of the tool",
            "DOB field left empty, see 1.2.3",
            "born 13/13/91",
            // Not the whole turn, no birth word the turn before, or too far back.
            "Agent: Thanks. To verify the account, can you give me your date of birth please?\nCustomer: well, I moved house on 03/14/1985 to the new place",
            "Agent: Thanks. To verify the account, can you give me the date of the last payment?\nCustomer: 03/14/2024",
            "2024-03-14 10:00:00 INFO birthday campaign sent to the list of customers today\n2024-03-14 10:00:01 INFO done",
        ] {
            assert!(
                lacks(text, PiiType::DateOfBirth),
                "{text}: {:?}",
                kinds(text)
            );
        }
    }

    #[test]
    fn security_codes_given_as_the_answer_to_the_turn_before() {
        for (text, value) in [
            (
                "Agent: and the three digits on the back of the card?\nCustomer: yes it's 318",
                "318",
            ),
            (
                "[10:14] agent> can I get the card verification code\n[10:14] customer> ok 905",
                "905",
            ),
            (
                r#"{"messages":[{"role":"assistant","content":"Thanks. Could you read me the CVV?"},{"role":"user","content":"sure, 318"}]}"#,
                "318",
            ),
            (
                r#"{"text":"Bot: What is the security code?\nUser: 4821"}"#,
                "4821",
            ),
        ] {
            assert!(has(text, PiiType::Cvv, value), "{text}: {:?}", kinds(text));
        }
        for text in [
            // The last sentence asks for something else; the answer is not
            // the whole turn; more than filler words before it.
            "Agent: thanks, the CVV checks out. Which extension should I transfer you to?\nCustomer: 4410",
            "Agent: Do you have the security code handy? Also, what amount should I charge?\nCustomer: 120 dollars for now",
            "Agent: what's the CVV?\nCustomer: it is on page 214",
            // A JSON key's value is no chat turn.
            r#"{"cid":219,"sub":"x"}"#,
        ] {
            assert!(lacks(text, PiiType::Cvv), "{text}: {:?}", kinds(text));
        }
    }

    #[test]
    fn account_numbers_right_after_the_word_account() {
        for (text, value) in [
            (
                "My routing number is 021000021 and account 483920175",
                "483920175",
            ),
            (
                "Customer: my account is 7730051289, sort code 20-00-00",
                "7730051289",
            ),
            ("Kunde: Kontonummer 532013000, bitte", "532013000"),
            ("acct no. 55120938 was closed", "55120938"),
        ] {
            assert!(
                has(text, PiiType::BankAccount, value),
                "{text}: {:?}",
                kinds(text)
            );
        }
        for text in [
            "Customer: I got account alert 402211 on my phone",
            "Agent: your account was credited with 2500.00, order 66120398 shipped",
            "the subaccount 12345678 is internal",
        ] {
            assert!(
                lacks(text, PiiType::BankAccount),
                "{text}: {:?}",
                kinds(text)
            );
        }
    }

    #[test]
    fn shapes_peers_write() {
        for phone in [
            "+44 (20) 7123 4567",
            "+44 (0)20 7123 4567",
            "+49 (30) 1234-5678",
        ] {
            let text = format!("call {phone} now");
            assert!(
                has(&text, PiiType::PhoneNumber, phone),
                "{phone}: {:?}",
                kinds(&text)
            );
        }
        assert!(kinds("score +3 (2) points").is_empty());
        assert!(has(
            "my ssn is 078.05.1123 ok",
            PiiType::UsSsn,
            "078.05.1123"
        ));
        let dashed = "DE89-3704-0044-0532-0130-00";
        assert!(has(
            &format!("IBAN {dashed} please"),
            PiiType::IbanCode,
            dashed
        ));
        let libya = "LY83002048000020100120361";
        assert!(has(
            &format!("IBAN {libya} please"),
            PiiType::IbanCode,
            libya
        ));
        let puny = "bob@xn--80ak6aa92e.xn--p1ai";
        assert!(has(
            &format!("mail {puny} now"),
            PiiType::EmailAddress,
            puny
        ));
    }

    #[test]
    fn every_secret_name_passes_the_quick_tail_test() {
        for name in SECRET_NAMES {
            assert!(
                ends_like_a_secret_name(&name[name.len() - 3..]),
                "{:?}",
                String::from_utf8_lossy(name)
            );
        }
    }

    #[test]
    fn secrets_assigned_to_secret_names() {
        for (text, value) in [
            ("client_secret = \"Zr8vQ2mX9pL4kT7w\"", "Zr8vQ2mX9pL4kT7w"),
            ("DB_PASSWORD=h7Gq2Lx9Vw4Pz", "h7Gq2Lx9Vw4Pz"),
            ("passwd: s3cR3t-Pa55w0rd!", "s3cR3t-Pa55w0rd!"),
            (
                "{\"api_token\": \"a81f2c9e77b04d0e9f3c\"}",
                "a81f2c9e77b04d0e9f3c",
            ),
            (
                "$config['api_key'] => 'q8Rk2mZp7Lw4Nx9T';",
                "q8Rk2mZp7Lw4Nx9T",
            ),
        ] {
            assert!(
                has(text, PiiType::ApiKey, value),
                "{text}: {:?}",
                kinds(text)
            );
        }
        for text in [
            "password = \"changeme123\"",
            "client_secret = \"${CLIENT_SECRET}\"",
            "api_key: <your-api-key-1>",
            "token: xxxxxxxx1234",
            "password: hunter",
            "password_hint = 1234",
            "\"max_tokens\": 4096",
            "tokens: 12 used of 4000",
            "the secret: we meet at 10",
        ] {
            assert!(lacks(text, PiiType::ApiKey), "{text}: {:?}", kinds(text));
        }
    }

    #[test]
    fn three_cards_in_a_row_are_three() {
        for sep in [" ", ", ", "\n", "; "] {
            for cards in [
                ["4111111111111111", "5500000000000004", "340000000000009"],
                ["4012888888881881", "4012888888881881", "4012888888881881"],
                [
                    "4111 1111 1111 1111",
                    "5500 0000 0000 0004",
                    "3400 000000 00009",
                ],
            ] {
                let text = format!("cards {}", cards.join(sep));
                let found: Vec<_> = kinds(&text)
                    .into_iter()
                    .filter(|(k, _)| *k == PiiType::CreditCard)
                    .collect();
                assert_eq!(found.len(), 3, "{text:?}: {found:?}");
            }
        }
    }

    #[test]
    fn jwts_with_pretty_printed_headers() {
        use base64::Engine as _;
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        for header in [
            "{\n  \"alg\": \"HS256\"\n}",
            "{\r\n\"alg\":\"RS256\"}",
            "{ \"alg\": \"none\" }",
        ] {
            let jwt = format!("{}.{}.c2lnbmF0dXJl", b64(header), b64("{\"sub\":\"42\"}"));
            assert!(
                has(&format!("Bearer {jwt}"), PiiType::Jwt, &jwt),
                "{header:?}"
            );
        }
        // base64 of other pretty-printed JSON is no token.
        let not = format!("{}.{}.c2ln", b64("{\n  \"a\": 1\n}"), b64("{}"));
        assert!(lacks(&not, PiiType::Jwt));
    }

    #[test]
    fn more_secret_families() {
        // Stripe secret and restricted keys; not publishable ones, not `task_test_`.
        for key in [
            "sk_live_51HqLyjWDarjtT1zdp7dcXWyhp",
            "rk_live_4eC39HqLyjWDarjtT1zdp7dc",
            "sk_test_51OuEMLAlTWGaDypq4P5cuDHbuKeG4tAGPYHJpEXQ7zE8mKK3jkhTFPvCxnSSK5zB5EQZrJsYd",
        ] {
            assert!(
                has(&format!("STRIPE_KEY=\"{key}\""), PiiType::ApiKey, key),
                "{key}"
            );
        }
        assert!(kinds("pk_live_51HqLyjWDarjtT1zdp7dcXWyhp").is_empty());
        assert!(kinds("nonMatchingToken := \"task_test_51HqLyjWDarjtT1zdp7dcXWyhp\"").is_empty());
        assert!(kinds("sk_live_aaaaaaaaaaaaaaaaaaaaaaaa").is_empty());
        // Google API keys.
        let g = "AIzaSyDaGmWKa4JsXZ-HjGw7ISLn_3namBGewQe";
        assert!(has(&format!("key={g}&q=1"), PiiType::ApiKey, g));
        assert!(kinds("AIzaSyDaGmWKa4JsXZ-HjGw7IS").is_empty());
        // Slack webhooks, app tokens, refresh tokens.
        let hook =
            "https://hooks.slack.com/services/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";
        assert!(has(&format!("url: {hook}\n"), PiiType::SlackToken, hook));
        assert!(kinds("see https://hooks.slack.com/services/ for docs").is_empty());
        let app =
            "xapp-1-A0123BCDEFG-1234567890123-0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f6071";
        assert!(has(app, PiiType::SlackToken, app));
        let refresh = "xoxe.xoxp-1-Mi0yLTExNzcwODE3MTIzLTExNzcwODE3NjU1LTExOTE0OTc4ODY3ODctOTQ0";
        assert!(has(refresh, PiiType::SlackToken, refresh));
        // Older AWS key forms.
        for key in ["ABIAZ4X7QPLM2NB8KD5R", "ACCAZ4X7QPLM2NB8KD5R"] {
            assert!(
                has(&format!("id={key}"), PiiType::AwsAccessKey, key),
                "{key}"
            );
        }
        // PGP private key blocks; placeholders are not keys.
        let pgp = "-----BEGIN PGP PRIVATE KEY BLOCK-----\n\nlQOYBF8Qx2sBCADHk1tYzN3Qw9v0rP7aL5mE2sJ8kT4uB6nC1oD3fG9hI0jK7lM2\nnO4pQ6rS8tU0vW2xY4zA6bC8dE0fG2hI4jK6lM8nO0pQ2rS4tU6vW8xY0zA2bC4d\n-----END PGP PRIVATE KEY BLOCK-----";
        assert!(has(pgp, PiiType::PrivateKey, pgp));
        for dummy in [
            "-----BEGIN PRIVATE KEY-----\n...\n-----END PRIVATE KEY-----",
            "-----BEGIN RSA PRIVATE KEY-----\nXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX\n-----END RSA PRIVATE KEY-----",
            "-----BEGIN OPENSSH PRIVATE KEY-----\n<your key here>\n-----END OPENSSH PRIVATE KEY-----",
        ] {
            assert!(kinds(dummy).is_empty(), "{dummy}");
        }
    }
}
