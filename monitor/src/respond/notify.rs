//! `notify`: a desktop notification to the affected user's graphical
//! session. The daemon runs as root and a session bus admits only its
//! owner, so the notification is sent by a child (`monitor notify-user`,
//! through notify-rust) running as the user, pointed at the user's bus.
//! Without a bus socket the run is skipped, and says so.

use std::os::unix::process::CommandExt as _;
use std::process::Command;
use std::time::Duration;

use super::Done;
use crate::model::{Record, RunOutcome};

/// Notifies `r`'s user on the bus at `bus` (`{uid}` replaced).
pub fn run(bus: &str, r: &Record, timeout: Duration) -> Done {
    let path = bus.replace("{uid}", &r.uid.to_string());
    let target = format!("uid {} at {path}", r.uid);
    if !std::path::Path::new(&path).exists() {
        return Done::skipped(
            target,
            format!("no session bus at {path} (no graphical session)"),
        );
    }
    let gid = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(r.uid))
        .ok()
        .flatten()
        .map_or(r.uid, |u| u.gid.as_raw());
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            return Done {
                target,
                outcome: RunOutcome::Failed,
                detail: format!("cannot find the monitor binary: {e}"),
            }
        }
    };
    let (summary, body) = match &r.alert {
        Some(a) => (
            format!("Security alert: {}", a.rule),
            format!("{}\n({} {})", a.message, r.action.name(), r.object),
        ),
        None => (
            "Security notice".to_owned(),
            format!("{} {}", r.action.name(), r.object),
        ),
    };
    let mut cmd = Command::new(exe);
    cmd.args(["notify-user", "--summary", &summary, "--body", &body])
        .env_clear()
        .env("DBUS_SESSION_BUS_ADDRESS", format!("unix:path={path}"))
        .uid(r.uid)
        .gid(gid);
    match super::exec::run_child(&mut cmd, &[], timeout) {
        Err(e) => Done {
            target,
            outcome: RunOutcome::Failed,
            detail: format!("cannot start the notifier: {e}"),
        },
        Ok((None, _)) => Done {
            target,
            outcome: RunOutcome::TimedOut,
            detail: format!("the bus did not answer within {} ms", timeout.as_millis()),
        },
        Ok((Some(s), out)) if s.success() => Done {
            target,
            outcome: RunOutcome::Done,
            detail: format!("shown: {}", out.trim()),
        },
        Ok((Some(_), out)) => Done {
            target,
            outcome: RunOutcome::Failed,
            detail: out.trim().to_owned(),
        },
    }
}

/// `monitor notify-user`: shows one notification on the session bus this
/// process was given, and prints the notification's id.
pub fn show(summary: &str, body: &str) -> Result<u32, String> {
    notify_rust::Notification::new()
        .appname("monitor")
        .summary(summary)
        .body(body)
        .urgency(notify_rust::Urgency::Critical)
        .show()
        .map(|h| h.id())
        .map_err(|e| e.to_string())
}
