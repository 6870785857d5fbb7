//! `classes.toml`: data classes by path glob (first match wins), the class
//! each PII type counts as, and how severe a violation involving each class
//! or PII type is. Severity is data: a class the file does not rate is
//! `medium`, a PII type sent where it is denied is `high`.

use std::collections::HashMap;
use std::sync::Arc;

use globset::GlobSet;
use monitor_pii::{PiiRules, RulesError};
use serde::Deserialize;
use toml::Spanned;

use super::{glob, parse_toml};
use crate::model::Severity;

/// Severity of a violation involving a class the rules do not rate.
pub const DEFAULT_CLASS_SEVERITY: Severity = Severity::Medium;
/// Severity of sending a denied PII type the rules do not rate.
pub const DEFAULT_PII_SEVERITY: Severity = Severity::High;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClasses {
    #[serde(default)]
    path: Vec<RawPath>,
    #[serde(default)]
    pii: HashMap<Spanned<String>, Spanned<String>>,
    #[serde(default)]
    severity: HashMap<Spanned<String>, Spanned<String>>,
    #[serde(default)]
    pii_severity: HashMap<Spanned<String>, Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPath {
    glob: Spanned<String>,
    class: Spanned<String>,
}

/// The validated data classes.
#[derive(Debug)]
pub struct ClassRules {
    globs: GlobSet,
    glob_texts: Vec<String>,
    path_class: Vec<Arc<str>>,
    pii_class: HashMap<String, Arc<str>>,
    names: Vec<Arc<str>>,
    class_severity: HashMap<String, Severity>,
    pii_severity: HashMap<String, Severity>,
}

fn class_name(src: &str, file: &str, s: &Spanned<String>) -> Result<Arc<str>, RulesError> {
    let n = s.get_ref();
    let ok = !n.is_empty()
        && n.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(Arc::from(n.as_str()))
    } else {
        Err(RulesError::at(
            src,
            file,
            s.span().start,
            format!("class name `{n}` must be lowercase letters, digits and `-`"),
        ))
    }
}

impl ClassRules {
    /// Parses and validates `classes.toml`; PII type names are checked against `pii`.
    pub fn parse(src: &str, file: &str, pii: &PiiRules) -> Result<Self, RulesError> {
        let raw: RawClasses = parse_toml(src, file)?;
        let mut names: Vec<Arc<str>> = Vec::new();
        let mut intern = |c: Arc<str>| {
            if let Some(known) = names.iter().find(|n| **n == c) {
                known.clone()
            } else {
                names.push(c.clone());
                c
            }
        };
        let mut set = globset::GlobSetBuilder::new();
        let mut path_class = Vec::new();
        let mut glob_texts = Vec::new();
        for p in &raw.path {
            if !p.glob.get_ref().starts_with('/') {
                return Err(RulesError::at(
                    src,
                    file,
                    p.glob.span().start,
                    format!("path glob `{}` must be absolute", p.glob.get_ref()),
                ));
            }
            set.add(glob(src, file, &p.glob)?);
            glob_texts.push(p.glob.get_ref().clone());
            path_class.push(intern(class_name(src, file, &p.class)?));
        }
        let globs = set
            .build()
            .map_err(|e| RulesError::at(src, file, 0, e.to_string()))?;
        let known_pii = |t: &Spanned<String>| {
            if pii.knows_type(t.get_ref()) {
                Ok(())
            } else {
                Err(RulesError::at(
                    src,
                    file,
                    t.span().start,
                    format!("unknown PII type `{}`", t.get_ref()),
                ))
            }
        };
        let mut pii_class = HashMap::new();
        for (t, c) in &raw.pii {
            known_pii(t)?;
            pii_class.insert(t.get_ref().clone(), intern(class_name(src, file, c)?));
        }
        let rating = |s: &Spanned<String>| {
            s.get_ref()
                .parse::<Severity>()
                .map_err(|m| RulesError::at(src, file, s.span().start, m))
        };
        let mut class_severity = HashMap::new();
        for (c, s) in &raw.severity {
            if !names.iter().any(|n| **n == **c.get_ref()) {
                return Err(RulesError::at(
                    src,
                    file,
                    c.span().start,
                    format!(
                        "severity for unknown class `{}` (no path or PII rule names it)",
                        c.get_ref()
                    ),
                ));
            }
            class_severity.insert(c.get_ref().clone(), rating(s)?);
        }
        let mut pii_severity = HashMap::new();
        for (t, s) in &raw.pii_severity {
            known_pii(t)?;
            pii_severity.insert(t.get_ref().clone(), rating(s)?);
        }
        Ok(Self {
            globs,
            glob_texts,
            path_class,
            pii_class,
            names,
            class_severity,
            pii_severity,
        })
    }

    /// True when some rule names class `name`.
    pub fn knows(&self, name: &str) -> bool {
        self.names.iter().any(|n| &**n == name)
    }

    /// The class names defined.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.names.iter().map(|n| &**n)
    }

    /// The class of `path` (first matching rule), if any.
    pub fn of_path(&self, path: &str) -> Option<Arc<str>> {
        if self.path_class.is_empty() {
            return None;
        }
        self.globs
            .matches(path)
            .into_iter()
            .min()
            .map(|i| self.path_class[i].clone())
    }

    /// How severe a violation involving class `class` is.
    pub fn severity_of_class(&self, class: &str) -> Severity {
        self.class_severity
            .get(class)
            .copied()
            .unwrap_or(DEFAULT_CLASS_SEVERITY)
    }

    /// How severe sending PII type `kind` where it is denied is.
    pub fn severity_of_pii(&self, kind: &str) -> Severity {
        self.pii_severity
            .get(kind)
            .copied()
            .unwrap_or(DEFAULT_PII_SEVERITY)
    }

    /// The directories the kernel marks, from the path globs: each glob's
    /// literal leading directory (the components before the first wildcard)
    /// and the glob's mark (its index + 1). A path the kernel cuts short is
    /// classified by the nearest of these above it ([`ClassRules::of_mark`]).
    pub fn anchors(&self) -> Vec<(String, u32)> {
        self.glob_texts
            .iter()
            .enumerate()
            .map(|(i, g)| {
                let literal: Vec<&str> = g
                    .split('/')
                    .take_while(|c| !c.contains(['*', '?', '[', '{', '\\']))
                    .collect();
                let mut dir = literal.join("/");
                if dir.len() == g.len() {
                    // No wildcard: the glob names one path; its directory is the anchor.
                    dir.truncate(dir.rfind('/').unwrap_or(0));
                }
                if dir.is_empty() {
                    dir.push('/');
                }
                (dir, i as u32 + 1)
            })
            .collect()
    }

    /// The class of the glob with mark `mark` (see [`ClassRules::anchors`]).
    pub fn of_mark(&self, mark: u32) -> Option<Arc<str>> {
        let i = (mark as usize).checked_sub(1)?;
        self.path_class.get(i).cloned()
    }

    /// The class of PII type `name`, if mapped.
    pub fn of_pii(&self, name: &str) -> Option<Arc<str>> {
        self.pii_class.get(name).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(src: &str) -> Result<ClassRules, RulesError> {
        ClassRules::parse(src, "classes.toml", &PiiRules::defaults())
    }

    #[test]
    fn first_matching_path_rule_wins() {
        let c = rules(
            r#"
[[path]]
glob = "/srv/cardholder/public/*"
class = "public-docs"
[[path]]
glob = "/srv/cardholder/**"
class = "cardholder-data"
[pii]
CREDIT_CARD = "cardholder-data"
"#,
        )
        .unwrap();
        assert_eq!(
            c.of_path("/srv/cardholder/2026/cards.csv").as_deref(),
            Some("cardholder-data")
        );
        assert_eq!(
            c.of_path("/srv/cardholder/public/faq.txt").as_deref(),
            Some("public-docs")
        );
        assert_eq!(c.of_path("/srv/other"), None);
        assert_eq!(c.of_pii("CREDIT_CARD").as_deref(), Some("cardholder-data"));
        assert!(c.knows("public-docs") && !c.knows("nope"));
        assert_eq!(
            c.anchors(),
            [
                ("/srv/cardholder/public".to_owned(), 1),
                ("/srv/cardholder".to_owned(), 2)
            ]
        );
        assert_eq!(c.of_mark(2).as_deref(), Some("cardholder-data"));
        assert_eq!(c.of_mark(0), None);
        assert_eq!(c.of_mark(3), None);
    }

    #[test]
    fn broken_classes_are_refused_with_a_position() {
        let cases = [
            (
                "[[path]]\nglob = \"/a/{b\"\nclass = \"x\"\n",
                2,
                8,
                "bad glob",
            ),
            (
                "[[path]]\nglob = \"srv/**\"\nclass = \"x\"\n",
                2,
                8,
                "must be absolute",
            ),
            (
                "[pii]\nCREDIT_KARD = \"x\"\n",
                2,
                1,
                "unknown PII type `CREDIT_KARD`",
            ),
            (
                "[[path]]\nglob = \"/a\"\nclas = \"x\"\n",
                3,
                1,
                "unknown field `clas`",
            ),
            (
                "[[path]]\nglob = \"/a\"\nclass = \"Card Data\"\n",
                3,
                9,
                "must be lowercase",
            ),
            (
                "[severity]\nnope = \"high\"\n",
                2,
                1,
                "severity for unknown class `nope`",
            ),
            (
                "[[path]]\nglob = \"/a\"\nclass = \"a\"\n[severity]\na = \"urgent\"\n",
                5,
                5,
                "unknown severity `urgent`",
            ),
            (
                "[pii_severity]\nCARD = \"high\"\n",
                2,
                1,
                "unknown PII type `CARD`",
            ),
        ];
        for (src, line, col, msg) in cases {
            let e = rules(src).unwrap_err();
            assert_eq!((e.line, e.col), (line, col), "{src:?}: {e}");
            assert!(e.message.contains(msg), "{src:?}: {e}");
        }
    }

    #[test]
    fn severity_is_data() {
        let c = rules(
            "[[path]]\nglob = \"/a/**\"\nclass = \"a\"\n[[path]]\nglob = \"/b/**\"\nclass = \"b\"\n\
             [severity]\na = \"critical\"\n[pii_severity]\nEMAIL_ADDRESS = \"low\"\n",
        )
        .unwrap();
        assert_eq!(c.severity_of_class("a"), Severity::Critical);
        assert_eq!(c.severity_of_class("b"), DEFAULT_CLASS_SEVERITY);
        assert_eq!(c.severity_of_pii("EMAIL_ADDRESS"), Severity::Low);
        assert_eq!(c.severity_of_pii("CREDIT_CARD"), DEFAULT_PII_SEVERITY);
    }
}
