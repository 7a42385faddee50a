//! `type = "named_node"` (C7): the request names its node, as written in
//! the pool (`10.0.0.21:80`), where `source` says. A name that is not a
//! node of the pool is ignored (the request is balanced).

use super::{Claim, Class, RequestView};
use crate::config::model::KeySource;

pub struct NamedNode {
    pub source: KeySource,
    /// Node names per pool.
    pub names: Vec<Vec<String>>,
}

impl Class for NamedNode {
    fn claim<'a>(&self, req: &RequestView<'a>, pool: usize) -> Claim<'a> {
        let Some(v) = super::read_source(req, &self.source) else { return Claim::None };
        match self.names[pool].iter().position(|n| n.as_bytes() == v) {
            Some(i) => Claim::Node(i),
            None => Claim::None,
        }
    }
}
