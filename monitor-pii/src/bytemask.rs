//! Byte classes of up to 64 bytes at once, as bit masks (bit k: byte k).
//!
//! The passes that look at every byte (digit groups, word starts for
//! hotwords, base64 runs) ask which bytes of a block are digits, letters or
//! base64, then walk the set bits. On x86-64 the classes come from SSE2
//! compares, sixteen bytes per instruction (SSE2 is part of every x86-64
//! CPU, so no runtime check is needed); elsewhere from the same tests on
//! eight bytes in a `u64`. Both are checked against the byte-at-a-time
//! definitions.

/// The block size.
pub const BLOCK: usize = 64;

/// Masks of `chunk` (at most [`BLOCK`] bytes; bits past its end are clear).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Masks {
    /// `0-9`.
    pub digit: u64,
    /// `A-Z` and `a-z`.
    pub letter: u64,
}

impl Masks {
    /// The classes of each byte of `chunk`.
    pub fn of(chunk: &[u8]) -> Self {
        debug_assert!(chunk.len() <= BLOCK);
        if chunk.len() == BLOCK {
            return lanes::masks(chunk.try_into().expect("a whole block"));
        }
        // A short tail: zero bytes belong to no class.
        let mut block = [0u8; BLOCK];
        block[..chunk.len()].copy_from_slice(chunk);
        lanes::masks(&block)
    }
}

/// A text read as whole blocks, for passes that ask several classes of
/// each block. A block that runs past the text's end is read as the
/// text's last [`BLOCK`] bytes, the answer shifted into place, so nothing
/// is copied; only a text shorter than a block is read from a zero-padded
/// copy, made once. (Padding a copy for each question cost a short
/// record about a tenth of its scan.)
pub struct Blocks<'a> {
    text: &'a [u8],
    /// The text padded with zeros, when it is shorter than a block.
    short: [u8; BLOCK],
}

impl<'a> Blocks<'a> {
    /// The blocks of `text`.
    #[inline]
    pub fn new(text: &'a [u8]) -> Self {
        let mut short = [0u8; BLOCK];
        if text.len() < BLOCK {
            short[..text.len()].copy_from_slice(text);
        }
        Self { text, short }
    }

    /// The bytes to read for the block starting at `base`, how far down
    /// their answer is shifted, and which of its bits are the text's; or
    /// `None` when `base` is past the text's end.
    #[inline(always)]
    fn window(&self, base: usize) -> Option<(&[u8; BLOCK], usize, u64)> {
        let n = self.text.len();
        let whole = |at: usize| self.text[at..at + BLOCK].try_into().expect("a whole block");
        if base + BLOCK <= n {
            Some((whole(base), 0, u64::MAX))
        } else if base >= n {
            None
        } else if n >= BLOCK {
            // The last BLOCK bytes: byte `base + k` is their byte `k + shift`.
            Some((whole(n - BLOCK), base + BLOCK - n, u64::MAX))
        } else {
            Some((&self.short, base, u64::MAX >> (BLOCK - (n - base))))
        }
    }

    /// `whole`'s answer for the block starting at `base`: bit k for byte
    /// `base + k`, bits past the text's end clear (0 when `base` is past it).
    #[inline(always)]
    fn bits(&self, base: usize, whole: impl FnOnce(&[u8; BLOCK]) -> u64) -> u64 {
        self.window(base)
            .map_or(0, |(block, shift, keep)| (whole(block) >> shift) & keep)
    }

    /// [`Masks::of`] the block at `base`.
    #[inline]
    pub fn masks(&self, base: usize) -> Masks {
        self.window(base)
            .map_or(Masks::default(), |(block, shift, keep)| {
                let m = lanes::masks(block);
                Masks {
                    digit: (m.digit >> shift) & keep,
                    letter: (m.letter >> shift) & keep,
                }
            })
    }

    /// Bytes of the block at `base` within `lo..=hi` (`hi` ASCII). Much
    /// cheaper than [`Blocks::masks`], so a pass can rule out blocks of
    /// ordinary text before classifying them.
    #[inline]
    pub fn in_range(&self, base: usize, lo: u8, hi: u8) -> u64 {
        debug_assert!(lo <= hi && hi < 0x80);
        self.bits(base, |b| lanes::range_bits(b, lo, hi))
    }

    /// Bytes of the block at `base` equal to each of `bytes`, a mask each,
    /// from one read of the block: what a pass that stops at several
    /// punctuation bytes asks of each block.
    #[inline]
    pub fn equal<const N: usize>(&self, base: usize, bytes: [u8; N]) -> [u64; N] {
        self.window(base).map_or([0; N], |(block, shift, keep)| {
            lanes::equal_bits(block, bytes).map(|m| (m >> shift) & keep)
        })
    }

    /// Bytes of the block at `base` in either base64 alphabet ([`is_base64`]).
    #[inline]
    pub fn base64(&self, base: usize) -> u64 {
        self.bits(base, lanes::base64_bits)
    }

    /// Bytes of the block at `base` in a superset of base64
    /// ([`is_base64_loose`]): two range compares, so it rules out ordinary
    /// text at a fraction of the cost of [`Blocks::base64`].
    #[inline]
    pub fn base64_loose(&self, base: usize) -> u64 {
        self.bits(base, lanes::base64_loose_bits)
    }
}

/// The byte test behind [`Blocks::base64_loose`]: `+`..=`9` or `A`..=`z`,
/// every base64 byte and a few others (`, . [ \ ] ^` and backquote).
pub fn is_base64_loose(c: u8) -> bool {
    matches!(c, b'+'..=b'9' | b'A'..=b'z')
}

/// The byte test behind [`Blocks::base64`]: either base64 alphabet,
/// `A-Z a-z 0-9 + / - _`.
pub fn is_base64(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'+' | b'/' | b'-' | b'_')
}

/// Letter pairs: each first letter, with the letters that may follow it
/// (all lowercase; either case matches, and so may a few other bytes that
/// fold onto them).
pub type Pairs<'a> = &'a [(u8, &'a [u8])];

/// Whether `window` holds one of `pairs`. Sixteen pairs of bytes at a time.
#[inline(always)]
pub fn has_letter_pair(window: &[u8], pairs: Pairs<'_>) -> bool {
    let mut k = 0;
    // Pairs k..k + 16 read bytes k..k + 17.
    while k + 17 <= window.len() {
        let bytes = window[k..k + 17].try_into().expect("seventeen bytes");
        if lanes::letter_pairs(bytes, pairs) {
            return true;
        }
        k += 16;
    }
    window[k..].windows(2).any(|w| {
        pairs
            .iter()
            .any(|&(first, seconds)| w[0] | 0x20 == first && seconds.contains(&(w[1] | 0x20)))
    })
}

/// The longest text [`pair_starts`] reads. Past it a search for the
/// pairs' literals costs more than a Teddy search for them (a connection's
/// 392 bytes scanned at once took 8% longer).
pub const PAIR_TEXT_MAX: usize = 128;

/// Where one of `pairs` (exact bytes: each first byte with the bytes that
/// may follow it) starts in `text` (at most [`PAIR_TEXT_MAX`] bytes), as
/// a bit set: bit `k % 64` of word `k / 64` for position `k`. Sixteen
/// positions per step; a pair's second byte past the end is read as zero,
/// which no pair holds.
pub fn pair_starts(text: &[u8], pairs: Pairs<'_>) -> [u64; PAIR_TEXT_MAX / BLOCK] {
    assert!(text.len() <= PAIR_TEXT_MAX, "a short text");
    let mut bits = [0u64; PAIR_TEXT_MAX / BLOCK];
    let mut k = 0;
    while k + 17 <= text.len() {
        let window = text[k..k + 17].try_into().expect("seventeen bytes");
        bits[k / BLOCK] |= lanes::exact_pairs(window, pairs) << (k % BLOCK);
        k += 16;
    }
    if k < text.len() {
        let mut window = [0u8; 17];
        window[..text.len() - k].copy_from_slice(&text[k..]);
        bits[k / BLOCK] |= lanes::exact_pairs(&window, pairs) << (k % BLOCK);
    }
    bits
}

/// A class of bytes [`Classes::run_end`] can skip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Run {
    /// `0-9`.
    Digits,
    /// `A-Z a-z 0-9 _`: an identifier.
    Word,
}

impl Run {
    /// The byte test.
    pub fn holds(self, c: u8) -> bool {
        match self {
            Run::Digits => c.is_ascii_digit(),
            Run::Word => c.is_ascii_alphanumeric() || c == b'_',
        }
    }
}

/// The [`Masks`] of a text, one aligned block at a time. The block last
/// asked about is kept: a pass that walks forward through nearby bytes
/// (a run start, the group's digit runs, the word after it, the next run
/// start) classifies each block once, and then finds a run's end with a
/// shift and a bit scan.
pub struct Classes<'a> {
    blocks: Blocks<'a>,
    text: &'a [u8],
    /// Start of the block `masks` describes (a multiple of [`BLOCK`]), or
    /// `usize::MAX` before the first question.
    base: usize,
    masks: Masks,
}

impl<'a> Classes<'a> {
    /// Classes of `text`, none computed yet.
    pub fn new(text: &'a [u8]) -> Self {
        Self {
            blocks: Blocks::new(text),
            text,
            base: usize::MAX,
            masks: Masks::default(),
        }
    }

    /// The text.
    pub fn text(&self) -> &'a [u8] {
        self.text
    }

    /// The start of the aligned block holding byte `i` (`i < text.len()`),
    /// and its masks (bits past the text's end are clear).
    #[inline]
    pub fn block(&mut self, i: usize) -> (usize, Masks) {
        let base = i & !(BLOCK - 1);
        if base != self.base {
            self.base = base;
            self.masks = self.blocks.masks(base);
        }
        (base, self.masks)
    }

    /// The end of the run of `class` bytes starting at `i`: the first byte
    /// at or after `i` not in the class, or `text.len()`.
    pub fn run_end(&mut self, mut i: usize, class: Run) -> usize {
        let len = self.text.len();
        while i < len {
            let (base, m) = self.block(i);
            let inside = match class {
                Run::Digits => m.digit,
                Run::Word => m.digit | m.letter,
            };
            let outside = !inside >> (i - base);
            if outside == 0 {
                i = base + BLOCK;
                continue;
            }
            let end = i + outside.trailing_zeros() as usize;
            // The masks hold no `_`: an identifier goes on past one.
            if class == Run::Word && self.text.get(end) == Some(&b'_') {
                i = end + 1;
                continue;
            }
            return end.min(len);
        }
        len
    }
}

/// Which trigger bytes a short text holds, found in one pass over it.
/// A pass whose trigger is absent is skipped: on a record of a few dozen
/// bytes the passes' fixed costs (a search each for `@`, for escapes, for
/// apostrophes; the block masks of digit groups and base64 runs) were
/// most of its scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Census {
    /// `0-9`: digit groups.
    pub digit: bool,
    /// `A-Z`: capitalised names; base64, which mixes cases.
    pub upper: bool,
    /// A byte of a non-ASCII character: names in other scripts, `’`.
    pub high: bool,
    /// `@`: e-mail addresses.
    pub at: bool,
    /// `%`, `+` or `\`: URL and JSON escapes.
    pub escape: bool,
    /// `'`: `i'm`, `it's`.
    pub apostrophe: bool,
    /// `:`, `=` or `"`: assignments and fields.
    pub assign: bool,
}

impl Census {
    /// Every trigger present: what a long text is taken to hold (it holds
    /// most of them, and each pass searches for its own anyway).
    pub const ALL: Census = Census {
        digit: true,
        upper: true,
        high: true,
        at: true,
        escape: true,
        apostrophe: true,
        assign: true,
    };

    /// Texts longer than this are not counted ([`Census::ALL`]).
    pub const MAX_LEN: usize = 256;

    /// The census of `text` ([`Census::ALL`] past [`Census::MAX_LEN`]).
    pub fn of(text: &[u8]) -> Self {
        if text.len() > Self::MAX_LEN {
            return Self::ALL;
        }
        lanes::census(text)
    }

    /// The byte-at-a-time definition.
    pub fn by_byte(text: &[u8]) -> Self {
        let any = |f: fn(u8) -> bool| text.iter().any(|&c| f(c));
        Census {
            digit: any(|c| c.is_ascii_digit()),
            upper: any(|c| c.is_ascii_uppercase()),
            high: any(|c| c >= 0x80),
            at: any(|c| c == b'@'),
            escape: any(|c| matches!(c, b'%' | b'+' | b'\\')),
            apostrophe: any(|c| c == b'\''),
            assign: any(|c| matches!(c, b':' | b'=' | b'"')),
        }
    }
}

/// [`pair_starts`]' test on sixteen positions, a byte at a time.
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
fn exact_pairs_by_byte(bytes: &[u8; 17], pairs: Pairs<'_>) -> u64 {
    (0..16).fold(0, |m, k| {
        let hit = pairs
            .iter()
            .any(|&(first, seconds)| bytes[k] == first && seconds.contains(&bytes[k + 1]));
        m | u64::from(hit) << k
    })
}

/// The byte-at-a-time definitions, for tests and short tails.
pub fn masks_by_byte(chunk: &[u8]) -> Masks {
    let mut m = Masks::default();
    for (k, &c) in chunk.iter().enumerate() {
        m.digit |= u64::from(c.is_ascii_digit()) << k;
        m.letter |= u64::from(c.is_ascii_alphabetic()) << k;
    }
    m
}

#[cfg(target_arch = "x86_64")]
mod lanes {
    use std::arch::x86_64::{
        __m128i, _mm_add_epi8, _mm_and_si128, _mm_cmpeq_epi8, _mm_cmpgt_epi8, _mm_movemask_epi8,
        _mm_or_si128, _mm_set1_epi8, _mm_set_epi64x, _mm_setzero_si128,
    };

    use super::{Masks, Pairs, BLOCK};

    #[target_feature(enable = "sse2")]
    fn load(b: &[u8]) -> __m128i {
        let lo = u64::from_le_bytes(b[..8].try_into().expect("eight bytes"));
        let hi = u64::from_le_bytes(b[8..16].try_into().expect("eight bytes"));
        _mm_set_epi64x(hi as i64, lo as i64)
    }

    #[target_feature(enable = "sse2")]
    fn splat(c: u8) -> __m128i {
        _mm_set1_epi8(c as i8)
    }

    /// 0xFF in each byte within `lo..=hi` (`hi < 0xFF`): shifted so that
    /// `lo` lands on -128, the range is what is signed-less than
    /// `-128 + (hi - lo + 1)`. Two instructions.
    #[target_feature(enable = "sse2")]
    fn in_range(x: __m128i, lo: u8, hi: u8) -> __m128i {
        let shifted = _mm_add_epi8(x, splat(0x80u8.wrapping_sub(lo)));
        _mm_cmpgt_epi8(splat(0x80u8.wrapping_add(hi - lo + 1)), shifted)
    }

    #[target_feature(enable = "sse2")]
    fn bits(v: __m128i) -> u64 {
        u64::from(_mm_movemask_epi8(v) as u16)
    }

    pub fn masks(block: &[u8; BLOCK]) -> Masks {
        // SAFETY: SSE2 is part of the x86-64 baseline: every x86-64 CPU has it.
        unsafe { sse2(block) }
    }

    pub fn range_bits(block: &[u8; BLOCK], lo: u8, hi: u8) -> u64 {
        // SAFETY: as in `masks`.
        unsafe { sse2_range_bits(block, lo, hi) }
    }

    /// `test` on each sixteen bytes of the block, packed to bits.
    #[target_feature(enable = "sse2")]
    fn each_16(block: &[u8; BLOCK], test: impl Fn(__m128i) -> __m128i) -> u64 {
        let mut m = 0;
        for (i, b) in block.chunks_exact(16).enumerate() {
            m |= bits(test(load(b))) << (16 * i);
        }
        m
    }

    #[target_feature(enable = "sse2")]
    fn sse2_range_bits(block: &[u8; BLOCK], lo: u8, hi: u8) -> u64 {
        each_16(block, |x| in_range(x, lo, hi))
    }

    pub fn base64_bits(block: &[u8; BLOCK]) -> u64 {
        // SAFETY: as in `masks`.
        unsafe { sse2_base64_bits(block) }
    }

    #[inline(always)]
    pub fn equal_bits<const N: usize>(block: &[u8; BLOCK], bytes: [u8; N]) -> [u64; N] {
        // SAFETY: as in `masks`.
        unsafe { sse2_equal_bits(block, bytes) }
    }

    #[target_feature(enable = "sse2")]
    fn sse2_equal_bits<const N: usize>(block: &[u8; BLOCK], bytes: [u8; N]) -> [u64; N] {
        let mut m = [0; N];
        for (i, b) in block.chunks_exact(16).enumerate() {
            let x = load(b);
            for (m, &c) in m.iter_mut().zip(&bytes) {
                *m |= bits(_mm_cmpeq_epi8(x, splat(c))) << (16 * i);
            }
        }
        m
    }

    #[target_feature(enable = "sse2")]
    fn sse2_base64_bits(block: &[u8; BLOCK]) -> u64 {
        each_16(block, |x| {
            let eq = |c: u8| _mm_cmpeq_epi8(x, splat(c));
            let alnum = _mm_or_si128(
                in_range(x, b'0', b'9'),
                in_range(_mm_or_si128(x, splat(0x20)), b'a', b'z'),
            );
            // '+' and '/' sit on either side of ',', '-' and '.'; only '_' stands alone.
            let symbol = _mm_or_si128(
                _mm_or_si128(eq(b'+'), eq(b'/')),
                _mm_or_si128(eq(b'-'), eq(b'_')),
            );
            _mm_or_si128(alnum, symbol)
        })
    }

    /// Whether one of the sixteen pairs of adjacent bytes in `bytes` is
    /// one of `pairs` (case folded).
    #[inline(always)]
    pub fn letter_pairs(bytes: &[u8; 17], pairs: Pairs<'_>) -> bool {
        // SAFETY: as in `masks`.
        unsafe { sse2_letter_pairs(bytes, pairs) }
    }

    #[target_feature(enable = "sse2")]
    fn sse2_letter_pairs(bytes: &[u8; 17], pairs: Pairs<'_>) -> bool {
        let fold = splat(0x20);
        let x = _mm_or_si128(load(&bytes[..16]), fold);
        let y = _mm_or_si128(load(&bytes[1..]), fold);
        bits(pair_hits(x, y, pairs)) != 0
    }

    /// 0xFF in byte k where `x[k]`, `y[k]` is one of `pairs`.
    #[target_feature(enable = "sse2")]
    fn pair_hits(x: __m128i, y: __m128i, pairs: Pairs<'_>) -> __m128i {
        pairs
            .iter()
            .fold(_mm_setzero_si128(), |hits, &(first, seconds)| {
                let next = seconds.iter().fold(_mm_setzero_si128(), |m, &c| {
                    _mm_or_si128(m, _mm_cmpeq_epi8(y, splat(c)))
                });
                _mm_or_si128(hits, _mm_and_si128(_mm_cmpeq_epi8(x, splat(first)), next))
            })
    }

    /// Bit k: bytes k, k + 1 of `bytes` are one of `pairs` (k < 16).
    #[inline(always)]
    pub fn exact_pairs(bytes: &[u8; 17], pairs: Pairs<'_>) -> u64 {
        // SAFETY: as in `masks`.
        unsafe { sse2_exact_pairs(bytes, pairs) }
    }

    #[target_feature(enable = "sse2")]
    fn sse2_exact_pairs(bytes: &[u8; 17], pairs: Pairs<'_>) -> u64 {
        bits(pair_hits(load(&bytes[..16]), load(&bytes[1..]), pairs))
    }

    pub fn base64_loose_bits(block: &[u8; BLOCK]) -> u64 {
        // SAFETY: as in `masks`.
        unsafe { sse2_base64_loose_bits(block) }
    }

    #[target_feature(enable = "sse2")]
    fn sse2_base64_loose_bits(block: &[u8; BLOCK]) -> u64 {
        each_16(block, |x| {
            _mm_or_si128(in_range(x, b'+', b'9'), in_range(x, b'A', b'z'))
        })
    }

    pub fn census(text: &[u8]) -> super::Census {
        // SAFETY: as in `masks`.
        unsafe { sse2_census(text) }
    }

    /// Each class's compares or-ed over the text, sixteen bytes at a time
    /// (the tail from a zero-padded copy: a zero byte is in no class).
    #[target_feature(enable = "sse2")]
    fn sse2_census(text: &[u8]) -> super::Census {
        let zero = _mm_setzero_si128();
        let (mut digit, mut upper, mut high, mut at) = (zero, zero, zero, zero);
        let (mut escape, mut apostrophe, mut assign) = (zero, zero, zero);
        let mut tally = |x: __m128i| {
            let eq = |c: u8| _mm_cmpeq_epi8(x, splat(c));
            digit = _mm_or_si128(digit, in_range(x, b'0', b'9'));
            upper = _mm_or_si128(upper, in_range(x, b'A', b'Z'));
            high = _mm_or_si128(high, x);
            at = _mm_or_si128(at, eq(b'@'));
            escape = _mm_or_si128(
                escape,
                _mm_or_si128(eq(b'%'), _mm_or_si128(eq(b'+'), eq(b'\\'))),
            );
            apostrophe = _mm_or_si128(apostrophe, eq(b'\''));
            assign = _mm_or_si128(
                assign,
                _mm_or_si128(eq(b':'), _mm_or_si128(eq(b'='), eq(b'"'))),
            );
        };
        let mut chunks = text.chunks_exact(16);
        for chunk in &mut chunks {
            tally(load(chunk));
        }
        let mut tail = [0u8; 16];
        tail[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
        tally(load(&tail));
        let any = |v: __m128i| _mm_movemask_epi8(v) != 0;
        super::Census {
            digit: any(digit),
            upper: any(upper),
            high: any(high),
            at: any(at),
            escape: any(escape),
            apostrophe: any(apostrophe),
            assign: any(assign),
        }
    }

    #[target_feature(enable = "sse2")]
    fn sse2(block: &[u8; BLOCK]) -> Masks {
        let mut m = Masks::default();
        for (i, b) in block.chunks_exact(16).enumerate() {
            let x = load(b);
            let digit = in_range(x, b'0', b'9');
            let letter = in_range(_mm_or_si128(x, splat(0x20)), b'a', b'z');
            let shift = 16 * i;
            m.digit |= bits(digit) << shift;
            m.letter |= bits(letter) << shift;
        }
        m
    }
}

#[cfg(not(target_arch = "x86_64"))]
mod lanes {
    use super::{Masks, BLOCK};

    pub fn masks(block: &[u8; BLOCK]) -> Masks {
        super::swar::masks(block)
    }

    pub fn range_bits(block: &[u8; BLOCK], lo: u8, hi: u8) -> u64 {
        super::swar::range_bits(block, lo, hi)
    }

    pub fn base64_bits(block: &[u8; BLOCK]) -> u64 {
        super::swar::base64_bits(block)
    }

    pub fn equal_bits<const N: usize>(block: &[u8; BLOCK], bytes: [u8; N]) -> [u64; N] {
        super::swar::equal_bits(block, bytes)
    }

    pub fn base64_loose_bits(block: &[u8; BLOCK]) -> u64 {
        super::swar::base64_loose_bits(block)
    }

    pub fn letter_pairs(bytes: &[u8; 17], pairs: super::Pairs<'_>) -> bool {
        super::swar::letter_pairs(bytes, pairs)
    }
    pub fn census(text: &[u8]) -> super::Census {
        super::Census::by_byte(text)
    }
    pub fn exact_pairs(bytes: &[u8; 17], pairs: super::Pairs<'_>) -> u64 {
        super::exact_pairs_by_byte(bytes, pairs)
    }
}

/// The same tests on eight bytes in a `u64`: the portable path, also run
/// on x86-64 by the tests.
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
mod swar {
    use super::{Masks, BLOCK};

    pub const ONES: u64 = 0x0101_0101_0101_0101;
    pub const HIGHS: u64 = 0x8080_8080_8080_8080;

    /// High bit set in each byte within `lo..=hi` (ASCII bounds). In 7 bits,
    /// x >= lo is the high bit of (x | 0x80) - lo, and x <= hi that of
    /// (0x80 + hi) - x: no borrow crosses a byte either way.
    pub fn in_range(w: u64, lo: u8, hi: u8) -> u64 {
        let low = w & !HIGHS;
        let ge = (low | HIGHS) - ONES * u64::from(lo);
        let le = ONES * u64::from(0x80 + hi) - low;
        ge & le & !w & HIGHS
    }

    /// The high bits of the bytes, packed (bit k: byte k).
    fn bits(v: u64) -> u64 {
        ((v >> 7) & ONES).wrapping_mul(0x0102_0408_1020_4080) >> 56
    }

    pub fn range_bits(block: &[u8; BLOCK], lo: u8, hi: u8) -> u64 {
        let mut m = 0;
        for (i, b) in block.chunks_exact(8).enumerate() {
            let w = u64::from_le_bytes(b.try_into().expect("eight bytes"));
            m |= bits(in_range(w, lo, hi)) << (8 * i);
        }
        m
    }

    /// High bit set in each byte equal to `c`: the zero bytes of `w ^ c`.
    /// Adding 0x7F to the low seven bits of a byte sets its high bit unless
    /// they are all zero; no carry leaves the byte.
    pub fn eq(w: u64, c: u8) -> u64 {
        let x = w ^ (ONES * u64::from(c));
        !(((x & !HIGHS) + !HIGHS) | x) & HIGHS
    }

    pub fn base64_bits(block: &[u8; BLOCK]) -> u64 {
        let mut m = 0;
        for (i, b) in block.chunks_exact(8).enumerate() {
            let w = u64::from_le_bytes(b.try_into().expect("eight bytes"));
            let v = in_range(w, b'0', b'9')
                | in_range(w | (ONES * 0x20), b'a', b'z')
                | eq(w, b'+')
                | eq(w, b'/')
                | eq(w, b'-')
                | eq(w, b'_');
            m |= bits(v) << (8 * i);
        }
        m
    }

    /// Whether one of the sixteen pairs of adjacent bytes in `bytes` is
    /// one of `pairs` (case folded).
    pub fn letter_pairs(bytes: &[u8; 17], pairs: super::Pairs<'_>) -> bool {
        let fold =
            |w: &[u8]| u64::from_le_bytes(w.try_into().expect("eight bytes")) | (ONES * 0x20);
        (0..2).any(|h| {
            let (x, y) = (
                fold(&bytes[8 * h..8 * h + 8]),
                fold(&bytes[8 * h + 1..8 * h + 9]),
            );
            pairs.iter().any(|&(first, seconds)| {
                let next = seconds.iter().fold(0, |m, &c| m | eq(y, c));
                eq(x, first) & next != 0
            })
        })
    }

    pub fn equal_bits<const N: usize>(block: &[u8; BLOCK], bytes: [u8; N]) -> [u64; N] {
        let mut m = [0; N];
        for (i, b) in block.chunks_exact(8).enumerate() {
            let w = u64::from_le_bytes(b.try_into().expect("eight bytes"));
            for (m, &c) in m.iter_mut().zip(&bytes) {
                *m |= bits(eq(w, c)) << (8 * i);
            }
        }
        m
    }

    pub fn base64_loose_bits(block: &[u8; BLOCK]) -> u64 {
        let mut m = 0;
        for (i, b) in block.chunks_exact(8).enumerate() {
            let w = u64::from_le_bytes(b.try_into().expect("eight bytes"));
            m |= bits(in_range(w, b'+', b'9') | in_range(w, b'A', b'z')) << (8 * i);
        }
        m
    }

    pub fn masks(block: &[u8; BLOCK]) -> Masks {
        let mut m = Masks::default();
        for (i, b) in block.chunks_exact(8).enumerate() {
            let w = u64::from_le_bytes(b.try_into().expect("eight bytes"));
            let digit = in_range(w, b'0', b'9');
            let letter = in_range(w | (ONES * 0x20), b'a', b'z');
            let shift = 8 * i;
            m.digit |= bits(digit) << shift;
            m.letter |= bits(letter) << shift;
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block_of(bytes: &[u8]) -> [u8; BLOCK] {
        let mut b = [0u8; BLOCK];
        b[..bytes.len()].copy_from_slice(bytes);
        b
    }

    proptest::proptest! {
        #[test]
        fn both_paths_agree_with_the_byte_tests(
            bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..=BLOCK),
            lo in 0u8..0x80,
            hi in 0u8..0x80,
        ) {
            let want = masks_by_byte(&bytes);
            proptest::prop_assert_eq!(Masks::of(&bytes), want);
            proptest::prop_assert_eq!(swar::masks(&block_of(&bytes)), want);
            let (lo, hi) = (lo.min(hi), lo.max(hi));
            let want: u64 = bytes.iter().enumerate().map(|(k, c)| u64::from((lo..=hi).contains(c)) << k).sum();
            proptest::prop_assert_eq!(Blocks::new(&bytes).in_range(0, lo, hi), want);
            let len_bits = u64::MAX.checked_shr(64 - bytes.len() as u32).unwrap_or(0);
            proptest::prop_assert_eq!(swar::range_bits(&block_of(&bytes), lo, hi) & len_bits, want);
            let want: u64 = bytes.iter().enumerate().map(|(k, &c)| u64::from(is_base64(c)) << k).sum();
            proptest::prop_assert_eq!(Blocks::new(&bytes).base64(0), want);
            proptest::prop_assert_eq!(lanes::base64_bits(&block_of(&bytes)) & len_bits, want);
            proptest::prop_assert_eq!(swar::base64_bits(&block_of(&bytes)) & len_bits, want);
            let want: u64 = bytes.iter().enumerate().map(|(k, &c)| u64::from(is_base64_loose(c)) << k).sum();
            proptest::prop_assert_eq!(Blocks::new(&bytes).base64_loose(0), want);
            proptest::prop_assert_eq!(lanes::base64_loose_bits(&block_of(&bytes)) & len_bits, want);
            proptest::prop_assert_eq!(swar::base64_loose_bits(&block_of(&bytes)) & len_bits, want);
            let equal = [b':', b'"', 0x80, 0, lo];
            let want = equal.map(|e| bytes.iter().enumerate().map(|(k, &c)| u64::from(c == e) << k).sum::<u64>());
            proptest::prop_assert_eq!(Blocks::new(&bytes).equal(0, equal), want);
            proptest::prop_assert_eq!(lanes::equal_bits(&block_of(&bytes), equal).map(|m| m & len_bits), want);
            proptest::prop_assert_eq!(swar::equal_bits(&block_of(&bytes), equal).map(|m| m & len_bits), want);
        }
    }

    proptest::proptest! {
        #[test]
        fn blocks_answer_as_the_byte_tests_at_any_start(
            text in proptest::collection::vec(proptest::sample::select(b"09aZ+/:=\"\0\x7f\x80\xff -_".to_vec()), 0..200),
            bases in proptest::collection::vec(0usize..210, 1..8),
        ) {
            let blocks = Blocks::new(&text);
            for base in bases {
                let chunk = &text[base.min(text.len())..text.len().min(base + BLOCK)];
                let bit = |test: &dyn Fn(u8) -> bool| -> u64 {
                    chunk.iter().enumerate().map(|(k, &c)| u64::from(test(c)) << k).sum()
                };
                proptest::prop_assert_eq!(blocks.masks(base), masks_by_byte(chunk));
                proptest::prop_assert_eq!(blocks.in_range(base, 0, 0x7F), bit(&|c| c < 0x80));
                proptest::prop_assert_eq!(blocks.in_range(base, b':', b':'), bit(&|c| c == b':'));
                proptest::prop_assert_eq!(
                    blocks.equal(base, [b':', 0, b'"']),
                    [bit(&|c| c == b':'), bit(&|c| c == 0), bit(&|c| c == b'"')]
                );
                proptest::prop_assert_eq!(blocks.base64(base), bit(&is_base64));
                proptest::prop_assert_eq!(blocks.base64_loose(base), bit(&is_base64_loose));
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn pair_starts_are_the_byte_tests(
            text in proptest::collection::vec(proptest::sample::select(b"AKSaenN_-Mrsx\0 ".to_vec()), 0..=PAIR_TEXT_MAX),
        ) {
            let pairs: Pairs<'_> = &[(b'A', b"KS"), (b'e', b"ny"), (b'_', b"_-"), (b'-', b"-"), (b'M', b"rs")];
            let bits = pair_starts(&text, pairs);
            for k in 0..PAIR_TEXT_MAX {
                let want = k < text.len()
                    && pairs.iter().any(|&(f, s)| text[k] == f && s.contains(text.get(k + 1).unwrap_or(&0)));
                proptest::prop_assert_eq!(bits[k / BLOCK] >> (k % BLOCK) & 1 == 1, want, "at {}", k);
            }
            let mut window = [0u8; 17];
            let n = text.len().min(17);
            window[..n].copy_from_slice(&text[..n]);
            proptest::prop_assert_eq!(lanes::exact_pairs(&window, pairs), exact_pairs_by_byte(&window, pairs));
        }
    }

    proptest::proptest! {
        #[test]
        fn the_census_is_the_byte_tests(
            text in proptest::collection::vec(proptest::sample::select(b"09AZaz@%+\\':=\"\0\x7f\x80\xff /`[".to_vec()), 0..600),
        ) {
            proptest::prop_assert_eq!(lanes::census(&text), Census::by_byte(&text));
            let want = if text.len() > Census::MAX_LEN { Census::ALL } else { Census::by_byte(&text) };
            proptest::prop_assert_eq!(Census::of(&text), want);
        }
    }

    proptest::proptest! {
        #[test]
        fn run_ends_match_the_byte_tests(
            text in proptest::collection::vec(proptest::sample::select(b"09aZ_-/ \xb0\xd0\x7f".to_vec()), 0..300),
            froms in proptest::collection::vec(0usize..310, 1..6),
        ) {
            // One `Classes` answers every question, as a scan asks them:
            // its kept block must never answer for another.
            let mut classes = Classes::new(&text);
            for from in froms {
                let from = from.min(text.len());
                for class in [Run::Digits, Run::Word] {
                    let want = from + text[from..].iter().take_while(|&&c| class.holds(c)).count();
                    proptest::prop_assert_eq!(classes.run_end(from, class), want);
                }
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn has_letter_pair_is_a_case_blind_pair_search(
            window in proptest::collection::vec(proptest::sample::select(b"cCvVxsSoOaA/gG iI2\xe3\x83".to_vec()), 0..60),
        ) {
            let pairs: Pairs<'_> = &[(b'c', b"viso"), (b'a', b"/"), (b'g', b"s")];
            let want = |bytes: &[u8]| {
                bytes.windows(2).any(|w| {
                    pairs.iter().any(|(first, seconds)| {
                        w[0].eq_ignore_ascii_case(first) && seconds.iter().any(|s| w[1].eq_ignore_ascii_case(s))
                    })
                })
            };
            proptest::prop_assert_eq!(has_letter_pair(&window, pairs), want(&window));
            // The portable sixteen-pair step, on the first seventeen bytes.
            if let Some(bytes) = window.get(..17) {
                proptest::prop_assert_eq!(swar::letter_pairs(bytes.try_into().unwrap(), pairs), want(bytes));
            }
        }
    }

    #[test]
    fn class_edges() {
        let edges = b"/09:@AZ[`az{\x7f\x80\xc1\xfa+*,\0\xab\xff-_.\xb0\xb9\xc1\xda\xe1\xfa\xdf";
        let want = masks_by_byte(edges);
        assert_eq!(Masks::of(edges), want);
        assert_eq!(swar::masks(&block_of(edges)), want);
        let long = [b"*+,\x7f\x80\xff\0 ".as_slice(); 8].concat();
        assert_eq!(
            Blocks::new(&long).in_range(0, b'+', 0x7F),
            0x0E0E_0E0E_0E0E_0E0E
        );
        let block = long.as_slice().try_into().unwrap();
        assert_eq!(swar::range_bits(block, b'+', 0x7F), 0x0E0E_0E0E_0E0E_0E0E);
        // Every byte value, a block at a time, both paths.
        let all: Vec<u8> = (0..=255).collect();
        for chunk in all.chunks(BLOCK) {
            let block = chunk.try_into().unwrap();
            let want = |test: fn(u8) -> bool| -> u64 {
                let bit = |(k, &c): (usize, &u8)| u64::from(test(c)) << k;
                chunk.iter().enumerate().map(bit).sum()
            };
            assert_eq!(Blocks::new(chunk).base64(0), want(is_base64));
            assert_eq!(swar::base64_bits(block), want(is_base64));
            let loose = |c: u8| (b'+'..=b'9').contains(&c) || (b'A'..=b'z').contains(&c);
            assert_eq!(Blocks::new(chunk).base64_loose(0), want(loose));
            assert_eq!(swar::base64_loose_bits(block), want(loose));
        }
    }
}
