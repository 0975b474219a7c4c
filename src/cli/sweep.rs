//! `gpuclaim sweep`: a grid of simulator configurations over seeds, run in
//! parallel, written as runs.csv, summary.csv and SVG plots.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use gpuclaim::Registry;
use gpuclaim::report::count;
use gpuclaim::sim::sweep::{self, Plan, SweepOptions, Written};

/// Run a sweep described by a TOML file (see sweeps/ for examples).
///
/// The grid is the product of the listed values of: gpus, policies,
/// arrival_per_hour, lifetime_hours, on_hours, off_hours,
/// provisioned_probability, kube_at_hours, takeover_mean_minutes (or,
/// with a [trace] section, trace_fraction), each grid point run with
/// `seeds` seeds. Writes OUT/NAME/runs.csv (one row per run: parameters,
/// seed, every counter), summary.csv (per grid point: mean and 95%
/// confidence interval over the seeds), failures.svg and gpu_hours.svg.
/// The bytes do not depend on --threads.
///
/// Every key is explained in sweeps/README.md. Defaults that are
/// ASSUMPTIONS, not documented figures (each can be set in the file; the
/// durations and the takeover mean are MODEL.md's assumed defaults):
/// horizon 720 h (30 days); arrival 0.1/h; lifetime 72 h; on 8 h; off
/// 4 h; provisioned probability 0; Kubernetes configured at 24 h;
/// takeover mean 60 min; 24 VM slots of 1 GPU; durations create-vm
/// uniform 5-20 min, start 3, stop 2, remove 2, configure-kube 30.
///
/// Limits, against slips such as 1e300: horizon_hours at most 1e6 (114
/// years); arrival_per_hour at most 1e6, and at most 1e8 expected arrivals
/// per run (rate times horizon); trace times and a trace's scaled last end
/// at most 1e6 hours.
///
/// Prints, per policy and invariant, how many steps violated it.
#[derive(clap::Args)]
pub struct Args {
    /// The sweep configuration (TOML): a regular file of at most 1 MiB; the
    /// trace CSV it names, at most 256 MiB; a grid of at most 1,000,000
    /// points (the product of its lists' lengths), held in memory.
    pub config: PathBuf,
    /// Worker threads (0: one per core; at most 1024). The output does not
    /// depend on it.
    #[arg(long, value_name = "T", default_value_t = 0, value_parser = super::explore::parse_threads)]
    pub threads: usize,
    /// Base output folder; results go to OUT/NAME/.
    #[arg(long, value_name = "OUT", default_value = "reports")]
    pub out: PathBuf,
    /// Run only share I of N (runs r with r % N == I, I from 0; N at most
    /// the number of runs) and write
    /// OUT/NAME/shard-I-of-N/{runs.csv,manifest.toml}; combine the N
    /// shards with `gpuclaim merge`.
    #[arg(long, value_name = "I/N", value_parser = parse_shard)]
    pub shard: Option<(u64, u64)>,
}

/// `I/N` with `0 <= I < N`.
pub fn parse_shard(s: &str) -> Result<(u64, u64), String> {
    let (i, n) = s
        .split_once('/')
        .ok_or_else(|| format!("`{s}`: expected I/N, as in 0/4"))?;
    let i: u64 = i
        .trim()
        .parse()
        .map_err(|_| format!("`{s}`: I must be a whole number"))?;
    let n: u64 = n
        .trim()
        .parse()
        .map_err(|_| format!("`{s}`: N must be a whole number"))?;
    if n == 0 || i >= n {
        return Err(format!("`{s}`: expected 0 <= I < N"));
    }
    Ok((i, n))
}

pub fn main(args: Args, registry: &Registry) -> anyhow::Result<ExitCode> {
    let plan = Plan::load(&args.config, registry)?;
    if let Some((i, n)) = args.shard {
        sweep::check_shard(plan.runs(), (i, n))
            .map_err(|m| anyhow::anyhow!("--shard {i}/{n}: {m}"))?;
    }
    // The outputs must have somewhere to go: checked before the runs, down
    // to the folder they go in (OUT/NAME may be a file).
    let dir = match args.shard {
        Some((i, n)) => args.out.join(&plan.name).join(format!("shard-{i}-of-{n}")),
        None => args.out.join(&plan.name),
    };
    gpuclaim::report::check_folder(&dir)
        .with_context(|| format!("--out {}", args.out.display()))?;
    let total = plan.runs();
    let mine = match args.shard {
        Some((i, n)) => total / n + u64::from(total % n > i),
        None => total,
    };
    eprintln!(
        "sweep `{}`: {} x {} = {}{}",
        plan.name,
        count(plan.points.len() as u64, "grid point", "grid points"),
        count(u64::from(plan.seeds), "seed", "seeds"),
        count(total, "run", "runs"),
        args.shard
            .map(|(i, n)| format!(" (shard {i}/{n}: {})", count(mine, "run", "runs")))
            .unwrap_or_default()
    );
    if let Some(t) = &plan.trace {
        eprintln!(
            "trace {}: {}",
            gpuclaim::report::shown(&t.file.path),
            t.file.read_summary()
        );
        for e in &t.file.bad_examples {
            eprintln!("  {e}");
        }
    }
    let bar = std::io::stderr().is_terminal().then(|| {
        let b = indicatif::ProgressBar::new(mine);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:40} {pos}/{len} runs {elapsed_precise} eta {eta}",
            )
            .expect("a valid template"),
        );
        b
    });
    let options = SweepOptions {
        out: args.out.clone(),
        // rayon reads 0 as one thread per core, as explore and check do.
        threads: Some(args.threads),
        shard: args.shard,
    };
    let progress = |done: u64| {
        if let Some(b) = &bar {
            b.set_position(done);
        }
    };
    let written = sweep::run_sweep(&plan, registry, &options, &progress)
        .with_context(|| format!("running {}", args.config.display()))?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    print_written(&written)?;
    Ok(ExitCode::SUCCESS)
}

pub fn print_written(w: &Written) -> Result<(), gpuclaim::report::StdoutError> {
    gpuclaim::outln!(
        "{} written to {}",
        count(w.runs, "run", "runs"),
        gpuclaim::report::shown(&w.dir)
    )?;
    for f in &w.files {
        gpuclaim::outln!("  {}", gpuclaim::report::shown(f))?;
    }
    gpuclaim::outln!("violations (steps, over all runs):")?;
    for (k, v) in &w.violations {
        gpuclaim::outln!("  {k}: {v}")?;
    }
    Ok(())
}
