//! What a user can type into `simulate` and sweep files neither panics nor
//! runs without end: values the checks accept run, and the rest are
//! refused with one message (issue 19, defects 1 and 2). Each command runs
//! with a deadline, so that a hang fails the test instead of stalling it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

mod common;
use common::bin;

fn scratch(name: &str) -> PathBuf {
    common::scratch("robust", name)
}

/// Runs `cmd` with its standard output piped, killing it (and failing)
/// if it takes more than 60 s.
fn run_bounded(cmd: &mut Command) -> Output {
    common::run_bounded(cmd.stdout(Stdio::piped()))
}

fn refused(out: &Output) -> String {
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stderr.clone()).unwrap()
}

#[test]
fn simulate_values_past_the_limits_are_refused_not_a_panic() {
    let Some(bin) = bin() else { return };
    for (flags, message) in [
        (
            &["--kube-at-hours", "1000001"][..],
            "--kube-at-hours `1000001`: expected hours from 0 to 1e6, or never",
        ),
        (
            &["--takeover-mean-minutes", "inf"],
            "--takeover-mean-minutes inf: expected a positive, finite number of minutes",
        ),
    ] {
        let out = run_bounded(Command::new(bin).arg("simulate").args(flags));
        assert_eq!(
            refused(&out),
            format!("gpuclaim: error: {message}\n"),
            "{flags:?}"
        );
    }
}

#[test]
fn simulate_periods_whose_minutes_overflow_run_as_never() {
    let Some(bin) = bin() else { return };
    for flag in ["--lifetime-hours", "--on-hours", "--off-hours"] {
        let out = run_bounded(Command::new(bin).args(["simulate", flag, "1e307"]));
        assert_eq!(
            out.status.code(),
            Some(0),
            "{flag}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // The same run as `inf`: 1e307 hours is never within any horizon.
        let inf = run_bounded(Command::new(bin).args(["simulate", flag, "inf"]));
        assert_eq!(out.stdout, inf.stdout, "{flag}");
    }
}

#[test]
fn failed_starts_retried_after_tiny_off_periods_are_refused_up_front() {
    let Some(bin) = bin() else { return };
    let out = run_bounded(Command::new(bin).args([
        "simulate",
        "--gpus",
        "1",
        "--policy",
        "legacy",
        "--slots",
        "1",
        "--arrival-per-hour",
        "10",
        "--kube-at-hours",
        "1",
        "--on-hours",
        "1",
        "--off-hours",
        "1e-9",
        "--takeover-mean-minutes",
        "1e-12",
        "--horizon-hours",
        "100",
    ]));
    assert_eq!(
        refused(&out),
        "gpuclaim: error: --off-hours 1e-9 with 1 VM slot over a horizon of 100 hours makes 1.00e11 expected off periods per run (each ends in a start, retried after a failed one), more than 1e8; use a longer off period or a shorter horizon\n"
    );
}

const TINY: &str =
    "name = \"tiny\"\nseeds = 1\nhorizon_hours = 1\n[grid]\ngpus = [1]\npolicies = [\"fixed\"]\n";

fn sweep(bin: &str, dir: &Path, grid_line: &str) -> Output {
    let cfg = dir.join("s.toml");
    std::fs::write(&cfg, format!("{TINY}{grid_line}\n")).unwrap();
    run_bounded(
        Command::new(bin)
            .arg("sweep")
            .arg(&cfg)
            .arg("--out")
            .arg(dir.join("out")),
    )
}

#[test]
fn sweep_values_past_the_limits_are_refused_not_a_panic() {
    let Some(bin) = bin() else { return };
    let dir = scratch("sweep-limits");
    let cfg = dir.join("s.toml");
    for (line, message) in [
        (
            "kube_at_hours = [inf]",
            "7:17: grid.kube_at_hours inf: expected hours from 0 to 1e6, or never",
        ),
        (
            "kube_at_hours = [1000001]",
            "7:17: grid.kube_at_hours 1000001: expected hours from 0 to 1e6, or never",
        ),
        (
            "takeover_mean_minutes = [inf]",
            "7:25: grid.takeover_mean_minutes: inf is not a positive, finite number of minutes",
        ),
    ] {
        let out = sweep(bin, &dir, line);
        assert_eq!(
            refused(&out),
            format!("gpuclaim: error: {}:{message}\n", cfg.display()),
            "{line}"
        );
    }
    for line in ["on_hours = [1e307]", "lifetime_hours = [1e307]"] {
        let out = sweep(bin, &dir, line);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{line}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_plan_built_by_hand_with_a_bad_point_is_refused_by_run_row() {
    use gpuclaim::sim::Simulator;
    use gpuclaim::sim::sweep::Plan;
    let registry = gpuclaim::Registry::builtin();
    let mut plan = Plan::parse(Path::new("tiny.toml"), TINY, &registry).unwrap();
    plan.points[0].kube_at_hours = Some(f64::INFINITY);
    let err = plan
        .run_row(0, &registry, &mut Simulator::new())
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "kube_at inf minutes: expected a time from 0 to 6e7 minutes"
    );
    plan.points[0].kube_at_hours = None;
    plan.points[0].takeover_mean_minutes = f64::INFINITY;
    let err = plan.check_point(&plan.points[0], &registry).unwrap_err();
    assert_eq!(
        err.to_string(),
        "takeover exp(mean=inf): expected finite, non-negative parameters (and low <= high)"
    );
}

#[test]
fn uniform_takes_exactly_two_numbers() {
    let registry = gpuclaim::Registry::builtin();
    let parse = |bounds: &str| {
        let text = format!("{TINY}[durations]\ncreate = {{ uniform = {bounds} }}\n");
        gpuclaim::sim::sweep::Plan::parse(Path::new("u.toml"), &text, &registry)
            .map(|p| p.fingerprint())
            .map_err(|e| e.to_string())
    };
    for (bounds, found) in [
        ("[1, 2, 3]", "3 items"),
        ("[1, 2, \"junk\", {a=1}]", "4 items"),
        ("[1]", "1 item"),
        ("[]", "0 items"),
    ] {
        assert_eq!(
            parse(bounds),
            Err(format!(
                "u.toml:8:22: uniform = [LOW, HIGH] takes two numbers; found {found}"
            )),
            "{bounds}"
        );
    }
    assert!(parse("[1, 2]").is_ok());
}

/// Sets `column` of the first row of `runs` (a shard's runs.csv) to `value`.
fn edit_first_row(runs: &Path, column: &str, value: &str) {
    let text = std::fs::read_to_string(runs).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let at = lines[0].split(',').position(|c| c == column).unwrap();
    let mut cells: Vec<&str> = lines[1].split(',').collect();
    cells[at] = value;
    lines[1] = cells.join(",");
    std::fs::write(runs, lines.join("\n") + "\n").unwrap();
}

/// FNV-1a 64, as manifests record runs.csv.
fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Sets `key = "value"` in the manifest of shard folder `shard`.
fn set_manifest(shard: &Path, key: &str, value: &str) {
    let path = shard.join("manifest.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<String> = text
        .lines()
        .map(|l| {
            if l.starts_with(&format!("{key} = ")) {
                format!("{key} = \"{value}\"")
            } else {
                l.to_string()
            }
        })
        .collect();
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
}

/// Records the digest of the shard's runs.csv as it now is.
fn redigest(shard: &Path) {
    let bytes = std::fs::read(shard.join("runs.csv")).unwrap();
    set_manifest(shard, "runs_digest", &format!("{:016x}", fnv1a64(&bytes)));
}

/// Two shards of TINY with two seeds under `dir/sh`.
fn two_shards(bin: &str, dir: &Path) -> [PathBuf; 2] {
    let cfg = dir.join("t.toml");
    std::fs::write(&cfg, TINY.replace("seeds = 1", "seeds = 2")).unwrap();
    for shard in ["0/2", "1/2"] {
        let out = run_bounded(
            Command::new(bin)
                .arg("sweep")
                .arg(&cfg)
                .arg("--out")
                .arg(dir.join("sh"))
                .args(["--shard", shard]),
        );
        assert_eq!(out.status.code(), Some(0));
    }
    [
        dir.join("sh/tiny/shard-0-of-2"),
        dir.join("sh/tiny/shard-1-of-2"),
    ]
}

#[test]
fn merge_refuses_edited_rows_odd_manifests_and_an_output_that_is_an_input() {
    let Some(bin) = bin() else { return };
    let dir = scratch("merge-integrity");
    let shards = two_shards(bin, &dir);
    let merge = |out: &Path| {
        run_bounded(
            Command::new(bin)
                .arg("merge")
                .args(&shards)
                .arg("--out")
                .arg(out),
        )
    };
    let runs0 = shards[0].join("runs.csv");
    let manifest0 = shards[0].join("manifest.toml");
    let original = std::fs::read(&runs0).unwrap();
    let manifest = std::fs::read(&manifest0).unwrap();
    // An edited metric value.
    edit_first_row(&runs0, "gpu_hours_vms", "0.5");
    let edited = fnv1a64(&std::fs::read(&runs0).unwrap());
    let recorded = fnv1a64(&original);
    assert_eq!(
        refused(&merge(&dir.join("m"))),
        format!(
            "gpuclaim: error: {}: its digest is {edited:016x}, but {} records {recorded:016x}: the rows were edited after the shard was written; run the shard again\n",
            runs0.display(),
            manifest0.display()
        )
    );
    std::fs::write(&runs0, &original).unwrap();
    // An extra column in every shard, with digests to match.
    for shard in &shards {
        let text = std::fs::read_to_string(shard.join("runs.csv")).unwrap();
        let extra: String = text.lines().map(|l| format!("{l},x\n")).collect();
        std::fs::write(shard.join("runs.csv"), extra).unwrap();
        redigest(shard);
    }
    assert_eq!(
        refused(&merge(&dir.join("m"))),
        format!(
            "gpuclaim: error: {}:1: not the runs.csv of a sweep: its metric columns are not the ones `sweep` writes\n",
            runs0.display()
        )
    );
    let fresh = two_shards(bin, &dir);
    assert_eq!(fresh, shards);
    // A fingerprint that is not one.
    set_manifest(&shards[0], "fingerprint", "x");
    assert_eq!(
        refused(&merge(&dir.join("m"))),
        format!(
            "gpuclaim: error: {}: fingerprint = \"x\": expected 16 lowercase hex digits, as `sweep --shard` writes\n",
            manifest0.display()
        )
    );
    std::fs::write(&manifest0, &manifest).unwrap();
    // The output folder is the first shard's folder.
    let coll = dir.join("coll");
    std::fs::create_dir_all(&coll).unwrap();
    std::fs::rename(&shards[0], coll.join("tiny")).unwrap();
    let inputs = [coll.join("tiny"), shards[1].clone()];
    let before = std::fs::read(coll.join("tiny/runs.csv")).unwrap();
    let out = run_bounded(
        Command::new(bin)
            .arg("merge")
            .args(&inputs)
            .arg("--out")
            .arg(&coll),
    );
    assert_eq!(
        refused(&out),
        format!(
            "gpuclaim: error: --out {} would write {} into the shard folder {} it reads; merge elsewhere\n",
            coll.display(),
            coll.join("tiny").display(),
            coll.join("tiny").display()
        )
    );
    assert_eq!(std::fs::read(coll.join("tiny/runs.csv")).unwrap(), before);
    // Untouched shards still merge.
    std::fs::rename(coll.join("tiny"), &shards[0]).unwrap();
    assert_eq!(merge(&dir.join("m")).status.code(), Some(0));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn merge_refuses_a_value_too_large_to_plot_and_replaces_nothing() {
    let Some(bin) = bin() else { return };
    let dir = scratch("merge-inf");
    let cfg = dir.join("t.toml");
    std::fs::write(&cfg, TINY.replace("seeds = 1", "seeds = 2")).unwrap();
    for shard in ["0/2", "1/2"] {
        let out = run_bounded(
            Command::new(bin)
                .arg("sweep")
                .arg(&cfg)
                .arg("--out")
                .arg(dir.join("sh"))
                .args(["--shard", shard]),
        );
        assert_eq!(out.status.code(), Some(0));
    }
    let shards = [
        dir.join("sh/tiny/shard-0-of-2"),
        dir.join("sh/tiny/shard-1-of-2"),
    ];
    let merge = || {
        run_bounded(
            Command::new(bin)
                .arg("merge")
                .args(&shards)
                .arg("--out")
                .arg(dir.join("m")),
        )
    };
    assert_eq!(merge().status.code(), Some(0));
    let files = ["runs.csv", "summary.csv", "failures.svg", "gpu_hours.svg"];
    let before: Vec<Vec<u8>> = files
        .iter()
        .map(|f| std::fs::read(dir.join("m/tiny").join(f)).unwrap())
        .collect();
    // A confidence interval of an infinite spread: plotters would never
    // end on that axis.
    // With a digest to match: the plot must refuse it by itself.
    edit_first_row(&shards[0].join("runs.csv"), "gpu_hours_vms", "1e308");
    redigest(&shards[0]);
    let out = merge();
    assert_eq!(
        refused(&out),
        "gpuclaim: error: drawing the plot `GPU-hours: fixed`: its axes would reach 1 on x and inf on y; a value in the summary is too large to plot\n"
    );
    // All or nothing: the earlier merge's files are as they were, and no
    // temporary file is left.
    for (f, bytes) in files.iter().zip(&before) {
        assert_eq!(
            &std::fs::read(dir.join("m/tiny").join(f)).unwrap(),
            bytes,
            "{f}"
        );
    }
    let left: Vec<_> = std::fs::read_dir(dir.join("m/tiny"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sweep_errors_point_at_the_right_place_in_characters() {
    let registry = gpuclaim::Registry::builtin();
    let parse = |text: &str| {
        gpuclaim::sim::sweep::Plan::parse(Path::new("s.toml"), text, &registry)
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    // Column 25 in characters (28 in bytes, as before).
    let text = "name = \"t\"\nseeds = 1\n[grid]\ngpus = [1]\n[trace]\npath = \"x.csv\"\ncolumns = { id = \"ééé\", bogus = 1 }\n";
    assert_eq!(
        parse(text),
        Err("s.toml:7:25: unknown field `bogus`, expected one of `id`, `gpus`, `start`, `end`, `unit`".into())
    );
    // The scale's error points at the scale, not at the path.
    let text = "name = \"t\"\nseeds = 1\n[grid]\ngpus = [1]\n[trace]\npath = \"x.csv\"\npreset = \"openb\"\ntime_scale = -1\n";
    assert_eq!(
        parse(text),
        Err("s.toml:8:14: trace.time_scale must be a positive number".into())
    );
    // A name too long for a folder is refused as a name, not blamed on --out.
    let long = "n".repeat(300);
    let text = TINY.replace("name = \"tiny\"", &format!("name = \"{long}\""));
    assert_eq!(
        parse(&text),
        Err("s.toml:1:8: `name` names the output folder: 1 to 100 letters, digits, `-`, `_` or `.`, not starting with `.`".into())
    );
    let ok = TINY.replace(
        "name = \"tiny\"",
        &format!("name = \"{}\"", "n".repeat(100)),
    );
    assert_eq!(parse(&ok), Ok(()));
}

#[test]
fn a_sweep_that_cannot_write_one_file_replaces_none() {
    let Some(bin) = bin() else { return };
    let dir = scratch("sweep-set");
    let cfg = dir.join("t.toml");
    std::fs::write(&cfg, TINY).unwrap();
    let sweep = || {
        run_bounded(
            Command::new(bin)
                .arg("sweep")
                .arg(&cfg)
                .arg("--out")
                .arg(dir.join("out")),
        )
    };
    assert_eq!(sweep().status.code(), Some(0));
    let out_dir = dir.join("out/tiny");
    let runs = std::fs::read(out_dir.join("runs.csv")).unwrap();
    let summary = std::fs::read(out_dir.join("summary.csv")).unwrap();
    // The last file of the set cannot be written (a folder is in its way,
    // as a full disk would stop it): the two before it must not change.
    std::fs::write(&cfg, TINY.replace("seeds = 1", "seeds = 2")).unwrap();
    std::fs::remove_file(out_dir.join("gpu_hours.svg")).unwrap();
    std::fs::create_dir(out_dir.join("gpu_hours.svg")).unwrap();
    let out = sweep();
    assert_eq!(out.status.code(), Some(2));
    // Found before the runs, by checking every destination of the set.
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err.lines().last(),
        Some(
            format!(
                "gpuclaim: error: running {}: {}: is a folder; give the path of a file",
                cfg.display(),
                out_dir.join("gpu_hours.svg").display()
            )
            .as_str()
        ),
        "{err}"
    );
    assert_eq!(std::fs::read(out_dir.join("runs.csv")).unwrap(), runs);
    assert_eq!(std::fs::read(out_dir.join("summary.csv")).unwrap(), summary);
    let left: Vec<_> = std::fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_sweep_hears_stop_between_small_batches_and_writes_nothing() {
    use gpuclaim::sim::sweep::{Plan, SweepError, SweepOptions, run_sweep_until};
    let registry = gpuclaim::Registry::builtin();
    let plan = Plan::parse(
        Path::new("t.toml"),
        &TINY.replace("seeds = 1", "seeds = 100000"),
        &registry,
    )
    .unwrap();
    let dir = scratch("sweep-stop");
    let options = SweepOptions {
        out: dir.clone(),
        threads: Some(2),
        shard: None,
    };
    let asked = std::cell::Cell::new(0);
    // Yes from the second question on: after the first batch, whose size
    // starts at one run per thread (not 4,096 runs, which could take
    // minutes of a slow plan before an interrupt is heard).
    let stop = || {
        asked.set(asked.get() + 1);
        asked.get() > 1
    };
    let result = run_sweep_until(&plan, &registry, &options, &|_| {}, &stop);
    match result {
        Err(SweepError::Interrupted { done, runs }) => assert_eq!((done, runs), (2, 100000)),
        other => panic!("expected an interruption, got {other:?}"),
    }
    assert_eq!(
        SweepError::Interrupted {
            done: 2,
            runs: 100000
        }
        .to_string(),
        "interrupted after 2 of 100000 runs; no output was written"
    );
    let tiny = dir.join("tiny");
    let files: Vec<_> = std::fs::read_dir(&tiny)
        .map(|d| d.map(|e| e.unwrap().file_name()).collect())
        .unwrap_or_default();
    assert!(files.is_empty(), "{files:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_grid_past_a_million_points_is_refused_before_it_is_made() {
    let registry = gpuclaim::Registry::builtin();
    let list = |n: usize| {
        let items: Vec<String> = (1..=n).map(|i| i.to_string()).collect();
        format!("[{}]", items.join(", "))
    };
    // 5 lists of 160: 1.0e11 points, from about 3 KB of text.
    let text = format!(
        "{TINY}arrival_per_hour = {0}\nlifetime_hours = {0}\non_hours = {0}\noff_hours = {0}\ntakeover_mean_minutes = {0}\n",
        list(160)
    );
    let err = gpuclaim::sim::sweep::Plan::parse(Path::new("g.toml"), &text, &registry)
        .map(|_| ())
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "g.toml: the grid has 104857600000 points (the product of its lists' lengths), more than 1000000; split the sweep or shorten its lists"
    );
    // At the limit the grid is made.
    let text = format!(
        "{TINY}arrival_per_hour = {0}\nlifetime_hours = {0}\non_hours = {0}\n",
        list(100)
    );
    let plan = gpuclaim::sim::sweep::Plan::parse(Path::new("g.toml"), &text, &registry).unwrap();
    assert_eq!(plan.points.len(), 1_000_000);
}

#[test]
fn runs_of_a_whole_trace_share_one_selection() {
    use gpuclaim::sim::sweep::TraceSpec;
    use gpuclaim::sim::tracefile::{Columns, TraceFile};
    use std::sync::Arc;
    let csv = "name,num_gpu,creation_time,deletion_time\na,1,0,60\nb,2,30,90\nc,0,0,10\nd,3,0,10\n";
    let columns = Columns::preset("openb").unwrap();
    let file = TraceFile::parse(Path::new("t.csv"), csv.as_bytes(), &columns, false).unwrap();
    let spec = TraceSpec::new(Arc::new(file), 1.0);
    // A fraction of 1 keeps the same requests whatever the seed: one copy
    // for every run and worker, per device size.
    let (a, b) = (spec.select(2, 1.0, 1), spec.select(2, 1.0, 99));
    assert!(Arc::ptr_eq(&a, &b));
    assert_eq!((a.kept(), a.zero_gpu, a.too_many_gpus), (2, 1, 1));
    let one = spec.select(1, 1.0, 1);
    assert!(!Arc::ptr_eq(&a, &one));
    assert_eq!(one.kept(), 1);
    // A share depends on the seed: made per run.
    assert!(!Arc::ptr_eq(
        &spec.select(2, 0.5, 1),
        &spec.select(2, 0.5, 1)
    ));
}

#[test]
fn a_run_past_its_bound_on_events_is_stopped_with_a_message() {
    use gpuclaim::Builtin;
    use gpuclaim::sim::{Dist, Durations, Poisson, SimConfig, SimError, Simulator, Workload};
    let config = SimConfig {
        gpus: 2,
        vm_slots: 2,
        horizon: 600.0,
        kube_at: Some(0.0),
        takeover: Dist::Const(1.0),
        durations: Durations::ASSUMED,
        workload: Workload::Poisson(Poisson::with_rates(6.0, 1.0, 0.5, 0.5, 0.0)),
    };
    let whole = Simulator::new().run(&Builtin::Legacy, &config, 7).unwrap();
    assert!(whole.events() > 10, "{}", whole.events());
    let stopped = Simulator::with_max_events(10).run(&Builtin::Legacy, &config, 7);
    assert_eq!(stopped, Err(SimError::TooManyEvents { most: 10 }));
    assert_eq!(
        stopped.unwrap_err().to_string(),
        "the run processed more than 10 events and was stopped; an allocator's internal event that keeps enabling itself, or periods too short for the horizon, make a run that does not end"
    );
    // The bound counts events, not what they did: the same run under a
    // bound it stays within gives the same counters.
    let within = Simulator::with_max_events(whole.events() * 10)
        .run(&Builtin::Legacy, &config, 7)
        .unwrap();
    assert_eq!(within, whole);
}
