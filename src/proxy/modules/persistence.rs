//! Session persistence as a module (E1, E3, E4): in the `route` phase,
//! once the pool is settled, the pool's class reads the request's claim and
//! the remembered node becomes the request's required node; in the
//! `response` phase, for the node that answered, the class learns (keys to
//! remember, `Set-Cookie` fields to add). The classes themselves are in
//! `crate::persist`.
//!
//! A remembered node is used while it is active or draining (draining
//! nodes keep their sessions, C8/E4) and passes its health checks. When it
//! cannot be used, the class's `on_failure` decides: balance to another
//! node and remember that one (default), redirect, or close.

use crate::config::FailureAction;
use crate::error::{Error, ShoalError};
use crate::persist::{Claim, Learned, RequestView, ResponseView};
use crate::proxy::module::{Flow, Module, Step, Verdict};
use crate::proxy::own::OwnResponse;
use crate::proxy::txn::Txn;

pub struct Persistence;

impl Module for Persistence {
    /// The request's session, between the route and the response.
    type Ctx = Option<Session>;

    fn name(&self) -> &'static str {
        "persistence"
    }

    fn route<'a>(&'a self, tx: &'a mut Txn, ctx: &'a mut Option<Session>) -> Step<'a, Flow> {
        Step::Ready(self.claim(tx, ctx))
    }

    /// Learn from the node that answered; a 503 (a failing node, C5) pins
    /// no session to it.
    fn response<'a>(&'a self, tx: &'a mut Txn, ctx: &'a mut Option<Session>) -> Step<'a, Verdict> {
        if let (Some(session), Some(node)) = (ctx.as_ref(), tx.node) {
            if tx.explicit_addr.is_none() && tx.response.status != 503 {
                learn(tx, session, node);
            }
        }
        Step::Ready(Verdict::Accept)
    }
}

impl Persistence {
    /// The session's claim on a node, or the refusal its failure
    /// behaviour asks for.
    fn claim(&self, tx: &mut Txn, ctx: &mut Option<Session>) -> Flow {
        match begin(tx) {
            Ok(session) => {
                *ctx = session;
                Flow::Continue
            }
            Err(refuse) => {
                tx.error = Some(Error::Shoal(ShoalError::PersistentNodeUnavailable));
                let pool = &tx.view.pools[tx.pool].cfg.name;
                // At most one a second per pool and shard: a dead node's
                // sessions fail on every request.
                let kind = &crate::events::catalogue::PERSISTENCE_FAILED;
                crate::events::emit_throttled(kind, pool, || {
                    let how = match &refuse {
                        Refuse::Redirect(url) => format!("redirected to {url}"),
                        Refuse::Close => "closed".to_owned(),
                    };
                    let text = format!("pool {pool}: a session's node is unavailable; the request was {how}");
                    crate::events::Event::new(kind, format!("pools/{pool}"), text)
                });
                match refuse {
                    Refuse::Redirect(url) => {
                        let body = format!("302 Found: {url}\n");
                        let resp = OwnResponse::with_body(302, "text/plain", body).header("Location", url.as_bytes());
                        Flow::Respond(Box::new(resp))
                    }
                    Refuse::Close => Flow::Close,
                }
            }
        }
    }
}

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
enum Refuse {
    /// Answer `302 Found` to this URL.
    Redirect(String),
    Close,
}

/// Read the request's session claim (pool already chosen) and set
/// `tx.required_node` to its node.
fn begin(tx: &mut Txn) -> Result<Option<Session>, Refuse> {
    let view = &tx.view;
    let pool = &view.pools[tx.pool];
    // A rule's choice of class comes first (`connection.setPersistence`).
    let Some(ci) = tx.persistence_class.unwrap_or(pool.cfg.persistence) else { return Ok(None) };
    let rt = &view.persist[ci];
    let claim = match &tx.persistence_key {
        // A rule's key (`connection.setPersistenceKey`) for a keyed class.
        Some(k) if rt.cfg.kind == crate::config::PersistenceType::Universal => Claim::Key(k.as_slice().into()),
        _ => rt.class.claim(&RequestView { head: &tx.request, client: tx.conn.client.ip() }, tx.pool),
    };
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
    // A new session of a hashed class: the node its key's rendezvous hash
    // picks among the nodes taking new work, the same answer on every
    // cluster member and after every restart, with no table to share.
    if node.is_none() && rt.cfg.hash {
        if let Claim::Key(k) = &claim {
            let pick = (0..pool.nodes.len())
                .filter(|&i| pool.takes_new_sessions(i))
                .max_by_key(|&i| crate::cluster::owners::score(k, &pool.cfg.nodes[i].name));
            if let Some(n) = pick {
                tx.required_node = Some(n);
            }
        }
    }
    if let Some(n) = node {
        if pool.can_persist(n) {
            tx.required_node = Some(n);
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
    Ok(Some(Session { class: ci, pool: tx.pool, key, named, stored }))
}

/// Node `node` answered with the response head in `tx.response`: remember
/// the session, and add any cookie to set to the response.
fn learn(tx: &mut Txn, s: &Session, node: usize) {
    let view = tx.view.clone();
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
    rt.class.learn(&ResponseView { head: &tx.response }, s.named, s.pool, node, &mut learned);
    for k in &learned.record {
        rt.store.record(pool.uid, k, pool.node_id(node));
    }
    for cookie in &learned.set_cookie {
        if tx.response.fields.add("Set-Cookie", cookie).is_err() {
            log::warn!("virtual server {}: persistence cookie not set: the response head is full", tx.vs_config().name);
        }
    }
}
