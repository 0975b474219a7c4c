//! `gpuclaim run`: every scenario file under each of its policies.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use gpuclaim::Registry;
use gpuclaim::report::CsvDoc;
use gpuclaim::scenario::{self, Found, PolicyRun, Scenario, find_scenarios};
use gpuclaim::trace::printable;

/// Run scenario files and compare what they expect.
///
/// Prints one line per scenario and policy, PASS or FAIL; for a failure,
/// every expectation that differs and the trace with each step's outcome.
/// Exit status: 0 when all pass, 1 when an expectation fails, 2 when a file
/// or path was refused (a missing path or an unreadable folder is refused
/// by name; the other files still run).
#[derive(clap::Args)]
pub struct Args {
    /// Scenario files or folders (searched for *.toml). Each file must be a
    /// regular file (not a FIFO or a device) of at most 1 MiB; a path that
    /// is not is refused by name, and the others still run.
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
    let found = find_scenarios(&args.paths);
    if found.is_empty() {
        let paths: Vec<String> = args.paths.iter().map(|p| p.display().to_string()).collect();
        anyhow::bail!("no scenario files (*.toml) under {}", paths.join(", "));
    }
    if let Some(path) = &args.csv
        && let Some(input) = found
            .iter()
            .find(|f| matches!(f, Found::File(f) if gpuclaim::report::same_file(path, f)))
            .map(Found::path)
    {
        anyhow::bail!(
            "--csv {} would replace the scenario file {}; write the CSV elsewhere",
            path.display(),
            input.display()
        );
    }
    let mut csv = CsvDoc::new(CSV_HEADER);
    let (mut passed, mut failed, mut refused) = (0, 0, 0);
    // One file at a time, printed as it is done: its runs (traces and
    // states) are dropped before the next file is read.
    for f in found {
        let (file, result) = match f {
            Found::File(file) => {
                let result = run_files(std::slice::from_ref(&file), registry).pop();
                (file, result.map(|(_, r)| r))
            }
            Found::Refused(e) => (e.file.clone(), Some(FileResult::Refused(e))),
        };
        let Some(result) = result else { continue };
        let file = &file;
        // Escaped: a newline in a file name must not forge a line of its own.
        let f = gpuclaim::report::shown(file);
        match &result {
            FileResult::Refused(e) => {
                refused += 1;
                gpuclaim::outln!("REFUSED {f}")?;
                gpuclaim::outln!(
                    "        {}",
                    gpuclaim::report::escape_controls(&e.to_string())
                )?;
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
