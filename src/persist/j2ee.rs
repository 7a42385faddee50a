//! `type = "j2ee"`: the Java servlet session, `JSESSIONID` as a cookie or
//! as a `;jsessionid=` path parameter (clients without cookies). The node
//! that set a session's `JSESSIONID` keeps it.

use super::{Claim, Class, Learned, RequestView, ResponseView};

pub struct J2ee;

const COOKIE: &str = "JSESSIONID";

/// `;jsessionid=VALUE` in the path (before any query string).
fn path_parameter(target: &[u8]) -> Option<&[u8]> {
    let path = target.split(|&c| c == b'?').next()?;
    let at = path.windows(12).position(|w| w.eq_ignore_ascii_case(b";jsessionid="))?;
    let v = &path[at + 12..];
    let end = v.iter().position(|&c| c == b';' || c == b'/').unwrap_or(v.len());
    Some(&v[..end]).filter(|v| !v.is_empty())
}

impl Class for J2ee {
    fn claim<'a>(&self, req: &RequestView<'a>, _pool: usize) -> Claim<'a> {
        crate::http::cookie::request_cookie(&req.head.fields, COOKIE)
            .or_else(|| path_parameter(req.head.target()))
            .map_or(Claim::None, |v| Claim::Key(v.into()))
    }

    fn learn(&self, resp: &ResponseView<'_>, _named: Option<usize>, _pool: usize, _node: usize, out: &mut Learned) {
        for c in crate::http::cookie::set_cookies(&resp.head.fields) {
            if c.name == COOKIE.as_bytes() && !c.value.is_empty() {
                out.record.push(c.value.to_vec());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn path_parameter() {
        assert_eq!(super::path_parameter(b"/app/cart;jsessionid=ABC123?x=1"), Some(&b"ABC123"[..]));
        assert_eq!(super::path_parameter(b"/app;JSESSIONID=Z;v=1/x"), Some(&b"Z"[..]));
        assert_eq!(super::path_parameter(b"/app?;jsessionid=no"), None);
    }
}
