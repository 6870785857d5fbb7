//! One incident, one alert: a hit joins an open incident of the same role
//! and user when it comes within `group_minutes` of the incident's last
//! hit, or when its own evidence reaches back into the incident (a daily
//! count pushed over by the morning's bulk read). A role-wide hit (the
//! role's volume) joins any open incident of the role, and a user's hit
//! joins the role's open role-wide one. The first hit opens the incident
//! and is alerted; the rest are counted into it (which detectors agreed,
//! how many hits, first and last), for at most a day.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Hit;
use crate::model::Explain;

/// The longest an incident stays open.
pub const MAX_INCIDENT_NS: u64 = 24 * super::baseline::HOUR_NS;

/// An open incident.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Incident {
    /// The rule that opened it.
    pub rule: String,
    /// When it opened (ns).
    pub opened: u64,
    /// The last hit (ns).
    pub last: u64,
    /// Hits counted into it, the first included.
    pub hits: u64,
    /// The detectors that hit.
    pub detectors: Vec<String>,
}

/// Open incidents by role and uid.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Incidents {
    /// By `role/uid`.
    pub open: BTreeMap<String, Incident>,
}

impl Incidents {
    /// Counts `hit` on `role`/`uid` at `t` (its evidence reaching back to
    /// `since`): the explanation to alert with when it opens an incident,
    /// `None` when it joins an open one.
    pub fn hit(
        &mut self,
        role: &str,
        uid: u32,
        hit: &Hit,
        t: u64,
        since: u64,
        group_ns: u64,
    ) -> Option<Explain> {
        let prefix = format!("{role}/");
        let mine = format!("{role}/{uid}");
        let wide = format!("{role}/*");
        let live = |i: &Incident| {
            t.saturating_sub(i.opened) < MAX_INCIDENT_NS
                && (t.saturating_sub(i.last) < group_ns || since <= i.last)
        };
        let found = self
            .open
            .iter_mut()
            .filter(|(k, _)| {
                if hit.explain.role_wide {
                    k.starts_with(&prefix)
                } else {
                    **k == mine || **k == wide
                }
            })
            .map(|(_, i)| i)
            .find(|i| live(i));
        if let Some(i) = found {
            i.last = i.last.max(t);
            i.hits += 1;
            if !i.detectors.iter().any(|d| d == hit.rule) {
                i.detectors.push(hit.rule.to_owned());
            }
            return None;
        }
        let key = if hit.explain.role_wide { wide } else { mine };
        self.open.insert(
            key,
            Incident {
                rule: hit.rule.to_owned(),
                opened: t,
                last: t,
                hits: 1,
                detectors: vec![hit.rule.to_owned()],
            },
        );
        let mut explain = hit.explain.clone();
        explain.detectors = vec![hit.rule.to_owned()];
        Some(explain)
    }

    /// Forgets incidents too old to be joined.
    pub fn close_before(&mut self, now: u64) {
        self.open
            .retain(|_, i| now.saturating_sub(i.last) < MAX_INCIDENT_NS);
    }
}
