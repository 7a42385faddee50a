//! Binding listeners. Every shard gets its own socket for every address,
//! bound with SO_REUSEPORT so the kernel spreads new connections (and, for
//! UDP, flows: it hashes the client's address and port, so one flow's
//! datagrams always reach the same shard) across shards. Sockets are created on the main thread before any shard starts,
//! so a bad address or a port in use is reported once, at startup, and a
//! port 0 is resolved once and shared by all shards.

use socket2::{Domain, Protocol, Socket, Type};
use std::io;
use std::net::{SocketAddr, TcpListener, UdpSocket};

/// One shard's socket of a listener: TCP (every protocol but one) or UDP.
#[derive(Debug)]
pub enum ListenSocket {
    Tcp(TcpListener),
    Udp(UdpSocket),
}

impl ListenSocket {
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        match self {
            ListenSocket::Tcp(l) => l.local_addr(),
            ListenSocket::Udp(u) => u.local_addr(),
        }
    }
}

/// Bind one SO_REUSEPORT listener.
pub fn bind_reuseport(addr: SocketAddr, backlog: u32) -> io::Result<TcpListener> {
    bind_tcp(addr, backlog, false)
}

/// `freebind`: the address may not be this host's yet (a traffic IP
/// address another cluster member holds now, docs/cluster.md): bind with
/// IP_FREEBIND, so the listener takes its connections once it is raised.
fn bind_tcp(addr: SocketAddr, backlog: u32, freebind: bool) -> io::Result<TcpListener> {
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if freebind {
        if addr.is_ipv6() {
            s.set_freebind_ipv6(true)?;
        } else {
            s.set_freebind(true)?;
        }
    }
    s.set_reuse_address(true)?;
    s.set_reuse_port(true)?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.set_nonblocking(true)?;
    s.set_nodelay(true)?;
    s.bind(&addr.into())?;
    s.listen(backlog as i32)?;
    Ok(s.into())
}

/// The receive and send buffers a UDP listener asks for: a burst of
/// datagrams waits here while the shard is busy (the kernel caps it at
/// net.core.rmem_max / wmem_max).
const UDP_SOCKET_BUFFER: usize = 4 << 20;

/// Bind one SO_REUSEPORT UDP socket (`freebind` as for TCP).
fn bind_udp_reuseport(addr: SocketAddr, freebind: bool) -> io::Result<UdpSocket> {
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if freebind {
        if addr.is_ipv6() {
            s.set_freebind_ipv6(true)?;
        } else {
            s.set_freebind(true)?;
        }
    }
    // SO_REUSEPORT only: the kernel shares it among sockets of the same
    // user. SO_REUSEADDR on UDP would let any process that also sets it
    // bind the same address and port and take some of its datagrams (the
    // tests saw dig, binding its random source port, do exactly that).
    s.set_reuse_port(true)?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.set_nonblocking(true)?;
    let _ = s.set_recv_buffer_size(UDP_SOCKET_BUFFER);
    let _ = s.set_send_buffer_size(UDP_SOCKET_BUFFER);
    s.bind(&addr.into())?;
    Ok(s.into())
}

/// A listener's sockets, one per shard: TCP with `backlog`, or UDP. When
/// `addr` has port 0 the first bind picks the port and the others reuse it.
pub fn bind_any_group(
    addr: SocketAddr,
    udp: bool,
    backlog: u32,
    count: usize,
    freebind: bool,
) -> io::Result<(SocketAddr, Vec<ListenSocket>)> {
    let first = bind_any(addr, udp, backlog, freebind)?;
    let actual = first.local_addr()?;
    let mut v = vec![first];
    for _ in 1..count {
        v.push(bind_any(actual, udp, backlog, freebind)?);
    }
    Ok((actual, v))
}

/// One socket for a listener at `addr` (`freebind`: see `bind_tcp`).
pub fn bind_any(addr: SocketAddr, udp: bool, backlog: u32, freebind: bool) -> io::Result<ListenSocket> {
    Ok(if udp {
        ListenSocket::Udp(bind_udp_reuseport(addr, freebind)?)
    } else {
        ListenSocket::Tcp(bind_tcp(addr, backlog, freebind)?)
    })
}
