//! The allocation model of `shared/MODEL.md`: device, state, steps and the
//! pure transition function [`step`]. Every engine (scenario runner,
//! explorers, checker, time-driven simulator, fuzz targets) calls [`step`];
//! none changes a set by itself.
//!
//! The lifecycle rules (which request is allowed from which state, and what
//! state it leads to) live here. What a step does to the GPU sets is decided
//! by the [`Allocator`] under test, which is told of every action the
//! lifecycle allows.

use std::fmt;

use crate::invariant::{self, InvariantSet};
use crate::policy::Allocator;

/// Most GPUs a device may have (MODEL.md: 1 to 8).
pub const MAX_GPUS: u8 = 8;
/// Most VM slots a device may have (a device runs at most 24 VMs).
pub const MAX_VMS: usize = 24;

/// A set of GPUs as a bitmask: bit `i` is GPU `i`.
pub type GpuSet = u8;

/// The mask of every GPU of a device with `gpus` GPUs.
pub const fn all_gpus(gpus: u8) -> GpuSet {
    if gpus >= 8 { 0xff } else { (1u8 << gpus) - 1 }
}

/// The `n` lowest-numbered GPUs of `set`, or `None` when `set` has fewer.
#[inline]
pub fn lowest(set: GpuSet, n: u8) -> Option<GpuSet> {
    if crate::invariant::size_of_set(set) < n {
        return None;
    }
    let mut rest = set;
    let mut taken = 0;
    for _ in 0..n {
        let bit = rest & rest.wrapping_neg();
        taken |= bit;
        rest &= !bit;
    }
    Some(taken)
}

/// A device: its GPU count and the VM slots with their sizes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Device {
    gpus: u8,
    vms: u8,
    sizes: [u8; MAX_VMS],
    /// Whether `update-device` is among the enabled actions (MODEL.md
    /// "Device update"); off by default, so that every engine explores
    /// exactly the states of version 1 unless asked.
    updates: bool,
}

/// Why a [`Device`] could not be built.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DeviceError {
    #[error("a device has 1 to {MAX_GPUS} GPUs, not {0}")]
    Gpus(u8),
    #[error("a device has at most {MAX_VMS} VM slots, not {0}")]
    Vms(usize),
    #[error("VM slot {slot} asks for {size} GPUs but the device has only {gpus}")]
    Size { slot: usize, size: u8, gpus: u8 },
}

impl Device {
    /// A device with `gpus` GPUs and one VM slot per entry of `sizes`.
    pub fn new(gpus: u8, sizes: &[u8]) -> Result<Self, DeviceError> {
        if !(1..=MAX_GPUS).contains(&gpus) {
            return Err(DeviceError::Gpus(gpus));
        }
        if sizes.len() > MAX_VMS {
            return Err(DeviceError::Vms(sizes.len()));
        }
        let mut all = [0u8; MAX_VMS];
        for (slot, &size) in sizes.iter().enumerate() {
            if size > gpus {
                return Err(DeviceError::Size { slot, size, gpus });
            }
            all[slot] = size;
        }
        Ok(Device {
            gpus,
            vms: sizes.len() as u8,
            sizes: all,
            updates: false,
        })
    }

    /// A device with `vms` slots all of the same size.
    pub fn uniform(gpus: u8, vms: usize, size: u8) -> Result<Self, DeviceError> {
        if vms > MAX_VMS {
            return Err(DeviceError::Vms(vms));
        }
        Self::new(gpus, &vec![size; vms])
    }

    /// The same device with `update-device` enabled (or not) as an action
    /// of the explorers and the checker. A scenario or a simulation may
    /// update any device; this says whether engines that choose actions
    /// offer it.
    pub fn with_updates(mut self, updates: bool) -> Self {
        self.updates = updates;
        self
    }
    /// Whether `update-device` is an enabled action ([`Device::with_updates`]).
    pub fn updates(&self) -> bool {
        self.updates
    }
    pub fn gpus(&self) -> u8 {
        self.gpus
    }
    pub fn vms(&self) -> usize {
        usize::from(self.vms)
    }
    /// The size of every slot, in slot order.
    pub fn sizes(&self) -> &[u8] {
        &self.sizes[..self.vms()]
    }
    pub fn size(&self, vm: usize) -> u8 {
        self.sizes[vm]
    }
    pub fn all(&self) -> GpuSet {
        all_gpus(self.gpus)
    }
    /// The initial state: every GPU free, every VM absent, Kubernetes unconfigured.
    pub fn initial(&self) -> State {
        let mut vms = [Vm::ABSENT; MAX_VMS];
        for (vm, size) in vms.iter_mut().zip(self.sizes()) {
            vm.size = *size;
        }
        State {
            free: self.all(),
            kube_held: 0,
            memo: 0,
            kube: KubeState::Unconfigured,
            updating: false,
            vms,
        }
    }
}

/// The lifecycle state of a VM slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum VmState {
    Absent,
    Creating,
    Running,
    /// Stopping; `provisioned` says whether the stop keeps the GPUs.
    Stopping {
        provisioned: bool,
    },
    Stopped,
    StoppedProvisioned,
    Starting,
    Removing,
    Failed,
    /// Rebooting in a device update (version 2): it keeps `held[v]`.
    Rebooting,
}

impl VmState {
    /// Every state, in a fixed order (its [`VmState::index`]).
    pub const ALL: [VmState; 11] = [
        VmState::Absent,
        VmState::Creating,
        VmState::Running,
        VmState::Stopping { provisioned: false },
        VmState::Stopping { provisioned: true },
        VmState::Stopped,
        VmState::StoppedProvisioned,
        VmState::Starting,
        VmState::Removing,
        VmState::Failed,
        VmState::Rebooting,
    ];
    /// The names scenario files use (`stopping` for both kinds of stop).
    pub const NAMES: [&'static str; 10] = [
        "absent",
        "creating",
        "running",
        "stopping",
        "stopped",
        "stopped-provisioned",
        "starting",
        "removing",
        "failed",
        "rebooting",
    ];

    /// A small number unique to each state, `0..10`, for packing states.
    pub const fn index(self) -> u8 {
        match self {
            VmState::Absent => 0,
            VmState::Creating => 1,
            VmState::Running => 2,
            VmState::Stopping { provisioned: false } => 3,
            VmState::Stopping { provisioned: true } => 4,
            VmState::Stopped => 5,
            VmState::StoppedProvisioned => 6,
            VmState::Starting => 7,
            VmState::Removing => 8,
            VmState::Failed => 9,
            VmState::Rebooting => 10,
        }
    }

    /// The byte that represents this state in memory; distinct states have
    /// distinct bytes. Hot loops index small tables with it where a `match`
    /// on the state would compile to an indirect jump, mispredicted on
    /// almost every call when states come in random order.
    #[inline(always)]
    pub const fn repr_byte(self) -> u8 {
        // SAFETY: `VmState` is one byte (asserted below) and `Copy`; every
        // byte of a valid value is initialised, so reading it as `u8` is
        // sound. The value is only ever used as a table index.
        unsafe { std::mem::transmute::<VmState, u8>(self) }
    }

    /// [`VmState::index`] through a table (no branch).
    #[inline(always)]
    pub fn index_fast(self) -> u8 {
        LIFE_TABLES[usize::from(self.repr_byte())].index
    }

    /// The name scenario files use.
    pub fn name(self) -> &'static str {
        match self {
            VmState::Absent => "absent",
            VmState::Creating => "creating",
            VmState::Running => "running",
            VmState::Stopping { .. } => "stopping",
            VmState::Stopped => "stopped",
            VmState::StoppedProvisioned => "stopped-provisioned",
            VmState::Starting => "starting",
            VmState::Removing => "removing",
            VmState::Failed => "failed",
            VmState::Rebooting => "rebooting",
        }
    }

    /// The operation in flight in this state, if any.
    pub fn in_flight(self) -> Option<Op> {
        match self {
            VmState::Creating => Some(Op::CreateVm),
            VmState::Starting => Some(Op::StartVm),
            VmState::Stopping { .. } => Some(Op::StopVm),
            VmState::Removing => Some(Op::RemoveVm),
            _ => None,
        }
    }
}

const _: () = assert!(std::mem::size_of::<VmState>() == 1);

/// What hot loops need to know about a VM state, precomputed from the rules
/// in this file and MODEL.md (see [`LIFE_TABLES`]).
#[derive(Clone, Copy)]
pub(crate) struct LifeInfo {
    /// [`VmState::index`].
    pub index: u8,
    /// `holds-match-state`: all ones when the state must hold exactly its
    /// size (`creating`, `starting`, `running`, `stopped-provisioned`).
    pub must_hold_size: u8,
    /// All ones when the state must hold nothing (`absent`, `stopped`,
    /// `failed`).
    pub must_hold_none: u8,
    /// All ones when the state must hold exactly its size or nothing
    /// (`removing`: what it held when the remove began).
    pub size_or_none: u8,
    /// How many actions [`for_each_enabled`] offers for a VM in this state.
    pub enabled_len: u8,
    /// Those actions, with slot 0 (filled up with `takeover`).
    pub enabled: [Action; 3],
}

/// [`LifeInfo`] by [`VmState::repr_byte`]; bytes that are no state hold
/// zeros and are never read. Built at compile time from [`VmState::ALL`].
pub(crate) static LIFE_TABLES: [LifeInfo; 256] = {
    let none = Action::takeover();
    let empty = LifeInfo {
        index: 0,
        must_hold_size: 0,
        must_hold_none: 0,
        size_or_none: 0,
        enabled_len: 0,
        enabled: [none; 3],
    };
    let mut table = [empty; 256];
    let mut i = 0;
    while i < VmState::ALL.len() {
        let life = VmState::ALL[i];
        // `holds-match-state` as version 2 widens it: `stopping` keeps its
        // GPUs until the stop's end step, `rebooting` is like `running`,
        // and `removing` holds what it held when the remove began.
        let (must_hold_size, must_hold_none, size_or_none) = match life {
            VmState::Creating
            | VmState::Starting
            | VmState::Running
            | VmState::StoppedProvisioned
            | VmState::Stopping { .. }
            | VmState::Rebooting => (0xff, 0, 0),
            VmState::Absent | VmState::Stopped | VmState::Failed => (0, 0xff, 0),
            VmState::Removing => (0, 0, 0xff),
        };
        // The same actions, in the same order, as MODEL.md's request table:
        // every request that would not be rejected, or the end step of the
        // operation in flight.
        let (enabled_len, enabled) = match life {
            VmState::Absent => (1, [Action::begin(Op::CreateVm, 0), none, none]),
            VmState::Running => (
                3,
                [
                    Action::begin(Op::StopVm, 0),
                    Action::begin(Op::StopVm, 0).with_option(StepOption::Provisioned),
                    Action::begin(Op::RemoveVm, 0),
                ],
            ),
            VmState::Stopped | VmState::StoppedProvisioned => (
                2,
                [
                    Action::begin(Op::StartVm, 0),
                    Action::begin(Op::RemoveVm, 0),
                    none,
                ],
            ),
            VmState::Failed => (1, [Action::begin(Op::RemoveVm, 0), none, none]),
            VmState::Creating => (1, [Action::end(Op::CreateVm, 0), none, none]),
            VmState::Starting => (1, [Action::end(Op::StartVm, 0), none, none]),
            VmState::Stopping { .. } => (1, [Action::end(Op::StopVm, 0), none, none]),
            VmState::Removing => (1, [Action::end(Op::RemoveVm, 0), none, none]),
            // Only the update's end step, a device action.
            VmState::Rebooting => (0, [none, none, none]),
        };
        table[life.repr_byte() as usize] = LifeInfo {
            index: life.index(),
            must_hold_size,
            must_hold_none,
            size_or_none,
            enabled_len,
            enabled,
        };
        i += 1;
    }
    table
};

impl fmt::Display for VmState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VmState::Stopping { provisioned: true } => f.write_str("stopping(provisioned)"),
            other => f.write_str(other.name()),
        }
    }
}

/// Kubernetes' lifecycle state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KubeState {
    Unconfigured,
    Configuring,
    Configured,
    /// Rebooting in a device update (version 2): it keeps `held[kube]`.
    Rebooting,
}

impl KubeState {
    pub const ALL: [KubeState; 4] = [
        KubeState::Unconfigured,
        KubeState::Configuring,
        KubeState::Configured,
        KubeState::Rebooting,
    ];
    pub fn name(self) -> &'static str {
        match self {
            KubeState::Unconfigured => "unconfigured",
            KubeState::Configuring => "configuring",
            KubeState::Configured => "configured",
            KubeState::Rebooting => "rebooting",
        }
    }
    /// Whether its configure step has ended (`configured`, or rebooting
    /// after it): from then on it may hold GPUs and must never take one.
    #[inline(always)]
    pub fn is_set_up(self) -> bool {
        matches!(self, KubeState::Configured | KubeState::Rebooting)
    }
    pub const fn index(self) -> u8 {
        self as u8
    }
}

impl fmt::Display for KubeState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One VM slot: its lifecycle state, the GPUs it holds and its size.
///
/// The size is the slot's size from the [`Device`], replaced by a create's
/// `gpus=N` option; exploration never uses that option, so there it is a
/// constant and not part of a state's identity (see [`State::key`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(C)]
pub struct Vm {
    pub life: VmState,
    pub held: GpuSet,
    pub size: u8,
}

impl Vm {
    pub const ABSENT: Vm = Vm {
        life: VmState::Absent,
        held: 0,
        size: 0,
    };
}

/// A model state (MODEL.md "States and actions"). Small and `Copy`.
///
/// The sets are kept separately on purpose: a faulty policy can make them
/// overlap or lose a GPU, and the invariants must be able to see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(C)]
pub struct State {
    pub free: GpuSet,
    pub kube_held: GpuSet,
    /// The allocator's own state ([`Allocator::memo_bits`] low bits; 0
    /// in the initial state): `snapshot` keeps its copy of `free` here
    /// while configuring, an external allocator the number of its exported
    /// state. Part of the state's identity.
    pub memo: u32,
    pub kube: KubeState,
    /// An update is in flight (version 2: the device is `updating`, not
    /// `idle`).
    pub updating: bool,
    pub vms: [Vm; MAX_VMS],
}

/// A [`Vm`] is three bytes with no padding (see [`State::vm_bytes`]).
const _: () = assert!(std::mem::size_of::<Vm>() == 3 && std::mem::align_of::<Vm>() == 1);

impl State {
    /// The VM slots as raw bytes, three a slot (the state's byte, `held`,
    /// `size`): two slots are equal exactly when their bytes are, so a
    /// packer can see which slots a step changed with a few word compares.
    #[inline(always)]
    pub fn vm_bytes(&self) -> &[u8; 3 * MAX_VMS] {
        // SAFETY: `Vm` is `repr(C)` with three one-byte fields (`VmState`
        // is one byte, asserted next to it), so it has size 3, alignment 1
        // and no padding (asserted above), and `[Vm; MAX_VMS]` is exactly
        // `3 * MAX_VMS` initialised bytes. The reference borrows `self`.
        unsafe { &*(&self.vms as *const [Vm; MAX_VMS]).cast::<[u8; 3 * MAX_VMS]>() }
    }

    /// Take the `n` lowest-numbered free GPUs into `held[vm]`; false (and no
    /// change) when `free` has fewer than `n`.
    #[inline]
    pub fn claim_lowest(&mut self, vm: usize, n: u8) -> bool {
        match lowest(self.free, n) {
            Some(taken) => {
                self.free &= !taken;
                self.vms[vm].held |= taken;
                true
            }
            None => false,
        }
    }

    /// Move `held[vm]` to `free` (set union; looks nowhere else).
    #[inline]
    pub fn release_to_free(&mut self, vm: usize) {
        self.free |= self.vms[vm].held;
        self.vms[vm].held = 0;
    }

    /// Move every free GPU to `held[kube]`.
    #[inline]
    pub fn kube_takes_free(&mut self) {
        self.kube_held |= self.free;
        self.free = 0;
    }

    /// The identity of this state for a device with `gpus` GPUs and `vms`
    /// slots, packed into 128 bits: `free`, `held[kube]`, the low `G` bits of `memo`,
    /// Kubernetes' state and each VM's state and `held`. Two states of the
    /// same device are the same (MODEL.md) exactly when their keys are equal.
    /// `None` when the device's states need more than 128 bits
    /// (`3G + 2 + V(4 + G)`: for example G=2 with 21 slots or more).
    pub fn key(&self, gpus: u8, vms: usize) -> Option<u128> {
        let g = u32::from(gpus);
        let bits = 3 * g + 2 + u32::try_from(vms).ok()?.checked_mul(4 + g)?;
        if bits > 128 || vms > MAX_VMS {
            return None;
        }
        let mut key: u128 = u128::from(self.free);
        key = (key << g) | u128::from(self.kube_held);
        key = (key << g) | u128::from(self.memo & u32::from(all_gpus(gpus)));
        key = (key << 2) | u128::from(self.kube.index());
        for vm in &self.vms[..vms] {
            key = (key << 4) | u128::from(vm.life.index_fast());
            key = (key << g) | u128::from(vm.held);
        }
        Some(key)
    }

    /// Every VM slot's GPUs and `held[kube]` and `free`, in one union.
    pub fn union(&self, vms: usize) -> GpuSet {
        self.vms[..vms]
            .iter()
            .fold(self.free | self.kube_held, |acc, vm| acc | vm.held)
    }

    /// One line: `gpu0=a gpu1=kube | a:running b:stopped | kube:configured`.
    pub fn render(&self, device: &Device, names: &VmNames) -> String {
        let mut out = String::new();
        for gpu in 0..device.gpus() {
            if gpu > 0 {
                out.push(' ');
            }
            out.push_str(&format!("gpu{gpu}={}", self.owner(device, names, gpu)));
        }
        out.push_str(" |");
        for (i, vm) in self.vms[..device.vms()].iter().enumerate() {
            out.push_str(&format!(" {}:{}", names.name(i), vm.life));
        }
        out.push_str(&format!(" | kube:{}", self.kube));
        out
    }

    /// Owner of one GPU as scenario files write it: `free`, `kube`, a VM
    /// name, several joined by `+` (VMs, then `kube`, then `free`), or `none`.
    pub fn owner(&self, device: &Device, names: &VmNames, gpu: u8) -> String {
        let bit = 1u8 << gpu;
        let mut owners: Vec<&str> = Vec::new();
        for (i, vm) in self.vms[..device.vms()].iter().enumerate() {
            if vm.held & bit != 0 {
                owners.push(names.name(i));
            }
        }
        if self.kube_held & bit != 0 {
            owners.push("kube");
        }
        if self.free & bit != 0 {
            owners.push("free");
        }
        if owners.is_empty() {
            "none".to_string()
        } else {
            owners.join("+")
        }
    }
}

/// The names of VM slots: given by a scenario file, or `a`, `b`, … for
/// exploration (slot 26 onwards: `vm26`, …).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct VmNames(Vec<String>);

impl VmNames {
    pub fn new(names: Vec<String>) -> Self {
        VmNames(names)
    }
    /// `a`, `b`, … for `n` slots.
    pub fn letters(n: usize) -> Self {
        VmNames((0..n).map(default_vm_name).collect())
    }
    pub fn name(&self, slot: usize) -> &str {
        &self.0[slot]
    }
    pub fn slot(&self, name: &str) -> Option<usize> {
        self.0.iter().position(|n| n == name)
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn as_slice(&self) -> &[String] {
        &self.0
    }
}

/// The default name of slot `i`: `a` … `z`, then `vm26`, ….
pub fn default_vm_name(i: usize) -> String {
    if i < 26 {
        char::from(b'a' + i as u8).to_string()
    } else {
        format!("vm{i}")
    }
}

/// An operation of the step syntax.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Op {
    CreateVm,
    StartVm,
    StopVm,
    RemoveVm,
    ConfigureKube,
    /// The `legacy` policy's internal event.
    KubeTakeover,
    /// A device update (version 2): reboots the VMs and Kubernetes.
    UpdateDevice,
}

impl Op {
    pub const ALL: [Op; 7] = [
        Op::CreateVm,
        Op::StartVm,
        Op::StopVm,
        Op::RemoveVm,
        Op::ConfigureKube,
        Op::KubeTakeover,
        Op::UpdateDevice,
    ];
    pub fn name(self) -> &'static str {
        match self {
            Op::CreateVm => "create-vm",
            Op::StartVm => "start-vm",
            Op::StopVm => "stop-vm",
            Op::RemoveVm => "remove-vm",
            Op::ConfigureKube => "configure-kube",
            Op::KubeTakeover => "kube-takeover",
            Op::UpdateDevice => "update-device",
        }
    }
    pub fn from_name(name: &str) -> Option<Op> {
        Op::ALL.into_iter().find(|op| op.name() == name)
    }
    /// Whether the operation names a VM.
    pub fn takes_vm(self) -> bool {
        matches!(self, Op::CreateVm | Op::StartVm | Op::StopVm | Op::RemoveVm)
    }
    /// Whether the operation is a request (has begin and end steps) rather
    /// than an internal event.
    pub fn is_request(self) -> bool {
        self != Op::KubeTakeover
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Begin or end of a request, or an internal event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Phase {
    Begin,
    End,
    Event,
}

/// The option of a begin step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum StepOption {
    #[default]
    None,
    /// `stop-vm v provisioned`: stop and keep the GPUs.
    Provisioned,
    /// `create-vm v gpus=N`: the size of this create.
    Gpus(u8),
}

/// One model action: a begin step, an end step or an internal event.
/// `vm` is a slot index; it is 0 and ignored for operations without a VM.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Action {
    pub phase: Phase,
    pub op: Op,
    pub vm: u8,
    pub option: StepOption,
}

impl Action {
    pub const fn begin(op: Op, vm: u8) -> Action {
        Action {
            phase: Phase::Begin,
            op,
            vm,
            option: StepOption::None,
        }
    }
    pub const fn end(op: Op, vm: u8) -> Action {
        Action {
            phase: Phase::End,
            op,
            vm,
            option: StepOption::None,
        }
    }
    pub const fn takeover() -> Action {
        Action {
            phase: Phase::Event,
            op: Op::KubeTakeover,
            vm: 0,
            option: StepOption::None,
        }
    }
    pub const fn with_option(mut self, option: StepOption) -> Action {
        self.option = option;
        self
    }

    /// The action in step syntax, e.g. `begin stop-vm a provisioned`.
    pub fn render(&self, names: &VmNames) -> String {
        let mut out = String::new();
        match self.phase {
            Phase::Begin => out.push_str("begin "),
            Phase::End => out.push_str("end "),
            Phase::Event => {}
        }
        out.push_str(self.op.name());
        if self.op.takes_vm() {
            out.push(' ');
            out.push_str(names.name(usize::from(self.vm)));
        }
        match self.option {
            StepOption::None => {}
            StepOption::Provisioned => out.push_str(" provisioned"),
            StepOption::Gpus(n) => out.push_str(&format!(" gpus={n}")),
        }
        out
    }
}

/// The outcome of a step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Outcome {
    Ok,
    NoGpu,
    Rejected,
}

impl Outcome {
    pub const ALL: [Outcome; 3] = [Outcome::Ok, Outcome::NoGpu, Outcome::Rejected];
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::NoGpu => "no-gpu",
            Outcome::Rejected => "rejected",
        }
    }
    pub fn from_name(name: &str) -> Option<Outcome> {
        Outcome::ALL.into_iter().find(|o| o.name() == name)
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What one step did: the state after it, its outcome and the invariants it
/// violated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transition {
    pub state: State,
    pub outcome: Outcome,
    pub violations: InvariantSet,
}

/// The transition function: apply `action` to `state` under `policy` and
/// check every invariant. Pure; a rejected action leaves the state as it was.
#[inline]
pub fn step<P: Allocator + ?Sized>(
    policy: &P,
    device: &Device,
    state: &State,
    action: Action,
) -> Transition {
    let (next, outcome) = apply(policy, device, state, action);
    let violations = invariant::check(device, state, &next);
    Transition {
        state: next,
        outcome,
        violations,
    }
}

/// [`step`] on `state` itself: the state becomes the one after the step;
/// returns the outcome and the violated invariants, exactly as [`step`]
/// would. For engines that go on from the new state and never look back.
#[inline(always)]
pub fn step_in_place<P: Allocator + ?Sized>(
    policy: &P,
    device: &Device,
    state: &mut State,
    action: Action,
) -> (Outcome, InvariantSet) {
    step_in_place_of(policy, device, state, action, device.vms())
}

/// [`step_in_place`] with the device's number of slots passed in (see
/// [`invariant::check_state_of`]).
#[inline(always)]
pub(crate) fn step_in_place_of<P: Allocator + ?Sized>(
    policy: &P,
    device: &Device,
    state: &mut State,
    action: Action,
    vms: usize,
) -> (Outcome, InvariantSet) {
    if state.updating {
        return step_while_updating(policy, device, state, action, vms);
    }
    // All the step invariant needs of the state before the step (no update
    // ends here: `update-restarts-vms` is not judged).
    let before_kube = state.kube;
    let before_kube_held = state.kube_held;
    let outcome = apply_in_place(policy, device, state, action);
    let violations = invariant::check_state_of(device, state, vms).union(
        invariant::check_step_parts(before_kube, before_kube_held, state.kube_held),
    );
    (outcome, violations)
}

/// [`step_in_place_of`] from a state with an update in flight, kept out of
/// the common path.
#[cold]
#[inline(never)]
fn step_while_updating<P: Allocator + ?Sized>(
    policy: &P,
    device: &Device,
    state: &mut State,
    action: Action,
    vms: usize,
) -> (Outcome, InvariantSet) {
    let before = *state;
    let outcome = apply_in_place(policy, device, state, action);
    let violations =
        invariant::check_state_of(device, state, vms).union(invariant::check_step(&before, state));
    (outcome, violations)
}

/// The transition without the invariant check.
#[inline]
pub fn apply<P: Allocator + ?Sized>(
    policy: &P,
    device: &Device,
    state: &State,
    action: Action,
) -> (State, Outcome) {
    let mut next = *state;
    let outcome = apply_in_place(policy, device, &mut next, action);
    (next, outcome)
}

/// [`apply`] on `state` itself: the state becomes the one after the step
/// (and stays as it was when the action is rejected). Engines that do not
/// need the state before the step save the copies [`apply`] makes.
#[inline(always)]
pub fn apply_in_place<P: Allocator + ?Sized>(
    policy: &P,
    device: &Device,
    next: &mut State,
    action: Action,
) -> Outcome {
    let vm = usize::from(action.vm);
    if action.op.takes_vm() && vm >= device.vms() {
        return Outcome::Rejected;
    }
    if next.updating {
        // While an update is in flight every other request and every
        // internal event is rejected.
        return end_update(policy, device, next, action);
    }
    // Every rejection below is decided before anything changes; the
    // allocator sees each allowed action with the lifecycle as it was.
    match (action.phase, action.op) {
        (Phase::Begin, Op::CreateVm) => {
            if next.vms[vm].life != VmState::Absent {
                return Outcome::Rejected;
            }
            next.vms[vm].size = match action.option {
                StepOption::Gpus(n) => n,
                _ => device.size(vm),
            };
            let outcome = claim_outcome(policy.apply(device, next, action));
            next.vms[vm].life = if outcome == Outcome::Ok {
                VmState::Creating
            } else {
                VmState::Failed
            };
            outcome
        }
        (Phase::Begin, Op::StartVm) => match next.vms[vm].life {
            VmState::Stopped => {
                let outcome = claim_outcome(policy.apply(device, next, action));
                if outcome == Outcome::Ok {
                    next.vms[vm].life = VmState::Starting;
                }
                // Otherwise the VM stays stopped; whatever the allocator
                // did is kept.
                outcome
            }
            VmState::StoppedProvisioned => {
                policy.apply(device, next, action);
                next.vms[vm].life = VmState::Starting;
                Outcome::Ok
            }
            _ => Outcome::Rejected,
        },
        (Phase::Begin, Op::StopVm) => {
            if next.vms[vm].life != VmState::Running {
                return Outcome::Rejected;
            }
            policy.apply(device, next, action);
            let provisioned = action.option == StepOption::Provisioned;
            next.vms[vm].life = VmState::Stopping { provisioned };
            Outcome::Ok
        }
        (Phase::Begin, Op::RemoveVm) => match next.vms[vm].life {
            VmState::Running | VmState::Stopped | VmState::StoppedProvisioned | VmState::Failed => {
                policy.apply(device, next, action);
                next.vms[vm].life = VmState::Removing;
                Outcome::Ok
            }
            _ => Outcome::Rejected,
        },
        (Phase::Begin, Op::ConfigureKube) => {
            if next.kube != KubeState::Unconfigured {
                return Outcome::Rejected;
            }
            policy.apply(device, next, action);
            next.kube = KubeState::Configuring;
            Outcome::Ok
        }
        (Phase::End, op) if op.takes_vm() => {
            let life = next.vms[vm].life;
            if life.in_flight() != Some(op) {
                return Outcome::Rejected;
            }
            policy.apply(device, next, action);
            next.vms[vm].life = match life {
                VmState::Creating | VmState::Starting => VmState::Running,
                VmState::Stopping { provisioned: true } => VmState::StoppedProvisioned,
                VmState::Stopping { provisioned: false } => VmState::Stopped,
                VmState::Removing => VmState::Absent,
                _ => unreachable!("in_flight() is Some only for the four states above"),
            };
            Outcome::Ok
        }
        (Phase::End, Op::ConfigureKube) => {
            if next.kube != KubeState::Configuring {
                return Outcome::Rejected;
            }
            policy.apply(device, next, action);
            next.kube = KubeState::Configured;
            Outcome::Ok
        }
        (Phase::Event, Op::KubeTakeover) => {
            if !policy.takeover_enabled(device, next) {
                return Outcome::Rejected;
            }
            policy.apply(device, next, action);
            Outcome::Ok
        }
        (Phase::Begin, Op::UpdateDevice) => {
            if !update_allowed(device, next) {
                return Outcome::Rejected;
            }
            policy.apply(device, next, action);
            for v in &mut next.vms[..device.vms()] {
                if matches!(v.life, VmState::Running | VmState::StoppedProvisioned) {
                    v.life = VmState::Rebooting;
                }
            }
            if next.kube == KubeState::Configured {
                next.kube = KubeState::Rebooting;
            }
            next.updating = true;
            Outcome::Ok
        }
        // Malformed combinations (an end of kube-takeover, a begin of an
        // event, an event of a request) are rejected, never reinterpreted.
        _ => Outcome::Rejected,
    }
}

/// Whether `op`'s request is in flight in `state` (for slot `vm` when it
/// names a VM): what decides whether a plain step's begin is followed by
/// its end step.
#[inline]
pub fn in_flight(state: &State, op: Op, vm: u8) -> bool {
    match op {
        Op::ConfigureKube => state.kube == KubeState::Configuring,
        Op::UpdateDevice => state.updating,
        _ => op.takes_vm() && state.vms[usize::from(vm)].life.in_flight() == Some(op),
    }
}

/// Whether `action`, taken in `state`, is a claim: the begin of
/// `create-vm`, or of `start-vm` from `stopped` (the actions whose outcome
/// the allocator decides).
#[inline]
pub fn is_claim(state: &State, action: Action) -> bool {
    action.phase == Phase::Begin
        && match action.op {
            Op::CreateVm => true,
            Op::StartVm => state.vms[usize::from(action.vm)].life == VmState::Stopped,
            _ => false,
        }
}

/// Whether `update-device` may begin: no update in flight, no VM with an
/// operation in flight, Kubernetes not configuring.
#[inline]
pub fn update_allowed(device: &Device, state: &State) -> bool {
    !state.updating
        && state.kube != KubeState::Configuring
        && state.vms[..device.vms()]
            .iter()
            .all(|v| v.life.in_flight().is_none())
}

/// The one action allowed while an update is in flight: its end step.
/// Every rebooting VM comes back `running` when the allocator left it its
/// GPUs (it holds some, or needs none), and `stopped` otherwise (the
/// managed update flow keeps them; `unmanaged-update` may not give them
/// back); Kubernetes is `configured` again.
#[cold]
fn end_update<P: Allocator + ?Sized>(
    policy: &P,
    device: &Device,
    next: &mut State,
    action: Action,
) -> Outcome {
    if (action.phase, action.op) != (Phase::End, Op::UpdateDevice) {
        return Outcome::Rejected;
    }
    policy.apply(device, next, action);
    for v in &mut next.vms[..device.vms()] {
        if v.life == VmState::Rebooting {
            v.life = if v.held != 0 || v.size == 0 {
                VmState::Running
            } else {
                VmState::Stopped
            };
        }
    }
    if next.kube == KubeState::Rebooting {
        next.kube = KubeState::Configured;
    }
    next.updating = false;
    Outcome::Ok
}

/// A claim's outcome as the allocator gave it: `ok`, or the failure it
/// named (`rejected` is the model's to give, so it reads as `no-gpu`).
#[inline(always)]
fn claim_outcome(outcome: Outcome) -> Outcome {
    match outcome {
        Outcome::Rejected => Outcome::NoGpu,
        other => other,
    }
}

/// Calls `f` with every action enabled in `state` (MODEL.md): every request
/// that would not be rejected (a `no-gpu` outcome is an action too), the end
/// step of every operation in flight, and the policy's internal events. The
/// order is fixed: VMs in slot order, then Kubernetes, then events.
#[inline]
pub fn for_each_enabled<P: Allocator + ?Sized>(
    policy: &P,
    device: &Device,
    state: &State,
    mut f: impl FnMut(Action),
) {
    if state.updating {
        // Everything else is rejected while an update is in flight.
        f(Action::end(Op::UpdateDevice, 0));
        return;
    }
    for (i, vm) in state.vms[..device.vms()].iter().enumerate() {
        // A table of the VM's requests ([`LIFE_TABLES`], built from the
        // request table) instead of a `match`: no indirect jump per VM.
        let info = &LIFE_TABLES[usize::from(vm.life.repr_byte())];
        for a in &info.enabled[..usize::from(info.enabled_len)] {
            f(Action { vm: i as u8, ..*a });
        }
    }
    match state.kube {
        KubeState::Unconfigured => f(Action::begin(Op::ConfigureKube, 0)),
        KubeState::Configuring => f(Action::end(Op::ConfigureKube, 0)),
        KubeState::Configured | KubeState::Rebooting => {}
    }
    if device.updates() && update_allowed(device, state) {
        f(Action::begin(Op::UpdateDevice, 0));
    }
    if policy.takeover_enabled(device, state) {
        f(Action::takeover());
    }
}

/// Most actions enabled in one state: three per running VM, the configure
/// step, the update and the takeover event.
pub const MAX_ENABLED: usize = 3 * MAX_VMS + 3;

/// The actions [`for_each_enabled`] would give, in the same order, written
/// to the front of `buf`; returns how many. Without a branch per VM (their
/// counts vary at random in a walk, so a loop over them mispredicts): each
/// VM's three table entries are written and the count advances by how many
/// of them it has, the next VM's overwriting the rest.
#[inline]
pub fn enabled_into<P: Allocator + ?Sized>(
    policy: &P,
    device: &Device,
    state: &State,
    buf: &mut [Action; MAX_ENABLED],
) -> usize {
    enabled_into_of(policy, device, state, buf, device.vms())
}

/// [`enabled_into`] with the device's number of slots passed in (see
/// [`invariant::check_state_of`]).
#[inline(always)]
pub(crate) fn enabled_into_of<P: Allocator + ?Sized>(
    policy: &P,
    device: &Device,
    state: &State,
    buf: &mut [Action; MAX_ENABLED],
    vms: usize,
) -> usize {
    debug_assert_eq!(vms, device.vms());
    if device.updates() | state.updating {
        // Updates change every slot; this path is kept out of the loop
        // below, which devices without updates run.
        let mut n = 0;
        for_each_enabled(policy, device, state, |a| {
            buf[n] = a;
            n += 1;
        });
        return n;
    }
    let mut n = 0;
    for (i, vm) in state.vms[..vms].iter().enumerate() {
        let info = &LIFE_TABLES[usize::from(vm.life.repr_byte())];
        // n <= 3 * i here, so n + 3 <= 3 * MAX_VMS.
        let out = &mut buf[n..n + 3];
        for (slot, a) in out.iter_mut().zip(&info.enabled) {
            *slot = Action { vm: i as u8, ..*a };
        }
        n += usize::from(info.enabled_len);
    }
    buf[n] = KUBE_ACTIONS[usize::from(state.kube.index().min(2))];
    n += usize::from(state.kube.index() < 2);
    buf[n] = Action::takeover();
    n += usize::from(policy.takeover_enabled(device, state));
    n
}

/// How many kinds of action [`for_each_enabled_kind`] tells apart: three
/// per VM state (a VM in one state has at most three requests), then
/// Kubernetes' begin and end of configure, `kube-takeover`, and the begin
/// and end of `update-device`.
pub const ACTION_KINDS: usize = 3 * VmState::ALL.len() + 5;

/// The first kind that is not a VM's action.
const KUBE_KINDS: usize = 3 * VmState::ALL.len();

/// The action of kind `kind` ([`for_each_enabled_kind`]) for slot `vm`
/// (ignored for Kubernetes' actions and events).
#[inline]
pub fn kind_action(kind: usize, vm: u8) -> Action {
    if kind < KUBE_KINDS {
        let life = VmState::ALL[kind / 3];
        Action {
            vm,
            ..LIFE_TABLES[usize::from(life.repr_byte())].enabled[kind % 3]
        }
    } else {
        KUBE_ACTIONS[kind - KUBE_KINDS]
    }
}

/// Whether actions of kind `kind` belong to a VM slot.
#[inline(always)]
pub fn kind_has_vm(kind: usize) -> bool {
    kind < KUBE_KINDS
}

/// The actions of [`enabled_into`], in the same order, each as its kind
/// and slot: `f(kind, vm)` stands for [`kind_action`]`(kind, vm)`. Every
/// action of one kind takes the same path through [`apply_in_place`], so
/// an engine that applies a state's actions grouped by kind takes each
/// branch the same way many times in a row.
#[inline]
pub fn for_each_enabled_kind<P: Allocator + ?Sized>(
    policy: &P,
    device: &Device,
    state: &State,
    mut f: impl FnMut(usize, u8),
) {
    if state.updating {
        f(KUBE_KINDS + 4, 0);
        return;
    }
    for (i, vm) in state.vms[..device.vms()].iter().enumerate() {
        let info = &LIFE_TABLES[usize::from(vm.life.repr_byte())];
        let first = 3 * usize::from(info.index);
        for j in 0..usize::from(info.enabled_len) {
            f(first + j, i as u8);
        }
    }
    if state.kube.index() < 2 {
        f(KUBE_KINDS + usize::from(state.kube.index()), 0);
    }
    if device.updates() && update_allowed(device, state) {
        f(KUBE_KINDS + 3, 0);
    }
    if policy.takeover_enabled(device, state) {
        f(KUBE_KINDS + 2, 0);
    }
}

/// How many actions are enabled in `state`: [`enabled_into`]'s count,
/// without the actions.
#[inline]
pub fn enabled_count<P: Allocator + ?Sized>(policy: &P, device: &Device, state: &State) -> usize {
    if state.updating {
        return 1;
    }
    let vms: usize = state.vms[..device.vms()]
        .iter()
        .map(|vm| usize::from(LIFE_TABLES[usize::from(vm.life.repr_byte())].enabled_len))
        .sum();
    vms + usize::from(state.kube.index() < 2)
        + usize::from(device.updates() && update_allowed(device, state))
        + usize::from(policy.takeover_enabled(device, state))
}

/// The actions that are not a VM's, by kind from [`KUBE_KINDS`]:
/// Kubernetes' request in its first two states (by [`KubeState::index`];
/// a `configured` Kubernetes has none, and its entry, the event, is never
/// counted as its request), the event, and the update's two steps.
const KUBE_ACTIONS: [Action; 5] = [
    Action::begin(Op::ConfigureKube, 0),
    Action::end(Op::ConfigureKube, 0),
    Action::takeover(),
    Action::begin(Op::UpdateDevice, 0),
    Action::end(Op::UpdateDevice, 0),
];

/// The actions enabled in `state`, collected (see [`for_each_enabled`]).
pub fn enabled<P: Allocator + ?Sized>(policy: &P, device: &Device, state: &State) -> Vec<Action> {
    let mut out = Vec::new();
    for_each_enabled(policy, device, state, |a| out.push(a));
    out
}
