//! HTTP/2 to a pool's nodes (`[pools.NAME] http2 = true`): per shard and
//! node, one connection that carries every request of that shard as a
//! stream of its own (with TLS by ALPN `h2`, cleartext with prior
//! knowledge). A request takes a stream on it ([`open`]), or connects
//! when there is none or it has failed; the connection's task ends when
//! the node closes it or a newer connection replaces it and its last
//! stream ends.

use super::io::Io;
use super::upstream;
use crate::net::stream::{ConnRead, ConnWrite, Split};
use crate::pool::connect::connect_node;
use crate::pool::keepalive::NodeConn;
use crate::pool::{NodeLease, Pick, ShardPool};
use bytes::Bytes;
use h2::client::SendRequest;
use std::rc::Rc;
use std::time::Duration;

/// The receive windows shoal offers a node: large, so one connection
/// carries many large responses at the node's pace; a slow client holds
/// back only its own stream (its window fills, then the node's sending
/// on that stream stops).
const STREAM_WINDOW: u32 = 1 << 20;
const CONNECTION_WINDOW: u32 = 16 << 20;

/// A stream for one request to the node `pick` chose, as a node
/// connection the driver writes the request to and reads the response
/// from. `reused` is set when the stream rides an existing connection (a
/// failure before any answer is then retried once on a new one, as for a
/// reused HTTP/1.1 keepalive connection).
pub async fn open(
    pool: &Rc<ShardPool>,
    pick: Pick,
    timeout: Duration,
    max_head: usize,
    send_timeout: Duration,
    fresh: bool,
) -> Result<(NodeLease, NodeConn), String> {
    let node = &pool.nodes[pick.node];
    let cached = if fresh { None } else { node.h2.borrow().clone() };
    let ready = match cached {
        Some(s) => monoio::time::timeout(timeout, s.ready()).await.ok().and_then(Result::ok),
        None => None,
    };
    let (send, reused) = match ready {
        Some(s) => (s, true),
        None => {
            node.h2.borrow_mut().take();
            (connect(pool, pick, timeout).await?, false)
        }
    };
    let lease = pool.lease(pick);
    let (r, w) = upstream::pair(send, pool.cfg.tls.is_some(), max_head, send_timeout);
    let split = Split { r: ConnRead::H2Node(Box::new(r)), w: ConnWrite::H2Node(Box::new(w)), fd: -1, tls: None };
    let mut nc = NodeConn::new(split, 4096);
    nc.reused = reused;
    Ok((lease, nc))
}

/// A new HTTP/2 connection to the node, kept for the shard's next
/// requests; returns it ready for a stream.
async fn connect(pool: &Rc<ShardPool>, pick: Pick, timeout: Duration) -> Result<SendRequest<Bytes>, String> {
    let (lease, split) = connect_node(pool, pick, timeout, &[]).await?;
    if pool.cfg.tls.is_some() && split.tls.as_ref().and_then(|t| t.alpn.as_deref()) != Some(b"h2") {
        let why = "the node did not choose h2 by ALPN";
        pool.record_failure(pick.node, why);
        return Err(why.into());
    }
    let (io, _) = Io::start(split.r, split.w, Vec::new(), None);
    let mut b = h2::client::Builder::new();
    b.initial_window_size(STREAM_WINDOW).initial_connection_window_size(CONNECTION_WINDOW).enable_push(false);
    let (send, conn) = match monoio::time::timeout(timeout, b.handshake::<_, Bytes>(io)).await {
        Ok(Ok(x)) => x,
        Ok(Err(e)) => {
            let why = format!("HTTP/2 handshake failed: {e}");
            pool.record_failure(pick.node, &why);
            return Err(why);
        }
        Err(_) => {
            pool.record_failure(pick.node, "HTTP/2 handshake timed out");
            return Err("HTTP/2 handshake timed out".into());
        }
    };
    drop(lease);
    let name = pool.nodes[pick.node].name.clone();
    monoio::spawn(async move {
        if let Err(e) = conn.await {
            log::debug!("HTTP/2 connection to node {name} ended: {e}");
        }
    });
    *pool.nodes[pick.node].h2.borrow_mut() = Some(send.clone());
    match monoio::time::timeout(timeout, send.ready()).await {
        Ok(Ok(s)) => Ok(s),
        _ => Err("the node's HTTP/2 connection took no stream".into()),
    }
}
