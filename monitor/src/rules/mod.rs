//! The rules: one TOML file per concern, one module per file here
//! ([`roles`], [`classes`], [`policy`]; `pii.toml` is the detector's own),
//! each read by the stage it configures. The shipped defaults are embedded in the
//! binary; a file of the same name in the override directory
//! (`/etc/monitor/rules.d/`) replaces the default. Every error names file,
//! line and column; a rule set is only ever used whole and valid.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use monitor_pii::{PiiRules, RulesError};
use serde::de::DeserializeOwned;
use toml::Spanned;

pub mod anomaly;
pub mod classes;
pub mod policy;
pub mod responders;
pub mod roles;
pub mod sinks;

use anomaly::AnomalyRules;
use classes::ClassRules;
use policy::Policy;
use responders::ResponderRules;
use roles::RoleRules;
use sinks::SinkRules;

/// Where overrides are read from by default.
pub const DEFAULT_RULES_DIR: &str = "/etc/monitor/rules.d";

/// The rule files, with their shipped contents.
pub const SHIPPED: [(&str, &str); 7] = [
    ("roles.toml", include_str!("../../../rules/roles.toml")),
    ("classes.toml", include_str!("../../../rules/classes.toml")),
    ("policy.toml", include_str!("../../../rules/policy.toml")),
    ("pii.toml", monitor_pii::rules::DEFAULT_RULES),
    ("sinks.toml", include_str!("../../../rules/sinks.toml")),
    ("anomaly.toml", include_str!("../../../rules/anomaly.toml")),
    (
        "responders.toml",
        include_str!("../../../rules/responders.toml"),
    ),
];

/// The settings the record's followers read while running (anomaly
/// detectors, responders), replaced whole by a reload; each follower
/// takes the new ones before its next batch.
#[derive(Clone)]
pub struct Live {
    anomaly: Arc<std::sync::RwLock<Arc<AnomalyRules>>>,
    responders: Arc<std::sync::RwLock<Arc<ResponderRules>>>,
}

impl Live {
    /// The settings of `rules`.
    pub fn new(rules: &RuleSet) -> Self {
        Live {
            anomaly: Arc::new(std::sync::RwLock::new(rules.anomaly.clone())),
            responders: Arc::new(std::sync::RwLock::new(rules.responders.clone())),
        }
    }

    /// Replaces them with those of `rules` (a validated reload).
    pub fn publish(&self, rules: &RuleSet) {
        *self.anomaly.write().expect("live lock") = rules.anomaly.clone();
        *self.responders.write().expect("live lock") = rules.responders.clone();
    }

    /// The anomaly settings in force.
    pub fn anomaly(&self) -> Arc<AnomalyRules> {
        self.anomaly.read().expect("live lock").clone()
    }

    /// The responders in force.
    pub fn responders(&self) -> Arc<ResponderRules> {
        self.responders.read().expect("live lock").clone()
    }
}

/// Why a rule set was refused: every error found, each positioned.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// One or more rule files are invalid.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<RulesError>),
    /// The override directory could not be read.
    #[error("rules directory {path}: {source}")]
    Io {
        /// The path that failed.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// A complete, valid rule set.
#[derive(Clone)]
pub struct RuleSet {
    /// Role matchers.
    pub roles: Arc<RoleRules>,
    /// Data classes.
    pub classes: Arc<ClassRules>,
    /// Per-role policy.
    pub policy: Arc<Policy>,
    /// Detector settings.
    pub pii: PiiRules,
    /// Where records go after the store (read at start-up).
    pub sinks: Arc<SinkRules>,
    /// Baselines and anomaly detectors (read at start-up).
    pub anomaly: Arc<AnomalyRules>,
    /// Incident-response hooks (read at start-up).
    pub responders: Arc<ResponderRules>,
    /// Where each file came from (`rules/NAME` for the shipped one, or the override path).
    pub sources: Vec<(String, String)>,
    /// Each file's SHA-256 (hex), in the order of `sources`.
    pub digests: Vec<String>,
}

impl RuleSet {
    /// The shipped defaults.
    pub fn shipped() -> Self {
        Self::load(None).expect("shipped rules are valid")
    }

    /// The defaults, with any files in `dir` replacing them. A missing `dir`
    /// means no overrides; any other file in it is an error (a typo'd name
    /// must not be silently ignored).
    pub fn load(dir: Option<&Path>) -> Result<Self, LoadError> {
        let mut texts: Vec<(String, String, String)> = SHIPPED
            .iter()
            .map(|(name, src)| {
                (
                    (*name).to_owned(),
                    format!("rules/{name}"),
                    (*src).to_owned(),
                )
            })
            .collect();
        let mut errors = Vec::new();
        if let Some(dir) = dir {
            match std::fs::read_dir(dir) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(LoadError::Io {
                        path: dir.to_owned(),
                        source,
                    })
                }
                Ok(entries) => {
                    let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
                    paths.sort();
                    for path in paths {
                        let shown = path.display().to_string();
                        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
                        let Some(slot) = texts
                            .iter_mut()
                            .find(|(n, _, _)| Some(n.as_str()) == name.as_deref())
                        else {
                            let known: Vec<&str> = SHIPPED.iter().map(|(n, _)| *n).collect();
                            errors.push(RulesError::at(
                                "",
                                &shown,
                                0,
                                format!(
                                    "unknown rules file (expected one of: {})",
                                    known.join(", ")
                                ),
                            ));
                            continue;
                        };
                        match std::fs::read_to_string(&path) {
                            Ok(src) => *slot = (slot.0.clone(), shown, src),
                            Err(e) => errors.push(RulesError::at("", &shown, 0, e.to_string())),
                        }
                    }
                }
            }
        }
        let text = |name: &str| {
            let (_, file, src) = texts.iter().find(|(n, _, _)| n == name).expect("shipped");
            (file.as_str(), src.as_str())
        };
        let (file, src) = text("pii.toml");
        let pii = PiiRules::parse(src, file).map_err(|e| errors.push(e)).ok();
        let (file, src) = text("roles.toml");
        let roles = RoleRules::parse(src, file).map_err(|e| errors.push(e)).ok();
        let (file, src) = text("classes.toml");
        let classes = match &pii {
            Some(pii) => ClassRules::parse(src, file, pii)
                .map_err(|e| errors.push(e))
                .ok(),
            None => None,
        };
        let (file, src) = text("policy.toml");
        let policy = match (&roles, &classes, &pii) {
            (Some(r), Some(c), Some(p)) => Policy::parse(src, file, r, c, p)
                .map_err(|e| errors.push(e))
                .ok(),
            _ => None,
        };
        let (file, src) = text("sinks.toml");
        let sinks = SinkRules::parse(src, file).map_err(|e| errors.push(e)).ok();
        let (file, src) = text("anomaly.toml");
        let anomaly = AnomalyRules::parse(src, file)
            .map_err(|e| errors.push(e))
            .ok();
        let (file, src) = text("responders.toml");
        let responder_rules = match &pii {
            Some(p) => ResponderRules::parse(src, file, p)
                .map_err(|e| errors.push(e))
                .ok(),
            None => None,
        };
        match (roles, classes, policy, pii, sinks, anomaly, responder_rules) {
            (
                Some(roles),
                Some(classes),
                Some(policy),
                Some(pii),
                Some(sinks),
                Some(anomaly),
                Some(responder_rules),
            ) if errors.is_empty() => Ok(Self {
                roles: Arc::new(roles),
                classes: Arc::new(classes),
                policy: Arc::new(policy),
                pii,
                sinks: Arc::new(sinks),
                anomaly: Arc::new(anomaly),
                responders: Arc::new(responder_rules),
                digests: texts.iter().map(|(_, _, src)| sha256_hex(src)).collect(),
                sources: texts.into_iter().map(|(n, f, _)| (n, f)).collect(),
            }),
            _ => Err(LoadError::Invalid(errors)),
        }
    }
}

impl RuleSet {
    /// Which files are in force and what they held: `NAME=FROM@sha256:HEX`
    /// each (the first 16 hex digits), for the record.
    pub fn describe(&self) -> String {
        self.files_in_force().join(" ")
    }

    /// Each file in force as `NAME=FROM@sha256:HEX` (the first 16 hex digits).
    pub fn files_in_force(&self) -> Vec<String> {
        self.sources
            .iter()
            .zip(&self.digests)
            .map(|((name, from), d)| format!("{name}={from}@sha256:{}", &d[..16]))
            .collect()
    }
}

fn sha256_hex(src: &str) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, src.as_bytes());
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// Parses `src` as `T`, positioning any error.
pub fn parse_toml<T: DeserializeOwned>(src: &str, file: &str) -> Result<T, RulesError> {
    toml::from_str(src).map_err(|e| RulesError::from_toml(src, file, &e))
}

/// Compiles globs into one set (`*` stays within a path component, `**`
/// crosses them); `None` when the list is empty.
pub fn glob_set(
    src: &str,
    file: &str,
    globs: &[Spanned<String>],
) -> Result<Option<GlobSet>, RulesError> {
    if globs.is_empty() {
        return Ok(None);
    }
    let mut set = GlobSetBuilder::new();
    for g in globs {
        set.add(glob(src, file, g)?);
    }
    set.build()
        .map(Some)
        .map_err(|e| RulesError::at(src, file, globs[0].span().start, e.to_string()))
}

/// Compiles one glob.
pub fn glob(src: &str, file: &str, g: &Spanned<String>) -> Result<globset::Glob, RulesError> {
    GlobBuilder::new(g.get_ref())
        .literal_separator(true)
        .build()
        .map_err(|e| {
            RulesError::at(
                src,
                file,
                g.span().start,
                format!("bad glob `{}`: {}", g.get_ref(), e.kind()),
            )
        })
}
