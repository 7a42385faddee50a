//! `type = "http"` / `"https"`: one request on a new connection
//! (`Connection: close`); the status must be in the accepted range and,
//! with `body_regex`, the body must match.

use super::{Check, Target};
use crate::net::stream::Split;
use monoio::io::AsyncWriteRentExt;

pub struct Http {
    pub tls: bool,
    pub method: String,
    pub path: String,
    pub host: Option<String>,
    pub status: (u16, u16),
    pub body: Option<regex_lite::Regex>,
}

/// The most of a response read (head and body).
const MAX_RESPONSE: usize = 1 << 20;

/// The response is complete: its head, and as much body as Content-Length
/// says (without one, the node's close ends it).
fn complete(b: &[u8]) -> bool {
    let Some(end) = b.windows(4).position(|w| w == b"\r\n\r\n") else { return false };
    let head = String::from_utf8_lossy(&b[..end]).to_ascii_lowercase();
    let length =
        head.lines().find_map(|l| l.strip_prefix("content-length:")).and_then(|v| v.trim().parse::<usize>().ok());
    length.is_some_and(|n| b.len() >= end + 4 + n)
}

impl Check for Http {
    async fn check(&self, node: &Target) -> Result<String, String> {
        let Split { r: mut rd, w: mut wr, .. } =
            if self.tls { super::connect_tls(node).await? } else { Split::tcp(super::connect(node).await?) };
        let host = self.host.as_deref().unwrap_or(&node.name);
        let req = format!(
            "{} {} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: shoal-monitor\r\nConnection: close\r\n\r\n",
            self.method, self.path
        );
        let (res, _) = wr.write_all(req.into_bytes()).await;
        res.map_err(|e| format!("write failed: {e}"))?;
        let mut got = Vec::new();
        super::read_until(&mut rd, &mut got, MAX_RESPONSE, complete).await?;
        let line_end = got.iter().position(|&c| c == b'\n').ok_or("no response")?;
        let line = String::from_utf8_lossy(&got[..line_end]);
        let status: u16 = line
            .strip_prefix("HTTP/1.")
            .and_then(|r| r.get(2..5))
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("not an HTTP response: \"{}\"", line.trim_end()))?;
        if status < self.status.0 || status > self.status.1 {
            return Err(format!("status {status}, expected {}-{}", self.status.0, self.status.1));
        }
        if let Some(re) = &self.body {
            let start = got.windows(4).position(|w| w == b"\r\n\r\n").map_or(got.len(), |p| p + 4);
            let body = String::from_utf8_lossy(&got[start..]);
            if !re.is_match(&body) {
                return Err(format!("status {status}, but the body does not match /{}/", re.as_str()));
            }
        }
        Ok(format!("status {status}"))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn completeness() {
        assert!(!super::complete(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nab"));
        assert!(super::complete(b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nabc"));
        assert!(!super::complete(b"HTTP/1.1 200 OK\r\n\r\nabc"), "no length: read to close");
    }
}
