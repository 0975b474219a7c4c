//! Subcommands of the `gpuclaim` binary, one module each.

pub mod from_fuzz;
pub mod run;
