//! The per-shard accept loop of one listener: honours the virtual server's
//! connection limit by pausing accepts (new connections wait in the kernel
//! backlog, as HAProxy does) and stops at shutdown; and the task life of a
//! connection, including parking idle HTTP keepalive connections.

use crate::config::Protocol;
use crate::net::stream::Split;
use crate::proxy::pipeline::Parked;
use crate::runtime::shard::{ConnGuard, ListenKey, Shard, ShardView};
use monoio::net::{TcpListener, TcpStream};
use std::net::SocketAddr;
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
                    refuse_client(&view, vs, stream, peer);
                    continue;
                };
                spawn_connection(view, vs, stream, peer, guard);
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

/// A client over its `max_connections_per_client`: HTTP gets a 429 with
/// `Connection: close`, other protocols a plain close.
fn refuse_client(view: &Rc<ShardView>, vs: usize, mut stream: monoio::net::TcpStream, peer: std::net::SocketAddr) {
    let cfg = &view.config.virtual_servers[vs];
    log::info!("virtual server {}: client {peer}: refused: max_connections_per_client reached", cfg.name);
    if cfg.protocol == Protocol::Http && cfg.tls.is_none() {
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

/// Serve one client connection in a task of its own: TLS termination
/// first where the virtual server has it, then its protocol. An HTTP
/// connection that idles between requests comes back parked and waits in
/// [`park`]; `resumed` is such a connection coming back.
fn spawn_connection(view: Rc<ShardView>, vs: usize, stream: TcpStream, peer: SocketAddr, guard: ConnGuard) {
    spawn_served(view, vs, stream, peer, guard, false)
}

fn spawn_served(view: Rc<ShardView>, vs: usize, stream: TcpStream, peer: SocketAddr, guard: ConnGuard, resumed: bool) {
    monoio::spawn(async move {
        if !resumed {
            let _ = stream.set_nodelay(true);
        }
        let local = stream.local_addr().unwrap_or(peer);
        let (protocol, name) = {
            let cfg = &view.config.virtual_servers[vs];
            (cfg.protocol, cfg.name.clone())
        };
        if protocol == Protocol::SslPassthrough {
            crate::proto::passthrough::serve(&view, vs, stream, peer, local).await;
            drop(guard);
            return;
        }
        let cfg = &view.config.virtual_servers[vs];
        let conn = match &cfg.tls {
            None => Split::tcp(stream),
            Some(tls) => {
                // The handshake gets the time a request head would.
                let limit =
                    if protocol == Protocol::Http { cfg.http.header_read_timeout } else { cfg.client_idle_timeout };
                match accept_tls(&tls.acceptor, stream, limit).await {
                    Ok(s) => Split::tls(s),
                    Err(e) => {
                        log::info!("virtual server {name}: client {peer}: TLS handshake failed: {e}");
                        view.vs_stats(vs).error(crate::stats::VsError::TlsHandshake);
                        drop(guard);
                        return;
                    }
                }
            }
        };
        if protocol == Protocol::Http {
            // The connection owns its generation from here (and moves on
            // from it between requests).
            if let Some(parked) = crate::proxy::serve(view, vs, conn, peer, local).await {
                // A new, small task: this one's memory (sized for a whole
                // request) is freed when it returns.
                monoio::spawn(park(parked, peer, guard));
            }
            return;
        }
        crate::proto::generic::serve(&view, vs, conn, peer, local).await;
        drop(guard);
    });
}

async fn accept_tls(
    acceptor: &crate::tls::server::Acceptor,
    stream: TcpStream,
    limit: Duration,
) -> std::io::Result<crate::tls::stream::TlsStream> {
    let conn = rustls::ServerConnection::new(acceptor.config.clone()).map_err(std::io::Error::other)?;
    match monoio::time::timeout(limit, crate::tls::stream::TlsStream::handshake(stream, conn)).await {
        Ok(r) => r,
        Err(_) => Err(std::io::Error::new(std::io::ErrorKind::TimedOut, format!("not complete within {limit:?}"))),
    }
}

/// A parked keepalive connection: only its socket, a readiness poll and a
/// coarse timer, until the client sends its next request (then it is
/// served again), closes, or idles out (to the second), or shoal stops.
async fn park(parked: Parked, peer: SocketAddr, guard: ConnGuard) {
    let Parked { stream, keepalive_left, view, vs } = parked;
    let deadline = std::time::Instant::now() + keepalive_left;
    let ready = monoio::select! {
        r = stream.readable(false) => r.is_ok(),
        _ = view.shard.coarse.sleep_until(deadline) => false,
        _ = view.shard.shutdown.wait() => false,
    };
    if !ready {
        return;
    }
    // The next request runs on the current generation. If its virtual
    // server is gone or changed, the request the client already sent is
    // still answered, on the old one, with `Connection: close`.
    let (view, vs) = view.follow(vs).unwrap_or((view, vs));
    spawn_served(view, vs, stream, peer, guard, true);
}
