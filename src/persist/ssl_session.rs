//! SSL-session-ID persistence (E1, with B6 passthrough): a TLS 1.2 client
//! resuming a session offers the session ID its node issued, and only that
//! node can resume it, so shoal remembers which node issued each ID (read
//! from the node's ServerHello) and sends resumptions there.
//!
//! TLS 1.3 has no such ID: its ServerHello echoes whatever the client sent
//! (a random value in compatibility mode), and resumption uses encrypted
//! tickets shoal cannot see. Nothing is recorded for TLS 1.3, and those
//! connections are balanced normally (docs/tls.md says what to use instead).
//!
//! The store is shared by all shards behind a mutex taken twice per new
//! connection (lookup, record), never per byte relayed.

use super::lru::Lru;
use std::sync::Mutex;

/// (pool, session ID) → node index.
type Key = (u32, Vec<u8>);

pub struct SessionStore {
    lru: Mutex<Lru<Key, u32>>,
    pub max_entries: usize,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counters {
    pub entries: usize,
    pub evictions: u64,
    pub oldest_age_s: u64,
}

impl SessionStore {
    pub fn new(max_entries: usize) -> Self {
        SessionStore { lru: Mutex::new(Lru::new(max_entries)), max_entries }
    }

    /// The node that issued session `id` in `pool`, if remembered.
    pub fn lookup(&self, pool: usize, id: &[u8]) -> Option<usize> {
        if id.is_empty() {
            return None;
        }
        let mut l = self.lru.lock().ok()?;
        l.get(&(pool as u32, id.to_vec())).map(|&n| n as usize)
    }

    pub fn record(&self, pool: usize, id: &[u8], node: usize) {
        if id.is_empty() {
            return;
        }
        if let Ok(mut l) = self.lru.lock() {
            l.insert((pool as u32, id.to_vec()), node as u32);
        }
    }

    pub fn forget(&self, pool: usize, id: &[u8]) {
        if let Ok(mut l) = self.lru.lock() {
            l.remove(&(pool as u32, id.to_vec()));
        }
    }

    pub fn counters(&self) -> Counters {
        match self.lru.lock() {
            Ok(l) => Counters {
                entries: l.len(),
                evictions: l.evictions,
                oldest_age_s: l.oldest_age().map_or(0, |d| d.as_secs()),
            },
            Err(_) => Counters::default(),
        }
    }
}
