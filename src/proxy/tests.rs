//! In-process tests of the driver with a module that the shipped
//! configuration cannot set yet (the rule language will): forwarding to an
//! explicit address (C7).

use super::module::{Flow, Module, Modules, Step};
use super::pipeline;
use super::txn::Txn;
use crate::pool::health::NodeHealth;
use crate::runtime::shard::ShardView;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;

/// A module that sends every request to one address.
#[derive(Clone, Copy)]
struct Explicit(SocketAddr);

impl Module for Explicit {
    type Ctx = ();

    fn name(&self) -> &'static str {
        "explicit"
    }

    fn request<'a>(&'a self, tx: &'a mut Txn, _: &'a mut ()) -> Step<'a, Flow> {
        tx.explicit_addr = Some(self.0);
        Step::Ready(Flow::Continue)
    }
}

/// A minimal HTTP node on a std thread answering every request `body`.
fn node(body: &'static str) -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            let mut w = s.try_clone().unwrap();
            let mut r = BufReader::new(s);
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                if line == "\r\n" {
                    let reply =
                        format!("HTTP/1.1 200 OK\r\nX-Direct: yes\r\nContent-Length: {}\r\n\r\n{body}", body.len());
                    if w.write_all(reply.as_bytes()).is_err() {
                        break;
                    }
                }
            }
        }
    });
    addr
}

fn unused_port() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

/// Serve one client connection through the driver with `module`; returns
/// what the client read.
fn one_request(module: Explicit, pool_node: SocketAddr) -> (String, Arc<NodeHealth>) {
    let cfg = format!(
        "[virtual_servers.v]\nlisten = \"127.0.0.1:0\"\nprotocol = \"http\"\npool = \"p\"\n\n[pools.p]\nnodes = [\"{pool_node}\"]\nmax_connect_time = \"1s\"\n"
    );
    let config = crate::config::load_str(&cfg, "test").unwrap();
    let modules = Modules::new().with(move |_| Some(module));
    let generation = crate::runtime::generation::Generation::first_with(config, modules, &mut Vec::new()).unwrap();
    let health = generation.health.clone();
    let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new().enable_timer().build().unwrap();
    let out = rt.block_on(async {
        let view = ShardView::standalone(&generation);
        let listener = monoio::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let client = std::thread::spawn(move || {
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            s.write_all(b"GET /x HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").unwrap();
            let mut got = String::new();
            let _ = s.read_to_string(&mut got);
            got
        });
        let (stream, peer) = listener.accept().await.unwrap();
        let local = stream.local_addr().unwrap();
        let _ = pipeline::run(view.clone(), 0, crate::net::stream::Split::tcp(stream), peer, local).await;
        client.join().unwrap()
    });
    (out, health[0][0].clone())
}

#[test]
fn explicit_address_bypasses_the_pool() {
    let direct = node("explicit");
    let (resp, pool_node_health) = one_request(Explicit(direct), unused_port());
    assert!(resp.starts_with("HTTP/1.1 200 OK\r\n"), "{resp}");
    assert!(resp.contains("X-Direct: yes") && resp.ends_with("explicit"), "{resp}");
    // The pool's (unreachable) node was never tried: no failure recorded.
    let now = crate::util::clock::now_ms();
    assert_eq!(pool_node_health.availability(now), crate::pool::health::Availability::Up);
}

#[test]
fn unreachable_explicit_address_is_502() {
    let (resp, _) = one_request(Explicit(unused_port()), node("pool node, not used"));
    assert!(resp.starts_with("HTTP/1.1 502 "), "{resp}");
}
