//! Anonymous in-memory files (`memfd_create(2)`) for large cached bodies:
//! the body is written once into the file's pages, and a plain TCP client
//! gets it by `splice` from those pages (no copy through user space, as
//! nginx's `sendfile` from its file cache), while any other reader uses
//! positional reads. The pages are the cache's memory, counted as such.
//!
//! Why `unsafe`: `memfd_create` is an FFI call that std does not wrap; the
//! descriptor it returns is new and owned by nothing else, so it moves
//! into a `File` at once. Reads and writes then use std's safe
//! `FileExt::read_at`/`write_at`.
#![allow(unsafe_code)]

use std::ffi::CStr;
use std::fs::File;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd};

/// A new, empty in-memory file (closed on exec).
pub fn create() -> io::Result<File> {
    const NAME: &CStr = c"shoal-cache";
    // SAFETY: NAME is a valid NUL-terminated string; the flags are valid.
    let fd = unsafe { libc::memfd_create(NAME.as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by memfd_create and nothing else owns it.
    Ok(File::from(unsafe { OwnedFd::from_raw_fd(fd) }))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::FileExt;

    #[test]
    fn write_and_read_back() {
        let f = super::create().unwrap();
        f.write_all_at(b"hello", 3).unwrap();
        let mut buf = [0u8; 8];
        f.read_exact_at(&mut buf, 0).unwrap();
        assert_eq!(&buf, b"\0\0\0hello");
    }
}
