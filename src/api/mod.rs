//! The control plane's REST API (I1) and statistics (I2): its own
//! listener, off the shards, loopback by default and TLS elsewhere; HTTP
//! Basic authentication against hashed passwords; configuration objects
//! read and edited as the TOML files they live in, applied live (A4).

pub mod auth;
pub mod client;
pub mod history;
pub mod objects;
pub mod render;
pub mod routes;
pub mod server;

pub use routes::start;
