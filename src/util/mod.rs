//! Small building blocks with no policy in them.

pub mod baton;
pub mod clock;
pub mod coarse;
pub mod event;

use std::sync::Arc;

/// The process-wide objects built for a generation's configured classes
/// (rate, bandwidth and service level classes), one per entry of
/// `configs`: an object whose settings (`cfg`) did not change is kept from
/// `prev`, with its state, and any other is made anew (`new`).
pub fn carry_over<C: PartialEq + Clone, T>(
    configs: &[C],
    prev: Option<&Arc<Vec<Arc<T>>>>,
    cfg: fn(&T) -> &C,
    new: fn(C) -> T,
) -> Arc<Vec<Arc<T>>> {
    let kept = |c: &C| prev.and_then(|p| p.iter().find(|o| cfg(o) == c).cloned());
    Arc::new(configs.iter().map(|c| kept(c).unwrap_or_else(|| Arc::new(new(c.clone())))).collect())
}
