//! What a destination database is, as data: how its identifiers are limited, quoted and matched, how it
//! upserts and deletes, how large its batches and statements may be, and what it reports back. Each
//! destination states one [`Capabilities`] value; the engine, the checks of a pipeline and the SQL
//! dialects read it instead of asking which database they talk to.
//!
//! Identifiers are validated and quoted here, once, by the rules of [`Identifiers`]; names as a user
//! writes them are matched to a table's stored names by its [`IdentifierCase`] (which a
//! [`crate::TableDescription`] carries, so that pure code can resolve names without knowing the
//! database — see [`crate::TableDescription::resolve_column`]).

use serde::Serialize;

/// The facts about one destination database that decide how Sluice writes to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// The database's name as messages give it (`MySQL`).
    pub name: &'static str,
    pub identifiers: Identifiers,
    pub upsert: UpsertStyle,
    pub deletes: Deletes,
    /// How many rows a run hands to one upsert unless the instance sets `SLUICE_BATCH_SIZE`: large enough
    /// that each batch's round trips and transaction stay small against its rows, small enough that a
    /// run's memory stays bounded (a run holds a few batches at once).
    pub batch_rows: usize,
    /// The most parameters one statement may bind; `None` when values never travel as parameters.
    pub max_bind_parameters: Option<usize>,
    /// The most rows one `INSERT … VALUES` list may hold, when the database limits it apart from the
    /// parameters.
    pub max_rows_per_insert: Option<usize>,
    /// Whether an upsert's counts tell inserts from updates. A database that writes new versions of rows
    /// without knowing whether the key was there answers false: every row counts as inserted, and the
    /// engine counts from its sync state.
    pub reports_upsert_counts: bool,
    /// Whether rows written by an upsert may stay unconfirmed until the destination is asked to confirm
    /// them: true where writes spanning several batches are much cheaper (ClickHouse makes a part, and
    /// later merges it, per insert).
    pub defers_confirmation: bool,
    /// Whether the database itself refuses a second row with a key already present. Where it does not
    /// (Snowflake records keys without enforcing them; ClickHouse replaces rows of a key only when it
    /// merges), Sluice keeps keys unique itself.
    pub enforces_keys: bool,
    /// How its SQL text splits into code, strings, quoted names and comments.
    pub lexical: Lexical,
}

/// How a database's SQL text splits into code, strings, quoted names and comments: what tells a `;`
/// that ends a statement from one inside a string (see [`crate::source::check_query`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lexical {
    /// Characters that open a string or a quoted name closed by the same character; inside, the
    /// character doubled stands for itself.
    pub quotes: &'static [char],
    /// Those of [`Self::quotes`] inside which `\` escapes the next character.
    pub backslash_quotes: &'static [char],
    /// PostgreSQL's `E'…'` strings, in which `\` escapes as it does nowhere else.
    pub escape_strings: bool,
    /// SQLite's `[name]`.
    pub bracket_names: bool,
    pub dollar_quotes: DollarQuotes,
    /// What starts a comment that runs to the end of the line.
    pub line_comments: &'static [&'static str],
    /// Whether a carriage return ends a line comment as a line feed does (PostgreSQL).
    pub line_ends_at_cr: bool,
    /// MySQL: `--` starts a comment only before a space or a control character.
    pub dashes_need_space: bool,
    /// `/* /* */ */` is one comment.
    pub nested_comments: bool,
    /// MySQL's `/*! … */` and MariaDB's `/*M! … */`, whose text runs as code.
    pub executable_comments: bool,
}

/// Which dollar-quoted strings a database has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DollarQuotes {
    None,
    /// `$$…$$` only (Snowflake).
    Plain,
    /// `$$…$$` and `$tag$…$tag$` (PostgreSQL, ClickHouse's heredocs).
    Tagged,
}

/// The [`Lexical`] rules of each database.
pub mod lexical {
    use super::{DollarQuotes, Lexical};

    pub const POSTGRES: Lexical = Lexical {
        quotes: &['\'', '"'],
        backslash_quotes: &[],
        escape_strings: true,
        bracket_names: false,
        dollar_quotes: DollarQuotes::Tagged,
        line_comments: &["--"],
        line_ends_at_cr: true,
        dashes_need_space: false,
        nested_comments: true,
        executable_comments: false,
    };

    /// MySQL and MariaDB (without `ANSI_QUOTES`, `"…"` is a string).
    pub const MYSQL: Lexical = Lexical {
        quotes: &['\'', '"', '`'],
        backslash_quotes: &['\'', '"'],
        escape_strings: false,
        bracket_names: false,
        dollar_quotes: DollarQuotes::None,
        line_comments: &["--", "#"],
        line_ends_at_cr: false,
        dashes_need_space: true,
        nested_comments: false,
        executable_comments: true,
    };

    /// Current ClickHouse nests comments and has heredocs; 18.16 has neither, and refuses what it
    /// cannot parse (it runs one statement per query).
    pub const CLICKHOUSE: Lexical = Lexical {
        quotes: &['\'', '"', '`'],
        backslash_quotes: &['\'', '"', '`'],
        escape_strings: false,
        bracket_names: false,
        dollar_quotes: DollarQuotes::Tagged,
        line_comments: &["--", "#"],
        line_ends_at_cr: false,
        dashes_need_space: false,
        nested_comments: true,
        executable_comments: false,
    };

    pub const SNOWFLAKE: Lexical = Lexical {
        quotes: &['\'', '"'],
        backslash_quotes: &['\''],
        escape_strings: false,
        bracket_names: false,
        dollar_quotes: DollarQuotes::Plain,
        line_comments: &["--", "//"],
        line_ends_at_cr: false,
        dashes_need_space: false,
        nested_comments: false,
        executable_comments: false,
    };

    pub const SQLITE: Lexical = Lexical {
        quotes: &['\'', '"', '`'],
        backslash_quotes: &[],
        escape_strings: false,
        bracket_names: true,
        dollar_quotes: DollarQuotes::None,
        line_comments: &["--"],
        line_ends_at_cr: false,
        dashes_need_space: false,
        nested_comments: false,
        executable_comments: false,
    };
}

/// How rows are upserted by key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UpsertStyle {
    /// `INSERT … ON CONFLICT (key) DO UPDATE` (PostgreSQL, SQLite).
    OnConflict,
    /// `INSERT … ON DUPLICATE KEY UPDATE`, which fires on any unique index (MySQL, MariaDB).
    OnDuplicateKey,
    /// One `MERGE` from a staging table.
    Merge,
    /// New versions of whole rows, of which the table keeps the latest per key (ClickHouse's
    /// `ReplacingMergeTree`).
    NewVersions,
}

/// How rows are deleted by key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Deletes {
    /// `DELETE … WHERE key IN (…)`, on any table.
    ByKey,
    /// Rows marked deleted by a new version, which only some tables accept: their description says why
    /// not ([`crate::TableRules::delete`]).
    Tombstones,
}

/// How a database spells, limits, quotes and matches identifiers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identifiers {
    /// The longest identifier, `None` when there is no practical limit.
    pub max_len: Option<usize>,
    /// What `max_len` counts.
    pub len_unit: LengthUnit,
    /// The character around a quoted identifier.
    pub quote: char,
    /// How that character is written inside a quoted identifier.
    pub escape: QuoteEscape,
    /// Whether an identifier may end with a space (MySQL refuses it even quoted).
    pub trailing_space: bool,
    pub case: IdentifierCase,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LengthUnit {
    Bytes,
    Characters,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuoteEscape {
    /// The quote character is doubled (`"a""b"`).
    Doubled,
    /// The quote character and the backslash are escaped with a backslash (`` `a\`b` ``).
    Backslash,
}

/// Which stored column a name written by a user means.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IdentifierCase {
    /// Only the column spelled exactly so: what a name means to the databases whose SQL Sluice writes with
    /// every identifier quoted.
    #[default]
    Exact,
    /// Snowflake's rule for names written as in its SQL: unquoted, a name matches whatever its case
    /// (Snowflake stores unquoted names upper-cased, so `customer_id` finds `CUSTOMER_ID`); in double
    /// quotes (`"MixedCase"`), it matches only the name spelled exactly so.
    UnquotedInsensitive,
}

/// What a written name resolved to among a table's stored names (indexes into them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    Found(usize),
    Missing,
    /// The name matches more than one column: the first two.
    Ambiguous(usize, usize),
}

impl IdentifierCase {
    pub fn is_exact(&self) -> bool {
        *self == IdentifierCase::Exact
    }

    /// Which of `stored` (a table's column names, as the database stores them) the name `written` means.
    pub fn resolve<'a>(
        self,
        written: &str,
        stored: impl IntoIterator<Item = &'a str>,
    ) -> Resolution {
        let quoted = match self {
            IdentifierCase::Exact => None,
            IdentifierCase::UnquotedInsensitive => unquote(written),
        };
        let matches = |name: &str| match (self, &quoted) {
            (IdentifierCase::Exact, _) => name == written,
            (IdentifierCase::UnquotedInsensitive, Some(inner)) => name == inner,
            (IdentifierCase::UnquotedInsensitive, None) => name.eq_ignore_ascii_case(written),
        };
        let mut found = None;
        for (i, name) in stored.into_iter().enumerate() {
            if matches(name) {
                match found {
                    None => found = Some(i),
                    Some(first) => return Resolution::Ambiguous(first, i),
                }
            }
        }
        found.map_or(Resolution::Missing, Resolution::Found)
    }
}

/// The name inside double quotes, with doubled quotes undone; `None` when `written` is not quoted.
fn unquote(written: &str) -> Option<String> {
    let inner = written.strip_prefix('"')?.strip_suffix('"')?;
    Some(inner.replace("\"\"", "\""))
}

impl Capabilities {
    /// Checks that `name` can be an identifier of this database once quoted; the message names `what`
    /// (`the table name`).
    pub fn validate_identifier(&self, name: &str, what: &str) -> Result<(), String> {
        let rules = &self.identifiers;
        if name.is_empty() {
            return Err(format!("{what} is empty"));
        }
        if let Some(max) = rules.max_len {
            let (too_long, unit) = match rules.len_unit {
                LengthUnit::Bytes => (name.len() > max, "bytes"),
                // The byte length bounds the character count, so short names never pay for counting.
                LengthUnit::Characters => {
                    (name.len() > max && name.chars().count() > max, "characters")
                }
            };
            if too_long {
                return Err(format!("{what} is longer than {max} {unit}"));
            }
        }
        if name.contains('\0') {
            return Err(format!("{what} contains a NUL character"));
        }
        if !rules.trailing_space && name.ends_with(' ') {
            return Err(format!(
                "{what} ends with a space, which {} does not allow",
                self.name
            ));
        }
        Ok(())
    }

    /// `name` quoted, so that it means exactly the name whatever it holds; the name must have passed
    /// [`Self::validate_identifier`].
    pub fn quote(&self, name: &str) -> String {
        let rules = &self.identifiers;
        let q = rules.quote;
        let mut out = String::with_capacity(name.len() + 2);
        out.push(q);
        for c in name.chars() {
            match rules.escape {
                QuoteEscape::Doubled if c == q => out.push(q),
                QuoteEscape::Backslash if c == q || c == '\\' => out.push('\\'),
                _ => {}
            }
            out.push(c);
        }
        out.push(q);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOUBLE: Identifiers = Identifiers {
        max_len: Some(63),
        len_unit: LengthUnit::Bytes,
        quote: '"',
        escape: QuoteEscape::Doubled,
        trailing_space: true,
        case: IdentifierCase::Exact,
    };

    fn caps(identifiers: Identifiers) -> Capabilities {
        Capabilities {
            name: "TestDB",
            identifiers,
            upsert: UpsertStyle::OnConflict,
            deletes: Deletes::ByKey,
            batch_rows: 10_000,
            max_bind_parameters: None,
            max_rows_per_insert: None,
            reports_upsert_counts: true,
            defers_confirmation: false,
            enforces_keys: true,
            lexical: lexical::POSTGRES,
        }
    }

    #[test]
    fn validates_by_the_rules() {
        let bytes = caps(DOUBLE);
        assert_eq!(
            bytes.validate_identifier("", "the table name"),
            Err("the table name is empty".into())
        );
        assert!(bytes.validate_identifier(&"x".repeat(63), "t").is_ok());
        assert_eq!(
            bytes.validate_identifier(&"x".repeat(64), "the table name"),
            Err("the table name is longer than 63 bytes".into())
        );
        // 32 two-byte characters are 64 bytes.
        assert!(bytes.validate_identifier(&"é".repeat(32), "t").is_err());
        assert_eq!(
            bytes.validate_identifier("a\0b", "a column name"),
            Err("a column name contains a NUL character".into())
        );
        assert!(bytes.validate_identifier("ends ", "t").is_ok());

        let chars = caps(Identifiers {
            max_len: Some(64),
            len_unit: LengthUnit::Characters,
            trailing_space: false,
            ..DOUBLE
        });
        assert!(chars.validate_identifier(&"é".repeat(64), "t").is_ok());
        assert_eq!(
            chars.validate_identifier(&"é".repeat(65), "t"),
            Err("t is longer than 64 characters".into())
        );
        assert_eq!(
            chars.validate_identifier("ends ", "t"),
            Err("t ends with a space, which TestDB does not allow".into())
        );

        let unlimited = caps(Identifiers {
            max_len: None,
            ..DOUBLE
        });
        assert!(unlimited
            .validate_identifier(&"x".repeat(10_000), "t")
            .is_ok());
    }

    #[test]
    fn quotes_by_the_rules() {
        assert_eq!(caps(DOUBLE).quote("we\"ird"), "\"we\"\"ird\"");
        assert_eq!(caps(DOUBLE).quote("a\\b"), "\"a\\b\"");
        let backtick = caps(Identifiers {
            quote: '`',
            ..DOUBLE
        });
        assert_eq!(backtick.quote("a`b"), "`a``b`");
        assert_eq!(backtick.quote("weird \"name\""), "`weird \"name\"`");
        let backslash = caps(Identifiers {
            quote: '`',
            escape: QuoteEscape::Backslash,
            ..DOUBLE
        });
        assert_eq!(backslash.quote("a`b"), "`a\\`b`");
        assert_eq!(backslash.quote("a\\b"), "`a\\\\b`");
    }

    #[test]
    fn resolves_exactly() {
        let names = ["id", "Email", "email"];
        let r = |w: &str| IdentifierCase::Exact.resolve(w, names);
        assert_eq!(r("email"), Resolution::Found(2));
        assert_eq!(r("Email"), Resolution::Found(1));
        assert_eq!(r("EMAIL"), Resolution::Missing);
        // Quotes are part of the name.
        assert_eq!(r("\"id\""), Resolution::Missing);
    }

    #[test]
    fn resolves_as_snowflake_sql_does() {
        let names = ["CUSTOMER_ID", "MixedCase", "EMAIL", "Email", "say \"hi\""];
        let r = |w: &str| IdentifierCase::UnquotedInsensitive.resolve(w, names);
        assert_eq!(r("customer_id"), Resolution::Found(0));
        assert_eq!(r("Customer_Id"), Resolution::Found(0));
        assert_eq!(r("CUSTOMER_ID"), Resolution::Found(0));
        assert_eq!(r("mixedcase"), Resolution::Found(1));
        assert_eq!(r("\"MixedCase\""), Resolution::Found(1));
        assert_eq!(r("\"mixedcase\""), Resolution::Missing);
        assert_eq!(r("\"MIXEDCASE\""), Resolution::Missing);
        assert_eq!(r("email"), Resolution::Ambiguous(2, 3));
        assert_eq!(r("\"EMAIL\""), Resolution::Found(2));
        assert_eq!(r("\"Email\""), Resolution::Found(3));
        assert_eq!(r("\"say \"\"hi\"\"\""), Resolution::Found(4));
        assert_eq!(r("phone"), Resolution::Missing);
        // A lone quote is not a quoted name.
        assert_eq!(r("\""), Resolution::Missing);
    }
}
