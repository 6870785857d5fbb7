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

use std::cell::OnceCell;
use std::sync::OnceLock;

use crate::bytemask;
use crate::scan::Candidate;
use crate::types::PiiType;

/// A set of names with a fast, fixed hasher: a lookup per capitalised word
/// is on the scan's hot path, where SipHash cost a few percent.
type HashSet<T> = std::collections::HashSet<T, foldhash::fast::FixedState>;

/// The name lists, read once.
struct Lists {
    first: HashSet<&'static [u8]>,
    last: HashSet<&'static [u8]>,
    ambiguous: HashSet<&'static [u8]>,
    not_surnames: HashSet<&'static [u8]>,
}

impl Lists {
    /// A known surname that is not more often a word (`Price`, `Young`).
    fn plain_surname(&self, w: &[u8]) -> bool {
        self.last.contains(w) && !self.not_surnames.contains(w)
    }
}

/// The name lists, once read.
static LISTS: OnceLock<Lists> = OnceLock::new();

/// Whether the name lists are read already.
pub(crate) fn loaded() -> bool {
    LISTS.get().is_some()
}

/// Reads the name lists now, not at the first scan that needs them.
pub(crate) fn load() {
    lists();
}

fn lists() -> &'static Lists {
    LISTS.get_or_init(|| Lists {
        first: set_of_lines(include_str!("../data/first_names.txt")),
        last: set_of_lines(include_str!("../data/surnames.txt")),
        ambiguous: AMBIGUOUS.iter().map(|w| w.as_bytes()).collect(),
        not_surnames: NOT_SURNAMES.iter().map(|w| w.as_bytes()).collect(),
    })
}

/// The lines of a list as a set, sized once (growing it rehashes every
/// name again: a third of the time the lists take to read).
fn set_of_lines(list: &'static str) -> HashSet<&'static [u8]> {
    let mut set = HashSet::with_capacity_and_hasher(
        list.bytes().filter(|&b| b == b'\n').count() + 1,
        Default::default(),
    );
    // Split on `\n` a word at a time (`str::lines` seeks each line's end a
    // character at a time): the lists have no `\r`.
    let list = list.as_bytes();
    let mut start = 0;
    for end in memchr::memchr_iter(b'\n', list) {
        set.insert(&list[start..end]);
        start = end + 1;
    }
    if start < list.len() {
        set.insert(&list[start..]);
    }
    set
}

/// Given names that are more often ordinary words, places or months: only
/// with a known surname after them, or a cue.
const AMBIGUOUS: &[&str] = &[
    // Places first: a vocative or a possessive (`Lyon, France.`,
    // `Georgia's tax rules`) makes them no name.
    "france",
    "florence",
    "georgia",
    "jordan",
    "kent",
    "madison",
    "dallas",
    "israel",
    "adelaide",
    "regina",
    "charlotte",
    "lourdes",
    "orlando",
    "santiago",
    "dakota",
    "brooklyn",
    "chester",
    "troy",
    "milan",
    "siena",
    // `Co. Cork`: a county (or a company), not the given name.
    "co",
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
    "garden",
    "gardens",
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
    "good morning ",
    "good afternoon ",
    "good evening ",
    "morning ",
    "afternoon ",
    "evening ",
    "customer ",
    "agent ",
    "supervisor ",
    "manager ",
    "colleague ",
    "identified as ",
    "shout out to ",
    "shoutout to ",
    // Greetings and thanks in the other languages served.
    "hola ",
    "gracias ",
    "gracias, ",
    "bonjour ",
    "merci ",
    "merci, ",
    "salut ",
    "hallo ",
    "danke ",
    "danke, ",
    "ciao ",
    "buongiorno ",
    "grazie ",
    "grazie, ",
    // Family: `my sister Aoife has the card`.
    "sister ",
    "brother ",
    "husband ",
    "wife ",
    "son ",
    "daughter ",
    "mother ",
    "father ",
    "mum ",
    "mom ",
    "dad ",
    "naam is ",
    "name ist ",
    "m'appelle ",
    "me llamo ",
    "soy ",
    "mi chiamo ",
    "sono ",
];

/// The longest given name or surname looked up.
const MAX_WORD: usize = 24;

/// Appends a candidate for each person name found in running text.
pub fn running_text(text: &[u8], out: &mut Vec<Candidate>) {
    let lists = lists();
    let mut next = 0;
    // Bit 63 of the previous block's letters (ASCII, or any byte of a
    // non-ASCII character): whether its last byte was one.
    let (mut carry, mut carry_any) = (0u64, 0u64);
    // Whether any capital can be a non-ASCII one, asked once (much
    // cheaper than a block at a time).
    let all_ascii = text.is_ascii();
    let blocks = bytemask::Blocks::new(text);
    for base in (0..text.len()).step_by(bytemask::BLOCK) {
        let upper = blocks.in_range(base, b'A', b'Z');
        let letters = upper | blocks.in_range(base, b'a', b'z');
        let len = (text.len() - base).min(bytemask::BLOCK);
        let high = if all_ascii {
            0
        } else {
            !blocks.in_range(base, 0, 0x7F) & (u64::MAX >> (bytemask::BLOCK - len))
        };
        // Capitals that start a word: no ASCII letter just before (the
        // other word bytes are checked one by one below); and non-ASCII
        // characters that start one, upper case or not (decoded below).
        let mut starts =
            upper & !((letters << 1) | carry) | high & !(((letters | high) << 1) | carry_any);
        carry = letters >> 63;
        carry_any = (letters | high) >> 63;
        while starts != 0 {
            let i = base + starts.trailing_zeros() as usize;
            starts &= starts - 1;
            if i < next
                || (i > 0 && is_word(text[i - 1]))
                || (!text[i].is_ascii() && !upper_case_at(text, i))
            {
                continue;
            }
            // The word's end from the mask when it ends in this block on a
            // byte that is no word byte (the common case).
            let bit = i - base;
            let run = (!(letters >> bit)).trailing_zeros() as usize;
            let e = i + run;
            let e1 = if bit + run < len && !is_word(text[e]) {
                (2..=MAX_WORD).contains(&run).then_some(e)
            } else {
                word_end(text, i)
            };
            let Some(e1) = e1 else {
                if run == 1 {
                    if let Some(end) = initials(lists, text, i, out) {
                        next = end;
                    }
                }
                continue;
            };
            if let Some(end) = at_word(lists, text, i, e1, out) {
                next = end;
            }
        }
    }
}

/// `J. R. Halvorsen`: two initials (a capital and a full stop each), then
/// a known surname; returns where it ends. One initial before a surname
/// is too often a sentence's end (`plan B. Moore said`).
fn initials(lists: &Lists, text: &[u8], i: usize, out: &mut Vec<Candidate>) -> Option<usize> {
    let initial = |at: usize| {
        text.get(at).is_some_and(u8::is_ascii_uppercase)
            && text.get(at + 1..at + 3) == Some(b". ".as_slice())
    };
    if !(initial(i) && initial(i + 3)) {
        return None;
    }
    let s = i + 6;
    // The surname's capital may be any script's (`Á`).
    if s >= text.len() || !upper_case_at(text, s) {
        return None;
    }
    let e = word_end(text, s)?;
    if text.get(e).is_some_and(u8::is_ascii_alphanumeric) {
        return None;
    }
    let w = lower(text, s, e)?;
    let w = w.as_bytes();
    if !lists.plain_surname(w) {
        return None;
    }
    out.push(Candidate::new(PiiType::Person, i, e, 0.7));
    Some(e)
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
    /// The bytes, as the name sets hold them (no UTF-8 check: the sets
    /// are looked up on the hot path).
    fn as_bytes(&self) -> &[u8] {
        match self {
            Lower::Ascii(b, n) => &b[..*n],
            Lower::Other(s) => s.as_bytes(),
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
fn is_cue_end(w: &[u8]) -> bool {
    matches!(
        w,
        b"hi"
            | b"hello"
            | b"hey"
            | b"dear"
            | b"thanks"
            | b"you"
            | b"is"
            | b"i'm"
            | b"am"
            | b"with"
            | b"to"
            | b"for"
            | b"regards"
            | b"cheers"
            | b"best"
            | b"sincerely"
            | b"agent"
            | b"customer"
            | b"caller"
            | b"named"
            | b"called"
            | b"morning"
            | b"afternoon"
            | b"evening"
            | b"supervisor"
            | b"manager"
            | b"colleague"
            | b"as"
            | b"ist"
            | b"m'appelle"
            | b"llamo"
            | b"soy"
            | b"chiamo"
            | b"sono"
            | b"hola"
            | b"gracias"
            | b"bonjour"
            | b"merci"
            | b"salut"
            | b"hallo"
            | b"danke"
            | b"ciao"
            | b"buongiorno"
            | b"grazie"
            | b"sister"
            | b"brother"
            | b"husband"
            | b"wife"
            | b"son"
            | b"daughter"
            | b"mother"
            | b"father"
            | b"mum"
            | b"mom"
            | b"dad"
    )
}

/// Whether a cue ends just before `i`.
fn cued_before(text: &[u8], i: usize) -> bool {
    // The word before: skip the separator (` `, `, `, `,\n`, ` (`).
    let mut k = i;
    while k > 0 && matches!(text[k - 1], b' ' | b',' | b'\n' | b'(') && i - k < 3 {
        k -= 1;
    }
    let mut s = k;
    while s > 0 && (text[s - 1].is_ascii_alphabetic() || text[s - 1] == b'\'') && k - s < 11 {
        s -= 1;
    }
    if s == k || k - s > 10 {
        return false;
    }
    let mut w = [0u8; 10];
    for (d, c) in w.iter_mut().zip(&text[s..k]) {
        *d = c.to_ascii_lowercase();
    }
    if !is_cue_end(&w[..k - s]) {
        return false;
    }
    let before = &text[i.saturating_sub(16)..i];
    CUES_BEFORE
        .iter()
        .any(|c| ends_with_ignore_case(before, c.as_bytes()))
}

/// Whether `text` ends with `suffix`, ASCII case aside.
fn ends_with_ignore_case(text: &[u8], suffix: &[u8]) -> bool {
    text.len() >= suffix.len() && text[text.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
}

/// Whether the word `w` is written in capitals (`MÜLLER`; not `Lê`).
fn in_capitals(w: &[u8]) -> bool {
    if w.is_ascii() {
        return !w.iter().any(u8::is_ascii_lowercase);
    }
    !String::from_utf8_lossy(w).chars().any(char::is_lowercase)
}

/// Whether the word at `i` is capitalised: an upper-case first letter,
/// ASCII or not (`Élodie`, `Łukasz`).
fn capitalised(text: &[u8], i: usize) -> bool {
    match text.get(i) {
        Some(c) if c.is_ascii() => c.is_ascii_uppercase(),
        Some(_) => upper_case_at(text, i),
        None => false,
    }
}

/// Whether a non-ASCII upper-case letter starts at `i`.
fn upper_case_at(text: &[u8], i: usize) -> bool {
    let tail = &text[i..text.len().min(i + 4)];
    let valid = match std::str::from_utf8(tail) {
        Ok(s) => s,
        Err(e) => std::str::from_utf8(&tail[..e.valid_up_to()]).unwrap_or_default(),
    };
    valid.chars().next().is_some_and(char::is_uppercase)
}

/// Field names that a person's name follows (`Reported by: Chen Wei`,
/// `Account holder: Nguyen, Thanh`).
/// (Not the speaker labels of a transcript: `Customer: Sure` is no name.)
const FIELDS_BEFORE: &[&[u8]] = &[
    b"name",
    b"by",
    b"from",
    b"holder",
    b"contact",
    b"cardholder",
    b"payee",
    b"recipient",
    b"beneficiary",
    b"attn",
    b"owner",
];

/// The length of the surname particle starting `w` (followed by a space),
/// if one does: the lower-case words that may stand between a given name
/// and a surname (`Sanne de Vries`, `Pieter van den Berg`). Asked of most
/// capitalised words, so a match on the word, not a list walk.
fn particle_at(w: &[u8]) -> Option<usize> {
    // Slice patterns: a decision on the first bytes, no scan for the end.
    let n = match w {
        [b'd', b'e', b'l', b'l', b'a', b' ', ..] => 5,
        [b'd', b'e', b' ', ..]
        | [b'd', b'a', b' ', ..]
        | [b'd', b'i', b' ', ..]
        | [b'd', b'u', b' ', ..]
        | [b'l', b'a', b' ', ..]
        | [b'l', b'e', b' ', ..]
        | [b'a', b'l', b' ', ..]
        | [b'e', b'l', b' ', ..] => 2,
        [b'v', b'a', b'n', b' ', ..]
        | [b'v', b'o', b'n', b' ', ..]
        | [b'd', b'e', b'r' | b'n' | b'l', b' ', ..]
        | [b'd', b'o' | b'a', b's', b' ', ..]
        | [b't', b'e', b'n' | b'r', b' ', ..]
        | [b'b', b'i', b'n', b' ', ..]
        | [b'i', b'b', b'n', b' ', ..] => 3,
        [b'd', b'e', b'l', b'a', b' ', ..] => 4,
        [b'y', b' ', ..] => 1,
        _ => return None,
    };
    Some(n)
}

/// Role words that may come before a speaker's name in a label at the
/// start of a line (`Agent Lars: hello`, `[10:02] Agent Lars:`).
const ROLES: &[&[u8]] = &[
    b"agent",
    b"customer",
    b"caller",
    b"rep",
    b"advisor",
    b"adviser",
    b"supervisor",
];

/// Questions whose answer, on the next line, is a name (`Agent: and your
/// surname?` / `Customer: Kowalski`).
const NAME_QUESTIONS: &[&[u8]] = &[
    b"name?",
    b"name please?",
    b"name, please?",
    b"surname?",
    b"speaking with?",
    b"speaking to?",
    b"who is calling?",
    b"who's calling?",
];

/// The last word of each of [`NAME_QUESTIONS`]: a question is compared
/// only when its last word is one of these (`how can I help you today?`
/// is ruled out at `today`).
fn is_name_question_end(w: &[u8]) -> bool {
    matches!(
        w,
        b"name" | b"surname" | b"please" | b"with" | b"to" | b"calling"
    )
}

/// The ASCII word ending at `k` (letters only), lower-cased into `buf`.
fn word_before(text: &[u8], k: usize, buf: &mut [u8; 12]) -> usize {
    let mut s = k;
    while s > 0 && text[s - 1].is_ascii_alphabetic() && k - s < buf.len() {
        s -= 1;
    }
    if s > 0 && is_word(text[s - 1]) {
        return 0;
    }
    for (d, c) in buf.iter_mut().zip(&text[s..k]) {
        *d = c.to_ascii_lowercase();
    }
    k - s
}

/// Whether what comes before `i` on its line is a speaker label's
/// beginning: nothing, a role word, a bracketed time, or both
/// (`Agent Lars:`, `[10:02] Lars:`).
fn label_start(text: &[u8], i: usize) -> bool {
    if i == 0 || text[i - 1] == b'\n' {
        return true;
    }
    // A role word or a time ends in a space.
    if text[i - 1] != b' ' {
        return false;
    }
    let line = memchr::memrchr(b'\n', &text[..i]).map_or(0, |n| n + 1);
    let mut before = text[line..i].trim_ascii();
    if let Some(rest) = before.strip_prefix(b"[") {
        match memchr::memchr(b']', rest) {
            Some(close) if close <= 20 => before = rest[close + 1..].trim_ascii_start(),
            _ => return false,
        }
    }
    before.is_empty()
        || ROLES
            .iter()
            .any(|r| before.len() == r.len() && before.eq_ignore_ascii_case(r))
}

/// Whether the line before the one holding `i` asks for a name, and `i`
/// starts its line's answer (after a speaker label, if any).
fn answers_name_question(text: &[u8], i: usize) -> bool {
    let nl = match text[..i].last() {
        Some(b'\n') => i - 1,
        None => return false,
        Some(_) => match memchr::memrchr(b'\n', &text[..i]) {
            Some(nl) => nl,
            None => return false,
        },
    };
    let answer = &text[nl + 1..i];
    let after_label = match memchr::memchr(b':', answer) {
        Some(c) => answer[c + 1..].trim_ascii().is_empty() && c <= 24,
        None => answer.trim_ascii().is_empty(),
    };
    if !after_label {
        return false;
    }
    let prev = text[..nl].trim_ascii_end();
    // Most lines end otherwise: one byte rules them out, the last word
    // most of the rest.
    if prev.last() != Some(&b'?') {
        return false;
    }
    let mut w = [0u8; 12];
    let n = word_before(prev, prev.len() - 1, &mut w);
    if !is_name_question_end(&w[..n]) {
        return false;
    }
    let start = prev.len().saturating_sub(32);
    let tail = &prev[start..];
    NAME_QUESTIONS
        .iter()
        .any(|q| tail.len() >= q.len() && tail[tail.len() - q.len()..].eq_ignore_ascii_case(q))
}

/// Whether `i` starts a sentence: only spaces between it and the text's
/// start, a line break, or a sentence's end.
fn sentence_start(text: &[u8], i: usize) -> bool {
    let before = text[..i].trim_ascii_end();
    before
        .last()
        .is_none_or(|c| matches!(c, b'.' | b'!' | b'?' | b'\n' | b':' | b'"' | b'>'))
        || before.len() < i && text[before.len()..i].contains(&b'\n')
}

/// Whether the field name just before `i` (`by: `, `Name: `) is one a
/// person's name follows.
fn field_before(text: &[u8], i: usize) -> bool {
    if i < 2 || &text[i - 2..i] != b": " {
        return false;
    }
    let mut w = [0u8; 12];
    let n = word_before(text, i - 2, &mut w);
    n > 0 && FIELDS_BEFORE.contains(&&w[..n])
}

/// Where a name of two words ending at `end` ends when a third follows:
/// a capitalised known surname or given name (`Nguyen Thi Lan`, `José
/// García López`), not one that is also a common word.
fn third_name(lists: &Lists, text: &[u8], end: usize) -> usize {
    if text.get(end) != Some(&b' ') || !capitalised(text, end + 1) {
        return end;
    }
    let Some((e3, w3)) = word(text, end + 1) else {
        return end;
    };
    let w = w3.as_bytes();
    let known = lists.last.contains(w) || lists.first.contains(w);
    let plain = !lists.ambiguous.contains(w) && !lists.not_surnames.contains(w);
    let glued = text
        .get(e3)
        .is_some_and(|&c| c.is_ascii_digit() || c == b'_' || c == b'\'');
    if known && plain && !glued && !in_capitals(&text[end + 1..e3]) {
        e3
    } else {
        end
    }
}

/// Looks for a name starting with the capitalised word `text[i..e1]`; returns
/// where the match ends when one was pushed.
fn at_word(
    lists: &Lists,
    text: &[u8],
    i: usize,
    mut e1: usize,
    out: &mut Vec<Candidate>,
) -> Option<usize> {
    // Glued to digits or an underscore: an identifier.
    if text
        .get(e1)
        .is_some_and(|&c| c.is_ascii_digit() || c == b'_')
    {
        return None;
    }
    // `Laura's request`: the name without its possessive.
    let possessive = e1 - i > 3 && text[e1 - 2..e1].eq_ignore_ascii_case(b"'s");
    if possessive {
        e1 -= 2;
    }
    // What could make it a name, from the bytes around it alone: most
    // capitalised words start a sentence and have none of these.
    let rest = &text[e1..];
    let next_cap = rest.first() == Some(&b' ') && capitalised(text, e1 + 1);
    let comma_then_cap = rest.starts_with(b", ") && capitalised(text, e1 + 2);
    let colon = rest.starts_with(b": ");
    let here = rest.starts_with(b" here");
    let vocative = i >= 2
        && &text[i - 2..i] == b", "
        && matches!(rest.first(), Some(b'!' | b'.' | b'?' | b','));
    let particle = rest.first() == Some(&b' ') && particle_at(&rest[1..]).is_some();
    let after_colon = i >= 2 && &text[i - 2..i] == b": ";
    let at_line_start = i == 0 || text[i - 1] == b'\n';
    // A name asked for: after a name field or on the line answering a
    // question about it (looked at last: most words are ruled out first).
    // (A word before `: ` is a label, not what the label says.)
    // Both are asked at most once, whichever test first needs them.
    let (asked_once, cued_once) = (OnceCell::new(), OnceCell::new());
    let asked = || {
        *asked_once.get_or_init(|| {
            !colon
                && ((after_colon && field_before(text, i))
                    || ((after_colon || at_line_start) && answers_name_question(text, i)))
        })
    };
    let cued = || *cued_once.get_or_init(|| cued_before(text, i));
    if !(next_cap
        || comma_then_cap
        || colon
        || here
        || vocative
        || possessive
        || particle
        || cued()
        || asked()
        || after_its(text, i))
    {
        return None;
    }
    let label = colon && label_start(text, i);
    let w1 = lower(text, i, e1)?;
    let all_caps = in_capitals(&text[i..e1]);
    let is_first = lists.first.contains(w1.as_bytes());
    let ambiguous = is_first && lists.ambiguous.contains(w1.as_bytes());
    // `Lopez, Maria`.
    if !is_first && comma_then_cap && lists.last.contains(w1.as_bytes()) {
        let j = e1 + 2;
        if let Some((e2, w2)) = word(text, j) {
            if lists.first.contains(w2.as_bytes()) && !lists.ambiguous.contains(w2.as_bytes()) {
                out.push(Candidate::new(PiiType::Person, i, e2, 0.75));
                return Some(e2);
            }
        }
    }
    // A name asked for: after a name field (`Reported by: Chen Wei`) or as
    // the answer to `your surname?` on the line before. One or two
    // capitalised words, one of them a known name.
    if (after_colon || at_line_start) && asked() {
        let known =
            |w: &Lower| lists.first.contains(w.as_bytes()) || lists.last.contains(w.as_bytes());
        let mut end = e1;
        let mut any = !ambiguous && known(&w1);
        if next_cap {
            if let Some((e2, w2)) = word(text, e1 + 1) {
                if !lists.not_surnames.contains(w2.as_bytes()) {
                    any |= known(&w2);
                    end = e2;
                }
            }
        } else if comma_then_cap {
            if let Some((e2, w2)) = word(text, e1 + 2) {
                any |= known(&w2);
                end = e2;
            }
        }
        if any && !lists.not_surnames.contains(w1.as_bytes()) {
            let end = if next_cap {
                third_name(lists, text, end)
            } else {
                end
            };
            out.push(Candidate::new(PiiType::Person, i, end, 0.7));
            return Some(end);
        }
    }
    if !is_first {
        // `the customer Ananya Krishnan`: a cue, an unknown capitalised
        // word and a known surname.
        if next_cap && !all_caps && !possessive && cued() {
            if let Some((e2, w2)) = word(text, e1 + 1) {
                if lists.plain_surname(w2.as_bytes()) {
                    out.push(Candidate::new(PiiType::Person, i, e2, 0.7));
                    return Some(e2);
                }
            }
        }
        return None;
    }
    // What follows: a middle initial (`Q.`, `Q`), or surname particles
    // (`de`, `van den`), then a capitalised word.
    let mut j = e1;
    if !possessive {
        if text.get(j) == Some(&b' ')
            && text.get(j + 1).is_some_and(u8::is_ascii_uppercase)
            && matches!(text.get(j + 2), Some(b'.' | b' '))
        {
            j += if text.get(j + 2) == Some(&b'.') { 3 } else { 2 };
        }
        let mut particles = 0;
        while particles < 3 && text.get(j) == Some(&b' ') {
            let Some(n) = particle_at(&text[j + 1..]) else {
                break;
            };
            j += 1 + n;
            particles += 1;
        }
        if particles > 0 && !capitalised(text, j + 1) {
            j = e1;
        }
    }
    if text.get(j) == Some(&b' ') && capitalised(text, j + 1) && !possessive {
        if let Some((e2, w2)) = word(text, j + 1) {
            let caps2 = in_capitals(&text[j + 1..e2]);
            let known = lists.last.contains(w2.as_bytes());
            let plain = !lists.not_surnames.contains(w2.as_bytes());
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
                let end = if caps2 {
                    e2
                } else {
                    third_name(lists, text, e2)
                };
                out.push(Candidate::new(PiiType::Person, i, end, score));
                return Some(end);
            }
        }
    }
    if all_caps {
        return None;
    }
    // A lone given name: a cue before, `here` after, a speaker label, a
    // vocative (`thanks for waiting, Niamh!`), or a possessive in running
    // text (`per Laura's request`). Names that are also words only after
    // a cue.
    let lone = cued()
        || here
        || label
        || (!ambiguous
            && (vocative
                || (possessive && !sentence_start(text, i))
                || (!possessive && after_its(text, i) && ends_clause(text, e1))));
    if lone {
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

/// A name's part in a field of its own: `first=Jamal&last=Williams` in a
/// query string or form body, `"given": "Aoife"` in JSON. Keys that say
/// `name` (`first_name`, `lastName`) are read by the scan's literal pass;
/// these say only which part. `op` is the `=` or `:` after the key. The
/// value must be one word and a known given name (`first`, `given`) or
/// surname (`last`, `family`), so `first=10` or `last=Monday` are not.
#[inline]
pub fn name_part_field(text: &[u8], op: usize, out: &mut Vec<Candidate>) {
    // The key, a closing quote after it. Most keys (and most colons: times,
    // ports) are ruled out by their last two bytes, before any call.
    let mut k = op;
    if k > 0 && matches!(text[k - 1], b'"' | b'\'') {
        k -= 1;
    }
    if k >= 2
        && matches!(
            [text[k - 2] | 0x20, text[k - 1] | 0x20],
            [b's', b't'] | [b'e', b'n'] | [b'l', b'y']
        )
    {
        name_part_value(text, op, k, out);
    }
}

/// [`name_part_field`] past its first check; the key ends at `key_end`.
#[inline(never)]
fn name_part_value(text: &[u8], op: usize, key_end: usize, out: &mut Vec<Candidate>) {
    let mut k = key_end;
    while k > 0 && text[k - 1].is_ascii_alphabetic() && key_end - k < 7 {
        k -= 1;
    }
    if k > 0 && (text[k - 1].is_ascii_alphanumeric() || text[k - 1] == b'_') {
        return;
    }
    let key = &text[k..key_end];
    let given = key.eq_ignore_ascii_case(b"first") || key.eq_ignore_ascii_case(b"given");
    if !given && !key.eq_ignore_ascii_case(b"last") && !key.eq_ignore_ascii_case(b"family") {
        return;
    }
    // The value: a space and an opening quote may come first; it must
    // end the field (nothing glued to it but a separator).
    let mut v = op + 1;
    while v < text.len() && matches!(text[v], b' ' | b'"' | b'\'') && v - op < 4 {
        v += 1;
    }
    let Some(e) = word_end(text, v) else {
        return;
    };
    if text
        .get(e)
        .is_some_and(|&c| c.is_ascii_alphanumeric() || c == b'_')
    {
        return;
    }
    let Some(w) = lower(text, v, e) else {
        return;
    };
    let w = w.as_bytes();
    let lists = lists();
    let known = if given {
        lists.first.contains(w)
    } else {
        lists.plain_surname(w)
    };
    if known {
        out.push(Candidate::new(PiiType::Person, v, e, 0.7));
    }
}

/// How much a cue before a lower-case name says.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Cue {
    /// `name is`: a known given name alone will do.
    Strong,
    /// `i'm`, `it's`: a given name must end a clause (see [`ends_clause`])
    /// or be followed by a known surname.
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
    if !lists.first.contains(w1.as_bytes()) || lists.ambiguous.contains(w1.as_bytes()) {
        return;
    }
    // A lower-case surname after it.
    if text.get(e1) == Some(&b' ') && text.get(e1 + 1).is_some_and(u8::is_ascii_lowercase) {
        if let Some((e2, w2)) = word(text, e1 + 1) {
            if lists.plain_surname(w2.as_bytes()) {
                out.push(Candidate::new(PiiType::Person, at, e2, 0.75));
                return;
            }
        }
    }
    if cue == Cue::Strong || ends_clause(text, e1) {
        out.push(Candidate::new(PiiType::Person, at, e1, 0.7));
    }
}

/// Whether a clause ends at `e` (a name after a weak cue such as `it's`
/// must end one): punctuation, the end, or `here`, `again`, `from`,
/// `and`, `calling` after it.
fn ends_clause(text: &[u8], e: usize) -> bool {
    (match text.get(e) {
        None => true,
        Some(&c) => matches!(c, b',' | b'.' | b'!' | b'?' | b'\n' | b';' | b')' | b'"'),
    }) || [&b" here"[..], b" again", b" from ", b" and ", b" calling"]
        .iter()
        .any(|w| text[e..].starts_with(w))
}

/// Whether the weak cue `it's` (or `it’s`), a word of its own, ends just
/// before `i`.
fn after_its(text: &[u8], i: usize) -> bool {
    // Most words have no `s ` before them: asked first.
    if i < 5 || text[i - 1] != b' ' || text[i - 2] | 0x20 != b's' {
        return false;
    }
    let before = &text[..i];
    [&b"it's "[..], "it’s ".as_bytes()].iter().any(|cue| {
        ends_with_ignore_case(before, cue)
            && (before.len() == cue.len() || !is_word(before[before.len() - cue.len() - 1]))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each line of a list is a name as written: no `\r`, no blank line,
    /// no space around it, and the set holds every one of them.
    #[test]
    fn the_lists_are_one_name_a_line() {
        for (list, set) in [
            (include_str!("../data/first_names.txt"), &lists().first),
            (include_str!("../data/surnames.txt"), &lists().last),
        ] {
            for line in list.lines() {
                assert!(!line.is_empty() && line.trim() == line && !line.contains('\r'));
                assert!(set.contains(line.as_bytes()), "{line:?}");
            }
            assert_eq!(set.len(), list.lines().collect::<HashSet<_>>().len());
        }
    }

    /// The names the whole scan reports (every pass, not only running text).
    fn found(text: &str) -> Vec<String> {
        let mut out = Vec::new();
        crate::scan::Scanner::shared().scan(text.as_bytes(), &mut out);
        out.iter()
            .filter(|c| c.kind == Some(PiiType::Person) && c.score >= 0.5)
            .map(|c| text[c.start..c.end].to_owned())
            .collect()
    }

    fn names(text: &str) -> Vec<&str> {
        let mut out = Vec::new();
        running_text(text.as_bytes(), &mut out);
        out.iter().map(|c| &text[c.start..c.end]).collect()
    }

    #[test]
    fn lower_case_names_after_name_is() {
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
    fn two_initials_and_a_known_surname() {
        assert_eq!(
            names("Customer: name on the card is J. R. Halvorsen"),
            ["J. R. Halvorsen"]
        );
        assert_eq!(names("signed, A. K. Sharma."), ["A. K. Sharma"]);
        // One initial, lower case, no surname after, or glued to a word.
        for text in [
            "we chose plan B. Moore said yes",
            "see section A. B. the annex",
            "the U. S. Government",
            "X. Y. Zebras",
            "ref J. R. Halvorsen2",
        ] {
            assert!(names(text).is_empty(), "{text}: {:?}", names(text));
        }
    }

    #[test]
    fn name_parts_in_fields_of_their_own() {
        assert_eq!(
            found("POST /update body: first=Jamal&last=Williams&city=Atlanta"),
            ["Jamal", "Williams"]
        );
        assert_eq!(
            found(r#"{"given": "Aoife", "family": "Byrne", "id": 7}"#),
            ["Aoife", "Byrne"]
        );
        assert_eq!(found("GET /c?FIRST=priya&page=2"), ["priya"]);
        // Not a name, not one word, or not a field of a name's part.
        for text in [
            "GET /list?first=10&last=20",
            "GET /list?sort=last&last=Monday",
            "first=page&last=next",
            "worst=Jamal&lastly=Williams",
            "first=Jamal42",
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
    fn capitalised_names_after_it_is() {
        for (text, name) in [
            ("hi it's Marco", "Marco"),
            ("cheers mate, it's Callum again", "Callum"),
            ("It’s Priya here", "Priya"),
            ("it's Siobhan, calling about my card", "Siobhan"),
        ] {
            assert_eq!(names(text), [name], "{text}");
        }
        // A word after the name, names that are also words, and `it's`
        // inside a word are not enough.
        for text in [
            "it's Marco trying to help",
            "it's April.",
            "it's Chase, the bank.",
            "bit's Marco.",
            "the app says it's Pending.",
        ] {
            assert!(names(text).is_empty(), "{text}: {:?}", names(text));
        }
    }

    #[test]
    fn greetings_in_other_languages_and_family_words_cue_a_lone_name() {
        for (text, name) in [
            ("Hola Sofía, ¿en qué te puedo ayudar?", "Sofía"),
            ("gracias, Sofía!", "Sofía"),
            ("Bonjour Camille, merci pour votre aide.", "Camille"),
            ("Hallo Jonas, danke für Ihre Geduld.", "Jonas"),
            ("Ciao Giulia, come posso aiutarti?", "Giulia"),
            ("my sister Aoife has the card", "Aoife"),
            // A name that is also a word, after a cue, is a name.
            ("my son Will is on the account too", "Will"),
        ] {
            assert_eq!(names(text), [name], "{text}");
        }
        for text in [
            "my father Christmas costume arrived",
            "the son of a friend paid it",
            "Hola, ¿en qué te puedo ayudar?",
        ] {
            assert!(names(text).is_empty(), "{text}: {:?}", names(text));
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
            // Capitals that are not ASCII.
            ("Cordialement,\nÉlodie Laurent", "Élodie Laurent"),
            ("Name: MÜLLER, Klaus", "MÜLLER, Klaus"),
            // Surname particles.
            ("mein Name ist Sanne de Vries und", "Sanne de Vries"),
            (
                "caller identified as Pieter van den Berg, verified",
                "Pieter van den Berg",
            ),
            // More cues: greetings, roles, a vocative, a possessive.
            ("Good afternoon Carlos, your loan", "Carlos"),
            ("Transferred to supervisor Karen at 14:32", "Karen"),
            ("Thanks for your patience, Niamh! Your case", "Niamh"),
            ("Per Laura's request the statement was re-sent", "Laura"),
            // Speaker labels after a time or a role.
            ("[10:02] Agent Lars: How can I help today?", "Lars"),
            // A name field, an answer to a name question.
            ("Reported by: Chen Wei\nPriority: high", "Chen Wei"),
            (
                "Agent: and your surname?\nCustomer: Kowalski, K-O-W-A-L-S-K-I",
                "Kowalski, K-O-W-A-L-S-K-I",
            ),
            ("Account holder: Nguyen, Thanh", "Nguyen, Thanh"),
            // A surname with a lower-case letter that is not ASCII.
            ("Maria Lê called about the fee", "Maria Lê"),
            // A cue, a capitalised word and a known surname.
            ("the customer Zorvath Krishnan asked", "Zorvath Krishnan"),
            // A third name: a middle name, a second surname.
            ("Account holder: Nguyen Thi Lan", "Nguyen Thi Lan"),
            ("Spoke with Ms. Ana Lima Souza about it", "Ana Lima Souza"),
            ("Hi Maria Lopez Garcia, thanks", "Maria Lopez Garcia"),
            // A cue whose last word holds an apostrophe.
            ("Client : je m'appelle Camille, j'ai un souci", "Camille"),
        ] {
            assert!(names(text).contains(&name), "{text}: {:?}", names(text));
        }
    }

    #[test]
    fn the_quick_word_tests_hold_every_cue_and_question() {
        // A cue or question is compared only when its last word passes
        // the quick test: one added to a list and not to the test would
        // never be found.
        // Letters and apostrophes, as `cued_before` reads the word.
        let last_word = |phrase: &[u8]| -> Vec<u8> {
            let end = phrase
                .iter()
                .rposition(u8::is_ascii_alphabetic)
                .map_or(0, |k| k + 1);
            let start = phrase[..end]
                .iter()
                .rposition(|&c| !c.is_ascii_alphabetic() && c != b'\'')
                .map_or(0, |k| k + 1);
            phrase[start..end].to_ascii_lowercase()
        };
        for q in NAME_QUESTIONS {
            assert!(
                is_name_question_end(&last_word(q)),
                "{:?}",
                String::from_utf8_lossy(q)
            );
        }
        for c in CUES_BEFORE {
            assert!(is_cue_end(&last_word(c.as_bytes())), "{c:?}");
        }
    }

    #[test]
    fn particles_are_read_from_their_first_bytes() {
        let particles = [
            "de", "van", "von", "der", "den", "da", "di", "del", "della", "dos", "das", "du", "la",
            "le", "ten", "ter", "y", "bin", "ibn", "al", "el", "dela",
        ];
        for p in particles {
            assert_eq!(
                particle_at(format!("{p} Vries").as_bytes()),
                Some(p.len()),
                "{p}"
            );
            assert_eq!(particle_at(p.as_bytes()), None, "{p} with nothing after");
        }
        for w in ["dex ", "vanilla ", "the ", "d ", "dell ", "lea ", "", "y"] {
            assert_eq!(particle_at(w.as_bytes()), None, "{w:?}");
        }
    }

    #[test]
    fn words_that_are_also_names_are_not_names_alone() {
        for text in [
            // A county, not a given name in a vocative.
            "77 Main Street, Ballincollig, Co. Cork",
            "Will you send the statement?",
            "May I have your account number",
            "Grant access to the billing folder",
            "Mark the ticket as resolved",
            "The Refund Policy applies",
            "Frank discussion with the team",
            "PLEASE CALL BACK",
            "Maria",
            "Thomas The Tank",
            // Places that are also given names, in the new forms.
            "we ship to Lyon, France.",
            "Georgia's tax rules changed",
            "visiting Florence, Italy",
            // Transcript speakers are no name fields; a question about a
            // name does not make any answer one.
            "Customer: Sure, go ahead",
            "Agent: What is your name?\nCustomer: Why do you need it?",
            "The Rose Garden tour was cancelled",
            "Per Account Policy the fee stands",
        ] {
            assert!(names(text).is_empty(), "{text}: {:?}", names(text));
        }
    }

    /// The lists' entries, sorted, capitalised, as a test samples them:
    /// given names that are no common word, surnames that are neither a
    /// given name that is a word nor a word that follows names.
    fn samples() -> &'static (Vec<String>, Vec<String>) {
        static SAMPLES: OnceLock<(Vec<String>, Vec<String>)> = OnceLock::new();
        SAMPLES.get_or_init(|| {
            let l = lists();
            let cap = |w: &str| {
                let mut c = w.chars();
                c.next()
                    .map(|f| f.to_uppercase().chain(c).collect::<String>())
                    .unwrap_or_default()
            };
            let plain =
                |w: &[u8]| w.len() >= 2 && !l.ambiguous.contains(w) && !l.not_surnames.contains(w);
            let pick = |set: &HashSet<&'static [u8]>| {
                let mut v: Vec<String> = set
                    .iter()
                    .filter(|w| plain(w))
                    .map(|w| cap(std::str::from_utf8(w).expect("the lists are UTF-8")))
                    .collect();
                v.sort();
                v
            };
            (pick(&l.first), pick(&l.last))
        })
    }

    proptest::proptest! {
        /// Names from the lists are found in each form: a vocative, a
        /// possessive, a speaker label after a time and a role, a name
        /// field, surname particles, the answer to a name question, a
        /// greeting, a role before the name.
        #[test]
        fn listed_names_are_found_in_every_form(a in 0usize..100_000, b in 0usize..100_000, form in 0usize..8) {
            let (firsts, lasts) = samples();
            let (f, l) = (&firsts[a % firsts.len()], &lasts[b % lasts.len()]);
            let (text, want) = match form {
                0 => (format!("Thanks for waiting, {f}! Your case is open."), f.clone()),
                1 => (format!("We closed it per {f}'s request."), f.clone()),
                2 => (format!("[09:15] Agent {f}: how can I help?"), f.clone()),
                3 => (format!("Reported by: {l} {f}\nPriority: high"), format!("{l} {f}")),
                4 => (format!("the caller was {f} van der {l}, verified"), format!("{f} van der {l}")),
                5 => (format!("Agent: and your surname?\nCustomer: {l}"), l.clone()),
                6 => (format!("Good afternoon {f}, your loan is approved"), f.clone()),
                _ => (format!("passed to supervisor {f} at noon"), f.clone()),
            };
            proptest::prop_assert!(names(&text).contains(&want.as_str()), "{:?}: {:?}", text, names(&text));
        }

        /// A name's parts in fields of their own (a query string, a
        /// form body, JSON) and two initials before a surname, with names
        /// from the lists, are found; their near misses (a part glued to
        /// digits, a key that only ends like one, one initial) are not.
        #[test]
        fn name_parts_and_initials_from_the_lists(
            a in 0usize..100_000,
            b in 0usize..100_000,
            i in b'A'..=b'Z',
            j in b'A'..=b'Z',
            form in 0usize..3,
        ) {
            let (firsts, lasts) = samples();
            let (f, l) = (&firsts[a % firsts.len()], &lasts[b % lasts.len()]);
            let (i, j) = (char::from(i), char::from(j));
            let (text, want) = match form {
                0 => (format!("POST /u body: first={f}&last={l}&city=x"), vec![f.clone(), l.clone()]),
                1 => (format!(r#"{{"given": "{f}", "family": "{l}", "id": 7}}"#), vec![f.clone(), l.clone()]),
                _ => (format!("name on the card is {i}. {j}. {l}"), vec![format!("{i}. {j}. {l}")]),
            };
            let got = found(&text);
            for w in &want {
                proptest::prop_assert!(got.contains(w), "{:?}: {:?}", text, got);
            }
            for text in [
                format!("GET /u?first={f}42&last={l}7&page=2"),
                format!("GET /u?worst={f}&lastly={l}"),
            ] {
                let got = found(&text);
                proptest::prop_assert!(!got.contains(f) && !got.contains(l), "{:?}: {:?}", text, got);
            }
            let text = format!("we chose plan {i}. {l} said yes");
            let got = found(&text);
            proptest::prop_assert!(got.iter().all(|n| !n.starts_with(i) || !n.contains(". ")), "{:?}: {:?}", text, got);
        }

        /// Words that are no names, in the same forms, are not names.
        #[test]
        fn words_in_those_forms_are_not_names(
            w in proptest::sample::select(vec!["Team", "Everyone", "Support", "Sorry", "Thanks", "Today", "Refunds", "Payments", "Monday", "Weekend"]),
            form in 0usize..7,
        ) {
            let text = match form {
                0 => format!("Thanks for waiting, {w}! Your case is open."),
                1 => format!("We closed it per {w}'s request."),
                2 => format!("[09:15] Agent {w}: how can I help?"),
                3 => format!("Reported by: {w} Desk\nPriority: high"),
                4 => format!("the caller was {w} van der Desk, verified"),
                5 => format!("Agent: and your surname?\nCustomer: {w}"),
                _ => format!("Good afternoon {w}, your loan is approved"),
            };
            proptest::prop_assert!(names(&text).is_empty(), "{:?}: {:?}", text, names(&text));
        }
    }
}
