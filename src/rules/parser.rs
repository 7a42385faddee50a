//! The rule language's parser: tokens to a [`Rule`], by recursive descent
//! with the operator precedence of docs/rules.md (C-like, with `.` at the
//! level of `+` and `-`). Nesting is bounded ([`MAX_DEPTH`]) so hostile
//! input cannot overflow the stack; every error names its line and
//! column.

use super::ast::*;
use super::lexer::{lex, Tok, Token};
use super::RuleError;

/// Deepest nesting of expressions and blocks accepted.
pub const MAX_DEPTH: usize = 200;

/// Parse a rule's source.
pub fn parse(src: &[u8]) -> Result<Rule, RuleError> {
    let toks = lex(src)?;
    let mut p = Parser { toks, at: 0, depth: 0 };
    let mut rule = Rule::default();
    while !p.is(&Tok::Eof) {
        if p.is_ident("sub") {
            rule.subs.push(p.sub()?);
        } else if p.is_ident("import") {
            if let Some(i) = p.import()? {
                rule.imports.push(i);
            }
        } else {
            rule.body.push(p.stmt()?);
        }
    }
    Ok(rule)
}

struct Parser {
    toks: Vec<Token>,
    at: usize,
    depth: usize,
}

type R<T> = Result<T, RuleError>;

/// A token as an error message names it.
fn describe(t: &Tok) -> String {
    match t {
        Tok::Var(v) => format!("${v}"),
        Tok::Ident(i) => format!("\"{i}\""),
        Tok::Str(_) => "a string".into(),
        Tok::Int(_) | Tok::Float(_) => "a number".into(),
        Tok::Op(o) => format!("\"{o}\""),
        Tok::Eof => "the end of the rule".into(),
    }
}

impl Parser {
    fn peek(&self) -> &Token {
        &self.toks[self.at]
    }

    fn pos(&self) -> Pos {
        let t = self.peek();
        Pos { line: t.line, col: t.col }
    }

    fn next(&mut self) -> Token {
        let t = self.toks[self.at].clone();
        if self.at + 1 < self.toks.len() {
            self.at += 1;
        }
        t
    }

    fn is(&self, t: &Tok) -> bool {
        &self.peek().tok == t
    }

    fn is_op(&self, op: &str) -> bool {
        matches!(&self.peek().tok, Tok::Op(o) if *o == op)
    }

    fn is_ident(&self, word: &str) -> bool {
        matches!(&self.peek().tok, Tok::Ident(w) if w == word)
    }

    fn err<T>(&self, msg: impl Into<String>) -> R<T> {
        let t = self.peek();
        Err(RuleError::at(t.line, t.col, msg.into()))
    }

    fn describe(&self) -> String {
        describe(&self.peek().tok)
    }

    fn expect(&mut self, op: &str) -> R<()> {
        if self.is_op(op) {
            self.next();
            Ok(())
        } else {
            let found = self.describe();
            self.err(format!("expected \"{op}\", found {found}"))
        }
    }

    fn enter(&mut self) -> R<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return self.err(format!("nested more than {MAX_DEPTH} deep"));
        }
        Ok(())
    }

    fn sub(&mut self) -> R<Sub> {
        let pos = self.pos();
        self.next();
        let name = match self.next().tok {
            Tok::Ident(n) => n,
            _ => return Err(RuleError::at(pos.line, pos.col, "a name after \"sub\"".into())),
        };
        self.expect("(")?;
        let mut params = Vec::new();
        while !self.is_op(")") {
            match self.next().tok {
                Tok::Var(v) => params.push(v),
                _ => return self.err("a $parameter"),
            }
            if !self.is_op(")") {
                self.expect(",")?;
            }
        }
        self.next();
        let body = self.block()?;
        Ok(Sub { name, params, body, pos })
    }

    /// `import name [as alias];`; `import strict;` is accepted and has no
    /// effect (shoal's rules are always strict: see docs/rules.md).
    fn import(&mut self) -> R<Option<Import>> {
        let pos = self.pos();
        self.next();
        let rule = match self.next().tok {
            Tok::Ident(n) => n,
            Tok::Str(s) => String::from_utf8_lossy(&s).into_owned(),
            _ => return Err(RuleError::at(pos.line, pos.col, "a rule name after \"import\"".into())),
        };
        let alias = if self.is_ident("as") {
            self.next();
            match self.next().tok {
                Tok::Ident(a) => a,
                _ => return self.err("a name after \"as\""),
            }
        } else {
            rule.clone()
        };
        self.expect(";")?;
        Ok((rule != "strict").then_some(Import { rule, alias, pos }))
    }

    fn block(&mut self) -> R<Vec<Stmt>> {
        self.enter()?;
        self.expect("{")?;
        let mut out = Vec::new();
        while !self.is_op("}") {
            if self.is(&Tok::Eof) {
                return self.err("\"}\" missing before the end of the rule");
            }
            out.push(self.stmt()?);
        }
        self.next();
        self.depth -= 1;
        Ok(out)
    }

    /// A statement or a block, as the body of `if`, loops and `else`.
    fn body(&mut self) -> R<Vec<Stmt>> {
        if self.is_op("{") {
            self.block()
        } else {
            self.enter()?;
            let s = self.stmt()?;
            self.depth -= 1;
            Ok(vec![s])
        }
    }

    fn stmt(&mut self) -> R<Stmt> {
        let pos = self.pos();
        if self.is_op(";") {
            self.next();
            return Ok(Stmt::Block(Vec::new()));
        }
        if self.is_op("{") {
            return Ok(Stmt::Block(self.block()?));
        }
        if let Tok::Ident(word) = &self.peek().tok {
            match word.as_str() {
                "if" => {
                    self.next();
                    let cond = self.paren()?;
                    let then = self.body()?;
                    let otherwise = if self.is_ident("else") {
                        self.next();
                        self.body()?
                    } else {
                        Vec::new()
                    };
                    return Ok(Stmt::If(cond, then, otherwise));
                }
                "while" => {
                    self.next();
                    let cond = self.paren()?;
                    return Ok(Stmt::While(cond, self.body()?));
                }
                "do" => {
                    self.next();
                    let body = self.body()?;
                    if !self.is_ident("while") {
                        return self.err("\"while\" after a do block");
                    }
                    self.next();
                    let cond = self.paren()?;
                    self.expect(";")?;
                    return Ok(Stmt::DoWhile(body, cond));
                }
                "for" => {
                    self.next();
                    self.expect("(")?;
                    let init = if self.is_op(";") { None } else { Some(self.expr()?) };
                    self.expect(";")?;
                    let cond = if self.is_op(";") { None } else { Some(self.expr()?) };
                    self.expect(";")?;
                    let step = if self.is_op(")") { None } else { Some(self.expr()?) };
                    self.expect(")")?;
                    return Ok(Stmt::For(init, cond, step, self.body()?));
                }
                "foreach" => {
                    self.next();
                    self.expect("(")?;
                    let var = match self.next().tok {
                        Tok::Var(v) => v,
                        _ => return self.err("a $variable after \"foreach (\""),
                    };
                    if !self.is_ident("in") {
                        return self.err("\"in\" after the foreach variable");
                    }
                    self.next();
                    let list = self.expr()?;
                    self.expect(")")?;
                    return Ok(Stmt::Foreach(var, list, self.body()?, pos));
                }
                "switch" => return self.switch(),
                "break" => {
                    self.next();
                    self.expect(";")?;
                    return Ok(Stmt::Break(pos));
                }
                "continue" => {
                    self.next();
                    self.expect(";")?;
                    return Ok(Stmt::Continue(pos));
                }
                "return" => {
                    self.next();
                    let value = if self.is_op(";") { None } else { Some(self.expr()?) };
                    self.expect(";")?;
                    return Ok(Stmt::Return(value, pos));
                }
                "sub" => return self.err("\"sub\" only at the top level of a rule"),
                "import" => return self.err("\"import\" only at the top level of a rule"),
                "else" => return self.err("\"else\" without \"if\""),
                _ => {}
            }
        }
        let e = self.expr()?;
        if !self.is_op(";") {
            let found = self.describe();
            return self.err(format!("expected \";\", found {found}"));
        }
        self.next();
        Ok(Stmt::Expr(e))
    }

    fn switch(&mut self) -> R<Stmt> {
        self.next();
        self.expect("(")?;
        let value = self.expr()?;
        let compare = if self.is_op(",") {
            self.next();
            let pos = self.pos();
            match self.next().tok {
                Tok::Ident(f) => Some((f, pos)),
                _ => return self.err("a function name as the switch's comparison"),
            }
        } else {
            None
        };
        self.expect(")")?;
        self.expect("{")?;
        let (mut cases, mut default) = (Vec::new(), Vec::new());
        while !self.is_op("}") {
            if self.is_ident("case") {
                self.next();
                let mut values = vec![self.expr()?];
                while self.is_op(",") {
                    self.next();
                    values.push(self.expr()?);
                }
                self.expect(":")?;
                cases.push((values, self.case_body()?));
            } else if self.is_ident("default") {
                self.next();
                self.expect(":")?;
                default = self.case_body()?;
            } else {
                return self.err("\"case\" or \"default\" in a switch");
            }
        }
        self.next();
        Ok(Stmt::Switch { value, compare, cases, default })
    }

    fn case_body(&mut self) -> R<Vec<Stmt>> {
        let mut out = Vec::new();
        while !self.is_op("}") && !self.is_ident("case") && !self.is_ident("default") {
            if self.is(&Tok::Eof) {
                return self.err("\"}\" missing at the end of a switch");
            }
            out.push(self.stmt()?);
        }
        Ok(out)
    }

    fn paren(&mut self) -> R<Expr> {
        self.expect("(")?;
        let e = self.expr()?;
        self.expect(")")?;
        Ok(e)
    }

    fn expr(&mut self) -> R<Expr> {
        self.enter()?;
        let e = self.assign();
        self.depth -= 1;
        e
    }

    fn assign(&mut self) -> R<Expr> {
        let lhs = self.cond()?;
        let pos = self.pos();
        let op = match &self.peek().tok {
            Tok::Op("=") => None,
            Tok::Op(o) => match *o {
                "+=" => Some(BinOp::Add),
                "-=" => Some(BinOp::Sub),
                "*=" => Some(BinOp::Mul),
                "/=" => Some(BinOp::Div),
                "%=" => Some(BinOp::Mod),
                ".=" => Some(BinOp::Concat),
                "&=" => Some(BinOp::BitAnd),
                "|=" => Some(BinOp::BitOr),
                "^=" => Some(BinOp::BitXor),
                "<<=" => Some(BinOp::Shl),
                ">>=" => Some(BinOp::Shr),
                _ => return Ok(lhs),
            },
            _ => return Ok(lhs),
        };
        if !matches!(lhs, Expr::Var(..) | Expr::Index(..)) {
            return self.err("only a $variable or an element of one can be assigned");
        }
        self.next();
        let rhs = self.expr()?;
        Ok(Expr::Assign(Box::new(lhs), op, Box::new(rhs), pos))
    }

    fn cond(&mut self) -> R<Expr> {
        let c = self.or()?;
        if !self.is_op("?") {
            return Ok(c);
        }
        self.next();
        let a = self.expr()?;
        self.expect(":")?;
        let b = self.expr()?;
        Ok(Expr::Cond(Box::new(c), Box::new(a), Box::new(b)))
    }

    fn or(&mut self) -> R<Expr> {
        let mut l = self.and()?;
        while self.is_op("||") {
            self.next();
            let r = self.and()?;
            l = Expr::Or(Box::new(l), Box::new(r));
        }
        Ok(l)
    }

    fn and(&mut self) -> R<Expr> {
        let mut l = self.binary(0)?;
        while self.is_op("&&") {
            self.next();
            let r = self.binary(0)?;
            l = Expr::And(Box::new(l), Box::new(r));
        }
        Ok(l)
    }

    /// Binary operators by precedence level, lowest first.
    fn binary(&mut self, level: usize) -> R<Expr> {
        const LEVELS: [&[(&str, BinOp)]; 8] = [
            &[("|", BinOp::BitOr)],
            &[("^", BinOp::BitXor)],
            &[("&", BinOp::BitAnd)],
            &[("==", BinOp::Eq), ("!=", BinOp::Ne)],
            &[("<", BinOp::Lt), ("<=", BinOp::Le), (">", BinOp::Gt), (">=", BinOp::Ge)],
            &[("<<", BinOp::Shl), (">>", BinOp::Shr)],
            &[("+", BinOp::Add), ("-", BinOp::Sub), (".", BinOp::Concat)],
            &[("*", BinOp::Mul), ("/", BinOp::Div), ("%", BinOp::Mod)],
        ];
        if level == LEVELS.len() {
            return self.unary();
        }
        let mut l = self.binary(level + 1)?;
        loop {
            let pos = self.pos();
            let Some(&(_, op)) = LEVELS[level].iter().find(|(s, _)| self.is_op(s)) else { return Ok(l) };
            self.next();
            let r = self.binary(level + 1)?;
            l = Expr::Binary(op, Box::new(l), Box::new(r), pos);
        }
    }

    fn unary(&mut self) -> R<Expr> {
        let pos = self.pos();
        let op = match &self.peek().tok {
            Tok::Op("-") => Some(UnOp::Neg),
            Tok::Op("!") => Some(UnOp::Not),
            Tok::Op("~") => Some(UnOp::BitNot),
            Tok::Op("+") => {
                self.next();
                return self.unary();
            }
            Tok::Op(o @ ("++" | "--")) => {
                let delta = if *o == "++" { 1 } else { -1 };
                self.next();
                let target = self.unary()?;
                if !matches!(target, Expr::Var(..) | Expr::Index(..)) {
                    return self.err("++ and -- apply to a $variable or an element of one");
                }
                return Ok(Expr::IncDec { target: Box::new(target), delta, prefix: true, pos });
            }
            _ => None,
        };
        match op {
            Some(op) => {
                self.next();
                self.enter()?;
                let e = self.unary()?;
                self.depth -= 1;
                Ok(Expr::Unary(op, Box::new(e), pos))
            }
            None => self.postfix(),
        }
    }

    fn postfix(&mut self) -> R<Expr> {
        let mut e = self.primary()?;
        loop {
            let pos = self.pos();
            if self.is_op("[") {
                self.next();
                let i = self.expr()?;
                self.expect("]")?;
                e = Expr::Index(Box::new(e), Box::new(i), pos);
            } else if self.is_op("++") || self.is_op("--") {
                if !matches!(e, Expr::Var(..) | Expr::Index(..)) {
                    return self.err("++ and -- apply to a $variable or an element of one");
                }
                let delta = if self.is_op("++") { 1 } else { -1 };
                self.next();
                e = Expr::IncDec { target: Box::new(e), delta, prefix: false, pos };
            } else {
                return Ok(e);
            }
        }
    }

    fn primary(&mut self) -> R<Expr> {
        let pos = self.pos();
        let t = self.next();
        match t.tok {
            Tok::Str(s) => Ok(Expr::Str(s)),
            Tok::Int(i) => Ok(Expr::Int(i)),
            Tok::Float(f) => Ok(Expr::Float(f)),
            Tok::Var(v) => Ok(Expr::Var(v, pos)),
            Tok::Op("(") => {
                let e = self.expr()?;
                self.expect(")")?;
                Ok(e)
            }
            Tok::Op("[") => self.list(),
            Tok::Ident(name) => {
                if !self.is_op("(") {
                    return Err(RuleError::at(
                        pos.line,
                        pos.col,
                        format!("\"{name}\" is not a value (a function call needs \"(\"; a variable, \"$\")"),
                    ));
                }
                self.next();
                let mut args = Vec::new();
                while !self.is_op(")") {
                    args.push(self.expr()?);
                    if !self.is_op(")") {
                        self.expect(",")?;
                    }
                }
                self.next();
                Ok(Expr::Call(name, args, pos))
            }
            other => Err(RuleError::at(pos.line, pos.col, format!("expected a value, found {}", describe(&other)))),
        }
    }

    /// After `[`: an array `[a, b]`, a hash `[k => v]`, or `[]`.
    fn list(&mut self) -> R<Expr> {
        if self.is_op("]") {
            self.next();
            return Ok(Expr::Array(Vec::new()));
        }
        let first = self.expr()?;
        if self.is_op("=>") {
            self.next();
            let v = self.expr()?;
            let mut pairs = vec![(first, v)];
            while self.is_op(",") {
                self.next();
                if self.is_op("]") {
                    break;
                }
                let k = self.expr()?;
                self.expect("=>")?;
                pairs.push((k, self.expr()?));
            }
            self.expect("]")?;
            return Ok(Expr::Hash(pairs));
        }
        let mut items = vec![first];
        while self.is_op(",") {
            self.next();
            if self.is_op("]") {
                break;
            }
            items.push(self.expr()?);
        }
        self.expect("]")?;
        Ok(Expr::Array(items))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Rule {
        parse(s.as_bytes()).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn err(s: &str) -> (u32, u32, String) {
        let e = parse(s.as_bytes()).unwrap_err();
        (e.line, e.col, e.message)
    }

    #[test]
    fn statements_and_precedence() {
        let r = p("$a = 1 + 2 * 3 . \"x\"; if ($a == 7 && !$b) { $c .= 'y'; } else if ($d) $e++; else { break; }");
        assert_eq!(r.body.len(), 2);
        // `.` binds like `+`: (1 + (2 * 3)) . "x"
        let Stmt::Expr(Expr::Assign(_, None, rhs, _)) = &r.body[0] else { panic!() };
        assert!(matches!(**rhs, Expr::Binary(BinOp::Concat, _, _, _)));
        let r = p("sub f($x, $y) { return $x . $y; } import lib as l; foreach ($k in [1, 2]) { continue; } \
                   for ($i = 0; $i < 3; $i++) {} while (1) { break; } do { $x--; } while ($x > 0); \
                   switch ($p, string.wildmatch) { case \"/a*\", \"/b*\": $x = 1; default: $x = 2; } \
                   $h = [\"a\" => 1, \"b\" => [2, 3]]; $h[\"b\"][0] = 4; $t = $a ? 1 : 2;");
        assert_eq!((r.subs.len(), r.imports.len(), r.body.len()), (1, 1, 8));
        assert_eq!(r.imports[0], Import { rule: "lib".into(), alias: "l".into(), pos: Pos { line: 1, col: 35 } });
        assert!(p("import strict; $x = 1;").imports.is_empty());
    }

    #[test]
    fn errors_name_line_and_column() {
        assert_eq!(err("$a = ;"), (1, 6, "expected a value, found \";\"".into()));
        assert_eq!(err("$a = 1\n$b = 2;"), (2, 1, "expected \";\", found $b".into()));
        assert_eq!(err("if ($a) {\n $b = 1;\n"), (3, 1, "\"}\" missing before the end of the rule".into()));
        assert_eq!(err("1 = 2;").0, 1);
        assert!(err("http.getPath;").2.contains("not a value"));
        assert!(err("if (1) { sub f() {} }").2.contains("top level"));
        let deep = "(".repeat(500) + "1" + &")".repeat(500) + ";";
        assert!(err(&deep).2.contains("nested more than"));
    }
}
