//! Running the monitors: one thread with its own io_uring runtime, one
//! task per (node address, monitor). A node in several pools under the
//! same monitor is tested once, and the verdict applies to it in each of
//! those pools.
//!
//! A node is marked down after `failures` consecutive failed tests and up
//! again after `successes` passed ones (which also clears its passive
//! failures). Tests start every `interval` whatever they took, so a node
//! that stops answering is marked down within `interval × failures` (plus
//! one `timeout`). Disabled nodes are not tested (C8).

use super::{Check, Checker, Target};
use crate::config::model::Monitor;
use crate::pool::health::NodeHealth;
use crate::runtime::generation::Generation;
use crate::util::event::Flag;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Instant;

/// One node under one monitor, and every (pool, node) it stands for.
struct Watch {
    monitor: Monitor,
    target: Target,
    /// "pool P node N" for each place the node appears, comma-separated
    /// (the subject of its log lines).
    places: String,
    health: Vec<Arc<NodeHealth>>,
}

impl Watch {
    /// The same test of the same node for the same places: a running
    /// watch equal to a new one keeps running (and keeps its verdict)
    /// across a reconfiguration.
    fn same(&self, o: &Watch) -> bool {
        self.monitor == o.monitor
            && self.target.addr == o.target.addr
            && self.target.tls.same(&o.target.tls)
            && self.places == o.places
            && self.health.len() == o.health.len()
            && self.health.iter().zip(&o.health).all(|(a, b)| Arc::ptr_eq(a, b))
    }
}

fn insecure() -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(crate::tls::provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(crate::tls::client::NoVerify(provider)))
        .with_no_client_auth();
    Arc::new(cfg)
}

fn watches(generation: &Generation) -> Vec<Watch> {
    let (config, health) = (&*generation.config, &generation.health);
    let mut by_key: BTreeMap<(SocketAddr, usize), Watch> = BTreeMap::new();
    let any_cert = insecure();
    for (pi, pool) in config.pools.iter().enumerate() {
        for &mi in &pool.monitors {
            for (ni, node) in pool.nodes.iter().enumerate() {
                let w = by_key.entry((node.addr, mi)).or_insert_with(|| Watch {
                    monitor: config.monitors[mi].clone(),
                    target: Target {
                        addr: node.addr,
                        name: node.name.clone(),
                        tls: generation.tls.connectors[pi].as_ref().map_or_else(
                            || super::TlsSource::AnyCertificate(any_cert.clone()),
                            |t| super::TlsSource::Pool(t.clone()),
                        ),
                    },
                    places: String::new(),
                    health: Vec::new(),
                });
                if !w.places.is_empty() {
                    w.places.push_str(", ");
                }
                w.places.push_str(&format!("pool {} node {}", pool.name, node.name));
                w.health.push(health[pi][ni].clone());
            }
        }
    }
    by_key.into_values().collect()
}

/// The monitor thread's handle: it starts with the first generation that
/// has monitors, and each later generation replaces the set of tests.
#[derive(Default)]
pub struct Monitors {
    tx: Option<flume::Sender<Vec<Watch>>>,
}

impl Monitors {
    /// Run the monitors of `generation`: tests that are the same as
    /// running ones go on undisturbed, others start, the rest stop.
    pub fn update(&mut self, generation: &Generation) {
        let watches = watches(generation);
        if self.tx.is_none() {
            if watches.is_empty() {
                return;
            }
            match start() {
                Ok(tx) => self.tx = Some(tx),
                Err(e) => {
                    trouble(format!("{e}; nodes are not monitored"));
                    return;
                }
            }
        }
        if let Some(tx) = &self.tx {
            let _ = tx.send(watches);
        }
    }
}

/// Start the monitor thread; it runs the sets of tests it is sent.
fn start() -> Result<flume::Sender<Vec<Watch>>, String> {
    let (tx, rx) = flume::unbounded::<Vec<Watch>>();
    std::thread::Builder::new()
        .name("monitors".into())
        .spawn(move || {
            let (mut rt, _) = match crate::runtime::ring::build(256) {
                Ok(x) => x,
                Err(e) => {
                    trouble(format!("monitors cannot start: {e}; nodes are not monitored"));
                    return;
                }
            };
            rt.block_on(async move {
                let mut running: Vec<(Rc<Watch>, Rc<Flag>)> = Vec::new();
                while let Ok(set) = rx.recv_async().await {
                    let mut next = Vec::new();
                    let mut started = 0;
                    for w in set {
                        match running.iter().position(|(r, _)| r.same(&w)) {
                            Some(i) => next.push(running.swap_remove(i)),
                            None => {
                                let (w, stop) = (Rc::new(w), Rc::new(Flag::default()));
                                monoio::spawn(watch(w.clone(), stop.clone()));
                                next.push((w, stop));
                                started += 1;
                            }
                        }
                    }
                    for (_, stop) in running.drain(..) {
                        stop.set();
                    }
                    running = next;
                    log::info!("monitors: {} test(s) of nodes ({started} new), on their own thread", running.len());
                }
            });
        })
        .map_err(|e| format!("cannot start the monitor thread: {e}"))?;
    Ok(tx)
}

async fn watch(w: Rc<Watch>, stop: Rc<Flag>) {
    let m = &w.monitor;
    let checker = Checker::new(m);
    let (mut failed, mut passed, mut down) = (0u32, 0u32, false);
    let mut next = Instant::now();
    loop {
        if !w.health.iter().all(|h| h.disabled.load(Relaxed)) {
            let result = match monoio::time::timeout(m.timeout, checker.check(&w.target)).await {
                Ok(r) => r,
                Err(_) => Err(format!("no result within {:?}", m.timeout)),
            };
            let places = &w.places;
            match result {
                Ok(detail) => {
                    (passed, failed) = (passed + 1, 0);
                    if m.verbose {
                        log::info!("monitor {}: {places}: passed ({detail})", m.name);
                    }
                    if down && passed >= m.successes {
                        down = false;
                        for h in &w.health {
                            h.set_monitor_down(false);
                            h.record_success();
                        }
                        verdict(&crate::events::catalogue::NODE_UP, m, &w, format!("{places}: node up ({detail})"));
                    }
                }
                Err(why) => {
                    (failed, passed) = (failed + 1, 0);
                    if m.verbose {
                        log::info!("monitor {}: {places}: failed ({why})", m.name);
                    }
                    if !down && failed >= m.failures {
                        down = true;
                        for h in &w.health {
                            h.set_monitor_down(true);
                        }
                        let text = format!("{places}: node down after {failed} failed test(s): {why}");
                        verdict(&crate::events::catalogue::NODE_DOWN, m, &w, text);
                    }
                }
            }
        } else if down {
            // Disabled while down: it carries no verdict until re-enabled.
            down = false;
            for h in &w.health {
                h.set_monitor_down(false);
            }
            (failed, passed) = (0, 0);
        }
        next += m.interval;
        let now = Instant::now();
        if next < now {
            next = now;
        }
        monoio::select! {
            _ = monoio::time::sleep_until(next.into()) => {},
            _ = stop.wait() => {
                // Replaced or removed by a reconfiguration: its verdict goes
                // with it.
                if down {
                    for h in &w.health {
                        h.set_monitor_down(false);
                    }
                }
                return;
            }
        }
    }
}

/// A monitor's verdict on a node changed: the log line and the event
/// (`node.up` or `node.down`, section `monitors/NAME`, the node's address
/// as a tag).
fn verdict(kind: &'static crate::events::catalogue::Kind, m: &Monitor, w: &Watch, text: String) {
    log::warn!("monitor {}: {text}", m.name);
    crate::events::emit(
        crate::events::Event::new(kind, format!("monitors/{}", m.name), text).tag(w.target.addr.to_string()),
    );
}

/// The monitor thread cannot run: logged, and `process.trouble` raised.
fn trouble(text: String) {
    log::error!("{text}");
    crate::events::emit(crate::events::Event::new(&crate::events::catalogue::PROCESS_TROUBLE, "monitors", text));
}
