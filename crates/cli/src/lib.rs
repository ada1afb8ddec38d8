//! Library side of the `sluice` binary: what the benchmarks share with it (the sample profiles, and the
//! memory allocator).

pub mod sample;

// Runs allocate and free millions of small JSON values; mimalloc does that markedly faster than the system
// allocator and returns memory instead of keeping per-thread arenas, which keeps the resident set small.
// Without transparent huge pages (`no_thp`): with them, every page mimalloc returns and takes back is
// zeroed again as a whole 2 MiB page, which cost a run a fifth of its CPU time and ~50 MiB of memory.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
