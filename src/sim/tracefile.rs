//! Trace workloads: a CSV of requests (id, GPUs, start, end) read once, then
//! a deterministic share of it replayed onto one device.
//!
//! # How a trace request becomes model steps
//! - At its start, the request arrives like a poisson arrival: `create-vm
//!   gpus=N` in the lowest absent slot (or `no-slot`). A create that fails
//!   `no-gpu` is followed at once by `remove-vm`. At its end, `remove-vm`
//!   (waiting for an operation in flight). No stops or starts.
//! - A fractional GPU request (`0.46`, or openb's `gpu_milli` below 1000)
//!   takes whole GPUs, rounded up: a GPU maps to exactly one VM. openb's
//!   `num_gpu` is already a whole number; `gpu_milli` is not read.
//! - A request for 0 GPUs (a CPU-only pod) is skipped as `zero-gpu`: it does
//!   not compete for GPUs.
//! - A request for more GPUs than the device has is skipped as
//!   `too-many-gpus`.
//! - A share `f` is kept: request `id` is kept when
//!   `splitmix64(fnv1a64(id) ^ seed) / 2^64 < f`, so the choice depends on
//!   the id and the seed only, never on the row order or the thread count.
//! - Times are multiplied by the unit (to minutes) and by `time_scale`; they
//!   are not shifted. openb's pods still running at the trace's end carry
//!   its last second as their end; with the default horizon (the last end
//!   in the file) their remove is never processed, as if censored.
//! - openb pods in phase `Pending` (never scheduled there) are replayed like
//!   the others: this is demand on a device, not the original schedule.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::report::count;
use crate::seed::splitmix64;
use crate::sim::engine::{MINUTES_PER_HOUR, TraceRequest};
use crate::sim::limits::MAX_HORIZON_HOURS;

/// The unit of the time columns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TimeUnit {
    #[default]
    Seconds,
    Minutes,
    Hours,
}

impl TimeUnit {
    pub fn minutes(self) -> f64 {
        match self {
            TimeUnit::Seconds => 1.0 / 60.0,
            TimeUnit::Minutes => 1.0,
            TimeUnit::Hours => 60.0,
        }
    }
    pub fn from_name(name: &str) -> Option<TimeUnit> {
        match name {
            "seconds" => Some(TimeUnit::Seconds),
            "minutes" => Some(TimeUnit::Minutes),
            "hours" => Some(TimeUnit::Hours),
            _ => None,
        }
    }
}

/// Which columns hold what.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Columns {
    pub id: String,
    pub gpus: String,
    pub start: String,
    pub end: String,
    #[serde(default)]
    pub unit: TimeUnit,
}

impl Columns {
    /// The Alibaba openb pod list: `name`, `num_gpu`, `creation_time`,
    /// `deletion_time`, in seconds.
    pub fn openb() -> Columns {
        Columns {
            id: "name".into(),
            gpus: "num_gpu".into(),
            start: "creation_time".into(),
            end: "deletion_time".into(),
            unit: TimeUnit::Seconds,
        }
    }
    /// A preset by name (`openb`).
    pub fn preset(name: &str) -> Option<Columns> {
        (name == "openb").then(Columns::openb)
    }
}

/// One readable row, times in minutes (before `time_scale`).
#[derive(Clone, Debug, PartialEq)]
pub struct TraceRow {
    pub line: u64,
    pub id_hash: u64,
    pub gpus: u32,
    pub start: f64,
    pub end: f64,
}

/// A trace file read into memory.
#[derive(Clone, Debug, PartialEq)]
pub struct TraceFile {
    pub path: PathBuf,
    pub rows: Vec<TraceRow>,
    /// Malformed rows skipped with `skip_bad`: how many, and the first few
    /// messages.
    pub bad_rows: u64,
    pub bad_examples: Vec<String>,
}

/// Why a trace could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    /// The reason is part of the message and deliberately not the error's
    /// `source()`: the binary prints the whole chain, which would repeat it.
    #[error("{path}: {error}")]
    Io { path: String, error: std::io::Error },
    /// Not a regular file, too large, or unreadable.
    #[error(transparent)]
    Input(#[from] crate::report::InputError),
    #[error(
        "{path}: the file is empty; expected a header naming the columns ({columns}), then one row per request"
    )]
    Empty { path: String, columns: String },
    #[error("{path}: no requests to replay: {why}")]
    NoRows { path: String, why: String },
    #[error("{path}:{line}: no column `{column}` ({what}); the header has: {header}")]
    MissingColumn {
        path: String,
        /// The header's line: 1 unless blank lines come first.
        line: u64,
        column: String,
        what: &'static str,
        header: String,
    },
    #[error("{path}:{line}: {message}")]
    Row {
        path: String,
        line: u64,
        message: String,
    },
}

/// The line (when csv knows it) and the reason of a CSV error, without csv's
/// own way of spelling the position, so that messages read `path:line:
/// reason` like every other.
pub(crate) fn csv_reason(e: &csv::Error) -> (Option<u64>, String) {
    match e.kind() {
        csv::ErrorKind::UnequalLengths {
            pos,
            expected_len,
            len,
        } => (
            pos.as_ref().map(csv::Position::line),
            format!("{len} fields, but the rows before it have {expected_len}"),
        ),
        csv::ErrorKind::Utf8 { pos, err } => (
            pos.as_ref().map(csv::Position::line),
            format!("field {} is not valid UTF-8", err.field() + 1),
        ),
        _ => (None, e.to_string()),
    }
}

/// The physical line on which the record read from `pos` begins. csv
/// gives a record the position where reading began, which is before any
/// blank lines it skipped (and, after a CRLF row, at its `\n`), so the
/// line terminators there are counted here.
fn record_line(bytes: &[u8], pos: &csv::Position) -> u64 {
    let mut line = pos.line();
    for &b in bytes.get(pos.byte() as usize..).unwrap_or_default() {
        match b {
            b'\n' => line += 1,
            b'\r' => {}
            _ => break,
        }
    }
    line
}

/// Where the record read from `pos` begins in `bytes`, blank lines skipped.
fn record_start(bytes: &[u8], pos: &csv::Position) -> usize {
    let from = (pos.byte() as usize).min(bytes.len());
    from + bytes[from..]
        .iter()
        .take_while(|&&b| b == b'\n' || b == b'\r')
        .count()
}

/// Whether CSV text ends inside a quoted field: a `"` that opens a field
/// and is never closed. csv reads such a field to the end of the file
/// without an error, so the row it ends looks merely short. The states are
/// those of csv's reader with its defaults (`,`, `"`, doubled quotes).
fn ends_inside_quotes(text: &[u8]) -> bool {
    #[derive(Clone, Copy, PartialEq)]
    enum S {
        Start,
        Field,
        Quoted,
        QuoteInQuoted,
    }
    let mut s = S::Start;
    for &b in text {
        let (quote, end) = (b == b'"', matches!(b, b',' | b'\n' | b'\r'));
        s = match s {
            S::Start if quote => S::Quoted,
            S::Start | S::Field | S::QuoteInQuoted if end => S::Start,
            S::Start | S::Field => S::Field,
            // A quote in a quoted field closes it, or is the first of a
            // doubled (escaped) quote.
            S::Quoted if quote => S::QuoteInQuoted,
            S::Quoted => S::Quoted,
            S::QuoteInQuoted if quote => S::Quoted,
            // `"ab"c`: csv keeps the `c` in the field.
            S::QuoteInQuoted => S::Field,
        };
    }
    s == S::Quoted
}

/// FNV-1a, 64 bits: a fixed hash of a request's id.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

impl TraceFile {
    /// Reads `path` with `columns`. A malformed row is an error naming the
    /// file and line, or with `skip_bad` counted (the first five messages
    /// kept).
    pub fn load(path: &Path, columns: &Columns, skip_bad: bool) -> Result<TraceFile, TraceError> {
        let text =
            crate::report::read_input(path, crate::report::input_limits::TRACE_BYTES, "a trace")?;
        Self::parse(path, &text, columns, skip_bad)
    }

    /// As [`TraceFile::load`], from bytes already read.
    pub fn parse(
        path: &Path,
        bytes: &[u8],
        columns: &Columns,
        skip_bad: bool,
    ) -> Result<TraceFile, TraceError> {
        let shown = path.display().to_string();
        let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(bytes);
        let header_line = record_line(bytes, reader.position());
        let header = reader
            .headers()
            .map_err(|e| TraceError::Row {
                path: shown.clone(),
                line: header_line,
                message: format!("unreadable header: {}", csv_reason(&e).1),
            })?
            .clone();
        // csv reads an empty file (or blank lines) as a header of no names;
        // "no column `name`" would send the user looking for a typo.
        if header.iter().all(|h| h.trim().is_empty()) {
            return Err(TraceError::Empty {
                path: shown,
                columns: [&columns.id, &columns.gpus, &columns.start, &columns.end]
                    .map(String::as_str)
                    .join(","),
            });
        }
        let find = |name: &str, what: &'static str| {
            header
                .iter()
                .position(|h| h.trim() == name)
                .ok_or_else(|| TraceError::MissingColumn {
                    path: shown.clone(),
                    line: header_line,
                    column: name.to_string(),
                    what,
                    header: header.iter().collect::<Vec<_>>().join(","),
                })
        };
        let id_col = find(&columns.id, "request id")?;
        let gpus_col = find(&columns.gpus, "GPUs requested")?;
        let start_col = find(&columns.start, "start time")?;
        let end_col = find(&columns.end, "end time")?;
        let unit = columns.unit.minutes();
        let mut out = TraceFile {
            path: path.to_path_buf(),
            rows: Vec::new(),
            bad_rows: 0,
            bad_examples: Vec::new(),
        };
        let mut record = csv::StringRecord::new();
        loop {
            let before = reader.position().clone();
            let line = record_line(bytes, &before);
            let read = match reader.read_record(&mut record) {
                Ok(true) => Ok(()),
                Ok(false) => break,
                Err(e) => Err(format!("unreadable row: {}", csv_reason(&e).1)),
            };
            // Only the last row can run to the end of the file inside an
            // unclosed quote; it is malformed whatever its fields read.
            let read = read.and_then(|()| {
                let at_end = reader.position().byte() as usize >= bytes.len();
                if at_end && ends_inside_quotes(&bytes[record_start(bytes, &before)..]) {
                    Err("malformed row: a `\"` opens a quoted field that is never closed, so the rest of the file was read into it".to_string())
                } else {
                    Ok(())
                }
            });
            let row = read.and_then(|()| {
                parse_row(
                    &record,
                    line,
                    [id_col, gpus_col, start_col, end_col],
                    unit,
                    columns,
                )
            });
            match row {
                Ok(row) => out.rows.push(row),
                Err(message) if skip_bad => {
                    out.bad_rows += 1;
                    if out.bad_examples.len() < 5 {
                        out.bad_examples.push(format!("{shown}:{line}: {message}"));
                    }
                }
                Err(message) => {
                    return Err(TraceError::Row {
                        path: shown,
                        line,
                        message,
                    });
                }
            }
        }
        // Nothing to replay would run an empty device up to a horizon of 0.
        if out.rows.is_empty() {
            let why = match (out.bad_rows, out.bad_examples.first()) {
                (1, Some(first)) => format!("its one row is bad ({first})"),
                (n, Some(first)) => format!("all {n} rows are bad (the first: {first})"),
                (_, None) => "the file has a header but no rows".to_string(),
            };
            return Err(TraceError::NoRows { path: shown, why });
        }
        Ok(out)
    }

    /// What was read, for people: `2 rows read, 1 skipped as bad, 1 used`,
    /// or `2 rows read` when no row was bad.
    pub fn read_summary(&self) -> String {
        let used = self.rows.len() as u64;
        let read = count(used + self.bad_rows, "row", "rows");
        if self.bad_rows == 0 {
            format!("{read} read")
        } else {
            format!("{read} read, {} skipped as bad, {used} used", self.bad_rows)
        }
    }

    /// The last end time of any row, in minutes before scaling.
    pub fn last_end(&self) -> f64 {
        self.rows.iter().map(|r| r.end).fold(0.0, f64::max)
    }

    /// The requests kept for a device with `gpus` GPUs: share `fraction`
    /// chosen by id and `seed`, times scaled by `time_scale`, in file order.
    pub fn select(&self, gpus: u8, fraction: f64, time_scale: f64, seed: u64) -> Selection {
        let mut s = Selection {
            bad_rows: self.bad_rows,
            ..Selection::default()
        };
        for row in &self.rows {
            if !sampled(row.id_hash, seed, fraction) {
                s.not_sampled += 1;
            } else if row.gpus == 0 {
                s.zero_gpu += 1;
            } else if row.gpus > u32::from(gpus) {
                s.too_many_gpus += 1;
            } else {
                s.requests.push(TraceRequest {
                    gpus: row.gpus as u8,
                    start: row.start * time_scale,
                    end: row.end * time_scale,
                });
            }
        }
        s
    }
}

fn sampled(id_hash: u64, seed: u64, fraction: f64) -> bool {
    if fraction >= 1.0 {
        return true;
    }
    let x = splitmix64(id_hash ^ seed) >> 11;
    (x as f64) / ((1u64 << 53) as f64) < fraction
}

fn parse_row(
    record: &csv::StringRecord,
    line: u64,
    [id, gpus, start, end]: [usize; 4],
    unit: f64,
    columns: &Columns,
) -> Result<TraceRow, String> {
    let field = |i: usize, name: &str| {
        record.get(i).map(str::trim).ok_or_else(|| {
            format!(
                "{} fields, but column `{name}` is field {}",
                record.len(),
                i + 1
            )
        })
    };
    let id_text = field(id, &columns.id)?;
    let gpus_text = field(gpus, &columns.gpus)?;
    let gpus_value: f64 = gpus_text.parse().map_err(|_| {
        format!(
            "`{}` is `{gpus_text}`; expected a number of GPUs (0, 1, 2, … or a fraction)",
            columns.gpus
        )
    })?;
    if !(gpus_value.is_finite() && gpus_value >= 0.0 && gpus_value <= f64::from(u32::MAX)) {
        return Err(format!(
            "`{}` is `{gpus_text}`; expected a non-negative number of GPUs",
            columns.gpus
        ));
    }
    let time = |text: &str, name: &str| -> Result<f64, String> {
        let v: f64 = text.parse().map_err(|_| {
            format!("`{name}` is `{text}`; expected a time (a number, in the trace's unit)")
        })?;
        // Bounded so that the default horizon (the last end) is too.
        let max = MAX_HORIZON_HOURS * MINUTES_PER_HOUR / unit;
        if v.is_finite() && (0.0..=max).contains(&v) {
            Ok(v * unit)
        } else {
            Err(format!(
                "`{name}` is `{text}`; expected a time of 0 to {max} ({MAX_HORIZON_HOURS:e} hours in the trace's unit)"
            ))
        }
    };
    let start_v = time(field(start, &columns.start)?, &columns.start)?;
    let end_v = time(field(end, &columns.end)?, &columns.end)?;
    if end_v < start_v {
        return Err(format!(
            "ends (`{}` = {}) before it starts (`{}` = {})",
            columns.end,
            field(end, &columns.end)?,
            columns.start,
            field(start, &columns.start)?
        ));
    }
    Ok(TraceRow {
        line,
        id_hash: fnv1a64(id_text.as_bytes()),
        gpus: gpus_value.ceil() as u32,
        start: start_v,
        end: end_v,
    })
}

/// The requests kept from a trace for one run, and why the others were not.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Selection {
    pub requests: Vec<TraceRequest>,
    pub not_sampled: u64,
    pub zero_gpu: u64,
    pub too_many_gpus: u64,
    pub bad_rows: u64,
}

impl Selection {
    pub fn kept(&self) -> u64 {
        self.requests.len() as u64
    }
    pub fn skipped(&self) -> u64 {
        self.not_sampled + self.zero_gpu + self.too_many_gpus + self.bad_rows
    }
}

impl fmt::Display for Selection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "kept {}; skipped {}: {} not sampled, {} zero-gpu (CPU only), {} too-many-gpus (more than the device has), {}",
            count(self.kept(), "request", "requests"),
            self.skipped(),
            self.not_sampled,
            self.zero_gpu,
            self.too_many_gpus,
            count(self.bad_rows, "bad row", "bad rows")
        )
    }
}
