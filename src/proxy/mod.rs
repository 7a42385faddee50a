//! The HTTP/1.1 proxy (B5): the per-request phases ([`phases`]), the driver
//! that runs them with retries ([`pipeline`]) and body streaming ([`body`]).

pub mod body;
pub mod persist;
pub mod phases;
pub mod pipeline;
#[cfg(test)]
mod tests;

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
    pipeline::run(&phases::Builtin, view, vs, conn, peer, local).await
}
