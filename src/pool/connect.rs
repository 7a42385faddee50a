//! Connecting a client's connection to a node of a pool, with passive health
//! and retries: nothing has been written to a node whose connect failed, so
//! the connection moves on to the next node the balancer offers, trying
//! each working node at most once (C5, C6 for connection-level failures).
//! Success is recorded by the caller ([`ShardPool::record_success`]) when
//! the node has actually answered.

use super::{NodeLease, Pick, ShardPool};
use monoio::net::TcpStream;
use std::rc::Rc;
use std::time::Duration;

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

/// Releases a single-flight slot if the attempt is dropped mid-way.
struct ProbeSlot<'a>(Option<&'a super::health::NodeHealth>);

impl Drop for ProbeSlot<'_> {
    fn drop(&mut self) {
        if let Some(h) = self.0 {
            h.end_probe();
        }
    }
}

/// Connect to the node `pick` chose. On failure the node's failure is
/// recorded and the reason returned.
pub async fn connect_node(
    pool: &Rc<ShardPool>,
    pick: Pick,
    timeout: Duration,
) -> Result<(NodeLease, TcpStream), String> {
    let i = pick.node;
    let node = &pool.nodes[i];
    let slot = ProbeSlot(pick.single.then_some(&*node.health));
    // Count the connection while it is being made, so least-connections
    // sees in-flight connects too.
    let lease = pool.lease(pick);
    let err = match monoio::time::timeout(timeout, TcpStream::connect_addr(node.addr)).await {
        Ok(Ok(stream)) => {
            // Connected is not yet healthy: the protocol records success
            // once the node answers (a node that accepts and stays silent
            // must keep counting failures). The single-flight slot is
            // released here (by dropping `slot`) so the next connection may
            // try the node while this one waits.
            let _ = stream.set_nodelay(true);
            node.idle.opened.set(node.idle.opened.get() + 1);
            drop(slot);
            return Ok((lease, stream));
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

/// Connect to a node of `pool`. `timeout` overrides the pool's
/// `max_connect_time` when given.
pub async fn connect(pool: &Rc<ShardPool>, timeout: Option<Duration>) -> Result<(NodeLease, TcpStream), NoNode> {
    let timeout = timeout.unwrap_or(pool.cfg.max_connect_time);
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
        match connect_node(pool, pick, timeout).await {
            Ok(x) => return Ok(x),
            Err(e) => last_error = Some(e),
        }
    }
    Err(NoNode { tried: count, last_error })
}
