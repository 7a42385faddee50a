//! `pool.*`, `connection.*` and `request.*`: where a request goes and
//! what is known of its connection. `pool.use` ends the request rules
//! (the request goes to that pool); `pool.select` chooses and goes on. A
//! node given with either is the request's named node (C7) when it is one
//! of the pool's, and an explicit address to forward to when it is not.

use super::{Call, Fault, Stop, CONN_DATA_BYTES, CONN_DATA_KEYS};
use crate::rules::value::Value;
use std::net::SocketAddr;

type R = Result<Value, Fault>;

fn choose(c: &mut Call<'_, '_>) -> Result<(), Fault> {
    let name = c.text(0)?;
    let node = if c.args.len() > 1 { Some(c.text(1)?) } else { None };
    let r = c.route()?;
    let pool = r.view.config.pool(&name).ok_or_else(|| Fault::Error(format!("there is no pool named {name:?}")))?;
    *r.pool = pool;
    *r.required_node = None;
    let mut explicit = r.explicit_addr;
    if let Some(e) = explicit.as_deref_mut() {
        *e = None;
    }
    if let Some(node) = node.filter(|n| !n.is_empty()) {
        let p = &r.view.pools[pool];
        match p.nodes.iter().position(|n| n.name == node || n.addr.to_string() == node) {
            Some(i) => *r.required_node = Some(i),
            None => match (node.parse::<SocketAddr>(), explicit) {
                (Ok(a), Some(e)) => *e = Some(a),
                (Ok(_), None) => {
                    return Err(Fault::Error(format!(
                        "{node} is not a node of pool {name}; an address that is not a node works on HTTP virtual servers only"
                    )))
                }
                (Err(_), _) => {
                    return Err(Fault::Error(format!("{node:?} is not a node of pool {name} nor an address (ip:port)")))
                }
            },
        }
    }
    Ok(())
}

/// `pool.use(pool[, node])`: send the request there; no further request
/// rule runs.
pub fn pool_use(c: &mut Call<'_, '_>) -> R {
    choose(c)?;
    Err(Fault::Stop(Stop::Phase))
}

/// `pool.select(pool[, node])`: as `pool.use`, and the rules go on.
pub fn pool_select(c: &mut Call<'_, '_>) -> R {
    choose(c)?;
    Ok(Value::empty())
}

/// The request's pool's name.
pub fn pool_name(c: &mut Call<'_, '_>) -> R {
    let r = c.route()?;
    Ok(Value::from(r.view.config.pools[*r.pool].name.as_str()))
}

/// The node that served the request (its name as configured, or the
/// explicit address); "" before one did.
pub fn get_node(c: &mut Call<'_, '_>) -> R {
    let r = c.route()?;
    let explicit = r.explicit_addr.and_then(|e| *e).map(|a| a.to_string());
    Ok(Value::from(r.node.or(explicit).unwrap_or_default()))
}

pub fn virtual_server(c: &mut Call<'_, '_>) -> R {
    let r = c.route()?;
    Ok(Value::from(r.view.config.virtual_servers[r.vs].name.as_str()))
}

/// `connection.data.set(key, value)`: kept for the connection's later
/// requests and rules; 1 when kept, 0 when the connection's store is full.
pub fn conn_data_set(c: &mut Call<'_, '_>) -> R {
    let key = c.bytes(0)?;
    let v = c.arg(1);
    let data = &mut c.env.state.conn_data;
    let used: usize = data.iter().filter(|(k, _)| **k != key).map(|(k, v)| k.len() + v.size()).sum();
    let fits =
        used + key.len() + v.size() <= CONN_DATA_BYTES && (data.len() < CONN_DATA_KEYS || data.contains_key(&key));
    if fits {
        data.insert(key, v);
    } else {
        log::warn!("rule {}: connection.data.set refused: the connection's data is full", c.env.rule);
    }
    Ok(Value::from(fits))
}

pub fn conn_data_get(c: &mut Call<'_, '_>) -> R {
    let key = c.bytes(0)?;
    Ok(c.env.state.conn_data.get(&key).cloned().unwrap_or_default())
}

/// `connection.setPersistence(class)`: use that session persistence class
/// for the request instead of the pool's ("" for none).
pub fn set_persistence(c: &mut Call<'_, '_>) -> R {
    let name = c.text(0)?;
    let tx = c.tx()?;
    if name.is_empty() {
        tx.persistence_class = Some(None);
        return Ok(Value::empty());
    }
    let i = tx
        .view
        .config
        .persistence
        .iter()
        .position(|p| p.name == name)
        .ok_or_else(|| Fault::Error(format!("there is no persistence class named {name:?}")))?;
    if tx.view.config.persistence[i].kind == crate::config::PersistenceType::SslSessionId {
        return Err(Fault::Error(format!("{name}: ssl_session_id persistence works on ssl_passthrough only")));
    }
    tx.persistence_class = Some(Some(i));
    Ok(Value::empty())
}

/// `connection.setPersistenceKey(key)`: the session key for a keyed class
/// (`universal`), instead of the class's own source.
pub fn set_persistence_key(c: &mut Call<'_, '_>) -> R {
    let key = c.bytes(0)?;
    c.tx()?.persistence_key = Some(key);
    Ok(Value::empty())
}

/// `connection.setIdempotent(flag)`: whether the request may be retried
/// on another node after it reached one (C6).
pub fn set_idempotent(c: &mut Call<'_, '_>) -> R {
    let flag = c.arg(0).truthy();
    c.tx()?.retryable = flag;
    Ok(Value::empty())
}

/// `connection.close()` / `connection.discard()`: close the connection
/// now; no further rule runs.
pub fn close(c: &mut Call<'_, '_>) -> R {
    c.env.state.close = true;
    Err(Fault::Stop(Stop::Close))
}

pub fn remote_ip(c: &mut Call<'_, '_>) -> R {
    Ok(Value::from(c.addrs()?.0.ip().to_canonical().to_string()))
}

pub fn remote_port(c: &mut Call<'_, '_>) -> R {
    Ok(Value::Int(i64::from(c.addrs()?.0.port())))
}

pub fn local_ip(c: &mut Call<'_, '_>) -> R {
    Ok(Value::from(c.addrs()?.1.ip().to_canonical().to_string()))
}

pub fn local_port(c: &mut Call<'_, '_>) -> R {
    Ok(Value::Int(i64::from(c.addrs()?.1.port())))
}

/// `request.retry()` (response rules): this response is the node's
/// failure; the request goes to another node if it may (C6).
pub fn retry(c: &mut Call<'_, '_>) -> R {
    c.env.state.retry = true;
    Err(Fault::Stop(Stop::Phase))
}

/// `request.get([max])` / `response.get([max])` (generic protocols): the
/// data just read from the client (the node), up to `max` bytes.
pub fn stream_get(c: &mut Call<'_, '_>) -> R {
    c.stream()?;
    let max = if c.args.is_empty() { usize::MAX } else { c.int(0)?.max(0) as usize };
    let data = c.env.body.as_deref().map_or(&[][..], |b| b.as_slice());
    Ok(Value::from(&data[..data.len().min(max)]))
}

/// `request.set(data)` / `response.set(data)`: what goes on instead of
/// the data just read.
pub fn stream_set(c: &mut Call<'_, '_>) -> R {
    c.stream()?;
    let v = c.bytes(0)?;
    match c.env.body.as_deref_mut() {
        Some(b) => {
            *b = v;
            c.env.state.body_changed = true;
            Ok(Value::empty())
        }
        None => Err(Fault::Error("there is no data here to replace".into())),
    }
}

/// `request.getLength()` / `response.getLength()`: bytes just read.
pub fn stream_len(c: &mut Call<'_, '_>) -> R {
    c.stream()?;
    Ok(Value::Int(c.env.body.as_deref().map_or(0, |b| b.len()) as i64))
}
