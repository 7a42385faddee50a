//! RTSP (M2): the framing of RTSP control connections ([`message`]):
//! requests, responses and the interleaved RTP/RTCP frames between them.
//! The `protocol = "rtsp"` virtual server that will use it (balancing a
//! session, rules on each message, `Session` persistence) is not built
//! yet: issue 23 lists it.

pub mod message;
