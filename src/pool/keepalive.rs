//! Per-shard keepalive pools of idle node connections (C4): most recently
//! used first (its TCP state is warmest), at most `max_idle_per_node` per
//! node, none older than `node_keepalive_timeout`, and each checked with a
//! non-blocking peek before reuse, so a connection the node closed while
//! idle is discarded instead of failing a request.

use crate::net::peek::idle_connection_usable;
use crate::net::reader::Reader;
use crate::net::stream::{ConnRead, ConnWrite, Split};
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

/// An HTTP connection to a node.
pub struct NodeConn {
    pub r: Reader<ConnRead>,
    pub w: ConnWrite,
    pub fd: RawFd,
    /// Taken from the keepalive pool (not freshly connected).
    pub reused: bool,
}

impl NodeConn {
    /// A freshly connected node connection with a read buffer of `cap`.
    pub fn new(conn: Split, cap: usize) -> NodeConn {
        NodeConn { r: Reader::new(conn.r, Vec::with_capacity(cap)), w: conn.w, fd: conn.fd, reused: false }
    }
}

#[derive(Default)]
pub struct IdleConns {
    idle: RefCell<VecDeque<(NodeConn, Instant)>>,
    /// Connections opened to this node by this shard.
    pub opened: Cell<u64>,
    /// Requests sent on a reused connection.
    pub reused: Cell<u64>,
}

impl IdleConns {
    /// The freshest usable idle connection, if any. A connection idle
    /// longer than `check_after` is first checked with a non-blocking peek
    /// (a system call): the caller passes `Duration::ZERO` when a request
    /// could not be retried on a connection found closed, and a longer
    /// time when it can (a node rarely closes a connection it just used).
    pub fn take(&self, max_age: Duration, check_after: Duration) -> Option<NodeConn> {
        let mut idle = self.idle.borrow_mut();
        while let Some((mut c, since)) = idle.pop_back() {
            let age = since.elapsed();
            if age > max_age {
                // Everything older is older still.
                idle.clear();
                return None;
            }
            if age < check_after || idle_connection_usable(c.fd) {
                c.reused = true;
                self.reused.set(self.reused.get() + 1);
                return Some(c);
            }
        }
        None
    }

    /// Keep `c` for reuse; beyond `max` the oldest is closed.
    pub fn put(&self, c: NodeConn, max: usize) {
        if max == 0 {
            return;
        }
        let mut idle = self.idle.borrow_mut();
        if idle.len() >= max {
            idle.pop_front();
        }
        idle.push_back((c, Instant::now()));
    }

    pub fn clear(&self) {
        self.idle.borrow_mut().clear();
    }

    pub fn len(&self) -> usize {
        self.idle.borrow().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
