//! The Prometheus text endpoint (`monitor run --metrics-addr
//! 127.0.0.1:9464`, off by default): the status report's counters as
//! metrics, rendered by prometheus-client at each scrape from the last
//! snapshot the control loop published. Loopback only: the numbers say
//! what the host does.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::status::Status;

/// A follower's label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FollowerLabel {
    follower: String,
}

/// The status as Prometheus text.
pub fn render(s: &Status) -> String {
    let mut reg = Registry::with_prefix("monitor");
    let counter = |reg: &mut Registry, name: &str, help: &str, v: u64| {
        let c = Counter::<u64>::default();
        c.inc_by(v);
        reg.register(name, help, c);
    };
    let gauge = |reg: &mut Registry, name: &str, help: &str, v: u64| {
        let g = Gauge::<i64>::default();
        g.set(i64::try_from(v).unwrap_or(i64::MAX));
        reg.register(name, help, g);
    };
    counter(
        &mut reg,
        "kernel_events",
        "Records the probes emitted",
        s.kernel.emitted,
    );
    counter(
        &mut reg,
        "kernel_ringbuf_full",
        "Records dropped because the ring buffer was full",
        s.kernel.ringbuf_full,
    );
    counter(
        &mut reg,
        "kernel_truncated",
        "Strings the kernel cut short",
        s.kernel.truncated,
    );
    counter(
        &mut reg,
        "events_received",
        "Records read from the ring buffer",
        s.pipeline.received,
    );
    counter(
        &mut reg,
        "events_decode_errors",
        "Records that could not be decoded (dropped)",
        s.pipeline.decode_errors,
    );
    counter(
        &mut reg,
        "events_record_errors",
        "Records that could not be handed to the writer (dropped)",
        s.pipeline.record_errors,
    );
    counter(
        &mut reg,
        "events_repeats_uncounted",
        "Repeated opens stored one by one because every repeat window was taken",
        s.pipeline.repeats_uncounted,
    );
    counter(
        &mut reg,
        "events_paths_unknown",
        "Opens sent by path id whose path the daemon no longer had",
        s.pipeline.paths_unknown,
    );
    counter(
        &mut reg,
        "events_sends_not_inspected",
        "Sends recorded but not scanned for PII: the daemon was behind (each is recorded with an alert)",
        s.pipeline.sends_not_inspected,
    );
    counter(
        &mut reg,
        "kernel_repeats_counted",
        "Opens counted in the kernel instead of sent (each is in a later record's count)",
        s.kernel.repeats_counted,
    );
    counter(
        &mut reg,
        "kernel_repeats_uncounted",
        "Opens sent one by one because every kernel repeat window was taken",
        s.kernel.repeats_uncounted,
    );
    counter(
        &mut reg,
        "kernel_path_cached",
        "Opens whose path came from the kernel's path cache",
        s.kernel.path_cached,
    );
    counter(
        &mut reg,
        "records_stored",
        "Records written to the record",
        s.record.stored,
    );
    counter(
        &mut reg,
        "records_failed",
        "Records that could not be stored",
        s.record.failed,
    );
    counter(
        &mut reg,
        "records_write_errors",
        "Failed writes of the record",
        s.record.write_errors,
    );
    gauge(
        &mut reg,
        "records_held",
        "Records held in memory while the store cannot write",
        s.record.held,
    );
    gauge(
        &mut reg,
        "events_backlog_bytes",
        "Bytes of records taken from the ring buffer and waiting in the daemon's memory (it is behind)",
        s.pipeline.backlog_bytes,
    );
    gauge(
        &mut reg,
        "probes_attached",
        "Probes attached",
        s.attached.len() as u64,
    );
    let lag = Family::<FollowerLabel, Gauge<i64>>::default();
    let handled = Family::<FollowerLabel, Counter<u64>>::default();
    let errors = Family::<FollowerLabel, Counter<u64>>::default();
    let failing = Family::<FollowerLabel, Gauge<i64>>::default();
    for f in &s.followers {
        let l = FollowerLabel {
            follower: f.name.clone(),
        };
        lag.get_or_create(&l).set(f.lag as i64);
        handled.get_or_create(&l).inc_by(f.handled);
        errors.get_or_create(&l).inc_by(f.errors);
        failing
            .get_or_create(&l)
            .set(i64::from(f.failing_since.is_some()));
    }
    reg.register(
        "follower_lag",
        "Records stored and not yet handled by the follower",
        lag,
    );
    reg.register("follower_handled", "Records the follower handled", handled);
    reg.register(
        "follower_errors",
        "Batches the follower failed (retried)",
        errors,
    );
    reg.register(
        "follower_failing",
        "1 while the follower is failing",
        failing,
    );
    let mut out = String::new();
    encode(&mut out, &reg).expect("writing to a String");
    out
}

/// Serves `GET /metrics` on `addr` from `status` until the task is aborted.
pub async fn serve(
    addr: SocketAddr,
    status: Arc<RwLock<Status>>,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    if !addr.ip().is_loopback() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("--metrics-addr {addr}: the metrics endpoint listens on loopback only"),
        ));
    }
    let listener = tokio::net::TcpListener::bind(addr).await?;
    Ok(tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else {
                continue;
            };
            let status = status.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 2048];
                let n = match tokio::time::timeout(
                    std::time::Duration::from_secs(5),
                    conn.read(&mut buf),
                )
                .await
                {
                    Ok(Ok(n)) => n,
                    _ => return,
                };
                let head = String::from_utf8_lossy(&buf[..n]);
                let reply = if head.starts_with("GET /metrics ") {
                    let body = render(&status.read().expect("status lock"));
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/openmetrics-text; version=1.0.0; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    )
                } else {
                    "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                        .to_owned()
                };
                let _ = conn.write_all(reply.as_bytes()).await;
            });
        }
    }))
}
