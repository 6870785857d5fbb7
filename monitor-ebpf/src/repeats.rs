//! Repeated opens counted in the kernel: a process opening the same file
//! with the same flags again within the daemon's repeat window costs a
//! count, not a record. The first open of a window is sent as usual; the
//! ones after it add to the window's count; the daemon collects the counts
//! by calling its own `monitor_flush_repeats`, where `repeats_flush` sends
//! one record per window with the opens counted since the last collection.
//!
//! The BPF target has no atomic add, so no count has two writers: a window
//! belongs to one CPU (the CPU is part of its key), its `count` is only
//! ever raised by programs on that CPU, and `reported` only by the flush,
//! which sends `count - reported`. Nothing counted is lost or sent twice.
//! A window is removed only after it has been idle for longer than a
//! window could last, so no open is counted into a removed window.

use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_ktime_get_ns, generated as raw},
    macros::uprobe,
    programs::ProbeContext,
};
use core::ptr::{addr_of, read_volatile};
use monitor_common::{
    RawEvent, COUNTER_REPEATS_COUNTED, COUNTER_REPEATS_UNCOUNTED, RAW_EVENT_FIXED_LEN,
    REPEAT_NOT_COUNTED,
};

use crate::emit::{clear_strs, count, self_tgid, try_output};
use crate::maps::{RepeatKey, RepeatWindow, CONFIG, REPEATS, REPEAT_SCRATCH};

const BPF_NOEXIST: u64 = 1;
/// A window idle this long (or twice the window, if longer) is removed.
const IDLE_NS: u64 = 1_000_000_000;

fn window_ns() -> u64 {
    // SAFETY: as in `offset!`.
    unsafe { read_volatile(addr_of!(CONFIG.repeat_window_ns)) }
}

#[inline(always)]
fn key(path_id: u64, flags: u64, tgid: u32) -> RepeatKey {
    RepeatKey {
        path_id,
        flags,
        tgid,
        // SAFETY: helper without preconditions.
        cpu: unsafe { raw::bpf_get_smp_processor_id() },
    }
}

/// Counts a successful open of the cached path `path_id` when the process
/// opened it with these flags within the window: true when it was counted
/// (and must not be sent).
#[inline(always)]
pub(crate) fn counted(path_id: u64, flags: u64) -> bool {
    let window = window_ns();
    if window == 0 || flags & REPEAT_NOT_COUNTED != 0 {
        return false;
    }
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    let Some(w) = REPEATS.get_ptr_mut(key(path_id, flags, tgid)) else {
        return false;
    };
    // SAFETY: helper without preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    // SAFETY: the window is written only from this CPU, but for `reported`.
    let w = unsafe { &mut *w };
    if now.wrapping_sub(w.opened_ns) >= window {
        return false;
    }
    // SAFETY: `reported` is written by the flush on any CPU.
    if w.count == unsafe { read_volatile(addr_of!(w.reported)) } {
        w.since_ns = now;
    }
    w.count += 1;
    w.last_ns = now;
    count(COUNTER_REPEATS_COUNTED);
    true
}

/// Opens a window for the record `ev` just sent (a successful open whose
/// path has an id): opens like it within the window are counted.
#[inline(always)]
pub(crate) fn open_window(ev: &RawEvent) {
    // SAFETY: the caller sent a file record.
    let (path_id, flags) = unsafe { (ev.body.file.path_id, ev.body.file.flags) };
    if window_ns() == 0 || path_id == 0 || flags & REPEAT_NOT_COUNTED != 0 {
        return;
    }
    let k = key(path_id, flags, ev.header.tgid);
    if let Some(w) = REPEATS.get_ptr_mut(k) {
        // SAFETY: as in `counted`.
        let w = unsafe { &mut *w };
        w.opened_ns = ev.header.ktime_ns;
        w.header = ev.header;
        w.body = ev.body;
        return;
    }
    let Some(w) = REPEAT_SCRATCH.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: per-CPU slot.
    let w = unsafe { &mut *w };
    w.header = ev.header;
    w.body = ev.body;
    w.opened_ns = ev.header.ktime_ns;
    w.since_ns = 0;
    w.last_ns = 0;
    w.count = 0;
    w.reported = 0;
    if REPEATS.insert(k, &*w, BPF_NOEXIST).is_err() {
        count(COUNTER_REPEATS_UNCOUNTED);
    }
}

/// State of one collection, shared with [`flush_one`].
#[repr(C)]
struct Flush {
    now: u64,
    idle: u64,
}

/// Collects the counts: attached to the daemon's own
/// `monitor_flush_repeats`, which it calls when the kernel counted
/// something (every 100 ms at most), once a second, and at shutdown.
#[uprobe]
pub fn repeats_flush(_ctx: ProbeContext) -> u32 {
    if (bpf_get_current_pid_tgid() >> 32) as u32 != self_tgid() {
        return 0;
    }
    let window = window_ns();
    let mut f = Flush {
        // SAFETY: helper without preconditions.
        now: unsafe { bpf_ktime_get_ns() },
        idle: (2 * window).max(IDLE_NS),
    };
    // SAFETY: `flush_one` has the callback signature the helper expects;
    // `f` outlives the call; the map pointer is the map's definition.
    unsafe {
        raw::bpf_for_each_map_elem(
            addr_of!(REPEATS) as *mut _,
            flush_one as *mut _,
            (&mut f as *mut Flush).cast(),
            0,
        )
    };
    0
}

/// Sends the count one window gathered since the last collection, or
/// removes a window long idle. 0 to go on.
extern "C" fn flush_one(
    _map: *mut core::ffi::c_void,
    key: *const RepeatKey,
    w: *mut RepeatWindow,
    ctx: *mut core::ffi::c_void,
) -> i64 {
    // SAFETY: the helper passes a live element and the `Flush` given to it.
    let (w, f) = unsafe { (&mut *w, &*(ctx as *const Flush)) };
    // SAFETY: `count` is raised on the window's CPU meanwhile; a read sees
    // the old or the new value, and the rest waits for the next collection.
    let total = unsafe { read_volatile(addr_of!(w.count)) };
    let fresh = total.wrapping_sub(w.reported);
    if fresh == 0 {
        if f.now.wrapping_sub(w.last_ns) > f.idle && f.now.wrapping_sub(w.opened_ns) > f.idle {
            // SAFETY: the key is the element's own.
            let _ = REPEATS.remove(unsafe { &*key });
        }
        return 0;
    }
    let Some(rec) = REPEAT_SCRATCH.get_ptr_mut(1) else {
        return 1;
    };
    // SAFETY: per-CPU slot; the record is the window's header and body.
    let rec = unsafe { &mut *rec };
    rec.header = w.header;
    rec.header.ktime_ns = w.since_ns;
    rec.body = w.body;
    rec.body.file.repeats = fresh;
    rec.body.file.repeats_last_ns = w.last_ns;
    clear_strs(&mut rec.strs);
    // SAFETY: a `RepeatWindow` starts with a record's fixed part.
    let bytes = unsafe {
        core::slice::from_raw_parts(rec as *const RepeatWindow as *const u8, RAW_EVENT_FIXED_LEN)
    };
    // A full ring buffer loses nothing here: the count waits for the next
    // collection.
    if try_output(bytes) {
        w.reported = total;
    }
    0
}
