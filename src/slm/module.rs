//! Service level timing as a module (docs/phases.md), last in the stack
//! so its `response` hook is the first to see a node's response: a request
//! with a class (its virtual server's `service_level`, or one a rule set
//! with `connection.setServiceLevelClass`) is timed from the arrival of
//! its head to the node's response head. A request that got no node
//! response is counted only if it had already run past the target (as
//! non-conforming); one that ended sooner never completed and is left
//! out. Answers shoal made itself (cache hits, rule answers) are not
//! timed: they measure no node.

use crate::proxy::module::{Module, Step, Verdict};
use crate::proxy::txn::Txn;
use std::time::Instant;

pub struct SlmModule;

#[derive(Default)]
pub struct SlmCtx {
    timed: bool,
}

impl Module for SlmModule {
    type Ctx = SlmCtx;

    fn name(&self) -> &'static str {
        "service_level"
    }

    fn response<'a>(&'a self, tx: &'a mut Txn, ctx: &'a mut SlmCtx) -> Step<'a, Verdict> {
        if let Some(class) = tx.service_level.and_then(|i| tx.view.slm.get(i)) {
            let now = Instant::now();
            class.record(now.saturating_duration_since(tx.started), now);
            ctx.timed = true;
        }
        Step::Ready(Verdict::Accept)
    }

    fn log(&self, tx: &Txn, ctx: &mut SlmCtx) {
        if ctx.timed || tx.source == crate::proxy::module::ResponseSource::Node {
            return;
        }
        let Some(class) = tx.service_level.and_then(|i| tx.view.slm.get(i)) else { return };
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(tx.started);
        if tx.error.is_some() && elapsed > class.cfg.response_time {
            class.record(elapsed, now);
        }
    }
}
