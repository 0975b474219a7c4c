//! The four named invariants of MODEL.md, checked after every step. Their
//! names are stable: CSV columns, scenario files and messages use them.

use std::fmt;

use crate::model::{Device, GpuSet, KubeState, LIFE_TABLES, State};

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
    /// The end of a device update leaves every VM that was rebooting
    /// running, holding exactly its size (version 2).
    UpdateRestartsVms,
}

impl Invariant {
    pub const ALL: [Invariant; 5] = [
        Invariant::NoDoubleClaim,
        Invariant::Conservation,
        Invariant::HoldsMatchState,
        Invariant::NoStealAfterDealloc,
        Invariant::UpdateRestartsVms,
    ];
    /// How many invariants there are.
    pub const COUNT: usize = Invariant::ALL.len();
    pub fn name(self) -> &'static str {
        match self {
            Invariant::NoDoubleClaim => "no-double-claim",
            Invariant::Conservation => "conservation",
            Invariant::HoldsMatchState => "holds-match-state",
            Invariant::NoStealAfterDealloc => "no-steal-after-dealloc",
            Invariant::UpdateRestartsVms => "update-restarts-vms",
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
    /// The set as bits, one per invariant at its [`Invariant::ALL`]
    /// position; the state invariants are the three lowest bits.
    pub fn bits(self) -> u8 {
        self.0
    }
    /// The set with these bits (see [`InvariantSet::bits`]); bits past the
    /// last invariant are dropped.
    pub fn from_bits(bits: u8) -> InvariantSet {
        InvariantSet(bits & ((1 << Invariant::ALL.len()) - 1))
    }
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
    check_state(device, after).union(check_step(before, after))
}

/// The state invariants (`no-double-claim`, `conservation`,
/// `holds-match-state`): they depend on the state after a step only.
///
/// Branch-free, since on random states every branch would mispredict:
/// the sets are pairwise disjoint exactly when the sum of their sizes is
/// the size of their union, and what a VM must hold comes from a table by
/// its state (a table in `model`).
#[inline]
pub fn check_state(device: &Device, after: &State) -> InvariantSet {
    check_state_of(device, after, device.vms())
}

/// [`check_state`] over the first `vms` slots, where `vms` is the device's
/// number of slots: an engine that knows it at compile time passes a
/// constant, and the loop over the slots unrolls.
#[inline(always)]
pub(crate) fn check_state_of(device: &Device, after: &State, vms: usize) -> InvariantSet {
    debug_assert_eq!(vms, device.vms());
    let mut union = after.free | after.kube_held;
    let mut sizes = u32::from(size_of_set(after.free)) + u32::from(size_of_set(after.kube_held));
    // Kubernetes holds none until its configure step ends.
    let mut mismatch = u8::from(!after.kube.is_set_up()) & u8::from(after.kube_held != 0);
    for vm in &after.vms[..vms] {
        let n = size_of_set(vm.held);
        union |= vm.held;
        sizes += u32::from(n);
        mismatch |= vm_mismatch(vm, n);
    }
    let double = u8::from(sizes != u32::from(size_of_set(union)));
    let conservation = u8::from(union != device.all());
    InvariantSet(
        (double << Invariant::NoDoubleClaim as u8)
            | (conservation << Invariant::Conservation as u8)
            | (mismatch << Invariant::HoldsMatchState as u8),
    )
}

/// [`check_state`] as a sum of parts, for the checker's successor tables
/// (`local`), which judge a state from its key without unpacking it. A
/// holder's part adds one to the byte of each GPU it holds (byte `g` of
/// the sum counts the holders of GPU `g`) and one to the top byte when it
/// holds what its lifecycle state says it must not; [`verdict_of_sum`] of
/// the sum of every holder's part is [`check_state`] of the state, for
/// GPUs 0 to 6 (`sums_judge_like_check_state`). Every count is at most the
/// number of holders, so no byte carries into the next.
pub(crate) fn vm_part(vm: &crate::model::Vm) -> u64 {
    debug_assert!(vm.held < 1 << 7, "GPUs 0 to 6");
    let n = size_of_set(vm.held);
    spread(vm.held) | u64::from(vm_mismatch(vm, n)) << 56
}

/// 1 when a VM holding `n` GPUs holds what its lifecycle state says it
/// must not (`holds-match-state`), from the table by its state.
#[inline(always)]
fn vm_mismatch(vm: &crate::model::Vm, n: u8) -> u8 {
    let info = &LIFE_TABLES[usize::from(vm.life.repr_byte())];
    let holds = u8::from(n != 0);
    let wrong_size = u8::from(n != vm.size);
    // Not its size where it must hold its size (or, removing, anything at
    // all); anything where it must hold nothing.
    (wrong_size & (info.must_hold_size | holds & info.size_or_none) | holds & info.must_hold_none)
        & 1
}

/// The part of `free` and Kubernetes (see [`vm_part`]).
pub(crate) fn head_part(kube: KubeState, free: GpuSet, kube_held: GpuSet) -> u64 {
    debug_assert!((free | kube_held) < 1 << 7, "GPUs 0 to 6");
    let mismatch = u8::from(!kube.is_set_up()) & u8::from(kube_held != 0);
    spread(free) + spread(kube_held) + (u64::from(mismatch) << 56)
}

/// The state invariants' verdict on a sum of parts ([`vm_part`]) on a
/// device of `gpus` GPUs (at most 7): a GPU with two holders or more is
/// claimed twice; one with none, or a holder of a GPU the device lacks,
/// breaks conservation.
pub(crate) fn verdict_of_sum(sum: u64, gpus: u8) -> InvariantSet {
    debug_assert!(gpus <= 7);
    // Without a loop over the GPUs: the holders' bytes 0 to 6 ...
    const BYTES: u64 = 0x00ff_ffff_ffff_ffff;
    const LOW7: u64 = 0x007f_7f7f_7f7f_7f7f;
    let holders = sum & BYTES;
    // ... with two or more in a byte: a bit above the lowest set.
    let double = u8::from(holders & !0x0001_0101_0101_0101 != 0);
    // The top bit of each byte that is not zero, against those of the
    // device's GPUs.
    let present = (((holders & LOW7) + LOW7) | holders) & 0x0080_8080_8080_8080;
    let all = 0x0080_8080_8080_8080 & ((1u64 << (8 * u32::from(gpus))) - 1);
    let lost = u8::from(present != all);
    let mismatch = u8::from(sum >> 56 != 0);
    InvariantSet(
        (double << Invariant::NoDoubleClaim as u8)
            | (lost << Invariant::Conservation as u8)
            | (mismatch << Invariant::HoldsMatchState as u8),
    )
}

/// One byte per GPU of `set`: 1 for each GPU it holds.
fn spread(set: GpuSet) -> u64 {
    (0..8).fold(0, |acc, g| acc | (u64::from(set >> g & 1) << (8 * g)))
}

/// How many GPUs a set has. The crate is built for baseline x86-64, which
/// has no `popcnt` instruction, and `count_ones` then costs a dozen
/// instructions; a set is one byte, so a table does it in one load.
#[inline(always)]
pub(crate) fn size_of_set(set: GpuSet) -> u8 {
    SET_SIZE[usize::from(set)]
}

static SET_SIZE: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = (i as u8).count_ones() as u8;
        i += 1;
    }
    t
};

/// The step invariants, `no-steal-after-dealloc` and
/// `update-restarts-vms`: they need the states before and after the step.
#[inline]
pub fn check_step(before: &State, after: &State) -> InvariantSet {
    let steal = check_step_parts(before.kube, before.kube_held, after.kube_held);
    if before.updating && !after.updating {
        steal.union(check_update_end(rebooting(before), after))
    } else {
        steal
    }
}

/// The slots of `state` that are `rebooting`, as bits.
#[inline]
pub fn rebooting(state: &State) -> u32 {
    state
        .vms
        .iter()
        .enumerate()
        .filter(|(_, v)| v.life == crate::model::VmState::Rebooting)
        .fold(0, |acc, (i, _)| acc | 1 << i)
}

/// `update-restarts-vms` on the end step of an update: every slot of
/// `rebooting` (the VMs that were rebooting before it) is `running` after
/// it, holding exactly its size.
#[cold]
pub fn check_update_end(rebooting: u32, after: &State) -> InvariantSet {
    let broken = after.vms.iter().enumerate().any(|(i, v)| {
        rebooting >> i & 1 != 0
            && (v.life != crate::model::VmState::Running || size_of_set(v.held) != v.size)
    });
    InvariantSet(u8::from(broken) << Invariant::UpdateRestartsVms as u8)
}

/// [`check_step`] from the only fields it reads: Kubernetes' state and
/// `held[kube]` before the step, and `held[kube]` after it.
#[inline]
pub fn check_step_parts(
    before_kube: KubeState,
    before_kube_held: GpuSet,
    after_kube_held: GpuSet,
) -> InvariantSet {
    let steal =
        u8::from(before_kube.is_set_up()) & u8::from(after_kube_held & !before_kube_held != 0);
    InvariantSet(steal << Invariant::NoStealAfterDealloc as u8)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{KubeState, Vm, VmState};

    /// Every state of two slots (every lifecycle state, held set and size)
    /// and every head on devices of 1 to 3 GPUs, sane or not: the sum of
    /// parts judges as `check_state` does.
    #[test]
    fn sums_judge_like_check_state() {
        let mut judged = [0u32; 3];
        for gpus in 1..=3u8 {
            let device = Device::new(gpus, &[0, 0]).unwrap();
            let sets = 0..1u8 << gpus;
            let vms: Vec<Vm> = VmState::ALL
                .into_iter()
                .flat_map(|life| sets.clone().map(move |held| (life, held)))
                .flat_map(|(life, held)| (0..=gpus).map(move |size| Vm { life, held, size }))
                .collect();
            for kube in KubeState::ALL {
                for free in sets.clone() {
                    for kube_held in sets.clone() {
                        let head = head_part(kube, free, kube_held);
                        for a in &vms {
                            for b in &vms {
                                let mut state = device.initial();
                                (state.kube, state.free, state.kube_held) = (kube, free, kube_held);
                                state.vms[0] = *a;
                                state.vms[1] = *b;
                                let want = check_state(&device, &state);
                                let got = verdict_of_sum(head + vm_part(a) + vm_part(b), gpus);
                                assert_eq!(got, want, "{state:?}");
                                for inv in want.iter().take(3) {
                                    judged[inv as usize] += 1;
                                }
                            }
                        }
                    }
                }
            }
        }
        // Each state invariant was broken many times.
        assert!(judged.iter().all(|&n| n > 1000), "{judged:?}");
    }
}
