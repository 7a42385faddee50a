//! `[rate_classes.NAME]`, `[bandwidth_classes.NAME]` and
//! `[service_levels.NAME]` checked into their runtime settings, and a
//! virtual server's `rate_class`, `bandwidth_class` and `service_level`
//! resolved to them. Every limit is checked here, with the
//! position of the value at fault.

use super::model::{BandwidthClass, RateClass, ServiceLevel};
use super::raw::{self, RawVirtualServer};
use super::{ConfigError, SourceFile};
use toml::Spanned;

/// The rate classes of every file, in name order within each file.
pub(crate) fn rate_classes(files: &[SourceFile]) -> Result<Vec<RateClass>, ConfigError> {
    let mut out: Vec<RateClass> = Vec::new();
    for f in files {
        for (name, r) in &f.raw.rate_classes {
            defined_once(f, name, "rate class", out.iter().map(|c| &c.name))?;
            let key = |k: &str| Some(format!("rate_classes.{}.{k}", name.get_ref()));
            let within = |v: &Spanned<u32>, k: &str, min: u32, max: u32| {
                let x = *v.get_ref();
                if (min..=max).contains(&x) {
                    Ok(x)
                } else {
                    Err(f.error_at(v.span(), key(k), format!("must be between {min} and {max}, found {x}")))
                }
            };
            let status = *r.status.get_ref();
            if !(400..=599).contains(&status) {
                return Err(f.error_at(
                    r.status.span(),
                    key("status"),
                    format!("must be a 4xx or 5xx status, found {status}"),
                ));
            }
            let max_wait = r.max_wait.get_ref().0;
            if max_wait > std::time::Duration::from_secs(3600) {
                return Err(f.error_at(r.max_wait.span(), key("max_wait"), "must be at most 1h".into()));
            }
            out.push(RateClass {
                name: name.get_ref().clone(),
                max_per_second: within(&r.max_per_second, "max_per_second", 0, 1_000_000)?,
                max_per_minute: within(&r.max_per_minute, "max_per_minute", 0, 60_000_000)?,
                max_queue: within(&r.max_queue, "max_queue", 0, 10_000_000)?,
                max_wait,
                status,
                max_contexts: within(&r.max_contexts, "max_contexts", 1, 10_000_000)? as usize,
            });
        }
    }
    Ok(out)
}

/// The bandwidth classes of every file.
pub(crate) fn bandwidth_classes(files: &[SourceFile]) -> Result<Vec<BandwidthClass>, ConfigError> {
    let mut out: Vec<BandwidthClass> = Vec::new();
    for f in files {
        for (name, b) in &f.raw.bandwidth_classes {
            defined_once(f, name, "bandwidth class", out.iter().map(|c| &c.name))?;
            let bits = crate::shaping::bandwidth::parse_rate(b.max_rate.get_ref()).map_err(|e| {
                f.error_at(b.max_rate.span(), Some(format!("bandwidth_classes.{}.max_rate", name.get_ref())), e)
            })?;
            out.push(BandwidthClass {
                name: name.get_ref().clone(),
                bits_per_second: bits,
                per_connection: b.per_connection,
                per_member: b.per_member,
            });
        }
    }
    Ok(out)
}

/// The service level classes of every file.
pub(crate) fn service_levels(files: &[SourceFile]) -> Result<Vec<ServiceLevel>, ConfigError> {
    let mut out: Vec<ServiceLevel> = Vec::new();
    for f in files {
        for (name, s) in &f.raw.service_levels {
            defined_once(f, name, "service level class", out.iter().map(|c| &c.name))?;
            let key = |k: &str| Some(format!("service_levels.{}.{k}", name.get_ref()));
            let percent = |v: &Spanned<u8>, k: &str| {
                let x = *v.get_ref();
                if x <= 100 {
                    Ok(x)
                } else {
                    Err(f.error_at(v.span(), key(k), format!("a percentage, 0 to 100, found {x}")))
                }
            };
            let (warning, serious) = (percent(&s.warning, "warning")?, percent(&s.serious, "serious")?);
            if serious > warning {
                return Err(f.error_at(
                    s.serious.span(),
                    key("serious"),
                    format!("serious ({serious}%) must not be above warning ({warning}%): a class is serious after it is in warning"),
                ));
            }
            let response_time = s.response_time.get_ref().0;
            if response_time.is_zero() || response_time > std::time::Duration::from_secs(3600) {
                return Err(f.error_at(
                    s.response_time.span(),
                    key("response_time"),
                    "must be more than 0 and at most 1h".into(),
                ));
            }
            out.push(ServiceLevel { name: name.get_ref().clone(), response_time, warning, serious });
        }
    }
    Ok(out)
}

/// A virtual server's classes, as indices.
pub(crate) struct VsClasses {
    pub rate: Option<usize>,
    pub bandwidth: Option<usize>,
    pub service_level: Option<usize>,
}

/// A virtual server's `rate_class`, `bandwidth_class` and `service_level`.
pub(crate) fn vs_classes(
    f: &SourceFile,
    vname: &str,
    v: &RawVirtualServer,
    rate: &[RateClass],
    bandwidth: &[BandwidthClass],
    slm: &[ServiceLevel],
) -> Result<VsClasses, ConfigError> {
    let key = |k: &str| Some(format!("virtual_servers.{vname}.{k}"));
    let class = |n: &Option<Spanned<String>>, k: &str, what: &str, names: Vec<&String>| -> Result<_, ConfigError> {
        let Some(n) = n else { return Ok(None) };
        if v.protocol != raw::Protocol::Http {
            return Err(f.error_at(n.span(), key(k), format!("{k} applies to http virtual servers")));
        }
        super::validate::find_named(f, n, key(k), what, names.into_iter()).map(Some)
    };
    Ok(VsClasses {
        rate: class(&v.rate_class, "rate_class", "rate class", rate.iter().map(|c| &c.name).collect())?,
        bandwidth: class(
            &v.bandwidth_class,
            "bandwidth_class",
            "bandwidth class",
            bandwidth.iter().map(|c| &c.name).collect(),
        )?,
        service_level: class(
            &v.service_level,
            "service_level",
            "service level class",
            slm.iter().map(|c| &c.name).collect(),
        )?,
    })
}

fn defined_once<'a>(
    f: &SourceFile,
    name: &Spanned<String>,
    what: &str,
    mut known: impl Iterator<Item = &'a String>,
) -> Result<(), ConfigError> {
    if known.any(|n| n == name.get_ref()) {
        return Err(f.error_at(name.span(), None, format!("{what} \"{}\" is defined twice", name.get_ref())));
    }
    Ok(())
}
