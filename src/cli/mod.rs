//! Subcommands of the `gpuclaim` binary, one module each.

pub mod from_fuzz;
pub mod merge;
pub mod run;
pub mod simulate;
pub mod sweep;
