//! Raw files → validated [`Config`]: merges included files, resolves names
//! to indices, checks cross-references and value ranges. Errors point at the
//! offending value.

use super::model::*;
use super::raw::{self, Dur};
use super::{ConfigError, SourceFile};
use std::collections::HashMap;
use std::net::{SocketAddr, ToSocketAddrs};
use toml::Spanned;

const MIN_BUFFER: u32 = 1024;
const MAX_BUFFER: u32 = 16 << 20;

/// The one file's table `[name]` that `get` reads, if any file has it; a
/// second one is an error pointing at both.
pub(crate) fn only_one<'a, T>(
    files: &'a [SourceFile],
    name: &str,
    get: impl Fn(&'a SourceFile) -> Option<&'a Spanned<T>>,
) -> Result<Option<(&'a SourceFile, &'a Spanned<T>)>, ConfigError> {
    let mut found: Option<(&SourceFile, &Spanned<T>)> = None;
    for f in files {
        if let Some(t) = get(f) {
            if let Some((prev, pt)) = found {
                let (l, c) = super::line_col(&prev.text, pt.span().start);
                return Err(f.error_at(
                    t.span(),
                    Some(name.into()),
                    format!("[{name}] is already defined at {}:{l}:{c}", prev.name),
                ));
            }
            found = Some((f, t));
        }
    }
    Ok(found)
}

pub(crate) fn validate(files: &[SourceFile]) -> Result<Config, ConfigError> {
    // Global: at most one file may set it.
    let global_raw = only_one(files, "global", |f| f.raw.global.as_ref())?;
    let default_global = raw::RawGlobal::default();
    let g = global_raw.map_or(&default_global, |(_, g)| g.get_ref());
    let global = Global {
        shards: g.shards.clone(),
        shutdown_timeout: g.shutdown_timeout.0,
        log_level: g.log_level.0,
        mesh_interval: g.mesh_interval.0.max(std::time::Duration::from_millis(1)),
        ring_entries: g.ring_entries.clamp(64, 32768).next_power_of_two(),
        rules: rule_limits(global_raw.map(|(f, _)| f), g)?,
    };

    // Persistence classes, then pools (which refer to them), then virtual
    // servers (which refer to pools).
    let mut persistence = Vec::new();
    for f in files {
        for (name, p) in &f.raw.persistence {
            if persistence.iter().any(|c: &Persistence| &c.name == name.get_ref()) {
                return Err(f.error_at(
                    name.span(),
                    None,
                    format!("persistence class \"{}\" is defined twice", name.get_ref()),
                ));
            }
            let max = *p.max_entries.get_ref();
            if max == 0 || max > 100_000_000 {
                return Err(f.error_at(
                    p.max_entries.span(),
                    Some(format!("persistence.{}.max_entries", name.get_ref())),
                    format!("must be between 1 and 100000000, found {max}"),
                ));
            }
            persistence.push(persistence_class(f, name, p, max)?);
        }
    }

    let mut monitors = Vec::new();
    for f in files {
        for (name, m) in &f.raw.monitors {
            if monitors.iter().any(|x: &Monitor| &x.name == name.get_ref()) {
                return Err(f.error_at(name.span(), None, format!("monitor \"{}\" is defined twice", name.get_ref())));
            }
            monitors.push(monitor(f, name, m)?);
        }
    }

    let mut pools = Vec::new();
    let mut pool_index: HashMap<&str, (usize, &SourceFile, &Spanned<String>)> = HashMap::new();
    for f in files {
        for (name, p) in &f.raw.pools {
            if let Some((_, pf, pn)) = pool_index.get(name.get_ref().as_str()) {
                let (l, c) = super::line_col(&pf.text, pn.span().start);
                return Err(f.error_at(
                    name.span(),
                    None,
                    format!("pool \"{}\" is already defined at {}:{l}:{c}", name.get_ref(), pf.name),
                ));
            }
            pool_index.insert(name.get_ref(), (pools.len(), f, name));
            pools.push(pool(f, name, p, &persistence, &monitors)?);
        }
    }

    let rate_classes = super::shaping::rate_classes(files)?;
    let bandwidth_classes = super::shaping::bandwidth_classes(files)?;
    let service_levels = super::shaping::service_levels(files)?;
    let names = super::rules::Names {
        pools: &pools,
        persistence: &persistence,
        rate_classes: &rate_classes,
        bandwidth_classes: &bandwidth_classes,
        service_levels: &service_levels,
    };
    let checked = super::rules::rules(files, &names)?;

    let mut virtual_servers = Vec::new();
    let mut seen_vs: HashMap<&str, (&SourceFile, &Spanned<String>)> = HashMap::new();
    // (address, UDP): a UDP and a TCP virtual server may share a port.
    let mut seen_listen: HashMap<(SocketAddr, bool), String> = HashMap::new();
    for f in files {
        for (name, v) in &f.raw.virtual_servers {
            let vname = name.get_ref();
            if let Some((pf, pn)) = seen_vs.get(vname.as_str()) {
                let (l, c) = super::line_col(&pf.text, pn.span().start);
                return Err(f.error_at(
                    name.span(),
                    None,
                    format!("virtual server \"{vname}\" is already defined at {}:{l}:{c}", pf.name),
                ));
            }
            seen_vs.insert(vname, (f, name));
            let key = |k: &str| Some(format!("virtual_servers.{vname}.{k}"));
            let pool = match pool_index.get(v.pool.get_ref().as_str()) {
                Some((i, _, _)) => *i,
                None => {
                    let mut known: Vec<&str> = pool_index.keys().copied().collect();
                    known.sort_unstable();
                    return Err(f.error_at(
                        v.pool.span(),
                        key("pool"),
                        format!(
                            "no pool named \"{}\" (defined pools: {})",
                            v.pool.get_ref(),
                            if known.is_empty() { "none".into() } else { known.join(", ") }
                        ),
                    ));
                }
            };
            let mut listen = Vec::new();
            for l in &v.listen.get_ref().0 {
                let addr: SocketAddr = l.parse().map_err(|_| {
                    f.error_at(v.listen.span(), key("listen"), format!("invalid listen address \"{l}\": expected IP:PORT such as \"127.0.0.1:8080\" or \"[::]:443\""))
                })?;
                if addr.port() != 0 {
                    if let Some(other) = seen_listen.insert((addr, v.protocol == raw::Protocol::Udp), vname.clone()) {
                        return Err(f.error_at(
                            v.listen.span(),
                            key("listen"),
                            format!("{addr} is already used by virtual server \"{other}\""),
                        ));
                    }
                }
                listen.push(addr);
            }
            if listen.is_empty() {
                return Err(f.error_at(
                    name.span(),
                    key("listen"),
                    "a virtual server needs at least one listen address".into(),
                ));
            }
            // First: a UDP virtual server's keys, and the keys it cannot have.
            let udp = super::udp::vs_udp(f, vname, v)?;
            super::rtsp::vs_rtsp(f, vname, v)?;
            let banner = match (&v.banner, v.protocol) {
                (Some(b), raw::Protocol::ServerFirstBanner) => Some(b.get_ref().as_bytes().to_vec()),
                (None, raw::Protocol::ServerFirstBanner) => {
                    return Err(f.error_at(
                        name.span(),
                        key("banner"),
                        "protocol server_first_banner needs a `banner`".into(),
                    ))
                }
                (Some(b), p) => {
                    return Err(f.error_at(
                        b.span(),
                        key("banner"),
                        format!("`banner` only applies to server_first_banner, not {}", p.name()),
                    ))
                }
                (None, _) => None,
            };
            let bs = *v.buffer_size.get_ref();
            if !(MIN_BUFFER..=MAX_BUFFER).contains(&bs) {
                return Err(f.error_at(
                    v.buffer_size.span(),
                    key("buffer_size"),
                    format!("buffer_size must be between {MIN_BUFFER} and {MAX_BUFFER} bytes, found {bs}"),
                ));
            }
            if v.max_connections == 0 {
                return Err(f.error_at(
                    name.span(),
                    key("max_connections"),
                    "max_connections must be at least 1".into(),
                ));
            }
            let shards = match &v.shards {
                Some(s) if s.get_ref().is_empty() => {
                    return Err(f.error_at(s.span(), key("shards"), "the shard list is empty".into()))
                }
                Some(s) => Some(s.get_ref().clone()),
                None => None,
            };
            let http = http_settings(f, vname, v)?;
            let tls = match &v.tls {
                None => None,
                Some(t) if v.protocol == raw::Protocol::SslPassthrough => {
                    return Err(f.error_at(
                        t.span(),
                        key("tls"),
                        "an ssl_passthrough virtual server relays TLS untouched; it cannot also terminate it (remove `tls`, or use another protocol)".into(),
                    ))
                }
                Some(t) => Some(vs_tls(f, vname, t, v.protocol)?),
            };
            let mut tls = tls;
            let http2 = super::http2::vs_http2(f, vname, v, &http, v.client_idle_timeout.0, tls.as_mut())?;
            let mut sni_pools = Vec::new();
            if let Some(map) = &v.sni_pools {
                if v.protocol != raw::Protocol::SslPassthrough {
                    return Err(f.error_at(
                        map.span(),
                        key("sni_pools"),
                        "sni_pools applies to ssl_passthrough virtual servers only".into(),
                    ));
                }
                for (pattern, pname) in map.get_ref() {
                    let Some((i, _, _)) = pool_index.get(pname.get_ref().as_str()) else {
                        return Err(f.error_at(
                            pname.span(),
                            key("sni_pools"),
                            format!("no pool named \"{}\"", pname.get_ref()),
                        ));
                    };
                    sni_pools.push((pattern.to_ascii_lowercase(), *i));
                }
                // Exact names before wildcards, so the most specific wins.
                sni_pools.sort_by_key(|(p, _)| p.starts_with("*."));
            }
            for &pi in std::iter::once(&pool).chain(sni_pools.iter().map(|(_, i)| i)) {
                let Some(class) = pools[pi].persistence.map(|c: usize| &persistence[c]) else { continue };
                let fits = match class.kind {
                    PersistenceType::SslSessionId => v.protocol == raw::Protocol::SslPassthrough,
                    PersistenceType::RtspSession => v.protocol == raw::Protocol::Rtsp,
                    PersistenceType::Ip => true,
                    _ => v.protocol == raw::Protocol::Http,
                };
                if !fits {
                    return Err(f.error_at(
                        v.pool.span(),
                        key("pool"),
                        format!(
                            "pool \"{}\" uses {} persistence (class \"{}\"), which a {} virtual server cannot apply: \
                             ssl_session_id needs ssl_passthrough, rtsp_session needs rtsp, \
                             the cookie and request classes need http, ip works everywhere",
                            pools[pi].name,
                            PersistenceType::name(class.kind),
                            class.name,
                            v.protocol.name()
                        ),
                    ));
                }
            }
            let (request_rules, response_rules) = super::rules::vs_rules(&checked, f, vname, v)?;
            let rules_every_read = match v.rules_run.as_ref().map(|r| (r, r.get_ref().as_str())) {
                None | Some((_, "once")) => false,
                Some((r, _)) if v.protocol == raw::Protocol::Rtsp => {
                    return Err(f.error_at(
                        r.span(),
                        key("rules_run"),
                        "rules_run applies to the generic protocols; rtsp rules run on every message".into(),
                    ))
                }
                Some((_, "every")) if v.protocol != raw::Protocol::Http => true,
                Some((r, "every")) => {
                    return Err(f.error_at(
                        r.span(),
                        key("rules_run"),
                        "rules_run applies to the generic protocols; http rules run on every request".into(),
                    ))
                }
                Some((r, other)) => {
                    return Err(f.error_at(
                        r.span(),
                        key("rules_run"),
                        format!("expected \"once\" or \"every\", found \"{other}\""),
                    ))
                }
            };
            let dsr = match &v.dsr {
                None => None,
                Some(d) => Some(dsr(f, vname, v, d, &pool_index)?),
            };
            let cache = super::cache::vs_cache(f, vname, v)?;
            let classes = super::shaping::vs_classes(f, vname, v, &rate_classes, &bandwidth_classes, &service_levels)?;
            let compression = super::compression::vs_compression(f, vname, v)?;
            if !v.enabled {
                continue;
            }
            virtual_servers.push(VirtualServer {
                name: vname.clone(),
                listen,
                protocol: v.protocol,
                pool,
                max_connections: v.max_connections,
                max_connections_per_client: (v.max_connections_per_client > 0).then_some(v.max_connections_per_client),
                connect_timeout: v.connect_timeout.map(|d: Dur| d.0),
                client_idle_timeout: v.client_idle_timeout.0,
                server_idle_timeout: v.server_idle_timeout.0,
                banner,
                buffer_size: bs as usize,
                splice: v.splice,
                backlog: v.backlog.clamp(1, 65535),
                shards,
                http,
                tls,
                sni_pools,
                request_rules,
                response_rules,
                rules_every_read,
                dsr,
                cache,
                rate_class: classes.rate,
                bandwidth_class: classes.bandwidth,
                service_level: classes.service_level,
                compression,
                http2,
                udp,
            });
        }
    }

    let mut responders = Vec::new();
    for f in files {
        for (name, r) in &f.raw.responders {
            let listen: SocketAddr = r.listen.get_ref().parse().map_err(|_| {
                f.error_at(
                    r.listen.span(),
                    Some(format!("responders.{}.listen", name.get_ref())),
                    format!("invalid listen address \"{}\"", r.listen.get_ref()),
                )
            })?;
            if let Some(other) = seen_listen.insert((listen, false), name.get_ref().clone()) {
                return Err(f.error_at(r.listen.span(), None, format!("{listen} is already used by \"{other}\"")));
            }
            responders.push(Responder { name: name.get_ref().clone(), listen, greeting: r.greeting.clone() });
        }
    }

    let mut api = None;
    for f in files {
        if let Some(a) = &f.raw.api {
            if api.is_some() {
                return Err(f.error_at(a.span(), Some("api".into()), "[api] is defined in more than one file".into()));
            }
            api = Some(api_settings(f, a)?);
        }
    }

    let cluster = super::cluster::settings(files)?;
    let traffic_ip_groups = super::cluster::groups(files)?;
    if cluster.is_none() {
        if let Some((f, name)) = files.iter().find_map(|f| f.raw.traffic_ip_groups.keys().next().map(|n| (f, n))) {
            return Err(f.error_at(
                name.span(),
                None,
                format!("traffic IP group \"{}\" needs [cluster]: its members are the cluster's", name.get_ref()),
            ));
        }
    }

    Ok(Config {
        source: String::new(),
        files: Vec::new(),
        global,
        virtual_servers,
        pools,
        responders,
        persistence,
        monitors,
        rules: checked.rules,
        api,
        cache: super::cache::settings(files)?,
        rate_classes,
        bandwidth_classes,
        service_levels,
        events: super::events::settings(files)?,
        event_handlers: super::events::handlers(files)?,
        cluster,
        traffic_ip_groups,
    })
}

fn dsr(
    f: &SourceFile,
    vname: &str,
    v: &raw::RawVirtualServer,
    d: &Spanned<raw::RawDsr>,
    pools: &HashMap<&str, (usize, &SourceFile, &Spanned<String>)>,
) -> Result<Dsr, ConfigError> {
    let key = |k: &str| Some(format!("virtual_servers.{vname}.dsr.{k}"));
    if v.protocol != raw::Protocol::Http {
        return Err(f.error_at(d.span(), key(""), "dsr applies to http virtual servers".into()));
    }
    let r = d.get_ref();
    let paths = r.paths.get_ref().clone();
    if paths.is_empty() || paths.iter().any(|p| !p.starts_with('/') && !p.starts_with('*')) {
        return Err(f.error_at(
            r.paths.span(),
            key("paths"),
            "give the paths redirected as patterns that start with '/' or '*', such as \"/media/*\" or \"*.iso\""
                .into(),
        ));
    }
    let pool = match &r.pool {
        None => None,
        Some(p) => Some(
            pools
                .get(p.get_ref().as_str())
                .map(|(i, _, _)| *i)
                .ok_or_else(|| f.error_at(p.span(), key("pool"), format!("no pool named \"{}\"", p.get_ref())))?,
        ),
    };
    let probe = r.probe.get_ref();
    if !probe.starts_with('/') || probe.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err(f.error_at(r.probe.span(), key("probe"), format!("\"{probe}\" is not a path")));
    }
    let scheme = r.scheme.get_ref();
    if scheme != "http" && scheme != "https" {
        return Err(f.error_at(r.scheme.span(), key("scheme"), format!("expected http or https, found \"{scheme}\"")));
    }
    let status = *r.status.get_ref();
    if ![301, 302, 303, 307, 308].contains(&status) {
        return Err(f.error_at(
            r.status.span(),
            key("status"),
            format!("expected 301, 302, 303, 307 or 308, found {status}"),
        ));
    }
    let public = r.public.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    Ok(Dsr { paths, pool, probe: probe.clone(), scheme: scheme.clone(), status, public })
}

/// `global.rule_*`: what one rule run may spend, and the data store's size.
fn rule_limits(f: Option<&SourceFile>, g: &raw::RawGlobal) -> Result<RuleLimits, ConfigError> {
    let check = |v: &Spanned<u64>, name: &str, min: u64, max: u64| {
        let x = *v.get_ref();
        if (min..=max).contains(&x) {
            return Ok(x);
        }
        let message = format!("global.{name} must be between {min} and {max}, found {x}");
        Err(match f {
            Some(f) => f.error_at(v.span(), Some(format!("global.{name}")), message),
            None => ConfigError { file: String::new(), line: 0, column: 0, key: None, message },
        })
    };
    Ok(RuleLimits {
        instructions: check(&g.rule_instructions, "rule_instructions", 1_000, 1_000_000_000)?,
        memory: check(&g.rule_memory, "rule_memory", 64 << 10, 4 << 30)? as usize,
        body_limit: check(&g.rule_body_limit, "rule_body_limit", 1 << 10, 1 << 30)? as usize,
        data_size: check(&g.rule_data_size, "rule_data_size", 0, 4 << 30)? as usize,
    })
}

fn api_settings(f: &SourceFile, a: &Spanned<raw::RawApi>) -> Result<Api, ConfigError> {
    let r = a.get_ref();
    let span = |s: &std::ops::Range<usize>| if s.is_empty() { a.span() } else { s.clone() };
    let listen =
        resolve(r.listen.get_ref()).map_err(|e| f.error_at(span(&r.listen.span()), Some("api.listen".into()), e))?;
    if r.users.get_ref().is_empty() {
        return Err(f.error_at(
            r.users.span(),
            Some("api.users".into()),
            "at least one user is needed (user = \"hash\"; `shoal passwd` makes a hash)".into(),
        ));
    }
    let mut users = Vec::new();
    for (name, hash) in r.users.get_ref() {
        crate::api::auth::check_hash_format(hash.get_ref()).map_err(|e| {
            f.error_at(hash.span(), Some(format!("api.users.{name}")), format!("not a password hash: {e}"))
        })?;
        users.push((name.clone(), hash.get_ref().clone()));
    }
    if r.tls.is_none() && !listen.ip().is_loopback() {
        return Err(f.error_at(
            span(&r.listen.span()),
            Some("api.listen".into()),
            format!("{listen} is not a loopback address: the API needs [api.tls] there (passwords cross the network)"),
        ));
    }
    let base = base_dir(f);
    let tls = match &r.tls {
        None => None,
        Some(t) => {
            let t = t.get_ref();
            let (cert, key) = (base.join(t.cert.get_ref()), base.join(t.key.get_ref()));
            crate::tls::load_certs(&cert).map_err(|e| f.error_at(t.cert.span(), Some("api.tls.cert".into()), e))?;
            crate::tls::load_key(&key).map_err(|e| f.error_at(t.key.span(), Some("api.tls.key".into()), e))?;
            Some((cert, key))
        }
    };
    Ok(Api { listen, users, tls, files_dir: base.join(&r.files_dir) })
}

/// The index of `name` among `names`, or an error at its position listing
/// the names defined (a pool naming a monitor or persistence class).
pub(super) fn find_named<'a>(
    f: &SourceFile,
    name: &Spanned<String>,
    key: Option<String>,
    what: &str,
    names: impl Iterator<Item = &'a String> + Clone,
) -> Result<usize, ConfigError> {
    names.clone().position(|n| n == name.get_ref()).ok_or_else(|| {
        let known: Vec<&str> = names.map(String::as_str).collect();
        f.error_at(
            name.span(),
            key,
            format!(
                "no {what} named \"{}\" (defined: {})",
                name.get_ref(),
                if known.is_empty() { "none".into() } else { known.join(", ") }
            ),
        )
    })
}

fn persistence_class(
    f: &SourceFile,
    name: &Spanned<String>,
    p: &raw::RawPersistence,
    max: u32,
) -> Result<Persistence, ConfigError> {
    use raw::PersistenceType as T;
    let cname = name.get_ref();
    let key = |k: &str| Some(format!("persistence.{cname}.{k}"));
    let source = match (&p.source, p.kind) {
        (Some(s), T::Universal | T::NamedNode) => {
            let v = s.get_ref();
            let (kind, arg) = v.split_once(':').unwrap_or((v, ""));
            let bad = || {
                f.error_at(
                    s.span(),
                    key("source"),
                    format!("expected header:NAME, cookie:NAME, query:NAME, path:N or rule, found \"{v}\""),
                )
            };
            Some(match kind {
                "rule" if arg.is_empty() && p.kind == T::Universal => KeySource::Rule,
                _ if arg.is_empty() => return Err(bad()),
                "header" => KeySource::Header(arg.to_ascii_lowercase()),
                "cookie" => KeySource::Cookie(arg.to_string()),
                "query" => KeySource::Query(arg.to_string()),
                "path" => KeySource::Path(arg.parse().ok().filter(|&n| n >= 1).ok_or_else(bad)?),
                _ => return Err(bad()),
            })
        }
        (None, T::Universal | T::NamedNode) => {
            return Err(f.error_at(
                name.span(),
                key("source"),
                "this persistence type needs `source` (header:NAME, cookie:NAME, query:NAME or path:N)".into(),
            ))
        }
        (Some(s), _) => {
            return Err(f.error_at(s.span(), key("source"), "`source` applies to universal and named_node".into()))
        }
        (None, _) => None,
    };
    let cookie = match (&p.cookie, p.kind) {
        (Some(c), T::AppCookie | T::NodeCookie) => c.get_ref().clone(),
        (None, T::AppCookie) => {
            return Err(f.error_at(
                name.span(),
                key("cookie"),
                "app_cookie needs `cookie`, the application's cookie".into(),
            ))
        }
        (None, T::NodeCookie) => "X-Zeus-Backend".into(),
        (Some(c), _) => {
            return Err(f.error_at(c.span(), key("cookie"), "`cookie` applies to app_cookie and node_cookie".into()))
        }
        (None, _) => String::new(),
    };
    let failure_url = match (p.on_failure, &p.failure_url) {
        (raw::FailureAction::Redirect, Some(u)) => Some(u.get_ref().clone()),
        (raw::FailureAction::Redirect, None) => {
            return Err(f.error_at(
                name.span(),
                key("failure_url"),
                "on_failure = \"redirect\" needs `failure_url`".into(),
            ))
        }
        (_, Some(u)) => {
            return Err(f.error_at(
                u.span(),
                key("failure_url"),
                "`failure_url` applies to on_failure = \"redirect\"".into(),
            ))
        }
        (_, None) => None,
    };
    if p.kind == T::SslSessionId && p.on_failure != raw::FailureAction::NewNode {
        return Err(f.error_at(
            name.span(),
            key("on_failure"),
            "ssl_session_id persistence can only choose a new node (a passthrough connection has no HTTP answer)"
                .into(),
        ));
    }
    let hash = match &p.hash {
        Some(h) if *h.get_ref() && !matches!(p.kind, T::Ip | T::Universal | T::J2ee | T::Asp) => {
            return Err(f.error_at(
                h.span(),
                key("hash"),
                "`hash` applies to the key-based types: ip, universal, j2ee and asp".into(),
            ))
        }
        Some(h) => *h.get_ref(),
        None => false,
    };
    Ok(Persistence {
        name: cname.clone(),
        kind: p.kind,
        max_entries: max as usize,
        source,
        cookie,
        secret: p.secret.clone(),
        on_failure: p.on_failure,
        failure_url,
        hash,
    })
}

fn monitor(f: &SourceFile, name: &Spanned<String>, m: &raw::RawMonitor) -> Result<Monitor, ConfigError> {
    let mname = name.get_ref();
    let key = |k: &str| Some(format!("monitors.{mname}.{k}"));
    let (fails, succ) = (*m.failures.get_ref(), *m.successes.get_ref());
    if fails == 0 {
        return Err(f.error_at(m.failures.span(), key("failures"), "must be at least 1".into()));
    }
    if succ == 0 {
        return Err(f.error_at(m.successes.span(), key("successes"), "must be at least 1".into()));
    }
    if m.interval.0 < std::time::Duration::from_millis(10) || m.timeout.0.is_zero() {
        return Err(f.error_at(
            name.span(),
            key("interval"),
            "interval must be at least 10ms and timeout above 0".into(),
        ));
    }
    let status = {
        let s = m.status.get_ref();
        let (lo, hi) = s.split_once('-').unwrap_or((s, s));
        match (lo.trim().parse::<u16>(), hi.trim().parse::<u16>()) {
            (Ok(lo), Ok(hi)) if (100..=999).contains(&lo) && lo <= hi && hi <= 999 => (lo, hi),
            _ => {
                return Err(f.error_at(
                    m.status.span(),
                    key("status"),
                    format!("expected a status or a range such as \"200-399\", found \"{s}\""),
                ))
            }
        }
    };
    let pattern = match (m.kind, &m.body_regex, &m.expect) {
        (raw::MonitorType::Http | raw::MonitorType::Https, Some(r), None) => Some(r),
        (raw::MonitorType::SendExpect, None, Some(e)) => Some(e),
        (raw::MonitorType::SendExpect, _, None) => {
            return Err(f.error_at(name.span(), key("expect"), "a send_expect monitor needs `expect`".into()))
        }
        (_, None, None) => None,
        (_, Some(r), _) => {
            return Err(f.error_at(r.span(), key("body_regex"), "body_regex applies to http and https monitors".into()))
        }
        (_, _, Some(e)) => {
            return Err(f.error_at(e.span(), key("expect"), "expect applies to send_expect monitors".into()))
        }
    };
    if let Some(p) = pattern {
        if let Err(e) = regex_lite::Regex::new(p.get_ref()) {
            return Err(f.error_at(p.span(), None, format!("invalid regular expression: {e}")));
        }
    }
    let program = match (m.kind, &m.program) {
        (raw::MonitorType::Program, Some(p)) => Some(base_dir(f).join(p.get_ref())),
        (raw::MonitorType::Program, None) => {
            return Err(f.error_at(name.span(), key("program"), "a program monitor needs `program`".into()))
        }
        (_, Some(p)) => return Err(f.error_at(p.span(), key("program"), "program applies to program monitors".into())),
        (_, None) => None,
    };
    Ok(Monitor {
        name: mname.clone(),
        kind: m.kind,
        interval: m.interval.0,
        timeout: m.timeout.0,
        failures: fails,
        successes: succ,
        verbose: m.verbose,
        method: m.method.clone(),
        path: m.path.clone(),
        host: m.host.clone(),
        status,
        pattern: pattern.map(|p| p.get_ref().clone()),
        send: m.send.clone().unwrap_or_default().into_bytes(),
        program,
        args: m.args.clone(),
    })
}

/// The directory relative paths in `f` are resolved against.
pub(super) fn base_dir(f: &SourceFile) -> &std::path::Path {
    &f.base
}

fn tls_versions(f: &SourceFile, v: &Spanned<Vec<String>>, key: Option<String>) -> Result<Vec<TlsVersion>, ConfigError> {
    let mut out = Vec::new();
    for s in v.get_ref() {
        let version = match s.trim_start_matches("TLSv").trim_start_matches("tls") {
            "1.2" => TlsVersion::Tls12,
            "1.3" => TlsVersion::Tls13,
            "1.0" | "1.1" => {
                return Err(f.error_at(
                    v.span(),
                    key,
                    format!("TLS version \"{s}\" is not supported: TLS 1.0 and 1.1 are insecure (RFC 8996); use \"1.2\" and \"1.3\""),
                ))
            }
            _ => {
                return Err(f.error_at(v.span(), key, format!("unknown TLS version \"{s}\": expected \"1.2\" or \"1.3\"")))
            }
        };
        if !out.contains(&version) {
            out.push(version);
        }
    }
    if out.is_empty() {
        return Err(f.error_at(v.span(), key, "at least one TLS version is needed".into()));
    }
    Ok(out)
}

fn vs_tls(
    f: &SourceFile,
    vname: &str,
    t: &Spanned<raw::RawVsTls>,
    protocol: raw::Protocol,
) -> Result<TlsServer, ConfigError> {
    let key = |k: &str| Some(format!("virtual_servers.{vname}.tls.{k}"));
    let r = t.get_ref();
    let base = base_dir(f);
    if r.certificates.get_ref().is_empty() {
        return Err(f.error_at(
            r.certificates.span(),
            key("certificates"),
            "at least one certificate is needed".into(),
        ));
    }
    let certificates: Vec<CertFiles> = r
        .certificates
        .get_ref()
        .iter()
        .map(|c| CertFiles {
            cert: base.join(c.cert.get_ref()),
            key: base.join(c.key.get_ref()),
            names: c.names.iter().map(|n| n.to_ascii_lowercase()).collect(),
        })
        .collect();
    if r.client_auth != ClientAuth::None && r.client_ca.is_none() {
        return Err(f.error_at(
            t.span(),
            key("client_ca"),
            "client_auth needs client_ca (the CA file client certificates are checked against)".into(),
        ));
    }
    let alpn = match &r.alpn {
        Some(list) => list.iter().map(|p| p.as_bytes().to_vec()).collect(),
        None if protocol == raw::Protocol::Http => vec![b"http/1.1".to_vec()],
        None => Vec::new(),
    };
    let server_cipher_order = match r.cipher_order.as_ref().map(|o| (o, o.get_ref().as_str())) {
        None | Some((_, "server")) => true,
        Some((_, "client")) => false,
        Some((o, other)) => {
            return Err(f.error_at(
                o.span(),
                key("cipher_order"),
                format!("expected \"server\" or \"client\", found \"{other}\""),
            ))
        }
    };
    let settings = TlsServer {
        certificates,
        versions: tls_versions(f, &r.versions, key("versions"))?,
        alpn,
        client_auth: r.client_auth,
        client_ca: r.client_ca.as_ref().map(|p| base.join(p.get_ref())),
        session_cache_size: r.session_cache_size as usize,
        session_tickets: r.session_tickets,
        server_cipher_order,
        add_x_forwarded_proto: r.add_x_forwarded_proto,
        add_ssl_headers: r.add_ssl_headers,
    };
    // Built once here only to check that the files load (errors point at
    // the key); the generation builds what it serves with.
    crate::tls::server::build(&settings, std::path::Path::new("")).map_err(|e| {
        let (span, k) = match (e.cert, e.key) {
            (Some(i), "cert") => (r.certificates.get_ref()[i].cert.span(), "certificates.cert"),
            (Some(i), _) => (r.certificates.get_ref()[i].key.span(), "certificates.key"),
            (None, "client_ca") => (r.client_ca.as_ref().map_or(t.span(), |c| c.span()), "client_ca"),
            (None, "versions") => (r.versions.span(), "versions"),
            (None, k) => (t.span(), k),
        };
        f.error_at(span, key(k), e.message)
    })?;
    Ok(settings)
}

fn pool_tls(f: &SourceFile, pname: &str, t: &Spanned<raw::RawPoolTls>) -> Result<PoolTls, ConfigError> {
    let key = |k: &str| Some(format!("pools.{pname}.tls.{k}"));
    let r = t.get_ref();
    let base = base_dir(f);
    let path = |p: &Option<Spanned<String>>| p.as_ref().map(|p| base.join(p.get_ref()));
    let settings = PoolTls {
        ca: path(&r.ca),
        verify: r.verify,
        server_name: r.server_name.clone(),
        client_cert: path(&r.client_cert),
        client_key: path(&r.client_key),
        versions: tls_versions(f, &r.versions, key("versions"))?,
        alpn: r.alpn.iter().map(|p| p.as_bytes().to_vec()).collect(),
    };
    // Built once here only to check that the files load (see `vs_tls`).
    crate::tls::client::build(&settings, std::path::Path::new("")).map_err(|e| {
        let span = match e.key {
            "ca" => r.ca.as_ref().map(|c| c.span()),
            "client_cert" => r.client_cert.as_ref().map(|c| c.span()),
            "client_key" => r.client_key.as_ref().map(|c| c.span()),
            "versions" => Some(r.versions.span()),
            _ => None,
        };
        f.error_at(span.unwrap_or(t.span()), key(e.key), e.message)
    })?;
    if let Some(n) = &r.server_name {
        if rustls::pki_types::ServerName::try_from(n.as_str()).is_err() {
            return Err(f.error_at(t.span(), key("server_name"), format!("invalid TLS server name \"{n}\"")));
        }
    }
    Ok(settings)
}

fn pool(
    f: &SourceFile,
    name: &Spanned<String>,
    p: &raw::RawPool,
    persistence: &[Persistence],
    all_monitors: &[Monitor],
) -> Result<Pool, ConfigError> {
    let pname = name.get_ref();
    let key = |k: &str| Some(format!("pools.{pname}.{k}"));
    if p.nodes.get_ref().is_empty() {
        return Err(f.error_at(p.nodes.span(), key("nodes"), "a pool needs at least one node".into()));
    }
    let attempts = *p.node_connection_attempts.get_ref();
    if attempts == 0 {
        return Err(f.error_at(
            p.node_connection_attempts.span(),
            key("node_connection_attempts"),
            "must be at least 1".into(),
        ));
    }
    let mut nodes: Vec<Node> = Vec::new();
    for n in p.nodes.get_ref() {
        let addr = resolve(&n.address).map_err(|m| f.error_at(p.nodes.span(), key("nodes"), m))?;
        if nodes.iter().any(|o| o.addr == addr) {
            return Err(f.error_at(p.nodes.span(), key("nodes"), format!("node {} is listed twice", n.address)));
        }
        nodes.push(Node { name: n.address.clone(), addr, weight: n.weight, state: n.state });
    }
    let tls = p.tls.as_ref().map(|t| pool_tls(f, pname, t)).transpose()?;
    let persistence = match &p.persistence {
        None => None,
        Some(c) => {
            Some(find_named(f, c, key("persistence"), "persistence class", persistence.iter().map(|x| &x.name))?)
        }
    };
    let mut monitors = Vec::new();
    for m in &p.monitors {
        let i = find_named(f, m, key("monitors"), "monitor", all_monitors.iter().map(|x| &x.name))?;
        if !monitors.contains(&i) {
            monitors.push(i);
        }
    }
    let autoscale = p.autoscale.as_ref().map(|a| super::autoscale::pool_autoscale(f, pname, a)).transpose()?;
    let http2 = p.http2.as_ref().is_some_and(|h| *h.get_ref());
    let mut tls = tls;
    if let (true, Some(t), Some(h)) = (http2, tls.as_mut(), p.http2.as_ref()) {
        // HTTP/2 over TLS is chosen by ALPN: h2 offered unless listed.
        if t.alpn.is_empty() {
            t.alpn.push(b"h2".to_vec());
        } else if !t.alpn.iter().any(|a| a == b"h2") {
            return Err(f.error_at(
                h.span(),
                key("http2"),
                "HTTP/2 to TLS nodes is chosen by ALPN: add \"h2\" to tls.alpn (or leave it out)".into(),
            ));
        }
    }
    Ok(Pool {
        autoscale,
        http2,
        tls,
        persistence,
        monitors,
        name: pname.clone(),
        algorithm: p.algorithm,
        nodes,
        node_connection_attempts: attempts,
        node_fail_time: p.node_fail_time.0,
        max_connect_time: p.max_connect_time.0,
        max_reply_time: p.max_reply_time.0,
        max_idle_per_node: p.max_idle_per_node as usize,
        node_keepalive_timeout: p.node_keepalive_timeout.0,
        max_connections_per_node: (p.max_connections_per_node > 0).then_some(p.max_connections_per_node),
        max_queue: p.max_queue as usize,
        queue_timeout: p.queue_timeout.0,
        proxy_protocol: match p.proxy_protocol {
            raw::ProxyProtocolSetting::None => None,
            raw::ProxyProtocolSetting::V1 => Some(crate::net::proxy_protocol::Version::V1),
            raw::ProxyProtocolSetting::V2 => Some(crate::net::proxy_protocol::Version::V2),
        },
    })
}

fn http_settings(f: &SourceFile, vname: &str, v: &raw::RawVirtualServer) -> Result<HttpSettings, ConfigError> {
    let key = |k: &str| Some(format!("virtual_servers.{vname}.{k}"));
    let mhs = *v.max_header_size.get_ref();
    if !(1024..=1 << 20).contains(&mhs) {
        return Err(f.error_at(
            v.max_header_size.span(),
            key("max_header_size"),
            format!("must be between 1024 and 1048576 bytes, found {mhs}"),
        ));
    }
    let mh = *v.max_headers.get_ref();
    if !(1..=256).contains(&mh) {
        return Err(f.error_at(
            v.max_headers.span(),
            key("max_headers"),
            format!("must be between 1 and 256, found {mh}"),
        ));
    }
    let error_page = match &v.error_file {
        None => None,
        Some(path) => {
            let base = base_dir(f);
            let p = base.join(path.get_ref());
            let body = std::fs::read(&p)
                .map_err(|e| f.error_at(path.span(), key("error_file"), format!("cannot read {}: {e}", p.display())))?;
            Some(bytes::Bytes::from(body))
        }
    };
    let access_log = match &v.access_log {
        None => None,
        Some(path) => {
            let base = base_dir(f);
            let fmt = v.access_log_format.get_ref();
            let format = crate::log::access::Format::named_or_parse(fmt)
                .map_err(|e| f.error_at(v.access_log_format.span(), key("access_log_format"), e))?;
            Some(AccessLog { path: base.join(path.get_ref()), format })
        }
    };
    Ok(HttpSettings {
        access_log,
        max_header_size: mhs as usize,
        max_headers: mh as usize,
        max_uri_length: (v.max_uri_length as usize).clamp(16, mhs as usize),
        max_body_size: (v.max_body_size > 0).then_some(v.max_body_size),
        header_read_timeout: v.header_read_timeout.0,
        client_keepalive_timeout: v.client_keepalive_timeout.0,
        add_x_forwarded_for: v.add_x_forwarded_for,
        add_cluster_client_ip: v.add_cluster_client_ip,
        add_via: v.add_via,
        all_requests_non_idempotent: v.all_requests_non_idempotent,
        error_action: v.error_action,
        error_page,
    })
}

/// `host:port` → the first address it resolves to. Literal addresses need no
/// lookup; names are resolved once, at load.
fn resolve(s: &str) -> Result<SocketAddr, String> {
    if let Ok(a) = s.parse() {
        return Ok(a);
    }
    if !s.contains(':') {
        return Err(format!("invalid node address \"{s}\": expected host:port"));
    }
    s.to_socket_addrs()
        .map_err(|e| format!("cannot resolve node address \"{s}\": {e}"))?
        .next()
        .ok_or_else(|| format!("node address \"{s}\" resolves to nothing"))
}
