//! The records taken from the ring buffer ahead of the pipeline: batches
//! copied out of it, and, while the daemon is behind, the backlog that
//! holds them in order in the daemon's own memory.
//!
//! The kernel's ring buffer is small and fixed (`--ring-mib`, locked
//! kernel memory); when it fills, records of every kind are lost. A burst
//! of sends faster than the detector scans them (one sender on one core
//! outruns one core of detection) is therefore moved, whole, into a
//! backlog of up to `--backlog-mib` that exists only while the daemon is
//! behind, and is scanned from there in order. The daemon then answers
//! later, not less: nothing is passed over until the backlog itself is
//! seven eighths full, and only then are the busiest connections' sends
//! recorded unscanned, as they are with no backlog at all.

use std::collections::VecDeque;

use crate::sensor::Sensor;

/// Records in one batch at most.
pub const BATCH: usize = 4096;
/// Bytes of records in one batch at most: a batch's records are copied out
/// of the ring, and sends of up to 16 KiB each would otherwise make that
/// 64 MiB.
pub const BATCH_BYTES: usize = 2 << 20;
/// Sends of a batch scanned, at most, while the daemon is behind
/// ([`crate::payload::Shards::inspect_within`]): an eighth of a batch.
pub const SCAN_WHEN_BEHIND: usize = BATCH / 8;
/// The backlog's default bound, MiB (`monitor run --backlog-mib`).
pub const DEFAULT_BACKLOG_MIB: u64 = 256;

/// Records copied out of the ring buffer back to back, so that a batch's
/// sends can be inspected together before any record goes on.
#[derive(Debug, Default)]
pub struct Batch {
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

impl Batch {
    /// An empty batch with room for a full one, so that filling it copies
    /// each record once.
    fn with_room() -> Self {
        Self {
            bytes: Vec::with_capacity(BATCH_BYTES + 2 * monitor_common::PAYLOAD_MAX + 4096),
            ends: Vec::with_capacity(BATCH),
        }
    }

    /// Appends one record as read from the ring buffer.
    pub fn push(&mut self, record: &[u8]) {
        self.bytes.extend_from_slice(record);
        self.ends.push(self.bytes.len());
    }

    /// True when no record was pushed.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// How many records were pushed.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// The records' bytes in all.
    pub fn bytes(&self) -> usize {
        self.bytes.len()
    }

    /// Whether the batch holds [`BATCH`] records or [`BATCH_BYTES`] of them.
    pub fn is_full(&self) -> bool {
        self.len() >= BATCH || self.bytes() >= BATCH_BYTES
    }

    /// Moves records from the ring buffer in until the batch is full or
    /// the ring empty; returns how many.
    fn fill(&mut self, sensor: &mut Sensor) -> usize {
        let room = BATCH.saturating_sub(self.len());
        let room_bytes = BATCH_BYTES.saturating_sub(self.bytes());
        sensor
            .drain_bytes(room, room_bytes, |record| self.push(record))
            .0
    }

    /// The records, in order.
    pub fn records(&self) -> Vec<&[u8]> {
        std::iter::once(0)
            .chain(self.ends.iter().copied())
            .zip(self.ends.iter().copied())
            .map(|(from, to)| &self.bytes[from..to])
            .collect()
    }
}

/// Batches taken from the ring buffer and not yet handled, oldest first,
/// within a bound in bytes.
#[derive(Debug)]
pub struct Backlog {
    batches: VecDeque<Batch>,
    bytes: usize,
    bound: usize,
    peak: usize,
}

impl Backlog {
    /// A backlog of at most `bound` bytes of records (0: none, the ring
    /// buffer alone holds what waits).
    pub fn new(bound: usize) -> Self {
        Self {
            batches: VecDeque::new(),
            bytes: 0,
            bound,
            peak: 0,
        }
    }

    /// True when nothing waits here.
    pub fn is_empty(&self) -> bool {
        self.batches.is_empty()
    }

    /// Bytes of records waiting here now.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The most bytes that ever waited here at once.
    pub fn peak(&self) -> usize {
        self.peak
    }

    /// Whether another full batch fits.
    pub fn has_room(&self) -> bool {
        self.bytes + BATCH_BYTES <= self.bound
    }

    /// Whether what waits here fills more than seven eighths of the bound:
    /// the daemon is so far behind that it scans only part of each batch.
    pub fn nearly_full(&self) -> bool {
        self.bound > 0 && self.bytes > self.bound / 8 * 7
    }

    /// Appends a batch at the back, whatever the bound (the caller checks
    /// [`Backlog::has_room`]).
    pub fn push(&mut self, batch: Batch) {
        if batch.is_empty() {
            return;
        }
        self.bytes += batch.bytes();
        self.peak = self.peak.max(self.bytes);
        self.batches.push_back(batch);
    }

    /// Takes the newest batch back when it is not full, to be filled on.
    pub fn take_open(&mut self) -> Option<Batch> {
        if self.batches.back()?.is_full() {
            return None;
        }
        let batch = self.batches.pop_back()?;
        self.bytes -= batch.bytes();
        Some(batch)
    }

    /// Takes the oldest batch.
    pub fn pop(&mut self) -> Option<Batch> {
        let batch = self.batches.pop_front()?;
        self.bytes -= batch.bytes();
        Some(batch)
    }
}

/// Where the pipeline's batches come from: the ring buffer, and behind it
/// the backlog.
pub struct Intake {
    backlog: Backlog,
    /// Handled batches, emptied, to be filled again: a flood moves hundreds
    /// of MiB a second through here, and fresh memory costs a page fault
    /// every 4 KiB.
    spare: Vec<Batch>,
}

/// Emptied batches kept for reuse, at most.
const SPARE: usize = 4;

/// One batch to handle, and the most of its sends to scan (none: every one).
pub struct Taken {
    /// The records, in the order the kernel sent them.
    pub batch: Batch,
    /// The sends to scan at most ([`crate::payload::Shards::inspect_within`]).
    pub budget: Option<usize>,
    /// Whether more records may be waiting (in the ring or the backlog).
    pub more: bool,
}

impl Intake {
    /// Batches read with a backlog of at most `backlog_bytes`.
    pub fn new(backlog_bytes: usize) -> Self {
        Self {
            backlog: Backlog::new(backlog_bytes),
            spare: Vec::new(),
        }
    }

    /// Gives back a handled batch, to be filled again.
    pub fn recycle(&mut self, mut batch: Batch) {
        if self.spare.len() < SPARE && batch.bytes.capacity() >= BATCH_BYTES {
            batch.bytes.clear();
            batch.ends.clear();
            self.spare.push(batch);
        }
    }

    fn empty_batch(&mut self) -> Batch {
        self.spare.pop().unwrap_or_else(Batch::with_room)
    }

    /// The backlog.
    pub fn backlog(&self) -> &Backlog {
        &self.backlog
    }

    /// Moves the ring buffer's records into the backlog, as much as its
    /// bound takes, when records wait there already or more than a quarter
    /// of the ring waits (the daemon is behind). The pipeline calls it between
    /// batches, and within a long one.
    pub fn top_up(&mut self, sensor: &mut Sensor) {
        let ring_filling = || sensor.waiting_bytes() > sensor.ring_bytes() / 4;
        if self.backlog.is_empty() && !(self.backlog.has_room() && ring_filling()) {
            return;
        }
        // The newest batch is filled on before another is begun, so that
        // the backlog's batches are full ones, their sends scanned together.
        while self.backlog.has_room() {
            let mut batch = match self.backlog.take_open() {
                Some(open) => open,
                None => self.empty_batch(),
            };
            let n = batch.fill(sensor);
            let full = batch.is_full();
            if batch.is_empty() {
                self.recycle(batch);
            } else {
                self.backlog.push(batch);
            }
            if n == 0 || !full {
                break;
            }
        }
    }

    /// The next batch, in the kernel's order (empty when nothing waits).
    ///
    /// The backlog's oldest batch when it holds any (after
    /// [`Intake::top_up`]); otherwise one batch read from the ring, whose
    /// records before its first send are handed to `first` at once rather
    /// than copied. The budget is set when scanning every send would let
    /// the ring fill (with no backlog, or with the backlog at its bound),
    /// or the backlog pass seven eighths of its bound.
    pub fn take(&mut self, sensor: &mut Sensor, mut first: impl FnMut(&[u8])) -> Taken {
        self.top_up(sensor);
        if !self.backlog.is_empty() {
            let behind = self.backlog.nearly_full() || sensor.behind(0);
            if let Some(batch) = self.backlog.pop() {
                return Taken {
                    batch,
                    budget: behind.then_some(SCAN_WHEN_BEHIND),
                    more: true,
                };
            }
        }
        let mut batch = self.empty_batch();
        let (n, read) = sensor.drain_bytes(BATCH, BATCH_BYTES, |bytes| {
            if batch.is_empty() && !crate::wire::is_payload(bytes) {
                first(bytes)
            } else {
                batch.push(bytes)
            }
        });
        Taken {
            budget: sensor.behind(read).then_some(SCAN_WHEN_BEHIND),
            batch,
            more: n == BATCH || read >= BATCH_BYTES,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(records: &[&[u8]]) -> Batch {
        let mut b = Batch::default();
        for r in records {
            b.push(r);
        }
        b
    }

    #[test]
    fn a_batch_gives_back_its_records_in_order() {
        let b = batch(&[b"one", b"", b"three"]);
        assert_eq!(b.records(), vec![&b"one"[..], b"", b"three"]);
        assert_eq!((b.len(), b.bytes()), (3, 8));
        assert!(Batch::default().records().is_empty());
    }

    #[test]
    fn the_backlog_is_first_in_first_out_within_its_bound() {
        let mut log = Backlog::new(3 * BATCH_BYTES);
        assert!(log.is_empty() && log.has_room() && !log.nearly_full());
        log.push(Batch::default());
        assert!(log.is_empty(), "an empty batch is not kept");
        log.push(batch(&[b"a", b"bb"]));
        log.push(batch(&[b"ccc"]));
        assert_eq!((log.bytes(), log.peak()), (6, 6));
        assert_eq!(log.pop().unwrap().records(), vec![&b"a"[..], b"bb"]);
        assert_eq!((log.bytes(), log.peak()), (3, 6));
        assert_eq!(log.pop().unwrap().records(), vec![&b"ccc"[..]]);
        assert!(log.pop().is_none() && log.is_empty());

        let big = vec![0u8; BATCH_BYTES];
        log.push(batch(&[&big]));
        log.push(batch(&[&big]));
        assert!(log.has_room() && !log.nearly_full());
        log.push(batch(&[&big, b"x"]));
        assert!(!log.has_room() && log.nearly_full());
        assert_eq!(log.peak(), 3 * BATCH_BYTES + 1);
    }

    #[test]
    fn no_backlog_has_no_room_and_is_never_nearly_full() {
        let log = Backlog::new(0);
        assert!(!log.has_room() && !log.nearly_full());
    }
}
