//! Event handlers at run time: each configured `[event_handlers.NAME]`
//! (and the built-in "log all" handler of `[events] log`) is a filter, a
//! bounded queue and a thread running its action. The dispatcher offers
//! every event to every handler ([`offer`]) without waiting; a handler
//! whose queue is full counts the event as dropped. A handler's thread
//! delivers one event at a time, retrying what its action says may
//! succeed later (a webhook that is down) with a back-off, so events
//! queued while a receiver is away are delivered when it returns.
//!
//! A reconfiguration ([`configure`]) keeps the handlers whose settings
//! did not change (their queues and counters with them), stops the ones
//! removed or changed (a stopped handler's thread ends after the event in
//! hand) and starts the new ones.

use super::actions::{self, Action, Outcome};
use super::{Event, Level};
use crate::config::model::EventHandler;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// A handler's counts since it started.
#[derive(Debug, Default)]
pub struct Counters {
    /// Events its action took.
    pub delivered: AtomicU64,
    /// Events its action refused for good (a webhook's 4xx, a program's
    /// failure), after which it went on to the next.
    pub failed: AtomicU64,
    /// Attempts that will be tried again (a receiver not answering).
    pub retries: AtomicU64,
    /// Events that did not fit in its queue.
    pub dropped: AtomicU64,
}

struct Running {
    settings: EventHandler,
    tx: flume::Sender<Event>,
    counters: Arc<Counters>,
    stop: Arc<AtomicBool>,
}

static HANDLERS: RwLock<Vec<Running>> = RwLock::new(Vec::new());

/// Whether `h` takes `ev`: its level at least the handler's, its type
/// matching one of the handler's patterns.
pub fn takes(h: &EventHandler, ev: &Event) -> bool {
    ev.level >= h.level && h.events.iter().any(|p| super::type_matches(p, &ev.kind))
}

/// Offer `ev` to every handler that takes it (the dispatcher's call).
pub fn offer(ev: &Event) {
    let list = HANDLERS.read().unwrap_or_else(|e| e.into_inner());
    for h in list.iter().filter(|h| takes(&h.settings, ev)) {
        if h.tx.try_send(ev.clone()).is_err() {
            h.counters.dropped.fetch_add(1, Relaxed);
        }
    }
}

/// Run `wanted` from now on: unchanged handlers keep running; the rest
/// start, or stop. Errors (a handler that cannot start its thread) are
/// logged and that handler is left out.
pub fn configure(wanted: &[EventHandler]) {
    let mut list = HANDLERS.write().unwrap_or_else(|e| e.into_inner());
    let mut old: Vec<Running> = std::mem::take(&mut *list);
    for w in wanted {
        if let Some(i) = old.iter().position(|r| r.settings == *w) {
            list.push(old.swap_remove(i));
            continue;
        }
        match start(w.clone()) {
            Ok(r) => list.push(r),
            Err(e) => log::error!("event handler {}: {e}", w.name),
        }
    }
    for r in old {
        r.stop.store(true, Relaxed);
    }
}

fn start(settings: EventHandler) -> Result<Running, String> {
    let (tx, rx) = flume::bounded::<Event>(settings.queue);
    let counters = Arc::new(Counters::default());
    let stop = Arc::new(AtomicBool::new(false));
    let mut action = actions::build(&settings.action)?;
    let (c, s, name) = (counters.clone(), stop.clone(), settings.name.clone());
    std::thread::Builder::new()
        .name(format!("event-{}", settings.name))
        .spawn(move || {
            for ev in rx.iter() {
                if s.load(Relaxed) {
                    break;
                }
                deliver(&name, action.as_mut(), &ev, &c, &s);
            }
        })
        .map_err(|e| format!("cannot start its thread: {e}"))?;
    Ok(Running { settings, tx, counters, stop })
}

/// First wait after a failed attempt, doubled up to [`BACKOFF_MAX`].
const BACKOFF: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

fn deliver(name: &str, action: &mut dyn Action, ev: &Event, c: &Counters, stop: &AtomicBool) {
    let mut wait = BACKOFF;
    loop {
        match action.deliver(ev) {
            Outcome::Done => {
                c.delivered.fetch_add(1, Relaxed);
                return;
            }
            Outcome::Failed(why) => {
                c.failed.fetch_add(1, Relaxed);
                log::warn!("event handler {name}: {} not delivered: {why}", ev.kind);
                return;
            }
            Outcome::Retry(why) => {
                if c.retries.fetch_add(1, Relaxed) == 0 || wait == BACKOFF_MAX {
                    log::warn!("event handler {name}: {why}; trying again");
                }
                // Sleep in short steps so that a stopped handler ends soon.
                let mut slept = Duration::ZERO;
                while slept < wait {
                    if stop.load(Relaxed) {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                    slept += Duration::from_millis(50);
                }
                wait = (wait * 2).min(BACKOFF_MAX);
            }
        }
    }
}

/// Each running handler's name and counts.
pub fn counters() -> Vec<(String, Arc<Counters>, usize)> {
    let list = HANDLERS.read().unwrap_or_else(|e| e.into_inner());
    list.iter().map(|h| (h.settings.name.clone(), h.counters.clone(), h.tx.len())).collect()
}

/// The minimum level of a handler with none configured.
pub const DEFAULT_LEVEL: Level = Level::Info;
