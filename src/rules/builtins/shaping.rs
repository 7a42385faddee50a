//! `rate.*`, `slm.*`, `connection.setServiceLevelClass` and the bandwidth
//! class functions: rules take requests through rate classes (waiting
//! their turn), pace responses, and read and choose service level classes
//! (docs/rules.md, docs/shaping.md).

use super::{Call, Fault, Pending, Stop};
use crate::proxy::own::OwnResponse;
use crate::rules::value::Value;
use crate::shaping::rate::{Admit, RateClass};
use std::sync::Arc;
use std::time::Instant;

type R = Result<Value, Fault>;

/// The rate class named by argument 0, and the context of argument 1 (none
/// when not given).
fn rate_args(c: &Call<'_, '_>) -> Result<(Arc<RateClass>, Option<Vec<u8>>), Fault> {
    let name = c.bytes_ref(0)?;
    let view = c.view()?;
    let class =
        view.rate.iter().find(|r| r.cfg.name.as_bytes() == &*name).cloned().ok_or_else(|| {
            Fault::Error(format!("there is no rate class named {:?}", String::from_utf8_lossy(&name)))
        })?;
    let context = if c.args.len() > 1 { Some(c.bytes(1)?) } else { None };
    Ok((class, context))
}

/// `rate.use(class[, context])`: wait for the request's turn in the class
/// (in the context's own queue, with a context). Refused (queue full, or a
/// wait over `max_wait`): an HTTP request is answered with the class's
/// status and no further rule runs; a byte stream's connection closes.
pub fn rate_use(c: &mut Call<'_, '_>) -> R {
    let (class, context) = rate_args(c)?;
    match class.admit(context.as_deref(), Instant::now()) {
        Admit::Now => Ok(Value::empty()),
        Admit::Wait(ticket) => Err(Fault::Wait(Pending::Rate(ticket))),
        Admit::Refused => {
            let rule = c.env.rule.clone();
            log::info!("rule {rule}: rate class {} refused a request (queue full or wait too long)", class.cfg.name);
            if c.env.tx.is_some() {
                c.env.state.respond = Some(Box::new(OwnResponse::plain(class.cfg.status)));
                Err(Fault::Stop(Stop::Phase))
            } else {
                c.env.state.close = true;
                Err(Fault::Stop(Stop::Close))
            }
        }
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

/// The index of the service level class named by argument 0.
fn slm_index(c: &Call<'_, '_>) -> Result<usize, Fault> {
    let name = c.bytes_ref(0)?;
    c.view()?.slm.iter().position(|s| s.cfg.name.as_bytes() == &*name).ok_or_else(|| {
        Fault::Error(format!("there is no service level class named {:?}", String::from_utf8_lossy(&name)))
    })
}

/// `connection.setServiceLevelClass(class)`: time this request with
/// `class` ("" for none), instead of the virtual server's.
pub fn set_service_level(c: &mut Call<'_, '_>) -> R {
    let class = if c.bytes_ref(0)?.is_empty() { None } else { Some(slm_index(c)?) };
    c.tx()?.service_level = class;
    Ok(Value::empty())
}

/// `connection.getServiceLevelClass()`: the class timing this request, or
/// "".
pub fn get_service_level(c: &mut Call<'_, '_>) -> R {
    let tx = c.tx()?;
    let name = tx.service_level.and_then(|i| tx.view.slm.get(i)).map(|s| s.cfg.name.clone());
    Ok(Value::from(name.unwrap_or_default()))
}

/// `slm.conforming(class)`: the percentage of the class's requests in the
/// last 10 seconds that were within its response time (100 with none).
pub fn conforming(c: &mut Call<'_, '_>) -> R {
    let i = slm_index(c)?;
    let (reading, _) = c.view()?.slm[i].read(Instant::now());
    Ok(Value::Int(reading.percent() as i64))
}

/// `slm.state(class)`: "ok", "warning" or "serious".
pub fn state(c: &mut Call<'_, '_>) -> R {
    let i = slm_index(c)?;
    let (_, state) = c.view()?.slm[i].read(Instant::now());
    Ok(Value::from(state.name()))
}

/// `response.setBandwidthClass(class)` / `connection.setBandwidthClass`:
/// send this response at `class`'s pace instead of the virtual server's
/// (`""`: none). In a request or a response rule, before the body goes.
pub fn set_bandwidth(c: &mut Call<'_, '_>) -> R {
    let name = c.bytes(0)?;
    let class = if name.is_empty() {
        None
    } else {
        let i = c.view()?.bandwidth.iter().position(|b| b.cfg.name.as_bytes() == name.as_slice());
        Some(i.ok_or_else(|| {
            Fault::Error(format!("there is no bandwidth class named {:?}", String::from_utf8_lossy(&name)))
        })?)
    };
    c.tx()?.bandwidth_class = class;
    Ok(Value::empty())
}

/// `connection.getBandwidthClass()`: the class pacing this response, or "".
pub fn get_bandwidth(c: &mut Call<'_, '_>) -> R {
    let tx = c.tx()?;
    let name = tx.bandwidth_class.and_then(|i| tx.view.bandwidth.get(i)).map(|b| b.cfg.name.clone());
    Ok(Value::from(name.unwrap_or_default()))
}
