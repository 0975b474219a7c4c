//! The exhaustive checker: exact state counts (regression guards, and an
//! independent count by a naive search over whole `State` values), the
//! expected verdict of each policy, shortest counterexamples, symmetry
//! reduction and independence from the thread count.

use std::collections::{HashSet, VecDeque};

use gpuclaim::check::{CheckError, CheckReport, Checker, shortest_counterexample};
use gpuclaim::model::{self, Action, Device, Op};
use gpuclaim::pack::Packer;
use gpuclaim::{Allocator, Builtin, Invariant, State};

fn check(policy: Builtin, gpus: u8, vms: usize, symmetry: bool) -> CheckReport {
    let d = Device::uniform(gpus, vms, 1).unwrap();
    Checker::new(&policy, d)
        .threads(2)
        .symmetry(symmetry)
        .run()
        .unwrap()
}

/// Every state reachable from the initial one, by the plainest search
/// there is: whole `State` values in a `HashSet`.
fn naive_reachable<P: Allocator>(policy: &P, device: &Device) -> HashSet<State> {
    let mut seen = HashSet::new();
    let mut queue = VecDeque::new();
    seen.insert(device.initial());
    queue.push_back(device.initial());
    while let Some(s) = queue.pop_front() {
        for a in model::enabled(policy, device, &s) {
            let next = model::step(policy, device, &s, a).state;
            if seen.insert(next) {
                queue.push_back(next);
            }
        }
    }
    seen
}

/// G=1, V=1 (size 1) under `fixed`: 34 states. By hand, writing each as
/// (Kubernetes, where gpu0 is, VM a's state); `snapshot` is always empty
/// under `fixed`.
///
/// Kubernetes unconfigured (10) — it holds nothing, so gpu0 is a's or free.
///  a holds gpu0 (7): creating, running, stopping, stopping(provisioned),
///    stopped-provisioned, starting, removing (a remove begun from running
///    or stopped-provisioned);
///  gpu0 free (3): absent, stopped, removing (begun from stopped).
///  (failed is unreachable: a create fails only when gpu0 is not free,
///  and then a already holds it and is not absent.)
/// Kubernetes configuring (10): the same ten; nothing moves at its begin.
/// Kubernetes configured (14):
///  a holds gpu0 (7): the same seven as above (a took it before the
///    configure ended);
///  gpu0 free (3): absent, stopped, removing — released after the
///    configure ended, which `fixed` never takes;
///  kube holds gpu0 (4): absent (configured first), failed (configured,
///    then create-vm: no-gpu), stopped (a's stop ended before the
///    configure did), removing (begun from failed or stopped).
/// 10 + 10 + 14 = 34.
#[test]
fn g1_v1_fixed_has_34_states_as_enumerated() {
    let r = check(Builtin::Fixed, 1, 1, false);
    assert_eq!(r.unique_states, 34);
    assert_eq!(r.transitions, 67);
    assert_eq!(r.max_depth, 7);
    assert!(r.violations.is_empty());
    let d = Device::uniform(1, 1, 1).unwrap();
    assert_eq!(naive_reachable(&Builtin::Fixed, &d).len(), 34);
}

/// Unique states, transitions and maximum depth for every G <= 2, V <= 4
/// (every slot size 1), under each policy; and the same counts by the
/// naive search for V <= 3.
#[test]
fn exact_counts_for_small_devices() {
    #[rustfmt::skip]
    let table: &[(Builtin, u8, usize, u64, u64, u32, u64)] = &[
        // policy, G, V, states, transitions, max depth, classes (--symmetry)
        (Builtin::Fixed, 1, 0, 3, 2, 2, 3),
        (Builtin::Fixed, 1, 1, 34, 67, 7, 34),
        (Builtin::Fixed, 1, 2, 229, 746, 11, 121),
        (Builtin::Fixed, 1, 3, 1261, 5709, 15, 287),
        (Builtin::Fixed, 1, 4, 6397, 37042, 19, 557),
        (Builtin::Fixed, 2, 1, 34, 67, 7, 34),
        (Builtin::Fixed, 2, 2, 731, 2406, 12, 375),
        (Builtin::Fixed, 2, 3, 6442, 29673, 16, 1212),
        (Builtin::Fixed, 2, 4, 43887, 258558, 20, 2744),
        (Builtin::Legacy, 1, 1, 34, 70, 7, 34),
        (Builtin::Legacy, 1, 2, 229, 761, 11, 121),
        (Builtin::Legacy, 1, 3, 1261, 5772, 15, 287),
        (Builtin::Legacy, 1, 4, 6397, 37297, 19, 557),
        (Builtin::Legacy, 2, 1, 34, 70, 7, 34),
        (Builtin::Legacy, 2, 2, 731, 2529, 12, 375),
        (Builtin::Legacy, 2, 3, 6442, 30483, 16, 1212),
        (Builtin::Legacy, 2, 4, 43887, 262839, 20, 2744),
        (Builtin::Snapshot, 1, 1, 54, 105, 7, 54),
        (Builtin::Snapshot, 1, 2, 371, 1193, 11, 195),
        (Builtin::Snapshot, 1, 3, 2059, 9222, 15, 465),
        (Builtin::Snapshot, 1, 4, 10491, 60201, 19, 905),
        (Builtin::Snapshot, 2, 1, 54, 105, 7, 54),
        (Builtin::Snapshot, 2, 2, 2019, 6571, 16, 1031),
        (Builtin::Snapshot, 2, 3, 18400, 83565, 17, 3418),
        (Builtin::Snapshot, 2, 4, 127055, 738823, 20, 7814),
    ];
    for &(p, g, v, states, transitions, depth, classes) in table {
        let r = check(p, g, v, false);
        let what = format!("{p} G={g} V={v}");
        assert_eq!(r.unique_states, states, "{what}");
        assert_eq!(r.transitions, transitions, "{what}");
        assert_eq!(r.max_depth, depth, "{what}");
        assert_eq!(r.levels.iter().sum::<u64>(), states, "{what}");
        let s = check(p, g, v, true);
        assert_eq!(s.unique_states, classes, "{what} --symmetry");
        assert_eq!(s.max_depth, depth, "{what} --symmetry");
        if v <= 3 {
            let d = Device::uniform(g, v, 1).unwrap();
            let all = naive_reachable(&p, &d);
            assert_eq!(all.len() as u64, states, "{what} naive");
            // The classes are the distinct canonical keys of every state.
            let packer = Packer::new(&d);
            let canon: HashSet<u64> = all.iter().map(|s| packer.pack_canonical(s)).collect();
            assert_eq!(canon.len() as u64, classes, "{what} naive classes");
        }
    }
}

/// `legacy`'s takeover leads only to states `fixed` reaches too (by ending
/// a configure after a stop): the same set of states, more transitions.
#[test]
fn legacy_reaches_exactly_the_states_fixed_reaches() {
    for (g, v) in [(1, 1), (1, 3), (2, 2), (2, 3)] {
        let d = Device::uniform(g, v, 1).unwrap();
        assert_eq!(
            naive_reachable(&Builtin::Legacy, &d),
            naive_reachable(&Builtin::Fixed, &d),
            "G={g} V={v}"
        );
    }
}

/// MODEL.md's expected results, over every G <= 2, V <= 4.
#[test]
fn verdicts_of_each_policy_for_every_small_device() {
    for g in 1..=2 {
        for v in 0..=4 {
            let fixed = check(Builtin::Fixed, g, v, false);
            assert!(fixed.violations.is_empty(), "fixed G={g} V={v}");
            let legacy = check(Builtin::Legacy, g, v, false);
            let snapshot = check(Builtin::Snapshot, g, v, false);
            if v == 0 {
                // No VM: nothing to release or race with.
                assert!(legacy.violations.is_empty());
                assert!(snapshot.violations.is_empty());
                continue;
            }
            let found: Vec<Invariant> = legacy.violations.iter().map(|f| f.invariant).collect();
            assert_eq!(
                found,
                [Invariant::NoStealAfterDealloc],
                "legacy G={g} V={v}"
            );
            let found: Vec<Invariant> = snapshot.violations.iter().map(|f| f.invariant).collect();
            assert_eq!(found, [Invariant::NoDoubleClaim], "snapshot G={g} V={v}");
        }
    }
}

#[test]
fn shortest_counterexamples_are_exact() {
    let legacy = check(Builtin::Legacy, 2, 2, false);
    let f = legacy.violated(Invariant::NoStealAfterDealloc).unwrap();
    assert_eq!(f.transitions, 123);
    assert_eq!(
        f.counterexample,
        vec![
            Action::begin(Op::CreateVm, 0),
            Action::end(Op::CreateVm, 0),
            Action::begin(Op::StopVm, 0),
            Action::begin(Op::ConfigureKube, 0),
            Action::end(Op::ConfigureKube, 0),
            Action::end(Op::StopVm, 0),
            Action::takeover(),
        ]
    );
    let snapshot = check(Builtin::Snapshot, 2, 2, false);
    let f = snapshot.violated(Invariant::NoDoubleClaim).unwrap();
    assert_eq!(f.transitions, 2446);
    assert_eq!(
        f.counterexample,
        vec![
            Action::begin(Op::ConfigureKube, 0),
            Action::begin(Op::CreateVm, 0),
            Action::end(Op::ConfigureKube, 0),
        ]
    );
    // No shorter trace violates them: every trace of one action fewer is
    // clean (checked by enumerating all of them).
    let d = Device::uniform(2, 2, 1).unwrap();
    assert!(!any_trace_violates(
        &Builtin::Legacy,
        &d,
        6,
        Invariant::NoStealAfterDealloc
    ));
    assert!(!any_trace_violates(
        &Builtin::Snapshot,
        &d,
        2,
        Invariant::NoDoubleClaim
    ));
    assert_eq!(
        shortest_counterexample(&Builtin::Fixed, &d, Invariant::NoDoubleClaim),
        None
    );
}

/// Whether any sequence of at most `len` enabled actions violates `inv`.
fn any_trace_violates<P: Allocator>(p: &P, d: &Device, len: usize, inv: Invariant) -> bool {
    fn go<P: Allocator>(p: &P, d: &Device, s: &State, left: usize, inv: Invariant) -> bool {
        left > 0
            && model::enabled(p, d, s).into_iter().any(|a| {
                let t = model::step(p, d, s, a);
                t.violations.contains(inv) || go(p, d, &t.state, left - 1, inv)
            })
    }
    go(p, d, &d.initial(), len, inv)
}

#[test]
fn counts_and_counterexamples_do_not_depend_on_threads() {
    let d = Device::uniform(2, 3, 1).unwrap();
    for p in Builtin::ALL {
        for sym in [false, true] {
            let runs: Vec<CheckReport> = [1, 2, 3]
                .into_iter()
                .map(|t| {
                    let mut r = Checker::new(&p, d).threads(t).symmetry(sym).run().unwrap();
                    // The two figures that may differ (see `CheckReport`).
                    r.seconds = 0.0;
                    r.visited_bytes = 0;
                    r
                })
                .collect();
            assert_eq!(runs[0], runs[1], "{p} sym={sym}");
            assert_eq!(runs[0], runs[2], "{p} sym={sym}");
        }
    }
}

/// The visited set takes at most 16 bytes a state (issue 3), on every
/// device with more than a few thousand states, whatever the thread count.
#[test]
fn visited_set_is_at_most_16_bytes_a_state() {
    for (g, v) in [(2, 4), (2, 5), (1, 5), (1, 6)] {
        let d = Device::uniform(g, v, 1).unwrap();
        for t in [1, 2] {
            let r = Checker::new(&Builtin::Fixed, d).threads(t).run().unwrap();
            assert!(
                r.bytes_per_state() <= 16.0,
                "G={g} V={v}: {}",
                r.bytes_per_state()
            );
        }
    }
}

/// A search whose levels shrink does not grow its table for the few
/// states still to come (`SharedKeySet::reserve_expecting`): G=1 V=6 took
/// 15.6 bytes a state when its table grew at 3/4 full whatever came next.
#[test]
fn a_nearly_done_search_does_not_grow_its_table() {
    let d = Device::uniform(1, 6, 1).unwrap();
    for t in [1, 2] {
        let r = Checker::new(&Builtin::Fixed, d).threads(t).run().unwrap();
        assert_eq!(r.unique_states, 145_405);
        assert!(r.bytes_per_state() < 11.0, "{}", r.bytes_per_state());
    }
}

#[test]
fn mixed_sizes_and_symmetry() {
    // Slots of sizes 1, 2, 1: only a and c are interchangeable.
    let d = Device::new(2, &[1, 2, 1]).unwrap();
    let full = Checker::new(&Builtin::Fixed, d).run().unwrap();
    let sym = Checker::new(&Builtin::Fixed, d)
        .symmetry(true)
        .run()
        .unwrap();
    let all = naive_reachable(&Builtin::Fixed, &d);
    assert_eq!(full.unique_states, all.len() as u64);
    let packer = Packer::new(&d);
    let canon: HashSet<u64> = all.iter().map(|s| packer.pack_canonical(s)).collect();
    assert_eq!(sym.unique_states, canon.len() as u64);
    assert!(sym.unique_states < full.unique_states);
    // Swapping a and c maps a state to one with the same canonical key.
    let mut s = d.initial();
    s = model::step(&Builtin::Fixed, &d, &s, Action::begin(Op::CreateVm, 0)).state;
    let mut t = d.initial();
    t = model::step(&Builtin::Fixed, &d, &t, Action::begin(Op::CreateVm, 2)).state;
    assert_ne!(packer.pack(&s), packer.pack(&t));
    assert_eq!(packer.pack_canonical(&s), packer.pack_canonical(&t));
}

#[test]
fn a_device_too_large_for_64_bit_keys_is_refused() {
    let d = Device::uniform(2, 10, 1).unwrap();
    let err = Checker::new(&Builtin::Fixed, d).run().unwrap_err();
    assert_eq!(
        err,
        CheckError::TooLarge {
            bits: 66,
            gpus: 2,
            most_vms: 9
        }
    );
    assert_eq!(
        err.to_string(),
        "a state of this device needs 66 bits, more than the checker's 64-bit keys; with 2 GPUs it takes at most 9 VM slots"
    );
    let one = Checker::new(&Builtin::Fixed, Device::uniform(1, 13, 1).unwrap())
        .run()
        .unwrap_err();
    assert_eq!(
        one.to_string(),
        "a state of this device needs 69 bits, more than the checker's 64-bit keys; with 1 GPU it takes at most 12 VM slots"
    );
    // The limit is the one for the device's GPUs and the allocator's memo
    // bits (as `check --help` lists): none for fixed, G for snapshot.
    let limits = [
        (
            Builtin::Fixed,
            [(1u8, 12usize), (2, 9), (3, 8), (4, 6), (8, 3)],
        ),
        (
            Builtin::Snapshot,
            [(1u8, 11usize), (2, 9), (3, 7), (4, 6), (8, 3)],
        ),
    ];
    for (policy, limits) in limits {
        for (g, most) in limits {
            let fits = Device::uniform(g, most, 1).unwrap();
            assert!(
                Packer::for_allocator(&fits, &policy).fits_u64(),
                "G={g} V={most}"
            );
            let over = Device::uniform(g, most + 1, 1).unwrap();
            match Checker::new(&policy, over).run().unwrap_err() {
                CheckError::TooLarge { most_vms, .. } => assert_eq!(most_vms as usize, most),
                e => panic!("{e}"),
            }
        }
    }
}
