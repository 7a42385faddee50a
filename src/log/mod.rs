//! Logs other than the process log: access logs ([`access`] formats and
//! buffers lines per shard; [`writer`] writes them off the shards).

pub mod access;
pub mod writer;
