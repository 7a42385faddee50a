//! `rtsp.*`: the request and response of an RTSP virtual server's message
//! exchange (src/rtsp/exchange.rs): method, URL, path, header fields,
//! status and body, and shoal's own answers (`rtsp.redirect`,
//! `rtsp.sendResponse`), which end the phase's rules.

use super::{Call, Fault, Stop};
use crate::http::fields::{is_token, is_value};
use crate::rtsp::exchange::Exchange;
use crate::rtsp::owned::{self, Owned, Start};
use crate::rules::value::Value;

type R = Result<Value, Fault>;

fn exchange<'c>(c: &'c mut Call<'_, '_>) -> Result<&'c mut Exchange, Fault> {
    c.env
        .stream
        .as_deref_mut()
        .and_then(|s| s.rtsp.as_deref_mut())
        .ok_or_else(|| Fault::Error("only on rtsp virtual servers".into()))
}

fn response<'c>(c: &'c mut Call<'_, '_>) -> Result<&'c mut Owned, Fault> {
    exchange(c)?.response.as_mut().ok_or_else(|| Fault::Error("there is no response yet".into()))
}

/// A header field's name and value from arguments 0 and 1, checked: a
/// rule cannot split a message with CR or LF.
fn field(c: &Call<'_, '_>) -> Result<(Vec<u8>, Vec<u8>), Fault> {
    let (name, value) = (c.bytes(0)?, c.bytes(1)?);
    if !is_token(&name) {
        return Err(Fault::Error("argument 1: not a header field name".into()));
    }
    if !is_value(&value) {
        return Err(Fault::Error("argument 2: the value holds CR, LF or NUL".into()));
    }
    Ok((name, value))
}

fn text(v: &[u8]) -> Value {
    Value::from(v.to_vec())
}

pub fn get_method(c: &mut Call<'_, '_>) -> R {
    Ok(text(exchange(c)?.request.method()))
}

pub fn get_raw_url(c: &mut Call<'_, '_>) -> R {
    Ok(text(exchange(c)?.request.uri()))
}

pub fn get_path(c: &mut Call<'_, '_>) -> R {
    Ok(text(owned::path(exchange(c)?.request.uri())))
}

pub fn get_version(c: &mut Call<'_, '_>) -> R {
    Ok(Value::from(exchange(c)?.request.version.as_str()))
}

/// `rtsp.setRawURL(url)`: the request goes to the node with this URL.
pub fn set_raw_url(c: &mut Call<'_, '_>) -> R {
    let url = c.bytes(0)?;
    set_uri(c, url)
}

/// `rtsp.setPath(path)`: the URL keeps its scheme, host and query.
pub fn set_path(c: &mut Call<'_, '_>) -> R {
    let path = c.bytes(0)?;
    let uri = owned::with_path(exchange(c)?.request.uri(), &path);
    set_uri(c, uri)
}

fn set_uri(c: &mut Call<'_, '_>, new: Vec<u8>) -> R {
    if new.is_empty() || new.iter().any(|&b| b <= b' ' || b == 0x7f) {
        return Err(Fault::Error("argument 1: empty, or holds a space or control character".into()));
    }
    let ex = exchange(c)?;
    if let Start::Request { uri, .. } = &mut ex.request.start {
        *uri = new;
    }
    ex.changed = true;
    Ok(Value::empty())
}

pub fn get_request_header(c: &mut Call<'_, '_>) -> R {
    let name = c.text(0)?;
    Ok(text(exchange(c)?.request.header(&name).unwrap_or_default()))
}

pub fn set_request_header(c: &mut Call<'_, '_>) -> R {
    let (name, value) = field(c)?;
    let ex = exchange(c)?;
    ex.request.set_header(&name, &value);
    ex.changed = true;
    Ok(Value::empty())
}

pub fn remove_request_header(c: &mut Call<'_, '_>) -> R {
    let name = c.bytes(0)?;
    let ex = exchange(c)?;
    ex.request.remove_header(&name);
    ex.changed = true;
    Ok(Value::empty())
}

/// `rtsp.getSession()`: the request's session identifier ("" before SETUP).
pub fn get_session(c: &mut Call<'_, '_>) -> R {
    let ex = exchange(c)?;
    let id = ex.request.session().or_else(|| ex.response.as_ref()?.session());
    Ok(text(id.unwrap_or_default()))
}

pub fn get_response_code(c: &mut Call<'_, '_>) -> R {
    Ok(Value::Int(i64::from(response(c)?.status())))
}

pub fn get_response_header(c: &mut Call<'_, '_>) -> R {
    let name = c.text(0)?;
    Ok(text(response(c)?.header(&name).unwrap_or_default()))
}

pub fn set_response_header(c: &mut Call<'_, '_>) -> R {
    let (name, value) = field(c)?;
    response(c)?.set_header(&name, &value);
    exchange(c)?.changed = true;
    Ok(Value::empty())
}

pub fn remove_response_header(c: &mut Call<'_, '_>) -> R {
    let name = c.bytes(0)?;
    response(c)?.remove_header(&name);
    exchange(c)?.changed = true;
    Ok(Value::empty())
}

/// `rtsp.getResponseBody()`: the response's body (an SDP description).
pub fn get_response_body(c: &mut Call<'_, '_>) -> R {
    Ok(text(&response(c)?.body))
}

pub fn set_response_body(c: &mut Call<'_, '_>) -> R {
    let body = c.bytes(0)?;
    response(c)?.body = body;
    exchange(c)?.changed = true;
    Ok(Value::empty())
}

/// `rtsp.redirect(url)`: answer `302 Moved Temporarily` with `Location:
/// url` (and the request's `CSeq`) instead of the request's response; in
/// a request rule no node is asked. No further rule of the phase runs.
pub fn redirect(c: &mut Call<'_, '_>) -> R {
    let url = c.bytes(0)?;
    if url.is_empty() || !is_value(&url) {
        return Err(Fault::Error("the location holds CR, LF or NUL, or is empty".into()));
    }
    let ex = exchange(c)?;
    let mut a = Owned::answer(&ex.request, 302);
    a.headers.push((b"Location".to_vec(), url));
    ex.answer = Some(a);
    Err(Fault::Stop(Stop::Phase))
}

/// `rtsp.sendResponse(status[, body[, content_type]])`: answer with this
/// status (a code, or a code and reason: `"453 Not Enough Bandwidth"`).
pub fn send_response(c: &mut Call<'_, '_>) -> R {
    let status_text = c.text(0)?;
    let trimmed = status_text.trim();
    let digits: String = trimmed.chars().take_while(char::is_ascii_digit).collect();
    let status: u16 = match digits.parse() {
        Ok(s) if (100..=599).contains(&s) && digits.len() == 3 => s,
        _ => return Err(Fault::Error(format!("argument 1: \"{status_text}\" is not a status from 100 to 599"))),
    };
    let reason = trimmed[3..].trim();
    if !is_value(reason.as_bytes()) {
        return Err(Fault::Error("argument 1: the reason holds CR, LF or NUL".into()));
    }
    let (body, ctype) = (c.bytes(1)?, c.bytes(2)?);
    if !is_value(&ctype) {
        return Err(Fault::Error("argument 3: the content type holds CR, LF or NUL".into()));
    }
    let ex = exchange(c)?;
    let mut a = Owned::answer(&ex.request, status);
    if !reason.is_empty() {
        a.start = Start::Response { status, reason: reason.as_bytes().to_vec() };
    }
    if !body.is_empty() {
        let ctype = if ctype.is_empty() { b"text/plain".to_vec() } else { ctype };
        a.headers.push((b"Content-Type".to_vec(), ctype));
        a.body = body;
    }
    ex.answer = Some(a);
    Err(Fault::Stop(Stop::Phase))
}
