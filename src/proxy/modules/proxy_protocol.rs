//! The PROXY protocol to nodes as a module (B9): for a pool that sends
//! it, the `node_request` phase renders the header naming the client into
//! [`Txn::preamble`]; the driver then gives the request a fresh node
//! connection of its own that starts with it (a header names one client,
//! so such connections are never pooled).

use crate::proxy::module::Module;
use crate::proxy::txn::Txn;

pub struct ProxyProtocol;

impl Module for ProxyProtocol {
    type Ctx = ();

    fn name(&self) -> &'static str {
        "proxy_protocol"
    }

    fn node_request(&self, tx: &mut Txn, _: &mut ()) {
        if tx.explicit_addr.is_some() {
            return;
        }
        if let Some(version) = tx.view.pools[tx.pool].cfg.proxy_protocol {
            crate::net::proxy_protocol::encode(version, tx.conn.client, tx.conn.local, &mut tx.preamble);
        }
    }
}
