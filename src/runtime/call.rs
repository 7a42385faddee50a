//! Cross-shard calls (Seastar's `invoke_on`): run a function on a chosen
//! shard and get its typed reply back, for state one shard owns (a cache
//! partition's index, by key hash) and others ask about.
//!
//! A call is a message in the target's mesh inbox (bounded: a full inbox
//! refuses the call at once, [`CallError::Busy`], rather than making the
//! caller's shard wait) and a one-shot reply channel; the caller's task
//! awaits the reply with a timeout, and only that task waits. The function
//! runs on the target's thread between its other work: a plain closure
//! inline in the target's inbox loop ([`ShardHandle::call`]), or a future
//! spawned there ([`ShardHandle::call_async`]) when the answer itself must
//! wait. A call to one's own shard runs in place. perf/RESULTS.md has the
//! round-trip times.

use super::mesh::ShardMsg;
use super::shard::Shard;
use std::future::Future;
use std::rc::Rc;
use std::time::Duration;

/// Why a call got no reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallError {
    /// No such shard.
    NoShard,
    /// The target's inbox is full: it is far behind; try later or go on
    /// without.
    Busy,
    /// No reply within the timeout (the reply, if it comes, is dropped).
    Timeout,
    /// The target has stopped, or dropped the call without replying.
    Gone,
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CallError::NoShard => "no such shard",
            CallError::Busy => "the shard's inbox is full",
            CallError::Timeout => "no reply within the timeout",
            CallError::Gone => "the shard stopped or dropped the call",
        })
    }
}

/// A closure to run on another shard's thread, with that shard's state.
pub type Job = Box<dyn FnOnce(&Rc<Shard>) + Send>;

/// A shard's way to reach the others: the senders of every shard's inbox.
pub struct ShardHandle {
    pub(super) id: usize,
    pub(super) peers: Vec<flume::Sender<ShardMsg>>,
}

impl ShardHandle {
    /// Run `f` on shard `to` and return its result, within `timeout`.
    pub async fn call<R, F>(&self, me: &Rc<Shard>, to: usize, timeout: Duration, f: F) -> Result<R, CallError>
    where
        R: Send + 'static,
        F: FnOnce(&Rc<Shard>) -> R + Send + 'static,
    {
        if to == self.id {
            return Ok(f(me));
        }
        let (tx, rx) = flume::bounded(1);
        self.send(
            to,
            Box::new(move |shard| {
                // The caller may have given up: a failed send is dropped.
                let _ = tx.send(f(shard));
            }),
        )?;
        wait(rx, timeout).await
    }

    /// Run the future `f` makes on shard `to` (spawned there as a task of
    /// its own) and return its output, within `timeout`.
    pub async fn call_async<R, F, Fut>(
        &self,
        me: &Rc<Shard>,
        to: usize,
        timeout: Duration,
        f: F,
    ) -> Result<R, CallError>
    where
        R: Send + 'static,
        F: FnOnce(Rc<Shard>) -> Fut + Send + 'static,
        Fut: Future<Output = R> + 'static,
    {
        if to == self.id {
            return monoio::time::timeout(timeout, f(me.clone())).await.map_err(|_| CallError::Timeout);
        }
        let (tx, rx) = flume::bounded(1);
        self.send(
            to,
            Box::new(move |shard| {
                let fut = f(shard.clone());
                monoio::spawn(async move {
                    let _ = tx.send(fut.await);
                });
            }),
        )?;
        wait(rx, timeout).await
    }

    /// Run `f` on shard `to` without waiting for it or its result (on this
    /// shard, at once). Refused like a call when the inbox is full.
    pub fn post<F>(&self, me: &Rc<Shard>, to: usize, f: F) -> Result<(), CallError>
    where
        F: FnOnce(&Rc<Shard>) + Send + 'static,
    {
        if to == self.id {
            f(me);
            return Ok(());
        }
        self.send(to, Box::new(f))
    }

    /// Put `job` in shard `to`'s inbox without waiting.
    fn send(&self, to: usize, job: Job) -> Result<(), CallError> {
        let peer = self.peers.get(to).ok_or(CallError::NoShard)?;
        peer.try_send(ShardMsg::Call(job)).map_err(|e| match e {
            flume::TrySendError::Full(_) => CallError::Busy,
            flume::TrySendError::Disconnected(_) => CallError::Gone,
        })
    }

    /// Number of shards reachable (this one included).
    pub fn shards(&self) -> usize {
        self.peers.len()
    }
}

async fn wait<R>(rx: flume::Receiver<R>, timeout: Duration) -> Result<R, CallError> {
    match monoio::time::timeout(timeout, rx.recv_async()).await {
        Ok(Ok(r)) => Ok(r),
        Ok(Err(_)) => Err(CallError::Gone),
        Err(_) => Err(CallError::Timeout),
    }
}

/// For benchmarks and tests of cross-shard calls: `n` bare shards (no
/// configuration, no listeners), each on a thread of its own with a ring
/// built as shoal builds them, joined by a mesh. `body` runs on shard 0;
/// when it returns, every shard stops and its output is returned.
pub fn with_shards<T, F, Fut>(n: usize, body: F) -> T
where
    T: Send + 'static,
    F: FnOnce(Rc<Shard>) -> Fut + Send + 'static,
    Fut: Future<Output = T> + 'static,
{
    let (ends, senders) = super::mesh::build(n.max(1));
    let mut threads = Vec::new();
    let mut body = Some(body);
    for (id, end) in ends.into_iter().enumerate() {
        let body = if id == 0 { body.take() } else { None };
        let senders = senders.clone();
        threads.push(std::thread::spawn(move || {
            let (mut rt, _) = super::ring::build(256).expect("a runtime");
            rt.block_on(async move {
                let shard = Shard::new(id, n);
                shard.start_mesh(Rc::new(end));
                match body {
                    Some(body) => {
                        let out = body(shard.clone()).await;
                        for s in &senders {
                            let _ = s.send(ShardMsg::Shutdown);
                        }
                        Some(out)
                    }
                    None => {
                        shard.shutdown.wait().await;
                        None
                    }
                }
            })
        }));
    }
    let mut out = None;
    for t in threads {
        if let Some(o) = t.join().expect("a shard thread panicked") {
            out = Some(o);
        }
    }
    out.expect("shard 0 runs the body")
}
