//! `webhook`: the alert's record as JSON, POSTed over HTTPS (rustls; a CA
//! file, else the public roots) and signed so the receiver can tell it
//! came from us: `X-Monitor-Timestamp` (Unix seconds) and
//! `X-Monitor-Signature: sha256=HEX`, the HMAC-SHA256 of
//! `TIMESTAMP.BODY` under the shared key. Retried with backoff (200 ms,
//! doubling) on connection errors and 5xx.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::Done;
use crate::model::{Record, RunOutcome};

/// The signature header's value for `body` sent at `timestamp`.
pub fn signature(secret: &[u8], timestamp: u64, body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    let mut ctx = ring::hmac::Context::with_key(&key);
    ctx.update(timestamp.to_string().as_bytes());
    ctx.update(b".");
    ctx.update(body);
    let tag = ctx.sign();
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

/// A blocking HTTP agent with `timeout`, trusting `ca_file` when given.
pub fn agent(who: &str, ca_file: Option<&Path>, timeout: Duration) -> Result<ureq::Agent, String> {
    let mut b = ureq::AgentBuilder::new().timeout(timeout);
    if ca_file.is_some() {
        b = b.tls_config(crate::tls::build(who, ca_file, None).map_err(|e| e.to_string())?);
    }
    Ok(b.build())
}

/// POSTs `body` to `url` with `headers`, retrying `retries` times.
pub fn post(
    agent: &ureq::Agent,
    url: &str,
    headers: &[(&str, String)],
    body: &[u8],
    retries: u32,
) -> Done {
    let mut backoff = Duration::from_millis(200);
    let mut last = String::new();
    for attempt in 0..=retries {
        let mut req = agent.post(url).set("Content-Type", "application/json");
        for (k, v) in headers {
            req = req.set(k, v);
        }
        match req.send_bytes(body) {
            Ok(resp) => {
                return Done {
                    target: url.to_owned(),
                    outcome: RunOutcome::Done,
                    detail: format!("HTTP {} after {} attempt(s)", resp.status(), attempt + 1),
                }
            }
            Err(ureq::Error::Status(code, _)) if code < 500 => {
                return Done {
                    target: url.to_owned(),
                    outcome: RunOutcome::Failed,
                    detail: format!("HTTP {code} (not retried)"),
                }
            }
            Err(e) => last = e.to_string(),
        }
        if attempt < retries {
            std::thread::sleep(backoff);
            backoff *= 2;
        }
    }
    Done {
        target: url.to_owned(),
        outcome: RunOutcome::Failed,
        detail: format!("{} attempts failed; last: {last}", retries + 1),
    }
}

/// Sends `r` to `url`, signed with `secret`.
pub fn run(
    name: &str,
    url: &str,
    secret: &[u8],
    ca_file: Option<&Path>,
    retries: u32,
    timeout: Duration,
    r: &Record,
) -> Done {
    let agent = match agent(name, ca_file, timeout) {
        Ok(a) => a,
        Err(e) => {
            return Done {
                target: url.to_owned(),
                outcome: RunOutcome::Failed,
                detail: e,
            }
        }
    };
    let body = serde_json::to_vec(r).unwrap_or_default();
    let ts = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let headers = [
        ("X-Monitor-Timestamp", ts.to_string()),
        ("X-Monitor-Signature", signature(secret, ts, &body)),
    ];
    post(&agent, url, &headers, &body, retries)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_signature_is_hmac_sha256_of_timestamp_dot_body() {
        // RFC 4231 test case 2 shape: key "Jefe", data "what do ya want for nothing?".
        let s = super::signature(b"Jefe", 0, b"what do ya want for nothing?");
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"Jefe");
        let tag = ring::hmac::sign(&key, b"0.what do ya want for nothing?");
        let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(s, format!("sha256={hex}"));
    }
}
