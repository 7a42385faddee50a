//! Multi-hosted traffic IP groups (K4): every live member receives all of
//! an address's traffic and keeps only its share of the connections,
//! with the kernel's own tools and no kernel module.
//!
//! - **Everyone receives.** The address is answered, in ARP, with a
//!   multicast MAC ([`announce::multicast_mac`]) by every member's
//!   [`announce::ArpResponder`]; switches flood multicast frames to every
//!   port. Each member accepts frames to that MAC (`ip maddr add`), holds
//!   the address (`ip addr add ADDR/32`) and drops the kernel's own ARP
//!   answers and announcements for it (an `arp` nftables table), which
//!   would otherwise pull the traffic to one member.
//! - **Each keeps its share.** The 4-tuple (client address and port,
//!   address and port) hashes, in nftables' `jhash` with a fixed seed, into
//!   one of [`owners::BUCKETS`] buckets, the same on every member; a member
//!   drops, before connection tracking, every TCP and UDP packet whose
//!   bucket is not its own. Buckets go to live members by rendezvous
//!   ([`owners::buckets`]), so a failure moves only the failed member's
//!   share. Frames addressed to a multicast MAC reach IP as
//!   `pkttype multicast`, which TCP refuses: the same chain marks the
//!   kept ones `host`.
//!
//! The whole ruleset (tables `inet shoal_multi` and `arp shoal_multi`) is
//! replaced in one `nft -f` transaction on every change, so there is never
//! a moment with no filter or two.

use super::announce::{self, ArpResponder};
use super::owners::BUCKETS;
use crate::events::{catalogue, emit, Event};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::sync::mpsc::{Receiver, Sender, TryRecvError};
use std::sync::{Arc, Mutex};

/// One multi-hosted group as this member runs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Share {
    pub group: String,
    pub iface: String,
    pub addresses: Vec<Ipv4Addr>,
    /// The buckets this member keeps, sorted.
    pub buckets: Vec<u32>,
}

/// The handle the cluster keeps.
pub struct MultiHost {
    wanted: Mutex<Sender<Option<Vec<Share>>>>,
    running: Arc<Mutex<Vec<Share>>>,
}

/// The hash's seed: any fixed value, the same on every member.
const SEED: &str = "0x5a1";

impl MultiHost {
    pub fn start() -> std::io::Result<MultiHost> {
        let (tx, rx) = std::sync::mpsc::channel();
        let running: Arc<Mutex<Vec<Share>>> = Arc::default();
        let r = running.clone();
        std::thread::Builder::new().name("multi-hosted".into()).spawn(move || run(rx, r))?;
        Ok(MultiHost { wanted: Mutex::new(tx), running })
    }

    /// Run exactly `shares` from now on (None: remove everything and stop).
    pub fn want(&self, shares: Option<Vec<Share>>) {
        let _ = self.wanted.lock().unwrap_or_else(|e| e.into_inner()).send(shares);
    }

    pub fn running(&self) -> Vec<Share> {
        self.running.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

fn run(rx: Receiver<Option<Vec<Share>>>, running: Arc<Mutex<Vec<Share>>>) {
    let mut responder: Option<ArpResponder> = None;
    // Interface index → (address → its multicast MAC).
    let mut answers: BTreeMap<u32, BTreeMap<Ipv4Addr, [u8; 6]>> = BTreeMap::new();
    loop {
        let next = if answers.is_empty() { rx.recv().map_err(|_| TryRecvError::Disconnected) } else { rx.try_recv() };
        match next {
            Ok(mut wanted) => {
                while let Ok(w) = rx.try_recv() {
                    wanted = w;
                }
                let stop = wanted.is_none();
                let wanted = wanted.unwrap_or_default();
                let old = running.lock().unwrap_or_else(|e| e.into_inner()).clone();
                if old != wanted {
                    apply(&old, &wanted);
                    *running.lock().unwrap_or_else(|e| e.into_inner()) = wanted.clone();
                }
                if stop {
                    return;
                }
                answers.clear();
                for s in &wanted {
                    match announce::link(&s.iface) {
                        Ok((index, _)) => {
                            let a = answers.entry(index).or_default();
                            for ip in &s.addresses {
                                a.insert(*ip, announce::multicast_mac(*ip));
                            }
                        }
                        Err(e) => error(&format!("group {}: interface {}: {e}", s.group, s.iface)),
                    }
                }
                if !answers.is_empty() && responder.is_none() {
                    match ArpResponder::new() {
                        Ok(r) => responder = Some(r),
                        Err(e) => {
                            error(&format!("cannot answer ARP for multi-hosted addresses: {e}"));
                            answers.clear();
                        }
                    }
                }
            }
            Err(TryRecvError::Empty) => {}
            Err(TryRecvError::Disconnected) => return,
        }
        if let (Some(r), false) = (&responder, answers.is_empty()) {
            let lookup = |index: u32, ip: Ipv4Addr| answers.get(&index).and_then(|a| a.get(&ip)).copied();
            if let Err(e) = r.answer_one(lookup) {
                error(&format!("ARP responder: {e}"));
                std::thread::sleep(std::time::Duration::from_millis(250));
            }
        }
    }
}

/// Go from running `old` to `new`: filters before addresses appear, and
/// after they go.
fn apply(old: &[Share], new: &[Share]) {
    let placed = |shares: &[Share]| -> Vec<(Ipv4Addr, String)> {
        shares.iter().flat_map(|s| s.addresses.iter().map(|a| (*a, s.iface.clone()))).collect()
    };
    let (was, now) = (placed(old), placed(new));
    for (ip, iface) in was.iter().filter(|p| !now.contains(p)) {
        command(&["ip", "addr", "del", &format!("{ip}/32"), "dev", iface], "Cannot assign");
        command(&["ip", "maddr", "del", &mac_text(announce::multicast_mac(*ip)), "dev", iface], "");
        log::info!("cluster: lowered multi-hosted traffic IP {ip} on {iface}");
        emit(Event::new(
            &catalogue::TIP_LOWERED,
            "traffic_ip_groups",
            format!("lowered {ip} on {iface} (multi-hosted)"),
        ));
    }
    if let Err(e) = nft(&ruleset(new)) {
        error(&format!("cannot install the multi-hosted filters: {e}"));
    }
    for (ip, iface) in now.iter().filter(|p| !was.contains(p)) {
        let ok = command(&["ip", "maddr", "add", &mac_text(announce::multicast_mac(*ip)), "dev", iface], "File exists")
            && command(&["ip", "addr", "add", &format!("{ip}/32"), "dev", iface], "File exists");
        if ok {
            log::info!("cluster: raised multi-hosted traffic IP {ip} on {iface}");
            emit(Event::new(
                &catalogue::TIP_RAISED,
                "traffic_ip_groups",
                format!("raised {ip} on {iface} (multi-hosted)"),
            ));
        }
    }
    for s in new {
        if !old.iter().any(|o| o.group == s.group && o.buckets == s.buckets) {
            log::info!("cluster: multi-hosted group {} keeps {} of {BUCKETS} buckets", s.group, s.buckets.len());
        }
    }
}

fn mac_text(m: [u8; 6]) -> String {
    m.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

/// Run a command; true if it succeeded or failed only because it was
/// already done (`done_if` in its error).
fn command(args: &[&str], done_if: &str) -> bool {
    match Command::new(args[0]).args(&args[1..]).output() {
        Ok(o) if o.status.success() => true,
        Ok(o) => {
            let err = String::from_utf8_lossy(&o.stderr);
            if !done_if.is_empty() && err.contains(done_if) {
                return true;
            }
            error(&format!("{}: {}", args.join(" "), err.trim()));
            false
        }
        Err(e) => {
            error(&format!("cannot run {}: {e}", args[0]));
            false
        }
    }
}

fn error(text: &str) {
    log::error!("cluster: {text}");
    emit(Event::new(&catalogue::TIP_ERROR, "traffic_ip_groups", text.to_owned()));
}

/// The nftables transaction that replaces both tables with the filters
/// for `shares` (or removes them when there are none).
pub fn ruleset(shares: &[Share]) -> String {
    // Declaring a table that exists is harmless and makes the deletes
    // below valid on the first run.
    let mut t = String::from(
        "table inet shoal_multi\ndelete table inet shoal_multi\ntable arp shoal_multi\ndelete table arp shoal_multi\n",
    );
    if shares.iter().all(|s| s.addresses.is_empty()) {
        return t;
    }
    t.push_str(
        "table inet shoal_multi {\n  chain pre {\n    type filter hook prerouting priority -300; policy accept;\n",
    );
    for s in shares {
        let keep = ranges(&s.buckets);
        for ip in &s.addresses {
            let _ = writeln!(t, "    ip daddr {ip} meta pkttype multicast meta pkttype set host");
            if keep.is_empty() {
                let _ = writeln!(t, "    ip daddr {ip} meta l4proto {{ tcp, udp }} drop");
            } else if s.buckets.len() < BUCKETS as usize {
                for l4 in ["tcp", "udp"] {
                    let _ = writeln!(
                        t,
                        "    ip daddr {ip} jhash ip saddr . {l4} sport . ip daddr . {l4} dport mod {BUCKETS} seed {SEED} != {{ {keep} }} drop"
                    );
                }
            }
        }
    }
    t.push_str("  }\n}\ntable arp shoal_multi {\n");
    t.push_str("  chain in {\n    type filter hook input priority 0; policy accept;\n");
    for ip in shares.iter().flat_map(|s| &s.addresses) {
        let _ = writeln!(t, "    arp operation request arp daddr ip {ip} drop");
    }
    t.push_str("  }\n  chain out {\n    type filter hook output priority 0; policy accept;\n");
    for ip in shares.iter().flat_map(|s| &s.addresses) {
        let _ = writeln!(t, "    arp saddr ip {ip} drop");
    }
    t.push_str("  }\n}\n");
    t
}

/// "0-3, 7, 9-10" for sorted buckets.
fn ranges(buckets: &[u32]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < buckets.len() {
        let start = buckets[i];
        let mut end = start;
        while i + 1 < buckets.len() && buckets[i + 1] == end + 1 {
            i += 1;
            end = buckets[i];
        }
        out.push(if start == end { start.to_string() } else { format!("{start}-{end}") });
        i += 1;
    }
    out.join(", ")
}

fn nft(text: &str) -> Result<(), String> {
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run nft: {e}"))?;
    child.stdin.take().expect("piped").write_all(text.as_bytes()).map_err(|e| e.to_string())?;
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ruleset_keeps_the_members_ranges() {
        assert_eq!(ranges(&[0, 1, 2, 3, 7, 9, 10]), "0-3, 7, 9-10");
        assert_eq!(ranges(&[5]), "5");
        let s = Share {
            group: "g".into(),
            iface: "eth0".into(),
            addresses: vec![Ipv4Addr::new(192, 0, 2, 1)],
            buckets: vec![0, 1, 2, 700],
        };
        let r = ruleset(std::slice::from_ref(&s));
        assert!(r.contains("ip daddr 192.0.2.1 jhash ip saddr . tcp sport . ip daddr . tcp dport mod 1024 seed 0x5a1 != { 0-2, 700 } drop"), "{r}");
        assert!(r.contains("arp operation request arp daddr ip 192.0.2.1 drop"), "{r}");
        let none = ruleset(&[Share { buckets: vec![], ..s.clone() }]);
        assert!(none.contains("ip daddr 192.0.2.1 meta l4proto { tcp, udp } drop"), "{none}");
        let all = ruleset(&[Share { buckets: (0..BUCKETS).collect(), ..s }]);
        assert!(!all.contains("jhash") && !all.contains("} drop"), "{all}");
        assert!(!ruleset(&[]).contains('{'));
    }
}
