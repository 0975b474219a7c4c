//! `interleaving_snapshot`: see `gpuclaim::fuzzing::Target::InterleavingSnapshot`.
#![no_main]

use gpuclaim::fuzzing::Target;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| Target::InterleavingSnapshot.run_or_panic(data));
