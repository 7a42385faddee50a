//! `[rules.NAME]` and the virtual servers' rule lists (F1–F3): reads rule
//! files, turns declarative rules into scripts, and compiles every rule
//! once so that a syntax error, an unknown function, a pool that does not
//! exist or a function used in the wrong phase is a `shoal check` error
//! with the file, line and column of the rule's own text. The shards
//! compile again from the checked text (a compiled rule is per shard).

use super::model::*;
use super::raw::{RawAction, RawRule, RawVirtualServer};
use super::{ConfigError, SourceFile};
use crate::rules::builtins::{self, REQUEST, RESPONSE};
use crate::rules::declarative::{Action, Condition, Declarative, Match, Subject};
use crate::rules::program::Program;
use crate::rules::RuleError;
use toml::Spanned;

/// The names a rule may give as constants, to check that they exist.
pub(super) struct Names<'a> {
    pub pools: &'a [Pool],
    pub persistence: &'a [Persistence],
    pub rate_classes: &'a [RateClass],
    pub bandwidth_classes: &'a [BandwidthClass],
    pub service_levels: &'a [ServiceLevel],
}

/// Where a rule's text came from, to map an error in it back there.
struct Located<'a> {
    file: &'a SourceFile,
    /// The rule's name in the file.
    span: std::ops::Range<usize>,
    /// Line and column of the text's first byte in `file` (inline rules).
    inline_at: Option<(usize, usize)>,
}

/// The checked rules, and each one compiled (for the virtual servers'
/// checks).
pub(super) struct Checked<'a> {
    pub rules: Vec<Rule>,
    programs: Vec<Program>,
    located: Vec<Located<'a>>,
}

pub(super) fn rules<'a>(files: &'a [SourceFile], names: &Names<'_>) -> Result<Checked<'a>, ConfigError> {
    let pools = names.pools;
    let mut rules: Vec<Rule> = Vec::new();
    let mut located: Vec<Located<'a>> = Vec::new();
    for f in files {
        for (name, r) in &f.raw.rules {
            if let Some(i) = rules.iter().position(|x| &x.name == name.get_ref()) {
                let (l, c) = super::line_col(&located[i].file.text, located[i].span.start);
                let prev: &Located = &located[i];
                return Err(f.error_at(
                    name.span(),
                    None,
                    format!("rule \"{}\" is already defined at {}:{l}:{c}", name.get_ref(), prev.file.name),
                ));
            }
            let ok_name = !name.get_ref().is_empty()
                && name.get_ref().bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
            if !ok_name {
                return Err(f.error_at(
                    name.span(),
                    None,
                    format!("rule name \"{}\": use letters, digits, '.', '_' and '-'", name.get_ref()),
                ));
            }
            let (rule, inline_at) = one(f, name, r, pools)?;
            rules.push(rule);
            located.push(Located { file: f, span: name.span(), inline_at });
        }
    }
    // Parse errors first, each at its own rule; then compile, libraries
    // (rules that import nothing) before the rules that import them, so
    // an error inside a library is reported where it is written.
    for (i, r) in rules.iter().enumerate() {
        crate::rules::parser::parse(&r.source).map_err(|e| error(&rules[i], &located[i], e))?;
    }
    let mut order: Vec<usize> = (0..rules.len()).collect();
    order.sort_by_key(|&i| crate::rules::parser::parse(&rules[i].source).map_or(0, |a| a.imports.len().min(1)));
    let mut programs: Vec<Option<Program>> = (0..rules.len()).map(|_| None).collect();
    for i in order {
        let p = crate::rules::compile_rule(&rules, i).map_err(|e| error(&rules[i], &located[i], e))?;
        check_constants(&rules[i], &located[i], &p, names)?;
        programs[i] = Some(p);
    }
    let programs = programs.into_iter().map(|p| p.expect("every rule compiled")).collect();
    Ok(Checked { rules, programs, located })
}

/// The rule indexes of one virtual server's `request_rules` and
/// `response_rules`, checked for the phase each runs in.
pub(super) fn vs_rules(
    checked: &Checked<'_>,
    f: &SourceFile,
    vname: &str,
    v: &RawVirtualServer,
) -> Result<(Vec<usize>, Vec<usize>), ConfigError> {
    let mut out = (Vec::new(), Vec::new());
    for (list, phase, key, other) in [
        (&v.request_rules, REQUEST, "request_rules", "response"),
        (&v.response_rules, RESPONSE, "response_rules", "request"),
    ] {
        let key = Some(format!("virtual_servers.{vname}.{key}"));
        let http = v.protocol == super::raw::Protocol::Http;
        if !list.is_empty() && v.protocol == super::raw::Protocol::SslPassthrough {
            return Err(f.error_at(
                list[0].span(),
                key,
                "rules run on http and the generic protocols; ssl_passthrough relays TLS it cannot read".into(),
            ));
        }
        for name in list {
            let Some(i) = checked.rules.iter().position(|r| &r.name == name.get_ref()) else {
                let mut known: Vec<&str> = checked.rules.iter().map(|r| r.name.as_str()).collect();
                known.sort_unstable();
                return Err(f.error_at(
                    name.span(),
                    key,
                    format!(
                        "no rule named \"{}\" (defined: {})",
                        name.get_ref(),
                        if known.is_empty() { "none".into() } else { known.join(", ") }
                    ),
                ));
            };
            if let Some((line, func)) = checked.programs[i].misplaced(phase) {
                let e = error(
                    &checked.rules[i],
                    &checked.located[i],
                    RuleError::at(line, 1, format!("{func} works in {other} rules only")),
                );
                return Err(f.error_at(
                    name.span(),
                    key,
                    format!("rule \"{}\" cannot be a {} rule: {e}", name.get_ref(), &key_tail(phase)),
                ));
            }
            // HTTP rules use http.*; byte-stream rules request.get/set and
            // response.get/set; RTSP rules rtsp.* (subrequests work in all).
            let rtsp = v.protocol == super::raw::Protocol::Rtsp;
            let http_only = |b: &builtins::Builtin| b.name.starts_with("http.") && !b.name.starts_with("http.request.");
            let stream_only = |b: &builtins::Builtin| builtins::STREAM_ONLY.contains(&b.name);
            let rtsp_only = |b: &builtins::Builtin| b.name.starts_with("rtsp.");
            let program = &checked.programs[i];
            let wrong = if http {
                program.first_call(|b| stream_only(b) || rtsp_only(b))
            } else if rtsp {
                program.first_call(|b| stream_only(b) || http_only(b))
            } else {
                program.first_call(|b| http_only(b) || rtsp_only(b))
            };
            if let Some((line, func)) = wrong {
                let why = if func.starts_with("rtsp.") {
                    format!("{func} works on rtsp virtual servers; this one is {}", v.protocol.name())
                } else if func.starts_with("http.") {
                    format!("{func} works on http virtual servers; this one is {}", v.protocol.name())
                } else {
                    format!(
                        "{func} reads byte streams; on an {} virtual server use {}.*",
                        v.protocol.name(),
                        v.protocol.name()
                    )
                };
                let e = error(&checked.rules[i], &checked.located[i], RuleError::at(line, 1, why));
                return Err(f.error_at(name.span(), key, format!("rule \"{}\": {e}", name.get_ref())));
            }
            if phase == REQUEST { &mut out.0 } else { &mut out.1 }.push(i);
        }
    }
    Ok(out)
}

fn key_tail(phase: u8) -> &'static str {
    if phase == REQUEST {
        "request"
    } else {
        "response"
    }
}

/// A rule's error, placed in the file it is written in.
fn error(rule: &Rule, at: &Located<'_>, e: RuleError) -> ConfigError {
    let key = Some(format!("rules.{}", rule.name));
    match &rule.origin {
        RuleOrigin::File(path) => ConfigError {
            file: path.display().to_string(),
            line: e.line as usize,
            column: e.col as usize,
            key,
            message: e.message,
        },
        RuleOrigin::Inline { .. } => {
            let (l0, c0) = at.inline_at.unwrap_or((1, 1));
            let line = l0 + e.line as usize - 1;
            let column = if e.line == 1 { c0 + e.col as usize - 1 } else { e.col as usize };
            ConfigError { file: at.file.name.clone(), line, column, key, message: e.message }
        }
        RuleOrigin::Declarative { .. } => at.file.error_at(
            at.span.clone(),
            key,
            format!("the script made of this declarative rule does not compile ({e}); please report it"),
        ),
    }
}

/// One `[rules.NAME]`: its text, and where inline text starts.
fn one(
    f: &SourceFile,
    name: &Spanned<String>,
    r: &Spanned<RawRule>,
    pools: &[Pool],
) -> Result<(Rule, Option<(usize, usize)>), ConfigError> {
    let rname = name.get_ref();
    let key = |k: &str| Some(format!("rules.{rname}.{k}"));
    let raw = r.get_ref();
    let declarative = !raw.conditions.is_empty() || !raw.actions.is_empty() || raw.when.is_some();
    let given = raw.file.is_some() as u8 + raw.source.is_some() as u8 + declarative as u8;
    if given != 1 {
        return Err(f.error_at(
            name.span(),
            key(""),
            "a rule needs exactly one of `file`, `source`, or `conditions` and `actions`".into(),
        ));
    }
    if let Some(file) = &raw.file {
        let path = super::validate::base_dir(f).join(file.get_ref());
        let source = std::fs::read(&path).map_err(|e| {
            f.error_at(file.span(), key("file"), format!("cannot read rule file {}: {e}", path.display()))
        })?;
        if source.len() > crate::rules::lexer::MAX_SOURCE {
            return Err(f.error_at(
                file.span(),
                key("file"),
                format!("{} is larger than {} bytes", path.display(), crate::rules::lexer::MAX_SOURCE),
            ));
        }
        return Ok((Rule { name: rname.clone(), source, origin: RuleOrigin::File(path) }, None));
    }
    if let Some(src) = &raw.source {
        let start = content_start(&f.text, src.span().start);
        let (line, column) = super::line_col(&f.text, start);
        let origin = RuleOrigin::Inline { file: f.name.clone(), line };
        return Ok((
            Rule { name: rname.clone(), source: src.get_ref().clone().into_bytes(), origin },
            Some((line, column)),
        ));
    }
    let d = declarative_rule(f, rname, raw, pools)?;
    let (line, _) = super::line_col(&f.text, name.span().start);
    let origin = RuleOrigin::Declarative { file: f.name.clone(), line };
    Ok((Rule { name: rname.clone(), source: d.script(rname).into_bytes(), origin }, None))
}

/// The offset of a TOML string's first content byte, given the offset of
/// its opening quote (a newline right after `'''` or `"""` is not part
/// of the string).
fn content_start(text: &str, at: usize) -> usize {
    let rest = &text[at.min(text.len())..];
    if rest.starts_with("'''") || rest.starts_with("\"\"\"") {
        let after = &rest[3..];
        let skip = if after.starts_with("\r\n") { 2 } else { usize::from(after.starts_with('\n')) };
        at + 3 + skip
    } else {
        at + 1
    }
}

fn declarative_rule(f: &SourceFile, rname: &str, raw: &RawRule, pools: &[Pool]) -> Result<Declarative, ConfigError> {
    let key = |k: &str| Some(format!("rules.{rname}.{k}"));
    let any = match raw.when.as_ref().map(|w| (w, w.get_ref().as_str())) {
        None | Some((_, "all")) => false,
        Some((_, "any")) => true,
        Some((w, other)) => {
            return Err(f.error_at(w.span(), key("when"), format!("expected \"all\" or \"any\", found \"{other}\"")))
        }
    };
    let mut conditions = Vec::new();
    for c in &raw.conditions {
        let c = c.get_ref();
        let subject = Subject::parse(c.on.get_ref()).map_err(|m| f.error_at(c.on.span(), key("conditions"), m))?;
        let kind = match &c.kind {
            None => Match::Equals,
            Some(k) => Match::parse(k.get_ref()).map_err(|m| f.error_at(k.span(), key("conditions"), m))?,
        };
        let value = c.value.get_ref().clone();
        let bad = |m: String| f.error_at(c.value.span(), key("conditions"), m);
        match kind {
            Match::Regex => {
                regex_lite::Regex::new(&value).map_err(|e| bad(format!("invalid regular expression: {e}")))?;
            }
            Match::IpMask => {
                let (ip, bits) = value.split_once('/').unwrap_or((&value, "0"));
                if ip.parse::<std::net::IpAddr>().is_err() || bits.parse::<u8>().is_err() {
                    return Err(bad(format!("expected an address or ADDRESS/BITS, found \"{value}\"")));
                }
                if subject != Subject::Client {
                    return Err(bad("match = \"ipmask\" applies to on = \"client\"".into()));
                }
            }
            _ => {}
        }
        conditions.push(Condition { subject, kind, value, not: c.not });
    }
    let mut actions = Vec::new();
    for a in &raw.actions {
        let action = action(f, rname, a, pools)?;
        if actions.last().is_some_and(Action::ends) {
            return Err(f.error_at(
                a.span(),
                key("actions"),
                "nothing can follow use_pool, redirect, respond or close: they end the rules".into(),
            ));
        }
        actions.push(action);
    }
    if actions.is_empty() {
        return Err(f.error_at(raw.when.as_ref().map_or(0..0, |w| w.span()), key("actions"), "no actions".into()));
    }
    let (req, resp) = (actions.iter().any(Action::request_only), actions.iter().any(Action::response_only));
    if req && resp {
        return Err(f.error_at(
            raw.actions[0].span(),
            key("actions"),
            "a rule runs on requests or on responses: set_response_header and remove_response_header \
             cannot be in the same rule as request actions"
                .into(),
        ));
    }
    Ok(Declarative { any, conditions, actions })
}

fn action(f: &SourceFile, rname: &str, a: &Spanned<RawAction>, pools: &[Pool]) -> Result<Action, ConfigError> {
    let key = Some(format!("rules.{rname}.actions"));
    let raw = a.get_ref();
    let need = |field: &Option<Spanned<String>>, what: &str| -> Result<String, ConfigError> {
        field.as_ref().map(|s| s.get_ref().clone()).ok_or_else(|| {
            f.error_at(a.span(), key.clone(), format!("do = \"{}\" needs `{what}`", raw.action.get_ref()))
        })
    };
    let header_name = |field: &Option<Spanned<String>>| -> Result<String, ConfigError> {
        let n = need(field, "name")?;
        if n.is_empty() || !n.bytes().all(|b| b.is_ascii_graphic() && b != b':') {
            return Err(f.error_at(a.span(), key.clone(), format!("\"{n}\" is not a header name")));
        }
        Ok(n)
    };
    let value = |field: &Option<Spanned<String>>| -> Result<String, ConfigError> {
        let v = need(field, "value")?;
        if v.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
            return Err(f.error_at(a.span(), key.clone(), "a header value cannot hold CR, LF or NUL".into()));
        }
        Ok(v)
    };
    Ok(match raw.action.get_ref().as_str() {
        "set_header" => Action::SetHeader { name: header_name(&raw.name)?, value: value(&raw.value)? },
        "remove_header" => Action::RemoveHeader { name: header_name(&raw.name)? },
        "set_response_header" => Action::SetResponseHeader { name: header_name(&raw.name)?, value: value(&raw.value)? },
        "remove_response_header" => Action::RemoveResponseHeader { name: header_name(&raw.name)? },
        "rewrite_path" => {
            let v = value(&raw.value)?;
            if !v.starts_with('/') {
                return Err(f.error_at(a.span(), key, format!("a path starts with '/', found \"{v}\"")));
            }
            Action::RewritePath { value: v }
        }
        "set_host" => Action::SetHost { value: value(&raw.value)? },
        "set_persistence" => Action::SetPersistence { class: need(&raw.class, "class")? },
        "set_idempotent" => match value(&raw.value)?.as_str() {
            "true" | "yes" | "1" => Action::SetIdempotent { value: true },
            "false" | "no" | "0" => Action::SetIdempotent { value: false },
            v => return Err(f.error_at(a.span(), key, format!("value: expected true or false, found \"{v}\""))),
        },
        "log" => Action::Log { value: need(&raw.value, "value")? },
        "use_pool" => {
            let pool = need(&raw.pool, "pool")?;
            if !pools.iter().any(|p| p.name == pool) {
                return Err(f.error_at(a.span(), key, format!("no pool named \"{pool}\"")));
            }
            Action::UsePool { pool, node: raw.node.as_ref().map(|n| n.get_ref().clone()) }
        }
        "redirect" => Action::Redirect { url: need(&raw.url, "url")? },
        "respond" => {
            let status = raw.status.as_ref().map_or(200, |s| *s.get_ref());
            if !(200..=599).contains(&status) {
                return Err(f.error_at(a.span(), key, format!("status must be 200 to 599, found {status}")));
            }
            let content_type = raw.content_type.as_ref().map_or("text/plain".into(), |c| c.get_ref().clone());
            Action::Respond {
                status,
                content_type,
                body: raw.body.as_ref().map_or(String::new(), |b| b.get_ref().clone()),
            }
        }
        "close" => Action::Close,
        "set_bandwidth_class" | "set_service_level_class" | "set_rate_class" => {
            return Err(f.error_at(
                a.span(),
                key,
                format!(
                    "do = \"{}\" comes with the classes of issue 17 and is not available yet",
                    raw.action.get_ref()
                ),
            ))
        }
        other => {
            return Err(f.error_at(
                raw.action.span(),
                key,
                format!("unknown action \"{other}\" (expected one of {})", Action::NAMES),
            ))
        }
    })
}

/// Pool and class names a rule gives as constants must exist.
fn check_constants(rule: &Rule, at: &Located<'_>, p: &Program, names: &Names<'_>) -> Result<(), ConfigError> {
    let pools = names.pools;
    let id = |n: &str| builtins::lookup(n).expect("a built-in");
    for name in ["pool.use", "pool.select"] {
        for (line, args) in p.constant_calls(id(name)) {
            let pool = args[0].to_bytes().map(|b| b.into_owned()).unwrap_or_default();
            let Some(pool) = pools.iter().find(|x| x.name.as_bytes() == pool) else {
                let e = RuleError::at(line, 1, format!("{name}: no pool named \"{}\"", String::from_utf8_lossy(&pool)));
                return Err(error(rule, at, e));
            };
            let node = args.get(1).and_then(|n| n.to_bytes().ok()).map(|b| String::from_utf8_lossy(&b).into_owned());
            if let Some(node) = node.filter(|n| !n.is_empty()) {
                let known = pool.nodes.iter().any(|n| n.name == node || n.addr.to_string() == node);
                if !known && node.parse::<std::net::SocketAddr>().is_err() {
                    let e = RuleError::at(
                        line,
                        1,
                        format!("{name}: \"{node}\" is not a node of pool {} nor an address (IP:PORT)", pool.name),
                    );
                    return Err(error(rule, at, e));
                }
            }
        }
    }
    let classes: [(&[&str], &str, Vec<&str>); 4] = [
        (
            &["connection.setpersistenceclass", "connection.setpersistence"],
            "persistence class",
            names.persistence.iter().map(|c| c.name.as_str()).collect(),
        ),
        (
            &["response.setbandwidthclass", "connection.setbandwidthclass"],
            "bandwidth class",
            names.bandwidth_classes.iter().map(|c| c.name.as_str()).collect(),
        ),
        (
            &["rate.use", "rate.use.noqueue", "rate.getbacklog"],
            "rate class",
            names.rate_classes.iter().map(|c| c.name.as_str()).collect(),
        ),
        (
            &["connection.setservicelevelclass", "slm.conforming", "slm.state"],
            "service level class",
            names.service_levels.iter().map(|c| c.name.as_str()).collect(),
        ),
    ];
    for (functions, what, known) in classes {
        for name in functions {
            for (line, args) in p.constant_calls(id(name)) {
                let class = args[0].to_bytes().map(|b| b.into_owned()).unwrap_or_default();
                // "" clears a connection's class (and names none elsewhere,
                // which the function reports when it runs).
                if !class.is_empty() && !known.iter().any(|k| k.as_bytes() == class) {
                    let class = String::from_utf8_lossy(&class);
                    let e = RuleError::at(line, 1, format!("{name}: no {what} named \"{class}\""));
                    return Err(error(rule, at, e));
                }
            }
        }
    }
    Ok(())
}
