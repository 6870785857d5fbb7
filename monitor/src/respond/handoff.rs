//! `handoff`: a chatbot conversation carrying risk phrases (custom
//! detectors of a selected category in `pii.toml`) is handed to a person:
//! the platform's hand-off endpoint gets the conversation's identity and
//! the detectors that matched, never the matched text.

use std::time::Duration;

use super::Done;
use crate::model::Record;

/// The hand-off request's body for `r`: identity and detector names only.
pub fn body(r: &Record, detectors: &[String]) -> serde_json::Value {
    let mut matched: Vec<&str> = r
        .findings
        .iter()
        .map(|f| f.kind.as_str())
        .filter(|k| detectors.iter().any(|d| d == k))
        .collect();
    matched.sort_unstable();
    matched.dedup();
    serde_json::json!({
        "conversation": format!("{}:{}:{}", r.host, r.pid, r.object),
        "host": &*r.host,
        "pid": r.pid,
        "process": r.comm,
        "role": &*r.role,
        "uid": r.uid,
        "destination": r.object,
        "destination_host": r.dest_host,
        "matched": matched,
        "record_seq": r.seq,
        "time": r.time,
    })
}

/// Calls the hand-off endpoint at `url` for `r`.
pub fn run(url: &str, detectors: &[String], r: &Record, timeout: Duration) -> Done {
    let agent = ureq::AgentBuilder::new().timeout(timeout).build();
    let body = body(r, detectors).to_string();
    super::webhook::post(&agent, url, &[], body.as_bytes(), 1)
}
