//! Splunk HTTP Event Collector: records POSTed in batches to
//! `/services/collector/event` with the token, gzipped, and, with indexer
//! acknowledgment on, a batch counts as delivered only once
//! `/services/collector/ack` says Splunk indexed it. A refused, failed or
//! unacknowledged batch is an error: the follower offers it again (with
//! backoff), so delivery is at least once and in order.

use std::io::Write as _;
use std::time::{Duration, Instant};

use ring::rand::SecureRandom as _;
use serde_json::{json, Value};

use crate::model::{FollowError, Follower, Record};
use crate::rules::sinks::HecConfig;

/// How long one request may take.
const TIMEOUT: Duration = Duration::from_secs(15);
/// How long a batch may wait for its acknowledgment before it is sent again.
const ACK_WAIT: Duration = Duration::from_secs(60);

/// A HEC sink: a follower of the record.
pub struct Hec {
    cfg: HecConfig,
    agent: ureq::Agent,
    channel: String,
}

impl Hec {
    /// A sink for `cfg`.
    pub fn new(cfg: HecConfig) -> Result<Self, super::SinkError> {
        let mut builder = ureq::AgentBuilder::new().timeout(TIMEOUT);
        if cfg.url.starts_with("https://") && cfg.ca_file.is_some() {
            builder =
                builder.tls_config(crate::tls::build(&cfg.name, cfg.ca_file.as_deref(), None)?);
        }
        let mut id = [0u8; 16];
        ring::rand::SystemRandom::new()
            .fill(&mut id)
            .map_err(|_| super::SinkError::Tls {
                sink: cfg.name.clone(),
                what: "channel".into(),
                why: "no system randomness".into(),
            })?;
        let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
        let channel = format!(
            "{}-{}-{}-{}-{}",
            &hex[..8],
            &hex[8..12],
            &hex[12..16],
            &hex[16..20],
            &hex[20..]
        );
        Ok(Self {
            agent: builder.build(),
            channel,
            cfg,
        })
    }

    fn request(&self, path: &str) -> ureq::Request {
        let mut req = self
            .agent
            .post(&format!("{}{path}", self.cfg.url))
            .set("Authorization", &format!("Splunk {}", self.cfg.token));
        if self.cfg.ack {
            req = req.set("X-Splunk-Request-Channel", &self.channel);
        }
        req
    }

    /// One HEC event per record.
    fn body(&self, records: &[Record]) -> std::io::Result<Vec<u8>> {
        let mut raw = Vec::new();
        for r in records.iter().filter(|r| self.cfg.select.wants(r)) {
            let mut ev = json!({
                "time": r.time_ns as f64 / 1e9,
                "host": &*r.host,
                "source": "monitor",
                "sourcetype": self.cfg.sourcetype,
                "event": r,
            });
            if let Some(i) = &self.cfg.index {
                ev["index"] = json!(i);
            }
            serde_json::to_writer(&mut raw, &ev)?;
            raw.push(b'\n');
        }
        if !self.cfg.gzip || raw.is_empty() {
            return Ok(raw);
        }
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&raw)?;
        gz.finish()
    }

    fn send(&self, records: &[Record]) -> Result<(), String> {
        let body = self.body(records).map_err(|e| e.to_string())?;
        if body.is_empty() {
            return Ok(());
        }
        let mut req = self.request("/services/collector/event");
        if self.cfg.gzip {
            req = req.set("Content-Encoding", "gzip");
        }
        let answer: Value = match req.send_bytes(&body) {
            Ok(resp) => resp
                .into_json()
                .map_err(|e| format!("reading the answer: {e}"))?,
            Err(ureq::Error::Status(code, resp)) => {
                let text = resp.into_string().unwrap_or_default();
                return Err(format!("HTTP {code}: {}", text.trim()));
            }
            Err(e) => return Err(e.to_string()),
        };
        if !self.cfg.ack {
            return Ok(());
        }
        let id = answer["ackId"].as_u64().ok_or_else(|| {
            format!("no ackId in {answer} (is acknowledgment enabled for the token?)")
        })?;
        self.wait_ack(id)
    }

    /// Polls the acknowledgment endpoint until `id` is indexed.
    fn wait_ack(&self, id: u64) -> Result<(), String> {
        let deadline = Instant::now() + ACK_WAIT;
        let mut pause = Duration::from_millis(100);
        loop {
            let resp = self
                .request(&format!("/services/collector/ack?channel={}", self.channel))
                .send_json(json!({ "acks": [id] }));
            match resp {
                Ok(resp) => {
                    let v: Value = resp.into_json().map_err(|e| e.to_string())?;
                    if v["acks"][id.to_string()].as_bool() == Some(true) {
                        return Ok(());
                    }
                }
                Err(ureq::Error::Status(503, _)) => {}
                Err(e) => return Err(format!("acknowledgment: {e}")),
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "batch {id} not acknowledged within {} s",
                    ACK_WAIT.as_secs()
                ));
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_secs(2));
        }
    }
}

impl Follower for Hec {
    fn name(&self) -> &str {
        &self.cfg.name
    }

    fn handle(&mut self, records: &[Record]) -> Result<(), FollowError> {
        self.send(records)
            .map_err(|e| format!("hec {}: {e}", self.cfg.url).into())
    }
}
