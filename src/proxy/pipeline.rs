//! The HTTP driver: one client connection's request loop, and for each
//! request the module phases in order with the retry loop
//! (docs/phases.md). The driver owns connections, framing, retries and
//! the node exchange; everything a request's handling may vary (sessions,
//! headers, error pages, logs, and the controller features) is a module's.
//!
//! Retry edges: a connect failure retries on another node (nothing was
//! written). A reused keepalive connection that turns out closed before
//! any response byte, with no request body sent, is retried once on a
//! fresh connection without counting a node failure. Any other node
//! failure (no reply within `max_reply_time`, reset or close before a
//! complete head, invalid head, a 503, a module's `NodeFailure` verdict)
//! retries on another node only when the request is retryable: idempotent
//! method, no body, and the virtual server does not mark all requests
//! non-idempotent. Each node is tried at most once per request. A request
//! whose body bytes reached a node is never sent to a second node.

use super::body::{self, BodyError, BodyOpts};
use super::module::{BodyFlow, BodyMode, Contexts, Flow, ResponseSource, Verdict};
use super::own::{self, OwnResponse};
use super::txn::{ConnInfo, Txn};
use crate::error::{ClientError, Error, NodeError, Retry, ShoalError};
use crate::http::request::{self, Limits, RequestHead};
use crate::http::response;
use crate::http::rewrite::{self, BodyFraming, RequestFraming, ResponseChanges};
use crate::http::{is_idempotent, Framing, HttpError, Version};
use crate::net::reader::Reader;
use crate::net::stream::{ConnRead, ConnWrite, Split};
use crate::pool::connect::connect_node;
use crate::pool::keepalive::NodeConn;
use crate::pool::{NodeLease, Pick, ShardPool};
use crate::runtime::shard::ShardView;
use crate::shaping::bandwidth::{Shaped, Shaper};
use monoio::io::{AsyncWriteRent, AsyncWriteRentExt, Canceller};
use monoio::net::TcpStream;
use std::cell::OnceCell;
use std::future::Future;
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::pin::pin;
use std::rc::Rc;
use std::task::Poll;
use std::time::{Duration, Instant};

/// Buffer a connection keeps while idle (client between requests, node
/// connection in the keepalive pool); it grows to the head limit or
/// `buffer_size` when a message needs it, and shrinks back when idle.
const IDLE_BUFFER: usize = 4096;
/// Largest response body copied into the head's send when it arrived with
/// the head (larger ones stream from the node's buffer).
const COALESCE_BODY: usize = 16 * 1024;
/// A client connection idle this long between requests is parked: its
/// buffers and task are freed and a small task waits for readability.
/// Shorter than the gaps of a busy keepalive connection would park and
/// resume often (each costs a cancelled read, a poll and a new task);
/// longer holds ~14 KiB per idle connection for longer.
const PARK_AFTER: Duration = Duration::from_millis(200);
/// Idle node connections younger than this are reused by retryable
/// requests without a liveness check.
const UNCHECKED_REUSE: Duration = Duration::from_secs(1);

/// Fixed keys: LARD tables are per shard, so the hash only needs to be
/// stable within the process.
static LARD_HASH: ahash::RandomState = ahash::RandomState::with_seeds(0x5eed, 0x5b0a1, 7, 11);

struct Client {
    r: Reader<ConnRead>,
    w: ConnWrite,
    /// The socket under `r` and `w` (for splicing bodies).
    fd: RawFd,
    /// Cancels the read that waits for the next request (see `PARK_AFTER`).
    canceller: Canceller,
    /// An HTTP/2 stream (its request is marked HTTP/2 once parsed).
    http2: bool,
}

/// Bodies between `client` and `nc` may be spliced: the virtual server
/// allows it and neither side is TLS (whose bytes must pass through user
/// space to be encrypted).
fn splice_both(allowed: bool, client: &Client, nc: &NodeConn) -> bool {
    allowed && client.r.inner.is_plain() && nc.r.inner.is_plain()
}

/// Per-connection buffers reused by every request on it, so a keepalive
/// request allocates nothing in steady state.
#[derive(Default)]
struct Scratch {
    out: Vec<u8>,
    /// The request head as written for the node.
    node_head: Vec<u8>,
    /// Nodes of the pool already tried for this request.
    tried: Vec<bool>,
    /// The body filters of the body in hand: (module, mode).
    filters: Vec<(usize, BodyMode)>,
    /// Payload of a filtered body.
    body: Vec<u8>,
    /// A node's response head while it is read (then swapped into the
    /// transaction).
    resp: response::ResponseHead,
}

/// Everything one client connection holds between requests.
struct Conn {
    client: Client,
    s: Scratch,
    tx: Txn,
    mods: Contexts,
}

enum After {
    KeepAlive,
    Close,
    /// The node switched protocols (101): relay bytes both ways from now on
    /// (holding the node's lease, if it is a pool node).
    Tunnel(NodeConn, Option<NodeLease>),
}

enum HeadEnd {
    /// The client went away, idled out between requests, or shoal is stopping.
    Closed,
    Bad(HttpError),
    /// Idle for `PARK_AFTER` between requests, with this much of
    /// `client_keepalive_timeout` left: park the connection.
    Park(Duration),
}

/// A keepalive connection idle between requests, handed back by [`run`]
/// with nothing unread and no memory of its own beyond the socket, to wait
/// for its next request in a small task (see `proto::connection`).
pub struct Parked {
    pub stream: TcpStream,
    /// What remains of `client_keepalive_timeout`.
    pub keepalive_left: Duration,
    /// The configuration generation and virtual server it was last served
    /// on (a parked connection holds no other).
    pub view: Rc<ShardView>,
    pub vs: usize,
}

/// Serve one client connection until it closes, or until it idles for
/// `PARK_AFTER` between requests: then it is returned to be parked, and
/// the caller runs it again when the next request arrives.
pub async fn run(view: Rc<ShardView>, vs: usize, conn: Split, peer: SocketAddr, local: SocketAddr) -> Option<Parked> {
    let Split { r, w, fd, tls } = conn;
    let http2 = tls.as_ref().is_some_and(|t| t.alpn.as_deref() == Some(b"h2"));
    let info = Rc::new(ConnInfo { client: peer, local, tls, ssl_lines: OnceCell::new() });
    if http2 {
        // ALPN chose HTTP/2: the codec takes the connection (boxed: its
        // state does not enlarge every HTTP/1 connection's task).
        Box::pin(crate::h2::server::serve(view, vs, r, w, Vec::new(), info)).await;
        return None;
    }
    let client =
        Client { r: Reader::new(r, Vec::with_capacity(IDLE_BUFFER)), w, fd, canceller: Canceller::new(), http2: false };
    drive(view, vs, client, info).await
}

/// Serve one HTTP/2 stream (`crate::h2::stream`) as a connection that
/// carries one request, on the HTTP/2 connection's facts.
pub async fn run_stream(view: Rc<ShardView>, vs: usize, r: ConnRead, w: ConnWrite, info: Rc<ConnInfo>) {
    let client =
        Client { r: Reader::new(r, Vec::with_capacity(1024)), w, fd: -1, canceller: Canceller::new(), http2: true };
    drive(view, vs, client, info).await;
}

async fn drive(view: Rc<ShardView>, vs: usize, client: Client, info: Rc<ConnInfo>) -> Option<Parked> {
    let peer = info.client;
    let s = Scratch { out: Vec::with_capacity(1024), node_head: Vec::with_capacity(1024), ..Default::default() };
    // The transaction owns the view, and is moved to the current
    // generation between requests, so a busy keepalive connection holds no
    // older one.
    let mut c = Conn { client, s, tx: Txn::new(view, vs, info), mods: Contexts::default() };
    let mut first = true;
    loop {
        let started = match read_head(&c.tx.view, c.tx.vs, &mut c.client, &mut c.tx.request, first).await {
            Ok(t) => t,
            Err(HeadEnd::Closed) => break,
            Err(HeadEnd::Park(keepalive_left)) => {
                let Conn { client, tx, .. } = c;
                return match (client.r.into_inner(), client.w) {
                    (ConnRead::Tcp(r), ConnWrite::Tcp(w)) => {
                        r.reunite(w).ok().map(|stream| Parked { stream, keepalive_left, view: tx.view, vs: tx.vs })
                    }
                    _ => None,
                };
            }
            Err(HeadEnd::Bad(_)) if first && c.h2c_preface() => {
                let Conn { client, tx, .. } = c;
                let (r, already) = client.r.into_parts();
                let already = already.to_vec();
                Box::pin(crate::h2::server::serve(tx.view.clone(), tx.vs, r, client.w, already, tx.conn.clone())).await;
                return None;
            }
            Err(HeadEnd::Bad(e)) => {
                // No request exists to run modules on: the driver answers.
                let name = &c.tx.vs_config().name;
                log::info!("virtual server {name}: client {peer}: {} {}", e.status, e.reason);
                c.tx.view.vs_stats(c.tx.vs).error(crate::stats::VsError::BadRequest);
                let body = format!("{} {}\n", e.status, e.reason);
                rewrite::write_simple(e.status, "text/plain", body.as_bytes(), true, &mut c.s.out);
                let _ = own::write_vec(&mut c.client.w, &mut c.s.out).await;
                break;
            }
        };
        first = false;
        match c.request(started).await {
            After::KeepAlive if !c.tx.view.shard.shutdown.is_set() => c.client.r.shrink_idle(IDLE_BUFFER),
            After::KeepAlive | After::Close => break,
            After::Tunnel(nc, lease) => {
                tunnel(&c.tx, c.client, nc, lease).await;
                return None;
            }
        }
        // The next request runs on the current configuration generation.
        if !c.tx.view.is_current() {
            match c.tx.view.follow(c.tx.vs) {
                Some((view, vs)) => {
                    c.tx.view = view;
                    c.tx.vs = vs;
                }
                None => break,
            }
        }
    }
    if c.client.http2 {
        c.drain_stream().await;
    }
    let _ = c.client.w.shutdown().await;
    None
}

/// What an HTTP/2 stream answered before its request body ended (a 413,
/// a rule's answer) still takes of that body, and for how long.
const STREAM_DRAIN_BYTES: usize = 256 * 1024;
const STREAM_DRAIN_TIME: Duration = Duration::from_secs(1);

/// Run a request with no client, started by a module from `tx` (the
/// cache's background revalidation): a copy of `tx`'s request as it stands
/// (after the `request` phase, which is not run again), on the same
/// connection facts, pool and cache settings, from the `route` phase on,
/// in a task of its own on this shard. `handoff` reaches the module's
/// hooks as `tx.handoff`. The response goes nowhere; the request is
/// logged and counted like any other.
pub fn spawn_background(tx: &Txn, handoff: Box<dyn std::any::Any>) {
    let (view, vs) = (tx.view.clone(), tx.vs);
    let request = tx.request.clone();
    let (pool, cache, compress) = (tx.pool, tx.cache.clone(), tx.compress);
    let info = tx.conn.clone();
    monoio::spawn(async move {
        let client = Client {
            r: Reader::new(ConnRead::Null, Vec::new()),
            w: ConnWrite::Null,
            fd: -1,
            canceller: Canceller::new(),
            http2: false,
        };
        let mut c =
            Conn { client, s: Scratch::default(), tx: Txn::new(view.clone(), vs, info), mods: Contexts::default() };
        c.tx.request = request;
        c.tx.begin(&view, vs, Instant::now());
        c.tx.pool = pool;
        c.tx.cache = cache;
        c.tx.compress = compress;
        c.tx.background = true;
        c.tx.handoff = Some(handoff);
        c.mods.begin(&view.stacks[vs]);
        let _ = c.handle().await;
        c.mods.log(&c.tx);
        c.count();
    });
}

/// After `101 Switching Protocols` (WebSocket): a generic streaming relay
/// between the client and the node, starting with any bytes either side
/// sent right behind the heads.
async fn tunnel(tx: &Txn, mut client: Client, mut nc: NodeConn, lease: Option<NodeLease>) {
    let cfg = tx.vs_config();
    let (cr, client_rest) = client.r.into_parts();
    let (nr, node_rest) = nc.r.into_parts();
    if !client_rest.is_empty() && nc.w.write_all(client_rest).await.0.is_err() {
        return;
    }
    if !node_rest.is_empty() && client.w.write_all(node_rest).await.0.is_err() {
        return;
    }
    let opts = crate::proto::relay::RelayOpts {
        buffer_size: cfg.buffer_size,
        client_idle: cfg.client_idle_timeout,
        server_idle: cfg.server_idle_timeout,
        discard_node_line: false,
        awaiting_node: false,
    };
    let end = crate::proto::relay::relay_halves(cr, client.w, nr, nc.w, &opts, &|| {}, None).await;
    log::debug!("virtual server {}: client {}: upgraded connection ended: {end:?}", cfg.name, tx.client());
    drop(lease);
}

/// Read and parse the next request head. The first request gets
/// `header_read_timeout` from accept; later ones wait up to
/// `client_keepalive_timeout` for their first byte (or until shoal stops),
/// then `header_read_timeout` for the rest of the head.
async fn read_head(
    view: &Rc<ShardView>,
    vs: usize,
    client: &mut Client,
    head: &mut RequestHead,
    first: bool,
) -> Result<Instant, HeadEnd> {
    let http = &view.config.virtual_servers[vs].http;
    let limits = Limits { max_head: http.max_header_size, max_headers: http.max_headers, max_uri: http.max_uri_length };
    let mut started = (!client.r.data().is_empty() || first).then(Instant::now);
    loop {
        let data = client.r.data();
        if !data.is_empty() {
            started.get_or_insert_with(Instant::now);
            match request::parse(data, &limits, head) {
                Ok(Some(())) => {
                    if client.http2 {
                        head.version = Version::Http2;
                    }
                    return Ok(started.unwrap_or_else(Instant::now));
                }
                Ok(None) if data.len() >= limits.max_head => return Err(HeadEnd::Bad(request::incomplete_error(data))),
                Ok(None) => {}
                Err(e) => return Err(HeadEnd::Bad(e)),
            }
            // A head longer than the buffer: grow it, up to the head limit.
            let len = client.r.data().len();
            if len * 2 > client.r.capacity() {
                client.r.reserve_total((len * 2).max(IDLE_BUFFER).min(limits.max_head + 1));
            }
        }
        // A timed-out read loses the buffer it was reading into (monoio owns
        // it while the read is in flight), so decide from what was there.
        let partial = !client.r.data().is_empty();
        let got = match started {
            Some(t) => match monoio::time::timeout_at((t + http.header_read_timeout).into(), client.r.fill()).await {
                Ok(r) => r,
                Err(_) if !partial => return Err(HeadEnd::Closed),
                Err(_) => {
                    return Err(HeadEnd::Bad(HttpError::new(
                        408,
                        "request head not received within header_read_timeout",
                    )))
                }
            },
            // Between requests on a TLS connection: a cancelled read could
            // lose record bytes, so it waits in place for the whole
            // keepalive time (and holds its buffers meanwhile).
            None if !client.r.inner.is_plain() => {
                monoio::select! {
                    r = client.r.fill() => r,
                    _ = monoio::time::sleep(http.client_keepalive_timeout) => return Err(HeadEnd::Closed),
                    _ = view.shard.shutdown.wait() => return Err(HeadEnd::Closed),
                }
            }
            None => {
                // Between requests. After PARK_AFTER the read is cancelled
                // (keeping anything that raced in) and the connection is
                // parked, so an idle keepalive connection holds no buffers
                // and no request-sized task.
                let keepalive = http.client_keepalive_timeout;
                let park_after = PARK_AFTER.min(keepalive);
                let mut read = pin!(client.r.fill_cancelable(client.canceller.handle()));
                let early = monoio::select! {
                    r = &mut read => Some(r),
                    _ = monoio::time::sleep(park_after) => None,
                    _ = view.shard.shutdown.wait() => return Err(HeadEnd::Closed),
                };
                match early {
                    Some(r) => r,
                    None => {
                        client.canceller = std::mem::take(&mut client.canceller).cancel();
                        match read.await {
                            Err(e) if e.raw_os_error() == Some(libc::ECANCELED) => {
                                return Err(if park_after < keepalive {
                                    HeadEnd::Park(keepalive - park_after)
                                } else {
                                    HeadEnd::Closed
                                });
                            }
                            r => r,
                        }
                    }
                }
            }
        };
        match got {
            Ok(0) | Err(_) => return Err(HeadEnd::Closed),
            Ok(_) => {}
        }
    }
}

/// Why an exchange with a node did not produce a response head.
enum Failure {
    /// A reused keepalive connection turned out closed before any response
    /// byte: not a node failure. `written`: the head went out (the node may
    /// have read it before closing).
    Stale { written: bool },
    /// The node failed; the client gets its status if no retry succeeds.
    Node(NodeError),
    /// The client failed, went away, or its body broke the rules.
    Client(ClientError),
    /// A body filter stopped the request body (or it was over its limit).
    Filter(Error),
}

/// How the request body goes to the node.
enum ReqBody {
    /// None, or as it came (spliced where possible).
    Plain,
    /// As it came, shown to `Observe` filters on the way.
    Observed,
    /// Through `Stream` filters, re-framed chunked.
    Streamed,
    /// Read whole before the exchange and filtered; it is in `s.body` and
    /// goes out with a `Content-Length`.
    Whole,
}

/// What became of an accepted node response.
enum Delivered {
    /// Sent (or failed): what next for the client connection, and whether
    /// the node connection can go back to its keepalive pool.
    Done(After, bool),
    /// 101 Switching Protocols: relay bytes both ways from now on.
    Tunnel,
}

/// What the node exchange needs to know of the request.
#[derive(Clone, Copy)]
struct Exchange {
    framing: Framing,
    is_head: bool,
    forward_continue: bool,
    reply: Duration,
    max_head: usize,
    /// The request body goes to the node in a task of its own, so the
    /// response may be forwarded while it still flows.
    duplex: bool,
}

impl Conn {
    /// An HTTP/2 stream whose response is complete: read what remains of
    /// its request body (a bounded amount, for a bounded time), so the
    /// stream ends cleanly. Dropped unread, the codec resets it with
    /// `NO_ERROR` (RFC 9113 §8.1), which some clients (curl before 8)
    /// report as an error although the whole response arrived.
    async fn drain_stream(&mut self) {
        let deadline = Instant::now() + STREAM_DRAIN_TIME;
        let mut taken = self.client.r.data().len();
        self.client.r.consume(taken);
        while taken <= STREAM_DRAIN_BYTES {
            match monoio::time::timeout_at(deadline.into(), self.client.r.fill()).await {
                Ok(Ok(n)) if n > 0 => {
                    taken += n;
                    self.client.r.consume(n);
                }
                _ => return,
            }
        }
    }

    /// The first bytes of a cleartext connection are HTTP/2's preface and
    /// the virtual server takes `h2c` with prior knowledge.
    fn h2c_preface(&self) -> bool {
        const START: &[u8] = b"PRI * HTTP/2.0\r\n";
        self.tx.conn.tls.is_none()
            && !self.client.http2
            && self.client.r.data().starts_with(START)
            && self.tx.vs_config().http2.as_ref().is_some_and(|h| h.h2c)
    }

    /// Handle one request whose head is parsed in `tx.request`.
    async fn request(&mut self, started: Instant) -> After {
        let view = self.tx.view.clone();
        let vs = self.tx.vs;
        self.tx.begin(&view, vs, started);
        // The head has its own copy: the buffer keeps only what follows.
        self.client.r.consume(self.tx.request.len);
        self.mods.begin(&view.stacks[vs]);
        let after = self.handle().await;
        self.mods.log(&self.tx);
        self.count();
        after
    }

    /// Add a finished request to the virtual server's and node's statistics.
    fn count(&self) {
        let tx = &self.tx;
        let st = tx.view.vs_stats(tx.vs);
        st.request(tx.status, tx.started.elapsed().as_micros() as u64);
        st.version(tx.request.version);
        st.bytes(tx.head_in + tx.bytes_in, tx.head_out + tx.bytes_out);
        if let Some(e) = tx.error {
            st.error(e.stat());
        }
        if let (Some(n), None) = (tx.node, tx.explicit_addr) {
            if let Some(node) = tx.view.pools.get(tx.pool).and_then(|p| p.nodes.get(n)) {
                let from_node = if tx.source == ResponseSource::Node { tx.response.len as u64 } else { 0 };
                node.stats.request(tx.node_head_len + tx.bytes_in, from_node + tx.bytes_out);
            }
        }
    }

    /// The phases of one request, with the retry loop.
    async fn handle(&mut self) -> After {
        let view = self.tx.view.clone();
        let vs = &view.config.virtual_servers[self.tx.vs];
        let http = &vs.http;
        let framing = self.tx.request.framing;
        let client_keep_alive = self.tx.request.keep_alive();
        self.tx.retryable =
            !http.all_requests_non_idempotent && is_idempotent(self.tx.request.method()) && framing == Framing::None;

        let requested = if self.tx.background { Flow::Continue } else { self.mods.request(&mut self.tx).await };
        match requested {
            Flow::Continue => {}
            Flow::Respond(own) => return self.respond(*own, framing != Framing::None).await,
            Flow::Close => return After::Close,
        }
        if let (Framing::Length(n), Some(limit)) = (framing, http.max_body_size) {
            if n > limit {
                return self.fail(Error::Client(ClientError::BodyTooLarge), true).await;
            }
        }
        if framing == Framing::Chunked {
            // Check the chunked bytes already received before a node sees
            // anything, so a malformed body in the first packet never
            // reaches one. (Later bytes are checked as they stream.)
            let mut probe = crate::http::chunked::ChunkedFramer::default();
            if probe.advance(self.client.r.data(), |_| {}).is_err() {
                return self.fail(Error::Client(ClientError::BadChunkedBody), true).await;
            }
        }
        let body_opts = BodyOpts {
            idle: vs.client_idle_timeout,
            dechunk: false,
            limit: http.max_body_size,
            buffer: vs.buffer_size,
            splice: None,
            shape: None,
        };
        // Request body filters: a `Whole` one gets the body now, before the
        // route is settled (so what it decides still counts).
        let mut req_body = ReqBody::Plain;
        let mut req_framing = RequestFraming::default();
        if framing != Framing::None {
            self.mods.body_modes(&self.tx, false, &mut self.s.filters);
            if let Some(limit) = whole_limit(&self.s.filters) {
                match self.read_request_whole(limit, &body_opts).await {
                    Ok(None) => {}
                    // The body has been read: the connection can go on.
                    Ok(Some(own)) => return self.respond(*own, false).await,
                    Err(e) => return self.fail(e, true).await,
                }
                req_body = ReqBody::Whole;
                let length = BodyFraming::Length(self.s.body.len() as u64);
                req_framing = RequestFraming { reframed: Some(length), drop_expect: true };
            } else if self.s.filters.iter().any(|(_, m)| matches!(m, BodyMode::Stream | BodyMode::Transform)) {
                req_body = ReqBody::Streamed;
                req_framing.reframed = Some(BodyFraming::Chunked);
            } else if !self.s.filters.is_empty() {
                req_body = ReqBody::Observed;
            }
        }
        let body_unread = framing != Framing::None && !matches!(req_body, ReqBody::Whole);
        match self.mods.route(&mut self.tx).await {
            Flow::Continue => {}
            Flow::Respond(own) => return self.respond(*own, body_unread).await,
            Flow::Close => return After::Close,
        }
        self.mods.node_request(&mut self.tx);
        rewrite::write_request(&self.tx.request, &req_framing, &mut self.s.node_head);
        self.tx.node_head_len = self.s.node_head.len() as u64;
        let is_head = self.tx.request.is_head();
        let minor_1 = self.tx.request.version != Version::Http10;
        let upgrade = self.tx.request.upgrade;
        let forward_continue = self.tx.request.expect_continue && minor_1 && !matches!(req_body, ReqBody::Whole);
        let xch = Exchange {
            framing: if matches!(req_body, ReqBody::Whole) { Framing::None } else { framing },
            is_head,
            forward_continue,
            reply: view.pools[self.tx.pool].cfg.max_reply_time,
            max_head: http.max_header_size.max(8192),
            // HTTP/2 both ways with an unfiltered body: full duplex (a gRPC
            // stream answers while its request still flows).
            duplex: self.client.http2 && view.pools[self.tx.pool].cfg.http2 && matches!(req_body, ReqBody::Plain),
        };
        if matches!(req_body, ReqBody::Whole) {
            // The filtered body goes out with the head, in one write.
            self.s.node_head.extend_from_slice(&self.s.body);
        }

        if let Some(addr) = self.tx.explicit_addr {
            // Rare (a module's explicit address): boxed, so its state does
            // not enlarge every connection's task.
            return Box::pin(self.direct(addr, xch, req_body, &body_opts, client_keep_alive, upgrade)).await;
        }
        let pool = view.pools[self.tx.pool].clone();
        if pool.cfg.algorithm.uses_lard() {
            self.tx.url_hash = Some(LARD_HASH.hash_one(self.tx.request.target()));
        }
        self.s.tried.clear();
        self.s.tried.resize(pool.nodes.len(), false);
        let mut last = Error::Shoal(ShoalError::NoNode);
        let mut stale_retry_used = false;
        let mut body_sent = false;
        let queue_deadline = Instant::now() + pool.cfg.queue_timeout;
        // After a stale keepalive connection: the same node, on a new connection.
        let mut fresh_retry: Option<usize> = None;
        let private = !self.tx.preamble.is_empty();
        loop {
            let forced = fresh_retry.take().and_then(|n| {
                let mut others = vec![true; self.s.tried.len()];
                others[n] = false;
                pool.pick(&others, None)
            });
            let force_fresh = forced.is_some();
            let Some(pick) = forced.or_else(|| choose_node(&pool, &mut self.tx, &self.s.tried)) else {
                // Every usable node is at max_connections_per_node: wait in
                // the shard's bounded queue for a slot.
                if pool.has_full_node(&self.s.tried) {
                    if pool.wait_for_slot(&self.s.tried, queue_deadline).await {
                        continue;
                    }
                    last = Error::Shoal(ShoalError::NodesFull);
                }
                break;
            };
            let ni = pick.node;
            self.tx.favoured_node.get_or_insert(ni);
            self.s.tried[ni] = true;
            self.tx.attempts += 1;
            let idle = if pick.single || force_fresh || private || pool.cfg.http2 {
                None
            } else {
                // A retryable request survives a stale connection (it is
                // retried once on a new one), so it skips the liveness peek
                // on connections used within the last second.
                let check_after = if self.tx.retryable { UNCHECKED_REUSE } else { Duration::ZERO };
                pool.nodes[ni].idle.take(pool.cfg.node_keepalive_timeout, check_after)
            };
            let timeout = vs.connect_timeout.unwrap_or(pool.cfg.max_connect_time);
            let (lease, mut nc) = match idle {
                Some(c) => (pool.lease(pick), c),
                // A stream on the node's HTTP/2 connection (a fresh
                // connection after a stale one).
                None if pool.cfg.http2 => {
                    let max_head = http.max_header_size.max(8192);
                    let opened =
                        crate::h2::client::open(&pool, pick, timeout, max_head, vs.server_idle_timeout, force_fresh);
                    match Box::pin(opened).await {
                        Ok(x) => x,
                        Err(_) => {
                            last = Error::Node(NodeError::ConnectFailed);
                            continue;
                        }
                    }
                }
                None => match connect_node(&pool, pick, timeout, &self.tx.preamble).await {
                    Ok((lease, conn)) => (lease, NodeConn::new(conn, IDLE_BUFFER)),
                    Err(_) => {
                        last = Error::Node(NodeError::ConnectFailed);
                        continue;
                    }
                },
            };
            self.tx.reused_connection = nc.reused;
            self.tx.node = Some(ni);
            let opts = BodyOpts {
                splice: splice_both(vs.splice, &self.client, &nc).then_some((self.client.fd, nc.fd)),
                ..body_opts
            };
            let sent =
                exchange(&mut self.client, &mut nc, &mut self.s, &mut self.tx, &mut self.mods, xch, &req_body, &opts)
                    .await;
            let (body_complete, reply_start) = match sent {
                Ok(x) => x,
                // A stale keepalive connection: once, the same node on a new
                // connection, when nothing reached the node or the request
                // may be repeated anyway.
                Err(Failure::Stale { written })
                    if !stale_retry_used && !body_sent && (!written || self.tx.retryable) =>
                {
                    stale_retry_used = true;
                    self.s.tried[ni] = false;
                    self.tx.attempts -= 1;
                    fresh_retry = Some(ni);
                    continue;
                }
                Err(Failure::Stale { .. }) => {
                    let e = NodeError::StaleConnection;
                    pool.record_failure(ni, "connection closed before any response");
                    last = Error::Node(e);
                    body_sent |= xch.framing != Framing::None;
                    if self.tx.retryable {
                        continue;
                    }
                    break;
                }
                Err(Failure::Node(e)) => {
                    let err = Error::Node(e);
                    pool.record_failure(ni, err.message());
                    last = err;
                    body_sent |= xch.framing != Framing::None;
                    match err.retry() {
                        Retry::Always => continue,
                        Retry::IfRetryable if self.tx.retryable => continue,
                        _ => break,
                    }
                }
                Err(Failure::Client(e)) => return self.fail(Error::Client(e), true).await,
                Err(Failure::Filter(e)) => return self.fail(e, true).await,
            };
            // A final response head is in tx.response.
            pool.record_response_time(ni, reply_start.elapsed());
            lease.set_answered();
            self.tx.source = ResponseSource::Node;
            // C5: a 503 is the node's failure, judged before the modules
            // see the response; one that is not retried goes on through
            // them like any other.
            let answered_503 = self.tx.response.status == 503;
            if answered_503 {
                pool.record_failure(ni, "node answered 503");
                if self.tx.retryable && pool.has_candidate(&self.s.tried) {
                    last = Error::Node(NodeError::Answered503);
                    continue;
                }
            }
            let mut transforms = Vec::new();
            let verdict = match self.mods.response(&mut self.tx).await {
                Verdict::Divert(sink, own) => match self.divert_transforms() {
                    Some(t) => {
                        transforms = t;
                        Verdict::Divert(sink, own)
                    }
                    None => {
                        log::warn!(
                            "virtual server {}: a module diverted a response body that another module filters; \
                             it goes to the client as it is",
                            self.tx.vs_config().name
                        );
                        Verdict::Accept
                    }
                },
                v => v,
            };
            match verdict {
                Verdict::Divert(mut sink, own) => {
                    if !answered_503 {
                        pool.record_success(ni);
                    }
                    let r = &self.tx.response;
                    let reusable = r.node_keep_alive() && body_complete && !private;
                    if r.framing == Framing::None {
                        let _ = super::divert::finish(&mut transforms, sink.as_mut());
                        if reusable && nc.r.data().is_empty() && pool.nodes[ni].keeps_idle.get() {
                            nc.r.shrink_idle(IDLE_BUFFER);
                            pool.nodes[ni].idle.put(nc, pool.cfg.max_idle_per_node);
                        }
                        drop(lease);
                    } else {
                        let opts = BodyOpts {
                            idle: vs.server_idle_timeout,
                            dechunk: false,
                            limit: None,
                            buffer: vs.buffer_size,
                            splice: None,
                            shape: None,
                        };
                        let drain = super::divert::Drain {
                            nc,
                            lease,
                            pool: pool.clone(),
                            node: ni,
                            framing: r.framing,
                            opts,
                            reusable,
                            idle_buffer: IDLE_BUFFER,
                        };
                        monoio::spawn(super::divert::drain(drain, transforms, sink));
                    }
                    return self.respond(*own, !body_complete).await;
                }
                Verdict::NodeFailure(reason) => {
                    if !answered_503 {
                        pool.record_failure(ni, reason);
                    }
                    if self.tx.retryable && pool.has_candidate(&self.s.tried) {
                        last = Error::Node(NodeError::Judged(reason));
                        continue;
                    }
                }
                Verdict::Accept if !answered_503 => {
                    pool.record_success(ni);
                    if let Some(h) = self.tx.url_hash {
                        pool.lard_record(h, ni);
                    }
                }
                Verdict::Accept => {}
                Verdict::Respond(own) => {
                    // The node's answer is replaced; its connection is
                    // reused only when nothing of that answer is left to
                    // read (a HEAD probe's, say), else it closes.
                    let r = &self.tx.response;
                    let spent = body_complete && r.framing == Framing::None && nc.r.data().is_empty();
                    if spent && r.node_keep_alive() && !private && pool.nodes[ni].keeps_idle.get() {
                        nc.r.shrink_idle(IDLE_BUFFER);
                        pool.nodes[ni].idle.put(nc, pool.cfg.max_idle_per_node);
                    }
                    drop(lease);
                    return self.respond(*own, !body_complete).await;
                }
            }
            let (after, reusable) = match self.deliver(&mut nc, body_complete, client_keep_alive, upgrade).await {
                Delivered::Tunnel => return After::Tunnel(nc, Some(lease)),
                Delivered::Done(after, reusable) => (after, reusable),
            };
            if reusable && !private && pool.nodes[ni].keeps_idle.get() {
                nc.r.shrink_idle(IDLE_BUFFER);
                pool.nodes[ni].idle.put(nc, pool.cfg.max_idle_per_node);
            }
            drop(lease);
            return after;
        }
        // No node answered.
        let close = !client_keep_alive || (framing != Framing::None && !matches!(req_body, ReqBody::Whole));
        self.fail(last, close).await
    }

    /// What a module's divert takes with the body: the transforms of the
    /// modules that filter it (compression), which the drain runs before
    /// the sink; `None` when the divert must be refused (a module reads
    /// the body, or filters it in a way it cannot hand over).
    fn divert_transforms(&mut self) -> Option<Vec<Box<dyn super::module::BodyTransform>>> {
        if self.tx.response_body_wanted {
            return None;
        }
        self.mods.take_transforms(&mut self.tx, &mut self.s.filters)
    }

    /// C7 forward to an explicit address set by a module: one fresh
    /// connection, no balancing, retries, passive health or pooling (the
    /// address is not a node); failures answer 502 (connect, invalid or
    /// early close) or 504 (no reply within the pool's `max_reply_time`).
    async fn direct(
        &mut self,
        addr: SocketAddr,
        xch: Exchange,
        req_body: ReqBody,
        body_opts: &BodyOpts<'_>,
        client_keep_alive: bool,
        upgrade: bool,
    ) -> After {
        let view = self.tx.view.clone();
        let vs = &view.config.virtual_servers[self.tx.vs];
        let pool = &view.pools[self.tx.pool];
        let xch = Exchange { duplex: false, ..xch };
        let close_on_error = !client_keep_alive || xch.framing != Framing::None;
        self.tx.attempts = 1;
        let timeout = vs.connect_timeout.unwrap_or(pool.cfg.max_connect_time);
        let stream = match monoio::time::timeout(timeout, TcpStream::connect_addr(addr)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(_)) | Err(_) => {
                return self.fail(Error::Node(NodeError::ExplicitConnectFailed), close_on_error).await;
            }
        };
        let _ = stream.set_nodelay(true);
        let mut nc = NodeConn::new(Split::tcp(stream), IDLE_BUFFER);
        let sent =
            exchange(&mut self.client, &mut nc, &mut self.s, &mut self.tx, &mut self.mods, xch, &req_body, body_opts)
                .await;
        let complete = match sent {
            Ok((complete, _)) => complete,
            Err(Failure::Stale { .. }) => return self.fail(Error::Node(NodeError::ExplicitClosed), true).await,
            Err(Failure::Node(e)) => return self.fail(Error::Node(e), true).await,
            Err(Failure::Filter(e)) => return self.fail(e, true).await,
            Err(Failure::Client(e)) => return self.fail(Error::Client(e), true).await,
        };
        self.tx.source = ResponseSource::Node;
        if let Verdict::Respond(own) = self.mods.response(&mut self.tx).await {
            return self.respond(*own, !complete).await;
        }
        match self.deliver(&mut nc, complete, client_keep_alive, upgrade).await {
            Delivered::Tunnel => After::Tunnel(nc, None),
            Delivered::Done(after, _) => after,
        }
    }

    /// Read the whole request body for `Whole` filters (sending `100
    /// Continue` first when the client waits for it) and run the body
    /// filters on it; the result is in `s.body`, or a filter's answer is
    /// returned.
    async fn read_request_whole(
        &mut self,
        limit: usize,
        opts: &BodyOpts<'_>,
    ) -> Result<Option<Box<OwnResponse>>, Error> {
        let req = &self.tx.request;
        if req.expect_continue && req.version != Version::Http10 {
            self.s.out.clear();
            self.s.out.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
            own::write_vec(&mut self.client.w, &mut self.s.out)
                .await
                .map_err(|_| Error::Client(ClientError::WriteFailed))?;
        }
        let framing = req.framing;
        match body::read_whole(&mut self.client.r, framing, opts, limit, &mut self.s.body).await {
            Ok(n) => self.tx.bytes_in = n,
            Err(e) => return Err(request_body_error(e)),
        }
        match self.mods.filter_whole(&self.s.filters, false, &mut self.tx, &mut self.s.body).await {
            BodyFlow::Continue => Ok(None),
            BodyFlow::Respond(own) => Ok(Some(own)),
            BodyFlow::Abort(why) => Err(Error::Shoal(ShoalError::Module(why))),
        }
    }

    /// Send the accepted node response to the client ([`Conn::forward_response`],
    /// or shoal's error if it fails before anything was sent), and say
    /// whether the connection now becomes a tunnel: only after a 101 to an
    /// upgrade request whose whole body was read (a 101 that arrived while
    /// request body bytes were in flight would lose them).
    async fn deliver(
        &mut self,
        nc: &mut NodeConn,
        complete: bool,
        client_keep_alive: bool,
        upgrade: bool,
    ) -> Delivered {
        let (after, reusable) = match self.forward_response(nc, complete, client_keep_alive).await {
            Ok(x) => x,
            Err(e) => return Delivered::Done(self.fail(e, true).await, false),
        };
        let switched = self.tx.response.status == 101 && upgrade && complete && self.tx.error.is_none();
        if switched && matches!(after, After::Close) {
            Delivered::Tunnel
        } else {
            Delivered::Done(after, reusable)
        }
    }

    /// Write the response head and stream the body to the client, through
    /// the response body filters if any module asks. Returns what to do
    /// with the client connection and whether the node connection can be
    /// reused; `Err` when nothing reached the client yet and it is to get
    /// this error instead.
    async fn forward_response(
        &mut self,
        nc: &mut NodeConn,
        request_complete: bool,
        client_keep_alive: bool,
    ) -> Result<(After, bool), Error> {
        let Conn { client, s, tx, mods } = self;
        let view = tx.view.clone();
        let vs = &view.config.virtual_servers[tx.vs];
        tx.status = tx.response.status;
        let shaper = shaper_of(tx);
        let client_fd = client.fd;
        let client_plain = client.r.inner.is_plain();
        let mut client_w = Shaped { inner: &mut client.w, shape: shaper.as_ref() };
        let http10 = tx.request.version == Version::Http10;
        // A virtual server that a reconfiguration removed or changed closes
        // its connections after their current response, and says so.
        let close = !client_keep_alive
            || http10
            || !request_complete
            || tx.response.framing == Framing::UntilClose
            || tx.response.status == 101
            || view.shard.shutdown.is_set()
            || (!view.is_current() && view.follow(tx.vs).is_none());
        let node_keep_alive = tx.response.node_keep_alive();
        let mut framing = tx.response.framing;
        let mut opts = BodyOpts {
            idle: vs.server_idle_timeout,
            dechunk: false,
            limit: None,
            buffer: vs.buffer_size,
            splice: None,
            shape: shaper.as_ref(),
        };
        s.filters.clear();
        if framing != Framing::None {
            mods.body_modes(tx, true, &mut s.filters);
        }
        let whole = whole_limit(&s.filters);
        let streamed = s.filters.iter().any(|(_, m)| matches!(m, BodyMode::Stream | BodyMode::Transform));
        let result = if let Some(limit) = whole {
            // Whole: the head waits for the filtered body and its length.
            match body::read_whole(&mut nc.r, framing, &opts, limit, &mut s.body).await {
                Ok(_) => {}
                Err(BodyError::OverFilterLimit) => return Err(Error::Shoal(ShoalError::ResponseOverFilterLimit)),
                Err(e) => return Err(response_body_error(tx, e)),
            }
            match mods.filter_whole(&s.filters, true, tx, &mut s.body).await {
                BodyFlow::Continue => {}
                BodyFlow::Abort(why) => return Err(Error::Shoal(ShoalError::Module(why))),
                // shoal's answer replaces the node's, head and body.
                BodyFlow::Respond(own) => {
                    let own = *own;
                    tx.response = own.head;
                    s.body.clear();
                    if let crate::proxy::own::OwnBody::Bytes(b) = &own.body {
                        s.body.extend_from_slice(b);
                    }
                    tx.source = ResponseSource::Own;
                    tx.status = tx.response.status;
                    if own.close_instead {
                        tx.error = Some(Error::Shoal(ShoalError::Module("a body filter closed the connection")));
                        return Ok((After::Close, false));
                    }
                }
            }
            let changes = ResponseChanges { close, reframed: Some(BodyFraming::Length(s.body.len() as u64)) };
            rewrite::write_response(&tx.response, &changes, &mut s.out);
            tx.head_out = s.out.len() as u64;
            tx.bytes_out = s.body.len() as u64;
            s.out.extend_from_slice(&s.body);
            own::write_vec(&mut client_w, &mut s.out).await.map(|_| 0).map_err(BodyError::Sink)
        } else if streamed {
            let out_framing = if http10 { BodyFraming::UntilClose } else { BodyFraming::Chunked };
            let changes = ResponseChanges { close, reframed: Some(out_framing) };
            rewrite::write_response(&tx.response, &changes, &mut s.out);
            tx.head_out = s.out.len() as u64;
            if own::write_vec(&mut client_w, &mut s.out).await.is_err() {
                tx.error = Some(Error::Client(ClientError::GoneDuringResponse));
                return Ok((After::Close, false));
            }
            let filters = &s.filters;
            let mut filter = |d: &mut Vec<u8>, end: bool| mods.filter_body(filters, true, tx, d, end);
            let r = body::forward_transformed(
                &mut nc.r,
                &mut client_w,
                framing,
                &opts,
                out_framing,
                &mut s.body,
                &mut filter,
            )
            .await;
            r.map(|(_, written)| written)
        } else {
            // As it came (observers see it pass): a chunked body is
            // de-chunked for an HTTP/1.0 client.
            opts.dechunk = http10 && framing == Framing::Chunked;
            let changes = ResponseChanges { close, reframed: opts.dechunk.then_some(BodyFraming::UntilClose) };
            rewrite::write_response(&tx.response, &changes, &mut s.out);
            tx.head_out = s.out.len() as u64;
            // A small body that arrived with the head goes out in the same
            // send: one segment to the client instead of two.
            if let Framing::Length(n) = framing {
                if s.filters.is_empty() && n <= COALESCE_BODY as u64 && nc.r.data().len() as u64 >= n {
                    s.out.extend_from_slice(&nc.r.data()[..n as usize]);
                    nc.r.consume(n as usize);
                    tx.bytes_out = n;
                    framing = Framing::None;
                }
            }
            if own::write_vec(&mut client_w, &mut s.out).await.is_err() {
                tx.error = Some(Error::Client(ClientError::GoneDuringResponse));
                return Ok((After::Close, false));
            }
            if s.filters.is_empty() {
                let both_plain = vs.splice && client_plain && nc.r.inner.is_plain();
                opts.splice = both_plain.then_some((nc.fd, client_fd));
                body::forward(&mut nc.r, &mut client_w, framing, &opts, None).await
            } else {
                let filters = &s.filters;
                let mut see = |d: &[u8]| mods.observe_body(filters, true, tx, d, false);
                match body::forward(&mut nc.r, &mut client_w, framing, &opts, Some(&mut see)).await {
                    Ok(n) => match mods.observe_body(filters, true, tx, &[], true) {
                        BodyFlow::Continue => Ok(n),
                        BodyFlow::Abort(why) => Err(BodyError::Filter(why)),
                        BodyFlow::Respond(_) => Err(BodyError::Filter("an Observe filter answered")),
                    },
                    Err(e) => Err(e),
                }
            }
        };
        match result {
            Ok(n) => {
                // Plus a body already sent with the head.
                tx.bytes_out += n;
                let reusable = node_keep_alive && request_complete && nc.r.data().is_empty();
                Ok((if close { After::Close } else { After::KeepAlive }, reusable))
            }
            Err(BodyError::Sink(_)) => {
                tx.error = Some(Error::Client(ClientError::GoneDuringResponse));
                Ok((After::Close, false))
            }
            Err(e) => {
                tx.error = Some(response_body_error(tx, e));
                Ok((After::Close, false))
            }
        }
    }

    /// Send shoal's own response. `body_unread`: bytes of the request's
    /// body (or the node's) are still on the wire, so the connection closes
    /// after it.
    async fn respond(&mut self, mut own: OwnResponse, body_unread: bool) -> After {
        let tx = &mut self.tx;
        tx.source = ResponseSource::Own;
        tx.status = own.head.status;
        if own.close_instead {
            tx.status = 0;
            return After::Close;
        }
        let keep_alive = tx.request.keep_alive() && !body_unread;
        let (is_head, version) = (tx.request.client_sent_head(), tx.request.version);
        let splice_to = (tx.vs_config().splice && self.client.r.inner.is_plain()).then_some(self.client.fd);
        let shaper = shaper_of(tx);
        let mut w = Shaped { inner: &mut self.client.w, shape: shaper.as_ref() };
        let file_out = own::FileOut { socket: splice_to, shape: shaper.as_ref() };
        let sent = own::send(&mut w, &mut own, is_head, version, keep_alive, &mut self.s.out, file_out).await;
        // The head as sent, for the log phase (`%{Name}o`).
        std::mem::swap(&mut tx.response, &mut own.head);
        match sent {
            Ok(sent) => {
                tx.head_out = sent.head;
                tx.bytes_out = sent.body;
                if sent.keep_alive {
                    After::KeepAlive
                } else {
                    After::Close
                }
            }
            Err(own::SendError::Client(_)) => {
                tx.error.get_or_insert(Error::Client(ClientError::GoneDuringResponse));
                After::Close
            }
            Err(own::SendError::Source(e)) => {
                log::info!(
                    "virtual server {}: client {}: own response body failed: {e}",
                    tx.vs_config().name,
                    tx.client()
                );
                tx.error.get_or_insert(Error::Shoal(ShoalError::Module("response body source failed")));
                After::Close
            }
        }
    }

    /// Answer with shoal's own error response for `err`, after the modules'
    /// `error` phase (which may replace it, or close instead). An error that
    /// gets no answer (the client went away) just closes.
    async fn fail(&mut self, err: Error, close: bool) -> After {
        let status = err.status();
        self.tx.error = Some(err);
        if status == 0 {
            log::debug!("virtual server {}: client {}: {}", self.tx.vs_config().name, self.tx.client(), err.message());
            return After::Close;
        }
        log::info!(
            "virtual server {}: client {}: {status} ({})",
            self.tx.vs_config().name,
            self.tx.client(),
            err.message()
        );
        let mut resp = OwnResponse::plain(status);
        self.mods.error(&mut self.tx, &mut resp);
        self.respond(resp, close).await
    }
}

/// Send the request head and then the body, while watching for the
/// response, and read the node's final response head into `tx.response`.
/// Returns whether the whole request body was sent, and when the reply
/// time started.
#[allow(clippy::too_many_arguments)]
async fn exchange(
    client: &mut Client,
    nc: &mut NodeConn,
    s: &mut Scratch,
    tx: &mut Txn,
    mods: &mut Contexts,
    x: Exchange,
    req_body: &ReqBody,
    opts: &BodyOpts<'_>,
) -> Result<(bool, Instant), Failure> {
    if own::write_vec(&mut nc.w, &mut s.node_head).await.is_err() {
        return Err(if nc.reused { Failure::Stale { written: false } } else { Failure::Node(NodeError::WriteFailed) });
    }
    // A reused connection that closes with no answer is taken as stale (and
    // retried) only when no body went out after the head: a node that read
    // a body and then died may have acted on it.
    let reused = nc.reused && x.framing == Framing::None;
    let Scratch { filters, body: buf, resp, .. } = s;
    if x.duplex && x.framing != Framing::None {
        return duplex(client, nc, resp, tx, x, opts, reused).await;
    }
    if x.framing == Framing::None {
        let start = Instant::now();
        read_response_head(&mut nc.r, &mut client.w, resp, x, Some(start + x.reply), reused).await?;
        std::mem::swap(&mut tx.response, resp);
        return Ok((true, start));
    }
    // With a body, max_reply_time runs from the end of the body: a slow but
    // steady upload is the client's time (bounded by client_idle_timeout
    // per read), not a node failure. The head is read into scratch while
    // body filters may hold the transaction.
    let mut bytes_in = 0;
    let out = {
        let mut body_fut = pin!(send_body(&mut client.r, &mut nc.w, x.framing, opts, req_body, mods, filters, buf, tx));
        let mut head_fut = pin!(read_response_head(&mut nc.r, &mut client.w, resp, x, None, reused));
        let first = monoio::select! {
            b = &mut body_fut => Ok(b),
            h = &mut head_fut => Err(h),
        };
        let reply_timeout = || Failure::Node(NodeError::ReplyTimeout);
        match first {
            Ok(Ok(n)) => {
                bytes_in = n;
                let start = Instant::now();
                match monoio::time::timeout_at((start + x.reply).into(), &mut head_fut).await {
                    Ok(r) => r.map(|_| (true, start)),
                    Err(_) => Err(reply_timeout()),
                }
            }
            Ok(Err(BodyError::Sink(_))) => {
                // The node stopped reading; it may have answered (e.g. 413).
                let start = Instant::now();
                match monoio::time::timeout_at((start + x.reply).into(), &mut head_fut).await {
                    Ok(r) => r.map(|_| (false, start)),
                    Err(_) => Err(reply_timeout()),
                }
            }
            Ok(Err(e)) => Err(body_failure(e)),
            // The head won the race. Both may have completed in the same
            // round (select! picks among ready branches at random), and a
            // node cannot answer a request before it has read it all, so
            // check the body once more: only a body still unsent means the
            // node answered early, when the rest of the body is never read
            // and both connections close after this response.
            Err(h) => {
                let body = std::future::poll_fn(|cx| Poll::Ready(body_fut.as_mut().poll(cx))).await;
                let complete = match body {
                    Poll::Ready(Ok(n)) => {
                        bytes_in = n;
                        true
                    }
                    _ => false,
                };
                h.map(|_| (complete, Instant::now()))
            }
        }
    };
    tx.bytes_in = bytes_in;
    if out.is_ok() {
        std::mem::swap(&mut tx.response, resp);
    }
    out
}

/// A full-duplex exchange (HTTP/2 client and node, unfiltered body): the
/// body goes to the node in a task of its own, which owns both streams'
/// body halves from here, while the response head is awaited here and
/// the response then forwarded as usual; `max_reply_time` runs from the
/// body's end if it ends first. A body that fails after the head came
/// resets the node's stream (dropping its half) and ends the client's.
async fn duplex(
    client: &mut Client,
    nc: &mut NodeConn,
    resp: &mut response::ResponseHead,
    tx: &mut Txn,
    x: Exchange,
    opts: &BodyOpts<'_>,
    reused: bool,
) -> Result<(bool, Instant), Failure> {
    let mut src = std::mem::replace(&mut client.r, Reader::new(ConnRead::Null, Vec::new()));
    let mut dst = std::mem::replace(&mut nc.w, ConnWrite::Null);
    let (idle, limit, buffer, framing) = (opts.idle, opts.limit, opts.buffer, x.framing);
    let mut body = monoio::spawn(async move {
        let opts = BodyOpts { idle, dechunk: false, limit, buffer, splice: None, shape: None };
        body::forward(&mut src, &mut dst, framing, &opts, None).await
    });
    let out = {
        let mut head = pin!(read_response_head(&mut nc.r, &mut client.w, resp, x, None, reused));
        let first = monoio::select! {
            b = &mut body => Ok(b),
            h = &mut head => Err(h),
        };
        match first {
            // The head first: the body task goes on by itself.
            Err(h) => h.map(|_| (true, Instant::now())),
            Ok(Ok(n)) => {
                tx.bytes_in = n;
                let start = Instant::now();
                match monoio::time::timeout_at((start + x.reply).into(), &mut head).await {
                    Ok(r) => r.map(|_| (true, start)),
                    Err(_) => Err(Failure::Node(NodeError::ReplyTimeout)),
                }
            }
            Ok(Err(e)) => Err(body_failure(e)),
        }
    };
    if out.is_ok() {
        std::mem::swap(&mut tx.response, resp);
    }
    out
}

/// Why a request body did not reach the node, as an exchange's failure.
fn body_failure(e: BodyError) -> Failure {
    match request_body_error(e) {
        Error::Client(c) => Failure::Client(c),
        Error::Node(n) => Failure::Node(n),
        e @ Error::Shoal(_) => Failure::Filter(e),
    }
}

/// The request body to the node as `req_body` says, through the request
/// body filters in `filters`.
#[allow(clippy::too_many_arguments)]
async fn send_body(
    src: &mut Reader<ConnRead>,
    dst: &mut ConnWrite,
    framing: Framing,
    opts: &BodyOpts<'_>,
    req_body: &ReqBody,
    mods: &mut Contexts,
    filters: &[(usize, BodyMode)],
    buf: &mut Vec<u8>,
    tx: &mut Txn,
) -> Result<u64, BodyError> {
    match req_body {
        ReqBody::Plain | ReqBody::Whole => body::forward(src, dst, framing, opts, None).await,
        ReqBody::Observed => {
            let mut see = |d: &[u8]| mods.observe_body(filters, false, tx, d, false);
            let n = body::forward(src, dst, framing, opts, Some(&mut see)).await?;
            match mods.observe_body(filters, false, tx, &[], true) {
                BodyFlow::Continue => Ok(n),
                BodyFlow::Abort(why) => Err(BodyError::Filter(why)),
                BodyFlow::Respond(_) => Err(BodyError::Filter("an Observe filter answered")),
            }
        }
        ReqBody::Streamed => {
            let mut filter = |d: &mut Vec<u8>, end: bool| mods.filter_body(filters, false, tx, d, end);
            let (n, _) =
                body::forward_transformed(src, dst, framing, opts, BodyFraming::Chunked, buf, &mut filter).await?;
            Ok(n)
        }
    }
}

/// The transaction's error for a response body that broke off, recording
/// a node failure where the node is to blame.
fn response_body_error(tx: &Txn, e: BodyError) -> Error {
    let err = match e {
        BodyError::Sink(_) => return Error::Client(ClientError::GoneDuringResponse),
        BodyError::OverFilterLimit => return Error::Shoal(ShoalError::ResponseOverFilterLimit),
        BodyError::Filter(why) => return Error::Shoal(ShoalError::Module(why)),
        BodyError::SourceIdle => Error::Node(NodeError::IdleDuringBody),
        BodyError::Chunked(_) => Error::Node(NodeError::BadChunkedResponse),
        BodyError::Truncated | BodyError::SourceIo(_) | BodyError::TooLarge => Error::Node(NodeError::ClosedDuringBody),
    };
    if let (Some(ni), None) = (tx.node, tx.explicit_addr) {
        tx.view.pools[tx.pool].record_failure(ni, err.message());
    }
    err
}

/// The pacing of the response to `tx`, when it has a bandwidth class.
fn shaper_of(tx: &Txn) -> Option<Shaper> {
    tx.bandwidth_class.and_then(|i| tx.view.bandwidth.get(i)).map(|c| Shaper::new(c.clone()))
}

/// The smallest `Whole` limit among `filters`, if any is `Whole`.
fn whole_limit(filters: &[(usize, BodyMode)]) -> Option<usize> {
    filters
        .iter()
        .filter_map(|(_, m)| match m {
            BodyMode::Whole { limit } => Some(*limit),
            _ => None,
        })
        .min()
}

/// The request's error for a request body that could not be read.
fn request_body_error(e: BodyError) -> Error {
    match e {
        BodyError::TooLarge => Error::Client(ClientError::BodyTooLarge),
        BodyError::Chunked(_) => Error::Client(ClientError::BadChunkedBody),
        BodyError::SourceIdle => Error::Client(ClientError::BodyTimeout),
        BodyError::Truncated | BodyError::SourceIo(_) => Error::Client(ClientError::ClosedDuringBody),
        BodyError::Sink(_) => Error::Node(NodeError::WriteFailed),
        BodyError::OverFilterLimit => Error::Shoal(ShoalError::RequestOverFilterLimit),
        BodyError::Filter(why) => Error::Shoal(ShoalError::Module(why)),
    }
}

/// The node for the next attempt: `tx.required_node` when it can take the
/// request (active or draining: a draining node keeps its sessions), else
/// the pool's balancer (with LARD on `tx.url_hash`, and preferring nodes
/// with an idle connection for round robin and random).
fn choose_node(pool: &ShardPool, tx: &mut Txn, tried: &[bool]) -> Option<Pick> {
    if let Some(r) = tx.required_node.filter(|&r| r < tried.len() && !tried[r]) {
        if let Some(pick) = pool.pick_required(r) {
            return Some(pick);
        }
    }
    pool.pick(tried, tx.url_hash).map(|p| pool.prefer_warm(p, tried))
}

/// Read a node's response head, forwarding `100 Continue` to the client
/// when asked and skipping other interim responses.
async fn read_response_head<W: AsyncWriteRent>(
    nr: &mut Reader<ConnRead>,
    client_w: &mut W,
    resp: &mut response::ResponseHead,
    x: Exchange,
    deadline: Option<Instant>,
    reused: bool,
) -> Result<(), Failure> {
    let mut got_any = false;
    loop {
        if !nr.data().is_empty() {
            got_any = true;
            match response::parse(nr.data(), x.max_head, x.is_head, resp) {
                Ok(Some(())) if (100..200).contains(&resp.status) && resp.status != 101 => {
                    if resp.status == 100 && x.forward_continue {
                        nr.forward(client_w, resp.len).await.map_err(|_| Failure::Client(ClientError::WriteFailed))?;
                    } else {
                        nr.consume(resp.len);
                    }
                    continue;
                }
                Ok(Some(())) => {
                    // The head has its own copy.
                    nr.consume(resp.len);
                    return Ok(());
                }
                Ok(None) => {}
                Err(_) => return Err(Failure::Node(NodeError::InvalidResponse)),
            }
        }
        let len = nr.data().len();
        if len * 2 > nr.capacity() {
            nr.reserve_total((len * 2).max(IDLE_BUFFER).min(x.max_head + 1));
        }
        let filled = match deadline {
            Some(d) => monoio::time::timeout_at(d.into(), nr.fill()).await,
            None => Ok(nr.fill().await),
        };
        match filled {
            Err(_) => return Err(Failure::Node(NodeError::ReplyTimeout)),
            Ok(Ok(0)) | Ok(Err(_)) if reused && !got_any => return Err(Failure::Stale { written: true }),
            Ok(Ok(0)) => return Err(Failure::Node(NodeError::ClosedBeforeResponse)),
            Ok(Err(_)) => return Err(Failure::Node(NodeError::Reset)),
            Ok(Ok(_)) => {}
        }
    }
}
