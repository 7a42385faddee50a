//! Connecting a client's connection to a node of a pool, with passive health
//! and retries: nothing has been written to a node whose connect failed, so
//! the connection moves on to the next node the balancer offers, trying
//! each working node at most once (C5, C6 for connection-level failures).
//! Success is recorded by the caller ([`ShardPool::record_success`]) when
//! the node has actually answered.
//!
//! A connection is ready when its preamble is done: the bytes its user
//! sends first (the PROXY protocol header, B9), then the TLS handshake for
//! pools that encrypt to their nodes (B8). A failed handshake is a node
//! failure like a failed connect.

use super::{NodeLease, Pick, ProbeSlot, ShardPool};
use crate::net::stream::Split;
use monoio::io::AsyncWriteRentExt;
use monoio::net::TcpStream;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct NoNode {
    /// How many nodes were tried (0: none was eligible).
    pub tried: usize,
    pub last_error: Option<String>,
}

impl std::fmt::Display for NoNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.last_error {
            None => write!(f, "no node available"),
            Some(e) => write!(f, "no node could be reached ({} tried, last: {e})", self.tried),
        }
    }
}

/// Connect to the node `pick` chose, send `first` (a PROXY protocol
/// header, or nothing), then do the pool's TLS handshake, within `timeout`
/// in all. On failure the node's failure is recorded and the reason
/// returned.
pub async fn connect_node(
    pool: &Rc<ShardPool>,
    pick: Pick,
    timeout: Duration,
    first: &[u8],
) -> Result<(NodeLease, Split), String> {
    let i = pick.node;
    let node = &pool.nodes[i];
    let slot = ProbeSlot::of(pool, pick);
    // Count the connection while it is being made, so least-connections
    // sees in-flight connects too.
    let lease = pool.lease(pick);
    let deadline = Instant::now() + timeout;
    let err = match monoio::time::timeout(timeout, TcpStream::connect_addr(node.addr)).await {
        Ok(Ok(stream)) => {
            let _ = stream.set_nodelay(true);
            node.idle.opened.set(node.idle.opened.get() + 1);
            match monoio::time::timeout_at(deadline.into(), preamble(pool, i, stream, first)).await {
                Ok(Ok(conn)) => {
                    // Connected is not yet healthy: the protocol records
                    // success once the node answers (a node that accepts
                    // and stays silent must keep counting failures). The
                    // single-flight slot is released here (by dropping
                    // `slot`) so the next connection may try the node
                    // while this one waits.
                    drop(slot);
                    return Ok((lease, conn));
                }
                Ok(Err(e)) => e,
                Err(_) => format!("TLS handshake timed out (max_connect_time {timeout:?})"),
            }
        }
        Ok(Err(e)) => format!("connect failed: {e}"),
        Err(_) => format!("connect timed out after {timeout:?}"),
    };
    drop(lease);
    // Mark the failure (perhaps the node dead) before giving the
    // single-flight slot back, so no other attempt slips in between.
    pool.record_failure(i, &err);
    drop(slot);
    Err(err)
}

/// `first`, then the TLS handshake if the pool asks for one.
async fn preamble(pool: &ShardPool, node: usize, mut stream: TcpStream, first: &[u8]) -> Result<Split, String> {
    if !first.is_empty() {
        let (res, _) = stream.write_all(first.to_vec()).await;
        res.map_err(|e| format!("write to node failed: {e}"))?;
    }
    let Some(tls) = &pool.tls else { return Ok(Split::tcp(stream)) };
    let name = tls.name_for(&pool.nodes[node].name)?;
    let stream = crate::tls::client::handshake(stream, tls.config(), name).await?;
    Ok(Split::tls(stream))
}

/// Connect to a node of `pool` for the client `(peer, local)` (named in a
/// PROXY header if the pool sends one). `timeout` overrides the pool's
/// `max_connect_time` when given.
pub async fn connect(
    pool: &Rc<ShardPool>,
    timeout: Option<Duration>,
    client: (SocketAddr, SocketAddr),
) -> Result<(NodeLease, Split), NoNode> {
    let timeout = timeout.unwrap_or(pool.cfg.max_connect_time);
    let first = proxy_header(pool, client);
    let mut tried = vec![false; pool.nodes.len()];
    let mut count = 0;
    let mut last_error = None;
    let queue_deadline = std::time::Instant::now() + pool.cfg.queue_timeout;
    loop {
        let Some(pick) = pool.pick(&tried, None) else {
            if pool.has_full_node(&tried) && pool.wait_for_slot(&tried, queue_deadline).await {
                continue;
            }
            break;
        };
        tried[pick.node] = true;
        count += 1;
        match connect_node(pool, pick, timeout, &first).await {
            Ok(x) => return Ok(x),
            Err(e) => last_error = Some(e),
        }
    }
    Err(NoNode { tried: count, last_error })
}

/// [`connect`], trying `preferred` first (a persisted session's node) when
/// it can take a connection now: active or draining, not failed, within
/// its connection limit.
pub async fn connect_preferring(
    pool: &Rc<ShardPool>,
    preferred: Option<usize>,
    timeout: Option<Duration>,
    client: (SocketAddr, SocketAddr),
) -> Result<(NodeLease, Split), NoNode> {
    if let Some(pick) = preferred.and_then(|n| pool.pick_required(n)) {
        let first = proxy_header(pool, client);
        if let Ok(c) = connect_node(pool, pick, timeout.unwrap_or(pool.cfg.max_connect_time), &first).await {
            return Ok(c);
        }
    }
    connect(pool, timeout, client).await
}

/// The PROXY protocol header naming the client `(peer, local)`, when the
/// pool sends one (else empty).
fn proxy_header(pool: &ShardPool, (peer, local): (SocketAddr, SocketAddr)) -> Vec<u8> {
    let mut header = Vec::new();
    if let Some(version) = pool.cfg.proxy_protocol {
        crate::net::proxy_protocol::encode(version, peer, local, &mut header);
    }
    header
}
