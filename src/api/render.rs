//! Statistics as documents (I2): the JSON of `/api/tm/<v>/status/...` and
//! the Prometheus text exposition of `/metrics`, both from one summed
//! [`Totals`] and the running generation.

use crate::http::coding::Coding;
use crate::runtime::generation::Generation;
use crate::stats::{
    NodeSnapshot, Totals, VsSnapshot, CACHE_COUNTERS, H2_COUNTERS, RTSP_COUNTERS, UDP_COUNTERS, VERSIONS, VS_ERRORS,
};
use serde_json::{json, Map, Value};
use std::fmt::Write;
use std::time::{SystemTime, UNIX_EPOCH};

fn unix(t: Option<SystemTime>) -> Option<f64> {
    t.and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map(|d| d.as_secs_f64())
}

pub fn vs_json(v: &VsSnapshot, pool: &str, protocol: &str) -> Value {
    let classes = ["1xx", "2xx", "3xx", "4xx", "5xx"];
    let responses: Map<String, Value> = classes.iter().zip(v.responses).map(|(c, n)| ((*c).into(), n.into())).collect();
    let errors: Map<String, Value> =
        VS_ERRORS.iter().map(|(e, name)| ((*name).into(), v.errors[*e as usize].into())).collect();
    json!({
        "protocol": protocol,
        "pool": pool,
        "current_connections": v.current_connections,
        "total_connections": v.connections,
        "requests": v.requests,
        "bytes_in": v.bytes_in,
        "bytes_out": v.bytes_out,
        "responses": responses,
        "errors": errors,
        "request_time_avg_seconds": if v.requests > 0 { v.time_us as f64 / v.requests as f64 / 1e6 } else { 0.0 },
        "rule_errors": v.rule_errors,
        "cache": cache_json(v),
        "compression": compression_json(v),
        "requests_by_version": named(&VERSIONS, &v.versions),
        "http2": named(&H2_COUNTERS, &v.http2),
        "udp": named(&UDP_COUNTERS, &v.udp),
        "rtsp": named(&RTSP_COUNTERS, &v.rtsp),
    })
}

fn compression_json(v: &VsSnapshot) -> Value {
    let mut m: Map<String, Value> =
        Coding::ALL.iter().map(|c| (c.token().into(), v.compressed[c.index()].into())).collect();
    m.insert("bytes_in".into(), v.compress_bytes_in.into());
    m.insert("bytes_out".into(), v.compress_bytes_out.into());
    Value::Object(m)
}

/// `{"name": count, ...}` for counters kept in `kinds`' order.
fn named<K>(kinds: &[(K, &str)], counts: &[u64]) -> Map<String, Value> {
    kinds.iter().zip(counts).map(|((_, n), c)| ((*n).into(), (*c).into())).collect()
}

fn cache_json(v: &VsSnapshot) -> Value {
    let mut m = named(&CACHE_COUNTERS, &v.cache);
    m.insert("hit_bytes".into(), v.cache_hit_bytes.into());
    Value::Object(m)
}

/// The cache's tiers: objects, memory and what happened to them.
fn cache_tiers(g: &Generation, t: &Totals) -> Value {
    let c = &t.cache;
    json!({
        "memory": {
            "objects": c.objects,
            "bytes": c.bytes,
            "limit_bytes": g.config.cache.memory,
            "stored": c.stored,
            "evictions": c.evictions,
            "purged": c.purged,
        },
        "disk": {
            "objects": c.disk_objects,
            "bytes": c.disk_bytes,
            "limit_bytes": g.config.cache.disk.as_ref().map_or(0, |(_, n)| *n),
            "writes": c.disk_writes,
            "evictions": c.disk_evictions,
        }
    })
}

pub fn node_json(n: &NodeSnapshot, now: SystemTime) -> Value {
    let idle = n.last_used.and_then(|t| now.duration_since(t).ok()).map(|d| d.as_secs_f64());
    json!({
        "node": n.node,
        "pool": n.pool,
        "state": n.state,
        "health": n.health,
        "current_connections": n.current_connections,
        "idle_connections": n.idle_connections,
        "total_connections": n.connections,
        "requests": n.requests,
        "bytes_out": n.bytes_out,
        "bytes_in": n.bytes_in,
        "failures": n.failures,
        "response_time_avg_seconds": if n.rt_count > 0 { n.rt_us as f64 / n.rt_count as f64 / 1e6 } else { 0.0 },
        "last_used": unix(n.last_used),
        "seconds_since_last_used": idle,
    })
}

/// A pool's figures: its nodes', and their sums.
pub fn pool_json(g: &Generation, t: &Totals, pool: &str, now: SystemTime) -> Option<Value> {
    let p = g.config.pools.iter().find(|p| p.name == pool)?;
    let nodes: Vec<&NodeSnapshot> = t.nodes.iter().filter(|n| n.pool == pool).collect();
    let sum = |f: fn(&NodeSnapshot) -> u64| nodes.iter().map(|n| f(n)).sum::<u64>();
    Some(json!({
        "algorithm": p.algorithm.name(),
        "current_connections": sum(|n| n.current_connections),
        "requests": sum(|n| n.requests),
        "bytes_out": sum(|n| n.bytes_out),
        "bytes_in": sum(|n| n.bytes_in),
        "failures": sum(|n| n.failures),
        "nodes": nodes.iter().map(|n| node_json(n, now)).collect::<Vec<_>>(),
    }))
}

pub fn vs_status(g: &Generation, t: &Totals, name: &str) -> Option<Value> {
    let vs = g.config.virtual_servers.iter().find(|v| v.name == name)?;
    let snap = t.virtual_servers.iter().find(|v| v.name == name).cloned().unwrap_or_default();
    Some(vs_json(&snap, &g.config.pools[vs.pool].name, vs.protocol.name()))
}

/// The whole status document.
pub fn status(g: &Generation, t: &Totals) -> Value {
    let now = SystemTime::now();
    let vs: Map<String, Value> =
        g.config.virtual_servers.iter().filter_map(|v| Some((v.name.clone(), vs_status(g, t, &v.name)?))).collect();
    let pools: Map<String, Value> =
        g.config.pools.iter().filter_map(|p| Some((p.name.clone(), pool_json(g, t, &p.name, now)?))).collect();
    let persistence: Map<String, Value> = g
        .config
        .persistence
        .iter()
        .zip(g.persist.iter())
        .map(|(c, rt)| {
            let n = rt.store.counters();
            (
                c.name.clone(),
                json!({"type": c.kind.name(), "entries": n.entries, "max_entries": rt.store.max_entries, "evictions": n.evictions}),
            )
        })
        .collect();
    json!({
        "generation": g.id,
        "shards": t.shards,
        "virtual_servers": vs,
        "pools": pools,
        "persistence": persistence,
        "cache": cache_tiers(g, t),
        "rate_classes": rate_classes(g),
        "bandwidth_classes": bandwidth_classes(g),
        "service_levels": service_levels(g),
        "events": events_json(),
    })
}

/// The events raised and dropped, and each handler's counts.
fn events_json() -> Value {
    use std::sync::atomic::Ordering::Relaxed;
    let handlers: Map<String, Value> = crate::events::handlers::counters()
        .into_iter()
        .map(|(name, c, queued)| {
            (
                name,
                json!({
                    "delivered": c.delivered.load(Relaxed),
                    "failed": c.failed.load(Relaxed),
                    "retries": c.retries.load(Relaxed),
                    "dropped": c.dropped.load(Relaxed),
                    "queued": queued,
                }),
            )
        })
        .collect();
    json!({
        "emitted": crate::events::EMITTED.load(Relaxed),
        "dropped": crate::events::DROPPED.load(Relaxed),
        "handlers": handlers,
    })
}

/// Each rate class: its limits and counters.
fn rate_classes(g: &Generation) -> Map<String, Value> {
    g.rate
        .iter()
        .map(|r| {
            let n = &r.counters;
            let (contexts, context_evictions) = r.contexts();
            let get = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
            (
                r.cfg.name.clone(),
                json!({
                    "max_per_second": r.cfg.max_per_second,
                    "max_per_minute": r.cfg.max_per_minute,
                    "passed": get(&n.passed),
                    "queued": get(&n.queued),
                    "refused": get(&n.refused),
                    "waiting": get(&n.waiting),
                    "contexts": contexts,
                    "context_evictions": context_evictions,
                }),
            )
        })
        .collect()
}

/// Each bandwidth class: its rate and what went through it.
fn bandwidth_classes(g: &Generation) -> Map<String, Value> {
    use std::sync::atomic::Ordering::Relaxed;
    g.bandwidth
        .iter()
        .map(|b| {
            (
                b.cfg.name.clone(),
                json!({
                    "max_rate_bits": b.cfg.bits_per_second,
                    "per_connection": b.cfg.per_connection,
                    "bytes": b.bytes.load(Relaxed),
                    "waits": b.waits.load(Relaxed),
                }),
            )
        })
        .collect()
}

/// Each service level class: its window's reading and state.
fn service_levels(g: &Generation) -> Map<String, Value> {
    let now = std::time::Instant::now();
    g.slm
        .iter()
        .map(|s| {
            let (r, state) = s.read(now);
            let get = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
            (
                s.cfg.name.clone(),
                json!({
                    "state": state.name(),
                    "response_time_ms": s.cfg.response_time.as_millis() as u64,
                    "window": {
                        "requests": r.requests,
                        "conforming": r.conforming,
                        "percent_conforming": r.percent(),
                        "min_us": r.min_us,
                        "max_us": r.max_us,
                        "avg_us": r.avg_us,
                    },
                    "requests": get(&s.requests),
                    "conforming": get(&s.conforming),
                    "transitions": get(&s.transitions),
                }),
            )
        })
        .collect()
}

/// Escape a label value (backslash, quote, newline).
fn label(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

struct Metrics(String);

impl Metrics {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }
    /// A family with one sample per class (label `class`): (name, value).
    fn per_class<'a>(&mut self, name: &str, kind: &str, help: &str, classes: impl Iterator<Item = (&'a str, f64)>) {
        self.family(name, kind, help);
        for (class, v) in classes {
            self.sample(name, &[("class", class)], v);
        }
    }
    /// A counter family with one sample per virtual server and kind:
    /// label `label` takes each name of `kinds`, the value `counts(v)`'s
    /// entry in the same place.
    fn per_vs_kind<K>(
        &mut self,
        vss: &[VsSnapshot],
        name: &str,
        help: &str,
        label: &str,
        kinds: &[(K, &str)],
        counts: impl Fn(&VsSnapshot) -> &[u64],
    ) {
        self.family(name, "counter", help);
        for v in vss {
            for ((_, kind), n) in kinds.iter().zip(counts(v)) {
                self.sample(name, &[("virtual_server", &v.name), (label, kind)], *n as f64);
            }
        }
    }
    fn sample(&mut self, name: &str, labels: &[(&str, &str)], v: f64) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (k, val)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let _ = write!(self.0, "{k}=\"{}\"", label(val));
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {v}");
    }
}

/// The Prometheus text exposition (format 0.0.4).
pub fn prometheus(g: &Generation, t: &Totals) -> String {
    let mut m = Metrics(String::new());
    m.family("shoal_config_generation", "gauge", "Number of the running configuration generation.");
    m.sample("shoal_config_generation", &[], g.id as f64);
    m.family("shoal_shards", "gauge", "Shards (pinned executor threads) running.");
    m.sample("shoal_shards", &[], t.shards as f64);

    type VsField = fn(&VsSnapshot) -> f64;
    let vs_families: [(&str, &str, &str, VsField); 6] = [
        ("shoal_virtual_server_connections", "gauge", "Client connections open.", |v| v.current_connections as f64),
        ("shoal_virtual_server_connections_total", "counter", "Client connections accepted.", |v| v.connections as f64),
        ("shoal_virtual_server_requests_total", "counter", "HTTP requests finished.", |v| v.requests as f64),
        ("shoal_virtual_server_received_bytes_total", "counter", "Bytes received from clients.", |v| v.bytes_in as f64),
        ("shoal_virtual_server_sent_bytes_total", "counter", "Bytes sent to clients.", |v| v.bytes_out as f64),
        ("shoal_virtual_server_rule_errors_total", "counter", "Rule runs abandoned on a run-time error.", |v| {
            v.rule_errors as f64
        }),
    ];
    for (name, kind, help, f) in vs_families {
        m.family(name, kind, help);
        for v in &t.virtual_servers {
            m.sample(name, &[("virtual_server", &v.name)], f(v));
        }
    }
    m.family("shoal_virtual_server_responses_total", "counter", "HTTP responses sent, by status class.");
    for v in &t.virtual_servers {
        for (i, class) in ["1xx", "2xx", "3xx", "4xx", "5xx"].iter().enumerate() {
            m.sample(
                "shoal_virtual_server_responses_total",
                &[("virtual_server", &v.name), ("code", class)],
                v.responses[i] as f64,
            );
        }
    }
    m.family("shoal_virtual_server_errors_total", "counter", "Requests or connections that failed, by kind.");
    for v in &t.virtual_servers {
        for (e, kind) in VS_ERRORS {
            m.sample(
                "shoal_virtual_server_errors_total",
                &[("virtual_server", &v.name), ("kind", kind)],
                v.errors[e as usize] as f64,
            );
        }
    }
    m.family(
        "shoal_virtual_server_request_duration_seconds",
        "summary",
        "Time from a request's first byte to its response's last.",
    );
    for v in &t.virtual_servers {
        let l = [("virtual_server", v.name.as_str())];
        m.sample("shoal_virtual_server_request_duration_seconds_sum", &l, v.time_us as f64 / 1e6);
        m.sample("shoal_virtual_server_request_duration_seconds_count", &l, v.requests as f64);
    }

    let vss = &t.virtual_servers;
    m.per_vs_kind(
        vss,
        "shoal_virtual_server_cache_events_total",
        "Content cache events, by kind (docs/cache.md).",
        "event",
        &CACHE_COUNTERS,
        |v| &v.cache,
    );
    m.per_vs_kind(
        vss,
        "shoal_virtual_server_requests_by_version_total",
        "Requests by protocol version.",
        "version",
        &VERSIONS,
        |v| &v.versions,
    );
    m.per_vs_kind(
        vss,
        "shoal_virtual_server_http2_events_total",
        "HTTP/2 connection events (docs/http2.md).",
        "event",
        &H2_COUNTERS,
        |v| &v.http2,
    );
    m.per_vs_kind(
        vss,
        "shoal_virtual_server_udp_events_total",
        "UDP datagrams relayed and dropped (docs/udp.md).",
        "event",
        &UDP_COUNTERS,
        |v| &v.udp,
    );
    m.per_vs_kind(
        vss,
        "shoal_virtual_server_rtsp_events_total",
        "RTSP messages and frames relayed, answered and refused (docs/rtsp.md).",
        "event",
        &RTSP_COUNTERS,
        |v| &v.rtsp,
    );
    m.family("shoal_virtual_server_cache_hit_bytes_total", "counter", "Body bytes sent to clients from the cache.");
    for v in &t.virtual_servers {
        m.sample(
            "shoal_virtual_server_cache_hit_bytes_total",
            &[("virtual_server", &v.name)],
            v.cache_hit_bytes as f64,
        );
    }
    m.family(
        "shoal_virtual_server_compressed_responses_total",
        "counter",
        "Responses compressed, by coding (docs/shaping.md).",
    );
    for v in &t.virtual_servers {
        for c in Coding::ALL {
            m.sample(
                "shoal_virtual_server_compressed_responses_total",
                &[("virtual_server", &v.name), ("coding", c.token())],
                v.compressed[c.index()] as f64,
            );
        }
    }
    let bytes: [(&str, &str, VsField); 2] = [
        ("shoal_virtual_server_compression_in_bytes_total", "Body bytes into the compressors.", |v| {
            v.compress_bytes_in as f64
        }),
        ("shoal_virtual_server_compression_out_bytes_total", "Body bytes out of the compressors.", |v| {
            v.compress_bytes_out as f64
        }),
    ];
    for (name, help, get) in bytes {
        m.family(name, "counter", help);
        for v in &t.virtual_servers {
            m.sample(name, &[("virtual_server", &v.name)], get(v));
        }
    }
    let c = &t.cache;
    type CacheField = fn(&crate::cache::partition::PartitionStats) -> f64;
    let cache_families: [(&str, &str, &str, CacheField); 5] = [
        ("shoal_cache_objects", "gauge", "Objects stored.", |c| c.objects as f64),
        ("shoal_cache_bytes", "gauge", "Memory held by stored objects.", |c| c.bytes as f64),
        ("shoal_cache_stored_total", "counter", "Objects stored since the start.", |c| c.stored as f64),
        ("shoal_cache_evictions_total", "counter", "Objects evicted to stay within the limit.", |c| c.evictions as f64),
        ("shoal_cache_purged_total", "counter", "Objects removed by purges.", |c| c.purged as f64),
    ];
    for (name, kind, help, f) in cache_families {
        m.family(name, kind, help);
        m.sample(name, &[("tier", "memory")], f(c));
    }
    m.family("shoal_cache_limit_bytes", "gauge", "Bytes the tier may hold (cache.memory, cache.disk_size).");
    m.sample("shoal_cache_limit_bytes", &[("tier", "memory")], g.config.cache.memory as f64);
    m.sample(
        "shoal_cache_limit_bytes",
        &[("tier", "disk")],
        g.config.cache.disk.as_ref().map_or(0, |(_, n)| *n) as f64,
    );
    m.family("shoal_cache_disk_objects", "gauge", "Objects with a copy on disk.");
    m.sample("shoal_cache_disk_objects", &[("tier", "disk")], c.disk_objects as f64);
    m.family("shoal_cache_disk_bytes", "gauge", "Bytes of the disk tier's files.");
    m.sample("shoal_cache_disk_bytes", &[("tier", "disk")], c.disk_bytes as f64);
    m.family("shoal_cache_disk_writes_total", "counter", "Objects written to disk.");
    m.sample("shoal_cache_disk_writes_total", &[("tier", "disk")], c.disk_writes as f64);
    m.family("shoal_cache_disk_evictions_total", "counter", "Disk copies removed to stay within disk_size.");
    m.sample("shoal_cache_disk_evictions_total", &[("tier", "disk")], c.disk_evictions as f64);

    type NodeField = fn(&NodeSnapshot) -> f64;
    let node_families: [(&str, &str, &str, NodeField); 7] = [
        ("shoal_node_connections", "gauge", "Connections (or HTTP requests) in progress to the node.", |n| {
            n.current_connections as f64
        }),
        ("shoal_node_idle_connections", "gauge", "Idle keepalive connections to the node.", |n| {
            n.idle_connections as f64
        }),
        ("shoal_node_connections_total", "counter", "Connections opened to the node.", |n| n.connections as f64),
        ("shoal_node_requests_total", "counter", "Requests (or connections) sent to the node.", |n| n.requests as f64),
        ("shoal_node_sent_bytes_total", "counter", "Bytes sent to the node.", |n| n.bytes_out as f64),
        ("shoal_node_received_bytes_total", "counter", "Bytes received from the node.", |n| n.bytes_in as f64),
        ("shoal_node_failures_total", "counter", "Failures recorded against the node.", |n| n.failures as f64),
    ];
    for (name, kind, help, f) in node_families {
        m.family(name, kind, help);
        for n in &t.nodes {
            m.sample(name, &[("pool", &n.pool), ("node", &n.node)], f(n));
        }
    }
    m.family(
        "shoal_node_response_time_seconds",
        "summary",
        "Time from a request written to the node to its response head.",
    );
    for n in &t.nodes {
        let l = [("pool", n.pool.as_str()), ("node", n.node.as_str())];
        m.sample("shoal_node_response_time_seconds_sum", &l, n.rt_us as f64 / 1e6);
        m.sample("shoal_node_response_time_seconds_count", &l, n.rt_count as f64);
    }
    m.family("shoal_node_up", "gauge", "1 when the node is healthy (passive checks and monitors), else 0.");
    for n in &t.nodes {
        m.sample("shoal_node_up", &[("pool", &n.pool), ("node", &n.node)], if n.health == "alive" { 1.0 } else { 0.0 });
    }
    m.family("shoal_node_state", "gauge", "The node's configured state (1 for the state it is in).");
    for n in &t.nodes {
        for s in ["active", "draining", "disabled"] {
            m.sample(
                "shoal_node_state",
                &[("pool", &n.pool), ("node", &n.node), ("state", s)],
                if n.state == s { 1.0 } else { 0.0 },
            );
        }
    }
    m.family(
        "shoal_node_last_used_timestamp_seconds",
        "gauge",
        "When the node was last given a request or connection (0: never).",
    );
    for n in &t.nodes {
        m.sample(
            "shoal_node_last_used_timestamp_seconds",
            &[("pool", &n.pool), ("node", &n.node)],
            unix(n.last_used).unwrap_or(0.0),
        );
    }
    m.family("shoal_persistence_entries", "gauge", "Sessions remembered by a persistence class.");
    let counters: Vec<_> = g
        .config
        .persistence
        .iter()
        .zip(g.persist.iter())
        .map(|(c, rt)| (c.name.as_str(), rt.store.counters()))
        .collect();
    for (name, n) in &counters {
        m.sample("shoal_persistence_entries", &[("class", name)], n.entries as f64);
    }
    m.family("shoal_persistence_evictions_total", "counter", "Sessions evicted to stay within max_entries.");
    for (name, n) in &counters {
        m.sample("shoal_persistence_evictions_total", &[("class", name)], n.evictions as f64);
    }
    shaping_metrics(g, &mut m);
    event_metrics(&mut m);
    m.0
}

/// Rate classes' and service level classes' families.
/// Events raised and dropped, and each handler's counts (docs/events.md).
fn event_metrics(m: &mut Metrics) {
    use std::sync::atomic::Ordering::Relaxed;
    m.family("shoal_events_total", "counter", "Events raised.");
    m.sample("shoal_events_total", &[], crate::events::EMITTED.load(Relaxed) as f64);
    m.family(
        "shoal_events_dropped_total",
        "counter",
        "Events dropped before any handler saw them (the dispatcher was behind).",
    );
    m.sample("shoal_events_dropped_total", &[], crate::events::DROPPED.load(Relaxed) as f64);
    let handlers = crate::events::handlers::counters();
    type Count = fn(&crate::events::handlers::Counters) -> u64;
    let families: [(&str, &str, Count); 4] = [
        ("shoal_event_handler_delivered_total", "Events a handler delivered.", |c| c.delivered.load(Relaxed)),
        ("shoal_event_handler_failed_total", "Events a handler's action refused for good.", |c| c.failed.load(Relaxed)),
        ("shoal_event_handler_retries_total", "Deliveries a handler will try again.", |c| c.retries.load(Relaxed)),
        ("shoal_event_handler_dropped_total", "Events that did not fit in a handler's queue.", |c| {
            c.dropped.load(Relaxed)
        }),
    ];
    for (name, help, get) in families {
        m.family(name, "counter", help);
        for (h, c, _) in &handlers {
            m.sample(name, &[("handler", h)], get(c) as f64);
        }
    }
}

fn shaping_metrics(g: &Generation, m: &mut Metrics) {
    use std::sync::atomic::Ordering::Relaxed;
    m.family("shoal_rate_class_requests_total", "counter", "Requests through a rate class, by outcome.");
    for r in g.rate.iter() {
        let n = &r.counters;
        for (outcome, v) in [("passed", &n.passed), ("queued", &n.queued), ("refused", &n.refused)] {
            m.sample(
                "shoal_rate_class_requests_total",
                &[("class", &r.cfg.name), ("outcome", outcome)],
                v.load(Relaxed) as f64,
            );
        }
    }
    let load = |a: &std::sync::atomic::AtomicU64| a.load(Relaxed) as f64;
    let bandwidth = || g.bandwidth.iter().map(|b| (b.cfg.name.as_str(), b));
    m.per_class(
        "shoal_bandwidth_class_bytes_total",
        "counter",
        "Bytes sent at a bandwidth class's pace.",
        bandwidth().map(|(n, b)| (n, load(&b.bytes))),
    );
    m.per_class(
        "shoal_bandwidth_class_waits_total",
        "counter",
        "Pieces that waited for their turn in a bandwidth class.",
        bandwidth().map(|(n, b)| (n, load(&b.waits))),
    );
    m.per_class(
        "shoal_rate_class_waiting",
        "gauge",
        "Requests waiting in a rate class's queues now.",
        g.rate.iter().map(|r| (r.cfg.name.as_str(), load(&r.counters.waiting))),
    );
    let now = std::time::Instant::now();
    let readings: Vec<_> = g.slm.iter().map(|s| (s, s.read(now))).collect();
    let slm = || readings.iter().map(|(s, reading)| (s.cfg.name.as_str(), s, reading));
    m.per_class(
        "shoal_service_level_conforming_percent",
        "gauge",
        "Share of the last 10 s of requests within the class's response time.",
        slm().map(|(n, _, (r, _))| (n, r.percent() as f64)),
    );
    m.per_class(
        "shoal_service_level_state",
        "gauge",
        "A service level class's state: 0 ok, 1 warning, 2 serious.",
        slm().map(|(n, _, (_, state))| (n, *state as u8 as f64)),
    );
    m.family("shoal_service_level_response_seconds", "gauge", "Response times in the last 10 s, by statistic.");
    for (s, (r, _)) in &readings {
        for (stat, us) in [("min", r.min_us), ("avg", r.avg_us), ("max", r.max_us)] {
            m.sample(
                "shoal_service_level_response_seconds",
                &[("class", &s.cfg.name), ("stat", stat)],
                us as f64 / 1e6,
            );
        }
    }
    m.per_class(
        "shoal_service_level_requests_total",
        "counter",
        "Requests timed by a service level class.",
        slm().map(|(n, s, _)| (n, load(&s.requests))),
    );
    m.per_class(
        "shoal_service_level_conforming_total",
        "counter",
        "Timed requests within the class's response time.",
        slm().map(|(n, s, _)| (n, load(&s.conforming))),
    );
}
