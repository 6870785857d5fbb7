//! Detector throughput on 1 MB inputs: text with no PII, contact-center
//! traffic, and PII-dense text. Run with `cargo bench -p monitor-pii`
//! (criterion prints MiB/s). Goals, per core: at least 1 GB/s on clean
//! text and 200 MB/s on contact-center text, whole or a record at a time.
//! The `stream` group is the payload path: one connection's sends.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use monitor_pii::{synth, Detector, FingerprintKey, PiiRules};

fn scan(c: &mut Criterion) {
    let detector = Detector::new(PiiRules::defaults(), FingerprintKey::from_bytes(&[1; 32]));
    let mut group = c.benchmark_group("scan_1mb");
    for kind in ["clean", "contact", "dense"] {
        let text = synth::corpus_text(kind, 1 << 20, 42);
        group.throughput(Throughput::Bytes(text.len() as u64));
        group.bench_function(kind, |b| {
            b.iter(|| detector.scan(std::hint::black_box(text.as_bytes())).len())
        });
    }
    group.finish();
    // The same contact-center text one record (line) at a time, as
    // `monitor scan --jsonl` and the payload path call it: what a call
    // costs beyond its bytes.
    let text = synth::corpus_text("contact", 1 << 20, 42);
    let records: Vec<&[u8]> = text.as_bytes().split(|&b| b == b'\n').collect();
    let mut group = c.benchmark_group("scan_records");
    group.throughput(Throughput::Bytes(text.len() as u64));
    group.bench_function(
        format!("contact_{}_bytes_each", text.len() / records.len()),
        |b| {
            b.iter(|| {
                records
                    .iter()
                    .map(|r| detector.scan(std::hint::black_box(r)).len())
                    .sum::<usize>()
            })
        },
    );
    group.finish();
    // What a call costs with next to nothing to read: the fixed cost each
    // short record (a payload, a JSON line) pays.
    let mut group = c.benchmark_group("scan_call");
    for (name, text) in [
        ("empty", ""),
        (
            "clean_78_bytes",
            "thanks for calling, the statement was sent yesterday and the fee is reversed",
        ),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| detector.scan(std::hint::black_box(text.as_bytes())).len())
        });
    }
    group.finish();
    // Contact-center text as one connection's 200-byte sends, fed to a
    // stream (each feed rescans the tail kept from the sends before), as
    // the payload path inspects them; throughput counts each send's bytes.
    let mut group = c.benchmark_group("stream");
    let sends: Vec<&[u8]> = text.as_bytes().chunks_exact(200).take(1000).collect();
    group.throughput(Throughput::Bytes(200 * sends.len() as u64));
    group.bench_function("contact_200_byte_sends", |b| {
        b.iter(|| {
            let mut stream = detector.stream();
            sends
                .iter()
                .map(|s| stream.feed(&detector, std::hint::black_box(s)).len())
                .sum::<usize>()
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(std::time::Duration::from_secs(4));
    targets = scan
}
criterion_main!(benches);
