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
    #[error("fingerprint key {path}: {source}")]
    Io {
        /// The key file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The key file is not 32 bytes.
    #[error("fingerprint key {0} is not 32 bytes")]
    BadLength(String),
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
pub fn load_or_create_key(path: &Path) -> Result<[u8; 32], KeyError> {
    let io = |source| KeyError::Io {
        path: path.display().to_string(),
        source,
    };
    match std::fs::read(path) {
        Ok(bytes) if bytes.len() == 32 => {
            let mut k = [0u8; 32];
            k.copy_from_slice(&bytes);
            return Ok(k);
        }
        Ok(_) => return Err(KeyError::BadLength(path.display().to_string())),
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
        .mode(0o600)
        .open(path)
        .map_err(io)?;
    f.write_all(&k).and_then(|_| f.sync_all()).map_err(io)?;
    Ok(k)
}

impl FingerprintKey {
    /// Hex of the first 16 bytes of HMAC-SHA256(type name, 0, normalized value).
    pub fn fingerprint(&self, type_name: &str, normalized: &[u8]) -> String {
        let mut ctx = hmac::Context::with_key(&self.0);
        ctx.update(type_name.as_bytes());
        ctx.update(&[0]);
        ctx.update(normalized);
        let tag = ctx.sign();
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut out = String::with_capacity(32);
        for &b in &tag.as_ref()[..16] {
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 15)]));
        }
        out
    }
}

/// The value in canonical form, so that formatting differences fingerprint alike.
pub fn normalize(kind: Option<PiiType>, raw: &[u8]) -> Vec<u8> {
    use PiiType::*;
    match kind {
        Some(
            CreditCard | UsSsn | UsItin | UsBankRouting | BankAccount | Cvv | PhoneNumber
            | DateOfBirth,
        ) => {
            let d: Vec<u8> = raw.iter().copied().filter(u8::is_ascii_digit).collect();
            // A leading US country code is the same number.
            if kind == Some(PhoneNumber) && d.len() == 11 && d[0] == b'1' {
                return d[1..].to_vec();
            }
            d
        }
        Some(CardTrackData) => {
            let pan: Vec<u8> = raw
                .iter()
                .skip_while(|c| !c.is_ascii_digit())
                .take_while(|c| c.is_ascii_digit())
                .copied()
                .collect();
            pan
        }
        Some(IbanCode) => raw
            .iter()
            .filter(|c| c.is_ascii_alphanumeric())
            .map(u8::to_ascii_uppercase)
            .collect(),
        Some(EmailAddress | Person | StreetAddress) => String::from_utf8_lossy(raw)
            .to_lowercase()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .into_bytes(),
        _ => raw.to_vec(),
    }
}

fn stars(n: usize) -> String {
    "*".repeat(n)
}

fn last(s: &[u8], n: usize) -> String {
    String::from_utf8_lossy(&s[s.len().saturating_sub(n)..]).into_owned()
}

/// A masked rendering that never holds more than the type allows
/// (cards: first 6 and last 4 digits at most).
pub fn mask(kind: Option<PiiType>, raw: &[u8], normalized: &[u8]) -> String {
    use PiiType::*;
    let n = normalized;
    match kind {
        Some(CreditCard) if n.len() >= 13 => format!(
            "{}{}{}",
            String::from_utf8_lossy(&n[..6]),
            stars(n.len() - 10),
            last(n, 4)
        ),
        Some(CardTrackData) if n.len() >= 13 => format!(
            "TRACK[{}{}{}]",
            String::from_utf8_lossy(&n[..6]),
            stars(n.len() - 10),
            last(n, 4)
        ),
        Some(UsSsn | UsItin) => format!("***-**-{}", last(n, 4)),
        Some(UsBankRouting | BankAccount) => {
            format!("{}{}", stars(n.len().saturating_sub(4)), last(n, 4))
        }
        Some(IbanCode) if n.len() > 8 => format!(
            "{}{}{}",
            String::from_utf8_lossy(&n[..4]),
            stars(n.len() - 8),
            last(n, 4)
        ),
        Some(PhoneNumber) => format!("{}{}", stars(n.len().saturating_sub(4)), last(n, 4)),
        Some(EmailAddress) => match n.iter().position(|&c| c == b'@') {
            Some(at) if at > 0 => format!(
                "{}***{}",
                char::from(n[0]),
                String::from_utf8_lossy(&n[at..])
            ),
            _ => "***".to_owned(),
        },
        Some(IpAddress) => {
            let s = String::from_utf8_lossy(raw);
            let parts: Vec<&str> = s.split('.').collect();
            format!("{}.{}.*.*", parts[0], parts.get(1).unwrap_or(&"*"))
        }
        Some(DateOfBirth) => {
            let year = n.len().checked_sub(4).map(|_| {
                // The 4-digit year is at either end.
                let s = String::from_utf8_lossy(raw);
                s.split(|c: char| !c.is_ascii_digit())
                    .find(|p| p.len() == 4)
                    .unwrap_or("****")
                    .to_owned()
            });
            format!("{}-**-**", year.unwrap_or_else(|| "****".into()))
        }
        Some(StreetAddress) => {
            let s = String::from_utf8_lossy(raw);
            let suffix = s
                .split(',')
                .next()
                .and_then(|a| a.split_whitespace().last())
                .unwrap_or("");
            format!("*** {suffix}")
        }
        Some(Person) => String::from_utf8_lossy(raw)
            .split_whitespace()
            .filter_map(|w| w.chars().next())
            .map(|c| format!("{c}."))
            .collect::<Vec<_>>()
            .join(" "),
        Some(Cvv) => "***".to_owned(),
        Some(AwsAccessKey | GithubToken | SlackToken | ApiKey) => {
            let prefix_len = raw
                .iter()
                .position(|&c| c == b'_' || c == b'-')
                .map(|p| p + 1)
                .unwrap_or(4)
                .min(8);
            format!(
                "{}{}",
                String::from_utf8_lossy(&raw[..prefix_len.min(raw.len())]),
                stars(raw.len().saturating_sub(prefix_len))
            )
        }
        Some(Jwt) => format!("eyJ***[{} bytes]", raw.len()),
        Some(PrivateKey) => format!("-----BEGIN *** PRIVATE KEY----- [{} bytes]", raw.len()),
        _ => stars(raw.len().min(32)),
    }
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
        let k = b"AKIAZ4X7QPLM2NB8KD5R";
        assert_eq!(
            mask(Some(PiiType::AwsAccessKey), k, k),
            "AKIA****************"
        );
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
}
