//! `gpuclaim nightly`: the whole regression run in one command, with
//! reports a CI system understands.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use gpuclaim::Registry;
use gpuclaim::nightly::config::MAX_BUDGET;
use gpuclaim::nightly::{Case, NightlyConfig, Observer, Options, Report, Status};
use gpuclaim::report::write_atomic;

/// Run the nightly regression: every scenario, exhaustive checks, explore
/// campaigns, the fuzz corpus replay and a sweep; write junit.xml,
/// summary.csv and index.html.
///
/// Without --config it runs the built-in configuration, which nightly.toml
/// at the project's root spells out: `fixed` must come out clean, `legacy`
/// and `snapshot` must be caught (a harness that stops catching them has
/// regressed). With --config FILE it runs the allocators, devices and
/// suites the file names; allocators in other processes come from
/// --allocators. The other flags override the configuration's values.
///
/// Run it from the project's folder (the default paths are relative). It
/// prints one line per case on stderr as it goes.
///
/// Exit status: 0 when nothing regressed, 1 when anything failed or did not
/// run (an interrupted run; an allocator that failed fails its case), 2 on
/// a usage error or a configuration refused.
#[derive(clap::Args)]
pub struct Args {
    /// A nightly configuration (TOML): allocators under test and what each
    /// must give (clean, or catch = [...]), devices, suites, budget, seed.
    /// See nightly.toml. A regular file of at most 1 MiB; fuzz inputs of
    /// its suites at most 1 MiB each. Default: the built-in run.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Seconds for the random campaigns (the fixed parts, scenarios, checks
    /// and corpus replay, take what they take); 0 to 86400. Default: the
    /// configuration's (30 in the built-in one, which suits a laptop).
    #[arg(long, value_name = "SECONDS")]
    pub budget: Option<f64>,
    /// Folder for junit.xml, summary.csv and index.html.
    #[arg(long, default_value = "reports/nightly", value_name = "DIR")]
    pub out: PathBuf,
    /// Folder of scenario files. Default: the configuration's (scenarios).
    #[arg(long, value_name = "DIR")]
    pub scenarios: Option<PathBuf>,
    /// Master seed of the random campaigns. Default: the configuration's
    /// (2026).
    #[arg(long)]
    pub seed: Option<u64>,
    /// The sweep whose plots go on the page and whose results are checked:
    /// fixed clean, legacy caught, legacy's start failures higher.
    /// Default: the configuration's (sweeps/legacy-vs-fixed-2gpu.toml).
    #[arg(long, value_name = "FILE")]
    pub sweep: Option<PathBuf>,
    /// The fuzz workspace whose corpus/ and regressions/ are replayed.
    /// Default: the configuration's (fuzz).
    #[arg(long, value_name = "DIR")]
    pub fuzz: Option<PathBuf>,
}

/// The configuration to run: the file's or the built-in one, with the
/// flags' values in place of its own.
fn configuration(args: &Args, registry: &Registry) -> anyhow::Result<NightlyConfig> {
    let mut config = match &args.config {
        Some(file) => NightlyConfig::load(file, registry)?,
        None => NightlyConfig::default(),
    };
    let absent = |flag: &str, table: &str| {
        anyhow::anyhow!(
            "{flag}: the configuration runs no {table} suite (add the [{table}] table to it)"
        )
    };
    if let Some(budget) = args.budget {
        if !(budget.is_finite() && (0.0..=MAX_BUDGET).contains(&budget)) {
            anyhow::bail!(
                "--budget must be a number of seconds from 0 to {MAX_BUDGET} (a day); got {budget}"
            );
        }
        config
            .explore
            .as_mut()
            .ok_or_else(|| absent("--budget", "explore"))?
            .budget = budget;
    }
    if let Some(seed) = args.seed {
        config.seed = seed;
    }
    for (flag, table, value, slot) in [
        (
            "--scenarios",
            "scenarios",
            &args.scenarios,
            &mut config.scenarios,
        ),
        ("--sweep", "sweep", &args.sweep, &mut config.sweep),
        ("--fuzz", "fuzz", &args.fuzz, &mut config.fuzz),
    ] {
        if let Some(path) = value {
            *slot.as_mut().ok_or_else(|| absent(flag, table))? = path.clone();
        }
    }
    Ok(config)
}

/// What the command does as the run goes: a line per case on stderr, the
/// three files rewritten after every suite, and Ctrl-C.
struct Cli {
    interrupted: Arc<AtomicBool>,
    out: PathBuf,
}

impl Cli {
    /// Writes the three files, each atomically.
    fn write(&self, report: &Report) -> anyhow::Result<()> {
        let write = |name: &str, bytes: &[u8]| {
            let path = self.out.join(name);
            write_atomic(&path, bytes).with_context(|| format!("writing {}", path.display()))
        };
        write("junit.xml", report.junit_xml().as_bytes())?;
        write("summary.csv", &report.summary_csv())?;
        write("index.html", report.index_html().as_bytes())?;
        Ok(())
    }
}

impl Observer for Cli {
    type Error = anyhow::Error;
    fn interrupted(&self) -> bool {
        self.interrupted.load(Ordering::SeqCst)
    }
    fn case(&mut self, suite: &str, case: &Case) {
        progress(suite, case);
    }
    fn suite_done(&mut self, report: &Report) -> anyhow::Result<()> {
        self.write(report)
    }
}

pub fn main(args: Args, registry: &Registry) -> anyhow::Result<ExitCode> {
    let config = configuration(&args, registry)?;
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
                gpuclaim::report::remove_unfinished_and_close();
                std::process::exit(130);
            }
            eprintln!(
                "gpuclaim nightly: interrupted; finishing the current job and writing the reports"
            );
        })
        .context("installing the Ctrl-C handler")?;
    }
    let mut cli = Cli {
        interrupted,
        out: args.out.clone(),
    };
    let options = Options {
        sweep_out: args.out.join("sweep"),
        notes: vec![match &args.config {
            Some(file) => format!("configuration {}", file.display()),
            None => "built-in configuration (nightly.toml spells it out)".into(),
        }],
    };
    let mut report = gpuclaim::nightly::run(&config, registry, &options, &mut cli)?;
    // A run with no suite wrote nothing yet.
    if report.suites.is_empty() {
        cli.write(&report)?;
    }
    if cli.interrupted() {
        report
            .notes
            .push("interrupted by Ctrl-C: the cases marked not-run did not run".into());
        cli.write(&report)?;
        eprintln!("interrupted: these did not run:");
        for (suite, case) in report.cases() {
            if matches!(case.status, Status::NotRun { .. }) {
                eprintln!("  {} / {}", suite.name, case.name);
            }
        }
    }
    let (passed, failed, not_run) = report.totals();
    eprintln!(
        "nightly: {passed} passed, {failed} failed, {not_run} not run; reports in {}",
        args.out.display()
    );
    for name in ["junit.xml", "summary.csv", "index.html"] {
        eprintln!("  {}", args.out.join(name).display());
    }
    Ok(if report.clean() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// One line per case on stderr, so a long run shows where it is.
fn progress(suite: &str, case: &Case) {
    let word = match case.status {
        Status::Passed => "pass",
        Status::Failed { .. } => "FAIL",
        Status::NotRun { .. } => "not run",
    };
    eprintln!(
        "  {suite:<12} {word:<7} {:<44} {:>7.2}s  {}",
        case.name, case.seconds, case.facts
    );
}
