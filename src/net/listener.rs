//! Binding listeners. Every shard gets its own socket for every address,
//! bound with SO_REUSEPORT so the kernel spreads new connections across
//! shards. Sockets are created on the main thread before any shard starts,
//! so a bad address or a port in use is reported once, at startup, and a
//! port 0 is resolved once and shared by all shards.

use socket2::{Domain, Protocol, Socket, Type};
use std::io;
use std::net::{SocketAddr, TcpListener};

/// Bind one SO_REUSEPORT listener.
pub fn bind_reuseport(addr: SocketAddr, backlog: u32) -> io::Result<TcpListener> {
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
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

/// Bind `count` sockets for `addr` (one per shard). When `addr` has port 0
/// the first bind picks the port and the others reuse it.
pub fn bind_group(addr: SocketAddr, backlog: u32, count: usize) -> io::Result<(SocketAddr, Vec<TcpListener>)> {
    let first = bind_reuseport(addr, backlog)?;
    let actual = first.local_addr()?;
    let mut v = vec![first];
    for _ in 1..count {
        v.push(bind_reuseport(actual, backlog)?);
    }
    Ok((actual, v))
}
