//! A virtual server's `[compression]` checked into its runtime settings
//! ([`Compression`]): codings, types and levels, each error with the
//! position of the value at fault.

use super::model::Compression;
use super::raw::{self, RawVirtualServer};
use super::{ConfigError, SourceFile};
use crate::compress::encoder::Levels;
use crate::http::coding::Coding;
use toml::Spanned;

/// `virtual_servers.NAME.compression`, if given.
pub(crate) fn vs_compression(
    f: &SourceFile,
    vname: &str,
    v: &RawVirtualServer,
) -> Result<Option<Compression>, ConfigError> {
    let Some(c) = &v.compression else { return Ok(None) };
    let key = |k: &str| Some(format!("virtual_servers.{vname}.compression.{k}"));
    if v.protocol != raw::Protocol::Http {
        return Err(f.error_at(c.span(), key(""), "compression applies to http virtual servers".into()));
    }
    let r = c.get_ref();
    let span = |s: std::ops::Range<usize>| if s.is_empty() { c.span() } else { s };
    let level = |l: &Spanned<u32>, k: &str, min: u32, max: u32| {
        let x = *l.get_ref();
        if (min..=max).contains(&x) {
            Ok(x)
        } else {
            Err(f.error_at(span(l.span()), key(k), format!("must be between {min} and {max}, found {x}")))
        }
    };
    let levels = Levels {
        gzip: level(&r.gzip_level, "gzip_level", 1, 9)?,
        brotli: level(&r.brotli_level, "brotli_level", 0, 11)?,
        zstd: level(&r.zstd_level, "zstd_level", 1, 19)? as i32,
    };
    let mut out = Compression { enabled: r.enabled, levels, min_size: r.min_size.get_ref().0, ..Default::default() };
    if let Some(list) = &r.encodings {
        out.codings.clear();
        for e in list.get_ref() {
            let Some(c) = Coding::from_token(e.get_ref().as_bytes()).filter(|_| e.get_ref() != "x-gzip") else {
                return Err(f.error_at(
                    e.span(),
                    key("encodings"),
                    format!("expected \"gzip\", \"br\" or \"zstd\", found \"{}\"", e.get_ref()),
                ));
            };
            if out.codings.contains(&c) {
                return Err(f.error_at(e.span(), key("encodings"), format!("\"{}\" is listed twice", e.get_ref())));
            }
            out.codings.push(c);
        }
        if out.codings.is_empty() {
            return Err(f.error_at(list.span(), key("encodings"), "lists no coding".into()));
        }
    }
    if let Some(list) = &r.types {
        out.types.clear();
        for t in list.get_ref() {
            let lower = t.get_ref().trim().to_ascii_lowercase();
            let ok = lower.split_once('/').is_some_and(|(a, b)| {
                crate::http::fields::is_token(a.as_bytes()) && (b == "*" || crate::http::fields::is_token(b.as_bytes()))
            });
            if !ok || lower.starts_with("*/") {
                return Err(f.error_at(
                    t.span(),
                    key("types"),
                    format!("expected a media type like \"text/html\" or \"text/*\", found \"{}\"", t.get_ref()),
                ));
            }
            out.types.push(lower);
        }
    }
    Ok(Some(out))
}
