//! `roles.toml`: which role a process acts for. Roles are
//! tried in order and the first whose matchers all hold wins; a process
//! no role matches is [`UNASSIGNED`].

use std::ops::RangeInclusive;
use std::sync::Arc;

use globset::GlobSet;
use monitor_pii::RulesError;
use serde::Deserialize;
use toml::Spanned;

use super::{glob_set, parse_toml};
pub use crate::model::UNASSIGNED;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoles {
    #[serde(default)]
    role: Vec<RawRole>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRole {
    name: Spanned<String>,
    #[serde(default)]
    users: Vec<String>,
    #[serde(default)]
    groups: Vec<String>,
    #[serde(default)]
    uids: Vec<Spanned<String>>,
    #[serde(default)]
    exe: Vec<Spanned<String>>,
    #[serde(default)]
    comm: Vec<String>,
    #[serde(default)]
    units: Vec<Spanned<String>>,
    #[serde(default)]
    cgroups: Vec<Spanned<String>>,
    #[serde(default)]
    ancestor: Vec<Spanned<String>>,
}

/// One role and its matchers (every non-empty matcher must hold).
#[derive(Debug)]
struct Role {
    name: Arc<str>,
    users: Vec<String>,
    groups: Vec<String>,
    uids: Vec<RangeInclusive<u32>>,
    exe: Option<GlobSet>,
    comm: Vec<String>,
    units: Option<GlobSet>,
    cgroups: Option<GlobSet>,
    ancestor: Option<GlobSet>,
}

/// The validated role rules.
#[derive(Debug)]
pub struct RoleRules {
    roles: Vec<Role>,
    unassigned: Arc<str>,
}

/// What a role is matched against: one process, its user's groups and its ancestry.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    /// Real uid.
    pub uid: u32,
    /// User name.
    pub user: Option<&'a str>,
    /// Names of the process's group and of every group its user belongs to.
    pub groups: &'a [Arc<str>],
    /// Task name.
    pub comm: &'a str,
    /// Executable path.
    pub exe: Option<&'a str>,
    /// systemd unit.
    pub unit: Option<&'a str>,
    /// cgroup path.
    pub cgroup: Option<&'a str>,
    /// Executable paths of the ancestors, parent first.
    pub ancestors: &'a [Arc<str>],
}

fn uid_range(
    src: &str,
    file: &str,
    s: &Spanned<String>,
) -> Result<RangeInclusive<u32>, RulesError> {
    let bad = || {
        RulesError::at(
            src,
            file,
            s.span().start,
            format!(
                "bad uid range `{}` (expected `N` or `LOW-HIGH`)",
                s.get_ref()
            ),
        )
    };
    let (lo, hi) = match s.get_ref().split_once('-') {
        Some((lo, hi)) => (lo.trim(), hi.trim()),
        None => (s.get_ref().trim(), s.get_ref().trim()),
    };
    let lo: u32 = lo.parse().map_err(|_| bad())?;
    let hi: u32 = hi.parse().map_err(|_| bad())?;
    if lo > hi {
        return Err(bad());
    }
    Ok(lo..=hi)
}

impl RoleRules {
    /// Parses and validates `roles.toml`.
    pub fn parse(src: &str, file: &str) -> Result<Self, RulesError> {
        let raw: RawRoles = parse_toml(src, file)?;
        let mut roles: Vec<Role> = Vec::new();
        for r in raw.role {
            let err = |m: String| RulesError::at(src, file, r.name.span().start, m);
            let name = r.name.get_ref();
            let well_formed = !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
            if !well_formed {
                return Err(err(format!(
                    "role name `{name}` must be lowercase letters, digits and `-`"
                )));
            }
            if name == UNASSIGNED || roles.iter().any(|o| &*o.name == name.as_str()) {
                return Err(err(format!(
                    "role `{name}` is defined twice or is reserved"
                )));
            }
            let role = Role {
                name: Arc::from(name.as_str()),
                users: r.users,
                groups: r.groups,
                uids: r
                    .uids
                    .iter()
                    .map(|u| uid_range(src, file, u))
                    .collect::<Result<_, _>>()?,
                exe: glob_set(src, file, &r.exe)?,
                comm: r.comm,
                units: glob_set(src, file, &r.units)?,
                cgroups: glob_set(src, file, &r.cgroups)?,
                ancestor: glob_set(src, file, &r.ancestor)?,
            };
            if role.is_catch_all() {
                return Err(err(format!(
                    "role `{name}` has no matchers and would match every process"
                )));
            }
            roles.push(role);
        }
        Ok(Self {
            roles,
            unassigned: Arc::from(UNASSIGNED),
        })
    }

    /// True when a role of this name is defined (or is `unassigned`).
    pub fn knows(&self, name: &str) -> bool {
        name == UNASSIGNED || self.roles.iter().any(|r| &*r.name == name)
    }

    /// The role names, in match order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.roles.iter().map(|r| &*r.name)
    }

    /// True when `role` is decided by systemd unit or cgroup alone: every
    /// process in a cgroup of one of its processes has it too (unless an
    /// earlier role claims it), so the cgroup can stand for the role.
    pub fn decided_by_cgroup(&self, role: &str) -> bool {
        self.roles
            .iter()
            .find(|r| &*r.name == role)
            .is_some_and(|r| {
                (r.units.is_some() || r.cgroups.is_some())
                    && r.users.is_empty()
                    && r.groups.is_empty()
                    && r.uids.is_empty()
                    && r.exe.is_none()
                    && r.comm.is_empty()
                    && r.ancestor.is_none()
            })
    }

    /// The first role `s` matches, or `unassigned`.
    pub fn role_of(&self, s: &Subject<'_>) -> Arc<str> {
        self.roles
            .iter()
            .find(|r| r.matches(s))
            .map_or_else(|| self.unassigned.clone(), |r| r.name.clone())
    }
}

impl Role {
    fn is_catch_all(&self) -> bool {
        self.users.is_empty()
            && self.groups.is_empty()
            && self.uids.is_empty()
            && self.exe.is_none()
            && self.comm.is_empty()
            && self.units.is_none()
            && self.cgroups.is_none()
            && self.ancestor.is_none()
    }

    fn matches(&self, s: &Subject<'_>) -> bool {
        let glob = |set: &Option<GlobSet>, v: Option<&str>| match set {
            None => true,
            Some(set) => v.is_some_and(|v| set.is_match(v)),
        };
        (self.users.is_empty() || s.user.is_some_and(|u| self.users.iter().any(|x| x == u)))
            && (self.groups.is_empty()
                || s.groups
                    .iter()
                    .any(|g| self.groups.iter().any(|x| **x == **g)))
            && (self.uids.is_empty() || self.uids.iter().any(|r| r.contains(&s.uid)))
            && (self.comm.is_empty() || self.comm.iter().any(|c| c == s.comm))
            && glob(&self.exe, s.exe)
            && glob(&self.units, s.unit)
            && glob(&self.cgroups, s.cgroup)
            && match &self.ancestor {
                None => true,
                Some(set) => s.ancestors.iter().any(|a| set.is_match(&**a)),
            }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subject<'a>(groups: &'a [Arc<str>], ancestors: &'a [Arc<str>]) -> Subject<'a> {
        Subject {
            uid: 1500,
            user: Some("alice"),
            groups,
            comm: "python3",
            exe: Some("/usr/bin/python3.11"),
            unit: Some("session-3.scope"),
            cgroup: Some("/user.slice/user-1500.slice/session-3.scope"),
            ancestors,
        }
    }

    #[test]
    fn first_match_wins_and_unmatched_is_unassigned() {
        let rules = RoleRules::parse(
            r#"
[[role]]
name = "chatbot"
units = ["chatbot.service"]
[[role]]
name = "billing-agent"
groups = ["billing"]
[[role]]
name = "staff"
uids = ["1000-1999"]
"#,
            "roles.toml",
        )
        .unwrap();
        let billing: Vec<Arc<str>> = vec!["users".into(), "billing".into()];
        assert_eq!(&*rules.role_of(&subject(&billing, &[])), "billing-agent");
        let plain: Vec<Arc<str>> = vec!["users".into()];
        assert_eq!(&*rules.role_of(&subject(&plain, &[])), "staff");
        let mut s = subject(&plain, &[]);
        s.uid = 10;
        assert_eq!(&*rules.role_of(&s), UNASSIGNED);
        s.unit = Some("chatbot.service");
        assert_eq!(&*rules.role_of(&s), "chatbot");
    }

    #[test]
    fn every_matcher_in_a_role_must_hold() {
        let rules = RoleRules::parse(
            r#"
[[role]]
name = "ai-assistant"
exe = ["/usr/bin/python3*"]
ancestor = ["/opt/assistant/**"]
"#,
            "roles.toml",
        )
        .unwrap();
        let g: Vec<Arc<str>> = vec![];
        assert_eq!(&*rules.role_of(&subject(&g, &[])), UNASSIGNED);
        let anc: Vec<Arc<str>> = vec!["/usr/bin/bash".into(), "/opt/assistant/bin/run".into()];
        assert_eq!(&*rules.role_of(&subject(&g, &anc)), "ai-assistant");
        // `*` does not cross a path separator.
        let rules =
            RoleRules::parse("[[role]]\nname = \"x\"\nexe = [\"/usr/*\"]\n", "roles.toml").unwrap();
        assert_eq!(&*rules.role_of(&subject(&g, &[])), UNASSIGNED);
    }

    #[test]
    fn broken_roles_are_refused_with_a_position() {
        let cases = [
            ("[[role]]\nname = \"x\"\nexe = [\"/a/[b\"]\n", 3, 8, "bad glob"),
            ("[[role]]\nname = \"x\"\nusers = [\"a\"]\ncolour = 1\n", 4, 1, "unknown field `colour`"),
            ("[[role]]\nname = \"x\"\nuids = [\"9-1\"]\n", 3, 9, "bad uid range"),
            ("[[role]]\nname = \"Bad Name\"\nusers = [\"a\"]\n", 2, 8, "must be lowercase"),
            ("[[role]]\nname = \"x\"\n", 2, 8, "no matchers"),
            ("[[role]]\nname = \"x\"\nusers = [\"a\"]\n[[role]]\nname = \"x\"\nusers = [\"b\"]\n", 5, 8, "defined twice"),
            ("[[role]\nname = \"x\"\n", 1, 7, ""),
        ];
        for (src, line, col, msg) in cases {
            let e = RoleRules::parse(src, "roles.toml").unwrap_err();
            assert_eq!((e.line, e.col), (line, col), "{src:?}: {e}");
            assert!(e.message.contains(msg), "{src:?}: {e}");
            assert_eq!(e.file, "roles.toml");
        }
    }
}
