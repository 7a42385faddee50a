//! The traffic IP addresses this member holds (K3), kept equal to what
//! [`super::owners`] says it should hold, by a thread of its own: adding
//! and removing an address runs the kernel's own tool (`ip addr`, from
//! iproute2) and announcing it sends packets, neither of which belongs
//! on the etcd thread.
//!
//! Each address is raised as a host address (`/32`, `/128` without
//! duplicate address detection, so it is usable at once) on its group's
//! interface and announced three times a second apart (one lost broadcast
//! must not strand clients); an address no longer ours is lowered first.
//! At start, any group address already on the interface (left by a
//! process that was killed) counts as held, so it is lowered unless it is
//! ours.

use crate::events::{catalogue, emit, Event};
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::process::Command;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// An address and the interface it goes on.
pub type Placed = (IpAddr, String);

/// The handle the cluster keeps: send what should be held; read what is.
pub struct Holder {
    wanted: Mutex<Sender<Option<BTreeSet<Placed>>>>,
    held: Arc<Mutex<BTreeSet<Placed>>>,
}

const ANNOUNCEMENTS: u32 = 3;
const ANNOUNCE_EVERY: Duration = Duration::from_secs(1);

impl Holder {
    pub fn start() -> std::io::Result<Holder> {
        let (tx, rx) = std::sync::mpsc::channel();
        let held: Arc<Mutex<BTreeSet<Placed>>> = Arc::default();
        let h = held.clone();
        std::thread::Builder::new().name("traffic-ips".into()).spawn(move || run(rx, h))?;
        Ok(Holder { wanted: Mutex::new(tx), held })
    }

    /// Hold exactly `wanted` from now on (None: lower everything and
    /// stop, for a clean exit).
    pub fn want(&self, wanted: Option<BTreeSet<Placed>>) {
        let _ = self.wanted.lock().unwrap_or_else(|e| e.into_inner()).send(wanted);
    }

    /// What is raised now.
    pub fn held(&self) -> BTreeSet<Placed> {
        self.held.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

fn run(rx: Receiver<Option<BTreeSet<Placed>>>, held: Arc<Mutex<BTreeSet<Placed>>>) {
    let mut first = true;
    // Announcements still due: address → (when, how many left).
    let mut due: BTreeMap<Placed, (Instant, u32)> = BTreeMap::new();
    loop {
        let wait = due.values().map(|(t, _)| t.saturating_duration_since(Instant::now())).min();
        let msg = match wait {
            Some(w) => rx.recv_timeout(w),
            None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        match msg {
            Ok(mut wanted) => {
                // Only the latest wish matters.
                while let Ok(w) = rx.try_recv() {
                    wanted = w;
                }
                let stop = wanted.is_none();
                let wanted = wanted.unwrap_or_default();
                if first {
                    first = false;
                    let stale = stale(&wanted);
                    held.lock().unwrap_or_else(|e| e.into_inner()).extend(stale);
                }
                reconcile(&held, &wanted, &mut due);
                if stop {
                    return;
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        let now = Instant::now();
        let ready: Vec<Placed> = due.iter().filter(|(_, (t, _))| *t <= now).map(|(p, _)| p.clone()).collect();
        for p in ready {
            announce(&p);
            let (t, left) = due.get_mut(&p).expect("listed above");
            *left -= 1;
            *t = now + ANNOUNCE_EVERY;
            if *left == 0 {
                due.remove(&p);
            }
        }
    }
}

/// Group addresses already on the interfaces `wanted` names or not: the
/// leftovers of a killed process. Only interfaces of `wanted` are known
/// here, so this looks at those.
fn stale(wanted: &BTreeSet<Placed>) -> BTreeSet<Placed> {
    let ifaces: BTreeSet<&String> = wanted.iter().map(|(_, i)| i).collect();
    let mut out = BTreeSet::new();
    for iface in ifaces {
        for ip in on_interface(iface) {
            if !wanted.contains(&(ip, iface.clone())) && crate::cluster::is_traffic_ip(ip) {
                out.insert((ip, iface.clone()));
            }
        }
    }
    out
}

/// The addresses on `iface`, from `ip -o addr show dev IFACE`.
fn on_interface(iface: &str) -> Vec<IpAddr> {
    let Ok(out) = Command::new("ip").args(["-o", "addr", "show", "dev", iface]).output() else { return Vec::new() };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            w.position(|x| x == "inet" || x == "inet6")?;
            w.next()?.split('/').next()?.parse().ok()
        })
        .collect()
}

fn reconcile(held: &Mutex<BTreeSet<Placed>>, wanted: &BTreeSet<Placed>, due: &mut BTreeMap<Placed, (Instant, u32)>) {
    let now: BTreeSet<Placed> = held.lock().unwrap_or_else(|e| e.into_inner()).clone();
    for p in now.difference(wanted) {
        due.remove(p);
        match ip_addr("del", p) {
            Ok(()) => {
                log::info!("cluster: lowered traffic IP {} on {}", p.0, p.1);
                emit(Event::new(&catalogue::TIP_LOWERED, "traffic_ip_groups", format!("lowered {} on {}", p.0, p.1)));
            }
            Err(e) => tip_error(&format!("cannot lower {} on {}: {e}", p.0, p.1)),
        }
        held.lock().unwrap_or_else(|e| e.into_inner()).remove(p);
    }
    for p in wanted.difference(&now) {
        match ip_addr("add", p) {
            Ok(()) => {
                held.lock().unwrap_or_else(|e| e.into_inner()).insert(p.clone());
                log::info!("cluster: raised traffic IP {} on {}", p.0, p.1);
                emit(Event::new(&catalogue::TIP_RAISED, "traffic_ip_groups", format!("raised {} on {}", p.0, p.1)));
                due.insert(p.clone(), (Instant::now(), ANNOUNCEMENTS));
            }
            Err(e) => tip_error(&format!("cannot raise {} on {}: {e}", p.0, p.1)),
        }
    }
}

fn tip_error(text: &str) {
    log::error!("cluster: {text}");
    emit(Event::new(&catalogue::TIP_ERROR, "traffic_ip_groups", text.to_owned()));
}

/// `ip addr add|del ADDR/32 dev IFACE` (/128 nodad for IPv6). Adding an
/// address that is there already, or removing one that is gone, is done.
fn ip_addr(op: &str, (ip, iface): &Placed) -> Result<(), String> {
    let host = match ip {
        IpAddr::V4(_) => format!("{ip}/32"),
        IpAddr::V6(_) => format!("{ip}/128"),
    };
    let mut cmd = Command::new("ip");
    cmd.args(["addr", op, &host, "dev", iface]);
    if ip.is_ipv6() && op == "add" {
        cmd.arg("nodad");
    }
    let out = cmd.output().map_err(|e| format!("cannot run ip: {e}"))?;
    let err = String::from_utf8_lossy(&out.stderr);
    let already = (op == "add" && err.contains("File exists")) || (op == "del" && err.contains("Cannot assign"));
    if out.status.success() || already {
        Ok(())
    } else {
        Err(err.trim().to_owned())
    }
}

fn announce((ip, iface): &Placed) {
    let r = match ip {
        IpAddr::V4(a) => super::announce::garp(iface, *a),
        IpAddr::V6(a) => super::announce::unsolicited_na(iface, *a),
    };
    if let Err(e) = r {
        tip_error(&format!("cannot announce {ip} on {iface}: {e}"));
    }
}
