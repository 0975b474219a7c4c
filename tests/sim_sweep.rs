//! Sweeps: output bytes independent of the thread count, shards merged back
//! into the unsharded bytes, configuration errors with file and line, the
//! confidence interval, and the issue's "done when" on the example sweep.

use std::path::{Path, PathBuf};

use gpuclaim::Registry;
use gpuclaim::sim::stats::{Running, t975};
use gpuclaim::sim::sweep::{self, Plan, SweepError, SweepOptions};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gpuclaim-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

const SMALL: &str = r#"
name = "small"
seeds = 7
master_seed = 99
horizon_hours = 200

[grid]
gpus = [1, 2]
policies = ["fixed", "legacy", "snapshot"]
arrival_per_hour = [0.1, 0.4]
lifetime_hours = [24]
on_hours = [4]
off_hours = [3]
provisioned_probability = [0.0, 0.3]
kube_at_hours = [5]
takeover_mean_minutes = [30]
"#;

fn plan(text: &str) -> Plan {
    Plan::parse(Path::new("small.toml"), text, &Registry::builtin()).unwrap()
}

fn run(plan: &Plan, out: &Path, threads: usize, shard: Option<(u64, u64)>) -> sweep::Written {
    let options = SweepOptions {
        out: out.to_path_buf(),
        threads: Some(threads),
        shard,
    };
    sweep::run_sweep(plan, &Registry::builtin(), &options, &|_| {}).unwrap()
}

/// Every output file of a finished sweep folder, name and bytes, sorted.
fn outputs(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    files.sort();
    files
}

#[test]
fn output_bytes_do_not_depend_on_the_thread_count() {
    let p = plan(SMALL);
    assert_eq!(p.runs(), 2 * 3 * 2 * 2 * 7);
    let base = scratch("threads");
    run(&p, &base.join("t1"), 1, None);
    run(&p, &base.join("t2"), 2, None);
    run(&p, &base.join("t3"), 3, None);
    let one = outputs(&base.join("t1/small"));
    let names: Vec<&str> = one.iter().map(|(n, _)| n.as_str()).collect();
    assert!(names.contains(&"runs.csv") && names.contains(&"summary.csv"));
    #[cfg(feature = "plots")]
    assert!(names.contains(&"failures.svg") && names.contains(&"gpu_hours.svg"));
    assert_eq!(one, outputs(&base.join("t2/small")));
    assert_eq!(one, outputs(&base.join("t3/small")));
    // One header and one row per run; no temporary files left behind.
    let runs =
        String::from_utf8(one.iter().find(|(n, _)| n == "runs.csv").unwrap().1.clone()).unwrap();
    assert_eq!(runs.lines().count() as u64, p.runs() + 1);
    assert!(one.iter().all(|(n, _)| !n.starts_with('.')));
    let _ = std::fs::remove_dir_all(&base);
}

#[test]
fn shards_merge_into_the_unsharded_bytes() {
    let p = plan(SMALL);
    let base = scratch("shards");
    run(&p, &base.join("whole"), 2, None);
    for i in 0..3 {
        run(&p, &base.join("parts"), 1, Some((i, 3)));
    }
    let shard = |i: u64| base.join(format!("parts/small/shard-{i}-of-3"));
    // Any order of the shard folders.
    let merged = sweep::merge(&[shard(2), shard(0), shard(1)], &base.join("merged")).unwrap();
    assert_eq!(merged.runs, p.runs());
    assert_eq!(
        outputs(&base.join("whole/small")),
        outputs(&base.join("merged/small"))
    );

    // A missing shard, a shard given twice, and rows tampered with are refused.
    let e = sweep::merge(&[shard(0), shard(1)], &base.join("bad")).unwrap_err();
    assert!(
        e.to_string().contains("shard 2/3 of `small` is missing"),
        "{e}"
    );
    let e = sweep::merge(&[shard(0), shard(1), shard(1)], &base.join("bad")).unwrap_err();
    assert!(e.to_string().contains("given twice"), "{e}");
    let rows = shard(1).join("runs.csv");
    let text = std::fs::read_to_string(&rows).unwrap();
    let cut: String = text.lines().take(3).map(|l| format!("{l}\n")).collect();
    std::fs::write(&rows, cut).unwrap();
    let e = sweep::merge(&[shard(0), shard(1), shard(2)], &base.join("bad")).unwrap_err();
    assert!(e.to_string().contains("ends before run"), "{e}");
    let _ = std::fs::remove_dir_all(&base);
}

/// Rewrites field `column` of line `line` (1 = the header) of a CSV file.
fn edit_field(path: &Path, line: usize, column: usize, value: &str) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let mut fields: Vec<&str> = lines[line - 1].split(',').collect();
    let old = fields[column].to_string();
    fields[column] = value;
    lines[line - 1] = fields.join(",");
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
    old
}

#[test]
fn merge_refuses_rows_whose_parameters_or_seeds_disagree_with_their_point() {
    let p = plan(SMALL);
    let base = scratch("tampered");
    let fresh = |name: &str| {
        let dir = base.join(name);
        for i in 0..3 {
            run(&p, &dir, 1, Some((i, 3)));
        }
        let shard = move |i: u64| dir.join(format!("small/shard-{i}-of-3"));
        [shard(0), shard(1), shard(2)]
    };
    // 7 seeds a point: shard 1's line 3 is run 4, point 0, whose first run
    // (run 0) is shard 0's line 2.
    let shards = fresh("params");
    let column = 4 + 3; // run, point, seed_index, seed; gpus, policy, workload
    assert_eq!(
        edit_field(&shards[1].join("runs.csv"), 3, column, "0.2"),
        "0.1"
    );
    let e = sweep::merge(&shards, &base.join("out")).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "{}:3: run 4 has arrival_per_hour = `0.2`, but run 0 of point 0 ({}:2) has `0.1`; the runs of a grid point share its parameters",
            shards[1].join("runs.csv").display(),
            shards[0].join("runs.csv").display()
        )
    );
    // Run 9 (shard 0, line 5) is seed index 2 of point 1.
    let shards = fresh("seed");
    let good = edit_field(&shards[0].join("runs.csv"), 5, 3, "12345");
    let e = sweep::merge(&shards, &base.join("out")).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "{}:5: run 9 has seed `12345` for seed index 2, but point 0 has `{good}`; a seed index has the same seed at every point",
            shards[0].join("runs.csv").display()
        )
    );
    // Moving run 9 to point 2 leaves point 1 short.
    edit_field(&shards[0].join("runs.csv"), 5, 3, &good);
    edit_field(&shards[0].join("runs.csv"), 5, 1, "2");
    let e = sweep::merge(&shards, &base.join("out")).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "{}:5: run 9 starts point 2 after 2 runs of point 1, but point 0 has 7 runs",
            shards[0].join("runs.csv").display()
        )
    );
    let _ = std::fs::remove_dir_all(&base);
}

fn config_error(text: &str) -> String {
    match Plan::parse(Path::new("cfg.toml"), text, &Registry::builtin()) {
        Err(e @ SweepError::Config { .. }) => e.to_string(),
        other => panic!("expected a configuration error, got {other:?}"),
    }
}

#[test]
fn configuration_errors_name_file_line_and_what_was_expected() {
    let e =
        config_error("name = \"x\"\nseeds = 2\n[grid]\narrival_per_hour = [1]\nlifetime = [2]\n");
    assert!(
        e.starts_with("cfg.toml:5:1: unknown field `lifetime`"),
        "{e}"
    );
    let e = config_error("name = \"x\"\nseeds = 2\nhorizon = 3\n");
    assert!(
        e.starts_with("cfg.toml:3:1: unknown field `horizon`"),
        "{e}"
    );
    let e = config_error("name = \"x\"\nseeds = 2\n[grid]\npolicies = [\"fixed\", \"leggacy\"]\n");
    assert!(
        e.starts_with("cfg.toml:4:22: unknown policy `leggacy`"),
        "{e}"
    );
    let e = config_error("name = \"x\"\nseeds = 0\n");
    assert!(
        e.starts_with("cfg.toml:2:9: `seeds` must be 1 or more"),
        "{e}"
    );
    let e = config_error("name = \"x\"\nseeds = 1\n[durations]\ncreate = { normal = 3 }\n");
    assert!(
        e.starts_with("cfg.toml:4:10:") && e.contains("unknown distribution `normal`"),
        "{e}"
    );
    let e = config_error("name = \"x\"\nseeds = 1\n[grid]\nprovisioned_probability = [1.5]\n");
    assert!(
        e.starts_with("cfg.toml:4:27:") && e.contains("not a probability"),
        "{e}"
    );
    let e = config_error("name = \"x\"\nseeds = 1\n[grid]\nkube_at_hours = [\"later\"]\n");
    assert!(
        e.starts_with("cfg.toml:4:") && e.contains("\"never\""),
        "{e}"
    );
    let e = config_error("seeds = 1\n");
    assert!(e.contains("missing field `name`"), "{e}");
    let e = config_error("name = \"x\"\nseeds = 1\n[grid]\ntrace_fraction = [0.1]\n");
    assert!(
        e.starts_with("cfg.toml:4:") && e.contains("needs a [trace]"),
        "{e}"
    );
}

#[test]
fn every_empty_grid_list_is_refused_as_empty() {
    for key in [
        "gpus",
        "policies",
        "arrival_per_hour",
        "lifetime_hours",
        "on_hours",
        "off_hours",
        "provisioned_probability",
        "kube_at_hours",
        "takeover_mean_minutes",
    ] {
        let e = config_error(&format!("name = \"x\"\nseeds = 1\n[grid]\n{key} = []\n"));
        assert_eq!(
            e,
            format!(
                "cfg.toml:4:{}: grid.{key} is empty; give at least one value",
                key.len() + 4
            )
        );
    }
}

/// Numbers in a sweep file are refused in plain words, not serde's
/// (`invalid type: string "inf", expected f64`).
#[test]
fn numbers_of_the_wrong_kind_are_refused_in_plain_words() {
    for (line, message) in [
        (
            "seeds = 1.5",
            "cfg.toml:2:9: `1.5` is not a whole number; expected one without a decimal point",
        ),
        (
            "seeds = -2",
            "cfg.toml:2:9: `-2` is negative; expected a whole number, 0 or more",
        ),
        (
            "seeds = 5000000000",
            "cfg.toml:2:9: `seeds` must be 1 to 4294967295",
        ),
        (
            "seeds = \"3\"",
            "cfg.toml:2:9: \"3\" is text; expected a whole number (without quotes)",
        ),
    ] {
        assert_eq!(config_error(&format!("name = \"x\"\n{line}\n")), message);
    }
    for (line, message) in [
        (
            "master_seed = -1",
            "cfg.toml:3:15: `-1` is negative; expected a whole number, 0 or more",
        ),
        (
            "horizon_hours = \"inf\"",
            "cfg.toml:3:17: \"inf\" is text; write inf without quotes (TOML's infinity)",
        ),
        (
            "vm_slots = 2.5",
            "cfg.toml:3:12: `2.5` is not a whole number; expected one without a decimal point",
        ),
        (
            "[grid]\nlifetime_hours = [\"inf\"]",
            "cfg.toml:4:19: \"inf\" is text; write inf without quotes (TOML's infinity)",
        ),
        (
            "[grid]\non_hours = [\"8\"]",
            "cfg.toml:4:13: \"8\" is text; expected a number (without quotes)",
        ),
        (
            "[grid]\ngpus = [2.0]",
            "cfg.toml:4:9: `2.0` is not a whole number; expected one without a decimal point",
        ),
        (
            "[grid]\noff_hours = [true]",
            "cfg.toml:4:14: `true` is not a number",
        ),
        (
            "[durations]\ncreate = { exp = \"5\" }",
            "cfg.toml:4:18: \"5\" is text; expected a number (without quotes)",
        ),
        (
            "[durations]\ncreate = \"soon\"",
            "cfg.toml:4:10: \"soon\": expected minutes as a number, \"never\", or { uniform = [LOW, HIGH] }, { exp = MEAN } or { const = V }",
        ),
    ] {
        assert_eq!(
            config_error(&format!("name = \"x\"\nseeds = 1\n{line}\n")),
            message
        );
    }
    // Bare inf is TOML's infinity: VMs that live for ever.
    let p = plan("name = \"x\"\nseeds = 1\n[grid]\nlifetime_hours = [inf]\n");
    assert!(matches!(
        p.points[0].workload,
        sweep::PointWorkload::Poisson { lifetime_hours, .. } if lifetime_hours == f64::INFINITY
    ));
}

#[test]
fn durations_accept_never_as_simulate_does() {
    let p = plan("name = \"x\"\nseeds = 1\n[durations]\nstart = \"never\"\nconfigure = 0\n");
    assert_eq!(p.durations.start, gpuclaim::sim::Dist::Never);
    assert_eq!(p.durations.configure, gpuclaim::sim::Dist::Const(0.0));
}

#[test]
fn every_grid_list_refuses_a_value_listed_twice() {
    for (key, values, shown, col) in [
        ("gpus", "[2, 1, 2]", "2", 8),
        ("arrival_per_hour", "[0.1, 0.10]", "0.1", 20),
        ("lifetime_hours", "[inf, 3, inf]", "inf", 18),
        ("on_hours", "[1, 1]", "1", 12),
        ("off_hours", "[1.5, 1.5]", "1.5", 13),
        ("provisioned_probability", "[0.5, 0.5]", "0.5", 27),
        (
            "kube_at_hours",
            "[\"never\", 1, \"never\"]",
            "\"never\"",
            17,
        ),
        ("takeover_mean_minutes", "[30, 30.0]", "30", 25),
    ] {
        let e = config_error(&format!(
            "name = \"x\"\nseeds = 1\n[grid]\n{key} = {values}\n"
        ));
        let (a, b) = if values.matches(',').count() == 2 {
            (1, 3)
        } else {
            (1, 2)
        };
        assert_eq!(
            e,
            format!(
                "cfg.toml:4:{col}: grid.{key} lists {shown} twice (items {a} and {b}); give each value once, or its grid points run twice"
            )
        );
    }
    // Policies point at the second one, as scenario files do.
    let e = config_error(
        "name = \"x\"\nseeds = 1\n[grid]\npolicies = [\"fixed\", \"legacy\", \"fixed\"]\n",
    );
    assert_eq!(
        e,
        "cfg.toml:4:32: grid.policies lists `fixed` twice (items 1 and 3); give each value once, or its grid points run twice"
    );
}

#[test]
fn confidence_interval_is_students_t() {
    // 1, 2, 3, 4: mean 2.5, sample sd sqrt(5/3) = 1.29099…, t(0.975, 3) =
    // 3.18245 (tables), half-width 3.18245 * 1.29099 / 2 = 2.05426.
    let mut r = Running::default();
    for x in [1.0, 2.0, 3.0, 4.0] {
        r.push(x);
    }
    assert_eq!(r.mean(), Some(2.5));
    assert!((t975(3) - 3.182_446).abs() < 1e-5);
    assert!(
        (r.ci95().unwrap() - 2.054_26).abs() < 1e-4,
        "{:?}",
        r.ci95()
    );
    let mut one = Running::default();
    one.push(7.0);
    assert_eq!(one.ci95(), None);
}

/// The issue's "done when", on the example that answers its question.
#[test]
fn example_sweep_fixed_never_violates_and_legacy_fails_more_starts() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("sweeps/legacy-vs-fixed-2gpu.toml");
    let p = Plan::load(&path, &Registry::builtin()).unwrap();
    let base = scratch("example");
    let w = run(&p, &base, 2, None);
    assert_eq!(w.violations["fixed no-steal-after-dealloc"], 0);
    for (k, v) in &w.violations {
        if k.starts_with("fixed ") || !k.ends_with("no-steal-after-dealloc") {
            assert_eq!(*v, 0, "{k}");
        }
    }
    assert!(w.violations["legacy no-steal-after-dealloc"] > 0);
    let mut summary =
        csv::Reader::from_path(base.join("legacy-vs-fixed-2gpu/summary.csv")).unwrap();
    let header = summary.headers().unwrap().clone();
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let (policy, rate, start) = (
        col("policy"),
        col("arrival_per_hour"),
        col("start_failure_fraction.mean"),
    );
    let rows: Vec<csv::StringRecord> = summary.records().map(Result::unwrap).collect();
    let mut compared = 0;
    for f in rows.iter().filter(|r| &r[policy] == "fixed") {
        let l = rows
            .iter()
            .find(|r| &r[policy] == "legacy" && r[rate] == f[rate])
            .unwrap();
        let (fs, ls): (f64, f64) = (f[start].parse().unwrap(), l[start].parse().unwrap());
        assert!(ls > fs, "rate {}: legacy {ls} <= fixed {fs}", &f[rate]);
        compared += 1;
    }
    assert_eq!(compared, 5);
    let _ = std::fs::remove_dir_all(&base);
}

#[test]
fn trace_sweeps_read_their_trace_and_refuse_poisson_keys() {
    let dir = scratch("trace");
    std::fs::create_dir_all(dir.join("traces")).unwrap();
    std::fs::write(
        dir.join("traces/jobs.csv"),
        "job,gpu,begin,finish\nj1,1,0,5\nj2,2,1,3\nj3,0,2,4\nj4,4,2,3\nj5,1,3,9\n",
    )
    .unwrap();
    let config = dir.join("t.toml");
    let text = r#"name = "t"
seeds = 3
[grid]
gpus = [2]
policies = ["fixed", "legacy"]
kube_at_hours = [2]
[trace]
path = "traces/jobs.csv"
columns = { id = "job", gpus = "gpu", start = "begin", end = "finish", unit = "hours" }
"#;
    std::fs::write(&config, text).unwrap();
    let p = Plan::load(&config, &Registry::builtin()).unwrap();
    assert_eq!(p.runs(), 6);
    // The default horizon is the trace's last end: 9 hours.
    assert_eq!(p.horizon_hours(), 9.0);
    let w = run(&p, &dir.join("out"), 2, None);
    assert_eq!(w.runs, 6);
    let mut runs = csv::Reader::from_path(dir.join("out/t/runs.csv")).unwrap();
    let header = runs.headers().unwrap().clone();
    let col = |n: &str| header.iter().position(|h| h == n).unwrap();
    for r in runs.records() {
        let r = r.unwrap();
        // j1, j2, j5 kept; j3 CPU only; j4 too big for 2 GPUs.
        assert_eq!(&r[col("trace.kept")], "3");
        assert_eq!(&r[col("trace.zero_gpu")], "1");
        assert_eq!(&r[col("trace.too_many_gpus")], "1");
        assert_eq!(&r[col("arrivals")], "3");
        assert_eq!(&r[col("workload")], "trace");
        assert_eq!(&r[col("trace_fraction")], "1");
    }

    let with_poisson = text.replace("[grid]\n", "[grid]\narrival_per_hour = [1]\n");
    std::fs::write(&config, with_poisson).unwrap();
    let e = Plan::load(&config, &Registry::builtin())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("t.toml:4:") && e.contains("a poisson parameter"),
        "{e}"
    );
    // vm_size is the poisson VMs' size: a trace request has its own.
    std::fs::write(&config, text.replace("[grid]\n", "vm_size = 1\n[grid]\n")).unwrap();
    let e = Plan::load(&config, &Registry::builtin())
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        format!(
            "{}:3:11: `vm_size` is a poisson parameter, but this sweep replays a [trace] (each request has its own GPUs)",
            config.display()
        )
    );
    std::fs::write(
        &config,
        text.replace("[grid]\n", "[grid]\ntrace_fraction = [0.5, 1, 0.5]\n"),
    )
    .unwrap();
    let e = Plan::load(&config, &Registry::builtin())
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        format!(
            "{}:4:18: grid.trace_fraction lists 0.5 twice (items 1 and 3); give each value once, or its grid points run twice",
            config.display()
        )
    );
    let missing = text.replace("traces/jobs.csv", "traces/nope.csv");
    std::fs::write(&config, missing).unwrap();
    let e = Plan::load(&config, &Registry::builtin())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("t.toml:8:8: trace.path:") && e.contains("nope.csv"),
        "{e}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_fingerprint_covers_the_configuration_and_the_trace_rows_only() {
    let p = plan(SMALL);
    // FNV-1a of a canonical text: the same in every process (a shard run
    // elsewhere must agree), so pinned.
    assert_eq!(
        format!("{:016x}", p.fingerprint()),
        PINNED_SMALL_FINGERPRINT
    );
    assert_eq!(
        plan(&SMALL.replace("small", "other")).fingerprint(),
        p.fingerprint()
    );
    for edit in [
        SMALL.replace("seeds = 7", "seeds = 8"),
        SMALL.replace("master_seed = 99", "master_seed = 98"),
        SMALL.replace("horizon_hours = 200", "horizon_hours = 201"),
        SMALL.replace("kube_at_hours = [5]", "kube_at_hours = [6]"),
        SMALL.replace("gpus = [1, 2]", "gpus = [2, 1]"),
        SMALL.replace("[grid]", "vm_slots = 3\n[grid]"),
        SMALL.replace("[grid]", "[durations]\nstart = 4\n[grid]"),
    ] {
        assert_ne!(plan(&edit).fingerprint(), p.fingerprint(), "{edit}");
    }

    // A trace: its rows count, not where it was read from.
    let dir = scratch("fingerprint");
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    let rows = "job,gpu,begin,finish\nj1,1,0,5\nj2,2,1,3\n";
    std::fs::write(dir.join("jobs.csv"), rows).unwrap();
    std::fs::write(dir.join("sub/jobs.csv"), rows).unwrap();
    let config = |path: &str| {
        format!(
            "name = \"t\"\nseeds = 1\n[trace]\npath = \"{path}\"\ncolumns = {{ id = \"job\", gpus = \"gpu\", start = \"begin\", end = \"finish\" }}\n"
        )
    };
    let load = |path: &str| {
        Plan::parse(&dir.join("t.toml"), &config(path), &Registry::builtin())
            .unwrap()
            .fingerprint()
    };
    let here = load("jobs.csv");
    assert_eq!(load("sub/jobs.csv"), here);
    std::fs::write(
        dir.join("sub/jobs.csv"),
        rows.replace("j2,2,1,3", "j2,2,1,4"),
    )
    .unwrap();
    assert_ne!(load("sub/jobs.csv"), here);
    let _ = std::fs::remove_dir_all(&dir);
}

const PINNED_SMALL_FINGERPRINT: &str = "666f47474591b27f";
