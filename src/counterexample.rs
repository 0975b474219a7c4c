//! Turning a failing trace into a scenario file that expects its violation,
//! so that whatever an explorer, checker or fuzzer finds can be read,
//! replayed with `gpuclaim run` and kept in `scenarios/`.

use std::collections::BTreeMap;

use crate::invariant::Invariant;
use crate::model::{Action, Device, VmNames, VmState};
use crate::policy::Allocator;
use crate::scenario::{Expect, Scenario};
use crate::trace::{self, run_actions};

/// A scenario that runs `actions` on `device` under `policy` and expects
/// exactly what they produce: every step's outcome, the final owner of each
/// GPU, Kubernetes' and each VM's state, and the invariants that fired.
/// VM slots are named `a`, `b`, … as in exploration; only the VMs the trace
/// uses are listed, each with its size.
pub fn scenario_from_actions<P: Allocator + ?Sized>(
    policy: &P,
    device: &Device,
    actions: &[Action],
    name: &str,
    source: &str,
) -> Scenario {
    let names = VmNames::letters(device.vms());
    let run = run_actions(policy, device, &names, actions);
    let steps = trace::trace_to_steps(&run.trace, &names);
    let mut vms = BTreeMap::new();
    for a in actions {
        if a.op.takes_vm() && usize::from(a.vm) < device.vms() {
            vms.insert(
                names.name(usize::from(a.vm)).to_string(),
                device.size(usize::from(a.vm)),
            );
        }
    }
    let mut scenario = Scenario {
        name: name.to_string(),
        source: Some(source.to_string()),
        gpus: device.gpus(),
        policies: Some(vec![policy.name().to_string()]),
        steps,
        vms,
        expect: None,
        expect_for: BTreeMap::new(),
    };
    // Run the scenario as `gpuclaim run` will, and expect what it gives.
    let sdevice = scenario.device();
    let snames = scenario.vm_names();
    let (srun, outcomes) = trace::run_steps(policy, &sdevice, &snames, &scenario.steps);
    let vm = snames
        .as_slice()
        .iter()
        .enumerate()
        .map(|(i, n)| (n.clone(), by_name(srun.state.vms[i].life)))
        .collect();
    scenario.expect = Some(Expect {
        outcomes: Some(outcomes),
        kube: Some(srun.state.kube),
        // Said only mid-update, so that files without updates stay as
        // version 1 wrote them.
        updating: srun.state.updating.then_some(true),
        kube_gpus: Some(srun.state.kube_held.count_ones() as u8),
        gpus: Some(
            (0..sdevice.gpus())
                .map(|g| srun.state.owner(&sdevice, &snames, g))
                .collect(),
        ),
        vm,
        violations: Some(srun.fired.iter().collect::<Vec<Invariant>>()),
    });
    debug_assert_eq!(srun.fired, run.fired, "the steps run exactly the actions");
    scenario
}

/// The state a scenario file's name for `life` reads back as: both kinds
/// of stop are written `stopping`, which reads as the deallocating one, so
/// the scenario written equals the scenario read back.
fn by_name(life: VmState) -> VmState {
    match life {
        VmState::Stopping { .. } => VmState::Stopping { provisioned: false },
        other => other,
    }
}

/// A file name for a counterexample: `POLICY-INVARIANT-HASH.toml`, where
/// the hash (FNV-1a of the device, the GPUs and the VM sizes, and of the
/// step text) tells different scenarios apart, so that the same trace on
/// two devices gets two files, and is the same for the same scenario on
/// every machine.
pub fn file_name(policy: &str, invariant: Invariant, scenario: &Scenario) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |text: &str| {
        for b in text.bytes().chain([b'\n']) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    feed(&format!("gpus={}", scenario.gpus));
    for (vm, size) in &scenario.vms {
        feed(&format!("vm {vm}={size}"));
    }
    for s in &scenario.steps {
        feed(&s.to_string());
    }
    format!("{policy}-{}-{:08x}.toml", invariant.name(), h as u32)
}
