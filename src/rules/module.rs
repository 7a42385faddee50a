//! Rules in the HTTP phases: a virtual server's request rules run in the
//! `request` phase and its response rules in the `response` phase, in the
//! order configured.
//!
//! Bodies: a rule that reads or replaces the body (`http.getBody`,
//! `http.getResponseBody`, ...) is suspended at that call until the whole
//! body is in (a `Whole` body filter, up to `rule_body_limit`), then
//! resumed where it stopped; the message's head waits for it, so the rule
//! may still change the head. A rule that never reaches such a call (the
//! seeds' `if( not HTML ) break;`) leaves the body to stream through.
//!
//! What ends a rule early: its end, `break` at the top level, or
//! `rule.break()` (the next rule runs); `pool.use`, an answer
//! (`http.sendResponse`, `http.redirect`, `http.changeSite`) or
//! `request.retry()` (no further rule of the phase runs); `connection.close`
//! (nothing more runs, the connection closes). A run-time error (a bad
//! argument, division by zero, the instruction or memory budget spent)
//! abandons that rule only: it is logged with the rule's name and line,
//! counted (`rule_errors`), and the request goes on with the next rule.
//! A rule that waits (a subrequest) suspends only its own connection; a
//! long one lets the shard serve others every `yield_every` instructions.

use super::builtins::{Env, Pending, Phase, Shared, State, Stop, Stream};
use super::program::Program;
use super::value::Value;
use super::vm::{Budget, Outcome, Vm};
use crate::http::Framing;
use crate::proxy::module::{BodyChunk, BodyFlow, BodyMode, Flow, Module, Step, Verdict};
use crate::proxy::own::{OwnBody, OwnResponse};
use crate::proxy::txn::Txn;
use std::rc::Rc;
use std::time::Duration;

/// One virtual server's rules on one shard.
pub struct RulesModule {
    request: Vec<Rc<Program>>,
    response: Vec<Rc<Program>>,
    budget: Budget,
    /// Largest body the rules read whole.
    body_limit: usize,
    shared: Rc<Shared>,
}

/// A connection's rule state: what `connection.data` keeps, and per
/// request what the rules decided and a rule waiting for the body.
#[derive(Default)]
pub struct RulesCtx {
    state: State,
    suspended: Option<Suspended>,
}

/// A phase's rules stopped at a call that needs the whole body: the rule
/// in progress and the rules after it.
pub struct Suspended {
    next: usize,
    vm: Vm,
}

/// What the rules of a phase work on: an HTTP transaction or a byte
/// stream, the phase's body or data, and the connection's rule state.
pub struct Site<'a> {
    pub tx: Option<&'a mut Txn>,
    pub stream: Option<&'a mut Stream>,
    pub body: Option<&'a mut Vec<u8>>,
    /// No body yet, but one is coming: a rule that needs it is suspended
    /// into `suspend`.
    pub body_coming: bool,
    pub suspend: Option<&'a mut Option<Suspended>>,
    pub state: &'a mut State,
}

impl Site<'_> {
    fn env<'s>(&'s mut self, rule: Rc<str>, phase: Phase, shared: &'s Shared) -> Env<'s> {
        Env {
            rule,
            phase,
            tx: self.tx.as_deref_mut(),
            stream: self.stream.as_deref_mut(),
            body: self.body.as_deref_mut(),
            body_coming: self.body_coming && self.suspend.is_some(),
            state: &mut *self.state,
            shared,
        }
    }
}

/// After the rules of a phase: what the phase's hook answers.
type Finish<T> = fn(&mut Site<'_>) -> T;

impl RulesModule {
    pub fn new(
        request: Vec<Rc<Program>>,
        response: Vec<Rc<Program>>,
        budget: Budget,
        body_limit: usize,
        shared: Rc<Shared>,
    ) -> RulesModule {
        RulesModule { request, response, budget, body_limit, shared }
    }
}

/// Run `rules` (not empty) in `phase` on `site`, from the start or from
/// where they were suspended, then `finish`; ready at once unless a rule
/// waits or runs long.
pub fn run<'a, T: 'a>(
    rules: &'a [Rc<Program>],
    from: Option<Suspended>,
    budget: Budget,
    shared: &'a Shared,
    phase: Phase,
    mut site: Site<'a>,
    finish: Finish<T>,
) -> Step<'a, T> {
    let mut runner = match from {
        Some(s) => Runner { rules, next: s.next, vm: Some(s.vm), budget },
        None => Runner { rules, next: 0, vm: None, budget },
    };
    let mut progress = runner.step(&mut site.env(rules[0].name.clone(), phase, shared));
    if let Progress::Finished = progress {
        return Step::Ready(finish(&mut site));
    }
    if let Progress::Wait(Pending::Body) = progress {
        runner.suspend(&mut site);
        return Step::Ready(finish(&mut site));
    }
    Step::wait(async move {
        loop {
            match progress {
                Progress::Finished => return finish(&mut site),
                Progress::Wait(Pending::Body) => {
                    runner.suspend(&mut site);
                    return finish(&mut site);
                }
                // A zero sleep ends at the timer's next tick: the ring
                // runs meanwhile (a task that woke itself would keep it
                // from running at all).
                Progress::Yield => monoio::time::sleep(Duration::ZERO).await,
                Progress::Wait(Pending::Rate(ticket)) => {
                    ticket.wait().await;
                    let vm = runner.vm.as_mut().expect("a waiting rule has its machine");
                    vm.resume(Value::empty());
                }
                Progress::Wait(Pending::Http(req)) => {
                    let vm = runner.vm.as_mut().expect("a waiting rule has its machine");
                    match super::subrequest::run(*req).await {
                        Ok(answer) => {
                            vm.captures[0] = Value::Int(i64::from(answer.status));
                            vm.captures[1] = Value::empty();
                            vm.resume(Value::from(answer.body));
                        }
                        Err(why) => {
                            vm.captures[0] = Value::Int(0);
                            vm.captures[1] = Value::from(why);
                            vm.resume(Value::empty());
                        }
                    }
                }
            }
            progress = runner.step(&mut site.env(rules[0].name.clone(), phase, shared));
        }
    })
}

enum Progress {
    Finished,
    Wait(Pending),
    Yield,
}

/// The rules of a phase being run, one after the other.
struct Runner<'a> {
    rules: &'a [Rc<Program>],
    next: usize,
    /// The rule in progress (waiting or yielding).
    vm: Option<Vm>,
    budget: Budget,
}

impl Runner<'_> {
    /// The rule in progress waits for the body: keep it, and the rules
    /// after it, in the site's slot.
    fn suspend(&mut self, site: &mut Site<'_>) {
        let vm = self.vm.take().expect("a waiting rule has its machine");
        let slot = site.suspend.as_deref_mut().expect("a body is awaited only where a rule can wait for it");
        *slot = Some(Suspended { next: self.next, vm });
        // Waiting for a response body: a module nearer the client must not
        // take it away (the cache's divert).
        if let Some(tx) = site.tx.as_deref_mut() {
            if tx.source != crate::proxy::module::ResponseSource::None {
                tx.response_body_wanted = true;
            }
        }
    }

    /// Run on: the rule in progress, then the next ones, until all are done,
    /// one stops the phase, or one waits or yields.
    fn step(&mut self, env: &mut Env<'_>) -> Progress {
        loop {
            if self.vm.is_none() {
                let Some(prog) = self.rules.get(self.next) else { return Progress::Finished };
                self.next += 1;
                self.vm = Some(Vm::new(prog.clone(), self.budget));
            }
            let vm = self.vm.as_mut().expect("set above");
            env.rule = vm.program().name.clone();
            match vm.run(env) {
                Outcome::Done | Outcome::Stop(Stop::Rule) => self.vm = None,
                Outcome::Stop(Stop::Phase | Stop::Close) => {
                    self.vm = None;
                    return Progress::Finished;
                }
                Outcome::Wait(p) => return Progress::Wait(p),
                Outcome::Yield => return Progress::Yield,
                Outcome::Failed { line, message } => {
                    self.vm = None;
                    match env.tx.as_deref() {
                        Some(tx) => {
                            log::warn!(
                                "rule {} line {line}: {message} (virtual server {}, client {}); \
                                 the rule is abandoned and the request goes on",
                                env.rule,
                                tx.vs_config().name,
                                tx.client()
                            );
                            tx.view.vs_stats(tx.vs).rule_error();
                            rule_error_event(&env.rule, line, &message);
                        }
                        None => match env.stream.as_deref() {
                            Some(st) => {
                                log::warn!(
                                    "rule {} line {line}: {message} (virtual server {}, client {}); \
                                     the rule is abandoned and the connection goes on",
                                    env.rule,
                                    st.view.config.virtual_servers[st.vs].name,
                                    st.client
                                );
                                st.view.vs_stats(st.vs).rule_error();
                                rule_error_event(&env.rule, line, &message);
                            }
                            None => log::warn!("rule {} line {line}: {message}; the rule is abandoned", env.rule),
                        },
                    }
                }
            }
        }
    }
}

/// How the request goes on after its request rules.
fn request_flow(site: &mut Site<'_>) -> Flow {
    if site.state.close {
        return Flow::Close;
    }
    match site.state.respond.take() {
        Some(own) => Flow::Respond(own),
        None => Flow::Continue,
    }
}

/// After request rules that read the body: the same, as a body filter's
/// answer (a changed body goes on with its new length).
fn request_body_flow(site: &mut Site<'_>) -> BodyFlow {
    match request_flow(site) {
        Flow::Continue => BodyFlow::Continue,
        Flow::Respond(own) => BodyFlow::Respond(own),
        Flow::Close => BodyFlow::Abort("connection.close() in a request rule"),
    }
}

/// What the response rules decided about the node's response.
fn response_verdict(site: &mut Site<'_>) -> Verdict {
    let state = &mut *site.state;
    if state.close {
        let mut own = OwnResponse::new(502);
        own.close_instead = true;
        return Verdict::Respond(Box::new(own));
    }
    if state.retry {
        return Verdict::NodeFailure("a response rule asked for a retry (request.retry)");
    }
    match state.respond.take() {
        Some(own) => Verdict::Respond(own),
        None => Verdict::Accept,
    }
}

/// After response rules that read the body: an answer of theirs replaces
/// the response, head and body (the head has not gone out yet).
fn response_body_flow(site: &mut Site<'_>) -> BodyFlow {
    let state = &mut *site.state;
    if state.close {
        return BodyFlow::Abort("connection.close() in a response rule");
    }
    if state.retry {
        if let Some(tx) = site.tx.as_deref() {
            log::warn!(
                "virtual server {}: request.retry() after the response body was read: the response is kept",
                tx.vs_config().name
            );
        }
    }
    match state.respond.take() {
        Some(own) => BodyFlow::Respond(own),
        None => BodyFlow::Continue,
    }
}

impl Module for RulesModule {
    type Ctx = RulesCtx;

    fn name(&self) -> &'static str {
        "rules"
    }

    fn reset(&self, ctx: &mut RulesCtx) {
        ctx.state.next_request();
        ctx.suspended = None;
    }

    fn request<'a>(&'a self, tx: &'a mut Txn, ctx: &'a mut RulesCtx) -> Step<'a, Flow> {
        if self.request.is_empty() {
            return Step::Ready(Flow::Continue);
        }
        let body_coming = tx.request.framing != Framing::None;
        let site = Site::head(tx, body_coming, ctx);
        run(&self.request, None, self.budget, &self.shared, Phase::Request, site, request_flow)
    }

    fn request_body_mode(&self, _: &Txn, ctx: &mut RulesCtx) -> BodyMode {
        self.body_mode(ctx)
    }

    fn request_body<'a>(
        &'a self,
        tx: &'a mut Txn,
        ctx: &'a mut RulesCtx,
        chunk: &'a mut BodyChunk<'_>,
    ) -> Step<'a, BodyFlow> {
        let Some(from) = ctx.suspended.take() else { return Step::Ready(BodyFlow::Continue) };
        let site = Site::body(tx, chunk, ctx);
        run(&self.request, Some(from), self.budget, &self.shared, Phase::Request, site, request_body_flow)
    }

    fn response<'a>(&'a self, tx: &'a mut Txn, ctx: &'a mut RulesCtx) -> Step<'a, Verdict> {
        if self.response.is_empty() {
            return Step::Ready(Verdict::Accept);
        }
        // The response rules run again for another node's response (after
        // a retry): what they decided about the first one is dropped, with
        // a rule suspended for its body.
        ctx.suspended = None;
        ctx.state.retry = false;
        ctx.state.respond = None;
        let body_coming = tx.response.framing != Framing::None;
        let site = Site::head(tx, body_coming, ctx);
        run(&self.response, None, self.budget, &self.shared, Phase::Response, site, response_verdict)
    }

    fn response_body_mode(&self, _: &Txn, ctx: &mut RulesCtx) -> BodyMode {
        self.body_mode(ctx)
    }

    fn response_body<'a>(
        &'a self,
        tx: &'a mut Txn,
        ctx: &'a mut RulesCtx,
        chunk: &'a mut BodyChunk<'_>,
    ) -> Step<'a, BodyFlow> {
        let Some(from) = ctx.suspended.take() else { return Step::Ready(BodyFlow::Continue) };
        let site = Site::body(tx, chunk, ctx);
        run(&self.response, Some(from), self.budget, &self.shared, Phase::Response, site, response_body_flow)
    }
}

impl RulesModule {
    /// A rule waiting for the body gets it whole.
    fn body_mode(&self, ctx: &RulesCtx) -> BodyMode {
        match ctx.suspended {
            Some(_) => BodyMode::Whole { limit: self.body_limit },
            None => BodyMode::Off,
        }
    }
}

impl<'a> Site<'a> {
    /// A request's or response's head phase: a rule that needs a body
    /// still `body_coming` is suspended into the context.
    fn head(tx: &'a mut Txn, body_coming: bool, ctx: &'a mut RulesCtx) -> Site<'a> {
        Site {
            tx: Some(tx),
            stream: None,
            body: None,
            body_coming,
            suspend: Some(&mut ctx.suspended),
            state: &mut ctx.state,
        }
    }

    /// The whole body is in `chunk`: the suspended rule goes on.
    fn body(tx: &'a mut Txn, chunk: &'a mut BodyChunk<'_>, ctx: &'a mut RulesCtx) -> Site<'a> {
        Site {
            tx: Some(tx),
            stream: None,
            body: chunk.data_mut(),
            body_coming: false,
            suspend: None,
            state: &mut ctx.state,
        }
    }
}

/// The body of shoal's own answer, as bytes (rules make whole bodies).
pub fn own_body_bytes(own: &OwnResponse) -> &[u8] {
    match &own.body {
        OwnBody::Bytes(b) => b,
        _ => &[],
    }
}

/// `rule.error`, at most once a second per rule on this shard.
fn rule_error_event(rule: &str, line: impl std::fmt::Display, message: &impl std::fmt::Display) {
    crate::events::emit_throttled(&crate::events::catalogue::RULE_ERROR, rule, || {
        crate::events::Event::new(
            &crate::events::catalogue::RULE_ERROR,
            format!("rules/{rule}"),
            format!("rule {rule} line {line}: {message}; the rule was abandoned"),
        )
    });
}
