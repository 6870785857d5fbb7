//! `kill`: SIGKILL for the offending process, or `cgroup.kill` for its
//! whole cgroup. Only when enforcing; never pid 1, the daemon itself, or a
//! process whose executable is no longer the one the record names (the
//! pid was reused). The responder's `roles` selector keeps it to the roles
//! it may act in.

use super::Done;
use crate::model::{Record, RunOutcome};

/// Kills `r`'s process (or cgroup) when `enforce`.
pub fn run(r: &Record, enforce: bool, cgroup: bool) -> Done {
    let pid = r.pid;
    let target = pid.to_string();
    if pid <= 1 || pid == std::process::id() {
        return Done::skipped(target, "never pid 1 or the daemon itself");
    }
    let exe = std::fs::read_link(format!("/proc/{pid}/exe"));
    match (&exe, &r.exe) {
        (Err(_), _) => return Done::skipped(target, "the process is gone"),
        (Ok(now), Some(was)) if now.to_string_lossy() != **was => {
            return Done::skipped(
                target,
                format!(
                    "pid {pid} now runs {} (the record names {was})",
                    now.display()
                ),
            )
        }
        _ => {}
    }
    let what = if cgroup {
        match cgroup_of(pid) {
            Some(cg) => format!("cgroup {cg}"),
            None => return Done::skipped(target, "its cgroup is not known"),
        }
    } else {
        format!("pid {pid} ({})", r.comm)
    };
    if !enforce {
        return Done::skipped(target, format!("would kill {what} (enforce = false)"));
    }
    let result = if cgroup {
        let cg = cgroup_of(pid).unwrap_or_default();
        if cg == "/" {
            return Done::skipped(target, "never the root cgroup");
        }
        std::fs::write(format!("/sys/fs/cgroup{cg}/cgroup.kill"), "1").map_err(|e| e.to_string())
    } else {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        )
        .map_err(|e| e.to_string())
    };
    match result {
        Ok(()) => Done {
            target,
            outcome: RunOutcome::Done,
            detail: format!("killed {what}"),
        },
        Err(e) => Done {
            target,
            outcome: RunOutcome::Failed,
            detail: format!("could not kill {what}: {e}"),
        },
    }
}

/// The process's cgroup v2 path (`/system.slice/chatbot.service`).
fn cgroup_of(pid: u32) -> Option<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(str::to_owned)
}
