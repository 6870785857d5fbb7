//! OCSF 1.7.0 (Open Cybersecurity Schema Framework) documents, one JSON
//! line each, in a size-rotated file a shipper tails (Amazon Security Lake,
//! Vector, Cribl and the SIEMs that read OCSF natively).
//!
//! Every record becomes its activity: File System Activity (1001) for file
//! actions, Network Activity (4001) for connections and payloads, Process
//! Activity (1007) for the daemon's own records. A record with an alert
//! also becomes a finding that follows its activity and names it as the
//! evidence (`finding_info.related_events` and `evidences`): a Data
//! Security Finding (2006) for PII egress, a Detection Finding (2004) for
//! the rest. What OCSF has no attribute for (role, data class, the masked
//! and fingerprinted PII, the record's sequence) is under `unmapped`.

use serde_json::{json, Map, Value};

use super::jsonl::JsonlFile;
use crate::model::{Action, Outcome, Record, Severity};
use crate::rules::sinks::FileSinkConfig;

/// The OCSF version the documents follow.
pub const VERSION: &str = "1.7.0";

/// OCSF's `severity_id` (1 informational for a record without an alert).
fn severity_id(s: Option<Severity>) -> u8 {
    match s {
        None => 1,
        Some(Severity::Low) => 2,
        Some(Severity::Medium) => 3,
        Some(Severity::High) => 4,
        Some(Severity::Critical) => 5,
    }
}

/// The activity class of `action`: (class_uid, category_uid, activity_id,
/// activity name, class name).
fn activity(action: Action) -> (u32, u32, u32, &'static str, &'static str) {
    const FILE: (u32, u32, &str) = (1001, 1, "File System Activity");
    const NET: (u32, u32, &str) = (4001, 4, "Network Activity");
    const PROC: (u32, u32, &str) = (1007, 1, "Process Activity");
    let ((class, category, class_name), id, name) = match action {
        Action::Read => (FILE, 2, "Read"),
        Action::Write => (FILE, 3, "Update"),
        Action::Delete => (FILE, 4, "Delete"),
        Action::Rename => (FILE, 5, "Rename"),
        Action::Connect | Action::Accept => (NET, 1, "Open"),
        Action::Send | Action::Receive => (NET, 6, "Traffic"),
        Action::Start => (PROC, 1, "Launch"),
        Action::Stop => (PROC, 2, "Terminate"),
        Action::Query
        | Action::QueryRefused
        | Action::Reload
        | Action::Retention
        | Action::Outage
        | Action::Heartbeat
        | Action::Anomaly
        | Action::Response => (PROC, 99, "Other"),
        // A file's bytes sent to a socket: the file is the object.
        Action::Transfer => (FILE, 99, "Other"),
    };
    (class, category, id, name, class_name)
}

/// The record's unique id across hosts.
fn uid(r: &Record) -> String {
    format!("{}:{}", r.host, r.seq)
}

/// The process that acted, as OCSF's `actor`.
fn actor(r: &Record) -> Value {
    let mut user = json!({"uid": r.uid.to_string()});
    if let Some(u) = &r.user {
        user["name"] = json!(&**u);
    }
    let mut process = json!({"pid": r.pid, "name": r.comm, "user": user.clone()});
    if let Some(exe) = &r.exe {
        process["path"] = json!(&**exe);
        let name = exe.rsplit('/').next().unwrap_or(exe);
        process["file"] = json!({"name": name, "path": &**exe, "type_id": 1});
    }
    json!({"process": process, "user": user})
}

/// The file a file action touched.
fn file(r: &Record) -> Value {
    let name = r.object.rsplit('/').next().unwrap_or(&r.object);
    json!({"name": name, "path": r.object, "type_id": 1})
}

/// The other end of a network action.
fn endpoint(r: &Record) -> Value {
    let mut ep = Map::new();
    if let Some((addr, port)) = r.object.rsplit_once(':') {
        ep.insert("ip".into(), json!(addr.trim_matches(['[', ']'])));
        if let Ok(p) = port.parse::<u16>() {
            ep.insert("port".into(), json!(p));
        }
    }
    if let Some(h) = &r.dest_host {
        ep.insert("hostname".into(), json!(h));
    }
    if ep.is_empty() {
        ep.insert("name".into(), json!(r.object));
    }
    Value::Object(ep)
}

/// What OCSF has no attribute for: the record itself, with the role, the
/// data class and the PII findings (masked and fingerprinted).
fn unmapped(r: &Record) -> Value {
    json!({"monitor": r})
}

/// The parts every document shares.
fn base(r: &Record, class: (u32, u32, u32, &str, &str), class_name_uid: &str) -> Value {
    let (class_uid, category_uid, activity_id, activity_name, class_name) = class;
    let category_name = match category_uid {
        1 => "System Activity",
        2 => "Findings",
        _ => "Network Activity",
    };
    json!({
        "class_uid": class_uid,
        "class_name": class_name,
        "category_uid": category_uid,
        "category_name": category_name,
        "activity_id": activity_id,
        "activity_name": activity_name,
        "type_uid": class_uid * 100 + activity_id,
        "type_name": format!("{class_name}: {activity_name}"),
        "time": r.time_ns / 1_000_000,
        "metadata": {
            "version": VERSION,
            "uid": class_name_uid,
            "sequence": r.seq,
            "log_name": "monitor.record",
            "profiles": ["host"],
            "product": {"name": "monitor", "vendor_name": "monitor", "version": env!("CARGO_PKG_VERSION")},
        },
        "device": {"hostname": &*r.host, "type_id": 0},
        "actor": actor(r),
        "unmapped": unmapped(r),
    })
}

/// The record's activity document (1001, 4001 or 1007).
pub fn activity_document(r: &Record) -> Value {
    let class = activity(r.action);
    let mut doc = base(r, class, &uid(r));
    let o = doc.as_object_mut().expect("an object");
    let severity = r.alert.as_ref().map(|a| a.severity);
    o.insert("severity_id".into(), json!(severity_id(severity)));
    let (status_id, status) = match r.outcome {
        Outcome::Allowed | Outcome::Violation => (1, "Success"),
        Outcome::Failed | Outcome::Refused => (2, "Failure"),
    };
    o.insert("status_id".into(), json!(status_id));
    o.insert("status".into(), json!(status));
    // A record of repeats: OCSF's own count, over its start and end times.
    if let Some(rep) = r.repeats {
        o.insert("count".into(), json!(rep.count));
        o.insert("start_time".into(), json!(r.time_ns / 1_000_000));
        o.insert("end_time".into(), json!(rep.last_ns / 1_000_000));
    }
    if let Some(e) = &r.errno {
        o.insert("status_detail".into(), json!(e));
    }
    o.insert(
        "message".into(),
        json!(format!("{} {}", r.action.name(), r.object)),
    );
    match class.0 {
        1001 => {
            o.insert("file".into(), file(r));
        }
        4001 => {
            o.insert("dst_endpoint".into(), endpoint(r));
            if let Some(b) = r.bytes {
                let key = if r.action == Action::Receive {
                    "bytes_in"
                } else {
                    "bytes_out"
                };
                o.insert("traffic".into(), json!({ key: b, "bytes": b }));
            }
        }
        _ => {
            o.insert("process".into(), actor(r)["process"].clone());
        }
    }
    doc
}

/// True when the record is PII leaving the host (a Data Security Finding).
fn is_pii_egress(r: &Record) -> bool {
    !r.findings.is_empty() && matches!(r.action, Action::Send | Action::Connect)
}

/// The finding for a record with an alert (2004, or 2006 for PII egress),
/// naming the record's activity as its evidence; `None` without an alert.
pub fn finding_document(r: &Record) -> Option<Value> {
    let alert = r.alert.as_ref()?;
    let pii = is_pii_egress(r);
    let class = if pii {
        (2006, 2, 1, "Create", "Data Security Finding")
    } else {
        (2004, 2, 1, "Create", "Detection Finding")
    };
    let evidence = activity(r.action);
    let mut doc = base(r, class, &format!("{}:finding", uid(r)));
    let o = doc.as_object_mut().expect("an object");
    o.insert(
        "severity_id".into(),
        json!(severity_id(Some(alert.severity))),
    );
    o.insert("is_alert".into(), json!(true));
    o.insert("status_id".into(), json!(1));
    o.insert("status".into(), json!("New"));
    o.insert("message".into(), json!(alert.message));
    o.insert(
        "finding_info".into(),
        json!({
            "uid": format!("{}:finding", uid(r)),
            "title": alert.rule,
            "desc": alert.message,
            "types": [alert.rule],
            "created_time": r.time_ns / 1_000_000,
            "analytic": {"uid": alert.rule, "name": alert.rule, "type_id": 1, "type": "Rule"},
            "related_events": [{
                "uid": uid(r),
                "type_uid": evidence.0 * 100 + evidence.2,
                "type": format!("{}: {}", evidence.4, evidence.3),
            }],
        }),
    );
    let mut ev = Map::new();
    ev.insert("actor".into(), actor(r));
    if r.action.on_files() {
        ev.insert("file".into(), file(r));
    } else if evidence.0 == 4001 {
        ev.insert("dst_endpoint".into(), endpoint(r));
    } else {
        ev.insert("process".into(), actor(r)["process"].clone());
    }
    if pii {
        o.insert("dst_endpoint".into(), endpoint(r));
        let types: Vec<&str> = r.findings.iter().map(|f| f.kind.as_str()).collect();
        let masked: Vec<&str> = r.findings.iter().map(|f| f.masked.as_str()).collect();
        o.insert(
            "data_security".into(),
            json!({
                "detection_system_id": 1,
                "detection_system": "Endpoint",
                "data_lifecycle_state_id": 2,
                "data_lifecycle_state": "Data in-Transit",
                "category_id": 1,
                "category": "Personal",
                "detection_pattern": types.join(","),
                "pattern_match": masked.join(","),
                "total": r.findings.len(),
            }),
        );
    } else {
        o.insert("evidences".into(), json!([Value::Object(ev)]));
    }
    Some(doc)
}

/// The record's OCSF lines: its activity, then its finding if it has an alert.
pub fn lines(r: &Record) -> String {
    let mut out = activity_document(r).to_string();
    if let Some(f) = finding_document(r) {
        out.push('\n');
        out.push_str(&f.to_string());
    }
    out
}

/// The OCSF file sink for `cfg`.
pub fn open(cfg: &FileSinkConfig) -> std::io::Result<JsonlFile> {
    let select = cfg.select.clone();
    JsonlFile::with(
        cfg.name.clone(),
        &cfg.path,
        Box::new(move |r| select.wants(r).then(|| lines(r))),
        Some((cfg.max_bytes, cfg.keep)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sinks::cef::tests::hostile_record;

    /// One record of every action, the hostile one among them, with and
    /// without alerts and PII.
    pub(crate) fn every_kind() -> Vec<Record> {
        let base = hostile_record();
        let mut out = Vec::new();
        for (i, action) in [
            Action::Read,
            Action::Write,
            Action::Delete,
            Action::Rename,
            Action::Connect,
            Action::Accept,
            Action::Send,
            Action::Receive,
            Action::Query,
            Action::QueryRefused,
            Action::Start,
            Action::Stop,
            Action::Reload,
            Action::Retention,
            Action::Outage,
            Action::Heartbeat,
        ]
        .into_iter()
        .enumerate()
        {
            let mut r = base.clone();
            r.seq = i as u64 + 1;
            r.action = action;
            if matches!(
                action,
                Action::Connect | Action::Accept | Action::Send | Action::Receive
            ) {
                r.object = "[2001:db8::7]:443".into();
                r.dest_host = Some("api.model.example".into());
                r.bytes = Some(512);
                r.class = None;
            }
            if i % 3 == 1 {
                r.alert = None;
                r.outcome = Outcome::Allowed;
            }
            if i % 5 == 2 {
                r.outcome = Outcome::Failed;
                r.errno = Some("EACCES".into());
            }
            out.push(r);
        }
        let mut pii = base.clone();
        pii.seq = 100;
        pii.action = Action::Send;
        pii.object = "203.0.113.7:443".into();
        pii.findings = serde_json::from_value(json!([{
            "type": "CREDIT_CARD", "start": 3, "end": 19, "score": 0.99,
            "masked": "4111********1111", "fingerprint": "ab".repeat(16)
        }]))
        .unwrap();
        out.push(pii);
        out
    }

    #[test]
    fn an_alert_is_its_activity_then_a_finding_naming_it() {
        let r = hostile_record();
        let text = lines(&r);
        let docs: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0]["class_uid"], 1001);
        assert_eq!(docs[0]["type_uid"], 100102);
        assert_eq!(docs[0]["file"]["path"], r.object.as_str());
        assert_eq!(docs[1]["class_uid"], 2004);
        assert_eq!(docs[1]["severity_id"], 4);
        assert_eq!(docs[1]["finding_info"]["analytic"]["uid"], "class-read");
        assert_eq!(
            docs[1]["finding_info"]["related_events"][0]["uid"],
            docs[0]["metadata"]["uid"]
        );
        assert_eq!(docs[1]["evidences"][0]["file"]["path"], r.object.as_str());
        assert_eq!(docs[1]["unmapped"]["monitor"]["role"], "chatbot");
    }

    #[test]
    fn pii_egress_is_a_data_security_finding_with_masked_values_only() {
        let r = every_kind().pop().unwrap();
        let f = finding_document(&r).unwrap();
        assert_eq!(f["class_uid"], 2006);
        assert_eq!(f["data_security"]["detection_pattern"], "CREDIT_CARD");
        assert_eq!(f["data_security"]["pattern_match"], "4111********1111");
        assert_eq!(f["dst_endpoint"]["ip"], "203.0.113.7");
        assert!(!f.to_string().contains("4111111111111111"));
    }

    /// Every document validates against the published OCSF 1.7.0 schema
    /// (the `ocsf-json-schema` package's export, checked by `jsonschema`,
    /// both from PyPI; `.ci/run` installs them).
    #[test]
    fn every_document_validates_against_the_ocsf_schema() {
        let docs: String = every_kind().iter().map(|r| lines(r) + "\n").collect();
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/ocsf_validate.py");
        let run = std::process::Command::new("python3")
            .arg(script)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn();
        let mut child = run.expect("python3 runs");
        use std::io::Write as _;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(docs.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.code() == Some(3) && std::env::var_os("CI").is_none() {
            eprintln!("skipped: {stderr}");
            return;
        }
        assert!(
            out.status.success(),
            "{}{stderr}",
            String::from_utf8_lossy(&out.stdout)
        );
        let summary = String::from_utf8_lossy(&out.stdout);
        for class in ["1001", "4001", "1007", "2004", "2006"] {
            assert!(summary.contains(&format!("class {class}:")), "{summary}");
        }
    }
}
