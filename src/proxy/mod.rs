//! The HTTP/1.1 proxy (B5): the module interface ([`module`]) and the
//! built-in modules ([`modules`]), the driver that runs their phases with
//! retries ([`pipeline`]), one request's state ([`txn`]), shoal's own
//! responses ([`own`]), body streaming and filtering ([`body`]) and the
//! tee ([`tee`]). docs/phases.md describes the phases.

pub mod body;
mod divert;
pub mod module;
pub mod modules;
pub mod own;
pub mod pipeline;
pub mod tee;
#[cfg(test)]
mod tests;
pub mod txn;

use crate::net::stream::Split;
use crate::runtime::shard::ShardView;
use std::net::SocketAddr;
use std::rc::Rc;

/// Serve one accepted (or resumed) client connection of an HTTP virtual
/// server; returns it when it idles between requests, to be parked.
pub async fn serve(
    view: Rc<ShardView>,
    vs: usize,
    conn: Split,
    peer: SocketAddr,
    local: SocketAddr,
) -> Option<pipeline::Parked> {
    pipeline::run(view, vs, conn, peer, local).await
}
