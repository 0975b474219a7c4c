//! `gpuclaim run`: every scenario file under each of its policies.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use gpuclaim::Registry;
use gpuclaim::report::CsvDoc;
use gpuclaim::scenario::{self, PolicyRun, Scenario};
use gpuclaim::trace::printable;

/// Run scenario files and compare what they expect.
///
/// Prints one line per scenario and policy, PASS or FAIL; for a failure,
/// every expectation that differs and the trace with each step's outcome.
/// Exit status: 0 when all pass, 1 when an expectation fails, 2 when a file
/// was refused (the other files still run).
#[derive(clap::Args)]
pub struct Args {
    /// Scenario files or folders (searched for *.toml).
    #[arg(default_value = "scenarios")]
    pub paths: Vec<PathBuf>,
    /// Also write one CSV row per scenario and policy to FILE.
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,
    /// Print the trace of passing runs too.
    #[arg(long, short)]
    pub verbose: bool,
}

/// The result of one file: its runs, or why it was refused.
pub enum FileResult {
    Ran {
        scenario: Scenario,
        runs: Vec<PolicyRun>,
    },
    Refused(scenario::ScenarioError),
}

/// Loads and runs every file; never stops at a refused one.
pub fn run_files(files: &[PathBuf], registry: &Registry) -> Vec<(PathBuf, FileResult)> {
    files
        .iter()
        .map(|file| {
            let result = match scenario::load(file, registry) {
                Ok(s) => {
                    let runs = s
                        .policy_names()
                        .iter()
                        .map(|p| {
                            let policy = registry
                                .get(p)
                                .expect("policy names are checked when the file is read");
                            s.run(&policy)
                        })
                        .collect();
                    FileResult::Ran { scenario: s, runs }
                }
                Err(e) => FileResult::Refused(e),
            };
            (file.clone(), result)
        })
        .collect()
}

pub const CSV_HEADER: [&str; 9] = [
    "file",
    "scenario",
    "policy",
    "result",
    "steps",
    "actions",
    "outcomes",
    "violations",
    "mismatches",
];

pub fn main(args: Args, registry: &Registry) -> anyhow::Result<ExitCode> {
    if let Some(path) = &args.csv {
        gpuclaim::report::check_file(path).with_context(|| format!("--csv {}", path.display()))?;
    }
    let files = scenario::collect_files(&args.paths).context("looking for scenario files")?;
    if files.is_empty() {
        let paths: Vec<String> = args.paths.iter().map(|p| p.display().to_string()).collect();
        anyhow::bail!("no scenario files (*.toml) under {}", paths.join(", "));
    }
    if let Some(path) = &args.csv
        && let Some(input) = files.iter().find(|f| gpuclaim::report::same_file(path, f))
    {
        anyhow::bail!(
            "--csv {} would replace the scenario file {}; write the CSV elsewhere",
            path.display(),
            input.display()
        );
    }
    let results = run_files(&files, registry);
    let mut csv = CsvDoc::new(CSV_HEADER);
    let (mut passed, mut failed, mut refused) = (0, 0, 0);
    for (file, result) in &results {
        let f = file.display().to_string();
        match result {
            FileResult::Refused(e) => {
                refused += 1;
                gpuclaim::outln!("REFUSED {f}")?;
                gpuclaim::outln!("        {e}")?;
                csv.row([
                    f.as_str(),
                    "",
                    "",
                    "refused",
                    "",
                    "",
                    "",
                    "",
                    &e.to_string(),
                ]);
            }
            FileResult::Ran { scenario, runs } => {
                for run in runs {
                    let ok = run.passed();
                    if ok {
                        passed += 1;
                    } else {
                        failed += 1;
                    }
                    gpuclaim::outln!(
                        "{} {f} [{}] {}",
                        if ok { "PASS   " } else { "FAIL   " },
                        run.policy,
                        printable(&scenario.name)
                    )?;
                    for m in &run.mismatches {
                        gpuclaim::outln!("        {m}")?;
                    }
                    if !ok || args.verbose {
                        gpuclaim::outln!("        trace under {}:", run.policy)?;
                        gpuclaim::out!("{}", indent(&run.render_trace()))?;
                    }
                    let outcomes: Vec<&str> = run.outcomes.iter().map(|o| o.name()).collect();
                    let mismatches: Vec<String> =
                        run.mismatches.iter().map(|m| m.to_string()).collect();
                    csv.row([
                        f.as_str(),
                        scenario.name.as_str(),
                        run.policy.as_str(),
                        if ok { "pass" } else { "fail" },
                        &scenario.steps.len().to_string(),
                        &run.trace.len().to_string(),
                        &outcomes.join(" "),
                        &run.fired.to_string(),
                        &mismatches.join("; "),
                    ]);
                }
            }
        }
    }
    gpuclaim::outln!("{passed} passed, {failed} failed, {refused} refused")?;
    if let Some(path) = &args.csv {
        csv.write_to(path)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(if refused > 0 {
        ExitCode::from(2)
    } else if failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("      {l}\n")).collect()
}
