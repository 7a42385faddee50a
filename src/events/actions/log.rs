//! The event log: one JSON object per line, appended. SIGUSR1 reopens the
//! file (rotation, as for the access logs: move it away, send SIGUSR1).

use super::{Action, Outcome};
use crate::events::Event;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Bumped by SIGUSR1; a log file reopens when it sees a new value.
pub static REOPEN: AtomicU64 = AtomicU64::new(0);

pub struct LogFile {
    path: PathBuf,
    file: Option<File>,
    seen: u64,
}

impl LogFile {
    pub fn new(path: PathBuf) -> LogFile {
        LogFile { path, file: None, seen: REOPEN.load(Relaxed) }
    }
}

impl Action for LogFile {
    fn deliver(&mut self, ev: &Event) -> Outcome {
        let now = REOPEN.load(Relaxed);
        if now != self.seen {
            self.seen = now;
            self.file = None;
        }
        if self.file.is_none() {
            match OpenOptions::new().create(true).append(true).open(&self.path) {
                Ok(f) => self.file = Some(f),
                Err(e) => return Outcome::Retry(format!("cannot open {}: {e}", self.path.display())),
            }
        }
        let mut line = ev.json().to_string();
        line.push('\n');
        match self.file.as_mut().map(|f| f.write_all(line.as_bytes())) {
            Some(Ok(())) => Outcome::Done,
            Some(Err(e)) => {
                self.file = None;
                Outcome::Retry(format!("cannot write {}: {e}", self.path.display()))
            }
            None => Outcome::Retry("no file".into()),
        }
    }
}
