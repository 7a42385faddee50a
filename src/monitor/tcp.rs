//! `type = "tcp"`: the node accepts a TCP connection.

use super::{Check, Target};

pub struct Tcp;

impl Check for Tcp {
    async fn check(&self, node: &Target) -> Result<String, String> {
        super::connect(node).await.map(|_| "connected".into())
    }
}
