//! Hostile input: the detector neither panics nor grows without bound.
//! (The cargo-fuzz target in `fuzz/` explores the rest.)

use base64::Engine as _;
use monitor_pii::{Detector, FingerprintKey, PiiRules};

fn detector() -> Detector {
    Detector::new(PiiRules::defaults(), FingerprintKey::from_bytes(&[5; 32]))
}

#[test]
fn ten_megabytes_of_digits() {
    let data = vec![b'7'; 10 << 20];
    let found = detector().scan(&data);
    // One run of digits is no identifier of any shape.
    assert!(found.is_empty(), "{} findings", found.len());
}

#[test]
fn digits_with_separators_everywhere() {
    let data: Vec<u8> = (0..2_000_000u32)
        .map(|i| {
            if i % 5 == 4 {
                b' '
            } else {
                b'0' + (i % 10) as u8
            }
        })
        .collect();
    let found = detector().scan(&data);
    for f in &found {
        assert!(f.end <= data.len());
    }
}

#[test]
fn invalid_utf8_and_control_bytes() {
    let mut data = Vec::new();
    for i in 0..200_000u32 {
        data.push((i.wrapping_mul(2_654_435_761) >> 24) as u8);
    }
    data.extend_from_slice(b"\xff\xfe name: \xc3\x28 4111 1111 1111 1111 \xed\xa0\x80");
    let found = detector().scan(&data);
    assert!(found.iter().any(|f| f.kind.name() == "CREDIT_CARD"));
}

#[test]
fn deeply_nested_base64_is_bounded() {
    let mut layer = b"ssn 123-45-6789 in the middle of a sentence".to_vec();
    for _ in 0..12 {
        layer = base64::engine::general_purpose::STANDARD
            .encode(&layer)
            .into_bytes();
    }
    // Twelve layers (past the decode depth): scanned without blowing up.
    let found = detector().scan(&layer);
    assert!(found.iter().all(|f| f.end <= layer.len()));
    // Three layers are looked inside.
    let mut three = b"ssn 123-45-6789 in the middle of a sentence".to_vec();
    for _ in 0..3 {
        three = base64::engine::general_purpose::STANDARD
            .encode(&three)
            .into_bytes();
    }
    assert!(detector()
        .scan(&three)
        .iter()
        .any(|f| f.kind.name() == "US_SSN"));
}

#[test]
fn many_at_signs_and_triggers() {
    let data = "@".repeat(1 << 20) + &"name: ".repeat(100_000) + &"sk-".repeat(100_000);
    let found = detector().scan(data.as_bytes());
    assert!(found.len() < 1000);
}
