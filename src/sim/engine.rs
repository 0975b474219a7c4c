//! The time-driven simulator of MODEL.md's "Time" section: an event queue, a
//! clock and a workload (`poisson` or a replayed trace) driving
//! [`model::step`]. The engine never changes a set itself: every begin step,
//! end step and internal event (`kube-takeover`) is a model action.
//!
//! # Event order
//! Events fire in order of time; events at the same time fire in the order
//! they were scheduled (a sequence number breaks ties, first scheduled first).
//! Nothing at or after the horizon is processed; an event that would fall
//! there is not even queued.
//!
//! # The takeover clock
//! Whenever the policy's internal event is enabled ([`Allocator::takeover_enabled`];
//! for `legacy`: Kubernetes configured and `free` not empty), one takeover
//! is pending at `now + delay`. The delay is drawn again when the event
//! becomes enabled and after every step that changes `free` while it stays
//! enabled (the exponential law is memoryless, so this is MODEL.md's law);
//! when the event is disabled the pending one is cancelled. The takeover is
//! the model action `kube-takeover`, counted as an internal event.
//!
//! # What is counted (MODEL.md "Time")
//! - `arrivals`: every poisson arrival or trace request, `no_slot` ones too;
//!   each other arrival is a `create-vm` request.
//! - `requests`: begin steps by operation and outcome, retries included
//!   (a start repeated after `no-gpu`, the remove that follows a failed
//!   create, Kubernetes' configure).
//! - `end_steps`, `internal_events`; [`Counters::events`] is arrivals +
//!   other requests + end steps + internal events, [`Counters::steps`] the
//!   model actions (begin + end + internal), which differ by the `no_slot`
//!   arrivals.
//! - Hours integrate the state between events up to the horizon:
//!   `vm_hours_running` (VMs in `running`), `gpu_hours_vms` (GPUs in any
//!   `held[vm]`, whatever the VM's state), `gpu_hours_kube`,
//!   `gpu_hours_idle` (`free`). A GPU in two sets (a faulty policy) counts
//!   in both.
//! - `violations`: per invariant, the steps on which it fired.
//!
//! # Random streams
//! A run draws from five independent generators, each seeded from the run's
//! seed and a fixed stream number: arrivals, operation durations, VM
//! lifetimes, on/off periods (with the provisioned draw), and the takeover
//! delay. Runs of two policies with the same seed therefore see the same
//! arrival process (common random numbers).

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use crate::invariant::Invariant;
use crate::model::{self, Action, Device, KubeState, Op, Outcome, State, StepOption, VmState};
use crate::policy::Allocator;
use crate::seed::{self, Rng};
use crate::sim::dist::{Dist, bernoulli};

/// Minutes per hour; the engine's clock runs in minutes.
pub const MINUTES_PER_HOUR: f64 = 60.0;

/// How long each operation takes, from its begin step to its end step
/// (minutes). The defaults are assumptions (see [`Durations::ASSUMED`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Durations {
    pub create: Dist,
    pub start: Dist,
    pub stop: Dist,
    pub remove: Dist,
    pub configure: Dist,
}

impl Durations {
    /// MODEL.md's assumed defaults: create-vm uniform 5 to 20 minutes;
    /// start-vm 3, stop-vm 2, remove-vm 2, configure-kube 30 (constants).
    pub const ASSUMED: Durations = Durations {
        create: Dist::Uniform(5.0, 20.0),
        start: Dist::Const(3.0),
        stop: Dist::Const(2.0),
        remove: Dist::Const(2.0),
        configure: Dist::Const(30.0),
    };

    fn of(&self, op: Op) -> &Dist {
        match op {
            Op::CreateVm => &self.create,
            Op::StartVm => &self.start,
            Op::StopVm => &self.stop,
            Op::RemoveVm => &self.remove,
            // The simulator requests no update yet (MODEL.md version 2).
            Op::ConfigureKube | Op::KubeTakeover | Op::UpdateDevice => &self.configure,
        }
    }
}

impl Default for Durations {
    fn default() -> Self {
        Self::ASSUMED
    }
}

/// The `poisson` workload (MODEL.md). Every time is in minutes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Poisson {
    /// Time between arrivals: `Exp(60 / rate_per_hour)` for a Poisson
    /// process; a constant gives a deterministic arrival stream (tests).
    pub interarrival: Dist,
    /// A VM's lifetime, from the end of its create to its `remove-vm`.
    pub lifetime: Dist,
    /// On period: from reaching `running` to `stop-vm`.
    pub on: Dist,
    /// Off period: from the end of the stop (or a failed start) to `start-vm`.
    pub off: Dist,
    /// Probability that a stop is `provisioned`, drawn at each stop.
    pub provisioned_probability: f64,
    /// GPUs each created VM asks for.
    pub size: u8,
}

impl Poisson {
    /// Arrivals at `rate_per_hour`, with exponential lifetime and on/off
    /// periods of the given means (hours).
    pub fn with_rates(
        rate_per_hour: f64,
        lifetime_hours: f64,
        on_hours: f64,
        off_hours: f64,
        provisioned_probability: f64,
    ) -> Self {
        // Hours so many that their minutes overflow (1e307) are never, as
        // `inf` is: an infinite mean is not a valid distribution.
        let exp_hours = |h: f64| {
            if (h * MINUTES_PER_HOUR).is_finite() {
                Dist::Exp(h * MINUTES_PER_HOUR)
            } else {
                Dist::Never
            }
        };
        Poisson {
            interarrival: if rate_per_hour > 0.0 && (MINUTES_PER_HOUR / rate_per_hour).is_finite() {
                Dist::Exp(MINUTES_PER_HOUR / rate_per_hour)
            } else {
                Dist::Never
            },
            lifetime: exp_hours(lifetime_hours),
            on: exp_hours(on_hours),
            off: exp_hours(off_hours),
            provisioned_probability,
            size: 1,
        }
    }
}

/// One request of a replayed trace, on the engine's clock (minutes).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TraceRequest {
    pub gpus: u8,
    pub start: f64,
    pub end: f64,
}

/// What drives the VMs.
#[derive(Clone, Copy, Debug)]
pub enum Workload<'a> {
    Poisson(Poisson),
    /// Requests in any order; each becomes `create-vm gpus=N` at its start
    /// and `remove-vm` at its end (see `sim::trace`).
    Trace(&'a [TraceRequest]),
}

/// One run's configuration. Times in minutes.
#[derive(Clone, Copy, Debug)]
pub struct SimConfig<'a> {
    pub gpus: u8,
    /// VM slots of the device (MODEL.md: at most 24 VMs).
    pub vm_slots: usize,
    pub horizon: f64,
    /// When `configure-kube` is requested; `None` for never.
    pub kube_at: Option<f64>,
    /// Delay of the policy's internal event (`kube-takeover`) from the
    /// moment it becomes enabled or `free` changes while it is enabled.
    pub takeover: Dist,
    pub durations: Durations,
    pub workload: Workload<'a>,
}

/// The counters of one run (MODEL.md "Time"). Hours are simulated hours.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Counters {
    /// VM arrivals (poisson arrivals or trace requests), dropped ones too.
    pub arrivals: u64,
    /// Arrivals that found no absent slot and were dropped.
    pub no_slot: u64,
    /// Begin steps of requests, by operation ([`REQUEST_OPS`] order) and
    /// outcome ([`Outcome::ALL`] order); retries included.
    pub requests: [[u64; 3]; 5],
    pub end_steps: u64,
    pub internal_events: u64,
    pub vm_hours_running: f64,
    pub gpu_hours_vms: f64,
    pub gpu_hours_kube: f64,
    pub gpu_hours_idle: f64,
    /// Steps on which each invariant fired ([`Invariant::ALL`] order).
    pub violations: [u64; Invariant::COUNT],
}

/// The requests, in the order of [`Counters::requests`].
pub const REQUEST_OPS: [Op; 5] = [
    Op::CreateVm,
    Op::StartVm,
    Op::StopVm,
    Op::RemoveVm,
    Op::ConfigureKube,
];

fn op_index(op: Op) -> usize {
    match op {
        Op::CreateVm => 0,
        Op::StartVm => 1,
        Op::StopVm => 2,
        Op::RemoveVm => 3,
        Op::ConfigureKube | Op::KubeTakeover | Op::UpdateDevice => 4,
    }
}

fn outcome_index(o: Outcome) -> usize {
    match o {
        Outcome::Ok => 0,
        Outcome::NoGpu => 1,
        Outcome::Rejected => 2,
    }
}

impl Counters {
    pub fn requests_of(&self, op: Op) -> u64 {
        self.requests[op_index(op)].iter().sum()
    }
    pub fn request(&self, op: Op, outcome: Outcome) -> u64 {
        self.requests[op_index(op)][outcome_index(outcome)]
    }
    /// Begin steps of every request.
    pub fn begin_steps(&self) -> u64 {
        self.requests.iter().flatten().sum()
    }
    /// Requests other than the creates that arrivals asked for.
    pub fn other_requests(&self) -> u64 {
        self.begin_steps() - self.requests_of(Op::CreateVm)
    }
    /// MODEL.md's events: arrivals (dropped ones too), other requests, end
    /// steps and internal events.
    pub fn events(&self) -> u64 {
        self.arrivals + self.other_requests() + self.end_steps + self.internal_events
    }
    /// Model actions taken: begin steps, end steps and internal events.
    pub fn steps(&self) -> u64 {
        self.begin_steps() + self.end_steps + self.internal_events
    }
    pub fn violations_of(&self, inv: Invariant) -> u64 {
        self.violations[inv as usize]
    }
    /// `no-gpu` creates over all creates; `None` without creates.
    pub fn create_failure_fraction(&self) -> Option<f64> {
        fraction(
            self.request(Op::CreateVm, Outcome::NoGpu),
            self.requests_of(Op::CreateVm),
        )
    }
    /// `no-gpu` starts over all starts; `None` without starts.
    pub fn start_failure_fraction(&self) -> Option<f64> {
        fraction(
            self.request(Op::StartVm, Outcome::NoGpu),
            self.requests_of(Op::StartVm),
        )
    }
}

fn fraction(num: u64, den: u64) -> Option<f64> {
    (den > 0).then(|| num as f64 / den as f64)
}

/// Stream numbers of a run's generators.
const STREAM_ARRIVALS: u64 = 1;
const STREAM_DURATIONS: u64 = 2;
const STREAM_LIFETIMES: u64 = 3;
const STREAM_ONOFF: u64 = 4;
const STREAM_TAKEOVER: u64 = 5;

/// The slot number used for Kubernetes' own end step.
const KUBE: u8 = u8::MAX;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ev {
    /// The next poisson arrival.
    Arrival,
    /// Trace request `i` starts.
    TraceStart(u32),
    /// The end step of the operation in flight on `vm` (or Kubernetes).
    End {
        vm: u8,
        op: Op,
    },
    /// The lifetime (or trace request) of incarnation `epoch` of `vm` ends.
    Lifetime {
        vm: u8,
        epoch: u32,
    },
    /// An on or off period of incarnation `epoch` of `vm` ends.
    Period {
        vm: u8,
        epoch: u32,
    },
    ConfigureKube,
    /// The internal event, valid while `generation` is current.
    Takeover {
        generation: u32,
    },
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    /// `f64::to_bits` of a non-negative finite time: orders like the time.
    time: u64,
    seq: u64,
    ev: Ev,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        (self.time, self.seq) == (other.time, other.seq)
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    /// Reversed, so that `BinaryHeap` pops the earliest (then first queued).
    fn cmp(&self, other: &Self) -> Ordering {
        (other.time, other.seq).cmp(&(self.time, self.seq))
    }
}

/// What the workload wants of a VM slot beyond the model state.
#[derive(Clone, Copy, Debug, Default)]
struct SlotLife {
    /// Incarnation number, bumped at each create; stale timers carry an old one.
    epoch: u32,
    /// Its lifetime has ended: `remove-vm` as soon as nothing is in flight.
    dying: bool,
    /// A request that fell due while an operation was in flight.
    waiting: Option<Action>,
}

/// A reusable simulator: keeps its queue's memory between runs, so a sweep
/// of many runs does not allocate per run.
#[derive(Debug, Default)]
pub struct Simulator {
    queue: BinaryHeap<Entry>,
    /// Most events a run may process; `None`:
    /// [`MAX_EVENTS_PER_RUN`](crate::sim::limits::MAX_EVENTS_PER_RUN).
    max_events: Option<u64>,
}

impl Simulator {
    pub fn new() -> Self {
        Self::default()
    }

    /// A simulator whose runs stop with [`SimError::TooManyEvents`] past
    /// `max_events` events instead of the default bound.
    pub fn with_max_events(max_events: u64) -> Self {
        Simulator {
            max_events: Some(max_events),
            ..Self::default()
        }
    }

    /// One run of `config` under `policy` with `seed`.
    pub fn run<P: Allocator + ?Sized>(
        &mut self,
        policy: &P,
        config: &SimConfig<'_>,
        seed: u64,
    ) -> Result<Counters, SimError> {
        let device = Device::uniform(config.gpus, config.vm_slots, 0)?;
        config.check()?;
        self.queue.clear();
        let mut run = Run {
            policy,
            config,
            device,
            state: device.initial(),
            queue: &mut self.queue,
            seq: 0,
            now: 0.0,
            counters: Counters::default(),
            slots: [SlotLife::default(); model::MAX_VMS],
            takeover_generation: 0,
            takeover_armed: false,
            arrivals: seed::rng(seed::run_seed(seed, STREAM_ARRIVALS)),
            durations: seed::rng(seed::run_seed(seed, STREAM_DURATIONS)),
            lifetimes: seed::rng(seed::run_seed(seed, STREAM_LIFETIMES)),
            onoff: seed::rng(seed::run_seed(seed, STREAM_ONOFF)),
            takeover: seed::rng(seed::run_seed(seed, STREAM_TAKEOVER)),
        };
        let most = self
            .max_events
            .unwrap_or(crate::sim::limits::MAX_EVENTS_PER_RUN);
        run.go(most)
            .map_err(|()| SimError::TooManyEvents { most })?;
        Ok(run.counters)
    }
}

/// Why a run could not start.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SimError {
    #[error(transparent)]
    Device(#[from] model::DeviceError),
    /// A configuration [`SimConfig::check`] refuses; the message says which
    /// setting and what was expected.
    #[error("{0}")]
    Config(String),
    /// The run passed its bound on events (an allocator whose internal
    /// event keeps enabling itself, say): stopped rather than run on.
    #[error(
        "the run processed more than {most} events and was stopped; an allocator's internal event that keeps enabling itself, or periods too short for the horizon, make a run that does not end"
    )]
    TooManyEvents { most: u64 },
}

impl SimConfig<'_> {
    /// Refuses what would make a run meaningless, panic or never end, with
    /// the limits the command line and sweep files apply
    /// ([`limits::check`](crate::sim::limits::check)), so that a program
    /// using the library cannot start a run that never ends either.
    pub fn check(&self) -> Result<(), SimError> {
        crate::sim::limits::check(self).map_err(SimError::Config)
    }
}

/// One run of `config` under `policy` with `seed` (a fresh [`Simulator`]).
pub fn simulate<P: Allocator + ?Sized>(
    policy: &P,
    config: &SimConfig<'_>,
    seed: u64,
) -> Result<Counters, SimError> {
    Simulator::new().run(policy, config, seed)
}

struct Run<'r, P: Allocator + ?Sized> {
    policy: &'r P,
    config: &'r SimConfig<'r>,
    device: Device,
    state: State,
    queue: &'r mut BinaryHeap<Entry>,
    seq: u64,
    now: f64,
    counters: Counters,
    slots: [SlotLife; model::MAX_VMS],
    takeover_generation: u32,
    takeover_armed: bool,
    arrivals: Rng,
    durations: Rng,
    lifetimes: Rng,
    onoff: Rng,
    takeover: Rng,
}

impl<P: Allocator + ?Sized> Run<'_, P> {
    /// Runs to the horizon; an error past `most` events.
    fn go(&mut self, most: u64) -> Result<(), ()> {
        match self.config.workload {
            Workload::Poisson(p) => {
                let first = p.interarrival.sample(&mut self.arrivals);
                self.schedule(first, Ev::Arrival);
            }
            Workload::Trace(requests) => {
                for (i, r) in requests.iter().enumerate() {
                    self.schedule(r.start, Ev::TraceStart(i as u32));
                }
            }
        }
        if let Some(at) = self.config.kube_at {
            self.schedule(at, Ev::ConfigureKube);
        }
        // A policy from outside may have its internal event enabled at once.
        self.rearm_takeover(self.state.free, false);
        let horizon = self.config.horizon;
        let mut events = 0u64;
        while let Some(entry) = self.queue.pop() {
            events += 1;
            if events > most {
                return Err(());
            }
            let t = f64::from_bits(entry.time);
            self.advance(t);
            self.handle(entry.ev);
        }
        self.advance(horizon);
        Ok(())
    }

    /// Queues `ev` at `now + delay`; nothing at or after the horizon.
    #[inline]
    fn schedule(&mut self, at: f64, ev: Ev) {
        // Also refuses NaN and infinity (never).
        if at.partial_cmp(&self.config.horizon) != Some(Ordering::Less) {
            return;
        }
        // Never in the past, whatever a distribution gave: the clock only
        // moves forward.
        let at = at.max(self.now);
        self.seq += 1;
        self.queue.push(Entry {
            time: at.to_bits(),
            seq: self.seq,
            ev,
        });
    }

    fn after(&mut self, delay: f64, ev: Ev) {
        self.schedule(self.now + delay, ev);
    }

    /// Integrates the hour counters from `now` to `t` in the current state.
    #[inline]
    fn advance(&mut self, t: f64) {
        let dt = (t - self.now) / MINUTES_PER_HOUR;
        if dt > 0.0 {
            let c = &mut self.counters;
            let mut vm_gpus = 0u32;
            let mut running = 0u32;
            for vm in &self.state.vms[..self.device.vms()] {
                vm_gpus += vm.held.count_ones();
                running += u32::from(vm.life == VmState::Running);
            }
            c.vm_hours_running += f64::from(running) * dt;
            c.gpu_hours_vms += f64::from(vm_gpus) * dt;
            c.gpu_hours_kube += f64::from(self.state.kube_held.count_ones()) * dt;
            c.gpu_hours_idle += f64::from(self.state.free.count_ones()) * dt;
        }
        self.now = t;
    }

    /// Takes one model action, counting it and its violations, and keeps the
    /// takeover clock in step with `free`.
    #[inline]
    fn step(&mut self, action: Action) -> Outcome {
        let tr = model::step(self.policy, &self.device, &self.state, action);
        let c = &mut self.counters;
        match action.phase {
            model::Phase::Begin => {
                c.requests[op_index(action.op)][outcome_index(tr.outcome)] += 1;
            }
            model::Phase::End => c.end_steps += 1,
            model::Phase::Event => c.internal_events += 1,
        }
        for inv in tr.violations.iter() {
            c.violations[inv as usize] += 1;
        }
        let free_before = self.state.free;
        self.state = tr.state;
        self.rearm_takeover(free_before, true);
        tr.outcome
    }

    /// The takeover clock: armed while the policy's internal event is
    /// enabled; drawn again when it becomes enabled or `free` changes.
    fn rearm_takeover(&mut self, free_before: u8, was_checked: bool) {
        let enabled = self.policy.takeover_enabled(&self.device, &self.state);
        if !enabled {
            if self.takeover_armed {
                self.takeover_armed = false;
                self.takeover_generation = self.takeover_generation.wrapping_add(1);
            }
            return;
        }
        if self.takeover_armed && was_checked && free_before == self.state.free {
            return;
        }
        self.takeover_generation = self.takeover_generation.wrapping_add(1);
        self.takeover_armed = true;
        let delay = self.config.takeover.sample(&mut self.takeover);
        let generation = self.takeover_generation;
        self.after(delay, Ev::Takeover { generation });
    }

    fn handle(&mut self, ev: Ev) {
        match ev {
            Ev::Arrival => {
                let Workload::Poisson(p) = self.config.workload else {
                    return;
                };
                let next = p.interarrival.sample(&mut self.arrivals);
                self.after(next, Ev::Arrival);
                self.arrive(p.size, None);
            }
            Ev::TraceStart(i) => {
                let Workload::Trace(requests) = self.config.workload else {
                    return;
                };
                let r = requests[i as usize];
                self.arrive(r.gpus, Some(r.end));
            }
            Ev::End { vm, op } => self.end(vm, op),
            Ev::Lifetime { vm, epoch } => {
                let slot = &mut self.slots[usize::from(vm)];
                if slot.epoch != epoch || slot.dying {
                    return;
                }
                slot.dying = true;
                self.request(vm, Action::begin(Op::RemoveVm, vm));
            }
            Ev::Period { vm, epoch } => {
                let slot = self.slots[usize::from(vm)];
                if slot.epoch != epoch || slot.dying {
                    return;
                }
                let Workload::Poisson(p) = self.config.workload else {
                    return;
                };
                let action = match self.state.vms[usize::from(vm)].life {
                    VmState::Running => {
                        let option = if bernoulli(&mut self.onoff, p.provisioned_probability) {
                            StepOption::Provisioned
                        } else {
                            StepOption::None
                        };
                        Action::begin(Op::StopVm, vm).with_option(option)
                    }
                    _ => Action::begin(Op::StartVm, vm),
                };
                self.request(vm, action);
            }
            Ev::ConfigureKube => {
                let outcome = self.step(Action::begin(Op::ConfigureKube, 0));
                if outcome == Outcome::Ok && self.state.kube == KubeState::Configuring {
                    let d = self.config.durations.configure.sample(&mut self.durations);
                    self.after(
                        d,
                        Ev::End {
                            vm: KUBE,
                            op: Op::ConfigureKube,
                        },
                    );
                }
            }
            Ev::Takeover { generation } => {
                if generation != self.takeover_generation || !self.takeover_armed {
                    return;
                }
                self.takeover_armed = false;
                self.step(Action::takeover());
            }
        }
    }

    /// A VM arrives: `create-vm` in the lowest absent slot, or `no-slot`.
    /// `until` is a trace request's end (poisson lifetimes start at the
    /// create's end instead).
    fn arrive(&mut self, gpus: u8, until: Option<f64>) {
        self.counters.arrivals += 1;
        let Some(vm) = self.state.vms[..self.device.vms()]
            .iter()
            .position(|v| v.life == VmState::Absent)
        else {
            self.counters.no_slot += 1;
            return;
        };
        let vm = vm as u8;
        let slot = &mut self.slots[usize::from(vm)];
        slot.epoch = slot.epoch.wrapping_add(1);
        slot.dying = false;
        slot.waiting = None;
        let epoch = slot.epoch;
        if let Some(end) = until {
            self.schedule(end, Ev::Lifetime { vm, epoch });
        }
        self.begin(Action::begin(Op::CreateVm, vm).with_option(StepOption::Gpus(gpus)));
    }

    /// A request falls due: taken now, or when the operation in flight ends.
    fn request(&mut self, vm: u8, action: Action) {
        if self.state.vms[usize::from(vm)].life.in_flight().is_some() {
            self.slots[usize::from(vm)].waiting = Some(action);
        } else {
            self.begin(action);
        }
    }

    /// A begin step and what follows from its outcome.
    fn begin(&mut self, action: Action) {
        let vm = action.vm;
        let outcome = self.step(action);
        let life = self.state.vms[usize::from(vm)].life;
        match (action.op, outcome) {
            (op, Outcome::Ok) => {
                if let Some(op_in_flight) = life.in_flight() {
                    debug_assert_eq!(op_in_flight, op);
                    let d = self.config.durations.of(op).sample(&mut self.durations);
                    self.after(d, Ev::End { vm, op });
                }
            }
            (Op::CreateVm, Outcome::NoGpu) => {
                // MODEL.md: a create that fails with no-gpu is followed at
                // once by remove-vm.
                self.slots[usize::from(vm)].dying = true;
                self.begin(Action::begin(Op::RemoveVm, vm));
            }
            (Op::StartVm, Outcome::NoGpu) => self.off_period(vm),
            // Rejected (or a no-gpu outcome of another request, which the
            // model never gives): nothing follows.
            _ => {}
        }
    }

    /// The end step of `vm`'s operation, then what the workload does next.
    fn end(&mut self, vm: u8, op: Op) {
        self.step(Action::end(op, vm));
        if vm == KUBE {
            return;
        }
        let i = usize::from(vm);
        let slot = self.slots[i];
        if let Some(waiting) = slot.waiting {
            self.slots[i].waiting = None;
            self.begin(waiting);
            return;
        }
        if slot.dying {
            if self.state.vms[i].life != VmState::Absent {
                self.begin(Action::begin(Op::RemoveVm, vm));
            }
            return;
        }
        let Workload::Poisson(p) = self.config.workload else {
            return;
        };
        match (op, self.state.vms[i].life) {
            (Op::CreateVm, VmState::Running) => {
                let life = p.lifetime.sample(&mut self.lifetimes);
                let epoch = slot.epoch;
                self.after(life, Ev::Lifetime { vm, epoch });
                self.on_period(vm);
            }
            (Op::StartVm, VmState::Running) => self.on_period(vm),
            (Op::StopVm, _) => self.off_period(vm),
            _ => {}
        }
    }

    fn on_period(&mut self, vm: u8) {
        if let Workload::Poisson(p) = self.config.workload {
            let d = p.on.sample(&mut self.onoff);
            let epoch = self.slots[usize::from(vm)].epoch;
            self.after(d, Ev::Period { vm, epoch });
        }
    }

    fn off_period(&mut self, vm: u8) {
        if let Workload::Poisson(p) = self.config.workload {
            let d = p.off.sample(&mut self.onoff);
            let epoch = self.slots[usize::from(vm)].epoch;
            self.after(d, Ev::Period { vm, epoch });
        }
    }
}
