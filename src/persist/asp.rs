//! `type = "asp"`: ASP (`ASPSESSIONID…`, the suffix varies per
//! application) and ASP.NET (`ASP.NET_SessionId`) session cookies. The
//! node that set a session's cookie keeps it.

use super::{Claim, Class, Learned, RequestView, ResponseView};

pub struct Asp;

fn is_session_cookie(name: &[u8]) -> bool {
    name.starts_with(b"ASPSESSIONID") || name == b"ASP.NET_SessionId"
}

/// The key: name and value (two ASP applications may share a value space).
fn key(name: &[u8], value: &[u8]) -> Vec<u8> {
    [name, b"=", value].concat()
}

impl Class for Asp {
    fn claim<'a>(&self, req: &RequestView<'a>, _pool: usize) -> Claim<'a> {
        crate::http::cookie::request_cookies(&req.head.fields)
            .find(|(n, v)| is_session_cookie(n) && !v.is_empty())
            .map_or(Claim::None, |(n, v)| Claim::Key(key(n, v).into()))
    }

    fn learn(&self, resp: &ResponseView<'_>, _named: Option<usize>, _pool: usize, _node: usize, out: &mut Learned) {
        for c in crate::http::cookie::set_cookies(&resp.head.fields) {
            if is_session_cookie(c.name) && !c.value.is_empty() {
                out.record.push(key(c.name, c.value));
            }
        }
    }
}
