//! gpuclaim: a discrete-event simulator and fuzz harness for GPU allocation
//! on Azure Stack Edge Pro GPU devices, where GPU virtual machines and a
//! Kubernetes cluster compete for 1 or 2 GPUs.
//!
//! The library is one small exact model ([`model`], the rules of
//! `shared/MODEL.md`) and engines that drive it: the scenario runner
//! ([`scenario`]) and the others built on [`model::step`], among them the
//! time-driven simulator with its sweeps ([`sim`]). The allocator under
//! test is a [`Policy`]; the built-in `fixed`, `legacy` and `snapshot`
//! implement the same public trait as a policy written outside this crate.
//!
//! # A policy written outside the crate
//!
//! ```
//! use gpuclaim::{Device, Invariant, Op, Action, Policy, State, VmNames};
//! use gpuclaim::trace::run_actions;
//!
//! /// Frees a VM's GPUs but forgets to clear what the VM holds.
//! struct DoubleFree;
//!
//! impl Policy for DoubleFree {
//!     fn name(&self) -> &str {
//!         "double-free"
//!     }
//!     fn release(&self, state: &mut State, vm: usize) {
//!         state.free |= state.vms[vm].held;
//!     }
//! }
//!
//! let device = Device::new(1, &[1]).unwrap();
//! let names = VmNames::letters(1);
//! let run = run_actions(&DoubleFree, &device, &names, &[
//!     Action::begin(Op::CreateVm, 0),
//!     Action::end(Op::CreateVm, 0),
//!     Action::begin(Op::StopVm, 0),
//!     Action::end(Op::StopVm, 0),
//! ]);
//! assert!(run.fired.contains(Invariant::NoDoubleClaim));
//! assert_eq!(run.violations[0].step_index, 3);
//! assert_eq!(run.violations[0].after, "gpu0=a+free | a:stopped | kube:unconfigured");
//! ```

// The crate's own name inside it, so that the command-line modules read
// like a user's binary (`use gpuclaim::...`).
extern crate self as gpuclaim;

pub mod audit;
pub mod check;
#[cfg(feature = "cli")]
pub mod cli;
pub mod counterexample;
pub mod explore;
pub mod external;
pub mod fuzzing;
pub mod invariant;
mod local;
pub mod model;
pub mod nightly;
pub mod pack;
pub mod policy;
pub mod report;
pub mod scenario;
pub mod seed;
pub mod shrink;
pub mod trace;

pub use invariant::{Invariant, InvariantSet, Violation};
pub use model::{
    Action, Device, GpuSet, KubeState, Op, Outcome, Phase, State, StepOption, Transition, Vm,
    VmNames, VmState, step,
};
pub use policy::{Allocator, Builtin, Fixed, Legacy, Policy, Registry, Snapshot};
pub use scenario::{Scenario, ScenarioError};
pub use trace::{StepSpec, run_actions};
pub mod sim;
