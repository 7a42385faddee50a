//! The generic protocols (B1–B4): how the first bytes are handled before
//! the connection becomes a plain relay.
//!
//! - `server_first`: connect to a node at once; the node is expected to
//!   speak first (its silence past `server_idle_timeout` is a node failure).
//! - `client_first`: wait for the client's first bytes, then connect and
//!   forward them.
//! - `server_first_banner`: write the configured banner to the client at
//!   once, proceed as `client_first`, and discard the node's own first line.
//! - `generic_streaming`: connect at once and relay with no expectation of
//!   who speaks when.

use super::relay::{self, RelayEnd, RelayOpts};
use crate::config::Protocol;
use crate::net::stream::Split;
use crate::runtime::shard::ShardView;
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use std::net::SocketAddr;
use std::rc::Rc;

/// Serve `client` (plain, or TLS already terminated) for its whole life.
pub async fn serve(view: &Rc<ShardView>, vs_index: usize, client: Split, peer: SocketAddr, local: SocketAddr) {
    let vs = &view.config.virtual_servers[vs_index];
    let pool = &view.pools[vs.pool];
    let Split { r: mut cr, w: mut cw, .. } = client;
    let mut first: Option<Vec<u8>> = None;
    match vs.protocol {
        Protocol::ServerFirst | Protocol::GenericStreaming | Protocol::Http | Protocol::SslPassthrough => {}
        Protocol::ClientFirst | Protocol::ServerFirstBanner => {
            if let Some(banner) = &vs.banner {
                let (res, _) = cw.write_all(banner.clone()).await;
                if let Err(e) = res {
                    log::debug!("virtual server {}: client {peer}: banner write failed: {e}", vs.name);
                    return;
                }
            }
            let buf = Vec::with_capacity(vs.buffer_size);
            match monoio::time::timeout(vs.client_idle_timeout, cr.read(buf)).await {
                Ok((Ok(n), buf)) if n > 0 => first = Some(buf),
                Ok((Ok(_), _)) => return, // closed before sending anything
                Ok((Err(e), _)) => {
                    log::debug!("virtual server {}: client {peer}: read failed: {e}", vs.name);
                    return;
                }
                Err(_) => {
                    log::debug!("virtual server {}: client {peer}: sent nothing within client_idle_timeout", vs.name);
                    return;
                }
            }
        }
    }

    // IP-address persistence (the one class a byte stream can apply).
    let class = pool.cfg.persistence.map(|c| &view.persist[c]);
    let key = crate::persist::ip::key(peer.ip());
    let Some((lease, node)) = super::persistent::connect(view, vs_index, vs.pool, &key, (peer, local)).await else {
        return;
    };
    if let Some(c) = class {
        c.store.record(pool.uid, &key, pool.node_id(lease.index()));
    }
    let Split { r: nr, w: mut nw, .. } = node;
    let first_len = first.as_ref().map_or(0, |d| d.len() as u64);
    if let Some(data) = first.take() {
        let (res, _) = nw.write_all(data).await;
        if let Err(e) = res {
            pool.record_failure(lease.index(), &format!("write failed: {e}"));
            return;
        }
    }
    let opts = RelayOpts {
        buffer_size: vs.buffer_size,
        client_idle: vs.client_idle_timeout,
        server_idle: vs.server_idle_timeout,
        discard_node_line: vs.protocol == Protocol::ServerFirstBanner,
        awaiting_node: vs.protocol != Protocol::GenericStreaming,
    };
    let node_index = lease.index();
    let end = relay::relay_halves(cr, cw, nr, nw, &opts, &|| pool.record_success(node_index)).await;
    let node_name = &lease.node().name;
    match end {
        RelayEnd::Done { up, down } => {
            // A clean end is a success even if the node never spoke (a
            // streaming node may legitimately only listen).
            pool.record_success(node_index);
            super::count_stream(view, vs_index, lease.node(), up + first_len, down);
            log::debug!(
                "virtual server {}: client {peer} <-> node {node_name}: closed ({up} bytes up, {down} down)",
                vs.name
            )
        }
        RelayEnd::NodeNoReply => pool.record_failure(
            lease.index(),
            &format!("no reply within server_idle_timeout ({:?})", vs.server_idle_timeout),
        ),
        RelayEnd::NodeIdle => log::debug!(
            "virtual server {}: client {peer}: node {node_name} idle past server_idle_timeout; closed",
            vs.name
        ),
        RelayEnd::ClientIdle => {
            log::debug!("virtual server {}: client {peer}: idle past client_idle_timeout; closed", vs.name)
        }
        RelayEnd::ClientError(e) => log::debug!("virtual server {}: client {peer}: {e}", vs.name),
        RelayEnd::NodeError(e) => log::info!("virtual server {}: client {peer}: node {node_name}: {e}", vs.name),
        RelayEnd::BannerTooLong => {
            pool.record_failure(lease.index(), &format!("banner line longer than {} bytes", relay::MAX_DISCARD_LINE))
        }
    }
}
