//! The cache as a module of an HTTP virtual server's stack
//! (docs/phases.md): it looks up in the `route` phase, after the rules
//! rewrote the request and set its cache key, and stores in the `response`
//! phase, after the response rules rewrote the response and before
//! persistence and the forwarding headers add per-client fields.
//!
//! - A usable stored object answers at once (a hit), with `Age`, a 304 for
//!   a matching conditional request, a 206 or 416 for a `Range`.
//! - A miss claims the key's fill on its owner shard; concurrent misses
//!   wait for that fill and read its object as it arrives (collapsed
//!   forwarding); a fill whose response is not stored releases them to the
//!   node.
//! - The filling request asks the node for the whole object (its client's
//!   `Range` and conditional fields are kept aside) and, when the response
//!   may be stored, diverts the node's body into the object; its client is
//!   answered from the object like every other.
//! - A stale object is revalidated with `If-None-Match`/`If-Modified-Since`;
//!   a 304 freshens it; a failure may serve it stale (`stale-if-error`).
//!   Within its `stale-while-revalidate` time the request that finds it
//!   stale is answered from it at once, and the revalidation runs as a
//!   request of its own with no client ([`crate::proxy::pipeline::spawn_background`]),
//!   as Varnish's grace and nginx's `proxy_cache_background_update` do.
//! - A successful unsafe request invalidates the URL (RFC 9111 §4.4).

use super::fill::{FillGuard, Outcome};
use super::object::{Body, BodyWriter, Object};
use super::policy::{self, Bounds, RequestPolicy, Usable};
use super::range::{self, Ask};
use crate::config::model::CacheSettings;
use crate::http::request::RequestHead;
use crate::http::response::ResponseHead;
use crate::http::Framing;
use crate::proxy::module::{BodySink, Flow, Module, SinkFull, Step, Verdict};
use crate::proxy::own::{OwnBody, OwnResponse};
use crate::proxy::txn::Txn;
use crate::runtime::shard::Shard;
use std::io::Write;
use std::rc::Rc;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

/// How long a cross-shard lookup may take before the request goes on
/// without the cache.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(2);

/// The client's fields the filling request keeps from the node (the cache
/// wants the whole object) and answers itself from the object.
const CLIENT_FIELDS: [&str; 4] = ["range", "if-range", "if-none-match", "if-modified-since"];

/// Hop-by-hop fields, never stored (RFC 9111 §3.1).
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-authenticate",
];

const DISABLED: &str = "not cacheable; disabled by a rule";

pub struct CacheModule {
    settings: CacheSettings,
    bounds: Bounds,
    /// Largest body filled in memory; a larger one (up to
    /// `bounds.max_object`) is written straight to the disk tier.
    memory_max: u64,
}

impl CacheModule {
    pub fn new(settings: CacheSettings, shards: usize) -> CacheModule {
        let limits = super::partition_limits(&settings, shards);
        let memory_max = settings.max_object.min(limits.memory);
        let bounds = Bounds {
            max_object: settings.max_object.min(memory_max.max(limits.disk)),
            default_lifetime: settings.default_lifetime.as_secs(),
            max_vary: settings.max_vary_size,
        };
        CacheModule { settings, bounds, memory_max }
    }
}

/// The cache's part of one request.
#[derive(Default)]
pub struct CacheCtx {
    /// The primary key (host and target), and the shard that owns it.
    key: Vec<u8>,
    owner: usize,
    /// Set when the cache takes part in the request.
    policy: Option<RequestPolicy>,
    /// What `X-Cache-Info` says.
    info: Option<&'static str>,
    request_time: u64,
    /// The stored object being revalidated.
    stale: Option<Arc<Object>>,
    /// The fill this request owns.
    fill: Option<FillGuard>,
    /// The owner partition's memory figure, for a body this request fills.
    usage: Option<Arc<AtomicU64>>,
    /// The disk tier's directory, where a complete object is written.
    disk_dir: Option<Arc<std::path::PathBuf>>,
    /// The client's fields taken off the node request (when `prepared`:
    /// then the request's own range and conditional fields, if any, are
    /// the cache's, not the client's).
    saved: Vec<(&'static str, Vec<u8>)>,
    prepared: bool,
    /// An unsafe method: a success invalidates the URL.
    invalidate: bool,
    /// Answered from the cache.
    hit: bool,
    /// A background revalidation (no client): what it answers goes
    /// nowhere, so its answers carry no body.
    background: bool,
}

/// What a request that served a stale object hands to the background
/// request that revalidates it.
struct Revalidate {
    fill: FillGuard,
    stale: Arc<Object>,
    usage: Option<Arc<AtomicU64>>,
    disk_dir: Option<Arc<std::path::PathBuf>>,
}

impl Module for CacheModule {
    type Ctx = CacheCtx;

    fn name(&self) -> &'static str {
        "cache"
    }

    fn route<'a>(&'a self, tx: &'a mut Txn, ctx: &'a mut CacheCtx) -> Step<'a, Flow> {
        let policy = match RequestPolicy::of(&tx.request) {
            Ok(p) => p,
            Err(why) => {
                ctx.info = Some(why);
                if !crate::http::is_safe(tx.request.method()) {
                    ctx.invalidate = true;
                    make_key(&tx.request, &mut ctx.key);
                    ctx.owner = super::owner(&ctx.key, tx.view.shard.nshards);
                }
                return Step::Ready(Flow::Continue);
            }
        };
        make_key(&tx.request, &mut ctx.key);
        ctx.owner = super::owner(&ctx.key, tx.view.shard.nshards);
        ctx.policy = Some(policy);
        if let Some(handoff) = tx.handoff.take() {
            if let Ok(r) = handoff.downcast::<Revalidate>() {
                let Revalidate { fill, stale, usage, disk_dir } = *r;
                ctx.background = true;
                ctx.request_time = now();
                ctx.usage = usage;
                ctx.disk_dir = disk_dir;
                ctx.fill = Some(fill);
                self.prepare_fill(tx, ctx);
                self.revalidate(tx, ctx, stale);
                return Step::Ready(Flow::Continue);
            }
        }
        if tx.cache.disabled {
            // Not answered from the cache; a response rule may still enable
            // storing its response.
            ctx.info = Some(DISABLED);
            return Step::Ready(Flow::Continue);
        }
        Step::wait(self.lookup(tx, ctx))
    }

    fn response<'a>(&'a self, tx: &'a mut Txn, ctx: &'a mut CacheCtx) -> Step<'a, Verdict> {
        if ctx.usage.is_none() && ctx.policy.is_some() && !tx.cache.disabled {
            // Disabled for the request, enabled again for the response:
            // the owner partition's memory figure is needed to store it.
            return Step::wait(async move {
                let shard = tx.view.shard.clone();
                ctx.usage = on_owner(&shard, ctx.owner, |s| s.cache.borrow().usage()).await;
                self.judge(tx, ctx)
            });
        }
        Step::Ready(self.judge(tx, ctx))
    }

    /// No node answered: a stale object may stand in (RFC 5861 §4).
    fn error(&self, tx: &mut Txn, ctx: &mut CacheCtx, resp: &mut OwnResponse) {
        let (Some(stale), Some(policy)) = (ctx.stale.clone(), ctx.policy.as_ref()) else { return };
        let now = now();
        if resp.head.status >= 500 && policy::stale_if_error(&stale.fresh, policy, now) {
            tx.view.vs_stats(tx.vs).cache(CacheEvent::Stale);
            ctx.hit = true;
            *resp = self.answer(ctx, &tx.request, &stale, now, "cached; stale, the node failed");
        }
    }

    fn log(&self, tx: &Txn, ctx: &mut CacheCtx) {
        if ctx.hit {
            tx.view.vs_stats(tx.vs).cache_hit_bytes(tx.bytes_out);
        }
    }
}

impl CacheModule {
    async fn lookup(&self, tx: &mut Txn, ctx: &mut CacheCtx) -> Flow {
        let shard = tx.view.shard.clone();
        let view = tx.view.clone();
        let stats = view.vs_stats(tx.vs);
        let now = now();
        ctx.request_time = now;
        let policy = ctx.policy.clone().expect("set by route");
        let claim = !policy.head;
        let key = ctx.key.clone();
        let found = on_owner(&shard, ctx.owner, move |s| s.cache.borrow_mut().lookup(&key, claim)).await;
        let Some(found) = found else {
            // The owner is far behind: go on without the cache.
            ctx.policy = None;
            ctx.info = Some("not cached; the cache partition did not answer");
            return Flow::Continue;
        };
        ctx.usage = Some(found.usage);
        ctx.disk_dir = found.disk_dir;
        let selected = {
            let selects = selector(tx);
            found.variants.iter().find(|o| selects(o)).cloned()
        };
        let fill = found.fill;
        if let Some(obj) = selected {
            match policy::usable(&obj.fresh, &policy, now) {
                Usable::Fresh | Usable::StaleAccepted => {
                    stats.cache(CacheEvent::Hit);
                    return self.hit(tx, ctx, &obj, now, "cached");
                }
                // RFC 5861 §3: served stale while it is revalidated, by
                // another request already, or else by a background request
                // this one starts with the fill it claims. (A HEAD starts
                // none: its request would bring no body to store.)
                Usable::StaleWhileRevalidate if fill.is_some() || claim => {
                    let fill = match fill {
                        Some(f) => Some(f),
                        None => self.claim(&shard, ctx).await,
                    };
                    if let Some((f, true)) = fill {
                        let handoff = Revalidate {
                            fill: FillGuard::new(f),
                            stale: obj.clone(),
                            usage: ctx.usage.clone(),
                            disk_dir: ctx.disk_dir.clone(),
                        };
                        crate::proxy::pipeline::spawn_background(tx, Box::new(handoff));
                    }
                    stats.cache(CacheEvent::Stale);
                    return self.hit(tx, ctx, &obj, now, "cached; stale while revalidating");
                }
                _ => {}
            }
            return self.to_node(tx, ctx, fill, Some(obj), now).await;
        }
        self.to_node(tx, ctx, fill, None, now).await
    }

    /// Nothing stored answers: claim the key's fill (unless `fill` is
    /// one already) and go to the node, revalidating `stale` if there is
    /// one, or wait for the fill another request owns. A HEAD goes to the
    /// node without a fill: its answer has no body to store.
    async fn to_node(
        &self,
        tx: &mut Txn,
        ctx: &mut CacheCtx,
        mut fill: Option<(Arc<super::fill::Fill>, bool)>,
        stale: Option<Arc<Object>>,
        now: u64,
    ) -> Flow {
        let view = tx.view.clone();
        let stats = view.vs_stats(tx.vs);
        if ctx.policy.as_ref().is_some_and(|p| p.head) {
            stats.cache(CacheEvent::Miss);
            return Flow::Continue;
        }
        if fill.is_none() {
            fill = self.claim(&view.shard, ctx).await;
        }
        match fill {
            Some((f, true)) => {
                ctx.fill = Some(FillGuard::new(f));
                self.prepare_fill(tx, ctx);
                match stale {
                    Some(obj) => self.revalidate(tx, ctx, obj),
                    None => stats.cache(CacheEvent::Miss),
                }
                Flow::Continue
            }
            Some((f, false)) => self.wait(tx, ctx, f, now).await,
            None => {
                stats.cache(CacheEvent::Miss);
                Flow::Continue
            }
        }
    }

    /// Ask the node whether the stored object `obj` is still good (this
    /// request owns the key's fill, and `prepare_fill` has run).
    fn revalidate(&self, tx: &mut Txn, ctx: &mut CacheCtx, obj: Arc<Object>) {
        tx.view.vs_stats(tx.vs).cache(CacheEvent::Revalidation);
        if let Some(etag) = obj.etag() {
            let _ = tx.request.fields.set("If-None-Match", etag);
        } else if let Some(lm) = obj.head.fields.get("last-modified") {
            let _ = tx.request.fields.set("If-Modified-Since", lm);
        }
        ctx.stale = Some(obj);
    }

    /// Claim the key's fill on its owner (variants were there but none
    /// served).
    async fn claim(&self, shard: &Rc<Shard>, ctx: &CacheCtx) -> Option<(Arc<super::fill::Fill>, bool)> {
        let key = ctx.key.clone();
        on_owner(shard, ctx.owner, move |s| s.cache.borrow_mut().claim(&key)).await
    }

    /// Wait for another request's fill of this key: read its object, or go
    /// to the node when it was not stored (or took too long).
    async fn wait(&self, tx: &mut Txn, ctx: &mut CacheCtx, fill: Arc<super::fill::Fill>, now: u64) -> Flow {
        let view = tx.view.clone();
        let stats = view.vs_stats(tx.vs);
        stats.cache(CacheEvent::Collapsed);
        let outcome = monoio::time::timeout(self.settings.fill_wait, fill.settled()).await;
        match outcome {
            Ok(Outcome::Stored(obj)) if selects(&obj, tx) => {
                stats.cache(CacheEvent::Hit);
                self.hit(tx, ctx, &obj, now, "cached")
            }
            _ => {
                // On to the node, storing what comes back if it may be.
                stats.cache(CacheEvent::Miss);
                self.prepare_fill(tx, ctx);
                Flow::Continue
            }
        }
    }

    /// The node is to send the whole object: keep the client's range and
    /// conditional fields aside.
    fn prepare_fill(&self, tx: &mut Txn, ctx: &mut CacheCtx) {
        ctx.prepared = true;
        ctx.saved.clear();
        for name in CLIENT_FIELDS {
            if let Some(v) = tx.request.fields.get(name) {
                ctx.saved.push((name, v.to_vec()));
                tx.request.fields.remove(name);
            }
        }
    }

    fn hit(&self, tx: &mut Txn, ctx: &mut CacheCtx, obj: &Arc<Object>, now: u64, info: &'static str) -> Flow {
        ctx.hit = true;
        let info = match info {
            "cached" if !obj.body.is_complete() => "cached; still filling",
            "cached" if obj.body.disk().is_some() => "cached; from disk",
            other => other,
        };
        ctx.info = Some(info);
        let resp = self.answer(ctx, &tx.request, obj, now, info);
        Flow::Respond(Box::new(resp))
    }

    /// The response for the client from `obj`: its conditional fields and
    /// range applied.
    fn answer(
        &self,
        ctx: &CacheCtx,
        req: &RequestHead,
        obj: &Arc<Object>,
        now: u64,
        info: &'static str,
    ) -> OwnResponse {
        if ctx.background {
            return OwnResponse::new(obj.head.status);
        }
        let field = |name: &str| -> Option<&[u8]> {
            if ctx.prepared {
                ctx.saved.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_slice())
            } else {
                req.fields.get(name)
            }
        };
        let mut head = obj.head.clone();
        let _ = head.fields.set_with("Age", |out| {
            let _ = write!(out, "{}", obj.fresh.age(now));
        });
        if self.settings.verbose {
            let _ = head.fields.set("X-Cache-Info", info.as_bytes());
        }
        // RFC 9110 §13.2.2: If-None-Match, else If-Modified-Since.
        let not_modified = if let Some(inm) = field("if-none-match") {
            obj.etag().is_some_and(|etag| etag_list_matches(inm, etag, false))
        } else if let Some(ims) = field("if-modified-since").and_then(policy::http_date) {
            obj.head.fields.get("last-modified").and_then(policy::http_date).is_some_and(|lm| lm <= ims)
        } else {
            false
        };
        if not_modified && obj.head.status == 200 {
            let _ = head.set_status(304);
            for name in ["content-type", "content-length", "content-range", "content-encoding"] {
                head.fields.remove(name);
            }
            return OwnResponse { head, body: OwnBody::Empty, close_instead: false };
        }
        let len = obj.body.final_len();
        if let (200, Some(len), Some(value)) = (obj.head.status, len, field("range")) {
            let if_range_ok = match field("if-range") {
                None => true,
                Some(v) if v.starts_with(b"\"") => obj.etag().is_some_and(|e| !e.starts_with(b"W/") && e == v),
                Some(v) => {
                    let lm = obj.head.fields.get("last-modified").and_then(policy::http_date);
                    lm.is_some() && lm == policy::http_date(v)
                }
            };
            match range::parse(value, len).filter(|_| if_range_ok) {
                Some(Ask::Part { start, end }) => {
                    let _ = head.set_status(206);
                    let _ = head.fields.set_with("Content-Range", |out| {
                        let _ = write!(out, "bytes {start}-{}/{len}", end - 1);
                    });
                    return OwnResponse { head, body: body_of(obj, start, Some(end)), close_instead: false };
                }
                Some(Ask::Unsatisfiable) => {
                    let _ = head.set_status(416);
                    head.fields.remove("content-type");
                    let _ = head.fields.set_with("Content-Range", |out| {
                        let _ = write!(out, "bytes */{len}");
                    });
                    return OwnResponse { head, body: OwnBody::Empty, close_instead: false };
                }
                None => {}
            }
        }
        OwnResponse { head, body: body_of(obj, 0, len), close_instead: false }
    }

    /// The response phase: store, freshen, invalidate, or let it pass.
    fn judge(&self, tx: &mut Txn, ctx: &mut CacheCtx) -> Verdict {
        let status = tx.response.status;
        let view = tx.view.clone();
        let stats = view.vs_stats(tx.vs);
        if ctx.invalidate {
            if (200..400).contains(&status) {
                let key = std::mem::take(&mut ctx.key);
                post_to_owner(&tx.view.shard, ctx.owner, move |s| {
                    s.cache.borrow_mut().remove_key(&key);
                });
            }
            return self.pass(tx, ctx);
        }
        let Some(policy) = ctx.policy.clone() else { return self.pass(tx, ctx) };
        let now = now();
        if let Some(stale) = ctx.stale.clone() {
            if status == 304 {
                stats.cache(CacheEvent::Revalidated);
                let obj = freshen(&stale, &tx.response, &policy, ctx.request_time, now, &self.bounds);
                self.publish(tx, ctx, &obj);
                ctx.hit = true;
                let resp = self.answer(ctx, &tx.request, &obj, now, "cached; revalidated");
                return Verdict::Respond(Box::new(resp));
            }
            if status >= 500 && policy::stale_if_error(&stale.fresh, &policy, now) {
                stats.cache(CacheEvent::Stale);
                ctx.hit = true;
                let resp = self.answer(ctx, &tx.request, &stale, now, "cached; stale, the node failed");
                return Verdict::Respond(Box::new(resp));
            }
        }
        if tx.cache.disabled {
            ctx.info = Some(DISABLED);
            return self.pass(tx, ctx);
        }
        if policy.head || tx.explicit_addr.is_some() {
            return self.pass(tx, ctx);
        }
        if tx.response_body_wanted {
            // A response rule reads the body: it is not taken from it.
            ctx.info = Some("not cacheable; a rule reads the response body");
            return self.pass(tx, ctx);
        }
        let fresh = match policy::judge(&policy, &tx.response, ctx.request_time, now, &self.bounds) {
            Ok(f) => f,
            Err(why) => {
                stats.cache(CacheEvent::Uncacheable);
                ctx.info = Some(why);
                return self.pass(tx, ctx);
            }
        };
        let Some(vary) = vary_values(&tx.response, &tx.request, self.bounds.max_vary) else {
            stats.cache(CacheEvent::Uncacheable);
            ctx.info = Some("not cacheable; response had too large vary data");
            return self.pass(tx, ctx);
        };
        let Some(usage) = ctx.usage.clone() else { return self.pass(tx, ctx) };
        let expected = match tx.response.framing {
            // A module nearer the node re-encodes the body (compression):
            // its length is known only at its end.
            _ if tx.response_transformed => None,
            Framing::None => Some(0),
            Framing::Length(n) => Some(n),
            Framing::Chunked | Framing::UntilClose => None,
        };
        let head = stored_head(&tx.response);
        let rule_key = tx.cache.key.clone();
        let mut direct = None;
        let body = match (expected, &ctx.disk_dir) {
            // Too large for memory: straight into its file in the disk tier.
            (Some(n), Some(dir)) if n > self.memory_max => {
                let header = super::disk::encode_parts(&ctx.key, &head, &fresh, &vary, &rule_key);
                match super::disk::create_direct(dir, &tmp_name(tx.view.shard.id), &header) {
                    Ok((file, tmp)) => {
                        direct = Some(tmp);
                        Body::to_file(file, header.len() as u64, n, usage)
                    }
                    Err(e) => {
                        log::warn!("cache: a file in {}: {e}", dir.display());
                        stats.cache(CacheEvent::Uncacheable);
                        ctx.info = Some("not cacheable; response file size too large");
                        return self.pass(tx, ctx);
                    }
                }
            }
            (Some(n), None) if n > self.memory_max => {
                stats.cache(CacheEvent::Uncacheable);
                ctx.info = Some("not cacheable; response file size too large");
                return self.pass(tx, ctx);
            }
            _ => Body::new(expected, usage),
        };
        // A body of unknown length may grow only as far as memory allows.
        let limit = if direct.is_some() { self.bounds.max_object } else { self.memory_max };
        let writer = BodyWriter::new(body.clone(), limit);
        let obj = Arc::new(Object { head, fresh, vary, rule_key, body, to_disk: ctx.disk_dir.is_some() });
        self.publish(tx, ctx, &obj);
        ctx.info = Some("caching");
        let resp = self.answer(ctx, &tx.request, &obj, now, "caching");
        let disk = ctx.disk_dir.clone().map(|dir| DiskJob {
            dir,
            key: ctx.key.clone(),
            obj: obj.clone(),
            owner: ctx.owner,
            shard: tx.view.shard.clone(),
            direct,
        });
        Verdict::Divert(Box::new(Sink { writer, disk }), Box::new(resp))
    }

    /// Resolve this request's fill with `obj` (its waiters read it) and
    /// have the owner index it.
    fn publish(&self, tx: &Txn, ctx: &mut CacheCtx, obj: &Arc<Object>) {
        if let Some(g) = ctx.fill.take() {
            g.store(obj.clone());
        }
        let (key, obj) = (ctx.key.clone(), obj.clone());
        post_to_owner(&tx.view.shard, ctx.owner, move |s| s.cache.borrow_mut().settle_or_insert(&key, obj));
    }

    /// Not stored: release any waiters, say why (verbose), forward as is.
    fn pass(&self, tx: &mut Txn, ctx: &mut CacheCtx) -> Verdict {
        if let Some(g) = ctx.fill.take() {
            g.release();
        }
        if self.settings.verbose {
            if let Some(info) = ctx.info {
                let _ = tx.response.fields.set("X-Cache-Info", info.as_bytes());
            }
        }
        Verdict::Accept
    }
}

/// A diverted node body going into a stored object, and then to disk.
struct Sink {
    writer: BodyWriter,
    disk: Option<DiskJob>,
}

impl BodySink for Sink {
    fn data(&mut self, data: &[u8]) -> Result<(), SinkFull> {
        self.writer.append(data).map_err(|_| SinkFull)
    }

    fn end(&mut self) {
        self.writer.finish();
        if let Some(job) = self.disk.take() {
            monoio::spawn(job.run());
        }
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        // The body did not complete: no copy is coming.
        if let Some(job) = self.disk.take() {
            job.done(None);
        }
    }
}

/// Writing a complete object to the disk tier (on the shard that filled
/// it), then telling its owner partition where the copy is.
struct DiskJob {
    dir: Arc<std::path::PathBuf>,
    key: Vec<u8>,
    obj: Arc<Object>,
    owner: usize,
    shard: Rc<Shard>,
    /// An object too large for memory, written straight to this
    /// temporary file: finished (synced, renamed) instead of written.
    direct: Option<std::path::PathBuf>,
}

/// A name for a temporary file of the disk tier, unique in the process.
fn tmp_name(shard: usize) -> String {
    static FILES: AtomicU64 = AtomicU64::new(0);
    let n = FILES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!(".tmp-{}-{shard}-{n}", std::process::id())
}

impl DiskJob {
    async fn run(self) {
        if !self.obj.body.is_complete() {
            return self.done(None);
        }
        let written = match (&self.direct, self.obj.body.direct_file()) {
            (Some(tmp), Some(file)) => {
                super::disk::finish(&self.dir, &self.key, &self.obj, file, tmp).await.map(|path| {
                    let len = self.obj.body.len();
                    super::disk::DiskRef { path, body_offset: self.obj.body.file_base(), len }
                })
            }
            _ => super::disk::write(&self.dir, &self.key, &self.obj, &tmp_name(self.shard.id)).await,
        };
        match written {
            Ok(d) => {
                let mut job = self;
                job.direct = None;
                job.done(Some(d))
            }
            Err(e) => {
                log::warn!("cache: writing an object to {}: {e}", self.dir.display());
                self.done(None)
            }
        }
    }

    /// Tell the owner partition where the copy is, or that none is coming
    /// (and remove a direct object's temporary file).
    fn done(self, written: Option<super::disk::DiskRef>) {
        let DiskJob { key, obj, owner, shard, direct, .. } = self;
        if let Some(tmp) = direct {
            monoio::spawn(async move {
                let _ = monoio::fs::remove_file(&tmp).await;
            });
        }
        post_to_owner(&shard, owner, move |s| s.cache.borrow_mut().attach_disk(&key, &obj, written));
    }
}

/// Bytes `start..end` of `obj`'s body (`end`: its length, if known): a
/// large body in memory as a file to splice, any other as a stream.
fn body_of(obj: &Arc<Object>, start: u64, end: Option<u64>) -> OwnBody {
    match (obj.body.file_source(), end) {
        (Some(file), Some(end)) => {
            OwnBody::File { start, end, file: Box::new(file), fallback: obj.body.reader(start, Some(end)) }
        }
        _ => OwnBody::Stream { length: end.map(|e| e - start), source: obj.body.reader(start, end) },
    }
}

/// The stored copy of a node's response head: hop-by-hop fields (and those
/// its `Connection` names) removed.
fn stored_head(resp: &ResponseHead) -> ResponseHead {
    let mut head = resp.clone();
    let named: Vec<String> = resp
        .fields
        .get_all("connection")
        .flat_map(|v| v.split(|&b| b == b','))
        .map(|t| String::from_utf8_lossy(crate::http::trim_ows(t)).to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect();
    for name in HOP_BY_HOP.iter().copied().chain(named.iter().map(String::as_str)) {
        head.fields.remove(name);
    }
    head
}

/// RFC 9111 §4.3.4: the stored head, updated by a 304's fields.
fn freshen(
    stale: &Arc<Object>,
    not_modified: &ResponseHead,
    req: &RequestPolicy,
    request_time: u64,
    now: u64,
    bounds: &Bounds,
) -> Arc<Object> {
    let mut head = stale.head.clone();
    let skip = |n: &[u8]| {
        HOP_BY_HOP.iter().any(|h| n.eq_ignore_ascii_case(h.as_bytes()))
            || n.eq_ignore_ascii_case(b"content-length")
            || n.eq_ignore_ascii_case(b"content-range")
    };
    let mut names: Vec<&[u8]> = Vec::new();
    for (n, _) in not_modified.fields.iter() {
        if !skip(n) && !names.iter().any(|m| m.eq_ignore_ascii_case(n)) {
            names.push(n);
        }
    }
    for n in names {
        let Ok(name) = std::str::from_utf8(n) else { continue };
        head.fields.remove(name);
        for v in not_modified.fields.get_all(name) {
            let _ = head.fields.add(name, v);
        }
    }
    // Judged again with its new fields, as a 200 would be; if it may no
    // longer be stored, it is served this once and dropped.
    let fresh = policy::judge(req, &head, request_time, now, bounds).unwrap_or(policy::Freshness {
        response_time: now,
        initial_age: 0,
        lifetime: 0,
        ..stale.fresh
    });
    Arc::new(Object {
        head,
        fresh,
        vary: stale.vary.clone(),
        rule_key: stale.rule_key.clone(),
        body: stale.body.clone(),
        to_disk: false,
    })
}

/// The request's values of the response's `Vary` fields; `None` when they
/// take more than `max` bytes.
fn vary_values(resp: &ResponseHead, req: &RequestHead, max: usize) -> Option<Vec<(String, Option<Vec<u8>>)>> {
    let mut out: Vec<(String, Option<Vec<u8>>)> = Vec::new();
    let mut size = 0;
    for v in resp.fields.get_all("vary") {
        for name in v.split(|&b| b == b',').map(crate::http::trim_ows).filter(|n| !n.is_empty()) {
            let name = String::from_utf8_lossy(name).to_ascii_lowercase();
            if out.iter().any(|(n, _)| *n == name) {
                continue;
            }
            let value = vary_value(req, &name).map(|v| v.into_owned());
            size += name.len() + value.as_ref().map_or(0, Vec::len);
            if size > max {
                return None;
            }
            out.push((name, value));
        }
    }
    Some(out)
}

/// Whether an `If-None-Match` list matches `etag` (weak comparison,
/// RFC 9110 §8.8.3.2, unless `strong`).
fn etag_list_matches(list: &[u8], etag: &[u8], strong: bool) -> bool {
    let bare = |t: &[u8]| -> Vec<u8> {
        let t = crate::http::trim_ows(t);
        t.strip_prefix(b"W/").unwrap_or(t).to_vec()
    };
    if crate::http::trim_ows(list) == b"*" {
        return true;
    }
    if strong && etag.starts_with(b"W/") {
        return false;
    }
    let want = bare(etag);
    list.split(|&b| b == b',').any(|t| {
        let t = crate::http::trim_ows(t);
        !(strong && t.starts_with(b"W/")) && bare(t) == want
    })
}

/// Whether `obj` is the variant for `tx`'s request: its rule key and the
/// values of its `Vary` fields.
fn selects(obj: &Object, tx: &Txn) -> bool {
    selector(tx)(obj)
}

/// [`selects`] for trying many stored variants: the canonical
/// `Accept-Encoding` is made once, not once per variant.
fn selector(tx: &Txn) -> impl Fn(&Object) -> bool + '_ {
    let accept_encoding: std::cell::OnceCell<Option<Vec<u8>>> = std::cell::OnceCell::new();
    move |obj| {
        obj.selected_by(tx.cache.key.as_deref(), |n| {
            if n.eq_ignore_ascii_case("accept-encoding") {
                let v = accept_encoding.get_or_init(|| vary_value(&tx.request, n).map(std::borrow::Cow::into_owned));
                v.as_deref().map(std::borrow::Cow::Borrowed)
            } else {
                vary_value(&tx.request, n)
            }
        })
    }
}

/// The request's value of a field a response varies on, as variants are
/// matched: trimmed; `Accept-Encoding` in its canonical form (RFC 9111
/// §4.1 lets a cache normalise by the field's semantics: `gzip, br` and
/// `br,gzip` select the same variant) and as the client sent it when a
/// rule removed it (what the compression module negotiates on).
fn vary_value<'r>(req: &'r RequestHead, name: &str) -> Option<std::borrow::Cow<'r, [u8]>> {
    if name.eq_ignore_ascii_case("accept-encoding") {
        let mut values = crate::http::coding::client_values(req).peekable();
        values.peek()?;
        let mut out = Vec::new();
        crate::http::coding::normalize(values, &mut out);
        return Some(out.into());
    }
    req.fields.get(name).map(|v| crate::http::trim_ows(v).into())
}

/// The primary key: the host (lower case, from `Host`) and the target as
/// the node will get it.
pub fn make_key(req: &RequestHead, out: &mut Vec<u8>) {
    out.clear();
    if let Some(host) = req.fields.get("host") {
        out.extend(host.iter().map(u8::to_ascii_lowercase));
    }
    out.push(b' ');
    out.extend_from_slice(req.target());
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Run `f` on the owner shard's state and wait for its answer; `None` when
/// the owner did not answer in time.
async fn on_owner<R: Send + 'static>(
    shard: &Rc<Shard>,
    owner: usize,
    f: impl FnOnce(&Rc<Shard>) -> R + Send + 'static,
) -> Option<R> {
    match shard.peers() {
        Some(peers) => peers.call(shard, owner, LOOKUP_TIMEOUT, f).await.ok(),
        None => Some(f(shard)),
    }
}

/// Run `f` on the owner shard without waiting for it.
fn post_to_owner(shard: &Rc<Shard>, owner: usize, f: impl FnOnce(&Rc<Shard>) + Send + 'static) {
    match shard.peers() {
        Some(peers) => {
            if let Err(e) = peers.post(shard, owner, f) {
                log::debug!("cache: shard {owner} did not take an index update: {e}");
            }
        }
        None => f(shard),
    }
}

/// What the per-virtual-server counters count (the discriminant is the
/// counter's place in `stats::CACHE_COUNTERS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheEvent {
    Hit = 0,
    Miss,
    Collapsed,
    Revalidation,
    Revalidated,
    Stale,
    Uncacheable,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags() {
        assert!(etag_list_matches(b"\"a\", W/\"b\"", b"\"b\"", false));
        assert!(etag_list_matches(b"*", b"\"x\"", false));
        assert!(!etag_list_matches(b"\"a\"", b"\"b\"", false));
        assert!(!etag_list_matches(b"W/\"a\"", b"\"a\"", true));
        assert!(etag_list_matches(b"W/\"a\"", b"W/\"a\"", false));
    }
}
