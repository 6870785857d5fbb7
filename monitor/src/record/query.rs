//! Queries over the record, newest first, each answered from an index:
//! by time, by role, by object (path), by fingerprint, or alerts only.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{be, posting, posting_prefix, Record, Store, StoreError};
use crate::model::Action;
use crate::model::Severity;

/// Filters shared by every query.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Filter {
    /// Only records at or after this time (ns since the epoch).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since_ns: Option<u64>,
    /// Only records before this time (ns since the epoch).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub until_ns: Option<u64>,
    /// Only this role.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Only this user name: the process's, or the login's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Only this data class.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
    /// Only objects equal to this path, or under it when it ends in `/`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Only alerts of at least this severity.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub severity: Option<Severity>,
    /// Only this action.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<Action>,
    /// Only records whose destination is this host name (or a name under
    /// it: `openai.com` takes `api.openai.com`) or starts with this address
    /// (`203.0.113.9`, `203.0.113.9:443`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dest: Option<String>,
    /// Only records of TLS connections (`Some(true)`) or of plain ones.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<bool>,
    /// At most this many records (newest first).
    pub limit: usize,
}

/// A role's activity, summarised.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleSummary {
    /// The role.
    pub role: String,
    /// Records considered.
    pub records: u64,
    /// Of which alerts.
    pub alerts: u64,
    /// Counts by action and class (`read cardholder-data`).
    pub by_action_class: BTreeMap<String, u64>,
    /// Counts by user.
    pub by_user: BTreeMap<String, u64>,
    /// The most touched objects, with counts (at most 20).
    pub top_objects: Vec<(String, u64)>,
}

/// What a role actually used over a time range: the ground of a
/// least-data policy (`monitor policy suggest`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RoleUsage {
    /// The role.
    pub role: String,
    /// Records considered.
    pub records: u64,
    /// The first and last record's time (ns).
    pub first_ns: u64,
    /// The last.
    pub last_ns: u64,
    /// Classes read, with counts (attempts included: a failed read of a
    /// class the role needs is still a need).
    pub read: BTreeMap<String, u64>,
    /// Classes written, created, deleted or renamed, with counts.
    pub write: BTreeMap<String, u64>,
    /// Destinations connected or sent to (`addr:port`), with counts.
    pub egress: BTreeMap<String, u64>,
    /// PII types sent, with counts.
    pub pii_sent: BTreeMap<String, u64>,
}

impl Filter {
    fn time_range(&self) -> (u64, u64) {
        (
            self.since_ns.unwrap_or(0),
            self.until_ns.unwrap_or(u64::MAX),
        )
    }

    fn admits(&self, r: &Record) -> bool {
        let (since, until) = self.time_range();
        r.time_ns >= since
            && r.time_ns < until
            && self.role.as_deref().is_none_or(|x| x == &*r.role)
            && self.user.as_deref().is_none_or(|x| {
                r.user.as_deref() == Some(x)
                    || r.context
                        .as_ref()
                        .is_some_and(|c| c.login_user.as_deref() == Some(x))
            })
            && self
                .class
                .as_deref()
                .is_none_or(|x| r.class.as_deref() == Some(x))
            && self.action.is_none_or(|a| {
                a == r.action || (a, r.action) == (Action::Query, Action::QueryRefused)
            })
            && self
                .path
                .as_deref()
                .is_none_or(|p| object_matches(p, &r.object))
            && self
                .severity
                .is_none_or(|s| r.alert.as_ref().is_some_and(|a| a.severity >= s))
            && self.dest.as_deref().is_none_or(|d| dest_matches(d, r))
            && self.tls.is_none_or(|t| t == r.tls)
    }
}

/// The records a query found, newest first, and how many matched in all.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Found {
    /// The records, at most the filter's limit.
    pub records: Vec<Record>,
    /// How many matched, those the limit left out included.
    pub total: Total,
}

/// How many records matched a query.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Total {
    /// Records counted.
    pub count: u64,
    /// False when counting stopped at a bound: at least `count` matched.
    pub exact: bool,
}

/// Past the limit, matches the posting list alone answers for are counted
/// up to this many.
pub const COUNT_FROM_LIST: u64 = 200_000;
/// Past the limit, when each record must be read to test the filter, at
/// most this many more are read to count.
pub const COUNT_BY_READING: u64 = 10_000;

/// Takes a query's matches off a posting list, newest first: the records
/// up to the limit, then a bounded count of the rest.
struct Collect<'a> {
    store: &'a Store,
    filter: &'a Filter,
    alerts_only: bool,
    /// The posting list says everything the filter asks but the time.
    from_list: bool,
    limit: usize,
    records: Vec<Record>,
    count: u64,
    read_past: u64,
    exact: bool,
}

impl<'a> Collect<'a> {
    fn new(store: &'a Store, filter: &'a Filter, alerts_only: bool, from_list: bool) -> Self {
        Self {
            store,
            filter,
            alerts_only,
            from_list,
            limit: if filter.limit == 0 {
                usize::MAX
            } else {
                filter.limit
            },
            records: Vec::new(),
            count: 0,
            read_past: 0,
            exact: true,
        }
    }

    /// Takes one (time, seq) pair; false once counting must stop.
    fn take(&mut self, time: u64, seq: u64) -> Result<bool, StoreError> {
        let (since, until) = self.filter.time_range();
        if time < since || time >= until {
            return Ok(true);
        }
        if self.records.len() < self.limit {
            if let Some(r) = self.matching(seq)? {
                self.records.push(r);
                self.count += 1;
            }
            return Ok(true);
        }
        let past = self.count - self.records.len() as u64;
        if self.from_list {
            if past >= COUNT_FROM_LIST {
                self.exact = false;
                return Ok(false);
            }
            self.count += 1;
            return Ok(true);
        }
        if self.read_past >= COUNT_BY_READING {
            self.exact = false;
            return Ok(false);
        }
        self.read_past += 1;
        if self.matching(seq)?.is_some() {
            self.count += 1;
        }
        Ok(true)
    }

    fn matching(&self, seq: u64) -> Result<Option<Record>, StoreError> {
        Ok(self
            .store
            .get(seq)?
            .filter(|r| self.filter.admits(r) && (!self.alerts_only || r.alert.is_some())))
    }

    fn found(self) -> Found {
        Found {
            records: self.records,
            total: Total {
                count: self.count,
                exact: self.exact,
            },
        }
    }
}

/// Whether `r` went to `dest`: its host name or a parent domain of it, or
/// its address (with or without the port).
fn dest_matches(dest: &str, r: &Record) -> bool {
    let by_name = r.dest_host.as_deref().is_some_and(|h| {
        let (h, d) = (h.as_bytes(), dest.as_bytes());
        h.eq_ignore_ascii_case(d)
            || h.len() > d.len()
                && h[h.len() - d.len()..].eq_ignore_ascii_case(d)
                && h[h.len() - d.len() - 1] == b'.'
    });
    let by_address = matches!(r.action, Action::Connect | Action::Send | Action::Transfer)
        && (r.object == dest
            || r.object
                .strip_prefix(dest)
                .is_some_and(|rest| rest.starts_with(':')));
    by_name || by_address
}

fn object_matches(path: &str, object: &str) -> bool {
    if path.ends_with('/') {
        object.starts_with(path)
    } else {
        object == path
    }
}

impl Store {
    /// The roles that records carry (from the role index), sorted.
    pub fn recorded_roles(&self) -> Result<Vec<String>, StoreError> {
        let mut names = std::collections::BTreeSet::new();
        for item in self.index()?.scan_prefix([posting::ROLE]) {
            let (key, _) = item?;
            // kind ‖ name ‖ 0 ‖ first seq (8 bytes)
            if let Some(name) = key.len().checked_sub(9).and_then(|end| key.get(1..end)) {
                names.insert(String::from_utf8_lossy(name).into_owned());
            }
        }
        for name in self.pending_names(posting::ROLE) {
            names.insert(name);
        }
        Ok(names.into_iter().collect())
    }

    /// Visits the (time, seq) pairs of one posting list, newest first, until
    /// `visit` says stop.
    fn newest(
        &self,
        kind: u8,
        name: &str,
        mut visit: impl FnMut(u64, u64) -> Result<bool, StoreError>,
    ) -> Result<(), StoreError> {
        for p in self.pending_pairs(kind, name, false).chunks_exact(16).rev() {
            if !visit(be(p), be(&p[8..]))? {
                return Ok(());
            }
        }
        for item in self.index()?.scan_prefix(posting_prefix(kind, name)).rev() {
            let (_, pairs) = item?;
            for p in pairs.chunks_exact(16).rev() {
                if !visit(be(p), be(&p[8..]))? {
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// Records matching `f`, newest first, at most its `limit`, and how
    /// many matched in all. With `alerts_only`, only records that raised an
    /// alert.
    pub fn events(&self, f: &Filter, alerts_only: bool) -> Result<Found, StoreError> {
        // Which posting list answers, and whether it says all the filter asks
        // beyond the time range (then matches past the limit are counted
        // from the list alone, without reading them).
        let by_dir = f.path.as_deref().is_some_and(|p| p.ends_with('/'));
        let rest = Filter {
            since_ns: None,
            until_ns: None,
            limit: 0,
            ..f.clone()
        };
        let bare = |g: Filter| g == Filter::default();
        let (kind, name, from_list) = match (&f.path, &f.role) {
            (Some(path), _) => (
                posting::OBJECT,
                path.as_str(),
                !alerts_only && bare(Filter { path: None, ..rest }),
            ),
            (None, Some(role)) => (
                posting::ROLE,
                role.as_str(),
                !alerts_only && bare(Filter { role: None, ..rest }),
            ),
            (None, None) if alerts_only || f.severity.is_some() => (posting::ALERT, "", bare(rest)),
            (None, None) => (posting::ALL, "", bare(rest)),
        };
        let mut c = Collect::new(self, f, alerts_only, from_list);
        if by_dir {
            // A directory: every object under it, merged newest first.
            let held = self.pending_pairs(posting::OBJECT, name, true);
            let mut pairs: Vec<(u64, u64)> = held
                .chunks_exact(16)
                .map(|p| (be(&p[8..]), be(p)))
                .collect();
            let mut prefix = vec![posting::OBJECT];
            prefix.extend_from_slice(name.as_bytes());
            for item in self.index()?.scan_prefix(prefix) {
                let (_, list) = item?;
                pairs.extend(list.chunks_exact(16).map(|p| (be(&p[8..]), be(p))));
            }
            pairs.sort_unstable_by(|a, b| b.cmp(a));
            pairs.dedup();
            for (seq, time) in pairs {
                if !c.take(time, seq)? {
                    break;
                }
            }
        } else {
            self.newest(kind, name, |time, seq| c.take(time, seq))?;
        }
        Ok(c.found())
    }

    /// Who touched `path` (or anything under it, when it ends in `/`).
    pub fn who_accessed(&self, path: &str, f: &Filter) -> Result<Found, StoreError> {
        let f = Filter {
            path: Some(path.to_owned()),
            ..f.clone()
        };
        self.events(&f, false)
    }

    /// Where a value with this fingerprint was seen, newest first.
    pub fn trace(&self, fingerprint: &str, f: &Filter) -> Result<Found, StoreError> {
        let mut c = Collect::new(self, f, false, false);
        let mut last = None;
        self.newest(posting::FINGERPRINT, fingerprint, |time, seq| {
            // A record holding the value twice is listed once.
            if last.replace(seq) == Some(seq) {
                return Ok(true);
            }
            c.take(time, seq)
        })?;
        Ok(c.found())
    }

    /// What `role` used over the filter's time range.
    pub fn role_usage(&self, role: &str, f: &Filter) -> Result<RoleUsage, StoreError> {
        let f = Filter {
            role: Some(role.to_owned()),
            limit: 0,
            ..f.clone()
        };
        let mut u = RoleUsage {
            role: role.to_owned(),
            first_ns: u64::MAX,
            ..RoleUsage::default()
        };
        for r in self.events(&f, false)?.records {
            u.records += 1;
            u.first_ns = u.first_ns.min(r.time_ns);
            u.last_ns = u.last_ns.max(r.time_ns);
            if let Some(class) = r.class.as_deref().filter(|_| r.action.on_files()) {
                let to = if r.action.writes() {
                    &mut u.write
                } else {
                    &mut u.read
                };
                *to.entry(class.to_owned()).or_default() += 1;
            }
            if matches!(r.action, Action::Connect | Action::Send) {
                *u.egress.entry(r.object.clone()).or_default() += 1;
                for f in &r.findings {
                    *u.pii_sent.entry(f.kind.clone()).or_default() += 1;
                }
            }
        }
        if u.records == 0 {
            u.first_ns = 0;
        }
        Ok(u)
    }

    /// What `role` did, summarised.
    pub fn role_summary(&self, role: &str, f: &Filter) -> Result<RoleSummary, StoreError> {
        let f = Filter {
            role: Some(role.to_owned()),
            limit: 0,
            ..f.clone()
        };
        let mut s = RoleSummary {
            role: role.to_owned(),
            ..RoleSummary::default()
        };
        let mut objects: BTreeMap<String, u64> = BTreeMap::new();
        for r in self.events(&f, false)?.records {
            s.records += 1;
            s.alerts += u64::from(r.alert.is_some());
            let class = r.class.as_deref().unwrap_or("unclassified");
            *s.by_action_class
                .entry(format!("{} {class}", r.action.name()))
                .or_default() += 1;
            *s.by_user
                .entry(
                    r.user
                        .as_deref()
                        .map_or_else(|| r.uid.to_string(), str::to_owned),
                )
                .or_default() += 1;
            *objects.entry(r.object).or_default() += 1;
        }
        let mut top: Vec<(String, u64)> = objects.into_iter().collect();
        top.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        top.truncate(20);
        s.top_objects = top;
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn dest_and_tls_filters() {
        use crate::model::Action;
        let mut r = crate::record::tests::record(1, "chatbot", "203.0.113.9:443");
        r.action = Action::Send;
        r.dest_host = Some("api.openai.com".into());
        r.tls = true;
        let f = |dest: Option<&str>, tls: Option<bool>| super::Filter {
            dest: dest.map(str::to_owned),
            tls,
            ..super::Filter::default()
        };
        for yes in [
            "api.openai.com",
            "openai.com",
            "OpenAI.com",
            "203.0.113.9",
            "203.0.113.9:443",
        ] {
            assert!(f(Some(yes), None).admits(&r), "{yes}");
        }
        for no in [
            "penai.com",
            "ai.com.evil",
            "203.0.113.90",
            "203.0.113.9:4",
            "api.openai.com.evil",
        ] {
            assert!(!f(Some(no), None).admits(&r), "{no}");
        }
        assert!(f(None, Some(true)).admits(&r) && !f(None, Some(false)).admits(&r));
        // A file is no destination, whatever its name.
        let file = crate::record::tests::record(1, "chatbot", "203.0.113.9");
        assert!(!f(Some("203.0.113.9"), None).admits(&file));
    }

    use super::super::tests::record;
    use super::super::Store;
    use super::*;
    use crate::event::PiiFinding;
    use crate::model::Alert;

    const FP: &str = "00112233445566778899aabbccddeeff";

    fn store() -> (Store, tempfile::TempDir) {
        let d = tempfile::tempdir().unwrap();
        (
            Store::open(&d.path().join("db"), &d.path().join("k")).unwrap(),
            d,
        )
    }

    #[test]
    fn queries_use_their_index_and_filters() {
        let (s, _dir) = store();
        let mut batch = vec![
            record(10, "billing-agent", "/srv/cardholder/a.csv"),
            record(20, "support-agent", "/srv/cardholder/b.csv"),
            record(30, "billing-agent", "/srv/cardholder/a.csv"),
            record(40, "chatbot", "127.0.0.1:9000"),
        ];
        batch[1].alert = Some(Alert {
            explain: None,
            severity: Severity::High,
            rule: "class-read".into(),
            message: "m".into(),
        });
        batch[3].findings = vec![PiiFinding {
            kind: "CREDIT_CARD".into(),
            start: 0,
            end: 16,
            score: 1.0,
            masked: "411111******1111".into(),
            fingerprint: FP.parse().unwrap(),
            field: None,
        }];
        batch[3].action = Action::Send;
        s.append(&mut batch).unwrap();
        let all = Filter::default();
        let who = s
            .who_accessed("/srv/cardholder/a.csv", &all)
            .unwrap()
            .records;
        assert_eq!(who.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![3, 1]);
        let dir_hits = s.who_accessed("/srv/cardholder/", &all).unwrap().records;
        assert_eq!(
            dir_hits.iter().map(|r| r.seq).collect::<Vec<_>>(),
            vec![3, 2, 1]
        );
        let since = Filter {
            since_ns: Some(15),
            ..Filter::default()
        };
        assert_eq!(
            s.who_accessed("/srv/cardholder/a.csv", &since)
                .unwrap()
                .records
                .len(),
            1
        );
        let alerts = s.events(&all, true).unwrap().records;
        assert_eq!(alerts.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![2]);
        let crit = Filter {
            severity: Some(Severity::Critical),
            ..Filter::default()
        };
        assert!(s.events(&crit, true).unwrap().records.is_empty());
        let by_role = Filter {
            role: Some("billing-agent".into()),
            limit: 1,
            ..Filter::default()
        };
        assert_eq!(s.events(&by_role, false).unwrap().records[0].seq, 3);
        assert_eq!(s.trace(FP, &all).unwrap().records[0].seq, 4);
        assert!(s.trace("abc12", &all).unwrap().records.is_empty());
        let sum = s.role_summary("billing-agent", &all).unwrap();
        assert_eq!(sum.records, 2);
        assert_eq!(sum.by_action_class["read cardholder-data"], 2);
        assert_eq!(sum.top_objects[0], ("/srv/cardholder/a.csv".to_owned(), 2));
        drop(s);
    }

    #[test]
    fn a_limited_answer_counts_what_it_left_out() {
        let (s, _dir) = store();
        let mut batch: Vec<Record> = (0..250u64)
            .map(|i| {
                let role = if i % 5 == 0 {
                    "chatbot"
                } else {
                    "billing-agent"
                };
                record(i + 1, role, &format!("/srv/cardholder/{}.csv", i % 2))
            })
            .collect();
        s.append(&mut batch).unwrap();
        let limited = |g: Filter| Filter { limit: 10, ..g };
        let total = |found: Found| (found.records.len(), found.total);
        let exact = |count| Total { count, exact: true };
        // Counted from the posting list alone.
        assert_eq!(
            total(s.events(&limited(Filter::default()), false).unwrap()),
            (10, exact(250))
        );
        assert_eq!(
            total(
                s.who_accessed("/srv/cardholder/0.csv", &limited(Filter::default()))
                    .unwrap()
            ),
            (10, exact(125))
        );
        // Counted by reading: the role is not the list's.
        let chatbot_reads = Filter {
            role: Some("chatbot".into()),
            path: Some("/srv/cardholder/".into()),
            since_ns: Some(101),
            ..Filter::default()
        };
        assert_eq!(
            total(s.events(&limited(chatbot_reads), false).unwrap()),
            (10, exact(30))
        );
        // Under the limit, the count is the records.
        assert_eq!(
            total(
                s.who_accessed("/srv/cardholder/", &Filter::default())
                    .unwrap()
            ),
            (250, exact(250))
        );
    }
}
