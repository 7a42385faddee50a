//! Response compression (H4): gzip, brotli and zstd, for clients that
//! accept them (`Accept-Encoding`, q-values honoured), by content type and
//! size, streamed piece by piece.
//!
//! - [`encoder`]: one body's encoder, a [`crate::proxy::module::BodyTransform`].
//! - [`module`]: the module of a virtual server's HTTP stack that decides,
//!   edits the head and runs the encoder (or hands it to the cache, which
//!   then stores the compressed variant).
//!
//! Negotiation and the canonical `Accept-Encoding` the cache varies on
//! are in [`crate::http::coding`].

pub mod encoder;
pub mod module;
