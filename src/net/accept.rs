//! The per-shard accept loop of one listener: honours the virtual server's
//! connection limit by pausing accepts (new connections wait in the kernel
//! backlog, as HAProxy does), counts each accepted connection, and stops at
//! shutdown or when a generation drops the listener. Sockets only: what a
//! connection then becomes is `crate::proto::connection`'s.

use crate::proto::connection;
use crate::runtime::shard::{ListenKey, Shard};
use monoio::net::TcpListener;
use std::rc::Rc;
use std::time::Duration;

/// Accept on `listener`, the socket of listener `key`, for its virtual
/// server in the current generation, until shoal stops or a generation no
/// longer has the listener on this shard.
pub async fn accept_loop(shard: Rc<Shard>, key: ListenKey, listener: TcpListener) {
    let stop = shard.listener_flag(&key);
    let mut paused_logged = false;
    loop {
        let view = shard.current();
        let Some(vs) = view.listener_vs(&key) else { return };
        // Wait for a free slot (or shutdown, or a new generation).
        if !view.has_slot(vs) && !shard.shutdown.is_set() {
            if !paused_logged {
                log::warn!(
                    "virtual server {}: max_connections reached on shard {}; pausing accepts",
                    view.config.virtual_servers[vs].name,
                    shard.id
                );
                paused_logged = true;
            }
            let l = shard.connection_closed();
            if view.has_slot(vs) {
                continue;
            }
            monoio::select! {
                _ = l => {},
                _ = shard.shutdown.wait() => {},
                _ = stop.wait() => {},
                _ = shard.reconfigured.listen() => {},
            }
            if !shard.shutdown.is_set() && !stop.is_set() {
                continue;
            }
        }
        paused_logged = false;
        if shard.shutdown.is_set() || stop.is_set() {
            return;
        }
        drop(view);
        let accepted = monoio::select! {
            r = listener.accept() => r,
            _ = shard.shutdown.wait() => return,
            _ = stop.wait() => {
                log::info!("virtual server {}: shard {} stopped listening on {}", key.0, shard.id, key.1);
                return;
            }
        };
        // The connection is served on the generation current now.
        let view = shard.current();
        let Some(vs) = view.listener_vs(&key) else { return };
        match accepted {
            Ok((stream, peer)) => {
                let Some(guard) = view.track(vs, peer.ip()) else {
                    view.vs_stats(vs).error(crate::stats::VsError::Refused);
                    connection::refuse(&view, vs, stream, peer);
                    continue;
                };
                connection::start(view, vs, stream, peer, guard);
            }
            Err(e) => {
                // EMFILE/ENFILE/ENOBUFS: back off instead of spinning.
                log::warn!(
                    "virtual server {}: accept failed on shard {}: {e}",
                    view.config.virtual_servers[vs].name,
                    shard.id
                );
                monoio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}
