//! Declarative rules (F3, the source product's RuleBuilder): conditions
//! on the request and actions, written in TOML, turned into a script of
//! the rule language that compiles like any other rule, so one machine
//! runs both and `shoal rules show NAME` prints what a declarative rule
//! does. The configuration checks names and values and points at the
//! TOML; this file owns the mapping to script text.

use std::fmt::Write;

/// Which part of the request a condition looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    Path,
    /// The whole URL as the client sent it (path and query).
    Url,
    Host,
    Method,
    /// The client's IP address.
    Client,
    Header(String),
    Cookie(String),
    Query(String),
}

impl Subject {
    /// `path`, `url`, `host`, `method`, `client`, `header:NAME`,
    /// `cookie:NAME`, `query:NAME`.
    pub fn parse(s: &str) -> Result<Subject, String> {
        let (kind, arg) = s.split_once(':').unwrap_or((s, ""));
        let named = |f: fn(String) -> Subject| {
            if arg.is_empty() || !arg.bytes().all(|b| b.is_ascii_graphic()) {
                Err(format!("{kind}: needs a name, as in \"{kind}:NAME\""))
            } else {
                Ok(f(arg.to_string()))
            }
        };
        match kind.to_ascii_lowercase().as_str() {
            "path" if arg.is_empty() => Ok(Subject::Path),
            "url" if arg.is_empty() => Ok(Subject::Url),
            "host" if arg.is_empty() => Ok(Subject::Host),
            "method" if arg.is_empty() => Ok(Subject::Method),
            "client" if arg.is_empty() => Ok(Subject::Client),
            "header" => named(Subject::Header),
            "cookie" => named(Subject::Cookie),
            "query" => named(Subject::Query),
            _ => Err(format!(
                "expected path, url, host, method, client, header:NAME, cookie:NAME or query:NAME, found \"{s}\""
            )),
        }
    }

    fn script(&self) -> String {
        match self {
            Subject::Path => "http.getPath()".into(),
            Subject::Url => "http.getRawURL()".into(),
            Subject::Host => "http.getHostHeader()".into(),
            Subject::Method => "http.getMethod()".into(),
            Subject::Client => "request.getRemoteIP()".into(),
            Subject::Header(n) => format!("http.getHeader({})", quote(n.as_bytes())),
            Subject::Cookie(n) => format!("http.getCookie({})", quote(n.as_bytes())),
            Subject::Query(n) => format!("http.getFormParam({})", quote(n.as_bytes())),
        }
    }
}

/// How a condition compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Match {
    Equals,
    Prefix,
    Suffix,
    Contains,
    /// `*` and `?` (`string.wildMatch`).
    Wildcard,
    Regex,
    /// An address or a network: `10.0.0.0/8`, `192.168.1.1`.
    IpMask,
}

impl Match {
    pub fn parse(s: &str) -> Result<Match, String> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "equals" => Match::Equals,
            "prefix" => Match::Prefix,
            "suffix" => Match::Suffix,
            "contains" => Match::Contains,
            "wildcard" => Match::Wildcard,
            "regex" => Match::Regex,
            "ipmask" => Match::IpMask,
            _ => {
                return Err(format!(
                    "expected equals, prefix, suffix, contains, wildcard, regex or ipmask, found \"{s}\""
                ))
            }
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    pub subject: Subject,
    pub kind: Match,
    pub value: String,
    pub not: bool,
}

impl Condition {
    fn script(&self) -> String {
        let s = self.subject.script();
        let v = quote(self.value.as_bytes());
        let test = match self.kind {
            Match::Equals => format!("{s} == {v}"),
            Match::Prefix => format!("string.startsWith({s}, {v})"),
            Match::Suffix => format!("string.endsWith({s}, {v})"),
            Match::Contains => format!("string.contains({s}, {v})"),
            Match::Wildcard => format!("string.wildMatch({s}, {v})"),
            Match::Regex => format!("string.regexMatch({s}, {v})"),
            Match::IpMask => format!("string.ipmaskMatch({s}, {v})"),
        };
        if self.not {
            format!("!({test})")
        } else {
            test
        }
    }
}

/// What a declarative rule does when its conditions hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    SetHeader {
        name: String,
        value: String,
    },
    RemoveHeader {
        name: String,
    },
    SetResponseHeader {
        name: String,
        value: String,
    },
    RemoveResponseHeader {
        name: String,
    },
    RewritePath {
        value: String,
    },
    /// `http.changeSite`: the Host header (and absolute URL) to this site.
    SetHost {
        value: String,
    },
    SetPersistence {
        class: String,
    },
    SetIdempotent {
        value: bool,
    },
    Log {
        value: String,
    },
    /// The following end the request's rules; at most one, and last.
    UsePool {
        pool: String,
        node: Option<String>,
    },
    Redirect {
        url: String,
    },
    Respond {
        status: u16,
        content_type: String,
        body: String,
    },
    Close,
}

impl Action {
    /// The `do = "…"` names, for errors.
    pub const NAMES: &'static str = "set_header, remove_header, set_response_header, remove_response_header, \
         rewrite_path, set_host, set_persistence, set_idempotent, log, use_pool, redirect, respond, close";

    /// Whether it ends the rules of its phase (so it must come last).
    pub fn ends(&self) -> bool {
        matches!(self, Action::UsePool { .. } | Action::Redirect { .. } | Action::Respond { .. } | Action::Close)
    }

    /// Whether only a response rule can do it; and only a request rule.
    pub fn response_only(&self) -> bool {
        matches!(self, Action::SetResponseHeader { .. } | Action::RemoveResponseHeader { .. })
    }

    pub fn request_only(&self) -> bool {
        matches!(
            self,
            Action::SetHeader { .. }
                | Action::RemoveHeader { .. }
                | Action::RewritePath { .. }
                | Action::SetPersistence { .. }
                | Action::SetIdempotent { .. }
                | Action::UsePool { .. }
        )
    }

    fn script(&self) -> String {
        let q = |s: &str| quote(s.as_bytes());
        match self {
            Action::SetHeader { name, value } => format!("http.setHeader({}, {});", q(name), q(value)),
            Action::RemoveHeader { name } => format!("http.removeHeader({});", q(name)),
            Action::SetResponseHeader { name, value } => {
                format!("http.setResponseHeader({}, {});", q(name), q(value))
            }
            Action::RemoveResponseHeader { name } => format!("http.removeResponseHeader({});", q(name)),
            Action::RewritePath { value } => format!("http.setPath({});", q(value)),
            Action::SetHost { value } => format!("http.changeSite({});", q(value)),
            Action::SetPersistence { class } => format!("connection.setPersistenceClass({});", q(class)),
            Action::SetIdempotent { value } => format!("connection.setIdempotent({});", *value as u8),
            Action::Log { value } => format!("log.info({});", q(value)),
            Action::UsePool { pool, node: None } => format!("pool.use({});", q(pool)),
            Action::UsePool { pool, node: Some(n) } => format!("pool.use({}, {});", q(pool), q(n)),
            Action::Redirect { url } => format!("http.redirect({});", q(url)),
            Action::Respond { status, content_type, body } => {
                format!("http.sendResponse({status}, {}, {}, \"\");", q(content_type), q(body))
            }
            Action::Close => "connection.close();".into(),
        }
    }
}

/// A declarative rule: when `all` (or any) of the conditions hold, do
/// the actions in order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Declarative {
    pub any: bool,
    pub conditions: Vec<Condition>,
    pub actions: Vec<Action>,
}

impl Declarative {
    /// The rule as a script of the rule language.
    pub fn script(&self, name: &str) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# Declarative rule \"{name}\", written as a script.");
        let body: Vec<String> = self.actions.iter().map(Action::script).collect();
        if self.conditions.is_empty() {
            for a in &body {
                let _ = writeln!(out, "{a}");
            }
            return out;
        }
        let join = if self.any { "\n   || " } else { "\n   && " };
        let tests: Vec<String> = self.conditions.iter().map(Condition::script).collect();
        let _ = writeln!(out, "if ({}) {{", tests.join(join));
        for a in &body {
            let _ = writeln!(out, "   {a}");
        }
        out.push_str("}\n");
        out
    }
}

/// `s` as a double-quoted string of the rule language that reads back as
/// exactly these bytes.
pub fn quote(s: &[u8]) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for &b in s {
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'$' => out.push_str("\\$"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            0x20..=0x7e => out.push(b as char),
            _ => {
                let _ = write!(out, "\\x{b:02x}");
            }
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_reads_back_byte_for_byte() {
        let all: Vec<u8> = (0..=255u8).collect();
        let src = format!("$x = {};", quote(&all));
        let toks = crate::rules::lexer::lex(src.as_bytes()).unwrap();
        let got = toks.iter().find_map(|t| match &t.tok {
            crate::rules::lexer::Tok::Str(s) => Some(s.clone()),
            _ => None,
        });
        assert_eq!(got.unwrap(), all);
    }

    #[test]
    fn script_compiles_and_reads_as_written() {
        let d = Declarative {
            any: true,
            conditions: vec![
                Condition {
                    subject: Subject::Header("User-Agent".into()),
                    kind: Match::Wildcard,
                    value: "*iPhone*".into(),
                    not: false,
                },
                Condition { subject: Subject::Client, kind: Match::IpMask, value: "10.0.0.0/8".into(), not: true },
            ],
            actions: vec![
                Action::SetHeader { name: "X-Mobile".into(), value: "yes \"really\"".into() },
                Action::UsePool { pool: "mobile".into(), node: None },
            ],
        };
        let s = d.script("m");
        assert_eq!(
            s,
            "# Declarative rule \"m\", written as a script.\n\
             if (string.wildMatch(http.getHeader(\"User-Agent\"), \"*iPhone*\")\n   \
             || !(string.ipmaskMatch(request.getRemoteIP(), \"10.0.0.0/8\"))) {\n   \
             http.setHeader(\"X-Mobile\", \"yes \\\"really\\\"\");\n   \
             pool.use(\"mobile\");\n}\n"
        );
        let ast = crate::rules::parser::parse(s.as_bytes()).unwrap();
        crate::rules::compile::compile("m", &ast, &|_| None).unwrap();
    }

    #[test]
    fn subjects_and_matches_parse() {
        assert_eq!(Subject::parse("header:Host").unwrap(), Subject::Header("Host".into()));
        assert_eq!(Subject::parse("PATH").unwrap(), Subject::Path);
        assert!(Subject::parse("header:").is_err());
        assert!(Subject::parse("path:x").is_err());
        assert!(Subject::parse("body").is_err());
        assert_eq!(Match::parse("IPMask").unwrap(), Match::IpMask);
        assert!(Match::parse("like").is_err());
    }
}
