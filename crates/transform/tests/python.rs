//! Python transformations at run time: the type contract (the same as JavaScript's), errors with lines,
//! escape attempts, time and memory limits, and workers that hang or crash in the middle of a batch.
//! These tests need `python3` on the machine.

use std::time::{Duration, Instant};

use chrono::Utc;
use serde_json::{json, Value as Json};
use sluice_core::pipeline::Transformation;
use sluice_core::{Profile, Schema, Value};
use sluice_transform::{Limits, Output, Transform};

mod common;
use common::*;

fn compile_with(source: &str, limits: Limits) -> Result<Transform, sluice_core::FieldErrors> {
    Transform::compile(
        &Transformation::Python(source.into()),
        "id",
        &Schema::default(),
        &table(),
        limits,
    )
}

/// Under a generous time limit: these tests run on busy machines, and the limit is wall-clock time.
fn compile(source: &str) -> Transform {
    compile_with(source, limits(2000)).unwrap_or_else(|e| panic!("{e}"))
}

fn js(source: &str) -> Transform {
    Transform::compile(
        &Transformation::Javascript(source.into()),
        "id",
        &Schema::default(),
        &table(),
        Limits::default(),
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

fn with_id(id: &str, doc: Json) -> Profile {
    Profile {
        id: id.into(),
        ..profile(doc)
    }
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
from datetime import datetime
from decimal import Decimal
columns = ["id", "s", "i", "f", "d", "b", "dt", "day", "tm", "u", "j", "arr", "small"]
def transform(p):
    if type(p["big"]) is not int or type(p["age"]) is not int or type(p["score"]) is not float:
        raise TypeError("number types")
    if type(p["amount"]) is not str or Decimal(p["amount"]) != Decimal("12345678901234567890.0123456789"):
        raise TypeError("decimal type")
    if datetime.fromisoformat(p["seen"]).microsecond != 123456:
        raise TypeError("datetime")
    return {
        "id": p["_id"], "s": p["name"] + "|" + p["_updated_at"] + "|" + p["address"]["city"],
        "i": p["big"], "small": p["age"], "f": p["score"], "d": p["amount"], "b": p["vip"],
        "dt": p["seen"], "day": p["born"], "tm": p["at"], "u": p["uid"],
        "j": {"extra": p["extra"], "neg": p["neg"]}, "arr": p["tags"],
    }
"#,
    );
    let row = run(&t, doc.clone()).unwrap().unwrap();
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

    // The same script in JavaScript gives the same row.
    let same_in_js = js(r#"
        const columns = ["id", "s", "i", "f", "d", "b", "dt", "day", "tm", "u", "j", "arr", "small"];
        function transform(p) {
          return {
            id: p._id, s: p.name + "|" + p._updated_at + "|" + p.address.city,
            i: p.big, small: p.age, f: p.score, d: p.amount, b: p.vip, dt: p.seen, day: p.born, tm: p.at,
            u: p.uid, j: {extra: p.extra, neg: p.neg}, arr: p.tags,
          };
        }"#);
    assert_eq!(run(&same_in_js, doc).unwrap().unwrap(), row);
}

#[test]
fn python_values_convert_like_mapping_values() {
    let t = compile(
        r#"
import datetime as dt
from decimal import Decimal
from uuid import UUID
columns = ["id", "i", "f", "dt", "s", "j", "d", "day", "tm", "u", "arr", "small"]
def transform(p):
    rome = dt.timezone(dt.timedelta(hours=2))
    return {
        "id": "k", "i": 6 // 2, "f": 7, "s": 2.5, "j": [1, "x", None, dt.date(2024, 1, 2), Decimal("0.10")],
        "dt": dt.datetime(2024, 1, 2, 5, 4, 5, tzinfo=rome), "d": Decimal("12.50"), "day": dt.date(2024, 2, 29),
        "tm": dt.time(7, 8, 9), "u": UUID("67e55044-10b1-426f-9247-bb680e5fe0c8"),
        "arr": ("b", "a"), "small": 3.0,
    }
"#,
    );
    let row = run(&t, json!({})).unwrap().unwrap();
    assert_eq!(get(&row, "i"), Value::Int(3));
    assert_eq!(get(&row, "f"), Value::Float(7.0));
    assert_eq!(get(&row, "dt").to_json(), json!("2024-01-02T03:04:05Z"));
    assert_eq!(get(&row, "s"), Value::String("2.5".into()));
    assert_eq!(
        get(&row, "j"),
        Value::json(json!([1, "x", null, "2024-01-02", "0.10"]))
    );
    assert_eq!(get(&row, "d"), Value::Decimal("12.50".parse().unwrap()));
    assert_eq!(get(&row, "day").to_json(), json!("2024-02-29"));
    assert_eq!(get(&row, "tm").to_json(), json!("07:08:09"));
    assert_eq!(
        get(&row, "u").to_json(),
        json!("67e55044-10b1-426f-9247-bb680e5fe0c8")
    );
    assert_eq!(get(&row, "arr").to_json(), json!(["b", "a"]));
    assert_eq!(get(&row, "small"), Value::Int(3));
    // A naive datetime is UTC.
    let t = compile(
        "import datetime\ncolumns = ['id', 'dt']\ndef transform(p):\n    return {'id': 'k', 'dt': datetime.datetime(2024, 1, 2, 3, 4, 5, 600)}\n",
    );
    let row = run(&t, json!({})).unwrap().unwrap();
    assert_eq!(
        get(&row, "dt").to_json(),
        json!("2024-01-02T03:04:05.000600Z")
    );
}

#[test]
fn conversion_failures_name_the_column() {
    let t = compile(
        "columns = ['id', 'i', 'small', 'short', 'day', 'u', 'f']\ndef transform(p):\n    return dict({'id': 'k'}, **p['out'])\n",
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
    for (value, column, says) in [
        ("2 ** 70", "i", "64-bit"),
        ("float('nan')", "f", "finite"),
        ("object()", "s", "type object"),
        ("{'deep': [2 ** 64]}", "s", "64-bit"),
        ("b'bytes'", "s", "type bytes"),
    ] {
        let t = compile(&format!(
            "columns = ['id', 'i', 'f', 's']\ndef transform(p):\n    return {{'id': 'k', '{column}': {value}}}\n"
        ));
        let e = run(&t, json!({})).unwrap_err();
        assert!(
            e.starts_with(&format!("column `{column}`")) && e.contains(says),
            "{value}: {e}"
        );
    }
    // The key column does not accept null, and a missing value is null.
    let t = compile("columns = ['id', 's']\ndef transform(p):\n    return {'s': 'x'}\n");
    let e = run(&t, json!({})).unwrap_err();
    assert!(e.starts_with("column `id`") && e.contains("null"), "{e}");
}

#[test]
fn none_skips_and_other_returns_fail() {
    let t = compile(
        "def transform(p):\n    k = p.get('kind')\n    if k == 'skip':\n        return None\n    if k == 'num':\n        return 3\n    if k == 'keys':\n        return {1: 'x'}\n    return {'id': p['_id']}\n",
    );
    assert_eq!(run(&t, json!({"kind": "skip"})).unwrap(), None);
    let ordered = compile(
        "import collections\ncolumns = ['id', 's']\ndef transform(p):\n    d = collections.defaultdict(str)\n    d['id'] = p['_id']\n    return d\n",
    );
    assert_eq!(
        run(&ordered, json!({})).unwrap().unwrap(),
        vec![
            ("id".to_string(), Value::String("p1".into())),
            ("s".to_string(), Value::Null)
        ]
    );
    let e = run(&t, json!({"kind": "num"})).unwrap_err();
    assert!(e.contains("type int"), "{e}");
    let e = run(&t, json!({"kind": "keys"})).unwrap_err();
    assert!(e.contains("column names"), "{e}");
    let row = run(&t, json!({})).unwrap().unwrap();
    assert_eq!(row.len(), 14);
    assert_eq!(get(&row, "id"), Value::String("p1".into()));
    assert_eq!(get(&row, "s"), Value::Null);
}

#[test]
fn an_exception_fails_one_profile_with_message_and_line() {
    let t = compile(
        "def transform(p):\n    if p.get('bad'):\n        raise ValueError('bad profile ' + p['_id'])\n    print('print() does not disturb the protocol')\n    return {'id': p['_id']}\n",
    );
    let mut ev = t.evaluator().unwrap();
    let out = ev.eval_batch(
        &[
            with_id("a", json!({})),
            with_id("b", json!({"bad": true})),
            with_id("c", json!({})),
        ],
        Utc::now(),
    );
    assert!(matches!(out[0], Ok(Output::Row(_))));
    let bad = out[1].as_ref().unwrap_err();
    assert_eq!(bad.column, None);
    assert_eq!(bad.message, "ValueError: bad profile b (line 3)");
    assert!(matches!(out[2], Ok(Output::Row(_))));
    let t = compile("def transform(p):\n    return {'id': p['missing']['deep']}\n");
    let e = run(&t, json!({})).unwrap_err();
    assert!(
        e.contains("KeyError: 'missing'") && e.contains("line 2"),
        "{e}"
    );
    // Top-level code that fails is reported when the run (or preview) starts.
    let t = compile("raise RuntimeError('at load')\ndef transform(p):\n    return None\n");
    let e = t.evaluator().err().unwrap();
    assert!(e.contains("RuntimeError: at load (line 1)"), "{e}");
}

#[test]
fn no_way_out_of_the_sandbox() {
    // From os's own globals, reached by walking subclasses (os is loaded by the modules scripts may use).
    let os = "[c for c in ().__class__.__base__.__subclasses__() if c.__name__ == '_wrap_close'][0].__init__.__globals__";
    for (probe, says) in [
        ("import os", "ImportError: module `os` is not available"),
        (
            "import socket",
            "ImportError: module `socket` is not available",
        ),
        ("import subprocess", "ImportError"),
        ("import ctypes", "ImportError"),
        ("__import__('os')", "ImportError"),
        ("open('/etc/passwd')", "NameError"),
        ("eval('1 + 1')", "NameError"),
        ("exec('x = 1')", "NameError"),
        ("compile('1', 'x', 'eval')", "NameError"),
        ("require('fs')", "NameError"),
        ("fetch('http://example.com')", "NameError"),
        ("__builtins__['open']", "KeyError"),
        ("__builtins__['__import__']('os')", "ImportError"),
        (
            &format!("{os}['system']('true')"),
            "`os.system` is not allowed",
        ),
        (
            &format!("{os}['open']('/etc/passwd', 0)"),
            "`open` is not allowed",
        ),
        (
            &format!("{os}['listdir']('/')"),
            "`os.listdir` is not allowed",
        ),
        (&format!("{os}['fork']()"), "`os.fork` is not allowed"),
        (
            &format!("{os}['execv']('/bin/sh', ['sh'])"),
            "`os.exec` is not allowed",
        ),
        (&format!("{os}['kill'](1, 0)"), "`os.kill` is not allowed"),
        (
            &format!("{os}['sys']._getframe()"),
            "`sys._getframe` is not allowed",
        ),
        (
            &format!("{os}['sys'].modules['_frozen_importlib']._gcd_import('ctypes')"),
            "not allowed",
        ),
        (
            &format!("{os}['sys'].modules['_frozen_importlib']._gcd_import('socket')"),
            "not allowed",
        ),
        (
            &format!("{os}['sys'].modules['io'].open('/etc/passwd')"),
            "`open` is not allowed",
        ),
        (
            &format!("{os}['sys'].addaudithook(lambda *a: None) or {os}['system']('true')"),
            "not allowed",
        ),
        (
            "(lambda: 0).__code__",
            "`object.__getattr__` is not allowed",
        ),
        (
            "(x for x in [1]).gi_frame",
            "`object.__getattr__` is not allowed",
        ),
        (
            "[().__class__.__base__.__subclasses__(), (1).__class__.__subclasses__()][2]",
            "IndexError",
        ),
    ] {
        let t = compile(&format!(
            "def transform(p):\n    {probe}\n    return {{'id': 'escaped'}}\n"
        ));
        let e = run(&t, json!({})).expect_err(probe);
        assert!(e.contains(says), "{probe}: {e}");
    }
    // The environment holds nothing of Sluice's; the working directory is /.
    let t = compile(&format!(
        "def transform(p):\n    env = {os}['environ']\n    return {{'id': 'k', 's': ','.join(sorted(env)) + '|' + {os}['getcwd']()}}\n"
    ));
    let row = run(&t, json!({})).unwrap().unwrap();
    assert_eq!(get(&row, "s"), Value::String("LC_ALL|/".into()));
    // Top-level code is under the same rules.
    let t = compile("import os\ndef transform(p):\n    return None\n");
    let e = t.evaluator().err().unwrap();
    assert!(e.contains("ImportError") && e.contains("line 1"), "{e}");
    // What scripts may import works.
    let t = compile(
        "import re, math, json, hashlib, datetime, random, statistics\ndef transform(p):\n    d = datetime.datetime.strptime('13/05/2024', '%d/%m/%Y')\n    return {'id': hashlib.sha256(b'x').hexdigest()[:4] + d.strftime('%b') + str(math.floor(statistics.mean([1, 2])))}\n",
    );
    let row = run(&t, json!({})).unwrap().unwrap();
    assert_eq!(get(&row, "id"), Value::String("2d71May1".into()));
}

fn limits(ms: u64) -> Limits {
    Limits {
        time_per_profile: Duration::from_millis(ms),
        python_workers: 2,
        ..Limits::default()
    }
}

#[test]
fn an_infinite_loop_fails_only_its_profile() {
    let t = compile_with(
        "import time\ndef transform(p):\n    if p.get('hang'):\n        while True:\n            try:\n                pass\n            except BaseException:\n                pass\n    if p.get('slow'):\n        time.sleep(1.0)\n    return {'id': p['_id']}\n",
        limits(300),
    )
    .unwrap();
    let mut ev = t.evaluator().unwrap();
    let start = Instant::now();
    let out = ev.eval_batch(
        &[
            with_id("a", json!({})),
            with_id("b", json!({"hang": true})),
            with_id("c", json!({"slow": true})),
            with_id("d", json!({})),
        ],
        Utc::now(),
    );
    assert!(start.elapsed() < Duration::from_secs(15));
    assert!(matches!(out[0], Ok(Output::Row(_))));
    let e = out[1].as_ref().unwrap_err();
    assert!(e.message.contains("time limit of 300 ms"), "{e}");
    let e = out[2].as_ref().unwrap_err();
    assert!(e.message.contains("time limit of 300 ms"), "{e}");
    assert!(matches!(out[3], Ok(Output::Row(_))));
    // Top-level code that hangs is refused when the run starts.
    let t = compile_with(
        "while True:\n    pass\ndef transform(p):\n    return None\n",
        limits(50),
    )
    .unwrap();
    let e = t.evaluator().err().unwrap();
    assert!(e.contains("longer than 500 ms"), "{e}");
}

#[test]
fn a_memory_bomb_fails_only_its_profile() {
    let limits = Limits {
        memory_bytes: 32 << 20,
        time_per_profile: Duration::from_secs(10),
        ..Limits::default()
    };
    let t = compile_with(
        "def transform(p):\n    if p.get('bomb'):\n        a = []\n        while True:\n            a.append('x' * (1 << 20) + str(len(a)))\n    return {'id': p['_id']}\n",
        limits,
    )
    .unwrap();
    let mut ev = t.evaluator().unwrap();
    let out = ev.eval_batch(
        &[with_id("a", json!({"bomb": true})), with_id("b", json!({}))],
        Utc::now(),
    );
    let e = out[0].as_ref().unwrap_err();
    assert!(e.message.contains("memory limit of 32 MiB"), "{e}");
    assert!(matches!(out[1], Ok(Output::Row(_))));
    // Deep recursion is a RecursionError, not a crash.
    let t = compile("def f(n):\n    return f(n + 1) + 1\ndef transform(p):\n    f(0)\n");
    let e = run(&t, json!({})).unwrap_err();
    assert!(e.contains("RecursionError"), "{e}");
}

#[test]
fn a_worker_crash_or_hang_mid_batch_fails_only_that_profile() {
    // Profiles are split between two workers; one crash in the first share, a hang in the second.
    let t = compile_with(
        "import random\ndef transform(p):\n    n = p['n']\n    if n == 250:\n        random._os._exit(3)\n    if n == 700:\n        while True:\n            pass\n    return {'id': p['_id'], 'i': n * 2}\n",
        limits(1000),
    )
    .unwrap();
    let profiles: Vec<Profile> = (0..1000)
        .map(|n| with_id(&format!("p{n:04}"), json!({ "n": n })))
        .collect();
    let mut ev = t.evaluator().unwrap();
    let start = Instant::now();
    let out = ev.eval_batch(&profiles, Utc::now());
    assert!(start.elapsed() < Duration::from_secs(60));
    assert_eq!(out.len(), 1000);
    for (n, o) in out.iter().enumerate() {
        match n {
            250 => {
                let e = o.as_ref().unwrap_err();
                assert!(
                    e.message.contains("the Python worker stopped")
                        && e.message.contains("exit code 3"),
                    "{e}"
                );
            }
            700 => {
                let e = o.as_ref().unwrap_err();
                assert!(e.message.contains("time limit of 1000 ms"), "{e}");
            }
            _ => match o {
                Ok(Output::Row(values)) => {
                    assert_eq!(values[0], Value::String(format!("p{n:04}").into()));
                    assert_eq!(values[3], Value::Int(2 * n as i64));
                }
                other => panic!("profile {n}: {other:?}"),
            },
        }
    }
    // The evaluator goes on with fresh workers.
    let out = ev.eval_batch(&profiles[..3], Utc::now());
    assert!(out.iter().all(|o| matches!(o, Ok(Output::Row(_)))));
    // A crash that kills the interpreter with a signal (a stack overflow in C).
    let t = compile_with(
        "import random\ndef transform(p):\n    if p.get('boom'):\n        random._os.sys.setrecursionlimit(10 ** 7)\n        a = []\n        for _ in range(10 ** 6):\n            a = [a]\n        repr(a)\n    return {'id': p['_id']}\n",
        limits(5000),
    )
    .unwrap();
    let mut ev = t.evaluator().unwrap();
    let out = ev.eval_batch(
        &[
            with_id("a", json!({})),
            with_id("b", json!({"boom": true})),
            with_id("c", json!({})),
        ],
        Utc::now(),
    );
    assert!(matches!(out[0], Ok(Output::Row(_))));
    let e = out[1].as_ref().unwrap_err();
    assert!(
        e.message.contains("the Python worker stopped") && e.message.contains("SIGSEGV"),
        "{e}"
    );
    assert!(matches!(out[2], Ok(Output::Row(_))));
}

#[test]
fn without_python_running_fails_clearly() {
    let e = sluice_transform::python::Script::compile_with(
        "/nonexistent/python3",
        "def transform(p):\n    return None\n",
        "id",
        &table(),
        Limits::default(),
    )
    .unwrap_err();
    let m = e.get("transformation.python").unwrap().join("; ");
    assert!(m.contains("was not found"), "{m}");
}

#[test]
fn ordinary_python_is_not_refused() {
    let t = compile(
        r#"
import uuid, random, time, re, statistics, calendar, unicodedata, textwrap, json, itertools, functools, collections
from datetime import datetime, timezone, timedelta
from decimal import Decimal, ROUND_HALF_UP

class Tier:
    def __init__(self, amount):
        self.amount = amount
    def __repr__(self):
        return "gold" if self.amount > 100 else "basic"

@functools.lru_cache(maxsize=None)
def slug(s):
    return re.sub(r"[^a-z0-9]+", "-", unicodedata.normalize("NFKD", s).encode("ascii", "ignore").decode().lower()).strip("-")

def transform(p):
    random.seed(1)
    parts = [
        str(uuid.uuid4())[8], str(random.randint(1, 9)), str(int(time.time()) > 0),
        slug("Zoë Ünal"), str(statistics.median([1, 3, 2])), str(calendar.monthrange(2024, 2)[1]),
        textwrap.shorten("a b c d e f", width=7), json.dumps({"k": 1}, sort_keys=True),
        "{:,}".format(1234567), "%05.1f" % 3.14159, "é".encode("latin-1").decode("latin-1"),
        str(Decimal("2.345").quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)),
        datetime.now(timezone.utc).strftime("%Y") [:2],
        (datetime(2024, 1, 1, tzinfo=timezone(timedelta(hours=2)))).astimezone(timezone.utc).isoformat(),
        datetime.strptime("13 May 2024", "%d %B %Y").date().isoformat(),
        time.strftime("%Y", time.gmtime(0)), repr(Tier(150)),
        ",".join(k for k, _ in itertools.groupby("aabbc")), str(collections.Counter("abca")["a"]),
    ]
    try:
        {}["missing"]
    except KeyError as e:
        parts.append(type(e).__name__)
    return {"id": p["_id"], "s": "|".join(parts[1:])}
"#,
    );
    let row = run(&t, json!({})).unwrap().unwrap();
    assert_eq!(
        get(&row, "s"),
        Value::String(
            "3|True|zoe-unal|2|29|a [...]|{\"k\": 1}|1,234,567|003.1|é|2.35|20|2023-12-31T22:00:00+00:00|2024-05-13|1970|gold|a,b,c|2|KeyError"
                .into()
        )
    );
}

#[test]
fn a_script_that_always_crashes_does_not_take_a_worker_per_profile() {
    let t = compile_with(
        "import random\ndef transform(p):\n    if p['n'] > 0:\n        random._os._exit(1)\n    return {'id': p['_id']}\n",
        limits(1000),
    )
    .unwrap();
    let profiles: Vec<Profile> = (0..2000)
        .map(|n| with_id(&format!("p{n:04}"), json!({ "n": n })))
        .collect();
    let mut ev = t.evaluator().unwrap();
    let start = Instant::now();
    let out = ev.eval_batch(&profiles, Utc::now());
    assert!(
        start.elapsed() < Duration::from_secs(30),
        "{:?}",
        start.elapsed()
    );
    assert!(matches!(out[0], Ok(Output::Row(_))));
    let stopped = out
        .iter()
        .filter(|o| matches!(o, Err(e) if e.message.starts_with("the Python worker stopped")))
        .count();
    let not_tried = out
        .iter()
        .filter(|o| matches!(o, Err(e) if e.message.starts_with("not transformed: the Python worker failed on 10 profiles in a row") && e.message.contains("exit code 1")))
        .count();
    assert_eq!(stopped + not_tried, 1999);
    assert!(stopped <= 20, "{stopped}");
}

#[test]
fn the_error_reporter_cannot_be_used_to_lift_the_audit_hook() {
    // An exception whose __traceback__ runs user code while the worker reads tracebacks.
    let os = "[c for c in ().__class__.__base__.__subclasses__() if c.__name__ == '_wrap_close'][0].__init__.__globals__";
    let t = compile(&format!(
        "class Sly(Exception):\n    @property\n    def __traceback__(self):\n        {os}['system']('true')\n        return None\ndef transform(p):\n    if p.get('raise'):\n        raise Sly('x')\n    {os}['system']('true')\n    return {{'id': 'escaped'}}\n"
    ));
    let mut ev = t.evaluator().unwrap();
    let out = ev.eval_batch(
        &[
            with_id("a", json!({"raise": true})),
            with_id("b", json!({})),
        ],
        Utc::now(),
    );
    let e = out[0].as_ref().unwrap_err();
    assert_eq!(e.message, "Sly: x");
    let e = out[1].as_ref().unwrap_err();
    assert!(e.message.contains("`os.system` is not allowed"), "{e}");
}
