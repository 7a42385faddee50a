//! A complete shoal module (docs/phases.md): every response says which
//! node served it (`X-Served-By`) and how long the node took from the end
//! of the request phase to its response head (`Server-Timing`). Built as
//! its own program, it is shoal with one module more: the same command
//! line, the same configuration files.
//!
//!     cargo run --example node_header -- run -c conf/http.toml
//!     curl -si http://127.0.0.1:8080/ | grep -iE 'x-served-by|server-timing'

use shoal::proxy::module::{Flow, Module, Modules, Step, Verdict};
use shoal::proxy::txn::Txn;
use std::process::ExitCode;
use std::time::Instant;

/// The module: its configuration is the header name it sets.
struct NodeHeader {
    header: &'static str,
}

/// Per-request state: when the request phase ran.
#[derive(Default)]
struct Timing {
    asked: Option<Instant>,
}

impl Module for NodeHeader {
    type Ctx = Timing;

    fn name(&self) -> &'static str {
        "node_header"
    }

    fn request<'a>(&'a self, _tx: &'a mut Txn, ctx: &'a mut Timing) -> Step<'a, Flow> {
        ctx.asked = Some(Instant::now());
        Step::Ready(Flow::Continue)
    }

    fn response<'a>(&'a self, tx: &'a mut Txn, ctx: &'a mut Timing) -> Step<'a, Verdict> {
        // The node's name as configured, or the explicit address.
        let node = tx.node_name(tx.node).map(str::to_owned).or_else(|| tx.explicit_addr.map(|a| a.to_string()));
        if let Some(node) = node {
            let _ = tx.response.fields.set(self.header, node.as_bytes());
        }
        if let Some(t) = ctx.asked {
            let ms = t.elapsed().as_secs_f64() * 1000.0;
            let _ = tx.response.fields.add_with("Server-Timing", |v| v.extend(format!("node;dur={ms:.3}").bytes()));
        }
        Step::Ready(Verdict::Accept)
    }
}

fn main() -> ExitCode {
    // Every HTTP virtual server of every generation gets the module.
    shoal::cli::main(Modules::new().with(|_site| Some(NodeHeader { header: "X-Served-By" })))
}
