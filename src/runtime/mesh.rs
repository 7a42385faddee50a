//! The cross-shard mesh: one bounded inbox per shard, fed by every other
//! shard and by the control thread. These messages are the only values that
//! cross threads (besides the read-only `Arc<Config>` and the health cells);
//! typed request/reply calls between shards ride on them too
//! (`super::call`).
//!
//! Balancing figures travel as absolute snapshots of a pool's per-node
//! counts and response-time averages, not increments: a snapshot that cannot be delivered (inbox full)
//! is simply re-sent later, and a late one is never double-counted.
//!
//! Staleness bound: a shard publishes a changed pool at most
//! `global.mesh_interval` [5 ms] after the first change since its last
//! publish; the receiving shard applies it when its executor next runs
//! (immediately when idle, after the current batch of completions when
//! busy). So another shard's counts lag by at most about one mesh interval
//! plus one scheduling round. Nothing on the request path waits for them.

use flume::{Receiver, Sender, TrySendError};

/// Capacity of each shard's inbox. Publishes are coalesced per interval, so
/// this holds several intervals' worth from every peer.
pub const INBOX_CAPACITY: usize = 4096;

pub enum ShardMsg {
    /// Shard `from`'s figures for each node of `pool` (positions in
    /// configuration generation `generation`): connections and
    /// response-time average.
    PoolStats { from: usize, generation: u64, pool: usize, nodes: Vec<crate::pool::NodeStat> },
    /// Switch to a new configuration generation (A4).
    Reconfigure(Box<Reconfigure>),
    /// Reply with this shard's statistics (I2).
    Snapshot(Sender<crate::stats::ShardSnapshot>),
    /// Stop accepting and drain (SIGTERM/SIGINT).
    Shutdown,
    /// Run this on the shard (a cross-shard call, `super::call`).
    Call(super::call::Job),
}

/// A new configuration generation for one shard.
pub struct Reconfigure {
    pub generation: std::sync::Arc<super::generation::Generation>,
    /// Sockets this shard accepts on from now on that it did not before.
    pub listeners: Vec<(super::shard::ListenKey, crate::net::listener::ListenSocket)>,
    /// Told once the shard serves new connections and requests on it.
    pub done: Sender<()>,
}

/// A shard's end of the mesh.
pub struct MeshEnd {
    pub id: usize,
    pub inbox: Receiver<ShardMsg>,
    /// Senders to every shard, indexed by shard id (own slot included but unused).
    pub peers: Vec<Sender<ShardMsg>>,
}

impl MeshEnd {
    /// Send to every other shard without waiting. Returns false when some
    /// inbox was full, so the caller can retry at the next interval.
    pub fn broadcast(&self, make: impl Fn() -> ShardMsg) -> bool {
        let mut delivered = true;
        for (i, p) in self.peers.iter().enumerate() {
            if i == self.id {
                continue;
            }
            match p.try_send(make()) {
                Ok(()) | Err(TrySendError::Disconnected(_)) => {}
                Err(TrySendError::Full(_)) => delivered = false,
            }
        }
        delivered
    }
}

/// Build the mesh for `n` shards; returns every shard's end and the control
/// thread's senders.
pub fn build(n: usize) -> (Vec<MeshEnd>, Vec<Sender<ShardMsg>>) {
    let (txs, rxs): (Vec<_>, Vec<_>) = (0..n).map(|_| flume::bounded(INBOX_CAPACITY)).unzip();
    let ends = rxs.into_iter().enumerate().map(|(id, inbox)| MeshEnd { id, inbox, peers: txs.clone() }).collect();
    (ends, txs)
}
