//! `gpuclaim explore`, `check` and `replay` as a user runs them: output
//! files, byte-identical outputs for every thread count and every replay,
//! counterexample files that pass `gpuclaim run`, and clear refusals of bad
//! flags.
#![cfg(feature = "cli")]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn gpuclaim(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gpuclaim"))
        .args(args)
        .output()
        .expect("the binary runs")
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "gpuclaim-cli-explore-{}-{name}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn explore_csv_and_counterexamples() {
    let dir = tmp("explore");
    let mut csvs = Vec::new();
    for t in ["1", "2"] {
        let out = dir.join(format!("explore-{t}.csv"));
        let cx = dir.join(format!("cx-{t}"));
        let o = gpuclaim(&[
            "explore",
            "--gpus",
            "2",
            "--vms",
            "3",
            "--policy",
            "legacy",
            "--runs",
            "800",
            "--steps",
            "40",
            "--seed",
            "5",
            "--swarm",
            "--threads",
            t,
            "--out",
            s(&out),
            "--counterexamples",
            s(&cx),
        ]);
        assert_eq!(o.status.code(), Some(1), "a violation was found");
        let stdout = String::from_utf8(o.stdout).unwrap();
        assert!(
            stdout.contains("no-steal-after-dealloc: first violation of"),
            "{stdout}"
        );
        csvs.push(std::fs::read(&out).unwrap());
        // Every counterexample file passes `gpuclaim run`.
        let run = gpuclaim(&["run", s(&cx)]);
        let text = String::from_utf8(run.stdout).unwrap();
        assert_eq!(run.status.code(), Some(0), "{text}");
        assert!(text.contains(" passed, 0 failed, 0 refused"));
        let summary = std::fs::read_to_string(cx.join("explore-summary.csv")).unwrap();
        assert!(summary.starts_with("file,policy,invariant,actions,runs,first_run\n"));
        let files = std::fs::read_dir(&cx)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == "toml")
            })
            .count();
        assert_eq!(summary.lines().count(), files + 1);
    }
    assert_eq!(csvs[0], csvs[1], "same CSV bytes for --threads 1 and 2");
    // The streamed file is the library's CSV, byte for byte.
    let lib = gpuclaim::explore::Campaign::new(
        &gpuclaim::Builtin::Legacy,
        gpuclaim::Device::uniform(2, 3, 1).unwrap(),
    )
    .runs(800)
    .steps(40)
    .seed(5)
    .swarm(true)
    .run()
    .csv()
    .into_bytes();
    assert_eq!(csvs[0], lib);
    assert_eq!(String::from_utf8_lossy(&csvs[0]).lines().count(), 801);

    // fixed: nothing found, exit 0, no counterexample file.
    let cx = dir.join("cx-fixed");
    let o = gpuclaim(&[
        "explore",
        "--gpus",
        "2",
        "--vms",
        "2",
        "--policy",
        "fixed",
        "--runs",
        "300",
        "--out",
        s(&dir.join("fixed.csv")),
        "--counterexamples",
        s(&cx),
    ]);
    assert_eq!(o.status.code(), Some(0));
    let summary = std::fs::read_to_string(cx.join("explore-summary.csv")).unwrap();
    assert_eq!(summary.lines().count(), 1);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn check_reports_counts_and_writes_a_passing_counterexample() {
    let dir = tmp("check");
    let o = gpuclaim(&[
        "check",
        "--gpus",
        "1",
        "--vms",
        "1",
        "--policy",
        "fixed",
        "--threads",
        "2",
    ]);
    assert_eq!(o.status.code(), Some(0));
    let text = String::from_utf8(o.stdout).unwrap();
    assert!(text.contains("unique states: 34\n"), "{text}");
    assert!(text.contains("transitions: 67\n"));
    assert!(text.contains("max depth: 7\n"));
    assert!(text.contains("violations: none\n"));

    let o = gpuclaim(&[
        "check",
        "--gpus",
        "2",
        "--vms",
        "3",
        "--policy",
        "snapshot",
        "--symmetry",
        "--counterexamples",
        s(&dir),
    ]);
    assert_eq!(o.status.code(), Some(1));
    let text = String::from_utf8(o.stdout).unwrap();
    assert!(
        text.contains("unique states: 3418 (classes under VM symmetry)"),
        "{text}"
    );
    assert!(text.contains("VIOLATED no-double-claim"));
    let run = gpuclaim(&["run", s(&dir)]);
    assert_eq!(run.status.code(), Some(0));
    assert!(
        String::from_utf8(run.stdout)
            .unwrap()
            .contains("1 passed, 0 failed")
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn replay_prints_the_same_bytes_twice() {
    let args = [
        "replay", "--gpus", "2", "--vms", "2", "--policy", "legacy", "--steps", "30", "--seed",
        "4", "--run", "17",
    ];
    let a = gpuclaim(&args);
    let b = gpuclaim(&args);
    assert_eq!(a.status.code(), Some(0));
    assert_eq!(a.stdout, b.stdout);
    let text = String::from_utf8(a.stdout).unwrap();
    assert!(text.starts_with(
        "replay --gpus 2 --vms 2 --size 1 --policy legacy --steps 30 --seed 4 --run 17\n"
    ));
    // init line + 30 actions + header lines.
    assert_eq!(
        text.lines().filter(|l| l.starts_with("   ")).count(),
        30,
        "{text}"
    );

    let file = "scenarios/doc-1gpu-stop-then-start.toml";
    let a = gpuclaim(&["replay", file]);
    let b = gpuclaim(&["replay", file]);
    assert_eq!(a.status.code(), Some(0));
    assert_eq!(a.stdout, b.stdout);
    let text = String::from_utf8(a.stdout).unwrap();
    assert!(text.contains("under legacy:"), "{text}");
    assert!(text.contains("VIOLATES no-steal-after-dealloc"));
}

#[test]
fn bad_flags_are_refused_clearly() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["check", "--gpus", "9", "--vms", "1", "--policy", "fixed"],
            "--gpus",
        ),
        (
            &["check", "--gpus", "2", "--vms", "25", "--policy", "fixed"],
            "--vms",
        ),
        (
            &[
                "check", "--gpus", "1", "--vms", "1", "--size", "2", "--policy", "fixed",
            ],
            "asks for 2 GPUs",
        ),
        (
            &["check", "--gpus", "1", "--vms", "1", "--policy", "greedy"],
            "greedy",
        ),
        (
            &["check", "--gpus", "2", "--vms", "10", "--policy", "fixed"],
            "66 bits",
        ),
        (
            &[
                "explore", "--gpus", "1", "--vms", "1", "--policy", "fixed", "--runs", "x",
            ],
            "--runs",
        ),
        (&["replay", "--seed", "1", "--run", "2"], "--gpus"),
        (&["replay", "--seed", "1"], "--run"),
        (&["replay", "no-such-file.toml"], "no-such-file.toml"),
        (&["replay"], "<FILE|--seed <S>>"),
        (
            &[
                "replay",
                "scenarios/doc-2gpu-stop-then-start.toml",
                "--gpus",
                "1",
            ],
            "'[FILE]' cannot be used with '--gpus <G>'",
        ),
        (
            &[
                "replay",
                "scenarios/doc-2gpu-stop-then-start.toml",
                "--run",
                "3",
            ],
            "'[FILE]' cannot be used with '--run <I>'",
        ),
        (
            &[
                "replay",
                "scenarios/doc-2gpu-stop-then-start.toml",
                "--policy",
                "snapshot",
            ],
            "--policy snapshot: scenarios/doc-2gpu-stop-then-start.toml lists only fixed, legacy",
        ),
        (
            &[
                "explore",
                "--gpus",
                "1",
                "--vms",
                "1",
                "--policy",
                "fixed",
                "--steps",
                "100000001",
            ],
            "--steps",
        ),
        (
            &[
                "check",
                "--gpus",
                "1",
                "--vms",
                "1",
                "--policy",
                "fixed",
                "--threads",
                "5000",
            ],
            "1024",
        ),
        // A negative number is the flag's value, refused for what it is
        // (clap alone would call it an unexpected argument).
        (
            &["check", "--gpus", "-1", "--vms", "1", "--policy", "fixed"],
            "invalid value '-1' for '--gpus <G>': -1 is not in 1..=8",
        ),
        (
            &[
                "explore", "--gpus", "1", "--vms", "1", "--policy", "fixed", "--runs", "-5",
            ],
            "invalid value '-5' for '--runs <N>'",
        ),
    ];
    for (args, needle) in cases {
        let o = gpuclaim(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8(o.stderr).unwrap();
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}

/// Ctrl-C (SIGINT) ends a run at once, exit status 130, and removes the
/// temporary file of the CSV it was streaming: the folder holds neither a
/// half-written CSV nor a `.explore.csv.tmp-*` file.
#[cfg(unix)]
#[test]
fn an_interrupted_explore_leaves_no_file_behind() {
    let dir = tmp("interrupted");
    let out = dir.join("explore.csv");
    let child = Command::new(env!("CARGO_BIN_EXE_gpuclaim"))
        .args([
            "explore",
            "--gpus",
            "2",
            "--vms",
            "4",
            "--policy",
            "fixed",
            "--runs",
            // Far more than can finish before the signal.
            "1000000000",
            "--steps",
            "50",
            "--out",
            s(&out),
        ])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the temporary file exists (rows are being streamed).
    let started = std::time::Instant::now();
    let listing = || -> Vec<String> {
        std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    };
    while listing().is_empty() {
        assert!(
            started.elapsed().as_secs() < 120,
            "no temporary file appeared"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let tmp_name = listing().remove(0);
    assert!(tmp_name.starts_with(".explore.csv.tmp-"), "{tmp_name}");
    let killed = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(130));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("interrupted"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(listing(), Vec::<String>::new());
}

/// Where the outputs go is checked before any work: a folder given as
/// `--out`, or a `--counterexamples` folder under a file, stops the run at
/// once with exit status 2, and no output is written.
#[test]
fn output_locations_are_checked_before_the_run() {
    let dir = tmp("locations");
    std::fs::create_dir(dir.join("adir")).unwrap();
    std::fs::write(dir.join("afile"), b"").unwrap();
    let explore = |out: &Path, cx: &Path| {
        gpuclaim(&[
            "explore",
            "--gpus",
            "2",
            "--vms",
            "3",
            "--policy",
            "legacy",
            "--runs",
            "200",
            "--steps",
            "40",
            "--out",
            s(out),
            "--counterexamples",
            s(cx),
        ])
    };
    let o = explore(&dir.join("adir"), &dir.join("cx"));
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&o.stderr),
        format!(
            "gpuclaim: error: --out {}: is a folder; give the path of a file\n",
            dir.join("adir").display()
        )
    );
    let o = explore(&dir.join("e.csv"), &dir.join("afile").join("cx"));
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&o.stderr),
        format!(
            "gpuclaim: error: --counterexamples {}: {} is a file, not a folder\n",
            dir.join("afile").join("cx").display(),
            dir.join("afile").display()
        )
    );
    let o = gpuclaim(&[
        "check",
        "--gpus",
        "1",
        "--vms",
        "1",
        "--policy",
        "legacy",
        "--counterexamples",
        s(&dir.join("afile")),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(o.stdout.is_empty(), "no search ran");
    // Nothing was written, not even the folders.
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["adir", "afile"]);
    assert_eq!(std::fs::read_dir(dir.join("adir")).unwrap().count(), 0);
}

/// `sweep`, `nightly` and `run` check their outputs first too.
#[test]
fn sweep_nightly_and_run_check_their_outputs_first() {
    let dir = tmp("others");
    std::fs::write(dir.join("afile"), b"").unwrap();
    let under_file = dir.join("afile").join("out");
    let cases: [&[&str]; 3] = [
        &[
            "sweep",
            "sweeps/legacy-vs-fixed-2gpu.toml",
            "--out",
            s(&under_file),
        ],
        &["nightly", "--budget", "0", "--out", s(&under_file)],
        &["run", "scenarios", "--csv", s(&dir)],
    ];
    for args in cases {
        let o = gpuclaim(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.ends_with(&format!(
                "{} is a file, not a folder\n",
                dir.join("afile").display()
            )) || err.ends_with("is a folder; give the path of a file\n"),
            "{args:?}: {err}"
        );
        assert!(o.stdout.is_empty(), "{args:?}: nothing ran");
    }
    let names: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
    assert_eq!(names.len(), 1, "only afile");
}

/// An output that would replace an input, or another output of the same
/// command, is refused before anything runs; the input is left as it was.
#[test]
fn outputs_never_replace_inputs_or_each_other() {
    let dir = tmp("replace");
    let scenario = dir.join("ok.toml");
    let text = "name = \"ok\"\ngpus = 1\nsteps = [\"create-vm a\"]\n";
    std::fs::write(&scenario, text).unwrap();
    std::os::unix::fs::symlink(&scenario, dir.join("link.csv")).unwrap();
    let spelled = dir
        .join("..")
        .join(dir.file_name().unwrap())
        .join("ok.toml");
    for (inputs, csv) in [
        (vec![s(&scenario)], scenario.clone()),
        (vec![s(&dir)], spelled),
        (vec![s(&scenario)], dir.join("link.csv")),
    ] {
        let mut args = vec!["run"];
        args.extend(inputs);
        args.extend(["--csv", s(&csv)]);
        let o = gpuclaim(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert_eq!(
            String::from_utf8_lossy(&o.stderr),
            format!(
                "gpuclaim: error: --csv {} would replace the scenario file {}; write the CSV elsewhere\n",
                csv.display(),
                scenario.display()
            ),
            "{args:?}"
        );
        assert!(o.stdout.is_empty(), "{args:?}: nothing ran");
        assert_eq!(std::fs::read_to_string(&scenario).unwrap(), text);
    }
    let cx = dir.join("cx");
    let out = cx.join("explore-summary.csv");
    let o = gpuclaim(&[
        "explore",
        "--gpus",
        "1",
        "--vms",
        "1",
        "--policy",
        "legacy",
        "--runs",
        "10",
        "--out",
        s(&out),
        "--counterexamples",
        s(&cx),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&o.stderr),
        format!(
            "gpuclaim: error: --out {} is where the counterexamples' summary goes; write the runs elsewhere\n",
            out.display()
        )
    );
    assert!(!cx.exists(), "nothing written");
}
