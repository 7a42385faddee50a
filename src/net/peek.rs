//! Liveness check of an idle pooled node connection before reuse.
//!
//! Why `unsafe`: a node may have closed an idle keepalive connection while
//! it sat in the pool; sending a request on it would fail only after the
//! request was written, which for a non-idempotent request is ambiguous.
//! A non-blocking `recv(MSG_PEEK | MSG_DONTWAIT)` tells at once whether the
//! node has closed (0), sent something unexpected (> 0) or is silent as an
//! idle connection should be (EAGAIN). monoio exposes only the raw file
//! descriptor of its streams, and `libc::recv` is an FFI call; it is sound
//! here because the caller holds the stream that owns `fd` for the whole
//! call, and the buffer is a local one-byte array.
#![allow(unsafe_code)]

use std::os::fd::RawFd;

/// True if the connection on `fd` is open and has nothing to read.
pub fn idle_connection_usable(fd: RawFd) -> bool {
    let mut b = [0u8; 1];
    // SAFETY: `fd` is an open socket owned by the caller for the duration
    // of the call; `b` is valid for writes of 1 byte.
    let r = unsafe { libc::recv(fd, b.as_mut_ptr().cast(), 1, libc::MSG_PEEK | libc::MSG_DONTWAIT) };
    if r < 0 {
        let e = std::io::Error::last_os_error();
        return e.kind() == std::io::ErrorKind::WouldBlock;
    }
    false
}
