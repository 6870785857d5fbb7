//! Person names in running text: a given name from the lists of the
//! countries a contact center serves, with a surname or a cue beside it.
//!
//! The lists (`data/`, sources and licences in `data/README.md`) are the
//! given names common in GB, IE, US, IT, PT, ES, FR, BE, NL, DE, AT, CH and
//! IN, and the US census surnames that cover 85% of the population (most
//! European and Indian family names among them). A name is reported when:
//! - a given name is followed by a capitalised word (a middle initial
//!   between): `Maria Lopez`, `John Q. Public`; more surely when that word
//!   is a known surname;
//! - a given name that is also a common word (Will, May, Grant, Rose...)
//!   is followed by a known surname: `Grant Miller`;
//! - a given name stands alone after a cue (`hi Maria`, `this is Maria`,
//!   `speaking with`, `thanks,`) or before one (`Maria here`), or as a
//!   speaker label at the start of a line (`Maria: hello`);
//! - written `Lopez, Maria` or in capitals `MARIA LOPEZ` (both known).

use std::sync::OnceLock;

use crate::bytemask;
use crate::scan::Candidate;
use crate::types::PiiType;

/// A set of names with a fast, fixed hasher: a lookup per capitalised word
/// is on the scan's hot path, where SipHash cost a few percent.
type HashSet<T> = std::collections::HashSet<T, foldhash::fast::FixedState>;

/// The name lists, read once.
struct Lists {
    first: HashSet<&'static str>,
    last: HashSet<&'static str>,
    ambiguous: HashSet<&'static str>,
    not_surnames: HashSet<&'static str>,
}

fn lists() -> &'static Lists {
    static LISTS: OnceLock<Lists> = OnceLock::new();
    LISTS.get_or_init(|| Lists {
        first: include_str!("../data/first_names.txt").lines().collect(),
        last: include_str!("../data/surnames.txt").lines().collect(),
        ambiguous: AMBIGUOUS.iter().copied().collect(),
        not_surnames: NOT_SURNAMES.iter().copied().collect(),
    })
}

/// Given names that are more often ordinary words, places or months: only
/// with a known surname after them, or a cue.
const AMBIGUOUS: &[&str] = &[
    "amber",
    "an",
    "angel",
    "april",
    "august",
    "austin",
    "bill",
    "carol",
    "chase",
    "chelsea",
    "crystal",
    "daisy",
    "dale",
    "dallas",
    "dawn",
    "dean",
    "destiny",
    "don",
    "earl",
    "ernest",
    "faith",
    "florence",
    "frank",
    "gene",
    "georgia",
    "glen",
    "grace",
    "grant",
    "guy",
    "hazel",
    "heather",
    "holly",
    "hope",
    "hunter",
    "iris",
    "jordan",
    "joy",
    "june",
    "lance",
    "lee",
    "lily",
    "madison",
    "major",
    "mark",
    "max",
    "may",
    "neil",
    "norman",
    "olive",
    "pat",
    "pearl",
    "penny",
    "ray",
    "robin",
    "rose",
    "ruby",
    "sandy",
    "scott",
    "shelby",
    "sol",
    "spencer",
    "sue",
    "summer",
    "sydney",
    "victoria",
    "violet",
    "virginia",
    "wade",
    "ward",
    "warren",
    "will",
    "paris",
    "india",
    "china",
    "lane",
    "sky",
    "river",
    "art",
    "star",
    "miles",
    "price",
    "young",
    "king",
    "page",
    "case",
    "else",
    "van",
    "von",
    "del",
    "della",
    "dino",
    "gay",
    "long",
    "son",
    "sun",
    "lord",
    "christian",
    "marina",
    "mercedes",
    "jean",
    "ken",
    "kim",
    "tom",
    "ali",
    "andrea",
    "ha",
    "la",
    "le",
    "de",
    "da",
    "di",
    "do",
    "du",
    "el",
    "al",
    "ma",
    "mi",
    "mo",
    "my",
    "no",
    "so",
    "to",
];

/// Capitalised words that follow a given name without being a surname.
const NOT_SURNAMES: &[&str] = &[
    "the",
    "and",
    "or",
    "but",
    "if",
    "i",
    "in",
    "on",
    "at",
    "to",
    "is",
    "was",
    "are",
    "were",
    "will",
    "can",
    "could",
    "would",
    "should",
    "has",
    "have",
    "had",
    "from",
    "for",
    "with",
    "by",
    "of",
    "as",
    "this",
    "that",
    "these",
    "those",
    "it",
    "he",
    "she",
    "we",
    "they",
    "you",
    "his",
    "her",
    "our",
    "your",
    "their",
    "a",
    "an",
    "hi",
    "hello",
    "thanks",
    "thank",
    "yes",
    "no",
    "ok",
    "okay",
    "please",
    "dear",
    "mr",
    "mrs",
    "ms",
    "dr",
    "street",
    "st",
    "avenue",
    "ave",
    "road",
    "rd",
    "lane",
    "drive",
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
    "agent",
    "customer",
    "support",
    "team",
    "account",
    "card",
    "bank",
    "inc",
    "ltd",
    "llc",
    "corp",
    "company",
    "group",
    "api",
    "id",
];

/// Words shortly before a lone given name that make it one.
const CUES_BEFORE: &[&str] = &[
    "hi ",
    "hello ",
    "hey ",
    "dear ",
    "thanks ",
    "thanks, ",
    "thank you ",
    "thank you, ",
    "this is ",
    "name is ",
    "i'm ",
    "i am ",
    "speaking with ",
    "speaking to ",
    "talking to ",
    "talked to ",
    "spoke with ",
    "spoke to ",
    "ask for ",
    "transfer to ",
    "regards, ",
    "regards,\n",
    "cheers, ",
    "cheers,\n",
    "best, ",
    "best,\n",
    "sincerely, ",
    "sincerely,\n",
    "agent (",
    "customer (",
    "caller ",
    "named ",
    "called ",
];

/// The longest given name or surname looked up.
const MAX_WORD: usize = 24;

/// Appends a candidate for each person name found in running text.
pub fn running_text(text: &[u8], out: &mut Vec<Candidate>) {
    let lists = lists();
    let mut next = 0;
    // Bit 63 of the previous block's letters: whether its last byte was one.
    let mut carry = 0u64;
    for (base, chunk) in (0..text.len())
        .step_by(bytemask::BLOCK)
        .map(|b| (b, &text[b..(b + bytemask::BLOCK).min(text.len())]))
    {
        let upper = bytemask::in_range(chunk, b'A', b'Z');
        let letters = upper | bytemask::in_range(chunk, b'a', b'z');
        // Capitals that start a word: no ASCII letter just before (the
        // other word bytes are checked one by one below).
        let mut starts = upper & !((letters << 1) | carry);
        carry = letters >> 63;
        while starts != 0 {
            let i = base + starts.trailing_zeros() as usize;
            starts &= starts - 1;
            if i < next || (i > 0 && is_word(text[i - 1])) {
                continue;
            }
            // The word's end from the mask when it ends in this block on a
            // byte that is no word byte (the common case).
            let bit = i - base;
            let run = (!(letters >> bit)).trailing_zeros() as usize;
            let e = i + run;
            let e1 = if bit + run < chunk.len() && !is_word(text[e]) {
                (2..=MAX_WORD).contains(&run).then_some(e)
            } else {
                word_end(text, i)
            };
            let Some(e1) = e1 else { continue };
            if let Some(end) = at_word(lists, text, i, e1, out) {
                next = end;
            }
        }
    }
}

/// Bytes of a word: letters (any script's, as UTF-8), apostrophes, hyphens.
fn is_word(c: u8) -> bool {
    c.is_ascii_alphabetic() || c >= 0x80 || c == b'\'' || c == b'-'
}

/// A word's lower-case form: ASCII in place, anything else through
/// `str::to_lowercase`.
enum Lower {
    Ascii([u8; MAX_WORD], usize),
    Other(String),
}

impl Lower {
    fn as_str(&self) -> &str {
        match self {
            // SAFETY-free: ASCII bytes are UTF-8.
            Lower::Ascii(b, n) => std::str::from_utf8(&b[..*n]).unwrap_or_default(),
            Lower::Other(s) => s,
        }
    }
}

/// Where the word starting at `i` ends (at the first byte that is no
/// letter; an apostrophe or hyphen inside is kept).
fn word_end(text: &[u8], i: usize) -> Option<usize> {
    let mut e = i;
    while e < text.len() && is_word(text[e]) && e - i <= MAX_WORD {
        e += 1;
    }
    while e > i && matches!(text[e - 1], b'\'' | b'-') {
        e -= 1;
    }
    (2..=MAX_WORD).contains(&(e - i)).then_some(e)
}

/// The lower-case form of `text[i..e]`.
fn lower(text: &[u8], i: usize, e: usize) -> Option<Lower> {
    let w = &text[i..e];
    if w.is_ascii() {
        let mut b = [0u8; MAX_WORD];
        for (d, s) in b.iter_mut().zip(w) {
            *d = s.to_ascii_lowercase();
        }
        return Some(Lower::Ascii(b, w.len()));
    }
    Some(Lower::Other(std::str::from_utf8(w).ok()?.to_lowercase()))
}

/// The word starting at `i` and its lower-case form.
fn word(text: &[u8], i: usize) -> Option<(usize, Lower)> {
    let e = word_end(text, i)?;
    Some((e, lower(text, i, e)?))
}

/// The last word of each cue in [`CUES_BEFORE`]: a lone name is checked
/// against the cues only when the word before it is one of these.
const CUE_ENDS: &[&[u8]] = &[
    b"hi",
    b"hello",
    b"hey",
    b"dear",
    b"thanks",
    b"you",
    b"is",
    b"i'm",
    b"am",
    b"with",
    b"to",
    b"for",
    b"regards",
    b"cheers",
    b"best",
    b"sincerely",
    b"agent",
    b"customer",
    b"caller",
    b"named",
    b"called",
];

/// Whether a cue ends just before `i`.
fn cued_before(text: &[u8], i: usize) -> bool {
    // The word before: skip the separator (` `, `, `, `,\n`, ` (`).
    let mut k = i;
    while k > 0 && matches!(text[k - 1], b' ' | b',' | b'\n' | b'(') && i - k < 3 {
        k -= 1;
    }
    let mut s = k;
    while s > 0 && (text[s - 1].is_ascii_alphabetic() || text[s - 1] == b'\'') && k - s < 10 {
        s -= 1;
    }
    if s == k || k - s > 9 {
        return false;
    }
    let mut w = [0u8; 9];
    for (d, c) in w.iter_mut().zip(&text[s..k]) {
        *d = c.to_ascii_lowercase();
    }
    if !CUE_ENDS.contains(&&w[..k - s]) {
        return false;
    }
    let before = &text[i.saturating_sub(16)..i];
    CUES_BEFORE.iter().any(|c| {
        before.len() >= c.len()
            && before[before.len() - c.len()..].eq_ignore_ascii_case(c.as_bytes())
    })
}

/// Whether `w` (as written) is capitalised: an upper-case first letter.
fn capitalised(text: &[u8], i: usize) -> bool {
    text.get(i).is_some_and(u8::is_ascii_uppercase)
}

/// Looks for a name starting with the capitalised word `text[i..e1]`; returns
/// where the match ends when one was pushed.
fn at_word(
    lists: &Lists,
    text: &[u8],
    i: usize,
    e1: usize,
    out: &mut Vec<Candidate>,
) -> Option<usize> {
    // Glued to digits or an underscore: an identifier.
    if text
        .get(e1)
        .is_some_and(|&c| c.is_ascii_digit() || c == b'_')
    {
        return None;
    }
    // What could make it a name, from the bytes around it alone: most
    // capitalised words start a sentence and have none of these.
    let rest = &text[e1..];
    let next_cap = rest.first() == Some(&b' ') && rest.get(1).is_some_and(u8::is_ascii_uppercase);
    let comma_then_cap = rest.starts_with(b", ") && rest.get(2).is_some_and(u8::is_ascii_uppercase);
    let label = rest.starts_with(b": ") && (i == 0 || text[i - 1] == b'\n');
    let here = rest.starts_with(b" here");
    if !(next_cap || comma_then_cap || label || here || cued_before(text, i)) {
        return None;
    }
    let w1 = lower(text, i, e1)?;
    let all_caps = text[i..e1].iter().all(|c| !c.is_ascii_lowercase());
    let is_first = lists.first.contains(w1.as_str());
    if !is_first && !comma_then_cap {
        return None;
    }
    let ambiguous = is_first && lists.ambiguous.contains(w1.as_str());
    // `Lopez, Maria`.
    if !is_first && comma_then_cap && lists.last.contains(w1.as_str()) {
        let j = e1 + 2;
        if capitalised(text, j) {
            if let Some((e2, w2)) = word(text, j) {
                if lists.first.contains(w2.as_str()) && !lists.ambiguous.contains(w2.as_str()) {
                    out.push(Candidate::new(PiiType::Person, i, e2, 0.75));
                    return Some(e2);
                }
            }
        }
    }
    if !is_first {
        return None;
    }
    // What follows: a middle initial (`Q.`, `Q`), then a capitalised word.
    let mut j = e1;
    if text.get(j) == Some(&b' ')
        && text.get(j + 1).is_some_and(u8::is_ascii_uppercase)
        && matches!(text.get(j + 2), Some(b'.' | b' '))
    {
        j += if text.get(j + 2) == Some(&b'.') { 3 } else { 2 };
    }
    if text.get(j) == Some(&b' ') && capitalised(text, j + 1) {
        if let Some((e2, w2)) = word(text, j + 1) {
            let caps2 = text[j + 1..e2].iter().all(|c| !c.is_ascii_lowercase());
            let known = lists.last.contains(w2.as_str());
            let plain = !lists.not_surnames.contains(w2.as_str());
            // In capitals, both must be known: headings are capitals too.
            let score = match (all_caps || caps2, ambiguous, known, plain) {
                (true, false, true, true) if all_caps && caps2 => Some(0.75),
                (true, _, _, _) => None,
                (false, false, true, true) => Some(0.85),
                (false, false, false, true) => Some(0.7),
                (false, true, true, true) => Some(0.7),
                _ => None,
            };
            if let Some(score) = score {
                out.push(Candidate::new(PiiType::Person, i, e2, score));
                return Some(e2);
            }
        }
    }
    if all_caps {
        return None;
    }
    // A lone given name: a cue before, `here` after, or a speaker label.
    let before = &text[i.saturating_sub(16)..i];
    let cued = CUES_BEFORE.iter().any(|c| {
        before.len() >= c.len()
            && before[before.len() - c.len()..].eq_ignore_ascii_case(c.as_bytes())
    }) || text[e1..].starts_with(b" here")
        || (text[e1..].starts_with(b": ") && (i == 0 || text[i - 1] == b'\n'));
    if cued {
        out.push(Candidate::new(PiiType::Person, i, e1, 0.7));
        return Some(e1);
    }
    None
}

/// A given name in lower case right after `name is` or `name's` (`my
/// name is maria lopez`): chat is often written without capitals. The
/// name must be a known given name that is not also a common word; a
/// known surname after it is taken too.
pub fn lower_case_after_cue(text: &[u8], at: usize, out: &mut Vec<Candidate>) {
    lower_case_name(text, at, Cue::Strong, out);
}

/// Lower-case names after the weaker cues `i'm` and `it's` (`hi, i'm
/// sarah, calling about...`), found from their apostrophes (one `memchr`
/// pass: in the scan's literal pass these cues would cost it its fast
/// search). `i'm sorry` outnumbers `i'm sarah`, so the name must also
/// end a clause or have a known surname after it.
pub fn lower_case_after_apostrophe(text: &[u8], out: &mut Vec<Candidate>) {
    // `'` or the last byte of `’` (E2 80 99).
    for p in memchr::memchr2_iter(b'\'', 0x99, text) {
        let quote = if text[p] == b'\'' {
            p
        } else if p >= 2 && text[p - 2..p] == [0xE2, 0x80] {
            p - 2
        } else {
            continue;
        };
        // `i'm ` or `it's `, the cue a word of its own.
        let mut s = quote;
        while s > 0 && text[s - 1].is_ascii_alphabetic() && quote - s < 3 {
            s -= 1;
        }
        if s > 0 && is_word(text[s - 1]) {
            continue;
        }
        let cue = &text[s..quote];
        let after = &text[p + 1..];
        let at = p + 3;
        let fits = (cue.eq_ignore_ascii_case(b"i") && after.starts_with(b"m "))
            || (cue.eq_ignore_ascii_case(b"it") && after.starts_with(b"s "));
        if fits {
            lower_case_name(text, at, Cue::Weak, out);
        }
    }
}

/// How much a cue before a lower-case name says.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Cue {
    /// `name is`: a known given name alone will do.
    Strong,
    /// `i'm`, `it's`: a given name must end a clause or be followed by a
    /// known surname.
    Weak,
}

/// A lower-case given name at `at` (and a known surname after it), as
/// [`lower_case_after_cue`] and [`lower_case_after_apostrophe`] take it.
fn lower_case_name(text: &[u8], at: usize, cue: Cue, out: &mut Vec<Candidate>) {
    if !text.get(at).is_some_and(u8::is_ascii_lowercase) {
        return;
    }
    let lists = lists();
    let Some((e1, w1)) = word(text, at) else {
        return;
    };
    if !lists.first.contains(w1.as_str()) || lists.ambiguous.contains(w1.as_str()) {
        return;
    }
    // A lower-case surname after it.
    if text.get(e1) == Some(&b' ') && text.get(e1 + 1).is_some_and(u8::is_ascii_lowercase) {
        if let Some((e2, w2)) = word(text, e1 + 1) {
            if lists.last.contains(w2.as_str()) && !lists.not_surnames.contains(w2.as_str()) {
                out.push(Candidate::new(PiiType::Person, at, e2, 0.75));
                return;
            }
        }
    }
    let clause_ends = match text.get(e1) {
        None => true,
        Some(&c) => matches!(c, b',' | b'.' | b'!' | b'?' | b'\n' | b';' | b')' | b'"'),
    } || [&b" here"[..], b" from ", b" and ", b" calling"]
        .iter()
        .any(|w| text[e1..].starts_with(w));
    if cue == Cue::Strong || clause_ends {
        out.push(Candidate::new(PiiType::Person, at, e1, 0.7));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(text: &str) -> Vec<&str> {
        let mut out = Vec::new();
        running_text(text.as_bytes(), &mut out);
        out.iter().map(|c| &text[c.start..c.end]).collect()
    }

    #[test]
    fn lower_case_names_after_name_is() {
        let found = |text: &str| {
            let mut out = Vec::new();
            crate::scan::Scanner::shared().scan(text.as_bytes(), &mut out);
            out.iter()
                .filter(|c| c.kind == Some(PiiType::Person) && c.score >= 0.5)
                .map(|c| text[c.start..c.end].to_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(found("hi my name is maria lopez"), ["maria lopez"]);
        assert_eq!(found("my name's jessica and i need help"), ["jessica"]);
        assert_eq!(found("the account name is priya"), ["priya"]);
        // Words, and names that are also words, are not names.
        for text in [
            "my name is not on the account",
            "the name is will",
            "the name is wrong",
            "i'm sorry to hear that",
        ] {
            assert!(found(text).is_empty(), "{text}: {:?}", found(text));
        }
    }

    #[test]
    fn lower_case_names_after_i_am_and_it_is() {
        let found = |text: &str| {
            let mut out = Vec::new();
            lower_case_after_apostrophe(text.as_bytes(), &mut out);
            out.iter()
                .map(|c| text[c.start..c.end].to_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(found("hi, i'm sarah, calling about my card"), ["sarah"]);
        assert_eq!(found("hey it's priya here"), ["priya"]);
        assert_eq!(
            found("I’m maria lopez and my card was declined"),
            ["maria lopez"]
        );
        assert_eq!(found("hello it's daniel"), ["daniel"]);
        // A name that does not end its clause, words, names that are also
        // words, and cues inside other words are not names.
        for text in [
            "i'm sarah's manager",
            "i'm sorry to hear that",
            "it's will be fine",
            "it's may already",
            "i'm maria trying to help",
            "quit's sarah,",
            "ai'm sarah.",
            "it'll be sarah.",
        ] {
            assert!(found(text).is_empty(), "{text}: {:?}", found(text));
        }
    }

    #[test]
    fn names_in_running_text() {
        for (text, name) in [
            ("I spoke to Maria Lopez about the refund", "Maria Lopez"),
            ("customer John Q. Public called", "John Q. Public"),
            ("hi Priya, your card is on its way", "Priya"),
            ("thanks, Siobhan", "Siobhan"),
            ("this is Jürgen from billing", "Jürgen"),
            ("Rahul here, calling about my bill", "Rahul"),
            ("Maria: my card was charged twice", "Maria"),
            ("account holder: Lopez, Maria", "Lopez, Maria"),
            ("NAME ON CARD: MARIA LOPEZ", "MARIA LOPEZ"),
            ("Grant Miller asked for a callback", "Grant Miller"),
            ("forwarded to Giulia Rossi in Milan", "Giulia Rossi"),
        ] {
            assert!(names(text).contains(&name), "{text}: {:?}", names(text));
        }
    }

    #[test]
    fn words_that_are_also_names_are_not_names_alone() {
        for text in [
            "Will you send the statement?",
            "May I have your account number",
            "Grant access to the billing folder",
            "Mark the ticket as resolved",
            "The Refund Policy applies",
            "Frank discussion with the team",
            "PLEASE CALL BACK",
            "Maria",
            "Thomas The Tank",
        ] {
            assert!(names(text).is_empty(), "{text}: {:?}", names(text));
        }
    }
}
