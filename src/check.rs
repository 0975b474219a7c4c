//! The exhaustive checker behind `gpuclaim check`: a breadth-first search
//! over every state reachable from the initial one, judging every
//! invariant on every transition.
//!
//! The state invariants depend on the state after a step only, so each is
//! checked once, when the search first meets a state, and its verdict is
//! counted again for every later transition into that state (the violating
//! states are kept, per invariant, in small key sets); the step invariant
//! `no-steal-after-dealloc` needs the state before the step too and is
//! checked on every transition. The counts, and so the report, are those
//! of checking every transition with [`model::step`]. That rests on a key
//! saying everything about its state; when a policy makes a state its key
//! does not keep (a GPU the device does not have, a changed slot size), the
//! search starts again and checks every transition.
//!
//! State identity is MODEL.md's, through [`Packer`] (exact `u64` keys; a
//! device whose state needs more than 64 bits is refused). With symmetry
//! reduction on, a state stands for its class under permutations of
//! same-size VM slots ([`Packer::pack_canonical`]).
//!
//! The search goes level by level. Each level has two phases, both run in
//! parallel: (1) the frontier is cut into fixed-size chunks; each chunk's
//! states are expanded and every successor's key is routed to one of
//! [`SHARDS`] buckets by its hash; (2) each shard of the visited set takes
//! the keys routed to it, in chunk order, and keeps the new ones as its
//! part of the next frontier. Chunking and sharding do not depend on the
//! thread count, so neither the counts nor the order of the frontier do.
//! Routing by shard also keeps each insertion inside one shard's table,
//! small enough to stay in cache.
//!
//! A violation does not stop the search (engines never stop at a violation
//! of their own accord), so the counts are those of the whole reachable
//! space. For each violated invariant a shortest counterexample is then
//! rebuilt by a sequential breadth-first search with parent links (no
//! symmetry), stopping at the first violating transition in the fixed
//! order of levels and [`model::for_each_enabled`]: the same trace for
//! every thread count.

use std::collections::HashMap;
use std::time::Instant;

use rayon::prelude::*;

use crate::invariant::{self, Invariant, InvariantSet};
use crate::model::{self, Action, Device, MAX_ENABLED, MAX_VMS};
use crate::pack::{KeySet, Packer};
use crate::policy::Policy;

/// Shards of the visited set.
pub const SHARDS: usize = 64;
/// Frontier states per work unit.
const CHUNK: usize = 2048;

/// Why a check could not run.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CheckError {
    #[error(
        "a state of this device needs {bits} bits, more than the checker's 64-bit keys; use fewer VM slots or GPUs (G=2 allows up to 9 slots, G=1 up to 11)"
    )]
    TooLarge { bits: u32 },
    #[error(
        "with --symmetry the search saw {invariant} violated, but no reachable trace violates it: policy `{policy}` does not treat VM slots alike, so symmetry reduction does not apply to it; check without --symmetry"
    )]
    NotSymmetric {
        policy: String,
        invariant: Invariant,
    },
}

/// One invariant the checker saw violated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    pub invariant: Invariant,
    /// Transitions (state, action) that violate it, over the whole space.
    pub transitions: u64,
    /// A shortest trace from the initial state whose last action violates
    /// it (breadth-first; the first in a fixed order).
    pub counterexample: Vec<Action>,
}

/// What a check found. Everything but `seconds` is the same for every
/// thread count.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckReport {
    pub policy: String,
    pub device: Device,
    pub symmetry: bool,
    /// Distinct reachable states (classes, with symmetry).
    pub unique_states: u64,
    /// (state, enabled action) pairs over every unique state.
    pub transitions: u64,
    /// The largest breadth-first depth of a state (the initial one is 0).
    pub max_depth: u32,
    /// Unique states at each depth.
    pub levels: Vec<u64>,
    /// Violated invariants, in [`Invariant::ALL`] order.
    pub violations: Vec<Found>,
    /// Bytes of the visited set's tables at the end.
    pub visited_bytes: usize,
    /// Largest frontier (states) held at once, current and next level.
    pub peak_frontier: usize,
    pub seconds: f64,
}

impl CheckReport {
    /// Visited-set bytes per unique state.
    pub fn bytes_per_state(&self) -> f64 {
        self.visited_bytes as f64 / self.unique_states.max(1) as f64
    }
    pub fn states_per_second(&self) -> f64 {
        self.unique_states as f64 / self.seconds.max(1e-9)
    }
    pub fn violated(&self, inv: Invariant) -> Option<&Found> {
        self.violations.iter().find(|f| f.invariant == inv)
    }
}

/// The exhaustive checker, configured as a builder.
///
/// ```
/// use gpuclaim::{Device, Fixed};
/// use gpuclaim::check::Checker;
///
/// let report = Checker::new(&Fixed, Device::uniform(1, 1, 1).unwrap()).run().unwrap();
/// assert_eq!(report.unique_states, 34);
/// assert!(report.violations.is_empty());
/// ```
pub struct Checker<'a, P: Policy + ?Sized> {
    policy: &'a P,
    device: Device,
    threads: usize,
    symmetry: bool,
}

struct ChunkOut {
    buckets: Vec<Vec<u64>>,
    transitions: u64,
    violated: [u64; 4],
    /// Some successor is not exactly the state its key unpacks to.
    inexact: bool,
}

/// What a search found: unique states per level, transitions, violating
/// transitions per invariant, the visited set and the peak frontier.
type Searched = (Vec<u64>, u64, [u64; 4], Vec<KeySet>, usize);

impl<'a, P: Policy + ?Sized> Checker<'a, P> {
    pub fn new(policy: &'a P, device: Device) -> Self {
        Checker {
            policy,
            device,
            threads: 0,
            symmetry: false,
        }
    }
    /// Worker threads; 0 means rayon's default (one per core).
    pub fn threads(mut self, threads: usize) -> Self {
        self.threads = threads;
        self
    }
    /// Treat VM slots of the same size as interchangeable.
    pub fn symmetry(mut self, symmetry: bool) -> Self {
        self.symmetry = symmetry;
        self
    }

    pub fn run(&self) -> Result<CheckReport, CheckError> {
        let packer = Packer::new(&self.device);
        if !packer.fits_u64() {
            return Err(CheckError::TooLarge {
                bits: packer.bits(),
            });
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(self.threads)
            .build()
            .expect("building the worker pool");
        let start = Instant::now();
        // State invariants are checked once per discovered state, unless a
        // successor does not survive packing (a policy that puts a GPU the
        // device lacks into a set, or changes a slot's size): then its key
        // says less than the state did, and the search starts again
        // checking every transition, as `model::step` does.
        let (levels, transitions, violated, shards, peak) = pool.install(|| {
            self.search(&packer, false)
                .unwrap_or_else(|| self.search(&packer, true).expect("checks every transition"))
        });
        let seconds = start.elapsed().as_secs_f64();
        let mut violations = Vec::new();
        for inv in Invariant::ALL {
            let n = violated[inv as usize];
            if n > 0 {
                // Without symmetry the search saw a reachable violating
                // transition, so the rebuild finds one; with it, only when
                // the policy treats slots alike.
                let counterexample = shortest_counterexample(self.policy, &self.device, inv)
                    .ok_or_else(|| CheckError::NotSymmetric {
                        policy: self.policy.name().to_string(),
                        invariant: inv,
                    })?;
                violations.push(Found {
                    invariant: inv,
                    transitions: n,
                    counterexample,
                });
            }
        }
        Ok(CheckReport {
            policy: self.policy.name().to_string(),
            device: self.device,
            symmetry: self.symmetry,
            unique_states: levels.iter().sum(),
            transitions,
            max_depth: levels.len() as u32 - 1,
            levels,
            violations,
            visited_bytes: shards.iter().map(KeySet::bytes).sum(),
            peak_frontier: peak,
            seconds,
        })
    }

    #[inline]
    fn key(&self, packer: &Packer, state: &model::State) -> u64 {
        if self.symmetry {
            packer.pack_canonical(state)
        } else {
            packer.pack(state)
        }
    }

    /// The breadth-first search. With `per_transition` false, the state
    /// invariants are checked once per state (see `state_verdict`), and
    /// `None` means that a successor did not round-trip through its key.
    fn search(&self, packer: &Packer, per_transition: bool) -> Option<Searched> {
        let mut shards: Vec<KeySet> = (0..SHARDS).map(|_| KeySet::with_capacity(64)).collect();
        let init = self.key(packer, &self.device.initial());
        shards[shard_of(init)].insert(init);
        // Per shard, the known states that violate a state invariant, with
        // their verdicts. The initial state is reached by no transition, so
        // its verdict counts nothing, but a transition back to it would.
        // One set per state invariant: the keys of states that violate it.
        let mut bad: Vec<[KeySet; 3]> = (0..SHARDS)
            .map(|_| std::array::from_fn(|_| KeySet::with_capacity(0)))
            .collect();
        let init_verdict = if per_transition {
            InvariantSet::EMPTY
        } else {
            self.state_verdict(packer, init)
        };
        remember(&mut bad[shard_of(init)], init, init_verdict);
        let mut frontier = vec![init];
        let mut levels = vec![1u64];
        let mut transitions = 0u64;
        let mut violated = [0u64; 4];
        let mut peak = 1usize;
        loop {
            let chunks: Vec<ChunkOut> = frontier
                .par_chunks(CHUNK)
                .map(|chunk| self.expand(packer, chunk, per_transition))
                .collect();
            if !per_transition && chunks.iter().any(|c| c.inexact) {
                return None;
            }
            for c in &chunks {
                transitions += c.transitions;
                for (v, n) in violated.iter_mut().zip(c.violated) {
                    *v += n;
                }
            }
            let next: Vec<(Vec<u64>, [u64; 4])> = shards
                .par_iter_mut()
                .zip(bad.par_iter_mut())
                .enumerate()
                .map(|(s, (set, bad))| {
                    let mut fresh = Vec::new();
                    let mut violated = [0u64; 4];
                    // Whether this shard knows a violating state yet (none, for
                    // a correct policy: then duplicates cost no extra probe).
                    let mut any_bad = bad.iter().any(|known| !known.is_empty());
                    for c in &chunks {
                        for &k in &c.buckets[s] {
                            if set.insert(k) {
                                fresh.push(k);
                                let v = if per_transition {
                                    InvariantSet::EMPTY
                                } else {
                                    self.state_verdict(packer, k)
                                };
                                if !v.is_empty() {
                                    any_bad = true;
                                    remember(bad, k, v);
                                    count(&mut violated, v);
                                }
                            } else if any_bad {
                                for (known, inv) in bad.iter().zip(STATE_INVARIANTS) {
                                    if known.contains(k) {
                                        violated[inv as usize] += 1;
                                    }
                                }
                            }
                        }
                    }
                    (fresh, violated)
                })
                .collect();
            drop(chunks);
            for (_, v) in &next {
                for (total, n) in violated.iter_mut().zip(v) {
                    *total += n;
                }
            }
            let n: usize = next.iter().map(|(f, _)| f.len()).sum();
            if n == 0 {
                break;
            }
            peak = peak.max(frontier.len() + n);
            let mut nf = Vec::with_capacity(n);
            for (part, _) in next {
                nf.extend_from_slice(&part);
            }
            nf.par_sort_unstable();
            frontier = nf;
            levels.push(n as u64);
        }
        Some((levels, transitions, violated, shards, peak))
    }

    /// The state invariants of the state packed in `key`. They depend on
    /// that state alone, so the search checks them once, when the state is
    /// first discovered, and counts the verdict again for every later
    /// transition into it: the same counts as checking every transition.
    #[inline]
    fn state_verdict(&self, packer: &Packer, key: u64) -> InvariantSet {
        // A canonical key (with symmetry) unpacks to a permutation of
        // same-size slots of the state it stands for, and the state
        // invariants do not tell such slots apart.
        invariant::check_state(&self.device, &packer.unpack(key))
    }

    fn expand(&self, packer: &Packer, chunk: &[u64], per_transition: bool) -> ChunkOut {
        let mut out = ChunkOut {
            buckets: (0..SHARDS)
                // About 8.5 successors a state, spread over the shards.
                .map(|_| Vec::with_capacity(chunk.len() * 10 / SHARDS + 8))
                .collect(),
            transitions: 0,
            violated: [0; 4],
            inexact: false,
        };
        let mut codes = [0u64; MAX_VMS];
        let mut actions = [Action::takeover(); MAX_ENABLED];
        for &key in chunk {
            let state = packer.unpack(key);
            if self.symmetry {
                packer.codes(&state, &mut codes);
            }
            let n = model::enabled_into(self.policy, &self.device, &state, &mut actions);
            out.transitions += n as u64;
            for &a in &actions[..n] {
                // `model::step`, with the state invariants left to the
                // insertion phase (see `state_verdict`); the step
                // invariant needs the state before the step, so it is
                // checked here, on every transition.
                let mut next = state;
                model::apply_in_place(self.policy, &self.device, &mut next, a);
                let mut verdict = invariant::check_step(&state, &next);
                if per_transition {
                    verdict = verdict.union(invariant::check_state(&self.device, &next));
                }
                if !verdict.is_empty() {
                    count(&mut out.violated, verdict);
                }
                let (k, exact) = if self.symmetry {
                    packer.pack_canonical_from_exact(&state, &codes, &next)
                } else {
                    packer.pack_exact(&next)
                };
                out.inexact |= !exact;
                out.buckets[shard_of(k)].push(k);
            }
        }
        out
    }
}

/// The invariants [`invariant::check_state`] judges.
const STATE_INVARIANTS: [Invariant; 3] = [
    Invariant::NoDoubleClaim,
    Invariant::Conservation,
    Invariant::HoldsMatchState,
];

/// Adds `key` to the set of each state invariant its `verdict` names.
fn remember(bad: &mut [KeySet; 3], key: u64, verdict: InvariantSet) {
    for (known, inv) in bad.iter_mut().zip(STATE_INVARIANTS) {
        if verdict.contains(inv) {
            known.insert(key);
        }
    }
}

#[inline]
fn count(violated: &mut [u64; 4], set: InvariantSet) {
    for inv in set.iter() {
        violated[inv as usize] += 1;
    }
}

#[inline]
fn shard_of(key: u64) -> usize {
    (crate::pack::mix(key) >> (64 - SHARDS.trailing_zeros())) as usize
}

/// A shortest trace from the initial state whose last action violates
/// `target`: the first violating transition met by a sequential
/// breadth-first search that expands states level by level in discovery
/// order and actions in [`model::for_each_enabled`] order. `None` when no
/// reachable transition violates it. Identity is the full state (no
/// symmetry), so the trace uses the slots the search met first.
pub fn shortest_counterexample<P: Policy + ?Sized>(
    policy: &P,
    device: &Device,
    target: Invariant,
) -> Option<Vec<Action>> {
    let packer = Packer::new(device);
    if !packer.fits_u64() {
        return None;
    }
    let init = packer.pack(&device.initial());
    // key -> (parent key, action from the parent)
    let mut parent: HashMap<u64, (u64, Action)> = HashMap::new();
    let mut seen = KeySet::default();
    seen.insert(init);
    let mut frontier = vec![init];
    while !frontier.is_empty() {
        let mut next = Vec::new();
        for &key in &frontier {
            let state = packer.unpack(key);
            let mut hit = None;
            model::for_each_enabled(policy, device, &state, |a| {
                if hit.is_some() {
                    return;
                }
                let t = model::step(policy, device, &state, a);
                if t.violations.contains(target) {
                    hit = Some(a);
                    return;
                }
                let k = packer.pack(&t.state);
                if seen.insert(k) {
                    parent.insert(k, (key, a));
                    next.push(k);
                }
            });
            if let Some(last) = hit {
                let mut trace = vec![last];
                let mut at = key;
                while let Some(&(p, a)) = parent.get(&at) {
                    trace.push(a);
                    at = p;
                }
                trace.reverse();
                return Some(trace);
            }
        }
        frontier = next;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::State;
    use crate::policy::Builtin;

    /// Forgets to clear `held[vm]` on release: violates state invariants
    /// on many transitions, every successor round-trips.
    struct Forgetful;
    impl Policy for Forgetful {
        fn name(&self) -> &str {
            "forgetful"
        }
        fn release(&self, state: &mut State, vm: usize) {
            state.free |= state.vms[vm].held;
        }
    }

    /// Gives Kubernetes a GPU the 1-GPU device does not have.
    struct Phantom;
    impl Policy for Phantom {
        fn name(&self) -> &str {
            "phantom"
        }
        fn end_configure(&self, state: &mut State) {
            state.kube_takes_free();
            state.kube_held |= 0b10;
        }
    }

    fn counts<P: Policy + ?Sized>(c: &Checker<'_, P>, per_transition: bool) -> Option<Searched> {
        let packer = Packer::new(&c.device);
        c.search(&packer, per_transition)
    }

    /// Checking state invariants once per state gives the counts of
    /// checking every transition, with and without symmetry.
    #[test]
    fn once_per_state_counts_like_every_transition() {
        let d = Device::uniform(2, 3, 1).unwrap();
        for symmetry in [false, true] {
            let policies: [&dyn Policy; 4] = [
                &Builtin::Fixed,
                &Builtin::Legacy,
                &Builtin::Snapshot,
                &Forgetful,
            ];
            for p in policies {
                let c = Checker::new(p, d).symmetry(symmetry);
                let (l1, t1, v1, _, _) = counts(&c, false).unwrap();
                let (l2, t2, v2, _, _) = counts(&c, true).unwrap();
                assert_eq!((l1, t1, v1), (l2, t2, v2), "{} {symmetry}", p.name());
            }
        }
        let c = Checker::new(&Forgetful, d);
        let (_, _, v, _, _) = counts(&c, false).unwrap();
        assert!(v[Invariant::NoDoubleClaim as usize] > 0);
        assert!(v[Invariant::HoldsMatchState as usize] > 0);
    }

    /// A successor whose key loses a GPU sends the search back to checking
    /// every transition, which sees the phantom GPU on every one.
    #[test]
    fn a_state_that_does_not_round_trip_falls_back() {
        let d = Device::uniform(1, 1, 1).unwrap();
        let c = Checker::new(&Phantom, d);
        assert!(counts(&c, false).is_none());
        let report = c.run().unwrap();
        let (_, _, v, _, _) = counts(&c, true).unwrap();
        let found = report.violated(Invariant::Conservation).unwrap();
        assert_eq!(found.transitions, v[Invariant::Conservation as usize]);
        assert!(found.transitions > 0);
    }
}
