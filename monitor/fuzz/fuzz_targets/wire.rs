//! Any bytes as a kernel record: decoding never panics, and what decodes
//! names only bytes inside the record.
#![no_main]

use libfuzzer_sys::fuzz_target;
use monitor::enrich::paths;
use monitor::wire::decode;

fuzz_target!(|data: &[u8]| {
    if let Ok(rec) = decode(data) {
        for s in &rec.strs {
            for part in s.parts() {
                let _ = paths::text(part);
            }
            let _ = paths::from_components(s);
        }
        let _ = paths::resolve(&rec.strs[0], &rec.strs[1]);
        assert!(rec.payload.len() <= data.len());
    }
});
