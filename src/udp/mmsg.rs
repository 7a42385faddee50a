//! Batched datagram I/O on non-blocking sockets: `recvmmsg(2)` fills up
//! to a batch of datagrams with one system call, `sendmmsg(2)` sends a
//! batch with one (each to its own address, or all on a connected
//! socket), and `send(2)` sends one.
//!
//! Why `unsafe` here: these are libc calls that take raw pointers into
//! buffers this module owns (`iovec`s into the slots, `mmsghdr`s onto the
//! `iovec`s and addresses). The pointers are rebuilt before every call from
//! the `Vec`s' heap storage, which is never resized after `new`, and no
//! pointer outlives the call. Why not a crate: `nix` would add a large
//! dependency for two calls, and `quinn-udp` batches by GSO to a single
//! destination, where a relay answers many clients in one batch.

#![allow(unsafe_code)]

use std::io;
use std::mem::{size_of, zeroed};
use std::net::SocketAddr;
use std::os::fd::RawFd;

/// A batch of receive slots and, after [`RecvBatch::recv`], the datagrams
/// in them.
pub struct RecvBatch {
    slot_len: usize,
    bufs: Vec<u8>,
    iovs: Vec<libc::iovec>,
    addrs: Vec<libc::sockaddr_storage>,
    hdrs: Vec<libc::mmsghdr>,
    /// Datagrams filled by the last `recv`.
    filled: usize,
}

/// One datagram of a batch.
pub struct Datagram<'a> {
    pub data: &'a [u8],
    /// Its source (unconnected sockets).
    pub from: Option<SocketAddr>,
    /// It was longer than a slot: `data` is its first bytes only.
    pub truncated: bool,
}

impl RecvBatch {
    /// `slots` datagrams of up to `slot_len` bytes each.
    pub fn new(slots: usize, slot_len: usize) -> RecvBatch {
        let slots = slots.max(1);
        // SAFETY: an all-zero iovec, sockaddr_storage or mmsghdr is a valid
        // value of these plain C structs (null pointers, zero lengths).
        let (iov, addr, hdr) = unsafe { (zeroed(), zeroed(), zeroed()) };
        RecvBatch {
            slot_len,
            bufs: vec![0; slots * slot_len],
            iovs: vec![iov; slots],
            addrs: vec![addr; slots],
            hdrs: vec![hdr; slots],
            filled: 0,
        }
    }

    pub fn slots(&self) -> usize {
        self.hdrs.len()
    }

    /// Receive what is waiting on `fd`, up to a batch, without blocking:
    /// the number of datagrams, 0 when none is waiting.
    pub fn recv(&mut self, fd: RawFd) -> io::Result<usize> {
        self.filled = 0;
        let base = self.bufs.as_mut_ptr();
        for i in 0..self.hdrs.len() {
            self.iovs[i] = libc::iovec {
                // SAFETY: slot i lies within `bufs` (slots × slot_len bytes).
                iov_base: unsafe { base.add(i * self.slot_len) }.cast(),
                iov_len: self.slot_len,
            };
            let h = &mut self.hdrs[i].msg_hdr;
            h.msg_name = (&mut self.addrs[i] as *mut libc::sockaddr_storage).cast();
            h.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            h.msg_iov = &mut self.iovs[i];
            h.msg_iovlen = 1;
            h.msg_control = std::ptr::null_mut();
            h.msg_controllen = 0;
            h.msg_flags = 0;
            self.hdrs[i].msg_len = 0;
        }
        // SAFETY: every header points at live memory of this batch, sized
        // as declared; the kernel writes only within those sizes.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                self.hdrs.as_mut_ptr(),
                self.hdrs.len() as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock => Ok(0),
                io::ErrorKind::Interrupted => Ok(0),
                _ => Err(e),
            };
        }
        self.filled = n as usize;
        Ok(self.filled)
    }

    /// Datagram `i` of the last `recv`.
    pub fn get(&self, i: usize) -> Datagram<'_> {
        assert!(i < self.filled, "datagram {i} of {}", self.filled);
        let h = &self.hdrs[i];
        let len = (h.msg_len as usize).min(self.slot_len);
        Datagram {
            data: &self.bufs[i * self.slot_len..i * self.slot_len + len],
            from: sockaddr_to_std(&self.addrs[i], h.msg_hdr.msg_namelen),
            truncated: h.msg_hdr.msg_flags & libc::MSG_TRUNC != 0,
        }
    }
}

/// Send datagrams `items` of `batch` (indices) on `fd`: to `to`, or on a
/// connected socket when `None`, in as few `sendmmsg` calls as the kernel
/// takes them. Returns how many went; the rest met a full send buffer
/// (or the error, if the first did).
pub fn send_from(fd: RawFd, batch: &RecvBatch, items: &[usize], to: Option<SocketAddr>) -> io::Result<usize> {
    const MAX: usize = 64;
    let name: Option<socket2::SockAddr> = to.map(Into::into);
    let mut sent = 0;
    while sent < items.len() {
        let chunk = &items[sent..items.len().min(sent + MAX)];
        // SAFETY: all-zero iovec/mmsghdr are valid values.
        let mut iovs: [libc::iovec; MAX] = unsafe { zeroed() };
        let mut hdrs: [libc::mmsghdr; MAX] = unsafe { zeroed() };
        for (k, &i) in chunk.iter().enumerate() {
            let d = batch.get(i).data;
            iovs[k] = libc::iovec { iov_base: d.as_ptr() as *mut libc::c_void, iov_len: d.len() };
            let h = &mut hdrs[k].msg_hdr;
            if let Some(name) = &name {
                // sendmsg only reads the address.
                h.msg_name = name.as_ptr() as *mut libc::c_void;
                h.msg_namelen = name.len();
            }
            h.msg_iov = &mut iovs[k];
            h.msg_iovlen = 1;
        }
        // SAFETY: the headers point at `iovs`, `name` and the batch's
        // slots, all alive for the call; the kernel only reads them
        // (and writes msg_len).
        let n = unsafe { libc::sendmmsg(fd, hdrs.as_mut_ptr(), chunk.len() as libc::c_uint, libc::MSG_DONTWAIT) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if sent > 0 || e.kind() == io::ErrorKind::WouldBlock {
                return Ok(sent);
            }
            return Err(e);
        }
        sent += n as usize;
        if (n as usize) < chunk.len() {
            return Ok(sent);
        }
    }
    Ok(sent)
}

/// Send one datagram on a connected socket without blocking: false when
/// its send buffer is full.
pub fn send(fd: RawFd, data: &[u8]) -> io::Result<bool> {
    // SAFETY: `data` is valid for reads of its length for the call.
    let n = unsafe { libc::send(fd, data.as_ptr().cast(), data.len(), libc::MSG_DONTWAIT) };
    if n < 0 {
        let e = io::Error::last_os_error();
        return if e.kind() == io::ErrorKind::WouldBlock { Ok(false) } else { Err(e) };
    }
    Ok(true)
}

fn sockaddr_to_std(s: &libc::sockaddr_storage, len: libc::socklen_t) -> Option<SocketAddr> {
    // SAFETY: the kernel wrote a socket address of `len` bytes into `s`
    // (any family: `as_socket` reads only IPv4 and IPv6 ones).
    unsafe { socket2::SockAddr::new(*s, len) }.as_socket()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn a_batch_goes_round_trip_with_sources_and_truncation() {
        let a = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        a.set_nonblocking(true).unwrap();
        b.set_nonblocking(true).unwrap();
        let mut batch = RecvBatch::new(8, 16);
        assert_eq!(batch.recv(b.as_raw_fd()).unwrap(), 0, "nothing waiting");
        for i in 0..3u8 {
            a.send_to(&[i; 5], b.local_addr().unwrap()).unwrap();
        }
        a.send_to(&[9; 40], b.local_addr().unwrap()).unwrap();
        let n = batch.recv(b.as_raw_fd()).unwrap();
        assert_eq!(n, 4);
        for i in 0..3 {
            let d = batch.get(i);
            assert_eq!((d.data, d.from, d.truncated), (&[i as u8; 5][..], Some(a.local_addr().unwrap()), false));
        }
        let big = batch.get(3);
        assert_eq!((big.data.len(), big.truncated), (16, true));
        // Back to the sender, in one sendmmsg.
        assert_eq!(send_from(b.as_raw_fd(), &batch, &[0, 2], Some(a.local_addr().unwrap())).unwrap(), 2);
        let mut back = RecvBatch::new(4, 16);
        let n = back.recv(a.as_raw_fd()).unwrap();
        assert_eq!(n, 2);
        assert_eq!((back.get(0).data, back.get(1).data), (&[0u8; 5][..], &[2u8; 5][..]));
        // Connected: send and send_from without an address.
        a.connect(b.local_addr().unwrap()).unwrap();
        assert!(send(a.as_raw_fd(), b"one").unwrap());
        assert_eq!(send_from(a.as_raw_fd(), &back, &[1], None).unwrap(), 1);
        let n = batch.recv(b.as_raw_fd()).unwrap();
        assert_eq!((n, batch.get(0).data, batch.get(1).data), (2, &b"one"[..], &[2u8; 5][..]));
    }
}
