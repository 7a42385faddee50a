//! Values of the rule language and its conversions (docs/rules.md,
//! "Values"): byte strings, 64-bit integers, doubles, arrays and hashes.
//! Arrays and hashes are values: assigning one copies it (lazily, by
//! reference count, copied on the first write), so no value is shared
//! between variables and none needs a garbage collector.
//!
//! Conversions follow the source language: a string used as a number is
//! read by its numeric prefix (`"14str"` is 14, `"abc"` is 0); a double
//! used as an integer is rounded to the nearest; comparisons are numeric
//! when either side is a number (as doubles if either is one), and
//! byte-wise when both are strings; an unset variable reads as the empty
//! string; the empty string, 0 and an empty array or hash are false.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::rc::Rc;

#[derive(Clone, Debug)]
pub enum Value {
    Str(Rc<Vec<u8>>),
    Int(i64),
    Float(f64),
    Array(Rc<Vec<Value>>),
    Hash(Rc<BTreeMap<Vec<u8>, Value>>),
}

/// A value of a kind an operation cannot take (an array as a string, say).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeError(pub String);

thread_local! {
    static EMPTY: Rc<Vec<u8>> = Rc::new(Vec::new());
}

impl Default for Value {
    fn default() -> Self {
        Value::empty()
    }
}

impl From<&[u8]> for Value {
    fn from(b: &[u8]) -> Self {
        if b.is_empty() {
            Value::empty()
        } else {
            Value::Str(Rc::new(b.to_vec()))
        }
    }
}

impl From<Vec<u8>> for Value {
    fn from(b: Vec<u8>) -> Self {
        Value::Str(Rc::new(b))
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::from(s.as_bytes())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::from(s.into_bytes())
    }
}

impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Value::Int(i)
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Int(i64::from(b))
    }
}

impl Value {
    /// The empty string (shared, so making one allocates nothing).
    pub fn empty() -> Value {
        EMPTY.with(|e| Value::Str(e.clone()))
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Value::Str(_) => "string",
            Value::Int(_) => "integer",
            Value::Float(_) => "double",
            Value::Array(_) => "array",
            Value::Hash(_) => "hash",
        }
    }

    pub fn truthy(&self) -> bool {
        match self {
            Value::Str(s) => !s.is_empty(),
            Value::Int(i) => *i != 0,
            Value::Float(f) => *f != 0.0,
            Value::Array(a) => !a.is_empty(),
            Value::Hash(h) => !h.is_empty(),
        }
    }

    /// The value as a byte string (numbers in their shortest decimal form).
    pub fn to_bytes(&self) -> Result<std::borrow::Cow<'_, [u8]>, TypeError> {
        Ok(match self {
            Value::Str(s) => std::borrow::Cow::Borrowed(s.as_slice()),
            Value::Int(i) => std::borrow::Cow::Owned(i.to_string().into_bytes()),
            Value::Float(f) => std::borrow::Cow::Owned(float_text(*f).into_bytes()),
            other => return Err(TypeError(format!("an {} used as a string", other.kind()))),
        })
    }

    /// The value as text (lossy for bytes that are not UTF-8).
    pub fn to_text(&self) -> Result<String, TypeError> {
        Ok(String::from_utf8_lossy(&self.to_bytes()?).into_owned())
    }

    /// The value as a number: an integer, or a double when it is one (or
    /// a string whose numeric prefix has a fraction or exponent).
    pub fn to_number(&self) -> Result<Value, TypeError> {
        match self {
            Value::Int(_) | Value::Float(_) => Ok(self.clone()),
            Value::Str(s) => Ok(parse_number(s)),
            other => Err(TypeError(format!("an {} used as a number", other.kind()))),
        }
    }

    /// The value as an integer (doubles rounded to the nearest).
    pub fn to_int(&self) -> Result<i64, TypeError> {
        Ok(match self.to_number()? {
            Value::Int(i) => i,
            Value::Float(f) => round(f),
            _ => unreachable!("to_number gives numbers"),
        })
    }

    pub fn to_float(&self) -> Result<f64, TypeError> {
        Ok(match self.to_number()? {
            Value::Int(i) => i as f64,
            Value::Float(f) => f,
            _ => unreachable!("to_number gives numbers"),
        })
    }

    /// Compare: numerically if either side is a number (as doubles if
    /// either is a double), else byte-wise. Arrays and hashes compare
    /// equal or not (structurally), and have no order.
    pub fn compare(&self, other: &Value) -> Result<Ordering, TypeError> {
        use Value::*;
        match (self, other) {
            (Array(_) | Hash(_), _) | (_, Array(_) | Hash(_)) => {
                if self.same(other) {
                    Ok(Ordering::Equal)
                } else {
                    Err(TypeError("arrays and hashes have no order".into()))
                }
            }
            (Float(_), _) | (_, Float(_)) => {
                let (a, b) = (self.to_float()?, other.to_float()?);
                Ok(a.partial_cmp(&b).unwrap_or(Ordering::Equal))
            }
            (Int(_), _) | (_, Int(_)) => Ok(self.to_int()?.cmp(&other.to_int()?)),
            (Str(a), Str(b)) => Ok(a.as_slice().cmp(b.as_slice())),
        }
    }

    /// `==` (for arrays and hashes: the same elements).
    pub fn equals(&self, other: &Value) -> Result<bool, TypeError> {
        match (self, other) {
            (Value::Array(_) | Value::Hash(_), _) | (_, Value::Array(_) | Value::Hash(_)) => Ok(self.same(other)),
            _ => Ok(self.compare(other)? == Ordering::Equal),
        }
    }

    /// Structural equality, types included (arrays and hashes).
    fn same(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::Array(a), Value::Array(b)) => {
                a.len() == b.len() && a.iter().zip(b.iter()).all(|(x, y)| x.equals(y).unwrap_or(false))
            }
            (Value::Hash(a), Value::Hash(b)) => {
                a.len() == b.len()
                    && a.iter().zip(b.iter()).all(|((ka, va), (kb, vb))| ka == kb && va.equals(vb).unwrap_or(false))
            }
            (Value::Array(_) | Value::Hash(_), _) | (_, Value::Array(_) | Value::Hash(_)) => false,
            _ => self.equals(other).unwrap_or(false),
        }
    }

    /// An approximate size in bytes, for the memory budget.
    pub fn size(&self) -> usize {
        match self {
            Value::Str(s) => s.len() + 16,
            Value::Int(_) | Value::Float(_) => 16,
            Value::Array(a) => 16 + a.iter().map(Value::size).sum::<usize>(),
            Value::Hash(h) => 16 + h.iter().map(|(k, v)| k.len() + 16 + v.size()).sum::<usize>(),
        }
    }
}

/// Round half away from zero, saturating.
pub fn round(f: f64) -> i64 {
    if f.is_nan() {
        0
    } else {
        f.round() as i64
    }
}

/// A double as text: its shortest form, integral values without `.0`
/// (`75.0` is `"75"`, as the source language prints it).
pub fn float_text(f: f64) -> String {
    if f.is_finite() && f.fract() == 0.0 && f.abs() < 1e17 {
        format!("{}", f as i64)
    } else {
        format!("{f}")
    }
}

/// The number at the start of `s` (after spaces): `"14str"` is 14,
/// `"3.25"` 3.25, `"abc"` 0.
pub fn parse_number(s: &[u8]) -> Value {
    let mut i = 0;
    while i < s.len() && matches!(s[i], b' ' | b'\t' | b'\r' | b'\n') {
        i += 1;
    }
    let start = i;
    if i < s.len() && matches!(s[i], b'+' | b'-') {
        i += 1;
    }
    let digits = i;
    while i < s.len() && s[i].is_ascii_digit() {
        i += 1;
    }
    let mut float = false;
    if i + 1 < s.len() && s[i] == b'.' && s[i + 1].is_ascii_digit() {
        float = true;
        i += 1;
        while i < s.len() && s[i].is_ascii_digit() {
            i += 1;
        }
    }
    if i == digits {
        return Value::Int(0);
    }
    if i < s.len() && matches!(s[i], b'e' | b'E') {
        let mut j = i + 1;
        if j < s.len() && matches!(s[j], b'+' | b'-') {
            j += 1;
        }
        if j < s.len() && s[j].is_ascii_digit() {
            float = true;
            i = j;
            while i < s.len() && s[i].is_ascii_digit() {
                i += 1;
            }
        }
    }
    let text = std::str::from_utf8(&s[start..i]).unwrap_or("0");
    if !float {
        if let Ok(v) = text.parse::<i64>() {
            return Value::Int(v);
        }
    }
    Value::Float(text.parse().unwrap_or(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn casts_follow_the_source_language() {
        assert_eq!(Value::from("14str").to_int(), Ok(14));
        assert_eq!(Value::from("abcde").to_int(), Ok(0));
        assert_eq!(Value::from("3.75").to_int(), Ok(4));
        assert_eq!(Value::from("3.2.7").to_float(), Ok(3.2));
        assert_eq!(Value::Float(3.25).to_int(), Ok(3));
        assert_eq!(Value::Float(2.5625).to_text(), Ok("2.5625".into()));
        assert_eq!(Value::Float(75.0).to_text(), Ok("75".into()));
        assert_eq!(Value::from("10, 2.71828").to_int(), Ok(10));
        assert!(Value::Array(Rc::new(vec![])).to_bytes().is_err());
    }

    #[test]
    fn truth_and_comparison() {
        assert!(!Value::empty().truthy() && !Value::Int(0).truthy() && Value::from("0").truthy());
        let cmp = |a: Value, b: Value| a.compare(&b).unwrap();
        assert_eq!(cmp(Value::from("10"), Value::from("9")), Ordering::Less, "two strings: byte-wise");
        assert_eq!(cmp(Value::Int(10), Value::from("9")), Ordering::Greater, "a number: numeric");
        assert_eq!(cmp(Value::Float(1.5), Value::from("1.5")), Ordering::Equal);
        let a = Value::Array(Rc::new(vec![Value::Int(1), Value::from("x")]));
        assert!(a.equals(&a.clone()).unwrap());
        assert!(a.compare(&Value::Int(1)).is_err());
    }
}
