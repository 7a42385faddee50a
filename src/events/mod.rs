//! Events (I4): what happened to the traffic manager, told to operators.
//!
//! Anything in the process (a shard, the monitor thread, the control
//! plane, a rule) raises an [`Event`] with [`emit`], which never waits: it
//! hands the event to the dispatcher thread over a bounded channel, and an
//! event that does not fit is counted as dropped. The dispatcher logs it,
//! keeps the last ones for the API ([`recent`]), and offers it to every
//! handler whose filter takes it; each handler has a bounded queue and a
//! thread of its own, so a slow or dead receiver (a webhook that does not
//! answer) only fills its own queue, and what does not fit is counted.
//!
//! - [`catalogue`]: the event types, their levels and primary tags.
//! - [`handlers`]: the handlers' runtime: filters, queues, threads,
//!   counters, and reconfiguration.
//! - [`actions`]: what a handler does with an event: append it to a log
//!   file, send it to syslog, POST it to a webhook, run a program.
//! - [`certs`]: certificates about to expire.
//!
//! docs/events.md lists the types and the handlers' settings.

pub mod actions;
pub mod catalogue;
pub mod certs;
pub mod handlers;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, OnceLock};
use std::time::SystemTime;

/// How bad it is (the source's four levels).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    Info,
    Warning,
    Serious,
    Fatal,
}

impl Level {
    pub const ALL: [Level; 4] = [Level::Info, Level::Warning, Level::Serious, Level::Fatal];

    pub fn name(self) -> &'static str {
        match self {
            Level::Info => "INFO",
            Level::Warning => "WARNING",
            Level::Serious => "SERIOUS",
            Level::Fatal => "FATAL",
        }
    }

    /// A level by name, any case.
    pub fn parse(s: &str) -> Option<Level> {
        Level::ALL.into_iter().find(|l| l.name().eq_ignore_ascii_case(s))
    }
}

/// One event: its type (`node.down`), level, the section of the
/// configuration it is about (`pools/web`), the primary tag (what
/// happened, the source's short name: `nodefail`), further tags (a node's
/// address) and a text for people.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub time: SystemTime,
    pub kind: String,
    pub level: Level,
    pub section: String,
    pub tag: String,
    pub tags: Vec<String>,
    pub text: String,
}

impl Event {
    /// An event of a catalogued type (its level and primary tag from
    /// [`catalogue`]).
    pub fn new(kind: &'static catalogue::Kind, section: impl Into<String>, text: impl Into<String>) -> Event {
        Event {
            time: SystemTime::now(),
            kind: kind.name.to_owned(),
            level: kind.level,
            section: section.into(),
            tag: kind.tag.to_owned(),
            tags: Vec::new(),
            text: text.into(),
        }
    }

    pub fn tag(mut self, t: impl Into<String>) -> Event {
        self.tags.push(t.into());
        self
    }

    /// The source's one-line form: `LEVEL<TAB>section<TAB>tag<TAB>[tags<TAB>]*text`.
    pub fn line(&self) -> String {
        let mut s = format!("{}\t{}\t{}\t", self.level.name(), self.section, self.tag);
        for t in &self.tags {
            s.push_str(t);
            s.push('\t');
        }
        s.push_str(&self.text);
        s
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "time": crate::log::access::format_rfc3339(self.time),
            "unix_ms": self.time.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64),
            "type": self.kind,
            "level": self.level.name(),
            "section": self.section,
            "tag": self.tag,
            "tags": self.tags,
            "text": self.text,
        })
    }
}

/// Events waiting for the dispatcher; beyond this, [`emit`] drops them.
pub const QUEUE: usize = 10_000;

/// The process's event hub.
struct Hub {
    tx: flume::Sender<Event>,
    /// Kept for the API, newest last.
    recent: Mutex<VecDeque<Event>>,
    keep: usize,
}

static HUB: OnceLock<Hub> = OnceLock::new();

/// Counts for the whole process.
pub static EMITTED: AtomicU64 = AtomicU64::new(0);
pub static DROPPED: AtomicU64 = AtomicU64::new(0);

/// Raise an event. Never waits; before [`start`] (a `shoal check`, a unit
/// test) it is only logged. The caller logs its own line for the process
/// log (the dispatcher logs only rules' events).
pub fn emit(ev: Event) {
    EMITTED.fetch_add(1, Relaxed);
    match HUB.get() {
        Some(h) => {
            if h.tx.try_send(ev).is_err() {
                DROPPED.fetch_add(1, Relaxed);
            }
        }
        None => log_event(&ev),
    }
}

/// Raise the event `make` builds, at most once a second for (`kind`,
/// `name`) on this thread (a shard): for what can happen on every request
/// (a rule failing, a rate class refusing), so that a flood of them is one
/// event a second, not a flood of events. The table is per thread (no
/// lock on the request path), keyed by a hash (no allocation to look up)
/// and bounded; nothing is formatted unless the event is due.
pub fn emit_throttled(kind: &'static catalogue::Kind, name: &str, make: impl FnOnce() -> Event) {
    use std::cell::RefCell;
    use std::collections::HashMap;
    use std::time::{Duration, Instant};
    thread_local! {
        static LAST: RefCell<HashMap<u64, Instant>> = RefCell::new(HashMap::new());
    }
    static KEYS: OnceLock<ahash::RandomState> = OnceLock::new();
    let key = KEYS.get_or_init(ahash::RandomState::new).hash_one((kind.name, name));
    let now = Instant::now();
    let due = LAST.with(|l| {
        let mut l = l.borrow_mut();
        match l.get(&key) {
            Some(t) if now.duration_since(*t) < Duration::from_secs(1) => false,
            _ => {
                if l.len() >= 1024 {
                    l.retain(|_, t| now.duration_since(*t) < Duration::from_secs(1));
                }
                if l.len() < 1024 {
                    l.insert(key, now);
                }
                true
            }
        }
    });
    if due {
        emit(make());
    }
}

fn log_event(ev: &Event) {
    let level = match ev.level {
        Level::Info => log::Level::Info,
        Level::Warning => log::Level::Warn,
        Level::Serious | Level::Fatal => log::Level::Error,
    };
    log::log!(level, "event {} {}: {}", ev.kind, ev.section, ev.text);
}

/// Start the dispatcher (once per process), keeping the last `keep`
/// events for the API.
pub fn start(keep: usize) -> Result<(), String> {
    let (tx, rx) = flume::bounded(QUEUE);
    if HUB.set(Hub { tx, recent: Mutex::new(VecDeque::with_capacity(keep.min(4096))), keep }).is_err() {
        return Ok(());
    }
    std::thread::Builder::new()
        .name("events".into())
        .spawn(move || {
            let hub = HUB.get().expect("set above");
            for ev in rx.iter() {
                // What raises an event logs its own line; a rule's event
                // has no other trace in the process log.
                if ev.kind == catalogue::RULE_CUSTOM.name {
                    log_event(&ev);
                }
                handlers::offer(&ev);
                let mut r = hub.recent.lock().unwrap_or_else(|e| e.into_inner());
                if r.len() >= hub.keep {
                    r.pop_front();
                }
                r.push_back(ev);
            }
        })
        .map_err(|e| format!("cannot start the events thread: {e}"))?;
    Ok(())
}

/// Give the events thread up to `max` to take what is queued (before a
/// fatal exit).
pub fn flush(max: std::time::Duration) {
    let Some(h) = HUB.get() else { return };
    let end = std::time::Instant::now() + max;
    while !h.tx.is_empty() && std::time::Instant::now() < end {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// The events kept, oldest first, that pass `filter`.
pub fn recent(filter: impl Fn(&Event) -> bool) -> Vec<Event> {
    let Some(h) = HUB.get() else { return Vec::new() };
    let r = h.recent.lock().unwrap_or_else(|e| e.into_inner());
    r.iter().filter(|e| filter(e)).cloned().collect()
}

/// Whether an event type name matches a pattern: the name itself, `*`,
/// or a prefix ending in `.*` (`node.*`).
pub fn type_matches(pattern: &str, kind: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some("") => true,
        Some(prefix) => kind.starts_with(prefix),
        None => pattern == kind,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_and_lines() {
        assert!(type_matches("node.*", "node.down"));
        assert!(type_matches("*", "config.refused"));
        assert!(type_matches("node.down", "node.down"));
        assert!(!type_matches("node.down", "node.up"));
        assert!(!type_matches("node.*", "nodes.x"));
        let e = Event::new(&catalogue::NODE_DOWN, "pools/web", "Node 10.0.0.1:80 has failed").tag("10.0.0.1:80");
        assert_eq!(e.line(), "WARNING\tpools/web\tnodefail\t10.0.0.1:80\tNode 10.0.0.1:80 has failed");
        assert_eq!(Level::parse("serious"), Some(Level::Serious));
        assert!(Level::Info < Level::Fatal);
    }
}
