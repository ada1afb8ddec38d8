//! Python transformations: checked when saved ([`check`]), run by a pool of `python3` worker processes.
//!
//! # How a profile reaches Python
//!
//! A [`Runner`] (one per pipeline run, or per preview) keeps up to [`Limits::python_workers`] worker
//! processes, started on demand: `python3 -I -S` (isolated mode: no `PYTHON*` variables, no user or site
//! packages, no current directory on the path) with an **empty environment** (only `LC_ALL=C.UTF-8`; no
//! variable of the Sluice process, so no secret, reaches a script), in `/`, running the worker program
//! embedded from `worker.py`. A batch of profiles goes to a worker as one JSON line; the worker answers one
//! line per profile, in order. A large batch is split among the workers, which run in parallel.
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
//! - **Crashes**: a worker that exits, is killed or writes something that is not the protocol is
//!   replaced. Results already received are kept; the profiles it had not answered are sent again to a
//!   fresh worker in *careful* mode (it reports every profile as soon as it is done), so that the one
//!   profile that kills the worker again is identified and fails alone ("the Python worker stopped …"),
//!   and the profiles after it go on. A script that only sometimes crashes may cost a few retries, never a
//!   wrong result. After ten profiles in a row that each stopped a worker, the rest of that batch fails
//!   at once ("not transformed: …") rather than costing a worker start per profile.
//!
//! # Isolation, and its limits
//!
//! CPython has no sandbox, so this one is layered, and each layer is narrow and checkable:
//!
//! 1. Process limits set before `exec` (`pre_exec`): `RLIMIT_AS` (above), `RLIMIT_NPROC` 0 (no fork, no
//!    thread; not enforced when Sluice runs as root), `RLIMIT_FSIZE` 0 (no file can be written),
//!    `RLIMIT_CORE` 0, and on Linux the worker is killed when Sluice exits. Before the user's code runs, the
//!    worker loads the modules scripts may import and sets `RLIMIT_NOFILE` to 3: no file, socket or pipe
//!    can be opened at all, whatever the code does.
//! 2. An **audit hook** (`sys.addaudithook`, which cannot be removed from Python) installed before the
//!    user's code is executed refuses *every* audited event except `time.sleep`: `open`, `import` of a
//!    module not already loaded, `exec`/`compile` (so `eval`/`exec` tricks), `os.system`, `subprocess`,
//!    `os.fork`/`exec*`/`posix_spawn`/`kill`, `socket.*`, `ctypes.*`, `sys._getframe`, reading
//!    `__code__` or frame attributes (`tb_frame`, `gi_frame`) and more.
//! 3. The script's globals get a copy of the builtins without `open`, `eval`, `exec`, `compile`, `input`,
//!    `breakpoint`, `help` and `exit`, and an `__import__` that only returns modules of an allow-list
//!    (`datetime`, `decimal`, `math`, `re`, `json`, `random`, `hashlib`, … — see `worker.py`), so `import os`
//!    fails with a clear message.
//!
//! What this does **not** stop, said plainly: the allow-list is not a wall, since loaded modules reference
//! others (`random._os` is `os`, and walking `().__class__.__base__.__subclasses__()` reaches loaded
//! classes). Through them a script can call what is *not* audited: read or write its own stdin/stdout
//! (its own pipeline's data only), `os.stat` a path (metadata only: no open), or end its own worker
//! (`os._exit`, a stack overflow) — which is a crash, handled as above. It cannot open files or sockets,
//! start processes or read Sluice's environment. A memory-safety bug in CPython itself, or in one of the
//! allowed C modules, is outside what these layers can stop; who may save a Python transformation is
//! therefore trusted like someone who may configure a destination. JavaScript, which runs in an engine
//! with no file, network or process access at all, is the stronger isolation when that matters.

mod check;
mod pool;
mod sandbox;

use std::sync::Arc;

use sluice_core::{FieldErrors, TableDescription};

pub use check::{check, check_with, DEFAULT_INTERPRETER};
pub use pool::Runner;

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
        Runner::new(self.clone())
    }
}
