//! Lineage: which source pipelines feed the profiles an export pipeline reads, and which write each
//! property of the Customer Model.
//!
//! An export pipeline reads the Customer Model properties its filter names and its mapping's
//! expressions read; a source writes the properties its mapping names as keys. A source feeds a
//! pipeline when one of the properties it writes is one the pipeline reads, or an object above or below
//! it (`address` and `address.city` meet). A script (JavaScript, Python) may read or write any
//! property, so what it touches cannot be known from the spec: such a pipeline is fed by every source,
//! and such a source feeds every pipeline, and the answer says so rather than guessing.
//!
//! System fields (`_id`, `_updated_at`) are left out: every source writes `_id`, which would make every
//! source feed every pipeline and say nothing.

use crate::mapping::Expression;
use crate::pipeline::{PipelineSpec, Transformation};
use crate::source::SourceSpec;
use crate::Schema;

/// The properties a pipeline reads or a source writes; `None` when a script makes them unknowable.
pub type Touched = Option<Vec<String>>;

/// The properties `spec` reads, in order of first appearance; `None` for a script, or a mapping that
/// no longer compiles against `model` (what it reads cannot be told then).
pub fn pipeline_reads(spec: &PipelineSpec, model: &Schema) -> Touched {
    let mut out: Vec<String> = Vec::new();
    if let Some(filter) = &spec.filter {
        filter_properties(filter, &mut out, 0);
    }
    let Transformation::Mapping(mapping) = &spec.transformation else {
        return None;
    };
    for (_, text) in mapping.iter() {
        let expr = Expression::compile(text, model).ok()?;
        for p in expr.properties() {
            push(&mut out, p);
        }
    }
    Some(out)
}

/// The properties `spec` writes (its mapping's keys); `None` for a script.
pub fn source_writes(spec: &SourceSpec) -> Touched {
    let Transformation::Mapping(mapping) = &spec.transformation else {
        return None;
    };
    let mut out = Vec::new();
    for (path, _) in mapping.iter() {
        push(&mut out, path);
    }
    Some(out)
}

/// Whether a source that writes `writes` feeds a pipeline that reads `reads`: `None` when it does not;
/// `Some(Some(paths))` with the properties it writes that the pipeline reads (never empty);
/// `Some(None)` when a script on either side makes it possible but unknowable which.
pub fn feeds(writes: &Touched, reads: &Touched) -> Option<Touched> {
    match (writes, reads) {
        (Some(w), Some(r)) => {
            let shared: Vec<String> = w
                .iter()
                .filter(|wp| r.iter().any(|rp| overlap(wp, rp)))
                .cloned()
                .collect();
            (!shared.is_empty()).then_some(Some(shared))
        }
        _ => Some(None),
    }
}

/// For every property path of `model` (system fields left out, objects before their properties), the
/// positions in `writes` of the sources that write it: the property itself, an object holding it, or
/// (for an object) a property inside it. A source whose `writes` is `None` (a script) is in no list:
/// what it writes cannot be told, and the caller says so apart.
pub fn property_writers(model: &Schema, writes: &[Touched]) -> Vec<(String, Vec<usize>)> {
    model
        .paths()
        .into_iter()
        .filter(|(path, _)| !path.starts_with('_'))
        .map(|(path, _)| {
            let by = writes
                .iter()
                .enumerate()
                .filter(|(_, w)| {
                    w.as_ref()
                        .is_some_and(|w| w.iter().any(|wp| overlap(wp, &path)))
                })
                .map(|(i, _)| i)
                .collect();
            (path, by)
        })
        .collect()
}

/// Whether two property paths name the same value, or one holds the other.
fn overlap(a: &str, b: &str) -> bool {
    let under = |long: &str, short: &str| {
        long.len() > short.len() && long.starts_with(short) && long.as_bytes()[short.len()] == b'.'
    };
    a == b || under(a, b) || under(b, a)
}

fn push(out: &mut Vec<String>, path: &str) {
    if !path.starts_with('_') && !out.iter().any(|p| p == path) {
        out.push(path.to_string());
    }
}

/// The `property` of every condition of a filter as sent, however deep (bounded: a stored filter was
/// checked when saved, but this reads only what it needs and stops at a depth no filter reaches).
fn filter_properties(v: &serde_json::Value, out: &mut Vec<String>, depth: usize) {
    if depth > 64 {
        return;
    }
    match v {
        serde_json::Value::Object(m) => {
            if let Some(serde_json::Value::String(p)) = m.get("property") {
                push(out, p);
            }
            if let Some(c) = m.get("conditions") {
                filter_properties(c, out, depth + 1);
            }
        }
        serde_json::Value::Array(items) => {
            for item in items {
                filter_properties(item, out, depth + 1);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn model() -> Schema {
        let wire: crate::schema::SchemaWire = serde_json::from_value(json!({"properties": [
            {"name": "email", "type": "string"},
            {"name": "country", "type": "string"},
            {"name": "ltv", "type": "decimal(12,2)"},
            {"name": "address", "type": "object", "properties": [{"name": "city", "type": "string"}]}
        ]}))
        .unwrap();
        Schema::from_wire(&wire).unwrap()
    }

    fn pipeline(transformation: serde_json::Value, filter: serde_json::Value) -> PipelineSpec {
        serde_json::from_value(
            json!({"destination": "d", "name": "P", "table": "t", "key": "id",
            "transformation": transformation, "filter": filter}),
        )
        .unwrap()
    }

    fn source(transformation: serde_json::Value) -> SourceSpec {
        serde_json::from_value(
            json!({"connection": "c", "name": "S", "table": "t", "id_column": "id",
            "transformation": transformation, "changes": {"mode": "full"}}),
        )
        .unwrap()
    }

    #[test]
    fn a_pipeline_reads_its_filter_and_its_expressions_but_not_system_fields() {
        let p = pipeline(
            json!({"mapping": {"id": "_id", "email": "lower(email)", "city": "address.city"}}),
            json!({"logical": "and", "conditions": [
                {"property": "country", "operator": "is one of", "values": ["IT"]},
                {"logical": "or", "conditions": [{"property": "ltv", "operator": "is not empty"}]}]}),
        );
        assert_eq!(
            pipeline_reads(&p, &model()),
            Some(vec![
                "country".to_string(),
                "ltv".into(),
                "email".into(),
                "address.city".into()
            ])
        );
        let script = pipeline(
            json!({"javascript": "function transform(p) { return p; }"}),
            json!(null),
        );
        assert_eq!(pipeline_reads(&script, &model()), None);
    }

    #[test]
    fn a_source_feeds_what_overlaps_and_a_script_feeds_everything() {
        let reads = Some(vec!["email".to_string(), "address.city".into()]);
        let crm = source_writes(&source(json!({"mapping": {"email": "e", "address": "a"}})));
        assert_eq!(
            feeds(&crm, &reads),
            Some(Some(vec!["email".to_string(), "address".into()]))
        );
        let other = source_writes(&source(json!({"mapping": {"ltv": "x", "emails": "y"}})));
        assert_eq!(feeds(&other, &reads), None);
        let script = source_writes(&source(json!({"python": "def transform(r): return r"})));
        assert_eq!(feeds(&script, &reads), Some(None));
        assert_eq!(feeds(&other, &None), Some(None));
    }

    #[test]
    fn each_property_lists_the_sources_writing_it_or_an_object_around_it() {
        let crm = source_writes(&source(
            json!({"mapping": {"email": "e", "address.city": "c"}}),
        ));
        let billing = source_writes(&source(json!({"mapping": {"email": "e", "ltv": "x"}})));
        let geo = source_writes(&source(json!({"mapping": {"address": "a"}})));
        let script = source_writes(&source(
            json!({"javascript": "function transform(r) { return r; }"}),
        ));
        let got = property_writers(&model(), &[crm, billing, geo, script]);
        assert_eq!(
            got,
            vec![
                ("email".to_string(), vec![0, 1]),
                ("country".to_string(), vec![]),
                ("ltv".to_string(), vec![1]),
                ("address".to_string(), vec![0, 2]),
                ("address.city".to_string(), vec![0, 2]),
            ]
        );
    }
}
