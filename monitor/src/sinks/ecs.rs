//! Elastic Common Schema (ECS) documents, one JSON line per record, in a
//! size-rotated file that Filebeat, Elastic Agent or Vector tail: the
//! record's fields under their ECS names (`event.kind: alert` for alerts,
//! `user.roles`, `file.path`, `destination.ip`, `process.*`, `rule.id`),
//! and the whole record under `monitor` for what ECS has no field for.

use serde_json::{json, Map, Value};

use super::jsonl::JsonlFile;
use crate::model::{Action, Outcome, Record, Severity};
use crate::rules::sinks::FileSinkConfig;

/// ECS's numeric severity for an alert's severity.
fn severity(s: Severity) -> u8 {
    match s {
        Severity::Low => 21,
        Severity::Medium => 47,
        Severity::High => 73,
        Severity::Critical => 99,
    }
}

/// The record as one ECS document.
pub fn document(r: &Record) -> Value {
    let (category, kind_type) = match r.action {
        Action::Read | Action::Write | Action::Delete | Action::Rename => (
            "file",
            match r.action {
                Action::Read => "access",
                Action::Write => "change",
                Action::Delete => "deletion",
                _ => "change",
            },
        ),
        Action::Connect | Action::Accept | Action::Send | Action::Receive => {
            ("network", "connection")
        }
        Action::Query | Action::QueryRefused => ("iam", "access"),
        _ => ("process", "info"),
    };
    let mut event = json!({
        "kind": if r.alert.is_some() { "alert" } else { "event" },
        "category": [category],
        "type": [kind_type],
        "action": r.action.name(),
        "outcome": match r.outcome {
            Outcome::Allowed => "success",
            Outcome::Violation => "success",
            Outcome::Failed | Outcome::Refused => "failure",
        },
        "sequence": r.seq,
        "dataset": "monitor.record",
        "module": "monitor",
    });
    let mut doc = json!({
        "@timestamp": r.time,
        "ecs": {"version": "8.11.0"},
        "host": {"name": &*r.host},
        "observer": {"vendor": "monitor", "product": "monitor", "version": env!("CARGO_PKG_VERSION")},
        "user": {"id": r.uid.to_string(), "roles": [&*r.role]},
        "process": {"pid": r.pid, "name": r.comm},
        "message": r.alert.as_ref().map_or_else(|| format!("{} {}", r.action.name(), r.object), |a| a.message.clone()),
        "monitor": r,
    });
    let o = doc.as_object_mut().expect("an object");
    if let Some(u) = &r.user {
        o["user"]["name"] = json!(&**u);
    }
    if let Some(e) = &r.exe {
        o["process"]["executable"] = json!(&**e);
    }
    if let Some(a) = &r.alert {
        event["severity"] = json!(severity(a.severity));
        o.insert(
            "rule".into(),
            json!({"id": a.rule, "name": a.rule, "description": a.message}),
        );
    }
    o.insert("event".into(), event);
    if r.action.on_files() {
        let name = r.object.rsplit('/').next().unwrap_or(&r.object);
        o.insert("file".into(), json!({"path": r.object, "name": name}));
    } else if category == "network" {
        let mut dest = Map::new();
        if let Some((addr, port)) = r.object.rsplit_once(':') {
            dest.insert("ip".into(), json!(addr.trim_matches(['[', ']'])));
            if let Ok(p) = port.parse::<u16>() {
                dest.insert("port".into(), json!(p));
            }
        }
        if let Some(h) = &r.dest_host {
            dest.insert("domain".into(), json!(h));
        }
        if let Some(b) = r.bytes {
            dest.insert("bytes".into(), json!(b));
        }
        o.insert("destination".into(), Value::Object(dest));
    }
    if let Some(c) = &r.class {
        o.insert("labels".into(), json!({"data_class": &**c}));
    }
    doc
}

/// The ECS file sink for `cfg`.
pub fn open(cfg: &FileSinkConfig) -> std::io::Result<JsonlFile> {
    let select = cfg.select.clone();
    JsonlFile::with(
        cfg.name.clone(),
        &cfg.path,
        Box::new(move |r| select.wants(r).then(|| document(r).to_string())),
        Some((cfg.max_bytes, cfg.keep)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_alert_is_an_ecs_alert_with_its_fields_and_hostile_values_survive() {
        let r = super::super::cef::tests::hostile_record();
        let d = document(&r);
        assert_eq!(d["event"]["kind"], "alert");
        assert_eq!(d["event"]["severity"], 73);
        assert_eq!(d["rule"]["id"], "class-read");
        assert_eq!(d["user"]["roles"][0], "chatbot");
        assert_eq!(d["file"]["path"], r.object.as_str());
        let back: Value = serde_json::from_str(&d.to_string()).unwrap();
        assert_eq!(back["file"]["path"], r.object.as_str());
        assert_eq!(back["monitor"]["seq"], 7);
    }

    #[test]
    fn the_file_rotates_by_size_and_keeps_what_it_is_told() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ecs.jsonl");
        let cfg = FileSinkConfig {
            name: "ecs".into(),
            path: path.clone(),
            max_bytes: 4096,
            keep: 2,
            select: crate::rules::sinks::Select {
                all: true,
                ..Default::default()
            },
        };
        let mut sink = open(&cfg).unwrap();
        let r = super::super::cef::tests::hostile_record();
        use crate::model::Follower as _;
        for _ in 0..20 {
            sink.handle(&vec![r.clone(); 3]).unwrap();
        }
        let size = |p: &std::path::Path| std::fs::metadata(p).map_or(0, |m| m.len());
        assert!(size(&path) <= 4096 && size(&path) > 0);
        let one = dir.path().join("ecs.jsonl.1");
        let two = dir.path().join("ecs.jsonl.2");
        assert!(size(&one) > 0 && size(&two) > 0);
        assert!(!dir.path().join("ecs.jsonl.3").exists());
        for p in [&path, &one, &two] {
            for line in std::fs::read_to_string(p).unwrap().lines() {
                let v: Value = serde_json::from_str(line).unwrap();
                assert_eq!(v["event"]["kind"], "alert");
            }
        }
    }
}
