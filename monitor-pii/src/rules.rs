//! Detector settings from the rules (`rules/pii.toml`): per-type thresholds
//! and switches, and custom detectors. Parsed in two steps: serde structs,
//! then validation into [`PiiRules`]; every error names file, line, column.

use std::collections::BTreeMap;
use std::fmt;

use regex::bytes::Regex;
use regex_automata::util::prefilter::Prefilter;
use serde::Deserialize;
use toml::Spanned;

use crate::types::PiiType;

/// A rules error with its position.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{col}: {message}")]
pub struct RulesError {
    /// The file.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub col: usize,
    /// What is wrong.
    pub message: String,
}

impl RulesError {
    /// An error at byte `offset` of `src` (the text of `file`).
    pub fn at(src: &str, file: &str, offset: usize, message: impl Into<String>) -> Self {
        let (line, col) = position(src, offset);
        Self {
            file: file.to_owned(),
            line,
            col,
            message: message.into(),
        }
    }

    /// A TOML syntax or shape error, positioned.
    pub fn from_toml(src: &str, file: &str, e: &toml::de::Error) -> Self {
        Self::at(src, file, e.span().map_or(0, |s| s.start), e.message())
    }
}

/// Named checks a custom detector can require.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validator {
    /// No check beyond the pattern.
    None,
    /// Luhn over the digits.
    Luhn,
    /// ABA routing checksum over the digits.
    Aba,
    /// IBAN mod 97.
    Iban,
    /// US SSN rules over the digits.
    Ssn,
}

impl Validator {
    const NAMES: &'static [(&'static str, Validator)] = &[
        ("none", Validator::None),
        ("luhn", Validator::Luhn),
        ("aba", Validator::Aba),
        ("iban", Validator::Iban),
        ("ssn", Validator::Ssn),
    ];

    /// Whether `value` passes.
    pub fn check(self, value: &[u8]) -> bool {
        let digits: Vec<u8> = value.iter().copied().filter(u8::is_ascii_digit).collect();
        match self {
            Validator::None => true,
            Validator::Luhn => crate::validate::luhn(&digits),
            Validator::Aba => crate::validate::aba_routing(&digits),
            Validator::Ssn => crate::validate::ssn(&digits),
            Validator::Iban => {
                let v: Vec<u8> = value
                    .iter()
                    .filter(|c| c.is_ascii_alphanumeric())
                    .map(u8::to_ascii_uppercase)
                    .collect();
                crate::validate::iban(&v)
            }
        }
    }
}

/// A custom detector.
#[derive(Debug, Clone)]
pub struct CustomDetector {
    /// Its type name (upper snake case).
    pub name: std::sync::Arc<str>,
    /// The pattern.
    pub pattern: Regex,
    /// A search for the literal prefixes every match starts with, when the
    /// pattern has some and the search is fast: a text that holds none is
    /// passed over without a regex search (which costs a short record
    /// tens of nanoseconds even when its own prefilter finds nothing).
    pub prefixes: Option<Prefilter>,
    /// Words that raise the score by 0.3 when near a match (lowercase).
    pub hotwords: Vec<String>,
    /// Required check.
    pub validator: Validator,
    /// Base score.
    pub score: f32,
    /// Reporting threshold.
    pub threshold: f32,
    /// A category of the daemon's own (`risk`: phrases that show a
    /// conversation going where it should not), for responders to select.
    pub category: Option<String>,
}

/// Validated detector settings.
#[derive(Debug, Clone)]
pub struct PiiRules {
    thresholds: [f32; PiiType::ALL.len()],
    enabled: [bool; PiiType::ALL.len()],
    /// Custom detectors, in file order.
    pub custom: Vec<CustomDetector>,
}

impl Default for PiiRules {
    fn default() -> Self {
        Self {
            thresholds: PiiType::ALL.map(PiiType::default_threshold),
            enabled: [true; PiiType::ALL.len()],
            custom: Vec::new(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRules {
    #[serde(default)]
    types: BTreeMap<Spanned<String>, RawType>,
    #[serde(default)]
    custom: Vec<RawCustom>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawType {
    threshold: Option<Spanned<f32>>,
    enabled: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCustom {
    name: Spanned<String>,
    pattern: Spanned<String>,
    #[serde(default)]
    hotwords: Vec<String>,
    validator: Option<Spanned<String>>,
    score: Spanned<f32>,
    threshold: Option<Spanned<f32>>,
    category: Option<String>,
}

/// The shipped defaults.
pub const DEFAULT_RULES: &str = include_str!("../../rules/pii.toml");

fn position(src: &str, offset: usize) -> (usize, usize) {
    let before = &src[..offset.min(src.len())];
    let line = before.matches('\n').count() + 1;
    let col = before
        .rfind('\n')
        .map_or(before.len(), |p| before.len() - p - 1)
        + 1;
    (line, col)
}

impl PiiRules {
    /// Parses and validates one rules file's text.
    pub fn parse(src: &str, file: &str) -> Result<Self, RulesError> {
        let err = |offset: usize, message: String| RulesError::at(src, file, offset, message);
        let raw: RawRules =
            toml::from_str(src).map_err(|e| RulesError::from_toml(src, file, &e))?;
        let mut rules = PiiRules::default();
        for (name, t) in &raw.types {
            let Some(kind) = PiiType::from_name(name.get_ref()) else {
                let known: Vec<&str> = PiiType::ALL.iter().map(|t| t.name()).collect();
                return Err(err(
                    name.span().start,
                    format!(
                        "unknown PII type `{}` (known: {})",
                        name.get_ref(),
                        known.join(", ")
                    ),
                ));
            };
            let i = kind.priority();
            if let Some(th) = &t.threshold {
                rules.thresholds[i] = score_in_range(th).map_err(|m| err(th.span().start, m))?;
            }
            if let Some(on) = t.enabled {
                rules.enabled[i] = on;
            }
        }
        for c in raw.custom {
            let name = c.name.get_ref();
            let upper_snake = !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
            if !upper_snake {
                return Err(err(
                    c.name.span().start,
                    format!("custom detector name `{name}` must be UPPER_SNAKE_CASE"),
                ));
            }
            if PiiType::from_name(name).is_some()
                || rules.custom.iter().any(|d| &*d.name == name.as_str())
            {
                return Err(err(
                    c.name.span().start,
                    format!("custom detector `{name}` is defined twice or shadows a built-in type"),
                ));
            }
            let pattern = regex::bytes::RegexBuilder::new(c.pattern.get_ref())
                .size_limit(1 << 20)
                .build()
                .map_err(|e| {
                    err(
                        c.pattern.span().start,
                        format!(
                            "bad pattern: {}",
                            e.to_string().lines().last().unwrap_or_default()
                        ),
                    )
                })?;
            let validator = match &c.validator {
                None => Validator::None,
                Some(v) => Validator::NAMES
                    .iter()
                    .find(|(n, _)| n == v.get_ref())
                    .map(|&(_, v)| v)
                    .ok_or_else(|| {
                        let known: Vec<&str> = Validator::NAMES.iter().map(|(n, _)| *n).collect();
                        err(
                            v.span().start,
                            format!(
                                "unknown validator `{}` (known: {})",
                                v.get_ref(),
                                known.join(", ")
                            ),
                        )
                    })?,
            };
            let score = score_in_range(&c.score).map_err(|m| err(c.score.span().start, m))?;
            let threshold = match &c.threshold {
                Some(t) => score_in_range(t).map_err(|m| err(t.span().start, m))?,
                None => 0.5,
            };
            rules.custom.push(CustomDetector {
                name: name.as_str().into(),
                pattern,
                prefixes: prefixes_of(c.pattern.get_ref()),
                hotwords: c.hotwords.iter().map(|h| h.to_lowercase()).collect(),
                validator,
                score,
                threshold,
                category: c.category.clone(),
            });
        }
        Ok(rules)
    }

    /// The shipped defaults.
    pub fn defaults() -> Self {
        Self::parse(DEFAULT_RULES, "rules/pii.toml").expect("shipped rules are valid")
    }

    /// True when `name` is a built-in type or one of these rules' custom detectors.
    pub fn knows_type(&self, name: &str) -> bool {
        PiiType::from_name(name).is_some() || self.custom.iter().any(|d| &*d.name == name)
    }

    /// The reporting threshold for `kind`.
    pub fn threshold(&self, kind: PiiType) -> f32 {
        self.thresholds[kind.priority()]
    }

    /// Whether `kind` is reported at all.
    pub fn enabled(&self, kind: PiiType) -> bool {
        self.enabled[kind.priority()]
    }
}

fn score_in_range(v: &Spanned<f32>) -> Result<f32, String> {
    let x = *v.get_ref();
    if (0.0..=1.0).contains(&x) {
        Ok(x)
    } else {
        Err(format!("score {x} is outside 0.0..=1.0"))
    }
}

impl fmt::Display for Validator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = Validator::NAMES
            .iter()
            .find(|(_, v)| v == self)
            .map_or("?", |(n, _)| n);
        f.write_str(name)
    }
}

/// The prefilter of `pattern`'s literal prefixes ([`CustomDetector::prefixes`]),
/// parsed as `regex::bytes` parses it. Zero false negatives: every match
/// starts where it reports a candidate (regex-automata's guarantee).
fn prefixes_of(pattern: &str) -> Option<Prefilter> {
    let config = regex_automata::util::syntax::Config::new().utf8(false);
    let hir = regex_automata::util::syntax::parse_with(pattern, &config).ok()?;
    Prefilter::from_hir_prefix(regex_automata::MatchKind::LeftmostFirst, &hir)
        .filter(Prefilter::is_fast)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(src: &str) -> String {
        PiiRules::parse(src, "pii.toml").unwrap_err().to_string()
    }

    /// A custom pattern's prefix search never passes over a text it
    /// matches: wherever the pattern matches, a candidate starts at or
    /// before the match.
    #[test]
    fn custom_prefixes_never_miss_a_match() {
        let patterns = [
            r"\bCUST-[0-9]{8}\b",
            r"(?i)\bwire (?:transfer|the (?:money|funds))\b",
            r"(?i)\b(?:full|whole|entire|complete|long) card number\b",
            r"EMP-[0-9]{4}|CONTRACTOR-[0-9]{3}",
            r"[0-9]{4}-EMP",
            r"(?-u:\xFF)ab",
            r"x*abc",
        ];
        let texts: [&[u8]; 9] = [
            b"crm id CUST-12345678 here",
            b"please WIRE the Funds today",
            b"read me the Full card number",
            b"badge EMP-1234, CONTRACTOR-123",
            b"id 1234-EMP",
            b"bytes \xFFab here",
            b"xxxabc",
            b"abc",
            b"nothing to see",
        ];
        assert!(prefixes_of(patterns[0]).is_some(), "a literal prefix");
        for p in patterns {
            let re = regex::bytes::Regex::new(p).unwrap();
            let Some(pre) = prefixes_of(p) else { continue };
            for t in texts {
                let Some(m) = re.find(t) else { continue };
                let c = pre
                    .find(t, regex_automata::Span::from(0..t.len()))
                    .unwrap_or_else(|| {
                        panic!("{p} on {:?}: no candidate", String::from_utf8_lossy(t))
                    });
                assert!(c.start <= m.start(), "{p}");
            }
        }
    }

    #[test]
    fn shipped_rules_parse() {
        let r = PiiRules::defaults();
        assert!(r.enabled(PiiType::CreditCard));
    }

    #[test]
    fn errors_name_file_line_and_column() {
        assert_eq!(
            error("[types.CREDIT_CARD]\nthreshold = 2.0\n"),
            "pii.toml:2:13: score 2 is outside 0.0..=1.0"
        );
        assert!(error("[types.NOPE]\n").starts_with("pii.toml:1:8: unknown PII type `NOPE`"));
        assert!(
            error("[types.US_SSN]\ncolour = 1\n")
                .starts_with("pii.toml:2:1: unknown field `colour`"),
            "{}",
            error("[types.US_SSN]\ncolour = 1\n")
        );
        assert!(
            error("[[custom]]\nname = \"X\"\npattern = \"(\"\nscore = 0.5\n")
                .starts_with("pii.toml:3:11: bad pattern")
        );
        assert!(error(
            "[[custom]]\nname = \"X\"\npattern = \"x\"\nvalidator = \"md5\"\nscore = 0.5\n"
        )
        .starts_with("pii.toml:4:13: unknown validator `md5`"));
        assert!(
            error("[[custom]]\nname = \"lower\"\npattern = \"x\"\nscore = 0.5\n")
                .starts_with("pii.toml:2:8: custom detector name")
        );
        assert!(error("[types\n").starts_with("pii.toml:1:"));
    }
}
