//! `interleaving_updates`: see `gpuclaim::fuzzing::Target::InterleavingUpdates`.
#![no_main]

use gpuclaim::fuzzing::Target;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| Target::InterleavingUpdates.run_or_panic(data));
