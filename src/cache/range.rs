//! Single byte ranges (RFC 9110 §14): `bytes=first-last`, `bytes=first-`
//! and `bytes=-suffix` against a representation of known length. A list of
//! several ranges is answered with the whole representation (200), which
//! RFC 9110 §14.2 allows; shoal does not generate multipart/byteranges.

/// What a `Range` field asks of a representation of `len` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ask {
    /// Bytes `start..end` (end exclusive, within the length): a 206.
    Part { start: u64, end: u64 },
    /// No byte of it: a 416.
    Unsatisfiable,
}

/// Read a `Range` value; `None` when it is not one single byte range
/// (ignored: the whole representation is sent).
pub fn parse(value: &[u8], len: u64) -> Option<Ask> {
    let v = crate::http::trim_ows(value);
    let spec = v
        .strip_prefix(b"bytes=")
        .or_else(|| (v.len() > 6 && v[..6].eq_ignore_ascii_case(b"bytes=")).then(|| &v[6..]))?;
    let spec = crate::http::trim_ows(spec);
    if spec.contains(&b',') {
        return None;
    }
    let dash = spec.iter().position(|&b| b == b'-')?;
    let (first, last) = (crate::http::trim_ows(&spec[..dash]), crate::http::trim_ows(&spec[dash + 1..]));
    let num = |s: &[u8]| -> Option<u64> {
        if s.is_empty() || s.len() > 19 || !s.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(s).ok()?.parse().ok()
    };
    if first.is_empty() {
        // A suffix: the last N bytes.
        let n = num(last)?;
        if n == 0 || len == 0 {
            return Some(Ask::Unsatisfiable);
        }
        return Some(Ask::Part { start: len.saturating_sub(n), end: len });
    }
    let start = num(first)?;
    let end = if last.is_empty() { len } else { num(last)?.checked_add(1)? };
    if end <= start && !last.is_empty() {
        return None; // invalid (last < first): ignored
    }
    if start >= len {
        return Some(Ask::Unsatisfiable);
    }
    Some(Ask::Part { start, end: end.min(len) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        let p = |s: &str| parse(s.as_bytes(), 1000);
        assert_eq!(p("bytes=0-0"), Some(Ask::Part { start: 0, end: 1 }));
        assert_eq!(p("bytes=10-"), Some(Ask::Part { start: 10, end: 1000 }));
        assert_eq!(p("bytes=-100"), Some(Ask::Part { start: 900, end: 1000 }));
        assert_eq!(p("bytes=-5000"), Some(Ask::Part { start: 0, end: 1000 }));
        assert_eq!(p("bytes=990-5000"), Some(Ask::Part { start: 990, end: 1000 }));
        assert_eq!(p("bytes=1000-"), Some(Ask::Unsatisfiable));
        assert_eq!(p("bytes=-0"), Some(Ask::Unsatisfiable));
        assert_eq!(p("BYTES=1-2"), Some(Ask::Part { start: 1, end: 3 }));
        assert_eq!(p("bytes=5-1"), None);
        assert_eq!(p("bytes=0-1,5-6"), None, "several ranges: the whole");
        assert_eq!(p("items=0-1"), None);
        assert_eq!(p("bytes=a-b"), None);
        assert_eq!(p("bytes=99999999999999999999-"), None);
        assert_eq!(parse(b"bytes=0-", 0), Some(Ask::Unsatisfiable));
    }
}
