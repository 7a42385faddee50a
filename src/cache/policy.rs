//! The RFC 9111 rules of a shared cache, as pure functions over heads and
//! times: whether a request may use the cache ([`RequestPolicy`]), whether
//! a response may be stored and for how long ([`judge`], [`Freshness`]),
//! and whether a stored response may answer a request now ([`usable`]).
//! Times are whole seconds since the UNIX epoch, as HTTP dates are.
//!
//! The refusal reasons are the source product's `X-Cache-Info` texts.

use super::control::{delta_seconds, Directives};
use crate::http::request::RequestHead;
use crate::http::response::ResponseHead;
use crate::http::{trim_ows as trim, Framing};

/// What the request allows the cache to do.
#[derive(Debug, Clone, Default)]
pub struct RequestPolicy {
    pub cc: Directives,
    /// `no-cache` (or `Pragma: no-cache` without `Cache-Control`): use a
    /// stored response only after revalidating it.
    pub no_cache: bool,
    /// The request carries credentials (§3.5).
    pub authorization: bool,
    pub head: bool,
}

impl RequestPolicy {
    /// Judge a request head: `Err(reason)` when the cache is not to be
    /// used at all for it.
    pub fn of(req: &RequestHead) -> Result<RequestPolicy, &'static str> {
        let method = req.method();
        let head = method == b"HEAD";
        if method != b"GET" && !head {
            return Err("not cacheable; request wasn't a GET or HEAD");
        }
        if req.framing != Framing::None {
            return Err("not cacheable; request had a content length");
        }
        let cc = Directives::parse(req.fields.get_all("cache-control"));
        if cc.no_store {
            return Err("not cacheable; request specified \"Cache-Control: no-store\"");
        }
        let pragma = !req.fields.contains("cache-control")
            && req.fields.get_all("pragma").any(|v| contains_token(v, b"no-cache"));
        let authorization = req.fields.contains("authorization");
        let no_cache = cc.no_cache || pragma || cc.max_age == Some(0);
        Ok(RequestPolicy { cc, no_cache, authorization, head })
    }
}

/// Settings that bound what is stored (from `[cache]`).
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    /// Largest body stored.
    pub max_object: u64,
    /// Freshness lifetime given to a response with no explicit one.
    pub default_lifetime: u64,
    /// Bytes of `Vary` names and the request's values for them.
    pub max_vary: usize,
}

/// A stored response's freshness facts (RFC 9111 §4.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Freshness {
    /// When the response arrived.
    pub response_time: u64,
    /// Its age when it arrived (§4.2.3 `corrected_initial_age`).
    pub initial_age: u64,
    /// Seconds it is fresh for from its origin (§4.2.1).
    pub lifetime: u64,
    /// `must-revalidate`, `proxy-revalidate` or `s-maxage`: never served
    /// stale (§4.2.4, §5.2.2.2, §5.2.2.8, §5.2.2.10).
    pub no_stale: bool,
    /// `no-cache`: revalidated before every use (§5.2.2.4).
    pub always_revalidate: bool,
    /// RFC 5861 windows, seconds past the lifetime.
    pub stale_while_revalidate: u64,
    pub stale_if_error: u64,
}

impl Freshness {
    /// §4.2.3 `current_age` at `now`.
    pub fn age(&self, now: u64) -> u64 {
        self.initial_age + now.saturating_sub(self.response_time)
    }

    /// Seconds left fresh at `now` (negative: stale for that long).
    pub fn fresh_for(&self, now: u64) -> i64 {
        self.lifetime as i64 - self.age(now) as i64
    }
}

/// Statuses a cache may store with a heuristic lifetime (RFC 9110 §15.1),
/// less 206: shoal stores whole responses only.
fn heuristic_status(status: u16) -> bool {
    matches!(status, 200 | 203 | 204 | 300 | 301 | 308 | 404 | 405 | 410 | 414 | 501)
}

/// Whether a response to a request with `req` may be stored, and its
/// freshness. `request_time`/`response_time`: when the request went out
/// and the response head came back. `Err(reason)` when not.
pub fn judge(
    req: &RequestPolicy,
    resp: &ResponseHead,
    request_time: u64,
    response_time: u64,
    bounds: &Bounds,
) -> Result<Freshness, &'static str> {
    let status = resp.status;
    if !(200..600).contains(&status) || status == 206 || status == 304 {
        return Err("not cacheable; response code not cacheable");
    }
    let cc = Directives::parse(resp.fields.get_all("cache-control"));
    if cc.no_store {
        return Err("not cacheable; response specified \"Cache-Control: no-store\"");
    }
    if cc.private {
        return Err("not cacheable; response specified \"Cache-Control: private\"");
    }
    if cc.no_cache_fields {
        return Err("not cacheable; response specified \"Cache-Control: no-cache=...\"");
    }
    if req.authorization && !(cc.public || cc.s_maxage.is_some() || cc.must_revalidate) {
        return Err("not cacheable; request contained Authorization header");
    }
    if resp.fields.contains("set-cookie") {
        return Err("not cacheable; response sets a cookie");
    }
    if resp.fields.get_all("vary").any(|v| v.split(|&b| b == b',').any(|t| trim(t) == b"*")) {
        return Err("not cacheable; response contains \"Vary: *\"");
    }
    if let Framing::Length(n) = resp.framing {
        if n > bounds.max_object {
            return Err("not cacheable; response file size too large");
        }
    }
    let validator = resp.fields.contains("etag") || resp.fields.contains("last-modified");
    let date = resp.fields.get("date").and_then(http_date);
    let expires = resp.fields.get("expires").map(|v| http_date(v).unwrap_or(0));
    let explicit = cc.s_maxage.or(cc.max_age).or_else(|| {
        // An invalid Expires means already expired (§5.3).
        expires.map(|e| e.saturating_sub(date.unwrap_or(response_time)))
    });
    let lifetime = match explicit {
        Some(l) => l,
        None if heuristic_status(status) || cc.public => {
            // §4.2.2: a fraction (10%) of the time since Last-Modified, at
            // most the configured default; without it, the default.
            match resp.fields.get("last-modified").and_then(http_date) {
                Some(lm) => (date.unwrap_or(response_time).saturating_sub(lm) / 10).min(bounds.default_lifetime),
                None => bounds.default_lifetime,
            }
        }
        None if status == 302 => return Err("not cacheable; response is 302 without expiry time"),
        None => return Err("not cacheable; response code not cacheable"),
    };
    if cc.no_cache && !validator {
        return Err("not cacheable; response specified \"Cache-Control: no-cache\"");
    }
    if lifetime == 0 && !validator {
        return Err(if cc.s_maxage.or(cc.max_age).is_some() {
            "not cacheable; response specified max-age <= 0"
        } else {
            "not cacheable; response has already expired"
        });
    }
    // §4.2.3.
    let age_value = resp.fields.get("age").map_or(0, |v| delta_seconds(trim(v)));
    let apparent_age = response_time.saturating_sub(date.unwrap_or(response_time));
    let response_delay = response_time.saturating_sub(request_time);
    let initial_age = apparent_age.max(age_value.saturating_add(response_delay));
    if lifetime <= initial_age && !validator {
        return Err("not cacheable; response has already expired");
    }
    Ok(Freshness {
        response_time,
        initial_age,
        lifetime,
        no_stale: cc.must_revalidate || cc.proxy_revalidate || cc.s_maxage.is_some(),
        always_revalidate: cc.no_cache,
        stale_while_revalidate: cc.stale_while_revalidate.unwrap_or(0),
        stale_if_error: cc.stale_if_error.unwrap_or(0),
    })
}

/// How a stored response may answer a request now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usable {
    /// As it is.
    Fresh,
    /// Stale, but the request accepts it (`max-stale`).
    StaleAccepted,
    /// Stale within `stale-while-revalidate`: may answer while another
    /// request revalidates it.
    StaleWhileRevalidate,
    /// Only after the node confirms it (a conditional request).
    Revalidate,
}

/// §4.2.4 and §5.2.1: may the stored response with `f` answer `req` at
/// `now`?
pub fn usable(f: &Freshness, req: &RequestPolicy, now: u64) -> Usable {
    if req.no_cache || f.always_revalidate {
        return Usable::Revalidate;
    }
    let age = f.age(now);
    let fresh_for = f.fresh_for(now);
    if req.cc.max_age.is_some_and(|m| age > m) {
        return Usable::Revalidate;
    }
    if let Some(min) = req.cc.min_fresh {
        return if fresh_for >= min as i64 { Usable::Fresh } else { Usable::Revalidate };
    }
    if fresh_for > 0 {
        return Usable::Fresh;
    }
    let stale = fresh_for.unsigned_abs();
    if f.no_stale {
        return Usable::Revalidate;
    }
    if req.cc.max_stale.is_some_and(|m| stale <= m) {
        return Usable::StaleAccepted;
    }
    // Absent (0), the directive allows nothing, not "stale by 0 seconds".
    if f.stale_while_revalidate > 0 && stale <= f.stale_while_revalidate {
        return Usable::StaleWhileRevalidate;
    }
    Usable::Revalidate
}

/// RFC 5861 §4: may a stale response answer when revalidation failed?
pub fn stale_if_error(f: &Freshness, req: &RequestPolicy, now: u64) -> bool {
    if f.no_stale {
        return false;
    }
    let stale = (-f.fresh_for(now)).max(0) as u64;
    let allowed = req.cc.stale_if_error.unwrap_or(0).max(f.stale_if_error);
    stale <= allowed
}

/// An HTTP date (IMF-fixdate, RFC 850 or asctime) in seconds since the
/// epoch.
pub fn http_date(v: &[u8]) -> Option<u64> {
    let s = std::str::from_utf8(trim(v)).ok()?;
    let t = httpdate::parse_http_date(s).ok()?;
    Some(t.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs())
}

/// `secs` as an IMF-fixdate.
pub fn fmt_http_date(secs: u64) -> String {
    httpdate::fmt_http_date(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs))
}

/// Whether a comma-separated list holds `token` (case-insensitive).
pub fn contains_token(list: &[u8], token: &[u8]) -> bool {
    list.split(|&b| b == b',').any(|t| trim(t).eq_ignore_ascii_case(token))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(lifetime: u64, swr: u64) -> Freshness {
        Freshness {
            response_time: 100,
            initial_age: 0,
            lifetime,
            no_stale: false,
            always_revalidate: false,
            stale_while_revalidate: swr,
            stale_if_error: 0,
        }
    }

    #[test]
    fn stale_while_revalidate_only_where_given() {
        let req = RequestPolicy::default();
        // max-age=0: stale at once, and without the directive never served.
        assert_eq!(usable(&stored(0, 0), &req, 100), Usable::Revalidate);
        assert_eq!(usable(&stored(0, 5), &req, 100), Usable::StaleWhileRevalidate);
        assert_eq!(usable(&stored(0, 5), &req, 105), Usable::StaleWhileRevalidate);
        assert_eq!(usable(&stored(0, 5), &req, 106), Usable::Revalidate);
        assert_eq!(usable(&stored(10, 5), &req, 105), Usable::Fresh);
    }
}
