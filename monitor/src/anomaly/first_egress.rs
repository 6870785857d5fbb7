//! `first-egress-destination`: a destination (the name from TLS SNI or
//! HTTP Host with the port, else the address and port) the role never
//! connected or sent to. Quiet while the role is learning.

use super::baseline::{destination, seen};
use super::{one_record, Detector, Hit, Seen};
use crate::model::Record;

/// The detector.
pub struct FirstEgress;

impl Detector for FirstEgress {
    fn id(&self) -> &'static str {
        "first-egress-destination"
    }

    fn check(&mut self, r: &Record, s: &Seen) -> Option<Hit> {
        let dest = destination(r)?;
        let t = r.time_ns;
        if s.role_learning(t) || seen(&s.role.dests, &dest, t, s.rules.forget_ns) {
            return None;
        }
        let mut explain = one_record(r, 1.0, "role, ever");
        explain.baseline = Some(0.0);
        Some(Hit {
            rule: self.id(),
            severity: s.rules.detector(self.id()).severity,
            message: format!(
                "role {} reached {dest} for the first time ({} of {} known destinations; uid {})",
                r.role,
                r.action.name(),
                s.role.dests.len(),
                r.uid
            ),
            object: dest,
            explain,
        })
    }
}
