//! Turning the kernel's path pieces into absolute path strings.

use crate::event::CUT;
use crate::wire::RawStr;

/// Bytes as text: valid UTF-8 kept, each invalid byte written as `\xNN`
/// and a backslash as `\\`, so the text says exactly which bytes the name
/// has (a file literally named `lit\xff` is `lit\\xff`, one with the byte
/// 0xff is `lit\xff`), and a hostile name cannot pass for another.
pub fn text(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        let valid = chunk.valid();
        if valid.contains('\\') {
            out.push_str(&valid.replace('\\', "\\\\"));
        } else {
            out.push_str(valid);
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

/// The absolute path named by components written leaf first; a cut one
/// starts with [`CUT`].
pub fn from_components(components: &RawStr<'_>) -> String {
    let parts: Vec<&[u8]> = components.parts().collect();
    if parts.is_empty() {
        return if components.cut { CUT } else { "/" }.to_owned();
    }
    let mut out = String::new();
    if components.cut {
        out.push_str(CUT);
    }
    for part in parts.iter().rev() {
        out.push('/');
        out.push_str(&text(part));
    }
    out
}

/// The caller's `raw` path made absolute against `dir` (components of the
/// directory it is relative to), then normalized lexically. A cut `raw`
/// ends with [`CUT`]; a cut `dir` makes the result start with it.
pub fn resolve(dir: &RawStr<'_>, raw: &RawStr<'_>) -> String {
    let mut raw_text = raw.parts().next().map(text).unwrap_or_default();
    if raw.cut {
        raw_text.push_str(CUT);
    }
    if raw_text.starts_with('/') || dir.is_none() {
        return normalize(&raw_text);
    }
    let base = from_components(dir);
    match base.strip_prefix(CUT) {
        Some(rest) => format!("{CUT}{}", normalize(&format!("{rest}/{raw_text}"))),
        None => normalize(&format!("{base}/{raw_text}")),
    }
}

/// Removes empty, `.` and `..` components. `..` at the root stays at the root.
pub fn normalize(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    if parts.is_empty() {
        return "/".to_owned();
    }
    let mut out = String::with_capacity(path.len());
    for p in parts {
        out.push('/');
        out.push_str(p);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use monitor_common::StrKind;

    fn comps(bytes: &[u8]) -> RawStr<'_> {
        RawStr {
            kind: StrKind::Components,
            bytes,
            cut: false,
        }
    }

    fn raw(bytes: &[u8]) -> RawStr<'_> {
        RawStr {
            kind: StrKind::Raw,
            bytes,
            cut: false,
        }
    }

    #[test]
    fn components_are_reversed() {
        assert_eq!(from_components(&comps(b"c\0b\0a\0")), "/a/b/c");
        assert_eq!(from_components(&comps(b"")), "/");
    }

    #[test]
    fn relative_paths_join_their_directory() {
        assert_eq!(resolve(&comps(b"tmp\0"), &raw(b"x.txt\0")), "/tmp/x.txt");
        assert_eq!(resolve(&comps(b"b\0a\0"), &raw(b"../c/./d\0")), "/a/c/d");
        assert_eq!(
            resolve(&comps(b"ignored\0"), &raw(b"/etc//hosts\0")),
            "/etc/hosts"
        );
        assert_eq!(normalize("/../../x"), "/x");
    }

    #[test]
    fn the_escaping_is_unambiguous() {
        // Issue: a name literally `lit\xff` and one ending in byte 0xff
        // were the same object.
        assert_ne!(text(b"lit\\xff"), text(b"lit\xff"));
        assert_eq!(text(b"lit\\xff"), "lit\\\\xff");
        assert_eq!(text(b"a\\b"), "a\\\\b");
    }

    #[test]
    fn invalid_utf8_is_escaped_not_replaced() {
        assert_eq!(text(b"a\xffb"), "a\\xffb");
        assert_eq!(from_components(&comps(b"\xfe\0dir\0")), "/dir/\\xfe");
    }

    #[test]
    fn cut_paths_never_look_absolute() {
        let cut = |bytes| RawStr {
            kind: StrKind::Components,
            bytes,
            cut: true,
        };
        // Issue: a deep tree under /tmp/x/srv/cardholder/ was once shown as
        // /srv/cardholder/...: the kept components must not read as absolute.
        let p = from_components(&cut(b"forged.csv\0e42\0cardholder\0srv\0"));
        assert_eq!(p, "…/srv/cardholder/e42/forged.csv");
        assert!(!p.starts_with('/'));
        assert_eq!(
            resolve(&cut(b"d99\0d98\0"), &raw(b"../x/secret.csv\0")),
            "…/d98/x/secret.csv"
        );
        let long = RawStr {
            kind: StrKind::Raw,
            bytes: b"/srv/a/bbbb\0",
            cut: true,
        };
        assert_eq!(resolve(&comps(b""), &long), "/srv/a/bbbb…");
    }
}
