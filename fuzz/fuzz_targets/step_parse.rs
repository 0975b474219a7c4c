//! `step_parse`: see `gpuclaim::fuzzing::Target::StepParse`.
#![no_main]

use gpuclaim::fuzzing::Target;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| Target::StepParse.run_or_panic(data));
