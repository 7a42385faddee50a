//! One client connection of an `rtsp` virtual server, from its first
//! request to close.
//!
//! Until a request has to go to a node, requests are read and their rules
//! run (a rule may answer one itself: `rtsp.redirect`). The first request
//! that goes on chooses the node: the one its `Session` field names when
//! the pool's persistence class is `rtsp_session` and remembers it, the
//! client's address's with an `ip` class, else the pool's algorithm (a
//! rule's `pool.use` picks the pool). The connection then stays with that
//! node: two pumps, one per direction, parse every frame; requests run the
//! request rules, responses the response rules (with the request they
//! answer, matched by `CSeq`), and interleaved RTP/RTCP frames pass
//! through unparsed, every complete frame of a read in one write. Requests
//! a server sends (`ANNOUNCE`, `GET_PARAMETER`, `REDIRECT`) and the
//! client's answers to them pass through as they are.
//!
//! A malformed message from the client is answered with its status (400,
//! 413, 494, 505) and the connection closed; one from the node gets the
//! client a 502 and counts as a node failure. Both are counted
//! (docs/rtsp.md, "Statistics").

use super::exchange::Exchange;
use super::message::{self, Frame, Limits, Message};
use super::owned::Owned;
use crate::config::{PersistenceType, VirtualServer};
use crate::net::reader::Reader;
use crate::net::stream::{ConnRead, ConnWrite, Split};
use crate::rules::builtins::Stream;
use crate::rules::stream::{StreamConn, StreamFlow, StreamRules};
use crate::runtime::shard::ShardView;
use crate::stats::RtspEvent;
use crate::util::baton::Baton;
use monoio::io::{AsyncWriteRent, AsyncWriteRentExt};
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::pin::pin;
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime};

/// Requests sent on and not yet answered that one connection keeps (their
/// heads, for the response rules and the access log): a client that
/// pipelines more is closed.
const MAX_PENDING: usize = 32;

/// The largest body a message may have when `max_body_size` is not set.
const DEFAULT_MAX_BODY: usize = 1 << 20;

/// The most an interleaved frame takes: `$`, channel, 16-bit length, payload.
const MAX_INTERLEAVED: usize = 4 + u16::MAX as usize;

/// Which side a frame came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Client,
    Node,
}

/// Why a connection ended, other than both sides closing.
#[derive(Debug)]
enum End {
    Malformed(Side, message::Error),
    /// Interleaved data, or a response, before any request.
    Unexpected(&'static str),
    /// The side closed in the middle of a frame.
    Truncated(Side),
    Read(Side, std::io::Error),
    Write(Side, std::io::Error),
    TooManyPending,
    RuleClosed,
    ClientIdle,
    /// Waited `server_idle_timeout` for a node that never answered.
    NodeNoReply,
    NodeIdle,
}

/// A request sent on, waiting for its response.
struct Pending {
    /// Its head (the body is not kept).
    request: Owned,
    started: Instant,
}

/// A connection's shared state: both pumps read it.
struct Session<'a> {
    view: &'a Rc<ShardView>,
    vs: usize,
    cfg: &'a VirtualServer,
    peer: SocketAddr,
    limits: Limits,
    rules: Option<Rc<StreamRules>>,
    /// Where the rules send the connection, and what they keep for it; one
    /// direction's rules at a time.
    conn: Baton<StreamConn>,
    /// The client's write half: the node's messages and frames, and the
    /// rules' answers to requests, go out through it one at a time.
    client: Baton<ConnWrite>,
    pending: RefCell<VecDeque<Pending>>,
    /// The pool and node, once connected.
    pool: Cell<usize>,
    node: Cell<Option<usize>>,
    last: Cell<Instant>,
    node_spoke: Cell<bool>,
    /// Bytes written to the node and to the client.
    up: Cell<u64>,
    down: Cell<u64>,
}

/// Serve `client` (plain, or TLS already terminated) for its whole life.
pub async fn serve(view: &Rc<ShardView>, vs: usize, client: Split, peer: SocketAddr, local: SocketAddr) {
    let cfg = &view.config.virtual_servers[vs];
    let Split { r: cr, w: cw, .. } = client;
    let s = Session {
        view,
        vs,
        cfg,
        peer,
        limits: limits(cfg),
        rules: view.stream_rules[vs].clone(),
        conn: Baton::new(StreamConn::new(Stream {
            view: view.clone(),
            vs,
            client: peer,
            local,
            pool: cfg.pool,
            required_node: None,
            node: None,
            rtsp: None,
        })),
        client: Baton::new(cw),
        pending: RefCell::new(VecDeque::new()),
        pool: Cell::new(cfg.pool),
        node: Cell::new(None),
        last: Cell::new(Instant::now()),
        node_spoke: Cell::new(false),
        up: Cell::new(0),
        down: Cell::new(0),
    };
    let reader = Reader::new(cr, Vec::with_capacity(cfg.buffer_size.clamp(4096, MAX_INTERLEAVED)));
    let end = s.run(reader).await;
    s.finish(end).await;
}

/// The bounds on one message: the virtual server's `max_header_size`,
/// `max_headers` and `max_body_size`.
fn limits(cfg: &VirtualServer) -> Limits {
    Limits {
        max_head: cfg.http.max_header_size,
        max_headers: cfg.http.max_headers,
        max_body: cfg.http.max_body_size.map_or(DEFAULT_MAX_BODY, |m| usize::try_from(m).unwrap_or(usize::MAX)),
    }
}

impl Session<'_> {
    /// The connection's life; `Ok` when both sides closed cleanly.
    async fn run(&self, mut reader: Reader<ConnRead>) -> Result<(), End> {
        // Before any node: requests until one goes on.
        let (first, head) = loop {
            let frame =
                match monoio::time::timeout(self.cfg.client_idle_timeout, self.next_frame(&mut reader, Side::Client))
                    .await
                {
                    Err(_) => return Err(End::ClientIdle),
                    Ok(f) => f?,
                };
            let m = match frame {
                None => return Ok(()),
                Some(Frame::Interleaved { .. }) => return Err(End::Unexpected("interleaved data before any request")),
                Some(Frame::Message(m)) if m.status().is_some() => {
                    return Err(End::Unexpected("a response before any request"))
                }
                Some(Frame::Message(m)) => m,
            };
            let total = m.head_len + m.body_len;
            if let Some((changed, head)) = self.request(&mut reader, &m).await? {
                let bytes = changed.unwrap_or_else(|| {
                    let bytes = reader.data()[..total].to_vec();
                    reader.consume(total);
                    bytes
                });
                break (bytes, head);
            }
        };
        let Some((lease, node)) = self.connect(&head).await else {
            self.view.vs_stats(self.vs).rtsp(RtspEvent::NoNode);
            let a = Owned::answer(&head, 503);
            self.write_client(a.to_bytes()).await?;
            self.log(&head, &a, Instant::now(), Some("no node"));
            return Ok(());
        };
        let Split { r: nr, w: mut nw, .. } = node;
        self.pend(head)?;
        self.to_node(&mut nw, first).await?;
        let node_reader = Reader::new(nr, Vec::with_capacity(self.cfg.buffer_size.clamp(4096, MAX_INTERLEAVED)));
        let mut up = pin!(self.up(reader, nw));
        let mut down = pin!(self.down(node_reader));
        let both = async {
            monoio::select! {
                r = &mut up => { r?; down.await }
                r = &mut down => { r?; up.await }
            }
        };
        let end = monoio::select! {
            r = both => r,
            e = self.watchdog() => Err(e),
        };
        drop(lease);
        end
    }

    /// The next whole frame from `r`: `None` when the side closed between
    /// frames.
    async fn next_frame(&self, r: &mut Reader<ConnRead>, side: Side) -> Result<Option<Frame>, End> {
        loop {
            match message::parse(r.data(), &self.limits) {
                Err(e) => return Err(End::Malformed(side, e)),
                Ok(Some(f)) if f.total_len() <= r.data().len() => return Ok(Some(f)),
                Ok(Some(f)) => r.reserve_total(f.total_len()),
                Ok(None) if r.data().len() == r.capacity() => {
                    // A head still coming: room up to the limit (and one
                    // byte more, to see it broken).
                    r.reserve_total((r.capacity() * 2).min(self.limits.max_head + 1).max(r.capacity() + 1))
                }
                Ok(None) => {}
            }
            let n = r.fill().await.map_err(|e| End::Read(side, e))?;
            if n == 0 {
                return if r.data().is_empty() { Ok(None) } else { Err(End::Truncated(side)) };
            }
            self.last.set(Instant::now());
        }
    }

    /// Client to node.
    async fn up(&self, mut r: Reader<ConnRead>, mut nw: ConnWrite) -> Result<(), End> {
        loop {
            let m = match self.next_frame(&mut r, Side::Client).await? {
                None => {
                    // Half-close: the node sees the end, its answers still flow.
                    let _ = nw.shutdown().await;
                    return Ok(());
                }
                Some(Frame::Interleaved { .. }) => {
                    let (n, frames) = interleaved_run(r.data());
                    r.forward(&mut nw, n).await.map_err(|e| End::Write(Side::Node, e))?;
                    self.up.set(self.up.get() + n as u64);
                    self.view.vs_stats(self.vs).rtsp_n(RtspEvent::Interleaved, frames);
                    continue;
                }
                Some(Frame::Message(m)) => m,
            };
            let total = m.head_len + m.body_len;
            if m.status().is_some() {
                // The client's answer to a request of the server's.
                r.forward(&mut nw, total).await.map_err(|e| End::Write(Side::Node, e))?;
                self.up.set(self.up.get() + total as u64);
                continue;
            }
            match self.request(&mut r, &m).await? {
                None => {}
                Some((None, head)) => {
                    self.pend(head)?;
                    r.forward(&mut nw, total).await.map_err(|e| End::Write(Side::Node, e))?;
                    self.up.set(self.up.get() + total as u64);
                }
                Some((Some(bytes), head)) => {
                    self.pend(head)?;
                    self.to_node(&mut nw, bytes).await?;
                }
            }
        }
    }

    /// Node to client.
    async fn down(&self, mut r: Reader<ConnRead>) -> Result<(), End> {
        loop {
            let m = match self.next_frame(&mut r, Side::Node).await? {
                None => {
                    let _ = self.client.take().await.shutdown().await;
                    return Ok(());
                }
                Some(Frame::Interleaved { .. }) => {
                    self.node_replied();
                    let (n, frames) = interleaved_run(r.data());
                    r.forward(&mut *self.client.take().await, n).await.map_err(|e| End::Write(Side::Client, e))?;
                    self.down.set(self.down.get() + n as u64);
                    self.view.vs_stats(self.vs).rtsp_n(RtspEvent::Interleaved, frames);
                    continue;
                }
                Some(Frame::Message(m)) => m,
            };
            self.node_replied();
            let total = m.head_len + m.body_len;
            // A response answers the waiting request with its CSeq (the
            // oldest one when it has none).
            let answered = m.status().and_then(|_| {
                let mut pending = self.pending.borrow_mut();
                let i = match m.header(r.data(), "cseq") {
                    Some(cseq) => pending.iter().position(|p| p.request.header("cseq") == Some(cseq))?,
                    None => 0,
                };
                pending.remove(i)
            });
            let Some(Pending { request, started }) = answered else {
                // A request of the server's, or a response to nothing
                // asked: passed on as it is.
                r.forward(&mut *self.client.take().await, total).await.map_err(|e| End::Write(Side::Client, e))?;
                self.down.set(self.down.get() + total as u64);
                continue;
            };
            let response = Owned::copy(r.data(), &m);
            self.learn(&response);
            let ex = Exchange::response(request, response);
            let Some(Exchange { request, response, changed, answer }) = self.apply(false, ex).await else {
                return Err(End::RuleClosed);
            };
            if let Some(a) = answer {
                r.consume(total);
                self.answer(a, Some(&request), started).await?;
                continue;
            }
            let response = response.expect("a response exchange keeps its response");
            if changed {
                r.consume(total);
                self.write_client(response.to_bytes()).await?;
            } else {
                r.forward(&mut *self.client.take().await, total).await.map_err(|e| End::Write(Side::Client, e))?;
                self.down.set(self.down.get() + total as u64);
            }
            self.view.vs_stats(self.vs).rtsp(RtspEvent::Response);
            self.done(&request, &response, started, None);
        }
    }

    /// The request `m` at the front of `r`, through the request rules.
    /// `None` when a rule answered it (sent, and consumed from `r`);
    /// otherwise it goes on, with its head: as the rules rewrote it (the
    /// bytes; the original consumed), or as received (`None`: still the
    /// first bytes of `r`).
    async fn request(&self, r: &mut Reader<ConnRead>, m: &Message) -> Result<Option<(Option<Vec<u8>>, Owned)>, End> {
        let total = m.head_len + m.body_len;
        let started = Instant::now();
        // The body only for rules, which may rewrite the request: the
        // head is all that waits for the response.
        let copy = if self.rules.as_deref().is_some_and(|r| r.has(true)) { Owned::copy } else { Owned::copy_head };
        let ex = Exchange::request(copy(r.data(), m));
        let Some(Exchange { request, changed, answer, .. }) = self.apply(true, ex).await else {
            return Err(End::RuleClosed);
        };
        if let Some(a) = answer {
            r.consume(total);
            self.answer(a, None, started).await?;
            return Ok(None);
        }
        if !changed {
            return Ok(Some((None, request)));
        }
        r.consume(total);
        Ok(Some((Some(request.to_bytes()), request)))
    }

    /// The request (response) rules on `ex`, which comes back with what
    /// they did; `None` when a rule closed the connection. Without rules
    /// of the phase, `ex` comes back as it went.
    async fn apply(&self, request: bool, ex: Exchange) -> Option<Exchange> {
        let Some(rules) = self.rules.as_deref().filter(|r| r.has(request)) else { return Some(ex) };
        let mut conn = self.conn.take().await;
        conn.stream.rtsp = Some(Box::new(ex));
        let flow = rules.run(request, &mut conn, &mut Vec::new()).await;
        let ex = conn.stream.rtsp.take().expect("the rules give the exchange back");
        (flow == StreamFlow::Continue).then_some(*ex)
    }

    /// Send a rule's answer to the client, counted and logged (`request`:
    /// the one it answers, when that is not the answer's own).
    async fn answer(&self, a: Owned, request: Option<&Owned>, started: Instant) -> Result<(), End> {
        self.view.vs_stats(self.vs).rtsp(RtspEvent::RuleAnswer);
        self.write_client(a.to_bytes()).await?;
        if let Some(req) = request {
            self.done(req, &a, started, None);
        } else {
            log::debug!("virtual server {}: client {}: answered by a rule ({})", self.cfg.name, self.peer, a.status());
            self.view.vs_stats(self.vs).request(a.status(), started.elapsed().as_micros() as u64);
        }
        Ok(())
    }

    /// A request answered (by the node, or a response rule): counted and
    /// logged.
    fn done(&self, request: &Owned, response: &Owned, started: Instant, error: Option<&str>) {
        self.view.vs_stats(self.vs).request(response.status(), started.elapsed().as_micros() as u64);
        self.log(request, response, started, error);
    }

    /// One access-log line for `request` and the response the client got.
    fn log(&self, request: &Owned, response: &Owned, started: Instant, error: Option<&str>) {
        let (Some(al), Some(line)) = (&self.cfg.http.access_log, &self.view.access_lines[self.vs]) else { return };
        let duration = started.elapsed();
        let request_line = [request.method(), b" ", request.uri(), b" ", request.version.as_str().as_bytes()].concat();
        let pool = &self.view.pools[self.pool.get()];
        let node = self.node.get().map(|i| pool.nodes[i].name.as_str());
        let rec = crate::log::access::Record {
            client: self.peer,
            time: SystemTime::now() - duration,
            duration,
            request_line: &request_line,
            http2: false,
            method: request.method(),
            target: request.uri(),
            status: response.status(),
            bytes: response.body.len() as u64,
            node,
            required_node: None,
            favoured_node: None,
            virtual_server: &self.cfg.name,
            pool: &pool.cfg.name,
            error,
            request_headers: crate::log::access::Headers::List(&[]),
            response_headers: crate::log::access::Headers::List(&[]),
        };
        line.borrow_mut().push_with(|out| al.format.write(&rec, out));
    }

    /// A node for the session `head` begins, by the pool's persistence
    /// class; `None` when there is none (logged).
    async fn connect(&self, head: &Owned) -> Option<(crate::pool::NodeLease, Split)> {
        // No rule runs before the pumps start: the state is ours meanwhile.
        let mut conn = self.conn.take().await;
        let (pool_index, wanted, local) = (conn.stream.pool, conn.stream.required_node, conn.stream.local);
        self.pool.set(pool_index);
        let pool = &self.view.pools[pool_index];
        let class = pool.cfg.persistence.map(|c| &self.view.persist[c]);
        let key = match class.map(|c| c.cfg.kind) {
            Some(PersistenceType::RtspSession) => head.session().map(<[u8]>::to_vec).unwrap_or_default(),
            Some(PersistenceType::Ip) => crate::persist::ip::key(self.peer.ip()),
            _ => Vec::new(),
        };
        let (lease, node) =
            crate::proto::persistent::connect(self.view, self.vs, pool_index, &key, (self.peer, local), wanted).await?;
        if let Some(c) = class.filter(|c| c.cfg.kind == PersistenceType::Ip) {
            c.store.record(pool.uid, &key, pool.node_id(lease.index()));
        }
        self.node.set(Some(lease.index()));
        conn.stream.node = Some(lease.node().name.clone());
        Some((lease, node))
    }

    /// Remember the node of the session a response names (`rtsp_session`
    /// persistence), so the session's later connections come back to it.
    fn learn(&self, response: &Owned) {
        let (Some(id), Some(node)) = (response.session(), self.node.get()) else { return };
        let pool = &self.view.pools[self.pool.get()];
        let Some(class) = pool.cfg.persistence.map(|c| &self.view.persist[c]) else { return };
        if class.cfg.kind == PersistenceType::RtspSession {
            class.store.record(pool.uid, id, pool.node_id(node));
        }
    }

    /// The node answered for the first time on this connection: its
    /// passive-health success.
    fn node_replied(&self) {
        if !self.node_spoke.replace(true) {
            if let Some(n) = self.node.get() {
                self.view.pools[self.pool.get()].record_success(n);
            }
        }
    }

    /// The `CSeq` of the oldest request still waiting for its response.
    fn waiting_cseq(&self) -> Option<Vec<u8>> {
        self.pending.borrow().front().and_then(|p| p.request.header("cseq").map(<[u8]>::to_vec))
    }

    fn pend(&self, mut request: Owned) -> Result<(), End> {
        let mut pending = self.pending.borrow_mut();
        if pending.len() >= MAX_PENDING {
            return Err(End::TooManyPending);
        }
        request.body = Vec::new();
        pending.push_back(Pending { request, started: Instant::now() });
        self.view.vs_stats(self.vs).rtsp(RtspEvent::Request);
        Ok(())
    }

    async fn to_node(&self, nw: &mut ConnWrite, bytes: Vec<u8>) -> Result<(), End> {
        let n = bytes.len() as u64;
        let (res, _) = nw.write_all(bytes).await;
        res.map_err(|e| End::Write(Side::Node, e))?;
        self.up.set(self.up.get() + n);
        Ok(())
    }

    async fn write_client(&self, bytes: Vec<u8>) -> Result<(), End> {
        let n = bytes.len() as u64;
        let (res, _) = self.client.take().await.write_all(bytes).await;
        res.map_err(|e| End::Write(Side::Client, e))?;
        self.down.set(self.down.get() + n);
        Ok(())
    }

    /// Ends the connection when a side idles past its timeout: the node's
    /// (`server_idle_timeout`) while a request waits for its response, the
    /// client's (`client_idle_timeout`) otherwise.
    async fn watchdog(&self) -> End {
        loop {
            let awaiting = !self.pending.borrow().is_empty();
            let limit = if awaiting { self.cfg.server_idle_timeout } else { self.cfg.client_idle_timeout };
            let deadline = self.last.get() + limit;
            let now = Instant::now();
            if now >= deadline {
                return match (awaiting, self.node_spoke.get()) {
                    (true, false) => End::NodeNoReply,
                    (true, true) => End::NodeIdle,
                    (false, _) => End::ClientIdle,
                };
            }
            // Checked again at least every second: a request sent meanwhile
            // shortens the limit.
            monoio::time::sleep((deadline - now).min(Duration::from_secs(1))).await;
        }
    }

    /// After the connection: answer what can still be answered, count,
    /// log, and tell the pool what was learned of the node.
    async fn finish(&self, end: Result<(), End>) {
        let (vs, peer) = (&self.cfg.name, self.peer);
        let stats = self.view.vs_stats(self.vs);
        let pool = &self.view.pools[self.pool.get()];
        let node_name = self.node.get().map_or("-", |i| pool.nodes[i].name.as_str());
        match end {
            Ok(()) => log::debug!("virtual server {vs}: client {peer} <-> node {node_name}: closed"),
            Err(End::Malformed(Side::Client, e)) => {
                stats.rtsp(RtspEvent::ClientMalformed);
                log::info!("virtual server {vs}: client {peer}: malformed RTSP message: {e}; answered {}", e.status());
                let _ = self.write_client(error_response(e.status(), None)).await;
            }
            Err(End::Unexpected(what)) => {
                stats.rtsp(RtspEvent::ClientMalformed);
                log::info!("virtual server {vs}: client {peer}: {what}; answered 400");
                let _ = self.write_client(error_response(400, None)).await;
            }
            Err(End::Malformed(Side::Node, e)) => {
                stats.rtsp(RtspEvent::NodeMalformed);
                if let Some(n) = self.node.get() {
                    pool.record_failure(n, &format!("malformed RTSP message: {e}"));
                }
                let cseq = self.waiting_cseq();
                log::info!(
                    "virtual server {vs}: client {peer}: node {node_name}: malformed RTSP message: {e}; answered 502"
                );
                let _ = self.write_client(error_response(502, cseq.as_deref())).await;
            }
            Err(End::NodeNoReply) => {
                if let Some(n) = self.node.get() {
                    pool.record_failure(
                        n,
                        &format!("no reply within server_idle_timeout ({:?})", self.cfg.server_idle_timeout),
                    );
                }
                let cseq = self.waiting_cseq();
                let _ = self.write_client(error_response(504, cseq.as_deref())).await;
            }
            Err(End::Truncated(Side::Node)) => {
                let cseq = self.waiting_cseq();
                log::info!("virtual server {vs}: client {peer}: node {node_name} closed in the middle of a message");
                if cseq.is_some() {
                    let _ = self.write_client(error_response(502, cseq.as_deref())).await;
                }
            }
            Err(End::TooManyPending) => {
                stats.rtsp(RtspEvent::ClientMalformed);
                log::info!("virtual server {vs}: client {peer}: over {MAX_PENDING} requests awaiting responses; closed")
            }
            Err(End::Write(Side::Node, e) | End::Read(Side::Node, e)) => {
                log::info!("virtual server {vs}: client {peer}: node {node_name}: {e}")
            }
            Err(other) => log::debug!("virtual server {vs}: client {peer}: {other:?}; closed"),
        }
        if let Some(n) = self.node.get() {
            crate::proto::count_stream(self.view, self.vs, &pool.nodes[n], self.up.get(), self.down.get());
        } else {
            stats.bytes(0, self.down.get());
        }
    }
}

/// How many bytes at the start of `buf` are whole interleaved frames, and
/// how many frames that is.
fn interleaved_run(buf: &[u8]) -> (usize, u64) {
    let (mut at, mut frames) = (0, 0);
    while buf.len() - at >= 4 && buf[at] == b'$' {
        let len = 4 + usize::from(u16::from_be_bytes([buf[at + 2], buf[at + 3]]));
        if at + len > buf.len() {
            break;
        }
        at += len;
        frames += 1;
    }
    (at, frames)
}

/// shoal's own error response: `RTSP/1.0 STATUS`, with the request's `CSeq`
/// when it is known.
fn error_response(status: u16, cseq: Option<&[u8]>) -> Vec<u8> {
    let mut out = format!("RTSP/1.0 {status} {}\r\n", super::owned::reason(status)).into_bytes();
    if let Some(c) = cseq {
        out.extend_from_slice(b"CSeq: ");
        out.extend_from_slice(c);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"Server: shoal\r\nContent-Length: 0\r\n\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interleaved_runs_stop_at_a_partial_frame_or_a_message() {
        let mut buf = b"$\x00\x00\x02ab$\x01\x00\x01c".to_vec();
        assert_eq!(interleaved_run(&buf), (11, 2));
        buf.extend_from_slice(b"$\x00\x00\x05abc");
        assert_eq!(interleaved_run(&buf), (11, 2));
        let mut buf = b"$\x00\x00\x01a".to_vec();
        buf.extend_from_slice(b"RTSP/1.0 200 OK\r\n\r\n");
        assert_eq!(interleaved_run(&buf), (5, 1));
    }

    #[test]
    fn error_responses_carry_the_cseq_when_known() {
        assert_eq!(
            error_response(502, Some(b"7")),
            b"RTSP/1.0 502 Bad Gateway\r\nCSeq: 7\r\nServer: shoal\r\nContent-Length: 0\r\n\r\n".to_vec()
        );
        assert!(error_response(400, None).starts_with(b"RTSP/1.0 400 Bad Request\r\nServer"));
    }
}
