//! Reading the first handshake message of each side of a TLS connection
//! without terminating it (B6 passthrough): the ClientHello's server name
//! (SNI) and session ID, and the ServerHello's session ID and version.
//!
//! Parsing is of untrusted bytes, so every length is checked against what
//! is there and the whole message is bounded by [`MAX_HELLO`]; anything
//! malformed is an error, never a panic.

/// The longest first handshake message read (a ClientHello with large
/// post-quantum key shares is under 2 KiB; 16 KiB is TLS's record size).
pub const MAX_HELLO: usize = 16 * 1024;

const HANDSHAKE: u8 = 22;
const CLIENT_HELLO: u8 = 1;
const SERVER_HELLO: u8 = 2;
const EXT_SERVER_NAME: u16 = 0;
const EXT_SUPPORTED_VERSIONS: u16 = 43;

#[derive(Debug, PartialEq, Eq)]
pub enum HelloError {
    /// Not a TLS handshake record: the peer does not speak TLS.
    NotTls,
    /// Lengths that do not add up.
    Malformed(&'static str),
    /// Longer than [`MAX_HELLO`].
    TooLong,
}

impl std::fmt::Display for HelloError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HelloError::NotTls => write!(f, "not a TLS handshake"),
            HelloError::Malformed(what) => write!(f, "malformed TLS hello: {what}"),
            HelloError::TooLong => write!(f, "TLS hello longer than {MAX_HELLO} bytes"),
        }
    }
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct ClientHello {
    pub sni: Option<String>,
    /// Empty when the client offers no session to resume.
    pub session_id: Vec<u8>,
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct ServerHello {
    pub session_id: Vec<u8>,
    /// The server chose TLS 1.3 (whose session ID only echoes the client's).
    pub tls13: bool,
}

/// Bytes over a slice, failing on reads past its end.
struct Cursor<'a> {
    b: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], HelloError> {
        if self.b.len() < n {
            return Err(HelloError::Malformed(what));
        }
        let (h, t) = self.b.split_at(n);
        self.b = t;
        Ok(h)
    }
    fn u8(&mut self, what: &'static str) -> Result<usize, HelloError> {
        Ok(self.take(1, what)?[0] as usize)
    }
    fn u16(&mut self, what: &'static str) -> Result<usize, HelloError> {
        let b = self.take(2, what)?;
        Ok(u16::from_be_bytes([b[0], b[1]]) as usize)
    }
    /// A vector with a `len_bytes`-byte length prefix.
    fn vec(&mut self, len_bytes: usize, what: &'static str) -> Result<&'a [u8], HelloError> {
        let n = if len_bytes == 1 { self.u8(what)? } else { self.u16(what)? };
        self.take(n, what)
    }
}

/// The first handshake message in `data` (records as received), once
/// complete: `Ok(None)` means more bytes are needed. Returns the message
/// type and body.
fn first_message(data: &[u8]) -> Result<Option<(u8, Vec<u8>)>, HelloError> {
    let mut msg: Vec<u8> = Vec::new();
    let mut rest = data;
    loop {
        if rest.len() < 5 {
            return Ok(None);
        }
        if rest[0] != HANDSHAKE || rest[1] != 3 {
            return Err(HelloError::NotTls);
        }
        let len = u16::from_be_bytes([rest[3], rest[4]]) as usize;
        if len == 0 || len > 16 * 1024 + 256 {
            return Err(HelloError::Malformed("record length"));
        }
        if rest.len() < 5 + len {
            return Ok(None);
        }
        msg.extend_from_slice(&rest[5..5 + len]);
        rest = &rest[5 + len..];
        if msg.len() >= 4 {
            let body_len = u32::from_be_bytes([0, msg[1], msg[2], msg[3]]) as usize;
            if body_len + 4 > MAX_HELLO {
                return Err(HelloError::TooLong);
            }
            if msg.len() >= body_len + 4 {
                let kind = msg[0];
                msg.truncate(body_len + 4);
                msg.drain(..4);
                return Ok(Some((kind, msg)));
            }
        }
        if msg.len() > MAX_HELLO {
            return Err(HelloError::TooLong);
        }
    }
}

/// A hello's bytes after its session ID, and the session ID.
type AfterSessionId = (Vec<u8>, Vec<u8>);

/// The first message, if it is of type `want` (else `wrong` is the error),
/// read up to its session ID.
fn hello_body(data: &[u8], want: u8, wrong: &'static str) -> Result<Option<AfterSessionId>, HelloError> {
    let Some((kind, body)) = first_message(data)? else { return Ok(None) };
    if kind != want {
        return Err(HelloError::Malformed(wrong));
    }
    let mut c = Cursor { b: &body };
    c.take(2 + 32, "version and random")?;
    let session_id = c.vec(1, "session id")?.to_vec();
    if session_id.len() > 32 {
        return Err(HelloError::Malformed("session id longer than 32 bytes"));
    }
    Ok(Some((c.b.to_vec(), session_id)))
}

/// Call `f` with each extension's type and data (absent extensions: none).
fn extensions(c: &mut Cursor<'_>, mut f: impl FnMut(u16, &[u8]) -> Result<(), HelloError>) -> Result<(), HelloError> {
    if c.b.is_empty() {
        return Ok(());
    }
    let mut exts = Cursor { b: c.vec(2, "extensions")? };
    while !exts.b.is_empty() {
        let kind = exts.u16("extension type")? as u16;
        let data = exts.vec(2, "extension")?;
        f(kind, data)?;
    }
    Ok(())
}

/// Parse the ClientHello at the start of `data`; `Ok(None)`: incomplete.
pub fn client_hello(data: &[u8]) -> Result<Option<ClientHello>, HelloError> {
    let Some((rest, session_id)) = hello_body(data, CLIENT_HELLO, "first message is not a ClientHello")? else {
        return Ok(None);
    };
    let mut c = Cursor { b: &rest };
    c.vec(2, "cipher suites")?;
    c.vec(1, "compression methods")?;
    let mut sni = None;
    extensions(&mut c, |kind, data| {
        if kind == EXT_SERVER_NAME {
            let mut list = Cursor { b: data };
            let mut names = Cursor { b: list.vec(2, "server name list")? };
            while !names.b.is_empty() {
                let name_type = names.u8("server name type")?;
                let name = names.vec(2, "server name")?;
                if name_type == 0 {
                    let name = std::str::from_utf8(name).map_err(|_| HelloError::Malformed("server name not ASCII"))?;
                    if !name.is_ascii() || name.is_empty() {
                        return Err(HelloError::Malformed("server name not ASCII"));
                    }
                    sni = Some(name.to_ascii_lowercase());
                }
            }
        }
        Ok(())
    })?;
    Ok(Some(ClientHello { sni, session_id }))
}

/// Parse the ServerHello at the start of `data`; `Ok(None)`: incomplete.
pub fn server_hello(data: &[u8]) -> Result<Option<ServerHello>, HelloError> {
    let Some((rest, session_id)) = hello_body(data, SERVER_HELLO, "first message is not a ServerHello")? else {
        return Ok(None);
    };
    let mut c = Cursor { b: &rest };
    c.take(2 + 1, "cipher suite and compression")?;
    let mut tls13 = false;
    extensions(&mut c, |kind, data| {
        tls13 |= kind == EXT_SUPPORTED_VERSIONS && data == [3, 4];
        Ok(())
    })?;
    Ok(Some(ServerHello { session_id, tls13 }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(msg_type: u8, body: &[u8]) -> Vec<u8> {
        let mut m = vec![msg_type, 0, (body.len() >> 8) as u8, body.len() as u8];
        m.extend_from_slice(body);
        let mut r = vec![HANDSHAKE, 3, 1, (m.len() >> 8) as u8, m.len() as u8];
        r.extend_from_slice(&m);
        r
    }

    fn client_body(sid: &[u8], sni: Option<&str>) -> Vec<u8> {
        let mut b = vec![3, 3];
        b.extend_from_slice(&[7; 32]);
        b.push(sid.len() as u8);
        b.extend_from_slice(sid);
        b.extend_from_slice(&[0, 2, 0x13, 0x01, 1, 0]);
        let mut exts = Vec::new();
        if let Some(n) = sni {
            let mut list = vec![0];
            list.extend_from_slice(&(n.len() as u16).to_be_bytes());
            list.extend_from_slice(n.as_bytes());
            let mut ext = (list.len() as u16).to_be_bytes().to_vec();
            ext.extend_from_slice(&list);
            exts.extend_from_slice(&0u16.to_be_bytes());
            exts.extend_from_slice(&(ext.len() as u16).to_be_bytes());
            exts.extend_from_slice(&ext);
        }
        b.extend_from_slice(&(exts.len() as u16).to_be_bytes());
        b.extend_from_slice(&exts);
        b
    }

    #[test]
    fn reads_sni_and_session_id() {
        let r = record(CLIENT_HELLO, &client_body(&[9; 32], Some("Media.Example.com")));
        let h = client_hello(&r).unwrap().unwrap();
        assert_eq!(h.sni.as_deref(), Some("media.example.com"));
        assert_eq!(h.session_id, vec![9; 32]);
        // Every strict prefix is incomplete, never an error or a panic.
        for n in 0..r.len() {
            assert_eq!(client_hello(&r[..n]), Ok(None), "prefix {n}");
        }
    }

    #[test]
    fn message_split_over_records() {
        let r = record(CLIENT_HELLO, &client_body(&[], Some("a.test")));
        // Re-frame the handshake message as two records.
        let msg = &r[5..];
        let (a, b) = msg.split_at(10);
        let mut two = vec![HANDSHAKE, 3, 1, 0, a.len() as u8];
        two.extend_from_slice(a);
        two.extend_from_slice(&[HANDSHAKE, 3, 1, 0, b.len() as u8]);
        two.extend_from_slice(b);
        assert_eq!(client_hello(&two).unwrap().unwrap().sni.as_deref(), Some("a.test"));
    }

    #[test]
    fn rejects_garbage_and_bad_lengths() {
        assert_eq!(client_hello(b"GET / HTTP/1.1\r\n\r\n"), Err(HelloError::NotTls));
        let mut r = record(CLIENT_HELLO, &client_body(&[1; 8], None));
        r[5 + 4 + 34] = 200; // session id length past the end
        assert!(matches!(client_hello(&r), Err(HelloError::Malformed(_))));
        // Arbitrary bytes after a valid record header never panic.
        for seed in 0..2000u32 {
            let mut x = vec![HANDSHAKE, 3, 3, 0, 60, CLIENT_HELLO, 0, 0, 56];
            let mut v = seed.wrapping_mul(2654435761);
            for _ in 0..56 {
                v ^= v << 13;
                v ^= v >> 17;
                v ^= v << 5;
                x.push(v as u8);
            }
            let _ = client_hello(&x);
            let _ = server_hello(&x);
        }
    }

    #[test]
    fn server_hello_version_and_session() {
        let mut b = vec![3, 3];
        b.extend_from_slice(&[1; 32]);
        b.push(32);
        b.extend_from_slice(&[5; 32]);
        b.extend_from_slice(&[0x13, 0x01, 0]);
        let h = server_hello(&record(SERVER_HELLO, &b)).unwrap().unwrap();
        assert_eq!((h.session_id, h.tls13), (vec![5; 32], false));
        b.extend_from_slice(&[0, 6, 0, 43, 0, 2, 3, 4]);
        assert!(server_hello(&record(SERVER_HELLO, &b)).unwrap().unwrap().tls13);
    }
}
