//! Differential testing of the model (proptest-state-machine): a
//! deliberately plain reference implementation of `shared/MODEL.md`,
//! written from the page and not from `src/model.rs` (sets are `HashSet`s,
//! states are strings and small enums, the policy is a `match`), runs the
//! same steps as `gpuclaim::model::step`. After every step the outcome, the
//! invariants that fired, `free`, `held[kube]`, every `held[vm]`, every
//! lifecycle state (with the kind of stop) and the `snapshot` copy must be
//! equal.

use std::collections::HashSet;

use gpuclaim::model::{self, Action, Device, KubeState, Op, Phase, State, StepOption, VmState};
use gpuclaim::{Builtin, Invariant};
use proptest::prelude::*;
use proptest::test_runner::Config;
use proptest_state_machine::{ReferenceStateMachine, StateMachineTest, prop_state_machine};

// ---------------------------------------------------------------------------
// The reference: MODEL.md, read literally.

type Gpus = HashSet<usize>;

/// A VM's lifecycle state, as MODEL.md names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Life {
    Absent,
    Creating,
    Running,
    /// `keep` is whether the stop keeps the GPUs (`provisioned`).
    Stopping {
        keep: bool,
    },
    Stopped,
    StoppedProvisioned,
    Starting,
    Removing,
    Failed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kube {
    Unconfigured,
    Configuring,
    Configured,
}

/// A step as MODEL.md's table has them: request, begin or end, VM, option.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Step {
    /// "begin", "end" or "event".
    phase: &'static str,
    /// "create-vm", "start-vm", "stop-vm", "remove-vm", "configure-kube", "kube-takeover".
    request: &'static str,
    vm: usize,
    provisioned: bool,
    /// `gpus=N` of a create.
    gpus: Option<usize>,
}

#[derive(Clone, Debug)]
struct Reference {
    policy: &'static str,
    gpus: usize,
    /// The size of each VM slot.
    sizes: Vec<usize>,
    free: Gpus,
    held_vm: Vec<Gpus>,
    held_kube: Gpus,
    life: Vec<Life>,
    /// The size a VM's GPUs are counted against: its create's.
    size_now: Vec<usize>,
    kube: Kube,
    /// `snapshot`'s copy of `free` while configuring.
    snapshot: Option<Gpus>,
    /// The last step's outcome and the invariants it violated.
    outcome: &'static str,
    violated: Vec<&'static str>,
}

impl Reference {
    fn new(policy: &'static str, gpus: usize, sizes: Vec<usize>) -> Self {
        let n = sizes.len();
        Reference {
            policy,
            gpus,
            free: (0..gpus).collect(),
            held_vm: vec![Gpus::new(); n],
            held_kube: Gpus::new(),
            life: vec![Life::Absent; n],
            size_now: sizes.clone(),
            sizes,
            kube: Kube::Unconfigured,
            snapshot: None,
            outcome: "ok",
            violated: Vec::new(),
        }
    }

    /// "Whenever GPUs are taken from free, the lowest-numbered ones are taken."
    fn take_lowest(&mut self, vm: usize, n: usize) -> bool {
        let mut sorted: Vec<usize> = self.free.iter().copied().collect();
        sorted.sort();
        if sorted.len() < n {
            return false;
        }
        for g in &sorted[..n] {
            self.free.remove(g);
            self.held_vm[vm].insert(*g);
        }
        true
    }

    fn release(&mut self, vm: usize) {
        let held: Vec<usize> = self.held_vm[vm].drain().collect();
        self.free.extend(held);
    }

    /// One step; returns the outcome. Anything not in the table is rejected
    /// and changes nothing.
    fn step(&mut self, s: &Step) -> &'static str {
        let v = s.vm;
        match (s.phase, s.request) {
            ("begin", "create-vm") if self.life[v] == Life::Absent => {
                let size = s.gpus.unwrap_or(self.sizes[v]);
                self.size_now[v] = size;
                if self.take_lowest(v, size) {
                    self.life[v] = Life::Creating;
                    "ok"
                } else {
                    self.life[v] = Life::Failed;
                    "no-gpu"
                }
            }
            ("begin", "start-vm") if self.life[v] == Life::Stopped => {
                if self.take_lowest(v, self.size_now[v]) {
                    self.life[v] = Life::Starting;
                    "ok"
                } else {
                    "no-gpu"
                }
            }
            ("begin", "start-vm") if self.life[v] == Life::StoppedProvisioned => {
                self.life[v] = Life::Starting;
                "ok"
            }
            ("begin", "stop-vm") if self.life[v] == Life::Running => {
                self.life[v] = Life::Stopping {
                    keep: s.provisioned,
                };
                "ok"
            }
            ("begin", "remove-vm")
                if matches!(
                    self.life[v],
                    Life::Running | Life::Stopped | Life::StoppedProvisioned | Life::Failed
                ) =>
            {
                self.life[v] = Life::Removing;
                "ok"
            }
            ("begin", "configure-kube") if self.kube == Kube::Unconfigured => {
                if self.policy == "snapshot" {
                    self.snapshot = Some(self.free.clone());
                }
                self.kube = Kube::Configuring;
                "ok"
            }
            ("end", "create-vm") if self.life[v] == Life::Creating => {
                self.life[v] = Life::Running;
                "ok"
            }
            ("end", "start-vm") if self.life[v] == Life::Starting => {
                self.life[v] = Life::Running;
                "ok"
            }
            ("end", "stop-vm") => match self.life[v] {
                Life::Stopping { keep: true } => {
                    self.life[v] = Life::StoppedProvisioned;
                    "ok"
                }
                Life::Stopping { keep: false } => {
                    self.release(v);
                    self.life[v] = Life::Stopped;
                    "ok"
                }
                _ => "rejected",
            },
            ("end", "remove-vm") if self.life[v] == Life::Removing => {
                self.release(v);
                self.life[v] = Life::Absent;
                "ok"
            }
            ("end", "configure-kube") if self.kube == Kube::Configuring => {
                match self.snapshot.take() {
                    Some(copy) => {
                        self.held_kube.extend(copy.iter().copied());
                        self.free.retain(|g| !copy.contains(g));
                    }
                    None => {
                        let all: Vec<usize> = self.free.drain().collect();
                        self.held_kube.extend(all);
                    }
                }
                self.kube = Kube::Configured;
                "ok"
            }
            ("event", "kube-takeover")
                if self.policy == "legacy"
                    && self.kube == Kube::Configured
                    && !self.free.is_empty() =>
            {
                let all: Vec<usize> = self.free.drain().collect();
                self.held_kube.extend(all);
                "ok"
            }
            _ => "rejected",
        }
    }

    /// MODEL.md's invariants table, on the step from `before` to `self`.
    fn invariants(&self, before: &Reference) -> Vec<&'static str> {
        let mut out = Vec::new();
        let mut sets: Vec<&Gpus> = vec![&self.free, &self.held_kube];
        sets.extend(self.held_vm.iter());
        let mut disjoint = true;
        for i in 0..sets.len() {
            for j in i + 1..sets.len() {
                if !sets[i].is_disjoint(sets[j]) {
                    disjoint = false;
                }
            }
        }
        if !disjoint {
            out.push("no-double-claim");
        }
        let union: Gpus = sets.iter().flat_map(|s| s.iter().copied()).collect();
        if union != (0..self.gpus).collect::<Gpus>() {
            out.push("conservation");
        }
        let vms_match = (0..self.life.len()).all(|v| match self.life[v] {
            Life::Creating | Life::Starting | Life::Running | Life::StoppedProvisioned => {
                self.held_vm[v].len() == self.size_now[v]
            }
            Life::Absent | Life::Stopped | Life::Failed => self.held_vm[v].is_empty(),
            Life::Stopping { .. } | Life::Removing => true,
        });
        let kube_matches = self.kube == Kube::Configured || self.held_kube.is_empty();
        if !(vms_match && kube_matches) {
            out.push("holds-match-state");
        }
        if before.kube == Kube::Configured && !self.held_kube.is_subset(&before.held_kube) {
            out.push("no-steal-after-dealloc");
        }
        out
    }

    /// The steps MODEL.md enables here: every request that is not rejected,
    /// every end of an operation in flight, the policy's events.
    fn enabled(&self) -> Vec<Step> {
        let mut out = Vec::new();
        let mk = |phase, request, vm, provisioned| Step {
            phase,
            request,
            vm,
            provisioned,
            gpus: None,
        };
        for v in 0..self.life.len() {
            match self.life[v] {
                Life::Absent => out.push(mk("begin", "create-vm", v, false)),
                Life::Running => {
                    out.push(mk("begin", "stop-vm", v, false));
                    out.push(mk("begin", "stop-vm", v, true));
                    out.push(mk("begin", "remove-vm", v, false));
                }
                Life::Stopped | Life::StoppedProvisioned => {
                    out.push(mk("begin", "start-vm", v, false));
                    out.push(mk("begin", "remove-vm", v, false));
                }
                Life::Failed => out.push(mk("begin", "remove-vm", v, false)),
                Life::Creating => out.push(mk("end", "create-vm", v, false)),
                Life::Starting => out.push(mk("end", "start-vm", v, false)),
                Life::Stopping { .. } => out.push(mk("end", "stop-vm", v, false)),
                Life::Removing => out.push(mk("end", "remove-vm", v, false)),
            }
        }
        match self.kube {
            Kube::Unconfigured => out.push(mk("begin", "configure-kube", 0, false)),
            Kube::Configuring => out.push(mk("end", "configure-kube", 0, false)),
            Kube::Configured => {}
        }
        if self.policy == "legacy" && self.kube == Kube::Configured && !self.free.is_empty() {
            out.push(mk("event", "kube-takeover", 0, false));
        }
        out
    }
}

// ---------------------------------------------------------------------------
// The state machine: the reference drives generation.

struct Spec;

const REQUESTS: [(&str, &str); 11] = [
    ("begin", "create-vm"),
    ("begin", "start-vm"),
    ("begin", "stop-vm"),
    ("begin", "remove-vm"),
    ("end", "create-vm"),
    ("end", "start-vm"),
    ("end", "stop-vm"),
    ("end", "remove-vm"),
    ("begin", "configure-kube"),
    ("end", "configure-kube"),
    ("event", "kube-takeover"),
];

impl ReferenceStateMachine for Spec {
    type State = Reference;
    type Transition = Step;

    fn init_state() -> BoxedStrategy<Reference> {
        (
            prop_oneof![Just("fixed"), Just("legacy"), Just("snapshot")],
            1usize..=4,
        )
            .prop_flat_map(|(policy, gpus)| {
                // Size 1 most often (the documented sizes), 0 to G otherwise.
                let size = prop_oneof![3 => Just(1usize.min(gpus)), 1 => 0..=gpus];
                proptest::collection::vec(size, 1..=4)
                    .prop_map(move |sizes| Reference::new(policy, gpus, sizes))
            })
            .boxed()
    }

    fn transitions(state: &Reference) -> BoxedStrategy<Step> {
        let vms = state.life.len();
        let gpus = state.gpus;
        // Any step at all (most are rejected), with its options.
        let any = (
            0..REQUESTS.len(),
            0..vms,
            any::<bool>(),
            proptest::option::weighted(0.2, 0..=gpus),
        )
            .prop_map(|(i, vm, provisioned, n)| {
                let (phase, request) = REQUESTS[i];
                let takes_vm = request.ends_with("-vm");
                Step {
                    phase,
                    request,
                    vm: if takes_vm { vm } else { 0 },
                    provisioned: provisioned && phase == "begin" && request == "stop-vm",
                    gpus: if phase == "begin" && request == "create-vm" {
                        n
                    } else {
                        None
                    },
                }
            });
        let enabled = state.enabled();
        if enabled.is_empty() {
            any.boxed()
        } else {
            prop_oneof![3 => proptest::sample::select(enabled), 1 => any].boxed()
        }
    }

    fn apply(mut state: Reference, step: &Step) -> Reference {
        let before = state.clone();
        state.outcome = state.step(step);
        state.violated = state.invariants(&before);
        state
    }
}

// ---------------------------------------------------------------------------
// The system under test: gpuclaim's model, compared after every step.

struct Model {
    policy: Builtin,
    device: Device,
    state: State,
}

fn to_action(step: &Step) -> Action {
    let op = Op::from_name(step.request).unwrap();
    let phase = match step.phase {
        "begin" => Phase::Begin,
        "end" => Phase::End,
        _ => Phase::Event,
    };
    let option = match (step.provisioned, step.gpus) {
        (true, _) => StepOption::Provisioned,
        (false, Some(n)) => StepOption::Gpus(n as u8),
        (false, None) => StepOption::None,
    };
    Action {
        phase,
        op,
        vm: step.vm as u8,
        option,
    }
}

fn set(bits: u8) -> Gpus {
    (0..8).filter(|g| bits & (1 << g) != 0).collect()
}

fn life_of(v: VmState) -> Life {
    match v {
        VmState::Absent => Life::Absent,
        VmState::Creating => Life::Creating,
        VmState::Running => Life::Running,
        VmState::Stopping { provisioned } => Life::Stopping { keep: provisioned },
        VmState::Stopped => Life::Stopped,
        VmState::StoppedProvisioned => Life::StoppedProvisioned,
        VmState::Starting => Life::Starting,
        VmState::Removing => Life::Removing,
        VmState::Failed => Life::Failed,
        VmState::Rebooting => unreachable!("the reference is version 1: no update step is drawn"),
    }
}

fn kube_of(k: KubeState) -> Kube {
    match k {
        KubeState::Unconfigured => Kube::Unconfigured,
        KubeState::Configuring => Kube::Configuring,
        KubeState::Configured => Kube::Configured,
        KubeState::Rebooting => unreachable!("the reference is version 1: no update step is drawn"),
    }
}

fn assert_same(model: &Model, reference: &Reference) {
    let s = &model.state;
    assert_eq!(set(s.free), reference.free, "free");
    assert_eq!(set(s.kube_held), reference.held_kube, "held[kube]");
    assert_eq!(kube_of(s.kube), reference.kube, "Kubernetes' state");
    assert_eq!(
        set(s.memo as u8),
        reference.snapshot.clone().unwrap_or_default(),
        "snapshot's copy of free"
    );
    for v in 0..model.device.vms() {
        assert_eq!(set(s.vms[v].held), reference.held_vm[v], "held[vm {v}]");
        assert_eq!(life_of(s.vms[v].life), reference.life[v], "vm {v}");
    }
}

impl StateMachineTest for Model {
    type SystemUnderTest = Model;
    type Reference = Spec;

    fn init_test(reference: &Reference) -> Model {
        let sizes: Vec<u8> = reference.sizes.iter().map(|s| *s as u8).collect();
        let device = Device::new(reference.gpus as u8, &sizes).unwrap();
        let policy = Builtin::from_name(reference.policy).unwrap();
        Model {
            policy,
            device,
            state: device.initial(),
        }
    }

    fn apply(mut model: Model, reference: &Reference, step: Step) -> Model {
        let t = model::step(&model.policy, &model.device, &model.state, to_action(&step));
        assert_eq!(t.outcome.name(), reference.outcome, "outcome of {step:?}");
        let fired: Vec<&str> = t.violations.iter().map(Invariant::name).collect();
        let mut expected = reference.violated.clone();
        expected.sort_by_key(|n| Invariant::from_name(n).unwrap());
        assert_eq!(fired, expected, "invariants after {step:?}");
        // The enabled actions agree too (MODEL.md, "States and actions");
        // `reference` is already the state after the step.
        let mut enabled: Vec<Action> = model::enabled(&model.policy, &model.device, &t.state);
        let mut want: Vec<Action> = reference.enabled().iter().map(to_action).collect();
        enabled.sort();
        want.sort();
        assert_eq!(enabled, want, "enabled actions after {step:?}");
        model.state = t.state;
        model
    }

    fn check_invariants(model: &Model, reference: &Reference) {
        assert_same(model, reference);
    }
}

prop_state_machine! {
    #![proptest_config(Config {
        cases: 300,
        failure_persistence: None,
        .. Config::default()
    })]

    #[test]
    fn the_model_agrees_with_the_reference_at_every_step(sequential 1..60 => Model);
}

/// The reference itself is checked on MODEL.md's expected results, so that
/// agreeing with it means something: `legacy` steals, `snapshot` double
/// claims, in the shortest ways.
#[test]
fn the_reference_finds_the_documented_violations() {
    let st = |phase, request, vm| Step {
        phase,
        request,
        vm,
        provisioned: false,
        gpus: None,
    };
    let run = |policy, steps: &[Step]| {
        let mut r = Reference::new(policy, 1, vec![1]);
        let mut all = Vec::new();
        for s in steps {
            let before = r.clone();
            r.outcome = r.step(s);
            all.extend(r.invariants(&before));
        }
        all
    };
    let steal = [
        st("begin", "create-vm", 0),
        st("end", "create-vm", 0),
        st("begin", "configure-kube", 0),
        st("end", "configure-kube", 0),
        st("begin", "stop-vm", 0),
        st("end", "stop-vm", 0),
        st("event", "kube-takeover", 0),
    ];
    assert_eq!(run("legacy", &steal), vec!["no-steal-after-dealloc"]);
    assert!(run("fixed", &steal).is_empty());
    let race = [
        st("begin", "configure-kube", 0),
        st("begin", "create-vm", 0),
        st("end", "configure-kube", 0),
    ];
    assert_eq!(run("snapshot", &race), vec!["no-double-claim"]);
    assert!(run("fixed", &race).is_empty());
}
