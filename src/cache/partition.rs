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

use super::disk::DiskRef;
use super::evict::{Evictor, PolicyKind};
use super::fill::{Fill, Outcome};
use super::object::{Body, Object};
use slab::Slab;
use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

struct Slot {
    key: Box<[u8]>,
    obj: Arc<Object>,
    /// Its copy on disk, when the disk tier has one.
    disk: Option<DiskRef>,
    /// Its body is in memory (and the slot in the memory evictor); else it
    /// is on disk only.
    in_memory: bool,
    /// Its copy is being written to disk: evicted from memory meanwhile,
    /// it stays indexed (the writer holds its body anyway) until the copy
    /// is attached or the write fails.
    disk_pending: bool,
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
    /// The disk tier's directory, when there is one (the filler writes a
    /// complete object there).
    pub disk_dir: Option<Arc<PathBuf>>,
}

/// A partition's figures (I2).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PartitionStats {
    /// Objects indexed (in memory, on disk, or both).
    pub objects: u64,
    /// Memory held by bodies.
    pub bytes: u64,
    pub stored: u64,
    /// Objects leaving memory (to the disk tier when they have a copy
    /// there, else out of the cache).
    pub evictions: u64,
    pub purged: u64,
    pub disk_objects: u64,
    pub disk_bytes: u64,
    pub disk_writes: u64,
    pub disk_evictions: u64,
}

impl PartitionStats {
    /// Add another partition's figures (the process's totals).
    pub fn add(&mut self, o: &PartitionStats) {
        self.objects += o.objects;
        self.bytes += o.bytes;
        self.stored += o.stored;
        self.evictions += o.evictions;
        self.purged += o.purged;
        self.disk_objects += o.disk_objects;
        self.disk_bytes += o.disk_bytes;
        self.disk_writes += o.disk_writes;
        self.disk_evictions += o.disk_evictions;
    }
}

/// Limits a partition works within (from `[cache]`, divided by shards).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionLimits {
    pub memory: u64,
    pub max_variants: usize,
    pub policy: PolicyKind,
    /// Bytes of files on disk (0: no disk tier).
    pub disk: u64,
    pub disk_dir: Option<Arc<PathBuf>>,
}

pub struct Partition {
    map: HashMap<Box<[u8]>, Entry, ahash::RandomState>,
    slots: Slab<Slot>,
    evictor: Box<dyn Evictor>,
    usage: Arc<AtomicU64>,
    limits: PartitionLimits,
    stats: PartitionStats,
    hasher: ahash::RandomState,
    /// Disk copies, oldest first (the disk tier evicts in this order), by
    /// slot and file (a slot number may be reused).
    disk_fifo: VecDeque<(usize, PathBuf)>,
    disk_bytes: u64,
    /// The directory this partition has read its objects from.
    scanned: Option<Arc<PathBuf>>,
}

impl Default for Partition {
    fn default() -> Self {
        Partition::new(PartitionLimits {
            memory: 0,
            max_variants: 1,
            policy: PolicyKind::S3Fifo,
            disk: 0,
            disk_dir: None,
        })
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
            disk_fifo: VecDeque::new(),
            disk_bytes: 0,
            scanned: None,
        }
    }

    /// Apply new limits (a reconfiguration): a new policy re-admits every
    /// entry in memory; a smaller limit evicts at once. A new disk
    /// directory is read: the objects in it whose key `owns` accepts are
    /// indexed, on disk (at start, this is what survives a restart).
    pub fn configure(&mut self, limits: PartitionLimits, owns: impl Fn(&[u8]) -> bool) {
        if limits == self.limits && self.scanned == limits.disk_dir {
            return;
        }
        if limits.policy != self.limits.policy || limits.memory != self.limits.memory {
            self.evictor = limits.policy.build(limits.memory);
            for (id, s) in self.slots.iter().filter(|(_, s)| s.in_memory) {
                self.evictor.admit(id, self.hasher.hash_one(&s.key), s.obj.size());
            }
        }
        let memory = limits.memory;
        self.limits = limits;
        if memory == 0 {
            self.purge(|_| true);
        }
        if let Some(dir) = self.limits.disk_dir.clone().filter(|d| Some(d) != self.scanned.as_ref()) {
            self.scanned = Some(dir.clone());
            self.read_disk(&dir, owns);
        }
        self.evict_to_limit(0);
        self.evict_disk();
    }

    /// Index the objects of `dir` this partition owns.
    fn read_disk(&mut self, dir: &std::path::Path, owns: impl Fn(&[u8]) -> bool) {
        if let Err(e) = std::fs::create_dir_all(dir) {
            log::error!("cache: disk_dir {}: {e}; no disk tier", dir.display());
            return;
        }
        let found = super::disk::scan(dir, owns);
        let n = found.len();
        for (h, d) in found {
            let obj = Arc::new(Object {
                head: h.head,
                fresh: h.fresh,
                vary: h.vary,
                rule_key: h.rule_key,
                body: Body::on_disk(d.clone(), self.usage.clone()),
                to_disk: false,
            });
            let e = self.map.entry(h.key.clone().into()).or_default();
            if e.variants.len() >= self.limits.max_variants.max(1) {
                remove_file_later(d.path);
                continue;
            }
            let id = self.slots.insert(Slot {
                key: h.key.into(),
                obj,
                disk: Some(d.clone()),
                in_memory: false,
                disk_pending: false,
            });
            e.variants.push(id);
            self.disk_bytes += d.size();
            self.disk_fifo.push_back((id, d.path));
        }
        if n > 0 {
            log::info!("cache: {n} object(s) on disk in {}", dir.display());
        }
    }

    /// The stored variants of `key`, and its fill in progress. With
    /// `claim`, a key with no variants and no fill gets a fill that the
    /// caller owns (collapsed forwarding: it goes to the node, later
    /// callers wait for it).
    pub fn lookup(&mut self, key: &[u8], claim: bool) -> Found {
        self.settle(key);
        let usage = self.usage.clone();
        let disk_dir = self.limits.disk_dir.clone().filter(|_| self.limits.disk > 0);
        let Some(e) = self.map.get_mut(key) else {
            if !claim || self.limits.memory == 0 {
                return Found { variants: Vec::new(), fill: None, usage, disk_dir };
            }
            let fill = Fill::new();
            self.map.insert(key.into(), Entry { variants: Vec::new(), fill: Some(fill.clone()) });
            return Found { variants: Vec::new(), fill: Some((fill, true)), usage, disk_dir };
        };
        // A body whose fill failed is no object: drop it.
        let failed: Vec<usize> =
            e.variants.iter().copied().filter(|&id| self.slots[id].obj.body.is_aborted()).collect();
        e.variants.retain(|id| !failed.contains(id));
        for id in failed {
            self.free(id);
        }
        let Some(e) = self.map.get_mut(key) else { unreachable!("the entry was just read") };
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
        Found { variants, fill, usage, disk_dir }
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
        if self.slot_of(key, &obj).is_none() {
            self.insert(key, obj);
        } else {
            // Its body may have grown since: keep within the limit.
            self.evict_to_limit(obj.body.final_len().unwrap_or(0).saturating_sub(obj.body.charged()));
        }
    }

    /// The slot holding `obj` under `key`.
    fn slot_of(&self, key: &[u8], obj: &Arc<Object>) -> Option<usize> {
        let e = self.map.get(key)?;
        e.variants.iter().copied().find(|&id| Arc::ptr_eq(&self.slots[id].obj, obj))
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
        let disk_pending = obj.to_disk && self.limits.disk > 0;
        let id = self.slots.insert(Slot { key: key.into(), obj, disk: None, in_memory: true, disk_pending });
        e.variants.push(id);
        for id in gone {
            self.free(id);
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
            self.free(id);
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

    /// Evict until the memory in use plus `coming` fits the limit. An
    /// object with a copy on disk stays indexed, on disk only.
    pub fn evict_to_limit(&mut self, coming: u64) {
        while self.usage.load(Ordering::Relaxed) + coming > self.limits.memory {
            let Some(id) = self.evictor.victim() else { break };
            let Some(slot) = self.slots.get_mut(id) else { continue };
            if !slot.in_memory {
                continue;
            }
            self.stats.evictions += 1;
            slot.in_memory = false;
            if slot.disk_pending && slot.disk.is_none() && !slot.obj.body.is_aborted() {
                // Kept until its disk copy is attached (or fails).
                continue;
            }
            if let Some(d) = slot.disk.clone() {
                // Demoted: the memory copy goes once its readers finish.
                slot.obj = slot.obj.on_disk(d, self.usage.clone());
                continue;
            }
            let key = slot.key.clone();
            self.unlink(&key, id);
            self.free(id);
        }
    }

    /// The disk tier's copy of a complete object was written (`Some`), or
    /// could not be (`None`): keep it with its slot, which moves to disk
    /// when memory has evicted it meanwhile; or remove the file when the
    /// object has gone (replaced, purged, invalidated).
    pub fn attach_disk(&mut self, key: &[u8], obj: &Arc<Object>, written: Option<DiskRef>) {
        let id = self.slot_of(key, obj);
        if let Some(id) = id {
            self.slots[id].disk_pending = false;
        }
        match (id, written) {
            (Some(id), Some(d)) if self.slots[id].disk.is_none() && self.limits.disk > 0 => {
                self.disk_bytes += d.size();
                self.disk_fifo.push_back((id, d.path.clone()));
                let slot = &mut self.slots[id];
                slot.disk = Some(d.clone());
                if slot.obj.body.direct_file().is_some() && slot.in_memory {
                    // Written straight to disk: served from there from now on.
                    slot.in_memory = false;
                    self.evictor.remove(id);
                }
                if !slot.in_memory {
                    slot.obj = slot.obj.on_disk(d, self.usage.clone());
                }
                self.stats.disk_writes += 1;
                self.evict_disk();
            }
            (id, written) => {
                if let Some(d) = written {
                    remove_file_later(d.path);
                }
                // Evicted from memory while its copy was being written, and
                // the copy is not to be: it leaves the cache.
                if let Some(id) = id.filter(|&id| !self.slots[id].in_memory && self.slots[id].disk.is_none()) {
                    self.unlink(key, id);
                    self.free(id);
                }
            }
        }
    }

    /// Remove the oldest disk copies until the files fit the disk limit;
    /// an object on disk only leaves the cache with its file.
    fn evict_disk(&mut self) {
        while self.disk_bytes > self.limits.disk {
            let Some((id, path)) = self.disk_fifo.pop_front() else { break };
            let Some(slot) = self.slots.get_mut(id) else { continue };
            if slot.disk.as_ref().map(|d| &d.path) != Some(&path) {
                continue;
            }
            let d = slot.disk.take().expect("checked above");
            self.disk_bytes -= d.size();
            self.stats.disk_evictions += 1;
            remove_file_later(d.path);
            if !slot.in_memory {
                let key = slot.key.clone();
                self.unlink(&key, id);
                self.slots.remove(id);
            }
        }
    }

    /// Take slot `id` out of `key`'s variants (and the key out of the
    /// index when nothing is left of it).
    fn unlink(&mut self, key: &[u8], id: usize) {
        if let Some(e) = self.map.get_mut(key) {
            e.variants.retain(|&v| v != id);
            if e.variants.is_empty() && e.fill.is_none() {
                self.map.remove(key);
            }
        }
    }

    /// Forget slot `id` (already out of its entry's variants): the memory
    /// evictor, its disk copy.
    fn free(&mut self, id: usize) {
        let Some(slot) = self.slots.try_remove(id) else { return };
        if slot.in_memory {
            self.evictor.remove(id);
        }
        if let Some(d) = slot.disk {
            self.disk_bytes -= d.size();
            remove_file_later(d.path);
        }
    }

    /// The memory figure bodies of this partition's objects charge.
    pub fn usage(&self) -> Arc<AtomicU64> {
        self.usage.clone()
    }

    pub fn stats(&self) -> PartitionStats {
        PartitionStats {
            objects: self.slots.len() as u64,
            bytes: self.usage.load(Ordering::Relaxed),
            disk_objects: self.slots.iter().filter(|(_, s)| s.disk.is_some()).count() as u64,
            disk_bytes: self.disk_bytes,
            ..self.stats
        }
    }
}

/// Delete a file the cache no longer uses, through the ring, without
/// waiting. (A partition runs on its shard's thread, in its runtime; only
/// partitions with a disk tier have files.)
fn remove_file_later(path: PathBuf) {
    monoio::spawn(async move {
        if let Err(e) = monoio::fs::remove_file(&path).await {
            log::debug!("cache: removing {}: {e}", path.display());
        }
    });
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
        Arc::new(Object { head, fresh, vary, rule_key: None, body, to_disk: false })
    }

    #[test]
    fn fills_variants_and_eviction() {
        let mut p = Partition::new(PartitionLimits {
            memory: 10_000,
            max_variants: 2,
            policy: PolicyKind::Lru,
            disk: 0,
            disk_dir: None,
        });
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
