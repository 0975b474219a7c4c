//! gpuclaim: a discrete-event simulator and fuzz harness for GPU allocation
//! on Azure Stack Edge Pro GPU devices, where GPU virtual machines and a
//! Kubernetes cluster compete for 1 or 2 GPUs.
//!
//! The library is one small exact model ([`model`], the rules of
//! `shared/MODEL.md`) and engines that drive it: the scenario runner
//! ([`scenario`]), walks and campaigns ([`explore`]), the exhaustive
//! checker ([`check`]), the shrinker ([`shrink`]), recorded histories
//! ([`audit`]), the fuzz targets ([`fuzzing`]) and the time-driven
//! simulator with its sweeps ([`sim`]), all built on [`model::step`]. The
//! allocator under test is an [`Allocator`]: it is told of every action
//! the lifecycle allows, owns the GPU sets and may keep state of its own.
//! The built-in `fixed`, `legacy` and `snapshot` implement the same public
//! trait as an allocator written outside this crate, and an allocator in
//! another process runs through [`external`] (the line protocol of
//! `docs/allocator-protocol.md`). With the `cli` feature (the default),
//! [`cli::main_with`] is the whole `gpuclaim` program with a registry of
//! your own allocators.
//!
//! # An allocator written outside the crate
//!
//! ```
//! use gpuclaim::{Action, Allocator, Device, Invariant, Op, Outcome, Phase, State, VmNames};
//! use gpuclaim::policy::table;
//! use gpuclaim::trace::run_actions;
//!
//! /// Frees a VM's GPUs at a deallocating stop but forgets to clear what
//! /// the VM holds.
//! struct DoubleFree;
//!
//! impl Allocator for DoubleFree {
//!     fn name(&self) -> &str {
//!         "double-free"
//!     }
//!     fn apply(&self, _device: &Device, state: &mut State, action: Action) -> Outcome {
//!         let vm = usize::from(action.vm);
//!         if (action.phase, action.op) == (Phase::End, Op::StopVm) {
//!             state.free |= state.vms[vm].held; // held[vm] is left as it was
//!             return Outcome::Ok;
//!         }
//!         table(state, action)
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
//!
//! A version-1 [`Policy`] (hooks only where GPUs move) is an [`Allocator`]
//! as it stands; see [`policy`].

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
pub use policy::{Allocator, Builtin, Fixed, Legacy, Policy, Registry, Snapshot, UnmanagedUpdate};
pub use scenario::{Scenario, ScenarioError};
pub use trace::{StepSpec, run_actions};
pub mod sim;
