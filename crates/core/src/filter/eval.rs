//! In-memory evaluation. This runs once per profile of every run, so nothing here allocates: stored
//! values are borrowed from the document and read straight into the comparable form of the filter's
//! pre-parsed values.

use std::cmp::Ordering;

use rust_decimal::Decimal;
use serde_json::{Map, Value as Json};

use super::{Cmp, Condition, Group, Kind, Logical, Node, Scalar, Target, Test};

/// What a filter is evaluated against.
pub(super) struct Subject<'a> {
    pub id: &'a str,
    pub updated_at: UpdatedAt<'a>,
    pub doc: &'a Map<String, Json>,
}

pub(super) enum UpdatedAt<'a> {
    Micros(i64),
    /// A document's own `_updated_at` key, read like a datetime property.
    Json(&'a Json),
    Absent,
}

/// The value a condition's property has in a subject.
enum Found<'a> {
    Absent,
    Json(&'a Json),
    /// `_id`.
    Text(&'a str),
    /// `_updated_at` of a stored profile.
    Micros(i64),
}

/// A stored value read as the kind a condition compares.
enum Read<'a> {
    Text(&'a str),
    Bool(bool),
    Int(i64),
    /// A number that is not an i64 where an int was expected (data stored before a type change):
    /// compared by value, as the databases do.
    IntAsFloat(f64),
    Float(f64),
    Decimal(Decimal),
    /// Microseconds since the epoch.
    DateTime(i64),
}

pub(super) fn group(group: &Group, subject: &Subject<'_>) -> bool {
    match group.logical {
        Logical::And => group.nodes.iter().all(|n| node(n, subject)),
        // An empty group imposes no condition, whatever its logical.
        Logical::Or => group.nodes.is_empty() || group.nodes.iter().any(|n| node(n, subject)),
    }
}

fn node(node: &Node, subject: &Subject<'_>) -> bool {
    match node {
        Node::Group(g) => group(g, subject),
        Node::Condition(c) => condition(c, subject),
    }
}

fn condition(c: &Condition, subject: &Subject<'_>) -> bool {
    test(&c.test, lookup(&c.target, subject)) != c.negated
}

fn lookup<'a>(target: &Target, subject: &Subject<'a>) -> Found<'a> {
    match target {
        Target::Id => Found::Text(subject.id),
        Target::UpdatedAt => match subject.updated_at {
            UpdatedAt::Micros(m) => Found::Micros(m),
            UpdatedAt::Json(j) => Found::Json(j),
            UpdatedAt::Absent => Found::Absent,
        },
        Target::Doc(segments) => {
            let mut map = subject.doc;
            let last = segments.len() - 1;
            for (i, segment) in segments.iter().enumerate() {
                match map.get(&**segment) {
                    None => return Found::Absent,
                    Some(value) if i == last => return Found::Json(value),
                    // A path through a null or a non-object reaches nothing.
                    Some(Json::Object(inner)) => map = inner,
                    Some(_) => return Found::Absent,
                }
            }
            Found::Absent
        }
    }
}

fn test(test: &Test, found: Found<'_>) -> bool {
    match test {
        Test::IsNull => matches!(found, Found::Absent | Found::Json(Json::Null)),
        Test::Exists => !matches!(found, Found::Absent),
        Test::IsEmpty => match found {
            Found::Absent => true,
            Found::Json(j) => match j {
                Json::Null => true,
                Json::String(s) => s.is_empty(),
                Json::Array(a) => a.is_empty(),
                Json::Object(o) => o.is_empty(),
                Json::Bool(_) | Json::Number(_) => false,
            },
            Found::Text(s) => s.is_empty(),
            Found::Micros(_) => false,
        },
        Test::Compare { kind, cmp, value } => read(*kind, &found)
            .and_then(|r| compare(&r, value))
            .is_some_and(|o| cmp.holds(o)),
        Test::Between { kind, lo, hi } => read(*kind, &found).is_some_and(|r| {
            matches!(compare(&r, lo), Some(Ordering::Greater | Ordering::Equal))
                && matches!(compare(&r, hi), Some(Ordering::Less | Ordering::Equal))
        }),
        Test::OneOf {
            kind,
            values,
            sorted,
        } => read(*kind, &found).is_some_and(|r| {
            if *sorted && !matches!(r, Read::IntAsFloat(_)) {
                // compare() is total on the sorted kinds, so `None` cannot mislead the search.
                values
                    .binary_search_by(|v| compare(&r, v).map_or(Ordering::Less, Ordering::reverse))
                    .is_ok()
            } else {
                values
                    .iter()
                    .any(|v| compare(&r, v) == Some(Ordering::Equal))
            }
        }),
        Test::Substring(needle) => text(&found).is_some_and(|s| s.contains(&**needle)),
        Test::Prefix(prefix) => text(&found).is_some_and(|s| s.starts_with(&**prefix)),
        Test::Suffix(suffix) => text(&found).is_some_and(|s| s.ends_with(&**suffix)),
        Test::Contains { kind, value } => match found {
            Found::Json(Json::Array(items)) => items.iter().any(|item| {
                read_json(*kind, item).and_then(|r| compare(&r, value)) == Some(Ordering::Equal)
            }),
            _ => false,
        },
    }
}

impl Cmp {
    fn holds(self, o: Ordering) -> bool {
        match self {
            Cmp::Eq => o == Ordering::Equal,
            Cmp::Lt => o == Ordering::Less,
            Cmp::Le => o != Ordering::Greater,
            Cmp::Gt => o == Ordering::Greater,
            Cmp::Ge => o != Ordering::Less,
        }
    }
}

fn text<'a>(found: &Found<'a>) -> Option<&'a str> {
    match found {
        Found::Text(s) => Some(s),
        Found::Json(Json::String(s)) => Some(s),
        _ => None,
    }
}

fn read<'a>(kind: Kind, found: &Found<'a>) -> Option<Read<'a>> {
    match (found, kind) {
        (Found::Json(j), _) => read_json(kind, j),
        (Found::Text(s), Kind::Text) => Some(Read::Text(s)),
        (Found::Micros(m), Kind::DateTime) => Some(Read::DateTime(*m)),
        _ => None,
    }
}

/// Reads a stored JSON value; `None` for null and for values of another type, which match no
/// comparison. The accepted forms mirror the guards of the SQL translation.
fn read_json(kind: Kind, j: &Json) -> Option<Read<'_>> {
    match (kind, j) {
        (Kind::Text, Json::String(s)) => Some(Read::Text(s)),
        (Kind::Bool, Json::Bool(b)) => Some(Read::Bool(*b)),
        (Kind::Int, Json::Number(n)) => Some(match n.as_i64() {
            Some(i) => Read::Int(i),
            None => Read::IntAsFloat(n.as_f64()?),
        }),
        (Kind::Float, Json::Number(n)) => n.as_f64().map(Read::Float),
        // The same parse as `sluice_dec_cmp`, so SQLite and Rust agree on every text.
        (Kind::Decimal, Json::String(s)) => s.trim().parse().ok().map(Read::Decimal),
        (Kind::Decimal, Json::Number(n)) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Some(Read::Decimal(Decimal::from(i))),
            (None, Some(u)) => Some(Read::Decimal(Decimal::from(u))),
            _ => None,
        },
        (Kind::DateTime, Json::String(s)) => super::sqlite_ts(s).map(Read::DateTime),
        _ => None,
    }
}

fn compare(read: &Read<'_>, value: &Scalar) -> Option<Ordering> {
    match (read, value) {
        (Read::Text(a), Scalar::Text(b)) => Some((*a).cmp(&**b)),
        (Read::Bool(a), Scalar::Bool(b)) => Some(a.cmp(b)),
        (Read::Int(a), Scalar::Int(b)) => Some(a.cmp(b)),
        (Read::IntAsFloat(a), Scalar::Int(b)) => a.partial_cmp(&(*b as f64)),
        (Read::Float(a), Scalar::Float(b)) => a.partial_cmp(b),
        (Read::Decimal(a), Scalar::Decimal(b)) => Some(a.cmp(b)),
        (Read::DateTime(a), Scalar::DateTime(b)) => Some(a.cmp(b)),
        _ => None,
    }
}

/// Orders two filter values of the same kind (`None` across kinds).
pub(super) fn compare_scalars(a: &Scalar, b: &Scalar) -> Option<Ordering> {
    match (a, b) {
        (Scalar::Text(a), Scalar::Text(b)) => Some(a.cmp(b)),
        (Scalar::Bool(a), Scalar::Bool(b)) => Some(a.cmp(b)),
        (Scalar::Int(a), Scalar::Int(b)) => Some(a.cmp(b)),
        (Scalar::Float(a), Scalar::Float(b)) => a.partial_cmp(b),
        (Scalar::Decimal(a), Scalar::Decimal(b)) => Some(a.cmp(b)),
        (Scalar::DateTime(a), Scalar::DateTime(b)) => Some(a.cmp(b)),
        _ => None,
    }
}
