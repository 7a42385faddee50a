//! `data.*`: one key/value store for the whole process, seen by the rules
//! of every shard and kept across configuration reloads (not across
//! restarts, and not shared between cluster members). Bounded in keys and
//! bytes: a `data.set` that would go over returns 0 and stores nothing.
//! Values are copied in and out (arrays and hashes too), so a rule never
//! holds anything another shard changes.

use super::{Call, Fault};
use crate::rules::value::Value;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Mutex;

/// A value as the store keeps it (plain data, shareable between threads).
#[derive(Debug, Clone)]
enum Stored {
    Str(Vec<u8>),
    Int(i64),
    Float(f64),
    Array(Vec<Stored>),
    Hash(BTreeMap<Vec<u8>, Stored>),
}

impl Stored {
    fn of(v: &Value) -> Stored {
        match v {
            Value::Str(s) => Stored::Str(s.to_vec()),
            Value::Int(i) => Stored::Int(*i),
            Value::Float(f) => Stored::Float(*f),
            Value::Array(a) => Stored::Array(a.iter().map(Stored::of).collect()),
            Value::Hash(h) => Stored::Hash(h.iter().map(|(k, v)| (k.clone(), Stored::of(v))).collect()),
        }
    }

    fn value(&self) -> Value {
        match self {
            Stored::Str(s) => Value::from(s.as_slice()),
            Stored::Int(i) => Value::Int(*i),
            Stored::Float(f) => Value::Float(*f),
            Stored::Array(a) => Value::Array(Rc::new(a.iter().map(Stored::value).collect())),
            Stored::Hash(h) => Value::Hash(Rc::new(h.iter().map(|(k, v)| (k.clone(), v.value())).collect())),
        }
    }
}

/// Most keys the store holds, whatever their size.
pub const MAX_KEYS: usize = 1_000_000;

/// The process-wide store.
pub struct Store {
    inner: Mutex<Inner>,
    /// Changes with the configuration (`global.rule_data_size`); what is
    /// stored stays, and a smaller limit refuses new values until enough
    /// are removed.
    max_bytes: AtomicUsize,
    max_keys: usize,
}

#[derive(Default)]
struct Inner {
    map: HashMap<Vec<u8>, (Stored, usize)>,
    bytes: usize,
}

impl Store {
    pub fn new(max_bytes: usize, max_keys: usize) -> Store {
        Store { inner: Mutex::new(Inner::default()), max_bytes: AtomicUsize::new(max_bytes), max_keys }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Store `v` under `key`; false (nothing stored) when it would not fit.
    pub fn set(&self, key: &[u8], v: &Value) -> bool {
        let size = key.len() + v.size();
        let stored = Stored::of(v);
        let mut g = self.lock();
        let old = g.map.get(key).map_or(0, |(_, s)| *s);
        let keys = g.map.len() + usize::from(old == 0 && !g.map.contains_key(key));
        if g.bytes - old + size > self.max_bytes.load(Relaxed) || keys > self.max_keys {
            return false;
        }
        g.bytes = g.bytes - old + size;
        g.map.insert(key.to_vec(), (stored, size));
        true
    }

    pub fn get(&self, key: &[u8]) -> Option<Value> {
        self.lock().map.get(key).map(|(v, _)| v.value())
    }

    pub fn remove(&self, key: &[u8]) -> bool {
        let mut g = self.lock();
        match g.map.remove(key) {
            Some((_, size)) => {
                g.bytes -= size;
                true
            }
            None => false,
        }
    }

    /// Remove every key starting with `prefix` (all, for an empty one).
    pub fn reset(&self, prefix: &[u8]) {
        let mut g = self.lock();
        let mut freed = 0;
        g.map.retain(|k, (_, size)| {
            let keep = !k.starts_with(prefix);
            if !keep {
                freed += *size;
            }
            keep
        });
        g.bytes -= freed;
    }

    pub fn set_limit(&self, max_bytes: usize) {
        self.max_bytes.store(max_bytes, Relaxed);
    }

    pub fn bytes(&self) -> usize {
        self.lock().bytes
    }
}

type R = Result<Value, Fault>;

/// `data.set(key, value)`: 1 when stored, 0 when the store is full.
pub fn set(c: &mut Call<'_, '_>) -> R {
    let key = c.bytes(0)?;
    let ok = c.env.shared.data.set(&key, &c.args[1]);
    if !ok {
        log::warn!("rule {}: data.set refused: the data store is full", c.env.rule);
    }
    Ok(Value::from(ok))
}

pub fn get(c: &mut Call<'_, '_>) -> R {
    Ok(c.env.shared.data.get(&c.bytes(0)?).unwrap_or_default())
}

pub fn remove(c: &mut Call<'_, '_>) -> R {
    Ok(Value::from(c.env.shared.data.remove(&c.bytes(0)?)))
}

pub fn reset(c: &mut Call<'_, '_>) -> R {
    c.env.shared.data.reset(&c.bytes(0)?);
    Ok(Value::empty())
}

pub fn memory_usage(c: &mut Call<'_, '_>) -> R {
    Ok(Value::Int(c.env.shared.data.bytes() as i64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_and_copied() {
        let s = Store::new(200, 3);
        assert!(s.set(b"a", &Value::from("x")));
        let arr = Value::Array(Rc::new(vec![Value::Int(1), Value::from("y")]));
        assert!(s.set(b"b", &arr));
        assert!(s.get(b"b").unwrap().equals(&arr).unwrap());
        assert!(s.set(b"c", &Value::Int(3)));
        assert!(!s.set(b"d", &Value::Int(4)), "a fourth key");
        assert!(s.set(b"c", &Value::Int(5)), "replacing a key is not a new one");
        assert!(!s.set(b"e", &Value::from("z".repeat(300).as_str())), "over the bytes");
        s.reset(b"a");
        assert!(s.get(b"a").is_none() && s.get(b"b").is_some());
        let before = s.bytes();
        assert!(s.remove(b"b") && s.bytes() < before);
    }
}
