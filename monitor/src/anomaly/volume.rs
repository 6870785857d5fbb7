//! `access-volume`: sensitive accesses this hour far above the usual for
//! this role, or for this user, at this hour of a weekday or weekend (the
//! mean plus `sigmas` deviation bands, never below `min_count`). Quiet
//! while learning, and for a slot with fewer than three samples.

use super::baseline::{Local, Rhythm};
use super::{Detector, Hit, Seen};
use crate::model::{Explain, Record};

/// The detector.
pub struct Volume;

impl Volume {
    fn judge(
        &self,
        r: &Record,
        s: &Seen,
        rhythm: &Rhythm,
        who: String,
        role_wide: bool,
    ) -> Option<Hit> {
        let set = s.rules.detector(self.id());
        let slot = rhythm.usual()?;
        let now = rhythm.count + 1.0;
        let threshold = slot.threshold(set.sigmas);
        if now <= threshold || now < set.min_count as f64 {
            return None;
        }
        let mut ev = rhythm.evidence.clone();
        ev.add(r.seq, r.time_ns);
        let window = Local::slot_name(Local::slot(s.at.hour));
        Some(Hit {
            rule: self.id(),
            severity: set.severity,
            message: format!(
                "{who} made {now} sensitive accesses this hour, usually {:.1} at this hour ({window}; threshold {threshold:.1})",
                slot.mean
            ),
            object: r.class.as_deref().unwrap_or("").to_owned(),
            explain: Explain {
                baseline: Some(slot.mean),
                threshold: Some(threshold),
                role_wide,
                ..ev.explain(now, window)
            },
        })
    }
}

impl Detector for Volume {
    fn id(&self) -> &'static str {
        "access-volume"
    }

    fn check(&mut self, r: &Record, s: &Seen) -> Option<Hit> {
        let class = super::baseline::file_class(r)?;
        if !s.rules.is_sensitive(class) || s.role_learning(r.time_ns) {
            return None;
        }
        self.judge(r, s, &s.role.volume, format!("role {}", r.role), true)
            .or_else(|| {
                (!s.user_learning(r.time_ns))
                    .then(|| {
                        self.judge(
                            r,
                            s,
                            &s.user.volume,
                            format!("uid {} (role {})", r.uid, r.role),
                            false,
                        )
                    })
                    .flatten()
            })
    }
}
