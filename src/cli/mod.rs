//! The `gpuclaim` command line: argument parsing and printing only; every
//! command is a library function. [`main_with`] is the whole program with
//! a [`Registry`] of allocators, so a crate outside gpuclaim can build its
//! own binary with every command and its own allocators registered:
//!
//! ```no_run
//! use std::process::ExitCode;
//! use std::sync::Arc;
//!
//! fn main() -> ExitCode {
//!     let mut registry = gpuclaim::Registry::builtin();
//!     registry.register(Arc::new(gpuclaim::Fixed)); // your own allocator here
//!     gpuclaim::cli::main_with(registry)
//! }
//! ```

pub mod audit;
pub mod check;
pub mod explore;
pub mod from_fuzz;
pub mod merge;
pub mod nightly;
pub mod replay;
pub mod run;
pub mod simulate;
pub mod sweep;

use std::sync::Arc;

use gpuclaim::{Allocator, Builtin, Registry};

/// The allocator a command runs: a built-in one (static dispatch, the
/// engines' fast path) or any other from the registry.
pub enum Chosen {
    Builtin(Builtin),
    Other(Arc<dyn Allocator>),
}

impl Chosen {
    /// The allocator named `name` in `registry`.
    pub fn resolve(registry: &Registry, name: &str) -> anyhow::Result<Chosen> {
        let allocator = registry.resolve(name)?;
        Ok(match registry.builtin_named(name) {
            Some(b) => Chosen::Builtin(b),
            None => Chosen::Other(allocator),
        })
    }
}

/// Runs `$body` with `$a` bound to the chosen allocator as `&impl
/// Allocator`, monomorphised for the built-ins.
#[macro_export]
#[doc(hidden)]
macro_rules! with_allocator {
    ($chosen:expr, |$a:ident| $body:expr) => {
        match $chosen {
            $crate::cli::Chosen::Builtin(b) => {
                let $a = &b;
                $body
            }
            $crate::cli::Chosen::Other(arc) => {
                let $a: &dyn $crate::Allocator = &*arc;
                $body
            }
        }
    };
}

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Simulate and fuzz who holds the GPUs of an Azure Stack Edge Pro GPU
/// device — GPU virtual machines or the Kubernetes cluster — checking named
/// invariants after every step.
///
/// Invariants: no-double-claim, conservation, holds-match-state,
/// no-steal-after-dealloc, update-restarts-vms. Allocators: fixed
/// (documented behaviour), legacy (Kubernetes takes GPUs freed by a stopped
/// VM), snapshot (a racy allocator kept to prove the checkers catch double
/// claims), unmanaged-update (the update flow before release 2103), and any
/// named in an --allocators file (docs/allocator-protocol.md).
///
/// Exit status: 0 nothing found, 1 an invariant violated or an expectation
/// missed, 2 input refused, 3 an allocator failed (an allocator process
/// that exited, hung or garbled a reply).
#[derive(Parser)]
#[command(name = "gpuclaim", version, propagate_version = true)]
struct Cli {
    /// An allocators file (allocators.toml): allocators in other processes,
    /// each a name, a command, its arguments, environment and timeout (see
    /// docs/allocator-protocol.md). Their names can then be given to
    /// --policy and in a scenario's `policies = [...]`. A regular file of
    /// at most 1 MiB.
    #[arg(long, value_name = "FILE", global = true)]
    allocators: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Run(run::Args),
    Nightly(nightly::Args),
    Simulate(Box<simulate::Args>),
    Sweep(sweep::Args),
    Merge(merge::Args),
    Explore(explore::Args),
    Check(check::Args),
    Replay(replay::Args),
    FromFuzz(from_fuzz::Args),
    Audit(audit::Args),
}

/// Restores the default action of SIGPIPE, which Rust programs start with
/// ignored: `gpuclaim replay FILE | head` then ends quietly when `head`
/// stops reading, as `cat` does, instead of panicking in `println!`.
#[cfg(unix)]
fn die_quietly_on_closed_pipes() {
    unsafe extern "C" {
        fn signal(signum: std::ffi::c_int, handler: usize) -> usize;
    }
    const SIGPIPE: std::ffi::c_int = 13;
    const SIG_DFL: usize = 0;
    // SAFETY: sets the disposition of one signal to the default; no handler
    // code runs, and no other thread exists yet.
    unsafe { signal(SIGPIPE, SIG_DFL) };
}

/// The command line, where a value that looks like a negative number
/// (`--runs -5`, `--arrival-per-hour -3`) is taken as the flag's value, so
/// that the error says what the flag accepts instead of clap's "unexpected
/// argument '-5'".
fn parse() -> Cli {
    use clap::{CommandFactory, FromArgMatches};
    let command = Cli::command().mut_subcommands(|sub| {
        sub.mut_args(|arg| {
            if arg.get_action().takes_values() {
                arg.allow_negative_numbers(true)
            } else {
                arg
            }
        })
    });
    let matches = command.get_matches();
    Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}

/// The `gpuclaim` program with the built-in allocators.
pub fn main() -> ExitCode {
    main_with(Registry::builtin())
}

/// The `gpuclaim` program with the allocators of `registry` (and those of
/// an `--allocators` file) known by name to every command.
pub fn main_with(registry: Registry) -> ExitCode {
    #[cfg(unix)]
    die_quietly_on_closed_pipes();
    let cli = parse();
    let registry = match with_allocators_file(registry, cli.allocators.as_deref()) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("gpuclaim: error: {e:#}");
            return ExitCode::from(2);
        }
    };
    if !matches!(cli.command, Command::Nightly(_)) {
        // Ctrl-C or SIGTERM ends a run at once, without the outputs it was
        // still writing (their folders keep what they held before). `nightly`
        // installs its own handler: it finishes the job and writes reports.
        let installed = ctrlc::set_handler(|| {
            gpuclaim::report::remove_unfinished_and_close();
            eprintln!("gpuclaim: interrupted; the outputs being written were removed");
            std::process::exit(130);
        });
        if let Err(e) = installed {
            eprintln!(
                "gpuclaim: warning: no Ctrl-C handler ({e}); an interrupted run may leave .*.tmp-* files"
            );
        }
    }
    let result = gpuclaim::external::catch(|| match cli.command {
        Command::Run(args) => run::main(args, &registry),
        Command::Nightly(args) => nightly::main(args, &registry),
        Command::Simulate(args) => simulate::main(*args, &registry),
        Command::Sweep(args) => sweep::main(args, &registry),
        Command::Merge(args) => merge::main(args),
        Command::Explore(args) => explore::main(args, &registry),
        Command::Check(args) => check::main(args, &registry),
        Command::Replay(args) => replay::main(args, &registry),
        Command::FromFuzz(args) => from_fuzz::main(args, &registry),
        Command::Audit(args) => audit::main(args, &registry),
    });
    let result = match result {
        Ok(result) => result,
        Err(failure) => {
            // An allocator failed (a child that died, hung or garbled a
            // reply): not an invariant violation. Outputs already complete
            // stay; the ones being written are removed.
            gpuclaim::report::remove_unfinished();
            eprintln!("gpuclaim: allocator error: {failure}");
            return ExitCode::from(ALLOCATOR_ERROR);
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("gpuclaim: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Exit status when an allocator failed (distinct from 1, an invariant
/// violated or an expectation missed, and 2, input refused).
pub const ALLOCATOR_ERROR: u8 = 3;

/// `registry` with the allocators of an allocators file added.
pub fn with_allocators_file(
    mut registry: Registry,
    file: Option<&std::path::Path>,
) -> anyhow::Result<Registry> {
    if let Some(file) = file {
        // external::load_file reads by name: refuse a FIFO or a huge file
        // before it does.
        gpuclaim::report::check_input(
            file,
            gpuclaim::report::input_limits::ALLOCATORS_BYTES,
            "an allocators file",
        )?;
        for allocator in gpuclaim::external::load_file(file)? {
            registry.register(allocator);
        }
    }
    Ok(registry)
}
