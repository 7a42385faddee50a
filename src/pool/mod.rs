//! A shard's view of one pool (C1, C4 connection counting, C8 states): its
//! nodes with their state, this shard's connection counts and response
//! times, the other shards' last published ones, the shared per-node cells
//! (passive health, gradual-start ramp), the LARD table and the balancer.
//! Everything but the shared cells is shard-local.

pub mod connect;
pub mod health;
pub mod keepalive;
pub mod ramp;

use crate::config::{self, Algorithm, NodeState};
use crate::lb::{self, Balancer, Nodes};
use crate::util::event::Event;
use health::{Availability, NodeHealth, Transition};
use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Weight of a new response-time sample in the per-shard moving average.
const RT_ALPHA: f64 = 1.0 / 8.0;
/// Turns a busy node may be owed by connection reuse (see `prefer_warm`).
const MAX_OWED: u32 = 8;
/// LARD table slots per pool and shard (direct-mapped by URL hash).
const LARD_SLOTS: usize = 4096;
/// Fixed keys: a pool's uid must be the same in every generation.
static POOL_UID: ahash::RandomState = ahash::RandomState::with_seeds(0x9001, 0x5e55, 0x10, 0x42);

/// One node's figures as published to the other shards.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct NodeStat {
    pub conns: u32,
    /// Moving average of time to response head, µs (0: no samples).
    pub rt_us: u32,
    /// How much that average counts when merging shards (×256).
    pub rt_weight: u32,
}

pub struct ShardNode {
    pub name: String,
    pub addr: SocketAddr,
    pub weight: u32,
    pub state: Cell<NodeState>,
    /// Shared with every shard: passive health and the gradual-start ramp.
    pub health: Arc<NodeHealth>,
    /// This shard's figures for the node, carried over to the next
    /// configuration generation while the node stays in the pool.
    pub rt: Rc<NodeRt>,
}

/// A node's shard-local figures and connections, which outlive a
/// configuration generation (see `runtime::generation`).
pub struct NodeRt {
    local_conns: Cell<u32>,
    /// This shard's response-time average (µs) and its weight.
    local_rt: Cell<(f64, f64)>,
    /// Last published figures from each shard (this shard's slot unused).
    remote: RefCell<Vec<NodeStat>>,
    remote_conns: Cell<u32>,
    /// Idle HTTP keepalive connections to this node (this shard's).
    pub idle: keepalive::IdleConns,
    /// This shard's HTTP/2 connection to the node (pools with `http2`).
    pub h2: RefCell<Option<h2::client::SendRequest<bytes::Bytes>>>,
    /// Turns skipped for connection reuse, to be given back.
    owed: Cell<u32>,
    pub stats: crate::stats::NodeCounters,
    /// Idle connections may be kept: the node is active in the newest
    /// generation (a request of an older one that ends after a drain or a
    /// removal must not put its connection back).
    pub keeps_idle: Cell<bool>,
}

impl NodeRt {
    pub fn new(nshards: usize) -> NodeRt {
        NodeRt {
            local_conns: Cell::new(0),
            local_rt: Cell::new((0.0, 0.0)),
            remote: RefCell::new(vec![NodeStat::default(); nshards]),
            remote_conns: Cell::new(0),
            idle: keepalive::IdleConns::default(),
            h2: RefCell::new(None),
            owed: Cell::new(0),
            stats: crate::stats::NodeCounters::default(),
            keeps_idle: Cell::new(true),
        }
    }
}

/// The node's runtime figures read through the node, as the balancer and
/// the driver always want them together with its settings.
impl std::ops::Deref for ShardNode {
    type Target = NodeRt;
    fn deref(&self) -> &NodeRt {
        &self.rt
    }
}

impl ShardNode {
    pub fn local_connections(&self) -> u32 {
        self.local_conns.get()
    }

    pub fn connections(&self) -> u32 {
        self.local_conns.get() + self.remote_conns.get()
    }

    /// Average time to response head across shards, weighted by how much
    /// each shard has sampled recently; `None` before any sample.
    pub fn response_time_us(&self) -> Option<f64> {
        let (avg, w) = self.local_rt.get();
        let (mut sum, mut weight) = (avg * w, w);
        for r in self.remote.borrow().iter().filter(|r| r.rt_weight > 0) {
            let w = f64::from(r.rt_weight) / 256.0;
            sum += f64::from(r.rt_us) * w;
            weight += w;
        }
        (weight > 0.0).then(|| sum / weight)
    }
}

/// A node chosen for one connection or request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pick {
    pub node: usize,
    /// Holds the node's single-flight slot (suspect or probed node).
    pub single: bool,
    /// Holds a slot of the node's gradual-start ramp.
    pub ramp: bool,
    /// Holds one of the node's `max_connections_per_node` slots.
    pub slot: bool,
}

/// The single-flight slot a [`Pick`] may hold (a suspect node is tried by
/// one connection or flow at a time), given back when this is dropped:
/// after the attempt's outcome is recorded, or if it is abandoned.
pub struct ProbeSlot(Option<Arc<NodeHealth>>);

impl ProbeSlot {
    pub fn of(pool: &ShardPool, pick: Pick) -> ProbeSlot {
        ProbeSlot(pick.single.then(|| pool.nodes[pick.node].health.clone()))
    }
}

impl Drop for ProbeSlot {
    fn drop(&mut self) {
        if let Some(h) = &self.0 {
            h.end_probe();
        }
    }
}

pub struct ShardPool {
    pub index: usize,
    /// The pool's identity in persistence tables: a hash of its name, so
    /// sessions survive reconfigurations that move the pool's position.
    pub uid: u32,
    pub nodes: Vec<ShardNode>,
    /// The pool's validated settings (timeouts, limits, PROXY protocol).
    pub cfg: config::Pool,
    /// The generation's TLS connector to the nodes, when the pool
    /// encrypts to them (B8).
    pub tls: Option<crate::tls::client::Connector>,
    /// Requests or connections of this shard waiting for a node slot.
    queued: Cell<usize>,
    /// The pool's autoscaling service level (J1): every node response
    /// time is recorded into it.
    pub sla: Option<Arc<crate::slm::ServiceLevel>>,
    /// A slot was given back on this shard.
    slot_freed: Event,
    balancer: Box<dyn Balancer>,
    /// LARD: URL hash → node that served it (node + 1; 0 = empty).
    lard: RefCell<Vec<(u64, u32)>>,
    /// Local figures changed since the last publish to the mesh.
    /// Shared with the pool of the same name in other generations: a
    /// lease of an older generation ending must still get published.
    dirty: Rc<Cell<bool>>,
    /// Shared with the shard's mesh publisher.
    changed: Rc<Event>,
}

impl ShardPool {
    /// `health` holds one cell per node, shared with every other shard;
    /// `carry` gives the runtime figures of a node that was already in the
    /// pool in the previous configuration generation, and `carried_dirty`
    /// is that pool's publish flag (or a new one).
    pub fn new(
        index: usize,
        cfg: &config::Pool,
        health: &[Arc<NodeHealth>],
        nshards: usize,
        changed: Rc<Event>,
        carry: &dyn Fn(SocketAddr) -> Option<Rc<NodeRt>>,
        carried_dirty: Rc<Cell<bool>>,
    ) -> Self {
        let nodes = cfg
            .nodes
            .iter()
            .zip(health)
            .map(|(n, h)| {
                let rt = carry(n.addr).unwrap_or_else(|| Rc::new(NodeRt::new(nshards)));
                rt.keeps_idle.set(n.state == NodeState::Active);
                if n.state != NodeState::Active {
                    // Draining and disabled nodes keep no idle connections (C8).
                    rt.idle.clear();
                }
                ShardNode {
                    name: n.name.clone(),
                    addr: n.addr,
                    weight: n.weight,
                    state: Cell::new(n.state),
                    health: h.clone(),
                    rt,
                }
            })
            .collect();
        ShardPool {
            index,
            uid: POOL_UID.hash_one(&cfg.name) as u32,
            nodes,
            cfg: cfg.clone(),
            tls: None,
            queued: Cell::new(0),
            sla: None,
            slot_freed: Event::new(),
            balancer: lb::build(cfg.algorithm, cfg.nodes.len()),
            lard: RefCell::new(if cfg.algorithm.uses_lard() { vec![(0, 0); LARD_SLOTS] } else { Vec::new() }),
            dirty: {
                // A new generation republishes everything.
                carried_dirty.set(true);
                carried_dirty
            },
            changed,
        }
    }

    /// Pick a node for a new connection or request, skipping those in
    /// `tried`. `url` (HTTP) is the request target's hash, for LARD.
    pub fn pick(&self, tried: &[bool], url: Option<u64>) -> Option<Pick> {
        // `tried` is copied only when a picked node has to be skipped, so the
        // usual pick allocates nothing.
        let mut skipped: Option<Vec<bool>> = None;
        let preferred = url.and_then(|h| self.lard_lookup(h));
        loop {
            let skip = skipped.as_deref().unwrap_or(tried);
            let view = PickView { pool: self, tried: skip, now_ms: crate::util::clock::now_ms(), preferred };
            let i = self.balancer.pick(&view)?;
            match self.claim(i, view.now_ms) {
                Some(p) => return Some(p),
                None => skipped.get_or_insert_with(|| tried.to_vec())[i] = true,
            }
        }
    }

    /// Take node `i` for one connection or request if its health, ramp and
    /// connection limit allow it now.
    fn claim(&self, i: usize, now_ms: u64) -> Option<Pick> {
        let h = &self.nodes[i].health;
        let single = match h.availability(now_ms) {
            Availability::Up => false,
            Availability::SingleFlight if h.try_begin_probe() => true,
            _ => return None,
        };
        let ramp = h.ramp.is_active();
        if ramp && !h.ramp.begin() {
            if single {
                h.end_probe();
            }
            return None;
        }
        let slot = self.cfg.max_connections_per_node.is_some();
        if let Some(limit) = self.cfg.max_connections_per_node {
            if h.active.fetch_add(1, Relaxed) >= limit {
                h.active.fetch_sub(1, Relaxed);
                if single {
                    h.end_probe();
                }
                if ramp {
                    h.ramp.end(false, true, u32::MAX);
                }
                return None;
            }
        }
        Some(Pick { node: i, single, ramp, slot })
    }

    /// Node `i`'s identity in persistence tables.
    pub fn node_id(&self, i: usize) -> u32 {
        self.nodes[i].health.id
    }

    /// The node whose identity is `id`, if it is (still) in this pool.
    pub fn node_by_id(&self, id: u32) -> Option<usize> {
        self.nodes.iter().position(|n| n.health.id == id)
    }

    /// Can node `i` still serve the sessions persisted to it? (Not
    /// disabled, not failed; a draining node can.)
    pub fn can_persist(&self, i: usize) -> bool {
        self.keeps_sessions(i) && self.nodes[i].health.availability(crate::util::clock::now_ms()) != Availability::Down
    }

    /// Node `i` for a request that must go to it (a persisted session, a
    /// named node): active and draining nodes take such requests (C8, E4),
    /// disabled and failed ones do not.
    pub fn pick_required(&self, i: usize) -> Option<Pick> {
        self.keeps_sessions(i).then(|| self.claim(i, crate::util::clock::now_ms())).flatten()
    }

    /// Node `i` exists and its state lets it keep sessions (not disabled).
    /// May node `i` be given a new session (active, not failed)?
    pub fn takes_new_sessions(&self, i: usize) -> bool {
        i < self.nodes.len() && self.nodes[i].state.get() == NodeState::Active && self.can_persist(i)
    }

    fn keeps_sessions(&self, i: usize) -> bool {
        i < self.nodes.len() && self.nodes[i].state.get() != NodeState::Disabled
    }

    /// HTTP connection reuse for round robin and random, with bounded
    /// reordering. When `pick` would open an *additional* connection to a
    /// node that is busy on this shard (no idle connection, at least one in
    /// use) while another eligible node has an idle one, the request goes to
    /// that node instead and the skipped node is owed a turn; a node with
    /// turns owed gets the next request for which it has an idle connection.
    /// At most `MAX_OWED` turns are owed per node, so long-run shares stay
    /// those of the algorithm (a persistently slow node stops being skipped
    /// and gets its own connections), while the short-term imbalance of
    /// equally fast nodes is absorbed by connections already open instead of
    /// new ones.
    pub fn prefer_warm(&self, pick: Pick, tried: &[bool]) -> Pick {
        // A pick holding a probe, ramp or connection-limit slot keeps its
        // node: those slots belong to it and are released with its lease.
        if pick.single
            || pick.ramp
            || pick.slot
            || !matches!(self.cfg.algorithm, Algorithm::RoundRobin | Algorithm::Random)
        {
            return pick;
        }
        let now = crate::util::clock::now_ms();
        let view = PickView { pool: self, tried, now_ms: now, preferred: None };
        let warm = |j: usize| {
            view.eligible(j)
                && self.nodes[j].health.availability(now) == Availability::Up
                && !self.nodes[j].idle.is_empty()
        };
        let n = self.nodes.len();
        // Repay an owed turn first.
        if let Some(j) = (0..n).map(|k| (pick.node + k) % n).find(|&j| self.nodes[j].owed.get() > 0 && warm(j)) {
            let owed = &self.nodes[j].owed;
            owed.set(owed.get() - 1);
            return Pick { node: j, single: false, ramp: false, slot: false };
        }
        let chosen = &self.nodes[pick.node];
        if !chosen.idle.is_empty() || chosen.local_conns.get() == 0 || chosen.owed.get() >= MAX_OWED {
            return pick;
        }
        match (1..n).map(|k| (pick.node + k) % n).find(|&j| warm(j)) {
            Some(j) => {
                chosen.owed.set(chosen.owed.get() + 1);
                Pick { node: j, single: false, ramp: false, slot: false }
            }
            None => pick,
        }
    }

    /// With `max_connections_per_node`: whether some node not in `tried`
    /// is usable but at its limit, so waiting in the queue makes sense.
    pub fn has_full_node(&self, tried: &[bool]) -> bool {
        let Some(limit) = self.cfg.max_connections_per_node else { return false };
        let now = crate::util::clock::now_ms();
        self.nodes.iter().enumerate().any(|(i, n)| {
            !tried[i]
                && n.state.get() == NodeState::Active
                && n.health.availability(now) != Availability::Down
                && n.health.active.load(Relaxed) >= limit
        })
    }

    /// Wait (in this shard's bounded queue) until some node may have a free
    /// slot, or until `deadline`. False when the queue is full or the wait
    /// timed out. Slots freed on this shard wake the queue at once; slots
    /// freed on other shards are noticed within 5 ms.
    pub async fn wait_for_slot(&self, tried: &[bool], deadline: Instant) -> bool {
        if self.queued.get() >= self.cfg.max_queue {
            return false;
        }
        // Counted while waiting, and uncounted however the wait ends
        // (including the future being dropped).
        struct Queued<'a>(&'a Cell<usize>);
        impl Drop for Queued<'_> {
            fn drop(&mut self) {
                self.0.set(self.0.get() - 1);
            }
        }
        self.queued.set(self.queued.get() + 1);
        let _queued = Queued(&self.queued);
        loop {
            // Exactly the nodes a pick could take: a slot freed on a node
            // that is tried, dead or ramping must not end the wait, or the
            // caller would spin between an empty pick and this check.
            if self.has_candidate(tried) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            let wait = (deadline - now).min(Duration::from_millis(5));
            monoio::select! {
                _ = self.slot_freed.listen() => {},
                _ = monoio::time::sleep(wait) => {},
            }
        }
    }

    /// Whether some node not in `tried` could be picked now (claims nothing).
    pub fn has_candidate(&self, tried: &[bool]) -> bool {
        let view = PickView { pool: self, tried, now_ms: crate::util::clock::now_ms(), preferred: None };
        (0..self.nodes.len()).any(|i| view.eligible(i))
    }

    /// Count a connection (or request) to the picked node; the returned
    /// lease uncounts it on drop.
    pub fn lease(self: &Rc<Self>, pick: Pick) -> NodeLease {
        let n = &self.nodes[pick.node];
        n.local_conns.set(n.local_conns.get() + 1);
        n.stats.last_used.set(Some(std::time::SystemTime::now()));
        self.balancer.on_start(pick.node);
        self.mark_dirty();
        NodeLease { pool: self.clone(), node: pick.node, ramp: pick.ramp, slot: pick.slot, answered: Cell::new(false) }
    }

    fn mark_dirty(&self) {
        if !self.dirty.replace(true) {
            self.changed.notify_all();
        }
    }

    /// Take the dirty flag and return this shard's figures, for the mesh.
    pub fn take_snapshot(&self) -> Option<Vec<NodeStat>> {
        if !self.dirty.replace(false) {
            return None;
        }
        Some(
            self.nodes
                .iter()
                .map(|n| {
                    let (avg, w) = n.local_rt.get();
                    NodeStat { conns: n.local_conns.get(), rt_us: avg as u32, rt_weight: (w * 256.0) as u32 }
                })
                .collect(),
        )
    }

    /// The publish flag, for the same pool in the next generation.
    pub fn dirty_flag(&self) -> Rc<Cell<bool>> {
        self.dirty.clone()
    }

    /// Put the dirty flag back (a publish could not be delivered).
    pub fn redirty(&self) {
        self.dirty.set(true);
    }

    /// Apply another shard's published figures.
    pub fn apply_remote(&self, shard: usize, stats: &[NodeStat]) {
        if log::log_enabled!(log::Level::Debug) {
            let conns: Vec<u32> = stats.iter().map(|s| s.conns).collect();
            log::debug!("pool {}: shard {shard} now holds {conns:?} connections", self.cfg.name);
        }
        for (n, st) in self.nodes.iter().zip(stats) {
            let mut r = n.remote.borrow_mut();
            if let Some(slot) = r.get_mut(shard) {
                n.remote_conns.set(n.remote_conns.get() - slot.conns + st.conns);
                *slot = *st;
            }
        }
    }

    /// A node answered after `rt` (request written → response head).
    pub fn record_response_time(&self, i: usize, rt: Duration) {
        if let Some(sla) = &self.sla {
            sla.record(rt, std::time::Instant::now());
        }
        let n = &self.nodes[i];
        let x = rt.as_secs_f64() * 1e6;
        n.stats.response_time(rt.as_micros() as u64);
        let (avg, w) = n.local_rt.get();
        let avg = if w == 0.0 { x } else { avg + (x - avg) * RT_ALPHA };
        n.local_rt.set((avg, w * (1.0 - RT_ALPHA) + 1.0));
        self.mark_dirty();
    }

    fn lard_lookup(&self, hash: u64) -> Option<usize> {
        let t = self.lard.borrow();
        let (h, n) = *t.get(hash as usize % LARD_SLOTS.max(1))?;
        (h == hash && n > 0).then(|| n as usize - 1)
    }

    /// LARD: remember that node `i` served the URL with this hash.
    pub fn lard_record(&self, hash: u64, i: usize) {
        if let Some(slot) = self.lard.borrow_mut().get_mut(hash as usize % LARD_SLOTS) {
            *slot = (hash, i as u32 + 1);
        }
    }

    pub fn record_success(&self, i: usize) {
        if self.nodes[i].health.record_success() == Transition::Recovered {
            log::info!(
                "pool {} node {}: back in service (probe connection succeeded)",
                self.cfg.name,
                self.nodes[i].name
            );
            crate::events::emit(
                crate::events::Event::new(
                    &crate::events::catalogue::NODE_UP,
                    format!("pools/{}", self.cfg.name),
                    format!("node {}: back in service (probe connection succeeded)", self.nodes[i].name),
                )
                .tag(self.nodes[i].name.clone()),
            );
            if self.cfg.algorithm == Algorithm::Perceptive {
                self.nodes[i].health.ramp.start();
            }
        }
    }

    pub fn record_failure(&self, i: usize, reason: &str) {
        let node = &self.nodes[i];
        node.stats.failure();
        match node.health.record_failure(self.cfg.node_connection_attempts, self.cfg.node_fail_time) {
            Transition::Failed { n, attempts } => {
                log::warn!("pool {} node {}: failure: {reason} ({n}/{attempts} consecutive)", self.cfg.name, node.name)
            }
            Transition::MarkedDead => {
                let text = format!(
                    "node {}: marked dead for {:?} after {} consecutive failures (last: {reason})",
                    node.name, self.cfg.node_fail_time, self.cfg.node_connection_attempts
                );
                log::warn!("pool {} {text}", self.cfg.name);
                crate::events::emit(
                    crate::events::Event::new(
                        &crate::events::catalogue::NODE_DOWN,
                        format!("pools/{}", self.cfg.name),
                        text,
                    )
                    .tag(node.name.clone()),
                );
            }
            Transition::StillDead => {
                log::warn!(
                    "pool {} node {}: probe failed: {reason}; dead for another {:?}",
                    self.cfg.name,
                    node.name,
                    self.cfg.node_fail_time
                )
            }
            Transition::None | Transition::Recovered => {}
        }
    }

    /// End a ramp slot of node `i`: whether it is keeping up with the
    /// others, and the fair share at which its ramp ends.
    fn ramp_end(&self, i: usize, answered: bool) {
        let node = &self.nodes[i];
        let others: Vec<f64> = self
            .nodes
            .iter()
            .enumerate()
            .filter(|(j, n)| *j != i && n.state.get() == NodeState::Active)
            .filter_map(|(_, n)| n.response_time_us())
            .collect();
        let fast_enough = match (node.response_time_us(), others.is_empty()) {
            (Some(t), false) => t <= ramp::RAMP_SLOWDOWN * others.iter().sum::<f64>() / others.len() as f64,
            _ => true,
        };
        let active = self.nodes.iter().filter(|n| n.state.get() == NodeState::Active).count().max(1) as u32;
        let total: u32 = self.nodes.iter().map(ShardNode::connections).sum();
        node.health.ramp.end(answered, fast_enough, total.div_ceil(active));
    }
}

/// One counted connection (generic protocols) or request (HTTP) to a node.
pub struct NodeLease {
    pool: Rc<ShardPool>,
    node: usize,
    ramp: bool,
    slot: bool,
    answered: Cell<bool>,
}

impl NodeLease {
    pub fn node(&self) -> &ShardNode {
        &self.pool.nodes[self.node]
    }
    pub fn index(&self) -> usize {
        self.node
    }
    pub fn pool(&self) -> &Rc<ShardPool> {
        &self.pool
    }
    /// The node answered (feeds the gradual-start ramp).
    pub fn set_answered(&self) {
        self.answered.set(true);
    }
}

impl Drop for NodeLease {
    fn drop(&mut self) {
        let n = &self.pool.nodes[self.node];
        n.local_conns.set(n.local_conns.get() - 1);
        self.pool.balancer.on_end(self.node);
        if self.ramp {
            self.pool.ramp_end(self.node, self.answered.get());
        }
        if self.slot {
            n.health.active.fetch_sub(1, Relaxed);
            self.pool.slot_freed.notify_all();
        }
        self.pool.mark_dirty();
    }
}

struct PickView<'a> {
    pool: &'a ShardPool,
    tried: &'a [bool],
    now_ms: u64,
    preferred: Option<usize>,
}

impl Nodes for PickView<'_> {
    fn len(&self) -> usize {
        self.pool.nodes.len()
    }
    fn weight(&self, i: usize) -> u32 {
        self.pool.nodes[i].weight
    }
    fn connections(&self, i: usize) -> u32 {
        self.pool.nodes[i].connections()
    }
    /// Active (draining and disabled nodes take no new connections), not
    /// already tried, not dead, not at its gradual-start cap, and below
    /// `max_connections_per_node`.
    fn eligible(&self, i: usize) -> bool {
        let n = &self.pool.nodes[i];
        !self.tried[i]
            && n.state.get() == NodeState::Active
            && n.health.availability(self.now_ms) != Availability::Down
            && n.health.ramp.admits()
            && self.pool.cfg.max_connections_per_node.is_none_or(|l| n.health.active.load(Relaxed) < l)
    }
    fn response_time_us(&self, i: usize) -> Option<f64> {
        self.pool.nodes[i].response_time_us()
    }
    fn preferred(&self) -> Option<usize> {
        self.preferred
    }
}
