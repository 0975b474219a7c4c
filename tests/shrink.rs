//! The shrinker: keeps the violated invariant, never lengthens, and reaches
//! the shortest known counterexamples for the built-in faulty policies.

use gpuclaim::model::{Action, Device, Op, StepOption};
use gpuclaim::shrink::{first_violation, shrink};
use gpuclaim::{Invariant, Legacy, Snapshot};

fn noisy_legacy() -> Vec<Action> {
    vec![
        Action::begin(Op::CreateVm, 2),
        Action::begin(Op::CreateVm, 3),
        Action::end(Op::CreateVm, 3),
        Action::begin(Op::ConfigureKube, 0),
        Action::end(Op::CreateVm, 2),
        Action::begin(Op::StopVm, 3).with_option(StepOption::Provisioned),
        Action::end(Op::ConfigureKube, 0),
        Action::begin(Op::StartVm, 0),
        Action::end(Op::StopVm, 3),
        Action::begin(Op::StopVm, 2),
        Action::begin(Op::RemoveVm, 3),
        Action::end(Op::StopVm, 2),
        Action::takeover(),
        Action::end(Op::RemoveVm, 3),
        Action::takeover(),
    ]
}

#[test]
fn legacy_steal_shrinks_to_seven_actions() {
    let d = Device::uniform(2, 4, 1).unwrap();
    let input = noisy_legacy();
    assert_eq!(
        first_violation(&Legacy, &d, &input, Invariant::NoStealAfterDealloc),
        Some(12)
    );
    let out = shrink(&Legacy, &d, &input, Invariant::NoStealAfterDealloc);
    assert_eq!(
        out,
        vec![
            Action::begin(Op::CreateVm, 0),
            Action::begin(Op::ConfigureKube, 0),
            Action::end(Op::CreateVm, 0),
            Action::end(Op::ConfigureKube, 0),
            Action::begin(Op::StopVm, 0),
            Action::end(Op::StopVm, 0),
            Action::takeover(),
        ]
    );
    assert_eq!(
        first_violation(&Legacy, &d, &out, Invariant::NoStealAfterDealloc),
        Some(6)
    );
}

#[test]
fn snapshot_double_claim_shrinks_to_three_actions() {
    let d = Device::uniform(2, 4, 1).unwrap();
    let input = vec![
        Action::begin(Op::CreateVm, 1),
        Action::end(Op::CreateVm, 1),
        Action::begin(Op::ConfigureKube, 0),
        Action::begin(Op::StopVm, 1),
        Action::begin(Op::CreateVm, 3),
        Action::end(Op::StopVm, 1),
        Action::end(Op::CreateVm, 3),
        Action::end(Op::ConfigureKube, 0),
    ];
    let out = shrink(&Snapshot, &d, &input, Invariant::NoDoubleClaim);
    assert_eq!(
        out,
        vec![
            Action::begin(Op::ConfigureKube, 0),
            Action::begin(Op::CreateVm, 0),
            Action::end(Op::ConfigureKube, 0)
        ]
    );
}

#[test]
fn a_trace_without_the_violation_is_returned_unchanged() {
    let d = Device::uniform(1, 1, 1).unwrap();
    let input = vec![Action::begin(Op::CreateVm, 0)];
    assert_eq!(
        shrink(&Legacy, &d, &input, Invariant::NoStealAfterDealloc),
        input
    );
}

#[test]
fn a_shrunk_trace_becomes_a_scenario_that_passes_and_expects_the_violation() {
    use gpuclaim::Registry;
    use gpuclaim::counterexample::{file_name, scenario_from_actions};
    let d = Device::uniform(2, 4, 1).unwrap();
    let out = shrink(&Legacy, &d, &noisy_legacy(), Invariant::NoStealAfterDealloc);
    let s = scenario_from_actions(&Legacy, &d, &out, "legacy steals", "test");
    let steps: Vec<String> = s.steps.iter().map(|s| s.to_string()).collect();
    assert_eq!(
        steps,
        [
            "begin create-vm a",
            "begin configure-kube",
            "end create-vm a",
            "end configure-kube",
            "stop-vm a",
            "kube-takeover"
        ]
    );
    let text = s.to_toml();
    let reg = Registry::builtin();
    let again = gpuclaim::scenario::parse(std::path::Path::new("ce.toml"), &text, &reg).unwrap();
    assert_eq!(again, s);
    let run = again.run(&Legacy);
    assert!(run.passed(), "{:?}", run.mismatches);
    assert_eq!(
        again.expect.as_ref().unwrap().violations,
        Some(vec![Invariant::NoStealAfterDealloc])
    );
    assert_eq!(
        again.expect.as_ref().unwrap().gpus,
        Some(vec!["kube".to_string(), "kube".to_string()])
    );
    assert_eq!(
        file_name("legacy", Invariant::NoStealAfterDealloc, &s),
        file_name("legacy", Invariant::NoStealAfterDealloc, &again)
    );
    assert!(
        file_name("legacy", Invariant::NoStealAfterDealloc, &s)
            .starts_with("legacy-no-steal-after-dealloc-")
    );
}

/// Removal alone stops here: no single action can go and the trace still
/// fail. The final search finds the three-action trace over the same slot.
#[test]
fn a_local_minimum_of_removal_is_left_by_the_search() {
    let d = Device::uniform(2, 4, 1).unwrap();
    let input = vec![
        Action::begin(Op::CreateVm, 0),
        Action::end(Op::CreateVm, 0),
        Action::begin(Op::StopVm, 0),
        Action::end(Op::StopVm, 0),
        Action::begin(Op::ConfigureKube, 0),
        Action::begin(Op::StartVm, 0),
        Action::end(Op::ConfigureKube, 0),
    ];
    assert_eq!(
        first_violation(&Snapshot, &d, &input, Invariant::NoDoubleClaim),
        Some(6)
    );
    let out = shrink(&Snapshot, &d, &input, Invariant::NoDoubleClaim);
    assert_eq!(
        out,
        vec![
            Action::begin(Op::ConfigureKube, 0),
            Action::begin(Op::CreateVm, 0),
            Action::end(Op::ConfigureKube, 0)
        ]
    );
    // With no budget the search gives up and removal's result stands.
    assert_eq!(
        gpuclaim::shrink::shortest_over_used_slots(
            &Snapshot,
            &d,
            &input,
            Invariant::NoDoubleClaim,
            0
        ),
        None
    );
}

/// The same trace on devices of 1 and 2 GPUs is two counterexamples (the
/// expected owners differ), so it gets two file names; the same scenario
/// always gets the same name.
#[test]
fn counterexample_file_names_tell_devices_apart() {
    use gpuclaim::check::shortest_counterexample;
    use gpuclaim::counterexample::{file_name, scenario_from_actions};
    let one = Device::uniform(1, 1, 1).unwrap();
    let two = Device::uniform(2, 1, 1).unwrap();
    let inv = Invariant::NoStealAfterDealloc;
    let trace = shortest_counterexample(&Legacy, &one, inv).unwrap();
    assert_eq!(shortest_counterexample(&Legacy, &two, inv).unwrap(), trace);
    let a = scenario_from_actions(&Legacy, &one, &trace, "n", "s");
    let b = scenario_from_actions(&Legacy, &two, &trace, "n", "s");
    assert_eq!(a.steps, b.steps);
    assert_ne!(a.expect, b.expect);
    assert_ne!(file_name("legacy", inv, &a), file_name("legacy", inv, &b));
    let again = scenario_from_actions(&Legacy, &one, &trace, "other name", "other source");
    assert_eq!(
        file_name("legacy", inv, &a),
        file_name("legacy", inv, &again)
    );
}
