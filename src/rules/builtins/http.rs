//! `http.*`: the request (its line, fields, cookies, form parameters and
//! body), the response (status, fields, body), shoal's own answers
//! (`http.sendResponse`, `http.redirect`, `http.changeSite`) and
//! subrequests (`http.request.get/post`, which wait: only the rule's own
//! connection waits).

use super::{Call, Fault, Pending, Stop};
use crate::http::fields::EditError;
use crate::proxy::own::OwnResponse;
use crate::rules::subrequest;
use crate::rules::value::Value;
use std::rc::Rc;
use std::time::Duration;

type R = Result<Value, Fault>;

fn edit(r: Result<(), EditError>) -> R {
    r.map(|_| Value::empty()).map_err(|e| Fault::Error(e.to_string()))
}

/// `http.cache.disable()`: the request is neither answered from the
/// cache nor stored in it (in a response rule: not stored).
pub fn cache_disable(c: &mut Call<'_, '_>) -> R {
    c.tx()?.cache.disabled = true;
    Ok(Value::empty())
}

/// `http.cache.enable()`: undo `http.cache.disable()`; the cache's own
/// rules decide again.
pub fn cache_enable(c: &mut Call<'_, '_>) -> R {
    c.tx()?.cache.disabled = false;
    Ok(Value::empty())
}

/// `http.cache.setkey( key )`: keep this request's object apart from
/// those of the same URL with other keys.
pub fn cache_setkey(c: &mut Call<'_, '_>) -> R {
    let k = c.bytes(0)?;
    c.tx()?.cache.key = Some(k);
    Ok(Value::empty())
}

/// `http.compress.enable()`: compress this response for a client that
/// accepts it, with the virtual server's `[compression]` settings (or the
/// defaults), even where `enabled = false`; the "never" cases still hold.
pub fn compress_enable(c: &mut Call<'_, '_>) -> R {
    c.tx()?.compress = Some(true);
    Ok(Value::empty())
}

/// `http.compress.disable()`: send this response as the node sent it.
pub fn compress_disable(c: &mut Call<'_, '_>) -> R {
    c.tx()?.compress = Some(false);
    Ok(Value::empty())
}

pub fn get_path(c: &mut Call<'_, '_>) -> R {
    Ok(Value::from(c.tx()?.request.path()))
}

pub fn set_path(c: &mut Call<'_, '_>) -> R {
    let p = c.bytes(0)?;
    edit(c.tx()?.request.set_path(&p))
}

/// The query string without its `?` ("" when none).
pub fn get_query(c: &mut Call<'_, '_>) -> R {
    Ok(Value::from(c.tx()?.request.query().unwrap_or_default()))
}

/// Replace the query string ("" removes it).
pub fn set_query(c: &mut Call<'_, '_>) -> R {
    let q = c.bytes(0)?;
    let q = if q.is_empty() { None } else { Some(q.as_slice()) };
    edit(c.tx()?.request.set_query(q))
}

/// The request target as it stands: path and query.
pub fn get_raw_url(c: &mut Call<'_, '_>) -> R {
    Ok(Value::from(c.tx()?.request.target()))
}

pub fn set_raw_url(c: &mut Call<'_, '_>) -> R {
    let t = c.bytes(0)?;
    edit(c.tx()?.request.set_target(&t))
}

pub fn get_method(c: &mut Call<'_, '_>) -> R {
    Ok(Value::from(c.tx()?.request.method()))
}

pub fn set_method(c: &mut Call<'_, '_>) -> R {
    let m = c.bytes(0)?;
    edit(c.tx()?.request.set_method(&m))
}

/// `"1.0"`, `"1.1"` or `"2"`.
pub fn get_version(c: &mut Call<'_, '_>) -> R {
    Ok(Value::from(c.tx()?.request.version.via_str()))
}

/// A request field's first value ("" when absent).
pub fn get_header(c: &mut Call<'_, '_>) -> R {
    // The name is read in place (no copy per call: conditions on headers
    // are the commonest rule there is).
    let name = super::arg_bytes(c.args, 0)?;
    let name = String::from_utf8_lossy(&name);
    let tx = c.env.tx.as_deref_mut().ok_or_else(|| Fault::Error("only on HTTP virtual servers".into()))?;
    Ok(Value::from(tx.request.fields.get(&name).unwrap_or_default()))
}

pub fn set_header(c: &mut Call<'_, '_>) -> R {
    let (name, v) = (c.text(0)?, c.bytes(1)?);
    edit(c.tx()?.request.fields.set(&name, &v))
}

pub fn add_header(c: &mut Call<'_, '_>) -> R {
    let (name, v) = (c.text(0)?, c.bytes(1)?);
    edit(c.tx()?.request.fields.add(&name, &v))
}

pub fn remove_header(c: &mut Call<'_, '_>) -> R {
    let name = c.text(0)?;
    c.tx()?.request.fields.remove(&name);
    Ok(Value::empty())
}

pub fn header_exists(c: &mut Call<'_, '_>) -> R {
    let name = c.text(0)?;
    Ok(Value::from(c.tx()?.request.fields.contains(&name)))
}

fn names(fields: &crate::http::fields::Fields) -> Value {
    Value::Array(Rc::new(fields.iter().map(|(n, _)| Value::from(n)).collect()))
}

pub fn list_header_names(c: &mut Call<'_, '_>) -> R {
    Ok(names(&c.tx()?.request.fields))
}

pub fn get_host(c: &mut Call<'_, '_>) -> R {
    Ok(Value::from(c.tx()?.request.fields.get("host").unwrap_or_default()))
}

pub fn get_cookie(c: &mut Call<'_, '_>) -> R {
    let name = c.text(0)?;
    Ok(Value::from(crate::http::cookie::request_cookie(&c.tx()?.request.fields, &name).unwrap_or_default()))
}

/// The request's cookies with `name` set to `value` (or left out).
fn rewrite_cookies(c: &mut Call<'_, '_>, value: Option<Vec<u8>>) -> R {
    let name = c.bytes(0)?;
    let tx = c.tx()?;
    let mut out = Vec::new();
    let mut seen = false;
    for (n, v) in crate::http::cookie::request_cookies(&tx.request.fields) {
        let v = if n == name.as_slice() {
            seen = true;
            match &value {
                Some(v) => v.as_slice(),
                None => continue,
            }
        } else {
            v
        };
        if !out.is_empty() {
            out.extend_from_slice(b"; ");
        }
        out.extend_from_slice(n);
        out.push(b'=');
        out.extend_from_slice(v);
    }
    if let (false, Some(v)) = (seen, &value) {
        if !out.is_empty() {
            out.extend_from_slice(b"; ");
        }
        out.extend_from_slice(&name);
        out.push(b'=');
        out.extend_from_slice(v);
    }
    if out.is_empty() {
        tx.request.fields.remove("cookie");
        return Ok(Value::empty());
    }
    edit(tx.request.fields.set("Cookie", &out))
}

/// `http.setCookie(name, value)`: in the request the node gets.
pub fn set_cookie(c: &mut Call<'_, '_>) -> R {
    let v = c.bytes(1)?;
    rewrite_cookies(c, Some(v))
}

pub fn remove_cookie(c: &mut Call<'_, '_>) -> R {
    rewrite_cookies(c, None)
}

/// The value of a form parameter (decoded): from the query string, or
/// from a form-encoded request body when the rules read bodies.
pub fn get_form_param(c: &mut Call<'_, '_>) -> R {
    let name = c.bytes(0)?;
    let find = |s: &[u8]| {
        s.split(|&b| b == b'&').find_map(|kv| {
            let eq = kv.iter().position(|&b| b == b'=').unwrap_or(kv.len());
            (super::text::decode(&kv[..eq]) == name).then(|| super::text::decode(kv.get(eq + 1..).unwrap_or(&[])))
        })
    };
    let tx = c.tx()?;
    if let Some(v) = tx.request.query().and_then(find) {
        return Ok(Value::from(v));
    }
    let form = tx
        .request
        .fields
        .get("content-type")
        .is_some_and(|t| t.to_ascii_lowercase().starts_with(b"application/x-www-form-urlencoded"));
    if !form || c.env.phase != super::Phase::Request {
        return Ok(Value::empty());
    }
    let body = c.body()?.map_or(&[][..], |b| b.as_slice());
    Ok(Value::from(find(body).unwrap_or_default()))
}

/// The request body (up to `max` bytes when given), in request rules.
pub fn get_body(c: &mut Call<'_, '_>) -> R {
    let max = if c.args.is_empty() { usize::MAX } else { c.int(0)?.max(0) as usize };
    let body = c.body()?.map_or(&[][..], |b| b.as_slice());
    Ok(Value::from(&body[..body.len().min(max)]))
}

pub fn set_body(c: &mut Call<'_, '_>) -> R {
    let v = c.bytes(0)?;
    match c.body()? {
        Some(b) => {
            *b = v;
            c.env.state.body_changed = true;
            Ok(Value::empty())
        }
        None => Err(Fault::Error("the request has no body to replace".into())),
    }
}

/// End the rules with shoal's answer `resp`.
fn answer(c: &mut Call<'_, '_>, resp: OwnResponse) -> R {
    c.env.state.respond = Some(Box::new(resp));
    Err(Fault::Stop(Stop::Phase))
}

fn redirect_to(c: &mut Call<'_, '_>, location: &[u8]) -> R {
    if !crate::http::fields::is_value(location) || location.is_empty() {
        return Err(Fault::Error("the location holds CR, LF or NUL, or is empty".into()));
    }
    let mut body = b"302 Found: ".to_vec();
    body.extend_from_slice(location);
    body.push(b'\n');
    answer(c, OwnResponse::with_body(302, "text/plain", body).header("Location", location))
}

/// `http.redirect(url)`: answer 302 to `url`; no further rule of the
/// phase runs.
pub fn redirect(c: &mut Call<'_, '_>) -> R {
    let url = c.bytes(0)?;
    redirect_to(c, &url)
}

/// `http.changeSite(site)`: redirect to the same path and query on another
/// site (`https://www.example.com`).
pub fn change_site(c: &mut Call<'_, '_>) -> R {
    let mut url = c.bytes(0)?;
    while url.last() == Some(&b'/') {
        url.pop();
    }
    let target = c.tx()?.request.target().to_vec();
    url.extend_from_slice(&target);
    redirect_to(c, &url)
}

/// `http.sendResponse(status, content_type, body[, headers])`: answer
/// with this; `status` is a code or a status line (`"503 Service
/// Unavailable"`), `headers` extra `Name: value` lines. No node is asked
/// (in a request rule), and no further rule of the phase runs.
pub fn send_response(c: &mut Call<'_, '_>) -> R {
    let status_text = c.text(0)?;
    let digits: String = status_text.trim().chars().take_while(char::is_ascii_digit).collect();
    let status: u16 = match digits.parse() {
        Ok(s) if (100..=999).contains(&s) => s,
        _ => return Err(Fault::Error(format!("{status_text:?} is not a status"))),
    };
    let (ctype, body, headers) = (c.text(1)?, c.bytes(2)?, c.bytes(3)?);
    let mut resp = OwnResponse::with_body(status, &ctype, body);
    let reason = status_text.trim()[digits.len()..].trim();
    if !reason.is_empty() && crate::http::fields::is_value(reason.as_bytes()) {
        resp.head.set_reason(reason.as_bytes()).map_err(|e| Fault::Error(e.to_string()))?;
    }
    for line in headers.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        let colon = line
            .iter()
            .position(|&b| b == b':')
            .ok_or_else(|| Fault::Error(format!("header line {:?} has no colon", String::from_utf8_lossy(line))))?;
        let name = String::from_utf8_lossy(&line[..colon]).trim().to_string();
        resp.head.fields.add(&name, line[colon + 1..].trim_ascii()).map_err(|e| Fault::Error(e.to_string()))?;
    }
    answer(c, resp)
}

/// Longest wait a rule may ask of a subrequest.
const MAX_TIMEOUT: Duration = Duration::from_secs(300);

fn timeout(c: &Call<'_, '_>, i: usize) -> Result<Duration, Fault> {
    if c.args.len() <= i {
        return Ok(subrequest::DEFAULT_TIMEOUT);
    }
    let ms = c.int(i)?;
    if ms <= 0 {
        return Err(Fault::Error("the timeout (milliseconds) must be positive".into()));
    }
    Ok(Duration::from_millis(ms as u64).min(MAX_TIMEOUT))
}

fn subrequest(c: &mut Call<'_, '_>, method: &'static str, body: Option<Vec<u8>>, at: usize) -> R {
    let url = c.text(0)?;
    let headers = c.bytes(at)?;
    let timeout = timeout(c, at + 1)?;
    let req = subrequest::Request::new(method, &url, &headers, body, timeout).map_err(Fault::Error)?;
    Err(Fault::Wait(Pending::Http(Box::new(req))))
}

/// `http.request.get(url[, headers[, timeout_ms]])`: the body of the
/// answer; `$1` is its status (0 when there was none: `$2` says why).
pub fn request_get(c: &mut Call<'_, '_>) -> R {
    subrequest(c, "GET", None, 1)
}

/// `http.request.post(url, body[, headers[, timeout_ms]])`.
pub fn request_post(c: &mut Call<'_, '_>) -> R {
    let body = c.bytes(1)?;
    subrequest(c, "POST", Some(body), 2)
}

pub fn get_response_header(c: &mut Call<'_, '_>) -> R {
    let name = c.text(0)?;
    Ok(Value::from(c.tx()?.response.fields.get(&name).unwrap_or_default()))
}

pub fn set_response_header(c: &mut Call<'_, '_>) -> R {
    let (name, v) = (c.text(0)?, c.bytes(1)?);
    edit(c.tx()?.response.fields.set(&name, &v))
}

pub fn add_response_header(c: &mut Call<'_, '_>) -> R {
    let (name, v) = (c.text(0)?, c.bytes(1)?);
    edit(c.tx()?.response.fields.add(&name, &v))
}

pub fn remove_response_header(c: &mut Call<'_, '_>) -> R {
    let name = c.text(0)?;
    c.tx()?.response.fields.remove(&name);
    Ok(Value::empty())
}

pub fn list_response_header_names(c: &mut Call<'_, '_>) -> R {
    Ok(names(&c.tx()?.response.fields))
}

pub fn get_response_code(c: &mut Call<'_, '_>) -> R {
    Ok(Value::Int(i64::from(c.tx()?.response.status)))
}

pub fn set_response_code(c: &mut Call<'_, '_>) -> R {
    let code = c.int(0)?;
    let code = u16::try_from(code).map_err(|_| Fault::Error(format!("{code} is not a status")))?;
    edit(c.tx()?.response.set_status(code))
}

/// The response body (up to `max` bytes when given), decoded from its
/// framing; in response rules.
pub fn get_response_body(c: &mut Call<'_, '_>) -> R {
    get_body(c)
}

pub fn set_response_body(c: &mut Call<'_, '_>) -> R {
    let v = c.bytes(0)?;
    match c.body()? {
        Some(b) => {
            *b = v;
            c.env.state.body_changed = true;
            Ok(Value::empty())
        }
        None => Err(Fault::Error("this response has no body to replace (HEAD, 204 or 304)".into())),
    }
}
