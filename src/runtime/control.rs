//! The control plane's handle on a running shoal (A4, I2): applies a new
//! configuration to every shard, and collects statistics from them.
//!
//! Applying is all-or-nothing up to the hand-over: the configuration is
//! checked against what cannot change live, every new listener is bound
//! and every new access log opened first; any failure refuses the change
//! with its reason and the running generation stays. Only then is the new
//! generation sent to the shards, and `apply` returns once every shard
//! serves new connections and requests on it. SIGHUP and the REST API both
//! come through here, one change at a time.

use super::generation::Generation;
use super::mesh::{Reconfigure, ShardMsg};
use super::shard::ListenKey;
use crate::config::Config;
use crate::net::listener;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// How long `apply` and `stats` wait for every shard to answer.
const SHARD_REPLY: Duration = Duration::from_secs(10);

/// A bound listener: its actual address and the shards holding a socket.
pub struct Bound {
    actual: SocketAddr,
    shards: BTreeSet<usize>,
}

struct State {
    generation: Arc<Generation>,
    bound: BTreeMap<ListenKey, Bound>,
    log_paths: Vec<PathBuf>,
    access: crate::log::writer::LogSender,
    monitors: crate::monitor::schedule::Monitors,
    /// Nodes the autoscaler added, per pool: merged into every
    /// configuration applied (the files do not name them).
    autoscaled: BTreeMap<String, Vec<crate::config::model::Node>>,
}

pub struct Control {
    shards: Vec<flume::Sender<ShardMsg>>,
    state: Mutex<State>,
    /// A graceful stop began.
    stopping: std::sync::atomic::AtomicBool,
}

/// The listeners a configuration wants, and the sockets bound for them.
pub struct Listeners {
    /// Every listener and the shards that accept on it.
    pub wanted: BTreeMap<ListenKey, BTreeSet<usize>>,
    /// Per shard: the sockets it did not hold before.
    pub sockets: Vec<Vec<(ListenKey, listener::ListenSocket)>>,
    /// Every listener's actual address (port 0 resolved).
    pub actual: BTreeMap<ListenKey, SocketAddr>,
}

/// Bind what `config`'s listeners need on `n` shards beyond what `bound`
/// already holds: a new listener gets one `SO_REUSEPORT` socket per shard
/// (port 0 resolved once), a known one a socket for each shard it gains.
/// Any failure is the whole configuration's (sockets bound so far close).
pub fn bind(config: &Config, n: usize, bound: &BTreeMap<ListenKey, Bound>) -> Result<Listeners, String> {
    let mut l =
        Listeners { wanted: BTreeMap::new(), sockets: (0..n).map(|_| Vec::new()).collect(), actual: BTreeMap::new() };
    for vs in &config.virtual_servers {
        if let Some(x) = vs.shards.iter().flatten().find(|&&x| x >= n) {
            return Err(format!(
                "virtual server {}: shard {x} does not exist (running {n} shard(s), numbered from 0)",
                vs.name
            ));
        }
        let shards: BTreeSet<usize> = vs.shards.clone().map_or_else(|| (0..n).collect(), |s| s.into_iter().collect());
        let udp = vs.protocol == crate::config::Protocol::Udp;
        for addr in &vs.listen {
            let key = super::shard::listen_key(vs, *addr);
            // A traffic IP address is this member's only while it holds it.
            let freebind = config.traffic_ip_groups.iter().any(|g| g.addresses.contains(&addr.ip()));
            let err =
                |a: SocketAddr, e: std::io::Error| format!("virtual server {}: cannot listen on {a}: {e}", vs.name);
            let actual = match bound.get(&key) {
                Some(b) => {
                    for &sh in shards.difference(&b.shards) {
                        let sock =
                            listener::bind_any(b.actual, udp, vs.backlog, freebind).map_err(|e| err(b.actual, e))?;
                        l.sockets[sh].push((key.clone(), sock));
                    }
                    b.actual
                }
                None => {
                    let (a, socks) = listener::bind_any_group(*addr, udp, vs.backlog, shards.len(), freebind)
                        .map_err(|e| err(*addr, e))?;
                    for (&sh, sock) in shards.iter().zip(socks) {
                        l.sockets[sh].push((key.clone(), sock));
                    }
                    log::info!(
                        "virtual server {} listening on {a} ({}, pool {}, shards {:?})",
                        vs.name,
                        vs.protocol.name(),
                        config.pools[vs.pool].name,
                        shards
                    );
                    a
                }
            };
            l.actual.insert(key.clone(), actual);
            l.wanted.insert(key, shards.clone());
        }
    }
    Ok(l)
}

/// The first generation's listeners and writer, as `runtime::run` set them up.
pub struct Started {
    pub generation: Arc<Generation>,
    pub listeners: BTreeMap<ListenKey, BTreeSet<usize>>,
    pub actual: BTreeMap<ListenKey, SocketAddr>,
    pub log_paths: Vec<PathBuf>,
    pub access: crate::log::writer::LogSender,
    pub monitors: crate::monitor::schedule::Monitors,
}

impl Control {
    pub fn new(shards: Vec<flume::Sender<ShardMsg>>, s: Started) -> Control {
        let bound =
            s.listeners.into_iter().map(|(k, shards)| (k.clone(), Bound { actual: s.actual[&k], shards })).collect();
        Control {
            shards,
            state: Mutex::new(State {
                generation: s.generation,
                bound,
                log_paths: s.log_paths,
                access: s.access,
                monitors: s.monitors,
                autoscaled: BTreeMap::new(),
            }),
            stopping: std::sync::atomic::AtomicBool::new(false),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while applying leaves nothing half-done that a later
        // apply would trip on: the state is replaced only at the end.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The running configuration.
    pub fn config(&self) -> Arc<Config> {
        self.lock().generation.config.clone()
    }

    /// The running generation.
    pub fn current(&self) -> Arc<Generation> {
        self.lock().generation.clone()
    }

    /// Re-read the running configuration's main file and apply it (SIGHUP).
    pub fn reload(&self) -> Result<u64, String> {
        let path = {
            let s = self.lock();
            match s.generation.config.files.first() {
                Some(p) => p.clone(),
                None => return Err(format!("running {} has no file to re-read", s.generation.config.source)),
            }
        };
        let new = crate::cluster::load_with(&path, &Default::default()).map_err(|e| {
            let e = e.to_string();
            refused("SIGHUP", &e);
            e
        })?;
        self.apply_as(new, "SIGHUP")
    }

    /// Apply `new` live; returns the new generation's number. Raises
    /// `config.applied` or `config.refused` (`by`: what asked for it).
    pub fn apply_as(&self, new: Config, by: &str) -> Result<u64, String> {
        match self.apply_inner(new) {
            Ok((id, handlers)) => {
                crate::events::handlers::configure(&handlers);
                crate::events::certs::check(&self.config(), std::time::SystemTime::now());
                crate::events::emit(crate::events::Event::new(
                    &crate::events::catalogue::CONFIG_APPLIED,
                    "config",
                    format!("configuration generation {id} applied ({by})"),
                ));
                Ok(id)
            }
            Err(e) => {
                refused(by, &e);
                Err(e)
            }
        }
    }

    /// [`Control::apply_as`] for the REST API.
    pub fn apply(&self, new: Config) -> Result<u64, String> {
        self.apply_as(new, "REST API")
    }

    /// Pool `pool`'s autoscaled nodes are now `nodes` (J1): apply the
    /// running configuration with them.
    pub fn set_autoscaled(&self, pool: &str, nodes: Vec<crate::config::model::Node>) -> Result<u64, String> {
        let config = {
            let mut s = self.lock();
            let old = s.autoscaled.insert(pool.to_owned(), nodes).unwrap_or_default();
            let mut c = (*s.generation.config).clone();
            // The autoscaled nodes the running configuration has go; the
            // merge in apply puts the current ones back.
            for p in c.pools.iter_mut().filter(|p| p.name == pool) {
                p.nodes.retain(|n| !old.iter().any(|o| o.addr == n.addr));
            }
            c
        };
        self.apply_as(config, "autoscaler")
    }

    fn apply_inner(&self, mut new: Config) -> Result<(u64, Vec<crate::config::model::EventHandler>), String> {
        let mut s = self.lock();
        merge_autoscaled(&mut new, &s.autoscaled);
        let old = s.generation.config.clone();
        if new.global.shards != old.global.shards || new.global.ring_entries != old.global.ring_entries {
            return Err("global.shards and global.ring_entries cannot change while running (restart shoal)".into());
        }
        if new.responders != old.responders {
            return Err("responders cannot change while running (restart shoal)".into());
        }
        let api_listener = |c: &Config| c.api.as_ref().map(|a| (a.listen, a.tls.clone()));
        if api_listener(&new) != api_listener(&old) {
            // Not a reason to refuse the rest of the change: the listener
            // stays as it started; users and files_dir follow the new
            // configuration (without [api], every request gets a 401).
            log::warn!("[api] listen and tls apply at the next start; the API listener keeps its current ones");
        }
        // Every new socket and log file first: nothing is sent to a shard
        // unless all of them could be had.
        let n = self.shards.len();
        let Listeners { wanted, sockets, actual } = bind(&new, n, &s.bound)?;
        // New access logs, before the generation is built (building it
        // swaps certificates into running acceptors): each file opened is
        // numbered at once, so the writer and `log_paths` agree even if a
        // later one fails.
        for vs in &new.virtual_servers {
            let Some(p) = vs.http.access_log.as_ref().map(|a| &a.path) else { continue };
            if !s.log_paths.contains(p) {
                s.access.open(p)?;
                s.log_paths.push(p.clone());
            }
        }
        let st = &mut *s;
        let generation = Arc::new(st.generation.next(new, &mut st.log_paths)?);

        let (done_tx, done_rx) = flume::bounded(n);
        let mut missed = BTreeSet::new();
        for (i, (tx, listeners)) in self.shards.iter().zip(sockets).enumerate() {
            let msg = Reconfigure { generation: generation.clone(), listeners, done: done_tx.clone() };
            // A shard's inbox may be briefly full of balancing figures;
            // this message must not be dropped, so it waits its turn.
            if tx.send_timeout(ShardMsg::Reconfigure(Box::new(msg)), SHARD_REPLY).is_err() {
                // Stopping (or stuck): its new sockets went with the message.
                log::error!("shard {i} did not take configuration generation {}", generation.id);
                missed.insert(i);
            }
        }
        drop(done_tx);
        for _ in 0..n {
            if done_rx.recv_timeout(SHARD_REPLY).is_err() {
                log::error!("a shard did not confirm configuration generation {} in time", generation.id);
                break;
            }
        }
        for key in s.bound.keys().filter(|k| !wanted.contains_key(*k)).cloned().collect::<Vec<_>>() {
            log::info!("virtual server {}: no longer listening on {}", key.0, s.bound[&key].actual);
            s.bound.remove(&key);
        }
        for (key, mut shards) in wanted {
            let a = actual[&key];
            let had = s.bound.get(&key).map(|b| b.shards.clone()).unwrap_or_default();
            shards.retain(|sh| !missed.contains(sh) || had.contains(sh));
            s.bound.insert(key, Bound { actual: a, shards });
        }
        s.monitors.update(&generation);
        for note in &generation.notes {
            log::info!("{note}");
        }
        log::info!("configuration generation {} applied ({})", generation.id, generation.config.source);
        s.generation = generation.clone();
        Ok((generation.id, generation.config.event_handlers.clone()))
    }

    /// Every shard's statistics, summed (I2).
    pub fn stats(&self) -> crate::stats::Totals {
        let (tx, rx) = flume::bounded(self.shards.len());
        let mut asked = 0;
        for s in &self.shards {
            if s.send_timeout(ShardMsg::Snapshot(tx.clone()), SHARD_REPLY).is_ok() {
                asked += 1;
            }
        }
        drop(tx);
        let mut snaps = Vec::new();
        for _ in 0..asked {
            match rx.recv_timeout(SHARD_REPLY) {
                Ok(s) => snaps.push(s),
                Err(_) => break,
            }
        }
        crate::stats::Totals::sum(snaps)
    }

    /// Run `f` on every shard and return what each answered (in no
    /// particular order; a shard that does not answer in time is missing).
    pub fn on_every_shard<R, F>(&self, f: F) -> Vec<R>
    where
        R: Send + 'static,
        F: Fn(&std::rc::Rc<super::shard::Shard>) -> R + Send + Clone + 'static,
    {
        let (tx, rx) = flume::bounded(self.shards.len());
        let mut asked = 0;
        for s in &self.shards {
            let (tx, f) = (tx.clone(), f.clone());
            let job: super::call::Job = Box::new(move |shard| {
                let _ = tx.send(f(shard));
            });
            if s.send_timeout(ShardMsg::Call(job), SHARD_REPLY).is_ok() {
                asked += 1;
            }
        }
        drop(tx);
        (0..asked).map_while(|_| rx.recv_timeout(SHARD_REPLY).ok()).collect()
    }

    /// Ask every shard to stop gracefully (SIGTERM/SIGINT).
    pub fn shutdown(&self) {
        self.stopping.store(true, std::sync::atomic::Ordering::Relaxed);
        for c in &self.shards {
            let _ = c.send(ShardMsg::Shutdown);
        }
    }

    /// Whether a graceful stop began.
    pub fn is_stopping(&self) -> bool {
        self.stopping.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Reopen the access logs (SIGUSR1).
    pub fn reopen_logs(&self) {
        crate::events::actions::log::REOPEN.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let s = self.lock();
        if s.log_paths.is_empty() {
            log::info!("SIGUSR1: no access logs to reopen");
        } else {
            s.access.reopen();
        }
    }

    /// Flush the access logs (at exit).
    pub fn sync_logs(&self) {
        self.lock().access.sync(Duration::from_secs(5));
    }
}

/// Raise `config.refused` with the loader's (or applier's) message.
pub fn refused(by: &str, why: &str) {
    crate::events::emit(crate::events::Event::new(
        &crate::events::catalogue::CONFIG_REFUSED,
        "config",
        format!("configuration refused ({by}): {why}"),
    ));
}

/// Add the autoscaled nodes to their pools in `config` (those it already
/// names are left as they are; pools that no longer autoscale get none).
fn merge_autoscaled(config: &mut Config, autoscaled: &BTreeMap<String, Vec<crate::config::model::Node>>) {
    for p in config.pools.iter_mut().filter(|p| p.autoscale.is_some()) {
        for n in autoscaled.get(&p.name).into_iter().flatten() {
            match p.nodes.iter_mut().find(|o| o.addr == n.addr) {
                Some(o) => o.state = n.state,
                None => p.nodes.push(n.clone()),
            }
        }
    }
}
