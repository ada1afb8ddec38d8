//! Script transformations: the JavaScript type contract, errors with locations, isolation and limits; the
//! save-time check of Python.

use std::time::{Duration, Instant};

use chrono::Utc;
use serde_json::{json, Value as Json};
use sluice_core::pipeline::Transformation;
use sluice_core::{Schema, Value};
use sluice_transform::{Limits, Output, Transform};

mod common;
use common::*;

fn compile_with(source: &str, limits: Limits) -> Result<Transform, sluice_core::FieldErrors> {
    Transform::compile(
        &Transformation::Javascript(source.into()),
        "id",
        &Schema::default(),
        &table(),
        limits,
    )
}

fn compile(source: &str) -> Transform {
    compile_with(source, Limits::default()).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn every_customer_model_type_round_trips() {
    let doc = json!({
        "name": "Ada", "age": 36, "big": 9_007_199_254_740_993i64, "neg": -9_223_372_036_854_775_808i64,
        "score": 1.5, "amount": "12345678901234567890.0123456789", "vip": true,
        "seen": "2024-05-13T15:30:00.123456Z", "born": "1988-02-29", "at": "23:59:58.5",
        "uid": "67e55044-10b1-426f-9247-bb680e5fe0c8",
        "extra": {"plan": {"name": "pro", "seats": 9_007_199_254_740_993i64}, "n": null},
        "address": {"city": "Turin"}, "tags": ["a", "b"]
    });
    let t = compile(
        r#"
        const columns = ["id", "s", "i", "f", "d", "b", "dt", "day", "tm", "u", "j", "arr", "small"];
        function transform(p) {
          if (typeof p.big !== "bigint" || typeof p.age !== "number") throw new Error("int types");
          if (typeof p.amount !== "string") throw new Error("decimal type");
          return {
            id: p._id, s: p.name + "|" + p._updated_at + "|" + p.address.city,
            i: p.big, small: p.age, f: p.score, d: p.amount, b: p.vip, dt: p.seen, day: p.born, tm: p.at,
            u: p.uid, j: {extra: p.extra, neg: p.neg}, arr: p.tags,
          };
        }"#,
    );
    let row = run(&t, doc).unwrap().unwrap();
    assert_eq!(
        get(&row, "s"),
        Value::String("Ada|2024-05-13T15:30:00Z|Turin".into())
    );
    assert_eq!(get(&row, "i"), Value::Int(9_007_199_254_740_993));
    assert_eq!(get(&row, "small"), Value::Int(36));
    assert_eq!(get(&row, "f"), Value::Float(1.5));
    assert_eq!(
        get(&row, "d"),
        Value::Decimal("12345678901234567890.0123456789".parse().unwrap())
    );
    assert_eq!(get(&row, "b"), Value::Bool(true));
    assert_eq!(
        get(&row, "dt").to_json(),
        json!("2024-05-13T15:30:00.123456Z")
    );
    assert_eq!(get(&row, "day").to_json(), json!("1988-02-29"));
    assert_eq!(get(&row, "tm").to_json(), json!("23:59:58.500000"));
    assert_eq!(
        get(&row, "u").to_json(),
        json!("67e55044-10b1-426f-9247-bb680e5fe0c8")
    );
    assert_eq!(
        get(&row, "j"),
        Value::json(json!({
            "extra": {"plan": {"name": "pro", "seats": 9_007_199_254_740_993i64}, "n": null},
            "neg": i64::MIN
        }))
    );
    assert_eq!(get(&row, "arr").to_json(), json!(["a", "b"]));
}

#[test]
fn script_values_convert_like_mapping_values() {
    let t = compile(
        r#"const columns = ["id", "i", "f", "dt", "s", "j", "d"];
        function transform(p) {
          return {id: "k", i: 6 / 2, f: 7, dt: new Date(Date.UTC(2024, 0, 2, 3, 4, 5)), s: 2.5, j: [1, "x", null], d: 0.25};
        }"#,
    );
    let row = run(&t, json!({})).unwrap().unwrap();
    assert_eq!(get(&row, "i"), Value::Int(3));
    assert_eq!(get(&row, "f"), Value::Float(7.0));
    assert_eq!(get(&row, "dt").to_json(), json!("2024-01-02T03:04:05Z"));
    assert_eq!(get(&row, "s"), Value::String("2.5".into()));
    assert_eq!(get(&row, "j"), Value::json(json!([1, "x", null])));
    assert_eq!(get(&row, "d"), Value::Decimal("0.25".parse().unwrap()));
}

#[test]
fn conversion_failures_name_the_column() {
    let t = compile(
        r#"const columns = ["id", "i", "small", "short", "day", "u"];
        function transform(p) { return Object.assign({id: "k"}, p.out); }"#,
    );
    let fails = |out: Json, column: &str| {
        let e = run(&t, json!({"out": out})).unwrap_err();
        assert!(e.starts_with(&format!("column `{column}`")), "{e}");
        e
    };
    fails(json!({"i": "abc"}), "i");
    fails(json!({"small": 70000}), "small");
    fails(json!({"short": "abcd"}), "short");
    fails(json!({"day": "13/05/2024"}), "day");
    fails(json!({"u": "nope"}), "u");
    let e = fails(json!({"nope": 1}), "nope");
    assert!(e.contains("`columns` list"), "{e}");
    // A BigInt that does not fit 64 bits.
    let t = compile(
        r#"const columns = ["id", "i"]; function transform(p) { return {id: "k", i: 2n ** 70n}; }"#,
    );
    let e = run(&t, json!({})).unwrap_err();
    assert!(e.starts_with("column `i`") && e.contains("64-bit"), "{e}");
    // The key column does not accept null, and a missing value is null.
    let t = compile(r#"const columns = ["id", "s"]; function transform(p) { return {s: "x"}; }"#);
    let e = run(&t, json!({})).unwrap_err();
    assert!(e.starts_with("column `id`") && e.contains("null"), "{e}");
}

#[test]
fn null_skips_and_other_returns_fail() {
    let t = compile(
        r#"function transform(p) {
             if (p.kind === "skip") return null;
             if (p.kind === "undef") return;
             if (p.kind === "num") return 3;
             return {id: p._id};
           }"#,
    );
    assert_eq!(run(&t, json!({"kind": "skip"})).unwrap(), None);
    let e = run(&t, json!({"kind": "undef"})).unwrap_err();
    assert!(e.contains("undefined"), "{e}");
    let e = run(&t, json!({"kind": "num"})).unwrap_err();
    assert!(e.contains("a number"), "{e}");
    // Without a `columns` list, every writable column of the table is written; absent ones are null.
    let row = run(&t, json!({})).unwrap().unwrap();
    let names: Vec<&str> = row.iter().map(|(c, _)| c.as_str()).collect();
    assert_eq!(
        names,
        ["id", "s", "short", "i", "small", "f", "d", "b", "dt", "day", "tm", "u", "j", "arr"]
    );
    assert_eq!(get(&row, "id"), Value::String("p1".into()));
    assert_eq!(get(&row, "s"), Value::Null);
}

#[test]
fn compile_errors_have_line_and_column() {
    let e = compile_with(
        "function transform(p) {\n  return {id: p._id,,};\n}",
        Limits::default(),
    )
    .unwrap_err();
    let m = e.get("transformation.javascript").unwrap().join("; ");
    assert!(m.contains("SyntaxError") && m.contains("line 2"), "{m}");
    assert!(m.contains("column"), "{m}");

    let e = compile_with("const x = 1;", Limits::default()).unwrap_err();
    let m = e.get("transformation.javascript").unwrap().join("; ");
    assert!(m.contains("transform(profile)"), "{m}");

    let e = compile_with(
        "const columns = ['s', 'nope', 'geo']; function transform(p) { return {}; }",
        Limits::default(),
    )
    .unwrap_err();
    let m = e.get("transformation.javascript").unwrap().join("; ");
    assert!(m.contains("`nope`") && m.contains("`geo`"), "{m}");
    assert!(e.get("key").unwrap()[0].contains("`id`"), "{e}");

    let e = compile_with("throw new Error('boom');", Limits::default()).unwrap_err();
    let m = e.get("transformation.javascript").unwrap().join("; ");
    assert!(m.contains("boom") && m.contains("line 1"), "{m}");
}

#[test]
fn an_exception_fails_one_profile_with_message_and_line() {
    let t = compile(
        "function transform(p) {\n  if (p.bad) {\n    throw new TypeError('bad profile ' + p._id);\n  }\n  return {id: p._id};\n}",
    );
    let mut ev = t.evaluator().unwrap();
    let bad = ev
        .eval(&profile(json!({"bad": true})), Utc::now())
        .unwrap_err();
    assert_eq!(bad.column, None);
    assert!(bad.message.contains("TypeError: bad profile p1"), "{bad}");
    assert!(bad.message.contains("line 3"), "{bad}");
    // The same evaluator goes on.
    assert!(matches!(
        ev.eval(&profile(json!({})), Utc::now()),
        Ok(Output::Row(_))
    ));
    let t = compile("function transform(p) { return {id: p.missing.deep}; }");
    let e = run(&t, json!({})).unwrap_err();
    assert!(e.contains("TypeError") && e.contains("line 1"), "{e}");
    let t = compile("function transform(p) { throw 'plain'; }");
    assert!(run(&t, json!({})).unwrap_err().contains("threw plain"));
}

#[test]
fn no_way_out_of_the_sandbox() {
    for (probe, what) in [
        ("require('fs')", "require"),
        ("fetch('http://example.com')", "fetch"),
        ("process.env", "process"),
        ("eval('require')('child_process')", "eval require"),
        ("Function('return require')()('os')", "Function require"),
        ("Function('return this')().std.open('/etc/passwd')", "std"),
        ("globalThis.os.exec(['ls'])", "os"),
        ("new XMLHttpRequest()", "XMLHttpRequest"),
        ("Deno.readTextFileSync('/etc/passwd')", "Deno"),
        ("Bun.file('/etc/passwd')", "Bun"),
        ("new Worker('x.js')", "Worker"),
        ("WebAssembly.compile(new Uint8Array())", "WebAssembly"),
    ] {
        let t = compile(&format!(
            "function transform(p) {{ {probe}; return {{id: 'k'}}; }}"
        ));
        let e = run(&t, json!({})).expect_err(what);
        assert!(
            e.contains("ReferenceError") || e.contains("TypeError"),
            "{what}: {e}"
        );
    }
    // A dynamic import has no loader: it never resolves into a module.
    let t = compile(
        "let got = 'none'; import('os').then(m => { got = m; }, e => { got = 'refused'; });\n\
         function transform(p) { return {id: 'k', s: typeof got === 'string' ? got : 'module'}; }",
    );
    let row = run(&t, json!({})).unwrap().unwrap();
    assert_ne!(get(&row, "s"), Value::String("module".into()));
    // A static import is not even valid script syntax.
    assert!(compile_with(
        "import * as os from 'os'; function transform(p) { return {}; }",
        Limits::default()
    )
    .is_err());
    // What the global object offers: the language, nothing that reaches the machine.
    let t = compile(
        "function transform(p) { return {id: 'k', s: Object.getOwnPropertyNames(globalThis).sort().join(',')}; }",
    );
    let row = run(&t, json!({})).unwrap().unwrap();
    let Value::String(globals) = get(&row, "s") else {
        panic!()
    };
    for name in globals.split(',') {
        assert!(
            ![
                "std",
                "os",
                "require",
                "process",
                "fetch",
                "scriptArgs",
                "print",
                "setTimeout"
            ]
            .contains(&name),
            "{name} is reachable: {globals}"
        );
    }
}

#[test]
fn an_infinite_loop_fails_only_its_profile() {
    let limits = Limits {
        time_per_profile: Duration::from_millis(50),
        ..Limits::default()
    };
    let t = compile_with(
        "function transform(p) { if (p.hang) { try { while (true) {} } catch (e) { return {id: 'caught'}; } } return {id: p._id}; }",
        limits,
    )
    .unwrap();
    let mut ev = t.evaluator().unwrap();
    let start = Instant::now();
    let e = ev
        .eval(&profile(json!({"hang": true})), Utc::now())
        .unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(2));
    assert!(e.message.contains("time limit of 50 ms"), "{e}");
    assert_eq!(
        ev.eval(&profile(json!({})), Utc::now()).unwrap(),
        Output::Row(
            std::iter::once(Value::String("p1".into()))
                .chain(std::iter::repeat_n(Value::Null, t.columns().len() - 1))
                .collect()
        )
    );
    // Top-level code that hangs is refused when saving.
    let e = compile_with("while (true) {} function transform(p) {}", limits).unwrap_err();
    assert!(e.to_string().contains("longer than"), "{}", e.to_string());
}

#[test]
fn a_memory_bomb_fails_only_its_profile() {
    let limits = Limits {
        memory_bytes: 16 << 20,
        time_per_profile: Duration::from_secs(10),
        ..Limits::default()
    };
    let t = compile_with(
        "function transform(p) { if (p.bomb) { const a = []; while (true) { a.push('x'.repeat(1 << 20) + a.length); } } return {id: p._id}; }",
        limits,
    )
    .unwrap();
    let mut ev = t.evaluator().unwrap();
    let e = ev
        .eval(&profile(json!({"bomb": true})), Utc::now())
        .unwrap_err();
    assert!(e.message.contains("memory limit of 16 MiB"), "{e}");
    assert!(matches!(
        ev.eval(&profile(json!({})), Utc::now()),
        Ok(Output::Row(_))
    ));
    // Deep recursion hits the stack limit, not the process's stack.
    let t = compile("function f(n) { return f(n + 1) + 1; } function transform(p) { f(0); }");
    let e = run(&t, json!({})).unwrap_err();
    assert!(e.to_lowercase().contains("stack"), "{e}");
}

#[test]
fn mapping_transforms_go_through_the_same_interface() {
    let mut m = sluice_core::pipeline::indexmap_like::OrderedMap::default();
    m.0.push(("id".into(), "_id".into()));
    m.0.push(("s".into(), "upper(_id)".into()));
    let t = Transform::compile(
        &Transformation::Mapping(m),
        "id",
        &Schema::default(),
        &table(),
        Limits::default(),
    )
    .unwrap();
    assert_eq!(t.columns(), ["id", "s"]);
    let row = run(&t, json!({})).unwrap().unwrap();
    assert_eq!(get(&row, "s"), Value::String("P1".into()));
    let t = Transform::compile(
        &Transformation::Python("columns = ['id', 's']\ndef transform(p):\n    return {'id': p['_id'], 's': p['_id'].upper()}\n".into()),
        "id",
        &Schema::default(),
        &table(),
        Limits::default(),
    )
    .unwrap();
    assert_eq!(t.columns(), ["id", "s"]);
    let row = run(&t, json!({})).unwrap().unwrap();
    assert_eq!(get(&row, "s"), Value::String("P1".into()));
}

mod python {
    use super::*;
    use sluice_transform::python;

    fn fields(e: sluice_core::FieldErrors) -> String {
        e.get("transformation.python").unwrap().join("; ")
    }

    #[test]
    fn python_is_checked_when_saved_without_running_it() {
        let ok = python::check(
            "import datetime\ncolumns = ['id', 's']\ndef transform(p):\n    return {'id': p['_id']}\n",
            "id",
            &table(),
        )
        .unwrap();
        assert_eq!(ok, ["id", "s"]);
        let all = python::check("def transform(p):\n    return None\n", "id", &table()).unwrap();
        assert_eq!(all.len(), 14);
        let e = fields(
            python::check(
                "def transform(p):\n    return {'id': p['_id'],,}\n",
                "id",
                &table(),
            )
            .unwrap_err(),
        );
        assert!(
            e.contains("SyntaxError") && e.contains("line 2, column"),
            "{e}"
        );
        let e = fields(python::check("x = 1\n", "id", &table()).unwrap_err());
        assert!(e.contains("transform(profile)"), "{e}");
        let e = fields(
            python::check("columns = make()\ndef transform(p): pass\n", "id", &table())
                .unwrap_err(),
        );
        assert!(e.contains("literal list") && e.contains("line 1"), "{e}");
        let e = python::check(
            "columns = ['s', 'geo']\ndef transform(p): pass\n",
            "id",
            &table(),
        )
        .unwrap_err();
        assert!(fields(e.clone()).contains("`geo`"), "{e}");
        assert!(e.get("key").is_some(), "{e}");
        // Checking never runs the script: top-level code that would write a file does nothing.
        let marker = std::env::temp_dir().join(format!("sluice-py-{}", std::process::id()));
        let src = format!(
            "open({:?}, 'w').write('ran')\ndef transform(p):\n    return None\n",
            marker.to_string_lossy()
        );
        python::check(&src, "id", &table()).unwrap();
        assert!(!marker.exists(), "the check ran user code");
    }

    #[test]
    fn a_machine_without_python_gets_a_clear_error() {
        let e = fields(
            python::check_with(
                "/nonexistent/python3",
                "def transform(p): pass\n",
                "id",
                &table(),
            )
            .unwrap_err(),
        );
        assert!(
            e.contains("was not found") && e.contains("JavaScript"),
            "{e}"
        );
    }
}
