//! From a source row to the properties it writes: plain functions, no I/O.
//!
//! The transformation of a source runs like an export's, with the roles turned around: its *input* is
//! the source row, seen as a profile whose properties are the source's columns ([`input_schema`],
//! [`input_profile`]), and its *output* columns are the Customer Model's property paths
//! ([`model_table`]), so a visual mapping is type-checked against the model's types when it is saved.
//! The values a row gives are nested by their dotted paths ([`properties`]), validated and normalized
//! by the Customer Model, and hashed ([`hash`]): the hash is what the source's state remembers, so a row
//! read again unchanged writes nothing.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value as Json};
use sluice_core::schema::{Property, PropertyType, ID, UPDATED_AT};
use sluice_core::{Column, ColumnType, Profile, Schema, TableDescription, Value};
use sluice_destinations::source::SourceSchema;

/// The name the Customer Model goes by as the output "table" of a source's transformation.
pub const MODEL_TABLE: &str = "Customer Model";

/// The source's columns as the properties a transformation reads. Columns without a model type (binary)
/// are left out: an expression naming one is refused as naming an unknown source column.
pub fn input_schema(columns: &SourceSchema) -> Schema {
    Schema {
        properties: columns
            .columns
            .iter()
            .filter_map(|c| {
                Some(Property {
                    name: c.name.clone(),
                    ty: c.property.clone()?,
                    nullable: true,
                    description: None,
                })
            })
            .collect(),
    }
}

/// One source row as the profile a transformation reads: `_id` is the id column's value as text.
pub fn input_profile(
    columns: &SourceSchema,
    row: &[Value],
    id: String,
    now: DateTime<Utc>,
) -> Profile {
    let mut doc = Map::with_capacity(row.len());
    for (c, v) in columns.columns.iter().zip(row) {
        if c.property.is_some() && !v.is_null() {
            doc.insert(c.name.clone(), v.to_json());
        }
    }
    Profile {
        id,
        updated_at: now,
        doc,
    }
}

/// The text of an id column's value; `None` for NULL (such rows are not read, see `count_unread`).
pub fn id_text(v: &Value) -> Option<String> {
    (!v.is_null()).then(|| v.to_string())
}

/// The column type a value of a property type is converted to before it is validated.
pub fn column_type(ty: &PropertyType) -> ColumnType {
    match ty {
        PropertyType::String => ColumnType::Text { max_len: None },
        PropertyType::Boolean => ColumnType::Bool,
        PropertyType::Int => ColumnType::Int {
            bits: 64,
            unsigned: false,
        },
        PropertyType::Float => ColumnType::Float { bits: 64 },
        PropertyType::Decimal { precision, scale } => ColumnType::Decimal {
            precision: Some(*precision),
            scale: Some(*scale),
        },
        PropertyType::DateTime => ColumnType::Timestamp { with_tz: true },
        PropertyType::Date => ColumnType::Date,
        PropertyType::Time => ColumnType::Time,
        PropertyType::Uuid => ColumnType::Uuid,
        PropertyType::Json | PropertyType::Object(_) => ColumnType::Json,
        PropertyType::Array(element) => ColumnType::Array {
            element: Box::new(column_type(element)),
        },
    }
}

/// The Customer Model as the output table of a source's transformation: a column per property path
/// (nested ones included, whole objects as JSON), but `_id` and `_updated_at`, which Sluice sets.
pub fn model_table(model: &Schema) -> TableDescription {
    let columns = model
        .paths()
        .into_iter()
        .filter(|(path, _)| path != ID && path != UPDATED_AT)
        .map(|(path, ty)| Column {
            name: path,
            native_type: ty.name(),
            nullable: true,
            ty: Some(column_type(&ty)),
            has_default: false,
        })
        .collect();
    TableDescription {
        name: MODEL_TABLE.into(),
        columns,
        keys: Vec::new(),
        has_primary_key: false,
        issues: Vec::new(),
        rules: Default::default(),
    }
}

/// The property paths a transformation writes, split at their dots once for all its rows.
pub struct PropertyPaths {
    split: Vec<Vec<String>>,
    /// How many distinct top-level properties the paths write, to size each row's document.
    top: usize,
}

impl PropertyPaths {
    pub fn new(paths: &[String]) -> Self {
        let split: Vec<Vec<String>> = paths
            .iter()
            .map(|p| p.split('.').map(str::to_string).collect())
            .collect();
        let mut tops: Vec<&str> = split.iter().map(|s| s[0].as_str()).collect();
        tops.sort_unstable();
        tops.dedup();
        let top = tops.len();
        PropertyPaths { split, top }
    }

    /// A row's properties as top-level `(name, value)` entries, each name once, in the order they
    /// are first written: each value at its dotted path, nested (`address.city` inside `address`);
    /// two paths into one object merge. What [`properties`] gives as a map, without hashing a key.
    pub fn entries(&self, values: Vec<Value>) -> Vec<(&str, Json)> {
        let mut doc: Vec<(&str, Option<Json>)> = Vec::with_capacity(self.top);
        for (segments, value) in self.split.iter().zip(values) {
            let Some((top, rest)) = segments.split_first() else {
                continue;
            };
            let at = match doc.iter().position(|(k, _)| *k == top.as_str()) {
                Some(at) => at,
                None => {
                    doc.push((top.as_str(), None));
                    doc.len() - 1
                }
            };
            let slot = &mut doc[at].1;
            if rest.is_empty() {
                match (slot.as_mut(), value.to_json()) {
                    (Some(Json::Object(old)), Json::Object(new)) => {
                        sluice_core::schema::merge_profile(old, new)
                    }
                    (_, v) => *slot = Some(v),
                }
                continue;
            }
            if !matches!(slot, Some(Json::Object(_))) {
                *slot = Some(Json::Object(Map::new()));
            }
            if let Some(Json::Object(object)) = slot {
                nest(object, rest, value);
            }
        }
        doc.into_iter()
            .map(|(k, v)| (k, v.unwrap_or(Json::Null)))
            .collect()
    }
}

/// Puts `value` at the path `segments` inside `doc`, making the objects on the way.
fn nest(doc: &mut Map<String, Json>, segments: &[String], value: Value) {
    let Some((last, parents)) = segments.split_last() else {
        return;
    };
    let mut cur = doc;
    for seg in parents {
        let next = cur
            .entry(seg.as_str())
            .or_insert_with(|| Json::Object(Map::new()));
        if !next.is_object() {
            *next = Json::Object(Map::new());
        }
        cur = next.as_object_mut().expect("just made an object");
    }
    match (cur.get_mut(last), value.to_json()) {
        (Some(Json::Object(old)), Json::Object(new)) => {
            sluice_core::schema::merge_profile(old, new)
        }
        (_, v) => {
            cur.insert(last.clone(), v);
        }
    }
}

/// The JSON text of the object of `entries` (distinct keys), as `serde_json` writes the map of them.
pub fn entries_text(entries: &[(&str, Json)]) -> String {
    let mut out = Vec::with_capacity(64 * entries.len() + 2);
    out.push(b'{');
    for (i, (key, value)) in entries.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        serde_json::to_writer(&mut out, key).expect("a string writes to memory");
        out.push(b':');
        serde_json::to_writer(&mut out, value).expect("a JSON value writes to memory");
    }
    out.push(b'}');
    String::from_utf8(out).expect("serde_json writes UTF-8")
}

/// The properties of a row's values, validated and normalized by the Customer Model as top-level
/// entries (see [`PropertyPaths::entries`]); the problems, each naming its property, when they do
/// not fit.
pub fn validated<'p>(
    paths: &'p PropertyPaths,
    model: &Schema,
    id: &str,
    values: Vec<Value>,
) -> Result<Vec<(&'p str, Json)>, String> {
    let mut entries = paths.entries(values);
    match model.validate_entries(id, &mut entries) {
        Ok(()) => Ok(entries),
        Err(errors) => Err(errors.join("; ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use sluice_core::schema::SchemaWire;

    /// The properties a row writes, as a map.
    fn properties(paths: &PropertyPaths, values: Vec<Value>) -> Map<String, Json> {
        paths
            .entries(values)
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect()
    }

    /// The hash a source run records for a row's properties.
    fn hash(seed: u64, doc: &Map<String, Json>) -> u128 {
        let entries: Vec<(&str, Json)> = doc.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
        sluice_core::hash::hash_json_text(seed, &entries_text(&entries))
    }

    /// [`validated`], as a map.
    fn validate(
        model: &Schema,
        paths: &PropertyPaths,
        values: Vec<Value>,
    ) -> Result<Map<String, Json>, String> {
        validated(paths, model, "c1", values)
            .map(|e| e.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
    }

    fn model() -> Schema {
        let wire: SchemaWire = serde_json::from_value(json!({"properties": [
            {"name": "email", "type": "string"},
            {"name": "ltv", "type": "decimal(12,2)"},
            {"name": "address", "type": "object", "properties": [
                {"name": "city", "type": "string"}, {"name": "zip", "type": "string"}]},
            {"name": "vip", "type": "boolean", "nullable": false}
        ]}))
        .unwrap();
        Schema::from_wire(&wire).unwrap()
    }

    #[test]
    fn the_model_is_a_table_of_property_paths() {
        let t = model_table(&model());
        let names: Vec<&str> = t.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "email",
                "ltv",
                "address",
                "address.city",
                "address.zip",
                "vip"
            ]
        );
        assert_eq!(
            t.columns[1].ty,
            Some(ColumnType::Decimal {
                precision: Some(12),
                scale: Some(2)
            })
        );
        assert_eq!(t.columns[2].ty, Some(ColumnType::Json));
    }

    #[test]
    fn entries_write_out_as_their_map() {
        let paths = PropertyPaths::new(&["email".into(), "ltv".into(), "extra".into(), "n".into()]);
        let values = vec![
            Value::String("a\"b\\c\u{1}é\u{2028}".into()),
            Value::Decimal("12.50".parse().unwrap()),
            Value::json(json!({"k": [1, 2.5, null, "x"], "o": {}})),
            Value::Null,
        ];
        let entries = paths.entries(values.clone());
        let mut map = serde_json::Map::new();
        for (k, v) in ["email", "ltv", "extra", "n"].into_iter().zip(&values) {
            map.insert(k.to_string(), v.to_json());
        }
        assert_eq!(entries_text(&entries), serde_json::to_string(&map).unwrap());
        assert_eq!(entries_text(&[]), "{}");
    }

    #[test]
    fn dotted_paths_nest_and_merge() {
        let doc = properties(
            &PropertyPaths::new(&["address.city".into(), "email".into(), "address.zip".into()]),
            vec![
                Value::String("Rome".into()),
                Value::Null,
                Value::String("00100".into()),
            ],
        );
        let keys: Vec<&String> = doc.keys().collect();
        assert_eq!(keys, ["address", "email"], "in the order first written");
        assert_eq!(
            Json::Object(doc),
            json!({"address": {"city": "Rome", "zip": "00100"}, "email": null})
        );
        // A whole object and a path into it merge, whichever comes first; a later scalar replaces.
        let city = || Value::String("Rome".into());
        let zip = || Value::json(json!({"zip": "1", "city": "Milan"}));
        let paths = |p: [&str; 2]| PropertyPaths::new(&p.map(String::from));
        assert_eq!(
            Json::Object(properties(
                &paths(["address", "address.city"]),
                vec![zip(), city()]
            )),
            json!({"address": {"zip": "1", "city": "Rome"}})
        );
        assert_eq!(
            Json::Object(properties(
                &paths(["address.city", "address"]),
                vec![city(), zip()]
            )),
            json!({"address": {"city": "Milan", "zip": "1"}})
        );
        assert_eq!(
            Json::Object(properties(
                &paths(["address.city", "address"]),
                vec![city(), city()]
            )),
            json!({"address": "Rome"})
        );
        assert_eq!(
            Json::Object(properties(
                &paths(["address", "address.city"]),
                vec![city(), city()]
            )),
            json!({"address": {"city": "Rome"}})
        );
    }

    #[test]
    fn a_value_that_does_not_fit_the_model_names_its_property() {
        let m = model();
        let ok = validate(
            &m,
            &PropertyPaths::new(&["ltv".into()]),
            vec![Value::String("12.5".into())],
        )
        .unwrap();
        assert_eq!(Json::Object(ok), json!({"ltv": "12.50"}));
        let bad =
            validate(&m, &PropertyPaths::new(&["vip".into()]), vec![Value::Null]).unwrap_err();
        assert!(bad.contains("vip"), "{bad}");
    }

    #[test]
    fn the_hash_follows_the_properties_and_the_seed() {
        let a = properties(
            &PropertyPaths::new(&["email".into()]),
            vec![Value::String("a@x".into())],
        );
        let b = properties(
            &PropertyPaths::new(&["email".into()]),
            vec![Value::String("b@x".into())],
        );
        assert_eq!(hash(1, &a), hash(1, &a.clone()));
        assert_ne!(hash(1, &a), hash(1, &b));
        assert_ne!(hash(1, &a), hash(2, &a));
    }

    #[test]
    fn ids_are_text() {
        assert_eq!(id_text(&Value::Int(42)).as_deref(), Some("42"));
        assert_eq!(id_text(&Value::String("c1".into())).as_deref(), Some("c1"));
        assert_eq!(id_text(&Value::Null), None);
    }
}
