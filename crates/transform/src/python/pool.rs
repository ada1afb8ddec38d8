//! The worker processes of Python transformations: starting them under limits, the line protocol of
//! `worker.py`, time-outs, and replacing a worker that hangs or dies (the policy is in the module
//! documentation of [`crate::python`]).

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Stdio};
use std::sync::atomic::AtomicBool;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Map, Value as Json};
use sluice_core::{schema, Profile, Value};

use super::sandbox::Sandbox;
use super::Script;
use crate::{Limits, Output, RowError, Watch};

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
/// How often a wait for a worker looks whether scripts were abandoned or its evaluator stopped.
const ABANDON_POLL: Duration = Duration::from_millis(50);
/// How much of a worker's stderr is kept for messages.
const STDERR_TAIL: usize = 2048;
/// The key that marks a tagged value (`{"\u0000": "datetime", "v": "…"}`) in what the worker returns.
const TAG: &str = "\u{0}";

/// A line of the worker's output.
enum Line {
    /// Without its newline.
    Text(Vec<u8>),
    /// Longer than [`line_cap`]: not kept.
    Oversized,
}

/// The longest line read from a worker: a row of the output limit, plus room for the protocol.
fn line_cap(limits: Limits) -> usize {
    limits.output_bytes.saturating_add(4096)
}

/// Why a worker was given up.
#[derive(Debug)]
enum Failure {
    /// It sent nothing for longer than the time limit allows.
    Silent,
    /// It exited or was killed; how.
    Died(String),
    /// It answered something that is not the protocol.
    Protocol,
    /// Scripts were abandoned (shutdown), or the evaluator stopped, while it worked; the error to give
    /// every profile left.
    Halted(RowError),
    /// It wrote a line longer than the output limit allows (the worker checks its rows itself, so this
    /// is a script writing to the protocol directly); the line answered the profile at hand.
    Oversized,
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
            Failure::Oversized => oversized_message(limits),
            Failure::Halted(e) => return e.clone(),
        })
    }

    /// Whether the profile at fault is known: the first one not answered.
    fn attributable(&self) -> bool {
        matches!(self, Failure::Oversized)
    }
}

/// One `python3` process running `worker.py` with the script loaded.
struct Worker {
    child: Child,
    /// Batches to write; a thread writes them, so that a worker that stops reading cannot block the run.
    input: Sender<Vec<u8>>,
    /// Lines the worker wrote, without the newline; closed when its output ends.
    lines: Receiver<Line>,
    stderr: Arc<Mutex<Vec<u8>>>,
}

impl Worker {
    /// Starts a worker and loads the script; the error is the message to show.
    fn spawn(script: &Script) -> Result<Worker, String> {
        let limits = script.limits;
        let memory = limits.memory_bytes.saturating_add(INTERPRETER_MEMORY) as u64;
        let sandbox =
            Sandbox::get(&script.interpreter).map_err(|e| e.message(&script.interpreter))?;
        let mut command = sandbox.command(&["-I", "-S", "-B", "-c", WORKER], memory);
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().map_err(|e| {
            format!(
                "could not start `{}` confined: {e}",
                sandbox.executable().display()
            )
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
        let longest = line_cap(limits);
        std::thread::spawn(move || {
            let mut reader = BufReader::with_capacity(64 << 10, stdout);
            loop {
                let mut line = Vec::with_capacity(128);
                // Bounded: a line is never held in memory beyond the cap, whatever the worker writes.
                match (&mut reader)
                    .take(longest as u64 + 1)
                    .read_until(b'\n', &mut line)
                {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let message = if line.last() == Some(&b'\n') {
                            line.pop();
                            Line::Text(line)
                        } else if line.len() > longest {
                            Line::Oversized
                        } else {
                            Line::Text(line)
                        };
                        let oversized = matches!(message, Line::Oversized);
                        if sender.send(message).is_err() {
                            break;
                        }
                        if oversized {
                            // The worker is replaced; its output is drained, not closed, so that it
                            // never meets a broken pipe (a signal) while it still runs.
                            let _ = std::io::copy(&mut reader, &mut std::io::sink());
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
            "output": limits.output_bytes,
        }))
        .expect("JSON");
        init.push(b'\n');
        let _ = self.input.send(init);
        match self.lines.recv_timeout(BOOT_TIMEOUT) {
            Ok(Line::Text(line)) if line == b"b" => {}
            Ok(Line::Text(line)) => return Err(self.unexpected(&line)),
            Ok(Line::Oversized) => return Err(self.unexpected(b"(a line over the output limit)")),
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
            Ok(Line::Text(line)) if line == b"k" => Ok(()),
            Ok(Line::Text(line)) if line.first() == Some(&b'e') => {
                Err(parse_error(&line[1..], limits).message)
            }
            Ok(Line::Text(line)) => Err(self.unexpected(&line)),
            Ok(Line::Oversized) => Err(self.unexpected(b"(a line over the output limit)")),
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

    /// The next line, waiting at most `silence`, and no longer once scripts are abandoned or `watch`
    /// stopped.
    fn next_line(&self, silence: Duration, watch: &Watch) -> Result<Line, RecvTimeoutError> {
        let started = std::time::Instant::now();
        loop {
            if watch.interrupted() {
                return Err(RecvTimeoutError::Timeout);
            }
            let left = silence.saturating_sub(started.elapsed());
            if left.is_zero() {
                return Err(RecvTimeoutError::Timeout);
            }
            match self.lines.recv_timeout(left.min(ABANDON_POLL)) {
                Err(RecvTimeoutError::Timeout) => continue,
                other => return other,
            }
        }
    }

    /// Receives the answers to a batch of `n` profiles into `out`, counting them in `watch`; on failure,
    /// those received are in `out` and the worker must be dropped. Once `watch` gives up on a stuck
    /// script, the worker is not waited for any more.
    fn collect(
        &mut self,
        n: usize,
        script: &Script,
        watch: &mut Watch,
        out: &mut Vec<Result<Output, RowError>>,
    ) -> Result<(), Failure> {
        let silence = script.limits.time_per_profile * 2 + SILENCE_SLACK;
        for _ in 0..n {
            let line = match self.next_line(silence, watch) {
                Ok(Line::Text(line)) => line,
                Ok(Line::Oversized) => return Err(Failure::Oversized),
                Err(RecvTimeoutError::Timeout) if watch.interrupted() => {
                    return Err(Failure::Halted(
                        watch.halted().expect("interrupted means halted"),
                    ))
                }
                Err(RecvTimeoutError::Timeout) => return Err(Failure::Silent),
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(Failure::Died(self.exit_status()))
                }
            };
            let mut timed_out = false;
            let outcome = match line.first() {
                Some(b'r') => row(&line[1..], script),
                Some(b's') if line.len() == 1 => Ok(Output::Skip),
                Some(b'e') => {
                    timed_out = is_time_limit(&line[1..]);
                    Err(parse_error(&line[1..], script.limits))
                }
                _ => return Err(Failure::Protocol),
            };
            out.push(outcome);
            if watch.count(timed_out) {
                return Err(Failure::Halted(
                    watch.halted().expect("gave up means halted"),
                ));
            }
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

/// Whether an error object of the protocol is the time limit's.
fn is_time_limit(text: &[u8]) -> bool {
    matches!(
        serde_json::from_slice::<Json>(text),
        Ok(Json::Object(e)) if e.get("limit").and_then(Json::as_str) == Some("time")
    )
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
        Some("output") => oversized_message(limits),
        _ => message.to_string(),
    };
    match e.get("column").and_then(Json::as_str) {
        Some(c) => RowError::column(c, message),
        None => RowError::new(message),
    }
}

fn oversized_message(limits: Limits) -> String {
    format!(
        "transform() returned a row larger than the output limit of {} bytes",
        limits.output_bytes
    )
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
    watch: Watch,
}

impl Runner {
    /// A runner with its first worker started, so that a script that cannot load fails now.
    pub(super) fn new(script: Script, stop: Arc<AtomicBool>) -> Result<Runner, String> {
        let first = Worker::spawn(&script)?;
        let mut workers: Vec<Option<Worker>> = (0..script.limits.python_workers.max(1))
            .map(|_| None)
            .collect();
        workers[0] = Some(first);
        let watch = Watch::new(stop, script.limits.time_per_profile);
        Ok(Runner {
            script,
            workers,
            watch,
        })
    }

    /// Why the runner gave up on a stuck script, once it has.
    pub fn gave_up(&self) -> Option<String> {
        self.watch.gave_up()
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
        if let Some(e) = self.watch.halted() {
            out.extend(profiles.iter().map(|_| Err(e.clone())));
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
            if let Some(e) = self.watch.halted() {
                // Its worker may be busy with profiles no one waits for any more.
                self.workers[slot] = None;
                out.extend(chunk.iter().map(|_| Err(e.clone())));
                continue;
            }
            if let Err(message) = started {
                out.extend(chunk.iter().map(|_| Err(RowError::new(message.clone()))));
                continue;
            }
            let before = out.len();
            let worker = self.workers[slot].as_mut().expect("started above");
            if let Err(failure) =
                worker.collect(chunk.len(), &self.script, &mut self.watch, &mut out)
            {
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
        let mut careful = rest.len() == 1 || failure.attributable();
        // Profiles failed in a row, each costing a new worker: a script that crashes or hangs on every
        // profile would otherwise take minutes per batch.
        let mut in_a_row = 0;
        loop {
            if let Some(e) = self.watch.halted() {
                out.extend(rest.iter().map(|_| Err(e.clone())));
                return;
            }
            if careful {
                let error = failure.row_error(self.script.limits);
                // A hang is the time limit; counted here, where the profile at fault is known.
                if self.watch.count(matches!(failure, Failure::Silent)) {
                    out.push(Err(error));
                    rest = &rest[1..];
                    continue;
                }
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
            match worker.collect(rest.len(), &self.script, &mut self.watch, out) {
                Ok(()) => return,
                Err(f) => {
                    self.workers[slot] = None;
                    if out.len() > before {
                        in_a_row = 0;
                    }
                    rest = &rest[out.len() - before..];
                    // A batch that was not careful failing on its only profile: that one is at fault.
                    if f.attributable() || (!careful && rest.len() == 1) {
                        careful = true;
                    }
                    failure = f;
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
