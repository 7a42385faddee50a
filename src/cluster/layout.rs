//! Where the cluster keeps things in etcd, under the configured prefix
//! (docs/cluster.md has the table):
//!
//! - `PREFIX/config/TYPE/NAME`: one shared configuration object's TOML;
//! - `PREFIX/version`: rewritten by every configuration change, the one
//!   key a change compares, so that changes apply one at a time;
//! - `PREFIX/members/NAME`: a member's [`super::MemberInfo`] as JSON, on
//!   that member's lease.

/// The keys the cluster uses under one prefix.
#[derive(Debug, Clone)]
pub struct Layout {
    prefix: String,
}

/// What a key under the prefix is.
#[derive(Debug, PartialEq, Eq)]
pub enum Key<'a> {
    /// A configuration object, "type/name".
    Object(&'a str),
    Version,
    Member(&'a str),
    Other,
}

impl Layout {
    pub fn new(prefix: &str) -> Layout {
        Layout { prefix: prefix.to_owned() }
    }

    /// The prefix itself: a watch on it sees everything.
    pub fn all(&self) -> &str {
        &self.prefix
    }

    pub fn object(&self, id: &str) -> String {
        format!("{}config/{id}", self.prefix)
    }

    pub fn objects(&self) -> String {
        format!("{}config/", self.prefix)
    }

    pub fn version(&self) -> String {
        format!("{}version", self.prefix)
    }

    pub fn member(&self, name: &str) -> String {
        format!("{}members/{name}", self.prefix)
    }

    pub fn members(&self) -> String {
        format!("{}members/", self.prefix)
    }

    /// What `key` is; keys outside the layout are `Other` (ignored).
    pub fn parse<'a>(&self, key: &'a str) -> Key<'a> {
        let Some(rest) = key.strip_prefix(self.prefix.as_str()) else { return Key::Other };
        if rest == "version" {
            Key::Version
        } else if let Some(id) = rest.strip_prefix("config/").filter(|id| id.split('/').count() == 2) {
            Key::Object(id)
        } else if let Some(name) = rest.strip_prefix("members/").filter(|n| !n.contains('/')) {
            Key::Member(name)
        } else {
            Key::Other
        }
    }
}

/// Whether `text` (an edited object's TOML) still defines `id`
/// ("type/name"): an API delete leaves a text without it, and the key
/// goes.
pub fn defines(text: &str, id: &str) -> bool {
    let Some((kind, name)) = id.split_once('/') else { return false };
    text.parse::<toml::Table>()
        .ok()
        .and_then(|t| t.get(kind).and_then(toml::Value::as_table).map(|k| k.contains_key(name)))
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip() {
        let l = Layout::new("/shoal/");
        assert_eq!(l.parse(&l.object("pools/web")), Key::Object("pools/web"));
        assert_eq!(l.parse(&l.version()), Key::Version);
        assert_eq!(l.parse(&l.member("m1")), Key::Member("m1"));
        assert_eq!(l.parse("/shoal/config/pools"), Key::Other);
        assert_eq!(l.parse("/shoal/config/pools/a/b"), Key::Other);
        assert_eq!(l.parse("/other/version"), Key::Other);
    }

    #[test]
    fn defines_sees_deletions() {
        assert!(defines("[pools.web]\nnodes = []\n", "pools/web"));
        assert!(!defines("", "pools/web"));
        assert!(!defines("[pools]\n", "pools/web"));
        assert!(!defines("[pools.other]\n", "pools/web"));
    }
}
