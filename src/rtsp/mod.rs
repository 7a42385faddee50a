//! RTSP (M2): `protocol = "rtsp"` virtual servers. A client's control
//! connection is balanced to one node on its first request (by the pool's
//! algorithm, a rule's `pool.use`, or the session its `Session` field
//! names); from then on every message is parsed ([`message`]) and relayed,
//! request and response rules run on each ([`exchange`], [`owned`]), and
//! the interleaved RTP/RTCP frames between them pass through unparsed
//! ([`serve`]). docs/rtsp.md is the operator's guide.

pub mod exchange;
pub mod message;
pub mod owned;
pub mod serve;
