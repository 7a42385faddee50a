//! One shard's part of the cache index (G4): the keys whose hash picks
//! this shard, each with its stored variants and the fill in progress for
//! it. Only the owning shard touches its partition (other shards ask it
//! through cross-shard calls); the objects themselves are shared
//! (`Arc<Object>`), so one body serves every shard.
//!
//! Memory: every body charges its blocks to its partition's figure
//! (`usage`) as they are filled; a partition over its limit evicts, by its
//! [`Evictor`], when it stores or settles an object. Readers still sending
//! an evicted object keep its body alive until they finish.

use super::evict::{Evictor, PolicyKind};
use super::fill::{Fill, Outcome};
use super::object::Object;
use slab::Slab;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

struct Slot {
    key: Box<[u8]>,
    obj: Arc<Object>,
}

#[derive(Default)]
struct Entry {
    /// Slots of the stored variants.
    variants: Vec<usize>,
    fill: Option<Arc<Fill>>,
}

/// What a lookup found.
pub struct Found {
    pub variants: Vec<Arc<Object>>,
    /// A fill in progress for the key, and whether this lookup started it
    /// (the caller is then the one to go to the node).
    pub fill: Option<(Arc<Fill>, bool)>,
    /// The partition's memory figure, for a body the caller fills.
    pub usage: Arc<AtomicU64>,
}

/// A partition's figures (I2).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PartitionStats {
    pub objects: u64,
    pub bytes: u64,
    pub stored: u64,
    pub evictions: u64,
    pub purged: u64,
}

impl PartitionStats {
    /// Add another partition's figures (the process's totals).
    pub fn add(&mut self, o: &PartitionStats) {
        self.objects += o.objects;
        self.bytes += o.bytes;
        self.stored += o.stored;
        self.evictions += o.evictions;
        self.purged += o.purged;
    }
}

/// Limits a partition works within (from `[cache]`, divided by shards).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionLimits {
    pub memory: u64,
    pub max_variants: usize,
    pub policy: PolicyKind,
}

pub struct Partition {
    map: HashMap<Box<[u8]>, Entry, ahash::RandomState>,
    slots: Slab<Slot>,
    evictor: Box<dyn Evictor>,
    usage: Arc<AtomicU64>,
    limits: PartitionLimits,
    stats: PartitionStats,
    hasher: ahash::RandomState,
}

impl Default for Partition {
    fn default() -> Self {
        Partition::new(PartitionLimits { memory: 0, max_variants: 1, policy: PolicyKind::S3Fifo })
    }
}

impl Partition {
    pub fn new(limits: PartitionLimits) -> Partition {
        Partition {
            map: HashMap::default(),
            slots: Slab::new(),
            evictor: limits.policy.build(limits.memory),
            usage: Arc::new(AtomicU64::new(0)),
            limits,
            stats: PartitionStats::default(),
            hasher: ahash::RandomState::with_seeds(1, 2, 3, 4),
        }
    }

    /// Apply new limits (a reconfiguration): a new policy re-admits every
    /// entry; a smaller memory limit evicts at once.
    pub fn configure(&mut self, limits: PartitionLimits) {
        if limits == self.limits {
            return;
        }
        if limits.policy != self.limits.policy || limits.memory != self.limits.memory {
            self.evictor = limits.policy.build(limits.memory);
            for (id, s) in &self.slots {
                self.evictor.admit(id, self.hasher.hash_one(&s.key), s.obj.size());
            }
        }
        self.limits = limits;
        if limits.memory == 0 {
            self.purge(|_| true);
        }
        self.evict_to_limit(0);
    }

    /// The stored variants of `key`, and its fill in progress. With
    /// `claim`, a key with no variants and no fill gets a fill that the
    /// caller owns (collapsed forwarding: it goes to the node, later
    /// callers wait for it).
    pub fn lookup(&mut self, key: &[u8], claim: bool) -> Found {
        self.settle(key);
        let usage = self.usage.clone();
        let Some(e) = self.map.get_mut(key) else {
            if !claim || self.limits.memory == 0 {
                return Found { variants: Vec::new(), fill: None, usage };
            }
            let fill = Fill::new();
            self.map.insert(key.into(), Entry { variants: Vec::new(), fill: Some(fill.clone()) });
            return Found { variants: Vec::new(), fill: Some((fill, true)), usage };
        };
        // A body whose fill failed is no object: drop it.
        let (slots, evictor) = (&mut self.slots, &mut self.evictor);
        e.variants.retain(|&id| {
            let failed = slots[id].obj.body.is_aborted();
            if failed {
                evictor.remove(id);
                slots.remove(id);
            }
            !failed
        });
        let variants: Vec<Arc<Object>> = e.variants.iter().map(|&id| self.slots[id].obj.clone()).collect();
        for &id in &e.variants {
            self.evictor.hit(id);
        }
        let fill = match &e.fill {
            Some(f) => Some((f.clone(), false)),
            None if claim && e.variants.is_empty() => {
                let f = Fill::new();
                e.fill = Some(f.clone());
                Some((f, true))
            }
            None => None,
        };
        Found { variants, fill, usage }
    }

    /// Claim the fill of `key` (its variants did not serve): the fill in
    /// progress, or a new one the caller owns.
    pub fn claim(&mut self, key: &[u8]) -> (Arc<Fill>, bool) {
        self.settle(key);
        let e = self.map.entry(key.into()).or_default();
        match &e.fill {
            Some(f) => (f.clone(), false),
            None => {
                let f = Fill::new();
                e.fill = Some(f.clone());
                (f, true)
            }
        }
    }

    /// Take a resolved fill of `key` in: a stored object becomes a variant.
    pub fn settle(&mut self, key: &[u8]) {
        let Some(e) = self.map.get_mut(key) else { return };
        let outcome = match &e.fill {
            Some(f) => f.outcome(),
            None => return,
        };
        match outcome {
            Outcome::Pending => {}
            Outcome::Released => {
                e.fill = None;
                if e.variants.is_empty() {
                    self.map.remove(key);
                }
            }
            Outcome::Stored(obj) => {
                e.fill = None;
                self.insert(key, obj);
            }
        }
    }

    /// A request's new object for `key`: its fill (when it had one) is
    /// settled, and the object stored unless that already stored it.
    pub fn settle_or_insert(&mut self, key: &[u8], obj: Arc<Object>) {
        self.settle(key);
        let stored =
            self.map.get(key).is_some_and(|e| e.variants.iter().any(|&id| Arc::ptr_eq(&self.slots[id].obj, &obj)));
        if stored {
            // Its body may have grown since: keep within the limit.
            self.evict_to_limit(obj.body.final_len().unwrap_or(0).saturating_sub(obj.body.charged()));
        } else {
            self.insert(key, obj);
        }
    }

    /// Store `obj` as a variant of `key`, replacing one selected by the
    /// same request values; the oldest variant goes past `max_variants`.
    pub fn insert(&mut self, key: &[u8], obj: Arc<Object>) {
        if self.limits.memory == 0 || obj.body.is_aborted() {
            return;
        }
        let hash = self.hasher.hash_one(key);
        let e = self.map.entry(key.into()).or_default();
        let same = e.variants.iter().position(|&id| {
            let o = &self.slots[id].obj;
            o.rule_key == obj.rule_key && o.vary == obj.vary
        });
        let mut gone = Vec::new();
        if let Some(i) = same {
            gone.push(e.variants.remove(i));
        }
        while e.variants.len() >= self.limits.max_variants.max(1) {
            gone.push(e.variants.remove(0));
        }
        // Room for the whole of a body still arriving.
        let coming = obj.body.final_len().unwrap_or(0).saturating_sub(obj.body.charged());
        let size = obj.size();
        let id = self.slots.insert(Slot { key: key.into(), obj });
        e.variants.push(id);
        for id in gone {
            self.evictor.remove(id);
            self.slots.remove(id);
        }
        self.evictor.admit(id, hash, size);
        self.stats.stored += 1;
        self.evict_to_limit(coming);
    }

    /// Remove every variant of `key` (RFC 9111 §4.4 invalidation, purge).
    pub fn remove_key(&mut self, key: &[u8]) -> usize {
        let Some(e) = self.map.get_mut(key) else { return 0 };
        let ids = std::mem::take(&mut e.variants);
        if e.fill.is_none() {
            self.map.remove(key);
        }
        for &id in &ids {
            self.evictor.remove(id);
            self.slots.remove(id);
        }
        ids.len()
    }

    /// Remove every object whose key `matches`; returns how many.
    pub fn purge(&mut self, matches: impl Fn(&[u8]) -> bool) -> usize {
        let keys: Vec<Box<[u8]>> = self.map.keys().filter(|k| matches(k)).cloned().collect();
        let n: usize = keys.iter().map(|k| self.remove_key(k)).sum();
        self.stats.purged += n as u64;
        n
    }

    /// Evict until the memory in use plus `coming` fits the limit.
    pub fn evict_to_limit(&mut self, coming: u64) {
        while self.usage.load(Ordering::Relaxed) + coming > self.limits.memory {
            let Some(id) = self.evictor.victim() else { break };
            let Some(slot) = self.slots.try_remove(id) else { continue };
            if let Some(e) = self.map.get_mut(&slot.key) {
                e.variants.retain(|&v| v != id);
                if e.variants.is_empty() && e.fill.is_none() {
                    self.map.remove(&slot.key);
                }
            }
            self.stats.evictions += 1;
            // The body's memory is given back when its last reader ends.
            drop(slot);
        }
    }

    /// The memory figure bodies of this partition's objects charge.
    pub fn usage(&self) -> Arc<AtomicU64> {
        self.usage.clone()
    }

    pub fn stats(&self) -> PartitionStats {
        PartitionStats { objects: self.slots.len() as u64, bytes: self.usage.load(Ordering::Relaxed), ..self.stats }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::object::Body;
    use crate::cache::policy::Freshness;
    use crate::http::response::ResponseHead;

    fn object(p: &Partition, len: usize, vary: Option<&str>) -> Arc<Object> {
        let body = Body::complete(bytes::Bytes::from(vec![b'x'; len]), p.usage.clone());
        let fresh = Freshness {
            response_time: 0,
            initial_age: 0,
            lifetime: 60,
            no_stale: false,
            always_revalidate: false,
            stale_while_revalidate: 0,
            stale_if_error: 0,
        };
        let mut head = ResponseHead::default();
        head.new_status(200);
        let vary = vary.map(|v| vec![("accept-language".to_string(), Some(v.as_bytes().to_vec()))]).unwrap_or_default();
        Arc::new(Object { head, fresh, vary, rule_key: None, body })
    }

    #[test]
    fn fills_variants_and_eviction() {
        let mut p = Partition::new(PartitionLimits { memory: 10_000, max_variants: 2, policy: PolicyKind::Lru });
        // The first lookup claims the fill; the next one waits on it.
        let f = p.lookup(b"k", true);
        let (fill, mine) = f.fill.unwrap();
        assert!(mine && f.variants.is_empty());
        let (fill2, mine2) = p.lookup(b"k", true).fill.unwrap();
        assert!(!mine2 && Arc::ptr_eq(&fill, &fill2));
        let o = object(&p, 1000, Some("en"));
        crate::cache::fill::FillGuard::new(fill).store(o.clone());
        let f = p.lookup(b"k", true);
        assert_eq!(f.variants.len(), 1, "the stored fill is settled into a variant");
        assert!(f.fill.is_none());
        // Variants: same selection replaces, others add up to the limit.
        p.insert(b"k", object(&p, 1000, Some("en")));
        p.insert(b"k", object(&p, 1000, Some("fr")));
        assert_eq!(p.lookup(b"k", false).variants.len(), 2);
        p.insert(b"k", object(&p, 1000, Some("de")));
        assert_eq!(p.lookup(b"k", false).variants.len(), 2, "max_variants");
        drop((o, f));
        // Memory: storing past the limit evicts the least recently used.
        for i in 0..20 {
            p.insert(format!("o{i}").as_bytes(), object(&p, 1000, None));
        }
        assert!(p.usage.load(Ordering::Relaxed) <= 10_000);
        assert!(p.stats().evictions > 0);
        assert!(p.lookup(b"o19", false).variants.len() == 1 && p.lookup(b"o0", false).variants.is_empty());
        // A released fill leaves nothing behind.
        let (fill, _) = p.lookup(b"gone", true).fill.unwrap();
        crate::cache::fill::FillGuard::new(fill).release();
        assert!(p.lookup(b"gone", false).fill.is_none());
        assert_eq!(p.purge(|k| k.starts_with(b"o1")), p.stats().purged as usize);
        assert_eq!(p.remove_key(b"o19"), 0, "purged with its prefix");
    }
}
