//! A node body taken by a module ([`super::module::Verdict::Divert`]):
//! drained into the module's sink at the node's pace, in a task of its own,
//! while the client is answered from elsewhere. The node connection goes
//! back to its pool when the body ended cleanly, as after any response.

use super::body::{self, BodyOpts};
use super::module::{BodyFlow, BodySink, BodyTransform};
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

/// Run `data` (a piece of the payload; `end`: the last) through
/// `transforms` into `sink`.
fn pass(
    transforms: &mut [Box<dyn BodyTransform>],
    piece: &mut Vec<u8>,
    data: &[u8],
    end: bool,
    sink: &mut dyn BodySink,
) -> BodyFlow {
    let out = if transforms.is_empty() {
        data
    } else {
        piece.clear();
        piece.extend_from_slice(data);
        for t in transforms.iter_mut() {
            match t.transform(piece, end) {
                BodyFlow::Continue => {}
                other => return other,
            }
        }
        &piece[..]
    };
    if out.is_empty() {
        return BodyFlow::Continue;
    }
    match sink.data(out) {
        Ok(()) => BodyFlow::Continue,
        Err(_) => BodyFlow::Abort("the module took no more of the body"),
    }
}

/// The body has ended: the transforms' last output, then the sink's end.
pub(super) fn finish(transforms: &mut [Box<dyn BodyTransform>], sink: &mut dyn BodySink) -> BodyFlow {
    let flow =
        if transforms.is_empty() { BodyFlow::Continue } else { pass(transforms, &mut Vec::new(), &[], true, sink) };
    if matches!(flow, BodyFlow::Continue) {
        sink.end();
    }
    flow
}

/// Drain the body through `transforms` (the body filters that handed
/// their work over) into `sink` (spawned by the driver).
pub(super) async fn drain(mut d: Drain, mut transforms: Vec<Box<dyn BodyTransform>>, mut sink: Box<dyn BodySink>) {
    let mut piece = Vec::new();
    let mut see = |data: &[u8]| pass(&mut transforms, &mut piece, data, false, sink.as_mut());
    let result = body::forward(&mut d.nc.r, &mut ConnWrite::Null, d.framing, &d.opts, Some(&mut see)).await;
    let result = match result {
        Ok(n) => match finish(&mut transforms, sink.as_mut()) {
            BodyFlow::Continue => Ok(n),
            BodyFlow::Abort(why) => Err(body::BodyError::Filter(why)),
            BodyFlow::Respond(_) => Err(body::BodyError::Filter("a transform answered")),
        },
        Err(e) => Err(e),
    };
    match result {
        Ok(_) => {
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
