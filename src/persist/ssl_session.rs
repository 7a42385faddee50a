//! SSL-session-ID persistence (E1, with B6 passthrough): a TLS 1.2 client
//! resuming a session offers the session ID its node issued, and only that
//! node can resume it, so shoal remembers which node issued each ID (read
//! from the node's ServerHello) and sends resumptions there.
//!
//! TLS 1.3 has no such ID: its ServerHello echoes whatever the client sent
//! (a random value in compatibility mode), and resumption uses encrypted
//! tickets shoal cannot see. Nothing is recorded for TLS 1.3, and those
//! connections are balanced normally (docs/tls.md says what to use instead).
//! Not an HTTP class: `proto::passthrough` applies it.

use super::store::Store;
use crate::tls::hello::ServerHello;

/// Remember the session the node's ServerHello issued or resumed.
pub fn learn(store: &Store, pool: u32, hello: &ServerHello, node: u32) {
    if !hello.tls13 && !hello.session_id.is_empty() {
        store.record(pool, &hello.session_id, node);
    }
}
