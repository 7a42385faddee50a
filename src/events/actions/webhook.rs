//! An HTTP webhook: each event POSTed as JSON (`Event::json`) on a
//! connection of its own. A 2xx is delivered; a connection that fails, a
//! timeout, 408, 429 or a 5xx is tried again later (the receiver is
//! away); any other status is refused for good.

use super::{Action, Outcome};
use crate::events::Event;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

pub struct Webhook {
    pub host: String,
    pub port: u16,
    pub path: String,
    pub timeout: Duration,
}

impl Webhook {
    fn post(&self, body: &[u8]) -> std::io::Result<u16> {
        let addr = (self.host.as_str(), self.port)
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| std::io::Error::other("the host has no address"))?;
        let mut s = TcpStream::connect_timeout(&addr, self.timeout)?;
        s.set_read_timeout(Some(self.timeout))?;
        s.set_write_timeout(Some(self.timeout))?;
        let head = format!(
            "POST {} HTTP/1.1\r\nHost: {}:{}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
             User-Agent: shoal/{}\r\nConnection: close\r\n\r\n",
            self.path,
            self.host,
            self.port,
            body.len(),
            env!("CARGO_PKG_VERSION")
        );
        s.write_all(head.as_bytes())?;
        s.write_all(body)?;
        // The status line is all that is needed.
        let mut got = Vec::new();
        let mut buf = [0u8; 512];
        while !got.windows(2).any(|w| w == b"\r\n") && got.len() < 4096 {
            let n = s.read(&mut buf)?;
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        let line = String::from_utf8_lossy(&got);
        line.split(' ')
            .nth(1)
            .and_then(|c| c.trim().parse().ok())
            .ok_or_else(|| std::io::Error::other("no HTTP status in the answer"))
    }
}

impl Action for Webhook {
    fn deliver(&mut self, ev: &Event) -> Outcome {
        let body = ev.json().to_string();
        match self.post(body.as_bytes()) {
            Ok(200..=299) => Outcome::Done,
            Ok(code @ (408 | 429 | 500..=599)) => Outcome::Retry(format!("webhook answered {code}")),
            Ok(code) => Outcome::Failed(format!("webhook answered {code}")),
            Err(e) => Outcome::Retry(format!("webhook {}:{}: {e}", self.host, self.port)),
        }
    }
}
