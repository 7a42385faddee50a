//! Small shard-local building blocks with no policy in them.

pub mod clock;
pub mod coarse;
pub mod event;
