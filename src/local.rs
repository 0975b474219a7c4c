//! Successor tables for slot-local policies ([`Allocator::slot_local`]), used
//! by the exhaustive checker.
//!
//! A slot-local policy's steps read and change only the head of a state
//! (`free`, Kubernetes' state, `held[kube]`, `snapshot`) and, for a VM's
//! action, that VM's slot. The lifecycle rules of [`model::apply_in_place`]
//! and the enabled VM actions of [`model::for_each_enabled_kind`] look no
//! further either. So the successor of a state by a VM's action is a
//! function of that slot's part of the key and the head, and by a
//! Kubernetes action or event a function of the head alone.
//! [`LocalTable`] tabulates those functions, slot by slot, by taking every
//! action once, through [`model::apply_in_place`] and so the policy's
//! hooks, on a state made of exactly those parts (every other slot absent),
//! together with the step invariants' verdict on it. Slots whose tables
//! come out equal share one. An action that changes nothing (a `no-gpu`
//! start of a stopped VM) is counted, not listed, among the successors.
//! The checker then looks successors up instead of stepping. It judges a
//! new state from its key as well: the state invariants as a sum of each
//! slot's and the head's part ([`invariant::vm_part`]), and its action
//! count as the sum of its cells' counts.

use crate::invariant;
use crate::invariant::Invariant;
use crate::model::{self, Device, KubeState, MAX_VMS, VmState};
use crate::pack::Packer;
use crate::policy::Allocator;

/// Most bits of a slot's part and the head together that are tabulated:
/// 2^14 cells of 16 bytes (256 KiB) a block, which G = 2 takes, and per
/// slot 2^14 moves of 32 bytes (512 KiB; of which a check touches the few
/// thousand cells its states reach). Larger devices are checked by
/// stepping: at G = 3 a block would be 4 MiB, one per slot that behaves
/// differently, and the table took longer to make than it saved on small
/// devices.
const MAX_CELL_BITS: u32 = 14;

/// Where an entry keeps the step invariants' verdict ([`invariant::check_step`]).
const VERDICT_SHIFT: u32 = 24;
/// In a cell's count word: some entry has a verdict.
const HAS_VERDICT: u32 = 1 << 31;
/// Successors [`LocalTable::successors`] may write past those it returns.
pub(crate) const SLACK: usize = 3;
/// In a move's count word: how many of the cell's actions lead back to
/// the state itself (two bits from here; the count of the others is the
/// low two).
const LOOPS_SHIFT: u32 = 2;

/// The successors of every slot part and head, for one policy and device.
pub(crate) struct LocalTable {
    vms: usize,
    slot_bits: u32,
    body_bits: u32,
    head_bits: u32,
    shift: [u32; MAX_VMS],
    /// Per slot: where its block of cells starts in `cells`.
    base: [usize; MAX_VMS],
    /// Blocks (one per slot, slots whose blocks are equal sharing one),
    /// then per `(slot part << head_bits) | head`: how
    /// many actions that slot has (the low two bits, and [`HAS_VERDICT`]),
    /// then each as an entry: the verdict bits << [`VERDICT_SHIFT`] | the
    /// new head << `slot_bits` | the new slot part. Unused entries are 0.
    cells: Vec<[u32; 4]>,
    /// Per head: how many Kubernetes actions and events, as above, then
    /// each as an entry (with no slot part).
    kube: Vec<[u32; 3]>,
    /// Per `slot << slot_bits | slot part`, and per head: its part of the
    /// state invariants' verdict ([`invariant::vm_part`]).
    vm_parts: Vec<u64>,
    head_parts: Vec<u64>,
    gpus: u8,
    /// The cells again, as moves: per `slot << (slot_bits + head_bits) |
    /// slot part << head_bits | head`, a count word, then each entry that
    /// changes the state as what to XOR into a key to make the
    /// successor's (the slot part and head bits that change, in place).
    /// The count word is the cell's [`HAS_VERDICT`], how many entries
    /// lead back to the state itself (XOR 0) << [`LOOPS_SHIFT`], and how
    /// many others there are. Every slot has its own.
    moves: Vec<[u64; 4]>,
    /// Per head, the Kubernetes cell as moves.
    kube_moves: Vec<[u64; 3]>,
}

impl LocalTable {
    /// The table, or `None` when the checker must step instead: the policy
    /// is not slot-local, the device's keys do not fit 64 bits or its parts
    /// are too wide to tabulate, or a step changed a slot other than its
    /// own or made a state its key does not keep (a policy that says it is
    /// slot-local but is not, where it shows).
    pub(crate) fn new<P: Allocator + ?Sized>(
        policy: &P,
        device: &Device,
        packer: &Packer,
    ) -> Option<LocalTable> {
        let g = u32::from(device.gpus());
        let head_bits = packer.bits() - packer.body_bits();
        let slot_bits = packer.slot_bits();
        // An update moves every slot at once: not a slot's action.
        if !policy.slot_local()
            || device.updates()
            || !packer.fits_u64()
            || head_bits + slot_bits > MAX_CELL_BITS
        {
            return None;
        }
        let vms = device.vms();
        let body_bits = packer.body_bits();
        let heads = 1usize << head_bits;
        let per_block = heads << slot_bits;
        let mut table = LocalTable {
            vms,
            slot_bits,
            body_bits,
            head_bits,
            shift: std::array::from_fn(|v| if v < vms { packer.slot_shift(v) } else { 0 }),
            base: [0; MAX_VMS],
            cells: Vec::new(),
            kube: vec![[0; 3]; heads],
            vm_parts: vec![0; vms << slot_bits],
            head_parts: vec![0; heads],
            gpus: device.gpus(),
            moves: Vec::new(),
            kube_moves: Vec::new(),
        };
        // Kubernetes reboots only in an update, which this table never has.
        let valid_head = |head: usize| head & 3 < KubeState::Rebooting.index().into();
        // Each slot's block of cells, tabulated on that slot (a policy may
        // treat slots differently by number); a block equal to an earlier
        // slot's is shared, so slots that behave alike (every built-in
        // policy's, at equal sizes) read the same cells.
        let mut blocks: Vec<Vec<[u32; 4]>> = Vec::new();
        for slot in 0..vms {
            let mut block = vec![[0u32; 4]; per_block];
            let shift = table.shift[slot];
            for part in 0..1usize << slot_bits {
                if part >> g >= VmState::ALL.len() {
                    continue;
                }
                let alone = packer.unpack((part as u64) << shift);
                table.vm_parts[(slot << slot_bits) | part] = invariant::vm_part(&alone.vms[slot]);
                for head in (0..heads).filter(|&h| valid_head(h)) {
                    let key = ((head as u64) << body_bits) | ((part as u64) << shift);
                    let cell = &mut block[(part << head_bits) | head];
                    let state = packer.unpack(key);
                    let mut ok = true;
                    model::for_each_enabled_kind(policy, device, &state, |kind, vm| {
                        if !model::kind_has_vm(kind) || usize::from(vm) != slot || !ok {
                            return;
                        }
                        let mut next = state;
                        model::apply_in_place(
                            policy,
                            device,
                            &mut next,
                            model::kind_action(kind, vm),
                        );
                        if !packer.unchanged_but(&state, &next, Some(slot)) {
                            ok = false;
                            return;
                        }
                        let (k, exact) = packer.repack(key, &next, Some(slot));
                        ok = exact;
                        let verdict = invariant::check_step(&state, &next).bits();
                        let new_part = (k >> shift) & ((1 << slot_bits) - 1);
                        let new_head = k >> body_bits;
                        let n = (cell[0] & 3) as usize;
                        cell[1 + n] = (u32::from(verdict) << VERDICT_SHIFT)
                            | ((new_head as u32) << slot_bits)
                            | new_part as u32;
                        cell[0] += 1;
                        if verdict != 0 {
                            cell[0] |= HAS_VERDICT;
                        }
                    });
                    if !ok {
                        return None;
                    }
                }
            }
            let at = match blocks.iter().position(|b| *b == block) {
                Some(at) => at,
                None => {
                    blocks.push(block);
                    blocks.len() - 1
                }
            };
            table.base[slot] = at * per_block;
        }
        table.cells = blocks.concat();
        // What to XOR into a key with head `head` to change it to
        // `new_head`; and, for an entry of the cell of (`part`, `head`) of
        // the slot at `shift`, to make the entry's successor.
        let slot_mask = (1u32 << slot_bits) - 1;
        let head_mask = (1u32 << head_bits) - 1;
        let head_move = |new_head: u32, head: usize| u64::from(new_head ^ head as u32) << body_bits;
        let move_of = |e: u32, part: usize, head: usize, shift: u32| -> u64 {
            (u64::from((e & slot_mask) ^ part as u32) << shift)
                | head_move((e >> slot_bits) & head_mask, head)
        };
        table.moves = vec![[0; 4]; vms * per_block];
        for slot in 0..vms {
            for (at, cell) in table.cells[table.base[slot]..][..per_block]
                .iter()
                .enumerate()
            {
                let (part, head) = (at >> head_bits, at & (heads - 1));
                let moves = cell[1..]
                    .iter()
                    .take((cell[0] & 3) as usize)
                    .map(|&e| move_of(e, part, head, table.shift[slot]));
                table.moves[slot * per_block + at] = as_moves(cell[0], moves);
            }
        }
        for head in (0..heads).filter(|&h| valid_head(h)) {
            let key = (head as u64) << body_bits;
            let state = packer.unpack(key);
            table.head_parts[head] = invariant::head_part(state.kube, state.free, state.kube_held);
            let cell = &mut table.kube[head];
            let mut ok = true;
            model::for_each_enabled_kind(policy, device, &state, |kind, vm| {
                if model::kind_has_vm(kind) || !ok {
                    return;
                }
                let mut next = state;
                model::apply_in_place(policy, device, &mut next, model::kind_action(kind, vm));
                if !packer.unchanged_but(&state, &next, None) {
                    ok = false;
                    return;
                }
                let (k, exact) = packer.repack(key, &next, None);
                ok = exact;
                let verdict = invariant::check_step(&state, &next).bits();
                let n = (cell[0] & 3) as usize;
                cell[1 + n] = (u32::from(verdict) << VERDICT_SHIFT) | ((k >> body_bits) as u32);
                cell[0] += 1;
                if verdict != 0 {
                    cell[0] |= HAS_VERDICT;
                }
            });
            if !ok {
                return None;
            }
        }
        table.kube_moves = (0..heads)
            .map(|head| {
                let cell = table.kube[head];
                let moves = cell[1..]
                    .iter()
                    .take((cell[0] & 3) as usize)
                    .map(|&e| head_move(e & head_mask, head));
                as_moves(cell[0], moves)
            })
            .collect();
        Some(table)
    }

    /// The device's number of slots.
    pub(crate) fn vms(&self) -> usize {
        self.vms
    }

    /// Most actions a state can enable: three per slot, two of Kubernetes.
    pub(crate) fn most_successors(&self) -> usize {
        3 * self.vms + 2
    }

    /// The state invariants' verdict on the state of `key`
    /// ([`invariant::check_state`]) and how many actions it enables
    /// ([`model::enabled_count`]), from the key's parts alone. `VMS` as
    /// for [`LocalTable::successors`].
    #[inline(always)]
    pub(crate) fn judge<const VMS: usize>(&self, key: u64) -> (invariant::InvariantSet, u8) {
        debug_assert!(VMS == 0 || VMS == self.vms);
        let vms = if VMS == 0 { self.vms } else { VMS };
        let head = (key >> self.body_bits) as usize;
        let slot_mask = (1u64 << self.slot_bits) - 1;
        let mut sum = self.head_parts[head];
        let mut actions = self.kube[head][0] & 3;
        for v in 0..vms {
            let part = ((key >> self.shift[v]) & slot_mask) as usize;
            sum += self.vm_parts[(v << self.slot_bits) | part];
            actions += self.cells[self.base[v] + ((part << self.head_bits) | head)][0] & 3;
        }
        (invariant::verdict_of_sum(sum, self.gpus), actions as u8)
    }

    /// Writes the keys of the successors of the state of `key` that
    /// differ from it to the front of `out`, and returns how many, and how
    /// many actions lead back to the state itself (a `no-gpu` start of a
    /// stopped VM: transitions too, whose successor need not be looked
    /// up); it may write up to [`SLACK`] more keys after them. Adds the step
    /// invariants' verdict on each transition, both kinds, to `violated`.
    /// Without a branch per action: each slot's three entries are written
    /// and the count advances by how many it has.
    ///
    /// `VMS` is the device's number of slots when the caller knows it at
    /// compile time (the loop over the slots then unrolls), or 0.
    #[inline(always)]
    pub(crate) fn successors<const VMS: usize>(
        &self,
        key: u64,
        out: &mut [u64],
        violated: &mut [u64; Invariant::COUNT],
    ) -> (usize, usize) {
        debug_assert!(VMS == 0 || VMS == self.vms);
        let vms = if VMS == 0 { self.vms } else { VMS };
        let head = (key >> self.body_bits) as usize;
        let slot_mask = (1u64 << self.slot_bits) - 1;
        let cell_bits = self.slot_bits + self.head_bits;
        let mut n = 0;
        let mut loops = 0;
        for v in 0..vms {
            let part = ((key >> self.shift[v]) & slot_mask) as usize;
            let at = (part << self.head_bits) | head;
            let m = &self.moves[(v << cell_bits) | at];
            let slots = &mut out[n..n + 3];
            for (o, &d) in slots.iter_mut().zip(&m[1..]) {
                *o = key ^ d;
            }
            if m[0] & u64::from(HAS_VERDICT) != 0 {
                let cell = &self.cells[self.base[v] + at];
                count_verdicts(&cell[1..], cell[0], violated);
            }
            n += (m[0] & 3) as usize;
            loops += (m[0] >> LOOPS_SHIFT) & 3;
        }
        let m = &self.kube_moves[head];
        let slots = &mut out[n..n + 2];
        for (o, &d) in slots.iter_mut().zip(&m[1..]) {
            *o = key ^ d;
        }
        if m[0] & u64::from(HAS_VERDICT) != 0 {
            let cell = &self.kube[head];
            count_verdicts(&cell[1..], cell[0], violated);
        }
        loops += (m[0] >> LOOPS_SHIFT) & 3;
        (n + (m[0] & 3) as usize, loops as usize)
    }
}

/// What one state's key gives the checker: the state invariants' verdict
/// and how many actions the state enables, its successors' keys (sorted;
/// an action back to the state is the key itself) and the step
/// invariants' verdicts over its transitions. [`LocalTable::expansion`]
/// reads it from a table, [`stepped`] steps the state; for a slot-local
/// policy the two are equal.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Expansion {
    pub judged: (invariant::InvariantSet, u8),
    pub successors: Vec<u64>,
    pub violated: [u64; Invariant::COUNT],
}

impl LocalTable {
    /// The [`Expansion`] of `key` as the table gives it.
    pub(crate) fn expansion(&self, key: u64) -> Expansion {
        let mut buf = vec![0; self.most_successors() + SLACK];
        let mut violated = [0; Invariant::COUNT];
        let (n, loops) = self.successors::<0>(key, &mut buf, &mut violated);
        let mut successors = buf[..n].to_vec();
        successors.extend(std::iter::repeat_n(key, loops));
        successors.sort_unstable();
        Expansion {
            judged: self.judge::<0>(key),
            successors,
            violated,
        }
    }
}

/// The [`Expansion`] of `key` by stepping its state: every enabled action
/// through [`model::apply`] and the invariants.
pub(crate) fn stepped<P: Allocator + ?Sized>(
    policy: &P,
    device: &Device,
    packer: &Packer,
    key: u64,
) -> Expansion {
    let state = packer.unpack(key);
    let (mut successors, mut violated) = (Vec::new(), [0u64; Invariant::COUNT]);
    model::for_each_enabled(policy, device, &state, |a| {
        let (next, _) = model::apply(policy, device, &state, a);
        for inv in invariant::check_step(&state, &next).iter() {
            violated[inv as usize] += 1;
        }
        successors.push(packer.pack(&next));
    });
    successors.sort_unstable();
    Expansion {
        judged: (
            invariant::check_state(device, &state),
            model::enabled_count(policy, device, &state) as u8,
        ),
        successors,
        violated,
    }
}

/// States of the breadth-first part of [`agrees_on_sample`].
const SAMPLE_STATES: usize = 1024;
/// Its random walks, and their length.
const SAMPLE_WALKS: u64 = 16;
const SAMPLE_STEPS: usize = 128;

/// Whether `table` gives what stepping gives on a sample of the states
/// `policy` reaches on `device`: the first [`SAMPLE_STATES`] in
/// breadth-first order, then those of [`SAMPLE_WALKS`] seeded random
/// walks of [`SAMPLE_STEPS`] steps. Building a table sees a policy that
/// says it is slot-local but changes another slot; it cannot see one whose
/// steps only read another slot. The checker uses a table only where this
/// sample agrees with it, and steps every state otherwise, so such a
/// policy is checked correctly wherever its reach shows on the sample (a
/// few milliseconds). Deterministic: the walks' seeds are fixed.
pub(crate) fn agrees_on_sample<P: Allocator + ?Sized>(
    table: &LocalTable,
    policy: &P,
    device: &Device,
    packer: &Packer,
) -> bool {
    let init = packer.pack(&device.initial());
    let mut seen = std::collections::HashSet::from([init]);
    let mut queue = std::collections::VecDeque::from([init]);
    for _ in 0..SAMPLE_STATES {
        let Some(key) = queue.pop_front() else { break };
        let want = stepped(policy, device, packer, key);
        if table.expansion(key) != want {
            return false;
        }
        queue.extend(want.successors.into_iter().filter(|&k| seen.insert(k)));
    }
    for walk in 0..SAMPLE_WALKS {
        let mut rng = crate::seed::rng(crate::seed::run_seed(0x5107_10ca1, walk));
        let mut key = init;
        for _ in 0..SAMPLE_STEPS {
            let want = stepped(policy, device, packer, key);
            if table.expansion(key) != want {
                return false;
            }
            let Ok(n) = u32::try_from(want.successors.len()) else {
                break;
            };
            if n == 0 {
                break;
            }
            key = want.successors[crate::explore::below(&mut rng, n) as usize];
        }
    }
    true
}

/// A cell (count word `count`, at most `N - 1` entries) as moves: the
/// count word of [`LocalTable::moves`], then the moves that change the
/// state, in order, the rest 0.
fn as_moves<const N: usize>(count: u32, moves: impl Iterator<Item = u64>) -> [u64; N] {
    let mut m = [0; N];
    m[0] = u64::from(count & HAS_VERDICT);
    let (mut n, mut loops) = (0, 0);
    for d in moves {
        if d == 0 {
            loops += 1;
        } else {
            m[1 + n] = d;
            n += 1;
        }
    }
    m[0] |= (loops << LOOPS_SHIFT) | n as u64;
    m
}

/// Adds the verdicts of a cell's first `count & 3` entries to `violated`.
#[cold]
fn count_verdicts(entries: &[u32], count: u32, violated: &mut [u64; Invariant::COUNT]) {
    for &e in &entries[..(count & 3) as usize] {
        for inv in invariant::InvariantSet::from_bits((e >> VERDICT_SHIFT) as u8).iter() {
            violated[inv as usize] += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::policy::Builtin;
    use crate::policy::faulty::{Grabby, Meddler, Peeker, SlotOneNoGpu, StealOnRelease};

    /// For every reachable state of small devices, uniform and of mixed
    /// sizes, under slot-local policies: the table's successors are
    /// exactly the keys of stepping every enabled action, and its step
    /// verdicts those of judging each step.
    #[test]
    fn successors_are_those_of_stepping() {
        // Every device of 1 or 2 GPUs and up to 2 slots (sizes in either
        // order, one order each), and a few with more slots.
        let mut devices = vec![
            Device::uniform(1, 3, 1).unwrap(),
            Device::uniform(2, 3, 1).unwrap(),
            Device::new(2, &[1, 2, 0]).unwrap(),
            Device::new(2, &[2, 1, 1]).unwrap(),
        ];
        for g in 1..=2u8 {
            devices.push(Device::new(g, &[]).unwrap());
            for a in 0..=g {
                devices.push(Device::new(g, &[a]).unwrap());
                for b in a..=g {
                    devices.push(Device::new(g, &[a, b]).unwrap());
                }
            }
        }
        let policies: [&dyn Allocator; 5] = [
            &Builtin::Fixed,
            &Builtin::Legacy,
            &Builtin::Snapshot,
            &StealOnRelease,
            &SlotOneNoGpu,
        ];
        for device in devices {
            for policy in policies {
                let packer = Packer::new(&device);
                let table = LocalTable::new(policy, &device, &packer)
                    .expect("every policy here is slot-local");
                let init = packer.pack(&device.initial());
                let mut seen = HashSet::from([init]);
                let mut todo = vec![init];
                let mut buf = vec![0; table.most_successors() + SLACK];
                let (mut states, mut steals, mut broken, mut all_loops) = (0, 0, 0, 0);
                while let Some(key) = todo.pop() {
                    states += 1;
                    let want = stepped(policy, &device, &packer, key);
                    let what = format!("{} {device:?} {:?}", policy.name(), packer.unpack(key));
                    assert_eq!(table.expansion(key), want, "{what}");
                    let (n, loops) =
                        table.successors::<0>(key, &mut buf, &mut [0; Invariant::COUNT]);
                    assert!(
                        !buf[..n].contains(&key),
                        "a loop listed as a successor: {what}"
                    );
                    broken += usize::from(!want.judged.0.is_empty());
                    all_loops += loops;
                    steals += want.violated.iter().sum::<u64>();
                    for k in want.successors {
                        if seen.insert(k) {
                            todo.push(k);
                        }
                    }
                }
                assert!(states >= 3, "{states}");
                // Under `fixed`, a VM that needs a GPU can be stopped
                // (deallocated) and Kubernetes configured to take the GPU:
                // starting it again is then `no-gpu` and changes nothing,
                // an action back to the same state.
                if policy.name() == "fixed" {
                    let needs_gpu = device.sizes().iter().any(|&s| s > 0);
                    assert_eq!(all_loops > 0, needs_gpu, "{device:?}");
                }
                // `legacy` steals by an event of Kubernetes, the other by
                // a VM's step, on every device with a slot that holds a
                // GPU; no other policy does.
                let holds = device.sizes().iter().any(|&s| s > 0);
                let steals_here = ["legacy", "steal-on-release"].contains(&policy.name()) && holds;
                assert_eq!(steals > 0, steals_here, "{} {device:?}", policy.name());
                // Only `snapshot` reaches states that break a state
                // invariant (a GPU with two holders), on the same devices.
                let breaks = policy.name() == "snapshot" && holds;
                assert_eq!(broken > 0, breaks, "{} {device:?}", policy.name());
            }
        }
    }

    /// No table for a policy that does not say it is slot-local, nor for
    /// one that says so but whose step changes another slot. Slots that
    /// behave alike share one block of cells; a slot that behaves
    /// differently has its own.
    #[test]
    fn no_table_unless_slot_local() {
        let device = Device::uniform(2, 3, 1).unwrap();
        let packer = Packer::new(&device);
        let blocks = |t: &LocalTable| t.cells.len() >> (t.head_bits + t.slot_bits);
        let fixed = LocalTable::new(&Builtin::Fixed, &device, &packer).unwrap();
        assert_eq!(blocks(&fixed), 1);
        assert_eq!(fixed.base[..3], [0, 0, 0]);
        let odd = LocalTable::new(&SlotOneNoGpu, &device, &packer).unwrap();
        assert_eq!(blocks(&odd), 2);
        assert_eq!(odd.base[0], odd.base[2]);
        assert_ne!(odd.base[0], odd.base[1]);
        let mixed = Device::new(2, &[1, 2, 1]).unwrap();
        let mixed_table = LocalTable::new(&Builtin::Fixed, &mixed, &Packer::new(&mixed)).unwrap();
        assert_eq!(blocks(&mixed_table), 2);
        assert!(LocalTable::new(&Meddler, &device, &packer).is_none());
        assert!(LocalTable::new(&Grabby, &device, &packer).is_none());
        assert!(LocalTable::new(&Builtin::Fixed, &device, &packer).is_some());
        // Parts too wide to tabulate: G = 3.
        let wide = Device::uniform(3, 1, 1).unwrap();
        assert!(LocalTable::new(&Builtin::Fixed, &wide, &Packer::new(&wide)).is_none());
    }

    /// A policy that reads another slot gets a table (building one cannot
    /// see a read), but the sample of reachable states catches it; on
    /// slot-local policies, faulty or not, the sample agrees.
    #[test]
    fn a_sample_catches_a_policy_that_reads_another_slot() {
        let device = Device::uniform(2, 2, 1).unwrap();
        let packer = Packer::new(&device);
        let peeker = Peeker { says_local: true };
        let table = LocalTable::new(&peeker, &device, &packer).expect("changes no other slot");
        assert!(!agrees_on_sample(&table, &peeker, &device, &packer));
        let policies: [&dyn Allocator; 5] = [
            &Builtin::Fixed,
            &Builtin::Legacy,
            &Builtin::Snapshot,
            &SlotOneNoGpu,
            &StealOnRelease,
        ];
        for device in [
            device,
            Device::new(2, &[1, 2, 0]).unwrap(),
            Device::uniform(1, 3, 1).unwrap(),
        ] {
            let packer = Packer::new(&device);
            for p in policies {
                let table = LocalTable::new(p, &device, &packer).unwrap();
                assert!(
                    agrees_on_sample(&table, p, &device, &packer),
                    "{}",
                    p.name()
                );
            }
        }
    }
}
