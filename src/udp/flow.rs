//! One UDP listener on one shard: its receive loop, its table of flows
//! (client address → flow), and each flow's task relaying the node's
//! answers back to the client. What outlives what: the listener loop owns
//! the table for as long as the listener is in the configuration; a flow
//! holds its node lease, its connection slot and its node socket until it
//! ends, on the generation it started on.

use super::mmsg::{self, RecvBatch};
use super::BATCH;
use crate::config::model::{Udp, UdpMode};
use crate::pool::{NodeLease, ProbeSlot};
use crate::runtime::shard::{ConnGuard, ListenKey, Shard, ShardView};
use crate::stats::UdpEvent;
use monoio::net::udp::UdpSocket;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime};

/// Batches read per readiness before yielding to the shard's other tasks.
const DRAIN_BATCHES: usize = 8;

/// The receive buffer a flow's node socket asks for.
const NODE_SOCKET_BUFFER: usize = 1 << 20;

/// A flow's figures and state, shared by the listener loop (client to
/// node) and the flow's task (node to client).
struct Flow {
    client: SocketAddr,
    node: UdpSocket,
    lease: NodeLease,
    /// The node's single-flight slot when it is suspect, given back when
    /// the flow is dropped, after `finish` has recorded its outcome.
    _probe: ProbeSlot,
    _guard: ConnGuard,
    view: Rc<ShardView>,
    vs: usize,
    /// The virtual server's UDP settings when the flow began.
    udp: Udp,
    started: Instant,
    /// The last datagram either way.
    last: Cell<Instant>,
    up: Cell<(u64, u64)>,
    down: Cell<(u64, u64)>,
    /// Node datagrams taken as answers (sent to the client or dropped on
    /// the way): `one_response` ends when every client datagram has one.
    answered: Cell<u64>,
}

/// The flows of one listener on one shard.
type Table = RefCell<HashMap<SocketAddr, Rc<Flow>>>;

/// The receive batch of one listener on one shard, shared by its loop and
/// its flows: each borrows it only between a readiness and the next await
/// (receive, then send, with no await between), so one batch serves every
/// flow and a flow holds no buffer while it waits.
#[derive(Default)]
struct Scratch(RefCell<Option<(usize, RecvBatch)>>);

impl Scratch {
    /// The batch, with slots of `slot` bytes (remade when a reload
    /// changes `udp_max_datagram`).
    fn get(&self, slot: usize) -> std::cell::RefMut<'_, RecvBatch> {
        let mut b = self.0.borrow_mut();
        if b.as_ref().is_some_and(|(s, _)| *s != slot) {
            *b = None;
        }
        std::cell::RefMut::map(b, |b| &mut b.get_or_insert_with(|| (slot, RecvBatch::new(BATCH, slot))).1)
    }
}

/// Serve `socket`, the shard's socket of UDP listener `key`, until shoal
/// stops or a generation no longer has the listener on this shard.
pub async fn serve_listener(shard: Rc<Shard>, key: ListenKey, socket: std::net::UdpSocket) {
    let socket = match UdpSocket::from_std(socket) {
        Ok(s) => Rc::new(s),
        Err(e) => {
            log::error!("shard {}: cannot use the UDP listener {} of {}: {e}", shard.id, key.1, key.0);
            return;
        }
    };
    let stop = shard.listener_flag(&key);
    let table: Rc<Table> = Rc::default();
    let fd = socket.as_raw_fd();
    let scratch: Rc<Scratch> = Rc::default();
    loop {
        let ready = monoio::select! {
            r = socket.readable(false) => r,
            _ = shard.shutdown.wait() => break,
            _ = stop.wait() => {
                log::info!("virtual server {}: shard {} stopped listening on {}", key.0, shard.id, key.1);
                break;
            }
        };
        let view = shard.current();
        let Some(vs) = view.listener_vs(&key) else { break };
        let Some(udp) = view.config.virtual_servers[vs].udp else { break };
        if let Err(e) = ready {
            log::warn!("virtual server {}: UDP listener on shard {}: {e}", key.0, shard.id);
            monoio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        // One slot more than the largest datagram, so a larger one shows
        // as truncated; the batch is remade when a reload changes it.
        let slot = udp.max_datagram + 1;
        let mut b = scratch.get(slot);
        // Drain the socket (the readiness said there is at least one), up
        // to a bound: under a flood the loop yields, so the flows' answers
        // and the shard's other connections get their turn.
        for _ in 0..DRAIN_BATCHES {
            let n = match b.recv(fd) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) => {
                    log::warn!("virtual server {}: UDP receive on shard {}: {e}", key.0, shard.id);
                    break;
                }
            };
            let stats = view.vs_stats(vs);
            for i in 0..n {
                let d = b.get(i);
                let Some(client) = d.from else { continue };
                if d.truncated || d.data.len() > udp.max_datagram {
                    stats.udp(UdpEvent::Oversize);
                    log::debug!(
                        "virtual server {}: client {client}: datagram over udp_max_datagram ({} bytes) dropped",
                        key.0,
                        udp.max_datagram
                    );
                    continue;
                }
                let flow = table.borrow().get(&client).cloned();
                let flow = match flow {
                    Some(f) => f,
                    None => match open(&view, vs, udp, client, &table, &socket, &scratch) {
                        Some(f) => f,
                        None => continue,
                    },
                };
                forward(&flow, d.data);
            }
            if n < b.slots() {
                break;
            }
        }
    }
    // Flows already open go on until they end by themselves (their
    // answers still leave from this socket, which they hold); shutdown
    // ends them at once.
}

/// Client to node: one datagram on the flow's connected socket.
fn forward(flow: &Flow, data: &[u8]) {
    let stats = flow.view.vs_stats(flow.vs);
    match mmsg::send(flow.node.as_raw_fd(), data) {
        Ok(true) => {
            let (n, b) = flow.up.get();
            flow.up.set((n + 1, b + data.len() as u64));
            flow.last.set(Instant::now());
            stats.udp(UdpEvent::DatagramIn);
        }
        Ok(false) => stats.udp(UdpEvent::SendDropped),
        Err(e) => {
            // ECONNREFUSED: an ICMP port unreachable from an earlier datagram.
            stats.udp(UdpEvent::SendDropped);
            let name = &flow.view.config.virtual_servers[flow.vs].name;
            log::debug!("virtual server {name}: client {}: send to node failed: {e}", flow.client);
        }
    }
}

/// A new flow for `client`: a connection slot, a node (persistence first),
/// a socket connected to it, and its task. `None` (counted, logged) when
/// any of them is refused.
fn open(
    view: &Rc<ShardView>,
    vs: usize,
    udp: Udp,
    client: SocketAddr,
    table: &Rc<Table>,
    listener: &Rc<UdpSocket>,
    scratch: &Rc<Scratch>,
) -> Option<Rc<Flow>> {
    let cfg = &view.config.virtual_servers[vs];
    let stats = view.vs_stats(vs);
    // A flow is a connection to the limits: `max_connections` (this
    // shard's share) and `max_connections_per_client`.
    let guard = if view.has_slot(vs) { view.track(vs, client.ip()) } else { None };
    let Some(guard) = guard else {
        stats.udp(UdpEvent::FlowRefused);
        stats.error(crate::stats::VsError::Refused);
        log::info!("virtual server {}: client {client}: datagram dropped: flow limit reached", cfg.name);
        return None;
    };
    let Some((lease, probe)) = choose(view, vs, client) else {
        stats.udp(UdpEvent::NoNode);
        stats.error(crate::stats::VsError::NoNode);
        return None;
    };
    let node_addr = lease.node().addr;
    let node = match connect(node_addr) {
        Ok(s) => s,
        Err(e) => {
            stats.udp(UdpEvent::NoNode);
            stats.error(crate::stats::VsError::NodeFailure);
            log::warn!("virtual server {}: client {client}: cannot open a socket to node {node_addr}: {e}", cfg.name);
            return None;
        }
    };
    let now = Instant::now();
    let flow = Rc::new(Flow {
        client,
        node,
        lease,
        _probe: probe,
        _guard: guard,
        view: view.clone(),
        vs,
        udp,
        started: now,
        last: Cell::new(now),
        up: Cell::new((0, 0)),
        down: Cell::new((0, 0)),
        answered: Cell::new(0),
    });
    table.borrow_mut().insert(client, flow.clone());
    monoio::spawn(run(flow.clone(), table.clone(), listener.clone(), scratch.clone()));
    Some(flow)
}

/// The node for a new flow from `client`: the one its persistence class
/// remembers when it can still take it, else the balancer's choice; and
/// the node's single-flight slot if the pick holds it.
fn choose(view: &Rc<ShardView>, vs: usize, client: SocketAddr) -> Option<(NodeLease, ProbeSlot)> {
    let cfg = &view.config.virtual_servers[vs];
    let p = &view.pools[cfg.pool];
    let key = crate::persist::ip::key(client.ip());
    let preferred = crate::proto::persistent::preferred(view, vs, cfg.pool, &key, client, None)?;
    let pick = match preferred.and_then(|i| p.pick_required(i)) {
        Some(pick) => pick,
        None => {
            let Some(pick) = p.pick(&vec![false; p.nodes.len()], None) else {
                log::warn!(
                    "virtual server {}: client {client}: pool {}: no node available; dropped",
                    cfg.name,
                    p.cfg.name
                );
                return None;
            };
            if let Some(c) = p.cfg.persistence.map(|c| &view.persist[c]) {
                c.store.record(p.uid, &key, p.node_id(pick.node));
            }
            pick
        }
    };
    Some((p.lease(pick), ProbeSlot::of(p, pick)))
}

/// A non-blocking UDP socket connected to `node` (the kernel picks the
/// local address and port).
fn connect(node: SocketAddr) -> std::io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::for_address(node), Type::DGRAM, Some(Protocol::UDP))?;
    s.set_nonblocking(true)?;
    // Room for a burst of a node's answers while the shard is busy (a
    // limit, not an allocation; the kernel caps it at rmem_max).
    let _ = s.set_recv_buffer_size(NODE_SOCKET_BUFFER);
    s.connect(&node.into())?;
    UdpSocket::from_std(s.into())
}

/// How a flow ended.
#[derive(Debug)]
enum End {
    /// `one_response`: the node answered.
    Answered,
    /// No datagram either way for `udp_timeout`.
    Idle,
    /// `one_response`: the node did not answer within `udp_timeout`.
    NoReply,
    /// The node's socket failed: most often an ICMP port unreachable
    /// ("Connection refused").
    NodeError(std::io::Error),
    /// Shoal stops.
    Closed,
}

/// The flow's task: relay the node's answers to the client until the flow
/// ends, then account for it.
async fn run(flow: Rc<Flow>, table: Rc<Table>, listener: Rc<UdpSocket>, scratch: Rc<Scratch>) {
    let shard = flow.view.shard.clone();
    let udp = flow.udp;
    let fd = flow.node.as_raw_fd();
    let end = loop {
        let deadline = flow.last.get() + udp.timeout;
        let ready = monoio::select! {
            r = flow.node.readable(false) => Some(r),
            _ = monoio::time::sleep_until(deadline.into()) => None,
            _ = shard.shutdown.wait() => break End::Closed,
        };
        match ready {
            None if flow.last.get() + udp.timeout > Instant::now() => continue, // traffic since
            None if udp.mode == UdpMode::OneResponse => break End::NoReply,
            None => break End::Idle,
            Some(Err(e)) => break End::NodeError(e),
            Some(Ok(())) => {}
        }
        match relay_answers(&flow, fd, &mut scratch.get(udp.max_datagram + 1), &listener) {
            Ok(true) => break End::Answered,
            Ok(false) => {}
            Err(e) => break End::NodeError(e),
        }
    };
    finish(&flow, &table, end);
}

/// Drain the node's answers and send them to the client; true when a
/// `one_response` flow got its answer.
fn relay_answers(flow: &Flow, fd: RawFd, batch: &mut RecvBatch, listener: &UdpSocket) -> std::io::Result<bool> {
    let stats = flow.view.vs_stats(flow.vs);
    let Udp { mode, max_datagram: max, .. } = flow.udp;
    let mut items = [0usize; BATCH];
    // Bounded like the listener's drain; what is left wakes the flow again.
    for _ in 0..DRAIN_BATCHES {
        let n = batch.recv(fd)?;
        if n == 0 {
            return Ok(false);
        }
        let mut k = 0;
        for i in 0..n {
            let d = batch.get(i);
            if d.truncated || d.data.len() > max {
                stats.udp(UdpEvent::Oversize);
                continue;
            }
            // one_response: one answer per client datagram (a resolver
            // may have several queries out from one port); anything more
            // is not the flow's, and is discarded.
            if mode == UdpMode::OneResponse && flow.answered.get() >= flow.up.get().0 {
                continue;
            }
            flow.answered.set(flow.answered.get() + 1);
            items[k] = i;
            k += 1;
        }
        let sent = mmsg::send_from(listener.as_raw_fd(), batch, &items[..k], Some(flow.client))?;
        stats.udp_n(UdpEvent::SendDropped, (k - sent) as u64);
        stats.udp_n(UdpEvent::DatagramOut, sent as u64);
        let sent_bytes: u64 = items[..sent].iter().map(|&i| batch.get(i).data.len() as u64).sum();
        let (c, b) = flow.down.get();
        flow.down.set((c + sent as u64, b + sent_bytes));
        flow.last.set(Instant::now());
        if k > 0 {
            flow.lease.set_answered();
        }
        if mode == UdpMode::OneResponse && flow.answered.get() >= flow.up.get().0 {
            return Ok(true);
        }
        if n < batch.slots() {
            return Ok(false);
        }
    }
    Ok(false)
}

/// A flow's end: out of the table, its figures into the statistics, the
/// node's health told, an access-log line.
fn finish(flow: &Rc<Flow>, table: &Table, end: End) {
    {
        let mut t = table.borrow_mut();
        if t.get(&flow.client).is_some_and(|f| Rc::ptr_eq(f, flow)) {
            t.remove(&flow.client);
        }
    }
    let view = &flow.view;
    let cfg = &view.config.virtual_servers[flow.vs];
    let pool = flow.lease.pool();
    let node = flow.lease.index();
    let ((up_n, up_b), (down_n, down_b)) = (flow.up.get(), flow.down.get());
    let stats = view.vs_stats(flow.vs);
    stats.bytes(up_b, down_b);
    flow.lease.node().stats.request(up_b, down_b);
    match end {
        End::Answered => pool.record_success(node),
        End::Idle if down_n > 0 => pool.record_success(node),
        End::NoReply => {
            stats.udp(UdpEvent::NoReply);
            stats.error(crate::stats::VsError::NodeFailure);
            pool.record_failure(node, &format!("no UDP answer within udp_timeout ({:?})", flow.udp.timeout));
        }
        End::NodeError(ref e) => {
            stats.error(crate::stats::VsError::NodeFailure);
            pool.record_failure(node, &format!("UDP: {e}"))
        }
        End::Idle | End::Closed => {}
    }
    log::debug!(
        "virtual server {}: client {} <-> node {}: flow ended ({end:?}; {up_n} datagram(s) up, {down_n} down)",
        cfg.name,
        flow.client,
        flow.lease.node().name
    );
    if let (Some(al), Some(line)) = (&cfg.http.access_log, &view.access_lines[flow.vs]) {
        let duration = flow.started.elapsed();
        let request_line = format!("UDP {up_n} {down_n}");
        let rec = crate::log::access::Record {
            client: flow.client,
            time: SystemTime::now() - duration,
            duration,
            request_line: request_line.as_bytes(),
            http2: false,
            method: b"UDP",
            target: b"",
            status: 0,
            bytes: down_b,
            node: Some(&flow.lease.node().name),
            required_node: None,
            favoured_node: None,
            virtual_server: &cfg.name,
            pool: &pool.cfg.name,
            error: match end {
                End::NoReply => Some("no answer"),
                End::NodeError(_) => Some("node error"),
                _ => None,
            },
            request_headers: crate::log::access::Headers::List(&[]),
            response_headers: crate::log::access::Headers::List(&[]),
        };
        line.borrow_mut().push_with(|out| al.format.write(&rec, out));
    }
}
