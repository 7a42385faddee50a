//! `type = "transparent"`: transparent session affinity. shoal sets its
//! own browser-session cookie (`X-Mapping-…`, no expiry) naming the node by
//! a keyed hash ([`super::keyed`]); a request carrying it goes to that
//! node. An edited or forged value is ignored (the request is balanced)
//! and replaced by a valid cookie for the node that served it.

use super::{keyed::Tokens, Claim, Class, Learned, RequestView, ResponseView};

pub struct Transparent(pub Tokens);

impl Class for Transparent {
    fn claim<'a>(&self, req: &RequestView<'a>, pool: usize) -> Claim<'a> {
        self.0.claim(req, pool)
    }

    fn learn(&self, _resp: &ResponseView<'_>, named: Option<usize>, pool: usize, node: usize, out: &mut Learned) {
        if named != Some(node) {
            self.0.set_cookie(pool, node, &[], &mut out.set_cookie);
        }
    }
}
