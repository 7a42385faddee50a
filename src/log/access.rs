//! Access logs: formatting one line per request from a borrowed [`Record`]
//! with Apache-style `%` macros ([`Format`]), and a bounded, non-blocking
//! per-shard [`LineBuffer`] that drops lines rather than ever making a
//! request wait for the log writer.
//!
//! Everything that came off the wire (request line, target, headers) and
//! every name is escaped Apache-style (`\xHH`) so a client can neither split
//! a log line nor forge one. Times are UTC; no external date crate is used.

use std::io::Write as _;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The NCSA combined log format (Apache's `combined`, without ident/user).
pub const COMBINED: &str = "%h - - [%t] \"%r\" %s %b \"%{Referer}i\" \"%{User-Agent}i\"";
/// The NCSA common log format (Apache's `common`, without ident/user).
pub const COMMON: &str = "%h - - [%t] \"%r\" %s %b";

/// The `json` format: one JSON object per line, every value escaped for
/// JSON (docs/access-log.md).
pub const JSON: &str = concat!(
    r#"{"time":"%t","client":"%a","virtual_server":"%v","request":"%r","method":"%m","path":"%U","#,
    r#""query":"%q","protocol":"%H","status":%s,"bytes":%B,"duration_us":%D,"node":"%n","pool":"%p","#,
    r#""error":"%e","referer":"%{Referer}i","user_agent":"%{User-Agent}i"}"#
);

/// Everything one access-log line may mention about one request, borrowed
/// from the connection that served it so that building a record costs
/// nothing when no access log is configured.
#[derive(Clone, Copy, Debug)]
pub struct Record<'a> {
    pub client: SocketAddr,
    /// When the request started.
    pub time: SystemTime,
    pub duration: Duration,
    /// `METHOD SP target SP version` exactly as received (an HTTP/2
    /// stream's as written for the driver, `HTTP/1.1`: see `http2`).
    pub request_line: &'a [u8],
    /// The request came as an HTTP/2 stream: `%r` and `%H` say `HTTP/2.0`.
    pub http2: bool,
    pub method: &'a [u8],
    pub target: &'a [u8],
    /// 0 when no response was sent.
    pub status: u16,
    /// Response body bytes sent to the client.
    pub bytes: u64,
    /// The node that served the request.
    pub node: Option<&'a str>,
    /// The node the request was required to go to (session persistence etc.).
    pub required_node: Option<&'a str>,
    /// The node the balancer was asked to prefer.
    pub favoured_node: Option<&'a str>,
    pub virtual_server: &'a str,
    pub pool: &'a str,
    /// Why the request failed, if it did.
    pub error: Option<&'a str>,
    /// The request's header fields as the client sent them.
    pub request_headers: Headers<'a>,
    /// The response's header fields as sent to the client.
    pub response_headers: Headers<'a>,
}

/// Header fields a record names, for `%{Name}i` and `%{Name}o`.
#[derive(Clone, Copy, Debug)]
pub enum Headers<'a> {
    /// `(name, value)` pairs.
    List(&'a [(&'a [u8], &'a [u8])]),
    /// A head's fields, as received.
    Received(&'a crate::http::fields::Fields),
    /// A head's fields, as they are now.
    Current(&'a crate::http::fields::Fields),
}

impl<'a> Headers<'a> {
    /// The first field called `name`, ignoring ASCII case (as Apache does).
    fn get(self, name: &[u8]) -> Option<&'a [u8]> {
        match self {
            Headers::List(l) => l.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|&(_, v)| v),
            Headers::Received(f) => f.original().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v),
            Headers::Current(f) => f.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Item {
    Literal(Box<[u8]>),
    ClientIp,
    ClientAddr,
    Time,
    RequestLine,
    Protocol,
    Method,
    Path,
    Query,
    Status,
    BytesClf,
    Bytes,
    Seconds,
    Micros,
    Node,
    RequiredNode,
    FavouredNode,
    VirtualServer,
    Pool,
    Error,
    /// Apache's `%l` / `%u`: we have neither identd nor authenticated users.
    Dash,
    RequestHeader(Box<[u8]>),
    ResponseHeader(Box<[u8]>),
}

/// A compiled access-log format.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Format {
    items: Vec<Item>,
    /// Values are escaped for a JSON string (and an absent one is empty,
    /// a missing status or size 0), not for a quoted log field.
    json: bool,
}

impl Format {
    /// `"combined"` or `"common"`, or else a format string for [`Format::parse`].
    pub fn named_or_parse(s: &str) -> Result<Format, String> {
        match s {
            "combined" => Format::parse(COMBINED),
            "common" => Format::parse(COMMON),
            "json" => Format::parse(JSON).map(|f| Format { json: true, ..f }),
            _ => Format::parse(s),
        }
    }

    /// Compile a format string. Besides the documented macros, Apache's
    /// `%>s`, `%<s`, `%l` and `%u` are accepted so that Apache's own format
    /// strings can be pasted in unchanged.
    pub fn parse(s: &str) -> Result<Format, String> {
        let bytes = s.as_bytes();
        let mut items = Vec::new();
        let mut literal = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] != b'%' {
                literal.push(bytes[i]);
                i += 1;
                continue;
            }
            let start = i;
            i += 1;
            let item = match bytes.get(i) {
                None => return Err(format!("access log format: lone \"%\" at end (byte {start})")),
                Some(b'%') => {
                    literal.push(b'%');
                    i += 1;
                    continue;
                }
                Some(b'{') => {
                    let Some(len) = bytes[i..].iter().position(|&b| b == b'}') else {
                        return Err(format!("access log format: unterminated \"%{{\" at byte {start}"));
                    };
                    let close = i + len;
                    let name = &s[i + 1..close];
                    // `close + 1` follows an ASCII `}`, so it is a char boundary.
                    let kind = s[close + 1..].chars().next();
                    i = close + 1 + kind.map_or(0, char::len_utf8);
                    match kind {
                        _ if name.is_empty() => {
                            return Err(format!("access log format: empty header name in \"%{{}}\" at byte {start}"));
                        }
                        Some('i') => Item::RequestHeader(name.as_bytes().into()),
                        Some('o') => Item::ResponseHeader(name.as_bytes().into()),
                        Some(c) => {
                            return Err(format!("access log format: unknown macro \"%{{{name}}}{c}\" at byte {start}"))
                        }
                        None => return Err(format!("access log format: \"%{{{name}}}\" at byte {start} lacks i or o")),
                    }
                }
                Some(&c) => {
                    i += 1;
                    match c {
                        b'h' => Item::ClientIp,
                        b'a' => Item::ClientAddr,
                        b't' => Item::Time,
                        b'r' => Item::RequestLine,
                        b'H' => Item::Protocol,
                        b'm' => Item::Method,
                        b'U' => Item::Path,
                        b'q' => Item::Query,
                        b's' => Item::Status,
                        // Apache's original/final distinction is about internal redirects, which we do not do.
                        b'<' | b'>' if bytes.get(i) == Some(&b's') => {
                            i += 1;
                            Item::Status
                        }
                        b'b' => Item::BytesClf,
                        b'B' => Item::Bytes,
                        b'T' => Item::Seconds,
                        b'D' => Item::Micros,
                        b'n' => Item::Node,
                        b'N' => Item::RequiredNode,
                        b'F' => Item::FavouredNode,
                        b'v' => Item::VirtualServer,
                        b'p' => Item::Pool,
                        b'e' => Item::Error,
                        b'l' | b'u' => Item::Dash,
                        _ => {
                            // `start + 1` follows an ASCII `%`, so it is a char boundary.
                            let c = s[start + 1..].chars().next().unwrap_or('?');
                            return Err(format!("access log format: unknown macro \"%{c}\" at byte {start}"));
                        }
                    }
                }
            };
            if !literal.is_empty() {
                items.push(Item::Literal(std::mem::take(&mut literal).into()));
            }
            items.push(item);
        }
        if !literal.is_empty() {
            items.push(Item::Literal(literal.into()));
        }
        Ok(Format { items, json: false })
    }

    /// Append one line for `r`, terminated by `\n`, to `out`.
    ///
    /// Textual fields that are empty or absent are written as `-`, except
    /// `%q`, which is empty when there is no query (as in Apache).
    pub fn write(&self, r: &Record<'_>, out: &mut Vec<u8>) {
        let json = self.json;
        let field = |out: &mut Vec<u8>, s: &[u8]| if json { push_json(out, s) } else { push_field(out, s) };
        let opt = |out: &mut Vec<u8>, s: Option<&str>| field(out, s.unwrap_or_default().as_bytes());
        for item in &self.items {
            match item {
                Item::Literal(l) => out.extend_from_slice(l),
                // Writing to a Vec cannot fail.
                Item::ClientIp => {
                    let _ = write!(out, "{}", r.client.ip());
                }
                Item::ClientAddr => {
                    let _ = write!(out, "{}", r.client);
                }
                Item::Time => format_clf_time(r.time, out),
                Item::RequestLine if r.http2 => {
                    let line = r.request_line.strip_suffix(b" HTTP/1.1").unwrap_or(r.request_line);
                    field(out, line);
                    out.extend_from_slice(b" HTTP/2.0");
                }
                Item::RequestLine => field(out, r.request_line),
                Item::Protocol if r.http2 => out.extend_from_slice(b"HTTP/2.0"),
                Item::Protocol => {
                    let v = r.request_line.rsplit(|&b| b == b' ').next().unwrap_or_default();
                    field(out, v);
                }
                Item::Method => field(out, r.method),
                Item::Path => field(out, split_target(r.target).0),
                Item::Query if json => push_json(out, split_target(r.target).1),
                Item::Query => push_escaped(out, split_target(r.target).1),
                Item::Status if r.status == 0 => out.push(if json { b'0' } else { b'-' }),
                Item::Status => push_u64(out, u64::from(r.status)),
                Item::BytesClf if r.bytes == 0 => out.push(if json { b'0' } else { b'-' }),
                Item::BytesClf | Item::Bytes => push_u64(out, r.bytes),
                Item::Seconds => push_u64(out, r.duration.as_secs()),
                Item::Micros => push_u64(out, u64::try_from(r.duration.as_micros()).unwrap_or(u64::MAX)),
                Item::Node => opt(out, r.node),
                Item::RequiredNode => opt(out, r.required_node),
                Item::FavouredNode => opt(out, r.favoured_node),
                Item::VirtualServer => field(out, r.virtual_server.as_bytes()),
                Item::Pool => field(out, r.pool.as_bytes()),
                Item::Error => opt(out, r.error),
                Item::Dash => out.push(b'-'),
                Item::RequestHeader(name) => field(out, r.request_headers.get(name).unwrap_or_default()),
                Item::ResponseHeader(name) => field(out, r.response_headers.get(name).unwrap_or_default()),
            }
        }
        out.push(b'\n');
    }
}

/// `s` as the inside of a JSON string: valid UTF-8 passes, except `"`, `\`
/// and control characters, which are escaped; a byte that is not valid
/// UTF-8 is written as the code point of the same number (`\u00ff`), so
/// every line is valid JSON whatever a client sent.
fn push_json(out: &mut Vec<u8>, s: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let byte = |out: &mut Vec<u8>, b: u8| {
        out.extend_from_slice(&[b'\\', b'u', b'0', b'0', HEX[usize::from(b >> 4)], HEX[usize::from(b & 0xf)]])
    };
    for chunk in s.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '"' => out.extend_from_slice(b"\\\""),
                '\\' => out.extend_from_slice(b"\\\\"),
                c if (c as u32) < 0x20 || c == '\u{7f}' => byte(out, c as u8),
                c => {
                    let mut b = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
                }
            }
        }
        for &b in chunk.invalid() {
            byte(out, b);
        }
    }
}

/// `(path, query)`, the query keeping its leading `?`.
fn split_target(target: &[u8]) -> (&[u8], &[u8]) {
    match target.iter().position(|&b| b == b'?') {
        Some(q) => target.split_at(q),
        None => (target, &[]),
    }
}

fn push_field(out: &mut Vec<u8>, s: &[u8]) {
    if s.is_empty() {
        out.push(b'-');
    } else {
        push_escaped(out, s);
    }
}

/// Control bytes end or rewrite lines on a terminal, `"` and `\` would let a
/// value close its quotes or fake an escape, and bytes >= 0x80 may not be
/// valid UTF-8; all are written as `\xHH` so each log line stays one
/// unambiguous ASCII line.
fn needs_escape(b: u8) -> bool {
    !(0x20..0x7f).contains(&b) || b == b'"' || b == b'\\'
}

fn push_escaped(out: &mut Vec<u8>, s: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut rest = s;
    while let Some(pos) = rest.iter().position(|&b| needs_escape(b)) {
        let b = rest[pos];
        out.extend_from_slice(&rest[..pos]);
        out.extend_from_slice(&[b'\\', b'x', HEX[usize::from(b >> 4)], HEX[usize::from(b & 0xf)]]);
        rest = &rest[pos + 1..];
    }
    out.extend_from_slice(rest);
}

fn push_u64(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

fn push_2digits(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(&[b'0' + (n / 10 % 10) as u8, b'0' + (n % 10) as u8]);
}

/// Append `t` as Apache's `%t` does, in UTC: `18/Nov/2026:11:06:40 +0000`.
pub fn format_clf_time(t: SystemTime, out: &mut Vec<u8>) {
    const MONTHS: [&[u8; 3]; 12] =
        [b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec"];
    // Only a badly set clock yields a time before 1970; log the epoch rather than fail.
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (year, month, day) = civil_from_days(secs / 86_400);
    let s = secs % 86_400;
    push_2digits(out, day);
    out.push(b'/');
    out.extend_from_slice(MONTHS[(month - 1) as usize]);
    out.push(b'/');
    push_u64(out, year);
    out.push(b':');
    push_2digits(out, s / 3600);
    out.push(b':');
    push_2digits(out, s / 60 % 60);
    out.push(b':');
    push_2digits(out, s % 60);
    out.extend_from_slice(b" +0000");
}

/// `t` in RFC 3339 form, UTC, to the millisecond: `2026-11-30T23:10:05.123Z`
/// (syslog's RFC 5424 timestamps and the event log's).
pub fn format_rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (year, month, day) = civil_from_days(secs / 86_400);
    let s = secs % 86_400;
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z", s / 3600, s / 60 % 60, s % 60, d.subsec_millis())
}

/// `(year, month 1..=12, day 1..=31)` for a count of days since 1970-01-01:
/// Howard Hinnant's `civil_from_days`, specialised to non-negative days.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    // Shift the epoch to 0000-03-01 so that leap days fall at the end of a year.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + u64::from(month <= 2), month, day)
}

/// A shard's bounded buffer of formatted access-log lines. Pushing never
/// blocks: when the writer falls behind and the buffer is full, lines are
/// dropped and counted instead.
#[derive(Debug)]
pub struct LineBuffer {
    buf: Vec<u8>,
    /// A drained buffer handed back by [`LineBuffer::recycle`], so the
    /// steady state swaps two allocations instead of making new ones.
    spare: Vec<u8>,
    max_bytes: usize,
    dropped: u64,
}

impl LineBuffer {
    pub fn new(max_bytes: usize) -> Self {
        LineBuffer { buf: Vec::new(), spare: Vec::new(), max_bytes, dropped: 0 }
    }

    /// Append a line written by `f`. If the buffer would then hold more than
    /// `max_bytes`, the line is discarded, counted as dropped, and `false`
    /// returned.
    pub fn push_with(&mut self, f: impl FnOnce(&mut Vec<u8>)) -> bool {
        // Writing in place and truncating on overflow avoids formatting into
        // a scratch buffer and copying every line that fits.
        let start = self.buf.len();
        f(&mut self.buf);
        if self.buf.len() > self.max_bytes {
            self.buf.truncate(start);
            self.dropped += 1;
            false
        } else {
            true
        }
    }

    /// All buffered lines, leaving the buffer empty.
    pub fn take(&mut self) -> Vec<u8> {
        std::mem::replace(&mut self.buf, std::mem::take(&mut self.spare))
    }

    /// Hand back a buffer from [`LineBuffer::take`] once it has been written
    /// out, for reuse by a later `take`.
    pub fn recycle(&mut self, mut v: Vec<u8>) {
        if v.capacity() > self.spare.capacity() {
            v.clear();
            self.spare = v;
        }
    }

    /// Lines dropped because the buffer was full, since creation.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Bytes buffered.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_795_000_000; // 18/Nov/2026:11:06:40 +0000

    fn record<'a>() -> Record<'a> {
        Record {
            http2: false,
            client: "192.0.2.7:51234".parse().unwrap(),
            time: UNIX_EPOCH + Duration::from_secs(T0),
            duration: Duration::from_micros(2_345_678),
            request_line: b"GET /index.html?x=1&y=2 HTTP/1.1",
            method: b"GET",
            target: b"/index.html?x=1&y=2",
            status: 200,
            bytes: 1234,
            node: Some("10.0.0.1:80"),
            required_node: None,
            favoured_node: None,
            virtual_server: "web",
            pool: "backends",
            error: None,
            request_headers: Headers::List(&[
                (b"Host", b"example.com"),
                (b"Referer", b"http://example.com/"),
                (b"User-Agent", b"curl/8.0"),
            ]),
            response_headers: Headers::List(&[(b"Content-Type", b"text/html")]),
        }
    }

    fn line(fmt: &str, r: &Record<'_>) -> String {
        let mut out = Vec::new();
        Format::parse(fmt).unwrap().write(r, &mut out);
        String::from_utf8(out).unwrap()
    }

    fn time(secs: u64) -> String {
        let mut out = Vec::new();
        format_clf_time(UNIX_EPOCH + Duration::from_secs(secs), &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn combined_line() {
        assert_eq!(
            line(COMBINED, &record()),
            "192.0.2.7 - - [18/Nov/2026:11:06:40 +0000] \"GET /index.html?x=1&y=2 HTTP/1.1\" 200 1234 \
             \"http://example.com/\" \"curl/8.0\"\n"
        );
        let mut out = Vec::new();
        Format::named_or_parse("combined").unwrap().write(&record(), &mut out);
        assert_eq!(out, line(COMBINED, &record()).into_bytes());
    }

    #[test]
    fn common_line() {
        let common = Format::named_or_parse("common").unwrap();
        assert_eq!(common, Format::parse(COMMON).unwrap());
        let mut out = Vec::new();
        common.write(&record(), &mut out);
        assert_eq!(out, b"192.0.2.7 - - [18/Nov/2026:11:06:40 +0000] \"GET /index.html?x=1&y=2 HTTP/1.1\" 200 1234\n");
        assert_eq!(Format::named_or_parse("%s").unwrap(), Format::parse("%s").unwrap());
    }

    #[test]
    fn every_macro() {
        let r = record();
        assert_eq!(line("%h", &r), "192.0.2.7\n");
        assert_eq!(line("%a", &r), "192.0.2.7:51234\n");
        assert_eq!(line("%t", &r), "18/Nov/2026:11:06:40 +0000\n");
        assert_eq!(line("%r", &r), "GET /index.html?x=1&y=2 HTTP/1.1\n");
        assert_eq!(line("%m", &r), "GET\n");
        assert_eq!(line("%U", &r), "/index.html\n");
        assert_eq!(line("%q", &r), "?x=1&y=2\n");
        assert_eq!(line("%s %>s %<s", &r), "200 200 200\n");
        assert_eq!(line("%b", &r), "1234\n");
        assert_eq!(line("%B", &r), "1234\n");
        assert_eq!(line("%T", &r), "2\n");
        assert_eq!(line("%D", &r), "2345678\n");
        assert_eq!(line("%n", &r), "10.0.0.1:80\n");
        assert_eq!(line("%N", &r), "-\n");
        assert_eq!(line("%F", &r), "-\n");
        assert_eq!(line("%v", &r), "web\n");
        assert_eq!(line("%p", &r), "backends\n");
        assert_eq!(line("%e", &r), "-\n");
        assert_eq!(line("%l %u", &r), "- -\n");
        assert_eq!(line("%{Host}i", &r), "example.com\n");
        assert_eq!(line("%{Content-Type}o", &r), "text/html\n");
        assert_eq!(line("%{X-Missing}i %{X-Missing}o", &r), "- -\n");

        let r = Record {
            client: "[2001:db8::1]:443".parse().unwrap(),
            target: b"/plain",
            status: 0,
            bytes: 0,
            duration: Duration::from_millis(999),
            node: None,
            required_node: Some("n2"),
            favoured_node: Some("n3"),
            error: Some("connect refused"),
            ..record()
        };
        assert_eq!(line("%h %a", &r), "2001:db8::1 [2001:db8::1]:443\n");
        assert_eq!(line("%U|%q|", &r), "/plain||\n");
        assert_eq!(line("%s %b %B %T %D", &r), "- - 0 0 999000\n");
        assert_eq!(line("%n %N %F %e", &r), "- n2 n3 connect refused\n");

        let r = Record { request_line: b"", method: b"", target: b"", virtual_server: "", pool: "", ..record() };
        assert_eq!(line("%r %m %U %v %p|%q|", &r), "- - - - -||\n");
    }

    #[test]
    fn literals_and_percent() {
        let r = record();
        assert_eq!(line("", &r), "\n");
        assert_eq!(line("plain text", &r), "plain text\n");
        assert_eq!(line("100%% %s%%", &r), "100% 200%\n");
        assert_eq!(line("%%s", &r), "%s\n");
        assert_eq!(line("é%sé", &r), "é200é\n");
    }

    #[test]
    fn escaping() {
        let r = Record {
            request_line: b"GET /a\"b\\c HTTP/1.1\r\nX-Forged: 1",
            target: b"/\x00\xff?q=\"",
            request_headers: Headers::List(&[(
                b"User-Agent",
                b"evil\"agent\n127.0.0.1 - - [x] \"GET / HTTP/1.1\" 200 1\x7f\xc3\xa9\t",
            )]),
            response_headers: Headers::List(&[(b"Server", b"a\rb")]),
            error: Some("bad \"thing\""),
            node: Some("n\\1"),
            ..record()
        };
        assert_eq!(line("%r", &r), "GET /a\\x22b\\x5cc HTTP/1.1\\x0d\\x0aX-Forged: 1\n");
        assert_eq!(line("%U %q", &r), "/\\x00\\xff ?q=\\x22\n");
        assert_eq!(
            line("%{user-agent}i", &r),
            "evil\\x22agent\\x0a127.0.0.1 - - [x] \\x22GET / HTTP/1.1\\x22 200 1\\x7f\\xc3\\xa9\\x09\n"
        );
        assert_eq!(line("%{Server}o", &r), "a\\x0db\n");
        assert_eq!(line("%e %n", &r), "bad \\x22thing\\x22 n\\x5c1\n");
        // However hostile the input, a line is one line.
        let mut out = Vec::new();
        Format::parse(COMBINED).unwrap().write(&r, &mut out);
        assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 1);
        assert_eq!(out.last(), Some(&b'\n'));
        assert!(out.iter().all(|&b| b == b'\n' || (0x20..0x7f).contains(&b)));
    }

    #[test]
    fn header_lookup() {
        let r = Record {
            request_headers: Headers::List(&[(b"x-id", b"first"), (b"X-ID", b"second"), (b"Empty", b"")]),
            response_headers: Headers::List(&[(b"SET-COOKIE", b"a=1")]),
            ..record()
        };
        assert_eq!(line("%{X-Id}i %{x-ID}i", &r), "first first\n");
        assert_eq!(line("%{set-cookie}o %{Set-Cookie}i", &r), "a=1 -\n");
        assert_eq!(line("%{Empty}i", &r), "-\n");
        let r = Record { request_headers: Headers::List(&[]), response_headers: Headers::List(&[]), ..record() };
        assert_eq!(line("%{Referer}i %{Server}o", &r), "- -\n");
    }

    #[test]
    fn parse_errors() {
        let err = Format::parse("%h %x").unwrap_err();
        assert!(err.contains("\"%x\"") && err.contains("byte 3"), "{err}");
        let err = Format::parse("ab%é").unwrap_err();
        assert!(err.contains("\"%é\"") && err.contains("byte 2"), "{err}");
        let err = Format::parse("%>b").unwrap_err();
        assert!(err.contains("\"%>\"") && err.contains("byte 0"), "{err}");
        let err = Format::parse("%s %").unwrap_err();
        assert!(err.contains("byte 3"), "{err}");
        let err = Format::parse("%s %{Host").unwrap_err();
        assert!(err.contains("unterminated") && err.contains("byte 3"), "{err}");
        let err = Format::parse("%{Host}x").unwrap_err();
        assert!(err.contains("\"%{Host}x\"") && err.contains("byte 0"), "{err}");
        let err = Format::parse("-%{Host}").unwrap_err();
        assert!(err.contains("byte 1"), "{err}");
        let err = Format::parse("%{}i").unwrap_err();
        assert!(err.contains("empty header name"), "{err}");
    }

    #[test]
    fn clf_time() {
        assert_eq!(time(T0), "18/Nov/2026:11:06:40 +0000");
        assert_eq!(time(0), "01/Jan/1970:00:00:00 +0000");
        assert_eq!(time(951_782_400), "29/Feb/2000:00:00:00 +0000");
        assert_eq!(time(1_709_164_800), "29/Feb/2024:00:00:00 +0000");
        assert_eq!(time(4_102_444_799), "31/Dec/2099:23:59:59 +0000");
        assert_eq!(time(253_402_300_799), "31/Dec/9999:23:59:59 +0000");
        let mut out = Vec::new();
        format_clf_time(UNIX_EPOCH - Duration::from_secs(10), &mut out);
        assert_eq!(out, b"01/Jan/1970:00:00:00 +0000");
    }

    #[test]
    fn civil_from_days_matches_naive_calendar() {
        let (mut y, mut m, mut d) = (1970, 1, 1);
        for days in 0..(400 * 366) {
            assert_eq!(civil_from_days(days), (y, m, d), "day {days}");
            let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
            let month_len = match m {
                2 if leap => 29,
                2 => 28,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            };
            d += 1;
            if d > month_len {
                d = 1;
                m += 1;
                if m > 12 {
                    m = 1;
                    y += 1;
                }
            }
        }
    }

    #[test]
    fn line_buffer_drops_when_full() {
        let mut b = LineBuffer::new(10);
        assert!(b.is_empty());
        assert!(b.push_with(|v| v.extend_from_slice(b"1234\n")));
        assert!(b.push_with(|v| v.extend_from_slice(b"abcd\n")));
        assert_eq!(b.len(), 10);
        // Full: even a one-byte line is dropped whole, and what was there stays intact.
        assert!(!b.push_with(|v| v.push(b'\n')));
        assert_eq!(b.dropped(), 1);
        assert_eq!(b.len(), 10);

        let first = b.take();
        assert_eq!(first, b"1234\nabcd\n");
        assert!(b.is_empty());
        // A line larger than the whole buffer can never fit.
        assert!(!b.push_with(|v| v.extend_from_slice(b"0123456789A")));
        assert_eq!(b.dropped(), 2);
        assert!(b.is_empty());
        assert!(b.push_with(|v| v.extend_from_slice(b"xy\n")));
        assert!(!b.push_with(|v| v.extend_from_slice(b"too long\n")));
        assert_eq!(b.take(), b"xy\n");
        assert_eq!(b.dropped(), 3);

        // A recycled buffer comes back empty, keeping its allocation.
        let cap = first.capacity();
        let ptr = first.as_ptr();
        b.recycle(first);
        assert!(b.push_with(|v| v.extend_from_slice(b"z\n")));
        assert_eq!(b.take(), b"z\n");
        let reused = b.take();
        assert!(reused.is_empty());
        assert_eq!((reused.as_ptr(), reused.capacity()), (ptr, cap));
    }

    #[test]
    fn line_buffer_with_format() {
        let fmt = Format::parse(COMMON).unwrap();
        let r = record();
        let mut b = LineBuffer::new(200);
        let mut pushed = 0;
        while b.push_with(|v| fmt.write(&r, v)) {
            pushed += 1;
        }
        let data = b.take();
        assert!(data.len() <= 200);
        assert_eq!(data.iter().filter(|&&c| c == b'\n').count(), pushed);
        assert!(data.ends_with(b"\n"));
        assert_eq!(b.dropped(), 1);
    }

    #[test]
    fn the_json_format_is_json_whatever_the_values() {
        let f = Format::named_or_parse("json").unwrap();
        let mut r = record();
        r.status = 0;
        r.node = None;
        r.request_headers = Headers::List(&[(b"User-Agent", b"a\"b\\c\x01\xff\xc3\xa9")]);
        let mut out = Vec::new();
        f.write(&r, &mut out);
        let line = String::from_utf8(out).unwrap();
        assert!(line.ends_with("}\n"), "{line}");
        assert!(line.contains(r#""status":0,"#) && line.contains(r#""node":"","#), "{line}");
        assert!(line.contains(r#""user_agent":"a\"b\\c\u0001\u00ffé""#), "{line}");
    }
}
