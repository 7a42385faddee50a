//! The content cache (G1–G8): RFC 9111 shared-cache rules ([`policy`],
//! [`control`]), stored objects whose bodies any shard reads while they
//! fill ([`object`]), one index partition per shard by key hash
//! ([`partition`]) with its eviction policy ([`evict`]), collapsed
//! forwarding ([`fill`]), byte ranges ([`range`]), and the module that
//! puts it in an HTTP virtual server's stack ([`module`]). docs/cache.md
//! is the operator's guide.

pub mod control;
pub mod disk;
pub mod evict;
pub mod fill;
pub mod memfd;
pub mod module;
pub mod object;
pub mod partition;
pub mod policy;
pub mod range;

use crate::config::model::CacheSettings;
use partition::PartitionLimits;

/// The shard that owns `key`'s index entry: the same on every shard and
/// in every process (fixed hash seeds).
pub fn owner(key: &[u8], shards: usize) -> usize {
    let h = ahash::RandomState::with_seeds(0x5107, 0xca, 0xc4e, 0x0b1ec7).hash_one(key);
    (h % shards.max(1) as u64) as usize
}

/// One partition's share of the settings: the memory divided evenly
/// (keys spread evenly by their hash).
pub fn partition_limits(s: &CacheSettings, shards: usize) -> PartitionLimits {
    let n = shards.max(1) as u64;
    PartitionLimits {
        memory: s.memory / n,
        max_variants: s.max_variants,
        policy: s.policy,
        disk: s.disk.as_ref().map_or(0, |(_, size)| size / n),
        disk_dir: s.disk.as_ref().map(|(dir, _)| dir.clone()),
    }
}

/// What a purge removes (the REST API's `POST .../cache/purge`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Purge {
    All,
    /// One URL: `host` (any host when `None`) and the exact target.
    Url {
        host: Option<String>,
        target: String,
    },
    /// Every URL whose target starts with `target` (on `host`, or any).
    Prefix {
        host: Option<String>,
        target: String,
    },
}

impl Purge {
    /// A purge of `url`: `http://host/target`, `https://host/target` or a
    /// bare `/target` (every host).
    pub fn url(url: &str, prefix: bool) -> Result<Purge, String> {
        let (host, target) = match url.split_once("://") {
            Some((_, rest)) => {
                let slash = rest.find('/').unwrap_or(rest.len());
                let target = if slash == rest.len() { "/" } else { &rest[slash..] };
                (Some(rest[..slash].to_ascii_lowercase()), target.to_string())
            }
            None if url.starts_with('/') => (None, url.to_string()),
            None => return Err(format!("{url:?} is neither a URL (http://host/path) nor a path (/path)")),
        };
        Ok(if prefix { Purge::Prefix { host, target } } else { Purge::Url { host, target } })
    }

    /// Whether it removes the object under primary `key` (host, space,
    /// target; see [`module::make_key`]).
    pub fn matches(&self, key: &[u8]) -> bool {
        let Some(sp) = key.iter().position(|&b| b == b' ') else { return false };
        let (host, target) = (&key[..sp], &key[sp + 1..]);
        let host_ok = |h: &Option<String>| h.as_ref().is_none_or(|h| h.as_bytes() == host);
        match self {
            Purge::All => true,
            Purge::Url { host: h, target: t } => host_ok(h) && target == t.as_bytes(),
            Purge::Prefix { host: h, target: t } => host_ok(h) && target.starts_with(t.as_bytes()),
        }
    }
}
