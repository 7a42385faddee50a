//! `type = "send_expect"`: write `send` (if any), then read until the reply
//! matches `expect` (banner protocols: SMTP's `220`, a Redis `+PONG`).

use super::{Check, Target};
use monoio::io::AsyncWriteRentExt;

pub struct SendExpect {
    pub send: Vec<u8>,
    pub expect: regex_lite::Regex,
}

/// The most of a reply read while looking for the pattern.
const MAX_REPLY: usize = 64 * 1024;

impl Check for SendExpect {
    async fn check(&self, node: &Target) -> Result<String, String> {
        let mut s = super::connect(node).await?;
        if !self.send.is_empty() {
            let (res, _) = s.write_all(self.send.clone()).await;
            res.map_err(|e| format!("write failed: {e}"))?;
        }
        let mut got = Vec::new();
        let matched =
            super::read_until(&mut s, &mut got, MAX_REPLY, |b| self.expect.is_match(&String::from_utf8_lossy(b)))
                .await?;
        let shown: String = String::from_utf8_lossy(&got[..got.len().min(80)]).escape_debug().collect();
        if matched {
            Ok(format!("reply matched: \"{shown}\""))
        } else {
            Err(format!("reply did not match /{}/: \"{shown}\"", self.expect.as_str()))
        }
    }
}
