//! Autoscaling (J1): pools that grow and shrink through a driver program
//! (the source product's contract, [`driver`]), to keep their nodes'
//! response times within a service level.
//!
//! One thread (the autoscaler) looks at every autoscaled pool twice a
//! second: the share of its node responses within `response_time` over
//! the last 10 s (a service level every shard records into,
//! `Generation::pool_sla`) and its node count. Below `scale_up_below` for
//! `hysteresis`, with `refractory` since its last action and fewer than
//! `max_nodes`, it asks the driver for a node (`createnode`), waits until
//! `status` says it is active and complete, and adds it to the pool
//! through the live-reconfiguration path (`Control::set_autoscaled`,
//! which keeps it across reloads); a perceptive pool gives it a gradual
//! start. Above `scale_down_above` (and no requests count as conforming),
//! it drains the oldest node it added, waits until its connections end
//! (or `drain_time`), asks the driver to destroy it and removes it. Fewer
//! than `min_nodes` or more than `max_nodes` are corrected the same way.
//!
//! A driver error (a code of 400 or more, anything on standard error)
//! pauses autoscaling for those credentials: no action until a `status`
//! call with them succeeds (tried every 2 s). Every action, error, pause
//! and resumption raises an event (`autoscale.action`, `autoscale.error`).

pub mod driver;

use crate::config::model::{Autoscale, Node};
use crate::config::NodeState;
use crate::events::{catalogue, emit, Event};
use crate::runtime::Control;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long one driver call may take.
const DRIVER_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a created node may take to become active.
const CREATE_TIMEOUT: Duration = Duration::from_secs(120);

/// A node the autoscaler added.
#[derive(Debug, Clone)]
struct Managed {
    id: String,
    name: String,
    addr: SocketAddr,
    created: u64,
    draining: bool,
}

#[derive(Default)]
struct PoolState {
    /// Read from the driver once, at the first look.
    adopted: bool,
    managed: Vec<Managed>,
    up_since: Option<Instant>,
    down_since: Option<Instant>,
    last_action: Option<Instant>,
    next_number: u64,
}

/// Start the autoscaler thread.
pub fn start(control: Arc<Control>) -> Result<(), String> {
    std::thread::Builder::new()
        .name("autoscaler".into())
        .spawn(move || {
            let mut pools: BTreeMap<String, PoolState> = BTreeMap::new();
            let mut paused: BTreeSet<String> = BTreeSet::new();
            let mut last_probe: BTreeMap<String, Instant> = BTreeMap::new();
            loop {
                std::thread::sleep(Duration::from_millis(500));
                let g = control.current();
                for pool in g.config.pools.iter() {
                    let Some(a) = pool.autoscale.as_ref().filter(|a| a.enabled) else { continue };
                    if paused.contains(&a.credentials) {
                        let due = last_probe.get(&a.credentials).is_none_or(|t| t.elapsed() >= Duration::from_secs(2));
                        if !due {
                            continue;
                        }
                        last_probe.insert(a.credentials.clone(), Instant::now());
                        if driver::call(&a.driver, "status", &a.credentials, &[], DRIVER_TIMEOUT).is_err() {
                            continue;
                        }
                        paused.remove(&a.credentials);
                        action(
                            &pool.name,
                            format!("driver for credentials {} answers again: autoscaling resumes", a.credentials),
                        );
                    }
                    let st = pools.entry(pool.name.clone()).or_default();
                    let sla = g.pool_sla(&pool.name);
                    if let Err(e) = look(&control, &pool.name, pool.nodes.len(), a, sla.as_deref(), st) {
                        paused.insert(a.credentials.clone());
                        last_probe.insert(a.credentials.clone(), Instant::now());
                        emit(
                            Event::new(
                                &catalogue::AUTOSCALE_ERROR,
                                format!("pools/{}", pool.name),
                                format!(
                                    "{e}; autoscaling paused for credentials {} until a call succeeds",
                                    a.credentials
                                ),
                            )
                            .tag(a.credentials.clone()),
                        );
                        log::error!("autoscaling pool {}: {e}", pool.name);
                    }
                }
                if control.is_stopping() {
                    return;
                }
            }
        })
        .map_err(|e| format!("cannot start the autoscaler: {e}"))?;
    Ok(())
}

fn action(pool: &str, text: String) {
    log::info!("autoscaling pool {pool}: {text}");
    emit(Event::new(&catalogue::AUTOSCALE_ACTION, format!("pools/{pool}"), text));
}

/// One look at a pool: adopt the driver's nodes the first time, then act
/// if a condition has held long enough. `Err`: a driver call failed.
fn look(
    control: &Control,
    pool: &str,
    nodes: usize,
    a: &Autoscale,
    sla: Option<&crate::slm::ServiceLevel>,
    st: &mut PoolState,
) -> Result<(), String> {
    if !st.adopted {
        let answer = driver::call(&a.driver, "status", &a.credentials, &[], DRIVER_TIMEOUT)?;
        for n in answer.nodes.iter().filter(|n| ours(n, a) && n.status == "active" && n.complete >= 100) {
            if let Some(addr) = address(n, a) {
                st.managed.push(Managed {
                    id: n.id.clone(),
                    name: n.name.clone(),
                    addr,
                    created: n.created,
                    draining: false,
                });
            }
        }
        st.next_number = st.managed.len() as u64;
        st.adopted = true;
        if !st.managed.is_empty() {
            publish(control, pool, st)?;
            action(pool, format!("adopted {} node(s) the driver already runs", st.managed.len()));
        }
    }
    let now = Instant::now();
    let percent = sla.map_or(100, |s| s.read(now).0.percent());
    let total = nodes as u32;
    let up = total < a.min_nodes || (percent < u64::from(a.scale_up_below) && total < a.max_nodes);
    let removable = st.managed.iter().any(|m| !m.draining);
    let down = removable && (total > a.max_nodes || (percent > u64::from(a.scale_down_above) && total > a.min_nodes));
    st.up_since = if up { st.up_since.or(Some(now)) } else { None };
    st.down_since = if down { st.down_since.or(Some(now)) } else { None };
    let rested = st.last_action.is_none_or(|t| now.duration_since(t) >= a.refractory);
    let held = |since: Option<Instant>| since.is_some_and(|t| now.duration_since(t) >= a.hysteresis);
    if up && (total < a.min_nodes || (held(st.up_since) && rested)) {
        st.last_action = Some(now);
        st.up_since = None;
        return scale_up(control, pool, a, st, percent);
    }
    if down && (total > a.max_nodes || (held(st.down_since) && rested)) {
        st.last_action = Some(now);
        st.down_since = None;
        return scale_down(control, pool, a, st, percent);
    }
    Ok(())
}

/// Whether a driver's node belongs to this pool: its name has the pool's
/// prefix, or, nameless, its image is the pool's.
fn ours(n: &driver::DriverNode, a: &Autoscale) -> bool {
    if n.name.is_empty() {
        n.imageid == a.imageid
    } else {
        n.name.starts_with(&a.name_prefix)
    }
}

/// Where a driver's node serves: its private address (else its public
/// one) and the pool's port.
fn address(n: &driver::DriverNode, a: &Autoscale) -> Option<SocketAddr> {
    let ip = if n.private_ip.is_empty() { &n.public_ip } else { &n.private_ip };
    ip.parse::<std::net::IpAddr>().ok().map(|ip| SocketAddr::new(ip, a.port))
}

/// Put the managed nodes into the pool (live reconfiguration).
fn publish(control: &Control, pool: &str, st: &PoolState) -> Result<(), String> {
    let nodes = st
        .managed
        .iter()
        .map(|m| Node {
            name: m.addr.to_string(),
            addr: m.addr,
            weight: 1,
            state: if m.draining { NodeState::Draining } else { NodeState::Active },
        })
        .collect();
    control.set_autoscaled(pool, nodes).map(|_| ()).map_err(|e| format!("the pool could not take the change: {e}"))
}

fn scale_up(control: &Control, pool: &str, a: &Autoscale, st: &mut PoolState, percent: u64) -> Result<(), String> {
    st.next_number += 1;
    let name = format!("{}{}", a.name_prefix, st.next_number);
    let created = driver::call(
        &a.driver,
        "createnode",
        &a.credentials,
        &[("name", &name), ("imageid", &a.imageid), ("sizeid", &a.sizeid)],
        DRIVER_TIMEOUT,
    )?;
    let id = created.nodes.first().map(|n| n.id.clone()).ok_or("createnode answered no node")?;
    let deadline = Instant::now() + CREATE_TIMEOUT;
    let node = loop {
        let s = driver::call(&a.driver, "status", &a.credentials, &[], DRIVER_TIMEOUT)?;
        if let Some(n) = s.nodes.into_iter().find(|n| n.id == id && n.status == "active" && n.complete >= 100) {
            break n;
        }
        if Instant::now() >= deadline {
            return Err(format!("node {name} ({id}) was not active within {CREATE_TIMEOUT:?}"));
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    let addr = address(&node, a).ok_or_else(|| format!("node {name} ({id}) has no usable address"))?;
    st.managed.push(Managed { id, name: name.clone(), addr, created: node.created, draining: false });
    publish(control, pool, st)?;
    action(pool, format!("added node {name} ({addr}): {percent}% of responses within {:?}", a.response_time));
    Ok(())
}

fn scale_down(control: &Control, pool: &str, a: &Autoscale, st: &mut PoolState, percent: u64) -> Result<(), String> {
    // The oldest goes first (by creation time, then the order added).
    let Some(i) =
        st.managed.iter().enumerate().filter(|(_, m)| !m.draining).min_by_key(|(i, m)| (m.created, *i)).map(|(i, _)| i)
    else {
        return Ok(());
    };
    st.managed[i].draining = true;
    publish(control, pool, st)?;
    let (addr, name) = (st.managed[i].addr, st.managed[i].name.clone());
    let deadline = Instant::now() + a.drain_time;
    while Instant::now() < deadline {
        let busy = control
            .stats()
            .nodes
            .iter()
            .any(|n| n.pool == pool && n.node == addr.to_string() && n.current_connections > 0);
        if !busy {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let id = st.managed[i].id.clone();
    driver::call(&a.driver, "destroynode", &a.credentials, &[("id", &id)], DRIVER_TIMEOUT)?;
    st.managed.remove(i);
    publish(control, pool, st)?;
    action(pool, format!("removed node {name} ({addr}): {percent}% of responses within {:?}", a.response_time));
    Ok(())
}
