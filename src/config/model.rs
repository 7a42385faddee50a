//! Validated runtime configuration: no serde, names already resolved to
//! indices, defaults applied. Everything here is `Send + Sync` and is shared
//! read-only by every shard through an `Arc<Config>`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub use super::raw::{
    Algorithm, ClientAuth, ErrorAction, FailureAction, MonitorType, NodeState, PersistenceType, Protocol, Shards,
};

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Where it came from: a path, or `<embedded default>` / `<command line>`.
    pub source: String,
    /// Every file read (the main file and its includes), for reload later.
    pub files: Vec<PathBuf>,
    pub global: Global,
    pub virtual_servers: Vec<VirtualServer>,
    pub pools: Vec<Pool>,
    pub responders: Vec<Responder>,
    pub persistence: Vec<Persistence>,
    pub monitors: Vec<Monitor>,
    /// Rules, referenced by virtual servers by index.
    pub rules: Vec<Rule>,
    /// The REST API listener, when configured.
    pub api: Option<Api>,
    /// The content cache's settings (`[cache]`, or its defaults).
    pub cache: CacheSettings,
    /// `[rate_classes.NAME]`, in name order.
    pub rate_classes: Vec<RateClass>,
    /// `[bandwidth_classes.NAME]`, in name order.
    pub bandwidth_classes: Vec<BandwidthClass>,
    /// `[service_levels.NAME]`, in name order.
    pub service_levels: Vec<ServiceLevel>,
    /// `[events]`, or its defaults.
    pub events: EventSettings,
    /// `[event_handlers.NAME]`, in name order, then the built-in "log all"
    /// handler when `[events] log` names a file.
    pub event_handlers: Vec<EventHandler>,
    /// `[cluster]`: this instance is a member of a cluster on etcd.
    pub cluster: Option<ClusterSettings>,
    /// `[traffic_ip_groups.NAME]`, in name order.
    pub traffic_ip_groups: Vec<TrafficIpGroup>,
}

/// `[cluster]` (docs/cluster.md).
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterSettings {
    pub etcd: Vec<String>,
    pub member: String,
    /// Starts and ends with '/'.
    pub prefix: String,
    pub read_only: bool,
    /// Whole seconds.
    pub lease_ttl: Duration,
    pub connect_timeout: Duration,
}

/// `[traffic_ip_groups.NAME]` (docs/cluster.md).
#[derive(Debug, Clone, PartialEq)]
pub struct TrafficIpGroup {
    pub name: String,
    pub addresses: Vec<std::net::IpAddr>,
    pub members: Vec<String>,
    pub mode: TipMode,
    pub interface: String,
}

/// How a traffic IP group's addresses are hosted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TipMode {
    /// Each address on one member.
    Single,
    /// Every address on every member; each keeps its share of the flows.
    Multi,
}

impl TipMode {
    pub fn name(self) -> &'static str {
        match self {
            TipMode::Single => "single",
            TipMode::Multi => "multi",
        }
    }
}

/// `[events]` (docs/events.md).
#[derive(Debug, Clone, PartialEq)]
pub struct EventSettings {
    /// Events kept for the API.
    pub keep: usize,
    pub cert_warning_days: u32,
}

/// `[event_handlers.NAME]` (docs/events.md).
#[derive(Debug, Clone, PartialEq)]
pub struct EventHandler {
    pub name: String,
    /// Type names or patterns.
    pub events: Vec<String>,
    /// The least level handled.
    pub level: crate::events::Level,
    pub queue: usize,
    pub action: EventAction,
}

#[derive(Debug, Clone, PartialEq)]
pub enum EventAction {
    Log {
        path: PathBuf,
    },
    Syslog {
        target: SyslogTarget,
        facility: u8,
    },
    /// `http://host:port/path`.
    Webhook {
        host: String,
        port: u16,
        path: String,
        timeout: std::time::Duration,
    },
    Program {
        path: PathBuf,
        args: Vec<String>,
        timeout: std::time::Duration,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum SyslogTarget {
    Udp(std::net::SocketAddr),
    Unix(PathBuf),
}

/// `[bandwidth_classes.NAME]` (docs/shaping.md).
#[derive(Debug, Clone, PartialEq)]
pub struct BandwidthClass {
    pub name: String,
    pub bits_per_second: u64,
    /// Each connection gets the rate (else the class's connections share it).
    pub per_connection: bool,
    /// In a cluster, each member gets the rate (else the members share it
    /// by demand, K5).
    pub per_member: bool,
}

/// `[rate_classes.NAME]` (docs/shaping.md).
#[derive(Debug, Clone, PartialEq)]
pub struct RateClass {
    pub name: String,
    /// 0: no limit of that kind.
    pub max_per_second: u32,
    pub max_per_minute: u32,
    pub max_queue: u32,
    pub max_wait: Duration,
    pub status: u16,
    pub max_contexts: usize,
}

/// `[service_levels.NAME]` (docs/shaping.md).
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceLevel {
    pub name: String,
    pub response_time: Duration,
    /// Percent conforming below which the class is in warning, serious.
    pub warning: u8,
    pub serious: u8,
}

/// `[cache]` (docs/cache.md).
#[derive(Debug, Clone, PartialEq)]
pub struct CacheSettings {
    /// Bytes of memory for objects, all shards together.
    pub memory: u64,
    pub max_object: u64,
    pub default_lifetime: Duration,
    pub max_variants: usize,
    pub max_vary_size: usize,
    pub verbose: bool,
    pub policy: crate::cache::evict::PolicyKind,
    pub fill_wait: Duration,
    /// The disk tier: its directory and size (`None`: memory only).
    pub disk: Option<(std::sync::Arc<PathBuf>, u64)>,
}

/// A rule: its text in the rule language (a declarative rule's is the
/// script it stands for), and where it came from, for errors.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub name: String,
    pub source: Vec<u8>,
    pub origin: RuleOrigin,
}

#[derive(Debug, Clone, PartialEq)]
pub enum RuleOrigin {
    /// A rule file.
    File(PathBuf),
    /// Inline `source` in a configuration file, starting at that line.
    Inline { file: String, line: usize },
    /// `conditions` and `actions` in a configuration file.
    Declarative { file: String, line: usize },
}

/// What one rule run may spend, and the shared data store's size.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RuleLimits {
    pub instructions: u64,
    pub memory: usize,
    pub body_limit: usize,
    pub data_size: usize,
}

/// `[api]` (I1): the REST API and statistics listener.
#[derive(Debug, Clone, PartialEq)]
pub struct Api {
    pub listen: SocketAddr,
    /// (user, password hash).
    pub users: Vec<(String, String)>,
    /// Certificate and key files (required off loopback).
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Where files uploaded through the API are stored.
    pub files_dir: PathBuf,
}

/// An active health monitor (D1).
#[derive(Debug, Clone, PartialEq)]
pub struct Monitor {
    pub name: String,
    pub kind: MonitorType,
    pub interval: Duration,
    pub timeout: Duration,
    pub failures: u32,
    pub successes: u32,
    pub verbose: bool,
    /// http/https: method, path, Host header (default: the node's host).
    pub method: String,
    pub path: String,
    pub host: Option<String>,
    /// http/https: accepted status codes, inclusive.
    pub status: (u16, u16),
    /// http/https: a pattern the body must match; send_expect: the reply's.
    pub pattern: Option<String>,
    /// send_expect: bytes written first.
    pub send: Vec<u8>,
    /// program: the executable and its arguments.
    pub program: Option<PathBuf>,
    pub args: Vec<String>,
}

/// A session persistence class (E1).
#[derive(Debug, Clone, PartialEq)]
pub struct Persistence {
    pub name: String,
    pub kind: PersistenceType,
    pub max_entries: usize,
    /// `universal`, `named_node`: where the key comes from.
    pub source: Option<KeySource>,
    /// `app_cookie`: the application's cookie; `node_cookie`: the node's.
    pub cookie: String,
    /// `transparent`, `app_cookie`: the keyed hash's key (random per
    /// process when not configured).
    pub secret: Option<String>,
    pub on_failure: FailureAction,
    pub failure_url: Option<String>,
    /// A new session's node by rendezvous hash of its key over the pool's
    /// nodes (key-based classes; docs/persistence.md).
    pub hash: bool,
}

/// Where a persistence key is read from in a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// A header (name lower-cased).
    Header(String),
    Cookie(String),
    /// A query-string parameter.
    Query(String),
    /// The Nth segment of the path, from 1.
    Path(usize),
    /// What a rule sets with `connection.setPersistenceKey` (none: no
    /// session).
    Rule,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Global {
    pub shards: Shards,
    pub shutdown_timeout: Duration,
    pub log_level: log::LevelFilter,
    /// How often a shard publishes changed balancing counters to the others.
    pub mesh_interval: Duration,
    pub ring_entries: u32,
    pub rules: RuleLimits,
}

#[derive(Debug, Clone, PartialEq)]
pub struct VirtualServer {
    pub name: String,
    pub listen: Vec<SocketAddr>,
    pub protocol: Protocol,
    /// Index into [`Config::pools`].
    pub pool: usize,
    pub max_connections: u32,
    /// Open connections allowed per client IP address (`None` = no limit).
    pub max_connections_per_client: Option<u32>,
    /// Overrides the pool's `max_connect_time` when set.
    pub connect_timeout: Option<Duration>,
    pub client_idle_timeout: Duration,
    pub server_idle_timeout: Duration,
    /// Written to the client on accept (`server_first_banner` only).
    pub banner: Option<Vec<u8>>,
    pub buffer_size: usize,
    /// Splice large bodies between sockets instead of copying them.
    pub splice: bool,
    pub backlog: u32,
    /// Shard indices that accept for this virtual server; `None` = all.
    pub shards: Option<Vec<usize>>,
    pub http: HttpSettings,
    /// TLS termination, when the listener speaks TLS.
    pub tls: Option<TlsServer>,
    /// `ssl_passthrough`: server name pattern → pool index, in order.
    pub sni_pools: Vec<(String, usize)>,
    /// Rules (indexes into `Config::rules`) for each request and response.
    pub request_rules: Vec<usize>,
    pub response_rules: Vec<usize>,
    /// Generic protocols: the rules run on every read, not only the first.
    pub rules_every_read: bool,
    /// Layer-7 direct server return for some paths (M1).
    pub dsr: Option<Dsr>,
    /// Requests use the content cache (docs/cache.md).
    pub cache: bool,
    /// Index into `Config::rate_classes`: every request waits its turn.
    pub rate_class: Option<usize>,
    /// Index into `Config::bandwidth_classes`: every response is paced.
    pub bandwidth_class: Option<usize>,
    /// Index into `Config::service_levels`: every request is timed.
    pub service_level: Option<usize>,
    /// `[compression]`; `None`: compressed only when a rule asks.
    pub compression: Option<Compression>,
    /// `[http2]`; `None`: HTTP/1.1 only.
    pub http2: Option<Http2>,
    /// `protocol = "udp"`: its flow settings.
    pub udp: Option<Udp>,
}

/// A UDP virtual server's flows (docs/udp.md).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Udp {
    pub mode: UdpMode,
    /// A flow with no datagram either way for this long ends; in
    /// `one_response` mode, a node that has not answered by then failed.
    pub timeout: Duration,
    /// The largest datagram relayed; larger ones are dropped and counted.
    pub max_datagram: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UdpMode {
    /// One answer per client datagram; the flow ends when each has its
    /// answer (DNS and the like).
    OneResponse,
    /// The flow lasts until it idles past `timeout` (media, games).
    Streaming,
}

/// `[virtual_servers.NAME.http2]` (docs/http2.md): the HTTP/2 settings
/// shoal advertises and the limits it enforces on a client connection.
#[derive(Debug, Clone, PartialEq)]
pub struct Http2 {
    /// Offered by ALPN on a TLS listener.
    pub alpn: bool,
    /// Prior knowledge accepted on a cleartext listener.
    pub h2c: bool,
    pub max_concurrent_streams: u32,
    pub initial_window_size: u32,
    pub connection_window_size: u32,
    pub max_frame_size: u32,
    pub max_header_list_size: u32,
    pub header_table_size: u32,
    /// Streams a client may reset before shoal accepts them (rapid reset).
    pub max_pending_resets: usize,
    /// Streams shoal may reset for the client's errors.
    pub max_error_resets: usize,
    /// Frames that carry no request progress (PING, SETTINGS, PRIORITY,
    /// empty DATA, small WINDOW_UPDATE, RST_STREAM): a token bucket.
    pub control_frames_per_second: u32,
    pub control_frames_burst: u32,
    pub max_send_buffer: usize,
    /// A stream whose client gives it no window for this long is reset.
    pub send_timeout: Duration,
    /// A connection with no open stream for this long is closed.
    pub idle_timeout: Duration,
}

/// `[virtual_servers.NAME.compression]` (docs/shaping.md).
#[derive(Debug, Clone, PartialEq)]
pub struct Compression {
    pub enabled: bool,
    /// Codings offered, in order of preference.
    pub codings: Vec<crate::http::coding::Coding>,
    /// Media types compressed, in lower case: `type/subtype`, or `type/*`.
    pub types: Vec<String>,
    /// Smallest `Content-Length` compressed (a body of unknown length is).
    pub min_size: u64,
    pub levels: crate::compress::encoder::Levels,
}

impl Default for Compression {
    /// The settings of a virtual server with no `[compression]` whose
    /// rule calls `http.compress.enable()`.
    fn default() -> Self {
        use crate::http::coding::Coding;
        Compression {
            enabled: true,
            codings: vec![Coding::Zstd, Coding::Brotli, Coding::Gzip],
            types: DEFAULT_COMPRESSED_TYPES.iter().map(|t| t.to_string()).collect(),
            min_size: 1024,
            levels: Default::default(),
        }
    }
}

/// Media types compressed by default: text and the structured text of
/// the web; images, audio, video and archives are compressed already.
pub const DEFAULT_COMPRESSED_TYPES: &[&str] = &[
    "text/*",
    "application/javascript",
    "application/json",
    "application/xml",
    "application/xhtml+xml",
    "application/rss+xml",
    "application/atom+xml",
    "application/wasm",
    "image/svg+xml",
];

/// `[virtual_servers.NAME.dsr]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Dsr {
    pub paths: Vec<String>,
    /// The pool probed (index); the virtual server's when not given.
    pub pool: Option<usize>,
    pub probe: String,
    pub scheme: String,
    pub status: u16,
    /// Node (as configured) → its public host\[:port\].
    pub public: Vec<(String, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsVersion {
    Tls12,
    Tls13,
}

/// TLS termination on a virtual server. The acceptor built from it is
/// the generation's (`runtime::generation::Tls`).
#[derive(Debug, Clone, PartialEq)]
pub struct TlsServer {
    pub certificates: Vec<CertFiles>,
    pub versions: Vec<TlsVersion>,
    pub alpn: Vec<Vec<u8>>,
    pub client_auth: ClientAuth,
    pub client_ca: Option<PathBuf>,
    pub session_cache_size: usize,
    pub session_tickets: bool,
    /// Pick the cipher suite by shoal's order (`cipher_order = "server"`,
    /// the default), not the client's.
    pub server_cipher_order: bool,
    /// HTTP: `X-Forwarded-Proto: https` to nodes.
    pub add_x_forwarded_proto: bool,
    /// HTTP: `SSL-Protocol`, `SSL-Cipher`, `SSL-Server-Name`,
    /// `SSL-Client-Certificate` to nodes.
    pub add_ssl_headers: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub names: Vec<String>,
}

/// Encryption to a pool's nodes. The connector built from it is the
/// generation's (`runtime::generation::Tls`).
#[derive(Debug, Clone, PartialEq)]
pub struct PoolTls {
    pub ca: Option<PathBuf>,
    pub verify: bool,
    pub server_name: Option<String>,
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    pub versions: Vec<TlsVersion>,
    pub alpn: Vec<Vec<u8>>,
}

/// Settings of `protocol = "http"` virtual servers.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpSettings {
    pub max_header_size: usize,
    pub max_headers: usize,
    pub max_uri_length: usize,
    /// `None` = unlimited.
    pub max_body_size: Option<u64>,
    pub header_read_timeout: Duration,
    pub client_keepalive_timeout: Duration,
    pub add_x_forwarded_for: bool,
    pub add_cluster_client_ip: bool,
    pub add_via: bool,
    pub all_requests_non_idempotent: bool,
    pub error_action: ErrorAction,
    /// Body of shoal's own 502/503/504 responses (`error_file`), loaded at
    /// configuration time.
    pub error_page: Option<bytes::Bytes>,
    /// `access_log` and its compiled `access_log_format`.
    pub access_log: Option<AccessLog>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AccessLog {
    pub path: PathBuf,
    pub format: crate::log::access::Format,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Pool {
    pub name: String,
    /// `[pools.NAME.autoscale]` (J1).
    pub autoscale: Option<Autoscale>,
    pub algorithm: Algorithm,
    pub nodes: Vec<Node>,
    pub node_connection_attempts: u32,
    pub node_fail_time: Duration,
    pub max_connect_time: Duration,
    /// HTTP: time allowed for a node's response head after the request.
    pub max_reply_time: Duration,
    /// HTTP: idle keepalive connections kept per node, per shard.
    pub max_idle_per_node: usize,
    /// HTTP: idle keepalive connections older than this are not reused.
    pub node_keepalive_timeout: Duration,
    /// PROXY protocol header sent first on every node connection.
    pub proxy_protocol: Option<crate::net::proxy_protocol::Version>,
    /// Concurrent connections (generic) or requests (HTTP) per node across
    /// all shards; `None` = unlimited.
    pub max_connections_per_node: Option<u32>,
    /// Connections or requests waiting for a node slot, per shard.
    pub max_queue: usize,
    pub queue_timeout: Duration,
    /// Encrypt to the nodes.
    pub tls: Option<PoolTls>,
    /// Speak HTTP/2 to the nodes (by ALPN `h2` with TLS, else with prior
    /// knowledge).
    pub http2: bool,
    /// Index into [`Config::persistence`].
    pub persistence: Option<usize>,
    /// Indices into [`Config::monitors`].
    pub monitors: Vec<usize>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// As written in the configuration (`host:port`), for logs.
    pub name: String,
    pub addr: SocketAddr,
    pub weight: u32,
    pub state: NodeState,
}

/// A built-in demo node: greets each connection with a line, then echoes.
#[derive(Debug, Clone, PartialEq)]
pub struct Responder {
    pub name: String,
    pub listen: SocketAddr,
    pub greeting: String,
}

impl Config {
    /// If `new` differs from `self` only in node states, the changes as
    /// `(pool, node, new state)`; `None` if anything else differs.
    pub fn node_state_changes(&self, new: &Config) -> Option<Vec<(usize, usize, NodeState)>> {
        let mut normalised = new.clone();
        let mut changes = Vec::new();
        if normalised.pools.len() != self.pools.len() {
            return None;
        }
        for (pi, (np, op)) in normalised.pools.iter_mut().zip(&self.pools).enumerate() {
            if np.nodes.len() != op.nodes.len() {
                return None;
            }
            for (ni, (nn, on)) in np.nodes.iter_mut().zip(&op.nodes).enumerate() {
                if nn.state != on.state {
                    changes.push((pi, ni, nn.state));
                    nn.state = on.state;
                }
            }
        }
        (normalised == *self).then_some(changes)
    }

    pub fn pool(&self, name: &str) -> Option<usize> {
        self.pools.iter().position(|p| p.name == name)
    }

    /// A one-screen summary for `shoal check` and the startup log.
    pub fn summary(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let _ = writeln!(s, "configuration {} ({} file(s))", self.source, self.files.len().max(1));
        let shards = match &self.global.shards {
            Shards::Auto => "auto (one per CPU)".to_string(),
            Shards::Count(n) => n.to_string(),
            Shards::Cpus(c) => format!("{c:?}"),
        };
        let _ = writeln!(s, "  shards: {shards}");
        if let Some(c) = &self.cluster {
            let _ = writeln!(
                s,
                "  cluster: member {} over etcd {} (prefix {}{})",
                c.member,
                c.etcd.join(", "),
                c.prefix,
                if c.read_only { ", read-only" } else { "" }
            );
        }
        for vs in &self.virtual_servers {
            let listen: Vec<String> = vs.listen.iter().map(|a| a.to_string()).collect();
            let _ = writeln!(
                s,
                "  virtual server {}: {} on {} -> pool {}",
                vs.name,
                vs.protocol.name(),
                listen.join(", "),
                self.pools[vs.pool].name
            );
        }
        for p in &self.pools {
            let nodes: Vec<String> = p
                .nodes
                .iter()
                .map(|n| {
                    let mut t = n.name.clone();
                    if n.weight != 1 {
                        let _ = write!(t, " w{}", n.weight);
                    }
                    if n.state != NodeState::Active {
                        let _ = write!(t, " ({})", n.state.name());
                    }
                    t
                })
                .collect();
            let _ = writeln!(s, "  pool {}: {} over {}", p.name, p.algorithm.name(), nodes.join(", "));
        }
        for r in &self.responders {
            let _ = writeln!(s, "  responder {} on {}", r.name, r.listen);
        }
        for r in &self.rate_classes {
            let mut limits = Vec::new();
            if r.max_per_second > 0 {
                limits.push(format!("{}/s", r.max_per_second));
            }
            if r.max_per_minute > 0 {
                limits.push(format!("{}/min", r.max_per_minute));
            }
            let limits = if limits.is_empty() { "no limit".to_string() } else { limits.join(", ") };
            let _ = writeln!(s, "  rate class {}: {limits}, queue {} up to {:?}", r.name, r.max_queue, r.max_wait);
        }
        for b in &self.bandwidth_classes {
            let shared = if b.per_connection { "per connection" } else { "shared" };
            let _ = writeln!(s, "  bandwidth class {}: {} bit/s, {shared}", b.name, b.bits_per_second);
        }
        for l in &self.service_levels {
            let _ = writeln!(
                s,
                "  service level {}: within {:?}, warning below {}%, serious below {}%",
                l.name, l.response_time, l.warning, l.serious
            );
        }
        s
    }
}

/// `[pools.NAME.autoscale]` (docs/autoscaling.md).
#[derive(Debug, Clone, PartialEq)]
pub struct Autoscale {
    pub enabled: bool,
    pub driver: PathBuf,
    pub credentials: String,
    pub response_time: Duration,
    pub scale_up_below: u8,
    pub scale_down_above: u8,
    pub hysteresis: Duration,
    pub refractory: Duration,
    pub min_nodes: u32,
    pub max_nodes: u32,
    pub imageid: String,
    pub sizeid: String,
    pub name_prefix: String,
    pub port: u16,
    pub drain_time: Duration,
}
