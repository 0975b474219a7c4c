//! `gpuclaim audit`: check a recorded device history against the model
//! under one allocator and print the first line that departs from it
//! (everything it does is [`gpuclaim::audit`]).

use std::path::PathBuf;
use std::process::ExitCode;

use gpuclaim::Registry;
use gpuclaim::audit::{self, Format};

use super::Chosen;

/// Check a recorded device history against the model and the invariants.
///
/// HISTORY is a device's log, one model action a line: CSV (.csv) or JSON
/// lines (.jsonl), or as --format says. It starts with a comment line
/// naming the device, `# device: gpus=2 vms=a:1,b:1` (VM names in slot
/// order, each with its size in GPUs; `a` alone is size 1); other lines
/// starting with `#` are comments. A CSV file then has a header naming
/// its columns; a JSON line is an object with the same names as fields:
///
///   time     a number or a timestamp (2021-03-01T09:00:00Z); never
///            decreasing; shown in messages only
///   step     the step in scenario syntax: `begin create-vm a`,
///            `end stop-vm a`, `stop-vm a provisioned`, `kube-takeover`;
///            or instead: op, vm, phase (begin, end, event or empty),
///            options
///   outcome  ok, no-gpu or rejected
///   gpus     optional: the owner of each GPU after the step, in GPU
///            order, separated by spaces: free, kube, a VM name, none, or
///            several joined by `+` (`a+kube`); `?` for a GPU not
///            recorded; empty when nothing was recorded
///   note     optional, ignored
///
/// A plain request (no begin/end) is its begin step and, when that is ok,
/// its end step, as in scenario files. The model is stepped line by line from the initial
/// state; the first line whose step the model does not allow, whose
/// outcome or recorded owners differ from the model's, or at which an
/// invariant fires, is printed with its file:line, the state before it,
/// what the model expected and what the history recorded. Internal events
/// (kube-takeover) are never guessed: a history must log them.
/// examples/histories/ has examples and the format in full.
///
/// Exit status: 0 the history conforms, 1 it diverges, 2 the file or a
/// flag was refused (a malformed line is named with file:line), 3 an
/// allocator failed.
#[derive(clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The history file (.csv or .jsonl): a regular file of at most 256 MiB.
    #[arg(value_name = "HISTORY")]
    pub history: PathBuf,
    /// The allocator to check the history against: built-in (fixed,
    /// legacy, snapshot) or named in the --allocators file.
    #[arg(long, value_name = "NAME", default_value = "fixed")]
    pub policy: String,
    /// The file's format, when its extension does not say.
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub format: Option<FormatArg>,
}

/// `--format`.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum FormatArg {
    Csv,
    Jsonl,
}

pub fn main(args: Args, registry: &Registry) -> anyhow::Result<ExitCode> {
    let chosen = Chosen::resolve(registry, &args.policy)?;
    let format = args.format.map(|f| match f {
        FormatArg::Csv => Format::Csv,
        FormatArg::Jsonl => Format::JsonLines,
    });
    // audit::load reads by name: refuse a FIFO or a huge file before it does.
    gpuclaim::report::check_input(
        &args.history,
        gpuclaim::report::input_limits::HISTORY_BYTES,
        "a history",
    )?;
    let history = audit::load(&args.history, format)?;
    let report = crate::with_allocator!(chosen, |allocator| audit::audit(&history, allocator));
    gpuclaim::out!("{}", report.render())?;
    Ok(if report.conforms() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
