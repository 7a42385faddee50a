//! The cluster's control thread: the one place that talks to etcd, on a
//! current-thread tokio runtime of its own (the etcd client is gRPC on
//! tonic; no shard runs tokio).
//!
//! A session: connect; seed an empty cluster from this member's file;
//! take a lease and publish this member on it; read everything under the
//! prefix at one revision and apply it; then watch from the next revision,
//! applying each change as it arrives, renewing the lease every third of
//! its TTL and writing the API's changes. Any error ends the session: the
//! member keeps serving what it runs, says etcd is lost, and starts a new
//! session (with a new lease and a full read) after a short backoff, so a
//! missed watch event can never leave it behind.

use super::layout::{self, Key, Layout};
use super::{Cluster, MemberInfo, Objects, Request, WriteError};
use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, EventType, GetOptions, PutOptions, Txn, TxnOp, WatchOptions,
};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc::Receiver;

/// The longest one etcd call may take before the session counts etcd as
/// lost. gRPC keepalives (every second, 2 s to answer) notice a dead
/// connection that has no call in flight.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);
const BACKOFF_MIN: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

pub(super) fn run(cluster: Arc<Cluster>, mut requests: Receiver<Request>) {
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            cluster.lost(&format!("cannot start the cluster thread's runtime: {e}"));
            return;
        }
    };
    rt.block_on(async move {
        let mut backoff = BACKOFF_MIN;
        loop {
            let why = match session(&cluster, &mut requests).await {
                Ok(()) => return, // the API's side hung up: the process ends
                Err(why) => why,
            };
            cluster.lost(&why);
            let pause = tokio::time::sleep(backoff);
            tokio::pin!(pause);
            loop {
                tokio::select! {
                    _ = &mut pause => break,
                    r = requests.recv() => match r {
                        Some(Request::Write(r)) => {
                            let _ = r.reply.send(Err(WriteError::Unavailable(format!("etcd is unreachable: {why}"))));
                        }
                        Some(Request::Leave(done)) => {
                            let _ = done.send(());
                            return;
                        }
                        None => return,
                    },
                }
            }
            backoff = (backoff * 2).min(BACKOFF_MAX);
            if matches!(cluster.lock().etcd, super::Etcd::Up) {
                backoff = BACKOFF_MIN;
            }
        }
    });
}

fn err(what: &str) -> impl Fn(etcd_client::Error) -> String + '_ {
    move |e| format!("{what}: {e}")
}

/// One etcd call, bounded by [`CALL_TIMEOUT`].
async fn call<T>(what: &str, f: impl std::future::Future<Output = Result<T, etcd_client::Error>>) -> Result<T, String> {
    match tokio::time::timeout(CALL_TIMEOUT, f).await {
        Ok(r) => r.map_err(err(what)),
        Err(_) => Err(format!("{what}: no answer within {CALL_TIMEOUT:?}")),
    }
}

/// Ok when the API's side is gone (process exit); Err(why) when etcd is.
async fn session(cluster: &Arc<Cluster>, requests: &mut Receiver<Request>) -> Result<(), String> {
    let s = &cluster.settings;
    let layout = Layout::new(&s.prefix);
    let options = ConnectOptions::new()
        .with_connect_timeout(s.connect_timeout)
        .with_timeout(CALL_TIMEOUT)
        .with_keep_alive(Duration::from_secs(1), Duration::from_secs(2))
        .with_keep_alive_while_idle(true);
    let connect = tokio::time::timeout(s.connect_timeout, Client::connect(&s.etcd, Some(options)));
    let mut client =
        connect.await.map_err(|_| "no connection within connect_timeout".to_owned())?.map_err(err("connect"))?;
    seed(cluster, &mut client, &layout).await?;

    let ttl = s.lease_ttl.as_secs() as i64;
    let granted = call("lease grant", client.lease_grant(ttl, None)).await?;
    let lease = granted.id();
    if granted.ttl() != ttl {
        // etcd raises a TTL below its minimum (3 election timeouts' worth
        // of heartbeats: 3 s with its default settings).
        log::warn!("cluster: etcd granted a lease of {}s for lease_ttl {ttl}s", granted.ttl());
    }
    let (mut keeper, mut renewals) = call("lease keepalive", client.lease_keep_alive(lease)).await?;
    let mut published = cluster.info();
    publish(&mut client, &layout, lease, &published).await?;

    // Everything at one revision, then every change after it.
    let mut all = call("read", client.get(layout.all(), Some(GetOptions::new().with_prefix()))).await?;
    let revision = all.header().map_or(0, |h| h.revision());
    let mut objects = Objects { revision, ..Objects::default() };
    let mut members = BTreeMap::new();
    for kv in all.take_kvs() {
        let Ok(key) = kv.key_str() else { continue };
        match layout.parse(key) {
            Key::Object(id) => {
                objects.items.insert(id.to_owned(), String::from_utf8_lossy(kv.value()).into_owned());
            }
            Key::Version => objects.version = kv.mod_revision(),
            Key::Member(_) => {
                if let Ok(info) = serde_json::from_slice::<MemberInfo>(kv.value()) {
                    members.insert(info.member.clone(), info);
                }
            }
            Key::Other => {}
        }
    }
    let watch_options = WatchOptions::new().with_prefix().with_start_revision(revision + 1);
    let mut watch = call("watch", client.watch(layout.all(), Some(watch_options))).await?;
    log::info!("cluster: following {} at revision {revision} ({} objects)", layout.all(), objects.items.len());
    cluster.snapshot(objects, members);

    // Renewals every third of the TTL; the member key (with its load,
    // K5) at least every second when it changed.
    let mut renew = tokio::time::interval((s.lease_ttl / 3).min(Duration::from_secs(1)));
    renew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            m = watch.message() => {
                let Some(mut resp) = m.map_err(err("watch"))? else { return Err("the watch ended".into()) };
                if resp.canceled() {
                    return Err(format!("the watch was cancelled ({})", resp.cancel_reason()));
                }
                let revision = resp.take_header().map_or(0, |h| h.revision());
                let mut config = Vec::new();
                let mut version = None;
                for ev in resp.events() {
                    let Some(kv) = ev.kv() else { continue };
                    let Ok(key) = kv.key_str() else { continue };
                    let put = ev.event_type() == EventType::Put;
                    match layout.parse(key) {
                        Key::Object(id) => config.push((
                            id.to_owned(),
                            put.then(|| String::from_utf8_lossy(kv.value()).into_owned()),
                        )),
                        Key::Version => version = Some(kv.mod_revision()),
                        Key::Member(_) if put => {
                            if let Ok(info) = serde_json::from_slice::<MemberInfo>(kv.value()) {
                                cluster.member_put(info);
                            }
                        }
                        Key::Member(name) => cluster.member_gone(name),
                        Key::Other => {}
                    }
                }
                if revision > 0 {
                    cluster.update(revision, config, version);
                }
            }
            _ = renew.tick() => {
                call("lease renewal", keeper.keep_alive()).await?;
                let now = cluster.info();
                if now != published {
                    publish(&mut client, &layout, lease, &now).await?;
                    published = now;
                }
            }
            r = renewals.message() => match r.map_err(err("lease renewal"))? {
                Some(r) if r.ttl() > 0 => {}
                _ => return Err("this member's lease expired".into()),
            },
            r = requests.recv() => {
                let r = match r {
                    Some(Request::Write(r)) => r,
                    Some(Request::Leave(done)) => {
                        let _ = call("lease revoke", client.lease_revoke(lease)).await;
                        log::info!("cluster: left the cluster (lease revoked)");
                        let _ = done.send(());
                        return Ok(());
                    }
                    None => return Ok(()),
                };
                // Its own task, so that the watch that brings the change
                // back is read while the write waits for its answer.
                let mut client = client.clone();
                let layout = layout.clone();
                tokio::spawn(async move {
                    let answer = write(&mut client, &layout, r.base, r.changes).await;
                    let _ = r.reply.send(answer);
                });
            }
        }
    }
}

/// A cluster nobody has seeded gets this member's objects, in one
/// transaction that only the first member to try wins.
async fn seed(cluster: &Cluster, client: &mut Client, layout: &Layout) -> Result<(), String> {
    let have = call("read", client.get(layout.version(), Some(GetOptions::new().with_count_only()))).await?;
    if have.count() > 0 {
        return Ok(());
    }
    let mut texts = Vec::new();
    let cfg = crate::config::load_file(&cluster.main).map_err(|e| format!("cannot seed from {e}"))?;
    for p in &cfg.files {
        let text = std::fs::read_to_string(p).map_err(|e| format!("cannot seed from {}: {e}", p.display()))?;
        texts.push((p.display().to_string(), text));
    }
    let objects = crate::config::cluster::split_objects(&texts)?;
    let mut ops: Vec<TxnOp> = objects.iter().map(|o| TxnOp::put(layout.object(&o.id), o.text.as_str(), None)).collect();
    ops.push(TxnOp::put(layout.version(), "1", None));
    let txn = Txn::new().when([Compare::create_revision(layout.version(), CompareOp::Equal, 0)]).and_then(ops);
    if call("seed", client.txn(txn)).await?.succeeded() {
        log::info!("cluster: seeded {} with {} objects from {}", layout.all(), objects.len(), cluster.main.display());
    }
    Ok(())
}

async fn publish(client: &mut Client, layout: &Layout, lease: i64, info: &MemberInfo) -> Result<(), String> {
    let value = serde_json::to_vec(info).map_err(|e| e.to_string())?;
    call("publish", client.put(layout.member(&info.member), value, Some(PutOptions::new().with_lease(lease)))).await?;
    Ok(())
}

/// Write `changes` if the configuration is still at `base`; the
/// revision it was written at.
async fn write(
    client: &mut Client,
    layout: &Layout,
    base: i64,
    changes: Vec<(String, Option<String>)>,
) -> Result<i64, WriteError> {
    let mut ops: Vec<TxnOp> = changes
        .iter()
        .map(|(id, text)| match text {
            Some(t) if layout::defines(t, id) => TxnOp::put(layout.object(id), t.as_str(), None),
            _ => TxnOp::delete(layout.object(id), None),
        })
        .collect();
    ops.push(TxnOp::put(layout.version(), base.wrapping_add(1).to_string(), None));
    let txn = Txn::new().when([Compare::mod_revision(layout.version(), CompareOp::Equal, base)]).and_then(ops);
    let resp = call("write", client.txn(txn)).await.map_err(WriteError::Unavailable)?;
    if !resp.succeeded() {
        return Err(WriteError::Conflict);
    }
    Ok(resp.header().map_or(0, |h| h.revision()))
}
