//! An RTSP message a rule can read and change ([`Owned`]): its start line,
//! header fields and body copied out of the connection's buffer. Control
//! messages are few per session (a handful per stream), so copying them is
//! cheap; a message no rule changed is relayed as its original bytes, and
//! one a rule changed is written afresh ([`Owned::write`]) with a
//! `Content-Length` that matches its body.

use super::message::{Message, StartLine, Version};
use crate::http::trim_ows as trim;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    Request { method: Vec<u8>, uri: Vec<u8> },
    Response { status: u16, reason: Vec<u8> },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owned {
    pub start: Start,
    pub version: Version,
    /// (name, value) of each header field, in order, values trimmed.
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
    pub body: Vec<u8>,
}

impl Owned {
    /// The message `m` parsed from `buf`, which holds it whole (body too).
    pub fn copy(buf: &[u8], m: &Message) -> Owned {
        let mut o = Owned::copy_head(buf, m);
        o.body = buf[m.head_len..m.head_len + m.body_len].to_vec();
        o
    }

    /// [`Owned::copy`] without the body (left empty): for a message no
    /// rule will read or rewrite, kept only to be matched and logged.
    pub fn copy_head(buf: &[u8], m: &Message) -> Owned {
        let start = match &m.start {
            StartLine::Request { method, uri } => {
                Start::Request { method: buf[method.clone()].to_vec(), uri: buf[uri.clone()].to_vec() }
            }
            StartLine::Response { status, reason } => {
                Start::Response { status: *status, reason: buf[reason.clone()].to_vec() }
            }
        };
        let headers =
            m.headers.iter().map(|(n, v)| (buf[n.clone()].to_vec(), trim(&buf[v.clone()]).to_vec())).collect();
        Owned { start, version: m.version, headers, body: Vec::new() }
    }

    /// A response of shoal's own to `request`: its version and `CSeq`.
    pub fn answer(request: &Owned, status: u16) -> Owned {
        let mut headers = Vec::new();
        if let Some(cseq) = request.header("cseq") {
            headers.push((b"CSeq".to_vec(), cseq.to_vec()));
        }
        headers.push((b"Server".to_vec(), b"shoal".to_vec()));
        Owned {
            start: Start::Response { status, reason: reason(status).as_bytes().to_vec() },
            version: request.version,
            headers,
            body: Vec::new(),
        }
    }

    /// The first field named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes())).map(|(_, v)| v.as_slice())
    }

    /// Replace every field named `name` by one with `value` (where the
    /// first was), or add it at the end.
    pub fn set_header(&mut self, name: &[u8], value: &[u8]) {
        match self.headers.iter().position(|(n, _)| n.eq_ignore_ascii_case(name)) {
            Some(i) => {
                self.headers[i].1 = value.to_vec();
                let mut j = 0;
                self.headers.retain(|(n, _)| {
                    j += 1;
                    j - 1 == i || !n.eq_ignore_ascii_case(name)
                });
            }
            None => self.headers.push((name.to_vec(), value.to_vec())),
        }
    }

    pub fn remove_header(&mut self, name: &[u8]) {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
    }

    pub fn method(&self) -> &[u8] {
        match &self.start {
            Start::Request { method, .. } => method,
            Start::Response { .. } => b"",
        }
    }

    pub fn uri(&self) -> &[u8] {
        match &self.start {
            Start::Request { uri, .. } => uri,
            Start::Response { .. } => b"",
        }
    }

    pub fn status(&self) -> u16 {
        match self.start {
            Start::Response { status, .. } => status,
            Start::Request { .. } => 0,
        }
    }

    /// The `Session` identifier (before any `;timeout=`).
    pub fn session(&self) -> Option<&[u8]> {
        super::message::session_id(self.header("session")?)
    }

    /// The message as it goes on the wire; `Content-Length` says the
    /// body's length (and is left out for an empty body).
    pub fn write(&self, out: &mut Vec<u8>) {
        match &self.start {
            Start::Request { method, uri } => {
                out.extend_from_slice(method);
                out.push(b' ');
                out.extend_from_slice(uri);
                out.push(b' ');
                out.extend_from_slice(self.version.as_str().as_bytes());
            }
            Start::Response { status, reason } => {
                out.extend_from_slice(self.version.as_str().as_bytes());
                out.extend_from_slice(format!(" {status} ").as_bytes());
                out.extend_from_slice(reason);
            }
        }
        out.extend_from_slice(b"\r\n");
        for (n, v) in &self.headers {
            if n.eq_ignore_ascii_case(b"content-length") {
                continue;
            }
            out.extend_from_slice(n);
            out.extend_from_slice(b": ");
            out.extend_from_slice(v);
            out.extend_from_slice(b"\r\n");
        }
        if !self.body.is_empty() {
            out.extend_from_slice(format!("Content-Length: {}\r\n", self.body.len()).as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.body);
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256 + self.body.len());
        self.write(&mut out);
        out
    }
}

/// The path of a request URI: `/live/cam1` of `rtsp://h:554/live/cam1?x`,
/// `/` of `rtsp://h:554`, `*` of `*`, and the URI itself when it is
/// already a path.
pub fn path(uri: &[u8]) -> &[u8] {
    let r = path_range(uri);
    if r.is_empty() {
        return b"/";
    }
    &uri[r]
}

/// `uri` with its path replaced by `new` (the scheme, authority and query
/// kept).
pub fn with_path(uri: &[u8], new: &[u8]) -> Vec<u8> {
    let r = path_range(uri);
    [&uri[..r.start], new, &uri[r.end..]].concat()
}

/// Where the path of `uri` is (empty for `rtsp://host` with none).
fn path_range(uri: &[u8]) -> std::ops::Range<usize> {
    let from = match uri.windows(3).position(|w| w == b"://") {
        Some(i) => {
            let authority = i + 3;
            uri[authority..]
                .iter()
                .position(|&b| b == b'/' || b == b'?' || b == b'#')
                .map_or(uri.len(), |j| authority + j)
        }
        None => 0,
    };
    let to = uri[from..].iter().position(|&b| b == b'?' || b == b'#').map_or(uri.len(), |j| from + j);
    from..to
}

/// The reason phrase of a status shoal sends: RTSP's own (RFC 2326 §7.1.1)
/// where it differs from HTTP's, else HTTP's.
pub fn reason(status: u16) -> &'static str {
    match status {
        301 => "Moved Permanently",
        302 => "Moved Temporarily",
        303 => "See Other",
        305 => "Use Proxy",
        401 => "Unauthorized",
        413 => "Request Entity Too Large",
        454 => "Session Not Found",
        494 => "Request Header Field Too Large",
        504 => "Gateway Time-out",
        505 => "RTSP Version Not Supported",
        _ => crate::http::reason(status),
    }
}

#[cfg(test)]
mod tests {
    use super::super::message::{parse, Frame, Limits};
    use super::*;

    fn owned(buf: &[u8]) -> Owned {
        match parse(buf, &Limits::default()) {
            Ok(Some(Frame::Message(m))) => Owned::copy(buf, &m),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_copied_message_writes_back_as_it_came_and_changes_keep_the_length_right() {
        let wire = b"RTSP/1.0 200 OK\r\nCSeq: 3\r\nContent-Type: application/sdp\r\nContent-Length: 5\r\n\r\nv=0\r\n";
        let mut m = owned(wire);
        assert_eq!((m.status(), m.header("cseq"), m.body.as_slice()), (200, Some(&b"3"[..]), &b"v=0\r\n"[..]));
        assert_eq!(m.to_bytes(), wire.to_vec(), "unchanged, it is written as received");
        m.body = b"v=0\r\ns=changed\r\n".to_vec();
        m.set_header(b"x-node", b"a");
        let again = owned(&m.to_bytes());
        assert_eq!((again.body.as_slice(), again.header("x-node")), (&b"v=0\r\ns=changed\r\n"[..], Some(&b"a"[..])));
        m.body.clear();
        assert!(!String::from_utf8_lossy(&m.to_bytes()).contains("Content-Length"));
    }

    #[test]
    fn set_header_replaces_every_field_of_the_name_once() {
        let mut m = owned(b"PLAY rtsp://h/s RTSP/1.0\r\nCSeq: 4\r\nX: 1\r\nx: 2\r\nSession: ab;timeout=60\r\n\r\n");
        assert_eq!(m.session(), Some(&b"ab"[..]));
        m.set_header(b"X", b"3");
        assert_eq!(m.headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case(b"x")).count(), 1);
        assert_eq!(m.header("x"), Some(&b"3"[..]));
        m.remove_header(b"session");
        assert_eq!(m.session(), None);
        let a = Owned::answer(&m, 302);
        assert_eq!(a.to_bytes(), b"RTSP/1.0 302 Moved Temporarily\r\nCSeq: 4\r\nServer: shoal\r\n\r\n".to_vec());
    }

    #[test]
    fn paths_of_uris() {
        assert_eq!(path(b"rtsp://h:554/live/cam1?x=1"), b"/live/cam1");
        assert_eq!(path(b"rtsp://h:554"), b"/");
        assert_eq!(path(b"*"), b"*");
        assert_eq!(path(b"/a/b"), b"/a/b");
        assert_eq!(with_path(b"rtsp://h:554/live/cam1?x=1", b"/other"), b"rtsp://h:554/other?x=1");
        assert_eq!(with_path(b"rtsp://h:554", b"/s"), b"rtsp://h:554/s");
        assert_eq!(with_path(b"/a", b"/b"), b"/b");
    }
}
