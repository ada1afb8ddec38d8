//! `GET /v1/filters/operators` says exactly what the filter parser accepts: for a property of every kind
//! of type, each operator the table lists for it parses (with values of its arity), and every other
//! operator is refused at `operator`. The admin UI offers the operators of this table.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use sluice_core::filter::Filter;
use sluice_core::schema::{PropertyWire, SchemaWire};
use sluice_core::Schema;
use tower::ServiceExt;

mod support;

async fn served_table() -> Value {
    let (app, _dir) = support::app("t").await;
    let req = Request::builder()
        .uri("/v1/filters/operators")
        .header("authorization", "Bearer t")
        .body(Body::empty())
        .unwrap();
    let resp = app.oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&bytes).unwrap()
}

/// A Customer Model with one property, `p`, of type `ty`.
fn model(ty: &str) -> Schema {
    let nested = (ty == "object" || ty == "array(object)").then(|| {
        vec![PropertyWire {
            name: "x".into(),
            ty: "string".into(),
            nullable: true,
            description: None,
            properties: None,
        }]
    });
    Schema::from_wire(&SchemaWire {
        properties: vec![PropertyWire {
            name: "p".into(),
            ty: ty.into(),
            nullable: true,
            description: None,
            properties: nested,
        }],
    })
    .unwrap_or_else(|e| panic!("{ty}: {e}"))
}

/// A valid value for a condition on a property of type `ty` (an element, for an array).
fn sample(ty: &str) -> Value {
    let ty = ty
        .strip_prefix("array(")
        .and_then(|t| t.strip_suffix(')'))
        .unwrap_or(ty);
    match ty.split('(').next().unwrap() {
        "boolean" => json!(true),
        "int" => json!(7),
        "float" => json!(1.5),
        "decimal" => json!("1.50"),
        "datetime" => json!("2024-05-13T15:30:00Z"),
        "date" => json!("2024-05-13"),
        "time" => json!("15:30:00"),
        "uuid" => json!("0b5f3c52-0d6a-4a4f-9c39-9e1f2f7d1a11"),
        _ => json!("a"),
    }
}

#[tokio::test]
async fn the_served_table_is_what_the_parser_accepts() {
    let table = served_table().await;
    let operators = table["operators"].as_array().unwrap();
    let names: Vec<&str> = operators
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    let core: Vec<&str> = sluice_core::filter::Operator::all()
        .iter()
        .map(|o| o.name())
        .collect();
    assert_eq!(names, core, "every operator, in the product's order");

    let types = table["types"].as_array().unwrap();
    assert!(types.len() >= 20, "{table}");
    for row in types {
        let example = row["example"].as_str().unwrap();
        let listed: Vec<&str> = row["operators"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o.as_str().unwrap())
            .collect();
        let schema = model(example);
        for op in operators {
            let name = op["name"].as_str().unwrap();
            let v = sample(example);
            let values = match op["values"].as_str().unwrap() {
                "none" => json!([]),
                "one" | "many" => json!([v]),
                "two" => json!([v, v]),
                other => panic!("arity {other}"),
            };
            let wire = json!({"logical": "and", "conditions": [
                {"property": "p", "operator": name, "values": values}]});
            let parsed = Filter::parse(&wire, &schema);
            if listed.contains(&name) {
                assert!(
                    parsed.is_ok(),
                    "`{name}` on {example} is listed but refused: {:?}",
                    parsed.err()
                );
            } else {
                let errors = parsed
                    .err()
                    .unwrap_or_else(|| panic!("`{name}` on {example} is accepted but not listed"));
                assert!(
                    errors.get("conditions[0].operator").is_some(),
                    "`{name}` on {example} is refused for another reason: {errors}"
                );
            }
        }
    }
}
