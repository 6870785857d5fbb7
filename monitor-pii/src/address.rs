//! Street addresses as they are written in the countries a contact center
//! serves, found from the house number the digit scan hands over.
//!
//! Two orders of street and number:
//! - **number first** (US, GB, IE, IN, FR): `1600 Pennsylvania Avenue NW`,
//!   `221B Baker Street`, `12, MG Road`, `12 rue de la Paix`;
//! - **street first** (DE, AT, CH, NL, ES, MX, IT, BR): `Hauptstraße 12`,
//!   `Musterstr. 5a`, `Keizersgracht 123`, `Calle Mayor, 5`,
//!   `Av. Insurgentes Sur 1234`, `Via Roma 10`.
//!
//! The street is found by hand (a few word comparisons per number, so the
//! digit scan stays fast); the rest of the address after it, a unit, the
//! locality and the postcode of any of those countries on the same line or
//! the next, by one anchored grammar. A street whose type word is also an
//! ordinary word (`Park`, `Via`, a lower-case `oak street` in chat) is
//! reported only with a postcode after it or an address cue before it.

use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind};

use crate::anchored;
use crate::scan::Candidate;
use crate::types::PiiType;

/// The compiled pieces: the locality grammar and the cue words.
pub(crate) struct Grammar {
    /// What may follow a street: units.
    units: anchored::Grammar,
    /// Then its locality and postcode.
    place: anchored::Grammar,
    /// Words that announce an address (`address`, `lives at`, `ship to`).
    cues: AhoCorasick,
}

/// What may follow a street before its locality: a direction, then units.
/// Anchored at the street's end.
const UNITS: &str = concat!(
    r"^(?:\s(?:NW|NE|SW|SE|N\.?|S\.?|E\.?|W\.?|North|South|East|West|Upper|Lower|Sur|Norte|Oriente|Poniente)(?-u:\b))?",
    // Units: Apt 4B, Suite 200, Flat 3, Piso 2º, Bus 4, 2. OG.
    r"(?:,?\s{1,3}(?:Apt|Apartment|Suite|Ste|Unit|Flat|Fl|Floor|Room|Rm|Bldg|Building|Piso|Puerta|Pta|Depto|Dpto|Departamento|Int|Interior|App|Appt|Bus|Esc|Escalera|Étage|Etage|Stiege|Top|Whg|Wohnung|No|Nr|Blk|Block|Lot|\#)\.?\s?\#?[0-9A-Za-z][0-9A-Za-z./º°ª-]{0,7})*",
);

/// The locality's letters: those of the Latin alphabets (to U+024F,
/// Latin Extended-B), which the addresses of every country served are
/// written in. The Unicode-wide classes compile to automata five times
/// the size, and building them was most of the detector's start-up.
macro_rules! upper {
    () => {
        r"[\p{Lu}&&\x{0}-\x{24F}]"
    };
}
/// Lower-case letters of the Latin alphabets; see [`upper`].
macro_rules! lower {
    () => {
        r"[\p{Ll}&&\x{0}-\x{24F}]"
    };
}
/// Letters of the Latin alphabets, and `$more`, in one class; see [`upper`].
macro_rules! letters {
    ($more:literal) => {
        concat!(r"[[\p{L}&&\x{0}-\x{24F}]", $more, "]")
    };
}
/// A capitalised word of a place's name, or its abbreviation (`St.`).
macro_rules! place_word {
    () => {
        concat!(
            r"(?:",
            upper!(),
            lower!(),
            r"{0,2}\.|",
            upper!(),
            letters!("'’-"),
            r"*)"
        )
    };
}

/// The locality after the units: segments (a neighbourhood, a city, a
/// county or state) ending in a postcode (or a US/CA region and code),
/// then a country. Anchored where the units end.
const PLACE: &str = concat!(
    r"^",
    // Locality segments: a neighbourhood, a city, a county or state.
    r"(?:(?:,[ \t]*|[ \t]+[-–][ \t]+|[ \t]*(?:\r?\n|\\n)[ \t]*)",
    place_word!(),
    r"(?:[ \t](?:",
    place_word!(),
    r"|de|del|la|di|do|da|sur|am|upon|on|City)){0,3}){0,3}",
    r"(?:,[ \t]*|[ \t]+[-–][ \t]+|[ \t]*(?:\r?\n|\\n)[ \t]*|[ \t]+)",
    r"(?:",
    // US and CA: a region and its code.
    r"[A-Z]{2}[ \t]+(?:[0-9]{5}(?:-[0-9]{4})?|[A-Z][0-9][A-Z][ \t]?[0-9][A-Z][0-9])(?-u:\b)",
    // GB postcodes.
    r"|[A-Z]{1,2}[0-9][A-Z0-9]?[ \t]?[0-9][A-Z]{2}(?-u:\b)",
    // IE: Dublin districts, Eircodes.
    r"|(?:Dublin[ \t]|D)[0-9]{1,2}W?(?:,[ \t]*[AC-FHKNPRTV-Y][0-9]{2}[ \t]?[AC-FHKNPRTV-Y0-9]{4})?(?-u:\b)",
    r"|[AC-FHKNPRTV-Y][0-9]{2}[ \t]?[AC-FHKNPRTV-Y0-9]{4}(?-u:\b)",
    // MX: the postcode after C.P.
    r"|C\.?[ \t]?P\.?:?[ \t]?[0-9]{5}(?-u:\b)",
    // IE: a county, and an Eircode after it.
    r"|(?:Co\.|County)[ \t]",
    upper!(),
    lower!(),
    r"+(?:,?[ \t]*[AC-FHKNPRTV-Y][0-9]{2}[ \t]?[AC-FHKNPRTV-Y0-9]{4})?(?-u:\b)",
    // IN: the PIN code.
    r"|PIN(?:[ \t]?[Cc]ode)?:?[ \t]?[0-9]{6}(?-u:\b)",
    // BR: the CEP.
    r"|[0-9]{5}-[0-9]{3}(?-u:\b)",
    // DE, AT, CH, FR, ES, IT, NL, MX: the postcode, then the city (and a province).
    r"|(?:[A-Z]{1,2}-)?[0-9]{4,5}(?:[ \t]?[A-Z]{2})?[ \t]+",
    place_word!(),
    r"(?:[ \t-](?:",
    place_word!(),
    r"|am|an|der|de|del|la|sur|en|im|bei)){0,3}(?:[ \t]\(?[A-Z]{2}\)?(?-u:\b))?",
    // IN, PH and others: the city, then the code.
    r"|[0-9]{4,6}(?:-[0-9]{3,4})?(?-u:\b)",
    r")",
    // The city after a postcode that precedes it (C.P. 06700, Ciudad de México).
    r"(?:,[ \t]*(?:CDMX|Ciudad de México|Mexico City|México|Mexico|United States|USA|U\.S\.A\.|United Kingdom|UK|Ireland|Germany|Deutschland|France|Spain|España|Italy|Italia|Netherlands|Nederland|India|Austria|Österreich|Switzerland|Schweiz|Suisse|Brazil|Brasil|Philippines|Canada)(?-u:\b))?",
);

/// Words that announce an address, matched without regard to case in the
/// bytes just before a street whose type word alone is not enough.
const CUES: &[&str] = &[
    "address",
    "addr",
    "adres",
    "direcci",
    "domicilio",
    "indirizzo",
    "endere",
    "anschrift",
    "wohn",
    "live at",
    "lives at",
    "living at",
    "live on",
    "lives on",
    "reside",
    "ship",
    "deliver",
    "lieferung",
    "mail",
    "moved to",
    "located at",
    "billing",
    "send it to",
    "send to",
    "postcode",
    "zip",
];

/// How far before a street a cue may stand.
const CUE_WINDOW: usize = 48;

/// How many words a street name may have besides its type word.
const NAME_WORDS: usize = 4;

impl Grammar {
    /// Compiles the grammar.
    pub(crate) fn new() -> Self {
        Self {
            units: anchored::Grammar::new(UNITS).expect("static address grammar"),
            place: anchored::Grammar::new(PLACE).expect("static address grammar"),
            cues: AhoCorasick::builder()
                .ascii_case_insensitive(true)
                .match_kind(MatchKind::LeftmostFirst)
                .kind(Some(AhoCorasickKind::DFA))
                .build(CUES)
                .expect("static cue set"),
        }
    }
}

/// Finds an address around the house number `text[start..digits_end]`.
#[inline]
pub(crate) fn at_number(
    g: &Grammar,
    text: &[u8],
    start: usize,
    digits_end: usize,
    out: &mut Vec<Candidate>,
) {
    // Most numbers have neither a word after them (a gap, a comma, a
    // house number's letter) nor a gap before them (a street's name):
    // dates, times, amounts. They cost two byte compares.
    let next = text.get(digits_end).copied().unwrap_or(0);
    let word_after =
        matches!(next, b' ' | b'\t' | b',' | 0xC2 | 0xE2) || next.is_ascii_alphabetic();
    let gap_before = start > 0 && matches!(text[start - 1], b' ' | b'\t' | 0xA0 | 0xAF);
    if digits_end - start <= 6 && (word_after || gap_before) {
        street(g, text, start, digits_end, out);
    }
}

/// [`at_number`] past its first check.
#[inline(never)]
fn street(g: &Grammar, text: &[u8], start: usize, digits_end: usize, out: &mut Vec<Candidate>) {
    if let Some(street) = number_first(text, start, digits_end) {
        report(g, text, street, out);
    } else if let Some(street) = street_first(text, start, digits_end) {
        report(g, text, street, out);
    }
}

/// A street found: its span and whether its type word alone is enough.
#[derive(Debug, Clone, Copy)]
struct Street {
    start: usize,
    end: usize,
    strong: bool,
}

/// Extends a street over its locality and reports it when it is sure
/// enough: a strong type word, a postcode after it, or a cue before it.
#[inline(never)]
fn report(g: &Grammar, text: &[u8], street: Street, out: &mut Vec<Candidate>) {
    let window = &text[street.end..(street.end + 200).min(text.len())];
    // Two searches rather than one with groups: groups cost a slower
    // engine than the DFA that answers where a match ends.
    let units = g.units.match_end(window).unwrap_or(0);
    let place = g.place.match_end(&window[units..]);
    let locality = place.is_some();
    let mut tail = units + place.unwrap_or(0);
    // A full stop after a whole word ends the sentence, not an abbreviation.
    if tail > 0 && window[tail - 1] == b'.' {
        let letters = window[..tail - 1]
            .iter()
            .rev()
            .take_while(|c| c.is_ascii_alphabetic() || **c >= 0x80)
            .count();
        if letters > 3 {
            tail -= 1;
        }
    }
    let cue = || {
        let from = street.start.saturating_sub(CUE_WINDOW);
        g.cues.is_match(&text[from..street.start])
    };
    if !(street.strong || locality || cue()) {
        return;
    }
    let score = if locality { 0.85 } else { 0.7 };
    out.push(Candidate::new(
        PiiType::StreetAddress,
        unit_before(text, street.start),
        street.end + tail,
        score,
    ));
}

/// Unit words that may come before the house number.
const UNITS_BEFORE: &[&[u8]] = &[
    b"flat",
    b"apt",
    b"apt.",
    b"apartment",
    b"unit",
    b"suite",
    b"room",
    b"house",
    b"door",
];

/// Where an address starting at `start` starts with the unit written
/// before its number: `Flat 2, 14 Kings Road` (a unit and its number, a
/// comma), or `Flat 302, Sai Residency` (the number is the flat's).
fn unit_before(text: &[u8], start: usize) -> usize {
    let is_unit = |end: usize| -> Option<usize> {
        let s = word_start(text, end);
        let mut buf = [0u8; 32];
        (s < end && UNITS_BEFORE.contains(&lower(&text[s..end], &mut buf))).then_some(s)
    };
    let head = &text[..start];
    // `Flat 302`: the unit word right before the number.
    if let Some(word_end) = head.strip_suffix(b" ").map(<[u8]>::len) {
        if let Some(s) = is_unit(word_end) {
            return s;
        }
    }
    // `Flat 2, 14`: the unit word, its number and a comma.
    let Some(rest) = head.strip_suffix(b", ") else {
        return start;
    };
    let id = rest
        .iter()
        .rev()
        .take_while(|c| c.is_ascii_alphanumeric())
        .count();
    let id_start = rest.len() - id;
    if !(1..=5).contains(&id) || !rest[id_start].is_ascii_digit() {
        return start;
    }
    match rest[..id_start].strip_suffix(b" ") {
        Some(before) => is_unit(before.len()).unwrap_or(start),
        None => start,
    }
}

/// The bytes of a word, by value: letters (any UTF-8 sequence counts as
/// letters), digits and the marks inside names (`O'Connell`,
/// `Karl-Marx-Allee`, `Str.`).
static WORD_BYTE: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        t[c] = b.is_ascii_alphanumeric() || matches!(b, b'\'' | b'.' | b'-' | b'/') || b >= 0x80;
        c += 1;
    }
    t
};

/// The word starting at `at`: its end.
fn word_end(text: &[u8], at: usize) -> usize {
    let limit = text.len().min(at + 32);
    let mut p = at;
    while p < limit && WORD_BYTE[usize::from(text[p])] {
        // A no-break space is two or three bytes over 0x7F: a gap, not a letter.
        if text[p] >= 0x80 && gap(text, p).is_some() {
            break;
        }
        p += 1;
    }
    p
}

/// The length of the gap between two words at `p`: a space, a tab or a
/// no-break space (U+00A0, U+202F).
fn gap(text: &[u8], p: usize) -> Option<usize> {
    match text.get(p..)? {
        [b' ' | b'\t', ..] => Some(1),
        [0xC2, 0xA0, ..] => Some(2),
        [0xE2, 0x80, 0xAF, ..] => Some(3),
        _ => None,
    }
}

/// The length of the gap ending at `p`.
fn gap_before(text: &[u8], p: usize) -> Option<usize> {
    match text.get(..p)? {
        [.., b' ' | b'\t'] => Some(1),
        [.., 0xC2, 0xA0] => Some(2),
        [.., 0xE2, 0x80, 0xAF] => Some(3),
        _ => None,
    }
}

/// The word ending at `end`: its start.
fn word_start(text: &[u8], end: usize) -> usize {
    let mut p = end;
    let limit = end.saturating_sub(32);
    while p > limit && WORD_BYTE[usize::from(text[p - 1])] {
        if text[p - 1] >= 0x80 && gap_before(text, p).is_some() {
            break;
        }
        p -= 1;
    }
    p
}

/// The word (its first 32 bytes) in ASCII lower case, into `buf`.
fn lower<'b>(word: &[u8], buf: &'b mut [u8; 32]) -> &'b [u8] {
    let n = word.len().min(32);
    for (b, &c) in buf.iter_mut().zip(&word[..n]) {
        *b = c.to_ascii_lowercase();
    }
    &buf[..n]
}

fn capitalized(word: &[u8]) -> bool {
    // A non-ASCII initial (Ñ, Ö, É) is taken as a capital.
    word.first()
        .is_some_and(|&c| c.is_ascii_uppercase() || c >= 0x80)
}

/// English and Indian street types that end a number-first street.
/// `true`: strong enough alone when capitalised.
fn english_type(w: &[u8]) -> Option<bool> {
    let w = w.strip_suffix(b".").unwrap_or(w);
    Some(match w {
        b"street" | b"st" | b"avenue" | b"ave" | b"road" | b"rd" | b"boulevard" | b"blvd"
        | b"lane" | b"ln" | b"drive" | b"dr" | b"court" | b"ct" | b"place" | b"pl" | b"terrace"
        | b"ter" | b"circle" | b"cir" | b"parkway" | b"pkwy" | b"highway" | b"hwy" | b"square"
        | b"sq" | b"trail" | b"trl" | b"close" | b"crescent" | b"cres" | b"grove" | b"gardens"
        | b"gdns" | b"mews" | b"parade" | b"esplanade" | b"quay" | b"wharf" | b"alley"
        | b"expressway" | b"freeway" | b"turnpike" | b"nagar" | b"marg" | b"salai" | b"chowk"
        | b"way" => true,
        b"park" | b"hill" | b"green" | b"row" | b"walk" | b"rise" | b"vale" | b"view"
        | b"point" | b"cross" | b"main" | b"loop" | b"run" | b"path" | b"pike" | b"plaza"
        | b"heights" | b"manor" | b"colony" | b"layout" | b"sector" | b"ridge" | b"creek"
        | b"glen" | b"cove" | b"bend" | b"crossing" | b"estate" | b"gate" => false,
        _ => return None,
    })
}

/// Words of running text that no lower-case street name holds.
fn function_word(w: &[u8]) -> bool {
    matches!(
        w,
        b"a" | b"an"
            | b"the"
            | b"of"
            | b"to"
            | b"in"
            | b"on"
            | b"at"
            | b"for"
            | b"and"
            | b"or"
            | b"is"
            | b"are"
            | b"was"
            | b"with"
            | b"from"
            | b"by"
            | b"per"
            | b"more"
            | b"days"
            | b"minutes"
            | b"hours"
            | b"times"
            | b"items"
            | b"years"
            | b"months"
            | b"weeks"
    )
}

/// Street types written right after the number (`12 rue de la Paix`).
fn leading_type(w: &[u8]) -> bool {
    matches!(
        w,
        b"rue"
            | b"avenue"
            | b"av."
            | b"ave."
            | b"boulevard"
            | b"bd"
            | b"bd."
            | b"blvd"
            | b"place"
            | b"chemin"
            | b"impasse"
            | b"all\xc3\xa9e"
            | b"allee"
            | b"quai"
            | b"route"
            | b"cours"
            | b"passage"
            | b"faubourg"
    )
}

/// Words that join a street's name (`de la`, `of the`, `van der`).
fn connector(w: &[u8]) -> bool {
    matches!(
        w,
        b"de"
            | b"del"
            | b"la"
            | b"las"
            | b"los"
            | b"le"
            | b"les"
            | b"du"
            | b"des"
            | b"d'"
            | b"l'"
            | b"di"
            | b"della"
            | b"delle"
            | b"dei"
            | b"do"
            | b"da"
            | b"dos"
            | b"das"
            | b"e"
            | b"y"
            | b"of"
            | b"the"
            | b"von"
            | b"van"
            | b"der"
            | b"den"
            | b"het"
    )
}

/// `12 Main Street`, `221B Baker St.`, `12, MG Road`, `12 rue de la Paix`,
/// `42 oak street`.
fn number_first(text: &[u8], start: usize, digits_end: usize) -> Option<Street> {
    // Not the second half of a date, a range or a decimal.
    if start > 0 && (text[start - 1].is_ascii_alphanumeric() || text[start - 1] == b'.') {
        return None;
    }
    let mut p = digits_end;
    // A letter (221B), then a comma (12, MG Road).
    if text.get(p).is_some_and(u8::is_ascii_alphabetic)
        && !text.get(p + 1).is_some_and(u8::is_ascii_alphanumeric)
    {
        p += 1;
    }
    if text.get(p) == Some(&b',') {
        p += 1;
    }
    let first = p + gap(text, p)?;
    if !text
        .get(first)
        .is_some_and(|&c| c.is_ascii_alphanumeric() || c >= 0x80)
    {
        return None;
    }
    street_name(text, start, first, true)
}

/// The street name starting at `first` after the house number at
/// `start`, up to its type word. `building`: a building's name may come
/// first, once (`302, Sai Residency, MG Road`), when a strong type word
/// follows it.
fn street_name(text: &[u8], start: usize, first: usize, building: bool) -> Option<Street> {
    let mut buf = [0u8; 32];
    let first_end = word_end(text, first);
    let first_word = lower(&text[first..first_end], &mut buf);
    if leading_type(first_word) {
        return name_after_type(text, start, first_end);
    }
    let caps = capitalized(&text[first..first_end]) || text[first].is_ascii_digit();
    // A lower-case name (chat: `42 oak street`) has at most two words, and
    // no word of running text (`20 minutes on the way`).
    let words = if caps { NAME_WORDS } else { 2 };
    if !caps && function_word(first_word) {
        return None;
    }
    // The name's words, then the type word: the first strong one, or
    // else the last weak one (`Maple Hill Street`, `Oak Park`).
    let mut w = first;
    let mut end = first_end;
    let mut weak = None;
    for k in 0..=words {
        if k > 0 {
            let word = &text[w..end];
            let lw = lower(word, &mut buf);
            if !caps && function_word(lw) {
                return weak;
            }
            if let Some(strong) = english_type(lw) {
                let end = if word.ends_with(b".") && !lw.ends_with(b"st.") && lw.len() > 4 {
                    end - 1
                } else {
                    end
                };
                let street = Street {
                    start,
                    end,
                    strong: strong && caps && capitalized(word),
                };
                if street.strong || !caps {
                    return Some(street);
                }
                weak = Some(street);
            }
            // A name's words are all capitalised or all lower case.
            if capitalized(word) != caps && !word[0].is_ascii_digit() {
                return weak;
            }
        }
        if text[w..end].ends_with(b".") && k > 0 && !caps {
            return weak;
        }
        // The next word, after one gap.
        let Some(n) = gap(text, end) else {
            if building && caps && weak.is_none() && k > 0 && text.get(end) == Some(&b',') {
                let next = end + 1 + gap(text, end + 1)?;
                return street_name(text, start, next, false).filter(|s| s.strong);
            }
            return weak;
        };
        w = end + n;
        end = word_end(text, w);
        if end == w {
            return weak;
        }
    }
    weak
}

/// The name after a leading type word: capitalised words, with
/// connectors between them (`rue de la Paix`, `avenue d'Italie`).
fn name_after_type(text: &[u8], start: usize, type_end: usize) -> Option<Street> {
    let mut end = type_end;
    let mut at = type_end;
    let mut buf = [0u8; 32];
    for _ in 0..NAME_WORDS + 2 {
        let Some(n) = gap(text, at) else {
            break;
        };
        let w = at + n;
        let e = word_end(text, w);
        let word = text[w..e].strip_suffix(b",").unwrap_or(&text[w..e]);
        if word.is_empty() {
            break;
        }
        let lw = lower(word, &mut buf);
        let elided = lw.len() > 2 && (lw.starts_with(b"d'") || lw.starts_with(b"l'"));
        if capitalized(word) || elided {
            end = w + word.len();
        } else if !connector(lw) {
            break;
        }
        // A connector joins the street only when a name follows it.
        at = w + word.len();
        if at != e {
            break;
        }
    }
    (end > type_end).then_some(Street {
        start,
        end,
        strong: true,
    })
}

/// Germanic and Dutch street words written as the end of one word
/// (`Hauptstraße`, `Keizersgracht`).
const COMPOUND_ENDS: &[&[u8]] = &[
    b"stra\xc3\x9fe",
    b"strasse",
    b"str.",
    b"weg",
    b"gasse",
    b"platz",
    b"allee",
    b"damm",
    b"ufer",
    b"chaussee",
    b"steig",
    b"pfad",
    b"straat",
    b"laan",
    b"plein",
    b"gracht",
    b"kade",
    b"singel",
    b"dijk",
    b"dreef",
];

/// Street types before a street's name (`Calle Mayor`, `Via Roma`), and
/// standalone Germanic ones after it (`Berliner Straße`). `true`: strong.
fn prefix_type(w: &[u8]) -> Option<bool> {
    Some(match w {
        b"calle" | b"c/" | b"avenida" | b"avda" | b"avda." | b"paseo" | b"p\xc2\xba"
        | b"carrer" | b"carretera" | b"travesia" | b"traves\xc3\xada" | b"viale" | b"piazza"
        | b"piazzale" | b"vicolo" | b"rua" | b"travessa" | b"estrada" | b"pra\xc3\xa7a"
        | b"rambla" => true,
        b"via" | b"av" | b"av." | b"plaza" | b"pza." | b"largo" | b"corso" | b"ronda"
        | b"camino" | b"alameda" | b"boulevard" => false,
        _ => return None,
    })
}

/// A standalone Germanic or Dutch type word after the name.
fn standalone_type(w: &[u8]) -> Option<bool> {
    Some(match w {
        b"stra\xc3\x9fe" | b"strasse" | b"str." | b"allee" | b"gasse" | b"straat" | b"laan"
        | b"kade" => true,
        b"platz" | b"weg" | b"ring" | b"damm" | b"ufer" | b"markt" | b"plein" => false,
        _ => return None,
    })
}

/// `Hauptstraße 12`, `Berliner Straße 5`, `Calle Mayor, 5`, `Via Roma n. 10`.
fn street_first(text: &[u8], start: usize, digits_end: usize) -> Option<Street> {
    // The number's own end: a letter (5a) stays with it; anything glued
    // beyond is no house number.
    let mut end = digits_end;
    if text.get(end).is_some_and(u8::is_ascii_alphabetic) {
        end += 1;
    }
    if text.get(end).is_some_and(u8::is_ascii_alphanumeric) {
        return None;
    }
    // Before the number: a space, maybe `nº`/`Nr.`, maybe a comma.
    let mut p = start - gap_before(text, start)?;
    let mut buf = [0u8; 32];
    let s = word_start(text, p);
    if s < p
        && matches!(
            lower(&text[s..p], &mut buf),
            b"n\xc2\xba" | b"n\xc2\xb0" | b"no." | b"nr." | b"n." | b"nro." | b"num."
        )
    {
        p = s - gap_before(text, s)?;
    }
    if p > 0 && text[p - 1] == b',' {
        p -= 1;
    }
    // The word before: a compound street (Hauptstraße), or the last word of
    // a name whose type stands before it (Calle Mayor) or after it
    // (Berliner Straße).
    let last_start = word_start(text, p);
    if last_start == p || !capitalized(&text[last_start..p]) {
        return None;
    }
    let last = lower(&text[last_start..p], &mut buf);
    if let Some(e) = COMPOUND_ENDS.iter().find(|e| last.ends_with(e)) {
        if last.len() > e.len() + 1 {
            return Some(Street {
                start: last_start,
                end,
                strong: true,
            });
        }
    }
    if let Some(strong) = standalone_type(last) {
        // A capitalised word before it names the street (Berliner Straße, Am Markt).
        let before = previous_word(text, last_start)?;
        return capitalized(&text[before..]).then_some(Street {
            start: before,
            end,
            strong,
        });
    }
    // Back over the name to the type word before it.
    let mut w = last_start;
    for _ in 0..NAME_WORDS {
        let prev = previous_word(text, w)?;
        let word = &text[prev..word_end(text, prev)];
        let lw = lower(word, &mut buf);
        if let Some(strong) = prefix_type(lw) {
            return capitalized(word).then_some(Street {
                start: prev,
                end,
                strong,
            });
        }
        if !(capitalized(word) || connector(lw)) {
            return None;
        }
        w = prev;
    }
    None
}

/// The start of the word before the one starting at `w`, one gap between.
fn previous_word(text: &[u8], w: usize) -> Option<usize> {
    let e = w - gap_before(text, w)?;
    let s = word_start(text, e);
    (s < e).then_some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find(text: &str) -> Option<&str> {
        let g = Grammar::new();
        let mut out = Vec::new();
        let b = text.as_bytes();
        let mut i = 0;
        while i < b.len() {
            if b[i].is_ascii_digit() && (i == 0 || !b[i - 1].is_ascii_digit()) {
                let mut e = i;
                while e < b.len() && b[e].is_ascii_digit() {
                    e += 1;
                }
                at_number(&g, b, i, e, &mut out);
                if !out.is_empty() {
                    break;
                }
            }
            i += 1;
        }
        out.first().map(|c| &text[c.start..c.end])
    }

    #[test]
    fn addresses_of_each_country_are_found_whole() {
        for (text, want) in [
            (
                "Ship it to 1600 Pennsylvania Avenue NW, Washington, DC 20500 please.",
                "1600 Pennsylvania Avenue NW, Washington, DC 20500",
            ),
            (
                "my address is 42 oak street, apt 3, springfield il 62704",
                "42 oak street",
            ),
            (
                "Customer lives at 10 Downing Street, London SW1A 2AA.",
                "10 Downing Street, London SW1A 2AA",
            ),
            // A unit before the number; an Irish county (and its Eircode)
            // ends an address; a building's name before the street.
            (
                "Customer: Flat 2, 14 Kings Road, London SW3 4NB",
                "Flat 2, 14 Kings Road, London SW3 4NB",
            ),
            (
                "it's 77 Main Street, Ballincollig, Co. Cork",
                "77 Main Street, Ballincollig, Co. Cork",
            ),
            (
                "12 Oak Lane, Ballina, County Mayo F26 X2Y4",
                "12 Oak Lane, Ballina, County Mayo F26 X2Y4",
            ),
            (
                "my address is Flat 302, Sai Residency, MG Road, Bengaluru 560001",
                "Flat 302, Sai Residency, MG Road, Bengaluru 560001",
            ),
            (
                "Address: 221B Baker Street, London NW1 6XE, United Kingdom",
                "221B Baker Street, London NW1 6XE, United Kingdom",
            ),
            (
                "Please send to Hauptstraße 12, 10115 Berlin.",
                "Hauptstraße 12, 10115 Berlin",
            ),
            (
                "Lieferadresse: Musterstr. 5a, 80331 München",
                "Musterstr. 5a, 80331 München",
            ),
            (
                "Adres: Keizersgracht 123, 1015 CJ Amsterdam",
                "Keizersgracht 123, 1015 CJ Amsterdam",
            ),
            (
                "Adresse : 12 rue de la Paix, 75002 Paris",
                "12 rue de la Paix, 75002 Paris",
            ),
            (
                "Dirección: Calle Mayor 5, 28013 Madrid",
                "Calle Mayor 5, 28013 Madrid",
            ),
            (
                "Av. Insurgentes Sur 1234, Col. Roma, C.P. 06700, Ciudad de México",
                "Av. Insurgentes Sur 1234, Col. Roma, C.P. 06700, Ciudad de México",
            ),
            (
                "Address: 12, MG Road, Indiranagar, Bengaluru 560038",
                "12, MG Road, Indiranagar, Bengaluru 560038",
            ),
            (
                "Residence: Via Roma 10, 00184 Roma RM",
                "Via Roma 10, 00184 Roma RM",
            ),
            (
                "Address 14 Grafton Street, Dublin 2, D02 XY45",
                "14 Grafton Street, Dublin 2, D02 XY45",
            ),
            (
                "The customer's address is 55 Elm Dr., Apt 2B, Austin, TX 78701.",
                "55 Elm Dr., Apt 2B, Austin, TX 78701",
            ),
            (
                "Berliner Straße 5\n10117 Berlin",
                "Berliner Straße 5\n10117 Berlin",
            ),
            (
                "Calle de Alcalá, 23, 28014 Madrid",
                "Calle de Alcalá, 23, 28014 Madrid",
            ),
        ] {
            assert_eq!(find(text), Some(want), "{text:?}");
        }
    }

    /// The locality's letters are the Latin alphabets' (Latin-1,
    /// Extended-A and -B): a place written in another script ends the
    /// address before it.
    #[test]
    fn localities_in_every_latin_alphabet_are_read() {
        for (text, want) in [
            (
                "Adresse: Seestraße 4, 8002 Zürich-Enge",
                "Seestraße 4, 8002 Zürich-Enge",
            ),
            // Ł and ó (Extended-A and Latin-1), Ș (Extended-B).
            (
                "Ship to 14 Kings Road, Łódź Óbuda, SW3 4NB",
                "14 Kings Road, Łódź Óbuda, SW3 4NB",
            ),
            (
                "Address: 5 Main Street, Șoseaua Nord, SW3 4NB",
                "5 Main Street, Șoseaua Nord, SW3 4NB",
            ),
            (
                "Adresse : 12 rue de la Paix, 75002 Île-d'Ôrléans",
                "12 rue de la Paix, 75002 Île-d'Ôrléans",
            ),
            // Greek: the street stands, the locality is not read.
            ("Address: 14 Kings Road, Αθήνα SW3 4NB", "14 Kings Road"),
        ] {
            assert_eq!(find(text), Some(want), "{text:?}");
        }
    }

    #[test]
    fn numbers_beside_ordinary_words_are_not_addresses() {
        for text in [
            "I waited 20 minutes on the way here",
            "we had 3 main questions",
            "Offering 3 plans",
            "Spring 2024 catalogue",
            "sent Via Email 3 times",
            "auf Platz 1 der Liste",
            "Order 12345 shipped",
            "Room 5 Park",
            "version 2 of the road map",
            // A building's name needs a strong street type after it.
            "Ticket 302, Sai Kumar, Bengaluru",
            "5, Green Park, Road closed",
        ] {
            assert_eq!(find(text), None, "{text:?}");
        }
    }

    proptest::proptest! {
        /// Generated addresses of each order and country are found, from
        /// the street to the postcode.
        #[test]
        fn generated_addresses_are_found_whole(
            number in 1u32..99_999,
            letter in proptest::sample::select(vec!["", "A", "b"]),
            name in proptest::sample::select(vec!["Oak", "Maple Hill", "St. Mary's", "O'Connell", "Martin Luther King", "Müller", "Álvarez"]),
            english in proptest::sample::select(vec!["Street", "St", "Avenue", "Ave.", "Road", "Rd", "Lane", "Drive", "Blvd", "Court", "Way", "Nagar"]),
            compound in proptest::sample::select(vec!["straße", "strasse", "str.", "weg", "gasse", "platz", "allee", "straat", "laan", "gracht", "kade"]),
            prefix in proptest::sample::select(vec!["Calle", "Avenida", "Rua", "Piazza", "Carrer", "Paseo"]),
            french in proptest::sample::select(vec!["rue", "avenue", "boulevard", "place", "chemin", "allée", "quai"]),
            sep in proptest::sample::select(vec![", ", "\n", "\\n"]),
            place in proptest::sample::select(vec![
                "Austin, TX 78701", "Springfield IL 62704-1234", "London SW1A 2AA", "Leeds LS2 9NZ",
                "10115 Berlin", "1015 CJ Amsterdam", "75002 Paris", "28013 Madrid", "00184 Roma RM",
                "Bengaluru 560038", "C.P. 06700", "Dublin 2", "Cork T12 X70A", "Toronto, ON M5V 3L9",
            ]),
            order in 0usize..4,
        ) {
            let stem = name.split(' ').next_back().unwrap_or(name);
            let street = match order {
                0 => format!("{number}{letter} {name} {english}"),
                1 => format!("{stem}{compound} {number}{letter}"),
                2 => format!("{prefix} {name} {number}"),
                _ => format!("{number} {french} de la {name}"),
            };
            let want = format!("{street}{sep}{place}");
            let text = format!("Customer says: {want}. Thanks");
            proptest::prop_assert_eq!(find(&text), Some(want.as_str()), "{:?}", text);
        }

        /// A number beside ordinary words, with no type word and no cue,
        /// is no address; nor is a lower-case street with neither a cue
        /// nor a postcode.
        #[test]
        fn near_misses_are_not_addresses(
            number in 1u32..99_999,
            words in proptest::sample::select(vec![
                "minutes on the way", "items in the cart", "days to go", "more questions",
                "main reasons", "people in the lane", "euros per street", "times a day",
            ]),
            lead in proptest::sample::select(vec!["I waited", "we have", "about", "only", "Order"]),
        ) {
            let text = format!("{lead} {number} {words}.");
            proptest::prop_assert_eq!(find(&text), None, "{:?}", text);
        }
    }
}
