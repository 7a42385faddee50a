//! The syntax tree of a rule, as the parser builds it and the compiler
//! reads it. Every node that can fail at run time carries its position.

/// A position in the rule's source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    pub line: u32,
    pub col: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Str(Vec<u8>),
    Int(i64),
    Float(f64),
    Var(String, Pos),
    /// `[a, b]`.
    Array(Vec<Expr>),
    /// `[k => v, ...]`.
    Hash(Vec<(Expr, Expr)>),
    /// `base[index]`.
    Index(Box<Expr>, Box<Expr>, Pos),
    /// A call of a built-in function or a `sub` (dotted, as written).
    Call(String, Vec<Expr>, Pos),
    Unary(UnOp, Box<Expr>, Pos),
    Binary(BinOp, Box<Expr>, Box<Expr>, Pos),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    /// `c ? a : b`.
    Cond(Box<Expr>, Box<Expr>, Box<Expr>),
    /// `target op= value` (`op` none for plain `=`); the value of the
    /// expression is the value assigned.
    Assign(Box<Expr>, Option<BinOp>, Box<Expr>, Pos),
    /// `$x++` / `$x--` (postfix: the old value) or `++$x` / `--$x`.
    IncDec {
        target: Box<Expr>,
        delta: i64,
        prefix: bool,
        pos: Pos,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnOp {
    Neg,
    Not,
    BitNot,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Concat,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    BitAnd,
    BitOr,
    BitXor,
    Shl,
    Shr,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Stmt {
    Expr(Expr),
    If(Expr, Vec<Stmt>, Vec<Stmt>),
    While(Expr, Vec<Stmt>),
    DoWhile(Vec<Stmt>, Expr),
    For(Option<Expr>, Option<Expr>, Option<Expr>, Vec<Stmt>),
    /// `foreach ($var in list)`: over an array's values, or a hash's keys.
    Foreach(String, Expr, Vec<Stmt>, Pos),
    /// `switch (value[, compare]) { case a, b: ...; default: ... }`.
    Switch {
        value: Expr,
        compare: Option<(String, Pos)>,
        cases: Vec<(Vec<Expr>, Vec<Stmt>)>,
        default: Vec<Stmt>,
    },
    Break(Pos),
    Continue(Pos),
    Return(Option<Expr>, Pos),
    Block(Vec<Stmt>),
}

/// `sub name($a, $b) { ... }`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sub {
    pub name: String,
    pub params: Vec<String>,
    pub body: Vec<Stmt>,
    pub pos: Pos,
}

/// `import name [as alias];`.
#[derive(Debug, Clone, PartialEq)]
pub struct Import {
    pub rule: String,
    pub alias: String,
    pub pos: Pos,
}

/// A whole rule.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Rule {
    pub body: Vec<Stmt>,
    pub subs: Vec<Sub>,
    pub imports: Vec<Import>,
}
