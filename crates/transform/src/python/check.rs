//! The check of a Python transformation made when a pipeline is saved (and again before a run).
//!
//! It uses the machine's `python3` to parse and compile the source **without running any of it**: syntax
//! (line and column), a top-level `def transform(profile)`, and the optional `columns` list, which must be a
//! literal list of names so that it can be read without executing the script. A machine without `python3`
//! gets a clear error at `transformation.python` instead of a crash.

use std::io::{Read, Write};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value as Json;
use sluice_core::{FieldErrors, TableDescription};

use super::sandbox::{Sandbox, Unavailable};
use crate::columns::Target;

/// Where `transformation.python` errors are reported.
pub(crate) const FIELD: &str = "transformation.python";
/// The interpreter looked up on `PATH` by default.
pub const DEFAULT_INTERPRETER: &str = "python3";
/// How long the check may take (an interpreter start and a parse).
const CHECK_TIMEOUT: Duration = Duration::from_secs(10);
/// The checker's address space: the interpreter and the parse of a large script.
const CHECK_MEMORY: u64 = 512 << 20;

/// Parses and compiles the source (without running it); reads stdin, answers one JSON object.
const CHECKER: &str = r#"
import ast, json, sys
def answer(o):
    sys.stdout.write(json.dumps(o))
    sys.stdout.flush()
    sys.exit(0)
source = sys.stdin.read()
try:
    compile(source, "transform.py", "exec", dont_inherit=True)
    tree = ast.parse(source, "transform.py")
except SyntaxError as e:
    answer({"error": "%s: %s" % (type(e).__name__, e.msg), "line": e.lineno, "column": e.offset})
except ValueError as e:
    answer({"error": str(e)})
defs = [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == "transform"]
if not defs:
    answer({"error": "the script must define a function `transform(profile)` that returns a dict of column values, or None to skip the profile"})
if isinstance(defs[-1], ast.AsyncFunctionDef):
    answer({"error": "transform() cannot be async", "line": defs[-1].lineno})
columns = None
for n in tree.body:
    targets = n.targets if isinstance(n, ast.Assign) else [n.target] if isinstance(n, ast.AnnAssign) else []
    if any(isinstance(t, ast.Name) and t.id == "columns" for t in targets):
        try:
            value = ast.literal_eval(n.value)
        except Exception:
            value = None
        if not isinstance(value, (list, tuple)) or not all(isinstance(c, str) for c in value):
            answer({"error": "`columns` must be a literal list of column names, e.g. columns = [\"email\", \"name\"]", "line": n.lineno})
        columns = list(value)
answer({"ok": True, "columns": columns})
"#;

/// Checks a Python transformation with `python3` from `PATH`; returns the columns it writes.
pub fn check(
    source: &str,
    key: &str,
    table: &TableDescription,
) -> Result<Vec<String>, FieldErrors> {
    check_with(DEFAULT_INTERPRETER, source, key, table)
}

/// [`check`] with a given interpreter (a name looked up on `PATH`, or a path).
pub fn check_with(
    interpreter: &str,
    source: &str,
    key: &str,
    table: &TableDescription,
) -> Result<Vec<String>, FieldErrors> {
    checked(interpreter, source, key, table).map(|c| c.columns)
}

/// [`check_with`], with the column types.
pub(crate) fn checked(
    interpreter: &str,
    source: &str,
    key: &str,
    table: &TableDescription,
) -> Result<Resolved, FieldErrors> {
    let fail = |message: String| {
        let mut e = FieldErrors::new();
        e.add(FIELD, message);
        e
    };
    let answer = run_checker(interpreter, source).map_err(fail)?;
    if let Some(error) = answer.get("error").and_then(Json::as_str) {
        let line = answer.get("line").and_then(Json::as_u64);
        let column = answer.get("column").and_then(Json::as_u64);
        let message = match (line, column) {
            (Some(l), Some(c)) => format!("{error} (line {l}, column {c})"),
            (Some(l), None) => format!("{error} (line {l})"),
            _ => error.to_string(),
        };
        return Err(fail(message));
    }
    let declared: Option<Vec<String>> = answer.get("columns").and_then(Json::as_array).map(|a| {
        a.iter()
            .filter_map(Json::as_str)
            .map(String::from)
            .collect()
    });
    resolve(declared.as_deref(), key, table)
}

/// What a checked script writes.
pub(crate) struct Resolved {
    pub columns: Vec<String>,
    pub targets: Vec<Target>,
    /// Whether the columns come from the script's own `columns` list.
    pub declared: bool,
}

fn resolve(
    declared: Option<&[String]>,
    key: &str,
    table: &TableDescription,
) -> Result<Resolved, FieldErrors> {
    let (columns, targets) = crate::columns::resolve(declared, key, table, FIELD)?;
    Ok(Resolved {
        columns,
        targets,
        declared: declared.is_some(),
    })
}

/// Runs the checker in isolated mode with an empty environment; the answer or a message.
fn run_checker(interpreter: &str, source: &str) -> Result<Json, String> {
    // Confined like the workers: the source is the user's, and the parser is a large piece of C.
    let sandbox = Sandbox::get(interpreter).map_err(|e| match e {
        Unavailable::NotFound(_) => format!(
            "{}; install Python 3 or use JavaScript",
            e.message(interpreter)
        ),
        Unavailable::Other(_) => e.message(interpreter),
    })?;
    let mut child = sandbox
        .command(&["-I", "-S", "-c", CHECKER], CHECK_MEMORY)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("could not start `{interpreter}` to check the script: {e}"))?;
    let mut stdin = child.stdin.take().expect("piped");
    let input = source.to_string();
    // Written from a thread: a large script must not block on a full pipe while nothing reads stdout.
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(input.as_bytes());
    });
    let mut stdout = child.stdout.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        let _ = stdout.read_to_string(&mut out);
        out
    });
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() > CHECK_TIMEOUT => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "`{interpreter}` did not check the script within {} seconds",
                    CHECK_TIMEOUT.as_secs()
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => return Err(format!("checking the script failed: {e}")),
        }
    };
    let _ = writer.join();
    let out = reader.join().unwrap_or_default();
    serde_json::from_str(&out).map_err(|_| {
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        format!(
            "`{interpreter}` could not check the script ({status}): {}",
            err.lines().last().unwrap_or("no output")
        )
    })
}
