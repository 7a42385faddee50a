//! Tokens of the rule language (a TrafficScript dialect, docs/rules.md),
//! each with its line and column. Strings are byte strings: a
//! double-quoted string takes the escapes `\\ \" \' \n \r \t \0 \$ \xHH`
//! (an unknown escape keeps its backslash, so `"\d"` stays a regex
//! escape); a single-quoted one takes only `\\` and `\'`. `#` starts a
//! comment to the end of the line. Bounded: a source over [`MAX_SOURCE`]
//! bytes is refused before it is read.

use super::RuleError;

/// The longest rule source accepted (a rule is a program, not data).
pub const MAX_SOURCE: usize = 1 << 20;

#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    /// `$name`, or `$1`..`$9` (the name is the digit).
    Var(String),
    /// An identifier, possibly dotted: `http.getPath`, `if`, `sub`.
    Ident(String),
    Str(Vec<u8>),
    Int(i64),
    Float(f64),
    /// Punctuation and operators, as written.
    Op(&'static str),
    Eof,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    pub tok: Tok,
    pub line: u32,
    pub col: u32,
}

/// Operators, longest first (so `.=` wins over `.`).
const OPS: [&str; 41] = [
    "<<=", ">>=", "==", "!=", "<=", ">=", "&&", "||", "++", "--", "+=", "-=", "*=", "/=", "%=", ".=", "&=", "|=", "^=",
    "=>", "<<", ">>", "+", "-", "*", "/", "%", ".", "=", "<", ">", "!", "&", "|", "^", "~", "?", ":", ";", ",", "(",
];
const BRACKETS: [&str; 5] = [")", "{", "}", "[", "]"];

/// Split `src` into tokens (the last is `Eof`).
pub fn lex(src: &[u8]) -> Result<Vec<Token>, RuleError> {
    if src.len() > MAX_SOURCE {
        return Err(RuleError::at(1, 1, format!("rule source larger than {MAX_SOURCE} bytes")));
    }
    let mut out = Vec::new();
    let (mut i, mut line, mut line_start) = (0usize, 1u32, 0usize);
    while i < src.len() {
        let c = src[i];
        let col = (i - line_start + 1) as u32;
        let err = |msg: String| RuleError::at(line, col, msg);
        match c {
            b'\n' => {
                i += 1;
                line += 1;
                line_start = i;
            }
            b' ' | b'\t' | b'\r' => i += 1,
            b'#' => {
                while i < src.len() && src[i] != b'\n' {
                    i += 1;
                }
            }
            b'$' => {
                let start = i + 1;
                let mut j = start;
                while j < src.len() && (src[j].is_ascii_alphanumeric() || src[j] == b'_') {
                    j += 1;
                }
                if j == start {
                    return Err(err("a variable name after \"$\"".into()));
                }
                let name = String::from_utf8_lossy(&src[start..j]).into_owned();
                if name.as_bytes()[0].is_ascii_digit() && name.len() != 1 {
                    return Err(err(format!("invalid variable name ${name}")));
                }
                out.push(Token { tok: Tok::Var(name), line, col });
                i = j;
            }
            b'"' | b'\'' => {
                let (s, end, lines, last_nl) = string(src, i)
                    .map_err(|(msg, at)| RuleError::at(line, (at - line_start + 1) as u32, msg.to_string()))?;
                out.push(Token { tok: Tok::Str(s), line, col });
                if lines > 0 {
                    line += lines;
                    line_start = last_nl + 1;
                }
                i = end;
            }
            b'0'..=b'9' => {
                let (tok, end) = number(src, i).map_err(|m| err(m.into()))?;
                out.push(Token { tok, line, col });
                i = end;
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let start = i;
                // Dotted names are one token: `http.request.get`. A dot
                // followed by something other than a letter is the
                // concatenation operator.
                loop {
                    while i < src.len() && (src[i].is_ascii_alphanumeric() || src[i] == b'_') {
                        i += 1;
                    }
                    if i + 1 < src.len() && src[i] == b'.' && (src[i + 1].is_ascii_alphabetic() || src[i + 1] == b'_') {
                        i += 1;
                        continue;
                    }
                    break;
                }
                let name = String::from_utf8_lossy(&src[start..i]).into_owned();
                out.push(Token { tok: Tok::Ident(name), line, col });
            }
            _ => {
                let rest = &src[i..];
                let op = OPS.iter().chain(BRACKETS.iter()).find(|op| rest.starts_with(op.as_bytes()));
                match op {
                    Some(op) => {
                        out.push(Token { tok: Tok::Op(op), line, col });
                        i += op.len();
                    }
                    None => return Err(err(format!("unexpected character {:?}", char::from(c)))),
                }
            }
        }
    }
    let col = (i - line_start + 1) as u32;
    out.push(Token { tok: Tok::Eof, line, col });
    Ok(out)
}

/// A lexed string literal: its bytes, the index after it, the newlines
/// inside it and where the last one was.
type Literal = (Vec<u8>, usize, u32, usize);

/// The string literal starting at `src[start]` (its quote), or why not
/// and where.
fn string(src: &[u8], start: usize) -> Result<Literal, (&'static str, usize)> {
    let quote = src[start];
    let mut out = Vec::new();
    let (mut i, mut lines, mut last_nl) = (start + 1, 0u32, 0usize);
    loop {
        let Some(&c) = src.get(i) else { return Err(("unterminated string", start)) };
        match c {
            _ if c == quote => return Ok((out, i + 1, lines, last_nl)),
            b'\\' => {
                let Some(&e) = src.get(i + 1) else { return Err(("unterminated string", start)) };
                let double = quote == b'"';
                match e {
                    b'\\' => out.push(b'\\'),
                    b'\'' if !double => out.push(b'\''),
                    b'"' | b'\'' | b'$' if double => out.push(e),
                    b'n' if double => out.push(b'\n'),
                    b'r' if double => out.push(b'\r'),
                    b't' if double => out.push(b'\t'),
                    b'0' if double => out.push(0),
                    b'x' if double => {
                        let hex = src.get(i + 2..i + 4).and_then(|h| std::str::from_utf8(h).ok());
                        let Some(v) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) else {
                            return Err(("\\x needs two hex digits", i));
                        };
                        out.push(v);
                        i += 2;
                    }
                    // Any other escape keeps its backslash: regular
                    // expressions are written with `\.` and `\d`.
                    _ => {
                        out.push(b'\\');
                        out.push(e);
                    }
                }
                if e == b'\n' {
                    lines += 1;
                    last_nl = i + 1;
                }
                i += 2;
            }
            b'\n' => {
                out.push(c);
                lines += 1;
                last_nl = i;
                i += 1;
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
}

/// A number: decimal integer, `0x` hex, or decimal with a fraction and an
/// optional exponent.
fn number(src: &[u8], start: usize) -> Result<(Tok, usize), &'static str> {
    let mut i = start;
    if src[i] == b'0' && matches!(src.get(i + 1), Some(b'x' | b'X')) {
        i += 2;
        let digits = i;
        while i < src.len() && src[i].is_ascii_hexdigit() {
            i += 1;
        }
        let text = std::str::from_utf8(&src[digits..i]).map_err(|_| "bad number")?;
        let v = i64::from_str_radix(text, 16).map_err(|_| "hex number out of range")?;
        return Ok((Tok::Int(v), i));
    }
    while i < src.len() && src[i].is_ascii_digit() {
        i += 1;
    }
    let mut float = false;
    if i + 1 < src.len() && src[i] == b'.' && src[i + 1].is_ascii_digit() {
        float = true;
        i += 1;
        while i < src.len() && src[i].is_ascii_digit() {
            i += 1;
        }
    }
    if i < src.len() && matches!(src[i], b'e' | b'E') {
        let mut j = i + 1;
        if j < src.len() && matches!(src[j], b'+' | b'-') {
            j += 1;
        }
        if j < src.len() && src[j].is_ascii_digit() {
            float = true;
            i = j;
            while i < src.len() && src[i].is_ascii_digit() {
                i += 1;
            }
        }
    }
    let text = std::str::from_utf8(&src[start..i]).map_err(|_| "bad number")?;
    if float {
        Ok((Tok::Float(text.parse().map_err(|_| "bad number")?), i))
    } else {
        Ok((Tok::Int(text.parse().map_err(|_| "integer out of range")?), i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<Tok> {
        lex(s.as_bytes()).unwrap().into_iter().map(|t| t.tok).collect()
    }

    #[test]
    fn tokens() {
        assert_eq!(
            toks("$x .= http.getPath() . \"a\\n\\$\" # c\n'b\\.c' 0x1f 2.5 1e3"),
            vec![
                Tok::Var("x".into()),
                Tok::Op(".="),
                Tok::Ident("http.getPath".into()),
                Tok::Op("("),
                Tok::Op(")"),
                Tok::Op("."),
                Tok::Str(b"a\n$".to_vec()),
                Tok::Str(b"b\\.c".to_vec()),
                Tok::Int(31),
                Tok::Float(2.5),
                Tok::Float(1000.0),
                Tok::Eof
            ]
        );
        assert_eq!(toks("$1"), vec![Tok::Var("1".into()), Tok::Eof]);
        assert_eq!(toks("\"\\d+\""), vec![Tok::Str(b"\\d+".to_vec()), Tok::Eof]);
    }

    #[test]
    fn positions_and_errors() {
        let t = lex(b"a\n  $b").unwrap();
        assert_eq!((t[1].line, t[1].col), (2, 3));
        let e = lex(b"x = \"open").unwrap_err();
        assert_eq!((e.line, e.col), (1, 5));
        let e = lex(b"\n @").unwrap_err();
        assert_eq!((e.line, e.col), (2, 2));
        assert!(lex(b"$").is_err());
        assert!(lex(b"$12").is_err());
    }
}
