//! The syntax tree of an expression and the recursive-descent parser that builds it.
//!
//! ```text
//! expression := term term*                      -- two or more terms concatenate
//! term       := string | number | true | false | null
//!             | name "(" [expression ("," expression)*] ")"
//!             | path
//!             | "(" expression ")"
//! ```

use super::lexer::{tokenize, Tok, Token};
use super::ExprError;
use crate::value::Value;

/// Deeper nesting than any hand-written mapping needs; the limit keeps hostile input from exhausting the
/// stack of the recursive parser and evaluator.
pub(crate) const MAX_DEPTH: usize = 64;
/// Longest accepted expression, in characters.
pub(crate) const MAX_LEN: usize = 10_000;

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Expr {
    /// Where the expression starts (1-based character offset).
    pub pos: usize,
    pub kind: ExprKind,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ExprKind {
    Lit(Value),
    Path(String),
    Call { name: String, args: Vec<Expr> },
    Concat(Vec<Expr>),
}

pub(crate) fn parse(text: &str) -> Result<Expr, ExprError> {
    if text.trim().is_empty() {
        return Err(ExprError {
            pos: 1,
            message: "the expression is empty".into(),
        });
    }
    let len = text.chars().count();
    if len > MAX_LEN {
        return Err(ExprError {
            pos: MAX_LEN + 1,
            message: format!("the expression is longer than {MAX_LEN} characters"),
        });
    }
    let mut p = Parser {
        toks: tokenize(text)?,
        i: 0,
        depth: 0,
    };
    let expr = p.expression()?;
    let next = p.peek();
    let message = match next.tok {
        Tok::Eof => return Ok(expr),
        Tok::RParen => "unexpected `)`: there is no `(` for it to close".to_string(),
        Tok::Comma => {
            "unexpected `,`: commas separate the arguments of a function call".to_string()
        }
        ref other => format!("unexpected {}", other.describe()),
    };
    Err(ExprError {
        pos: next.pos,
        message,
    })
}

struct Parser {
    toks: Vec<Token>,
    i: usize,
    depth: usize,
}

impl Parser {
    fn peek(&self) -> &Token {
        &self.toks[self.i]
    }

    fn bump(&mut self) -> Token {
        let t = self.toks[self.i].clone();
        if self.i + 1 < self.toks.len() {
            self.i += 1;
        }
        t
    }

    fn starts_term(tok: &Tok) -> bool {
        matches!(
            tok,
            Tok::Ident(_)
                | Tok::Str(_)
                | Tok::Int(_)
                | Tok::Decimal(_)
                | Tok::Float(_)
                | Tok::LParen
        )
    }

    fn expression(&mut self) -> Result<Expr, ExprError> {
        let mut terms = Vec::new();
        while Self::starts_term(&self.peek().tok) {
            terms.push(self.term()?);
        }
        match terms.len() {
            0 => {
                let t = self.peek();
                Err(ExprError {
                    pos: t.pos,
                    message: format!("expected a value, found {}", t.tok.describe()),
                })
            }
            1 => Ok(terms.pop().expect("one term")),
            _ => Ok(Expr {
                pos: terms[0].pos,
                kind: ExprKind::Concat(terms),
            }),
        }
    }

    fn enter(&mut self, pos: usize) -> Result<(), ExprError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(ExprError {
                pos,
                message: format!("the expression nests more than {MAX_DEPTH} levels deep"),
            });
        }
        Ok(())
    }

    fn term(&mut self) -> Result<Expr, ExprError> {
        let Token { tok, pos } = self.bump();
        let kind = match tok {
            Tok::Str(s) => ExprKind::Lit(Value::String(s.into())),
            Tok::Int(n) => ExprKind::Lit(Value::Int(n)),
            Tok::Decimal(d) => ExprKind::Lit(Value::Decimal(d)),
            Tok::Float(f) => ExprKind::Lit(Value::Float(f)),
            Tok::Ident(name) if self.peek().tok == Tok::LParen => return self.call(name, pos),
            Tok::Ident(name) => match name.to_ascii_lowercase().as_str() {
                "true" => ExprKind::Lit(Value::Bool(true)),
                "false" => ExprKind::Lit(Value::Bool(false)),
                "null" => ExprKind::Lit(Value::Null),
                _ => ExprKind::Path(name),
            },
            Tok::LParen => {
                self.enter(pos)?;
                let inner = self.expression()?;
                let close = self.bump();
                if close.tok != Tok::RParen {
                    return Err(ExprError {
                        pos: close.pos,
                        message: format!(
                            "expected `)` to close the `(` at {pos}, found {}",
                            close.tok.describe()
                        ),
                    });
                }
                self.depth -= 1;
                return Ok(inner);
            }
            Tok::RParen | Tok::Comma | Tok::Eof => {
                unreachable!("expression() checks starts_term first")
            }
        };
        Ok(Expr { pos, kind })
    }

    fn call(&mut self, name: String, pos: usize) -> Result<Expr, ExprError> {
        self.enter(pos)?;
        self.bump(); // the `(`
        let mut args = Vec::new();
        if self.peek().tok == Tok::RParen {
            self.bump();
        } else {
            loop {
                if self.peek().tok == Tok::RParen && !args.is_empty() {
                    let t = self.peek();
                    return Err(ExprError {
                        pos: t.pos,
                        message: "expected an argument after `,`".into(),
                    });
                }
                args.push(self.expression()?);
                let t = self.bump();
                match t.tok {
                    Tok::Comma => continue,
                    Tok::RParen => break,
                    Tok::Eof => {
                        return Err(ExprError {
                            pos: t.pos,
                            message: format!(
                                "missing `)` to close the call of `{name}` opened at {pos}"
                            ),
                        })
                    }
                    other => {
                        return Err(ExprError {
                            pos: t.pos,
                            message: format!(
                            "expected `,` or `)` in the call of `{name}` opened at {pos}, found {}",
                            other.describe()
                        ),
                        })
                    }
                }
            }
        }
        self.depth -= 1;
        Ok(Expr {
            pos,
            kind: ExprKind::Call { name, args },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(pos: usize, p: &str) -> Expr {
        Expr {
            pos,
            kind: ExprKind::Path(p.into()),
        }
    }

    fn lit(pos: usize, v: Value) -> Expr {
        Expr {
            pos,
            kind: ExprKind::Lit(v),
        }
    }

    fn err(s: &str) -> String {
        parse(s).unwrap_err().to_string()
    }

    #[test]
    fn single_terms() {
        assert_eq!(parse("email").unwrap(), path(1, "email"));
        assert_eq!(parse("  address.city ").unwrap(), path(3, "address.city"));
        assert_eq!(parse("TRUE").unwrap(), lit(1, Value::Bool(true)));
        assert_eq!(parse("false").unwrap(), lit(1, Value::Bool(false)));
        assert_eq!(parse("Null").unwrap(), lit(1, Value::Null));
        assert_eq!(parse("'x'").unwrap(), lit(1, Value::String("x".into())));
        assert_eq!(parse("(email)").unwrap(), path(2, "email"));
    }

    #[test]
    fn juxtaposition_concatenates() {
        let e = parse(r#"first_name " " last_name"#).unwrap();
        assert_eq!(
            e,
            Expr {
                pos: 1,
                kind: ExprKind::Concat(vec![
                    path(1, "first_name"),
                    lit(12, Value::String(" ".into())),
                    path(16, "last_name")
                ])
            }
        );
    }

    #[test]
    fn calls_nest_and_take_concatenations() {
        let e = parse(r#"upper(trim(a) "-" b, 3)"#).unwrap();
        let ExprKind::Call { name, args } = e.kind else {
            panic!()
        };
        assert_eq!(name, "upper");
        assert_eq!(args.len(), 2);
        assert!(matches!(&args[0].kind, ExprKind::Concat(parts) if parts.len() == 3));
        assert_eq!(args[1], lit(22, Value::Int(3)));
        let e = parse("now()").unwrap();
        assert!(matches!(e.kind, ExprKind::Call { ref args, .. } if args.is_empty()));
        let e = parse("lower (email)").unwrap();
        assert!(matches!(e.kind, ExprKind::Call { .. }));
    }

    #[test]
    fn syntax_errors_have_positions() {
        assert_eq!(err(""), "at 1: the expression is empty");
        assert_eq!(err("   "), "at 1: the expression is empty");
        assert_eq!(
            err("lower(email"),
            "at 12: missing `)` to close the call of `lower` opened at 1"
        );
        assert_eq!(
            err("lower(email))"),
            "at 13: unexpected `)`: there is no `(` for it to close"
        );
        assert_eq!(
            err("a, b"),
            "at 2: unexpected `,`: commas separate the arguments of a function call"
        );
        assert_eq!(err("lower(a,)"), "at 9: expected an argument after `,`");
        assert_eq!(err("lower(,a)"), "at 7: expected a value, found `,`");
        assert_eq!(
            err("(a"),
            "at 3: expected `)` to close the `(` at 1, found the end of the expression"
        );
        assert_eq!(err("()"), "at 2: expected a value, found `)`");
    }

    #[test]
    fn nesting_is_bounded() {
        let deep = "lower(".repeat(MAX_DEPTH + 1) + "a" + &")".repeat(MAX_DEPTH + 1);
        assert!(err(&deep).contains("nests more than"));
        let ok = "lower(".repeat(MAX_DEPTH) + "a" + &")".repeat(MAX_DEPTH);
        assert!(parse(&ok).is_ok());
        let long = "a ".repeat(MAX_LEN);
        assert!(err(&long).contains("longer than"));
    }
}
