//! A Customer Model proposed from a source's columns, for the user to edit before applying it.
//!
//! [`propose`] takes what a source inspection found — the columns with the Customer Model type each
//! maps to, and a sample of rows — and the current Customer Model, and answers two proposals:
//!
//! - `model`: the current model plus a property for every column it does not have yet. An existing
//!   property is never changed: a column whose name matches an existing property of a type the column's
//!   values do not fit is reported in `issues` and left out, never retyped.
//! - `mapping`: Customer Model property path → expression over the source's columns, the `transformation`
//!   of a source pipeline. Columns match existing properties by name whatever the case (`Email` maps onto
//!   `email`), then by their proposed name (`firstName` onto `first_name`).
//!
//! Names become property names in lower snake case: `firstName` and `First Name` give `first_name`,
//! letters stay letters (lower-cased), every other run of characters becomes one `_`, a name that does
//! not start with a letter gets a `c_` in front, and names that clash (whatever the case) after that are
//! numbered in column order: `email`, `email_2`.
//!
//! A JSON column becomes an object when every non-null sample value is an object: each key a nested
//! property (named by the same rule), its type read from the sample's values (strings, booleans, integers,
//! numbers, nested objects, arrays of one kind as `array(T)`; values of different kinds, or only nulls,
//! give `json`). The walk is bounded: objects and arrays nested deeper than [`MAX_DEPTH`], or with more than
//! [`MAX_KEYS`] keys (a map keyed by data rather than a record), stay `json`, and no more than
//! [`MAX_PROPERTIES`] properties are proposed in all. Each leaf of an object is mapped on its own
//! (`attrs.first_name` ← `attrs.firstName`), so renamed keys still find their values.
//!
//! New properties are proposed nullable: profiles are merged from several sources and the API, and a
//! profile this source does not feed has no value for them. The id column is left out: it becomes `_id`.
//!
//! Pure: the caller reads the columns and the sample; nothing here touches a database or the stored model.

use std::collections::HashSet;

use serde::Serialize;
use serde_json::{Map, Value as Json};

use crate::schema::{Property, PropertyType, Schema, SchemaWire, ID};
use crate::Value;

/// Deepest object nesting proposed as nested properties; deeper values stay `json`.
pub const MAX_DEPTH: usize = 4;
/// Most keys an object may have to be proposed as nested properties; more stay `json`.
pub const MAX_KEYS: usize = 64;
/// Most array elements (over all sampled rows) read to type an array's elements.
pub const MAX_ELEMENTS: usize = 1_000;
/// Most properties (nested ones included) one proposal adds.
pub const MAX_PROPERTIES: usize = 500;
/// Longest property name, in bytes (the Customer Model's rule).
const MAX_NAME_BYTES: usize = 128;

/// A source column as a proposal reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnIn {
    pub name: String,
    /// The Customer Model type the column's type maps to; `None` when the model has none (bytes).
    pub property: Option<PropertyType>,
    /// The type as the database names it, for messages.
    pub native_type: String,
    /// Whether the column holds JSON.
    pub json: bool,
}

/// Something the user should look at before applying a proposal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Issue {
    /// The source column (or `column.key` inside a JSON column) concerned.
    pub column: String,
    pub message: String,
}

/// What [`propose`] answers.
#[derive(Debug, Clone, PartialEq)]
pub struct Proposal {
    /// The current Customer Model plus the proposed properties.
    pub model: Schema,
    /// Property path → expression over the source's columns, in column order.
    pub mapping: Vec<(String, String)>,
    /// The column that becomes `_id` (left out of the properties).
    pub id_column: Option<String>,
    /// The paths of the properties the proposal adds to the model.
    pub added: Vec<String>,
    pub issues: Vec<Issue>,
}

impl Proposal {
    /// The proposed model in its wire form, as `PUT /v1/profile-schema` takes it.
    pub fn model_wire(&self) -> SchemaWire {
        self.model.to_wire()
    }

    /// The mapping as a JSON object, in column order.
    pub fn mapping_json(&self) -> Map<String, Json> {
        self.mapping
            .iter()
            .map(|(k, v)| (k.clone(), Json::String(v.clone())))
            .collect()
    }
}

/// Proposes a model and a mapping for a source with `columns`, whose first rows are `rows` (values in
/// column order), against the current model `existing`. `id_column` names the column that becomes
/// `_id`; without one, [`guess_id_column`] picks it.
pub fn propose(
    columns: &[ColumnIn],
    rows: &[Vec<Value>],
    existing: &Schema,
    id_column: Option<&str>,
) -> Proposal {
    let id = match id_column {
        Some(name) => columns.iter().position(|c| c.name == name).or_else(|| {
            columns
                .iter()
                .position(|c| c.name.eq_ignore_ascii_case(name))
        }),
        None => guess_id_column(columns),
    };
    let mut p = Proposer {
        names: existing
            .properties
            .iter()
            .map(|p| p.name.to_lowercase())
            .collect(),
        budget: MAX_PROPERTIES,
        issues: Vec::new(),
    };
    if let (Some(name), None) = (id_column, id) {
        p.issue(
            name,
            "the id column is not among the source's columns".into(),
        );
    }
    let mut model = existing.clone();
    let mut mapping = Vec::new();
    let mut added = Vec::new();
    for (i, column) in columns.iter().enumerate() {
        if Some(i) == id {
            continue;
        }
        let Some(expr) = path_expr(&column.name) else {
            p.issue(
                &column.name,
                format!(
                    "the column `{}` cannot be named in a mapping expression (letters, digits and `_`, \
                     not `true`, `false` or `null`): rename it in a query (`AS {}`)",
                    column.name,
                    snake_case(&column.name)
                ),
            );
            continue;
        };
        let Some(ty) = &column.property else {
            p.issue(
                &column.name,
                format!(
                    "the column `{}` is {}, which the Customer Model cannot hold",
                    column.name, column.native_type
                ),
            );
            continue;
        };
        let samples: Vec<Json> = if column.json {
            rows.iter()
                .filter_map(|r| r.get(i))
                .filter_map(json_of)
                .collect()
        } else {
            Vec::new()
        };
        if let Some(prop) = find_existing(&existing.properties, &column.name) {
            p.onto_existing(prop, ty, column, &expr, &samples, &mut mapping);
            continue;
        }
        let name = p.fresh_name(&column.name);
        let ty = if column.json && !samples.is_empty() {
            p.infer_json(&samples, &column.name, 0)
        } else {
            ty.clone()
        };
        if !p.take(count_properties(&ty)) {
            p.issue(
                &column.name,
                format!("left out: a proposal adds at most {MAX_PROPERTIES} properties"),
            );
            continue;
        }
        leaves(&ty, &name, &expr, &mut mapping);
        added.push(name.clone());
        model.properties.push(Property {
            name,
            ty,
            nullable: true,
            description: None,
        });
    }
    Proposal {
        model,
        mapping,
        id_column: id.map(|i| columns[i].name.clone()),
        added,
        issues: p.issues,
    }
}

/// The column that most likely identifies a profile: one named `id` or `_id`, else the first whose name
/// ends in `id` (`customer_id`, `userId`), of a type an id can have (string, integer, UUID).
pub fn guess_id_column(columns: &[ColumnIn]) -> Option<usize> {
    let can_be_id = |c: &ColumnIn| {
        matches!(
            c.property,
            Some(PropertyType::String | PropertyType::Int | PropertyType::Uuid)
        )
    };
    let snake = |c: &ColumnIn| snake_case(&c.name);
    columns
        .iter()
        .position(|c| can_be_id(c) && (snake(c) == "id" || c.name == ID))
        .or_else(|| {
            columns
                .iter()
                .position(|c| can_be_id(c) && snake(c).ends_with("_id"))
        })
}

/// The property name a column or key name becomes (see the module documentation): lower snake case,
/// starting with a letter, at most 128 bytes. Clashes are numbered by the caller.
pub fn snake_case(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let mut out = String::with_capacity(name.len() + 4);
    for (i, &c) in chars.iter().enumerate() {
        if c.is_alphanumeric() {
            if c.is_uppercase() && i > 0 {
                let prev = chars[i - 1];
                let next_lower = chars.get(i + 1).is_some_and(|n| n.is_lowercase());
                // `firstName` → first_name; `HTTPServer` → http_server; `ID` stays one word.
                if prev.is_lowercase()
                    || prev.is_ascii_digit()
                    || (prev.is_uppercase() && next_lower)
                {
                    out.push('_');
                }
            }
            out.extend(c.to_lowercase());
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    let mut out = out.trim_matches('_').replace("__", "_");
    if !out.chars().next().is_some_and(char::is_alphabetic) {
        out = if out.is_empty() {
            "column".into()
        } else {
            format!("c_{out}")
        };
    }
    truncate(&mut out, MAX_NAME_BYTES);
    out
}

fn truncate(s: &mut String, max: usize) {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
}

/// A column or key as a path in a mapping expression, when the expression language can name it.
fn path_expr(name: &str) -> Option<String> {
    let mut chars = name.chars();
    let first = chars.next()?;
    let ok = (first.is_alphabetic() || first == '_')
        && chars.all(|c| c.is_alphanumeric() || c == '_')
        && !matches!(
            name.to_ascii_lowercase().as_str(),
            "true" | "false" | "null"
        );
    ok.then(|| name.to_string())
}

/// The existing property a column or key name means: the same name whatever the case, else its
/// proposed name.
fn find_existing<'a>(props: &'a [Property], name: &str) -> Option<&'a Property> {
    let snake = snake_case(name);
    props
        .iter()
        .find(|p| p.name.eq_ignore_ascii_case(name))
        .or_else(|| props.iter().find(|p| p.name.eq_ignore_ascii_case(&snake)))
}

/// A JSON column's sample value as JSON; text that is not JSON is left out.
fn json_of(v: &Value) -> Option<Json> {
    match v {
        Value::Null => None,
        Value::Json(j) if j.is_null() => None,
        Value::Json(j) => match j.as_ref() {
            // Drivers that hand JSON over as text: the text is the document.
            Json::String(s) => serde_json::from_str(s).ok(),
            other => Some(other.clone()),
        },
        Value::String(s) => serde_json::from_str(s.as_ref()).ok(),
        _ => None,
    }
}

/// Every property a type adds, nested ones included (the property itself counts one).
fn count_properties(ty: &PropertyType) -> usize {
    1 + match ty {
        PropertyType::Object(props) => props.iter().map(|p| count_properties(&p.ty)).sum(),
        PropertyType::Array(inner) => count_properties(inner) - 1,
        _ => 0,
    }
}

/// The mapping of a property at `path` read by `expr`: an object leaf by leaf, anything else whole.
fn leaves(ty: &PropertyType, path: &str, expr: &str, out: &mut Vec<(String, String)>) {
    match ty {
        PropertyType::Object(props) => {
            for p in props {
                let key = source_key(&p.description, &p.name);
                leaves(
                    &p.ty,
                    &format!("{path}.{}", p.name),
                    &format!("{expr}.{key}"),
                    out,
                );
            }
        }
        _ => out.push((path.to_string(), expr.to_string())),
    }
}

/// The JSON key a proposed nested property reads: a property whose name differs from its key says which
/// key in its description (which the user sees, and keeps if they like), else its name is the key.
fn source_key<'a>(description: &'a Option<String>, name: &'a str) -> &'a str {
    match description
        .as_deref()
        .and_then(|d| d.strip_prefix(KEY_NOTE))
    {
        Some(key) => key.strip_suffix('`').unwrap_or(key),
        None => name,
    }
}

/// How a proposed nested property whose key was renamed says which key it reads.
const KEY_NOTE: &str = "from the JSON key `";

struct Proposer {
    /// Top-level property names taken, lower-cased.
    names: HashSet<String>,
    /// Properties the proposal may still add.
    budget: usize,
    issues: Vec<Issue>,
}

impl Proposer {
    fn issue(&mut self, column: &str, message: String) {
        self.issues.push(Issue {
            column: column.to_string(),
            message,
        });
    }

    fn take(&mut self, n: usize) -> bool {
        if n > self.budget {
            return false;
        }
        self.budget -= n;
        true
    }

    /// A top-level name for a new property from `name`, numbered past those taken.
    fn fresh_name(&mut self, name: &str) -> String {
        let name = numbered(snake_case(name), &self.names);
        self.names.insert(name.to_lowercase());
        name
    }

    /// A column that matches the existing property `prop`: mapped when its values fit the property's
    /// type, reported otherwise. The property itself is never changed.
    fn onto_existing(
        &mut self,
        prop: &Property,
        ty: &PropertyType,
        column: &ColumnIn,
        expr: &str,
        samples: &[Json],
        mapping: &mut Vec<(String, String)>,
    ) {
        match (&prop.ty, column.json) {
            (PropertyType::Object(nested), true) => {
                self.onto_object(nested, &prop.name, expr, &column.name, samples, mapping)
            }
            (target, _) if fits(ty, target) => mapping.push((prop.name.clone(), expr.to_string())),
            (target, _) => self.issue(
                &column.name,
                format!(
                    "the column `{}` ({}, {ty} in the Customer Model) matches the existing property `{}`, \
                     which is {target}: left out, the property keeps its type (map it with a conversion, \
                     or rename it in a query)",
                    column.name, column.native_type, prop.name
                ),
            ),
        }
    }

    /// A JSON column onto an existing object property: each nested property mapped from the key of the
    /// same name; keys the object lacks are reported, not added.
    fn onto_object(
        &mut self,
        nested: &[Property],
        path: &str,
        expr: &str,
        column: &str,
        samples: &[Json],
        mapping: &mut Vec<(String, String)>,
    ) {
        if samples.is_empty() {
            self.issue(
                column,
                format!(
                    "the sample has no value of `{column}` to match its keys with the properties of `{path}`: \
                     map them by hand"
                ),
            );
            return;
        }
        let mut keys: Vec<String> = Vec::new();
        for s in samples {
            if let Json::Object(m) = s {
                for k in m.keys() {
                    if !keys.contains(k) && keys.len() < MAX_KEYS {
                        keys.push(k.clone());
                    }
                }
            }
        }
        for key in &keys {
            let here = format!("{column}.{key}");
            let Some(prop) = find_existing(nested, key) else {
                self.issue(
                    &here,
                    format!(
                        "the key `{key}` has no property in the existing object `{path}`: add one to map it"
                    ),
                );
                continue;
            };
            let Some(key_expr) = path_expr(key) else {
                self.issue(
                    &here,
                    format!("the key `{key}` cannot be named in a mapping expression"),
                );
                continue;
            };
            let child_path = format!("{path}.{}", prop.name);
            let child_expr = format!("{expr}.{key_expr}");
            match &prop.ty {
                PropertyType::Object(inner) => {
                    let values: Vec<Json> = samples
                        .iter()
                        .filter_map(|s| s.get(key).filter(|v| !v.is_null()).cloned())
                        .collect();
                    self.onto_object(inner, &child_path, &child_expr, &here, &values, mapping);
                }
                _ => mapping.push((child_path, child_expr)),
            }
        }
    }

    /// The type of a JSON value from its sample values (none null), `depth` objects deep, for the column
    /// (or `column.key`) `at`.
    fn infer_json(&mut self, values: &[Json], at: &str, depth: usize) -> PropertyType {
        let kind = |v: &Json| match v {
            Json::Bool(_) => 1,
            Json::Number(n) if n.is_i64() => 2,
            Json::Number(_) => 3,
            Json::String(_) => 4,
            Json::Array(_) => 5,
            Json::Object(_) => 6,
            Json::Null => 0,
        };
        let mut kinds: Vec<u8> = values.iter().map(kind).filter(|k| *k != 0).collect();
        kinds.sort_unstable();
        kinds.dedup();
        match kinds.as_slice() {
            [1] => PropertyType::Boolean,
            [2] => PropertyType::Int,
            [3] | [2, 3] => PropertyType::Float,
            [4] => PropertyType::String,
            [5] if depth >= MAX_DEPTH => PropertyType::Json,
            [5] => {
                let elements: Vec<Json> = values
                    .iter()
                    .filter_map(Json::as_array)
                    .flatten()
                    .filter(|v| !v.is_null())
                    .take(MAX_ELEMENTS)
                    .cloned()
                    .collect();
                if elements.is_empty() {
                    return PropertyType::Array(Box::new(PropertyType::Json));
                }
                let element = self.infer_json(&elements, at, depth + 1);
                match element {
                    // Elements are mapped whole: their keys must be property names as they are.
                    PropertyType::Object(ref props)
                        if props.iter().all(|p| p.description.is_none()) =>
                    {
                        PropertyType::Array(Box::new(element))
                    }
                    PropertyType::Object(_) | PropertyType::Array(_) => {
                        PropertyType::Array(Box::new(PropertyType::Json))
                    }
                    other => PropertyType::Array(Box::new(other)),
                }
            }
            [6] => self.infer_object(values, at, depth),
            _ => PropertyType::Json,
        }
    }

    fn infer_object(&mut self, values: &[Json], at: &str, depth: usize) -> PropertyType {
        if depth >= MAX_DEPTH {
            self.issue(
                at,
                format!("objects nested deeper than {MAX_DEPTH} levels are proposed as `json`"),
            );
            return PropertyType::Json;
        }
        let mut keys: Vec<&String> = Vec::new();
        for v in values {
            if let Json::Object(m) = v {
                for k in m.keys() {
                    if !keys.contains(&k) {
                        keys.push(k);
                        if keys.len() > MAX_KEYS {
                            self.issue(
                                at,
                                format!(
                                    "an object with more than {MAX_KEYS} keys is proposed as `json`"
                                ),
                            );
                            return PropertyType::Json;
                        }
                    }
                }
            }
        }
        let mut taken = HashSet::new();
        let mut props = Vec::new();
        for key in keys {
            let here = format!("{at}.{key}");
            if path_expr(key).is_none() {
                self.issue(
                    &here,
                    format!(
                        "the key `{key}` cannot be named in a mapping expression: left out (read it \
                         with a script)"
                    ),
                );
                continue;
            }
            let name = numbered(snake_case(key), &taken);
            taken.insert(name.to_lowercase());
            let children: Vec<Json> = values
                .iter()
                .filter_map(|v| v.get(key.as_str()).filter(|c| !c.is_null()).cloned())
                .collect();
            let ty = if children.is_empty() {
                PropertyType::Json
            } else {
                self.infer_json(&children, &here, depth + 1)
            };
            let description = (name != *key).then(|| format!("{KEY_NOTE}{key}`"));
            props.push(Property {
                name,
                ty,
                nullable: true,
                description,
            });
        }
        if props.is_empty() {
            return PropertyType::Json;
        }
        PropertyType::Object(props)
    }
}

/// `name`, or `name_2`, `name_3` … : the first not in `taken` (lower-cased names).
fn numbered(name: String, taken: &HashSet<String>) -> String {
    if !taken.contains(&name.to_lowercase()) {
        return name;
    }
    (2..)
        .map(|n| {
            let suffix = format!("_{n}");
            let mut base = name.clone();
            truncate(&mut base, MAX_NAME_BYTES - suffix.len());
            base + &suffix
        })
        .find(|c| !taken.contains(&c.to_lowercase()))
        .expect("some number is free")
}

/// Whether values of a column of type `from` fit a property of type `to` unchanged.
fn fits(from: &PropertyType, to: &PropertyType) -> bool {
    from.widens_to(to)
        || matches!(
            (from, to),
            (
                PropertyType::Json,
                PropertyType::Object(_) | PropertyType::Array(_)
            )
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn valid_name(name: &str) -> bool {
        crate::schema::check_property_name(name).is_ok()
    }

    fn col(name: &str, ty: &str) -> ColumnIn {
        ColumnIn {
            name: name.into(),
            property: Some(ty.parse().unwrap()),
            native_type: ty.into(),
            json: ty == "json",
        }
    }

    fn model(json: serde_json::Value) -> Schema {
        Schema::from_wire(&serde_json::from_value(json).unwrap()).unwrap()
    }

    fn mapping(p: &Proposal) -> Vec<(&str, &str)> {
        p.mapping
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect()
    }

    #[test]
    fn names_become_lower_snake_case() {
        for (from, to) in [
            ("email", "email"),
            ("firstName", "first_name"),
            ("First Name", "first_name"),
            ("HTTPServer", "http_server"),
            ("customerID", "customer_id"),
            ("ID", "id"),
            ("order-total ($)", "order_total"),
            ("__weird__", "weird"),
            ("2fa_enabled", "c_2fa_enabled"),
            ("Città", "città"),
            ("!!!", "column"),
            ("a  b", "a_b"),
        ] {
            let got = snake_case(from);
            assert_eq!(got, to, "{from}");
            assert!(valid_name(&got), "{got}");
        }
        let long = "A".repeat(300);
        assert_eq!(snake_case(&long).len(), 128);
    }

    #[test]
    fn columns_become_properties_and_the_id_is_left_out() {
        let cols = [
            col("customer_id", "int"),
            col("Email", "string"),
            col("signupDate", "date"),
            col("ltv", "decimal(12,2)"),
            col("vip", "boolean"),
        ];
        let p = propose(&cols, &[], &Schema::default(), None);
        assert_eq!(p.id_column.as_deref(), Some("customer_id"));
        let wire = serde_json::to_value(p.model_wire()).unwrap();
        assert_eq!(
            wire,
            json!({"properties": [
                {"name": "email", "type": "string", "nullable": true},
                {"name": "signup_date", "type": "date", "nullable": true},
                {"name": "ltv", "type": "decimal(12,2)", "nullable": true},
                {"name": "vip", "type": "boolean", "nullable": true},
            ]})
        );
        assert_eq!(
            mapping(&p),
            [
                ("email", "Email"),
                ("signup_date", "signupDate"),
                ("ltv", "ltv"),
                ("vip", "vip")
            ]
        );
        assert!(p.issues.is_empty(), "{:?}", p.issues);
        // The proposal is a model the API accepts as it is.
        assert!(Schema::from_wire(&p.model_wire()).is_ok());
    }

    #[test]
    fn clashing_names_are_numbered_in_column_order() {
        let cols = [
            col("id", "string"),
            col("email", "string"),
            col("EMAIL", "string"),
            col("e-mail", "string"),
            col("e_mail", "string"),
        ];
        let p = propose(&cols, &[], &Schema::default(), Some("id"));
        // `EMAIL` matches no existing property (the model was empty), so it is numbered.
        assert_eq!(p.added, ["email", "email_2", "e_mail"]);
        assert_eq!(
            mapping(&p),
            [
                ("email", "email"),
                ("email_2", "EMAIL"),
                ("e_mail", "e_mail")
            ]
        );
        // `e-mail` cannot be read by an expression: reported, with the rename to make.
        assert_eq!(p.issues.len(), 1);
        assert_eq!(p.issues[0].column, "e-mail");
        assert!(p.issues[0].message.contains("AS e_mail"), "{:?}", p.issues);
    }

    #[test]
    fn existing_properties_are_matched_whatever_the_case_and_never_retyped() {
        let existing = model(json!({"properties": [
            {"name": "email", "type": "string"},
            {"name": "first_name", "type": "string"},
            {"name": "score", "type": "float"},
            {"name": "age", "type": "int"},
        ]}));
        let cols = [
            col("id", "uuid"),
            col("EMAIL", "string"),
            col("firstName", "string"),
            col("score", "int"),
            col("age", "string"),
            col("city", "string"),
        ];
        let p = propose(&cols, &[], &existing, None);
        assert_eq!(p.id_column.as_deref(), Some("id"));
        assert_eq!(
            mapping(&p),
            [
                ("email", "EMAIL"),
                ("first_name", "firstName"),
                ("score", "score"),
                ("city", "city")
            ]
        );
        assert_eq!(p.added, ["city"]);
        // The existing properties are as they were, first and in their order.
        assert_eq!(p.model.properties[..4], existing.properties[..]);
        assert_eq!(p.model.properties.len(), 5);
        assert_eq!(p.issues.len(), 1, "{:?}", p.issues);
        assert_eq!(p.issues[0].column, "age");
        assert!(
            p.issues[0]
                .message
                .contains("existing property `age`, which is int"),
            "{}",
            p.issues[0].message
        );
    }

    #[test]
    fn a_column_the_model_cannot_hold_is_reported() {
        let cols = [
            col("id", "string"),
            ColumnIn {
                name: "avatar".into(),
                property: None,
                native_type: "bytea".into(),
                json: false,
            },
            col("null", "string"),
        ];
        let p = propose(&cols, &[], &Schema::default(), None);
        assert!(p.added.is_empty());
        assert_eq!(p.issues.len(), 2);
        assert!(p.issues[0]
            .message
            .contains("`avatar` is bytea, which the Customer Model cannot hold"));
        assert!(p.issues[1].message.contains("cannot be named"));
    }

    #[test]
    fn a_missing_id_column_is_reported_and_none_is_guessed_for_it() {
        let cols = [col("user_id", "string"), col("email", "string")];
        let p = propose(&cols, &[], &Schema::default(), Some("customer"));
        assert_eq!(p.id_column, None);
        assert_eq!(p.added, ["user_id", "email"]);
        assert_eq!(p.issues[0].column, "customer");
        let p = propose(&cols, &[], &Schema::default(), Some("USER_ID"));
        assert_eq!(p.id_column.as_deref(), Some("user_id"));
        // No id-like column of an id's type: none is guessed.
        let p = propose(&[col("ref_id", "float")], &[], &Schema::default(), None);
        assert_eq!(p.id_column, None);
    }

    fn row(id: i64, attrs: serde_json::Value) -> Vec<Value> {
        vec![Value::Int(id), Value::json(attrs)]
    }

    #[test]
    fn json_objects_become_nested_properties_mapped_leaf_by_leaf() {
        let cols = [col("id", "int"), col("attrs", "json")];
        let rows = [
            row(
                1,
                json!({"firstName": "Ada", "age": 36, "vip": true, "address": {"city": "Rome", "zip": "00100"},
                       "tags": ["a", "b"], "score": 1}),
            ),
            row(
                2,
                json!({"firstName": "Bo", "age": null, "score": 2.5, "mixed": 1, "address": {"city": "Oslo"},
                       "orders": [{"sku": "x", "qty": 2}]}),
            ),
            vec![Value::Int(3), Value::Null],
            // Text handed over by a driver that does not parse JSON.
            vec![
                Value::Int(4),
                Value::String(r#"{"mixed": "one", "tags": []}"#.into()),
            ],
        ];
        let p = propose(&cols, &rows, &Schema::default(), None);
        let wire = serde_json::to_value(p.model_wire()).unwrap();
        let attrs = &wire["properties"][0];
        assert_eq!(attrs["name"], "attrs");
        assert_eq!(attrs["type"], "object");
        let nested: Vec<(String, String)> = attrs["properties"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["name"].as_str().unwrap().into(),
                    p["type"].as_str().unwrap().into(),
                )
            })
            .collect();
        let expect = [
            ("first_name", "string"),
            ("age", "int"),
            ("vip", "boolean"),
            ("address", "object"),
            ("tags", "array(string)"),
            ("score", "float"),
            ("mixed", "json"),
            ("orders", "array(object)"),
        ];
        assert_eq!(nested, expect.map(|(a, b)| (a.to_string(), b.to_string())));
        assert_eq!(
            mapping(&p),
            [
                ("attrs.first_name", "attrs.firstName"),
                ("attrs.age", "attrs.age"),
                ("attrs.vip", "attrs.vip"),
                ("attrs.address.city", "attrs.address.city"),
                ("attrs.address.zip", "attrs.address.zip"),
                ("attrs.tags", "attrs.tags"),
                ("attrs.score", "attrs.score"),
                ("attrs.mixed", "attrs.mixed"),
                ("attrs.orders", "attrs.orders"),
            ]
        );
        // The proposal is a model the API accepts as it is.
        let model = Schema::from_wire(&p.model_wire()).unwrap();
        assert_eq!(
            model.resolve("attrs.address.city").unwrap().ty.name(),
            "string"
        );
        assert_eq!(
            model.resolve("attrs.orders").unwrap().ty.name(),
            "array(object)"
        );
    }

    #[test]
    fn json_that_is_not_an_object_stays_json_or_becomes_an_array() {
        let cols = [
            col("id", "int"),
            col("doc", "json"),
            col("list", "json"),
            col("empty", "json"),
        ];
        let rows = [
            vec![
                Value::Int(1),
                Value::json(json!(5)),
                Value::json(json!([1, 2])),
                Value::Null,
            ],
            vec![
                Value::Int(2),
                Value::json(json!({"a": 1})),
                Value::json(json!([3])),
                Value::Null,
            ],
        ];
        let p = propose(&cols, &rows, &Schema::default(), None);
        let types: Vec<String> = p.model.properties.iter().map(|p| p.ty.name()).collect();
        assert_eq!(types, ["json", "array(int)", "json"]);
    }

    #[test]
    fn the_json_walk_is_bounded_in_depth_width_and_count() {
        let cols = [col("id", "int"), col("deep", "json"), col("wide", "json")];
        let mut deep = json!("leaf");
        for i in 0..50 {
            deep = json!({ format!("k{i}"): deep });
        }
        let wide: Map<String, Json> = (0..1000).map(|i| (format!("k{i}"), json!(i))).collect();
        let rows = [vec![
            Value::Int(1),
            Value::json(deep),
            Value::json(Json::Object(wide)),
        ]];
        let p = propose(&cols, &rows, &Schema::default(), None);
        assert_eq!(p.model.properties[1].ty, PropertyType::Json);
        let depth = |mut ty: &PropertyType| {
            let mut d = 0;
            while let PropertyType::Object(props) = ty {
                ty = &props[0].ty;
                d += 1;
            }
            d
        };
        assert_eq!(depth(&p.model.properties[0].ty), MAX_DEPTH);
        // Arrays nested deeply end the walk too (arrays of arrays are proposed as `array(json)`).
        let mut nested = json!(1);
        for _ in 0..100 {
            nested = json!([nested]);
        }
        let arrays = propose(
            &[col("id", "int"), col("list", "json")],
            &[vec![Value::Int(1), Value::json(nested)]],
            &Schema::default(),
            None,
        );
        assert_eq!(arrays.model.properties[0].ty.name(), "array(json)");
        assert!(p.issues.iter().any(|i| i.message.contains("deeper than")));
        assert!(p
            .issues
            .iter()
            .any(|i| i.message.contains("more than 64 keys")));

        // Many columns: the proposal stops adding at its bound and says so.
        let many: Vec<ColumnIn> = (0..MAX_PROPERTIES + 10)
            .map(|i| col(&format!("c{i}"), "string"))
            .collect();
        let p = propose(&many, &[], &Schema::default(), Some("c0"));
        assert_eq!(p.added.len(), MAX_PROPERTIES);
        assert_eq!(p.issues.len(), 9);
    }

    #[test]
    fn a_json_column_onto_an_existing_object_maps_its_known_keys() {
        let existing = model(json!({"properties": [
            {"name": "address", "type": "object", "properties": [
                {"name": "city", "type": "string"},
                {"name": "geo", "type": "object", "properties": [{"name": "lat", "type": "float"}]},
            ]},
        ]}));
        let cols = [col("id", "string"), col("Address", "json")];
        let rows = [vec![
            Value::String("c1".into()),
            Value::json(
                json!({"City": "Rome", "street": "Via Roma", "geo": {"lat": 41.9, "lon": 12.5}}),
            ),
        ]];
        let p = propose(&cols, &rows, &existing, None);
        assert_eq!(p.model, existing);
        assert_eq!(
            mapping(&p),
            [
                ("address.city", "Address.City"),
                ("address.geo.lat", "Address.geo.lat")
            ]
        );
        let reported: Vec<&str> = p.issues.iter().map(|i| i.column.as_str()).collect();
        assert_eq!(reported, ["Address.street", "Address.geo.lon"]);
    }
}
