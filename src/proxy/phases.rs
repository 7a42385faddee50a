//! The phases of an HTTP request and the hooks that run in them.
//!
//! The driver (`pipeline.rs`) owns the order and the retry loop; modules
//! that change what happens to a request (rules, cache, persistence, SLM,
//! shaping) implement [`HttpPhases`] hooks instead of editing the driver.
//! Every hook has a documented default; [`Builtin`] is the behaviour of a
//! virtual server with no such modules. See docs/phases.md for the order
//! and the retry edges.
//!
//! Hooks are shard-local (no `Send` bounds) and get the per-request
//! [`Ctx`]. Async hooks may wait (a rule reading more of the request); only
//! their own connection waits.
#![allow(async_fn_in_trait)] // shard-local: futures never cross threads

use crate::http::request::RequestHead;
use crate::http::response::ResponseHead;
use crate::http::rewrite::RequestAdditions;
use crate::pool::{Pick, ShardPool};
use crate::runtime::shard::ShardView;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Instant;

/// Everything the hooks and the access log know about one request.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub vs: usize,
    pub client: SocketAddr,
    /// When the first byte of the request head arrived.
    pub started: Instant,
    /// Pool the request goes to (set by [`HttpPhases::pool`]).
    pub pool: usize,
    /// A node the request must go to if it can (C7, named node); a hook
    /// sets it, the default node choice honours it.
    pub required_node: Option<usize>,
    /// Forward to this address instead of a pool node (C7, forward proxy);
    /// a hook sets it. No balancing, retries, health or pooling apply.
    pub explicit_addr: Option<SocketAddr>,
    /// The node the balancer would have picked first (`%F`).
    pub favoured_node: Option<usize>,
    /// The node that served the request (`%n`).
    pub node: Option<usize>,
    /// Hash of the request target, for LARD.
    pub url_hash: Option<u64>,
    /// Nodes tried, including the one that served.
    pub attempts: u32,
    /// May the request be retried on another node after bytes of it were
    /// written? (Idempotent method, no body, not overridden.)
    pub retryable: bool,
    pub status: u16,
    /// Response body bytes sent to the client.
    pub bytes_out: u64,
    /// Request body bytes received from the client.
    pub bytes_in: u64,
    /// Bytes of the request head as received, and of the response head
    /// (or of shoal's whole own response) as sent (statistics).
    pub head_in: u64,
    pub head_out: u64,
    pub reused_connection: bool,
    /// Why shoal answered itself or failed, for the log.
    pub error: Option<&'static str>,
    /// Copies kept for the access log; only when the virtual server logs.
    pub log: Option<Box<LogCopy>>,
    /// `Set-Cookie` lines to add to the response (persistence).
    pub set_cookie: Option<Vec<u8>>,
}

/// What the access log needs from a request after its buffer is reused.
#[derive(Debug, Clone, Default)]
pub struct LogCopy {
    pub wall_start: Option<std::time::SystemTime>,
    pub request_line: Vec<u8>,
    pub method: std::ops::Range<usize>,
    pub target: std::ops::Range<usize>,
    pub request_headers: Vec<(Vec<u8>, Vec<u8>)>,
    pub response_headers: Vec<(Vec<u8>, Vec<u8>)>,
}

impl LogCopy {
    /// Copy the request line (and the headers, if `headers`) of `head`,
    /// replacing what this copy held (its buffers are reused).
    pub fn fill(&mut self, buf: &[u8], head: &RequestHead, headers: bool) {
        let start = head.method.start;
        let line_end = buf[start..head.len].iter().position(|&c| c == b'\n').map_or(head.len, |p| start + p);
        let line = &buf[start..line_end];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        self.wall_start = Some(std::time::SystemTime::now());
        self.request_line.clear();
        self.request_line.extend_from_slice(line);
        self.method = 0..head.method.len();
        self.target = head.target.start - start..head.target.end - start;
        self.request_headers.clear();
        if headers {
            self.request_headers
                .extend(head.headers.iter().map(|h| (buf[h.name.clone()].to_vec(), buf[h.value.clone()].to_vec())));
        }
        self.response_headers.clear();
    }
}

impl Ctx {
    pub fn new(vs: usize, pool: usize, client: SocketAddr, started: Instant) -> Ctx {
        Ctx {
            vs,
            client,
            started,
            pool,
            required_node: None,
            explicit_addr: None,
            favoured_node: None,
            node: None,
            url_hash: None,
            attempts: 0,
            retryable: false,
            status: 0,
            bytes_out: 0,
            bytes_in: 0,
            head_in: 0,
            head_out: 0,
            reused_connection: false,
            error: None,
            log: None,
            set_cookie: None,
        }
    }
}

/// A hook's decision about a request.
#[derive(Debug)]
pub enum Flow {
    /// Go on to the next phase.
    Continue,
    /// Answer the client directly with this status and body; no node is
    /// contacted.
    Respond { status: u16, content_type: &'static str, body: Vec<u8> },
}

/// A hook's verdict on a node's response head.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Forward it to the client.
    Accept,
    /// The node failed (counts towards marking it dead); the driver retries
    /// elsewhere when the request is retryable, else forwards the response.
    NodeFailure(&'static str),
}

/// A request as the hooks see it: its head and the buffer it points into.
pub struct Request<'a> {
    pub buf: &'a [u8],
    pub head: &'a RequestHead,
}

pub trait HttpPhases {
    /// After the head is parsed and validated, before anything else.
    /// Default: continue. (Request rules, cache lookups.)
    async fn request(&self, _shard: &Rc<ShardView>, _ctx: &mut Ctx, _req: &Request<'_>) -> Flow {
        Flow::Continue
    }

    /// Choose the pool. Default: the virtual server's pool (`ctx.pool` as
    /// set by the driver). (Rules' `pool.use`.)
    fn pool(&self, _shard: &Rc<ShardView>, _ctx: &mut Ctx, _req: &Request<'_>) {}

    /// Choose a node not yet `tried`. Default: `ctx.required_node` when
    /// it can take the request (active or draining: a draining node keeps
    /// its sessions), else the pool's balancer (with LARD on
    /// `ctx.url_hash`, and preferring nodes with an idle connection for
    /// round robin and random). (Persistence classes.)
    fn node(&self, pool: &ShardPool, ctx: &mut Ctx, tried: &[bool]) -> Option<Pick> {
        if let Some(r) = ctx.required_node.filter(|&r| r < tried.len() && !tried[r]) {
            if let Some(pick) = pool.pick_persistent(r) {
                return Some(pick);
            }
        }
        pool.pick(tried, ctx.url_hash).map(|p| pool.prefer_warm(p, tried))
    }

    /// What to add to the request head for the node. Default: the virtual
    /// server's `add_x_forwarded_for`, `add_cluster_client_ip`, `add_via`.
    fn upstream_request(&self, view: &Rc<ShardView>, ctx: &Ctx, add: &mut RequestAdditions<'_>) {
        let http = &view.config.virtual_servers[ctx.vs].http;
        let ip = ctx.client.ip().to_canonical();
        add.x_forwarded_for = http.add_x_forwarded_for.then_some(ip);
        add.cluster_client_ip = http.add_cluster_client_ip.then_some(ip);
        add.via = http.add_via.then_some("shoal");
    }

    /// A node's final response head arrived. Default: a 503 is a node
    /// failure (C5); anything else is accepted. (Response rules.)
    async fn response(&self, _shard: &Rc<ShardView>, _ctx: &mut Ctx, resp: &ResponseHead) -> Verdict {
        if resp.status == 503 {
            Verdict::NodeFailure("node answered 503")
        } else {
            Verdict::Accept
        }
    }

    /// The request is finished (answered, failed or abandoned). Default:
    /// write the access-log line, if the virtual server has an access log.
    /// (SLM and statistics will hook here too.)
    fn done(&self, view: &Rc<ShardView>, ctx: &Ctx) {
        write_access_log(view, ctx);
    }
}

/// Format the request's access-log line into the shard's buffer.
pub fn write_access_log(view: &Rc<ShardView>, ctx: &Ctx) {
    let (Some(buf), Some(lc)) = (view.access_log(ctx.vs), ctx.log.as_deref()) else { return };
    let vs = &view.config.virtual_servers[ctx.vs];
    let Some(al) = vs.http.access_log.as_ref() else { return };
    let pool = &view.pools[ctx.pool];
    let explicit = ctx.explicit_addr.map(|a| a.to_string());
    let name = |i: Option<usize>| i.and_then(|i| pool.nodes.get(i)).map(|n| n.name.as_str());
    let req_h: Vec<(&[u8], &[u8])> = lc.request_headers.iter().map(|(a, b)| (a.as_slice(), b.as_slice())).collect();
    let resp_h: Vec<(&[u8], &[u8])> = lc.response_headers.iter().map(|(a, b)| (a.as_slice(), b.as_slice())).collect();
    let rec = crate::log::access::Record {
        client: ctx.client,
        time: lc.wall_start.unwrap_or_else(std::time::SystemTime::now),
        duration: ctx.started.elapsed(),
        request_line: &lc.request_line,
        method: &lc.request_line[lc.method.clone()],
        target: &lc.request_line[lc.target.clone()],
        status: ctx.status,
        bytes: ctx.bytes_out,
        node: name(ctx.node).or(explicit.as_deref()),
        required_node: name(ctx.required_node),
        favoured_node: name(ctx.favoured_node),
        virtual_server: &vs.name,
        pool: &pool.cfg.name,
        error: ctx.error,
        request_headers: &req_h,
        response_headers: &resp_h,
    };
    buf.borrow_mut().push_with(|out| al.format.write(&rec, out));
}

/// The hooks of a plain HTTP virtual server: every default.
pub struct Builtin;

impl HttpPhases for Builtin {}
