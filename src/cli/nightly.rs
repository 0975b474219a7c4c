//! `gpuclaim nightly`: the whole regression run in one command, with
//! reports a CI system understands.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::Context;
use gpuclaim::Registry;
use gpuclaim::nightly::{Case, Report, Status, Suite};
use gpuclaim::report::write_atomic;

use crate::cli::run::{FileResult, run_files};

/// Run the nightly regression: every scenario, explore campaigns, exhaustive
/// checks and the fuzz corpus replay; write junit.xml, summary.csv and
/// index.html.
///
/// Exit status: 0 when nothing regressed, 1 when anything failed or did not
/// run (an interrupted run), 2 on a usage error. `fixed` must come out
/// clean; `legacy` and `snapshot` must be caught (a harness that stops
/// catching them has regressed).
#[derive(clap::Args)]
pub struct Args {
    /// Seconds for the random campaigns (the fixed parts, scenarios, checks
    /// and corpus replay, take what they take). The default suits a laptop.
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

pub fn main(args: Args) -> anyhow::Result<ExitCode> {
    if !(args.budget.is_finite() && args.budget >= 0.0) {
        anyhow::bail!(
            "--budget must be a number of seconds, 0 or more; got {}",
            args.budget
        );
    }
    let interrupted = Arc::new(AtomicBool::new(false));
    {
        let flag = interrupted.clone();
        // A second Ctrl-C ends the process at once.
        ctrlc::set_handler(move || {
            if flag.swap(true, Ordering::SeqCst) {
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

    if runner.stopped() {
        runner
            .report
            .notes
            .push("interrupted by Ctrl-C: the cases marked not-run did not run".into());
        runner.write()?;
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
                    "file refused".into(),
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
                        suite.cases.push(Case {
                            class: format!("scenario.{}", run.policy),
                            name: format!("{name} [{}]", run.policy),
                            status,
                            seconds: share,
                            facts,
                            counterexample: None,
                        });
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
