//! The worker processes of Python transformations: starting them under limits, the line protocol of
//! `worker.py`, time-outs, and replacing a worker that hangs or dies (the policy is in the module
//! documentation of [`crate::python`]).

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Map, Value as Json};
use sluice_core::{schema, Profile, Value};

use super::Script;
use crate::{Limits, Output, RowError};

/// The worker program; its protocol is described at its top.
const WORKER: &str = include_str!("worker.py");
/// How long an interpreter may take to start and load its modules (a busy machine is slow).
const BOOT_TIMEOUT: Duration = Duration::from_secs(20);
/// Added to twice the time limit before a silent worker is considered hung: the worker reports at least
/// every 5 ms while it works, and the machine may be busy.
const SILENCE_SLACK: Duration = Duration::from_millis(100);
/// Address space for the interpreter itself (about 22 MiB with its modules), on top of the script's limit.
const INTERPRETER_MEMORY: usize = 64 << 20;
/// A batch is split among workers only in shares of at least this many profiles.
const MIN_SHARE: usize = 256;
/// After this many profiles in a row that each stopped a worker, the rest of the batch fails without
/// being tried.
const MAX_FAILURES_IN_A_ROW: usize = 10;
/// How much of a worker's stderr is kept for messages.
const STDERR_TAIL: usize = 2048;
/// The key that marks a tagged value (`{"\u0000": "datetime", "v": "…"}`) in what the worker returns.
const TAG: &str = "\u{0}";

/// Why a worker was given up.
#[derive(Debug)]
enum Failure {
    /// It sent nothing for longer than the time limit allows.
    Silent,
    /// It exited or was killed; how.
    Died(String),
    /// It answered something that is not the protocol.
    Protocol,
}

impl Failure {
    /// The error of the profile the worker was working on.
    fn row_error(&self, limits: Limits) -> RowError {
        RowError::new(match self {
            Failure::Silent => format!(
                "transform() ran longer than the time limit of {} ms for this profile (its Python worker was stopped)",
                limits.time_per_profile.as_millis()
            ),
            Failure::Died(how) => {
                format!("the Python worker stopped while transforming this profile ({how})")
            }
            Failure::Protocol => "the Python worker answered something unexpected while transforming this profile (did the script write to the worker's output?)".into(),
        })
    }
}

/// One `python3` process running `worker.py` with the script loaded.
struct Worker {
    child: Child,
    /// Batches to write; a thread writes them, so that a worker that stops reading cannot block the run.
    input: Sender<Vec<u8>>,
    /// Lines the worker wrote, without the newline; closed when its output ends.
    lines: Receiver<Vec<u8>>,
    stderr: Arc<Mutex<Vec<u8>>>,
}

impl Worker {
    /// Starts a worker and loads the script; the error is the message to show.
    fn spawn(script: &Script) -> Result<Worker, String> {
        let limits = script.limits;
        let memory = limits.memory_bytes.saturating_add(INTERPRETER_MEMORY) as u64;
        let mut command = Command::new(&*script.interpreter);
        command
            .args(["-I", "-S", "-B", "-c", WORKER])
            .env_clear()
            .env("LC_ALL", "C.UTF-8")
            .current_dir("/")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // SAFETY: the closure runs in the forked child before exec and only makes async-signal-safe calls
        // (setrlimit, signal, prctl) on values computed before the fork.
        unsafe {
            command.pre_exec(move || limit_child(memory));
        }
        let mut child = command.spawn().map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => format!(
                "Python transformations need `{}` on the machine running Sluice, and it was not found",
                script.interpreter
            ),
            _ => format!("could not start `{}`: {e}", script.interpreter),
        })?;
        let stdin = child.stdin.take().expect("piped");
        let stdout = child.stdout.take().expect("piped");
        let stderr = child.stderr.take().expect("piped");
        let (input, batches) = mpsc::channel::<Vec<u8>>();
        std::thread::spawn(move || {
            let mut stdin = stdin;
            for batch in batches {
                if stdin.write_all(&batch).is_err() {
                    break;
                }
            }
        });
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::with_capacity(64 << 10, stdout);
            loop {
                let mut line = Vec::with_capacity(128);
                match reader.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        if line.last() == Some(&b'\n') {
                            line.pop();
                        }
                        if sender.send(line).is_err() {
                            break;
                        }
                    }
                }
            }
        });
        let tail = Arc::new(Mutex::new(Vec::new()));
        let keep = tail.clone();
        std::thread::spawn(move || {
            let mut stderr = stderr;
            let mut chunk = [0u8; 4096];
            while let Ok(n) = stderr.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                let mut t = keep.lock().unwrap_or_else(|e| e.into_inner());
                t.extend_from_slice(&chunk[..n]);
                let excess = t.len().saturating_sub(STDERR_TAIL);
                t.drain(..excess);
            }
        });
        let mut worker = Worker {
            child,
            input,
            lines,
            stderr: tail,
        };
        worker.load(script)?;
        Ok(worker)
    }

    /// Sends the script and waits until its top-level code ran.
    fn load(&mut self, script: &Script) -> Result<(), String> {
        let limits = script.limits;
        let mut init = serde_json::to_vec(&serde_json::json!({
            "source": &*script.source,
            "limit": limits.time_per_profile.as_secs_f64(),
        }))
        .expect("JSON");
        init.push(b'\n');
        let _ = self.input.send(init);
        match self.lines.recv_timeout(BOOT_TIMEOUT) {
            Ok(line) if line == b"b" => {}
            Ok(line) => return Err(self.unexpected(&line)),
            Err(RecvTimeoutError::Timeout) => {
                return Err(format!(
                    "the Python worker did not start within {} seconds",
                    BOOT_TIMEOUT.as_secs()
                ))
            }
            Err(RecvTimeoutError::Disconnected) => return Err(self.start_failed()),
        }
        let budget = limits.time_per_profile * 10;
        match self.lines.recv_timeout(budget + SILENCE_SLACK) {
            Ok(line) if line == b"k" => Ok(()),
            Ok(line) if line.first() == Some(&b'e') => Err(parse_error(&line[1..], limits).message),
            Ok(line) => Err(self.unexpected(&line)),
            Err(RecvTimeoutError::Timeout) => Err(format!(
                "the script's top-level code ran longer than {} ms",
                budget.as_millis()
            )),
            Err(RecvTimeoutError::Disconnected) => Err(self.start_failed()),
        }
    }

    fn unexpected(&mut self, line: &[u8]) -> String {
        format!(
            "the Python worker failed to start: {}",
            String::from_utf8_lossy(&line[..line.len().min(200)])
        )
    }

    /// Why a worker that ended before it was ready did so: the last line it wrote to stderr.
    fn start_failed(&mut self) -> String {
        let how = self.exit_status();
        // The stderr thread may still be reading the last bytes.
        std::thread::sleep(Duration::from_millis(20));
        let tail = self
            .stderr
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let tail = String::from_utf8_lossy(&tail);
        match tail.lines().rev().find(|l| !l.trim().is_empty()) {
            Some(last) => format!("the Python worker failed to start ({how}): {}", last.trim()),
            None => format!("the Python worker failed to start ({how})"),
        }
    }

    /// Kills the process (if it still runs) and says how it ended.
    fn exit_status(&mut self) -> String {
        let status = match self.child.try_wait() {
            Ok(Some(s)) => s,
            _ => {
                // The output ended but the process lingers: give it a moment to exit, then kill it.
                std::thread::sleep(Duration::from_millis(10));
                match self.child.try_wait() {
                    Ok(Some(s)) => s,
                    _ => {
                        let _ = self.child.kill();
                        match self.child.wait() {
                            Ok(s) => s,
                            Err(e) => return format!("its status is unknown: {e}"),
                        }
                    }
                }
            }
        };
        match (status.code(), status.signal()) {
            (Some(code), _) => format!("exit code {code}"),
            (None, Some(sig)) => format!("killed by signal {sig}{}", signal_name(sig)),
            _ => status.to_string(),
        }
    }

    /// Sends a batch: `careful` asks the worker to report every profile as soon as it is done.
    fn send(&self, profiles: &[Profile], careful: bool) {
        let mut buf = Vec::with_capacity(profiles.len() * 256 + 16);
        buf.push(if careful { b'c' } else { b'n' });
        buf.extend_from_slice(format!("{}\n", profiles.len()).as_bytes());
        for p in profiles {
            write_profile(&mut buf, p);
            buf.push(b'\n');
        }
        // A worker that died is noticed when its answers do not come.
        let _ = self.input.send(buf);
    }

    /// Receives the answers to a batch of `n` profiles into `out`; on failure, those received are in `out`
    /// and the worker must be dropped.
    fn collect(
        &mut self,
        n: usize,
        script: &Script,
        out: &mut Vec<Result<Output, RowError>>,
    ) -> Result<(), Failure> {
        let silence = script.limits.time_per_profile * 2 + SILENCE_SLACK;
        for _ in 0..n {
            let line = match self.lines.recv_timeout(silence) {
                Ok(line) => line,
                Err(RecvTimeoutError::Timeout) => return Err(Failure::Silent),
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(Failure::Died(self.exit_status()))
                }
            };
            let outcome = match line.first() {
                Some(b'r') => row(&line[1..], script),
                Some(b's') if line.len() == 1 => Ok(Output::Skip),
                Some(b'e') => Err(parse_error(&line[1..], script.limits)),
                _ => return Err(Failure::Protocol),
            };
            out.push(outcome);
        }
        Ok(())
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Limits of the worker process, set between fork and exec.
fn limit_child(memory: u64) -> std::io::Result<()> {
    fn set(resource: LimitResource, value: u64) -> std::io::Result<()> {
        let limit = libc::rlimit {
            rlim_cur: value as libc::rlim_t,
            rlim_max: value as libc::rlim_t,
        };
        // SAFETY: setrlimit reads the struct it is given; it is async-signal-safe.
        if unsafe { libc::setrlimit(resource, &limit) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }
    set(libc::RLIMIT_AS, memory)?;
    set(libc::RLIMIT_NPROC, 0)?;
    set(libc::RLIMIT_FSIZE, 0)?;
    set(libc::RLIMIT_CORE, 0)?;
    // SAFETY: signal and prctl are async-signal-safe. Writing past RLIMIT_FSIZE then fails with EFBIG
    // instead of killing the worker; the worker dies with Sluice instead of outliving it.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
        // The signal comes when the *thread* that started the worker ends; a runner starts its workers
        // from the thread that evaluates, which outlives them (dropping the runner kills them first).
        #[cfg(target_os = "linux")]
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
    }
    Ok(())
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
type LimitResource = libc::__rlimit_resource_t;
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
type LimitResource = libc::c_int;

fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGKILL => " (SIGKILL)",
        libc::SIGSEGV => " (SIGSEGV: a crash, such as a stack overflow)",
        libc::SIGABRT => " (SIGABRT)",
        libc::SIGBUS => " (SIGBUS)",
        _ => "",
    }
}

/// The profile as the worker reads it: `_id`, `_updated_at`, then its properties.
fn write_profile(buf: &mut Vec<u8>, p: &Profile) {
    buf.extend_from_slice(b"{\"_id\":");
    serde_json::to_writer(&mut *buf, &p.id).expect("in-memory JSON");
    buf.extend_from_slice(b",\"_updated_at\":\"");
    buf.extend_from_slice(schema::format_datetime(&p.updated_at).as_bytes());
    buf.push(b'"');
    for (k, v) in &p.doc {
        buf.push(b',');
        serde_json::to_writer(&mut *buf, k).expect("in-memory JSON");
        buf.push(b':');
        serde_json::to_writer(&mut *buf, v).expect("in-memory JSON");
    }
    buf.push(b'}');
}

/// An error object of the protocol as the row's error.
fn parse_error(text: &[u8], limits: Limits) -> RowError {
    let Ok(Json::Object(e)) = serde_json::from_slice::<Json>(text) else {
        return RowError::new("the Python worker sent an unreadable error");
    };
    let message = e.get("message").and_then(Json::as_str).unwrap_or("");
    let message = match e.get("limit").and_then(Json::as_str) {
        Some("time") => format!(
            "transform() ran longer than the time limit of {} ms for this profile",
            limits.time_per_profile.as_millis()
        ),
        Some("memory") => format!(
            "transform() used more than the memory limit of {} MiB",
            limits.memory_bytes >> 20
        ),
        _ => message.to_string(),
    };
    match e.get("column").and_then(Json::as_str) {
        Some(c) => RowError::column(c, message),
        None => RowError::new(message),
    }
}

/// The row from the object `transform` returned.
fn row(text: &[u8], script: &Script) -> Result<Output, RowError> {
    let object: Map<String, Json> = serde_json::from_slice(text).map_err(|e| {
        RowError::new(format!(
            "transform() returned text that is not valid Unicode: {e}"
        ))
    })?;
    let shape = &script.shape;
    let mut row = shape.empty_row();
    for (name, value) in object {
        shape.set(&mut row, &name, py_value(value))?;
    }
    shape.finish(row).map(Output::Row)
}

/// A returned value before conversion to the column type: tagged values become the typed values they
/// stand for, arrays arrays of values, scalars stay JSON (converted like a mapping's JSON values).
fn py_value(json: Json) -> Result<Value, String> {
    Ok(match json {
        Json::Object(m) => match tagged(&m) {
            Some((tag, text)) => typed(tag, text)?,
            None => Value::json(plain(Json::Object(m))),
        },
        Json::Array(items) => Value::Array(
            items
                .into_iter()
                .map(py_value)
                .collect::<Result<Vec<_>, _>>()?,
        ),
        other => Value::json(other),
    })
}

fn tagged(m: &Map<String, Json>) -> Option<(&str, &str)> {
    if m.len() != 2 {
        return None;
    }
    Some((m.get(TAG)?.as_str()?, m.get("v")?.as_str()?))
}

fn typed(tag: &str, text: &str) -> Result<Value, String> {
    match tag {
        "datetime" => schema::parse_datetime(text)
            .map(Value::DateTime)
            .map_err(|e| format!("the datetime is out of range: {e}")),
        "date" => chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .map(Value::Date)
            .map_err(|_| format!("the date {text} is out of range")),
        "time" => schema::parse_time(text).map(Value::Time),
        "decimal" => text.parse().map(Value::Decimal).map_err(|_| {
            format!("the Decimal {text} does not fit 96 bits with at most 28 decimals")
        }),
        _ => Ok(Value::String(text.into())),
    }
}

/// A value inside an object, as plain JSON: tagged values become their text.
fn plain(json: Json) -> Json {
    match json {
        Json::Object(m) => match tagged(&m) {
            Some((_, text)) => Json::String(text.to_string()),
            None => Json::Object(m.into_iter().map(|(k, v)| (k, plain(v))).collect()),
        },
        Json::Array(items) => Json::Array(items.into_iter().map(plain).collect()),
        other => other,
    }
}

/// Runs a [`Script`] on batches of profiles with up to [`Limits::python_workers`] workers.
pub struct Runner {
    script: Script,
    workers: Vec<Option<Worker>>,
}

impl Runner {
    /// A runner with its first worker started, so that a script that cannot load fails now.
    pub(super) fn new(script: Script) -> Result<Runner, String> {
        let first = Worker::spawn(&script)?;
        let mut workers: Vec<Option<Worker>> = (0..script.limits.python_workers.max(1))
            .map(|_| None)
            .collect();
        workers[0] = Some(first);
        Ok(Runner { script, workers })
    }

    /// The row for one profile.
    pub fn eval(&mut self, profile: &Profile) -> Result<Output, RowError> {
        self.eval_batch(std::slice::from_ref(profile))
            .pop()
            .expect("one result per profile")
    }

    /// The rows of a batch, in order: split among the workers when it is large enough.
    pub fn eval_batch(&mut self, profiles: &[Profile]) -> Vec<Result<Output, RowError>> {
        let mut out = Vec::with_capacity(profiles.len());
        if profiles.is_empty() {
            return out;
        }
        let shares = (profiles.len() / MIN_SHARE).clamp(1, self.workers.len());
        let chunks: Vec<&[Profile]> = profiles.chunks(profiles.len().div_ceil(shares)).collect();
        let mut started: Vec<Result<(), String>> = Vec::with_capacity(chunks.len());
        for (slot, chunk) in chunks.iter().enumerate() {
            started
                .push(ensure(&mut self.workers[slot], &self.script).map(|w| w.send(chunk, false)));
        }
        for ((slot, chunk), started) in chunks.into_iter().enumerate().zip(started) {
            if let Err(message) = started {
                out.extend(chunk.iter().map(|_| Err(RowError::new(message.clone()))));
                continue;
            }
            let before = out.len();
            let worker = self.workers[slot].as_mut().expect("started above");
            if let Err(failure) = worker.collect(chunk.len(), &self.script, &mut out) {
                self.workers[slot] = None;
                let rest = &chunk[out.len() - before..];
                self.recover(slot, rest, failure, &mut out);
            }
        }
        out
    }

    /// After a worker failed with `rest` unanswered: finds the profile at fault with careful batches on
    /// fresh workers, fails it alone, and goes on with the others.
    fn recover(
        &mut self,
        slot: usize,
        mut rest: &[Profile],
        mut failure: Failure,
        out: &mut Vec<Result<Output, RowError>>,
    ) {
        // The first failure happened with a batch that reports in bursts: which profile was at fault is
        // known only when a single one was unanswered.
        let mut careful = rest.len() == 1;
        // Profiles failed in a row, each costing a new worker: a script that crashes or hangs on every
        // profile would otherwise take minutes per batch.
        let mut in_a_row = 0;
        loop {
            if careful {
                let error = failure.row_error(self.script.limits);
                in_a_row += 1;
                if in_a_row >= MAX_FAILURES_IN_A_ROW {
                    let message = format!(
                        "not transformed: the Python worker failed on {MAX_FAILURES_IN_A_ROW} profiles in a row, the last time with: {}",
                        error.message
                    );
                    out.push(Err(error));
                    out.extend(
                        rest[1..]
                            .iter()
                            .map(|_| Err(RowError::new(message.clone()))),
                    );
                    return;
                }
                out.push(Err(error));
                rest = &rest[1..];
            }
            if rest.is_empty() {
                return;
            }
            careful = !careful;
            let worker = match ensure(&mut self.workers[slot], &self.script) {
                Ok(w) => w,
                Err(message) => {
                    out.extend(rest.iter().map(|_| Err(RowError::new(message.clone()))));
                    return;
                }
            };
            worker.send(rest, careful);
            let before = out.len();
            match worker.collect(rest.len(), &self.script, out) {
                Ok(()) => return,
                Err(f) => {
                    self.workers[slot] = None;
                    if out.len() > before {
                        in_a_row = 0;
                    }
                    rest = &rest[out.len() - before..];
                    failure = f;
                    // A batch that was not careful failing on its only profile: that one is at fault.
                    if !careful && rest.len() == 1 {
                        careful = true;
                    }
                }
            }
        }
    }
}

/// The worker of a slot, started if needed.
fn ensure<'a>(slot: &'a mut Option<Worker>, script: &Script) -> Result<&'a mut Worker, String> {
    if slot.is_none() {
        *slot = Some(Worker::spawn(script)?);
    }
    Ok(slot.as_mut().expect("set above"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tagged_values_become_typed_values_at_the_top_and_text_inside_objects() {
        let dt = json!({"\u{0}": "datetime", "v": "2024-01-02T03:04:05.000600Z"});
        assert_eq!(
            py_value(dt.clone()).unwrap().to_json(),
            json!("2024-01-02T03:04:05.000600Z")
        );
        assert!(matches!(py_value(dt.clone()), Ok(Value::DateTime(_))));
        assert_eq!(
            py_value(json!({"\u{0}": "decimal", "v": "12.50"})).unwrap(),
            Value::Decimal("12.50".parse().unwrap())
        );
        assert!(matches!(
            py_value(json!({"\u{0}": "date", "v": "2024-02-29"})),
            Ok(Value::Date(_))
        ));
        assert!(matches!(
            py_value(json!({"\u{0}": "time", "v": "07:08:09.5"})),
            Ok(Value::Time(_))
        ));
        // Arrays keep typed elements (for array columns); objects are plain JSON.
        assert!(matches!(
            py_value(json!([dt.clone()])),
            Ok(Value::Array(items)) if matches!(items[0], Value::DateTime(_))
        ));
        assert_eq!(
            py_value(json!({"at": dt, "n": [1, {"\u{0}": "decimal", "v": "0.10"}]})).unwrap(),
            Value::json(json!({"at": "2024-01-02T03:04:05.000600Z", "n": [1, "0.10"]}))
        );
        // An object that merely has the tag key among others is data.
        let data = json!({"\u{0}": "datetime", "v": "x", "other": 1});
        assert_eq!(py_value(data.clone()).unwrap(), Value::json(data));
        let e = py_value(json!({"\u{0}": "decimal", "v": "1e400"})).unwrap_err();
        assert!(e.contains("Decimal"), "{e}");
    }

    #[test]
    fn protocol_errors_name_the_limit_or_the_column() {
        let limits = Limits::default();
        let e = parse_error(
            br#"{"message": "x", "column": null, "limit": "time"}"#,
            limits,
        );
        assert_eq!(
            e.message,
            "transform() ran longer than the time limit of 100 ms for this profile"
        );
        let e = parse_error(
            br#"{"message": "x", "column": null, "limit": "memory"}"#,
            limits,
        );
        assert_eq!(
            e.message,
            "transform() used more than the memory limit of 64 MiB"
        );
        let e = parse_error(
            br#"{"message": "too big", "column": "i", "limit": null}"#,
            limits,
        );
        assert_eq!(e.to_string(), "column `i`: too big");
        assert!(parse_error(b"nonsense", limits)
            .message
            .contains("unreadable"));
    }

    #[test]
    fn profiles_are_written_as_one_json_object() {
        let p = Profile {
            id: "p\"1".into(),
            updated_at: chrono::DateTime::parse_from_rfc3339("2024-05-13T15:30:00Z")
                .unwrap()
                .to_utc(),
            doc: json!({"name": "Zoë", "n": 9_007_199_254_740_993i64})
                .as_object()
                .unwrap()
                .clone(),
        };
        let mut buf = Vec::new();
        write_profile(&mut buf, &p);
        let back: Json = serde_json::from_slice(&buf).unwrap();
        assert_eq!(
            back,
            json!({"_id": "p\"1", "_updated_at": "2024-05-13T15:30:00Z", "name": "Zoë", "n": 9_007_199_254_740_993i64})
        );
    }
}
