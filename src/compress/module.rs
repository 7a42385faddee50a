//! The compression module: in the `response` phase it decides whether
//! the node's response is compressed for this client, and if so edits the
//! head (`Content-Encoding`, no `Content-Length`, a weak `ETag`, no
//! `Accept-Ranges`) and streams the body through an [`Encoder`]
//! ([`BodyMode::Transform`]). A response that would be compressed for
//! some client gets `Vary: Accept-Encoding` whatever this client accepts.
//!
//! Never compressed: a HEAD request, a 206 or any response with
//! `Content-Range`, a body already encoded, `Cache-Control: no-transform`
//! (the response's or the request's), no body, a type not configured, or
//! a `Content-Length` below `min_size`.
//!
//! It sits after the cache in the stack (so before it on the response
//! side): the cache stores what it produced, each coding as its own
//! variant (docs/cache.md: `Vary: Accept-Encoding` is matched on the
//! canonical form of the field), taking the encoder over into the
//! drain that fills the object. A rule's `http.compress.enable()` or
//! `disable()` (`tx.compress`) overrides `enabled`.

use super::encoder::Encoder;
use crate::cache::control::Directives;
use crate::cache::policy::contains_token;
use crate::config::model::Compression;
use crate::http::coding;
use crate::proxy::module::{BodyChunk, BodyFlow, BodyMode, BodyTransform, Module, Step, Verdict};
use crate::proxy::txn::Txn;
use crate::runtime::shard::ShardView;
use std::rc::Rc;

pub struct CompressModule {
    settings: Compression,
    /// The virtual server has `[compression]` (else only a rule's
    /// `http.compress.enable()` turns it on, with the defaults).
    configured: bool,
}

impl CompressModule {
    /// The module for a virtual server: present when it has
    /// `[compression]` or rules (which may enable it).
    pub fn for_vs(vs: &crate::config::VirtualServer) -> Option<CompressModule> {
        let rules = !vs.request_rules.is_empty() || !vs.response_rules.is_empty();
        match &vs.compression {
            Some(c) => Some(CompressModule { settings: c.clone(), configured: true }),
            None if rules => Some(CompressModule { settings: Compression::default(), configured: false }),
            None => None,
        }
    }
}

/// The encoder of the response in hand, counting into its virtual
/// server's statistics as it goes (here, or in the cache's drain).
pub struct Counted {
    encoder: Encoder,
    view: Rc<ShardView>,
    vs: usize,
}

impl BodyTransform for Counted {
    fn transform(&mut self, data: &mut Vec<u8>, end: bool) -> BodyFlow {
        let before = data.len() as u64;
        let flow = self.encoder.transform(data, end);
        self.view.vs_stats(self.vs).compressed_bytes(before, data.len() as u64);
        flow
    }
}

#[derive(Default)]
pub struct Ctx {
    encoder: Option<Counted>,
}

impl Module for CompressModule {
    type Ctx = Ctx;

    fn name(&self) -> &'static str {
        "compression"
    }

    fn response<'a>(&'a self, tx: &'a mut Txn, ctx: &'a mut Ctx) -> Step<'a, Verdict> {
        // Again for the next node's response after a retry: start clean.
        ctx.encoder = None;
        tx.response_transformed = false;
        if !tx.compress.unwrap_or(self.configured && self.settings.enabled) || !eligible(tx, &self.settings) {
            return Step::Ready(Verdict::Accept);
        }
        let fields = &mut tx.response.fields;
        let varies = |t: &[u8]| fields.get_all("vary").any(|v| contains_token(v, t));
        if !varies(b"accept-encoding") && !varies(b"*") {
            // A failed edit (the head's edit budget spent) leaves the
            // response as it is: compressed without Vary would mislead
            // caches downstream.
            if fields.append_to_list("vary", |out| out.extend_from_slice(b"Accept-Encoding")).is_err() {
                return Step::Ready(Verdict::Accept);
            }
        }
        let Some(coding) = coding::negotiate(coding::client_values(&tx.request), &self.settings.codings) else {
            return Step::Ready(Verdict::Accept);
        };
        let size = match tx.response.framing {
            crate::http::Framing::Length(n) => Some(n),
            _ => None,
        };
        let encoder = match Encoder::new(coding, self.settings.levels, size) {
            Ok(e) => e,
            Err(e) => {
                log::warn!("compression ({}): the encoder could not start: {e}", coding.token());
                return Step::Ready(Verdict::Accept);
            }
        };
        let fields = &mut tx.response.fields;
        // A strong validator names one representation's bytes; the
        // compressed one gets a weak one (as nginx does), which a node
        // still matches for If-None-Match (weak comparison).
        let weak = fields.get("etag").filter(|e| e.starts_with(b"\"")).map(|e| [b"W/", e].concat());
        let edited = fields.set("content-encoding", coding.token().as_bytes()).is_ok()
            && weak.is_none_or(|w| fields.set("etag", &w).is_ok());
        if !edited {
            fields.remove("content-encoding");
            return Step::Ready(Verdict::Accept);
        }
        fields.remove("content-length");
        fields.remove("accept-ranges");
        tx.response_transformed = true;
        tx.view.vs_stats(tx.vs).compressed(coding);
        ctx.encoder = Some(Counted { encoder, view: tx.view.clone(), vs: tx.vs });
        Step::Ready(Verdict::Accept)
    }

    fn response_body_mode(&self, _tx: &Txn, ctx: &mut Ctx) -> BodyMode {
        if ctx.encoder.is_some() {
            BodyMode::Transform
        } else {
            BodyMode::Off
        }
    }

    fn response_body<'a>(
        &'a self,
        _tx: &'a mut Txn,
        ctx: &'a mut Ctx,
        chunk: &'a mut BodyChunk<'_>,
    ) -> Step<'a, BodyFlow> {
        let end = chunk.is_end();
        let flow = match (&mut ctx.encoder, chunk.data_mut()) {
            (Some(e), Some(data)) => e.transform(data, end),
            _ => BodyFlow::Continue,
        };
        Step::Ready(flow)
    }

    fn take_transform(&self, _tx: &mut Txn, ctx: &mut Ctx) -> Option<Box<dyn BodyTransform>> {
        ctx.encoder.take().map(|e| Box::new(e) as Box<dyn BodyTransform>)
    }
}

/// Whether the response may be compressed at all (for some client):
/// none of the "never" cases, a configured type and a large enough body.
fn eligible(tx: &Txn, s: &Compression) -> bool {
    let r = &tx.response;
    if tx.request.client_sent_head()
        || matches!(r.status, 100..=199 | 204 | 206 | 304)
        || r.framing == crate::http::Framing::None
        || r.fields.contains("content-range")
    {
        return false;
    }
    if let Some(enc) = r.fields.get("content-encoding") {
        if !crate::http::trim_ows(enc).eq_ignore_ascii_case(b"identity") {
            return false;
        }
    }
    let no_transform = |f: &crate::http::fields::Fields| Directives::parse(f.get_all("cache-control")).no_transform;
    if no_transform(&r.fields) || no_transform(&tx.request.fields) {
        return false;
    }
    if let crate::http::Framing::Length(n) = r.framing {
        if n < s.min_size {
            return false;
        }
    }
    r.fields.get("content-type").is_some_and(|t| type_matches(t, &s.types))
}

/// Whether a `Content-Type` value's media type is one of `types`
/// (`type/subtype` or `type/*`, lower case).
fn type_matches(value: &[u8], types: &[String]) -> bool {
    let media = crate::http::trim_ows(value.split(|&b| b == b';').next().unwrap_or(value));
    let Some(slash) = media.iter().position(|&b| b == b'/') else { return false };
    types.iter().any(|t| match t.strip_suffix("/*") {
        Some(top) => media[..slash].eq_ignore_ascii_case(top.as_bytes()),
        None => media.eq_ignore_ascii_case(t.as_bytes()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_match_exactly_or_by_top_level() {
        let types: Vec<String> = ["text/*", "application/json"].iter().map(|s| s.to_string()).collect();
        assert!(type_matches(b"text/html; charset=utf-8", &types));
        assert!(type_matches(b"Text/CSS", &types));
        assert!(type_matches(b" application/json ", &types));
        assert!(!type_matches(b"application/json-seq", &types));
        assert!(!type_matches(b"image/png", &types));
        assert!(!type_matches(b"textual", &types));
        assert!(!type_matches(b"\xff/x", &types));
    }

    #[test]
    fn lists_finds_tokens_and_directives() {
        let no_transform = |v: &[u8]| Directives::parse(std::iter::once(v)).no_transform;
        assert!(no_transform(b"public, no-transform"));
        assert!(no_transform(b"max-age=60,No-Transform"));
        assert!(!no_transform(b"no-transformx"));
        assert!(contains_token(b"Accept-Encoding, Cookie", b"accept-encoding"));
    }
}
