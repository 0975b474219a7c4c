//! The four named invariants of MODEL.md, checked after every step. Their
//! names are stable: CSV columns, scenario files and messages use them.

use std::fmt;

use crate::model::{Device, KubeState, State, VmState};

/// A named invariant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Invariant {
    /// `free`, `held[kube]` and every `held[vm]` are pairwise disjoint.
    NoDoubleClaim,
    /// Their union is exactly the device's GPUs.
    Conservation,
    /// Each holder holds what its lifecycle state says it holds.
    HoldsMatchState,
    /// Once configured, Kubernetes never takes another GPU.
    NoStealAfterDealloc,
}

impl Invariant {
    pub const ALL: [Invariant; 4] = [
        Invariant::NoDoubleClaim,
        Invariant::Conservation,
        Invariant::HoldsMatchState,
        Invariant::NoStealAfterDealloc,
    ];
    pub fn name(self) -> &'static str {
        match self {
            Invariant::NoDoubleClaim => "no-double-claim",
            Invariant::Conservation => "conservation",
            Invariant::HoldsMatchState => "holds-match-state",
            Invariant::NoStealAfterDealloc => "no-steal-after-dealloc",
        }
    }
    pub fn from_name(name: &str) -> Option<Invariant> {
        Invariant::ALL.into_iter().find(|i| i.name() == name)
    }
    const fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl fmt::Display for Invariant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A set of invariants as a bitmask (cheap to return from every step).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct InvariantSet(u8);

impl InvariantSet {
    pub const EMPTY: InvariantSet = InvariantSet(0);
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
    pub fn contains(self, inv: Invariant) -> bool {
        self.0 & inv.bit() != 0
    }
    pub fn insert(&mut self, inv: Invariant) {
        self.0 |= inv.bit();
    }
    pub fn union(self, other: InvariantSet) -> InvariantSet {
        InvariantSet(self.0 | other.0)
    }
    pub fn len(self) -> usize {
        self.0.count_ones() as usize
    }
    /// The members, in [`Invariant::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = Invariant> {
        Invariant::ALL
            .into_iter()
            .filter(move |i| self.contains(*i))
    }
    /// The first member in [`Invariant::ALL`] order.
    pub fn first(self) -> Option<Invariant> {
        self.iter().next()
    }
}

impl FromIterator<Invariant> for InvariantSet {
    fn from_iter<T: IntoIterator<Item = Invariant>>(iter: T) -> Self {
        let mut s = InvariantSet::EMPTY;
        for i in iter {
            s.insert(i);
        }
        s
    }
}

impl fmt::Display for InvariantSet {
    /// Names joined by `;`, empty when none.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.iter().map(Invariant::name).collect();
        f.write_str(&names.join(";"))
    }
}

/// Checks every invariant on the step from `before` to `after`.
#[inline]
pub fn check(device: &Device, before: &State, after: &State) -> InvariantSet {
    let mut out = InvariantSet::EMPTY;
    if !no_double_claim(device, after) {
        out.insert(Invariant::NoDoubleClaim);
    }
    if after.union(device.vms()) != device.all() {
        out.insert(Invariant::Conservation);
    }
    if !holds_match_state(device, after) {
        out.insert(Invariant::HoldsMatchState);
    }
    if before.kube == KubeState::Configured && after.kube_held & !before.kube_held != 0 {
        out.insert(Invariant::NoStealAfterDealloc);
    }
    out
}

fn no_double_claim(device: &Device, state: &State) -> bool {
    let mut seen = state.free;
    if seen & state.kube_held != 0 {
        return false;
    }
    seen |= state.kube_held;
    for vm in &state.vms[..device.vms()] {
        if seen & vm.held != 0 {
            return false;
        }
        seen |= vm.held;
    }
    true
}

fn holds_match_state(device: &Device, state: &State) -> bool {
    if state.kube != KubeState::Configured && state.kube_held != 0 {
        return false;
    }
    state.vms[..device.vms()].iter().all(|vm| match vm.life {
        VmState::Creating | VmState::Starting | VmState::Running | VmState::StoppedProvisioned => {
            vm.held.count_ones() == u32::from(vm.size)
        }
        VmState::Absent | VmState::Stopped | VmState::Failed => vm.held == 0,
        VmState::Stopping { .. } | VmState::Removing => true,
    })
}

/// One violation as engines report it: which invariant, at which step (0 is
/// the first), the step in step syntax and the state before and after, each
/// rendered on one line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    pub invariant: Invariant,
    pub step_index: usize,
    pub step: String,
    pub before: String,
    pub after: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} at step {} `{}`: {}  ->  {}",
            self.invariant, self.step_index, self.step, self.before, self.after
        )
    }
}
