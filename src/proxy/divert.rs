//! A node body taken by a module ([`super::module::Verdict::Divert`]):
//! drained into the module's sink at the node's pace, in a task of its own,
//! while the client is answered from elsewhere. The node connection goes
//! back to its pool when the body ended cleanly, as after any response.

use super::body::{self, BodyOpts};
use super::module::{BodyFlow, BodySink};
use crate::http::Framing;
use crate::net::stream::ConnWrite;
use crate::pool::keepalive::NodeConn;
use crate::pool::{NodeLease, ShardPool};
use std::rc::Rc;

/// The node connection and what to do with it afterwards.
pub(super) struct Drain {
    pub nc: NodeConn,
    pub lease: NodeLease,
    pub pool: Rc<ShardPool>,
    pub node: usize,
    pub framing: Framing,
    pub opts: BodyOpts<'static>,
    /// The connection may serve another request after this body.
    pub reusable: bool,
    /// The read buffer an idle connection keeps.
    pub idle_buffer: usize,
}

/// Drain the body into `sink` (spawned by the driver).
pub(super) async fn drain(mut d: Drain, mut sink: Box<dyn BodySink>) {
    let mut see = |data: &[u8]| match sink.data(data) {
        Ok(()) => BodyFlow::Continue,
        Err(_) => BodyFlow::Abort("the module took no more of the body"),
    };
    let result = body::forward(&mut d.nc.r, &mut ConnWrite::Null, d.framing, &d.opts, Some(&mut see)).await;
    match result {
        Ok(_) => {
            sink.end();
            let node = &d.pool.nodes[d.node];
            if d.reusable && d.nc.r.data().is_empty() && node.keeps_idle.get() {
                d.nc.r.shrink_idle(d.idle_buffer);
                node.idle.put(d.nc, d.pool.cfg.max_idle_per_node);
            }
        }
        Err(body::BodyError::Filter(why)) => log::debug!("diverted body stopped: {why}"),
        Err(e) => {
            log::info!("node {} failed while its body was being stored: {e:?}", d.pool.nodes[d.node].name);
            d.pool.record_failure(d.node, "the response body did not complete");
        }
    }
    drop(d.lease);
}
