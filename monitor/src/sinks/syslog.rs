//! Syslog (RFC 5424) to a SIEM: over UDP, over TCP with octet-counted
//! framing (RFC 6587), or over TLS (RFC 5425, rustls). The record's fields
//! are structured data under one SD-ID; `APP-NAME` is `monitor`, `MSGID`
//! the alert's rule (or the action). The message is the alert's text, or
//! the whole record as a CEF line (`format = "cef"`).
//!
//! Delivery is at least once: a batch counts as sent once every message is
//! written and flushed; a connection the receiver has closed is noticed
//! before a batch and opened again. Plain syslog has no acknowledgment, so
//! what a receiver accepted into its socket and then lost when it died is
//! not seen here (RELP would be needed for that).

use std::io::Write as _;
use std::net::{TcpStream, ToSocketAddrs as _, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use super::cef;
use crate::model::{FollowError, Follower, Record, Severity};
use crate::rules::sinks::{Format, SinkConfig, Transport};

/// How long a connect or a write may take.
const TIMEOUT: Duration = Duration::from_secs(10);

/// A structured-data parameter value: `"`, `\` and `]` escaped.
fn sd_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '"' | '\\' | ']') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A header field: printable US-ASCII only (anything else becomes `_`), at
/// most `max` characters, `-` when empty.
fn header(s: &str, max: usize) -> String {
    let v: String = s
        .chars()
        .take(max)
        .map(|c| if c.is_ascii_graphic() { c } else { '_' })
        .collect();
    if v.is_empty() {
        "-".into()
    } else {
        v
    }
}

/// Syslog severity for an alert's severity (informational without one).
fn severity(s: Option<Severity>) -> u8 {
    match s {
        Some(Severity::Critical) => 2,
        Some(Severity::High) => 3,
        Some(Severity::Medium) => 4,
        Some(Severity::Low) => 5,
        None => 6,
    }
}

/// RFC 3339 with at most six fraction digits, as RFC 5424 allows.
fn timestamp(t: &str) -> String {
    match t.split_once('.') {
        Some((secs, rest)) => {
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            let zone = &rest[digits.len()..];
            let frac = &digits[..digits.len().min(6)];
            if frac.is_empty() {
                format!("{secs}{zone}")
            } else {
                format!("{secs}.{frac}{zone}")
            }
        }
        None if t.is_empty() => "-".into(),
        None => t.to_owned(),
    }
}

/// The record as one RFC 5424 message (no framing).
pub fn message(r: &Record, cfg: &SinkConfig) -> String {
    let pri =
        u16::from(cfg.facility) * 8 + u16::from(severity(r.alert.as_ref().map(|a| a.severity)));
    let msgid = r
        .alert
        .as_ref()
        .map_or(r.action.name(), |a| a.rule.as_str());
    let mut params: Vec<(&str, String)> = vec![
        ("seq", r.seq.to_string()),
        ("action", r.action.name().into()),
        ("role", r.role.to_string()),
        ("uid", r.uid.to_string()),
        ("pid", r.pid.to_string()),
        ("comm", r.comm.clone()),
        ("object", r.object.clone()),
        ("outcome", format!("{:?}", r.outcome).to_lowercase()),
    ];
    let mut opt = |k, v: Option<String>| {
        if let Some(v) = v {
            params.push((k, v));
        }
    };
    opt("user", r.user.as_deref().map(str::to_owned));
    opt("exe", r.exe.as_deref().map(str::to_owned));
    opt("class", r.class.as_deref().map(str::to_owned));
    opt("dest_host", r.dest_host.clone());
    opt("bytes", r.bytes.map(|b| b.to_string()));
    opt("errno", r.errno.clone());
    opt("reason", r.reason.clone());
    opt(
        "severity",
        r.alert.as_ref().map(|a| a.severity.name().to_owned()),
    );
    opt("rule", r.alert.as_ref().map(|a| a.rule.clone()));
    opt(
        "findings",
        (!r.findings.is_empty()).then(|| {
            r.findings
                .iter()
                .map(|f| format!("{} {} {}", f.kind, f.masked, f.fingerprint))
                .collect::<Vec<_>>()
                .join(", ")
        }),
    );
    opt("truncated", r.truncated.then(|| "true".to_owned()));
    let sd: Vec<String> = params
        .into_iter()
        .map(|(k, v)| format!("{k}=\"{}\"", sd_value(&v)))
        .collect();
    let msg = match cfg.format {
        Format::Cef => cef::line(r),
        Format::Rfc5424 => match &r.alert {
            Some(a) => a.message.clone(),
            None => format!("{} {}", r.action.name(), r.object),
        },
    };
    format!(
        "<{pri}>1 {} {} monitor {} {} [{} {}] {msg}",
        timestamp(&r.time),
        header(&r.host, 255),
        std::process::id(),
        header(msgid, 32),
        cfg.sd_id,
        sd.join(" ")
    )
}

/// An open connection to the receiver.
enum Conn {
    Udp(UdpSocket),
    Tcp(std::io::BufWriter<TcpStream>),
    Tls(Box<std::io::BufWriter<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>>),
}

impl Conn {
    /// Whether the receiver has closed (or sent anything: a syslog
    /// receiver never does, short of closing).
    fn closed(&self) -> bool {
        let tcp = match self {
            Conn::Udp(_) => return false,
            Conn::Tcp(w) => w.get_ref(),
            Conn::Tls(w) => &w.get_ref().sock,
        };
        let mut b = [0u8; 1];
        if tcp.set_nonblocking(true).is_err() {
            return true;
        }
        let r = tcp.peek(&mut b);
        let _ = tcp.set_nonblocking(false);
        !matches!(r, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
    }
}

/// A syslog sink: a follower of the record.
pub struct Syslog {
    cfg: SinkConfig,
    tls: Option<Arc<rustls::ClientConfig>>,
    conn: Option<Conn>,
}

impl Syslog {
    /// A sink for `cfg` (TLS settings loaded and checked here).
    pub fn new(cfg: SinkConfig) -> Result<Self, super::SinkError> {
        let tls = match cfg.transport {
            Transport::Tls => Some(super::tls::client_config(&cfg)?),
            _ => None,
        };
        Ok(Self {
            cfg,
            tls,
            conn: None,
        })
    }

    fn connect(&self) -> std::io::Result<Conn> {
        let addr = self
            .cfg
            .address
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| std::io::Error::other("the address resolves to nothing"))?;
        if self.cfg.transport == Transport::Udp {
            let bind = if addr.is_ipv4() {
                "0.0.0.0:0"
            } else {
                "[::]:0"
            };
            let s = UdpSocket::bind(bind)?;
            s.connect(addr)?;
            return Ok(Conn::Udp(s));
        }
        let tcp = TcpStream::connect_timeout(&addr, TIMEOUT)?;
        tcp.set_write_timeout(Some(TIMEOUT))?;
        tcp.set_nodelay(true)?;
        match &self.tls {
            None => Ok(Conn::Tcp(std::io::BufWriter::with_capacity(1 << 16, tcp))),
            Some(config) => {
                let name =
                    rustls::pki_types::ServerName::try_from(self.cfg.server_name().to_owned())
                        .map_err(std::io::Error::other)?;
                let conn = rustls::ClientConnection::new(config.clone(), name)
                    .map_err(std::io::Error::other)?;
                Ok(Conn::Tls(Box::new(std::io::BufWriter::with_capacity(
                    1 << 16,
                    rustls::StreamOwned::new(conn, tcp),
                ))))
            }
        }
    }

    fn send(&mut self, records: &[Record]) -> std::io::Result<()> {
        if self.conn.as_ref().is_some_and(Conn::closed) {
            self.conn = None;
        }
        if self.conn.is_none() {
            self.conn = Some(self.connect()?);
        }
        let conn = self.conn.as_mut().expect("connected");
        for r in records.iter().filter(|r| self.cfg.select.wants(r)) {
            let m = message(r, &self.cfg);
            match conn {
                Conn::Udp(s) => {
                    s.send(m.as_bytes())?;
                }
                Conn::Tcp(w) => write!(w, "{} {m}", m.len())?,
                Conn::Tls(w) => write!(w, "{} {m}", m.len())?,
            }
        }
        match conn {
            Conn::Udp(_) => Ok(()),
            Conn::Tcp(w) => w.flush(),
            Conn::Tls(w) => w.flush(),
        }
    }
}

impl Follower for Syslog {
    fn name(&self) -> &str {
        &self.cfg.name
    }

    fn handle(&mut self, records: &[Record]) -> Result<(), FollowError> {
        self.send(records).map_err(|e| {
            self.conn = None;
            format!("{} {}: {e}", self.cfg.transport.name(), self.cfg.address).into()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Undoes the structured-data escapes of one parameter's value.
    fn sd_param(m: &str, key: &str) -> Option<String> {
        let start = m.find(&format!(" {key}=\""))? + key.len() + 3;
        let mut out = String::new();
        let mut it = m[start..].chars();
        while let Some(c) = it.next() {
            match c {
                '\\' => out.push(it.next()?),
                '"' => return Some(out),
                c => out.push(c),
            }
        }
        None
    }

    #[test]
    fn a_message_carries_the_record_as_structured_data() {
        let r = cef::tests::hostile_record();
        let cfg = SinkConfig::test("tcp");
        let m = message(&r, &cfg);
        assert!(
            m.starts_with("<83>1 2026-12-04T03:00:00.123456Z h monitor "),
            "{m}"
        );
        assert!(m.contains(" class-read [monitor@32473 seq=\"7\""), "{m}");
        assert_eq!(sd_param(&m, "object").as_deref(), Some(r.object.as_str()));
        assert_eq!(sd_param(&m, "comm").as_deref(), Some("py|th=on"));
        assert_eq!(sd_param(&m, "user").as_deref(), Some("a\\b"));
        assert!(m.ends_with(&r.alert.unwrap().message), "{m}");
    }

    #[test]
    fn cef_rides_as_the_message() {
        let r = cef::tests::hostile_record();
        let mut cfg = SinkConfig::test("tcp");
        cfg.format = Format::Cef;
        let m = message(&r, &cfg);
        let cef_line = &m[m.find("] CEF:0|").unwrap() + 2..];
        let (h, _) = cef::tests::parse(cef_line);
        assert_eq!(h[4], "class-read");
    }
}
