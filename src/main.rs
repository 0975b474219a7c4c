//! The `gpuclaim` command: a thin layer over the library. Each subcommand
//! lives in its own module under `src/cli/`.

mod cli;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Simulate and fuzz who holds the GPUs of an Azure Stack Edge Pro GPU
/// device — GPU virtual machines or the Kubernetes cluster — checking named
/// invariants after every step.
///
/// Invariants: no-double-claim, conservation, holds-match-state,
/// no-steal-after-dealloc. Policies: fixed (documented behaviour), legacy
/// (Kubernetes takes GPUs freed by a stopped VM), snapshot (a racy allocator
/// kept to prove the checkers catch double claims).
#[derive(Parser)]
#[command(name = "gpuclaim", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Run(cli::run::Args),
    Nightly(cli::nightly::Args),
    Simulate(Box<cli::simulate::Args>),
    Sweep(cli::sweep::Args),
    Merge(cli::merge::Args),
    Explore(cli::explore::Args),
    Check(cli::check::Args),
    Replay(cli::replay::Args),
    FromFuzz(cli::from_fuzz::Args),
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

fn main() -> ExitCode {
    #[cfg(unix)]
    die_quietly_on_closed_pipes();
    let cli = parse();
    if !matches!(cli.command, Command::Nightly(_)) {
        // Ctrl-C or SIGTERM ends a run at once, without the outputs it was
        // still writing (their folders keep what they held before). `nightly`
        // installs its own handler: it finishes the job and writes reports.
        let installed = ctrlc::set_handler(|| {
            gpuclaim::report::remove_unfinished();
            eprintln!("gpuclaim: interrupted; the outputs being written were removed");
            std::process::exit(130);
        });
        if let Err(e) = installed {
            eprintln!(
                "gpuclaim: warning: no Ctrl-C handler ({e}); an interrupted run may leave .*.tmp-* files"
            );
        }
    }
    let result = match cli.command {
        Command::Run(args) => cli::run::main(args),
        Command::Nightly(args) => cli::nightly::main(args),
        Command::Simulate(args) => cli::simulate::main(*args),
        Command::Sweep(args) => cli::sweep::main(args),
        Command::Merge(args) => cli::merge::main(args),
        Command::Explore(args) => cli::explore::main(args),
        Command::Check(args) => cli::check::main(args),
        Command::Replay(args) => cli::replay::main(args),
        Command::FromFuzz(args) => cli::from_fuzz::main(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("gpuclaim: error: {e:#}");
            ExitCode::from(2)
        }
    }
}
