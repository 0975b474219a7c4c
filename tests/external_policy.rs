//! A policy written outside the crate, against the public API only, runs
//! through the engines like a built-in one, and the invariants catch its
//! faults.

use std::path::Path;
use std::sync::Arc;

use gpuclaim::model::{Action, Device, Op, StepOption};
use gpuclaim::scenario;
use gpuclaim::shrink;
use gpuclaim::{Invariant, Policy, Registry, State, VmNames};

/// Wraps `fixed` but, on release, puts the GPUs back in `free` without
/// taking them out of `held[vm]`: the same GPU is then in two sets.
struct DoubleFree;

impl Policy for DoubleFree {
    fn name(&self) -> &str {
        "double-free"
    }
    fn claim(&self, state: &mut State, vm: usize, size: u8) -> bool {
        state.claim_lowest(vm, size)
    }
    fn release(&self, state: &mut State, vm: usize) {
        state.free |= state.vms[vm].held;
    }
}

/// Loses the GPUs a VM releases: they go nowhere.
struct Leaky;

impl Policy for Leaky {
    fn name(&self) -> &str {
        "leaky"
    }
    fn release(&self, state: &mut State, vm: usize) {
        state.vms[vm].held = 0;
    }
}

#[test]
fn double_free_is_caught_in_a_scenario_file() {
    let mut reg = Registry::builtin();
    reg.register(Arc::new(DoubleFree));
    let text = r#"
name = "a stopped VM's GPU is freed twice"
gpus = 1
policies = ["fixed", "double-free"]
steps = ["create-vm a", "stop-vm a"]
[expect]
gpus = ["free"]
violations = []
[expect.double-free]
gpus = ["a+free"]
violations = ["no-double-claim", "holds-match-state"]
"#;
    let s = scenario::parse(Path::new("ext.toml"), text, &reg).unwrap();
    for p in s.policy_names() {
        let run = s.run(&reg.get(&p).unwrap());
        assert!(run.passed(), "[{p}] {:?}", run.mismatches);
    }
    let run = s.run(&DoubleFree);
    let v = &run.violations[0];
    assert_eq!(v.invariant, Invariant::NoDoubleClaim);
    assert_eq!(v.step_index, 3);
    assert_eq!(v.step, "end stop-vm a");
    assert_eq!(v.before, "gpu0=a | a:stopping | kube:unconfigured");
    assert_eq!(v.after, "gpu0=a+free | a:stopped | kube:unconfigured");
}

#[test]
fn leak_is_caught_by_conservation_and_shrunk() {
    let d = Device::uniform(2, 2, 1).unwrap();
    let noisy = [
        Action::begin(Op::ConfigureKube, 0),
        Action::begin(Op::CreateVm, 1),
        Action::end(Op::CreateVm, 1),
        Action::begin(Op::StopVm, 1).with_option(StepOption::Provisioned),
        Action::end(Op::StopVm, 1),
        Action::begin(Op::StartVm, 1),
        Action::end(Op::StartVm, 1),
        Action::begin(Op::RemoveVm, 1),
        Action::end(Op::RemoveVm, 1),
        Action::end(Op::ConfigureKube, 0),
    ];
    let run = gpuclaim::run_actions(&Leaky, &d, &VmNames::letters(2), &noisy);
    assert!(run.fired.contains(Invariant::Conservation));
    let small = shrink::shrink(&Leaky, &d, &noisy, Invariant::Conservation);
    assert_eq!(
        small,
        vec![
            Action::begin(Op::CreateVm, 0),
            Action::end(Op::CreateVm, 0),
            Action::begin(Op::RemoveVm, 0),
            Action::end(Op::RemoveVm, 0)
        ]
    );
}
