//! The bidirectional byte relay under every generic protocol (B1–B4).
//!
//! Two pumps run concurrently on one task, one per direction, so a stalled
//! direction never holds up the other. End of stream on one side is passed
//! on as a half-close (`shutdown(SHUT_WR)`) to the other, and the relay
//! finishes when both directions have ended; an error on either side ends
//! both. One watchdog timer per connection enforces the idle timeouts,
//! re-armed only when it fires, so traffic costs one clock read per read.
//! A virtual server's byte-stream rules, when it has any, see each read
//! that is due to them and may replace it or close the connection.

use crate::rules::stream::{Filter, StreamFlow};
use monoio::buf::IoBuf;
use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt};
use std::cell::Cell;
use std::io;
use std::pin::pin;
use std::time::{Duration, Instant};

pub struct RelayOpts {
    pub buffer_size: usize,
    pub client_idle: Duration,
    pub server_idle: Duration,
    /// Drop the node's first line (up to `\n`): `server_first_banner`.
    pub discard_node_line: bool,
    /// The node is expected to speak next (server-first protocols, or the
    /// client's first bytes were just forwarded).
    pub awaiting_node: bool,
}

/// The longest node banner line shoal will discard before giving up.
pub const MAX_DISCARD_LINE: usize = 64 * 1024;

#[derive(Debug)]
pub enum RelayEnd {
    /// Both directions reached end of stream.
    Done {
        up: u64,
        down: u64,
    },
    /// Nothing moved for `client_idle_timeout` while waiting for the client.
    ClientIdle,
    /// Waited `server_idle_timeout` for a node that has sent nothing at all
    /// on this connection: a node failure (C5).
    NodeNoReply,
    /// Waited `server_idle_timeout` for a node that had answered before.
    NodeIdle,
    ClientError(io::Error),
    NodeError(io::Error),
    /// The node's first line exceeded [`MAX_DISCARD_LINE`].
    BannerTooLong,
    /// A rule closed the connection (`connection.close()`).
    RuleClosed,
}

struct Activity<'a> {
    on_node_reply: &'a dyn Fn(),
    last: Cell<Instant>,
    awaiting_node: Cell<bool>,
    node_spoke: Cell<bool>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Dir {
    Up,
    Down,
}

enum PumpError {
    Read(io::Error),
    Write(io::Error),
    BannerTooLong,
    RuleClosed,
}

/// Relay between the client's halves and the node's until both directions
/// end, an error, or an idle timeout. `on_node_reply` runs once, when the
/// node first sends data (its passive-health success).
pub async fn relay_halves<CR, CW, NR, NW>(
    cr: CR,
    cw: CW,
    nr: NR,
    nw: NW,
    opts: &RelayOpts,
    on_node_reply: &dyn Fn(),
    rules: Option<&Filter<'_>>,
) -> RelayEnd
where
    CR: AsyncReadRent,
    CW: AsyncWriteRent,
    NR: AsyncReadRent,
    NW: AsyncWriteRent,
{
    let act = Activity {
        on_node_reply,
        last: Cell::new(Instant::now()),
        awaiting_node: Cell::new(opts.awaiting_node),
        node_spoke: Cell::new(false),
    };
    let mut up = pin!(pump(cr, nw, Dir::Up, &act, opts.buffer_size, false, rules));
    let mut down = pin!(pump(nr, cw, Dir::Down, &act, opts.buffer_size, opts.discard_node_line, rules));
    let both = async {
        let first = monoio::select! {
            r = &mut up => (Dir::Up, r),
            r = &mut down => (Dir::Down, r),
        };
        let (u, d) = match first {
            (dir, Err(e)) => return pump_error(dir, e),
            (Dir::Up, Ok(u)) => match down.await {
                Ok(d) => (u, d),
                Err(e) => return pump_error(Dir::Down, e),
            },
            (Dir::Down, Ok(d)) => match up.await {
                Ok(u) => (u, d),
                Err(e) => return pump_error(Dir::Up, e),
            },
        };
        RelayEnd::Done { up: u, down: d }
    };
    monoio::select! {
        r = both => r,
        r = watchdog(&act, opts.client_idle, opts.server_idle) => r,
    }
}

fn pump_error(dir: Dir, e: PumpError) -> RelayEnd {
    match (dir, e) {
        (_, PumpError::BannerTooLong) => RelayEnd::BannerTooLong,
        (_, PumpError::RuleClosed) => RelayEnd::RuleClosed,
        (Dir::Up, PumpError::Read(e)) | (Dir::Down, PumpError::Write(e)) => RelayEnd::ClientError(e),
        (Dir::Down, PumpError::Read(e)) | (Dir::Up, PumpError::Write(e)) => RelayEnd::NodeError(e),
    }
}

async fn pump<R: AsyncReadRent, W: AsyncWriteRent>(
    mut r: R,
    mut w: W,
    dir: Dir,
    act: &Activity<'_>,
    size: usize,
    mut discard_line: bool,
    rules: Option<&Filter<'_>>,
) -> Result<u64, PumpError> {
    let mut buf: Vec<u8> = Vec::with_capacity(size);
    let mut total = 0u64;
    let mut discarded = 0usize;
    loop {
        buf.clear();
        let (res, b) = r.read(buf).await;
        buf = b;
        let n = res.map_err(PumpError::Read)?;
        if n == 0 {
            // Half-close: the peer sees end of stream, the other direction
            // keeps flowing.
            let _ = w.shutdown().await;
            return Ok(total);
        }
        act.last.set(Instant::now());
        let mut start = 0;
        match dir {
            Dir::Down => {
                if !act.node_spoke.replace(true) {
                    (act.on_node_reply)();
                }
                act.awaiting_node.set(false);
                if discard_line {
                    match buf.iter().position(|&c| c == b'\n') {
                        Some(p) => {
                            discard_line = false;
                            start = p + 1;
                        }
                        None => {
                            discarded += n;
                            if discarded > MAX_DISCARD_LINE {
                                return Err(PumpError::BannerTooLong);
                            }
                            continue;
                        }
                    }
                    if start == n {
                        continue;
                    }
                }
            }
            Dir::Up => act.awaiting_node.set(true),
        }
        if let Some(f) = rules.filter(|f| f.due(dir == Dir::Up)) {
            // The rules see (and may replace) what was just read.
            let mut data = buf[start..n].to_vec();
            if f.apply(dir == Dir::Up, &mut data).await == StreamFlow::Close {
                return Err(PumpError::RuleClosed);
            }
            act.last.set(Instant::now());
            if !data.is_empty() {
                let len = data.len() as u64;
                let (res, _) = w.write_all(data).await;
                res.map_err(PumpError::Write)?;
                total += len;
            }
            continue;
        }
        let len = n - start;
        let (res, b) = w.write_all(buf.slice(start..n)).await;
        buf = b.into_inner();
        res.map_err(PumpError::Write)?;
        total += len as u64;
    }
}

async fn watchdog(act: &Activity<'_>, client_idle: Duration, server_idle: Duration) -> RelayEnd {
    loop {
        let limit = if act.awaiting_node.get() { server_idle } else { client_idle };
        let deadline = act.last.get() + limit;
        let now = Instant::now();
        if now >= deadline {
            return match (act.awaiting_node.get(), act.node_spoke.get()) {
                (true, false) => RelayEnd::NodeNoReply,
                (true, true) => RelayEnd::NodeIdle,
                (false, _) => RelayEnd::ClientIdle,
            };
        }
        monoio::time::sleep(deadline - now).await;
    }
}
