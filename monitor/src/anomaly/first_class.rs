//! `first-class-access`: a data class the role never accessed (within
//! `forget_days`), or one the user never accessed that few of the user's
//! peers in the role do (under a fifth). Quiet while the role (or the
//! user) is learning.

use super::baseline::{file_class, learning, seen};
use super::{one_record, Detector, Hit, Seen};
use crate::model::Record;

/// The detector.
pub struct FirstClass;

impl Detector for FirstClass {
    fn id(&self) -> &'static str {
        "first-class-access"
    }

    fn check(&mut self, r: &Record, s: &Seen) -> Option<Hit> {
        let class = file_class(r)?;
        let t = r.time_ns;
        let forget = s.rules.forget_ns;
        let severity = s.rules.detector(self.id()).severity;
        if s.role_learning(t) {
            return None;
        }
        if !seen(&s.role.classes, class, t, forget) {
            let mut explain = one_record(r, 1.0, "role, ever");
            explain.baseline = Some(0.0);
            explain.role_wide = true;
            return Some(Hit {
                rule: self.id(),
                severity,
                message: format!(
                    "role {} accessed {class} data for the first time (uid {}, {})",
                    r.role,
                    r.uid,
                    r.action.name()
                ),
                object: class.to_owned(),
                explain,
            });
        }
        if s.user_learning(t) || seen(&s.user.classes, class, t, forget) {
            return None;
        }
        let peers: Vec<_> = s
            .role
            .users
            .iter()
            .filter(|(uid, u)| **uid != r.uid && !learning(u.first_seen, t, s.rules))
            .collect();
        let readers = peers
            .iter()
            .filter(|(_, u)| seen(&u.classes, class, t, forget))
            .count();
        if !peers.is_empty() && readers * 5 >= peers.len() {
            return None;
        }
        let mut explain = one_record(r, 1.0, "user, ever");
        explain.baseline = Some(0.0);
        explain.peers = Some(readers as f64);
        Some(Hit {
            rule: self.id(),
            severity,
            message: format!(
                "uid {} (role {}) accessed {class} data for the first time; {readers} of {} peers ever do",
                r.uid,
                r.role,
                peers.len()
            ),
            object: class.to_owned(),
            explain,
        })
    }
}
