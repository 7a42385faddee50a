//! `type = "ip"`: the client's IP address is the session (any protocol).

use super::{Claim, Class, RequestView};

pub struct Ip;

/// The key of a client address (IPv4-mapped IPv6 as IPv4).
pub fn key(ip: std::net::IpAddr) -> Vec<u8> {
    match ip.to_canonical() {
        std::net::IpAddr::V4(v4) => v4.octets().to_vec(),
        std::net::IpAddr::V6(v6) => v6.octets().to_vec(),
    }
}

impl Class for Ip {
    fn claim<'a>(&self, req: &RequestView<'a>, _pool: usize) -> Claim<'a> {
        Claim::Key(key(req.client).into())
    }
}
