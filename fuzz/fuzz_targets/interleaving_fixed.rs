//! `interleaving_fixed`: see `gpuclaim::fuzzing::Target::InterleavingFixed`.
#![no_main]

use gpuclaim::fuzzing::Target;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| Target::InterleavingFixed.run_or_panic(data));
