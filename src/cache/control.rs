//! `Cache-Control` (RFC 9111 §5.2) parsed into the directives a shared
//! cache acts on, from a request or a response. Directive names are
//! case-insensitive; a value is a token or a quoted string. Where a
//! directive repeats, the first occurrence counts; a delta-seconds value
//! that is not a number counts as 0, which makes the response stale at
//! once (§4.2.1: "either the first occurrence should be used or the
//! response should be considered stale").

/// The directives shoal's cache acts on; others are ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Directives {
    pub no_store: bool,
    /// `no-cache` without field names.
    pub no_cache: bool,
    /// `no-cache="Field, ..."` (response).
    pub no_cache_fields: bool,
    pub private: bool,
    pub public: bool,
    pub must_revalidate: bool,
    pub proxy_revalidate: bool,
    pub only_if_cached: bool,
    pub max_age: Option<u64>,
    pub s_maxage: Option<u64>,
    /// Request: `max-stale` alone is `Some(u64::MAX)` (any staleness).
    pub max_stale: Option<u64>,
    pub min_fresh: Option<u64>,
    /// RFC 5861.
    pub stale_while_revalidate: Option<u64>,
    pub stale_if_error: Option<u64>,
    /// No intermediary may change the content (§5.2.1.6, §5.2.2.6): the
    /// compression module reads it.
    pub no_transform: bool,
}

impl Directives {
    /// Parse every line of the field (`values`: each line's value).
    pub fn parse<'a>(values: impl Iterator<Item = &'a [u8]>) -> Directives {
        let mut d = Directives::default();
        for line in values {
            let mut rest = line;
            while let Some((name, value, next)) = next_directive(rest) {
                rest = next;
                d.apply(name, value);
            }
        }
        d
    }

    fn apply(&mut self, name: &[u8], value: Option<&[u8]>) {
        let secs = |v: Option<&[u8]>| -> u64 { v.map_or(0, delta_seconds) };
        let lower = |n: &[u8], s: &str| n.eq_ignore_ascii_case(s.as_bytes());
        if lower(name, "no-store") {
            self.no_store = true;
        } else if lower(name, "no-cache") {
            match value {
                Some(v) if !v.is_empty() => self.no_cache_fields = true,
                _ => self.no_cache = true,
            }
        } else if lower(name, "private") {
            self.private = true;
        } else if lower(name, "public") {
            self.public = true;
        } else if lower(name, "must-revalidate") {
            self.must_revalidate = true;
        } else if lower(name, "proxy-revalidate") {
            self.proxy_revalidate = true;
        } else if lower(name, "only-if-cached") {
            self.only_if_cached = true;
        } else if lower(name, "max-age") {
            self.max_age.get_or_insert(secs(value));
        } else if lower(name, "s-maxage") {
            self.s_maxage.get_or_insert(secs(value));
        } else if lower(name, "max-stale") {
            self.max_stale.get_or_insert(value.map_or(u64::MAX, delta_seconds));
        } else if lower(name, "min-fresh") {
            self.min_fresh.get_or_insert(secs(value));
        } else if lower(name, "stale-while-revalidate") {
            self.stale_while_revalidate.get_or_insert(secs(value));
        } else if lower(name, "stale-if-error") {
            self.stale_if_error.get_or_insert(secs(value));
        } else if lower(name, "no-transform") {
            self.no_transform = true;
        }
    }
}

/// A delta-seconds value; too large saturates (RFC 9111 §1.2.2: at least
/// 2^31 must be understood), not a number is 0.
pub fn delta_seconds(v: &[u8]) -> u64 {
    if v.is_empty() || !v.iter().all(u8::is_ascii_digit) {
        return 0;
    }
    v.iter().fold(0u64, |n, &b| n.saturating_mul(10).saturating_add(u64::from(b - b'0')))
}

/// One directive: its name, its value if any, and the rest of the list.
type Directive<'a> = (&'a [u8], Option<&'a [u8]>, &'a [u8]);

/// The next `name[=value]` of a comma-separated list, and the rest.
fn next_directive(s: &[u8]) -> Option<Directive<'_>> {
    let s = trim_start(s);
    let s = {
        let mut s = s;
        while let [b',', rest @ ..] = s {
            s = trim_start(rest);
        }
        s
    };
    if s.is_empty() {
        return None;
    }
    let name_end = s.iter().position(|&b| b == b'=' || b == b',' || b == b' ' || b == b'\t').unwrap_or(s.len());
    let name = &s[..name_end];
    let mut rest = trim_start(&s[name_end..]);
    let mut value = None;
    if let [b'=', after @ ..] = rest {
        let after = trim_start(after);
        if let [b'"', inner @ ..] = after {
            // A quoted string: up to the closing quote (a backslash quotes
            // the next byte).
            let mut i = 0;
            while i < inner.len() && inner[i] != b'"' {
                i += if inner[i] == b'\\' { 2 } else { 1 };
            }
            let end = i.min(inner.len());
            value = Some(&inner[..end]);
            rest = &inner[(end + 1).min(inner.len())..];
        } else {
            let end = after.iter().position(|&b| b == b',' || b == b' ' || b == b'\t').unwrap_or(after.len());
            value = Some(&after[..end]);
            rest = &after[end..];
        }
    }
    // Skip anything up to the next comma (garbage after a value).
    let skip = rest.iter().position(|&b| b == b',').unwrap_or(rest.len());
    Some((name, value, &rest[skip..]))
}

fn trim_start(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Directives {
        Directives::parse(std::iter::once(s.as_bytes()))
    }

    #[test]
    fn directives() {
        let d = p("public, max-age=60, S-MAXAGE=\"120\", no-cache=\"Set-Cookie\"");
        assert!(d.public && d.no_cache_fields && !d.no_cache);
        assert_eq!((d.max_age, d.s_maxage), (Some(60), Some(120)));
        let d = p("max-age=10, max-age=20");
        assert_eq!(d.max_age, Some(10), "the first occurrence counts");
        assert_eq!(p("max-age=ten").max_age, Some(0), "not a number is stale");
        assert_eq!(p("max-age=99999999999999999999999").max_age, Some(u64::MAX));
        let d = p(" ,no-store,, private ,must-revalidate");
        assert!(d.no_store && d.private && d.must_revalidate);
        assert_eq!(p("max-stale").max_stale, Some(u64::MAX));
        assert_eq!(p("max-stale=5, min-fresh=3").min_fresh, Some(3));
        let d = p("stale-while-revalidate=30, stale-if-error=600");
        assert_eq!((d.stale_while_revalidate, d.stale_if_error), (Some(30), Some(600)));
        assert!(p("no-cache").no_cache);
        assert_eq!(p("no-cache=\"a\\\"b\", max-age=5").max_age, Some(5));
        assert_eq!(p(""), Directives::default());
        let two = Directives::parse([&b"no-cache"[..], b"max-age=3"].into_iter());
        assert!(two.no_cache && two.max_age == Some(3));
    }
}
