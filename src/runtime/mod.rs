//! Process startup and shutdown: choose the shards' CPUs, bind every
//! listener once per shard, build the mesh and the first configuration
//! generation, start one pinned thread per shard, hand the control plane
//! to the signals (SIGHUP reloads, A4) and the API, and turn
//! SIGTERM/SIGINT into a graceful drain (A1, A5).

pub mod call;
pub mod control;
pub mod generation;
pub mod mesh;
pub mod ring;
pub mod shard;

use crate::config::{Config, Shards};
use crate::net::listener;
pub use control::Control;
use std::sync::Arc;

/// Run `config`, with `modules` added to the built-in HTTP modules, until
/// a graceful stop completes. `ready` is handed the control plane once
/// every shard runs (the REST API starts there).
pub fn run(
    config: Config,
    modules: crate::proxy::module::Modules,
    ready: impl FnOnce(Arc<Control>) -> Result<(), String>,
) -> Result<(), String> {
    let cpus = shard_cpus(&config.global.shards)?;
    let n = cpus.len();
    // Bind everything before starting any shard, so errors surface once.
    let control::Listeners { wanted, sockets, actual } = control::bind(&config, n, &Default::default())?;
    let mut responders = Vec::new();
    for (i, r) in config.responders.iter().enumerate() {
        let l = listener::bind_reuseport(r.listen, 128)
            .map_err(|e| format!("responder {}: cannot listen on {}: {e}", r.name, r.listen))?;
        log::info!("responder {} listening on {}", r.name, l.local_addr().map_err(|e| e.to_string())?);
        responders.push((i, l));
    }

    // Events: the dispatcher and the handlers first, so that everything
    // after can raise them.
    crate::events::start(config.events.keep)?;
    crate::events::handlers::configure(&config.event_handlers);
    // Access logs: one writer thread for all of them, files opened now.
    let mut log_paths = Vec::new();
    let generation = Arc::new(generation::Generation::first_with(config, modules, &mut log_paths)?);
    let access = crate::log::writer::start(log_paths.clone())?;
    let mut monitors = crate::monitor::schedule::Monitors::default();
    monitors.update(&generation);
    let (ends, senders) = mesh::build(n);
    let control = Arc::new(Control::new(
        senders,
        control::Started {
            generation: generation.clone(),
            listeners: wanted,
            actual,
            log_paths,
            access: access.clone(),
            monitors,
        },
    ));
    install_signals(control.clone())?;
    crate::autoscale::start(control.clone())?;
    // Certificates about to expire: now, at each applied configuration
    // (Control::apply_as), and once a day.
    crate::events::certs::check(&generation.config, std::time::SystemTime::now());
    {
        let control = control.clone();
        std::thread::Builder::new()
            .name("cert-check".into())
            .spawn(move || loop {
                std::thread::sleep(std::time::Duration::from_secs(86_400));
                crate::events::certs::check(&control.config(), std::time::SystemTime::now());
            })
            .map_err(|e| format!("cannot start the certificate check: {e}"))?;
    }
    let mut threads = Vec::new();
    for ((id, mesh), (cpu, listeners)) in ends.into_iter().enumerate().zip(cpus.into_iter().zip(sockets)) {
        let setup = shard::ShardSetup {
            id,
            nshards: n,
            cpu,
            generation: generation.clone(),
            mesh,
            listeners,
            responders: if id == 0 { std::mem::take(&mut responders) } else { Vec::new() },
            access: access.clone(),
        };
        let t = std::thread::Builder::new()
            .name(format!("shard-{id}"))
            .spawn(move || shard::run(setup))
            .map_err(|e| format!("cannot start shard {id}: {e}"))?;
        threads.push(t);
    }
    log::info!("shoal {} running {} shard(s) from {}", env!("CARGO_PKG_VERSION"), n, generation.config.source);
    drop(generation);
    if let Err(e) = ready(control.clone()) {
        log::error!("{e}; stopping");
        control.shutdown();
    }
    for t in threads {
        if t.join().is_err() {
            // Raised for the handlers that can still run before the exit.
            crate::events::emit(crate::events::Event::new(
                &crate::events::catalogue::PROCESS_TROUBLE,
                "shards",
                "a shard panicked; shoal stops",
            ));
            crate::events::flush(std::time::Duration::from_secs(2));
            return Err("a shard panicked".into());
        }
    }
    control.sync_logs();
    let last = control.current();
    for (c, rt) in last.config.persistence.iter().zip(last.persist.iter()) {
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
/// second. SIGHUP: re-read the configuration file and apply it live (A4);
/// a configuration that does not load or cannot be applied is refused
/// with its reason and the running one stays. SIGUSR1: reopen access logs.
fn install_signals(control: Arc<Control>) -> Result<(), String> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1};
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP, SIGUSR1])
        .map_err(|e| format!("cannot install signal handlers: {e}"))?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let mut stopping = false;
            for sig in signals.forever() {
                match sig {
                    SIGHUP => match control.reload() {
                        Ok(g) => log::info!("SIGHUP: configuration reloaded (generation {g})"),
                        Err(e) => log::error!("SIGHUP: reload refused: {e}; keeping the running configuration"),
                    },
                    SIGUSR1 => control.reopen_logs(),
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
                        control.shutdown();
                    }
                }
            }
        })
        .map_err(|e| format!("cannot start the signal thread: {e}"))?;
    Ok(())
}
