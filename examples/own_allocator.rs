//! A binary of your own: every gpuclaim command, with your allocator
//! registered next to the built-in ones.
//!
//! ```sh
//! cargo run --release --example own_allocator -- check --gpus 2 --vms 3 --policy sticky-provisioned
//! cargo run --release --example own_allocator -- nightly --config my-nightly.toml
//! ```
//!
//! In a crate of your own, depend on gpuclaim (with its default `cli`
//! feature) and write the same `main`.

use std::process::ExitCode;
use std::sync::Arc;

use gpuclaim::model::{Action, Device, Op, Outcome, Phase, State, VmState};
use gpuclaim::policy::table;
use gpuclaim::{Allocator, Registry};

/// `fixed`, except that a provisioned stop hands its GPUs back to the free
/// pool at its end step (a plausible bug: "provisioned" read as "stopped").
/// `holds-match-state` catches it.
struct StickyProvisioned;

impl Allocator for StickyProvisioned {
    fn name(&self) -> &str {
        "sticky-provisioned"
    }
    fn apply(&self, _device: &Device, state: &mut State, action: Action) -> Outcome {
        let vm = usize::from(action.vm);
        if (action.phase, action.op) == (Phase::End, Op::StopVm)
            && state.vms[vm].life == (VmState::Stopping { provisioned: true })
        {
            state.release_to_free(vm);
            return Outcome::Ok;
        }
        table(state, action)
    }
    fn symmetric(&self) -> bool {
        true
    }
}

fn main() -> ExitCode {
    let mut registry = Registry::builtin();
    registry.register(Arc::new(StickyProvisioned));
    gpuclaim::cli::main_with(registry)
}
