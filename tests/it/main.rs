//! shoal's integration tests: one binary that starts real `shoal` processes
//! and real `shoal-origin` nodes on OS-chosen loopback ports, sends real
//! traffic and checks what arrived, byte for byte.

mod pki;
#[macro_use]
mod support;

mod api;
mod autoscale;
mod balance;
mod bench;
mod bench_tls;
mod cache;
mod cluster;
mod compression;
mod config;
mod dashboard;
mod events;
mod generic;
mod health;
mod http;
mod http2;
mod http_lb;
mod http_load;
mod lifecycle;
mod modules;
mod monitor;
mod persist;
mod reload;
mod rtsp;
mod rules;
mod shaping;
mod tls;
mod udp;
