//! Streaming: feed the chunks of one stream in order; findings carry
//! absolute offsets, a value split across chunks is found once, and the
//! memory kept per stream is bounded by the overlap window.

use crate::{Detector, Finding};

/// Bytes of the previous chunks kept for values that straddle a boundary,
/// with their context. A value that starts in them is seen whole with what
/// it needs before it: a date answering the turn before, with the 160 bytes
/// searched for that turn's question, when the date's speaker label and
/// head take at most 32 bytes before the boundary (a date is short: one
/// that starts earlier ended, and was found, before it); and a long value
/// (an address) with its 48 bytes of hotword context. Measured on the
/// generated corpus and the independent set cut into 37-, 97- and 200-byte
/// chunks and into lines: every finding of the whole text is found. Every
/// feed rescans this tail, so it is kept small: payload sends are often a
/// few hundred bytes. A value longer than this split across chunks (a long
/// JWT) is found only if its head validates on its own (a PEM block is,
/// from its BEGIN line).
pub const OVERLAP: usize = crate::scan::PREVIOUS_TURN + 32;
/// Findings ending this close to the end of what has been seen wait for the
/// next chunk. Zero: a payload stream may never send another chunk, so a
/// value is reported as soon as its last byte arrives (a value that a later
/// chunk extends is then reported again, longer).
pub const HOLD: usize = 0;
/// Capacity a stream's carry keeps after [`StreamScanner::feed_joined`]:
/// room for the tail and one large send.
const KEPT_CAPACITY: usize = OVERLAP + 4096;

/// The state of one stream.
#[derive(Debug, Default)]
pub struct StreamScanner {
    /// The tail of the stream kept for the next chunk.
    carry: Vec<u8>,
    /// Absolute offset of `carry[0]`.
    carry_start: u64,
    /// Findings ending at or before this absolute offset were already reported.
    reported_until: u64,
}

impl StreamScanner {
    /// A new stream.
    pub fn new() -> Self {
        Self {
            carry: Vec::new(),
            carry_start: 0,
            reported_until: 0,
        }
    }

    /// Bytes held for the next chunk (at most [`OVERLAP`] between calls).
    pub fn carry_len(&self) -> usize {
        self.carry.len()
    }

    /// Bytes seen so far.
    pub fn position(&self) -> u64 {
        self.carry_start + self.carry.len() as u64
    }

    /// Feeds the next chunk; returns the findings now complete, with absolute offsets.
    pub fn feed(&mut self, detector: &Detector, chunk: &[u8]) -> Vec<Finding> {
        self.carry.extend_from_slice(chunk);
        let found = self.scan(detector, false);
        self.keep_tail();
        found
    }

    /// Feeds several chunks of the stream, in order, as one: the text is
    /// scanned once, not once a chunk with the kept tail before each, so a
    /// burst of small sends costs about what one send of their bytes
    /// costs. Returns each chunk's findings: those whose last byte is in
    /// it. A value that one chunk ends and the next extends is reported
    /// once, whole, where [`StreamScanner::feed`] chunk by chunk would also
    /// report its first part.
    pub fn feed_joined(&mut self, detector: &Detector, chunks: &[&[u8]]) -> Vec<Vec<Finding>> {
        if chunks.is_empty() {
            return Vec::new();
        }
        let mut ends = Vec::with_capacity(chunks.len());
        for chunk in chunks {
            self.carry.extend_from_slice(chunk);
            ends.push(self.position());
        }
        let mut each = vec![Vec::new(); chunks.len()];
        for f in self.scan(detector, false) {
            // Its last byte's chunk; the first of several that end there
            // if some are empty.
            let k = ends.partition_point(|&e| e < f.end as u64);
            each[k.min(ends.len() - 1)].push(f);
        }
        self.keep_tail();
        if self.carry.capacity() > KEPT_CAPACITY {
            // What a long burst grew is not kept for the stream's life.
            self.carry.shrink_to(KEPT_CAPACITY);
        }
        each
    }

    /// Keeps the tail: everything not yet final plus context before it.
    fn keep_tail(&mut self) {
        if self.carry.len() > OVERLAP {
            let drop = self.carry.len() - OVERLAP;
            self.carry.drain(..drop);
            self.carry_start += drop as u64;
        }
    }

    /// Ends the stream: reports what was held back at the end.
    pub fn finish(mut self, detector: &Detector) -> Vec<Finding> {
        self.scan(detector, true)
    }

    fn scan(&mut self, detector: &Detector, last: bool) -> Vec<Finding> {
        let end = self.position();
        let settled = if last {
            end
        } else {
            end.saturating_sub(HOLD as u64)
        };
        let mut out = Vec::new();
        // What ends in bytes already reported is not built at all.
        let reported = self.reported_until.saturating_sub(self.carry_start) as usize;
        for mut f in detector.scan_ending_after(&self.carry, reported) {
            let (s, e) = (
                self.carry_start + f.start as u64,
                self.carry_start + f.end as u64,
            );
            if e > settled {
                continue;
            }
            f.start = s as usize;
            f.end = e as usize;
            out.push(f);
        }
        self.reported_until = self.reported_until.max(settled);
        out
    }
}
