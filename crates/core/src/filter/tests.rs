use chrono::{DateTime, Utc};
use serde_json::json;

use super::*;
use crate::schema::SchemaWire;

fn schema() -> Schema {
    let wire: SchemaWire = serde_json::from_value(json!({"properties": [
        {"name": "email", "type": "string"},
        {"name": "country", "type": "string"},
        {"name": "age", "type": "int"},
        {"name": "score", "type": "float"},
        {"name": "ltv", "type": "decimal(12,2)"},
        {"name": "vip", "type": "boolean"},
        {"name": "seen", "type": "datetime"},
        {"name": "born", "type": "date"},
        {"name": "wake", "type": "time"},
        {"name": "ref", "type": "uuid"},
        {"name": "extra", "type": "json"},
        {"name": "tags", "type": "array(string)"},
        {"name": "lucky", "type": "array(int)"},
        {"name": "prices", "type": "array(decimal(8,2))"},
        {"name": "items", "type": "array(object)", "properties": [{"name": "sku", "type": "string"}]},
        {"name": "address", "type": "object", "properties": [
            {"name": "city", "type": "string"},
            {"name": "geo", "type": "object", "properties": [{"name": "lat", "type": "float"}]}
        ]}
    ]}))
    .unwrap();
    Schema::from_wire(&wire).unwrap()
}

fn profile(input: Json) -> Profile {
    let (id, doc) = schema()
        .validate_profile(input.as_object().unwrap())
        .unwrap();
    Profile {
        id,
        updated_at: "2024-05-13T15:30:00.250Z".parse::<DateTime<Utc>>().unwrap(),
        doc,
    }
}

/// Profiles covering present, null and absent values of every property.
fn people() -> Vec<Profile> {
    vec![
        profile(
            json!({"_id": "full", "email": "Ann@Example.com", "country": "IT", "age": 42, "score": 1.5,
            "ltv": "1234.5", "vip": true, "seen": "2024-05-13T17:30:00.123+02:00", "born": "1990-01-02",
            "wake": "07:30", "ref": "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11", "extra": {"k": 1},
            "tags": ["a", "b"], "lucky": [7, 13], "prices": ["1.5", null], "items": [{"sku": "x"}],
            "address": {"city": "Zürich", "geo": {"lat": 47.37}}}),
        ),
        profile(
            json!({"_id": "nulls", "email": null, "country": null, "age": null, "score": null, "ltv": null,
            "vip": null, "seen": null, "born": null, "wake": null, "ref": null, "extra": null, "tags": null,
            "lucky": null, "prices": null, "items": null, "address": null}),
        ),
        profile(json!({"_id": "absent"})),
        profile(
            json!({"_id": "empties", "email": "", "country": "FR", "age": 0, "score": -0.5, "ltv": "-3",
            "vip": false, "seen": "1999-12-31T23:59:59Z", "born": "2000-01-01", "wake": "23:59:59.5",
            "extra": {}, "tags": [], "lucky": [], "prices": [], "items": [],
            "address": {"city": null, "geo": {}}}),
        ),
    ]
}

fn parse(wire: Json) -> Filter {
    Filter::parse(&wire, &schema()).unwrap_or_else(|e| panic!("{wire}: {e}"))
}

fn errors(wire: Json) -> FieldErrors {
    match Filter::parse(&wire, &schema()) {
        Ok(f) => panic!("{wire} parsed as {}", f.summary()),
        Err(e) => e,
    }
}

fn one(property: &str, operator: &str, values: Json) -> Json {
    let mut c = json!({"property": property, "operator": operator});
    if !values.is_null() {
        c["values"] = values;
    }
    json!({"logical": "and", "conditions": [c]})
}

/// The ids of [`people`] the filter matches, checking that `matches_doc` agrees.
fn selected(filter: &Filter) -> Vec<String> {
    people()
        .iter()
        .filter(|p| {
            let mut doc = p.doc.clone();
            doc.insert(
                "_updated_at".into(),
                json!(crate::schema::format_datetime(&p.updated_at)),
            );
            let matched = filter.matches(p);
            assert_eq!(
                filter.matches_doc(&p.id, &doc),
                matched,
                "{} on {}",
                filter.summary(),
                p.id
            );
            matched
        })
        .map(|p| p.id.clone())
        .collect()
}

fn check(property: &str, operator: &str, values: Json, expected: &[&str]) {
    let filter = parse(one(property, operator, values));
    assert_eq!(selected(&filter), expected, "{}", filter.summary());
}

#[track_caller]
fn message(errors: &FieldErrors, path: &str) -> String {
    match errors.get(path) {
        Some(messages) => messages.join("\n"),
        None => panic!("no error at `{path}`: {errors}"),
    }
}

// ---------------------------------------------------------------------------------------------------
// Parse errors.

#[test]
fn every_problem_is_reported_with_its_path() {
    let e = errors(json!({"logical": "xor", "conditions": [
        {"property": "nope", "operator": "is", "values": [1]},
        {"logical": "and", "conditions": [
            {"property": "age", "operator": "is", "values": [1]},
            {"property": "email", "operator": "is", "values": ["x"]},
            {"property": "age", "operator": "starts with", "values": ["1"]},
        ]},
        {"property": "age", "operator": "is between", "values": [1]},
        {"property": "age", "operator": "is one of", "values": [1, "x", 3]},
        {"property": "email", "operator": "is", "values": ["x"], "value": "y"},
        "age is 1",
    ]}));
    assert!(message(&e, "logical").contains("`xor` is not \"and\" or \"or\""));
    assert!(message(&e, "conditions[0].property")
        .contains("`nope` is not a property of the Customer Model"));
    assert_eq!(
        message(&e, "conditions[1].conditions[2].operator"),
        "operator `starts with` does not apply to `age` (int); use one of: is, is not, is less than, \
         is less than or equal to, is greater than, is greater than or equal to, is between, is not between, \
         is one of, is not one of, is empty, is not empty, is null, is not null, exists, does not exist"
    );
    assert!(message(&e, "conditions[2].values").contains("`is between` takes two values"));
    let bad = message(&e, "conditions[3].values[1]");
    assert!(
        bad.contains("`age` (int)") && bad.contains("expected an integer"),
        "{bad}"
    );
    assert!(message(&e, "conditions[4].value").contains("unknown key `value`"));
    assert!(message(&e, "conditions[5]").contains("expected a condition"));
    assert_eq!(e.len(), 7, "{e}");
}

#[test]
fn the_root_must_be_a_group() {
    assert!(message(&errors(json!("age > 3")), "").contains("a filter is a group"));
    assert!(message(
        &errors(json!({"property": "age", "operator": "exists"})),
        ""
    )
    .contains("wrap it"));
    let e = errors(json!({}));
    assert!(message(&e, "logical").starts_with("missing"));
    assert!(message(&e, "conditions").starts_with("missing"));
    let e = errors(json!({"logical": "and", "conditions": {"property": "age"}, "negate": true}));
    assert!(message(&e, "conditions").contains("expected a list"));
    assert!(message(&e, "negate").contains("unknown key `negate`"));
    assert!(
        message(&errors(json!({"logical": 1, "conditions": []})), "logical")
            .contains("got a number")
    );
}

#[test]
fn property_paths_are_explained() {
    let e = errors(json!({"logical": "or", "conditions": [
        {"property": "address.town", "operator": "exists"},
        {"property": "email.domain", "operator": "exists"},
        {"property": "items.sku", "operator": "exists"},
        {"property": "Email", "operator": "exists"},
        {"property": "address..city", "operator": "exists"},
        {"property": "", "operator": "exists"},
        {"property": 3, "operator": "exists"},
        {"operator": "exists"},
        {"property": "_id.x", "operator": "exists"},
    ]}));
    assert_eq!(
        message(&e, "conditions[0].property"),
        "`address` has no property `town`; it has `city`, `geo`"
    );
    assert!(message(&e, "conditions[1].property")
        .contains("`email` has type string, not object, so `email.domain` does not exist"));
    assert!(message(&e, "conditions[2].property").contains("inside array elements"));
    assert!(message(&e, "conditions[3].property").contains("did you mean `email`?"));
    assert!(message(&e, "conditions[4].property").contains("single dots"));
    assert!(message(&e, "conditions[5].property").contains("empty"));
    assert!(message(&e, "conditions[6].property").contains("got a number"));
    assert!(message(&e, "conditions[7].property").starts_with("missing"));
    assert!(message(&e, "conditions[8].property").contains("not a property"));
}

#[test]
fn operators_are_explained() {
    let e = errors(json!({"logical": "and", "conditions": [
        {"property": "age", "operator": "equals", "values": [1]},
        {"property": "nope", "operator": "equals", "values": [1]},
        {"property": "age", "values": [1]},
        {"property": "age", "operator": ["is"], "values": [1]},
        {"property": "extra", "operator": "is", "values": [1]},
        {"property": "items", "operator": "contains", "values": [{"sku": "x"}]},
        {"property": "seen", "operator": "is greater than", "values": ["2024-01-01T00:00:00Z"]},
    ]}));
    let unknown = message(&e, "conditions[0].operator");
    assert!(
        unknown.starts_with("unknown operator `equals`; for `age` (int) use one of: is, is not"),
        "{unknown}"
    );
    assert!(message(&e, "conditions[1].operator").contains("use one of: is, is not, is less than"));
    assert!(message(&e, "conditions[2].operator")
        .starts_with("missing: a condition needs an operator; for `age`"));
    assert!(message(&e, "conditions[3].operator").contains("got an array"));
    assert_eq!(
        message(&e, "conditions[4].operator"),
        "operator `is` does not apply to `extra` (json); use one of: is empty, is not empty, is null, \
         is not null, exists, does not exist"
    );
    assert!(
        message(&e, "conditions[5].operator").contains("does not apply to `items` (array(object))")
    );
    assert!(message(&e, "conditions[6].operator").contains("is before"));
    // The unknown property is reported too.
    assert!(e.get("conditions[1].property").is_some());
}

#[test]
fn operator_names_forgive_case_and_spacing() {
    assert_eq!(Operator::from_name("Is  One_Of"), Some(Operator::IsOneOf));
    assert_eq!(
        Operator::from_name(" does not exist "),
        Some(Operator::DoesNotExist)
    );
    assert_eq!(Operator::from_name("isoneof"), None);
    for op in Operator::all() {
        assert_eq!(Operator::from_name(op.name()), Some(*op));
    }
    let f = parse(one("country", "IS ONE OF", json!(["IT"])));
    assert_eq!(f.to_wire()["conditions"][0]["operator"], json!("is one of"));
}

#[test]
fn values_are_counted() {
    let e = errors(json!({"logical": "and", "conditions": [
        {"property": "age", "operator": "is"},
        {"property": "age", "operator": "is", "values": [1, 2]},
        {"property": "age", "operator": "is null", "values": [1]},
        {"property": "age", "operator": "is one of", "values": []},
        {"property": "age", "operator": "is one of", "values": (0..1001).collect::<Vec<_>>()},
        {"property": "age", "operator": "is between", "values": [1, 2, 3]},
        {"property": "age", "operator": "is", "values": 1},
        {"property": "vip", "operator": "is true", "values": [true]},
    ]}));
    assert_eq!(
        message(&e, "conditions[0].values"),
        "missing: `is` takes one value"
    );
    assert_eq!(
        message(&e, "conditions[1].values"),
        "`is` takes exactly one value, got 2"
    );
    assert_eq!(
        message(&e, "conditions[2].values"),
        "`is null` takes no values, got 1"
    );
    assert_eq!(
        message(&e, "conditions[3].values"),
        "`is one of` needs at least one value"
    );
    assert_eq!(
        message(&e, "conditions[4].values"),
        "`is one of` takes at most 1000 values, got 1001"
    );
    assert!(message(&e, "conditions[5].values").contains("got 3"));
    assert!(message(&e, "conditions[6].values").contains("expected a list of values, got a number"));
    assert!(message(&e, "conditions[7].values").contains("takes no values"));
    // Operators without values accept an empty list or null.
    parse(one("vip", "is true", json!([])));
    parse(
        json!({"logical": "and", "conditions": [{"property": "vip", "operator": "is true", "values": null}]}),
    );
}

#[test]
fn values_are_checked_against_the_property_type() {
    let e = errors(json!({"logical": "and", "conditions": [
        {"property": "born", "operator": "is", "values": ["2024/01/02"]},
        {"property": "ltv", "operator": "is", "values": ["1.234"]},
        {"property": "seen", "operator": "is after", "values": ["yesterday"]},
        {"property": "ref", "operator": "is", "values": ["nope"]},
        {"property": "email", "operator": "is", "values": [null]},
        {"property": "email", "operator": "is not one of", "values": ["a", null]},
        {"property": "email", "operator": "starts with", "values": [""]},
        {"property": "email", "operator": "contains", "values": [""]},
        {"property": "lucky", "operator": "contains", "values": ["seven"]},
        {"property": "age", "operator": "is between", "values": [30, 18]},
        {"property": "seen", "operator": "is before", "values": ["0000-06-01T00:00:00Z"]},
        {"property": "vip", "operator": "is", "values": ["maybe"]},
    ]}));
    assert!(message(&e, "conditions[0].values[0]").contains("expected a date as YYYY-MM-DD"));
    assert!(message(&e, "conditions[1].values[0]").contains("more than 2 digits"));
    assert!(message(&e, "conditions[2].values[0]").contains("RFC 3339"));
    assert!(message(&e, "conditions[3].values[0]").contains("expected a UUID"));
    assert_eq!(
        message(&e, "conditions[4].values[0]"),
        "null is not a value: use `is null`"
    );
    assert_eq!(
        message(&e, "conditions[5].values[1]"),
        "null is not a value: use `is not null`"
    );
    assert_eq!(
        message(&e, "conditions[6].values[0]"),
        "`starts with` needs a non-empty text"
    );
    assert_eq!(
        message(&e, "conditions[7].values[0]"),
        "`contains` needs a non-empty text"
    );
    assert!(message(&e, "conditions[8].values[0]")
        .contains("not a valid element of `lucky` (array(int))"));
    assert_eq!(
        message(&e, "conditions[9].values"),
        "`is between` takes the lower bound first: 30 is greater than 18"
    );
    assert!(message(&e, "conditions[10].values[0]").contains("before the year 1"));
    assert!(message(&e, "conditions[11].values[0]").contains("expected a boolean"));
    // An empty element is a fine thing to look for in an array.
    parse(one("tags", "contains", json!([""])));
}

#[test]
fn values_are_normalized() {
    let f = parse(json!({"logical": "or", "conditions": [
        {"property": "age", "operator": "is", "values": ["42"]},
        {"property": "ltv", "operator": "is between", "values": [1, "2.5"]},
        {"property": "seen", "operator": "is after", "values": ["2024-05-13T17:30:00+02:00"]},
        {"property": "ref", "operator": "is", "values": ["A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11"]},
        {"property": "wake", "operator": "is before", "values": ["07:30"]},
        {"property": "prices", "operator": "contains", "values": [1.5]},
        {"property": "vip", "operator": "is true"},
    ]}));
    assert_eq!(
        f.to_wire(),
        json!({"logical": "or", "conditions": [
            {"property": "age", "operator": "is", "values": [42]},
            {"property": "ltv", "operator": "is between", "values": ["1.00", "2.50"]},
            {"property": "seen", "operator": "is after", "values": ["2024-05-13T15:30:00Z"]},
            {"property": "ref", "operator": "is", "values": ["a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"]},
            {"property": "wake", "operator": "is before", "values": ["07:30:00"]},
            {"property": "prices", "operator": "contains", "values": ["1.50"]},
            {"property": "vip", "operator": "is true"},
        ]})
    );
    assert_eq!(Filter::parse(&f.to_wire(), &schema()), Ok(f));
}

// ---------------------------------------------------------------------------------------------------
// Operators, one by one, on present, null and absent values.

#[test]
fn equality() {
    check("country", "is", json!(["IT"]), &["full"]);
    check(
        "country",
        "is not",
        json!(["IT"]),
        &["nulls", "absent", "empties"],
    );
    check("email", "is", json!(["ann@example.com"]), &[]); // case-sensitive
    check("email", "is", json!([""]), &["empties"]);
    check("age", "is", json!([0]), &["empties"]);
    check("score", "is", json!([-0.5]), &["empties"]);
    check("ltv", "is", json!(["1234.50"]), &["full"]);
    check("ltv", "is", json!([-3]), &["empties"]);
    check("vip", "is", json!([false]), &["empties"]);
    check(
        "vip",
        "is not",
        json!([false]),
        &["full", "nulls", "absent"],
    );
    check("seen", "is", json!(["2024-05-13T15:30:00.123Z"]), &["full"]);
    check("born", "is", json!(["1990-01-02"]), &["full"]);
    check("wake", "is", json!(["07:30:00"]), &["full"]);
    check(
        "ref",
        "is",
        json!(["a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"]),
        &["full"],
    );
    check("address.city", "is", json!(["Zürich"]), &["full"]);
    check(
        "address.city",
        "is not",
        json!(["Zürich"]),
        &["nulls", "absent", "empties"],
    );
    check("_id", "is", json!(["absent"]), &["absent"]);
    check(
        "_id",
        "is not",
        json!(["absent"]),
        &["full", "nulls", "empties"],
    );
}

#[test]
fn ordering() {
    check("age", "is less than", json!([42]), &["empties"]);
    check(
        "age",
        "is less than or equal to",
        json!([42]),
        &["full", "empties"],
    );
    check("age", "is greater than", json!([0]), &["full"]);
    check(
        "age",
        "is greater than or equal to",
        json!([0]),
        &["full", "empties"],
    );
    check("score", "is less than", json!([0]), &["empties"]);
    check("ltv", "is greater than", json!(["1234.49"]), &["full"]);
    check("ltv", "is less than", json!(["-2.99"]), &["empties"]);
    check("address.geo.lat", "is greater than", json!([47]), &["full"]);
    check(
        "seen",
        "is before",
        json!(["2024-05-13T15:30:00.123Z"]),
        &["empties"],
    );
    check(
        "seen",
        "is on or before",
        json!(["2024-05-13T15:30:00.123Z"]),
        &["full", "empties"],
    );
    check(
        "seen",
        "is after",
        json!(["2024-05-13T15:30:00.122999Z"]),
        &["full"],
    );
    check(
        "seen",
        "is on or after",
        json!(["2000-01-01T00:00:00Z"]),
        &["full"],
    );
    check("born", "is before", json!(["2000-01-01"]), &["full"]);
    check(
        "born",
        "is on or after",
        json!(["2000-01-01"]),
        &["empties"],
    );
    check("wake", "is after", json!(["07:30:00"]), &["empties"]);
    check("wake", "is on or before", json!(["07:30"]), &["full"]);
    check(
        "_updated_at",
        "is after",
        json!(["2024-05-13T15:30:00.249999Z"]),
        &["full", "nulls", "absent", "empties"],
    );
    check(
        "_updated_at",
        "is before",
        json!(["2024-05-13T15:30:00.250Z"]),
        &[],
    );
}

#[test]
fn datetimes_compare_at_microsecond_precision() {
    check(
        "seen",
        "is",
        json!(["2024-05-13T15:30:00.1230009Z"]),
        &["full"],
    );
    check(
        "seen",
        "is before",
        json!(["2024-05-13T15:30:00.1230009Z"]),
        &["empties"],
    );
    check(
        "_updated_at",
        "is",
        json!(["2024-05-13T17:30:00.250000999+02:00"]),
        &["full", "nulls", "absent", "empties"],
    );
}

#[test]
fn ranges() {
    check("age", "is between", json!([0, 41]), &["empties"]);
    check("age", "is between", json!([0, 42]), &["full", "empties"]);
    check(
        "age",
        "is not between",
        json!([1, 42]),
        &["nulls", "absent", "empties"],
    );
    check("age", "is between", json!([42, 42]), &["full"]);
    check("ltv", "is between", json!(["-3", "0"]), &["empties"]);
    check(
        "born",
        "is between",
        json!(["1990-01-02", "1999-12-31"]),
        &["full"],
    );
    check(
        "seen",
        "is not between",
        json!(["1999-12-31T23:59:59Z", "2024-05-13T15:30:00.123Z"]),
        &["nulls", "absent"],
    );
}

#[test]
fn lists() {
    check(
        "country",
        "is one of",
        json!(["IT", "FR", "DE"]),
        &["full", "empties"],
    );
    check(
        "country",
        "is not one of",
        json!(["IT", "DE"]),
        &["nulls", "absent", "empties"],
    );
    check(
        "age",
        "is one of",
        json!([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 42]),
        &["full", "empties"],
    );
    check("score", "is one of", json!([1.5, 2.5]), &["full"]);
    check(
        "ltv",
        "is one of",
        json!(["-3.00", "1234.5", "1234.50"]),
        &["full", "empties"],
    );
    check(
        "seen",
        "is one of",
        json!(["1999-12-31T23:59:59Z"]),
        &["empties"],
    );
    check(
        "ref",
        "is not one of",
        json!(["a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"]),
        &["nulls", "absent", "empties"],
    );
    check(
        "_id",
        "is one of",
        json!(["full", "empties", "other"]),
        &["full", "empties"],
    );
}

#[test]
fn text() {
    check("email", "contains", json!(["@Example"]), &["full"]);
    check("email", "contains", json!(["@example"]), &[]);
    check(
        "email",
        "does not contain",
        json!(["@Example"]),
        &["nulls", "absent", "empties"],
    );
    check("email", "starts with", json!(["Ann"]), &["full"]);
    check("email", "ends with", json!([".com"]), &["full"]);
    check("email", "ends with", json!(["Ann@Example.com!"]), &[]);
    check("address.city", "starts with", json!(["Zü"]), &["full"]);
    check("address.city", "ends with", json!(["ürich"]), &["full"]);
    check("_id", "starts with", json!(["emp"]), &["empties"]);
    check("_id", "contains", json!(["ll"]), &["full", "nulls"]);
}

#[test]
fn arrays() {
    check("tags", "contains", json!(["a"]), &["full"]);
    check("tags", "contains", json!(["A"]), &[]);
    check(
        "tags",
        "does not contain",
        json!(["a"]),
        &["nulls", "absent", "empties"],
    );
    check("lucky", "contains", json!(["13"]), &["full"]);
    check("prices", "contains", json!([1.5]), &["full"]);
    check(
        "prices",
        "does not contain",
        json!(["1.50"]),
        &["nulls", "absent", "empties"],
    );
}

#[test]
fn booleans() {
    check("vip", "is true", Json::Null, &["full"]);
    check("vip", "is false", Json::Null, &["empties"]);
}

#[test]
fn presence() {
    check("email", "is null", Json::Null, &["nulls", "absent"]);
    check("email", "is not null", Json::Null, &["full", "empties"]);
    check("email", "exists", Json::Null, &["full", "nulls", "empties"]);
    check("email", "does not exist", Json::Null, &["absent"]);
    check(
        "email",
        "is empty",
        Json::Null,
        &["nulls", "absent", "empties"],
    );
    check("email", "is not empty", Json::Null, &["full"]);
    check(
        "tags",
        "is empty",
        Json::Null,
        &["nulls", "absent", "empties"],
    );
    check(
        "extra",
        "is empty",
        Json::Null,
        &["nulls", "absent", "empties"],
    );
    check("age", "is empty", Json::Null, &["nulls", "absent"]);
    check("items", "is not empty", Json::Null, &["full"]);
    // A path through a null or missing object is absent.
    check("address.city", "exists", Json::Null, &["full", "empties"]);
    check(
        "address.city",
        "is null",
        Json::Null,
        &["nulls", "absent", "empties"],
    );
    check(
        "address.geo",
        "is empty",
        Json::Null,
        &["nulls", "absent", "empties"],
    );
    check(
        "address.geo.lat",
        "does not exist",
        Json::Null,
        &["nulls", "absent", "empties"],
    );
    check(
        "_id",
        "exists",
        Json::Null,
        &["full", "nulls", "absent", "empties"],
    );
    check("_id", "is empty", Json::Null, &[]);
    check("_updated_at", "is null", Json::Null, &[]);
    check(
        "_updated_at",
        "is not empty",
        Json::Null,
        &["full", "nulls", "absent", "empties"],
    );
}

#[test]
fn groups_nest() {
    let f = parse(json!({"logical": "and", "conditions": [
        {"property": "country", "operator": "is one of", "values": ["IT", "FR"]},
        {"logical": "or", "conditions": [
            {"property": "email", "operator": "is not empty"},
            {"logical": "and", "conditions": [
                {"property": "vip", "operator": "is false"},
                {"property": "age", "operator": "is", "values": [0]},
            ]},
        ]},
    ]}));
    assert_eq!(selected(&f), ["full", "empties"]);
    assert_eq!(
        f.summary(),
        "country is one of IT, FR and (email is not empty or (vip is false and age is 0))"
    );
    assert_eq!(f.properties(), ["country", "email", "vip", "age"]);

    let f = parse(json!({"logical": "or", "conditions": [
        {"property": "age", "operator": "is less than", "values": [0]},
        {"property": "age", "operator": "is greater than or equal to", "values": [0]},
    ]}));
    assert_eq!(
        selected(&f),
        ["full", "empties"],
        "null is neither less nor greater"
    );
}

#[test]
fn empty_groups_impose_nothing() {
    for logical in ["and", "or"] {
        let f = parse(json!({"logical": logical, "conditions": []}));
        assert_eq!(selected(&f).len(), 4);
        assert_eq!(f.summary(), "all profiles");
        let f = parse(json!({"logical": logical, "conditions": [
            {"property": "vip", "operator": "is true"},
            {"logical": "or", "conditions": []},
        ]}));
        assert_eq!(
            selected(&f),
            if logical == "and" {
                vec!["full"]
            } else {
                vec!["full", "nulls", "absent", "empties"]
            }
        );
    }
}

#[test]
fn negations_are_complements() {
    let pairs = [
        ("country", "is", "is not", json!(["IT"])),
        ("age", "is between", "is not between", json!([0, 10])),
        ("tags", "contains", "does not contain", json!(["b"])),
        ("email", "contains", "does not contain", json!(["@"])),
        ("ltv", "is one of", "is not one of", json!(["-3"])),
        ("address.city", "is empty", "is not empty", Json::Null),
        ("score", "is null", "is not null", Json::Null),
        ("address.geo", "exists", "does not exist", Json::Null),
    ];
    for (property, positive, negative, values) in pairs {
        let yes = selected(&parse(one(property, positive, values.clone())));
        let no = selected(&parse(one(property, negative, values)));
        assert_eq!(
            yes.len() + no.len(),
            4,
            "{property} {positive}: {yes:?} / {no:?}"
        );
        assert!(yes.iter().all(|id| !no.contains(id)));
    }
}

#[test]
fn mistyped_stored_values_match_no_comparison() {
    let p = Profile {
        id: "m".into(),
        updated_at: Utc::now(),
        doc: json!({"age": "42", "ltv": 7, "seen": "soon", "tags": "a", "address": "Rome"})
            .as_object()
            .unwrap()
            .clone(),
    };
    let m = |wire| parse(wire).matches(&p);
    assert!(!m(one("age", "is", json!([42]))));
    assert!(m(one("age", "is not", json!([42]))));
    assert!(
        m(one("ltv", "is", json!(["7.00"]))),
        "integers read as decimals"
    );
    assert!(!m(one("seen", "is after", json!(["2000-01-01T00:00:00Z"]))));
    assert!(!m(one("tags", "contains", json!(["a"]))));
    assert!(m(one("address.city", "does not exist", Json::Null)));
}

// ---------------------------------------------------------------------------------------------------
// Summary, wire form and SQL text.

#[test]
fn summaries_quote_what_could_be_misread() {
    let f = parse(json!({"logical": "or", "conditions": [
        {"property": "country", "operator": "is one of", "values": ["IT", "a, b", "", " x"]},
        {"property": "age", "operator": "is between", "values": [18, 30]},
        {"property": "ltv", "operator": "is greater than", "values": [10]},
        {"property": "vip", "operator": "is true"},
    ]}));
    assert_eq!(
        f.summary(),
        "country is one of IT, \"a, b\", \"\", \" x\" or age is between 18 and 30 or ltv is greater than 10.00 \
         or vip is true"
    );
}

#[test]
fn sqlite_sql_binds_every_value_and_path() {
    let f = parse(json!({"logical": "or", "conditions": [
        {"property": "country", "operator": "is not one of", "values": ["IT", "x'); DROP TABLE profiles; --"]},
        {"property": "address.city", "operator": "is", "values": ["IT"]},
        {"property": "_id", "operator": "is", "values": ["c1"]},
    ]}));
    let (sql, params) = f.to_sql(SqlDialect::Sqlite, 3);
    assert_eq!(
        sql,
        "((NOT COALESCE((CASE WHEN json_type(doc, ?3) = 'text' THEN json_extract(doc, ?3) END) IN (?4, ?5), FALSE)) \
         OR COALESCE((CASE WHEN json_type(doc, ?6) = 'text' THEN json_extract(doc, ?6) END) = ?4, FALSE) \
         OR (id = ?7))"
    );
    assert_eq!(
        params,
        [
            SqlParam::Text("$.\"country\"".into()),
            SqlParam::Text("IT".into()),
            SqlParam::Text("x'); DROP TABLE profiles; --".into()),
            SqlParam::Text("$.\"address\".\"city\"".into()),
            SqlParam::Text("c1".into()),
        ]
    );
}

#[test]
fn postgres_sql_casts_every_parameter() {
    let f = parse(json!({"logical": "and", "conditions": [
        {"property": "ltv", "operator": "is greater than", "values": ["10"]},
        {"property": "_updated_at", "operator": "is before", "values": ["2024-05-13T15:30:00.1234567Z"]},
        {"property": "born", "operator": "is after", "values": ["2000-01-01"]},
    ]}));
    let (sql, params) = f.to_sql(SqlDialect::Postgres, 1);
    assert!(sql.contains("(doc #> $1::text::text[])"), "{sql}");
    assert!(sql.contains(" > $2::text::numeric, FALSE)"), "{sql}");
    assert!(
        sql.contains("(updated_at < $3::text::timestamptz)"),
        "{sql}"
    );
    assert!(
        sql.contains("END) COLLATE \"C\" > $5::text, FALSE)"),
        "{sql}"
    );
    assert_eq!(
        params,
        [
            SqlParam::Text("{\"ltv\"}".into()),
            SqlParam::Text("10.00".into()),
            SqlParam::Text("2024-05-13T15:30:00.123456Z".into()),
            SqlParam::Text("{\"born\"}".into()),
            SqlParam::Text("2000-01-01".into()),
        ]
    );
    assert_eq!(
        parse(json!({"logical": "or", "conditions": []})).to_sql(SqlDialect::Postgres, 1),
        ("TRUE".into(), vec![])
    );
}

#[test]
fn sqlite_functions() {
    assert_eq!(sqlite_ts("1970-01-01T00:00:01.5Z"), Some(1_500_000));
    assert_eq!(sqlite_ts("nope"), None);
    assert_eq!(sqlite_dec_cmp("1.50", " 1.5"), Some(0));
    assert_eq!(sqlite_dec_cmp("-2", "1"), Some(-1));
    assert_eq!(sqlite_dec_cmp("x", "1"), None);
}
