//! The HTTP driver: one client connection's request loop, and for each
//! request the phases in order with the retry loop (docs/phases.md).
//!
//! Retry edges: a connect failure retries on another node (nothing was
//! written). A reused keepalive connection that turns out closed before
//! any response byte, with no request body sent, is retried once on a
//! fresh connection without counting a node failure. Any other node
//! failure (no reply within `max_reply_time`, reset or close before a
//! complete head, invalid head, a 503) retries on another node only when
//! the request is retryable: idempotent method, no body, and the virtual
//! server does not mark all requests non-idempotent. Each node is tried at
//! most once per request. A request whose body bytes reached a node is
//! never sent to a second node.

use super::body::{self, BodyError, BodyOpts};
use super::phases::{Ctx, Flow, HttpPhases, Request, Verdict};
use crate::config::ErrorAction;
use crate::http::request::{self, Limits, RequestHead};
use crate::http::response::{self, ResponseHead};
use crate::http::rewrite::{self, RequestAdditions, ResponseChanges};
use crate::http::{is_idempotent, Framing, HttpError};
use crate::net::reader::Reader;
use crate::net::stream::{ConnRead, ConnWrite, Split};
use crate::pool::connect::connect_node;
use crate::pool::keepalive::NodeConn;
use crate::runtime::shard::ShardView;
use monoio::io::{AsyncWriteRent, AsyncWriteRentExt, Canceller};
use monoio::net::TcpStream;
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
    /// TLS: the `add_ssl_headers` lines, rendered once per connection.
    ssl_headers: Option<Vec<u8>>,
    /// Cancels the read that waits for the next request (see `PARK_AFTER`).
    canceller: Canceller,
    peer: SocketAddr,
    /// The address the client connected to (for the PROXY protocol).
    local: SocketAddr,
}

/// Bodies between `client` and `nc` may be spliced: the virtual server
/// allows it and neither side is TLS (whose bytes must pass through user
/// space to be encrypted).
fn splice_both(allowed: bool, client: &Client, nc: &NodeConn) -> bool {
    allowed && client.r.inner.is_plain() && nc.r.inner.is_plain()
}

/// Per-connection buffers reused by every request on it, so a keepalive
/// request allocates nothing in steady state.
struct Scratch {
    head: RequestHead,
    resp: ResponseHead,
    out: Vec<u8>,
    /// The request head as rewritten for the node.
    node_head: Vec<u8>,
    /// Nodes of the pool already tried for this request.
    tried: Vec<bool>,
    /// The access-log copy of the last request, kept for the next one.
    log_spare: Option<Box<super::phases::LogCopy>>,
}

enum After {
    KeepAlive,
    Close,
    /// The node switched protocols (101): relay bytes both ways from now on
    /// (holding the node's lease, if it is a pool node).
    Tunnel(NodeConn, Option<crate::pool::NodeLease>),
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
/// for its next request in a small task (see `net::accept`).
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
pub async fn run<P: HttpPhases>(
    phases: &P,
    view: Rc<ShardView>,
    vs: usize,
    conn: Split,
    peer: SocketAddr,
    local: SocketAddr,
) -> Option<Parked> {
    // Owned, and replaced when the connection follows a new generation, so
    // a busy keepalive connection holds no older one.
    let (mut cur, mut vs) = (view, vs);
    let cfg = &cur.config.virtual_servers[vs];
    let ssl_headers = match (&conn.tls, &cfg.tls) {
        (Some(t), Some(c)) if c.settings.add_ssl_headers => Some(rewrite::ssl_header_lines(t)),
        _ => None,
    };
    let mut client = Client {
        r: Reader::new(conn.r, Vec::with_capacity(IDLE_BUFFER)),
        w: conn.w,
        fd: conn.fd,
        ssl_headers,
        peer,
        local,
        canceller: Canceller::new(),
    };
    let mut s = Scratch {
        head: RequestHead::default(),
        resp: ResponseHead::default(),
        out: Vec::with_capacity(1024),
        node_head: Vec::with_capacity(1024),
        tried: Vec::new(),
        log_spare: None,
    };
    let mut first = true;
    loop {
        let view = &cur;
        let started = match read_head(view, vs, &mut client, &mut s.head, first).await {
            Ok(t) => t,
            Err(HeadEnd::Closed) => break,
            Err(HeadEnd::Park(keepalive_left)) => {
                return match (client.r.into_inner(), client.w) {
                    (ConnRead::Tcp(r), ConnWrite::Tcp(w)) => {
                        r.reunite(w).ok().map(|stream| Parked { stream, keepalive_left, view: view.clone(), vs })
                    }
                    _ => None,
                };
            }
            Err(HeadEnd::Bad(e)) => {
                let name = &view.config.virtual_servers[vs].name;
                log::info!("virtual server {name}: client {peer}: {} {}", e.status, e.reason);
                view.vs_stats(vs).error(crate::stats::VsError::BadRequest);
                let _ = respond_simple(
                    &mut client,
                    e.status,
                    "text/plain",
                    format!("{} {}\n", e.status, e.reason).as_bytes(),
                    true,
                    &mut s.out,
                )
                .await;
                break;
            }
        };
        first = false;
        match request(phases, view, vs, &mut client, &mut s, started).await {
            After::KeepAlive if !view.shard.shutdown.is_set() => client.r.shrink_idle(IDLE_BUFFER),
            After::KeepAlive | After::Close => break,
            After::Tunnel(nc, lease) => {
                tunnel(view, vs, client, nc, lease).await;
                return None;
            }
        }
        // The next request runs on the current configuration generation.
        if !view.is_current() {
            match view.follow(vs) {
                Some(next) => (cur, vs) = next,
                None => break,
            }
        }
    }
    let _ = client.w.shutdown().await;
    None
}

/// After `101 Switching Protocols` (WebSocket): a generic streaming relay
/// between the client and the node, starting with any bytes either side
/// sent right behind the heads.
async fn tunnel(
    view: &Rc<ShardView>,
    vs: usize,
    mut client: Client,
    mut nc: NodeConn,
    lease: Option<crate::pool::NodeLease>,
) {
    let cfg = &view.config.virtual_servers[vs];
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
    let end = crate::proto::relay::relay_halves(cr, client.w, nr, nc.w, &opts, &|| {}).await;
    log::debug!("virtual server {}: client {}: upgraded connection ended: {end:?}", cfg.name, client.peer);
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
                Ok(Some(())) => return Ok(started.unwrap_or_else(Instant::now)),
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

async fn respond_simple(
    client: &mut Client,
    status: u16,
    ctype: &str,
    body: &[u8],
    close: bool,
    out: &mut Vec<u8>,
) -> std::io::Result<()> {
    rewrite::write_simple(status, ctype, body, close, out);
    write_out(&mut client.w, out).await
}

/// Write the whole of `out` (handing the buffer to the kernel and back).
async fn write_out<W: AsyncWriteRent>(w: &mut W, out: &mut Vec<u8>) -> std::io::Result<()> {
    let buf = std::mem::take(out);
    let (res, buf) = w.write_all(buf).await;
    *out = buf;
    res.map(|_| ())
}

/// Why an exchange with a node did not produce a response head.
enum Failure {
    /// A reused keepalive connection turned out closed before any response
    /// byte: not a node failure. `written`: the head went out (the node may
    /// have read it before closing).
    Stale { written: bool },
    /// The node failed: status to answer with if no retry succeeds.
    Node { status: u16, reason: &'static str },
    /// The client failed or went away mid-request: give up, close.
    Client(&'static str),
    /// The request body broke the rules: answer with this status, close.
    BadBody(u16, &'static str),
}

/// Handle one request whose head is parsed in `s.head`.
async fn request<P: HttpPhases>(
    phases: &P,
    view: &Rc<ShardView>,
    vs_i: usize,
    client: &mut Client,
    s: &mut Scratch,
    started: Instant,
) -> After {
    let vs = &view.config.virtual_servers[vs_i];
    let mut ctx = Ctx::new(vs_i, vs.pool, client.peer, started);
    if let Some(al) = &vs.http.access_log {
        // The connection's log copy is reused request after request.
        let mut copy = s.log_spare.take().unwrap_or_default();
        copy.fill(client.r.data(), &s.head, al.format.needs_request_headers());
        ctx.log = Some(copy);
    }
    ctx.head_in = s.head.len as u64;
    let after = handle(phases, view, vs_i, client, s, &mut ctx).await;
    s.log_spare = ctx.log.take();
    count(view, &ctx, s);
    after
}

/// Add a finished request to the virtual server's and node's statistics.
fn count(view: &ShardView, ctx: &Ctx, s: &Scratch) {
    use crate::stats::VsError;
    let st = view.vs_stats(ctx.vs);
    st.request(ctx.status, ctx.started.elapsed().as_micros() as u64);
    st.bytes(ctx.head_in + ctx.bytes_in, ctx.head_out + ctx.bytes_out);
    if let Some(why) = ctx.error {
        st.error(match ctx.status {
            503 if ctx.node.is_none() => VsError::NoNode,
            502..=504 => VsError::NodeFailure,
            400..=499 => VsError::BadRequest,
            _ if why.starts_with("client") => VsError::ClientAbort,
            _ if ctx.node.is_some() => VsError::NodeFailure,
            _ => VsError::NoNode,
        });
    }
    if let (Some(n), None) = (ctx.node, ctx.explicit_addr) {
        if let Some(node) = view.pools.get(ctx.pool).and_then(|p| p.nodes.get(n)) {
            node.stats.request(s.node_head.len() as u64 + ctx.bytes_in, s.resp.len as u64 + ctx.bytes_out);
        }
    }
}

/// The body of [`request`], with its context.
async fn handle<P: HttpPhases>(
    phases: &P,
    view: &Rc<ShardView>,
    vs_i: usize,
    client: &mut Client,
    s: &mut Scratch,
    ctx: &mut Ctx,
) -> After {
    let vs = &view.config.virtual_servers[vs_i];
    let http = &vs.http;
    let req = Request { buf: client.r.data(), head: &s.head };
    if let Flow::Respond { status, content_type, body } = phases.request(view, ctx, &req).await {
        let framing = s.head.framing;
        client.r.consume(s.head.len);
        ctx.status = status;
        let close = framing != Framing::None || !s.head.keep_alive();
        rewrite::write_simple(status, content_type, &body, close, &mut s.out);
        return send_own_response(phases, view, client, s, ctx, close).await;
    }
    phases.pool(view, ctx, &req);
    let session = match super::persist::begin(view, ctx, req.buf, req.head) {
        Ok(s) => s,
        Err(refuse) => {
            let close = s.head.framing != Framing::None || !s.head.keep_alive();
            client.r.consume(s.head.len);
            ctx.error = Some("persistent node unavailable");
            return match refuse {
                super::persist::Refuse::Redirect(url) => {
                    ctx.status = 302;
                    rewrite::write_redirect(&url, close, &mut s.out);
                    send_own_response(phases, view, client, s, ctx, close).await
                }
                super::persist::Refuse::Close => {
                    phases.done(view, ctx);
                    After::Close
                }
            };
        }
    };
    let head = &s.head;
    let is_head = head.method(client.r.data()) == b"HEAD";
    let framing = head.framing;
    let client_minor = head.minor;
    let client_keep_alive = head.keep_alive();
    let expect_continue = head.expect_continue;
    let upgrade = head.upgrade;
    ctx.retryable =
        !http.all_requests_non_idempotent && is_idempotent(head.method(client.r.data())) && framing == Framing::None;
    if let (Framing::Length(n), Some(limit)) = (framing, http.max_body_size) {
        if n > limit {
            client.r.consume(head.len);
            return finish_error(phases, view, client, s, ctx, 413, "request body larger than max_body_size", true)
                .await;
        }
    }
    if framing == Framing::Chunked {
        // Check the chunked bytes already received before a node sees
        // anything, so a malformed body in the first packet never reaches
        // one. (Later bytes are checked as they stream.)
        let early = &client.r.data()[head.len..];
        let mut probe = crate::http::chunked::ChunkedFramer::default();
        if probe.advance(early, |_| {}).is_err() {
            client.r.consume(head.len);
            return finish_error(phases, view, client, s, ctx, 400, "invalid chunked request body", true).await;
        }
    }
    let mut add = RequestAdditions {
        forwarded_proto: vs.tls.as_ref().is_some_and(|t| t.settings.add_x_forwarded_proto).then_some("https"),
        ssl_headers: client.ssl_headers.as_deref(),
        ..Default::default()
    };
    phases.upstream_request(view, ctx, &mut add);
    s.node_head.clear();
    rewrite::write_request(client.r.data(), head, &add, &mut s.node_head);
    let url_hash = { LARD_HASH.hash_one(head.target(client.r.data())) };
    client.r.consume(head.len);

    let pool = view.pools[ctx.pool].clone();
    s.tried.clear();
    s.tried.resize(pool.nodes.len(), false);
    let mut last = (503u16, "no node available");
    let mut stale_retry_used = false;
    let mut body_sent = false;
    let body_opts = BodyOpts {
        idle: vs.client_idle_timeout,
        dechunk: false,
        limit: http.max_body_size,
        buffer: vs.buffer_size,
        splice: None,
    };
    if let Some(addr) = ctx.explicit_addr {
        let forward_continue = expect_continue && client_minor == 1;
        let req = DirectRequest { framing, is_head, forward_continue, client_keep_alive, client_minor, upgrade };
        // Rare (a hook's explicit address): boxed, so its state does not
        // enlarge every connection's task.
        return Box::pin(direct(phases, view, client, s, ctx, addr, &body_opts, req)).await;
    }
    if pool.cfg.algorithm.uses_lard() {
        ctx.url_hash = Some(url_hash);
    }
    let queue_deadline = Instant::now() + pool.cfg.queue_timeout;
    // After a stale keepalive connection: the same node, on a new connection.
    let mut fresh_retry: Option<usize> = None;
    loop {
        let forced = fresh_retry.take().and_then(|n| {
            let mut others = vec![true; s.tried.len()];
            others[n] = false;
            pool.pick(&others, None)
        });
        let force_fresh = forced.is_some();
        let Some(pick) = forced.or_else(|| phases.node(&pool, ctx, &s.tried)) else {
            // Every usable node is at max_connections_per_node: wait in the
            // shard's bounded queue for a slot.
            if pool.has_full_node(&s.tried) {
                if pool.wait_for_slot(&s.tried, queue_deadline).await {
                    continue;
                }
                last = (503, "every node at max_connections_per_node (queue full or queue_timeout)");
            }
            break;
        };
        let ni = pick.node;
        ctx.favoured_node.get_or_insert(ni);
        s.tried[ni] = true;
        ctx.attempts += 1;
        let idle = if pick.single || force_fresh {
            None
        } else {
            // A retryable request survives a stale connection (it is
            // retried once on a new one), so it skips the liveness peek
            // on connections used within the last second.
            let check_after = if ctx.retryable { UNCHECKED_REUSE } else { Duration::ZERO };
            pool.nodes[ni].idle.take(pool.cfg.node_keepalive_timeout, check_after)
        };
        let (lease, mut nc) = match idle {
            Some(c) => (pool.lease(pick), c),
            // A PROXY header names one client, so such node connections
            // serve only this request (never pooled).
            None => match connect_node(
                &pool,
                pick,
                vs.connect_timeout.unwrap_or(pool.cfg.max_connect_time),
                (client.peer, client.local),
            )
            .await
            {
                Ok((lease, conn)) => (lease, NodeConn::new(conn, IDLE_BUFFER)),
                Err(_) => {
                    last = (502, "could not connect to a node");
                    continue;
                }
            },
        };
        ctx.reused_connection = nc.reused;
        ctx.node = Some(ni);
        let body_opts_here =
            BodyOpts { splice: splice_both(vs.splice, client, &nc).then_some((client.fd, nc.fd)), ..body_opts };
        let sent = exchange(
            client,
            &mut nc,
            &mut s.node_head,
            framing,
            &body_opts_here,
            &mut s.resp,
            is_head,
            expect_continue && client_minor == 1,
            pool.cfg.max_reply_time,
            http.max_header_size.max(8192),
            ctx,
        )
        .await;
        let (body_complete, reply_start) = match sent {
            Ok(x) => x,
            // A stale keepalive connection: once, the same node on a new
            // connection, when nothing reached the node or the request may
            // be repeated anyway.
            Err(Failure::Stale { written }) if !stale_retry_used && !body_sent && (!written || ctx.retryable) => {
                stale_retry_used = true;
                s.tried[ni] = false;
                ctx.attempts -= 1;
                fresh_retry = Some(ni);
                continue;
            }
            Err(Failure::Stale { .. }) => {
                pool.record_failure(ni, "connection closed before any response");
                last = (502, "node closed the connection");
                body_sent |= framing != Framing::None;
                if ctx.retryable {
                    continue;
                }
                break;
            }
            Err(Failure::Node { status, reason }) => {
                pool.record_failure(ni, reason);
                last = (status, reason);
                body_sent |= framing != Framing::None;
                if ctx.retryable {
                    continue;
                }
                break;
            }
            Err(Failure::Client(why)) => {
                log::debug!("virtual server {}: client {}: {why}", vs.name, client.peer);
                ctx.error = Some(why);
                phases.done(view, ctx);
                return After::Close;
            }
            Err(Failure::BadBody(status, why)) => {
                return finish_error(phases, view, client, s, ctx, status, why, true).await;
            }
        };
        // A final response head is in s.resp.
        pool.record_response_time(ni, reply_start.elapsed());
        lease.set_answered();
        match phases.response(view, ctx, &s.resp).await {
            Verdict::NodeFailure(reason) => {
                pool.record_failure(ni, reason);
                if ctx.retryable && pool.has_candidate(&s.tried) {
                    last = (s.resp.status, reason);
                    continue;
                }
            }
            Verdict::Accept => {
                pool.record_success(ni);
                if let Some(h) = ctx.url_hash {
                    pool.lard_record(h, ni);
                }
                if let Some(session) = &session {
                    super::persist::learn(view, session, nc.r.data(), &s.resp, ni, ctx);
                }
            }
        }
        let after =
            forward_response(view, vs_i, client, &mut nc, s, ctx, body_complete, client_keep_alive, client_minor).await;
        // Tunnel only when the whole request was read: a 101 that arrived
        // while request body bytes were in flight would lose them.
        if s.resp.status == 101 && upgrade && body_complete && matches!(after.0, After::Close) && ctx.error.is_none() {
            phases.done(view, ctx);
            return After::Tunnel(nc, Some(lease));
        }
        let reusable = after.1 && pool.cfg.proxy_protocol.is_none();
        if reusable && pool.nodes[ni].keeps_idle.get() {
            nc.r.shrink_idle(IDLE_BUFFER);
            pool.nodes[ni].idle.put(nc, pool.cfg.max_idle_per_node);
        }
        drop(lease);
        phases.done(view, ctx);
        return after.0;
    }
    // No node answered.
    let close = !client_keep_alive || framing != Framing::None;
    finish_error(phases, view, client, s, ctx, last.0, last.1, close).await
}

/// What [`direct`] needs to know about the request.
struct DirectRequest {
    framing: Framing,
    is_head: bool,
    forward_continue: bool,
    client_keep_alive: bool,
    client_minor: u8,
    upgrade: bool,
}

/// C7 forward to an explicit address set by a hook: one fresh connection,
/// no balancing, retries, passive health or pooling (the address is not a
/// node); failures answer 502 (connect, invalid or early close) or 504
/// (no reply within the pool's `max_reply_time`).
#[allow(clippy::too_many_arguments)]
async fn direct<P: HttpPhases>(
    phases: &P,
    view: &Rc<ShardView>,
    client: &mut Client,
    s: &mut Scratch,
    ctx: &mut Ctx,
    addr: SocketAddr,
    body_opts: &BodyOpts,
    req: DirectRequest,
) -> After {
    let vs = &view.config.virtual_servers[ctx.vs];
    let pool = &view.pools[ctx.pool];
    let close_on_error = !req.client_keep_alive || req.framing != Framing::None;
    ctx.attempts = 1;
    let timeout = vs.connect_timeout.unwrap_or(pool.cfg.max_connect_time);
    let stream = match monoio::time::timeout(timeout, TcpStream::connect_addr(addr)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(_)) | Err(_) => {
            return finish_error(
                phases,
                view,
                client,
                s,
                ctx,
                502,
                "could not connect to the explicit address",
                close_on_error,
            )
            .await
        }
    };
    let _ = stream.set_nodelay(true);
    let mut nc = NodeConn::new(Split::tcp(stream), IDLE_BUFFER);
    let max_head = vs.http.max_header_size.max(8192);
    let sent = exchange(
        client,
        &mut nc,
        &mut s.node_head,
        req.framing,
        body_opts,
        &mut s.resp,
        req.is_head,
        req.forward_continue,
        pool.cfg.max_reply_time,
        max_head,
        ctx,
    )
    .await;
    let complete = match sent {
        Ok((complete, _)) => complete,
        Err(Failure::Stale { .. }) => {
            return finish_error(phases, view, client, s, ctx, 502, "the explicit address closed the connection", true)
                .await
        }
        Err(Failure::Node { status, reason }) => {
            return finish_error(phases, view, client, s, ctx, status, reason, true).await
        }
        Err(Failure::BadBody(status, why)) => {
            return finish_error(phases, view, client, s, ctx, status, why, true).await
        }
        Err(Failure::Client(why)) => {
            ctx.error = Some(why);
            phases.done(view, ctx);
            return After::Close;
        }
    };
    let _ = phases.response(view, ctx, &s.resp).await;
    let (after, _) =
        forward_response(view, ctx.vs, client, &mut nc, s, ctx, complete, req.client_keep_alive, req.client_minor)
            .await;
    phases.done(view, ctx);
    if s.resp.status == 101 && req.upgrade && complete && matches!(after, After::Close) && ctx.error.is_none() {
        return After::Tunnel(nc, None);
    }
    after
}

/// Answer with shoal's own error response (or close, per `error_action`).
#[allow(clippy::too_many_arguments)]
async fn finish_error<P: HttpPhases>(
    phases: &P,
    view: &Rc<ShardView>,
    client: &mut Client,
    s: &mut Scratch,
    ctx: &mut Ctx,
    status: u16,
    why: &'static str,
    close: bool,
) -> After {
    let vs = &view.config.virtual_servers[ctx.vs];
    ctx.status = status;
    ctx.error = Some(why);
    log::info!("virtual server {}: client {}: {status} ({why})", vs.name, client.peer);
    let is_proxy_error = matches!(status, 502..=504);
    if is_proxy_error && vs.http.error_action == ErrorAction::Close {
        phases.done(view, ctx);
        return After::Close;
    }
    let default_body;
    let (ctype, body): (&str, &[u8]) = match (&vs.http.error_page, is_proxy_error) {
        (Some(page), true) => ("text/html", page.as_slice()),
        _ => {
            default_body = format!("{status} {}\n", crate::http::reason(status));
            ("text/plain", default_body.as_bytes())
        }
    };
    rewrite::write_simple(status, ctype, body, close, &mut s.out);
    send_own_response(phases, view, client, s, ctx, close).await
}

/// Send shoal's own response (in `s.out`) and finish the request; the
/// connection stays open unless `close` or the write failed.
async fn send_own_response<P: HttpPhases>(
    phases: &P,
    view: &Rc<ShardView>,
    client: &mut Client,
    s: &mut Scratch,
    ctx: &mut Ctx,
    close: bool,
) -> After {
    ctx.head_out = s.out.len() as u64;
    let ok = write_out(&mut client.w, &mut s.out).await.is_ok();
    phases.done(view, ctx);
    if close || !ok {
        After::Close
    } else {
        After::KeepAlive
    }
}

/// Send the request (head, then body while watching for the response) and
/// read the node's final response head into `resp`. Returns whether the
/// whole request body was sent.
#[allow(clippy::too_many_arguments)]
async fn exchange(
    client: &mut Client,
    nc: &mut NodeConn,
    node_head: &mut Vec<u8>,
    framing: Framing,
    body_opts: &BodyOpts,
    resp: &mut ResponseHead,
    is_head: bool,
    forward_continue: bool,
    reply: std::time::Duration,
    max_head: usize,
    ctx: &mut Ctx,
) -> Result<(bool, Instant), Failure> {
    if let Err(_e) = write_out(&mut nc.w, node_head).await {
        return Err(if nc.reused {
            Failure::Stale { written: false }
        } else {
            Failure::Node { status: 502, reason: "write to node failed" }
        });
    }
    // A reused connection that closes with no answer is taken as stale (and
    // retried) only when no body went out after the head: a node that read
    // a body and then died may have acted on it.
    let reused = nc.reused && framing == Framing::None;
    if framing == Framing::None {
        let start = Instant::now();
        read_response_head(
            &mut nc.r,
            &mut client.w,
            resp,
            is_head,
            forward_continue,
            Some(start + reply),
            max_head,
            reused,
        )
        .await?;
        return Ok((true, start));
    }
    // With a body, max_reply_time runs from the end of the body: a slow but
    // steady upload is the client's time (bounded by client_idle_timeout
    // per read), not a node failure.
    let mut body_fut = pin!(body::forward(&mut client.r, &mut nc.w, framing, body_opts));
    let mut head_fut =
        pin!(read_response_head(&mut nc.r, &mut client.w, resp, is_head, forward_continue, None, max_head, reused));
    let first = monoio::select! {
        b = &mut body_fut => Ok(b),
        h = &mut head_fut => Err(h),
    };
    let reply_timeout = || Failure::Node { status: 504, reason: "no reply within max_reply_time" };
    match first {
        Ok(Ok(n)) => {
            ctx.bytes_in = n;
            let start = Instant::now();
            monoio::time::timeout_at((start + reply).into(), &mut head_fut).await.map_err(|_| reply_timeout())??;
            Ok((true, start))
        }
        Ok(Err(BodyError::Sink(_))) => {
            // The node stopped reading; it may have answered (e.g. 413).
            let start = Instant::now();
            monoio::time::timeout_at((start + reply).into(), &mut head_fut).await.map_err(|_| reply_timeout())??;
            Ok((false, start))
        }
        Ok(Err(BodyError::TooLarge)) => Err(Failure::BadBody(413, "request body larger than max_body_size")),
        Ok(Err(BodyError::Chunked(_))) => Err(Failure::BadBody(400, "invalid chunked request body")),
        Ok(Err(BodyError::SourceIdle)) => {
            Err(Failure::BadBody(408, "request body not received within client_idle_timeout"))
        }
        Ok(Err(BodyError::Truncated | BodyError::SourceIo(_))) => {
            Err(Failure::Client("client closed during the request body"))
        }
        // The head won the race. Both may have completed in the same round
        // (select! picks among ready branches at random), and a node cannot
        // answer a request before it has read it all, so check the body
        // once more: only a body still unsent means the node answered
        // early, when the rest of the body is never read and both
        // connections close after this response.
        Err(h) => {
            let body = std::future::poll_fn(|cx| Poll::Ready(body_fut.as_mut().poll(cx))).await;
            let complete = match body {
                Poll::Ready(Ok(n)) => {
                    ctx.bytes_in = n;
                    true
                }
                _ => false,
            };
            h.map(|_| (complete, Instant::now()))
        }
    }
}

/// Read a node's response head, forwarding `100 Continue` to the client
/// when asked and skipping other interim responses.
#[allow(clippy::too_many_arguments)]
async fn read_response_head<W: AsyncWriteRent>(
    nr: &mut Reader<ConnRead>,
    client_w: &mut W,
    resp: &mut ResponseHead,
    is_head: bool,
    forward_continue: bool,
    deadline: Option<Instant>,
    max_head: usize,
    reused: bool,
) -> Result<(), Failure> {
    let mut got_any = false;
    loop {
        if !nr.data().is_empty() {
            got_any = true;
            match response::parse(nr.data(), max_head, is_head, resp) {
                Ok(Some(())) if (100..200).contains(&resp.status) && resp.status != 101 => {
                    if resp.status == 100 && forward_continue {
                        nr.forward(client_w, resp.len).await.map_err(|_| Failure::Client("client write failed"))?;
                    } else {
                        nr.consume(resp.len);
                    }
                    continue;
                }
                Ok(Some(())) => return Ok(()),
                Ok(None) => {}
                Err(_) => return Err(Failure::Node { status: 502, reason: "invalid response from node" }),
            }
        }
        let len = nr.data().len();
        if len * 2 > nr.capacity() {
            nr.reserve_total((len * 2).max(IDLE_BUFFER).min(max_head + 1));
        }
        let filled = match deadline {
            Some(d) => monoio::time::timeout_at(d.into(), nr.fill()).await,
            None => Ok(nr.fill().await),
        };
        match filled {
            Err(_) => return Err(Failure::Node { status: 504, reason: "no reply within max_reply_time" }),
            Ok(Ok(0)) | Ok(Err(_)) if reused && !got_any => return Err(Failure::Stale { written: true }),
            Ok(Ok(0)) => {
                return Err(Failure::Node {
                    status: 502,
                    reason: "node closed the connection before a complete response",
                })
            }
            Ok(Err(_)) => return Err(Failure::Node { status: 502, reason: "node connection reset" }),
            Ok(Ok(_)) => {}
        }
    }
}

/// Write the response head and stream the body to the client. Returns what
/// to do with the client connection and whether the node connection can
/// be reused.
#[allow(clippy::too_many_arguments)]
async fn forward_response(
    view: &Rc<ShardView>,
    vs_i: usize,
    client: &mut Client,
    nc: &mut NodeConn,
    s: &mut Scratch,
    ctx: &mut Ctx,
    request_complete: bool,
    client_keep_alive: bool,
    client_minor: u8,
) -> (After, bool) {
    let vs = &view.config.virtual_servers[vs_i];
    let resp = &s.resp;
    ctx.status = resp.status;
    // A virtual server that a reconfiguration removed or changed closes
    // its connections after their current response, and says so.
    let close = !client_keep_alive
        || client_minor == 0
        || !request_complete
        || resp.framing == Framing::UntilClose
        || resp.status == 101
        || view.shard.shutdown.is_set()
        || (!view.is_current() && view.follow(vs_i).is_none());
    let dechunk = client_minor == 0 && resp.framing == Framing::Chunked;
    let changes =
        ResponseChanges { close, dechunk, via: vs.http.add_via.then_some("shoal"), extra: ctx.set_cookie.as_deref() };
    if let (Some(lc), Some(al)) = (ctx.log.as_deref_mut(), vs.http.access_log.as_ref()) {
        if al.format.needs_response_headers() {
            let buf = nc.r.data();
            lc.response_headers =
                resp.headers.iter().map(|h| (buf[h.name.clone()].to_vec(), buf[h.value.clone()].to_vec())).collect();
        }
    }
    rewrite::write_response(nc.r.data(), resp, &changes, &mut s.out);
    nc.r.consume(resp.len);
    let node_keep_alive = resp.node_keep_alive();
    let mut framing = resp.framing;
    ctx.head_out = s.out.len() as u64;
    // A small body that arrived with the head goes out in the same send:
    // one segment to the client instead of two.
    if let Framing::Length(n) = framing {
        if n <= COALESCE_BODY as u64 && nc.r.data().len() as u64 >= n {
            s.out.extend_from_slice(&nc.r.data()[..n as usize]);
            nc.r.consume(n as usize);
            ctx.bytes_out = n;
            framing = Framing::None;
        }
    }
    if write_out(&mut client.w, &mut s.out).await.is_err() {
        return (After::Close, false);
    }
    let opts = BodyOpts {
        idle: vs.server_idle_timeout,
        dechunk,
        limit: None,
        buffer: vs.buffer_size,
        splice: splice_both(vs.splice, client, nc).then_some((nc.fd, client.fd)),
    };
    match body::forward(&mut nc.r, &mut client.w, framing, &opts).await {
        Ok(n) => {
            // Plus a body already sent with the head.
            ctx.bytes_out += n;
            let reusable = node_keep_alive && request_complete && nc.r.data().is_empty();
            (if close { After::Close } else { After::KeepAlive }, reusable)
        }
        Err(BodyError::Sink(_)) => {
            ctx.error = Some("client went away during the response");
            (After::Close, false)
        }
        Err(e) => {
            let reason = match e {
                BodyError::SourceIdle => "node idle past server_idle_timeout during the response body",
                BodyError::Chunked(_) => "invalid chunked response body",
                _ => "node closed during the response body",
            };
            ctx.error = Some(reason);
            if let Some(ni) = ctx.node {
                view.pools[ctx.pool].record_failure(ni, reason);
            }
            (After::Close, false)
        }
    }
}
