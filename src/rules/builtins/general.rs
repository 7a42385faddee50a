//! `array.*`, `hash.*`, `lang.*`, `json.*`, `sys.*`, `log.*`,
//! `event.*` and `rule.*`: the functions that do not touch traffic.

use super::{Call, Fault, Stop};
use crate::rules::value::Value;
use std::collections::BTreeMap;
use std::rc::Rc;

type R = Result<Value, Fault>;

fn err(e: crate::rules::value::TypeError) -> Fault {
    Fault::Error(e.0)
}

/// The array in `v`, or an error naming the argument.
fn array(v: &Value, arg: usize) -> Result<&Rc<Vec<Value>>, Fault> {
    match v {
        Value::Array(a) => Ok(a),
        other => Err(Fault::Error(format!("argument {arg}: an array expected, found a {}", other.kind()))),
    }
}

/// The array a changing function works on: an unset variable (empty
/// string) becomes an empty array.
fn array_mut(v: &mut Value) -> Result<&mut Vec<Value>, Fault> {
    if matches!(v, Value::Str(s) if s.is_empty()) {
        *v = Value::Array(Rc::new(Vec::new()));
    }
    match v {
        Value::Array(a) => Ok(Rc::make_mut(a)),
        other => Err(Fault::Error(format!("argument 1: an array expected, found a {}", other.kind()))),
    }
}

/// Elements in an array, entries in a hash, bytes in a string.
pub fn array_length(c: &mut Call<'_, '_>) -> R {
    Ok(Value::Int(match &c.args[0] {
        Value::Array(a) => a.len() as i64,
        Value::Hash(h) => h.len() as i64,
        other => other.to_bytes().map_err(err)?.len() as i64,
    }))
}

/// Most elements `array.create` makes.
const MAX_CREATE: i64 = 1 << 20;

pub fn array_create(c: &mut Call<'_, '_>) -> R {
    let n = c.int(0)?;
    if !(0..=MAX_CREATE).contains(&n) {
        return Err(Fault::Error(format!("array.create: size {n} outside 0..{MAX_CREATE}")));
    }
    Ok(Value::Array(Rc::new(vec![c.arg(1); n as usize])))
}

/// `array.push($a, v)`: appends; returns the new length.
pub fn array_push(c: &mut Call<'_, '_>) -> R {
    let v = c.arg(1);
    let a = array_mut(&mut c.args[0])?;
    a.push(v);
    Ok(Value::Int(a.len() as i64))
}

/// `array.pop($a)`: removes and returns the last element ("" if none).
pub fn array_pop(c: &mut Call<'_, '_>) -> R {
    Ok(array_mut(&mut c.args[0])?.pop().unwrap_or_default())
}

pub fn array_shift(c: &mut Call<'_, '_>) -> R {
    let a = array_mut(&mut c.args[0])?;
    Ok(if a.is_empty() { Value::empty() } else { a.remove(0) })
}

pub fn array_unshift(c: &mut Call<'_, '_>) -> R {
    let v = c.arg(1);
    let a = array_mut(&mut c.args[0])?;
    a.insert(0, v);
    Ok(Value::Int(a.len() as i64))
}

/// `array.append($a, $b)`: the elements of `$b` added to `$a`.
pub fn array_append(c: &mut Call<'_, '_>) -> R {
    let b = array(&c.args[1], 2)?.clone();
    let a = array_mut(&mut c.args[0])?;
    a.extend(b.iter().cloned());
    Ok(Value::Int(a.len() as i64))
}

/// A sorted copy: numbers numerically, strings byte-wise.
pub fn array_sort(c: &mut Call<'_, '_>) -> R {
    let mut v = array(&c.args[0], 1)?.as_ref().clone();
    let mut bad = None;
    v.sort_by(|a, b| {
        a.compare(b).unwrap_or_else(|e| {
            bad = Some(e);
            std::cmp::Ordering::Equal
        })
    });
    if let Some(e) = bad {
        return Err(err(e));
    }
    Ok(Value::Array(Rc::new(v)))
}

pub fn array_reverse(c: &mut Call<'_, '_>) -> R {
    let mut v = array(&c.args[0], 1)?.as_ref().clone();
    v.reverse();
    Ok(Value::Array(Rc::new(v)))
}

pub fn array_contains(c: &mut Call<'_, '_>) -> R {
    let needle = c.arg(1);
    let a = array(&c.args[0], 1)?;
    Ok(Value::from(a.iter().any(|v| v.equals(&needle).unwrap_or(false))))
}

fn hash(v: &Value) -> Result<&Rc<BTreeMap<Vec<u8>, Value>>, Fault> {
    match v {
        Value::Hash(h) => Ok(h),
        other => Err(Fault::Error(format!("argument 1: a hash expected, found a {}", other.kind()))),
    }
}

pub fn hash_keys(c: &mut Call<'_, '_>) -> R {
    if matches!(&c.args[0], Value::Str(s) if s.is_empty()) {
        return Ok(Value::Array(Rc::new(Vec::new())));
    }
    Ok(Value::Array(Rc::new(hash(&c.args[0])?.keys().map(|k| Value::from(k.as_slice())).collect())))
}

pub fn hash_values(c: &mut Call<'_, '_>) -> R {
    Ok(Value::Array(Rc::new(hash(&c.args[0])?.values().cloned().collect())))
}

pub fn hash_contains(c: &mut Call<'_, '_>) -> R {
    let k = c.bytes(1)?;
    Ok(Value::from(hash(&c.args[0])?.contains_key(&k)))
}

/// `hash.delete($h, key)`: removes the key; returns whether it was there.
pub fn hash_delete(c: &mut Call<'_, '_>) -> R {
    let k = c.bytes(1)?;
    match &mut c.args[0] {
        Value::Hash(h) => Ok(Value::from(Rc::make_mut(h).remove(&k).is_some())),
        other => Err(Fault::Error(format!("argument 1: a hash expected, found a {}", other.kind()))),
    }
}

pub fn to_int(c: &mut Call<'_, '_>) -> R {
    Ok(Value::Int(c.args[0].to_int().map_err(err)?))
}

pub fn to_double(c: &mut Call<'_, '_>) -> R {
    Ok(Value::Float(c.args[0].to_float().map_err(err)?))
}

pub fn to_string(c: &mut Call<'_, '_>) -> R {
    Ok(Value::from(c.bytes(0)?))
}

pub fn is_array(c: &mut Call<'_, '_>) -> R {
    Ok(Value::from(matches!(c.args[0], Value::Array(_))))
}

pub fn is_hash(c: &mut Call<'_, '_>) -> R {
    Ok(Value::from(matches!(c.args[0], Value::Hash(_))))
}

pub fn type_of(c: &mut Call<'_, '_>) -> R {
    Ok(Value::from(c.args[0].kind()))
}

/// Deepest JSON nesting read or written.
const MAX_JSON_DEPTH: usize = 64;

fn to_json(v: &Value, depth: usize) -> Result<serde_json::Value, Fault> {
    if depth > MAX_JSON_DEPTH {
        return Err(Fault::Error(format!("nested more than {MAX_JSON_DEPTH} deep")));
    }
    Ok(match v {
        Value::Int(i) => serde_json::Value::from(*i),
        Value::Float(f) => serde_json::Number::from_f64(*f).map_or(serde_json::Value::Null, serde_json::Value::Number),
        Value::Str(s) => serde_json::Value::String(String::from_utf8_lossy(s).into_owned()),
        Value::Array(a) => serde_json::Value::Array(a.iter().map(|x| to_json(x, depth + 1)).collect::<Result<_, _>>()?),
        Value::Hash(h) => serde_json::Value::Object(
            h.iter()
                .map(|(k, x)| Ok((String::from_utf8_lossy(k).into_owned(), to_json(x, depth + 1)?)))
                .collect::<Result<_, Fault>>()?,
        ),
    })
}

pub fn from_json(j: &serde_json::Value, depth: usize) -> Result<Value, Fault> {
    if depth > MAX_JSON_DEPTH {
        return Err(Fault::Error(format!("nested more than {MAX_JSON_DEPTH} deep")));
    }
    Ok(match j {
        serde_json::Value::Null => Value::empty(),
        serde_json::Value::Bool(b) => Value::from(*b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::Float(n.as_f64().unwrap_or(0.0)),
        },
        serde_json::Value::String(s) => Value::from(s.as_str()),
        serde_json::Value::Array(a) => {
            Value::Array(Rc::new(a.iter().map(|x| from_json(x, depth + 1)).collect::<Result<_, _>>()?))
        }
        serde_json::Value::Object(o) => Value::Hash(Rc::new(
            o.iter()
                .map(|(k, x)| Ok((k.as_bytes().to_vec(), from_json(x, depth + 1)?)))
                .collect::<Result<_, Fault>>()?,
        )),
    })
}

pub fn json_serialize(c: &mut Call<'_, '_>) -> R {
    Ok(Value::from(to_json(&c.args[0], 0)?.to_string()))
}

/// `json.deserialize(text)`: the value, or "" (and `$1` the error) when
/// the text is not JSON.
pub fn json_deserialize(c: &mut Call<'_, '_>) -> R {
    let text = c.bytes(0)?;
    match serde_json::from_slice::<serde_json::Value>(&text) {
        Ok(j) => from_json(&j, 0),
        Err(e) => {
            c.captures[0] = Value::from(e.to_string());
            Ok(Value::empty())
        }
    }
}

pub fn sys_hostname(c: &mut Call<'_, '_>) -> R {
    Ok(Value::from(c.env.shared.hostname.as_str()))
}

fn unix_now() -> std::time::Duration {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default()
}

/// Seconds since 1970.
pub fn sys_time(_: &mut Call<'_, '_>) -> R {
    Ok(Value::Int(unix_now().as_secs() as i64))
}

/// Seconds since 1970, with microseconds.
pub fn sys_time_highres(_: &mut Call<'_, '_>) -> R {
    Ok(Value::Float(unix_now().as_micros() as f64 / 1e6))
}

fn log_at(c: &mut Call<'_, '_>, level: log::Level) -> R {
    let msg = c.args[0].to_text().map_err(err)?;
    let vs = c.env.tx.as_deref().map(|t| t.vs_config().name.clone()).unwrap_or_default();
    log::log!(level, "rule {} (virtual server {vs}): {}", c.env.rule, msg.escape_debug());
    Ok(Value::empty())
}

pub fn log_info(c: &mut Call<'_, '_>) -> R {
    log_at(c, log::Level::Info)
}

pub fn log_warn(c: &mut Call<'_, '_>) -> R {
    log_at(c, log::Level::Warn)
}

pub fn log_error(c: &mut Call<'_, '_>) -> R {
    log_at(c, log::Level::Error)
}

/// `event.emit(name[, message])`: raise a `rule.custom` event (I4)
/// whose primary tag is `name`, from section `rules/RULE`.
pub fn event_emit(c: &mut Call<'_, '_>) -> R {
    let name = c.text(0)?;
    let msg = c.text(1)?;
    let mut ev =
        crate::events::Event::new(&crate::events::catalogue::RULE_CUSTOM, format!("rules/{}", c.env.rule), msg);
    ev.tag = name;
    crate::events::emit(ev);
    Ok(Value::empty())
}

pub fn rule_break(_: &mut Call<'_, '_>) -> R {
    Err(Fault::Stop(Stop::Rule))
}
