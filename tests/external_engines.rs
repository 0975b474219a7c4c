//! The exploration engines (walks, campaigns, the checker, replay) take a
//! policy written outside the crate, through the public API only, exactly
//! like a built-in one.

use gpuclaim::check::{CheckError, Checker, shortest_counterexample};
use gpuclaim::explore::{self, Campaign, WalkConfig};
use gpuclaim::model::{Action, Device, Op};
use gpuclaim::{Fixed, Invariant, Policy, State};

/// On release, puts the GPUs back in `free` but leaves them in `held[vm]`.
struct DoubleFree;

impl Policy for DoubleFree {
    fn name(&self) -> &str {
        "double-free"
    }
    fn release(&self, state: &mut State, vm: usize) {
        state.free |= state.vms[vm].held;
    }
}

/// Behaves like `fixed` through a trait object.
fn as_dyn() -> Box<dyn gpuclaim::Allocator> {
    Box::new(Fixed)
}

#[test]
fn checker_runs_an_external_policy() {
    let d = Device::uniform(1, 1, 1).unwrap();
    let r = Checker::new(&DoubleFree, d).threads(2).run().unwrap();
    assert_eq!(r.policy, "double-free");
    let found: Vec<Invariant> = r.violations.iter().map(|f| f.invariant).collect();
    assert!(found.contains(&Invariant::NoDoubleClaim), "{found:?}");
    let f = r.violated(Invariant::NoDoubleClaim).unwrap();
    // Create, stop: the end of the stop frees gpu0 and a still holds it.
    assert_eq!(
        f.counterexample,
        vec![
            Action::begin(Op::CreateVm, 0),
            Action::end(Op::CreateVm, 0),
            Action::begin(Op::StopVm, 0),
            Action::end(Op::StopVm, 0),
        ]
    );
    assert_eq!(
        shortest_counterexample(&DoubleFree, &d, Invariant::NoDoubleClaim),
        Some(f.counterexample.clone())
    );
    // Through `dyn Policy` (the `?Sized` bound), a clean policy stays clean.
    let policy = as_dyn();
    let clean = Checker::new(policy.as_ref(), d).run().unwrap();
    assert_eq!(clean.unique_states, 34);
    assert!(clean.violations.is_empty());
}

#[test]
fn explorer_runs_an_external_policy() {
    let d = Device::uniform(1, 1, 1).unwrap();
    let r = Campaign::new(&DoubleFree, d)
        .runs(500)
        .steps(30)
        .seed(9)
        .threads(2)
        .run();
    assert_eq!(r.policy, "double-free");
    assert!(r.failing_runs() > 0);
    let cx = r
        .counterexamples
        .iter()
        .find(|c| c.invariant == Invariant::NoDoubleClaim)
        .expect("a double claim is found");
    // Shrunk to the checker's shortest.
    assert_eq!(cx.actions.len(), 4);
    let csv = String::from_utf8(r.csv().into_bytes()).unwrap();
    assert!(csv.lines().nth(1).unwrap().contains(",double-free,"));

    let cfg = WalkConfig {
        device: d,
        steps: 30,
        swarm: false,
    };
    let (summary, run) = explore::replay_run(&DoubleFree, cfg, 9, cx.first_run);
    assert_eq!(summary, r.runs[cx.first_run as usize].summary);
    assert!(run.fired.contains(cx.invariant));
}

/// Never gives slot 1 a GPU, and loses whatever slot 1 releases. Slots are
/// not alike; the loss can never happen, since slot 1 never holds a GPU.
struct SlotOneOdd;

impl Policy for SlotOneOdd {
    fn name(&self) -> &str {
        "slot-one-odd"
    }
    fn claim(&self, state: &mut State, vm: usize, size: u8) -> bool {
        vm != 1 && state.claim_lowest(vm, size)
    }
    fn release(&self, state: &mut State, vm: usize) {
        if vm == 1 {
            state.vms[vm].held = 0;
        } else {
            state.release_to_free(vm);
        }
    }
}

#[test]
fn symmetry_on_a_policy_that_tells_slots_apart_is_refused_not_wrong() {
    let d = Device::uniform(1, 2, 1).unwrap();
    let full = Checker::new(&SlotOneOdd, d).run().unwrap();
    assert!(full.violations.is_empty());
    // Sorting slots puts a GPU in slot 1, which then loses it: a violation
    // no real trace has. The checker says so instead of reporting it.
    let err = Checker::new(&SlotOneOdd, d)
        .symmetry(true)
        .run()
        .unwrap_err();
    assert_eq!(
        err,
        CheckError::NotSymmetric {
            policy: "slot-one-odd".into(),
            invariant: Invariant::Conservation
        }
    );
}

/// `legacy` written outside the crate, once saying it is slot-local and
/// once not (the default).
struct OutsideLegacy {
    slot_local: bool,
}

impl Policy for OutsideLegacy {
    fn name(&self) -> &str {
        "legacy"
    }
    fn takeover_enabled(&self, state: &State) -> bool {
        state.kube == gpuclaim::model::KubeState::Configured && state.free != 0
    }
    fn takeover(&self, state: &mut State) {
        state.kube_takes_free();
    }
    fn slot_local(&self) -> bool {
        self.slot_local
    }
}

/// An external policy that says it is slot-local has its successors looked
/// up in a table, like the built-in ones; one that does not is stepped.
/// Both report exactly what the built-in `legacy` reports.
#[test]
fn a_slot_local_external_policy_checks_like_the_built_in() {
    let d = Device::new(2, &[1, 1, 2]).unwrap();
    let builtin = Checker::new(&gpuclaim::Legacy, d).threads(1).run().unwrap();
    assert!(builtin.violated(Invariant::NoStealAfterDealloc).is_some());
    for slot_local in [true, false] {
        for threads in [1, 2] {
            let r = Checker::new(&OutsideLegacy { slot_local }, d)
                .threads(threads)
                .run()
                .unwrap();
            assert_eq!(
                (r.unique_states, r.transitions, &r.levels, &r.violations),
                (
                    builtin.unique_states,
                    builtin.transitions,
                    &builtin.levels,
                    &builtin.violations
                ),
                "slot_local={slot_local} threads={threads}"
            );
        }
    }
}
