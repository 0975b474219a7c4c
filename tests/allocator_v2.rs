//! Allocator interface v2 from outside the crate: bugs at actions version 1
//! had no hook for (the begin of `remove-vm`, a provisioned stop), and an
//! allocator with a table of its own (`State::memo`), each caught by the
//! invariant that should catch it, in a scenario, by the explorer and by
//! the exhaustive checker.

use std::sync::Arc;

use gpuclaim::check::Checker;
use gpuclaim::explore::Campaign;
use gpuclaim::model::{Action, Device, Op, Outcome, Phase, State, VmState};
use gpuclaim::policy::table;
use gpuclaim::{Allocator, Builtin, Invariant, Registry, VmNames, run_actions, scenario};

/// The begin of `remove-vm` of a `failed` VM hands "its" GPU back: GPU 0
/// goes to `free` whoever holds it.
struct FreesOnFailedRemove;

impl Allocator for FreesOnFailedRemove {
    fn name(&self) -> &str {
        "frees-on-failed-remove"
    }
    fn apply(&self, _device: &Device, state: &mut State, action: Action) -> Outcome {
        let vm = usize::from(action.vm);
        if (action.phase, action.op) == (Phase::Begin, Op::RemoveVm)
            && state.vms[vm].life == VmState::Failed
        {
            state.free |= 1;
        }
        table(state, action)
    }
    fn slot_local(&self) -> bool {
        false
    }
}

/// A provisioned stop hands the GPUs back at its end step.
struct ProvisionedStopReleases;

impl Allocator for ProvisionedStopReleases {
    fn name(&self) -> &str {
        "provisioned-stop-releases"
    }
    fn apply(&self, _device: &Device, state: &mut State, action: Action) -> Outcome {
        let vm = usize::from(action.vm);
        if (action.phase, action.op) == (Phase::End, Op::StopVm)
            && state.vms[vm].life == (VmState::Stopping { provisioned: true })
        {
            state.release_to_free(vm);
            return Outcome::Ok;
        }
        table(state, action)
    }
    fn symmetric(&self) -> bool {
        true
    }
}

/// Hands GPUs out round-robin from a cursor it keeps in its memo (a table
/// of its own: the next GPU to try). `careful` skips GPUs that are not
/// free; the careless one takes the cursor's GPU whoever holds it.
struct RoundRobin {
    careful: bool,
}

impl Allocator for RoundRobin {
    fn name(&self) -> &str {
        if self.careful {
            "round-robin"
        } else {
            "careless-round-robin"
        }
    }
    fn apply(&self, device: &Device, state: &mut State, action: Action) -> Outcome {
        let vm = usize::from(action.vm);
        let claim = matches!(
            (action.phase, action.op, state.vms[vm].life),
            (Phase::Begin, Op::CreateVm, _) | (Phase::Begin, Op::StartVm, VmState::Stopped)
        );
        if !claim {
            return table(state, action);
        }
        let g = u32::from(device.gpus());
        let mut taken = 0u8;
        let mut cursor = state.memo;
        let mut tried = 0;
        while taken.count_ones() < u32::from(state.vms[vm].size) && tried < g {
            let bit = 1u8 << cursor;
            if !self.careful || state.free & bit != 0 {
                taken |= bit;
            }
            cursor = (cursor + 1) % g;
            tried += 1;
        }
        if taken.count_ones() < u32::from(state.vms[vm].size) {
            return Outcome::NoGpu;
        }
        state.free &= !taken;
        state.vms[vm].held |= taken;
        state.memo = cursor;
        Outcome::Ok
    }
    fn memo_bits(&self, device: &Device) -> u32 {
        // The cursor: 0..G.
        u32::BITS - u32::from(device.gpus() - 1).leading_zeros()
    }
    fn symmetric(&self) -> bool {
        true
    }
}

fn steps(specs: &[(Phase, Op, u8)]) -> Vec<Action> {
    specs
        .iter()
        .map(|&(phase, op, vm)| Action {
            phase,
            op,
            vm,
            option: Default::default(),
        })
        .collect()
}

#[test]
fn a_bug_at_the_begin_of_remove_vm_is_caught() {
    use Op::*;
    use Phase::*;
    let d = Device::uniform(1, 2, 1).unwrap();
    let actions = steps(&[
        (Begin, CreateVm, 0),
        (End, CreateVm, 0),
        (Begin, CreateVm, 1), // no-gpu: b fails
        (Begin, RemoveVm, 1), // the bug: a's GPU goes to free too
    ]);
    let run = run_actions(&FreesOnFailedRemove, &d, &VmNames::letters(2), &actions);
    assert_eq!(run.violations.len(), 1);
    assert_eq!(run.violations[0].step_index, 3);
    assert_eq!(run.violations[0].invariant, Invariant::NoDoubleClaim);
    assert_eq!(
        run.violations[0].after,
        "gpu0=a+free | a:running b:removing | kube:unconfigured"
    );
    let report = Checker::new(&FreesOnFailedRemove, d).run().unwrap();
    let found: Vec<_> = report.violations.iter().map(|f| f.invariant).collect();
    assert_eq!(found, [Invariant::NoDoubleClaim]);
    // Shortest: a creating VM already holds its GPU.
    assert_eq!(
        report.violations[0].counterexample,
        [actions[0], actions[2], actions[3]]
    );
    // Fixed on the same device: clean, and fewer states.
    let fixed = Checker::new(&Builtin::Fixed, d).run().unwrap();
    assert!(fixed.violations.is_empty());
    assert!(fixed.unique_states < report.unique_states);
}

#[test]
fn a_provisioned_stop_that_returns_the_gpu_is_caught() {
    let text = r#"
name = "a provisioned stop keeps the GPU"
gpus = 1
policies = ["fixed", "provisioned-stop-releases"]
steps = ["create-vm a", "stop-vm a provisioned", "create-vm b", "start-vm a"]
[expect]
outcomes = ["ok", "ok", "no-gpu", "ok"]
gpus = ["a"]
violations = []
[expect.provisioned-stop-releases]
outcomes = ["ok", "ok", "ok", "ok"]
gpus = ["b"]
violations = ["holds-match-state"]
"#;
    let mut registry = Registry::builtin();
    registry.register(Arc::new(ProvisionedStopReleases));
    let s = scenario::parse(std::path::Path::new("provisioned.toml"), text, &registry).unwrap();
    for p in s.policy_names() {
        let run = s.run(&*registry.get(&p).unwrap());
        assert!(run.passed(), "[{p}] {:?}", run.mismatches);
    }
    let d = Device::uniform(1, 1, 1).unwrap();
    let report = Checker::new(&ProvisionedStopReleases, d).run().unwrap();
    let found: Vec<_> = report.violations.iter().map(|f| f.invariant).collect();
    assert_eq!(found, [Invariant::HoldsMatchState]);
    // create a (2 actions), begin and end of the provisioned stop.
    assert_eq!(report.violations[0].counterexample.len(), 4);
    // The explorer finds it too, and so does --symmetry (declared).
    let campaign = Campaign::new(&ProvisionedStopReleases, Device::uniform(2, 3, 1).unwrap())
        .runs(200)
        .seed(1)
        .run();
    assert!(campaign.failing_runs() > 0);
    assert_eq!(
        campaign.counterexamples[0].invariant,
        Invariant::HoldsMatchState
    );
    let sym = Checker::new(&ProvisionedStopReleases, Device::uniform(2, 3, 1).unwrap())
        .symmetry(true)
        .run()
        .unwrap();
    assert!(sym.violated(Invariant::HoldsMatchState).is_some());
}

#[test]
fn an_allocator_with_a_table_of_its_own_is_checked_exactly() {
    let d = Device::uniform(2, 2, 1).unwrap();
    // The careful round robin is correct, and its cursor makes states that
    // fixed does not have: the memo is part of a state's identity.
    let careful = Checker::new(&RoundRobin { careful: true }, d)
        .run()
        .unwrap();
    assert!(careful.violations.is_empty(), "{:?}", careful.violations);
    let fixed = Checker::new(&Builtin::Fixed, d).run().unwrap();
    assert!(careful.unique_states > fixed.unique_states);
    // The same count as a breadth-first search over whole states (memo
    // included) with a hash set.
    assert_eq!(
        careful.unique_states,
        naive_count(&RoundRobin { careful: true }, &d)
    );
    // The careless one takes a GPU that another VM holds: a create after
    // another VM has wrapped the cursor round.
    let careless = Checker::new(&RoundRobin { careful: false }, d)
        .run()
        .unwrap();
    let found: Vec<_> = careless.violations.iter().map(|f| f.invariant).collect();
    assert!(found.contains(&Invariant::NoDoubleClaim), "{found:?}");
    let ce = &careless
        .violated(Invariant::NoDoubleClaim)
        .unwrap()
        .counterexample;
    let run = run_actions(&RoundRobin { careful: false }, &d, &VmNames::letters(2), ce);
    assert!(run.fired.contains(Invariant::NoDoubleClaim));
    assert_eq!(
        careless.unique_states,
        naive_count(&RoundRobin { careful: false }, &d)
    );
}

/// Reachable states by a plain breadth-first search over whole states.
fn naive_count<A: Allocator>(a: &A, d: &Device) -> u64 {
    let mut seen = std::collections::HashSet::new();
    let mut todo = vec![d.initial()];
    seen.insert(d.initial());
    while let Some(s) = todo.pop() {
        for action in gpuclaim::model::enabled(a, d, &s) {
            let next = gpuclaim::model::step(a, d, &s, action).state;
            if seen.insert(next) {
                todo.push(next);
            }
        }
    }
    seen.len() as u64
}
