//! `gpuclaim replay`: print one trace step by step, from a scenario file or
//! regenerated from an explore campaign's seed and run index.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use gpuclaim::Registry;
use gpuclaim::explore::{self, WalkConfig};
use gpuclaim::model::VmNames;
use gpuclaim::scenario;
use gpuclaim::trace::printable;

use super::explore::DeviceArgs;

/// Print a trace step by step: each action with its outcome, the state
/// after it and the invariants it violated.
///
/// Either FILE, a scenario or counterexample file (run under each of its
/// policies, or only --policy), or --seed S --run I with the device,
/// --policy, --steps and --swarm flags of an explore campaign: that
/// campaign's run I, regenerated exactly. The output is the same bytes every
/// time. Exit status: 0, or 1 when a file's expectations do not hold, 2 on
/// an error.
#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("source").args(["file", "seed"]).required(true)))]
pub struct Args {
    /// A scenario or counterexample file: a regular file of at most 1 MiB.
    #[arg(value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// The campaign's master seed (with --run, --gpus, --vms and --policy).
    #[arg(long, value_name = "S", requires_all = ["run", "gpus", "vms", "policy"])]
    pub seed: Option<u64>,
    /// The run index within the campaign (with --seed).
    #[arg(long, value_name = "I", requires = "seed", conflicts_with = "file")]
    pub run: Option<u64>,
    /// GPUs of the device (1 to 8), as given to explore.
    #[arg(long, value_name = "G", value_parser = clap::value_parser!(u8).range(1..=8), conflicts_with = "file")]
    pub gpus: Option<u8>,
    /// VM slots (0 to 24), as given to explore.
    #[arg(long, value_name = "V", value_parser = clap::value_parser!(u8).range(0..=24), conflicts_with = "file")]
    pub vms: Option<u8>,
    /// GPUs each VM needs, as given to explore.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u8).range(0..=8), conflicts_with = "file")]
    pub size: u8,
    /// The policy: with --seed, the campaign's (required); with FILE, run
    /// only this one of the file's policies.
    #[arg(long, value_name = "P")]
    pub policy: Option<String>,
    /// Most actions per walk (0 to 100000000), as given to explore. The
    /// walk's actions and states are held in memory (tens of bytes a
    /// step); its text is written as it is made.
    #[arg(long, value_name = "K", default_value_t = 50, value_parser = clap::value_parser!(u64).range(0..=100_000_000), conflicts_with = "file")]
    pub steps: u64,
    /// The campaign used --swarm.
    #[arg(long, conflicts_with = "file")]
    pub swarm: bool,
    /// The campaign used --updates.
    #[arg(long, conflicts_with = "file")]
    pub updates: bool,
}

pub fn main(args: Args, registry: &Registry) -> anyhow::Result<ExitCode> {
    if let Some(file) = &args.file {
        let (text, code) = replay_file(file, args.policy.as_deref(), registry)?;
        gpuclaim::out!("{text}")?;
        return Ok(code);
    }
    let device = DeviceArgs {
        gpus: args.gpus.expect("clap requires --gpus"),
        vms: args.vms.expect("clap requires --vms"),
        size: args.size,
        policy: args.policy.clone().expect("clap requires --policy"),
        updates: args.updates,
    };
    // Streamed: a walk of 1e8 steps is gigabytes of text.
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let written = replay_seed(
        &mut out,
        &device,
        usize::try_from(args.steps).context("--steps")?,
        args.swarm,
        args.seed.expect("clap requires --seed"),
        args.run.expect("clap requires --run"),
        registry,
    );
    let flushed = std::io::Write::flush(&mut out);
    match (written, flushed) {
        (Err(e), _) => match e.downcast::<std::io::Error>() {
            Ok(io) => Err(gpuclaim::report::StdoutError(io).into()),
            Err(other) => Err(other),
        },
        (Ok(()), Err(io)) => Err(gpuclaim::report::StdoutError(io).into()),
        (Ok(()), Ok(())) => Ok(ExitCode::SUCCESS),
    }
}

/// The text `replay FILE` prints, and its exit status.
pub fn replay_file(
    file: &Path,
    only: Option<&str>,
    registry: &Registry,
) -> anyhow::Result<(String, ExitCode)> {
    let s = scenario::load(file, registry).map_err(|e| anyhow::anyhow!("{e}"))?;
    let policies: Vec<String> = match only {
        Some(p) if !s.policy_names().iter().any(|q| q == p) => anyhow::bail!(
            "--policy {p}: {} lists only {}",
            file.display(),
            s.policy_names().join(", ")
        ),
        Some(p) => vec![p.to_string()],
        None => s.policy_names(),
    };
    let mut out = String::new();
    let mut failed = false;
    writeln!(
        out,
        "{}: {}",
        gpuclaim::report::shown(file),
        printable(&s.name)
    )?;
    for p in &policies {
        let policy = registry
            .get(p)
            .with_context(|| format!("unknown policy {p}"))?;
        let run = s.run(&policy);
        writeln!(
            out,
            "under {p}: {} actions, violations: {}",
            run.trace.len(),
            if run.fired.is_empty() {
                "none".to_string()
            } else {
                run.fired.to_string()
            }
        )?;
        out.push_str(&run.render_trace());
        if run.passed() {
            writeln!(out, "  expectations: pass")?;
        } else {
            failed = true;
            writeln!(out, "  expectations: FAIL")?;
            for m in &run.mismatches {
                writeln!(out, "    {m}")?;
            }
        }
    }
    Ok((
        out,
        if failed {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        },
    ))
}

/// The text `replay --seed S --run I` prints, written to `out` a line at a
/// time (the walk's actions and states are held in memory, the text is
/// not).
pub fn replay_seed(
    out: &mut dyn std::io::Write,
    device_args: &DeviceArgs,
    steps: usize,
    swarm: bool,
    seed: u64,
    index: u64,
    registry: &Registry,
) -> anyhow::Result<()> {
    let chosen = device_args.policy(registry)?;
    crate::with_allocator!(chosen, |policy| {
        replay_seed_with(out, device_args, steps, swarm, seed, index, policy)
    })
}

fn replay_seed_with<A: gpuclaim::Allocator + ?Sized>(
    out: &mut dyn std::io::Write,
    device_args: &DeviceArgs,
    steps: usize,
    swarm: bool,
    seed: u64,
    index: u64,
    policy: &A,
) -> anyhow::Result<()> {
    let device = device_args.device()?;
    let config = WalkConfig {
        device,
        steps,
        swarm,
    };
    let (summary, run) = explore::replay_run(policy, config, seed, index);
    let names = VmNames::letters(device.vms());
    writeln!(
        out,
        "replay {} --steps {steps} --seed {seed} --run {index}{}",
        device_args.flags(),
        if swarm { " --swarm" } else { "" }
    )?;
    writeln!(
        out,
        "run seed {}, kinds {}, {} actions, {} distinct states",
        gpuclaim::seed::run_seed(seed, index),
        summary.kinds,
        summary.steps,
        summary.distinct_states
    )?;
    writeln!(
        out,
        "  init {:<30} {:<8} {}",
        "",
        "",
        device.initial().render(&device, &names)
    )?;
    // The lines of scenario::render_trace, one at a time.
    for (i, (e, state)) in run.trace.iter().zip(&run.states).enumerate() {
        write!(
            out,
            "  {i:>3}  {:<30} {:<8} {}",
            e.action.render(&names),
            e.outcome.name(),
            state.render(&device, &names)
        )?;
        if e.violations.is_empty() {
            writeln!(out)?;
        } else {
            writeln!(out, "  VIOLATES {}", e.violations)?;
        }
    }
    match summary.first_violation {
        Some((inv, at)) => writeln!(
            out,
            "first violation: {inv} at action {at}; violated: {}",
            run.fired
        )?,
        None => writeln!(out, "no violation")?,
    }
    Ok(())
}
