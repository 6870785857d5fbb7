//! Context scoring: words near a candidate raise or lower its confidence
//! (the idea of Presidio's context enhancer and DLP hotword rules).

use crate::bytemask::{Masks, BLOCK};

/// How far before a candidate hotwords are looked for, in bytes.
pub const BEFORE: usize = 48;
/// How far after a candidate hotwords are looked for, in bytes.
pub const AFTER: usize = 24;

// Each side's window is read as one block of byte classes.
const _: () = assert!(BEFORE <= BLOCK && AFTER <= BLOCK);

/// ASCII case-insensitive substring test; `needle` is lowercase.
pub fn contains_ci(hay: &[u8], needle: &[u8]) -> bool {
    if needle.is_empty() || hay.len() < needle.len() {
        return needle.is_empty();
    }
    hay.windows(needle.len()).any(|w| {
        w.iter()
            .zip(needle)
            .all(|(a, b)| a.to_ascii_lowercase() == *b)
    })
}

/// The text shortly before `start`.
pub fn before(text: &[u8], start: usize, span: usize) -> &[u8] {
    &text[start.saturating_sub(span)..start]
}

/// The text shortly after `end`.
pub fn after(text: &[u8], end: usize, span: usize) -> &[u8] {
    &text[end..(end + span).min(text.len())]
}

/// Hotword categories, as bits of a [`Near`] lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum Cat {
    /// [`words::CARD`]
    Card,
    /// [`words::CVV`]
    Cvv,
    /// [`words::SSN`]
    Ssn,
    /// [`words::ROUTING`]
    Routing,
    /// [`words::ACCOUNT`]
    Account,
    /// [`words::PHONE`]
    Phone,
    /// [`words::BIRTH`]
    Birth,
    /// [`words::REFERENCE`]
    Reference,
    /// [`words::IP`]
    Ip,
}

const CATS: usize = 9;

/// Each category's word list.
const LISTS: [(Cat, &[&str]); CATS] = [
    (Cat::Card, words::CARD),
    (Cat::Cvv, words::CVV),
    (Cat::Ssn, words::SSN),
    (Cat::Routing, words::ROUTING),
    (Cat::Account, words::ACCOUNT),
    (Cat::Phone, words::PHONE),
    (Cat::Birth, words::BIRTH),
    (Cat::Reference, words::REFERENCE),
    (Cat::Ip, words::IP),
];

/// Every hotword of every category, looked up by the first two bytes of
/// each word in a window.
///
/// A hotword matches where a word starts (the byte before is not a letter or
/// digit), case-insensitively, and may run on into the word ("card" in
/// "cardholder"). Windows are short and hold a dozen word starts, so a
/// table lookup per start beats running an automaton over every byte.
pub struct Hotwords {
    /// Hotwords sorted by bucket.
    words: Vec<Hotword>,
    /// For each bucket (see [`bucket`]), its range in `words`.
    ranges: Vec<(u16, u16)>,
    /// Per bucket, a bit per third byte (see [`third`]) some word of the
    /// bucket has there (every bit for two-byte words): most word starts
    /// that share a bucket with a hotword ("can", "content", "chat") stop here.
    thirds: Vec<u32>,
    /// Per category, a bit per bucket holding one of its words.
    buckets_of: [[u64; 16]; CATS],
    /// Per category, its longest word.
    longest: [usize; CATS],
}

/// One hotword, with its first eight bytes ready for a one-load compare.
struct Hotword {
    word: &'static [u8],
    cat: Cat,
    /// Bytes 0..8 and 8..16 (what there is of them), little-endian.
    head: [u64; 2],
    /// 0xFF for each byte of `head` in use.
    mask: [u64; 2],
    /// 0x20 for each letter of `head`: or-ing it into text folds case.
    fold: [u64; 2],
}

impl Hotword {
    fn new(word: &'static str, cat: Cat) -> Self {
        let (mut head, mut mask, mut fold) = ([0; 2], [0; 2], [0; 2]);
        for (k, &c) in word.as_bytes().iter().take(16).enumerate() {
            let (w, shift) = (k / 8, 8 * (k % 8));
            head[w] |= u64::from(c) << shift;
            mask[w] |= 0xFF << shift;
            if c.is_ascii_alphabetic() {
                fold[w] |= 0x20 << shift;
            }
        }
        Self {
            word: word.as_bytes(),
            cat,
            head,
            mask,
            fold,
        }
    }

    /// Whether the hotword is at `text[ms..]` (ASCII case folded). Sixteen
    /// bytes in two loads where the text has them: "account" in running
    /// text meets three longer hotwords that start with "account ".
    #[inline]
    fn is_at(&self, text: &[u8], ms: usize) -> bool {
        let Some(sixteen) = text.get(ms..ms + 16) else {
            return text[ms..]
                .get(..self.word.len())
                .is_some_and(|t| t.eq_ignore_ascii_case(self.word));
        };
        let word = |w: usize| {
            let x = u64::from_le_bytes(sixteen[8 * w..8 * w + 8].try_into().expect("eight bytes"));
            (x | self.fold[w]) & self.mask[w] == self.head[w]
        };
        word(0)
            && (self.word.len() <= 8 || word(1))
            && (self.word.len() <= 16
                || text[ms + 16..]
                    .get(..self.word.len() - 16)
                    .is_some_and(|t| t.eq_ignore_ascii_case(&self.word[16..])))
    }
}

/// The table slot of a word starting with bytes `a`, `b`: five bits of each,
/// which folds ASCII case. Other bytes can share a slot; matches are checked
/// in full.
#[inline]
fn bucket(a: u8, b: u8) -> usize {
    usize::from(a & 31) << 5 | usize::from(b & 31)
}

/// The bit of a word's third byte in [`Hotwords::thirds`]: five bits of it,
/// which folds ASCII case (other bytes can share a bit).
#[inline]
fn third(c: u8) -> u32 {
    1 << (c & 31)
}

/// For each category, how far before the start and after the end of a span
/// its nearest hotword is (`u16::MAX`: none in the window).
#[derive(Debug, Clone, Copy)]
pub struct Near {
    before: [u16; CATS],
    after: [u16; CATS],
}

impl Near {
    /// Whether a hotword of `cat` ends within `dist` bytes before the span.
    pub fn before(&self, cat: Cat, dist: usize) -> bool {
        usize::from(self.before[cat as usize]) <= dist
    }

    /// Whether a hotword of `cat` is within the context window on either side.
    pub fn around(&self, cat: Cat) -> bool {
        usize::from(self.before[cat as usize]) <= BEFORE
            || usize::from(self.after[cat as usize]) <= AFTER
    }
}

/// A [`Near`] computed on first use, each side separately: most numeric
/// groups never need context, and most that do look only before.
pub struct LazyNear<'a> {
    hot: &'a Hotwords,
    text: &'a [u8],
    span: (usize, usize),
    before: std::cell::OnceCell<[u16; CATS]>,
    after: std::cell::OnceCell<[u16; CATS]>,
}

impl<'a> LazyNear<'a> {
    /// Context of `text[start..end]`, not yet looked at.
    pub fn new(hot: &'a Hotwords, text: &'a [u8], start: usize, end: usize) -> Self {
        Self {
            hot,
            text,
            span: (start, end),
            before: std::cell::OnceCell::new(),
            after: std::cell::OnceCell::new(),
        }
    }

    /// Where the span starts: `before` distances are measured from here.
    pub fn start(&self) -> usize {
        self.span.0
    }

    fn distance_before(&self, cat: Cat) -> usize {
        let d = self
            .before
            .get_or_init(|| self.hot.before(self.text, self.span.0));
        usize::from(d[cat as usize])
    }

    fn distance_after(&self, cat: Cat) -> usize {
        let d = self
            .after
            .get_or_init(|| self.hot.after(self.text, self.span.1));
        usize::from(d[cat as usize])
    }

    /// See [`Near::before`].
    pub fn before(&self, cat: Cat, dist: usize) -> bool {
        match self.before.get() {
            Some(d) => usize::from(d[cat as usize]) <= dist,
            // A lone question about one category: look for that category only.
            None => self.hot.ends_within(self.text, self.span.0, cat, dist),
        }
    }

    /// Whether a hotword of `cat` lies wholly within `text[lo..hi]`, a
    /// stretch of any length (the previous turn of a chat, say).
    pub fn within(&self, cat: Cat, lo: usize, hi: usize) -> bool {
        // Windows of a block, overlapping by half: a hotword (at most half
        // a block long) that starts in one ends in it.
        let mut found = false;
        let mut w = lo;
        while w < hi && !found {
            let end = hi.min(w + BLOCK);
            self.hot
                .each_in(self.text, w, end, Some(cat), |_, _, _| found = true);
            w += BLOCK / 2;
        }
        found
    }

    /// Whether the full context before the span is known (then
    /// [`LazyNear::before`] costs no lookup).
    pub fn knows_before(&self) -> bool {
        self.before.get().is_some()
    }

    /// See [`Near::around`].
    pub fn around(&self, cat: Cat) -> bool {
        self.distance_before(cat) <= BEFORE || self.distance_after(cat) <= AFTER
    }
}

impl Hotwords {
    /// Compiles every category.
    pub fn new() -> Self {
        let mut words: Vec<Hotword> = LISTS
            .iter()
            .flat_map(|(cat, list)| list.iter().map(move |w| Hotword::new(w, *cat)))
            .collect();
        words.sort_by_key(|h| bucket(h.word[0], h.word[1]));
        let mut ranges = vec![(0u16, 0u16); 1 << 10];
        for (i, h) in words.iter().enumerate() {
            let r = &mut ranges[bucket(h.word[0], h.word[1])];
            if r.0 == r.1 {
                r.0 = i as u16;
            }
            r.1 = i as u16 + 1;
        }
        let mut thirds = vec![0u32; 1 << 10];
        let mut buckets_of = [[0u64; 16]; CATS];
        let mut longest = [0; CATS];
        for h in &words {
            let k = bucket(h.word[0], h.word[1]);
            thirds[k] |= h.word.get(2).map_or(u32::MAX, |&c| third(c));
            buckets_of[h.cat as usize][k / 64] |= 1 << (k % 64);
            longest[h.cat as usize] = longest[h.cat as usize].max(h.word.len());
        }
        Self {
            words,
            ranges,
            thirds,
            buckets_of,
            longest,
        }
    }

    /// The hotwords around `text[start..end]`: those ending within
    /// [`BEFORE`] bytes before it and those starting within [`AFTER`] bytes
    /// after it. A hotword overlapping the span counts on neither side.
    pub fn near(&self, text: &[u8], start: usize, end: usize) -> Near {
        Near {
            before: self.before(text, start),
            after: self.after(text, end),
        }
    }

    /// Per category, the distance from the end of the nearest hotword in
    /// the [`BEFORE`] bytes before `start` to `start`.
    pub fn before(&self, text: &[u8], start: usize) -> [u16; CATS] {
        let mut dist = [u16::MAX; CATS];
        self.each_in(
            text,
            start.saturating_sub(BEFORE),
            start,
            None,
            |_, me, cat| {
                dist[cat] = dist[cat].min((start - me) as u16);
            },
        );
        dist
    }

    /// Per category, the distance from `end` to the start of the nearest
    /// hotword in the [`AFTER`] bytes after it.
    pub fn after(&self, text: &[u8], end: usize) -> [u16; CATS] {
        let mut dist = [u16::MAX; CATS];
        let hi = (end + AFTER).min(text.len());
        self.each_in(text, end, hi, None, |ms, _, cat| {
            dist[cat] = dist[cat].min((ms - end) as u16);
        });
        dist
    }

    /// Whether a hotword of `cat` ends within `dist` bytes before `start`:
    /// the same answer as [`Hotwords::before`], looking only for that category.
    pub fn ends_within(&self, text: &[u8], start: usize, cat: Cat, dist: usize) -> bool {
        let reach = (dist + self.longest[cat as usize]).min(BEFORE);
        let mut hit = false;
        self.each_in(
            text,
            start.saturating_sub(reach),
            start,
            Some(cat),
            |_, me, _| {
                hit |= start - me <= dist;
            },
        );
        hit
    }

    /// The span of the hotword of `cat` ending nearest before `start`, within
    /// `dist` bytes of it.
    pub fn nearest_before(
        &self,
        text: &[u8],
        start: usize,
        cat: Cat,
        dist: usize,
    ) -> Option<(usize, usize)> {
        let reach = (dist + self.longest[cat as usize]).min(BEFORE);
        let mut best: Option<(usize, usize)> = None;
        self.each_in(
            text,
            start.saturating_sub(reach),
            start,
            Some(cat),
            |ms, me, _| {
                if start - me <= dist && best.is_none_or(|(_, e)| me > e) {
                    best = Some((ms, me));
                }
            },
        );
        best
    }

    /// Calls `found(start, end, category)` for every hotword (of category
    /// `only`, if given) lying wholly in `text[lo..hi]` and starting a word.
    fn each_in(
        &self,
        text: &[u8],
        lo: usize,
        hi: usize,
        only: Option<Cat>,
        mut found: impl FnMut(usize, usize, usize),
    ) {
        debug_assert!(hi <= lo + BLOCK, "windows are at most a block");
        if hi <= lo + 1 {
            return;
        }
        // One whole block of the text holding the window (no copy to pad a
        // short one), unless the text itself is shorter.
        let base = lo.min(text.len().saturating_sub(BLOCK));
        let m = Masks::of(&text[base..text.len().min(base + BLOCK)]);
        let (alpha, alnum) = (m.letter, m.letter | m.digit);
        let carry = u64::from(base > 0 && text[base - 1].is_ascii_alphanumeric());
        let window = (u64::MAX << (lo - base)) & (u64::MAX >> (BLOCK - (hi - base)));
        // A word starts at a letter whose previous byte is no letter or
        // digit, and a hotword (two bytes or more) at one before `hi - 1`.
        let starts = alpha & !(alnum << 1 | carry) & window & ((1 << (hi - 1 - base)) - 1);
        // The starts whose first three bytes could begin a hotword (of
        // `only`), found with no branch per start: most fail here.
        let mut maybe = 0u64;
        let mut rest = starts;
        while rest != 0 {
            let at = rest.trailing_zeros();
            rest &= rest - 1;
            let ms = base + at as usize;
            let k = bucket(text[ms], text[ms + 1]);
            let third_fits = self.thirds[k] & third(text.get(ms + 2).copied().unwrap_or(0)) != 0;
            let cat_fits =
                only.is_none_or(|c| self.buckets_of[c as usize][k / 64] >> (k % 64) & 1 != 0);
            maybe |= u64::from(third_fits & cat_fits) << at;
        }
        while maybe != 0 {
            let ms = base + maybe.trailing_zeros() as usize;
            maybe &= maybe - 1;
            let (first, last) = self.ranges[bucket(text[ms], text[ms + 1])];
            for h in &self.words[usize::from(first)..usize::from(last)] {
                let me = ms + h.word.len();
                if me <= hi && only.is_none_or(|c| c == h.cat) && h.is_at(text, ms) {
                    found(ms, me, h.cat as usize);
                }
            }
        }
    }
}

impl Default for Hotwords {
    fn default() -> Self {
        Self::new()
    }
}

/// Hotwords per type. Lowercase.
pub mod words {
    /// Payment cards.
    pub const CARD: &[&str] = &[
        "card",
        "visa",
        "mastercard",
        "amex",
        "credit",
        "debit",
        "pan",
        "cc#",
        "ccn",
        "payment",
    ];
    /// Card security codes.
    /// (Each contains a `c`; the scanner relies on it.)
    pub const CVV: &[&str] = &[
        "cvv",
        "cvc",
        "cvv2",
        "cvc2",
        "cid",
        "security code",
        "card verification",
        "csc",
        // The UK's "CV2"; the security code in German.
        "cv2",
        "card code",
        "sicherheitscode",
        // `the three digits on the back of the card`.
        "back of the card",
        "back of your card",
    ];
    /// SSN and ITIN.
    pub const SSN: &[&str] = &[
        "ssn",
        "social security",
        "social",
        "ss#",
        "taxpayer",
        "itin",
        "tin",
        "tax id",
    ];
    /// Routing numbers.
    pub const ROUTING: &[&str] = &["routing", "aba", "rtn", "transit", "wire", "ach"];
    /// Bank accounts.
    pub const ACCOUNT: &[&str] = &[
        "account number",
        "acct",
        "account #",
        "account no",
        "bank account",
        "checking",
        "savings",
        "account:",
        "a/c",
    ];
    /// Phone numbers.
    pub const PHONE: &[&str] = &[
        "phone", "call", "tel", "mobile", "cell", "fax", "contact", "reach", "number", "text",
    ];
    /// Birth dates.
    pub const BIRTH: &[&str] = &[
        "dob",
        "d.o.b",
        "birth",
        "born",
        "birthday",
        "date of birth",
        "b-day",
        "geboren",
        "geb.",
        "geburtsdatum",
        "né le",
        "nascita",
        "nato il",
        "nata il",
        "naissance",
        "nacimiento",
        "nacido",
        "nacida",
    ];
    /// Words before a number that make it a reference, not personal data.
    pub const REFERENCE: &[&str] = &[
        "order",
        "invoice",
        "tracking",
        "ticket",
        "ref",
        "reference",
        "confirmation",
        "case",
        "id:",
        "id ",
        "sku",
        "version",
        "build",
        "serial",
        "model",
        "part",
        "po#",
        "txn",
        "transaction",
        "uuid",
        "timestamp",
        "request",
    ];
    /// IP addresses.
    pub const IP: &[&str] = &[
        "ip", "address", "host", "client", "server", "remote", "from", "src", "dst",
    ];
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_hotword_is_lowercase_and_starts_with_a_letter() {
        // The lookup keys on the first two bytes of a word start.
        for w in LISTS.iter().flat_map(|(_, l)| l.iter()) {
            assert!(w.len() >= 2 && w.as_bytes()[0].is_ascii_lowercase(), "{w}");
            assert_eq!(w.to_ascii_lowercase(), *w);
        }
    }

    #[test]
    fn hotwords_start_at_a_word_boundary() {
        let hot = Hotwords::new();
        let text = b"routing 021000021";
        assert!(!hot.near(text, 8, 17).around(Cat::Ssn));
        assert!(hot.near(text, 8, 17).around(Cat::Routing));
    }

    /// Every hotword occurrence at a word start, by brute force.
    fn near_by_brute_force(text: &[u8], start: usize, end: usize) -> Near {
        let (lo, hi) = (start.saturating_sub(BEFORE), (end + AFTER).min(text.len()));
        let mut near = Near {
            before: [u16::MAX; CATS],
            after: [u16::MAX; CATS],
        };
        for (cat, list) in LISTS {
            for w in list {
                for ms in lo..hi {
                    let me = ms + w.len();
                    let boundary = ms == 0 || !text[ms - 1].is_ascii_alphanumeric();
                    if me > hi || !boundary || !text[ms..me].eq_ignore_ascii_case(w.as_bytes()) {
                        continue;
                    }
                    let c = cat as usize;
                    if me <= start {
                        near.before[c] = near.before[c].min((start - me) as u16);
                    } else if ms >= end {
                        near.after[c] = near.after[c].min((ms - end) as u16);
                    }
                }
            }
        }
        near
    }

    proptest::proptest! {
        #[test]
        fn near_agrees_with_brute_force(
            words in proptest::collection::vec(
                proptest::sample::select(vec![
                    "card", "CVV2", "social security", "acct", "a/c", "Phone", "d.o.b",
                    "id:", "id ", "ip", "routing", "birthday", "x", "7", " ", "-", "#",
                    "ssn", "tin", "order", "PAN", "Account Number", "\u{e9}", "\n",
                    // Past eight and sixteen bytes, and near misses there.
                    "card verification", "Card Verificatio", "account nu", "ACCOUNT #",
                    "social securitx",
                ]),
                0..40,
            ),
            at in 0usize..200,
            len in 0usize..20,
        ) {
            let text = words.concat().into_bytes();
            let start = at.min(text.len());
            let end = (start + len).min(text.len());
            let hot = Hotwords::new();
            let got = hot.near(&text, start, end);
            let want = near_by_brute_force(&text, start, end);
            proptest::prop_assert_eq!(got.before, want.before);
            proptest::prop_assert_eq!(got.after, want.after);
            for (cat, _) in LISTS {
                for dist in [0, 2, 16, 24, 32, BEFORE] {
                    proptest::prop_assert_eq!(hot.ends_within(&text, start, cat, dist), want.before(cat, dist));
                    // Lone questions first, then with the side cached.
                    let lazy = LazyNear::new(&hot, &text, start, end);
                    proptest::prop_assert_eq!(lazy.before(cat, dist), want.before(cat, dist));
                    proptest::prop_assert_eq!(lazy.around(cat), want.around(cat));
                    proptest::prop_assert_eq!(lazy.before(cat, dist), want.before(cat, dist));
                }
            }
        }
    }

    #[test]
    fn near_measures_distance_to_hotwords() {
        let hot = Hotwords::new();
        let text = b"my SSN: 123-45-6789 thanks";
        let near = hot.near(text, 8, 19);
        // "SSN" ends two bytes before the number.
        assert!(near.before(Cat::Ssn, 2) && !near.before(Cat::Ssn, 1));
        assert!(!near.around(Cat::Card));
    }
}
