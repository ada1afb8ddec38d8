//! SQL pushdown for the profile stores (SQLite and PostgreSQL).
//!
//! Each condition becomes an expression that is never NULL: a comparison reads the stored value through
//! a type guard that yields NULL for absent, null or mistyped values, and the result is wrapped in
//! `COALESCE(…, FALSE)`. Negations are then a plain `NOT`, which keeps them the exact complement of
//! their positive form, as in the Rust evaluator.

use std::fmt::Write as _;

use super::{
    Cmp, Group, Kind, Logical, Node, Scalar, SqlDialect, SqlParam, Target, Test, SQLITE_FN_DEC_CMP,
    SQLITE_FN_TS,
};
use crate::schema;

/// Decimal text that PostgreSQL's `numeric` input accepts and `rust_decimal` parses alike; anything
/// else is treated as not a number instead of making the cast fail the whole query.
const PG_DECIMAL_TEXT: &str = r"^\s*[-+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+)?\s*$";
/// A normalized datetime, capturing it without its `Z` and with at most six fractional digits:
/// PostgreSQL would round extra digits where Rust and SQLite truncate to microseconds. Year 0, which
/// PostgreSQL rejects, does not match.
const PG_DATETIME_TEXT: &str =
    r"^(?!0000)([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?)[0-9]*Z$";

pub(super) fn render(
    root: &Group,
    dialect: SqlDialect,
    first_param: usize,
) -> (String, Vec<SqlParam>) {
    let mut w = Writer {
        dialect,
        first_param,
        params: Vec::new(),
    };
    let sql = w.group(root);
    (sql, w.params)
}

struct Writer {
    dialect: SqlDialect,
    first_param: usize,
    params: Vec<SqlParam>,
}

/// Where a comparison reads its value.
enum Operand<'a> {
    Id,
    UpdatedAt,
    /// A document path, as the SQL of its bound path parameter.
    Doc(&'a str),
    /// The current element of a `contains` subquery.
    Element,
}

impl Writer {
    fn group(&mut self, group: &Group) -> String {
        if group.nodes.is_empty() {
            return "TRUE".into();
        }
        let joiner = match group.logical {
            Logical::And => " AND ",
            Logical::Or => " OR ",
        };
        let parts: Vec<String> = group
            .nodes
            .iter()
            .map(|node| match node {
                Node::Group(g) => self.group(g),
                Node::Condition(c) => {
                    let positive = self.test(&c.test, &c.target);
                    if c.negated {
                        format!("(NOT {positive})")
                    } else {
                        positive
                    }
                }
            })
            .collect();
        format!("({})", parts.join(joiner))
    }

    /// The placeholder of a parameter, reusing the number of an equal one. PostgreSQL placeholders are
    /// cast to their parameter's own type so that the server infers it and a driver can bind the plain
    /// Rust value.
    fn param(&mut self, param: SqlParam) -> String {
        let index = match self.params.iter().position(|p| *p == param) {
            Some(i) => i,
            None => {
                self.params.push(param);
                self.params.len() - 1
            }
        };
        let n = self.first_param + index;
        match self.dialect {
            SqlDialect::Sqlite => format!("?{n}"),
            SqlDialect::Postgres => {
                let ty = match &self.params[index] {
                    SqlParam::Null | SqlParam::Text(_) => "text",
                    SqlParam::Bool(_) => "bool",
                    SqlParam::Int(_) => "int8",
                    SqlParam::Float(_) => "float8",
                };
                format!("${n}::{ty}")
            }
        }
    }

    /// A filter value as an SQL expression of the type its kind compares as.
    fn value(&mut self, value: &Scalar) -> String {
        match (self.dialect, value) {
            (_, Scalar::Text(s)) => self.param(SqlParam::Text(s.to_string())),
            (_, Scalar::Bool(b)) => self.param(SqlParam::Bool(*b)),
            (_, Scalar::Int(i)) => self.param(SqlParam::Int(*i)),
            (_, Scalar::Float(f)) => self.param(SqlParam::Float(*f)),
            (SqlDialect::Sqlite, Scalar::Decimal(d)) => self.param(SqlParam::Text(d.to_string())),
            (SqlDialect::Postgres, Scalar::Decimal(d)) => {
                format!("{}::numeric", self.param(SqlParam::Text(d.to_string())))
            }
            (SqlDialect::Sqlite, Scalar::DateTime(micros)) => self.param(SqlParam::Int(*micros)),
            (SqlDialect::Postgres, Scalar::DateTime(micros)) => {
                let text = chrono::DateTime::from_timestamp_micros(*micros)
                    .map(|dt| schema::format_datetime(&dt))
                    .unwrap_or_default();
                format!("{}::timestamptz", self.param(SqlParam::Text(text)))
            }
        }
    }

    /// The bound parameter holding a document path, in the dialect's path syntax.
    fn path(&mut self, segments: &[Box<str>]) -> String {
        match self.dialect {
            SqlDialect::Sqlite => {
                // Property names are letters, digits and `_` (checked by the Customer Model), so a quoted
                // label cannot be broken out of; quoting keeps non-ASCII letters unambiguous.
                let mut path = String::from("$");
                for s in segments {
                    let _ = write!(path, ".\"{s}\"");
                }
                self.param(SqlParam::Text(path))
            }
            SqlDialect::Postgres => {
                let mut array = String::from("{");
                for (i, s) in segments.iter().enumerate() {
                    if i > 0 {
                        array.push(',');
                    }
                    array.push('"');
                    for c in s.chars() {
                        if c == '"' || c == '\\' {
                            array.push('\\');
                        }
                        array.push(c);
                    }
                    array.push('"');
                }
                array.push('}');
                format!("{}::text[]", self.param(SqlParam::Text(array)))
            }
        }
    }

    fn test(&mut self, test: &Test, target: &Target) -> String {
        let path;
        let operand = match target {
            Target::Id => Operand::Id,
            Target::UpdatedAt => Operand::UpdatedAt,
            Target::Doc(segments) => {
                path = self.path(segments);
                Operand::Doc(&path)
            }
        };
        match test {
            Test::IsNull | Test::Exists | Test::IsEmpty => self.presence(test, &operand),
            Test::Compare { kind, cmp, value } => {
                let e = self.compare(*kind, &operand, *cmp, value);
                self.not_null(e, &operand)
            }
            Test::Between { kind, lo, hi } => {
                let lower = self.compare(*kind, &operand, Cmp::Ge, lo);
                let upper = self.compare(*kind, &operand, Cmp::Le, hi);
                self.not_null(format!("({lower} AND {upper})"), &operand)
            }
            Test::OneOf { kind, values, .. } => {
                let e = self.one_of(*kind, &operand, values);
                self.not_null(e, &operand)
            }
            Test::Substring(needle) => {
                let r = self.read(Kind::Text, &operand);
                let p = self.param(SqlParam::Text(needle.to_string()));
                let e = match self.dialect {
                    SqlDialect::Sqlite => format!("instr({r}, {p}) > 0"),
                    SqlDialect::Postgres => format!("strpos({r}, {p}) > 0"),
                };
                self.not_null(e, &operand)
            }
            Test::Prefix(prefix) => {
                let r = self.read(Kind::Text, &operand);
                let p = self.param(SqlParam::Text(prefix.to_string()));
                let e = match self.dialect {
                    SqlDialect::Sqlite => format!("substr({r}, 1, length({p})) = {p}"),
                    SqlDialect::Postgres => format!("starts_with({r}, {p})"),
                };
                self.not_null(e, &operand)
            }
            Test::Suffix(suffix) => {
                let r = self.read(Kind::Text, &operand);
                let p = self.param(SqlParam::Text(suffix.to_string()));
                // Suffixes are never empty (the parser refuses them), so `-length` is a real offset.
                let e = match self.dialect {
                    SqlDialect::Sqlite => format!("substr({r}, -length({p})) = {p}"),
                    SqlDialect::Postgres => format!("right({r}, length({p})) = {p}"),
                };
                self.not_null(e, &operand)
            }
            Test::Contains { kind, value } => {
                let Operand::Doc(path) = operand else {
                    return "FALSE".into();
                };
                let element = self.compare(*kind, &Operand::Element, Cmp::Eq, value);
                // The type guard comes first in a CASE: set-returning functions over a non-array either
                // iterate something else (SQLite walks objects and scalars) or fail (PostgreSQL).
                match self.dialect {
                    SqlDialect::Sqlite => format!(
                        "(CASE WHEN json_type(doc, {path}) = 'array' THEN EXISTS (SELECT 1 FROM \
                         json_each(doc, {path}) AS sluice_e WHERE {element}) ELSE FALSE END)"
                    ),
                    SqlDialect::Postgres => format!(
                        "(CASE WHEN jsonb_typeof(doc #> {path}) = 'array' THEN EXISTS (SELECT 1 FROM \
                         jsonb_array_elements(doc #> {path}) AS sluice_e(v) WHERE {element}) ELSE FALSE END)"
                    ),
                }
            }
        }
    }

    /// Wraps a possibly-NULL comparison so that it is TRUE or FALSE. The `id` and `updated_at` columns are
    /// NOT NULL, and leaving their comparisons bare lets the databases use indexes on them.
    fn not_null(&self, expr: String, operand: &Operand<'_>) -> String {
        match operand {
            Operand::Id | Operand::UpdatedAt => format!("({expr})"),
            Operand::Doc(_) | Operand::Element => format!("COALESCE({expr}, FALSE)"),
        }
    }

    fn presence(&mut self, test: &Test, operand: &Operand<'_>) -> String {
        let path = match operand {
            Operand::Id => {
                return match test {
                    Test::IsEmpty => "(id = '')".into(),
                    Test::Exists => "TRUE".into(),
                    _ => "FALSE".into(),
                }
            }
            Operand::UpdatedAt => {
                return if matches!(test, Test::Exists) {
                    "TRUE"
                } else {
                    "FALSE"
                }
                .into()
            }
            Operand::Doc(path) => *path,
            Operand::Element => unreachable!("presence is never tested on array elements"),
        };
        match (self.dialect, test) {
            (SqlDialect::Sqlite, Test::IsNull) => {
                format!("(COALESCE(json_type(doc, {path}), 'null') = 'null')")
            }
            (SqlDialect::Sqlite, Test::Exists) => format!("(json_type(doc, {path}) IS NOT NULL)"),
            (SqlDialect::Sqlite, _) => format!(
                "(CASE COALESCE(json_type(doc, {path}), 'null') WHEN 'null' THEN TRUE \
                 WHEN 'text' THEN json_extract(doc, {path}) = '' \
                 WHEN 'array' THEN json_array_length(doc, {path}) = 0 \
                 WHEN 'object' THEN json_extract(doc, {path}) = '{{}}' ELSE FALSE END)"
            ),
            (SqlDialect::Postgres, Test::IsNull) => {
                format!("((doc #> {path}) IS NULL OR (doc #> {path}) = 'null'::jsonb)")
            }
            (SqlDialect::Postgres, Test::Exists) => format!("((doc #> {path}) IS NOT NULL)"),
            (SqlDialect::Postgres, _) => format!(
                "((doc #> {path}) IS NULL OR (doc #> {path}) IN \
                 ('null'::jsonb, '\"\"'::jsonb, '[]'::jsonb, '{{}}'::jsonb))"
            ),
        }
    }

    /// `read <cmp> value`, NULL when the stored value is absent, null or of another type.
    fn compare(&mut self, kind: Kind, operand: &Operand<'_>, cmp: Cmp, value: &Scalar) -> String {
        let op = match cmp {
            Cmp::Eq => "=",
            Cmp::Lt => "<",
            Cmp::Le => "<=",
            Cmp::Gt => ">",
            Cmp::Ge => ">=",
        };
        if let (SqlDialect::Sqlite, Kind::Decimal) = (self.dialect, kind) {
            let v = self.value(value);
            return format!("{} {op} 0", self.sqlite_dec_cmp(operand, &v));
        }
        let r = self.read(kind, operand);
        let v = self.value(value);
        // Text ordering must be by code point, as in Rust and SQLite, not by the database's collation.
        let collate =
            if self.dialect == SqlDialect::Postgres && kind == Kind::Text && cmp != Cmp::Eq {
                " COLLATE \"C\""
            } else {
                ""
            };
        format!("{r}{collate} {op} {v}")
    }

    fn one_of(&mut self, kind: Kind, operand: &Operand<'_>, values: &[Scalar]) -> String {
        if let (SqlDialect::Sqlite, Kind::Decimal) = (self.dialect, kind) {
            let parts: Vec<String> = values
                .iter()
                .map(|value| {
                    let v = self.value(value);
                    format!("{} = 0", self.sqlite_dec_cmp(operand, &v))
                })
                .collect();
            return format!("({})", parts.join(" OR "));
        }
        let r = self.read(kind, operand);
        let list: Vec<String> = values.iter().map(|value| self.value(value)).collect();
        format!("{r} IN ({})", list.join(", "))
    }

    /// `sluice_dec_cmp(stored, value)`, called only on TEXT (decimal strings, and integers as text).
    fn sqlite_dec_cmp(&self, operand: &Operand<'_>, value: &str) -> String {
        let (t, v) = sqlite_type_and_value(operand);
        format!("(CASE WHEN {t} IN ('text', 'integer') THEN {SQLITE_FN_DEC_CMP}(CAST({v} AS TEXT), {value}) END)")
    }

    /// The stored value as an SQL value of the kind's comparable type, or NULL.
    fn read(&mut self, kind: Kind, operand: &Operand<'_>) -> String {
        match operand {
            Operand::Id => return "id".into(),
            Operand::UpdatedAt => return "updated_at".into(),
            Operand::Doc(_) | Operand::Element => {}
        }
        match self.dialect {
            SqlDialect::Sqlite => {
                let (t, v) = sqlite_type_and_value(operand);
                match kind {
                    Kind::Text => format!("(CASE WHEN {t} = 'text' THEN {v} END)"),
                    Kind::Bool => {
                        format!("(CASE {t} WHEN 'true' THEN TRUE WHEN 'false' THEN FALSE END)")
                    }
                    Kind::Int | Kind::Float => {
                        format!("(CASE WHEN {t} IN ('integer', 'real') THEN {v} END)")
                    }
                    Kind::DateTime => {
                        format!("(CASE WHEN {t} = 'text' THEN {SQLITE_FN_TS}({v}) END)")
                    }
                    Kind::Decimal => {
                        unreachable!("SQLite decimals compare through {SQLITE_FN_DEC_CMP}")
                    }
                }
            }
            SqlDialect::Postgres => {
                let j = match operand {
                    Operand::Doc(path) => format!("(doc #> {path})"),
                    _ => "sluice_e.v".to_string(),
                };
                match kind {
                    Kind::Text => format!("(CASE WHEN jsonb_typeof({j}) = 'string' THEN {j} #>> '{{}}' END)"),
                    Kind::Bool => format!("(CASE WHEN jsonb_typeof({j}) = 'boolean' THEN {j}::boolean END)"),
                    Kind::Int => format!("(CASE WHEN jsonb_typeof({j}) = 'number' THEN {j}::numeric END)"),
                    Kind::Float => format!("(CASE WHEN jsonb_typeof({j}) = 'number' THEN {j}::float8 END)"),
                    Kind::Decimal => format!(
                        "(CASE WHEN jsonb_typeof({j}) = 'string' AND ({j} #>> '{{}}') ~ '{PG_DECIMAL_TEXT}' \
                         THEN ({j} #>> '{{}}')::numeric \
                         WHEN jsonb_typeof({j}) = 'number' AND ({j} #>> '{{}}') ~ '^-?[0-9]+$' \
                         THEN {j}::numeric END)"
                    ),
                    Kind::DateTime => format!(
                        "(CASE WHEN jsonb_typeof({j}) = 'string' \
                         THEN (substring({j} #>> '{{}}' from '{PG_DATETIME_TEXT}') || 'Z')::timestamptz END)"
                    ),
                }
            }
        }
    }
}

/// SQLite's JSON type name and SQL value of a document path or array element.
fn sqlite_type_and_value(operand: &Operand<'_>) -> (String, String) {
    match operand {
        Operand::Doc(path) => (
            format!("json_type(doc, {path})"),
            format!("json_extract(doc, {path})"),
        ),
        _ => ("sluice_e.type".into(), "sluice_e.value".into()),
    }
}
