//! `pii-cleartext`: PII sent off the host on a plain socket, not through
//! TLS. Encryption in transit is the first thing asked of an AI vendor; any
//! such send alerts, learning or not.

use super::baseline::destination;
use super::{one_record, Detector, Hit, Seen};
use crate::model::{Action, Record};

/// The detector.
pub struct Cleartext;

impl Detector for Cleartext {
    fn id(&self) -> &'static str {
        "pii-cleartext"
    }

    fn check(&mut self, r: &Record, seen: &Seen) -> Option<Hit> {
        if r.action != Action::Send || r.findings.is_empty() || r.tls {
            return None;
        }
        let dest = destination(r)?;
        let mut types: Vec<&str> = r.findings.iter().map(|f| f.kind.as_str()).collect();
        types.sort_unstable();
        types.dedup();
        Some(Hit {
            rule: self.id(),
            severity: seen.rules.detector(self.id()).severity,
            message: format!(
                "{} PII value(s) ({}) sent in cleartext, without TLS, to {dest} by role {}",
                r.findings.len(),
                types.join(", "),
                r.role
            ),
            object: dest,
            explain: one_record(r, r.findings.len() as f64, "one send"),
        })
    }
}
