//! Session persistence (E1): the process-wide stores behind the
//! persistence classes. One store per configured class, shared by every
//! shard, so a session keeps its node whichever shard accepts its next
//! connection.
//!
//! Only the SSL-session-ID class exists so far ([`ssl_session`]); the
//! other classes of E1 arrive with their own files behind the same store.

pub mod lru;
pub mod ssl_session;

use crate::config::model::{Config, PersistenceType};
use std::sync::Arc;

/// Every class's store, indexed like [`Config::persistence`].
pub type Stores = Arc<Vec<Arc<ssl_session::SessionStore>>>;

pub fn build(config: &Config) -> Stores {
    Arc::new(
        config
            .persistence
            .iter()
            .map(|c| match c.kind {
                PersistenceType::SslSessionId => Arc::new(ssl_session::SessionStore::new(c.max_entries)),
            })
            .collect(),
    )
}
