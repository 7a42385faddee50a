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
    /// Set `X-Forwarded-Proto` (replacing any the client sent).
    pub forwarded_proto: Option<&'a str>,
    /// Header lines describing the client's TLS connection (see
    /// [`SSL_HEADERS`]), replacing any the client sent under those names.
    pub ssl_headers: Option<&'a [u8]>,
}

/// The headers a TLS virtual server with `add_ssl_headers` sets.
pub const SSL_HEADERS: [&str; 4] = ["SSL-Protocol", "SSL-Cipher", "SSL-Server-Name", "SSL-Client-Certificate"];

/// Render the [`SSL_HEADERS`] lines for a connection (once per connection).
pub fn ssl_header_lines(t: &crate::tls::stream::Negotiated) -> Vec<u8> {
    let mut out = Vec::new();
    let mut line = |name: &str, value: &[u8]| {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    };
    line(SSL_HEADERS[0], t.version.as_bytes());
    line(SSL_HEADERS[1], t.cipher.as_bytes());
    if let Some(sni) = &t.sni {
        line(SSL_HEADERS[2], sni.as_bytes());
    }
    if let Some(cert) = &t.peer_cert {
        // The DER certificate in base64: one header line, no PEM wrapping.
        line(SSL_HEADERS[3], base64(cert).as_bytes());
    }
    out
}

fn base64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::with_capacity(data.len().div_ceil(3) * 4);
    for c in data.chunks(3) {
        let n = (c[0] as u32) << 16 | (*c.get(1).unwrap_or(&0) as u32) << 8 | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= c.len() {
                s.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
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
        if add.forwarded_proto.is_some() && name.eq_ignore_ascii_case(b"x-forwarded-proto") {
            continue;
        }
        if add.ssl_headers.is_some() && SSL_HEADERS.iter().any(|n| name.eq_ignore_ascii_case(n.as_bytes())) {
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
    if let Some(proto) = add.forwarded_proto {
        out.extend_from_slice(b"X-Forwarded-Proto: ");
        out.extend_from_slice(proto.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if let Some(lines) = add.ssl_headers {
        out.extend_from_slice(lines);
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
    /// Header lines shoal adds (persistence cookies), each ending in CRLF.
    pub extra: Option<&'a [u8]>,
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
    if let Some(lines) = ch.extra {
        out.extend_from_slice(lines);
    }
    if switching {
        out.extend_from_slice(b"Connection: upgrade\r\n");
    } else if ch.close {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// A `302 Found` to `location`, generated by shoal.
pub fn write_redirect(location: &str, close: bool, out: &mut Vec<u8>) {
    out.clear();
    let body = format!("302 Found: {location}\n");
    let _ = write!(
        out,
        "HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n{}\r\n{body}",
        body.len(),
        if close { "Connection: close\r\n" } else { "" }
    );
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
        let add = RequestAdditions {
            x_forwarded_for: Some(ip),
            cluster_client_ip: Some(ip),
            via: Some("shoal"),
            ..Default::default()
        };
        write_request(s, &h, &add, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "GET /x HTTP/1.1\r\nHost: h\r\nAccept:  */*\r\nX-Forwarded-For: 10.0.0.1, 192.0.2.7\r\nX-Cluster-Client-Ip: 192.0.2.7\r\nVia: 1.0 shoal\r\n\r\n"
        );
    }

    #[test]
    fn tls_headers_replace_the_clients() {
        let s = b"GET / HTTP/1.1\r\nX-Forwarded-Proto: http\r\nssl-cipher: fake\r\nHost: h\r\n\r\n";
        let mut h = RequestHead::default();
        crate::http::request::parse(s, &Limits { max_head: 4096, max_headers: 16, max_uri: 1024 }, &mut h)
            .unwrap()
            .unwrap();
        let t = crate::tls::stream::Negotiated {
            version: "TLSv1.3",
            cipher: "TLS13_AES_128_GCM_SHA256",
            sni: Some("a.test".into()),
            peer_cert: Some(b"hello".to_vec()),
            ..Default::default()
        };
        let lines = ssl_header_lines(&t);
        let add = RequestAdditions { forwarded_proto: Some("https"), ssl_headers: Some(&lines), ..Default::default() };
        let mut out = Vec::new();
        write_request(s, &h, &add, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-Proto: https\r\nSSL-Protocol: TLSv1.3\r\nSSL-Cipher: TLS13_AES_128_GCM_SHA256\r\nSSL-Server-Name: a.test\r\nSSL-Client-Certificate: aGVsbG8=\r\n\r\n"
        );
        assert_eq!(base64(b"ab"), "YWI=");
        assert_eq!(base64(b"abc"), "YWJj");
    }

    #[test]
    fn response_rewrite() {
        let s = b"HTTP/1.1 200 Fine\r\nConnection: X-A\r\nX-A: 1\r\nTransfer-Encoding: chunked\r\nServer: s\r\n\r\n";
        let mut h = crate::http::response::ResponseHead::default();
        crate::http::response::parse(s, 4096, false, &mut h).unwrap().unwrap();
        let mut out = Vec::new();
        write_response(s, &h, &ResponseChanges { close: true, dechunk: true, via: None, extra: None }, &mut out);
        assert_eq!(String::from_utf8(out).unwrap(), "HTTP/1.1 200 Fine\r\nServer: s\r\nConnection: close\r\n\r\n");
    }
}
