//! One shard: a pinned thread running a monoio runtime, owning the
//! connections it accepts and its view of every pool.

use super::mesh::{MeshEnd, ShardMsg};
use super::ring;
use crate::config::Config;
use crate::log::access::LineBuffer;
use crate::pool::health::NodeHealth;
use crate::pool::ShardPool;
use crate::util::coarse::CoarseTimer;
use crate::util::event::{Event, Flag};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::IpAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

/// Everything a shard thread is handed at start. All `Send`.
pub struct ShardSetup {
    pub id: usize,
    pub nshards: usize,
    pub cpu: Option<usize>,
    pub config: Arc<Config>,
    /// `health[pool][node]`, shared by all shards.
    pub health: Arc<Vec<Vec<Arc<NodeHealth>>>>,
    pub mesh: MeshEnd,
    /// (virtual server index, listener) pairs this shard accepts on.
    pub listeners: Vec<(usize, std::net::TcpListener)>,
    /// Built-in demo responders (on shard 0 only).
    pub responders: Vec<(usize, std::net::TcpListener)>,
    /// The access-log writer, and each virtual server's log number.
    pub access: Option<crate::log::writer::LogSender>,
    pub vs_log: Vec<Option<usize>>,
    /// Session persistence stores, shared by all shards.
    pub persist: crate::persist::Classes,
}

/// Shard-local state shared by the shard's tasks through an `Rc`.
pub struct Shard {
    pub id: usize,
    pub config: Arc<Config>,
    pub pools: Vec<Rc<ShardPool>>,
    pub shutdown: Flag,
    open: Cell<usize>,
    closed: Event,
    /// Keepalive deadlines of parked connections (one-second resolution).
    pub coarse: Rc<CoarseTimer>,
    /// Session persistence stores (process-wide), by class index.
    pub persist: crate::persist::Classes,
    vs_open: Vec<Cell<u32>>,
    vs_limit: Vec<u32>,
    /// Per virtual server: its access log's line buffer, when it has one.
    access_lines: Vec<Option<RefCell<LineBuffer>>>,
    /// Per virtual server with `max_connections_per_client`: this shard's
    /// share of the limit and its open connections per client address.
    per_client: Vec<Option<PerClient>>,
}

/// A shard's share of a per-client connection limit, and its table of open
/// connections per client address.
type PerClient = (u32, RefCell<HashMap<IpAddr, u32>>);

impl Shard {
    /// Build a shard's state: its view of every pool (sharing `health`),
    /// connection accounting, access-log buffers for the virtual servers
    /// with a log number in `vs_log`. Returns it with the event its pools
    /// raise when their figures change (for the mesh publisher).
    pub fn new(
        id: usize,
        nshards: usize,
        config: Arc<Config>,
        health: &[Vec<Arc<NodeHealth>>],
        vs_log: &[Option<usize>],
        persist: crate::persist::Classes,
    ) -> (Rc<Shard>, Rc<Event>) {
        let changed = Rc::new(Event::new());
        let pools = config
            .pools
            .iter()
            .enumerate()
            .map(|(i, p)| Rc::new(ShardPool::new(i, p, &health[i], nshards, changed.clone())))
            .collect();
        // Connection limits are split evenly over the shards that accept for
        // the virtual server (rounded up), so no shard consults another; a
        // client's connections spread over shards by the kernel's
        // SO_REUSEPORT hash, so per-client limits are approximate.
        let share = |vs: &crate::config::VirtualServer, limit: u32| {
            limit.div_ceil(vs.shards.as_ref().map_or(nshards, |s| s.len()).max(1) as u32)
        };
        let vs_limit = config.virtual_servers.iter().map(|vs| share(vs, vs.max_connections)).collect();
        let per_client = config
            .virtual_servers
            .iter()
            .map(|vs| vs.max_connections_per_client.map(|l| (share(vs, l), RefCell::new(HashMap::new()))))
            .collect();
        let nvs = config.virtual_servers.len();
        let shard = Rc::new(Shard {
            persist,
            id,
            config,
            pools,
            shutdown: Flag::default(),
            open: Cell::new(0),
            closed: Event::new(),
            coarse: Rc::new(CoarseTimer::default()),
            vs_open: (0..nvs).map(|_| Cell::new(0)).collect(),
            vs_limit,
            access_lines: (0..nvs)
                .map(|v| vs_log.get(v).copied().flatten().map(|_| RefCell::new(LineBuffer::new(ACCESS_BUFFER))))
                .collect(),
            per_client,
        });
        (shard, changed)
    }

    /// Number of connections this shard is serving.
    pub fn open_connections(&self) -> usize {
        self.open.get()
    }

    /// Whether virtual server `vs` has a free connection slot on this shard.
    pub fn has_slot(&self, vs: usize) -> bool {
        self.vs_open[vs].get() < self.vs_limit[vs]
    }

    /// Wait until a connection closes somewhere on this shard.
    pub fn connection_closed(&self) -> crate::util::event::Listen<'_> {
        self.closed.listen()
    }

    /// The access-log line buffer of virtual server `vs`, if it logs.
    pub fn access_log(&self, vs: usize) -> Option<&RefCell<LineBuffer>> {
        self.access_lines.get(vs).and_then(Option::as_ref)
    }

    /// Count a new connection on virtual server `vs` from `client`; `None`
    /// when the client already holds its share of `max_connections_per_client`
    /// on this shard.
    pub fn track(self: &Rc<Self>, vs: usize, client: IpAddr) -> Option<ConnGuard> {
        if let Some((limit, table)) = &self.per_client[vs] {
            let mut t = table.borrow_mut();
            let n = t.entry(client).or_insert(0);
            if *n >= *limit {
                return None;
            }
            *n += 1;
        }
        self.open.set(self.open.get() + 1);
        self.vs_open[vs].set(self.vs_open[vs].get() + 1);
        Some(ConnGuard { shard: self.clone(), vs, client })
    }
}

pub struct ConnGuard {
    shard: Rc<Shard>,
    vs: usize,
    client: IpAddr,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        let s = &self.shard;
        if let Some((_, table)) = &s.per_client[self.vs] {
            let mut t = table.borrow_mut();
            if let Some(n) = t.get_mut(&self.client) {
                *n -= 1;
                if *n == 0 {
                    t.remove(&self.client);
                }
            }
        }
        s.open.set(s.open.get() - 1);
        s.vs_open[self.vs].set(s.vs_open[self.vs].get() - 1);
        s.closed.notify_all();
    }
}

/// Thread body: pin, build the ring, serve until shutdown has drained.
pub fn run(setup: ShardSetup) {
    if let Some(cpu) = setup.cpu {
        if !core_affinity::set_for_current(core_affinity::CoreId { id: cpu }) {
            log::warn!("shard {}: could not pin to CPU {cpu}; running unpinned", setup.id);
        }
    }
    let (mut rt, mode) = match ring::build(setup.config.global.ring_entries) {
        Ok(x) => x,
        Err(e) => {
            log::error!("shard {}: cannot build a runtime: {e}", setup.id);
            std::process::exit(1);
        }
    };
    let cpu = setup.cpu.map_or_else(|| "unpinned".to_string(), |c| format!("CPU {c}"));
    log::info!("shard {} on {cpu}: {}", setup.id, mode.describe());
    rt.block_on(serve(setup));
}

async fn serve(setup: ShardSetup) {
    let ShardSetup { id, nshards, config, health, mesh, listeners, responders, access, vs_log, persist, .. } = setup;
    let (shard, changed) = Shard::new(id, nshards, config.clone(), &health, &vs_log, persist);
    if let Some(a) = access.clone() {
        monoio::spawn(flush_access_logs(shard.clone(), a, vs_log.clone()));
    }

    for (vs, l) in listeners {
        match monoio::net::TcpListener::from_std(l) {
            Ok(l) => {
                monoio::spawn(crate::net::accept::accept_loop(shard.clone(), vs, l));
            }
            Err(e) => log::error!(
                "shard {id}: cannot use listener for virtual server {}: {e}",
                config.virtual_servers[vs].name
            ),
        }
    }
    for (r, l) in responders {
        match monoio::net::TcpListener::from_std(l) {
            Ok(l) => {
                monoio::spawn(crate::proto::responder::serve(shard.clone(), r, l));
            }
            Err(e) => log::error!("responder {}: {e}", config.responders[r].name),
        }
    }
    let mesh = Rc::new(mesh);
    if nshards > 1 {
        monoio::spawn(publish_loop(shard.clone(), mesh.clone(), changed, config.global.mesh_interval));
    }
    monoio::spawn(inbox_loop(shard.clone(), mesh));

    shard.shutdown.wait().await;
    let open = shard.open_connections();
    let limit = config.global.shutdown_timeout;
    log::info!("shard {id}: stopped accepting; draining {open} connection(s) for up to {limit:?}");
    let drained = monoio::time::timeout(limit, async {
        while shard.open_connections() > 0 {
            let l = shard.connection_closed();
            if shard.open_connections() == 0 {
                break;
            }
            l.await;
        }
    })
    .await;
    match drained {
        Ok(()) => log::info!("shard {id}: drained"),
        Err(_) => {
            log::warn!("shard {id}: shutdown_timeout reached; cutting {} connection(s)", shard.open_connections())
        }
    }
    if let Some(a) = &access {
        hand_over_access_lines(&shard, a, &vs_log);
    }
    // Node connection reuse, until the statistics API reports it live.
    for pool in &shard.pools {
        for n in pool.nodes.iter().filter(|n| n.idle.opened.get() > 0) {
            log::info!(
                "shard {id}: pool {} node {}: {} connection(s) opened, {} request(s) on reused connections",
                pool.cfg.name,
                n.name,
                n.idle.opened.get(),
                n.idle.reused.get()
            );
        }
    }
}

/// Most bytes of access-log lines a shard buffers per virtual server
/// between hand-overs to the writer; beyond it lines are dropped and counted.
const ACCESS_BUFFER: usize = 4 << 20;
const ACCESS_FLUSH: Duration = Duration::from_millis(100);

async fn flush_access_logs(shard: Rc<Shard>, writer: crate::log::writer::LogSender, vs_log: Vec<Option<usize>>) {
    loop {
        monoio::time::sleep(ACCESS_FLUSH).await;
        hand_over_access_lines(&shard, &writer, &vs_log);
    }
}

/// Give each non-empty line buffer to the writer; if the writer is behind,
/// the lines are dropped (and logged) rather than held or waited for.
fn hand_over_access_lines(shard: &Shard, writer: &crate::log::writer::LogSender, vs_log: &[Option<usize>]) {
    for (vs, log) in vs_log.iter().enumerate() {
        let (Some(log), Some(buf)) = (log, shard.access_log(vs)) else { continue };
        let mut b = buf.borrow_mut();
        if b.is_empty() {
            continue;
        }
        let bytes = b.take();
        if let Err(back) = writer.try_send(*log, bytes) {
            log::warn!(
                "virtual server {}: access log writer is behind; dropped {} bytes of log lines",
                shard.config.virtual_servers[vs].name,
                back.len()
            );
            b.recycle(back);
        }
    }
}

/// Publish this shard's changed connection counts to the other shards, at
/// most once per mesh interval and only when something changed.
async fn publish_loop(shard: Rc<Shard>, mesh: Rc<MeshEnd>, changed: Rc<Event>, interval: Duration) {
    loop {
        let l = changed.listen();
        l.await;
        monoio::time::sleep(interval).await;
        for pool in &shard.pools {
            if let Some(nodes) = pool.take_snapshot() {
                let (from, p) = (shard.id, pool.index);
                if !mesh.broadcast(|| ShardMsg::PoolStats { from, pool: p, nodes: nodes.clone() }) {
                    pool.redirty();
                    changed.notify_all();
                }
            }
        }
    }
}

async fn inbox_loop(shard: Rc<Shard>, mesh: Rc<MeshEnd>) {
    while let Ok(msg) = mesh.inbox.recv_async().await {
        match msg {
            ShardMsg::PoolStats { from, pool, nodes } => {
                if let Some(p) = shard.pools.get(pool) {
                    p.apply_remote(from, &nodes);
                }
            }
            ShardMsg::NodeState { pool, node, state } => {
                if let Some(p) = shard.pools.get(pool).filter(|p| node < p.nodes.len()) {
                    p.set_state(node, state);
                }
            }
            ShardMsg::Shutdown => shard.shutdown.set(),
        }
    }
}
