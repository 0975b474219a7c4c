//! `gpuclaim check`: the exhaustive breadth-first checker.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use gpuclaim::check::{Checker, Progress};
use gpuclaim::model::VmNames;
use gpuclaim::report::count;
use gpuclaim::scenario::render_trace;
use gpuclaim::{Allocator, Registry};

use super::explore::{DeviceArgs, write_counterexample};

/// Visit every reachable state of a device and check every invariant on
/// every transition.
///
/// Breadth-first from the initial state (every GPU free, every VM absent,
/// Kubernetes unconfigured); two states are the same when MODEL.md says so.
/// Prints unique states, transitions, maximum depth, seconds, states per
/// second and the visited set's size. For each violated invariant, prints
/// a shortest counterexample (breadth-first) and writes it as a scenario
/// file under --counterexamples. The counts do not depend on --threads.
/// On a terminal, a spinner on stderr shows the depth reached and the
/// states and transitions so far.
///
/// States are kept as 64-bit keys of 2 + 2G + M + V(4 + G) bits, where M
/// is the bits of the allocator's own state (0 for fixed and legacy, G for
/// snapshot; an external allocator gets what is left). So the checker
/// takes at most 12 VM slots with 1 GPU, 9 with 2, 8 with 3, 6 with 4 and
/// 3 with 8 under fixed and legacy (11, 9, 7, 6 and 3 under snapshot);
/// explore and replay take up to 24. --symmetry needs an allocator that
/// declares its VM slots interchangeable (every built-in one does).
///
/// Exit status: 0 when no invariant is violated, 1 when one is, 2 on an
/// error (for example a device too large for 64-bit state keys).
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub device: DeviceArgs,
    /// Worker threads (0: one per core; at most 1024). The counts do not
    /// depend on it.
    #[arg(long, value_name = "T", default_value_t = 0, value_parser = super::explore::parse_threads)]
    pub threads: usize,
    /// Treat VMs of the same size as interchangeable (a state stands for
    /// every permutation of its same-size VMs) and count the classes.
    #[arg(long)]
    pub symmetry: bool,
    /// Folder for the counterexample scenario files.
    #[arg(long, value_name = "DIR", default_value = "reports/counterexamples")]
    pub counterexamples: PathBuf,
}

pub fn main(args: Args, registry: &Registry) -> anyhow::Result<ExitCode> {
    let chosen = args.device.policy(registry)?;
    crate::with_allocator!(chosen, |policy| check(&args, policy))
}

fn check<A: Allocator + ?Sized>(args: &Args, policy: &A) -> anyhow::Result<ExitCode> {
    let device = args.device.device()?;
    // A counterexample must have somewhere to go: checked before the search.
    gpuclaim::report::check_folder(&args.counterexamples)
        .with_context(|| format!("--counterexamples {}", args.counterexamples.display()))?;
    // A spinner with the depth and counts so far, when stderr is a terminal.
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.enable_steady_tick(std::time::Duration::from_millis(200));
        bar.set_message("depth 0: 1 state");
        bar
    });
    let show = |p: Progress| {
        if let Some(bar) = &bar {
            bar.set_message(format!(
                "depth {}: {} states, {} transitions",
                p.depth, p.unique_states, p.transitions
            ));
        }
    };
    let report = Checker::new(policy, device)
        .threads(args.threads)
        .symmetry(args.symmetry)
        .on_level(&show)
        .run();
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let report = report?;
    gpuclaim::outln!(
        "check {}{}",
        args.device.flags(),
        if args.symmetry { " --symmetry" } else { "" }
    )?;
    gpuclaim::outln!(
        "unique states: {}{}",
        report.unique_states,
        if args.symmetry {
            " (classes under VM symmetry)"
        } else {
            ""
        }
    )?;
    gpuclaim::outln!("transitions: {}", report.transitions)?;
    gpuclaim::outln!("max depth: {}", report.max_depth)?;
    gpuclaim::outln!("seconds: {:.3}", report.seconds)?;
    gpuclaim::outln!("states/second: {:.0}", report.states_per_second())?;
    gpuclaim::outln!(
        "visited set: {} bytes ({:.1} bytes/state)",
        report.visited_bytes,
        report.bytes_per_state()
    )?;
    gpuclaim::outln!(
        "largest frontier: {} states (current and next level, 8 bytes each)",
        report.peak_frontier
    )?;
    if report.violations.is_empty() {
        gpuclaim::outln!("violations: none")?;
        return Ok(ExitCode::SUCCESS);
    }
    let names = VmNames::letters(device.vms());
    for found in &report.violations {
        gpuclaim::outln!(
            "VIOLATED {} on {}; a shortest counterexample ({}):",
            found.invariant,
            count(found.transitions, "transition", "transitions"),
            count(found.counterexample.len() as u64, "action", "actions")
        )?;
        let run = gpuclaim::run_actions(policy, &device, &names, &found.counterexample);
        gpuclaim::out!("{}", render_trace(&device, &names, &run.trace, &run.states))?;
        let name = format!(
            "{} violates {}: shortest counterexample (breadth-first)",
            policy.name(),
            found.invariant
        );
        let source = format!("gpuclaim check {}", args.device.flags());
        let path = write_counterexample(
            &args.counterexamples,
            policy,
            &device,
            &found.counterexample,
            found.invariant,
            &name,
            &source,
        )
        .context("writing a counterexample")?;
        gpuclaim::outln!("  wrote {}", gpuclaim::report::shown(&path))?;
    }
    Ok(ExitCode::from(1))
}
