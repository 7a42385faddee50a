//! The final report: text for people, JSON (`--json`) for machines.

use crate::args::Opts;
use crate::run::Stats;
use std::time::Duration;

const QUANTILES: [(&str, f64); 4] = [("p50", 0.50), ("p90", 0.90), ("p99", 0.99), ("p99.9", 0.999)];

pub fn fmt_us(us: u64) -> String {
    if us >= 1_000_000 {
        format!("{:.2}s", us as f64 / 1e6)
    } else if us >= 1000 {
        format!("{:.2}ms", us as f64 / 1e3)
    } else {
        format!("{us}us")
    }
}

fn error_pct(s: &Stats) -> f64 {
    let attempts = s.requests + s.errors.total();
    if attempts == 0 {
        0.0
    } else {
        100.0 * s.errors.total() as f64 / attempts as f64
    }
}

/// Whether the run passes the `--max-errors` threshold.
pub fn passes(opts: &Opts, s: &Stats) -> bool {
    let pct = error_pct(s);
    if opts.max_errors_pct == 0.0 {
        s.errors.total() == 0
    } else {
        pct <= opts.max_errors_pct
    }
}

pub fn text(opts: &Opts, s: &Stats, elapsed: Duration) -> String {
    use std::fmt::Write;
    let secs = elapsed.as_secs_f64().max(1e-9);
    let mut o = String::new();
    let mode = match opts.rate {
        Some(r) => format!("open loop at {r} req/s"),
        None => "closed loop".into(),
    };
    let _ = writeln!(
        o,
        "{} connections ({}), {} shard(s), {mode}",
        opts.concurrency,
        if opts.keepalive { "keepalive" } else { "a new connection per request" },
        opts.threads
    );
    let _ = writeln!(o, "requests     {}", s.requests);
    let _ = writeln!(o, "connections  {}", s.connections);
    let _ = writeln!(o, "duration     {secs:.3}s");
    let _ = writeln!(o, "req/s        {:.1}", s.requests as f64 / secs);
    let _ =
        writeln!(o, "body bytes/s {:.0} ({:.1} MB/s)", s.body_bytes as f64 / secs, s.body_bytes as f64 / secs / 1e6);
    let label = if opts.rate.is_some() { "latency (from intended send time, corrected)" } else { "latency" };
    let _ = write!(o, "{label}:");
    for (n, q) in QUANTILES {
        let _ = write!(o, " {n} {}", fmt_us(s.latency.value_at_quantile(q)));
    }
    let _ = writeln!(o, " max {}", fmt_us(s.latency.max()));
    if opts.rate.is_some() {
        let _ = write!(o, "latency (from actual send, uncorrected):");
        for (n, q) in QUANTILES {
            let _ = write!(o, " {n} {}", fmt_us(s.uncorrected.value_at_quantile(q)));
        }
        let _ = writeln!(o, " max {}", fmt_us(s.uncorrected.max()));
    }
    let statuses: Vec<String> = s.statuses.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    let _ = writeln!(o, "status codes {}", if statuses.is_empty() { "-".into() } else { statuses.join(", ") });
    if opts.tls.is_some() {
        let _ = writeln!(
            o,
            "TLS handshakes {} ({} resumed), {:.1}/s",
            s.tls_handshakes,
            s.tls_resumed,
            s.tls_handshakes as f64 / secs
        );
    }
    let e = &s.errors;
    let _ = writeln!(
        o,
        "errors       {} ({:.3}%): connect {}, tls {}, timeout {}, reset {}, parse {}",
        e.total(),
        error_pct(s),
        e.connect,
        e.tls,
        e.timeout,
        e.reset,
        e.parse
    );
    o
}

pub fn json(opts: &Opts, s: &Stats, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64().max(1e-9);
    let lat = |h: &hdrhistogram::Histogram<u64>| {
        let mut m = serde_json::Map::new();
        for (n, q) in QUANTILES {
            m.insert(n.into(), h.value_at_quantile(q).into());
        }
        m.insert("max".into(), h.max().into());
        m.insert("mean".into(), h.mean().into());
        serde_json::Value::Object(m)
    };
    let statuses: serde_json::Map<String, serde_json::Value> =
        s.statuses.iter().map(|(k, v)| (k.to_string(), (*v).into())).collect();
    let mut v = serde_json::json!({
        "mode": if opts.rate.is_some() { "open" } else { "closed" },
        "rate": opts.rate,
        "concurrency": opts.concurrency,
        "threads": opts.threads,
        "keepalive": opts.keepalive,
        "requests": s.requests,
        "connections": s.connections,
        "duration_s": secs,
        "requests_per_s": s.requests as f64 / secs,
        "body_bytes": s.body_bytes,
        "body_bytes_per_s": s.body_bytes as f64 / secs,
        "latency_us": lat(&s.latency),
        "statuses": statuses,
        "tls_handshakes": s.tls_handshakes,
        "tls_resumed": s.tls_resumed,
        "tls_handshakes_per_s": s.tls_handshakes as f64 / secs,
        "errors": {
            "total": s.errors.total(),
            "connect": s.errors.connect,
            "tls": s.errors.tls,
            "timeout": s.errors.timeout,
            "reset": s.errors.reset,
            "parse": s.errors.parse,
        },
    });
    if opts.rate.is_some() {
        v["latency_uncorrected_us"] = lat(&s.uncorrected);
    }
    v.to_string()
}
