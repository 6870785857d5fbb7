//! Event sinks of the sensor slice: where enriched events go. For now one:
//! JSON lines on a writer (`monitor run --events-stdout`).

use std::io::{self, BufWriter, Write};

use crate::event::Event;

/// A consumer of enriched events.
pub trait EventSink: Send {
    /// Takes one event. An error is counted by the pipeline; the event is not retried.
    fn handle(&mut self, event: &Event) -> io::Result<()>;
    /// Pushes out anything buffered (called when the ring buffer is drained).
    fn flush(&mut self) -> io::Result<()>;
}

/// Writes each event as one JSON object per line.
pub struct JsonLines<W: Write + Send> {
    out: BufWriter<W>,
}

impl<W: Write + Send> JsonLines<W> {
    /// A sink writing to `out`.
    pub fn new(out: W) -> Self {
        Self {
            out: BufWriter::with_capacity(64 * 1024, out),
        }
    }
}

impl<W: Write + Send> EventSink for JsonLines<W> {
    fn handle(&mut self, event: &Event) -> io::Result<()> {
        serde_json::to_writer(&mut self.out, event)?;
        self.out.write_all(b"\n")
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Detail, ForkInfo, Process};

    #[test]
    fn one_line_per_event_with_kind_tag() {
        let ev = Event {
            time: "2026-01-01T00:00:00.000000000Z".into(),
            mono_ns: 1,
            process: Process {
                pid: 1,
                tid: 1,
                ppid: 0,
                uid: 0,
                gid: 0,
                user: Some("root".into()),
                group: None,
                comm: "init".into(),
                exe: None,
                cmdline: Vec::new().into(),
                cgroup_id: 1,
                cgroup: None,
                unit: None,
                role: None,
                login_uid: None,
                login_user: None,
                tty: None,
                ancestry: Vec::new().into(),
            },
            detail: Detail::Fork(ForkInfo { child_pid: 2 }),
            truncated: false,
            via: None,
        };
        let mut buf = Vec::new();
        {
            let mut sink = JsonLines::new(&mut buf);
            sink.handle(&ev).unwrap();
            sink.handle(&ev).unwrap();
            sink.flush().unwrap();
        }
        let text = String::from_utf8(buf).unwrap();
        let lines: Vec<_> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        let v: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(v["kind"], "fork");
        assert_eq!(v["child_pid"], 2);
        assert_eq!(v["process"]["user"], "root");
        assert_eq!(serde_json::from_str::<Event>(lines[1]).unwrap(), ev);
    }
}
