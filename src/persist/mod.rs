//! Session persistence (E1–E4): the classes, one file each behind
//! [`Class`], and their stores. A class reads a request's claim to a
//! session (a key to look up, or a node named directly by a cookie it
//! carries), and learns from the served node's response (keys the
//! application just set, cookies shoal sets in turn).
//!
//! One store per configured class for the whole process ([`store`]), so a
//! session keeps its node whichever shard serves its next request.
//! Cookie-carried classes (transparent, app_cookie, node_cookie,
//! named_node) need no store.

pub mod app_cookie;
pub mod asp;
pub mod ip;
pub mod j2ee;
pub mod keyed;
pub mod lru;
pub mod named_node;
pub mod node_cookie;
pub mod ssl_session;
pub mod store;
pub mod transparent;
pub mod universal;

use crate::config::model::{Config, KeySource, Persistence, PersistenceType};
use crate::http::request::RequestHead;
use crate::http::response::ResponseHead;
use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::Arc;

/// A request as a class reads it.
pub struct RequestView<'a> {
    pub head: &'a RequestHead,
    pub client: IpAddr,
}

/// A node's response head as a class reads it.
pub struct ResponseView<'a> {
    pub head: &'a ResponseHead,
}

/// What a request says about its session. Keys borrow from the request
/// where they can: the store only needs them hashed, so a kept session
/// costs no copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim<'a> {
    /// Nothing: a new session.
    None,
    /// A key to look up in the class's store.
    Key(Cow<'a, [u8]>),
    /// The node, carried by the request itself (index in the pool).
    Node(usize),
    /// A shoal cookie that does not verify (edited or forged): ignored,
    /// and replaced by a valid one.
    Forged,
}

/// What a class learned from a response.
#[derive(Debug, Default)]
pub struct Learned {
    /// Keys to remember for the served node.
    pub record: Vec<Vec<u8>>,
    /// `Set-Cookie` values to add to the response.
    pub set_cookie: Vec<Vec<u8>>,
}

pub trait Class: Send + Sync {
    /// The request's claim to a session in pool `pool`.
    fn claim<'a>(&self, req: &RequestView<'a>, pool: usize) -> Claim<'a>;

    /// After node `node` of `pool` answered the request, which named
    /// `named` itself (a [`Claim::Node`]). Default: nothing beyond
    /// remembering the claimed key (which the caller does).
    fn learn(&self, _resp: &ResponseView<'_>, _named: Option<usize>, _pool: usize, _node: usize, _out: &mut Learned) {}
}

/// A configured class at run time.
pub struct ClassRt {
    pub cfg: Persistence,
    pub class: Box<dyn Class>,
    /// Shared with the generations before and after this one while the
    /// class and the pools' node lists stay the same (see [`build`]).
    pub store: Arc<store::Store>,
}

/// Every class, indexed like [`Config::persistence`], shared by all shards.
pub type Classes = Arc<Vec<ClassRt>>;

/// Build every class of `config`. `prev` is the running configuration's
/// classes on a reload: a class whose settings are unchanged keeps its
/// session table (it names pools and nodes by identities that survive the
/// reload; sessions of removed nodes are balanced afresh when they return).
pub fn build(config: &Config, prev: Option<&Classes>) -> Classes {
    Arc::new(
        config
            .persistence
            .iter()
            .map(|c| {
                let kept = prev.and_then(|classes| classes.iter().find(|o| o.cfg == *c)).map(|o| o.store.clone());
                if kept.is_none() && prev.is_some_and(|cl| cl.iter().any(|o| o.cfg.name == c.name)) {
                    log::info!("persistence {}: session table reset (the class's settings changed)", c.name);
                }
                let store = kept.unwrap_or_else(|| Arc::new(store::Store::new(c.max_entries)));
                ClassRt { cfg: c.clone(), class: class(c, config), store }
            })
            .collect(),
    )
}

/// Nothing to claim in HTTP requests (SSL session IDs live in passthrough,
/// RTSP sessions in `rtsp::session`).
struct NotHttp;

impl Class for NotHttp {
    fn claim<'a>(&self, _: &RequestView<'a>, _: usize) -> Claim<'a> {
        Claim::None
    }
}

fn class(c: &Persistence, config: &Config) -> Box<dyn Class> {
    match c.kind {
        PersistenceType::SslSessionId | PersistenceType::RtspSession => Box::new(NotHttp),
        PersistenceType::Ip => Box::new(ip::Ip),
        PersistenceType::Universal => Box::new(universal::Universal(c.source.clone().expect("validated"))),
        PersistenceType::NamedNode => {
            Box::new(named_node::NamedNode { source: c.source.clone().expect("validated"), names: names(config) })
        }
        PersistenceType::Transparent => Box::new(transparent::Transparent(keyed::Tokens::new(c, config))),
        PersistenceType::AppCookie => {
            Box::new(app_cookie::AppCookie { app: c.cookie.clone(), tokens: keyed::Tokens::new(c, config) })
        }
        PersistenceType::J2ee => Box::new(j2ee::J2ee),
        PersistenceType::Asp => Box::new(asp::Asp),
        PersistenceType::NodeCookie => {
            Box::new(node_cookie::NodeCookie { cookie: c.cookie.clone(), names: names(config) })
        }
    }
}

/// Node names as written, per pool (for classes that name nodes).
fn names(config: &Config) -> Vec<Vec<String>> {
    config.pools.iter().map(|p| p.nodes.iter().map(|n| n.name.clone()).collect()).collect()
}

/// The value `source` designates in a request.
pub fn read_source<'a>(req: &RequestView<'a>, source: &KeySource) -> Option<&'a [u8]> {
    let v = match source {
        KeySource::Header(name) => req.head.header(name),
        KeySource::Cookie(name) => crate::http::cookie::request_cookie(&req.head.fields, name),
        KeySource::Query(name) => {
            let q = req.head.query()?;
            q.split(|&c| c == b'&').find_map(|kv| {
                let eq = kv.iter().position(|&c| c == b'=').unwrap_or(kv.len());
                (&kv[..eq] == name.as_bytes()).then(|| kv.get(eq + 1..).unwrap_or(&[]))
            })
        }
        KeySource::Rule => None,
        KeySource::Path(n) => {
            let path = req.head.path();
            path.split(|&c| c == b'/').filter(|s| !s.is_empty()).nth(n - 1)
        }
    };
    v.filter(|v| !v.is_empty())
}
