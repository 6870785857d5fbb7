//! The text of two fields every payload event carries, written directly:
//! its time (RFC 3339, nanoseconds, UTC) and its peer's IPv4 address. The
//! general formatters cost several times as much, once per event (the
//! tests hold the bytes to theirs).

/// `unix_ns` as RFC 3339 UTC with nanoseconds (`2026-12-05T22:01:34.000000001Z`),
/// as `humantime::format_rfc3339_nanos` writes it.
pub fn rfc3339_nanos(unix_ns: u64) -> String {
    let secs = unix_ns / 1_000_000_000;
    let nanos = (unix_ns % 1_000_000_000) as u32;
    let (year, month, day) = civil_from_days((secs / 86_400) as i64);
    let of_day = (secs % 86_400) as u32;
    let mut s = String::with_capacity(30);
    push_digits(&mut s, year as u32, 4);
    s.push('-');
    push_digits(&mut s, month, 2);
    s.push('-');
    push_digits(&mut s, day, 2);
    s.push('T');
    push_digits(&mut s, of_day / 3600, 2);
    s.push(':');
    push_digits(&mut s, of_day / 60 % 60, 2);
    s.push(':');
    push_digits(&mut s, of_day % 60, 2);
    s.push('.');
    push_digits(&mut s, nanos, 9);
    s.push('Z');
    s
}

/// An IPv4 address in dotted decimal, as `Ipv4Addr`'s `Display` writes it.
pub fn ipv4(a: [u8; 4]) -> String {
    let mut s = String::with_capacity(15);
    for (i, octet) in a.into_iter().enumerate() {
        if i > 0 {
            s.push('.');
        }
        let width = match octet {
            100.. => 3,
            10.. => 2,
            _ => 1,
        };
        push_digits(&mut s, u32::from(octet), width);
    }
    s
}

/// The last `width` decimal digits of `n`, zero-padded.
fn push_digits(s: &mut String, n: u32, width: u32) {
    let mut div = 10u32.pow(width - 1);
    while div > 0 {
        s.push(char::from(b'0' + (n / div % 10) as u8));
        div /= 10;
    }
}

/// The (year, month, day) of a count of days since 1970-01-01, in the
/// proleptic Gregorian calendar (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;
    use std::time::{Duration, UNIX_EPOCH};

    fn theirs(unix_ns: u64) -> String {
        humantime::format_rfc3339_nanos(UNIX_EPOCH + Duration::from_nanos(unix_ns)).to_string()
    }

    #[test]
    fn times_are_written_as_humantime_writes_them() {
        const DAY: u64 = 86_400 * 1_000_000_000;
        // The epoch, ends of days, months and (leap) years, and the last
        // instant a u64 of ns holds (in 2554).
        let mut cases = vec![0, 1, 999_999_999, 1_000_000_000, DAY - 1, DAY];
        for year_days in [
            59u64, 60, 365, 366, 789, 10_957, 11_016, 11_017, 20_454, 47_541, 106_751,
        ] {
            cases.extend([year_days * DAY - 1, year_days * DAY, year_days * DAY + 1]);
        }
        cases.push(u64::MAX);
        // And a spread over the years 1970 to 2554 (a 64-bit count of ns).
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..200_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            cases.push(x);
        }
        for ns in cases {
            assert_eq!(rfc3339_nanos(ns), theirs(ns), "{ns}");
        }
    }

    #[test]
    fn addresses_are_written_as_ipv4addr_writes_them() {
        for octet in 0..=255u8 {
            for at in 0..4 {
                let mut a = [1, 20, 255, 0];
                a[at] = octet;
                assert_eq!(ipv4(a), Ipv4Addr::from(a).to_string());
            }
        }
    }
}
