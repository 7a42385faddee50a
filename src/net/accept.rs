//! The per-shard accept loop of one listener: honours the virtual server's
//! connection limit by pausing accepts (new connections wait in the kernel
//! backlog, as HAProxy does) and stops at shutdown.

use crate::runtime::shard::Shard;
use monoio::net::TcpListener;
use std::rc::Rc;
use std::time::Duration;

pub async fn accept_loop(shard: Rc<Shard>, vs: usize, listener: TcpListener) {
    let name = &shard.config.virtual_servers[vs].name;
    let mut paused_logged = false;
    loop {
        // Wait for a free slot (or shutdown).
        while !shard.has_slot(vs) && !shard.shutdown.is_set() {
            if !paused_logged {
                log::warn!("virtual server {name}: max_connections reached on shard {}; pausing accepts", shard.id);
                paused_logged = true;
            }
            let l = shard.connection_closed();
            if shard.has_slot(vs) {
                break;
            }
            monoio::select! {
                _ = l => {},
                _ = shard.shutdown.wait() => {},
            }
        }
        paused_logged = false;
        if shard.shutdown.is_set() {
            return;
        }
        let accepted = monoio::select! {
            r = listener.accept() => r,
            _ = shard.shutdown.wait() => return,
        };
        match accepted {
            Ok((stream, peer)) => {
                let Some(guard) = shard.track(vs, peer.ip()) else {
                    refuse_client(&shard, vs, stream, peer);
                    continue;
                };
                let shard = shard.clone();
                monoio::spawn(async move {
                    if shard.config.virtual_servers[vs].protocol == crate::config::Protocol::Http {
                        crate::proxy::serve(&shard, vs, stream, peer).await;
                    } else {
                        crate::proto::generic::serve(&shard, vs, stream, peer).await;
                    }
                    drop(guard);
                });
            }
            Err(e) => {
                // EMFILE/ENFILE/ENOBUFS: back off instead of spinning.
                log::warn!("virtual server {name}: accept failed on shard {}: {e}", shard.id);
                monoio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// A client over its `max_connections_per_client`: HTTP gets a 429 with
/// `Connection: close`, other protocols a plain close.
fn refuse_client(shard: &Rc<Shard>, vs: usize, mut stream: monoio::net::TcpStream, peer: std::net::SocketAddr) {
    let cfg = &shard.config.virtual_servers[vs];
    log::info!("virtual server {}: client {peer}: refused: max_connections_per_client reached", cfg.name);
    if cfg.protocol == crate::config::Protocol::Http {
        monoio::spawn(async move {
            use monoio::io::AsyncWriteRentExt;
            let mut out = Vec::new();
            crate::http::rewrite::write_simple(
                429,
                "text/plain",
                b"429 Too Many Requests: too many connections from your address\n",
                true,
                &mut out,
            );
            let _ = stream.write_all(out).await;
        });
    }
}
