//! From a parsed rule to a [`Program`]: variables become numbered slots,
//! loops and conditions become jumps, `sub`s (the rule's own and those of
//! imported library rules) become functions, and every call is resolved
//! once, here: a built-in by its case-insensitive name and argument count,
//! or a `sub`. An unknown function, a wrong argument count or a misplaced
//! `break` is an error with its line and column, found by `shoal check`.

use super::ast::*;
use super::builtins;
use super::program::{Func, Op, Program, Target};
use super::value::Value;
use super::RuleError;
use std::collections::HashMap;

/// Deepest import chain accepted (a library importing a library ...).
const MAX_IMPORT_DEPTH: usize = 8;

/// Compile `rule` (named `name`). `library` gives the parsed source of a
/// rule that `import` names (`None`: no such rule).
pub fn compile(
    name: &str,
    rule: &Rule,
    library: &dyn Fn(&str) -> Option<Result<Rule, RuleError>>,
) -> Result<Program, RuleError> {
    let mut c = Compiler {
        prog: Program {
            name: name.into(),
            code: Vec::new(),
            lines: Vec::new(),
            consts: Vec::new(),
            funcs: Vec::new(),
            calls: Vec::new(),
        },
        subs: HashMap::new(),
        line: 1,
        consts: HashMap::new(),
    };
    // Every sub is known before any body is compiled: a rule may call a
    // sub defined below it.
    let mut all: Vec<(String, &Sub)> = Vec::new();
    let mut libs: Vec<(String, Rule)> = Vec::new();
    collect_imports(rule, library, 0, &mut libs, &mut Vec::new())?;
    for s in &rule.subs {
        all.push((s.name.to_ascii_lowercase(), s));
    }
    for (alias, lib) in &libs {
        for s in &lib.subs {
            all.push((format!("{alias}.{}", s.name).to_ascii_lowercase(), s));
        }
    }
    c.prog.funcs.push(Func { name: name.to_string(), entry: 0, params: 0, slots: 0 });
    for (full, s) in &all {
        if builtins::lookup(full).is_some() {
            return Err(RuleError::at(
                s.pos.line,
                s.pos.col,
                format!("sub {} has the name of a built-in function", s.name),
            ));
        }
        let id = c.prog.funcs.len() as u16;
        if c.subs.insert(full.clone(), id).is_some() {
            return Err(RuleError::at(s.pos.line, s.pos.col, format!("sub {} is defined twice", s.name)));
        }
        c.prog.funcs.push(Func { name: full.clone(), entry: 0, params: s.params.len() as u16, slots: 0 });
    }
    // The top level.
    let mut f = FuncScope::new(false);
    c.stmts(&rule.body, &mut f)?;
    c.emit(Op::End);
    c.prog.funcs[0].slots = f.slots;
    for (full, s) in &all {
        let id = c.subs[full] as usize;
        c.prog.funcs[id].entry = c.prog.code.len() as u32;
        let mut f = FuncScope::new(true);
        for p in &s.params {
            f.slot(p);
        }
        c.line = s.pos.line;
        c.stmts(&s.body, &mut f)?;
        c.emit(Op::PushEmpty);
        c.emit(Op::Return);
        c.prog.funcs[id].slots = f.slots;
    }
    Ok(c.prog)
}

/// The library rules `rule` imports, and theirs, once each.
fn collect_imports(
    rule: &Rule,
    library: &dyn Fn(&str) -> Option<Result<Rule, RuleError>>,
    depth: usize,
    out: &mut Vec<(String, Rule)>,
    chain: &mut Vec<String>,
) -> Result<(), RuleError> {
    for imp in &rule.imports {
        let at = |msg: String| RuleError::at(imp.pos.line, imp.pos.col, msg);
        if depth >= MAX_IMPORT_DEPTH || chain.contains(&imp.rule) {
            return Err(at(format!("import of {} goes around in a circle or too deep", imp.rule)));
        }
        if out.iter().any(|(a, _)| a.eq_ignore_ascii_case(&imp.alias)) {
            continue;
        }
        let lib = match library(&imp.rule) {
            None => return Err(at(format!("import: there is no rule named {}", imp.rule))),
            Some(Err(e)) => return Err(at(format!("import: rule {} does not compile: {e}", imp.rule))),
            Some(Ok(lib)) => lib,
        };
        chain.push(imp.rule.clone());
        collect_imports(&lib, library, depth + 1, out, chain)?;
        chain.pop();
        out.push((imp.alias.clone(), lib));
    }
    Ok(())
}

struct Compiler {
    prog: Program,
    /// Lower-cased full name (`alias.name` for imported ones) → function.
    subs: HashMap<String, u16>,
    line: u32,
    /// String constants already in the table.
    consts: HashMap<Vec<u8>, u32>,
}

/// A function being compiled: its variables and the loops it is in.
struct FuncScope {
    vars: HashMap<String, u16>,
    slots: u16,
    /// Innermost last: (continue target, jumps to patch at the end).
    loops: Vec<Loop>,
    is_sub: bool,
}

/// A loop or switch being compiled: `break` leaves it; `continue` goes to
/// the next iteration of the innermost loop (a switch passes it on).
struct Loop {
    switch: bool,
    /// Where `continue` goes, when known before the body is compiled.
    cont: Option<u32>,
    /// `continue` jumps to patch once the target is known.
    cont_patches: Vec<usize>,
    breaks: Vec<usize>,
}

impl FuncScope {
    fn new(is_sub: bool) -> Self {
        FuncScope { vars: HashMap::new(), slots: 0, loops: Vec::new(), is_sub }
    }

    fn slot(&mut self, name: &str) -> u16 {
        if let Some(&s) = self.vars.get(name) {
            return s;
        }
        let s = self.hidden();
        self.vars.insert(name.to_string(), s);
        s
    }

    /// A slot no variable name reaches (loop state, temporaries).
    fn hidden(&mut self) -> u16 {
        let s = self.slots;
        self.slots += 1;
        s
    }
}

type R = Result<(), RuleError>;

/// The capture a target names, if it is one of `$1`..`$9`.
fn capture_of(e: &Expr) -> Option<u8> {
    match e {
        Expr::Var(name, _) => capture(name),
        _ => None,
    }
}

/// `$1`..`$9` are captures, shared by the whole run; anything else is a
/// variable of the function.
fn capture(name: &str) -> Option<u8> {
    match name.as_bytes() {
        [d @ b'1'..=b'9'] => Some(d - b'1'),
        _ => None,
    }
}

impl Compiler {
    fn emit(&mut self, op: Op) -> usize {
        self.prog.code.push(op);
        self.prog.lines.push(self.line);
        self.prog.code.len() - 1
    }

    fn here(&self) -> u32 {
        self.prog.code.len() as u32
    }

    fn patch(&mut self, at: usize, target: u32) {
        match &mut self.prog.code[at] {
            Op::Jump(t) | Op::JumpIfFalse(t) | Op::JumpIfTrue(t) => *t = target,
            Op::IterNext { exit, .. } => *exit = target,
            other => unreachable!("patching {other:?}"),
        }
    }

    fn constant(&mut self, v: Value) -> u32 {
        if let Value::Str(s) = &v {
            if let Some(&i) = self.consts.get(s.as_slice()) {
                return i;
            }
            self.consts.insert(s.to_vec(), self.prog.consts.len() as u32);
        }
        self.prog.consts.push(v);
        (self.prog.consts.len() - 1) as u32
    }

    fn stmts(&mut self, body: &[Stmt], f: &mut FuncScope) -> R {
        body.iter().try_for_each(|s| self.stmt(s, f))
    }

    fn stmt(&mut self, s: &Stmt, f: &mut FuncScope) -> R {
        match s {
            Stmt::Expr(e) => {
                self.expr(e, f)?;
                self.emit(Op::Pop);
            }
            Stmt::Block(b) => self.stmts(b, f)?,
            Stmt::If(c, then, otherwise) => {
                self.expr(c, f)?;
                let to_else = self.emit(Op::JumpIfFalse(0));
                self.stmts(then, f)?;
                if otherwise.is_empty() {
                    let end = self.here();
                    self.patch(to_else, end);
                } else {
                    let to_end = self.emit(Op::Jump(0));
                    let els = self.here();
                    self.patch(to_else, els);
                    self.stmts(otherwise, f)?;
                    let end = self.here();
                    self.patch(to_end, end);
                }
            }
            Stmt::While(c, body) => {
                let start = self.here();
                self.expr(c, f)?;
                let exit = self.emit(Op::JumpIfFalse(0));
                self.looped(f, Some(start), body)?;
                self.emit(Op::Jump(start));
                let end = self.here();
                self.patch(exit, end);
                self.close_loop(f, end, end);
            }
            Stmt::DoWhile(body, c) => {
                let start = self.here();
                self.looped(f, None, body)?;
                let cont = self.here();
                self.expr(c, f)?;
                self.emit(Op::JumpIfTrue(start));
                let end = self.here();
                self.close_loop(f, cont, end);
            }
            Stmt::For(init, cond, step, body) => {
                if let Some(i) = init {
                    self.expr(i, f)?;
                    self.emit(Op::Pop);
                }
                let start = self.here();
                let exit = match cond {
                    Some(c) => {
                        self.expr(c, f)?;
                        Some(self.emit(Op::JumpIfFalse(0)))
                    }
                    None => None,
                };
                self.looped(f, None, body)?;
                let cont = self.here();
                if let Some(s) = step {
                    self.expr(s, f)?;
                    self.emit(Op::Pop);
                }
                self.emit(Op::Jump(start));
                let end = self.here();
                if let Some(x) = exit {
                    self.patch(x, end);
                }
                self.close_loop(f, cont, end);
            }
            Stmt::Foreach(var, list, body, pos) => {
                self.line = pos.line;
                let (l, i) = (f.hidden(), f.hidden());
                self.expr(list, f)?;
                self.emit(Op::Store(l));
                self.emit(Op::IterPrepare { list: l });
                self.emit(Op::PushInt(0));
                self.emit(Op::Store(i));
                let target = match capture(var) {
                    Some(c) => Target::Capture(c),
                    None => Target::Slot(f.slot(var)),
                };
                let start = self.here();
                let next = self.emit(Op::IterNext { list: l, index: i, var: target, exit: 0 });
                self.looped(f, Some(start), body)?;
                self.emit(Op::Jump(start));
                let end = self.here();
                self.patch(next, end);
                self.close_loop(f, end, end);
            }
            Stmt::Switch { value, compare, cases, default } => {
                let v = f.hidden();
                self.expr(value, f)?;
                self.emit(Op::Store(v));
                let cmp = match compare {
                    None => None,
                    Some((name, pos)) => Some(self.resolve(name, 2, *pos)?),
                };
                // Tests first, each jumping to its body; then the bodies.
                let mut to_body = Vec::new();
                for (values, _) in cases {
                    let mut jumps = Vec::new();
                    for e in values {
                        self.emit(Op::Load(v));
                        self.expr(e, f)?;
                        match cmp {
                            None => self.emit(Op::Binary(BinOp::Eq)),
                            Some(call) => self.emit(call),
                        };
                        jumps.push(self.emit(Op::JumpIfTrue(0)));
                    }
                    to_body.push(jumps);
                }
                let to_default = self.emit(Op::Jump(0));
                f.loops.push(Loop { switch: true, cont: None, cont_patches: Vec::new(), breaks: Vec::new() });
                let mut ends = Vec::new();
                for ((_, body), jumps) in cases.iter().zip(to_body) {
                    let at = self.here();
                    jumps.into_iter().for_each(|j| self.patch(j, at));
                    self.stmts(body, f)?;
                    ends.push(self.emit(Op::Jump(0)));
                }
                let at = self.here();
                self.patch(to_default, at);
                self.stmts(default, f)?;
                let end = self.here();
                ends.into_iter().for_each(|j| self.patch(j, end));
                let lp = f.loops.pop().expect("pushed above");
                lp.breaks.into_iter().for_each(|j| self.patch(j, end));
            }
            Stmt::Break(pos) => {
                self.line = pos.line;
                if f.loops.is_empty() {
                    if f.is_sub {
                        return Err(RuleError::at(pos.line, pos.col, "break outside a loop".into()));
                    }
                    // At the top level, `break` ends the rule.
                    self.emit(Op::End);
                } else {
                    let j = self.emit(Op::Jump(0));
                    f.loops.last_mut().expect("checked").breaks.push(j);
                }
            }
            Stmt::Continue(pos) => {
                self.line = pos.line;
                let Some(lp) = f.loops.iter().rposition(|l| !l.switch) else {
                    return Err(RuleError::at(pos.line, pos.col, "continue outside a loop".into()));
                };
                let j = self.emit(Op::Jump(0));
                match f.loops[lp].cont {
                    Some(t) => self.patch(j, t),
                    None => f.loops[lp].cont_patches.push(j),
                }
            }
            Stmt::Return(v, pos) => {
                self.line = pos.line;
                match v {
                    Some(e) => self.expr(e, f)?,
                    None => {
                        self.emit(Op::PushEmpty);
                    }
                };
                self.emit(Op::Return);
            }
        }
        Ok(())
    }

    /// A loop body, with `break` and `continue` collected for patching.
    fn looped(&mut self, f: &mut FuncScope, cont: Option<u32>, body: &[Stmt]) -> R {
        f.loops.push(Loop { switch: false, cont, cont_patches: Vec::new(), breaks: Vec::new() });
        self.stmts(body, f)
    }

    fn close_loop(&mut self, f: &mut FuncScope, cont: u32, end: u32) {
        let lp = f.loops.pop().expect("opened by looped");
        lp.breaks.into_iter().for_each(|j| self.patch(j, end));
        lp.cont_patches.into_iter().for_each(|j| self.patch(j, cont));
    }

    /// The call instruction for function `name` with `argc` arguments.
    fn resolve(&mut self, name: &str, argc: usize, pos: Pos) -> Result<Op, RuleError> {
        let lower = name.to_ascii_lowercase();
        let at = |msg: String| RuleError::at(pos.line, pos.col, msg);
        if argc > u8::MAX as usize {
            return Err(at(format!("{name}: too many arguments")));
        }
        if let Some(&func) = self.subs.get(&lower) {
            let want = self.prog.funcs[func as usize].params as usize;
            if argc != want {
                return Err(at(format!("{name} takes {want} argument(s), given {argc}")));
            }
            return Ok(Op::CallSub { func, argc: argc as u8 });
        }
        match builtins::lookup(&lower) {
            Some(id) => {
                let b = &builtins::TABLE[id as usize];
                if argc < b.min as usize || argc > b.max as usize {
                    let want = if b.min == b.max { b.min.to_string() } else { format!("{} to {}", b.min, b.max) };
                    return Err(at(format!("{name} takes {want} argument(s), given {argc}")));
                }
                if !self.prog.calls.contains(&id) {
                    self.prog.calls.push(id);
                }
                Ok(Op::Call { builtin: id, argc: argc as u8 })
            }
            None => Err(at(format!("unknown function {name}"))),
        }
    }

    fn expr(&mut self, e: &Expr, f: &mut FuncScope) -> R {
        match e {
            Expr::Str(s) => {
                let c = self.constant(Value::from(s.clone()));
                self.emit(Op::Const(c));
            }
            Expr::Int(i) => {
                self.emit(Op::PushInt(*i));
            }
            Expr::Float(x) => {
                let c = self.constant(Value::Float(*x));
                self.emit(Op::Const(c));
            }
            Expr::Var(name, pos) => {
                self.line = pos.line;
                match capture(name) {
                    Some(c) => self.emit(Op::LoadCapture(c)),
                    None => {
                        let s = f.slot(name);
                        self.emit(Op::Load(s))
                    }
                };
            }
            Expr::Array(items) => {
                for i in items {
                    self.expr(i, f)?;
                }
                self.emit(Op::MakeArray(items.len() as u32));
            }
            Expr::Hash(pairs) => {
                for (k, v) in pairs {
                    self.expr(k, f)?;
                    self.expr(v, f)?;
                }
                self.emit(Op::MakeHash(pairs.len() as u32));
            }
            Expr::Index(base, index, pos) => {
                self.expr(base, f)?;
                self.expr(index, f)?;
                self.line = pos.line;
                self.emit(Op::Index);
            }
            Expr::Call(name, args, pos) => {
                for a in args {
                    self.expr(a, f)?;
                }
                self.line = pos.line;
                let op = self.resolve(name, args.len(), *pos)?;
                let op = match op {
                    Op::Call { builtin, argc } if builtins::TABLE[builtin as usize].mutates => {
                        let first = match args.first() {
                            Some(Expr::Var(v, _)) => match capture(v) {
                                Some(c) => Target::Capture(c),
                                None => Target::Slot(f.slot(v)),
                            },
                            _ => {
                                return Err(RuleError::at(
                                    pos.line,
                                    pos.col,
                                    format!("{name} changes its first argument: it must be a $variable"),
                                ))
                            }
                        };
                        Op::CallMut { builtin, argc, first }
                    }
                    op => op,
                };
                self.emit(op);
            }
            Expr::Unary(op, e, pos) => {
                self.expr(e, f)?;
                self.line = pos.line;
                self.emit(Op::Unary(*op));
            }
            Expr::Binary(op, a, b, pos) => {
                self.expr(a, f)?;
                self.expr(b, f)?;
                self.line = pos.line;
                self.emit(Op::Binary(*op));
            }
            Expr::And(a, b) | Expr::Or(a, b) => {
                let and = matches!(e, Expr::And(..));
                self.expr(a, f)?;
                let short = self.emit(if and { Op::JumpIfFalse(0) } else { Op::JumpIfTrue(0) });
                self.expr(b, f)?;
                self.emit(Op::Truth);
                let end = self.emit(Op::Jump(0));
                let at = self.here();
                self.patch(short, at);
                self.emit(Op::PushInt(i64::from(!and)));
                let done = self.here();
                self.patch(end, done);
            }
            Expr::Cond(c, a, b) => {
                self.expr(c, f)?;
                let to_b = self.emit(Op::JumpIfFalse(0));
                self.expr(a, f)?;
                let to_end = self.emit(Op::Jump(0));
                let at = self.here();
                self.patch(to_b, at);
                self.expr(b, f)?;
                let end = self.here();
                self.patch(to_end, end);
            }
            Expr::Assign(target, op, value, pos) => self.assign(target, *op, value, *pos, f)?,
            Expr::IncDec { target, delta, prefix, pos } => {
                // x = x + delta, with the old or the new value as result.
                let tmp = f.hidden();
                self.expr(target, f)?;
                if !prefix {
                    self.emit(Op::Dup);
                    self.emit(Op::Store(tmp));
                }
                self.emit(Op::PushInt(*delta));
                self.emit(Op::Binary(BinOp::Add));
                if *prefix {
                    self.emit(Op::Dup);
                    self.emit(Op::Store(tmp));
                }
                let v = f.hidden();
                self.emit(Op::Store(v));
                self.store_to(target, v, *pos, f)?;
                self.emit(Op::Pop);
                self.emit(Op::Load(tmp));
            }
        }
        Ok(())
    }

    /// Store the value on the stack into `$name` (a capture or a slot).
    fn store_var(&mut self, name: &str, f: &mut FuncScope) {
        match capture(name) {
            Some(c) => self.emit(Op::StoreCapture(c)),
            None => {
                let s = f.slot(name);
                self.emit(Op::Store(s))
            }
        };
    }

    fn assign(&mut self, target: &Expr, op: Option<BinOp>, value: &Expr, pos: Pos, f: &mut FuncScope) -> R {
        self.line = pos.line;
        if let (Expr::Var(name, _), None) = (target, op) {
            // The common case, with no temporaries.
            self.expr(value, f)?;
            self.emit(Op::Dup);
            self.store_var(name, f);
            return Ok(());
        }
        if let (Expr::Var(name, _), Some(BinOp::Concat), None) = (target, op, capture_of(target)) {
            // `$s .= x`: the variable is emptied while its string is
            // extended, so the string is extended in place, not copied.
            let s = f.slot(name);
            let tmp = f.hidden();
            self.expr(value, f)?;
            self.emit(Op::Store(tmp));
            self.emit(Op::Take(s));
            self.emit(Op::Load(tmp));
            self.emit(Op::Binary(BinOp::Concat));
            self.emit(Op::Dup);
            self.emit(Op::Store(s));
            return Ok(());
        }
        let v = f.hidden();
        match op {
            None => self.expr(value, f)?,
            Some(op) => {
                self.expr(target, f)?;
                self.expr(value, f)?;
                self.emit(Op::Binary(op));
            }
        }
        self.emit(Op::Store(v));
        self.store_to(target, v, pos, f)
    }

    /// Store the value in slot `v` into `target` (a variable or an element
    /// path); leave the value on the stack.
    fn store_to(&mut self, target: &Expr, v: u16, pos: Pos, f: &mut FuncScope) -> R {
        let mut keys = Vec::new();
        let mut root = target;
        while let Expr::Index(base, key, _) = root {
            keys.push(&**key);
            root = base;
        }
        let Expr::Var(name, _) = root else {
            return Err(RuleError::at(
                pos.line,
                pos.col,
                "only a $variable or an element of one can be assigned".into(),
            ));
        };
        if keys.is_empty() {
            self.emit(Op::Load(v));
            self.emit(Op::Dup);
            self.store_var(name, f);
            return Ok(());
        }
        if capture(name).is_some() || keys.len() > u8::MAX as usize {
            return Err(RuleError::at(pos.line, pos.col, "cannot assign into that element".into()));
        }
        let slot = f.slot(name);
        for k in keys.iter().rev() {
            self.expr(k, f)?;
        }
        self.emit(Op::Load(v));
        self.line = pos.line;
        self.emit(Op::StoreIndex { slot, depth: keys.len() as u8 });
        Ok(())
    }
}
