//! Collapsed forwarding (G8): the one request that goes to a node for a
//! key while others wait ([`Fill`]). The filling request resolves it once
//! the node's response head is judged: stored (the waiters read the object
//! while its body arrives) or released (uncacheable: each waiter goes to
//! the node itself). A filler that goes away unresolved releases it
//! ([`FillGuard`]), so no waiter is left behind.

use super::object::Object;
use std::future::poll_fn;
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};

/// What became of a fill.
#[derive(Debug, Clone)]
pub enum Outcome {
    Pending,
    Stored(Arc<Object>),
    Released,
}

/// A fill in progress for one key, shared by its owner partition, the
/// filling request and the waiters.
#[derive(Debug)]
pub struct Fill {
    state: Mutex<(Outcome, Vec<Waker>)>,
}

impl Fill {
    pub fn new() -> Arc<Fill> {
        Arc::new(Fill { state: Mutex::new((Outcome::Pending, Vec::new())) })
    }

    pub fn outcome(&self) -> Outcome {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).0.clone()
    }

    fn resolve(&self, outcome: Outcome) {
        let wakers = {
            let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
            if !matches!(s.0, Outcome::Pending) {
                return;
            }
            s.0 = outcome;
            std::mem::take(&mut s.1)
        };
        wakers.into_iter().for_each(Waker::wake);
    }

    /// Wait until resolved (the caller bounds the wait).
    pub async fn settled(&self) -> Outcome {
        poll_fn(|cx| {
            let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
            match &s.0 {
                Outcome::Pending => {
                    if !s.1.iter().any(|w| w.will_wake(cx.waker())) {
                        s.1.push(cx.waker().clone());
                    }
                    Poll::Pending
                }
                other => Poll::Ready(other.clone()),
            }
        })
        .await
    }
}

/// The filling request's hold on a fill: resolve it, or it is released
/// when dropped.
#[derive(Debug)]
pub struct FillGuard {
    fill: Option<Arc<Fill>>,
}

impl FillGuard {
    pub fn new(fill: Arc<Fill>) -> FillGuard {
        FillGuard { fill: Some(fill) }
    }

    /// The response is stored as `obj`: waiters read it.
    pub fn store(mut self, obj: Arc<Object>) {
        if let Some(f) = self.fill.take() {
            f.resolve(Outcome::Stored(obj));
        }
    }

    /// The response is not stored: waiters go to the node.
    pub fn release(mut self) {
        if let Some(f) = self.fill.take() {
            f.resolve(Outcome::Released);
        }
    }
}

impl Drop for FillGuard {
    fn drop(&mut self) {
        if let Some(f) = self.fill.take() {
            f.resolve(Outcome::Released);
        }
    }
}
