//! `type = "tls"`: the node completes a TLS handshake (verified against the
//! pool's CA when the pool encrypts to its nodes).

use super::{Check, Target};

pub struct Tls;

impl Check for Tls {
    async fn check(&self, node: &Target) -> Result<String, String> {
        let mut s = super::connect_tls(node).await?;
        // Close politely (close_notify), so the node logs no error.
        let _ = monoio::io::AsyncWriteRent::shutdown(&mut s.w).await;
        Ok(format!("handshake done ({})", s.tls.map_or("", |t| t.version)))
    }
}
