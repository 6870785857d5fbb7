//! The analyst's commands (`monitor events`, `alerts`, `who-accessed`,
//! `role`, `trace-pii`, `verify`): send one request to the daemon's query
//! socket and print the answer as a table, or as JSON with `--json`.

use std::io::{BufRead as _, BufReader, Write as _};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context as _};
use clap::Args;

use crate::model::Action;
use crate::model::Record;
use crate::model::Severity;
use crate::record::query::{Filter, RoleSummary};
use crate::record::VerifyReport;
use crate::server::{Request, Response, DEFAULT_SOCKET};

/// Options every analyst command takes.
#[derive(Debug, Clone, Args)]
pub struct Common {
    /// The daemon's query socket.
    #[arg(long, default_value = DEFAULT_SOCKET, global = true)]
    pub socket: PathBuf,
    /// Print JSON instead of a table: an array of records (an object for
    /// `role` and `verify`).
    #[arg(long, global = true)]
    pub json: bool,
}

/// Filters: times are RFC 3339 (`2026-11-22T10:00:00Z`, `...+01:00`), a
/// local date or date and time (`2026-11-22`, `2026-11-22 10:00`), `today`,
/// `yesterday`, or an age (`2h`, `7d`).
#[derive(Debug, Clone, Default, Args)]
pub struct FilterArgs {
    /// Only records at or after this time.
    #[arg(long)]
    pub since: Option<String>,
    /// Only records before this time.
    #[arg(long)]
    pub until: Option<String>,
    /// Only this role.
    #[arg(long)]
    pub role: Option<String>,
    /// Only this user name.
    #[arg(long)]
    pub user: Option<String>,
    /// Only this data class.
    #[arg(long)]
    pub class: Option<String>,
    /// Only this path (or everything under it, with a trailing `/`).
    #[arg(long)]
    pub path: Option<String>,
    /// Only alerts of at least this severity (low, medium, high, critical).
    #[arg(long)]
    pub severity: Option<Severity>,
    /// Only this action (read, write, delete, rename, connect, send, query,
    /// ...); `query` includes refused queries, `query_refused` is only those.
    #[arg(long, value_parser = parse_action)]
    pub action: Option<Action>,
    /// At most this many records, newest first.
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
}

fn parse_action(s: &str) -> Result<Action, String> {
    serde_json::from_value(serde_json::Value::String(s.to_owned()))
        .map_err(|_| format!("unknown action `{s}`"))
}

/// A time given on the command line, as ns since the epoch: an RFC 3339
/// time with `Z` or an offset; a date and time without one, or a plain
/// date (its midnight), or `today` / `yesterday`, all in local time (`TZ`);
/// or an age like `2h`.
pub fn parse_time(s: &str) -> anyhow::Result<u64> {
    let now = jiff::Zoned::now();
    let local = |dt: jiff::civil::DateTime| dt.to_zoned(now.time_zone().clone());
    let t = match s.trim() {
        "today" => now.start_of_day()?.timestamp(),
        "yesterday" => now.yesterday()?.start_of_day()?.timestamp(),
        t => {
            if let Ok(ts) = t.parse::<jiff::Timestamp>() {
                ts
            } else if let Ok(dt) = t.parse::<jiff::civil::DateTime>() {
                local(dt)?.timestamp()
            } else if let Ok(d) = t.parse::<jiff::civil::Date>() {
                local(d.to_datetime(jiff::civil::Time::midnight()))?.timestamp()
            } else {
                let age = humantime::parse_duration(t).with_context(|| {
                    format!(
                        "`{s}` is not a time: give RFC 3339 (2026-12-04T04:50:00+01:00), a local date \
                         or date and time (2026-12-04, 2026-12-04 04:50), today, yesterday, or an age (2h)"
                    )
                })?;
                let then = SystemTime::now()
                    .checked_sub(age)
                    .context("age reaches before the epoch")?;
                return Ok(then
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos() as u64));
            }
        }
    };
    Ok(u64::try_from(t.as_nanosecond()).unwrap_or(0))
}

/// A path as the record writes it, from what the analyst typed: a path
/// that exists here is resolved through its symbolic links (the kernel
/// records the file reached, not the link) and a directory gets its
/// trailing `/` (everything under it); a relative one is taken from the
/// working directory; `//`, `.` and `..` are folded. A path that no longer
/// exists, or one typed in the record's escaped form (`\xNN`, `\\`), is
/// only made absolute and folded.
pub fn record_path(typed: &str) -> anyhow::Result<String> {
    anyhow::ensure!(!typed.is_empty(), "an empty path names nothing");
    let escaped = typed.contains('\\');
    if !escaped {
        if let Ok(real) = std::fs::canonicalize(typed) {
            let mut text = crate::enrich::paths::text(std::os::unix::ffi::OsStrExt::as_bytes(
                real.as_os_str(),
            ));
            if real.is_dir() && !text.ends_with('/') {
                text.push('/');
            }
            return Ok(text);
        }
    }
    let absolute = if typed.starts_with('/') {
        typed.to_owned()
    } else {
        let cwd = std::env::current_dir().context("the working directory, for a relative path")?;
        let cwd =
            crate::enrich::paths::text(std::os::unix::ffi::OsStrExt::as_bytes(cwd.as_os_str()));
        format!("{cwd}/{typed}")
    };
    let mut folded = crate::enrich::paths::normalize(&absolute);
    if typed.ends_with('/') && !folded.ends_with('/') {
        folded.push('/');
    }
    Ok(folded)
}

impl FilterArgs {
    /// The filter these options describe.
    pub fn filter(&self) -> anyhow::Result<Filter> {
        let since_ns = self.since.as_deref().map(parse_time).transpose()?;
        let until_ns = self.until.as_deref().map(parse_time).transpose()?;
        if let (Some(since), Some(until)) = (since_ns, until_ns) {
            anyhow::ensure!(
                until >= since,
                "--until ({}) is before --since ({}): nothing could match",
                self.until.as_deref().unwrap_or_default(),
                self.since.as_deref().unwrap_or_default()
            );
        }
        Ok(Filter {
            since_ns,
            until_ns,
            role: self.role.clone(),
            user: self.user.clone(),
            class: self.class.clone(),
            path: self.path.as_deref().map(record_path).transpose()?,
            severity: self.severity,
            action: self.action,
            limit: self.limit,
        })
    }
}

/// Sends `req` to the daemon and returns its answer (an error if refused).
pub fn ask(socket: &Path, req: &Request) -> anyhow::Result<Response> {
    let mut stream = UnixStream::connect(socket).with_context(|| {
        format!(
            "connecting to {} (is the daemon running?)",
            socket.display()
        )
    })?;
    stream.set_read_timeout(Some(Duration::from_secs(120)))?;
    let mut line = serde_json::to_vec(req)?;
    line.push(b'\n');
    stream.write_all(&line)?;
    let mut answer = String::new();
    BufReader::new(stream).read_line(&mut answer)?;
    if answer.is_empty() {
        bail!("the daemon closed the connection without answering");
    }
    let response: Response = serde_json::from_str(&answer).context("decoding the answer")?;
    if let Some(e) = &response.error {
        bail!("{e}");
    }
    Ok(response)
}

/// Lays out rows as aligned columns (the last column is not padded).
fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..cols)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        for (c, v) in row.iter().enumerate() {
            out.push_str(v);
            if c + 1 < cols {
                out.extend(std::iter::repeat_n(' ', widths[c] - v.chars().count() + 2));
            }
        }
        out.push('\n');
    }
    out
}

/// `s` with every control character and every bidirectional formatting
/// character written as `\u{..}`, so a name cannot drive the terminal.
/// (Stored names already write a backslash as `\\` and an invalid byte as
/// `\xNN`, so this form cannot be mistaken for either.)
pub fn visible(s: &str) -> String {
    let hidden = |c: char| {
        c.is_control()
            || matches!(c, '\u{200e}' | '\u{200f}' | '\u{061c}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    if !s.chars().any(hidden) {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if hidden(c) {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

/// Renders records as a table for people.
pub fn records_table(records: &[Record], alerts: bool) -> String {
    let header: &[&str] = if alerts {
        &[
            "TIME",
            "SEVERITY",
            "USER",
            "ROLE",
            "RULE",
            "MESSAGE / FINDINGS",
        ]
    } else {
        &[
            "TIME",
            "USER",
            "ROLE",
            "ACTION",
            "CLASS",
            "OUTCOME",
            "OBJECT / FINDINGS",
        ]
    };
    let mut rows = vec![header.iter().map(|h| (*h).to_owned()).collect::<Vec<_>>()];
    for r in records {
        // Names are an attacker's to choose: nothing in a cell moves the
        // cursor, rings, starts a new row or reverses the text.
        let user = visible(
            &r.user
                .as_deref()
                .map_or_else(|| r.uid.to_string(), str::to_owned),
        );
        let role = visible(&r.role);
        let object = visible(&r.object);
        let findings: Vec<String> = r
            .findings
            .iter()
            .map(|f| format!("{} {}", f.kind, f.masked))
            .collect();
        let findings = if findings.is_empty() {
            String::new()
        } else {
            format!(" [{}]", findings.join(", "))
        };
        rows.push(if alerts {
            let (sev, rule, msg) = r.alert.as_ref().map_or(("", "", ""), |a| {
                (a.severity.name(), a.rule.as_str(), a.message.as_str())
            });
            vec![
                r.time.clone(),
                sev.to_owned(),
                user,
                role,
                rule.to_owned(),
                visible(&format!("{msg}{findings}")),
            ]
        } else {
            let outcome = match r.outcome {
                crate::model::Outcome::Allowed => "allowed",
                crate::model::Outcome::Violation => "VIOLATION",
                crate::model::Outcome::Failed => "failed",
                crate::model::Outcome::Refused => "REFUSED",
            };
            vec![
                r.time.clone(),
                user,
                role,
                r.action.name().to_owned(),
                r.class.as_deref().unwrap_or("-").to_owned(),
                outcome.to_owned(),
                format!("{object}{findings}"),
            ]
        });
    }
    let mut out = table(&rows);
    out.push_str(&format!(
        "({} record{})\n",
        records.len(),
        if records.len() == 1 { "" } else { "s" }
    ));
    out
}

/// Renders a role summary for people.
pub fn summary_text(s: &RoleSummary) -> String {
    let mut out = format!(
        "role {}: {} records, {} alerts\n",
        visible(&s.role),
        s.records,
        s.alerts
    );
    out.push_str("by action and class:\n");
    for (k, n) in &s.by_action_class {
        out.push_str(&format!("  {n:>8}  {k}\n"));
    }
    out.push_str("by user:\n");
    for (k, n) in &s.by_user {
        out.push_str(&format!("  {n:>8}  {}\n", visible(k)));
    }
    out.push_str("most touched:\n");
    for (k, n) in &s.top_objects {
        out.push_str(&format!("  {n:>8}  {}\n", visible(k)));
    }
    out
}

/// Renders a verification report for people.
pub fn verify_text(v: &VerifyReport) -> String {
    match &v.first_bad {
        None => format!(
            "record chain OK: {} records verified (seq {}..={})\n",
            v.checked, v.first, v.last
        ),
        Some((seq, why)) => format!(
            "record chain BROKEN at record {seq}: {why} ({} records verified before it)\n",
            v.checked
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AT_0350Z: u64 = 1_796_356_200_000_000_000; // 2026-12-04T03:50:00Z

    #[test]
    fn times_as_people_write_them() {
        assert_eq!(parse_time("2026-12-04T03:50:00Z").unwrap(), AT_0350Z);
        // An offset, as RFC 3339 allows.
        assert_eq!(parse_time("2026-12-04T04:50:00+01:00").unwrap(), AT_0350Z);
        assert_eq!(parse_time("2026-12-03T22:50:00-05:00").unwrap(), AT_0350Z);
        // Local times and dates follow TZ (the test runs under whatever TZ
        // it is given, so compare with jiff's own reading of it).
        let local = |s: &str| {
            s.parse::<jiff::civil::DateTime>()
                .unwrap()
                .to_zoned(jiff::tz::TimeZone::system())
                .unwrap()
                .timestamp()
                .as_nanosecond() as u64
        };
        assert_eq!(
            parse_time("2026-12-04 04:50").unwrap(),
            local("2026-12-04T04:50")
        );
        assert_eq!(parse_time("2026-12-04").unwrap(), local("2026-12-04T00:00"));
        let today = parse_time("today").unwrap();
        let yesterday = parse_time("yesterday").unwrap();
        assert!(today > yesterday && today - yesterday <= 25 * 3600 * 1_000_000_000);
        let two_hours = parse_time("2h").unwrap();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        assert!(now - two_hours >= 7_200_000_000_000 && now - two_hours < 7_260_000_000_000);
        let err = parse_time("04/12/2026").unwrap_err().to_string();
        assert!(err.contains("is not a time"), "{err}");
    }

    #[test]
    fn a_typed_path_becomes_the_path_the_record_holds() {
        let tmp = tempfile::tempdir().unwrap();
        let base = std::fs::canonicalize(tmp.path()).unwrap();
        let base = base.to_str().unwrap();
        std::fs::create_dir(tmp.path().join("cards")).unwrap();
        std::fs::write(tmp.path().join("cards/c.json"), b"{}").unwrap();
        std::os::unix::fs::symlink("cards/c.json", tmp.path().join("link")).unwrap();
        let real = format!("{base}/cards/c.json");
        assert_eq!(record_path(&format!("{base}/link")).unwrap(), real);
        assert_eq!(
            record_path(&format!("{base}//cards/./c.json")).unwrap(),
            real
        );
        assert_eq!(
            record_path(&format!("{base}/cards")).unwrap(),
            format!("{base}/cards/")
        );
        // Gone from disk, or typed escaped: folded only.
        assert_eq!(
            record_path(&format!("{base}//gone/../cards/old.json")).unwrap(),
            format!("{base}/cards/old.json")
        );
        assert_eq!(record_path("/srv//x/\\xff").unwrap(), "/srv/x/\\xff");
        assert_eq!(record_path("/srv/gone/").unwrap(), "/srv/gone/");
        let rel = record_path("some/relative").unwrap();
        assert!(
            rel.starts_with('/') && rel.ends_with("/some/relative"),
            "{rel}"
        );
        assert!(record_path("").is_err());
    }

    #[test]
    fn until_before_since_is_refused_not_answered_empty() {
        let args = FilterArgs {
            since: Some("2026-12-04T05:00:00Z".into()),
            until: Some("2026-12-04T04:00:00Z".into()),
            ..FilterArgs::default()
        };
        let err = args.filter().unwrap_err().to_string();
        assert!(err.contains("is before --since"), "{err}");
    }
}
