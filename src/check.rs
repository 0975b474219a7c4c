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
//! The search goes level by level, with delayed duplicate detection: no
//! key is looked up as it is made. Each level has two phases, both run in
//! parallel: (1) the frontier is cut into fixed-size chunks; each chunk's
//! states are expanded and every successor's key is mixed
//! ([`crate::pack::mix`], a bijection, so mixed keys are as exact as keys
//! and uniformly spread) and routed to one of [`SHARDS`] buckets by its top
//! bits; (2) each shard radix-sorts the mixed keys routed to it, counts the
//! transitions into each distinct one, finds the new ones by a merge with
//! the shard's visited keys (one sorted `u64` array per shard: 8 bytes a
//! state), judges them, merges them in, and hands their keys
//! ([`crate::pack::unmix`]) to the next frontier, which is ordered by its
//! keys' top bits so that similar states are expanded together. Chunking
//! and sharding do not depend on the thread count, so neither the counts
//! nor the order of the frontier do.
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
use crate::pack::{KeySet, Packer, mix, unmix};
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
    /// Bytes of the visited set at the end.
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

#[derive(Default)]
struct ChunkOut {
    buckets: Vec<Vec<u64>>,
    transitions: u64,
    violated: [u64; 4],
    /// Some successor is not exactly the state its key unpacks to.
    inexact: bool,
}

/// What a search found: unique states per level, transitions, violating
/// transitions per invariant, the visited set and the peak frontier.
type Searched = (Vec<u64>, u64, [u64; 4], Vec<Vec<u64>>, usize);

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
            visited_bytes: shards.iter().map(|s| s.capacity() * 8).sum(),
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
        // Per shard, the mixed keys (`pack::mix`, a bijection) of every
        // state seen so far, sorted.
        let mut shards: Vec<Vec<u64>> = (0..SHARDS).map(|_| Vec::new()).collect();
        let init = self.key(packer, &self.device.initial());
        let init_h = mix(init);
        shards[shard_of_mixed(init_h)].push(init_h);
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
        remember(&mut bad[shard_of_mixed(init_h)], init, init_verdict);
        let mut frontier = vec![init];
        let mut levels = vec![1u64];
        let mut transitions = 0u64;
        let mut violated = [0u64; 4];
        let mut peak = 1usize;
        loop {
            let mut chunks: Vec<ChunkOut> = frontier
                .chunks(CHUNK)
                .map(|_| ChunkOut::default())
                .collect();
            frontier
                .par_chunks(CHUNK)
                .zip(chunks.par_iter_mut())
                .for_each(|(chunk, out)| self.expand(packer, chunk, per_transition, out));
            let chunks = &chunks[..];
            if !per_transition && chunks.iter().any(|c| c.inexact) {
                return None;
            }
            for c in chunks {
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
                    self.merge_shard(packer, s, chunks, set, bad, per_transition)
                })
                .collect();
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
            // Frontier order does not change the counts; states with
            // the same top key bits (Kubernetes, the GPU sets, the first
            // VMs) next to each other make the expansion's branches
            // predictable.
            frontier = sort_by_top_bits(nf, packer.bits());
            levels.push(n as u64);
        }
        Some((levels, transitions, violated, shards, peak))
    }

    /// Delayed duplicate detection for one shard: sorts the mixed keys
    /// the chunks routed to shard `s`, counts each one's transitions,
    /// finds the new ones by a merge against the shard's sorted visited
    /// keys, judges them, and merges them in. Returns the new states' keys
    /// and the violating transitions into the shard's states.
    fn merge_shard(
        &self,
        packer: &Packer,
        s: usize,
        chunks: &[ChunkOut],
        set: &mut Vec<u64>,
        bad: &mut [KeySet; 3],
        per_transition: bool,
    ) -> (Vec<u64>, [u64; 4]) {
        SCRATCH.with_borrow_mut(|(a, b, starts)| {
            let n: usize = chunks.iter().map(|c| c.buckets[s].len()).sum();
            radix_sort(chunks.iter().map(|c| c.buckets[s].as_slice()), n, a, b);
            // Each distinct key once, in `b[..u]`, with where its run of
            // transitions starts in the sorted keys (branch-free).
            if starts.len() < n + 1 {
                starts.resize(n + 1, 0);
            }
            let mut u = 0;
            let mut prev = None;
            for i in 0..n {
                let h = b[i];
                b[u] = h;
                starts[u] = i as u32;
                u += usize::from(prev != Some(h));
                prev = Some(h);
            }
            starts[u] = n as u32;
            let distinct = &b[..u];
            let mut fresh = Vec::new();
            let mut keys = Vec::new();
            let mut violated = [0u64; 4];
            // Whether this shard knows a violating state yet (none, for a
            // correct policy: then duplicates cost no extra lookup).
            let mut any_bad = bad.iter().any(|known| !known.is_empty());
            let seen = set.as_slice();
            let mut j = 0;
            for (d, &h) in distinct.iter().enumerate() {
                // The first visited key not below `h`, eight at a time.
                while j + 8 <= seen.len() {
                    let below: usize = seen[j..j + 8].iter().map(|&x| usize::from(x < h)).sum();
                    j += below;
                    if below < 8 {
                        break;
                    }
                }
                while j < seen.len() && seen[j] < h {
                    j += 1;
                }
                let m = u64::from(starts[d + 1] - starts[d]);
                if j < seen.len() && seen[j] == h {
                    if any_bad {
                        let key = unmix(h);
                        for (known, inv) in bad.iter().zip(STATE_INVARIANTS) {
                            if known.contains(key) {
                                violated[inv as usize] += m;
                            }
                        }
                    }
                } else {
                    fresh.push(h);
                    let key = unmix(h);
                    keys.push(key);
                    let v = if per_transition {
                        InvariantSet::EMPTY
                    } else {
                        self.state_verdict(packer, key)
                    };
                    if !v.is_empty() {
                        any_bad = true;
                        remember(bad, key, v);
                        count(&mut violated, v, m);
                    }
                }
            }
            merge_into(set, &fresh);
            (keys, violated)
        })
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

    /// Expands `chunk` into `out`, a new [`ChunkOut`].
    fn expand(&self, packer: &Packer, chunk: &[u64], per_transition: bool, out: &mut ChunkOut) {
        // About 8.5 successors a state, spread over the shards.
        out.buckets = (0..SHARDS)
            .map(|_| Vec::with_capacity(chunk.len() * 10 / SHARDS + 8))
            .collect();
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
                    count(&mut out.violated, verdict, 1);
                }
                let (k, exact) = if self.symmetry {
                    packer.pack_canonical_from_exact(&state, &codes, &next)
                } else {
                    packer.pack_exact(&next)
                };
                out.inexact |= !exact;
                let h = mix(k);
                out.buckets[shard_of_mixed(h)].push(h);
            }
        }
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
fn count(violated: &mut [u64; 4], set: InvariantSet, times: u64) {
    for inv in set.iter() {
        violated[inv as usize] += times;
    }
}

/// The shard of a mixed key: its top bits.
#[inline]
fn shard_of_mixed(h: u64) -> usize {
    (h >> (64 - SHARDS.trailing_zeros())) as usize
}

/// `keys` ordered by their top `2 * DIGIT` bits (keys of `bits` bits),
/// stably: two least-significant-digit radix passes.
fn sort_by_top_bits(keys: Vec<u64>, bits: u32) -> Vec<u64> {
    const R: usize = 1 << DIGIT;
    const MASK: u64 = R as u64 - 1;
    let low = bits.saturating_sub(2 * DIGIT);
    let mut lo = vec![0usize; R];
    let mut hi = vec![0usize; R];
    for &k in &keys {
        lo[((k >> low) & MASK) as usize] += 1;
        hi[((k >> (low + DIGIT)) & MASK) as usize] += 1;
    }
    let (mut sl, mut sh) = (0, 0);
    for (l, h) in lo.iter_mut().zip(hi.iter_mut()) {
        (sl, *l) = (sl + *l, sl);
        (sh, *h) = (sh + *h, sh);
    }
    let mut tmp = vec![0u64; keys.len()];
    for &k in &keys {
        let d = ((k >> low) & MASK) as usize;
        tmp[lo[d]] = k;
        lo[d] += 1;
    }
    let mut out = keys;
    for &k in &tmp {
        let d = ((k >> (low + DIGIT)) & MASK) as usize;
        out[hi[d]] = k;
        hi[d] += 1;
    }
    out
}

/// Bits of each radix-sort digit, and the lowest bit the sort orders by
/// (two digits under the shard's bits; the rest by insertion sort).
const DIGIT: u32 = 11;
const LOW: u32 = 64 - SHARDS.trailing_zeros() - 2 * DIGIT;

thread_local! {
    /// Each worker's radix-sort buffers, kept across shards and levels.
    static SCRATCH: std::cell::RefCell<(Vec<u64>, Vec<u64>, Vec<u32>)> =
        const { std::cell::RefCell::new((Vec::new(), Vec::new(), Vec::new())) };
}

/// Sorts the `n` mixed keys of `parts` (all of one shard) into `b[..n]`:
/// two least-significant-digit passes over the [`DIGIT`]-bit digits under
/// the shard's bits, then an insertion sort, which has almost nothing to
/// do: mixed keys are uniform, so few share their top bits.
fn radix_sort<'p>(
    parts: impl Iterator<Item = &'p [u64]> + Clone,
    n: usize,
    a: &mut Vec<u64>,
    b: &mut Vec<u64>,
) {
    const R: usize = 1 << DIGIT;
    const MASK: u64 = R as u64 - 1;
    if a.len() < n {
        a.resize(n, 0);
        b.resize(n, 0);
    }
    let mut lo = [0u32; R];
    let mut hi = [0u32; R];
    for part in parts.clone() {
        for &h in part {
            lo[((h >> LOW) & MASK) as usize] += 1;
            hi[((h >> (LOW + DIGIT)) & MASK) as usize] += 1;
        }
    }
    let (mut sl, mut sh) = (0u32, 0u32);
    for (l, h) in lo.iter_mut().zip(hi.iter_mut()) {
        (sl, *l) = (sl + *l, sl);
        (sh, *h) = (sh + *h, sh);
    }
    for part in parts {
        for &h in part {
            let d = ((h >> LOW) & MASK) as usize;
            a[lo[d] as usize] = h;
            lo[d] += 1;
        }
    }
    for &h in &a[..n] {
        let d = ((h >> (LOW + DIGIT)) & MASK) as usize;
        b[hi[d] as usize] = h;
        hi[d] += 1;
    }
    let b = &mut b[..n];
    for i in 1..n {
        let x = b[i];
        let mut j = i;
        while j > 0 && b[j - 1] > x {
            b[j] = b[j - 1];
            j -= 1;
        }
        b[j] = x;
    }
}

/// Merges the sorted `fresh` keys (none of them in `set`) into the sorted
/// `set`, in place from the back.
fn merge_into(set: &mut Vec<u64>, fresh: &[u64]) {
    let old = set.len();
    set.reserve_exact(fresh.len());
    set.resize(old + fresh.len(), 0);
    let (mut a, mut b) = (old, fresh.len());
    while b > 0 {
        let k = a + b - 1;
        if a > 0 && set[a - 1] > fresh[b - 1] {
            set[k] = set[a - 1];
            a -= 1;
        } else {
            set[k] = fresh[b - 1];
            b -= 1;
        }
    }
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
