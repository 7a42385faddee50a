//! `type = "app_cookie"`: monitor an application cookie. When the node
//! sets the application's session cookie (`cookie`), shoal sets its own
//! `X-Mapping-…` cookie naming that node (a keyed hash, as `transparent`)
//! with the same `Expires`/`Max-Age`, so the two live and die together;
//! requests carrying it go to that node.

use super::{keyed::Tokens, Claim, Class, Learned, RequestView, ResponseView};

pub struct AppCookie {
    pub app: String,
    pub tokens: Tokens,
}

impl Class for AppCookie {
    fn claim<'a>(&self, req: &RequestView<'a>, pool: usize) -> Claim<'a> {
        self.tokens.claim(req, pool)
    }

    fn learn(&self, resp: &ResponseView<'_>, _named: Option<usize>, pool: usize, node: usize, out: &mut Learned) {
        if let Some(c) = crate::http::cookie::set_cookies(&resp.head.fields).find(|c| c.name == self.app.as_bytes()) {
            self.tokens.set_cookie(pool, node, &c.lifetime, &mut out.set_cookie);
        }
    }
}
