//! A tee: a body handed to a second consumer (a cache fill, a mirror)
//! while it streams to the client, under one rule: the consumer never
//! slows the client. The producer side ([`Tee::offer`]) never waits; it
//! queues a copy of each piece for the consumer, and when the consumer has
//! fallen more than the tee's `limit` bytes behind, the consumer is cut
//! off: its queue is dropped, it reads [`TeeItem::CutOff`], and later
//! pieces are not copied at all. The client's stream goes on untouched.
//!
//! Shard-local (`Rc`): producer and consumer run on the same shard. A
//! consumer elsewhere (a cache partition on another shard) takes the
//! pieces as `Bytes` and forwards them itself, copy-free.

use bytes::Bytes;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::poll_fn;
use std::rc::Rc;
use std::task::{Poll, Waker};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Open,
    /// The producer finished the body: the consumer reads what is queued,
    /// then `End`.
    Finished,
    /// The consumer fell too far behind.
    CutOff,
    /// The producer went away before the end of the body.
    Aborted,
}

struct Shared {
    queue: RefCell<VecDeque<Bytes>>,
    queued: Cell<usize>,
    limit: usize,
    state: Cell<State>,
    /// The consumer has gone: nothing is copied any more.
    reader_gone: Cell<bool>,
    waker: Cell<Option<Waker>>,
}

impl Shared {
    fn wake(&self) {
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }
}

/// What the consumer reads next.
#[derive(Debug, PartialEq, Eq)]
pub enum TeeItem {
    Chunk(Bytes),
    /// The whole body has been read.
    End,
    /// The consumer was cut off for falling more than `limit` bytes behind.
    CutOff,
    /// The body did not complete (the exchange failed or was abandoned).
    Aborted,
}

/// The producer's end.
pub struct Tee {
    shared: Rc<Shared>,
}

/// The consumer's end.
pub struct TeeReader {
    shared: Rc<Shared>,
}

/// A tee that lets its consumer fall at most `limit` bytes behind.
pub fn tee(limit: usize) -> (Tee, TeeReader) {
    let shared = Rc::new(Shared {
        queue: RefCell::new(VecDeque::new()),
        queued: Cell::new(0),
        limit,
        state: Cell::new(State::Open),
        reader_gone: Cell::new(false),
        waker: Cell::new(None),
    });
    (Tee { shared: shared.clone() }, TeeReader { shared })
}

impl Tee {
    /// Offer the next piece of the body: copied for the consumer, unless
    /// that would put it more than `limit` bytes behind (then it is cut
    /// off). Never waits. Returns whether the consumer is still attached.
    pub fn offer(&self, data: &[u8]) -> bool {
        let s = &*self.shared;
        if s.state.get() != State::Open || s.reader_gone.get() {
            return false;
        }
        if data.is_empty() {
            return true;
        }
        if s.queued.get() + data.len() > s.limit {
            s.queue.borrow_mut().clear();
            s.queued.set(0);
            s.state.set(State::CutOff);
            s.wake();
            return false;
        }
        s.queue.borrow_mut().push_back(Bytes::copy_from_slice(data));
        s.queued.set(s.queued.get() + data.len());
        s.wake();
        true
    }

    /// The body is complete.
    pub fn finish(self) {
        if self.shared.state.get() == State::Open {
            self.shared.state.set(State::Finished);
            self.shared.wake();
        }
    }

    /// Whether the consumer was cut off.
    pub fn is_cut_off(&self) -> bool {
        self.shared.state.get() == State::CutOff
    }
}

impl Drop for Tee {
    fn drop(&mut self) {
        if self.shared.state.get() == State::Open {
            self.shared.state.set(State::Aborted);
            self.shared.wake();
        }
    }
}

impl TeeReader {
    /// The next piece, or how the body ended for this consumer.
    pub async fn next(&self) -> TeeItem {
        poll_fn(|cx| {
            let s = &*self.shared;
            if let Some(b) = s.queue.borrow_mut().pop_front() {
                s.queued.set(s.queued.get() - b.len());
                return Poll::Ready(TeeItem::Chunk(b));
            }
            match s.state.get() {
                State::Open => {
                    s.waker.set(Some(cx.waker().clone()));
                    Poll::Pending
                }
                State::Finished => Poll::Ready(TeeItem::End),
                State::CutOff => Poll::Ready(TeeItem::CutOff),
                State::Aborted => Poll::Ready(TeeItem::Aborted),
            }
        })
        .await
    }

    /// Bytes queued and not yet read.
    pub fn behind(&self) -> usize {
        self.shared.queued.get()
    }
}

impl Drop for TeeReader {
    fn drop(&mut self) {
        self.shared.reader_gone.set(true);
        self.shared.queue.borrow_mut().clear();
        self.shared.queued.set(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        monoio::RuntimeBuilder::<monoio::LegacyDriver>::new().build().unwrap().block_on(f)
    }

    #[test]
    fn consumer_reads_everything_then_end() {
        let (t, r) = tee(10);
        assert!(t.offer(b"abc"));
        assert!(t.offer(b"defg"));
        t.finish();
        block_on(async {
            assert_eq!(r.next().await, TeeItem::Chunk(Bytes::from_static(b"abc")));
            assert_eq!(r.next().await, TeeItem::Chunk(Bytes::from_static(b"defg")));
            assert_eq!(r.next().await, TeeItem::End);
        });
    }

    /// A consumer that does not read is cut off once `limit` bytes are
    /// waiting for it, and the producer never blocks.
    #[test]
    fn stalled_consumer_is_cut_off() {
        let (t, r) = tee(8);
        assert!(t.offer(b"12345"));
        assert!(!t.offer(b"6789"), "9 bytes behind > 8: cut off");
        assert!(t.is_cut_off());
        assert!(!t.offer(b"more"), "nothing is copied after the cut");
        assert_eq!(r.behind(), 0, "the queue was dropped");
        block_on(async { assert_eq!(r.next().await, TeeItem::CutOff) });
    }

    #[test]
    fn producer_gone_is_aborted_and_reader_gone_stops_copies() {
        let (t, r) = tee(100);
        assert!(t.offer(b"x"));
        drop(t);
        block_on(async {
            assert_eq!(r.next().await, TeeItem::Chunk(Bytes::from_static(b"x")));
            assert_eq!(r.next().await, TeeItem::Aborted);
        });
        let (t, r) = tee(100);
        drop(r);
        assert!(!t.offer(b"y"));
    }
}
