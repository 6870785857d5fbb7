//! Prevention: for processes of roles that enforce (marked by the daemon in
//! `ENFORCE_TGID`, or their cgroup in `ENFORCE_CGROUP`), the plaintext at
//! the TLS library's write is scanned for a card number before the library
//! encrypts it: a run of 13 to 19 digits (single spaces or dashes between
//! them allowed) that passes the Luhn check and starts like a card issuer's
//! number. On a find the caller is killed (SIGKILL: the function body never
//! runs, nothing is encrypted or sent) and the bytes are reported as a
//! prevented write. The scan runs under `bpf_loop`, eight bytes a step
//! (a chunk without a digit outside a run is skipped whole).

use aya_ebpf::helpers::{bpf_get_current_cgroup_id, bpf_get_current_pid_tgid, generated as raw};
use monitor_common::{
    EventKind, PayloadEvent, PayloadOp, SockInfo, COUNTER_PREVENTED, PAYLOAD_AREA, PAYLOAD_MAX,
    PAYLOAD_PREVENTED,
};

use crate::emit::{count, current_task, fill_header};
use crate::maps::{ENFORCE_CGROUP, ENFORCE_TGID, PAYLOAD_SCRATCH};
use crate::payload::{send_payload, stage_payload, Source};

/// The state of a scan, shared with [`scan_step`].
#[repr(C)]
struct Scan {
    cpu: u32,
    len: u32,
    /// Digits in the current run.
    run: u32,
    /// The previous byte was a separator inside a run.
    sep: u32,
    /// Luhn sums with the odd (`odd`) or even (`even`) positions doubled.
    odd: u32,
    even: u32,
    /// The run's first four digits.
    prefix: u32,
    found: u32,
    /// Where the chunk being taken a byte at a time starts.
    base: u32,
}

/// Whether the current process is to be checked.
#[inline(always)]
pub(crate) fn enforced() -> bool {
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    if ENFORCE_TGID.get_ptr(&tgid).is_some() {
        return true;
    }
    // SAFETY: helper without preconditions.
    let cgroup = unsafe { bpf_get_current_cgroup_id() };
    ENFORCE_CGROUP.get_ptr(&cgroup).is_some()
}

/// Whether a number's first four digits (fewer when it is shorter) are a
/// card issuer's: Visa 4, Mastercard 51-55 and 2221-2720, American Express
/// 34 and 37, Discover 6011, 644-649 and 65, JCB 3528-3589, Diners 300-305,
/// 36 and 38.
#[inline(always)]
fn issuer(p4: u32) -> bool {
    let p1 = p4 / 1000;
    let p2 = p4 / 100;
    let p3 = p4 / 10;
    p1 == 4
        || (51..=55).contains(&p2)
        || (2221..=2720).contains(&p4)
        || p2 == 34
        || p2 == 37
        || p4 == 6011
        || (644..=649).contains(&p3)
        || p2 == 65
        || (3528..=3589).contains(&p4)
        || (300..=305).contains(&p3)
        || p2 == 36
        || p2 == 38
}

/// Ends the current digit run: a card if its length, Luhn sum and issuer fit.
#[inline(always)]
fn end_run(s: &mut Scan) {
    let n = s.run;
    if (13..=19).contains(&n) {
        // From the right, every second digit is doubled: the odd positions
        // (from the left) when the length is even, the even ones otherwise.
        let sum = if n % 2 == 0 { s.odd } else { s.even };
        if sum % 10 == 0 && issuer(s.prefix) {
            s.found = 1;
        }
    }
    s.run = 0;
    s.sep = 0;
    s.odd = 0;
    s.even = 0;
    s.prefix = 0;
}

/// Takes one byte into the scan.
#[inline(always)]
fn scan_byte(s: &mut Scan, b: u8) {
    if b.is_ascii_digit() {
        let d = (b - b'0') as u32;
        s.run += 1;
        if s.run <= 4 {
            s.prefix = s.prefix * 10 + d;
        }
        let doubled = if d * 2 > 9 { d * 2 - 9 } else { d * 2 };
        if s.run % 2 == 1 {
            s.odd += doubled;
            s.even += d;
        } else {
            s.odd += d;
            s.even += doubled;
        }
        s.sep = 0;
    } else if (b == b' ' || b == b'-') && s.run > 0 && s.sep == 0 {
        s.sep = 1;
    } else if s.run > 0 {
        end_run(s);
    }
}

/// Bytes one `bpf_loop` step looks at.
const CHUNK: usize = 8;

/// One byte of a chunk that has a digit in it (or continues a run): 0 to
/// go on, 1 to stop.
extern "C" fn byte_step(k: u64, ctx: *mut core::ffi::c_void) -> i64 {
    // SAFETY: `ctx` is the `Scan` passed to bpf_loop by `scan_step`.
    let s = unsafe { &mut *(ctx as *mut Scan) };
    let at = s.base as usize + k as usize;
    if at >= s.len as usize {
        return 1;
    }
    let Some(ev) = PAYLOAD_SCRATCH.get_ptr(s.cpu) else {
        return 1;
    };
    // SAFETY: this CPU's slot; the index is masked inside the data area.
    let b = unsafe { (*ev).data[at & (PAYLOAD_AREA - 1)] };
    scan_byte(s, b);
    0
}

/// One chunk of a scan: 0 to go on, 1 to stop. A chunk with no digit,
/// outside a run, is skipped whole; any other is taken a byte at a time.
extern "C" fn scan_step(i: u64, ctx: *mut core::ffi::c_void) -> i64 {
    // SAFETY: `ctx` is the `Scan` passed to bpf_loop by `card_in`.
    let s = unsafe { &mut *(ctx as *mut Scan) };
    let start = (i as usize) * CHUNK;
    if start >= s.len as usize || s.found != 0 {
        return 1;
    }
    let Some(ev) = PAYLOAD_SCRATCH.get_ptr(s.cpu) else {
        return 1;
    };
    // SAFETY: this CPU's slot; the masked offset keeps the 8 bytes inside
    // the data area.
    let word = unsafe {
        core::ptr::read_unaligned(
            (*ev).data.as_ptr().add(start & (PAYLOAD_AREA - CHUNK)) as *const u64
        )
    };
    if s.run == 0 && !has_digit(word) {
        return 0;
    }
    s.base = start as u32;
    // SAFETY: `byte_step` has the callback signature bpf_loop expects.
    unsafe { raw::bpf_loop(CHUNK as u32, byte_step as *mut _, ctx, 0) };
    0
}

/// Whether any of the eight bytes of `w` is an ASCII digit (SWAR: no branch
/// per byte for the verifier to follow).
#[inline(always)]
fn has_digit(w: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // XOR with '0' maps exactly the digits to 0..=9 in their byte.
    let x = w ^ (0x30 * ONES);
    // A byte is below 10 when its low seven bits plus 0x76 stay below 0x80
    // (no carry crosses bytes: 0x7f + 0x76 < 0x100) and its high bit is clear.
    let y = (x & !HIGH).wrapping_add(0x76 * ONES);
    !(y | x) & HIGH != 0
}

/// Whether this CPU's payload slot holds a card number in its first `len` bytes.
#[inline(always)]
fn card_in(cpu: u32, len: usize) -> bool {
    let mut s = Scan {
        cpu,
        len: len as u32,
        run: 0,
        sep: 0,
        odd: 0,
        even: 0,
        prefix: 0,
        found: 0,
        base: 0,
    };
    // SAFETY: `scan_step` has the callback signature bpf_loop expects; `s` outlives the call.
    unsafe {
        raw::bpf_loop(
            (PAYLOAD_MAX / CHUNK) as u32,
            scan_step as *mut _,
            (&mut s as *mut Scan).cast(),
            0,
        )
    };
    if s.found == 0 {
        end_run(&mut s);
    }
    s.found != 0
}

/// At a write of an enforced process (a TLS library's, or a socket
/// syscall's): copies up to the payload limit of what `src` holds, and when
/// it holds a card number kills the caller and reports the write as
/// prevented. True when it did. At a TLS write nothing is sent; a
/// syscall is checked at its exit, when its bytes have left (at its entry
/// they would have left too: the kernel completes the call before the
/// signal lands).
#[inline(always)]
pub(crate) fn prevent_card(
    op: PayloadOp,
    fd: i32,
    sock: SockInfo,
    flags: u32,
    src: Source,
    size: i64,
) -> bool {
    if size <= 0 || !enforced() {
        return false;
    }
    // SAFETY: helper without preconditions.
    let cpu = unsafe { raw::bpf_get_smp_processor_id() };
    let Some(ev) = PAYLOAD_SCRATCH.get_ptr_mut(cpu) else {
        return false;
    };
    // SAFETY: this CPU's slot.
    let ev: &mut PayloadEvent = unsafe { &mut *ev };
    let captured = stage_payload(ev, src, size);
    if !card_in(cpu, captured) {
        return false;
    }
    // SAFETY: helper without preconditions; SIGKILL cannot be caught.
    unsafe { raw::bpf_send_signal(9) };
    count(COUNTER_PREVENTED);
    fill_header(&mut ev.header, current_task(), EventKind::Payload);
    send_payload(ev, op, fd, size, captured, flags | PAYLOAD_PREVENTED, sock);
    true
}
