//! Subcommands of the `gpuclaim` binary, one module each.

pub mod check;
pub mod explore;
pub mod from_fuzz;
pub mod merge;
pub mod nightly;
pub mod replay;
pub mod run;
pub mod simulate;
pub mod sweep;
