//! A shard's view of one pool (C1, C4 connection counting, C8 states): its
//! nodes with their state, this shard's connection counts, the other shards'
//! last published counts, the shared passive-health cells and the
//! balancer. Everything but the health cells is shard-local.

pub mod connect;
pub mod health;
pub mod keepalive;

use crate::config::{self, NodeState};
use crate::lb::{self, Balancer, Nodes};
use crate::util::event::Event;
use health::{Availability, NodeHealth, Transition};
use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

pub struct ShardNode {
    pub name: String,
    pub addr: SocketAddr,
    pub weight: u32,
    pub state: Cell<NodeState>,
    pub health: Arc<NodeHealth>,
    local_conns: Cell<u32>,
    /// Last published count from each shard (this shard's slot unused).
    remote_conns: RefCell<Vec<u32>>,
    remote_sum: Cell<u32>,
    pub last_used: Cell<Option<Instant>>,
    /// Idle HTTP keepalive connections to this node (this shard's).
    pub idle: keepalive::IdleConns,
}

impl ShardNode {
    pub fn local_connections(&self) -> u32 {
        self.local_conns.get()
    }

    pub fn connections(&self) -> u32 {
        self.local_conns.get() + self.remote_sum.get()
    }
}

pub struct ShardPool {
    pub index: usize,
    pub name: String,
    pub nodes: Vec<ShardNode>,
    pub node_connection_attempts: u32,
    pub node_fail_time: std::time::Duration,
    pub max_connect_time: std::time::Duration,
    pub max_reply_time: std::time::Duration,
    pub max_idle_per_node: usize,
    pub node_keepalive_timeout: std::time::Duration,
    balancer: Box<dyn Balancer>,
    /// Local counts changed since the last publish to the mesh.
    dirty: Cell<bool>,
    /// Shared with the shard's mesh publisher.
    changed: Rc<Event>,
}

impl ShardPool {
    /// `health` holds one cell per node, shared with every other shard.
    pub fn new(
        index: usize,
        cfg: &config::Pool,
        health: &[Arc<NodeHealth>],
        nshards: usize,
        changed: Rc<Event>,
    ) -> Self {
        let nodes = cfg
            .nodes
            .iter()
            .zip(health)
            .map(|(n, h)| ShardNode {
                name: n.name.clone(),
                addr: n.addr,
                weight: n.weight,
                state: Cell::new(n.state),
                health: h.clone(),
                local_conns: Cell::new(0),
                remote_conns: RefCell::new(vec![0; nshards]),
                remote_sum: Cell::new(0),
                last_used: Cell::new(None),
                idle: keepalive::IdleConns::default(),
            })
            .collect();
        ShardPool {
            index,
            name: cfg.name.clone(),
            nodes,
            node_connection_attempts: cfg.node_connection_attempts,
            node_fail_time: cfg.node_fail_time,
            max_connect_time: cfg.max_connect_time,
            max_reply_time: cfg.max_reply_time,
            max_idle_per_node: cfg.max_idle_per_node,
            node_keepalive_timeout: cfg.node_keepalive_timeout,
            balancer: lb::build(cfg.algorithm, cfg.nodes.len()),
            dirty: Cell::new(false),
            changed,
        }
    }

    /// Pick a node for a new connection, skipping those in `tried`. Returns
    /// the node and whether it holds the single-flight slot.
    pub fn pick(&self, tried: &[bool]) -> Option<(usize, bool)> {
        let mut skip = tried.to_vec();
        loop {
            let view = PickView { pool: self, tried: &skip, now_ms: crate::util::clock::now_ms() };
            let i = self.balancer.pick(&view)?;
            match self.nodes[i].health.availability(view.now_ms) {
                Availability::Up => return Some((i, false)),
                Availability::SingleFlight if self.nodes[i].health.try_begin_probe() => return Some((i, true)),
                _ => skip[i] = true,
            }
        }
    }

    /// Whether some node not in `tried` could be picked now (claims nothing).
    pub fn has_candidate(&self, tried: &[bool]) -> bool {
        let view = PickView { pool: self, tried, now_ms: crate::util::clock::now_ms() };
        (0..self.nodes.len()).any(|i| view.eligible(i))
    }

    /// Set node `i`'s state; a node leaving `active` closes its idle
    /// keepalive connections (C8).
    pub fn set_state(&self, i: usize, state: NodeState) {
        let n = &self.nodes[i];
        n.state.set(state);
        if state != NodeState::Active {
            n.idle.clear();
        }
    }

    /// Count a connection to node `i`; the returned lease uncounts it on drop.
    pub fn lease(self: &Rc<Self>, i: usize) -> NodeLease {
        let n = &self.nodes[i];
        n.local_conns.set(n.local_conns.get() + 1);
        n.last_used.set(Some(Instant::now()));
        self.balancer.on_start(i);
        self.mark_dirty();
        NodeLease { pool: self.clone(), node: i }
    }

    fn mark_dirty(&self) {
        if !self.dirty.replace(true) {
            self.changed.notify_all();
        }
    }

    /// Take the dirty flag and return this shard's counts, for the mesh.
    pub fn take_snapshot(&self) -> Option<Vec<u32>> {
        if !self.dirty.replace(false) {
            return None;
        }
        Some(self.nodes.iter().map(|n| n.local_conns.get()).collect())
    }

    /// Put the dirty flag back (a publish could not be delivered).
    pub fn redirty(&self) {
        self.dirty.set(true);
    }

    /// Apply another shard's published counts.
    pub fn apply_remote(&self, shard: usize, counts: &[u32]) {
        log::debug!("pool {}: shard {shard} now holds {counts:?} connections", self.name);
        for (n, &c) in self.nodes.iter().zip(counts) {
            let mut r = n.remote_conns.borrow_mut();
            if let Some(slot) = r.get_mut(shard) {
                let sum = n.remote_sum.get() - *slot + c;
                *slot = c;
                n.remote_sum.set(sum);
            }
        }
    }

    pub fn record_success(&self, i: usize) {
        if self.nodes[i].health.record_success() == Transition::Recovered {
            log::info!("pool {} node {}: back in service (probe connection succeeded)", self.name, self.nodes[i].name);
        }
    }

    pub fn record_failure(&self, i: usize, reason: &str) {
        let node = &self.nodes[i];
        match node.health.record_failure(self.node_connection_attempts, self.node_fail_time) {
            Transition::Failed { n, attempts } => {
                log::warn!("pool {} node {}: failure: {reason} ({n}/{attempts} consecutive)", self.name, node.name)
            }
            Transition::MarkedDead => log::warn!(
                "pool {} node {}: marked dead for {:?} after {} consecutive failures (last: {reason})",
                self.name,
                node.name,
                self.node_fail_time,
                self.node_connection_attempts
            ),
            Transition::StillDead => {
                log::warn!(
                    "pool {} node {}: probe failed: {reason}; dead for another {:?}",
                    self.name,
                    node.name,
                    self.node_fail_time
                )
            }
            Transition::None | Transition::Recovered => {}
        }
    }
}

/// One counted connection to a node.
pub struct NodeLease {
    pool: Rc<ShardPool>,
    node: usize,
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
}

impl Drop for NodeLease {
    fn drop(&mut self) {
        let n = &self.pool.nodes[self.node];
        n.local_conns.set(n.local_conns.get() - 1);
        self.pool.balancer.on_end(self.node);
        self.pool.mark_dirty();
    }
}

struct PickView<'a> {
    pool: &'a ShardPool,
    tried: &'a [bool],
    now_ms: u64,
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
    /// already tried for this connection, and not dead.
    fn eligible(&self, i: usize) -> bool {
        let n = &self.pool.nodes[i];
        !self.tried[i] && n.state.get() == NodeState::Active && n.health.availability(self.now_ms) != Availability::Down
    }
}
