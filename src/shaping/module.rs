//! A virtual server's `rate_class` as a module (docs/phases.md): in the
//! `request` phase, before the rules, every request takes its place in the
//! class's queue and waits its turn; one refused (queue full, or a wait
//! longer than `max_wait`) is answered with the class's status.

use super::rate::{Admit, RateClass};
use crate::proxy::module::{Flow, Module, Step};
use crate::proxy::own::OwnResponse;
use crate::proxy::txn::Txn;
use std::sync::Arc;
use std::time::Instant;

pub struct RateModule {
    pub class: Arc<RateClass>,
}

impl Module for RateModule {
    type Ctx = ();

    fn name(&self) -> &'static str {
        "rate"
    }

    fn request<'a>(&'a self, tx: &'a mut Txn, _ctx: &'a mut ()) -> Step<'a, Flow> {
        match self.class.admit(None, Instant::now()) {
            Admit::Now => Step::Ready(Flow::Continue),
            Admit::Wait(ticket) => Step::wait(async move {
                ticket.wait().await;
                Flow::Continue
            }),
            Admit::Refused => Step::Ready(refuse(&self.class, tx, "its virtual server's")),
        }
    }
}

/// The answer to a request `class` refused (its queue full, or its wait
/// too long), logged with `whose` class it was.
pub fn refuse(class: &RateClass, tx: &Txn, whose: &str) -> Flow {
    log::info!(
        "virtual server {}: client {}: refused by {whose} rate class {} (queue full or wait over {:?})",
        tx.vs_config().name,
        tx.client(),
        class.cfg.name,
        class.cfg.max_wait
    );
    let name = &class.cfg.name;
    crate::events::emit_throttled(&crate::events::catalogue::RATE_OVERFLOW, name, || {
        crate::events::Event::new(
            &crate::events::catalogue::RATE_OVERFLOW,
            format!("rate_classes/{name}"),
            format!(
                "rate class {name} refused requests: its queue was full or their wait over {:?}",
                class.cfg.max_wait
            ),
        )
    });
    Flow::Respond(Box::new(OwnResponse::plain(class.cfg.status)))
}
