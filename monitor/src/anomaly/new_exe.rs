//! `new-executable`: an executable touching a sensitive class it never
//! touched in this role (a new tool, or a renamed copy, reaching for
//! cardholder data). Quiet while the role is learning.

use super::baseline::{file_class, seen};
use super::{one_record, Detector, Hit, Seen};
use crate::model::Record;

/// The detector.
pub struct NewExecutable;

impl Detector for NewExecutable {
    fn id(&self) -> &'static str {
        "new-executable"
    }

    fn check(&mut self, r: &Record, s: &Seen) -> Option<Hit> {
        let class = file_class(r)?;
        let exe = r.exe.as_deref()?;
        let t = r.time_ns;
        if !s.rules.is_sensitive(class) || s.role_learning(t) {
            return None;
        }
        if s.role
            .exes
            .get(exe)
            .is_some_and(|e| seen(&e.classes, class, t, s.rules.forget_ns))
        {
            return None;
        }
        let known = s
            .role
            .exes
            .values()
            .filter(|e| seen(&e.classes, class, t, s.rules.forget_ns))
            .count();
        let mut explain = one_record(r, 1.0, "role, ever");
        explain.baseline = Some(known as f64);
        Some(Hit {
            rule: self.id(),
            severity: s.rules.detector(self.id()).severity,
            message: format!(
                "{exe} touched {class} data for the first time in role {} (uid {}; {known} executables usually do)",
                r.role, r.uid
            ),
            object: exe.to_owned(),
            explain,
        })
    }
}
