//! `peer-outlier`: a user whose sensitive accesses today are far above
//! what the role's other users do on a day (the peers' median daily count
//! plus `sigmas` bands of their median absolute deviation). Needs at least
//! `min_peers` peers past learning with three active days each.

use super::baseline::{file_class, learning, READY};
use super::{Detector, Hit, Seen};
use crate::model::{Explain, Record};

/// The detector.
pub struct PeerOutlier;

/// The median of `v` (sorted in place); 0 when empty.
fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

impl Detector for PeerOutlier {
    fn id(&self) -> &'static str {
        "peer-outlier"
    }

    fn check(&mut self, r: &Record, s: &Seen) -> Option<Hit> {
        let class = file_class(r)?;
        let t = r.time_ns;
        if !s.rules.is_sensitive(class) || s.user_learning(t) {
            return None;
        }
        let set = s.rules.detector(self.id());
        let today = s.user.daily.count + 1.0;
        if today < set.min_count as f64 {
            return None;
        }
        let mut peers: Vec<f64> = s
            .role
            .users
            .iter()
            .filter(|(uid, u)| {
                **uid != r.uid && !learning(u.first_seen, t, s.rules) && u.daily.mean.n >= READY
            })
            .map(|(_, u)| u.daily.mean.mean)
            .collect();
        if peers.len() < set.min_peers {
            return None;
        }
        let n = peers.len();
        let med = median(&mut peers);
        let mut dev: Vec<f64> = peers.iter().map(|x| (x - med).abs()).collect();
        let mad = median(&mut dev) * 1.4826;
        let threshold = med + set.sigmas * mad.max(med.sqrt()).max(1.0);
        if today <= threshold {
            return None;
        }
        let mut ev = s.user.daily.evidence.clone();
        ev.add(r.seq, t);
        Some(Hit {
            rule: self.id(),
            severity: set.severity,
            message: format!(
                "uid {} made {today} sensitive accesses today; the {n} peers in role {} make {med:.1} a day (threshold {threshold:.1})",
                r.uid, r.role
            ),
            object: class.to_owned(),
            explain: Explain {
                baseline: Some(s.user.daily.mean.mean),
                threshold: Some(threshold),
                peers: Some(med),
                ..ev.explain(today, "today".into())
            },
        })
    }
}
