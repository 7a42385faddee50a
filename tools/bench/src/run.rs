//! The load itself: one thread per shard, pinned if asked, each running a
//! monoio runtime built exactly like shoal's (io_uring with DEFER_TASKRUN,
//! falling back the same way), with its share of the connections as tasks.
//! Shards share only a ticket counter (for `-n`) and send the main thread a
//! snapshot of their figures once a second.

use crate::args::{Opts, Target};
use hdrhistogram::Histogram;
use monoio::io::{AsyncWriteRent, AsyncWriteRentExt};
use monoio::net::TcpStream;
use shoal::http::chunked::ChunkedFramer;
use shoal::http::response::{self, ResponseHead};
use shoal::http::Framing;
use shoal::net::reader::Reader;
use shoal::net::stream::{ConnRead, ConnWrite, Split};
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

/// Granularity of the runtime's timers.
const TIMER_TICK: Duration = Duration::from_millis(1);

/// Latencies are recorded in microseconds, up to an hour, 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

#[derive(Debug, Clone, Default)]
pub struct Errors {
    pub connect: u64,
    pub timeout: u64,
    pub reset: u64,
    pub parse: u64,
    /// TLS handshakes that failed (an untrusted certificate, no common
    /// version): connection errors of their own kind.
    pub tls: u64,
}

impl Errors {
    pub fn total(&self) -> u64 {
        self.connect + self.timeout + self.reset + self.parse + self.tls
    }
}

#[derive(Debug, Clone)]
pub struct Stats {
    /// Latency from the intended send time (open loop) or the send (closed).
    pub latency: Histogram<u64>,
    /// Open loop only: latency from the actual send, uncorrected.
    pub uncorrected: Histogram<u64>,
    pub requests: u64,
    pub body_bytes: u64,
    pub statuses: BTreeMap<u16, u64>,
    pub errors: Errors,
    /// Connections opened (TCP connects that succeeded, before any TLS
    /// handshake): without `-k`, one per request.
    pub connections: u64,
    /// TLS handshakes completed, and how many of them resumed a session.
    pub tls_handshakes: u64,
    pub tls_resumed: u64,
}

impl Stats {
    pub fn new() -> Stats {
        Stats {
            latency: histogram(),
            uncorrected: histogram(),
            requests: 0,
            body_bytes: 0,
            statuses: BTreeMap::new(),
            errors: Errors::default(),
            connections: 0,
            tls_handshakes: 0,
            tls_resumed: 0,
        }
    }

    pub fn merge(&mut self, o: &Stats) {
        let _ = self.latency.add(&o.latency);
        let _ = self.uncorrected.add(&o.uncorrected);
        self.requests += o.requests;
        self.body_bytes += o.body_bytes;
        for (k, v) in &o.statuses {
            *self.statuses.entry(*k).or_default() += v;
        }
        self.errors.connect += o.errors.connect;
        self.errors.timeout += o.errors.timeout;
        self.errors.reset += o.errors.reset;
        self.errors.parse += o.errors.parse;
        self.errors.tls += o.errors.tls;
        self.connections += o.connections;
        self.tls_handshakes += o.tls_handshakes;
        self.tls_resumed += o.tls_resumed;
    }
}

/// What a shard tells the main thread each second and at the end.
pub struct Snapshot {
    pub shard: usize,
    pub stats: Stats,
    pub done: bool,
}

/// A shard's running totals, stored as it goes (each shard its own line of
/// cache): the progress lines read them on the main thread's own clock, so
/// a shard too busy to send its snapshot on time still counts.
#[repr(align(128))]
#[derive(Default)]
struct Live {
    requests: AtomicU64,
    errors: AtomicU64,
}

struct Plan {
    opts: Opts,
    live: Vec<Live>,
    /// Request bytes per target, for the lifetime of the run.
    requests: Vec<&'static [u8]>,
    start: Instant,
    deadline: Option<Instant>,
    /// Tickets handed out (for `-n`).
    issued: AtomicU64,
}

/// Run the load; returns the merged figures and the elapsed time.
pub fn run(opts: Opts) -> (Stats, Duration, Vec<String>) {
    let start = Instant::now();
    let requests = opts.targets.iter().map(|t: &Target| &*Box::leak(t.request.clone().into_boxed_slice())).collect();
    let deadline = opts.duration.map(|d| start + d);
    let live = (0..opts.threads).map(|_| Live::default()).collect();
    let plan = Arc::new(Plan { opts, live, requests, start, deadline, issued: AtomicU64::new(0) });
    let (tx, rx) = mpsc::channel::<Snapshot>();
    let threads = plan.opts.threads;
    let mut notes = Vec::new();
    let (note_tx, note_rx) = mpsc::channel::<String>();
    let mut handles = Vec::new();
    for shard in 0..threads {
        let (plan, tx, note_tx) = (plan.clone(), tx.clone(), note_tx.clone());
        let conns = plan.opts.concurrency / threads + usize::from(shard < plan.opts.concurrency % threads);
        let h = std::thread::Builder::new()
            .name(format!("bench-{shard}"))
            .spawn(move || {
                if let Some(&cpu) = plan.opts.cpus.get(shard % plan.opts.cpus.len().max(1)) {
                    core_affinity::set_for_current(core_affinity::CoreId { id: cpu });
                }
                let (mut rt, mode) = match shoal::runtime::ring::build(1024) {
                    Ok(x) => x,
                    Err(e) => {
                        let _ = note_tx.send(format!("shard {shard}: cannot build a runtime: {e}"));
                        let _ = tx.send(Snapshot { shard, stats: Stats::new(), done: true });
                        return;
                    }
                };
                let _ = note_tx.send(format!("shard {shard}: {}", mode.describe()));
                let stats = rt.block_on(shard_main(shard, plan, conns, tx.clone()));
                let _ = tx.send(Snapshot { shard, stats, done: true });
            })
            .expect("spawn a bench thread");
        handles.push(h);
    }
    drop(tx);
    drop(note_tx);
    let mut latest: Vec<Option<Stats>> = vec![None; threads];
    let mut done = 0;
    // Progress: one line a second on this thread's clock, with that
    // second's requests and rate, read from the shards' live totals.
    let (mut tick, mut last_tick) = (1u32, start);
    let (mut last_requests, mut last_errors) = (0u64, 0u64);
    // A shard that panicked never says it is done: stop when every thread
    // has ended, whatever it said.
    while done < threads && !handles.iter().all(|h| h.is_finished()) {
        let due = start + Duration::from_secs(u64::from(tick));
        match rx.recv_timeout(due.saturating_duration_since(Instant::now()).min(Duration::from_millis(200))) {
            Ok(s) => {
                done += usize::from(s.done);
                latest[s.shard] = Some(s.stats);
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        let now = Instant::now();
        if now < due || done >= threads {
            continue;
        }
        // Skip ticks missed entirely (a stalled terminal): one line per
        // wake-up, covering the time since the last.
        while start + Duration::from_secs(u64::from(tick)) <= now {
            tick += 1;
        }
        if plan.opts.quiet {
            continue;
        }
        let requests: u64 = plan.live.iter().map(|l| l.requests.load(Relaxed)).sum();
        let errors: u64 = plan.live.iter().map(|l| l.errors.load(Relaxed)).sum();
        let secs = (now - last_tick).as_secs_f64();
        let mut m = Stats::new();
        latest.iter().flatten().for_each(|s| m.merge(s));
        eprintln!(
            "[{:5.1}s] requests {:>9}  rate {:>9.0}/s  errors {:>6}  total {:>10}  p99 so far {}",
            (now - start).as_secs_f64(),
            requests - last_requests,
            (requests - last_requests) as f64 / secs,
            errors - last_errors,
            requests,
            if m.latency.is_empty() { "-".into() } else { crate::report::fmt_us(m.latency.value_at_quantile(0.99)) }
        );
        (last_tick, last_requests, last_errors) = (now, requests, errors);
    }
    notes.extend(note_rx.try_iter());
    while let Ok(s) = rx.try_recv() {
        latest[s.shard] = Some(s.stats);
    }
    for (i, h) in handles.into_iter().enumerate() {
        if h.join().is_err() {
            notes.push(format!("shard {i} failed; its figures are missing from the report"));
        }
    }
    let elapsed = start.elapsed();
    let mut total = Stats::new();
    latest.iter().flatten().for_each(|s| total.merge(s));
    (total, elapsed, notes)
}

async fn shard_main(shard: usize, plan: Arc<Plan>, conns: usize, tx: mpsc::Sender<Snapshot>) -> Stats {
    let stats = Rc::new(RefCell::new(Stats::new()));
    // Open loop: this shard's share of the rate, on its own schedule.
    let rate = plan.opts.rate.map(|r| r / plan.opts.threads as f64);
    let next_slot = Rc::new(Cell::new(0u64));
    let next_target = Rc::new(Cell::new(shard % plan.requests.len()));
    let reporter = {
        let (stats, tx) = (stats.clone(), tx.clone());
        monoio::spawn(async move {
            loop {
                monoio::time::sleep(Duration::from_millis(1000)).await;
                let _ = tx.send(Snapshot { shard, stats: stats.borrow().clone(), done: false });
            }
        })
    };
    let handles: Vec<_> = (0..conns)
        .map(|_| {
            let (plan, stats, next_slot, next_target) =
                (plan.clone(), stats.clone(), next_slot.clone(), next_target.clone());
            monoio::spawn(
                async move { conn_loop(&plan, &plan.live[shard], &stats, rate, &next_slot, &next_target).await },
            )
        })
        .collect();
    for h in handles {
        h.await;
    }
    drop(reporter);
    let s = stats.borrow().clone();
    s
}

enum Fail {
    Reset,
    Parse,
}

struct Conn {
    r: Reader<ConnRead>,
    w: ConnWrite,
}

/// `f` within `limit`, or without a timer when `limit` is zero
/// (`--timeout 0`: no limit, rather than an immediate timeout).
async fn within<T>(limit: Duration, f: impl std::future::Future<Output = T>) -> Result<T, ()> {
    if limit.is_zero() {
        Ok(f.await)
    } else {
        monoio::time::timeout(limit, f).await.map_err(|_| ())
    }
}

/// Connect to `target`, with a TLS handshake for `https://` targets. A
/// failed handshake is a connection error of its own kind (`tls`).
async fn open(opts: &Opts, target: &Target, stats: &RefCell<Stats>) -> Result<Conn, ()> {
    let s = match within(opts.timeout, TcpStream::connect_addr(target.addr)).await {
        Ok(Ok(s)) => s,
        _ => {
            stats.borrow_mut().errors.connect += 1;
            return Err(());
        }
    };
    stats.borrow_mut().connections += 1;
    let _ = s.set_nodelay(true);
    let split = match (&target.tls, &opts.tls) {
        (Some(name), Some(cfg)) => {
            // The shared config: its session cache is what lets the next
            // connection (any target, any task of this shard or another)
            // resume.
            let hs = shoal::tls::client::handshake(s, cfg.clone(), name.clone());
            match within(opts.timeout, hs).await {
                Ok(Ok(t)) => {
                    let mut st = stats.borrow_mut();
                    st.tls_handshakes += 1;
                    st.tls_resumed += u64::from(t.negotiated().resumed);
                    Split::tls(t)
                }
                _ => {
                    stats.borrow_mut().errors.tls += 1;
                    return Err(());
                }
            }
        }
        _ => Split::tcp(s),
    };
    Ok(Conn { r: Reader::new(split.r, Vec::with_capacity(64 * 1024)), w: split.w })
}

async fn conn_loop(
    plan: &Plan,
    live: &Live,
    stats: &RefCell<Stats>,
    rate: Option<f64>,
    next_slot: &Cell<u64>,
    next_target: &Cell<usize>,
) {
    let opts = &plan.opts;
    let mut conn: Option<Conn> = None;
    let mut resp = ResponseHead::default();
    loop {
        {
            // What the last turn counted, whichever way it ended.
            let s = stats.borrow();
            live.requests.store(s.requests, Relaxed);
            live.errors.store(s.errors.total(), Relaxed);
        }
        if let Some(limit) = opts.requests {
            if plan.issued.fetch_add(1, Relaxed) >= limit {
                return;
            }
        }
        // When this request should go out: now (closed loop) or its slot.
        let intended = match rate {
            Some(r) => {
                let slot = next_slot.get();
                next_slot.set(slot + 1);
                let t = plan.start + Duration::from_secs_f64(slot as f64 / r);
                if plan.deadline.is_some_and(|d| t >= d) {
                    return;
                }
                // The runtime's timers tick in milliseconds: wake up to one
                // tick early rather than late, so pacing error is not
                // reported as latency (latency then counts from whichever
                // came first, the intended time or the actual send).
                let wake = t.checked_sub(TIMER_TICK).unwrap_or(t);
                if wake > Instant::now() {
                    monoio::time::sleep_until(wake.into()).await;
                }
                t
            }
            None => {
                let now = Instant::now();
                if plan.deadline.is_some_and(|d| now >= d) {
                    return;
                }
                now
            }
        };
        let ti = next_target.get();
        next_target.set((ti + 1) % plan.requests.len());
        let (target, request) = (&opts.targets[ti], plan.requests[ti]);
        if conn.is_none() {
            match open(opts, target, stats).await {
                Ok(c) => conn = Some(c),
                Err(()) => {
                    // Do not spin on a refusing server.
                    monoio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            }
        }
        let Some(c) = conn.as_mut() else { continue };
        let sent = Instant::now();
        let outcome = within(opts.timeout, exchange(c, request, &mut resp)).await;
        let done = Instant::now();
        let mut s = stats.borrow_mut();
        match outcome {
            Ok(Ok((status, bytes, keep))) => {
                s.requests += 1;
                s.body_bytes += bytes;
                *s.statuses.entry(status).or_default() += 1;
                let us = |d: Duration| (d.as_micros() as u64).max(1);
                let _ = s.latency.record(us(done - intended.min(sent)));
                let _ = s.uncorrected.record(us(done - sent));
                if !(keep && opts.keepalive) {
                    conn = None;
                }
            }
            Ok(Err(Fail::Reset)) => {
                s.errors.reset += 1;
                conn = None;
            }
            Ok(Err(Fail::Parse)) => {
                s.errors.parse += 1;
                conn = None;
            }
            Err(_) => {
                s.errors.timeout += 1;
                conn = None;
            }
        }
    }
}

/// Send one request and read its whole response. Returns the status, body
/// bytes and whether the connection may be reused.
async fn exchange(c: &mut Conn, request: &'static [u8], resp: &mut ResponseHead) -> Result<(u16, u64, bool), Fail> {
    let (res, _) = c.w.write_all(request).await;
    res.map_err(|_| Fail::Reset)?;
    let _ = c.w.flush().await;
    loop {
        if !c.r.data().is_empty() {
            match response::parse(c.r.data(), 64 * 1024, false, resp) {
                Ok(Some(())) if (100..200).contains(&resp.status) => {
                    c.r.consume(resp.len);
                    continue;
                }
                Ok(Some(())) => break,
                Ok(None) => {}
                Err(_) => return Err(Fail::Parse),
            }
        }
        fill(&mut c.r, true).await?;
    }
    c.r.consume(resp.len);
    let (status, keep) = (resp.status, resp.node_keep_alive());
    let mut bytes = 0u64;
    match resp.framing {
        Framing::None => {}
        Framing::Length(n) => {
            while bytes < n {
                if c.r.data().is_empty() {
                    fill(&mut c.r, true).await?;
                }
                let take = c.r.data().len().min((n - bytes) as usize);
                c.r.consume(take);
                bytes += take as u64;
            }
        }
        Framing::Chunked => {
            let mut f = ChunkedFramer::default();
            while !f.is_done() {
                if c.r.data().is_empty() {
                    fill(&mut c.r, true).await?;
                }
                let mut payload = 0u64;
                let used = f.advance(c.r.data(), |r| payload += r.len() as u64).map_err(|_| Fail::Parse)?;
                bytes += payload;
                c.r.consume(used);
            }
        }
        Framing::UntilClose => loop {
            if c.r.data().is_empty() && fill(&mut c.r, false).await? == 0 {
                return Ok((status, bytes, false));
            }
            let n = c.r.data().len();
            bytes += n as u64;
            c.r.consume(n);
        },
    }
    Ok((status, bytes, keep))
}

async fn fill(r: &mut Reader<ConnRead>, need: bool) -> Result<usize, Fail> {
    match r.fill().await {
        Ok(0) if need => Err(Fail::Reset),
        Ok(n) => Ok(n),
        Err(_) => Err(Fail::Reset),
    }
}
