//! A client connection's task life, from accept to close: TLS termination
//! where the virtual server has it, then its protocol (HTTP, a generic
//! byte stream, RTSP, SSL passthrough); an HTTP keepalive connection idle
//! between requests is parked in a small task until it speaks again; a
//! client over its connection limit is refused (HTTP gets a 429).

use crate::config::Protocol;
use crate::net::stream::Split;
use crate::proxy::pipeline::Parked;
use crate::runtime::shard::{ConnGuard, ShardView};
use monoio::net::TcpStream;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

/// A client over its `max_connections_per_client`: HTTP gets a 429 with
/// `Connection: close`, other protocols a plain close.
pub fn refuse(view: &Rc<ShardView>, vs: usize, mut stream: TcpStream, peer: SocketAddr) {
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

/// Serve one accepted client connection in a task of its own: TLS
/// termination first where the virtual server has it, then its protocol.
/// An HTTP connection that idles between requests comes back parked and
/// waits in [`park`].
pub fn start(view: Rc<ShardView>, vs: usize, stream: TcpStream, peer: SocketAddr, guard: ConnGuard) {
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
        let conn = match &view.tls.acceptors[vs] {
            None => Split::tcp(stream),
            Some(tls) => {
                // The handshake gets the time a request head would.
                let limit =
                    if protocol == Protocol::Http { cfg.http.header_read_timeout } else { cfg.client_idle_timeout };
                match accept_tls(tls, stream, limit).await {
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
        if protocol == Protocol::Rtsp {
            crate::rtsp::serve::serve(&view, vs, conn, peer, local).await;
        } else {
            crate::proto::generic::serve(&view, vs, conn, peer, local).await;
        }
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
