//! Protocol handlers: what happens to a connection between accept and close.

pub mod generic;
pub mod passthrough;
pub mod persistent;
pub mod relay;
pub mod responder;
