//! Policies: the allocator under test. The model ([`crate::model::step`])
//! owns the lifecycle rules and asks the policy, at each point where GPUs
//! move, what happens to the sets. The built-in `fixed`, `legacy` and
//! `snapshot` go through this trait like any policy written outside the
//! crate; there is no other way in.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use crate::model::State;

/// The allocator under test. Each method may change any set of the state;
/// the invariants judge the result. The default methods are the `fixed`
/// behaviour of MODEL.md's operations table, so a policy overrides only
/// what it does differently.
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

    /// Whether the policy is slot-local: `claim` and `release` for slot
    /// `vm` read and change only `free`, Kubernetes' parts (its state,
    /// `held[kube]`, `snapshot`) and slot `vm`, and the Kubernetes hooks
    /// (`begin_configure`, `end_configure`, `takeover_enabled`,
    /// `takeover`) only `free` and Kubernetes' parts. Every built-in policy
    /// is. (Slots may still behave differently by number.) The exhaustive
    /// checker then takes each step once per slot and combination of those
    /// parts and reuses its result for every state that has them, instead
    /// of stepping every state. When a step it takes changes another slot,
    /// or makes a state its key does not keep, or when the table disagrees
    /// with stepping on a sample of reachable states (the first 1,024 in
    /// breadth-first order and 16 random walks of 128 steps), it steps
    /// every state instead. A policy that says it is slot-local while its
    /// hooks read other slots in a way that sample never shows is checked
    /// wrongly, and nothing tells. Default: false (the checker steps every
    /// state).
    fn slot_local(&self) -> bool {
        false
    }
}

impl<P: Policy + ?Sized> Policy for &P {
    fn name(&self) -> &str {
        (**self).name()
    }
    fn claim(&self, state: &mut State, vm: usize, size: u8) -> bool {
        (**self).claim(state, vm, size)
    }
    fn release(&self, state: &mut State, vm: usize) {
        (**self).release(state, vm)
    }
    fn begin_configure(&self, state: &mut State) {
        (**self).begin_configure(state)
    }
    fn end_configure(&self, state: &mut State) {
        (**self).end_configure(state)
    }
    fn takeover_enabled(&self, state: &State) -> bool {
        (**self).takeover_enabled(state)
    }
    fn takeover(&self, state: &mut State) {
        (**self).takeover(state)
    }
    fn slot_local(&self) -> bool {
        (**self).slot_local()
    }
}

impl<P: Policy + ?Sized> Policy for Arc<P> {
    fn name(&self) -> &str {
        (**self).name()
    }
    fn claim(&self, state: &mut State, vm: usize, size: u8) -> bool {
        (**self).claim(state, vm, size)
    }
    fn release(&self, state: &mut State, vm: usize) {
        (**self).release(state, vm)
    }
    fn begin_configure(&self, state: &mut State) {
        (**self).begin_configure(state)
    }
    fn end_configure(&self, state: &mut State) {
        (**self).end_configure(state)
    }
    fn takeover_enabled(&self, state: &State) -> bool {
        (**self).takeover_enabled(state)
    }
    fn takeover(&self, state: &mut State) {
        (**self).takeover(state)
    }
    fn slot_local(&self) -> bool {
        (**self).slot_local()
    }
}

/// `fixed`: exactly MODEL.md's operations table; today's documented behaviour.
#[derive(Clone, Copy, Debug, Default)]
pub struct Fixed;

impl Policy for Fixed {
    fn name(&self) -> &str {
        "fixed"
    }
    fn slot_local(&self) -> bool {
        true
    }
}

/// `legacy`: the table plus `kube-takeover`, enabled whenever Kubernetes is
/// configured and `free` is not empty: Kubernetes takes every free GPU (the
/// pre-fix defect of release notes 2103).
#[derive(Clone, Copy, Debug, Default)]
pub struct Legacy;

impl Policy for Legacy {
    fn name(&self) -> &str {
        "legacy"
    }
    fn slot_local(&self) -> bool {
        true
    }
    fn takeover_enabled(&self, state: &State) -> bool {
        state.kube == crate::model::KubeState::Configured && state.free != 0
    }
    fn takeover(&self, state: &mut State) {
        state.kube_takes_free();
    }
}

/// `snapshot`: a deliberately racy allocator. `configure-kube` copies `free`
/// at its begin step and, at its end step, moves that copy to `held[kube]`
/// without looking again.
#[derive(Clone, Copy, Debug, Default)]
pub struct Snapshot;

impl Policy for Snapshot {
    fn name(&self) -> &str {
        "snapshot"
    }
    fn slot_local(&self) -> bool {
        true
    }
    fn begin_configure(&self, state: &mut State) {
        state.snapshot = state.free;
    }
    fn end_configure(&self, state: &mut State) {
        state.kube_held |= state.snapshot;
        state.free &= !state.snapshot;
    }
}

/// The built-in policies as one `Copy` value, for engines that want static
/// dispatch on a policy chosen by name at run time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Builtin {
    Fixed,
    Legacy,
    Snapshot,
}

impl Builtin {
    pub const ALL: [Builtin; 3] = [Builtin::Fixed, Builtin::Legacy, Builtin::Snapshot];
    pub fn from_name(name: &str) -> Option<Builtin> {
        Builtin::ALL.into_iter().find(|p| p.name() == name)
    }
}

impl fmt::Display for Builtin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Policy for Builtin {
    fn name(&self) -> &str {
        match self {
            Builtin::Fixed => Fixed.name(),
            Builtin::Legacy => Legacy.name(),
            Builtin::Snapshot => Snapshot.name(),
        }
    }
    #[inline]
    fn claim(&self, state: &mut State, vm: usize, size: u8) -> bool {
        match self {
            Builtin::Fixed => Fixed.claim(state, vm, size),
            Builtin::Legacy => Legacy.claim(state, vm, size),
            Builtin::Snapshot => Snapshot.claim(state, vm, size),
        }
    }
    #[inline]
    fn release(&self, state: &mut State, vm: usize) {
        match self {
            Builtin::Fixed => Fixed.release(state, vm),
            Builtin::Legacy => Legacy.release(state, vm),
            Builtin::Snapshot => Snapshot.release(state, vm),
        }
    }
    #[inline]
    fn begin_configure(&self, state: &mut State) {
        match self {
            Builtin::Fixed => Fixed.begin_configure(state),
            Builtin::Legacy => Legacy.begin_configure(state),
            Builtin::Snapshot => Snapshot.begin_configure(state),
        }
    }
    #[inline]
    fn end_configure(&self, state: &mut State) {
        match self {
            Builtin::Fixed => Fixed.end_configure(state),
            Builtin::Legacy => Legacy.end_configure(state),
            Builtin::Snapshot => Snapshot.end_configure(state),
        }
    }
    #[inline]
    fn takeover_enabled(&self, state: &State) -> bool {
        match self {
            Builtin::Fixed => Fixed.takeover_enabled(state),
            Builtin::Legacy => Legacy.takeover_enabled(state),
            Builtin::Snapshot => Snapshot.takeover_enabled(state),
        }
    }
    #[inline]
    fn takeover(&self, state: &mut State) {
        match self {
            Builtin::Fixed => Fixed.takeover(state),
            Builtin::Legacy => Legacy.takeover(state),
            Builtin::Snapshot => Snapshot.takeover(state),
        }
    }
    fn slot_local(&self) -> bool {
        match self {
            Builtin::Fixed => Fixed.slot_local(),
            Builtin::Legacy => Legacy.slot_local(),
            Builtin::Snapshot => Snapshot.slot_local(),
        }
    }
}

/// Policies by name: the built-in ones and any registered by the user.
/// Scenario files and engines look policies up here.
#[derive(Clone)]
pub struct Registry {
    policies: BTreeMap<String, Arc<dyn Policy>>,
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
        };
        for p in Builtin::ALL {
            r.register(Arc::new(p));
        }
        r
    }
    /// Adds (or replaces) a policy under its [`Policy::name`].
    pub fn register(&mut self, policy: Arc<dyn Policy>) -> &mut Self {
        self.policies.insert(policy.name().to_string(), policy);
        self
    }
    pub fn get(&self, name: &str) -> Option<Arc<dyn Policy>> {
        self.policies.get(name).cloned()
    }
    pub fn contains(&self, name: &str) -> bool {
        self.policies.contains_key(name)
    }
    /// The registered names, sorted.
    pub fn names(&self) -> Vec<&str> {
        self.policies.keys().map(String::as_str).collect()
    }
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

    /// Says it is slot-local ([`Policy::slot_local`]), but a claim also
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
    /// cannot see. `says_local` is what [`Policy::slot_local`] answers.
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
