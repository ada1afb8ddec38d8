//! Library side of the `sluice` binary: what the benchmarks share with it (the sample profiles).

pub mod sample;
