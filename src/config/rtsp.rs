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
    f.refuse_keys(vname, "rtsp", &v.http_feature_keys())
}
