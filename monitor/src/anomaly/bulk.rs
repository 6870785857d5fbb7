//! `bulk-access`: many distinct records of a sensitive class read by one
//! user in a short window (default 50 in 10 minutes). Rule-based: it fires
//! while learning too.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use super::baseline::{file_class, Evidence};
use super::{Detector, Hit, Seen};
use crate::model::{Explain, Record};

/// One user's recent distinct objects of one class.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Window {
    /// (time, seq, object), the first access of each object in the window.
    items: VecDeque<(u64, u64, String)>,
}

/// The detector, with a window per role, user and class.
#[derive(Default)]
pub struct Bulk {
    windows: BTreeMap<String, Window>,
}

impl Detector for Bulk {
    fn id(&self) -> &'static str {
        "bulk-access"
    }

    fn check(&mut self, r: &Record, seen: &Seen) -> Option<Hit> {
        let class = file_class(r)?;
        if !seen.rules.is_sensitive(class) {
            return None;
        }
        let s = seen.rules.detector(self.id());
        let t = r.time_ns;
        let w = self
            .windows
            .entry(format!("{}/{}/{class}", r.role, r.uid))
            .or_default();
        while w
            .items
            .front()
            .is_some_and(|(at, _, _)| t.saturating_sub(*at) > s.window_ns)
        {
            w.items.pop_front();
        }
        if !w.items.iter().any(|(_, _, o)| *o == r.object) {
            w.items.push_back((t, r.seq, r.object.clone()));
            // Past the threshold the incident is open: keep the newest only.
            if w.items.len() as u64 > s.count.saturating_mul(4) {
                w.items.pop_front();
            }
        }
        let n = w.items.len() as u64;
        if n < s.count {
            return None;
        }
        let mut ev = Evidence::default();
        for (at, seq, _) in &w.items {
            ev.add(*seq, *at);
        }
        let minutes = s.window_ns / 60_000_000_000;
        Some(Hit {
            rule: self.id(),
            severity: s.severity,
            message: format!(
                "bulk access: {n} distinct {class} records read by uid {} (role {}) within {minutes} min (threshold {})",
                r.uid, r.role, s.count
            ),
            object: class.to_owned(),
            explain: Explain {
                threshold: Some(s.count as f64),
                count: n,
                ..ev.explain(n as f64, format!("{minutes}m"))
            },
        })
    }

    fn save(&self) -> serde_json::Value {
        serde_json::to_value(&self.windows).unwrap_or_default()
    }

    fn restore(&mut self, state: serde_json::Value) {
        self.windows = serde_json::from_value(state).unwrap_or_default();
    }
}
