//! The PROXY protocol header (HAProxy's spec, versions 1 and 2) that shoal
//! sends first on a node connection so the node learns the client's
//! address (B9). Only the sending side: shoal does not accept it (yet).

use std::io::Write;
use std::net::{IpAddr, SocketAddr};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V1,
    V2,
}

const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// Append the header for a connection from `src` (the client) to `dst`
/// (the address the client connected to).
pub fn encode(version: Version, src: SocketAddr, dst: SocketAddr, out: &mut Vec<u8>) {
    // Mixed families: present both as IPv6 (IPv4-mapped), which every
    // implementation accepts, rather than claiming UNKNOWN.
    let (s, d) = match (src.ip(), dst.ip()) {
        (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_)) => (src.ip(), dst.ip()),
        _ => (IpAddr::V6(to_v6(src.ip())), IpAddr::V6(to_v6(dst.ip()))),
    };
    match version {
        Version::V1 => {
            let fam = if s.is_ipv4() { "TCP4" } else { "TCP6" };
            let _ = write!(out, "PROXY {fam} {s} {d} {} {}\r\n", src.port(), dst.port());
        }
        Version::V2 => {
            out.extend_from_slice(&V2_SIGNATURE);
            out.push(0x21); // version 2, command PROXY
            match (s, d) {
                (IpAddr::V4(s), IpAddr::V4(d)) => {
                    out.push(0x11); // TCP over IPv4
                    out.extend_from_slice(&12u16.to_be_bytes());
                    out.extend_from_slice(&s.octets());
                    out.extend_from_slice(&d.octets());
                }
                (s, d) => {
                    out.push(0x21); // TCP over IPv6
                    out.extend_from_slice(&36u16.to_be_bytes());
                    out.extend_from_slice(&to_v6(s).octets());
                    out.extend_from_slice(&to_v6(d).octets());
                }
            }
            out.extend_from_slice(&src.port().to_be_bytes());
            out.extend_from_slice(&dst.port().to_be_bytes());
        }
    }
}

fn to_v6(ip: IpAddr) -> std::net::Ipv6Addr {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_and_v2() {
        let src: SocketAddr = "192.0.2.1:5000".parse().unwrap();
        let dst: SocketAddr = "198.51.100.2:80".parse().unwrap();
        let mut out = Vec::new();
        encode(Version::V1, src, dst, &mut out);
        assert_eq!(out, b"PROXY TCP4 192.0.2.1 198.51.100.2 5000 80\r\n");
        out.clear();
        encode(Version::V2, src, dst, &mut out);
        let mut want = V2_SIGNATURE.to_vec();
        want.extend_from_slice(&[0x21, 0x11, 0, 12, 192, 0, 2, 1, 198, 51, 100, 2, 0x13, 0x88, 0, 80]);
        assert_eq!(out, want);
        out.clear();
        encode(Version::V1, "[2001:db8::1]:1".parse().unwrap(), dst, &mut out);
        assert_eq!(out, b"PROXY TCP6 2001:db8::1 ::ffff:198.51.100.2 1 80\r\n");
        out.clear();
        encode(Version::V2, "[2001:db8::1]:1".parse().unwrap(), dst, &mut out);
        assert_eq!((out[13], out.len()), (0x21, 16 + 36));
    }
}
