//! Allocators in another process (docs/allocator-protocol.md): the Python
//! examples of examples/allocators/ through every engine. The Python
//! `fixed` (and `--legacy`) must give exactly what the built-ins give; the
//! buggy one must be caught, shrunk and replayed; a child that dies, hangs
//! or garbles a reply is an allocator error (exit 3), never a violation.
//! Every test skips, saying so, when `python3` is not on PATH.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, OnceLock};

use gpuclaim::check::Checker;
use gpuclaim::explore::{Campaign, CsvRows};
use gpuclaim::external;
use gpuclaim::{Allocator, Builtin, Device, Invariant, Registry, scenario};

const ALLOCATORS: &str = "examples/allocators/allocators.toml";

fn python() -> bool {
    static HAS: OnceLock<bool> = OnceLock::new();
    let has = *HAS.get_or_init(|| {
        Command::new("python3")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if !has {
        eprintln!("python3 is not on PATH: skipping the external allocator test");
    }
    has
}

fn examples() -> Registry {
    let mut registry = Registry::builtin();
    for a in external::load_file(Path::new(ALLOCATORS)).expect("the example allocators start") {
        registry.register(a);
    }
    registry
}

fn get(registry: &Registry, name: &str) -> Arc<dyn Allocator> {
    registry.get(name).expect("registered")
}

fn gpuclaim(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gpuclaim"))
        .args(args)
        .output()
        .expect("running gpuclaim")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gpuclaim-ext-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn python_fixed_and_legacy_check_exactly_like_the_builtins() {
    if !python() {
        return;
    }
    let registry = examples();
    let devices = [
        Device::uniform(1, 2, 1).unwrap(),
        Device::uniform(2, 3, 1).unwrap(),
        Device::new(2, &[2, 1, 1]).unwrap(),
        Device::new(2, &[2]).unwrap(),
    ];
    for (ours, theirs) in [("py-fixed", Builtin::Fixed), ("py-legacy", Builtin::Legacy)] {
        let external = get(&registry, ours);
        for device in devices {
            let a = Checker::new(&*external, device).run().unwrap();
            let b = Checker::new(&theirs, device).run().unwrap();
            let what = format!("{ours} on {device:?}");
            assert_eq!(a.unique_states, b.unique_states, "{what}");
            assert_eq!(a.transitions, b.transitions, "{what}");
            assert_eq!(a.levels, b.levels, "{what}");
            let found = |r: &gpuclaim::check::CheckReport| {
                r.violations
                    .iter()
                    .map(|f| (f.invariant, f.transitions, f.counterexample.clone()))
                    .collect::<Vec<_>>()
            };
            assert_eq!(found(&a), found(&b), "{what}");
        }
    }
    // The counts the issue names, and symmetry where the child declares it.
    let fixed = get(&registry, "py-fixed");
    let d = Device::uniform(2, 3, 1).unwrap();
    assert_eq!(Checker::new(&*fixed, d).run().unwrap().unique_states, 6_442);
    let d4 = Device::uniform(2, 4, 1).unwrap();
    let sym = Checker::new(&*fixed, d4).symmetry(true).run().unwrap();
    let builtin = Checker::new(&Builtin::Fixed, d4)
        .symmetry(true)
        .run()
        .unwrap();
    assert_eq!(sym.unique_states, builtin.unique_states);
    assert_eq!(sym.transitions, builtin.transitions);
}

#[test]
fn python_fixed_explores_and_runs_scenarios_like_fixed() {
    if !python() {
        return;
    }
    let registry = examples();
    let device = Device::uniform(2, 3, 1).unwrap();
    for (ours, theirs) in [("py-fixed", Builtin::Fixed), ("py-legacy", Builtin::Legacy)] {
        let external = get(&registry, ours);
        for swarm in [false, true] {
            let a = Campaign::new(&*external, device)
                .runs(300)
                .steps(40)
                .seed(7)
                .swarm(swarm)
                .threads(2)
                .run();
            let b = Campaign::new(&theirs, device)
                .runs(300)
                .steps(40)
                .seed(7)
                .swarm(swarm)
                .threads(2)
                .run();
            // The same rows but for the policy column, and the same shrunk
            // counterexamples.
            let rows_a = CsvRows::new("p", &device).render(&a.runs);
            let rows_b = CsvRows::new("p", &device).render(&b.runs);
            assert_eq!(text(&rows_a), text(&rows_b), "{ours} swarm={swarm}");
            assert_eq!(a.counterexamples, b.counterexamples, "{ours} swarm={swarm}");
        }
    }
    // Every documented scenario gives the built-in's outcomes, owners and
    // violations, and passes the expectations written for it.
    let files = scenario::collect_files(&[PathBuf::from("scenarios")]).unwrap();
    assert!(files.len() >= 10, "{files:?}");
    for file in files {
        let s = scenario::load(&file, &registry).unwrap();
        for (ours, theirs) in [("py-fixed", Builtin::Fixed), ("py-legacy", Builtin::Legacy)] {
            if !s.policy_names().iter().any(|p| p == theirs.name()) {
                continue;
            }
            let a = s.run(&*get(&registry, ours));
            let b = s.run(&theirs);
            let what = format!("{} under {ours}", file.display());
            assert_eq!(a.outcomes, b.outcomes, "{what}");
            assert_eq!(a.fired, b.fired, "{what}");
            let sets = |r: &scenario::PolicyRun| {
                r.states
                    .iter()
                    .map(|s| (s.free, s.kube_held, s.vms, s.kube))
                    .collect::<Vec<_>>()
            };
            assert_eq!(sets(&a), sets(&b), "{what}");
        }
    }
}

#[test]
fn the_buggy_allocator_is_caught_shrunk_and_replayed_from_its_file() {
    if !python() {
        return;
    }
    let dir = tmp("buggy");
    let out = dir.join("ce");
    let csv = dir.join("runs.csv");
    let o = gpuclaim(&[
        "--allocators",
        ALLOCATORS,
        "explore",
        "--gpus",
        "2",
        "--vms",
        "2",
        "--policy",
        "py-buggy",
        "--runs",
        "200",
        "--seed",
        "3",
        "--out",
        csv.to_str().unwrap(),
        "--counterexamples",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    let stdout = text(&o.stdout);
    assert!(
        stdout.contains("counterexample: no-steal-after-dealloc in 6 actions"),
        "{stdout}"
    );
    let files: Vec<PathBuf> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    assert!(!files.is_empty());
    for file in &files {
        let body = std::fs::read_to_string(file).unwrap();
        assert!(body.contains(r#"policies = ["py-buggy"]"#), "{body}");
        assert!(
            body.contains(r#"violations = ["no-steal-after-dealloc"]"#),
            "{body}"
        );
        // The file replays: with the allocators file it passes ...
        let run = gpuclaim(&["--allocators", ALLOCATORS, "run", file.to_str().unwrap()]);
        assert_eq!(run.status.code(), Some(0), "{}", text(&run.stdout));
        // ... and without it the name is refused, listing the known ones.
        let refused = gpuclaim(&["run", file.to_str().unwrap()]);
        assert_eq!(refused.status.code(), Some(2));
        let said = text(&refused.stdout) + &text(&refused.stderr);
        assert!(said.contains("py-buggy"), "{said}");
        assert!(said.contains("fixed, legacy, snapshot"), "{said}");
    }
    // The checker finds the same shortest counterexample.
    let registry = examples();
    let report = Checker::new(
        &*get(&registry, "py-buggy"),
        Device::uniform(2, 2, 1).unwrap(),
    )
    .run()
    .unwrap();
    let found = report
        .violated(Invariant::NoStealAfterDealloc)
        .expect("caught");
    assert_eq!(found.counterexample.len(), 6);
    assert_eq!(report.violations.len(), 1);
}

#[test]
fn from_fuzz_runs_an_input_under_an_external_allocator() {
    if !python() {
        return;
    }
    let dir = tmp("fuzz");
    let input =
        "fuzz/regressions/interleaving_legacy/crash-312735bc15406a298cbedba26ddb9928b7fb6055";
    let o = gpuclaim(&[
        "--allocators",
        ALLOCATORS,
        "from-fuzz",
        "interleaving_legacy",
        input,
        "--policy",
        "py-buggy",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let stdout = text(&o.stdout);
    assert!(
        stdout
            .contains("no-steal-after-dealloc under py-buggy after 15 of 25 actions; shrunk to 6"),
        "{stdout}"
    );
    let file = dir.join("py-buggy-no-steal-after-dealloc-8b23b2fd.toml");
    let run = gpuclaim(&["--allocators", ALLOCATORS, "run", file.to_str().unwrap()]);
    assert_eq!(run.status.code(), Some(0), "{}", text(&run.stdout));
    // Under the Python fixed the same input fires nothing.
    let o = gpuclaim(&[
        "--allocators",
        ALLOCATORS,
        "from-fuzz",
        "interleaving_legacy",
        input,
        "--policy",
        "py-fixed",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0));
    assert!(
        text(&o.stdout)
            .contains("no invariant fires under py-fixed (2 GPUs, 1 VM slot, 25 actions decoded)")
    );
}

#[test]
fn the_cli_checks_and_explores_python_fixed_like_fixed() {
    if !python() {
        return;
    }
    let dir = tmp("cli");
    let check = |policy: &str| {
        let o = gpuclaim(&[
            "--allocators",
            ALLOCATORS,
            "check",
            "--gpus",
            "2",
            "--vms",
            "2",
            "--policy",
            policy,
            "--counterexamples",
            dir.to_str().unwrap(),
        ]);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
        let out = text(&o.stdout);
        out.lines()
            .filter(|l| l.starts_with("unique states") || l.starts_with("transitions"))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(check("py-fixed"), check("fixed"));
    let explore = |policy: &str| {
        let csv = dir.join(format!("{policy}.csv"));
        let o = gpuclaim(&[
            "--allocators",
            ALLOCATORS,
            "explore",
            "--gpus",
            "2",
            "--vms",
            "3",
            "--policy",
            policy,
            "--runs",
            "100",
            "--threads",
            "1",
            "--out",
            csv.to_str().unwrap(),
            "--counterexamples",
            dir.to_str().unwrap(),
        ]);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
        std::fs::read_to_string(csv).unwrap().replace(policy, "P")
    };
    assert_eq!(explore("py-fixed"), explore("fixed"));
}

/// An allocators file in `dir` naming one Python child, `name`, whose
/// source is `script` (it speaks the handshake, then misbehaves).
fn misbehaving(dir: &Path, name: &str, script: &str, timeout: f64) -> PathBuf {
    std::fs::write(dir.join(format!("{name}.py")), script).unwrap();
    let file = dir.join("allocators.toml");
    std::fs::write(
        &file,
        format!(
            "[[allocator]]\nname = \"{name}\"\ncommand = \"python3\"\nargs = [\"{name}.py\"]\ntimeout = {timeout}\n"
        ),
    )
    .unwrap();
    file
}

const HANDSHAKE: &str = r#"
import sys, time
line = sys.stdin.readline()
print("hello gpuclaim-allocator 1 name=bad features=export", flush=True)
"#;

#[test]
fn a_child_that_dies_hangs_or_garbles_is_an_allocator_error() {
    if !python() {
        return;
    }
    let cases = [
        (
            "dies",
            "for line in sys.stdin:\n    if line.startswith('reset'):\n        print('ok outcome=ok free=3 kube=0 held=0,0 takeover=0 state=', flush=True)\n    else:\n        sys.exit(4)\n",
            "it closed its output without replying; it exited (exit status: 4)",
        ),
        (
            "hangs",
            "for line in sys.stdin:\n    if line.startswith('reset'):\n        print('ok outcome=ok free=3 kube=0 held=0,0 takeover=0 state=', flush=True)\n    else:\n        time.sleep(60)\n",
            "no reply within 0.5 s (its timeout); it was stopped",
        ),
        (
            "garbles",
            "for line in sys.stdin:\n    if line.startswith('reset'):\n        print('ok outcome=ok free=3 kube=0 held=0,0 takeover=0 state=', flush=True)\n    else:\n        print('ok outcome=maybe', flush=True)\n",
            "malformed reply `ok outcome=maybe`: outcome `maybe` is not ok or no-gpu",
        ),
    ];
    for (name, body, reason) in cases {
        let dir = tmp(name);
        let file = misbehaving(&dir, name, &format!("{HANDSHAKE}{body}"), 0.5);
        // An output left by an earlier run stays as it was.
        let csv = dir.join("runs.csv");
        std::fs::write(&csv, "earlier\n").unwrap();
        let o = gpuclaim(&[
            "--allocators",
            file.to_str().unwrap(),
            "explore",
            "--gpus",
            "2",
            "--vms",
            "2",
            "--policy",
            name,
            "--runs",
            "10",
            "--threads",
            "1",
            "--out",
            csv.to_str().unwrap(),
            "--counterexamples",
            dir.join("ce").to_str().unwrap(),
        ]);
        let stderr = text(&o.stderr);
        assert_eq!(o.status.code(), Some(3), "{name}: {stderr}");
        assert!(
            stderr.contains(&format!(
                "gpuclaim: allocator error: allocator `{name}` (python3 {name}.py): {reason}"
            )),
            "{name}: {stderr}"
        );
        // The walk's first action (seeded): the one the child failed on.
        assert!(stderr.contains("\n  at action: "), "{name}: {stderr}");
        assert!(
            stderr.contains("\n  request: apply begin "),
            "{name}: {stderr}"
        );
        assert!(
            stderr.contains("\n  trace so far: (none)"),
            "{name}: {stderr}"
        );
        assert!(
            !stderr.contains("VIOLATED") && !stderr.contains("panicked"),
            "{stderr}"
        );
        assert_eq!(
            std::fs::read_to_string(&csv).unwrap(),
            "earlier\n",
            "{name}"
        );
        let leftovers: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".tmp-"))
            .collect();
        assert!(leftovers.is_empty(), "{name}: {leftovers:?}");
    }
}

#[test]
fn the_checker_says_why_it_cannot_use_an_allocator_without_export() {
    if !python() {
        return;
    }
    let dir = tmp("noexport");
    // fixed.py, with the handshake's features cut down to none.
    let source = std::fs::read_to_string("examples/allocators/fixed.py")
        .unwrap()
        .replace("features=export,symmetric", "features=");
    std::fs::write(dir.join("plain.py"), source).unwrap();
    let file = dir.join("allocators.toml");
    std::fs::write(
        &file,
        "[[allocator]]\nname = \"plain\"\ncommand = \"python3\"\nargs = [\"plain.py\"]\n",
    )
    .unwrap();
    // Walks only go forwards from reset: explore works.
    let o = gpuclaim(&[
        "--allocators",
        file.to_str().unwrap(),
        "explore",
        "--gpus",
        "1",
        "--vms",
        "2",
        "--policy",
        "plain",
        "--runs",
        "20",
        "--out",
        dir.join("x.csv").to_str().unwrap(),
        "--counterexamples",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    // check needs export.
    let o = gpuclaim(&[
        "--allocators",
        file.to_str().unwrap(),
        "check",
        "--gpus",
        "1",
        "--vms",
        "2",
        "--policy",
        "plain",
        "--counterexamples",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("allocator `plain` cannot be brought back to a state it was in (an allocator in another process needs the `export` feature"),
        "{}",
        text(&o.stderr)
    );
    // And --symmetry needs `symmetric`.
    let o = gpuclaim(&[
        "--allocators",
        file.to_str().unwrap(),
        "check",
        "--gpus",
        "1",
        "--vms",
        "2",
        "--policy",
        "plain",
        "--symmetry",
        "--counterexamples",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("allocator `plain` does not declare its VM slots interchangeable"),
        "{}",
        text(&o.stderr)
    );
}

#[test]
fn bad_allocator_names_and_files_are_refused_clearly() {
    let dir = tmp("badfile");
    let o = gpuclaim(&["check", "--gpus", "1", "--vms", "1", "--policy", "nope"]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        text(&o.stderr),
        "gpuclaim: error: --policy: unknown allocator `nope`; known: fixed, legacy, snapshot, unmanaged-update (allocators in other processes are named in an allocators file given with --allocators)\n"
    );
    let cases = [
        ("[[allocator]]\nname = \"x\"\n", "missing field `command`"),
        (
            "[[allocator]]\nname = \"fixed\"\ncommand = \"true\"\n",
            "allocator name `fixed` is a built-in allocator's",
        ),
        (
            "[[allocator]]\nname = \"a\"\ncommand = \"true\"\ncolour = 1\n",
            "unknown field `colour`",
        ),
        (
            "[[allocator]]\nname = \"a\"\ncommand = \"true\"\ntimeout = 0\n",
            "allocator `a`: timeout 0: expected seconds above 0, at most 3600",
        ),
    ];
    for (body, message) in cases {
        let file = dir.join("allocators.toml");
        std::fs::write(&file, body).unwrap();
        let o = gpuclaim(&["--allocators", file.to_str().unwrap(), "run", "scenarios"]);
        assert_eq!(o.status.code(), Some(2), "{body}");
        let stderr = text(&o.stderr);
        assert!(
            stderr.starts_with(&format!("gpuclaim: error: {}:", file.display())),
            "{stderr}"
        );
        assert!(stderr.contains(message), "{stderr}");
    }
    // A command that does not exist fails its handshake, named.
    std::fs::write(
        dir.join("allocators.toml"),
        "[[allocator]]\nname = \"ghost\"\ncommand = \"./no-such-allocator\"\n",
    )
    .unwrap();
    let o = gpuclaim(&[
        "--allocators",
        dir.join("allocators.toml").to_str().unwrap(),
        "run",
        "scenarios",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("allocator `ghost` (./no-such-allocator): cannot start it in"),
        "{}",
        text(&o.stderr)
    );
}

#[test]
fn the_simulator_and_sweeps_run_python_allocators_like_the_builtins() {
    if !python() {
        return;
    }
    let simulate = |policy: &str| {
        let o = gpuclaim(&[
            "--allocators",
            ALLOCATORS,
            "simulate",
            "--gpus",
            "2",
            "--policy",
            policy,
            "--kube-at-hours",
            "24",
            "--seed",
            "1",
        ]);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
        text(&o.stdout).replace(policy, "P")
    };
    assert_eq!(simulate("py-legacy"), simulate("legacy"));
    assert_eq!(simulate("py-fixed"), simulate("fixed"));
    let dir = tmp("sweep");
    let config = std::fs::read_to_string("sweeps/legacy-vs-fixed-2gpu.toml")
        .unwrap()
        .replace("seeds = 30 ", "seeds = 3 ")
        .replace("horizon_hours = 720 ", "horizon_hours = 240 ");
    let sweep = |policies: &str, tag: &str| {
        let file = dir.join(format!("{tag}.toml"));
        std::fs::write(
            &file,
            config
                .replace("name = \"legacy-vs-fixed-2gpu\"", "name = \"s\"")
                .replace("policies = [\"fixed\", \"legacy\"]", policies),
        )
        .unwrap();
        let out = dir.join(tag);
        let o = gpuclaim(&[
            "--allocators",
            ALLOCATORS,
            "sweep",
            file.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
        std::fs::read_to_string(out.join("s/runs.csv")).unwrap()
    };
    let ours = sweep("policies = [\"py-fixed\", \"py-legacy\"]", "py");
    let theirs = sweep("policies = [\"fixed\", \"legacy\"]", "builtin");
    assert_eq!(ours.replace("py-", ""), theirs);
    assert!(theirs.lines().count() > 10);
}
