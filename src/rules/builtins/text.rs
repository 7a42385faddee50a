//! `string.*`: byte-string functions. Offsets count bytes from 0;
//! `string.substring` takes an inclusive end, as the source language's
//! does. Regular expressions are compiled once per shard and pattern
//! (a bounded cache) and set the captures `$1`..`$9` when they match.

use super::{Call, Fault};
use crate::rules::value::Value;
use std::net::IpAddr;
use std::rc::Rc;

type R = Result<Value, Fault>;

pub fn len(c: &mut Call<'_, '_>) -> R {
    Ok(Value::Int(c.bytes(0)?.len() as i64))
}

/// Clamp an offset into `0..=len`.
fn clamp(i: i64, len: usize) -> usize {
    i.clamp(0, len as i64) as usize
}

pub fn left(c: &mut Call<'_, '_>) -> R {
    let s = c.bytes(0)?;
    let n = clamp(c.int(1)?, s.len());
    Ok(Value::from(&s[..n]))
}

pub fn right(c: &mut Call<'_, '_>) -> R {
    let s = c.bytes(0)?;
    let n = clamp(c.int(1)?, s.len());
    Ok(Value::from(&s[s.len() - n..]))
}

/// `string.substring(s, start, end)`: bytes `start` to `end`, inclusive.
pub fn substring(c: &mut Call<'_, '_>) -> R {
    let s = c.bytes(0)?;
    let start = clamp(c.int(1)?, s.len());
    let end = c.int(2)?;
    if end < start as i64 {
        return Ok(Value::empty());
    }
    let end = clamp(end.saturating_add(1), s.len());
    Ok(Value::from(&s[start..end.max(start)]))
}

pub fn skip(c: &mut Call<'_, '_>) -> R {
    let s = c.bytes(0)?;
    let n = clamp(c.int(1)?, s.len());
    Ok(Value::from(&s[n..]))
}

pub fn drop(c: &mut Call<'_, '_>) -> R {
    let s = c.bytes(0)?;
    let n = clamp(c.int(1)?, s.len());
    Ok(Value::from(&s[..s.len() - n]))
}

pub fn trim(c: &mut Call<'_, '_>) -> R {
    Ok(Value::from(c.bytes(0)?.trim_ascii()))
}

pub fn lowercase(c: &mut Call<'_, '_>) -> R {
    Ok(Value::from(c.bytes(0)?.to_ascii_lowercase()))
}

pub fn uppercase(c: &mut Call<'_, '_>) -> R {
    Ok(Value::from(c.bytes(0)?.to_ascii_uppercase()))
}

pub fn starts_with(c: &mut Call<'_, '_>) -> R {
    Ok(Value::from(c.bytes_ref(0)?.starts_with(&c.bytes_ref(1)?)))
}

pub fn ends_with(c: &mut Call<'_, '_>) -> R {
    Ok(Value::from(c.bytes_ref(0)?.ends_with(&c.bytes_ref(1)?)))
}

pub fn contains(c: &mut Call<'_, '_>) -> R {
    Ok(Value::from(position(&c.bytes_ref(0)?, &c.bytes_ref(1)?, 0).is_some()))
}

/// Where `needle` first occurs in `hay` at or after `from`.
pub fn position(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if needle.is_empty() {
        return (from <= hay.len()).then_some(from);
    }
    // memchr for the first byte, then a compare: no per-window call.
    let hay = hay.get(from..)?;
    let (first, rest) = (needle[0], &needle[1..]);
    let mut at = 0;
    while at + needle.len() <= hay.len() {
        let i = at + hay[at..=hay.len() - needle.len()].iter().position(|&b| b == first)?;
        if &hay[i + 1..i + needle.len()] == rest {
            return Some(i + from);
        }
        at = i + 1;
    }
    None
}

/// `string.find(s, needle[, start])`: the offset, or -1.
pub fn find(c: &mut Call<'_, '_>) -> R {
    let s = c.bytes(0)?;
    let from = clamp(c.int(2)?, s.len());
    Ok(Value::Int(position(&s, &c.bytes(1)?, from).map_or(-1, |p| p as i64)))
}

pub fn count(c: &mut Call<'_, '_>) -> R {
    let (s, n) = (c.bytes(0)?, c.bytes(1)?);
    if n.is_empty() {
        return Ok(Value::Int(0));
    }
    let (mut at, mut k) = (0, 0);
    while let Some(p) = position(&s, &n, at) {
        k += 1;
        at = p + n.len();
    }
    Ok(Value::Int(k))
}

fn replace_n(s: &[u8], find: &[u8], with: &[u8], all: bool) -> Vec<u8> {
    if find.is_empty() {
        return s.to_vec();
    }
    let mut out = Vec::with_capacity(s.len());
    let mut at = 0;
    while let Some(p) = position(s, find, at) {
        out.extend_from_slice(&s[at..p]);
        out.extend_from_slice(with);
        at = p + find.len();
        if !all {
            break;
        }
    }
    out.extend_from_slice(&s[at..]);
    out
}

/// `string.replace(s, find, with)`: the first occurrence.
pub fn replace(c: &mut Call<'_, '_>) -> R {
    Ok(Value::from(replace_n(&c.bytes(0)?, &c.bytes(1)?, &c.bytes(2)?, false)))
}

pub fn replace_all(c: &mut Call<'_, '_>) -> R {
    Ok(Value::from(replace_n(&c.bytes(0)?, &c.bytes(1)?, &c.bytes(2)?, true)))
}

/// Shell-style match: `*` any run of bytes, `?` one byte, case-sensitive.
pub fn wild(s: &[u8], p: &[u8]) -> bool {
    let (mut si, mut pi) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if pi < p.len() && (p[pi] == b'?' || p[pi] == s[si]) {
            si += 1;
            pi += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, si));
            pi += 1;
        } else if let Some((sp, ss)) = star {
            pi = sp + 1;
            si = ss + 1;
            star = Some((sp, ss + 1));
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == b'*' {
        pi += 1;
    }
    pi == p.len()
}

pub fn wildmatch(c: &mut Call<'_, '_>) -> R {
    Ok(Value::from(wild(&c.bytes(0)?, &c.bytes(1)?)))
}

/// Compiled regular expressions by pattern and flags, per shard.
#[derive(Default)]
pub struct RegexCache {
    entries: Vec<(Vec<u8>, Rc<regex_lite::Regex>)>,
}

/// Most patterns a shard keeps compiled (least recently added go first).
const REGEX_CACHE: usize = 256;
/// Longest pattern accepted.
const MAX_PATTERN: usize = 4096;

impl RegexCache {
    pub fn get(&mut self, pattern: &[u8], flags: &[u8]) -> Result<Rc<regex_lite::Regex>, Fault> {
        let mut key = flags.to_vec();
        key.push(0);
        key.extend_from_slice(pattern);
        if let Some((_, r)) = self.entries.iter().find(|(k, _)| *k == key) {
            return Ok(r.clone());
        }
        if pattern.len() > MAX_PATTERN {
            return Err(Fault::Error(format!("regular expression longer than {MAX_PATTERN} bytes")));
        }
        let text = std::str::from_utf8(pattern).map_err(|_| Fault::Error("regular expression is not UTF-8".into()))?;
        let r = regex_lite::RegexBuilder::new(text)
            .case_insensitive(flags.contains(&b'i'))
            .multi_line(flags.contains(&b'm'))
            .dot_matches_new_line(flags.contains(&b's'))
            .size_limit(1 << 20)
            .build()
            .map_err(|e| Fault::Error(format!("bad regular expression: {e}")))?;
        let r = Rc::new(r);
        if self.entries.len() >= REGEX_CACHE {
            self.entries.remove(0);
        }
        self.entries.push((key, r.clone()));
        Ok(r)
    }
}

/// `string.regexmatch(s, re[, flags])`: true when it matches; the groups
/// go to `$1`..`$9` (those not matched become "").
pub fn regex_match(c: &mut Call<'_, '_>) -> R {
    let (s, re, flags) = (c.bytes(0)?, c.bytes(1)?, c.bytes(2)?);
    let r = c.env.shared.regex.borrow_mut().get(&re, &flags)?;
    let text = String::from_utf8_lossy(&s);
    match r.captures(&text) {
        None => Ok(Value::Int(0)),
        Some(caps) => {
            for i in 0..9 {
                c.captures[i] = caps.get(i + 1).map_or_else(Value::empty, |m| Value::from(m.as_str()));
            }
            Ok(Value::Int(1))
        }
    }
}

/// `string.regexsub(s, re, with[, flags])`: every match replaced; `$1` in
/// `with` is the first group.
pub fn regex_sub(c: &mut Call<'_, '_>) -> R {
    let (s, re, with, flags) = (c.bytes(0)?, c.bytes(1)?, c.bytes(2)?, c.bytes(3)?);
    let r = c.env.shared.regex.borrow_mut().get(&re, &flags)?;
    let text = String::from_utf8_lossy(&s);
    let with = String::from_utf8_lossy(&with);
    Ok(Value::from(r.replace_all(&text, with.as_ref()).into_owned()))
}

/// `string.ipmaskmatch(ip, mask)`: `mask` is an address, `addr/bits`, or
/// `addr/netmask`; IPv4 and IPv6.
pub fn ipmask_match(c: &mut Call<'_, '_>) -> R {
    let ip: Option<IpAddr> = c.text(0)?.trim().parse().ok();
    let mask = c.text(1)?;
    Ok(Value::from(ip.is_some_and(|ip| in_mask(ip, mask.trim()))))
}

pub fn in_mask(ip: IpAddr, mask: &str) -> bool {
    let (net, bits) = match mask.split_once('/') {
        Some((n, b)) => (n, Some(b)),
        None => (mask, None),
    };
    let Ok(net) = net.parse::<IpAddr>() else { return false };
    let ip = match (ip, net) {
        (IpAddr::V6(v6), IpAddr::V4(_)) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => return false,
        },
        _ => ip,
    };
    let width = if net.is_ipv4() { 32 } else { 128 };
    let prefix: u32 = match bits {
        None => width,
        Some(b) => match b.parse::<u32>() {
            Ok(p) if p <= width => p,
            _ => match b.parse::<IpAddr>() {
                // A netmask: count its ones.
                Ok(IpAddr::V4(m)) if width == 32 => u32::from(m).count_ones(),
                _ => return false,
            },
        },
    };
    let (a, b) = match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(b)) => (u128::from(u32::from(a)) << 96, u128::from(u32::from(b)) << 96),
        (IpAddr::V6(a), IpAddr::V6(b)) => (u128::from(a), u128::from(b)),
        _ => return false,
    };
    let keep = if prefix == 0 { 0 } else { u128::MAX << (128 - prefix) };
    a & keep == b & keep
}

/// `string.split(s[, separator])`: an array (separator default " ").
pub fn split(c: &mut Call<'_, '_>) -> R {
    let s = c.bytes(0)?;
    let sep = if c.args.len() > 1 { c.bytes(1)? } else { b" ".to_vec() };
    if s.is_empty() {
        return Ok(Value::Array(Rc::new(Vec::new())));
    }
    let mut out = Vec::new();
    if sep.is_empty() {
        out.extend(s.iter().map(|b| Value::from(std::slice::from_ref(b))));
    } else {
        let mut at = 0;
        while let Some(p) = position(&s, &sep, at) {
            out.push(Value::from(&s[at..p]));
            at = p + sep.len();
        }
        out.push(Value::from(&s[at..]));
    }
    Ok(Value::Array(Rc::new(out)))
}

/// `string.join(array[, separator])`.
pub fn join(c: &mut Call<'_, '_>) -> R {
    let sep = if c.args.len() > 1 { c.bytes(1)? } else { b" ".to_vec() };
    let Value::Array(a) = c.arg(0) else { return Err(Fault::Error("argument 1: not an array".into())) };
    let mut out = Vec::new();
    for (i, v) in a.iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(&sep);
        }
        out.extend_from_slice(&v.to_bytes().map_err(|e| Fault::Error(e.0))?);
    }
    Ok(Value::from(out))
}

pub fn url_encode(c: &mut Call<'_, '_>) -> R {
    let mut out = Vec::new();
    for &b in &c.bytes(0)? {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b);
        } else {
            out.extend_from_slice(format!("%{b:02X}").as_bytes());
        }
    }
    Ok(Value::from(out))
}

/// `%XX` decoded, and `+` as a space (form encoding).
pub fn decode(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < s.len() => {
                let hex = std::str::from_utf8(&s[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(v) => {
                        out.push(v);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    out
}

pub fn url_decode(c: &mut Call<'_, '_>) -> R {
    Ok(Value::from(decode(&c.bytes(0)?)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        assert!(wild(b"/videos/a.flv", b"/videos/*.flv"));
        assert!(!wild(b"/videos/a.mp4", b"/videos/*.flv"));
        assert!(wild(b"abc", b"a?c") && wild(b"", b"*") && !wild(b"x", b""));
        assert!(wild(b"aXbXc", b"a*b*c") && !wild(b"aXbX", b"a*b*c"));
    }

    #[test]
    fn masks() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(in_mask(ip("10.1.2.3"), "10.0.0.0/8"));
        assert!(!in_mask(ip("11.1.2.3"), "10.0.0.0/8"));
        assert!(in_mask(ip("31.44.1.9"), "31.44.1.0/255.255.255.0"));
        assert!(in_mask(ip("192.0.2.1"), "192.0.2.1"));
        assert!(in_mask(ip("::ffff:10.0.0.1"), "10.0.0.0/8"));
        assert!(in_mask(ip("2001:db8::5"), "2001:db8::/32"));
        assert!(!in_mask(ip("10.0.0.1"), "10.0.0.0/33"));
        assert!(in_mask(ip("1.2.3.4"), "0.0.0.0/0"));
    }

    #[test]
    fn decoding() {
        assert_eq!(decode(b"a%20b+c%2"), b"a b c%2");
        assert_eq!(replace_n(b"a.flv.flv", b".flv", b".f4v", false), b"a.f4v.flv");
        assert_eq!(replace_n(b"a.flv.flv", b".flv", b".f4v", true), b"a.f4v.f4v");
    }
}
