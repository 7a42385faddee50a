//! Listening sockets and the per-shard accept loop.

pub mod accept;
pub mod listener;
