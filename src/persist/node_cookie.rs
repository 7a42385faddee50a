//! `type = "node_cookie"`: the node names itself in a cookie it sets
//! (`X-Zeus-Backend=10.0.0.21:80` by default, or `cookie`); a request
//! carrying it goes to that node. Nothing is stored: the application owns
//! the cookie and its life. A value that is not a node of the pool is
//! ignored.

use super::{Claim, Class, RequestView};

pub struct NodeCookie {
    pub cookie: String,
    pub names: Vec<Vec<String>>,
}

impl Class for NodeCookie {
    fn claim<'a>(&self, req: &RequestView<'a>, pool: usize) -> Claim<'a> {
        let Some(v) = crate::http::cookie::request_cookie(&req.head.fields, &self.cookie) else {
            return Claim::None;
        };
        match self.names[pool].iter().position(|n| n.as_bytes() == v) {
            Some(i) => Claim::Node(i),
            None => Claim::None,
        }
    }
}
