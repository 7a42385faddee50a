//! Process startup and shutdown: choose the shards' CPUs, bind every
//! listener once per shard, build the mesh and the shared health cells,
//! start one pinned thread per shard, and turn SIGTERM/SIGINT into a
//! graceful drain (A1, A5).

pub mod mesh;
pub mod ring;
pub mod shard;

use crate::config::{Algorithm, Config, NodeState, Shards};
use crate::net::listener;
use crate::pool::health::NodeHealth;
use std::sync::Arc;

/// Run `config` until a graceful stop completes.
pub fn run(config: Config) -> Result<(), String> {
    let cpus = shard_cpus(&config.global.shards)?;
    let n = cpus.len();
    for vs in &config.virtual_servers {
        if let Some(s) = vs.shards.iter().flatten().find(|&&s| s >= n) {
            return Err(format!(
                "virtual server {}: shard {s} does not exist (running {n} shard(s), numbered from 0)",
                vs.name
            ));
        }
    }

    // Bind everything before starting any shard, so errors surface once.
    let mut per_shard: Vec<Vec<(usize, std::net::TcpListener)>> = (0..n).map(|_| Vec::new()).collect();
    for (i, vs) in config.virtual_servers.iter().enumerate() {
        let shards: Vec<usize> = vs.shards.clone().unwrap_or_else(|| (0..n).collect());
        for addr in &vs.listen {
            let (actual, socks) = listener::bind_group(*addr, vs.backlog, shards.len())
                .map_err(|e| format!("virtual server {}: cannot listen on {addr}: {e}", vs.name))?;
            for (s, sock) in shards.iter().zip(socks) {
                per_shard[*s].push((i, sock));
            }
            log::info!(
                "virtual server {} listening on {actual} ({}, pool {}, shards {:?})",
                vs.name,
                vs.protocol.name(),
                config.pools[vs.pool].name,
                shards
            );
        }
    }
    let mut responders = Vec::new();
    for (i, r) in config.responders.iter().enumerate() {
        let l = listener::bind_reuseport(r.listen, 128)
            .map_err(|e| format!("responder {}: cannot listen on {}: {e}", r.name, r.listen))?;
        log::info!("responder {} listening on {}", r.name, l.local_addr().map_err(|e| e.to_string())?);
        responders.push((i, l));
    }

    let health: Arc<Vec<Vec<Arc<NodeHealth>>>> = Arc::new(
        config.pools.iter().map(|p| p.nodes.iter().map(|_| Arc::new(NodeHealth::default())).collect()).collect(),
    );
    // Access logs: one writer thread for all of them, files opened now.
    let mut log_paths = Vec::new();
    let vs_log: Vec<Option<usize>> = config
        .virtual_servers
        .iter()
        .map(|vs| {
            vs.http.access_log.as_ref().map(|a| {
                log_paths.push(a.path.clone());
                log_paths.len() - 1
            })
        })
        .collect();
    let access = if log_paths.is_empty() { None } else { Some(crate::log::writer::start(log_paths)?) };

    for (pi, p) in config.pools.iter().enumerate() {
        for (ni, n) in p.nodes.iter().enumerate() {
            health[pi][ni].disabled.store(n.state == NodeState::Disabled, std::sync::atomic::Ordering::Relaxed);
        }
    }
    let persist = crate::persist::build(&config);
    let (ends, control) = mesh::build(n);
    let config = Arc::new(config);
    crate::monitor::schedule::start(config.clone(), health.clone())?;
    install_signals(control, (*config).clone(), health.clone(), access.clone())?;
    let mut threads = Vec::new();
    for ((id, mesh), (cpu, listeners)) in ends.into_iter().enumerate().zip(cpus.into_iter().zip(per_shard)) {
        let setup = shard::ShardSetup {
            id,
            nshards: n,
            cpu,
            config: config.clone(),
            health: health.clone(),
            mesh,
            listeners,
            responders: if id == 0 { std::mem::take(&mut responders) } else { Vec::new() },
            access: access.clone(),
            vs_log: vs_log.clone(),
            persist: persist.clone(),
        };
        let t = std::thread::Builder::new()
            .name(format!("shard-{id}"))
            .spawn(move || shard::run(setup))
            .map_err(|e| format!("cannot start shard {id}: {e}"))?;
        threads.push(t);
    }
    log::info!("shoal {} running {} shard(s) from {}", env!("CARGO_PKG_VERSION"), n, config.source);
    for t in threads {
        if t.join().is_err() {
            return Err("a shard panicked".into());
        }
    }
    if let Some(a) = &access {
        a.sync(std::time::Duration::from_secs(5));
    }
    for (c, rt) in config.persistence.iter().zip(persist.iter()) {
        let n = rt.store.counters();
        log::info!(
            "persistence {}: {} entries (max {}), {} evicted, oldest entry {} s old",
            c.name,
            n.entries,
            rt.store.max_entries,
            n.evictions,
            n.oldest_age_s
        );
    }
    log::info!("stopped");
    Ok(())
}

/// CPU for each shard (`None` = unpinned, when the CPU set is unknown).
fn shard_cpus(spec: &Shards) -> Result<Vec<Option<usize>>, String> {
    let avail: Vec<usize> = core_affinity::get_core_ids().unwrap_or_default().into_iter().map(|c| c.id).collect();
    Ok(match spec {
        Shards::Auto if avail.is_empty() => {
            log::warn!("cannot read this process's CPU set; running one unpinned shard");
            vec![None]
        }
        Shards::Auto => avail.into_iter().map(Some).collect(),
        Shards::Count(k) if avail.is_empty() => vec![None; *k],
        Shards::Count(k) => {
            if *k > avail.len() {
                log::warn!("{k} shards on {} CPU(s): shards will share CPUs", avail.len());
            }
            (0..*k).map(|i| Some(avail[i % avail.len()])).collect()
        }
        Shards::Cpus(list) => {
            for c in list {
                if !avail.is_empty() && !avail.contains(c) {
                    return Err(format!(
                        "global.shards: CPU {c} is not available to this process (allowed: {avail:?})"
                    ));
                }
            }
            list.iter().copied().map(Some).collect()
        }
    })
}

/// SIGTERM/SIGINT: graceful stop on the first, immediate exit on the
/// second. SIGHUP: re-read the configuration file and apply node state
/// changes (active/draining/disabled); any other change is refused with a
/// log line and the running configuration stays (full live
/// reconfiguration is a later step).
fn install_signals(
    control: Vec<flume::Sender<mesh::ShardMsg>>,
    mut current: Config,
    health: Arc<Vec<Vec<Arc<NodeHealth>>>>,
    access: Option<crate::log::writer::LogSender>,
) -> Result<(), String> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1};
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP, SIGUSR1])
        .map_err(|e| format!("cannot install signal handlers: {e}"))?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let mut stopping = false;
            for sig in signals.forever() {
                match sig {
                    SIGHUP => reload(&control, &mut current, &health),
                    SIGUSR1 => match &access {
                        Some(a) => a.reopen(),
                        None => log::info!("SIGUSR1: no access logs to reopen"),
                    },
                    _ if stopping => {
                        log::warn!("second stop signal: exiting now");
                        std::process::exit(1);
                    }
                    _ => {
                        stopping = true;
                        log::info!(
                            "{} received: stopping gracefully",
                            if sig == SIGTERM { "SIGTERM" } else { "SIGINT" }
                        );
                        for c in &control {
                            let _ = c.send(mesh::ShardMsg::Shutdown);
                        }
                    }
                }
            }
        })
        .map_err(|e| format!("cannot start the signal thread: {e}"))?;
    Ok(())
}

fn reload(control: &[flume::Sender<mesh::ShardMsg>], current: &mut Config, health: &[Vec<Arc<NodeHealth>>]) {
    let Some(path) = current.files.first().cloned() else {
        log::warn!("SIGHUP: running {} has no file to re-read; nothing changed", current.source);
        return;
    };
    let new = match crate::config::load_file(&path) {
        Ok(c) => c,
        Err(e) => {
            log::error!("SIGHUP: reload refused: {e}; keeping the running configuration");
            return;
        }
    };
    let Some(changes) = current.node_state_changes(&new) else {
        log::warn!(
            "SIGHUP: the new configuration changes more than node states; this version applies only node state changes live \
             (restart to apply the rest); keeping the running configuration"
        );
        return;
    };
    current.reload_certificates(&new);
    if changes.is_empty() {
        log::info!("SIGHUP: configuration re-read (certificates reloaded); no other changes");
    }
    for (pool, node, state) in changes {
        let (p, n) = (&current.pools[pool], &current.pools[pool].nodes[node]);
        log::info!("pool {} node {}: state {} -> {}", p.name, n.name, n.state.name(), state.name());
        if state == NodeState::Active && p.algorithm == Algorithm::Perceptive {
            // Gradual start: armed before any shard sees the node active.
            health[pool][node].ramp.start();
            log::info!("pool {} node {}: gradual start (one request, then a ramp)", p.name, n.name);
        }
        health[pool][node].disabled.store(state == NodeState::Disabled, std::sync::atomic::Ordering::Relaxed);
        for c in control {
            let _ = c.send(mesh::ShardMsg::NodeState { pool, node, state });
        }
        current.pools[pool].nodes[node].state = state;
    }
}
