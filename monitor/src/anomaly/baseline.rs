//! Baselines: what each role, each user within a role and each executable
//! usually does, learned online from the record. Sets (classes,
//! destinations, PII types) remember when each item was last seen, so what
//! was not seen for `forget_days` counts as new again; rates are kept per
//! hour of the day, weekdays and weekends apart (48 slots), as an
//! exponentially weighted mean and mean absolute deviation.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::model::{Action, Record};
use crate::rules::anomaly::AnomalyRules;

/// Nanoseconds in an hour.
pub const HOUR_NS: u64 = 3_600_000_000_000;
/// Hour-of-day slots, weekdays then weekends.
pub const SLOTS: usize = 48;
/// Weight of the newest sample in a mean.
const ALPHA: f64 = 0.25;
/// Samples a slot needs before it judges anything.
pub const READY: u32 = 3;
/// Sequence numbers kept at each end of an evidence list.
const EVIDENCE_ENDS: usize = 16;

/// A record's time in the baselines' zone: hours and days since the epoch
/// (local), and the hour's slot.
#[derive(Debug, Clone, Copy)]
pub struct Local {
    /// Local hours since the epoch.
    pub hour: i64,
    /// Local days since the epoch.
    pub day: i64,
}

impl Local {
    /// `time_ns` in `rules`' zone.
    pub fn of(rules: &AnomalyRules, time_ns: u64) -> Self {
        let secs = (time_ns / 1_000_000_000) as i64;
        let offset = jiff::Timestamp::from_second(secs)
            .map(|ts| rules.tz.to_offset(ts).seconds() as i64)
            .unwrap_or(0);
        let local = secs + offset;
        Local {
            hour: local.div_euclid(3600),
            day: local.div_euclid(86_400),
        }
    }

    /// The slot of local hour `hour`.
    pub fn slot(hour: i64) -> usize {
        let day = hour.div_euclid(24);
        // 1970-01-01 was a Thursday: Monday is 0, Saturday 5.
        let weekday = (day + 3).rem_euclid(7);
        hour.rem_euclid(24) as usize + if weekday >= 5 { 24 } else { 0 }
    }

    /// The slot's name for people (`hour 03 weekday`).
    pub fn slot_name(slot: usize) -> String {
        format!(
            "hour {:02} {}",
            slot % 24,
            if slot >= 24 { "weekend" } else { "weekday" }
        )
    }
}

/// An exponentially weighted mean and mean absolute deviation.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Ewma {
    /// The mean.
    pub mean: f64,
    /// The mean absolute deviation from it.
    pub dev: f64,
    /// Samples taken.
    pub n: u32,
}

impl Ewma {
    /// Takes sample `x`.
    pub fn update(&mut self, x: f64) {
        if self.n == 0 {
            self.mean = x;
            self.dev = 0.0;
        } else {
            let d = (x - self.mean).abs();
            self.mean += ALPHA * (x - self.mean);
            self.dev += ALPHA * (d - self.dev);
        }
        self.n = self.n.saturating_add(1);
    }

    /// The value above which a sample is far above the usual: the mean plus
    /// `sigmas` deviation bands, the band at least the Poisson spread of
    /// the mean (counts vary by about their square root) and at least 1.
    pub fn threshold(&self, sigmas: f64) -> f64 {
        self.mean + sigmas * self.dev.max(self.mean.sqrt()).max(1.0)
    }
}

/// Sequence numbers and times of what a window holds: the first and the
/// last few, the count, and when the first and the last happened.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Evidence {
    /// The first seqs.
    pub first: Vec<u64>,
    /// The last seqs.
    pub last: VecDeque<u64>,
    /// How many in all.
    pub count: u64,
    /// When the first happened (ns).
    pub first_ns: u64,
    /// When the last happened (ns).
    pub last_ns: u64,
}

impl Evidence {
    /// Adds record `seq` at `t`.
    pub fn add(&mut self, seq: u64, t: u64) {
        if self.count == 0 {
            self.first_ns = t;
        }
        self.count += 1;
        self.last_ns = t;
        if self.first.len() < EVIDENCE_ENDS {
            self.first.push(seq);
        } else {
            self.last.push_back(seq);
            if self.last.len() > EVIDENCE_ENDS {
                self.last.pop_front();
            }
        }
    }

    /// The seqs kept, in order.
    pub fn seqs(&self) -> Vec<u64> {
        self.first.iter().chain(self.last.iter()).copied().collect()
    }

    /// An explanation of `observed` over `window` with these records as
    /// evidence (baseline, threshold and peers for the caller to fill).
    pub fn explain(&self, observed: f64, window: String) -> crate::model::Explain {
        crate::model::Explain {
            observed,
            baseline: None,
            threshold: None,
            peers: None,
            window,
            evidence: self.seqs(),
            count: self.count,
            first: super::rfc3339(self.first_ns),
            last: super::rfc3339(self.last_ns),
            detectors: Vec::new(),
            role_wide: false,
        }
    }
}

/// An hourly rate: one mean per slot, and the hour being counted.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Rhythm {
    /// The slots' means.
    pub slots: Vec<Ewma>,
    /// The local hour being counted (0: none yet).
    pub hour: i64,
    /// Its count so far.
    pub count: f64,
    /// Its records.
    pub evidence: Evidence,
}

impl Default for Rhythm {
    fn default() -> Self {
        Rhythm {
            slots: vec![Ewma::default(); SLOTS],
            hour: 0,
            count: 0.0,
            evidence: Evidence::default(),
        }
    }
}

impl Rhythm {
    /// Closes the hours before `hour`: the counted one is learned (cut at
    /// its threshold, so an incident does not teach that it is usual), and
    /// every silent hour since as 0 (a week of them at most).
    pub fn roll(&mut self, hour: i64, sigmas: f64) {
        if hour <= self.hour {
            return;
        }
        if self.hour != 0 {
            let s = &mut self.slots[Local::slot(self.hour)];
            let cut = if s.n >= READY {
                self.count.min(s.threshold(sigmas))
            } else {
                self.count
            };
            s.update(cut);
            let silent_from = (self.hour + 1).max(hour - 24 * 7);
            for h in silent_from..hour {
                self.slots[Local::slot(h)].update(0.0);
            }
        }
        self.hour = hour;
        self.count = 0.0;
        self.evidence = Evidence::default();
    }

    /// The usual for the current hour: its own slot once it has enough
    /// samples, else the same hour of the other kind of day (a weekend
    /// hour borrows the weekday's until it has seen enough weekends);
    /// `None` when neither has.
    pub fn usual(&self) -> Option<&Ewma> {
        let slot = Local::slot(self.hour);
        let other = (slot + 24) % SLOTS;
        [slot, other]
            .into_iter()
            .map(|i| &self.slots[i])
            .find(|e| e.n >= READY)
    }
}

/// An hour far above its usual: the count with the record added, the
/// usual and the threshold it passed, and the records that show it.
#[derive(Debug, Clone)]
pub struct Surge {
    /// The count this hour, the record included.
    pub now: f64,
    /// The usual for this hour.
    pub usual: f64,
    /// What it passed.
    pub threshold: f64,
    /// This hour's records, the new one included.
    pub evidence: Evidence,
    /// The hour's slot, for people.
    pub window: String,
}

impl Rhythm {
    /// Whether adding `added` for record `seq` at `t` puts the current
    /// hour above its usual plus `sigmas` bands (and at least `min_count`).
    pub fn surge(
        &self,
        added: f64,
        sigmas: f64,
        min_count: u64,
        seq: u64,
        t: u64,
    ) -> Option<Surge> {
        let slot = self.usual()?;
        let now = self.count + added;
        let threshold = slot.threshold(sigmas);
        if now <= threshold || now < min_count as f64 {
            return None;
        }
        let mut evidence = self.evidence.clone();
        evidence.add(seq, t);
        Some(Surge {
            now,
            usual: slot.mean,
            threshold,
            evidence,
            window: Local::slot_name(Local::slot(self.hour)),
        })
    }
}

/// A count per active day (days with none are not samples).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Daily {
    /// The local day being counted.
    pub day: i64,
    /// Its count so far.
    pub count: f64,
    /// Its records.
    pub evidence: Evidence,
    /// The mean over active days.
    pub mean: Ewma,
}

impl Daily {
    /// Closes the day before `day`.
    pub fn roll(&mut self, day: i64) {
        if day <= self.day {
            return;
        }
        if self.count > 0.0 {
            self.mean.update(self.count);
        }
        self.day = day;
        self.count = 0.0;
        self.evidence = Evidence::default();
    }
}

/// Items with when each was last seen (ns).
pub type SeenSet = BTreeMap<String, u64>;

/// Whether `key` was seen in `set` within `forget_ns` before `now`.
pub fn seen(set: &SeenSet, key: &str, now: u64, forget_ns: u64) -> bool {
    set.get(key)
        .is_some_and(|&t| now.saturating_sub(t) < forget_ns)
}

/// What an executable does in a role.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ExeBase {
    /// First seen (ns).
    pub first_seen: u64,
    /// Data classes it touched.
    pub classes: SeenSet,
}

/// What a user does in a role.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct UserBase {
    /// First seen in this role (ns).
    pub first_seen: u64,
    /// Last seen (ns).
    pub last_seen: u64,
    /// The user's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Data classes accessed.
    pub classes: SeenSet,
    /// Sensitive accesses per hour.
    pub volume: Rhythm,
    /// Sensitive accesses per day (for the peer comparison).
    pub daily: Daily,
}

/// What a role does.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RoleBase {
    /// First seen (ns).
    pub first_seen: u64,
    /// Last seen (ns).
    pub last_seen: u64,
    /// Data classes accessed.
    pub classes: SeenSet,
    /// Egress destinations (`name:port` or `addr:port`).
    pub dests: SeenSet,
    /// PII types sent.
    pub pii_types: SeenSet,
    /// Sensitive accesses per hour.
    pub volume: Rhythm,
    /// PII findings sent per hour.
    pub pii: Rhythm,
    /// Its users, by uid.
    pub users: BTreeMap<u32, UserBase>,
    /// Its executables, by path.
    pub exes: BTreeMap<String, ExeBase>,
}

/// Every role's baseline.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Baselines {
    /// By role name.
    pub roles: BTreeMap<String, RoleBase>,
}

/// Whether something first seen at `first` is still learning at `now`.
pub fn learning(first: u64, now: u64, rules: &AnomalyRules) -> bool {
    now < first.saturating_add(rules.learn_ns)
}

/// The destination a network record names: `name:port` when the name is
/// known (TLS SNI, HTTP Host), else `addr:port`; `None` for loopback.
pub fn destination(r: &Record) -> Option<String> {
    if !matches!(r.action, Action::Connect | Action::Send) {
        return None;
    }
    let (addr, port) = r.object.rsplit_once(':')?;
    let ip: std::net::IpAddr = addr.trim_matches(['[', ']']).parse().ok()?;
    if ip.is_loopback() || ip.is_unspecified() {
        return None;
    }
    Some(match &r.dest_host {
        Some(h) => format!("{h}:{port}"),
        None => r.object.clone(),
    })
}

/// The record's data class, when it is a successful file access.
pub fn file_class(r: &Record) -> Option<&str> {
    (r.action.on_files() && r.errno.is_none())
        .then_some(r.class.as_deref())
        .flatten()
}

impl Baselines {
    /// Creates what `r` is the first of and closes the hours and days
    /// before it, so the detectors see `r`'s hour and day.
    pub fn prepare(&mut self, r: &Record, at: Local, rules: &AnomalyRules) {
        let t = r.time_ns;
        let role = self
            .roles
            .entry(r.role.to_string())
            .or_insert_with(|| RoleBase {
                first_seen: t,
                ..Default::default()
            });
        let sigmas = rules.detector("access-volume").sigmas;
        role.volume.roll(at.hour, sigmas);
        role.pii
            .roll(at.hour, rules.detector("pii-egress-rate").sigmas);
        let user = role.users.entry(r.uid).or_insert_with(|| UserBase {
            first_seen: t,
            ..Default::default()
        });
        if user.name.is_none() {
            user.name = r.user.as_deref().map(str::to_owned);
        }
        user.volume.roll(at.hour, sigmas);
        user.daily.roll(at.day);
    }

    /// Learns from `r` (after the detectors have judged it).
    pub fn learn(&mut self, r: &Record, rules: &AnomalyRules) {
        let t = r.time_ns;
        let Some(role) = self.roles.get_mut(&*r.role) else {
            return;
        };
        role.last_seen = role.last_seen.max(t);
        if let Some(class) = file_class(r) {
            role.classes.insert(class.to_owned(), t);
            if let Some(exe) = &r.exe {
                role.exes
                    .entry(exe.to_string())
                    .or_insert_with(|| ExeBase {
                        first_seen: t,
                        ..Default::default()
                    })
                    .classes
                    .insert(class.to_owned(), t);
            }
            if rules.is_sensitive(class) {
                role.volume.count += r.count() as f64;
                role.volume.evidence.add(r.seq, t);
            }
        }
        if let Some(d) = destination(r) {
            role.dests.insert(d, t);
        }
        if r.action == Action::Send && !r.findings.is_empty() {
            for f in &r.findings {
                role.pii_types.insert(f.kind.clone(), t);
            }
            role.pii.count += r.findings.len() as f64;
            role.pii.evidence.add(r.seq, t);
        }
        if let Some(user) = role.users.get_mut(&r.uid) {
            user.last_seen = user.last_seen.max(t);
            if let Some(class) = file_class(r) {
                user.classes.insert(class.to_owned(), t);
                if rules.is_sensitive(class) {
                    user.volume.count += r.count() as f64;
                    user.volume.evidence.add(r.seq, t);
                    user.daily.count += r.count() as f64;
                    user.daily.evidence.add(r.seq, t);
                }
            }
        }
    }

    /// Drops what was not seen for `forget_ns` (users who left, classes no
    /// longer used), so the state does not grow without bound.
    pub fn forget(&mut self, now: u64, forget_ns: u64) {
        let keep = |t: &u64| now.saturating_sub(*t) < forget_ns;
        for role in self.roles.values_mut() {
            role.classes.retain(|_, t| keep(t));
            role.dests.retain(|_, t| keep(t));
            role.pii_types.retain(|_, t| keep(t));
            role.users
                .retain(|_, u| keep(&u.last_seen.max(u.first_seen)));
            for u in role.users.values_mut() {
                u.classes.retain(|_, t| keep(t));
            }
            for e in role.exes.values_mut() {
                e.classes.retain(|_, t| keep(t));
            }
            role.exes.retain(|_, e| !e.classes.is_empty());
        }
    }
}
