//! CEF:0 (ArcSight Common Event Format): a header of seven `|`-separated
//! fields and an extension of `key=value` pairs. Every byte a record holds
//! is escaped as the format requires: `\` and `|` in the header; `\`, `=`
//! and line breaks in the extension; standard keys where one fits, `csN`
//! with a label for the rest.

use crate::model::{Action, Record, Severity};

/// The header's vendor, product and version.
const VENDOR: &str = "monitor";
const PRODUCT: &str = "monitor";

/// A header field: `\` and `|` escaped, line breaks written `\n` / `\r`.
pub fn header(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '|' => out.push_str("\\|"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out
}

/// An extension value: `\` and `=` escaped, line breaks written `\n` / `\r`.
pub fn value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '=' => out.push_str("\\="),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out
}

/// CEF severity (0-10) for an alert's severity (1 for a record without one).
fn severity(s: Option<Severity>) -> u8 {
    match s {
        None => 1,
        Some(Severity::Low) => 3,
        Some(Severity::Medium) => 5,
        Some(Severity::High) => 8,
        Some(Severity::Critical) => 10,
    }
}

/// The record as one CEF line (no line break at its end).
pub fn line(r: &Record) -> String {
    let (signature, name) = match &r.alert {
        Some(a) => (a.rule.clone(), a.message.clone()),
        None => (
            r.action.name().to_owned(),
            format!("{} {}", r.action.name(), r.object),
        ),
    };
    let mut ext: Vec<(&str, String)> = vec![
        ("rt", (r.time_ns / 1_000_000).to_string()),
        ("dvchost", r.host.to_string()),
        ("act", r.action.name().to_owned()),
        ("outcome", format!("{:?}", r.outcome).to_lowercase()),
        ("suid", r.uid.to_string()),
        ("spid", r.pid.to_string()),
        ("sproc", r.comm.clone()),
        ("cs1Label", "role".into()),
        ("cs1", r.role.to_string()),
        ("cn1Label", "seq".into()),
        ("cn1", r.seq.to_string()),
    ];
    if let Some(u) = &r.user {
        ext.push(("suser", u.to_string()));
    }
    if let Some(exe) = &r.exe {
        ext.push(("cs4Label", "exe".into()));
        ext.push(("cs4", exe.to_string()));
    }
    if let Some(c) = &r.class {
        ext.push(("cs2Label", "class".into()));
        ext.push(("cs2", c.to_string()));
    }
    let network = matches!(
        r.action,
        Action::Connect | Action::Accept | Action::Send | Action::Receive
    );
    if network {
        match r.object.rsplit_once(':') {
            Some((addr, port)) if port.parse::<u16>().is_ok() => {
                ext.push(("dst", addr.trim_matches(['[', ']']).to_owned()));
                ext.push(("dpt", port.to_owned()));
            }
            _ => ext.push(("request", r.object.clone())),
        }
    } else if r.action.on_files() {
        ext.push(("filePath", r.object.clone()));
        let name = r.object.rsplit('/').next().unwrap_or(&r.object);
        ext.push(("fname", name.to_owned()));
    } else {
        ext.push(("request", r.object.clone()));
    }
    if let Some(h) = &r.dest_host {
        ext.push(("dhost", h.clone()));
    }
    if let Some(b) = r.bytes {
        ext.push(("out", b.to_string()));
    }
    if !r.findings.is_empty() {
        let f: Vec<String> = r
            .findings
            .iter()
            .map(|f| format!("{} {} {}", f.kind, f.masked, f.fingerprint))
            .collect();
        ext.push(("cs3Label", "findings".into()));
        ext.push(("cs3", f.join(", ")));
    }
    if let Some(e) = &r.errno {
        ext.push(("reason", e.clone()));
    }
    if let Some(a) = &r.alert {
        ext.push(("cat", a.rule.clone()));
        ext.push(("msg", a.message.clone()));
    }
    let ext: Vec<String> = ext
        .into_iter()
        .map(|(k, v)| format!("{k}={}", value(&v)))
        .collect();
    format!(
        "CEF:0|{VENDOR}|{PRODUCT}|{}|{}|{}|{}|{}",
        header(env!("CARGO_PKG_VERSION")),
        header(&signature),
        header(&name),
        severity(r.alert.as_ref().map(|a| a.severity)),
        ext.join(" ")
    )
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Splits a CEF line into its seven header fields and its extension
    /// pairs, undoing the escapes: what a SIEM's parser does.
    pub(crate) fn parse(line: &str) -> (Vec<String>, Vec<(String, String)>) {
        let mut fields = Vec::new();
        let mut cur = String::new();
        let mut chars = line.chars();
        while fields.len() < 7 {
            match chars.next() {
                Some('\\') => match chars.next() {
                    Some('n') => cur.push('\n'),
                    Some('r') => cur.push('\r'),
                    Some(c) => cur.push(c),
                    None => break,
                },
                Some('|') => fields.push(std::mem::take(&mut cur)),
                Some(c) => cur.push(c),
                None => break,
            }
        }
        let rest: String = chars.collect();
        // Keys are `word=`; a value runs until the next unescaped ` key=`.
        let mut pairs: Vec<(String, String)> = Vec::new();
        let mut key = String::new();
        let mut val = String::new();
        let mut in_key = true;
        let mut it = rest.chars().peekable();
        while let Some(c) = it.next() {
            if in_key {
                if c == '=' {
                    in_key = false;
                } else {
                    key.push(c);
                }
                continue;
            }
            match c {
                '\\' => match it.next() {
                    Some('n') => val.push('\n'),
                    Some('r') => val.push('\r'),
                    Some(c) => val.push(c),
                    None => {}
                },
                ' ' => {
                    // A space ends the value when a `key=` follows.
                    let ahead: String = it.clone().take_while(|c| *c != ' ').collect();
                    let is_key = ahead.split_once('=').is_some_and(|(k, _)| {
                        !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric())
                    });
                    if is_key {
                        pairs.push((std::mem::take(&mut key), std::mem::take(&mut val)));
                        in_key = true;
                    } else {
                        val.push(' ');
                    }
                }
                c => val.push(c),
            }
        }
        if !key.is_empty() {
            pairs.push((key, val));
        }
        (fields, pairs)
    }

    pub(crate) fn hostile_record() -> Record {
        serde_json::from_value(serde_json::json!({
            "seq": 7, "time": "2026-12-04T03:00:00.123456789Z", "time_ns": 1_796_353_200_123_456_789u64,
            "host": "h", "pid": 42, "comm": "py|th=on", "uid": 1000, "user": "a\\b",
            "role": "chatbot", "action": "read", "class": "cardholder-data",
            "object": "/srv/a|b=c\\d\ne\u{1b}[31mf\\xffg.csv", "outcome": "violation",
            "alert": {"severity": "high", "rule": "class-read", "message": "role chatbot may not read | = \\ data\nnext"}
        }))
        .unwrap()
    }

    #[test]
    fn hostile_values_parse_back_unchanged() {
        let r = hostile_record();
        let line = line(&r);
        assert!(!line.contains('\n') && !line.contains('\r'), "{line}");
        let (h, ext) = parse(&line);
        assert_eq!(h[0], "CEF:0");
        assert_eq!(h[4], "class-read");
        assert_eq!(h[5], r.alert.as_ref().unwrap().message);
        let get = |k: &str| ext.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
        assert_eq!(get("filePath").as_deref(), Some(r.object.as_str()));
        assert_eq!(get("sproc").as_deref(), Some("py|th=on"));
        assert_eq!(get("suser").as_deref(), Some("a\\b"));
        assert_eq!(get("msg"), Some(r.alert.unwrap().message));
        assert_eq!(get("cs1").as_deref(), Some("chatbot"));
        assert_eq!(get("cn1").as_deref(), Some("7"));
    }

    #[test]
    fn network_records_name_the_destination() {
        let mut r = hostile_record();
        r.action = Action::Send;
        r.object = "203.0.113.7:443".into();
        r.dest_host = Some("api.model.example".into());
        let (_, ext) = parse(&line(&r));
        let get = |k: &str| ext.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
        assert_eq!(get("dst").as_deref(), Some("203.0.113.7"));
        assert_eq!(get("dpt").as_deref(), Some("443"));
        assert_eq!(get("dhost").as_deref(), Some("api.model.example"));
    }
}
