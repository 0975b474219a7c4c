//! The fuzz targets as library functions. Each `cargo fuzz` target in
//! `fuzz/fuzz_targets/` is one line calling [`Target::run_or_panic`]; the
//! same [`Target::check`] replays the committed corpus and regressions from
//! `cargo test` on stable, and `gpuclaim from-fuzz` decodes an input with
//! the same decoder as its target ([`Target::format`]) before shrinking it.
//!
//! Two interleaving formats: version 1 ([`decode_interleaving`]), which the
//! first three targets and their committed inputs read and which never
//! changes, and version 2 ([`decode_interleaving_v2`]), which adds the
//! device update for the targets that came with it.
//!
//! Decoding uses [`arbitrary::Unstructured`] directly, with no derives on the
//! core types: the model's types stay free of fuzzing concerns, the library
//! needs no extra feature, and every byte string decodes (fuzz bytes are bad
//! input too) into a valid device and a list of step-syntax actions.

use std::borrow::Cow;
use std::fmt;
use std::path::Path;
use std::sync::OnceLock;

use arbitrary::Unstructured;

use crate::invariant::{Invariant, InvariantSet, Violation};
use crate::model::{self, Action, Device, MAX_GPUS, Op, Phase, StepOption, VmNames};
use crate::policy::{Allocator, Builtin, Registry};
use crate::scenario::{self, Scenario};
use crate::trace::{StepSpec, run_actions};

/// Most VM slots a decoded device has.
pub const MAX_FUZZ_VMS: u8 = 8;
/// Most actions decoded from one input; the rest of the bytes are ignored.
pub const MAX_FUZZ_ACTIONS: usize = 256;

/// The kinds of action the decoders produce, by the number they read. Only
/// actions the step syntax can write: a begin or end of each request and
/// the `kube-takeover` event. They are policy-independent: a kind the state
/// or the policy does not allow is simply `rejected` by the model. Version
/// 1 reads the first [`KINDS_V1`]; version 2 reads them all, so a kind's
/// number means the same in both.
type Kind = (Phase, Op, Option<KindOption>);
const KINDS: [Kind; 15] = [
    (Phase::Begin, Op::CreateVm, None),
    (Phase::Begin, Op::CreateVm, Some(KindOption::Gpus)),
    (Phase::Begin, Op::StartVm, None),
    (Phase::Begin, Op::StopVm, None),
    (Phase::Begin, Op::StopVm, Some(KindOption::Provisioned)),
    (Phase::Begin, Op::RemoveVm, None),
    (Phase::End, Op::CreateVm, None),
    (Phase::End, Op::StartVm, None),
    (Phase::End, Op::StopVm, None),
    (Phase::End, Op::RemoveVm, None),
    (Phase::Begin, Op::ConfigureKube, None),
    (Phase::End, Op::ConfigureKube, None),
    (Phase::Event, Op::KubeTakeover, None),
    // Version 2 only.
    (Phase::Begin, Op::UpdateDevice, None),
    (Phase::End, Op::UpdateDevice, None),
];
/// How many of [`KINDS`] version 1 reads.
const KINDS_V1: usize = 13;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum KindOption {
    Gpus,
    Provisioned,
}

/// An interleaving input format: which action kinds its bytes name, and
/// whether the decoded device offers `update-device`
/// ([`Device::with_updates`]). Every byte string decodes in both.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Format {
    /// [`decode_interleaving`]: kinds `0..=12`, a device without updates.
    /// The committed inputs of the version 1 targets are in it: it never
    /// changes.
    V1,
    /// [`decode_interleaving_v2`]: kinds `0..=14`, version 1's and then the
    /// begin and the end of `update-device`, on a device with updates.
    V2,
}

impl Format {
    fn kinds(self) -> &'static [Kind] {
        match self {
            Format::V1 => &KINDS[..KINDS_V1],
            Format::V2 => &KINDS,
        }
    }

    /// The decoder of this format; never panics.
    pub fn decode(self, data: &[u8]) -> Interleaving {
        decode_with(self, data)
    }

    /// The bytes this format's decoder reads back as `case`, or `None` when
    /// it cannot produce the case.
    pub fn encode(self, case: &Interleaving) -> Option<Vec<u8>> {
        encode_with(self, case)
    }
}

/// A decoded `interleaving` input: a device and the actions to run on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interleaving {
    pub device: Device,
    pub actions: Vec<Action>,
}

/// Decodes any bytes into a device and actions; never panics.
///
/// The format, read with [`Unstructured::int_in_range`] (one byte per number
/// whose range has more than one value; none otherwise; a missing byte
/// reads as the lowest value):
/// - GPUs `1..=8`, VM slots `1..=8`, then each slot's size `0..=GPUs`;
/// - then, until the bytes run out or [`MAX_FUZZ_ACTIONS`] are read, one
///   action: its kind `0..=12` (the begin and end of each request, with
///   `gpus=N` and `provisioned` variants of the begins, then the
///   configure's begin and end, then `kube-takeover`), the VM slot for a
///   VM operation, and `N` in `0..=GPUs` for `create-vm gpus=N`.
///
/// [`encode_interleaving`] writes the bytes that decode to a given case.
pub fn decode_interleaving(data: &[u8]) -> Interleaving {
    decode_with(Format::V1, data)
}

/// Decodes any bytes in the version 2 format; never panics.
///
/// The format of [`decode_interleaving`] with two more kinds: the device
/// is built [`Device::with_updates`]`(true)`, and an action's kind is read
/// in `0..=14`, where `0..=12` are version 1's kinds, `13` is the begin of
/// `update-device` and `14` its end (no VM slot follows them). A kind byte
/// is read modulo 15 rather than 13, so bytes decode to the same actions
/// in both formats only when every kind byte is below 13.
///
/// [`encode_interleaving_v2`] writes the bytes that decode to a given case.
pub fn decode_interleaving_v2(data: &[u8]) -> Interleaving {
    decode_with(Format::V2, data)
}

fn decode_with(format: Format, data: &[u8]) -> Interleaving {
    let kinds = format.kinds();
    let mut u = Unstructured::new(data);
    let gpus = u.int_in_range(1..=MAX_GPUS).unwrap_or(1);
    let slots = u.int_in_range(1..=MAX_FUZZ_VMS).unwrap_or(1);
    let sizes: Vec<u8> = (0..slots)
        .map(|_| u.int_in_range(0..=gpus).unwrap_or(0))
        .collect();
    let device = Device::new(gpus, &sizes)
        .expect("sizes are drawn within 0..=gpus")
        .with_updates(format == Format::V2);
    let mut actions = Vec::new();
    while !u.is_empty() && actions.len() < MAX_FUZZ_ACTIONS {
        let kind = u.int_in_range(0..=kinds.len() as u8 - 1).unwrap_or(0);
        let (phase, op, option) = kinds[usize::from(kind)];
        let vm = if op.takes_vm() {
            u.int_in_range(0..=slots - 1).unwrap_or(0)
        } else {
            0
        };
        let option = match option {
            None => StepOption::None,
            Some(KindOption::Provisioned) => StepOption::Provisioned,
            Some(KindOption::Gpus) => StepOption::Gpus(u.int_in_range(0..=gpus).unwrap_or(0)),
        };
        actions.push(Action {
            phase,
            op,
            vm,
            option,
        });
    }
    Interleaving { device, actions }
}

/// The bytes that [`decode_interleaving`] reads back as `case`, or `None`
/// when the case is outside what the decoder produces (more than
/// [`MAX_FUZZ_VMS`] slots or [`MAX_FUZZ_ACTIONS`] actions, an action the
/// step syntax cannot write or an `update-device`, a slot or `gpus=N` out
/// of range, a device [`Device::with_updates`]). Used to write meaningful
/// seeds for the corpus.
pub fn encode_interleaving(case: &Interleaving) -> Option<Vec<u8>> {
    encode_with(Format::V1, case)
}

/// The bytes that [`decode_interleaving_v2`] reads back as `case`, or
/// `None` when the case is outside what it produces: as
/// [`encode_interleaving`], except that `update-device` steps are written
/// and the device must be [`Device::with_updates`]`(true)`.
pub fn encode_interleaving_v2(case: &Interleaving) -> Option<Vec<u8>> {
    encode_with(Format::V2, case)
}

fn encode_with(format: Format, case: &Interleaving) -> Option<Vec<u8>> {
    let d = &case.device;
    let slots = u8::try_from(d.vms()).ok()?;
    if !(1..=MAX_FUZZ_VMS).contains(&slots)
        || case.actions.len() > MAX_FUZZ_ACTIONS
        || d.updates() != (format == Format::V2)
    {
        return None;
    }
    let mut out = vec![d.gpus() - 1, slots - 1];
    out.extend(d.sizes());
    for a in &case.actions {
        let wanted = match a.option {
            StepOption::None => None,
            StepOption::Provisioned => Some(KindOption::Provisioned),
            StepOption::Gpus(_) => Some(KindOption::Gpus),
        };
        let kind = format
            .kinds()
            .iter()
            .position(|&(p, o, k)| p == a.phase && o == a.op && k == wanted)?;
        out.push(kind as u8);
        if a.op.takes_vm() {
            if a.vm >= slots {
                return None;
            }
            if slots > 1 {
                out.push(a.vm);
            }
        }
        if let StepOption::Gpus(n) = a.option {
            if n > d.gpus() {
                return None;
            }
            out.push(n);
        }
    }
    Some(out)
}

/// The first invariant violated by `actions`: the earliest step at which
/// any fires, and there the first in [`Invariant::ALL`] order. Fast: no
/// recording, stops at the first violation.
pub fn first_violation<A: Allocator + ?Sized>(
    policy: &A,
    device: &Device,
    actions: &[Action],
) -> Option<(usize, Invariant)> {
    let mut state = device.initial();
    for (i, a) in actions.iter().enumerate() {
        let t = model::step(policy, device, &state, *a);
        if let Some(inv) = t.violations.first() {
            return Some((i, inv));
        }
        state = t.state;
    }
    None
}

/// A fuzz target of `fuzz/fuzz_targets/`, by its cargo-fuzz name.
///
/// There is one `interleaving` target per policy and input format, rather
/// than a policy chosen at build time: one `cargo fuzz build` builds them
/// all, a crash file's target says which policy and format it failed under
/// (so `from-fuzz` needs no extra flag), and each keeps its own corpus and
/// regressions. The targets of one [`Format`] share it, so any of their
/// inputs can be replayed under every policy (and any byte string decodes
/// in either format).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Target {
    InterleavingFixed,
    InterleavingLegacy,
    InterleavingSnapshot,
    ScenarioParse,
    StepParse,
    /// `fixed` on version 2 inputs (device updates): never fails.
    InterleavingUpdates,
    /// `unmanaged-update` on version 2 inputs.
    InterleavingUnmanagedUpdate,
}

impl Target {
    /// Every target; the version 2 ones come last, so that lists made
    /// before them keep their order.
    pub const ALL: [Target; 7] = [
        Target::InterleavingFixed,
        Target::InterleavingLegacy,
        Target::InterleavingSnapshot,
        Target::ScenarioParse,
        Target::StepParse,
        Target::InterleavingUpdates,
        Target::InterleavingUnmanagedUpdate,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Target::InterleavingFixed => "interleaving_fixed",
            Target::InterleavingLegacy => "interleaving_legacy",
            Target::InterleavingSnapshot => "interleaving_snapshot",
            Target::ScenarioParse => "scenario_parse",
            Target::StepParse => "step_parse",
            Target::InterleavingUpdates => "interleaving_updates",
            Target::InterleavingUnmanagedUpdate => "interleaving_unmanaged_update",
        }
    }

    pub fn from_name(name: &str) -> Option<Target> {
        Target::ALL.into_iter().find(|t| t.name() == name)
    }

    /// The policy of an `interleaving` target.
    pub fn policy(self) -> Option<Builtin> {
        match self {
            Target::InterleavingFixed => Some(Builtin::Fixed),
            Target::InterleavingLegacy => Some(Builtin::Legacy),
            Target::InterleavingSnapshot => Some(Builtin::Snapshot),
            Target::InterleavingUpdates => Some(Builtin::Fixed),
            Target::InterleavingUnmanagedUpdate => Some(Builtin::UnmanagedUpdate),
            Target::ScenarioParse | Target::StepParse => None,
        }
    }

    /// The input format of an `interleaving` target.
    pub fn format(self) -> Option<Format> {
        match self {
            Target::InterleavingFixed
            | Target::InterleavingLegacy
            | Target::InterleavingSnapshot => Some(Format::V1),
            Target::InterleavingUpdates | Target::InterleavingUnmanagedUpdate => Some(Format::V2),
            Target::ScenarioParse | Target::StepParse => None,
        }
    }

    /// The invariant a campaign on this target is expected to find, as
    /// [`first_violation`] reports it, and that each of its regression
    /// inputs fires first (MODEL.md: `legacy` violates
    /// `no-steal-after-dealloc`, `snapshot` violates `no-double-claim`,
    /// `fixed` violates none; `unmanaged-update` violates
    /// `holds-match-state`, `no-steal-after-dealloc` and
    /// `update-restarts-vms`, and the first of them, `holds-match-state`,
    /// fires at the update's begin step, before the other two can at its
    /// end, whenever a VM holds a GPU at the update).
    pub fn expected_violation(self) -> Option<Invariant> {
        match self {
            Target::InterleavingLegacy => Some(Invariant::NoStealAfterDealloc),
            Target::InterleavingSnapshot => Some(Invariant::NoDoubleClaim),
            Target::InterleavingUnmanagedUpdate => Some(Invariant::HoldsMatchState),
            _ => None,
        }
    }

    /// Every invariant the target's policy may fire on some input
    /// (MODEL.md's expected results); empty for `fixed` and the parsers.
    /// An `unmanaged-update` input where no VM holds a GPU at the update
    /// fires `no-steal-after-dealloc` first.
    pub fn may_violate(self) -> InvariantSet {
        match self {
            Target::InterleavingUnmanagedUpdate => [
                Invariant::HoldsMatchState,
                Invariant::NoStealAfterDealloc,
                Invariant::UpdateRestartsVms,
            ]
            .into_iter()
            .collect(),
            _ => self.expected_violation().into_iter().collect(),
        }
    }

    /// Runs the target's check on one input. `Err` is what the fuzz target
    /// reports as a crash; a panic inside is a bug of the code under test.
    pub fn check(self, data: &[u8]) -> Result<Checked, Failure> {
        match (self.policy(), self.format()) {
            (Some(policy), Some(format)) => check_interleaving_in(format, &policy, data),
            _ if self == Target::ScenarioParse => check_scenario_parse(data),
            _ => check_step_parse(data),
        }
    }

    /// What a fuzz target calls: panics (as libFuzzer needs) on a failure.
    pub fn run_or_panic(self, data: &[u8]) {
        if let Err(failure) = self.check(data) {
            panic!("{}: {failure}", self.name());
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a passing check saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Checked {
    /// An interleaving ran with no violation: its GPUs, slots and actions.
    Ran {
        gpus: u8,
        vms: usize,
        actions: usize,
    },
    /// The text parsed and round-tripped.
    Parsed,
    /// The text was refused, with this message.
    Refused(String),
}

/// Why a target's check failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// An invariant fired (the first one, as [`first_violation`] picks it).
    Violation {
        /// The allocator's name.
        policy: String,
        violation: Violation,
        /// The decoded input (boxed: a device is large next to the rest).
        case: Box<Interleaving>,
    },
    /// Text that parsed does not come back equal once printed and parsed.
    RoundTrip {
        input: String,
        printed: String,
        problem: String,
    },
}

impl Failure {
    /// The invariant of a [`Failure::Violation`].
    pub fn invariant(&self) -> Option<Invariant> {
        match self {
            Failure::Violation { violation, .. } => Some(violation.invariant),
            Failure::RoundTrip { .. } => None,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Violation {
                policy,
                violation,
                case,
            } => write!(
                f,
                "under {policy} on {} and {}, {}: {violation}",
                crate::report::count(u64::from(case.device.gpus()), "GPU", "GPUs"),
                crate::report::count(case.device.vms() as u64, "VM slot", "VM slots"),
                crate::report::count(case.actions.len() as u64, "action", "actions")
            ),
            Failure::RoundTrip {
                input,
                printed,
                problem,
            } => write!(
                f,
                "round trip: {problem}\n--- input\n{input}\n--- printed back\n{printed}"
            ),
        }
    }
}

/// `interleaving_*` of version 1: decodes with [`decode_interleaving`],
/// runs under `policy`, fails on any violation.
pub fn check_interleaving(policy: Builtin, data: &[u8]) -> Result<Checked, Failure> {
    check_interleaving_with(&policy, data)
}

/// [`check_interleaving`] under any allocator: the body of a fuzz target
/// for an allocator of your own (decoding as the version 1
/// `interleaving_*` targets do, so their corpora serve it too; see
/// [`check_interleaving_in`] for device updates):
///
/// ```text
/// fuzz_target!(|data: &[u8]| {
///     if let Err(failure) = gpuclaim::fuzzing::check_interleaving_with(&MyAllocator, data) {
///         panic!("{failure}");
///     }
/// });
/// ```
pub fn check_interleaving_with<A: Allocator + ?Sized>(
    policy: &A,
    data: &[u8],
) -> Result<Checked, Failure> {
    check_interleaving_in(Format::V1, policy, data)
}

/// [`check_interleaving_with`] for inputs in `format`:
/// `check_interleaving_in(Format::V2, &MyAllocator, data)` fuzzes an
/// allocator's update flow on the inputs of `interleaving_updates`.
pub fn check_interleaving_in<A: Allocator + ?Sized>(
    format: Format,
    policy: &A,
    data: &[u8],
) -> Result<Checked, Failure> {
    let case = format.decode(data);
    match first_violation(policy, &case.device, &case.actions) {
        None => Ok(Checked::Ran {
            gpus: case.device.gpus(),
            vms: case.device.vms(),
            actions: case.actions.len(),
        }),
        Some((index, invariant)) => {
            // Only now record and render, for the message.
            let names = VmNames::letters(case.device.vms());
            let run = run_actions(policy, &case.device, &names, &case.actions[..=index]);
            let violation = run
                .violations
                .into_iter()
                .find(|v| v.invariant == invariant)
                .expect("the recorded run fires the same invariant at the same step");
            Err(Failure::Violation {
                policy: policy.name().to_string(),
                violation,
                case: Box::new(case),
            })
        }
    }
}

fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(Registry::builtin)
}

/// Fuzz bytes as text for [`StepSpec::parse`], which only ever sees text:
/// invalid UTF-8 is replaced, so every input reaches the parser.
fn text(data: &[u8]) -> Cow<'_, str> {
    String::from_utf8_lossy(data)
}

/// `scenario_parse`: the bytes go to [`scenario::parse_bytes`], as a file's
/// bytes do in `gpuclaim run`, so an input is refused here exactly when the
/// same file would be (not UTF-8 included). It must never panic; a scenario
/// that parses must come back equal from [`Scenario::to_toml`], and must run
/// under each of its policies.
pub fn check_scenario_parse(data: &[u8]) -> Result<Checked, Failure> {
    check_scenario_parse_at(Path::new("fuzz-input.toml"), data)
}

/// [`check_scenario_parse`] with refusals naming `path`.
pub fn check_scenario_parse_at(path: &Path, data: &[u8]) -> Result<Checked, Failure> {
    let scenario = match scenario::parse_bytes(path, data, registry()) {
        Ok(s) => s,
        Err(e) => return Ok(Checked::Refused(e.to_string())),
    };
    // The bytes parsed, so they are UTF-8 and nothing is replaced.
    let input = String::from_utf8_lossy(data);
    let printed = scenario.to_toml();
    let fail = |problem: String| Failure::RoundTrip {
        input: input.to_string(),
        printed: printed.clone(),
        problem,
    };
    let again = scenario::parse(path, &printed, registry())
        .map_err(|e| fail(format!("the printed scenario is refused: {e}")))?;
    if again != scenario {
        return Err(fail(format!(
            "parsed again it differs:\n  first  {scenario:?}\n  second {again:?}"
        )));
    }
    for p in scenario.policy_names() {
        let policy = registry().get(&p).expect("policies are checked by parse");
        let _ = scenario.run(&*policy);
    }
    Ok(Checked::Parsed)
}

/// `step_parse`: the text goes to [`StepSpec::parse`]. It must never panic;
/// a step that parses, displayed and parsed again, is equal, and displays
/// the same.
pub fn check_step_parse(data: &[u8]) -> Result<Checked, Failure> {
    let input = text(data);
    let spec = match StepSpec::parse(&input) {
        Ok(s) => s,
        Err(e) => return Ok(Checked::Refused(e.to_string())),
    };
    let printed = spec.to_string();
    let fail = |problem: String| Failure::RoundTrip {
        input: input.to_string(),
        printed: printed.clone(),
        problem,
    };
    let again =
        StepSpec::parse(&printed).map_err(|e| fail(format!("the printed step is refused: {e}")))?;
    if again != spec {
        return Err(fail(format!(
            "parsed again it differs: {spec:?} then {again:?}"
        )));
    }
    if again.to_string() != printed {
        return Err(fail(format!("displayed again it reads `{again}`")));
    }
    Ok(Checked::Parsed)
}

/// The set of invariants `case` fires under `policy` over its whole run.
pub fn fired(policy: Builtin, case: &Interleaving) -> InvariantSet {
    let names = VmNames::letters(case.device.vms());
    run_actions(&policy, &case.device, &names, &case.actions).fired
}

/// What an input of a target turns into (see [`convert`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Conversion {
    /// An `interleaving` input that violates an invariant: the shrunk
    /// counterexample as a scenario expecting the violation, with the file
    /// name [`crate::counterexample::file_name`] gives it.
    Counterexample {
        /// Boxed: a scenario is large next to the other variants.
        scenario: Box<Scenario>,
        file_name: String,
        invariant: Invariant,
        /// Actions decoded, actions up to the first violation, actions kept.
        decoded: usize,
        until_violation: usize,
        shrunk: usize,
    },
    /// An `interleaving` input under whose policy no invariant fires:
    /// nothing to shrink.
    NoViolation {
        /// The allocator's name.
        policy: String,
        gpus: u8,
        vms: usize,
        actions: usize,
    },
    /// A parse target's input: the check's result. A parser input is not an
    /// interleaving, so there is nothing to shrink into a scenario.
    Parser(Result<Checked, Failure>),
}

/// Turns one input of `target` into what `gpuclaim from-fuzz` writes or
/// reports. For an `interleaving` input: decode it exactly as the target
/// does (in its [`Target::format`]), run it under the target's policy, and when an invariant fires,
/// shrink the actions against the first one ([`first_violation`]) with the
/// explorer's shrinker ([`crate::shrink::shrink`]) and make the scenario
/// with [`crate::counterexample::scenario_from_actions`]. `input_name`
/// goes into the scenario's `source`, and names the input in a scenario
/// parser's refusals.
pub fn convert(target: Target, data: &[u8], input_name: &str) -> Conversion {
    match target.policy() {
        Some(policy) => convert_under(&policy, target, data, input_name),
        None => Conversion::Parser(if target == Target::ScenarioParse {
            check_scenario_parse_at(Path::new(input_name), data)
        } else {
            target.check(data)
        }),
    }
}

/// [`convert`] for an `interleaving` input run under `policy` instead of
/// the target's own (decoded in the target's format), so a fuzz input can
/// be turned into a scenario for any allocator, an external one included. A parse target's input is checked as
/// [`convert`] does.
pub fn convert_under<A: Allocator + ?Sized>(
    policy: &A,
    target: Target,
    data: &[u8],
    input_name: &str,
) -> Conversion {
    let Some(format) = target.format() else {
        return convert(target, data, input_name);
    };
    let case = format.decode(data);
    let Some((index, invariant)) = first_violation(policy, &case.device, &case.actions) else {
        return Conversion::NoViolation {
            policy: policy.name().to_string(),
            gpus: case.device.gpus(),
            vms: case.device.vms(),
            actions: case.actions.len(),
        };
    };
    let shrunk = crate::shrink::shrink(policy, &case.device, &case.actions, invariant);
    let name = format!(
        "fuzz {}: {} on {} in {}",
        target.name(),
        invariant.name(),
        crate::report::count(u64::from(case.device.gpus()), "GPU", "GPUs"),
        crate::report::count(shrunk.len() as u64, "action", "actions")
    );
    let source = format!(
        "cargo fuzz target {}, input {input_name} ({} actions decoded, shrunk to {}), by gpuclaim from-fuzz",
        target.name(),
        case.actions.len(),
        shrunk.len()
    );
    let scenario =
        crate::counterexample::scenario_from_actions(policy, &case.device, &shrunk, &name, &source);
    let file_name = crate::counterexample::file_name(policy.name(), invariant, &scenario);
    Conversion::Counterexample {
        scenario: Box::new(scenario),
        file_name,
        invariant,
        decoded: case.actions.len(),
        until_violation: index + 1,
        shrunk: shrunk.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Version 1's kinds are the first of version 2's, in the same order,
    /// and version 2 adds exactly the update's two steps: a kind's number
    /// means the same in both formats.
    #[test]
    fn version_2_kinds_extend_version_1() {
        assert_eq!(Format::V1.kinds().len(), 13);
        assert_eq!(Format::V2.kinds()[..13], *Format::V1.kinds());
        assert_eq!(
            Format::V2.kinds()[13..],
            [
                (Phase::Begin, Op::UpdateDevice, None),
                (Phase::End, Op::UpdateDevice, None)
            ]
        );
        assert!(Format::V1.kinds().iter().all(|k| k.1 != Op::UpdateDevice));
    }

    #[test]
    fn each_interleaving_target_has_a_format_and_a_policy() {
        for t in Target::ALL {
            assert_eq!(t.format().is_some(), t.policy().is_some(), "{t}");
            let expected: InvariantSet = t.expected_violation().into_iter().collect();
            if t == Target::InterleavingUnmanagedUpdate {
                assert_eq!(t.may_violate().len(), 3);
                assert_eq!(t.may_violate().first(), t.expected_violation());
            } else {
                assert_eq!(t.may_violate(), expected, "{t}");
            }
        }
    }
}
