//! Writing heads onward by copying spans of the received head: each kept
//! header line goes out byte for byte as it came (name, colon, spacing and
//! value); only hop-by-hop fields are dropped and shoal's own fields added.

use super::head::HOP_BY_HOP;
use super::request::RequestHead;
use super::response::ResponseHead;
use super::HeaderSpan;
use std::io::Write;
use std::net::IpAddr;
use std::ops::Range;

/// What shoal adds to a request on its way to a node.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestAdditions<'a> {
    /// Append the client address to `X-Forwarded-For`.
    pub x_forwarded_for: Option<IpAddr>,
    /// Set `X-Cluster-Client-Ip` to the client address (replacing any).
    pub cluster_client_ip: Option<IpAddr>,
    /// Add `Via: 1.1 <this>`.
    pub via: Option<&'a str>,
}

fn is_named(buf: &[u8], h: &HeaderSpan, names: &[Range<usize>]) -> bool {
    let n = &buf[h.name.clone()];
    names.iter().any(|t| buf[t.clone()].eq_ignore_ascii_case(n))
}

fn is_hop(name: &[u8]) -> bool {
    HOP_BY_HOP.iter().any(|h| name.eq_ignore_ascii_case(h))
}

fn copy_line(buf: &[u8], h: &HeaderSpan, out: &mut Vec<u8>) {
    if h.value.end >= h.name.end {
        out.extend_from_slice(&buf[h.name.start..h.value.end]);
    } else {
        out.extend_from_slice(&buf[h.name.clone()]);
        out.push(b':');
    }
    out.extend_from_slice(b"\r\n");
}

/// Write the request head for a node into `out` (which is cleared).
pub fn write_request(buf: &[u8], head: &RequestHead, add: &RequestAdditions<'_>, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(head.method(buf));
    out.push(b' ');
    out.extend_from_slice(head.target(buf));
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let mut prior_xff = false;
    for h in &head.headers {
        let name = &buf[h.name.clone()];
        if (is_hop(name) && !(head.upgrade && name.eq_ignore_ascii_case(b"upgrade")))
            || is_named(buf, h, &head.connection.others)
        {
            continue;
        }
        if add.x_forwarded_for.is_some() && name.eq_ignore_ascii_case(b"x-forwarded-for") {
            prior_xff = true;
            continue;
        }
        if add.cluster_client_ip.is_some() && name.eq_ignore_ascii_case(b"x-cluster-client-ip") {
            continue;
        }
        copy_line(buf, h, out);
    }
    if let Some(ip) = add.x_forwarded_for {
        out.extend_from_slice(b"X-Forwarded-For: ");
        if prior_xff {
            for h in head.headers.iter().filter(|h| buf[h.name.clone()].eq_ignore_ascii_case(b"x-forwarded-for")) {
                out.extend_from_slice(&buf[h.value.clone()]);
                out.extend_from_slice(b", ");
            }
        }
        push_ip(out, ip);
        out.extend_from_slice(b"\r\n");
    }
    if let Some(ip) = add.cluster_client_ip {
        out.extend_from_slice(b"X-Cluster-Client-Ip: ");
        push_ip(out, ip);
        out.extend_from_slice(b"\r\n");
    }
    if let Some(via) = add.via {
        push_via(out, head.minor, via);
    }
    if head.upgrade {
        out.extend_from_slice(b"Connection: upgrade\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// Append `ip` in its text form. IPv4, the usual case, is written digit by
/// digit: `write!` through `core::fmt` costs more than the rest of the
/// header line.
fn push_ip(out: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            for (i, o) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                if o >= 100 {
                    out.push(b'0' + o / 100);
                }
                if o >= 10 {
                    out.push(b'0' + o / 10 % 10);
                }
                out.push(b'0' + o % 10);
            }
        }
        IpAddr::V6(_) => {
            let _ = write!(out, "{ip}");
        }
    }
}

/// Append `Via: 1.<minor> <via>`.
fn push_via(out: &mut Vec<u8>, minor: u8, via: &str) {
    out.extend_from_slice(b"Via: 1.");
    out.push(b'0' + minor.min(9));
    out.push(b' ');
    out.extend_from_slice(via.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// How the response head to the client should differ from the node's.
#[derive(Debug, Clone, Copy, Default)]
pub struct ResponseChanges<'a> {
    /// shoal closes the client connection after this response.
    pub close: bool,
    /// The body is de-chunked for an HTTP/1.0 client: drop Transfer-Encoding.
    pub dechunk: bool,
    pub via: Option<&'a str>,
}

/// Write the response head for the client into `out` (which is cleared).
pub fn write_response(buf: &[u8], head: &ResponseHead, ch: &ResponseChanges<'_>, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(&buf[head.status_line_rest.clone()]);
    out.extend_from_slice(b"\r\n");
    let switching = head.status == 101;
    for h in &head.headers {
        let name = &buf[h.name.clone()];
        if (is_hop(name) && !(switching && name.eq_ignore_ascii_case(b"upgrade")))
            || is_named(buf, h, &head.connection.others)
            || (ch.dechunk && name.eq_ignore_ascii_case(b"transfer-encoding"))
        {
            continue;
        }
        copy_line(buf, h, out);
    }
    if let Some(via) = ch.via {
        push_via(out, head.minor, via);
    }
    if switching {
        out.extend_from_slice(b"Connection: upgrade\r\n");
    } else if ch.close {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// A complete response generated by shoal itself (errors, 100 Continue).
pub fn write_simple(status: u16, content_type: &str, body: &[u8], close: bool, out: &mut Vec<u8>) {
    out.clear();
    let _ = write!(out, "HTTP/1.1 {status} {}\r\n", super::reason(status));
    if !(100..200).contains(&status) {
        let _ = write!(out, "Content-Type: {content_type}\r\nContent-Length: {}\r\n", body.len());
        if close {
            out.extend_from_slice(b"Connection: close\r\n");
        }
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hand-written IPv4 text equals std's, for every octet value.
    #[test]
    fn push_ip_matches_display() {
        for o in 0..=255u8 {
            for ip in [
                IpAddr::from([o, 0, 9, 255]),
                IpAddr::from([1, o, 10, 99]),
                IpAddr::from([100, 200, o, 7]),
                IpAddr::from([0, 0, 0, o]),
            ] {
                let mut out = Vec::new();
                push_ip(&mut out, ip);
                assert_eq!(String::from_utf8(out).unwrap(), ip.to_string());
            }
        }
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        let mut out = Vec::new();
        push_ip(&mut out, v6);
        assert_eq!(out, b"2001:db8::1");
    }
    use crate::http::request::{self, Limits};

    #[test]
    fn request_rewrite() {
        let s = b"GET /x HTTP/1.0\r\nHost: h\r\nConnection: keep-alive, X-Secret\r\nX-Secret: 1\r\nKeep-Alive: 5\r\nX-Forwarded-For: 10.0.0.1\r\nX-Cluster-Client-Ip: 6.6.6.6\r\nAccept:  */*\r\n\r\n";
        let mut h = request::RequestHead::default();
        request::parse(s, &Limits { max_head: 4096, max_headers: 64, max_uri: 1024 }, &mut h).unwrap().unwrap();
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let mut out = Vec::new();
        let add = RequestAdditions { x_forwarded_for: Some(ip), cluster_client_ip: Some(ip), via: Some("shoal") };
        write_request(s, &h, &add, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "GET /x HTTP/1.1\r\nHost: h\r\nAccept:  */*\r\nX-Forwarded-For: 10.0.0.1, 192.0.2.7\r\nX-Cluster-Client-Ip: 192.0.2.7\r\nVia: 1.0 shoal\r\n\r\n"
        );
    }

    #[test]
    fn response_rewrite() {
        let s = b"HTTP/1.1 200 Fine\r\nConnection: X-A\r\nX-A: 1\r\nTransfer-Encoding: chunked\r\nServer: s\r\n\r\n";
        let mut h = crate::http::response::ResponseHead::default();
        crate::http::response::parse(s, 4096, false, &mut h).unwrap().unwrap();
        let mut out = Vec::new();
        write_response(s, &h, &ResponseChanges { close: true, dechunk: true, via: None }, &mut out);
        assert_eq!(String::from_utf8(out).unwrap(), "HTTP/1.1 200 Fine\r\nServer: s\r\nConnection: close\r\n\r\n");
    }
}
