//! `sinks.toml`: where records go after the store (read by `sinks/`). Each `[[sink]]` is a
//! follower of the record with its own cursor (kept under its `name`, so
//! renaming a sink starts it over from the oldest record kept).

use std::path::PathBuf;

use monitor_pii::RulesError;
use serde::Deserialize;
use toml::Spanned;

use super::parse_toml;
use crate::model::{Action, Record, Severity};

/// How a syslog sink reaches its receiver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// One datagram per message (no delivery guarantee).
    Udp,
    /// TCP with octet-counted framing (RFC 6587).
    Tcp,
    /// TLS (RFC 5425).
    Tls,
}

impl Transport {
    /// The lowercase name.
    pub fn name(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
        }
    }
}

/// What a syslog message carries as its text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// The alert's text (the record is in the structured data).
    Rfc5424,
    /// The whole record as a CEF:0 line.
    Cef,
}

/// Which records a sink is handed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Selection {
    /// Records with an alert (the default).
    Alerts,
    /// Every record.
    All,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSinks {
    #[serde(default)]
    sink: Vec<RawSink>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSink {
    name: Spanned<String>,
    #[serde(rename = "type")]
    kind: Spanned<String>,
    transport: Option<Transport>,
    address: Option<Spanned<String>>,
    format: Option<Format>,
    records: Option<Selection>,
    min_severity: Option<Spanned<String>>,
    #[serde(default)]
    roles: Vec<String>,
    facility: Option<u8>,
    sd_id: Option<Spanned<String>>,
    ca_file: Option<PathBuf>,
    client_cert: Option<PathBuf>,
    client_key: Option<PathBuf>,
    server_name: Option<String>,
    path: Option<PathBuf>,
    max_bytes: Option<u64>,
    keep: Option<u32>,
    url: Option<Spanned<String>>,
    token: Option<String>,
    token_file: Option<PathBuf>,
    ack: Option<bool>,
    gzip: Option<bool>,
    sourcetype: Option<String>,
    index: Option<String>,
}

/// Which records a sink is handed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Select {
    /// Every record, not only alerts.
    pub all: bool,
    /// Only alerts at least this severe.
    pub min_severity: Option<Severity>,
    /// Only these roles (empty: all).
    pub roles: Vec<String>,
}

impl Select {
    /// Whether `r` is handed over. Heartbeats always are, and the daemon's
    /// own start, stop and reloads (PCI wants the starting and stopping of
    /// audit logging kept off the host), and its own alerts about itself
    /// (outages, lost records) whatever the roles.
    pub fn wants(&self, r: &Record) -> bool {
        let own = &*r.role == "monitor";
        if r.action == Action::Heartbeat
            || own && matches!(r.action, Action::Start | Action::Stop | Action::Reload)
        {
            return true;
        }
        let role_ok = self.roles.is_empty()
            || self.roles.iter().any(|x| **x == *r.role)
            || &*r.role == "monitor";
        let Some(a) = &r.alert else {
            return self.all && role_ok;
        };
        role_ok && self.min_severity.is_none_or(|m| a.severity >= m)
    }
}

/// One validated Splunk HTTP Event Collector sink (`type = "hec"`).
#[derive(Debug, Clone, PartialEq)]
pub struct HecConfig {
    /// Its stable name (the cursor's).
    pub name: String,
    /// The collector's base URL (`https://splunk.example.com:8088`).
    pub url: String,
    /// The HEC token (inline, or read from `token_file` at start-up).
    pub token: String,
    /// Wait for indexer acknowledgment: a batch counts as delivered only
    /// once acknowledged (the token must have it enabled).
    pub ack: bool,
    /// gzip the request bodies.
    pub gzip: bool,
    /// The events' sourcetype (default `monitor:record`).
    pub sourcetype: String,
    /// The index, when not the token's default.
    pub index: Option<String>,
    /// CA certificates (PEM) for an https URL.
    pub ca_file: Option<PathBuf>,
    /// Which records it is handed.
    pub select: Select,
}

/// One validated file sink (`type = "ecs"` or `"ocsf"`).
#[derive(Debug, Clone, PartialEq)]
pub struct FileSinkConfig {
    /// Its stable name (the cursor's).
    pub name: String,
    /// The file.
    pub path: PathBuf,
    /// Rotate once the file would pass this size (default 100 MiB).
    pub max_bytes: u64,
    /// Rotated files kept (default 5).
    pub keep: u32,
    /// Which records it is handed.
    pub select: Select,
}

/// One validated syslog sink.
#[derive(Debug, Clone, PartialEq)]
pub struct SinkConfig {
    /// Its stable name (the cursor's).
    pub name: String,
    /// UDP, TCP or TLS.
    pub transport: Transport,
    /// `host:port`.
    pub address: String,
    /// What the message text is.
    pub format: Format,
    /// Which records it is handed.
    pub select: Select,
    /// The syslog facility (default 10, authpriv).
    pub facility: u8,
    /// The structured data's SD-ID (default `monitor@32473`; 32473 is the
    /// example enterprise number of RFC 5612: set your own).
    pub sd_id: String,
    /// CA certificates (PEM) the TLS receiver's certificate must chain to.
    pub ca_file: Option<PathBuf>,
    /// A client certificate (PEM) for receivers that ask for one...
    pub client_cert: Option<PathBuf>,
    /// ...and its key (PEM).
    pub client_key: Option<PathBuf>,
    /// The name the TLS receiver's certificate must carry (default: the
    /// address's host).
    pub server_name: Option<String>,
}

impl SinkConfig {
    /// The TLS server name: `server_name`, or the address's host.
    pub fn server_name(&self) -> &str {
        if let Some(n) = &self.server_name {
            return n;
        }
        match self.address.rsplit_once(':') {
            Some((host, _)) => host.trim_matches(['[', ']']),
            None => &self.address,
        }
    }

    /// A sink for unit tests.
    #[cfg(test)]
    pub fn test(transport: &str) -> Self {
        Self {
            name: "test".into(),
            transport: match transport {
                "udp" => Transport::Udp,
                "tls" => Transport::Tls,
                _ => Transport::Tcp,
            },
            address: "127.0.0.1:6514".into(),
            format: Format::Rfc5424,
            select: Select::default(),
            facility: 10,
            sd_id: "monitor@32473".into(),
            ca_file: None,
            client_cert: None,
            client_key: None,
            server_name: None,
        }
    }
}

/// The validated `sinks.toml`.
#[derive(Debug, Clone, Default)]
pub struct SinkRules {
    /// Syslog sinks, in file order.
    pub syslog: Vec<SinkConfig>,
    /// ECS file sinks, in file order.
    pub ecs: Vec<FileSinkConfig>,
    /// OCSF file sinks, in file order.
    pub ocsf: Vec<FileSinkConfig>,
    /// Splunk HEC sinks, in file order.
    pub hec: Vec<HecConfig>,
}

impl SinkRules {
    /// Parses and checks `sinks.toml`.
    pub fn parse(src: &str, file: &str) -> Result<Self, RulesError> {
        let raw: RawSinks = parse_toml(src, file)?;
        let mut out = SinkRules::default();
        let mut names: Vec<String> = Vec::new();
        for s in raw.sink {
            let at =
                |span: std::ops::Range<usize>, m: String| RulesError::at(src, file, span.start, m);
            let name = s.name.get_ref().clone();
            if name.is_empty() || names.contains(&name) {
                return Err(at(
                    s.name.span(),
                    format!("sink name `{name}` is empty or used twice"),
                ));
            }
            names.push(name.clone());
            let min_severity = match &s.min_severity {
                None => None,
                Some(v) => Some(
                    v.get_ref()
                        .parse::<Severity>()
                        .map_err(|m| at(v.span(), m))?,
                ),
            };
            let select = Select {
                all: s.records == Some(Selection::All),
                min_severity,
                roles: s.roles.clone(),
            };
            match s.kind.get_ref().as_str() {
                "syslog" => {}
                "ecs" | "ocsf" => {
                    let Some(path) = s.path else {
                        return Err(at(s.name.span(), format!("sink `{name}` has no path")));
                    };
                    if !path.is_absolute() {
                        return Err(at(
                            s.name.span(),
                            format!("sink `{name}`: path must be absolute"),
                        ));
                    }
                    let cfg = FileSinkConfig {
                        name,
                        path,
                        max_bytes: s.max_bytes.unwrap_or(100 << 20).max(4096),
                        keep: s.keep.unwrap_or(5),
                        select,
                    };
                    if s.kind.get_ref() == "ecs" {
                        out.ecs.push(cfg);
                    } else {
                        out.ocsf.push(cfg);
                    }
                    continue;
                }
                "hec" => {
                    let Some(url) = s.url else {
                        return Err(at(s.name.span(), format!("sink `{name}` has no url")));
                    };
                    let u = url.get_ref();
                    if !(u.starts_with("https://") || u.starts_with("http://")) {
                        return Err(at(
                            url.span(),
                            format!("bad url `{u}` (http:// or https://)"),
                        ));
                    }
                    let token = match (s.token, &s.token_file) {
                        (Some(t), None) => t,
                        (None, Some(f)) => std::fs::read_to_string(f)
                            .map(|t| t.trim().to_owned())
                            .map_err(|e| {
                                at(
                                    s.name.span(),
                                    format!("sink `{name}`: token_file {}: {e}", f.display()),
                                )
                            })?,
                        _ => {
                            return Err(at(
                                s.name.span(),
                                format!("sink `{name}` needs one of token or token_file"),
                            ))
                        }
                    };
                    out.hec.push(HecConfig {
                        name,
                        url: u.trim_end_matches('/').to_owned(),
                        token,
                        ack: s.ack.unwrap_or(false),
                        gzip: s.gzip.unwrap_or(true),
                        sourcetype: s.sourcetype.unwrap_or_else(|| "monitor:record".into()),
                        index: s.index,
                        ca_file: s.ca_file,
                        select,
                    });
                    continue;
                }
                other => {
                    return Err(at(
                        s.kind.span(),
                        format!("unknown sink type `{other}` (syslog, ecs, ocsf, hec)"),
                    ))
                }
            }
            let Some(address) = s.address else {
                return Err(at(
                    s.name.span(),
                    format!("sink `{name}` has no address (host:port)"),
                ));
            };
            if !address
                .get_ref()
                .rsplit_once(':')
                .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok())
            {
                return Err(at(
                    address.span(),
                    format!("bad address `{}` (expected host:port)", address.get_ref()),
                ));
            }
            let sd_id = match &s.sd_id {
                None => "monitor@32473".to_owned(),
                Some(v) => {
                    let id = v.get_ref();
                    let ok = !id.is_empty()
                        && id.len() <= 32
                        && id
                            .chars()
                            .all(|c| c.is_ascii_graphic() && !matches!(c, '=' | ']' | '"'));
                    if !ok {
                        return Err(at(v.span(), format!("bad SD-ID `{id}`")));
                    }
                    id.clone()
                }
            };
            let transport = s.transport.unwrap_or(Transport::Tcp);
            if transport == Transport::Tls && s.ca_file.is_none() {
                return Err(at(
                    s.name.span(),
                    format!("TLS sink `{name}` needs a ca_file"),
                ));
            }
            if s.client_cert.is_some() != s.client_key.is_some() {
                return Err(at(
                    s.name.span(),
                    format!("sink `{name}`: client_cert and client_key go together"),
                ));
            }
            out.syslog.push(SinkConfig {
                name,
                transport,
                address: address.get_ref().clone(),
                format: s.format.unwrap_or(Format::Rfc5424),
                select,
                facility: s.facility.unwrap_or(10).min(23),
                sd_id,
                ca_file: s.ca_file,
                client_cert: s.client_cert,
                client_key: s.client_key,
                server_name: s.server_name,
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sinks_parse_and_bad_ones_are_refused_with_a_position() {
        let ok = SinkRules::parse(
            "[[sink]]\nname = \"siem\"\ntype = \"syslog\"\ntransport = \"tcp\"\naddress = \"127.0.0.1:6514\"\nformat = \"cef\"\nmin_severity = \"high\"\n",
            "sinks.toml",
        )
        .unwrap();
        let s = &ok.syslog[0];
        assert_eq!(
            (s.format, s.select.min_severity, s.facility),
            (Format::Cef, Some(Severity::High), 10)
        );
        let files = SinkRules::parse(
            "[[sink]]\nname = \"lake\"\ntype = \"ocsf\"\npath = \"/var/log/o.jsonl\"\nkeep = 2\n",
            "sinks.toml",
        )
        .unwrap();
        assert_eq!((files.ocsf.len(), files.ecs.len()), (1, 0));
        assert_eq!(
            (files.ocsf[0].keep, files.ocsf[0].max_bytes),
            (2, 100 << 20)
        );
        let cases = [
            ("[[sink]]\nname = \"a\"\ntype = \"kafka\"\n", 3, 8, "unknown sink type"),
            ("[[sink]]\nname = \"a\"\ntype = \"ocsf\"\npath = \"o.jsonl\"\n", 2, 8, "must be absolute"),
            ("[[sink]]\nname = \"a\"\ntype = \"syslog\"\naddress = \"nowhere\"\n", 4, 11, "expected host:port"),
            ("[[sink]]\nname = \"a\"\ntype = \"syslog\"\naddress = \"h:1\"\ntransport = \"tls\"\n", 2, 8, "needs a ca_file"),
            ("[[sink]]\nname = \"a\"\ntype = \"syslog\"\naddress = \"h:1\"\nmin_severity = \"dire\"\n", 5, 16, "unknown severity"),
            ("[[sink]]\nname = \"a\"\ntype = \"syslog\"\naddress = \"h:1\"\nport = 5\n", 5, 1, "unknown field `port`"),
        ];
        for (src, line, col, msg) in cases {
            let e = SinkRules::parse(src, "sinks.toml").unwrap_err();
            assert_eq!((e.line, e.col), (line, col), "{src:?}: {e}");
            assert!(e.message.contains(msg), "{src:?}: {e}");
        }
    }
}

#[cfg(test)]
mod select_tests {
    use super::*;

    /// An alerts-only sink for one role still gets the daemon's own start,
    /// stop and reload records and heartbeats, and nothing else unalerted.
    #[test]
    fn the_daemon_s_own_lifecycle_always_goes() {
        let select = Select {
            roles: vec!["chatbot".into()],
            ..Select::default()
        };
        let mut r = crate::sinks::cef::tests::hostile_record();
        r.alert = None;
        r.role = "monitor".into();
        for (action, wanted) in [
            (Action::Start, true),
            (Action::Stop, true),
            (Action::Reload, true),
            (Action::Heartbeat, true),
            (Action::Query, false),
        ] {
            r.action = action;
            assert_eq!(select.wants(&r), wanted, "{action:?}");
        }
        r.role = "billing-agent".into();
        r.action = Action::Start;
        assert!(!select.wants(&r), "another role's record");
    }
}
