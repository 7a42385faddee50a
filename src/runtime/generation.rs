//! A configuration generation (A4): a validated [`Config`] plus the
//! process-wide runtime objects built for it, and the carry-over from the
//! generation before it. Everything here is `Send + Sync`; the control
//! plane builds a generation and hands it to every shard, which builds its
//! own view of it ([`super::shard::ShardView`]).
//!
//! What carries over, so a reload changes only what changed:
//! - node health cells (passive failures, monitor verdicts, the
//!   gradual-start ramp, `max_connections_per_node` slots), by pool name and
//!   node address;
//! - persistence classes' session tables, when the class's settings are
//!   unchanged (sessions name nodes by identities that survive a reload);
//! - TLS termination and origination state (session caches, ticket keys),
//!   by virtual server or pool name when the TLS settings are unchanged
//!   (certificate files are re-read either way).

use crate::config::{Config, NodeState};
use crate::pool::health::NodeHealth;
use std::path::PathBuf;
use std::sync::Arc;

pub struct Generation {
    /// 1 for the configuration shoal started with, +1 per applied change.
    pub id: u64,
    pub config: Arc<Config>,
    /// `health[pool][node]`, shared by every shard.
    pub health: Vec<Vec<Arc<NodeHealth>>>,
    /// Session persistence classes, indexed like `config.persistence`.
    pub persist: crate::persist::Classes,
    /// Per virtual server, its access log's number at the writer.
    pub vs_log: Vec<Option<usize>>,
    /// What changed from the previous generation, to log once applied.
    pub notes: Vec<String>,
    /// Modules added by the program embedding shoal (carried to every
    /// later generation).
    pub modules: crate::proxy::module::Modules,
}

impl Generation {
    /// The first generation: fresh state everywhere, the built-in modules
    /// only. `log_paths` is the writer's list of access-log files, extended
    /// with new ones.
    pub fn first(config: Config, log_paths: &mut Vec<PathBuf>) -> Generation {
        Generation::first_with(config, Default::default(), log_paths)
    }

    /// [`Generation::first`] with `modules` added to the built-in ones.
    pub fn first_with(
        config: Config,
        modules: crate::proxy::module::Modules,
        log_paths: &mut Vec<PathBuf>,
    ) -> Generation {
        let health = config
            .pools
            .iter()
            .map(|p| {
                p.nodes
                    .iter()
                    .map(|n| {
                        let h = Arc::new(NodeHealth::default());
                        h.disabled.store(n.state == NodeState::Disabled, std::sync::atomic::Ordering::Relaxed);
                        h
                    })
                    .collect()
            })
            .collect();
        let persist = crate::persist::build(&config, None);
        let vs_log = log_numbers(&config, log_paths);
        Generation { id: 1, config: Arc::new(config), health, persist, vs_log, notes: Vec::new(), modules }
    }

    /// The generation after `self`, for `config`, carrying state over.
    pub fn next(&self, mut config: Config, log_paths: &mut Vec<PathBuf>) -> Generation {
        let old = &self.config;
        let mut notes = Vec::new();
        // TLS state: keep the old acceptor or connector (session caches,
        // ticket keys) when nothing but certificate contents changed, with
        // the newly read certificates swapped in.
        for vs in &mut config.virtual_servers {
            let prev = old.virtual_servers.iter().find(|o| o.name == vs.name);
            if let (Some(new), Some(Some(o))) = (&mut vs.tls, prev.map(|p| &p.tls)) {
                if o.settings == new.settings {
                    o.acceptor.resolver.replace_from(&new.acceptor.resolver);
                    new.acceptor = o.acceptor.clone();
                }
            }
        }
        for p in &mut config.pools {
            let prev = old.pools.iter().find(|o| o.name == p.name);
            if let (Some(new), Some(Some(o))) = (&mut p.tls, prev.map(|p| &p.tls)) {
                if o.settings == new.settings {
                    o.connector.replace_from(&new.connector);
                    new.connector = o.connector.clone();
                }
            }
        }
        let health = config
            .pools
            .iter()
            .map(|p| {
                let prev = old.pools.iter().position(|o| o.name == p.name);
                p.nodes
                    .iter()
                    .map(|n| {
                        let carried = prev.and_then(|pi| {
                            let ni = old.pools[pi].nodes.iter().position(|o| o.addr == n.addr)?;
                            Some((old.pools[pi].nodes[ni].state, self.health[pi][ni].clone()))
                        });
                        let (was, h) = match carried {
                            Some((was, h)) => (Some(was), h),
                            None => (None, Arc::new(NodeHealth::default())),
                        };
                        h.disabled.store(n.state == NodeState::Disabled, std::sync::atomic::Ordering::Relaxed);
                        if was != Some(n.state) {
                            notes.push(match was {
                                Some(w) => {
                                    format!("pool {} node {}: state {} -> {}", p.name, n.name, w.name(), n.state.name())
                                }
                                None => format!("pool {} node {}: added ({})", p.name, n.name, n.state.name()),
                            });
                            if n.state == NodeState::Active && p.algorithm == crate::config::Algorithm::Perceptive {
                                // Gradual start, armed before any shard sees the node active.
                                h.ramp.start();
                                notes.push(format!(
                                    "pool {} node {}: gradual start (one request, then a ramp)",
                                    p.name, n.name
                                ));
                            }
                        }
                        h
                    })
                    .collect()
            })
            .collect();
        for p in &old.pools {
            let kept = config.pools.iter().find(|n| n.name == p.name);
            for n in &p.nodes {
                if !kept.is_some_and(|k| k.nodes.iter().any(|x| x.addr == n.addr)) {
                    notes.push(format!("pool {} node {}: removed", p.name, n.name));
                }
            }
        }
        let persist = crate::persist::build(&config, Some(&self.persist));
        let vs_log = log_numbers(&config, log_paths);
        Generation {
            id: self.id + 1,
            config: Arc::new(config),
            health,
            persist,
            vs_log,
            notes,
            modules: self.modules.clone(),
        }
    }
}

/// Each virtual server's access-log number in `paths`, adding new paths.
fn log_numbers(config: &Config, paths: &mut Vec<PathBuf>) -> Vec<Option<usize>> {
    config
        .virtual_servers
        .iter()
        .map(|vs| {
            vs.http.access_log.as_ref().map(|a| match paths.iter().position(|p| *p == a.path) {
                Some(i) => i,
                None => {
                    paths.push(a.path.clone());
                    paths.len() - 1
                }
            })
        })
        .collect()
}
