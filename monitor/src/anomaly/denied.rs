//! `denied-then-granted`: a burst of denied opens (EACCES, EPERM) on a data
//! class by one user, then a success on it: someone trying doors until one
//! opens. Rule-based: it fires while learning too.

use std::collections::{BTreeMap, VecDeque};

use super::baseline::Evidence;
use super::{Detector, Hit, Seen};
use crate::model::{Explain, Record};

/// Denials kept per user and class at most.
const KEPT: usize = 1024;

/// The detector, with the recent denials per user and class.
#[derive(Default)]
pub struct DeniedThenGranted {
    denials: BTreeMap<String, VecDeque<(u64, u64)>>,
}

impl Detector for DeniedThenGranted {
    fn id(&self) -> &'static str {
        "denied-then-granted"
    }

    fn check(&mut self, r: &Record, seen: &Seen) -> Option<Hit> {
        let class = r.class.as_deref()?;
        if !r.action.on_files() || !seen.rules.is_sensitive(class) {
            return None;
        }
        let s = seen.rules.detector(self.id());
        let key = format!("{}/{}/{class}", r.role, r.uid);
        let t = r.time_ns;
        match r.errno.as_deref() {
            Some("EACCES" | "EPERM") => {
                let q = self.denials.entry(key).or_default();
                q.push_back((t, r.seq));
                if q.len() > KEPT {
                    q.pop_front();
                }
                None
            }
            Some(_) => None,
            None => {
                let q = self.denials.remove(&key)?;
                let recent: Vec<_> = q
                    .into_iter()
                    .filter(|(at, _)| t.saturating_sub(*at) <= s.window_ns)
                    .collect();
                if (recent.len() as u64) < s.count {
                    return None;
                }
                let mut ev = Evidence::default();
                for (at, seq) in &recent {
                    ev.add(*seq, *at);
                }
                ev.add(r.seq, t);
                Some(Hit {
                    rule: self.id(),
                    severity: s.severity,
                    message: format!(
                        "{} denied opens of {class} data by uid {} (role {}) within {} min, then one succeeded",
                        recent.len(),
                        r.uid,
                        r.role,
                        s.window_ns / 60_000_000_000
                    ),
                    object: r.object.clone(),
                    explain: Explain {
                        threshold: Some(s.count as f64),
                        ..ev.explain(
                            recent.len() as f64,
                            format!("{}m", s.window_ns / 60_000_000_000),
                        )
                    },
                })
            }
        }
    }

    fn save(&self) -> serde_json::Value {
        serde_json::to_value(&self.denials).unwrap_or_default()
    }

    fn restore(&mut self, state: serde_json::Value) {
        self.denials = serde_json::from_value(state).unwrap_or_default();
    }
}
