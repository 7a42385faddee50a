//! The serde mirror of the TOML file: every table rejects unknown keys, and
//! every default is written here once, beside the key it belongs to.
//!
//! Values that can be checked on their own (durations, addresses, enums) are
//! checked while deserialising, so their errors carry the value's position.
//! Cross-references (virtual server → pool) are checked in `validate.rs`,
//! which is why reference fields keep their span.

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;
use toml::Spanned;

/// One configuration file as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Further files, or directories whose `*.toml` files are read in name
    /// order; paths are relative to the including file.
    #[serde(default)]
    pub include: Vec<Spanned<String>>,
    pub global: Option<Spanned<RawGlobal>>,
    #[serde(default)]
    pub virtual_servers: BTreeMap<Spanned<String>, RawVirtualServer>,
    #[serde(default)]
    pub pools: BTreeMap<Spanned<String>, RawPool>,
    #[serde(default)]
    pub responders: BTreeMap<Spanned<String>, RawResponder>,
    /// Session persistence classes, referenced by pools.
    #[serde(default)]
    pub persistence: BTreeMap<Spanned<String>, RawPersistence>,
    /// Active health monitors, referenced by pools.
    #[serde(default)]
    pub monitors: BTreeMap<Spanned<String>, RawMonitor>,
    /// Rules (F1–F3), referenced by virtual servers.
    #[serde(default)]
    pub rules: BTreeMap<Spanned<String>, Spanned<RawRule>>,
    /// The REST API and statistics listener (I1, I2).
    pub api: Option<Spanned<RawApi>>,
    /// The content cache's settings (G1-G8); virtual servers turn it on.
    pub cache: Option<Spanned<RawCache>>,
    /// Rate classes (H2), named by virtual servers and rules.
    #[serde(default)]
    pub rate_classes: BTreeMap<Spanned<String>, RawRateClass>,
    /// Bandwidth classes (H1), named by virtual servers and rules.
    #[serde(default)]
    pub bandwidth_classes: BTreeMap<Spanned<String>, RawBandwidthClass>,
    /// Service level monitoring classes (H3), named by virtual servers and
    /// rules.
    #[serde(default)]
    pub service_levels: BTreeMap<Spanned<String>, RawServiceLevel>,
    /// The event log and what the process keeps of events (I4).
    pub events: Option<Spanned<RawEvents>>,
    /// Event handlers (I4): which events go where.
    #[serde(default)]
    pub event_handlers: BTreeMap<Spanned<String>, Spanned<RawEventHandler>>,
    /// This instance as a member of a cluster on etcd (K1-K5).
    pub cluster: Option<Spanned<RawCluster>>,
    /// Traffic IP groups (K3, K4): addresses the cluster's members raise.
    #[serde(default)]
    pub traffic_ip_groups: BTreeMap<Spanned<String>, Spanned<RawTrafficIpGroup>>,
}

impl RawConfig {
    /// Remove the configuration objects a cluster shares (everything the
    /// REST API edits, and traffic IP groups; `cluster::SHARED_KINDS`): a
    /// member's own file keeps only its own settings once the cluster's
    /// objects are known (docs/cluster.md).
    pub fn clear_shared_objects(&mut self) {
        self.virtual_servers.clear();
        self.pools.clear();
        self.responders.clear();
        self.persistence.clear();
        self.monitors.clear();
        self.rules.clear();
        self.rate_classes.clear();
        self.bandwidth_classes.clear();
        self.service_levels.clear();
        self.event_handlers.clear();
        self.traffic_ip_groups.clear();
    }
}

/// `[cluster]` (docs/cluster.md).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCluster {
    /// etcd's client endpoints, `http://host:port`.
    pub etcd: Spanned<Vec<String>>,
    /// This instance's name in the cluster.
    pub member: Spanned<String>,
    /// The key prefix under which the cluster keeps everything.
    #[serde(default = "default_cluster_prefix")]
    pub prefix: Spanned<String>,
    /// A member that may not change the cluster's configuration.
    #[serde(default)]
    pub read_only: bool,
    /// How long a member whose lease is not renewed stays in the cluster.
    #[serde(default = "default_lease_ttl")]
    pub lease_ttl: Spanned<Dur>,
    /// How long a start waits for etcd before serving its own file.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: Spanned<Dur>,
}

fn default_cluster_prefix() -> Spanned<String> {
    Spanned::new(0..0, "/shoal/".into())
}
fn default_lease_ttl() -> Spanned<Dur> {
    Spanned::new(0..0, Dur(Duration::from_secs(3)))
}
fn default_connect_timeout() -> Spanned<Dur> {
    Spanned::new(0..0, Dur(Duration::from_secs(5)))
}

/// `[traffic_ip_groups.NAME]` (docs/cluster.md).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTrafficIpGroup {
    /// The addresses, IPv4 or IPv6, each raised as a host address.
    pub addresses: Spanned<Vec<String>>,
    /// The members that host them.
    pub members: Spanned<Vec<String>>,
    /// "single" (each address on one member) or "multi" (every address on
    /// every member, each keeping its share of the connections).
    #[serde(default = "default_tip_mode")]
    pub mode: Spanned<String>,
    /// The network interface the addresses are raised on.
    pub interface: Spanned<String>,
}

fn default_tip_mode() -> Spanned<String> {
    Spanned::new(0..0, "single".into())
}

/// `[events]` (docs/events.md).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEvents {
    /// The built-in "log all" handler's file (JSON lines).
    pub log: Option<Spanned<String>>,
    /// Events kept for the API.
    #[serde(default = "default_events_keep")]
    pub keep: Spanned<u32>,
    /// Certificates expiring within this many days raise an event.
    #[serde(default = "default_cert_warning_days")]
    pub cert_warning_days: Spanned<u32>,
}

fn default_events_keep() -> Spanned<u32> {
    Spanned::new(0..0, 1000)
}
fn default_cert_warning_days() -> Spanned<u32> {
    Spanned::new(0..0, 30)
}

/// `[event_handlers.NAME]` (docs/events.md): the keys after `action`
/// belong to one action each.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEventHandler {
    /// Type names or patterns (`node.*`, `*`).
    pub events: Spanned<Vec<Spanned<String>>>,
    /// The least level handled.
    pub level: Option<Spanned<String>>,
    /// `log`, `syslog`, `webhook` or `program`.
    pub action: Spanned<String>,
    /// Events waiting for this handler; more are dropped (and counted).
    #[serde(default = "default_handler_queue")]
    pub queue: Spanned<u32>,
    /// log: the file; program: the program.
    pub path: Option<Spanned<String>>,
    /// syslog: `udp:HOST:PORT` or `unix:/dev/log`.
    pub address: Option<Spanned<String>>,
    /// syslog: the facility's name.
    pub facility: Option<Spanned<String>>,
    /// webhook: `http://host:port/path`.
    pub url: Option<Spanned<String>>,
    /// program: its arguments.
    pub args: Option<Spanned<Vec<String>>>,
    /// webhook and program: how long one delivery may take.
    pub timeout: Option<Spanned<Dur>>,
}

fn default_handler_queue() -> Spanned<u32> {
    Spanned::new(0..0, 1000)
}

/// `[bandwidth_classes.NAME]` (docs/shaping.md).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBandwidthClass {
    /// Bits per second: `"50Mbit"`, `"2Gbit"`.
    pub max_rate: Spanned<String>,
    /// Each connection gets `max_rate` (true), or all of the class's
    /// connections share it (false).
    #[serde(default)]
    pub per_connection: bool,
    /// In a cluster: each member gets `max_rate` (true), or the members
    /// share it by demand (false).
    #[serde(default)]
    pub per_member: bool,
}

/// `[rate_classes.NAME]` (docs/shaping.md). 0 for a limit: none.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRateClass {
    #[serde(default = "zero_u32")]
    pub max_per_second: Spanned<u32>,
    #[serde(default = "zero_u32")]
    pub max_per_minute: Spanned<u32>,
    /// Requests that may wait in one queue.
    #[serde(default = "default_rate_queue")]
    pub max_queue: Spanned<u32>,
    /// Longest wait a request is given; one that would wait longer is
    /// refused.
    #[serde(default = "default_rate_wait")]
    pub max_wait: Spanned<Dur>,
    /// The status of a refused request.
    #[serde(default = "default_rate_status")]
    pub status: Spanned<u16>,
    /// Contexts (`rate.use(class, key)`) with a queue of their own.
    #[serde(default = "default_rate_contexts")]
    pub max_contexts: Spanned<u32>,
}

fn zero_u32() -> Spanned<u32> {
    Spanned::new(0..0, 0)
}
fn zero_u8() -> Spanned<u8> {
    Spanned::new(0..0, 0)
}
fn default_rate_queue() -> Spanned<u32> {
    Spanned::new(0..0, 10_000)
}
fn default_rate_wait() -> Spanned<Dur> {
    Spanned::new(0..0, Dur(Duration::from_secs(30)))
}
fn default_rate_status() -> Spanned<u16> {
    Spanned::new(0..0, 503)
}
fn default_rate_contexts() -> Spanned<u32> {
    Spanned::new(0..0, 100_000)
}

/// `[service_levels.NAME]` (docs/shaping.md).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServiceLevel {
    /// A request conforms when its first response byte came within this.
    #[serde(default = "default_slm_time")]
    pub response_time: Spanned<Dur>,
    /// Below this share of conforming requests (percent), the class is in
    /// warning.
    #[serde(default = "default_slm_warning")]
    pub warning: Spanned<u8>,
    /// Below this share, it is serious.
    #[serde(default = "zero_u8")]
    pub serious: Spanned<u8>,
}

fn default_slm_time() -> Spanned<Dur> {
    Spanned::new(0..0, Dur(Duration::from_secs(1)))
}
fn default_slm_warning() -> Spanned<u8> {
    Spanned::new(0..0, 50)
}

/// `[cache]`: the process's content cache. Defaults are written here.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCache {
    /// Memory for cached objects, all shards together.
    #[serde(default = "default_cache_memory")]
    pub memory: Spanned<Size>,
    /// Largest object stored.
    #[serde(default = "default_cache_max_object")]
    pub max_object: Spanned<Size>,
    /// Freshness of a response with no explicit lifetime.
    #[serde(default = "default_cache_lifetime")]
    pub default_lifetime: Dur,
    /// Variants kept per URL (`Vary`, `http.cache.setkey`).
    #[serde(default = "default_cache_variants")]
    pub max_variants: Spanned<u32>,
    /// Bytes of `Vary` data (field names and request values) per object.
    #[serde(default = "default_cache_vary_size")]
    pub max_vary_size: Spanned<u32>,
    /// Add `X-Cache-Info` to responses (the source's `webcache!verbose`).
    #[serde(default)]
    pub verbose: bool,
    /// Eviction: `s3fifo` (scan-resistant) or `lru`.
    #[serde(default = "default_cache_policy")]
    pub policy: Spanned<String>,
    /// How long a request waits for another's fill of the same object
    /// (collapsed forwarding) before it goes to the node itself.
    #[serde(default = "default_cache_fill_wait")]
    pub fill_wait: Dur,
    /// The disk tier's directory (relative to this file).
    pub disk_dir: Option<Spanned<String>>,
    /// Bytes of files the disk tier may keep, all shards together.
    #[serde(default = "default_cache_disk_size")]
    pub disk_size: Spanned<Size>,
}

fn default_cache_disk_size() -> Spanned<Size> {
    Spanned::new(0..0, Size(0))
}

fn default_cache_memory() -> Spanned<Size> {
    Spanned::new(0..0, Size(256 << 20))
}
fn default_cache_max_object() -> Spanned<Size> {
    Spanned::new(0..0, Size(16 << 20))
}
fn default_cache_lifetime() -> Dur {
    Dur(Duration::from_secs(600))
}
fn default_cache_variants() -> Spanned<u32> {
    Spanned::new(0..0, 16)
}
fn default_cache_vary_size() -> Spanned<u32> {
    Spanned::new(0..0, 1024)
}
fn default_cache_policy() -> Spanned<String> {
    Spanned::new(0..0, "s3fifo".into())
}
fn default_cache_fill_wait() -> Dur {
    Dur(Duration::from_secs(30))
}

/// `[api]`: the control-plane listener.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawApi {
    #[serde(default = "default_api_listen")]
    pub listen: Spanned<String>,
    /// User name → password hash (`shoal passwd` makes one).
    pub users: Spanned<BTreeMap<String, Spanned<String>>>,
    /// Certificate and key files; required unless `listen` is loopback.
    pub tls: Option<Spanned<RawApiTls>>,
    /// Where files uploaded through the API go (relative to this file).
    #[serde(default = "default_api_files")]
    pub files_dir: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawApiTls {
    pub cert: Spanned<String>,
    pub key: Spanned<String>,
}

fn default_api_listen() -> Spanned<String> {
    Spanned::new(0..0, "127.0.0.1:9070".to_owned())
}
fn default_api_files() -> String {
    "files".to_owned()
}

/// `[monitors.NAME]`: an active health monitor (D1).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMonitor {
    #[serde(rename = "type")]
    pub kind: MonitorType,
    #[serde(default = "default_monitor_interval")]
    pub interval: Dur,
    #[serde(default = "default_monitor_interval")]
    pub timeout: Dur,
    /// Consecutive failed tests that mark a node down.
    #[serde(default = "default_monitor_failures")]
    pub failures: Spanned<u32>,
    /// Consecutive passed tests that bring a down node back.
    #[serde(default = "default_monitor_successes")]
    pub successes: Spanned<u32>,
    /// Log every test, not only changes.
    #[serde(default)]
    pub verbose: bool,
    // http / https
    #[serde(default = "default_monitor_method")]
    pub method: String,
    #[serde(default = "default_monitor_path")]
    pub path: String,
    pub host: Option<String>,
    /// `"200-399"`, `"200"`.
    #[serde(default = "default_monitor_status")]
    pub status: Spanned<String>,
    pub body_regex: Option<Spanned<String>>,
    // send_expect
    pub send: Option<String>,
    pub expect: Option<Spanned<String>>,
    // program
    pub program: Option<Spanned<String>>,
    #[serde(default)]
    pub args: Vec<String>,
}

fn default_monitor_interval() -> Dur {
    Dur(Duration::from_secs(3))
}
fn default_monitor_failures() -> Spanned<u32> {
    Spanned::new(0..0, 3)
}
fn default_monitor_successes() -> Spanned<u32> {
    Spanned::new(0..0, 2)
}
fn default_monitor_method() -> String {
    "GET".into()
}
fn default_monitor_path() -> String {
    "/".into()
}
fn default_monitor_status() -> Spanned<String> {
    Spanned::new(0..0, "200-399".into())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MonitorType {
    /// A TCP connection is accepted.
    Tcp,
    /// An HTTP request gets an expected status (and body).
    Http,
    /// The same over TLS.
    Https,
    /// A TLS handshake completes.
    Tls,
    /// Bytes sent; the reply matches a pattern (banner protocols).
    SendExpect,
    /// An external program exits 0.
    Program,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGlobal {
    #[serde(default)]
    pub shards: Shards,
    #[serde(default = "default_shutdown_timeout")]
    pub shutdown_timeout: Dur,
    #[serde(default = "default_log_level")]
    pub log_level: LogLevel,
    #[serde(default = "default_mesh_interval")]
    pub mesh_interval: Dur,
    #[serde(default = "default_ring_entries")]
    pub ring_entries: u32,
    /// Instructions one rule run may execute.
    #[serde(default = "default_rule_instructions")]
    pub rule_instructions: Spanned<u64>,
    /// Bytes of values one rule run may make.
    #[serde(default = "default_rule_memory")]
    pub rule_memory: Spanned<u64>,
    /// Largest body a rule reads whole (`http.getResponseBody`, ...).
    #[serde(default = "default_rule_body_limit")]
    pub rule_body_limit: Spanned<u64>,
    /// Bytes the process-wide `data.*` store holds.
    #[serde(default = "default_rule_data_size")]
    pub rule_data_size: Spanned<u64>,
}

impl Default for RawGlobal {
    fn default() -> Self {
        RawGlobal {
            shards: Shards::Auto,
            shutdown_timeout: default_shutdown_timeout(),
            log_level: default_log_level(),
            mesh_interval: default_mesh_interval(),
            ring_entries: default_ring_entries(),
            rule_instructions: default_rule_instructions(),
            rule_memory: default_rule_memory(),
            rule_body_limit: default_rule_body_limit(),
            rule_data_size: default_rule_data_size(),
        }
    }
}

fn default_rule_instructions() -> Spanned<u64> {
    Spanned::new(0..0, 1_000_000)
}
fn default_rule_memory() -> Spanned<u64> {
    Spanned::new(0..0, 32 << 20)
}
fn default_rule_body_limit() -> Spanned<u64> {
    Spanned::new(0..0, 8 << 20)
}
fn default_rule_data_size() -> Spanned<u64> {
    Spanned::new(0..0, 16 << 20)
}

/// `[rules.NAME]`: a rule in the rule language (`file` or inline
/// `source`), or a declarative one (`conditions` and `actions`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    /// A rule file, relative to this configuration file.
    pub file: Option<Spanned<String>>,
    /// The rule's text, inline.
    pub source: Option<Spanned<String>>,
    /// Declarative: `all` (default) or `any` of the conditions.
    pub when: Option<Spanned<String>>,
    #[serde(default)]
    pub conditions: Vec<Spanned<RawCondition>>,
    #[serde(default)]
    pub actions: Vec<Spanned<RawAction>>,
}

/// One condition of a declarative rule.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCondition {
    /// `path`, `url`, `host`, `method`, `client`, `header:NAME`,
    /// `cookie:NAME`, `query:NAME`.
    pub on: Spanned<String>,
    /// `equals` (default), `prefix`, `suffix`, `contains`, `wildcard`,
    /// `regex`, `ipmask`.
    #[serde(rename = "match")]
    pub kind: Option<Spanned<String>>,
    pub value: Spanned<String>,
    /// The condition holds when the match fails.
    #[serde(default)]
    pub not: bool,
}

/// One action of a declarative rule: `do` names it; the other keys are
/// its arguments.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAction {
    #[serde(rename = "do")]
    pub action: Spanned<String>,
    pub name: Option<Spanned<String>>,
    pub value: Option<Spanned<String>>,
    pub pool: Option<Spanned<String>>,
    pub node: Option<Spanned<String>>,
    pub url: Option<Spanned<String>>,
    pub status: Option<Spanned<u16>>,
    pub content_type: Option<Spanned<String>>,
    pub body: Option<Spanned<String>>,
    pub class: Option<Spanned<String>>,
}

fn default_shutdown_timeout() -> Dur {
    Dur(Duration::from_secs(30))
}
fn default_log_level() -> LogLevel {
    LogLevel(log::LevelFilter::Info)
}
fn default_mesh_interval() -> Dur {
    Dur(Duration::from_millis(5))
}
fn default_ring_entries() -> u32 {
    1024
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawVirtualServer {
    pub listen: Spanned<OneOrMany>,
    pub protocol: Protocol,
    pub pool: Spanned<String>,
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default = "default_max_connections")]
    pub max_connections: u32,
    /// 0 = unlimited.
    #[serde(default)]
    pub max_connections_per_client: u32,
    pub connect_timeout: Option<Dur>,
    #[serde(default = "default_idle")]
    pub client_idle_timeout: Dur,
    #[serde(default = "default_idle")]
    pub server_idle_timeout: Dur,
    pub banner: Option<Spanned<String>>,
    #[serde(default = "default_buffer_size")]
    pub buffer_size: Spanned<u32>,
    #[serde(default = "default_backlog")]
    pub backlog: u32,
    #[serde(default = "yes")]
    pub splice: bool,
    pub shards: Option<Spanned<Vec<usize>>>,
    // HTTP (protocol = "http") settings.
    #[serde(default = "default_max_header_size")]
    pub max_header_size: Spanned<u32>,
    #[serde(default = "default_max_headers")]
    pub max_headers: Spanned<u32>,
    #[serde(default = "default_max_uri")]
    pub max_uri_length: u32,
    /// 0 = unlimited.
    #[serde(default)]
    pub max_body_size: u64,
    #[serde(default = "default_header_read_timeout")]
    pub header_read_timeout: Dur,
    #[serde(default = "default_keepalive_timeout")]
    pub client_keepalive_timeout: Dur,
    #[serde(default = "yes")]
    pub add_x_forwarded_for: bool,
    #[serde(default = "yes")]
    pub add_cluster_client_ip: bool,
    #[serde(default)]
    pub add_via: bool,
    #[serde(default)]
    pub all_requests_non_idempotent: bool,
    #[serde(default)]
    pub error_action: ErrorAction,
    pub error_file: Option<Spanned<String>>,
    pub access_log: Option<Spanned<String>>,
    #[serde(default = "default_log_format")]
    pub access_log_format: Spanned<String>,
    /// TLS termination (B7): the listener speaks TLS.
    pub tls: Option<Spanned<RawVsTls>>,
    /// `ssl_passthrough`: server name (SNI) → pool; others go to `pool`.
    pub sni_pools: Option<Spanned<BTreeMap<String, Spanned<String>>>>,
    /// Rules run on each request, and on each response, in order.
    #[serde(default)]
    pub request_rules: Vec<Spanned<String>>,
    #[serde(default)]
    pub response_rules: Vec<Spanned<String>>,
    /// Generic protocols: run the rules `once` (request rules at connect
    /// or on the client's first data, response rules on the node's first
    /// data) or on `every` read.
    pub rules_run: Option<Spanned<String>>,
    /// Layer-7 direct server return (M1) for some paths.
    pub dsr: Option<Spanned<RawDsr>>,
    /// Serve and store responses through the content cache (`[cache]`).
    pub cache: Option<Spanned<bool>>,
    /// Every request waits its turn in this rate class (`[rate_classes]`).
    pub rate_class: Option<Spanned<String>>,
    /// Every response is sent at this bandwidth class's pace.
    pub bandwidth_class: Option<Spanned<String>>,
    /// Every request is timed by this service level class.
    pub service_level: Option<Spanned<String>>,
    /// Response compression (docs/shaping.md).
    pub compression: Option<Spanned<RawCompression>>,
    /// HTTP/2 to clients (docs/http2.md).
    pub http2: Option<Spanned<RawHttp2>>,
    /// UDP (docs/udp.md): `one_response` or `streaming`.
    pub udp_mode: Option<Spanned<String>>,
    /// UDP: a flow with no datagram either way for this long ends.
    pub udp_timeout: Option<Spanned<Dur>>,
    /// UDP: the largest datagram relayed, bytes.
    pub udp_max_datagram: Option<Spanned<u32>>,
}

impl RawVirtualServer {
    /// The keys of HTTP's features, and the byte-stream protocols'
    /// `banner`, with where each is set (`None`: not set): what the udp
    /// and rtsp protocols refuse.
    pub fn http_feature_keys(&self) -> [(&'static str, Option<std::ops::Range<usize>>); 8] {
        [
            ("dsr", self.dsr.as_ref().map(|x| x.span())),
            ("cache", self.cache.as_ref().map(|x| x.span())),
            ("rate_class", self.rate_class.as_ref().map(|x| x.span())),
            ("bandwidth_class", self.bandwidth_class.as_ref().map(|x| x.span())),
            ("service_level", self.service_level.as_ref().map(|x| x.span())),
            ("compression", self.compression.as_ref().map(|x| x.span())),
            ("http2", self.http2.as_ref().map(|x| x.span())),
            ("banner", self.banner.as_ref().map(|x| x.span())),
        ]
    }
}

/// `[virtual_servers.NAME.http2]`: HTTP/2 to clients, by ALPN on TLS and
/// with prior knowledge on cleartext, and its limits.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHttp2 {
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Cleartext HTTP/2 with prior knowledge (`h2c`) on a plain listener.
    #[serde(default)]
    pub h2c: bool,
    #[serde(default = "default_h2_streams")]
    pub max_concurrent_streams: Spanned<u32>,
    #[serde(default = "default_h2_window")]
    pub initial_window_size: Spanned<Size>,
    #[serde(default = "default_h2_conn_window")]
    pub connection_window_size: Spanned<Size>,
    #[serde(default = "default_h2_frame")]
    pub max_frame_size: Spanned<Size>,
    /// Default: the virtual server's `max_header_size`.
    pub max_header_list_size: Option<Spanned<Size>>,
    #[serde(default = "default_h2_table")]
    pub header_table_size: Spanned<Size>,
    #[serde(default = "default_h2_pending_resets")]
    pub max_pending_resets: u32,
    #[serde(default = "default_h2_error_resets")]
    pub max_error_resets: u32,
    #[serde(default = "default_h2_control_rate")]
    pub control_frames_per_second: Spanned<u32>,
    #[serde(default = "default_h2_control_burst")]
    pub control_frames_burst: Spanned<u32>,
    #[serde(default = "default_h2_send_buffer")]
    pub max_send_buffer: Spanned<Size>,
    /// Default: the virtual server's `client_idle_timeout`.
    pub send_timeout: Option<Dur>,
    /// Default: the virtual server's `client_keepalive_timeout`.
    pub idle_timeout: Option<Dur>,
}

fn default_h2_streams() -> Spanned<u32> {
    Spanned::new(0..0, 100)
}
fn default_h2_window() -> Spanned<Size> {
    Spanned::new(0..0, Size(65_535))
}
fn default_h2_conn_window() -> Spanned<Size> {
    Spanned::new(0..0, Size(1 << 20))
}
fn default_h2_frame() -> Spanned<Size> {
    Spanned::new(0..0, Size(16_384))
}
fn default_h2_table() -> Spanned<Size> {
    Spanned::new(0..0, Size(4096))
}
fn default_h2_pending_resets() -> u32 {
    20
}
fn default_h2_error_resets() -> u32 {
    1024
}
fn default_h2_control_rate() -> Spanned<u32> {
    Spanned::new(0..0, 100)
}
fn default_h2_control_burst() -> Spanned<u32> {
    Spanned::new(0..0, 1000)
}
fn default_h2_send_buffer() -> Spanned<Size> {
    Spanned::new(0..0, Size(256 * 1024))
}

/// `[virtual_servers.NAME.compression]`: responses compressed for clients
/// that accept it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCompression {
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Codings offered, in order of preference (`"zstd"`, `"br"`, `"gzip"`).
    pub encodings: Option<Spanned<Vec<Spanned<String>>>>,
    /// Content types compressed (`"text/html"`, `"text/*"`).
    pub types: Option<Spanned<Vec<Spanned<String>>>>,
    /// Bodies with a smaller `Content-Length` go as they are.
    #[serde(default = "default_compress_min")]
    pub min_size: Spanned<Size>,
    #[serde(default = "default_gzip_level")]
    pub gzip_level: Spanned<u32>,
    #[serde(default = "default_brotli_level")]
    pub brotli_level: Spanned<u32>,
    #[serde(default = "default_zstd_level")]
    pub zstd_level: Spanned<u32>,
}

fn default_compress_min() -> Spanned<Size> {
    Spanned::new(0..0, Size(1024))
}
fn default_gzip_level() -> Spanned<u32> {
    Spanned::new(0..0, 6)
}
fn default_brotli_level() -> Spanned<u32> {
    Spanned::new(0..0, 4)
}
fn default_zstd_level() -> Spanned<u32> {
    Spanned::new(0..0, 3)
}

/// `[virtual_servers.NAME.dsr]`: requests for these paths are probed
/// through the pool with a HEAD, and the client is redirected to the node
/// that answered.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDsr {
    /// Wildcard patterns (`*`, `?`) of the paths redirected.
    pub paths: Spanned<Vec<String>>,
    /// The pool probed (default: the virtual server's).
    pub pool: Option<Spanned<String>>,
    /// The path of the HEAD probe.
    #[serde(default = "default_dsr_probe")]
    pub probe: Spanned<String>,
    /// The scheme of the redirect.
    #[serde(default = "default_dsr_scheme")]
    pub scheme: Spanned<String>,
    /// The redirect's status (301, 302, 303, 307 or 308).
    #[serde(default = "default_dsr_status")]
    pub status: Spanned<u16>,
    /// A node's public name for the redirect (`"10.0.0.5:80" =
    /// "media1.example.com"`); by default its address as configured.
    #[serde(default)]
    pub public: BTreeMap<String, String>,
}

fn default_dsr_probe() -> Spanned<String> {
    Spanned::new(0..0, "/".into())
}
fn default_dsr_scheme() -> Spanned<String> {
    Spanned::new(0..0, "http".into())
}
fn default_dsr_status() -> Spanned<u16> {
    Spanned::new(0..0, 302)
}

/// `[virtual_servers.NAME.tls]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawVsTls {
    /// The first is the default (clients without SNI, or naming no
    /// certificate's host).
    pub certificates: Spanned<Vec<RawCertificate>>,
    #[serde(default = "default_tls_versions")]
    pub versions: Spanned<Vec<String>>,
    /// ALPN protocols offered; default `["http/1.1"]` for HTTP, none otherwise.
    pub alpn: Option<Vec<String>>,
    #[serde(default)]
    pub client_auth: ClientAuth,
    pub client_ca: Option<Spanned<String>>,
    #[serde(default = "default_session_cache")]
    pub session_cache_size: u32,
    #[serde(default = "yes")]
    pub session_tickets: bool,
    /// Whose preference picks the cipher suite: `server` (shoal's order,
    /// the default) or `client`.
    pub cipher_order: Option<Spanned<String>>,
    #[serde(default = "yes")]
    pub add_x_forwarded_proto: bool,
    #[serde(default)]
    pub add_ssl_headers: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCertificate {
    pub cert: Spanned<String>,
    pub key: Spanned<String>,
    /// Server names this certificate is chosen for (`*.example.com`
    /// allowed); default: the names the certificate is valid for.
    #[serde(default)]
    pub names: Vec<String>,
}

fn default_tls_versions() -> Spanned<Vec<String>> {
    Spanned::new(0..0, vec!["1.2".into(), "1.3".into()])
}
fn default_session_cache() -> u32 {
    20_000
}

/// Client certificates on a TLS virtual server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    #[default]
    None,
    /// Asked for; checked when sent; connections without one are accepted.
    Optional,
    /// Connections without a valid client certificate are refused.
    Required,
}

/// `[pools.NAME.tls]`: encrypt to the pool's nodes (B8).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPoolTls {
    /// CA certificates (PEM) nodes are verified against; default: the
    /// system's bundle.
    pub ca: Option<Spanned<String>>,
    #[serde(default = "yes")]
    pub verify: bool,
    /// Name sent (SNI) and verified; default: each node's host.
    pub server_name: Option<String>,
    pub client_cert: Option<Spanned<String>>,
    pub client_key: Option<Spanned<String>>,
    #[serde(default = "default_tls_versions")]
    pub versions: Spanned<Vec<String>>,
    #[serde(default)]
    pub alpn: Vec<String>,
}

/// `[persistence.NAME]`: a session persistence class (E1).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPersistence {
    #[serde(rename = "type")]
    pub kind: PersistenceType,
    /// Entries kept (least recently used dropped first).
    #[serde(default = "default_persistence_entries")]
    pub max_entries: Spanned<u32>,
    /// `universal` and `named_node`: where the key is read from:
    /// `header:NAME`, `cookie:NAME`, `query:NAME` or `path:N`.
    pub source: Option<Spanned<String>>,
    /// `app_cookie`: the application's cookie; `node_cookie`: the cookie
    /// the node sets (default `X-Zeus-Backend`).
    pub cookie: Option<Spanned<String>>,
    /// `transparent`, `app_cookie`: key of the cookie value's keyed hash.
    pub secret: Option<String>,
    /// What happens when the remembered node is unavailable.
    #[serde(default)]
    pub on_failure: FailureAction,
    /// `on_failure = "redirect"`: where to.
    pub failure_url: Option<Spanned<String>>,
    /// Key-based classes: a new session's node is decided by a hash of its
    /// key over the pool's nodes, the same on every cluster member (K5).
    pub hash: Option<Spanned<bool>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureAction {
    /// Balance to another node and remember that one (the default).
    #[default]
    NewNode,
    /// Answer `302` to `failure_url` (a sorry page elsewhere).
    Redirect,
    /// Close the client connection.
    Close,
}

fn default_persistence_entries() -> Spanned<u32> {
    Spanned::new(0..0, 100_000)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PersistenceType {
    /// TLS 1.2 session IDs, learned from ServerHellos (ssl_passthrough).
    SslSessionId,
    /// The client's IP address.
    Ip,
    /// A key read from the request (`source`).
    Universal,
    /// The request names its node (`source` holds a node as written).
    NamedNode,
    /// shoal's own `X-Mapping-…` cookie, a keyed hash of the node.
    Transparent,
    /// Follow the application's cookie with a shoal cookie of the same life.
    AppCookie,
    /// `JSESSIONID` cookie or `;jsessionid=` path parameter.
    J2ee,
    /// `ASPSESSIONID…` and `ASP.NET_SessionId` cookies.
    Asp,
    /// The node names itself in a cookie (`X-Zeus-Backend`).
    NodeCookie,
    /// RTSP `Session` identifiers, learned from the node's responses
    /// (rtsp virtual servers).
    RtspSession,
}

fn default_log_format() -> Spanned<String> {
    Spanned::new(0..0, "combined".into())
}

fn default_max_header_size() -> Spanned<u32> {
    Spanned::new(0..0, 32 * 1024)
}
fn default_max_headers() -> Spanned<u32> {
    Spanned::new(0..0, 100)
}
fn default_max_uri() -> u32 {
    8 * 1024
}
fn default_header_read_timeout() -> Dur {
    Dur(Duration::from_secs(30))
}
fn default_keepalive_timeout() -> Dur {
    Dur(Duration::from_secs(60))
}

/// What an HTTP virtual server does when no node can serve a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorAction {
    /// Answer with the status (502, 503, 504) and the error page.
    #[default]
    Page,
    /// Close the client connection without a response.
    Close,
}

fn yes() -> bool {
    true
}
fn default_max_connections() -> u32 {
    100_000
}
fn default_idle() -> Dur {
    Dur(Duration::from_secs(300))
}
fn default_buffer_size() -> Spanned<u32> {
    Spanned::new(0..0, 64 * 1024)
}
fn default_backlog() -> u32 {
    1024
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPool {
    #[serde(default)]
    pub algorithm: Algorithm,
    /// Speak HTTP/2 to the nodes (docs/http2.md).
    #[serde(default)]
    pub http2: Option<Spanned<bool>>,
    pub nodes: Spanned<Vec<RawNode>>,
    #[serde(default = "default_attempts")]
    pub node_connection_attempts: Spanned<u32>,
    #[serde(default = "default_fail_time")]
    pub node_fail_time: Dur,
    #[serde(default = "default_connect_time")]
    pub max_connect_time: Dur,
    #[serde(default = "default_reply_time")]
    pub max_reply_time: Dur,
    #[serde(default = "default_max_idle")]
    pub max_idle_per_node: u32,
    #[serde(default = "default_node_keepalive")]
    pub node_keepalive_timeout: Dur,
    /// Send a PROXY protocol header on each node connection.
    #[serde(default)]
    pub proxy_protocol: ProxyProtocolSetting,
    /// 0 = unlimited.
    #[serde(default)]
    pub max_connections_per_node: u32,
    #[serde(default = "default_max_queue")]
    pub max_queue: u32,
    #[serde(default = "default_queue_timeout")]
    pub queue_timeout: Dur,
    pub tls: Option<Spanned<RawPoolTls>>,
    /// A `[persistence.NAME]` class.
    pub persistence: Option<Spanned<String>>,
    /// `[monitors.NAME]` monitors run against every node.
    #[serde(default)]
    pub monitors: Vec<Spanned<String>>,
    /// Grow and shrink the pool through a driver program (J1).
    pub autoscale: Option<Spanned<RawAutoscale>>,
}

/// `[pools.NAME.autoscale]` (docs/autoscaling.md).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAutoscale {
    #[serde(default = "yes")]
    pub enabled: bool,
    /// The driver program (relative to the file).
    pub driver: Spanned<String>,
    /// The cloud credentials' name, passed as `--cloudcreds`.
    pub credentials: Spanned<String>,
    /// The service level: a node response within this conforms.
    #[serde(default = "default_as_response_time")]
    pub response_time: Spanned<Dur>,
    /// Scale up when fewer than this percentage conform.
    #[serde(default = "default_as_up")]
    pub scale_up_below: Spanned<u8>,
    /// Scale down when more than this percentage conform.
    #[serde(default = "default_as_down")]
    pub scale_down_above: Spanned<u8>,
    /// How long a condition must hold before acting.
    #[serde(default = "default_as_hysteresis")]
    pub hysteresis: Spanned<Dur>,
    /// The least time between two actions.
    #[serde(default = "default_as_refractory")]
    pub refractory: Spanned<Dur>,
    #[serde(default = "default_as_min")]
    pub min_nodes: Spanned<u32>,
    #[serde(default = "default_as_max")]
    pub max_nodes: Spanned<u32>,
    pub imageid: Spanned<String>,
    #[serde(default)]
    pub sizeid: String,
    /// New nodes are named this, a number appended.
    pub name_prefix: Spanned<String>,
    /// The port the nodes serve on.
    pub port: Spanned<u16>,
    /// How long a node being removed may drain before it goes.
    #[serde(default = "default_as_drain")]
    pub drain_time: Spanned<Dur>,
}

fn default_as_response_time() -> Spanned<Dur> {
    Spanned::new(0..0, Dur(Duration::from_secs(1)))
}
fn default_as_up() -> Spanned<u8> {
    Spanned::new(0..0, 40)
}
fn default_as_down() -> Spanned<u8> {
    Spanned::new(0..0, 95)
}
fn default_as_hysteresis() -> Spanned<Dur> {
    Spanned::new(0..0, Dur(Duration::from_secs(20)))
}
fn default_as_refractory() -> Spanned<Dur> {
    Spanned::new(0..0, Dur(Duration::from_secs(180)))
}
fn default_as_min() -> Spanned<u32> {
    Spanned::new(0..0, 1)
}
fn default_as_max() -> Spanned<u32> {
    Spanned::new(0..0, 4)
}
fn default_as_drain() -> Spanned<Dur> {
    Spanned::new(0..0, Dur(Duration::from_secs(30)))
}

fn default_max_queue() -> u32 {
    1024
}
fn default_queue_timeout() -> Dur {
    Dur(Duration::from_secs(10))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProxyProtocolSetting {
    #[default]
    None,
    V1,
    V2,
}

fn default_reply_time() -> Dur {
    Dur(Duration::from_secs(30))
}
fn default_max_idle() -> u32 {
    64
}
fn default_node_keepalive() -> Dur {
    Dur(Duration::from_secs(30))
}

fn default_attempts() -> Spanned<u32> {
    Spanned::new(0..0, 3)
}
fn default_fail_time() -> Dur {
    Dur(Duration::from_secs(60))
}
fn default_connect_time() -> Dur {
    Dur(Duration::from_secs(4))
}

/// A node: either `"host:port"` or `{ address = "host:port", weight = 2, state = "draining" }`.
#[derive(Debug)]
pub struct RawNode {
    pub address: String,
    pub weight: u32,
    pub state: NodeState,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNodeTable {
    address: String,
    #[serde(default = "one")]
    weight: u32,
    #[serde(default)]
    state: NodeState,
}

fn one() -> u32 {
    1
}

impl<'de> Deserialize<'de> for RawNode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawNode;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("\"host:port\" or a table { address, weight, state }")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawNode, E> {
                Ok(RawNode { address: v.to_owned(), weight: 1, state: NodeState::Active })
            }
            fn visit_map<A: MapAccess<'de>>(self, m: A) -> Result<RawNode, A::Error> {
                let t = RawNodeTable::deserialize(de::value::MapAccessDeserializer::new(m))?;
                if t.weight == 0 {
                    return Err(de::Error::custom("node weight must be at least 1"));
                }
                Ok(RawNode { address: t.address, weight: t.weight, state: t.state })
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawResponder {
    pub listen: Spanned<String>,
    pub greeting: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    Http,
    ServerFirst,
    ClientFirst,
    ServerFirstBanner,
    GenericStreaming,
    SslPassthrough,
    /// Datagrams (docs/udp.md).
    Udp,
    /// RTSP control connections, balanced per session (docs/rtsp.md).
    Rtsp,
}

impl Protocol {
    pub const NAMES: &'static [&'static str] = &[
        "http",
        "server_first",
        "client_first",
        "server_first_banner",
        "generic_streaming",
        "ssl_passthrough",
        "udp",
        "rtsp",
    ];

    pub fn parse(s: &str) -> Option<Protocol> {
        Protocol::deserialize(de::value::StrDeserializer::<de::value::Error>::new(s)).ok()
    }

    pub fn name(self) -> &'static str {
        match self {
            Protocol::Http => "http",
            Protocol::ServerFirst => "server_first",
            Protocol::ClientFirst => "client_first",
            Protocol::ServerFirstBanner => "server_first_banner",
            Protocol::GenericStreaming => "generic_streaming",
            Protocol::SslPassthrough => "ssl_passthrough",
            Protocol::Udp => "udp",
            Protocol::Rtsp => "rtsp",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Algorithm {
    #[default]
    RoundRobin,
    WeightedRoundRobin,
    Random,
    LeastConnections,
    WeightedLeastConnections,
    FastestResponseTime,
    Perceptive,
}

impl Algorithm {
    pub const NAMES: &'static [&'static str] = &[
        "round_robin",
        "weighted_round_robin",
        "random",
        "least_connections",
        "weighted_least_connections",
        "fastest_response_time",
        "perceptive",
    ];

    /// Whether the algorithm weighs nodes by load or speed, so that LARD
    /// (prefer the node that served the URL recently) applies on ties.
    pub fn uses_lard(self) -> bool {
        matches!(
            self,
            Algorithm::LeastConnections
                | Algorithm::WeightedLeastConnections
                | Algorithm::FastestResponseTime
                | Algorithm::Perceptive
        )
    }

    pub fn parse(s: &str) -> Option<Algorithm> {
        Algorithm::deserialize(de::value::StrDeserializer::<de::value::Error>::new(s)).ok()
    }

    pub fn name(self) -> &'static str {
        Algorithm::NAMES[self as usize]
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeState {
    #[default]
    Active,
    Draining,
    Disabled,
}

impl PersistenceType {
    pub fn name(self) -> &'static str {
        match self {
            PersistenceType::SslSessionId => "ssl_session_id",
            PersistenceType::Ip => "ip",
            PersistenceType::Universal => "universal",
            PersistenceType::NamedNode => "named_node",
            PersistenceType::Transparent => "transparent",
            PersistenceType::AppCookie => "app_cookie",
            PersistenceType::J2ee => "j2ee",
            PersistenceType::Asp => "asp",
            PersistenceType::NodeCookie => "node_cookie",
            PersistenceType::RtspSession => "rtsp_session",
        }
    }
}

impl NodeState {
    pub fn name(self) -> &'static str {
        match self {
            NodeState::Active => "active",
            NodeState::Draining => "draining",
            NodeState::Disabled => "disabled",
        }
    }
}

/// `shards = "auto" | N | [cpu, cpu, …]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Shards {
    #[default]
    Auto,
    Count(usize),
    Cpus(Vec<usize>),
}

impl<'de> Deserialize<'de> for Shards {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Shards;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("\"auto\", a shard count, or a list of CPU numbers")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Shards, E> {
                if v == "auto" {
                    Ok(Shards::Auto)
                } else {
                    Err(E::custom(format!("expected \"auto\", a count or a CPU list, found \"{v}\"")))
                }
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Shards, E> {
                if (1..=1024).contains(&v) {
                    Ok(Shards::Count(v as usize))
                } else {
                    Err(E::custom(format!("shard count must be between 1 and 1024, found {v}")))
                }
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<Shards, A::Error> {
                let mut cpus = Vec::new();
                while let Some(c) = s.next_element::<usize>()? {
                    if cpus.contains(&c) {
                        return Err(de::Error::custom(format!("CPU {c} listed twice")));
                    }
                    cpus.push(c);
                }
                if cpus.is_empty() {
                    return Err(de::Error::custom("the CPU list is empty"));
                }
                Ok(Shards::Cpus(cpus))
            }
        }
        d.deserialize_any(V)
    }
}

/// A size in bytes written as an integer (`1048576`) or with a unit
/// (`"64KiB"`, `"512MiB"`, `"2GiB"`, `"1TiB"`; `KB`, `MB`, `GB` and `TB` are
/// the same powers of 1024, as operators of caches write them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size(pub u64);

impl Size {
    pub fn parse(s: &str) -> Result<u64, String> {
        let t = s.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let n: u64 = num.parse().map_err(|_| format!("invalid size \"{s}\": expected e.g. \"512MiB\", \"2GiB\""))?;
        let shift = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 0,
            "k" | "kb" | "kib" => 10,
            "m" | "mb" | "mib" => 20,
            "g" | "gb" | "gib" => 30,
            "t" | "tb" | "tib" => 40,
            u => return Err(format!("invalid size unit \"{u}\" in \"{s}\": use KiB, MiB, GiB or TiB")),
        };
        n.checked_mul(1 << shift).ok_or_else(|| format!("size \"{s}\" is too large"))
    }
}

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Size;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a size: bytes as an integer, or a string like \"512MiB\", \"2GiB\"")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Size, E> {
                u64::try_from(v).map(Size).map_err(|_| E::custom("a size cannot be negative"))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Size, E> {
                Size::parse(v).map(Size).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// A duration written as whole seconds (`30`) or with a unit (`"250ms"`,
/// `"4s"`, `"5m"`, `"1h"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dur(pub Duration);

impl Dur {
    pub fn parse(s: &str) -> Result<Duration, String> {
        let s = s.trim();
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (num, unit) = s.split_at(split);
        let n: u64 =
            num.parse().map_err(|_| format!("invalid duration \"{s}\": expected e.g. \"250ms\", \"4s\", \"5m\""))?;
        let d = match unit.trim() {
            "ms" => Duration::from_millis(n),
            "" | "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n.saturating_mul(60)),
            "h" => Duration::from_secs(n.saturating_mul(3600)),
            u => return Err(format!("invalid duration unit \"{u}\" in \"{s}\": use ms, s, m or h")),
        };
        Ok(d)
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Dur;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration: seconds as an integer, or a string like \"250ms\", \"4s\", \"5m\"")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Dur, E> {
                u64::try_from(v)
                    .map(|s| Dur(Duration::from_secs(s)))
                    .map_err(|_| E::custom("a duration cannot be negative"))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Dur, E> {
                Dur::parse(v).map(Dur).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Debug, Clone, Copy)]
pub struct LogLevel(pub log::LevelFilter);

impl<'de> Deserialize<'de> for LogLevel {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        crate::logging::parse_level(&s).map(LogLevel).ok_or_else(|| {
            de::Error::custom(format!("unknown log level \"{s}\": expected off, error, warn, info, debug or trace"))
        })
    }
}

/// A key that takes one string or a list of them.
#[derive(Debug)]
pub struct OneOrMany(pub Vec<String>);

impl<'de> Deserialize<'de> for OneOrMany {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = OneOrMany;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or a list of strings")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<OneOrMany, E> {
                Ok(OneOrMany(vec![v.to_owned()]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<OneOrMany, A::Error> {
                let mut v = Vec::new();
                while let Some(x) = s.next_element::<String>()? {
                    v.push(x);
                }
                Ok(OneOrMany(v))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(Dur::parse("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(Dur::parse("4s").unwrap(), Duration::from_secs(4));
        assert_eq!(Dur::parse("4").unwrap(), Duration::from_secs(4));
        assert_eq!(Dur::parse("2m").unwrap(), Duration::from_secs(120));
        assert!(Dur::parse("4 parsecs").is_err());
        assert!(Dur::parse("ms").is_err());
    }

    #[test]
    fn names_round_trip() {
        for n in Protocol::NAMES {
            assert_eq!(Protocol::parse(n).unwrap().name(), *n);
        }
        for n in Algorithm::NAMES {
            assert_eq!(Algorithm::parse(n).unwrap().name(), *n);
        }
        assert!(Protocol::parse("http2").is_none());
    }
}
