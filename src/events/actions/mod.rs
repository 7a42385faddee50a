//! What a handler does with an event, one action per file: append it to
//! a log file ([`log`]), send it to syslog ([`syslog`]), POST it to a
//! webhook ([`webhook`]), run a program ([`program`]). Each runs on its
//! handler's own thread and may block; it says whether the event was
//! taken, refused for good, or may be taken if tried again.

pub mod log;
pub mod program;
pub mod syslog;
pub mod webhook;

use super::Event;
use crate::config::model::EventAction;

/// How a delivery went.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Done,
    /// Refused for good: the handler counts it and goes on.
    Failed(String),
    /// Not now (the receiver is away): the handler tries again later.
    Retry(String),
}

pub trait Action: Send {
    fn deliver(&mut self, ev: &Event) -> Outcome;
}

/// The action for `settings`.
pub fn build(settings: &EventAction) -> Result<Box<dyn Action>, String> {
    Ok(match settings {
        EventAction::Log { path } => Box::new(log::LogFile::new(path.clone())),
        EventAction::Syslog { target, facility } => Box::new(syslog::Syslog::new(target.clone(), *facility)?),
        EventAction::Webhook { host, port, path, timeout } => {
            Box::new(webhook::Webhook { host: host.clone(), port: *port, path: path.clone(), timeout: *timeout })
        }
        EventAction::Program { path, args, timeout } => {
            Box::new(program::Program { path: path.clone(), args: args.clone(), timeout: *timeout })
        }
    })
}
