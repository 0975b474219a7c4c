//! `interleaving_unmanaged_update`: see
//! `gpuclaim::fuzzing::Target::InterleavingUnmanagedUpdate`.
#![no_main]

use gpuclaim::fuzzing::Target;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| Target::InterleavingUnmanagedUpdate.run_or_panic(data));
