//! One test per row of MODEL.md's operations table, per policy and per
//! invariant: each asserts exact sets and states, so a rule implemented
//! differently fails here.

use gpuclaim::invariant::{self, Invariant, InvariantSet};
use gpuclaim::model::{self, Action, Device, KubeState, Op, Outcome, State, StepOption, VmState};
use gpuclaim::{Builtin, Fixed, Legacy, Snapshot};

fn dev(gpus: u8, sizes: &[u8]) -> Device {
    Device::new(gpus, sizes).unwrap()
}

/// Applies actions under `fixed`, asserting each outcome.
fn run(device: &Device, steps: &[(Action, Outcome)]) -> State {
    run_with(&Fixed, device, steps)
}

fn run_with<P: gpuclaim::Allocator>(p: &P, device: &Device, steps: &[(Action, Outcome)]) -> State {
    let mut s = device.initial();
    for (i, (a, want)) in steps.iter().enumerate() {
        let t = model::step(p, device, &s, *a);
        assert_eq!(t.outcome, *want, "step {i} {a:?}");
        if t.outcome == Outcome::Rejected {
            assert_eq!(t.state, s, "a rejected step changes nothing");
        }
        s = t.state;
    }
    s
}

use Outcome::{NoGpu, Ok as Okay, Rejected};
const fn b(op: Op, vm: u8) -> Action {
    Action::begin(op, vm)
}
const fn e(op: Op, vm: u8) -> Action {
    Action::end(op, vm)
}

#[test]
fn initial_state_every_gpu_free() {
    let d = dev(2, &[1, 1]);
    let s = d.initial();
    assert_eq!(s.free, 0b11);
    assert_eq!(s.kube, KubeState::Unconfigured);
    assert!(
        s.vms[..2]
            .iter()
            .all(|v| v.life == VmState::Absent && v.held == 0)
    );
}

#[test]
fn create_claims_lowest_free_at_begin_then_runs() {
    let d = dev(4, &[2, 1]);
    let s = run(&d, &[(b(Op::CreateVm, 1), Okay)]);
    assert_eq!(s.vms[1].held, 0b0001);
    assert_eq!(s.vms[1].life, VmState::Creating);
    let s = model::step(&Fixed, &d, &s, b(Op::CreateVm, 0)).state;
    assert_eq!(s.vms[0].held, 0b0110, "the two lowest-numbered free GPUs");
    assert_eq!(s.free, 0b1000);
    let s = model::step(&Fixed, &d, &s, e(Op::CreateVm, 0)).state;
    assert_eq!(s.vms[0].life, VmState::Running);
    assert_eq!(s.vms[0].held, 0b0110, "the end step moves nothing");
}

#[test]
fn create_without_enough_free_fails_with_no_end_step() {
    let d = dev(2, &[2, 1]);
    let s = run(
        &d,
        &[
            (b(Op::CreateVm, 1), Okay),
            (b(Op::CreateVm, 0), NoGpu),
            (e(Op::CreateVm, 0), Rejected),
        ],
    );
    assert_eq!(s.vms[0].life, VmState::Failed);
    assert_eq!(s.vms[0].held, 0);
    assert_eq!(s.free, 0b10, "a failed create takes nothing");
}

#[test]
fn create_only_from_absent() {
    let d = dev(2, &[1]);
    run(
        &d,
        &[
            (b(Op::CreateVm, 0), Okay),
            (b(Op::CreateVm, 0), Rejected),
            (e(Op::CreateVm, 0), Okay),
            (b(Op::CreateVm, 0), Rejected),
        ],
    );
}

#[test]
fn create_gpus_option_overrides_size() {
    let d = dev(2, &[1]);
    let s = model::step(
        &Fixed,
        &d,
        &d.initial(),
        b(Op::CreateVm, 0).with_option(StepOption::Gpus(2)),
    )
    .state;
    assert_eq!(s.vms[0].held, 0b11);
    assert_eq!(s.vms[0].size, 2);
    assert!(invariant::check(&d, &d.initial(), &s).is_empty());
}

#[test]
fn start_from_stopped_claims_or_no_gpu_and_stays_stopped() {
    let d = dev(1, &[1, 1]);
    let s = run(
        &d,
        &[
            (b(Op::CreateVm, 0), Okay),
            (e(Op::CreateVm, 0), Okay),
            (b(Op::StopVm, 0), Okay),
            (e(Op::StopVm, 0), Okay),
            (b(Op::CreateVm, 1), Okay),
            (b(Op::StartVm, 0), NoGpu),
        ],
    );
    assert_eq!(s.vms[0].life, VmState::Stopped);
    assert_eq!(s.vms[0].held, 0);
    assert_eq!(s.vms[1].held, 1);
    let s = run(
        &d,
        &[
            (b(Op::CreateVm, 0), Okay),
            (e(Op::CreateVm, 0), Okay),
            (b(Op::StopVm, 0), Okay),
            (e(Op::StopVm, 0), Okay),
            (b(Op::StartVm, 0), Okay),
        ],
    );
    assert_eq!(s.vms[0].life, VmState::Starting);
    assert_eq!(s.vms[0].held, 1, "start claims at its begin step");
    let s = model::step(&Fixed, &d, &s, e(Op::StartVm, 0)).state;
    assert_eq!(s.vms[0].life, VmState::Running);
}

#[test]
fn start_from_stopped_provisioned_keeps_its_gpus() {
    let d = dev(2, &[1]);
    let stop_prov = b(Op::StopVm, 0).with_option(StepOption::Provisioned);
    let s = run(
        &d,
        &[
            (b(Op::CreateVm, 0), Okay),
            (e(Op::CreateVm, 0), Okay),
            (stop_prov, Okay),
            (e(Op::StopVm, 0), Okay),
        ],
    );
    assert_eq!(s.vms[0].life, VmState::StoppedProvisioned);
    assert_eq!(s.vms[0].held, 0b01);
    assert_eq!(s.free, 0b10);
    let s2 = model::step(&Fixed, &d, &s, b(Op::StartVm, 0)).state;
    assert_eq!(s2.vms[0].life, VmState::Starting);
    assert_eq!(s2.vms[0].held, 0b01);
    assert_eq!(s2.free, 0b10, "no second claim");
}

#[test]
fn start_only_from_stopped_states() {
    let d = dev(1, &[1]);
    run(
        &d,
        &[
            (b(Op::StartVm, 0), Rejected),
            (b(Op::CreateVm, 0), Okay),
            (b(Op::StartVm, 0), Rejected),
            (e(Op::CreateVm, 0), Okay),
            (b(Op::StartVm, 0), Rejected),
        ],
    );
}

#[test]
fn stop_deallocates_at_its_end_step() {
    let d = dev(1, &[1]);
    let s = run(
        &d,
        &[
            (b(Op::CreateVm, 0), Okay),
            (e(Op::CreateVm, 0), Okay),
            (b(Op::StopVm, 0), Okay),
        ],
    );
    assert_eq!(s.vms[0].life, VmState::Stopping { provisioned: false });
    assert_eq!(s.vms[0].held, 1, "still held while stopping");
    let s = model::step(&Fixed, &d, &s, e(Op::StopVm, 0)).state;
    assert_eq!(s.vms[0].life, VmState::Stopped);
    assert_eq!((s.vms[0].held, s.free), (0, 1));
}

#[test]
fn stop_only_from_running() {
    let d = dev(1, &[1]);
    run(
        &d,
        &[
            (b(Op::StopVm, 0), Rejected),
            (b(Op::CreateVm, 0), Okay),
            (b(Op::StopVm, 0), Rejected),
            (e(Op::StopVm, 0), Rejected),
        ],
    );
}

#[test]
fn remove_from_each_allowed_state_frees_and_makes_absent() {
    let d = dev(1, &[1, 1]);
    let running = [(b(Op::CreateVm, 0), Okay), (e(Op::CreateVm, 0), Okay)];
    let stopped = [
        (b(Op::CreateVm, 0), Okay),
        (e(Op::CreateVm, 0), Okay),
        (b(Op::StopVm, 0), Okay),
        (e(Op::StopVm, 0), Okay),
    ];
    let prov = [
        (b(Op::CreateVm, 0), Okay),
        (e(Op::CreateVm, 0), Okay),
        (b(Op::StopVm, 0).with_option(StepOption::Provisioned), Okay),
        (e(Op::StopVm, 0), Okay),
    ];
    let failed = [(b(Op::CreateVm, 1), Okay), (b(Op::CreateVm, 0), NoGpu)];
    for prefix in [&running[..], &stopped[..], &prov[..], &failed[..]] {
        let s = run(&d, prefix);
        let held = s.vms[0].held;
        let s = model::step(&Fixed, &d, &s, b(Op::RemoveVm, 0)).state;
        assert_eq!(s.vms[0].life, VmState::Removing);
        assert_eq!(s.vms[0].held, held, "nothing moves at the begin step");
        let s2 = model::step(&Fixed, &d, &s, e(Op::RemoveVm, 0)).state;
        assert_eq!(s2.vms[0].life, VmState::Absent);
        assert_eq!(s2.vms[0].held, 0);
        assert_eq!(s2.free, s.free | held);
    }
    run(
        &d,
        &[
            (b(Op::RemoveVm, 0), Rejected),
            (b(Op::CreateVm, 0), Okay),
            (b(Op::RemoveVm, 0), Rejected),
        ],
    );
}

#[test]
fn configure_takes_every_free_gpu_at_its_end_step() {
    let d = dev(3, &[1]);
    let s = run(&d, &[(b(Op::ConfigureKube, 0), Okay)]);
    assert_eq!(s.kube, KubeState::Configuring);
    assert_eq!(s.kube_held, 0, "nothing at the begin step");
    let s = run(
        &d,
        &[
            (b(Op::ConfigureKube, 0), Okay),
            (b(Op::CreateVm, 0), Okay),
            (e(Op::ConfigureKube, 0), Okay),
        ],
    );
    assert_eq!(s.kube, KubeState::Configured);
    assert_eq!(s.kube_held, 0b110, "free as it is at the end step");
    assert_eq!(s.free, 0);
    run(
        &d,
        &[
            (e(Op::ConfigureKube, 0), Rejected),
            (b(Op::ConfigureKube, 0), Okay),
            (b(Op::ConfigureKube, 0), Rejected),
            (e(Op::ConfigureKube, 0), Okay),
            (b(Op::ConfigureKube, 0), Rejected),
        ],
    );
}

#[test]
fn one_operation_in_flight_per_vm() {
    let d = dev(2, &[1]);
    run(
        &d,
        &[
            (b(Op::CreateVm, 0), Okay),
            (b(Op::StopVm, 0), Rejected),
            (b(Op::RemoveVm, 0), Rejected),
            (b(Op::StartVm, 0), Rejected),
            (e(Op::StopVm, 0), Rejected),
            (e(Op::CreateVm, 0), Okay),
        ],
    );
}

#[test]
fn takeover_only_under_legacy_when_configured_and_free() {
    let d = dev(2, &[1]);
    let tk = Action::takeover();
    // fixed and snapshot have no such event.
    for p in [Builtin::Fixed, Builtin::Snapshot] {
        let s = run_with(
            &p,
            &d,
            &[
                (b(Op::ConfigureKube, 0), Okay),
                (e(Op::ConfigureKube, 0), Okay),
            ],
        );
        let mut s2 = s;
        s2.free = 0b01;
        s2.kube_held = 0b10;
        assert_eq!(model::step(&p, &d, &s2, tk).outcome, Rejected);
    }
    // legacy: not before configured, not with free empty.
    run_with(
        &Legacy,
        &d,
        &[
            (tk, Rejected),
            (b(Op::CreateVm, 0), Okay),
            (b(Op::ConfigureKube, 0), Okay),
            (tk, Rejected),
            (e(Op::ConfigureKube, 0), Okay),
            (tk, Rejected),
        ],
    );
    let s = run_with(
        &Legacy,
        &d,
        &[
            (b(Op::CreateVm, 0), Okay),
            (e(Op::CreateVm, 0), Okay),
            (b(Op::ConfigureKube, 0), Okay),
            (e(Op::ConfigureKube, 0), Okay),
            (b(Op::StopVm, 0), Okay),
            (e(Op::StopVm, 0), Okay),
        ],
    );
    let t = model::step(&Legacy, &d, &s, tk);
    assert_eq!(t.outcome, Okay);
    assert_eq!((t.state.kube_held, t.state.free), (0b11, 0));
    assert_eq!(
        t.violations,
        [Invariant::NoStealAfterDealloc].into_iter().collect()
    );
}

#[test]
fn snapshot_uses_the_copy_taken_at_begin() {
    let d = dev(2, &[1]);
    let s = run_with(&Snapshot, &d, &[(b(Op::ConfigureKube, 0), Okay)]);
    assert_eq!(s.memo, 0b11);
    let s = model::step(&Snapshot, &d, &s, b(Op::CreateVm, 0)).state;
    let t = model::step(&Snapshot, &d, &s, e(Op::ConfigureKube, 0));
    assert_eq!(t.state.kube_held, 0b11);
    assert_eq!(t.state.vms[0].held, 0b01);
    assert_eq!(t.state.free, 0);
    assert_eq!(t.state.memo, 0, "dropped at the end step");
    assert_eq!(
        t.violations,
        [Invariant::NoDoubleClaim].into_iter().collect()
    );
    // Under fixed the same interleaving is clean.
    let s = run(
        &d,
        &[
            (b(Op::ConfigureKube, 0), Okay),
            (b(Op::CreateVm, 0), Okay),
            (e(Op::ConfigureKube, 0), Okay),
        ],
    );
    assert_eq!((s.kube_held, s.vms[0].held), (0b10, 0b01));
}

#[test]
fn enabled_actions_are_exactly_the_non_rejected_ones() {
    for (policy, updates) in Builtin::ALL
        .into_iter()
        .flat_map(|p| [(p, false), (p, true)])
    {
        let d = dev(2, &[1, 2]).with_updates(updates);
        // Walk a fixed interleaving and compare `enabled` with a brute-force
        // scan of every action.
        let mut s = d.initial();
        let script = [
            b(Op::CreateVm, 0),
            b(Op::ConfigureKube, 0),
            e(Op::CreateVm, 0),
            e(Op::ConfigureKube, 0),
            b(Op::StopVm, 0),
            e(Op::StopVm, 0),
            b(Op::CreateVm, 1),
            b(Op::UpdateDevice, 0),
            e(Op::UpdateDevice, 0),
            b(Op::StartVm, 0),
        ];
        for a in script {
            let mut brute = Vec::new();
            // Without updates on the device, `update-device` is a step a
            // scenario may take but not an action the explorers offer (once
            // begun, its end is).
            for op in Op::ALL
                .into_iter()
                .filter(|&op| updates || s.updating || op != Op::UpdateDevice)
            {
                for vm in 0..2u8 {
                    for (phase, option) in [
                        (model::Phase::Begin, StepOption::None),
                        (model::Phase::Begin, StepOption::Provisioned),
                        (model::Phase::End, StepOption::None),
                        (model::Phase::Event, StepOption::None),
                    ] {
                        if !op.takes_vm() && vm > 0 {
                            continue;
                        }
                        if option == StepOption::Provisioned && op != Op::StopVm {
                            continue;
                        }
                        let cand = Action {
                            phase,
                            op,
                            vm,
                            option,
                        };
                        if model::step(&policy, &d, &s, cand).outcome != Rejected {
                            brute.push(cand);
                        }
                    }
                }
            }
            let mut en = model::enabled(&policy, &d, &s);
            en.sort();
            brute.sort();
            assert_eq!(en, brute, "{policy} in {s:?}");
            s = model::step(&policy, &d, &s, a).state;
        }
    }
}

fn state(d: &Device) -> State {
    d.initial()
}

#[test]
fn invariant_no_double_claim() {
    let d = dev(2, &[1, 1]);
    let mut s = state(&d);
    s.free = 0b10;
    s.vms[0] = gpuclaim::Vm {
        life: VmState::Running,
        held: 0b01,
        size: 1,
    };
    assert!(invariant::check(&d, &s, &s).is_empty());
    let mut bad = s;
    bad.vms[1] = gpuclaim::Vm {
        life: VmState::Running,
        held: 0b01,
        size: 1,
    };
    bad.free = 0b10;
    assert_eq!(
        invariant::check(&d, &s, &bad),
        [Invariant::NoDoubleClaim].into_iter().collect()
    );
    let mut bad = s;
    bad.free = 0b11;
    assert!(invariant::check(&d, &s, &bad).contains(Invariant::NoDoubleClaim));
}

#[test]
fn invariant_conservation() {
    let d = dev(2, &[1]);
    let mut s = state(&d);
    s.free = 0b01;
    let got = invariant::check(&d, &d.initial(), &s);
    assert_eq!(got, [Invariant::Conservation].into_iter().collect());
    s.free = 0b111; // a GPU the device does not have
    assert!(invariant::check(&d, &d.initial(), &s).contains(Invariant::Conservation));
}

#[test]
fn invariant_holds_match_state() {
    let d = dev(2, &[1]);
    let base = d.initial();
    let with = |life, held| {
        let mut s = base;
        s.vms[0] = gpuclaim::Vm {
            life,
            held,
            size: 1,
        };
        s.free = 0b11 & !held;
        s
    };
    // Version 2: `stopping` keeps its GPUs until the stop's end step and
    // `rebooting` is like `running`.
    for life in [
        VmState::Creating,
        VmState::Starting,
        VmState::Running,
        VmState::StoppedProvisioned,
        VmState::Stopping { provisioned: false },
        VmState::Stopping { provisioned: true },
        VmState::Rebooting,
    ] {
        assert!(
            invariant::check(&d, &base, &with(life, 0b01)).is_empty(),
            "{life:?}"
        );
        assert_eq!(
            invariant::check(&d, &base, &with(life, 0)),
            [Invariant::HoldsMatchState].into_iter().collect(),
            "{life:?}"
        );
        assert_eq!(
            invariant::check(&d, &base, &with(life, 0b11)),
            [Invariant::HoldsMatchState].into_iter().collect(),
            "{life:?}"
        );
    }
    for life in [VmState::Absent, VmState::Stopped, VmState::Failed] {
        assert!(invariant::check(&d, &base, &with(life, 0)).is_empty());
        assert_eq!(
            invariant::check(&d, &base, &with(life, 0b01)),
            [Invariant::HoldsMatchState].into_iter().collect(),
            "{life:?}"
        );
    }
    // A removing VM holds what it held when the remove began: its size,
    // or nothing; not part of it.
    let removing = |held| {
        let mut s = with(VmState::Removing, held);
        s.vms[0].size = 2;
        s
    };
    assert!(invariant::check(&d, &base, &removing(0)).is_empty());
    assert!(invariant::check(&d, &base, &removing(0b11)).is_empty());
    assert_eq!(
        invariant::check(&d, &base, &removing(0b01)),
        [Invariant::HoldsMatchState].into_iter().collect()
    );
    for kube in [KubeState::Unconfigured, KubeState::Configuring] {
        let mut s = base;
        s.kube = kube;
        s.kube_held = 0b01;
        s.free = 0b10;
        assert_eq!(
            invariant::check(&d, &base, &s),
            [Invariant::HoldsMatchState].into_iter().collect()
        );
    }
    let mut s = base;
    s.kube = KubeState::Configured;
    s.kube_held = 0b01;
    s.free = 0b10;
    assert!(invariant::check(&d, &base, &s).is_empty());
}

#[test]
fn invariant_no_steal_after_dealloc_is_a_step_invariant() {
    let d = dev(2, &[1]);
    let mut before = d.initial();
    before.kube = KubeState::Configured;
    before.kube_held = 0b01;
    before.free = 0b10;
    let mut after = before;
    after.kube_held = 0b11;
    after.free = 0;
    assert_eq!(
        invariant::check(&d, &before, &after),
        [Invariant::NoStealAfterDealloc].into_iter().collect()
    );
    // The same gain from a step that began while configuring is judged by
    // the state invariants only.
    let mut configuring = before;
    configuring.kube = KubeState::Configuring;
    configuring.kube_held = 0;
    configuring.free = 0b11;
    assert!(invariant::check(&d, &configuring, &after).is_empty());
    // Losing a GPU is not a steal.
    assert!(!invariant::check(&d, &after, &before).contains(Invariant::NoStealAfterDealloc));
}

#[test]
fn rendering_of_a_state() {
    let d = dev(2, &[1, 1]);
    let names = gpuclaim::VmNames::letters(2);
    let mut s = d.initial();
    s.vms[0] = gpuclaim::Vm {
        life: VmState::Running,
        held: 0b01,
        size: 1,
    };
    s.vms[1] = gpuclaim::Vm {
        life: VmState::Stopped,
        held: 0,
        size: 1,
    };
    s.kube = KubeState::Configured;
    s.kube_held = 0b10;
    s.free = 0;
    assert_eq!(
        s.render(&d, &names),
        "gpu0=a gpu1=kube | a:running b:stopped | kube:configured"
    );
    s.free = 0b01;
    assert_eq!(s.owner(&d, &names, 0), "a+free");
    s.free = 0;
    s.vms[0].held = 0;
    assert_eq!(s.owner(&d, &names, 0), "none");
    let _ = InvariantSet::EMPTY;
}

#[test]
fn device_limits() {
    assert!(Device::new(0, &[]).is_err());
    assert!(Device::new(9, &[]).is_err());
    assert!(Device::new(8, &[8]).is_ok());
    assert!(Device::new(2, &[3]).is_err());
    assert!(Device::uniform(2, 25, 1).is_err());
    assert!(Device::uniform(2, 24, 1).is_ok());
}

/// `enabled_into` gives exactly `enabled`'s actions, in order, on the
/// states of random walks of every built-in policy; `for_each_enabled_kind`
/// the same actions as kinds, and `enabled_count` their number.
#[test]
fn enabled_into_matches_enabled() {
    use gpuclaim::model::{self, MAX_ENABLED};
    use gpuclaim::{Action, Builtin, Device};
    use rand::Rng as _;
    for policy in Builtin::ALL {
        for (g, v) in [(1u8, 0usize), (1, 3), (2, 4), (2, 24), (8, 24)] {
            let d = Device::uniform(g, v, 1).unwrap();
            let mut rng = gpuclaim::seed::rng(u64::from(g) * 100 + v as u64);
            let mut state = d.initial();
            let mut buf = [Action::takeover(); MAX_ENABLED];
            for _ in 0..2000 {
                let want = model::enabled(&policy, &d, &state);
                let n = model::enabled_into(&policy, &d, &state, &mut buf);
                assert_eq!(&buf[..n], &want[..]);
                let mut kinds = Vec::new();
                model::for_each_enabled_kind(&policy, &d, &state, |kind, vm| {
                    kinds.push(model::kind_action(kind, vm));
                });
                assert_eq!(kinds, want);
                assert_eq!(model::enabled_count(&policy, &d, &state), want.len());
                if want.is_empty() {
                    break;
                }
                let i = (rng.next_u64() % want.len() as u64) as usize;
                state = model::step(&policy, &d, &state, want[i]).state;
            }
        }
    }
}

#[test]
fn state_keys_refuse_devices_too_large_for_128_bits() {
    let small = dev(2, &[1; 20]);
    assert!(
        small.initial().key(2, 20).is_some(),
        "3*2 + 2 + 20*6 = 128 bits"
    );
    let large = Device::uniform(2, 21, 1).unwrap();
    assert_eq!(large.initial().key(2, 21), None, "134 bits");
    // Different states of one device have different keys.
    let d = dev(2, &[1, 1]);
    let s0 = d.initial();
    let s1 = model::step(&Fixed, &d, &s0, b(Op::CreateVm, 1)).state;
    assert_ne!(s0.key(2, 2), s1.key(2, 2));
}
