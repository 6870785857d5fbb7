//! `off-hours-access`: a sensitive class accessed outside the role's
//! working hours (`[[schedule]]`, in the role's own time zone). Roles
//! without a schedule are never off hours.

use super::baseline::file_class;
use super::{one_record, Detector, Hit, Seen};
use crate::model::Record;

/// The detector.
pub struct OffHours;

impl Detector for OffHours {
    fn id(&self) -> &'static str {
        "off-hours-access"
    }

    fn check(&mut self, r: &Record, seen: &Seen) -> Option<Hit> {
        let class = file_class(r)?;
        let schedule = seen.rules.schedules.get(&*r.role)?;
        if !seen.rules.is_sensitive(class) || schedule.working(r.time_ns) {
            return None;
        }
        let (from, to) = schedule.minutes;
        let hours = format!(
            "{:02}:{:02}-{:02}:{:02} {}",
            from / 60,
            from % 60,
            to / 60,
            to % 60,
            schedule.tz.iana_name().unwrap_or("local")
        );
        Some(Hit {
            rule: self.id(),
            severity: seen.rules.detector(self.id()).severity,
            message: format!(
                "{class} data accessed by uid {} (role {}) outside the role's hours ({hours})",
                r.uid, r.role
            ),
            object: r.object.clone(),
            explain: one_record(r, 1.0, &format!("working hours {hours}")),
        })
    }
}
