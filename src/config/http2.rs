//! A virtual server's `[http2]` checked into its runtime settings
//! ([`Http2`]), and the ALPN list it implies for a TLS listener: `h2`
//! first when HTTP/2 is on and the operator did not list protocols.

use super::model::{Http2, HttpSettings, TlsServer};
use super::raw::{self, RawVirtualServer, Size};
use super::{ConfigError, SourceFile};
use toml::Spanned;

/// RFC 9113 §6.5.2: SETTINGS_MAX_FRAME_SIZE bounds.
const MIN_FRAME: u64 = 16_384;
const MAX_FRAME: u64 = 16_777_215;
/// RFC 9113 §6.9.1: the largest flow-control window.
const MAX_WINDOW: u64 = (1 << 31) - 1;

/// `virtual_servers.NAME.http2`, if given; `tls` gets `h2` offered.
pub(crate) fn vs_http2(
    f: &SourceFile,
    vname: &str,
    v: &RawVirtualServer,
    http: &HttpSettings,
    client_idle: std::time::Duration,
    tls: Option<&mut TlsServer>,
) -> Result<Option<Http2>, ConfigError> {
    let key = |k: &str| Some(format!("virtual_servers.{vname}.http2{}{k}", if k.is_empty() { "" } else { "." }));
    // The operator's own ALPN list, if any: used as written.
    let listed = v.tls.as_ref().and_then(|t| t.get_ref().alpn.as_ref());
    let Some(h) = v.http2.as_ref().filter(|h| h.get_ref().enabled) else {
        if listed.is_some_and(|l| l.iter().any(|p| p == "h2")) {
            let span = v.tls.as_ref().map(|t| t.span()).unwrap_or_default();
            return Err(f.error_at(
                span,
                Some(format!("virtual_servers.{vname}.tls.alpn")),
                "offers \"h2\" but HTTP/2 is not enabled (add [virtual_servers.NAME.http2])".into(),
            ));
        }
        return Ok(None);
    };
    if v.protocol != raw::Protocol::Http {
        return Err(f.error_at(h.span(), key(""), "HTTP/2 applies to http virtual servers".into()));
    }
    let r = h.get_ref();
    let span = |s: std::ops::Range<usize>| if s.is_empty() { h.span() } else { s };
    let ranged = |x: &Spanned<Size>, k: &str, min: u64, max: u64| -> Result<u32, ConfigError> {
        let n = x.get_ref().0;
        if (min..=max).contains(&n) {
            Ok(n as u32)
        } else {
            Err(f.error_at(span(x.span()), key(k), format!("must be between {min} and {max}, found {n}")))
        }
    };
    let positive = |x: &Spanned<u32>, k: &str| -> Result<u32, ConfigError> {
        match *x.get_ref() {
            0 => Err(f.error_at(span(x.span()), key(k), "must be at least 1".into())),
            n => Ok(n),
        }
    };
    if r.h2c && v.tls.is_some() {
        return Err(f.error_at(
            h.span(),
            key("h2c"),
            "h2c is cleartext HTTP/2; a TLS listener negotiates HTTP/2 by ALPN instead".into(),
        ));
    }
    if v.tls.is_none() && !r.h2c {
        return Err(f.error_at(
            h.span(),
            key("h2c"),
            "a cleartext listener speaks HTTP/2 only with prior knowledge: set h2c = true (or add tls)".into(),
        ));
    }
    let max_header_list_size = match &r.max_header_list_size {
        Some(x) => ranged(x, "max_header_list_size", 1024, 1 << 24)?,
        None => http.max_header_size as u32,
    };
    let burst = positive(&r.control_frames_burst, "control_frames_burst")?;
    let out = Http2 {
        alpn: v.tls.is_some(),
        h2c: r.h2c,
        max_concurrent_streams: positive(&r.max_concurrent_streams, "max_concurrent_streams")?,
        initial_window_size: ranged(&r.initial_window_size, "initial_window_size", 1, MAX_WINDOW)?,
        connection_window_size: ranged(&r.connection_window_size, "connection_window_size", 65_535, MAX_WINDOW)?,
        max_frame_size: ranged(&r.max_frame_size, "max_frame_size", MIN_FRAME, MAX_FRAME)?,
        max_header_list_size,
        header_table_size: ranged(&r.header_table_size, "header_table_size", 0, 1 << 20)?,
        max_pending_resets: r.max_pending_resets as usize,
        max_error_resets: r.max_error_resets as usize,
        control_frames_per_second: positive(&r.control_frames_per_second, "control_frames_per_second")?,
        control_frames_burst: burst,
        max_send_buffer: ranged(&r.max_send_buffer, "max_send_buffer", 16_384, 1 << 30)? as usize,
        send_timeout: r.send_timeout.map_or(client_idle, |d| d.0),
        idle_timeout: r.idle_timeout.map_or(http.client_keepalive_timeout, |d| d.0),
    };
    if let (Some(tls), None) = (tls, listed) {
        tls.alpn.insert(0, b"h2".to_vec());
    }
    Ok(Some(out))
}
