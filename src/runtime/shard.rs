//! One shard: a pinned thread running a monoio runtime, owning the
//! connections it accepts and its view of every pool, for each
//! configuration generation it still serves connections of (A4).
//!
//! The names say what outlives what: a [`Shard`] lives as long as its
//! thread (connection counts, listeners, timers, log buffers); a
//! [`ShardView`] is its view of one configuration generation and lives as
//! long as some connection or request still runs on that generation.

use super::generation::Generation;
use super::mesh::{MeshEnd, ShardMsg};
use super::ring;
use crate::config::Config;
use crate::log::access::LineBuffer;
use crate::pool::ShardPool;
use crate::util::coarse::CoarseTimer;
use crate::util::event::{Event, Flag};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

/// Everything a shard thread is handed at start. All `Send`.
pub struct ShardSetup {
    pub id: usize,
    pub nshards: usize,
    pub cpu: Option<usize>,
    pub generation: Arc<Generation>,
    pub mesh: MeshEnd,
    /// The listeners this shard accepts on.
    pub listeners: Vec<(ListenKey, crate::net::listener::ListenSocket)>,
    /// Built-in demo responders (on shard 0 only).
    pub responders: Vec<(usize, std::net::TcpListener)>,
    /// The access-log writer.
    pub access: crate::log::writer::LogSender,
}

/// A shard thread's own state, kept across configuration generations
/// (it lives as long as the thread): its connection count, shutdown flag,
/// timers, access-log buffers, the generation it serves now and its
/// listeners.
pub struct Shard {
    pub id: usize,
    pub nshards: usize,
    pub shutdown: Flag,
    /// Keepalive deadlines of parked connections (one-second resolution).
    pub coarse: Rc<CoarseTimer>,
    open: Cell<usize>,
    closed: Event,
    current: RefCell<Option<Rc<ShardView>>>,
    /// `current`'s generation number, so a connection can check that its
    /// view is still current without touching `current`.
    generation: Cell<u64>,
    /// Raised when a new generation is in place (limits may have changed).
    pub reconfigured: Event,
    /// Access-log line buffers by log number (numbers only grow).
    access: RefCell<Vec<Rc<RefCell<LineBuffer>>>>,
    /// Per listener: set to stop its accept loop.
    listeners: RefCell<HashMap<ListenKey, Rc<Flag>>>,
    /// Raised by pools when their figures change (for the mesh publisher).
    changed: Rc<Event>,
    /// Per virtual server (by name): open connections, client table, counters.
    vs_rt: RefCell<HashMap<String, Rc<VsRt>>>,
    /// The other shards, for cross-shard calls (set when the mesh starts).
    peers: std::cell::OnceCell<super::call::ShardHandle>,
    /// This shard's partition of the content cache's index (the keys whose
    /// hash picks this shard); other shards reach it by cross-shard calls.
    pub cache: RefCell<crate::cache::partition::Partition>,
}

impl Shard {
    pub fn new(id: usize, nshards: usize) -> Rc<Shard> {
        Rc::new(Shard {
            id,
            nshards,
            shutdown: Flag::default(),
            coarse: Rc::new(CoarseTimer::default()),
            open: Cell::new(0),
            closed: Event::new(),
            current: RefCell::new(None),
            generation: Cell::new(0),
            reconfigured: Event::new(),
            access: RefCell::new(Vec::new()),
            listeners: RefCell::new(HashMap::new()),
            changed: Rc::new(Event::new()),
            vs_rt: RefCell::new(HashMap::new()),
            peers: std::cell::OnceCell::new(),
            cache: RefCell::new(crate::cache::partition::Partition::default()),
        })
    }

    /// The other shards, for cross-shard calls; `None` before the mesh
    /// starts (and for a standalone shard).
    pub fn peers(&self) -> Option<&super::call::ShardHandle> {
        self.peers.get()
    }

    /// Join the mesh: keep the senders to every shard, and serve this
    /// shard's inbox (balancing figures, new generations, statistics,
    /// calls) in a task of its own.
    pub fn start_mesh(self: &Rc<Self>, mesh: Rc<MeshEnd>) {
        let _ = self.peers.set(super::call::ShardHandle { id: self.id, peers: mesh.peers.clone() });
        monoio::spawn(inbox_loop(self.clone(), mesh));
    }

    /// The generation new connections and requests are served on.
    pub fn current(&self) -> Rc<ShardView> {
        self.current.borrow().clone().expect("a shard has a generation from its start")
    }

    /// Make `generation` current: build this shard's view of it, carrying
    /// over what the previous view had for unchanged objects.
    pub fn install(self: &Rc<Self>, generation: &Generation) -> Rc<ShardView> {
        let prev = self.current.borrow().clone();
        let view = ShardView::build(self, generation, prev.as_deref());
        let limits = crate::cache::partition_limits(&generation.config.cache, self.nshards);
        let (me, n) = (self.id, self.nshards);
        self.cache.borrow_mut().configure(limits, |key| crate::cache::owner(key, n) == me);
        *self.current.borrow_mut() = Some(view.clone());
        self.generation.set(generation.id);
        // Runtime objects of virtual servers that are gone are dropped once
        // their last connection ends.
        self.vs_rt.borrow_mut().retain(|name, _| generation.config.virtual_servers.iter().any(|v| v.name == *name));
        self.reconfigured.notify_all();
        view
    }

    /// Number of connections this shard is serving.
    pub fn open_connections(&self) -> usize {
        self.open.get()
    }

    /// Wait until a connection closes somewhere on this shard.
    pub fn connection_closed(&self) -> crate::util::event::Listen<'_> {
        self.closed.listen()
    }

    /// The flag that stops the accept loop of `key` (created on first use).
    pub fn listener_flag(&self, key: &ListenKey) -> Rc<Flag> {
        self.listeners.borrow_mut().entry(key.clone()).or_default().clone()
    }

    fn access_buffer(&self, log: usize) -> Rc<RefCell<LineBuffer>> {
        let mut a = self.access.borrow_mut();
        while a.len() <= log {
            a.push(Rc::new(RefCell::new(LineBuffer::new(ACCESS_BUFFER))));
        }
        a[log].clone()
    }
}

/// A virtual server's shard-local runtime state, shared by the
/// generations that have a virtual server of its name.
pub struct VsRt {
    open: Cell<u32>,
    /// Open connections per client address (`max_connections_per_client`).
    per_client: RefCell<HashMap<IpAddr, u32>>,
    pub stats: crate::stats::VsCounters,
}

/// One shard's view of one configuration generation, shared by the
/// shard's tasks through an `Rc`. A connection keeps the view it started
/// on for as long as it runs a request or a byte stream; HTTP connections
/// move to the current view between requests ([`ShardView::follow`]).
pub struct ShardView {
    pub id: usize,
    pub generation: u64,
    pub config: Arc<Config>,
    pub pools: Vec<Rc<ShardPool>>,
    /// Session persistence stores (process-wide), by class index.
    pub persist: crate::persist::Classes,
    /// Rate classes and service level classes (process-wide), by index.
    pub rate: crate::shaping::rate::RateClasses,
    pub bandwidth: crate::shaping::bandwidth::BandwidthClasses,
    pub slm: crate::slm::Classes,
    /// The shard this is a view of (outlives every view).
    pub shard: Rc<Shard>,
    vs: Vec<Rc<VsRt>>,
    /// This shard's share of each virtual server's `max_connections`.
    vs_limit: Vec<u32>,
    /// This shard's share of `max_connections_per_client`, if set.
    client_limit: Vec<Option<u32>>,
    /// The listeners of this generation on this shard, and their virtual servers.
    listen: Vec<(ListenKey, usize)>,
    /// Per virtual server: its HTTP module stack (empty for other
    /// protocols), built for this generation on this shard.
    pub stacks: Vec<Rc<crate::proxy::module::Stack>>,
    /// Per virtual server: its access log's line buffer on this shard
    /// (UDP flows write their own lines; HTTP's go through its stack).
    pub access_lines: Vec<Option<Rc<RefCell<LineBuffer>>>>,
    /// Per virtual server of a generic protocol: its rules, when it has any.
    pub stream_rules: Vec<Option<Rc<crate::rules::stream::StreamRules>>>,
    /// The generation's TLS acceptors and connectors.
    pub tls: Arc<super::generation::Tls>,
}

/// A listener's identity across generations: its virtual server's name and
/// its configured address. A virtual server keeps its sockets for as long
/// as it keeps its name and address (with port 0, its actual port).
pub type ListenKey = (String, SocketAddr);

/// Listener `addr` of `vs`'s key. A UDP listener's name carries its
/// transport, so that a reload turning a virtual server from a TCP
/// protocol to UDP (or back) binds new sockets instead of keeping the old.
pub fn listen_key(vs: &crate::config::model::VirtualServer, addr: SocketAddr) -> ListenKey {
    match vs.protocol {
        crate::config::Protocol::Udp => (format!("{} (udp)", vs.name), addr),
        _ => (vs.name.clone(), addr),
    }
}

impl ShardView {
    /// A shard of its own with `generation` current (tests and tools).
    pub fn standalone(generation: &Generation) -> Rc<ShardView> {
        Shard::new(0, 1).install(generation)
    }

    fn build(shard: &Rc<Shard>, generation: &Generation, prev: Option<&ShardView>) -> Rc<ShardView> {
        let config = &generation.config;
        let pools = config
            .pools
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let prev_pool = prev.and_then(|s| s.pools.iter().find(|o| o.cfg.name == p.name));
                let carry = |addr: SocketAddr| {
                    prev_pool.and_then(|o| o.nodes.iter().find(|n| n.addr == addr)).map(|n| n.rt.clone())
                };
                let dirty = prev_pool.map_or_else(|| Rc::new(Cell::new(true)), |o| o.dirty_flag());
                let mut pool =
                    ShardPool::new(i, p, &generation.health[i], shard.nshards, shard.changed.clone(), &carry, dirty);
                pool.tls = generation.tls.connectors[i].clone();
                pool.sla = generation.pool_sla(&p.name);
                Rc::new(pool)
            })
            .collect();
        // Removed nodes' idle connections close now, not when the last
        // connection of the old generation ends.
        if let Some(prev) = prev {
            for op in &prev.pools {
                let kept = config.pools.iter().find(|p| p.name == op.cfg.name);
                for n in &op.nodes {
                    if !kept.is_some_and(|k| k.nodes.iter().any(|x| x.addr == n.addr)) {
                        n.keeps_idle.set(false);
                        n.idle.clear();
                    }
                }
            }
        }
        // Connection limits are split evenly over the shards that accept for
        // the virtual server (rounded up), so no shard consults another; a
        // client's connections spread over shards by the kernel's
        // SO_REUSEPORT hash, so per-client limits are approximate.
        let share = |vs: &crate::config::VirtualServer, limit: u32| {
            limit.div_ceil(vs.shards.as_ref().map_or(shard.nshards, |s| s.len()).max(1) as u32)
        };
        let vs = config
            .virtual_servers
            .iter()
            .map(|v| {
                shard
                    .vs_rt
                    .borrow_mut()
                    .entry(v.name.clone())
                    .or_insert_with(|| {
                        Rc::new(VsRt {
                            open: Cell::new(0),
                            per_client: RefCell::new(HashMap::new()),
                            stats: Default::default(),
                        })
                    })
                    .clone()
            })
            .collect();
        let listen = config
            .virtual_servers
            .iter()
            .enumerate()
            .filter(|(_, v)| v.shards.as_ref().is_none_or(|s| s.contains(&shard.id)))
            .flat_map(|(i, v)| v.listen.iter().map(move |a| (listen_key(v, *a), i)))
            .collect();
        let access_lines: Vec<_> = generation.vs_log.iter().map(|l| l.map(|l| shard.access_buffer(l))).collect();
        let rules = crate::rules::ShardRules::build(config, generation.rules_data.clone());
        let stacks = (0..config.virtual_servers.len())
            .map(|vs| {
                let site = crate::proxy::module::ModuleSite { config, vs, shard: shard.id, shards: shard.nshards };
                Rc::new(crate::proxy::modules::build_stack(
                    &site,
                    access_lines[vs].clone(),
                    &rules,
                    &generation.modules,
                    &generation.rate,
                ))
            })
            .collect();
        let stream_rules = config
            .virtual_servers
            .iter()
            .map(|v| if v.protocol == crate::config::Protocol::Http { None } else { rules.stream(v) })
            .collect();
        Rc::new(ShardView {
            id: shard.id,
            generation: generation.id,
            config: config.clone(),
            pools,
            persist: generation.persist.clone(),
            rate: generation.rate.clone(),
            bandwidth: generation.bandwidth.clone(),
            slm: generation.slm.clone(),
            shard: shard.clone(),
            vs,
            vs_limit: config.virtual_servers.iter().map(|v| share(v, v.max_connections)).collect(),
            client_limit: config
                .virtual_servers
                .iter()
                .map(|v| v.max_connections_per_client.map(|l| share(v, l)))
                .collect(),
            listen,
            stacks,
            access_lines,
            stream_rules,
            tls: generation.tls.clone(),
        })
    }

    /// The virtual server accepting on listener `key` on this shard in
    /// this generation.
    pub fn listener_vs(&self, key: &ListenKey) -> Option<usize> {
        self.listen.iter().find(|(k, _)| k == key).map(|(_, v)| *v)
    }

    /// Between two requests of an HTTP connection on virtual server `vs`:
    /// the view and virtual server its next request runs on. That is the
    /// current generation's virtual server of the same name when it is
    /// still HTTP with the same TLS termination settings; `None` when it is
    /// gone or changed so that the connection must close.
    pub fn follow(self: &Rc<Self>, vs: usize) -> Option<(Rc<ShardView>, usize)> {
        if self.is_current() {
            return Some((self.clone(), vs));
        }
        let cur = self.shard.current();
        let old = &self.config.virtual_servers[vs];
        let i = cur.config.virtual_servers.iter().position(|v| v.name == old.name)?;
        let new = &cur.config.virtual_servers[i];
        (new.protocol == old.protocol && new.tls == old.tls).then_some((cur, i))
    }

    /// This view is of the generation new requests run on.
    pub fn is_current(&self) -> bool {
        self.shard.generation.get() == self.generation
    }

    /// Whether virtual server `vs` has a free connection slot on this shard.
    pub fn has_slot(&self, vs: usize) -> bool {
        self.vs[vs].open.get() < self.vs_limit[vs]
    }

    /// Virtual server `vs`'s counters on this shard.
    pub fn vs_stats(&self, vs: usize) -> &crate::stats::VsCounters {
        &self.vs[vs].stats
    }

    /// Count a new connection on virtual server `vs` from `client`; `None`
    /// when the client already holds its share of `max_connections_per_client`
    /// on this shard.
    pub fn track(self: &Rc<Self>, vs: usize, client: IpAddr) -> Option<ConnGuard> {
        let rt = &self.vs[vs];
        if let Some(limit) = self.client_limit[vs] {
            let mut t = rt.per_client.borrow_mut();
            let n = t.entry(client).or_insert(0);
            if *n >= limit {
                return None;
            }
            *n += 1;
        }
        rt.stats.connection();
        self.shard.open.set(self.shard.open.get() + 1);
        rt.open.set(rt.open.get() + 1);
        Some(ConnGuard { shard: self.shard.clone(), vs: rt.clone(), client, counted: self.client_limit[vs].is_some() })
    }

    /// This shard's statistics for its current generation.
    pub fn snapshot(&self) -> crate::stats::ShardSnapshot {
        let now = crate::util::clock::now_ms();
        crate::stats::ShardSnapshot {
            generation: self.generation,
            virtual_servers: self
                .config
                .virtual_servers
                .iter()
                .zip(&self.vs)
                .map(|(v, rt)| rt.stats.snapshot(&v.name, u64::from(rt.open.get())))
                .collect(),
            nodes: self
                .pools
                .iter()
                .flat_map(|p| {
                    p.nodes.iter().map(move |n| {
                        let health = if n.health.monitor_down() {
                            "monitor_down"
                        } else if n.health.availability(now) == crate::pool::health::Availability::Down {
                            "failed"
                        } else {
                            "alive"
                        };
                        crate::stats::NodeSnapshot {
                            pool: p.cfg.name.clone(),
                            node: n.name.clone(),
                            state: n.state.get().name(),
                            health,
                            current_connections: u64::from(n.local_connections()),
                            connections: n.idle.opened.get(),
                            idle_connections: n.idle.len() as u64,
                            requests: n.stats.requests.get(),
                            bytes_out: n.stats.bytes_out.get(),
                            bytes_in: n.stats.bytes_in.get(),
                            failures: n.stats.failures.get(),
                            rt_us: n.stats.rt_us.get(),
                            rt_count: n.stats.rt_count.get(),
                            last_used: n.stats.last_used.get(),
                        }
                    })
                })
                .collect(),
            cache: self.shard.cache.borrow().stats(),
        }
    }
}

pub struct ConnGuard {
    shard: Rc<Shard>,
    vs: Rc<VsRt>,
    client: IpAddr,
    /// Counted in the per-client table.
    counted: bool,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        if self.counted {
            let mut t = self.vs.per_client.borrow_mut();
            if let Some(n) = t.get_mut(&self.client) {
                *n -= 1;
                if *n == 0 {
                    t.remove(&self.client);
                }
            }
        }
        self.shard.open.set(self.shard.open.get() - 1);
        self.vs.open.set(self.vs.open.get() - 1);
        self.shard.closed.notify_all();
    }
}

/// Thread body: pin, build the ring, serve until shutdown has drained.
pub fn run(setup: ShardSetup) {
    if let Some(cpu) = setup.cpu {
        if !core_affinity::set_for_current(core_affinity::CoreId { id: cpu }) {
            log::warn!("shard {}: could not pin to CPU {cpu}; running unpinned", setup.id);
        }
    }
    let (mut rt, mode) = match ring::build(setup.generation.config.global.ring_entries) {
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
    let ShardSetup { id, nshards, generation, mesh, listeners, responders, access, .. } = setup;
    let shard = Shard::new(id, nshards);
    let view = shard.install(&generation);
    monoio::spawn(flush_access_logs(shard.clone(), access.clone()));
    start_listeners(&shard, listeners);
    for (r, l) in responders {
        match monoio::net::TcpListener::from_std(l) {
            Ok(l) => {
                monoio::spawn(crate::proto::responder::serve(view.clone(), r, l));
            }
            Err(e) => log::error!("responder {}: {e}", view.config.responders[r].name),
        }
    }
    drop(view);
    let mesh = Rc::new(mesh);
    if nshards > 1 {
        monoio::spawn(publish_loop(shard.clone(), mesh.clone()));
    }
    if id == 0 {
        monoio::spawn(ticks(shard.clone()));
    }
    shard.start_mesh(mesh);

    shard.shutdown.wait().await;
    let open = shard.open_connections();
    let limit = shard.current().config.global.shutdown_timeout;
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
    hand_over_access_lines(&shard, &access);
    // Node connection reuse, for runs without the statistics API.
    for pool in &shard.current().pools {
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
    // Break the shard → view → shard cycle.
    shard.current.borrow_mut().take();
}

/// Start an accept loop for each of `listeners`.
fn start_listeners(shard: &Rc<Shard>, listeners: Vec<(ListenKey, crate::net::listener::ListenSocket)>) {
    for (key, l) in listeners {
        let l = match l {
            crate::net::listener::ListenSocket::Tcp(l) => l,
            crate::net::listener::ListenSocket::Udp(u) => {
                monoio::spawn(crate::udp::serve_listener(shard.clone(), key, u));
                continue;
            }
        };
        match monoio::net::TcpListener::from_std(l) {
            Ok(l) => {
                monoio::spawn(crate::net::accept::accept_loop(shard.clone(), key, l));
            }
            Err(e) => log::error!("shard {}: cannot use the listener {} of {}: {e}", shard.id, key.1, key.0),
        }
    }
}

/// Switch to a new generation: its new listeners start, listeners it no
/// longer has on this shard stop, and every pool republishes its figures
/// under the new generation's positions.
fn reconfigure(shard: &Rc<Shard>, r: super::mesh::Reconfigure) {
    let view = shard.install(&r.generation);
    let stale: Vec<ListenKey> =
        shard.listeners.borrow().keys().filter(|k| view.listener_vs(k).is_none()).cloned().collect();
    for key in stale {
        if let Some(flag) = shard.listeners.borrow_mut().remove(&key) {
            flag.set();
        }
    }
    start_listeners(shard, r.listeners);
    // The new pools start dirty: wake the publisher.
    shard.changed.notify_all();
    let _ = r.done.send(());
}

/// Most bytes of access-log lines a shard buffers per log between
/// hand-overs to the writer; beyond it lines are dropped and counted.
const ACCESS_BUFFER: usize = 4 << 20;
const ACCESS_FLUSH: Duration = Duration::from_millis(100);

async fn flush_access_logs(shard: Rc<Shard>, writer: crate::log::writer::LogSender) {
    loop {
        monoio::time::sleep(ACCESS_FLUSH).await;
        hand_over_access_lines(&shard, &writer);
    }
}

/// Give each non-empty line buffer to the writer; if the writer is behind,
/// the lines are dropped (and logged) rather than held or waited for.
fn hand_over_access_lines(shard: &Shard, writer: &crate::log::writer::LogSender) {
    for (log, buf) in shard.access.borrow().iter().enumerate() {
        let mut b = buf.borrow_mut();
        if b.is_empty() {
            continue;
        }
        let bytes = b.take();
        if let Err(back) = writer.try_send(log, bytes) {
            log::warn!("access log {log}: the writer is behind; dropped {} bytes of log lines", back.len());
            b.recycle(back);
        }
    }
}

/// Once a second, on shard 0: read every service level class, so that a
/// class whose window empties or recovers with no request to time it
/// still changes state (and logs it) on time; and raise `pool.down` when
/// no node of a pool can take traffic (every one disabled, failed or
/// down by its monitor), `pool.up` when one can again. Health is shared
/// by the shards, so shard 0's view is the process's.
async fn ticks(shard: Rc<Shard>) {
    use crate::config::NodeState;
    let mut down: std::collections::HashSet<String> = Default::default();
    loop {
        monoio::time::sleep(std::time::Duration::from_secs(1)).await;
        if shard.shutdown.is_set() {
            return;
        }
        let now = std::time::Instant::now();
        let view = shard.current();
        for class in view.slm.iter() {
            class.read(now);
        }
        for pool in &view.pools {
            let working = pool
                .nodes
                .iter()
                .any(|n| n.state.get() != NodeState::Disabled && !n.health.monitor_down() && !n.health.is_dead());
            let name = &pool.cfg.name;
            let was_down = down.contains(name);
            if !working && !was_down && !pool.nodes.is_empty() {
                down.insert(name.clone());
                crate::events::emit(crate::events::Event::new(
                    &crate::events::catalogue::POOL_DOWN,
                    format!("pools/{name}"),
                    format!(
                        "pool {name} has no working node ({} node(s), all failed, down or disabled)",
                        pool.nodes.len()
                    ),
                ));
            } else if working && was_down {
                down.remove(name);
                crate::events::emit(crate::events::Event::new(
                    &crate::events::catalogue::POOL_UP,
                    format!("pools/{name}"),
                    format!("pool {name} has a working node again"),
                ));
            }
        }
    }
}

/// Publish this shard's changed connection counts to the other shards, at
/// most once per mesh interval and only when something changed. A pool
/// starts dirty (a new generation republishes everything).
async fn publish_loop(shard: Rc<Shard>, mesh: Rc<MeshEnd>) {
    loop {
        let view = shard.current();
        let mut undelivered = false;
        for pool in &view.pools {
            if let Some(nodes) = pool.take_snapshot() {
                let (from, generation, p) = (view.id, view.generation, pool.index);
                if !mesh.broadcast(|| ShardMsg::PoolStats { from, generation, pool: p, nodes: nodes.clone() }) {
                    pool.redirty();
                    undelivered = true;
                }
            }
        }
        // No await between the publish and listening: a change made after
        // the snapshots raises the event this waits on.
        let changed = shard.changed.listen();
        if !undelivered {
            changed.await;
        }
        monoio::time::sleep(view.config.global.mesh_interval).await;
    }
}

async fn inbox_loop(shard: Rc<Shard>, mesh: Rc<MeshEnd>) {
    while let Ok(msg) = mesh.inbox.recv_async().await {
        match msg {
            ShardMsg::PoolStats { from, generation, pool, nodes } => {
                // Positions are those of the sender's generation; figures
                // from another one are dropped (the sender republishes
                // everything when it switches).
                let view = shard.current();
                if let Some(p) = view.pools.get(pool).filter(|_| view.generation == generation) {
                    p.apply_remote(from, &nodes);
                }
            }
            ShardMsg::Reconfigure(r) => reconfigure(&shard, *r),
            ShardMsg::Snapshot(reply) => {
                let _ = reply.send(shard.current().snapshot());
            }
            ShardMsg::Shutdown => shard.shutdown.set(),
            ShardMsg::Call(job) => job(&shard),
        }
    }
}
