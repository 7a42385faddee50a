//! The access log as a module (I3): in the `log` phase, one line per
//! request into the shard's bounded line buffer for the virtual server's
//! log, formatted from the request as it is at the end, with nothing
//! copied while it runs: the request head keeps what was received.

use crate::log::access::{Headers, LineBuffer, Record};
use crate::proxy::module::Module;
use crate::proxy::txn::Txn;
use std::cell::RefCell;
use std::rc::Rc;
use std::time::SystemTime;

pub struct AccessLog {
    /// The shard's line buffer of the virtual server's log file.
    pub line: Rc<RefCell<LineBuffer>>,
}

impl Module for AccessLog {
    type Ctx = ();

    fn name(&self) -> &'static str {
        "access_log"
    }

    fn log(&self, tx: &Txn, _: &mut ()) {
        let vs = tx.vs_config();
        let Some(al) = vs.http.access_log.as_ref() else { return };
        let duration = tx.started.elapsed();
        let explicit = tx.explicit_addr.map(|a| a.to_string());
        let req = &tx.request;
        let answered = tx.source != crate::proxy::module::ResponseSource::None;
        let rec = Record {
            client: tx.client(),
            // One clock read: the start is derived from the duration.
            time: SystemTime::now() - duration,
            duration,
            request_line: req.request_line(),
            http2: req.version == crate::http::Version::Http2,
            method: req.method(),
            target: req.received_target(),
            status: tx.status,
            bytes: tx.bytes_out,
            node: tx.node_name(tx.node).or(explicit.as_deref()),
            required_node: tx.node_name(tx.required_node),
            favoured_node: tx.node_name(tx.favoured_node),
            virtual_server: &vs.name,
            pool: tx.view.pools.get(tx.pool).map_or("", |p| p.cfg.name.as_str()),
            error: tx.error.map(|e| e.message()),
            request_headers: Headers::Received(&req.fields),
            response_headers: if answered { Headers::Current(&tx.response.fields) } else { Headers::List(&[]) },
        };
        self.line.borrow_mut().push_with(|out| al.format.write(&rec, out));
    }
}
