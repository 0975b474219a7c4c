//! Properties (proptest) over generated devices, traces and scenarios:
//! shrinking keeps the violated invariant and never lengthens a trace;
//! replaying a trace gives the identical trace; every scenario round-trips
//! through TOML.

use std::collections::BTreeMap;
use std::path::Path;

use gpuclaim::counterexample::scenario_from_actions;
use gpuclaim::model::{self, Action, Device, KubeState, Outcome, VmNames, VmState};
use gpuclaim::scenario::{self, Expect, Scenario};
use gpuclaim::shrink::{first_violation, shrink};
use gpuclaim::trace::{self, StepKind, StepSpec, run_actions, trace_to_steps};
use gpuclaim::{Builtin, Invariant, Op, Registry, StepOption};
use proptest::prelude::*;
use proptest::test_runner::Config;

fn config(cases: u32) -> Config {
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

/// A device of 1 to 3 GPUs and 1 to 4 slots, sizes mostly 1.
fn device() -> impl Strategy<Value = Device> {
    (1u8..=3).prop_flat_map(|gpus| {
        let size = prop_oneof![3 => Just(1u8), 1 => 0..=gpus];
        proptest::collection::vec(size, 1..=4).prop_map(move |s| Device::new(gpus, &s).unwrap())
    })
}

fn policy() -> impl Strategy<Value = Builtin> {
    prop_oneof![
        Just(Builtin::Fixed),
        Just(Builtin::Legacy),
        Just(Builtin::Snapshot)
    ]
}

/// An action that may or may not be enabled (options included).
fn raw_action(vms: u8, gpus: u8) -> impl Strategy<Value = Action> {
    (0usize..13, 0..vms, 0..=gpus).prop_map(|(kind, vm, n)| {
        let (phase_end, op, option) = match kind {
            0 => (false, Op::CreateVm, StepOption::None),
            1 => (false, Op::CreateVm, StepOption::Gpus(n)),
            2 => (false, Op::StartVm, StepOption::None),
            3 => (false, Op::StopVm, StepOption::None),
            4 => (false, Op::StopVm, StepOption::Provisioned),
            5 => (false, Op::RemoveVm, StepOption::None),
            6 => (true, Op::CreateVm, StepOption::None),
            7 => (true, Op::StartVm, StepOption::None),
            8 => (true, Op::StopVm, StepOption::None),
            9 => (true, Op::RemoveVm, StepOption::None),
            10 => (false, Op::ConfigureKube, StepOption::None),
            11 => (true, Op::ConfigureKube, StepOption::None),
            _ => return Action::takeover(),
        };
        let vm = if op.takes_vm() { vm } else { 0 };
        let a = if phase_end {
            Action::end(op, vm)
        } else {
            Action::begin(op, vm)
        };
        a.with_option(option)
    })
}

/// A policy, a device and a trace: a walk that mostly picks an enabled
/// action (so violations are common) and sometimes any action at all.
fn case() -> impl Strategy<Value = (Builtin, Device, Vec<Action>)> {
    (policy(), device()).prop_flat_map(|(p, d)| {
        let vms = d.vms() as u8;
        let pick = prop_oneof![
            3 => any::<u16>().prop_map(Err),
            1 => raw_action(vms, d.gpus()).prop_map(Ok),
        ];
        proptest::collection::vec(pick, 0..40).prop_map(move |picks| {
            let mut state = d.initial();
            let mut actions = Vec::new();
            for pick in picks {
                let a = match pick {
                    Ok(a) => a,
                    Err(i) => {
                        let enabled = model::enabled(&p, &d, &state);
                        enabled[usize::from(i) % enabled.len()]
                    }
                };
                state = model::step(&p, &d, &state, a).state;
                actions.push(a);
            }
            (p, d, actions)
        })
    })
}

proptest! {
    #![proptest_config(config(500))]

    /// For every invariant a trace violates: the shrunk trace still
    /// violates it, is never longer, ends where it fires, cannot lose any
    /// single action and keep it, and shrinking it again changes nothing.
    #[test]
    fn shrinking_keeps_the_violated_invariant_and_never_lengthens(
        (p, d, actions) in case()
    ) {
        let names = VmNames::letters(d.vms());
        let fired = run_actions(&p, &d, &names, &actions).fired;
        for inv in fired.iter() {
            let out = shrink(&p, &d, &actions, inv);
            let at = first_violation(&p, &d, &out, inv);
            prop_assert_eq!(at, Some(out.len() - 1), "{} kept, at the last action", inv);
            prop_assert!(out.len() <= actions.len());
            prop_assert!(
                out.len() <= first_violation(&p, &d, &actions, inv).unwrap() + 1,
                "never longer than the prefix up to the first violation"
            );
            for i in 0..out.len() {
                let mut fewer = out.clone();
                fewer.remove(i);
                prop_assert_eq!(
                    first_violation(&p, &d, &fewer, inv), None,
                    "action {} of the shrunk trace could go", i
                );
            }
            prop_assert_eq!(shrink(&p, &d, &out, inv), out.clone());
        }
        // A trace with no violation comes back unchanged.
        for inv in Invariant::ALL.into_iter().filter(|i| !fired.contains(*i)) {
            prop_assert_eq!(shrink(&p, &d, &actions, inv), actions.clone());
        }
    }

    /// A replay is identical: the same actions give the same run, and the
    /// trace written as scenario steps runs exactly the same actions with
    /// the same outcomes, states and violations.
    #[test]
    fn replay_of_any_trace_is_identical((p, d, actions) in case()) {
        let names = VmNames::letters(d.vms());
        let first = run_actions(&p, &d, &names, &actions);
        let second = run_actions(&p, &d, &names, &actions);
        prop_assert_eq!(&first, &second);

        let steps = trace_to_steps(&first.trace, &names);
        let (replayed, _) = trace::run_steps(&p, &d, &names, &steps);
        prop_assert_eq!(&replayed.trace, &first.trace);
        prop_assert_eq!(&replayed.states, &first.states);
        prop_assert_eq!(&replayed.violations, &first.violations);

        // And through a scenario file: printed, read back and run with
        // `gpuclaim run`'s code, it passes and fires the same invariants.
        let s = scenario_from_actions(&p, &d, &actions, "replay", "properties");
        let back = scenario::parse(Path::new("replay.toml"), &s.to_toml(), &Registry::builtin())
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&back, &s);
        let run = back.run(&p);
        prop_assert!(run.passed(), "{:?}\n{}", run.mismatches, run.render_trace());
        prop_assert_eq!(run.fired, first.fired);
    }
}

// ---------------------------------------------------------------------------
// Generated scenario files.

const POOL: [&str; 6] = ["a", "b", "web-1", "Gpu_vm", "z9", "x-_y"];
const POLICIES: [&str; 3] = ["fixed", "legacy", "snapshot"];

/// Any text on one line, not blank (scenario names must be one line and
/// show something): control characters, quotes, backslashes and non-ASCII
/// included.
fn one_line() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[ -~]{0,20}",
        Just("\"quoted\" \\ 'single' ''' \"\"\" #not a comment".to_string()),
        Just("tab\there\u{7f}\u{0} é ✓ \r".to_string()),
    ]
    .prop_map(|s| s.replace('\n', " "))
    // A name must not be empty or blank.
    .prop_filter("a name shows something", |s| !s.trim().is_empty())
}

fn step_spec(gpus: u8) -> impl Strategy<Value = StepSpec> {
    (
        0usize..3,
        0usize..6,
        0usize..POOL.len(),
        0..=gpus,
        any::<bool>(),
    )
        .prop_map(move |(kind, op, vm, n, with_option)| {
            let op = Op::ALL[op];
            let kind = match kind {
                _ if op == Op::KubeTakeover => StepKind::Plain,
                0 => StepKind::Plain,
                1 => StepKind::Begin,
                _ => StepKind::End,
            };
            let option = match (with_option && kind != StepKind::End, op) {
                (true, Op::CreateVm) => StepOption::Gpus(n),
                (true, Op::StopVm) => StepOption::Provisioned,
                _ => StepOption::None,
            };
            StepSpec {
                kind,
                op,
                vm: op.takes_vm().then(|| POOL[vm].to_string()),
                option,
            }
        })
}

fn expect(steps: usize, gpus: u8, owners: Vec<String>) -> impl Strategy<Value = Expect> {
    let states: Vec<VmState> = VmState::ALL
        .into_iter()
        .filter(|s| *s != VmState::Stopping { provisioned: true })
        .collect();
    let owner = proptest::sample::select(owners);
    (
        proptest::option::of(proptest::collection::vec(
            proptest::sample::select(Outcome::ALL.to_vec()),
            steps,
        )),
        proptest::option::of(proptest::sample::select(KubeState::ALL.to_vec())),
        proptest::option::of(0..=gpus),
        proptest::option::of(proptest::collection::vec(owner, usize::from(gpus))),
        proptest::collection::btree_map(
            proptest::sample::select(POOL.to_vec()).prop_map(str::to_string),
            proptest::sample::select(states),
            0..3,
        ),
        proptest::option::of(proptest::collection::vec(
            proptest::sample::select(Invariant::ALL.to_vec()),
            0..4,
        )),
        proptest::option::of(any::<bool>()),
    )
        .prop_map(
            |(outcomes, kube, kube_gpus, gpus, vm, violations, updating)| Expect {
                outcomes,
                kube,
                updating,
                kube_gpus,
                gpus,
                vm,
                violations,
            },
        )
}

fn scenario_strategy() -> impl Strategy<Value = Scenario> {
    (1u8..=8).prop_flat_map(|gpus| {
        (
            one_line(),
            proptest::option::of(any::<String>()),
            // A file names each policy at most once, and at least one.
            proptest::option::of(
                proptest::sample::subsequence(POLICIES.to_vec(), 1..=POLICIES.len())
                    .prop_shuffle()
                    .prop_map(|p| p.into_iter().map(str::to_string).collect::<Vec<_>>()),
            ),
            proptest::collection::vec(step_spec(gpus), 0..8),
            proptest::collection::btree_map(
                proptest::sample::select(POOL.to_vec()).prop_map(str::to_string),
                0..=gpus,
                0..4,
            ),
        )
            .prop_flat_map(move |(name, source, policies, steps, vms)| {
                // Owners an expectation may name: any VM of the pool is
                // fine only if the scenario has it; the [vms] table's are.
                let mut owners: Vec<String> = ["free", "kube", "none"].map(String::from).to_vec();
                for vm in vms.keys() {
                    owners.push(vm.clone());
                    owners.push(format!("{vm}+kube"));
                }
                let n = steps.len();
                // Overrides only for a policy the scenario runs under.
                let runs_under = policies
                    .clone()
                    .unwrap_or_else(|| scenario::DEFAULT_POLICIES.map(str::to_string).to_vec());
                (
                    proptest::option::of(expect(n, gpus, owners.clone())),
                    proptest::collection::btree_map(
                        proptest::sample::select(runs_under),
                        expect(n, gpus, owners),
                        0..3,
                    ),
                )
                    .prop_map(move |(expect, expect_for)| Scenario {
                        name: name.clone(),
                        source: source.clone(),
                        gpus,
                        policies: policies.clone(),
                        steps: steps.clone(),
                        vms: vms.clone(),
                        expect_for: if expect.is_some() {
                            expect_for
                        } else {
                            BTreeMap::new()
                        },
                        expect,
                    })
            })
    })
}

proptest! {
    #![proptest_config(config(400))]

    /// Every scenario: to TOML, read back, equal; and printed again, the
    /// same bytes.
    #[test]
    fn every_scenario_round_trips(s in scenario_strategy()) {
        let text = s.to_toml();
        let back = scenario::parse(Path::new("generated.toml"), &text, &Registry::builtin())
            .map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        prop_assert_eq!(&back, &s, "{}", text);
        prop_assert_eq!(back.to_toml(), text);
    }

    /// A step written back reads as the same step.
    #[test]
    fn every_step_round_trips(spec in (1u8..=8).prop_flat_map(step_spec)) {
        let text = spec.to_string();
        prop_assert_eq!(StepSpec::parse(&text), Ok(spec));
    }
}

/// The policies are named as the registry names them (the generated
/// scenarios above draw from this list).
#[test]
fn generated_policy_names_are_registered() {
    let reg = Registry::builtin();
    for p in POLICIES {
        assert_eq!(
            reg.get(p).map(|x| x.name().to_string()),
            Some(p.to_string())
        );
    }
}

/// Regression (found by `replay_of_any_trace_is_identical`): a trace that
/// ends with a provisioned stop in flight became a scenario expecting
/// `Stopping { provisioned: true }`, which is written `stopping` and reads
/// back as the deallocating stop, so the scenario read back was not equal
/// to the one written.
#[test]
fn a_counterexample_ending_in_a_provisioned_stop_round_trips() {
    let d = Device::uniform(1, 1, 1).unwrap();
    let actions = [
        Action::begin(Op::CreateVm, 0),
        Action::end(Op::CreateVm, 0),
        Action::begin(Op::StopVm, 0).with_option(StepOption::Provisioned),
    ];
    let s = scenario_from_actions(&Builtin::Fixed, &d, &actions, "n", "s");
    assert_eq!(
        s.expect.as_ref().unwrap().vm["a"],
        VmState::Stopping { provisioned: false }
    );
    let back = scenario::parse(Path::new("x.toml"), &s.to_toml(), &Registry::builtin()).unwrap();
    assert_eq!(back, s);
    assert!(back.run(&Builtin::Fixed).passed());
}

proptest! {
    #![proptest_config(config(300))]

    /// The fuzz input format: any case the decoder can produce is encoded
    /// to bytes that decode back to it.
    #[test]
    fn fuzz_inputs_encode_and_decode_back(
        case in (1u8..=8).prop_flat_map(|gpus| {
            proptest::collection::vec(0..=gpus, 1..=8).prop_flat_map(move |sizes| {
                let d = Device::new(gpus, &sizes).unwrap();
                proptest::collection::vec(raw_action(d.vms() as u8, gpus), 0..50)
                    .prop_map(move |actions| gpuclaim::fuzzing::Interleaving { device: d, actions })
            })
        })
    ) {
        let bytes = gpuclaim::fuzzing::encode_interleaving(&case).unwrap();
        prop_assert_eq!(gpuclaim::fuzzing::decode_interleaving(&bytes), case);
    }
}
