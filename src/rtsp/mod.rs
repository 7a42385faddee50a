//! RTSP (M2): the framing of RTSP control connections ([`message`]):
//! requests, responses and the interleaved RTP/RTCP frames between them.
//! The `protocol = "rtsp"` virtual server that uses it is not built yet
//! (docs/udp.md and the issue list what is missing).

pub mod message;
