//! What request and response heads share: header-field semantics that
//! decide framing and connection handling, computed once while parsing.

use super::fields::{Fields, Span};
use super::HttpError;
use std::ops::Range;

/// Hop-by-hop header names (RFC 9110 §7.6.1) that a proxy never forwards
/// as-is. `transfer-encoding` is handled by the framing code instead.
pub const HOP_BY_HOP: &[&[u8]] = &[b"connection", b"keep-alive", b"proxy-connection", b"te", b"upgrade"];

/// Connection-related facts from the `Connection` header.
#[derive(Debug, Clone, Default)]
pub struct ConnectionTokens {
    pub close: bool,
    pub keep_alive: bool,
    pub upgrade: bool,
    /// Other tokens: names of further hop-by-hop headers (spans of the
    /// head's bytes).
    pub others: Vec<Span>,
}

impl ConnectionTokens {
    /// Whether `name` is one of the further hop-by-hop headers named.
    pub fn names(&self, fields: &Fields, name: &[u8]) -> bool {
        self.others.iter().any(|t| fields.slice(*t).eq_ignore_ascii_case(name))
    }
}

/// Scan `Connection` headers.
pub fn connection_tokens(fields: &Fields, out: &mut ConnectionTokens) {
    out.close = false;
    out.keep_alive = false;
    out.upgrade = false;
    out.others.clear();
    let buf = fields.bytes();
    for (name, value) in fields.spans() {
        if !fields.slice(name).eq_ignore_ascii_case(b"connection") {
            continue;
        }
        for tok in split_list(buf, value.range()) {
            let t = &buf[tok.clone()];
            if t.eq_ignore_ascii_case(b"close") {
                out.close = true;
            } else if t.eq_ignore_ascii_case(b"keep-alive") {
                out.keep_alive = true;
            } else if t.eq_ignore_ascii_case(b"upgrade") {
                out.upgrade = true;
            } else if out.others.len() < 32 {
                out.others.push(Span::of(tok));
            }
        }
    }
}

/// Split a comma-separated header value into trimmed, non-empty elements.
pub fn split_list(buf: &[u8], value: Range<usize>) -> impl Iterator<Item = Range<usize>> + '_ {
    let base = value.start;
    buf[value]
        .split(|&c| c == b',')
        .scan(base, |pos, part| {
            let start = *pos;
            *pos += part.len() + 1;
            let lead = part.iter().take_while(|c| matches!(c, b' ' | b'\t')).count();
            let trail = part.iter().rev().take_while(|c| matches!(c, b' ' | b'\t')).count();
            if lead == part.len() {
                return Some(None);
            }
            Some(Some(start + lead..start + part.len() - trail))
        })
        .flatten()
}

/// Content-Length and Transfer-Encoding together (RFC 9112 §6.1–6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyHeaders {
    pub content_length: Option<u64>,
    /// A Transfer-Encoding header was present.
    pub transfer_encoding: bool,
    /// The final transfer coding is `chunked` (and it appears once).
    pub chunked: bool,
}

pub fn body_headers(fields: &Fields) -> Result<BodyHeaders, HttpError> {
    let mut cl: Option<u64> = None;
    let mut te = false;
    let mut chunked_count = 0;
    let mut last_chunked = false;
    let buf = fields.bytes();
    for (name, value) in fields.spans() {
        let name = fields.slice(name);
        if name.eq_ignore_ascii_case(b"content-length") {
            let v = fields.slice(value);
            if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
                return Err(HttpError::new(400, "invalid Content-Length"));
            }
            let n: u64 = std::str::from_utf8(v)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or(HttpError::new(400, "invalid Content-Length"))?;
            if cl.is_some_and(|c| c != n) {
                return Err(HttpError::new(400, "conflicting Content-Length headers"));
            }
            cl = Some(n);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            te = true;
            for tok in split_list(buf, value.range()) {
                let is_chunked = buf[tok].eq_ignore_ascii_case(b"chunked");
                chunked_count += usize::from(is_chunked);
                last_chunked = is_chunked;
            }
        }
    }
    Ok(BodyHeaders { content_length: cl, transfer_encoding: te, chunked: te && last_chunked && chunked_count == 1 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_splitting() {
        let b = b"x: a, b ,,c\t";
        let v: Vec<&[u8]> = split_list(b, 3..b.len()).map(|r| &b[r]).collect();
        assert_eq!(v, vec![&b"a"[..], b"b", b"c"]);
    }
}
