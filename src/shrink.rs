//! Shrinking a failing trace to a minimal one that still violates the same
//! invariant (delta debugging, Zeller's ddmin, plus simplification).
//!
//! Every candidate is re-run from the initial state through the model; an
//! action that a candidate makes invalid is simply rejected there, as
//! MODEL.md says, and never reinterpreted. The actions that end up in the
//! result are the ones that actually ran in the last successful candidate,
//! with rejected ones dropped when that keeps the failure.
//!
//! Removing actions alone can stop at a local minimum: a trace that stops a
//! VM and starts it again while Kubernetes configures cannot lose an action
//! and still fail, although creating the VM in that window fails in three.
//! So, once removal is done, a bounded breadth-first search over the VM
//! slots the trace uses looks for a shorter trace violating the same
//! invariant; whatever it finds is shortest among traces over those slots.

use crate::invariant::Invariant;
use crate::model::{self, Action, Device, StepOption};
use crate::policy::Allocator;

/// The index of the first action at which `target` fires, when it does.
pub fn first_violation<P: Allocator + ?Sized>(
    policy: &P,
    device: &Device,
    actions: &[Action],
    target: Invariant,
) -> Option<usize> {
    let mut state = device.initial();
    for (i, a) in actions.iter().enumerate() {
        let t = model::step(policy, device, &state, *a);
        if t.violations.contains(target) {
            return Some(i);
        }
        state = t.state;
    }
    None
}

/// Shrinks `actions`, which must violate `target`, to a trace that still
/// violates it and from which no single action can be removed or simplified
/// without losing the violation. The result ends at the action where the
/// violation first fires, is never longer than the input, and is a function
/// of the input alone. Returns the input unchanged when it does not violate
/// `target`.
pub fn shrink<P: Allocator + ?Sized>(
    policy: &P,
    device: &Device,
    actions: &[Action],
    target: Invariant,
) -> Vec<Action> {
    let fails = |c: &[Action]| first_violation(policy, device, c, target);
    let Some(end) = fails(actions) else {
        return actions.to_vec();
    };
    let mut current: Vec<Action> = actions[..=end].to_vec();

    loop {
        let before = current.clone();
        current = ddmin(&current, &fails);
        current = simplify(&current, device, &fails);
        if current == before {
            break;
        }
    }
    if let Some(shorter) = shortest_over_used_slots(policy, device, &current, target, SEARCH_BUDGET)
    {
        // The search's trace is shortest over these slots; shrinking it again
        // can only rename its slots.
        current = simplify(&shorter, device, &fails);
    }
    current
}

/// Most states the final search may visit; past it the search gives up and
/// the removal result stands, so shrinking stays quick on large devices.
pub const SEARCH_BUDGET: usize = 100_000;

/// A shortest trace, shorter than `current`, that violates `target` and
/// uses only the VM slots `current` uses (breadth-first, actions in
/// [`model::for_each_enabled`] order, so the result is deterministic).
/// `None` when there is none or the search would visit more than `budget`
/// states.
pub fn shortest_over_used_slots<P: Allocator + ?Sized>(
    policy: &P,
    device: &Device,
    current: &[Action],
    target: Invariant,
    budget: usize,
) -> Option<Vec<Action>> {
    use std::collections::HashMap;
    use std::collections::hash_map::Entry;

    let used: u32 = current
        .iter()
        .filter(|a| a.op.takes_vm())
        .fold(0, |acc, a| {
            acc | 1u32.checked_shl(u32::from(a.vm)).unwrap_or(0)
        });
    let allowed =
        |a: &Action| !a.op.takes_vm() || used & 1u32.checked_shl(u32::from(a.vm)).unwrap_or(0) != 0;
    let max_len = current.len().checked_sub(1)?;
    let initial = device.initial();
    // state -> (parent state, action that reached it); the initial state has none.
    let mut parent: HashMap<model::State, Option<(model::State, Action)>> = HashMap::new();
    parent.insert(initial, None);
    let mut frontier = vec![initial];
    for depth in 1..=max_len {
        let mut next = Vec::new();
        for state in &frontier {
            let mut found = None;
            model::for_each_enabled(policy, device, state, |a| {
                if found.is_some() || !allowed(&a) {
                    return;
                }
                let t = model::step(policy, device, state, a);
                if t.violations.contains(target) {
                    found = Some(a);
                    return;
                }
                if let Entry::Vacant(e) = parent.entry(t.state) {
                    e.insert(Some((*state, a)));
                    next.push(t.state);
                }
            });
            if let Some(last) = found {
                let mut path = vec![last];
                let mut at = *state;
                while let Some(Some((prev, a))) = parent.get(&at) {
                    path.push(*a);
                    at = *prev;
                }
                path.reverse();
                debug_assert_eq!(path.len(), depth);
                return Some(path);
            }
            if parent.len() > budget {
                return None;
            }
        }
        if next.is_empty() {
            return None;
        }
        frontier = next;
    }
    None
}

/// Removes chunks (halves, quarters, … single actions) while the trace
/// still fails, truncating after each success at the first failing action.
fn ddmin(input: &[Action], fails: &dyn Fn(&[Action]) -> Option<usize>) -> Vec<Action> {
    let mut current = input.to_vec();
    let mut chunk = current.len().div_ceil(2).max(1);
    loop {
        let mut removed_any = false;
        let mut start = 0;
        while start < current.len() {
            let stop = (start + chunk).min(current.len());
            let mut candidate = Vec::with_capacity(current.len() - (stop - start));
            candidate.extend_from_slice(&current[..start]);
            candidate.extend_from_slice(&current[stop..]);
            if let Some(end) = fails(&candidate) {
                candidate.truncate(end + 1);
                current = candidate;
                removed_any = true;
            } else {
                start = stop;
            }
        }
        if chunk == 1 && !removed_any {
            return current;
        }
        if !removed_any {
            chunk = chunk.div_ceil(2);
        }
    }
}

/// Simplifies single actions: drops options, and renames VM slots to the
/// lowest slots of the same size in order of first use.
fn simplify(
    input: &[Action],
    device: &Device,
    fails: &dyn Fn(&[Action]) -> Option<usize>,
) -> Vec<Action> {
    let mut current = input.to_vec();
    for i in 0..current.len() {
        if current[i].option != StepOption::None {
            let mut candidate = current.clone();
            candidate[i].option = StepOption::None;
            if let Some(end) = fails(&candidate) {
                candidate.truncate(end + 1);
                current = candidate;
            }
        }
    }
    let renamed = canonical_slots(&current, device);
    if renamed != current
        && let Some(end) = fails(&renamed)
    {
        let mut renamed = renamed;
        renamed.truncate(end + 1);
        return renamed;
    }
    current
}

/// Maps each VM slot, in order of first use, to the lowest unused slot of
/// the same size.
fn canonical_slots(actions: &[Action], device: &Device) -> Vec<Action> {
    let n = device.vms();
    let mut map: Vec<Option<u8>> = vec![None; n];
    let mut used = vec![false; n];
    let mut out = actions.to_vec();
    for a in &mut out {
        if !a.op.takes_vm() || usize::from(a.vm) >= n {
            continue;
        }
        let from = usize::from(a.vm);
        let to = *map[from].get_or_insert_with(|| {
            let size = device.size(from);
            let slot = (0..n)
                .find(|&s| !used[s] && device.size(s) == size)
                .unwrap_or(from);
            used[slot] = true;
            slot as u8
        });
        a.vm = to;
    }
    out
}
