//! Zero-copy body relay between two TCP sockets: `splice(2)` from the
//! source socket into a pipe and from the pipe into the destination, so a
//! large body's bytes never enter user space (two copies saved per byte).
//! The same from a file in memory (a cached object's `memfd`) to a socket
//! ([`file_to_socket`]), as `sendfile` does: the page-cache pages go to the
//! socket by reference.
//!
//! Why not io_uring's SPLICE opcode: the kernel always runs it on an
//! io-wq worker thread, blocking, one thread per transfer in flight. Here
//! the shard makes non-blocking `splice` calls itself and waits for
//! readiness with a poll through its ring when a call would block, so a
//! transfer costs about three system calls per pipe-full and no threads.
//!
//! Why `unsafe`: `splice`, `pipe2`, `fcntl` and `dup` are FFI calls on raw
//! descriptors, which monoio does not wrap. They are sound here because the
//! caller holds the streams that own the socket descriptors for the whole
//! transfer, and the pipe descriptors are owned by [`Pipe`] (`OwnedFd`).
//!
//! A response with a bandwidth class moves at most one of its pieces per
//! pipe-full, and waits for the piece's turn before draining it.
//!
//! Pipes are kept per shard (a thread-local free list, bounded) and reused;
//! a pipe is returned only when it is known to be empty.
#![allow(unsafe_code)]

use crate::shaping::bandwidth::Shaper;
use std::cell::RefCell;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// Pipe capacity asked for (the default Linux `pipe-max-size`); the
/// kernel's 64 KiB default is used when the request is refused.
const PIPE_SIZE: i32 = 1 << 20;
/// Idle pipes kept per shard.
const MAX_IDLE_PIPES: usize = 64;
/// Pipes in use per shard at once; transfers beyond this copy instead, so
/// file descriptors stay bounded under many concurrent large bodies.
const MAX_BUSY_PIPES: usize = 1024;

pub struct Pipe {
    r: OwnedFd,
    w: OwnedFd,
    cap: usize,
}

thread_local! {
    static PIPES: RefCell<(Vec<Pipe>, usize)> = const { RefCell::new((Vec::new(), 0)) };
}

impl Pipe {
    fn new() -> io::Result<Pipe> {
        let mut fds = [0; 2];
        // SAFETY: `fds` is valid for two ints; on success both are new
        // descriptors that nothing else owns.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: as above; ownership moves into the OwnedFds.
        let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        // SAFETY: `w` is an open pipe descriptor.
        let got = unsafe { libc::fcntl(w.as_raw_fd(), libc::F_SETPIPE_SZ, PIPE_SIZE) };
        let cap = if got > 0 { got as usize } else { 64 * 1024 };
        Ok(Pipe { r, w, cap })
    }

    /// A pipe from this shard's free list (or a new one); `None` when the
    /// shard already has `MAX_BUSY_PIPES` in use or pipes cannot be made.
    pub fn take() -> Option<PipeLease> {
        PIPES.with(|p| {
            let mut p = p.borrow_mut();
            if p.1 >= MAX_BUSY_PIPES {
                return None;
            }
            let pipe = match p.0.pop() {
                Some(pipe) => pipe,
                None => Pipe::new().ok()?,
            };
            p.1 += 1;
            Some(PipeLease { pipe: Some(pipe), empty: true })
        })
    }
}

/// A pipe in use. Dropped, it goes back to the shard's free list if it is
/// known to be empty, and is closed otherwise (a transfer that failed or
/// was cancelled midway may have left bytes in it).
pub struct PipeLease {
    pipe: Option<Pipe>,
    empty: bool,
}

impl Drop for PipeLease {
    fn drop(&mut self) {
        let pipe = self.pipe.take();
        let empty = self.empty;
        let _ = PIPES.try_with(|p| {
            let mut p = p.borrow_mut();
            p.1 -= 1;
            if let (true, Some(pipe)) = (empty && p.0.len() < MAX_IDLE_PIPES, pipe) {
                p.0.push(pipe);
            }
        });
    }
}

#[derive(Debug)]
pub enum SpliceError {
    /// The source ended before `len` bytes.
    Truncated,
    /// Nothing arrived from the source within the idle timeout.
    SourceIdle,
    Source(io::Error),
    Sink(io::Error),
}

/// What one non-blocking `splice` call did.
enum Step {
    Moved(usize),
    WouldBlock,
    End,
}

fn splice(from: RawFd, to: RawFd, len: usize) -> io::Result<Step> {
    splice_off(from, None, to, len)
}

/// `splice` from `from` at `*off` (advanced by what moved) into `to`.
fn splice_at(from: RawFd, off: &mut i64, to: RawFd, len: usize) -> io::Result<Step> {
    splice_off(from, Some(off), to, len)
}

/// One non-blocking `splice` call, from `from` at `off` (`None`: its
/// current position, as for sockets and pipes) into `to`.
fn splice_off(from: RawFd, off: Option<&mut i64>, to: RawFd, len: usize) -> io::Result<Step> {
    let off = off.map_or(std::ptr::null_mut(), |o| o as *mut i64);
    // SAFETY: both descriptors are open for the duration of the call (the
    // caller holds their owners); `off` is null or a valid i64 the call
    // updates.
    let n = unsafe {
        libc::splice(from, off, to, std::ptr::null_mut(), len, libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK)
    };
    match n {
        0 => Ok(Step::End),
        n if n > 0 => Ok(Step::Moved(n as usize)),
        _ => {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::WouldBlock {
                Ok(Step::WouldBlock)
            } else {
                Err(e)
            }
        }
    }
}

/// Move bytes `offset..offset + len` of `file` (a file in memory: reading
/// it never waits for a disk) to socket `dst` through `lease`'s pipe. The
/// bytes must all be in the file already.
pub async fn file_to_socket(
    file: RawFd,
    offset: u64,
    len: u64,
    dst: RawFd,
    lease: &mut PipeLease,
    shape: Option<&Shaper>,
) -> Result<(), SpliceError> {
    set_nonblocking(dst).map_err(SpliceError::Sink)?;
    lease.empty = false;
    let pipe = lease.pipe.as_ref().expect("a lease holds its pipe until dropped");
    let mut dst_poll: Option<monoio::net::TcpStream> = None;
    let mut off = i64::try_from(offset).map_err(|_| SpliceError::Source(io::ErrorKind::InvalidInput.into()))?;
    let mut left = len;
    while left > 0 {
        let queued = match splice_at(file, &mut off, pipe.w.as_raw_fd(), piece(left, pipe, shape))
            .map_err(SpliceError::Source)?
        {
            Step::Moved(n) => n,
            Step::End => return Err(SpliceError::Truncated),
            // The pipe is emptied after every fill, so it has room.
            Step::WouldBlock => return Err(SpliceError::Source(io::ErrorKind::WouldBlock.into())),
        };
        left -= queued as u64;
        drain_pipe(pipe, queued, dst, &mut dst_poll, shape).await?;
    }
    lease.empty = true;
    Ok(())
}

/// How much to move into the pipe next, of `left`: a pipe-full, or one of
/// the bandwidth class's pieces.
fn piece(left: u64, pipe: &Pipe, shape: Option<&Shaper>) -> usize {
    usize::try_from(left).unwrap_or(usize::MAX).min(pipe.cap).min(shape.map_or(usize::MAX, Shaper::chunk))
}

/// Move the `queued` bytes in `pipe` to socket `dst` (after their turn in
/// `shape`'s class, if any), waiting for it to be writable through the
/// ring (`dst_poll`, made on first need).
async fn drain_pipe(
    pipe: &Pipe,
    mut queued: usize,
    dst: RawFd,
    dst_poll: &mut Option<monoio::net::TcpStream>,
    shape: Option<&Shaper>,
) -> Result<(), SpliceError> {
    if let Some(s) = shape {
        s.take(queued).await;
    }
    while queued > 0 {
        match splice(pipe.r.as_raw_fd(), dst, queued).map_err(SpliceError::Sink)? {
            Step::Moved(n) => queued -= n,
            Step::End => return Err(SpliceError::Sink(io::ErrorKind::WriteZero.into())),
            Step::WouldBlock => {
                if dst_poll.is_none() {
                    *dst_poll = Some(poller(dst).map_err(SpliceError::Sink)?);
                }
                dst_poll.as_ref().expect("just set").writable(false).await.map_err(SpliceError::Sink)?;
            }
        }
    }
    Ok(())
}

/// Make a socket non-blocking, as `splice` needs: its socket side honours
/// only the file's `O_NONBLOCK` (`SPLICE_F_NONBLOCK` covers the pipe), and
/// monoio leaves sockets blocking on io_uring. The flag stays set: monoio's
/// io_uring `recv`/`send` operations do not consult it (they poll on
/// EAGAIN either way), and its epoll driver sets it itself.
fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: `fd` is open for the duration of the call (see the header).
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above.
    if flags & libc::O_NONBLOCK == 0 && unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A duplicate of a socket descriptor as a monoio stream, used only to
/// wait for readiness through the shard's ring (polling a duplicate
/// descriptor polls the same socket).
fn poller(fd: RawFd) -> io::Result<monoio::net::TcpStream> {
    // SAFETY: `fd` is open for the duration of the call (see the header).
    let dup = unsafe { BorrowedFd::borrow_raw(fd) }.try_clone_to_owned()?;
    monoio::net::TcpStream::from_std(std::net::TcpStream::from(dup))
}

/// Move exactly `len` bytes from socket `src` to socket `dst` through
/// `lease`'s pipe. Waits for the source at most `idle` at a time.
pub async fn relay(
    src: RawFd,
    dst: RawFd,
    len: u64,
    lease: &mut PipeLease,
    idle: Duration,
    shape: Option<&Shaper>,
) -> Result<(), SpliceError> {
    lease.empty = false;
    let pipe = lease.pipe.as_ref().expect("a lease holds its pipe until dropped");
    relay_with(src, dst, len, pipe, idle, shape).await?;
    lease.empty = true;
    Ok(())
}

async fn relay_with(
    src: RawFd,
    dst: RawFd,
    mut len: u64,
    pipe: &Pipe,
    idle: Duration,
    shape: Option<&Shaper>,
) -> Result<(), SpliceError> {
    set_nonblocking(src).map_err(SpliceError::Source)?;
    set_nonblocking(dst).map_err(SpliceError::Sink)?;
    let mut src_poll: Option<monoio::net::TcpStream> = None;
    let mut dst_poll: Option<monoio::net::TcpStream> = None;
    while len > 0 {
        let queued = match splice(src, pipe.w.as_raw_fd(), piece(len, pipe, shape)).map_err(SpliceError::Source)? {
            Step::Moved(n) => n,
            Step::End => return Err(SpliceError::Truncated),
            Step::WouldBlock => {
                if src_poll.is_none() {
                    src_poll = Some(poller(src).map_err(SpliceError::Source)?);
                }
                let p = src_poll.as_ref().expect("just set");
                match monoio::time::timeout(idle, p.readable(false)).await {
                    Err(_) => return Err(SpliceError::SourceIdle),
                    Ok(r) => r.map_err(SpliceError::Source)?,
                }
                continue;
            }
        };
        len -= queued as u64;
        drain_pipe(pipe, queued, dst, &mut dst_poll, shape).await?;
    }
    Ok(())
}
