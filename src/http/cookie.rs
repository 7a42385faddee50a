//! Cookies as persistence needs them: a named cookie's value in a
//! request's `Cookie` headers, and the cookies a response sets
//! (`Set-Cookie`), with the attributes that give their lifetime.

use super::fields::Fields;

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn request_cookie<'a>(fields: &'a Fields, name: &str) -> Option<&'a [u8]> {
    request_cookies(fields).find(|(n, _)| *n == name.as_bytes()).map(|(_, v)| v)
}

/// Every `name=value` pair of the request's `Cookie` headers.
pub fn request_cookies(fields: &Fields) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
    fields.get_all("cookie").flat_map(|v| v.split(|&c| c == b';')).filter_map(|pair| {
        let pair = pair.trim_ascii();
        let eq = pair.iter().position(|&c| c == b'=')?;
        Some((pair[..eq].trim_ascii(), pair[eq + 1..].trim_ascii()))
    })
}

/// A cookie a response sets.
#[derive(Debug, PartialEq, Eq)]
pub struct SetCookie<'a> {
    pub name: &'a [u8],
    pub value: &'a [u8],
    /// The `Expires=` and `Max-Age=` attributes as written (`; `-joined),
    /// to give another cookie the same life.
    pub lifetime: Vec<&'a [u8]>,
}

/// The cookies set by a response's `Set-Cookie` headers.
pub fn set_cookies(fields: &Fields) -> impl Iterator<Item = SetCookie<'_>> + '_ {
    fields.get_all("set-cookie").filter_map(|v| {
        let mut parts = v.split(|&c| c == b';').map(<[u8]>::trim_ascii);
        let first = parts.next()?;
        let eq = first.iter().position(|&c| c == b'=')?;
        let lifetime = parts
            .filter(|a| {
                let lower = a.to_ascii_lowercase();
                lower.starts_with(b"expires=") || lower.starts_with(b"max-age=")
            })
            .collect();
        Some(SetCookie { name: first[..eq].trim_ascii(), value: first[eq + 1..].trim_ascii(), lifetime })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(text: &[u8]) -> Fields {
        // "Name: value" lines, for tests.
        let mut out = Fields::default();
        out.start_received(text);
        let mut at = 0;
        for line in text.split(|&c| c == b'\n') {
            let colon = line.iter().position(|&c| c == b':').unwrap();
            out.push_received(at..at + colon, at + colon + 2..at + line.len());
            at += line.len() + 1;
        }
        out
    }

    #[test]
    fn request_and_response_cookies() {
        let t = b"Cookie: a=1; JSESSIONID=abc.n1 ; b=2\nAccept: */*\ncookie: c=3";
        let h = fields(t);
        assert_eq!(request_cookie(&h, "JSESSIONID"), Some(&b"abc.n1"[..]));
        assert_eq!(request_cookie(&h, "c"), Some(&b"3"[..]));
        assert_eq!(request_cookie(&h, "jsessionid"), None, "names are case-sensitive");
        let r = b"Set-Cookie: sid=xyz; Path=/; Max-Age=600; HttpOnly\nset-cookie: t=1; expires=Wed, 21 Oct 2037 07:28:00 GMT";
        let h = fields(r);
        let all: Vec<_> = set_cookies(&h).collect();
        assert_eq!(all[0], SetCookie { name: b"sid", value: b"xyz", lifetime: vec![&b"Max-Age=600"[..]] });
        assert_eq!(all[1].lifetime, vec![&b"expires=Wed, 21 Oct 2037 07:28:00 GMT"[..]]);
    }
}
