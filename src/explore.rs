//! Seeded random walks and swarm walks, and campaigns of them run in
//! parallel: the engine behind `gpuclaim explore` and `gpuclaim replay
//! --seed S --run I`.
//!
//! A walk starts in the device's initial state and, at each step, picks one
//! of the actions enabled in its state (MODEL.md "States and actions",
//! [`model::for_each_enabled`]) uniformly at random, applies it and checks
//! every invariant. It never stops at a violation (it records the first and
//! goes on). It ends after `steps` actions, or earlier when no allowed
//! action is enabled: with every VM slot there is always one (an absent VM
//! can be created, a failed one removed, …), so that happens only with no
//! VM slot at all, or in a swarm walk whose operation kinds are all
//! disabled in the current state.
//!
//! A swarm walk (Groce et al., "Swarm testing", ISSTA 2012) first draws, per
//! run, a nonempty subset of the operation kinds ([`Kinds`]) and then only
//! ever picks actions of those kinds (the begin and end steps of an
//! operation belong to its kind).
//!
//! A run is a function of the policy, device, step bound, swarm flag and its
//! seed, `seed::run_seed(master, index)`; the generator is Xoshiro256++ and
//! a uniform choice among `n` actions is Lemire's unbiased multiply-shift
//! on the high 32 bits of one output, so the stream never depends on a
//! `rand` version's range sampling. Nothing depends on the thread count.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};

use rand::Rng as _;
use rayon::prelude::*;

use crate::invariant::{Invariant, InvariantSet};
use crate::model::{self, Action, Device, MAX_ENABLED, Op, State, VmNames};
use crate::pack::Packer;
use crate::policy::Allocator;
use crate::report::CsvDoc;
use crate::seed::{self, Rng};
use crate::shrink;
use crate::trace::{self, Run};

/// A set of operation kinds ([`Op`]), as a bitmask over [`Op::ALL`];
/// the top bit says that `update-device` is among the kinds the walk could
/// have had (a device with updates), so that `all` means every kind there.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Kinds(u8);

/// The bits of version 1's six kinds.
const V1_KINDS: u8 = (1 << Op::UpdateDevice as u8) - 1;
/// The top bit: `update-device` was possible.
const WITH_UPDATES: u8 = 0x80;

impl Kinds {
    /// Every kind of version 1: a plain (non-swarm) walk on a device
    /// without updates.
    pub const ALL: Kinds = Kinds(V1_KINDS);
    /// Every kind, `update-device` included: a plain walk on a device with
    /// updates.
    pub const ALL_WITH_UPDATES: Kinds =
        Kinds(WITH_UPDATES | V1_KINDS | 1 << Op::UpdateDevice as u8);

    /// Every kind a walk on `device` can take.
    pub fn all_for(device: &Device) -> Kinds {
        if device.updates() {
            Kinds::ALL_WITH_UPDATES
        } else {
            Kinds::ALL
        }
    }
    pub fn contains(self, op: Op) -> bool {
        self.0 & (1 << op as u8) != 0
    }
    pub fn from_ops(ops: &[Op]) -> Kinds {
        let bits = ops.iter().fold(0, |m, op| m | (1 << *op as u8));
        Kinds(if bits & (1 << Op::UpdateDevice as u8) != 0 {
            bits | WITH_UPDATES
        } else {
            bits
        })
    }
    pub fn is_empty(self) -> bool {
        self.0 & !WITH_UPDATES == 0
    }
    /// Draws a nonempty subset, each kind in with probability 1/2 (the
    /// same draws as version 1 on a device without updates).
    pub fn draw(rng: &mut Rng, device: &Device) -> Kinds {
        loop {
            let k = if device.updates() {
                Kinds(WITH_UPDATES | ((rng.next_u64() >> 57) as u8 & !WITH_UPDATES))
            } else {
                Kinds((rng.next_u64() >> 58) as u8 & V1_KINDS)
            };
            if !k.is_empty() {
                return k;
            }
        }
    }
}

impl fmt::Display for Kinds {
    /// `all`, or the operation names joined by `+`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if *self == Kinds::ALL || *self == Kinds::ALL_WITH_UPDATES {
            return f.write_str("all");
        }
        let names: Vec<&str> = Op::ALL
            .into_iter()
            .filter(|op| self.contains(*op))
            .map(Op::name)
            .collect();
        f.write_str(&names.join("+"))
    }
}

/// A uniform number in `0..n` (`n > 0`): Lemire's multiply-shift with
/// rejection, on the high 32 bits of each generator output.
#[inline]
pub fn below(rng: &mut Rng, n: u32) -> u32 {
    debug_assert!(n > 0);
    let mut m = (rng.next_u64() >> 32) * u64::from(n);
    if (m as u32) < n {
        let threshold = n.wrapping_neg() % n;
        while (m as u32) < threshold {
            m = (rng.next_u64() >> 32) * u64::from(n);
        }
    }
    (m >> 32) as u32
}

/// How each walk of a campaign is made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WalkConfig {
    pub device: Device,
    /// The most actions a walk takes.
    pub steps: usize,
    /// Swarm testing: per run, a random nonempty subset of operation kinds.
    pub swarm: bool,
}

/// What one walk did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WalkSummary {
    /// Actions taken (fewer than the bound when no action was enabled).
    pub steps: usize,
    /// The operation kinds the walk could pick from.
    pub kinds: Kinds,
    /// The first violation: the first invariant (in [`Invariant::ALL`]
    /// order) among those violated by the first violating action, and that
    /// action's index (0 is the first action).
    pub first_violation: Option<(Invariant, usize)>,
    /// Every invariant violated at least once.
    pub fired: InvariantSet,
    /// How many actions had each outcome, in [`Outcome::ALL`](crate::model::Outcome::ALL) order. A walk
    /// only picks enabled actions, so `rejected` stays 0 for any policy
    /// whose enabled actions are accepted.
    pub outcomes: [u64; 3],
    /// Distinct states the walk was in, the initial one included (state
    /// identity as MODEL.md defines it; see [`Packer::fingerprint`]).
    pub distinct_states: u64,
}

/// Runs walks, reusing its buffers from one walk to the next. One per
/// thread.
///
/// Its memory follows what the walks find, not `steps`: the table of a
/// walk's distinct states starts at 2 KiB and grows as the walk meets new
/// states (at most `min(steps + 1, reachable states)` of them) to under
/// 64 bytes a state (96 for a moment while it doubles); a walk that finds few states after one that found
/// many starts again small, so that clearing costs what was used.
pub struct Walker<'a, P: Allocator + ?Sized> {
    policy: &'a P,
    config: WalkConfig,
    packer: Packer,
    seen: RunSet,
}

impl<'a, P: Allocator + ?Sized> Walker<'a, P> {
    pub fn new(policy: &'a P, config: WalkConfig) -> Self {
        Walker {
            policy,
            config,
            packer: Packer::for_allocator(&config.device, policy),
            seen: RunSet::for_walk(config.steps),
        }
    }

    pub fn config(&self) -> &WalkConfig {
        &self.config
    }

    /// The walk of seed `seed`.
    pub fn walk(&mut self, seed: u64) -> WalkSummary {
        self.walk_dispatch(seed, None)
    }

    /// The walk of seed `seed`, also returning every action it took.
    pub fn walk_recorded(&mut self, seed: u64) -> (WalkSummary, Vec<Action>) {
        let mut actions = Vec::with_capacity(self.config.steps.min(1 << 16));
        let summary = self.walk_dispatch(seed, Some(&mut actions));
        (summary, actions)
    }

    /// The first `n` actions of the walk of seed `seed` (all of them when
    /// it takes fewer): a failing run's actions up to its first violation,
    /// which is all that shrinking needs, without recording the rest.
    fn walk_prefix(&mut self, seed: u64, n: usize) -> Vec<Action> {
        // The bound is the configured one, lowered for this walk only: the
        // hot loop reads it from the configuration (as a parameter, a
        // campaign took 0.3% more instructions under callgrind).
        let steps = self.config.steps;
        self.config.steps = n.min(steps);
        let mut actions = Vec::with_capacity(self.config.steps);
        self.walk_dispatch(seed, Some(&mut actions));
        self.config.steps = steps;
        actions
    }

    /// [`Walker::walk_inner`] with the device's number of slots as a
    /// constant for devices of up to eight slots, so that every loop over
    /// the slots in a step (the enabled actions, the invariants, the
    /// state's fingerprint) unrolls; larger devices take the same code
    /// with the number read at run time.
    #[inline]
    fn walk_dispatch(&mut self, seed: u64, record: Option<&mut Vec<Action>>) -> WalkSummary {
        match self.config.device.vms() {
            1 => self.walk_inner::<1>(seed, record),
            2 => self.walk_inner::<2>(seed, record),
            3 => self.walk_inner::<3>(seed, record),
            4 => self.walk_inner::<4>(seed, record),
            5 => self.walk_inner::<5>(seed, record),
            6 => self.walk_inner::<6>(seed, record),
            7 => self.walk_inner::<7>(seed, record),
            8 => self.walk_inner::<8>(seed, record),
            _ => self.walk_inner::<0>(seed, record),
        }
    }

    /// One walk on a device of `VMS` slots (0: as many as the device has).
    #[inline]
    fn walk_inner<const VMS: usize>(
        &mut self,
        seed: u64,
        mut record: Option<&mut Vec<Action>>,
    ) -> WalkSummary {
        let device = &self.config.device;
        let vms = if VMS == 0 { device.vms() } else { VMS };
        debug_assert_eq!(vms, device.vms());
        let policy = self.policy;
        let mut rng = seed::rng(seed);
        let kinds = if self.config.swarm {
            Kinds::draw(&mut rng, device)
        } else {
            Kinds::all_for(device)
        };
        let mut state: State = device.initial();
        self.seen.clear();
        self.seen.insert(self.packer.fingerprint_of(&state, vms));
        let mut summary = WalkSummary {
            steps: 0,
            kinds,
            first_violation: None,
            fired: InvariantSet::EMPTY,
            outcomes: [0; 3],
            distinct_states: 1,
        };
        let mut buf = [Action::takeover(); MAX_ENABLED];
        let every = Kinds::all_for(device);
        for i in 0..self.config.steps {
            let mut n = 0;
            if kinds == every {
                n = model::enabled_into_of(policy, device, &state, &mut buf, vms);
            } else {
                model::for_each_enabled(policy, device, &state, |a| {
                    if kinds.contains(a.op) {
                        buf[n] = a;
                        n += 1;
                    }
                });
            }
            if n == 0 {
                break;
            }
            let action = buf[below(&mut rng, n as u32) as usize];
            if let Some(r) = record.as_deref_mut() {
                r.push(action);
            }
            // `model::step` without the copies: the walk never looks back.
            let (outcome, violations) =
                model::step_in_place_of(policy, device, &mut state, action, vms);
            summary.outcomes[outcome as usize] += 1;
            if !violations.is_empty() {
                if summary.first_violation.is_none() {
                    summary.first_violation = violations.first().map(|inv| (inv, i));
                }
                summary.fired = summary.fired.union(violations);
            }
            summary.steps = i + 1;
            summary.distinct_states +=
                u64::from(self.seen.insert(self.packer.fingerprint_of(&state, vms)));
        }
        summary
    }
}

/// The distinct states of one walk, by [`Packer::fingerprint`]: open
/// addressing with linear probing over a power-of-two table kept at most a
/// quarter full, so that a key's home slot nearly always either holds it
/// or is empty. `u64::MAX` marks an empty slot and so counts as always
/// present, as in [`KeySet`](crate::pack::KeySet).
///
/// The table starts at its floor (room for `min(steps + 1, 64)` states:
/// 256 slots, 2 KiB, at most) and doubles when a quarter full, so it holds
/// fewer than 8 slots a state; clearing it after a walk that used less
/// than a 32nd of it starts a table of the floor's size or that walk's,
/// so that clearing never costs more than 32 slots a state (or the floor)
/// whatever an earlier, longer walk grew it to.
struct RunSet {
    slots: Vec<u64>,
    shift: u32,
    len: usize,
    /// The fewest slots it ever has.
    floor: usize,
}

impl RunSet {
    /// The set for the walks of at most `steps` actions.
    fn for_walk(steps: usize) -> RunSet {
        RunSet::with_capacity(steps.min(63) + 1)
    }

    /// Room for `n` keys at a quarter full, which is also its floor.
    fn with_capacity(n: usize) -> RunSet {
        let size = (4 * n).next_power_of_two().max(8);
        RunSet::with_slots(size, size)
    }

    fn with_slots(size: usize, floor: usize) -> RunSet {
        RunSet {
            slots: vec![u64::MAX; size],
            shift: 64 - size.trailing_zeros(),
            len: 0,
            floor,
        }
    }

    fn clear(&mut self) {
        if self.len == 0 {
            return;
        }
        if self.len * 32 < self.slots.len() && self.slots.len() > self.floor {
            let size = (4 * self.len).next_power_of_two().max(self.floor);
            *self = RunSet::with_slots(size, self.floor);
        } else {
            self.slots.fill(u64::MAX);
            self.len = 0;
        }
    }

    /// Inserts `key`; true when it was not there yet.
    ///
    /// Whether a walk's state is new is a coin toss to the branch
    /// predictor, so the home slot is settled without branching on it:
    /// when it holds `key` or is empty, `key` is stored there either way
    /// and the answer is a compare. Only a home slot taken by another key
    /// (rare at a quarter full) probes on.
    #[inline]
    fn insert(&mut self, key: u64) -> bool {
        let mask = self.slots.len() - 1;
        let mut i = (key.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> self.shift) as usize;
        let home = self.slots[i];
        // Zero exactly when `home` is `key` or empty (all ones): one
        // compare, where `home == key || home == u64::MAX` compiles to a
        // branch on the first test, which is the coin toss.
        if (home ^ key).min(!home) == 0 {
            let new = home != key;
            self.slots[i] = key;
            self.len += usize::from(new);
            if self.len * 4 > self.slots.len() {
                self.grow();
            }
            return new;
        }
        loop {
            i = (i + 1) & mask;
            let k = self.slots[i];
            if k == key {
                return false;
            }
            if k == u64::MAX {
                self.slots[i] = key;
                self.len += 1;
                if self.len * 4 > self.slots.len() {
                    self.grow();
                }
                return true;
            }
        }
    }

    fn grow(&mut self) {
        let doubled = RunSet::with_slots(2 * self.slots.len(), self.floor);
        let old = std::mem::replace(self, doubled);
        for k in old.slots.into_iter().filter(|&k| k != u64::MAX) {
            self.insert(k);
        }
    }
}

/// One run of a campaign.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunRecord {
    pub index: u64,
    pub seed: u64,
    pub summary: WalkSummary,
    /// For a failing run: its actions up to the first violation, shrunk
    /// ([`shrink::shrink`]) against the first violated invariant.
    pub shrunk: Option<Vec<Action>>,
}

/// A distinct shrunk counterexample and the runs that led to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Counterexample {
    pub invariant: Invariant,
    pub actions: Vec<Action>,
    /// How many runs shrank to it.
    pub runs: u64,
    /// The lowest index among them.
    pub first_run: u64,
}

/// What a campaign found: one record per run, in run order, and the
/// distinct counterexamples ordered by the first run that led to each.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CampaignReport {
    pub policy: String,
    pub config: WalkConfig,
    pub master_seed: u64,
    pub runs: Vec<RunRecord>,
    pub counterexamples: Vec<Counterexample>,
}

/// A campaign of seeded walks, run in parallel. The result does not depend
/// on the thread count.
///
/// ```
/// use gpuclaim::{Device, Invariant, Legacy};
/// use gpuclaim::explore::Campaign;
///
/// let device = Device::uniform(1, 1, 1).unwrap();
/// let report = Campaign::new(&Legacy, device).runs(50).steps(20).seed(1).run();
/// assert_eq!(report.runs.len(), 50);
/// assert!(report.counterexamples.iter().all(|c| c.invariant == Invariant::NoStealAfterDealloc));
/// ```
pub struct Campaign<'a, P: Allocator + ?Sized> {
    policy: &'a P,
    config: WalkConfig,
    runs: u64,
    seed: u64,
    threads: usize,
    shrink: bool,
    block: u64,
}

impl<'a, P: Allocator + ?Sized> Campaign<'a, P> {
    /// Runs a worker takes at a time; a block is split into batches of
    /// this many runs (the last one shorter).
    pub const BATCH: u64 = 1024;

    /// Defaults: 1000 runs of 50 steps, seed 0, not swarm, rayon's default
    /// thread count, failing runs shrunk.
    pub fn new(policy: &'a P, device: Device) -> Self {
        Campaign {
            policy,
            config: WalkConfig {
                device,
                steps: 50,
                swarm: false,
            },
            runs: 1000,
            seed: 0,
            threads: 0,
            shrink: true,
            block: STREAM_BLOCK,
        }
    }
    pub fn runs(mut self, runs: u64) -> Self {
        self.runs = runs;
        self
    }
    pub fn steps(mut self, steps: usize) -> Self {
        self.config.steps = steps;
        self
    }
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }
    pub fn swarm(mut self, swarm: bool) -> Self {
        self.config.swarm = swarm;
        self
    }
    /// Worker threads; 0 means rayon's default (one per core).
    pub fn threads(mut self, threads: usize) -> Self {
        self.threads = threads;
        self
    }
    /// Runs per block of [`Campaign::run_streaming`] (default
    /// [`STREAM_BLOCK`]; at least 1). Results do not depend on it.
    pub fn block(mut self, runs: u64) -> Self {
        self.block = runs.max(1);
        self
    }
    /// Whether failing runs are shrunk (default true).
    pub fn shrink(mut self, shrink: bool) -> Self {
        self.shrink = shrink;
        self
    }

    /// Runs the campaign.
    pub fn run(&self) -> CampaignReport {
        self.run_with_progress(|_| {})
    }

    /// Runs the campaign, calling `progress(n)` from the workers as each
    /// batch of `n` runs finishes.
    pub fn run_with_progress(&self, progress: impl Fn(u64) + Sync) -> CampaignReport {
        let mut runs = Vec::with_capacity(usize::try_from(self.runs).unwrap_or(0));
        let counterexamples =
            self.run_rendered(progress, |_| (), |mut batch, ()| runs.append(&mut batch));
        CampaignReport {
            policy: self.policy.name().to_string(),
            config: self.config,
            master_seed: self.seed,
            runs,
            counterexamples,
        }
    }

    /// Runs the campaign in blocks of [`Campaign::block`] runs, each block in
    /// parallel, handing its records to `sink` in run order, a batch of at
    /// most [`Campaign::BATCH`] runs at a time, so that a campaign of any
    /// length needs memory for one block only (plus its distinct
    /// counterexamples). Returns the distinct counterexamples, ordered by
    /// the first run that led to each. Block and batch boundaries do not
    /// depend on the thread count, and neither does anything `sink` sees.
    pub fn run_streaming(
        &self,
        progress: impl Fn(u64) + Sync,
        mut sink: impl FnMut(&[RunRecord]),
    ) -> Vec<Counterexample> {
        self.run_rendered(progress, |_| (), |batch, ()| sink(&batch))
    }

    /// [`Campaign::run_streaming`], with each batch of runs (at most
    /// [`Campaign::BATCH`], within one block) also handed to `render` by
    /// the worker that ran it, so that what is made of the records (a
    /// CSV's bytes, say) is made in parallel too. `sink` gets each batch's
    /// records and rendering, in run order, batch by batch as each block
    /// ends; none of it depends on the thread count. Batches are handed
    /// over as they are, not joined into blocks, so the calling thread
    /// copies nothing between blocks.
    pub fn run_rendered<R: Send>(
        &self,
        progress: impl Fn(u64) + Sync,
        render: impl Fn(&[RunRecord]) -> R + Sync,
        mut sink: impl FnMut(Vec<RunRecord>, R),
    ) -> Vec<Counterexample> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(self.threads)
            .build()
            .expect("building the worker pool");
        let mut found: BTreeMap<(Invariant, Vec<Action>), (u64, u64)> = BTreeMap::new();
        let mut block_start = 0;
        while block_start < self.runs {
            let block_end = (block_start + self.block).min(self.runs);
            let batches = (block_end - block_start).div_ceil(Self::BATCH);
            let parts: Vec<(Vec<RunRecord>, R)> = pool.install(|| {
                (0..batches)
                    .into_par_iter()
                    .map_init(
                        || Walker::new(self.policy, self.config),
                        |walker, b| {
                            let first = block_start + b * Self::BATCH;
                            let last = (first + Self::BATCH).min(block_end);
                            let out: Vec<RunRecord> =
                                (first..last).map(|i| self.one_run(walker, i)).collect();
                            let rendered = render(&out);
                            progress(last - first);
                            (out, rendered)
                        },
                    )
                    .collect()
            });
            for (records, rendered) in parts {
                for r in &records {
                    if let (Some((inv, _)), Some(shrunk)) = (r.summary.first_violation, &r.shrunk) {
                        match found.get_mut(&(inv, shrunk.clone())) {
                            Some(e) => e.0 += 1,
                            None => {
                                found.insert((inv, shrunk.clone()), (1, r.index));
                            }
                        }
                    }
                }
                sink(records, rendered);
            }
            block_start = block_end;
        }
        let mut counterexamples: Vec<Counterexample> = found
            .into_iter()
            .map(|((invariant, actions), (runs, first_run))| Counterexample {
                invariant,
                actions,
                runs,
                first_run,
            })
            .collect();
        counterexamples.sort_by_key(|c| c.first_run);
        counterexamples
    }

    fn one_run(&self, walker: &mut Walker<'_, P>, index: u64) -> RunRecord {
        let seed = seed::run_seed(self.seed, index);
        let summary = walker.walk(seed);
        let shrunk = match summary.first_violation {
            Some((inv, at)) if self.shrink => {
                let actions = walker.walk_prefix(seed, at + 1);
                Some(shrink::shrink(
                    self.policy,
                    &self.config.device,
                    &actions,
                    inv,
                ))
            }
            _ => None,
        };
        RunRecord {
            index,
            seed,
            summary,
            shrunk,
        }
    }
}

/// Runs per block of [`Campaign::run_streaming`], by default.
pub const STREAM_BLOCK: u64 = 1 << 16;

/// The columns of the campaign CSV.
pub const CSV_HEADER: [&str; 16] = [
    "run",
    "seed",
    "policy",
    "gpus",
    "vms",
    "sizes",
    "kinds",
    "steps",
    "first_violation",
    "first_violation_step",
    "violations",
    "ok",
    "no_gpu",
    "rejected",
    "distinct_states",
    "shrunk_actions",
];

/// Formats campaign CSV rows ([`CSV_HEADER`]) for one policy and device.
pub struct CsvRows {
    policy: String,
    gpus: String,
    vms: String,
    sizes: String,
}

impl CsvRows {
    pub fn new(policy: &str, device: &Device) -> CsvRows {
        CsvRows {
            policy: policy.to_string(),
            gpus: device.gpus().to_string(),
            vms: device.vms().to_string(),
            sizes: sizes_text(device),
        }
    }

    /// The rows of `records`, in order, as CSV bytes: what a
    /// `csv::Writer` writes for [`CsvRows::row`] of each (no header).
    /// Field by field, with no allocation per row (`row` makes sixteen
    /// strings, which took a quarter of a one-thread campaign's time);
    /// `render_writes_what_row_gives` holds the two to the same bytes.
    pub fn render(&self, records: &[RunRecord]) -> Vec<u8> {
        let mut w = csv::Writer::from_writer(Vec::with_capacity(records.len() * 64));
        let mut num = itoa::Buffer::new();
        let mut text = String::new();
        // Writing to memory fails only on a row of another length, and
        // every row has the header's 16 fields.
        let field = |w: &mut csv::Writer<Vec<u8>>, f: &[u8]| {
            w.write_field(f).expect("writing to memory");
        };
        for r in records {
            let s = &r.summary;
            field(&mut w, num.format(r.index).as_bytes());
            field(&mut w, num.format(r.seed).as_bytes());
            field(&mut w, self.policy.as_bytes());
            field(&mut w, self.gpus.as_bytes());
            field(&mut w, self.vms.as_bytes());
            field(&mut w, self.sizes.as_bytes());
            text.clear();
            let _ = write!(text, "{}", s.kinds);
            field(&mut w, text.as_bytes());
            field(&mut w, num.format(s.steps).as_bytes());
            match s.first_violation {
                Some((inv, at)) => {
                    field(&mut w, inv.name().as_bytes());
                    field(&mut w, num.format(at).as_bytes());
                }
                None => {
                    field(&mut w, b"");
                    field(&mut w, b"");
                }
            }
            text.clear();
            let _ = write!(text, "{}", s.fired);
            field(&mut w, text.as_bytes());
            for n in s.outcomes {
                field(&mut w, num.format(n).as_bytes());
            }
            field(&mut w, num.format(s.distinct_states).as_bytes());
            match &r.shrunk {
                Some(a) => field(&mut w, num.format(a.len()).as_bytes()),
                None => field(&mut w, b""),
            }
            // The fields are written: this ends the record.
            w.write_record(None::<&[u8]>).expect("a row of 16 fields");
        }
        w.into_inner().expect("writing to memory")
    }

    /// The fields of one run's row.
    pub fn row(&self, r: &RunRecord) -> [String; 16] {
        let s = &r.summary;
        let (inv, at) = match s.first_violation {
            Some((inv, at)) => (inv.name().to_string(), at.to_string()),
            None => (String::new(), String::new()),
        };
        [
            r.index.to_string(),
            r.seed.to_string(),
            self.policy.clone(),
            self.gpus.clone(),
            self.vms.clone(),
            self.sizes.clone(),
            s.kinds.to_string(),
            s.steps.to_string(),
            inv,
            at,
            s.fired.to_string(),
            s.outcomes[0].to_string(),
            s.outcomes[1].to_string(),
            s.outcomes[2].to_string(),
            s.distinct_states.to_string(),
            r.shrunk
                .as_ref()
                .map(|a| a.len().to_string())
                .unwrap_or_default(),
        ]
    }
}

impl CampaignReport {
    /// One row per run, in run order ([`CSV_HEADER`]).
    pub fn csv(&self) -> CsvDoc {
        let mut doc = CsvDoc::new(CSV_HEADER);
        let rows = CsvRows::new(&self.policy, &self.config.device);
        for r in &self.runs {
            doc.row(rows.row(r));
        }
        doc
    }

    /// How many runs failed.
    pub fn failing_runs(&self) -> u64 {
        self.runs
            .iter()
            .filter(|r| r.summary.first_violation.is_some())
            .count() as u64
    }
}

/// Slot sizes as one field: `1` when all slots have size 1, else `1 2 1`.
pub fn sizes_text(d: &Device) -> String {
    let sizes = d.sizes();
    if sizes.windows(2).all(|w| w[0] == w[1]) {
        sizes.first().map(|s| s.to_string()).unwrap_or_default()
    } else {
        sizes
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Regenerates run `index` of the campaign with master seed `master`:
/// the walk's summary and the full recorded run (every action with its
/// outcome, the state after it and its violations).
pub fn replay_run<P: Allocator + ?Sized>(
    policy: &P,
    config: WalkConfig,
    master: u64,
    index: u64,
) -> (WalkSummary, Run) {
    let seed = seed::run_seed(master, index);
    let (summary, actions) = Walker::new(policy, config).walk_recorded(seed);
    let names = VmNames::letters(config.device.vms());
    let run = trace::run_actions(policy, &config.device, &names, &actions);
    (summary, run)
}

#[cfg(test)]
mod tests {
    use super::{RunSet, WalkConfig, Walker};
    use crate::{Builtin, Device};

    /// The distinct-state table follows what the walks find, not `steps`:
    /// 1,000 walks of a device with no VM slot (three states each) under a
    /// bound of 100,000,000 steps leave it at its 256-slot floor, where it
    /// was 8,388,608 slots (64 MiB), filled at every walk, when sized by
    /// the bound.
    #[test]
    fn a_walkers_table_is_sized_by_the_states_found() {
        let config = WalkConfig {
            device: Device::uniform(1, 0, 1).unwrap(),
            steps: 100_000_000,
            swarm: false,
        };
        let mut walker = Walker::new(&Builtin::Fixed, config);
        for seed in 0..1000 {
            assert_eq!(walker.walk(seed).distinct_states, 3);
        }
        assert_eq!(walker.seen.slots.len(), 256);
        assert_eq!(walker.walk_prefix(0, 1).len(), 1);
        assert_eq!(walker.walk_prefix(0, 5).len(), 2);
    }

    /// Growth doubles (fewer than 8 slots a key); a clear after a walk
    /// that used under a 32nd of the table goes back to the floor.
    #[test]
    fn run_set_grows_with_its_keys_and_shrinks_when_cleared() {
        let mut set = RunSet::for_walk(100_000_000);
        assert_eq!(set.slots.len(), 256);
        for k in 0..100_000 {
            assert!(set.insert(k));
        }
        assert_eq!(set.slots.len(), 1 << 19);
        set.clear();
        assert_eq!((set.len, set.slots.len()), (0, 1 << 19));
        for k in 0..3 {
            assert!(set.insert(k));
        }
        set.clear();
        assert_eq!((set.len, set.slots.len()), (0, 256));
        assert!(set.insert(1));
        assert!(!set.insert(1));
        assert_eq!(RunSet::for_walk(10).slots.len(), 64);
    }

    /// Keys whose home slots coincide, keys met again, `u64::MAX` (always
    /// present) and growth past the quarter-full mark: `insert` answers as
    /// a `HashSet` does.
    #[test]
    fn run_set_inserts_like_a_hash_set() {
        let mut set = RunSet::with_capacity(4);
        assert_eq!(set.slots.len(), 16);
        let mut model = std::collections::HashSet::new();
        // Keys on a few home slots only (the hash's top bits pick the
        // slot), each inserted twice, then every one again.
        let keys: Vec<u64> = (0..40u64)
            .map(|i| (i % 3).wrapping_mul(0x4000_0000_0000_0000) ^ (i * 7))
            .chain([u64::MAX, 0])
            .collect();
        let mut collided = 0;
        for &k in keys.iter().chain(&keys) {
            let home = (k.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> set.shift) as usize;
            collided += usize::from(set.slots[home] != k && set.slots[home] != u64::MAX);
            let want = k != u64::MAX && model.insert(k);
            assert_eq!(set.insert(k), want, "{k:#x}");
            assert_eq!(set.len, model.len());
            assert!(set.len * 4 <= set.slots.len());
        }
        assert!(collided > 0, "no key probed past its home slot");
        assert!(set.slots.len() > 16, "the set never grew");
        set.clear();
        assert!(set.insert(5));
        assert!(!set.insert(5));
    }
}
