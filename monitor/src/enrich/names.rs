//! User and group names by id, through the system's name service (so LDAP
//! and SSSD accounts resolve), cached: one lookup per id.

use foldhash::HashMap;
use std::sync::Arc;

use nix::unistd::{Gid, Group, Uid, User};

/// Cached uid/gid → name lookups; ids that do not resolve are cached too.
#[derive(Default)]
pub struct NameCache {
    users: HashMap<u32, Option<Arc<str>>>,
    groups: HashMap<u32, Option<Arc<str>>>,
}

impl NameCache {
    /// The user name for `uid`.
    pub fn user(&mut self, uid: u32) -> Option<Arc<str>> {
        self.users
            .entry(uid)
            .or_insert_with(|| {
                User::from_uid(Uid::from_raw(uid))
                    .ok()
                    .flatten()
                    .map(|u| Arc::from(u.name))
            })
            .clone()
    }

    /// The group name for `gid`.
    pub fn group(&mut self, gid: u32) -> Option<Arc<str>> {
        self.groups
            .entry(gid)
            .or_insert_with(|| {
                Group::from_gid(Gid::from_raw(gid))
                    .ok()
                    .flatten()
                    .map(|g| Arc::from(g.name))
            })
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_resolves_and_unknown_ids_do_not() {
        let mut names = NameCache::default();
        assert_eq!(names.user(0).as_deref(), Some("root"));
        assert_eq!(names.group(0).as_deref(), Some("root"));
        assert_eq!(names.user(3_999_999_999), None);
        // Cached: a second lookup answers the same.
        assert_eq!(names.user(3_999_999_999), None);
    }
}
