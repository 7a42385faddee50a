//! HTTP/2 to clients (B14): negotiated by ALPN on TLS listeners, or with
//! prior knowledge (`h2c`) on cleartext ones. The `h2` codec runs the
//! protocol ([`server`]) over shoal's own I/O adapter ([`io`]) with a flood
//! guard in front of it ([`flood`]); each stream becomes a request through
//! the same driver and modules as HTTP/1.1 ([`stream`]). Pools may speak
//! HTTP/2 to their nodes: one multiplexed connection per node and shard
//! ([`client`]), each request a stream ([`upstream`]). docs/http2.md
//! has the settings, the defences and why this codec.

pub mod client;
pub mod flood;
pub mod io;
pub mod server;
pub mod stream;
pub mod upstream;
