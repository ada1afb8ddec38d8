//! The JSON Schema of workspace files (`docs/workspace.schema.json`), which editors use for completion.
//!
//! It is generated, not written: the pipeline, filter, transformation and Customer Model shapes are the
//! OpenAPI document's own schemas (OpenAPI 3.1 schemas are JSON Schema), and each connection kind's
//! settings come from the kind's declaration of its fields (`GET /v1/connectors`). A test keeps the
//! published copy equal to what this builds.

use serde_json::{json, Map, Value};
use sluice_destinations::connectors::{connectors, FieldType};

/// The whole JSON Schema (draft 2020-12).
pub fn json_schema() -> Value {
    let doc = sluice_api::openapi_document();
    let mut defs: Map<String, Value> = doc["components"]["schemas"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    for v in defs.values_mut() {
        rewrite_refs(v);
    }
    let secret = json!({
        "description": "Where a secret is read when the files are applied; its value is never written in the files.",
        "oneOf": [
            {"type": "object", "properties": {"env": {"type": "string", "description": "An environment variable."}},
             "required": ["env"], "additionalProperties": false},
            {"type": "object", "properties": {"file": {"type": "string", "description": "A file, relative to the workspace file naming it."}},
             "required": ["file"], "additionalProperties": false}
        ]
    });
    defs.insert("SecretRef".into(), secret);

    let mut pipeline = defs
        .get("PipelineInput")
        .cloned()
        .unwrap_or_else(|| json!({}));
    if let Some(props) = pipeline["properties"].as_object_mut() {
        props.shift_remove("destination");
        props.shift_remove("name");
        let mut with_connection = Map::new();
        with_connection.insert(
            "connection".into(),
            json!({"type": "string", "description": "The name of a connection under `connections`."}),
        );
        with_connection.extend(std::mem::take(props));
        with_connection.insert(
            "alert_webhook".into(),
            json!({"description": "An http(s) URL posted a JSON message when a run fails, fails too many rows, or succeeds after failing; as it is, or read like a secret.",
                   "oneOf": [{"type": "string"}, {"type": "null"}, {"$ref": "#/$defs/SecretRef"}]}),
        );
        *props = with_connection;
    }
    if let Some(required) = pipeline["required"].as_array_mut() {
        required.retain(|r| r != "destination" && r != "name");
        required.insert(0, json!("connection"));
    }
    pipeline["description"] = json!("An export pipeline, named by its key under `pipelines`.");
    pipeline["additionalProperties"] = json!(false);
    defs.insert("WorkspacePipeline".into(), pipeline);
    defs.insert("WorkspaceConnection".into(), connection_schema());

    let mut source = defs
        .get("SourceInput")
        .cloned()
        .unwrap_or_else(|| json!({}));
    if let Some(props) = source["properties"].as_object_mut() {
        props.shift_remove("name");
        if let Some(c) = props.get_mut("connection") {
            *c = json!({"type": "string", "description": "The name of a connection under `connections`."});
        }
    }
    if let Some(required) = source["required"].as_array_mut() {
        required.retain(|r| r != "name");
    }
    source["description"] = json!("A source pipeline, named by its key under `sources`.");
    source["additionalProperties"] = json!(false);
    defs.insert("WorkspaceSource".into(), source);

    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Sluice workspace",
        "description": "A Sluice workspace: Customer Model, connections, pipelines and sources (docs/WORKSPACE.md). A folder of such files is merged; each object is described once.",
        "type": "object",
        "properties": {
            "version": {"const": 1, "description": "The version of the format."},
            "customer_model": {"$ref": "#/$defs/ProfileSchema"},
            "connections": {
                "type": "object",
                "description": "Connections by name.",
                "additionalProperties": {"$ref": "#/$defs/WorkspaceConnection"}
            },
            "pipelines": {
                "type": "object",
                "description": "Export pipelines by name.",
                "additionalProperties": {"$ref": "#/$defs/WorkspacePipeline"}
            },
            "sources": {
                "type": "object",
                "description": "Source pipelines by name.",
                "additionalProperties": {"$ref": "#/$defs/WorkspaceSource"}
            }
        },
        "additionalProperties": false,
        "$defs": defs
    })
}

/// One alternative per connection kind, with the settings that kind declares.
fn connection_schema() -> Value {
    let mut kinds = Vec::new();
    for c in connectors().iter().filter(|c| c.available) {
        let mut settings = Map::new();
        let mut required = Vec::new();
        for f in &c.fields {
            let mut s = match (f.secret, f.ty) {
                (true, _) => json!({"$ref": "#/$defs/SecretRef"}),
                (false, FieldType::Integer) => json!({"type": "integer"}),
                (false, FieldType::Tls) => json!({
                    "type": "object",
                    "properties": {
                        "mode": {"enum": f.options.iter().map(|o| o.value).collect::<Vec<_>>()},
                        "ca_cert": {"type": "string", "description": "PEM certificate of the authority to trust."}
                    },
                    "additionalProperties": false
                }),
                (false, _) => json!({"type": "string"}),
            };
            if !f.help.is_empty() {
                s["description"] = json!(f.help);
            }
            if !f.default.is_null() {
                s["default"] = f.default.clone();
            }
            if f.required {
                required.push(f.name);
            }
            settings.insert(f.name.into(), s);
        }
        kinds.push(json!({
            "title": c.label,
            "type": "object",
            "properties": {
                "type": {"const": c.kind},
                "settings": {
                    "type": "object",
                    "properties": settings,
                    "required": required,
                    "additionalProperties": false
                }
            },
            "required": ["type", "settings"],
            "additionalProperties": false
        }));
    }
    json!({"description": "A connection: its kind and settings.", "oneOf": kinds})
}

fn rewrite_refs(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                if k == "$ref" {
                    if let Some(s) = x.as_str() {
                        *x = json!(s.replace("#/components/schemas/", "#/$defs/"));
                    }
                } else {
                    rewrite_refs(x);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(rewrite_refs),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The published schema is what this build generates (`SLUICE_UPDATE_GENERATED=1` rewrites it).
    #[test]
    fn published_schema_is_current() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../docs/workspace.schema.json");
        let fresh = format!(
            "{}\n",
            serde_json::to_string_pretty(&json_schema()).unwrap()
        );
        if std::env::var_os("SLUICE_UPDATE_GENERATED").is_some() {
            std::fs::write(&path, &fresh).unwrap();
        }
        let published = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            published == fresh,
            "docs/workspace.schema.json is stale: run `SLUICE_UPDATE_GENERATED=1 cargo test -p sluice --bin sluice workspace::schema`"
        );
    }

    #[test]
    fn every_ref_resolves() {
        let schema = json_schema();
        fn refs(v: &Value, out: &mut Vec<String>) {
            match v {
                Value::Object(m) => {
                    for (k, x) in m {
                        if k == "$ref" {
                            out.push(x.as_str().unwrap().to_string());
                        } else {
                            refs(x, out);
                        }
                    }
                }
                Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
                _ => {}
            }
        }
        let mut all = Vec::new();
        refs(&schema, &mut all);
        assert!(!all.is_empty());
        for r in all {
            let name = r.strip_prefix("#/$defs/").unwrap_or_else(|| panic!("{r}"));
            assert!(schema["$defs"].get(name).is_some(), "{r} does not resolve");
        }
    }
}
