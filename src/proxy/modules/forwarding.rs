//! What a proxy tells the node about the client, as a module (B9, B7):
//! in the `node_request` phase, `X-Forwarded-For` (the client address
//! appended to the list), `X-Cluster-Client-Ip` (set), `Via`,
//! `X-Forwarded-Proto: https` and the SSL headers on TLS virtual servers
//! (replacing any the client sent under those names); in the `response`
//! phase, `Via` on the response.

use crate::config::VirtualServer;
use crate::proxy::module::{Module, Step, Verdict};
use crate::proxy::txn::Txn;
use std::io::Write;
use std::net::IpAddr;

/// The headers a TLS virtual server with `add_ssl_headers` sets.
pub const SSL_HEADERS: [&str; 4] = ["SSL-Protocol", "SSL-Cipher", "SSL-Server-Name", "SSL-Client-Certificate"];

/// The virtual server's forwarding settings.
pub struct Forwarding {
    x_forwarded_for: bool,
    cluster_client_ip: bool,
    via: bool,
    forwarded_proto: bool,
    ssl_headers: bool,
}

impl Forwarding {
    /// The module for `vs`, when it sets any of these headers.
    pub fn for_vs(vs: &VirtualServer) -> Option<Forwarding> {
        let tls = vs.tls.as_ref();
        let f = Forwarding {
            x_forwarded_for: vs.http.add_x_forwarded_for,
            cluster_client_ip: vs.http.add_cluster_client_ip,
            via: vs.http.add_via,
            forwarded_proto: tls.is_some_and(|t| t.add_x_forwarded_proto),
            ssl_headers: tls.is_some_and(|t| t.add_ssl_headers),
        };
        (f.x_forwarded_for || f.cluster_client_ip || f.via || f.forwarded_proto || f.ssl_headers).then_some(f)
    }
}

impl Module for Forwarding {
    type Ctx = ();

    fn name(&self) -> &'static str {
        "forwarding"
    }

    fn node_request(&self, tx: &mut Txn, _: &mut ()) {
        let ip = tx.client().ip().to_canonical();
        let fields = &mut tx.request.fields;
        // Each edit is bounded by the head's edit budget; one that does not
        // fit leaves the field out and says so.
        let mut ok = true;
        if self.x_forwarded_for {
            ok &= fields.append_to_list("X-Forwarded-For", |out| push_ip(out, ip)).is_ok();
        }
        if self.cluster_client_ip {
            ok &= fields.set_with("X-Cluster-Client-Ip", |out| push_ip(out, ip)).is_ok();
        }
        if self.via {
            let version = tx.request.version.via_str();
            ok &= tx.request.fields.add_with("Via", |out| push_via(out, version)).is_ok();
        }
        if self.forwarded_proto {
            ok &= tx.request.fields.set("X-Forwarded-Proto", b"https").is_ok();
        }
        if self.ssl_headers {
            if let Some(tls) = &tx.conn.tls {
                let lines = tx.conn.ssl_lines.get_or_init(|| ssl_header_values(tls));
                for name in SSL_HEADERS {
                    tx.request.fields.remove(name);
                }
                for (name, value) in SSL_HEADERS.iter().zip(lines.split(|&c| c == b'\n')) {
                    if !value.is_empty() {
                        ok &= tx.request.fields.add(name, value).is_ok();
                    }
                }
            }
        }
        if !ok {
            log::warn!(
                "virtual server {}: client {}: forwarding headers left out: the request head is full",
                tx.vs_config().name,
                tx.client()
            );
        }
    }

    fn response<'a>(&'a self, tx: &'a mut Txn, _: &'a mut ()) -> Step<'a, Verdict> {
        if self.via {
            let version = tx.response.version.via_str();
            let _ = tx.response.fields.add_with("Via", |out| push_via(out, version));
        }
        Step::Ready(Verdict::Accept)
    }
}

/// The values of [`SSL_HEADERS`] for a connection, `\n`-separated in that
/// order (empty where the session has none). Rendered once per connection.
fn ssl_header_values(t: &crate::tls::stream::Negotiated) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(t.version.as_bytes());
    out.push(b'\n');
    out.extend_from_slice(t.cipher.as_bytes());
    out.push(b'\n');
    if let Some(sni) = &t.sni {
        out.extend_from_slice(sni.as_bytes());
    }
    out.push(b'\n');
    if let Some(cert) = &t.peer_cert {
        // The DER certificate in base64: one header line, no PEM wrapping.
        out.extend_from_slice(base64(cert).as_bytes());
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

/// A `Via` value: `<version> shoal`.
fn push_via(out: &mut Vec<u8>, version: &str) {
    out.extend_from_slice(version.as_bytes());
    out.extend_from_slice(b" shoal");
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

    #[test]
    fn ssl_values_and_base64() {
        let t = crate::tls::stream::Negotiated {
            version: "TLSv1.3",
            cipher: "TLS13_AES_128_GCM_SHA256",
            sni: Some("a.test".into()),
            peer_cert: Some(b"hello".to_vec()),
            ..Default::default()
        };
        assert_eq!(ssl_header_values(&t), b"TLSv1.3\nTLS13_AES_128_GCM_SHA256\na.test\naGVsbG8=");
        assert_eq!(base64(b"ab"), "YWI=");
        assert_eq!(base64(b"abc"), "YWJj");
    }
}
