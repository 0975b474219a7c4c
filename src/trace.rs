//! The step syntax of SCENARIOS.md (`[begin|end] OP [VM] [OPTION]`) and
//! traces: running a list of steps through the model and recording, for
//! each model action, its outcome and the invariants it violated.

use std::borrow::Cow;
use std::fmt;

use crate::invariant::{InvariantSet, Violation};
use crate::model::{self, Action, Device, Op, Outcome, Phase, State, StepOption, VmNames};
use crate::policy::Allocator;

/// Plain (begin then end), begin only, or end only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StepKind {
    Plain,
    Begin,
    End,
}

/// One step as written in a scenario file, with the VM still a name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct StepSpec {
    pub kind: StepKind,
    pub op: Op,
    pub vm: Option<String>,
    pub option: StepOption,
}

/// Why a step string could not be read. The message says what was expected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct StepError(pub String);

const OPS_EXPECTED: &str =
    "create-vm, start-vm, stop-vm, remove-vm, configure-kube or kube-takeover";

/// Whether `name` is a valid VM name: a letter followed by letters, digits,
/// `-` or `_`.
pub fn valid_vm_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// `text` with every control character escaped (`\u{0}`, `\n`, `\t`...),
/// for error messages that quote input: a raw NUL or escape sequence from a
/// file or a fuzzer would otherwise reach the terminal or a report as is.
pub fn printable(text: &str) -> Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

impl StepSpec {
    /// Reads one step string. The error quotes the step with its control
    /// characters escaped (see [`printable`]).
    pub fn parse(text: &str) -> Result<StepSpec, StepError> {
        Self::parse_raw(text)
            .map_err(|StepError(message)| StepError(printable(&message).into_owned()))
    }

    fn parse_raw(text: &str) -> Result<StepSpec, StepError> {
        let words: Vec<&str> = text.split_whitespace().collect();
        let mut rest = &words[..];
        let kind = match rest.first() {
            None => {
                return Err(StepError(format!(
                    "empty step; expected an operation ({OPS_EXPECTED})"
                )));
            }
            Some(&"begin") => StepKind::Begin,
            Some(&"end") => StepKind::End,
            Some(_) => StepKind::Plain,
        };
        if kind != StepKind::Plain {
            rest = &rest[1..];
        }
        let Some((&op_word, after_op)) = rest.split_first() else {
            return Err(StepError(format!(
                "`{text}` has no operation; expected one of {OPS_EXPECTED}"
            )));
        };
        let op = Op::from_name(op_word).ok_or_else(|| {
            StepError(format!(
                "unknown operation `{op_word}`; expected one of {OPS_EXPECTED}"
            ))
        })?;
        rest = after_op;
        if op == Op::KubeTakeover && kind != StepKind::Plain {
            return Err(StepError(
                "kube-takeover is an internal event: write it without `begin`/`end`".into(),
            ));
        }
        let vm = if op.takes_vm() {
            let Some((&name, after)) = rest.split_first() else {
                return Err(StepError(format!("`{op}` needs a VM name, as in `{op} a`")));
            };
            if !valid_vm_name(name) {
                return Err(StepError(format!(
                    "malformed VM name `{name}`; expected a letter followed by letters, digits, `-` or `_`"
                )));
            }
            rest = after;
            Some(name.to_string())
        } else {
            None
        };
        let option = match rest {
            [] => StepOption::None,
            [word] => parse_option(kind, op, word)?,
            [_, extra, ..] => {
                return Err(StepError(format!(
                    "unexpected `{extra}` after the step `{text}`; a step has at most one option"
                )));
            }
        };
        Ok(StepSpec {
            kind,
            op,
            vm,
            option,
        })
    }
}

fn parse_option(kind: StepKind, op: Op, word: &str) -> Result<StepOption, StepError> {
    if kind == StepKind::End {
        return Err(StepError(format!(
            "an end step takes no option, found `{word}`; put options on the plain or begin step"
        )));
    }
    match (op, word) {
        (Op::StopVm, "provisioned") => Ok(StepOption::Provisioned),
        (Op::CreateVm, w) if w.starts_with("gpus=") => {
            let n = &w["gpus=".len()..];
            n.parse::<u8>()
                .ok()
                .filter(|n| *n <= model::MAX_GPUS)
                .map(StepOption::Gpus)
                .ok_or_else(|| {
                    StepError(format!(
                        "`{w}`: expected gpus=N with N from 0 to {}",
                        model::MAX_GPUS
                    ))
                })
        }
        (Op::StopVm, w) => Err(StepError(format!(
            "unknown option `{w}` for stop-vm; expected `provisioned`"
        ))),
        (Op::CreateVm, w) => Err(StepError(format!(
            "unknown option `{w}` for create-vm; expected `gpus=N`"
        ))),
        (op, w) => Err(StepError(format!("`{op}` takes no option, found `{w}`"))),
    }
}

impl fmt::Display for StepSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            StepKind::Plain => {}
            StepKind::Begin => f.write_str("begin ")?,
            StepKind::End => f.write_str("end ")?,
        }
        f.write_str(self.op.name())?;
        if let Some(vm) = &self.vm {
            write!(f, " {vm}")?;
        }
        match self.option {
            StepOption::None => Ok(()),
            StepOption::Provisioned => f.write_str(" provisioned"),
            StepOption::Gpus(n) => write!(f, " gpus={n}"),
        }
    }
}

/// The model action of a step's first (or only) part, with the VM resolved
/// to its slot. `None` when the VM has no slot.
pub fn first_action(spec: &StepSpec, names: &VmNames) -> Option<Action> {
    let vm = match &spec.vm {
        Some(name) => names.slot(name)? as u8,
        None => 0,
    };
    let phase = match (spec.kind, spec.op) {
        (_, Op::KubeTakeover) => Phase::Event,
        (StepKind::End, _) => Phase::End,
        _ => Phase::Begin,
    };
    Some(Action {
        phase,
        op: spec.op,
        vm,
        option: spec.option,
    })
}

/// One model action as it ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Executed {
    pub action: Action,
    pub outcome: Outcome,
    pub violations: InvariantSet,
}

/// A run of model actions from the initial state: the trace, the final
/// state and every violation with its rendering.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Run {
    pub trace: Vec<Executed>,
    /// The state after each action of `trace`.
    pub states: Vec<State>,
    pub state: State,
    pub violations: Vec<Violation>,
    /// The invariants that fired at least once.
    pub fired: InvariantSet,
}

/// Runs model actions one after another, recording everything. Engines that
/// replay or shrink use it; the scenario runner uses it through
/// [`run_steps`].
pub struct Recorder<'a, P: Allocator + ?Sized> {
    policy: &'a P,
    device: &'a Device,
    names: &'a VmNames,
    run: Run,
}

impl<'a, P: Allocator + ?Sized> Recorder<'a, P> {
    pub fn new(policy: &'a P, device: &'a Device, names: &'a VmNames) -> Self {
        Recorder {
            policy,
            device,
            names,
            run: Run {
                trace: Vec::new(),
                states: Vec::new(),
                state: device.initial(),
                violations: Vec::new(),
                fired: InvariantSet::EMPTY,
            },
        }
    }

    pub fn state(&self) -> &State {
        &self.run.state
    }

    /// Applies one action and records it; returns its outcome.
    pub fn apply(&mut self, action: Action) -> Outcome {
        let before = self.run.state;
        let t = model::step(self.policy, self.device, &before, action);
        let index = self.run.trace.len();
        for inv in t.violations.iter() {
            self.run.violations.push(Violation {
                invariant: inv,
                step_index: index,
                step: action.render(self.names),
                before: before.render(self.device, self.names),
                after: t.state.render(self.device, self.names),
            });
        }
        self.run.fired = self.run.fired.union(t.violations);
        self.run.trace.push(Executed {
            action,
            outcome: t.outcome,
            violations: t.violations,
        });
        self.run.states.push(t.state);
        self.run.state = t.state;
        t.outcome
    }

    pub fn finish(self) -> Run {
        self.run
    }
}

/// Runs a list of model actions from the initial state.
pub fn run_actions<P: Allocator + ?Sized>(
    policy: &P,
    device: &Device,
    names: &VmNames,
    actions: &[Action],
) -> Run {
    let mut rec = Recorder::new(policy, device, names);
    for a in actions {
        rec.apply(*a);
    }
    rec.finish()
}

/// Runs scenario steps: a plain step is its begin step, followed by its end
/// step only when the begin's outcome is `ok` and it left an operation in
/// flight. Returns the run and the outcome of each scenario step (a plain
/// step's is its end step's when it has one, else its begin step's).
/// A step naming a VM without a slot is rejected.
pub fn run_steps<P: Allocator + ?Sized>(
    policy: &P,
    device: &Device,
    names: &VmNames,
    steps: &[StepSpec],
) -> (Run, Vec<Outcome>) {
    let mut rec = Recorder::new(policy, device, names);
    let mut outcomes = Vec::with_capacity(steps.len());
    for spec in steps {
        let Some(action) = first_action(spec, names) else {
            outcomes.push(Outcome::Rejected);
            continue;
        };
        let mut outcome = rec.apply(action);
        if spec.kind == StepKind::Plain
            && action.phase == Phase::Begin
            && outcome == Outcome::Ok
            && crate::model::in_flight(rec.state(), spec.op, action.vm)
        {
            outcome = rec.apply(Action::end(spec.op, action.vm));
        }
        outcomes.push(outcome);
    }
    (rec.finish(), outcomes)
}

/// Turns a trace back into scenario steps: a begin whose outcome was `ok`,
/// directly followed by its own end, becomes one plain step (which runs
/// exactly the same two actions); everything else is written as it is, so
/// running the steps gives back the identical trace.
pub fn trace_to_steps(trace: &[Executed], names: &VmNames) -> Vec<StepSpec> {
    let mut out = Vec::with_capacity(trace.len());
    let mut i = 0;
    while i < trace.len() {
        let a = trace[i].action;
        let vm =
            a.op.takes_vm()
                .then(|| names.name(usize::from(a.vm)).to_string());
        let pairs_with_next = a.phase == Phase::Begin
            && trace[i].outcome == Outcome::Ok
            && trace.get(i + 1).is_some_and(|b| {
                b.action.phase == Phase::End
                    && b.action.op == a.op
                    && (b.action.vm == a.vm || !a.op.takes_vm())
            });
        let kind = match a.phase {
            Phase::Begin if pairs_with_next => StepKind::Plain,
            Phase::Begin => StepKind::Begin,
            Phase::End => StepKind::End,
            Phase::Event => StepKind::Plain,
        };
        out.push(StepSpec {
            kind,
            op: a.op,
            vm,
            option: a.option,
        });
        i += if pairs_with_next { 2 } else { 1 };
    }
    out
}
