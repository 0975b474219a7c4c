//! MODEL.md version 2, device update: the rules, the built-ins' verdicts
//! with updates on, and version 1's counts with them off.

use gpuclaim::check::Checker;
use gpuclaim::explore::Campaign;
use gpuclaim::model::{self, Action, Device, KubeState, Op, Outcome, VmState};
use gpuclaim::{Builtin, Invariant, InvariantSet, counterexample, invariant};

fn check(policy: Builtin, device: Device) -> gpuclaim::check::CheckReport {
    Checker::new(&policy, device).run().unwrap()
}

/// (invariant, transitions, shortest counterexample's length) per finding.
fn findings(r: &gpuclaim::check::CheckReport) -> Vec<(Invariant, u64, usize)> {
    r.violations
        .iter()
        .map(|f| (f.invariant, f.transitions, f.counterexample.len()))
        .collect()
}

#[test]
fn with_updates_each_builtin_violates_what_model_md_expects() {
    let d = Device::uniform(2, 3, 1).unwrap().with_updates(true);
    let fixed = check(Builtin::Fixed, d);
    assert_eq!((fixed.unique_states, fixed.violations.len()), (6_747, 0));
    let legacy = check(Builtin::Legacy, d);
    assert_eq!(legacy.unique_states, 6_747);
    assert_eq!(
        findings(&legacy),
        [(Invariant::NoStealAfterDealloc, 810, 7)]
    );
    let snapshot = check(Builtin::Snapshot, d);
    assert_eq!(snapshot.unique_states, 19_069);
    assert_eq!(findings(&snapshot), [(Invariant::NoDoubleClaim, 31_589, 3)]);
    let unmanaged = check(Builtin::UnmanagedUpdate, d);
    assert_eq!(unmanaged.unique_states, 6_681);
    assert_eq!(
        findings(&unmanaged),
        [
            (Invariant::HoldsMatchState, 444, 3),
            (Invariant::NoStealAfterDealloc, 159, 6),
            (Invariant::UpdateRestartsVms, 87, 6),
        ]
    );
    // Every shortest counterexample, written as a scenario file, passes
    // `gpuclaim run` (it expects exactly what it shows).
    for (policy, report) in [
        (Builtin::Legacy, &legacy),
        (Builtin::Snapshot, &snapshot),
        (Builtin::UnmanagedUpdate, &unmanaged),
    ] {
        for f in &report.violations {
            let s =
                counterexample::scenario_from_actions(&policy, &d, &f.counterexample, "ce", "test");
            let run = s.run(&policy);
            assert!(
                run.passed(),
                "{policy} {}: {:?}",
                f.invariant,
                run.mismatches
            );
            assert!(run.fired.contains(f.invariant));
        }
    }
    // With symmetry too (every built-in declares its slots interchangeable).
    let sym = Checker::new(&Builtin::UnmanagedUpdate, d)
        .symmetry(true)
        .run()
        .unwrap();
    let found: Vec<_> = sym.violations.iter().map(|f| f.invariant).collect();
    assert_eq!(
        found,
        [
            Invariant::HoldsMatchState,
            Invariant::NoStealAfterDealloc,
            Invariant::UpdateRestartsVms
        ]
    );
    assert!(sym.unique_states < unmanaged.unique_states);
}

#[test]
fn without_updates_every_count_is_version_1s() {
    let d = Device::uniform(2, 3, 1).unwrap();
    for policy in [Builtin::Fixed, Builtin::UnmanagedUpdate] {
        let r = check(policy, d);
        assert_eq!(
            (r.unique_states, r.transitions),
            (6_442, 29_673),
            "{policy}"
        );
        assert!(r.violations.is_empty(), "{policy}");
    }
    // The walks draw exactly what they drew before updates existed.
    let a = Campaign::new(&Builtin::Fixed, d)
        .runs(50)
        .seed(3)
        .swarm(true)
        .run();
    let b = Campaign::new(&Builtin::UnmanagedUpdate, d)
        .runs(50)
        .seed(3)
        .swarm(true)
        .run();
    assert_eq!(
        a.runs.iter().map(|r| r.summary).collect::<Vec<_>>(),
        b.runs.iter().map(|r| r.summary).collect::<Vec<_>>()
    );
}

#[test]
fn explore_with_updates_catches_the_unmanaged_update_flow() {
    let d = Device::uniform(2, 3, 1).unwrap().with_updates(true);
    let report = Campaign::new(&Builtin::UnmanagedUpdate, d)
        .runs(300)
        .seed(1)
        .run();
    let fired = report
        .runs
        .iter()
        .fold(InvariantSet::EMPTY, |acc, r| acc.union(r.summary.fired));
    assert_eq!(
        fired.iter().collect::<Vec<_>>(),
        [
            Invariant::HoldsMatchState,
            Invariant::NoStealAfterDealloc,
            Invariant::UpdateRestartsVms
        ]
    );
    // Each failing run is shrunk against its first violation.
    assert!(!report.counterexamples.is_empty());
    let fixed = Campaign::new(&Builtin::Fixed, d).runs(300).seed(1).run();
    assert_eq!(fixed.failing_runs(), 0);
    assert!(
        fixed.runs.iter().any(|r| r.summary.outcomes[0] > 0),
        "the walks take steps"
    );
}

#[test]
fn the_update_flow_step_by_step() {
    use Op::*;
    let d = Device::new(2, &[1, 1, 1, 1]).unwrap();
    let mut s = d.initial();
    let go = |s: &mut model::State, a: Action| {
        let t = model::step(&Builtin::Fixed, &d, s, a);
        *s = t.state;
        (t.outcome, t.violations)
    };
    // a running, b stopped provisioned, c deallocated, d failed; Kubernetes
    // configured with nothing free.
    for a in [
        Action::begin(CreateVm, 0),
        Action::end(CreateVm, 0),
        Action::begin(CreateVm, 1),
        Action::end(CreateVm, 1),
        Action::begin(StopVm, 1).with_option(gpuclaim::StepOption::Provisioned),
        Action::end(StopVm, 1),
        Action::begin(CreateVm, 3), // no GPU: failed
        Action::begin(ConfigureKube, 0),
        Action::end(ConfigureKube, 0),
    ] {
        go(&mut s, a);
    }
    assert_eq!(s.vms[3].life, VmState::Failed);
    let before = s;
    assert_eq!(
        go(&mut s, Action::begin(UpdateDevice, 0)),
        (Outcome::Ok, InvariantSet::EMPTY)
    );
    assert!(s.updating);
    assert_eq!(s.kube, KubeState::Rebooting);
    let lives: Vec<VmState> = s.vms[..4].iter().map(|v| v.life).collect();
    assert_eq!(
        lives,
        [
            VmState::Rebooting,
            VmState::Rebooting,
            VmState::Absent,
            VmState::Failed
        ]
    );
    assert_eq!(
        (s.free, s.kube_held, s.vms[0].held, s.vms[1].held),
        (before.free, before.kube_held, 1, 2)
    );
    // Nothing else is allowed, not even the event or a second update.
    for a in [
        Action::begin(CreateVm, 2),
        Action::begin(RemoveVm, 3),
        Action::begin(StopVm, 0),
        Action::takeover(),
        Action::begin(UpdateDevice, 0),
    ] {
        let t = model::step(&Builtin::Legacy, &d, &s, a);
        assert_eq!(t.outcome, Outcome::Rejected, "{a:?}");
        assert_eq!(t.state, s);
    }
    assert_eq!(
        model::enabled(&Builtin::Legacy, &d.with_updates(true), &s),
        [Action::end(UpdateDevice, 0)]
    );
    assert_eq!(
        go(&mut s, Action::end(UpdateDevice, 0)),
        (Outcome::Ok, InvariantSet::EMPTY)
    );
    let lives: Vec<VmState> = s.vms[..4].iter().map(|v| v.life).collect();
    assert_eq!(
        lives,
        [
            VmState::Running,
            VmState::Running,
            VmState::Absent,
            VmState::Failed
        ]
    );
    assert_eq!((s.kube, s.updating), (KubeState::Configured, false));
    assert_eq!((s.vms[0].held, s.vms[1].held, s.kube_held), (1, 2, 0));
    // An update waits for operations in flight, and a configure.
    let mut t = s;
    go(&mut t, Action::begin(StopVm, 0));
    assert_eq!(
        go(&mut t, Action::begin(UpdateDevice, 0)).0,
        Outcome::Rejected
    );
    let mut u = d.initial();
    go(&mut u, Action::begin(ConfigureKube, 0));
    assert_eq!(
        go(&mut u, Action::begin(UpdateDevice, 0)).0,
        Outcome::Rejected
    );
    // A device with nothing to reboot still has both steps.
    let mut e = Device::new(1, &[]).unwrap().initial();
    let empty = Device::new(1, &[]).unwrap();
    for a in [Action::begin(UpdateDevice, 0), Action::end(UpdateDevice, 0)] {
        let t = model::step(&Builtin::Fixed, &empty, &e, a);
        assert_eq!(t.outcome, Outcome::Ok);
        e = t.state;
    }
    assert!(!e.updating);
}

#[test]
fn update_restarts_vms_judges_the_end_step_only() {
    let d = Device::new(2, &[1, 2]).unwrap();
    let mut before = d.initial();
    before.updating = true;
    before.vms[0].life = VmState::Rebooting;
    before.vms[0].held = 0b01;
    before.vms[1].size = 2;
    before.free = 0b10;
    let mut after = before;
    after.updating = false;
    after.vms[0].life = VmState::Running;
    assert!(!invariant::check_step(&before, &after).contains(Invariant::UpdateRestartsVms));
    // Back but stopped, or running without its GPUs: fired.
    let mut stopped = after;
    stopped.vms[0].life = VmState::Stopped;
    assert!(invariant::check_step(&before, &stopped).contains(Invariant::UpdateRestartsVms));
    let mut bare = after;
    bare.vms[0].held = 0;
    assert!(invariant::check_step(&before, &bare).contains(Invariant::UpdateRestartsVms));
    // A VM that was not rebooting is not judged; nor is any other step.
    let mut other = after;
    other.vms[1].life = VmState::Stopped;
    assert!(!invariant::check_step(&before, &other).contains(Invariant::UpdateRestartsVms));
    let mut still = stopped;
    still.updating = true;
    assert!(!invariant::check_step(&before, &still).contains(Invariant::UpdateRestartsVms));
    // A rebooting Kubernetes that takes a GPU steals.
    let mut k = before;
    k.kube = KubeState::Rebooting;
    let mut took = k;
    took.kube_held = 0b10;
    took.free = 0;
    assert!(invariant::check_step(&k, &took).contains(Invariant::NoStealAfterDealloc));
    // A rebooting Kubernetes may hold GPUs.
    assert!(!invariant::check_state(&d, &took).contains(Invariant::HoldsMatchState));
}
