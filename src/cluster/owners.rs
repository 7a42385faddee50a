//! Who holds which traffic IP address of a single-hosted group (K3): a
//! pure function of the group's addresses, its configured members and the
//! live ones, so every member computes the same answer from what etcd
//! shows it, with no election and no messages.
//!
//! Balanced rendezvous hashing in two steps. First each address gets a
//! primary among *all* configured members: addresses in order, each to the
//! member with the highest score `hash(address, member)` that holds fewer
//! than ceil(addresses / members). Primaries do not depend on who is
//! alive, so a live member never loses an address when another fails. Then
//! the addresses whose primary is dead (orphans) go, in order, to the live
//! member with the highest score holding fewer than ceil(addresses /
//! live). Only a failed member's addresses move, and they spread over the
//! survivors; when it comes back, exactly those move back.
//!
//! The hash is FNV-1a with a 64-bit finaliser, written out here: members
//! must agree across builds and platforms, which no std or ahash hasher
//! promises.

use std::collections::BTreeSet;
use std::net::IpAddr;

/// The score of `member` for `key` (an address, or a bucket number).
pub fn score(key: &[u8], member: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in key.iter().chain([0xff].iter()).chain(member.as_bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // splitmix64's finaliser: FNV's low bits mix poorly on its own.
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

fn key(ip: &IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

/// Each address's holder (index into `members`), or None when no member
/// is live. `members` is the group's configured list; `live` the names
/// etcd shows alive.
pub fn single(addresses: &[IpAddr], members: &[String], live: &BTreeSet<String>) -> Vec<Option<usize>> {
    if members.is_empty() {
        return vec![None; addresses.len()];
    }
    let keys: Vec<Vec<u8>> = addresses.iter().map(key).collect();
    let pick = |k: &[u8], load: &[usize], cap: usize, allowed: &dyn Fn(usize) -> bool| {
        (0..members.len())
            .filter(|&m| allowed(m) && load[m] < cap)
            .max_by_key(|&m| (score(k, &members[m]), std::cmp::Reverse(m)))
    };
    let cap = addresses.len().div_ceil(members.len());
    let mut load = vec![0; members.len()];
    let mut primary = Vec::with_capacity(addresses.len());
    for k in &keys {
        let m = pick(k, &load, cap, &|_| true).expect("cap * members >= addresses");
        load[m] += 1;
        primary.push(m);
    }
    let is_live = |m: usize| live.contains(&members[m]);
    let n_live = (0..members.len()).filter(|&m| is_live(m)).count();
    if n_live == 0 {
        return vec![None; addresses.len()];
    }
    let mut load: Vec<usize> = vec![0; members.len()];
    for &m in primary.iter().filter(|&&m| is_live(m)) {
        load[m] += 1;
    }
    let cap = addresses.len().div_ceil(n_live);
    keys.iter()
        .zip(&primary)
        .map(|(k, &p)| {
            if is_live(p) {
                return Some(p);
            }
            let m = pick(k, &load, cap, &is_live)?;
            load[m] += 1;
            Some(m)
        })
        .collect()
}

/// How many buckets a multi-hosted group's hash space is cut into (K4):
/// enough that 8 members get shares within a percent or two of each other.
pub const BUCKETS: u32 = 1024;

/// The buckets (0..BUCKETS) `member` keeps of a multi-hosted group: pure
/// rendezvous over the live members, so a failure moves only the failed
/// member's buckets and a member that comes back takes back only its own.
pub fn buckets(members: &[String], live: &BTreeSet<String>, member: &str) -> Vec<u32> {
    let alive: Vec<&String> = members.iter().filter(|m| live.contains(*m)).collect();
    (0..BUCKETS)
        .filter(|b| {
            let k = b.to_be_bytes();
            alive.iter().max_by_key(|m| score(&k, m)).is_some_and(|m| *m == member)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (1..=n).map(|i| format!("m{i}")).collect()
    }

    fn addrs(n: u8) -> Vec<IpAddr> {
        (1..=n).map(|i| IpAddr::from([10, 0, 0, i])).collect()
    }

    fn count(owners: &[Option<usize>], m: usize) -> usize {
        owners.iter().filter(|o| **o == Some(m)).count()
    }

    #[test]
    fn spread_evenly_and_only_the_dead_members_move() {
        for (n_addr, n_mem) in [(6, 3), (7, 3), (2, 3), (12, 4), (1, 1), (16, 5)] {
            let (a, m) = (addrs(n_addr), names(n_mem));
            let all: BTreeSet<String> = m.iter().cloned().collect();
            let full = single(&a, &m, &all);
            let cap = a.len().div_ceil(m.len());
            for i in 0..m.len() {
                assert!(count(&full, i) <= cap, "{n_addr}/{n_mem}: {full:?}");
            }
            assert!(full.iter().all(Option::is_some));
            for dead in 0..m.len() {
                let live: BTreeSet<String> = all.iter().filter(|x| **x != m[dead]).cloned().collect();
                let after = single(&a, &m, &live);
                for (before, now) in full.iter().zip(&after) {
                    if *before != Some(dead) {
                        assert_eq!(before, now, "{n_addr}/{n_mem}: a live member's address moved");
                    } else if m.len() > 1 {
                        assert_ne!(*now, Some(dead));
                        assert!(now.is_some());
                    }
                }
                if m.len() > 1 {
                    let cap = a.len().div_ceil(m.len() - 1);
                    for i in (0..m.len()).filter(|i| *i != dead) {
                        assert!(count(&after, i) <= cap, "{after:?}");
                    }
                }
            }
        }
        // Six addresses over three: two each, whatever the hash says.
        let o = single(&addrs(6), &names(3), &names(3).into_iter().collect());
        assert_eq!((count(&o, 0), count(&o, 1), count(&o, 2)), (2, 2, 2));
        assert_eq!(single(&addrs(2), &names(2), &BTreeSet::new()), [None, None]);
    }

    #[test]
    fn buckets_partition_and_move_only_the_dead_members() {
        let m = names(3);
        let all: BTreeSet<String> = m.iter().cloned().collect();
        let shares: Vec<Vec<u32>> = m.iter().map(|x| buckets(&m, &all, x)).collect();
        let total: usize = shares.iter().map(Vec::len).sum();
        assert_eq!(total, BUCKETS as usize);
        for s in &shares {
            assert!((280..=400).contains(&s.len()), "{}", s.len());
        }
        let live: BTreeSet<String> = ["m1".to_string(), "m2".to_string()].into();
        let after: Vec<Vec<u32>> = m.iter().map(|x| buckets(&m, &live, x)).collect();
        assert!(after[2].is_empty());
        for i in 0..2 {
            assert!(shares[i].iter().all(|b| after[i].contains(b)), "a live member lost a bucket");
        }
        assert_eq!(after[0].len() + after[1].len(), BUCKETS as usize);
    }

    #[test]
    fn the_hash_is_fixed() {
        // Members of different builds must agree: pinned values.
        assert_eq!(score(&[10, 0, 0, 1], "m1"), score(&[10, 0, 0, 1], "m1"));
        assert_ne!(score(&[10, 0, 0, 1], "m1"), score(&[10, 0, 0, 1], "m2"));
        assert_eq!(format!("{:016x}", score(&[10, 0, 0, 1], "m1")), "51ceb31413d483b0");
    }
}
