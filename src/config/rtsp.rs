//! What an `rtsp` virtual server cannot have: the HTTP-only and
//! byte-stream-only keys, refused with a clear error rather than ignored.
//! (Its message limits are the HTTP keys `max_header_size`,
//! `max_headers` and `max_body_size`; docs/rtsp.md.)

use super::raw::{self, RawVirtualServer};
use super::{ConfigError, SourceFile};

pub(crate) fn vs_rtsp(f: &SourceFile, vname: &str, v: &RawVirtualServer) -> Result<(), ConfigError> {
    if v.protocol != raw::Protocol::Rtsp {
        return Ok(());
    }
    f.refuse_keys(
        vname,
        "rtsp",
        &[
            ("dsr", v.dsr.as_ref().map(|x| x.span())),
            ("cache", v.cache.as_ref().map(|x| x.span())),
            ("rate_class", v.rate_class.as_ref().map(|x| x.span())),
            ("bandwidth_class", v.bandwidth_class.as_ref().map(|x| x.span())),
            ("service_level", v.service_level.as_ref().map(|x| x.span())),
            ("compression", v.compression.as_ref().map(|x| x.span())),
            ("http2", v.http2.as_ref().map(|x| x.span())),
            ("banner", v.banner.as_ref().map(|x| x.span())),
        ],
    )
}
