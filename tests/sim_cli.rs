//! The simulate / sweep / merge commands as a user runs them. Skipped when
//! the binary is not built (`--no-default-features`).

use std::path::{Path, PathBuf};
use std::process::Command;

fn bin() -> Option<&'static str> {
    let b = option_env!("CARGO_BIN_EXE_gpuclaim");
    if b.is_none() {
        eprintln!("SKIPPED: the gpuclaim binary is not built (feature `cli` off)");
    }
    b
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gpuclaim-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn simulate_prints_every_counter() {
    let Some(bin) = bin() else { return };
    let out = Command::new(bin)
        .args([
            "simulate", "--gpus", "2", "--policy", "fixed", "--seed", "4",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    for name in [
        "arrivals",
        "no_slot",
        "requests.start-vm.no-gpu",
        "end_steps",
        "internal_events",
        "events",
        "vm_hours_running",
        "gpu_hours_kube",
        "gpu_hours_idle",
        "violations.no-steal-after-dealloc",
    ] {
        assert!(
            text.lines().any(|l| l.starts_with(&format!("{name} "))),
            "{name} missing:\n{text}"
        );
    }
    assert!(
        text.contains("violations.no-double-claim         0"),
        "{text}"
    );
}

#[test]
fn simulate_openb_prints_kept_and_skipped() {
    let Some(bin) = bin() else { return };
    let trace =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/traces/openb_pod_list_default.csv");
    if !trace.exists() {
        eprintln!("SKIPPED: {} is absent", trace.display());
        return;
    }
    let out = Command::new(bin)
        .args(["simulate", "--preset", "openb", "--trace"])
        .arg(&trace)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("kept 7005 requests; skipped 1147: 0 not sampled, 1088 zero-gpu (CPU only), 59 too-many-gpus (more than the device has), 0 bad rows"),
        "{text}"
    );
}

#[test]
fn bad_input_is_refused_with_file_and_line() {
    let Some(bin) = bin() else { return };
    let dir = scratch("bad");
    let cfg = dir.join("bad.toml");
    std::fs::write(
        &cfg,
        "name = \"b\"\nseeds = 2\n[grid]\narival_per_hour = [1]\n",
    )
    .unwrap();
    let out = Command::new(bin).arg("sweep").arg(&cfg).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("bad.toml:4:1: unknown field `arival_per_hour`"),
        "{err}"
    );

    let out = Command::new(bin)
        .args(["sweep", "x.toml", "--shard", "3/3"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("expected 0 <= I < N"));

    let trace = dir.join("t.csv");
    std::fs::write(
        &trace,
        "name,num_gpu,creation_time,deletion_time\na,1,0,5\nb,1,zero,5\n",
    )
    .unwrap();
    let out = Command::new(bin)
        .args(["simulate", "--preset", "openb", "--trace"])
        .arg(&trace)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("t.csv:3: `creation_time` is `zero`"), "{err}");
    let out = Command::new(bin)
        .args(["simulate", "--preset", "openb", "--skip-bad", "--trace"])
        .arg(&trace)
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    // Two data rows: one bad, one used; "1 rows read" counted only the used.
    assert!(
        text.starts_with(&format!(
            "trace {}: 2 rows read, 1 skipped as bad, 1 used\n",
            trace.display()
        )),
        "{text}"
    );
    assert!(
        text.contains("kept 1 request; skipped 1:") && text.contains(", 1 bad row\n"),
        "{text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A sweep of one run that takes milliseconds.
const TINY: &str =
    "name = \"tiny\"\nseeds = 1\nhorizon_hours = 1\n[grid]\ngpus = [1]\npolicies = [\"fixed\"]\n";

#[test]
fn sweep_threads_are_bounded_and_zero_means_one_per_core() {
    let Some(bin) = bin() else { return };
    let dir = scratch("threads");
    let cfg = dir.join("tiny.toml");
    std::fs::write(&cfg, TINY).unwrap();
    for threads in ["0", "1024"] {
        let out = Command::new(bin)
            .arg("sweep")
            .arg(&cfg)
            .args(["--threads", threads, "--out"])
            .arg(&dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "--threads {threads}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(text.starts_with("1 run written to "), "{text}");
    }
    // The same bound and wording as explore and check: thousands of threads
    // for a sweep of one run is a typo, not a wish.
    let out = Command::new(bin)
        .arg("sweep")
        .arg(&cfg)
        .args(["--threads", "100000"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains(
            "invalid value '100000' for '--threads <T>': 100000 threads is more than 1024"
        ),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The whole of stderr of a command that must fail with status 2.
fn refused(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stderr).unwrap()
}

#[test]
fn io_and_csv_errors_are_printed_once_with_file_and_line() {
    let Some(bin) = bin() else { return };
    let dir = scratch("once");
    let missing = dir.join("missing.toml");
    // The OS's own wording, whatever the platform says.
    let reason = std::fs::read(&missing).unwrap_err().to_string();
    let err = refused(Command::new(bin).arg("sweep").arg(&missing));
    assert_eq!(
        err,
        format!("gpuclaim: error: {}: {reason}\n", missing.display())
    );
    let missing_csv = dir.join("missing.csv");
    let err = refused(
        Command::new(bin)
            .args(["simulate", "--preset", "openb", "--trace"])
            .arg(&missing_csv),
    );
    assert_eq!(
        err,
        format!("gpuclaim: error: {}: {reason}\n", missing_csv.display())
    );
    let not_utf8 = dir.join("latin1.toml");
    // Where the first bad byte is, as scenario files say it.
    std::fs::write(&not_utf8, b"seeds = 1\nname = \"caf\xe9\"\n").unwrap();
    let err = refused(Command::new(bin).arg("sweep").arg(&not_utf8));
    assert_eq!(
        err,
        format!(
            "gpuclaim: error: {}:2:12: not valid UTF-8: byte 0xE9 (byte offset 21); a sweep file is UTF-8 text\n",
            not_utf8.display()
        )
    );
    std::fs::write(&not_utf8, b"name = \"caf\xc3").unwrap();
    let err = refused(Command::new(bin).arg("sweep").arg(&not_utf8));
    assert_eq!(
        err,
        format!(
            "gpuclaim: error: {}:1:12: not valid UTF-8: the file ends inside a character (byte offset 11); a sweep file is UTF-8 text\n",
            not_utf8.display()
        )
    );

    // A shard whose third line lost its last field.
    let cfg = dir.join("tiny.toml");
    std::fs::write(&cfg, TINY.replace("seeds = 1", "seeds = 3")).unwrap();
    for shard in ["0/2", "1/2"] {
        let out = Command::new(bin)
            .arg("sweep")
            .arg(&cfg)
            .args(["--shard", shard, "--out"])
            .arg(&dir)
            .output()
            .unwrap();
        assert!(out.status.success());
    }
    let shard0 = dir.join("tiny/shard-0-of-2");
    let runs = shard0.join("runs.csv");
    let text = std::fs::read_to_string(&runs).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let columns = lines[0].split(',').count();
    let cut = lines[2].rfind(',').unwrap();
    lines[2].truncate(cut);
    std::fs::write(&runs, lines.join("\n") + "\n").unwrap();
    let err = refused(
        Command::new(bin)
            .arg("merge")
            .arg(&shard0)
            .arg(dir.join("tiny/shard-1-of-2"))
            .arg("--out")
            .arg(dir.join("merged")),
    );
    assert_eq!(
        err,
        format!(
            "gpuclaim: error: {}:3: {} fields, but the rows before it have {columns}\n",
            runs.display(),
            columns - 1
        )
    );
    // A shard argument that is a file, or nothing at all.
    for (arg, what) in [
        (runs.clone(), "not a folder"),
        (dir.join("gone"), "no such folder"),
    ] {
        let err = refused(
            Command::new(bin)
                .arg("merge")
                .arg(&arg)
                .arg("--out")
                .arg(dir.join("merged")),
        );
        assert_eq!(
            err,
            format!(
                "gpuclaim: error: {}: {what}; expected a shard's folder (with runs.csv and manifest.toml), as `sweep --shard I/N` writes\n",
                arg.display()
            )
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn trace_flags_need_a_trace_and_poisson_flags_refuse_one() {
    let Some(bin) = bin() else { return };
    // Each of these used to be accepted without --trace and ignored.
    for flags in [
        &["--fraction", "0.5"][..],
        &["--preset", "openb"],
        &["--columns", "id,gpus,start,end"],
        &["--unit", "minutes"],
        &["--time-scale", "2"],
        &["--skip-bad"],
    ] {
        let err = refused(Command::new(bin).arg("simulate").args(flags));
        assert!(
            err.starts_with(
                "error: the following required arguments were not provided:\n  --trace <FILE>\n"
            ),
            "{flags:?}: {err}"
        );
    }
    let trace = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    for flags in [
        &["--size", "1"][..],
        &["--arrival-per-hour", "3"],
        &["--lifetime-hours", "1"],
        &["--on-hours", "1"],
        &["--off-hours", "1"],
        &["--provisioned-probability", "0.5"],
    ] {
        let err = refused(
            Command::new(bin)
                .args(["simulate", "--preset", "openb", "--trace"])
                .arg(&trace)
                .args(flags),
        );
        assert!(
            err.starts_with("error: the argument '--trace <FILE>' cannot be used with '"),
            "{flags:?}: {err}"
        );
    }
    // The openb preset fixes the unit; --unit is for --columns.
    let err = refused(
        Command::new(bin)
            .args([
                "simulate", "--preset", "openb", "--unit", "hours", "--trace",
            ])
            .arg(&trace),
    );
    assert!(
        err.starts_with(
            "error: the argument '--preset <NAME>' cannot be used with '--unit <UNIT>'"
        ),
        "{err}"
    );
}

#[test]
fn duration_help_documents_never_and_never_is_accepted() {
    let Some(bin) = bin() else { return };
    let out = Command::new(bin)
        .args(["simulate", "--help"])
        .output()
        .unwrap();
    // clap wraps the help; compare the words.
    let help = String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        help.contains("create-vm duration, minutes: N, uniform:LOW:HIGH, exp:MEAN, or never (the operation never ends; its end step is not processed)"),
        "{help}"
    );
    let out = Command::new(bin)
        .args([
            "simulate",
            "--start-minutes",
            "never",
            "--horizon-hours",
            "48",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn zero_vm_slots_are_refused_by_simulate_as_by_sweep() {
    let Some(bin) = bin() else { return };
    for slots in ["0", "25"] {
        let err = refused(Command::new(bin).args(["simulate", "--slots", slots]));
        assert_eq!(err, "gpuclaim: error: --slots must be 1 to 24\n");
    }
    let dir = scratch("slots");
    let cfg = dir.join("slots.toml");
    std::fs::write(&cfg, TINY.replace("[grid]", "vm_slots = 0\n[grid]")).unwrap();
    let err = refused(Command::new(bin).arg("sweep").arg(&cfg));
    assert_eq!(
        err,
        format!(
            "gpuclaim: error: {}:4:12: `vm_slots` must be 1 to 24\n",
            cfg.display()
        )
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn absurd_sizes_are_refused_before_running() {
    let Some(bin) = bin() else { return };
    // The trace first: before the limits it was accepted at once (the
    // others ran without end).
    let dir = scratch("absurd");
    let trace = dir.join("far.csv");
    std::fs::write(
        &trace,
        "name,num_gpu,creation_time,deletion_time\na,1,0,10\nb,1,5,1e300\n",
    )
    .unwrap();
    let err = refused(
        Command::new(bin)
            .args(["simulate", "--preset", "openb", "--trace"])
            .arg(&trace),
    );
    assert_eq!(
        err,
        format!(
            "gpuclaim: error: {}:3: `deletion_time` is `1e300`; expected a time of 0 to 3600000000 (1e6 hours in the trace's unit)\n",
            trace.display()
        )
    );
    // At the limit a trace is read; scaled past it, it needs a horizon.
    std::fs::write(
        &trace,
        "name,num_gpu,creation_time,deletion_time\na,1,0,3600000000\n",
    )
    .unwrap();
    let err = refused(
        Command::new(bin)
            .args([
                "simulate",
                "--preset",
                "openb",
                "--time-scale",
                "2",
                "--trace",
            ])
            .arg(&trace),
    );
    assert_eq!(
        err,
        "gpuclaim: error: --time-scale: the trace's last end times 2 is 2e6 hours, more than 1e6; set a horizon or a smaller scale\n"
    );
    let out = Command::new(bin)
        .args([
            "simulate",
            "--preset",
            "openb",
            "--time-scale",
            "2",
            "--horizon-hours",
            "1",
            "--trace",
        ])
        .arg(&trace)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    for (flags, message) in [
        (
            &["--horizon-hours", "1e300"][..],
            "--horizon-hours must be a positive number of at most 1e6 (114 years)",
        ),
        (
            &["--arrival-per-hour", "1e12"],
            "--arrival-per-hour must be a rate of 0 to 1e6 per hour",
        ),
        // A negative number is the flag's value, not an unknown argument.
        (
            &["--arrival-per-hour", "-3"],
            "--arrival-per-hour must be a rate of 0 to 1e6 per hour",
        ),
        (
            &["--arrival-per-hour", "1e6"],
            "--arrival-per-hour 1000000 over a horizon of 720 hours is 7.2e8 expected arrivals per run, more than 1e8",
        ),
        // Periods this short kept the clock at one instant: it never ended.
        (
            &[
                "--start-minutes",
                "0",
                "--stop-minutes",
                "0",
                "--on-hours",
                "1e-300",
                "--off-hours",
                "1e-300",
            ],
            "--off-hours 1e-300 with 24 VM slots over a horizon of 720 hours makes 1.73e304 expected off periods per run (each ends in a start, retried after a failed one), more than 1e8; use a longer off period or a shorter horizon",
        ),
        (
            &[
                "--slots",
                "2",
                "--on-hours",
                "0.000001",
                "--off-hours",
                "0.000001",
            ],
            "--off-hours 1e-6 with 2 VM slots over a horizon of 720 hours makes 1.44e9 expected off periods per run (each ends in a start, retried after a failed one), more than 1e8; use a longer off period or a shorter horizon",
        ),
    ] {
        let err = refused(Command::new(bin).arg("simulate").args(flags));
        assert_eq!(err, format!("gpuclaim: error: {message}\n"), "{flags:?}");
    }
    let cfg = dir.join("far.toml");
    std::fs::write(
        &cfg,
        TINY.replace("horizon_hours = 1", "horizon_hours = 1e300"),
    )
    .unwrap();
    let err = refused(Command::new(bin).arg("sweep").arg(&cfg));
    assert_eq!(
        err,
        format!(
            "gpuclaim: error: {}:3:17: `horizon_hours` must be a positive number of at most 1e6 (114 years)\n",
            cfg.display()
        )
    );
    std::fs::write(
        &cfg,
        TINY.replace("horizon_hours = 1", "horizon_hours = 1e6")
            + "arrival_per_hour = [0.1, 1000]\n",
    )
    .unwrap();
    let err = refused(Command::new(bin).arg("sweep").arg(&cfg));
    assert_eq!(
        err,
        format!(
            "gpuclaim: error: {}:7:20: grid.arrival_per_hour 1000 over a horizon of 1000000 hours is 1e9 expected arrivals per run, more than 1e8\n",
            cfg.display()
        )
    );
    // Every value of the grid runs: the shortest off period decides.
    std::fs::write(
        &cfg,
        TINY.to_string() + "on_hours = [8, 1e-9]\noff_hours = [1e-9, 4]\n",
    )
    .unwrap();
    let err = refused(Command::new(bin).arg("sweep").arg(&cfg));
    assert_eq!(
        err,
        format!(
            "gpuclaim: error: {}:8:13: the shortest grid.off_hours 1e-9 with 24 VM slots over a horizon of 1 hours makes 2.40e10 expected off periods per run (each ends in a start, retried after a failed one), more than 1e8; use a longer off period or a shorter horizon\n",
            cfg.display()
        )
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A duration flag that is not a distribution of minutes says which form
/// it expected, or what is wrong with the numbers.
#[test]
fn bad_durations_say_what_was_expected() {
    let Some(bin) = bin() else { return };
    for (value, message) in [
        (
            "uniform:5:1",
            "`uniform:5:1`: LOW must not be more than HIGH",
        ),
        ("exp:-1", "`exp:-1`: minutes must be finite and 0 or more"),
        (
            "uniform:-1:1",
            "`uniform:-1:1`: minutes must be finite and 0 or more",
        ),
        ("fast", "`fast` is not a number of minutes"),
        (
            "normal:5:1",
            "`normal:5:1`: expected N, uniform:LOW:HIGH, exp:MEAN or never",
        ),
    ] {
        let err = refused(Command::new(bin).args(["simulate", "--create-minutes", value]));
        assert_eq!(
            err,
            format!(
                "error: invalid value '{value}' for '--create-minutes <CREATE_MINUTES>': {message}\n\nFor more information, try '--help'.\n"
            ),
            "{value}"
        );
    }
}

/// Runs `gpuclaim sweep CFG --out OUT --shard I/N` for each shard, which
/// must succeed.
fn sweep_shards(bin: &str, cfg: &Path, out: &Path, shards: &[&str]) {
    for shard in shards {
        let out = Command::new(bin)
            .arg("sweep")
            .arg(cfg)
            .args(["--shard", shard, "--out"])
            .arg(out)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{shard}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// `gpuclaim merge SHARDS... --out OUT`.
fn merge(bin: &str, shards: &[PathBuf], out: &Path) -> Command {
    let mut cmd = Command::new(bin);
    cmd.arg("merge").args(shards).arg("--out").arg(out);
    cmd
}

#[test]
fn shard_counts_are_bounded_by_the_runs_and_manifests_checked_before_use() {
    let Some(bin) = bin() else { return };
    let dir = scratch("shardcount");
    let cfg = dir.join("tiny.toml");
    std::fs::write(&cfg, TINY.replace("seeds = 1", "seeds = 2")).unwrap();
    // 2 runs: a third shard would be empty, and N = 2^32 made merge ask for
    // 96 GiB.
    for n in ["3", "4294967296"] {
        let err = refused(
            Command::new(bin)
                .arg("sweep")
                .arg(&cfg)
                .args(["--shard", &format!("0/{n}"), "--out"])
                .arg(&dir),
        );
        assert_eq!(
            err,
            format!(
                "gpuclaim: error: --shard 0/{n}: N is more than the sweep's 2 runs; use at most 2 shards\n"
            )
        );
    }
    sweep_shards(bin, &cfg, &dir, &["0/2", "1/2"]);
    let shards = [dir.join("tiny/shard-0-of-2"), dir.join("tiny/shard-1-of-2")];
    let manifests = shards.clone().map(|s| s.join("manifest.toml"));
    let original = std::fs::read_to_string(&manifests[0]).unwrap();
    assert!(original.contains("\nshards = 2\n"), "{original}");
    for (edit, message) in [
        (
            original.replace("shards = 2", "shards = 18446744073709551615"),
            "shards = 18446744073709551615, but a sweep of 2 runs has 1 to 2 shards",
        ),
        (
            original.replace("shards = 2", "shards = 0"),
            "shards = 0, but a sweep of 2 runs has 1 to 2 shards",
        ),
        (
            original.replace("shard = 0", "shard = 2"),
            "shard = 2, but shards = 2: expected 0 to 1",
        ),
    ] {
        std::fs::write(&manifests[0], &edit).unwrap();
        let err = refused(&mut merge(bin, &shards, &dir.join("merged")));
        assert_eq!(
            err,
            format!("gpuclaim: error: {}: {message}\n", manifests[0].display()),
            "{edit}"
        );
    }
    std::fs::write(&manifests[0], &original).unwrap();

    // A name that leaves --out, in both manifests, is refused as sweep
    // refuses it, and nothing is written.
    let outside = dir.join("outside");
    for name in [
        "../../outside/evil".to_string(),
        outside.join("abs").display().to_string(),
    ] {
        for m in &manifests {
            let text = std::fs::read_to_string(m).unwrap();
            let start = text.find("name = ").unwrap();
            let end = start + text[start..].find('\n').unwrap();
            let edited = format!("{}name = {name:?}{}", &text[..start], &text[end..]);
            std::fs::write(m, edited).unwrap();
        }
        let err = refused(&mut merge(bin, &shards, &dir.join("merged/a")));
        assert_eq!(
            err,
            format!(
                "gpuclaim: error: {}: name = {name:?}: `name` names the output folder: 1 to 100 letters, digits, `-`, `_` or `.`, not starting with `.`\n",
                manifests[0].display()
            )
        );
        assert!(!outside.exists());
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The `fingerprint` a shard's manifest records.
fn fingerprint_of(shard: &Path) -> String {
    let text = std::fs::read_to_string(shard.join("manifest.toml")).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("fingerprint = "))
        .unwrap_or_else(|| panic!("no fingerprint in {text}"));
    line["fingerprint = ".len()..].trim_matches('"').to_string()
}

#[test]
fn merge_refuses_shards_of_different_configurations() {
    let Some(bin) = bin() else { return };
    let dir = scratch("fingerprint");
    let cfg = dir.join("tiny.toml");
    let text = TINY.replace("seeds = 1", "seeds = 2");
    std::fs::write(&cfg, &text).unwrap();
    sweep_shards(bin, &cfg, &dir.join("a"), &["0/2", "1/2"]);
    let a0 = dir.join("a/tiny/shard-0-of-2");
    let merged = Command::new(bin)
        .arg("merge")
        .arg(&a0)
        .arg(dir.join("a/tiny/shard-1-of-2"))
        .arg("--out")
        .arg(dir.join("merged"))
        .output()
        .unwrap();
    assert!(merged.status.success());
    // Same name, runs and shards; another master seed, or another horizon:
    // the rows would mix two sweeps' results.
    for (i, edit) in [
        text.replace("seeds = 2\n", "seeds = 2\nmaster_seed = 5\n"),
        text.replace("horizon_hours = 1", "horizon_hours = 2"),
    ]
    .iter()
    .enumerate()
    {
        std::fs::write(&cfg, edit).unwrap();
        let out = dir.join(format!("b{i}"));
        sweep_shards(bin, &cfg, &out, &["1/2"]);
        let b1 = out.join("tiny/shard-1-of-2");
        let err = refused(&mut merge(bin, &[a0.clone(), b1.clone()], &dir.join("bad")));
        assert_eq!(
            err,
            format!(
                "gpuclaim: error: {} and {}: shards of `tiny` run with different configurations (fingerprints {} and {}); every shard must come from the same sweep file and trace\n",
                a0.display(),
                b1.display(),
                fingerprint_of(&a0),
                fingerprint_of(&b1)
            )
        );
        assert!(!dir.join("bad").exists());
    }
    // A manifest of an older version, without a fingerprint.
    let manifest = a0.join("manifest.toml");
    let old: String = std::fs::read_to_string(&manifest)
        .unwrap()
        .lines()
        .filter(|l| !l.contains("fingerprint"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&manifest, old).unwrap();
    let err = refused(&mut merge(
        bin,
        &[a0.clone(), dir.join("a/tiny/shard-1-of-2")],
        &dir.join("bad"),
    ));
    assert_eq!(
        err,
        format!(
            "gpuclaim: error: {}: no `fingerprint` (the hash of the sweep's configuration): written by an older gpuclaim; run the shard again\n",
            manifest.display()
        )
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn trace_errors_name_the_physical_line_and_unclosed_quotes() {
    let Some(bin) = bin() else { return };
    let dir = scratch("tracelines");
    let trace = dir.join("t.csv");
    let simulate = |flags: &[&str]| {
        let mut cmd = Command::new(bin);
        cmd.args(["simulate", "--preset", "openb"])
            .args(flags)
            .arg("--trace")
            .arg(&trace);
        cmd
    };
    let header = "name,num_gpu,creation_time,deletion_time";
    // Blank lines before a bad row: csv's record position is where reading
    // began (line 2, or line 1 at a CRLF header's `\n`), not the row's line.
    for eol in ["\n", "\r\n"] {
        std::fs::write(&trace, [header, "", "", "", "b,1,zero,5", ""].join(eol)).unwrap();
        let err = refused(&mut simulate(&[]));
        assert_eq!(
            err,
            format!(
                "gpuclaim: error: {}:5: `creation_time` is `zero`; expected a time (a number, in the trace's unit)\n",
                trace.display()
            ),
            "{eol:?}"
        );
        // --skip-bad lists the same lines.
        std::fs::write(
            &trace,
            ["", header, "a,1,0,5", "", "b,1,zero,5", "", "", "c,x,0,5"].join(eol),
        )
        .unwrap();
        let out = simulate(&["--skip-bad"]).output().unwrap();
        assert!(out.status.success());
        let text = String::from_utf8(out.stdout).unwrap();
        let shown = trace.display();
        assert!(
            text.contains(&format!(
                "  bad row: {shown}:5: `creation_time` is `zero`; expected a time (a number, in the trace's unit)\n  bad row: {shown}:8: `num_gpu` is `x`;"
            )),
            "{eol:?}: {text}"
        );
        // A header after blank lines is named at its line.
        std::fs::write(&trace, ["", "", "name,num_gpu", "a,1"].join(eol)).unwrap();
        let err = refused(&mut simulate(&[]));
        assert_eq!(
            err,
            format!(
                "gpuclaim: error: {}:3: no column `creation_time` (start time); the header has: name,num_gpu\n",
                trace.display()
            )
        );
    }
    // A quote never closed swallowed the rest of the file: it read as a row
    // of 1 field, or (closing the last field's quote) as a good row.
    for text in [
        format!("{header}\n\"p1,1,0,3600\n"),
        format!("{header}\np0,1,0,5\np1,1,0,\"3600\n"),
    ] {
        std::fs::write(&trace, &text).unwrap();
        let line = text.lines().count();
        let err = refused(&mut simulate(&[]));
        assert_eq!(
            err,
            format!(
                "gpuclaim: error: {}:{line}: malformed row: a `\"` opens a quoted field that is never closed, so the rest of the file was read into it\n",
                trace.display()
            ),
            "{text}"
        );
    }
    // Quotes that close, doubled quotes and a quote inside a field are fine.
    std::fs::write(
        &trace,
        format!("{header}\n\"p,\"\"1\"\"\",1,0,\"3600\"\nq\"r,1,0,5"),
    )
    .unwrap();
    let out = simulate(&[]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn messages_name_the_file_in_the_way_and_print_numbers_short() {
    let Some(bin) = bin() else { return };
    let dir = scratch("messages");
    let cfg = dir.join("tiny.toml");
    std::fs::write(&cfg, TINY.replace("seeds = 1", "seeds = 2")).unwrap();
    sweep_shards(bin, &cfg, &dir, &["0/2", "1/2"]);
    let shards = [dir.join("tiny/shard-0-of-2"), dir.join("tiny/shard-1-of-2")];
    let runs = shards[0].join("runs.csv");
    let original = std::fs::read_to_string(&runs).unwrap();

    // An empty first shard: the second was blamed for differing from it.
    std::fs::write(&runs, "").unwrap();
    let err = refused(&mut merge(bin, &shards, &dir.join("merged")));
    assert_eq!(
        err,
        format!(
            "gpuclaim: error: {}: the file is empty; expected a shard's rows as `sweep --shard I/N` writes them (a header, then one row per run)\n",
            runs.display()
        )
    );
    // A metric that is not a number: named with its file, line and column.
    std::fs::write(&runs, &original).unwrap();
    edit_field(&runs, 2, 15, "abc");
    let err = refused(&mut merge(bin, &shards, &dir.join("merged")));
    assert_eq!(
        err,
        format!(
            "gpuclaim: error: {}:2: run 0: `arrivals` is `abc`; expected a number\n",
            runs.display()
        )
    );
    std::fs::write(&runs, &original).unwrap();

    // OUT/NAME is a file: that file is named, by sweep before it runs and
    // by merge.
    let so = dir.join("so");
    std::fs::create_dir_all(&so).unwrap();
    std::fs::write(so.join("tiny"), "").unwrap();
    let err = refused(
        Command::new(bin)
            .arg("sweep")
            .arg(&cfg)
            .arg("--out")
            .arg(&so),
    );
    assert_eq!(
        err,
        format!(
            "gpuclaim: error: --out {}: {} is a file, not a folder\n",
            so.display(),
            so.join("tiny").display()
        )
    );
    let err = refused(&mut merge(bin, &shards, &so));
    assert_eq!(
        err,
        format!(
            "gpuclaim: error: {}: {} is a file, not a folder\n",
            so.join("tiny/runs.csv").display(),
            so.join("tiny").display()
        )
    );

    // 1e300 and 1e-300 as written, not with 300 digits.
    let trace = dir.join("t.csv");
    std::fs::write(
        &trace,
        "name,num_gpu,creation_time,deletion_time\na,1,0,5\n",
    )
    .unwrap();
    let err = refused(
        Command::new(bin)
            .args([
                "simulate",
                "--preset",
                "openb",
                "--time-scale",
                "1e300",
                "--trace",
            ])
            .arg(&trace),
    );
    assert_eq!(
        err,
        "gpuclaim: error: --time-scale: the trace's last end times 1e300 is 1.388888888888889e297 hours, more than 1e6; set a horizon or a smaller scale\n"
    );
    let out = Command::new(bin)
        .args(["simulate", "--horizon-hours", "1e-300"])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with(
            "policy legacy | gpus 2 | seed 0 (run seed 12035550249420947055) | horizon 1e-300 h\n"
        ),
        "{text}"
    );
    std::fs::write(
        &cfg,
        TINY.to_string() + "takeover_mean_minutes = [-1e300]\n",
    )
    .unwrap();
    let err = refused(Command::new(bin).arg("sweep").arg(&cfg));
    assert_eq!(
        err,
        format!(
            "gpuclaim: error: {}:7:25: grid.takeover_mean_minutes: -1e300 is not a positive, finite number of minutes\n",
            cfg.display()
        )
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Sets field `column` (from 0) of line `line` (1 = the header) of a CSV
/// file without quotes.
fn edit_field(path: &Path, line: usize, column: usize, value: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let mut fields: Vec<&str> = lines[line - 1].split(',').collect();
    fields[column] = value;
    lines[line - 1] = fields.join(",");
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
}

#[test]
fn sweep_durations_take_never_as_simulate_does() {
    let Some(bin) = bin() else { return };
    let dir = scratch("never");
    let cfg = dir.join("never.toml");
    std::fs::write(
        &cfg,
        TINY.to_string()
            + "arrival_per_hour = [10]\n[durations]\nstart = \"never\"\ncreate = \"never\"\n",
    )
    .unwrap();
    let out = Command::new(bin)
        .arg("sweep")
        .arg(&cfg)
        .arg("--out")
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // No create ever ends: every run's VMs stay creating.
    let runs = std::fs::read_to_string(dir.join("tiny/runs.csv")).unwrap();
    let mut rows = csv::Reader::from_reader(runs.as_bytes());
    let header = rows.headers().unwrap().clone();
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    for r in rows.records() {
        let r = r.unwrap();
        assert_ne!(&r[col("arrivals")], "0", "{runs}");
        assert_eq!(&r[col("vm_hours_running")], "0", "{runs}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
