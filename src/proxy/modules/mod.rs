//! The built-in modules, and the stack each HTTP virtual server gets.
//!
//! Stack order (request-side phases run it forwards, response-side ones
//! backwards; docs/phases.md):
//!
//! 1. [`access_log::AccessLog`] (`log`): when the virtual server has an
//!    access log;
//! 2. [`error_page::ErrorPage`] (`error`): with `error_file` or
//!    `error_action = "close"`;
//! 3. [`crate::shaping::module::RateModule`] (`request`): with a
//!    `rate_class`, every request waits its turn first;
//! 4. [`persistence::Persistence`] (`route`, `response`): when the
//!    configuration has a session persistence class for HTTP;
//! 5. [`forwarding::Forwarding`] (`node_request`, `response`): the
//!    client-address, `Via`, `X-Forwarded-Proto` and SSL headers, with any
//!    of them on;
//! 6. [`crate::cache::module::CacheModule`] (`route`, `response`, `log`):
//!    with `cache = true`;
//! 7. [`crate::rules::module::RulesModule`] (`request`, `response` and
//!    the body phases): when the virtual server lists request or
//!    response rules;
//! 8. [`dsr::Dsr`] (`request`, `response`): with `dsr`;
//! 9. the modules a program embedding shoal adds ([`Modules`]), in the
//!    order added;
//! 10. [`proxy_protocol::ProxyProtocol`] (`node_request`): when a pool
//!     sends the PROXY protocol;
//! 11. [`crate::slm::module::SlmModule`] (`response`, `log`): when the
//!     configuration has service level classes; last, so its timer stops
//!     when the node's response head arrives, before any other module runs.
//!
//! So a response reaches the service level timer, then the rules, then the cache (which stores it
//! as the rules left it), and only then gets the per-client fields of
//! forwarding and persistence, which are never stored; on the request
//! side, the rules have rewritten the request and set its cache key
//! before the cache looks it up in the `route` phase.
//!
//! A module is in the stack only when its configuration asks for it, so a
//! plain virtual server runs few hooks.

pub mod access_log;
pub mod dsr;
pub mod error_page;
pub mod forwarding;
pub mod persistence;
pub mod proxy_protocol;

use super::module::{AnyModule, ModuleSite, Modules, Stack};
use crate::config::{ErrorAction, PersistenceType, Protocol};
use crate::log::access::LineBuffer;
use std::cell::RefCell;
use std::rc::Rc;

/// Build virtual server `site.vs`'s stack. `access_line`: its access log's
/// line buffer on this shard, when it has one; `rate`: the generation's
/// rate classes.
pub fn build_stack(
    site: &ModuleSite<'_>,
    access_line: Option<Rc<RefCell<LineBuffer>>>,
    rules: &crate::rules::ShardRules,
    extra: &Modules,
    rate: &crate::shaping::rate::RateClasses,
) -> Stack {
    let vs = site.vs_config();
    let config = site.config;
    let mut modules: Vec<Box<dyn AnyModule>> = Vec::new();
    if vs.protocol != Protocol::Http {
        return Stack { modules };
    }
    if let Some(line) = access_line.filter(|_| vs.http.access_log.is_some()) {
        modules.push(Box::new(access_log::AccessLog { line }));
    }
    if vs.http.error_page.is_some() || vs.http.error_action == ErrorAction::Close {
        modules.push(Box::new(error_page::ErrorPage));
    }
    // Any class for HTTP, not only the pools': a rule may choose one
    // (`connection.setPersistenceClass`) for a pool that has none.
    if let Some(class) = vs.rate_class.and_then(|i| rate.get(i)) {
        modules.push(Box::new(crate::shaping::module::RateModule { class: class.clone() }));
    }
    let persistent = config.persistence.iter().any(|c| c.kind != PersistenceType::SslSessionId);
    if persistent {
        modules.push(Box::new(persistence::Persistence));
    }
    if let Some(f) = forwarding::Forwarding::for_vs(vs) {
        modules.push(Box::new(f));
    }
    if vs.cache {
        modules.push(Box::new(crate::cache::module::CacheModule::new(config.cache.clone(), site.shards)));
    }
    // After the cache, so before it on the response side: the cache
    // stores the compressed variant.
    if let Some(m) = crate::compress::module::CompressModule::for_vs(vs) {
        modules.push(Box::new(m));
    }
    if let Some(m) = rules.module(vs) {
        modules.push(Box::new(m));
    }
    if let Some(m) = dsr::Dsr::for_vs(vs) {
        modules.push(Box::new(m));
    }
    extra.build(site, &mut modules);
    if config.pools.iter().any(|p| p.proxy_protocol.is_some()) {
        modules.push(Box::new(proxy_protocol::ProxyProtocol));
    }
    if !config.service_levels.is_empty() {
        modules.push(Box::new(crate::slm::module::SlmModule));
    }
    Stack { modules }
}
