//! Content codings (RFC 9110 §8.4) and the client's `Accept-Encoding`
//! (§12.5.3): which of the codings shoal can produce a client takes, by
//! its q-values, and one canonical form of the field for the cache's
//! `Vary` (RFC 9111 §4.1 lets a cache normalise a field by its
//! semantics), so that `gzip, br` and `br,gzip` select the same variant.
//!
//! The field is untrusted input: parsing is a single pass over the bytes
//! with no allocation, bounded by the field's length (the head's own
//! bound), and what does not parse is ignored element by element, as a
//! server ignores what it does not understand.

use super::request::RequestHead;

/// A content coding shoal can produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    Gzip,
    Brotli,
    Zstd,
}

impl Coding {
    pub const ALL: [Coding; 3] = [Coding::Gzip, Coding::Brotli, Coding::Zstd];

    /// Its token in `Content-Encoding` and `Accept-Encoding`.
    pub fn token(self) -> &'static str {
        match self {
            Coding::Gzip => "gzip",
            Coding::Brotli => "br",
            Coding::Zstd => "zstd",
        }
    }

    /// The coding a token names (`x-gzip` is gzip, RFC 9110 §8.4.1.3).
    pub fn from_token(t: &[u8]) -> Option<Coding> {
        if t.eq_ignore_ascii_case(b"gzip") || t.eq_ignore_ascii_case(b"x-gzip") {
            Some(Coding::Gzip)
        } else if t.eq_ignore_ascii_case(b"br") {
            Some(Coding::Brotli)
        } else if t.eq_ignore_ascii_case(b"zstd") {
            Some(Coding::Zstd)
        } else {
            None
        }
    }

    /// Its place in [`Coding::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// A q-value in thousandths (0 to 1000).
type Q = u16;

/// Each element of the `Accept-Encoding` values: (coding token, q). An
/// element whose q does not parse is skipped.
fn elements<'a>(values: impl Iterator<Item = &'a [u8]>) -> impl Iterator<Item = (&'a [u8], Q)> {
    values.flat_map(|v| v.split(|&b| b == b',')).filter_map(|e| {
        let mut parts = e.split(|&b| b == b';');
        let coding = super::trim_ows(parts.next()?);
        if coding.is_empty() {
            return None;
        }
        let mut q = 1000;
        for p in parts {
            let p = super::trim_ows(p);
            if p.len() >= 2 && p[..2].eq_ignore_ascii_case(b"q=") {
                q = parse_q(&p[2..])?;
            }
        }
        Some((coding, q))
    })
}

/// RFC 9110 §12.4.2 `qvalue`: `0[.ddd]` or `1[.000]`.
fn parse_q(t: &[u8]) -> Option<Q> {
    let (whole, frac) = match t.iter().position(|&b| b == b'.') {
        Some(i) => (&t[..i], &t[i + 1..]),
        None => (t, &[][..]),
    };
    if frac.len() > 3 || !frac.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut q: Q = 0;
    for i in 0..3 {
        q = q * 10 + frac.get(i).map_or(0, |d| Q::from(d - b'0'));
    }
    match whole {
        b"0" => Some(q),
        b"1" if q == 0 => Some(1000),
        _ => None,
    }
}

/// The `Accept-Encoding` values of the client's request: as they stand
/// after the rules, or, when a rule removed the field (to keep the nodes
/// from compressing, so that shoal does), as the client sent them. A
/// client's ability to decode does not change with what a rule sends on.
pub fn client_values(req: &RequestHead) -> impl Iterator<Item = &[u8]> + '_ {
    let current = req.fields.contains("accept-encoding");
    let now = req.fields.get_all("accept-encoding").filter(move |_| current);
    let received = req
        .fields
        .original()
        .filter(move |(n, _)| !current && n.eq_ignore_ascii_case(b"accept-encoding"))
        .map(|(_, v)| v);
    now.chain(received)
}

/// The coding to send a client whose `Accept-Encoding` is `values`, from
/// `offered` (in the server's order of preference, which breaks ties of
/// q): the acceptable one (q > 0) with the highest q. `None`: identity
/// (no field, or none of `offered` acceptable). A coding not named takes
/// the q of `*` if there is one.
pub fn negotiate<'a>(values: impl Iterator<Item = &'a [u8]>, offered: &[Coding]) -> Option<Coding> {
    let mut star: Option<Q> = None;
    let mut named: [Option<Q>; 3] = [None; 3];
    for (t, q) in elements(values) {
        if t == b"*" {
            star = Some(star.map_or(q, |s| s.max(q)));
        } else if let Some(c) = Coding::from_token(t) {
            let slot = &mut named[c.index()];
            *slot = Some(slot.map_or(q, |s| s.max(q)));
        }
    }
    let mut best: Option<(Coding, Q)> = None;
    for &c in offered {
        let q = named[c.index()].or(star).unwrap_or(0);
        if q > 0 && best.is_none_or(|(_, b)| q > b) {
            best = Some((c, q));
        }
    }
    best.map(|(c, _)| c)
}

/// Most codings shoal does not produce that [`normalize`] keeps: a longer
/// list loses the rest (a client's list is a handful; the bound keeps the
/// work fixed). Those it produces, `*` and `identity` are always kept, so
/// the form negotiates as the field does.
const MAX_ELEMENTS: usize = 16;

/// The canonical form of an `Accept-Encoding` field, into `out`
/// (cleared): its elements' codings in lower case (`x-gzip` as `gzip`),
/// each once with its highest q, sorted by name, `;q=` written only when
/// below 1 and without trailing zeros, joined by `,`. Two fields with the
/// same meaning get the same form; the form of a form is itself.
pub fn normalize<'a>(values: impl Iterator<Item = &'a [u8]>, out: &mut Vec<u8>) {
    out.clear();
    let mut seen: Vec<(Vec<u8>, Q)> = Vec::new();
    let mut others = 0;
    for (t, q) in elements(values) {
        let name = match Coding::from_token(t) {
            Some(c) => c.token().as_bytes().to_vec(),
            None => t.to_ascii_lowercase(),
        };
        let decisive = Coding::from_token(&name).is_some() || name == b"*" || name == b"identity";
        if let Some((_, old)) = seen.iter_mut().find(|(n, _)| *n == name) {
            *old = (*old).max(q);
        } else if decisive || others < MAX_ELEMENTS {
            others += usize::from(!decisive);
            seen.push((name, q));
        }
    }
    seen.sort();
    for (i, (name, q)) in seen.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(name);
        if *q < 1000 {
            let s = format!("{:03}", q);
            out.extend_from_slice(b";q=0.");
            out.extend_from_slice(s.trim_end_matches('0').as_bytes());
            if *q == 0 {
                out.truncate(out.len() - 1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn neg(v: &str, offered: &[Coding]) -> Option<Coding> {
        negotiate(std::iter::once(v.as_bytes()), offered)
    }

    const ALL: [Coding; 3] = [Coding::Zstd, Coding::Brotli, Coding::Gzip];

    #[test]
    fn q_values_decide_and_server_order_breaks_ties() {
        assert_eq!(neg("gzip, deflate, br, zstd", &ALL), Some(Coding::Zstd));
        assert_eq!(neg("gzip, deflate, br, zstd", &[Coding::Gzip, Coding::Brotli]), Some(Coding::Gzip));
        assert_eq!(neg("gzip;q=1.0, br;q=0.5", &ALL), Some(Coding::Gzip));
        assert_eq!(neg("gzip;q=0.2, br;q=0.5", &ALL), Some(Coding::Brotli));
        assert_eq!(neg("br;q=0, gzip", &[Coding::Brotli, Coding::Gzip]), Some(Coding::Gzip));
        assert_eq!(neg("X-GZIP", &ALL), Some(Coding::Gzip));
        assert_eq!(neg("identity", &ALL), None);
        assert_eq!(neg("", &ALL), None);
        assert_eq!(neg("*", &ALL), Some(Coding::Zstd));
        assert_eq!(neg("*;q=0.5, gzip", &ALL), Some(Coding::Gzip));
        assert_eq!(neg("*, zstd;q=0", &ALL), Some(Coding::Brotli));
        assert_eq!(neg("gzip;q=0", &ALL), None);
        assert_eq!(neg("deflate, compress", &ALL), None);
    }

    #[test]
    fn bad_q_values_skip_their_element() {
        assert_eq!(neg("gzip;q=2, br", &ALL), Some(Coding::Brotli));
        assert_eq!(neg("gzip;q=0.1234", &ALL), None);
        assert_eq!(neg("gzip;q=abc", &ALL), None);
        assert_eq!(neg("gzip;q=1.5", &ALL), None);
        assert_eq!(neg("gzip;q=", &ALL), None);
        assert_eq!(neg(";;,,gzip;foo=bar", &ALL), Some(Coding::Gzip));
        assert_eq!(parse_q(b"0.5"), Some(500));
        assert_eq!(parse_q(b"0.05"), Some(50));
        assert_eq!(parse_q(b"1.000"), Some(1000));
        assert_eq!(parse_q(b"0"), Some(0));
    }

    fn norm(v: &str) -> String {
        let mut out = Vec::new();
        normalize(std::iter::once(v.as_bytes()), &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn same_meaning_same_form() {
        assert_eq!(norm("gzip, deflate, br, zstd"), "br,deflate,gzip,zstd");
        assert_eq!(norm("deflate, gzip, br, zstd"), "br,deflate,gzip,zstd");
        assert_eq!(norm("GZIP;q=1.0 ,x-gzip, br;q=0.50"), "br;q=0.5,gzip");
        assert_eq!(norm("gzip;q=0, identity;q=0.001"), "gzip;q=0,identity;q=0.001");
        assert_eq!(norm(""), "");
        for v in ["gzip, deflate, br, zstd", "br;q=0.5,gzip", "gzip;q=0,identity;q=0.001", "*;q=0.25"] {
            let once = norm(v);
            assert_eq!(norm(&once), once, "{v}");
        }
    }

    #[test]
    fn normalize_is_bounded() {
        let long: String = (0..1000).map(|i| format!("c{i},")).collect();
        assert_eq!(norm(&long).split(',').count(), MAX_ELEMENTS);
        let form = norm(&format!("{long}gzip;q=0.5"));
        assert_eq!(form.split(',').count(), MAX_ELEMENTS + 1);
        assert!(form.contains("gzip;q=0.5"), "{form}");
        // Decisive codings sort among the others; the form of the form
        // keeps the same ones (found by the fuzzer).
        let mixed = norm(&format!("{long}zstd, a, b"));
        assert_eq!(norm(&mixed), mixed);
    }
}
