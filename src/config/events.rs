//! `[events]` and `[event_handlers.NAME]` checked into their runtime
//! settings: every handler's action with the keys it needs and no others,
//! paths resolved against the file that names them, each error at the
//! value at fault.

use super::model::{EventAction, EventHandler, EventSettings, SyslogTarget};
use super::raw::RawEventHandler;
use super::{ConfigError, SourceFile};
use crate::events::Level;
use std::time::Duration;
use toml::Spanned;

/// The name of the built-in handler of `[events] log`.
pub const LOG_ALL: &str = "log all";

pub(crate) fn settings(files: &[SourceFile]) -> Result<EventSettings, ConfigError> {
    let found = super::validate::only_one(files, "events", |f| f.raw.events.as_ref())?;
    let Some((f, e)) = found else {
        return Ok(EventSettings { keep: 1000, cert_warning_days: 30 });
    };
    let r = e.get_ref();
    let keep = *r.keep.get_ref();
    if !(1..=100_000).contains(&keep) {
        return Err(f.error_at(
            r.keep.span(),
            Some("events.keep".into()),
            format!("must be between 1 and 100000, found {keep}"),
        ));
    }
    Ok(EventSettings { keep: keep as usize, cert_warning_days: *r.cert_warning_days.get_ref() })
}

/// Every handler, in name order, then "log all".
pub(crate) fn handlers(files: &[SourceFile]) -> Result<Vec<EventHandler>, ConfigError> {
    let mut out: Vec<EventHandler> = Vec::new();
    for f in files {
        for (name, h) in &f.raw.event_handlers {
            if out.iter().any(|o| o.name == *name.get_ref()) {
                return Err(f.error_at(
                    name.span(),
                    None,
                    format!("event handler \"{}\" is defined twice", name.get_ref()),
                ));
            }
            out.push(handler(f, name.get_ref(), h)?);
        }
    }
    if let Some((f, e)) = super::validate::only_one(files, "events", |f| f.raw.events.as_ref())? {
        if let Some(p) = &e.get_ref().log {
            out.push(EventHandler {
                name: LOG_ALL.into(),
                events: vec!["*".into()],
                level: Level::Info,
                queue: 10_000,
                action: EventAction::Log { path: super::validate::base_dir(f).join(p.get_ref()) },
            });
        }
    }
    Ok(out)
}

fn handler(f: &SourceFile, name: &str, h: &Spanned<RawEventHandler>) -> Result<EventHandler, ConfigError> {
    let r = h.get_ref();
    let key = |k: &str| Some(format!("event_handlers.{name}.{k}"));
    let err = |span: std::ops::Range<usize>, k: &str, msg: String| f.error_at(span, key(k), msg);
    let mut events = Vec::new();
    for e in r.events.get_ref() {
        let p = e.get_ref();
        let known = p == "*"
            || crate::events::catalogue::find(p).is_some()
            || p.strip_suffix(".*").is_some_and(|prefix| {
                crate::events::catalogue::ALL.iter().any(|k| k.name.starts_with(&format!("{prefix}.")))
            });
        if !known {
            return Err(err(
                e.span(),
                "events",
                format!("no event type or family \"{p}\" (docs/events.md lists them; patterns: \"node.*\", \"*\")"),
            ));
        }
        events.push(p.clone());
    }
    if events.is_empty() {
        return Err(err(r.events.span(), "events", "lists no event type".into()));
    }
    let level = match &r.level {
        None => crate::events::handlers::DEFAULT_LEVEL,
        Some(l) => Level::parse(l.get_ref()).ok_or_else(|| {
            err(l.span(), "level", format!("expected info, warning, serious or fatal, found \"{}\"", l.get_ref()))
        })?,
    };
    let queue = *r.queue.get_ref();
    if !(1..=1_000_000).contains(&queue) {
        return Err(err(r.queue.span(), "queue", format!("must be between 1 and 1000000, found {queue}")));
    }
    let action_name = r.action.get_ref().as_str();
    // The keys each action takes; any other given is an error.
    let allowed: &[&str] = match action_name {
        "log" => &["path"],
        "syslog" => &["address", "facility"],
        "webhook" => &["url", "timeout"],
        "program" => &["path", "args", "timeout"],
        other => {
            return Err(err(
                r.action.span(),
                "action",
                format!("expected \"log\", \"syslog\", \"webhook\" or \"program\", found \"{other}\""),
            ))
        }
    };
    let given: [(&str, Option<std::ops::Range<usize>>); 6] = [
        ("path", r.path.as_ref().map(|v| v.span())),
        ("address", r.address.as_ref().map(|v| v.span())),
        ("facility", r.facility.as_ref().map(|v| v.span())),
        ("url", r.url.as_ref().map(|v| v.span())),
        ("args", r.args.as_ref().map(|v| v.span())),
        ("timeout", r.timeout.as_ref().map(|v| v.span())),
    ];
    for (k, span) in given {
        if let Some(span) = span.filter(|_| !allowed.contains(&k)) {
            return Err(err(span, k, format!("{k} does not apply to action \"{action_name}\"")));
        }
    }
    let missing = |k: &str| err(h.span(), k, format!("action \"{action_name}\" needs {k}"));
    let timeout = r.timeout.as_ref().map_or(Duration::from_secs(10), |t| t.get_ref().0);
    let action = match action_name {
        "log" => EventAction::Log {
            path: super::validate::base_dir(f).join(r.path.as_ref().ok_or_else(|| missing("path"))?.get_ref()),
        },
        "syslog" => {
            let a = r.address.as_ref().ok_or_else(|| missing("address"))?;
            let target = match a.get_ref().split_once(':') {
                Some(("udp", hp)) => hp.parse().map(SyslogTarget::Udp).ok(),
                Some(("unix", p)) if p.starts_with('/') => Some(SyslogTarget::Unix(p.into())),
                _ => None,
            }
            .ok_or_else(|| {
                err(
                    a.span(),
                    "address",
                    format!("expected \"udp:IP:PORT\" or \"unix:/path\", found \"{}\"", a.get_ref()),
                )
            })?;
            let facility = match &r.facility {
                None => 3,
                Some(fac) => facility(fac.get_ref()).ok_or_else(|| {
                    err(
                        fac.span(),
                        "facility",
                        format!(
                            "expected a syslog facility (daemon, local0 … local7, user), found \"{}\"",
                            fac.get_ref()
                        ),
                    )
                })?,
            };
            EventAction::Syslog { target, facility }
        }
        "webhook" => {
            let u = r.url.as_ref().ok_or_else(|| missing("url"))?;
            let (host, port, path) = parse_url(u.get_ref()).ok_or_else(|| {
                err(
                    u.span(),
                    "url",
                    format!(
                        "expected \"http://host[:port]/path\" (https is not supported yet), found \"{}\"",
                        u.get_ref()
                    ),
                )
            })?;
            EventAction::Webhook { host, port, path, timeout }
        }
        _ => EventAction::Program {
            path: super::validate::base_dir(f).join(r.path.as_ref().ok_or_else(|| missing("path"))?.get_ref()),
            args: r.args.as_ref().map(|a| a.get_ref().clone()).unwrap_or_default(),
            timeout,
        },
    };
    Ok(EventHandler { name: name.to_owned(), events, level, queue: queue as usize, action })
}

/// A syslog facility's number (RFC 5424 §6.2.1).
fn facility(name: &str) -> Option<u8> {
    let n = match name {
        "kern" => 0,
        "user" => 1,
        "daemon" => 3,
        "auth" => 4,
        "syslog" => 5,
        _ => return name.strip_prefix("local").and_then(|d| d.parse::<u8>().ok()).filter(|d| *d <= 7).map(|d| 16 + d),
    };
    Some(n)
}

/// `http://host[:port]/path` → (host, port, path).
fn parse_url(u: &str) -> Option<(String, u16, String)> {
    let rest = u.strip_prefix("http://")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (h, p.parse().ok()?),
        _ => (authority, 80),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() || path.bytes().any(|b| b.is_ascii_whitespace() || b.is_ascii_control()) {
        return None;
    }
    Some((host.to_owned(), port, path.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_facilities() {
        assert_eq!(parse_url("http://127.0.0.1:9000/hook"), Some(("127.0.0.1".into(), 9000, "/hook".into())));
        assert_eq!(parse_url("http://example.com"), Some(("example.com".into(), 80, "/".into())));
        assert_eq!(parse_url("http://[::1]:81/x?y=1"), Some(("::1".into(), 81, "/x?y=1".into())));
        assert_eq!(parse_url("https://example.com/"), None);
        assert_eq!(parse_url("http://h:notaport/"), None);
        assert_eq!(parse_url("http://h/a b"), None);
        assert_eq!((facility("daemon"), facility("local7"), facility("local8")), (Some(3), Some(23), None));
    }
}
