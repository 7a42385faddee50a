//! The value of shoal's own persistence cookies (`X-Mapping-…`): a keyed
//! hash (HMAC-SHA256) of the pool and node, so a client can neither read
//! the node out of it nor forge or edit it into another node's value: only
//! the values shoal computed for the pool's nodes are recognised.
//!
//! The key is the class's `secret`, or random per process when none is
//! set (sessions then move after a restart; set `secret` to keep them, and
//! to share cookies between traffic managers). The random key is derived
//! from one process-wide random value and the class name, so it stays the
//! same across reconfigurations.

use crate::config::model::{Config, Persistence};
use ring::hmac;

/// This process's random key (made on first use).
fn process_key() -> &'static hmac::Key {
    static KEY: std::sync::OnceLock<hmac::Key> = std::sync::OnceLock::new();
    KEY.get_or_init(|| {
        hmac::Key::generate(hmac::HMAC_SHA256, &ring::rand::SystemRandom::new())
            .expect("the system's random source works")
    })
}

pub struct Tokens {
    /// Per pool: the cookie name, and each node's value.
    pools: Vec<(String, Vec<String>)>,
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl Tokens {
    pub fn new(class: &Persistence, config: &Config) -> Tokens {
        let key = match &class.secret {
            Some(s) => hmac::Key::new(hmac::HMAC_SHA256, s.as_bytes()),
            None => {
                let tag = hmac::sign(process_key(), class.name.as_bytes());
                hmac::Key::new(hmac::HMAC_SHA256, tag.as_ref())
            }
        };
        let pools = config
            .pools
            .iter()
            .map(|p| {
                // The cookie is named after the class and pool, so pools
                // and classes never read each other's cookies.
                let id = ring::digest::digest(&ring::digest::SHA256, format!("{}\0{}", class.name, p.name).as_bytes());
                let name = format!("X-Mapping-{}", hex(&id.as_ref()[..4]));
                let values = p
                    .nodes
                    .iter()
                    .map(|n| hex(&hmac::sign(&key, format!("{}\0{}", p.name, n.name).as_bytes()).as_ref()[..16]))
                    .collect();
                (name, values)
            })
            .collect();
        Tokens { pools }
    }

    pub fn cookie_name(&self, pool: usize) -> &str {
        &self.pools[pool].0
    }

    /// The node whose value `v` is, in `pool`.
    pub fn node(&self, pool: usize, v: &[u8]) -> Option<usize> {
        self.pools[pool].1.iter().position(|t| t.as_bytes() == v)
    }

    pub fn value(&self, pool: usize, node: usize) -> &str {
        &self.pools[pool].1[node]
    }

    /// The request's claim through this pool's cookie.
    pub fn claim<'a>(&self, req: &super::RequestView<'a>, pool: usize) -> super::Claim<'a> {
        match crate::http::cookie::request_cookie(&req.head.fields, self.cookie_name(pool)) {
            None => super::Claim::None,
            Some(v) => self.node(pool, v).map_or(super::Claim::Forged, super::Claim::Node),
        }
    }

    /// A `Set-Cookie` value for `node`, with `attrs` (`; `-joined).
    pub fn set_cookie(&self, pool: usize, node: usize, attrs: &[&[u8]], out: &mut Vec<Vec<u8>>) {
        let mut v = Vec::with_capacity(64);
        v.extend_from_slice(self.cookie_name(pool).as_bytes());
        v.push(b'=');
        v.extend_from_slice(self.value(pool, node).as_bytes());
        v.extend_from_slice(b"; Path=/; HttpOnly");
        for a in attrs {
            v.extend_from_slice(b"; ");
            v.extend_from_slice(a);
        }
        out.push(v);
    }
}
