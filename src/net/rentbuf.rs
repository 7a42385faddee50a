//! Copies into and out of monoio's owned ("rent") buffers, for the halves
//! that are not sockets: an HTTP/2 stream's request bytes and response
//! bytes (`crate::h2::stream`).
//!
//! Why `unsafe`: monoio's buffer traits (`IoBuf`, `IoBufMut`) expose a
//! caller's buffer only as a pointer and a length, so reading or filling
//! it needs `slice::from_raw_parts`; each use states the bounds it relies
//! on. Kept here so no HTTP/2 module needs `unsafe` of its own.

#![allow(unsafe_code)]

use monoio::buf::{IoBuf, IoBufMut};

/// The initialised bytes of `buf`.
pub fn bytes<T: IoBuf>(buf: &T) -> &[u8] {
    // SAFETY: `buf` is valid for reads of `bytes_init` bytes from
    // `read_ptr`, for as long as it is borrowed.
    unsafe { std::slice::from_raw_parts(buf.read_ptr(), buf.bytes_init()) }
}

/// Fill `buf` from `src` (as much as fits); returns the bytes copied.
pub fn fill<T: IoBufMut>(buf: &mut T, src: &[u8]) -> usize {
    let n = src.len().min(buf.bytes_total());
    // SAFETY: `buf` is valid for writes of `bytes_total` bytes from
    // `write_ptr`, and `n` is no more than that; the regions cannot
    // overlap (`src` is borrowed shared while `buf` is borrowed mutably).
    unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), buf.write_ptr(), n) };
    // SAFETY: the first `n` bytes were initialised by the copy above.
    unsafe { buf.set_init(n) };
    n
}
