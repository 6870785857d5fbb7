//! Names as they may be stored: paths, host names, executables and query
//! texts pass through the PII detector, and every value it finds is replaced
//! by its mask, also a value inside a word (`cust_4539…1884.csv`), which
//! the detector, reading prose, would pass over as part of an identifier.
//! The fingerprints are kept so that `trace-pii` still finds the record.

use monitor_pii::{Detector, Finding};

use crate::event::{Detail, Event, PiiFinding};
use crate::model::{Action, Record};

/// Digits in a run (with single spaces or dashes between them) at which a
/// run inside a word is scanned on its own: the shortest SSN, ITIN or
/// routing number.
const MIN_RUN_DIGITS: usize = 9;

/// `s` with every sensitive value masked, and the findings (offsets into `s`).
pub fn redact(detector: &Detector, s: &str) -> (String, Vec<Finding>) {
    let bytes = s.as_bytes();
    let mut findings = detector.scan(bytes);
    for (start, end) in digit_runs(bytes) {
        if findings.iter().any(|f| f.start < end && start < f.end) {
            continue;
        }
        findings.extend(detector.scan(&bytes[start..end]).into_iter().map(|mut f| {
            f.start += start;
            f.end += start;
            f
        }));
    }
    if findings.is_empty() {
        return (s.to_owned(), findings);
    }
    findings.sort_by_key(|f| f.start);
    let mut out = String::with_capacity(s.len());
    let mut at = 0;
    findings.retain(|f| {
        let fits = f.start >= at && s.is_char_boundary(f.start) && s.is_char_boundary(f.end);
        if fits {
            out.push_str(&s[at..f.start]);
            out.push_str(&f.masked);
            at = f.end;
        }
        fits
    });
    out.push_str(&s[at..]);
    (out, findings)
}

/// Runs of digits joined by single spaces or dashes, with at least
/// [`MIN_RUN_DIGITS`] digits, that touch a letter or `_` (inside a word).
fn digit_runs(b: &[u8]) -> Vec<(usize, usize)> {
    let mut runs = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if !b[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let start = i;
        let mut digits = 0;
        let mut end = i;
        while i < b.len() {
            if b[i].is_ascii_digit() {
                digits += 1;
                i += 1;
                end = i;
            } else if matches!(b[i], b' ' | b'-') && b.get(i + 1).is_some_and(u8::is_ascii_digit) {
                i += 1;
            } else {
                break;
            }
        }
        let word = |c: Option<&u8>| c.is_some_and(|c| c.is_ascii_alphabetic() || *c == b'_');
        let inside = word(start.checked_sub(1).and_then(|p| b.get(p))) || word(b.get(end));
        if digits >= MIN_RUN_DIGITS && inside {
            runs.push((start, end));
        }
    }
    runs
}

/// Masks `s` in place; the findings, tagged with `field`, are appended to `out`.
fn redact_field(detector: &Detector, s: &mut String, field: &str, out: &mut Vec<PiiFinding>) {
    let (text, found) = redact(detector, s);
    if found.is_empty() {
        return;
    }
    *s = text;
    out.extend(found.into_iter().map(|f| PiiFinding {
        field: Some(field.to_owned()),
        ..PiiFinding::from(f)
    }));
}

/// Masks the names a record holds (a path or query, destination name, executable);
/// what was found joins the record's findings, tagged with its field.
pub fn redact_record(detector: &Detector, rec: &mut Record) {
    let mut found = Vec::new();
    // A network object is the other end's `address:port`: the record says
    // where data went, so it stays (its name, `dest_host`, is masked).
    let network = matches!(
        rec.action,
        Action::Connect | Action::Accept | Action::Send | Action::Receive
    );
    if !network {
        redact_field(detector, &mut rec.object, "object", &mut found);
    }
    // A transfer's `dest_host` is the socket's `address:port`, kept likewise.
    if let Some(h) = rec
        .dest_host
        .as_mut()
        .filter(|_| rec.action != Action::Transfer)
    {
        redact_field(detector, h, "dest_host", &mut found);
    }
    if let Some(exe) = &rec.exe {
        let mut e = exe.to_string();
        redact_field(detector, &mut e, "exe", &mut found);
        rec.exe = Some(e.into());
    }
    // The ancestry was masked as it entered the process table (once per
    // process, not once per record).
    if let Some(line) = rec.context.as_mut().and_then(|c| c.cmdline.as_mut()) {
        redact_field(detector, line, "cmdline", &mut found);
    }
    rec.findings.extend(found);
}

/// Masks the names an event carries to the event sinks (paths, destination names).
pub fn redact_event(detector: &Detector, event: &mut Event) {
    let mut sink = Vec::new();
    match &mut event.detail {
        Detail::File(f) => {
            redact_field(detector, &mut f.path, "path", &mut sink);
            if let Some(p) = &mut f.new_path {
                redact_field(detector, p, "new_path", &mut sink);
            }
        }
        Detail::Payload(p) => {
            if let Some(h) = &mut p.dest_host {
                redact_field(detector, h, "dest_host", &mut sink);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detector() -> Detector {
        Detector::new(
            monitor_pii::PiiRules::defaults(),
            monitor_pii::FingerprintKey::from_bytes(&[7; 32]),
        )
    }

    #[test]
    fn values_inside_words_and_host_names_are_masked() {
        let d = detector();
        // Issue: a card in a file name and in an SNI were stored raw.
        let (p, f) = redact(&d, "/srv/cardholder/cust_4539147051321884.csv");
        assert_eq!(p, "/srv/cardholder/cust_453914******1884.csv");
        assert_eq!(f.len(), 1);
        let (h, _) = redact(&d, "4539147051321884.example.org");
        assert!(!h.contains("4539147051321884"), "{h}");
        let (s, _) = redact(&d, "/home/a/ssn_123-45-6789_form.pdf");
        assert!(!s.contains("123-45-6789"), "{s}");
        assert_eq!(
            redact(&d, "/srv/crm/profile.json").0,
            "/srv/crm/profile.json"
        );
        // Build numbers and inode-like names stay (no checksum, no shape).
        assert_eq!(
            redact(&d, "/var/cache/v20261204_1234").0,
            "/var/cache/v20261204_1234"
        );
    }

    #[test]
    fn a_record_keeps_only_masks_and_the_fingerprint_for_tracing() {
        let d = detector();
        let mut rec: Record = serde_json::from_value(serde_json::json!({
            "seq": 0, "time": "", "time_ns": 0, "host": "h", "pid": 1, "comm": "cat",
            "uid": 0, "role": "r", "action": "read",
            "object": "/srv/x/cust_4539147051321884.csv",
            "dest_host": "4539147051321884.example.org", "outcome": "allowed"
        }))
        .unwrap();
        redact_record(&d, &mut rec);
        let json = serde_json::to_string(&rec).unwrap();
        assert!(!json.contains("4539147051321884"), "{json}");
        let fields: Vec<_> = rec.findings.iter().map(|f| f.field.as_deref()).collect();
        assert_eq!(fields, [Some("object"), Some("dest_host")]);
        assert_eq!(rec.findings[0].fingerprint, rec.findings[1].fingerprint);
        // Where data went stays readable.
        rec.action = Action::Send;
        rec.object = "127.0.0.1:443".into();
        redact_record(&d, &mut rec);
        assert_eq!(rec.object, "127.0.0.1:443");
    }
}
