//! A virtual server's UDP keys (`udp_mode`, `udp_timeout`,
//! `udp_max_datagram`) checked into its runtime settings ([`Udp`]), and
//! the keys a UDP virtual server cannot have.

use super::model::{Udp, UdpMode};
use super::raw::{self, RawVirtualServer};
use super::{ConfigError, SourceFile};
use std::time::Duration;

/// The default flow idle timeout (the source's `udp_timeout`).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(7);
/// The largest UDP payload over IPv4 (65,535 − 8 − 20).
pub const MAX_DATAGRAM: u32 = 65_507;

/// The UDP settings of a `udp` virtual server; an error for UDP keys on
/// another protocol, or other protocols' keys on a UDP one.
pub(crate) fn vs_udp(f: &SourceFile, vname: &str, v: &RawVirtualServer) -> Result<Option<Udp>, ConfigError> {
    let key = |k: &str| Some(format!("virtual_servers.{vname}.{k}"));
    if v.protocol != raw::Protocol::Udp {
        let spans = [
            ("udp_mode", v.udp_mode.as_ref().map(|x| x.span())),
            ("udp_timeout", v.udp_timeout.as_ref().map(|x| x.span())),
            ("udp_max_datagram", v.udp_max_datagram.as_ref().map(|x| x.span())),
        ];
        if let Some((k, Some(span))) = spans.into_iter().find(|(_, s)| s.is_some()) {
            return Err(f.error_at(span, key(k), format!("`{k}` applies to udp virtual servers only")));
        }
        return Ok(None);
    }
    // What a datagram relay has no use for: a clear error, not a key
    // silently ignored.
    f.refuse_keys(
        vname,
        "udp",
        &[
            ("tls", v.tls.as_ref().map(|x| x.span())),
            ("request_rules", v.request_rules.first().map(|x| x.span())),
            ("response_rules", v.response_rules.first().map(|x| x.span())),
        ],
    )?;
    f.refuse_keys(vname, "udp", &v.http_feature_keys())?;
    let mode = match v.udp_mode.as_ref().map(|m| (m, m.get_ref().as_str())) {
        None | Some((_, "one_response")) => UdpMode::OneResponse,
        Some((_, "streaming")) => UdpMode::Streaming,
        Some((m, other)) => {
            return Err(f.error_at(
                m.span(),
                key("udp_mode"),
                format!("expected \"one_response\" or \"streaming\", found \"{other}\""),
            ))
        }
    };
    let timeout = match &v.udp_timeout {
        None => DEFAULT_TIMEOUT,
        Some(t) if t.get_ref().0.is_zero() => {
            return Err(f.error_at(t.span(), key("udp_timeout"), "must be longer than 0s".into()))
        }
        Some(t) => t.get_ref().0,
    };
    let max_datagram = match &v.udp_max_datagram {
        None => MAX_DATAGRAM,
        Some(n) if (512..=MAX_DATAGRAM).contains(n.get_ref()) => *n.get_ref(),
        Some(n) => {
            return Err(f.error_at(
                n.span(),
                key("udp_max_datagram"),
                format!("must be between 512 and {MAX_DATAGRAM} bytes, found {}", n.get_ref()),
            ))
        }
    };
    Ok(Some(Udp { mode, timeout, max_datagram: max_datagram as usize }))
}
