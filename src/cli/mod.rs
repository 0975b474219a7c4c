//! Subcommands of the `gpuclaim` binary, one module each.

pub mod merge;
pub mod nightly;
pub mod run;
pub mod simulate;
pub mod sweep;
