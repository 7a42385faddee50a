//! Protocol handlers: what happens to a connection between accept and close.

pub mod connection;
pub mod generic;
pub mod passthrough;
pub mod persistent;
pub mod relay;
pub mod responder;

/// Add a byte stream that ended cleanly to its virtual server's and node's
/// statistics (`up`: client to node, `down`: node to client).
pub(crate) fn count_stream(
    view: &crate::runtime::shard::ShardView,
    vs: usize,
    node: &crate::pool::ShardNode,
    up: u64,
    down: u64,
) {
    view.vs_stats(vs).bytes(up, down);
    node.stats.request(up, down);
}
