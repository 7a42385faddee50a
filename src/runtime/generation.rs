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
//! - rate and bandwidth classes' schedules and service level classes'
//!   windows, by name,
//!   when the class's settings are unchanged;
//! - TLS termination and origination state (session caches, ticket keys),
//!   by virtual server or pool name when the TLS settings are unchanged
//!   (certificate files are re-read either way).
//!
//! The configuration is plain data; what is built from it to serve with
//! (TLS acceptors and connectors, [`Tls`]) is the generation's.

use crate::config::{Config, NodeState};
use crate::pool::health::NodeHealth;
use crate::tls::client::Connector;
use crate::tls::server::Acceptor;
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
    /// Rate classes, indexed like `config.rate_classes`.
    pub rate: crate::shaping::rate::RateClasses,
    /// Bandwidth classes, indexed like `config.bandwidth_classes`.
    pub bandwidth: crate::shaping::bandwidth::BandwidthClasses,
    /// Service level classes, indexed like `config.service_levels`.
    pub slm: crate::slm::Classes,
    /// The autoscaled pools' service levels (J1: their nodes' response
    /// times against `autoscale.response_time`), named `autoscale:POOL`;
    /// thresholds 0, so they never change state or raise events.
    pub autoscale: crate::slm::Classes,
    /// Per virtual server, its access log's number at the writer.
    pub vs_log: Vec<Option<usize>>,
    /// What changed from the previous generation, to log once applied.
    pub notes: Vec<String>,
    /// Modules added by the program embedding shoal (carried to every
    /// later generation).
    pub modules: crate::proxy::module::Modules,
    /// TLS acceptors and connectors built from the configuration.
    pub tls: Arc<Tls>,
    /// The rules' process-wide `data.*` store (carried to every later
    /// generation).
    pub rules_data: Arc<crate::rules::builtins::data::Store>,
}

/// The TLS objects a generation serves with, built from its settings.
#[derive(Default)]
pub struct Tls {
    /// Per virtual server: its acceptor, when it terminates TLS.
    pub acceptors: Vec<Option<Acceptor>>,
    /// Per pool: its connector, when it encrypts to its nodes.
    pub connectors: Vec<Option<Connector>>,
}

impl Tls {
    /// Build every acceptor and connector `config` asks for (reading the
    /// certificate files). With `prev`, the running generation: an object
    /// whose settings are unchanged is kept (its session cache and ticket
    /// keys carry over) with the newly read certificates swapped in, and
    /// only once everything has been built, so a failure changes nothing.
    fn build(config: &Config, prev: Option<(&Config, &Tls)>) -> Result<Tls, String> {
        let mut acceptors = Vec::new();
        for vs in &config.virtual_servers {
            acceptors.push(match &vs.tls {
                None => None,
                Some(t) => Some(
                    crate::tls::server::build(t, std::path::Path::new(""))
                        .map_err(|e| format!("virtual server {}: TLS: {}", vs.name, e.message))?,
                ),
            });
        }
        let mut connectors = Vec::new();
        for p in &config.pools {
            connectors.push(match &p.tls {
                None => None,
                Some(t) => Some(
                    crate::tls::client::build(t, std::path::Path::new(""))
                        .map_err(|e| format!("pool {}: TLS: {}", p.name, e.message))?,
                ),
            });
        }
        if let Some((old, old_tls)) = prev {
            for (vs, new) in config.virtual_servers.iter().zip(acceptors.iter_mut()) {
                let Some(new) = new else { continue };
                let kept = old.virtual_servers.iter().position(|o| o.name == vs.name && o.tls == vs.tls);
                if let Some(o) = kept.and_then(|i| old_tls.acceptors[i].as_ref()) {
                    o.resolver.replace_from(&new.resolver);
                    *new = o.clone();
                }
            }
            for (p, new) in config.pools.iter().zip(connectors.iter_mut()) {
                let Some(new) = new else { continue };
                let kept = old.pools.iter().position(|o| o.name == p.name && o.tls == p.tls);
                if let Some(o) = kept.and_then(|i| old_tls.connectors[i].as_ref()) {
                    o.replace_from(new);
                    *new = o.clone();
                }
            }
        }
        Ok(Tls { acceptors, connectors })
    }
}

impl Generation {
    /// The first generation: fresh state everywhere, the built-in modules
    /// only. `log_paths` is the writer's list of access-log files, extended
    /// with new ones. Fails when a certificate file no longer loads.
    pub fn first(config: Config, log_paths: &mut Vec<PathBuf>) -> Result<Generation, String> {
        Generation::first_with(config, Default::default(), log_paths)
    }

    /// [`Generation::first`] with `modules` added to the built-in ones.
    pub fn first_with(
        config: Config,
        modules: crate::proxy::module::Modules,
        log_paths: &mut Vec<PathBuf>,
    ) -> Result<Generation, String> {
        let tls = Arc::new(Tls::build(&config, None)?);
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
        let rate = crate::shaping::rate::build(&config.rate_classes, None);
        let bandwidth = crate::shaping::bandwidth::build(&config.bandwidth_classes, None);
        let slm = crate::slm::build(&config.service_levels, None);
        let autoscale = crate::slm::build(&autoscale_levels(&config), None);
        let vs_log = log_numbers(&config, log_paths);
        let rules_data = Arc::new(crate::rules::builtins::data::Store::new(
            config.global.rules.data_size,
            crate::rules::builtins::data::MAX_KEYS,
        ));
        Ok(Generation {
            id: 1,
            config: Arc::new(config),
            health,
            persist,
            rate,
            bandwidth,
            slm,
            autoscale,
            vs_log,
            notes: Vec::new(),
            modules,
            tls,
            rules_data,
        })
    }

    /// The generation after `self`, for `config`, carrying state over.
    /// Fails (changing nothing) when a certificate file does not load.
    pub fn next(&self, config: Config, log_paths: &mut Vec<PathBuf>) -> Result<Generation, String> {
        let old = &self.config;
        let mut notes = Vec::new();
        let tls = Arc::new(Tls::build(&config, Some((old, &self.tls)))?);
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
        let rate = crate::shaping::rate::build(&config.rate_classes, Some(&self.rate));
        let bandwidth = crate::shaping::bandwidth::build(&config.bandwidth_classes, Some(&self.bandwidth));
        let slm = crate::slm::build(&config.service_levels, Some(&self.slm));
        let autoscale = crate::slm::build(&autoscale_levels(&config), Some(&self.autoscale));
        let vs_log = log_numbers(&config, log_paths);
        self.rules_data.set_limit(config.global.rules.data_size);
        Ok(Generation {
            id: self.id + 1,
            config: Arc::new(config),
            health,
            persist,
            rate,
            bandwidth,
            slm,
            autoscale,
            vs_log,
            notes,
            modules: self.modules.clone(),
            tls,
            rules_data: self.rules_data.clone(),
        })
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

/// The service level each autoscaled pool is timed by.
fn autoscale_levels(config: &Config) -> Vec<crate::config::model::ServiceLevel> {
    config
        .pools
        .iter()
        .filter_map(|p| {
            let a = p.autoscale.as_ref()?;
            Some(crate::config::model::ServiceLevel {
                name: format!("autoscale:{}", p.name),
                response_time: a.response_time,
                warning: 0,
                serious: 0,
            })
        })
        .collect()
}

impl Generation {
    /// The service level pool `pool` is timed by, if it autoscales.
    pub fn pool_sla(&self, pool: &str) -> Option<Arc<crate::slm::ServiceLevel>> {
        let name = format!("autoscale:{pool}");
        self.autoscale.iter().find(|c| c.cfg.name == name).cloned()
    }
}
