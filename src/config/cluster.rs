//! `[cluster]` and `[traffic_ip_groups.NAME]` checked into their runtime
//! settings ([`ClusterSettings`], [`TrafficIpGroup`]), each error at the
//! value at fault.

use super::model::{ClusterSettings, TipMode, TrafficIpGroup};
use super::{ConfigError, SharedObject, SourceFile};
use std::net::IpAddr;
use std::time::Duration;

/// The most members a multi-hosted group may have: each member drops the
/// others' share of every packet, so the traffic it receives grows with
/// the group (the source product's limit is 8 too).
pub const MAX_MULTI_MEMBERS: usize = 8;

pub(crate) fn settings(files: &[SourceFile]) -> Result<Option<ClusterSettings>, ConfigError> {
    let Some((f, c)) = super::validate::only_one(files, "cluster", |f| f.raw.cluster.as_ref())? else {
        return Ok(None);
    };
    let r = c.get_ref();
    let key = |k: &str| Some(format!("cluster.{k}"));
    if r.etcd.get_ref().is_empty() {
        return Err(f.error_at(
            r.etcd.span(),
            key("etcd"),
            "needs at least one endpoint, e.g. \"http://10.0.0.1:2379\"".into(),
        ));
    }
    for e in r.etcd.get_ref() {
        let rest = e.strip_prefix("http://").or_else(|| e.strip_prefix("https://"));
        if rest.is_none_or(|h| h.is_empty() || h.contains('/')) {
            return Err(f.error_at(
                r.etcd.span(),
                key("etcd"),
                format!("invalid endpoint \"{e}\": expected http://HOST:PORT"),
            ));
        }
    }
    let member = r.member.get_ref();
    if !name_ok(member) {
        return Err(f.error_at(
            r.member.span(),
            key("member"),
            format!("invalid member name \"{member}\": use 1 to 64 letters, digits, '.', '_' or '-'"),
        ));
    }
    let prefix = r.prefix.get_ref();
    if !prefix.starts_with('/') || !prefix.ends_with('/') || prefix.len() > 200 {
        return Err(f.error_at(
            r.prefix.span(),
            key("prefix"),
            format!("invalid prefix \"{prefix}\": it must start and end with '/' (e.g. \"/shoal/\")"),
        ));
    }
    let ttl = r.lease_ttl.get_ref().0;
    if !(Duration::from_secs(1)..=Duration::from_secs(300)).contains(&ttl) || ttl.subsec_nanos() != 0 {
        return Err(f.error_at(
            r.lease_ttl.span(),
            key("lease_ttl"),
            "must be whole seconds between 1s and 300s (etcd leases count in seconds)".into(),
        ));
    }
    let connect = r.connect_timeout.get_ref().0;
    if connect.is_zero() {
        return Err(f.error_at(r.connect_timeout.span(), key("connect_timeout"), "must be longer than 0s".into()));
    }
    Ok(Some(ClusterSettings {
        etcd: r.etcd.get_ref().clone(),
        member: member.clone(),
        prefix: prefix.clone(),
        read_only: r.read_only,
        lease_ttl: ttl,
        connect_timeout: connect,
    }))
}

/// The configuration objects a cluster shares, as TOML names them: the
/// REST API's types and the traffic IP groups. Everything else (`[global]`,
/// `[api]`, `[cluster]`, `[events]`, ...) is each member's own.
pub const SHARED_KINDS: &[&str] = &[
    "virtual_servers",
    "pools",
    "responders",
    "persistence",
    "monitors",
    "rules",
    "rate_classes",
    "bandwidth_classes",
    "service_levels",
    "event_handlers",
    "traffic_ip_groups",
];

/// The largest text a shared object may have: etcd's default request limit
/// is 1.5 MiB, and a configuration object is a screenful.
pub const MAX_OBJECT_TEXT: usize = 256 * 1024;

/// A shared object's text must hold exactly the object its key names
/// (`id` is "type/name"): anything else in it would reach every member
/// under a name no operator looks at.
pub(crate) fn check_object_text(file: &str, id: &str, text: &str) -> Result<(), ConfigError> {
    let at = |message: String| ConfigError { file: file.to_owned(), line: 0, column: 0, key: None, message };
    let (kind, name) = id.split_once('/').ok_or_else(|| at(format!("\"{id}\" is not type/name")))?;
    if !SHARED_KINDS.contains(&kind) {
        return Err(at(format!("\"{kind}\" is not a type of object the cluster shares")));
    }
    if text.len() > MAX_OBJECT_TEXT {
        return Err(at(format!("the object's text is {} bytes, more than {MAX_OBJECT_TEXT}", text.len())));
    }
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| at(e.message().trim().to_owned()))?;
    let only = |t: &toml::Table, want: &str| t.len() == 1 && t.contains_key(want);
    let inner = table.get(kind).and_then(toml::Value::as_table);
    if !only(&table, kind) || !inner.is_some_and(|t| only(t, name)) {
        return Err(at(format!("the text must define [{kind}.{name}] and nothing else")));
    }
    Ok(())
}

/// Every shared object of `texts` (a member's own files), each rendered
/// on its own as TOML: what the first member writes to an empty cluster.
/// Comments and layout inside an object survive.
pub fn split_objects(texts: &[(String, String)]) -> Result<Vec<SharedObject>, String> {
    use toml_edit::{DocumentMut, Item, Table};
    let mut out: Vec<SharedObject> = Vec::new();
    for (file, text) in texts {
        let doc: DocumentMut = text.parse().map_err(|e| format!("{file}: {e}"))?;
        for kind in SHARED_KINDS {
            let Some(objects) = doc.get(kind).and_then(Item::as_table_like) else { continue };
            for (name, item) in objects.iter() {
                let mut parent = Table::new();
                parent.set_implicit(true);
                parent.insert(name, item.clone());
                let mut one = DocumentMut::new();
                one.insert(kind, Item::Table(parent));
                let id = format!("{kind}/{name}");
                if out.iter().any(|o| o.id == id) {
                    return Err(format!("{file}: {id} is defined twice"));
                }
                out.push(SharedObject { id, text: one.to_string().trim_start().to_owned() });
            }
        }
    }
    Ok(out)
}

/// A member or object name a key can hold without escaping.
pub fn name_ok(s: &str) -> bool {
    (1..=64).contains(&s.len()) && s.bytes().all(|c| c.is_ascii_alphanumeric() || b"._-".contains(&c))
}

/// Every group, in name order; an address may belong to one group only.
pub(crate) fn groups(files: &[SourceFile]) -> Result<Vec<TrafficIpGroup>, ConfigError> {
    let mut out: Vec<TrafficIpGroup> = Vec::new();
    for f in files {
        for (name, g) in &f.raw.traffic_ip_groups {
            let gname = name.get_ref();
            let key = |k: &str| Some(format!("traffic_ip_groups.{gname}.{k}"));
            if out.iter().any(|o| o.name == *gname) {
                return Err(f.error_at(name.span(), None, format!("traffic IP group \"{gname}\" is defined twice")));
            }
            let r = g.get_ref();
            let mode = match r.mode.get_ref().as_str() {
                "single" => TipMode::Single,
                "multi" => TipMode::Multi,
                other => {
                    return Err(f.error_at(
                        r.mode.span(),
                        key("mode"),
                        format!("expected \"single\" or \"multi\", found \"{other}\""),
                    ))
                }
            };
            let mut addresses = Vec::new();
            for a in r.addresses.get_ref() {
                let ip: IpAddr = a.parse().map_err(|_| {
                    f.error_at(
                        r.addresses.span(),
                        key("addresses"),
                        format!("invalid address \"{a}\": expected an IPv4 or IPv6 address"),
                    )
                })?;
                if ip.is_unspecified() || ip.is_loopback() || ip.is_multicast() {
                    return Err(f.error_at(
                        r.addresses.span(),
                        key("addresses"),
                        format!("{ip} cannot be a traffic IP address"),
                    ));
                }
                if addresses.contains(&ip) {
                    return Err(f.error_at(r.addresses.span(), key("addresses"), format!("{ip} is listed twice")));
                }
                if let Some(o) = out.iter().find(|o| o.addresses.contains(&ip)) {
                    return Err(f.error_at(
                        r.addresses.span(),
                        key("addresses"),
                        format!("{ip} already belongs to traffic IP group \"{}\"", o.name),
                    ));
                }
                addresses.push(ip);
            }
            if addresses.is_empty() {
                return Err(f.error_at(r.addresses.span(), key("addresses"), "needs at least one address".into()));
            }
            let mut members: Vec<String> = Vec::new();
            for m in r.members.get_ref() {
                if !name_ok(m) {
                    return Err(f.error_at(r.members.span(), key("members"), format!("invalid member name \"{m}\"")));
                }
                if members.contains(m) {
                    return Err(f.error_at(
                        r.members.span(),
                        key("members"),
                        format!("member \"{m}\" is listed twice"),
                    ));
                }
                members.push(m.clone());
            }
            if members.is_empty() {
                return Err(f.error_at(r.members.span(), key("members"), "needs at least one member".into()));
            }
            if mode == TipMode::Multi && members.len() > MAX_MULTI_MEMBERS {
                return Err(f.error_at(
                    r.members.span(),
                    key("members"),
                    format!("a multi-hosted group has at most {MAX_MULTI_MEMBERS} members, found {}", members.len()),
                ));
            }
            if mode == TipMode::Multi && addresses.iter().any(IpAddr::is_ipv6) {
                return Err(f.error_at(
                    r.addresses.span(),
                    key("addresses"),
                    "multi-hosted groups take IPv4 addresses only (their multicast MAC is answered by ARP)".into(),
                ));
            }
            let iface = r.interface.get_ref();
            if iface.is_empty() || iface.len() > 15 || iface.contains(['/', ' ']) {
                return Err(f.error_at(
                    r.interface.span(),
                    key("interface"),
                    format!("invalid interface name \"{iface}\""),
                ));
            }
            out.push(TrafficIpGroup { name: gname.clone(), addresses, members, mode, interface: iface.clone() });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use crate::config::{load_str, SharedObject};

    const HEAD: &str = "[cluster]\netcd = [\"http://10.0.0.1:2379\"]\nmember = \"m1\"\n";

    fn err(extra: &str) -> String {
        load_str(&format!("{HEAD}{extra}"), "t.toml").unwrap_err().to_string()
    }

    #[test]
    fn settings_are_checked_at_the_key() {
        let c = load_str(HEAD, "t.toml").unwrap().cluster.unwrap();
        assert_eq!((c.member.as_str(), c.prefix.as_str(), c.read_only), ("m1", "/shoal/", false));
        assert_eq!(c.lease_ttl, std::time::Duration::from_secs(3));
        let e = load_str("[cluster]\netcd = []\nmember = \"m\"\n", "t.toml").unwrap_err().to_string();
        assert!(e.starts_with("t.toml:2:8: needs at least one endpoint"), "{e}");
        let e = load_str("[cluster]\netcd = [\"10.0.0.1:2379\"]\nmember = \"m\"\n", "t.toml").unwrap_err().to_string();
        assert!(e.contains("expected http://HOST:PORT"), "{e}");
        let e = load_str("[cluster]\netcd = [\"http://e:1\"]\nmember = \"a b\"\n", "t.toml").unwrap_err().to_string();
        assert!(e.contains("t.toml:3:10: invalid member name"), "{e}");
        assert!(err("prefix = \"shoal\"\n").contains("must start and end with '/'"));
        assert!(err("lease_ttl = \"1500ms\"\n").contains("whole seconds"));
        assert!(err("lease_ttl = \"0s\"\n").contains("whole seconds"));
        assert!(err("etcd_timeout = \"1s\"\n").contains("unknown field `etcd_timeout`"));
    }

    #[test]
    fn traffic_ip_groups_are_checked() {
        let g = |body: &str| format!("[traffic_ip_groups.front]\n{body}\n");
        let ok = g("addresses = [\"10.0.0.10\", \"2001:db8::1\"]\nmembers = [\"m1\", \"m2\"]\ninterface = \"eth0\"");
        let c = load_str(&format!("{HEAD}{ok}"), "t.toml").unwrap();
        assert_eq!(c.traffic_ip_groups[0].addresses.len(), 2);
        assert_eq!(c.traffic_ip_groups[0].mode, super::TipMode::Single);
        let e = load_str(&ok, "t.toml").unwrap_err().to_string();
        assert!(e.contains("needs [cluster]"), "{e}");
        let e = err(&g("addresses = [\"10.0.0.10\", \"10.0.0.10\"]\nmembers = [\"m1\"]\ninterface = \"eth0\""));
        assert!(e.contains("listed twice"), "{e}");
        let e = err(&g("addresses = [\"127.0.0.1\"]\nmembers = [\"m1\"]\ninterface = \"eth0\""));
        assert!(e.contains("cannot be a traffic IP"), "{e}");
        let e = err(&g("addresses = [\"10.0.0.10\"]\nmembers = []\ninterface = \"eth0\""));
        assert!(e.contains("at least one member"), "{e}");
        let e = err(&g("addresses = [\"10.0.0.10\"]\nmembers = [\"m1\"]\nmode = \"both\"\ninterface = \"eth0\""));
        assert!(e.contains("expected \"single\" or \"multi\""), "{e}");
        let e = err(&g("addresses = [\"10.0.0.10\"]\nmembers = [\"m1\"]\ninterface = \"a/b\""));
        assert!(e.contains("invalid interface name"), "{e}");
    }

    #[test]
    fn shared_objects_hold_one_object_each() {
        let shared = |id: &str, text: &str| vec![SharedObject { id: id.into(), text: text.into() }];
        let dir = std::env::temp_dir().join(format!("shoal-cluster-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let main = dir.join("m.toml");
        std::fs::write(&main, format!("{HEAD}\n[pools.local]\nnodes = [\"127.0.0.1:1\"]\n")).unwrap();
        let load = |s: Vec<SharedObject>| crate::config::load_member(&main, &Default::default(), &s);
        // The member's own objects give way to the cluster's.
        let c = load(shared("pools/web", "[pools.web]\nnodes = [\"127.0.0.1:2\"]\n")).unwrap();
        assert_eq!(c.pools.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(), ["web"]);
        assert!(c.cluster.is_some());
        // Errors name the object as a file.
        let e = load(shared("pools/web", "[pools.web]\nnodes = [\"nowhere\"]\n")).unwrap_err().to_string();
        assert!(e.starts_with("etcd:pools/web:2:"), "{e}");
        let e = load(shared("pools/web", "[pools.web]\nnodes = []\n[pools.other]\nnodes = []\n")).unwrap_err();
        assert!(e.to_string().contains("must define [pools.web] and nothing else"), "{e}");
        let e = load(shared("pools/web", "[global]\nshards = 1\n[pools.web]\nnodes = []\n")).unwrap_err();
        assert!(e.to_string().contains("nothing else"), "{e}");
        let e = load(shared("global/x", "[global]\n")).unwrap_err();
        assert!(e.to_string().contains("not a type of object the cluster shares"), "{e}");
    }

    #[test]
    fn a_file_splits_into_one_text_per_object() {
        let text = "[global]\nshards = 1\n\n[pools.a]\n# the web tier\nnodes = [\"127.0.0.1:1\"]\n\n[pools.a.tls]\nverify = false\n\n[virtual_servers.v]\nlisten = \"127.0.0.1:2\"\nprotocol = \"http\"\npool = \"a\"\n";
        let objects = super::split_objects(&[("f.toml".into(), text.into())]).unwrap();
        let ids: Vec<&str> = objects.iter().map(|o| o.id.as_str()).collect();
        assert_eq!(ids, ["virtual_servers/v", "pools/a"]);
        let pool = &objects[1].text;
        assert!(pool.starts_with("[pools.a]\n# the web tier\n"), "{pool}");
        assert!(pool.contains("[pools.a.tls]\nverify = false"), "{pool}");
        for o in &objects {
            super::check_object_text("t", &o.id, &o.text).unwrap();
        }
        // Each text alone, and all together, are what the file was.
        let c = crate::config::load_str(&format!("{}\n{}", objects[0].text, objects[1].text), "t").unwrap();
        assert_eq!(c.virtual_servers[0].name, "v");
    }
}
