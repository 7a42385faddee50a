//! Traffic shaping (H1, H2): limits for the whole process, not per shard,
//! so a class configured at a rate gives that rate on 1 shard or 64.
//!
//! - [`bandwidth`]: bandwidth classes, responses sent at a class's pace.
//! - [`rate`]: rate classes, a queue of requests released evenly.
//! - [`module`]: a virtual server's `rate_class`, as a module of its
//!   HTTP stack.

pub mod bandwidth;
pub mod module;
pub mod rate;
