//! cgroup v2 id → path and systemd unit. The id the kernel reports is the
//! inode number of the cgroup's directory under `/sys/fs/cgroup`.

use foldhash::{HashMap, HashMapExt as _};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Where the cgroup v2 hierarchy is mounted.
pub const CGROUP_ROOT: &str = "/sys/fs/cgroup";
/// An unknown id triggers a rescan at most this often.
const RESCAN_EVERY: Duration = Duration::from_secs(1);
/// A rescan stops after this many directories.
const MAX_CGROUPS: usize = 100_000;

/// A cgroup's path and the systemd unit it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupInfo {
    /// Path below the cgroup root, starting with `/`.
    pub path: Arc<str>,
    /// The innermost `.service` or `.scope` component.
    pub unit: Option<Arc<str>>,
}

/// cgroup id → [`CgroupInfo`], filled by scanning the hierarchy.
pub struct CgroupCache {
    root: PathBuf,
    by_id: HashMap<u64, CgroupInfo>,
    last_scan: Option<Instant>,
}

impl CgroupCache {
    /// A cache over the hierarchy at `root`, scanned once now.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        let mut cache = Self {
            root: root.into(),
            by_id: HashMap::new(),
            last_scan: None,
        };
        cache.rescan();
        cache
    }

    /// The cgroup with `id`, rescanning (rate limited) when it is new.
    pub fn get(&mut self, id: u64) -> Option<CgroupInfo> {
        if !self.by_id.contains_key(&id)
            && self.last_scan.is_none_or(|t| t.elapsed() >= RESCAN_EVERY)
        {
            self.rescan();
        }
        self.by_id.get(&id).cloned()
    }

    fn rescan(&mut self) {
        self.last_scan = Some(Instant::now());
        let mut stack = vec![self.root.clone()];
        let mut seen = 0;
        while let Some(dir) = stack.pop() {
            seen += 1;
            if seen > MAX_CGROUPS {
                break;
            }
            let Ok(meta) = std::fs::metadata(&dir) else {
                continue;
            };
            let rel = relative(&self.root, &dir);
            self.by_id.entry(meta.ino()).or_insert_with(|| CgroupInfo {
                unit: unit_of(&rel),
                path: Arc::from(rel),
            });
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    stack.push(entry.path());
                }
            }
        }
    }
}

fn relative(root: &Path, dir: &Path) -> String {
    match dir.strip_prefix(root) {
        Ok(rel) if rel.as_os_str().is_empty() => "/".to_owned(),
        Ok(rel) => format!("/{}", rel.display()),
        Err(_) => dir.display().to_string(),
    }
}

/// The innermost systemd unit named in a cgroup path.
pub fn unit_of(path: &str) -> Option<Arc<str>> {
    path.rsplit('/')
        .find(|c| c.ends_with(".service") || c.ends_with(".scope"))
        .map(Arc::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_is_the_innermost_service_or_scope() {
        assert_eq!(
            unit_of("/system.slice/chatbot.service").as_deref(),
            Some("chatbot.service")
        );
        assert_eq!(
            unit_of("/user.slice/user-1000.slice/session-3.scope").as_deref(),
            Some("session-3.scope")
        );
        assert_eq!(unit_of("/"), None);
    }

    #[test]
    fn scans_a_directory_tree_by_inode() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let svc = dir.join("system.slice").join("x.service");
        std::fs::create_dir_all(&svc).unwrap();
        let ino = std::fs::metadata(&svc).unwrap().ino();
        let mut cache = CgroupCache::new(dir);
        let info = cache.get(ino).unwrap();
        assert_eq!(&*info.path, "/system.slice/x.service");
        assert_eq!(info.unit.as_deref(), Some("x.service"));
        assert_eq!(cache.get(u64::MAX), None);
    }
}
