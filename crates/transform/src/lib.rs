//! Transformations: how a pipeline turns a profile into a destination row.
//!
//! A pipeline's transformation is one of three kinds ([`sluice_core::pipeline::Transformation`]); this
//! crate compiles each into a [`Transform`] and evaluates it, so that the engine and the preview treat them
//! alike:
//!
//! - **Visual mapping** wraps [`sluice_core::mapping::CompiledMapping`] (one expression per column).
//! - **JavaScript** runs in an embedded QuickJS engine ([`rquickjs`]), in-process — see [`js`].
//! - **Python** runs in a pool of `python3` worker processes, fed batches over pipes — see [`python`] for
//!   the processes, the limits and what the isolation does and does not stop. It is checked when saved
//!   (syntax with line and column, `transform` defined, `columns`) without running it; a machine without
//!   `python3` gets a clear error then.
//!
//! # Compile once, evaluate on the thread that owns the engine
//!
//! [`Transform`] is the compiled, checked form: `Send + Sync + Clone`, made when a pipeline is saved (syntax
//! errors come back with line and column) and again before a run. A JavaScript runtime is not `Send`, so
//! evaluation goes through an [`Evaluator`] made by [`Transform::evaluator`] on the thread that uses it (the
//! run's blocking transformer thread, or the preview's). Each evaluator owns one runtime (or, for Python,
//! its own worker processes), so the memory limit is per pipeline run. [`Evaluator::eval_batch`] takes a
//! page of profiles at once, which is what lets Python batches cross the pipe in one message.
//!
//! # The script contract
//!
//! The script defines `transform(profile)`. `profile` holds `_id`, `_updated_at` and the Customer Model
//! properties as stored (normalized):
//!
//! | Customer Model type | in JavaScript | in Python |
//! |---|---|---|
//! | string, uuid | string | `str` |
//! | boolean | boolean | `bool` |
//! | int | number when within ±(2⁵³−1); beyond that a **BigInt** (exact; `typeof x === "bigint"`) | `int` (exact) |
//! | float | number | `float` |
//! | decimal | **string** with its exact digits (`"12.50"`); use `Number(x)` if approximate is fine | **`str`** with its exact digits; `Decimal(x)` keeps them |
//! | datetime | ISO 8601 string in UTC (`"2024-05-13T15:30:00Z"`); `new Date(x)` parses it | the same string; `datetime.fromisoformat(x)` parses it |
//! | date, time | `"2024-05-13"`, `"15:30:00"` | the same strings |
//! | object, json | plain objects and arrays (numbers in JSON follow the int rule above) | `dict` and `list` |
//! | array(T) | array of T | `list` of T |
//!
//! A property that is missing from the profile is absent from the object (`undefined` in JavaScript, a
//! missing key in Python: use `profile.get("name")`).
//!
//! It returns either an object (a `dict`) keyed by destination column, or `null` (`None`) to **skip** the
//! profile. Returning anything else (`undefined` included — a forgotten `return` should not silently skip
//! everything; in Python a forgotten `return` is `None` and skips, as Python has no `undefined`) fails
//! the row. Returned values are converted to the column types by [`sluice_core::convert::to_column`], the
//! same rules as visual mapping: a whole number becomes an int, a BigInt an int (when it fits 64 bits), a
//! `Date` a datetime, an object or array JSON (or an array for array columns), strings are parsed where the
//! column needs it (a date column accepts `"2024-05-13"`). Python may also return `datetime`, `date`,
//! `time`, `Decimal` and `UUID` values (see [`python`]). A key that is not one of the pipeline's columns,
//! a value that does not convert, or a null for a column that does not accept null fails that row with a
//! message naming the column.
//!
//! **A skipped profile is treated as filtered out**: the run counts it under `filtered_out`, writes
//! nothing for it, and a row written for it by an earlier run is handled like that of a profile that left
//! the audience (`on_leave`).
//!
//! # Which columns a script pipeline writes
//!
//! Every row of a run must have the same columns (rows are written in batches with one column list, and
//! row hashes depend on it), and that set must be known when the pipeline is saved. The rule is
//! deterministic and does not depend on data:
//!
//! - if the script declares a top-level `columns` array of names (`const columns = ["email", "name"];`),
//!   the pipeline writes exactly those columns;
//! - otherwise it writes **every column of the table whose type Sluice can write**.
//!
//! A column of the set that a returned object leaves out is written as NULL (and fails the row if the
//! column does not accept null). So a table with columns the pipeline must not touch needs a `columns`
//! list. The key column must be in the set. Saving checks that every declared column exists and is
//! writable.
//!
//! Column names — a mapping's columns, the `columns` list, the keys of returned objects, the pipeline's
//! key — are matched to the table's columns by the table's identifier rule
//! ([`sluice_core::TableDescription::resolve_column`]): exactly, except where the database's SQL matches
//! unquoted names whatever their case (Snowflake: `customer_id` finds `CUSTOMER_ID`, `"MixedCase"` only
//! `MixedCase`, and a name of two columns is refused naming both). Rows always carry the names the table
//! stores.
//!
//! # Limits and isolation (JavaScript)
//!
//! QuickJS has no file, network or process access unless modules providing it are added; none are:
//! `require`, `fetch`, `process` do not exist and `import` has no loader. Each call has a time limit
//! ([`Limits::time_per_profile`], default 100 ms, enforced by the interrupt handler — the script cannot
//! catch it) and each evaluator a memory limit ([`Limits::memory_bytes`], default 64 MiB). The time limit
//! covers everything that may run the script's code for a profile, not only the call: reading the
//! returned object (getters, a Date's methods, `Symbol.hasInstance`) and the thrown error (its `name`,
//! `message`, `stack`). A returned Proxy is refused without running its traps; arrays are read by index
//! with their `length` checked. A row larger than [`Limits::output_bytes`] (string bytes, 8 per other
//! value, keys included) fails its profile naming the limit, counted as it is read, so a small value that
//! is huge once read (an array of four billion holes, shared references nested sixty deep) stops early.
//! A profile that hits the time or memory limit fails with a message saying which, and the evaluator
//! starts a fresh runtime for the next profile (global state a script kept between calls is lost then;
//! scripts should not rely on it). [`abandon_scripts`] interrupts every call at once, for shutdown.
//!
//! # Stopping one evaluator, and giving up on a stuck script
//!
//! [`Transform::evaluator_with_stop`] ties an evaluator to a flag (a run's cancel flag): once it is set, a
//! JavaScript call in progress is interrupted, Python workers are no longer waited for, and every profile
//! left fails at once with [`STOPPED_MESSAGE`] without being evaluated. A script that hits the time limit
//! on [`TIMEOUTS_IN_A_ROW`] profiles in a row is taken to be stuck: the evaluator evaluates no more
//! profiles (they fail without being evaluated, see [`RowError::evaluated`]) and
//! [`Evaluator::gave_up`] says why, so that a run can fail rather than spend the limit on every profile.
//! A visual mapping runs no user code and ignores both.
//!
//! Python's limits are the same settings, enforced on worker processes (see [`python`]), plus
//! [`Limits::python_workers`]. `SECURITY.md` at the repository root says what the isolation of both stops
//! and what it does not.

mod columns;
pub mod js;
pub mod python;

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sluice_core::mapping::{ColumnError, CompiledMapping, Reads};
use sluice_core::pipeline::Transformation;
use sluice_core::raw::Locator;
use sluice_core::{FieldErrors, Profile, RawProfile, Schema, TableDescription, Value};

static ABANDONED: AtomicBool = AtomicBool::new(false);

/// Ends every script evaluation of the process at once, for good: a JavaScript call in progress is
/// interrupted, Python workers stop being waited for, and every later profile fails with
/// [`ABANDONED_MESSAGE`]. For shutdown, after runs were given their grace: the blocking threads that
/// evaluate then return within moments, so the runtime's shutdown never waits on user code.
pub fn abandon_scripts() {
    ABANDONED.store(true, Ordering::Relaxed);
}

/// The error of a profile that was not transformed because scripts were abandoned.
pub const ABANDONED_MESSAGE: &str = "not transformed: Sluice is shutting down";

pub(crate) fn abandoned() -> bool {
    ABANDONED.load(Ordering::Relaxed)
}

/// The error of a profile that was not transformed because its evaluator's stop flag was set.
pub const STOPPED_MESSAGE: &str = "not transformed: the run was cancelled";

/// After this many profiles in a row that each ran past the time limit, an evaluator gives up on the rest.
/// One slow profile now and then (a large input) must not end a run, and twenty in a row is far beyond
/// what chance gives a script that mostly works; at the default 100 ms limit it costs about two seconds
/// (JavaScript, or Python calls that return late), not the half hour a page of 20,000 would.
pub const TIMEOUTS_IN_A_ROW: usize = 20;

/// What an evaluator knows about whether it should go on: its stop flag, the process-wide abandon, and
/// the profiles in a row that ran past the time limit.
#[derive(Debug)]
pub(crate) struct Watch {
    stop: Arc<AtomicBool>,
    time_limit: Duration,
    timeouts_in_a_row: usize,
    gave_up: bool,
}

impl Watch {
    pub(crate) fn new(stop: Arc<AtomicBool>, time_limit: Duration) -> Self {
        Self {
            stop,
            time_limit,
            timeouts_in_a_row: 0,
            gave_up: false,
        }
    }

    /// The flag a JavaScript interrupt handler looks at.
    pub(crate) fn flag(&self) -> Arc<AtomicBool> {
        self.stop.clone()
    }

    /// Whether waiting for a script must end now (stop flag or shutdown).
    pub(crate) fn interrupted(&self) -> bool {
        abandoned() || self.stop.load(Ordering::Relaxed)
    }

    /// The error of a profile that is not to be evaluated; `None` while evaluation goes on.
    pub(crate) fn halted(&self) -> Option<RowError> {
        if abandoned() {
            Some(RowError::new(ABANDONED_MESSAGE))
        } else if self.stop.load(Ordering::Relaxed) {
            Some(RowError::not_evaluated(STOPPED_MESSAGE))
        } else if self.gave_up {
            Some(RowError::not_evaluated(format!(
                "not transformed: {}",
                self.stuck_message()
            )))
        } else {
            None
        }
    }

    /// Counts one evaluated profile, in profile order; returns true when it made the evaluator give up.
    pub(crate) fn count(&mut self, timed_out: bool) -> bool {
        if !timed_out {
            self.timeouts_in_a_row = 0;
            return false;
        }
        self.timeouts_in_a_row += 1;
        if self.timeouts_in_a_row >= TIMEOUTS_IN_A_ROW {
            self.gave_up = true;
        }
        self.gave_up
    }

    pub(crate) fn gave_up(&self) -> Option<String> {
        self.gave_up.then(|| self.stuck_message())
    }

    fn stuck_message(&self) -> String {
        format!(
            "the script ran longer than its time limit of {} ms on {TIMEOUTS_IN_A_ROW} profiles in a row, so it was taken to be stuck and the profiles after them were not transformed",
            self.time_limit.as_millis()
        )
    }
}

/// Resource limits of script transformations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// How long one call of `transform` may run.
    pub time_per_profile: Duration,
    /// The memory one evaluator (one pipeline run, or one preview) may allocate; for Python, each worker.
    pub memory_bytes: usize,
    /// How many Python worker processes one evaluator may run in parallel on a large batch.
    pub python_workers: usize,
    /// The largest row a script may return, in bytes of its JSON form (Python) or of its values
    /// (JavaScript: string bytes, 8 per other scalar); a larger one fails its profile naming the limit.
    pub output_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            time_per_profile: Duration::from_millis(100),
            memory_bytes: 64 << 20,
            python_workers: std::thread::available_parallelism().map_or(1, |n| n.get().min(4)),
            output_bytes: 4 << 20,
        }
    }
}

/// Why one profile's row could not be computed. `column` names the column at fault, when there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    pub column: Option<String>,
    pub message: String,
    /// False when the profile was never given to the script (its evaluator was stopped or gave up).
    evaluated: bool,
}

impl RowError {
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            column: None,
            message: message.into(),
            evaluated: true,
        }
    }

    pub fn column(column: &str, message: impl Into<String>) -> Self {
        Self {
            column: Some(column.to_string()),
            message: message.into(),
            evaluated: true,
        }
    }

    pub(crate) fn not_evaluated(message: impl Into<String>) -> Self {
        Self {
            evaluated: false,
            ..Self::new(message)
        }
    }

    /// Whether the profile reached the transformation at all: false for the profiles an evaluator did not
    /// evaluate because it was stopped or gave up on a stuck script.
    pub fn evaluated(&self) -> bool {
        self.evaluated
    }
}

impl fmt::Display for RowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.column {
            Some(c) => write!(f, "column `{c}`: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for RowError {}

impl From<ColumnError> for RowError {
    fn from(e: ColumnError) -> Self {
        Self {
            column: Some(e.column),
            message: e.message,
            evaluated: true,
        }
    }
}

/// What a transformation made of one profile.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Values in [`Transform::columns`] order, converted to the column types.
    Row(Vec<Value>),
    /// The script returned null: the profile is treated as filtered out.
    Skip,
}

/// A compiled transformation, checked against the Customer Model and the table.
#[derive(Debug, Clone)]
pub enum Transform {
    Mapping(CompiledMapping),
    Javascript(js::Script),
    Python(python::Script),
}

impl Transform {
    /// Compiles a transformation. Errors are keyed by field path (`transformation.mapping.<column>`,
    /// `transformation.javascript`, `transformation.python`, `key`). Python is checked with the machine's
    /// `python3` without running the script.
    pub fn compile(
        transformation: &Transformation,
        key: &str,
        schema: &Schema,
        table: &TableDescription,
        limits: Limits,
    ) -> Result<Transform, FieldErrors> {
        Self::compile_reading(
            transformation,
            key,
            schema,
            table,
            limits,
            Reads::Properties,
        )
    }

    /// [`Self::compile`] of a transformation whose input `schema` is what `reads` says: a source
    /// pipeline's mapping reads source columns, and its messages say so.
    pub fn compile_reading(
        transformation: &Transformation,
        key: &str,
        schema: &Schema,
        table: &TableDescription,
        limits: Limits,
        reads: Reads,
    ) -> Result<Transform, FieldErrors> {
        match transformation {
            Transformation::Mapping(m) => {
                let mut errors = FieldErrors::new();
                let compiled = match CompiledMapping::compile_reading(m, schema, table, reads) {
                    Ok(c) => Some(c),
                    Err(e) => {
                        errors.merge_prefixed("transformation.mapping", e);
                        None
                    }
                };
                // The key and the mapping may spell the column differently (see
                // `TableDescription::resolve_column`).
                let stored_key = table.stored_name(key);
                if !key.is_empty() && !m.iter().any(|(c, _)| table.stored_name(c) == stored_key) {
                    errors.add(
                        "key",
                        format!("the key column `{key}` must be mapped in the transformation"),
                    );
                }
                match compiled {
                    Some(c) if errors.is_empty() => Ok(Transform::Mapping(c)),
                    _ => Err(errors),
                }
            }
            Transformation::Javascript(source) => {
                js::Script::compile(source, key, table, limits).map(Transform::Javascript)
            }
            Transformation::Python(source) => {
                python::Script::compile(source, key, table, limits).map(Transform::Python)
            }
        }
    }

    /// The destination columns every row has, in order.
    pub fn columns(&self) -> &[String] {
        match self {
            Transform::Mapping(m) => &m.columns,
            Transform::Javascript(s) => s.columns(),
            Transform::Python(s) => s.columns(),
        }
    }

    /// Whether a profile's row may differ from one run to the next although the profile did not change.
    /// Scripts can read the clock or draw random numbers, so they are taken to depend on the run.
    pub fn depends_on_run(&self) -> bool {
        match self {
            Transform::Mapping(m) => m.depends_on_run(),
            Transform::Javascript(_) | Transform::Python(_) => true,
        }
    }

    /// The same transformation with other limits (they matter to scripts only).
    pub fn with_limits(self, limits: Limits) -> Self {
        match self {
            Transform::Javascript(s) => Transform::Javascript(s.with_limits(limits)),
            Transform::Python(s) => Transform::Python(s.with_limits(limits)),
            other => other,
        }
    }

    /// An evaluator for the calling thread. Fails when a script cannot be loaded: for JavaScript,
    /// compiling the same script prevents that, short of a memory limit too small for it; Python's
    /// top-level code runs only now (in the first worker), and `python3` may have gone.
    pub fn evaluator(&self) -> Result<Evaluator, String> {
        self.evaluator_with_stop(Arc::new(AtomicBool::new(false)))
    }

    /// [`Transform::evaluator`] that stops once `stop` is set (a run's cancel flag): a script call in
    /// progress is interrupted and no later profile is evaluated (they fail with [`STOPPED_MESSAGE`]). A
    /// visual mapping never looks at it: it runs no user code, and its loop stays as it was.
    pub fn evaluator_with_stop(&self, stop: Arc<AtomicBool>) -> Result<Evaluator, String> {
        Ok(Evaluator(match self {
            Transform::Mapping(m) => Inner::Mapping(m.clone(), m.locator()),
            Transform::Javascript(s) => Inner::Javascript(Box::new(s.runner_with_stop(stop)?)),
            Transform::Python(s) => Inner::Python(s.runner_with_stop(stop)?),
        }))
    }
}

/// Evaluates a [`Transform`]; owns a script runtime (or worker processes), so it stays on one thread.
pub struct Evaluator(Inner);

enum Inner {
    Mapping(CompiledMapping, Locator),
    Javascript(Box<js::Runner>),
    Python(python::Runner),
}

impl Evaluator {
    /// Why the evaluator gave up on a stuck script (the time limit and how many profiles in a row hit
    /// it); from then on it evaluates nothing. `None` while it goes on, and always for a mapping.
    pub fn gave_up(&self) -> Option<String> {
        match &self.0 {
            Inner::Mapping(..) => None,
            Inner::Javascript(r) => r.gave_up(),
            Inner::Python(r) => r.gave_up(),
        }
    }

    /// The row of one profile; `now` is the run's start time (what `now()` means in a mapping).
    pub fn eval(&mut self, profile: &Profile, now: DateTime<Utc>) -> Result<Output, RowError> {
        match &mut self.0 {
            Inner::Mapping(m, _) => m.eval(profile, now).map(Output::Row).map_err(Into::into),
            Inner::Javascript(r) => r.eval(profile),
            Inner::Python(r) => r.eval(profile),
        }
    }

    /// The rows of a batch of profiles, in order: what [`Evaluator::eval`] gives for each, computed
    /// together (Python sends the batch to its workers in one message).
    pub fn eval_batch(
        &mut self,
        profiles: &[Profile],
        now: DateTime<Utc>,
    ) -> Vec<Result<Output, RowError>> {
        match &mut self.0 {
            Inner::Python(r) => r.eval_batch(profiles),
            _ => profiles.iter().map(|p| self.eval(p, now)).collect(),
        }
    }

    /// [`Evaluator::eval_batch`] for stored documents: a mapping reads only the properties it uses
    /// straight from the text (see [`sluice_core::raw`]); scripts get the parsed profile. A document that
    /// is not a JSON object fails its own row.
    pub fn eval_raw_batch(
        &mut self,
        profiles: &[RawProfile],
        now: DateTime<Utc>,
    ) -> Vec<Result<Output, RowError>> {
        if let Inner::Mapping(m, locator) = &mut self.0 {
            return profiles
                .iter()
                .map(|p| {
                    let doc = locator.locate(p).map_err(RowError::new)?;
                    m.eval_located(&doc, now)
                        .map(Output::Row)
                        .map_err(Into::into)
                })
                .collect();
        }
        let mut good = Vec::with_capacity(profiles.len());
        let mut unreadable = Vec::with_capacity(profiles.len());
        for p in profiles {
            match p.parse() {
                Ok(p) => {
                    good.push(p);
                    unreadable.push(None);
                }
                Err(message) => unreadable.push(Some(message)),
            }
        }
        let mut rows = self.eval_batch(&good, now).into_iter();
        unreadable
            .into_iter()
            .map(|u| match u {
                None => rows.next().expect("one row per parsed profile"),
                Some(message) => Err(RowError::new(message)),
            })
            .collect()
    }
}
