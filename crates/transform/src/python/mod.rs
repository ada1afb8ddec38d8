//! Python transformations: checked when saved ([`check`]), run by a pool of `python3` worker processes.
//!
//! # How a profile reaches Python
//!
//! A [`Runner`] (one per pipeline run, or per preview) keeps up to [`Limits::python_workers`] worker
//! processes, started on demand: `python3 -I -S` (isolated mode: no `PYTHON*` variables, no user or site
//! packages, no current directory on the path) with an **empty environment** (only `LC_ALL=C.UTF-8`; no
//! variable of the Sluice process, so no secret, reaches a script), in `/`, running the worker program
//! embedded from `worker.py`, confined as described below. A batch of profiles goes to a worker as one JSON
//! line; the worker answers one line per profile, in order. A large batch is split among the workers, which
//! run in parallel.
//!
//! # The Python contract
//!
//! It is JavaScript's (crate documentation), in Python terms. `profile` is a `dict` made from the profile's
//! JSON: strings, `bool`, `int` (exact, any size), `float`, `None`, `dict`, `list`; datetimes are ISO 8601
//! strings in UTC (`"2024-05-13T15:30:00Z"`, which `datetime.fromisoformat` parses), dates and times ISO
//! strings, decimals **strings** with their exact digits (`Decimal(profile["amount"])` keeps them exact).
//! `transform` returns a `dict` keyed by column, or `None` to skip the profile. Besides JSON types, a
//! returned value may be a `datetime` (naive means UTC; an aware one is converted to UTC), `date`, `time`,
//! `Decimal` (exact), `UUID`, `tuple`, `set`; anything else fails the row naming the column. Integers must
//! fit 64 bits (`-2**63` to `2**64-1`, then the column's own range) and floats must be finite. Values are
//! then converted to the column types by [`sluice_core::convert::to_column`], as for mapping and
//! JavaScript. Inside a `dict` or `list` written to a JSON column, `datetime`, `date` and `time` become ISO
//! strings and `Decimal` a string of its exact digits.
//!
//! # Limits
//!
//! - **Time**: the worker measures each call of `transform` and fails the profile when it took longer than
//!   [`Limits::time_per_profile`]. A call that does not return at all is stopped from outside: a worker
//!   that sends nothing for twice the limit plus 100 ms is killed (SIGKILL) and replaced. The top-level code
//!   of the script gets ten times the limit.
//! - **Memory**: the worker's address space is limited (`RLIMIT_AS`) to [`Limits::memory_bytes`] plus 64 MiB
//!   for the interpreter itself; a script that allocates beyond it gets a `MemoryError`, which fails its
//!   profile with a message naming the limit (or, if the interpreter cannot even raise it, the worker dies
//!   and is handled as a crash).
//! - **Output**: a row whose JSON form is longer than [`Limits::output_bytes`] fails its profile naming the
//!   limit (the worker checks its own rows). Sluice reads the worker's lines with a bounded reader too: a
//!   longer line (a script writing to the protocol itself) is never held in memory, fails the profile at
//!   hand and the worker is replaced. Error messages are cut to 2,000 characters.
//! - **Crashes**: a worker that exits, is killed or writes something that is not the protocol is
//!   replaced. Results already received are kept; the profiles it had not answered are sent again to a
//!   fresh worker in *careful* mode (it reports every profile as soon as it is done), so that the one
//!   profile that kills the worker again is identified and fails alone ("the Python worker stopped …"),
//!   and the profiles after it go on. A script that only sometimes crashes may cost a few retries, never a
//!   wrong result. After ten profiles in a row that each stopped a worker, the rest of that batch fails
//!   at once ("not transformed: …") rather than costing a worker start per profile.
//! - **Shutdown**: after [`crate::abandon_scripts`], workers are no longer waited for and every profile
//!   left fails at once. The same holds for one runner once its stop flag is set
//!   ([`crate::Transform::evaluator_with_stop`]), and once [`crate::TIMEOUTS_IN_A_ROW`] profiles in a
//!   row ran past the time limit (measured by the worker, or a worker stopped for silence): the script is
//!   taken to be stuck, its workers are stopped and the rest of the batch is not evaluated.
//!
//! # Isolation
//!
//! CPython has no sandbox, so the worker is confined from the outside, by the operating system, before the
//! interpreter runs (`sandbox.rs`; `SECURITY.md` at the repository root says what each layer stops and
//! what none of them stops):
//!
//! 1. When Sluice runs as root, the worker runs as `SLUICE_SCRIPT_USER` (default `nobody`) with that
//!    user's primary group only, so it cannot read the data directory (0700). Running as another user,
//!    Sluice cannot switch; it says so once in its log.
//! 2. `PR_SET_NO_NEW_PRIVS`, then **Landlock**: it may read only the Python installation and the system
//!    libraries, write or create nothing, use no TCP port, signal no process outside itself. A kernel
//!    without Landlock is said once in the log.
//! 3. A **seccomp** filter (x86-64) refuses threads, processes, program execution, sockets, pipes, file
//!    creation and changes, writes other than to its stdin/stdout/stderr, signal handlers and signals.
//! 4. Resource limits: address space, `RLIMIT_NPROC` 0, `RLIMIT_FSIZE` 0, no core dump; the worker dies
//!    with Sluice. Before the user's code runs, the worker loads the modules scripts may import and sets
//!    `RLIMIT_NOFILE` to 3.
//!
//! Inside, the worker keeps its own guards, which make refusals readable rather than being the wall:
//!
//! - an **audit hook** (`sys.addaudithook`, which cannot be removed from Python; adding another is
//!   refused) installed before the user's code is executed refuses *every* audited event except
//!   `time.sleep`: `open`, `import` of a module not already loaded, `exec`/`compile`, `os.system`,
//!   `os.fork`/`exec*`/`posix_spawn`/`kill`, `socket.*`, `ctypes.*`, `sys._getframe`, `gc.get_objects`,
//!   reading `__code__` or frame attributes (`tb_frame`, `gi_frame`) and more. It never trusts
//!   wholesale: to find the script's line in a traceback, the worker may read the frame of one traceback
//!   object at a time, in its own thread, and nothing of the script's runs during that walk;
//! - the script's globals get a copy of the builtins without `open`, `eval`, `exec`, `compile`, `input`,
//!   `breakpoint`, `help` and `exit`, and an `__import__` that only returns modules of an allow-list
//!   (`datetime`, `decimal`, `math`, `re`, `json`, `random`, `hashlib`, … — see `worker.py`), so `import os`
//!   fails with a clear message.
//!
//! The allow-list is not a wall: loaded modules reference others (`random._os` is `os`, and walking
//! `().__class__.__base__.__subclasses__()` reaches loaded classes). Through them a script can call what is
//! not audited: write to its own stdout (its own pipeline's answers only; an oversized or malformed line
//! fails the profile), `os.stat` a path it may reach (metadata; not inside the data directory when the
//! worker runs as another user), or end its own worker (`os._exit`, a stack overflow) — a crash, handled
//! as above. The save-time check (`check`) parses the source in the same confinement.

mod check;
mod pool;
mod sandbox;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use sluice_core::{FieldErrors, TableDescription};

pub use check::{check, check_with, DEFAULT_INTERPRETER};
pub use pool::Runner;
pub use sandbox::{DEFAULT_USER, USER_VAR};

use crate::columns::Shape;
use crate::Limits;

/// A checked Python transformation, with the columns it writes.
#[derive(Debug, Clone)]
pub struct Script {
    source: Arc<str>,
    shape: Arc<Shape>,
    limits: Limits,
    interpreter: Arc<str>,
}

impl Script {
    /// Checks the source with `python3` (see [`check`]) without running it.
    pub fn compile(
        source: &str,
        key: &str,
        table: &TableDescription,
        limits: Limits,
    ) -> Result<Script, FieldErrors> {
        Script::compile_with(DEFAULT_INTERPRETER, source, key, table, limits)
    }

    /// [`Script::compile`] with a given interpreter (a name looked up on `PATH`, or a path).
    pub fn compile_with(
        interpreter: &str,
        source: &str,
        key: &str,
        table: &TableDescription,
        limits: Limits,
    ) -> Result<Script, FieldErrors> {
        let checked = check::checked(interpreter, source, key, table)?;
        Ok(Script {
            source: source.into(),
            shape: Arc::new(Shape::new(
                checked.columns,
                checked.targets,
                checked.declared,
                table,
            )),
            limits,
            interpreter: interpreter.into(),
        })
    }

    /// The columns every row has, in order.
    pub fn columns(&self) -> &[String] {
        &self.shape.columns
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    pub(crate) fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// A runner with one worker started (so that a script whose top-level code fails is reported now).
    pub fn runner(&self) -> Result<Runner, String> {
        self.runner_with_stop(Arc::new(AtomicBool::new(false)))
    }

    /// [`Script::runner`] that stops waiting for its workers, and evaluates no later profile, once `stop`
    /// is set.
    pub fn runner_with_stop(&self, stop: Arc<AtomicBool>) -> Result<Runner, String> {
        Runner::new(self.clone(), stop)
    }
}
