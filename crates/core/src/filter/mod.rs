//! Audience filters: parse and type-check against the Customer Model, evaluate in memory, push down to SQL.
//!
//! A pipeline picks its audience with a filter (see the API's `filter`): a group
//! `{"logical": "and" | "or", "conditions": [...]}` whose conditions are groups (to any depth) or
//! conditions `{"property": "address.city", "operator": "is one of", "values": ["Rome", "Milan"]}`.
//! A `null` filter, handled by the callers, means every profile. An empty group imposes no condition: it
//! matches every profile whatever its `logical`.
//!
//! [`Filter::parse`] checks everything at once and names each problem by its path inside the filter
//! (`conditions[0].conditions[2].operator`, `conditions[3].values[1]`). After that the filter cannot be
//! wrong: values are normalized with [`crate::schema::normalize_scalar`] and pre-parsed, so
//! [`Filter::matches`] does no parsing of the filter and allocates nothing per profile, and
//! [`Filter::to_sql`] selects exactly the profiles [`Filter::matches`] does (a property test checks that
//! against SQLite and PostgreSQL).
//!
//! # Operators by property type
//!
//! - `string` (and `_id`): is, is not, is one of, is not one of, contains, does not contain (substring),
//!   starts with, ends with;
//! - `boolean`: is true, is false, is, is not;
//! - `int`, `float`, `decimal(p,s)`: is, is not, is less than, is less than or equal to, is greater
//!   than, is greater than or equal to, is between, is not between, is one of, is not one of;
//! - `datetime` (and `_updated_at`), `date`, `time`: is, is not, is before, is on or before, is after,
//!   is on or after, is between, is not between, is one of, is not one of;
//! - `uuid`: is, is not, is one of, is not one of;
//! - `array(T)` with `T` a scalar type: contains, does not contain (an element equal to the value,
//!   compared as `T` is);
//! - `json`, `object`, arrays of those and nested arrays: no value operators.
//!
//! Every type also takes the presence operators: is empty, is not empty, is null, is not null, exists,
//! does not exist. Ordering is numeric for numbers (exact for decimals) and chronological for dates, times
//! and datetimes, which are told apart from numbers on purpose (`is before`, not `is less than`); strings
//! and UUIDs have no ordering operators because databases disagree on collations.
//!
//! # Values
//!
//! Presence operators and `is true` / `is false` take no values (omit `values` or send `[]`);
//! `is between` / `is not between` take two, the lower bound first, both inclusive; `is one of` /
//! `is not one of` take 1 to 1000; every other operator takes one. Each value is normalized to the
//! property's type (for `contains` on `array(T)`, to `T`) exactly as profile properties are, so `"42"` is
//! a fine `int` and `"2024-05-13"` a `date`, but a `decimal(12,2)` value cannot have three fractional
//! digits. `null` is never a value: use `is null`. `contains`, `starts with` and `ends with` on strings
//! need a non-empty value. String comparisons are case-sensitive and exact (bytes, no collation).
//! Datetimes compare at microsecond precision (what PostgreSQL stores); dates, times and UUIDs compare
//! as their normalized text, which orders them correctly.
//!
//! # Null and absent properties
//!
//! A property is *absent* when its key is missing (or an object on its path is missing or null).
//! - A comparison (is, is less than, is between, is one of, contains, starts with, is before, is true,
//!   ...) is false on an absent or null property, and on a stored value of the wrong type.
//! - Each negation — is not, is not between, does not contain, is not one of, is not empty, is not null,
//!   does not exist — is exactly the opposite of its positive form, so it is true on absent and null
//!   properties: `country is not IT` keeps the profiles with no country. A condition and its negation
//!   always split the audience in two.
//! - `is less than` and `is greater than or equal to` are not negations of each other: both are false
//!   on null. Likewise `is false` is not the negation of `is true`.
//! - `is null`: absent or null. `exists`: the key is present, even with a null value. `is empty`: absent,
//!   null, `""`, `[]` or `{}`.
//! - `_id` and `_updated_at` always exist and are never null.
//!
//! # SQL
//!
//! [`Filter::to_sql`] renders one boolean expression over the profile table (`id`, `updated_at`, `doc`).
//! Values and property paths are bound parameters, never SQL text. Every condition renders to an
//! expression that is TRUE or FALSE, never NULL, so that `NOT` inverts it exactly as [`Filter::matches`]
//! does. Stored values are type-checked before they are cast (`json_type`, `jsonb_typeof`, regular
//! expressions for decimal and datetime text), so data of an unexpected type is a non-match, not a
//! query error. Values that are not in the normalized form (see [`crate::schema`]) are matched on a
//! best-effort basis only: the engines may disagree on them.

mod eval;
mod ops;
mod parse;
mod sql;
#[cfg(test)]
mod tests;

use std::fmt::Write as _;

use rust_decimal::Decimal;
use serde_json::{Map, Value as Json};

use crate::errors::FieldErrors;
use crate::schema::Schema;
use crate::Profile;

pub use ops::{Arity, Operator, MAX_VALUES};

/// SQL dialects of the profile stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqlDialect {
    Sqlite,
    Postgres,
}

/// A bound parameter of pushed-down SQL.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlParam {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
}

/// Name of the SQLite scalar function `sluice_ts(text) -> integer` (microseconds since the epoch of an
/// RFC 3339 datetime, NULL when it does not parse) that SQLite profile stores register on each connection.
/// Filters only ever call it with a TEXT argument.
pub const SQLITE_FN_TS: &str = "sluice_ts";
/// Name of the SQLite scalar function `sluice_dec_cmp(a text, b text) -> integer` (-1, 0, 1 comparing two
/// decimal numbers exactly; NULL when either does not parse). Filters only ever call it with TEXT
/// arguments.
pub const SQLITE_FN_DEC_CMP: &str = "sluice_dec_cmp";

/// The pure implementation of [`SQLITE_FN_TS`].
pub fn sqlite_ts(text: &str) -> Option<i64> {
    crate::schema::parse_datetime(text)
        .ok()
        .map(|d| d.timestamp_micros())
}

/// The pure implementation of [`SQLITE_FN_DEC_CMP`].
pub fn sqlite_dec_cmp(a: &str, b: &str) -> Option<i32> {
    let a: rust_decimal::Decimal = a.trim().parse().ok()?;
    let b: rust_decimal::Decimal = b.trim().parse().ok()?;
    Some(a.cmp(&b) as i32)
}

/// A filter validated against the Customer Model.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    root: Group,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Logical {
    And,
    Or,
}

impl Logical {
    fn name(self) -> &'static str {
        match self {
            Logical::And => "and",
            Logical::Or => "or",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
struct Group {
    logical: Logical,
    nodes: Vec<Node>,
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Group(Group),
    Condition(Condition),
}

/// One checked condition: what the user wrote (for the wire form and the summary) and the compiled
/// positive test it stands for.
#[derive(Debug, Clone, PartialEq)]
struct Condition {
    path: String,
    target: Target,
    op: Operator,
    /// The normalized values, as the wire form shows them.
    values: Vec<Json>,
    test: Test,
    /// Whether the condition is the negation of `test` (`is not`, `does not contain`, ...).
    negated: bool,
}

/// Where a condition reads its property.
#[derive(Debug, Clone, PartialEq)]
enum Target {
    Id,
    UpdatedAt,
    /// A path into the document, split into its validated segments.
    Doc(Box<[Box<str>]>),
}

/// How a stored value is read and compared, by property type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Strings, and dates, times and UUIDs, whose normalized text orders correctly.
    Text,
    Bool,
    Int,
    Float,
    Decimal,
    DateTime,
}

/// A pre-parsed filter value.
#[derive(Debug, Clone, PartialEq)]
enum Scalar {
    Text(Box<str>),
    Bool(bool),
    Int(i64),
    Float(f64),
    Decimal(Decimal),
    /// Microseconds since the epoch.
    DateTime(i64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmp {
    Eq,
    Lt,
    Le,
    Gt,
    Ge,
}

/// The positive form of a condition.
#[derive(Debug, Clone, PartialEq)]
enum Test {
    IsNull,
    Exists,
    IsEmpty,
    Compare {
        kind: Kind,
        cmp: Cmp,
        value: Scalar,
    },
    /// Inclusive on both ends.
    Between {
        kind: Kind,
        lo: Scalar,
        hi: Scalar,
    },
    /// `values` is sorted and deduplicated when `sorted` (every kind with a total order), so lookups are
    /// binary searches.
    OneOf {
        kind: Kind,
        values: Vec<Scalar>,
        sorted: bool,
    },
    Substring(Box<str>),
    Prefix(Box<str>),
    Suffix(Box<str>),
    /// An array with an element equal to `value`.
    Contains {
        kind: Kind,
        value: Scalar,
    },
}

impl Filter {
    /// Parses and type-checks the wire form; errors are keyed by paths relative to the filter
    /// (`conditions[1].values`, `conditions[0].conditions[2].operator`).
    pub fn parse(wire: &Json, schema: &Schema) -> Result<Filter, FieldErrors> {
        parse::parse(wire, schema)
    }

    /// Whether the profile matches.
    pub fn matches(&self, profile: &Profile) -> bool {
        let subject = eval::Subject {
            id: &profile.id,
            updated_at: eval::UpdatedAt::Micros(profile.updated_at.timestamp_micros()),
            doc: &profile.doc,
        };
        eval::group(&self.root, &subject)
    }

    /// Whether a document matches (for previews of unsaved profiles). `_id` is `id`; `_updated_at` is
    /// read from the document's own `_updated_at` key when it has one, and is absent otherwise.
    pub fn matches_doc(&self, id: &str, doc: &Map<String, Json>) -> bool {
        let subject = eval::Subject {
            id,
            updated_at: match doc.get(crate::schema::UPDATED_AT) {
                Some(value) => eval::UpdatedAt::Json(value),
                None => eval::UpdatedAt::Absent,
            },
            doc,
        };
        eval::group(&self.root, &subject)
    }

    /// A boolean SQL expression selecting the same profiles as [`Filter::matches`], over a table with
    /// columns `id` (text), `updated_at` (INTEGER microseconds in SQLite, `timestamptz` in PostgreSQL) and
    /// `doc` (JSON text in SQLite, `jsonb` in PostgreSQL). Parameters are numbered from `first_param`
    /// (`?N` in SQLite, `$N` in PostgreSQL); a parameter used twice keeps its number. In PostgreSQL every
    /// placeholder is cast to the type of its [`SqlParam`] (`$1::text`, `$2::int8`, `$3::float8`,
    /// `$4::bool`), so a driver binds each as its plain Rust type. SQLite needs the functions
    /// [`SQLITE_FN_TS`] and [`SQLITE_FN_DEC_CMP`] registered on the connection.
    pub fn to_sql(&self, dialect: SqlDialect, first_param: usize) -> (String, Vec<SqlParam>) {
        sql::render(&self.root, dialect, first_param)
    }

    /// The property paths the filter reads, each once, in the order they first appear.
    pub fn properties(&self) -> Vec<String> {
        fn walk(group: &Group, out: &mut Vec<String>) {
            for node in &group.nodes {
                match node {
                    Node::Group(g) => walk(g, out),
                    Node::Condition(c) => {
                        if !out.contains(&c.path) {
                            out.push(c.path.clone());
                        }
                    }
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.root, &mut out);
        out
    }

    /// A readable one-line summary (`country is one of IT, FR and (email is not empty)`).
    pub fn summary(&self) -> String {
        if self.root.nodes.is_empty() {
            return "all profiles".into();
        }
        let mut out = String::new();
        summarize(&self.root, &mut out);
        out
    }

    /// The wire form, normalized: canonical operator names, normalized values, no `values` for operators
    /// that take none.
    pub fn to_wire(&self) -> Json {
        group_to_wire(&self.root)
    }
}

fn group_to_wire(group: &Group) -> Json {
    let conditions = group
        .nodes
        .iter()
        .map(|node| match node {
            Node::Group(g) => group_to_wire(g),
            Node::Condition(c) => {
                let mut m = Map::new();
                m.insert("property".into(), Json::String(c.path.clone()));
                m.insert("operator".into(), Json::String(c.op.name().into()));
                if c.op.arity() != Arity::None {
                    m.insert("values".into(), Json::Array(c.values.clone()));
                }
                Json::Object(m)
            }
        })
        .collect();
    let mut m = Map::new();
    m.insert("logical".into(), Json::String(group.logical.name().into()));
    m.insert("conditions".into(), Json::Array(conditions));
    Json::Object(m)
}

fn summarize(group: &Group, out: &mut String) {
    let joiner = match group.logical {
        Logical::And => " and ",
        Logical::Or => " or ",
    };
    for (i, node) in group.nodes.iter().enumerate() {
        if i > 0 {
            out.push_str(joiner);
        }
        match node {
            Node::Group(g) if g.nodes.is_empty() => out.push_str("(all profiles)"),
            Node::Group(g) => {
                out.push('(');
                summarize(g, out);
                out.push(')');
            }
            Node::Condition(c) => {
                let _ = write!(out, "{} {}", c.path, c.op.name());
                let separator = if c.op.arity() == Arity::Two {
                    " and "
                } else {
                    ", "
                };
                for (j, value) in c.values.iter().enumerate() {
                    out.push_str(if j == 0 { " " } else { separator });
                    summarize_value(value, out);
                }
            }
        }
    }
}

/// Values read as plain text when that cannot be misread; otherwise as JSON strings (`""`, `" a"`,
/// `"IT, FR"`).
fn summarize_value(value: &Json, out: &mut String) {
    match value {
        Json::String(s) => {
            let plain = !s.is_empty()
                && s.trim() == s
                && !s.contains(", ")
                && !s.contains(" and ")
                && !s.contains(" or ")
                && !s.contains(['(', ')', '"']);
            if plain {
                out.push_str(s);
            } else {
                out.push_str(&Json::String(s.clone()).to_string());
            }
        }
        other => out.push_str(&other.to_string()),
    }
}
