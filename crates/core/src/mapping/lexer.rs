//! Tokens of the expression language.
//!
//! Positions are 1-based *character* offsets (not bytes), because that is what a person counting along a
//! text field in the UI sees, including when the expression contains accented letters or emoji.

use std::str::FromStr;

use rust_decimal::Decimal;

use super::ExprError;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    /// A name or a dotted property path (`email`, `address.city`, `lower`).
    Ident(String),
    Str(String),
    Int(i64),
    Decimal(Decimal),
    Float(f64),
    LParen,
    RParen,
    Comma,
    Eof,
}

impl Tok {
    /// How the token reads in a message.
    pub(crate) fn describe(&self) -> String {
        match self {
            Tok::Ident(name) => format!("`{name}`"),
            Tok::Str(_) => "a string".into(),
            Tok::Int(_) | Tok::Decimal(_) | Tok::Float(_) => "a number".into(),
            Tok::LParen => "`(`".into(),
            Tok::RParen => "`)`".into(),
            Tok::Comma => "`,`".into(),
            Tok::Eof => "the end of the expression".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token {
    pub tok: Tok,
    pub pos: usize,
}

fn is_ident_start(c: char) -> bool {
    c.is_alphabetic() || c == '_'
}

fn is_ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

pub(crate) fn tokenize(text: &str) -> Result<Vec<Token>, ExprError> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    let err = |i: usize, message: String| {
        Err(ExprError {
            pos: i + 1,
            message,
        })
    };
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        match c {
            c if c.is_whitespace() => {
                i += 1;
                continue;
            }
            '(' => {
                tokens.push(Token {
                    tok: Tok::LParen,
                    pos: i + 1,
                });
                i += 1;
            }
            ')' => {
                tokens.push(Token {
                    tok: Tok::RParen,
                    pos: i + 1,
                });
                i += 1;
            }
            ',' => {
                tokens.push(Token {
                    tok: Tok::Comma,
                    pos: i + 1,
                });
                i += 1;
            }
            '"' | '\'' => {
                let (s, next) = string(&chars, i)?;
                tokens.push(Token {
                    tok: Tok::Str(s),
                    pos: start + 1,
                });
                i = next;
            }
            c if c.is_ascii_digit() => {
                let (tok, next) = number(&chars, i)?;
                tokens.push(Token {
                    tok,
                    pos: start + 1,
                });
                i = next;
            }
            '-' | '+' if chars.get(i + 1).is_some_and(char::is_ascii_digit) => {
                let (tok, next) = number(&chars, i + 1)?;
                let tok = if c == '-' {
                    match tok {
                        Tok::Int(n) => Tok::Int(-n),
                        Tok::Decimal(d) => Tok::Decimal(-d),
                        Tok::Float(f) => Tok::Float(-f),
                        other => other,
                    }
                } else {
                    tok
                };
                tokens.push(Token {
                    tok,
                    pos: start + 1,
                });
                i = next;
            }
            c if is_ident_start(c) => {
                let mut name = String::new();
                loop {
                    while i < chars.len() && is_ident_char(chars[i]) {
                        name.push(chars[i]);
                        i += 1;
                    }
                    if i < chars.len() && chars[i] == '.' {
                        if chars.get(i + 1).copied().is_some_and(is_ident_start) {
                            name.push('.');
                            i += 1;
                            continue;
                        }
                        return err(i, format!("expected a property name after `{name}.`"));
                    }
                    break;
                }
                tokens.push(Token {
                    tok: Tok::Ident(name),
                    pos: start + 1,
                });
            }
            other => return err(i, unexpected_char(other, chars.get(i + 1).copied())),
        }
    }
    tokens.push(Token {
        tok: Tok::Eof,
        pos: chars.len() + 1,
    });
    Ok(tokens)
}

/// The message for a character that starts no token; operators people reach for out of habit get a
/// pointer to the function that does the job.
fn unexpected_char(c: char, next: Option<char>) -> String {
    let hint = match (c, next) {
        ('+', _) | ('|', Some('|')) => {
            "; to concatenate, write the parts next to each other (first_name \" \" last_name); to add numbers, \
             use add(a, b)"
        }
        ('=', _) => "; to compare, use eq(a, b)",
        ('!', Some('=')) | ('<', Some('>')) => "; to compare, use ne(a, b)",
        ('<', _) => "; to compare, use lt(a, b) or le(a, b)",
        ('>', _) => "; to compare, use gt(a, b) or ge(a, b)",
        ('&', _) => "; use and(a, b)",
        ('|', _) => "; use or(a, b)",
        ('!', _) => "; use not(a)",
        ('-', _) => "; to subtract, use sub(a, b)",
        ('*', _) => "; to multiply, use mul(a, b)",
        ('/', _) => "; to divide, use div(a, b)",
        ('`', _) => "; strings are written in double or single quotes",
        ('.', _) => "; a property path is written without spaces around its dots (address.city)",
        _ => "",
    };
    format!("unexpected character `{c}`{hint}")
}

/// Reads a quoted string starting at `start` (the quote); returns its text and the index after it.
fn string(chars: &[char], start: usize) -> Result<(String, usize), ExprError> {
    let quote = chars[start];
    let mut out = String::new();
    let mut i = start + 1;
    while i < chars.len() {
        match chars[i] {
            c if c == quote => return Ok((out, i + 1)),
            '\\' => {
                let esc = i;
                i += 1;
                let Some(&e) = chars.get(i) else { break };
                match e {
                    '"' | '\'' | '\\' => out.push(e),
                    'n' => out.push('\n'),
                    't' => out.push('\t'),
                    'r' => out.push('\r'),
                    'u' => {
                        let (c, next) = unicode_escape(chars, esc)?;
                        out.push(c);
                        i = next;
                        continue;
                    }
                    other => {
                        return Err(ExprError {
                            pos: esc + 1,
                            message: format!(
                                "unknown escape `\\{other}` in a string: use \\\", \\', \\\\, \\n, \\t, \\r or \\u{{…}}"
                            ),
                        })
                    }
                }
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    Err(ExprError {
        pos: start + 1,
        message: format!("unterminated string: missing the closing {quote}"),
    })
}

/// Reads `\u{1F600}` whose backslash is at `esc`; returns the character and the index after `}`.
fn unicode_escape(chars: &[char], esc: usize) -> Result<(char, usize), ExprError> {
    let bad = || ExprError {
        pos: esc + 1,
        message:
            "invalid escape: write a Unicode character as \\u{…} with 1 to 6 hexadecimal digits"
                .into(),
    };
    if chars.get(esc + 2) != Some(&'{') {
        return Err(bad());
    }
    let mut i = esc + 3;
    let mut hex = String::new();
    while i < chars.len() && chars[i] != '}' && hex.len() <= 6 {
        hex.push(chars[i]);
        i += 1;
    }
    if chars.get(i) != Some(&'}') || hex.is_empty() || hex.len() > 6 {
        return Err(bad());
    }
    let code = u32::from_str_radix(&hex, 16).map_err(|_| bad())?;
    let c = char::from_u32(code).ok_or_else(|| ExprError {
        pos: esc + 1,
        message: format!("\\u{{{hex}}} is not a Unicode character"),
    })?;
    Ok((c, i + 1))
}

/// Reads a number whose first digit is at `start`: an integer, an exact decimal (`12.50`) or, with an
/// exponent, a float (`1.5e3`).
fn number(chars: &[char], start: usize) -> Result<(Tok, usize), ExprError> {
    // A sign before the digits belongs to the literal, so the text (and the error position) starts there.
    let sign_start = if start > 0 && matches!(chars[start - 1], '-' | '+') {
        start - 1
    } else {
        start
    };
    let mut i = start;
    let digits = |i: &mut usize| {
        while *i < chars.len() && chars[*i].is_ascii_digit() {
            *i += 1;
        }
    };
    digits(&mut i);
    let mut is_decimal = false;
    let mut is_float = false;
    if i < chars.len() && chars[i] == '.' {
        if !chars.get(i + 1).is_some_and(char::is_ascii_digit) {
            return Err(ExprError {
                pos: i + 1,
                message: "expected digits after the decimal point".into(),
            });
        }
        is_decimal = true;
        i += 1;
        digits(&mut i);
    }
    if i < chars.len() && matches!(chars[i], 'e' | 'E') {
        let mut j = i + 1;
        if j < chars.len() && matches!(chars[j], '+' | '-') {
            j += 1;
        }
        if chars.get(j).is_some_and(char::is_ascii_digit) {
            is_float = true;
            i = j;
            digits(&mut i);
        }
    }
    if i < chars.len() && (is_ident_char(chars[i]) || chars[i] == '.') {
        let mut end = i;
        while end < chars.len() && (is_ident_char(chars[end]) || chars[end] == '.') {
            end += 1;
        }
        let text: String = chars[sign_start..end].iter().collect();
        return Err(ExprError {
            pos: sign_start + 1,
            message: format!("invalid number `{text}` (a property name cannot start with a digit)"),
        });
    }
    let text: String = chars[sign_start..i].iter().collect();
    let digits_only = text.trim_start_matches(['+', '-']);
    let out_of_range = |what: &str| ExprError {
        pos: sign_start + 1,
        message: format!("{what} `{text}` is out of range"),
    };
    let tok = if is_float {
        match text.parse::<f64>() {
            Ok(f) if f.is_finite() => Tok::Float(f),
            _ => return Err(out_of_range("number")),
        }
    } else if is_decimal {
        let d = Decimal::from_str(digits_only).map_err(|_| out_of_range("decimal"))?;
        Tok::Decimal(d)
    } else {
        // Parsed without the sign and negated by the caller: i64::MIN is the one value this cannot spell,
        // which nobody needs in a mapping.
        Tok::Int(
            digits_only
                .parse::<i64>()
                .map_err(|_| out_of_range("integer"))?,
        )
    };
    Ok((tok, i))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<Tok> {
        tokenize(s).unwrap().into_iter().map(|t| t.tok).collect()
    }

    fn error(s: &str) -> String {
        tokenize(s).unwrap_err().to_string()
    }

    #[test]
    fn names_paths_and_punctuation() {
        assert_eq!(
            toks("lower(address.city, _id)"),
            vec![
                Tok::Ident("lower".into()),
                Tok::LParen,
                Tok::Ident("address.city".into()),
                Tok::Comma,
                Tok::Ident("_id".into()),
                Tok::RParen,
                Tok::Eof
            ]
        );
        assert_eq!(toks("città"), vec![Tok::Ident("città".into()), Tok::Eof]);
    }

    #[test]
    fn numbers() {
        assert_eq!(toks("12"), vec![Tok::Int(12), Tok::Eof]);
        assert_eq!(toks("-7"), vec![Tok::Int(-7), Tok::Eof]);
        let Tok::Decimal(d) = &toks("12.50")[0] else {
            panic!()
        };
        assert_eq!(d.to_string(), "12.50");
        let Tok::Decimal(d) = &toks("-0.5")[0] else {
            panic!()
        };
        assert_eq!(d.to_string(), "-0.5");
        assert_eq!(toks("1.5e3"), vec![Tok::Float(1500.0), Tok::Eof]);
        assert_eq!(toks("2E-1"), vec![Tok::Float(0.2), Tok::Eof]);
        assert_eq!(toks("+3"), vec![Tok::Int(3), Tok::Eof]);
    }

    #[test]
    fn bad_numbers_have_positions() {
        assert_eq!(
            error("a 12abc"),
            "at 3: invalid number `12abc` (a property name cannot start with a digit)"
        );
        assert_eq!(
            error("12."),
            "at 3: expected digits after the decimal point"
        );
        assert_eq!(
            error("99999999999999999999"),
            "at 1: integer `99999999999999999999` is out of range"
        );
        assert!(error("1e999").starts_with("at 1: number"));
    }

    #[test]
    fn strings_and_escapes() {
        assert_eq!(
            toks(r#""a\"b\\c\nd\te""#),
            vec![Tok::Str("a\"b\\c\nd\te".into()), Tok::Eof]
        );
        assert_eq!(toks(r"'it\'s'"), vec![Tok::Str("it's".into()), Tok::Eof]);
        assert_eq!(
            toks(r#"'say "hi"'"#),
            vec![Tok::Str("say \"hi\"".into()), Tok::Eof]
        );
        assert_eq!(
            toks(r#""\u{e9}\u{1F600}""#),
            vec![Tok::Str("é😀".into()), Tok::Eof]
        );
        assert_eq!(toks(r#""""#), vec![Tok::Str(String::new()), Tok::Eof]);
    }

    #[test]
    fn string_errors() {
        assert_eq!(
            error(r#"a "abc"#),
            "at 3: unterminated string: missing the closing \""
        );
        assert!(error(r#""a\qb""#).starts_with("at 3: unknown escape `\\q`"));
        assert!(
            error(r#""\u{110000}""#).starts_with("at 2: \\u{110000} is not a Unicode character")
        );
        assert!(error(r#""\u0041""#).starts_with("at 2: invalid escape"));
        assert!(error(r#""\u{}""#).starts_with("at 2: invalid escape"));
    }

    #[test]
    fn positions_count_characters_not_bytes() {
        let t = tokenize("\"été\" 😀x").unwrap_err();
        assert_eq!(t.pos, 7);
        let t = tokenize("\"été\" nom").unwrap();
        assert_eq!(t[1].pos, 7);
    }

    #[test]
    fn operators_get_hints() {
        assert!(error("a + b").contains("write the parts next to each other"));
        assert!(error("a || b").contains("write the parts next to each other"));
        assert!(error("a = b").contains("eq(a, b)"));
        assert!(error("a != b").contains("ne(a, b)"));
        assert!(error("a.").contains("expected a property name after `a.`"));
    }
}
