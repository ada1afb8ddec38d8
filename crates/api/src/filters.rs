//! `GET /v1/filters/operators`: which filter operators apply to each kind of property type and how many
//! values each takes, as `sluice_core::filter` decides. The admin UI's filter picker offers exactly
//! these (its copy, `web/src/generated/filter-operators.json`, is checked against this answer), so a
//! filter saved through the API can always be shown and edited there.

use std::str::FromStr;

use axum::Json;
use serde::Serialize;
use sluice_core::filter::{Arity, Operator, MAX_VALUES};
use sluice_core::PropertyType;
use utoipa::ToSchema;

/// The operator table.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct FilterOperators {
    /// Every operator, in the order the product lists them.
    pub operators: Vec<OperatorInfo>,
    /// Every kind of property type with the operators that apply to it.
    pub types: Vec<TypeOperators>,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct OperatorInfo {
    pub name: &'static str,
    pub values: ValueCount,
    /// The most values a `many` operator takes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_values: Option<usize>,
    /// The operator this one is the exact negation of.
    #[schema(required = true)]
    pub negates: Option<&'static str>,
}

/// How many values a condition with the operator lists.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ValueCount {
    None,
    One,
    Two,
    Many,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct TypeOperators {
    /// The kind of a property type: its name without parameters, and for an array its element's kind
    /// (`decimal(12,2)` is `decimal`, `array(decimal(10,2))` is `array(decimal)`, `array(array(int))` is
    /// `array(array)`).
    #[serde(rename = "type")]
    pub kind: String,
    /// A type of this kind.
    pub example: String,
    /// The operators that apply, value operators first.
    pub operators: Vec<&'static str>,
}

/// A type of every kind there is.
pub(crate) const EXAMPLES: [&str; 23] = [
    "string",
    "boolean",
    "int",
    "float",
    "decimal(12,2)",
    "datetime",
    "date",
    "time",
    "uuid",
    "json",
    "object",
    "array(string)",
    "array(boolean)",
    "array(int)",
    "array(float)",
    "array(decimal(12,2))",
    "array(datetime)",
    "array(date)",
    "array(time)",
    "array(uuid)",
    "array(json)",
    "array(object)",
    "array(array(int))",
];

/// The kind of a type, as [`TypeOperators::kind`] defines it.
pub fn kind(ty: &PropertyType) -> String {
    match ty {
        PropertyType::String => "string".into(),
        PropertyType::Boolean => "boolean".into(),
        PropertyType::Int => "int".into(),
        PropertyType::Float => "float".into(),
        PropertyType::Decimal { .. } => "decimal".into(),
        PropertyType::DateTime => "datetime".into(),
        PropertyType::Date => "date".into(),
        PropertyType::Time => "time".into(),
        PropertyType::Uuid => "uuid".into(),
        PropertyType::Json => "json".into(),
        PropertyType::Object(_) => "object".into(),
        PropertyType::Array(inner) => match inner.as_ref() {
            PropertyType::Array(_) => "array(array)".into(),
            other => format!("array({})", kind(other)),
        },
    }
}

pub fn table() -> FilterOperators {
    let operators = Operator::all()
        .iter()
        .map(|op| OperatorInfo {
            name: op.name(),
            values: match op.arity() {
                Arity::None => ValueCount::None,
                Arity::One => ValueCount::One,
                Arity::Two => ValueCount::Two,
                Arity::Many => ValueCount::Many,
            },
            max_values: (op.arity() == Arity::Many).then_some(MAX_VALUES),
            negates: op.negates().map(Operator::name),
        })
        .collect();
    let mut types: Vec<TypeOperators> = Vec::new();
    for example in EXAMPLES {
        let ty = PropertyType::from_str(example).expect("a valid type name");
        let kind = kind(&ty);
        if types.iter().any(|t| t.kind == kind) {
            continue;
        }
        types.push(TypeOperators {
            kind,
            example: example.to_string(),
            operators: Operator::applicable(&ty)
                .into_iter()
                .map(Operator::name)
                .collect(),
        });
    }
    FilterOperators { operators, types }
}

#[utoipa::path(
    get,
    path = "/filters/operators",
    operation_id = "listFilterOperators",
    tag = "pipelines",
    summary = "Filter operators by property type, and how many values each takes",
    responses(
        (status = 200, description = "OK", body = FilterOperators),
        (status = 401, description = "missing or invalid token", body = crate::error::ErrorBody),
    ),
)]
pub async fn operators() -> Json<FilterOperators> {
    Json(table())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_drop_parameters_and_keep_array_elements() {
        let kind_of = |t: &str| kind(&PropertyType::from_str(t).unwrap());
        assert_eq!(kind_of("decimal(5,0)"), "decimal");
        assert_eq!(kind_of("array(decimal(3,1))"), "array(decimal)");
        assert_eq!(kind_of("array(array(array(int)))"), "array(array)");
        assert_eq!(kind_of("array(object)"), "array(object)");
        let table = table();
        assert_eq!(table.types.len(), EXAMPLES.len(), "one example per kind");
        assert!(table.types.iter().all(|t| !t.operators.is_empty()));
    }
}
