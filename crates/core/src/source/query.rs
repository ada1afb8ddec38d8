//! Whether a source's query is one statement, read by the lexical rules of the database it runs on.
//!
//! A `;` ends a statement only outside strings, quoted names and comments, and what those are differs
//! between databases: PostgreSQL has `E'\''` and dollar quotes and nests `/* */`; MySQL escapes with `\`
//! in strings, runs the text of `/*! … */`, takes `#` as a comment and `--` only before a space;
//! ClickHouse escapes with `\` in strings and names; Snowflake has `$$…$$` and `//`; SQLite has
//! `[names]`. A scanner that reads one database's query by another's rules sees a `;` inside a string
//! where the database sees two statements, so each database's rules are data ([`Lexical`]) and the
//! scanner follows them. Where Sluice cannot tell, the query is refused: an unclosed string or
//! comment, or a `)` that would close the subquery the query is read through. Sending one statement
//! per request (prepared statements) stays the second line of defence.

use crate::capabilities::{DollarQuotes, Lexical};

/// Checks that `query` is one `SELECT` (or `WITH … SELECT`) by the rules of `lexical`; a trailing `;`
/// is allowed (it is dropped before the query is read).
pub fn check_query(query: &str, lexical: &Lexical) -> Result<(), String> {
    check_query_shape(query)?;
    let body = query.trim().trim_end_matches(';').trim_end();
    Scanner {
        c: body.chars().collect(),
        lex: lexical,
    }
    .scan()
}

/// What can be said of a query without knowing its database: it starts as a `SELECT` or a `WITH`.
pub fn check_query_shape(query: &str) -> Result<(), String> {
    let first = query
        .trim()
        .split(|c: char| c.is_whitespace() || c == '(')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    if first != "select" && first != "with" {
        return Err("the query must be one SELECT (or WITH … SELECT)".into());
    }
    Ok(())
}

struct Scanner<'l> {
    c: Vec<char>,
    lex: &'l Lexical,
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '$'
}

impl Scanner<'_> {
    fn at(&self, i: usize, s: &str) -> bool {
        (i..)
            .zip(s.chars())
            .all(|(j, ch)| self.c.get(j) == Some(&ch))
    }

    fn scan(&self) -> Result<(), String> {
        let n = self.c.len();
        let mut i = 0;
        let mut depth = 0usize;
        // Inside MySQL's `/*! … */`, whose text is code.
        let mut executable = false;
        while i < n {
            if let Some(end) = self.line_comment(i) {
                i = end;
                continue;
            }
            if self.at(i, "/*") {
                if self.lex.executable_comments && (self.at(i + 2, "!") || self.at(i + 2, "M!")) {
                    executable = true;
                    i += if self.at(i + 2, "!") { 3 } else { 4 };
                    continue;
                }
                i = self.block_comment(i)?;
                continue;
            }
            if executable && self.at(i, "*/") {
                executable = false;
                i += 2;
                continue;
            }
            let ch = self.c[i];
            if self.lex.quotes.contains(&ch) {
                i = self.quoted(i)?;
                continue;
            }
            if ch == '[' && self.lex.bracket_names {
                match self.c[i + 1..].iter().position(|&c| c == ']') {
                    Some(k) => i += k + 2,
                    None => return Err("the query has an unclosed `[`".into()),
                }
                continue;
            }
            if ch == '$' {
                if let Some(end) = self.dollar_quoted(i)? {
                    i = end;
                    continue;
                }
            }
            match ch {
                '(' => depth += 1,
                ')' => {
                    depth = depth.checked_sub(1).ok_or(
                        "the query closes a parenthesis it did not open: it is read as a subquery",
                    )?;
                }
                ';' => return Err("the query must be one statement: remove the `;`".into()),
                _ => {}
            }
            i += 1;
        }
        if executable {
            return Err("the query has an unclosed comment".into());
        }
        if depth > 0 {
            return Err("the query has an unclosed parenthesis".into());
        }
        Ok(())
    }

    /// Where a line comment starting at `i` ends (after its line), if one starts there.
    fn line_comment(&self, i: usize) -> Option<usize> {
        let opener = self.lex.line_comments.iter().find(|o| self.at(i, o))?;
        let after = i + opener.chars().count();
        // MySQL: `--` is a comment only before a space or a control character (`1--1` is 1 - -1).
        if *opener == "--" && self.lex.dashes_need_space {
            match self.c.get(after) {
                None => {}
                Some(c) if c.is_whitespace() || c.is_control() => {}
                Some(_) => return None,
            }
        }
        let ends = |c: char| c == '\n' || (self.lex.line_ends_at_cr && c == '\r');
        Some(match self.c[after..].iter().position(|&c| ends(c)) {
            Some(k) => after + k + 1,
            None => self.c.len(),
        })
    }

    /// The end of the block comment at `i` (nested ones counted where the database nests them).
    fn block_comment(&self, i: usize) -> Result<usize, String> {
        let mut depth = 1;
        let mut j = i + 2;
        while j < self.c.len() {
            if self.lex.nested_comments && self.at(j, "/*") {
                depth += 1;
                j += 2;
            } else if self.at(j, "*/") {
                depth -= 1;
                j += 2;
                if depth == 0 {
                    return Ok(j);
                }
            } else {
                j += 1;
            }
        }
        Err("the query has an unclosed comment".into())
    }

    /// The end of the string or quoted name opening at `i`.
    fn quoted(&self, i: usize) -> Result<usize, String> {
        let q = self.c[i];
        // PostgreSQL's `E'…'` (a lone `e` before the quote, not the end of a longer name).
        let escape_string = self.lex.escape_strings
            && q == '\''
            && i >= 1
            && matches!(self.c[i - 1], 'e' | 'E')
            && (i < 2 || !is_ident(self.c[i - 2]));
        let backslash = escape_string || self.lex.backslash_quotes.contains(&q);
        let mut j = i + 1;
        while j < self.c.len() {
            let c = self.c[j];
            if backslash && c == '\\' {
                j += 2;
            } else if c == q {
                if self.c.get(j + 1) == Some(&q) {
                    j += 2;
                } else {
                    return Ok(j + 1);
                }
            } else {
                j += 1;
            }
        }
        Err("the query has an unclosed quote".into())
    }

    /// The end of the dollar-quoted string opening at `i`; `None` when `$` opens none there (a
    /// parameter `$1`, a `$` inside a name).
    fn dollar_quoted(&self, i: usize) -> Result<Option<usize>, String> {
        if self.lex.dollar_quotes == DollarQuotes::None || (i > 0 && is_ident(self.c[i - 1])) {
            return Ok(None);
        }
        let mut j = i + 1;
        if self.lex.dollar_quotes == DollarQuotes::Tagged {
            if self.c.get(j).is_some_and(|c| c.is_ascii_digit()) {
                return Ok(None);
            }
            while self
                .c
                .get(j)
                .is_some_and(|&c| c.is_alphanumeric() || c == '_')
            {
                j += 1;
            }
        }
        if self.c.get(j) != Some(&'$') {
            return Ok(None);
        }
        let delimiter: String = self.c[i..=j].iter().collect();
        let mut k = j + 1;
        while k < self.c.len() {
            if self.at(k, &delimiter) {
                return Ok(Some(k + delimiter.chars().count()));
            }
            k += 1;
        }
        Err(format!("the query has an unclosed `{delimiter}` string"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capabilities::lexical;

    const ALL: [(&str, Lexical); 5] = [
        ("postgresql", lexical::POSTGRES),
        ("mysql", lexical::MYSQL),
        ("clickhouse", lexical::CLICKHOUSE),
        ("snowflake", lexical::SNOWFLAKE),
        ("sqlite", lexical::SQLITE),
    ];

    fn ok(query: &str, lex: &Lexical) -> bool {
        check_query(query, lex).is_ok()
    }

    #[test]
    fn one_select_passes_everywhere() {
        for (name, lex) in ALL {
            for q in [
                "SELECT id, ';' AS semi FROM t;",
                "with x as (select 1) select * from x",
                "SELECT 1 -- a; comment\n FROM t",
                "SELECT 1 /* ; */ FROM t",
                "SELECT 'it''s' AS a, (1 + (2)) AS b",
            ] {
                assert!(ok(q, &lex), "{name}: {q}: {:?}", check_query(q, &lex));
            }
            for (q, why) in [
                ("SELECT 1; DROP TABLE t", "one statement"),
                ("DELETE FROM t", "SELECT"),
                ("SELECT 'open", "quote"),
                ("SELECT 1 /* open", "comment"),
                ("SELECT 1 FROM t) AS s, secret", "parenthesis"),
                ("SELECT (1", "parenthesis"),
            ] {
                let e = check_query(q, &lex).unwrap_err();
                assert!(e.contains(why), "{name}: {q}: {e}");
            }
        }
    }

    /// Each case hides a second statement from a scanner that reads the query by the wrong rules.
    #[test]
    fn each_database_is_read_by_its_own_rules() {
        let hidden = |lex: &Lexical, q: &str| {
            let e = check_query(q, lex).expect_err(q);
            assert!(e.contains("one statement"), "{q}: {e}");
        };
        // PostgreSQL: `E'\''` is one quote; dollar quotes; nested comments.
        hidden(&lexical::POSTGRES, r"SELECT E'\'' ; DROP TABLE t; --'");
        hidden(&lexical::POSTGRES, r"SELECT e'\\' ; DROP TABLE t");
        hidden(&lexical::POSTGRES, "SELECT $$ ' $$ ; DROP TABLE t; -- '");
        hidden(&lexical::POSTGRES, "SELECT $x$ ' $x$ ; DROP TABLE t; -- '");
        hidden(
            &lexical::POSTGRES,
            "SELECT 1 /* /* */ ' */ ; DROP TABLE t; -- '",
        );
        hidden(&lexical::POSTGRES, "SELECT 1 -- x\r; DROP TABLE t");
        // A standard string keeps its backslash: `'\'` is a whole string.
        hidden(&lexical::POSTGRES, r"SELECT '\' ; DROP TABLE t; -- '");
        assert!(ok(r"SELECT '\' AS backslash", &lexical::POSTGRES));
        assert!(ok("SELECT $1::text, a$b FROM t", &lexical::POSTGRES));
        assert!(ok("SELECT $tag$ ; ' $tag$ AS s", &lexical::POSTGRES));
        // MySQL: `--x` is no comment; `#` is; `\'` inside strings; `/*! */` runs.
        hidden(&lexical::MYSQL, "SELECT 1 --1; DROP TABLE t");
        hidden(&lexical::MYSQL, "SELECT 1 # ' \n ; DROP TABLE t; -- '");
        hidden(&lexical::MYSQL, r"SELECT '\'' ; DROP TABLE t; -- '");
        hidden(&lexical::MYSQL, r#"SELECT "\"" ; DROP TABLE t; -- ""#);
        hidden(&lexical::MYSQL, "SELECT 1 /*! ; DROP TABLE t */");
        hidden(&lexical::MYSQL, "SELECT 1 /*M!100000 ; DROP TABLE t */");
        assert!(ok("SELECT 1 -- x\n, 2 --\n FROM t", &lexical::MYSQL));
        assert!(!ok("SELECT $$ ; $$", &lexical::MYSQL));
        // ClickHouse: backslashes in strings and names.
        hidden(&lexical::CLICKHOUSE, r"SELECT '\'' ; DROP TABLE t; -- '");
        hidden(&lexical::CLICKHOUSE, r"SELECT `a\`` ; DROP TABLE t; -- `");
        // Snowflake: `$$…$$`, `//` comments, `\'` inside strings.
        hidden(&lexical::SNOWFLAKE, "SELECT $$ ' $$ ; DROP TABLE t; -- '");
        hidden(&lexical::SNOWFLAKE, "SELECT 1 // ' \n ; DROP TABLE t; -- '");
        hidden(&lexical::SNOWFLAKE, r"SELECT '\'' ; DROP TABLE t; -- '");
        // SQLite: `[names]`, no backslash escapes, flat comments.
        hidden(&lexical::SQLITE, "SELECT [a'] ; DROP TABLE t; -- '");
        hidden(&lexical::SQLITE, r"SELECT '\' ; DROP TABLE t; -- '");
        hidden(&lexical::SQLITE, "SELECT 1 /* /* */ ; DROP TABLE t; -- */");
    }
}
