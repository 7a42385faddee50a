//! `[cache]` checked into [`CacheSettings`], and the virtual servers'
//! `cache = true` checked against their protocol. Limits are checked
//! here, with the position of the value at fault.

use super::model::CacheSettings;
use super::raw::{self, Size};
use super::{ConfigError, SourceFile};
use crate::cache::evict::PolicyKind;
use toml::Spanned;

/// The settings of the one `[cache]` table among `files`, or the defaults.
pub(crate) fn settings(files: &[SourceFile]) -> Result<CacheSettings, ConfigError> {
    let found = super::validate::only_one(files, "cache", |f| f.raw.cache.as_ref())?;
    let Some((f, c)) = found else {
        return Ok(defaults());
    };
    let r = c.get_ref();
    let span = |s: std::ops::Range<usize>| if s.is_empty() { c.span() } else { s };
    let size = |v: &Spanned<Size>, name: &str, min: u64, max: u64| {
        let x = v.get_ref().0;
        if (min..=max).contains(&x) {
            Ok(x)
        } else {
            Err(f.error_at(
                span(v.span()),
                Some(format!("cache.{name}")),
                format!("cache.{name} must be between {min} and {max} bytes, found {x}"),
            ))
        }
    };
    let memory = size(&r.memory, "memory", 0, 1 << 44)?;
    let max_object = size(&r.max_object, "max_object", 1, 1 << 40)?;
    let count = |v: &Spanned<u32>, name: &str, min: u32, max: u32| {
        let x = *v.get_ref();
        if (min..=max).contains(&x) {
            Ok(x as usize)
        } else {
            Err(f.error_at(
                span(v.span()),
                Some(format!("cache.{name}")),
                format!("cache.{name} must be between {min} and {max}, found {x}"),
            ))
        }
    };
    let policy = match r.policy.get_ref().as_str() {
        "s3fifo" => PolicyKind::S3Fifo,
        "lru" => PolicyKind::Lru,
        other => {
            return Err(f.error_at(
                span(r.policy.span()),
                Some("cache.policy".into()),
                format!("expected \"s3fifo\" or \"lru\", found \"{other}\""),
            ))
        }
    };
    let disk_size = size(&r.disk_size, "disk_size", 0, 1 << 50)?;
    let disk = match &r.disk_dir {
        None if disk_size > 0 => {
            return Err(f.error_at(
                span(r.disk_size.span()),
                Some("cache.disk_size".into()),
                "cache.disk_size needs cache.disk_dir (where the files go)".into(),
            ))
        }
        None => None,
        Some(d) if disk_size == 0 => {
            return Err(f.error_at(
                span(d.span()),
                Some("cache.disk_dir".into()),
                "cache.disk_dir needs cache.disk_size (how much the files may take), e.g. \"100GiB\"".into(),
            ))
        }
        Some(d) => Some((std::sync::Arc::new(super::validate::base_dir(f).join(d.get_ref())), disk_size)),
    };
    Ok(CacheSettings {
        disk,
        memory,
        max_object,
        default_lifetime: r.default_lifetime.0,
        max_variants: count(&r.max_variants, "max_variants", 1, 1024)?,
        max_vary_size: count(&r.max_vary_size, "max_vary_size", 64, 65536)?,
        verbose: r.verbose,
        policy,
        fill_wait: r.fill_wait.0.max(std::time::Duration::from_millis(1)),
    })
}

/// `[cache]`'s defaults (raw.rs has them once).
pub fn defaults() -> CacheSettings {
    let d: raw::RawCache = toml::from_str("").expect("every [cache] key has a default");
    CacheSettings {
        memory: d.memory.get_ref().0,
        max_object: d.max_object.get_ref().0,
        default_lifetime: d.default_lifetime.0,
        max_variants: *d.max_variants.get_ref() as usize,
        max_vary_size: *d.max_vary_size.get_ref() as usize,
        verbose: d.verbose,
        policy: PolicyKind::S3Fifo,
        fill_wait: d.fill_wait.0,
        disk: None,
    }
}

/// A virtual server's `cache`: only HTTP virtual servers have one.
pub(crate) fn vs_cache(f: &SourceFile, vname: &str, v: &raw::RawVirtualServer) -> Result<bool, ConfigError> {
    let Some(cache) = &v.cache else { return Ok(false) };
    let on = *cache.get_ref();
    if on && v.protocol != raw::Protocol::Http {
        return Err(f.error_at(
            cache.span(),
            Some(format!("virtual_servers.{vname}.cache")),
            "the content cache applies to http virtual servers".into(),
        ));
    }
    Ok(on)
}
