//! The analyst's commands (`monitor events`, `alerts`, `who-accessed`,
//! `role`, `trace-pii`, `verify`): send one request to the daemon's query
//! socket and print the answer as a table, or as JSON with `--json`.

use std::io::{BufRead as _, BufReader, Write as _};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context as _};
use clap::Args;

use crate::model::Action;
use crate::model::Record;
use crate::model::Severity;
use crate::record::query::{Filter, RoleSummary, Total};
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
    /// Tables: every cell whole (not cut to the terminal), the executable
    /// for the process, every masked finding.
    #[arg(long, global = true)]
    pub wide: bool,
    /// Tables: times in UTC rather than local time (`TZ`).
    #[arg(long, global = true)]
    pub utc: bool,
    /// Oldest first (the newest records are still the ones --limit keeps).
    #[arg(long, global = true)]
    pub reverse: bool,
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
    /// Only this user: the process's user, or the user who logged in to
    /// start it (so `sudo` and `su` sessions count).
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
    /// Only what went to this host name (or one under it) or address.
    #[arg(long)]
    pub dest: Option<String>,
    /// Only TLS connections (`--tls`), or only plain ones (`--tls=false`).
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub tls: Option<bool>,
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
                return Ok(crate::model::unix_ns(then));
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
            dest: self.dest.clone(),
            tls: self.tls,
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

/// `alerts --summary`: counts over the window and the bursts.
#[derive(Debug, Default, serde::Serialize)]
pub struct AlertSummary {
    /// Alerts read.
    pub alerts: usize,
    /// The oldest and newest alert's time (ns).
    pub span_ns: Option<(u64, u64)>,
    /// Counts by severity, highest first.
    pub by_severity: Vec<(String, usize)>,
    /// Counts by rule, most first.
    pub by_rule: Vec<(String, usize)>,
    /// Counts by role, most first.
    pub by_role: Vec<(String, usize)>,
    /// Counts by user, most first.
    pub by_user: Vec<(String, usize)>,
    /// One row per burst: the same rule from the same process, newest first.
    pub bursts: Vec<Burst>,
}

/// Alerts of one rule from one process, in a row.
#[derive(Debug, serde::Serialize)]
pub struct Burst {
    /// The first alert of the burst (its fields stand for all).
    pub first: Record,
    /// The last alert's time (ns).
    pub last_ns: u64,
    /// How many alerts.
    pub count: usize,
    /// Distinct objects among them.
    pub objects: usize,
}

impl AlertSummary {
    /// Counts and bursts of `alerts` (newest first, as the daemon answers).
    pub fn of(alerts: &[Record]) -> Self {
        use std::collections::HashMap;
        fn ranked(counts: HashMap<String, usize>) -> Vec<(String, usize)> {
            let mut v: Vec<_> = counts.into_iter().collect();
            v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            v
        }
        let mut sev: HashMap<String, usize> = HashMap::new();
        let mut rule: HashMap<String, usize> = HashMap::new();
        let mut role: HashMap<String, usize> = HashMap::new();
        let mut user: HashMap<String, usize> = HashMap::new();
        let mut bursts: Vec<Burst> = Vec::new();
        let mut open: HashMap<(String, u32, String), usize> = HashMap::new();
        let mut objects: Vec<std::collections::HashSet<String>> = Vec::new();
        // Oldest first, so a burst's first alert is its earliest.
        for r in alerts.iter().rev() {
            let Some(a) = &r.alert else { continue };
            *sev.entry(a.severity.name().to_owned()).or_default() += 1;
            *rule.entry(a.rule.clone()).or_default() += 1;
            *role.entry(r.role.to_string()).or_default() += 1;
            let who = r
                .user
                .as_deref()
                .map_or_else(|| r.uid.to_string(), str::to_owned);
            *user.entry(who).or_default() += 1;
            // The same rule from the same process (pid and name) with no
            // gap of ten minutes is one burst.
            let key = (a.rule.clone(), r.pid, r.comm.clone());
            match open.get(&key).copied() {
                Some(i) if r.time_ns.saturating_sub(bursts[i].last_ns) <= 600_000_000_000 => {
                    bursts[i].last_ns = r.time_ns;
                    bursts[i].count += 1;
                    objects[i].insert(r.object.clone());
                    bursts[i].objects = objects[i].len();
                }
                _ => {
                    open.insert(key, bursts.len());
                    objects.push([r.object.clone()].into_iter().collect());
                    bursts.push(Burst {
                        first: r.clone(),
                        last_ns: r.time_ns,
                        count: 1,
                        objects: 1,
                    });
                }
            }
        }
        bursts.reverse();
        let mut by_severity = ranked(sev);
        let rank = |s: &str| s.parse::<Severity>().map_or(0, |s| s as u8);
        by_severity.sort_by_key(|(s, _)| std::cmp::Reverse(rank(s)));
        Self {
            alerts: alerts.len(),
            span_ns: alerts
                .last()
                .zip(alerts.first())
                .map(|(old, new)| (old.time_ns, new.time_ns)),
            by_severity,
            by_rule: ranked(rule),
            by_role: ranked(role),
            by_user: ranked(user),
            bursts,
        }
    }

    /// The summary for people.
    pub fn text(&self, style: &TableStyle) -> String {
        let mut out = String::new();
        let at = |ns: u64| time_text(ns, style.utc).unwrap_or_default();
        match self.span_ns {
            Some((from, to)) => out.push_str(&format!(
                "{} alert{} from {} to {}\n",
                self.alerts,
                if self.alerts == 1 { "" } else { "s" },
                at(from),
                at(to)
            )),
            None => out.push_str("0 alerts\n"),
        }
        if let Some(cut) = cut_note(self.alerts, "alert", style) {
            out.push_str(&format!("({cut}; older ones are not counted)\n"));
        }
        for (title, counts) in [
            ("severity", &self.by_severity),
            ("rule", &self.by_rule),
            ("role", &self.by_role),
            ("user", &self.by_user),
        ] {
            out.push('\n');
            let mut rows = vec![vec![title.to_uppercase(), "ALERTS".to_owned()]];
            rows.extend(counts.iter().map(|(k, n)| vec![visible(k), n.to_string()]));
            out.push_str(&table(&rows));
        }
        out.push('\n');
        let mut rows = vec![[
            "FIRST", "LAST", "×", "SEVERITY", "RULE", "ROLE", "USER", "PROCESS", "OBJECT",
        ]
        .map(str::to_owned)
        .to_vec()];
        for b in &self.bursts {
            let r = &b.first;
            let a = r.alert.as_ref();
            let object = if b.objects > 1 {
                format!("{} (+{} more)", object(r), b.objects - 1)
            } else {
                object(r)
            };
            rows.push(vec![
                when(r, style.utc),
                at(b.last_ns),
                b.count.to_string(),
                a.map_or("", |a| a.severity.name()).to_owned(),
                visible(a.map_or("", |a| a.rule.as_str())),
                visible(&r.role),
                visible(
                    &r.user
                        .as_deref()
                        .map_or_else(|| r.uid.to_string(), str::to_owned),
                ),
                process(r, style.wide),
                object,
            ]);
        }
        if let Some(w) = style.width {
            fit(&mut rows, w, &[7, 5, 1]);
        }
        out.push_str(&table(&rows));
        out
    }
}

/// How a table of records is drawn.
#[derive(Debug, Clone, Default)]
pub struct TableStyle {
    /// Fit each line to this many columns (the terminal's), cutting long
    /// objects in the middle; `None` draws every cell whole.
    pub width: Option<usize>,
    /// Every cell whole, the executable for the process, each finding's
    /// masked value.
    pub wide: bool,
    /// Times in UTC (RFC 3339) rather than local time.
    pub utc: bool,
    /// The `--limit` the records were asked with (0: none).
    pub limit: usize,
    /// How many records matched in all, as the daemon counted them.
    pub total: Option<Total>,
}

impl TableStyle {
    /// The style for this terminal: its width when standard output is one
    /// (`COLUMNS` first), none when piped.
    pub fn for_stdout(wide: bool, utc: bool, limit: usize) -> Self {
        use std::io::IsTerminal as _;
        let width = (!wide && std::io::stdout().is_terminal())
            .then(terminal_width)
            .flatten();
        Self {
            width,
            wide,
            utc,
            limit,
            total: None,
        }
    }
}

/// The terminal's width: `COLUMNS`, else the window size of standard output.
fn terminal_width() -> Option<usize> {
    if let Some(n) = std::env::var("COLUMNS").ok().and_then(|c| c.parse().ok()) {
        return Some(n);
    }
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one winsize into the valid struct given.
    let rc = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut ws) };
    (rc == 0 && ws.ws_col > 0).then_some(usize::from(ws.ws_col))
}

/// A record's time for people: local time to the second (honouring `TZ`),
/// or UTC.
fn when(r: &Record, utc: bool) -> String {
    time_text(r.time_ns, utc).unwrap_or_else(|| r.time.clone())
}

/// Nanoseconds since the epoch as [`when`] writes them.
fn time_text(ns: u64, utc: bool) -> Option<String> {
    let ts = jiff::Timestamp::from_nanosecond(i128::from(ns)).ok()?;
    Some(if utc {
        ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
    } else {
        ts.to_zoned(jiff::tz::TimeZone::system())
            .strftime("%Y-%m-%d %H:%M:%S")
            .to_string()
    })
}

/// The process: `comm[pid]`, or the executable in the wide form.
fn process(r: &Record, wide: bool) -> String {
    let name = match (&r.exe, wide) {
        (Some(exe), true) => exe.to_string(),
        _ => r.comm.clone(),
    };
    visible(&format!("{name}[{}]", r.pid))
}

/// The object, and for network actions where it went: the host name the
/// connection named (TLS SNI or HTTP `Host`), the address, and whether it
/// was TLS.
fn object(r: &Record) -> String {
    let mut out = match &r.dest_host {
        Some(host) => format!("{host} ({})", r.object),
        None => r.object.clone(),
    };
    if r.tls {
        out.push_str(" TLS");
    }
    if let Some(via) = &r.via {
        out.push_str(&format!(" via {via}"));
    }
    visible(&out)
}

/// Findings by type, in order of first appearance: `CREDIT_CARD
/// 411111******1111` for one, `CREDIT_CARD×4` for several (every masked
/// value in the wide form).
fn findings(r: &Record, wide: bool) -> String {
    let mut kinds: Vec<(&str, Vec<&str>)> = Vec::new();
    for f in &r.findings {
        let masked = f.masked.as_ref();
        match kinds.iter_mut().find(|(k, _)| *k == f.kind.as_str()) {
            Some((_, values)) => values.push(masked),
            None => kinds.push((f.kind.as_str(), vec![masked])),
        }
    }
    let parts: Vec<String> = kinds
        .iter()
        .map(|(kind, values)| match values.len() {
            1 => format!("{kind} {}", values[0]),
            n if wide => format!("{kind}×{n} {}", values.join(" ")),
            n => format!("{kind}×{n}"),
        })
        .collect();
    visible(&parts.join(", "))
}

/// `s` cut to `max` characters by taking out its middle (a path keeps its
/// start and its file name).
fn cut_middle(s: &str, max: usize) -> String {
    let n = s.chars().count();
    if n <= max {
        return s.to_owned();
    }
    if max < 3 {
        return s.chars().take(max).collect();
    }
    let tail = (max - 1) / 2;
    let head = max - 1 - tail;
    let mut out: String = s.chars().take(head).collect();
    out.push('…');
    out.extend(s.chars().skip(n - tail));
    out
}

/// Renders records as a table for people: one line per record whatever
/// the names hold.
pub fn records_table(records: &[Record], alerts: bool, style: &TableStyle) -> String {
    let header: &[&str] = if alerts {
        &[
            "TIME", "SEVERITY", "USER", "ROLE", "PROCESS", "RULE", "FINDINGS", "MESSAGE",
        ]
    } else {
        &[
            "TIME", "USER", "ROLE", "PROCESS", "ACTION", "CLASS", "OUTCOME", "FINDINGS", "OBJECT",
        ]
    };
    let mut rows = vec![header.iter().map(|h| (*h).to_owned()).collect::<Vec<_>>()];
    for r in records {
        // Names are an attacker's to choose: nothing in a cell moves the
        // cursor, rings, starts a new row or reverses the text.
        let mut user = r
            .user
            .as_deref()
            .map_or_else(|| r.uid.to_string(), str::to_owned);
        // Who logged in, when the process took another uid (`root (maria)`).
        if let Some(login) = r.context.as_ref().and_then(|c| {
            c.login_user
                .as_deref()
                .map(str::to_owned)
                .or_else(|| c.login_uid.map(|u| u.to_string()))
        }) {
            if login != user {
                user = format!("{user} ({login})");
            }
        }
        let user = visible(&user);
        let role = visible(&r.role);
        let found = findings(r, style.wide);
        rows.push(if alerts {
            let (sev, rule, msg) = r.alert.as_ref().map_or(("", "", ""), |a| {
                (a.severity.name(), a.rule.as_str(), a.message.as_str())
            });
            // An alert names what it is about, even when its message does not.
            let named =
                msg.contains(&r.object) || r.dest_host.as_deref().is_some_and(|h| msg.contains(h));
            let message = match (msg.is_empty(), named) {
                (_, true) => msg.to_owned(),
                (true, false) => object(r),
                (false, false) => format!("{msg}: {}", object(r)),
            };
            vec![
                when(r, style.utc),
                sev.to_owned(),
                user,
                role,
                process(r, style.wide),
                visible(rule),
                found,
                visible(&message),
            ]
        } else {
            let outcome = match r.outcome {
                crate::model::Outcome::Allowed => "allowed",
                crate::model::Outcome::Violation => "VIOLATION",
                crate::model::Outcome::Failed => "failed",
                crate::model::Outcome::Refused => "REFUSED",
            };
            vec![
                when(r, style.utc),
                user,
                role,
                process(r, style.wide),
                // A record of repeats says how many accesses it stands for.
                match r.count() {
                    1 => r.action.name().to_owned(),
                    n => format!("{} x{n}", r.action.name()),
                },
                visible(r.class.as_deref().unwrap_or("-")),
                outcome.to_owned(),
                found,
                object(r),
            ]
        });
    }
    // Left out first when the terminal is narrow: class, process, outcome,
    // role (alerts: process, role, rule).
    let drop: &[usize] = if alerts { &[4, 3, 5] } else { &[5, 3, 6, 2] };
    let dropped = style.width.is_some_and(|w| fit(&mut rows, w, drop));
    let mut out = table(&rows);
    let n = records.len();
    match cut_note(n, "record", style) {
        Some(cut) => out.push_str(&format!("({cut}; --limit 0 for all")),
        None => out.push_str(&format!("({n} record{}", if n == 1 { "" } else { "s" })),
    }
    if dropped {
        out.push_str("; --wide for every column");
    }
    out.push_str(")\n");
    out
}

/// What the limit left out, when it cut the answer: `showing the newest
/// 100 of 2,314 records` (`of at least` when the daemon stopped counting).
fn cut_note(shown: usize, what: &str, style: &TableStyle) -> Option<String> {
    let shown = shown as u64;
    match style.total {
        Some(t) if t.count > shown => Some(format!(
            "showing the newest {} of {}{} {what}s",
            thousands(shown),
            if t.exact { "" } else { "at least " },
            thousands(t.count)
        )),
        Some(_) => None,
        // A daemon that does not count: say only that the limit was reached.
        None => (style.limit > 0 && shown >= style.limit as u64).then(|| {
            format!(
                "showing the newest {}, the --limit; more may match",
                thousands(shown)
            )
        }),
    }
}

/// `2314` as `2,314`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The narrowest the last column (the object or message) is cut to before
/// whole columns are left out.
const MIN_LAST: usize = 32;

/// Fits each line to `width`: leaves out the columns in `drop` (in that
/// order) while the last column would be narrower than [`MIN_LAST`], then
/// cuts the last column's cells in the middle, then any other that is still
/// too wide. Returns whether a column was left out.
fn fit(rows: &mut [Vec<String>], width: usize, drop: &[usize]) -> bool {
    let col_width = |rows: &[Vec<String>], c: usize| {
        rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0)
    };
    let cols = rows.first().map_or(0, Vec::len);
    let mut kept: Vec<usize> = (0..cols).collect();
    let fixed = |kept: &[usize], rows: &[Vec<String>]| {
        kept[..kept.len() - 1]
            .iter()
            .map(|&c| col_width(rows, c) + 2)
            .sum::<usize>()
    };
    let mut dropped = false;
    for c in drop {
        if fixed(&kept, rows) + MIN_LAST <= width {
            break;
        }
        kept.retain(|k| k != c);
        dropped = true;
    }
    for row in rows.iter_mut() {
        *row = kept.iter().map(|&c| std::mem::take(&mut row[c])).collect();
    }
    let last = kept.len() - 1;
    let room = width.saturating_sub(fixed(&(0..kept.len()).collect::<Vec<_>>(), rows));
    let header = rows[0][last].chars().count();
    for row in rows.iter_mut().skip(1) {
        row[last] = cut_middle(&row[last], room.max(header).max(12));
    }
    // Still too wide (a very narrow terminal): cut the widest other cells.
    for c in (0..last).rev() {
        let total = (0..=last).map(|c| col_width(rows, c) + 2).sum::<usize>() - 2;
        let over = total.saturating_sub(width);
        if over == 0 {
            break;
        }
        let header = rows[0][c].chars().count();
        let max = col_width(rows, c).saturating_sub(over).max(header).max(6);
        for row in rows.iter_mut().skip(1) {
            row[c] = cut_middle(&row[c], max);
        }
    }
    dropped
}

/// Renders a role summary for people.
pub fn summary_text(s: &RoleSummary, style: &TableStyle) -> String {
    // Each line is `  COUNT  NAME`: a name is cut in the middle to fit.
    let fit = |name: &str| match style.width {
        Some(w) => cut_middle(&visible(name), w.saturating_sub(12).max(MIN_LAST)),
        None => visible(name),
    };
    let plural = |n: u64| if n == 1 { "" } else { "s" };
    let mut out = format!(
        "role {}: {} record{}, {} alert{}\n",
        fit(&s.role),
        thousands(s.records),
        plural(s.records),
        thousands(s.alerts),
        plural(s.alerts)
    );
    out.push_str("by action and class:\n");
    for (k, n) in &s.by_action_class {
        out.push_str(&format!("  {n:>8}  {}\n", fit(k)));
    }
    out.push_str("by user:\n");
    for (k, n) in &s.by_user {
        out.push_str(&format!("  {n:>8}  {}\n", fit(k)));
    }
    out.push_str("most touched:\n");
    for (k, n) in &s.top_objects {
        out.push_str(&format!("  {n:>8}  {}\n", fit(k)));
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
        let now = crate::model::now_ns();
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

    /// A billing agent's read of a file with a hostile name, and a chatbot
    /// sending four card numbers over TLS.
    fn table_records() -> Vec<Record> {
        use crate::event::PiiFinding;
        use crate::model::{Alert, Outcome};
        let base = Record {
            seq: 1,
            host: "cc-host-01".into(),
            pid: 4242,
            exe: Some("/usr/bin/cat".into()),
            uid: 1001,
            user: Some("maria".into()),
            ..crate::record::tests::record(
                1_796_356_200_000_000_000,
                "billing-agent",
                "/srv/cardholder/disputes/2026/12/esc\u{1b}[2J\nfake row\\xff\u{202e}vsc.csv",
            )
        };
        let card = |masked: &str| PiiFinding {
            kind: "CREDIT_CARD".into(),
            start: 0,
            end: 16,
            score: 1.0,
            masked: masked.into(),
            fingerprint: "0123456789abcdef0123456789abcdef".parse().unwrap(),
            field: None,
        };
        let send = Record {
            seq: 2,
            time_ns: base.time_ns + 61_000_000_000,
            pid: 777,
            exe: Some("/opt/bot/venv/bin/python3.11".into()),
            comm: "python3".into(),
            uid: 998,
            user: Some("chatbot".into()),
            role: "chatbot".into(),
            action: Action::Send,
            object: "203.0.113.9:443".into(),
            dest_host: Some("api.model.example".into()),
            findings: vec![
                card("411111******1111"),
                card("424242******4242"),
                card("555555******4444"),
                card("378282*****0005"),
            ],
            outcome: Outcome::Violation,
            tls: true,
            alert: Some(Alert {
                explain: None,
                severity: Severity::High,
                rule: "pii-egress".into(),
                message: "role chatbot sent CREDIT_CARD to api.model.example".into(),
            }),
            ..base.clone()
        };
        vec![send, base]
    }

    #[test]
    fn tables_fit_the_terminal_and_nothing_reaches_it_raw() {
        let records = table_records();
        let style = |width: Option<usize>, wide: bool| TableStyle {
            width,
            wide,
            utc: true,
            limit: 2,
            total: Some(Total {
                count: 2314,
                exact: true,
            }),
        };
        let hidden = |c: char| {
            (c.is_control() && c != '\n')
                || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
        };
        for alerts in [false, true] {
            for (width, wide) in [(Some(80), false), (Some(160), false), (None, true)] {
                let text = records_table(&records, alerts, &style(width, wide));
                let lines: Vec<&str> = text.lines().collect();
                assert_eq!(
                    lines.len(),
                    4,
                    "a header, one line a record, a count:\n{text}"
                );
                assert!(!text.chars().any(hidden), "{text:?}");
                if let Some(w) = width {
                    for l in &lines[..3] {
                        assert!(l.chars().count() <= w, "{w}: {l}");
                    }
                }
                assert!(lines[1].contains("CREDIT_CARD×4"), "{text}");
                assert!(lines[1].contains("2026-12-04T03:51:01Z"), "{text}");
                assert!(
                    lines[2].contains("maria") && lines[2].contains("vsc.csv"),
                    "{text}"
                );
                if wide {
                    assert!(
                        text.contains("378282*****0005")
                            && text.contains("/opt/bot/venv/bin/python3.11[777]")
                    );
                    assert!(
                        text.contains("esc\\u{1b}[2J\\u{a}fake row\\xff\\u{202e}vsc.csv"),
                        "{text}"
                    );
                }
            }
        }
        // The shapes, as an analyst sees them.
        let at = |alerts: bool, width: usize| {
            records_table(&records, alerts, &style(Some(width), false))
        };
        assert_eq!(
            at(false, 80),
            "\
TIME                  USER     ACTION  FINDINGS       OBJECT
2026-12-04T03:51:01Z  chatbot  send    CREDIT_CARD×4  api.model.exa…3.9:443) TLS
2026-12-04T03:50:00Z  maria    read                   /srv/cardhold…202e}vsc.csv
(showing the newest 2 of 2,314 records; --limit 0 for all; --wide for every column)
"
        );
        assert_eq!(
            at(false, 160),
            "\
TIME                  USER     ROLE           PROCESS       ACTION  CLASS            OUTCOME    FINDINGS       OBJECT
2026-12-04T03:51:01Z  chatbot  chatbot        python3[777]  send    cardholder-data  VIOLATION  CREDIT_CARD×4  api.model.example (203.0.113.9:443) TLS
2026-12-04T03:50:00Z  maria    billing-agent  cat[4242]     read    cardholder-data  allowed                   /srv/cardholder/disputes…e row\\xff\\u{202e}vsc.csv
(showing the newest 2 of 2,314 records; --limit 0 for all)
"
        );
        assert_eq!(
            at(true, 160),
            "\
TIME                  SEVERITY  USER     ROLE           PROCESS       RULE        FINDINGS       MESSAGE
2026-12-04T03:51:01Z  high      chatbot  chatbot        python3[777]  pii-egress  CREDIT_CARD×4  role chatbot sent CREDIT_CARD to api.model.example
2026-12-04T03:50:00Z            maria    billing-agent  cat[4242]                                /srv/cardholder/disputes/2026/1…u{a}fake row\\xff\\u{202e}vsc.csv
(showing the newest 2 of 2,314 records; --limit 0 for all)
"
        );
    }

    #[test]
    fn the_count_line_says_how_many_matched_past_the_limit() {
        let records = table_records();
        let style = |limit: usize, total: Option<(u64, bool)>| TableStyle {
            utc: true,
            limit,
            total: total.map(|(count, exact)| Total { count, exact }),
            ..TableStyle::default()
        };
        let last = |style: TableStyle| {
            records_table(&records, false, &style)
                .lines()
                .last()
                .unwrap()
                .to_owned()
        };
        assert_eq!(last(style(100, Some((2, true)))), "(2 records)");
        assert_eq!(
            last(style(2, Some((1_234_567, true)))),
            "(showing the newest 2 of 1,234,567 records; --limit 0 for all)"
        );
        assert_eq!(
            last(style(2, Some((200_002, false)))),
            "(showing the newest 2 of at least 200,002 records; --limit 0 for all)"
        );
        assert_eq!(
            last(style(2, None)),
            "(showing the newest 2, the --limit; more may match; --limit 0 for all)"
        );
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
    }

    #[test]
    fn a_summary_counts_the_window_and_folds_bursts() {
        use crate::model::Alert;
        let [send, read] = <[Record; 2]>::try_from(table_records()).unwrap();
        // One process reading 33 files, a second apart, each an alert;
        // then the chatbot's send.
        let mut alerts: Vec<Record> = (0..33u64)
            .map(|i| {
                let mut r = read.clone();
                r.time_ns += i * 1_000_000_000;
                r.object = format!("/srv/cardholder/customer-{i}.json");
                r.alert = Some(Alert {
                    explain: None,
                    severity: Severity::Medium,
                    rule: "class-read".into(),
                    message: "role billing-agent read cardholder-data".into(),
                });
                r
            })
            .collect();
        alerts.push(send);
        alerts.reverse(); // the daemon answers newest first
        let s = AlertSummary::of(&alerts);
        assert_eq!(s.alerts, 34);
        assert_eq!(
            s.by_severity,
            vec![("high".into(), 1), ("medium".into(), 33)]
        );
        assert_eq!(s.by_rule[0], ("class-read".into(), 33));
        assert_eq!(s.by_user[0], ("maria".into(), 33));
        assert_eq!(s.bursts.len(), 2);
        let burst = &s.bursts[1];
        assert_eq!((burst.count, burst.objects), (33, 33));
        assert_eq!(burst.first.object, "/srv/cardholder/customer-0.json");
        let text = s.text(&TableStyle {
            utc: true,
            ..TableStyle::default()
        });
        let row = text
            .lines()
            .find(|l| l.contains("class-read") && l.contains("customer-0"))
            .unwrap_or_else(|| panic!("{text}"));
        assert!(
            row.starts_with("2026-12-04T03:50:00Z  2026-12-04T03:50:32Z  33 ")
                && row.contains("cat[4242]")
                && row.ends_with("(+32 more)"),
            "{text}"
        );
    }

    #[test]
    fn summaries_fit_the_terminal_and_nothing_reaches_it_raw() {
        let records = table_records();
        let hostile = records[1].object.clone();
        let hidden = |c: char| {
            (c.is_control() && c != '\n')
                || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
        };
        let role = RoleSummary {
            role: "billing-agent".into(),
            records: 2,
            alerts: 1,
            by_action_class: [("read cardholder-data".to_owned(), 2)].into(),
            by_user: [("maria\u{1b}[2J".to_owned(), 2)].into(),
            top_objects: vec![(hostile, 2)],
        };
        let mut alerts = records.clone();
        for r in &mut alerts {
            r.alert.get_or_insert(crate::model::Alert {
                explain: None,
                severity: Severity::Medium,
                rule: "class-read".into(),
                message: "m".into(),
            });
        }
        let alerts = AlertSummary::of(&alerts);
        for width in [80, 160] {
            let style = TableStyle {
                width: Some(width),
                utc: true,
                ..TableStyle::default()
            };
            for text in [summary_text(&role, &style), alerts.text(&style)] {
                assert!(!text.chars().any(hidden), "{text:?}");
                for l in text.lines() {
                    assert!(l.chars().count() <= width, "{width}: {l}\n{text}");
                }
                assert!(text.contains("/srv/cardhol"), "{text}");
            }
        }
        assert_eq!(
            summary_text(
                &role,
                &TableStyle {
                    width: Some(80),
                    ..TableStyle::default()
                }
            ),
            "\
role billing-agent: 2 records, 1 alert
by action and class:
         2  read cardholder-data
by user:
         2  maria\\u{1b}[2J
most touched:
         2  /srv/cardholder/disputes/2026/12/e…J\\u{a}fake row\\xff\\u{202e}vsc.csv
"
        );
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
