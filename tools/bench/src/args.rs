//! Command line of shoal-bench: parsed and checked in one place, so the run
//! never meets a bad value.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub const USAGE: &str = "\
shoal-bench — HTTP/1.1 load generator (zeusbench-style), shard-per-core on io_uring

USAGE:
  shoal-bench [OPTIONS] URL
  shoal-bench [OPTIONS] --urls FILE

LOAD:
  -c, --concurrency N   connections kept busy at once [10]
  -n, --requests N      stop after N requests
  -t, --time SECS       stop after SECS seconds (default when -n is absent: 10)
  -r, --rate N          open loop: N requests/second on a fixed schedule;
                        latency counts from each request's intended send time
                        (coordinated-omission correction), and the uncorrected
                        figure is reported beside it
  -k, --keepalive       reuse connections (default: a new connection per request)
      --threads N       shards (threads pinned to CPUs) [1]
      --cpus LIST       pin shards to these CPUs, e.g. 1 or 0,2 [unpinned]
      --timeout SECS    per-request timeout, counted as a 'timeout' error
                        [10; 0 = none, which saves a timer per request]

REQUEST:
  -m, --method M        request method [GET]
  -H, --header 'K: V'   add a header (repeatable)
      --body FILE       request body (sent with Content-Length)
      --urls FILE       URLs, one per line, used round robin

OUTPUT:
      --json            print the final report as JSON on stdout
  -q, --quiet           no per-second progress lines
      --max-errors PCT  exit with status 2 if more than PCT% of requests
                        failed [0: any error fails the run]

TLS (https:// URLs):
      --ca FILE         trust the CA certificates in FILE (PEM) [the system's
                        bundle, /etc/ssl/certs/ca-certificates.crt]
      --insecure        accept any server certificate (handshake signatures
                        are still checked)
      --sni NAME        server name to send and verify [the URL's host]
      --no-tls-resume   full handshakes only: no session resumption (by
                        default sessions are cached and reconnections resume)

URLs are http://HOST[:PORT]/PATH or https://HOST[:PORT]/PATH. The report gives
requests, connections opened, req/s, body bytes/s, latency percentiles (p50,
p90, p99, p99.9, max) from an HdrHistogram, status code counts, for https://
the TLS handshakes (how many resumed, and per second: without -k, new
handshakes per second), and errors by kind (connect, tls, timeout, reset,
parse).
";

#[derive(Debug, Clone)]
pub struct Target {
    pub addr: SocketAddr,
    /// `https://`: the server name to send and verify.
    pub tls: Option<rustls::pki_types::ServerName<'static>>,
    /// The request bytes, built once.
    pub request: Vec<u8>,
}

#[derive(Debug, Clone)]
pub struct Opts {
    pub targets: Vec<Target>,
    pub concurrency: usize,
    pub requests: Option<u64>,
    pub duration: Option<Duration>,
    pub rate: Option<f64>,
    pub keepalive: bool,
    pub threads: usize,
    pub cpus: Vec<usize>,
    pub timeout: Duration,
    pub json: bool,
    pub quiet: bool,
    pub max_errors_pct: f64,
    /// The client configuration for `https://` targets (one for the whole
    /// run, so its session cache lets reconnections resume).
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

pub fn parse() -> Result<Opts, String> {
    use lexopt::prelude::*;
    let mut p = lexopt::Parser::from_env();
    let mut urls: Vec<String> = Vec::new();
    let mut urls_file: Option<PathBuf> = None;
    let (mut concurrency, mut requests, mut duration, mut rate) = (10usize, None, None, None);
    let (mut keepalive, mut threads, mut cpus, mut timeout) = (false, 1usize, Vec::new(), Duration::from_secs(10));
    let (mut method, mut headers, mut body) = ("GET".to_string(), Vec::<String>::new(), None::<Vec<u8>>);
    let (mut json, mut quiet, mut max_errors_pct) = (false, false, 0.0);
    let (mut ca, mut insecure, mut sni, mut resume) = (None::<PathBuf>, false, None::<String>, true);
    while let Some(arg) = p.next().map_err(|e| e.to_string())? {
        let val = |p: &mut lexopt::Parser| -> Result<String, String> {
            p.value().map_err(|e| e.to_string())?.string().map_err(|e| e.to_string())
        };
        let num = |p: &mut lexopt::Parser, what: &str| -> Result<f64, String> {
            let v = val(p)?;
            v.parse::<f64>()
                .ok()
                .filter(|x| x.is_finite() && *x >= 0.0)
                .ok_or_else(|| format!("{what}: not a number: {v}"))
        };
        match arg {
            Short('c') | Long("concurrency") => concurrency = num(&mut p, "--concurrency")? as usize,
            Short('n') | Long("requests") => requests = Some(num(&mut p, "--requests")? as u64),
            Short('t') | Long("time") => duration = Some(Duration::from_secs_f64(num(&mut p, "--time")?)),
            Short('r') | Long("rate") => rate = Some(num(&mut p, "--rate")?),
            Short('k') | Long("keepalive") => keepalive = true,
            Long("threads") => threads = num(&mut p, "--threads")? as usize,
            Long("cpus") => {
                cpus = val(&mut p)?
                    .split(',')
                    .map(|c| c.trim().parse().map_err(|_| format!("--cpus: bad CPU number {c}")))
                    .collect::<Result<_, _>>()?
            }
            Long("timeout") => timeout = Duration::from_secs_f64(num(&mut p, "--timeout")?),
            Short('m') | Long("method") => method = val(&mut p)?,
            Short('H') | Long("header") => headers.push(val(&mut p)?),
            Long("body") => {
                let f = val(&mut p)?;
                body = Some(std::fs::read(&f).map_err(|e| format!("--body {f}: {e}"))?);
            }
            Long("urls") => urls_file = Some(PathBuf::from(val(&mut p)?)),
            Long("json") => json = true,
            Short('q') | Long("quiet") => quiet = true,
            Long("max-errors") => max_errors_pct = num(&mut p, "--max-errors")?,
            Long("ca") => ca = Some(PathBuf::from(val(&mut p)?)),
            Long("insecure") => insecure = true,
            Long("sni") => sni = Some(val(&mut p)?),
            Long("no-tls-resume") => resume = false,
            Short('h') | Long("help") => {
                print!("{USAGE}");
                std::process::exit(0);
            }
            Value(v) => urls.push(v.string().map_err(|e| e.to_string())?),
            a => return Err(a.unexpected().to_string()),
        }
    }
    if let Some(f) = urls_file {
        let text = std::fs::read_to_string(&f).map_err(|e| format!("--urls {}: {e}", f.display()))?;
        urls.extend(text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(String::from));
    }
    if urls.is_empty() {
        return Err("no URL given (see --help)".into());
    }
    if concurrency == 0 || threads == 0 {
        return Err("--concurrency and --threads must be at least 1".into());
    }
    if rate == Some(0.0) {
        return Err("--rate must be positive".into());
    }
    if requests.is_none() && duration.is_none() {
        duration = Some(Duration::from_secs(10));
    }
    let threads = threads.min(concurrency);
    let targets: Vec<Target> = urls
        .iter()
        .map(|u| target(u, &method, &headers, body.as_deref(), keepalive, sni.as_deref()))
        .collect::<Result<_, _>>()?;
    let tls =
        if targets.iter().any(|t| t.tls.is_some()) { Some(tls_config(ca.as_deref(), insecure, resume)?) } else { None };
    Ok(Opts {
        targets,
        concurrency,
        requests,
        duration,
        rate,
        keepalive,
        threads,
        cpus,
        timeout,
        json,
        quiet,
        max_errors_pct,
        tls,
    })
}

const SYSTEM_ROOTS: &str = "/etc/ssl/certs/ca-certificates.crt";

fn tls_config(ca: Option<&std::path::Path>, insecure: bool, resume: bool) -> Result<Arc<rustls::ClientConfig>, String> {
    let provider = Arc::new(shoal::tls::provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = if insecure {
        builder.dangerous().with_custom_certificate_verifier(Arc::new(shoal::tls::client::NoVerify(provider)))
    } else {
        let path = ca.unwrap_or(std::path::Path::new(SYSTEM_ROOTS));
        builder.with_root_certificates(shoal::tls::load_roots(path).map_err(|e| format!("--ca: {e}"))?)
    };
    let mut cfg = builder.with_no_client_auth();
    if !resume {
        cfg.resumption = rustls::client::Resumption::disabled();
    }
    Ok(Arc::new(cfg))
}

fn target(
    url: &str,
    method: &str,
    headers: &[String],
    body: Option<&[u8]>,
    keepalive: bool,
    sni: Option<&str>,
) -> Result<Target, String> {
    let (rest, https) = match (url.strip_prefix("http://"), url.strip_prefix("https://")) {
        (Some(r), _) => (r, false),
        (_, Some(r)) => (r, true),
        _ => return Err(format!("{url}: only http:// and https:// URLs are supported")),
    };
    let (authority, path) = rest.split_once('/').map_or((rest, "/".to_string()), |(a, p)| (a, format!("/{p}")));
    let has_port = authority.rsplit_once(':').is_some_and(|(_, p)| p.parse::<u16>().is_ok());
    let with_port =
        if has_port { authority.to_string() } else { format!("{authority}:{}", if https { 443 } else { 80 }) };
    let tls = if https {
        let host = with_port.rsplit_once(':').map_or("", |(h, _)| h).trim_start_matches('[').trim_end_matches(']');
        let name = sni.unwrap_or(host).to_string();
        Some(
            rustls::pki_types::ServerName::try_from(name.clone())
                .map_err(|e| format!("{url}: server name {name}: {e}"))?,
        )
    } else {
        None
    };
    let addr = with_port
        .to_socket_addrs()
        .map_err(|e| format!("{url}: cannot resolve {authority}: {e}"))?
        .next()
        .ok_or_else(|| format!("{url}: {authority} resolves to nothing"))?;
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {authority}\r\n");
    for h in headers {
        if !h.contains(':') {
            return Err(format!("--header {h:?}: expected 'Name: value'"));
        }
        req += h;
        req += "\r\n";
    }
    if !keepalive {
        req += "Connection: close\r\n";
    }
    if let Some(b) = body {
        req += &format!("Content-Length: {}\r\n", b.len());
    }
    req += "\r\n";
    let mut request = req.into_bytes();
    if let Some(b) = body {
        request.extend_from_slice(b);
    }
    Ok(Target { addr, tls, request })
}
