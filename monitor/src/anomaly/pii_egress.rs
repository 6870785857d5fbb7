//! PII egress against the role's habits: `pii-new-type`, a PII type the
//! role never sent; `pii-egress-rate`, PII findings sent this hour far
//! above the role's usual for this hour. Quiet while the role is learning.

use super::baseline::seen;
use super::{one_record, Detector, Hit, Seen};
use crate::model::{Action, Explain, Record};

/// `pii-new-type`.
pub struct NewPiiType;

impl Detector for NewPiiType {
    fn id(&self) -> &'static str {
        "pii-new-type"
    }

    fn check(&mut self, r: &Record, s: &Seen) -> Option<Hit> {
        if r.action != Action::Send || r.findings.is_empty() || s.role_learning(r.time_ns) {
            return None;
        }
        let mut new: Vec<&str> = r
            .findings
            .iter()
            .map(|f| f.kind.as_str())
            .filter(|k| !seen(&s.role.pii_types, k, r.time_ns, s.rules.forget_ns))
            .collect();
        new.sort_unstable();
        new.dedup();
        if new.is_empty() {
            return None;
        }
        let mut explain = one_record(r, new.len() as f64, "role, ever");
        explain.baseline = Some(0.0);
        Some(Hit {
            rule: self.id(),
            severity: s.rules.detector(self.id()).severity,
            message: format!(
                "role {} sent PII of a type it never sent: {} (uid {}, to {})",
                r.role,
                new.join(", "),
                r.uid,
                r.dest_host.as_deref().unwrap_or(&r.object)
            ),
            object: new.join(","),
            explain,
        })
    }
}

/// `pii-egress-rate`.
pub struct PiiRate;

impl Detector for PiiRate {
    fn id(&self) -> &'static str {
        "pii-egress-rate"
    }

    fn check(&mut self, r: &Record, s: &Seen) -> Option<Hit> {
        if r.action != Action::Send || r.findings.is_empty() || s.role_learning(r.time_ns) {
            return None;
        }
        let set = s.rules.detector(self.id());
        let n = r.findings.len() as f64;
        let x = s
            .role
            .pii
            .surge(n, set.sigmas, set.min_count, r.seq, r.time_ns)?;
        Some(Hit {
            rule: self.id(),
            severity: set.severity,
            message: format!(
                "role {} sent {} PII values this hour, usually {:.1} at this hour (threshold {:.1})",
                r.role, x.now, x.usual, x.threshold
            ),
            object: r.role.to_string(),
            explain: Explain {
                baseline: Some(x.usual),
                threshold: Some(x.threshold),
                role_wide: true,
                ..x.evidence.explain(x.now, x.window.clone())
            },
        })
    }
}
