//! shoal: a shard-per-core layer-7 traffic manager on io_uring.
//!
//! Architecture in one paragraph: the process reads a TOML configuration
//! ([`config`]) into validated runtime types, then starts one shard per CPU
//! ([`runtime`]). Each shard is a thread pinned to its CPU running a monoio
//! runtime whose io_uring is built with DEFER_TASKRUN | SINGLE_ISSUER. Every
//! shard binds every listener with SO_REUSEPORT ([`net`]) and owns the
//! connections it accepts, its view of each pool ([`pool`]) and its balancer
//! state ([`lb`]) as plain `Cell`/`RefCell` data. Shards exchange only
//! periodic snapshots (least-connections counts now) over a bounded channel
//! mesh ([`runtime::mesh`]); a balancing decision never waits for another
//! shard. Passive node health is the one piece of process-wide state shared
//! by reference: it is read on every pick but written only when a node fails
//! or recovers (see [`pool::health`]). Protocol handlers ([`proto`]) drive a
//! connection from accept to close.
#![deny(unsafe_code)]

pub mod api;
pub mod autoscale;
pub mod cache;
pub mod cli;
pub mod cluster;
pub mod compress;
pub mod config;
pub mod error;
pub mod events;
pub mod fuzzing;
pub mod h2;
pub mod http;
pub mod lb;
pub mod log;
pub mod logging;
pub mod monitor;
pub mod net;
pub mod persist;
pub mod pool;
pub mod proto;
pub mod proxy;
pub mod rtsp;
pub mod rules;
pub mod runtime;
pub mod shaping;
pub mod slm;
pub mod stats;
pub mod tls;
pub mod udp;
pub mod util;
