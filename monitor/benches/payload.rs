//! Payload inspection capacity: batches of 4,096 200-byte sends of
//! contact-center text, inspected by the pipeline's `Shards` on one thread
//! and on two (`monitor run --payload-threads`), spread over 64 connections
//! (a burst of 64 sends on each, scanned together) and over 4,096 (one
//! send on each, scanned alone). Run with `cargo bench -p monitor --bench
//! payload`; criterion prints sends per second for each, which shows how
//! inspection scales with the cores it is given.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use monitor::payload::{Shards, Step};
use monitor_common::{PayloadBody, PayloadOp, SockInfo};

const SENDS: usize = 4096;

fn inspect(c: &mut Criterion) {
    let detector = std::sync::Arc::new(monitor_pii::Detector::new(
        monitor_pii::PiiRules::defaults(),
        monitor_pii::FingerprintKey::from_bytes(&[1; 32]),
    ));
    let text = monitor_pii::synth::corpus_text("contact", 200 * SENDS, 7).into_bytes();
    for connections in [64, SENDS] {
        let steps = steps(&text, connections);
        let mut group = c.benchmark_group(format!("inspect_4096_sends_{connections}_connections"));
        group.throughput(Throughput::Elements(SENDS as u64));
        for threads in [1, 2] {
            let mut shards = Shards::new(detector.clone(), threads).without_digests();
            group.bench_function(format!("{threads}_threads"), |b| {
                b.iter(|| shards.inspect(std::hint::black_box(&steps)).len())
            });
        }
        group.finish();
    }
}

/// [`SENDS`] 200-byte sends of `text`, dealt round-robin over `connections`.
fn steps(text: &[u8], connections: usize) -> Vec<Step<'_>> {
    text.chunks_exact(200)
        .take(SENDS)
        .enumerate()
        .map(|(index, bytes)| {
            let fd = (index % connections) as i32;
            Step::Send {
                index,
                tgid: 1000 + fd as u32 % 4,
                body: PayloadBody {
                    op: PayloadOp::Write as u32,
                    fd,
                    size: 200,
                    captured: 200,
                    flags: 0,
                    sock: SockInfo {
                        family: 2,
                        port: 443,
                        conn_id: fd as u64,
                        ..SockInfo::default()
                    },
                },
                bytes,
            }
        })
        .collect()
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(std::time::Duration::from_secs(4));
    targets = inspect
}
criterion_main!(benches);
