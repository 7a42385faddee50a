//! Connecting a byte-stream client (generic protocols, passthrough) to a
//! node, honouring the pool's persistence class: the node remembered for
//! `key` first, when it can still serve its sessions; a class with
//! `on_failure = "close"` closes instead of moving the session; anything
//! else is balanced. A node a rule asked for is tried before any of
//! these. The caller records what it learns.

use crate::config::FailureAction;
use crate::net::stream::Split;
use crate::pool::{connect, NodeLease};
use crate::runtime::shard::ShardView;
use std::net::SocketAddr;
use std::rc::Rc;

/// A node connection for the client `(peer, local)` of virtual server `vs`
/// on pool `pool`, or `None` (logged) when there is none to give.
pub async fn connect(
    view: &Rc<ShardView>,
    vs: usize,
    pool: usize,
    key: &[u8],
    (peer, local): (SocketAddr, SocketAddr),
    wanted: Option<usize>,
) -> Option<(NodeLease, Split)> {
    let cfg = &view.config.virtual_servers[vs];
    let p = &view.pools[pool];
    let preferred = preferred(view, vs, pool, key, peer, wanted)?;
    match connect::connect_preferring(p, preferred, cfg.connect_timeout, (peer, local)).await {
        Ok(c) => Some(c),
        Err(e) => {
            log::warn!("virtual server {}: client {peer}: pool {}: {e}; closing", cfg.name, p.cfg.name);
            None
        }
    }
}

/// The node to try first for `peer`'s session `key` on `pool`: the one a
/// rule asked for (`wanted`), else the one the pool's persistence class
/// remembers (`Some(None)`: neither); `None` (logged) when that node
/// cannot take it and the class says `on_failure = "close"`. Shared with
/// UDP flows.
pub fn preferred(
    view: &ShardView,
    vs: usize,
    pool: usize,
    key: &[u8],
    peer: SocketAddr,
    wanted: Option<usize>,
) -> Option<Option<usize>> {
    let p = &view.pools[pool];
    let class = p.cfg.persistence.map(|c| &view.persist[c]);
    let remembered = class.and_then(|c| c.store.lookup(p.uid, key)).and_then(|id| p.node_by_id(id));
    let preferred = wanted.or(remembered);
    if preferred.is_some_and(|n| !p.can_persist(n)) && class.is_some_and(|c| c.cfg.on_failure == FailureAction::Close) {
        log::info!(
            "virtual server {}: client {peer}: persistent node unavailable; closing",
            view.config.virtual_servers[vs].name
        );
        return None;
    }
    Some(preferred)
}
