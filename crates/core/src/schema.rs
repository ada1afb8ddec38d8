//! The Customer Model: typed profile properties, nested objects and arrays, and profile validation.
//!
//! Profiles are stored as JSON documents in a *normalized* form, so that the profile store, the filter
//! pushdown and the in-memory evaluator all see one representation:
//!
//! | type            | normalized JSON                                                        |
//! |-----------------|------------------------------------------------------------------------|
//! | `string`        | string                                                                 |
//! | `boolean`       | `true` / `false`                                                       |
//! | `int`           | integer number (i64)                                                   |
//! | `float`         | number                                                                 |
//! | `decimal(p,s)`  | string with exactly `s` fractional digits (`"1234.50"`), exact         |
//! | `datetime`      | RFC 3339 string in UTC with `Z`, fractional seconds only when present  |
//! | `date`          | `YYYY-MM-DD`                                                           |
//! | `time`          | `hh:mm:ss[.ffffff]`                                                    |
//! | `uuid`          | lower-case hyphenated string                                           |
//! | `json`          | any JSON value                                                         |
//! | `array(T)`      | array of normalized `T`                                                |
//! | `object`        | object of its declared properties (unknown keys are refused)           |
//!
//! Input is accepted more loosely (numbers as strings, as CSV files carry them; datetimes with offsets) and
//! normalized once, when a profile is loaded.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, NaiveDate, NaiveTime, SecondsFormat, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};

use crate::errors::FieldErrors;

mod text;
pub use text::{merge_profile_text, TextRefused};

/// Name of the identifier every profile has.
pub const ID: &str = "_id";
/// Name of the last-update time every profile has.
pub const UPDATED_AT: &str = "_updated_at";
/// Longest accepted profile id, in bytes.
pub const MAX_ID_LEN: usize = 256;
/// Largest decimal precision Sluice computes with exactly (the range of `rust_decimal`).
pub const MAX_DECIMAL_PRECISION: u8 = 28;

/// The type of a Customer Model property.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PropertyType {
    String,
    Boolean,
    Int,
    Float,
    Decimal {
        precision: u8,
        scale: u8,
    },
    DateTime,
    Date,
    Time,
    Uuid,
    Json,
    Array(Box<PropertyType>),
    /// An object with nested properties, addressed by dotted paths (`address.city`).
    Object(Vec<Property>),
}

impl PropertyType {
    /// The type's name as written in the Customer Model (`decimal(12,2)`, `array(string)`, `object`).
    pub fn name(&self) -> String {
        self.to_string()
    }

    pub fn is_numeric(&self) -> bool {
        matches!(self, Self::Int | Self::Float | Self::Decimal { .. })
    }

    pub fn is_temporal(&self) -> bool {
        matches!(self, Self::DateTime | Self::Date | Self::Time)
    }

    /// Whether every value of `self` is also a valid value of `other`, so that changing a property from
    /// `self` to `other` cannot break stored data.
    pub fn widens_to(&self, other: &PropertyType) -> bool {
        use PropertyType::*;
        match (self, other) {
            (a, b) if a == b => true,
            (_, Json) => true,
            (Int, Float) => true,
            (Int, Decimal { precision, scale }) => precision - scale >= 19,
            (
                Decimal {
                    precision: p1,
                    scale: s1,
                },
                Decimal {
                    precision: p2,
                    scale: s2,
                },
            ) => s2 >= s1 && (p2 - s2) >= (p1 - s1),
            (Array(a), Array(b)) => a.widens_to(b),
            _ => false,
        }
    }
}

impl fmt::Display for PropertyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::String => f.write_str("string"),
            Self::Boolean => f.write_str("boolean"),
            Self::Int => f.write_str("int"),
            Self::Float => f.write_str("float"),
            Self::Decimal { precision, scale } => write!(f, "decimal({precision},{scale})"),
            Self::DateTime => f.write_str("datetime"),
            Self::Date => f.write_str("date"),
            Self::Time => f.write_str("time"),
            Self::Uuid => f.write_str("uuid"),
            Self::Json => f.write_str("json"),
            Self::Array(inner) => write!(f, "array({inner})"),
            Self::Object(_) => f.write_str("object"),
        }
    }
}

/// Parses a type name. `object` (also inside `array(object)`) parses with no properties; the caller
/// attaches the declared ones.
impl FromStr for PropertyType {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        let lower = t.to_ascii_lowercase();
        let simple = match lower.as_str() {
            "string" | "text" => Some(Self::String),
            "boolean" | "bool" => Some(Self::Boolean),
            "int" | "integer" => Some(Self::Int),
            "float" | "double" => Some(Self::Float),
            "datetime" | "timestamp" => Some(Self::DateTime),
            "date" => Some(Self::Date),
            "time" => Some(Self::Time),
            "uuid" => Some(Self::Uuid),
            "json" => Some(Self::Json),
            "object" => Some(Self::Object(Vec::new())),
            "decimal" => Some(Self::Decimal {
                precision: 18,
                scale: 2,
            }),
            _ => None,
        };
        if let Some(ty) = simple {
            return Ok(ty);
        }
        if let Some(args) = lower
            .strip_prefix("decimal(")
            .and_then(|r| r.strip_suffix(')'))
        {
            let parts: Vec<&str> = args.split(',').map(str::trim).collect();
            let (p, s) = match parts.as_slice() {
                [p] => (p.parse::<u8>().ok(), Some(0)),
                [p, s] => (p.parse::<u8>().ok(), s.parse::<u8>().ok()),
                _ => (None, None),
            };
            return match (p, s) {
                (Some(p), Some(s)) if (1..=MAX_DECIMAL_PRECISION).contains(&p) && s <= p => {
                    Ok(Self::Decimal { precision: p, scale: s })
                }
                (Some(p), Some(_)) if p > MAX_DECIMAL_PRECISION || p == 0 => Err(format!(
                    "decimal precision must be between 1 and {MAX_DECIMAL_PRECISION}, got `{t}`"
                )),
                _ => Err(format!(
                    "`{t}` is not a valid decimal type: write decimal(precision,scale) with scale ≤ precision"
                )),
            };
        }
        if let Some(inner) = lower
            .strip_prefix("array(")
            .and_then(|r| r.strip_suffix(')'))
        {
            let inner: PropertyType = inner.parse()?;
            return Ok(Self::Array(Box::new(inner)));
        }
        Err(format!(
            "unknown type `{t}`: expected string, boolean, int, float, decimal(p,s), datetime, date, time, \
             uuid, json, array(T) or object"
        ))
    }
}

/// One property of the Customer Model (or of a nested object).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Property {
    pub name: String,
    pub ty: PropertyType,
    pub nullable: bool,
    pub description: Option<String>,
}

/// The wire form of a property, as in `GET /v1/profile-schema`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PropertyWire {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: String,
    #[serde(default = "default_true")]
    pub nullable: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub properties: Option<Vec<PropertyWire>>,
}

fn default_true() -> bool {
    true
}

/// The wire form of the whole Customer Model.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct SchemaWire {
    pub properties: Vec<PropertyWire>,
}

/// The Customer Model: the validated list of top-level properties.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Schema {
    pub properties: Vec<Property>,
}

/// Checks a property name: letters, digits and `_`, not starting with a digit or `_` (names starting
/// with `_` are Sluice's own), at most 128 bytes.
pub fn check_property_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("property name is empty".into());
    }
    if name.len() > 128 {
        return Err(format!("property name `{name}` is longer than 128 bytes"));
    }
    if name.starts_with('_') {
        return Err(format!(
            "property name `{name}` starts with `_`, which is reserved for _id and _updated_at"
        ));
    }
    let mut chars = name.chars();
    let first = chars.next().unwrap_or('0');
    if !(first.is_alphabetic()) || !name.chars().all(|c| c.is_alphanumeric() || c == '_') {
        return Err(format!(
            "property name `{name}` must start with a letter and contain only letters, digits and `_`"
        ));
    }
    Ok(())
}

fn properties_from_wire(
    wire: &[PropertyWire],
    path: &str,
    errors: &mut FieldErrors,
) -> Vec<Property> {
    let mut out = Vec::with_capacity(wire.len());
    let mut seen = std::collections::HashSet::new();
    for (i, p) in wire.iter().enumerate() {
        let here = format!("{path}[{i}]");
        if let Err(e) = check_property_name(&p.name) {
            errors.add(format!("{here}.name"), e);
        } else if !seen.insert(p.name.to_ascii_lowercase()) {
            errors.add(
                format!("{here}.name"),
                format!("property `{}` is declared twice", p.name),
            );
        }
        let ty = match p.ty.parse::<PropertyType>() {
            Ok(ty) => ty,
            Err(e) => {
                errors.add(format!("{here}.type"), e);
                continue;
            }
        };
        let ty = attach_object_properties(ty, p, &here, errors);
        out.push(Property {
            name: p.name.clone(),
            ty,
            nullable: p.nullable,
            description: p.description.clone(),
        });
    }
    out
}

fn attach_object_properties(
    ty: PropertyType,
    p: &PropertyWire,
    here: &str,
    errors: &mut FieldErrors,
) -> PropertyType {
    match ty {
        PropertyType::Object(_) => {
            let nested = p.properties.as_deref().unwrap_or(&[]);
            if nested.is_empty() {
                errors.add(
                    format!("{here}.properties"),
                    "an object property needs at least one nested property",
                );
            }
            PropertyType::Object(properties_from_wire(
                nested,
                &format!("{here}.properties"),
                errors,
            ))
        }
        PropertyType::Array(inner) => {
            PropertyType::Array(Box::new(attach_object_properties(*inner, p, here, errors)))
        }
        other => {
            if p.properties.is_some() {
                errors.add(
                    format!("{here}.properties"),
                    format!(
                        "only object properties have nested properties, `{}` is {}",
                        p.name, other
                    ),
                );
            }
            other
        }
    }
}

fn properties_to_wire(props: &[Property]) -> Vec<PropertyWire> {
    props
        .iter()
        .map(|p| {
            let nested = match &p.ty {
                PropertyType::Object(inner) => Some(properties_to_wire(inner)),
                PropertyType::Array(inner) => match inner.as_ref() {
                    PropertyType::Object(inner) => Some(properties_to_wire(inner)),
                    _ => None,
                },
                _ => None,
            };
            PropertyWire {
                name: p.name.clone(),
                ty: p.ty.to_string(),
                nullable: p.nullable,
                description: p.description.clone(),
                properties: nested,
            }
        })
        .collect()
}

/// A property path resolved against the Customer Model.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved<'a> {
    pub ty: std::borrow::Cow<'a, PropertyType>,
    pub nullable: bool,
}

impl Schema {
    /// Validates the wire form; every problem is reported with its path (`properties[2].type`).
    pub fn from_wire(wire: &SchemaWire) -> Result<Schema, FieldErrors> {
        let mut errors = FieldErrors::new();
        let properties = properties_from_wire(&wire.properties, "properties", &mut errors);
        errors.into_result(Schema { properties })
    }

    pub fn to_wire(&self) -> SchemaWire {
        SchemaWire {
            properties: properties_to_wire(&self.properties),
        }
    }

    /// Resolves a dotted path (`address.city`, `_id`, `_updated_at`) to its type.
    pub fn resolve(&self, path: &str) -> Option<Resolved<'_>> {
        use std::borrow::Cow;
        match path {
            ID => {
                return Some(Resolved {
                    ty: Cow::Owned(PropertyType::String),
                    nullable: false,
                })
            }
            UPDATED_AT => {
                return Some(Resolved {
                    ty: Cow::Owned(PropertyType::DateTime),
                    nullable: false,
                })
            }
            _ => {}
        }
        let mut props = &self.properties;
        let mut segments = path.split('.').peekable();
        while let Some(seg) = segments.next() {
            let p = props.iter().find(|p| p.name == seg)?;
            if segments.peek().is_none() {
                return Some(Resolved {
                    ty: Cow::Borrowed(&p.ty),
                    nullable: p.nullable,
                });
            }
            match &p.ty {
                PropertyType::Object(inner) => props = inner,
                _ => return None,
            }
        }
        None
    }

    /// Every addressable path with its type, depth first (objects listed before their properties).
    pub fn paths(&self) -> Vec<(String, PropertyType)> {
        fn walk(props: &[Property], prefix: &str, out: &mut Vec<(String, PropertyType)>) {
            for p in props {
                let path = if prefix.is_empty() {
                    p.name.clone()
                } else {
                    format!("{prefix}.{}", p.name)
                };
                out.push((path.clone(), p.ty.clone()));
                if let PropertyType::Object(inner) = &p.ty {
                    walk(inner, &path, out);
                }
            }
        }
        let mut out = vec![
            (ID.to_string(), PropertyType::String),
            (UPDATED_AT.to_string(), PropertyType::DateTime),
        ];
        walk(&self.properties, "", &mut out);
        out
    }

    /// Paths whose type changed or that were removed going from `self` to `new`.
    pub fn changes_to(&self, new: &Schema) -> Vec<SchemaChange> {
        let old_paths = self.paths();
        let new_paths = new.paths();
        let mut out = Vec::new();
        for (path, ty) in &old_paths {
            match new_paths.iter().find(|(p, _)| p == path) {
                None => out.push(SchemaChange::Removed { path: path.clone() }),
                Some((_, new_ty)) if !same_shape(ty, new_ty) => {
                    out.push(SchemaChange::TypeChanged {
                        path: path.clone(),
                        from: ty.clone(),
                        to: new_ty.clone(),
                    })
                }
                _ => {}
            }
        }
        for (path, ty) in &new_paths {
            if !old_paths.iter().any(|(p, _)| p == path) {
                out.push(SchemaChange::Added {
                    path: path.clone(),
                    ty: ty.clone(),
                });
            }
        }
        out
    }

    /// Validates one input profile and returns its id and normalized properties (without `_id` and
    /// `_updated_at`). Every problem is listed, each naming its property path.
    pub fn validate_profile(
        &self,
        input: &Map<String, Json>,
    ) -> Result<(String, Map<String, Json>), Vec<String>> {
        self.validate_owned(input.clone())
            .map_err(|rejected| rejected.errors)
    }

    /// [`Schema::validate_profile`] of a profile the caller gives up: its values are moved into the
    /// normalized document instead of copied (most strings are stored as they came), and property paths
    /// are spelled out only for an error. A rejection keeps the `_id` as sent, for the caller to name.
    pub fn validate_owned(
        &self,
        input: Map<String, Json>,
    ) -> Result<(String, Map<String, Json>), InvalidProfile> {
        let mut errors = Vec::new();
        let (sent_id, doc) = self.normalize_doc(input, &mut errors);
        let id = match sent_id {
            Some(Json::String(s)) => match id_problem(&s) {
                None => Ok(s),
                Some(problem) => Err((Some(Json::String(s)), problem)),
            },
            Some(Json::Number(n)) => Ok(n.to_string()),
            Some(other) => {
                let message = format!("`_id` must be a string, got {}", json_kind(&other));
                Err((Some(other), message))
            }
            None => Err((None, "`_id` is missing".to_string())),
        };
        match id {
            Ok(id) if errors.is_empty() => Ok((id, doc)),
            Ok(id) => Err(InvalidProfile {
                id: Some(Json::String(id)),
                errors,
            }),
            Err((id, first)) => {
                errors.insert(0, first);
                Err(InvalidProfile { id, errors })
            }
        }
    }

    /// The properties of the profile `id` (a document without `_id`), validated and normalized by
    /// moving as [`Schema::validate_owned`] does, with the same problems listed.
    pub fn validate_properties(
        &self,
        id: &str,
        doc: Map<String, Json>,
    ) -> Result<Map<String, Json>, Vec<String>> {
        let mut errors = Vec::new();
        if let Some(problem) = id_problem(id) {
            errors.push(problem);
        }
        let (_, doc) = self.normalize_doc(doc, &mut errors);
        if errors.is_empty() {
            Ok(doc)
        } else {
            Err(errors)
        }
    }

    /// [`Self::validate_properties`] of a document given as its entries, each normalized where it
    /// stands (the same values and the same problems), for a caller that writes the document out
    /// itself rather than through a map. The keys are expected distinct, as a map's are.
    pub fn validate_entries(
        &self,
        id: &str,
        entries: &mut Vec<(&str, Json)>,
    ) -> Result<(), Vec<String>> {
        let mut errors = Vec::new();
        if let Some(problem) = id_problem(id) {
            errors.push(problem);
        }
        entries.retain_mut(|(key, value)| {
            key != &ID && key != &UPDATED_AT && self.keep_entry(key, value, &mut errors)
        });
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// Normalizes the value of the top-level property `key` in place; `false` (and why, in `errors`)
    /// when it is not kept.
    fn keep_entry(&self, key: &str, value: &mut Json, errors: &mut Vec<String>) -> bool {
        match self.properties.iter().find(|p| p.name == key) {
            None => {
                errors.push(format!("`{key}` is not a property of the Customer Model"));
                false
            }
            Some(p) => keep_normalized(p, value, At::Top(key), errors),
        }
    }

    /// The normalized properties of `input` and the `_id` it was sent with; `_updated_at` is dropped.
    fn normalize_doc(
        &self,
        input: Map<String, Json>,
        errors: &mut Vec<String>,
    ) -> (Option<Json>, Map<String, Json>) {
        let mut sent_id = None;
        // Normalized in place: the keys stay where they are, the map is neither rebuilt nor rehashed.
        let mut doc = input;
        doc.retain(|key, value| {
            if key == ID {
                sent_id = Some(std::mem::take(value));
                return false;
            }
            key != UPDATED_AT && self.keep_entry(key, value, errors)
        });
        (sent_id, doc)
    }
}

/// What is wrong with a profile id given as text, if anything.
fn id_problem(id: &str) -> Option<String> {
    if id.len() > MAX_ID_LEN {
        Some(format!("`_id` is longer than {MAX_ID_LEN} bytes"))
    } else if id.trim().is_empty() {
        Some("`_id` is empty".to_string())
    } else {
        None
    }
}

/// A profile refused by [`Schema::validate_owned`].
#[derive(Debug, Clone, PartialEq)]
pub struct InvalidProfile {
    /// The `_id` as sent, if it was.
    pub id: Option<Json>,
    /// Every problem, each naming its property path.
    pub errors: Vec<String>,
}

/// Where a value sits in a profile; written out only when an error names it.
#[derive(Clone, Copy)]
enum At<'a> {
    Top(&'a str),
    Key(&'a At<'a>, &'a str),
    Index(&'a At<'a>, usize),
}

impl fmt::Display for At<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            At::Top(k) => f.write_str(k),
            At::Key(parent, k) => write!(f, "{parent}.{k}"),
            At::Index(parent, i) => write!(f, "{parent}[{i}]"),
        }
    }
}

/// One difference between two versions of the Customer Model.
#[derive(Debug, Clone, PartialEq)]
pub enum SchemaChange {
    Added {
        path: String,
        ty: PropertyType,
    },
    Removed {
        path: String,
    },
    TypeChanged {
        path: String,
        from: PropertyType,
        to: PropertyType,
    },
}

impl SchemaChange {
    pub fn path(&self) -> &str {
        match self {
            Self::Added { path, .. } | Self::Removed { path } | Self::TypeChanged { path, .. } => {
                path
            }
        }
    }
}

/// Type equality that ignores the nested properties of objects (their own paths are compared separately).
fn same_shape(a: &PropertyType, b: &PropertyType) -> bool {
    match (a, b) {
        (PropertyType::Object(_), PropertyType::Object(_)) => true,
        (PropertyType::Array(x), PropertyType::Array(y)) => same_shape(x, y),
        _ => a == b,
    }
}

/// Normalizes a property's value where it is in its map; `false` when it does not fit (it is then left
/// out, its problems added to `errors`).
fn keep_normalized(p: &Property, value: &mut Json, at: At<'_>, errors: &mut Vec<String>) -> bool {
    match normalize_property_owned(p, std::mem::take(value), at, errors) {
        Some(v) => {
            *value = v;
            true
        }
        None => false,
    }
}

fn normalize_property_owned(
    p: &Property,
    value: Json,
    at: At<'_>,
    errors: &mut Vec<String>,
) -> Option<Json> {
    if value.is_null() {
        if p.nullable {
            return Some(Json::Null);
        }
        errors.push(format!("`{at}` must not be null"));
        return None;
    }
    normalize_value_owned(&p.ty, value, at, errors)
}

/// Normalizes one non-null value of type `ty`; errors name `path`.
pub fn normalize_value(ty: &PropertyType, value: &Json, path: &str) -> Result<Json, Vec<String>> {
    let mut errors = Vec::new();
    match normalize_value_owned(ty, value.clone(), At::Top(path), &mut errors) {
        Some(v) if errors.is_empty() => Ok(v),
        _ => Err(errors),
    }
}

/// [`normalize_value`] by moving: `None` when it does not fit, its problems added to `errors`.
fn normalize_value_owned(
    ty: &PropertyType,
    value: Json,
    at: At<'_>,
    errors: &mut Vec<String>,
) -> Option<Json> {
    match ty {
        PropertyType::Object(props) => {
            let Json::Object(map) = value else {
                errors.push(format!(
                    "`{at}` must be an object, got {}",
                    json_kind(&value)
                ));
                return None;
            };
            let before = errors.len();
            let mut map = map;
            map.retain(|k, v| match props.iter().find(|p| p.name == *k) {
                None => {
                    errors.push(format!(
                        "`{}` is not a property of the Customer Model",
                        At::Key(&at, k)
                    ));
                    false
                }
                Some(p) => keep_normalized(p, v, At::Key(&at, k), errors),
            });
            (errors.len() == before).then_some(Json::Object(map))
        }
        PropertyType::Array(inner) => {
            let Json::Array(items) = value else {
                errors.push(format!(
                    "`{at}` must be an array, got {}",
                    json_kind(&value)
                ));
                return None;
            };
            let before = errors.len();
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.into_iter().enumerate() {
                if item.is_null() {
                    out.push(Json::Null);
                    continue;
                }
                if let Some(v) = normalize_value_owned(inner, item, At::Index(&at, i), errors) {
                    out.push(v);
                }
            }
            (errors.len() == before).then_some(Json::Array(out))
        }
        // What is already in its normalized form is kept as it is, not copied.
        PropertyType::String if value.is_string() => Some(value),
        PropertyType::Boolean if value.is_boolean() => Some(value),
        PropertyType::Json => Some(value),
        scalar => match normalize_scalar(scalar, &value) {
            Ok(v) => Some(v),
            Err(e) => {
                errors.push(format!("`{at}`: {e}"));
                None
            }
        },
    }
}

/// Normalizes a scalar value; the error says what was expected.
pub fn normalize_scalar(ty: &PropertyType, value: &Json) -> Result<Json, String> {
    let text = value.as_str();
    match ty {
        PropertyType::String => match value {
            Json::String(_) => Ok(value.clone()),
            Json::Number(n) => Ok(Json::String(n.to_string())),
            Json::Bool(b) => Ok(Json::String(b.to_string())),
            _ => Err(format!("expected a string, got {}", json_kind(value))),
        },
        PropertyType::Boolean => match value {
            Json::Bool(_) => Ok(value.clone()),
            Json::String(s) => match s.trim().to_ascii_lowercase().as_str() {
                "true" | "t" | "yes" | "1" => Ok(Json::Bool(true)),
                "false" | "f" | "no" | "0" => Ok(Json::Bool(false)),
                _ => Err(format!("expected a boolean, got \"{s}\"")),
            },
            _ => Err(format!("expected a boolean, got {}", json_kind(value))),
        },
        PropertyType::Int => {
            if let Some(i) = value.as_i64() {
                return Ok(Json::from(i));
            }
            if let Some(f) = value.as_f64().filter(|_| value.is_number()) {
                if f.fract() == 0.0 && f.abs() < 9.007_199_254_740_992e15 {
                    return Ok(Json::from(f as i64));
                }
                return Err(format!("expected an integer, got {value}"));
            }
            match text.map(str::trim).map(|s| s.parse::<i64>()) {
                Some(Ok(i)) => Ok(Json::from(i)),
                _ => Err(format!(
                    "expected an integer (64-bit), got {}",
                    describe(value)
                )),
            }
        }
        PropertyType::Float => {
            let f = match value {
                Json::Number(n) => n.as_f64(),
                Json::String(s) => s.trim().parse::<f64>().ok(),
                _ => None,
            };
            match f
                .filter(|f| f.is_finite())
                .and_then(serde_json::Number::from_f64)
            {
                Some(n) => Ok(Json::Number(n)),
                None => Err(format!("expected a finite number, got {}", describe(value))),
            }
        }
        PropertyType::Decimal { precision, scale } => {
            let d = parse_decimal_json(value)
                .ok_or_else(|| format!("expected a decimal number, got {}", describe(value)))?;
            let d = fit_decimal(d, *precision, *scale)?;
            Ok(Json::String(d.to_string()))
        }
        PropertyType::DateTime => {
            let s = text.ok_or_else(|| {
                format!(
                    "expected an RFC 3339 datetime string, got {}",
                    json_kind(value)
                )
            })?;
            let dt = parse_datetime(s)?;
            Ok(Json::String(format_datetime(&dt)))
        }
        PropertyType::Date => {
            let s = text.ok_or_else(|| {
                format!(
                    "expected a date string (YYYY-MM-DD), got {}",
                    json_kind(value)
                )
            })?;
            let d = parse_date(s.trim())
                .ok_or_else(|| format!("expected a date as YYYY-MM-DD, got \"{s}\""))?;
            Ok(Json::String(format_date(&d)))
        }
        PropertyType::Time => {
            let s = text.ok_or_else(|| {
                format!(
                    "expected a time string (hh:mm:ss), got {}",
                    json_kind(value)
                )
            })?;
            let t = parse_time(s)?;
            Ok(Json::String(format_time(&t)))
        }
        PropertyType::Uuid => {
            let s =
                text.ok_or_else(|| format!("expected a UUID string, got {}", json_kind(value)))?;
            let u = uuid::Uuid::parse_str(s.trim())
                .map_err(|_| format!("expected a UUID, got \"{s}\""))?;
            Ok(Json::String(u.hyphenated().to_string()))
        }
        PropertyType::Json => Ok(value.clone()),
        PropertyType::Array(_) | PropertyType::Object(_) => {
            unreachable!("handled by normalize_value")
        }
    }
}

fn parse_decimal_json(value: &Json) -> Option<Decimal> {
    match value {
        Json::Number(n) => {
            let s = n.to_string();
            Decimal::from_str(&s)
                .or_else(|_| Decimal::from_scientific(&s))
                .ok()
        }
        Json::String(s) => {
            let s = s.trim();
            Decimal::from_str(s)
                .or_else(|_| Decimal::from_scientific(s))
                .ok()
        }
        _ => None,
    }
}

/// Rounds `d` to `scale` digits (half away from zero is *not* applied: more digits than the scale is an
/// error, as silently rounding money is worse than refusing it) and checks the precision.
pub fn fit_decimal(d: Decimal, precision: u8, scale: u8) -> Result<Decimal, String> {
    let mut d = d.normalize();
    if d.scale() > scale as u32 {
        return Err(format!(
            "{d} has more than {scale} digits after the decimal point"
        ));
    }
    d.rescale(scale as u32);
    let int_digits = {
        let trunc = d.trunc().abs();
        if trunc.is_zero() {
            0
        } else {
            trunc.to_string().len() as u32
        }
    };
    if int_digits > (precision - scale) as u32 {
        return Err(format!("{d} does not fit decimal({precision},{scale})"));
    }
    Ok(d)
}

/// Parses RFC 3339 (and the common `YYYY-MM-DD hh:mm:ss[Z]` variant, taken as UTC when it has no offset).
pub fn parse_datetime(s: &str) -> Result<DateTime<Utc>, String> {
    let t = s.trim();
    if let Ok(dt) = DateTime::parse_from_rfc3339(t) {
        return Ok(dt.with_timezone(&Utc));
    }
    if let Ok(dt) = DateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S%.f%:z") {
        return Ok(dt.with_timezone(&Utc));
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(naive) = chrono::NaiveDateTime::parse_from_str(t, fmt) {
            return Ok(naive.and_utc());
        }
    }
    Err(format!(
        "expected an RFC 3339 datetime such as 2024-05-13T15:30:00Z, got \"{s}\""
    ))
}

/// The normalized text of a datetime: UTC, `Z`, fractional seconds only when not zero.
pub fn format_datetime(dt: &DateTime<Utc>) -> String {
    dt.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// A date as `%Y-%m-%d` reads it. The usual ten-character form is read directly: interpreting the format
/// string for every value showed in profiles of runs.
pub fn parse_date(s: &str) -> Option<NaiveDate> {
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| {
        b[r].iter().try_fold(0u32, |n, c| {
            c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
        })
    };
    if b.len() == 10 && b[4] == b'-' && b[7] == b'-' {
        if let (Some(y), Some(m), Some(d)) = (digits(0..4), digits(5..7), digits(8..10)) {
            return NaiveDate::from_ymd_opt(y as i32, m, d);
        }
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()
}

/// The normalized text of a date: what `%Y-%m-%d` writes.
pub fn format_date(d: &NaiveDate) -> String {
    let mut out = String::with_capacity(10);
    push_date(d, &mut out);
    out
}

/// Appends [`format_date`]'s text; years of four digits are written directly.
pub fn push_date(d: &NaiveDate, out: &mut String) {
    use chrono::Datelike;
    use std::fmt::Write;
    if (0..=9999).contains(&d.year()) {
        let _ = write!(out, "{:04}-{:02}-{:02}", d.year(), d.month(), d.day());
    } else {
        let _ = write!(out, "{}", d.format("%Y-%m-%d"));
    }
}

pub fn parse_time(s: &str) -> Result<NaiveTime, String> {
    let t = s.trim();
    NaiveTime::parse_from_str(t, "%H:%M:%S%.f")
        .or_else(|_| NaiveTime::parse_from_str(t, "%H:%M"))
        .map_err(|_| format!("expected a time as hh:mm:ss[.fff], got \"{s}\""))
}

pub fn format_time(t: &NaiveTime) -> String {
    use chrono::Timelike;
    if t.nanosecond() == 0 {
        t.format("%H:%M:%S").to_string()
    } else {
        t.format("%H:%M:%S%.6f").to_string()
    }
}

/// A short name of a JSON value's kind for messages.
pub fn json_kind(v: &Json) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

fn describe(v: &Json) -> String {
    match v {
        Json::String(s) => format!("\"{s}\""),
        Json::Number(n) => n.to_string(),
        other => json_kind(other).to_string(),
    }
}

/// Merges `update` into `stored`: keys of `update` replace those of `stored`, nested objects merge key by
/// key, keys not sent are kept (the `POST /v1/profiles` contract).
pub fn merge_profile(stored: &mut Map<String, Json>, update: Map<String, Json>) {
    for (k, v) in update {
        match (stored.get_mut(&k), v) {
            (Some(Json::Object(old)), Json::Object(new)) => merge_profile(old, new),
            (_, v) => {
                stored.insert(k, v);
            }
        }
    }
}

/// [`merge_profile`], telling whether `stored` changed: the same test as comparing it before and after,
/// without keeping a copy of it.
pub fn merge_profile_changed(stored: &mut Map<String, Json>, update: Map<String, Json>) -> bool {
    let mut changed = false;
    for (k, v) in update {
        match (stored.get_mut(&k), v) {
            (Some(Json::Object(old)), Json::Object(new)) => {
                changed |= merge_profile_changed(old, new);
            }
            (Some(old), v) => {
                if *old != v {
                    *old = v;
                    changed = true;
                }
            }
            (None, v) => {
                stored.insert(k, v);
                changed = true;
            }
        }
    }
    changed
}

/// Reads the value at a dotted path of a normalized document (`None` when absent).
pub fn get_path<'a>(doc: &'a Map<String, Json>, path: &str) -> Option<&'a Json> {
    let mut segments = path.split('.');
    let first = segments.next()?;
    let mut cur = doc.get(first)?;
    for seg in segments {
        cur = cur.as_object()?.get(seg)?;
    }
    Some(cur)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Schema {
        let wire: SchemaWire = serde_json::from_value(json!({"properties": [
            {"name": "email", "type": "string"},
            {"name": "age", "type": "int", "nullable": false},
            {"name": "ltv", "type": "decimal(12,2)"},
            {"name": "seen", "type": "datetime"},
            {"name": "born", "type": "date"},
            {"name": "wake", "type": "time"},
            {"name": "ref", "type": "uuid"},
            {"name": "vip", "type": "boolean"},
            {"name": "score", "type": "float"},
            {"name": "extra", "type": "json"},
            {"name": "tags", "type": "array(string)"},
            {"name": "address", "type": "object", "properties": [
                {"name": "city", "type": "string"},
                {"name": "geo", "type": "object", "properties": [{"name": "lat", "type": "float"}]}
            ]}
        ]}))
        .unwrap();
        Schema::from_wire(&wire).unwrap()
    }

    #[test]
    fn wire_round_trip() {
        let s = schema();
        let back = Schema::from_wire(&s.to_wire()).unwrap();
        assert_eq!(s, back);
        assert_eq!(
            s.resolve("address.geo.lat").unwrap().ty.as_ref(),
            &PropertyType::Float
        );
        assert_eq!(s.resolve("_id").unwrap().ty.as_ref(), &PropertyType::String);
        assert!(s.resolve("address.nope").is_none());
        assert!(s.resolve("email.x").is_none());
    }

    #[test]
    fn bad_schema_reports_every_field() {
        let wire: SchemaWire = serde_json::from_value(json!({"properties": [
            {"name": "_x", "type": "string"},
            {"name": "a", "type": "strin"},
            {"name": "b", "type": "decimal(40,2)"},
            {"name": "b", "type": "object"},
        ]}))
        .unwrap();
        let e = Schema::from_wire(&wire).unwrap_err();
        assert!(e.get("properties[0].name").is_some());
        assert!(e.get("properties[1].type").is_some());
        assert!(e.get("properties[2].type").is_some());
        assert!(e.get("properties[3].name").is_some());
        assert!(e.get("properties[3].properties").is_some());
    }

    #[test]
    fn profiles_are_normalized() {
        let s = schema();
        let input = json!({"_id": "c1", "email": "Zoë@example.com", "age": "42", "ltv": 12.5,
            "seen": "2024-05-13T17:30:00+02:00", "born": "1990-01-02", "wake": "07:30",
            "ref": "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11", "vip": "yes", "score": 1.5,
            "extra": {"k": [1]}, "tags": ["a", "b"], "address": {"city": "Zürich", "geo": {"lat": "47.37"}}});
        let (id, doc) = s.validate_profile(input.as_object().unwrap()).unwrap();
        assert_eq!(id, "c1");
        assert_eq!(doc["age"], json!(42));
        assert_eq!(doc["ltv"], json!("12.50"));
        assert_eq!(doc["seen"], json!("2024-05-13T15:30:00Z"));
        assert_eq!(doc["wake"], json!("07:30:00"));
        assert_eq!(doc["ref"], json!("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"));
        assert_eq!(doc["vip"], json!(true));
        assert_eq!(doc["address"]["geo"]["lat"], json!(47.37));
    }

    #[test]
    fn invalid_profiles_list_every_problem() {
        let s = schema();
        let input = json!({"email": 5, "age": null, "ltv": "1.234", "seen": "yesterday", "nope": 1,
            "address": {"zip": "x"}, "tags": [1, {"a": 1}]});
        let errs = s.validate_profile(input.as_object().unwrap()).unwrap_err();
        let all = errs.join("\n");
        assert!(all.contains("`_id` is missing"), "{all}");
        assert!(all.contains("`age` must not be null"), "{all}");
        assert!(all.contains("`ltv`"), "{all}");
        assert!(all.contains("`seen`"), "{all}");
        assert!(all.contains("`nope` is not a property"), "{all}");
        assert!(all.contains("`address.zip` is not a property"), "{all}");
        assert!(all.contains("`tags[1]`"), "{all}");
    }

    #[test]
    fn a_rejection_lists_the_id_first_and_keeps_it_as_sent() {
        let s = schema();
        let input = json!({"email": 5, "_id": "", "address": {"geo": {"lat": "n", "x": 1}},
            "tags": ["a", null, {"b": 1}]});
        let rejected = s
            .validate_owned(input.as_object().unwrap().clone())
            .unwrap_err();
        assert_eq!(rejected.id, Some(json!("")));
        assert_eq!(
            rejected.errors,
            [
                "`_id` is empty",
                "`address.geo.lat`: expected a finite number, got \"n\"",
                "`address.geo.x` is not a property of the Customer Model",
                "`tags[2]`: expected a string, got an object",
            ]
        );
        let rejected = s
            .validate_owned(json!({"_id": 7, "age": null}).as_object().unwrap().clone())
            .unwrap_err();
        assert_eq!(rejected.id, Some(json!("7")));
        assert_eq!(rejected.errors, ["`age` must not be null"]);
        // The same problems, by the function a source row is validated with.
        let errors = s
            .validate_properties(" ", json!({"age": null}).as_object().unwrap().clone())
            .unwrap_err();
        assert_eq!(errors, ["`_id` is empty", "`age` must not be null"]);
    }

    #[test]
    fn properties_validated_by_moving_equal_the_copied_ones() {
        let s = schema();
        let input = json!({"_id": "c1", "_updated_at": "x", "email": "a@x", "vip": false, "age": 3,
            "extra": {"k": [1]}, "tags": ["a", null], "address": {"city": "Rome", "geo": {"lat": 1.5}}});
        let (id, doc) = s.validate_profile(input.as_object().unwrap()).unwrap();
        let mut props = input.as_object().unwrap().clone();
        props.shift_remove(ID);
        props.shift_remove(UPDATED_AT);
        assert_eq!(s.validate_properties(&id, props.clone()).unwrap(), doc);
        // Key order is kept: it is the stored text and what a source row's hash covers.
        let keys: Vec<&String> = doc.keys().collect();
        assert_eq!(keys, props.keys().collect::<Vec<_>>());
    }

    #[test]
    fn entries_validate_as_their_map_does() {
        let s = schema();
        let docs = [
            json!({"email": "a@x", "ltv": "12.5", "seen": "2026-12-06T10:00:00.5+01:00", "vip": "yes",
                   "score": 2, "age": "7", "extra": {"k": [1]}, "tags": ["a"],
                   "address": {"city": "Rome", "geo": {"lat": "1.5"}}, "born": null}),
            json!({"age": null, "ltv": "x", "nope": 1, "_updated_at": "x", "ref": "not a uuid"}),
            json!({"age": 1.5, "tags": ["a", {}], "address": {"geo": {"x": 1}}}),
        ];
        for (id, doc) in [
            ("c1", &docs[0]),
            (" ", &docs[0]),
            ("c2", &docs[1]),
            ("c3", &docs[2]),
        ] {
            let map = doc.as_object().unwrap().clone();
            let mut entries: Vec<(&str, Json)> =
                map.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
            let by_entries = s.validate_entries(id, &mut entries).map(|()| {
                entries
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v))
                    .collect::<Map<String, Json>>()
            });
            assert_eq!(by_entries, s.validate_properties(id, map), "{id}: {doc}");
        }
    }

    #[test]
    fn a_merge_tells_whether_it_changed_the_profile() {
        let cases = [
            (json!({"a": 1, "o": {"p": 1}}), json!({"a": 1}), false),
            (
                json!({"a": 1, "o": {"p": 1}}),
                json!({"o": {"p": 1}}),
                false,
            ),
            (json!({"a": 1, "o": {"p": 1}}), json!({"o": {"q": 1}}), true),
            (json!({"a": 1, "o": {"p": 1}}), json!({"a": 2}), true),
            (json!({"a": 1}), json!({"a": {"x": 1}}), true),
            (json!({"a": {"x": 1}}), json!({"a": null}), true),
            (json!({"a": 1}), json!({"b": null}), true),
            (json!({"a": 1}), json!({}), false),
        ];
        for (stored, update, changed) in cases {
            let stored = stored.as_object().unwrap().clone();
            let update = update.as_object().unwrap().clone();
            let mut copied = stored.clone();
            merge_profile(&mut copied, update.clone());
            let mut moved = stored.clone();
            assert_eq!(
                merge_profile_changed(&mut moved, update.clone()),
                changed,
                "{update:?}"
            );
            assert_eq!(moved, copied);
            assert_eq!(copied != stored, changed);
        }
    }

    #[test]
    fn decimals_are_exact() {
        assert_eq!(
            fit_decimal(Decimal::from_str("99999999999999.99").unwrap(), 16, 2)
                .unwrap()
                .to_string(),
            "99999999999999.99"
        );
        assert!(fit_decimal(Decimal::from_str("100").unwrap(), 4, 2).is_err());
        assert!(fit_decimal(Decimal::from_str("1.005").unwrap(), 4, 2).is_err());
        assert_eq!(
            fit_decimal(Decimal::from_str("1.50000").unwrap(), 4, 2)
                .unwrap()
                .to_string(),
            "1.50"
        );
    }

    #[test]
    fn changes_and_widening() {
        let a = schema();
        let mut b = a.clone();
        b.properties.retain(|p| p.name != "email");
        b.properties
            .iter_mut()
            .find(|p| p.name == "age")
            .unwrap()
            .ty = PropertyType::String;
        let changes = a.changes_to(&b);
        assert!(changes.contains(&SchemaChange::Removed {
            path: "email".into()
        }));
        assert!(changes
            .iter()
            .any(|c| matches!(c, SchemaChange::TypeChanged { path, .. } if path == "age")));
        assert!(PropertyType::Int.widens_to(&PropertyType::Float));
        assert!(!PropertyType::Float.widens_to(&PropertyType::Int));
    }

    #[test]
    fn merge_keeps_unsent_keys() {
        let mut stored = json!({"a": 1, "o": {"x": 1, "y": 2}})
            .as_object()
            .unwrap()
            .clone();
        merge_profile(
            &mut stored,
            json!({"b": 2, "o": {"y": 3}}).as_object().unwrap().clone(),
        );
        assert_eq!(
            Json::Object(stored),
            json!({"a": 1, "b": 2, "o": {"x": 1, "y": 3}})
        );
    }
}
