//! The exhaustive checker behind `gpuclaim check`: a breadth-first search
//! over every state reachable from the initial one, judging every
//! invariant on every transition.
//!
//! The state invariants depend on the state after a step only, so each is
//! judged once, when the search first inserts a state into the visited
//! set, and its verdict is stored with the state's key (three tag bits) and
//! counted again for every later transition into that state; the step
//! invariant `no-steal-after-dealloc` needs the state before the step too
//! and is judged on every transition. The counts, and so the report, are
//! those of judging every transition with [`model::step`]. That rests on a
//! key saying everything about its state; when a policy makes a state its
//! key does not keep (a GPU the device does not have, a changed slot size),
//! or a key leaves no room for the tag, the search runs (again) judging
//! every transition.
//!
//! State identity is MODEL.md's, through [`Packer`] (exact `u64` keys; a
//! device whose state needs more than 64 bits is refused). With symmetry
//! reduction on, a state stands for its class under permutations of
//! same-size VM slots ([`Packer::pack_canonical`]).
//!
//! The search goes level by level, and each level in chunks of 512
//! frontier states, which the workers take one at a time, each inserting
//! successors into the visited set (one table shared by every worker,
//! [`SharedKeySet`]) with a compare-and-swap and keeping the successors it
//! inserted first as its part of the next level, whose chunks it takes
//! first (see `Round`). The table grows between
//! rounds: a round hands out chunks until the table is due to grow (3/4
//! full, unless the levels have begun to shrink and the states they
//! promise still fit in 7/8 of it: `expected_more`; the last growth of a
//! search would otherwise often move every key for its last few thousand
//! states) or has no room left for every successor the chunks handed out
//! could still add (their action counts); then it grows, and the next
//! round goes on with the level. So the workers wait for each other only
//! when the table grows and at the end of a level (on G=2 V=7, 50 times on
//! its 33 levels). Which worker inserts a state first, and so the order
//! of the next level, may differ between runs on several threads; the set
//! of states of each level, and every count, does not (see
//! `counts_like_the_plainest_checker`).
//!
//! Within a chunk the actions are taken kind by kind
//! ([`model::for_each_enabled_kind`]), so each kind's path through the
//! model runs many times in a row; a successor's key is the parent's with
//! the changed parts replaced when the step changed only its own slot
//! ([`Packer::pack_step`]); and its bucket in the table is prefetched a
//! batch of 32 transitions before it is looked up.
//!
//! For a slot-local policy ([`Allocator::slot_local`]: every built-in one),
//! without symmetry, the search does not step at all: a state's successor
//! by a VM's action depends only on that slot's part of the key and the
//! head, so a table made before the search (`LocalTable`, by stepping
//! each action once per such combination) gives each successor's key and
//! the step invariants' verdict on it; and a new state's state invariants
//! and action count come from its key's parts too (`LocalTable::judge`,
//! a sum of per-part tables that equals [`invariant::check_state`]).
//! The table is used only if it gives what stepping gives on a sample of
//! the reachable states (`local::agrees_on_sample`: a policy may say it is
//! slot-local and still read another slot). A chunk's successors are all
//! found first, then inserted in one stream, each bucket prefetched 64
//! insertions ahead. An action that leads back to its own state
//! (starting a stopped VM with no GPU free: `no-gpu`, nothing changes;
//! about one transition in nine on G=2 V=7) is counted
//! without a look-up: its target is the state being expanded, in the set
//! already, whose verdict is known (a frontier state's action count
//! carries a bit, `VIOLATES`, for the rare state that breaks a state
//! invariant, whose verdict is then judged again from its key).
//! `counts_like_the_plainest_checker` runs both ways.
//!
//! What a probe of the visited set costs decides the speed of the search;
//! `SharedKeySet` compares a bucket's eight slots at once and grows in
//! place (see `pack.rs` and BENCHMARKS.md).
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

use crate::invariant::{self, Invariant, InvariantSet};
use crate::local::{LocalTable, SLACK};
use crate::model::{self, Action, Device, MAX_VMS, State};
use crate::pack::{KeySet, Packer, SharedKeySet};
use crate::policy::Allocator;

/// Frontier states per work unit.
const CHUNK: usize = 512;
/// Transitions applied, judged and inserted together.
const BATCH: usize = 32;
/// In a frontier state's action count, with a successor table: the state
/// violates some state invariant (a count is at most `3 * MAX_VMS + 2`,
/// below this bit).
const VIOLATES: u8 = 0x80;

/// Why a check could not run.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CheckError {
    #[error(
        "a state of this device needs {bits} bits, more than the checker's 64-bit keys; with {} it takes at most {most_vms} VM slots",
        crate::report::count(u64::from(*.gpus), "GPU", "GPUs")
    )]
    TooLarge {
        bits: u32,
        gpus: u8,
        /// The most VM slots whose states fit 64 bits with these GPUs.
        most_vms: u32,
    },
    #[error(
        "allocator `{policy}` does not declare its VM slots interchangeable (Allocator::symmetric, or `symmetric` in the protocol's handshake), so symmetry reduction does not apply to it; check without --symmetry"
    )]
    SymmetryNotDeclared { policy: String },
    #[error(
        "allocator `{policy}` cannot be brought back to a state it was in (an allocator in another process needs the `export` feature, with `import`, for that), and the exhaustive checker steps every state it finds from its saved copy; explore it instead, or add export/import (docs/allocator-protocol.md)"
    )]
    CannotRestore { policy: String },
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

/// What a check found. Everything but `seconds` and `visited_bytes` is the
/// same for every thread count and every run.
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
    /// Bytes of the visited set's table at the end. On one thread the same
    /// on every run; on several it may differ a little between runs, since
    /// when the table grows depends on the order in which the workers found
    /// the states of a level.
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
pub struct Checker<'a, P: Allocator + ?Sized> {
    policy: &'a P,
    device: Device,
    threads: usize,
    symmetry: bool,
    on_level: Option<&'a (dyn Fn(Progress) + Sync)>,
}

/// How far a check has got, after each breadth-first level
/// ([`Checker::on_level`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    /// The depth of the level just found (the initial state's is 0).
    pub depth: u32,
    /// Distinct states found so far, this level included.
    pub unique_states: u64,
    /// Transitions taken so far: those of every state above this level.
    pub transitions: u64,
}

/// What one worker found in a level: its part of the next one, and its
/// counts. Aligned so that no two workers' outputs share a cache line (a
/// line written by both would move between their cores at every push).
#[derive(Default)]
#[repr(align(128))]
struct WorkerOut {
    /// Successors this worker inserted into the visited set first.
    fresh: Vec<u64>,
    /// How many actions each of them enables.
    fresh_actions: Vec<u8>,
    transitions: u64,
    violated: [u64; Invariant::COUNT],
    /// Some successor is not exactly the state its key unpacks to.
    inexact: bool,
}

/// One round of a level: its chunks go to the workers one at a time, as
/// long as the visited set is not due to grow and has room for every
/// successor they could add (their bound). The level comes in pieces, one
/// per worker: the states that worker found first. A worker takes its own
/// piece's chunks from the front, and when it has none left, the last
/// chunk of the piece with the most left (`Round::take`).
///
/// That keeps a worker on the states it found, whose neighbours it mostly
/// found too: a breadth-first search keeps coming back to states found a
/// level or two before, and a bucket that one worker wrote and the other
/// then reads must cross between their cores (on the EPYC host of
/// BENCHMARKS.md, 250 ns one way). With chunks handed out in order, two threads'
/// chunks took 22% more worker time than one thread's; keeping to their
/// pieces, 12% (BENCHMARKS.md).
struct Round<'b> {
    /// Per chunk of the level, the most successors it can insert.
    bounds: &'b [usize],
    /// Keys in the visited set when the round began.
    base: usize,
    /// Most keys the set may hold before it grows (15/16 of its slots).
    cap: usize,
    /// The guess of states still to come (`expected_more`).
    expected: usize,
    claims: std::sync::Mutex<Claims>,
}

/// Where a round has got to.
struct Claims {
    /// Per piece of the frontier, the range of its chunks not yet handed
    /// out (indices into the level's chunks).
    cursors: Vec<(usize, usize)>,
    /// Keys inserted by the chunks done in this round.
    added: usize,
    /// The bounds of the chunks handed out and not yet done.
    outstanding: usize,
}

impl Round<'_> {
    /// Reports worker `me`'s last chunk done (its bound, and the keys it
    /// inserted) and hands it the next one, if the round goes on: the
    /// first left of piece `me`, else the last of the piece with the most
    /// left.
    fn take(&self, set: &SharedKeySet, done: Option<(usize, usize)>, me: usize) -> Option<usize> {
        let mut c = self
            .claims
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((bound, inserted)) = done {
            c.outstanding -= bound;
            c.added += inserted;
        }
        let own = c.cursors.get(me).is_some_and(|&(n, e)| n < e);
        let (pick, i) = if own {
            (me, c.cursors[me].0)
        } else {
            let (pick, &(n, e)) = c
                .cursors
                .iter()
                .enumerate()
                .max_by_key(|(_, (n, e))| e - n)?;
            if n == e {
                return None;
            }
            (pick, e - 1)
        };
        let bound = self.bounds[i];
        let len = self.base + c.added;
        if set.due_to_grow(len, self.expected) || len + c.outstanding + bound > self.cap {
            return None;
        }
        if own {
            c.cursors[pick].0 += 1;
        } else {
            c.cursors[pick].1 -= 1;
        }
        c.outstanding += bound;
        Some(i)
    }
}

/// A worker's buffers, kept from chunk to chunk.
struct Scratch {
    states: Vec<State>,
    /// Per state, with symmetry: its VMs' parts of the key.
    codes: Vec<[u64; MAX_VMS]>,
    /// Per kind of action ([`model::for_each_enabled_kind`]), a stretch of
    /// `stride` entries: the enabled actions of that kind, as state index
    /// << 8 | slot.
    kinds: Vec<u32>,
    stride: usize,
    /// With a [`LocalTable`]: successor keys and their buckets, in the
    /// order found.
    keys: Vec<u64>,
    homes: Vec<usize>,
}

impl Scratch {
    /// Makes room for a chunk of a device with `vms` slots.
    fn fit(&mut self, vms: usize) {
        // A state has at most one action of a kind per slot (and one of
        // each of Kubernetes' kinds).
        self.stride = CHUNK * vms.max(1);
        let need = model::ACTION_KINDS * self.stride;
        if self.kinds.len() < need {
            self.kinds.resize(need, 0);
        }
    }
}

thread_local! {
    /// Each worker's [`Scratch`], kept from check to check.
    static SCRATCH: std::cell::RefCell<Scratch> = const {
        std::cell::RefCell::new(Scratch {
            states: Vec::new(),
            codes: Vec::new(),
            kinds: Vec::new(),
            stride: 0,
            keys: Vec::new(),
            homes: Vec::new(),
        })
    };
}

/// How the search judges the state invariants.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Judge {
    /// Once per state, when it is first inserted; its verdict is kept as
    /// the tag of its key in the visited set and counted again for every
    /// later transition into it.
    OncePerState,
    /// On every transition.
    EveryTransition,
}

/// Tag bits of a key in the visited set with [`Judge::OncePerState`]: one
/// per state invariant.
const TAG_BITS: u32 = 3;

/// What a search found: unique states per level, transitions, violating
/// transitions per invariant, the visited set's bytes and the peak
/// frontier.
type Searched = (Vec<u64>, u64, [u64; Invariant::COUNT], usize, usize);

impl<'a, P: Allocator + ?Sized> Checker<'a, P> {
    pub fn new(policy: &'a P, device: Device) -> Self {
        Checker {
            policy,
            device,
            threads: 0,
            symmetry: false,
            on_level: None,
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
    /// Calls `f` after each breadth-first level is found, one call at a
    /// time, for a progress display. When the search starts again judging
    /// every transition (a policy that makes states its keys do not keep;
    /// see the module documentation), it reports its levels again from
    /// depth 1.
    pub fn on_level(mut self, f: &'a (dyn Fn(Progress) + Sync)) -> Self {
        self.on_level = Some(f);
        self
    }

    pub fn run(&self) -> Result<CheckReport, CheckError> {
        if self.symmetry && !self.policy.symmetric() {
            return Err(CheckError::SymmetryNotDeclared {
                policy: self.policy.name().to_string(),
            });
        }
        if !self.policy.restores() {
            return Err(CheckError::CannotRestore {
                policy: self.policy.name().to_string(),
            });
        }
        let packer = Packer::for_allocator(&self.device, self.policy);
        if !packer.fits_u64() {
            let g = u32::from(self.device.gpus());
            return Err(CheckError::TooLarge {
                bits: packer.bits(),
                gpus: self.device.gpus(),
                // The head (`free`, `held[kube]`, the memo, Kubernetes'
                // state) and 4 + G bits a slot (see `Packer`).
                most_vms: 64u32.saturating_sub(packer.bits() - packer.body_bits()) / (4 + g),
            });
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(self.threads)
            .build()
            .expect("building the worker pool");
        let start = Instant::now();
        let (levels, transitions, violated, visited_bytes, peak) =
            pool.install(|| self.search_any(&packer));
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
            visited_bytes,
            peak_frontier: peak,
            seconds,
        })
    }

    /// The search, judging state invariants once per state when the keys
    /// leave room for the verdict's tag and every successor is exactly the
    /// state its key unpacks to; otherwise (a policy that puts a GPU the
    /// device lacks into a set, or changes a slot's size, makes states its
    /// keys do not keep) on every transition, as `model::step` does.
    fn search_any(&self, packer: &Packer) -> Searched {
        if packer.bits() + TAG_BITS <= 64 {
            // A table only where a sample of the reachable states agrees
            // with stepping them (`local::agrees_on_sample`).
            let table = if self.symmetry {
                None
            } else {
                LocalTable::new(self.policy, &self.device, packer).filter(|table| {
                    crate::local::agrees_on_sample(table, self.policy, &self.device, packer)
                })
            };
            if let Some(found) = self.search(packer, Judge::OncePerState, table.as_ref()) {
                return found;
            }
        }
        self.search(packer, Judge::EveryTransition, None)
            .expect("judging every transition needs no exact keys")
    }

    #[inline]
    fn key(&self, packer: &Packer, state: &State) -> u64 {
        if self.symmetry {
            packer.pack_canonical(state)
        } else {
            packer.pack(state)
        }
    }

    /// The breadth-first search, level by level; each level in rounds
    /// that end when the visited set must grow (see the module
    /// documentation and [`Round`]). `None` when judging
    /// once per state and a successor is not exactly its key's state.
    ///
    /// With `table` (judging once per state, no symmetry), successors are
    /// looked up in it instead of stepped ([`Checker::expand_local`]).
    fn search(
        &self,
        packer: &Packer,
        judge: Judge,
        table: Option<&LocalTable>,
    ) -> Option<Searched> {
        let tag_bits = if judge == Judge::OncePerState {
            TAG_BITS
        } else {
            0
        };
        let mut set = SharedKeySet::with_capacity(64, tag_bits);
        let init = self.key(packer, &self.device.initial());
        set.reserve(0, 1);
        // The initial state is reached by no transition: its verdict counts
        // nothing, but a transition back to it would.
        let init_tag = match judge {
            Judge::OncePerState => {
                u64::from(invariant::check_state(&self.device, &packer.unpack(init)).bits())
            }
            Judge::EveryTransition => 0,
        };
        set.insert_with(init, set.home(init), || init_tag);
        let mut unique = 1usize;
        // The frontier, in pieces: one per worker (the states it inserted
        // first; the initial level is one piece), each with how many
        // actions its states enable (a round adds at most that many
        // states).
        let mut frontier = vec![(
            vec![init],
            vec![self.actions(packer, init) | if init_tag != 0 { VIOLATES } else { 0 }],
        )];
        let mut levels = vec![1u64];
        let mut transitions = 0u64;
        let mut violated = [0u64; Invariant::COUNT];
        let mut peak = 1usize;
        let vms = self.device.vms();
        let workers = rayon::current_num_threads();
        let mut spare: Vec<(Vec<u64>, Vec<u8>)> = Vec::new();
        loop {
            let mut chunks = Vec::new();
            let mut bounds: Vec<usize> = Vec::new();
            let mut cursors = Vec::new();
            for (keys, actions) in &frontier {
                let first = chunks.len();
                for (chunk, actions) in keys.chunks(CHUNK).zip(actions.chunks(CHUNK)) {
                    chunks.push((chunk, actions));
                    bounds.push(actions.iter().map(|&n| usize::from(n & !VIOLATES)).sum());
                }
                cursors.push((first, chunks.len()));
            }
            // The workers' parts of the next level go in the buffers of the
            // level before this one, whose memory is in use already.
            let outs: Vec<std::sync::Mutex<WorkerOut>> = (0..workers)
                .map(|_| {
                    let (mut fresh, mut fresh_actions) = spare.pop().unwrap_or_default();
                    fresh.clear();
                    fresh_actions.clear();
                    std::sync::Mutex::new(WorkerOut {
                        fresh,
                        fresh_actions,
                        ..Default::default()
                    })
                })
                .collect();
            // The frontier is the last level found.
            let expected = expected_more(&levels);
            let left =
                |cursors: &[(usize, usize)]| cursors.iter().map(|(n, e)| e - n).sum::<usize>();
            while left(&cursors) > 0 {
                // A round goes on until the visited set is due to grow (3/4
                // full, unless the levels promise few more states:
                // `expected_more`) or has no room left for what the next
                // chunk could add; so the set's size follows the states it
                // holds, not the chunks' bounds, which are far above them.
                // Room for whichever chunk a worker takes first: the front
                // of its own piece or the back of another.
                let first_bound = cursors
                    .iter()
                    .filter(|(n, e)| n < e)
                    .map(|&(n, e)| bounds[n].max(bounds[e - 1]))
                    .max()
                    .unwrap_or(0);
                set.reserve_expecting(unique, first_bound, expected);
                let before = left(&cursors);
                let round = Round {
                    bounds: &bounds,
                    base: unique,
                    cap: unique + set.room(unique),
                    expected,
                    claims: std::sync::Mutex::new(Claims {
                        cursors: std::mem::take(&mut cursors),
                        added: 0,
                        outstanding: 0,
                    }),
                };
                rayon::broadcast(|ctx| {
                    let mut out = outs[ctx.index()]
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    SCRATCH.with_borrow_mut(|scratch| {
                        let mut done = None;
                        while let Some(i) = round.take(&set, done, ctx.index()) {
                            let (chunk, chunk_actions) = chunks[i];
                            let before = out.fresh.len();
                            if let Some(table) = table {
                                let expand_local = match table.vms() {
                                    1 => Self::expand_local::<1>,
                                    2 => Self::expand_local::<2>,
                                    3 => Self::expand_local::<3>,
                                    4 => Self::expand_local::<4>,
                                    5 => Self::expand_local::<5>,
                                    6 => Self::expand_local::<6>,
                                    7 => Self::expand_local::<7>,
                                    8 => Self::expand_local::<8>,
                                    _ => Self::expand_local::<0>,
                                };
                                expand_local(
                                    self,
                                    table,
                                    &set,
                                    chunk,
                                    chunk_actions,
                                    scratch,
                                    &mut out,
                                );
                            } else {
                                scratch.fit(vms);
                                let every = judge == Judge::EveryTransition;
                                let expand = match (every, self.symmetry) {
                                    (false, false) => Self::expand::<false, false>,
                                    (false, true) => Self::expand::<false, true>,
                                    (true, false) => Self::expand::<true, false>,
                                    (true, true) => Self::expand::<true, true>,
                                };
                                expand(self, packer, &set, chunk, scratch, &mut out);
                            }
                            done = Some((bounds[i], out.fresh.len() - before));
                        }
                    });
                });
                let claims = round
                    .claims
                    .into_inner()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                // `reserve_expecting` left the set not due to grow, with
                // room for the first chunk.
                cursors = claims.cursors;
                assert!(left(&cursors) < before, "a round takes its first chunk");
                unique += claims.added;
            }
            let mut next = Vec::new();
            let mut inexact = false;
            for out in outs {
                let out = out
                    .into_inner()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                inexact |= out.inexact;
                transitions += out.transitions;
                for (total, n) in violated.iter_mut().zip(out.violated) {
                    *total += n;
                }
                // Piece `w` is worker `w`'s, even when empty.
                next.push((out.fresh, out.fresh_actions));
            }
            if inexact && judge == Judge::OncePerState {
                return None;
            }
            let found: usize = next.iter().map(|(keys, _)| keys.len()).sum();
            if found == 0 {
                break;
            }
            // The frontier is the last level found.
            let current = *levels.last().expect("the initial level") as usize;
            peak = peak.max(current + found);
            levels.push(found as u64);
            if let Some(f) = self.on_level {
                f(Progress {
                    depth: levels.len() as u32 - 1,
                    unique_states: levels.iter().sum(),
                    transitions,
                });
            }
            spare = std::mem::replace(&mut frontier, next);
        }
        Some((levels, transitions, violated, set.bytes(), peak))
    }

    /// Expands one chunk of the frontier: every enabled action of every
    /// state, judged by every invariant, its successor inserted into the
    /// visited set. The actions are taken kind by kind
    /// ([`model::for_each_enabled_kind`]), so each kind's path through the
    /// model runs many times in a row, and in batches of [`BATCH`]: apply
    /// the batch's actions; then pack each successor and prefetch its
    /// bucket, and insert the previous batch's successor in the same
    /// position, whose bucket has arrived meanwhile.
    ///
    /// `EVERY`: judge the state invariants on every transition
    /// ([`Judge::EveryTransition`]); `SYM`: keys are canonical (symmetry).
    fn expand<const EVERY: bool, const SYM: bool>(
        &self,
        packer: &Packer,
        set: &SharedKeySet,
        chunk: &[u64],
        scratch: &mut Scratch,
        out: &mut WorkerOut,
    ) {
        let Scratch {
            states,
            codes,
            kinds,
            stride,
            ..
        } = scratch;
        let stride = *stride;
        states.clear();
        states.extend(chunk.iter().map(|&k| packer.unpack(k)));
        if SYM {
            codes.clear();
            codes.extend(states.iter().map(|s| {
                let mut c = [0u64; MAX_VMS];
                packer.codes(s, &mut c);
                c
            }));
        }
        let mut len = [0usize; model::ACTION_KINDS];
        {
            let kinds = &mut kinds[..model::ACTION_KINDS * stride];
            for (i, s) in states.iter().enumerate() {
                model::for_each_enabled_kind(self.policy, &self.device, s, |kind, vm| {
                    kinds[kind * stride + len[kind]] = ((i as u32) << 8) | u32::from(vm);
                    len[kind] += 1;
                });
            }
        }

        // Two batches in flight: the one being packed and the one being
        // inserted, each with its successors, keys and buckets.
        let mut nexts = [[self.device.initial(); BATCH]; 2];
        let mut keys = [0u64; BATCH];
        let mut homes = [0usize; BATCH];
        let mut pending = 0;
        let mut cur = 0;
        for (kind, list) in kinds
            .chunks_exact(stride)
            .take(model::ACTION_KINDS)
            .enumerate()
        {
            let list = &list[..len[kind]];
            let template = model::kind_action(kind, 0);
            let has_vm = model::kind_has_vm(kind);
            out.transitions += list.len() as u64;
            for batch in list.chunks(BATCH) {
                let (a, b) = nexts.split_at_mut(1);
                let (now, before) = if cur == 0 {
                    (&mut a[0], &b[0])
                } else {
                    (&mut b[0], &a[0])
                };
                for (&e, next) in batch.iter().zip(now.iter_mut()) {
                    *next = states[(e >> 8) as usize];
                    let a = Action {
                        vm: e as u8,
                        ..template
                    };
                    model::apply_in_place(self.policy, &self.device, next, a);
                }
                for (j, (&e, next)) in batch.iter().zip(now.iter()).enumerate() {
                    let i = (e >> 8) as usize;
                    let parent = &states[i];
                    let mut verdict = invariant::check_step(parent, next);
                    if EVERY {
                        verdict = verdict.union(invariant::check_state(&self.device, next));
                    }
                    if !verdict.is_empty() {
                        count(&mut out.violated, verdict);
                    }
                    let vm = has_vm.then_some((e & 0xff) as usize);
                    let (k, exact) = if SYM {
                        packer.pack_canonical_from_exact(parent, &codes[i], next)
                    } else {
                        packer.pack_step(chunk[i], parent, next, vm)
                    };
                    out.inexact |= !exact;
                    let home = set.home(k);
                    set.prefetch(home);
                    if j < pending {
                        self.insert::<EVERY, SYM>(packer, set, keys[j], homes[j], &before[j], out);
                    }
                    keys[j] = k;
                    homes[j] = home;
                }
                for j in batch.len()..pending {
                    self.insert::<EVERY, SYM>(packer, set, keys[j], homes[j], &before[j], out);
                }
                pending = batch.len();
                cur ^= 1;
            }
        }
        let before = &nexts[cur ^ 1];
        for j in 0..pending {
            self.insert::<EVERY, SYM>(packer, set, keys[j], homes[j], &before[j], out);
        }
    }

    /// [`Checker::expand`] for a slot-local policy: the successors of
    /// every state of the chunk are looked up in `table`
    /// ([`LocalTable::successors`]) first; then they are inserted in order,
    /// each bucket prefetched [`AHEAD`] successors before its insertion
    /// (a steady stream of prefetches: on the benchmark machines a memory access
    /// takes about as long as 60 insertions, see BENCHMARKS.md). `VMS` is
    /// the device's number of slots, made a constant for up to eight (the
    /// table's loops over the slots then unroll), or 0.
    fn expand_local<const VMS: usize>(
        &self,
        table: &LocalTable,
        set: &SharedKeySet,
        chunk: &[u64],
        chunk_actions: &[u8],
        scratch: &mut Scratch,
        out: &mut WorkerOut,
    ) {
        /// Successors between a bucket's prefetch and its insertion.
        const AHEAD: usize = 64;
        let most = table.most_successors();
        let Scratch { keys, homes, .. } = scratch;
        let need = chunk.len() * most + SLACK;
        if keys.len() < need {
            keys.resize(need, 0);
            homes.resize(need, 0);
        }
        let (mut n, mut loops) = (0, 0);
        for (&key, &actions) in chunk.iter().zip(chunk_actions) {
            let (m, back) = table.successors::<VMS>(key, &mut keys[n..], &mut out.violated);
            n += m;
            loops += back;
            // An action that leads back to the state is a transition into
            // it, so counts its verdict; nothing need be looked up.
            if actions & VIOLATES != 0 && back > 0 {
                for inv in table.judge::<VMS>(key).0.iter() {
                    out.violated[inv as usize] += back as u64;
                }
            }
        }
        let (keys, homes) = (&keys[..n], &mut homes[..n]);
        for (&k, home) in keys.iter().zip(homes.iter_mut()).take(AHEAD) {
            *home = set.home(k);
            set.prefetch(*home);
        }
        for i in 0..n {
            if let Some(&k) = keys.get(i + AHEAD) {
                let home = set.home(k);
                set.prefetch(home);
                homes[i + AHEAD] = home;
            }
            self.insert_key::<VMS>(table, set, keys[i], homes[i], out);
        }
        out.transitions += (n + loops) as u64;
    }

    /// [`Checker::insert`] for a successor known by its key alone: when it
    /// is new, `table` judges it ([`LocalTable::judge`]).
    #[inline(always)]
    fn insert_key<const VMS: usize>(
        &self,
        table: &LocalTable,
        set: &SharedKeySet,
        key: u64,
        home: usize,
        out: &mut WorkerOut,
    ) {
        if set.found_untagged(key, home) {
            return;
        }
        let mut judged = InvariantSet::EMPTY;
        let mut actions = 0u8;
        let tag = set.insert_with(key, home, || {
            (judged, actions) = table.judge::<VMS>(key);
            u64::from(judged.bits())
        });
        let verdict = match tag {
            None => {
                out.fresh.push(key);
                out.fresh_actions.push(if judged.is_empty() {
                    actions
                } else {
                    actions | VIOLATES
                });
                judged
            }
            Some(tag) => InvariantSet::from_bits(tag as u8),
        };
        if !verdict.is_empty() {
            count(&mut out.violated, verdict);
        }
    }

    /// How many actions the state packed in `key` enables (at most
    /// `3 * MAX_VMS + 2`, so a byte).
    fn actions(&self, packer: &Packer, key: u64) -> u8 {
        model::enabled_count(self.policy, &self.device, &packer.unpack(key)) as u8
    }

    /// Inserts successor `next` (key `key`, bucket `home`) and, judging once
    /// per state, counts its state's verdict: judged now if it is new, else
    /// read from its key's tag.
    #[inline(always)]
    fn insert<const EVERY: bool, const SYM: bool>(
        &self,
        packer: &Packer,
        set: &SharedKeySet,
        key: u64,
        home: usize,
        next: &State,
        out: &mut WorkerOut,
    ) {
        if set.found_untagged(key, home) {
            // Seen before, and violating no state invariant.
            return;
        }
        let mut judged = InvariantSet::EMPTY;
        let tag = set.insert_with(key, home, || {
            if !EVERY {
                // A canonical key (with symmetry) stands for permutations
                // of same-size slots, which no state invariant tells apart.
                judged = invariant::check_state(&self.device, next);
            }
            u64::from(judged.bits())
        });
        let verdict = match tag {
            None => {
                out.fresh.push(key);
                // The state the search will expand is the one its key
                // unpacks to: `next` itself when keys are exact and not
                // canonical.
                let n = if EVERY || SYM {
                    self.actions(packer, key)
                } else {
                    model::enabled_count(self.policy, &self.device, next) as u8
                };
                out.fresh_actions.push(n);
                judged
            }
            Some(tag) => InvariantSet::from_bits(tag as u8),
        };
        if !verdict.is_empty() {
            count(&mut out.violated, verdict);
        }
    }
}

/// A guess at how many states a search will still find, from the sizes of
/// its levels so far, the last the one it is expanding (`current`): once
/// levels shrink, by the ratio `r` of the last two, the rest is about
/// `current * r / (1 - r)` (each later level `r` times the one before);
/// while they grow, anything (`usize::MAX`).
fn expected_more(levels: &[u64]) -> usize {
    let &[.., before, current] = levels else {
        return usize::MAX;
    };
    let (now, before) = (current as f64, before as f64);
    if now >= before {
        return usize::MAX;
    }
    let r = now / before;
    (now * r / (1.0 - r)) as usize
}

#[inline]
fn count(violated: &mut [u64; Invariant::COUNT], set: InvariantSet) {
    for inv in set.iter() {
        violated[inv as usize] += 1;
    }
}

/// A shortest trace from the initial state whose last action violates
/// `target`: the first violating transition met by a sequential
/// breadth-first search that expands states level by level in discovery
/// order and actions in [`model::for_each_enabled`] order. `None` when no
/// reachable transition violates it. Identity is the full state (no
/// symmetry), so the trace uses the slots the search met first.
pub fn shortest_counterexample<P: Allocator + ?Sized>(
    policy: &P,
    device: &Device,
    target: Invariant,
) -> Option<Vec<Action>> {
    let packer = Packer::for_allocator(device, policy);
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
    use crate::policy::faulty::{Grabby, Meddler, Peeker, SlotOneNoGpu};
    use crate::policy::{Builtin, Policy};

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

    /// The plainest checker: breadth-first with a `HashSet`, every
    /// transition taken with `model::step` and judged by
    /// `invariant::check`, states expanded as their keys unpack (as the
    /// checker does).
    fn reference<P: Allocator + ?Sized>(
        p: &P,
        d: Device,
        symmetry: bool,
    ) -> (Vec<u64>, u64, [u64; Invariant::COUNT]) {
        let packer = Packer::new(&d);
        let key = |s: &State| {
            if symmetry {
                packer.pack_canonical(s)
            } else {
                packer.pack(s)
            }
        };
        let mut seen = std::collections::HashSet::new();
        let init = key(&d.initial());
        seen.insert(init);
        let (mut frontier, mut levels, mut transitions, mut violated) =
            (vec![init], vec![1u64], 0u64, [0u64; Invariant::COUNT]);
        loop {
            let mut next = Vec::new();
            for &k in &frontier {
                let state = packer.unpack(k);
                for a in model::enabled(p, &d, &state) {
                    let t = model::step(p, &d, &state, a);
                    transitions += 1;
                    count(&mut violated, t.violations);
                    let nk = key(&t.state);
                    if seen.insert(nk) {
                        next.push(nk);
                    }
                }
            }
            if next.is_empty() {
                return (levels, transitions, violated);
            }
            levels.push(next.len() as u64);
            frontier = next;
        }
    }

    /// While levels grow, anything may come; once they shrink by `r`, the
    /// rest of a geometric tail.
    #[test]
    fn expected_more_follows_shrinking_levels() {
        assert_eq!(expected_more(&[1]), usize::MAX);
        assert_eq!(expected_more(&[1, 8, 57]), usize::MAX);
        assert_eq!(expected_more(&[100, 100]), usize::MAX);
        // r = 1/2: 100 * 1/2 / (1/2).
        assert_eq!(expected_more(&[200, 100]), 100);
        // r = 1/4: 100 * 1/4 / (3/4).
        assert_eq!(expected_more(&[1, 400, 100]), 33);
    }

    fn round<'b>(bounds: &'b [usize], base: usize, cap: usize, expected: usize) -> Round<'b> {
        pieces(bounds, vec![(0, bounds.len())], base, cap, expected)
    }

    fn pieces<'b>(
        bounds: &'b [usize],
        cursors: Vec<(usize, usize)>,
        base: usize,
        cap: usize,
        expected: usize,
    ) -> Round<'b> {
        Round {
            bounds,
            base,
            cap,
            expected,
            claims: std::sync::Mutex::new(Claims {
                cursors,
                added: 0,
                outstanding: 0,
            }),
        }
    }

    /// A worker takes its own piece's chunks from the front; with none
    /// left, the last chunk of the piece with the most left; a worker
    /// without a piece (more workers than pieces) only takes those.
    #[test]
    fn a_worker_takes_its_own_piece_first_then_the_fullest_from_the_back() {
        let set = SharedKeySet::with_capacity(1000, 0);
        let bounds = [1; 7];
        // Piece 0: chunks 0..5; piece 1: chunks 5..7.
        let r = pieces(&bounds, vec![(0, 5), (5, 7)], 0, 1000, usize::MAX);
        assert_eq!(r.take(&set, None, 0), Some(0));
        assert_eq!(r.take(&set, None, 1), Some(5));
        assert_eq!(r.take(&set, None, 1), Some(6));
        // Piece 1 is done: worker 1 takes piece 0's last, worker 2 too.
        assert_eq!(r.take(&set, None, 1), Some(4));
        assert_eq!(r.take(&set, None, 2), Some(3));
        assert_eq!(r.take(&set, None, 0), Some(1));
        assert_eq!(r.take(&set, None, 0), Some(2));
        assert_eq!(r.take(&set, None, 0), None);
        assert_eq!(r.take(&set, None, 1), None);
        let c = r.claims.into_inner().unwrap();
        assert_eq!(c.cursors, vec![(3, 3), (7, 7)]);
        assert_eq!(c.outstanding, 7);
    }

    /// A round hands out chunks while the keys in the set, plus the
    /// bounds of the chunks out, plus the next chunk's bound stay within
    /// its cap; a chunk done gives back its bound and adds the keys it
    /// inserted.
    #[test]
    fn a_round_hands_out_chunks_within_its_cap() {
        let set = SharedKeySet::with_capacity(1000, 0);
        let bounds = [10, 10, 10, 10];
        let r = round(&bounds, 100, 125, usize::MAX);
        assert_eq!(r.take(&set, None, 0), Some(0));
        assert_eq!(r.take(&set, None, 0), Some(1));
        // 100 + 20 out + 10 > 125.
        assert_eq!(r.take(&set, None, 0), None);
        // 102 + 10 out + 10 <= 125.
        assert_eq!(r.take(&set, Some((10, 2)), 0), Some(2));
        // 102 + 20 out + 10 > 125 again.
        assert_eq!(r.take(&set, None, 0), None);
        assert_eq!(r.take(&set, Some((10, 0)), 0), Some(3));
        // Every chunk handed out.
        assert_eq!(r.take(&set, Some((10, 5)), 0), None);
        let c = r.claims.into_inner().unwrap();
        assert_eq!((c.cursors, c.added, c.outstanding), (vec![(4, 4)], 7, 10));
    }

    /// A round stops handing out chunks once the set is due to grow (past
    /// 3/4 full, unless the guess of what is to come fits in 7/8).
    #[test]
    fn a_round_stops_when_the_set_is_due_to_grow() {
        let set = SharedKeySet::with_capacity(1000, 0);
        let slots = set.bytes() / 8;
        let bounds = [1, 1, 1];
        for (expected, second) in [(usize::MAX, None), (1, Some(1))] {
            let r = round(&bounds, slots / 4 * 3, slots, expected);
            assert_eq!(r.take(&set, None, 0), Some(0));
            assert_eq!(
                r.take(&set, Some((1, 1)), 0),
                second,
                "expecting {expected}"
            );
        }
    }

    /// `on_level` is called once per level found, in order, with the
    /// running totals a plain breadth-first search has at that level, on
    /// one and two threads, on the table path and on the stepping path.
    #[test]
    fn on_level_reports_each_level_with_running_totals() {
        let d = Device::uniform(2, 3, 1).unwrap();
        // (depth, states so far, transitions so far) by a plain search.
        let packer = Packer::new(&d);
        let mut want = Vec::new();
        let mut seen = std::collections::HashSet::from([packer.pack(&d.initial())]);
        let mut frontier = vec![d.initial()];
        let (mut states, mut transitions) = (1u64, 0u64);
        for depth in 1.. {
            let mut next = Vec::new();
            for s in &frontier {
                for a in model::enabled(&Builtin::Legacy, &d, s) {
                    transitions += 1;
                    let t = model::step(&Builtin::Legacy, &d, s, a).state;
                    if seen.insert(packer.pack(&t)) {
                        next.push(t);
                    }
                }
            }
            if next.is_empty() {
                break;
            }
            states += next.len() as u64;
            want.push(Progress {
                depth,
                unique_states: states,
                transitions,
            });
            frontier = next;
        }
        assert_eq!(want.len(), 16);
        for policy in [&Builtin::Legacy as &dyn Allocator, &Forgetful] {
            for threads in [1, 2] {
                let got = std::sync::Mutex::new(Vec::new());
                let f = |p: Progress| got.lock().unwrap().push(p);
                Checker::new(policy, d)
                    .threads(threads)
                    .on_level(&f)
                    .run()
                    .unwrap();
                let got = got.into_inner().unwrap();
                if policy.name() == "legacy" {
                    assert_eq!(got, want, "threads={threads}");
                } else {
                    // Forgetful is stepped (it is not slot-local): its own
                    // levels, one call each, totals rising.
                    assert!(got.windows(2).all(|w| w[0].depth + 1 == w[1].depth
                        && w[0].unique_states < w[1].unique_states
                        && w[0].transitions < w[1].transitions));
                    assert_eq!(got[0].depth, 1);
                }
            }
        }
    }

    /// The checker counts exactly what the plainest checker counts, for
    /// correct and faulty policies (one whose states do not all round-trip
    /// through their keys, one that changes slots other than the step's,
    /// one that says it is slot-local but is not, one whose slots behave
    /// differently by number), by stepping and, for
    /// slot-local policies, by looking successors up, with and without
    /// symmetry, on one, two and three threads (three workers take turns
    /// at the chunks of a round, and on two cores one is often asleep).
    #[test]
    fn counts_like_the_plainest_checker() {
        let policies: [&dyn Allocator; 8] = [
            &Builtin::Fixed,
            &Builtin::Legacy,
            &Builtin::Snapshot,
            &Forgetful,
            &Phantom,
            &Meddler,
            &Grabby,
            &SlotOneNoGpu,
        ];
        for (g, v) in [(1, 1), (1, 3), (2, 2), (2, 3)] {
            let d = Device::uniform(g, v, 1).unwrap();
            for p in policies {
                for symmetry in [false, true] {
                    let want = reference(p, d, symmetry);
                    for threads in [1, 2, 3] {
                        let c = Checker::new(p, d).symmetry(symmetry).threads(threads);
                        let pool = rayon::ThreadPoolBuilder::new()
                            .num_threads(threads)
                            .build()
                            .unwrap();
                        let packer = Packer::new(&d);
                        let what = format!("{} G={g} V={v} sym={symmetry} t={threads}", p.name());
                        let (levels, transitions, violated, _, _) =
                            pool.install(|| c.search_any(&packer));
                        assert_eq!((levels, transitions, violated), want, "{what}");
                        // Both ways of judging, where each applies.
                        let every =
                            pool.install(|| c.search(&packer, Judge::EveryTransition, None));
                        let (levels, transitions, violated, _, _) = every.unwrap();
                        assert_eq!((levels, transitions, violated), want, "{what} every");
                        match pool.install(|| c.search(&packer, Judge::OncePerState, None)) {
                            Some((levels, transitions, violated, _, _)) => {
                                assert_eq!((levels, transitions, violated), want, "{what} once")
                            }
                            None => assert_eq!(p.name(), "phantom", "{what}"),
                        }
                        // Successors looked up in a table, for the policies
                        // that are slot-local; not for Grabby, which says so
                        // wrongly, unless the slot it changes is not the
                        // device's (one slot), where that is harmless.
                        let table = LocalTable::new(p, &d, &packer);
                        let slot_local = Builtin::from_name(p.name()).is_some()
                            || p.name() == "slot-one-no-gpu"
                            || (p.name() == "grabby" && v == 1);
                        assert_eq!(table.is_some(), slot_local, "{what}");
                        if let Some(table) = table.filter(|_| !symmetry) {
                            let found = pool
                                .install(|| c.search(&packer, Judge::OncePerState, Some(&table)));
                            let (levels, transitions, violated, _, _) = found.unwrap();
                            assert_eq!((levels, transitions, violated), want, "{what} table");
                        }
                    }
                }
            }
        }
        let d = Device::uniform(2, 3, 1).unwrap();
        let (_, _, v) = reference(&Forgetful, d, false);
        assert!(v[Invariant::NoDoubleClaim as usize] > 0);
        assert!(v[Invariant::HoldsMatchState as usize] > 0);
        let (_, _, v) = reference(&Meddler, d, false);
        assert!(v[Invariant::Conservation as usize] > 0);
        let (_, _, v) = reference(&Phantom, Device::uniform(1, 1, 1).unwrap(), false);
        assert!(v[Invariant::Conservation as usize] > 0);
    }

    /// A policy that says it is slot-local but reads another slot is
    /// checked as if it said not: the same counts, depths and violations.
    #[test]
    fn a_slot_reading_policy_counts_as_if_stepped() {
        for (g, v) in [(2, 2), (2, 3), (2, 4)] {
            let d = Device::uniform(g, v, 1).unwrap();
            let says = Checker::new(&Peeker { says_local: true }, d).run().unwrap();
            let not = Checker::new(&Peeker { says_local: false }, d)
                .run()
                .unwrap();
            let fixed = Checker::new(&Builtin::Fixed, d).run().unwrap();
            let counts = |r: &CheckReport| (r.unique_states, r.transitions, r.levels.clone());
            assert_eq!(counts(&says), counts(&not), "G={g} V={v}");
            assert_eq!(says.violations, not.violations, "G={g} V={v}");
            // Peeking changes what is reachable.
            assert_ne!(counts(&says), counts(&fixed), "G={g} V={v}");
        }
    }
}
