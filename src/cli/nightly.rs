//! `gpuclaim nightly`: the whole regression run in one command, with
//! reports a CI system understands.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::Context;
use gpuclaim::Registry;
use gpuclaim::check::{self, Checker};
use gpuclaim::counterexample;
use gpuclaim::explore::{self, Campaign};
use gpuclaim::fuzzing::Target;
use gpuclaim::nightly::{Case, Plot, Report, Status, Suite};
use gpuclaim::report::write_atomic;
use gpuclaim::sim::sweep::{Plan, SweepOptions, run_sweep};
use gpuclaim::{Builtin, Device, Invariant};

use crate::cli::run::{FileResult, run_files};

/// Run the nightly regression: every scenario, exhaustive checks, explore
/// campaigns, the fuzz corpus replay and a sweep; write junit.xml,
/// summary.csv and index.html.
///
/// Run it from the project's folder (the default paths are relative). It
/// prints one line per case on stderr as it goes.
///
/// Exit status: 0 when nothing regressed, 1 when anything failed or did not
/// run (an interrupted run), 2 on a usage error. `fixed` must come out
/// clean; `legacy` and `snapshot` must be caught (a harness that stops
/// catching them has regressed).
#[derive(clap::Args)]
pub struct Args {
    /// Seconds for the random campaigns (the fixed parts, scenarios, checks
    /// and corpus replay, take what they take); 0 to 86400. The default
    /// suits a laptop.
    #[arg(long, default_value_t = 30.0, value_name = "SECONDS")]
    pub budget: f64,
    /// Folder for junit.xml, summary.csv and index.html.
    #[arg(long, default_value = "reports/nightly", value_name = "DIR")]
    pub out: PathBuf,
    /// Folder of scenario files.
    #[arg(long, default_value = "scenarios", value_name = "DIR")]
    pub scenarios: PathBuf,
    /// Master seed of the random campaigns.
    #[arg(long, default_value_t = 2026)]
    pub seed: u64,
    /// The sweep whose plots go on the page and whose results are checked:
    /// fixed clean, legacy caught, legacy's start failures higher.
    #[arg(
        long,
        default_value = "sweeps/legacy-vs-fixed-2gpu.toml",
        value_name = "FILE"
    )]
    pub sweep: PathBuf,
    /// The fuzz workspace whose corpus/ and regressions/ are replayed.
    #[arg(long, default_value = "fuzz", value_name = "DIR")]
    pub fuzz: PathBuf,
}

/// Runs the report's jobs in order, stopping early when interrupted; what
/// did not run is listed as not run.
struct Runner {
    report: Report,
    interrupted: Arc<AtomicBool>,
    out: PathBuf,
}

impl Runner {
    fn stopped(&self) -> bool {
        self.interrupted.load(Ordering::SeqCst)
    }

    /// Writes the three files, each atomically.
    fn write(&self) -> anyhow::Result<()> {
        let write = |name: &str, bytes: &[u8]| {
            let path = self.out.join(name);
            write_atomic(&path, bytes).with_context(|| format!("writing {}", path.display()))
        };
        write("junit.xml", self.report.junit_xml().as_bytes())?;
        write("summary.csv", &self.report.summary_csv())?;
        write("index.html", self.report.index_html().as_bytes())?;
        Ok(())
    }
}

/// The largest `--budget`, in seconds.
const MAX_BUDGET: f64 = 86_400.0;

pub fn main(args: Args, _registry: &Registry) -> anyhow::Result<ExitCode> {
    if !(args.budget.is_finite() && (0.0..=MAX_BUDGET).contains(&args.budget)) {
        anyhow::bail!(
            "--budget must be a number of seconds from 0 to {MAX_BUDGET} (a day); got {}",
            args.budget
        );
    }
    // The reports must have somewhere to go: checked before the jobs run.
    gpuclaim::report::check_folder(&args.out)
        .with_context(|| format!("--out {}", args.out.display()))?;
    let interrupted = Arc::new(AtomicBool::new(false));
    {
        let flag = interrupted.clone();
        // A second Ctrl-C ends the process at once, without the outputs it
        // was still writing.
        ctrlc::set_handler(move || {
            if flag.swap(true, Ordering::SeqCst) {
                gpuclaim::report::remove_unfinished();
                std::process::exit(130);
            }
            eprintln!(
                "gpuclaim nightly: interrupted; finishing the current job and writing the reports"
            );
        })
        .context("installing the Ctrl-C handler")?;
    }
    let mut runner = Runner {
        report: Report {
            title: "gpuclaim nightly".into(),
            notes: vec![
                format!("gpuclaim {}", env!("CARGO_PKG_VERSION")),
                format!(
                    "budget {} s for random campaigns, master seed {}",
                    args.budget, args.seed
                ),
            ],
            ..Report::default()
        },
        interrupted,
        out: args.out.clone(),
    };

    runner
        .report
        .suites
        .push(scenario_suite(&args.scenarios, &runner));
    runner.write()?;

    let suite = check_suite(&runner);
    runner.report.suites.push(suite);
    runner.write()?;

    let suite = explore_suite(&args, &runner);
    runner.report.suites.push(suite);
    runner.write()?;

    let suite = fuzz_corpus_suite(&args.fuzz, &runner);
    runner.report.suites.push(suite);
    runner.write()?;

    let (suite, plots) = sweep_suite(&args.sweep, &args.out.join("sweep"), &runner);
    runner.report.suites.push(suite);
    runner.report.plots.extend(plots);
    runner.write()?;

    if runner.stopped() {
        runner
            .report
            .notes
            .push("interrupted by Ctrl-C: the cases marked not-run did not run".into());
        runner.write()?;
        eprintln!("interrupted: these did not run:");
        for (suite, case) in runner.report.cases() {
            if matches!(case.status, Status::NotRun { .. }) {
                eprintln!("  {} / {}", suite.name, case.name);
            }
        }
    }
    let (passed, failed, not_run) = runner.report.totals();
    eprintln!(
        "nightly: {passed} passed, {failed} failed, {not_run} not run; reports in {}",
        args.out.display()
    );
    for name in ["junit.xml", "summary.csv", "index.html"] {
        eprintln!("  {}", args.out.join(name).display());
    }
    Ok(if runner.report.clean() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Every scenario file under each of its policies, one case each; a refused
/// file is one failed case.
fn scenario_suite(dir: &Path, runner: &Runner) -> Suite {
    let mut suite = Suite::new("scenarios");
    let registry = Registry::builtin();
    let files = match gpuclaim::scenario::collect_files(&[dir.to_path_buf()]) {
        Ok(f) => f,
        Err(e) => {
            suite.cases.push(failed_case(
                "scenario",
                &dir.display().to_string(),
                format!("cannot read scenarios: {e}"),
                String::new(),
            ));
            return suite;
        }
    };
    for file in files {
        let name = file.display().to_string();
        if runner.stopped() {
            suite.cases.push(not_run("scenario", &name));
            continue;
        }
        let start = Instant::now();
        let results = run_files(std::slice::from_ref(&file), &registry);
        let seconds = start.elapsed().as_secs_f64();
        for (_, result) in results {
            match result {
                FileResult::Refused(e) => suite.cases.push(failed_case(
                    "scenario",
                    &name,
                    format!("file refused: {e}"),
                    e.to_string(),
                )),
                FileResult::Ran { scenario, runs } => {
                    let share = seconds / runs.len().max(1) as f64;
                    for run in runs {
                        let facts = format!(
                            "{}; steps={} actions={} violations=[{}]",
                            scenario.name,
                            scenario.steps.len(),
                            run.trace.len(),
                            run.fired
                        );
                        let status = if run.passed() {
                            Status::Passed
                        } else {
                            let message: Vec<String> =
                                run.mismatches.iter().map(|m| m.to_string()).collect();
                            Status::Failed {
                                message: message.join("; "),
                                detail: format!(
                                    "{}\ntrace under {}:\n{}",
                                    scenario.name,
                                    run.policy,
                                    run.render_trace()
                                ),
                            }
                        };
                        let case = Case {
                            class: format!("scenario.{}", run.policy),
                            name: format!("{name} [{}]", run.policy),
                            status,
                            seconds: share,
                            facts,
                            counterexample: None,
                        };
                        record(&mut suite, case);
                    }
                }
            }
        }
    }
    suite
}

fn failed_case(class: &str, name: &str, message: String, detail: String) -> Case {
    Case {
        class: class.into(),
        name: name.into(),
        status: Status::Failed { message, detail },
        seconds: 0.0,
        facts: String::new(),
        counterexample: None,
    }
}

fn not_run(class: &str, name: &str) -> Case {
    Case {
        class: class.into(),
        name: name.into(),
        status: Status::NotRun {
            reason: "interrupted before it ran".into(),
        },
        seconds: 0.0,
        facts: String::new(),
        counterexample: None,
    }
}

/// Runs the sweep and checks what MODEL.md says of its policies; returns
/// the cases and the plots it drew.
fn sweep_suite(config: &Path, out: &Path, runner: &Runner) -> (Suite, Vec<Plot>) {
    let mut suite = Suite::new("sweep");
    let name = config.display().to_string();
    let names = [
        "fixed is clean",
        "legacy is caught",
        "legacy fails more starts",
    ];
    if runner.stopped() {
        for n in names {
            suite.cases.push(not_run("sweep", &format!("{name}: {n}")));
        }
        return (suite, Vec::new());
    }
    let start = Instant::now();
    let registry = Registry::builtin();
    let written = Plan::load(config, &registry).and_then(|plan| {
        let options = SweepOptions {
            out: out.to_path_buf(),
            threads: None,
            shard: None,
        };
        run_sweep(&plan, &registry, &options, &|_| {})
    });
    let seconds = start.elapsed().as_secs_f64();
    let written = match written {
        Ok(w) => w,
        Err(e) => {
            suite.cases.push(failed_case(
                "sweep",
                &name,
                format!("the sweep did not run: {e}"),
                e.to_string(),
            ));
            return (suite, Vec::new());
        }
    };
    let share = seconds / names.len() as f64;
    let count = |key: &str| written.violations.get(key).copied().unwrap_or(0);
    let fixed: Vec<String> = written
        .violations
        .iter()
        .filter(|(k, v)| k.starts_with("fixed ") && **v > 0)
        .map(|(k, v)| format!("{k}: {v} steps"))
        .collect();
    suite.cases.push(verdict(
        &format!("{name}: {}", names[0]),
        fixed.is_empty(),
        format!("runs={}", written.runs),
        || {
            (
                "fixed violated an invariant in the sweep".into(),
                fixed.join("\n"),
            )
        },
        share,
    ));
    let caught = count("legacy no-steal-after-dealloc");
    suite.cases.push(verdict(
        &format!("{name}: {}", names[1]),
        caught > 0,
        format!("no-steal-after-dealloc steps={caught}"),
        || {
            (
                "legacy never violated no-steal-after-dealloc: the harness stopped catching it"
                    .into(),
                String::new(),
            )
        },
        share,
    ));
    let comparison = start_failures_by_rate(&written.dir.join("summary.csv"));
    let (ok, facts, detail) = match &comparison {
        Ok(rows) if !rows.is_empty() => {
            let lower: Vec<String> = rows
                .iter()
                .filter(|(_, f, l)| l <= f)
                .map(|(r, f, l)| format!("arrival {r}/h: fixed {f:.3}, legacy {l:.3}"))
                .collect();
            let all: Vec<String> = rows
                .iter()
                .map(|(r, f, l)| format!("{r}/h {f:.2}<{l:.2}"))
                .collect();
            (
                lower.is_empty(),
                format!("start failure fraction fixed<legacy: {}", all.join(" ")),
                lower.join("\n"),
            )
        }
        Ok(_) => (
            false,
            String::new(),
            "summary.csv has no fixed/legacy pair of start failure fractions".into(),
        ),
        Err(e) => (false, String::new(), e.clone()),
    };
    suite.cases.push(verdict(
        &format!("{name}: {}", names[2]),
        ok,
        facts,
        || {
            (
                "legacy's start failure fraction is not above fixed's at every arrival rate".into(),
                detail.clone(),
            )
        },
        share,
    ));
    let mut plots = Vec::new();
    for (file, title) in [
        (
            "failures.svg",
            "VM create and start failures against arrival rate",
        ),
        ("gpu_hours.svg", "GPU-hours: VMs, Kubernetes, idle"),
    ] {
        if let Ok(svg) = std::fs::read_to_string(written.dir.join(file)) {
            plots.push(Plot {
                title: format!("{title} ({name})"),
                svg,
            });
        }
    }
    (suite, plots)
}

fn verdict(
    name: &str,
    ok: bool,
    facts: String,
    failure: impl FnOnce() -> (String, String),
    seconds: f64,
) -> Case {
    let status = if ok {
        Status::Passed
    } else {
        let (message, detail) = failure();
        Status::Failed { message, detail }
    };
    Case {
        class: "sweep".into(),
        name: name.into(),
        status,
        seconds,
        facts,
        counterexample: None,
    }
}

/// (arrival rate, fixed's mean start failure fraction, legacy's) for every
/// rate where the summary has both, in file order.
fn start_failures_by_rate(summary: &Path) -> Result<Vec<(String, f64, f64)>, String> {
    let mut reader =
        csv::Reader::from_path(summary).map_err(|e| format!("{}: {e}", summary.display()))?;
    let header = reader
        .headers()
        .map_err(|e| format!("{}: {e}", summary.display()))?
        .clone();
    let col = |n: &str| {
        header
            .iter()
            .position(|h| h == n)
            .ok_or_else(|| format!("{}: no column {n}", summary.display()))
    };
    let (policy, rate, frac) = (
        col("policy")?,
        col("arrival_per_hour")?,
        col("start_failure_fraction.mean")?,
    );
    let mut fixed: Vec<(String, f64)> = Vec::new();
    let mut legacy: Vec<(String, f64)> = Vec::new();
    for row in reader.records() {
        let row = row.map_err(|e| format!("{}: {e}", summary.display()))?;
        let Ok(value) = row[frac].parse::<f64>() else {
            continue;
        };
        match &row[policy] {
            "fixed" => fixed.push((row[rate].to_string(), value)),
            "legacy" => legacy.push((row[rate].to_string(), value)),
            _ => {}
        }
    }
    Ok(fixed
        .into_iter()
        .filter_map(|(r, f)| {
            legacy
                .iter()
                .find(|(lr, _)| *lr == r)
                .map(|(_, l)| (r, f, *l))
        })
        .collect())
}

/// What a policy must show on a device with `vms` slots: `fixed` nothing,
/// `legacy` exactly `no-steal-after-dealloc` and `snapshot` exactly
/// `no-double-claim`, once there is a VM to take part.
fn expected(policy: Builtin, vms: usize) -> Vec<Invariant> {
    match policy {
        Builtin::Fixed => vec![],
        _ if vms == 0 => vec![],
        Builtin::Legacy => vec![Invariant::NoStealAfterDealloc],
        Builtin::Snapshot => vec![Invariant::NoDoubleClaim],
    }
}

fn names(invs: &[Invariant]) -> String {
    let v: Vec<&str> = invs.iter().map(|i| i.name()).collect();
    format!("[{}]", v.join(", "))
}

/// The exhaustive checker on every G <= 2, V <= 3 under each built-in
/// policy: the invariants it finds must be exactly the expected ones.
fn check_suite(runner: &Runner) -> Suite {
    let mut suite = Suite::new("check");
    for policy in Builtin::ALL {
        for gpus in 1..=2u8 {
            for vms in 0..=3usize {
                let name = format!("{policy} G={gpus} V={vms}");
                if runner.stopped() {
                    suite.cases.push(not_run("check", &name));
                    continue;
                }
                let device = Device::uniform(gpus, vms, 1).expect("a valid device");
                let start = Instant::now();
                let result = Checker::new(&policy, device).run();
                let seconds = start.elapsed().as_secs_f64();
                let case = match result {
                    Err(e) => failed_case(
                        "check",
                        &name,
                        format!("the check did not run: {e}"),
                        e.to_string(),
                    ),
                    Ok(report) => {
                        let found: Vec<Invariant> =
                            report.violations.iter().map(|f| f.invariant).collect();
                        let want = expected(policy, vms);
                        let counterexample = report.violations.first().map(|f| {
                            counterexample::scenario_from_actions(
                                &policy,
                                &device,
                                &f.counterexample,
                                &format!(
                                    "{policy} violates {}: shortest counterexample from check",
                                    f.invariant
                                ),
                                &format!(
                                    "gpuclaim check --gpus {gpus} --vms {vms} --policy {policy}"
                                ),
                            )
                            .to_toml()
                        });
                        let facts = format!(
                            "states={} transitions={} depth={} found={}",
                            report.unique_states,
                            report.transitions,
                            report.max_depth,
                            names(&found)
                        );
                        let problems: Vec<String> = (found != want)
                            .then(|| {
                                format!(
                                    "expected {} but the checker found {}",
                                    names(&want),
                                    names(&found)
                                )
                            })
                            .into_iter()
                            .collect();
                        let status = Status::from_problems(&problems, || facts.clone());
                        Case {
                            class: "check".into(),
                            name,
                            status,
                            seconds,
                            facts,
                            counterexample,
                        }
                    }
                };
                record(&mut suite, case);
            }
        }
    }
    suite
}

/// Seeded random campaigns per built-in policy on 1- and 2-GPU devices
/// with 3 VM slots, 50 steps a walk. Each gets an equal share of the
/// budget, spent in blocks of runs (odd blocks swarm), each block a
/// campaign reproducible with `gpuclaim explore` and the seed it names.
fn explore_suite(args: &Args, runner: &Runner) -> Suite {
    const VMS: usize = 3;
    const STEPS: usize = 50;
    const BLOCK: u64 = 5_000;
    let mut suite = Suite::new("explore");
    let campaigns: Vec<(Builtin, u8)> = Builtin::ALL
        .into_iter()
        .flat_map(|p| [(p, 1u8), (p, 2u8)])
        .collect();
    let share = args.budget / campaigns.len() as f64;
    for (policy, gpus) in campaigns {
        let name = format!("{policy} G={gpus} V={VMS}");
        if runner.stopped() {
            suite.cases.push(not_run("explore", &name));
            continue;
        }
        let device = Device::uniform(gpus, VMS, 1).expect("a valid device");
        let start = Instant::now();
        let mut blocks = 0u64;
        let mut found: Vec<explore::Counterexample> = Vec::new();
        let mut failing = 0u64;
        // At least one block, then more while the share lasts.
        while blocks == 0 || (start.elapsed().as_secs_f64() < share && !runner.stopped()) {
            let report = Campaign::new(&policy, device)
                .runs(BLOCK)
                .steps(STEPS)
                .seed(args.seed.wrapping_add(blocks))
                .swarm(blocks % 2 == 1)
                .run();
            failing += report.failing_runs();
            for c in report.counterexamples {
                match found
                    .iter_mut()
                    .find(|f| f.invariant == c.invariant && f.actions == c.actions)
                {
                    Some(f) => f.runs += c.runs,
                    None => found.push(c),
                }
            }
            blocks += 1;
        }
        let seconds = start.elapsed().as_secs_f64();
        let mut invs: Vec<Invariant> = found.iter().map(|c| c.invariant).collect();
        invs.sort();
        invs.dedup();
        let want = expected(policy, VMS);
        // The shortest counterexample must be as short as the checker's.
        let shortest = found.iter().min_by_key(|c| (c.actions.len(), c.first_run));
        let checker_len = want
            .first()
            .and_then(|inv| check::shortest_counterexample(&policy, &device, *inv))
            .map(|t| t.len());
        let facts = format!(
            "runs={} ({} of {BLOCK}, seeds {}..={}, odd blocks --swarm) failing={failing} found={} shortest={}",
            blocks * BLOCK,
            gpuclaim::report::count(blocks, "block", "blocks"),
            args.seed,
            args.seed.wrapping_add(blocks - 1),
            names(&invs),
            shortest.map_or("-".to_string(), |c| format!("{} actions", c.actions.len()))
        );
        let mut problems = Vec::new();
        if invs != want {
            problems.push(format!(
                "expected {} but the campaign found {}",
                names(&want),
                names(&invs)
            ));
        }
        if let (Some(c), Some(n)) = (shortest, checker_len)
            && c.actions.len() != n
        {
            problems.push(format!(
                "shortest shrunk counterexample has {} actions, the checker's {n}",
                c.actions.len()
            ));
        }
        let counterexample = shortest.map(|c| {
            counterexample::scenario_from_actions(
                &policy,
                &device,
                &c.actions,
                &format!(
                    "{policy} violates {}: shrunk counterexample from nightly explore",
                    c.invariant
                ),
                &format!(
                    "gpuclaim nightly explore campaign {name}, {} runs led to it",
                    c.runs
                ),
            )
            .to_toml()
        });
        let status = Status::from_problems(&problems, || facts.clone());
        let case = Case {
            class: "explore".into(),
            name,
            status,
            seconds,
            facts,
            counterexample,
        };
        record(&mut suite, case);
    }
    suite
}

/// Replays every committed fuzz input (corpus and regressions) through the
/// library function its target wraps: `fixed` inputs fire nothing,
/// `legacy`/`snapshot` regressions fire their invariant, the parser inputs
/// never fail.
fn fuzz_corpus_suite(fuzz: &Path, runner: &Runner) -> Suite {
    let mut suite = Suite::new("fuzz-corpus");
    for target in Target::ALL {
        for kind in ["corpus", "regressions"] {
            let dir = fuzz.join(kind).join(target.name());
            let name = format!("{target} {kind}");
            // A target may have no regressions yet; a missing corpus is a failure.
            if kind == "regressions" && !dir.is_dir() {
                continue;
            }
            if runner.stopped() {
                suite.cases.push(not_run("fuzz", &name));
                continue;
            }
            let mut files: Vec<PathBuf> = match std::fs::read_dir(&dir) {
                Ok(entries) => entries
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.is_file())
                    .collect(),
                Err(e) => {
                    suite.cases.push(failed_case(
                        "fuzz",
                        &name,
                        format!("cannot read {}: {e}", dir.display()),
                        String::new(),
                    ));
                    continue;
                }
            };
            files.sort();
            let start = Instant::now();
            let mut problems = Vec::new();
            for file in &files {
                let bytes = match std::fs::read(file) {
                    Ok(b) => b,
                    Err(e) => {
                        problems.push(format!("{}: {e}", file.display()));
                        continue;
                    }
                };
                let result = target.check(&bytes);
                let ok = match (&result, kind, target.expected_violation()) {
                    (Ok(_), _, _) => kind == "corpus" || target.expected_violation().is_none(),
                    (Err(f), "regressions", Some(inv)) => f.invariant() == Some(inv),
                    (Err(_), _, _) => false,
                };
                if !ok {
                    let what = match &result {
                        Ok(_) => "passed, but a regression input must fire its target's invariant"
                            .to_string(),
                        Err(f) => f.to_string(),
                    };
                    problems.push(format!("{}: {what}", file.display()));
                }
            }
            let facts = format!("inputs={}", files.len());
            let status = if problems.is_empty() {
                Status::Passed
            } else {
                Status::Failed {
                    message: format!("{} of {} inputs regressed", problems.len(), files.len()),
                    detail: problems.join("\n"),
                }
            };
            let case = Case {
                class: "fuzz".into(),
                name,
                status,
                seconds: start.elapsed().as_secs_f64(),
                facts,
                counterexample: None,
            };
            record(&mut suite, case);
        }
    }
    suite
}

/// Adds a case that ran to its suite and reports it on stderr.
fn record(suite: &mut Suite, case: Case) {
    progress(&suite.name, &case);
    suite.cases.push(case);
}

/// One line per case on stderr, so a long run shows where it is.
fn progress(suite: &str, case: &Case) {
    let word = match case.status {
        Status::Passed => "pass",
        Status::Failed { .. } => "FAIL",
        Status::NotRun { .. } => "not run",
    };
    eprintln!(
        "  {suite:<12} {word:<7} {:<40} {:>7.2}s  {}",
        case.name, case.seconds, case.facts
    );
}
