//! `scenario_parse`: see `gpuclaim::fuzzing::Target::ScenarioParse`.
#![no_main]

use gpuclaim::fuzzing::Target;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| Target::ScenarioParse.run_or_panic(data));
