//! Session persistence in the HTTP request path (E1, E3, E4): before the
//! node is chosen, the pool's class reads the request's claim and the
//! remembered node becomes the request's required node; after the served
//! node's response head, the class learns (keys to remember, cookies to
//! set). The classes themselves are in `crate::persist`.
//!
//! A remembered node is used while it is active or draining (draining
//! nodes keep their sessions, C8/E4) and passes its health checks. When it
//! cannot be used, the class's `on_failure` decides: balance to another
//! node and remember that one (default), redirect, or close.

use super::phases::Ctx;
use crate::config::FailureAction;
use crate::http::request::RequestHead;
use crate::http::response::ResponseHead;
use crate::persist::{Claim, Learned, RequestView, ResponseView};
use crate::runtime::shard::ShardView;
use std::rc::Rc;

/// A request's session, between the node choice and the response.
pub struct Session {
    class: usize,
    pool: usize,
    /// The claimed key, as the store's table key (a hash: the request's
    /// buffer is reused before the response comes).
    key: Option<crate::persist::store::Key>,
    /// The node the request named itself (a cookie carrying it).
    named: Option<usize>,
    /// The node the store remembered for the key.
    stored: Option<usize>,
}

/// The remembered node is unavailable and the class does not pick another.
pub enum Refuse {
    /// Answer `302 Found` to this URL.
    Redirect(String),
    Close,
}

/// Read the request's session claim (pool already chosen in `ctx`) and set
/// `ctx.required_node` to its node.
pub fn begin(view: &Rc<ShardView>, ctx: &mut Ctx, buf: &[u8], head: &RequestHead) -> Result<Option<Session>, Refuse> {
    let pool = &view.pools[ctx.pool];
    let Some(ci) = pool.cfg.persistence else { return Ok(None) };
    let rt = &view.persist[ci];
    let claim = rt.class.claim(&RequestView { buf, head, client: ctx.client.ip() }, ctx.pool);
    let key = match &claim {
        Claim::Key(k) if !k.is_empty() => Some(rt.store.key(pool.uid, k)),
        _ => None,
    };
    let named = match claim {
        Claim::Node(n) => Some(n),
        _ => None,
    };
    // A node no longer in the pool leaves its sessions unclaimed: they are
    // balanced afresh and recorded on their new node.
    let stored = key.and_then(|k| rt.store.lookup_key(&k)).and_then(|id| pool.node_by_id(id));
    let node = named.or(stored);
    if let Some(n) = node {
        if pool.can_persist(n) {
            ctx.required_node = Some(n);
        } else {
            match rt.cfg.on_failure {
                FailureAction::NewNode => {
                    if let Some(k) = &key {
                        rt.store.forget_key(k);
                    }
                }
                FailureAction::Redirect => {
                    return Err(Refuse::Redirect(rt.cfg.failure_url.clone().unwrap_or_else(|| "/".into())))
                }
                FailureAction::Close => return Err(Refuse::Close),
            }
        }
    }
    Ok(Some(Session { class: ci, pool: ctx.pool, key, named, stored }))
}

/// Node `node` served the request and its response head is in `buf`:
/// remember the session, and put any cookie to set in `ctx.set_cookie`.
pub fn learn(view: &Rc<ShardView>, s: &Session, buf: &[u8], head: &ResponseHead, node: usize, ctx: &mut Ctx) {
    let rt = &view.persist[s.class];
    let pool = &view.pools[s.pool];
    // The lookup already made a kept session the most recent: record
    // only new sessions and moved ones. A session of a class that must not
    // move silently (redirect, close) stays with its node when a retry
    // served it elsewhere: once the node is marked failed, `on_failure`
    // applies to it.
    let moved = s.stored.is_some_and(|n| n != node);
    let may_move = rt.cfg.on_failure == FailureAction::NewNode;
    if let (Some(k), false) = (s.key, s.stored == Some(node) || (moved && !may_move)) {
        rt.store.record_key(k, pool.node_id(node));
    }
    let mut learned = Learned::default();
    rt.class.learn(&ResponseView { buf, head }, s.named, s.pool, node, &mut learned);
    for k in &learned.record {
        rt.store.record(pool.uid, k, pool.node_id(node));
    }
    if !learned.set_cookie.is_empty() {
        ctx.set_cookie = Some(learned.set_cookie);
    }
}
