//! Layer-7 direct server return, built in (M1, `[virtual_servers.NAME.dsr]`):
//! a GET or HEAD for one of the configured paths goes to the pool as a
//! light `HEAD` of the probe path, so that balancing, health and session
//! persistence choose the node as for any request; the node's answer is
//! then replaced by a redirect that sends the client to that node's public
//! address for the original path and query. The large body never passes
//! through shoal. A probe answered with a 5xx counts as the node's failure,
//! so the request moves on to another node like any retry.
//!
//! This is the seeds' DSR rule pair (docs/rules.md) without a rule: no
//! rule machine runs, and the original target is kept in the module's
//! context instead of `connection.data`.

use crate::config::Dsr as DsrConfig;
use crate::proxy::module::{Flow, Module, Step, Verdict};
use crate::proxy::own::OwnResponse;
use crate::proxy::txn::Txn;
use crate::rules::builtins::text::wild;

pub struct Dsr {
    cfg: DsrConfig,
}

/// The original target of a request turned into a probe.
#[derive(Default)]
pub struct DsrCtx {
    target: Option<Vec<u8>>,
}

impl Dsr {
    pub fn for_vs(vs: &crate::config::VirtualServer) -> Option<Dsr> {
        vs.dsr.clone().map(|cfg| Dsr { cfg })
    }

    fn matches(&self, path: &[u8]) -> bool {
        self.cfg.paths.iter().any(|p| wild(path, p.as_bytes()))
    }

    /// Where the client goes: `scheme://public/target`.
    fn location(&self, node: &str, target: &[u8]) -> Vec<u8> {
        let host = self.cfg.public.iter().find(|(n, _)| n == node).map_or(node, |(_, p)| p.as_str());
        let mut out = Vec::with_capacity(self.cfg.scheme.len() + 3 + host.len() + target.len());
        out.extend_from_slice(self.cfg.scheme.as_bytes());
        out.extend_from_slice(b"://");
        out.extend_from_slice(host.as_bytes());
        out.extend_from_slice(target);
        out
    }
}

impl Module for Dsr {
    type Ctx = DsrCtx;

    fn name(&self) -> &'static str {
        "dsr"
    }

    fn request<'a>(&'a self, tx: &'a mut Txn, ctx: &'a mut DsrCtx) -> Step<'a, Flow> {
        let method = tx.request.method();
        if (method != b"GET" && method != b"HEAD") || !self.matches(tx.request.path()) {
            return Step::Ready(Flow::Continue);
        }
        let target = tx.request.target().to_vec();
        let edited = tx.request.set_method(b"HEAD").and_then(|_| tx.request.set_target(self.cfg.probe.as_bytes()));
        if edited.is_err() {
            // The head has no room for the edit: serve it the usual way.
            log::warn!("virtual server {}: no room in the head for the DSR probe; proxied", tx.vs_config().name);
            return Step::Ready(Flow::Continue);
        }
        if let Some(p) = self.cfg.pool {
            tx.pool = p;
        }
        ctx.target = Some(target);
        Step::Ready(Flow::Continue)
    }

    fn response<'a>(&'a self, tx: &'a mut Txn, ctx: &'a mut DsrCtx) -> Step<'a, Verdict> {
        let Some(target) = &ctx.target else { return Step::Ready(Verdict::Accept) };
        if tx.response.status >= 500 {
            return Step::Ready(Verdict::NodeFailure("the DSR probe failed"));
        }
        let Some(node) = tx.node_name(tx.node) else { return Step::Ready(Verdict::Accept) };
        let location = self.location(node, target);
        let mut body = b"Moved: ".to_vec();
        body.extend_from_slice(&location);
        body.push(b'\n');
        let own = OwnResponse::with_body(self.cfg.status, "text/plain", body).header("Location", &location);
        Step::Ready(Verdict::Respond(Box::new(own)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn location_uses_the_public_name() {
        let d = Dsr {
            cfg: DsrConfig {
                paths: vec!["/media/*".into()],
                pool: None,
                probe: "/".into(),
                scheme: "http".into(),
                status: 302,
                public: vec![("10.0.0.5:80".into(), "media1.example.com".into())],
            },
        };
        assert!(d.matches(b"/media/a.mp4"));
        assert!(!d.matches(b"/index.html"));
        assert_eq!(d.location("10.0.0.5:80", b"/media/a.mp4?x=1"), b"http://media1.example.com/media/a.mp4?x=1");
        assert_eq!(d.location("10.0.0.6:80", b"/media/b"), b"http://10.0.0.6:80/media/b");
    }
}
