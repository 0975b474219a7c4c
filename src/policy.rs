//! Allocators: the allocator under test (MODEL.md "Allocators (version
//! 2)"). The model ([`crate::model::step`]) owns the lifecycle rules and
//! tells the allocator of every action they allow; the allocator owns the
//! GPU sets, its own state ([`State::memo`]) and the outcome of a claim.
//! The built-in `fixed`, `legacy` and `snapshot` implement [`Allocator`]
//! like any allocator written outside the crate; an allocator in another
//! process speaks the line protocol of `docs/allocator-protocol.md`
//! ([`crate::external`]). There is no other way in.
//!
//! # Version-1 policies
//!
//! A version-1 [`Policy`] (hooks only where GPUs move: `claim`, `release`,
//! `begin_configure`, `end_configure`, `takeover_enabled`, `takeover`) is
//! an [`Allocator`] as it stands: a blanket implementation calls its hooks
//! at the actions where version 1 called them and does nothing at the
//! others. `State::snapshot` is now [`State::memo`] (the allocator's own
//! state; a version-1 policy may keep up to `G` bits there, as `snapshot`
//! did); the model no longer clears it at the end of `configure-kube` (the
//! adapter does, as version 1's model did).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use crate::model::{Action, Device, KubeState, Op, Outcome, Phase, State, VmState};

/// The allocator under test (MODEL.md "Allocators (version 2)").
///
/// Every model action that the lifecycle allows reaches [`Allocator::apply`]
/// (a rejected request changes nothing and is not passed on). The
/// allocator changes the sets (`free`, `held[vm]`, `held[kube]`) and its
/// own state [`State::memo`]; the model then moves the lifecycle, and the
/// invariants judge the sets that result.
///
/// ```
/// use gpuclaim::{Action, Allocator, Device, Invariant, Op, Outcome, Phase, State, VmState};
/// use gpuclaim::policy::table;
///
/// /// The begin of `remove-vm` hands a failed VM's "GPU" back to `free`.
/// struct FreesOnFailedRemove;
///
/// impl Allocator for FreesOnFailedRemove {
///     fn name(&self) -> &str {
///         "frees-on-failed-remove"
///     }
///     fn apply(&self, device: &Device, state: &mut State, action: Action) -> Outcome {
///         let vm = usize::from(action.vm);
///         if (action.phase, action.op) == (Phase::Begin, Op::RemoveVm)
///             && state.vms[vm].life == VmState::Failed
///         {
///             state.free |= 1; // GPU 0, whoever holds it
///         }
///         table(state, action)
///     }
/// }
/// ```
pub trait Allocator: Send + Sync {
    /// The name used in scenario files, CSV columns and flags.
    fn name(&self) -> &str;

    /// One model action the lifecycle allows: a begin or end step of a
    /// request (VM `action.vm`, options `action.option`) or an internal
    /// event. `state` is the state before the action: every VM's and
    /// Kubernetes' lifecycle as it was (a VM in `stopping` says which kind
    /// of stop), and `state.vms[vm].size` the GPUs this request is for (a
    /// create's `gpus=N` already applied). Change the sets and
    /// [`State::memo`] as the allocator does; the model then sets the
    /// lifecycle.
    ///
    /// The returned outcome decides a claim (the begin of `create-vm`, and
    /// of `start-vm` from `stopped`): [`Outcome::Ok`], or
    /// [`Outcome::NoGpu`] (the create fails, the start leaves the VM
    /// `stopped`; whatever the allocator changed stays). At every other
    /// action the outcome is `ok` whatever is returned.
    ///
    /// Default: [`table`], MODEL.md's operations table (`fixed`).
    fn apply(&self, _device: &Device, state: &mut State, action: Action) -> Outcome {
        table(state, action)
    }

    /// Whether the internal event `kube-takeover` is enabled in `state`.
    /// Default: the allocator has no such event.
    fn takeover_enabled(&self, _device: &Device, _state: &State) -> bool {
        false
    }

    /// How many low bits of [`State::memo`] the allocator's own state
    /// takes on `device` (0 to 32; default 0, no state of its own). They
    /// are part of a state's identity: the checker's keys keep exactly
    /// these bits, and a state with a memo bit above them is not one its
    /// key keeps (the checker then judges every transition, as for a set
    /// holding a GPU the device lacks).
    fn memo_bits(&self, _device: &Device) -> u32 {
        0
    }

    /// Whether the allocator is slot-local: an action of slot `vm` reads
    /// and changes only `free`, Kubernetes' parts (its state, `held[kube]`,
    /// the memo) and slot `vm`, and Kubernetes' actions and events only
    /// `free` and Kubernetes' parts. Every built-in allocator is. (Slots
    /// may still behave differently by number.) The exhaustive checker
    /// then takes each step once per slot and combination of those parts
    /// and reuses its result for every state that has them, instead of
    /// stepping every state. When a step it takes changes another slot, or
    /// makes a state its key does not keep, or when the table disagrees
    /// with stepping on a sample of reachable states (the first 1,024 in
    /// breadth-first order and 16 random walks of 128 steps), it steps
    /// every state instead. An allocator that says it is slot-local while
    /// it reads other slots in a way that sample never shows is checked
    /// wrongly, and nothing tells. Default: false (the checker steps every
    /// state).
    fn slot_local(&self) -> bool {
        false
    }

    /// Whether an engine can step from any state the allocator was in
    /// before (the exhaustive checker does; walks only go forwards). True
    /// for every allocator whose state is all in [`State`]; an allocator in
    /// another process without `export` says false, and `check` refuses it.
    fn restores(&self) -> bool {
        true
    }

    /// Whether VM slots of the same size are interchangeable: what the
    /// allocator does never depends on a slot's number. `check --symmetry`
    /// needs it and refuses an allocator that does not declare it. Every
    /// built-in allocator is. Default: false.
    fn symmetric(&self) -> bool {
        false
    }
}

/// A shared allocator (as a [`Registry`] hands them out) is one.
impl<A: Allocator + ?Sized> Allocator for Arc<A> {
    fn name(&self) -> &str {
        (**self).name()
    }
    #[inline]
    fn apply(&self, device: &Device, state: &mut State, action: Action) -> Outcome {
        (**self).apply(device, state, action)
    }
    #[inline]
    fn takeover_enabled(&self, device: &Device, state: &State) -> bool {
        (**self).takeover_enabled(device, state)
    }
    fn memo_bits(&self, device: &Device) -> u32 {
        (**self).memo_bits(device)
    }
    fn slot_local(&self) -> bool {
        (**self).slot_local()
    }
    fn symmetric(&self) -> bool {
        (**self).symmetric()
    }
    fn restores(&self) -> bool {
        (**self).restores()
    }
}

/// MODEL.md's operations table, what `fixed` does at each action:
/// - begin of `create-vm`, and of `start-vm` from `stopped`: take the `s`
///   lowest-numbered free GPUs into `held[vm]`, or `no-gpu` (nothing moves)
///   when too few are free;
/// - end of a deallocating `stop-vm` and of `remove-vm`: move `held[vm]` to
///   `free`;
/// - end of `configure-kube` and the event `kube-takeover`: Kubernetes
///   takes every free GPU;
/// - every other action: nothing moves.
#[inline(always)]
pub fn table(state: &mut State, action: Action) -> Outcome {
    let vm = usize::from(action.vm);
    match (action.phase, action.op) {
        (Phase::Begin, Op::CreateVm) => claim(state, vm),
        (Phase::Begin, Op::StartVm) if state.vms[vm].life == VmState::Stopped => claim(state, vm),
        (Phase::End, Op::StopVm)
            if state.vms[vm].life == (VmState::Stopping { provisioned: false }) =>
        {
            state.release_to_free(vm);
            Outcome::Ok
        }
        (Phase::End, Op::RemoveVm) => {
            state.release_to_free(vm);
            Outcome::Ok
        }
        (Phase::End, Op::ConfigureKube) | (Phase::Event, Op::KubeTakeover) => {
            state.kube_takes_free();
            Outcome::Ok
        }
        _ => Outcome::Ok,
    }
}

#[inline(always)]
fn claim(state: &mut State, vm: usize) -> Outcome {
    let size = state.vms[vm].size;
    if state.claim_lowest(vm, size) {
        Outcome::Ok
    } else {
        Outcome::NoGpu
    }
}

/// A version-1 policy: hooks only where GPUs move. Every `Policy` is an
/// [`Allocator`] (see the module documentation); new allocators implement
/// [`Allocator`] directly.
///
/// ```
/// use gpuclaim::{Policy, State};
///
/// /// Forgets to clear `held[vm]` when a VM releases its GPUs.
/// struct Forgetful;
///
/// impl Policy for Forgetful {
///     fn name(&self) -> &str {
///         "forgetful"
///     }
///     fn release(&self, state: &mut State, vm: usize) {
///         state.free |= state.vms[vm].held; // held[vm] is left as it was
///     }
/// }
/// ```
pub trait Policy: Send + Sync {
    /// The name used in scenario files, CSV columns and flags.
    fn name(&self) -> &str;

    /// Begin of `create-vm`, or `start-vm` from `stopped`: give `vm` `size`
    /// GPUs. Returns false for the `no-gpu` outcome. Default: take the
    /// lowest-numbered free GPUs, or nothing when too few are free.
    fn claim(&self, state: &mut State, vm: usize, size: u8) -> bool {
        state.claim_lowest(vm, size)
    }

    /// End of a deallocating `stop-vm` or of `remove-vm`. Default: move
    /// `held[vm]` to `free`.
    fn release(&self, state: &mut State, vm: usize) {
        state.release_to_free(vm);
    }

    /// Begin of `configure-kube`. Default: nothing moves.
    fn begin_configure(&self, _state: &mut State) {}

    /// End of `configure-kube`. Default: move every free GPU to `held[kube]`.
    fn end_configure(&self, state: &mut State) {
        state.kube_takes_free();
    }

    /// Whether the internal event `kube-takeover` is enabled. Default: the
    /// policy has no such event.
    fn takeover_enabled(&self, _state: &State) -> bool {
        false
    }

    /// The internal event `kube-takeover`; called only when enabled.
    fn takeover(&self, _state: &mut State) {}

    /// [`Allocator::slot_local`]. Default: false.
    fn slot_local(&self) -> bool {
        false
    }
}

/// Every version-1 policy is an allocator: its hooks are called where
/// version 1's model called them, and nothing happens at the other actions.
/// Its memo is the `G` bits version 1's `snapshot` had, cleared at the end
/// of `configure-kube`; its slots are declared interchangeable, as version
/// 1's checker assumed under `--symmetry`.
impl<P: Policy + ?Sized> Allocator for P {
    fn name(&self) -> &str {
        Policy::name(self)
    }
    fn apply(&self, _device: &Device, state: &mut State, action: Action) -> Outcome {
        let vm = usize::from(action.vm);
        if crate::model::is_claim(state, action) {
            let size = state.vms[vm].size;
            return if self.claim(state, vm, size) {
                Outcome::Ok
            } else {
                Outcome::NoGpu
            };
        }
        match (action.phase, action.op) {
            (Phase::End, Op::StopVm)
                if state.vms[vm].life == (VmState::Stopping { provisioned: false }) =>
            {
                self.release(state, vm)
            }
            (Phase::End, Op::RemoveVm) => self.release(state, vm),
            (Phase::Begin, Op::ConfigureKube) => self.begin_configure(state),
            (Phase::End, Op::ConfigureKube) => {
                self.end_configure(state);
                state.memo = 0;
            }
            (Phase::Event, Op::KubeTakeover) => self.takeover(state),
            _ => {}
        }
        Outcome::Ok
    }
    fn takeover_enabled(&self, _device: &Device, state: &State) -> bool {
        Policy::takeover_enabled(self, state)
    }
    fn memo_bits(&self, device: &Device) -> u32 {
        u32::from(device.gpus())
    }
    fn slot_local(&self) -> bool {
        Policy::slot_local(self)
    }
    fn symmetric(&self) -> bool {
        true
    }
}

/// `fixed`: exactly MODEL.md's operations table ([`table`]); today's
/// documented behaviour.
#[derive(Clone, Copy, Debug, Default)]
pub struct Fixed;

impl Allocator for Fixed {
    fn name(&self) -> &str {
        "fixed"
    }
    #[inline(always)]
    fn apply(&self, _device: &Device, state: &mut State, action: Action) -> Outcome {
        table(state, action)
    }
    fn slot_local(&self) -> bool {
        true
    }
    fn symmetric(&self) -> bool {
        true
    }
}

/// `legacy`: the table plus `kube-takeover`, enabled whenever Kubernetes is
/// configured and `free` is not empty: Kubernetes takes every free GPU (the
/// pre-fix defect of release notes 2103).
#[derive(Clone, Copy, Debug, Default)]
pub struct Legacy;

impl Allocator for Legacy {
    fn name(&self) -> &str {
        "legacy"
    }
    #[inline(always)]
    fn apply(&self, _device: &Device, state: &mut State, action: Action) -> Outcome {
        table(state, action)
    }
    #[inline(always)]
    fn takeover_enabled(&self, _device: &Device, state: &State) -> bool {
        state.kube == KubeState::Configured && state.free != 0
    }
    fn slot_local(&self) -> bool {
        true
    }
    fn symmetric(&self) -> bool {
        true
    }
}

/// `snapshot`: a deliberately racy allocator. `configure-kube` copies `free`
/// into its memo at its begin step and, at its end step, moves that copy to
/// `held[kube]` without looking again (and forgets it).
#[derive(Clone, Copy, Debug, Default)]
pub struct Snapshot;

impl Allocator for Snapshot {
    fn name(&self) -> &str {
        "snapshot"
    }
    #[inline(always)]
    fn apply(&self, _device: &Device, state: &mut State, action: Action) -> Outcome {
        match (action.phase, action.op) {
            (Phase::Begin, Op::ConfigureKube) => {
                state.memo = u32::from(state.free);
                Outcome::Ok
            }
            (Phase::End, Op::ConfigureKube) => {
                let copy = state.memo as u8;
                state.kube_held |= copy;
                state.free &= !copy;
                state.memo = 0;
                Outcome::Ok
            }
            _ => table(state, action),
        }
    }
    /// The copy of `free`: one bit per GPU.
    fn memo_bits(&self, device: &Device) -> u32 {
        u32::from(device.gpus())
    }
    fn slot_local(&self) -> bool {
        true
    }
    fn symmetric(&self) -> bool {
        true
    }
}

/// `unmanaged-update` (version 2): `fixed`, except in the update flow, as
/// before release 2103 ("GPU VMs were not managed in the update flow"): at
/// the update's begin step every VM that will reboot hands its GPUs back to
/// `free`; at its end step Kubernetes, if it was configured, first takes
/// every free GPU, then each rebooting VM, lowest slot first, claims its
/// GPUs as a start would (it comes back `running` if it gets them,
/// `stopped` if not). Kept so that the checkers prove they catch
/// update-time steals: `holds-match-state`, `no-steal-after-dealloc` and
/// `update-restarts-vms`.
#[derive(Clone, Copy, Debug, Default)]
pub struct UnmanagedUpdate;

impl Allocator for UnmanagedUpdate {
    fn name(&self) -> &str {
        "unmanaged-update"
    }
    #[inline(always)]
    fn apply(&self, device: &Device, state: &mut State, action: Action) -> Outcome {
        match (action.phase, action.op) {
            (Phase::Begin, Op::UpdateDevice) => {
                for vm in 0..device.vms() {
                    if matches!(
                        state.vms[vm].life,
                        VmState::Running | VmState::StoppedProvisioned
                    ) {
                        state.release_to_free(vm);
                    }
                }
                Outcome::Ok
            }
            (Phase::End, Op::UpdateDevice) => {
                if state.kube == KubeState::Rebooting {
                    state.kube_takes_free();
                }
                for vm in 0..device.vms() {
                    if state.vms[vm].life == VmState::Rebooting {
                        let size = state.vms[vm].size;
                        // A VM that gets nothing comes back stopped.
                        state.claim_lowest(vm, size);
                    }
                }
                Outcome::Ok
            }
            _ => table(state, action),
        }
    }
    fn slot_local(&self) -> bool {
        true
    }
    fn symmetric(&self) -> bool {
        true
    }
}

/// The built-in allocators as one `Copy` value, for engines that want
/// static dispatch on an allocator chosen by name at run time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Builtin {
    Fixed,
    Legacy,
    Snapshot,
    UnmanagedUpdate,
}

impl Builtin {
    pub const ALL: [Builtin; 4] = [
        Builtin::Fixed,
        Builtin::Legacy,
        Builtin::Snapshot,
        Builtin::UnmanagedUpdate,
    ];
    pub fn from_name(name: &str) -> Option<Builtin> {
        Builtin::ALL.into_iter().find(|p| p.name() == name)
    }
}

impl fmt::Display for Builtin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Allocator for Builtin {
    fn name(&self) -> &str {
        match self {
            Builtin::Fixed => Fixed.name(),
            Builtin::Legacy => Legacy.name(),
            Builtin::Snapshot => Snapshot.name(),
            Builtin::UnmanagedUpdate => UnmanagedUpdate.name(),
        }
    }
    #[inline(always)]
    fn apply(&self, device: &Device, state: &mut State, action: Action) -> Outcome {
        match self {
            Builtin::Fixed => Fixed.apply(device, state, action),
            Builtin::Legacy => Legacy.apply(device, state, action),
            Builtin::Snapshot => Snapshot.apply(device, state, action),
            Builtin::UnmanagedUpdate => UnmanagedUpdate.apply(device, state, action),
        }
    }
    #[inline]
    fn takeover_enabled(&self, device: &Device, state: &State) -> bool {
        match self {
            Builtin::Fixed => Fixed.takeover_enabled(device, state),
            Builtin::Legacy => Legacy.takeover_enabled(device, state),
            Builtin::Snapshot => Snapshot.takeover_enabled(device, state),
            Builtin::UnmanagedUpdate => UnmanagedUpdate.takeover_enabled(device, state),
        }
    }
    fn memo_bits(&self, device: &Device) -> u32 {
        match self {
            Builtin::Fixed => Fixed.memo_bits(device),
            Builtin::Legacy => Legacy.memo_bits(device),
            Builtin::Snapshot => Snapshot.memo_bits(device),
            Builtin::UnmanagedUpdate => UnmanagedUpdate.memo_bits(device),
        }
    }
    fn slot_local(&self) -> bool {
        match self {
            Builtin::Fixed => Fixed.slot_local(),
            Builtin::Legacy => Legacy.slot_local(),
            Builtin::Snapshot => Snapshot.slot_local(),
            Builtin::UnmanagedUpdate => UnmanagedUpdate.slot_local(),
        }
    }
    fn symmetric(&self) -> bool {
        match self {
            Builtin::Fixed => Fixed.symmetric(),
            Builtin::Legacy => Legacy.symmetric(),
            Builtin::Snapshot => Snapshot.symmetric(),
            Builtin::UnmanagedUpdate => UnmanagedUpdate.symmetric(),
        }
    }
}

/// Allocators by name: the built-in ones, any registered by a crate, and
/// external allocators from an allocators file ([`crate::external`]).
/// Scenario files and engines look them up here.
#[derive(Clone)]
pub struct Registry {
    policies: BTreeMap<String, Arc<dyn Allocator>>,
    /// The names still bound to the built-in allocator of that name.
    builtins: BTreeMap<String, Builtin>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.policies.keys()).finish()
    }
}

impl Default for Registry {
    fn default() -> Self {
        Self::builtin()
    }
}

impl Registry {
    /// `fixed`, `legacy` and `snapshot`.
    pub fn builtin() -> Self {
        let mut r = Registry {
            policies: BTreeMap::new(),
            builtins: BTreeMap::new(),
        };
        for p in Builtin::ALL {
            r.register(Arc::new(p));
            r.builtins.insert(p.name().to_string(), p);
        }
        r
    }
    /// Adds (or replaces) an allocator under its [`Allocator::name`].
    pub fn register(&mut self, policy: Arc<dyn Allocator>) -> &mut Self {
        self.builtins.remove(policy.name());
        self.policies.insert(policy.name().to_string(), policy);
        self
    }
    pub fn get(&self, name: &str) -> Option<Arc<dyn Allocator>> {
        self.policies.get(name).cloned()
    }
    pub fn contains(&self, name: &str) -> bool {
        self.policies.contains_key(name)
    }
    /// The registered names, sorted.
    pub fn names(&self) -> Vec<&str> {
        self.policies.keys().map(String::as_str).collect()
    }
    /// The built-in allocator `name` stands for, unless a registered
    /// allocator took the name.
    pub fn builtin_named(&self, name: &str) -> Option<Builtin> {
        self.builtins.get(name).copied()
    }
    /// The allocator named `name`, or an error that lists the names known.
    pub fn resolve(&self, name: &str) -> Result<Arc<dyn Allocator>, UnknownAllocator> {
        self.get(name).ok_or_else(|| UnknownAllocator {
            name: name.to_string(),
            known: self.names().join(", "),
        })
    }
}

/// A name no allocator of a [`Registry`] has.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown allocator `{name}`; known: {known} (allocators in other processes are named in an allocators file given with --allocators)"
)]
pub struct UnknownAllocator {
    pub name: String,
    pub known: String,
}

/// Faulty policies the crate's own unit tests share.
#[cfg(test)]
pub(crate) mod faulty {
    use super::Policy;
    use crate::model::State;

    /// Takes slot 0's GPUs away whenever another slot releases: a step of
    /// one slot that changes another, so an engine cannot reuse what it
    /// knew of the parent's other slots.
    pub(crate) struct Meddler;
    impl Policy for Meddler {
        fn name(&self) -> &str {
            "meddler"
        }
        fn release(&self, state: &mut State, vm: usize) {
            state.release_to_free(vm);
            if vm > 0 {
                state.vms[0].held = 0;
            }
        }
    }

    /// Says it is slot-local ([`Allocator::slot_local`]), but a claim also
    /// gives GPU 0 to the next slot.
    pub(crate) struct Grabby;
    impl Policy for Grabby {
        fn name(&self) -> &str {
            "grabby"
        }
        fn claim(&self, state: &mut State, vm: usize, size: u8) -> bool {
            state.vms[(vm + 1) % crate::model::MAX_VMS].held |= 1;
            state.claim_lowest(vm, size)
        }
        fn slot_local(&self) -> bool {
            true
        }
    }

    /// Slot-local, but slot 1's claims always fail: slots of the same size
    /// that behave differently.
    pub(crate) struct SlotOneNoGpu;
    impl Policy for SlotOneNoGpu {
        fn name(&self) -> &str {
            "slot-one-no-gpu"
        }
        fn claim(&self, state: &mut State, vm: usize, size: u8) -> bool {
            vm != 1 && state.claim_lowest(vm, size)
        }
        fn slot_local(&self) -> bool {
            true
        }
    }

    /// Changes no other slot, but a claim fails while another slot is
    /// running: it reads another slot, which building a successor table
    /// cannot see. `says_local` is what [`Allocator::slot_local`] answers.
    pub(crate) struct Peeker {
        pub says_local: bool,
    }
    impl Policy for Peeker {
        fn name(&self) -> &str {
            "peeker"
        }
        fn claim(&self, state: &mut State, vm: usize, size: u8) -> bool {
            let running = |(i, v): (usize, &crate::model::Vm)| {
                i != vm && v.life == crate::model::VmState::Running
            };
            !state.vms.iter().enumerate().any(running) && state.claim_lowest(vm, size)
        }
        fn slot_local(&self) -> bool {
            self.says_local
        }
    }

    /// Slot-local, but a release while Kubernetes is configured gives the
    /// GPUs to Kubernetes: a VM's step that violates
    /// `no-steal-after-dealloc`.
    pub(crate) struct StealOnRelease;
    impl Policy for StealOnRelease {
        fn name(&self) -> &str {
            "steal-on-release"
        }
        fn release(&self, state: &mut State, vm: usize) {
            if state.kube == crate::model::KubeState::Configured {
                state.kube_held |= state.vms[vm].held;
                state.vms[vm].held = 0;
            } else {
                state.release_to_free(vm);
            }
        }
        fn slot_local(&self) -> bool {
            true
        }
    }
}
