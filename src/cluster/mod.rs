//! This instance as a member of a cluster whose shared state lives in etcd
//! (K1, K2; docs/cluster.md). shoal builds no consensus of its own: etcd
//! orders every change, and each member follows it.
//!
//! What is shared: the configuration objects (`config::cluster::
//! SHARED_KINDS`), one etcd key each under `PREFIX/config/TYPE/NAME`
//! holding that object's TOML text, and `PREFIX/version`, rewritten by
//! every change so that a change made from a stale view is refused
//! (optimistic concurrency on the whole configuration). What is each
//! member's own: its file's other sections (`[global]`, `[api]`,
//! `[cluster]`, ...), and `PREFIX/members/NAME`, its health, on a lease
//! that expires `lease_ttl` after the member stops renewing it.
//!
//! [`Cluster`] is the state the API, the reload path and the status share
//! with the cluster's control thread ([`store`]), which alone talks to
//! etcd, on a tokio runtime of its own (never on a shard). The thread
//! applies every change it sees through the live-reconfiguration path
//! ([`Control::apply_as`]); without etcd the member keeps serving what it
//! last applied and says so (status, `cluster.etcd_lost`), and catches up
//! with a full read when etcd answers again.

mod addresses;
mod announce;
pub mod layout;
mod multi;
pub mod owners;
mod store;

use crate::config::{ClusterSettings, Config, ConfigError, Overrides, SharedObject};
use crate::events::{catalogue, emit, Event};
use crate::runtime::Control;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant, SystemTime};

/// The process's cluster membership, once `[cluster]` started it.
static CLUSTER: OnceLock<Arc<Cluster>> = OnceLock::new();

/// The cluster this process is a member of, if any.
pub fn get() -> Option<&'static Arc<Cluster>> {
    CLUSTER.get()
}

/// The configuration objects as etcd last showed them.
#[derive(Debug, Clone, Default)]
pub struct Objects {
    /// etcd's revision this view is at.
    pub revision: i64,
    /// The mod revision of `PREFIX/version`: what a change must compare
    /// against (0 before the cluster was seeded).
    pub version: i64,
    /// "type/name" → the object's TOML text.
    pub items: BTreeMap<String, String>,
}

impl Objects {
    pub fn shared(&self) -> Vec<SharedObject> {
        self.items.iter().map(|(id, text)| SharedObject { id: id.clone(), text: text.clone() }).collect()
    }
}

/// Whether this member reaches etcd.
#[derive(Debug, Clone)]
enum Etcd {
    Connecting,
    Up,
    Lost(String),
}

/// What a member publishes about itself in `PREFIX/members/NAME`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MemberInfo {
    pub member: String,
    /// Unix seconds when it started.
    pub started: u64,
    /// The etcd revision of the configuration it runs.
    pub revision: i64,
    /// Its configuration generation.
    pub generation: u64,
    /// "ok", or why it could not apply the cluster's configuration.
    pub config: String,
    /// What it carries, for cluster-wide state (K5).
    #[serde(default)]
    pub load: Load,
}

/// A member's load as it publishes it (K5): its demand on the cluster's
/// shared bandwidth classes, its service level readings, its statistics.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Load {
    /// Responses sending through each cluster-shared bandwidth class now.
    #[serde(default)]
    pub bandwidth: BTreeMap<String, u64>,
    /// Each service level class's window: [requests, conforming].
    #[serde(default)]
    pub slm: BTreeMap<String, [u64; 2]>,
    /// Totals over its virtual servers since it started.
    #[serde(default)]
    pub stats: Stats,
}

/// A member's statistics, summed over its virtual servers.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Stats {
    pub current_connections: u64,
    pub connections: u64,
    pub requests: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

impl Stats {
    fn add(&mut self, o: &Stats) {
        self.current_connections += o.current_connections;
        self.connections += o.connections;
        self.requests += o.requests;
        self.bytes_in += o.bytes_in;
        self.bytes_out += o.bytes_out;
    }
}

/// Whether bandwidth class `c` is shared by the cluster's members.
fn cluster_shared(c: &crate::config::BandwidthClass) -> bool {
    !c.per_connection && !c.per_member
}

/// The weight of a member with `active` responses in a shared class: a
/// member with none keeps a sliver, so its first response is not held up
/// until the next exchange.
fn weight(active: u64) -> f64 {
    active as f64 + 0.05
}

struct State {
    control: Option<Arc<Control>>,
    /// None until etcd answered once.
    objects: Option<Objects>,
    etcd: Etcd,
    /// Since when `etcd` has been what it is.
    since: SystemTime,
    /// Live members, by name, as their leased keys say.
    members: BTreeMap<String, MemberInfo>,
    /// The revision of the objects the running configuration was built
    /// from (or was refused at: `config_error` says so).
    applied: i64,
    generation: u64,
    config_error: Option<String>,
    /// The revision of the last configuration change seen: `applied`
    /// reaches it only through an apply.
    config_rev: i64,
    /// This member's load as last read (by the applier, each second).
    load: Load,
}

/// What the rest of the process asks of the control thread.
pub(crate) enum Request {
    Write(WriteRequest),
    /// The process stops: revoke the lease, so the member leaves the
    /// cluster now rather than a TTL later.
    Leave(std::sync::mpsc::Sender<()>),
}

/// A change the API asks the control thread to write.
pub(crate) struct WriteRequest {
    /// `Objects::version` the change was computed from.
    base: i64,
    /// "type/name" → new text, or None to delete it.
    changes: Vec<(String, Option<String>)>,
    reply: std::sync::mpsc::Sender<Result<i64, WriteError>>,
}

/// Why a change was not written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteError {
    /// The cluster's configuration changed since this member's view.
    Conflict,
    /// etcd could not be reached or refused it.
    Unavailable(String),
}

/// The state the API, reloads and the status share with the control
/// thread. Lives as long as the process.
pub struct Cluster {
    pub settings: ClusterSettings,
    /// The member's own main file.
    main: PathBuf,
    started: SystemTime,
    state: Mutex<State>,
    /// Signalled whenever `State` changes (objects seen, applied).
    changed: Condvar,
    requests: tokio::sync::mpsc::Sender<Request>,
    /// Asks the applier thread to apply the objects seen last.
    kick: Mutex<std::sync::mpsc::Sender<()>>,
    /// The traffic IP addresses this member holds (K3).
    holder: addresses::Holder,
    /// Its shares of multi-hosted groups (K4).
    multi: multi::MultiHost,
}

/// How long an API write waits for its change to come back from etcd and
/// be applied here.
const WRITE_WAIT: Duration = Duration::from_secs(5);

/// Start membership for `cfg` (loaded from `main`, with `[cluster]`):
/// the control thread connects, seeds an empty cluster from `main`'s
/// objects, and follows the cluster. Returns the configuration to start
/// with: the cluster's, if etcd answers within `connect_timeout`, else
/// `cfg` itself (the member's own file), to be replaced once etcd answers.
pub fn start(main: &Path, cfg: Config) -> Result<Config, String> {
    let settings = cfg.cluster.clone().ok_or("no [cluster] section")?;
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    let (kick_tx, kick_rx) = std::sync::mpsc::channel();
    let cluster = Arc::new(Cluster {
        settings: settings.clone(),
        main: main.to_path_buf(),
        started: SystemTime::now(),
        state: Mutex::new(State {
            control: None,
            objects: None,
            etcd: Etcd::Connecting,
            since: SystemTime::now(),
            members: BTreeMap::new(),
            applied: 0,
            generation: 0,
            config_error: None,
            config_rev: 0,
            load: Load::default(),
        }),
        changed: Condvar::new(),
        requests: tx,
        kick: Mutex::new(kick_tx),
        holder: addresses::Holder::start().map_err(|e| format!("cannot start the traffic IP thread: {e}"))?,
        multi: multi::MultiHost::start().map_err(|e| format!("cannot start the multi-hosted thread: {e}"))?,
    });
    CLUSTER.set(cluster.clone()).map_err(|_| "cluster membership started twice")?;
    let c = cluster.clone();
    std::thread::Builder::new()
        .name("cluster-apply".into())
        .spawn(move || c.applier(kick_rx))
        .map_err(|e| format!("cannot start the cluster's apply thread: {e}"))?;
    let c = cluster.clone();
    std::thread::Builder::new()
        .name("cluster".into())
        .spawn(move || store::run(c, rx))
        .map_err(|e| format!("cannot start the cluster thread: {e}"))?;
    let deadline = Instant::now() + settings.connect_timeout;
    let mut s = cluster.lock();
    while s.objects.is_none() && Instant::now() < deadline {
        s = cluster
            .changed
            .wait_timeout(s, deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|e| e.into_inner())
            .0;
    }
    let Some(objects) = s.objects.clone() else {
        log::warn!(
            "cluster: etcd ({}) did not answer within {:?}: serving {} until it does",
            settings.etcd.join(", "),
            settings.connect_timeout,
            main.display()
        );
        return Ok(cfg);
    };
    drop(s);
    let built = crate::config::load_member(main, &Overrides::new(), &objects.shared())
        .map_err(|e| format!("the cluster's configuration (revision {}) is invalid here: {e}", objects.revision))?;
    let mut s = cluster.lock();
    s.applied = objects.revision;
    Ok(built)
}

/// The shards run: from now on the control thread applies what changes.
pub fn attach(control: Arc<Control>) {
    let Some(c) = get() else { return };
    let g = control.current().id;
    let mut s = c.lock();
    s.control = Some(control);
    s.generation = g;
    let behind = s.objects.as_ref().is_some_and(|o| o.revision != s.applied);
    drop(s);
    if behind {
        c.apply();
    } else {
        c.retarget();
    }
}

/// The process stops: leave the cluster (revoke the lease), waiting at
/// most a second for etcd.
pub fn leave() {
    let Some(c) = get() else { return };
    let (tx, rx) = std::sync::mpsc::channel();
    if c.requests.try_send(Request::Leave(tx)).is_ok() {
        let _ = rx.recv_timeout(Duration::from_secs(1));
    }
    // Lower this member's addresses: the others take them over now that
    // its lease is gone.
    c.holder.want(None);
    c.multi.want(None);
    let deadline = Instant::now() + Duration::from_secs(1);
    while (!c.holder.held().is_empty() || !c.multi.running().is_empty()) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Whether `ip` is an address of one of the running configuration's
/// traffic IP groups.
pub fn is_traffic_ip(ip: std::net::IpAddr) -> bool {
    let Some(control) = get().and_then(|c| c.lock().control.clone()) else { return false };
    let cfg = control.config();
    cfg.traffic_ip_groups.iter().any(|g| g.addresses.contains(&ip))
}

/// `me`'s shares of `cfg`'s multi-hosted groups when `live` are the live
/// members.
fn shares(cfg: &Config, me: &str, live: &BTreeSet<String>) -> Vec<multi::Share> {
    cfg.traffic_ip_groups
        .iter()
        .filter(|g| g.mode == crate::config::TipMode::Multi && g.members.iter().any(|m| m == me))
        .map(|g| multi::Share {
            group: g.name.clone(),
            iface: g.interface.clone(),
            addresses: g
                .addresses
                .iter()
                .filter_map(|a| match a {
                    std::net::IpAddr::V4(v4) => Some(*v4),
                    std::net::IpAddr::V6(_) => None, // refused by the loader
                })
                .collect(),
            buckets: owners::buckets(&g.members, live, me),
        })
        .collect()
}

/// The addresses `me` should hold of `cfg`'s single-hosted groups when
/// `live` are the live members.
fn wanted(cfg: &Config, me: &str, live: &BTreeSet<String>) -> BTreeSet<addresses::Placed> {
    let mut out = BTreeSet::new();
    for g in &cfg.traffic_ip_groups {
        let Some(mine) = g.members.iter().position(|m| m == me) else { continue };
        let owners = match g.mode {
            crate::config::TipMode::Single => owners::single(&g.addresses, &g.members, live),
            crate::config::TipMode::Multi => continue,
        };
        for (ip, owner) in g.addresses.iter().zip(owners) {
            if owner == Some(mine) {
                out.insert((*ip, g.interface.clone()));
            }
        }
    }
    out
}

/// Load the configuration `path` names as this process runs it: in a
/// cluster whose objects are known, the member's settings from `path` and
/// the objects from etcd; otherwise `path` alone.
pub fn load_with(path: &Path, overrides: &Overrides) -> Result<Config, ConfigError> {
    match get().and_then(|c| c.objects()) {
        Some(o) => crate::config::load_member(path, overrides, &o.shared()),
        None => crate::config::load_file_with(path, overrides),
    }
}

impl Cluster {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The objects as last seen in etcd (None before it ever answered).
    pub fn objects(&self) -> Option<Objects> {
        self.lock().objects.clone()
    }

    /// Build and apply the configuration for the objects seen last. A
    /// configuration this member cannot run (an invalid object, a port
    /// it cannot bind) is refused here only: it keeps its running one,
    /// and its member key says why.
    fn apply(&self) {
        let (control, objects) = {
            let s = self.lock();
            match (&s.control, &s.objects) {
                (Some(c), Some(o)) => (c.clone(), o.clone()),
                _ => return,
            }
        };
        let result = crate::config::load_member(&self.main, &Overrides::new(), &objects.shared())
            .map_err(|e| e.to_string())
            .and_then(|cfg| control.apply_as(cfg, "cluster"));
        let mut s = self.lock();
        s.applied = s.applied.max(objects.revision);
        match result {
            Ok(g) => {
                s.generation = g;
                s.config_error = None;
            }
            Err(e) => {
                if !matches!(&s.config_error, Some(old) if *old == e) {
                    log::error!("cluster: the configuration at revision {} is refused here: {e}", objects.revision);
                }
                s.config_error = Some(e);
            }
        }
        self.changed.notify_all();
        drop(s);
        self.retarget();
        self.reshare();
    }

    /// Hold the traffic IP addresses the running configuration and the
    /// live members give this member. Without etcd nothing changes: the
    /// member keeps what it holds (docs/cluster.md, failure model).
    fn retarget(&self) {
        let (control, live) = {
            let s = self.lock();
            if !matches!(s.etcd, Etcd::Up) {
                return;
            }
            (s.control.clone(), s.members.keys().cloned().collect::<BTreeSet<String>>())
        };
        let Some(control) = control else { return };
        let cfg = control.config();
        self.holder.want(Some(wanted(&cfg, &self.settings.member, &live)));
        self.multi.want(Some(shares(&cfg, &self.settings.member, &live)));
    }

    /// The applier thread: applies the objects seen last whenever kicked
    /// (kicks while it applies fold into one), and reads this member's
    /// load every second. Both wait for the shards, which the etcd
    /// thread must never do: a slow apply there would delay lease
    /// renewals until the others counted this member out.
    fn applier(&self, kicks: std::sync::mpsc::Receiver<()>) {
        use std::sync::mpsc::RecvTimeoutError;
        let mut next_load = Instant::now();
        loop {
            match kicks.recv_timeout(next_load.saturating_duration_since(Instant::now())) {
                Ok(()) => {
                    while kicks.try_recv().is_ok() {}
                    self.apply();
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
            if Instant::now() >= next_load {
                let load = self.load();
                self.lock().load = load;
                next_load = Instant::now() + Duration::from_secs(1);
            }
        }
    }

    /// Have the applier apply the objects seen last.
    fn kick(&self) {
        let _ = self.kick.lock().unwrap_or_else(|e| e.into_inner()).send(());
    }

    /// This member's load now (K5).
    fn load(&self) -> Load {
        let Some(control) = self.lock().control.clone() else { return Load::default() };
        let g = control.current();
        let now = Instant::now();
        let bandwidth =
            g.bandwidth.iter().filter(|b| cluster_shared(&b.cfg)).map(|b| (b.cfg.name.clone(), b.active())).collect();
        let slm = g
            .slm
            .iter()
            .map(|c| {
                let (r, _) = c.read(now);
                (c.cfg.name.clone(), [r.requests, r.conforming])
            })
            .collect();
        let mut stats = Stats::default();
        for v in control.stats().virtual_servers {
            stats.add(&Stats {
                current_connections: v.current_connections,
                connections: v.connections,
                requests: v.requests,
                bytes_in: v.bytes_in,
                bytes_out: v.bytes_out,
            });
        }
        Load { bandwidth, slm, stats }
    }

    /// Pace each cluster-shared bandwidth class at this member's share of
    /// it: the class's rate times its weight over the live members' (each
    /// member's weight from the demand it published), so the members'
    /// rates add up to the class's. Without etcd the shares stay as they
    /// were.
    fn reshare(&self) {
        let (control, weights) = {
            let s = self.lock();
            if !matches!(s.etcd, Etcd::Up) {
                return;
            }
            let Some(c) = s.control.clone() else { return };
            let w: Vec<(String, BTreeMap<String, u64>)> =
                s.members.iter().map(|(n, i)| (n.clone(), i.load.bandwidth.clone())).collect();
            (c, w)
        };
        let me = &self.settings.member;
        if !weights.iter().any(|(n, _)| n == me) {
            return;
        }
        for class in control.current().bandwidth.iter().filter(|b| cluster_shared(&b.cfg)) {
            let name = &class.cfg.name;
            let of = |l: &BTreeMap<String, u64>| weight(l.get(name).copied().unwrap_or(0));
            let total: f64 = weights.iter().map(|(_, l)| of(l)).sum();
            let mine = weights.iter().find(|(n, _)| n == me).map_or(0.0, |(_, l)| of(l));
            let share = class.cfg.bits_per_second as f64 * mine / total;
            class.set_rate(share as u64);
        }
    }

    /// What this member publishes about itself now.
    fn info(&self) -> MemberInfo {
        let s = self.lock();
        let load = s.load.clone();
        MemberInfo {
            member: self.settings.member.clone(),
            started: unix(self.started),
            revision: s.applied,
            generation: s.generation,
            config: s.config_error.as_ref().map_or_else(|| "ok".to_owned(), |e| format!("refused: {e}")),
            load,
        }
    }

    /// etcd answered a full read: the objects and members as of `objects.
    /// revision`.
    fn snapshot(&self, objects: Objects, members: BTreeMap<String, MemberInfo>) {
        let mut s = self.lock();
        let was = std::mem::replace(&mut s.etcd, Etcd::Up);
        s.since = SystemTime::now();
        for (name, _) in members.iter().filter(|(n, _)| !s.members.contains_key(*n)) {
            self.member_event(true, name);
        }
        for name in s.members.keys().filter(|n| !members.contains_key(*n)) {
            self.member_event(false, name);
        }
        s.members = members;
        let changed = s.objects.as_ref().is_none_or(|o| o.items != objects.items);
        if changed {
            s.config_rev = objects.revision;
        }
        s.objects = Some(objects);
        self.changed.notify_all();
        drop(s);
        let text = match was {
            Etcd::Lost(_) => "etcd is back: this member follows the cluster again",
            Etcd::Connecting | Etcd::Up => "connected to etcd: this member follows the cluster",
        };
        log::info!("cluster: {text}");
        emit(Event::new(&catalogue::CLUSTER_ETCD_BACK, "cluster", text));
        if changed {
            self.kick();
        } else {
            // Nothing to build; what runs is what etcd has (unless an
            // apply is still due).
            let mut s = self.lock();
            if s.applied >= s.config_rev {
                s.applied = s.objects.as_ref().map_or(s.applied, |o| o.revision);
            }
            self.changed.notify_all();
            drop(s);
            self.retarget();
        }
    }

    /// A watched change at `revision`.
    fn update(&self, revision: i64, config: Vec<(String, Option<String>)>, version: Option<i64>) {
        let mut s = self.lock();
        let Some(o) = s.objects.as_mut() else { return };
        o.revision = o.revision.max(revision);
        if let Some(v) = version {
            o.version = v;
        }
        let touched = !config.is_empty();
        for (id, text) in config {
            match text {
                Some(t) => o.items.insert(id, t),
                None => o.items.remove(&id),
            };
        }
        if touched {
            s.config_rev = revision;
        } else if s.applied >= s.config_rev {
            // Nothing of the configuration is waiting to be applied, so
            // what runs is what etcd has at `revision`.
            s.applied = s.applied.max(revision);
        }
        self.changed.notify_all();
        drop(s);
        if touched {
            self.kick();
        }
    }

    fn member_put(&self, info: MemberInfo) {
        let mut s = self.lock();
        let joined = !s.members.contains_key(&info.member);
        if joined {
            self.member_event(true, &info.member);
        }
        s.members.insert(info.member.clone(), info);
        drop(s);
        if joined {
            self.retarget();
        }
        self.reshare();
    }

    fn member_gone(&self, name: &str) {
        let gone = self.lock().members.remove(name).is_some();
        if gone {
            self.member_event(false, name);
            self.retarget();
            self.reshare();
        }
    }

    fn member_event(&self, joined: bool, name: &str) {
        if name == self.settings.member {
            return;
        }
        let (kind, what) = if joined {
            (&catalogue::CLUSTER_MEMBER_JOINED, "joined the cluster")
        } else {
            (&catalogue::CLUSTER_MEMBER_LEFT, "left the cluster (stopped, or its lease expired)")
        };
        if joined {
            log::info!("cluster: member {name} {what}");
        } else {
            log::warn!("cluster: member {name} {what}");
        }
        emit(Event::new(kind, format!("cluster/{name}"), format!("member {name} {what}")));
    }

    /// etcd stopped answering (or never did): keep serving, say so once.
    fn lost(&self, why: &str) {
        let mut s = self.lock();
        let first = !matches!(s.etcd, Etcd::Lost(_));
        s.etcd = Etcd::Lost(why.to_owned());
        if first {
            s.since = SystemTime::now();
            drop(s);
            log::error!("cluster: lost etcd ({why}): serving the last configuration until it is back");
            emit(Event::new(
                &catalogue::CLUSTER_ETCD_LOST,
                "cluster",
                format!("lost etcd ({why}): serving the last configuration until it is back"),
            ));
        }
    }

    /// Write `changes` (computed from `Objects::version` `base`) to etcd
    /// and wait until this member runs them. Returns the generation.
    pub fn write(&self, base: i64, changes: Vec<(String, Option<String>)>) -> Result<u64, WriteError> {
        let (reply, answer) = std::sync::mpsc::channel();
        self.requests
            .try_send(Request::Write(WriteRequest { base, changes, reply }))
            .map_err(|_| WriteError::Unavailable("the cluster thread is busy or gone".into()))?;
        let revision = answer
            .recv_timeout(WRITE_WAIT)
            .map_err(|_| WriteError::Unavailable("etcd did not answer in time".into()))??;
        let deadline = Instant::now() + WRITE_WAIT;
        let mut s = self.lock();
        while s.applied < revision {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(WriteError::Unavailable(format!(
                    "written at revision {revision}, but this member has not seen it back from etcd yet"
                )));
            }
            s = self.changed.wait_timeout(s, left).unwrap_or_else(|e| e.into_inner()).0;
        }
        match &s.config_error {
            Some(e) => Err(WriteError::Unavailable(format!(
                "written at revision {revision}, but this member cannot run it: {e}"
            ))),
            None => Ok(s.generation),
        }
    }

    /// The `cluster` section of the status API.
    pub fn status_json(&self) -> Value {
        let s = self.lock();
        let (state, error) = match &s.etcd {
            Etcd::Connecting => ("connecting", None),
            Etcd::Up => ("up", None),
            Etcd::Lost(why) => ("lost", Some(why.clone())),
        };
        let members: serde_json::Map<String, Value> =
            s.members.iter().map(|(n, i)| (n.clone(), serde_json::to_value(i).unwrap_or(Value::Null))).collect();
        let live: BTreeSet<String> = s.members.keys().cloned().collect();
        let running = self.multi.running();
        let mut groups = serde_json::Map::new();
        if let Some(control) = &s.control {
            for g in &control.config().traffic_ip_groups {
                let addresses: serde_json::Map<String, Value> = match g.mode {
                    crate::config::TipMode::Single => g
                        .addresses
                        .iter()
                        .zip(owners::single(&g.addresses, &g.members, &live))
                        .map(|(ip, o)| (ip.to_string(), o.map_or(Value::Null, |m| json!(g.members[m]))))
                        .collect(),
                    crate::config::TipMode::Multi => {
                        let on: Vec<&String> = g.members.iter().filter(|m| live.contains(*m)).collect();
                        g.addresses.iter().map(|ip| (ip.to_string(), json!(on))).collect()
                    }
                };
                let mut group = json!({ "mode": g.mode.name(), "addresses": addresses });
                if g.mode == crate::config::TipMode::Multi {
                    let mine = owners::buckets(&g.members, &live, &self.settings.member).len();
                    // What the filters in place keep (they follow `mine`
                    // within milliseconds).
                    let installed = running.iter().find(|r| r.group == g.name).map_or(0, |r| r.buckets.len());
                    group["buckets"] = json!({ "mine": mine, "installed": installed, "of": owners::BUCKETS });
                }
                groups.insert(g.name.clone(), group);
            }
        }
        let held: Vec<String> = self.holder.held().iter().map(|(ip, _)| ip.to_string()).collect();
        // Cluster-wide state (K5): the live members' published loads merged.
        let mut totals = Stats::default();
        let mut slm: BTreeMap<&String, [u64; 2]> = BTreeMap::new();
        for i in s.members.values() {
            totals.add(&i.load.stats);
            for (c, [r, ok]) in &i.load.slm {
                let e = slm.entry(c).or_default();
                e[0] += r;
                e[1] += ok;
            }
        }
        let slm: serde_json::Map<String, Value> = slm
            .into_iter()
            .map(|(c, [r, ok])| {
                let pct = (ok * 100).checked_div(r).unwrap_or(100);
                (c.clone(), json!({"requests": r, "conforming": ok, "percent_conforming": pct}))
            })
            .collect();
        let mut bandwidth = serde_json::Map::new();
        if let Some(control) = &s.control {
            for b in control.current().bandwidth.iter().filter(|b| cluster_shared(&b.cfg)) {
                let demand: serde_json::Map<String, Value> = s
                    .members
                    .iter()
                    .map(|(n, i)| (n.clone(), json!(i.load.bandwidth.get(&b.cfg.name).copied().unwrap_or(0))))
                    .collect();
                bandwidth.insert(
                    b.cfg.name.clone(),
                    json!({"max_rate_bps": b.cfg.bits_per_second, "share_bps": b.rate(), "demand": demand}),
                );
            }
        }
        json!({
            "member": self.settings.member,
            "traffic_ip_groups": groups,
            "held": held,
            "read_only": self.settings.read_only,
            "etcd": { "endpoints": self.settings.etcd, "state": state, "since": unix(s.since), "error": error },
            "revision": s.objects.as_ref().map(|o| o.revision),
            "applied_revision": s.applied,
            "config_error": s.config_error,
            "totals": totals,
            "service_levels": slm,
            "bandwidth_classes": bandwidth,
            "members": members,
        })
    }
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
