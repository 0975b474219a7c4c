//! `interleaving_legacy`: see `gpuclaim::fuzzing::Target::InterleavingLegacy`.
#![no_main]

use gpuclaim::fuzzing::Target;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| Target::InterleavingLegacy.run_or_panic(data));
