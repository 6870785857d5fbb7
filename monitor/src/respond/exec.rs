//! `exec`: a program with its argv (never a shell), the alert's record as
//! JSON on stdin, its main fields in `MONITOR_*` variables, in a process
//! group of its own that is SIGKILLed at the timeout. The exit status and
//! the first 4 KiB of its output (stdout, then stderr) are recorded.

use std::io::{Read as _, Write as _};
use std::os::unix::process::CommandExt as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::Done;
use crate::model::{Record, RunOutcome};

/// Output bytes kept in the run record (the first 4 KiB).
const KEPT: usize = 4096;

/// The alert's main fields as environment variables.
pub fn environment(r: &Record) -> Vec<(&'static str, String)> {
    let a = r.alert.as_ref();
    vec![
        ("MONITOR_RULE", a.map_or(String::new(), |a| a.rule.clone())),
        (
            "MONITOR_SEVERITY",
            a.map_or(String::new(), |a| a.severity.name().to_owned()),
        ),
        (
            "MONITOR_MESSAGE",
            a.map_or(String::new(), |a| a.message.clone()),
        ),
        ("MONITOR_ROLE", r.role.to_string()),
        ("MONITOR_PID", r.pid.to_string()),
        ("MONITOR_UID", r.uid.to_string()),
        ("MONITOR_USER", r.user.as_deref().unwrap_or("").to_owned()),
        ("MONITOR_OBJECT", r.object.clone()),
        ("MONITOR_CLASS", r.class.as_deref().unwrap_or("").to_owned()),
        ("MONITOR_SEQ", r.seq.to_string()),
        ("MONITOR_HOST", r.host.to_string()),
    ]
}

/// Runs `command` for `r`, killing it at `timeout`.
pub fn run(command: &[String], r: &Record, timeout: Duration) -> Done {
    let target = command[0].clone();
    let mut cmd = Command::new(&command[0]);
    cmd.args(&command[1..])
        .env_clear()
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .envs(environment(r));
    let input = serde_json::to_vec(r).unwrap_or_default();
    match run_child(&mut cmd, &input, timeout) {
        Err(e) => Done {
            target,
            outcome: RunOutcome::Failed,
            detail: format!("cannot start: {e}"),
        },
        Ok((None, text)) => Done {
            target,
            outcome: RunOutcome::TimedOut,
            detail: format!("killed after {} ms; output: {text}", timeout.as_millis()),
        },
        Ok((Some(s), text)) if s.success() => Done {
            target,
            outcome: RunOutcome::Done,
            detail: format!("exit 0; output: {text}"),
        },
        Ok((Some(s), text)) => Done {
            target,
            outcome: RunOutcome::Failed,
            detail: format!("{s}; output: {text}"),
        },
    }
}

/// Runs `cmd` in a process group of its own with `input` on its stdin;
/// past `timeout` the group is SIGKILLed. Its exit status (`None` when
/// killed) and the first 4 KiB of its output (stdout, then stderr).
pub fn run_child(
    cmd: &mut Command,
    input: &[u8],
    timeout: Duration,
) -> std::io::Result<(Option<std::process::ExitStatus>, String)> {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = cmd.spawn()?;
    let pgid = child.id() as i32;
    let input = input.to_vec();
    let mut stdin = child.stdin.take();
    let feeder = std::thread::spawn(move || {
        if let Some(s) = stdin.as_mut() {
            let _ = s.write_all(&input);
        }
    });
    let readers: Vec<_> = [
        child
            .stdout
            .take()
            .map(|o| Box::new(o) as Box<dyn std::io::Read + Send>),
        child
            .stderr
            .take()
            .map(|o| Box::new(o) as Box<dyn std::io::Read + Send>),
    ]
    .into_iter()
    .flatten()
    .map(|mut src| {
        std::thread::spawn(move || {
            let mut kept = Vec::new();
            let mut buf = [0u8; 4096];
            while let Ok(n) = src.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let room = KEPT.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
            kept
        })
    })
    .collect();
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) if Instant::now() >= deadline => {
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(pgid),
                    nix::sys::signal::Signal::SIGKILL,
                );
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(_) => break None,
        }
    };
    let _ = feeder.join();
    let mut output = Vec::new();
    for h in readers {
        output.extend(h.join().unwrap_or_default());
    }
    output.truncate(KEPT);
    Ok((status, String::from_utf8_lossy(&output).into_owned()))
}
