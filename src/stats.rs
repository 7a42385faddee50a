//! Statistics counters (I2). Each shard bumps plain `Cell` counters on its
//! own request path (no atomics, no shared cache lines); the control plane
//! asks every shard for a [`ShardSnapshot`] through the mesh and sums them
//! by name, so totals are exact once the load has finished. Counters live
//! in runtime objects carried over by name across reconfigurations, so a
//! reload does not reset them.

use std::cell::Cell;
use std::time::SystemTime;

/// Why shoal failed a request or connection of a virtual server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VsError {
    /// The client sent something invalid (shoal answered 4xx and closed).
    BadRequest = 0,
    /// Refused by `max_connections_per_client`.
    Refused,
    /// The client's TLS handshake failed.
    TlsHandshake,
    /// No node could take the request (503).
    NoNode,
    /// The node failed: connect, reply timeout, invalid or cut response (502/504).
    NodeFailure,
    /// The client went away before the response was complete.
    ClientAbort,
    /// A module refused or failed the request, or a body exceeded a body
    /// filter's limit.
    Module,
}

pub const VS_ERRORS: [(VsError, &str); 7] = [
    (VsError::BadRequest, "bad_request"),
    (VsError::Refused, "refused"),
    (VsError::TlsHandshake, "tls_handshake"),
    (VsError::NoNode, "no_node"),
    (VsError::NodeFailure, "node_failure"),
    (VsError::ClientAbort, "client_abort"),
    (VsError::Module, "module"),
];

/// The content cache's counters per virtual server, by name (docs/cache.md).
pub const CACHE_COUNTERS: [(crate::cache::module::CacheEvent, &str); 7] = {
    use crate::cache::module::CacheEvent as E;
    [
        (E::Hit, "hits"),
        (E::Miss, "misses"),
        (E::Collapsed, "collapsed_waits"),
        (E::Revalidation, "revalidations"),
        (E::Revalidated, "revalidated"),
        (E::Stale, "stale_served"),
        (E::Uncacheable, "uncacheable"),
    ]
};

/// HTTP/2 events per virtual server, by name (docs/http2.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum H2Event {
    /// An HTTP/2 connection began (ALPN `h2` or an `h2c` preface).
    Connection = 0,
    /// A connection ended by the flood guard (GOAWAY ENHANCE_YOUR_CALM).
    Flood,
    /// A connection ended by the codec for a protocol error or a broken
    /// limit (GOAWAY with its error code).
    ProtocolError,
}

pub const H2_COUNTERS: [(H2Event, &str); 3] =
    [(H2Event::Connection, "connections"), (H2Event::Flood, "floods"), (H2Event::ProtocolError, "protocol_errors")];

/// UDP events per virtual server, by name (docs/udp.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UdpEvent {
    /// A client's datagram sent on to its node.
    DatagramIn = 0,
    /// A node's datagram sent back to its client.
    DatagramOut,
    /// A datagram over `udp_max_datagram`, dropped.
    Oversize,
    /// A new flow refused by `max_connections` or
    /// `max_connections_per_client`; its datagram dropped.
    FlowRefused,
    /// A new flow found no node; its datagram dropped.
    NoNode,
    /// A datagram that met a full socket buffer (or an error), dropped.
    SendDropped,
    /// A `one_response` flow whose node did not answer in `udp_timeout`.
    NoReply,
}

pub const UDP_COUNTERS: [(UdpEvent, &str); 7] = [
    (UdpEvent::DatagramIn, "datagrams_in"),
    (UdpEvent::DatagramOut, "datagrams_out"),
    (UdpEvent::Oversize, "oversize_dropped"),
    (UdpEvent::FlowRefused, "flows_refused"),
    (UdpEvent::NoNode, "no_node_dropped"),
    (UdpEvent::SendDropped, "send_dropped"),
    (UdpEvent::NoReply, "no_reply"),
];

/// RTSP events per virtual server, by name (docs/rtsp.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RtspEvent {
    /// A client's request sent on to its node.
    Request = 0,
    /// A node's response sent back to the client (as received or as a
    /// response rule changed it).
    Response,
    /// A request or response replaced by a rule's answer
    /// (`rtsp.redirect`, `rtsp.sendResponse`).
    RuleAnswer,
    /// Interleaved RTP/RTCP frames relayed, both ways.
    Interleaved,
    /// A malformed message from a client: answered with its status, closed.
    ClientMalformed,
    /// A malformed message from a node: the client got a 502, closed.
    NodeMalformed,
    /// No node could take the session: the client got a 503.
    NoNode,
}

pub const RTSP_COUNTERS: [(RtspEvent, &str); 7] = [
    (RtspEvent::Request, "requests"),
    (RtspEvent::Response, "responses"),
    (RtspEvent::RuleAnswer, "rule_answers"),
    (RtspEvent::Interleaved, "interleaved_frames"),
    (RtspEvent::ClientMalformed, "client_malformed"),
    (RtspEvent::NodeMalformed, "node_malformed"),
    (RtspEvent::NoNode, "no_node"),
];

/// Requests by the protocol version they came in, by name.
pub const VERSIONS: [(crate::http::Version, &str); 3] = [
    (crate::http::Version::Http10, "http/1.0"),
    (crate::http::Version::Http11, "http/1.1"),
    (crate::http::Version::Http2, "h2"),
];

fn bump(c: &Cell<u64>, n: u64) {
    c.set(c.get() + n);
}

/// One virtual server's counters on one shard.
#[derive(Default)]
pub struct VsCounters {
    pub connections: Cell<u64>,
    pub requests: Cell<u64>,
    /// Bytes received from clients: request heads and bodies (HTTP), all
    /// client bytes relayed (other protocols).
    pub bytes_in: Cell<u64>,
    /// Bytes sent to clients.
    pub bytes_out: Cell<u64>,
    /// HTTP responses by status class (1xx..5xx).
    pub responses: [Cell<u64>; 5],
    pub errors: [Cell<u64>; VS_ERRORS.len()],
    /// Sum of request durations (first head byte to response end), µs.
    pub time_us: Cell<u64>,
    /// Rule runs abandoned on a run-time error (the request went on).
    pub rule_errors: Cell<u64>,
    /// Content cache events, in [`CACHE_COUNTERS`] order.
    pub cache: [Cell<u64>; CACHE_COUNTERS.len()],
    /// Body bytes sent to clients from the cache.
    pub cache_hit_bytes: Cell<u64>,
    /// Responses compressed, by coding (`Coding::ALL` order).
    pub compressed: [Cell<u64>; 3],
    /// Body bytes that went into the compressors, and came out.
    pub compress_bytes_in: Cell<u64>,
    pub compress_bytes_out: Cell<u64>,
    /// Requests by protocol version, in [`VERSIONS`] order.
    pub versions: [Cell<u64>; VERSIONS.len()],
    /// HTTP/2 events, in [`H2_COUNTERS`] order.
    pub http2: [Cell<u64>; H2_COUNTERS.len()],
    /// UDP events, in [`UDP_COUNTERS`] order.
    pub udp: [Cell<u64>; UDP_COUNTERS.len()],
    /// RTSP events, in [`RTSP_COUNTERS`] order.
    pub rtsp: [Cell<u64>; RTSP_COUNTERS.len()],
}

impl VsCounters {
    pub fn udp(&self, e: UdpEvent) {
        self.udp_n(e, 1);
    }

    pub fn udp_n(&self, e: UdpEvent, n: u64) {
        bump(&self.udp[e as usize], n);
    }

    pub fn rtsp(&self, e: RtspEvent) {
        self.rtsp_n(e, 1);
    }

    pub fn rtsp_n(&self, e: RtspEvent, n: u64) {
        bump(&self.rtsp[e as usize], n);
    }

    pub fn h2(&self, e: H2Event) {
        bump(&self.http2[e as usize], 1);
    }

    pub fn version(&self, v: crate::http::Version) {
        bump(&self.versions[v as usize], 1);
    }

    pub fn cache(&self, e: crate::cache::module::CacheEvent) {
        bump(&self.cache[e as usize], 1);
    }

    pub fn cache_hit_bytes(&self, n: u64) {
        bump(&self.cache_hit_bytes, n);
    }

    pub fn compressed(&self, c: crate::http::coding::Coding) {
        bump(&self.compressed[c.index()], 1);
    }

    pub fn compressed_bytes(&self, inbound: u64, outbound: u64) {
        bump(&self.compress_bytes_in, inbound);
        bump(&self.compress_bytes_out, outbound);
    }

    pub fn rule_error(&self) {
        bump(&self.rule_errors, 1);
    }

    pub fn connection(&self) {
        bump(&self.connections, 1);
    }

    pub fn error(&self, e: VsError) {
        bump(&self.errors[e as usize], 1);
    }

    pub fn bytes(&self, inbound: u64, outbound: u64) {
        bump(&self.bytes_in, inbound);
        bump(&self.bytes_out, outbound);
    }

    /// A finished HTTP request with response `status` (0: none was sent).
    pub fn request(&self, status: u16, time_us: u64) {
        bump(&self.requests, 1);
        bump(&self.time_us, time_us);
        if (100..600).contains(&status) {
            bump(&self.responses[usize::from(status / 100 - 1)], 1);
        }
    }

    pub fn snapshot(&self, name: &str, current: u64) -> VsSnapshot {
        VsSnapshot {
            name: name.to_owned(),
            current_connections: current,
            connections: self.connections.get(),
            requests: self.requests.get(),
            bytes_in: self.bytes_in.get(),
            bytes_out: self.bytes_out.get(),
            responses: self.responses.each_ref().map(Cell::get),
            errors: self.errors.each_ref().map(Cell::get),
            time_us: self.time_us.get(),
            rule_errors: self.rule_errors.get(),
            cache: self.cache.each_ref().map(Cell::get),
            cache_hit_bytes: self.cache_hit_bytes.get(),
            compressed: self.compressed.each_ref().map(Cell::get),
            compress_bytes_in: self.compress_bytes_in.get(),
            compress_bytes_out: self.compress_bytes_out.get(),
            versions: self.versions.each_ref().map(Cell::get),
            http2: self.http2.each_ref().map(Cell::get),
            udp: self.udp.each_ref().map(Cell::get),
            rtsp: self.rtsp.each_ref().map(Cell::get),
        }
    }
}

/// One node's counters (in one pool) on one shard.
#[derive(Default)]
pub struct NodeCounters {
    /// Requests (HTTP) or connections (other protocols) sent to the node.
    pub requests: Cell<u64>,
    /// Bytes sent to the node and received from it.
    pub bytes_out: Cell<u64>,
    pub bytes_in: Cell<u64>,
    /// Failures recorded against the node (passive health).
    pub failures: Cell<u64>,
    /// Sum and count of response times (request written → response head), µs.
    pub rt_us: Cell<u64>,
    pub rt_count: Cell<u64>,
    /// Wall-clock time the node was last picked.
    pub last_used: Cell<Option<SystemTime>>,
}

impl NodeCounters {
    pub fn request(&self, to_node: u64, from_node: u64) {
        bump(&self.requests, 1);
        bump(&self.bytes_out, to_node);
        bump(&self.bytes_in, from_node);
    }

    pub fn failure(&self) {
        bump(&self.failures, 1);
    }

    pub fn response_time(&self, us: u64) {
        bump(&self.rt_us, us);
        bump(&self.rt_count, 1);
    }
}

/// A virtual server's figures, from one shard or summed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VsSnapshot {
    pub name: String,
    pub current_connections: u64,
    pub connections: u64,
    pub requests: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub responses: [u64; 5],
    pub errors: [u64; VS_ERRORS.len()],
    pub time_us: u64,
    pub rule_errors: u64,
    pub cache: [u64; CACHE_COUNTERS.len()],
    pub cache_hit_bytes: u64,
    pub compressed: [u64; 3],
    pub compress_bytes_in: u64,
    pub compress_bytes_out: u64,
    pub versions: [u64; VERSIONS.len()],
    pub http2: [u64; H2_COUNTERS.len()],
    pub udp: [u64; UDP_COUNTERS.len()],
    pub rtsp: [u64; RTSP_COUNTERS.len()],
}

/// A node's figures in one pool, from one shard or summed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeSnapshot {
    pub pool: String,
    pub node: String,
    pub state: &'static str,
    /// `alive`, `failed` (passive health), `monitor_down`.
    pub health: &'static str,
    pub current_connections: u64,
    /// New connections opened to the node (the rest reused keepalives).
    pub connections: u64,
    pub idle_connections: u64,
    pub requests: u64,
    pub bytes_out: u64,
    pub bytes_in: u64,
    pub failures: u64,
    pub rt_us: u64,
    pub rt_count: u64,
    pub last_used: Option<SystemTime>,
}

/// Everything one shard counts, for one configuration generation.
#[derive(Debug, Clone, Default)]
pub struct ShardSnapshot {
    pub generation: u64,
    pub virtual_servers: Vec<VsSnapshot>,
    pub nodes: Vec<NodeSnapshot>,
    /// This shard's cache partition.
    pub cache: crate::cache::partition::PartitionStats,
}

/// The process's figures: every shard's snapshot summed by name.
#[derive(Debug, Clone, Default)]
pub struct Totals {
    pub shards: usize,
    pub virtual_servers: Vec<VsSnapshot>,
    pub nodes: Vec<NodeSnapshot>,
    /// Every cache partition, summed.
    pub cache: crate::cache::partition::PartitionStats,
}

impl Totals {
    /// Sum `shards`, keeping the first shard's order (its configuration's).
    pub fn sum(shards: Vec<ShardSnapshot>) -> Totals {
        let mut t = Totals { shards: shards.len(), ..Totals::default() };
        for s in shards {
            t.cache.add(&s.cache);
            for v in s.virtual_servers {
                match t.virtual_servers.iter_mut().find(|x| x.name == v.name) {
                    Some(x) => {
                        x.current_connections += v.current_connections;
                        x.connections += v.connections;
                        x.requests += v.requests;
                        x.bytes_in += v.bytes_in;
                        x.bytes_out += v.bytes_out;
                        x.time_us += v.time_us;
                        x.rule_errors += v.rule_errors;
                        x.cache_hit_bytes += v.cache_hit_bytes;
                        x.compress_bytes_in += v.compress_bytes_in;
                        x.compress_bytes_out += v.compress_bytes_out;
                        for (a, b) in x.compressed.iter_mut().zip(v.compressed) {
                            *a += b;
                        }
                        for (a, b) in x.versions.iter_mut().zip(v.versions) {
                            *a += b;
                        }
                        for (a, b) in x.http2.iter_mut().zip(v.http2) {
                            *a += b;
                        }
                        for (a, b) in x.udp.iter_mut().zip(v.udp) {
                            *a += b;
                        }
                        for (a, b) in x.rtsp.iter_mut().zip(v.rtsp) {
                            *a += b;
                        }
                        for (a, b) in x.cache.iter_mut().zip(v.cache) {
                            *a += b;
                        }
                        for (a, b) in x.responses.iter_mut().zip(v.responses) {
                            *a += b;
                        }
                        for (a, b) in x.errors.iter_mut().zip(v.errors) {
                            *a += b;
                        }
                    }
                    None => t.virtual_servers.push(v),
                }
            }
            for n in s.nodes {
                match t.nodes.iter_mut().find(|x| x.pool == n.pool && x.node == n.node) {
                    Some(x) => {
                        x.current_connections += n.current_connections;
                        x.connections += n.connections;
                        x.idle_connections += n.idle_connections;
                        x.requests += n.requests;
                        x.bytes_out += n.bytes_out;
                        x.bytes_in += n.bytes_in;
                        x.failures += n.failures;
                        x.rt_us += n.rt_us;
                        x.rt_count += n.rt_count;
                        x.last_used = x.last_used.max(n.last_used);
                    }
                    None => t.nodes.push(n),
                }
            }
        }
        t
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn cache_counters_are_indexed_by_their_event() {
        for (i, (e, _)) in super::CACHE_COUNTERS.iter().enumerate() {
            assert_eq!(*e as usize, i);
        }
    }

    use super::*;

    #[test]
    fn sums_by_name_across_shards() {
        let a = VsCounters::default();
        a.connection();
        a.request(200, 10);
        a.request(503, 5);
        a.error(VsError::NoNode);
        a.bytes(100, 1000);
        let b = VsCounters::default();
        b.request(404, 1);
        b.bytes(7, 9);
        let later = SystemTime::now();
        let node = |last| NodeSnapshot {
            pool: "p".into(),
            node: "n:1".into(),
            requests: 2,
            last_used: last,
            ..NodeSnapshot::default()
        };
        let t = Totals::sum(vec![
            ShardSnapshot {
                generation: 1,
                virtual_servers: vec![a.snapshot("v", 1)],
                nodes: vec![node(None)],
                cache: Default::default(),
            },
            ShardSnapshot {
                generation: 1,
                virtual_servers: vec![b.snapshot("v", 2)],
                nodes: vec![node(Some(later))],
                cache: Default::default(),
            },
        ]);
        let v = &t.virtual_servers[0];
        assert_eq!((v.requests, v.connections, v.current_connections), (3, 1, 3));
        assert_eq!((v.bytes_in, v.bytes_out, v.time_us), (107, 1009, 16));
        assert_eq!(v.responses, [0, 1, 0, 1, 1]);
        assert_eq!(v.errors[VsError::NoNode as usize], 1);
        assert_eq!(t.nodes.len(), 1);
        assert_eq!((t.nodes[0].requests, t.nodes[0].last_used), (4, Some(later)));
    }
}
