//! Library side of the `sluice` binary: what the benchmarks share with it (the sample profiles, and the
//! memory allocator).

pub mod sample;

// Runs allocate and free millions of small JSON values; mimalloc does that markedly faster than the system
// allocator and returns memory instead of keeping per-thread arenas, which keeps the resident set small.
// Without transparent huge pages (`no_thp`): with them, every page mimalloc returns and takes back is
// zeroed again as a whole 2 MiB page, which cost a run a fifth of its CPU time and ~50 MiB of memory.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's option `purge_delay` (its position in `mi_option_t` of mimalloc 3).
const MI_OPTION_PURGE_DELAY: std::ffi::c_int = 15;

extern "C" {
    fn mi_option_set_default(option: std::ffi::c_int, value: std::ffi::c_long);
}

/// Sets the allocator's defaults for a server, before the first allocation of any thread; `MIMALLOC_*`
/// variables still override them.
///
/// mimalloc 3 keeps freed pages for a second before giving them back to the system. A run frees and
/// allocates a batch's worth of pages every few milliseconds, so during an export the process held
/// about a second of that churn on top of what was live: 314–326 MiB at the peak of a first export of
/// 1,000,000 profiles, against 283–298 MiB when pages go back after `PURGE_DELAY_MS` (see
/// `BENCHMARKS.md`, "Ten million profiles").
pub fn tune_allocator() {
    // SAFETY: a documented mimalloc call taking an option index and a value; it only records the value.
    unsafe { mi_option_set_default(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS) }
}

/// How long freed memory stays with the allocator before it goes back to the system.
const PURGE_DELAY_MS: std::ffi::c_long = 100;
