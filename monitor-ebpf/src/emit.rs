//! Building records: the per-CPU scratch record, its header, strings in
//! its data area, and the copy of the used bytes to the ring buffer; kernel
//! memory reads and counters.

use aya_ebpf::helpers::{
    bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_get_current_task, bpf_get_current_uid_gid,
    bpf_ktime_get_ns, bpf_probe_read_kernel, generated as raw,
};
use core::ptr::addr_of;
use monitor_common::{
    EventHeader, EventKind, RawEvent, StrKind, StrRef, COUNTER_EMITTED, COUNTER_RINGBUF_FULL,
    COUNTER_TRUNCATED, DATA_CAP, DATA_HALF, FLAG_TRUNCATED, MAX_STRS, RAW_EVENT_FIXED_LEN, STR_CUT,
};

use crate::maps::{
    BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP, CONFIG, COUNTERS, EVENTS, SCRATCH,
    WAKEUP_BYTES,
};

/// Write position in the data area of the record under construction.
pub(crate) struct Cursor {
    pub(crate) off: usize,
}

/// The task's root directory: path walks stop there.
pub(crate) struct Root {
    pub(crate) mnt: *const u8,
    pub(crate) dentry: *const u8,
}

pub(crate) fn self_tgid() -> u32 {
    // SAFETY: as in `offset!`.
    unsafe { core::ptr::read_volatile(addr_of!(CONFIG.self_tgid)) }
}

pub(crate) fn count(index: u32) {
    if let Some(slot) = COUNTERS.get_ptr_mut(index) {
        // SAFETY: per-CPU slot, no concurrent writer on this CPU.
        unsafe { *slot += 1 };
    }
}

/// Reads a `T` at `base + off` in kernel memory; zero on failure.
#[inline(always)]
pub(crate) fn kread<T: Copy + Default>(base: *const u8, off: usize) -> T {
    if base.is_null() {
        return T::default();
    }
    // SAFETY: bpf_probe_read_kernel never faults; a bad address yields an error.
    unsafe { bpf_probe_read_kernel(base.wrapping_add(off) as *const T) }.unwrap_or_default()
}

#[inline(always)]
pub(crate) fn kptr(base: *const u8, off: usize) -> *const u8 {
    kread::<usize>(base, off) as *const u8
}

/// Fills the fields every record has, for the current task.
#[inline(always)]
pub(crate) fn fill_header(h: &mut EventHeader, task: *const u8, kind: EventKind) {
    let id = bpf_get_current_pid_tgid();
    let ug = bpf_get_current_uid_gid();
    h.kind = kind as u32;
    h.flags = 0;
    // SAFETY: helpers without preconditions.
    h.ktime_ns = unsafe { bpf_ktime_get_ns() };
    h.pid = id as u32;
    h.tgid = (id >> 32) as u32;
    let parent = kptr(task, offset!(task_real_parent));
    h.ppid = kread::<u32>(parent, offset!(task_tgid));
    h.uid = ug as u32;
    h.gid = (ug >> 32) as u32;
    h._pad = 0;
    // SAFETY: as above.
    h.cgroup_id = unsafe { raw::bpf_get_current_cgroup_id() };
    h.comm = bpf_get_current_comm().unwrap_or([0; 16]);
}

/// The current task.
#[inline(always)]
pub(crate) fn current_task() -> *const u8 {
    // SAFETY: helper without preconditions.
    unsafe { bpf_get_current_task() as *const u8 }
}

/// The per-CPU record, headed for `kind`.
#[inline(always)]
pub(crate) fn begin(kind: EventKind) -> Option<(&'static mut RawEvent, *const u8)> {
    let ev = SCRATCH.get_ptr_mut(0)?;
    // SAFETY: per-CPU slot; programs do not nest on one CPU for these hooks.
    let ev = unsafe { &mut *ev };
    let task = current_task();
    fill_header(&mut ev.header, task, kind);
    clear_strs(&mut ev.strs);
    Some((ev, task))
}

/// Marks every string of a record as absent.
#[inline(always)]
pub(crate) fn clear_strs(strs: &mut [StrRef; MAX_STRS]) {
    let mut i = 0;
    while i < MAX_STRS {
        strs[i] = StrRef {
            off: 0,
            len: 0,
            kind: StrKind::None as u16,
            flags: 0,
        };
        i += 1;
    }
}

/// Sends the used part of `ev` to the ring buffer; false when it was lost.
#[inline(always)]
pub(crate) fn submit(ev: &mut RawEvent, cur: &Cursor) -> bool {
    let mut used = cur.off;
    if used > DATA_CAP {
        used = DATA_CAP;
    }
    if ev.header.flags & FLAG_TRUNCATED != 0 {
        count(COUNTER_TRUNCATED);
    }
    // SAFETY: `RAW_EVENT_FIXED_LEN + used` is within the scratch slot.
    let bytes = unsafe {
        core::slice::from_raw_parts(
            ev as *const RawEvent as *const u8,
            RAW_EVENT_FIXED_LEN + used,
        )
    };
    output(bytes)
}

/// Copies one record to the ring buffer, counting it as sent or lost;
/// false when it was lost.
#[inline(always)]
pub(crate) fn output(bytes: &[u8]) -> bool {
    let sent = try_output(bytes);
    if !sent {
        count(COUNTER_RINGBUF_FULL);
    }
    sent
}

/// Copies one record to the ring buffer, counting it when sent; false
/// when the ring buffer is full (for a caller that loses nothing then).
#[inline(always)]
pub(crate) fn try_output(bytes: &[u8]) -> bool {
    let sent = EVENTS
        .output::<[u8]>(bytes, wake_flags(bytes.len()))
        .is_ok();
    if sent {
        count(COUNTER_EMITTED);
    }
    sent
}

/// Waking the reader costs more than building a record. Wake it only when
/// this record makes the pending data cross [`WAKEUP_BYTES`]: below that the
/// reader's short poll timeout collects it, above it the reader is already
/// busy draining (waking it per record then tripled the probe's cost).
#[inline(always)]
pub(crate) fn wake_flags(size: usize) -> u64 {
    let pending = EVENTS.query(BPF_RB_AVAIL_DATA);
    if pending < WAKEUP_BYTES && pending + size as u64 >= WAKEUP_BYTES {
        BPF_RB_FORCE_WAKEUP
    } else {
        BPF_RB_NO_WAKEUP
    }
}

/// Where the next string goes, or `None` when the data area is full.
#[inline(always)]
pub(crate) fn slot(ev: &mut RawEvent, cur: &Cursor) -> Option<*mut u8> {
    if cur.off >= DATA_HALF {
        ev.header.flags |= FLAG_TRUNCATED;
        return None;
    }
    Some(ev.data.as_mut_ptr().wrapping_add(cur.off & (DATA_HALF - 1)))
}

/// Copies a NUL-terminated kernel string of at most `max` bytes; false if nothing was copied.
#[inline(always)]
pub(crate) fn push_kernel_str(
    ev: &mut RawEvent,
    cur: &mut Cursor,
    src: *const u8,
    max: u32,
) -> bool {
    let Some(dst) = slot(ev, cur) else {
        return false;
    };
    // SAFETY: `dst..dst + max` lies in the data area (see `DATA_CAP`).
    let n = unsafe { raw::bpf_probe_read_kernel_str(dst.cast(), max, src.cast()) };
    if n <= 0 {
        return false;
    }
    cur.off += n as usize;
    true
}

/// Copies a NUL-terminated user string into the data area.
#[inline(always)]
pub(crate) fn push_user_str(ev: &mut RawEvent, cur: &mut Cursor, src: u64) -> StrRef {
    let start = cur.off;
    let mut kind = StrKind::None;
    let mut cut = false;
    if let Some(dst) = slot(ev, cur) {
        // SAFETY: as in `push_kernel_str`.
        let n = unsafe { raw::bpf_probe_read_user_str(dst.cast(), DATA_HALF as u32, src as _) };
        if n > 0 {
            cur.off += n as usize;
            kind = StrKind::Raw;
            if n as usize == DATA_HALF {
                ev.header.flags |= FLAG_TRUNCATED;
                cut = true;
            }
        }
    }
    let mut s = str_ref(start, cur, kind);
    if cut {
        s.flags = STR_CUT;
    }
    s
}

#[inline(always)]
pub(crate) fn str_ref(start: usize, cur: &Cursor, kind: StrKind) -> StrRef {
    StrRef {
        off: start as u16,
        len: (cur.off - start) as u16,
        kind: kind as u16,
        flags: 0,
    }
}
