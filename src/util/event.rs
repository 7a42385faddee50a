//! `Event`: a shard-local "something changed" notification. Waiters re-check
//! their own condition after waking, so one primitive serves the shutdown
//! flag, connection-limit slots and the mesh publisher.
//!
//! Usage: `loop { if cond() { break } let l = ev.listen(); if cond() { break } l.await }`
//! — a notification between the check and the await is not lost, because
//! `listen()` records the generation before the second check.
//!
//! Each pending `Listen` holds one slot in a slab and gives it back when it
//! is dropped, so the waiter table is bounded by the number of live
//! listeners. (A `Vec` deduplicated with `Waker::will_wake` is not: a
//! keepalive connection listens on the shutdown flag once per request, and
//! the runtime's wakers do not compare equal across polls, so such a list
//! grew by one entry per request and every poll scanned all of it.)

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use slab::Slab;

#[derive(Default)]
pub struct Event {
    generation: Cell<u64>,
    wakers: RefCell<Slab<Waker>>,
}

impl Event {
    pub fn new() -> Self {
        Self::default()
    }

    /// Wake every current listener.
    pub fn notify_all(&self) {
        self.generation.set(self.generation.get() + 1);
        let mut wakers = std::mem::take(&mut *self.wakers.borrow_mut());
        for w in wakers.drain() {
            w.wake();
        }
        // Keep the table's capacity: the usual waiter re-registers at once.
        let mut table = self.wakers.borrow_mut();
        if table.is_empty() {
            *table = wakers;
        }
    }

    /// A future that completes at the next `notify_all` after this call.
    pub fn listen(&self) -> Listen<'_> {
        Listen { event: self, generation: self.generation.get(), slot: None }
    }

    /// Listeners currently registered (for tests).
    #[cfg(test)]
    fn waiting(&self) -> usize {
        self.wakers.borrow().len()
    }
}

pub struct Listen<'a> {
    event: &'a Event,
    generation: u64,
    /// This listener's slot in `event.wakers`, valid while the generation
    /// is unchanged (`notify_all` empties the table).
    slot: Option<usize>,
}

impl Future for Listen<'_> {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.event.generation.get() != self.generation {
            self.slot = None;
            return Poll::Ready(());
        }
        let mut wakers = self.event.wakers.borrow_mut();
        match self.slot {
            Some(k) => {
                if !wakers[k].will_wake(cx.waker()) {
                    wakers[k] = cx.waker().clone();
                }
            }
            None => {
                let k = wakers.insert(cx.waker().clone());
                drop(wakers);
                self.slot = Some(k);
            }
        }
        Poll::Pending
    }
}

impl Drop for Listen<'_> {
    fn drop(&mut self) {
        if let Some(k) = self.slot {
            if self.event.generation.get() == self.generation {
                self.event.wakers.borrow_mut().remove(k);
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A listener polled and dropped over and over (a keepalive connection
    /// waiting on the shutdown flag once per request) leaves nothing behind.
    #[test]
    fn dropped_listeners_free_their_slots() {
        let ev = Event::new();
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        for _ in 0..1000 {
            let mut l = Box::pin(ev.listen());
            assert!(l.as_mut().poll(&mut cx).is_pending());
            assert!(l.as_mut().poll(&mut cx).is_pending());
            assert_eq!(ev.waiting(), 1);
        }
        assert_eq!(ev.waiting(), 0);
        let mut a = Box::pin(ev.listen());
        let mut b = Box::pin(ev.listen());
        assert!(a.as_mut().poll(&mut cx).is_pending());
        assert!(b.as_mut().poll(&mut cx).is_pending());
        ev.notify_all();
        assert_eq!(ev.waiting(), 0);
        // A listener registered after the notification must not be removed
        // by an older listener's drop (its slot number may be reused).
        let mut c = Box::pin(ev.listen());
        assert!(c.as_mut().poll(&mut cx).is_pending());
        drop(a);
        assert_eq!(ev.waiting(), 1);
        assert!(b.as_mut().poll(&mut cx).is_ready());
        drop(b);
        assert_eq!(ev.waiting(), 1);
        drop(c);
        assert_eq!(ev.waiting(), 0);
    }
}
