//! Eviction: which stored object goes when a partition is over its memory
//! limit. One policy per file behind [`Evictor`]; entries are the
//! partition's slot numbers, with the size they were admitted at.
//!
//! - [`lru::Lru`]: least recently used, the floor.
//! - [`s3fifo::S3Fifo`]: S3-FIFO (Yang et al., SOSP 2023): new objects go
//!   to a small FIFO and only those hit again there reach the main one, so
//!   a scan of objects read once passes through the small queue without
//!   pushing the hot set out. The default; [`sim`] compares the two on a
//!   Zipf trace with scans mixed in (perf/RESULTS.md has the figures).

pub mod lru;
pub mod s3fifo;
pub mod sim;

/// An eviction policy over a partition's entries.
pub trait Evictor {
    /// Entry `id` (of `size` bytes; `hash` of its key) was stored.
    fn admit(&mut self, id: usize, hash: u64, size: u64);
    /// Entry `id` answered a request.
    fn hit(&mut self, id: usize);
    /// Entry `id` left for another reason (replaced, purged, invalid).
    fn remove(&mut self, id: usize);
    /// The entry to evict next (it is forgotten: the caller removes it).
    fn victim(&mut self) -> Option<usize>;
}

/// The policy named in the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyKind {
    Lru,
    S3Fifo,
}

impl PolicyKind {
    /// A policy for a partition of `capacity` bytes.
    pub fn build(self, capacity: u64) -> Box<dyn Evictor> {
        match self {
            PolicyKind::Lru => Box::new(lru::Lru::default()),
            PolicyKind::S3Fifo => Box::new(s3fifo::S3Fifo::new(capacity)),
        }
    }
}
