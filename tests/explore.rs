//! Random and swarm walks and explore campaigns: determinism (the same
//! bytes for every thread count, replays equal to the campaign's runs),
//! what walks find under each policy, distinct-state counts, early ends,
//! and shrunk counterexamples that pass as scenario files and are as short
//! as the checker's.

use std::collections::HashSet;
use std::path::Path;

use gpuclaim::check::Checker;
use gpuclaim::explore::{self, Campaign, CsvRows, Kinds, WalkConfig, Walker};
use gpuclaim::model::{Device, Op, Outcome};
use gpuclaim::pack::Packer;
use gpuclaim::{Allocator, Builtin, Invariant, Registry, counterexample, scenario};

fn config(gpus: u8, vms: usize, steps: usize, swarm: bool) -> WalkConfig {
    WalkConfig {
        device: Device::uniform(gpus, vms, 1).unwrap(),
        steps,
        swarm,
    }
}

#[test]
fn csv_bytes_do_not_depend_on_threads() {
    for (p, swarm) in [
        (Builtin::Legacy, false),
        (Builtin::Legacy, true),
        (Builtin::Snapshot, true),
        (Builtin::Fixed, false),
    ] {
        let d = Device::uniform(2, 3, 1).unwrap();
        let bytes: Vec<Vec<u8>> = [1, 2, 3]
            .into_iter()
            .map(|t| {
                Campaign::new(&p, d)
                    .runs(1500)
                    .steps(40)
                    .seed(7)
                    .swarm(swarm)
                    .threads(t)
                    .run()
                    .csv()
                    .into_bytes()
            })
            .collect();
        assert_eq!(bytes[0], bytes[1], "{p} swarm={swarm}");
        assert_eq!(bytes[0], bytes[2], "{p} swarm={swarm}");
        let text = String::from_utf8(bytes[0].clone()).unwrap();
        assert_eq!(text.lines().count(), 1501);
        assert!(text.starts_with(
            "run,seed,policy,gpus,vms,sizes,kinds,steps,first_violation,first_violation_step,violations,ok,no_gpu,rejected,distinct_states,shrunk_actions\n0,"
        ));
    }
}

/// The rows `explore` writes, rendered by the workers batch by batch
/// ([`Campaign::run_rendered`] with [`CsvRows::render`]), are the bytes of
/// the report's CSV after its header, with violations, shrunk lengths,
/// swarm kinds and mixed slot sizes among them, on every thread count.
#[test]
fn render_writes_what_row_gives() {
    let d = Device::new(2, &[1, 2, 1]).unwrap();
    for (p, swarm) in [(Builtin::Legacy, true), (Builtin::Snapshot, false)] {
        let campaign = || {
            Campaign::new(&p, d)
                .runs(2500)
                .steps(30)
                .seed(5)
                .swarm(swarm)
                .block(1500)
        };
        let whole = campaign().threads(1).run().csv().into_bytes();
        let text = String::from_utf8(whole.clone()).unwrap();
        assert!(text.contains(",1 2 1,") && text.contains(&format!(",{p},")));
        assert!(text.lines().any(|l| !l.ends_with(',')), "no shrunk run");
        let body = &whole[whole.iter().position(|&b| b == b'\n').unwrap() + 1..];
        let rows = CsvRows::new(p.name(), &d);
        for threads in [1, 2] {
            let (mut rendered, mut batches) = (Vec::new(), Vec::new());
            campaign().threads(threads).run_rendered(
                |_| {},
                |batch| rows.render(batch),
                |batch, bytes| {
                    batches.push((batch[0].index, batch.len()));
                    rendered.extend_from_slice(&bytes);
                },
            );
            // Batches of 1024 runs within blocks of 1500, in run order.
            assert_eq!(batches, [(0, 1024), (1024, 476), (1500, 1000)]);
            assert_eq!(rendered, body, "{p} on {threads} threads");
        }
    }
}

/// Streaming in blocks gives the same records and counterexamples, in the
/// same order, whatever the block size.
#[test]
fn blocks_do_not_change_the_campaign() {
    let d = Device::uniform(2, 2, 1).unwrap();
    let whole = Campaign::new(&Builtin::Legacy, d)
        .runs(700)
        .steps(30)
        .seed(21)
        .run();
    let mut seen = Vec::new();
    let mut blocks = 0;
    let cx = Campaign::new(&Builtin::Legacy, d)
        .runs(700)
        .steps(30)
        .seed(21)
        .block(64)
        .threads(2)
        .run_streaming(
            |_| {},
            |b| {
                assert!(b.len() <= 64);
                blocks += 1;
                seen.extend_from_slice(b);
            },
        );
    assert_eq!(blocks, 11);
    assert_eq!(seen, whole.runs);
    assert_eq!(cx, whole.counterexamples);
}

#[test]
fn each_policy_gets_its_expected_verdict() {
    let d = Device::uniform(2, 4, 1).unwrap();
    let fixed = Campaign::new(&Builtin::Fixed, d)
        .runs(10_000)
        .steps(50)
        .seed(3)
        .run();
    assert_eq!(fixed.failing_runs(), 0);
    assert!(fixed.counterexamples.is_empty());
    assert!(fixed.runs.iter().all(|r| r.summary.steps == 50));

    for (p, inv) in [
        (Builtin::Legacy, Invariant::NoStealAfterDealloc),
        (Builtin::Snapshot, Invariant::NoDoubleClaim),
    ] {
        for swarm in [false, true] {
            let r = Campaign::new(&p, d)
                .runs(2000)
                .steps(50)
                .seed(3)
                .swarm(swarm)
                .run();
            assert!(r.failing_runs() > 0, "{p} swarm={swarm}");
            for run in &r.runs {
                if let Some((first, at)) = run.summary.first_violation {
                    assert_eq!(first, inv, "{p}");
                    assert!(at < run.summary.steps);
                    assert!(run.summary.fired.contains(inv));
                    assert!(run.shrunk.is_some());
                } else {
                    assert!(run.summary.fired.is_empty());
                    assert!(run.shrunk.is_none());
                }
            }
            let counted: u64 = r.counterexamples.iter().map(|c| c.runs).sum();
            assert_eq!(counted, r.failing_runs());
        }
    }
}

/// The run I of a campaign, replayed alone, is the same walk; its
/// recorded trace shows the first violation where the CSV says.
#[test]
fn replaying_a_run_regenerates_it_exactly() {
    let cfg = config(2, 3, 60, true);
    let report = Campaign::new(&Builtin::Legacy, cfg.device)
        .runs(200)
        .steps(60)
        .seed(11)
        .swarm(true)
        .run();
    for i in [0u64, 1, 57, 199] {
        let (summary, run) = explore::replay_run(&Builtin::Legacy, cfg, 11, i);
        assert_eq!(summary, report.runs[i as usize].summary);
        assert_eq!(run.trace.len(), summary.steps);
        let first = run.violations.first().map(|v| (v.invariant, v.step_index));
        assert_eq!(first, summary.first_violation);
        assert_eq!(run.fired, summary.fired);
        for e in &run.trace {
            assert!(summary.kinds.contains(e.action.op));
            assert_ne!(e.outcome, Outcome::Rejected);
        }
        let (again, run2) = explore::replay_run(&Builtin::Legacy, cfg, 11, i);
        assert_eq!(again, summary);
        assert_eq!(run2, run);
    }
}

/// distinct_states is the number of different states (MODEL.md identity)
/// among the initial state and the state after each action.
#[test]
fn distinct_states_counts_states_visited() {
    for (g, v) in [(1, 1), (2, 4), (2, 12)] {
        let cfg = config(g, v, 300, false);
        let mut walker = Walker::new(&Builtin::Snapshot, cfg);
        for seed in 0..20 {
            let (summary, actions) = walker.walk_recorded(seed);
            let names = gpuclaim::VmNames::letters(v);
            let run = gpuclaim::run_actions(&Builtin::Snapshot, &cfg.device, &names, &actions);
            let mut seen: HashSet<gpuclaim::State> = run.states.iter().copied().collect();
            seen.insert(cfg.device.initial());
            assert_eq!(summary.distinct_states, seen.len() as u64, "G={g} V={v}");
            assert_eq!(summary.outcomes.iter().sum::<u64>(), 300);
        }
    }
    // G=2, V=12 needs 86 bits: counted with fingerprints, not exact keys.
    assert!(!Packer::new(&Device::uniform(2, 12, 1).unwrap()).fits_u64());
}

/// With no VM slot, Kubernetes' configure is the only thing to do: the walk
/// ends after its two steps. A swarm walk whose kinds are all disabled
/// takes no step at all.
#[test]
fn a_walk_ends_early_when_no_action_is_enabled() {
    let mut w = Walker::new(&Builtin::Fixed, config(1, 0, 50, false));
    let s = w.walk(5);
    assert_eq!(s.steps, 2);
    assert_eq!(s.distinct_states, 3);
    assert_eq!(s.outcomes, [2, 0, 0]);

    let cfg = config(2, 2, 50, true);
    let mut w = Walker::new(&Builtin::Fixed, cfg);
    let mut saw_stuck = false;
    for seed in 0..500 {
        let (s, actions) = w.walk_recorded(seed);
        assert!(!s.kinds.is_empty());
        assert!(actions.iter().all(|a| s.kinds.contains(a.op)));
        if !s.kinds.contains(Op::CreateVm) && !s.kinds.contains(Op::ConfigureKube) {
            // Nothing else is enabled in the initial state.
            assert_eq!(s.steps, 0);
            saw_stuck = true;
        }
    }
    assert!(saw_stuck);
    assert_eq!(Kinds::from_ops(&Op::ALL[..6]), Kinds::ALL);
    assert_eq!(Kinds::from_ops(&Op::ALL), Kinds::ALL_WITH_UPDATES);
    assert_eq!(Kinds::ALL_WITH_UPDATES.to_string(), "all");
    assert_eq!(Kinds::ALL.to_string(), "all");
    assert_eq!(
        Kinds::from_ops(&[Op::CreateVm, Op::KubeTakeover]).to_string(),
        "create-vm+kube-takeover"
    );
}

/// Every counterexample a campaign keeps passes as a scenario file (the
/// file `gpuclaim explore` writes) and expects its invariant.
#[test]
fn counterexamples_pass_as_scenario_files() {
    let registry = Registry::builtin();
    for p in [Builtin::Legacy, Builtin::Snapshot] {
        let d = Device::uniform(2, 3, 1).unwrap();
        let r = Campaign::new(&p, d)
            .runs(3000)
            .steps(50)
            .seed(1)
            .swarm(true)
            .run();
        assert!(!r.counterexamples.is_empty());
        let mut names = HashSet::new();
        for c in &r.counterexamples {
            let s = counterexample::scenario_from_actions(&p, &d, &c.actions, "cx", "test");
            let name = counterexample::file_name(p.name(), c.invariant, &s);
            assert!(names.insert(name.clone()), "one file per counterexample");
            let back = scenario::parse(Path::new(&name), &s.to_toml(), &registry).unwrap();
            let run = back.run(&p);
            assert!(run.passed(), "{name}: {:?}", run.mismatches);
            assert!(run.fired.contains(c.invariant));
            assert_eq!(run.trace.len(), c.actions.len());
        }
    }
}

/// Shrunk counterexamples against the checker's shortest, for the same
/// device: every failing run shrinks to exactly the checker's length (ddmin
/// alone could stop in a longer local minimum under `snapshot`; the
/// shrinker's final search over the used slots removes those).
#[test]
fn shrunk_counterexamples_are_as_short_as_the_checkers() {
    for g in 1..=2u8 {
        for v in 1..=3usize {
            let d = Device::uniform(g, v, 1).unwrap();
            for (p, inv) in [
                (Builtin::Legacy, Invariant::NoStealAfterDealloc),
                (Builtin::Snapshot, Invariant::NoDoubleClaim),
            ] {
                let shortest = Checker::new(&p, d).run().unwrap();
                let shortest = shortest.violated(inv).unwrap().counterexample.len();
                let r = Campaign::new(&p, d).runs(1000).steps(50).seed(2).run();
                let lens: Vec<usize> = r.counterexamples.iter().map(|c| c.actions.len()).collect();
                let what = format!("{p} G={g} V={v}: {lens:?}");
                assert!(lens.iter().all(|&n| n >= shortest), "{what}");
                assert_eq!(lens.iter().min(), Some(&shortest), "{what}");
                assert!(lens.iter().all(|&n| n == shortest), "{what}");
            }
        }
    }
}
