//! Listening sockets and the per-shard accept loop.

pub mod accept;
pub mod listener;
pub mod peek;
pub mod proxy_protocol;
pub mod reader;
pub mod rentbuf;
pub mod splice;
pub mod stream;
