//! What leaves the detector instead of the value: a type-appropriate mask
//! and a keyed fingerprint (HMAC-SHA256), so equal values correlate
//! without the value being stored anywhere.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

use ring::hmac;
use ring::rand::{SecureRandom as _, SystemRandom};

use crate::types::PiiType;

/// The per-host fingerprint key.
#[derive(Clone)]
pub struct FingerprintKey(hmac::Key);

impl std::fmt::Debug for FingerprintKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FingerprintKey(..)")
    }
}

/// Why the key could not be loaded or created.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Reading or writing the key file failed.
    #[error("key file {path}")]
    Io {
        /// The key file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The key file is not 32 bytes.
    #[error("key file {0} is not 32 bytes")]
    BadLength(String),
    /// The key file is not one the daemon alone controls; it is not used.
    #[error("refusing key file {path}: it {why}")]
    Unsafe {
        /// The key file.
        path: String,
        /// What is wrong with it.
        why: String,
    },
    /// The system random generator failed.
    #[error("no system randomness for a new key")]
    Random,
}

impl FingerprintKey {
    /// A key from raw bytes.
    pub fn from_bytes(bytes: &[u8]) -> Self {
        Self(hmac::Key::new(hmac::HMAC_SHA256, bytes))
    }

    /// A fresh random key, not saved anywhere (fingerprints will not match other runs).
    pub fn ephemeral() -> Result<Self, KeyError> {
        let mut k = [0u8; 32];
        SystemRandom::new()
            .fill(&mut k)
            .map_err(|_| KeyError::Random)?;
        Ok(Self::from_bytes(&k))
    }

    /// Loads the key at `path`, creating it (mode 0600, 32 random bytes) on first use.
    pub fn load_or_create(path: &Path) -> Result<Self, KeyError> {
        load_or_create_key(path).map(|k| Self::from_bytes(&k))
    }
}

/// Reads the 32-byte secret key at `path`, creating it (mode 0600, from the
/// system's random generator) on first use. Shared by every keyed MAC on the host.
///
/// A key must be a regular file (a symbolic link is never followed), owned
/// by this process's effective user, readable and writable by it alone:
/// anyone else who could read it could forge the record's MAC chain or
/// test guesses against fingerprints. Anything else is refused, with what
/// to do about it.
pub fn load_or_create_key(path: &Path) -> Result<[u8; 32], KeyError> {
    use std::io::Read as _;
    use std::os::unix::fs::MetadataExt as _;
    let io = |source| KeyError::Io {
        path: path.display().to_string(),
        source,
    };
    let refuse = |why: String| KeyError::Unsafe {
        path: path.display().to_string(),
        why,
    };
    match std::fs::symlink_metadata(path) {
        Ok(m) => {
            if m.file_type().is_symlink() {
                return Err(refuse(
                    "is a symbolic link (a key is only read from a regular file)".into(),
                ));
            }
            if !m.is_file() {
                return Err(refuse("is not a regular file".into()));
            }
            // SAFETY: geteuid has no preconditions and cannot fail.
            let euid = unsafe { libc::geteuid() };
            if m.uid() != euid {
                return Err(refuse(format!(
                    "is owned by uid {}, not by this process's uid {euid}",
                    m.uid()
                )));
            }
            if m.mode() & 0o077 != 0 {
                return Err(refuse(format!(
                    "has mode {:04o}; a key must be 0600 (if nobody else could have read it, `chmod 600` it; otherwise remove it and a new one is made)",
                    m.mode() & 0o7777
                )));
            }
            let mut f = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(path)
                .map_err(io)?;
            let mut bytes = Vec::with_capacity(33);
            std::io::Read::by_ref(&mut f)
                .take(33)
                .read_to_end(&mut bytes)
                .map_err(io)?;
            if bytes.len() != 32 {
                return Err(KeyError::BadLength(path.display().to_string()));
            }
            let mut k = [0u8; 32];
            k.copy_from_slice(&bytes);
            return Ok(k);
        }
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(e)),
        Err(_) => {}
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let mut k = [0u8; 32];
    SystemRandom::new()
        .fill(&mut k)
        .map_err(|_| KeyError::Random)?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW)
        .mode(0o600)
        .open(path)
        .map_err(io)?;
    f.write_all(&k).and_then(|_| f.sync_all()).map_err(io)?;
    Ok(k)
}

impl FingerprintKey {
    /// Hex of the first 16 bytes of HMAC-SHA256(type name, 0, normalized value).
    pub fn fingerprint(&self, type_name: &str, normalized: &[u8]) -> Fingerprint {
        // Short values (nearly all) go to HMAC as one slice built on the stack.
        let mut buf = [0u8; 96];
        let len = type_name.len() + 1 + normalized.len();
        let tag = if len <= buf.len() {
            buf[..type_name.len()].copy_from_slice(type_name.as_bytes());
            buf[type_name.len() + 1..len].copy_from_slice(normalized);
            hmac::sign(&self.0, &buf[..len])
        } else {
            let mut ctx = hmac::Context::with_key(&self.0);
            ctx.update(type_name.as_bytes());
            ctx.update(&[0]);
            ctx.update(normalized);
            ctx.sign()
        };
        Fingerprint(hex::lower(
            tag.as_ref()[..FINGERPRINT_LEN / 2]
                .try_into()
                .expect("a SHA-256 tag has 32 bytes"),
        ))
    }
}

/// Lowercase hex of sixteen bytes: every byte at once on x86-64 (SSE2,
/// part of its baseline), a table elsewhere.
mod hex {
    use super::FINGERPRINT_LEN;

    const DIGITS: &[u8; 16] = b"0123456789abcdef";

    /// The hex digits of `bytes`, high nibble first.
    pub fn lower(bytes: &[u8; FINGERPRINT_LEN / 2]) -> [u8; FINGERPRINT_LEN] {
        #[cfg(target_arch = "x86_64")]
        {
            // SAFETY: SSE2 is part of the x86-64 baseline: every x86-64 CPU has it.
            unsafe { sse2(bytes) }
        }
        #[cfg(not(target_arch = "x86_64"))]
        by_table(bytes)
    }

    #[cfg_attr(target_arch = "x86_64", allow(dead_code))]
    pub fn by_table(bytes: &[u8; FINGERPRINT_LEN / 2]) -> [u8; FINGERPRINT_LEN] {
        let mut hex = [0u8; FINGERPRINT_LEN];
        for (pair, &b) in hex.chunks_exact_mut(2).zip(bytes) {
            pair[0] = DIGITS[usize::from(b >> 4)];
            pair[1] = DIGITS[usize::from(b & 15)];
        }
        hex
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "sse2")]
    fn sse2(bytes: &[u8; FINGERPRINT_LEN / 2]) -> [u8; FINGERPRINT_LEN] {
        use std::arch::x86_64::{
            __m128i, _mm_add_epi8, _mm_and_si128, _mm_cmpgt_epi8, _mm_set1_epi8, _mm_set_epi64x,
            _mm_srli_epi16, _mm_storeu_si128, _mm_unpackhi_epi8, _mm_unpacklo_epi8,
        };
        let half = |k: usize| i64::from_le_bytes(bytes[k..k + 8].try_into().expect("eight bytes"));
        let x = _mm_set_epi64x(half(8), half(0));
        let nibbles = _mm_set1_epi8(0x0F);
        let high = _mm_and_si128(_mm_srli_epi16::<4>(x), nibbles);
        let low = _mm_and_si128(x, nibbles);
        // A nibble v is '0' + v, plus the gap to 'a' past nine.
        let ascii = |v: __m128i| {
            let past_nine = _mm_and_si128(_mm_cmpgt_epi8(v, _mm_set1_epi8(9)), _mm_set1_epi8(39));
            _mm_add_epi8(_mm_add_epi8(v, _mm_set1_epi8(b'0' as i8)), past_nine)
        };
        let mut hex = [0u8; FINGERPRINT_LEN];
        let out = hex.as_mut_ptr().cast::<__m128i>();
        // SAFETY: `hex` holds 32 bytes: two unaligned 16-byte stores fill it.
        unsafe {
            _mm_storeu_si128(out, ascii(_mm_unpacklo_epi8(high, low)));
            _mm_storeu_si128(out.add(1), ascii(_mm_unpackhi_epi8(high, low)));
        }
        hex
    }
}

/// The `&str` face of an inline text type with an `as_str`: it derefs to
/// and displays as that text, compares with strings, and serializes as one.
macro_rules! reads_as_str {
    ($t:ty) => {
        impl std::ops::Deref for $t {
            type Target = str;

            fn deref(&self) -> &str {
                self.as_str()
            }
        }

        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl PartialEq<str> for $t {
            fn eq(&self, other: &str) -> bool {
                self.as_str() == other
            }
        }

        impl PartialEq<&str> for $t {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }

        impl serde::Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
    };
}

reads_as_str!(Fingerprint);
reads_as_str!(Masked);

/// Length of a fingerprint in hex digits (128 bits).
pub const FINGERPRINT_LEN: usize = 32;

/// A keyed fingerprint: 32 lowercase hex digits, held inline (no
/// allocation per finding). Reads as a `&str`; serializes as a string.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint([u8; FINGERPRINT_LEN]);

/// A string that is not 32 lowercase hex digits.
#[derive(Debug, thiserror::Error)]
#[error("a fingerprint is {FINGERPRINT_LEN} lowercase hex digits, not {0:?}")]
pub struct BadFingerprint(String);

impl Fingerprint {
    /// The hex digits.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("hex digits are ASCII")
    }
}

impl std::str::FromStr for Fingerprint {
    type Err = BadFingerprint;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let hex = |c: &u8| matches!(c, b'0'..=b'9' | b'a'..=b'f');
        match <[u8; FINGERPRINT_LEN]>::try_from(s.as_bytes()) {
            Ok(b) if b.iter().all(hex) => Ok(Self(b)),
            _ => Err(BadFingerprint(s.chars().take(80).collect())),
        }
    }
}

impl std::fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Fingerprint({})", self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Fingerprint {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The value in canonical form, so that formatting differences fingerprint alike.
pub fn normalize(kind: Option<PiiType>, raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    normalize_into(kind, raw, &mut out);
    out
}

/// [`normalize`] into `out` (cleared first), so one buffer serves every
/// finding of a scan.
pub fn normalize_into(kind: Option<PiiType>, raw: &[u8], out: &mut Vec<u8>) {
    use PiiType::*;
    out.clear();
    match kind {
        Some(
            CreditCard | UsSsn | UsItin | UsBankRouting | BankAccount | Cvv | PhoneNumber
            | DateOfBirth,
        ) => {
            // The digits, without a branch per byte: every byte is written,
            // and the count moves past digits only.
            out.resize(raw.len(), 0);
            let mut kept = 0;
            for &c in raw {
                out[kept] = c;
                kept += usize::from(c.is_ascii_digit());
            }
            out.truncate(kept);
            // A leading US country code is the same number.
            if kind == Some(PhoneNumber) && out.len() == 11 && out[0] == b'1' {
                out.remove(0);
            }
        }
        Some(CardTrackData) => out.extend(
            raw.iter()
                .skip_while(|c| !c.is_ascii_digit())
                .take_while(|c| c.is_ascii_digit()),
        ),
        Some(IbanCode) => out.extend(
            raw.iter()
                .filter(|c| c.is_ascii_alphanumeric())
                .map(u8::to_ascii_uppercase),
        ),
        Some(EmailAddress | Person | StreetAddress) if raw.is_ascii() => {
            // The ASCII case of the general rule below, without its copies.
            for word in ascii_words(raw) {
                if !out.is_empty() {
                    out.push(b' ');
                }
                out.extend(word.iter().map(u8::to_ascii_lowercase));
            }
        }
        Some(EmailAddress | Person | StreetAddress) => out.extend_from_slice(
            String::from_utf8_lossy(raw)
                .to_lowercase()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
                .as_bytes(),
        ),
        _ => out.extend_from_slice(raw),
    }
}

/// Longest mask, in bytes. A longer rendering (a long e-mail domain, a
/// long token's stars) is cut at a character boundary and ends in `…`.
pub const MASKED_CAP: usize = 62;

/// A masked value: at most [`MASKED_CAP`] bytes of UTF-8, held inline (no
/// allocation per finding). Reads as a `&str`; serializes as a string.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Masked {
    len: u8,
    /// Cut short: the text ends in `…` and takes nothing more.
    cut: bool,
    buf: [u8; MASKED_CAP],
}

impl Masked {
    fn new() -> Self {
        Self {
            len: 0,
            cut: false,
            buf: [0; MASKED_CAP],
        }
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.buf[..usize::from(self.len)]).expect("only whole characters")
    }

    /// Appends `s`; what does not fit is cut (see [`MASKED_CAP`]).
    fn push_str(&mut self, s: &str) {
        const ELLIPSIS: &str = "\u{2026}";
        if self.cut || self.append_fitting(s.as_bytes()) {
            return;
        }
        let len = usize::from(self.len);
        // Keep what fits before the ellipsis, ending on a character boundary.
        let keep = MASKED_CAP - ELLIPSIS.len();
        let end = if keep >= len {
            let k = (0..=keep - len)
                .rev()
                .find(|&k| s.is_char_boundary(k))
                .unwrap_or(0);
            self.buf[len..len + k].copy_from_slice(&s.as_bytes()[..k]);
            len + k
        } else {
            let text = self.as_str();
            (0..=keep)
                .rev()
                .find(|&e| text.is_char_boundary(e))
                .unwrap_or(0)
        };
        self.buf[end..end + ELLIPSIS.len()].copy_from_slice(ELLIPSIS.as_bytes());
        self.len = (end + ELLIPSIS.len()) as u8;
        self.cut = true;
    }

    /// Appends `b` (whole UTF-8 characters) if nothing was cut and it fits;
    /// whether it did.
    fn append_fitting(&mut self, b: &[u8]) -> bool {
        let len = usize::from(self.len);
        if self.cut || len + b.len() > MASKED_CAP {
            return false;
        }
        self.buf[len..len + b.len()].copy_from_slice(b);
        self.len = (len + b.len()) as u8;
        true
    }

    fn push(&mut self, c: char) {
        self.push_str(c.encode_utf8(&mut [0; 4]));
    }

    /// Appends `b` as text (invalid UTF-8 replaced).
    fn push_text(&mut self, b: &[u8]) {
        // ASCII is UTF-8 already: no validation.
        if b.is_ascii() && self.append_fitting(b) {
            return;
        }
        match std::str::from_utf8(b) {
            Ok(s) => self.push_str(s),
            Err(_) => self.push_str(&String::from_utf8_lossy(b)),
        }
    }

    /// Appends `n` stars.
    fn push_stars(&mut self, mut n: usize) {
        const STARS: &str = "********************************";
        while n > 0 {
            let k = n.min(STARS.len());
            self.push_str(&STARS[..k]);
            n -= k;
        }
    }
}

impl std::fmt::Debug for Masked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

impl From<Masked> for String {
    fn from(m: Masked) -> String {
        m.as_str().to_owned()
    }
}

/// `n` kept to its first `head` and last `tail` bytes, stars between.
fn keep_ends(out: &mut Masked, n: &[u8], head: usize, tail: usize) {
    let tail_start = n.len().saturating_sub(tail);
    let head = head.min(tail_start);
    let at = usize::from(out.len);
    if n.is_ascii() && out.append_fitting(n) {
        // Nearly always: ASCII that fits, appended whole, its middle then starred.
        out.buf[at + head..at + tail_start].fill(b'*');
        return;
    }
    out.push_text(&n[..head]);
    out.push_stars(tail_start - head);
    out.push_text(&n[tail_start..]);
}

/// The words of ASCII `text`: what `str::split_whitespace` gives for it.
fn ascii_words(text: &[u8]) -> impl Iterator<Item = &[u8]> {
    text.split(|c| c.is_ascii_whitespace() || *c == 0x0B)
        .filter(|w| !w.is_empty())
}

/// A masked rendering that never holds more than the type allows
/// (cards: first 6 and last 4 digits at most).
pub fn mask(kind: Option<PiiType>, raw: &[u8], normalized: &[u8]) -> Masked {
    use PiiType::*;
    let n = normalized;
    let mut out = Masked::new();
    match kind {
        Some(CreditCard) if n.len() >= 13 => keep_ends(&mut out, n, 6, 4),
        Some(CardTrackData) if n.len() >= 13 => {
            out.push_str("TRACK[");
            keep_ends(&mut out, n, 6, 4);
            out.push(']');
        }
        Some(UsSsn | UsItin) => {
            out.push_str("***-**-");
            out.push_text(&n[n.len().saturating_sub(4)..]);
        }
        Some(UsBankRouting | BankAccount | PhoneNumber) => keep_ends(&mut out, n, 0, 4),
        Some(IbanCode) if n.len() > 8 => keep_ends(&mut out, n, 4, 4),
        Some(EmailAddress) => match n.iter().position(|&c| c == b'@') {
            Some(at) if at > 0 => {
                out.push(char::from(n[0]));
                out.push_str("***");
                out.push_text(&n[at..]);
            }
            _ => out.push_str("***"),
        },
        Some(IpAddress) if raw.contains(&b':') => {
            // IPv6: the first two groups (the network's prefix) stay.
            let mut parts = raw.split(|&c| c == b':');
            out.push_text(parts.next().unwrap_or_default());
            out.push(':');
            out.push_text(parts.next().unwrap_or_default());
            out.push_str(":*");
        }
        Some(IpAddress) => {
            let mut parts = raw.split(|&c| c == b'.');
            out.push_text(parts.next().unwrap_or_default());
            out.push('.');
            match parts.next() {
                Some(p) => out.push_text(p),
                None => out.push('*'),
            }
            out.push_str(".*.*");
        }
        Some(DateOfBirth) => {
            // The 4-digit year is at either end.
            let year = raw
                .split(|c| !c.is_ascii_digit())
                .find(|p| p.len() == 4 && n.len() >= 4)
                .unwrap_or(b"****");
            out.push_text(year);
            out.push_str("-**-**");
        }
        Some(StreetAddress) if raw.is_ascii() => {
            // The ASCII case of the rule below, with no UTF-8 pass: the last
            // word before the first comma (the street's suffix).
            let first = raw.split(|&c| c == b',').next().unwrap_or_default();
            let last = ascii_words(first).last().unwrap_or_default();
            out.push_str("***");
            if !last.iter().any(u8::is_ascii_digit) {
                out.push_str(" ");
                out.push_text(last);
            }
        }
        Some(StreetAddress) => {
            let first = raw.split(|&c| c == b',').next().unwrap_or_default();
            let s = String::from_utf8_lossy(first);
            let last = s.split_whitespace().last().unwrap_or("");
            out.push_str("***");
            if !last.bytes().any(|c| c.is_ascii_digit()) {
                out.push_str(" ");
                out.push_str(last);
            }
        }
        Some(Person) if raw.is_ascii() => {
            // The ASCII case of the rule below: each word's initial.
            for (i, word) in ascii_words(raw).enumerate() {
                let initial = [b' ', word[0], b'.'];
                out.push_text(&initial[usize::from(i == 0)..]);
            }
        }
        Some(Person) => {
            for (i, c) in String::from_utf8_lossy(raw)
                .split_whitespace()
                .filter_map(|w| w.chars().next())
                .enumerate()
            {
                if i > 0 {
                    out.push(' ');
                }
                out.push(c);
                out.push('.');
            }
        }
        Some(Cvv) => out.push_str("***"),
        Some(AwsAccessKey | GithubToken | SlackToken | ApiKey) => {
            let prefix_len = raw
                .iter()
                .position(|&c| c == b'_' || c == b'-')
                .map(|p| p + 1)
                .unwrap_or(4)
                .min(8)
                .min(raw.len());
            out.push_text(&raw[..prefix_len]);
            out.push_stars(raw.len() - prefix_len);
        }
        Some(Jwt) => out.push_str(&format!("eyJ***[{} bytes]", raw.len())),
        Some(PrivateKey) => out.push_str(&format!(
            "-----BEGIN *** PRIVATE KEY----- [{} bytes]",
            raw.len()
        )),
        _ => out.push_stars(raw.len().min(32)),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_never_hold_more_than_allowed() {
        let raw = b"4111 1111 1111 1111";
        let n = normalize(Some(PiiType::CreditCard), raw);
        assert_eq!(n, b"4111111111111111");
        assert_eq!(mask(Some(PiiType::CreditCard), raw, &n), "411111******1111");
        let n = normalize(Some(PiiType::UsSsn), b"123-45-6789");
        assert_eq!(
            mask(Some(PiiType::UsSsn), b"123-45-6789", &n),
            "***-**-6789"
        );
        let e = normalize(Some(PiiType::EmailAddress), b"Jane.Doe@Example.com");
        assert_eq!(
            mask(Some(PiiType::EmailAddress), b"", &e),
            "j***@example.com"
        );
        assert_eq!(mask(Some(PiiType::Person), b"John Smith", b""), "J. S.");
        assert_eq!(mask(Some(PiiType::Cvv), b"123", b"123"), "***");
        let cases: [(PiiType, &[u8], &str); 7] = [
            (
                PiiType::IbanCode,
                b"GB82 WEST 1234 5698 7654 32",
                "GB82**************5432",
            ),
            (PiiType::IpAddress, b"10.1.2.3", "10.1.*.*"),
            (
                PiiType::IpAddress,
                b"2001:db8:85a3::8a2e:370:7334",
                "2001:db8:*",
            ),
            (PiiType::DateOfBirth, b"03/15/1985", "1985-**-**"),
            (
                PiiType::StreetAddress,
                b"1600 Pennsylvania Avenue, Washington, DC 20500",
                "*** Avenue",
            ),
            (PiiType::PhoneNumber, b"(202) 555-0143", "******0143"),
            (
                PiiType::CardTrackData,
                b";4111111111111111=2512101?",
                "TRACK[411111******1111]",
            ),
        ];
        for (kind, raw, want) in cases {
            let n = normalize(Some(kind), raw);
            assert_eq!(mask(Some(kind), raw, &n), want, "{kind:?}");
        }
        let k = b"AKIAZ4X7QPLM2NB8KD5R";
        assert_eq!(
            mask(Some(PiiType::AwsAccessKey), k, k),
            "AKIA****************"
        );
    }

    #[test]
    fn long_masks_are_cut_with_an_ellipsis() {
        let email = format!("jane@{}.com", "x".repeat(100));
        let n = normalize(Some(PiiType::EmailAddress), email.as_bytes());
        let m = mask(Some(PiiType::EmailAddress), email.as_bytes(), &n);
        assert!(m.len() <= MASKED_CAP && m.starts_with("j***@xxx"), "{m}");
        assert!(m.ends_with('\u{2026}'), "{m}");
        let names = "Élodie ".repeat(30);
        let m = mask(Some(PiiType::Person), names.as_bytes(), b"");
        assert!(m.len() <= MASKED_CAP && m.starts_with("É. É.") && m.ends_with('\u{2026}'));
        assert_eq!(String::from(m), m.as_str());
        assert_eq!(
            serde_json::to_string(&m).unwrap(),
            format!("{:?}", m.as_str())
        );
    }

    proptest::proptest! {
        #[test]
        fn masks_hold_what_was_pushed_or_a_prefix_and_an_ellipsis(
            parts in proptest::collection::vec("[a-z*É€😀.]{0,30}", 0..8),
        ) {
            let mut m = Masked::new();
            for p in &parts {
                m.push_str(p);
            }
            let full = parts.concat();
            if full.len() <= MASKED_CAP {
                proptest::prop_assert_eq!(m.as_str(), full);
            } else {
                let kept = m.strip_suffix('\u{2026}').expect("an ellipsis");
                proptest::prop_assert!(m.len() <= MASKED_CAP);
                proptest::prop_assert!(full.starts_with(kept));
                // At most a character (four bytes) short of the room left.
                proptest::prop_assert!(kept.len() + 4 > MASKED_CAP - 3);
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn ascii_names_and_streets_mask_as_the_general_rule_does(raw in "[ -~\t\n\x0b\x0c\r]{0,70}") {
            // The general rules, as they read for any text.
            let text = String::from_utf8_lossy(raw.as_bytes());
            let mut person = Masked::new();
            for (i, c) in text.split_whitespace().filter_map(|w| w.chars().next()).enumerate() {
                if i > 0 {
                    person.push(' ');
                }
                person.push(c);
                person.push('.');
            }
            let mut street = Masked::new();
            let last = text.split(',').next().unwrap_or("").split_whitespace().last().unwrap_or("");
            street.push_str("***");
            if !last.bytes().any(|c| c.is_ascii_digit()) {
                street.push(' ');
                street.push_str(last);
            }
            proptest::prop_assert_eq!(mask(Some(PiiType::Person), raw.as_bytes(), b""), person);
            proptest::prop_assert_eq!(mask(Some(PiiType::StreetAddress), raw.as_bytes(), b""), street);
        }
    }

    proptest::proptest! {
        #[test]
        fn ascii_text_normalizes_as_the_general_rule_does(raw in "[ -~\t\n\x0b\x0c\r]{0,40}") {
            let general = String::from_utf8_lossy(raw.as_bytes())
                .to_lowercase()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ");
            for kind in [PiiType::EmailAddress, PiiType::Person, PiiType::StreetAddress] {
                proptest::prop_assert_eq!(&normalize(Some(kind), raw.as_bytes()), general.as_bytes());
            }
        }
    }

    #[test]
    fn fingerprint_is_hmac_of_type_zero_value_at_any_length() {
        let key = FingerprintKey::from_bytes(&[3; 32]);
        let reference = hmac::Key::new(hmac::HMAC_SHA256, &[3; 32]);
        for len in [0, 16, 80, 83, 84, 200, 5000] {
            let value = vec![b'7'; len];
            let mut msg = b"CREDIT_CARD\0".to_vec();
            msg.extend_from_slice(&value);
            let tag = hmac::sign(&reference, &msg);
            let hex: String = tag.as_ref()[..16]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            assert_eq!(key.fingerprint("CREDIT_CARD", &value), *hex, "length {len}");
        }
    }

    proptest::proptest! {
        #[test]
        fn hex_digits_match_the_formatter(bytes in proptest::array::uniform16(proptest::num::u8::ANY)) {
            let want: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            proptest::prop_assert_eq!(&hex::lower(&bytes)[..], want.as_bytes());
            proptest::prop_assert_eq!(&hex::by_table(&bytes)[..], want.as_bytes());
        }
    }

    #[test]
    fn fingerprints_read_back_and_refuse_anything_else() {
        let fp = FingerprintKey::from_bytes(&[1; 32]).fingerprint("EMAIL_ADDRESS", b"a@b.c");
        let json = serde_json::to_string(&fp).unwrap();
        assert_eq!(json, format!("\"{fp}\""));
        assert_eq!(serde_json::from_str::<Fingerprint>(&json).unwrap(), fp);
        assert_eq!(fp.as_str().parse::<Fingerprint>().unwrap(), fp);
        for bad in [
            "",
            "abc",
            &fp.to_uppercase(),
            &format!("{fp}0"),
            &fp.replace('a', "g"),
        ] {
            if bad == fp.as_str() {
                continue;
            }
            let err = bad.parse::<Fingerprint>().unwrap_err();
            assert!(err.to_string().contains("32 lowercase hex digits"), "{err}");
            assert!(serde_json::from_str::<Fingerprint>(&format!("{bad:?}")).is_err());
        }
    }

    #[test]
    fn fingerprints_are_keyed_and_format_blind() {
        let a = FingerprintKey::from_bytes(&[1; 32]);
        let b = FingerprintKey::from_bytes(&[2; 32]);
        let x = normalize(Some(PiiType::CreditCard), b"4111-1111-1111-1111");
        let y = normalize(Some(PiiType::CreditCard), b"4111 1111 1111 1111");
        assert_eq!(
            a.fingerprint("CREDIT_CARD", &x),
            a.fingerprint("CREDIT_CARD", &y)
        );
        assert_ne!(
            a.fingerprint("CREDIT_CARD", &x),
            b.fingerprint("CREDIT_CARD", &x)
        );
        assert_eq!(a.fingerprint("CREDIT_CARD", &x).len(), 32);
    }

    #[test]
    fn key_file_is_created_0600_and_reused() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = std::env::temp_dir().join(format!("pii-key-{}", std::process::id()));
        let path = dir.join("key");
        let k1 = FingerprintKey::load_or_create(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let k2 = FingerprintKey::load_or_create(&path).unwrap();
        assert_eq!(k1.fingerprint("T", b"v"), k2.fingerprint("T", b"v"));
        std::fs::write(&path, b"short").unwrap();
        assert!(matches!(
            FingerprintKey::load_or_create(&path),
            Err(KeyError::BadLength(_))
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn key_files_others_could_read_or_swap_are_refused() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = std::env::temp_dir().join(format!("pii-key-unsafe-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let real = dir.join("real");
        load_or_create_key(&real).unwrap();
        let why = |p: &Path| match load_or_create_key(p) {
            Err(KeyError::Unsafe { why, .. }) => why,
            other => panic!("{p:?}: {other:?}"),
        };
        // A symlink, even to a good key, and a dangling one.
        let link = dir.join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        assert!(why(&link).contains("symbolic link"));
        let dangling = dir.join("dangling");
        std::os::unix::fs::symlink(dir.join("nowhere"), &dangling).unwrap();
        assert!(why(&dangling).contains("symbolic link"));
        // Readable by others.
        std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o666)).unwrap();
        assert!(why(&real).contains("mode 0666"));
        std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(load_or_create_key(&real).is_ok());
        // Not a file.
        assert!(why(&dir).contains("not a regular file"));
        // Owned by someone else (root can hand it over to test this).
        // SAFETY: as in `load_or_create_key`.
        if unsafe { libc::geteuid() } == 0 {
            let c = std::ffi::CString::new(real.to_str().unwrap()).unwrap();
            // SAFETY: a valid path; uid/gid 65534 (nobody).
            assert_eq!(unsafe { libc::chown(c.as_ptr(), 65534, 65534) }, 0);
            assert!(why(&real).contains("owned by uid 65534"));
        }
        // The error names the file once, and its cause once.
        let missing_dir = Path::new("/proc/none/key");
        let e = load_or_create_key(missing_dir).unwrap_err();
        assert_eq!(e.to_string(), "key file /proc/none/key");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
