//! UDP virtual servers (B13): datagrams relayed between clients and nodes
//! in flows. A flow is a client address (IP and port) on one shard: the
//! kernel's SO_REUSEPORT hash sends all of a client address's datagrams to
//! the same shard's socket, so a flow lives on one shard, in its table, with
//! no cross-shard state. Its first datagram picks a node (the pool's
//! persistence, then its algorithm) and opens a socket connected to it;
//! the node's answers come back from the virtual server's address.
//!
//! - `one_response` (DNS and the like): one answer per client datagram;
//!   the flow ends when each has its answer. A node that does not answer
//!   within `udp_timeout` failed (the pool's passive health counts it).
//! - `streaming`: the flow lasts until no datagram has crossed either way
//!   for `udp_timeout`.
//!
//! I/O is readiness-driven and batched: a ready socket is drained with
//! `recvmmsg` (up to [`BATCH`] datagrams a call) and a node's answers go
//! back with `sendmmsg` ([`mmsg`]). A datagram larger than
//! `udp_max_datagram`, one that finds no node or no flow slot, and one
//! that meets a full send buffer are dropped and counted (UDP has no way
//! to push back); each flow ends with an access-log line when the virtual
//! server has a log.

pub mod flow;
pub mod mmsg;

/// Datagrams read per system call.
pub const BATCH: usize = 32;

pub use flow::serve_listener;
