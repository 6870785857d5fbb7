//! `access-volume`: sensitive accesses this hour far above the usual for
//! this role, or for this user, at this hour of a weekday or weekend (the
//! mean plus `sigmas` deviation bands, never below `min_count`). Quiet
//! while learning, and for a slot with fewer than three samples.

use super::baseline::Rhythm;
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
        // A record of repeats adds every access it stands for.
        let x = rhythm.surge(
            r.count() as f64,
            set.sigmas,
            set.min_count,
            r.seq,
            r.time_ns,
        )?;
        Some(Hit {
            rule: self.id(),
            severity: set.severity,
            message: format!(
                "{who} made {} sensitive accesses this hour, usually {:.1} at this hour ({}; threshold {:.1})",
                x.now, x.usual, x.window, x.threshold
            ),
            object: r.class.as_deref().unwrap_or("").to_owned(),
            explain: Explain {
                baseline: Some(x.usual),
                threshold: Some(x.threshold),
                role_wide,
                ..x.evidence.explain(x.now, x.window.clone())
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
