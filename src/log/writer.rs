//! The access-log writer thread: shards hand it filled line buffers over a
//! bounded channel and go on; it appends them to the files with ordinary
//! blocking writes, off every shard. SIGUSR1 makes it reopen every file (for
//! log rotation: move the file away, send SIGUSR1, compress the old one).

use flume::{Receiver, Sender, TrySendError};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Buffers in flight to the writer; beyond this shards drop lines (and
/// count them) rather than wait.
pub const QUEUE: usize = 1024;

pub enum LogMsg {
    /// Lines for access log number `log`.
    Lines {
        log: usize,
        bytes: Vec<u8>,
    },
    Reopen,
    /// Reply once everything before this message is written.
    Sync(std::sync::mpsc::Sender<()>),
    /// A new access log (a reconfiguration added it): it becomes the next
    /// log number.
    Open(PathBuf, File),
}

/// The shards' handle on the writer.
#[derive(Clone)]
pub struct LogSender(Sender<LogMsg>);

impl LogSender {
    /// Hand over `bytes` without waiting; gives them back if the writer is
    /// behind.
    pub fn try_send(&self, log: usize, bytes: Vec<u8>) -> Result<(), Vec<u8>> {
        match self.0.try_send(LogMsg::Lines { log, bytes }) {
            Ok(()) => Ok(()),
            Err(
                TrySendError::Full(LogMsg::Lines { bytes, .. })
                | TrySendError::Disconnected(LogMsg::Lines { bytes, .. }),
            ) => Err(bytes),
            Err(_) => Ok(()),
        }
    }

    pub fn reopen(&self) {
        let _ = self.0.send(LogMsg::Reopen);
    }

    /// Open `path` now (so a bad path fails the reconfiguration that adds
    /// it) and give it to the writer as the next log number.
    pub fn open(&self, path: &Path) -> Result<(), String> {
        let f = open(path).map_err(|e| format!("cannot open access log {}: {e}", path.display()))?;
        self.0.send(LogMsg::Open(path.to_owned(), f)).map_err(|_| "the access log writer has stopped".to_string())
    }

    /// Block until everything sent so far is written (at exit), up to `wait`.
    pub fn sync(&self, wait: std::time::Duration) {
        let (tx, rx) = std::sync::mpsc::channel();
        if self.0.send_timeout(LogMsg::Sync(tx), wait).is_ok() {
            let _ = rx.recv_timeout(wait);
        }
    }
}

fn open(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

/// Open every file now (so a bad path fails at startup) and start the
/// writer thread.
pub fn start(paths: Vec<PathBuf>) -> Result<LogSender, String> {
    let mut files = Vec::new();
    for p in &paths {
        files.push(open(p).map_err(|e| format!("cannot open access log {}: {e}", p.display()))?);
    }
    let (tx, rx) = flume::bounded(QUEUE);
    std::thread::Builder::new()
        .name("access-log".into())
        .spawn(move || run(paths, files, rx))
        .map_err(|e| format!("cannot start the access log writer: {e}"))?;
    Ok(LogSender(tx))
}

fn run(mut paths: Vec<PathBuf>, mut files: Vec<File>, rx: Receiver<LogMsg>) {
    while let Ok(msg) = rx.recv() {
        match msg {
            LogMsg::Lines { log, bytes } => {
                if let Some(f) = files.get_mut(log) {
                    if let Err(e) = f.write_all(&bytes) {
                        log::error!("access log {}: write failed: {e}", paths[log].display());
                    }
                }
            }
            LogMsg::Reopen => {
                for (f, p) in files.iter_mut().zip(&paths) {
                    match open(p) {
                        Ok(new) => *f = new,
                        Err(e) => {
                            log::error!("access log {}: reopen failed: {e}; still writing to the old file", p.display())
                        }
                    }
                }
                log::info!("access logs reopened");
            }
            LogMsg::Open(path, f) => {
                paths.push(path);
                files.push(f);
            }
            LogMsg::Sync(done) => {
                for f in &mut files {
                    let _ = f.flush();
                }
                let _ = done.send(());
            }
        }
    }
}
