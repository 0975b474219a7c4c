//! `gpuclaim from-fuzz`: a fuzz input (a crash file or any corpus entry)
//! back into a readable, replayable scenario file.

use std::panic::{self, AssertUnwindSafe};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use gpuclaim::Registry;
use gpuclaim::fuzzing::{Checked, Conversion, Target, convert, convert_under};
use gpuclaim::report::{count, write_atomic};
use gpuclaim::scenario;

/// Turn a fuzz input into a shrunk scenario file.
///
/// For an interleaving target (interleaving_fixed, interleaving_legacy,
/// interleaving_snapshot; interleaving_updates and
/// interleaving_unmanaged_update, whose inputs also update the device) the
/// input is decoded exactly as the target decodes it and run under the
/// target's policy. When an invariant fires,
/// the actions are shrunk against the first one with the explorer's
/// shrinker and written as a scenario that expects that violation, named
/// POLICY-INVARIANT-HASH.toml, in DIR; the file passes `gpuclaim run`. When
/// none fires, nothing is written and the command says so. With --policy
/// NAME the input is run under that allocator instead (any allocator, an
/// external one from --allocators included), and the scenario lists it.
///
/// For scenario_parse and step_parse, the input is text for a parser, not
/// an interleaving: there is nothing to shrink and nothing is written. The
/// command replays the target's check (no panic; what parses round-trips)
/// and prints the result.
///
/// Exit status: 0 when a scenario was written or the input shows nothing
/// to fix; 1 when a parser input shows a bug (a panic or a failed round
/// trip); 2 on an error (unknown target, unreadable file).
#[derive(clap::Args)]
pub struct Args {
    /// The cargo-fuzz target the input belongs to: interleaving_fixed,
    /// interleaving_legacy, interleaving_snapshot, interleaving_updates,
    /// interleaving_unmanaged_update, scenario_parse or step_parse.
    pub target: String,
    /// The input: a crash file (fuzz/artifacts/TARGET/crash-…), a corpus
    /// entry or a regression input: a regular file of at most 1 MiB.
    pub file: PathBuf,
    /// Run an interleaving input under this allocator instead of the
    /// target's (built-in, or named in the --allocators file).
    #[arg(long, value_name = "P")]
    pub policy: Option<String>,
    /// Where the scenario file goes (created when missing).
    #[arg(long, value_name = "DIR", default_value = "reports/fuzz")]
    pub out: PathBuf,
}

pub fn main(args: Args, registry: &Registry) -> anyhow::Result<ExitCode> {
    let Some(target) = Target::from_name(&args.target) else {
        let names: Vec<&str> = Target::ALL.iter().map(|t| t.name()).collect();
        bail!(
            "unknown fuzz target `{}`; expected one of {}",
            args.target,
            names.join(", ")
        );
    };
    let data = gpuclaim::report::read_input(
        &args.file,
        gpuclaim::report::input_limits::FUZZ_INPUT_BYTES,
        "a fuzz input",
    )
    .map_err(|e| match e {
        gpuclaim::report::InputError::Io { error, .. } => {
            anyhow::Error::new(error).context(format!("reading {}", args.file.display()))
        }
        other => other.into(),
    })?;
    let input_name = args.file.file_name().map_or_else(
        || args.file.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let shown = gpuclaim::report::shown(&args.file);

    // A parser input may make the parser panic: that is the finding.
    let under = match &args.policy {
        Some(name) => Some(registry.resolve(name).context("--policy")?),
        None => None,
    };
    let conversion = match panic::catch_unwind(AssertUnwindSafe(|| match &under {
        Some(policy) => convert_under(&**policy, target, &data, &input_name),
        None => convert(target, &data, &input_name),
    })) {
        Ok(c) => c,
        Err(payload) if payload.is::<gpuclaim::external::AllocatorFailure>() => {
            // An allocator error, not a finding: the command reports it.
            panic::resume_unwind(payload)
        }
        Err(payload) => {
            let message = payload
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| payload.downcast_ref::<&str>().copied())
                .unwrap_or("(no message)");
            gpuclaim::outln!("{shown}: {target} PANICS on this input: {message}")?;
            gpuclaim::outln!(
                "  a panic on any input is a bug of the code under test; nothing to shrink"
            )?;
            return Ok(ExitCode::from(1));
        }
    };

    match conversion {
        Conversion::NoViolation {
            policy,
            gpus,
            vms,
            actions,
        } => {
            gpuclaim::outln!(
                "{shown}: no invariant fires under {policy} ({}, {}, {} decoded); nothing to shrink, no file written",
                count(u64::from(gpus), "GPU", "GPUs"),
                count(vms as u64, "VM slot", "VM slots"),
                count(actions as u64, "action", "actions")
            )?;
            Ok(ExitCode::SUCCESS)
        }
        Conversion::Parser(Ok(checked)) => {
            let what = match checked {
                Checked::Parsed => "parses and round-trips".to_string(),
                Checked::Refused(e) => format!("is refused without a panic ({e})"),
                Checked::Ran { .. } => unreachable!("only interleaving targets run"),
            };
            gpuclaim::outln!("{shown}: {target}: the input {what}")?;
            gpuclaim::outln!(
                "  a parser input is not an interleaving: nothing to shrink, no scenario written"
            )?;
            Ok(ExitCode::SUCCESS)
        }
        Conversion::Parser(Err(failure)) => {
            gpuclaim::outln!("{shown}: {target} FAILS on this input: {failure}")?;
            Ok(ExitCode::from(1))
        }
        Conversion::Counterexample {
            scenario,
            file_name,
            invariant,
            decoded,
            until_violation,
            shrunk,
        } => {
            let path = args.out.join(&file_name);
            let text = scenario.to_toml();
            // What is written must pass `gpuclaim run`: check before saying so.
            let back = scenario::parse(&path, &text, registry)
                .context("the scenario written does not read back (a bug of gpuclaim)")?;
            for p in back.policy_names() {
                let run = back.run(&registry.get(&p).expect("the scenario's policies are known"));
                if !run.passed() {
                    bail!(
                        "the scenario does not pass under {p} (a bug of gpuclaim): {:?}",
                        run.mismatches
                    );
                }
            }
            write_atomic(&path, text.as_bytes())
                .with_context(|| format!("writing {}", path.display()))?;
            gpuclaim::outln!(
                "{shown}: {invariant} under {} after {until_violation} of {decoded} actions; shrunk to {shrunk}",
                match &under {
                    Some(policy) => policy.name().to_string(),
                    None => target.policy().expect("interleaving target").to_string(),
                }
            )?;
            gpuclaim::outln!("  wrote {}", gpuclaim::report::shown(&path))?;
            for step in &scenario.steps {
                gpuclaim::outln!("    {step}")?;
            }
            match &args.policy {
                Some(_)
                    if under
                        .as_ref()
                        .is_some_and(|p| registry.builtin_named(p.name()).is_none()) =>
                {
                    gpuclaim::outln!(
                        "  replay: gpuclaim run --allocators FILE {} (the allocators file that names {})",
                        gpuclaim::report::shown(&path),
                        under.as_ref().map_or("", |p| p.name())
                    )?
                }
                _ => gpuclaim::outln!("  replay: gpuclaim run {}", gpuclaim::report::shown(&path))?,
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
