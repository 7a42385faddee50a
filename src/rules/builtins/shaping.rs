//! `rate.*`, `slm.*`, `connection.setServiceLevelClass` and the bandwidth
//! class functions: rules take requests through rate classes (waiting
//! their turn), pace responses, and read and choose service level classes
//! (docs/rules.md, docs/shaping.md).

use super::{Call, Fault, Pending, Stop};
use crate::proxy::own::OwnResponse;
use crate::rules::value::Value;
use crate::shaping::rate::{Admit, RateClass};
use crate::slm::ServiceLevel;
use std::borrow::Cow;
use std::sync::Arc;
use std::time::Instant;

type R = Result<Value, Fault>;

/// The index of the class named by argument 0 among `names` (a generation's
/// rate, bandwidth or service level classes); an error naming `what` when
/// there is none.
fn named<'n>(c: &Call<'_, '_>, what: &str, mut names: impl Iterator<Item = &'n str>) -> Result<usize, Fault> {
    let name = c.bytes_ref(0)?;
    names
        .position(|n| n.as_bytes() == &*name)
        .ok_or_else(|| Fault::Error(format!("there is no {what} named {:?}", String::from_utf8_lossy(&name))))
}

/// As [`named`], with `""` choosing no class.
fn chosen<'n>(c: &Call<'_, '_>, what: &str, names: impl Iterator<Item = &'n str>) -> Result<Option<usize>, Fault> {
    if c.bytes_ref(0)?.is_empty() {
        return Ok(None);
    }
    named(c, what, names).map(Some)
}

/// A rate class and a context, borrowed from a call.
type RateArgs<'c> = (&'c Arc<RateClass>, Option<Cow<'c, [u8]>>);

/// The rate class named by argument 0, and the context of argument 1 (none
/// when not given).
fn rate_args<'c>(c: &'c Call<'_, '_>) -> Result<RateArgs<'c>, Fault> {
    let rate = &c.view()?.rate;
    let i = named(c, "rate class", rate.iter().map(|r| r.cfg.name.as_str()))?;
    let context = if c.args.len() > 1 { Some(c.bytes_ref(1)?) } else { None };
    Ok((&rate[i], context))
}

/// `rate.use(class[, context])`: wait for the request's turn in the class
/// (in the context's own queue, with a context). Refused (queue full, or a
/// wait over `max_wait`): an HTTP request is answered with the class's
/// status and no further rule runs; a byte stream's connection closes.
pub fn rate_use(c: &mut Call<'_, '_>) -> R {
    let (name, status) = {
        let (class, context) = rate_args(c)?;
        match class.admit(context.as_deref(), Instant::now()) {
            Admit::Now => return Ok(Value::empty()),
            Admit::Wait(ticket) => return Err(Fault::Wait(Pending::Rate(ticket))),
            Admit::Refused => (class.cfg.name.clone(), class.cfg.status),
        }
    };
    let rule = c.env.rule.clone();
    log::info!("rule {rule}: rate class {name} refused a request (queue full or wait too long)");
    if c.env.tx.is_some() {
        c.env.state.respond = Some(Box::new(OwnResponse::plain(status)));
        Err(Fault::Stop(Stop::Phase))
    } else {
        c.env.state.close = true;
        Err(Fault::Stop(Stop::Close))
    }
}

/// `rate.use.noQueue(class[, context])`: 1 and the request counts against
/// the class when it may pass now; 0 (and nothing changes) when it would
/// have to wait.
pub fn rate_use_no_queue(c: &mut Call<'_, '_>) -> R {
    let (class, context) = rate_args(c)?;
    Ok(Value::Int(i64::from(class.try_now(context.as_deref(), Instant::now()))))
}

/// `rate.getBacklog(class[, context])`: requests waiting in the queue.
pub fn rate_backlog(c: &mut Call<'_, '_>) -> R {
    let (class, context) = rate_args(c)?;
    Ok(Value::Int(i64::from(class.backlog(context.as_deref()))))
}

/// The service level class named by argument 0.
fn slm_class<'c>(c: &'c Call<'_, '_>) -> Result<&'c ServiceLevel, Fault> {
    let slm = &c.view()?.slm;
    Ok(&slm[named(c, "service level class", slm.iter().map(|s| s.cfg.name.as_str()))?])
}

/// `connection.setServiceLevelClass(class)`: time this request with
/// `class` ("" for none), instead of the virtual server's.
pub fn set_service_level(c: &mut Call<'_, '_>) -> R {
    let class = chosen(c, "service level class", c.view()?.slm.iter().map(|s| s.cfg.name.as_str()))?;
    c.tx()?.service_level = class;
    Ok(Value::empty())
}

/// `connection.getServiceLevelClass()`: the class timing this request, or
/// "".
pub fn get_service_level(c: &mut Call<'_, '_>) -> R {
    let tx = c.tx()?;
    Ok(class_name(tx.service_level.and_then(|i| tx.view.slm.get(i)).map(|s| s.cfg.name.as_str())))
}

/// `slm.conforming(class)`: the percentage of the class's requests in the
/// last 10 seconds that were within its response time (100 with none).
pub fn conforming(c: &mut Call<'_, '_>) -> R {
    let (reading, _) = slm_class(c)?.read(Instant::now());
    Ok(Value::Int(reading.percent() as i64))
}

/// `slm.state(class)`: "ok", "warning" or "serious".
pub fn state(c: &mut Call<'_, '_>) -> R {
    let (_, state) = slm_class(c)?.read(Instant::now());
    Ok(Value::from(state.name()))
}

/// `response.setBandwidthClass(class)` / `connection.setBandwidthClass`:
/// send this response at `class`'s pace instead of the virtual server's
/// (`""`: none). In a request or a response rule, before the body goes.
pub fn set_bandwidth(c: &mut Call<'_, '_>) -> R {
    let class = chosen(c, "bandwidth class", c.view()?.bandwidth.iter().map(|b| b.cfg.name.as_str()))?;
    c.tx()?.bandwidth_class = class;
    Ok(Value::empty())
}

/// `connection.getBandwidthClass()`: the class pacing this response, or "".
pub fn get_bandwidth(c: &mut Call<'_, '_>) -> R {
    let tx = c.tx()?;
    Ok(class_name(tx.bandwidth_class.and_then(|i| tx.view.bandwidth.get(i)).map(|b| b.cfg.name.as_str())))
}

/// A class's name as a rule sees it: "" for none.
fn class_name(name: Option<&str>) -> Value {
    Value::from(name.unwrap_or_default())
}
