//! The wire: decoding of the kernel's records ([`monitor_common::RawEvent`]) into
//! [`Record`]s that borrow their strings from the ring buffer.

use monitor_common::{
    EventHeader, EventKind, ExecBody, ExitBody, FileBody, ForkBody, NetBody, PayloadBody,
    PayloadEvent, RawEvent, StrKind, StrRef, DATA_CAP, MAX_STRS, PAYLOAD_FIXED_LEN,
    RAW_EVENT_FIXED_LEN,
};

/// Why a record could not be decoded. Each one is counted, never fatal.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    /// Fewer bytes than the fixed part of a record.
    #[error("record of {0} bytes is shorter than the fixed part")]
    Short(usize),
    /// An unknown `kind`.
    #[error("unknown record kind {0}")]
    UnknownKind(u32),
    /// A string reference points outside the record.
    #[error("string {index} ({off}+{len}) lies outside the record's {data_len} data bytes")]
    StringOutOfRange {
        /// Which string.
        index: usize,
        /// Its offset.
        off: u16,
        /// Its length.
        len: u16,
        /// How many data bytes the record has.
        data_len: usize,
    },
}

/// Kind-specific fields of a record.
#[derive(Debug, Clone, Copy)]
pub enum Body {
    /// A file syscall.
    File(FileBody),
    /// A connect or accept.
    Net(NetBody),
    /// An exec.
    Exec(ExecBody),
    /// A new process.
    Fork(ForkBody),
    /// A process exit.
    Exit(ExitBody),
    /// Bytes sent on a socket or through TLS; the bytes are [`Record::payload`].
    Payload(PayloadBody),
}

/// One string of a record, as the kernel wrote it.
#[derive(Debug, Clone, Copy)]
pub struct RawStr<'a> {
    /// How to read `bytes`.
    pub kind: StrKind,
    /// The bytes, NULs included.
    pub bytes: &'a [u8],
    /// The kernel cut the string short (a path's leaf-most components, or
    /// a prefix of a user string).
    pub cut: bool,
}

impl RawStr<'_> {
    const NONE: RawStr<'static> = RawStr {
        kind: StrKind::None,
        bytes: &[],
        cut: false,
    };

    /// True when the kernel wrote nothing here.
    pub fn is_none(&self) -> bool {
        self.kind == StrKind::None
    }

    /// The NUL-separated parts (one for [`StrKind::Raw`]).
    pub fn parts(&self) -> impl Iterator<Item = &[u8]> {
        let bytes = self.bytes.strip_suffix(&[0]).unwrap_or(self.bytes);
        bytes.split(|&b| b == 0).filter(|p| !p.is_empty())
    }
}

/// A decoded kernel record.
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    /// Common fields.
    pub header: EventHeader,
    /// Kind-specific fields.
    pub body: Body,
    /// Strings; unused ones have kind [`StrKind::None`].
    pub strs: [RawStr<'a>; MAX_STRS],
    /// Captured payload bytes (payload records only).
    pub payload: &'a [u8],
}

/// True when `bytes`, as read from the ring buffer, hold a payload record.
pub fn is_payload(bytes: &[u8]) -> bool {
    bytes.len() >= std::mem::size_of::<EventHeader>()
        && u32::from_ne_bytes(bytes[..4].try_into().unwrap()) == EventKind::Payload as u32
}

/// Decodes one record as read from the ring buffer.
pub fn decode(bytes: &[u8]) -> Result<Record<'_>, DecodeError> {
    if is_payload(bytes) {
        return decode_payload(bytes);
    }
    if bytes.len() < RAW_EVENT_FIXED_LEN {
        return Err(DecodeError::Short(bytes.len()));
    }
    let data = &bytes[RAW_EVENT_FIXED_LEN..];
    let data = &data[..data.len().min(DATA_CAP)];
    let base = bytes.as_ptr().cast::<RawEvent>();
    // SAFETY: at least RAW_EVENT_FIXED_LEN bytes are present, which covers the
    // header, body and string table; unaligned reads of plain integers.
    let (header, body, refs) = unsafe {
        (
            std::ptr::addr_of!((*base).header).read_unaligned(),
            std::ptr::addr_of!((*base).body).read_unaligned(),
            std::ptr::addr_of!((*base).strs).read_unaligned(),
        )
    };
    // SAFETY (each arm): `kind` says which union field the kernel wrote; all are plain integers.
    let body = match EventKind::from_u32(header.kind) {
        Some(EventKind::File) => Body::File(unsafe { body.file }),
        Some(EventKind::Net) => Body::Net(unsafe { body.net }),
        Some(EventKind::Exec) => Body::Exec(unsafe { body.exec }),
        Some(EventKind::Fork) => Body::Fork(unsafe { body.fork }),
        Some(EventKind::Exit) => Body::Exit(unsafe { body.exit }),
        Some(EventKind::Payload) | None => return Err(DecodeError::UnknownKind(header.kind)),
    };
    let mut strs = [RawStr::NONE; MAX_STRS];
    for (index, r) in refs.iter().enumerate() {
        strs[index] = string(index, r, data)?;
    }
    Ok(Record {
        header,
        body,
        strs,
        payload: &[],
    })
}

fn decode_payload(bytes: &[u8]) -> Result<Record<'_>, DecodeError> {
    if bytes.len() < PAYLOAD_FIXED_LEN {
        return Err(DecodeError::Short(bytes.len()));
    }
    let base = bytes.as_ptr().cast::<PayloadEvent>();
    // SAFETY: PAYLOAD_FIXED_LEN bytes are present; plain integers read unaligned.
    let (header, body) = unsafe {
        (
            std::ptr::addr_of!((*base).header).read_unaligned(),
            std::ptr::addr_of!((*base).body).read_unaligned(),
        )
    };
    let data = &bytes[PAYLOAD_FIXED_LEN..];
    let payload = data
        .get(..body.captured as usize)
        .ok_or(DecodeError::StringOutOfRange {
            index: 0,
            off: 0,
            len: body.captured.min(u32::from(u16::MAX)) as u16,
            data_len: data.len(),
        })?;
    Ok(Record {
        header,
        body: Body::Payload(body),
        strs: [RawStr::NONE; MAX_STRS],
        payload,
    })
}

fn string<'a>(index: usize, r: &StrRef, data: &'a [u8]) -> Result<RawStr<'a>, DecodeError> {
    let kind = match r.kind {
        1 => StrKind::Raw,
        2 => StrKind::Components,
        3 => StrKind::List,
        _ => return Ok(RawStr::NONE),
    };
    let (off, len) = (r.off as usize, r.len as usize);
    let bytes = data
        .get(off..off + len)
        .ok_or(DecodeError::StringOutOfRange {
            index,
            off: r.off,
            len: r.len,
            data_len: data.len(),
        })?;
    Ok(RawStr {
        kind,
        bytes,
        cut: r.flags & monitor_common::STR_CUT != 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use monitor_common::{EventBody, FileOp};

    fn file_record(strs: &[(StrKind, &[u8])]) -> Vec<u8> {
        // SAFETY: all-zero is a valid RawEvent.
        let mut ev: RawEvent = unsafe { std::mem::zeroed() };
        ev.header.kind = EventKind::File as u32;
        ev.header.tgid = 42;
        ev.body = EventBody {
            file: FileBody {
                op: FileOp::Openat as u32,
                dfd: -100,
                ret: -2,
                flags: 0,
                mode: 0,
                dfd2: 0,
                class_mark: 0,
                sock: Default::default(),
                path_id: 0,
                repeats: 0,
                repeats_last_ns: 0,
            },
        };
        let mut off = 0;
        for (i, (kind, bytes)) in strs.iter().enumerate() {
            ev.data[off..off + bytes.len()].copy_from_slice(bytes);
            ev.strs[i] = StrRef {
                off: off as u16,
                len: bytes.len() as u16,
                kind: *kind as u16,
                flags: 0,
            };
            off += bytes.len();
        }
        // SAFETY: viewing a plain struct as bytes.
        let all = unsafe {
            std::slice::from_raw_parts(
                (&ev as *const RawEvent).cast::<u8>(),
                std::mem::size_of::<RawEvent>(),
            )
        };
        all[..RAW_EVENT_FIXED_LEN + off].to_vec()
    }

    #[test]
    fn decodes_strings_and_body() {
        let bytes = file_record(&[(StrKind::Components, b"tmp\0"), (StrKind::Raw, b"x.txt\0")]);
        let rec = decode(&bytes).unwrap();
        assert_eq!(rec.header.tgid, 42);
        let Body::File(f) = rec.body else {
            panic!("not a file body")
        };
        assert_eq!(f.ret, -2);
        assert_eq!(rec.strs[1].parts().collect::<Vec<_>>(), vec![b"x.txt"]);
        assert!(rec.strs[2].is_none());
    }

    #[test]
    fn rejects_short_and_out_of_range_records() {
        assert_eq!(decode(&[0u8; 10]).err(), Some(DecodeError::Short(10)));
        let mut bytes = file_record(&[(StrKind::Raw, b"abc\0")]);
        bytes.truncate(bytes.len() - 2);
        assert!(matches!(
            decode(&bytes),
            Err(DecodeError::StringOutOfRange { index: 0, .. })
        ));
        let mut bytes = file_record(&[]);
        bytes[0] = 99;
        assert_eq!(decode(&bytes).err(), Some(DecodeError::UnknownKind(99)));
    }
}
