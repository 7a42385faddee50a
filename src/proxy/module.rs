//! The module interface of the HTTP proxy: the phases a module can hook
//! ([`Module`]), what hooks answer ([`Flow`], [`Verdict`], [`BodyMode`]),
//! the per-virtual-server stack of modules built once per configuration
//! generation on each shard ([`Stack`]), and the registry through which a
//! program embedding shoal adds its own modules ([`Modules`]).
//!
//! Modules are shard-local: built on the shard that runs them, no `Send`
//! bound, free to hold `Rc` and `Cell` state. Each request gets a fresh
//! context of the module's own type ([`Module::Ctx`]), kept in storage the
//! connection reuses, so a module without heap state costs no allocation
//! per request. Hooks are plain functions; one that must wait (a rule
//! queueing for a rate class, a cache lookup on another shard) returns
//! [`Step::Wait`] with a future, and only its own connection waits.
//!
//! docs/phases.md has the order, the defaults and a complete example.

use super::own::OwnResponse;
use super::txn::Txn;
use crate::config::Config;
use std::any::Any;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;

/// A hook's answer, now or after waiting.
pub enum Step<'a, T> {
    Ready(T),
    Wait(Pin<Box<dyn Future<Output = T> + 'a>>),
}

impl<'a, T> Step<'a, T> {
    /// Wait for `f` (boxed: only hooks that really wait pay for it).
    pub fn wait(f: impl Future<Output = T> + 'a) -> Self {
        Step::Wait(Box::pin(f))
    }

    pub async fn get(self) -> T {
        match self {
            Step::Ready(t) => t,
            Step::Wait(f) => f.await,
        }
    }
}

impl<T> From<T> for Step<'_, T> {
    fn from(t: T) -> Self {
        Step::Ready(t)
    }
}

/// What to do with a request after a request-side hook.
#[derive(Debug)]
pub enum Flow {
    /// On to the next module and phase.
    Continue,
    /// Answer the client with this response; no node is contacted.
    Respond(Box<OwnResponse>),
    /// Close the client connection without an answer.
    Close,
}

/// A module's judgement of a node's response head.
#[derive(Debug)]
pub enum Verdict {
    /// Forward it (as the modules left it).
    Accept,
    /// The node failed (it counts towards marking the node failed): the
    /// driver tries another node when the request is retryable, else the
    /// response is forwarded as it is.
    NodeFailure(&'static str),
    /// Send this response instead of the node's (the node's body is
    /// discarded and its connection closed).
    Respond(Box<OwnResponse>),
    /// Take the node's body: the driver drains it into the sink at the
    /// node's pace, apart from the client (which neither waits for it nor
    /// slows it), and returns the node connection to its pool at the end;
    /// the client gets this response instead (the cache: the body goes
    /// into a stored object, and every client, this one too, reads it from
    /// there). The other modules' body filters do not see that body: a
    /// module that will read a response body says so in its `response`
    /// hook ([`Txn::response_body_wanted`]), and a module that diverts
    /// leaves such a response alone.
    Divert(Box<dyn BodySink>, Box<OwnResponse>),
}

/// Where a diverted node body goes ([`Verdict::Divert`]). Dropped before
/// [`BodySink::end`], the body was not complete (the node failed, or the
/// sink refused more).
pub trait BodySink {
    /// The next piece of the payload (de-chunked). `Err`: no more is
    /// wanted; the node connection is closed.
    fn data(&mut self, data: &[u8]) -> Result<(), SinkFull>;
    /// Every byte has arrived.
    fn end(&mut self);
}

/// A [`BodySink`] takes no more of the body (it reached its limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SinkFull;

impl std::fmt::Debug for dyn BodySink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BodySink")
    }
}

/// How a module wants to see a message body, asked once the head is
/// final (after the `response` phase for response bodies, after
/// `node_request` for request bodies). Bodies of messages that have none
/// (HEAD, 204, 304, no length) are never shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyMode {
    /// Not at all (the default). With every module off, bodies move
    /// without passing through user space where the sockets allow it.
    Off,
    /// Every chunk of the payload, unchanged: the framing is kept. A tee.
    Observe,
    /// Every chunk, which the module may change: the body is re-framed
    /// (chunked for HTTP/1.1 peers, until close for HTTP/1.0 clients).
    Stream,
    /// The whole payload at once, up to `limit` bytes, which the module may
    /// replace: the message goes out with the new `Content-Length` once the
    /// body is complete. A longer body fails the request (413 for a
    /// request body, 502 for a response body not yet begun).
    Whole { limit: usize },
    /// As `Stream`, and the module's filtering is a [`BodyTransform`] it
    /// can hand over ([`Module::take_transform`]): when a module nearer
    /// the client diverts the response body ([`Verdict::Divert`]), the
    /// driver runs the transform in the drain, before the sink, instead
    /// of refusing the divert (compression before the cache stores).
    Transform,
}

/// A filter's work on a body as an owned value, which can run apart from
/// the request's modules (in a diverted body's drain).
pub trait BodyTransform {
    /// Change `data`, a piece of the payload, in place (`end`: the last,
    /// possibly empty), as a `Stream` filter does.
    fn transform(&mut self, data: &mut Vec<u8>, end: bool) -> BodyFlow;
}

/// A piece of a body as a body filter sees it.
pub struct BodyChunk<'a> {
    data: ChunkData<'a>,
    end: bool,
}

enum ChunkData<'a> {
    /// `Observe` mode: to look at only.
    Shared(&'a [u8]),
    /// `Stream` and `Whole` modes: the module may change it.
    Owned(&'a mut Vec<u8>),
}

impl<'a> BodyChunk<'a> {
    pub(crate) fn shared(data: &'a [u8], end: bool) -> Self {
        BodyChunk { data: ChunkData::Shared(data), end }
    }

    pub(crate) fn owned(data: &'a mut Vec<u8>, end: bool) -> Self {
        BodyChunk { data: ChunkData::Owned(data), end }
    }

    /// The payload bytes of this piece (possibly none, on the last).
    pub fn data(&self) -> &[u8] {
        match &self.data {
            ChunkData::Shared(d) => d,
            ChunkData::Owned(d) => d,
        }
    }

    /// The bytes to change, in `Stream` and `Whole` modes; `None` in
    /// `Observe` mode.
    pub fn data_mut(&mut self) -> Option<&mut Vec<u8>> {
        match &mut self.data {
            ChunkData::Shared(_) => None,
            ChunkData::Owned(d) => Some(d),
        }
    }

    /// Whether this is the body's last piece.
    pub fn is_end(&self) -> bool {
        self.end
    }
}

/// A body filter's answer.
#[derive(Debug)]
pub enum BodyFlow {
    Continue,
    /// Stop: the exchange fails (both connections close once the head has
    /// gone out).
    Abort(&'static str),
    /// `Whole` mode only: shoal answers with this instead — for a request
    /// body, no node is asked; for a response body, it replaces the node's
    /// response (whose head has not gone out). Elsewhere it aborts.
    Respond(Box<OwnResponse>),
}

/// Where the response head in [`Txn::response`] came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseSource {
    /// None yet.
    None,
    /// A node (or explicit address).
    Node,
    /// shoal itself: a module's answer or an error response.
    Own,
}

/// A module: hooks into the phases of every request of the virtual
/// servers it is built for. Every hook has a default that does nothing.
///
/// Request-side phases (`request`, `route`, `node_request`, request
/// bodies) run the stack in order; response-side phases (`response`,
/// response bodies, `error`, `log`) in reverse, so the module nearest the
/// node sees the response first (as Envoy's encoder filters).
pub trait Module: 'static {
    /// The module's state for one request: reset to `Default` before each
    /// request (see [`Module::reset`]).
    type Ctx: Default + 'static;

    /// A short name for logs and the documentation.
    fn name(&self) -> &'static str;

    /// Make `ctx` fresh for the next request. Default: replace it with
    /// `Default`; a context that holds buffers can clear them instead, to
    /// keep their memory.
    fn reset(&self, ctx: &mut Self::Ctx) {
        *ctx = Self::Ctx::default();
    }

    /// The request head is parsed and valid. May edit it, change the pool,
    /// required node or explicit address, or answer ([`Flow::Respond`]).
    fn request<'a>(&'a self, _tx: &'a mut Txn, _ctx: &'a mut Self::Ctx) -> Step<'a, Flow> {
        Step::Ready(Flow::Continue)
    }

    /// After every module's `request` (and a `Whole` request body): settle
    /// the pool and node (session persistence reads its claim here), or
    /// answer from what the request now is (the cache looks up here, after
    /// the rules rewrote it). May wait ([`Step::Wait`]), answer or close.
    fn route<'a>(&'a self, _tx: &'a mut Txn, _ctx: &'a mut Self::Ctx) -> Step<'a, Flow> {
        Step::Ready(Flow::Continue)
    }

    /// Edit the head the node gets (once per request, before the first
    /// node is tried), or set [`Txn::preamble`].
    fn node_request(&self, _tx: &mut Txn, _ctx: &mut Self::Ctx) {}

    /// How to see the request body (asked when it has one).
    fn request_body_mode(&self, _tx: &Txn, _ctx: &mut Self::Ctx) -> BodyMode {
        BodyMode::Off
    }

    /// A piece of the request body. In `Whole` mode, called once with
    /// the whole body, and it may wait ([`Step::Wait`]); in the others,
    /// once per piece and a last time with [`BodyChunk::is_end`] (that
    /// piece may be empty), and it may not (a wait there aborts).
    fn request_body<'a>(
        &'a self,
        _tx: &'a mut Txn,
        _ctx: &'a mut Self::Ctx,
        _chunk: &'a mut BodyChunk<'_>,
    ) -> Step<'a, BodyFlow> {
        Step::Ready(BodyFlow::Continue)
    }

    /// A node's final response head is in [`Txn::response`]: may edit it
    /// (status, any field) and judge it. Runs again for the next node's
    /// response when a verdict (or the driver's 503 rule) makes the
    /// request move on.
    fn response<'a>(&'a self, _tx: &'a mut Txn, _ctx: &'a mut Self::Ctx) -> Step<'a, Verdict> {
        Step::Ready(Verdict::Accept)
    }

    /// How to see the response body (asked when the accepted node
    /// response has one).
    fn response_body_mode(&self, _tx: &Txn, _ctx: &mut Self::Ctx) -> BodyMode {
        BodyMode::Off
    }

    /// A piece of the response body, as for [`Module::request_body`].
    fn response_body<'a>(
        &'a self,
        _tx: &'a mut Txn,
        _ctx: &'a mut Self::Ctx,
        _chunk: &'a mut BodyChunk<'_>,
    ) -> Step<'a, BodyFlow> {
        Step::Ready(BodyFlow::Continue)
    }

    /// A module nearer the client diverts the response body while this
    /// one's mode is [`BodyMode::Transform`]: hand the transform over (the
    /// module's body hooks then see no body). Asked only when every
    /// filter of the body can hand over; `None` refuses the divert.
    fn take_transform(&self, _tx: &mut Txn, _ctx: &mut Self::Ctx) -> Option<Box<dyn BodyTransform>> {
        None
    }

    /// shoal is about to send its own error response `resp` (status in
    /// `resp.head`, reason in `tx.error`): replace or change it, or set
    /// `resp.close_instead`.
    fn error(&self, _tx: &mut Txn, _ctx: &mut Self::Ctx, _resp: &mut OwnResponse) {}

    /// The request is over, whatever happened (answered, failed or
    /// abandoned). For logging and accounting.
    fn log(&self, _tx: &Txn, _ctx: &mut Self::Ctx) {}
}

/// [`Module`] with its context type erased, for the stack. Implemented
/// for every `Module`; each call downcasts the connection's stored
/// context (a type-id compare).
pub trait AnyModule {
    fn name(&self) -> &'static str;
    fn new_ctx(&self) -> Box<dyn Any>;
    fn reset(&self, ctx: &mut dyn Any);
    fn request<'a>(&'a self, tx: &'a mut Txn, ctx: &'a mut dyn Any) -> Step<'a, Flow>;
    fn route<'a>(&'a self, tx: &'a mut Txn, ctx: &'a mut dyn Any) -> Step<'a, Flow>;
    fn node_request(&self, tx: &mut Txn, ctx: &mut dyn Any);
    fn request_body_mode(&self, tx: &Txn, ctx: &mut dyn Any) -> BodyMode;
    fn request_body<'a>(
        &'a self,
        tx: &'a mut Txn,
        ctx: &'a mut dyn Any,
        chunk: &'a mut BodyChunk<'_>,
    ) -> Step<'a, BodyFlow>;
    fn response<'a>(&'a self, tx: &'a mut Txn, ctx: &'a mut dyn Any) -> Step<'a, Verdict>;
    fn response_body_mode(&self, tx: &Txn, ctx: &mut dyn Any) -> BodyMode;
    fn response_body<'a>(
        &'a self,
        tx: &'a mut Txn,
        ctx: &'a mut dyn Any,
        chunk: &'a mut BodyChunk<'_>,
    ) -> Step<'a, BodyFlow>;
    fn take_transform(&self, tx: &mut Txn, ctx: &mut dyn Any) -> Option<Box<dyn BodyTransform>>;
    fn error(&self, tx: &mut Txn, ctx: &mut dyn Any, resp: &mut OwnResponse);
    fn log(&self, tx: &Txn, ctx: &mut dyn Any);
}

fn ctx_of<M: Module>(ctx: &mut dyn Any) -> &mut M::Ctx {
    ctx.downcast_mut().expect("a module's context is created by the module itself")
}

impl<M: Module> AnyModule for M {
    fn name(&self) -> &'static str {
        Module::name(self)
    }
    fn new_ctx(&self) -> Box<dyn Any> {
        Box::new(M::Ctx::default())
    }
    fn reset(&self, ctx: &mut dyn Any) {
        Module::reset(self, ctx_of::<M>(ctx))
    }
    fn request<'a>(&'a self, tx: &'a mut Txn, ctx: &'a mut dyn Any) -> Step<'a, Flow> {
        Module::request(self, tx, ctx_of::<M>(ctx))
    }
    fn route<'a>(&'a self, tx: &'a mut Txn, ctx: &'a mut dyn Any) -> Step<'a, Flow> {
        Module::route(self, tx, ctx_of::<M>(ctx))
    }
    fn node_request(&self, tx: &mut Txn, ctx: &mut dyn Any) {
        Module::node_request(self, tx, ctx_of::<M>(ctx))
    }
    fn request_body_mode(&self, tx: &Txn, ctx: &mut dyn Any) -> BodyMode {
        Module::request_body_mode(self, tx, ctx_of::<M>(ctx))
    }
    fn request_body<'a>(
        &'a self,
        tx: &'a mut Txn,
        ctx: &'a mut dyn Any,
        chunk: &'a mut BodyChunk<'_>,
    ) -> Step<'a, BodyFlow> {
        Module::request_body(self, tx, ctx_of::<M>(ctx), chunk)
    }
    fn response<'a>(&'a self, tx: &'a mut Txn, ctx: &'a mut dyn Any) -> Step<'a, Verdict> {
        Module::response(self, tx, ctx_of::<M>(ctx))
    }
    fn response_body_mode(&self, tx: &Txn, ctx: &mut dyn Any) -> BodyMode {
        Module::response_body_mode(self, tx, ctx_of::<M>(ctx))
    }
    fn response_body<'a>(
        &'a self,
        tx: &'a mut Txn,
        ctx: &'a mut dyn Any,
        chunk: &'a mut BodyChunk<'_>,
    ) -> Step<'a, BodyFlow> {
        Module::response_body(self, tx, ctx_of::<M>(ctx), chunk)
    }
    fn take_transform(&self, tx: &mut Txn, ctx: &mut dyn Any) -> Option<Box<dyn BodyTransform>> {
        Module::take_transform(self, tx, ctx_of::<M>(ctx))
    }
    fn error(&self, tx: &mut Txn, ctx: &mut dyn Any, resp: &mut OwnResponse) {
        Module::error(self, tx, ctx_of::<M>(ctx), resp)
    }
    fn log(&self, tx: &Txn, ctx: &mut dyn Any) {
        Module::log(self, tx, ctx_of::<M>(ctx))
    }
}

/// The ordered modules of one virtual server in one generation, on one
/// shard.
pub struct Stack {
    pub modules: Vec<Box<dyn AnyModule>>,
}

impl Stack {
    /// The modules' names, in order.
    pub fn names(&self) -> Vec<&'static str> {
        self.modules.iter().map(|m| m.name()).collect()
    }
}

/// Where a module is being built: which configuration, virtual server and
/// shard. A factory decides from it whether the virtual server gets the
/// module at all.
pub struct ModuleSite<'a> {
    pub config: &'a Config,
    /// Index into `config.virtual_servers`.
    pub vs: usize,
    pub shard: usize,
    /// How many shards the process runs.
    pub shards: usize,
}

impl ModuleSite<'_> {
    pub fn vs_config(&self) -> &crate::config::VirtualServer {
        &self.config.virtual_servers[self.vs]
    }
}

type Factory = dyn Fn(&ModuleSite<'_>) -> Option<Box<dyn AnyModule>> + Send + Sync;

/// Modules a program embedding shoal adds to the built-in ones: each
/// factory runs on every shard for every HTTP virtual server of every
/// generation, and returns the module for it, or `None` to leave that
/// virtual server without. They take their place in the stack in the
/// order added, between the built-in error and persistence modules
/// (docs/phases.md).
#[derive(Clone, Default)]
pub struct Modules {
    factories: Vec<Arc<Factory>>,
}

impl Modules {
    pub fn new() -> Modules {
        Modules::default()
    }

    /// Add a module factory.
    pub fn with<M: Module>(mut self, factory: impl Fn(&ModuleSite<'_>) -> Option<M> + Send + Sync + 'static) -> Self {
        self.factories
            .push(Arc::new(move |site: &ModuleSite<'_>| factory(site).map(|m| Box::new(m) as Box<dyn AnyModule>)));
        self
    }

    /// Build this registry's modules for `site`, in order.
    pub(crate) fn build(&self, site: &ModuleSite<'_>, out: &mut Vec<Box<dyn AnyModule>>) {
        out.extend(self.factories.iter().filter_map(|f| f(site)));
    }
}

impl std::fmt::Debug for Modules {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Modules({} factories)", self.factories.len())
    }
}

/// A filter's answer for a piece in flight: it can neither answer nor
/// wait there (either aborts the body).
fn in_flight(step: Step<'_, BodyFlow>) -> BodyFlow {
    match step {
        Step::Ready(BodyFlow::Respond(_)) => BodyFlow::Abort("a body filter answered while the body was in flight"),
        Step::Ready(flow) => flow,
        Step::Wait(_) => BodyFlow::Abort("a body filter waited while the body was in flight"),
    }
}

/// One module's context for the request in progress.
type ModuleCtx = Box<dyn Any>;

/// A connection's module contexts for the stack it runs now.
#[derive(Default)]
pub(crate) struct Contexts {
    stack: Option<Rc<Stack>>,
    ctxs: Vec<ModuleCtx>,
}

impl Contexts {
    /// Prepare for a request on `stack`: fresh contexts when the stack
    /// changed (a new generation), else the old ones reset.
    pub fn begin(&mut self, stack: &Rc<Stack>) {
        match &self.stack {
            Some(s) if Rc::ptr_eq(s, stack) => {
                for (m, c) in s.modules.iter().zip(self.ctxs.iter_mut()) {
                    m.reset(c.as_mut());
                }
            }
            _ => {
                self.ctxs = stack.modules.iter().map(|m| m.new_ctx()).collect();
                self.stack = Some(stack.clone());
            }
        }
    }

    fn parts(&mut self) -> (&[Box<dyn AnyModule>], &mut [ModuleCtx]) {
        match &self.stack {
            Some(s) => (&s.modules, &mut self.ctxs),
            None => (&[], &mut []),
        }
    }

    /// The `request` phase, in stack order; the first answer other than
    /// `Continue` ends it.
    pub async fn request(&mut self, tx: &mut Txn) -> Flow {
        let (mods, ctxs) = self.parts();
        for (m, c) in mods.iter().zip(ctxs.iter_mut()) {
            match m.request(tx, c.as_mut()).get().await {
                Flow::Continue => {}
                other => return other,
            }
        }
        Flow::Continue
    }

    pub async fn route(&mut self, tx: &mut Txn) -> Flow {
        let (mods, ctxs) = self.parts();
        for (m, c) in mods.iter().zip(ctxs.iter_mut()) {
            match m.route(tx, c.as_mut()).get().await {
                Flow::Continue => {}
                other => return other,
            }
        }
        Flow::Continue
    }

    pub fn node_request(&mut self, tx: &mut Txn) {
        let (mods, ctxs) = self.parts();
        for (m, c) in mods.iter().zip(ctxs.iter_mut()) {
            m.node_request(tx, c.as_mut());
        }
    }

    /// The `response` phase, in reverse stack order; the first verdict
    /// other than `Accept` ends it.
    pub async fn response(&mut self, tx: &mut Txn) -> Verdict {
        let (mods, ctxs) = self.parts();
        for (m, c) in mods.iter().zip(ctxs.iter_mut()).rev() {
            match m.response(tx, c.as_mut()).get().await {
                Verdict::Accept => {}
                other => return other,
            }
        }
        Verdict::Accept
    }

    pub fn error(&mut self, tx: &mut Txn, resp: &mut OwnResponse) {
        let (mods, ctxs) = self.parts();
        for (m, c) in mods.iter().zip(ctxs.iter_mut()).rev() {
            m.error(tx, c.as_mut(), resp);
        }
    }

    pub fn log(&mut self, tx: &Txn) {
        let (mods, ctxs) = self.parts();
        for (m, c) in mods.iter().zip(ctxs.iter_mut()).rev() {
            m.log(tx, c.as_mut());
        }
    }

    /// The modules that want to see a body, with their modes, in the
    /// order they see it (request: stack order; response: reverse), into
    /// `out` (cleared).
    pub fn body_modes(&mut self, tx: &Txn, response: bool, out: &mut Vec<(usize, BodyMode)>) {
        out.clear();
        let (mods, ctxs) = self.parts();
        for (i, (m, c)) in mods.iter().zip(ctxs.iter_mut()).enumerate() {
            let mode =
                if response { m.response_body_mode(tx, c.as_mut()) } else { m.request_body_mode(tx, c.as_mut()) };
            if mode != BodyMode::Off {
                out.push((i, mode));
            }
        }
        if response {
            out.reverse();
        }
    }

    /// The response body's filters as owned transforms, in the order they
    /// see it, for a module that diverts the body: `None` (nothing taken)
    /// unless every filter can hand its work over.
    /// `filters` is scratch for the body modes (the connection's).
    pub fn take_transforms(
        &mut self,
        tx: &mut Txn,
        filters: &mut Vec<(usize, BodyMode)>,
    ) -> Option<Vec<Box<dyn BodyTransform>>> {
        self.body_modes(tx, true, filters);
        if filters.iter().any(|(_, m)| *m != BodyMode::Transform) {
            return None;
        }
        let (mods, ctxs) = self.parts();
        let mut out = Vec::with_capacity(filters.len());
        for &(i, _) in filters.iter() {
            // Asked only when all can: a module that still says no
            // leaves its transform out (and its body hooks unused).
            if let Some(t) = mods[i].take_transform(tx, ctxs[i].as_mut()) {
                out.push(t);
            } else {
                log::warn!("module {} would not hand over its body transform", mods[i].name());
            }
        }
        Some(out)
    }

    /// Run a body piece through the body filters in `filters` (from
    /// [`Contexts::body_modes`]): each sees it in its mode, in order, and
    /// `Stream`/`Whole` filters may change it. `data` is the piece (owned:
    /// changes show to the filters after). For pieces in flight: a filter
    /// that would wait aborts the body ([`Contexts::filter_whole`] is the
    /// one that may wait).
    pub fn filter_body(
        &mut self,
        filters: &[(usize, BodyMode)],
        response: bool,
        tx: &mut Txn,
        data: &mut Vec<u8>,
        end: bool,
    ) -> BodyFlow {
        let (mods, ctxs) = self.parts();
        for &(i, mode) in filters {
            let mut chunk = match mode {
                BodyMode::Observe => BodyChunk::shared(data, end),
                _ => BodyChunk::owned(data, end),
            };
            let (m, c) = (&mods[i], ctxs[i].as_mut());
            let step = if response { m.response_body(tx, c, &mut chunk) } else { m.request_body(tx, c, &mut chunk) };
            let flow = in_flight(step);
            if !matches!(flow, BodyFlow::Continue) {
                return flow;
            }
        }
        BodyFlow::Continue
    }

    /// The whole body (`Whole` mode: the message waits for it) through the
    /// body filters, which may wait.
    pub async fn filter_whole(
        &mut self,
        filters: &[(usize, BodyMode)],
        response: bool,
        tx: &mut Txn,
        data: &mut Vec<u8>,
    ) -> BodyFlow {
        let (mods, ctxs) = self.parts();
        for &(i, mode) in filters {
            let mut chunk = match mode {
                BodyMode::Observe => BodyChunk::shared(data, true),
                _ => BodyChunk::owned(data, true),
            };
            let (m, c) = (&mods[i], ctxs[i].as_mut());
            let step = if response { m.response_body(tx, c, &mut chunk) } else { m.request_body(tx, c, &mut chunk) };
            let flow = step.get().await;
            if !matches!(flow, BodyFlow::Continue) {
                return flow;
            }
        }
        BodyFlow::Continue
    }

    /// Show a body piece that passes unchanged to the `Observe` filters in
    /// `filters` (all of them are: the caller checked).
    pub fn observe_body(
        &mut self,
        filters: &[(usize, BodyMode)],
        response: bool,
        tx: &mut Txn,
        data: &[u8],
        end: bool,
    ) -> BodyFlow {
        let (mods, ctxs) = self.parts();
        for &(i, _) in filters {
            let mut chunk = BodyChunk::shared(data, end);
            let (m, c) = (&mods[i], ctxs[i].as_mut());
            let step = if response { m.response_body(tx, c, &mut chunk) } else { m.request_body(tx, c, &mut chunk) };
            let flow = in_flight(step);
            if !matches!(flow, BodyFlow::Continue) {
                return flow;
            }
        }
        BodyFlow::Continue
    }
}
