//! One request/response exchange as every module sees it ([`Txn`]): the
//! request and response heads, the routing decisions (pool, required
//! node, explicit address), what happened (node, attempts, status, bytes,
//! error), and the connection's facts ([`ConnInfo`]).
//!
//! A connection owns one `Txn` for its whole life and reuses it request
//! after request ([`Txn::begin`] resets the per-request parts, keeping the
//! heads' capacity), so a keepalive request allocates nothing for it.

use super::module::ResponseSource;
use crate::error::Error;
use crate::http::request::RequestHead;
use crate::http::response::ResponseHead;
use crate::runtime::shard::ShardView;
use std::cell::OnceCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Instant;

/// What is known of a client connection for as long as it lives.
#[derive(Debug)]
pub struct ConnInfo {
    pub client: SocketAddr,
    /// The address the client connected to.
    pub local: SocketAddr,
    /// The TLS session, on a TLS virtual server.
    pub tls: Option<crate::tls::stream::Negotiated>,
    /// Header lines describing the TLS session, rendered once per
    /// connection by the first request that needs them (the SSL headers).
    pub ssl_lines: OnceCell<Vec<u8>>,
}

/// One request on its way through the phases. See the module docs.
pub struct Txn {
    /// The configuration generation this request runs on.
    pub view: Rc<ShardView>,
    /// The virtual server, an index into `view.config.virtual_servers`.
    pub vs: usize,
    pub conn: Rc<ConnInfo>,
    /// When the first byte of the request head arrived.
    pub started: Instant,
    /// The request head; modules may edit it until it is written to a node
    /// (after the `node_request` phase).
    pub request: RequestHead,
    /// The response head: a node's (from the `response` phase on) or
    /// shoal's own. What it holds before that is undefined.
    pub response: ResponseHead,
    /// Where the response came from (so far).
    pub source: ResponseSource,
    /// The pool the request goes to; the virtual server's unless a module
    /// changes it (request or route phase).
    pub pool: usize,
    /// A node the request must go to if it can (C7 named node, session
    /// persistence); the node choice honours it while the node can serve.
    pub required_node: Option<usize>,
    /// Forward to this address instead of a pool node (C7, as a forward
    /// proxy does): no balancing, retries, health or pooling apply.
    pub explicit_addr: Option<SocketAddr>,
    /// Session persistence chosen for this request (by a rule): `Some(None)`
    /// for none, `Some(Some(c))` for class `c` instead of the pool's.
    pub persistence_class: Option<Option<usize>>,
    /// The session key for a keyed class (`universal`), set by a rule.
    pub persistence_key: Option<Vec<u8>>,
    /// The node the balancer picked first (`%F`).
    pub favoured_node: Option<usize>,
    /// The node that served the request (`%n`).
    pub node: Option<usize>,
    /// Hash of the request target, for LARD.
    pub url_hash: Option<u64>,
    /// Nodes tried, including the one that served.
    pub attempts: u32,
    /// May the request go to another node once bytes of it reached one?
    /// Set before the request phase (idempotent method, no body, not
    /// overridden by the virtual server); a module may change it.
    pub retryable: bool,
    /// The status sent to the client (0: none).
    pub status: u16,
    /// Request body bytes received from the client.
    pub bytes_in: u64,
    /// Response body bytes sent to the client.
    pub bytes_out: u64,
    /// Bytes of the request head as received, and of the response head as
    /// sent (or of shoal's whole own response).
    pub head_in: u64,
    pub head_out: u64,
    /// The node connection had served requests before.
    pub reused_connection: bool,
    /// Why the request failed, if it did.
    pub error: Option<Error>,
    /// Bytes to send first on a new node connection (the PROXY protocol
    /// header). A request with a preamble gets a fresh node connection of
    /// its own, never pooled afterwards.
    pub preamble: Vec<u8>,
    /// Bytes of the request head as written to the last node tried.
    pub node_head_len: u64,
    /// What rules asked of the content cache for this request.
    pub cache: CacheAsk,
    /// A module will read the node's response body (it says so in its
    /// `response` hook), so no module nearer the client may divert it
    /// ([`super::module::Verdict::Divert`]).
    pub response_body_wanted: bool,
    /// The service level class timing this request (an index into
    /// `config.service_levels`): the virtual server's, or a rule's choice.
    pub service_level: Option<usize>,
    /// The bandwidth class pacing the response (an index into
    /// `config.bandwidth_classes`): the virtual server's, or a rule's.
    pub bandwidth_class: Option<usize>,
    /// The rules' say over compression (`http.compress.enable` and
    /// `disable`); `None` leaves it to the virtual server's
    /// `[compression]`.
    pub compress: Option<bool>,
    /// A module nearer the node changes the response body's bytes (a
    /// content coding): its length is not the node's, which a module
    /// storing it (the cache) must not expect.
    pub response_transformed: bool,
    /// A request with no client, started by a module
    /// ([`super::pipeline::spawn_background`]): its head is a request
    /// that has been through the `request` phase already, which is not
    /// run again, and its response goes nowhere.
    pub background: bool,
    /// What the module that started a background request hands to its
    /// own hooks in it (taken by that module).
    pub handoff: Option<Box<dyn std::any::Any>>,
}

/// The rules' say over the content cache for one request
/// (`http.cache.disable`, `http.cache.enable`, `http.cache.setkey`).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CacheAsk {
    /// Neither answered from nor stored in the cache.
    pub disabled: bool,
    /// Stored and looked up apart from other requests for the same URL
    /// with another key (as `Vary` does).
    pub key: Option<Vec<u8>>,
}

impl Txn {
    /// A connection's exchange, before its first request.
    pub fn new(view: Rc<ShardView>, vs: usize, conn: Rc<ConnInfo>) -> Txn {
        let pool = view.config.virtual_servers[vs].pool;
        Txn {
            view,
            vs,
            conn,
            started: Instant::now(),
            request: RequestHead::default(),
            response: ResponseHead::default(),
            source: ResponseSource::None,
            pool,
            required_node: None,
            explicit_addr: None,
            persistence_class: None,
            persistence_key: None,
            favoured_node: None,
            node: None,
            url_hash: None,
            attempts: 0,
            retryable: false,
            status: 0,
            bytes_in: 0,
            bytes_out: 0,
            head_in: 0,
            head_out: 0,
            reused_connection: false,
            error: None,
            preamble: Vec::new(),
            node_head_len: 0,
            cache: CacheAsk::default(),
            response_body_wanted: false,
            service_level: None,
            bandwidth_class: None,
            compress: None,
            response_transformed: false,
            background: false,
            handoff: None,
        }
    }

    /// Start the next request (its head is already in `self.request`),
    /// on generation `view`'s virtual server `vs`.
    pub fn begin(&mut self, view: &Rc<ShardView>, vs: usize, started: Instant) {
        if !Rc::ptr_eq(&self.view, view) {
            self.view = view.clone();
        }
        self.vs = vs;
        self.started = started;
        self.source = ResponseSource::None;
        self.pool = view.config.virtual_servers[vs].pool;
        self.required_node = None;
        self.explicit_addr = None;
        self.persistence_class = None;
        self.persistence_key = None;
        self.favoured_node = None;
        self.node = None;
        self.url_hash = None;
        self.attempts = 0;
        self.retryable = false;
        self.status = 0;
        self.bytes_in = 0;
        self.bytes_out = 0;
        self.head_in = self.request.len as u64;
        self.head_out = 0;
        self.reused_connection = false;
        self.error = None;
        self.preamble.clear();
        self.node_head_len = 0;
        self.cache.disabled = false;
        self.cache.key = None;
        self.response_body_wanted = false;
        self.service_level = view.config.virtual_servers[vs].service_level;
        self.bandwidth_class = view.config.virtual_servers[vs].bandwidth_class;
        self.compress = None;
        self.response_transformed = false;
        self.background = false;
        self.handoff = None;
    }

    /// The client's address.
    pub fn client(&self) -> SocketAddr {
        self.conn.client
    }

    /// The virtual server's configuration.
    pub fn vs_config(&self) -> &crate::config::VirtualServer {
        &self.view.config.virtual_servers[self.vs]
    }

    /// The name of node `i` of the request's pool, if there is one.
    pub fn node_name(&self, i: Option<usize>) -> Option<&str> {
        i.and_then(|i| self.view.pools.get(self.pool)?.nodes.get(i)).map(|n| n.name.as_str())
    }
}
