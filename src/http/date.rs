//! The `Date` field of the responses shoal makes itself (RFC 9110 §6.6.1:
//! an origin with a clock must send one): an IMF-fixdate formatted at most
//! once a second per thread and copied out (29 bytes), so an error
//! response or a rule's redirect pays a clock read, not a formatting.
//! Responses relayed from a node keep the node's own `Date`.

use std::cell::Cell;
use std::time::{SystemTime, UNIX_EPOCH};

/// `Sun, 06 Nov 1994 08:49:37 GMT`: always this long.
pub const LEN: usize = 29;

thread_local! {
    /// The second last formatted, and its text.
    static LAST: Cell<(u64, [u8; LEN])> = const { Cell::new((u64::MAX, [0; LEN])) };
}

/// Now, as an IMF-fixdate.
pub fn now() -> [u8; LEN] {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    LAST.with(|last| {
        let (at, text) = last.get();
        if at == secs {
            return text;
        }
        let mut out = [b' '; LEN];
        let s = crate::cache::policy::fmt_http_date(secs);
        let n = s.len().min(LEN);
        out[..n].copy_from_slice(&s.as_bytes()[..n]);
        last.set((secs, out));
        out
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn now_is_an_imf_fixdate_of_this_second() {
        let d = super::now();
        let text = std::str::from_utf8(&d).unwrap();
        assert!(text.ends_with(" GMT") && text.as_bytes()[3] == b',', "{text}");
        let secs = crate::cache::policy::http_date(&d).unwrap();
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        assert!(now.abs_diff(secs) <= 1, "{text}");
        assert_eq!(super::now(), super::now(), "the same second gives the same text");
    }
}
