//! A pool's `[autoscale]` checked into [`Autoscale`]: thresholds that make
//! sense together, node counts, the driver's path resolved against the
//! file that names it.

use super::model::Autoscale;
use super::raw::RawAutoscale;
use super::{ConfigError, SourceFile};
use toml::Spanned;

pub(crate) fn pool_autoscale(f: &SourceFile, pool: &str, a: &Spanned<RawAutoscale>) -> Result<Autoscale, ConfigError> {
    let r = a.get_ref();
    let key = |k: &str| Some(format!("pools.{pool}.autoscale.{k}"));
    let span = |s: std::ops::Range<usize>| if s.is_empty() { a.span() } else { s };
    let pct = |v: &Spanned<u8>, k: &str| {
        let x = *v.get_ref();
        if x <= 100 {
            Ok(x)
        } else {
            Err(f.error_at(span(v.span()), key(k), format!("a percentage, 0 to 100, found {x}")))
        }
    };
    let (up, down) = (pct(&r.scale_up_below, "scale_up_below")?, pct(&r.scale_down_above, "scale_down_above")?);
    if up >= down {
        return Err(f.error_at(
            span(r.scale_down_above.span()),
            key("scale_down_above"),
            format!("must be above scale_up_below ({up}%), found {down}%: the pool would grow and shrink at once"),
        ));
    }
    let (min, max) = (*r.min_nodes.get_ref(), *r.max_nodes.get_ref());
    if max == 0 || min > max || max > 1000 {
        return Err(f.error_at(
            span(r.max_nodes.span()),
            key("max_nodes"),
            format!("need 1 <= max_nodes <= 1000 and min_nodes <= max_nodes, found min {min}, max {max}"),
        ));
    }
    let rt = r.response_time.get_ref().0;
    if rt.is_zero() {
        return Err(f.error_at(span(r.response_time.span()), key("response_time"), "must be more than 0".into()));
    }
    let prefix = r.name_prefix.get_ref();
    if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        return Err(f.error_at(
            r.name_prefix.span(),
            key("name_prefix"),
            format!("letters, digits, - and _ only, found \"{prefix}\""),
        ));
    }
    Ok(Autoscale {
        enabled: r.enabled,
        driver: super::validate::base_dir(f).join(r.driver.get_ref()),
        credentials: r.credentials.get_ref().clone(),
        response_time: rt,
        scale_up_below: up,
        scale_down_above: down,
        hysteresis: r.hysteresis.get_ref().0,
        refractory: r.refractory.get_ref().0,
        min_nodes: min,
        max_nodes: max,
        imageid: r.imageid.get_ref().clone(),
        sizeid: r.sizeid.clone(),
        name_prefix: prefix.clone(),
        port: *r.port.get_ref(),
        drain_time: r.drain_time.get_ref().0,
    })
}
