//! `anomaly.toml`: how baselines are learned and what each anomaly
//! detector (`anomaly/`) alerts on: its severity and thresholds, and the
//! roles' working hours.

use std::collections::BTreeMap;

use jiff::tz::TimeZone;
use monitor_pii::RulesError;
use serde::Deserialize;
use toml::Spanned;

use super::parse_toml;
use crate::model::Severity;

/// The detectors' ids (their alerts' rule ids), in the order they run.
pub const DETECTORS: [&str; 11] = [
    "pii-cleartext",
    "denied-then-granted",
    "bulk-access",
    "off-hours-access",
    "first-class-access",
    "first-egress-destination",
    "new-executable",
    "pii-new-type",
    "pii-egress-rate",
    "access-volume",
    "peer-outlier",
];

const NS_PER_MIN: u64 = 60 * 1_000_000_000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    #[serde(default)]
    learning: RawLearning,
    #[serde(default)]
    detector: BTreeMap<Spanned<String>, RawDetector>,
    #[serde(default)]
    schedule: Vec<RawSchedule>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLearning {
    learn_days: Option<f64>,
    forget_days: Option<f64>,
    group_minutes: Option<u64>,
    timezone: Option<Spanned<String>>,
    #[serde(default)]
    sensitive: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDetector {
    enabled: Option<bool>,
    severity: Option<Spanned<String>>,
    sigmas: Option<f64>,
    min_count: Option<u64>,
    count: Option<u64>,
    window_minutes: Option<u64>,
    min_peers: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSchedule {
    role: String,
    timezone: Spanned<String>,
    days: Spanned<Vec<String>>,
    hours: Spanned<String>,
}

/// One detector's settings.
#[derive(Debug, Clone)]
pub struct DetectorSettings {
    /// Whether it runs.
    pub enabled: bool,
    /// Its alerts' severity.
    pub severity: Severity,
    /// Deviation bands above the usual that count as far above.
    pub sigmas: f64,
    /// Never alert below this many.
    pub min_count: u64,
    /// How many in the window (bulk access, denials).
    pub count: u64,
    /// The window, in nanoseconds.
    pub window_ns: u64,
    /// Compare with at least this many peers.
    pub min_peers: usize,
}

impl DetectorSettings {
    /// The defaults of detector `id`.
    fn default_for(id: &str) -> Self {
        let mut d = DetectorSettings {
            enabled: true,
            severity: Severity::Medium,
            sigmas: 6.0,
            min_count: 20,
            count: 50,
            window_ns: 10 * NS_PER_MIN,
            min_peers: 3,
        };
        match id {
            "pii-cleartext" => d.severity = Severity::Critical,
            "bulk-access" | "access-volume" | "new-executable" | "pii-new-type" => {
                d.severity = Severity::High
            }
            "pii-egress-rate" => {
                d.severity = Severity::High;
                d.min_count = 10;
            }
            "denied-then-granted" => {
                d.severity = Severity::High;
                d.count = 5;
                d.window_ns = 5 * NS_PER_MIN;
            }
            _ => {}
        }
        d
    }
}

/// A role's working hours in its own zone.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// The zone.
    pub tz: TimeZone,
    /// Working days, Monday = 0.
    pub days: [bool; 7],
    /// Working minutes of the day: from (inclusive), to (exclusive).
    pub minutes: (u16, u16),
}

impl Schedule {
    /// Whether `time_ns` (Unix nanoseconds) falls in working hours.
    pub fn working(&self, time_ns: u64) -> bool {
        let Ok(ts) = jiff::Timestamp::from_nanosecond(time_ns as i128) else {
            return true;
        };
        let local = ts.to_zoned(self.tz.clone());
        let day = local.weekday().to_monday_zero_offset() as usize;
        let minute = local.hour() as u16 * 60 + local.minute() as u16;
        self.days[day] && minute >= self.minutes.0 && minute < self.minutes.1
    }
}

/// The validated `anomaly.toml`.
#[derive(Debug, Clone)]
pub struct AnomalyRules {
    /// How long a new role, user or executable learns, in nanoseconds.
    pub learn_ns: u64,
    /// What was not seen for this long counts as never seen.
    pub forget_ns: u64,
    /// Hits this close to the last on the same subject are one incident.
    pub group_ns: u64,
    /// The zone whose hours and weekdays the baselines follow.
    pub tz: TimeZone,
    /// The classes that count as sensitive (empty: all).
    pub sensitive: Vec<String>,
    /// Each detector's settings, by id.
    pub detectors: BTreeMap<&'static str, DetectorSettings>,
    /// Working hours, by role.
    pub schedules: BTreeMap<String, Schedule>,
}

impl Default for AnomalyRules {
    fn default() -> Self {
        Self::parse("", "anomaly.toml").expect("empty settings are valid")
    }
}

impl AnomalyRules {
    /// Parses and checks `anomaly.toml`.
    pub fn parse(src: &str, file: &str) -> Result<Self, RulesError> {
        let raw: Raw = parse_toml(src, file)?;
        let at = |span: std::ops::Range<usize>, m: String| RulesError::at(src, file, span.start, m);
        let zone = |name: &Spanned<String>| {
            TimeZone::get(name.get_ref()).map_err(|e| {
                at(
                    name.span(),
                    format!("unknown time zone `{}`: {e}", name.get_ref()),
                )
            })
        };
        let days = |d: f64, what: &str| -> Result<u64, RulesError> {
            if !(0.0..=3650.0).contains(&d) {
                return Err(RulesError::at(
                    src,
                    file,
                    0,
                    format!("{what} must be 0 to 3650 days"),
                ));
            }
            Ok((d * 86_400e9) as u64)
        };
        let l = raw.learning;
        let tz = match &l.timezone {
            Some(n) => zone(n)?,
            None => TimeZone::system(),
        };
        let mut detectors: BTreeMap<&'static str, DetectorSettings> = DETECTORS
            .iter()
            .map(|id| (*id, DetectorSettings::default_for(id)))
            .collect();
        for (id, d) in raw.detector {
            let Some(s) = detectors.get_mut(id.get_ref().as_str()) else {
                return Err(at(
                    id.span(),
                    format!(
                        "unknown detector `{}` ({})",
                        id.get_ref(),
                        DETECTORS.join(", ")
                    ),
                ));
            };
            if let Some(v) = d.enabled {
                s.enabled = v;
            }
            if let Some(v) = &d.severity {
                s.severity = v.get_ref().parse().map_err(|m| at(v.span(), m))?;
            }
            if let Some(v) = d.sigmas {
                if !(v > 0.0 && v.is_finite()) {
                    return Err(at(
                        id.span(),
                        format!("{}: sigmas must be above 0", id.get_ref()),
                    ));
                }
                s.sigmas = v;
            }
            if let Some(v) = d.min_count {
                s.min_count = v;
            }
            if let Some(v) = d.count {
                s.count = v.max(1);
            }
            if let Some(v) = d.window_minutes {
                s.window_ns = v.max(1) * NS_PER_MIN;
            }
            if let Some(v) = d.min_peers {
                s.min_peers = v.max(1);
            }
        }
        let mut schedules = BTreeMap::new();
        for s in raw.schedule {
            let mut days = [false; 7];
            for d in s.days.get_ref() {
                const NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
                let Some(i) = NAMES.iter().position(|n| n.eq_ignore_ascii_case(d)) else {
                    return Err(at(
                        s.days.span(),
                        format!("unknown day `{d}` (mon ... sun)"),
                    ));
                };
                days[i] = true;
            }
            let minutes = parse_hours(s.hours.get_ref()).ok_or_else(|| {
                at(
                    s.hours.span(),
                    format!("bad hours `{}` (HH:MM-HH:MM)", s.hours.get_ref()),
                )
            })?;
            schedules.insert(
                s.role,
                Schedule {
                    tz: zone(&s.timezone)?,
                    days,
                    minutes,
                },
            );
        }
        Ok(AnomalyRules {
            learn_ns: days(l.learn_days.unwrap_or(7.0), "learn_days")?,
            forget_ns: days(l.forget_days.unwrap_or(30.0), "forget_days")?,
            group_ns: l.group_minutes.unwrap_or(60).max(1) * NS_PER_MIN,
            tz,
            sensitive: l.sensitive,
            detectors,
            schedules,
        })
    }

    /// Whether `class` counts as sensitive.
    pub fn is_sensitive(&self, class: &str) -> bool {
        self.sensitive.is_empty() || self.sensitive.iter().any(|c| c == class)
    }

    /// Detector `id`'s settings.
    pub fn detector(&self, id: &str) -> &DetectorSettings {
        &self.detectors[id]
    }
}

/// `"07:00-20:00"` as minutes of the day; `None` when malformed or empty.
fn parse_hours(s: &str) -> Option<(u16, u16)> {
    let (a, b) = s.split_once('-')?;
    let minute = |t: &str| -> Option<u16> {
        let (h, m) = t.trim().split_once(':')?;
        let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
        (h <= 24 && m < 60 && h * 60 + m <= 1440).then_some(h * 60 + m)
    };
    let (from, to) = (minute(a)?, minute(b)?);
    (from < to).then_some((from, to))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_file_parses_and_bad_settings_are_refused_with_a_position() {
        let shipped =
            AnomalyRules::parse(include_str!("../../../rules/anomaly.toml"), "anomaly.toml")
                .unwrap();
        assert_eq!(shipped.detector("bulk-access").count, 50);
        assert_eq!(shipped.learn_ns, 7 * 86_400_000_000_000);
        let s = AnomalyRules::parse(
            "[[schedule]]\nrole = \"billing\"\ntimezone = \"America/New_York\"\ndays = [\"mon\", \"fri\"]\nhours = \"08:00-18:00\"\n",
            "anomaly.toml",
        )
        .unwrap();
        let b = &s.schedules["billing"];
        // Friday 2026-12-04 12:00 in New York is 17:00 UTC; 23:00 there is 04:00 UTC Saturday.
        let ns = |t: &str| t.parse::<jiff::Timestamp>().unwrap().as_nanosecond() as u64;
        assert!(b.working(ns("2026-12-04T17:00:00Z")));
        assert!(!b.working(ns("2026-12-05T04:00:00Z")));
        assert!(!b.working(ns("2026-12-03T17:00:00Z")), "a Thursday");
        let cases = [
            ("[detector.nope]\nseverity = \"low\"\n", 1, 11, "unknown detector"),
            ("[detector.bulk-access]\nseverity = \"dire\"\n", 2, 12, "unknown severity"),
            ("[learning]\ntimezone = \"Mars/Olympus\"\n", 2, 12, "unknown time zone"),
            ("[[schedule]]\nrole = \"r\"\ntimezone = \"UTC\"\ndays = [\"mon\"]\nhours = \"9-5\"\n", 5, 9, "bad hours"),
            ("[[schedule]]\nrole = \"r\"\ntimezone = \"UTC\"\ndays = [\"monday\"]\nhours = \"09:00-17:00\"\n", 4, 8, "unknown day"),
            ("[learning]\nlearn_dayz = 3\n", 2, 1, "unknown field"),
        ];
        for (src, line, col, msg) in cases {
            let e = AnomalyRules::parse(src, "anomaly.toml").unwrap_err();
            assert_eq!((e.line, e.col), (line, col), "{src:?}: {e}");
            assert!(e.message.contains(msg), "{src:?}: {e}");
        }
    }
}
