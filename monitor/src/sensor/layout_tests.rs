//! The kernel and the daemon must agree on every byte of the shared types.
//! These sizes and offsets are what `monitor-ebpf` compiles against; a change
//! to `monitor-common` that moves them must be deliberate.

use std::mem::{offset_of, size_of};

use monitor_common::*;

#[test]
fn header_layout() {
    assert_eq!(size_of::<EventHeader>(), 64);
    assert_eq!(offset_of!(EventHeader, ktime_ns), 8);
    assert_eq!(offset_of!(EventHeader, pid), 16);
    assert_eq!(offset_of!(EventHeader, tgid), 20);
    assert_eq!(offset_of!(EventHeader, ppid), 24);
    assert_eq!(offset_of!(EventHeader, cgroup_id), 40);
    assert_eq!(offset_of!(EventHeader, comm), 48);
}

#[test]
fn body_layouts() {
    assert_eq!(size_of::<FileBody>(), 96);
    assert_eq!(offset_of!(FileBody, repeats), 80);
    assert_eq!(offset_of!(FileBody, repeats_last_ns), 88);
    assert_eq!(offset_of!(FileBody, path_id), 72);
    assert_eq!(offset_of!(FileBody, sock), 40);
    assert_eq!(offset_of!(FileBody, ret), 8);
    assert_eq!(offset_of!(FileBody, dfd2), 32);
    assert_eq!(offset_of!(FileBody, class_mark), 36);
    assert_eq!(size_of::<NetBody>(), 48);
    assert_eq!(offset_of!(NetBody, conn_id), 40);
    assert_eq!(offset_of!(NetBody, family), 16);
    assert_eq!(offset_of!(NetBody, port), 18);
    assert_eq!(offset_of!(NetBody, addr), 24);
    assert_eq!(size_of::<ExecBody>(), 16);
    assert_eq!(size_of::<ForkBody>(), 16);
    assert_eq!(size_of::<ExitBody>(), 8);
    assert_eq!(size_of::<EventBody>(), 96);
}

#[test]
fn record_layout() {
    assert_eq!(size_of::<StrRef>(), 8);
    assert_eq!(offset_of!(StrRef, flags), 6);
    assert_eq!(offset_of!(RawEvent, body), 64);
    assert_eq!(offset_of!(RawEvent, strs), 160);
    assert_eq!(offset_of!(RawEvent, data), 192);
    assert_eq!(RAW_EVENT_FIXED_LEN, 192);
    assert_eq!(size_of::<RawEvent>(), 192 + DATA_CAP);
}

#[test]
fn payload_layout() {
    assert_eq!(size_of::<SockInfo>(), 32);
    assert_eq!(size_of::<PayloadBody>(), 56);
    assert_eq!(offset_of!(PayloadBody, sock), 24);
    assert_eq!(offset_of!(PayloadEvent, body), 64);
    assert_eq!(offset_of!(PayloadEvent, data), 120);
    assert_eq!(PAYLOAD_FIXED_LEN, 120);
}

#[test]
fn globals_layout() {
    assert_eq!(size_of::<KernelOffsets>(), 50 * 4);
    assert_eq!(size_of::<ClassDirKey>(), 16);
    assert_eq!(offset_of!(ClassDirKey, ino), 8);
    assert_eq!(size_of::<SensorConfig>(), 16);
    assert_eq!(offset_of!(SensorConfig, repeat_window_ns), 8);
}
