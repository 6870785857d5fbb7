//! Role: which role each process acts for. Decisions come from the role
//! rules (`rules/roles.toml`) and are cached per pid; a change of uid, gid,
//! cgroup, executable or task name decides again.

use foldhash::{HashMap, HashMapExt as _};
use std::ffi::CString;
use std::sync::Arc;

use nix::unistd::{Gid, Group};

use crate::event::Process;
use crate::rules::roles::{RoleRules, Subject};

/// How many ancestors are looked at by `ancestor` matchers.
pub const MAX_ANCESTORS: usize = 32;

/// What a cached role was decided from; a change in any of it decides again.
#[derive(PartialEq)]
struct Basis {
    uid: u32,
    gid: u32,
    cgroup_id: u64,
    comm: String,
    exe: Option<Arc<str>>,
}

/// Resolves roles for processes, caching per pid and per user.
pub struct RoleResolver {
    rules: Arc<RoleRules>,
    by_pid: HashMap<u32, (Basis, Arc<str>)>,
    groups_of: HashMap<(u32, u32), Arc<[Arc<str>]>>,
}

impl RoleResolver {
    /// A resolver over `rules`.
    pub fn new(rules: Arc<RoleRules>) -> Self {
        Self {
            rules,
            by_pid: HashMap::new(),
            groups_of: HashMap::new(),
        }
    }

    /// Switches to new rules (a reload); forgets every cached decision.
    pub fn set_rules(&mut self, rules: Arc<RoleRules>) {
        self.rules = rules;
        self.forget_all();
    }

    /// Forgets cached decisions and group memberships (they change as
    /// accounts are edited; call periodically).
    pub fn forget_all(&mut self) {
        self.by_pid.clear();
        self.groups_of.clear();
    }

    /// Forgets `pid` (it exited).
    pub fn forget(&mut self, pid: u32) {
        self.by_pid.remove(&pid);
    }

    /// The role of `p`; `ancestors` yields the executables of its ancestors,
    /// parent first (only called when the decision is not cached).
    pub fn role_of<I>(&mut self, p: &Process, ancestors: impl FnOnce() -> I) -> Arc<str>
    where
        I: Iterator<Item = Arc<str>>,
    {
        let basis = Basis {
            uid: p.uid,
            gid: p.gid,
            cgroup_id: p.cgroup_id,
            comm: p.comm.clone(),
            exe: p.exe.clone(),
        };
        if let Some((b, role)) = self.by_pid.get(&p.pid) {
            if *b == basis {
                return role.clone();
            }
        }
        let groups = self
            .groups_of
            .entry((p.uid, p.gid))
            .or_insert_with(|| group_names(p.user.as_deref(), p.gid, p.group.clone()))
            .clone();
        let ancestors: Vec<Arc<str>> = ancestors().take(MAX_ANCESTORS).collect();
        let role = self.rules.role_of(&Subject {
            uid: p.uid,
            user: p.user.as_deref(),
            groups: &groups,
            comm: &p.comm,
            exe: p.exe.as_deref(),
            unit: p.unit.as_deref(),
            cgroup: p.cgroup.as_deref(),
            ancestors: &ancestors,
        });
        self.by_pid.insert(p.pid, (basis, role.clone()));
        role
    }
}

/// The names of `gid` and of every group `user` belongs to (through NSS).
fn group_names(user: Option<&str>, gid: u32, primary: Option<Arc<str>>) -> Arc<[Arc<str>]> {
    let mut names: Vec<Arc<str>> = primary.into_iter().collect();
    let gids = user
        .and_then(|u| CString::new(u).ok())
        .and_then(|u| nix::unistd::getgrouplist(&u, Gid::from_raw(gid)).ok())
        .unwrap_or_default();
    for g in gids {
        if g.as_raw() == gid {
            continue;
        }
        if let Ok(Some(group)) = Group::from_gid(g) {
            names.push(Arc::from(group.name));
        }
    }
    names.into()
}
