//! Library side of the `sluice` binary: what the benchmarks share with it (the sample profiles, and the
//! memory allocator).

pub mod sample;

// Runs allocate and free millions of small JSON values; mimalloc does that markedly faster than the system
// allocator and returns memory instead of keeping per-thread arenas, which keeps the resident set small.
// Without transparent huge pages (`no_thp`): with them, every page mimalloc returns and takes back is
// zeroed again as a whole 2 MiB page, which cost a run a fifth of its CPU time and ~50 MiB of memory.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

extern "C" {
    // mimalloc's own collection (`mimalloc.h`), linked in with the allocator above; the `mimalloc`
    // crate declares it only with its `extended` feature, which would add a dependency for one line.
    fn mi_collect(force: bool);
}

/// Gives back to the system the freed memory whose purge delay has passed.
///
/// mimalloc returns a freed page a second after it was freed (its purge delay), but only when some
/// thread next calls into it: after a run, the threads that freed its rows are asleep, and the server
/// kept 150–270 MiB it no longer used until the next request (BENCHMARKS.md, "Ten million profiles").
/// `sluice serve` calls this every second from a thread of its own; without `force` it gives back
/// only what the allocator would have given back by itself, so a busy run pays nothing for it.
pub fn release_freed_memory() {
    // SAFETY: `mi_collect` takes no pointers and may be called from any thread at any time.
    unsafe { mi_collect(false) }
}
