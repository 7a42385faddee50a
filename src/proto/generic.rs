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
//!
//! A virtual server's rules run on its connections (docs/rules.md,
//! "Rules on byte streams"): the request rules before the node is chosen,
//! then, as `rules_run` says, on the first or every read.

use super::relay::{self, RelayEnd, RelayOpts};
use crate::config::Protocol;
use crate::net::stream::Split;
use crate::rules::builtins::Stream;
use crate::rules::stream::{Filter, StreamConn, StreamFlow};
use crate::runtime::shard::ShardView;
use crate::util::baton::Baton;
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;

/// Serve `client` (plain, or TLS already terminated) for its whole life.
pub async fn serve(view: &Rc<ShardView>, vs_index: usize, client: Split, peer: SocketAddr, local: SocketAddr) {
    let vs = &view.config.virtual_servers[vs_index];
    let Split { r: mut cr, w: mut cw, .. } = client;
    let mut first: Option<Vec<u8>> = None;
    match vs.protocol {
        Protocol::ServerFirst
        | Protocol::GenericStreaming
        | Protocol::Http
        | Protocol::SslPassthrough
        | Protocol::Udp
        | Protocol::Rtsp => {}
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

    // Rules (F1): the request rules run now, before the node is chosen:
    // on the client's first data, or at connect with none.
    let rules = view.stream_rules[vs_index].clone();
    let runs = [Cell::new(0), Cell::new(0)];
    let mut conn = rules.as_ref().map(|_| {
        StreamConn::new(Stream {
            view: view.clone(),
            vs: vs_index,
            client: peer,
            local,
            pool: vs.pool,
            required_node: None,
            node: None,
            rtsp: None,
        })
    });
    if let (Some(r), Some(c)) = (&rules, &mut conn) {
        if r.due(&runs[0], true) {
            let mut data = first.take().unwrap_or_default();
            if r.run(true, c, &mut data).await == StreamFlow::Close {
                log::debug!("virtual server {}: client {peer}: closed by a rule", vs.name);
                return;
            }
            first = (!data.is_empty()).then_some(data);
        }
    }
    let (pool_index, wanted) = conn.as_ref().map_or((vs.pool, None), |c| (c.stream.pool, c.stream.required_node));
    let pool = &view.pools[pool_index];

    // IP-address persistence (the one class a byte stream can apply).
    let class = pool.cfg.persistence.map(|c| &view.persist[c]);
    let key = crate::persist::ip::key(peer.ip());
    let Some((lease, node)) = super::persistent::connect(view, vs_index, pool_index, &key, (peer, local), wanted).await
    else {
        return;
    };
    if let Some(c) = &mut conn {
        c.stream.node = Some(lease.node().name.clone());
    }
    // From here both directions' rules share the connection's state.
    let conn = conn.map(Baton::new);
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
    let filter = rules.as_deref().zip(conn.as_ref()).map(|(rules, conn)| Filter { rules, conn, runs: &runs });
    let end = relay::relay_halves(cr, cw, nr, nw, &opts, &|| pool.record_success(node_index), filter.as_ref()).await;
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
        RelayEnd::RuleClosed => log::debug!("virtual server {}: client {peer}: closed by a rule", vs.name),
        RelayEnd::BannerTooLong => {
            pool.record_failure(lease.index(), &format!("banner line longer than {} bytes", relay::MAX_DISCARD_LINE))
        }
    }
}
