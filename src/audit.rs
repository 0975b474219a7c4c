//! Audit of a recorded device history (MODEL.md, "Allocators (version 2)",
//! last bullet): a device's log of timed steps with their outcomes and,
//! where known, the owner of each GPU, checked line by line against the
//! model under one allocator. The first line that departs from the model
//! (a step it does not allow there, another outcome, another owner, or an
//! invariant that fires) is reported with its line and the state before it.
//!
//! This module owns the history format (CSV or JSON lines, described in
//! `examples/histories/README.md`), its parser with `file:line` errors,
//! and the audit itself; `gpuclaim audit` only prints what it returns.
//!
//! ```
//! use std::path::Path;
//! use gpuclaim::audit::{audit, parse_history};
//!
//! let text = "\
//! ## device: gpus=1 vms=a:1
//! time,step,outcome,gpus
//! 0,configure-kube,ok,kube
//! 5,create-vm a,no-gpu,kube
//! ";
//! let history = parse_history(Path::new("log.csv"), text).unwrap();
//! let report = audit(&history, &gpuclaim::Fixed);
//! assert!(report.divergence.is_none());
//! assert_eq!(report.checked, 2);
//! ```

use std::fmt::{self, Write as _};
use std::path::{Path, PathBuf};

use crate::invariant::{Invariant, InvariantSet};
use crate::model::{self, Device, MAX_VMS, Op, Outcome, Phase, State, VmNames};
use crate::policy::Allocator;
use crate::trace::{StepKind, StepSpec, first_action, printable, valid_vm_name};

/// How a history file is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// Comma-separated values with a header line naming the columns.
    Csv,
    /// One JSON object a line, with the CSV columns as its fields.
    JsonLines,
}

impl Format {
    /// The format a file's extension names: `.csv`, or `.jsonl` (also
    /// `.ndjson`).
    pub fn from_path(path: &Path) -> Option<Format> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "csv" => Some(Format::Csv),
            "jsonl" | "ndjson" => Some(Format::JsonLines),
            _ => None,
        }
    }
}

/// A refused history: where, and what was expected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct AuditError {
    pub file: PathBuf,
    /// 1-based line (and column, for JSON), where known.
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub message: String,
}

impl fmt::Display for AuditError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        write!(f, ": {}", self.message)
    }
}

/// Who holds one GPU, as a history records it: any VMs (by slot),
/// Kubernetes, `free`; none of them is `none`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Owners {
    /// Bit `i` is VM slot `i`.
    pub vms: u32,
    pub kube: bool,
    pub free: bool,
}

const _: () = assert!(MAX_VMS <= 32);

impl Owners {
    /// The owners of `gpu` in `state`.
    pub fn of(state: &State, device: &Device, gpu: u8) -> Owners {
        let bit = 1u8 << gpu;
        let mut vms = 0;
        for (i, vm) in state.vms[..device.vms()].iter().enumerate() {
            if vm.held & bit != 0 {
                vms |= 1 << i;
            }
        }
        Owners {
            vms,
            kube: state.kube_held & bit != 0,
            free: state.free & bit != 0,
        }
    }

    /// In the notation of scenario files and [`State::owner`]: VMs in slot
    /// order, then `kube`, then `free`, joined by `+`; `none` for no set.
    pub fn render(&self, names: &VmNames) -> String {
        let mut parts: Vec<&str> = (0..names.len())
            .filter(|i| self.vms & (1 << i) != 0)
            .map(|i| names.name(i))
            .collect();
        if self.kube {
            parts.push("kube");
        }
        if self.free {
            parts.push("free");
        }
        if parts.is_empty() {
            "none".to_string()
        } else {
            parts.join("+")
        }
    }
}

/// One line of a history: one step, its outcome and what was seen after it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// 1-based line in the file (where a CSV record starts).
    pub line: usize,
    /// The line as written (control characters escaped).
    pub text: String,
    /// The time as written; kept for messages only.
    pub time: String,
    pub step: StepSpec,
    pub outcome: Outcome,
    /// The owner of each GPU after the step, in GPU order (`None` for a GPU
    /// written `?`); `None` when the line records no owners.
    pub owners: Option<Vec<Option<Owners>>>,
}

/// A parsed history: its device, VM names (slot order) and lines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct History {
    pub file: PathBuf,
    pub device: Device,
    pub names: VmNames,
    pub entries: Vec<Entry>,
}

impl History {
    /// The device line's values, as written back: `gpus=2 vms=a:1,b:1`.
    pub fn device_text(&self) -> String {
        let vms: Vec<String> = (0..self.device.vms())
            .map(|i| format!("{}:{}", self.names.name(i), self.device.size(i)))
            .collect();
        if vms.is_empty() {
            format!("gpus={}", self.device.gpus())
        } else {
            format!("gpus={} vms={}", self.device.gpus(), vms.join(","))
        }
    }
}

/// Reads a history file, its format given or taken from its extension.
pub fn load(path: &Path, format: Option<Format>) -> Result<History, AuditError> {
    let bytes = std::fs::read(path).map_err(|e| AuditError {
        file: path.to_path_buf(),
        line: None,
        column: None,
        message: format!("cannot read the file: {e}"),
    })?;
    let text = crate::report::utf8(&bytes).map_err(|bad| AuditError {
        file: path.to_path_buf(),
        line: Some(bad.valid.matches('\n').count() + 1),
        column: None,
        message: format!(
            "not valid UTF-8: {} (byte offset {}); a history is UTF-8 text",
            bad.what, bad.offset
        ),
    })?;
    let format = match format {
        Some(f) => f,
        None => format_of(path)?,
    };
    parse_history_as(path, text, format)
}

fn format_of(path: &Path) -> Result<Format, AuditError> {
    Format::from_path(path).ok_or_else(|| AuditError {
        file: path.to_path_buf(),
        line: None,
        column: None,
        message: "cannot tell the format from the file's extension; name it .csv or .jsonl, or give --format csv or --format jsonl".into(),
    })
}

/// Reads history text in the format its extension names (`.csv`,
/// `.jsonl`); `path` is used for that and in error messages only.
pub fn parse_history(path: &Path, text: &str) -> Result<History, AuditError> {
    parse_history_as(path, text, format_of(path)?)
}

/// Reads history text in `format`; `path` is used in error messages only.
pub fn parse_history_as(path: &Path, text: &str, format: Format) -> Result<History, AuditError> {
    // Spreadsheets start their CSV with a byte order mark.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut p = Parser {
        file: path,
        device: None,
        entries: Vec::new(),
        last_time: None,
    };
    match format {
        Format::Csv => p.csv(text)?,
        Format::JsonLines => p.json_lines(text)?,
    }
    let refused = |message: String| AuditError {
        file: path.to_path_buf(),
        line: None,
        column: None,
        message,
    };
    let Parser {
        device, entries, ..
    } = p;
    let Some(device) = device else {
        return Err(refused(no_device()));
    };
    if entries.is_empty() {
        return Err(refused(
            "no steps: the history has a device line but no step lines".into(),
        ));
    }
    Ok(History {
        file: path.to_path_buf(),
        device: device.device,
        names: device.names,
        entries,
    })
}

fn no_device() -> String {
    "no device line; a history starts with a comment line such as `# device: gpus=2 vms=a:1,b:1`"
        .into()
}

/// The device line's result.
struct DeviceLine {
    device: Device,
    names: VmNames,
    line: usize,
}

/// A time as compared: numbers with numbers, timestamps with timestamps.
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd)]
enum Moment {
    Number(f64),
    /// Nanoseconds since 1970-01-01T00:00:00Z.
    Timestamp(i128),
}

struct Parser<'a> {
    file: &'a Path,
    device: Option<DeviceLine>,
    entries: Vec<Entry>,
    /// The previous line's time: its value, text and line.
    last_time: Option<(Moment, String, usize)>,
}

/// A line's fields as read, before they are checked. `None` is a field
/// left out (or empty).
#[derive(Default)]
struct Fields {
    time: Option<String>,
    step: Option<String>,
    op: Option<String>,
    vm: Option<String>,
    phase: Option<String>,
    options: Option<String>,
    outcome: Option<String>,
    /// One string (owners separated by spaces) or one string per GPU.
    gpus: Option<Vec<String>>,
}

const COLUMNS: [&str; 9] = [
    "time", "step", "op", "vm", "phase", "options", "outcome", "gpus", "note",
];
const COLUMNS_EXPECTED: &str = "time, step (or op, vm, phase, options), outcome, gpus, note";

impl Parser<'_> {
    fn error(&self, line: Option<usize>, message: impl Into<String>) -> AuditError {
        AuditError {
            file: self.file.to_path_buf(),
            line,
            column: None,
            message: printable(&message.into()).into_owned(),
        }
    }

    /// A comment line (`#` first): the device line, or anything else,
    /// which is skipped. A device line after a step is always a second
    /// one: a step without a device before it is refused at that step.
    fn comment(&mut self, line: usize, text: &str) -> Result<(), AuditError> {
        let text = text
            .split('\n')
            .next()
            .unwrap_or(text)
            .trim_end_matches('\r');
        let body = text[1..].trim_start();
        let Some(values) = body.strip_prefix("device:") else {
            return Ok(());
        };
        if let Some(first) = &self.device {
            return Err(self.error(
                Some(line),
                format!(
                    "a second device line (the first is on line {}); a history names its device once",
                    first.line
                ),
            ));
        }
        let device = parse_device(values).map_err(|m| self.error(Some(line), m))?;
        self.device = Some(DeviceLine {
            device: device.0,
            names: device.1,
            line,
        });
        Ok(())
    }

    fn device_at(&self, line: usize) -> Result<&DeviceLine, AuditError> {
        self.device
            .as_ref()
            .ok_or_else(|| self.error(Some(line), no_device()))
    }

    fn csv(&mut self, text: &str) -> Result<(), AuditError> {
        // The comment lines before the header: the device line is among them.
        let mut header_line = None;
        for (i, raw) in text.split('\n').enumerate() {
            let raw = raw.strip_suffix('\r').unwrap_or(raw);
            if raw.starts_with('#') {
                self.comment(i + 1, raw)?;
            } else if !raw.trim().is_empty() {
                header_line = Some(i + 1);
                break;
            }
        }
        let Some(header_line) = header_line else {
            return Ok(());
        };
        self.device_at(header_line)?;
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .comment(Some(b'#'))
            .trim(csv::Trim::All)
            .from_reader(text.as_bytes());
        let mut record = csv::StringRecord::new();
        let mut header: Option<Vec<String>> = None;
        let mut lines = LineCounter::default();
        loop {
            let at = (reader.position().byte() as usize).min(text.len());
            let more = reader.read_record(&mut record).map_err(|e| {
                let line = e.position().map(|p| p.line() as usize);
                self.error(line, format!("not valid CSV: {e}"))
            })?;
            // csv skips blank and comment lines before a record, and its
            // position is where it started skipping; those before the
            // header were read above.
            let (start, comments) = skip_to_record(text, at);
            if header.is_some() {
                for comment in comments {
                    self.comment(lines.line_of(text, comment), &text[comment..])?;
                }
            }
            if !more {
                break;
            }
            if record.iter().all(str::is_empty) {
                continue;
            }
            let end = (reader.position().byte() as usize).clamp(start, text.len());
            let line = lines.line_of(text, start);
            let raw = text[start..end].trim_end_matches(['\r', '\n']);
            let Some(columns) = &header else {
                header = Some(self.csv_header(line, &record)?);
                continue;
            };
            if record.len() > columns.len() {
                return Err(self.error(
                    Some(line),
                    format!(
                        "{} fields, but the header names {} columns ({})",
                        record.len(),
                        columns.len(),
                        columns.join(", ")
                    ),
                ));
            }
            let mut fields = Fields::default();
            for (name, value) in columns.iter().zip(record.iter()) {
                if value.is_empty() {
                    continue;
                }
                let value = Some(value.to_string());
                match name.as_str() {
                    "time" => fields.time = value,
                    "step" => fields.step = value,
                    "op" => fields.op = value,
                    "vm" => fields.vm = value,
                    "phase" => fields.phase = value,
                    "options" => fields.options = value,
                    "outcome" => fields.outcome = value,
                    "gpus" => fields.gpus = value.map(|v| vec![v]),
                    _ => {}
                }
            }
            self.entry(line, raw, fields)?;
        }
        Ok(())
    }

    fn csv_header(
        &self,
        line: usize,
        record: &csv::StringRecord,
    ) -> Result<Vec<String>, AuditError> {
        let mut columns: Vec<String> = Vec::new();
        for name in record.iter() {
            let name = name.to_ascii_lowercase();
            if !COLUMNS.contains(&name.as_str()) {
                return Err(self.error(
                    Some(line),
                    format!("unknown column `{name}` in the header; expected {COLUMNS_EXPECTED}"),
                ));
            }
            if columns.contains(&name) {
                return Err(self.error(
                    Some(line),
                    format!("column `{name}` is named twice in the header"),
                ));
            }
            columns.push(name);
        }
        let has = |c: &str| columns.iter().any(|n| n == c);
        for needed in ["time", "outcome"] {
            if !has(needed) {
                return Err(self.error(
                    Some(line),
                    format!("the header has no `{needed}` column; expected {COLUMNS_EXPECTED}"),
                ));
            }
        }
        match (has("step"), has("op")) {
            (true, true) => {
                return Err(self.error(Some(line), both_step_and_op()));
            }
            (false, false) => {
                return Err(self.error(
                    Some(line),
                    "the header has neither a `step` column nor an `op` column; give each step in step syntax (`begin create-vm a`) or as op, vm, phase, options",
                ));
            }
            (true, false) => {
                if let Some(c) = ["vm", "phase", "options"].into_iter().find(|c| has(c)) {
                    return Err(self.error(
                        Some(line),
                        format!("column `{c}` goes with `op`, not with `step`; the step column holds the whole step"),
                    ));
                }
            }
            (false, true) => {}
        }
        Ok(columns)
    }

    fn json_lines(&mut self, text: &str) -> Result<(), AuditError> {
        for (i, raw) in text.split('\n').enumerate() {
            let line = i + 1;
            let raw = raw.strip_suffix('\r').unwrap_or(raw);
            let trimmed = raw.trim_start();
            if trimmed.is_empty() {
                continue;
            }
            if trimmed.starts_with('#') {
                self.comment(line, trimmed)?;
                continue;
            }
            self.device_at(line)?;
            let value: serde_json::Value = serde_json::from_str(raw).map_err(|e| {
                let message = e.to_string();
                // serde_json ends its message with ` at line 1 column N`:
                // it saw one line; the file's line and the column are
                // given as the error's position instead.
                let message = match message.rfind(" at line ") {
                    Some(at) => message[..at].to_string(),
                    None => message,
                };
                AuditError {
                    column: Some(e.column()),
                    ..self.error(
                        Some(line),
                        format!("not valid JSON: {message}; each line is one JSON object"),
                    )
                }
            })?;
            let fields = self.json_fields(line, &value)?;
            self.entry(line, raw, fields)?;
        }
        Ok(())
    }

    fn json_fields(&self, line: usize, value: &serde_json::Value) -> Result<Fields, AuditError> {
        use serde_json::Value;
        let kind = |v: &Value| match v {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Number(_) => "a number",
            Value::String(_) => "a string",
            Value::Array(_) => "an array",
            Value::Object(_) => "an object",
        };
        let Value::Object(map) = value else {
            return Err(self.error(
                Some(line),
                format!("expected a JSON object, found {}", kind(value)),
            ));
        };
        let string = |key: &str, v: &Value| -> Result<Option<String>, AuditError> {
            match v {
                Value::Null => Ok(None),
                Value::String(s) if s.trim().is_empty() => Ok(None),
                Value::String(s) => Ok(Some(s.trim().to_string())),
                other => Err(self.error(
                    Some(line),
                    format!("`{key}` must be a string, found {}", kind(other)),
                )),
            }
        };
        let mut fields = Fields::default();
        for (key, v) in map {
            match key.as_str() {
                "time" => {
                    fields.time = match v {
                        Value::Number(n) => Some(n.to_string()),
                        Value::String(_) | Value::Null => string(key, v)?,
                        other => {
                            return Err(self.error(
                                Some(line),
                                format!(
                                    "`time` must be a number or a string, found {}",
                                    kind(other)
                                ),
                            ));
                        }
                    }
                }
                "step" => fields.step = string(key, v)?,
                "op" => fields.op = string(key, v)?,
                "vm" => fields.vm = string(key, v)?,
                "phase" => fields.phase = string(key, v)?,
                "options" => fields.options = string(key, v)?,
                "outcome" => fields.outcome = string(key, v)?,
                "note" => {}
                "gpus" => {
                    fields.gpus = match v {
                        Value::Array(items) => Some(
                            items
                                .iter()
                                .map(|item| match item {
                                    Value::String(s) => Ok(s.trim().to_string()),
                                    other => Err(self.error(
                                        Some(line),
                                        format!(
                                            "`gpus` must list strings, one owner per GPU; found {}",
                                            kind(other)
                                        ),
                                    )),
                                })
                                .collect::<Result<_, _>>()?,
                        ),
                        Value::String(_) | Value::Null => string(key, v)?.map(|s| vec![s]),
                        other => {
                            return Err(self.error(
                                Some(line),
                                format!(
                                    "`gpus` must be a string or an array of strings, found {}",
                                    kind(other)
                                ),
                            ));
                        }
                    }
                }
                other => {
                    return Err(self.error(
                        Some(line),
                        format!("unknown field `{other}`; expected {COLUMNS_EXPECTED}"),
                    ));
                }
            }
        }
        if map.contains_key("step") && map.contains_key("op") {
            return Err(self.error(Some(line), both_step_and_op()));
        }
        Ok(fields)
    }

    /// Checks one line's fields and adds its entry.
    fn entry(&mut self, line: usize, raw: &str, f: Fields) -> Result<(), AuditError> {
        let at = Some(line);
        let err = |m: String| self.error(at, m);
        let time = f.time.ok_or_else(|| {
            err("no time; expected a number or a timestamp such as 2021-03-01T09:00:00Z".into())
        })?;
        let moment = parse_time(&time).ok_or_else(|| {
            err(format!(
                "time `{time}`: expected a number or a timestamp such as 2021-03-01T09:00:00Z"
            ))
        })?;
        if let Some((last, last_text, last_line)) = &self.last_time {
            match (last, moment) {
                (Moment::Number(_), Moment::Timestamp(_))
                | (Moment::Timestamp(_), Moment::Number(_)) => {
                    return Err(err(format!(
                        "time `{time}` is not of the kind of `{last_text}` on line {last_line}; a history's times are all numbers or all timestamps"
                    )));
                }
                _ if moment < *last => {
                    return Err(err(format!(
                        "time `{time}` is before `{last_text}` on line {last_line}; times must not go backwards"
                    )));
                }
                _ => {}
            }
        }
        let step = match (&f.step, &f.op) {
            (Some(step), None) => StepSpec::parse(step).map_err(|e| err(e.0))?,
            (None, Some(op)) => step_of_columns(
                op,
                f.vm.as_deref(),
                f.phase.as_deref(),
                f.options.as_deref(),
            )
            .map_err(err)?,
            (None, None) => {
                return Err(err(
                    "no step; expected `step` in step syntax, or `op` with vm, phase and options"
                        .into(),
                ));
            }
            (Some(_), Some(_)) => return Err(err(both_step_and_op())),
        };
        let device = self.device_at(line)?;
        if let Some(vm) = &step.vm
            && device.names.slot(vm).is_none()
        {
            return Err(err(format!(
                "unknown VM `{vm}`; {}",
                names_known(&device.names)
            )));
        }
        if let model::StepOption::Gpus(n) = step.option
            && n > device.device.gpus()
        {
            return Err(err(format!(
                "`{step}`: gpus={n} but the device has {}",
                gpu_count(device.device.gpus())
            )));
        }
        let outcome_text = f
            .outcome
            .ok_or_else(|| err("no outcome; expected ok, no-gpu or rejected".into()))?;
        let outcome = Outcome::from_name(&outcome_text).ok_or_else(|| {
            err(format!(
                "unknown outcome `{outcome_text}`; expected ok, no-gpu or rejected"
            ))
        })?;
        let owners = match &f.gpus {
            None => None,
            Some(parts) => parse_owners(parts, &device.device, &device.names).map_err(err)?,
        };
        self.last_time = Some((moment, time.clone(), line));
        self.entries.push(Entry {
            line,
            text: printable(raw).into_owned(),
            time,
            step,
            outcome,
            owners,
        });
        Ok(())
    }
}

fn both_step_and_op() -> String {
    "both `step` and `op` are given; give the step in one `step` column or as op, vm, phase, options"
        .into()
}

fn gpu_count(n: u8) -> String {
    crate::report::count(u64::from(n), "GPU", "GPUs")
}

fn names_known(names: &VmNames) -> String {
    if names.is_empty() {
        "the device line names no VM".into()
    } else {
        format!("the device line names {}", names.as_slice().join(", "))
    }
}

/// Where the record that csv started reading at `at` really starts: past
/// the empty and comment lines csv skipped. Also gives where each of
/// those comment lines starts.
fn skip_to_record(text: &str, mut at: usize) -> (usize, Vec<usize>) {
    let mut comments = Vec::new();
    while at < text.len() {
        let rest = &text[at..];
        let line_end = rest.find('\n').map_or(rest.len(), |i| i + 1);
        let line = rest[..line_end].trim_end_matches(['\r', '\n']);
        if line.starts_with('#') {
            comments.push(at);
        } else if !line.is_empty() {
            break;
        }
        at += line_end;
    }
    (at, comments)
}

/// Line numbers of byte offsets asked for in increasing order, counted
/// once (a long history is not counted again for every record).
#[derive(Default)]
struct LineCounter {
    at: usize,
    newlines: usize,
}

impl LineCounter {
    fn line_of(&mut self, text: &str, at: usize) -> usize {
        if at < self.at {
            *self = LineCounter::default();
        }
        self.newlines += text.as_bytes()[self.at..at]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        self.at = at;
        self.newlines + 1
    }
}

/// `gpus=2 vms=a:1,b:1` (`vms` may be left out; a VM without `:N` has
/// size 1, as in scenario files).
fn parse_device(values: &str) -> Result<(Device, VmNames), String> {
    const EXPECTED: &str = "expected `# device: gpus=G vms=NAME:SIZE,...`";
    let mut gpus = None;
    let mut vms: Option<(Vec<String>, Vec<u8>)> = None;
    for word in values.split_whitespace() {
        let Some((key, value)) = word.split_once('=') else {
            return Err(format!(
                "device line: `{word}` is not KEY=VALUE; {EXPECTED}"
            ));
        };
        match key {
            "gpus" => {
                if gpus.is_some() {
                    return Err("device line: `gpus` is given twice".into());
                }
                let n = value
                    .parse::<u8>()
                    .ok()
                    .filter(|n| (1..=model::MAX_GPUS).contains(n))
                    .ok_or_else(|| {
                        format!(
                            "device line: gpus={value}: expected 1 to {} GPUs",
                            model::MAX_GPUS
                        )
                    })?;
                gpus = Some(n);
            }
            "vms" => {
                if vms.is_some() {
                    return Err("device line: `vms` is given twice".into());
                }
                let mut names = Vec::new();
                let mut sizes = Vec::new();
                for item in value.split(',').filter(|s| !s.is_empty()) {
                    let (name, size) = match item.split_once(':') {
                        Some((name, size)) => {
                            let size = size.parse::<u8>().map_err(|_| {
                                format!(
                                    "device line: `{item}`: the size after `:` is a number of GPUs"
                                )
                            })?;
                            (name, size)
                        }
                        None => (item, 1),
                    };
                    if !valid_vm_name(name) {
                        return Err(format!(
                            "device line: malformed VM name `{name}`; expected a letter followed by letters, digits, `-` or `_`"
                        ));
                    }
                    if name == "kube" || name == "free" || name == "none" {
                        return Err(format!(
                            "device line: `{name}` cannot name a VM; it is an owner of its own in `gpus`"
                        ));
                    }
                    if names.iter().any(|n| n == name) {
                        return Err(format!("device line: VM `{name}` is listed twice"));
                    }
                    names.push(name.to_string());
                    sizes.push(size);
                }
                vms = Some((names, sizes));
            }
            other => {
                return Err(format!("device line: unknown key `{other}`; {EXPECTED}"));
            }
        }
    }
    let gpus = gpus.ok_or_else(|| format!("device line: no `gpus`; {EXPECTED}"))?;
    let (names, sizes) = vms.unwrap_or_default();
    let device = Device::new(gpus, &sizes).map_err(|e| match e {
        model::DeviceError::Size { slot, size, gpus } => format!(
            "device line: VM `{}` needs {} but the device has {}",
            names[slot],
            gpu_count(size),
            gpu_count(gpus)
        ),
        other => format!("device line: {other}"),
    })?;
    Ok((device, VmNames::new(names)))
}

/// A step given as columns: `phase` is `begin`, `end`, `event` (for
/// `kube-takeover`) or left out (a plain step).
fn step_of_columns(
    op: &str,
    vm: Option<&str>,
    phase: Option<&str>,
    options: Option<&str>,
) -> Result<StepSpec, String> {
    let prefix = match phase {
        None => "",
        Some("begin") => "begin ",
        Some("end") => "end ",
        Some("event") if op == Op::KubeTakeover.name() => "",
        Some("event") => {
            return Err(format!(
                "phase `event` is for kube-takeover; `{op}` is a request: begin, end, or no phase for both"
            ));
        }
        Some(other) => {
            return Err(format!(
                "unknown phase `{other}`; expected begin, end, event (kube-takeover) or none"
            ));
        }
    };
    if op.split_whitespace().count() != 1 {
        return Err(format!(
            "`op` is one word, found `{op}`; the VM, phase and options have columns of their own"
        ));
    }
    if let Some(known) = Op::from_name(op)
        && !known.takes_vm()
        && let Some(vm) = vm
    {
        return Err(format!("`{op}` names no VM, found vm `{vm}`"));
    }
    if let Some(vm) = vm
        && !valid_vm_name(vm)
    {
        return Err(format!(
            "malformed VM name `{vm}`; expected a letter followed by letters, digits, `-` or `_`"
        ));
    }
    let mut text = format!("{prefix}{op}");
    for part in [vm, options].into_iter().flatten() {
        text.push(' ');
        text.push_str(part);
    }
    StepSpec::parse(&text).map_err(|e| e.0)
}

/// The `gpus` field: one owner per GPU in GPU order (given as one string
/// separated by spaces, or as a list). `None` when nothing was recorded.
fn parse_owners(
    parts: &[String],
    device: &Device,
    names: &VmNames,
) -> Result<Option<Vec<Option<Owners>>>, String> {
    let words: Vec<&str> = if let [one] = parts {
        one.split_whitespace().collect()
    } else {
        parts.iter().map(String::as_str).collect()
    };
    if words.is_empty() {
        return Ok(None);
    }
    let g = usize::from(device.gpus());
    if words.len() != g {
        return Err(format!(
            "gpus lists {} (`{}`) but the device has {}; expected one owner per GPU, in GPU order",
            crate::report::count(words.len() as u64, "owner", "owners"),
            words.join(" "),
            gpu_count(device.gpus())
        ));
    }
    let expected = |known: &str| {
        format!(
            "expected free, kube, none, ? (not recorded) or a VM ({known}), joined by `+` when several"
        )
    };
    let known = if names.is_empty() {
        "the device has none".to_string()
    } else {
        names.as_slice().join(", ")
    };
    let mut out = Vec::with_capacity(g);
    for (gpu, word) in words.iter().enumerate() {
        if *word == "?" {
            out.push(None);
            continue;
        }
        let mut owners = Owners::default();
        let mut none = false;
        let mut seen: Vec<&str> = Vec::new();
        for part in word.split('+') {
            if seen.contains(&part) {
                return Err(format!(
                    "gpus: owner `{part}` is listed twice in `{word}` (gpu{gpu}); name each owner of a GPU once"
                ));
            }
            seen.push(part);
            match part {
                "free" => owners.free = true,
                "kube" => owners.kube = true,
                "none" => none = true,
                "?" => {
                    return Err(format!(
                        "gpus: `{word}` (gpu{gpu}): `?` means not recorded, so it stands alone"
                    ));
                }
                name => match names.slot(name) {
                    Some(slot) => owners.vms |= 1 << slot,
                    None => {
                        return Err(format!(
                            "gpus: unknown owner `{part}` of gpu{gpu}; {}",
                            expected(&known)
                        ));
                    }
                },
            }
        }
        if none && seen.len() > 1 {
            return Err(format!(
                "gpus: `{word}` (gpu{gpu}): `none` means the GPU is in no set, so it stands alone"
            ));
        }
        out.push(Some(owners));
    }
    Ok(Some(out))
}

/// A number, or a timestamp `YYYY-MM-DD[T| ]HH:MM[:SS[.F]][Z|±HH:MM]`
/// (no offset reads as UTC).
fn parse_time(text: &str) -> Option<Moment> {
    if let Ok(x) = text.parse::<f64>() {
        return x.is_finite().then_some(Moment::Number(x));
    }
    parse_timestamp(text).map(Moment::Timestamp)
}

fn parse_timestamp(text: &str) -> Option<i128> {
    let b = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = b.get(range)?;
        if part.iter().all(u8::is_ascii_digit) {
            std::str::from_utf8(part).ok()?.parse().ok()
        } else {
            None
        }
    };
    let year = digits(0..4)?;
    let month = digits(5..7)?;
    let day = digits(8..10)?;
    if b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') {
        return None;
    }
    if !matches!(b.get(10), Some(b'T' | b't' | b' ')) {
        return None;
    }
    let hour = digits(11..13)?;
    if b.get(13) != Some(&b':') {
        return None;
    }
    let minute = digits(14..16)?;
    let mut at = 16;
    let mut second = 0;
    let mut nanos: i128 = 0;
    if b.get(at) == Some(&b':') {
        second = digits(at + 1..at + 3)?;
        at += 3;
        if b.get(at) == Some(&b'.') {
            at += 1;
            let start = at;
            while b.get(at).is_some_and(u8::is_ascii_digit) {
                at += 1;
            }
            if at == start {
                return None;
            }
            let frac = &text[start..at.min(start + 9)];
            nanos = frac.parse::<i128>().ok()? * 10i128.pow(9 - frac.len() as u32);
        }
    }
    let offset_minutes = match b.get(at) {
        None => 0,
        Some(b'Z' | b'z') if at + 1 == b.len() => 0,
        Some(sign @ (b'+' | b'-')) => {
            let h = digits(at + 1..at + 3)?;
            let (m, end) = if b.get(at + 3) == Some(&b':') {
                (digits(at + 4..at + 6)?, at + 6)
            } else {
                (digits(at + 3..at + 5)?, at + 5)
            };
            if end != b.len() || h > 23 || m > 59 {
                return None;
            }
            if *sign == b'+' {
                h * 60 + m
            } else {
                -(h * 60 + m)
            }
        }
        Some(_) => return None,
    };
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&month)
        || day < 1
        || day > month_days[(month - 1) as usize]
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let seconds = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second
        - offset_minutes * 60;
    Some(i128::from(seconds) * 1_000_000_000 + nanos)
}

/// Days from 1970-01-01 to a date of the proleptic Gregorian calendar
/// (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// One way a line departs from the model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Finding {
    /// The model rejects the step in the state reached; the history says
    /// it was carried out with this outcome.
    NotAllowed { recorded: Outcome },
    /// The history says the step was rejected; the model allows it, with
    /// this outcome.
    NotRejected { expected: Outcome },
    /// Both carried the step out, with different outcomes.
    Outcome {
        expected: Outcome,
        recorded: Outcome,
    },
    /// A recorded owner differs from the model's.
    Owner {
        gpu: u8,
        expected: String,
        recorded: String,
    },
    /// An invariant fired at this step.
    Invariant(Invariant),
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Finding::NotAllowed { recorded } => write!(
                f,
                "the model does not allow this step in the state reached (rejected); the history says {recorded}"
            ),
            Finding::NotRejected { expected } => write!(
                f,
                "the history says rejected; the model allows this step here (outcome {expected})"
            ),
            Finding::Outcome { expected, recorded } => write!(
                f,
                "outcome: the model gives {expected}, the history says {recorded}"
            ),
            Finding::Owner {
                gpu,
                expected,
                recorded,
            } => write!(
                f,
                "gpu{gpu}: the model has {expected}, the history records {recorded}"
            ),
            Finding::Invariant(inv) => write!(f, "invariant {inv} fires"),
        }
    }
}

/// The first line that departs from the model, and how.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Divergence {
    /// 1-based line in the file.
    pub line: usize,
    /// The line as written.
    pub text: String,
    pub time: String,
    /// Every way the line departs, in this order: the step's admission or
    /// outcome, owners by GPU, invariants.
    pub findings: Vec<Finding>,
    /// The state before the line ([`State::render`]).
    pub before: String,
    /// What the model gives: the outcome, each GPU's owner after the step
    /// ([`State::owner`]) and the invariants that fired.
    pub expected_outcome: Outcome,
    pub expected_owners: Vec<String>,
    pub violations: InvariantSet,
    /// What the history recorded: the outcome, and each GPU's owner (`?`
    /// for one not recorded) when the line records owners.
    pub recorded_outcome: Outcome,
    pub recorded_owners: Option<Vec<String>>,
}

/// What an audit found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditReport {
    pub file: PathBuf,
    /// The allocator's name.
    pub allocator: String,
    /// `gpus=2 vms=a:1,b:1`.
    pub device: String,
    /// Lines that conformed (all of them when there is no divergence).
    pub checked: usize,
    pub divergence: Option<Divergence>,
    /// The model state after the last line that conformed.
    pub state: State,
    /// That state, rendered ([`State::render`]).
    pub state_text: String,
}

impl AuditReport {
    pub fn conforms(&self) -> bool {
        self.divergence.is_none()
    }

    /// The report `gpuclaim audit` prints.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let file = self.file.display();
        let _ = writeln!(
            out,
            "audit {file} under {}: device {}",
            self.allocator, self.device
        );
        match &self.divergence {
            None => {
                let _ = writeln!(
                    out,
                    "conforms: {}, every step allowed with its recorded outcome and owners, no invariant fired",
                    crate::report::count(self.checked as u64, "line", "lines")
                );
                let _ = writeln!(out, "  final:    {}", self.state_text);
            }
            Some(d) => {
                let _ = writeln!(
                    out,
                    "DIVERGES at {file}:{} (time {}), after {} that conformed",
                    d.line,
                    d.time,
                    crate::report::count(self.checked as u64, "line", "lines")
                );
                let _ = writeln!(out, "  line:     {}", d.text);
                let _ = writeln!(out, "  before:   {}", d.before);
                let mut expected = format!(
                    "{}; gpus {}",
                    d.expected_outcome,
                    d.expected_owners.join(" ")
                );
                if !d.violations.is_empty() {
                    let names: Vec<&str> = d.violations.iter().map(Invariant::name).collect();
                    let _ = write!(expected, "; fires {}", names.join(", "));
                }
                let _ = writeln!(out, "  expected: {expected}");
                let recorded = match &d.recorded_owners {
                    Some(owners) => format!("{}; gpus {}", d.recorded_outcome, owners.join(" ")),
                    None => format!("{}; gpus not recorded", d.recorded_outcome),
                };
                let _ = writeln!(out, "  recorded: {recorded}");
                for finding in &d.findings {
                    let _ = writeln!(out, "  - {finding}");
                }
            }
        }
        out
    }
}

/// Steps the model through `history` under `allocator`, from the initial
/// state, and stops at the first line that departs from it.
///
/// A plain request (no `begin`/`end`) is its begin step followed, when
/// that is `ok` and leaves the operation in flight, by its end step, as in
/// scenario files; its outcome and owners are compared after both.
pub fn audit<A: Allocator + ?Sized>(history: &History, allocator: &A) -> AuditReport {
    let device = &history.device;
    let names = &history.names;
    let mut state = device.initial();
    let mut checked = 0;
    let mut divergence = None;
    for entry in &history.entries {
        let before = state;
        let (after, outcome, violations) =
            run_entry(allocator, device, names, &before, &entry.step);
        let mut findings = Vec::new();
        match (outcome, entry.outcome) {
            (e, r) if e == r => {}
            (Outcome::Rejected, recorded) => findings.push(Finding::NotAllowed { recorded }),
            (expected, Outcome::Rejected) => findings.push(Finding::NotRejected { expected }),
            (expected, recorded) => findings.push(Finding::Outcome { expected, recorded }),
        }
        let expected_owners: Vec<String> = (0..device.gpus())
            .map(|gpu| after.owner(device, names, gpu))
            .collect();
        let recorded_owners = entry.owners.as_ref().map(|owners| {
            owners
                .iter()
                .map(|o| o.map_or_else(|| "?".to_string(), |o| o.render(names)))
                .collect::<Vec<_>>()
        });
        if let Some(recorded) = &recorded_owners {
            for (gpu, (e, r)) in expected_owners.iter().zip(recorded).enumerate() {
                if r != "?" && e != r {
                    findings.push(Finding::Owner {
                        gpu: gpu as u8,
                        expected: e.clone(),
                        recorded: r.clone(),
                    });
                }
            }
        }
        findings.extend(violations.iter().map(Finding::Invariant));
        if !findings.is_empty() {
            divergence = Some(Divergence {
                line: entry.line,
                text: entry.text.clone(),
                time: entry.time.clone(),
                findings,
                before: before.render(device, names),
                expected_outcome: outcome,
                expected_owners,
                violations,
                recorded_outcome: entry.outcome,
                recorded_owners,
            });
            break;
        }
        state = after;
        checked += 1;
    }
    AuditReport {
        file: history.file.clone(),
        allocator: allocator.name().to_string(),
        device: history.device_text(),
        checked,
        divergence,
        state,
        state_text: state.render(device, names),
    }
}

/// The model actions of one line: the state after them, the line's
/// outcome and every invariant they fired.
fn run_entry<A: Allocator + ?Sized>(
    allocator: &A,
    device: &Device,
    names: &VmNames,
    before: &State,
    step: &StepSpec,
) -> (State, Outcome, InvariantSet) {
    let Some(action) = first_action(step, names) else {
        // The parser refuses a VM the device does not name.
        return (*before, Outcome::Rejected, InvariantSet::EMPTY);
    };
    let t = model::step(allocator, device, before, action);
    let (mut state, mut outcome, mut violations) = (t.state, t.outcome, t.violations);
    if step.kind == StepKind::Plain
        && action.phase == Phase::Begin
        && outcome == Outcome::Ok
        && model::in_flight(&state, step.op, action.vm)
    {
        let end = model::step(
            allocator,
            device,
            &state,
            model::Action::end(step.op, action.vm),
        );
        state = end.state;
        outcome = end.outcome;
        violations = violations.union(end.violations);
    }
    (state, outcome, violations)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{Fixed, Legacy};

    fn csv(text: &str) -> Result<History, AuditError> {
        parse_history(Path::new("h.csv"), text)
    }

    fn jsonl(text: &str) -> Result<History, AuditError> {
        parse_history(Path::new("h.jsonl"), text)
    }

    fn err(r: Result<History, AuditError>) -> String {
        r.expect_err("refused").to_string()
    }

    #[test]
    fn csv_lines_count_comments_blanks_and_the_header() {
        let h = csv("# device: gpus=2 vms=a:1,b:1\n\n# a note\ntime,step,outcome,gpus\n\n1,create-vm a,ok,a free\n# later\n2,  begin create-vm b , ok ,\n")
            .unwrap();
        let lines: Vec<usize> = h.entries.iter().map(|e| e.line).collect();
        assert_eq!(lines, [6, 8]);
        assert_eq!(h.entries[1].text, "2,  begin create-vm b , ok ,");
        assert_eq!(h.entries[1].step.to_string(), "begin create-vm b");
        assert_eq!(h.entries[1].owners, None);
        assert_eq!(h.device_text(), "gpus=2 vms=a:1,b:1");
    }

    #[test]
    fn crlf_a_byte_order_mark_and_a_quoted_newline_keep_line_numbers() {
        let text = "\u{feff}# device: gpus=1 vms=a\r\ntime,step,outcome,note\r\n0,create-vm a,ok,\"two\r\nlines\"\r\n\r\n# done\r\n1,stop-vm a,ok,\r\n";
        let h = csv(text).unwrap();
        let lines: Vec<usize> = h.entries.iter().map(|e| e.line).collect();
        assert_eq!(lines, [3, 7]);
        assert_eq!(h.entries[0].text, "0,create-vm a,ok,\"two\\r\\nlines\"");
        assert_eq!(h.entries[1].text, "1,stop-vm a,ok,");
        assert!(audit(&h, &Fixed).conforms());
    }

    #[test]
    fn columns_and_step_syntax_read_the_same() {
        let a = csv("# device: gpus=2 vms=a\ntime,op,vm,phase,options,outcome\n0,stop-vm,a,begin,provisioned,rejected\n1,kube-takeover,,event,,rejected\n")
            .unwrap();
        let b = csv("# device: gpus=2 vms=a\ntime,step,outcome\n0,begin stop-vm a provisioned,rejected\n1,kube-takeover,rejected\n")
            .unwrap();
        let steps = |h: &History| h.entries.iter().map(|e| e.step.clone()).collect::<Vec<_>>();
        assert_eq!(steps(&a), steps(&b));
        assert!(audit(&a, &Fixed).conforms());
    }

    #[test]
    fn owners_compare_as_sets() {
        let device = Device::new(2, &[1, 1]).unwrap();
        let names = VmNames::letters(2);
        let parse = |words: &[&str]| {
            let parts: Vec<String> = words.iter().map(|w| w.to_string()).collect();
            parse_owners(&parts, &device, &names)
        };
        let one = parse(&["free+b+kube ?"]).unwrap().unwrap();
        assert_eq!(one, parse(&["kube+free+b", "?"]).unwrap().unwrap());
        assert_eq!(one[0].unwrap().render(&names), "b+kube+free");
        assert_eq!(one[1], None);
        assert_eq!(parse(&[""]), Ok(None));
        assert_eq!(parse(&[]), Ok(None));
        let mut state = device.initial();
        state.vms[1].held = 1;
        state.kube_held = 1;
        assert_eq!(Owners::of(&state, &device, 0), one[0].unwrap());
        assert_eq!(
            one[0].unwrap().render(&names),
            state.owner(&device, &names, 0)
        );
    }

    #[test]
    fn timestamps_order_by_instant() {
        assert!(
            parse_timestamp("2021-03-01T10:00:00+01:00") == parse_timestamp("2021-03-01T09:00:00Z")
        );
        assert_eq!(parse_timestamp("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_timestamp("1970-01-02 00:00"),
            Some(86_400_000_000_000)
        );
        assert_eq!(
            parse_timestamp("1970-01-01T00:00:01.5Z"),
            Some(1_500_000_000)
        );
        assert_eq!(parse_timestamp("2021-02-29T00:00:00Z"), None);
        assert_eq!(parse_timestamp("2021-03-01T09:00:00Zjunk"), None);
        assert_eq!(parse_time("12.5"), Some(Moment::Number(12.5)));
        assert_eq!(parse_time("NaN"), None);
    }

    #[test]
    fn malformed_lines_are_refused_with_their_line() {
        let head = "# device: gpus=2 vms=a:1,b:1\ntime,step,outcome,gpus\n";
        let cases = [
            (
                "1,frob-vm a,ok,",
                "h.csv:3: unknown operation `frob-vm`; expected one of create-vm, start-vm, stop-vm, remove-vm, configure-kube or kube-takeover",
            ),
            (
                "1,create-vm a,done,",
                "h.csv:3: unknown outcome `done`; expected ok, no-gpu or rejected",
            ),
            (
                "1,create-vm a,ok,a",
                "h.csv:3: gpus lists 1 owner (`a`) but the device has 2 GPUs; expected one owner per GPU, in GPU order",
            ),
            (
                "1,create-vm c,ok,",
                "h.csv:3: unknown VM `c`; the device line names a, b",
            ),
            (
                "1,create-vm a,ok,a+a free",
                "h.csv:3: gpus: owner `a` is listed twice in `a+a` (gpu0); name each owner of a GPU once",
            ),
            (
                "1,create-vm a,ok,none+a free",
                "h.csv:3: gpus: `none+a` (gpu0): `none` means the GPU is in no set, so it stands alone",
            ),
            (
                "1,create-vm a,ok,c free",
                "h.csv:3: gpus: unknown owner `c` of gpu0; expected free, kube, none, ? (not recorded) or a VM (a, b), joined by `+` when several",
            ),
            (
                "1,create-vm a gpus=3,ok,",
                "h.csv:3: `create-vm a gpus=3`: gpus=3 but the device has 2 GPUs",
            ),
            (
                "soon,create-vm a,ok,",
                "h.csv:3: time `soon`: expected a number or a timestamp such as 2021-03-01T09:00:00Z",
            ),
            (
                ",create-vm a,ok,",
                "h.csv:3: no time; expected a number or a timestamp such as 2021-03-01T09:00:00Z",
            ),
            (
                "1,create-vm a,,",
                "h.csv:3: no outcome; expected ok, no-gpu or rejected",
            ),
            (
                "1,create-vm a,ok,a free,x",
                "h.csv:3: 5 fields, but the header names 4 columns (time, step, outcome, gpus)",
            ),
            (
                "5,create-vm a,ok,\n4,create-vm b,ok,",
                "h.csv:4: time `4` is before `5` on line 3; times must not go backwards",
            ),
            (
                "5,create-vm a,ok,\n2021-03-01T09:00:00Z,create-vm b,ok,",
                "h.csv:4: time `2021-03-01T09:00:00Z` is not of the kind of `5` on line 3; a history's times are all numbers or all timestamps",
            ),
        ];
        for (body, want) in cases {
            assert_eq!(err(csv(&format!("{head}{body}\n"))), want, "{body}");
        }
    }

    #[test]
    fn headers_and_device_lines_are_checked() {
        let cases = [
            (
                "time,step,outcome\n1,create-vm a,ok\n",
                "h.csv:1: no device line; a history starts with a comment line such as `# device: gpus=2 vms=a:1,b:1`",
            ),
            (
                "# device: gpus=2\n",
                "h.csv: no steps: the history has a device line but no step lines",
            ),
            (
                "# device: gpus=9\n",
                "h.csv:1: device line: gpus=9: expected 1 to 8 GPUs",
            ),
            (
                "# device: gpus=1 vms=a:2\n",
                "h.csv:1: device line: VM `a` needs 2 GPUs but the device has 1 GPU",
            ),
            (
                "# device: gpus=1 vms=a,a\n",
                "h.csv:1: device line: VM `a` is listed twice",
            ),
            (
                "# device: gpus=1 colour=red\n",
                "h.csv:1: device line: unknown key `colour`; expected `# device: gpus=G vms=NAME:SIZE,...`",
            ),
            (
                "# device: gpus=1\n# device: gpus=2\n",
                "h.csv:2: a second device line (the first is on line 1); a history names its device once",
            ),
            (
                "# device: gpus=1\ntime,step,outcome,owner\n",
                "h.csv:2: unknown column `owner` in the header; expected time, step (or op, vm, phase, options), outcome, gpus, note",
            ),
            (
                "# device: gpus=1\ntime,step,op,outcome\n",
                "h.csv:2: both `step` and `op` are given; give the step in one `step` column or as op, vm, phase, options",
            ),
            (
                "# device: gpus=1\ntime,step\n",
                "h.csv:2: the header has no `outcome` column; expected time, step (or op, vm, phase, options), outcome, gpus, note",
            ),
        ];
        for (text, want) in cases {
            assert_eq!(err(csv(text)), want, "{text}");
        }
        assert_eq!(
            err(parse_history(Path::new("h.txt"), "")),
            "h.txt: cannot tell the format from the file's extension; name it .csv or .jsonl, or give --format csv or --format jsonl"
        );
    }

    #[test]
    fn json_lines_are_checked() {
        let head = "# device: gpus=2 vms=a:1,b:1\n";
        let cases = [
            (
                "{\"time\": 1, \"step\": \"create-vm a\", \"outcome\": \"ok\"",
                "h.jsonl:2:50: not valid JSON: EOF while parsing an object; each line is one JSON object",
            ),
            ("[1]", "h.jsonl:2: expected a JSON object, found an array"),
            (
                "{\"time\": 1, \"step\": \"create-vm a\", \"outcome\": \"ok\", \"who\": 1}",
                "h.jsonl:2: unknown field `who`; expected time, step (or op, vm, phase, options), outcome, gpus, note",
            ),
            (
                "{\"time\": true, \"step\": \"create-vm a\", \"outcome\": \"ok\"}",
                "h.jsonl:2: `time` must be a number or a string, found a boolean",
            ),
            (
                "{\"time\": 1, \"op\": \"configure-kube\", \"vm\": \"a\", \"outcome\": \"ok\"}",
                "h.jsonl:2: `configure-kube` names no VM, found vm `a`",
            ),
            (
                "{\"time\": 1, \"op\": \"create-vm\", \"vm\": \"a\", \"phase\": \"event\", \"outcome\": \"ok\"}",
                "h.jsonl:2: phase `event` is for kube-takeover; `create-vm` is a request: begin, end, or no phase for both",
            ),
            (
                "{\"time\": 1, \"step\": \"create-vm a\", \"outcome\": \"ok\", \"gpus\": [\"a\"]}",
                "h.jsonl:2: gpus lists 1 owner (`a`) but the device has 2 GPUs; expected one owner per GPU, in GPU order",
            ),
        ];
        for (body, want) in cases {
            assert_eq!(err(jsonl(&format!("{head}{body}\n"))), want, "{body}");
        }
        assert_eq!(
            err(jsonl(
                "{\"time\": 1, \"step\": \"configure-kube\", \"outcome\": \"ok\"}\n"
            )),
            "h.jsonl:1: no device line; a history starts with a comment line such as `# device: gpus=2 vms=a:1,b:1`"
        );
        assert_eq!(
            err(jsonl(
                "# device: gpus=1\n{\"time\": 1, \"step\": \"configure-kube\", \"outcome\": \"ok\"}\n# device: gpus=1\n"
            )),
            "h.jsonl:3: a second device line (the first is on line 1); a history names its device once"
        );
    }

    #[test]
    fn the_first_divergence_is_reported_with_every_finding() {
        let text = "# device: gpus=1 vms=a\ntime,step,outcome,gpus\n0,create-vm a,ok,a\n1,configure-kube,ok,a\n2,stop-vm a,ok,free\n3,kube-takeover,ok,kube\n4,start-vm a,no-gpu,kube\n";
        let h = csv(text).unwrap();
        let fixed = audit(&h, &Fixed);
        let d = fixed.divergence.as_ref().expect("diverges");
        assert_eq!((d.line, fixed.checked), (6, 3));
        assert_eq!(
            d.findings,
            [
                Finding::NotAllowed {
                    recorded: Outcome::Ok
                },
                Finding::Owner {
                    gpu: 0,
                    expected: "free".into(),
                    recorded: "kube".into()
                }
            ]
        );
        assert_eq!(d.before, "gpu0=free | a:stopped | kube:configured");
        let legacy = audit(&h, &Legacy);
        let d = legacy.divergence.as_ref().expect("diverges");
        assert_eq!(d.line, 6);
        assert_eq!(
            d.findings,
            [Finding::Invariant(Invariant::NoStealAfterDealloc)]
        );
        assert_eq!(
            legacy.render(),
            "audit h.csv under legacy: device gpus=1 vms=a:1\n\
             DIVERGES at h.csv:6 (time 3), after 3 lines that conformed\n\
             \x20 line:     3,kube-takeover,ok,kube\n\
             \x20 before:   gpu0=free | a:stopped | kube:configured\n\
             \x20 expected: ok; gpus kube; fires no-steal-after-dealloc\n\
             \x20 recorded: ok; gpus kube\n\
             \x20 - invariant no-steal-after-dealloc fires\n"
        );
    }

    #[test]
    fn a_rejected_request_and_unrecorded_owners_conform() {
        let text = "# device: gpus=2 vms=a\ntime,step,outcome,gpus\n0,begin create-vm a,ok,a free\n1,start-vm a,rejected,? free\n2,end create-vm a,ok,\n3,start-vm a,rejected,a free\n";
        let report = audit(&csv(text).unwrap(), &Fixed);
        assert!(report.conforms());
        assert_eq!(report.checked, 4);
        assert_eq!(
            report.state_text,
            "gpu0=a gpu1=free | a:running | kube:unconfigured"
        );
        let wrong = text.replace("3,start-vm a,rejected", "3,start-vm a,ok");
        let d = audit(&csv(&wrong).unwrap(), &Fixed).divergence.unwrap();
        assert_eq!(d.line, 6);
        assert_eq!(
            d.findings,
            [Finding::NotAllowed {
                recorded: Outcome::Ok
            }]
        );
        let wrong = text.replace("1,start-vm a,rejected", "1,remove-vm a,ok");
        let d = audit(&csv(&wrong).unwrap(), &Fixed).divergence.unwrap();
        assert_eq!(d.line, 4);
        let wrong = text.replace("0,begin create-vm a,ok", "0,begin create-vm a,rejected");
        let d = audit(&csv(&wrong).unwrap(), &Fixed).divergence.unwrap();
        assert_eq!(
            (d.line, d.findings[0].clone()),
            (
                3,
                Finding::NotRejected {
                    expected: Outcome::Ok
                }
            )
        );
    }
}
