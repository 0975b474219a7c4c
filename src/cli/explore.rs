//! `gpuclaim explore`: a campaign of seeded random (or swarm) walks, one
//! CSV row per run, failing runs shrunk to counterexample scenario files.
//! Also the device and policy flags that `check` and `replay` share.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use gpuclaim::counterexample;
use gpuclaim::explore::{CSV_HEADER, Campaign, CsvRows};
use gpuclaim::model::{Action, Device};
use gpuclaim::report::count;
use gpuclaim::report::{AtomicFile, CsvDoc, write_atomic};
use gpuclaim::{Allocator, Invariant, Registry};

/// The device and the policy under test.
#[derive(clap::Args, Clone, Debug)]
pub struct DeviceArgs {
    /// GPUs of the device (1 to 8).
    #[arg(long, value_name = "G", value_parser = clap::value_parser!(u8).range(1..=8))]
    pub gpus: u8,
    /// VM slots of the device (0 to 24), named a, b, … in traces.
    #[arg(long, value_name = "V", value_parser = clap::value_parser!(u8).range(0..=24))]
    pub vms: u8,
    /// GPUs each VM needs (0 to the device's GPU count; 0 is an ordinary VM).
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u8).range(0..=8))]
    pub size: u8,
    /// The allocator under test: fixed (documented behaviour), legacy
    /// (Kubernetes takes GPUs freed by a stopped VM), snapshot (a racy
    /// configure), or one named in the --allocators file.
    #[arg(long, value_name = "P")]
    pub policy: String,
    /// Offer `update-device` as an action (MODEL.md version 2: every
    /// running and provisioned-stopped VM and a configured Kubernetes
    /// reboot; everything else waits for its end). Off: exactly the states
    /// of version 1.
    #[arg(long)]
    pub updates: bool,
}

impl DeviceArgs {
    pub fn device(&self) -> anyhow::Result<Device> {
        Ok(Device::uniform(self.gpus, usize::from(self.vms), self.size)
            .with_context(|| format!("--size {}", self.size))?
            .with_updates(self.updates))
    }
    /// The allocator --policy names.
    pub fn policy(&self, registry: &Registry) -> anyhow::Result<super::Chosen> {
        super::Chosen::resolve(registry, &self.policy).context("--policy")
    }
    /// The flags again, for `source` lines and messages.
    pub fn flags(&self) -> String {
        format!(
            "--gpus {} --vms {} --size {} --policy {}{}",
            self.gpus,
            self.vms,
            self.size,
            self.policy,
            if self.updates { " --updates" } else { "" }
        )
    }
}

/// Explore random interleavings: N seeded walks of up to K steps.
///
/// Each walk starts with every GPU free and, at each step, picks uniformly
/// one of the actions enabled in its state (MODEL.md), checking every
/// invariant after it. A walk ends after --steps actions, or earlier when
/// no action is enabled (with --swarm, none of its kinds). Run I uses the
/// seed seed::run_seed(S, I), so `gpuclaim replay --seed S --run I` with the
/// same flags prints exactly that run. The CSV has one row per run, in run
/// order, and the same bytes for every --threads.
///
/// Every failing run is shrunk (ddmin) against its first violated
/// invariant; each distinct (invariant, shrunk trace) is written once as a
/// scenario file expecting the violation, with explore-summary.csv counting
/// the runs that led to each. Every such file passes `gpuclaim run`.
///
/// Memory does not grow with --steps as such: each worker's table of a
/// walk's distinct states starts at 2 KiB and grows, to under 64 bytes a
/// state (96 for a moment while it doubles), only as the walk finds
/// states it was not in yet (at most --steps + 1, and at most the
/// device's reachable states), and a failing run keeps its actions only
/// up to its first violation, for shrinking.
///
/// Exit status: 0 when no run violated an invariant, 1 when one did, 2 on
/// an error.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub device: DeviceArgs,
    /// Number of walks.
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub runs: u64,
    /// Most actions per walk, 0 to 100000000 (begin steps, end steps and
    /// internal events count one each).
    #[arg(long, value_name = "K", default_value_t = 50, value_parser = clap::value_parser!(u64).range(0..=100_000_000))]
    pub steps: u64,
    /// Master seed; run I uses seed::run_seed(S, I).
    #[arg(long, value_name = "S", default_value_t = 0)]
    pub seed: u64,
    /// Worker threads (0: one per core; at most 1024). The output does not
    /// depend on it.
    #[arg(long, value_name = "T", default_value_t = 0, value_parser = parse_threads)]
    pub threads: usize,
    /// Swarm testing: each run draws a random nonempty subset of the
    /// operation kinds and picks only actions of those kinds.
    #[arg(long)]
    pub swarm: bool,
    /// The CSV of runs: run, seed, policy, gpus, vms, sizes, kinds (the
    /// operation kinds the run could pick: `all`, or names joined by `+`),
    /// steps (actions taken), first_violation and first_violation_step
    /// (the first invariant violated and the index of that action, 0 the
    /// first), violations (every invariant violated in the run), ok, no_gpu,
    /// rejected (actions with each outcome), distinct_states (different
    /// states, MODEL.md identity, the walk was in, the initial one
    /// included), shrunk_actions (length of the shrunk counterexample).
    #[arg(long, value_name = "FILE", default_value = "reports/explore.csv")]
    pub out: PathBuf,
    /// Folder for the shrunk counterexample scenario files and
    /// explore-summary.csv. Files an earlier run left there stay (a file
    /// of the same name is replaced); the summary lists this run's.
    #[arg(long, value_name = "DIR", default_value = "reports/counterexamples")]
    pub counterexamples: PathBuf,
}

pub fn main(args: Args, registry: &Registry) -> anyhow::Result<ExitCode> {
    let chosen = args.device.policy(registry)?;
    crate::with_allocator!(chosen, |policy| explore(&args, policy))
}

fn explore<A: Allocator + ?Sized>(args: &Args, policy: &A) -> anyhow::Result<ExitCode> {
    let device = args.device.device()?;
    let steps = usize::try_from(args.steps).context("--steps")?;
    // Where the outputs go is checked before the campaign, not after.
    gpuclaim::report::check_file(&args.out)
        .with_context(|| format!("--out {}", args.out.display()))?;
    gpuclaim::report::check_folder(&args.counterexamples)
        .with_context(|| format!("--counterexamples {}", args.counterexamples.display()))?;
    if gpuclaim::report::contains_path(&args.out, &args.counterexamples) {
        anyhow::bail!(
            "--out {} would be the folder --counterexamples {} (or one of its parents); give the runs' file another path",
            args.out.display(),
            args.counterexamples.display()
        );
    }
    if gpuclaim::report::same_file(&args.out, &summary_path(&args.counterexamples)) {
        anyhow::bail!(
            "--out {} is where the counterexamples' summary goes; write the runs elsewhere",
            args.out.display()
        );
    }
    let bar = if std::io::stderr().is_terminal() {
        indicatif::ProgressBar::new(args.runs)
    } else {
        indicatif::ProgressBar::hidden()
    };
    let start = Instant::now();
    // Rows are streamed to the output (written to a temporary file and
    // renamed into place at the end), so memory does not grow with --runs.
    let mut file =
        AtomicFile::create(&args.out).with_context(|| format!("writing {}", args.out.display()))?;
    let rows = CsvRows::new(policy.name(), &device);
    let mut write_error: Option<std::io::Error> = None;
    let (mut failing, mut total_steps) = (0u64, 0u64);
    let mut first_by_invariant = [0u64; Invariant::COUNT];
    let mut header = csv::Writer::from_writer(Vec::new());
    header
        .write_record(CSV_HEADER)
        .map_err(std::io::Error::from)
        .and_then(|()| header.into_inner().map_err(|e| e.into_error()))
        .and_then(|bytes| file.write_all(&bytes))
        .with_context(|| format!("writing {}", args.out.display()))?;
    // The workers format their runs' rows; this thread only counts and
    // writes the bytes, in run order.
    let counterexamples = Campaign::new(policy, device)
        .runs(args.runs)
        .steps(steps)
        .seed(args.seed)
        .swarm(args.swarm)
        .threads(args.threads)
        .run_rendered(
            |n| bar.inc(n),
            |batch| rows.render(batch),
            |batch, bytes| {
                for r in &batch {
                    total_steps += r.summary.steps as u64;
                    if let Some((inv, _)) = r.summary.first_violation {
                        failing += 1;
                        first_by_invariant[inv as usize] += 1;
                    }
                }
                if write_error.is_none()
                    && let Err(e) = file.write_all(&bytes)
                {
                    write_error = Some(e);
                }
            },
        );
    bar.finish_and_clear();
    let seconds = start.elapsed().as_secs_f64();
    if let Some(e) = write_error {
        return Err(e).with_context(|| format!("writing {}", args.out.display()));
    }
    file.commit()
        .with_context(|| format!("writing {}", args.out.display()))?;

    let mut summary = CsvDoc::new([
        "file",
        "policy",
        "invariant",
        "actions",
        "runs",
        "first_run",
    ]);
    for c in &counterexamples {
        let source = format!(
            "gpuclaim explore {} --steps {} --seed {}{}, run {} (seed {}), shrunk",
            args.device.flags(),
            args.steps,
            args.seed,
            if args.swarm { " --swarm" } else { "" },
            c.first_run,
            gpuclaim::seed::run_seed(args.seed, c.first_run),
        );
        let name = format!(
            "{} violates {}: shrunk counterexample from explore",
            policy.name(),
            c.invariant
        );
        let file = write_counterexample(
            &args.counterexamples,
            policy,
            &device,
            &c.actions,
            c.invariant,
            &name,
            &source,
        )?;
        summary.row([
            file.display().to_string().as_str(),
            policy.name(),
            c.invariant.name(),
            &c.actions.len().to_string(),
            &c.runs.to_string(),
            &c.first_run.to_string(),
        ]);
    }
    let summary_path = summary_path(&args.counterexamples);
    summary
        .write_to(&summary_path)
        .with_context(|| format!("writing {}", summary_path.display()))?;

    gpuclaim::outln!(
        "explore {} --runs {} --steps {} --seed {}{}",
        args.device.flags(),
        args.runs,
        args.steps,
        args.seed,
        if args.swarm { " --swarm" } else { "" }
    )?;
    gpuclaim::outln!(
        "{}, {}, {} failing, {:.2} s ({:.0} steps/s)",
        count(args.runs, "run", "runs"),
        count(total_steps, "step", "steps"),
        failing,
        seconds,
        total_steps as f64 / seconds.max(1e-9)
    )?;
    for inv in Invariant::ALL {
        let n = first_by_invariant[inv as usize];
        if n > 0 {
            gpuclaim::outln!("  {inv}: first violation of {}", count(n, "run", "runs"))?;
        }
    }
    for c in &counterexamples {
        gpuclaim::outln!(
            "  counterexample: {} in {}, from {} (first: run {})",
            c.invariant,
            count(c.actions.len() as u64, "action", "actions"),
            count(c.runs, "run", "runs"),
            c.first_run
        )?;
    }
    gpuclaim::outln!("wrote {}", gpuclaim::report::shown(&args.out))?;
    if !counterexamples.is_empty() {
        gpuclaim::outln!(
            "wrote {} and {}",
            count(
                counterexamples.len() as u64,
                "counterexample file",
                "counterexample files"
            ),
            gpuclaim::report::shown(&summary_path)
        )?;
    }
    Ok(if failing > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Writes `actions` as a scenario file expecting what they do, under `dir`,
/// named by [`counterexample::file_name`]; returns the path.
/// Where the summary of the counterexamples written under `dir` goes.
fn summary_path(dir: &Path) -> PathBuf {
    dir.join("explore-summary.csv")
}

pub fn write_counterexample<P: Allocator + ?Sized>(
    dir: &Path,
    policy: &P,
    device: &Device,
    actions: &[Action],
    invariant: Invariant,
    name: &str,
    source: &str,
) -> anyhow::Result<PathBuf> {
    let scenario = counterexample::scenario_from_actions(policy, device, actions, name, source);
    let path = dir.join(counterexample::file_name(
        policy.name(),
        invariant,
        &scenario,
    ));
    write_atomic(&path, scenario.to_toml().as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// `--threads`: 0 (one per core) to 1024.
pub fn parse_threads(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if n <= 1024 => Ok(n),
        Ok(n) => Err(format!("{n} threads is more than 1024")),
        Err(e) => Err(format!("expected a number of threads: {e}")),
    }
}
