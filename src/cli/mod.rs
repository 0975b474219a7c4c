//! Subcommands of the `gpuclaim` binary, one module each.

pub mod nightly;
pub mod run;
