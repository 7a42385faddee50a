//! `tls.cert_expiring`: the certificates the configuration names (the
//! virtual servers' and the pools' client certificates), each leaf's
//! `notAfter` read from its DER and compared with `[events]
//! cert_warning_days`. Checked when a configuration is applied and once a
//! day after.
//!
//! The reader walks only as far as the validity (a certificate is a
//! SEQUENCE of the TBS SEQUENCE, whose fields before `validity` are an
//! optional `[0]` version, the serial number, the signature algorithm and
//! the issuer); anything it does not expect ends the walk with `None`,
//! bounds-checked at every step.

use crate::config::Config;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// One DER element at the start of `b`: (tag, contents, the rest).
fn element(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = b.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n].iter().fold(0usize, |a, &x| (a << 8) | usize::from(x));
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

/// A certificate's `notAfter`.
pub fn not_after(der: &[u8]) -> Option<SystemTime> {
    let (0x30, cert, _) = element(der)? else { return None };
    let (0x30, tbs, _) = element(cert)? else { return None };
    let mut rest = tbs;
    // [0] EXPLICIT version, when present.
    if rest.first() == Some(&0xa0) {
        rest = element(rest)?.2;
    }
    for want in [0x02, 0x30, 0x30] {
        let (tag, _, r) = element(rest)?;
        if tag != want {
            return None;
        }
        rest = r;
    }
    let (0x30, validity, _) = element(rest)? else { return None };
    let (_, _, after) = element(validity)?;
    let (tag, t, _) = element(after)?;
    time(tag, t)
}

/// UTCTime (`YYMMDDHHMMSSZ`, years 1950–2049) or GeneralizedTime
/// (`YYYYMMDDHHMMSSZ`).
fn time(tag: u8, t: &[u8]) -> Option<SystemTime> {
    let digits = |s: &[u8]| -> Option<u64> {
        s.iter().try_fold(0u64, |a, &c| c.is_ascii_digit().then(|| a * 10 + u64::from(c - b'0')))
    };
    let (year, rest) = match (tag, t.len()) {
        (0x17, 13) => {
            let y = digits(&t[..2])?;
            (if y < 50 { 2000 + y } else { 1900 + y }, &t[2..])
        }
        (0x18, 15) => (digits(&t[..4])?, &t[4..]),
        _ => return None,
    };
    if rest.last() != Some(&b'Z') {
        return None;
    }
    let (mo, d, h, mi, s) =
        (digits(&rest[0..2])?, digits(&rest[2..4])?, digits(&rest[4..6])?, digits(&rest[6..8])?, digits(&rest[8..10])?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 || year < 1970 {
        return None;
    }
    // Days from the civil date (Howard Hinnant's days_from_civil).
    let y = if mo <= 2 { year - 1 } else { year };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(UNIX_EPOCH + Duration::from_secs(days * 86_400 + h * 3600 + mi * 60 + s))
}

/// The certificate files `config` names, with what names them.
fn files(config: &Config) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    for vs in &config.virtual_servers {
        for c in vs.tls.iter().flat_map(|t| t.certificates.iter()) {
            out.push((format!("virtual_servers/{}", vs.name), c.cert.clone()));
        }
    }
    for p in &config.pools {
        if let Some(c) = p.tls.as_ref().and_then(|t| t.client_cert.clone()) {
            out.push((format!("pools/{}", p.name), c));
        }
    }
    out
}

/// Raise `tls.cert_expiring` for each certificate of `config` that
/// expires within its `cert_warning_days` of `now` (or has expired).
pub fn check(config: &Config, now: SystemTime) {
    let window = Duration::from_secs(u64::from(config.events.cert_warning_days) * 86_400);
    for (section, path) in files(config) {
        let Ok(chain) = crate::tls::load_certs(&path) else { continue };
        let Some(until) = chain.first().and_then(|c| not_after(c)) else { continue };
        if until > now + window {
            continue;
        }
        let text = match until.duration_since(now) {
            Ok(left) => format!("{} expires in {} day(s)", path.display(), left.as_secs() / 86_400),
            Err(_) => format!("{} has expired", path.display()),
        };
        super::emit(super::Event::new(&super::catalogue::CERT_EXPIRING, section, text).tag(path.display().to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        let t = |tag, s: &str| time(tag, s.as_bytes()).map(|t| t.duration_since(UNIX_EPOCH).unwrap().as_secs());
        assert_eq!(t(0x17, "700101000000Z"), Some(0));
        assert_eq!(t(0x17, "261130231005Z"), Some(1_796_080_205));
        assert_eq!(t(0x18, "20261130231005Z"), Some(1_796_080_205));
        assert_eq!(t(0x17, "261330231005Z"), None);
        assert_eq!(t(0x17, "2611302310Z"), None);
        assert_eq!(t(0x18, "2026113023100aZ"), None);
    }

    #[test]
    fn truncated_or_odd_der_is_none() {
        assert_eq!(not_after(&[]), None);
        assert_eq!(not_after(&[0x30, 0x82, 0xff]), None);
        assert_eq!(not_after(&[0x30, 0x03, 0x30, 0x01, 0x02]), None);
        assert_eq!(not_after(&[0x31, 0x00]), None);
    }
}
