//! The rule language (F1–F4): a dialect of the source product's
//! TrafficScript, so that its examples and an operator's existing rules
//! run as written (docs/rules.md lists the differences). Rules are parsed
//! ([`parser`]) and compiled ([`compile`]) once per configuration
//! generation and shard into bytecode ([`program`]) that a small,
//! resumable, budgeted machine runs ([`vm`]) with the built-in functions
//! ([`builtins`]); [`module`] runs them in the HTTP phases, and
//! [`declarative`] turns TOML rules into the same language.

pub mod ast;
pub mod builtins;
pub mod compile;
pub mod declarative;
pub mod lexer;
pub mod module;
pub mod parser;
pub mod program;
pub mod stream;
pub mod subrequest;
pub mod value;
pub mod vm;

use std::rc::Rc;

/// A rule that does not parse or compile: where and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    pub line: u32,
    pub col: u32,
    pub message: String,
}

impl RuleError {
    pub fn at(line: u32, col: u32, message: String) -> RuleError {
        RuleError { line, col, message }
    }
}

impl std::fmt::Display for RuleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.line, self.col, self.message)
    }
}

impl std::error::Error for RuleError {}

/// Compile rule `name` of `rules` (by index), resolving its imports among
/// the others by name.
pub fn compile_rule(rules: &[crate::config::Rule], index: usize) -> Result<program::Program, RuleError> {
    let rule = &rules[index];
    let ast = parser::parse(&rule.source)?;
    let library = |name: &str| rules.iter().find(|r| r.name == name).map(|r| parser::parse(&r.source));
    compile::compile(&rule.name, &ast, &library)
}

/// A generation's rules on one shard: each rule a virtual server uses,
/// compiled once (a program holds reference-counted values, so it stays
/// on its shard), and what their runs share.
pub struct ShardRules {
    /// By index into `Config::rules`; `None` for a rule no virtual server
    /// uses.
    programs: Vec<Option<Rc<program::Program>>>,
    shared: Rc<builtins::Shared>,
    budget: vm::Budget,
    body_limit: usize,
}

impl ShardRules {
    pub fn build(config: &crate::config::Config, data: std::sync::Arc<builtins::data::Store>) -> ShardRules {
        let used = |i: usize| {
            config.virtual_servers.iter().any(|v| v.request_rules.contains(&i) || v.response_rules.contains(&i))
        };
        let programs = (0..config.rules.len())
            .map(|i| {
                if !used(i) {
                    return None;
                }
                // The configuration compiled every rule when it was
                // checked; this cannot fail unless a rule file changed
                // in between, which the generation's own text rules out.
                match compile_rule(&config.rules, i) {
                    Ok(p) => Some(Rc::new(p)),
                    Err(e) => {
                        log::error!("rule {}: {e}; it does not run", config.rules[i].name);
                        None
                    }
                }
            })
            .collect();
        let limits = config.global.rules;
        ShardRules {
            programs,
            shared: Rc::new(builtins::Shared::new(data)),
            budget: vm::Budget { instructions: limits.instructions, memory: limits.memory, yield_every: 50_000 },
            body_limit: limits.body_limit,
        }
    }

    /// The byte-stream rules of `vs` (generic protocols), when it has rules.
    pub fn stream(&self, vs: &crate::config::VirtualServer) -> Option<Rc<stream::StreamRules>> {
        if vs.request_rules.is_empty() && vs.response_rules.is_empty() {
            return None;
        }
        let pick = |list: &[usize]| list.iter().filter_map(|&i| self.programs[i].clone()).collect();
        Some(Rc::new(stream::StreamRules::new(
            pick(&vs.request_rules),
            pick(&vs.response_rules),
            self.budget,
            self.shared.clone(),
            vs.rules_every_read,
        )))
    }

    /// The rules module of `vs`, when it has rules.
    pub fn module(&self, vs: &crate::config::VirtualServer) -> Option<module::RulesModule> {
        if vs.request_rules.is_empty() && vs.response_rules.is_empty() {
            return None;
        }
        let pick = |list: &[usize]| list.iter().filter_map(|&i| self.programs[i].clone()).collect();
        Some(module::RulesModule::new(
            pick(&vs.request_rules),
            pick(&vs.response_rules),
            self.budget,
            self.body_limit,
            self.shared.clone(),
        ))
    }
}
#[cfg(test)]
mod tests;
