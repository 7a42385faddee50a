//! What an RTSP virtual server's rules see of one message ([`Exchange`]):
//! in request rules the client's request on its way to the node, in
//! response rules the node's response with the request it answers. The
//! `rtsp.*` functions (src/rules/builtins/rtsp.rs) read and change it; a
//! rule's own answer (`rtsp.redirect`, `rtsp.sendResponse`) replaces the
//! phase's message.

use super::owned::Owned;

pub struct Exchange {
    /// The request (in response rules: the one the response answers).
    pub request: Owned,
    /// The node's response, in response rules.
    pub response: Option<Owned>,
    /// A rule changed the phase's message: it is written afresh.
    pub changed: bool,
    /// A rule's answer, sent to the client instead: the request goes to no
    /// node; the node's response is dropped.
    pub answer: Option<Owned>,
}

impl Exchange {
    pub fn request(request: Owned) -> Exchange {
        Exchange { request, response: None, changed: false, answer: None }
    }

    pub fn response(request: Owned, response: Owned) -> Exchange {
        Exchange { request, response: Some(response), changed: false, answer: None }
    }
}
