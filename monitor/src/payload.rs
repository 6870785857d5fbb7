//! Payload stage: per-connection outbound streams. Each payload event's
//! bytes are handed, in order, to a [`StreamConsumer`] (the PII detector),
//! so a value split across two sends is seen whole; the destination is
//! named from the TLS ClientHello (SNI) or the HTTP `Host` header; the event
//! gets a keyed digest and the findings, never the bytes.

use foldhash::{HashMap, HashMapExt as _, HashSet};

use monitor_common::PayloadBody;
use monitor_pii::{Detector, Finding, StreamScanner};

use crate::event::{PayloadInfo, PiiFinding};
use crate::wire::{Body, Record};

/// Most streams kept; the least recently used is dropped (and counted) past this.
pub const MAX_STREAMS: usize = 16384;

/// One connection of one process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnKey {
    /// Process.
    pub tgid: u32,
    /// Socket fd.
    pub fd: i32,
    /// Distinguishes connections that reuse the fd number.
    pub conn_id: u64,
}

/// One direction of bytes on a connection: the socket's own bytes
/// (ciphertext for TLS, plaintext otherwise), or the TLS plaintext.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StreamKey {
    /// The connection.
    pub conn: ConnKey,
    /// Plaintext from the TLS library.
    pub tls: bool,
    /// Received rather than sent.
    pub inbound: bool,
}

/// Receives each stream's bytes in order and reports what it finds, with
/// offsets counted from the first byte it was given.
pub trait StreamConsumer {
    /// Per-stream state.
    type State: Default;
    /// Takes the next bytes of a stream.
    fn consume(&self, state: &mut Self::State, bytes: &[u8]) -> Vec<Finding>;
    /// Takes the next several pieces of a stream at once; returns each
    /// piece's findings (those that end in it).
    fn consume_joined(&self, state: &mut Self::State, pieces: &[&[u8]]) -> Vec<Vec<Finding>> {
        pieces.iter().map(|p| self.consume(state, p)).collect()
    }
    /// A keyed digest of one payload.
    fn digest(&self, bytes: &[u8]) -> String;
}

impl StreamConsumer for Detector {
    type State = StreamScanner;

    fn consume(&self, state: &mut StreamScanner, bytes: &[u8]) -> Vec<Finding> {
        state.feed(self, bytes)
    }

    fn consume_joined(&self, state: &mut StreamScanner, pieces: &[&[u8]]) -> Vec<Vec<Finding>> {
        state.feed_joined(self, pieces)
    }

    fn digest(&self, bytes: &[u8]) -> String {
        Detector::digest(self, bytes).to_string()
    }
}

impl StreamConsumer for std::sync::Arc<Detector> {
    type State = StreamScanner;

    fn consume(&self, state: &mut StreamScanner, bytes: &[u8]) -> Vec<Finding> {
        state.feed(self, bytes)
    }

    fn consume_joined(&self, state: &mut StreamScanner, pieces: &[&[u8]]) -> Vec<Vec<Finding>> {
        state.feed_joined(self, pieces)
    }

    fn digest(&self, bytes: &[u8]) -> String {
        Detector::digest(self, bytes).to_string()
    }
}

struct Stream<S> {
    state: S,
    /// Bytes sent on the stream so far.
    offset: u64,
    /// Stream offset of the first byte `state` was given.
    base: u64,
    last_used: u64,
    /// This stream's sends of the batch being fed, waiting to be scanned
    /// together: each one's place in the batch's output and in its steps.
    waiting: Vec<(u32, u32)>,
    /// Their bytes.
    waiting_bytes: usize,
}

/// Places kept for a stream's waiting sends between batches.
const KEPT_WAITING: usize = 64;

/// Most bytes of one stream's sends that [`PayloadStage::feed_batch`]
/// scans together.
pub const JOIN_MAX: usize = 32 * 1024;

/// The connection `conn`'s fd carried before, if `conn` is another (the fd
/// was closed and reused); `before` is [`PayloadStage::carried`].
fn reused(conn: ConnKey, before: Option<u64>) -> Option<ConnKey> {
    match before {
        Some(old) if old != conn.conn_id => Some(ConnKey {
            conn_id: old,
            ..conn
        }),
        _ => None,
    }
}

/// The stream a send belongs to.
fn stream_key(tgid: u32, body: &PayloadBody) -> StreamKey {
    StreamKey {
        conn: ConnKey {
            tgid,
            fd: body.fd,
            conn_id: body.sock.conn_id,
        },
        tls: body.flags & monitor_common::PAYLOAD_TLS != 0,
        inbound: body.flags & monitor_common::PAYLOAD_INBOUND != 0,
    }
}

/// A stream's findings as the event carries them, offsets from the
/// stream's first byte.
fn with_base(findings: Vec<Finding>, base: u64) -> Vec<PiiFinding> {
    findings
        .into_iter()
        .map(|f| {
            let mut f = PiiFinding::from(f);
            f.start += base;
            f.end += base;
            f
        })
        .collect()
}

/// The payload stage's state.
pub struct PayloadStage<C: StreamConsumer = std::sync::Arc<Detector>> {
    consumer: C,
    streams: HashMap<StreamKey, Stream<C::State>>,
    hosts: HashMap<ConnKey, String>,
    /// The connection each (process, fd) carried last: bytes of another
    /// connection on the same fd mean the fd was closed and reused, so the
    /// old connection's streams and name go. State follows open sockets,
    /// not every connection a long-lived process ever made.
    open: HashMap<(u32, i32), u64>,
    tick: u64,
    evicted: u64,
    /// Streams kept at most.
    max_streams: usize,
    /// Whether events get the payload's keyed digest.
    digests: bool,
    /// The streams with sends waiting in [`PayloadStage::feed_batch`].
    pending: Vec<StreamKey>,
}

impl<C: StreamConsumer> PayloadStage<C> {
    /// A stage handing stream bytes to `consumer`.
    pub fn new(consumer: C) -> Self {
        Self {
            consumer,
            streams: HashMap::new(),
            hosts: HashMap::new(),
            open: HashMap::new(),
            tick: 0,
            evicted: 0,
            max_streams: MAX_STREAMS,
            digests: true,
            pending: Vec::new(),
        }
    }

    /// Leaves the keyed digest out of events: the record does not keep
    /// it, only the event stream shows it, and it costs a third of a
    /// microsecond a send.
    pub fn without_digests(mut self) -> Self {
        self.digests = false;
        self
    }

    /// Hands later bytes to `consumer` (a reload); open streams keep their
    /// state, so a value split across the change is still found.
    pub fn set_consumer(&mut self, consumer: C) {
        self.consumer = consumer;
    }

    /// Streams dropped because there were too many.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    /// Streams kept.
    pub fn len(&self) -> usize {
        self.streams.len()
    }

    /// True when no stream is kept.
    pub fn is_empty(&self) -> bool {
        self.streams.is_empty()
    }

    /// Inspects the bytes `bytes` that process `tgid` moved, as `body`
    /// describes them, in their stream: a batch of one send.
    pub fn feed(&mut self, tgid: u32, body: &PayloadBody, bytes: &[u8]) -> Inspection {
        let send = Step::Send {
            index: 0,
            tgid,
            body: *body,
            bytes,
        };
        let mut done = self.feed_batch(&[send], &Default::default());
        done.pop().expect("one send, one inspection").inspection
    }

    /// Inspects a batch's steps in order, each stream's sends of the batch
    /// scanned together ([`StreamConsumer::consume_joined`]): a burst of
    /// small sends on one connection costs about one scan of their bytes,
    /// not one scan of each with the stream's kept tail before it. Each
    /// send gets what ends in it. A stream's waiting sends are scanned
    /// before anything that ends or restarts it: its process's exit, its
    /// fd's reuse, its eviction, a send cut short by the capture limit, or
    /// [`JOIN_MAX`] bytes waiting. The sends of the streams in `shed` are
    /// not scanned: each is placed in its stream (offsets go on) and the
    /// stream starts a new window after it, so no value is joined across
    /// bytes that were not seen.
    pub fn feed_batch(&mut self, steps: &[Step<'_>], shed: &HashSet<StreamKey>) -> Vec<Inspected> {
        let mut out: Vec<Inspected> = Vec::with_capacity(steps.len());
        for (at, step) in steps.iter().enumerate() {
            match *step {
                Step::Exit(tgid) => {
                    self.scan_waiting(steps, &mut out, |k| k.conn.tgid == tgid);
                    self.forget_process(tgid);
                }
                Step::Send {
                    index,
                    tgid,
                    body,
                    bytes,
                } => {
                    let key = stream_key(tgid, &body);
                    let before = self.carried(key.conn);
                    if let Some(old) = reused(key.conn, before) {
                        self.scan_waiting(steps, &mut out, |k| k.conn == old);
                        self.forget_conn(old);
                    }
                    let victim = self.victim(&key);
                    if let Some(victim) = victim {
                        self.scan_waiting(steps, &mut out, |k| *k == victim);
                    }
                    if shed.contains(&key) {
                        // Not scanned: what waits of the stream is scanned
                        // first, and its next bytes start a new window.
                        self.scan_waiting(steps, &mut out, |k| *k == key);
                        let (inspection, _, _) =
                            self.admit(key, (before, victim), &body, bytes, None);
                        out.push(Inspected { index, inspection });
                        self.restart(key);
                        continue;
                    }
                    let place = (out.len() as u32, at as u32);
                    let (inspection, cut, waiting) =
                        self.admit(key, (before, victim), &body, bytes, Some(place));
                    out.push(Inspected { index, inspection });
                    if cut || waiting >= JOIN_MAX {
                        self.scan_waiting(steps, &mut out, |k| *k == key);
                    }
                    if cut {
                        self.restart(key);
                    }
                }
            }
        }
        self.scan_waiting(steps, &mut out, |_| true);
        out
    }

    /// Scans the waiting sends of the streams `which` picks, writing each
    /// send's findings into its place in `out`.
    fn scan_waiting(
        &mut self,
        steps: &[Step<'_>],
        out: &mut [Inspected],
        which: impl Fn(&StreamKey) -> bool,
    ) {
        let mut i = 0;
        while i < self.pending.len() {
            if !which(&self.pending[i]) {
                i += 1;
                continue;
            }
            let key = self.pending.swap_remove(i);
            // Admitted, and nothing dropped it while its sends waited.
            let Some(stream) = self.streams.get_mut(&key) else {
                continue;
            };
            let bytes = |at: u32| match steps[at as usize] {
                Step::Send { bytes, .. } => bytes,
                Step::Exit(_) => &[],
            };
            if let [(slot, at)] = stream.waiting[..] {
                // One send: no joining to do.
                let found = self.consumer.consume(&mut stream.state, bytes(at));
                out[slot as usize].inspection.findings = with_base(found, stream.base);
            } else {
                let pieces: Vec<&[u8]> = stream.waiting.iter().map(|&(_, at)| bytes(at)).collect();
                let found = self.consumer.consume_joined(&mut stream.state, &pieces);
                for (&(slot, _), found) in stream.waiting.iter().zip(found) {
                    out[slot as usize].inspection.findings = with_base(found, stream.base);
                }
            }
            stream.waiting.clear();
            stream.waiting.shrink_to(KEPT_WAITING);
            stream.waiting_bytes = 0;
        }
    }

    /// The bookkeeping of a send before its bytes are scanned, once the
    /// connection its fd carried before is forgotten: the fd's connection,
    /// the stream (room made for it), the destination its first bytes
    /// name, the offsets and the digest. `room` is what
    /// [`PayloadStage::carried`] said before that and what
    /// [`PayloadStage::victim`] says now; the send waits in its stream, at
    /// `place` in the batch (`None`: it is not scanned, and gets no digest).
    /// Returns the inspection but its findings, whether the capture limit
    /// cut the send short (its stream restarts once its bytes are
    /// scanned), and the bytes waiting in its stream.
    fn admit(
        &mut self,
        key: StreamKey,
        room: (Option<u64>, Option<StreamKey>),
        body: &PayloadBody,
        bytes: &[u8],
        place: Option<(u32, u32)>,
    ) -> (Inspection, bool, usize) {
        self.tick += 1;
        let (conn, (before, victim)) = (key.conn, room);
        if conn.fd >= 0 && before != Some(conn.conn_id) {
            self.open.insert((conn.tgid, conn.fd), conn.conn_id);
        }
        if let Some(victim) = victim {
            self.streams.remove(&victim);
            self.evicted += 1;
        }
        let tick = self.tick;
        let stream = self.streams.entry(key).or_insert_with(|| Stream {
            state: C::State::default(),
            offset: 0,
            base: 0,
            last_used: tick,
            waiting: Vec::new(),
            waiting_bytes: 0,
        });
        // The first bytes a connection sends name its destination.
        let mut hello = false;
        if stream.offset == 0 && !key.inbound {
            let sni = tls_sni(bytes);
            hello = sni.is_some() && !key.tls;
            if let Some(host) = sni.or_else(|| http_host(bytes)) {
                self.hosts.entry(conn).or_insert(host);
            }
        }
        stream.last_used = tick;
        let stream_offset = stream.offset;
        stream.offset += body.size.max(0) as u64;
        if let Some(place) = place {
            if stream.waiting.is_empty() {
                self.pending.push(key);
            }
            stream.waiting.push(place);
            stream.waiting_bytes += bytes.len();
        }
        let inspection = Inspection {
            stream_offset,
            findings: Vec::new(),
            dest_host: self.hosts.get(&conn).cloned(),
            digest: if self.digests && place.is_some() {
                self.consumer.digest(bytes)
            } else {
                String::new()
            },
            hello,
            inspected: place.is_some(),
        };
        let waiting = stream.waiting_bytes;
        (inspection, i64::from(body.captured) < body.size, waiting)
    }

    /// Bytes past the capture limit were not seen: the stream's next bytes
    /// start a new window.
    fn restart(&mut self, key: StreamKey) {
        if let Some(stream) = self.streams.get_mut(&key) {
            stream.state = C::State::default();
            stream.base = stream.offset;
        }
    }

    /// The connection `conn`'s fd carried last (none for a new fd).
    fn carried(&self, conn: ConnKey) -> Option<u64> {
        if conn.fd < 0 {
            return None;
        }
        self.open.get(&(conn.tgid, conn.fd)).copied()
    }

    /// The stream to evict before `key`'s is made: the least recently used,
    /// when `key` is new and the stage is full.
    fn victim(&self, key: &StreamKey) -> Option<StreamKey> {
        if self.streams.len() < self.max_streams || self.streams.contains_key(key) {
            return None;
        }
        self.streams
            .iter()
            .min_by_key(|(_, s)| s.last_used)
            .map(|(k, _)| *k)
    }

    /// Forgets a process's streams (it exited).
    pub fn forget_process(&mut self, tgid: u32) {
        // Most exits are of processes that never sent: no walk for them.
        if self.is_empty() {
            return;
        }
        self.streams.retain(|k, _| k.conn.tgid != tgid);
        self.hosts.retain(|k, _| k.tgid != tgid);
        self.open.retain(|k, _| k.0 != tgid);
    }

    /// Forgets a closed connection's streams and name.
    fn forget_conn(&mut self, conn: ConnKey) {
        for (tls, inbound) in [(false, false), (false, true), (true, false), (true, true)] {
            self.streams.remove(&StreamKey { conn, tls, inbound });
        }
        self.hosts.remove(&conn);
    }
}

/// Fewest sends in a batch for [`Shards::inspect`] to run its shards on
/// threads of their own: starting one costs tens of microseconds, a send's
/// inspection a few.
pub const PARALLEL_MIN: usize = 64;

/// The payload inspection threads to run when `asked` for (`monitor run
/// --payload-threads`); 0 asks for the default: one per core but one (the
/// sender's), at most 8, so one on a machine of two cores or less.
pub fn threads(asked: usize) -> usize {
    match asked {
        0 => std::thread::available_parallelism()
            .map_or(1, |n| n.get().saturating_sub(1))
            .clamp(1, 8),
        n => n,
    }
}

/// One step of a batch for [`Shards::inspect`].
#[derive(Debug, Clone, Copy)]
pub enum Step<'a> {
    /// A send (or receive) to inspect: its place in the batch and what
    /// [`PayloadStage::feed`] takes.
    Send {
        /// Its place in the batch.
        index: usize,
        /// The process.
        tgid: u32,
        /// The record's payload fields.
        body: PayloadBody,
        /// The bytes captured.
        bytes: &'a [u8],
    },
    /// A process exited: its streams go, in order with its sends.
    Exit(u32),
}

/// What inspecting one send found: the payload fields it fills in.
#[derive(Debug, Clone, PartialEq)]
pub struct Inspection {
    /// Bytes sent on the stream before this send.
    pub stream_offset: u64,
    /// What the detector found, offsets in the stream.
    pub findings: Vec<PiiFinding>,
    /// The destination named by the stream's first bytes (SNI or Host).
    pub dest_host: Option<String>,
    /// The keyed digest of the bytes (empty without digests).
    pub digest: String,
    /// The bytes are a TLS ClientHello written in the clear: the process
    /// starts TLS on a socket, and its plaintext is readable only if some
    /// hooked library or binary serves it.
    pub hello: bool,
    /// False when the send was not scanned: the daemon was behind and its
    /// stream was one of the busiest of the batch ([`Shards::inspect_within`]).
    pub inspected: bool,
}

impl Inspection {
    /// Writes the fields into `info`; returns [`Inspection::hello`].
    pub fn fill(self, info: &mut PayloadInfo) -> bool {
        info.stream_offset = self.stream_offset;
        info.findings = self.findings;
        info.dest_host = self.dest_host;
        info.digest = self.digest;
        info.inspected = self.inspected;
        self.hello
    }
}

/// What inspecting one send of a batch found.
#[derive(Debug, PartialEq)]
pub struct Inspected {
    /// The send's place in the batch.
    pub index: usize,
    /// What its inspection gave.
    pub inspection: Inspection,
}

/// The payload stage sharded by connection: a (process, fd) always lands in
/// the same shard, so one connection's sends are fed in order, while the
/// shards of a busy batch inspect side by side on threads of their own.
pub struct Shards<C: StreamConsumer = std::sync::Arc<Detector>> {
    shards: Vec<PayloadStage<C>>,
}

impl<C> Shards<C>
where
    C: StreamConsumer + Clone + Send + Sync,
    C::State: Send,
{
    /// `n` shards (at least one) handing bytes to `consumer`; together they
    /// keep [`MAX_STREAMS`] streams.
    pub fn new(consumer: C, n: usize) -> Self {
        let n = n.max(1);
        let shards = (0..n)
            .map(|_| {
                let mut shard = PayloadStage::new(consumer.clone());
                shard.max_streams = MAX_STREAMS.div_ceil(n);
                shard
            })
            .collect();
        Self { shards }
    }

    /// As [`PayloadStage::without_digests`], for every shard.
    pub fn without_digests(mut self) -> Self {
        for shard in &mut self.shards {
            shard.digests = false;
        }
        self
    }

    /// How many shards.
    pub fn shards(&self) -> usize {
        self.shards.len()
    }

    /// As [`PayloadStage::set_consumer`], for every shard.
    pub fn set_consumer(&mut self, consumer: C) {
        for shard in &mut self.shards {
            shard.set_consumer(consumer.clone());
        }
    }

    /// As [`PayloadStage::forget_process`], in every shard.
    pub fn forget_process(&mut self, tgid: u32) {
        for shard in &mut self.shards {
            shard.forget_process(tgid);
        }
    }

    /// Streams dropped because there were too many.
    pub fn evicted(&self) -> u64 {
        self.shards.iter().map(|s| s.evicted).sum()
    }

    /// Streams kept.
    pub fn len(&self) -> usize {
        self.shards.iter().map(PayloadStage::len).sum()
    }

    /// True when no stream is kept.
    pub fn is_empty(&self) -> bool {
        self.shards.iter().all(PayloadStage::is_empty)
    }

    /// The shard of the sends of process `tgid` on `fd`.
    fn shard_of(&self, tgid: u32, fd: i32) -> usize {
        let key = (u64::from(tgid) << 32) | u64::from(fd as u32);
        let mixed = key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32;
        (mixed % self.shards.len() as u64) as usize
    }

    /// Inspects a batch's sends, each shard its own in order (on threads of
    /// their own when there are at least [`PARALLEL_MIN`] sends and more
    /// than one shard); returns what each send gave, in batch order.
    pub fn inspect(&mut self, steps: &[Step<'_>]) -> Vec<Inspected> {
        self.inspect_within(steps, None)
    }

    /// As [`Shards::inspect`], scanning at most about `budget` of the
    /// batch's sends when there is one (the daemon is behind, and the ring
    /// buffer would otherwise fill and lose records of every kind). The
    /// streams with the fewest sends in the batch are scanned first; the
    /// busiest, a flood's, are passed over (`inspected` false) once the
    /// budget is spent. A connection that sends little is still scanned
    /// while another floods.
    pub fn inspect_within(&mut self, steps: &[Step<'_>], budget: Option<usize>) -> Vec<Inspected> {
        if steps.is_empty() {
            return Vec::new();
        }
        let shed = budget.map(|b| busiest(steps, b)).unwrap_or_default();
        let shed = &shed;
        let mut per_shard: Vec<Vec<Step<'_>>> = vec![Vec::new(); self.shards.len()];
        let mut sends = 0;
        for step in steps {
            match *step {
                Step::Send { tgid, body, .. } => {
                    sends += 1;
                    per_shard[self.shard_of(tgid, body.fd)].push(*step);
                }
                Step::Exit(_) => per_shard.iter_mut().for_each(|s| s.push(*step)),
            }
        }
        let mut out: Vec<Inspected> = if self.shards.len() > 1 && sends >= PARALLEL_MIN {
            std::thread::scope(|scope| {
                let mut work = self.shards.iter_mut().zip(per_shard);
                let here = work.next();
                let there: Vec<_> = work
                    .map(|(shard, steps)| scope.spawn(move || shard.feed_batch(&steps, shed)))
                    .collect();
                let mut out =
                    here.map_or_else(Vec::new, |(shard, steps)| shard.feed_batch(&steps, shed));
                for handle in there {
                    out.extend(handle.join().expect("a payload shard panicked"));
                }
                out
            })
        } else {
            self.shards
                .iter_mut()
                .zip(per_shard)
                .flat_map(|(shard, steps)| shard.feed_batch(&steps, shed))
                .collect()
        };
        out.sort_unstable_by_key(|i| i.index);
        out
    }
}

/// The streams whose sends are passed over so that about `budget` of the
/// batch's sends are scanned: streams by their number of sends, fewest
/// first, are scanned while the sends so far stay within `budget`; every
/// stream after that is passed over.
fn busiest(steps: &[Step<'_>], budget: usize) -> HashSet<StreamKey> {
    let mut sends: HashMap<StreamKey, usize> = HashMap::new();
    for step in steps {
        if let Step::Send { tgid, body, .. } = step {
            *sends.entry(stream_key(*tgid, body)).or_default() += 1;
        }
    }
    let mut by_sends: Vec<(usize, StreamKey)> = sends.into_iter().map(|(k, n)| (n, k)).collect();
    by_sends.sort_unstable_by_key(|&(n, k)| {
        (n, k.conn.tgid, k.conn.fd, k.conn.conn_id, k.tls, k.inbound)
    });
    let mut scanned = 0;
    by_sends
        .into_iter()
        .filter(|&(n, _)| {
            scanned += n;
            scanned > budget
        })
        .map(|(_, k)| k)
        .collect()
}

/// The steps [`Shards::inspect`] takes for a batch of records: its sends
/// and its exits (records that do not decode are left to the caller).
pub fn steps<'a>(records: &[&'a [u8]]) -> Vec<Step<'a>> {
    records
        .iter()
        .enumerate()
        .filter_map(|(index, bytes)| match crate::wire::decode(bytes).ok()? {
            Record {
                header,
                body: Body::Payload(body),
                payload: bytes,
                ..
            } => Some(Step::Send {
                index,
                tgid: header.tgid,
                body,
                bytes,
            }),
            Record {
                header,
                body: Body::Exit(_),
                ..
            } => Some(Step::Exit(header.tgid)),
            _ => None,
        })
        .collect()
}

/// The server name from a TLS ClientHello (RFC 8446 §4.1.2, RFC 6066 §3).
pub fn tls_sni(b: &[u8]) -> Option<String> {
    // Record header: type 22 (handshake), version, length; handshake type 1 (ClientHello).
    if b.len() < 43 || b[0] != 0x16 || b[5] != 0x01 {
        return None;
    }
    let mut p = 5 + 4 + 2 + 32; // handshake header, client_version, random
    let sid = *b.get(p)? as usize;
    p += 1 + sid;
    let suites = u16::from_be_bytes([*b.get(p)?, *b.get(p + 1)?]) as usize;
    p += 2 + suites;
    let comp = *b.get(p)? as usize;
    p += 1 + comp;
    let ext_len = u16::from_be_bytes([*b.get(p)?, *b.get(p + 1)?]) as usize;
    p += 2;
    let end = (p + ext_len).min(b.len());
    while p + 4 <= end {
        let ty = u16::from_be_bytes([b[p], b[p + 1]]);
        let len = u16::from_be_bytes([b[p + 2], b[p + 3]]) as usize;
        let data = b.get(p + 4..p + 4 + len)?;
        if ty == 0 {
            // server_name_list: length, then (type 0 = host_name, length, name).
            if data.len() >= 5 && data[2] == 0 {
                let n = u16::from_be_bytes([data[3], data[4]]) as usize;
                let name = data.get(5..5 + n)?;
                if name
                    .iter()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b'_'))
                {
                    return Some(String::from_utf8_lossy(name).to_ascii_lowercase());
                }
            }
            return None;
        }
        p += 4 + len;
    }
    None
}

/// The `Host` header of an HTTP/1 request, without the port.
pub fn http_host(b: &[u8]) -> Option<String> {
    const METHODS: &[&[u8]] = &[
        b"GET ",
        b"POST ",
        b"PUT ",
        b"PATCH ",
        b"DELETE ",
        b"HEAD ",
        b"OPTIONS ",
    ];
    if !METHODS.iter().any(|m| b.starts_with(m)) {
        return None;
    }
    let head = &b[..b.len().min(8192)];
    let head_end = memchr_find(head, b"\r\n\r\n").unwrap_or(head.len());
    for line in head[..head_end].split(|&c| c == b'\n').skip(1) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.len() > 5 && line[..5].eq_ignore_ascii_case(b"host:") {
            let value = String::from_utf8_lossy(&line[5..])
                .trim()
                .to_ascii_lowercase();
            let host = match value.strip_prefix('[') {
                Some(v6) => v6.split(']').next().unwrap_or("").to_owned(),
                None => value.split(':').next().unwrap_or("").to_owned(),
            };
            return (!host.is_empty()).then_some(host);
        }
    }
    None
}

fn memchr_find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Detail, Event};
    use monitor_common::{EventHeader, EventKind, PayloadBody, PayloadOp, SockInfo, StrKind};

    /// Sends `bytes` on connection `conn_id` of fd 7 of process 4242.
    fn send(stage: &mut PayloadStage, conn_id: u64, bytes: &[u8]) -> Event {
        // SAFETY: all-zero is a valid header (plain integers).
        let mut header: EventHeader = unsafe { std::mem::zeroed() };
        header.kind = EventKind::Payload as u32;
        header.tgid = 4242;
        header.pid = 4242;
        let none = crate::wire::RawStr {
            kind: StrKind::None,
            bytes: &[],
            cut: false,
        };
        let record = Record {
            header,
            body: Body::Payload(PayloadBody {
                op: PayloadOp::Write as u32,
                fd: 7,
                size: bytes.len() as i64,
                captured: bytes.len() as u32,
                flags: 0,
                sock: SockInfo {
                    family: 2,
                    port: 443,
                    conn_id,
                    ..SockInfo::default()
                },
            }),
            strs: [none; monitor_common::MAX_STRS],
            payload: bytes,
        };
        // The event the enricher makes of it, as far as this stage reads it.
        let mut event: Event = serde_json::from_value(serde_json::json!({
            "time": "2026-12-04T00:00:00Z", "mono_ns": 1,
            "process": {"pid": 4242, "tid": 4242, "ppid": 1, "uid": 0, "gid": 0,
                        "comm": "bot", "cgroup_id": 1},
            "kind": "payload", "op": "write", "direction": "out", "tls": false, "fd": 7,
            "bytes": bytes.len(), "captured": bytes.len(), "conn_id": conn_id,
            "stream_offset": 0, "digest": ""
        }))
        .expect("a payload event");
        let Body::Payload(body) = &record.body else {
            unreachable!()
        };
        let Detail::Payload(info) = &mut event.detail else {
            panic!("not a payload event")
        };
        stage
            .feed(record.header.tgid, body, record.payload)
            .fill(info);
        event
    }

    fn stage() -> PayloadStage {
        PayloadStage::new(std::sync::Arc::new(Detector::new(
            monitor_pii::PiiRules::defaults(),
            monitor_pii::FingerprintKey::from_bytes(&[1; 32]),
        )))
    }

    #[test]
    fn a_reused_fd_drops_the_closed_connections_stream_and_name() {
        let mut stage = stage();
        let hello = b"POST /v1/chat HTTP/1.1\r\nHost: api.example.com\r\n\r\n";
        for conn_id in 1..=(MAX_STREAMS as u64 + 100) {
            send(&mut stage, conn_id, hello);
        }
        // One process sending on fd 7 again and again holds one stream, not one per connection.
        assert_eq!(stage.len(), 1);
        assert_eq!(stage.evicted(), 0);
        assert_eq!(stage.hosts.len(), 1);
        // A new connection on the fd does not inherit the old one's name.
        let event = send(&mut stage, u64::MAX, b"{\"no\": \"host\"}");
        let Detail::Payload(info) = &event.detail else {
            panic!("not a payload event")
        };
        assert_eq!(info.dest_host, None);
        assert_eq!(info.stream_offset, 0);
    }

    #[test]
    fn a_value_split_across_sends_on_one_connection_is_found() {
        let mut stage = stage();
        send(&mut stage, 9, b"card 4111 1111 ");
        let event = send(&mut stage, 9, b"1111 1111 and more");
        let Detail::Payload(info) = &event.detail else {
            panic!("not a payload event")
        };
        assert_eq!(info.stream_offset, 15);
        assert_eq!(info.findings.len(), 1, "{:?}", info.findings);
    }

    #[test]
    fn the_digest_is_left_out_only_when_asked() {
        let digest = |mut stage: PayloadStage| {
            let event = send(&mut stage, 3, b"same bytes");
            let Detail::Payload(info) = event.detail else {
                panic!("not a payload event")
            };
            info.digest
        };
        assert_eq!(digest(stage()).len(), 32);
        assert_eq!(digest(stage().without_digests()), "");
    }

    /// A send of `bytes` by process `tgid` on `fd` (connection `fd` too).
    fn step(index: usize, tgid: u32, fd: i32, bytes: &[u8]) -> Step<'_> {
        Step::Send {
            index,
            tgid,
            body: PayloadBody {
                op: PayloadOp::Write as u32,
                fd,
                size: bytes.len() as i64,
                captured: bytes.len() as u32,
                flags: 0,
                sock: SockInfo {
                    family: 2,
                    port: 443,
                    conn_id: fd as u64,
                    ..SockInfo::default()
                },
            },
            bytes,
        }
    }

    #[test]
    fn behind_a_flood_is_passed_over_and_a_quiet_connection_is_still_scanned() {
        let detector = std::sync::Arc::new(Detector::new(
            monitor_pii::PiiRules::defaults(),
            monitor_pii::FingerprintKey::from_bytes(&[1; 32]),
        ));
        for threads in [1, 3] {
            let mut shards = Shards::new(detector.clone(), threads);
            // Connection 5 floods 100 sends, its card split over the last
            // two; connection 6 sends a card in two pieces among them.
            let flood = b"card 4111 1111 ";
            let mut steps = Vec::new();
            for k in 0..100 {
                steps.push(step(steps.len(), 1, 5, flood));
                if k == 10 {
                    steps.push(step(steps.len(), 2, 6, b"my card is 4111 1111 "));
                }
                if k == 60 {
                    steps.push(step(steps.len(), 2, 6, b"1111 1111 thanks"));
                }
            }
            let done = shards.inspect_within(&steps, Some(10));
            assert_eq!(done.len(), steps.len());
            let of = |fd: i32| -> Vec<&Inspection> {
                done.iter()
                    .filter(|i| matches!(steps[i.index], Step::Send { body, .. } if body.fd == fd))
                    .map(|i| &i.inspection)
                    .collect()
            };
            let (flooded, quiet) = (of(5), of(6));
            assert!(flooded
                .iter()
                .all(|i| !i.inspected && i.findings.is_empty()));
            assert!(flooded.iter().all(|i| i.digest.is_empty()));
            let offsets: Vec<u64> = flooded.iter().map(|i| i.stream_offset).collect();
            let want: Vec<u64> = (0..100).map(|k| k * flood.len() as u64).collect();
            assert_eq!(
                offsets, want,
                "{threads} threads: offsets go on over sends not scanned"
            );
            assert!(quiet.iter().all(|i| i.inspected));
            assert_eq!(quiet[1].findings.len(), 1, "{threads} threads: {quiet:?}");
            assert_eq!(
                (quiet[1].findings[0].start, quiet[1].findings[0].end),
                (11, 30)
            );
            // Caught up: the flood's next sends are scanned again, and no
            // value is joined across the bytes passed over.
            let rest = [
                step(0, 1, 5, b"1111 1111 end. "),
                step(1, 1, 5, b"card 5500 0000 0000 0004 again"),
            ];
            let done = shards.inspect_within(&rest, None);
            assert!(done.iter().all(|i| i.inspection.inspected));
            assert!(done[0].inspection.findings.is_empty(), "{done:?}");
            let after = 100 * flood.len() as u64;
            assert_eq!(done[0].inspection.stream_offset, after);
            let card = &done[1].inspection.findings;
            assert_eq!(card.len(), 1, "{done:?}");
            assert_eq!(card[0].start, after + 15 + 5);
        }
    }

    #[test]
    fn the_busiest_streams_are_passed_over_fewest_sends_first_scanned() {
        let steps: Vec<Step<'_>> = [(1, 3), (2, 50), (3, 1), (4, 7)]
            .iter()
            .flat_map(|&(fd, n)| (0..n).map(move |_| fd))
            .enumerate()
            .map(|(i, fd)| step(i, 1, fd, b"x"))
            .collect();
        let fds = |budget| {
            let mut fds: Vec<i32> = busiest(&steps, budget).iter().map(|k| k.conn.fd).collect();
            fds.sort_unstable();
            fds
        };
        assert_eq!(fds(61), Vec::<i32>::new());
        assert_eq!(fds(11), vec![2]);
        assert_eq!(fds(10), vec![2, 4]);
        assert_eq!(fds(0), vec![1, 2, 3, 4]);
    }

    #[test]
    fn shards_find_what_one_stage_finds_connection_by_connection() {
        let detector = std::sync::Arc::new(Detector::new(
            monitor_pii::PiiRules::defaults(),
            monitor_pii::FingerprintKey::from_bytes(&[1; 32]),
        ));
        // Eight connections of two processes, each sending a card number
        // split across its sends, interleaved; process 2 exits half way and
        // a new process 2 sends on the same fds (its streams start afresh).
        let text = b"note: the card is 4111 1111 1111 1111, exp 09/28. ";
        let mut steps = Vec::new();
        for round in 0..40 {
            let at = round * 5 % text.len();
            let chunk = &text[at..(at + 5).min(text.len())];
            for fd in 0..8 {
                let tgid = 1 + fd as u32 % 2;
                steps.push(step(steps.len(), tgid, fd, chunk));
            }
            if round == 20 {
                steps.push(Step::Exit(2));
            }
        }
        let sends = steps
            .iter()
            .filter(|s| matches!(s, Step::Send { .. }))
            .count();
        assert!(sends >= PARALLEL_MIN);
        // One stage taking every step in order: what the shards must match.
        let mut one = PayloadStage::new(detector.clone());
        let want = one.feed_batch(&steps, &Default::default());
        let found: usize = want.iter().map(|i| i.inspection.findings.len()).sum();
        assert!(found >= 8, "{want:?}");
        for n in [1, 3, 8] {
            let mut shards = Shards::new(detector.clone(), n);
            assert_eq!(shards.inspect(&steps), want, "{n} shards");
            assert_eq!(shards.len(), one.len(), "{n} shards");
        }
    }

    #[test]
    fn a_batch_scans_each_connection_once_and_gives_each_send_what_ends_in_it() {
        let detector = std::sync::Arc::new(Detector::new(
            monitor_pii::PiiRules::defaults(),
            monitor_pii::FingerprintKey::from_bytes(&[1; 32]),
        ));
        // Six connections' texts, sent in 50-byte pieces, interleaved; the
        // first starts with an HTTP request naming its host.
        let mut texts: Vec<Vec<u8>> = (0..6)
            .map(|c| monitor_pii::synth::corpus_text("contact", 2000, c).into_bytes())
            .collect();
        texts[0].splice(
            0..0,
            b"POST /v1 HTTP/1.1\r\nHost: llm.example\r\n\r\n"
                .iter()
                .copied(),
        );
        let mut steps = Vec::new();
        let mut sent = vec![0; texts.len()];
        while sent.iter().zip(&texts).any(|(s, t)| s < &t.len()) {
            for (fd, text) in texts.iter().enumerate() {
                let at = sent[fd];
                if at < text.len() {
                    let piece = &text[at..(at + 50).min(text.len())];
                    steps.push(step(steps.len(), 7, fd as i32, piece));
                    sent[fd] += piece.len();
                }
            }
        }
        // A seventh connection whose second send the capture limit cut.
        let mut cut = step(steps.len(), 7, 6, b"first piece ");
        steps.push(cut);
        if let Step::Send { index, body, .. } = &mut cut {
            *index += 1;
            body.size = 5000;
        }
        steps.push(cut);
        // The first connection's fd closed and reused by another.
        let mut reuse = step(steps.len(), 7, 0, b"a new connection");
        if let Step::Send { body, .. } = &mut reuse {
            body.sock.conn_id = 99;
        }
        steps.push(reuse);
        let mut batch = PayloadStage::new(detector.clone());
        let got = batch.feed_batch(&steps, &Default::default());
        assert_eq!(got.len(), steps.len());
        // Each send's offsets, destination and digest are what feeding the
        // sends one by one gives.
        let mut one = PayloadStage::new(detector.clone());
        for (step, got) in steps.iter().zip(&got) {
            let Step::Send {
                index,
                tgid,
                body,
                bytes,
            } = *step
            else {
                unreachable!()
            };
            let want = one.feed(tgid, &body, bytes);
            assert_eq!(got.index, index);
            assert_eq!(
                (
                    got.inspection.stream_offset,
                    &got.inspection.dest_host,
                    &got.inspection.digest
                ),
                (want.stream_offset, &want.dest_host, &want.digest),
            );
        }
        assert_eq!(got[0].inspection.dest_host.as_deref(), Some("llm.example"));
        assert_eq!(got[got.len() - 2].inspection.stream_offset, 12);
        assert_eq!(got.last().unwrap().inspection.dest_host, None);
        assert_eq!(batch.len(), 7);
        assert_eq!(batch.streams.values().map(|s| s.base).max(), Some(5012));
        // With room for only three streams, the batch evicts as sends one
        // by one do, each evicted stream's waiting sends scanned first.
        let (mut small, mut one) = (
            PayloadStage::new(detector.clone()),
            PayloadStage::new(detector.clone()),
        );
        (small.max_streams, one.max_streams) = (3, 3);
        let evicting = small.feed_batch(&steps, &Default::default());
        for (step, got) in steps.iter().zip(&evicting) {
            let Step::Send {
                tgid, body, bytes, ..
            } = *step
            else {
                unreachable!()
            };
            assert_eq!(got.inspection, one.feed(tgid, &body, bytes));
        }
        assert!(small.evicted() > 200, "{}", small.evicted());
        assert_eq!((small.evicted(), small.len()), (one.evicted(), one.len()));
        assert!(small.pending.is_empty());
        // Each connection's findings are one scan of its whole text, each
        // given to the send its last byte is in.
        for (fd, text) in texts.iter().enumerate() {
            let fd_steps = steps.iter().zip(&got).filter(|(s, _)| {
                matches!(s, Step::Send { body, .. } if body.fd == fd as i32 && body.sock.conn_id == fd as u64)
            });
            let whole: Vec<(usize, usize, String)> = detector
                .scan(text)
                .into_iter()
                .map(|f| (f.start, f.end, f.kind.name().to_owned()))
                .collect();
            assert!(!whole.is_empty(), "connection {fd}");
            let mut found = Vec::new();
            for (step, got) in fd_steps {
                let Step::Send { bytes, .. } = step else {
                    unreachable!()
                };
                let from = got.inspection.stream_offset as usize;
                for f in &got.inspection.findings {
                    let (start, end) = (f.start as usize, f.end as usize);
                    assert!(
                        end > from && end <= from + bytes.len(),
                        "{f:?} beyond its send"
                    );
                    found.push((start, end, f.kind.clone()));
                }
            }
            assert_eq!(found, whole, "connection {fd}");
        }
    }

    #[test]
    fn http_host_header() {
        assert_eq!(
            http_host(b"POST /v1/chat HTTP/1.1\r\nHost: api.example.com:8443\r\n\r\n").as_deref(),
            Some("api.example.com")
        );
        assert_eq!(http_host(b"HTTP/1.1 200 OK\r\nHost: x\r\n\r\n"), None);
    }

    #[test]
    fn sni_from_a_client_hello() {
        // A minimal ClientHello carrying server_name "api.example.com".
        let name = b"api.example.com";
        let mut sni = vec![0, 0]; // extension type server_name
        let list_len = (name.len() + 3) as u16;
        let ext_len = list_len + 2;
        sni.extend_from_slice(&ext_len.to_be_bytes());
        sni.extend_from_slice(&list_len.to_be_bytes());
        sni.push(0);
        sni.extend_from_slice(&(name.len() as u16).to_be_bytes());
        sni.extend_from_slice(name);
        let mut hello = vec![0x03, 0x03];
        hello.extend_from_slice(&[7; 32]);
        hello.push(0); // session id
        hello.extend_from_slice(&[0, 2, 0x13, 0x01]); // one cipher suite
        hello.extend_from_slice(&[1, 0]); // null compression
        hello.extend_from_slice(&(sni.len() as u16).to_be_bytes());
        hello.extend_from_slice(&sni);
        let mut hs = vec![0x01, 0];
        hs.extend_from_slice(&(hello.len() as u16).to_be_bytes());
        hs.extend_from_slice(&hello);
        let mut rec = vec![0x16, 0x03, 0x01];
        rec.extend_from_slice(&(hs.len() as u16).to_be_bytes());
        rec.extend_from_slice(&hs);
        assert_eq!(tls_sni(&rec).as_deref(), Some("api.example.com"));
        assert_eq!(tls_sni(&rec[..50]), None);
        assert_eq!(tls_sni(b"GET / HTTP/1.1\r\n"), None);
    }
}
