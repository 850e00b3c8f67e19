//! smi-mesh benchmarks. The criterion benchmarks live in `benches/benches/` (`policy`: decision,
//! split pick and route lookup; `compile`: load and compile of 10,000 resources), the memory
//! report in `src/bin/policy_memory.rs`; all of them use the one policy [`generator`]. How to run
//! them: `benches/README.md`.

#![forbid(unsafe_code)]

pub mod generator;
pub mod stats;
