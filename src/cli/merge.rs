//! `gpuclaim merge`: combine the shards of a sweep.

use std::path::PathBuf;
use std::process::ExitCode;

use gpuclaim::sim::sweep;

/// Combine shard folders of one sweep (each written by `gpuclaim sweep
/// --shard I/N`) into OUT/NAME/: runs.csv, summary.csv and the plots, the
/// same bytes as the sweep run unsharded. Refuses shards of different
/// sweeps (each manifest records a fingerprint of the whole configuration,
/// trace included), a shard given twice, a missing shard, rows out of
/// place, rows edited since the shard was written (each manifest records
/// a digest of its runs.csv), columns other than a sweep's, and an output
/// folder that is one of the shards'. Writes its files all or nothing.
#[derive(clap::Args)]
pub struct Args {
    /// The shard folders (OUT/NAME/shard-I-of-N), all N of them; their
    /// runs.csv and manifest.toml (at most 64 KiB) must be regular files.
    #[arg(required = true)]
    pub shards: Vec<PathBuf>,
    /// Base output folder; results go to OUT/NAME/.
    #[arg(long, value_name = "OUT", default_value = "reports")]
    pub out: PathBuf,
}

pub fn main(args: Args) -> anyhow::Result<ExitCode> {
    let written = sweep::merge(&args.shards, &args.out)?;
    super::sweep::print_written(&written)?;
    Ok(ExitCode::SUCCESS)
}
