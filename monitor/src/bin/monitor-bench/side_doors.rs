//! The side-door benchmark behind `cargo xtask bench side-doors`: what the
//! probes on `sendfile`, `splice`, `sendmmsg` and io_uring cost. A workload
//! that never uses them (plain `send`) and ones that do (`sendfile` of a
//! 4 KiB classified file to a loopback socket, `sendmmsg` of two UDP
//! messages) are timed per call without the daemon and with it.

use std::io::Read as _;
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd as _;
use std::path::Path;
use std::time::Instant;

use serde::Serialize;

/// Per-call cost of one workload, ns.
#[derive(Debug, Serialize)]
pub struct Workload {
    /// What it does.
    pub name: &'static str,
    /// Calls made in each round.
    pub calls: u64,
    /// ns per call without the daemon.
    pub without_ns: f64,
    /// ns per call with it.
    pub with_ns: f64,
}

/// What the benchmark measured.
#[derive(Debug, Serialize)]
pub struct SideDoorsReport {
    /// Each workload.
    pub workloads: Vec<Workload>,
}

/// A loopback TCP pair whose far end is drained on a thread.
fn tcp_pair() -> anyhow::Result<TcpStream> {
    let l = TcpListener::bind("127.0.0.1:0")?;
    let s = TcpStream::connect(l.local_addr()?)?;
    let (mut c, _) = l.accept()?;
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 1 << 16];
        while matches!(c.read(&mut buf), Ok(n) if n > 0) {}
    });
    Ok(s)
}

fn send(calls: u64) -> anyhow::Result<f64> {
    let s = tcp_pair()?;
    let buf = [b'x'; 200];
    let t = Instant::now();
    for _ in 0..calls {
        // SAFETY: a valid socket and buffer.
        let n = unsafe { libc::send(s.as_raw_fd(), buf.as_ptr().cast(), buf.len(), 0) };
        anyhow::ensure!(n == 200, "send failed");
    }
    Ok(t.elapsed().as_nanos() as f64 / calls as f64)
}

fn sendfile(calls: u64, file: &Path) -> anyhow::Result<f64> {
    let s = tcp_pair()?;
    let f = std::fs::File::open(file)?;
    let t = Instant::now();
    for _ in 0..calls {
        let mut off: libc::off_t = 0;
        // SAFETY: valid fds and offset.
        let n = unsafe { libc::sendfile(s.as_raw_fd(), f.as_raw_fd(), &mut off, 4096) };
        anyhow::ensure!(n == 4096, "sendfile failed");
    }
    Ok(t.elapsed().as_nanos() as f64 / calls as f64)
}

fn sendmmsg(calls: u64) -> anyhow::Result<f64> {
    let rx = UdpSocket::bind("127.0.0.1:0")?;
    let tx = UdpSocket::bind("127.0.0.1:0")?;
    tx.connect(rx.local_addr()?)?;
    std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        while rx.recv(&mut buf).is_ok() {}
    });
    let mut a = [b'a'; 200];
    let mut b = [b'b'; 200];
    let mut iov = [
        libc::iovec {
            iov_base: a.as_mut_ptr().cast(),
            iov_len: 200,
        },
        libc::iovec {
            iov_base: b.as_mut_ptr().cast(),
            iov_len: 200,
        },
    ];
    // SAFETY: zeroed mmsghdrs are valid; each points at one iovec.
    let mut msgs: [libc::mmsghdr; 2] = unsafe { std::mem::zeroed() };
    for (m, v) in msgs.iter_mut().zip(iov.iter_mut()) {
        m.msg_hdr.msg_iov = v;
        m.msg_hdr.msg_iovlen = 1;
    }
    let t = Instant::now();
    for _ in 0..calls {
        // SAFETY: valid socket and message array.
        let n = unsafe { libc::sendmmsg(tx.as_raw_fd(), msgs.as_mut_ptr(), 2, 0) };
        anyhow::ensure!(n == 2, "sendmmsg failed");
    }
    Ok(t.elapsed().as_nanos() as f64 / calls as f64)
}

/// Each workload's ns per call, in order.
fn round(calls: u64, file: &Path) -> anyhow::Result<[f64; 3]> {
    Ok([send(calls)?, sendfile(calls, file)?, sendmmsg(calls)?])
}

/// Runs both rounds.
pub fn run(monitor: &Path, calls: u64) -> anyhow::Result<SideDoorsReport> {
    let dir = std::env::temp_dir().join(format!("monitor-side-doors-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let cards = dir.join("cards");
    std::fs::create_dir_all(&cards)?;
    let file = cards.join("export.csv");
    std::fs::write(&file, vec![b'x'; 4096])?;
    super::soak::classify(&dir, &cards)?;
    let without = round(calls, &file)?;
    let mut daemon = super::soak::start_daemon(monitor, &dir)?;
    let with = round(calls, &file);
    super::soak::stop_daemon(&mut daemon);
    let with = with?;
    let _ = std::fs::remove_dir_all(&dir);
    let names = [
        "send 200 B (no side door)",
        "sendfile 4 KiB of a classified file",
        "sendmmsg 2 x 200 B",
    ];
    Ok(SideDoorsReport {
        workloads: (0..3)
            .map(|i| Workload {
                name: names[i],
                calls,
                without_ns: without[i],
                with_ns: with[i],
            })
            .collect(),
    })
}
