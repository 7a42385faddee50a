//! Fuzzing entry points for the parsers of untrusted input: HTTP/1 request
//! heads ([`request::parse`]), response heads ([`response::parse`]), the
//! chunked framer ([`ChunkedFramer`]) and the TLS hello reader
//! ([`hello::client_hello`], [`hello::server_hello`]), a client's
//! `Accept-Encoding` ([`crate::http::coding`]), and the rule
//! language ([`crate::rules`]: lexer, parser, compiler and the machine
//! running what compiles, on a small budget). Each function takes
//! arbitrary bytes, runs the parser the ways the proxy runs it (whole, on
//! prefixes as bytes arrive, into a head reused from an earlier parse,
//! pipelined, in pieces) and panics when an invariant the proxy relies on
//! fails. Not panicking inside the parser is the least of them.
//!
//! It is library code rather than part of `fuzz/` because two users share
//! it: the cargo-fuzz targets (`fuzz/fuzz_targets/`, nightly, one line
//! each) and the corpus regression test (`tests/fuzz_corpus.rs`, stable,
//! run by plain `cargo test`), so a committed corpus keeps checking exactly
//! what the fuzzer checked. How to run them: docs/fuzzing.md.
//!
//! The HTTP functions read their options (limits, the HEAD flag, split
//! points, piece sizes) from the first input byte, which is not parsed.

use crate::http::chunked::{ChunkError, ChunkedFramer};
use crate::http::fields::{Fields, Span};
use crate::http::request::{self, Limits, RequestHead};
use crate::http::response::{self, ResponseHead};
use crate::http::{offset, Framing, Version};
use crate::tls::hello::{self, HelloError};
use std::fmt::Debug;
use std::ops::Range;

/// Request limits, picked by the option byte's low two bits: shoal's
/// defaults, tight ones, more header slots than the parser has, and none.
const REQUEST_LIMITS: [Limits; 4] = [
    Limits { max_head: 32 * 1024, max_headers: 100, max_uri: 8 * 1024 },
    Limits { max_head: 128, max_headers: 4, max_uri: 16 },
    Limits { max_head: 1024, max_headers: 1000, max_uri: 1 },
    NO_LIMITS,
];
const NO_LIMITS: Limits = Limits { max_head: usize::MAX, max_headers: usize::MAX, max_uri: usize::MAX };

/// Response `max_head`, picked by the option byte's bits 1–2.
const RESPONSE_MAX_HEAD: [usize; 4] = [8192, 64, 32 * 1024, usize::MAX];

/// Most messages followed along one pipelined input.
const MAX_PIPELINED: usize = 8;

/// A request head, then the requests pipelined after it (while each head
/// and body is complete). Option byte: limits (bits 0–1), split point
/// (bits 2–7), chunk piece sizes (all).
pub fn request_head(data: &[u8]) {
    let Some((&opt, mut buf)) = data.split_first() else { return };
    let limits = REQUEST_LIMITS[usize::from(opt & 3)];
    for _ in 0..MAX_PIPELINED {
        let Some(next) = one_request(buf, &limits, opt) else { return };
        buf = &buf[next..];
    }
}

/// Check the request at the start of `buf`; where the next one starts.
fn one_request(buf: &[u8], limits: &Limits, opt: u8) -> Option<usize> {
    let parse = request::parse;
    let mut head = RequestHead::default();
    let result = parse(buf, limits, &mut head);
    let complete = result == Ok(Some(()));
    // The pipeline parses into one head per connection.
    let mut reused = RequestHead::default();
    parse(EARLIER_REQUEST, &NO_LIMITS, &mut reused).expect("the earlier request parses");
    assert_eq!(parse(buf, limits, &mut reused), result, "a reused head changed the result");
    // The pipeline parses again as bytes arrive: a prefix must not be
    // refused when the whole is accepted, nor accepted differently.
    let end = if complete { head.len } else { buf.len() };
    for k in [split(opt >> 2, 63, end), end.saturating_sub(1)] {
        let mut p = RequestHead::default();
        match parse(&buf[..k], limits, &mut p) {
            Ok(None) => {}
            Ok(Some(())) => same(&p, &head, &format!("a {k}-byte prefix parsed differently")),
            Err(e) => assert!(result.is_err(), "a {k}-byte prefix refused ({e}), the whole gave {result:?}"),
        }
    }
    match result {
        Ok(Some(())) => {}
        Ok(None) => {
            let e = request::incomplete_error(buf);
            assert!(matches!(e.status, 414 | 431), "{e}");
            return None;
        }
        Err(e) => {
            assert!(matches!(e.status, 400 | 405 | 414 | 417 | 431 | 505), "{e}");
            return None;
        }
    }
    same(&reused, &head, "a reused head holds something else");
    check_request(buf, limits, &head);
    // Exactly `len` bytes, and the loosest limits, give the same head.
    for (b, l) in [(&buf[..head.len], limits), (buf, &NO_LIMITS)] {
        let mut again = RequestHead::default();
        assert_eq!(parse(b, l, &mut again), Ok(Some(())));
        same(&again, &head, "a re-parse differs");
    }
    let body = &buf[head.len..];
    let body_len = match head.framing {
        Framing::None => Some(0),
        Framing::Length(n) => usize::try_from(n).ok().filter(|&n| n <= body.len()),
        Framing::Chunked => chunked_body(body, opt),
        Framing::UntilClose => unreachable!("checked"),
    }?;
    Some(head.len + body_len)
}

/// Parsed into a head before the input is: it sets every field.
const EARLIER_REQUEST: &[u8] = b"POST http://a/b HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\
    Connection: upgrade, keep-alive, close, x-a\r\nUpgrade: w\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\n\r\n";

fn check_request(buf: &[u8], limits: &Limits, h: &RequestHead) {
    assert!(0 < h.len && h.len <= buf.len() && h.len <= limits.max_head, "len {} of {}", h.len, buf.len());
    let head = &buf[..h.len];
    assert!(head.ends_with(b"\n"), "head does not end a line");
    // The head's own copy is exactly the bytes received.
    assert_eq!(h.fields.bytes(), head, "the head's copy differs from what was received");
    let (method, target) = (h.method(), h.target());
    let span = |part: &[u8]| offset(h.fields.bytes(), part)..offset(h.fields.bytes(), part) + part.len();
    ordered(head, 0, &[&span(method), &span(target)]);
    assert_eq!(target, h.received_target());
    assert!(!method.is_empty() && method.iter().all(|&c| tchar(c)) && method != b"CONNECT", "method {method:?}");
    assert!(!target.is_empty() && target.len() <= limits.max_uri, "target length {}", target.len());
    assert!(!target.iter().any(|&c| c <= b' ' || c == 0x7f || c == b'#'), "target {target:?}");
    let line = h.request_line();
    assert!(line.starts_with(method) && !line.contains(&b'\n'), "request line {line:?}");
    assert!(h.version != Version::Http2 && h.fields.len() <= limits.max_headers);
    fields(head, span(target).end, &h.fields);
    let count = |name: &str| h.fields.get_all(name).count();
    let http10 = h.version == Version::Http10;
    assert!(http10 || count("host") == 1, "HTTP/1.1 without exactly one Host");
    assert_eq!(h.expect_continue, count("expect") > 0);
    assert_eq!(h.upgrade, h.connection.upgrade && count("upgrade") > 0);
    assert_eq!(h.keep_alive(), !h.connection.close && (!http10 || h.connection.keep_alive));
    ordered(head, 0, &h.connection.others.iter().map(|s| s.range()).collect::<Vec<_>>().iter().collect::<Vec<_>>());
    framing(&h.fields, h.framing, false);
    assert!(h.framing != Framing::UntilClose && (h.framing != Framing::Chunked || !http10));
}

/// A response head, then those after it on the connection (1xx before the
/// final one; keepalive). Option byte: HEAD request (bit 0), `max_head`
/// (bits 1–2), split point (bits 3–7), chunk piece sizes (all).
pub fn response_head(data: &[u8]) {
    let Some((&opt, mut buf)) = data.split_first() else { return };
    let head_request = opt & 1 == 1;
    let max_head = RESPONSE_MAX_HEAD[usize::from(opt >> 1 & 3)];
    for _ in 0..MAX_PIPELINED {
        let Some(next) = one_response(buf, max_head, head_request, opt) else { return };
        buf = &buf[next..];
    }
}

/// Check the response at the start of `buf`; where the next one starts.
fn one_response(buf: &[u8], max_head: usize, head_request: bool, opt: u8) -> Option<usize> {
    let mut head = ResponseHead::default();
    let result = response::parse(buf, max_head, head_request, &mut head);
    let complete = result == Ok(Some(()));
    let mut reused = ResponseHead::default();
    response::parse(EARLIER_RESPONSE, usize::MAX, false, &mut reused).expect("the earlier response parses");
    assert_eq!(response::parse(buf, max_head, head_request, &mut reused), result, "a reused head changed the result");
    let end = if complete { head.len } else { buf.len() };
    for k in [split(opt >> 3, 31, end), end.saturating_sub(1)] {
        let mut p = ResponseHead::default();
        match response::parse(&buf[..k], max_head, head_request, &mut p) {
            Ok(None) => {}
            Ok(Some(())) => same(&p, &head, &format!("a {k}-byte prefix parsed differently")),
            Err(e) => assert!(result.is_err(), "a {k}-byte prefix refused ({e}), the whole gave {result:?}"),
        }
    }
    match result {
        Ok(Some(())) => {}
        Ok(None) => {
            assert!(buf.len() < max_head, "an incomplete head at max_head is not refused");
            return None;
        }
        Err(e) => {
            assert_eq!(e.status, 502, "{e}");
            return None;
        }
    }
    same(&reused, &head, "a reused head holds something else");
    check_response(buf, max_head, head_request, &head);
    for (b, m) in [(&buf[..head.len], max_head), (buf, usize::MAX)] {
        let mut again = ResponseHead::default();
        assert_eq!(response::parse(b, m, head_request, &mut again), Ok(Some(())));
        same(&again, &head, "a re-parse differs");
    }
    // The same response to a HEAD request differs in its framing alone.
    let mut as_head = ResponseHead::default();
    assert_eq!(response::parse(buf, max_head, true, &mut as_head), Ok(Some(())));
    assert_eq!(as_head.framing, Framing::None);
    as_head.framing = head.framing;
    same(&as_head, &head, "the HEAD flag changed more than framing");
    let body = &buf[head.len..];
    let body_len = match head.framing {
        Framing::None => Some(0),
        Framing::Length(n) => usize::try_from(n).ok().filter(|&n| n <= body.len()),
        Framing::Chunked => chunked_body(body, opt),
        Framing::UntilClose => None,
    }?;
    Some(head.len + body_len)
}

/// Likewise for responses.
const EARLIER_RESPONSE: &[u8] = b"HTTP/1.0 599 Earlier Reason\r\nConnection: keep-alive, close, upgrade, x-a\r\n\
    Transfer-Encoding: gzip\r\nX-A: 1\r\n\r\n";

fn check_response(buf: &[u8], max_head: usize, head_request: bool, h: &ResponseHead) {
    assert!(0 < h.len && h.len <= buf.len() && h.len <= max_head, "len {} of {}", h.len, buf.len());
    let head = &buf[..h.len];
    assert!(head.ends_with(b"\n"), "head does not end a line");
    assert_eq!(h.fields.bytes(), head, "the head's copy differs from what was received");
    assert!((100..=999).contains(&h.status) && h.version != Version::Http2, "status {} {:?}", h.status, h.version);
    // What shoal writes after "HTTP/1.1 {status} " in the client's status
    // line: the reason as the node sent it, ending its status line.
    let reason = h.reason();
    let at = offset(h.fields.bytes(), reason);
    let (start, line_end) = crate::http::first_line(head);
    let ends_line = at >= start + 13 && at + reason.len() == line_end;
    assert!(reason.is_empty() || ends_line, "reason {reason:?} at {at} in a line {start}..{line_end}");
    let code = &head[start..line_end];
    assert!(code.get(9..12) == Some(h.status.to_string().as_bytes()), "status line {code:?} for {}", h.status);
    assert!(!reason.iter().any(|&c| matches!(c, b'\r' | b'\n' | 0)), "reason {reason:?}");
    fields(head, line_end, &h.fields);
    ordered(head, 0, &h.connection.others.iter().map(|s| s.range()).collect::<Vec<_>>().iter().collect::<Vec<_>>());
    let no_body = head_request || (100..200).contains(&h.status) || h.status == 204 || h.status == 304;
    if no_body {
        assert_eq!(h.framing, Framing::None);
    } else {
        framing(&h.fields, h.framing, true);
    }
    assert!(h.framing != Framing::UntilClose || !h.node_keep_alive());
}

/// Field spans in order after `from`, names tokens, values trimmed and
/// without line breaks, and only the colon and spaces between name and
/// value (a received field goes onward as its bytes from name to value).
fn fields(head: &[u8], from: usize, fields: &Fields) {
    let spans: Vec<(Span, Span)> = fields.spans().collect();
    let ranges: Vec<std::ops::Range<usize>> = spans.iter().flat_map(|(n, v)| [n.range(), v.range()]).collect();
    ordered(head, from, &ranges.iter().collect::<Vec<_>>());
    for (n, v) in spans {
        let (name, value) = (&head[n.range()], &head[v.range()]);
        assert!(!name.is_empty() && name.iter().all(|&c| tchar(c)), "header name {name:?}");
        let between = &head[n.range().end..v.range().start];
        let colon =
            between.split_first().is_some_and(|(&c, ws)| c == b':' && ws.iter().all(|&c| c == b' ' || c == b'\t'));
        assert!(colon, "between name and value: {between:?}");
        assert!(!value.iter().any(|&c| matches!(c, b'\r' | b'\n' | 0)), "header value {value:?}");
        let edge = |c: Option<&u8>| c.is_some_and(|c| matches!(c, b' ' | b'\t'));
        assert!(!edge(value.first()) && !edge(value.last()), "untrimmed value {value:?}");
    }
}

/// The framing agrees with the Content-Length and Transfer-Encoding fields
/// (for a message that may have a body). `length_for_none`: no body needs
/// `Content-Length: 0` (a response without one runs until close).
fn framing(fields: &Fields, framing: Framing, length_for_none: bool) {
    let lengths: Vec<Option<u64>> =
        fields.get_all("content-length").map(|v| std::str::from_utf8(v).ok().and_then(|s| s.parse().ok())).collect();
    let te = fields.get_all("transfer-encoding").count() > 0;
    let length = |n: u64| lengths.iter().all(|&l| l == Some(n));
    match framing {
        Framing::None => {
            let ok = !te && length(0) && !(length_for_none && lengths.is_empty());
            assert!(ok, "no body, yet {lengths:?} te {te}")
        }
        Framing::Length(n) => assert!(!te && n > 0 && !lengths.is_empty() && length(n), "{n} bytes: {lengths:?}"),
        Framing::Chunked => assert!(te && lengths.is_empty(), "chunked with {lengths:?}"),
        Framing::UntilClose => assert!(lengths.is_empty(), "until close with {lengths:?}"),
    }
}

/// A chunked body (RFC 9112 §7.1) alone. Option byte: piece sizes.
pub fn chunked(data: &[u8]) {
    if let Some((&opt, body)) = data.split_first() {
        chunked_body(body, opt);
    }
}

/// Frame `body` whole, in pieces sized from `opt` and byte by byte; the
/// outcomes must agree, and agree with a plain reading of the grammar when
/// the body ends. Returns the body's length once it ended.
fn chunked_body(body: &[u8], opt: u8) -> Option<usize> {
    let whole = frame(body, || body.len());
    let (mut x, max) = (u32::from(opt) | 0x100, [3, 8, 64, 512][usize::from(opt >> 6)]);
    let pieces = frame(body, || {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        x as usize % max + 1
    });
    assert_eq!(pieces, whole, "fed in pieces of up to {max} bytes");
    assert_eq!(frame(body, || 1), whole, "fed byte by byte");
    let plain = plain_chunked(body);
    match whole.end {
        Ok((used, true)) => assert_eq!(plain, Some((used, whole.payload)), "a plain reading differs"),
        Ok((_, false)) => assert_eq!(plain, None, "a complete body is still awaited"),
        Err(_) => {}
    }
    match whole.end {
        Ok((used, true)) => Some(used),
        _ => None,
    }
}

/// What a framer made of a body: bytes used and whether it ended (or the
/// error), and the payload ranges with adjacent ones merged.
#[derive(Debug, PartialEq)]
struct Framed {
    end: Result<(usize, bool), ChunkError>,
    payload: Vec<Range<usize>>,
}

/// Feed `body` to a framer in pieces of `piece()` bytes, as the proxy does
/// with each read, checking what each call reports.
fn frame(body: &[u8], mut piece: impl FnMut() -> usize) -> Framed {
    let mut f = ChunkedFramer::default();
    let mut payload: Vec<Range<usize>> = Vec::new();
    let mut at = 0;
    while at < body.len() {
        let given = &body[at..body.len().min(at + piece().max(1))];
        let mut last = 0;
        let used = f.advance(given, |r| {
            assert!(last <= r.start && r.start < r.end && r.end <= given.len(), "payload {r:?} after {last}");
            last = r.end;
            match payload.last_mut() {
                Some(p) if p.end == at + r.start => p.end = at + r.end,
                _ => payload.push(at + r.start..at + r.end),
            }
        });
        let used = match used {
            Ok(n) => n,
            Err(e) => return Framed { end: Err(e), payload },
        };
        assert!(last <= used && used <= given.len(), "used {used} of {} (payload to {last})", given.len());
        at += used;
        if f.is_done() {
            assert!(body[..at].ends_with(b"\r\n"), "ended after {:?}", &body[..at]);
            assert_eq!(f.advance(&body[at..], |r| panic!("payload {r:?} after the end")), Ok(0));
            return Framed { end: Ok((at, true)), payload };
        }
        assert_eq!(used, given.len(), "an unfinished body leaves bytes unused");
    }
    Framed { end: Ok((at, false)), payload }
}

/// The grammar read plainly, with none of the framer's limits: the body's
/// length and its payload ranges, if it is complete.
fn plain_chunked(b: &[u8]) -> Option<(usize, Vec<Range<usize>>)> {
    let line_end = |from: usize| b.get(from..)?.windows(2).position(|w| w == b"\r\n").map(|n| from + n);
    let (mut at, mut payload) = (0, Vec::new());
    loop {
        let end = line_end(at)?;
        let size = b[at..end].split(|&c| c == b';').next()?;
        let size = u64::from_str_radix(std::str::from_utf8(size).ok()?, 16).ok()?;
        at = end + 2;
        if size == 0 {
            break;
        }
        let data_end = at.checked_add(usize::try_from(size).ok()?)?;
        if b.get(data_end..data_end.checked_add(2)?)? != b"\r\n" {
            return None;
        }
        payload.push(at..data_end);
        at = data_end + 2;
    }
    loop {
        let end = line_end(at)?;
        let empty = end == at;
        at = end + 2;
        if empty {
            return Some((at, payload));
        }
    }
}

/// The bytes a passthrough listener or node sends first, read as a
/// ClientHello and as a ServerHello. No option byte: seeds are captures.
pub fn tls_hello(data: &[u8]) {
    let client = hello_stable(data, hello::client_hello);
    let server = hello_stable(data, hello::server_hello);
    if let Ok(Some(c)) = &client {
        assert!(c.session_id.len() <= 32, "session id of {}", c.session_id.len());
        if let Some(sni) = &c.sni {
            let ok = !sni.is_empty() && sni.is_ascii() && !sni.bytes().any(|c| c.is_ascii_uppercase());
            assert!(ok, "SNI {sni:?}");
            let sent = handshake(data).windows(sni.len()).any(|w| w.eq_ignore_ascii_case(sni.as_bytes()));
            assert!(sent, "SNI {sni:?} is not in the handshake bytes");
        }
        assert!(!matches!(server, Ok(Some(_))), "one message read as both hellos");
    }
    if let Ok(Some(s)) = &server {
        assert!(s.session_id.len() <= 32, "session id of {}", s.session_id.len());
    }
}

/// `parse` gives one answer however the bytes arrive: prefixes are
/// incomplete or already that answer, bytes after a complete or refused
/// hello change nothing, and the same handshake bytes in records of
/// another size read the same.
fn hello_stable<T: Debug + PartialEq>(
    data: &[u8],
    parse: fn(&[u8]) -> Result<Option<T>, HelloError>,
) -> Result<Option<T>, HelloError> {
    let full = parse(data);
    let hash = data.iter().fold(0x811c_9dc5_u32, |h, &c| (h ^ u32::from(c)).wrapping_mul(0x0100_0193)) as usize;
    for k in [hash % (data.len() + 1), data.len().saturating_sub(1)] {
        match parse(&data[..k]) {
            Ok(None) => {}
            r => assert_eq!(r, full, "a {k}-byte prefix"),
        }
    }
    if full != Ok(None) {
        assert_eq!(parse(&[data, data].concat()), full, "bytes after the hello");
    }
    if let Ok(Some(_)) = full {
        let size = 1 + (hash >> 8) % 300;
        assert_eq!(parse(&reframe(data, size)), full, "the hello in records of {size} bytes");
    }
    full
}

/// The payload of the complete handshake records at the start of `data`.
fn handshake(data: &[u8]) -> Vec<u8> {
    let (mut msg, mut rest) = (Vec::new(), data);
    while let [22, 3, _, a, b, tail @ ..] = rest {
        let Some(payload) = tail.get(..usize::from(u16::from_be_bytes([*a, *b]))) else { break };
        msg.extend_from_slice(payload);
        rest = &tail[payload.len()..];
    }
    msg
}

/// The handshake bytes of `data` in records of `size` bytes.
fn reframe(data: &[u8], size: usize) -> Vec<u8> {
    let msg = handshake(data);
    msg.chunks(size).flat_map(|c| [&[22, 3, 1][..], &(c.len() as u16).to_be_bytes(), c].concat()).collect()
}

/// `part` of `end`, as a byte offset no greater than `end`.
fn split(part: u8, of: u8, end: usize) -> usize {
    end * usize::from(part.min(of)) / usize::from(of)
}

/// Spans non-empty or not, each starting where the previous one ended or
/// later, the first at `from` or later, all inside `buf`.
fn ordered(buf: &[u8], from: usize, spans: &[&Range<usize>]) {
    let mut at = from;
    for r in spans {
        assert!(at <= r.start && r.start <= r.end && r.end <= buf.len(), "span {r:?} after {at} in {}", buf.len());
        at = r.end;
    }
}

/// Two parsed heads are the same (spans, framing, flags: all they hold).
fn same<T: Debug>(a: &T, b: &T, what: &str) {
    assert_eq!(format!("{a:?}"), format!("{b:?}"), "{what}");
}

/// RFC 9110 §5.6.2 token characters.
fn tchar(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c)
}

/// The rule language: parse, compile and, when it compiles, run the rule
/// (no connection; a small budget, so every loop ends). Checks that every
/// error names a line and column inside the source, that compiling is
/// deterministic, and that a run ends within its budget.
pub fn rule(data: &[u8]) {
    use crate::rules::builtins::{data::Store, Shared, State};
    use crate::rules::vm::{Budget, Outcome, Vm};
    let lines = data.iter().filter(|&&b| b == b'\n').count() as u32 + 1;
    let check_pos = |e: &crate::rules::RuleError| {
        assert!(e.line >= 1 && e.line <= lines, "error line {} of {lines}: {e}", e.line);
        assert!(e.col >= 1, "error column 0: {e}");
        assert!(!e.message.is_empty());
    };
    let ast = match crate::rules::parser::parse(data) {
        Ok(a) => a,
        Err(e) => return check_pos(&e),
    };
    // Imports resolve to the rule itself (parsed again), so import code
    // paths run too.
    let library = |_: &str| Some(crate::rules::parser::parse(data));
    let prog = match crate::rules::compile::compile("fuzz", &ast, &library) {
        Ok(p) => p,
        Err(e) => return check_pos(&e),
    };
    let again = crate::rules::compile::compile("fuzz", &ast, &library).expect("compiles the second time too");
    assert_eq!(prog.code, again.code, "compiling is deterministic");
    let budget = Budget { instructions: 20_000, memory: 1 << 20, yield_every: 5_000 };
    let shared = Shared::new(std::sync::Arc::new(Store::new(64 << 10, 256)));
    let mut state = State::default();
    let mut vm = Vm::new(std::rc::Rc::new(prog), budget);
    match crate::rules::vm::run_detached(&mut vm, &mut state, &shared) {
        Outcome::Failed { line, .. } => assert!(line <= lines, "failure at line {line} of {lines}"),
        Outcome::Yield => unreachable!("run_detached runs through yields"),
        Outcome::Wait(_) | Outcome::Done | Outcome::Stop(_) => {}
    }
    assert!(vm.steps() <= budget.instructions, "a run went past its instruction budget ({} steps)", vm.steps());
}

/// A client's `Accept-Encoding` (values split at NUL bytes, as a request
/// with several such fields gives them): negotiation picks an offered
/// coding or none, for every order of offers; the canonical form the
/// cache varies on is no longer than the input, is its own canonical
/// form, and negotiates as the input does.
pub fn accept_encoding(data: &[u8]) {
    use crate::http::coding::{self, Coding};
    let values = || data.split(|&b| b == 0);
    let offers: [&[Coding]; 4] =
        [&[Coding::Zstd, Coding::Brotli, Coding::Gzip], &[Coding::Gzip, Coding::Brotli], &[Coding::Brotli], &[]];
    let mut norm = Vec::new();
    coding::normalize(values(), &mut norm);
    assert!(norm.len() <= data.len(), "the canonical form grew: {:?} from {:?}", norm, data);
    let mut again = Vec::new();
    coding::normalize(std::iter::once(&norm[..]), &mut again);
    assert_eq!(again, norm, "the canonical form is not canonical");
    for offered in offers {
        let chosen = coding::negotiate(values(), offered);
        assert!(chosen.is_none_or(|c| offered.contains(&c)), "{chosen:?} was not offered");
        assert_eq!(
            coding::negotiate(std::iter::once(&norm[..]), offered),
            chosen,
            "the canonical form negotiates otherwise"
        );
    }
}

/// The HTTP/2 flood guard (`h2::flood`) over arbitrary bytes after the
/// connection preface: it never panics, and its verdict (whether it
/// trips, and on which frame type) does not depend on how the bytes
/// arrive: whole, in two reads split where the first byte says, or one
/// byte at a time. With no refill (0 per second) the verdict is a pure
/// function of the bytes.
pub fn h2_guard(data: &[u8]) {
    use crate::h2::flood::{Guard, PREFACE};
    let mut bytes = PREFACE.to_vec();
    bytes.extend_from_slice(data);
    let whole = Guard::new(0, 50).scan(&bytes);
    let at = PREFACE.len() + data.first().map_or(0, |&b| usize::from(b)).min(data.len());
    let mut two = Guard::new(0, 50);
    let split = two.scan(&bytes[..at]).and_then(|()| two.scan(&bytes[at..]));
    assert_eq!(whole, split, "split at {at}");
    let mut one = Guard::new(0, 50);
    let bytewise = bytes.iter().try_for_each(|b| one.scan(std::slice::from_ref(b)));
    assert_eq!(whole, bytewise, "byte by byte");
}

/// RTSP framing ([`crate::rtsp::message`]): the frames pipelined along the
/// input (after the option byte, whose bits 0–1 pick the limits). For each
/// it checks what the relay relies on: it never panics; every range lies
/// inside the frame's head; a frame parses the same from the whole input
/// and from exactly its own bytes; every shorter prefix of its head is
/// incomplete (or the same error); and the next frame starts where its
/// total length says.
pub fn rtsp_message(data: &[u8]) {
    use crate::rtsp::message::{parse, Frame, Limits};
    let Some((&opt, mut buf)) = data.split_first() else { return };
    let limits = [
        Limits::default(),
        Limits { max_head: 64, max_headers: 2, max_body: 16 },
        Limits { max_head: 4096, max_headers: 300, max_body: 0 },
        Limits { max_head: usize::MAX, max_headers: usize::MAX, max_body: usize::MAX },
    ][usize::from(opt & 3)];
    for _ in 0..MAX_PIPELINED {
        let whole = parse(buf, &limits);
        let Ok(Some(frame)) = whole.clone() else { return };
        let head = match &frame {
            Frame::Message(m) => {
                assert!(m.head_len <= buf.len() && m.head_len <= limits.max_head && m.body_len <= limits.max_body);
                for (n, v) in &m.headers {
                    assert!(n.end <= m.head_len && v.end <= m.head_len && n.start < n.end);
                }
                m.head_len
            }
            Frame::Interleaved { .. } => 4,
        };
        assert_eq!(parse(&buf[..head], &limits), whole, "the frame's own head");
        for n in 0..head {
            let p = parse(&buf[..n], &limits);
            assert!(matches!(p, Ok(None)) || p.is_err(), "prefix {n}: {p:?}");
        }
        let total = frame.total_len();
        if total > buf.len() {
            return;
        }
        if let Frame::Message(m) = &frame {
            rtsp_rewrite(&buf[..total], m);
        }
        buf = &buf[total..];
    }
}

/// What a rule's change writes (`rtsp::owned`): a message copied out of
/// `buf` and written afresh parses back to the same message, its
/// `Content-Length` made to match the body; URI paths never panic.
fn rtsp_rewrite(buf: &[u8], m: &crate::rtsp::message::Message) {
    use crate::rtsp::message::{parse, Frame, Limits};
    use crate::rtsp::owned::{path, with_path, Owned};
    let owned = Owned::copy(buf, m);
    let bytes = owned.to_bytes();
    let any = Limits { max_head: usize::MAX, max_headers: 256, max_body: usize::MAX };
    let Ok(Some(Frame::Message(again))) = parse(&bytes, &any) else {
        panic!("a written message does not parse: {:?}", String::from_utf8_lossy(&bytes))
    };
    assert_eq!(again.head_len + again.body_len, bytes.len());
    let back = Owned::copy(&bytes, &again);
    let fields = |o: &Owned| -> Vec<(Vec<u8>, Vec<u8>)> {
        o.headers.iter().filter(|(n, _)| !n.eq_ignore_ascii_case(b"content-length")).cloned().collect()
    };
    assert_eq!((&back.start, back.version, &back.body), (&owned.start, owned.version, &owned.body));
    assert_eq!(fields(&back), fields(&owned));
    let uri = owned.uri();
    let p = path(uri);
    let _ = with_path(uri, p);
}
