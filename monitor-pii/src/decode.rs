//! Decoded views of the input, so values hidden by URL-encoding, JSON
//! `\u` escapes or base64 are seen too. Every view maps its bytes back to
//! offsets in the original, so findings are always reported there.

use base64::Engine as _;

use crate::bytemask::{self, BLOCK};

/// A decoded copy and, for each byte, the original span it came from.
pub struct View {
    /// Decoded bytes.
    pub bytes: Vec<u8>,
    /// Original start offset of each decoded byte.
    pub starts: Vec<u32>,
    /// Original end offset of each decoded byte.
    pub ends: Vec<u32>,
}

impl View {
    fn with_capacity(n: usize) -> Self {
        Self {
            bytes: Vec::with_capacity(n),
            starts: Vec::with_capacity(n),
            ends: Vec::with_capacity(n),
        }
    }

    fn push(&mut self, b: u8, start: usize, end: usize) {
        self.bytes.push(b);
        self.starts.push(start as u32);
        self.ends.push(end as u32);
    }

    /// The original span of decoded bytes `start..end`.
    pub fn original(&self, start: usize, end: usize) -> (usize, usize) {
        (self.starts[start] as usize, self.ends[end - 1] as usize)
    }
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// How far around an escape a decoded view reaches, in bytes: past the
/// longest value an escape can sit inside of that the scanner reports, and
/// the hotword window around it.
pub const REGION_MARGIN: usize = 1024;

/// The stretches of `text` worth decoding: every `%XX`, form-encoded
/// space (see [`form_space_at`]) and `\u` with `margin`
/// bytes on each side, overlapping stretches merged. A value holding no
/// escape is the same in the raw text, where it is found already; so a
/// text with one escape is decoded around it, not whole.
pub fn escaped_regions(text: &[u8], margin: usize) -> Vec<(usize, usize)> {
    // One pass for every escape byte; the positions come in order.
    let escapes = memchr::memchr3_iter(b'%', b'+', b'\\', text).filter(|&p| match text[p] {
        b'\\' => text.get(p + 1) == Some(&b'u'),
        _ => url_escape(text, p),
    });
    let mut regions: Vec<(usize, usize)> = Vec::new();
    for p in escapes {
        // An escape is at most six bytes (`\uXXXX`).
        let (s, e) = (p.saturating_sub(margin), (p + 6 + margin).min(text.len()));
        match regions.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => regions.push((s, e)),
        }
    }
    regions
}

/// Whether the `%` or `+` at `p` is something [`url_decoded`] decodes:
/// a `%XX` escape or a form-encoded space between digits.
fn url_escape(text: &[u8], p: usize) -> bool {
    match text[p] {
        b'%' => url_escape_at(text, p),
        _ => form_space_at(text, p),
    }
}

/// Whether a `%XX` escape starts at `p`.
fn url_escape_at(text: &[u8], p: usize) -> bool {
    text.len() > p + 2 && hex(text[p + 1]).is_some() && hex(text[p + 2]).is_some()
}

/// Whether the `+` at `p` is a form-encoded space:
/// - inside a number: two digits on each side, as in a card typed with
///   spaces and posted as `card=4111+1111+1111+1111` (a `+` in base64 or
///   arithmetic rarely has two digits on both sides; a stray one costs
///   one region's decoding);
/// - or between the words of a form value (`customer=Maria+Lopez`): a
///   word of letters starting right after `=` before it, a letter after
///   it (base64 has no `=` but at its end).
fn form_space_at(text: &[u8], p: usize) -> bool {
    let digits = |r: std::ops::Range<usize>| {
        text.get(r)
            .is_some_and(|d| d.iter().all(u8::is_ascii_digit))
    };
    if p >= 2 && digits(p - 2..p) && digits(p + 1..p + 3) {
        return true;
    }
    if !text.get(p + 1).is_some_and(u8::is_ascii_alphabetic) {
        return false;
    }
    let letters = text[..p]
        .iter()
        .rev()
        .take(25)
        .take_while(|c| c.is_ascii_alphabetic())
        .count();
    (1..=24).contains(&letters) && p > letters && text[p - letters - 1] == b'='
}

/// `%XX` decoding and `+` as space, when the input has a `%XX` or a
/// form-encoded space (see [`form_space_at`]).
pub fn url_decoded(text: &[u8]) -> Option<View> {
    if !memchr::memchr2_iter(b'%', b'+', text).any(|p| url_escape(text, p)) {
        return None;
    }
    let mut v = View::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        let c = text[i];
        if c == b'%' && i + 2 < text.len() {
            if let (Some(h), Some(l)) = (hex(text[i + 1]), hex(text[i + 2])) {
                v.push(h << 4 | l, i, i + 3);
                i += 3;
                continue;
            }
        }
        v.push(if c == b'+' { b' ' } else { c }, i, i + 1);
        i += 1;
    }
    Some(v)
}

/// JSON string escapes decoded (`\uXXXX` to UTF-8, `\n`, `\"`, ...), when the input has `\u`.
pub fn json_unescaped(text: &[u8]) -> Option<View> {
    memchr::memmem::find(text, b"\\u")?;
    let mut v = View::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        if text[i] == b'\\' && i + 1 < text.len() {
            let simple = match text[i + 1] {
                b'n' => Some(b'\n'),
                b't' => Some(b'\t'),
                b'r' => Some(b'\r'),
                b'"' => Some(b'"'),
                b'\\' => Some(b'\\'),
                b'/' => Some(b'/'),
                _ => None,
            };
            if let Some(b) = simple {
                v.push(b, i, i + 2);
                i += 2;
                continue;
            }
            if text[i + 1] == b'u' && i + 6 <= text.len() {
                let code = text[i + 2..i + 6]
                    .iter()
                    .try_fold(0u32, |a, &c| hex(c).map(|h| a << 4 | u32::from(h)));
                if let Some(ch) = code.and_then(char::from_u32) {
                    let mut buf = [0u8; 4];
                    for &b in ch.encode_utf8(&mut buf).as_bytes() {
                        v.push(b, i, i + 6);
                    }
                    i += 6;
                    continue;
                }
            }
        }
        v.push(text[i], i, i + 1);
        i += 1;
    }
    Some(v)
}

/// Shortest base64 run worth decoding.
pub const MIN_BASE64: usize = 16;
const _: () = assert!(MIN_BASE64 == 16, "runs_of_16 finds runs of sixteen");

/// Runs of base64 (standard or URL-safe) characters at least [`MIN_BASE64`] long
/// that mix cases or digits (so plain long words are not decoded).
///
/// Each 64-byte block is first tested for a cheap superset of the alphabet
/// ([`bytemask::base64_loose`]) as a bit mask; and-ing that mask (joined with
/// the next block's) with itself shifted by 1, 2, 4 and 8 leaves a bit
/// wherever sixteen such bytes in a row start. Ordinary text (words between
/// spaces, log timestamps with their colons) has none, so its blocks are
/// passed over after two range compares;
/// only blocks with a long superset run get the exact base64 masks, which
/// then serve every run starting in the block and give where it ends.
pub fn base64_runs(text: &[u8]) -> Vec<(usize, usize)> {
    let n = text.len();
    let blocks = bytemask::Blocks::new(text);
    let superset = |base: usize| blocks.base64_loose(base);
    let exact = |base: usize| blocks.base64(base);
    let mut runs = Vec::new();
    let mut base = 0;
    let mut cur = superset(0);
    // Bytes before `pos` belong to runs already taken.
    let mut pos = 0;
    'blocks: while base < n {
        let next = superset(base + BLOCK);
        if runs_of_16(cur, next) & u64::MAX << (pos - base) != 0 {
            // The exact masks of this block and the next, once, serve
            // every run starting in this block: where it starts, and where
            // it ends while they reach.
            let (lo, hi) = (exact(base), exact(base + BLOCK));
            let window = u128::from(hi) << BLOCK | u128::from(lo);
            let starts = runs_of_16(lo, hi);
            loop {
                let long = starts & u64::MAX << (pos - base);
                if long == 0 {
                    break;
                }
                let k = long.trailing_zeros() as usize;
                let s = base + k;
                let inside = (!(window >> k)).trailing_zeros() as usize;
                let mut i = s + inside;
                if inside == 2 * BLOCK - k {
                    // Past the masks: a long run goes on byte by byte.
                    i += text[i..]
                        .iter()
                        .take_while(|&&c| bytemask::is_base64(c))
                        .count();
                }
                let e = run_found(text, s, i, &mut runs);
                if e - base >= BLOCK {
                    (base, pos) = (e, e);
                    cur = superset(e);
                    continue 'blocks;
                }
                pos = e;
            }
        }
        base += BLOCK;
        pos = base;
        cur = next;
    }
    runs
}

/// The run of base64 bytes `text[s..i]`: taken, with up to two `=` of
/// padding, if it mixes cases and has a digit or 24 bytes. Returns its
/// end, padding included.
fn run_found(text: &[u8], s: usize, i: usize, runs: &mut Vec<(usize, usize)>) -> usize {
    let mut e = i;
    while e < text.len() && text[e] == b'=' && e - i < 2 {
        e += 1;
    }
    let seen = classes(&text[s..i]);
    let mixed = seen & (UPPER | LOWER) == UPPER | LOWER;
    if mixed && (seen & DIGIT != 0 || e - s >= 24) {
        runs.push((s, e));
    }
    e
}

/// What [`classes`] finds in a run: capitals, small letters, digits.
const UPPER: u8 = 1;
const LOWER: u8 = 2;
const DIGIT: u8 = 4;

/// Which of capitals, small letters and digits a run of base64 bytes (at
/// least eight) has, eight bytes at a time. In the alphabet, small letters
/// are the bytes with bits 6 and 5 set, capitals those with bit 6 alone
/// (as `_` has), digits those with bit 4 but not bit 6.
fn classes(run: &[u8]) -> u8 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const BIT6: u64 = ONES * 0x40;
    let word = |k: usize| u64::from_le_bytes(run[k..k + 8].try_into().expect("eight bytes"));
    let (mut upper, mut lower, mut digit) = (0, 0, 0);
    // Whole words, then the last eight bytes (overlapping: or-ing twice is harmless).
    for k in (0..run.len() - 7).step_by(8).chain([run.len() - 8]) {
        let x = word(k);
        let (b6, b5, b4) = (x & BIT6, x << 1 & BIT6, x << 2 & BIT6);
        // Of those with bit 6 alone, `_` (0x5F) is the one whose low five
        // bits are all ones: adding one carries into bit 5.
        let underscore = ((x & (ONES * 0x1F)) + ONES) << 1 & BIT6;
        upper |= b6 & !b5 & !underscore;
        lower |= b6 & b5;
        digit |= !b6 & b4;
    }
    (u8::from(upper != 0) * UPPER) | (u8::from(lower != 0) * LOWER) | (u8::from(digit != 0) * DIGIT)
}

/// Bit k: bits k..k+16 of the 128 bits `lo`, `hi` are all set (k < 64).
/// Sixteen is [`MIN_BASE64`].
#[inline]
fn runs_of_16(lo: u64, hi: u64) -> u64 {
    // Bits 0..32 need bits up to 47, found in `lo`; bits 32..64 need bits
    // up to 79, found in the 64 bits from bit 32. Two independent u64
    // chains are shorter than one of 128-bit shifts.
    let starts = |w: u64| {
        let mut long = w & w >> 1;
        long &= long >> 2;
        long &= long >> 4;
        long & long >> 8
    };
    let mid = lo >> 32 | hi << 32;
    starts(lo) & 0xFFFF_FFFF | starts(mid) << 32
}

/// Decodes a base64 run if it decodes (either alphabet) to mostly printable text.
pub fn base64_text(run: &[u8]) -> Option<Vec<u8>> {
    use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
    let trimmed = run
        .strip_suffix(b"==")
        .or_else(|| run.strip_suffix(b"="))
        .unwrap_or(run);
    let decoded = STANDARD_NO_PAD
        .decode(trimmed)
        .or_else(|_| URL_SAFE_NO_PAD.decode(trimmed))
        .or_else(|_| STANDARD_NO_PAD.decode(&trimmed[..trimmed.len() / 4 * 4]))
        .ok()?;
    let printable = decoded
        .iter()
        .filter(|&&c| c.is_ascii_graphic() || c == b' ' || c == b'\n' || c == b'\t' || c >= 0x80)
        .count();
    (decoded.len() >= 8 && printable * 10 >= decoded.len() * 9).then_some(decoded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaped_regions_surround_each_escape() {
        let mut text = vec![b'x'; 10_000];
        text[100..103].copy_from_slice(b"%41");
        text[150..156].copy_from_slice(b"\\u0041");
        text[9_000..9_003].copy_from_slice(b"%zz");
        text[9_990..9_993].copy_from_slice(b"%2f");
        assert_eq!(
            escaped_regions(&text, 64),
            vec![(36, 150 + 6 + 64), (9_990 - 64, 10_000)]
        );
        assert!(escaped_regions(b"100% sure, \\n only", 64).is_empty());
        assert_eq!(escaped_regions(b"card=4111+1111", 64), vec![(0, 14)]);
        assert!(escaped_regions(b"C++ 1+1 +12 12+ dGVzdA+x", 64).is_empty());
        // A form value's words: a word right after `=`, a letter after.
        assert_eq!(
            escaped_regions(b"GET /?customer=Maria+Lopez&x=1", 64),
            vec![(0, 30)]
        );
        assert_eq!(escaped_regions(b"q=refund+status", 64), vec![(0, 15)]);
        // Not after a space, with no word, or with no letter after.
        for text in [&b"x = a+b"[..], b"=+a", b"n=Jo+ Li", b"n=Jo+1"] {
            assert!(escaped_regions(text, 64).is_empty(), "{text:?}");
        }
    }

    #[test]
    fn url_view_maps_back() {
        let v = url_decoded(b"card=4111%201111+1111").unwrap();
        assert_eq!(v.bytes, b"card=4111 1111 1111");
        assert_eq!(v.original(5, 19), (5, 21));
        assert!(url_decoded(b"100% sure").is_none());
        let v = url_decoded(b"n=Jo+Li&card=4111+1111").unwrap();
        assert_eq!(v.bytes, b"n=Jo Li&card=4111 1111");
        assert!(url_decoded(b"+1 202 and 1+1").is_none());
    }

    #[test]
    fn json_view_decodes_unicode_escapes() {
        let v = json_unescaped(br#"{"t":"\u0034111 1111"}"#).unwrap();
        assert_eq!(v.bytes, br#"{"t":"4111 1111"}"#);
        assert_eq!(v.original(6, 7), (6, 12));
    }

    /// Maximal base64 runs of sixteen or more bytes (with up to two `=`),
    /// byte by byte.
    fn runs_by_byte(text: &[u8]) -> Vec<(usize, usize)> {
        let mut runs = Vec::new();
        let mut i = 0;
        while i < text.len() {
            let s = i;
            while i < text.len() && bytemask::is_base64(text[i]) {
                i += 1;
            }
            if i - s < MIN_BASE64 {
                i = i.max(s + 1);
                continue;
            }
            let mut e = i;
            while e < text.len() && text[e] == b'=' && e - i < 2 {
                e += 1;
            }
            let has = |f: fn(&u8) -> bool| text[s..i].iter().any(f);
            let mixed = has(u8::is_ascii_uppercase) && has(u8::is_ascii_lowercase);
            if mixed && (has(u8::is_ascii_digit) || e - s >= 24) {
                runs.push((s, e));
            }
            i = e;
        }
        runs
    }

    proptest::proptest! {
        #[test]
        fn base64_runs_match_the_byte_by_byte_search(
            text in proptest::collection::vec(proptest::sample::select(b"aZ9+/_=. \n\xc3".to_vec()), 0..400),
            long in proptest::collection::vec(
                (
                    0usize..400,
                    10usize..90,
                    // Mixed, or lacking capitals, small letters or digits
                    // (`_` is no capital, though bit 6 alone is set in both).
                    proptest::sample::select(vec![
                        &b"Ab3xY+/q9_Z"[..], b"abc_def-ghi_", b"ABC_DEF9_", b"a_b_c_d_", b"1234-5678",
                        b"ab_12", b"_Z_z_", b"Az+/",
                    ]),
                ),
                0..4,
            ),
        ) {
            // Long base64 stretches at random places, so runs cross blocks.
            let mut text = text;
            for (at, len, pattern) in long {
                let at = at.min(text.len());
                let fill: Vec<u8> = (0..len).map(|k| pattern[k % pattern.len()]).collect();
                text.splice(at..at, fill);
            }
            proptest::prop_assert_eq!(base64_runs(&text), runs_by_byte(&text));
        }
    }

    #[test]
    fn base64_runs_and_text() {
        let enc = "NDExMSAxMTExIDExMTEgMTExMQ==";
        let text = format!("data {enc} end");
        let runs = base64_runs(text.as_bytes());
        assert_eq!(runs, vec![(5, 5 + enc.len())]);
        assert_eq!(base64_text(enc.as_bytes()).unwrap(), b"4111 1111 1111 1111");
        assert!(base64_runs(b"internationalization is long").is_empty());
    }
}
