//! From the wire form to a checked [`Filter`], collecting every problem with its path.

use std::cmp::Ordering;

use serde_json::{Map, Value as Json};

use super::ops::{self, Arity, Operator, MAX_VALUES};
use super::{eval, Cmp, Condition, Filter, Group, Kind, Logical, Node, Scalar, Target, Test};
use crate::errors::{join_path, FieldErrors};
use crate::schema::{self, json_kind, PropertyType, Schema, ID, UPDATED_AT};

/// The most values a whole filter may hold: each becomes a bound parameter, and the databases cap those
/// (SQLite at 32766, PostgreSQL at 65535).
pub const MAX_TOTAL_VALUES: usize = 10_000;

/// The earliest datetime a filter value may name: PostgreSQL has no year 0, which RFC 3339 allows.
const MIN_MICROS: i64 = -62_135_596_800_000_000; // 0001-01-01T00:00:00Z

pub(super) fn parse(wire: &Json, schema: &Schema) -> Result<Filter, FieldErrors> {
    let mut parser = Parser {
        schema,
        errors: FieldErrors::new(),
        total_values: 0,
    };
    let root = match wire {
        Json::Object(map) if is_group(map) || !is_condition(map) => parser.group(map, ""),
        Json::Object(_) => {
            parser.errors.add(
                "",
                "a filter is a group, not a single condition: wrap it as \
                 {\"logical\": \"and\", \"conditions\": [...]}",
            );
            None
        }
        other => {
            parser.errors.add(
                "",
                format!(
                    "a filter is a group {{\"logical\": \"and\" or \"or\", \"conditions\": [...]}}, got {}",
                    json_kind(other)
                ),
            );
            None
        }
    };
    if parser.total_values > MAX_TOTAL_VALUES {
        parser.errors.add(
            "",
            format!(
                "the filter lists {} values in all; at most {MAX_TOTAL_VALUES} are allowed",
                parser.total_values
            ),
        );
    }
    match root {
        Some(root) if parser.errors.is_empty() => Ok(Filter { root }),
        _ => Err(parser.errors),
    }
}

fn is_group(map: &Map<String, Json>) -> bool {
    map.contains_key("logical") || map.contains_key("conditions")
}

fn is_condition(map: &Map<String, Json>) -> bool {
    map.contains_key("property") || map.contains_key("operator") || map.contains_key("values")
}

struct Parser<'s> {
    schema: &'s Schema,
    errors: FieldErrors,
    total_values: usize,
}

/// `path` joined with a field name or an index.
fn at(path: &str, field: &str) -> String {
    join_path(path, field)
}

impl Parser<'_> {
    fn group(&mut self, map: &Map<String, Json>, path: &str) -> Option<Group> {
        for key in map.keys() {
            if key != "logical" && key != "conditions" {
                self.errors.add(
                    at(path, key),
                    format!("unknown key `{key}`: a group has only \"logical\" and \"conditions\""),
                );
            }
        }
        let logical = match map.get("logical") {
            None => {
                self.errors.add(
                    at(path, "logical"),
                    "missing: a group needs \"logical\": \"and\" or \"or\"",
                );
                None
            }
            Some(Json::String(s)) => match s.trim().to_ascii_lowercase().as_str() {
                "and" => Some(Logical::And),
                "or" => Some(Logical::Or),
                _ => {
                    self.errors.add(
                        at(path, "logical"),
                        format!("`{s}` is not \"and\" or \"or\""),
                    );
                    None
                }
            },
            Some(other) => {
                self.errors.add(
                    at(path, "logical"),
                    format!("expected \"and\" or \"or\", got {}", json_kind(other)),
                );
                None
            }
        };
        let conditions_path = at(path, "conditions");
        let nodes = match map.get("conditions") {
            None => {
                self.errors.add(
                    &conditions_path,
                    "missing: a group needs \"conditions\": a list of conditions and groups",
                );
                None
            }
            Some(Json::Array(items)) => {
                let mut nodes = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    let here = format!("{conditions_path}[{i}]");
                    if let Some(node) = self.node(item, &here) {
                        nodes.push(node);
                    }
                }
                (nodes.len() == items.len()).then_some(nodes)
            }
            Some(other) => {
                self.errors.add(
                    &conditions_path,
                    format!(
                        "expected a list of conditions and groups, got {}",
                        json_kind(other)
                    ),
                );
                None
            }
        };
        Some(Group {
            logical: logical?,
            nodes: nodes?,
        })
    }

    fn node(&mut self, item: &Json, path: &str) -> Option<Node> {
        match item {
            Json::Object(map) if is_group(map) => self.group(map, path).map(Node::Group),
            Json::Object(map) => self.condition(map, path).map(Node::Condition),
            other => {
                self.errors.add(
                    path,
                    format!(
                        "expected a condition {{\"property\", \"operator\", \"values\"}} or a group \
                         {{\"logical\", \"conditions\"}}, got {}",
                        json_kind(other)
                    ),
                );
                None
            }
        }
    }

    fn condition(&mut self, map: &Map<String, Json>, path: &str) -> Option<Condition> {
        for key in map.keys() {
            if key != "property" && key != "operator" && key != "values" {
                self.errors.add(
                    at(path, key),
                    format!("unknown key `{key}`: a condition has only \"property\", \"operator\" and \"values\""),
                );
            }
        }

        let property_path = at(path, "property");
        let property = match map.get("property") {
            None => {
                self.errors.add(
                    &property_path,
                    "missing: name the property to test, such as `email` or `address.city`",
                );
                None
            }
            Some(Json::String(name)) => match resolve(self.schema, name) {
                Ok((target, ty)) => Some((name.clone(), target, ty)),
                Err(message) => {
                    self.errors.add(&property_path, message);
                    None
                }
            },
            Some(other) => {
                self.errors.add(
                    &property_path,
                    format!("expected a property name, got {}", json_kind(other)),
                );
                None
            }
        };

        let operator_path = at(path, "operator");
        let op = match map.get("operator") {
            None => {
                let hint = match &property {
                    Some((name, _, ty)) => format!(
                        "; for `{name}` ({ty}) use one of: {}",
                        ops::list(&Operator::applicable(ty))
                    ),
                    None => String::new(),
                };
                self.errors.add(
                    &operator_path,
                    format!("missing: a condition needs an operator{hint}"),
                );
                None
            }
            Some(Json::String(name)) => match Operator::from_name(name) {
                None => {
                    let hint = match &property {
                        Some((prop, _, ty)) => format!(
                            "for `{prop}` ({ty}) use one of: {}",
                            ops::list(&Operator::applicable(ty))
                        ),
                        None => format!("use one of: {}", ops::list(Operator::all())),
                    };
                    self.errors
                        .add(&operator_path, format!("unknown operator `{name}`; {hint}"));
                    None
                }
                Some(op) => {
                    if let Some((prop, _, ty)) = &property {
                        if !op.applies_to(ty) {
                            self.errors.add(
                                &operator_path,
                                format!(
                                    "operator `{}` does not apply to `{prop}` ({ty}); use one of: {}",
                                    op.name(),
                                    ops::list(&Operator::applicable(ty))
                                ),
                            );
                        }
                    }
                    Some(op)
                }
            },
            Some(other) => {
                self.errors.add(
                    &operator_path,
                    format!("expected an operator name, got {}", json_kind(other)),
                );
                None
            }
        };

        let raw_values = self.raw_values(map.get("values"), op, path)?;
        let op = op?;
        let (path_name, target, ty) = property?;
        if !op.applies_to(&ty) {
            return None;
        }
        let (values, test) = self.values(op, &path_name, &ty, raw_values, path)?;
        Some(Condition {
            path: path_name,
            target,
            op,
            values,
            test,
            negated: op.negates().is_some(),
        })
    }

    /// Checks the shape of `values` and how many there are; `None` after reporting a problem.
    fn raw_values<'j>(
        &mut self,
        raw: Option<&'j Json>,
        op: Option<Operator>,
        path: &str,
    ) -> Option<&'j [Json]> {
        let values_path = at(path, "values");
        let items: &[Json] = match raw {
            None | Some(Json::Null) => &[],
            Some(Json::Array(items)) => items,
            Some(other) => {
                self.errors.add(
                    &values_path,
                    format!("expected a list of values, got {}", json_kind(other)),
                );
                return None;
            }
        };
        self.total_values += items.len();
        let Some(op) = op else {
            return Some(items);
        };
        let name = op.name();
        let problem = match (op.arity(), items.len()) {
            (Arity::None, 0) | (Arity::One, 1) | (Arity::Two, 2) => None,
            (Arity::Many, n) if (1..=MAX_VALUES).contains(&n) => None,
            (Arity::None, n) => Some(format!("`{name}` takes no values, got {n}")),
            (Arity::One, 0) if raw.is_none() => Some(format!("missing: `{name}` takes one value")),
            (Arity::One, n) => Some(format!("`{name}` takes exactly one value, got {n}")),
            (Arity::Two, 0) if raw.is_none() => {
                Some(format!("missing: `{name}` takes two values, from and to"))
            }
            (Arity::Two, n) => Some(format!("`{name}` takes two values, from and to; got {n}")),
            (Arity::Many, 0) if raw.is_none() => {
                Some(format!("missing: `{name}` takes a list of values"))
            }
            (Arity::Many, 0) => Some(format!("`{name}` needs at least one value")),
            (Arity::Many, n) => Some(format!(
                "`{name}` takes at most {MAX_VALUES} values, got {n}"
            )),
        };
        match problem {
            Some(message) => {
                self.errors.add(&values_path, message);
                None
            }
            None => Some(items),
        }
    }

    /// Normalizes each value to the type the operator compares with and compiles the test.
    fn values(
        &mut self,
        op: Operator,
        prop: &str,
        ty: &PropertyType,
        raw: &[Json],
        path: &str,
    ) -> Option<(Vec<Json>, Test)> {
        let values_path = at(path, "values");
        let value_ty = match ty {
            PropertyType::Array(inner) => inner.as_ref(),
            other => other,
        };
        let mut normalized = Vec::with_capacity(raw.len());
        let mut scalars = Vec::with_capacity(raw.len());
        let mut ok = true;
        for (i, value) in raw.iter().enumerate() {
            let here = format!("{values_path}[{i}]");
            match self.value(op, prop, ty, value_ty, value) {
                Ok((json, scalar)) => {
                    normalized.push(json);
                    scalars.push(scalar);
                }
                Err(message) => {
                    self.errors.add(here, message);
                    ok = false;
                }
            }
        }
        if !ok {
            return None;
        }
        let kind = kind_of(value_ty);
        let positive = op.negates().unwrap_or(op);
        let test = match positive {
            Operator::IsNull => Test::IsNull,
            Operator::Exists => Test::Exists,
            Operator::IsEmpty => Test::IsEmpty,
            Operator::IsTrue => Test::Compare {
                kind: Kind::Bool,
                cmp: Cmp::Eq,
                value: Scalar::Bool(true),
            },
            Operator::IsFalse => Test::Compare {
                kind: Kind::Bool,
                cmp: Cmp::Eq,
                value: Scalar::Bool(false),
            },
            Operator::Is => Test::Compare {
                kind: kind?,
                cmp: Cmp::Eq,
                value: scalars.pop()?,
            },
            Operator::IsLessThan | Operator::IsBefore => Test::Compare {
                kind: kind?,
                cmp: Cmp::Lt,
                value: scalars.pop()?,
            },
            Operator::IsLessThanOrEqualTo | Operator::IsOnOrBefore => Test::Compare {
                kind: kind?,
                cmp: Cmp::Le,
                value: scalars.pop()?,
            },
            Operator::IsGreaterThan | Operator::IsAfter => Test::Compare {
                kind: kind?,
                cmp: Cmp::Gt,
                value: scalars.pop()?,
            },
            Operator::IsGreaterThanOrEqualTo | Operator::IsOnOrAfter => Test::Compare {
                kind: kind?,
                cmp: Cmp::Ge,
                value: scalars.pop()?,
            },
            Operator::IsBetween => {
                let hi = scalars.pop()?;
                let lo = scalars.pop()?;
                if eval::compare_scalars(&lo, &hi) == Some(Ordering::Greater) {
                    self.errors.add(
                        values_path,
                        format!(
                            "`{}` takes the lower bound first: {} is greater than {}",
                            op.name(),
                            plain(&normalized[0]),
                            plain(&normalized[1])
                        ),
                    );
                    return None;
                }
                Test::Between {
                    kind: kind?,
                    lo,
                    hi,
                }
            }
            Operator::IsOneOf => {
                let kind = kind?;
                let sorted = kind != Kind::Float;
                if sorted {
                    scalars.sort_by(|a, b| eval::compare_scalars(a, b).unwrap_or(Ordering::Equal));
                    scalars.dedup();
                }
                Test::OneOf {
                    kind,
                    values: scalars,
                    sorted,
                }
            }
            Operator::Contains if matches!(ty, PropertyType::Array(_)) => Test::Contains {
                kind: kind?,
                value: scalars.pop()?,
            },
            Operator::Contains => Test::Substring(text(scalars.pop()?)?),
            Operator::StartsWith => Test::Prefix(text(scalars.pop()?)?),
            Operator::EndsWith => Test::Suffix(text(scalars.pop()?)?),
            Operator::IsNot
            | Operator::IsNotBetween
            | Operator::DoesNotContain
            | Operator::IsNotOneOf
            | Operator::IsNotEmpty
            | Operator::IsNotNull
            | Operator::DoesNotExist => {
                unreachable!("negations were mapped to their positive form")
            }
        };
        Some((normalized, test))
    }

    /// One value, normalized as the property's type (the element type for arrays) and pre-parsed.
    fn value(
        &self,
        op: Operator,
        prop: &str,
        ty: &PropertyType,
        value_ty: &PropertyType,
        value: &Json,
    ) -> Result<(Json, Scalar), String> {
        if value.is_null() {
            return Err(match op {
                Operator::Is | Operator::IsOneOf => "null is not a value: use `is null`".into(),
                Operator::IsNot | Operator::IsNotOneOf => {
                    "null is not a value: use `is not null`".into()
                }
                _ => format!("null is not a value for `{}`", op.name()),
            });
        }
        let normalized = schema::normalize_scalar(value_ty, value).map_err(|e| {
            if ty == value_ty {
                format!("not a valid value for `{prop}` ({ty}): {e}")
            } else {
                format!("not a valid element of `{prop}` ({ty}): {e}")
            }
        })?;
        let kind = kind_of(value_ty)
            .ok_or_else(|| format!("`{prop}` ({ty}) cannot be compared with a value"))?;
        let scalar = scalar(kind, &normalized).ok_or_else(|| {
            format!(
                "not a valid value for `{prop}` ({ty}): {}",
                plain(&normalized)
            )
        })?;
        match (&scalar, op) {
            (Scalar::Text(s), Operator::StartsWith | Operator::EndsWith) if s.is_empty() => {
                return Err(format!("`{}` needs a non-empty text", op.name()));
            }
            (Scalar::Text(s), Operator::Contains | Operator::DoesNotContain)
                if s.is_empty() && !matches!(ty, PropertyType::Array(_)) =>
            {
                return Err(format!("`{}` needs a non-empty text", op.name()));
            }
            (Scalar::DateTime(micros), _) if *micros < MIN_MICROS => {
                return Err("datetimes before the year 1 are not supported".into());
            }
            _ => {}
        }
        Ok((normalized, scalar))
    }
}

fn text(scalar: Scalar) -> Option<Box<str>> {
    match scalar {
        Scalar::Text(s) => Some(s),
        _ => None,
    }
}

/// A normalized value as plain text, for messages.
fn plain(value: &Json) -> String {
    match value {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// How values of a (scalar) property type are compared; `None` for types that have no value operators.
pub(super) fn kind_of(ty: &PropertyType) -> Option<Kind> {
    Some(match ty {
        PropertyType::String | PropertyType::Date | PropertyType::Time | PropertyType::Uuid => {
            Kind::Text
        }
        PropertyType::Boolean => Kind::Bool,
        PropertyType::Int => Kind::Int,
        PropertyType::Float => Kind::Float,
        PropertyType::Decimal { .. } => Kind::Decimal,
        PropertyType::DateTime => Kind::DateTime,
        PropertyType::Json | PropertyType::Array(_) | PropertyType::Object(_) => return None,
    })
}

/// Pre-parses a normalized value.
fn scalar(kind: Kind, value: &Json) -> Option<Scalar> {
    Some(match kind {
        Kind::Text => Scalar::Text(value.as_str()?.into()),
        Kind::Bool => Scalar::Bool(value.as_bool()?),
        Kind::Int => Scalar::Int(value.as_i64()?),
        Kind::Float => Scalar::Float(value.as_f64()?),
        Kind::Decimal => Scalar::Decimal(value.as_str()?.parse().ok()?),
        Kind::DateTime => Scalar::DateTime(
            schema::parse_datetime(value.as_str()?)
                .ok()?
                .timestamp_micros(),
        ),
    })
}

/// Resolves a property path to where it is read and its type, or explains what is wrong with it.
fn resolve(schema: &Schema, path: &str) -> Result<(Target, PropertyType), String> {
    match path {
        ID => return Ok((Target::Id, PropertyType::String)),
        UPDATED_AT => return Ok((Target::UpdatedAt, PropertyType::DateTime)),
        "" => {
            return Err("the property is empty: name one, such as `email` or `address.city`".into())
        }
        _ => {}
    }
    if path.split('.').any(str::is_empty) {
        return Err(format!(
            "`{path}` is not a property path: separate nested names with single dots, as in `address.city`"
        ));
    }
    let mut props = &schema.properties;
    let mut walked = String::new();
    let mut segments = path.split('.').peekable();
    while let Some(segment) = segments.next() {
        let Some(prop) = props.iter().find(|p| p.name == segment) else {
            let similar = props.iter().find(|p| p.name.eq_ignore_ascii_case(segment));
            let mut message = if walked.is_empty() {
                format!("`{path}` is not a property of the Customer Model")
            } else {
                format!(
                    "`{walked}` has no property `{segment}`; it has {}",
                    props
                        .iter()
                        .map(|p| format!("`{}`", p.name))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            if let Some(p) = similar {
                let _ = std::fmt::Write::write_fmt(
                    &mut message,
                    format_args!(" (did you mean `{}`?)", p.name),
                );
            }
            return Err(message);
        };
        if !walked.is_empty() {
            walked.push('.');
        }
        walked.push_str(segment);
        if segments.peek().is_none() {
            let target = Target::Doc(path.split('.').map(Box::from).collect());
            return Ok((target, prop.ty.clone()));
        }
        match &prop.ty {
            PropertyType::Object(inner) => props = inner,
            PropertyType::Array(_) => {
                return Err(format!(
                "`{walked}` has type {}: filters cannot address properties inside array elements",
                prop.ty
            ))
            }
            other => {
                return Err(format!(
                    "`{walked}` has type {other}, not object, so `{path}` does not exist"
                ))
            }
        }
    }
    unreachable!("a path has at least one segment")
}
