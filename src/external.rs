//! Allocators in another process: the engine starts a command and speaks
//! the line protocol of `docs/allocator-protocol.md` with it over its
//! standard input and output (MODEL.md "Allocators (version 2)"). An
//! [`External`] is an [`Allocator`] like the built-in ones, so every engine
//! takes it.
//!
//! - **Children.** An `External` keeps a pool of children; a thread takes
//!   the child that is already in the state it asks to step from (or any
//!   other), so parallel engines run one child per worker.
//! - **State.** The allocator owns the sets: each reply carries them, and
//!   they are written into the model state. What the allocator keeps
//!   beyond them is an opaque text (`state=` in replies, when the
//!   handshake offers `export`); the engine numbers the distinct texts of
//!   each device and keeps the number in [`State::memo`] (shifted left by
//!   one: bit 0 says whether `kube-takeover` is enabled), so two model
//!   states are the same exactly when their lifecycle, sets and allocator
//!   texts are. Number 0 is the text after `reset`. To step from a state
//!   the child is not in, the engine sends `import` with the sets and the
//!   text; without `export` only the walk from `reset` onwards can be
//!   stepped, and the exhaustive checker refuses the allocator.
//! - **Failures.** A child that exits, says `error`, replies with
//!   something malformed or does not reply within its timeout cannot go on:
//!   [`fail`] unwinds with an [`AllocatorFailure`] (the request, the action
//!   and the trace so far), which [`catch`] turns back into a value where a
//!   command starts. It is never an invariant violation.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde::Deserialize;

use crate::model::{Action, Device, GpuSet, MAX_VMS, Outcome, Phase, State, VmState};
use crate::policy::Allocator;

/// The protocol version this engine speaks.
pub const PROTOCOL_VERSION: u32 = 1;

/// Seconds a child may take for one reply, unless its entry says otherwise.
pub const DEFAULT_TIMEOUT_SECONDS: f64 = 10.0;

/// The most bits of [`State::memo`] an external allocator's numbered
/// texts take (bit 0 is the takeover flag).
const MAX_TEXT_BITS: u32 = 31;

/// One entry of an allocators file.
#[derive(Clone, Debug, PartialEq)]
pub struct Spec {
    /// The name `--policy` and scenario files use.
    pub name: String,
    /// The program, looked up on `PATH` unless it is a path.
    pub command: String,
    pub args: Vec<String>,
    /// Variables added to the child's environment.
    pub env: BTreeMap<String, String>,
    /// The longest a reply may take.
    pub timeout: Duration,
    /// Where the child runs: the allocators file's folder.
    pub dir: PathBuf,
}

impl Spec {
    /// The command line, for messages.
    pub fn command_line(&self) -> String {
        let mut line = self.command.clone();
        for a in &self.args {
            line.push(' ');
            line.push_str(a);
        }
        line
    }
}

/// Why an allocators file was refused.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("{file}: cannot read it: {source}")]
    Read {
        file: String,
        source: std::io::Error,
    },
    #[error("{file}:{line}:{column}: {message}")]
    At {
        file: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{file}: {message}")]
    File { file: String, message: String },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileToml {
    #[serde(default)]
    allocator: Vec<toml::Spanned<EntryToml>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryToml {
    name: String,
    command: String,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    /// Seconds.
    timeout: Option<f64>,
}

/// Whether `name` can name an allocator: a letter, then letters, digits,
/// `-` or `_`.
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Reads an allocators file (`[[allocator]]` entries: `name`, `command`,
/// `args`, `env`, `timeout` in seconds). Names must be distinct and must
/// not be a built-in allocator's.
pub fn parse_file(file: &Path, text: &str) -> Result<Vec<Spec>, FileError> {
    let shown = file.display().to_string();
    let at = |span: Option<std::ops::Range<usize>>, message: String| {
        let (line, column) = span.map_or((1, 1), |s| crate::scenario::line_column(text, s.start));
        FileError::At {
            file: shown.clone(),
            line,
            column,
            message,
        }
    };
    let parsed: FileToml = toml::from_str(text).map_err(|e| {
        at(
            e.span(),
            format!(
                "{} (expected [[allocator]] entries with name, command, args, env, timeout)",
                e.message()
            ),
        )
    })?;
    if parsed.allocator.is_empty() {
        return Err(FileError::File {
            file: shown,
            message: "no [[allocator]] entry".into(),
        });
    }
    let dir = file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let mut specs: Vec<Spec> = Vec::new();
    for entry in parsed.allocator {
        let span = entry.span();
        let e = entry.into_inner();
        if !valid_name(&e.name) {
            return Err(at(
                Some(span),
                format!(
                    "allocator name `{}`: expected a letter, then letters, digits, - or _",
                    e.name
                ),
            ));
        }
        if crate::Builtin::from_name(&e.name).is_some() {
            return Err(at(
                Some(span),
                format!("allocator name `{}` is a built-in allocator's", e.name),
            ));
        }
        if specs.iter().any(|s| s.name == e.name) {
            return Err(at(
                Some(span),
                format!("allocator `{}` is named twice", e.name),
            ));
        }
        if e.command.trim().is_empty() {
            return Err(at(
                Some(span),
                format!("allocator `{}`: command is empty", e.name),
            ));
        }
        let seconds = e.timeout.unwrap_or(DEFAULT_TIMEOUT_SECONDS);
        if !(seconds.is_finite() && seconds > 0.0 && seconds <= 3600.0) {
            return Err(at(
                Some(span),
                format!(
                    "allocator `{}`: timeout {seconds}: expected seconds above 0, at most 3600",
                    e.name
                ),
            ));
        }
        specs.push(Spec {
            name: e.name,
            command: e.command,
            args: e.args,
            env: e.env,
            timeout: Duration::from_secs_f64(seconds),
            dir: dir.clone(),
        });
    }
    Ok(specs)
}

/// Why an allocators file could not be loaded: the file, or a child that
/// failed its handshake.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    File(#[from] FileError),
    #[error(transparent)]
    Allocator(#[from] Box<AllocatorFailure>),
}

/// Reads an allocators file and starts each allocator once for its
/// handshake; each becomes an [`External`].
pub fn load_file(file: &Path) -> Result<Vec<Arc<dyn Allocator>>, LoadError> {
    let text = std::fs::read_to_string(file).map_err(|source| FileError::Read {
        file: file.display().to_string(),
        source,
    })?;
    let mut out: Vec<Arc<dyn Allocator>> = Vec::new();
    for spec in parse_file(file, &text)? {
        out.push(Arc::new(External::start(spec)?));
    }
    Ok(out)
}

/// An allocator that could not go on.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct AllocatorFailure {
    /// The allocator's name and command line.
    pub allocator: String,
    pub command: String,
    /// What went wrong.
    pub reason: String,
    /// The request line it was sent, if any.
    pub request: Option<String>,
    /// The model action being applied, in step syntax, if any.
    pub action: Option<String>,
    /// The actions the child had applied since its reset (or import), in
    /// step syntax; an import shows as `import ...`.
    pub trace: Vec<String>,
}

impl fmt::Display for AllocatorFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "allocator `{}` ({}): {}",
            self.allocator, self.command, self.reason
        )?;
        if let Some(action) = &self.action {
            write!(f, "\n  at action: {action}")?;
        }
        if let Some(request) = &self.request {
            write!(f, "\n  request: {request}")?;
        }
        if self.trace.is_empty() {
            write!(f, "\n  trace so far: (none)")
        } else {
            write!(f, "\n  trace so far: {}", self.trace.join(", "))
        }
    }
}

/// Ends the run at hand with `failure`: unwinds (without the panic
/// message) to the nearest [`catch`]. For allocators, which cannot return
/// an error from [`Allocator::apply`].
pub fn fail(failure: AllocatorFailure) -> ! {
    std::panic::resume_unwind(Box::new(failure))
}

/// Runs `f`; an allocator that failed inside it ([`fail`]) comes back as
/// `Err`. Any other panic goes on unwinding.
pub fn catch<R>(f: impl FnOnce() -> R) -> Result<R, Box<AllocatorFailure>> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => Ok(r),
        Err(payload) => match payload.downcast::<AllocatorFailure>() {
            Ok(failure) => Err(failure),
            Err(other) => std::panic::resume_unwind(other),
        },
    }
}

/// What the handshake said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hello {
    /// The name the allocator gives itself (shown in messages only).
    pub name: String,
    /// Replies carry `state=`, and `import` works: the checker can use it.
    pub export: bool,
    /// Its VM slots of equal size are interchangeable (`check --symmetry`).
    pub symmetric: bool,
}

/// The numbered allocator texts of one device.
#[derive(Default)]
struct Texts {
    ids: HashMap<Arc<str>, u32>,
    texts: Vec<Arc<str>>,
}

/// An allocator in another process ([module documentation](self)).
pub struct External {
    spec: Arc<Spec>,
    hello: Hello,
    pool: Mutex<Vec<Proc>>,
    texts: Mutex<HashMap<Device, Texts>>,
}

impl fmt::Debug for External {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("External")
            .field("spec", &self.spec)
            .field("hello", &self.hello)
            .finish()
    }
}

impl External {
    /// Starts the allocator once for its handshake (the child is kept for
    /// the first engine that needs one).
    pub fn start(spec: Spec) -> Result<External, Box<AllocatorFailure>> {
        let spec = Arc::new(spec);
        let (proc, hello) = catch(|| Proc::spawn(&spec))?;
        Ok(External {
            spec,
            hello,
            pool: Mutex::new(vec![proc]),
            texts: Mutex::new(HashMap::new()),
        })
    }

    pub fn spec(&self) -> &Spec {
        &self.spec
    }

    pub fn hello(&self) -> &Hello {
        &self.hello
    }

    /// Bits of allocator text numbers the device's checker keys have room
    /// for (with the takeover flag, [`Allocator::memo_bits`] is one more).
    fn text_bits(&self, device: &Device) -> u32 {
        if !self.hello.export {
            return 0;
        }
        let g = u32::from(device.gpus());
        let base = 2 * g + 2 + device.vms() as u32 * (4 + g) + 1;
        // Three bits stay free for the checker's verdict tag.
        64u32.saturating_sub(base + 3).clamp(1, MAX_TEXT_BITS)
    }

    /// The number of `text` on `device` (0 is the text after `reset`).
    fn number(&self, device: &Device, text: &str, proc: &Proc, reset: bool) -> u32 {
        let mut all = self.texts.lock().unwrap_or_else(PoisonError::into_inner);
        let texts = all.entry(*device).or_default();
        if reset {
            match texts.texts.first() {
                None => {
                    let t: Arc<str> = Arc::from(text);
                    texts.ids.insert(t.clone(), 0);
                    texts.texts.push(t);
                }
                Some(first) if &**first == text => {}
                Some(first) => {
                    let first = first.to_string();
                    drop(all);
                    proc.fail(format!(
                        "`reset` gave state `{text}`, but an earlier reset of the same device gave `{first}`: a reset must always lead to the same state"
                    ))
                }
            }
            return 0;
        }
        if let Some(&id) = texts.ids.get(text) {
            return id;
        }
        let id = texts.texts.len() as u32;
        let bits = self.text_bits(device);
        if u64::from(id) >= 1u64 << bits {
            drop(all);
            proc.fail(format!(
                "it exported more than 2^{bits} distinct states on this device; a state's 64-bit key has room for {bits} bits of allocator state here (fewer VM slots leave more)"
            ))
        }
        let t: Arc<str> = Arc::from(text);
        texts.ids.insert(t.clone(), id);
        texts.texts.push(t);
        id
    }

    fn text(&self, device: &Device, id: u32) -> Option<Arc<str>> {
        let all = self.texts.lock().unwrap_or_else(PoisonError::into_inner);
        all.get(device)
            .and_then(|t| t.texts.get(id as usize))
            .cloned()
    }

    /// A child in `state` on `device` if the pool has one, else any child
    /// (or a new one).
    fn take(&self, device: &Device, state: &State) -> Proc {
        let mut pool = self.pool.lock().unwrap_or_else(PoisonError::into_inner);
        let at = pool
            .iter()
            .position(|p| p.at.as_ref() == Some(&(*device, *state)))
            .or((!pool.is_empty()).then_some(0));
        match at {
            Some(i) => pool.swap_remove(i),
            None => {
                drop(pool);
                Proc::spawn(&self.spec).0
            }
        }
    }

    fn give_back(&self, proc: Proc) {
        self.pool
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(proc);
    }

    /// Brings `proc` to `state` on `device`: nothing when it is there,
    /// `reset` for the initial state, `import` otherwise.
    fn bring(&self, proc: &mut Proc, device: &Device, state: &State) {
        if proc.at.as_ref() == Some(&(*device, *state)) {
            return;
        }
        let initial = device.initial();
        // A create's `gpus=N` sets the slot's size before the allocator is
        // told; the state is still the one `reset` makes.
        let mut bare = *state;
        for (vm, t) in bare.vms.iter_mut().zip(&initial.vms) {
            vm.size = t.size;
        }
        if bare == initial {
            let line = reset_line(device);
            proc.trace.clear();
            let reply = proc.request(&line, None);
            let reply = proc.parse_state_reply(&reply, &line, device);
            if reply.takeover {
                proc.fail_at(
                    "its reply to `reset` enables kube-takeover, but Kubernetes is unconfigured"
                        .into(),
                    Some(&line),
                )
            }
            let id = self.number(device, reply.text.as_deref().unwrap_or(""), proc, true);
            let mut reached = initial;
            reply.write_sets(&mut reached, device);
            reached.memo = id << 1;
            if reached != initial {
                proc.fail_at(
                    format!(
                        "after `reset` it says {}, but a device starts with every GPU free and nothing held",
                        reply.sets_text(device)
                    ),
                    Some(&line),
                )
            }
            proc.at = Some((*device, initial));
            return;
        }
        if !self.hello.export {
            proc.fail(
                "it cannot be moved to a state it is not in: its handshake does not offer `export`, which `check` (and any engine that steps from a saved state) needs".into(),
            )
        }
        let text = match self.text(device, state.memo >> 1) {
            Some(t) => t,
            None => proc.fail(format!(
                "no state numbered {} was exported on this device",
                state.memo >> 1
            )),
        };
        let line = format!(
            "import free={} kube={} held={} state={text}",
            state.free,
            state.kube_held,
            number_list(state.vms[..device.vms()].iter().map(|v| v.held))
        );
        proc.trace.clear();
        proc.send(&line);
        proc.import = Some(line);
        proc.trace.push(format!(
            "import {}",
            state.render(device, &crate::VmNames::letters(device.vms()))
        ));
        proc.at = Some((*device, *state));
    }
}

impl Drop for External {
    fn drop(&mut self) {
        let pool = std::mem::take(self.pool.get_mut().unwrap_or_else(PoisonError::into_inner));
        for p in pool {
            p.stop();
        }
    }
}

/// What a reply said, as an allocator: the model's own lifecycle rules
/// then give the state the child is in after an action.
struct Replayed {
    outcome: Outcome,
    state: State,
}

impl Allocator for Replayed {
    fn name(&self) -> &str {
        "replayed"
    }
    fn apply(&self, _device: &Device, state: &mut State, _action: Action) -> Outcome {
        state.free = self.state.free;
        state.kube_held = self.state.kube_held;
        for (vm, done) in state.vms.iter_mut().zip(&self.state.vms) {
            vm.held = done.held;
        }
        state.memo = self.state.memo;
        self.outcome
    }
    fn takeover_enabled(&self, _device: &Device, _state: &State) -> bool {
        true
    }
}

impl Allocator for External {
    fn name(&self) -> &str {
        &self.spec.name
    }

    fn apply(&self, device: &Device, state: &mut State, action: Action) -> Outcome {
        let before = *state;
        let mut proc = self.take(device, state);
        self.bring(&mut proc, device, state);
        let names = crate::VmNames::letters(device.vms());
        let shown = action.render(&names);
        let line = apply_line(state, action);
        let reply = proc.request(&line, Some(&shown));
        let reply = proc.parse_state_reply(&reply, &line, device);
        let is_claim = crate::model::is_claim(state, action);
        let outcome = match reply.outcome {
            Outcome::Ok => Outcome::Ok,
            Outcome::NoGpu if is_claim => Outcome::NoGpu,
            other => proc.fail_at(
                format!(
                    "it answered `{}` to `{shown}`, which is not a claim: only `ok` is allowed there",
                    other.name()
                ),
                Some(&line),
            ),
        };
        let id = match &reply.text {
            Some(text) => self.number(device, text, &proc, false),
            None => 0,
        };
        reply.write_sets(state, device);
        state.memo = (id << 1) | u32::from(reply.takeover);
        proc.trace.push(shown);
        // The state the child is in once the model has moved the
        // lifecycle: the model's next `apply` comes from there.
        let mut after = before;
        crate::model::apply_in_place(
            &Replayed {
                outcome,
                state: *state,
            },
            device,
            &mut after,
            action,
        );
        proc.at = Some((*device, after));
        self.give_back(proc);
        outcome
    }

    fn takeover_enabled(&self, _device: &Device, state: &State) -> bool {
        state.memo & 1 != 0
    }

    fn memo_bits(&self, device: &Device) -> u32 {
        self.text_bits(device) + 1
    }

    fn symmetric(&self) -> bool {
        self.hello.symmetric
    }

    fn restores(&self) -> bool {
        self.hello.export
    }
}

/// `reset G S0,S1,…` (`-` for no slots).
fn reset_line(device: &Device) -> String {
    format!(
        "reset {} {}",
        device.gpus(),
        number_list(device.sizes().iter().copied())
    )
}

/// The lifecycle name the protocol uses (`stopping-provisioned` for a
/// provisioned stop in flight).
pub fn life_name(life: VmState) -> &'static str {
    match life {
        VmState::Stopping { provisioned: true } => "stopping-provisioned",
        other => other.name(),
    }
}

fn apply_line(state: &State, action: Action) -> String {
    let phase = match action.phase {
        Phase::Begin => "begin",
        Phase::End => "end",
        Phase::Event => "event",
    };
    let kube = state.kube.name();
    if action.op.takes_vm() {
        let vm = usize::from(action.vm);
        let option = match action.option {
            crate::StepOption::Provisioned => "provisioned",
            _ => "-",
        };
        format!(
            "apply {phase} {} vm={vm} size={} life={} kube={kube} option={option}",
            action.op.name(),
            state.vms[vm].size,
            life_name(state.vms[vm].life)
        )
    } else {
        format!(
            "apply {phase} {} vm=- size=- life=- kube={kube} option=-",
            action.op.name()
        )
    }
}

/// Numbers as the protocol writes a list (slot sizes, `held`'s sets as
/// bitmasks): joined by `,`, `-` for none.
fn number_list(numbers: impl Iterator<Item = u8>) -> String {
    let list: Vec<String> = numbers.map(|n| n.to_string()).collect();
    if list.is_empty() {
        "-".into()
    } else {
        list.join(",")
    }
}

/// A reply that describes a state: `ok outcome=O free=N kube=N held=N,…
/// takeover=0|1 [state=TEXT]`.
struct StateReply {
    outcome: Outcome,
    free: GpuSet,
    kube: GpuSet,
    held: [GpuSet; MAX_VMS],
    takeover: bool,
    text: Option<String>,
}

impl StateReply {
    fn write_sets(&self, state: &mut State, device: &Device) {
        state.free = self.free;
        state.kube_held = self.kube;
        for (vm, held) in state.vms[..device.vms()].iter_mut().zip(&self.held) {
            vm.held = *held;
        }
    }
    fn sets_text(&self, device: &Device) -> String {
        format!(
            "free={} kube={} held={}",
            self.free,
            self.kube,
            number_list(self.held[..device.vms()].iter().copied())
        )
    }
}

/// One child process.
struct Proc {
    spec: Arc<Spec>,
    child: Child,
    /// `None` once closed.
    stdin: Option<ChildStdin>,
    output: Output,
    /// An `import` sent whose reply is still to be read (it is read after
    /// the next request is sent, saving a round trip).
    import: Option<String>,
    /// The device and state the child is in, when known.
    at: Option<(Device, State)>,
    /// Actions since its reset or import, in step syntax.
    trace: Vec<String>,
    /// The action being applied, for a failure's message.
    action: Option<String>,
}

impl Proc {
    /// Starts the child and shakes hands.
    fn spawn(spec: &Arc<Spec>) -> (Proc, Hello) {
        let failure = |reason: String| AllocatorFailure {
            allocator: spec.name.clone(),
            command: spec.command_line(),
            reason,
            request: None,
            action: None,
            trace: Vec::new(),
        };
        let mut child = match Command::new(&spec.command)
            .args(&spec.args)
            .envs(&spec.env)
            .current_dir(&spec.dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
        {
            Ok(c) => c,
            Err(e) => fail(failure(format!(
                "cannot start it in {}: {e}",
                spec.dir.display()
            ))),
        };
        let stdin = child.stdin.take().expect("stdin is piped");
        let stdout = child.stdout.take().expect("stdout is piped");
        let output = Output::new(stdout, &spec.name);
        let mut proc = Proc {
            spec: spec.clone(),
            child,
            stdin: Some(stdin),
            output,
            import: None,
            at: None,
            trace: Vec::new(),
            action: None,
        };
        let line = format!("hello gpuclaim-allocator {PROTOCOL_VERSION}");
        let reply = proc.request(&line, None);
        let hello = proc.parse_hello(&reply, &line);
        (proc, hello)
    }

    fn parse_hello(&self, reply: &str, line: &str) -> Hello {
        let mut words = reply.split_whitespace();
        let expected = format!(
            "`hello gpuclaim-allocator {PROTOCOL_VERSION} name=NAME [features=export,symmetric]`"
        );
        if words.next() != Some("hello") || words.next() != Some("gpuclaim-allocator") {
            self.fail_at(
                format!("its handshake reply was `{reply}`; expected {expected}"),
                Some(line),
            )
        }
        match words.next() {
            Some(v) if v == PROTOCOL_VERSION.to_string() => {}
            other => self.fail_at(
                format!(
                    "it speaks protocol version {}, this gpuclaim speaks {PROTOCOL_VERSION}",
                    other.unwrap_or("(none)")
                ),
                Some(line),
            ),
        }
        let mut hello = Hello {
            name: String::new(),
            export: false,
            symmetric: false,
        };
        for word in words {
            match word.split_once('=') {
                Some(("name", n)) => hello.name = n.to_string(),
                Some(("features", list)) => {
                    for f in list.split(',').filter(|f| !f.is_empty() && *f != "-") {
                        match f {
                            "export" => hello.export = true,
                            "symmetric" => hello.symmetric = true,
                            other => self.fail_at(
                                format!(
                                    "its handshake names feature `{other}`; known: export, symmetric"
                                ),
                                Some(line),
                            ),
                        }
                    }
                }
                _ => self.fail_at(
                    format!("its handshake reply has `{word}`; expected {expected}"),
                    Some(line),
                ),
            }
        }
        hello
    }

    /// Sends one request line and waits for one reply line (without its
    /// line end).
    fn request(&mut self, line: &str, action: Option<&str>) -> String {
        self.action = action.map(str::to_string);
        self.send(line);
        if let Some(import) = self.import.take() {
            let reply = self.receive(&import);
            if reply.trim() != "ok" {
                self.fail_at(
                    format!("its reply to `import` was `{reply}`; expected `ok`"),
                    Some(&import),
                )
            }
        }
        self.receive(line)
    }

    fn send(&mut self, line: &str) {
        let sent = match self.stdin.as_mut() {
            Some(stdin) => writeln!(stdin, "{line}").and_then(|()| stdin.flush()),
            None => Err(std::io::Error::other("its input is closed")),
        };
        if let Err(e) = sent {
            let status = self.exit_status();
            self.fail_at(format!("cannot write to it ({e}){status}"), Some(line))
        }
    }

    /// The reply to `line`, sent before.
    fn receive(&mut self, line: &str) -> String {
        match self.output.read_line(self.spec.timeout) {
            Ok(reply) => {
                if let Some(message) = reply.strip_prefix("error") {
                    self.fail_at(format!("it answered with an error:{message}"), Some(line))
                }
                reply
            }
            Err(ReadError::Io(e)) => {
                self.fail_at(format!("cannot read its reply: {e}"), Some(line))
            }
            Err(ReadError::Timeout) => {
                let _ = self.child.kill();
                let _ = self.child.wait();
                self.fail_at(
                    format!(
                        "no reply within {} s (its timeout); it was stopped",
                        self.spec.timeout.as_secs_f64()
                    ),
                    Some(line),
                )
            }
            Err(ReadError::Closed) => {
                let status = self.exit_status();
                self.fail_at(
                    format!("it closed its output without replying{status}"),
                    Some(line),
                )
            }
        }
    }

    /// `; it exited with …` once the child has exited (waiting a little).
    fn exit_status(&mut self) -> String {
        for _ in 0..50 {
            if let Ok(Some(status)) = self.child.try_wait() {
                return format!("; it exited ({status})");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        String::new()
    }

    fn parse_state_reply(&self, reply: &str, line: &str, device: &Device) -> StateReply {
        let expected = "`ok outcome=ok|no-gpu free=N kube=N held=N,… takeover=0|1 [state=TEXT]` (sets as bitmasks)";
        let bad = |why: String| -> ! {
            self.fail_at(
                format!("malformed reply `{reply}`: {why}; expected {expected}"),
                Some(line),
            )
        };
        let (head, text) = match reply.find(" state=") {
            Some(i) => (&reply[..i], Some(reply[i + 7..].to_string())),
            None => (reply, None),
        };
        let mut words = head.split_whitespace();
        if words.next() != Some("ok") {
            bad("it does not start with `ok`".into())
        }
        let all = device.all();
        let set = |key: &str, v: &str| -> GpuSet {
            match v.parse::<u16>() {
                Ok(n) if n <= 255 && (n as u8) & !all == 0 => n as u8,
                _ => bad(format!(
                    "{key}={v} is not a set of this device's {} GPUs (a bitmask below {})",
                    device.gpus(),
                    u16::from(all) + 1
                )),
            }
        };
        let (mut outcome, mut free, mut kube, mut held, mut takeover) =
            (None, None, None, None, None);
        for word in words {
            let Some((key, v)) = word.split_once('=') else {
                bad(format!("`{word}` is not key=value"))
            };
            match key {
                "outcome" => {
                    outcome = Some(match v {
                        "ok" => Outcome::Ok,
                        "no-gpu" => Outcome::NoGpu,
                        _ => bad(format!("outcome `{v}` is not ok or no-gpu")),
                    })
                }
                "free" => free = Some(set(key, v)),
                "kube" => kube = Some(set(key, v)),
                "held" => {
                    let mut h = [0u8; MAX_VMS];
                    let parts: Vec<&str> = if v == "-" {
                        Vec::new()
                    } else {
                        v.split(',').collect()
                    };
                    if parts.len() != device.vms() {
                        bad(format!(
                            "held has {} sets, the device has {} VM slots",
                            parts.len(),
                            device.vms()
                        ))
                    }
                    for (slot, p) in h.iter_mut().zip(parts) {
                        *slot = set("held", p);
                    }
                    held = Some(h);
                }
                "takeover" => {
                    takeover = Some(match v {
                        "0" => false,
                        "1" => true,
                        _ => bad(format!("takeover={v} is not 0 or 1")),
                    })
                }
                _ => bad(format!("unknown field `{key}`")),
            }
        }
        let need = |name: &str| -> ! { bad(format!("field `{name}` is missing")) };
        StateReply {
            outcome: outcome.unwrap_or_else(|| need("outcome")),
            free: free.unwrap_or_else(|| need("free")),
            kube: kube.unwrap_or_else(|| need("kube")),
            held: held.unwrap_or_else(|| need("held")),
            takeover: takeover.unwrap_or_else(|| need("takeover")),
            text,
        }
    }

    fn fail(&self, reason: String) -> ! {
        self.fail_at(reason, None)
    }

    fn fail_at(&self, reason: String, request: Option<&str>) -> ! {
        fail(AllocatorFailure {
            allocator: self.spec.name.clone(),
            command: self.spec.command_line(),
            reason,
            request: request.map(str::to_string),
            action: self.action.clone(),
            trace: self.trace.clone(),
        })
    }

    /// Closes the child's input and reaps it (killing it if it lingers).
    fn stop(mut self) {
        drop(self.stdin.take());
        for _ in 0..20 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // A child dropped without `stop` (a failure unwinding) is killed.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// How long a reader asks for a reply without sleeping.
#[cfg(target_os = "linux")]
const SPIN: Duration = Duration::from_micros(200);

/// Whether the current worker pool and a child per worker fit the cores.
#[cfg(target_os = "linux")]
fn spin_fits() -> bool {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    let cores = *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    rayon::current_num_threads() * 2 <= cores
}

/// Why no reply line could be read.
enum ReadError {
    Timeout,
    /// The child closed its output.
    Closed,
    Io(std::io::Error),
}

/// A child's output, read a line at a time with a timeout. On Linux the
/// calling thread waits on the pipe itself (`poll`), so a reply wakes the
/// engine directly; elsewhere a reader thread passes lines on.
struct Output {
    #[cfg(target_os = "linux")]
    out: ChildStdout,
    #[cfg(target_os = "linux")]
    pending: Vec<u8>,
    #[cfg(not(target_os = "linux"))]
    lines: std::sync::mpsc::Receiver<std::io::Result<String>>,
}

impl Output {
    #[cfg(target_os = "linux")]
    fn new(out: ChildStdout, _name: &str) -> Output {
        Output {
            out,
            pending: Vec::new(),
        }
    }

    /// The next line, without its line end.
    #[cfg(target_os = "linux")]
    fn read_line(&mut self, timeout: Duration) -> Result<String, ReadError> {
        use std::os::fd::AsRawFd;
        let deadline = std::time::Instant::now() + timeout;
        let mut buf = [0u8; 4096];
        loop {
            if let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
                let rest = self.pending.split_off(end + 1);
                let line = std::mem::replace(&mut self.pending, rest);
                let text = String::from_utf8_lossy(&line[..end]);
                return Ok(text.trim_end_matches('\r').to_string());
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let mut fd = libc::pollfd {
                fd: self.out.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // A reply usually comes within tens of microseconds: ask
            // without sleeping for a while first, so that this thread's
            // core stays awake (waking an idle core costs more than the
            // reply itself on a virtual machine).
            // Only while the engine's workers and their children fit the
            // cores: a waiting worker that spins then takes no core a child
            // needs.
            let mut ready = 0;
            let spin = std::time::Instant::now();
            while spin.elapsed() < SPIN && spin_fits() {
                // SAFETY: one valid pollfd for the duration of the call.
                ready = unsafe { libc::poll(&mut fd, 1, 0) };
                if ready != 0 {
                    break;
                }
                std::hint::spin_loop();
            }
            if ready == 0 {
                let ms = i32::try_from(left.as_millis().max(1)).unwrap_or(i32::MAX);
                // SAFETY: as above.
                ready = unsafe { libc::poll(&mut fd, 1, ms) };
            }
            if ready < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(ReadError::Io(e));
            }
            if ready == 0 {
                return Err(ReadError::Timeout);
            }
            match self.out.read(&mut buf) {
                Ok(0) => return Err(ReadError::Closed),
                Ok(n) => self.pending.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(ReadError::Io(e)),
            }
        }
    }

    #[cfg(not(target_os = "linux"))]
    fn new(out: ChildStdout, name: &str) -> Output {
        use std::io::BufRead;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name(format!("allocator {name}"))
            .spawn(move || {
                let mut reader = std::io::BufReader::new(out);
                loop {
                    let mut line = String::new();
                    match reader.read_line(&mut line) {
                        Ok(0) => break,
                        Ok(_) => {
                            if tx.send(Ok(line)).is_err() {
                                break;
                            }
                        }
                        Err(e) => {
                            let _ = tx.send(Err(e));
                            break;
                        }
                    }
                }
            })
            .expect("starting a reader thread");
        Output { lines: rx }
    }

    #[cfg(not(target_os = "linux"))]
    fn read_line(&mut self, timeout: Duration) -> Result<String, ReadError> {
        use std::sync::mpsc::RecvTimeoutError;
        match self.lines.recv_timeout(timeout) {
            Ok(Ok(line)) => Ok(line.trim_end_matches(['\n', '\r']).to_string()),
            Ok(Err(e)) => Err(ReadError::Io(e)),
            Err(RecvTimeoutError::Timeout) => Err(ReadError::Timeout),
            Err(RecvTimeoutError::Disconnected) => Err(ReadError::Closed),
        }
    }
}
