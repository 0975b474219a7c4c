//! Sweeps: a grid of simulator configurations times a number of seeds, run
//! in parallel, written as `runs.csv` (one row per run), `summary.csv` (mean
//! and 95% confidence interval per grid point) and SVG plots.
//!
//! # Order and determinism
//! Grid points are the cartesian product of the axes in this order: gpus,
//! policies, arrival_per_hour, lifetime_hours, on_hours, off_hours,
//! provisioned_probability, kube_at_hours, takeover_mean_minutes,
//! trace_fraction (the last axis varies fastest). Run `r` is seed `r % seeds`
//! of point `r / seeds`. The seed of seed index `i` is
//! `seed::run_seed(master_seed, i)`, the same at every grid point, so
//! policies and parameters are compared on common random numbers. Rows are
//! written in run order whatever the thread count.
//!
//! # Shards
//! `--shard I/N` runs the runs `r` with `r % N == I` and writes their rows
//! and a manifest; [`merge`] reads the N shard folders, interleaves the rows
//! back into run order and produces the same bytes as the unsharded sweep.
//! The summary and plots are computed from the formatted rows in both cases,
//! by the same code, so they cannot differ. `N` is at most the number of
//! runs. The manifest records [`Plan::fingerprint`], a hash of the whole
//! configuration (and the trace's rows), and `merge` refuses shards whose
//! fingerprints, names, run counts or shard counts differ. Unsharded sweeps
//! write no manifest.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rayon::prelude::*;
use serde::Deserialize;
use toml::Spanned;

use crate::invariant::Invariant;
use crate::model::{MAX_GPUS, MAX_VMS, Outcome};
use crate::policy::{Allocator, Builtin, Registry};
use crate::report::{AtomicFile, count, number};
use crate::seed;
use crate::sim::dist::Dist;
use crate::sim::engine::SimError;
use crate::sim::engine::{
    Counters, Durations, MINUTES_PER_HOUR, Poisson, REQUEST_OPS, SimConfig, Simulator, Workload,
};
use crate::sim::limits::{self, MAX_ARRIVAL_PER_HOUR, MAX_HORIZON_HOURS};
use crate::sim::stats::Summarizer;
use crate::sim::tracefile::{Columns, Selection, TraceFile, csv_reason, fnv1a64};

/// Assumed defaults, named in `--help` and the example configurations.
pub mod assumed {
    /// Simulated time per run: 30 days.
    pub const HORIZON_HOURS: f64 = 720.0;
    pub const ARRIVAL_PER_HOUR: f64 = 0.1;
    pub const LIFETIME_HOURS: f64 = 72.0;
    pub const ON_HOURS: f64 = 8.0;
    pub const OFF_HOURS: f64 = 4.0;
    pub const PROVISIONED_PROBABILITY: f64 = 0.0;
    /// Kubernetes is configured a day in, when VMs already hold GPUs.
    pub const KUBE_AT_HOURS: f64 = 24.0;
    /// MODEL.md's default takeover mean.
    pub const TAKEOVER_MEAN_MINUTES: f64 = 60.0;
    /// A device runs at most 24 VMs.
    pub const VM_SLOTS: usize = 24;
    /// Documented GPU VM sizes use 1 GPU.
    pub const VM_SIZE: u8 = 1;
}

/// An error in a sweep configuration or while running it. Configuration
/// errors name the file, line and column.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error("{file}{}: {message}", at.map(|(l, c)| format!(":{l}:{c}")).unwrap_or_default())]
    Config {
        file: String,
        at: Option<(usize, usize)>,
        message: String,
    },
    #[error(transparent)]
    Trace(#[from] crate::sim::tracefile::TraceError),
    /// The reason is part of the message and deliberately not the error's
    /// `source()`: the binary prints the whole chain, which would repeat it.
    #[error("{path}: {error}")]
    Io { path: String, error: std::io::Error },
    #[error("{path}{}: {message}", line.map(|l| format!(":{l}")).unwrap_or_default())]
    Csv {
        path: String,
        line: Option<u64>,
        message: String,
    },
    #[error("{0}")]
    Merge(String),
    /// An input that is not a regular file, or too large.
    #[error(transparent)]
    Input(#[from] crate::report::InputError),
    /// Stopped between batches ([`run_sweep_until`]); nothing was written.
    #[error("interrupted after {done} of {runs} runs; no output was written")]
    Interrupted { done: u64, runs: u64 },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> SweepError + '_ {
    move |error| SweepError::Io {
        path: path.display().to_string(),
        error,
    }
}

/// A duration as written in a configuration: a number (a constant),
/// `"never"` (the operation never ends, as `simulate --create-minutes
/// never`), or a table `{ uniform = [LOW, HIGH] }`, `{ exp = MEAN }`,
/// `{ const = V }`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DistSpec(pub Dist);

impl<'de> Deserialize<'de> for DistSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = DistSpec;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(DIST_FORMS)
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<DistSpec, E> {
                if v == "never" {
                    Ok(DistSpec(Dist::Never))
                } else {
                    Err(E::custom(format!("\"{v}\": expected {DIST_FORMS}")))
                }
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<DistSpec, E> {
                Err(E::custom(format!("`{v}`: expected {DIST_FORMS}")))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<DistSpec, E> {
                Ok(DistSpec(Dist::Const(v as f64)))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<DistSpec, E> {
                Ok(DistSpec(Dist::Const(v as f64)))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<DistSpec, E> {
                Ok(DistSpec(Dist::Const(v)))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<DistSpec, A::Error> {
                use serde::de::Error;
                let Some(key) = map.next_key::<String>()? else {
                    return Err(A::Error::custom(
                        "an empty table; expected uniform, exp or const",
                    ));
                };
                let dist = match key.as_str() {
                    "uniform" => {
                        let Bounds(lo, hi) = map.next_value()?;
                        Dist::Uniform(lo, hi)
                    }
                    "exp" => Dist::Exp(map.next_value::<Num>()?.0),
                    "const" => Dist::Const(map.next_value::<Num>()?.0),
                    other => {
                        return Err(A::Error::custom(format!(
                            "unknown distribution `{other}`; expected uniform, exp or const"
                        )));
                    }
                };
                if let Some(extra) = map.next_key::<String>()? {
                    return Err(A::Error::custom(format!(
                        "unexpected `{extra}`: a duration has one distribution"
                    )));
                }
                Ok(DistSpec(dist))
            }
        }
        d.deserialize_any(V)
    }
}

/// `uniform`'s `[LOW, HIGH]`: exactly two numbers. (serde's `[T; 2]`
/// stops after two items and let `[1, 2, "junk"]` through.)
struct Bounds(f64, f64);

impl<'de> Deserialize<'de> for Bounds {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Bounds;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("[LOW, HIGH], two numbers")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Bounds, A::Error> {
                use serde::de::Error;
                let wrong = |found: usize| {
                    A::Error::custom(format!(
                        "uniform = [LOW, HIGH] takes two numbers; found {}",
                        count(found as u64, "item", "items")
                    ))
                };
                let Some(lo) = seq.next_element::<Num>()? else {
                    return Err(wrong(0));
                };
                let Some(hi) = seq.next_element::<Num>()? else {
                    return Err(wrong(1));
                };
                let mut found = 2;
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {
                    found += 1;
                }
                if found > 2 {
                    return Err(wrong(found));
                }
                Ok(Bounds(lo.0, hi.0))
            }
        }
        d.deserialize_seq(V)
    }
}

/// The forms of a duration, for messages.
const DIST_FORMS: &str =
    "minutes as a number, \"never\", or { uniform = [LOW, HIGH] }, { exp = MEAN } or { const = V }";

/// A number in a configuration: a TOML integer or float (`inf` included).
/// Its own messages instead of serde's (`invalid type: string "inf",
/// expected f64`): text in quotes is named as such, with the fix for
/// `"inf"`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Num(pub f64);

impl<'de> Deserialize<'de> for Num {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Num;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a number")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Num, E> {
                Ok(Num(v as f64))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Num, E> {
                Ok(Num(v as f64))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Num, E> {
                Ok(Num(v))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Num, E> {
                let word = v.trim().trim_start_matches(['+', '-']).to_ascii_lowercase();
                Err(E::custom(if word == "inf" || word == "infinity" {
                    format!("\"{v}\" is text; write inf without quotes (TOML's infinity)")
                } else {
                    format!("\"{v}\" is text; expected a number (without quotes)")
                }))
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Num, E> {
                Err(E::custom(format!("`{v}` is not a number")))
            }
        }
        d.deserialize_any(V)
    }
}

/// A whole number of 0 or more in a configuration, with plain messages
/// (serde says `invalid value: integer `-1`, expected u32`); each key
/// checks its own range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Whole(pub u64);

impl<'de> Deserialize<'de> for Whole {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Whole;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a whole number")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Whole, E> {
                u64::try_from(v).map(Whole).map_err(|_| {
                    E::custom(format!(
                        "`{v}` is negative; expected a whole number, 0 or more"
                    ))
                })
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Whole, E> {
                Ok(Whole(v))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Whole, E> {
                Err(E::custom(format!(
                    "`{v:?}` is not a whole number; expected one without a decimal point"
                )))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Whole, E> {
                Err(E::custom(format!(
                    "\"{v}\" is text; expected a whole number (without quotes)"
                )))
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Whole, E> {
                Err(E::custom(format!("`{v}` is not a whole number")))
            }
        }
        d.deserialize_any(V)
    }
}

/// `kube_at_hours` values: hours, or `"never"`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct KubeAt(pub Option<f64>);

impl<'de> Deserialize<'de> for KubeAt {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = KubeAt;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("hours as a number, or \"never\"")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<KubeAt, E> {
                Ok(KubeAt(Some(v as f64)))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<KubeAt, E> {
                Ok(KubeAt(Some(v as f64)))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<KubeAt, E> {
                Ok(KubeAt(Some(v)))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<KubeAt, E> {
                if v == "never" {
                    Ok(KubeAt(None))
                } else {
                    Err(E::custom(format!("`{v}`: expected hours or \"never\"")))
                }
            }
        }
        d.deserialize_any(V)
    }
}

type List<T> = Option<Spanned<Vec<T>>>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    name: Spanned<String>,
    seeds: Spanned<Whole>,
    #[serde(default)]
    master_seed: Option<Whole>,
    horizon_hours: Option<Spanned<Num>>,
    vm_slots: Option<Spanned<Whole>>,
    vm_size: Option<Spanned<Whole>>,
    #[serde(default)]
    grid: RawGrid,
    #[serde(default)]
    durations: RawDurations,
    trace: Option<Spanned<RawTrace>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawGrid {
    gpus: List<Whole>,
    policies: List<Spanned<String>>,
    arrival_per_hour: List<Num>,
    lifetime_hours: List<Num>,
    on_hours: List<Num>,
    off_hours: List<Num>,
    provisioned_probability: List<Num>,
    kube_at_hours: List<KubeAt>,
    takeover_mean_minutes: List<Num>,
    trace_fraction: List<Num>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawDurations {
    create: Option<Spanned<DistSpec>>,
    start: Option<Spanned<DistSpec>>,
    stop: Option<Spanned<DistSpec>>,
    remove: Option<Spanned<DistSpec>>,
    configure: Option<Spanned<DistSpec>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTrace {
    path: Spanned<String>,
    preset: Option<Spanned<String>>,
    columns: Option<Columns>,
    /// 1 when absent; spanned so that its errors point at it.
    time_scale: Option<Spanned<Num>>,
    #[serde(default)]
    skip_bad: bool,
}

/// The first value equal to an earlier one: `(earlier, later)` indices.
fn first_repeat<K: Ord>(keys: impl IntoIterator<Item = K>) -> Option<(usize, usize)> {
    let mut seen = BTreeMap::new();
    for (i, k) in keys.into_iter().enumerate() {
        if let Some(&j) = seen.get(&k) {
            return Some((j, i));
        }
        seen.insert(k, i);
    }
    None
}

/// Without a horizon, a trace runs to its last end times `time_scale`:
/// that must stay within [`MAX_HORIZON_HOURS`] too (the rows already are).
pub fn trace_horizon_within_limit(
    file: &TraceFile,
    time_scale: f64,
    horizon_hours: Option<f64>,
) -> Result<(), String> {
    let hours = file.last_end() * time_scale / MINUTES_PER_HOUR;
    if horizon_hours.is_none() && hours > MAX_HORIZON_HOURS {
        return Err(format!(
            "the trace's last end times {} is {hours:e} hours, more than {MAX_HORIZON_HOURS:e}; set a horizon or a smaller scale",
            number(time_scale)
        ));
    }
    Ok(())
}

/// The trace of a trace sweep, read once.
#[derive(Clone, Debug)]
pub struct TraceSpec {
    pub file: Arc<TraceFile>,
    pub time_scale: f64,
    /// The selections that do not depend on the seed (a fraction of 1),
    /// by device GPUs: made once and shared by every run and worker, not
    /// copied per run (a 1M-row trace is 24 MB a copy).
    whole: Arc<std::sync::Mutex<BTreeMap<u8, Arc<Selection>>>>,
}

impl TraceSpec {
    pub fn new(file: Arc<TraceFile>, time_scale: f64) -> Self {
        TraceSpec {
            file,
            time_scale,
            whole: Arc::default(),
        }
    }

    /// What a run on `gpus` GPUs keeps of the trace with `fraction` and
    /// `seed` ([`TraceFile::select`]); shared when `fraction` is 1.
    pub fn select(&self, gpus: u8, fraction: f64, seed: u64) -> Arc<Selection> {
        if fraction < 1.0 {
            return Arc::new(self.file.select(gpus, fraction, self.time_scale, seed));
        }
        let mut whole = self.whole.lock().unwrap_or_else(|e| e.into_inner());
        whole
            .entry(gpus)
            .or_insert_with(|| Arc::new(self.file.select(gpus, fraction, self.time_scale, seed)))
            .clone()
    }
}

/// The workload axes of a grid point.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum PointWorkload {
    Poisson {
        arrival_per_hour: f64,
        lifetime_hours: f64,
        on_hours: f64,
        off_hours: f64,
        provisioned_probability: f64,
    },
    Trace {
        fraction: f64,
    },
}

/// One grid point.
#[derive(Clone, Debug, PartialEq)]
pub struct Point {
    pub gpus: u8,
    pub policy: String,
    pub workload: PointWorkload,
    pub kube_at_hours: Option<f64>,
    pub takeover_mean_minutes: f64,
}

/// The columns that describe a grid point, in `runs.csv` and `summary.csv`.
pub const PARAM_COLUMNS: [&str; 11] = [
    "gpus",
    "policy",
    "workload",
    "arrival_per_hour",
    "lifetime_hours",
    "on_hours",
    "off_hours",
    "provisioned_probability",
    "kube_at_hours",
    "takeover_mean_minutes",
    "trace_fraction",
];

/// The columns before the parameters in `runs.csv`.
pub const RUN_COLUMNS: [&str; 4] = ["run", "point", "seed_index", "seed"];

fn num(v: f64) -> String {
    format!("{v}")
}

impl Point {
    /// The parameter columns, [`PARAM_COLUMNS`] order.
    pub fn params(&self) -> Vec<String> {
        let mut out = vec![self.gpus.to_string(), self.policy.clone()];
        match self.workload {
            PointWorkload::Poisson {
                arrival_per_hour,
                lifetime_hours,
                on_hours,
                off_hours,
                provisioned_probability,
            } => {
                out.push("poisson".into());
                for v in [
                    arrival_per_hour,
                    lifetime_hours,
                    on_hours,
                    off_hours,
                    provisioned_probability,
                ] {
                    out.push(num(v));
                }
            }
            PointWorkload::Trace { .. } => {
                out.push("trace".into());
                out.extend(std::iter::repeat_n(String::new(), 5));
            }
        }
        out.push(self.kube_at_hours.map_or("never".into(), num));
        out.push(num(self.takeover_mean_minutes));
        out.push(match self.workload {
            PointWorkload::Trace { fraction } => num(fraction),
            PointWorkload::Poisson { .. } => String::new(),
        });
        out
    }
}

/// What a sweep's `name` may be, as its messages say it.
pub const NAME_RULE: &str = "`name` names the output folder: 1 to 100 letters, digits, `-`, `_` or `.`, not starting with `.`";

/// The longest sweep name: well within a file name's 255 bytes, so that a
/// long name is refused here rather than blamed on `--out` when the
/// folder cannot be made.
pub const MAX_NAME_CHARS: usize = 100;

/// Whether `name` may name a sweep's output folder ([`NAME_RULE`]): one
/// plain folder name, so that `OUT/NAME` stays inside `OUT` (no `/`, no
/// `..`, not absolute). `sweep` and `merge` (for a manifest's name) apply
/// the same rule.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_CHARS
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        && !name.starts_with('.')
}

/// Whether shard `I/N` fits a sweep of `runs` runs: `I < N <= runs`, so
/// that no shard is empty and `merge` never has more shards than runs.
/// The message does not repeat `I/N`.
pub fn check_shard(runs: u64, (i, n): (u64, u64)) -> Result<(), String> {
    if n == 0 || i >= n {
        Err("expected 0 <= I < N".to_string())
    } else if n > runs {
        Err(format!(
            "N is more than the sweep's {}; use at most {}",
            count(runs, "run", "runs"),
            count(runs, "shard", "shards")
        ))
    } else {
        Ok(())
    }
}

/// A sweep read from its configuration file: the grid points and all that
/// a run needs.
#[derive(Clone, Debug)]
pub struct Plan {
    pub name: String,
    pub seeds: u32,
    pub master_seed: u64,
    pub horizon_hours: Option<f64>,
    pub vm_slots: usize,
    pub vm_size: u8,
    pub durations: Durations,
    pub trace: Option<TraceSpec>,
    pub points: Vec<Point>,
}

struct Reader<'a> {
    file: &'a str,
    text: &'a str,
}

impl Reader<'_> {
    fn err(&self, span: Option<Range<usize>>, message: impl Into<String>) -> SweepError {
        // Columns in characters, as scenario files count them.
        let at = span.map(|s| crate::scenario::line_column(self.text, s.start));
        SweepError::Config {
            file: self.file.to_string(),
            at,
            message: message.into(),
        }
    }
}

impl Plan {
    /// Reads a sweep configuration file. A trace it names is read too, its
    /// path relative to the configuration file.
    pub fn load(path: &Path, registry: &Registry) -> Result<Plan, SweepError> {
        let bytes = crate::report::read_input(
            path,
            crate::report::input_limits::SWEEP_BYTES,
            "a sweep file",
        )?;
        Self::parse_bytes(path, &bytes, registry)
    }

    /// As [`Plan::load`], from bytes already read: text that is not UTF-8
    /// is refused at its first invalid byte (line, column and byte
    /// offset), as scenario files are, then the text goes to
    /// [`Plan::parse`].
    pub fn parse_bytes(path: &Path, bytes: &[u8], registry: &Registry) -> Result<Plan, SweepError> {
        match crate::report::utf8(bytes) {
            Ok(text) => Self::parse(path, text, registry),
            Err(bad) => {
                let (at, what) = (bad.offset, bad.what);
                let shown = path.display().to_string();
                let r = Reader {
                    file: &shown,
                    text: bad.valid,
                };
                Err(r.err(
                    Some(at..at),
                    format!(
                        "not valid UTF-8: {what} (byte offset {at}); a sweep file is UTF-8 text"
                    ),
                ))
            }
        }
    }

    /// As [`Plan::load`], from text already read.
    pub fn parse(path: &Path, text: &str, registry: &Registry) -> Result<Plan, SweepError> {
        let shown = path.display().to_string();
        let r = Reader { file: &shown, text };
        let raw: RawConfig =
            toml::from_str(text).map_err(|e| r.err(e.span(), e.message().trim().to_string()))?;
        let name = raw.name.get_ref();
        if !valid_name(name) {
            return Err(r.err(Some(raw.name.span()), NAME_RULE));
        }
        let seeds = match raw.seeds.get_ref().0 {
            0 => return Err(r.err(Some(raw.seeds.span()), "`seeds` must be 1 or more")),
            n => u32::try_from(n).map_err(|_| {
                r.err(
                    Some(raw.seeds.span()),
                    format!("`seeds` must be 1 to {}", u32::MAX),
                )
            })?,
        };
        let horizon_hours = match &raw.horizon_hours {
            Some(h) if !(h.get_ref().0 > 0.0 && h.get_ref().0 <= MAX_HORIZON_HOURS) => {
                return Err(r.err(
                    Some(h.span()),
                    format!(
                        "`horizon_hours` must be a positive number of at most {MAX_HORIZON_HOURS:e} (114 years)"
                    ),
                ));
            }
            Some(h) => Some(h.get_ref().0),
            None => None,
        };
        let vm_slots = match &raw.vm_slots {
            Some(s) if !(1..=MAX_VMS as u64).contains(&s.get_ref().0) => {
                return Err(r.err(Some(s.span()), format!("`vm_slots` must be 1 to {MAX_VMS}")));
            }
            Some(s) => s.get_ref().0 as usize,
            None => assumed::VM_SLOTS,
        };
        if let (Some(size), Some(_)) = (&raw.vm_size, &raw.trace) {
            // A trace request asks for its own number of GPUs.
            return Err(r.err(
                Some(size.span()),
                "`vm_size` is a poisson parameter, but this sweep replays a [trace] (each request has its own GPUs)",
            ));
        }
        // Checked against the grid's devices below.
        let vm_size = raw
            .vm_size
            .as_ref()
            .map_or(u64::from(assumed::VM_SIZE), |s| s.get_ref().0);
        let mut durations = Durations::ASSUMED;
        for (slot, raw_d, key) in [
            (&mut durations.create, &raw.durations.create, "create"),
            (&mut durations.start, &raw.durations.start, "start"),
            (&mut durations.stop, &raw.durations.stop, "stop"),
            (&mut durations.remove, &raw.durations.remove, "remove"),
            (
                &mut durations.configure,
                &raw.durations.configure,
                "configure",
            ),
        ] {
            if let Some(d) = raw_d {
                if !d.get_ref().0.is_valid() {
                    return Err(r.err(
                        Some(d.span()),
                        format!("durations.{key}: minutes must be finite and 0 or more (uniform: LOW <= HIGH)"),
                    ));
                }
                *slot = d.get_ref().0;
            }
        }

        let g = &raw.grid;
        // An empty axis would make an empty grid: no runs, and no error
        // telling why. Every list says so in the same words.
        let empty = |span: Range<usize>, key: &str| {
            r.err(
                Some(span),
                format!("grid.{key} is empty; give at least one value"),
            )
        };
        // A value listed twice would run its grid points twice, as a
        // scenario's policy listed twice would run twice: refused alike.
        let repeated = |span: Range<usize>, key: &str, value: String, (a, b): (usize, usize)| {
            r.err(
                Some(span),
                format!(
                    "grid.{key} lists {value} twice (items {} and {}); give each value once, or its grid points run twice",
                    a + 1,
                    b + 1
                ),
            )
        };
        let list = |l: &List<Num>,
                    key: &str,
                    default: f64,
                    check: fn(f64) -> bool,
                    what: &str|
         -> Result<Vec<f64>, SweepError> {
            let Some(s) = l else {
                return Ok(vec![default]);
            };
            let values: Vec<f64> = s.get_ref().iter().map(|v| v.0).collect();
            if values.is_empty() {
                return Err(empty(s.span(), key));
            }
            if let Some(bad) = values.iter().find(|v| !check(**v)) {
                return Err(r.err(
                    Some(s.span()),
                    format!("grid.{key}: {} is not {what}", number(*bad)),
                ));
            }
            // `+ 0.0`: -0 and 0 are one value.
            if let Some((a, b)) = first_repeat(values.iter().map(|v| (v + 0.0).to_bits())) {
                return Err(repeated(s.span(), key, number(values[b]), (a, b)));
            }
            Ok(values)
        };
        let positive = |v: f64| v > 0.0 && !v.is_nan();
        let probability = |v: f64| (0.0..=1.0).contains(&v);
        let gpus = match &g.gpus {
            None => vec![2],
            Some(s) if s.get_ref().is_empty() => return Err(empty(s.span(), "gpus")),
            Some(s) => {
                if s.get_ref()
                    .iter()
                    .any(|n| !(1..=u64::from(MAX_GPUS)).contains(&n.0))
                {
                    return Err(r.err(
                        Some(s.span()),
                        format!("grid.gpus: each must be 1 to {MAX_GPUS}"),
                    ));
                }
                if let Some((a, b)) = first_repeat(s.get_ref().iter()) {
                    let value = s.get_ref()[b].0.to_string();
                    return Err(repeated(s.span(), "gpus", value, (a, b)));
                }
                s.get_ref().iter().map(|n| n.0 as u8).collect::<Vec<u8>>()
            }
        };
        if vm_size > u64::from(*gpus.iter().min().unwrap_or(&1)) {
            return Err(r.err(
                raw.vm_size.as_ref().map(|s| s.span()),
                format!("`vm_size` {vm_size} is more than a device of the grid has"),
            ));
        }
        let policies = match &g.policies {
            None => vec!["fixed".to_string(), "legacy".to_string()],
            Some(s) => {
                if s.get_ref().is_empty() {
                    return Err(empty(s.span(), "policies"));
                }
                let list = s.get_ref();
                if let Some((a, b)) = first_repeat(list.iter().map(|p| p.get_ref())) {
                    let value = format!("`{}`", list[b].get_ref());
                    return Err(repeated(list[b].span(), "policies", value, (a, b)));
                }
                for p in list {
                    if !registry.contains(p.get_ref()) {
                        return Err(r.err(
                            Some(p.span()),
                            format!(
                                "unknown policy `{}`; expected one of {}",
                                p.get_ref(),
                                registry.names().join(", ")
                            ),
                        ));
                    }
                }
                s.get_ref().iter().map(|p| p.get_ref().clone()).collect()
            }
        };
        let kube_at = match &g.kube_at_hours {
            None => vec![Some(assumed::KUBE_AT_HOURS)],
            Some(s) => {
                if s.get_ref().is_empty() {
                    return Err(empty(s.span(), "kube_at_hours"));
                }
                if let Some(message) = s
                    .get_ref()
                    .iter()
                    .find_map(|k| limits::kube_at_hours("grid.kube_at_hours", k.0?).err())
                {
                    return Err(r.err(Some(s.span()), message));
                }
                let keys = s.get_ref().iter().map(|k| k.0.map(|h| (h + 0.0).to_bits()));
                if let Some((a, b)) = first_repeat(keys) {
                    let value = s.get_ref()[b].0.map_or("\"never\"".to_string(), number);
                    return Err(repeated(s.span(), "kube_at_hours", value, (a, b)));
                }
                s.get_ref().iter().map(|k| k.0).collect()
            }
        };
        let takeover = list(
            &g.takeover_mean_minutes,
            "takeover_mean_minutes",
            assumed::TAKEOVER_MEAN_MINUTES,
            |v| limits::takeover_mean_minutes("", v).is_ok(),
            "a positive, finite number of minutes",
        )?;

        // The grid is held in memory: its size (the product of its lists'
        // lengths; a few lines can make 1e11 points) is checked before the
        // points are made. `lengths` are the lists besides these four.
        let grid_within_limit = |lengths: &[usize]| {
            let size = [gpus.len(), policies.len(), kube_at.len(), takeover.len()]
                .iter()
                .chain(lengths)
                .fold(1u128, |n, &k| n * k as u128);
            if size > u128::from(limits::MAX_GRID_POINTS) {
                return Err(r.err(
                    None,
                    format!(
                        "the grid has {size} points (the product of its lists' lengths), more than {}; split the sweep or shorten its lists",
                        limits::MAX_GRID_POINTS
                    ),
                ));
            }
            Ok(())
        };
        let (trace, workloads) = match &raw.trace {
            Some(t) => {
                for (key, l) in [
                    ("arrival_per_hour", &g.arrival_per_hour),
                    ("lifetime_hours", &g.lifetime_hours),
                    ("on_hours", &g.on_hours),
                    ("off_hours", &g.off_hours),
                    ("provisioned_probability", &g.provisioned_probability),
                ] {
                    if let Some(l) = l {
                        return Err(r.err(
                            Some(l.span()),
                            format!("grid.{key} is a poisson parameter, but this sweep replays a [trace]"),
                        ));
                    }
                }
                let t = t.get_ref();
                let time_scale = t.time_scale.as_ref().map_or(1.0, |s| s.get_ref().0);
                // Errors about the scale point at it, or (when absent, the
                // trace's own length is at fault) at the path.
                let scale_span = t.time_scale.as_ref().map_or(t.path.span(), |s| s.span());
                let columns = match (&t.preset, &t.columns) {
                    (Some(p), None) => Columns::preset(p.get_ref()).ok_or_else(|| {
                        r.err(
                            Some(p.span()),
                            format!("unknown preset `{}`; expected openb", p.get_ref()),
                        )
                    })?,
                    (None, Some(c)) => c.clone(),
                    _ => {
                        return Err(r.err(
                            Some(t.path.span()),
                            "[trace] needs exactly one of `preset` (openb) or `columns` = { id, gpus, start, end, unit }",
                        ));
                    }
                };
                if !positive(time_scale) || !time_scale.is_finite() {
                    return Err(r.err(
                        Some(scale_span.clone()),
                        "trace.time_scale must be a positive number",
                    ));
                }
                let base = path.parent().unwrap_or(Path::new("."));
                let file = TraceFile::load(&base.join(t.path.get_ref()), &columns, t.skip_bad)
                    .map_err(|e| r.err(Some(t.path.span()), format!("trace.path: {e}")))?;
                if let Err(message) = trace_horizon_within_limit(&file, time_scale, horizon_hours) {
                    return Err(r.err(Some(scale_span), format!("trace.time_scale: {message}")));
                }
                let fractions = list(
                    &g.trace_fraction,
                    "trace_fraction",
                    1.0,
                    |v| v > 0.0 && v <= 1.0,
                    "in (0, 1]",
                )?;
                let w = fractions
                    .into_iter()
                    .map(|fraction| PointWorkload::Trace { fraction })
                    .collect::<Vec<_>>();
                (Some(TraceSpec::new(Arc::new(file), time_scale)), w)
            }
            None => {
                if let Some(l) = &g.trace_fraction {
                    return Err(r.err(
                        Some(l.span()),
                        "grid.trace_fraction needs a [trace] section",
                    ));
                }
                let arrivals = list(
                    &g.arrival_per_hour,
                    "arrival_per_hour",
                    assumed::ARRIVAL_PER_HOUR,
                    |v| (0.0..=MAX_ARRIVAL_PER_HOUR).contains(&v),
                    &format!("a rate of 0 to {MAX_ARRIVAL_PER_HOUR:e} per hour"),
                )?;
                let horizon = horizon_hours.unwrap_or(assumed::HORIZON_HOURS);
                let most = arrivals.iter().copied().fold(0.0, f64::max);
                limits::arrivals("grid.arrival_per_hour", most, horizon).map_err(|message| {
                    r.err(g.arrival_per_hour.as_ref().map(|l| l.span()), message)
                })?;
                let lifetimes = list(
                    &g.lifetime_hours,
                    "lifetime_hours",
                    assumed::LIFETIME_HOURS,
                    positive,
                    "a positive number of hours (inf for never)",
                )?;
                let ons = list(
                    &g.on_hours,
                    "on_hours",
                    assumed::ON_HOURS,
                    positive,
                    "a positive number of hours (inf for never)",
                )?;
                let offs = list(
                    &g.off_hours,
                    "off_hours",
                    assumed::OFF_HOURS,
                    positive,
                    "a positive number of hours (inf for never)",
                )?;
                let shortest = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
                limits::off_periods(
                    ("the shortest grid.off_hours", shortest(&offs)),
                    vm_slots,
                    horizon,
                )
                .map_err(|message| r.err(g.off_hours.as_ref().map(|l| l.span()), message))?;
                let provs = list(
                    &g.provisioned_probability,
                    "provisioned_probability",
                    assumed::PROVISIONED_PROBABILITY,
                    probability,
                    "a probability in [0, 1]",
                )?;
                grid_within_limit(&[
                    arrivals.len(),
                    lifetimes.len(),
                    ons.len(),
                    offs.len(),
                    provs.len(),
                ])?;
                let mut w = Vec::new();
                for &arrival_per_hour in &arrivals {
                    for &lifetime_hours in &lifetimes {
                        for &on_hours in &ons {
                            for &off_hours in &offs {
                                for &provisioned_probability in &provs {
                                    w.push(PointWorkload::Poisson {
                                        arrival_per_hour,
                                        lifetime_hours,
                                        on_hours,
                                        off_hours,
                                        provisioned_probability,
                                    });
                                }
                            }
                        }
                    }
                }
                (None, w)
            }
        };

        // The grid is held in memory: its size is checked before it is made
        // (a few lines of lists can multiply to 1e11 points).
        grid_within_limit(&[workloads.len()])?;
        // Axis order: gpus, policies, workload axes, kube_at, takeover, and
        // (inside the workload) trace_fraction last: see the module docs.
        let mut points = Vec::new();
        for &gpus in &gpus {
            for policy in &policies {
                for &workload in &workloads {
                    for &kube_at_hours in &kube_at {
                        for &takeover_mean_minutes in &takeover {
                            points.push(Point {
                                gpus,
                                policy: policy.clone(),
                                workload,
                                kube_at_hours,
                                takeover_mean_minutes,
                            });
                        }
                    }
                }
            }
        }
        let plan = Plan {
            name: name.clone(),
            seeds,
            master_seed: raw.master_seed.map_or(0, |w| w.0),
            horizon_hours,
            vm_slots,
            // At most the smallest device's GPUs (checked above): at most 8.
            vm_size: vm_size as u8,
            durations,
            trace,
            points,
        };
        // The engine's own check of every point, after the friendlier
        // per-key ones above: what a run would refuse is refused here.
        for (i, point) in plan.points.iter().enumerate() {
            plan.check_point(point, registry)
                .map_err(|e| r.err(None, format!("grid point {i}: {e}")))?;
        }
        Ok(plan)
    }

    pub fn runs(&self) -> u64 {
        self.points.len() as u64 * u64::from(self.seeds)
    }

    /// A hash of everything in the plan that decides its results: seeds,
    /// master seed, horizon, slots, VM size, durations, every grid point,
    /// and for a trace its time scale and every row read (ids' hashes,
    /// GPUs, times, and how many were skipped as bad; not its path, which
    /// depends on where the sweep was started from). `name` is compared on
    /// its own. FNV-1a over a canonical text, so the same configuration
    /// gives the same value in every process and on every machine; shards
    /// record it, and `merge` refuses shards whose values differ.
    pub fn fingerprint(&self) -> u64 {
        use std::fmt::Write;
        let mut text = format!(
            "gpuclaim sweep\nseeds {}\nmaster_seed {}\nhorizon_hours {:?}\nvm_slots {}\nvm_size {}\ndurations {:?}\n",
            self.seeds,
            self.master_seed,
            self.horizon_hours,
            self.vm_slots,
            self.vm_size,
            self.durations
        );
        for p in &self.points {
            let _ = writeln!(text, "point {p:?}");
        }
        if let Some(t) = &self.trace {
            let _ = writeln!(
                text,
                "trace time_scale {:?} rows {} bad_rows {}",
                t.time_scale,
                t.file.rows.len(),
                t.file.bad_rows
            );
            for r in &t.file.rows {
                let _ = writeln!(text, "{} {} {:?} {:?}", r.id_hash, r.gpus, r.start, r.end);
            }
        }
        fnv1a64(text.as_bytes())
    }

    /// The horizon in hours: as configured, else 720 hours for poisson, or
    /// the trace's last end (scaled).
    pub fn horizon_hours(&self) -> f64 {
        match (self.horizon_hours, &self.trace) {
            (Some(h), _) => h,
            (None, Some(t)) => t.file.last_end() * t.time_scale / MINUTES_PER_HOUR,
            (None, None) => assumed::HORIZON_HOURS,
        }
    }

    /// The metric columns of this sweep's rows.
    pub fn metric_columns(&self) -> Vec<String> {
        metric_columns(self.trace.is_some())
    }

    /// The header of `runs.csv`.
    pub fn runs_header(&self) -> Vec<String> {
        RUN_COLUMNS
            .iter()
            .chain(PARAM_COLUMNS.iter())
            .map(|s| s.to_string())
            .chain(self.metric_columns())
            .collect()
    }

    /// Runs run `index` and returns its `runs.csv` row.
    pub fn run_row(
        &self,
        index: u64,
        registry: &Registry,
        sim: &mut Simulator,
    ) -> Result<Vec<String>, SimError> {
        let seeds = u64::from(self.seeds);
        let point_index = index / seeds;
        let seed_index = index % seeds;
        let seed = seed::run_seed(self.master_seed, seed_index);
        let point = &self.points[point_index as usize];
        let (counters, selection) = self.run_point(point, seed, registry, sim)?;
        let mut row = vec![
            index.to_string(),
            point_index.to_string(),
            seed_index.to_string(),
            seed.to_string(),
        ];
        row.extend(point.params());
        row.extend(metric_values(&counters, selection.as_deref()));
        Ok(row)
    }

    /// The engine's configuration of `point` with `workload`.
    fn sim_config<'w>(&self, point: &Point, workload: Workload<'w>) -> SimConfig<'w> {
        SimConfig {
            gpus: point.gpus,
            vm_slots: self.vm_slots,
            horizon: self.horizon_hours() * MINUTES_PER_HOUR,
            kube_at: point.kube_at_hours.map(|h| h * MINUTES_PER_HOUR),
            takeover: Dist::Exp(point.takeover_mean_minutes),
            durations: self.durations,
            workload,
        }
    }

    fn poisson(&self, point: &Point) -> Option<Poisson> {
        let PointWorkload::Poisson {
            arrival_per_hour,
            lifetime_hours,
            on_hours,
            off_hours,
            provisioned_probability,
        } = point.workload
        else {
            return None;
        };
        let mut p = Poisson::with_rates(
            arrival_per_hour,
            lifetime_hours,
            on_hours,
            off_hours,
            provisioned_probability,
        );
        p.size = self.vm_size;
        Some(p)
    }

    /// Whether `point` would run: the engine's own check
    /// ([`limits::check`](crate::sim::limits::check)) and the device, so
    /// that a front end refuses up front exactly what a run would refuse.
    pub fn check_point(&self, point: &Point, registry: &Registry) -> Result<(), SimError> {
        if !registry.contains(&point.policy) {
            return Err(SimError::Config(format!(
                "unknown policy `{}`; expected one of {}",
                point.policy,
                registry.names().join(", ")
            )));
        }
        let workload = match self.poisson(point) {
            Some(p) => Workload::Poisson(p),
            None if self.trace.is_some() => Workload::Trace(&[]),
            None => return Err(SimError::Config("a trace point, but no trace".into())),
        };
        crate::model::Device::uniform(point.gpus, self.vm_slots, 0)?;
        self.sim_config(point, workload).check()
    }

    /// One run of `point` with `seed`: its counters, and for a trace sweep
    /// what was kept of the trace. Refuses (never panics on) what
    /// [`Plan::check_point`] refuses.
    pub fn run_point(
        &self,
        point: &Point,
        seed: u64,
        registry: &Registry,
        sim: &mut Simulator,
    ) -> Result<(Counters, Option<Arc<Selection>>), SimError> {
        self.check_point(point, registry)?;
        let selection = match (&point.workload, &self.trace) {
            (PointWorkload::Trace { fraction }, Some(t)) => {
                Some(t.select(point.gpus, *fraction, seed))
            }
            _ => None,
        };
        let workload = match (self.poisson(point), &selection) {
            (Some(p), _) => Workload::Poisson(p),
            (None, Some(s)) => Workload::Trace(&s.requests),
            (None, None) => return Err(SimError::Config("a trace point, but no trace".into())),
        };
        let config = self.sim_config(point, workload);
        let counters = match Builtin::from_name(&point.policy) {
            Some(b) => sim.run(&b, &config, seed)?,
            None => {
                let policy = registry.get(&point.policy).ok_or_else(|| {
                    SimError::Config(format!("unknown policy `{}`", point.policy))
                })?;
                sim.run(&*policy as &dyn Allocator, &config, seed)?
            }
        };
        Ok((counters, selection))
    }
}

/// The metric columns: every counter of MODEL.md, derived totals and the
/// two failure fractions; for trace sweeps also what was kept of the trace.
pub fn metric_columns(trace: bool) -> Vec<String> {
    let mut out = vec!["arrivals".to_string(), "no_slot".to_string()];
    for op in REQUEST_OPS {
        for o in Outcome::ALL {
            out.push(format!("requests.{}.{}", op.name(), o.name()));
        }
    }
    for m in [
        "end_steps",
        "internal_events",
        "other_requests",
        "events",
        "steps",
        "vm_hours_running",
        "gpu_hours_vms",
        "gpu_hours_kube",
        "gpu_hours_idle",
    ] {
        out.push(m.to_string());
    }
    for inv in Invariant::ALL {
        out.push(format!("violations.{}", inv.name()));
    }
    out.push("create_failure_fraction".into());
    out.push("start_failure_fraction".into());
    if trace {
        for m in [
            "trace.kept",
            "trace.not_sampled",
            "trace.zero_gpu",
            "trace.too_many_gpus",
            "trace.bad_rows",
        ] {
            out.push(m.to_string());
        }
    }
    out
}

/// The metric values of one run, [`metric_columns`] order. A fraction
/// without a denominator is empty.
pub fn metric_values(c: &Counters, selection: Option<&Selection>) -> Vec<String> {
    let mut out = vec![c.arrivals.to_string(), c.no_slot.to_string()];
    for op in REQUEST_OPS {
        for o in Outcome::ALL {
            out.push(c.request(op, o).to_string());
        }
    }
    for v in [
        c.end_steps,
        c.internal_events,
        c.other_requests(),
        c.events(),
        c.steps(),
    ] {
        out.push(v.to_string());
    }
    for v in [
        c.vm_hours_running,
        c.gpu_hours_vms,
        c.gpu_hours_kube,
        c.gpu_hours_idle,
    ] {
        out.push(num(v));
    }
    for inv in Invariant::ALL {
        out.push(c.violations_of(inv).to_string());
    }
    out.push(c.create_failure_fraction().map_or(String::new(), num));
    out.push(c.start_failure_fraction().map_or(String::new(), num));
    if let Some(s) = selection {
        for v in [
            s.kept(),
            s.not_sampled,
            s.zero_gpu,
            s.too_many_gpus,
            s.bad_rows,
        ] {
            out.push(v.to_string());
        }
    }
    out
}

/// Where a sweep writes and how.
#[derive(Clone, Debug)]
pub struct SweepOptions {
    /// Base folder; outputs go to `out/NAME/`.
    pub out: PathBuf,
    /// Worker threads (`None` or `Some(0)`: rayon's default, one per core).
    pub threads: Option<usize>,
    /// `(I, N)`: run only runs `r % N == I`.
    pub shard: Option<(u64, u64)>,
}

/// What a sweep or merge wrote.
#[derive(Clone, Debug, Default)]
pub struct Written {
    pub dir: PathBuf,
    pub files: Vec<PathBuf>,
    pub runs: u64,
    /// Steps with a violation over all runs written, keyed `POLICY INVARIANT`
    /// (zero counts included, so that "none" is visible).
    pub violations: BTreeMap<String, u64>,
}

/// Most runs per parallel batch: bounds memory whatever the number of runs.
const BATCH: u64 = 4096;

/// A batch is sized to take about this long (between a quarter and twice
/// it), so that [`run_sweep_until`]'s `stop`, asked between batches, is
/// heard within about a second whatever a run costs.
const BATCH_SECONDS: f64 = 0.25;

/// Runs the plan (or its shard) and writes its outputs. `progress` is
/// called with the number of runs done after each batch.
pub fn run_sweep(
    plan: &Plan,
    registry: &Registry,
    options: &SweepOptions,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Written, SweepError> {
    run_sweep_until(plan, registry, options, progress, &|| false)
}

/// As [`run_sweep`], asking `stop` between batches (each about a quarter
/// of a second of work): when it says so, the sweep ends with
/// [`SweepError::Interrupted`] and writes nothing. Batch sizes do not
/// change the outputs, which come out in run order.
pub fn run_sweep_until(
    plan: &Plan,
    registry: &Registry,
    options: &SweepOptions,
    progress: &(dyn Fn(u64) + Sync),
    stop: &dyn Fn() -> bool,
) -> Result<Written, SweepError> {
    let pool = {
        let mut b = rayon::ThreadPoolBuilder::new();
        if let Some(t) = options.threads {
            b = b.num_threads(t);
        }
        b.build()
            .map_err(|e| SweepError::Merge(format!("thread pool: {e}")))?
    };
    let total = plan.runs();
    if let Some(shard) = options.shard {
        check_shard(total, shard)
            .map_err(|m| SweepError::Merge(format!("shard {}/{}: {m}", shard.0, shard.1)))?;
    }
    let (shard_i, shard_n) = options.shard.unwrap_or((0, 1));
    let dir = match options.shard {
        None => options.out.join(&plan.name),
        Some((i, n)) => options
            .out
            .join(&plan.name)
            .join(format!("shard-{i}-of-{n}")),
    };
    check_outputs(&dir, options.shard.is_some())?;
    let header = plan.runs_header();
    let runs_path = dir.join("runs.csv");
    let mut runs_file = AtomicFile::create(&runs_path).map_err(io_err(&runs_path))?;
    // A shard's manifest records the digest of its rows' bytes.
    let mut digesting = Digesting::new(&mut runs_file);
    let mut runs_csv = csv::Writer::from_writer(&mut digesting);
    runs_csv
        .write_record(&header)
        .map_err(csv_err(&runs_path))?;
    let mut summarizer = (options.shard.is_none()).then(|| Summarizer::new(&header));
    let mut written = Written {
        dir: dir.clone(),
        ..Written::default()
    };
    let mut next = shard_i;
    let mut done = 0;
    let mut batch_size = pool.current_num_threads() as u64;
    while next < total {
        if stop() {
            return Err(SweepError::Interrupted {
                done,
                runs: (total - shard_i).div_ceil(shard_n),
            });
        }
        let started = std::time::Instant::now();
        let batch: Vec<u64> = (0..batch_size)
            .map(|k| next + k * shard_n)
            .take_while(|&r| r < total)
            .collect();
        next = batch.last().map_or(total, |&l| l + shard_n);
        let rows: Vec<Vec<String>> = pool
            .install(|| {
                batch
                    .par_iter()
                    .map_init(Simulator::new, |sim, &r| plan.run_row(r, registry, sim))
                    .collect::<Result<_, _>>()
            })
            .map_err(|e| SweepError::Merge(e.to_string()))?;
        for row in &rows {
            runs_csv.write_record(row).map_err(csv_err(&runs_path))?;
            count_violations(&header, row, &mut written.violations);
            if let Some(s) = summarizer.as_mut() {
                s.push(row).map_err(SweepError::Merge)?;
            }
        }
        done += rows.len() as u64;
        written.runs = done;
        progress(done);
        let seconds = started.elapsed().as_secs_f64();
        if seconds < BATCH_SECONDS / 4.0 {
            batch_size = (batch_size * 2).min(BATCH);
        } else if seconds > BATCH_SECONDS * 2.0 {
            batch_size = (batch_size / 2).max(1);
        }
    }
    runs_csv.flush().map_err(io_err(&runs_path))?;
    drop(runs_csv);
    let runs_digest = digesting.digest();
    written.files.push(runs_path);
    let others = match options.shard {
        Some((i, n)) => {
            let manifest = dir.join("manifest.toml");
            let text = format!(
                "# A shard of a gpuclaim sweep; `gpuclaim merge` reads it.\nname = {:?}\nruns = {total}\nshard = {i}\nshards = {n}\n# A hash of the configuration (Plan::fingerprint): shards merge only with the same.\nfingerprint = \"{:016x}\"\n# FNV-1a 64 of runs.csv's bytes: merge refuses rows edited since.\nruns_digest = \"{runs_digest:016x}\"\n",
                plan.name,
                plan.fingerprint()
            );
            vec![(manifest, text.into_bytes())]
        }
        None => match summarizer {
            Some(s) => s.finish(&dir)?,
            None => Vec::new(),
        },
    };
    commit_set(runs_file, others, &mut written)?;
    Ok(written)
}

/// The files a sweep writes into its folder: a shard's rows and manifest,
/// or the rows, summary and (with the `plots` feature) the plots.
pub fn output_names(sharded: bool) -> Vec<&'static str> {
    if sharded {
        return vec!["runs.csv", "manifest.toml"];
    }
    let mut names = vec!["runs.csv", "summary.csv"];
    if cfg!(feature = "plots") {
        names.extend(["failures.svg", "gpu_hours.svg"]);
    }
    names
}

/// Checks, before any work, that every file of the set could be written
/// in `dir` (none is a folder, the folder takes new files).
fn check_outputs(dir: &Path, sharded: bool) -> Result<(), SweepError> {
    for name in output_names(sharded) {
        let path = dir.join(name);
        crate::report::check_file(&path).map_err(io_err(&path))?;
    }
    Ok(())
}

/// Writes `others` beside the finished `runs_file` and renames the whole set
/// into place only when every file is complete (report::commit_all): a
/// full disk leaves the previous set as it was, not half replaced.
fn commit_set(
    runs_file: AtomicFile,
    others: Vec<(PathBuf, Vec<u8>)>,
    written: &mut Written,
) -> Result<(), SweepError> {
    let mut files = vec![runs_file];
    for (path, bytes) in others {
        let mut f = AtomicFile::create(&path).map_err(io_err(&path))?;
        std::io::Write::write_all(&mut f, &bytes).map_err(io_err(&path))?;
        files.push(f);
        written.files.push(path);
    }
    crate::report::commit_all(files).map_err(|(path, error)| SweepError::Io {
        path: path.display().to_string(),
        error,
    })
}

/// A CSV error as `path:line: reason`, like every other message; csv's own
/// text spells the position its own way (`record 2 (line: 3, byte: 1031)`).
fn csv_err(path: &Path) -> impl Fn(csv::Error) -> SweepError + '_ {
    move |e| {
        let (line, message) = csv_reason(&e);
        SweepError::Csv {
            path: path.display().to_string(),
            line,
            message,
        }
    }
}

/// Adds a row's violation counts to `into`, keyed `POLICY INVARIANT`.
fn count_violations(header: &[String], row: &[String], into: &mut BTreeMap<String, u64>) {
    let policy = header
        .iter()
        .position(|h| h == "policy")
        .and_then(|i| row.get(i))
        .map_or("?", String::as_str);
    for (h, v) in header.iter().zip(row) {
        if let Some(name) = h.strip_prefix("violations.") {
            *into.entry(format!("{policy} {name}")).or_default() += v.parse::<u64>().unwrap_or(0);
        }
    }
}

/// What [`merge`] can check of the rows without the configuration: the
/// runs of a grid point are contiguous, numbered from point 0 up, and share
/// its parameter columns; every point has as many runs (seeds) as point 0;
/// a seed index has the same seed at every point (common random numbers).
/// A row edited by hand or a shard of another sweep of the same name fails
/// one of these, unless every run of a point was edited alike.
#[derive(Default)]
struct RowCheck {
    /// The point being read: its index, its parameters, its first run and
    /// where that was read, and how many runs it has had.
    current: Option<(u64, Vec<String>, u64, String, u64)>,
    /// Runs per point, known once point 0 has ended.
    seeds: Option<u64>,
    /// The seed of each seed index, from point 0.
    seed_of: Vec<String>,
}

impl RowCheck {
    fn row(&mut self, run: u64, row: &[String], at: &str) -> Result<(), SweepError> {
        let fail = |m: String| Err(SweepError::Merge(format!("{at}: {m}")));
        let whole = |i: usize| {
            row.get(i)
                .and_then(|v| v.parse::<u64>().ok())
                .ok_or_else(|| {
                    SweepError::Merge(format!(
                        "{at}: `{}` is `{}`; expected a whole number",
                        RUN_COLUMNS[i],
                        row.get(i).map_or("", String::as_str)
                    ))
                })
        };
        let (point, seed_index) = (whole(1)?, whole(2)?);
        let params_end = RUN_COLUMNS.len() + PARAM_COLUMNS.len();
        let (Some(seed), Some(params)) = (row.get(3), row.get(RUN_COLUMNS.len()..params_end))
        else {
            return fail(format!(
                "{} fields, fewer than the run and parameter columns",
                row.len()
            ));
        };
        match &mut self.current {
            Some((index, first_params, first_run, first_at, runs)) if *index == point => {
                if let Some(j) = (0..params.len()).find(|&j| params[j] != first_params[j]) {
                    return fail(format!(
                        "run {run} has {} = `{}`, but run {first_run} of point {point} ({first_at}) has `{}`; the runs of a grid point share its parameters",
                        PARAM_COLUMNS[j], params[j], first_params[j]
                    ));
                }
                if seed_index != *runs {
                    return fail(format!(
                        "run {run} has seed index {seed_index}, expected {runs} (the next of point {point})"
                    ));
                }
                *runs += 1;
            }
            current => {
                let expected = current.as_ref().map_or(0, |c| c.0 + 1);
                if point != expected {
                    return fail(format!(
                        "run {run} is of point {point}, expected point {expected}"
                    ));
                }
                if let Some((index, _, _, _, runs)) = current {
                    let seeds = *self.seeds.get_or_insert(*runs);
                    if *runs != seeds {
                        return fail(format!(
                            "run {run} starts point {point} after {runs} runs of point {index}, but point 0 has {seeds} runs"
                        ));
                    }
                }
                if seed_index != 0 {
                    return fail(format!(
                        "run {run} starts point {point} with seed index {seed_index}, expected 0"
                    ));
                }
                *current = Some((point, params.to_vec(), run, at.to_string(), 1));
            }
        }
        match self.seed_of.get(seed_index as usize) {
            Some(s) if s != seed => fail(format!(
                "run {run} has seed `{seed}` for seed index {seed_index}, but point 0 has `{s}`; a seed index has the same seed at every point"
            )),
            Some(_) => Ok(()),
            None => {
                self.seed_of.push(seed.clone());
                Ok(())
            }
        }
    }

    /// After the last row: the last point has its full number of runs.
    fn finish(&self, at: &str) -> Result<(), SweepError> {
        match (&self.current, self.seeds) {
            (Some((index, _, _, _, runs)), Some(seeds)) if *runs != seeds => {
                Err(SweepError::Merge(format!(
                    "{at}: the last point, {index}, has {runs} runs, but point 0 has {seeds}"
                )))
            }
            _ => Ok(()),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    name: String,
    runs: u64,
    shard: u64,
    shards: u64,
    /// `Plan::fingerprint` in hex; absent from shards of older versions.
    fingerprint: Option<String>,
    /// FNV-1a 64 of runs.csv's bytes in hex; absent from older versions.
    runs_digest: Option<String>,
}

/// Whether `text` is a hash as manifests write them: 16 lowercase hex digits.
fn hex16(text: &str) -> bool {
    text.len() == 16
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A reader or writer that keeps the FNV-1a 64 hash of the bytes through
/// it: ties a shard's runs.csv to its manifest. (Not a defence against a
/// forger, who could edit the manifest too; it catches edited rows.)
struct Digesting<T> {
    inner: T,
    hash: u64,
}

impl<T> Digesting<T> {
    fn new(inner: T) -> Self {
        Digesting {
            inner,
            hash: 0xcbf2_9ce4_8422_2325,
        }
    }
    fn update(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.hash ^= u64::from(b);
            self.hash = self.hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    fn digest(&self) -> u64 {
        self.hash
    }
}

impl<T: std::io::Write> std::io::Write for Digesting<T> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl<T: std::io::Read> std::io::Read for Digesting<T> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.update(&buf[..n]);
        Ok(n)
    }
}

/// Merges shard folders (each with `runs.csv` and `manifest.toml`) into
/// `out/NAME/`: the same bytes as the unsharded sweep.
pub fn merge(dirs: &[PathBuf], out: &Path) -> Result<Written, SweepError> {
    if dirs.is_empty() {
        return Err(SweepError::Merge("no shard folders given".into()));
    }
    let mut manifests = Vec::new();
    for d in dirs {
        if !d.is_dir() {
            let what = if d.exists() {
                "not a folder"
            } else {
                "no such folder"
            };
            return Err(SweepError::Merge(format!(
                "{}: {what}; expected a shard's folder (with runs.csv and manifest.toml), as `sweep --shard I/N` writes",
                d.display()
            )));
        }
        let p = d.join("manifest.toml");
        let bytes = crate::report::read_input(
            &p,
            crate::report::input_limits::MANIFEST_BYTES,
            "a shard's manifest",
        )?;
        let text = String::from_utf8(bytes).map_err(|_| SweepError::Config {
            file: p.display().to_string(),
            at: None,
            message: "not valid UTF-8; a manifest is UTF-8 text".into(),
        })?;
        let m: Manifest = toml::from_str(&text).map_err(|e| SweepError::Config {
            file: p.display().to_string(),
            at: None,
            message: e.message().trim().to_string(),
        })?;
        // Checked before anything is sized by these numbers, and before the
        // name is joined to the output folder.
        let bad = |message: String| Err(SweepError::Merge(format!("{}: {message}", p.display())));
        if !valid_name(&m.name) {
            return bad(format!("name = {:?}: {NAME_RULE}", m.name));
        }
        if !(1..=m.runs).contains(&m.shards) {
            return bad(format!(
                "shards = {}, but a sweep of {} has 1 to {} shards",
                m.shards,
                count(m.runs, "run", "runs"),
                m.runs
            ));
        }
        if m.shard >= m.shards {
            return bad(format!(
                "shard = {}, but shards = {}: expected 0 to {}",
                m.shard,
                m.shards,
                m.shards - 1
            ));
        }
        match (&m.fingerprint, &m.runs_digest) {
            (None, _) => {
                return bad(
                    "no `fingerprint` (the hash of the sweep's configuration): written by an older gpuclaim; run the shard again".to_string(),
                );
            }
            (_, None) => {
                return bad(
                    "no `runs_digest` (the hash of runs.csv): written by an older gpuclaim; run the shard again".to_string(),
                );
            }
            (Some(f), Some(d)) => {
                for (key, value) in [("fingerprint", f), ("runs_digest", d)] {
                    if !hex16(value) {
                        return bad(format!(
                            "{key} = {value:?}: expected 16 lowercase hex digits, as `sweep --shard` writes"
                        ));
                    }
                }
            }
        }
        manifests.push(m);
    }
    let first = &manifests[0];
    let (name, total, n) = (first.name.clone(), first.runs, first.shards);
    let digests: BTreeMap<PathBuf, String> = manifests
        .iter()
        .zip(dirs)
        .map(|(m, d)| (d.clone(), m.runs_digest.clone().unwrap_or_default()))
        .collect();
    // The output folder must not be a shard's own: its runs.csv would be
    // replaced while it is read.
    let out_dir = out.join(&name);
    if let Some(d) = dirs.iter().find(|d| {
        crate::report::contains_path(d, &out_dir) && crate::report::contains_path(&out_dir, d)
    }) {
        return Err(SweepError::Merge(format!(
            "--out {} would write {} into the shard folder {} it reads; merge elsewhere",
            out.display(),
            out_dir.display(),
            d.display()
        )));
    }
    // By shard index; a map, not a vector of `n`, so that nothing is sized
    // by a number read from a file.
    let mut seen: BTreeMap<u64, PathBuf> = BTreeMap::new();
    for (m, d) in manifests.iter().zip(dirs) {
        if m.name != name || m.runs != total || m.shards != n {
            return Err(SweepError::Merge(format!(
                "{}: shard {}/{} of `{}` ({} runs) does not belong with shard {}/{} of `{}` ({} runs) from {}",
                d.display(),
                m.shard,
                m.shards,
                m.name,
                m.runs,
                first.shard,
                n,
                name,
                total,
                dirs[0].display()
            )));
        }
        if m.fingerprint != first.fingerprint {
            return Err(SweepError::Merge(format!(
                "{} and {}: shards of `{name}` run with different configurations (fingerprints {} and {}); every shard must come from the same sweep file and trace",
                dirs[0].display(),
                d.display(),
                first.fingerprint.as_deref().unwrap_or_default(),
                m.fingerprint.as_deref().unwrap_or_default()
            )));
        }
        if let Some(prev) = seen.insert(m.shard, d.clone()) {
            return Err(SweepError::Merge(format!(
                "shard {}/{n} given twice: {} and {}",
                m.shard,
                prev.display(),
                d.display()
            )));
        }
    }
    if let Some(missing) = (0..n).find(|i| !seen.contains_key(i)) {
        return Err(SweepError::Merge(format!(
            "shard {missing}/{n} of `{name}` is missing; give all {n} shard folders"
        )));
    }
    let shard_dirs: Vec<PathBuf> = seen.into_values().collect();
    let mut readers = Vec::new();
    let mut header: Option<csv::StringRecord> = None;
    for d in &shard_dirs {
        let p = d.join("runs.csv");
        // Streamed, so no size limit; but only from a regular file.
        let mut r = csv::Reader::from_reader(Digesting::new(crate::report::open_input(
            &p,
            "a shard's runs.csv",
        )?));
        let h = r.headers().map_err(csv_err(&p))?.clone();
        // Else the next shard would be blamed for differing from it.
        if h.iter().all(str::is_empty) {
            return Err(SweepError::Merge(format!(
                "{}: the file is empty; expected a shard's rows as `sweep --shard I/N` writes them (a header, then one row per run)",
                p.display()
            )));
        }
        if let Some(prev) = &header {
            if *prev != h {
                return Err(SweepError::Merge(format!(
                    "{}: its header differs from the first shard's",
                    p.display()
                )));
            }
        } else {
            header = Some(h);
        }
        readers.push((p, r.into_records()));
    }
    let header: Vec<String> = header
        .expect("at least one shard")
        .iter()
        .map(str::to_string)
        .collect();
    let expected = RUN_COLUMNS.iter().chain(PARAM_COLUMNS.iter());
    if header.len() < RUN_COLUMNS.len() + PARAM_COLUMNS.len()
        || !header.iter().zip(expected).all(|(h, e)| h == e)
    {
        return Err(SweepError::Merge(format!(
            "{}:1: not the runs.csv of a sweep: its header does not start with {},{}",
            shard_dirs[0].join("runs.csv").display(),
            RUN_COLUMNS.join(","),
            PARAM_COLUMNS.join(",")
        )));
    }
    // The metric columns too, exactly: an extra or renamed column is not a
    // sweep's.
    let metrics = &header[RUN_COLUMNS.len() + PARAM_COLUMNS.len()..];
    if metrics != metric_columns(false).as_slice() && metrics != metric_columns(true).as_slice() {
        return Err(SweepError::Merge(format!(
            "{}:1: not the runs.csv of a sweep: its metric columns are not the ones `sweep` writes",
            shard_dirs[0].join("runs.csv").display()
        )));
    }
    let mut check = RowCheck::default();
    let mut last_at = String::new();
    let dir = out.join(&name);
    check_outputs(&dir, false)?;
    let runs_path = dir.join("runs.csv");
    let mut runs_file = AtomicFile::create(&runs_path).map_err(io_err(&runs_path))?;
    let mut runs_csv = csv::Writer::from_writer(&mut runs_file);
    runs_csv
        .write_record(&header)
        .map_err(csv_err(&runs_path))?;
    let mut summarizer = Summarizer::new(&header);
    let mut written = Written {
        dir: dir.clone(),
        ..Written::default()
    };
    for run in 0..total {
        let (p, records) = &mut readers[(run % n) as usize];
        let record = records
            .next()
            .ok_or_else(|| SweepError::Merge(format!("{}: ends before run {run}", p.display())))?
            .map_err(csv_err(p))?;
        let row: Vec<String> = record.iter().map(str::to_string).collect();
        let at = format!(
            "{}:{}",
            p.display(),
            record.position().map_or(0, |q| q.line())
        );
        if row.first().map(String::as_str) != Some(run.to_string().as_str()) {
            return Err(SweepError::Merge(format!(
                "{at}: expected run {run}, found `{}`",
                row.first().cloned().unwrap_or_default()
            )));
        }
        check.row(run, &row, &at)?;
        runs_csv.write_record(&row).map_err(csv_err(&runs_path))?;
        count_violations(&header, &row, &mut written.violations);
        summarizer
            .push(&row)
            .map_err(|m| SweepError::Merge(format!("{at}: {m}")))?;
        last_at = at;
    }
    for ((p, records), d) in readers.iter_mut().zip(&shard_dirs) {
        if records.next().is_some() {
            return Err(SweepError::Merge(format!(
                "{}: has more rows than its share of {total} runs",
                p.display()
            )));
        }
        // Every byte has been read: the digest is of the whole file.
        let digest = format!("{:016x}", records.reader().get_ref().digest());
        let recorded = digests.get(d).cloned().unwrap_or_default();
        if digest != recorded {
            return Err(SweepError::Merge(format!(
                "{}: its digest is {digest}, but {} records {recorded}: the rows were edited after the shard was written; run the shard again",
                p.display(),
                d.join("manifest.toml").display()
            )));
        }
    }
    check.finish(&last_at)?;
    written.runs = total;
    runs_csv.flush().map_err(io_err(&runs_path))?;
    drop(runs_csv);
    written.files.push(runs_path);
    let others = summarizer.finish(&dir)?;
    commit_set(runs_file, others, &mut written)?;
    Ok(written)
}
