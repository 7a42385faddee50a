//! SSL passthrough (B6): TLS relayed untouched, with two decisions made
//! from the handshake's first messages, read but never altered:
//!
//! - the pool, from the ClientHello's server name (`sni_pools`; the
//!   virtual server's `pool` when none matches or the client sent none);
//! - the node, for a pool with `ssl_session_id` persistence: a ClientHello
//!   offering a TLS 1.2 session ID that a node issued goes to that node
//!   (when it can still take connections; otherwise the connection is
//!   balanced and the record replaced). The node's ServerHello says which
//!   session ID it issued or resumed, and that is recorded.
//!
//! After the ServerHello the connection is a generic streaming relay (B4).

use super::relay::{self, RelayEnd, RelayOpts};
use crate::config::PersistenceType;
use crate::net::stream::Split;
use crate::runtime::shard::ShardView;
use crate::tls::hello::{self, HelloError, MAX_HELLO};
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::TcpStream;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

/// Read into `buf` until `parse` finds a whole message, within `limit`.
async fn read_hello<R: AsyncReadRent, T>(
    r: &mut R,
    buf: &mut Vec<u8>,
    limit: Duration,
    parse: impl Fn(&[u8]) -> Result<Option<T>, HelloError>,
) -> Result<T, String> {
    let deadline = std::time::Instant::now() + limit;
    loop {
        match parse(buf) {
            Ok(Some(h)) => return Ok(h),
            Ok(None) if buf.len() > MAX_HELLO + 512 => return Err(HelloError::TooLong.to_string()),
            Ok(None) => {}
            Err(e) => return Err(e.to_string()),
        }
        let read = monoio::time::timeout_at(deadline.into(), crate::net::reader::append(r, buf));
        let Ok(res) = read.await else { return Err(format!("no complete hello within {limit:?}")) };
        match res {
            Ok(0) => return Err("closed before its hello was complete".into()),
            Ok(_) => {}
            Err(e) => return Err(e.to_string()),
        }
    }
}

pub async fn serve(view: &Rc<ShardView>, vs_index: usize, client: TcpStream, peer: SocketAddr, local: SocketAddr) {
    let vs = &view.config.virtual_servers[vs_index];
    let Split { r: mut cr, w: mut cw, .. } = Split::tcp(client);
    let mut first = Vec::with_capacity(4096);
    let ch = match read_hello(&mut cr, &mut first, vs.client_idle_timeout, hello::client_hello).await {
        Ok(h) => h,
        Err(e) => {
            log::info!("virtual server {}: client {peer}: no TLS ClientHello: {e}; closing", vs.name);
            return;
        }
    };
    let pool_index = ch
        .sni
        .as_deref()
        .and_then(|n| vs.sni_pools.iter().find(|(p, _)| crate::tls::server::name_matches(p, n)))
        .map_or(vs.pool, |&(_, i)| i);
    let pool = &view.pools[pool_index];
    let class = pool.cfg.persistence.map(|c| &view.persist[c]);
    // The session: the TLS session ID offered, or the client's address.
    let key = match class.map(|c| c.cfg.kind) {
        Some(PersistenceType::SslSessionId) => ch.session_id.clone(),
        Some(PersistenceType::Ip) => crate::persist::ip::key(peer.ip()),
        _ => Vec::new(),
    };

    // A resumption offered to the node that issued the session (or the
    // client's node).
    let Some((lease, node)) = super::persistent::connect(view, vs_index, pool_index, &key, (peer, local), None).await
    else {
        return;
    };
    let node_index = lease.index();
    let node_name = &lease.node().name;
    let Split { r: mut nr, w: mut nw, .. } = node;
    if let (Err(e), _) = nw.write_all(first).await {
        pool.record_failure(node_index, &format!("write failed: {e}"));
        return;
    }

    // The node's first bytes, up to its ServerHello.
    let mut reply = Vec::with_capacity(4096);
    match read_hello(&mut nr, &mut reply, vs.server_idle_timeout, hello::server_hello).await {
        Ok(sh) => {
            pool.record_success(node_index);
            match class {
                Some(c) if c.cfg.kind == PersistenceType::SslSessionId => {
                    crate::persist::ssl_session::learn(&c.store, pool.uid, &sh, pool.node_id(node_index))
                }
                Some(c) => c.store.record(pool.uid, &key, pool.node_id(node_index)),
                None => {}
            }
        }
        Err(e) => {
            pool.record_failure(node_index, &format!("no TLS ServerHello: {e}"));
            return;
        }
    }
    if let (Err(e), _) = cw.write_all(reply).await {
        log::debug!("virtual server {}: client {peer}: write failed: {e}", vs.name);
        return;
    }
    let opts = RelayOpts {
        buffer_size: vs.buffer_size,
        client_idle: vs.client_idle_timeout,
        server_idle: vs.server_idle_timeout,
        discard_node_line: false,
        awaiting_node: false,
    };
    match relay::relay_halves(cr, cw, nr, nw, &opts, &|| {}, None).await {
        RelayEnd::Done { up, down } => {
            super::count_stream(view, vs_index, lease.node(), up, down);
            log::debug!(
                "virtual server {}: client {peer} <-> node {node_name}: closed ({up} bytes up, {down} down)",
                vs.name
            )
        }
        RelayEnd::NodeError(e) => log::info!("virtual server {}: client {peer}: node {node_name}: {e}", vs.name),
        end => log::debug!("virtual server {}: client {peer}: {end:?}", vs.name),
    }
}
