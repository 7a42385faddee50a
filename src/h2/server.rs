//! One HTTP/2 client connection: the codec's handshake with the virtual
//! server's `[http2]` settings, then its streams, each a request in a task
//! of its own (`proxy::pipeline::run_stream`), while this task drives the
//! connection. A slow stream waits for its own window only; the others
//! go on.
//!
//! Ends: GOAWAY `NO_ERROR` (graceful: streams in flight finish) when shoal
//! stops, when a reload removes or changes the virtual server, and after
//! `idle_timeout` with no stream open; GOAWAY `ENHANCE_YOUR_CALM` when the
//! flood guard trips; the codec's own GOAWAY (with its error code) for a
//! client that breaks the protocol or the codec's limits.

use super::flood::Guard;
use super::io::Io;
use super::stream::{StreamIn, StreamOut};
use crate::net::stream::{ConnRead, ConnWrite};
use crate::proxy::txn::ConnInfo;
use crate::runtime::shard::ShardView;
use crate::stats::H2Event;
use bytes::Bytes;
use h2::Reason;
use std::cell::Cell;
use std::future::poll_fn;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// How often an idle or reconfigured connection is noticed.
const TICK: Duration = Duration::from_secs(1);
/// A graceful GOAWAY waits for the client's PING acknowledgement before
/// the final one; a closing connection with no stream left is closed
/// this long after it began closing even without it.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

enum Next<T> {
    Accept(Option<Result<T, h2::Error>>),
    Stop,
    Tick,
}

/// Streams of one connection in flight, and since when none is.
#[derive(Default)]
struct Activity {
    open: Cell<usize>,
    idle_since: Cell<Option<Instant>>,
}

/// Serve an HTTP/2 client connection on virtual server `vs` until it
/// ends. `already`: bytes of it read before (a sniffed `h2c` preface).
pub async fn serve(view: Rc<ShardView>, vs: usize, r: ConnRead, w: ConnWrite, already: Vec<u8>, info: Rc<ConnInfo>) {
    let Some(cfg) = view.config.virtual_servers[vs].http2.clone() else { return };
    let name = view.config.virtual_servers[vs].name.clone();
    let stats = || view.vs_stats(vs);
    stats().h2(H2Event::Connection);
    let guard = Guard::new(cfg.control_frames_per_second, cfg.control_frames_burst);
    let (io, handle) = Io::start(r, w, already, Some(guard));
    let mut b = h2::server::Builder::new();
    b.max_concurrent_streams(cfg.max_concurrent_streams)
        .initial_window_size(cfg.initial_window_size)
        .initial_connection_window_size(cfg.connection_window_size)
        .max_frame_size(cfg.max_frame_size)
        .max_header_list_size(cfg.max_header_list_size)
        .header_table_size(cfg.header_table_size)
        .max_pending_accept_reset_streams(cfg.max_pending_resets)
        .max_local_error_reset_streams(Some(cfg.max_error_resets))
        .max_send_buffer_size(cfg.max_send_buffer);
    let limit = view.config.virtual_servers[vs].http.header_read_timeout;
    let mut conn = match monoio::time::timeout(limit, b.handshake::<_, Bytes>(io)).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            log::info!("virtual server {name}: client {}: HTTP/2 handshake failed: {e}", info.client);
            stats().h2(H2Event::ProtocolError);
            return;
        }
        Err(_) => {
            log::info!("virtual server {name}: client {}: no HTTP/2 preface within header_read_timeout", info.client);
            return;
        }
    };
    let activity = Rc::new(Activity::default());
    activity.idle_since.set(Some(Instant::now()));
    let mut tripped = false;
    let mut closing = false;
    let mut closing_since = Instant::now();
    loop {
        let next = {
            let accept = poll_fn(|cx| {
                if !tripped {
                    if let Some(t) = handle.tripped() {
                        tripped = true;
                        log::info!(
                            "virtual server {name}: client {}: HTTP/2 control frame flood (type {:#x}): GOAWAY ENHANCE_YOUR_CALM",
                            info.client,
                            t.frame_type
                        );
                        stats().h2(H2Event::Flood);
                        conn.abrupt_shutdown(Reason::ENHANCE_YOUR_CALM);
                    }
                }
                conn.poll_accept(cx)
            });
            let stop = async {
                if closing {
                    std::future::pending::<()>().await
                }
                view.shard.shutdown.wait().await
            };
            monoio::select! {
                n = accept => Next::Accept(n),
                _ = stop => Next::Stop,
                _ = monoio::time::sleep(TICK) => Next::Tick,
            }
        };
        match next {
            Next::Accept(Some(Ok((req, respond)))) => {
                let Some((sview, svs)) = view.follow(vs) else {
                    // The virtual server changed: this stream is refused
                    // (the client may retry it) and the connection ends.
                    let mut respond = respond;
                    respond.send_reset(Reason::REFUSED_STREAM);
                    if !closing {
                        closing = true;
                        closing_since = Instant::now();
                        conn.graceful_shutdown();
                    }
                    continue;
                };
                start_stream(sview, svs, req, respond, &info, &activity, cfg.send_timeout);
            }
            Next::Accept(Some(Err(e))) => {
                if e.is_go_away() && e.reason() == Some(Reason::NO_ERROR) || e.is_io() {
                    log::debug!("virtual server {name}: client {}: HTTP/2 connection ended: {e}", info.client);
                } else if !tripped {
                    log::info!("virtual server {name}: client {}: HTTP/2 connection error: {e}", info.client);
                    stats().h2(H2Event::ProtocolError);
                }
                break;
            }
            Next::Accept(None) => break,
            Next::Stop => {
                closing = true;
                closing_since = Instant::now();
                conn.graceful_shutdown();
            }
            Next::Tick if closing => {
                if activity.open.get() == 0 && closing_since.elapsed() >= CLOSE_GRACE {
                    conn.abrupt_shutdown(Reason::NO_ERROR);
                }
            }
            Next::Tick => {
                // A tick: idle too long, or the virtual server changed.
                let idle = activity.open.get() == 0
                    && activity.idle_since.get().is_some_and(|t| t.elapsed() >= cfg.idle_timeout);
                if idle || view.follow(vs).is_none() {
                    closing = true;
                    closing_since = Instant::now();
                    conn.graceful_shutdown();
                }
            }
        }
    }
}

fn start_stream(
    view: Rc<ShardView>,
    vs: usize,
    req: http::Request<h2::RecvStream>,
    mut respond: h2::server::SendResponse<Bytes>,
    info: &Rc<ConnInfo>,
    activity: &Rc<Activity>,
    send_timeout: Duration,
) {
    let head_request = req.method() == http::Method::HEAD;
    let input = match StreamIn::new(req) {
        Ok(i) => i,
        Err(e) => {
            log::info!(
                "virtual server {}: client {}: HTTP/2 request refused: {}",
                view.config.virtual_servers[vs].name,
                info.client,
                e.0
            );
            respond.send_reset(Reason::PROTOCOL_ERROR);
            return;
        }
    };
    let max_head = view.config.virtual_servers[vs].http.max_header_size.max(8192);
    let output = StreamOut::new(respond, head_request, max_head, send_timeout);
    activity.open.set(activity.open.get() + 1);
    activity.idle_since.set(None);
    let (info, activity) = (info.clone(), activity.clone());
    monoio::spawn(async move {
        crate::proxy::pipeline::run_stream(
            view,
            vs,
            ConnRead::H2(Box::new(input)),
            ConnWrite::H2(Box::new(output)),
            info,
        )
        .await;
        let open = activity.open.get() - 1;
        activity.open.set(open);
        if open == 0 {
            activity.idle_since.set(Some(Instant::now()));
        }
    });
}
