//! `type = "program"`: an external program decides; exit status 0 passes.
//! It gets the node in its environment (`SHOAL_NODE` as written,
//! `SHOAL_NODE_IP`, `SHOAL_NODE_PORT`) and `--ipaddr=IP --port=PORT
//! --node=HOST:PORT` after the configured `args`, as the source's external
//! monitors did. A program still running at the timeout is killed.

use super::{Check, Target};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct Program {
    pub program: PathBuf,
    pub args: Vec<String>,
}

/// Kills the child if the test is dropped (timed out) before it exits.
struct Reap(Child);

impl Drop for Reap {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

impl Check for Program {
    async fn check(&self, node: &Target) -> Result<String, String> {
        let (ip, port) = (node.addr.ip().to_string(), node.addr.port().to_string());
        let child = Command::new(&self.program)
            .args(&self.args)
            .arg(format!("--ipaddr={ip}"))
            .arg(format!("--port={port}"))
            .arg(format!("--node={}", node.name))
            .env("SHOAL_NODE", &node.name)
            .env("SHOAL_NODE_IP", &ip)
            .env("SHOAL_NODE_PORT", &port)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", self.program.display()))?;
        let mut child = Reap(child);
        // Poll: waiting would block the monitor thread's other tests.
        loop {
            match child.0.try_wait() {
                Ok(Some(status)) if status.success() => return Ok("exit status 0".into()),
                Ok(Some(status)) => return Err(format!("{} exited with {status}", self.program.display())),
                Ok(None) => monoio::time::sleep(Duration::from_millis(10)).await,
                Err(e) => return Err(format!("waiting for {}: {e}", self.program.display())),
            }
        }
    }
}
