//! Active health monitors (D1, D2): tests run against every node of the
//! pools that name a monitor, on one thread for the whole process, so each
//! node is tested once per interval however many shards there are. A
//! verdict is a shared atomic in the node's [`NodeHealth`]
//! (crate::pool::health), read by every shard on every pick, so all shards
//! see it the moment it changes.
//!
//! One file per test type, each implementing [`Check`]; [`schedule`] runs
//! them and turns results into up/down verdicts.
#![allow(async_fn_in_trait)] // one thread: futures never cross threads

pub mod http;
pub mod program;
pub mod schedule;
pub mod send_expect;
pub mod tcp;
pub mod tls;

use crate::config::model::{Monitor, MonitorType};
use crate::net::stream::Split;
use monoio::net::TcpStream;
use std::net::SocketAddr;
use std::sync::Arc;

/// A node as monitors see it.
#[derive(Clone)]
pub struct Target {
    pub addr: SocketAddr,
    /// `host:port` as written in the configuration.
    pub name: String,
    /// For TLS tests: the pool's client configuration when it encrypts to
    /// its nodes (as reloaded by SIGHUP), else one that accepts any
    /// certificate (a monitor tests that the service answers, not who it is).
    pub tls: TlsSource,
}

#[derive(Clone)]
pub enum TlsSource {
    Pool(crate::tls::client::Connector),
    AnyCertificate(Arc<rustls::ClientConfig>),
}

impl TlsSource {
    /// Both verify nodes the same way (the same pool connector, or both
    /// accept any certificate).
    pub fn same(&self, o: &TlsSource) -> bool {
        match (self, o) {
            (TlsSource::Pool(a), TlsSource::Pool(b)) => a.same_as(b),
            (TlsSource::AnyCertificate(_), TlsSource::AnyCertificate(_)) => true,
            _ => false,
        }
    }

    /// The configuration and the name to verify for the node `node`.
    fn for_node(
        &self,
        node: &str,
    ) -> Result<(Arc<rustls::ClientConfig>, rustls::pki_types::ServerName<'static>), String> {
        match self {
            TlsSource::Pool(c) => Ok((c.config(), c.name_for(node)?)),
            TlsSource::AnyCertificate(c) => {
                Ok((c.clone(), crate::tls::client::server_name(crate::tls::client::host_of(node))?))
            }
        }
    }
}

/// One test of a node. `Ok` carries a detail for verbose logs, `Err` the
/// reason it failed. The scheduler applies the monitor's timeout.
pub trait Check {
    async fn check(&self, node: &Target) -> Result<String, String>;
}

/// The test a monitor runs.
pub enum Checker {
    Tcp(tcp::Tcp),
    Http(http::Http),
    Tls(tls::Tls),
    SendExpect(send_expect::SendExpect),
    Program(program::Program),
}

impl Checker {
    pub fn new(m: &Monitor) -> Checker {
        let pattern = m.pattern.as_deref().map(|p| regex_lite::Regex::new(p).expect("validated at load"));
        match m.kind {
            MonitorType::Tcp => Checker::Tcp(tcp::Tcp),
            MonitorType::Http | MonitorType::Https => Checker::Http(http::Http {
                tls: m.kind == MonitorType::Https,
                method: m.method.clone(),
                path: m.path.clone(),
                host: m.host.clone(),
                status: m.status,
                body: pattern,
            }),
            MonitorType::Tls => Checker::Tls(tls::Tls),
            MonitorType::SendExpect => Checker::SendExpect(send_expect::SendExpect {
                send: m.send.clone(),
                expect: pattern.expect("validated: send_expect has expect"),
            }),
            MonitorType::Program => Checker::Program(program::Program {
                program: m.program.clone().expect("validated: program monitors name one"),
                args: m.args.clone(),
            }),
        }
    }
}

impl Check for Checker {
    async fn check(&self, node: &Target) -> Result<String, String> {
        match self {
            Checker::Tcp(c) => c.check(node).await,
            Checker::Http(c) => c.check(node).await,
            Checker::Tls(c) => c.check(node).await,
            Checker::SendExpect(c) => c.check(node).await,
            Checker::Program(c) => c.check(node).await,
        }
    }
}

/// Connect to the node (plain TCP).
pub async fn connect(node: &Target) -> Result<TcpStream, String> {
    let s = TcpStream::connect_addr(node.addr).await.map_err(|e| format!("connect failed: {e}"))?;
    let _ = s.set_nodelay(true);
    Ok(s)
}

/// Connect and complete a TLS handshake.
pub async fn connect_tls(node: &Target) -> Result<Split, String> {
    let (config, name) = node.tls.for_node(&node.name)?;
    let s = connect(node).await?;
    Ok(Split::tls(crate::tls::client::handshake(s, config, name).await?))
}

/// Read from `r` into `buf` until `done(buf)` or end of stream, at most
/// `limit` bytes. Returns whether `done` held.
pub async fn read_until<R: monoio::io::AsyncReadRent>(
    r: &mut R,
    buf: &mut Vec<u8>,
    limit: usize,
    done: impl Fn(&[u8]) -> bool,
) -> Result<bool, String> {
    loop {
        if done(buf) {
            return Ok(true);
        }
        if buf.len() >= limit {
            return Ok(false);
        }
        match crate::net::reader::append(r, buf).await {
            Ok(0) => return Ok(done(buf)),
            Ok(_) => {}
            Err(e) => return Err(format!("read failed: {e}")),
        }
    }
}
