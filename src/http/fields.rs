//! The header fields of one message head, independent of the wire
//! protocol: an ordered list with case-insensitive get, set, add and
//! remove.
//!
//! The head owns its bytes: the HTTP/1 parser copies the head it parsed
//! into [`Fields`] (one `memcpy` of a few hundred bytes), so a request's
//! head outlives the connection's read buffer and needs no second buffer
//! beside it. Fields as received stay where they are, as the exact bytes
//! that came (name, colon, spacing and value), and are written onward
//! unchanged; an edit appends its bytes and marks what it replaces as
//! removed, so the originals remain readable ([`Fields::original`], for
//! the access log). A connection reuses one `Fields` for all its requests:
//! with its capacity kept, neither parsing nor edits allocate in steady
//! state.
//!
//! Edits are checked and bounded: a name must be an RFC 9110 token and a
//! value must hold no CR, LF or NUL (so no edit can split a head or smuggle
//! a field), and a module that adds without end gets
//! [`EditError::TooLarge`] ([`MAX_EDIT_BYTES`], [`MAX_FIELDS`]) instead of
//! growing the head.

use std::ops::Range;

/// Most bytes edits may add to a head (beyond what was received).
pub const MAX_EDIT_BYTES: usize = 64 * 1024;
/// Most field entries a head may hold, received and added, removed ones
/// included.
pub const MAX_FIELDS: usize = 512;

/// Why an edit of a head was refused (the head is unchanged).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EditError {
    /// It would take the head past [`MAX_EDIT_BYTES`] or [`MAX_FIELDS`].
    TooLarge,
    /// A field name that is not a token, or an empty one.
    InvalidName,
    /// A value (or method, or target) with bytes it may not hold.
    InvalidValue,
}

impl std::fmt::Display for EditError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EditError::TooLarge => write!(f, "header edits exceed {MAX_EDIT_BYTES} bytes or {MAX_FIELDS} fields"),
            EditError::InvalidName => f.write_str("invalid header name"),
            EditError::InvalidValue => f.write_str("header value holds CR, LF or NUL"),
        }
    }
}

impl std::error::Error for EditError {}

/// RFC 9110 §5.6.2 `tchar`.
pub fn is_token(b: &[u8]) -> bool {
    !b.is_empty() && b.iter().all(|&c| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c))
}

/// A field value may not hold CR, LF or NUL (RFC 9110 §5.5).
pub fn is_value(b: &[u8]) -> bool {
    !b.iter().any(|&c| matches!(c, b'\r' | b'\n' | 0))
}

/// A byte range of a head's buffer, in 32 bits (heads are far smaller).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Span {
    pub start: u32,
    pub end: u32,
}

impl Span {
    pub fn of(r: Range<usize>) -> Span {
        Span { start: r.start as u32, end: r.end as u32 }
    }
    pub fn range(self) -> Range<usize> {
        self.start as usize..self.end as usize
    }
    pub fn len(self) -> usize {
        (self.end - self.start) as usize
    }
    pub fn is_empty(self) -> bool {
        self.end == self.start
    }
}

#[derive(Debug, Clone, Copy)]
struct Field {
    name: Span,
    value: Span,
    /// Received as part of the head (written onward as its original line).
    received: bool,
    /// Removed or replaced by an edit.
    removed: bool,
}

/// An ordered header list over the head's own bytes. See the module docs.
#[derive(Debug, Clone, Default)]
pub struct Fields {
    bytes: Vec<u8>,
    list: Vec<Field>,
    /// Bytes that came with the head; edits append after them.
    received_len: usize,
}

impl Fields {
    /// Forget every field and byte, keeping the capacity.
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.list.clear();
        self.received_len = 0;
    }

    /// Start a head from received bytes (copied); fields are then added
    /// with [`Fields::push_received`] by spans of these bytes.
    pub fn start_received(&mut self, head: &[u8]) {
        self.clear();
        self.bytes.extend_from_slice(head);
        self.received_len = head.len();
    }

    /// Record a received field by its spans in the received bytes.
    pub fn push_received(&mut self, name: Range<usize>, value: Range<usize>) {
        self.list.push(Field { name: Span::of(name), value: Span::of(value), received: true, removed: false });
    }

    /// Append `b` to the head's bytes (for a head built by code or by
    /// another protocol's decoder) and return where it went.
    pub fn push_bytes(&mut self, b: &[u8]) -> Result<Span, EditError> {
        if self.bytes.len() + b.len() > self.received_len + MAX_EDIT_BYTES {
            return Err(EditError::TooLarge);
        }
        let start = self.bytes.len();
        self.bytes.extend_from_slice(b);
        Ok(Span::of(start..self.bytes.len()))
    }

    /// Append a copy of the head's own bytes at `span` and return where it
    /// went (to build a new value from parts of the old).
    pub fn push_within(&mut self, span: Span) -> Result<Span, EditError> {
        if self.bytes.len() + span.len() > self.received_len + MAX_EDIT_BYTES {
            return Err(EditError::TooLarge);
        }
        let start = self.bytes.len();
        self.bytes.extend_from_within(span.range());
        Ok(Span::of(start..self.bytes.len()))
    }

    /// The bytes of `span`.
    pub fn slice(&self, span: Span) -> &[u8] {
        &self.bytes[span.range()]
    }

    /// All of the head's bytes (received, then added).
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The current fields, in order: `(name, value)`.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        self.list.iter().filter(|f| !f.removed).map(|f| (self.slice(f.name), self.slice(f.value)))
    }

    /// The current fields as spans of [`Fields::bytes`]: `(name, value)`.
    pub fn spans(&self) -> impl Iterator<Item = (Span, Span)> + '_ {
        self.list.iter().filter(|f| !f.removed).map(|f| (f.name, f.value))
    }

    /// The fields as received, edits ignored (removed ones included).
    pub fn original(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        self.list.iter().filter(|f| f.received).map(|f| (self.slice(f.name), self.slice(f.value)))
    }

    /// The first value of `name` (case-insensitive).
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.iter().find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes())).map(|(_, v)| v)
    }

    /// Every value of `name`, in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.iter().filter(move |(n, _)| n.eq_ignore_ascii_case(name.as_bytes())).map(|(_, v)| v)
    }

    /// The first value of `name` as received, whatever edits did since.
    pub fn get_original(&self, name: &str) -> Option<&[u8]> {
        self.original().find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes())).map(|(_, v)| v)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Number of current fields.
    pub fn len(&self) -> usize {
        self.list.iter().filter(|f| !f.removed).count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Remove every field named `name`; returns how many there were.
    pub fn remove(&mut self, name: &str) -> usize {
        let mut n = 0;
        for i in 0..self.list.len() {
            let f = self.list[i];
            if !f.removed && self.bytes[f.name.range()].eq_ignore_ascii_case(name.as_bytes()) {
                self.list[i].removed = true;
                n += 1;
            }
        }
        n
    }

    /// Add a field after the others.
    pub fn add(&mut self, name: &str, value: &[u8]) -> Result<(), EditError> {
        self.add_with(name, |out| out.extend_from_slice(value))
    }

    /// Add a field whose value `write` appends to the buffer it is given
    /// (no intermediate copy).
    pub fn add_with(&mut self, name: &str, write: impl FnOnce(&mut Vec<u8>)) -> Result<(), EditError> {
        let field = self.new_field(name, |out, _| write(out))?;
        self.list.push(field);
        Ok(())
    }

    /// Set `name` to `value`: the first field of that name is replaced in
    /// its place, any others removed; with none, it is added at the end.
    pub fn set(&mut self, name: &str, value: &[u8]) -> Result<(), EditError> {
        self.set_with(name, |out| out.extend_from_slice(value))
    }

    /// [`Fields::set`] with the value written by `write`.
    pub fn set_with(&mut self, name: &str, write: impl FnOnce(&mut Vec<u8>)) -> Result<(), EditError> {
        let field = self.new_field(name, |out, _| write(out))?;
        let first = self.position(name);
        self.remove(name);
        match first {
            Some(i) => self.list.insert(i + 1, field),
            None => self.list.push(field),
        }
        Ok(())
    }

    /// Set `name` to its current values joined by `", "` (the list form of
    /// a repeated field, RFC 9110 §5.3) followed by what `write` appends
    /// (after a `", "` when there were values), as one field at the end:
    /// `X-Forwarded-For` and the like.
    pub fn append_to_list(&mut self, name: &str, write: impl FnOnce(&mut Vec<u8>)) -> Result<(), EditError> {
        let field = self.new_field(name, |bytes, list| {
            let mut any = false;
            for f in list.iter().filter(|f| !f.removed) {
                if bytes[f.name.range()].eq_ignore_ascii_case(name.as_bytes()) {
                    if any {
                        bytes.extend_from_slice(b", ");
                    }
                    bytes.extend_from_within(f.value.range());
                    any = true;
                }
            }
            if any {
                bytes.extend_from_slice(b", ");
            }
            write(bytes);
        })?;
        self.remove(name);
        self.list.push(field);
        Ok(())
    }

    /// Index of the first current field named `name`.
    fn position(&self, name: &str) -> Option<usize> {
        self.list.iter().position(|f| !f.removed && self.slice(f.name).eq_ignore_ascii_case(name.as_bytes()))
    }

    /// Append a new field's name and value (written by `write`, which also
    /// sees the current fields) to the buffer, checked: the name must be a
    /// token, the value clean, the head within its bounds. On error the
    /// buffer is as it was.
    fn new_field(&mut self, name: &str, write: impl FnOnce(&mut Vec<u8>, &[Field])) -> Result<Field, EditError> {
        if !is_token(name.as_bytes()) {
            return Err(EditError::InvalidName);
        }
        if self.list.len() >= MAX_FIELDS {
            return Err(EditError::TooLarge);
        }
        let start = self.bytes.len();
        self.bytes.extend_from_slice(name.as_bytes());
        let name_end = self.bytes.len();
        write(&mut self.bytes, &self.list);
        let value = name_end..self.bytes.len();
        let err = if self.bytes.len() > self.received_len + MAX_EDIT_BYTES {
            Some(EditError::TooLarge)
        } else if !is_value(&self.bytes[value.clone()]) {
            Some(EditError::InvalidValue)
        } else {
            None
        };
        if let Some(e) = err {
            self.bytes.truncate(start);
            return Err(e);
        }
        Ok(Field { name: Span::of(start..name_end), value: Span::of(value), received: false, removed: false })
    }

    /// Write the current fields as HTTP/1 header lines, skipping those for
    /// which `skip(name)` is true: received fields as their original bytes,
    /// added ones as `Name: value`.
    pub fn write_h1(&self, out: &mut Vec<u8>, mut skip: impl FnMut(&[u8]) -> bool) {
        for f in self.list.iter().filter(|f| !f.removed) {
            let name = &self.bytes[f.name.range()];
            if skip(name) {
                continue;
            }
            if f.received && f.value.end >= f.name.end {
                out.extend_from_slice(&self.bytes[f.name.start as usize..f.value.end as usize]);
            } else {
                out.extend_from_slice(name);
                out.push(b':');
                if !f.value.is_empty() {
                    out.push(b' ');
                    out.extend_from_slice(&self.bytes[f.value.range()]);
                }
            }
            out.extend_from_slice(b"\r\n");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A head as the parser leaves it: received bytes and their fields.
    fn received(text: &str) -> Fields {
        let mut f = Fields::default();
        f.start_received(text.as_bytes());
        let mut at = 0;
        for line in text.split_inclusive("\r\n") {
            if let Some((name, value)) = line.trim_end_matches("\r\n").split_once(':') {
                let v = at + name.len() + 1 + (value.len() - value.trim_start().len());
                f.push_received(at..at + name.len(), v..v + value.trim().len());
            }
            at += line.len();
        }
        f
    }

    fn h1(f: &Fields) -> String {
        let mut out = Vec::new();
        f.write_h1(&mut out, |_| false);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn edits_keep_order_and_received_bytes() {
        let mut f = received("Host:  a\r\nX-A: 1\r\nAccept: */*\r\nx-a: 2\r\n");
        assert_eq!(f.get("X-A"), Some(&b"1"[..]));
        assert_eq!(f.get_all("x-A").collect::<Vec<_>>(), vec![&b"1"[..], b"2"]);
        // set replaces the first in place and drops the rest.
        f.set("x-a", b"3").unwrap();
        assert_eq!(h1(&f), "Host:  a\r\nx-a: 3\r\nAccept: */*\r\n");
        f.add("Via", b"1.1 shoal").unwrap();
        f.append_to_list("X-Forwarded-For", |o| o.extend_from_slice(b"10.0.0.1")).unwrap();
        f.append_to_list("X-Forwarded-For", |o| o.extend_from_slice(b"10.0.0.2")).unwrap();
        assert_eq!(f.remove("accept"), 1);
        assert_eq!(
            h1(&f),
            "Host:  a\r\nx-a: 3\r\nVia: 1.1 shoal\r\nX-Forwarded-For: 10.0.0.1, 10.0.0.2\r\n",
            "received fields go out as their bytes (two spaces after Host:), added ones as Name: value"
        );
        assert_eq!(f.len(), 4);
        // What was received stays readable.
        assert_eq!(f.get_original("X-A"), Some(&b"1"[..]));
        assert_eq!(f.get_original("accept"), Some(&b"*/*"[..]));
        assert_eq!(f.original().count(), 4);
        assert_eq!(f.get_original("via"), None);
    }

    #[test]
    fn edits_are_checked() {
        let mut f = received("Host: a\r\n");
        assert_eq!(f.add("Bad Name", b"x"), Err(EditError::InvalidName));
        assert_eq!(f.add("", b"x"), Err(EditError::InvalidName));
        assert_eq!(f.set("X-Split", b"a\r\nInjected: yes"), Err(EditError::InvalidValue));
        assert_eq!(f.add("X-Nul", b"a\0b"), Err(EditError::InvalidValue));
        assert_eq!(h1(&f), "Host: a\r\n", "refused edits leave the head as it was");
        // Bounded: bytes and fields.
        let big = vec![b'x'; MAX_EDIT_BYTES];
        assert_eq!(f.add("X-Big", &big), Err(EditError::TooLarge));
        let mut n = 0;
        while f.add("X-N", b"1").is_ok() {
            n += 1;
        }
        assert_eq!(n, MAX_FIELDS - 1);
        assert_eq!(h1(&received("Host: a\r\n")).len(), 9);
    }

    #[test]
    fn clear_keeps_capacity() {
        let mut f = received("Host: a\r\nX: 1\r\n");
        f.set("Y", b"2").unwrap();
        let cap = f.bytes.capacity();
        f.clear();
        assert!(f.is_empty() && f.bytes().is_empty());
        assert_eq!(f.bytes.capacity(), cap);
    }
}
