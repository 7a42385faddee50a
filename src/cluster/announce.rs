//! Telling the segment that an address moved here (K3): a gratuitous ARP
//! for IPv4 (an ARP request from the address to itself, broadcast, which
//! neighbours holding an entry for it update from) and an unsolicited
//! neighbour advertisement for IPv6 (to all nodes, with the Override flag
//! and our link-layer address, RFC 4861 section 7.2.6); and, for
//! multi-hosted addresses (K4), answering ARP requests with the address's
//! multicast MAC ([`ArpResponder`]).
//!
//! Why `unsafe` here: ARP frames are sent and received on AF_PACKET
//! sockets, which neither std nor socket2 can address safely (a
//! `sockaddr_ll` built by hand). Each socket is owned by an `OwnedFd` from
//! the moment it exists, and every `sendto`/`recvfrom`/`setsockopt` reads
//! or writes buffers and addresses that live on the calling function's
//! stack for the whole call. IPv6 needs no unsafe: a raw
//! ICMPv6 socket through socket2, whose checksum the kernel fills in.

#![allow(unsafe_code)]

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV6};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// The interface's index and MAC address, from sysfs (the network
/// namespace's, under `ip netns exec`).
pub fn link(iface: &str) -> io::Result<(u32, [u8; 6])> {
    let read = |what: &str| std::fs::read_to_string(format!("/sys/class/net/{iface}/{what}"));
    let index: u32 =
        read("ifindex")?.trim().parse().map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad ifindex"))?;
    let text = read("address")?;
    let mut mac = [0u8; 6];
    let parts: Vec<&str> = text.trim().split(':').collect();
    if parts.len() != 6 {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("{iface} has no Ethernet address")));
    }
    for (m, p) in mac.iter_mut().zip(parts) {
        *m = u8::from_str_radix(p, 16).map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad MAC"))?;
    }
    Ok((index, mac))
}

/// One gratuitous ARP for `ip` on `iface`.
pub fn garp(iface: &str, ip: Ipv4Addr) -> io::Result<()> {
    let (index, mac) = link(iface)?;
    let mut frame = [0u8; 42];
    frame[0..6].copy_from_slice(&[0xff; 6]);
    frame[6..12].copy_from_slice(&mac);
    frame[12..14].copy_from_slice(&0x0806u16.to_be_bytes()); // ARP
    frame[14..16].copy_from_slice(&1u16.to_be_bytes()); // Ethernet
    frame[16..18].copy_from_slice(&0x0800u16.to_be_bytes()); // IPv4
    frame[18] = 6;
    frame[19] = 4;
    frame[20..22].copy_from_slice(&1u16.to_be_bytes()); // request
    frame[22..28].copy_from_slice(&mac);
    frame[28..32].copy_from_slice(&ip.octets());
    // Target hardware address zero, target protocol address ours.
    frame[38..42].copy_from_slice(&ip.octets());
    // SAFETY: socket(2) has no memory arguments; a valid descriptor is
    // owned by the OwnedFd at once and closed when it drops.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by socket(2) and nothing else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: sockaddr_ll is plain data; all-zero is a valid value.
    let mut to: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    to.sll_family = libc::AF_PACKET as u16;
    to.sll_protocol = 0x0806u16.to_be();
    to.sll_ifindex = index as i32;
    to.sll_halen = 6;
    to.sll_addr[..6].copy_from_slice(&[0xff; 6]);
    // SAFETY: `frame` and `to` are live locals for the whole call, and
    // the lengths passed are theirs.
    let sent = unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            frame.as_ptr().cast(),
            frame.len(),
            0,
            (&to as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// One unsolicited neighbour advertisement for `ip` on `iface`.
pub fn unsolicited_na(iface: &str, ip: Ipv6Addr) -> io::Result<()> {
    use socket2::{Domain, Protocol, Socket, Type};
    let (index, mac) = link(iface)?;
    let s = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::ICMPV6))?;
    // Neighbour discovery is accepted only with a hop limit of 255.
    s.set_multicast_hops_v6(255)?;
    s.set_multicast_if_v6(index)?;
    s.bind(&SocketAddrV6::new(ip, 0, 0, 0).into())?;
    let mut msg = [0u8; 32];
    msg[0] = 136; // neighbour advertisement; code 0; checksum by the kernel
    msg[4] = 0x20; // Override: replace what neighbours have cached
    msg[8..24].copy_from_slice(&ip.octets());
    msg[24] = 2; // option: target link-layer address
    msg[25] = 1; // its length in units of 8 bytes
    msg[26..32].copy_from_slice(&mac);
    let all_nodes = SocketAddrV6::new(Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1), 0, 0, index);
    s.send_to(&msg, &all_nodes.into())?;
    Ok(())
}

/// The multicast MAC a multi-hosted address is answered with (K4): the
/// IPv4 multicast prefix 01:00:5e, then a fixed 0x7f (bit 23 clear, as
/// the IP multicast mapping requires) and the address's last two octets.
/// Switches flood it to every port, so every member receives the
/// address's traffic.
pub fn multicast_mac(ip: Ipv4Addr) -> [u8; 6] {
    let o = ip.octets();
    [0x01, 0x00, 0x5e, 0x7f, o[2], o[3]]
}

/// Answers ARP requests for multi-hosted addresses with their multicast
/// MAC (the kernel's own answers are dropped by nftables, multi.rs).
pub struct ArpResponder {
    fd: OwnedFd,
}

/// How long one `answer_one` call waits for a request, so that its thread
/// sees changes to what it answers for.
const ARP_WAIT: libc::timeval = libc::timeval { tv_sec: 0, tv_usec: 250_000 };

impl ArpResponder {
    pub fn new() -> io::Result<ArpResponder> {
        // SAFETY: socket(2) has no memory arguments; a valid descriptor is
        // owned by the OwnedFd at once.
        let fd = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                i32::from((libc::ETH_P_ARP as u16).to_be()),
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by socket(2) and nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: the option value is a live local of the size passed.
        let r = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&ARP_WAIT as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(ArpResponder { fd })
    }

    /// Wait (at most 250 ms) for one ARP frame; if it is a request for an
    /// address `lookup` knows on the interface it came in on (by index),
    /// answer it with that address's multicast MAC. Returns whether it
    /// answered.
    pub fn answer_one(&self, lookup: impl Fn(u32, Ipv4Addr) -> Option<[u8; 6]>) -> io::Result<bool> {
        let mut frame = [0u8; 128];
        // SAFETY: sockaddr_ll is plain data; all-zero is a valid value.
        let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        let mut from_len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
        // SAFETY: `frame`, `from` and `from_len` are live locals for the
        // whole call and the lengths passed are theirs.
        let n = unsafe {
            libc::recvfrom(
                self.fd.as_raw_fd(),
                frame.as_mut_ptr().cast(),
                frame.len(),
                0,
                (&mut from as *mut libc::sockaddr_ll).cast(),
                &mut from_len,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted => Ok(false),
                _ => Err(e),
            };
        }
        if from.sll_pkttype == libc::PACKET_OUTGOING {
            return Ok(false);
        }
        let Some(ask) = ArpRequest::parse(&frame[..n as usize]) else { return Ok(false) };
        let index = from.sll_ifindex as u32;
        let Some(mac) = lookup(index, ask.target) else { return Ok(false) };
        let (asker_mac, asker_ip, target) = (ask.sender_mac, ask.sender_ip.octets(), ask.target);
        let own = own_mac(index)?;
        let mut reply = [0u8; 42];
        reply[0..6].copy_from_slice(&asker_mac);
        reply[6..12].copy_from_slice(&own);
        reply[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
        reply[14..22].copy_from_slice(&[0, 1, 8, 0, 6, 4, 0, 2]); // a reply
        reply[22..28].copy_from_slice(&mac);
        reply[28..32].copy_from_slice(&target.octets());
        reply[32..38].copy_from_slice(&asker_mac);
        reply[38..42].copy_from_slice(&asker_ip);
        // SAFETY: sockaddr_ll is plain data; all-zero is a valid value.
        let mut to: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        to.sll_family = libc::AF_PACKET as u16;
        to.sll_protocol = 0x0806u16.to_be();
        to.sll_ifindex = index as i32;
        to.sll_halen = 6;
        to.sll_addr[..6].copy_from_slice(&asker_mac);
        // SAFETY: `reply` and `to` are live locals for the whole call, and
        // the lengths passed are theirs.
        let sent = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                reply.as_ptr().cast(),
                reply.len(),
                0,
                (&to as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if sent < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(true)
    }
}

/// An ARP request for an IPv4 address over Ethernet, as read off the
/// wire (untrusted: anything else, or anything short, is not one).
#[derive(Debug, PartialEq, Eq)]
pub struct ArpRequest {
    pub sender_mac: [u8; 6],
    pub sender_ip: Ipv4Addr,
    pub target: Ipv4Addr,
}

impl ArpRequest {
    pub fn parse(frame: &[u8]) -> Option<ArpRequest> {
        // Ethernet header, then ARP: Ethernet (1), IPv4 (0x0800), lengths
        // 6 and 4, operation request (1).
        let arp = frame.get(14..42)?;
        if frame[12..14] != [0x08, 0x06] || arp[..8] != [0, 1, 8, 0, 6, 4, 0, 1] {
            return None;
        }
        let mut sender_mac = [0u8; 6];
        sender_mac.copy_from_slice(&arp[8..14]);
        let ip = |b: &[u8]| Ipv4Addr::new(b[0], b[1], b[2], b[3]);
        Some(ArpRequest { sender_mac, sender_ip: ip(&arp[14..18]), target: ip(&arp[24..28]) })
    }
}

/// The MAC address of the interface with index `index`.
fn own_mac(index: u32) -> io::Result<[u8; 6]> {
    for e in std::fs::read_dir("/sys/class/net")?.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Ok((i, mac)) = link(&name) {
            if i == index {
                return Ok(mac);
            }
        }
    }
    Err(io::Error::new(io::ErrorKind::NotFound, format!("no interface with index {index}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> Vec<u8> {
        let mut f = vec![0xff; 6];
        f.extend([2, 0, 0, 0, 0, 1, 0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 1]);
        f.extend([2, 0, 0, 0, 0, 1, 10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 10, 0, 0, 200]);
        f
    }

    #[test]
    fn arp_requests_are_read_and_anything_else_refused() {
        let r = ArpRequest::parse(&request()).unwrap();
        assert_eq!(r.sender_mac, [2, 0, 0, 0, 0, 1]);
        assert_eq!((r.sender_ip, r.target), (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 200)));
        let mut reply = request();
        reply[21] = 2;
        assert_eq!(ArpRequest::parse(&reply), None);
        let mut ipv6 = request();
        ipv6[12..14].copy_from_slice(&[0x86, 0xdd]);
        assert_eq!(ArpRequest::parse(&ipv6), None);
        // Every truncation, and noise of every length, is refused or read
        // without a panic.
        let f = request();
        for n in 0..f.len() {
            assert_eq!(ArpRequest::parse(&f[..n]), None, "{n} bytes");
        }
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for len in 0..200 {
            let noise: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            let _ = ArpRequest::parse(&noise);
        }
        assert_eq!(multicast_mac(Ipv4Addr::new(192, 0, 2, 20)), [0x01, 0x00, 0x5e, 0x7f, 2, 20]);
    }
}
