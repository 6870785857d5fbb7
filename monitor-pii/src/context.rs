//! Context scoring: words near a candidate raise or lower its confidence
//! (the idea of Presidio's context enhancer and DLP hotword rules).

/// How far before a candidate hotwords are looked for, in bytes.
pub const BEFORE: usize = 48;
/// How far after a candidate hotwords are looked for, in bytes.
pub const AFTER: usize = 24;

/// A set of hotwords, matched ASCII case-insensitively in one pass.
pub struct WordSet(aho_corasick::AhoCorasick);

impl WordSet {
    /// Compiles `words` (lowercase).
    pub fn new(words: &[&str]) -> Self {
        Self(
            aho_corasick::AhoCorasick::builder()
                .ascii_case_insensitive(true)
                // Windows are tens of bytes: a DFA without prefilter start-up is fastest.
                .kind(Some(aho_corasick::AhoCorasickKind::DFA))
                .prefilter(false)
                .build(words)
                .expect("static word list"),
        )
    }

    /// Whether any word occurs in `hay`.
    pub fn found_in(&self, hay: &[u8]) -> bool {
        self.0.is_match(hay)
    }
}

/// The compiled hotword sets of [`words`].
pub struct Hotwords {
    /// [`words::CARD`]
    pub card: WordSet,
    /// [`words::CVV`]
    pub cvv: WordSet,
    /// [`words::SSN`]
    pub ssn: WordSet,
    /// [`words::ROUTING`]
    pub routing: WordSet,
    /// [`words::ACCOUNT`]
    pub account: WordSet,
    /// [`words::PHONE`]
    pub phone: WordSet,
    /// [`words::BIRTH`]
    pub birth: WordSet,
    /// [`words::REFERENCE`]
    pub reference: WordSet,
    /// [`words::IP`]
    pub ip: WordSet,
}

impl Hotwords {
    /// Compiles every set.
    pub fn new() -> Self {
        Self {
            card: WordSet::new(words::CARD),
            cvv: WordSet::new(words::CVV),
            ssn: WordSet::new(words::SSN),
            routing: WordSet::new(words::ROUTING),
            account: WordSet::new(words::ACCOUNT),
            phone: WordSet::new(words::PHONE),
            birth: WordSet::new(words::BIRTH),
            reference: WordSet::new(words::REFERENCE),
            ip: WordSet::new(words::IP),
        }
    }
}

impl Default for Hotwords {
    fn default() -> Self {
        Self::new()
    }
}

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

/// The text shortly before `start` (down to a line break at most two lines up).
pub fn before(text: &[u8], start: usize, span: usize) -> &[u8] {
    &text[start.saturating_sub(span)..start]
}

/// The text shortly after `end`.
pub fn after(text: &[u8], end: usize, span: usize) -> &[u8] {
    &text[end..(end + span).min(text.len())]
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
