//! A compiled rule: bytecode for a small stack machine ([`Op`]), its
//! constants, the functions (`sub`s, and the rule's top level as function
//! 0), and a line for every instruction, for errors at run time.

use super::ast::{BinOp, UnOp};
use super::value::Value;

/// One instruction. Jumps are absolute instruction indexes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Op {
    /// Push constant `n`.
    Const(u32),
    PushEmpty,
    PushInt(i64),
    /// Push / pop into the current function's variable slot `n`.
    Load(u16),
    Store(u16),
    /// Push slot `n`'s value and leave the slot empty (so `.=` can extend
    /// a string it then holds alone, in place).
    Take(u16),
    /// `$1`..`$9` (index 0..8).
    LoadCapture(u8),
    StoreCapture(u8),
    Pop,
    Dup,
    Unary(UnOp),
    Binary(BinOp),
    /// Replace the top value by 1 or 0 (its truth).
    Truth,
    Jump(u32),
    /// Pop; jump when false (true).
    JumpIfFalse(u32),
    JumpIfTrue(u32),
    /// Pop `n` values into an array.
    MakeArray(u32),
    /// Pop `n` key/value pairs into a hash.
    MakeHash(u32),
    /// Pop an index and a container; push the element ("" when absent).
    Index,
    /// Pop a value and `depth` keys (pushed before it, outermost first);
    /// store the value into variable `slot` at that path; push it again.
    StoreIndex {
        slot: u16,
        depth: u8,
    },
    /// A built-in function with `argc` arguments (popped, in order).
    Call {
        builtin: u16,
        argc: u8,
    },
    /// A built-in that changes its first argument (`array.push`): the
    /// variable `first` is lent to it, and takes the changed value back.
    CallMut {
        builtin: u16,
        argc: u8,
        first: Target,
    },
    /// A `sub` (function index) with `argc` arguments.
    CallSub {
        func: u16,
        argc: u8,
    },
    /// Return the top value from a `sub`; at the top level, end the rule.
    Return,
    /// End the rule (`break` at the top level, or its last instruction).
    End,
    /// The list in `list` (an array, or a hash whose keys are taken) is
    /// ready for iteration: replace a hash by its keys.
    IterPrepare {
        list: u16,
    },
    /// If counter `index` is below the length of `list`: store the element
    /// into `var`, count on; else jump to `exit`.
    IterNext {
        list: u16,
        index: u16,
        var: Target,
        exit: u32,
    },
}

/// Where `foreach` puts each element: a variable slot or a capture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Slot(u16),
    Capture(u8),
}

#[derive(Debug, Clone)]
pub struct Func {
    pub name: String,
    pub entry: u32,
    pub params: u16,
    /// Variable slots (parameters first).
    pub slots: u16,
}

#[derive(Debug, Clone)]
pub struct Program {
    /// The rule's name, for logs.
    pub name: std::rc::Rc<str>,
    pub code: Vec<Op>,
    pub lines: Vec<u32>,
    pub consts: Vec<Value>,
    /// Function 0 is the rule's top level.
    pub funcs: Vec<Func>,
    /// The built-ins the rule calls (indexes), for what the phases must
    /// prepare (a body to read, say).
    pub calls: Vec<u16>,
}

impl Program {
    /// Whether the rule may call built-in `id`.
    pub fn calls_builtin(&self, id: u16) -> bool {
        self.calls.contains(&id)
    }
}

impl Program {
    /// The calls of built-in `id` whose arguments are all constants: the
    /// line of each and its arguments. The configuration checks them (a
    /// pool that does not exist is an error before the rule ever runs).
    pub fn constant_calls(&self, id: u16) -> Vec<(u32, Vec<&Value>)> {
        let mut out = Vec::new();
        for (i, op) in self.code.iter().enumerate() {
            let Op::Call { builtin, argc } = *op else { continue };
            let argc = argc as usize;
            if builtin != id || argc > i {
                continue;
            }
            let args: Option<Vec<&Value>> = self.code[i - argc..i]
                .iter()
                .map(|op| match op {
                    Op::Const(n) => self.consts.get(*n as usize),
                    _ => None,
                })
                .collect();
            if let Some(args) = args {
                out.push((self.lines[i], args));
            }
        }
        out
    }

    /// The first call of a built-in that a rule of `phase` (a
    /// [`super::builtins::REQUEST`] or `RESPONSE` flag) cannot make: its
    /// line and name.
    pub fn misplaced(&self, phase: u8) -> Option<(u32, &'static str)> {
        self.first_call(|b| b.phases & phase == 0)
    }

    /// The first call of a built-in for which `pred` holds: its line and
    /// name.
    pub fn first_call(&self, pred: impl Fn(&super::builtins::Builtin) -> bool) -> Option<(u32, &'static str)> {
        self.code.iter().enumerate().find_map(|(i, op)| {
            let (Op::Call { builtin, .. } | Op::CallMut { builtin, .. }) = *op else { return None };
            let b = &super::builtins::TABLE[builtin as usize];
            pred(b).then(|| (self.lines[i], b.name))
        })
    }
}
