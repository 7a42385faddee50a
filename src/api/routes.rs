//! The REST API's resources (I1) and what each method does to them. Every
//! request is authenticated first; answers are JSON (`error_id` and
//! `error_text` on errors), files are octet-stream, `/metrics` is
//! Prometheus text.
//!
//! Writes go through [`Api::commit`]: the edited files are validated as a
//! whole configuration before anything is written, written atomically,
//! then applied live; if applying fails the files are put back, so the
//! files on disk and the running configuration agree after every answer.

use super::objects::{self, EditError, SourceText};
use super::server::{Handler, Request, Response};
use crate::runtime::Control;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The API version in paths.
pub const VERSION: &str = "1.0";
const JSON: &str = "application/json";
const OCTETS: &str = "application/octet-stream";
/// The OpenAPI document, kept in the repository (docs/openapi.json).
pub const OPENAPI: &str = include_str!("../../docs/openapi.json");

pub struct Api {
    control: Arc<Control>,
    /// One write at a time: read, edit, validate, write, apply.
    writes: Mutex<()>,
    /// The verifier of the users it was built for.
    auth: Mutex<Option<CachedUsers>>,
    /// The overview's last minutes (`status/history`).
    history: Arc<super::history::History>,
}

type CachedUsers = (Vec<(String, String)>, Arc<super::auth::Verifier>);

/// An error answer; a 405 names the methods the resource allows.
struct Fail {
    status: u16,
    text: String,
    allow: Option<String>,
}

impl Fail {
    fn new(status: u16, text: impl Into<String>) -> Fail {
        Fail { status, text: text.into(), allow: None }
    }
}

type Answer = Result<Response, Fail>;

fn json_answer(status: u16, v: &Value) -> Response {
    let mut body = serde_json::to_vec_pretty(v).unwrap_or_default();
    body.push(b'\n');
    Response::new(status, JSON, body)
}

fn error_id(status: u16) -> &'static str {
    match status {
        400 => "request.invalid",
        401 => "auth.required",
        403 => "auth.forbidden",
        404 => "resource.not_found",
        405 => "method.not_allowed",
        409 => "resource.conflict",
        413 => "request.too_large",
        415 => "request.media_type",
        503 => "server.unavailable",
        _ => "server.error",
    }
}

impl From<EditError> for Fail {
    fn from(e: EditError) -> Fail {
        match e {
            EditError::NotFound(m) => Fail::new(404, m),
            EditError::BadRequest(m) => Fail::new(400, m),
            EditError::Conflict { referrers } => {
                Fail::new(409, format!("still referenced by {}", referrers.join(", ")))
            }
            EditError::Invalid(m) => Fail::new(500, m),
        }
    }
}

/// Percent-decode one path segment; `None` if malformed or not UTF-8.
fn decode(seg: &str) -> Option<String> {
    let b = seg.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let h = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(h, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Percent-encode a name for a path segment (hrefs, `shoal node`).
pub fn encode(name: &str) -> String {
    name.bytes()
        .map(|c| {
            if c.is_ascii_alphanumeric() || b"-._~:".contains(&c) {
                (c as char).to_string()
            } else {
                format!("%{c:02X}")
            }
        })
        .collect()
}

fn children(base: &str, names: impl IntoIterator<Item = String>) -> Value {
    let list: Vec<Value> =
        names.into_iter().map(|n| json!({"name": n, "href": format!("{base}/{}", encode(&n))})).collect();
    json!({ "children": list })
}

fn only(req: &Request, allowed: &[&str]) -> Result<(), Fail> {
    if allowed.contains(&req.method.as_str()) || (req.method == "HEAD" && allowed.contains(&"GET")) {
        Ok(())
    } else {
        let mut f = Fail::new(405, format!("{} is not allowed here (allowed: {})", req.method, allowed.join(", ")));
        f.allow = Some(allowed.join(", "));
        Err(f)
    }
}

fn json_body(req: &Request) -> Result<Value, Fail> {
    if let Some(ct) = req.header("content-type") {
        let ct = String::from_utf8_lossy(ct).to_ascii_lowercase();
        if !ct.starts_with("application/json") {
            return Err(Fail::new(415, "send the body as application/json"));
        }
    }
    serde_json::from_slice(&req.body).map_err(|e| Fail::new(400, format!("the body is not valid JSON: {e}")))
}

/// How the API names a cluster object's text (`etcd:TYPE/NAME`).
const CLUSTER_SOURCE: &str = "etcd:";

/// The "type/name" of a cluster object's source path.
fn cluster_id(path: &Path) -> Option<&str> {
    path.to_str()?.strip_prefix(CLUSTER_SOURCE)
}

/// A file name the API may store: no directories, no hidden files.
fn file_name_ok(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 200
        && !name.starts_with('.')
        && name.bytes().all(|c| c.is_ascii_alphanumeric() || b"._-".contains(&c))
}

impl Api {
    pub fn new(control: Arc<Control>, history: Arc<super::history::History>) -> Api {
        Api { control, writes: Mutex::new(()), auth: Mutex::new(None), history }
    }

    /// The users of the running configuration's `[api]` (they may change
    /// with a reload; the verifier is rebuilt when they do).
    fn verifier(&self) -> Option<Arc<super::auth::Verifier>> {
        let cfg = self.control.config();
        let users = cfg.api.as_ref()?.users.clone();
        let mut cached = self.auth.lock().unwrap_or_else(|e| e.into_inner());
        match &*cached {
            Some((u, v)) if *u == users => Some(v.clone()),
            _ => {
                let v = Arc::new(super::auth::Verifier::new(users.clone()));
                *cached = Some((users, v.clone()));
                Some(v)
            }
        }
    }

    /// The running configuration's files as they are on disk now; in a
    /// cluster whose objects etcd has shown, those objects, one text each,
    /// named `etcd:TYPE/NAME` (docs/cluster.md).
    fn sources(&self) -> Result<Vec<SourceText>, Fail> {
        if let Some(objects) = crate::cluster::get().and_then(|c| c.objects()) {
            return Ok(objects
                .items
                .into_iter()
                .map(|(id, text)| SourceText { path: PathBuf::from(format!("{CLUSTER_SOURCE}{id}")), text })
                .collect());
        }
        let cfg = self.control.config();
        if cfg.files.is_empty() {
            return Err(Fail::new(409, format!("the running configuration ({}) has no file to edit", cfg.source)));
        }
        cfg.files
            .iter()
            .map(|p| {
                std::fs::read_to_string(p)
                    .map(|text| SourceText { path: p.clone(), text })
                    .map_err(|e| Fail::new(500, format!("cannot read {}: {e}", p.display())))
            })
            .collect()
    }

    /// [`Api::sources`] for a PUT of `kind/name`: in a cluster, an object
    /// that does not exist yet gets an empty text of its own to be
    /// created in, first, where `objects::put` creates new objects.
    fn sources_for(&self, kind: &str, name: &str) -> Result<Vec<SourceText>, Fail> {
        let mut sources = self.sources()?;
        let own = PathBuf::from(format!("{CLUSTER_SOURCE}{kind}/{name}"));
        let clustered = sources.first().is_some_and(|s| cluster_id(&s.path).is_some());
        if clustered && !sources.iter().any(|s| s.path == own) {
            sources.insert(0, SourceText { path: own, text: String::new() });
        }
        Ok(sources)
    }

    /// Validate the configuration with `changed` files, write them, apply
    /// it live; put the old files back if it cannot be applied. Changed
    /// cluster objects go to etcd instead ([`Api::commit_cluster`]).
    fn commit(&self, sources: &[SourceText], changed: Vec<(PathBuf, String)>) -> Result<u64, Fail> {
        if let Some(c) = crate::cluster::get().filter(|_| changed.iter().any(|(p, _)| cluster_id(p).is_some())) {
            return self.commit_cluster(c, sources, changed);
        }
        let cfg = self.control.config();
        let main = cfg.files.first().cloned().ok_or_else(|| Fail::new(409, "no configuration file"))?;
        let overrides: crate::config::Overrides = changed.iter().cloned().collect();
        let new = crate::cluster::load_with(&main, &overrides).map_err(|e| {
            crate::runtime::control::refused("REST API", &e.to_string());
            Fail::new(400, format!("the configuration would be invalid: {e}"))
        })?;
        let mut written: Vec<&SourceText> = Vec::new();
        for (path, text) in &changed {
            if let Err(e) = objects::write_atomic(path, text.as_bytes()) {
                self.restore(&written);
                return Err(Fail::new(500, format!("cannot write {}: {e}", path.display())));
            }
            if let Some(old) = sources.iter().find(|s| s.path == *path) {
                written.push(old);
            }
        }
        match self.control.apply(new) {
            Ok(g) => Ok(g),
            Err(e) => {
                self.restore(&written);
                Err(Fail::new(409, format!("the configuration cannot be applied: {e}")))
            }
        }
    }

    /// A change to the cluster's objects: validated here as this member
    /// would run it, written to etcd only if the cluster's configuration
    /// is still the one it was computed from (else 409: read and retry),
    /// and answered once this member runs it. Every member applies it from
    /// etcd's watch, this one included.
    fn commit_cluster(
        &self,
        c: &crate::cluster::Cluster,
        sources: &[SourceText],
        changed: Vec<(PathBuf, String)>,
    ) -> Result<u64, Fail> {
        if c.settings.read_only {
            return Err(Fail::new(
                403,
                format!(
                    "member {} is read-only ([cluster] read_only): change the cluster's configuration through another member",
                    c.settings.member
                ),
            ));
        }
        let objects = c
            .objects()
            .ok_or_else(|| Fail::new(503, "etcd has not answered yet: the cluster's configuration cannot change"))?;
        let conflict = || {
            Fail::new(
                409,
                "the cluster's configuration changed while this change was made (another member's change): read it again and retry",
            )
        };
        let mut items = objects.items.clone();
        let mut changes = Vec::new();
        for (path, text) in changed {
            let id = cluster_id(&path)
                .ok_or_else(|| Fail::new(500, format!("{} is not a cluster object", path.display())))?;
            let before = sources.iter().find(|s| s.path == path).map_or("", |s| s.text.as_str());
            if items.get(id).map_or("", String::as_str) != before {
                return Err(conflict());
            }
            if crate::cluster::layout::defines(&text, id) {
                items.insert(id.to_owned(), text.clone());
                changes.push((id.to_owned(), Some(text)));
            } else {
                items.remove(id);
                changes.push((id.to_owned(), None));
            }
        }
        let shared: Vec<crate::config::SharedObject> =
            items.into_iter().map(|(id, text)| crate::config::SharedObject { id, text }).collect();
        let cfg = self.control.config();
        let main = cfg.files.first().cloned().ok_or_else(|| Fail::new(409, "no configuration file"))?;
        crate::config::load_member(&main, &crate::config::Overrides::new(), &shared).map_err(|e| {
            crate::runtime::control::refused("REST API", &e.to_string());
            Fail::new(400, format!("the configuration would be invalid: {e}"))
        })?;
        c.write(objects.version, changes).map_err(|e| match e {
            crate::cluster::WriteError::Conflict => conflict(),
            crate::cluster::WriteError::Unavailable(why) => Fail::new(503, why),
        })
    }

    fn restore(&self, old: &[&SourceText]) {
        for s in old {
            if let Err(e) = objects::write_atomic(&s.path, s.text.as_bytes()) {
                log::error!("api: cannot put {} back: {e}", s.path.display());
            }
        }
    }

    fn route(&self, req: &Request) -> Answer {
        if req.path == "/metrics" {
            only(req, &["GET"])?;
            let (g, t) = (self.control.current(), self.control.stats());
            return Ok(Response::new(
                200,
                "text/plain; version=0.0.4; charset=utf-8",
                super::render::prometheus(&g, &t).into_bytes(),
            ));
        }
        let segs: Vec<String> = req
            .path
            .split('/')
            .filter(|s| !s.is_empty())
            .map(|s| decode(s).ok_or_else(|| Fail::new(400, format!("malformed path segment {s:?}"))))
            .collect::<Result<_, _>>()?;
        let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
        let v = VERSION;
        let base = format!("/api/tm/{v}");
        match segs.as_slice() {
            // The dashboard (docs/dashboard.md): embedded, behind the
            // same authentication, its data from the API below.
            [] => {
                only(req, &["GET"])?;
                Ok(Response::new(200, "text/html; charset=utf-8", DASHBOARD_HTML.as_bytes().to_vec()))
            }
            ["dashboard.js"] => {
                only(req, &["GET"])?;
                Ok(Response::new(200, "text/javascript; charset=utf-8", DASHBOARD_JS.as_bytes().to_vec()))
            }
            ["dashboard.css"] => {
                only(req, &["GET"])?;
                Ok(Response::new(200, "text/css; charset=utf-8", DASHBOARD_CSS.as_bytes().to_vec()))
            }
            ["api", "tm"] => {
                only(req, &["GET"])?;
                Ok(json_answer(200, &children("/api/tm", [v.to_string()])))
            }
            ["api", "tm", ver, rest @ ..] if *ver == v => self.versioned(req, &base, rest),
            ["api", "tm", ver, ..] => Err(Fail::new(404, format!("API version {ver} does not exist (this is {v})"))),
            _ => Err(Fail::new(404, format!("no resource at {}", req.path))),
        }
    }

    fn versioned(&self, req: &Request, base: &str, rest: &[&str]) -> Answer {
        match rest {
            [] => {
                only(req, &["GET"])?;
                Ok(json_answer(
                    200,
                    &children(base, ["config", "status", "nodes", "cache", "events"].map(String::from)),
                ))
            }
            ["events"] => {
                only(req, &["GET"])?;
                Ok(json_answer(200, &events(&req.query)?))
            }
            ["openapi.json"] => {
                only(req, &["GET"])?;
                Ok(Response::new(200, JSON, OPENAPI.as_bytes().to_vec()))
            }
            ["config"] => {
                only(req, &["GET"])?;
                Ok(json_answer(200, &children(&format!("{base}/config"), ["active".to_string()])))
            }
            ["config", "active"] => {
                only(req, &["GET"])?;
                let mut types: Vec<String> = objects::TYPES.iter().map(|t| t.to_string()).collect();
                types.push("files".into());
                Ok(json_answer(200, &children(&format!("{base}/config/active"), types)))
            }
            ["config", "active", "files"] => {
                only(req, &["GET"])?;
                Ok(json_answer(200, &children(&format!("{base}/config/active/files"), self.list_files()?)))
            }
            ["config", "active", "files", name] => self.file(req, name),
            ["config", "active", kind] => {
                only(req, &["GET"])?;
                let names = objects::list(&self.sources()?, kind)?;
                Ok(json_answer(200, &children(&format!("{base}/config/active/{kind}"), names)))
            }
            ["config", "active", kind, name] => self.object(req, kind, name),
            ["status"] => {
                only(req, &["GET"])?;
                let (g, t) = (self.control.current(), self.control.stats());
                let mut status = super::render::status(&g, &t);
                if let (Some(c), Some(o)) = (crate::cluster::get(), status.as_object_mut()) {
                    o.insert("cluster".into(), c.status_json());
                }
                Ok(json_answer(200, &status))
            }
            ["status", "history"] => {
                only(req, &["GET"])?;
                Ok(json_answer(200, &self.history(&req.query)?))
            }
            ["status", "virtual_servers", name] => {
                only(req, &["GET"])?;
                let (g, t) = (self.control.current(), self.control.stats());
                let v = super::render::vs_status(&g, &t, name)
                    .ok_or_else(|| Fail::new(404, format!("no virtual server named {name:?}")))?;
                Ok(json_answer(200, &v))
            }
            ["status", "pools", name] => {
                only(req, &["GET"])?;
                let (g, t) = (self.control.current(), self.control.stats());
                let v = super::render::pool_json(&g, &t, name, std::time::SystemTime::now())
                    .ok_or_else(|| Fail::new(404, format!("no pool named {name:?}")))?;
                Ok(json_answer(200, &v))
            }
            ["nodes"] => {
                only(req, &["GET"])?;
                let cfg = self.control.config();
                let mut names: Vec<String> =
                    cfg.pools.iter().flat_map(|p| p.nodes.iter().map(|n| n.name.clone())).collect();
                names.sort();
                names.dedup();
                Ok(json_answer(200, &children(&format!("{base}/nodes"), names)))
            }
            ["nodes", node] => self.node(req, node),
            ["cache"] => {
                only(req, &["GET"])?;
                Ok(json_answer(200, &children(&format!("{base}/cache"), ["purge".to_string()])))
            }
            ["cache", "purge"] => self.purge(req),
            _ => Err(Fail::new(404, format!("no resource at {}", req.path))),
        }
    }

    fn object(&self, req: &Request, kind: &str, name: &str) -> Answer {
        only(req, &["GET", "PUT", "DELETE"])?;
        if !objects::TYPES.contains(&kind) {
            return Err(Fail::new(404, format!("no configuration type {kind:?}")));
        }
        match req.method.as_str() {
            "GET" | "HEAD" => Ok(json_answer(200, &objects::get(&self.sources()?, kind, name)?)),
            "PUT" => {
                let body = json_body(req)?;
                let _w = self.writes.lock().unwrap_or_else(|e| e.into_inner());
                let sources = self.sources_for(kind, name)?;
                let edit = objects::put(&sources, kind, name, &body)?;
                let g = self.commit(&sources, edit.changed)?;
                log::info!("api: {kind}/{name} {} (generation {g})", if edit.created { "created" } else { "updated" });
                let after = objects::get(&self.sources()?, kind, name)?;
                Ok(json_answer(if edit.created { 201 } else { 200 }, &after))
            }
            _ => {
                let _w = self.writes.lock().unwrap_or_else(|e| e.into_inner());
                let sources = self.sources()?;
                let edit = objects::delete(&sources, kind, name)?;
                let g = self.commit(&sources, edit.changed)?;
                log::info!("api: {kind}/{name} deleted (generation {g})");
                Ok(Response::new(204, JSON, Vec::new()))
            }
        }
    }

    fn files_dir(&self) -> Result<PathBuf, Fail> {
        let cfg = self.control.config();
        Ok(cfg.api.as_ref().ok_or_else(|| Fail::new(404, "no [api] section"))?.files_dir.clone())
    }

    fn list_files(&self) -> Result<Vec<String>, Fail> {
        let dir = self.files_dir()?;
        let mut names: Vec<String> = match std::fs::read_dir(&dir) {
            Ok(rd) => rd.filter_map(|e| e.ok()?.file_name().into_string().ok()).filter(|n| file_name_ok(n)).collect(),
            Err(_) => Vec::new(),
        };
        names.sort();
        Ok(names)
    }

    fn file(&self, req: &Request, name: &str) -> Answer {
        only(req, &["GET", "PUT", "DELETE"])?;
        if !file_name_ok(name) {
            return Err(Fail::new(400, format!("{name:?} is not a valid file name (letters, digits, . _ -)")));
        }
        let dir = self.files_dir()?;
        let path = dir.join(name);
        match req.method.as_str() {
            "GET" | "HEAD" => match std::fs::read(&path) {
                Ok(b) => Ok(Response::new(200, OCTETS, b)),
                Err(_) => Err(Fail::new(404, format!("no file named {name:?}"))),
            },
            "PUT" => {
                let octets = req.header("content-type").is_some_and(|v| v.starts_with(OCTETS.as_bytes()));
                if !octets {
                    return Err(Fail::new(
                        415,
                        "send the file as the body, with Content-Type: application/octet-stream",
                    ));
                }
                let _w = self.writes.lock().unwrap_or_else(|e| e.into_inner());
                std::fs::create_dir_all(&dir)
                    .map_err(|e| Fail::new(500, format!("cannot create {}: {e}", dir.display())))?;
                let old = std::fs::read(&path).ok();
                objects::write_atomic(&path, &req.body)
                    .map_err(|e| Fail::new(500, format!("cannot write {}: {e}", path.display())))?;
                // A file the configuration uses (a certificate) is re-read
                // by re-applying the configuration; if that fails the old
                // contents come back.
                let sources = self.sources().ok();
                let used = sources.as_deref().map(|s| objects::file_referrers(s, &path)).unwrap_or_default();
                if let (false, Some(sources)) = (used.is_empty(), sources) {
                    if let Err(f) = self.commit(&sources, Vec::new()) {
                        let _ = match &old {
                            Some(b) => objects::write_atomic(&path, b),
                            None => std::fs::remove_file(&path),
                        };
                        return Err(f);
                    }
                }
                log::info!("api: file {name} written ({} bytes)", req.body.len());
                Ok(Response::new(if old.is_some() { 204 } else { 201 }, JSON, Vec::new()))
            }
            _ => {
                let _w = self.writes.lock().unwrap_or_else(|e| e.into_inner());
                if !path.exists() {
                    return Err(Fail::new(404, format!("no file named {name:?}")));
                }
                if let Ok(sources) = self.sources() {
                    let used = objects::file_referrers(&sources, &path);
                    if !used.is_empty() {
                        return Err(Fail::new(409, format!("still referenced by {}", used.join(", "))));
                    }
                }
                std::fs::remove_file(&path).map_err(|e| Fail::new(500, format!("cannot delete: {e}")))?;
                log::info!("api: file {name} deleted");
                Ok(Response::new(204, JSON, Vec::new()))
            }
        }
    }

    /// A node across every pool that has it: GET its state and figures in
    /// each; PUT `{"state": …, "pools": [...]?}` to set its state in all
    /// of them (or the named ones) with one change (C1, C8).
    fn node(&self, req: &Request, node: &str) -> Answer {
        only(req, &["GET", "PUT"])?;
        if req.method == "PUT" {
            let body = json_body(req)?;
            let state = body
                .get("state")
                .and_then(Value::as_str)
                .ok_or_else(|| Fail::new(400, "the body needs \"state\": \"active\", \"draining\" or \"disabled\""))?;
            let pools: Option<Vec<String>> = match body.get("pools") {
                None | Some(Value::Null) => None,
                Some(Value::Array(a)) => Some(
                    a.iter()
                        .map(|p| p.as_str().map(String::from))
                        .collect::<Option<_>>()
                        .ok_or_else(|| Fail::new(400, "\"pools\" must be a list of pool names"))?,
                ),
                Some(_) => return Err(Fail::new(400, "\"pools\" must be a list of pool names")),
            };
            if let Some(k) = body.as_object().and_then(|o| o.keys().find(|k| *k != "state" && *k != "pools")) {
                return Err(Fail::new(400, format!("unknown property {k:?} (expected \"state\" and \"pools\")")));
            }
            let _w = self.writes.lock().unwrap_or_else(|e| e.into_inner());
            let sources = self.sources()?;
            let (edit, changed_pools) = objects::set_node_state(&sources, node, state, pools.as_deref())?;
            let g = self.commit(&sources, edit.changed)?;
            log::info!("api: node {node} set {state} in pool(s) {} (generation {g})", changed_pools.join(", "));
        }
        let (g, t) = (self.control.current(), self.control.stats());
        let now = std::time::SystemTime::now();
        let places: Vec<Value> =
            t.nodes.iter().filter(|n| n.node == node).map(|n| super::render::node_json(n, now)).collect();
        if places.is_empty() {
            return Err(Fail::new(404, format!("no pool has a node {node:?}")));
        }
        Ok(json_answer(200, &json!({"node": node, "generation": g.id, "pools": places})))
    }
}

impl Api {
    /// `GET …/status/history?since=MS`: the samples taken after Unix
    /// millisecond MS (every sample kept without it), oldest first.
    fn history(&self, query: &str) -> Result<Value, Fail> {
        let mut since = 0;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=').unwrap_or((pair, "")) {
                // A number past u64 is later than every sample.
                ("since", v) if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) => {
                    since = v.parse().unwrap_or(u64::MAX)
                }
                ("since", v) => {
                    return Err(Fail::new(
                        400,
                        format!("since: expected Unix milliseconds (the time_ms of a sample), found {v:?}"),
                    ))
                }
                (other, _) => return Err(Fail::new(400, format!("unknown parameter {other:?} (since)"))),
            }
        }
        let samples: Vec<Value> = self.history.since(since).iter().map(|s| s.json()).collect();
        Ok(json!({
            "interval_seconds": super::history::INTERVAL.as_secs(),
            "capacity": super::history::CAPACITY,
            "samples": samples,
        }))
    }

    /// Remove cached objects: `{"url": U}`, `{"prefix": U}` (U a URL or a
    /// path, for every host) or `{"all": true}`, on every shard.
    fn purge(&self, req: &Request) -> Answer {
        only(req, &["POST"])?;
        let body = json_body(req)?;
        let obj = body.as_object().ok_or_else(|| Fail::new(400, "the body must be a JSON object"))?;
        let what = match (obj.get("url"), obj.get("prefix"), obj.get("all")) {
            (Some(Value::String(u)), None, None) => crate::cache::Purge::url(u, false),
            (None, Some(Value::String(p)), None) => crate::cache::Purge::url(p, true),
            (None, None, Some(Value::Bool(true))) => Ok(crate::cache::Purge::All),
            _ => Err("the body needs exactly one of \"url\": \"...\", \"prefix\": \"...\" or \"all\": true".into()),
        }
        .map_err(|e| Fail::new(400, e))?;
        if let Some(k) = obj.keys().find(|k| !["url", "prefix", "all"].contains(&k.as_str())) {
            return Err(Fail::new(400, format!("unknown property {k:?} (expected url, prefix or all)")));
        }
        let counts = self.control.on_every_shard(move |shard| shard.cache.borrow_mut().purge(|k| what.matches(k)));
        let purged: usize = counts.iter().sum();
        log::info!("api: cache purge removed {purged} object(s)");
        Ok(json_answer(200, &json!({"purged": purged, "shards": counts.len()})))
    }
}

impl Handler for Api {
    fn authorized(&self, authorization: Option<&[u8]>) -> bool {
        self.verifier().is_some_and(|v| v.check(authorization).is_some())
    }

    fn handle(&self, req: &Request, peer: SocketAddr) -> Response {
        let user = match self.verifier() {
            Some(v) => v.check(req.header("authorization")),
            None => None,
        };
        let answer = match user {
            None => Err(Fail::new(401, "authentication required (HTTP Basic, a user of [api] users)")),
            Some(_) => self.route(req),
        };
        match answer {
            Ok(r) => r,
            Err(Fail { status, text, allow }) => {
                if status >= 500 {
                    log::error!("api: {} {} from {peer}: {status} {text}", req.method, req.path);
                } else {
                    log::info!("api: {} {} from {peer}: {status} {text}", req.method, req.path);
                }
                let mut r = json_answer(status, &json!({"error_id": error_id(status), "error_text": text}));
                if status == 401 {
                    r.headers.push(("WWW-Authenticate", "Basic realm=\"shoal\"".into()));
                }
                if let Some(a) = allow {
                    r.headers.push(("Allow", a));
                }
                r
            }
        }
    }
}

/// Start the API of `control`'s configuration, if it has one.
pub fn start(control: &Arc<Control>) -> Result<(), String> {
    let cfg = control.config();
    let Some(api) = &cfg.api else { return Ok(()) };
    // A plain bind (no SO_REUSEPORT): a second shoal must not share the port.
    let listener =
        std::net::TcpListener::bind(api.listen).map_err(|e| format!("api: cannot listen on {}: {e}", api.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let tls = match &api.tls {
        None => None,
        Some((cert, key)) => Some(server_tls(cert, key)?),
    };
    let history = super::history::start(control.clone())?;
    super::server::start(listener, tls, Arc::new(Api::new(control.clone(), history)))?;
    log::info!("REST API listening on {addr} ({})", if api.tls.is_some() { "https" } else { "http" });
    Ok(())
}

fn server_tls(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, String> {
    let certs = crate::tls::load_certs(cert)?;
    let key = crate::tls::load_key(key)?;
    let cfg = rustls::ServerConfig::builder_with_provider(Arc::new(crate::tls::provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("api: {e}"))?;
    Ok(Arc::new(cfg))
}

/// `GET …/events?level=L&type=T&limit=N`: the events kept, oldest first:
/// those at level L or above, of type (or pattern) T, the last N.
fn events(query: &str) -> Result<serde_json::Value, Fail> {
    let (mut level, mut kind, mut limit) = (crate::events::Level::Info, None::<String>, usize::MAX);
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "level" => {
                level = crate::events::Level::parse(v).ok_or_else(|| {
                    Fail::new(400, format!("level: expected info, warning, serious or fatal, found {v:?}"))
                })?
            }
            "type" => kind = Some(v.to_owned()),
            "limit" => {
                limit = v.parse().map_err(|_| Fail::new(400, format!("limit: expected a number, found {v:?}")))?
            }
            other => return Err(Fail::new(400, format!("unknown parameter {other:?} (level, type, limit)"))),
        }
    }
    let list = crate::events::recent(|e| {
        e.level >= level && kind.as_deref().is_none_or(|k| crate::events::type_matches(k, &e.kind))
    });
    let skip = list.len().saturating_sub(limit);
    Ok(serde_json::json!({ "events": list[skip..].iter().map(|e| e.json()).collect::<Vec<_>>() }))
}

/// The dashboard's page, script and style, embedded in the binary (no
/// build step, no asset from anywhere else).
const DASHBOARD_HTML: &str = include_str!("dashboard/index.html");
const DASHBOARD_JS: &str = include_str!("dashboard/dashboard.js");
const DASHBOARD_CSS: &str = include_str!("dashboard/dashboard.css");
