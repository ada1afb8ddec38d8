//! The hostile-script corpus (`tests/hostile/`): one escape attempt per file, Python and JavaScript, each
//! with the outcome it must have in its first lines:
//!
//! - `expect: failed row` — every profile's row fails; `expect: refused` — the script is refused when
//!   saved or when its run starts;
//! - `says: a | b` — the error names one of these;
//! - `only: root` — checked only when the tests run as root (where workers switch user).
//!
//! `{{DATA_DIR}}` in a script is replaced by a data directory made as Sluice makes its own (0700, owned by
//! the user running the tests) holding `secret.key`; `{{MARKER}}` by a path in a world-writable folder
//! that only the isolation can keep a script from creating. Whatever the outcome, the secret must appear
//! in no row and no message, the marker must not exist, the data directory must be unchanged, and each
//! script must finish within a bound set by its limits: a script stuck in a getter or a proxy would hang
//! this test, which is how it would hang a run.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::Utc;
use serde_json::json;
use sluice_core::pipeline::Transformation;
use sluice_core::{Profile, Schema};
use sluice_transform::{Limits, Transform};

mod common;
use common::*;

/// What one script did.
#[derive(Debug)]
enum Outcome {
    Refused(String),
    Rows(Vec<Result<String, String>>),
}

struct Case {
    path: PathBuf,
    source: String,
    expect: String,
    says: Vec<String>,
    only_root: bool,
}

fn header(source: &str, key: &str) -> Option<String> {
    source.lines().take(8).find_map(|l| {
        let l = l
            .trim_start_matches('#')
            .trim_start_matches("//")
            .trim_start();
        l.strip_prefix(key)
            .and_then(|rest| rest.strip_prefix(':'))
            .map(|v| v.trim().to_string())
    })
}

fn cases(folder: &str) -> Vec<Case> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/hostile")
        .join(folder);
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let source = std::fs::read_to_string(&path).unwrap();
            let expect = header(&source, "expect")
                .unwrap_or_else(|| panic!("{}: no `expect:` line", path.display()));
            assert!(
                expect == "failed row" || expect == "refused",
                "{}: expect {expect}",
                path.display()
            );
            let says = header(&source, "says")
                .map(|s| s.split(" | ").map(str::to_string).collect())
                .unwrap_or_default();
            let only_root = header(&source, "only").as_deref() == Some("root");
            Case {
                path,
                source,
                expect,
                says,
                only_root,
            }
        })
        .collect()
}

/// A data directory as Sluice keeps it, a secret in it, and a world-writable folder for markers.
struct Place {
    base: PathBuf,
    data: PathBuf,
    open: PathBuf,
    secret: String,
}

impl Place {
    fn new(name: &str) -> Place {
        let base =
            std::env::temp_dir().join(format!("sluice-hostile-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(&base).unwrap();
        std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o755)).unwrap();
        let data = base.join("data");
        std::fs::create_dir(&data).unwrap();
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700)).unwrap();
        let secret = format!(
            "SLUICE-SECRET-{}-{}",
            std::process::id(),
            Utc::now().timestamp_nanos_opt().unwrap_or_default()
        );
        std::fs::write(data.join("secret.key"), &secret).unwrap();
        std::fs::set_permissions(
            data.join("secret.key"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        let open = base.join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        Place {
            base,
            data,
            open,
            secret,
        }
    }

    fn marker(&self, case: &Case) -> PathBuf {
        self.open
            .join(case.path.file_stem().unwrap().to_string_lossy().to_string())
    }

    fn source(&self, case: &Case) -> String {
        case.source
            .replace("{{DATA_DIR}}", &self.data.display().to_string())
            .replace("{{MARKER}}", &self.marker(case).display().to_string())
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.base);
    }
}

fn run_case(transformation: Transformation, limits: Limits) -> Outcome {
    let t = match Transform::compile(&transformation, "id", &Schema::default(), &table(), limits) {
        Ok(t) => t,
        Err(e) => return Outcome::Refused(e.to_string()),
    };
    let mut ev = match t.evaluator() {
        Ok(ev) => ev,
        Err(e) => return Outcome::Refused(e),
    };
    let profiles: Vec<Profile> = (0..3)
        .map(|n| Profile {
            id: format!("p{n}"),
            ..profile(json!({"n": n}))
        })
        .collect();
    Outcome::Rows(
        ev.eval_batch(&profiles, Utc::now())
            .into_iter()
            .map(|r| r.map(|o| format!("{o:?}")).map_err(|e| e.to_string()))
            .collect(),
    )
}

/// Runs every case of a folder; returns the problems found, one line each.
fn check_folder(
    folder: &str,
    limits: Limits,
    bound: Duration,
    make: fn(String) -> Transformation,
) -> Vec<String> {
    let place = Place::new(folder);
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let mut problems = Vec::new();
    let cases = cases(folder);
    assert!(cases.len() >= 20, "{folder}: only {} cases", cases.len());
    for case in &cases {
        if case.only_root && !root {
            continue;
        }
        let name = case.path.file_name().unwrap().to_string_lossy().to_string();
        let started = Instant::now();
        let outcome = run_case(make(place.source(case)), limits);
        let took = started.elapsed();
        let text = format!("{outcome:?}");
        if text.contains(&place.secret) {
            problems.push(format!("{name}: THE SECRET LEAKED: {text}"));
        }
        if took > bound {
            problems.push(format!("{name}: took {took:?} (bound {bound:?})"));
        }
        if place.marker(case).exists() {
            problems.push(format!("{name}: created {}", place.marker(case).display()));
        }
        let messages: Vec<String> = match (&outcome, case.expect.as_str()) {
            (Outcome::Refused(m), "refused") => vec![m.clone()],
            (Outcome::Rows(rows), "failed row") => {
                let mut messages = Vec::new();
                for row in rows {
                    match row {
                        Err(m) => messages.push(m.clone()),
                        Ok(r) => problems.push(format!("{name}: a row came back: {r}")),
                    }
                }
                messages
            }
            _ => {
                problems.push(format!("{name}: expected {}, got {text}", case.expect));
                continue;
            }
        };
        if !case.says.is_empty()
            && !messages
                .iter()
                .all(|m| case.says.iter().any(|s| m.contains(s.as_str())))
        {
            problems.push(format!(
                "{name}: expected a message with one of {:?}, got {messages:?}",
                case.says
            ));
        }
        eprintln!(
            "{name}: {took:?}: {}",
            text.chars().take(300).collect::<String>()
        );
    }
    let listing: Vec<_> = std::fs::read_dir(&place.data)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    if listing != ["secret.key"] {
        problems.push(format!("{folder}: the data directory changed: {listing:?}"));
    }
    if std::fs::read_to_string(place.data.join("secret.key")).unwrap() != place.secret {
        problems.push(format!("{folder}: the secret was changed"));
    }
    problems
}

#[test]
fn hostile_python_scripts_end_as_errors_and_leak_nothing() {
    let limits = Limits {
        time_per_profile: Duration::from_millis(2000),
        python_workers: 1,
        output_bytes: 1 << 20,
        ..Limits::default()
    };
    // A profile may take its limit, twice that before its worker is stopped, and a worker start; three
    // profiles and the script's load, on a busy machine.
    let problems = check_folder(
        "python",
        limits,
        Duration::from_secs(60),
        Transformation::Python,
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn hostile_javascript_scripts_end_as_errors_within_their_limits() {
    let limits = Limits {
        // Generous for a debug build on a busy machine: a script that should fail for another reason
        // must not meet the time limit first.
        time_per_profile: Duration::from_millis(500),
        output_bytes: 1 << 20,
        ..Limits::default()
    };
    // Three profiles of 500 ms and a fresh runtime after each (top-level code: 5 s); a stuck one would
    // never end.
    let problems = check_folder(
        "javascript",
        limits,
        Duration::from_secs(12),
        Transformation::Javascript,
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// What the engine does: a blocking thread evaluates; the caller gives up on it only by the limit.
/// The thread stuck in a getter must end by itself, soon, so that a run's cancel and the server's
/// shutdown (which waits for blocking threads) are not held by user code.
#[test]
fn a_thread_stuck_in_a_getter_ends_by_itself_within_the_limit() {
    let limits = Limits {
        time_per_profile: Duration::from_millis(100),
        ..Limits::default()
    };
    let source = "function transform(p) { const o = {id: 'x'}; Object.defineProperty(o, 'email', {enumerable: true, get() { while (true) {} }}); return o; }";
    let t = Transform::compile(
        &Transformation::Javascript(source.into()),
        "id",
        &Schema::default(),
        &table(),
        limits,
    )
    .unwrap();
    let started = Instant::now();
    let handle = std::thread::spawn(move || {
        let mut ev = t.evaluator().unwrap();
        ev.eval(&profile(json!({})), Utc::now())
    });
    while !handle.is_finished() {
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "the evaluating thread is still stuck"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let e = handle.join().unwrap().unwrap_err();
    assert!(e.message.contains("time limit of 100 ms"), "{e}");
}
