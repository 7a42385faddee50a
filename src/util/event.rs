//! `Event`: a shard-local "something changed" notification. Waiters re-check
//! their own condition after waking, so one primitive serves the shutdown
//! flag, connection-limit slots and the mesh publisher.
//!
//! Usage: `loop { if cond() { break } let l = ev.listen(); if cond() { break } l.await }`
//! — a notification between the check and the await is not lost, because
//! `listen()` records the generation before the second check.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

#[derive(Default)]
pub struct Event {
    generation: Cell<u64>,
    wakers: RefCell<Vec<Waker>>,
}

impl Event {
    pub fn new() -> Self {
        Self::default()
    }

    /// Wake every current listener.
    pub fn notify_all(&self) {
        self.generation.set(self.generation.get() + 1);
        let wakers = std::mem::take(&mut *self.wakers.borrow_mut());
        for w in wakers {
            w.wake();
        }
    }

    /// A future that completes at the next `notify_all` after this call.
    pub fn listen(&self) -> Listen<'_> {
        Listen { event: self, generation: self.generation.get() }
    }
}

pub struct Listen<'a> {
    event: &'a Event,
    generation: u64,
}

impl Future for Listen<'_> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.event.generation.get() != self.generation {
            return Poll::Ready(());
        }
        let mut wakers = self.event.wakers.borrow_mut();
        if !wakers.iter().any(|w| w.will_wake(cx.waker())) {
            wakers.push(cx.waker().clone());
        }
        Poll::Pending
    }
}

/// A one-way flag (e.g. "shutting down") with waiters.
#[derive(Default)]
pub struct Flag {
    set: Cell<bool>,
    event: Event,
}

impl Flag {
    pub fn set(&self) {
        if !self.set.replace(true) {
            self.event.notify_all();
        }
    }

    pub fn is_set(&self) -> bool {
        self.set.get()
    }

    /// Completes once the flag is set.
    pub async fn wait(&self) {
        loop {
            if self.set.get() {
                return;
            }
            let l = self.event.listen();
            if self.set.get() {
                return;
            }
            l.await;
        }
    }
}
