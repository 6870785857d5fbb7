//! Synthetic, labeled text: identifiers valid by construction, contact-center
//! chat, CRM notes, JSON bodies sent to model APIs, log lines, and hard
//! negatives (order numbers, UUIDs, timestamps, versions, invalid SSNs,
//! Luhn-failing numbers). Deterministic for a seed. Used by the benchmarks
//! and to generate the evaluation corpus; no real person's data is in it.

use serde::Serialize;

/// A small deterministic generator (SplitMix64).
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// One element of `items`.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    /// One of `words`.
    pub fn word<'a>(&mut self, words: &[&'a str]) -> &'a str {
        let i = self.below(words.len() as u64) as usize;
        words[i]
    }

    /// `n` random decimal digits.
    pub fn digits(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| char::from(b'0' + self.below(10) as u8))
            .collect()
    }

    /// `n` characters from `alphabet`.
    pub fn chars(&mut self, n: usize, alphabet: &[u8]) -> String {
        (0..n).map(|_| char::from(*self.pick(alphabet))).collect()
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
}

/// A labeled span.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Label {
    /// The PII type name.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Byte offset of the start.
    pub start: usize,
    /// Byte offset of the end.
    pub end: usize,
}

/// Text with the spans of the sensitive values in it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Labeled {
    /// The text.
    pub text: String,
    /// Where the values are.
    pub labels: Vec<Label>,
}

impl Labeled {
    /// Appends plain text.
    pub fn push(&mut self, s: &str) -> &mut Self {
        self.text.push_str(s);
        self
    }

    /// Appends a sensitive value of type `kind`.
    pub fn pii(&mut self, kind: &'static str, value: &str) -> &mut Self {
        let start = self.text.len();
        self.text.push_str(value);
        self.labels.push(Label {
            kind,
            start,
            end: self.text.len(),
        });
        self
    }
}

const FIRST: &[&str] = &[
    "James", "Maria", "Wei", "Aisha", "Robert", "Olga", "Carlos", "Priya", "John", "Fatima",
    "Liam", "Sofia", "Noah", "Emma", "Kenji", "Amara",
];
const LAST: &[&str] = &[
    "Smith",
    "Garcia",
    "Chen",
    "Okafor",
    "Johnson",
    "Ivanova",
    "Rodriguez",
    "Patel",
    "Williams",
    "Haddad",
    "Murphy",
    "Rossi",
    "Brown",
    "Tanaka",
    "Nguyen",
    "Kowalski",
];
const STREETS: &[&str] = &[
    "Maple",
    "Oak",
    "Pine",
    "Cedar",
    "Elm",
    "Washington",
    "Lake",
    "Hill",
    "Sunset",
    "Park",
];
const SUFFIXES: &[&str] = &[
    "Street", "St", "Avenue", "Ave", "Road", "Rd", "Lane", "Drive", "Blvd", "Court",
];
const CITIES: &[(&str, &str)] = &[
    ("Springfield", "IL"),
    ("Austin", "TX"),
    ("Denver", "CO"),
    ("Portland", "OR"),
    ("Columbus", "OH"),
];
const DOMAINS: &[&str] = &[
    "example.com",
    "mail.example.org",
    "corp.example.net",
    "example.co.uk",
];
const WORDS: &[&str] = &[
    "the",
    "account",
    "balance",
    "statement",
    "please",
    "thank",
    "you",
    "for",
    "waiting",
    "I",
    "can",
    "help",
    "with",
    "that",
    "billing",
    "dispute",
    "refund",
    "charge",
    "was",
    "posted",
    "yesterday",
    "our",
    "system",
    "shows",
    "pending",
    "transaction",
    "we",
    "will",
    "review",
    "and",
    "get",
    "back",
    "to",
    "within",
    "days",
    "is",
    "there",
    "anything",
    "else",
    "today",
    "service",
    "plan",
    "upgrade",
    "monthly",
    "fee",
    "late",
    "payment",
    "reminder",
    "policy",
    "update",
    "delivery",
    "address",
    "changed",
    "recently",
    "verify",
];

/// A valid card number of a random issuer, formatted one of the common ways.
pub fn card(rng: &mut Rng) -> String {
    let (prefix, len): (&str, usize) = *rng.pick(&[
        ("4", 16),
        ("51", 16),
        ("55", 16),
        ("2221", 16),
        ("37", 15),
        ("6011", 16),
        ("4", 19),
    ]);
    let mut d = format!("{prefix}{}", rng.digits(len - prefix.len() - 1));
    d.push(luhn_digit(&d));
    let sep = rng.word(&["", " ", "-"]);
    if sep.is_empty() || len == 19 {
        return d;
    }
    let groups: &[usize] = if len == 15 { &[4, 6, 5] } else { &[4, 4, 4, 4] };
    let mut out = String::new();
    let mut i = 0;
    for (k, g) in groups.iter().enumerate() {
        if k > 0 {
            out.push_str(sep);
        }
        out.push_str(&d[i..i + g]);
        i += g;
    }
    out
}

/// The Luhn check digit for `body`.
pub fn luhn_digit(body: &str) -> char {
    for c in b'0'..=b'9' {
        let mut s = body.as_bytes().to_vec();
        s.push(c);
        if crate::validate::luhn(&s) {
            return char::from(c);
        }
    }
    unreachable!()
}

/// A 16-digit number that fails Luhn.
pub fn bad_card(rng: &mut Rng) -> String {
    let mut d = format!("4{}", rng.digits(14));
    let good = luhn_digit(&d) as u8;
    d.push(char::from(
        b'0' + (good - b'0' + 1 + rng.below(8) as u8) % 10,
    ));
    d
}

/// A valid SSN, dashed.
pub fn ssn(rng: &mut Rng) -> String {
    loop {
        let area = 1 + rng.below(899);
        if area == 666 {
            continue;
        }
        let s = format!(
            "{area:03}-{:02}-{:04}",
            1 + rng.below(99),
            1 + rng.below(9999)
        );
        let d: Vec<u8> = s.bytes().filter(u8::is_ascii_digit).collect();
        if crate::validate::ssn(&d) {
            return s;
        }
    }
}

/// An SSN-shaped number the SSA never issues.
pub fn bad_ssn(rng: &mut Rng) -> String {
    match rng.below(3) {
        0 => format!("000-{:02}-{:04}", 1 + rng.below(99), 1 + rng.below(9999)),
        1 => format!("666-{:02}-{:04}", 1 + rng.below(99), 1 + rng.below(9999)),
        _ => format!("{:03}-00-{:04}", 1 + rng.below(665), 1 + rng.below(9999)),
    }
}

/// A valid ITIN.
pub fn itin(rng: &mut Rng) -> String {
    let group = *rng.pick(&[50u64, 57, 65, 70, 78, 88, 90, 92, 94, 99]);
    format!("9{}-{group:02}-{:04}", rng.digits(2), 1 + rng.below(9999))
}

/// A valid ABA routing number.
pub fn routing(rng: &mut Rng) -> String {
    let prefix = *rng.pick(&[1u64, 2, 5, 11, 12, 21, 26, 31, 61, 65, 71, 72]);
    let mut d = format!("{prefix:02}{}", rng.digits(6));
    d.push(char::from(crate::validate::aba_check_digit(d.as_bytes())));
    d
}

/// A valid IBAN (DE, GB, FR, NL or ES), printed in groups of four half the time.
pub fn iban(rng: &mut Rng) -> String {
    let (cc, bban) = match rng.below(4) {
        0 => ("DE", rng.digits(18)),
        1 => (
            "GB",
            format!(
                "{}{}",
                rng.chars(4, b"ABCDEFGHIJKLMNOPQRSTUVWXYZ"),
                rng.digits(14)
            ),
        ),
        2 => (
            "NL",
            format!(
                "{}{}",
                rng.chars(4, b"ABCDEFGHIJKLMNOPQRSTUVWXYZ"),
                rng.digits(10)
            ),
        ),
        _ => ("ES", rng.digits(20)),
    };
    let mut rem = 0u32;
    let tail = format!("{bban}{cc}00");
    for c in tail.bytes() {
        rem = if c.is_ascii_digit() {
            (rem * 10 + u32::from(c - b'0')) % 97
        } else {
            (rem * 100 + u32::from(c - b'A' + 10)) % 97
        };
    }
    let plain = format!("{cc}{:02}{bban}", 98 - rem);
    if rng.chance(0.5) {
        plain
            .as_bytes()
            .chunks(4)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect::<Vec<_>>()
            .join(" ")
    } else {
        plain
    }
}

/// A NANP or E.164 phone number in a common format.
pub fn phone(rng: &mut Rng) -> String {
    let area = format!("{}{}", 2 + rng.below(8), rng.digits(2));
    let area = if &area[1..] == "11" {
        "212".to_owned()
    } else {
        area
    };
    let exch = format!("{}{}", 2 + rng.below(8), rng.digits(2));
    let exch = if &exch[1..] == "11" {
        "555".to_owned()
    } else {
        exch
    };
    let line = rng.digits(4);
    match rng.below(5) {
        0 => format!("({area}) {exch}-{line}"),
        1 => format!("{area}-{exch}-{line}"),
        2 => format!("{area}.{exch}.{line}"),
        3 => format!("+1 {area} {exch} {line}"),
        _ => format!("+44 7{} {}", rng.digits(3), rng.digits(6)),
    }
}

/// An e-mail address.
pub fn email(rng: &mut Rng) -> String {
    let f = rng.pick(FIRST).to_lowercase();
    let l = rng.pick(LAST).to_lowercase();
    let sep = rng.word(&[".", "_", ""]);
    format!("{f}{sep}{l}{}@{}", rng.below(100), rng.pick(DOMAINS))
}

/// A birth date in a common format.
pub fn date(rng: &mut Rng) -> String {
    let (y, m, d) = (1940 + rng.below(65), 1 + rng.below(12), 1 + rng.below(28));
    match rng.below(3) {
        0 => format!("{m:02}/{d:02}/{y}"),
        1 => format!("{y}-{m:02}-{d:02}"),
        _ => format!("{m}/{d}/{y}"),
    }
}

/// A US street address, with city, state and ZIP half the time.
pub fn address(rng: &mut Rng) -> String {
    let mut a = format!(
        "{} {} {}",
        1 + rng.below(9899),
        rng.pick(STREETS),
        rng.pick(SUFFIXES)
    );
    if rng.chance(0.3) {
        a.push_str(&format!(", Apt {}", 1 + rng.below(40)));
    }
    if rng.chance(0.5) {
        let (city, st) = rng.pick(CITIES);
        a.push_str(&format!(", {city}, {st} {}", rng.digits(5)));
    }
    a
}

/// A person's name.
pub fn name(rng: &mut Rng) -> String {
    format!("{} {}", rng.pick(FIRST), rng.pick(LAST))
}

const B32: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// A secret of a random kind: (type name, value).
pub fn secret(rng: &mut Rng) -> (&'static str, String) {
    use base64::Engine as _;
    match rng.below(6) {
        0 => ("AWS_ACCESS_KEY", format!("AKIA{}", rng.chars(16, B32))),
        1 => ("GITHUB_TOKEN", format!("ghp_{}", rng.chars(36, ALNUM))),
        2 => (
            "SLACK_TOKEN",
            format!(
                "xoxb-{}-{}-{}",
                rng.digits(11),
                rng.digits(12),
                rng.chars(24, ALNUM)
            ),
        ),
        3 => ("API_KEY", format!("sk-proj-{}", rng.chars(40, ALNUM))),
        4 => {
            let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
            let header = e.encode(r#"{"alg":"HS256","typ":"JWT"}"#);
            let payload = e.encode(format!(r#"{{"sub":"{}","iat":1700000000}}"#, rng.digits(8)));
            (
                "JWT",
                format!("{header}.{payload}.{}", rng.chars(43, ALNUM)),
            )
        }
        _ => (
            "PRIVATE_KEY",
            format!(
                "-----BEGIN RSA PRIVATE KEY-----\\n{}\\n{}\\n-----END RSA PRIVATE KEY-----",
                rng.chars(64, ALNUM),
                rng.chars(40, ALNUM)
            ),
        ),
    }
}

/// Plain words, no sensitive data.
pub fn filler(rng: &mut Rng, words: usize) -> String {
    let mut s = String::new();
    for i in 0..words {
        if i > 0 {
            s.push(' ');
        }
        s.push_str(rng.word(WORDS));
    }
    s
}

/// A hard negative: something that looks like data but is not.
pub fn negative(rng: &mut Rng) -> String {
    match rng.below(10) {
        0 => format!("order #{}", rng.digits(8)),
        1 => format!(
            "request id {}-{}-4{}-a{}-{}",
            rng.chars(8, b"0123456789abcdef"),
            rng.chars(4, b"0123456789abcdef"),
            rng.chars(3, b"0123456789abcdef"),
            rng.chars(3, b"0123456789abcdef"),
            rng.chars(12, b"0123456789abcdef")
        ),
        2 => format!(
            "at 2024-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            1 + rng.below(12),
            1 + rng.below(28),
            rng.below(24),
            rng.below(60),
            rng.below(60)
        ),
        3 => format!(
            "version {}.{}.{}",
            rng.below(20),
            rng.below(30),
            rng.below(100)
        ),
        4 => format!("invalid ssn {}", bad_ssn(rng)),
        5 => format!("ref {}", bad_card(rng)),
        6 => format!("ticket {}", rng.digits(9)),
        7 => format!("invoice INV-{}", rng.digits(10)),
        8 => format!(
            "build 10.{}.{}.{}.{}",
            rng.below(9),
            rng.below(9),
            rng.below(99),
            rng.below(999)
        ),
        _ => format!(
            "example key AKIAIOSFODNN7EXAMPLE and placeholder sk-{}",
            "x".repeat(30)
        ),
    }
}

/// Appends one sensitive value with the context people write around it.
pub fn sentence_with_pii(rng: &mut Rng, out: &mut Labeled) {
    match rng.below(14) {
        0 | 1 => {
            out.push(rng.word(&["my card number is ", "card: ", "charge it to ", "Visa "]));
            let v = card(rng);
            out.pii("CREDIT_CARD", &v);
        }
        2 => {
            out.push(rng.word(&["SSN ", "my social is ", "social security number: "]));
            let v = ssn(rng);
            out.pii("US_SSN", &v);
        }
        3 => {
            out.push("IBAN ");
            let v = iban(rng);
            out.pii("IBAN_CODE", &v);
        }
        4 => {
            out.push(rng.word(&["routing number ", "ABA ", "routing: "]));
            let v = routing(rng);
            out.pii("US_BANK_ROUTING", &v);
        }
        5 => {
            out.push(rng.word(&["email me at ", "email: ", "contact "]));
            let v = email(rng);
            out.pii("EMAIL_ADDRESS", &v);
        }
        6 | 7 => {
            out.push(rng.word(&["call me at ", "phone: ", "my number is ", "reach me on "]));
            let v = phone(rng);
            out.pii("PHONE_NUMBER", &v);
        }
        8 => {
            out.push(rng.word(&["DOB ", "date of birth: ", "I was born on "]));
            let v = date(rng);
            out.pii("DATE_OF_BIRTH", &v);
        }
        9 => {
            out.push(rng.word(&["I live at ", "ship to ", "address: "]));
            let v = address(rng);
            out.pii("STREET_ADDRESS", &v);
        }
        10 => {
            out.push(rng.word(&["name: ", "Mr. ", "Mrs. ", "customer name is "]));
            let v = name(rng);
            out.pii("PERSON", &v);
        }
        11 => {
            out.push(rng.word(&["cvv ", "security code: ", "CVC "]));
            let v = rng.digits(3);
            out.pii("CVV", &v);
        }
        12 => {
            out.push("ITIN ");
            let v = itin(rng);
            out.pii("US_ITIN", &v);
        }
        _ => {
            let (k, v) = secret(rng);
            out.push(rng.word(&["token ", "key=", "Authorization: Bearer "]));
            out.pii(k, &v);
        }
    }
}

/// One record of a random kind: chat, CRM note, JSON body for a model API, or a log line.
pub fn record(rng: &mut Rng, pii: usize, negatives: usize) -> Labeled {
    let mut out = Labeled::default();
    let kind = rng.below(4);
    let (open, sep, close) = match kind {
        0 => (
            "Agent: how can I help you today?\nCustomer: ",
            "\nAgent: thanks. \nCustomer: ",
            "\nAgent: got it.",
        ),
        1 => ("CRM note: ", ". Follow-up: ", ". Case closed."),
        2 => (
            "{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\",\"content\":\"",
            " ",
            "\"}]}",
        ),
        _ => (
            "2024-05-01T10:00:00.000Z INFO chat msg=\"",
            " ",
            "\" status=200",
        ),
    };
    out.push(open);
    let total = pii + negatives;
    let mut order: Vec<bool> = (0..total).map(|i| i < pii).collect();
    for i in (1..order.len()).rev() {
        order.swap(i, rng.below(i as u64 + 1) as usize);
    }
    for (i, is_pii) in order.into_iter().enumerate() {
        if i > 0 {
            out.push(sep);
        }
        let words = 3 + rng.below(8) as usize;
        out.push(&filler(rng, words));
        out.push(" ");
        if is_pii {
            sentence_with_pii(rng, &mut out);
        } else {
            out.push(&negative(rng));
        }
        out.push(" ");
        let words = 2 + rng.below(6) as usize;
        out.push(&filler(rng, words));
    }
    out.push(close);
    out
}

/// About `bytes` of text of a benchmark kind: `"clean"` (prose with ordinary
/// numbers, no PII), `"contact"` (chat, CRM, JSON and log records averaging
/// ~125 bytes: measured, about 2,100 sensitive values and 4,200 look-alikes
/// per MiB), `"dense"` (six values and a look-alike in every record).
pub fn corpus_text(kind: &str, bytes: usize, seed: u64) -> String {
    let mut rng = Rng::new(seed);
    let mut text = String::with_capacity(bytes + 1024);
    while text.len() < bytes {
        let rec = match kind {
            "clean" => {
                let mut l = Labeled::default();
                let words = 40 + rng.below(40) as usize;
                l.push(&filler(&mut rng, words));
                if rng.chance(0.3) {
                    l.push(&format!(
                        " ({} items, {} pm)",
                        rng.below(20),
                        1 + rng.below(11)
                    ));
                }
                l.push(". ");
                l
            }
            "dense" => record(&mut rng, 6, 1),
            _ => {
                // A value in one record of four, a look-alike in one of two.
                let pii = usize::from(rng.chance(0.25));
                let negatives = usize::from(rng.chance(0.5));
                record(&mut rng, pii, negatives)
            }
        };
        text.push_str(&rec.text);
        text.push('\n');
    }
    text
}

/// The evaluation corpus: `records` labeled records of every kind, with zero
/// to three values and zero to two look-alikes each. One JSON object per line:
/// `{"id", "text", "labels": [{"type", "start", "end"}]}`.
pub fn eval_corpus(records: usize, seed: u64) -> String {
    let mut rng = Rng::new(seed);
    let mut out = String::new();
    for id in 0..records {
        let pii = rng.below(4) as usize;
        let negatives = rng.below(3) as usize;
        let rec = record(&mut rng, pii, negatives);
        let line = serde_json::json!({ "id": id, "text": rec.text, "labels": rec.labels });
        out.push_str(&line.to_string());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Detector, FingerprintKey, PiiRules};

    #[test]
    fn generated_values_validate() {
        let mut rng = Rng::new(1);
        for _ in 0..200 {
            let c: Vec<u8> = card(&mut rng).bytes().filter(u8::is_ascii_digit).collect();
            assert!(crate::validate::luhn(&c));
            assert!(!crate::validate::luhn(bad_card(&mut rng).as_bytes()));
            let r = routing(&mut rng);
            assert!(crate::validate::aba_routing(r.as_bytes()), "{r}");
            let i: Vec<u8> = iban(&mut rng).bytes().filter(|c| *c != b' ').collect();
            assert!(crate::validate::iban(&i));
        }
    }

    #[test]
    fn labels_point_at_the_values() {
        let mut rng = Rng::new(2);
        let d = Detector::new(PiiRules::defaults(), FingerprintKey::from_bytes(&[0; 32]));
        let rec = record(&mut rng, 3, 2);
        assert_eq!(rec.labels.len(), 3);
        for l in &rec.labels {
            assert!(l.end > l.start && rec.text.is_char_boundary(l.start));
        }
        // Deterministic for a seed.
        assert_eq!(
            record(&mut Rng::new(9), 2, 2).text,
            record(&mut Rng::new(9), 2, 2).text
        );
        let clean = corpus_text("clean", 20_000, 3);
        assert!(
            d.scan(clean.as_bytes()).is_empty(),
            "clean text has findings"
        );
    }
}
