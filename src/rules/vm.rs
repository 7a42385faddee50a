//! The machine that runs a compiled rule ([`Program`]): a value stack,
//! the variables of the running function and its callers, the captures
//! `$1`..`$9`, and the run's budgets.
//!
//! A run is resumable: [`Vm::run`] returns when the rule ends, stops the
//! phase, fails, waits for something (a subrequest: the caller does the
//! waiting and hands the result to [`Vm::resume`]), or has run
//! `yield_every` instructions (the caller lets the shard serve other
//! connections, then runs on). A run that goes over its instruction or
//! memory budget fails, so no rule can hang a shard or grow without end.

use super::ast::{BinOp, UnOp};
use super::builtins::{self, Call, Env, Fault, Pending, Stop};
use super::program::{Op, Program, Target};
use super::value::Value;
use std::collections::BTreeMap;
use std::rc::Rc;

/// What one run may spend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Instructions per run.
    pub instructions: u64,
    /// Bytes of values a run may make (strings, arrays, hashes, results of
    /// functions), counted as they are made.
    pub memory: usize,
    /// Instructions between chances for the shard to serve others.
    pub yield_every: u64,
}

impl Default for Budget {
    fn default() -> Self {
        Budget { instructions: 1_000_000, memory: 32 << 20, yield_every: 50_000 }
    }
}

/// Sub calls nested deeper than this fail the run.
const MAX_FRAMES: usize = 64;
/// Most values on the stack (deep expressions are bounded by the parser;
/// this is a second line).
const MAX_STACK: usize = 4096;

/// Why a run returned.
#[derive(Debug)]
pub enum Outcome {
    /// The rule ended (its end, `break`, `return`, or `rule.break()`).
    Done,
    /// A function asked to stop more than the rule.
    Stop(Stop),
    /// A function must wait: do it, then [`Vm::resume`] with its result.
    Wait(Pending),
    /// `yield_every` instructions ran: let others run, then run again.
    Yield,
    /// The rule failed (its line and why).
    Failed { line: u32, message: String },
}

struct Frame {
    ret: usize,
    base: usize,
}

pub struct Vm {
    prog: Rc<Program>,
    stack: Vec<Value>,
    locals: Vec<Value>,
    frames: Vec<Frame>,
    pc: usize,
    base: usize,
    pub captures: [Value; 9],
    steps: u64,
    mem: usize,
    budget: Budget,
}

impl Vm {
    pub fn new(prog: Rc<Program>, budget: Budget) -> Vm {
        let slots = prog.funcs[0].slots as usize;
        Vm {
            prog,
            stack: Vec::with_capacity(16),
            locals: vec![Value::empty(); slots],
            frames: Vec::new(),
            pc: 0,
            base: 0,
            captures: Default::default(),
            steps: 0,
            mem: 0,
            budget,
        }
    }

    /// Instructions run so far.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    pub fn program(&self) -> &Rc<Program> {
        &self.prog
    }

    /// After [`Outcome::Wait`]: the waited-for function's result.
    pub fn resume(&mut self, v: Value) {
        self.mem += v.size();
        self.stack.push(v);
    }

    fn line(&self) -> u32 {
        self.prog.lines.get(self.pc.saturating_sub(1)).copied().unwrap_or(0)
    }

    fn fail(&self, message: impl Into<String>) -> Outcome {
        Outcome::Failed { line: self.line(), message: message.into() }
    }

    fn pop(&mut self) -> Value {
        self.stack.pop().unwrap_or_default()
    }

    /// Run until the rule ends, stops, waits, yields or fails.
    pub fn run(&mut self, env: &mut Env<'_>) -> Outcome {
        let mut until_yield = self.budget.yield_every;
        loop {
            if self.steps >= self.budget.instructions {
                return self.fail(format!("over its budget of {} instructions", self.budget.instructions));
            }
            if self.mem > self.budget.memory {
                return self.fail(format!("over its memory budget of {} bytes", self.budget.memory));
            }
            if self.stack.len() > MAX_STACK {
                return self.fail("expression stack overflow");
            }
            if until_yield == 0 {
                return Outcome::Yield;
            }
            until_yield -= 1;
            self.steps += 1;
            let op = self.prog.code[self.pc];
            self.pc += 1;
            match op {
                Op::Const(i) => {
                    let v = self.prog.consts[i as usize].clone();
                    self.stack.push(v);
                }
                Op::PushEmpty => self.stack.push(Value::empty()),
                Op::PushInt(i) => self.stack.push(Value::Int(i)),
                Op::Load(s) => {
                    let v = self.locals[self.base + s as usize].clone();
                    self.stack.push(v);
                }
                Op::Store(s) => {
                    let v = self.pop();
                    self.locals[self.base + s as usize] = v;
                }
                Op::Take(s) => {
                    let v = std::mem::take(&mut self.locals[self.base + s as usize]);
                    self.stack.push(v);
                }
                Op::LoadCapture(c) => {
                    let v = self.captures[c as usize].clone();
                    self.stack.push(v);
                }
                Op::StoreCapture(c) => {
                    let v = self.pop();
                    self.captures[c as usize] = v;
                }
                Op::Pop => {
                    self.stack.pop();
                }
                Op::Dup => {
                    let v = self.stack.last().cloned().unwrap_or_default();
                    self.stack.push(v);
                }
                Op::Unary(op) => {
                    let v = self.pop();
                    match unary(op, &v) {
                        Ok(r) => self.stack.push(r),
                        Err(e) => return self.fail(e),
                    }
                }
                Op::Binary(op) => {
                    let b = self.pop();
                    let a = self.pop();
                    match binary(op, a, &b) {
                        Ok(r) => {
                            if op == BinOp::Concat {
                                self.mem += r.size();
                            }
                            self.stack.push(r)
                        }
                        Err(e) => return self.fail(e),
                    }
                }
                Op::Truth => {
                    let v = self.pop();
                    self.stack.push(Value::from(v.truthy()));
                }
                Op::Jump(t) => self.pc = t as usize,
                Op::JumpIfFalse(t) => {
                    if !self.pop().truthy() {
                        self.pc = t as usize;
                    }
                }
                Op::JumpIfTrue(t) => {
                    if self.pop().truthy() {
                        self.pc = t as usize;
                    }
                }
                Op::MakeArray(n) => {
                    let at = self.stack.len().saturating_sub(n as usize);
                    let items: Vec<Value> = self.stack.drain(at..).collect();
                    self.mem += 16 * (items.len() + 1);
                    self.stack.push(Value::Array(Rc::new(items)));
                }
                Op::MakeHash(n) => {
                    let at = self.stack.len().saturating_sub(2 * n as usize);
                    let mut h = BTreeMap::new();
                    let mut it = self.stack.drain(at..);
                    while let (Some(k), Some(v)) = (it.next(), it.next()) {
                        match k.to_bytes() {
                            Ok(k) => {
                                h.insert(k.into_owned(), v);
                            }
                            Err(e) => {
                                drop(it);
                                return self.fail(format!("hash key: {}", e.0));
                            }
                        }
                    }
                    drop(it);
                    self.mem += 32 * (h.len() + 1);
                    self.stack.push(Value::Hash(Rc::new(h)));
                }
                Op::Index => {
                    let i = self.pop();
                    let base = self.pop();
                    match index(&base, &i) {
                        Ok(v) => self.stack.push(v),
                        Err(e) => return self.fail(e),
                    }
                }
                Op::StoreIndex { slot, depth } => {
                    let v = self.pop();
                    let at = self.stack.len().saturating_sub(depth as usize);
                    let keys: Vec<Value> = self.stack.drain(at..).collect();
                    let root = &mut self.locals[self.base + slot as usize];
                    if let Err(e) = store_path(root, &keys, v.clone()) {
                        return self.fail(e);
                    }
                    self.mem += v.size();
                    self.stack.push(v);
                }
                Op::Call { builtin, argc } | Op::CallMut { builtin, argc, .. } => {
                    // The arguments stay on the stack, lent to the
                    // built-in: no list is made per call.
                    let at = self.stack.len().saturating_sub(argc as usize);
                    let b = &builtins::TABLE[builtin as usize];
                    // A changing built-in gets the variable itself (moved,
                    // so an array it extends is not copied) and gives it
                    // back changed.
                    let first = match op {
                        Op::CallMut { first, .. } => {
                            let var = match first {
                                Target::Slot(s) => &mut self.locals[self.base + s as usize],
                                Target::Capture(c) => &mut self.captures[c as usize],
                            };
                            if let Some(a) = self.stack.get_mut(at) {
                                *a = std::mem::take(var);
                            }
                            Some(first)
                        }
                        _ => None,
                    };
                    let mut call = Call { env, args: &mut self.stack[at..], captures: &mut self.captures };
                    let result = (b.f)(&mut call);
                    if let Some(first) = first {
                        if let Some(a) = self.stack.get_mut(at) {
                            let var = match first {
                                Target::Slot(s) => &mut self.locals[self.base + s as usize],
                                Target::Capture(c) => &mut self.captures[c as usize],
                            };
                            *var = std::mem::take(a);
                        }
                    }
                    match result {
                        Ok(v) => {
                            self.stack.truncate(at);
                            self.mem += v.size();
                            self.stack.push(v);
                        }
                        // The call is made again when the body is in: its
                        // arguments stay, and the machine goes back to it.
                        Err(Fault::Wait(Pending::Body)) if first.is_none() => {
                            self.pc -= 1;
                            return Outcome::Wait(Pending::Body);
                        }
                        Err(e) => {
                            self.stack.truncate(at);
                            match e {
                                Fault::Error(e) => return self.fail(format!("{}: {e}", b.name)),
                                Fault::Stop(Stop::Rule) => return Outcome::Done,
                                Fault::Stop(s) => return Outcome::Stop(s),
                                Fault::Wait(p) => return Outcome::Wait(p),
                            }
                        }
                    }
                }
                Op::CallSub { func, argc } => {
                    if self.frames.len() >= MAX_FRAMES {
                        return self.fail(format!("subs nested more than {MAX_FRAMES} deep"));
                    }
                    let f = &self.prog.funcs[func as usize];
                    let base = self.locals.len();
                    self.locals.resize(base + f.slots as usize, Value::empty());
                    let at = self.stack.len().saturating_sub(argc as usize);
                    for (i, a) in self.stack.drain(at..).enumerate() {
                        self.locals[base + i] = a;
                    }
                    self.frames.push(Frame { ret: self.pc, base: self.base });
                    self.base = base;
                    self.pc = f.entry as usize;
                }
                Op::Return => match self.frames.pop() {
                    Some(fr) => {
                        let v = self.pop();
                        self.locals.truncate(self.base);
                        self.base = fr.base;
                        self.pc = fr.ret;
                        self.stack.push(v);
                    }
                    None => return Outcome::Done,
                },
                Op::End => return Outcome::Done,
                Op::IterPrepare { list } => {
                    let l = &mut self.locals[self.base + list as usize];
                    let items = match &*l {
                        Value::Array(_) => None,
                        Value::Hash(h) => Some(h.keys().map(|k| Value::from(k.as_slice())).collect()),
                        // A scalar iterates as one element; nothing as none.
                        Value::Str(s) if s.is_empty() => Some(Vec::new()),
                        other => Some(vec![other.clone()]),
                    };
                    if let Some(items) = items {
                        *l = Value::Array(Rc::new(items));
                    }
                }
                Op::IterNext { list, index, var, exit } => {
                    let i = match &self.locals[self.base + index as usize] {
                        Value::Int(i) => *i as usize,
                        _ => 0,
                    };
                    let item = match &self.locals[self.base + list as usize] {
                        Value::Array(a) => a.get(i).cloned(),
                        _ => None,
                    };
                    match item {
                        Some(v) => {
                            self.locals[self.base + index as usize] = Value::Int(i as i64 + 1);
                            match var {
                                Target::Slot(s) => self.locals[self.base + s as usize] = v,
                                Target::Capture(c) => self.captures[c as usize] = v,
                            }
                        }
                        None => self.pc = exit as usize,
                    }
                }
            }
        }
    }
}

fn unary(op: UnOp, v: &Value) -> Result<Value, String> {
    Ok(match op {
        UnOp::Not => Value::from(!v.truthy()),
        UnOp::Neg => match v.to_number().map_err(|e| e.0)? {
            Value::Int(i) => i.checked_neg().map_or(Value::Float(-(i as f64)), Value::Int),
            Value::Float(f) => Value::Float(-f),
            _ => unreachable!("numbers"),
        },
        UnOp::BitNot => Value::Int(!v.to_int().map_err(|e| e.0)?),
    })
}

/// A binary operator on two values (docs/rules.md, "Operators").
pub fn binary(op: BinOp, a: Value, b: &Value) -> Result<Value, String> {
    use BinOp::*;
    let err = |e: super::value::TypeError| e.0;
    Ok(match op {
        Concat => {
            let rhs = b.to_bytes().map_err(err)?;
            match a {
                // Appending to a string no one else holds extends it in
                // place (`$html .= ...` in a loop stays linear).
                Value::Str(mut s) => {
                    Rc::make_mut(&mut s).extend_from_slice(&rhs);
                    Value::Str(s)
                }
                other => {
                    let mut v = other.to_bytes().map_err(err)?.into_owned();
                    v.extend_from_slice(&rhs);
                    Value::from(v)
                }
            }
        }
        Eq => Value::from(a.equals(b).map_err(err)?),
        Ne => Value::from(!a.equals(b).map_err(err)?),
        Lt => Value::from(a.compare(b).map_err(err)?.is_lt()),
        Le => Value::from(a.compare(b).map_err(err)?.is_le()),
        Gt => Value::from(a.compare(b).map_err(err)?.is_gt()),
        Ge => Value::from(a.compare(b).map_err(err)?.is_ge()),
        BitAnd | BitOr | BitXor | Shl | Shr | Mod => {
            let (x, y) = (a.to_int().map_err(err)?, b.to_int().map_err(err)?);
            match op {
                BitAnd => Value::Int(x & y),
                BitOr => Value::Int(x | y),
                BitXor => Value::Int(x ^ y),
                Shl => Value::Int(x.wrapping_shl((y & 63) as u32)),
                Shr => Value::Int(x.wrapping_shr((y & 63) as u32)),
                _ => {
                    if y == 0 {
                        return Err("modulo by zero".into());
                    }
                    Value::Int(x.wrapping_rem(y))
                }
            }
        }
        Add | Sub | Mul | Div => {
            let (x, y) = (a.to_number().map_err(err)?, b.to_number().map_err(err)?);
            match (x, y) {
                (Value::Int(x), Value::Int(y)) => {
                    let r = match op {
                        Add => x.checked_add(y),
                        Sub => x.checked_sub(y),
                        Mul => x.checked_mul(y),
                        _ => {
                            if y == 0 {
                                return Err("division by zero".into());
                            }
                            // Exact quotients stay integers; others are
                            // doubles (1/2 is 0.5).
                            if x % y == 0 {
                                x.checked_div(y)
                            } else {
                                return Ok(Value::Float(x as f64 / y as f64));
                            }
                        }
                    };
                    // An integer overflow goes on in doubles.
                    r.map_or_else(|| Value::Float(float_op(op, x as f64, y as f64)), Value::Int)
                }
                (x, y) => {
                    let (x, y) = (x.to_float().map_err(err)?, y.to_float().map_err(err)?);
                    if op == Div && y == 0.0 {
                        return Err("division by zero".into());
                    }
                    Value::Float(float_op(op, x, y))
                }
            }
        }
    })
}

fn float_op(op: BinOp, x: f64, y: f64) -> f64 {
    match op {
        BinOp::Add => x + y,
        BinOp::Sub => x - y,
        BinOp::Mul => x * y,
        _ => x / y,
    }
}

/// `base[i]`: an array element (negative counts from the end), a hash
/// value, or a string's byte as a one-byte string; absent is "".
fn index(base: &Value, i: &Value) -> Result<Value, String> {
    Ok(match base {
        Value::Array(a) => {
            let n = i.to_int().map_err(|e| e.0)?;
            let at = if n < 0 { a.len() as i64 + n } else { n };
            usize::try_from(at).ok().and_then(|at| a.get(at)).cloned().unwrap_or_default()
        }
        Value::Hash(h) => h.get(i.to_bytes().map_err(|e| e.0)?.as_ref()).cloned().unwrap_or_default(),
        Value::Str(s) if s.is_empty() => Value::empty(),
        other => return Err(format!("cannot index a {}", other.kind())),
    })
}

/// Store `v` at `keys` inside `root`. An unset (empty) variable becomes
/// an array when the first key is an integer, else a hash; an array takes
/// an index up to its length (which appends).
fn store_path(root: &mut Value, keys: &[Value], v: Value) -> Result<(), String> {
    let Some((k, rest)) = keys.split_first() else {
        *root = v;
        return Ok(());
    };
    if matches!(root, Value::Str(s) if s.is_empty()) {
        *root = if matches!(k, Value::Int(_)) {
            Value::Array(Rc::new(Vec::new()))
        } else {
            Value::Hash(Rc::new(BTreeMap::new()))
        };
    }
    match root {
        Value::Array(a) => {
            let n = k.to_int().map_err(|e| e.0)?;
            let len = a.len() as i64;
            let at = if n < 0 { len + n } else { n };
            if at < 0 || at > len {
                return Err(format!("index {n} outside an array of {len}"));
            }
            let a = Rc::make_mut(a);
            if at == len {
                a.push(Value::empty());
            }
            store_path(&mut a[at as usize], rest, v)
        }
        Value::Hash(h) => {
            let key = k.to_bytes().map_err(|e| e.0)?.into_owned();
            let slot = Rc::make_mut(h).entry(key).or_default();
            store_path(slot, rest, v)
        }
        other => Err(format!("cannot assign into an element of a {}", other.kind())),
    }
}

/// Run `vm` with no connection (the tests, the fuzzer): to its end, its
/// failure or a wait, through its yields. The budget bounds it: a run
/// fails once it has spent its instructions.
pub fn run_detached(vm: &mut Vm, state: &mut builtins::State, shared: &builtins::Shared) -> Outcome {
    loop {
        let mut env = Env {
            rule: vm.prog.name.clone(),
            phase: builtins::Phase::Request,
            tx: None,
            stream: None,
            body: None,
            body_coming: false,
            state: &mut *state,
            shared,
        };
        match vm.run(&mut env) {
            Outcome::Yield => continue,
            other => return other,
        }
    }
}
