//! HTTP Basic authentication for the REST API against salted PBKDF2
//! password hashes: making and checking hashes, parsing `Authorization`
//! headers, and a `Verifier` that remembers recent successes so that each
//! request does not pay for a full key derivation.
//!
//! Base64 and hex are implemented here rather than pulled in as crates:
//! they are a few lines each and this is their only use.

use ring::{digest, pbkdf2, rand::SecureRandom};
use std::collections::VecDeque;
use std::num::NonZeroU32;
use std::sync::Mutex;

const SCHEME: &str = "pbkdf2-sha256";
const ITERATIONS: u32 = 100_000;
const MIN_ITERATIONS: u32 = 1_000;
const MAX_ITERATIONS: u32 = 10_000_000;
const SALT_LEN: usize = 16;
const HASH_LEN: usize = 32;
/// Salts shorter than this make precomputation cheap.
const MIN_SALT_LEN: usize = 8;
const MAX_SALT_LEN: usize = 64;
/// Successful logins remembered by a `Verifier`.
const CACHE_ENTRIES: usize = 16;

/// A stored password hash: `"pbkdf2-sha256$<iterations>$<salt hex>$<hash hex>"`,
/// with a random 16-byte salt and 100 000 iterations.
pub fn hash_password(password: &str) -> String {
    let mut salt = [0u8; SALT_LEN];
    // No input reaches this: it fails only when the operating system cannot
    // provide randomness, and a predictable salt must not be made instead.
    ring::rand::SystemRandom::new().fill(&mut salt).expect("the system's random number generator failed");
    hash_with(password, ITERATIONS, &salt)
}

fn hash_with(password: &str, iterations: u32, salt: &[u8]) -> String {
    let mut hash = [0u8; HASH_LEN];
    let rounds = NonZeroU32::new(iterations).unwrap_or(NonZeroU32::MIN);
    pbkdf2::derive(pbkdf2::PBKDF2_HMAC_SHA256, rounds, salt, password.as_bytes(), &mut hash);
    format!("{SCHEME}${iterations}${}${}", hex_encode(salt), hex_encode(&hash))
}

/// Whether `password` matches `stored`, comparing in constant time; false
/// for a malformed `stored`.
pub fn verify_password(stored: &str, password: &str) -> bool {
    match parse_hash(stored) {
        Ok(hash) => {
            pbkdf2::verify(pbkdf2::PBKDF2_HMAC_SHA256, hash.iterations, &hash.salt, password.as_bytes(), &hash.hash)
                .is_ok()
        }
        Err(_) => false,
    }
}

/// Checks that `stored` is a hash `verify_password` can use, saying
/// precisely what is wrong if not (for configuration errors).
pub fn check_hash_format(stored: &str) -> Result<(), String> {
    parse_hash(stored).map(|_| ())
}

struct ParsedHash {
    iterations: NonZeroU32,
    salt: Vec<u8>,
    hash: Vec<u8>,
}

fn parse_hash(stored: &str) -> Result<ParsedHash, String> {
    const SHAPE: &str = "expected \"pbkdf2-sha256$<iterations>$<salt hex>$<hash hex>\" (`shoal passwd` makes one)";
    let parts: Vec<&str> = stored.split('$').collect();
    let [scheme, iterations, salt, hash] = parts.as_slice() else {
        return Err(format!("a password hash has 4 fields separated by '$', this has {}; {SHAPE}", parts.len()));
    };
    if *scheme != SCHEME {
        return Err(format!("unknown password hash scheme {scheme:?}; {SHAPE}"));
    }
    if iterations.is_empty() || !iterations.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("iterations {iterations:?} is not a whole number"));
    }
    let iterations = iterations
        .parse::<u32>()
        .ok()
        .filter(|n| (MIN_ITERATIONS..=MAX_ITERATIONS).contains(n))
        .and_then(NonZeroU32::new)
        .ok_or_else(|| format!("iterations {iterations} is outside {MIN_ITERATIONS}..={MAX_ITERATIONS}"))?;
    let salt = hex_decode(salt).map_err(|e| format!("salt: {e}"))?;
    if !(MIN_SALT_LEN..=MAX_SALT_LEN).contains(&salt.len()) {
        return Err(format!("salt: {} bytes; expected {MIN_SALT_LEN} to {MAX_SALT_LEN}", salt.len()));
    }
    let hash = hex_decode(hash).map_err(|e| format!("hash: {e}"))?;
    if hash.len() != HASH_LEN {
        return Err(format!("hash: {} bytes; expected {HASH_LEN}", hash.len()));
    }
    Ok(ParsedHash { iterations, salt, hash })
}

/// Parses an `Authorization` header value `Basic <base64(user:pass)>` (the
/// scheme in any case); None if it is anything else. The user name ends at
/// the first ':' (RFC 7617), so the password may contain ':'.
pub fn parse_basic(header: &[u8]) -> Option<(String, String)> {
    let header = crate::http::trim_ows(header);
    let (scheme, rest) = header.split_at(header.iter().position(|&b| b == b' ' || b == b'\t')?);
    if !scheme.eq_ignore_ascii_case(b"basic") {
        return None;
    }
    let decoded = base64_decode(crate::http::trim_ows(rest))?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

/// Checks `Authorization` headers against the configured users, and
/// remembers the last few successful (user, password digest) pairs so that
/// repeat requests skip PBKDF2. Shareable between the API's threads.
pub struct Verifier {
    users: Vec<(String, String)>,
    /// Most recently used last.
    recent: Mutex<VecDeque<(String, [u8; 32])>>,
}

/// Verified against when the user is unknown, so that an unknown user
/// costs what a wrong password does and response times do not reveal which
/// users exist. Its password is unknown (the hash is arbitrary bytes).
const DUMMY_HASH: &str = "pbkdf2-sha256$100000$73686f616c2d64756d6d792d73616c74$\
                          5d0e3a1f8c2b6e4d9a7f1c3b5e8d2a4f6c9b1e3d5a7f9c2b4e6d8a1c3f5b7e9d";

impl Verifier {
    /// `users`: user name → stored hash.
    pub fn new(users: Vec<(String, String)>) -> Self {
        Verifier { users, recent: Mutex::new(VecDeque::new()) }
    }

    /// The user a request's `Authorization` header authenticates, if any.
    pub fn check(&self, header: Option<&[u8]>) -> Option<String> {
        let (user, password) = parse_basic(header?)?;
        let digest = password_digest(&password);
        let stored = self.users.iter().find(|(name, _)| *name == user).map(|(_, hash)| hash.as_str());
        let Some(stored) = stored else {
            verify_password(DUMMY_HASH, &password);
            return None;
        };
        {
            let mut recent = self.recent.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            if let Some(at) = recent.iter().position(|(name, seen)| *name == user && same(seen, &digest)) {
                if let Some(entry) = recent.remove(at) {
                    recent.push_back(entry);
                }
                return Some(user);
            }
        }
        // Not under the lock: a derivation takes long, and other users'
        // requests must not queue behind it.
        if !verify_password(stored, &password) {
            return None;
        }
        let mut recent = self.recent.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if !recent.iter().any(|(name, seen)| *name == user && same(seen, &digest)) {
            if recent.len() >= CACHE_ENTRIES {
                recent.pop_front();
            }
            recent.push_back((user.clone(), digest));
        }
        Some(user)
    }
}

fn password_digest(password: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest::digest(&digest::SHA256, password.as_bytes()).as_ref());
    out
}

/// Equality without an early exit.
fn same(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn hex_encode(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

fn hex_decode(text: &str) -> Result<Vec<u8>, String> {
    if let Some(c) = text.chars().find(|c| !c.is_ascii_hexdigit()) {
        return Err(format!("{c:?} is not a hex digit"));
    }
    if !text.len().is_multiple_of(2) {
        return Err(format!("odd number of hex digits ({})", text.len()));
    }
    let nibble = |c: u8| char::from(c).to_digit(16).map_or(0, |d| d as u8);
    Ok(text.as_bytes().chunks_exact(2).map(|pair| nibble(pair[0]) << 4 | nibble(pair[1])).collect())
}

/// Standard (RFC 4648 §4) base64, padded or not. Rejects other alphabets,
/// whitespace, misplaced padding and non-zero leftover bits, so that each
/// value has one spelling.
fn base64_decode(text: &[u8]) -> Option<Vec<u8>> {
    fn sextet(c: u8) -> Option<u32> {
        Some(u32::from(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        }))
    }
    let unpadded = match text {
        [rest @ .., b'=', b'='] => rest,
        [rest @ .., b'='] => rest,
        _ => text,
    };
    // With padding the length is a multiple of 4; a lone leftover character
    // holds only 6 bits, less than a byte.
    if (unpadded.len() != text.len() && !text.len().is_multiple_of(4)) || unpadded.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(unpadded.len() / 4 * 3 + 2);
    for chunk in unpadded.chunks(4) {
        let mut bits = 0u32;
        for &c in chunk {
            bits = bits << 6 | sextet(c)?;
        }
        match chunk.len() {
            4 => out.extend_from_slice(&[(bits >> 16) as u8, (bits >> 8) as u8, bits as u8]),
            3 => {
                if bits & 0b11 != 0 {
                    return None;
                }
                out.extend_from_slice(&[(bits >> 10) as u8, (bits >> 2) as u8]);
            }
            2 => {
                if bits & 0b1111 != 0 {
                    return None;
                }
                out.push((bits >> 4) as u8);
            }
            _ => return None,
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The smallest accepted cost, so tests stay fast in debug builds.
    fn cheap_hash(password: &str) -> String {
        hash_with(password, MIN_ITERATIONS, b"0123456789abcdef")
    }

    fn base64_encode(bytes: &[u8]) -> String {
        const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
            let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
                } else {
                    out.push('=');
                }
            }
        }
        out
    }

    fn basic(user: &str, password: &str) -> Vec<u8> {
        format!("Basic {}", base64_encode(format!("{user}:{password}").as_bytes())).into_bytes()
    }

    #[test]
    fn hashes_verify() {
        let stored = hash_password("s3cret");
        assert!(stored.starts_with("pbkdf2-sha256$100000$"), "{stored}");
        let fields: Vec<&str> = stored.split('$').collect();
        assert_eq!(fields[2].len(), 32);
        assert_eq!(fields[3].len(), 64);
        assert_eq!(check_hash_format(&stored), Ok(()));
        assert!(verify_password(&stored, "s3cret"));
        assert!(!verify_password(&stored, "s3cret "));
        // Salted: the same password hashes differently each time.
        assert_ne!(hash_password("s3cret"), stored);
    }

    #[test]
    fn known_vector() {
        // RFC 7914 §11's PBKDF2-HMAC-SHA256 vector, first 32 bytes, c = 1
        // (under the minimum, so through `derive` directly).
        let mut out = [0u8; 32];
        pbkdf2::derive(pbkdf2::PBKDF2_HMAC_SHA256, NonZeroU32::MIN, b"salt", b"passwd", &mut out);
        assert_eq!(hex_encode(&out), "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc");
        let stored = cheap_hash("pw");
        assert!(verify_password(&stored, "pw"));
        assert!(!verify_password(&stored, "Pw"));
        assert!(!verify_password(&stored, ""));
    }

    #[test]
    fn malformed_hashes_are_refused_precisely() {
        let good = cheap_hash("pw");
        let fields: Vec<&str> = good.split('$').collect();
        let with = |i: usize, v: &str| {
            let mut f = fields.clone();
            f[i] = v;
            f.join("$")
        };
        let cases = [
            (String::new(), "4 fields"),
            ("pbkdf2-sha256$1000$aa".to_owned(), "4 fields"),
            (format!("{good}$x"), "4 fields"),
            (with(0, "bcrypt"), "unknown password hash scheme \"bcrypt\""),
            (with(1, "abc"), "iterations \"abc\" is not a whole number"),
            (with(1, "+1000"), "not a whole number"),
            (with(1, ""), "not a whole number"),
            (with(1, "99999999999"), "iterations 99999999999 is outside"),
            (with(1, "999"), "outside 1000..=10000000"),
            (with(1, "0"), "outside"),
            (with(1, "10000001"), "outside"),
            (with(2, "abc"), "salt: odd number of hex digits (3)"),
            (with(2, "zz00112233445566"), "salt: 'z' is not a hex digit"),
            (with(2, "00112233"), "salt: 4 bytes"),
            (with(2, &"00".repeat(65)), "salt: 65 bytes"),
            (with(3, "00"), "hash: 1 bytes; expected 32"),
            (with(3, &"g0".repeat(32)), "hash: 'g' is not a hex digit"),
            (with(3, "é0"), "hash: 'é' is not a hex digit"),
        ];
        for (stored, expected) in cases {
            let message = check_hash_format(&stored).unwrap_err();
            assert!(message.contains(expected), "{stored}: {message}");
            assert!(!verify_password(&stored, "pw"), "{stored}");
        }
        // The bounds themselves are accepted, and hex in either case.
        assert_eq!(check_hash_format(&with(1, "1000")), Ok(()));
        assert_eq!(check_hash_format(&with(1, "10000000")), Ok(()));
        assert_eq!(check_hash_format(&with(3, &fields[3].to_uppercase())), Ok(()));
        assert!(verify_password(&with(3, &fields[3].to_uppercase()), "pw"));
    }

    #[test]
    fn hex_round_trips() {
        let bytes: Vec<u8> = (0..=255).collect();
        assert_eq!(hex_decode(&hex_encode(&bytes)).unwrap(), bytes);
        assert_eq!(hex_encode(&[0x0f, 0xa0]), "0fa0");
        assert_eq!(hex_decode("").unwrap(), Vec::<u8>::new());
        assert!(hex_decode("0").is_err());
        assert!(hex_decode(" 0").is_err());
    }

    #[test]
    fn base64_decodes_rfc_4648_vectors() {
        for (encoded, plain) in [
            ("", ""),
            ("Zg==", "f"),
            ("Zm8=", "fo"),
            ("Zm9v", "foo"),
            ("Zm9vYg==", "foob"),
            ("Zm9vYmE=", "fooba"),
            ("Zm9vYmFy", "foobar"),
            ("Zg", "f"),
            ("Zm8", "fo"),
            ("Zm9vYg", "foob"),
        ] {
            assert_eq!(base64_decode(encoded.as_bytes()).as_deref(), Some(plain.as_bytes()), "{encoded}");
        }
        assert_eq!(base64_decode(b"+/+/").unwrap(), [0xfb, 0xff, 0xbf]);
        let bytes: Vec<u8> = (0..=255).collect();
        for len in 0..bytes.len() {
            assert_eq!(base64_decode(base64_encode(&bytes[..len]).as_bytes()).as_deref(), Some(&bytes[..len]));
        }
    }

    #[test]
    fn base64_rejects_bad_input() {
        for bad in [
            "Z",
            "Zg=",
            "Zg===",
            "Z===",
            "=",
            "==",
            "Zm9v=",
            "Zg==Zg==",
            "Zm=8",
            "Zm9v YmFy",
            "Zm9v\n",
            "Zm9-",
            "Zm9_",
            "Zh==",
            "Zm9=",
            "Zm9vZ",
            "Zm\u{e9}v",
        ] {
            assert_eq!(base64_decode(bad.as_bytes()), None, "{bad:?}");
        }
    }

    #[test]
    fn parses_basic_headers() {
        assert_eq!(parse_basic(&basic("admin", "pw")), Some(("admin".into(), "pw".into())));
        assert_eq!(parse_basic(b"basic YWRtaW46cHc="), Some(("admin".into(), "pw".into())));
        assert_eq!(parse_basic(b"  BASIC   YWRtaW46cHc=  "), Some(("admin".into(), "pw".into())));
        assert_eq!(parse_basic(b"Basic\tYWRtaW46cHc"), Some(("admin".into(), "pw".into())));
        // The password may hold colons; the user ends at the first.
        assert_eq!(parse_basic(&basic("a", "b:c:")), Some(("a".into(), "b:c:".into())));
        assert_eq!(parse_basic(&basic("", "")), Some((String::new(), String::new())));
        assert_eq!(parse_basic(&basic("ü", "密码")), Some(("ü".into(), "密码".into())));
    }

    #[test]
    fn rejects_other_headers() {
        for bad in [
            &b""[..],
            b"Basic",
            b"Basic ",
            b"BasicYWRtaW46cHc=",
            b"Bearer YWRtaW46cHc=",
            b"Basics YWRtaW46cHc=",
            b"Basic YWRtaW46cHc=!",
            b"Basic YWRtaW46 cHc=",
            b"Basic YWRtaW4=", // no colon
            b"Basic /w==",     // not UTF-8
            b"\xff\xfe",
        ] {
            assert_eq!(parse_basic(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn verifier_checks_and_caches() {
        let verifier = Verifier::new(vec![
            ("admin".into(), cheap_hash("pw")),
            ("ops".into(), cheap_hash("other")),
            ("broken".into(), "nonsense".into()),
        ]);
        assert_eq!(verifier.check(None), None);
        assert_eq!(verifier.check(Some(b"Basic !!")), None);
        assert_eq!(verifier.check(Some(&basic("admin", "pw"))), Some("admin".into()));
        assert_eq!(verifier.recent.lock().unwrap().len(), 1);
        // A cache hit, and a miss for the wrong password.
        assert_eq!(verifier.check(Some(&basic("admin", "pw"))), Some("admin".into()));
        assert_eq!(verifier.check(Some(&basic("admin", "pw2"))), None);
        assert_eq!(verifier.check(Some(&basic("ops", "pw"))), None);
        assert_eq!(verifier.check(Some(&basic("ops", "other"))), Some("ops".into()));
        assert_eq!(verifier.check(Some(&basic("broken", "nonsense"))), None);
        assert_eq!(verifier.recent.lock().unwrap().len(), 2);
    }

    #[test]
    fn verifier_refuses_unknown_users_with_a_real_derivation() {
        assert_eq!(check_hash_format(DUMMY_HASH), Ok(()));
        let verifier = Verifier::new(vec![("admin".into(), cheap_hash("pw"))]);
        assert_eq!(verifier.check(Some(&basic("root", "pw"))), None);
        assert_eq!(verifier.check(Some(&basic("", "pw"))), None);
        assert!(verifier.recent.lock().unwrap().is_empty());
    }

    #[test]
    fn verifier_cache_is_bounded() {
        let users: Vec<(String, String)> = (0..20).map(|i| (format!("u{i}"), cheap_hash("pw"))).collect();
        let verifier = Verifier::new(users);
        for i in 0..20 {
            assert_eq!(verifier.check(Some(&basic(&format!("u{i}"), "pw"))), Some(format!("u{i}")));
        }
        let recent = verifier.recent.lock().unwrap();
        assert_eq!(recent.len(), CACHE_ENTRIES);
        // The oldest went first.
        assert_eq!(recent.front().unwrap().0, "u4");
        assert_eq!(recent.back().unwrap().0, "u19");
    }

    #[test]
    fn verifier_cache_is_per_user() {
        // The same password for two users: a cached success for one is not
        // one for the other.
        let verifier = Verifier::new(vec![("a".into(), cheap_hash("pw")), ("b".into(), cheap_hash("x"))]);
        assert_eq!(verifier.check(Some(&basic("a", "pw"))), Some("a".into()));
        assert_eq!(verifier.check(Some(&basic("b", "pw"))), None);
    }

    #[test]
    fn verifier_is_shareable() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Verifier>();
        let verifier = std::sync::Arc::new(Verifier::new(vec![("admin".into(), cheap_hash("pw"))]));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let verifier = verifier.clone();
                std::thread::spawn(move || verifier.check(Some(&basic("admin", "pw"))))
            })
            .collect();
        for thread in threads {
            assert_eq!(thread.join().unwrap(), Some("admin".into()));
        }
        assert_eq!(verifier.recent.lock().unwrap().len(), 1);
    }
}
