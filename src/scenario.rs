//! Scenario files (`shared/SCENARIOS.md`): reading them with errors that
//! name the file, line and column; running them under each policy and
//! comparing every expectation; writing them back as TOML.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::{Range, RangeInclusive};
use std::path::{Path, PathBuf};

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::invariant::{Invariant, InvariantSet, Violation};
use crate::model::{Device, KubeState, MAX_GPUS, MAX_VMS, Outcome, State, VmNames, VmState};
use crate::policy::{Allocator, Registry};
use crate::report::count;
use crate::trace::{self, Executed, StepSpec, printable, valid_vm_name};

/// The policies a scenario runs under when it names none.
pub const DEFAULT_POLICIES: [&str; 2] = ["fixed", "legacy"];

/// What must hold after the last step. Every key is optional.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Expect {
    pub outcomes: Option<Vec<Outcome>>,
    pub kube: Option<KubeState>,
    /// `device = "idle" | "updating"` (version 2): whether an update is in
    /// flight.
    pub updating: Option<bool>,
    pub kube_gpus: Option<u8>,
    /// Owner of each GPU: `free`, `kube`, a VM name, or several joined by `+`.
    pub gpus: Option<Vec<String>>,
    /// VM name to state name (`stopping` matches either kind of stop).
    pub vm: BTreeMap<String, VmState>,
    pub violations: Option<Vec<Invariant>>,
}

impl Expect {
    /// `self` with the keys of `over` replacing its own.
    pub fn overridden_by(&self, over: &Expect) -> Expect {
        let mut vm = self.vm.clone();
        vm.extend(over.vm.iter().map(|(k, v)| (k.clone(), *v)));
        Expect {
            outcomes: over.outcomes.clone().or_else(|| self.outcomes.clone()),
            kube: over.kube.or(self.kube),
            updating: over.updating.or(self.updating),
            kube_gpus: over.kube_gpus.or(self.kube_gpus),
            gpus: over.gpus.clone().or_else(|| self.gpus.clone()),
            vm,
            violations: over.violations.clone().or_else(|| self.violations.clone()),
        }
    }
}

/// One scenario file, read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scenario {
    pub name: String,
    pub source: Option<String>,
    pub gpus: u8,
    /// As written; `None` means [`DEFAULT_POLICIES`].
    pub policies: Option<Vec<String>>,
    pub steps: Vec<StepSpec>,
    /// The `[vms]` table: VM name to size.
    pub vms: BTreeMap<String, u8>,
    /// The `[expect]` table without its policy overrides.
    pub expect: Option<Expect>,
    /// `[expect.POLICY]` tables.
    pub expect_for: BTreeMap<String, Expect>,
}

/// A refused scenario file: where, and what was expected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ScenarioError {
    pub file: PathBuf,
    /// 1-based line and column, where known.
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub message: String,
}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(col) = self.column {
                write!(f, ":{col}")?;
            }
        }
        write!(f, ": {}", self.message)
    }
}

/// Reading context: the file's name and text, to turn spans into lines.
struct Reader<'s> {
    file: &'s Path,
    text: &'s str,
}

impl Reader<'_> {
    /// The error at `span`. Messages quote the file's keys and values, which
    /// TOML escapes may fill with control characters: they are escaped here,
    /// once for every message.
    fn error(&self, span: Option<Range<usize>>, message: impl Into<String>) -> ScenarioError {
        let (line, column) = match span {
            Some(span) => {
                let (line, column) = line_column(self.text, span.start);
                (Some(line), Some(column))
            }
            None => (None, None),
        };
        ScenarioError {
            file: self.file.to_path_buf(),
            line,
            column,
            message: printable(&message.into()).into_owned(),
        }
    }
}

type Val<'i> = Spanned<DeValue<'i>>;

fn type_name(v: &DeValue<'_>) -> &'static str {
    v.type_str()
}

impl Reader<'_> {
    fn string<'v>(&self, key: &str, v: &'v Val<'_>) -> Result<&'v str, ScenarioError> {
        v.get_ref().as_str().ok_or_else(|| {
            self.error(
                Some(v.span()),
                format!("`{key}` must be a string, found {}", type_name(v.get_ref())),
            )
        })
    }

    /// An integer in `range`; anything else is refused at the value, with
    /// `what` saying what was expected.
    fn integer(
        &self,
        key: &str,
        v: &Val<'_>,
        range: RangeInclusive<u8>,
        what: &str,
    ) -> Result<u8, ScenarioError> {
        let bad = || self.error(Some(v.span()), format!("`{key}` must be {what}"));
        let i = v.get_ref().as_integer().ok_or_else(bad)?;
        let n = i64::from_str_radix(&i.as_str().replace('_', ""), i.radix()).map_err(|_| bad())?;
        u8::try_from(n)
            .ok()
            .filter(|n| range.contains(n))
            .ok_or_else(bad)
    }

    fn array<'v, 'i>(&self, key: &str, v: &'v Val<'i>) -> Result<Vec<&'v Val<'i>>, ScenarioError> {
        match v.get_ref() {
            DeValue::Array(a) => Ok(a.iter().collect()),
            other => Err(self.error(
                Some(v.span()),
                format!("`{key}` must be an array, found {}", type_name(other)),
            )),
        }
    }

    fn table<'v, 'i>(&self, key: &str, v: &'v Val<'i>) -> Result<&'v DeTable<'i>, ScenarioError> {
        match v.get_ref() {
            DeValue::Table(t) => Ok(t),
            other => Err(self.error(
                Some(v.span()),
                format!("`{key}` must be a table, found {}", type_name(other)),
            )),
        }
    }

    fn string_list(&self, key: &str, v: &Val<'_>) -> Result<Vec<Spanned<String>>, ScenarioError> {
        self.array(key, v)?
            .into_iter()
            .map(|item| {
                Ok(Spanned::new(
                    item.span(),
                    self.string(key, item)?.to_string(),
                ))
            })
            .collect()
    }
}

const TOP_KEYS: &str = "name, source, gpus, policies, steps, vms, expect";
const EXPECT_KEYS: &str =
    "outcomes, kube, device, kube-gpus, gpus, vm, violations, or a policy name";

/// Reads a scenario file from disk.
/// The line and column (both from 1; the column in characters) of byte
/// `offset` of `text`, as the files gpuclaim reads report their errors.
pub(crate) fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let at = offset.min(text.len());
    let before = &text[..text.floor_char_boundary(at)];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

pub fn load(path: &Path, registry: &Registry) -> Result<Scenario, ScenarioError> {
    use crate::report::{input_limits::SCENARIO_BYTES, read_input};
    // Only a regular file, of at most SCENARIO_BYTES: a FIFO or /dev/zero
    // would make the read wait or grow without end.
    let bytes = read_input(path, SCENARIO_BYTES, "a scenario file").map_err(|e| ScenarioError {
        file: path.to_path_buf(),
        line: None,
        column: None,
        message: match e.io_error() {
            Some(io) => format!("cannot read the file: {io}"),
            None => e.reason(),
        },
    })?;
    parse_bytes(path, &bytes, registry)
}

/// Reads a scenario file's bytes, as [`load`] does after reading the file:
/// text that is not UTF-8 is refused at its first invalid byte, then the
/// text goes to [`parse`]. `file` is only used in error messages.
pub fn parse_bytes(
    file: &Path,
    bytes: &[u8],
    registry: &Registry,
) -> Result<Scenario, ScenarioError> {
    match crate::report::utf8(bytes) {
        Ok(text) => parse(file, text, registry),
        Err(bad) => {
            let (at, what) = (bad.offset, bad.what);
            let r = Reader {
                file,
                text: bad.valid,
            };
            Err(r.error(
                Some(at..at),
                format!(
                    "not valid UTF-8: {what} (byte offset {at}); a scenario file is UTF-8 text"
                ),
            ))
        }
    }
}

/// Reads scenario text; `file` is only used in error messages. Nothing is
/// run: the result has been checked against the registry's policy names,
/// the device's size and the step syntax.
pub fn parse(file: &Path, text: &str, registry: &Registry) -> Result<Scenario, ScenarioError> {
    let r = Reader { file, text };
    let doc = DeTable::parse(text)
        .map_err(|e| r.error(e.span(), format!("not valid TOML: {}", e.message().trim())))?;
    let doc = doc.get_ref();

    let mut name = None;
    let mut source = None;
    let mut gpus = None;
    let mut policies: Option<(Vec<Spanned<String>>, Range<usize>)> = None;
    let mut steps_raw = None;
    let mut vms_raw = None;
    let mut expect_raw = None;
    for (key, value) in doc.iter() {
        let k: &str = key.get_ref();
        match k {
            "name" => {
                let n = r.string(k, value)?;
                if n.contains('\n') {
                    return Err(r.error(Some(value.span()), "`name` must be one line"));
                }
                if n.trim().is_empty() {
                    return Err(r.error(
                        Some(value.span()),
                        "`name` must not be empty (it is shown in reports)",
                    ));
                }
                name = Some(n.to_string());
            }
            "source" => source = Some(r.string(k, value)?.to_string()),
            "gpus" => {
                gpus = Some(r.integer(
                    k,
                    value,
                    1..=MAX_GPUS,
                    &format!("an integer from 1 to {MAX_GPUS}"),
                )?)
            }
            "policies" => policies = Some((r.string_list(k, value)?, value.span())),
            "steps" => steps_raw = Some((r.string_list(k, value)?, value.span())),
            "vms" => vms_raw = Some(r.table(k, value)?),
            "expect" => expect_raw = Some(r.table(k, value)?),
            other => {
                return Err(r.error(
                    Some(key.span()),
                    format!("unknown key `{other}`; expected one of {TOP_KEYS}"),
                ));
            }
        }
    }
    // A missing key has no place in the file: the error names the file
    // alone, not line 1.
    let missing = |what: &str| r.error(None, format!("missing top-level key {what}"));
    let name = name.ok_or_else(|| missing("`name` (one line, shown in reports)"))?;
    let gpus = gpus.ok_or_else(|| missing(&format!("`gpus` (1 to {MAX_GPUS})")))?;
    let (steps_raw, steps_span) =
        steps_raw.ok_or_else(|| missing("`steps` (a list of step strings)"))?;

    if let Some((list, span)) = &policies {
        // An empty list would run nothing and report success; leaving the
        // key out is how a file asks for the defaults.
        if list.is_empty() {
            return Err(r.error(
                Some(span.clone()),
                format!(
                    "`policies` is empty; list at least one policy ({}), or leave the key out to run under {}",
                    registry.names().join(", "),
                    DEFAULT_POLICIES.join(" and ")
                ),
            ));
        }
        for (i, p) in list.iter().enumerate() {
            if let Some(first) = list[..i].iter().position(|q| q.get_ref() == p.get_ref()) {
                return Err(r.error(
                    Some(p.span()),
                    format!(
                        "policy `{}` is listed twice in `policies` (items {} and {}); a scenario runs once under each policy",
                        p.get_ref(),
                        first + 1,
                        i + 1
                    ),
                ));
            }
            if !registry.contains(p.get_ref()) {
                return Err(r.error(
                    Some(p.span()),
                    format!(
                        "unknown policy `{}`; expected one of {}",
                        p.get_ref(),
                        registry.names().join(", ")
                    ),
                ));
            }
        }
    }

    let mut steps = Vec::with_capacity(steps_raw.len());
    for (i, raw) in steps_raw.iter().enumerate() {
        let spec = StepSpec::parse(raw.get_ref())
            .map_err(|e| r.error(Some(raw.span()), format!("step {}: {e}", i + 1)))?;
        if let crate::model::StepOption::Gpus(n) = spec.option
            && n > gpus
        {
            return Err(r.error(
                Some(raw.span()),
                format!(
                    "step {}: gpus={n} but the device has {}",
                    i + 1,
                    count(u64::from(gpus), "GPU", "GPUs")
                ),
            ));
        }
        steps.push(spec);
    }

    let mut vms = BTreeMap::new();
    if let Some(table) = vms_raw {
        for (key, value) in table.iter() {
            let vm: &str = key.get_ref();
            if !valid_vm_name(vm) {
                return Err(r.error(
                    Some(key.span()),
                    format!("malformed VM name `{vm}` in [vms]; expected a letter followed by letters, digits, `-` or `_`"),
                ));
            }
            let size = r.integer(
                &format!("vms.{vm}"),
                value,
                0..=gpus,
                &format!("a size from 0 to {gpus} (the device's GPUs)"),
            )?;
            vms.insert(vm.to_string(), size);
        }
    }

    let runs_under: Vec<&str> = match &policies {
        Some((list, _)) => list.iter().map(|p| p.get_ref().as_str()).collect(),
        None => DEFAULT_POLICIES.to_vec(),
    };
    let mut expect = None;
    let mut expect_for = BTreeMap::new();
    let mut spans = BTreeMap::new();
    if let Some(table) = expect_raw {
        let mut base = Expect::default();
        let mut base_spans = ExpectSpans::default();
        for (key, value) in table.iter() {
            let k: &str = key.get_ref();
            if read_expect_key(&r, &mut base, &mut base_spans, k, value)? {
                continue;
            }
            if !registry.contains(k) {
                return Err(r.error(
                    Some(key.span()),
                    format!("unknown key `{k}` in [expect]; expected one of {EXPECT_KEYS}"),
                ));
            }
            // Overrides for a policy the file does not run would never be
            // compared: most likely a policy left out of `policies` by mistake.
            if !runs_under.contains(&k) {
                return Err(r.error(
                    Some(key.span()),
                    format!(
                        "[expect.{k}] overrides the expectations for policy `{k}`, which this scenario does not run (its policies are {}); add `{k}` to `policies` or remove the section",
                        runs_under.join(", ")
                    ),
                ));
            }
            let over_table = r.table(&format!("expect.{k}"), value)?;
            let mut over = Expect::default();
            let mut over_spans = ExpectSpans::default();
            for (okey, ovalue) in over_table.iter() {
                let ok: &str = okey.get_ref();
                if !read_expect_key(&r, &mut over, &mut over_spans, ok, ovalue)? {
                    return Err(r.error(
                        Some(okey.span()),
                        format!("unknown key `{ok}` in [expect.{k}]; expected one of outcomes, kube, device, kube-gpus, gpus, vm, violations"),
                    ));
                }
            }
            expect_for.insert(k.to_string(), over);
            spans.insert(format!("expect.{k}"), over_spans);
        }
        expect = Some(base);
        spans.insert("expect".to_string(), base_spans);
    }

    let scenario = Scenario {
        name,
        source,
        gpus,
        policies: policies.map(|(l, _)| l.into_iter().map(Spanned::into_inner).collect()),
        steps,
        vms,
        expect,
        expect_for,
    };
    check_consistency(&r, &scenario, &spans, steps_span)?;
    Ok(scenario)
}

/// Where the values of one expectation table are in the file, for the
/// checks that need the whole file before they can refuse a value.
/// [`Expect`] itself carries no spans: it is compared and written back.
#[derive(Default)]
struct ExpectSpans {
    outcomes: Option<Range<usize>>,
    kube_gpus: Option<Range<usize>>,
    gpus: Option<Range<usize>>,
    /// One span for each owner of `gpus`.
    owners: Vec<Range<usize>>,
}

/// Reads one expectation key into `e`, and where its value is into `spans`;
/// false when `key` is not one.
fn read_expect_key(
    r: &Reader<'_>,
    e: &mut Expect,
    spans: &mut ExpectSpans,
    key: &str,
    value: &Val<'_>,
) -> Result<bool, ScenarioError> {
    match key {
        "outcomes" => {
            spans.outcomes = Some(value.span());
            let mut out = Vec::new();
            for item in r.string_list(key, value)? {
                out.push(Outcome::from_name(item.get_ref()).ok_or_else(|| {
                    r.error(
                        Some(item.span()),
                        format!(
                            "unknown outcome `{}`; expected ok, no-gpu or rejected",
                            item.get_ref()
                        ),
                    )
                })?);
            }
            e.outcomes = Some(out);
        }
        "kube" => {
            let s = r.string(key, value)?;
            e.kube = Some(KubeState::ALL.into_iter().find(|k| k.name() == s).ok_or_else(|| {
                r.error(Some(value.span()), format!("unknown Kubernetes state `{s}`; expected unconfigured, configuring, configured or rebooting"))
            })?);
        }
        "device" => {
            let s = r.string(key, value)?;
            e.updating = Some(match s {
                "idle" => false,
                "updating" => true,
                _ => {
                    return Err(r.error(
                        Some(value.span()),
                        format!("unknown device state `{s}`; expected idle or updating"),
                    ));
                }
            });
        }
        "kube-gpus" => {
            spans.kube_gpus = Some(value.span());
            e.kube_gpus = Some(r.integer(
                key,
                value,
                0..=MAX_GPUS,
                &format!("an integer from 0 to {MAX_GPUS}"),
            )?)
        }
        "gpus" => {
            let owners = r.string_list(key, value)?;
            spans.gpus = Some(value.span());
            spans.owners = owners.iter().map(Spanned::span).collect();
            e.gpus = Some(owners.into_iter().map(Spanned::into_inner).collect());
        }
        "vm" => {
            for (vkey, vvalue) in r.table(key, value)?.iter() {
                let vm: &str = vkey.get_ref();
                if !valid_vm_name(vm) {
                    return Err(r.error(Some(vkey.span()), format!("malformed VM name `{vm}`; expected a letter followed by letters, digits, `-` or `_`")));
                }
                let s = r.string(&format!("vm.{vm}"), vvalue)?;
                let state = vm_state_from_name(s).ok_or_else(|| {
                    r.error(
                        Some(vvalue.span()),
                        format!(
                            "unknown VM state `{s}`; expected one of {}",
                            VmState::NAMES.join(", ")
                        ),
                    )
                })?;
                e.vm.insert(vm.to_string(), state);
            }
        }
        "violations" => {
            let mut out = Vec::new();
            for item in r.string_list(key, value)? {
                out.push(Invariant::from_name(item.get_ref()).ok_or_else(|| {
                    let names: Vec<&str> = Invariant::ALL.iter().map(|i| i.name()).collect();
                    r.error(
                        Some(item.span()),
                        format!(
                            "unknown invariant `{}`; expected one of {}",
                            item.get_ref(),
                            names.join(", ")
                        ),
                    )
                })?);
            }
            e.violations = Some(out);
        }
        _ => return Ok(false),
    }
    Ok(true)
}

/// The state a name stands for in an expectation (`stopping` stands for a
/// deallocating stop; comparisons match either kind by name).
fn vm_state_from_name(name: &str) -> Option<VmState> {
    VmState::ALL.into_iter().find(|s| s.name() == name)
}

/// Checks what needs the whole file: outcome counts, VM counts, GPU owner
/// lists. An expectation is refused at its value (`spans`, by table name).
fn check_consistency(
    r: &Reader<'_>,
    s: &Scenario,
    spans: &BTreeMap<String, ExpectSpans>,
    steps_span: Range<usize>,
) -> Result<(), ScenarioError> {
    let names = s.vm_names();
    if names.len() > MAX_VMS {
        return Err(r.error(
            Some(steps_span),
            format!("{} VMs named; a device has at most {MAX_VMS}", names.len()),
        ));
    }
    let all = std::iter::once(("expect".to_string(), s.expect.as_ref())).chain(
        s.expect_for
            .iter()
            .map(|(p, e)| (format!("expect.{p}"), Some(e))),
    );
    let device_gpus = count(u64::from(s.gpus), "GPU", "GPUs");
    for (table, e) in all {
        let Some(e) = e else { continue };
        let at = spans.get(&table);
        if let Some(o) = &e.outcomes
            && o.len() != s.steps.len()
        {
            return Err(r.error(
                at.and_then(|a| a.outcomes.clone()),
                format!(
                    "[{table}] lists {} but there {} {}; expected one outcome per step",
                    count(o.len() as u64, "outcome", "outcomes"),
                    if s.steps.len() == 1 { "is" } else { "are" },
                    count(s.steps.len() as u64, "step", "steps")
                ),
            ));
        }
        if let Some(g) = &e.gpus {
            if g.len() != usize::from(s.gpus) {
                return Err(r.error(
                    at.and_then(|a| a.gpus.clone()),
                    format!(
                        "[{table}] gpus lists {} but the device has {device_gpus}; expected one owner per GPU",
                        count(g.len() as u64, "owner", "owners")
                    ),
                ));
            }
            for (i, owner) in g.iter().enumerate() {
                let parts: Vec<&str> = owner.split('+').collect();
                for (j, &part) in parts.iter().enumerate() {
                    let place = || at.and_then(|a| a.owners.get(i).cloned());
                    if !matches!(part, "free" | "kube" | "none") && names.slot(part).is_none() {
                        return Err(r.error(
                            place(),
                            format!("[{table}] gpus: unknown owner `{part}`; expected free, kube, none or a VM of this scenario, joined by `+` when several"),
                        ));
                    }
                    if parts[..j].contains(&part) {
                        return Err(r.error(
                            place(),
                            format!("[{table}] gpus: owner `{part}` is listed twice in `{owner}`; name each owner of a GPU once"),
                        ));
                    }
                    if part == "none" && parts.len() > 1 {
                        return Err(r.error(
                            place(),
                            format!("[{table}] gpus: `{owner}`: `none` means the GPU is in no set, so it stands alone"),
                        ));
                    }
                }
            }
        }
        if let Some(k) = e.kube_gpus
            && k > s.gpus
        {
            return Err(r.error(
                at.and_then(|a| a.kube_gpus.clone()),
                format!("[{table}] kube-gpus = {k} but the device has {device_gpus}"),
            ));
        }
    }
    Ok(())
}

impl Scenario {
    /// The policies this scenario runs under.
    pub fn policy_names(&self) -> Vec<String> {
        match &self.policies {
            Some(p) => p.clone(),
            None => DEFAULT_POLICIES.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// Every VM the file names (in `[vms]`, the steps or `[expect]`), sorted:
    /// slot `i` is the `i`-th name.
    pub fn vm_names(&self) -> VmNames {
        let mut set: std::collections::BTreeSet<String> = self.vms.keys().cloned().collect();
        set.extend(self.steps.iter().filter_map(|s| s.vm.clone()));
        if let Some(e) = &self.expect {
            set.extend(e.vm.keys().cloned());
        }
        for e in self.expect_for.values() {
            set.extend(e.vm.keys().cloned());
        }
        VmNames::new(set.into_iter().collect())
    }

    /// The device: `gpus` GPUs, one slot per VM name, size from `[vms]` or 1.
    ///
    /// # Panics
    /// When the scenario was built by hand (its fields are public) with a
    /// device that [`Device::new`] refuses: no GPUs or more than
    /// [`MAX_GPUS`], a VM larger than the device, more than [`MAX_VMS`]
    /// VMs. [`parse`] refuses such files, so a parsed scenario
    /// never panics here; build `Device::new` first to check a hand-built
    /// one.
    pub fn device(&self) -> Device {
        let names = self.vm_names();
        let sizes: Vec<u8> = names
            .as_slice()
            .iter()
            .map(|n| self.vms.get(n).copied().unwrap_or(1))
            .collect();
        // parse() has checked the GPU count, the sizes and the VM count.
        Device::new(self.gpus, &sizes)
            .unwrap_or_else(|e| panic!("scenario checked at parse time: {e}"))
    }

    /// The expectations for one policy (`[expect]` with `[expect.POLICY]`
    /// over it), or `None` when the file has no `[expect]`.
    pub fn expect_for_policy(&self, policy: &str) -> Option<Expect> {
        let base = self.expect.as_ref()?;
        Some(match self.expect_for.get(policy) {
            Some(over) => base.overridden_by(over),
            None => base.clone(),
        })
    }

    /// Runs the scenario under one policy and compares the expectations.
    ///
    /// # Panics
    /// As [`Scenario::device`] does, on a hand-built scenario whose device
    /// the model refuses.
    pub fn run<P: Allocator + ?Sized>(&self, policy: &P) -> PolicyRun {
        let device = self.device();
        let names = self.vm_names();
        let (run, outcomes) = trace::run_steps(policy, &device, &names, &self.steps);
        let expect = self.expect_for_policy(policy.name());
        let mismatches = match &expect {
            Some(e) => compare(e, &device, &names, &run.state, &outcomes, run.fired),
            None => Vec::new(),
        };
        PolicyRun {
            policy: policy.name().to_string(),
            names,
            device,
            trace: run.trace,
            states: run.states,
            outcomes,
            state: run.state,
            violations: run.violations,
            fired: run.fired,
            mismatches,
        }
    }

    /// The scenario as TOML, in the layout of SCENARIOS.md; reading it back
    /// gives an equal [`Scenario`].
    pub fn to_toml(&self) -> String {
        let q = |s: &str| toml::Value::String(s.to_string()).to_string();
        let list = |items: &[String]| {
            let inner: Vec<String> = items.iter().map(|s| q(s)).collect();
            format!("[{}]", inner.join(", "))
        };
        let mut out = String::new();
        out.push_str(&format!("name = {}\n", q(&self.name)));
        if let Some(src) = &self.source {
            out.push_str(&format!("source = {}\n", q(src)));
        }
        out.push_str(&format!("gpus = {}\n", self.gpus));
        if let Some(p) = &self.policies {
            out.push_str(&format!("policies = {}\n", list(p)));
        }
        out.push_str("steps = [\n");
        for s in &self.steps {
            out.push_str(&format!("  {},\n", q(&s.to_string())));
        }
        out.push_str("]\n");
        if !self.vms.is_empty() {
            out.push_str("\n[vms]\n");
            for (vm, size) in &self.vms {
                out.push_str(&format!("{} = {size}\n", key(vm)));
            }
        }
        if let Some(e) = &self.expect {
            out.push_str("\n[expect]\n");
            write_expect(&mut out, e);
            for (policy, over) in &self.expect_for {
                out.push_str(&format!("\n[expect.{}]\n", key(policy)));
                write_expect(&mut out, over);
            }
        }
        out
    }
}

/// A TOML key: bare when it can be (VM names always can), quoted otherwise.
fn key(name: &str) -> String {
    let bare = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if bare {
        name.to_string()
    } else {
        toml::Value::String(name.to_string()).to_string()
    }
}

/// The device's state as scenario files name it.
fn device_name(updating: bool) -> &'static str {
    if updating { "updating" } else { "idle" }
}

fn write_expect(out: &mut String, e: &Expect) {
    let q = |s: &str| toml::Value::String(s.to_string()).to_string();
    let list = |items: Vec<&str>| {
        let inner: Vec<String> = items.iter().map(|s| q(s)).collect();
        format!("[{}]", inner.join(", "))
    };
    if let Some(o) = &e.outcomes {
        out.push_str(&format!(
            "outcomes = {}\n",
            list(o.iter().map(|o| o.name()).collect())
        ));
    }
    if let Some(k) = e.kube {
        out.push_str(&format!("kube = {}\n", q(k.name())));
    }
    if let Some(u) = e.updating {
        out.push_str(&format!("device = {}\n", q(device_name(u))));
    }
    if let Some(k) = e.kube_gpus {
        out.push_str(&format!("kube-gpus = {k}\n"));
    }
    if let Some(g) = &e.gpus {
        out.push_str(&format!(
            "gpus = {}\n",
            list(g.iter().map(String::as_str).collect())
        ));
    }
    for (vm, state) in &e.vm {
        out.push_str(&format!("vm.{} = {}\n", key(vm), q(state.name())));
    }
    if let Some(v) = &e.violations {
        out.push_str(&format!(
            "violations = {}\n",
            list(v.iter().map(|i| i.name()).collect())
        ));
    }
}

/// One expectation that did not hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mismatch {
    pub key: String,
    pub expected: String,
    pub actual: String,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: expected {}, got {}",
            self.key, self.expected, self.actual
        )
    }
}

/// A scenario run under one policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyRun {
    pub policy: String,
    pub names: VmNames,
    pub device: Device,
    /// Every model action with its outcome and violations.
    pub trace: Vec<Executed>,
    /// The state after each action of `trace`.
    pub states: Vec<State>,
    /// The outcome of each scenario step.
    pub outcomes: Vec<Outcome>,
    pub state: State,
    pub violations: Vec<Violation>,
    pub fired: InvariantSet,
    pub mismatches: Vec<Mismatch>,
}

impl PolicyRun {
    pub fn passed(&self) -> bool {
        self.mismatches.is_empty()
    }

    /// The trace, one action a line with outcome, violations and state after.
    pub fn render_trace(&self) -> String {
        render_trace(&self.device, &self.names, &self.trace, &self.states)
    }
}

/// A trace one action a line: index, step, outcome, the state after it and
/// the invariants it violated.
pub fn render_trace(
    device: &Device,
    names: &VmNames,
    trace: &[Executed],
    states: &[State],
) -> String {
    let mut out = String::new();
    for (i, (e, state)) in trace.iter().zip(states).enumerate() {
        let v = if e.violations.is_empty() {
            String::new()
        } else {
            format!("  VIOLATES {}", e.violations)
        };
        out.push_str(&format!(
            "  {i:>3}  {:<30} {:<8} {}{v}\n",
            e.action.render(names),
            e.outcome.name(),
            state.render(device, names)
        ));
    }
    out
}

fn compare(
    e: &Expect,
    device: &Device,
    names: &VmNames,
    state: &State,
    outcomes: &[Outcome],
    fired: InvariantSet,
) -> Vec<Mismatch> {
    let mut out = Vec::new();
    let mut check = |key: String, expected: String, actual: String, equal: bool| {
        if !equal {
            out.push(Mismatch {
                key,
                expected,
                actual,
            });
        }
    };
    let join = |v: Vec<&str>| format!("[{}]", v.join(", "));
    if let Some(o) = &e.outcomes {
        check(
            "outcomes".into(),
            join(o.iter().map(|o| o.name()).collect()),
            join(outcomes.iter().map(|o| o.name()).collect()),
            o.as_slice() == outcomes,
        );
    }
    if let Some(k) = e.kube {
        check(
            "kube".into(),
            k.name().into(),
            state.kube.name().into(),
            k == state.kube,
        );
    }
    if let Some(u) = e.updating {
        check(
            "device".into(),
            device_name(u).into(),
            device_name(state.updating).into(),
            u == state.updating,
        );
    }
    if let Some(k) = e.kube_gpus {
        let actual = state.kube_held.count_ones() as u8;
        check(
            "kube-gpus".into(),
            k.to_string(),
            actual.to_string(),
            k == actual,
        );
    }
    if let Some(g) = &e.gpus {
        let actual: Vec<String> = (0..device.gpus())
            .map(|i| state.owner(device, names, i))
            .collect();
        let same = g.len() == actual.len()
            && g.iter().zip(&actual).all(|(x, y)| {
                let mut a: Vec<&str> = x.split('+').collect();
                let mut b: Vec<&str> = y.split('+').collect();
                a.sort_unstable();
                b.sort_unstable();
                a == b
            });
        check(
            "gpus".into(),
            join(g.iter().map(String::as_str).collect()),
            join(actual.iter().map(String::as_str).collect()),
            same,
        );
    }
    for (vm, expected) in &e.vm {
        let slot = names.slot(vm).expect("every expected VM has a slot");
        let actual = state.vms[slot].life;
        check(
            format!("vm.{vm}"),
            expected.name().into(),
            actual.name().into(),
            expected.name() == actual.name(),
        );
    }
    if let Some(v) = &e.violations {
        let expected: InvariantSet = v.iter().copied().collect();
        let show = |s: InvariantSet| join(s.iter().map(Invariant::name).collect());
        check(
            "violations".into(),
            show(expected),
            show(fired),
            expected == fired,
        );
    }
    out
}

/// A path given or found: a scenario file to run, or a path that could not
/// be searched (missing, an unreadable folder), refused by name.
pub enum Found {
    File(PathBuf),
    Refused(ScenarioError),
}

impl Found {
    pub fn path(&self) -> &Path {
        match self {
            Found::File(p) => p,
            Found::Refused(e) => &e.file,
        }
    }
}

fn refused(path: &Path, message: String) -> Found {
    Found::Refused(ScenarioError {
        file: path.to_path_buf(),
        line: None,
        column: None,
        message,
    })
}

/// Every `.toml` file under `paths` (files as given, folders searched
/// recursively, sorted by path within each folder), and in their places
/// the paths that cannot be searched: one bad path does not hide the rest.
pub fn find_scenarios(paths: &[PathBuf]) -> Vec<Found> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut found = Vec::new();
            walk(p, &mut found, &mut std::collections::HashSet::new());
            found.sort_by(|a, b| a.path().cmp(b.path()));
            out.extend(found);
        } else if p.exists() {
            out.push(Found::File(p.clone()));
        } else {
            out.push(refused(p, "no such file or folder".into()));
        }
    }
    out
}

/// The `*.toml` files under `dir`, and its unreadable folders, into `out`.
/// A folder reached a second time (through a symbolic link, perhaps one
/// that loops back up) is not searched again.
fn walk(dir: &Path, out: &mut Vec<Found>, seen: &mut std::collections::HashSet<PathBuf>) {
    let cannot = |e: std::io::Error| refused(dir, format!("cannot read the folder: {e}"));
    match std::fs::canonicalize(dir) {
        Ok(real) => {
            if !seen.insert(real) {
                return;
            }
        }
        Err(e) => return out.push(cannot(e)),
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => return out.push(cannot(e)),
    };
    for entry in entries {
        let path = match entry {
            Ok(entry) => entry.path(),
            Err(e) => {
                out.push(cannot(e));
                continue;
            }
        };
        if path.is_dir() {
            walk(&path, out, seen);
        } else if path.extension().is_some_and(|e| e == "toml") {
            out.push(Found::File(path));
        }
    }
}

/// [`find_scenarios`] where any refused path is an error (naming it).
pub fn collect_files(paths: &[PathBuf]) -> std::io::Result<Vec<PathBuf>> {
    find_scenarios(paths)
        .into_iter()
        .map(|f| match f {
            Found::File(p) => Ok(p),
            Found::Refused(e) => Err(std::io::Error::other(e.to_string())),
        })
        .collect()
}
