//! Run a program for each event: the event's fields in its environment
//! (`SHOAL_EVENT_TYPE`, `_LEVEL`, `_SECTION`, `_TAG`, `_TAGS` (tab
//! separated), `_TEXT`, `_TIME`), and its one-line form on standard input.
//! Exit status 0 is delivered; another, or no end within `timeout` (the
//! program is then killed), is a failure.

use super::{Action, Outcome};
use crate::events::Event;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub struct Program {
    pub path: PathBuf,
    pub args: Vec<String>,
    pub timeout: Duration,
}

impl Action for Program {
    fn deliver(&mut self, ev: &Event) -> Outcome {
        let mut child = match Command::new(&self.path)
            .args(&self.args)
            .env("SHOAL_EVENT_TYPE", &ev.kind)
            .env("SHOAL_EVENT_LEVEL", ev.level.name())
            .env("SHOAL_EVENT_SECTION", &ev.section)
            .env("SHOAL_EVENT_TAG", &ev.tag)
            .env("SHOAL_EVENT_TAGS", ev.tags.join("\t"))
            .env("SHOAL_EVENT_TEXT", &ev.text)
            .env("SHOAL_EVENT_TIME", crate::log::access::format_rfc3339(ev.time))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
        {
            Ok(c) => c,
            Err(e) => return Outcome::Failed(format!("cannot run {}: {e}", self.path.display())),
        };
        if let Some(mut stdin) = child.stdin.take() {
            // A program that does not read its input is no failure.
            let _ = stdin.write_all(format!("{}\n", ev.line()).as_bytes());
        }
        let deadline = Instant::now() + self.timeout;
        loop {
            match child.try_wait() {
                Ok(Some(st)) if st.success() => return Outcome::Done,
                Ok(Some(st)) => return Outcome::Failed(format!("{} exited with {st}", self.path.display())),
                Ok(None) if Instant::now() >= deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Outcome::Failed(format!(
                        "{} did not finish within {:?}",
                        self.path.display(),
                        self.timeout
                    ));
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(10)),
                Err(e) => return Outcome::Failed(format!("{}: {e}", self.path.display())),
            }
        }
    }
}
