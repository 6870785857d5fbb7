//! Context scoring: words near a candidate raise or lower its confidence
//! (the idea of Presidio's context enhancer and DLP hotword rules).

/// How far before a candidate hotwords are looked for, in bytes.
pub const BEFORE: usize = 48;
/// How far after a candidate hotwords are looked for, in bytes.
pub const AFTER: usize = 24;

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

/// Every hotword of every category in one automaton.
pub struct Hotwords {
    ac: aho_corasick::AhoCorasick,
    cat_of: Vec<Cat>,
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

/// A [`Near`] computed on first use: most numeric groups never need one.
pub struct LazyNear<'a> {
    hot: &'a Hotwords,
    text: &'a [u8],
    span: (usize, usize),
    near: std::cell::OnceCell<Near>,
}

impl<'a> LazyNear<'a> {
    /// Context of `text[start..end]`, not yet looked at.
    pub fn new(hot: &'a Hotwords, text: &'a [u8], start: usize, end: usize) -> Self {
        Self {
            hot,
            text,
            span: (start, end),
            near: std::cell::OnceCell::new(),
        }
    }

    fn get(&self) -> &Near {
        self.near
            .get_or_init(|| self.hot.near(self.text, self.span.0, self.span.1))
    }

    /// See [`Near::before`].
    pub fn before(&self, cat: Cat, dist: usize) -> bool {
        self.get().before(cat, dist)
    }

    /// See [`Near::around`].
    pub fn around(&self, cat: Cat) -> bool {
        self.get().around(cat)
    }
}

impl Hotwords {
    /// Compiles every category.
    pub fn new() -> Self {
        let lists: [(Cat, &[&str]); CATS] = [
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
        let mut patterns = Vec::new();
        let mut cat_of = Vec::new();
        for (cat, list) in lists {
            for w in list {
                patterns.push(*w);
                cat_of.push(cat);
            }
        }
        let ac = aho_corasick::AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .kind(Some(aho_corasick::AhoCorasickKind::DFA))
            .prefilter(false)
            .build(&patterns)
            .expect("static word lists");
        Self { ac, cat_of }
    }

    /// One pass over the context window around `text[start..end]`.
    pub fn near(&self, text: &[u8], start: usize, end: usize) -> Near {
        let lo = start.saturating_sub(BEFORE);
        let hi = (end + AFTER).min(text.len());
        let mut near = Near {
            before: [u16::MAX; CATS],
            after: [u16::MAX; CATS],
        };
        for m in self.ac.find_overlapping_iter(&text[lo..hi]) {
            let cat = self.cat_of[m.pattern().as_usize()] as usize;
            let (ms, me) = (lo + m.start(), lo + m.end());
            // Hotwords start a word: "tin" is not in "routing", "cid" not in "decide".
            if ms > 0 && text[ms - 1].is_ascii_alphanumeric() {
                continue;
            }
            if me <= start {
                near.before[cat] = near.before[cat].min((start - me) as u16);
            } else if ms >= end {
                near.after[cat] = near.after[cat].min((ms - end) as u16);
            }
        }
        near
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
    fn every_cvv_hotword_has_a_c() {
        // The scanner skips the CVV context lookup when the window has no 'c'.
        assert!(words::CVV.iter().all(|w| w.contains('c')));
    }

    #[test]
    fn hotwords_start_at_a_word_boundary() {
        let hot = Hotwords::new();
        let text = b"routing 021000021";
        assert!(!hot.near(text, 8, 17).around(Cat::Ssn));
        assert!(hot.near(text, 8, 17).around(Cat::Routing));
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
