//! `gpuclaim simulate`: one run of the time-driven simulator, configured by
//! flags, printing every counter.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use gpuclaim::Registry;
use gpuclaim::model::MAX_VMS;
use gpuclaim::report::number;
use gpuclaim::seed;
use gpuclaim::sim::engine::Durations;
use gpuclaim::sim::limits::{self, MAX_ARRIVAL_PER_HOUR, MAX_HORIZON_HOURS};
use gpuclaim::sim::sweep::{self, Plan, Point, PointWorkload, TraceSpec, assumed};
use gpuclaim::sim::tracefile::{Columns, TimeUnit, TraceFile};
use gpuclaim::sim::{Dist, Simulator};

/// Run the time-driven simulator once and print its counters.
///
/// The run's seed is `seed::run_seed(--seed, 0)`: the same as seed index 0
/// of a sweep whose master_seed is --seed. Every default marked ASSUMED is
/// an assumption (MODEL.md "Time"), not a documented figure.
#[derive(clap::Args)]
pub struct Args {
    /// GPUs of the device (1 to 8).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u8).range(1..=8))]
    pub gpus: u8,
    /// Policy: fixed, legacy or snapshot.
    #[arg(long, default_value = "legacy")]
    pub policy: String,
    /// Master seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Simulated hours, at most 1e6 (114 years) [ASSUMED: 720, 30 days; for
    /// a trace: its last end].
    #[arg(long, value_name = "H")]
    pub horizon_hours: Option<f64>,
    /// VM slots, 1 to 24 (a device runs at most 24 VMs).
    #[arg(long, default_value_t = assumed::VM_SLOTS)]
    pub slots: usize,
    /// GPUs per poisson VM, 0 to 8 and at most --gpus (documented sizes
    /// use 1).
    #[arg(long, default_value_t = assumed::VM_SIZE, conflicts_with = "trace", value_parser = clap::value_parser!(u8).range(0..=8))]
    pub size: u8,
    /// Poisson VM arrivals per hour, at most 1e6, and at most 1e8 expected
    /// over the horizon [ASSUMED].
    #[arg(long, default_value_t = assumed::ARRIVAL_PER_HOUR, conflicts_with = "trace")]
    pub arrival_per_hour: f64,
    /// Mean VM lifetime, hours, exponential, from the create's end [ASSUMED].
    #[arg(long, default_value_t = assumed::LIFETIME_HOURS, conflicts_with = "trace")]
    pub lifetime_hours: f64,
    /// Mean on period, hours, exponential; `inf` never stops [ASSUMED].
    #[arg(long, default_value_t = assumed::ON_HOURS, conflicts_with = "trace")]
    pub on_hours: f64,
    /// Mean off period, hours, exponential: at most 1e8 expected off
    /// periods a run (slots times horizon over off), as each ends in a
    /// start and a failed start is retried after another [ASSUMED].
    #[arg(long, default_value_t = assumed::OFF_HOURS, conflicts_with = "trace")]
    pub off_hours: f64,
    /// Probability that a stop is `provisioned` (keeps the GPUs) [ASSUMED].
    #[arg(long, default_value_t = assumed::PROVISIONED_PROBABILITY, conflicts_with = "trace")]
    pub provisioned_probability: f64,
    /// When configure-kube is requested, hours from 0 to 1e6, or `never`
    /// [ASSUMED: 24].
    #[arg(long, default_value = "24")]
    pub kube_at_hours: String,
    /// Mean delay of legacy's kube-takeover, minutes, exponential, positive
    /// and finite [ASSUMED: 60, MODEL.md's default].
    #[arg(long, default_value_t = assumed::TAKEOVER_MEAN_MINUTES)]
    pub takeover_mean_minutes: f64,
    /// create-vm duration, minutes: N, uniform:LOW:HIGH, exp:MEAN, or never
    /// (the operation never ends; its end step is not processed)
    /// [ASSUMED: uniform:5:20].
    #[arg(long, default_value = "uniform:5:20", value_parser = parse_dist)]
    pub create_minutes: Dist,
    /// start-vm duration, minutes, in the same forms [ASSUMED: 3].
    #[arg(long, default_value = "3", value_parser = parse_dist)]
    pub start_minutes: Dist,
    /// stop-vm duration, minutes, in the same forms [ASSUMED: 2].
    #[arg(long, default_value = "2", value_parser = parse_dist)]
    pub stop_minutes: Dist,
    /// remove-vm duration, minutes, in the same forms [ASSUMED: 2].
    #[arg(long, default_value = "2", value_parser = parse_dist)]
    pub remove_minutes: Dist,
    /// configure-kube duration, minutes, in the same forms [ASSUMED: 30].
    #[arg(long, default_value = "30", value_parser = parse_dist)]
    pub configure_minutes: Dist,
    /// Replay this trace CSV (times at most 1e6 hours) instead of the
    /// poisson workload (the poisson flags --size, --arrival-per-hour,
    /// --lifetime-hours, --on-hours, --off-hours and
    /// --provisioned-probability do not apply to it). A regular file of at
    /// most 256 MiB.
    #[arg(long, value_name = "FILE")]
    pub trace: Option<PathBuf>,
    /// Column preset of --trace: openb (name, num_gpu, creation_time,
    /// deletion_time, seconds). Needs --trace.
    #[arg(
        long,
        value_name = "NAME",
        conflicts_with = "columns",
        requires = "trace"
    )]
    pub preset: Option<String>,
    /// Columns of --trace: ID,GPUS,START,END (header names). Needs --trace.
    #[arg(long, value_name = "ID,GPUS,START,END", requires = "trace")]
    pub columns: Option<String>,
    /// Unit of the time columns of --columns: seconds, minutes or hours
    /// (the openb preset is in seconds). Needs --trace.
    #[arg(
        long,
        default_value = "seconds",
        requires = "trace",
        conflicts_with = "preset"
    )]
    pub unit: String,
    /// Share of the trace's requests to keep, chosen by id and seed. Needs
    /// --trace.
    #[arg(long, default_value_t = 1.0, requires = "trace")]
    pub fraction: f64,
    /// Multiply the trace's times by this; without --horizon-hours the
    /// scaled last end must be at most 1e6 hours. Needs --trace.
    #[arg(long, default_value_t = 1.0, requires = "trace")]
    pub time_scale: f64,
    /// Count and skip malformed trace rows instead of refusing the file.
    /// Needs --trace.
    #[arg(long, requires = "trace")]
    pub skip_bad: bool,
}

/// `N`, `uniform:LOW:HIGH`, `exp:MEAN` or `never` (minutes).
pub fn parse_dist(s: &str) -> Result<Dist, String> {
    let number = |t: &str| {
        t.trim()
            .parse::<f64>()
            .map_err(|_| format!("`{t}` is not a number of minutes"))
    };
    let d = match s.split(':').collect::<Vec<_>>().as_slice() {
        ["never"] => Dist::Never,
        [v] => Dist::Const(number(v)?),
        ["uniform", lo, hi] => Dist::Uniform(number(lo)?, number(hi)?),
        ["exp", m] => Dist::Exp(number(m)?),
        _ => {
            return Err(format!(
                "`{s}`: expected N, uniform:LOW:HIGH, exp:MEAN or never"
            ));
        }
    };
    match d {
        _ if d.is_valid() => Ok(d),
        Dist::Uniform(lo, hi) if lo > hi => Err(format!("`{s}`: LOW must not be more than HIGH")),
        _ => Err(format!("`{s}`: minutes must be finite and 0 or more")),
    }
}

pub fn main(args: Args, registry: &Registry) -> anyhow::Result<ExitCode> {
    if !registry.contains(&args.policy) {
        anyhow::bail!(
            "--policy `{}`: expected one of {}",
            args.policy,
            registry.names().join(", ")
        );
    }
    let kube_at_hours = match args.kube_at_hours.as_str() {
        "never" => None,
        h => Some(
            h.parse::<f64>()
                .ok()
                .filter(|v| limits::kube_at_hours("", *v).is_ok())
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "--kube-at-hours `{h}`: expected hours from 0 to {MAX_HORIZON_HOURS:e}, or never"
                    )
                })?,
        ),
    };
    limits::takeover_mean_minutes("--takeover-mean-minutes", args.takeover_mean_minutes)
        .map_err(anyhow::Error::msg)?;
    if !(0.0..=MAX_ARRIVAL_PER_HOUR).contains(&args.arrival_per_hour) {
        anyhow::bail!(
            "--arrival-per-hour must be a rate of 0 to {MAX_ARRIVAL_PER_HOUR:e} per hour"
        );
    }
    for (flag, v) in [
        ("--lifetime-hours", args.lifetime_hours),
        ("--on-hours", args.on_hours),
        ("--off-hours", args.off_hours),
    ] {
        if v.is_nan() || v <= 0.0 {
            anyhow::bail!("{flag} must be a positive number of hours (inf for never)");
        }
    }
    if !(0.0..=1.0).contains(&args.provisioned_probability) {
        anyhow::bail!("--provisioned-probability must be in [0, 1]");
    }
    if !(args.fraction > 0.0 && args.fraction <= 1.0) {
        anyhow::bail!("--fraction must be in (0, 1]");
    }
    if !(args.time_scale > 0.0 && args.time_scale.is_finite()) {
        anyhow::bail!("--time-scale must be a positive number");
    }
    if args
        .horizon_hours
        .is_some_and(|h| !(h > 0.0 && h <= MAX_HORIZON_HOURS))
    {
        anyhow::bail!(
            "--horizon-hours must be a positive number of at most {MAX_HORIZON_HOURS:e} (114 years)"
        );
    }
    if args.trace.is_none() {
        let horizon = args.horizon_hours.unwrap_or(assumed::HORIZON_HOURS);
        limits::arrivals("--arrival-per-hour", args.arrival_per_hour, horizon)
            .map_err(anyhow::Error::msg)?;
    }
    // The model allows a device of no VM slots, but both workloads would
    // only count every arrival as no-slot: refused, as a sweep's vm_slots.
    if !(1..=MAX_VMS).contains(&args.slots) {
        anyhow::bail!("--slots must be 1 to {MAX_VMS}");
    }
    if args.trace.is_none() {
        let horizon = args.horizon_hours.unwrap_or(assumed::HORIZON_HOURS);
        limits::off_periods(("--off-hours", args.off_hours), args.slots, horizon)
            .map_err(anyhow::Error::msg)?;
    }
    gpuclaim::Device::uniform(args.gpus, args.slots, args.size)
        .context("--gpus, --slots and --size")?;
    let (trace, workload) = match &args.trace {
        Some(path) => {
            let unit = TimeUnit::from_name(&args.unit).ok_or_else(|| {
                anyhow::anyhow!("--unit `{}`: expected seconds, minutes or hours", args.unit)
            })?;
            let columns = match (&args.preset, &args.columns) {
                (Some(p), None) => Columns::preset(p)
                    .ok_or_else(|| anyhow::anyhow!("--preset `{p}`: expected openb"))?,
                (None, Some(c)) => match c.split(',').map(str::trim).collect::<Vec<_>>()[..] {
                    [id, gpus, start, end] => Columns {
                        id: id.into(),
                        gpus: gpus.into(),
                        start: start.into(),
                        end: end.into(),
                        unit,
                    },
                    _ => anyhow::bail!("--columns `{c}`: expected ID,GPUS,START,END"),
                },
                _ => anyhow::bail!("--trace needs --preset openb or --columns ID,GPUS,START,END"),
            };
            let file = TraceFile::load(path, &columns, args.skip_bad)?;
            sweep::trace_horizon_within_limit(&file, args.time_scale, args.horizon_hours)
                .map_err(|m| anyhow::anyhow!("--time-scale: {m}"))?;
            (
                Some(TraceSpec::new(Arc::new(file), args.time_scale)),
                PointWorkload::Trace {
                    fraction: args.fraction,
                },
            )
        }
        None => (
            None,
            PointWorkload::Poisson {
                arrival_per_hour: args.arrival_per_hour,
                lifetime_hours: args.lifetime_hours,
                on_hours: args.on_hours,
                off_hours: args.off_hours,
                provisioned_probability: args.provisioned_probability,
            },
        ),
    };
    let point = Point {
        gpus: args.gpus,
        policy: args.policy.clone(),
        workload,
        kube_at_hours,
        takeover_mean_minutes: args.takeover_mean_minutes,
    };
    let plan = Plan {
        name: "simulate".into(),
        seeds: 1,
        master_seed: args.seed,
        horizon_hours: args.horizon_hours,
        vm_slots: args.slots,
        vm_size: args.size,
        durations: Durations {
            create: args.create_minutes,
            start: args.start_minutes,
            stop: args.stop_minutes,
            remove: args.remove_minutes,
            configure: args.configure_minutes,
        },
        trace,
        points: vec![point.clone()],
    };
    // The engine's own check, which sweeps apply too: whatever the flags
    // above let through, the run refuses here rather than panicking.
    plan.check_point(&point, registry)?;
    let run_seed = seed::run_seed(args.seed, 0);
    let (counters, selection) =
        plan.run_point(&point, run_seed, registry, &mut Simulator::new())?;
    if let (Some(t), Some(s)) = (&plan.trace, &selection) {
        gpuclaim::outln!(
            "trace {}: {}",
            gpuclaim::report::shown(&t.file.path),
            t.file.read_summary()
        )?;
        gpuclaim::outln!("  {s}")?;
        for e in &t.file.bad_examples {
            gpuclaim::outln!("  bad row: {e}")?;
        }
    }
    gpuclaim::outln!(
        "policy {} | gpus {} | seed {} (run seed {run_seed}) | horizon {} h",
        args.policy,
        args.gpus,
        args.seed,
        number(plan.horizon_hours())
    )?;
    let names = sweep::metric_columns(selection.is_some());
    let values = sweep::metric_values(&counters, selection.as_deref());
    let width = names.iter().map(String::len).max().unwrap_or(0);
    for (n, v) in names.iter().zip(values) {
        gpuclaim::outln!("{n:width$}  {}", if v.is_empty() { "-" } else { &v })?;
    }
    Ok(ExitCode::SUCCESS)
}
