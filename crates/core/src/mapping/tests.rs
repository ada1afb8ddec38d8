use std::str::FromStr;

use chrono::{NaiveDate, NaiveTime, TimeZone, Utc};
use rust_decimal::Decimal;
use serde_json::{json, Value as Json};

use super::*;
use crate::schema::SchemaWire;

fn schema() -> Schema {
    let wire: SchemaWire = serde_json::from_value(json!({"properties": [
        {"name": "email", "type": "string"},
        {"name": "first_name", "type": "string"},
        {"name": "last_name", "type": "string"},
        {"name": "nickname", "type": "string"},
        {"name": "age", "type": "int"},
        {"name": "ltv", "type": "decimal(12,2)"},
        {"name": "score", "type": "float"},
        {"name": "vip", "type": "boolean"},
        {"name": "signup", "type": "datetime"},
        {"name": "born", "type": "date"},
        {"name": "wake", "type": "time"},
        {"name": "ref", "type": "uuid"},
        {"name": "extra", "type": "json"},
        {"name": "tags", "type": "array(string)"},
        {"name": "scores", "type": "array(int)"},
        {"name": "address", "type": "object", "properties": [
            {"name": "city", "type": "string"},
            {"name": "geo", "type": "object", "properties": [{"name": "lat", "type": "float"}]}
        ]},
        {"name": "orders", "type": "array(object)", "properties": [{"name": "total", "type": "decimal(10,2)"}]}
    ]}))
    .unwrap();
    Schema::from_wire(&wire).unwrap()
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 29, 10, 0, 0).unwrap()
}

fn profile(doc: Json) -> Profile {
    let mut input = doc.as_object().unwrap().clone();
    input.insert("_id".into(), json!("c1"));
    let (id, doc) = schema().validate_profile(&input).unwrap();
    Profile {
        id,
        updated_at: Utc.with_ymd_and_hms(2024, 5, 13, 15, 30, 0).unwrap(),
        doc,
    }
}

fn sample() -> Profile {
    profile(json!({
        "email": "  Ada.Lovelace@Example.COM ",
        "first_name": "ada",
        "last_name": "LOVELACE",
        "age": 36,
        "ltv": "1234.5",
        "score": 0.75,
        "vip": true,
        "signup": "2024-05-13T17:30:00+02:00",
        "born": "1815-12-10",
        "wake": "07:30",
        "ref": "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11",
        "extra": {"plan": {"name": "gold", "seats": 5}, "note": "hi", "list": [1, 2, 3]},
        "tags": ["a", "b", "c"],
        "scores": [3, 1, 2],
        "address": {"city": "Zürich", "geo": {"lat": 47.37}},
        "orders": [{"total": "10.50"}]
    }))
}

fn compile(text: &str) -> Expression {
    Expression::compile(text, &schema()).unwrap_or_else(|e| panic!("{text}: {e:?}"))
}

/// Evaluates on the sample profile.
fn ev(text: &str) -> Value {
    ev_on(text, &sample())
}

fn ev_on(text: &str, p: &Profile) -> Value {
    compile(text)
        .eval(p, now())
        .unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn run_err(text: &str) -> String {
    compile(text)
        .eval(&sample(), now())
        .expect_err(text)
        .to_string()
}

/// The compile errors, as "at N: message".
fn errs(text: &str) -> Vec<String> {
    match Expression::compile(text, &schema()) {
        Ok(e) => panic!("{text} compiled to {:?}", e.ty()),
        Err(e) => e.iter().map(ToString::to_string).collect(),
    }
}

fn err1(text: &str) -> String {
    let e = errs(text);
    assert_eq!(e.len(), 1, "{text}: {e:?}");
    e.into_iter().next().unwrap()
}

fn s(x: &str) -> Value {
    Value::String(x.into())
}

fn d(x: &str) -> Value {
    Value::Decimal(Decimal::from_str(x).unwrap())
}

fn ty(text: &str) -> Type {
    compile(text).ty().clone()
}

// ---- values, paths and literals ---------------------------------------------------------------------------

#[test]
fn paths_read_typed_values() {
    assert_eq!(ev("first_name"), s("ada"));
    assert_eq!(ev("age"), Value::Int(36));
    assert_eq!(ev("ltv"), d("1234.50"));
    assert_eq!(ev("score"), Value::Float(0.75));
    assert_eq!(ev("vip"), Value::Bool(true));
    assert_eq!(
        ev("signup"),
        Value::DateTime(Utc.with_ymd_and_hms(2024, 5, 13, 15, 30, 0).unwrap())
    );
    assert_eq!(
        ev("born"),
        Value::Date(NaiveDate::from_ymd_opt(1815, 12, 10).unwrap())
    );
    assert_eq!(
        ev("wake"),
        Value::Time(NaiveTime::from_hms_opt(7, 30, 0).unwrap())
    );
    assert_eq!(
        ev("ref").to_string(),
        "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"
    );
    assert_eq!(ev("address.city"), s("Zürich"));
    assert_eq!(ev("address.geo.lat"), Value::Float(47.37));
    assert_eq!(
        ev("address"),
        Value::json(json!({"city": "Zürich", "geo": {"lat": 47.37}}))
    );
    assert_eq!(ev("tags"), Value::Array(vec![s("a"), s("b"), s("c")]));
    assert_eq!(ev("_id"), s("c1"));
    assert_eq!(
        ev("_updated_at"),
        Value::DateTime(Utc.with_ymd_and_hms(2024, 5, 13, 15, 30, 0).unwrap())
    );
}

#[test]
fn path_types() {
    assert_eq!(ty("email"), Type::String);
    assert_eq!(ty("ltv"), Type::Decimal);
    assert_eq!(ty("address"), Type::Object);
    assert_eq!(ty("address.geo.lat"), Type::Float);
    assert_eq!(ty("tags"), Type::Array(Box::new(Type::String)));
    assert_eq!(ty("orders"), Type::Array(Box::new(Type::Object)));
    assert_eq!(ty("_id"), Type::String);
    assert_eq!(ty("_updated_at"), Type::DateTime);
    assert_eq!(ty("extra"), Type::Json);
    assert_eq!(ty("extra.plan.name"), Type::Json);
}

#[test]
fn json_sub_paths() {
    assert_eq!(ev("extra.plan.name"), Value::json(json!("gold")));
    assert_eq!(
        ev("extra.plan"),
        Value::json(json!({"name": "gold", "seats": 5}))
    );
    assert_eq!(ev("extra.missing.deeper"), Value::Null);
    assert_eq!(ev("extra.note.x"), Value::Null);
}

#[test]
fn missing_properties_are_null() {
    let p = profile(json!({"first_name": "Ada"}));
    assert_eq!(ev_on("email", &p), Value::Null);
    assert_eq!(ev_on("address.city", &p), Value::Null);
    assert_eq!(ev_on("address.geo.lat", &p), Value::Null);
    let p = profile(json!({"address": {"geo": {"lat": 1.0}}}));
    assert_eq!(ev_on("address.city", &p), Value::Null);
    let p = profile(json!({"email": null}));
    assert_eq!(ev_on("email", &p), Value::Null);
}

#[test]
fn literals() {
    assert_eq!(ev(r#""a\tb""#), s("a\tb"));
    assert_eq!(ev("'x'"), s("x"));
    assert_eq!(ev("42"), Value::Int(42));
    assert_eq!(ev("-42"), Value::Int(-42));
    assert_eq!(ev("12.50").to_string(), "12.50");
    assert_eq!(ty("12.50"), Type::Decimal);
    assert_eq!(ev("1.5e3"), Value::Float(1500.0));
    assert_eq!(ty("1e2"), Type::Float);
    assert_eq!(ev("true"), Value::Bool(true));
    assert_eq!(ev("FALSE"), Value::Bool(false));
    assert_eq!(ev("null"), Value::Null);
    assert_eq!(ty("null"), Type::Null);
    assert_eq!(ev(r#""\u{1F600}""#), s("😀"));
}

#[test]
fn unknown_paths_are_type_errors() {
    assert_eq!(
        err1("emial"),
        "at 1: unknown property `emial`; did you mean `email`?"
    );
    assert_eq!(
        err1("lower(adress.city)"),
        "at 7: unknown property `adress.city`; did you mean `address.city`?"
    );
    assert_eq!(err1("zzz"), "at 1: unknown property `zzz`");
    assert_eq!(
        err1("email.domain"),
        "at 1: `email` is a string, which has no property `domain`"
    );
    assert_eq!(
        err1("orders.total"),
        "at 1: `orders` is an array(object), which has no property `total`"
    );
    assert_eq!(
        err1("address.town"),
        "at 1: unknown property `address.town`"
    );
    assert_eq!(
        err1("_id.x"),
        "at 1: `_id` is a string, which has no property `x`"
    );
    assert_eq!(
        err1("now"),
        "at 1: unknown property `now`; to call the function, write `now()`"
    );
    assert_eq!(
        err1("Email"),
        "at 1: unknown property `Email`; did you mean `email`?"
    );
}

/// A source pipeline's mapping reads source columns, and says so.
#[test]
fn a_source_mapping_names_source_columns() {
    let err = |text: &str| -> Vec<String> {
        match Expression::compile_reading(text, &schema(), Reads::SourceColumns) {
            Ok(_) => panic!("{text} compiled"),
            Err(e) => e.iter().map(ToString::to_string).collect(),
        }
    };
    assert_eq!(
        err("lower(emial)"),
        ["at 7: unknown source column `emial`; did you mean `email`?"]
    );
    assert_eq!(err("region"), ["at 1: unknown source column `region`"]);
    assert_eq!(
        err("email(1)"),
        ["at 1: `email` is a source column, not a function: write it without parentheses"]
    );
}

// ---- concatenation ----------------------------------------------------------------------------------------

#[test]
fn concatenation_by_juxtaposition() {
    assert_eq!(ev(r#"first_name " " last_name"#), s("ada LOVELACE"));
    assert_eq!(ty(r#"first_name " " last_name"#), Type::String);
    assert_eq!(
        ev(r#"initcap(first_name) " " initcap(last_name)"#),
        s("Ada Lovelace")
    );
    assert_eq!(
        ev(r#"_id "-" age "-" ltv "-" vip"#),
        s("c1-36-1234.50-true")
    );
    assert_eq!(
        ev(r#"born "/" signup "/" wake"#),
        s("1815-12-10/2024-05-13T15:30:00Z/07:30:00")
    );
    assert_eq!(
        ev(r#"ref "|" score"#),
        s("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11|0.75")
    );
    assert_eq!(
        ev(r#"tags ";" extra.plan.name ";" extra.plan"#),
        s(r#"["a","b","c"];gold;{"name":"gold","seats":5}"#)
    );
    assert_eq!(ev(r#"("a" "b") ("c")"#), s("abc"));
}

#[test]
fn null_parts_concatenate_as_empty_text() {
    let p = profile(json!({"first_name": "Ada"}));
    assert_eq!(ev_on(r#"first_name " " last_name"#, &p), s("Ada "));
    assert_eq!(ev_on(r#"last_name nickname"#, &p), s(""));
    assert_eq!(ev_on(r#"null "x" null"#, &p), s("x"));
    assert_eq!(
        ev_on(r#"nullif(trim(last_name " " nickname), "")"#, &p),
        Value::Null
    );
}

#[test]
fn constant_concatenations_fold() {
    let e = compile(r#""a" 1 "b" 2.50 true null"#);
    assert_eq!(e.constant(), Some(&s("a1b2.50true")));
}

// ---- text functions ---------------------------------------------------------------------------------------

#[test]
fn case_and_trim() {
    assert_eq!(ev("lower(email)"), s("  ada.lovelace@example.com "));
    assert_eq!(ev("upper(first_name)"), s("ADA"));
    assert_eq!(ev("trim(email)"), s("Ada.Lovelace@Example.COM"));
    assert_eq!(ev("ltrim(email)"), s("Ada.Lovelace@Example.COM "));
    assert_eq!(ev("rtrim(email)"), s("  Ada.Lovelace@Example.COM"));
    assert_eq!(ev("lower(trim(email))"), s("ada.lovelace@example.com"));
    assert_eq!(ev("trim(\"\t x \n\")"), s("x"));
    assert_eq!(ev("upper(\"straße\")"), s("STRASSE"));
    assert_eq!(ev("lower(\"ÀÉÎ\")"), s("àéî"));
    assert_eq!(ev("LOWER(first_name)"), s("ada"));
    assert_eq!(ev("Upper (first_name)"), s("ADA"));
    assert_eq!(ev("trim(_id)"), s("c1"));
}

#[test]
fn initcap_words() {
    assert_eq!(ev(r#"initcap("hello wORLD")"#), s("Hello World"));
    assert_eq!(ev(r#"initcap("o'neil-SMITH jr.")"#), s("O'Neil-Smith Jr."));
    assert_eq!(ev(r#"initcap("élodie ÉMILE")"#), s("Élodie Émile"));
    assert_eq!(ev(r#"initcap("  ")"#), s("  "));
    assert_eq!(ev(r#"initcap("3rd street")"#), s("3rd Street"));
}

#[test]
fn substring_counts_characters() {
    assert_eq!(ev(r#"substring("héllo wörld", 2, 4)"#), s("éllo"));
    assert_eq!(ev(r#"substring("héllo", 2)"#), s("éllo"));
    assert_eq!(ev(r#"substring("😀😃😄", 2, 1)"#), s("😃"));
    assert_eq!(ev(r#"substring("hello", -3)"#), s("llo"));
    assert_eq!(ev(r#"substring("hello", -3, 2)"#), s("ll"));
    assert_eq!(ev(r#"substring("hello", -10, 2)"#), s("he"));
    assert_eq!(ev(r#"substring("hello", 0, 2)"#), s("he"));
    assert_eq!(ev(r#"substring("hello", 9)"#), s(""));
    assert_eq!(ev(r#"substring("hello", 4, 100)"#), s("lo"));
    assert_eq!(ev(r#"substring("hello", 1, 0)"#), s(""));
    assert_eq!(ev("substring(address.city, 1, 2)"), s("Zü"));
    assert_eq!(ev("substring(nickname, 1, 2)"), Value::Null);
    assert_eq!(ev("substring(first_name, null)"), Value::Null);
    assert_eq!(ev("substring(first_name, 1, null)"), Value::Null);
    assert_eq!(
        err1(r#"substring("hello", 1, -1)"#),
        "at 1: substring: the length must not be negative"
    );
    assert_eq!(
        run_err("substring(first_name, 1, sub(0, age))"),
        "at 1: substring: the length must not be negative"
    );
}

#[test]
fn left_and_right() {
    assert_eq!(ev(r#"left("héllo", 2)"#), s("hé"));
    assert_eq!(ev(r#"left("héllo", 10)"#), s("héllo"));
    assert_eq!(ev(r#"left("héllo", -2)"#), s("hél"));
    assert_eq!(ev(r#"left("héllo", -9)"#), s(""));
    assert_eq!(ev(r#"right("héllo", 3)"#), s("llo"));
    assert_eq!(ev(r#"right("héllo", -1)"#), s("éllo"));
    assert_eq!(ev(r#"right("😀😃", 1)"#), s("😃"));
    assert_eq!(ev("left(nickname, 2)"), Value::Null);
}

#[test]
fn len_of_text_arrays_and_json() {
    assert_eq!(ev(r#"len("héllo😀")"#), Value::Int(6));
    assert_eq!(ev("len(tags)"), Value::Int(3));
    assert_eq!(ev("len(extra)"), Value::Int(3));
    assert_eq!(ev("len(extra.list)"), Value::Int(3));
    assert_eq!(ev("len(extra.note)"), Value::Int(2));
    assert_eq!(ev("len(address)"), Value::Int(2));
    assert_eq!(ev("len(nickname)"), Value::Null);
    assert_eq!(ev(r#"len("")"#), Value::Int(0));
    assert_eq!(
        run_err("len(extra.plan.seats)"),
        "at 1: len: expects text, an array or an object, got a JSON number"
    );
    assert_eq!(ty("len(tags)"), Type::Int);
}

#[test]
fn concat_replace_contains() {
    assert_eq!(
        ev(r#"concat(first_name, " ", nickname, "!", age)"#),
        s("ada !36")
    );
    assert_eq!(ev(r#"concat(nickname)"#), s(""));
    assert_eq!(ev(r#"replace("a-b-c", "-", "+")"#), s("a+b+c"));
    assert_eq!(ev(r#"replace("abc", "", "x")"#), s("abc"));
    assert_eq!(ev(r#"replace("abc", "b", null)"#), s("ac"));
    assert_eq!(ev(r#"replace(nickname, "b", "x")"#), Value::Null);
    assert_eq!(ev(r#"contains(email, "@")"#), Value::Bool(true));
    assert_eq!(ev(r#"contains(email, "%")"#), Value::Bool(false));
    assert_eq!(ev(r#"contains(nickname, "%")"#), Value::Null);
    assert_eq!(ev(r#"contains(tags, "b")"#), Value::Bool(true));
    assert_eq!(ev(r#"contains(tags, "z")"#), Value::Bool(false));
    assert_eq!(ev("contains(scores, 2)"), Value::Bool(true));
    assert_eq!(ev("contains(scores, 2.0)"), Value::Bool(true));
    assert_eq!(ev("contains(extra.list, 3)"), Value::Bool(true));
    assert_eq!(ev(r#"contains(extra, "plan")"#), Value::Bool(true));
    assert_eq!(ev(r#"contains(extra.note, "i")"#), Value::Bool(true));
    assert_eq!(ev(r#"starts_with(first_name, "ad")"#), Value::Bool(true));
    assert_eq!(ev(r#"ends_with(first_name, "ad")"#), Value::Bool(false));
    assert_eq!(ev(r#"ends_with(nickname, "x")"#), Value::Null);
}

#[test]
fn split_join_at() {
    assert_eq!(
        ev(r#"split("a,b,,c", ",")"#),
        Value::Array(vec![s("a"), s("b"), s(""), s("c")])
    );
    assert_eq!(ev(r#"split("añ", "")"#), Value::Array(vec![s("a"), s("ñ")]));
    assert_eq!(
        ty(r#"split("a", ",")"#),
        Type::Array(Box::new(Type::String))
    );
    assert_eq!(ev(r#"join(tags, ", ")"#), s("a, b, c"));
    assert_eq!(ev(r#"join(scores, "+")"#), s("3+1+2"));
    assert_eq!(ev(r#"join(extra.list, "")"#), s("123"));
    assert_eq!(ev(r#"join(split("x y", " "), "_")"#), s("x_y"));
    assert_eq!(ev(r#"join(split(nickname, ","), ",")"#), Value::Null);
    assert_eq!(ev("at(tags, 1)"), s("a"));
    assert_eq!(ev("at(tags, -1)"), s("c"));
    assert_eq!(ev("at(tags, 4)"), Value::Null);
    assert_eq!(ev("at(tags, 0)"), Value::Null);
    assert_eq!(ev("at(tags, -4)"), Value::Null);
    assert_eq!(ev("at(extra.list, 2)"), Value::json(json!(2)));
    assert_eq!(ty("at(tags, 1)"), Type::String);
    assert_eq!(ty("at(scores, 1)"), Type::Int);
    assert_eq!(ev("at(orders, 1)"), Value::json(json!({"total": "10.50"})));
    let p = profile(json!({"tags": ["x", null, "y"]}));
    assert_eq!(ev_on(r#"join(tags, "|")"#, &p), s("x|y"));
}

// ---- logic ------------------------------------------------------------------------------------------------

#[test]
fn coalesce_and_if() {
    assert_eq!(ev(r#"coalesce(nickname, first_name, "x")"#), s("ada"));
    assert_eq!(ev(r#"coalesce(nickname, null, "x")"#), s("x"));
    assert_eq!(ev("coalesce(nickname)"), Value::Null);
    assert_eq!(ty("coalesce(nickname, email)"), Type::String);
    assert_eq!(ty("coalesce(age, 1.5)"), Type::Decimal);
    assert_eq!(ty("coalesce(age, score)"), Type::Float);
    assert_eq!(ty("coalesce(null, age)"), Type::Int);
    assert_eq!(ev(r#"if(vip, "VIP", "regular")"#), s("VIP"));
    assert_eq!(ev(r#"if(not(vip), "VIP", "regular")"#), s("regular"));
    assert_eq!(ev(r#"if(gt(age, 40), "old")"#), Value::Null);
    assert_eq!(ev(r#"if(null, "a", "b")"#), s("b"));
    assert_eq!(ev(r#"if(eq(nickname, null), "none", nickname)"#), s("none"));
    assert_eq!(ty(r#"if(vip, 1, null)"#), Type::Int);
    assert_eq!(ty(r#"if(vip, 1)"#), Type::Int);
    // Only the branch taken is evaluated.
    assert_eq!(ev(r#"if(true, 1, to_int(first_name))"#), Value::Int(1));
    assert_eq!(ev(r#"coalesce(age, to_int(first_name))"#), Value::Int(36));
}

#[test]
fn nullif_is_null_is_empty() {
    assert_eq!(ev(r#"nullif(first_name, "ada")"#), Value::Null);
    assert_eq!(ev(r#"nullif(first_name, "bob")"#), s("ada"));
    assert_eq!(ev(r#"nullif(trim("  "), "")"#), Value::Null);
    assert_eq!(ev("is_null(nickname)"), Value::Bool(true));
    assert_eq!(ev("is_null(first_name)"), Value::Bool(false));
    assert_eq!(ev("is_null(extra.nope)"), Value::Bool(true));
    assert_eq!(ev("is_empty(nickname)"), Value::Bool(true));
    assert_eq!(ev(r#"is_empty("")"#), Value::Bool(true));
    assert_eq!(ev(r#"is_empty(" ")"#), Value::Bool(false));
    assert_eq!(ev("is_empty(tags)"), Value::Bool(false));
    assert_eq!(ev(r#"is_empty(split("", "x"))"#), Value::Bool(false));
    assert_eq!(ev(r#"is_empty(json_parse("{}"))"#), Value::Bool(true));
    assert_eq!(ev(r#"is_empty(json_parse("[]"))"#), Value::Bool(true));
    assert_eq!(ev("is_empty(age)"), Value::Bool(false));
}

#[test]
fn equality() {
    assert_eq!(ev(r#"eq(first_name, "ada")"#), Value::Bool(true));
    assert_eq!(ev(r#"eq(first_name, "Ada")"#), Value::Bool(false));
    assert_eq!(ev("eq(age, 36)"), Value::Bool(true));
    assert_eq!(ev("eq(age, 36.0)"), Value::Bool(true));
    assert_eq!(ev("eq(ltv, 1234.5)"), Value::Bool(true));
    assert_eq!(ev("eq(score, 0.75)"), Value::Bool(true));
    assert_eq!(ev("eq(nickname, null)"), Value::Bool(true));
    assert_eq!(ev("eq(null, null)"), Value::Bool(true));
    assert_eq!(ev("eq(age, null)"), Value::Bool(false));
    assert_eq!(ev("ne(age, null)"), Value::Bool(true));
    assert_eq!(ev("ne(age, 36)"), Value::Bool(false));
    assert_eq!(
        ev(r#"eq(ref, "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11")"#),
        Value::Bool(true)
    );
    assert_eq!(ev(r#"eq(extra.plan.name, "gold")"#), Value::Bool(true));
    assert_eq!(ev("eq(extra.plan.seats, 5)"), Value::Bool(true));
    assert_eq!(ev(r#"eq(tags, split("a b c", " "))"#), Value::Bool(true));
    assert_eq!(ev(r#"eq(born, to_date("1815-12-10"))"#), Value::Bool(true));
}

#[test]
fn ordering() {
    assert_eq!(ev("lt(age, 40)"), Value::Bool(true));
    assert_eq!(ev("le(age, 36)"), Value::Bool(true));
    assert_eq!(ev("gt(age, 36)"), Value::Bool(false));
    assert_eq!(ev("ge(ltv, 1000)"), Value::Bool(true));
    assert_eq!(ev("gt(score, 0.5)"), Value::Bool(true));
    assert_eq!(ev(r#"lt("a", "b")"#), Value::Bool(true));
    assert_eq!(
        ev(r#"gt(signup, to_datetime("2024-01-01T00:00:00Z"))"#),
        Value::Bool(true)
    );
    assert_eq!(ev(r#"lt(born, to_date("1900-01-01"))"#), Value::Bool(true));
    assert_eq!(ev("lt(wake, wake)"), Value::Bool(false));
    assert_eq!(ev("le(wake, wake)"), Value::Bool(true));
    assert_eq!(ev("lt(nickname, \"x\")"), Value::Null);
    assert_eq!(ev("gt(age, null)"), Value::Null);
    assert_eq!(ev("lt(extra.plan.seats, 6)"), Value::Bool(true));
}

#[test]
fn boolean_logic_is_three_valued() {
    assert_eq!(ev("and(true, true)"), Value::Bool(true));
    assert_eq!(ev("and(true, false)"), Value::Bool(false));
    assert_eq!(ev("and(true, null)"), Value::Null);
    assert_eq!(ev("and(false, null)"), Value::Bool(false));
    assert_eq!(ev("and(null, false)"), Value::Bool(false));
    assert_eq!(ev("and(vip, gt(age, 30), lt(age, 40))"), Value::Bool(true));
    assert_eq!(ev("or(false, false)"), Value::Bool(false));
    assert_eq!(ev("or(false, null)"), Value::Null);
    assert_eq!(ev("or(null, true)"), Value::Bool(true));
    assert_eq!(ev("or(false, vip)"), Value::Bool(true));
    assert_eq!(ev("not(true)"), Value::Bool(false));
    assert_eq!(ev("not(null)"), Value::Null);
    assert_eq!(ev("not(eq(nickname, \"x\"))"), Value::Bool(true));
}

// ---- numbers ----------------------------------------------------------------------------------------------

#[test]
fn arithmetic_types_and_values() {
    assert_eq!(ev("add(age, 4)"), Value::Int(40));
    assert_eq!(ty("add(age, 4)"), Type::Int);
    assert_eq!(ev("sub(age, 40)"), Value::Int(-4));
    assert_eq!(ev("mul(age, 2)"), Value::Int(72));
    assert_eq!(ev("add(ltv, 0.5)"), d("1235.00"));
    assert_eq!(ty("add(ltv, 1)"), Type::Decimal);
    assert_eq!(ev("mul(ltv, 2)"), d("2469.00"));
    assert_eq!(ev("add(0.1, 0.2)"), d("0.3"));
    assert_eq!(ev("add(score, 1)"), Value::Float(1.75));
    assert_eq!(ty("add(score, ltv)"), Type::Float);
    assert_eq!(ev("div(1, 4)"), d("0.25"));
    assert_eq!(ty("div(age, 4)"), Type::Decimal);
    assert_eq!(ev("div(age, 4)"), d("9"));
    assert_eq!(ev("div(score, 2)"), Value::Float(0.375));
    assert_eq!(ev("add(age, null)"), Value::Null);
    assert_eq!(ev("add(to_int(extra.plan.seats), 1)"), Value::Int(6));
    assert!(err1("add(extra.plan.seats, 1)").contains("expects a number as argument 1, got json"));
    assert_eq!(err1("div(1, 0)"), "at 1: div: division by zero");
    assert_eq!(
        run_err("div(age, sub(age, age))"),
        "at 1: div: division by zero"
    );
    assert_eq!(run_err("div(score, 0)"), "at 1: div: division by zero");
    assert_eq!(
        err1("add(9223372036854775807, 1)"),
        "at 1: add: the result is out of range"
    );
    assert_eq!(
        run_err("mul(age, 922337203685477580)"),
        "at 1: mul: the result is out of range"
    );
}

#[test]
fn round_and_abs() {
    assert_eq!(ev("round(2.5)"), d("3"));
    assert_eq!(ev("round(-2.5)"), d("-3"));
    assert_eq!(ev("round(1.005, 2)"), d("1.01"));
    assert_eq!(ev("round(ltv, 0)"), d("1235"));
    assert_eq!(ev("round(ltv, 1)"), d("1234.5"));
    assert_eq!(ev("round(age, 2)"), Value::Int(36));
    assert_eq!(ev("round(to_float(\"1.005\"), 2)"), Value::Float(1.01));
    assert_eq!(ev("round(score, 1)"), Value::Float(0.8));
    assert_eq!(ev("round(len(nickname), 1)"), Value::Null);
    assert_eq!(ty("round(ltv, 1)"), Type::Decimal);
    assert_eq!(
        err1("round(1.5, 29)"),
        "at 1: round: the number of digits must be between 0 and 28"
    );
    assert_eq!(ev("abs(-3)"), Value::Int(3));
    assert_eq!(ev("abs(-3.50)"), d("3.50"));
    assert_eq!(ev("abs(sub(score, 1))"), Value::Float(0.25));
}

// ---- conversions ------------------------------------------------------------------------------------------

#[test]
fn to_string_forms() {
    assert_eq!(ev("to_string(age)"), s("36"));
    assert_eq!(ev("to_string(ltv)"), s("1234.50"));
    assert_eq!(ev("to_string(vip)"), s("true"));
    assert_eq!(ev("to_string(signup)"), s("2024-05-13T15:30:00Z"));
    assert_eq!(ev("to_string(tags)"), s(r#"["a","b","c"]"#));
    assert_eq!(
        ev("to_string(address)"),
        s(r#"{"city":"Zürich","geo":{"lat":47.37}}"#)
    );
    assert_eq!(ev("to_string(extra.plan.name)"), s("gold"));
    assert_eq!(ev("to_string(nickname)"), Value::Null);
    assert_eq!(ev("lower(to_string(vip))"), s("true"));
}

#[test]
fn numeric_conversions() {
    assert_eq!(ev(r#"to_int(" 42 ")"#), Value::Int(42));
    assert_eq!(ev("to_int(vip)"), Value::Int(1));
    assert_eq!(ev("to_int(12.00)"), Value::Int(12));
    assert_eq!(ev("to_int(extra.plan.seats)"), Value::Int(5));
    assert_eq!(ev("to_int(nickname)"), Value::Null);
    assert_eq!(
        err1(r#"to_int("4x")"#),
        "at 1: to_int: the text is not an integer"
    );
    assert_eq!(
        run_err("to_int(first_name)"),
        "at 1: to_int: the text is not an integer"
    );
    assert_eq!(
        err1("to_int(12.5)"),
        "at 1: to_int: the number is not a whole number"
    );
    assert_eq!(ev(r#"to_float("1.5")"#), Value::Float(1.5));
    assert_eq!(ev("to_float(ltv)"), Value::Float(1234.5));
    assert_eq!(ev(r#"to_decimal("19.99")"#), d("19.99"));
    assert_eq!(ev("to_decimal(score)"), d("0.75"));
    assert_eq!(ev("to_decimal(age)"), d("36"));
    assert_eq!(ev(r#"to_bool("yes")"#), Value::Bool(true));
    assert_eq!(ev("to_bool(0)"), Value::Bool(false));
    assert_eq!(
        err1(r#"to_bool("maybe")"#),
        "at 1: to_bool: the text is not a boolean (true/false, yes/no, 1/0)"
    );
    assert_eq!(ty("to_decimal(\"1\")"), Type::Decimal);
}

#[test]
fn date_conversions() {
    assert_eq!(
        ev(r#"to_date("2024-02-29")"#),
        Value::Date(NaiveDate::from_ymd_opt(2024, 2, 29).unwrap())
    );
    assert_eq!(
        ev(r#"to_date("13/05/2024", "%d/%m/%Y")"#),
        Value::Date(NaiveDate::from_ymd_opt(2024, 5, 13).unwrap())
    );
    assert_eq!(
        ev("to_date(signup)"),
        Value::Date(NaiveDate::from_ymd_opt(2024, 5, 13).unwrap())
    );
    assert_eq!(
        err1(r#"to_date("2023-02-29")"#),
        "at 1: to_date: the text is not a date (YYYY-MM-DD)"
    );
    assert!(err1(r#"to_date("2024/05/13", "%d/%m/%Y")"#)
        .starts_with("at 1: to_date: the text does not match the format"));
    assert_eq!(
        err1(r#"to_date("05/2024", "%m/%Y")"#),
        "at 1: to_date: the format does not give a complete date"
    );
    let dt = |h, m| Value::DateTime(Utc.with_ymd_and_hms(2024, 5, 13, h, m, 0).unwrap());
    assert_eq!(
        ev(r#"to_datetime("2024-05-13T17:30:00+02:00")"#),
        dt(15, 30)
    );
    assert_eq!(
        ev(r#"to_datetime("13/05/2024 17:30", "%d/%m/%Y %H:%M")"#),
        dt(17, 30)
    );
    assert_eq!(
        ev(r#"to_datetime("13/05/2024 17:30 +0200", "%d/%m/%Y %H:%M %z")"#),
        dt(15, 30)
    );
    assert_eq!(ev(r#"to_datetime("13.05.2024", "%d.%m.%Y")"#), dt(0, 0));
    assert_eq!(
        ev("to_datetime(born)"),
        Value::DateTime(Utc.with_ymd_and_hms(1815, 12, 10, 0, 0, 0).unwrap())
    );
    assert_eq!(ev("to_datetime(1715614200)"), dt(15, 30));
    assert_eq!(ev("to_datetime(nickname)"), Value::Null);
    assert_eq!(ev(r#"to_datetime(nickname, "%Y")"#), Value::Null);
    assert_eq!(
        err1(r#"to_date("x", "%Q")"#),
        "at 14: `%Q` is not a valid date format: it has an unknown or incomplete % specifier"
    );
}

#[test]
fn json_functions() {
    assert_eq!(
        ev(r#"json_parse("{\"a\": [1, 2]}")"#),
        Value::json(json!({"a": [1, 2]}))
    );
    assert_eq!(ev(r#"json_parse("null")"#), Value::Null);
    assert_eq!(ev("json_parse(nickname)"), Value::Null);
    assert!(err1(r#"json_parse("{")"#).starts_with("at 1: json_parse: the text is not valid JSON"));
    assert_eq!(ev("to_json(tags)"), Value::json(json!(["a", "b", "c"])));
    assert_eq!(ev("to_json(ltv)"), Value::json(json!("1234.50")));
    assert_eq!(ev("to_json(first_name)"), Value::json(json!("ada")));
    assert_eq!(ty("json_parse(\"1\")"), Type::Json);
}

// ---- dates ------------------------------------------------------------------------------------------------

#[test]
fn now_is_the_run_start() {
    assert_eq!(ev("now()"), Value::DateTime(now()));
    let e = compile("now()");
    assert!(
        e.constant().is_none(),
        "now() must not fold at compile time"
    );
    let later = now() + chrono::Duration::hours(1);
    assert_eq!(e.eval(&sample(), later).unwrap(), Value::DateTime(later));
    assert_eq!(ev(r#"format_datetime(now(), "%Y")"#), s("2026"));
}

#[test]
fn only_now_makes_an_expression_depend_on_the_run() {
    for text in [
        "now()",
        r#"format_datetime(now(), "%Y")"#,
        r#"coalesce(first_name, format_datetime(now(), "%Y"))"#,
        r#"first_name " " format_datetime(now(), "%Y")"#,
    ] {
        assert!(compile(text).depends_on_run(), "{text}");
    }
    for text in [
        "first_name",
        r#"upper(first_name) " " last_name"#,
        r#"format_datetime(signup, "%Y")"#,
        "\"constant\"",
    ] {
        assert!(!compile(text).depends_on_run(), "{text}");
    }
}

#[test]
fn format_datetime_on_datetimes_and_dates() {
    assert_eq!(
        ev(r#"format_datetime(signup, "%d/%m/%Y %H:%M")"#),
        s("13/05/2024 15:30")
    );
    assert_eq!(
        ev(r#"format_datetime(signup, "%Y-%m-%dT%H:%M:%S%z")"#),
        s("2024-05-13T15:30:00+0000")
    );
    assert_eq!(
        ev(r#"format_datetime(signup, "%a %d %b %Y, day %j")"#),
        s("Mon 13 May 2024, day 134")
    );
    assert_eq!(ev(r#"format_datetime(born, "%Y/%m/%d")"#), s("1815/12/10"));
    assert_eq!(
        ev(r#"format_datetime(born, "%d.%m.%Y %H:%M")"#),
        s("10.12.1815 00:00")
    );
    assert_eq!(ev(r#"format_datetime(_updated_at, "100%%")"#), s("100%"));
    assert_eq!(
        ev(r#"format_datetime(to_datetime(nickname), "%Y")"#),
        Value::Null
    );
    // A format computed per profile is parsed per profile.
    assert_eq!(
        ev(r#"format_datetime(signup, if(vip, "%Y", "%m"))"#),
        s("2024")
    );
    assert!(run_err(r#"format_datetime(signup, if(vip, "%Q", "%m"))"#)
        .contains("not a valid date format"));
    assert_eq!(
        err1(r#"format_datetime(signup, "%Y-%")"#),
        "at 25: `%Y-%` is not a valid date format: it has an unknown or incomplete % specifier"
    );
    assert_eq!(
        err1(r#"format_datetime(wake, "%H")"#),
        "at 17: `format_datetime` expects a datetime or a date as argument 1, got time"
    );
}

// ---- type errors ------------------------------------------------------------------------------------------

#[test]
fn unknown_functions_suggest() {
    assert_eq!(
        err1("lowr(email)"),
        "at 1: unknown function `lowr`; did you mean `lower`?"
    );
    assert_eq!(
        err1(r#"first_name " " lowr(email)"#),
        "at 16: unknown function `lowr`; did you mean `lower`?"
    );
    assert_eq!(
        err1("frobnicate(email)"),
        "at 1: unknown function `frobnicate`"
    );
    assert_eq!(
        err1("email(1)"),
        "at 1: `email` is a property, not a function: write it without parentheses"
    );
    assert_eq!(
        err1("cocalesce(email, \"\")"),
        "at 1: unknown function `cocalesce`; did you mean `coalesce`?"
    );
}

#[test]
fn wrong_arity() {
    assert_eq!(
        err1("lower()"),
        "at 1: `lower` takes 1 argument, got 0: lower(text: string) -> string"
    );
    assert_eq!(
        err1("substring(email)"),
        "at 1: `substring` takes 2 or 3 arguments, got 1: substring(text: string, start: int[, length: int]) -> string"
    );
    assert_eq!(
        err1("now(1)"),
        "at 1: `now` takes 0 arguments, got 1: now() -> datetime"
    );
    assert!(err1("and(true)").contains("takes at least 2 arguments, got 1"));
    assert!(err1("coalesce()").contains("takes at least 1 argument, got 0"));
    assert!(err1(r#"replace(email, "x")"#).contains("takes 3 arguments, got 2"));
}

#[test]
fn wrong_argument_types() {
    assert_eq!(
        err1("lower(age)"),
        "at 7: `lower` expects a string as argument 1, got int; convert it with to_string(…)"
    );
    assert_eq!(
        err1(r#"substring(email, "2")"#),
        "at 18: `substring` expects an int as argument 2, got string; convert it with to_int(…)"
    );
    assert_eq!(
        err1("upper(tags)"),
        "at 7: `upper` expects a string as argument 1, got array(string); join its elements with join(…, \", \")"
    );
    assert_eq!(
        err1("trim(address)"),
        "at 6: `trim` expects a string as argument 1, got object; pick one of its properties with a path such as `address.city`"
    );
    assert_eq!(
        err1("if(email, 1, 2)"),
        "at 4: `if` expects a boolean as argument 1, got string; convert it with to_bool(…) or compare it with eq(…)"
    );
    assert_eq!(err1(r#"add(age, "1")"#), "at 10: `add` expects a number as argument 2, got string; convert it with to_decimal(…) or to_int(…)");
    assert_eq!(
        err1("lower(extra.x)"),
        "at 7: `lower` expects a string as argument 1, got json; convert it with to_string(…)"
    );
    assert_eq!(
        err1("eq(age, email)"),
        "at 9: `eq` cannot compare int with string"
    );
    assert_eq!(
        err1("lt(tags, tags)"),
        "at 10: `lt` cannot order values of type array(string)"
    );
    assert_eq!(
        err1("lt(born, signup)"),
        "at 10: `lt` cannot compare date with datetime"
    );
    assert_eq!(
        err1(r#"coalesce(nickname, age)"#),
        "at 20: `coalesce` needs arguments of one type, but argument 2 is int where the earlier ones are string; convert them, e.g. with to_string(…)"
    );
    assert_eq!(err1(r#"if(vip, 1, "x")"#), "at 12: `if` needs arguments of one type, but argument 3 is string where the earlier ones are int; convert them, e.g. with to_string(…)");
    assert_eq!(
        err1("contains(tags, 1)"),
        "at 16: `contains` cannot look for int in an array(string)"
    );
    assert_eq!(
        err1("contains(age, 1)"),
        "at 10: `contains` expects a string, an array or JSON as argument 1, got int"
    );
    assert_eq!(
        err1("to_int(signup)"),
        "at 8: `to_int` expects a string, a number or a boolean as argument 1, got datetime"
    );
    assert_eq!(
        err1("len(age)"),
        "at 5: `len` expects a string, an array or JSON as argument 1, got int"
    );
    assert_eq!(
        err1("at(email, 1)"),
        "at 4: `at` expects an array as argument 1, got string"
    );
    assert_eq!(err1("not(age)"), "at 5: `not` expects a boolean as argument 1, got int; convert it with to_bool(…) or compare it with eq(…)");
}

#[test]
fn every_error_is_reported_without_cascades() {
    let e = errs(r#"lowr(emial) " " upper(age) substring(email)"#);
    assert_eq!(
        e,
        vec![
            "at 1: unknown function `lowr`; did you mean `lower`?",
            "at 6: unknown property `emial`; did you mean `email`?",
            "at 23: `upper` expects a string as argument 1, got int; convert it with to_string(…)",
            "at 28: `substring` takes 2 or 3 arguments, got 1: substring(text: string, start: int[, length: int]) -> string",
        ]
    );
    // The unknown property makes the argument `any`, which `lower` accepts: one error, not two.
    assert_eq!(errs("lower(upper(nope))").len(), 1);
}

#[test]
fn syntax_errors_come_back_as_one() {
    assert_eq!(
        errs("lower(email"),
        vec!["at 12: missing `)` to close the call of `lower` opened at 1"]
    );
    assert_eq!(errs("first_name + last_name").len(), 1);
}

#[test]
fn positions_count_characters() {
    assert_eq!(
        err1(r#""héllo 😀" lowr(email)"#),
        "at 11: unknown function `lowr`; did you mean `lower`?"
    );
}

#[test]
fn constant_calls_fold() {
    let e = compile(r#"upper("abc")"#);
    assert_eq!(e.constant(), Some(&s("ABC")));
    assert_eq!(e.ty(), &Type::String);
    let e = compile(r#"coalesce(null, 3)"#);
    assert_eq!(e.constant(), Some(&Value::Int(3)));
    assert!(compile("upper(email)").constant().is_none());
}

#[test]
fn properties_read_are_listed_once_in_order() {
    let e = compile(r#"coalesce(nickname, first_name) " " first_name " " address.city _id"#);
    assert_eq!(
        e.properties(),
        ["nickname", "first_name", "address.city", "_id"]
    );
    let e = compile(r#"extra.plan.name extra.note extra"#);
    assert_eq!(e.properties(), ["extra"]);
}

#[test]
fn function_list_is_complete_and_documented() {
    let list = functions();
    let doc = include_str!("../mapping.rs");
    for required in [
        "lower",
        "upper",
        "trim",
        "ltrim",
        "rtrim",
        "initcap",
        "substring",
        "len",
        "coalesce",
        "if",
        "eq",
        "ne",
        "and",
        "or",
        "not",
        "json_parse",
        "format_datetime",
        "now",
    ] {
        assert!(
            list.iter().any(|f| f.name == required),
            "{required} is missing"
        );
    }
    let mut names = HashSet::new();
    for f in list {
        assert!(names.insert(f.name), "{} is listed twice", f.name);
        assert!(
            f.signature.starts_with(&format!("{}(", f.name)),
            "{}",
            f.signature
        );
        assert!(
            f.description.ends_with('.') || f.description.ends_with(')'),
            "{}",
            f.description
        );
        assert!(!f.category.is_empty());
        assert!(
            doc.contains(&format!("`{}(", f.name)) || doc.contains(&format!("`{}`", f.name)),
            "{} is not in the module documentation",
            f.name
        );
        // Every listed function resolves, case-insensitively.
        assert!(functions::lookup(&f.name.to_uppercase()).is_some());
    }
    assert!(list.len() >= 45);
}

#[test]
fn deep_expressions_evaluate() {
    let text = "lower(".repeat(60) + "email" + &")".repeat(60);
    assert_eq!(ev(&text), s("  ada.lovelace@example.com "));
}

/// A row of values read by [`CompiledMapping::eval_row`] gives what the profile made of the same values
/// gives: the row's non-null values, as their JSON forms, under their columns' names.
#[test]
fn a_row_reads_as_the_profile_of_its_values() {
    let exprs = [
        "email",
        "age",
        "ltv",
        "score",
        "vip",
        "signup",
        "born",
        "wake",
        "ref",
        "extra",
        "extra.plan.name",
        "tags",
        "address.city",
        "first_name \" \" last_name",
        "signup \"|\" born \"|\" ltv \"|\" ref \"|\" wake",
        "coalesce(nickname, 'none')",
        "concat(score, '/', extra.note)",
        "_id",
    ];
    let table = TableDescription {
        name: "out".into(),
        columns: (0..exprs.len())
            .map(|i| crate::Column {
                name: format!("c{i}"),
                native_type: "json".into(),
                nullable: true,
                ty: Some(crate::ColumnType::Json),
                has_default: false,
            })
            .collect(),
        keys: Vec::new(),
        has_primary_key: false,
        issues: Vec::new(),
        rules: Default::default(),
    };
    let mapping = crate::pipeline::indexmap_like::OrderedMap(
        exprs
            .iter()
            .enumerate()
            .map(|(i, e)| (format!("c{i}"), e.to_string()))
            .collect(),
    );
    let compiled = CompiledMapping::compile(&mapping, &schema(), &table).unwrap();
    let names = [
        "email",
        "age",
        "ltv",
        "score",
        "vip",
        "signup",
        "born",
        "wake",
        "ref",
        "extra",
        "tags",
        "address",
        "first_name",
        "last_name",
        "nickname",
    ];
    let dt = |s: &str| Value::DateTime(s.parse().unwrap());
    let rows: Vec<Vec<Value>> = vec![
        vec![
            Value::String("a@x".into()),
            Value::Int(36),
            Value::Decimal(Decimal::from_str("12.50").unwrap()),
            Value::Float(0.75),
            Value::Bool(true),
            dt("2024-05-13T15:30:00.123456789Z"),
            Value::Date(NaiveDate::from_ymd_opt(1815, 12, 10).unwrap()),
            Value::Time(NaiveTime::from_hms_micro_opt(7, 30, 0, 5).unwrap()),
            Value::Uuid("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11".parse().unwrap()),
            Value::json(json!({"plan": {"name": "gold"}, "note": "hi"})),
            Value::json(json!(["a", "b"])),
            Value::json(json!({"city": "Zürich"})),
            Value::String("ada".into()),
            Value::Null,
            Value::Null,
        ],
        // Values of other types than their properties', and values whose JSON form is null.
        vec![
            Value::Int(7),
            Value::String("42".into()),
            Value::Float(2.5),
            Value::Float(f64::NAN),
            Value::String("yes".into()),
            Value::String("2024-05-13 17:30:00+02:00".into()),
            Value::Date(NaiveDate::from_ymd_opt(10_000, 1, 1).unwrap()),
            Value::json(Json::Null),
            Value::String("not a uuid".into()),
            Value::String("text".into()),
            Value::Array(vec![Value::Int(1), Value::Null]),
            Value::String("flat".into()),
            Value::Float(f64::INFINITY),
            Value::Decimal(Decimal::from_str("-0.00").unwrap()),
            Value::json(json!("nick")),
        ],
    ];
    let visible: Vec<Option<String>> = names.iter().map(|n| Some(n.to_string())).collect();
    let plan = compiled.row_plan(&visible);
    for (i, row) in rows.into_iter().enumerate() {
        let mut doc = serde_json::Map::new();
        for (name, v) in names.iter().zip(&row) {
            if !v.is_null() {
                doc.insert(name.to_string(), v.to_json());
            }
        }
        let profile = Profile {
            id: "r1".into(),
            updated_at: now(),
            doc,
        };
        let by_profile = compiled.eval(&profile, now());
        let by_row = compiled.eval_row(&plan, "r1", now(), &row, now());
        assert!(by_row.is_ok(), "row {i}: {by_row:?}");
        assert_eq!(
            format!("{by_profile:?}"),
            format!("{by_row:?}"),
            "row {row:?}"
        );
    }
}
