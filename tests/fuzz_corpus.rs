//! The committed fuzz corpus (`fuzz/corpus/TARGET/`) and every regression
//! input a campaign found (`fuzz/regressions/TARGET/`), replayed through the
//! same library functions as the cargo-fuzz targets, on stable, with no
//! cargo-fuzz: per target, the exact expected result.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use gpuclaim::fuzzing::{
    self, Checked, Conversion, Failure, Interleaving, Target, decode_interleaving,
    decode_interleaving_v2, encode_interleaving, encode_interleaving_v2,
};
use gpuclaim::model::{Action, Device, Op, StepOption};
use gpuclaim::scenario;
use gpuclaim::{Builtin, Invariant, InvariantSet, Registry};

fn inputs(kind: &str, target: Target) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join(kind)
        .join(target.name());
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut out: Vec<(PathBuf, Vec<u8>)> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect();
    out.sort();
    out
}

/// Every input of every interleaving target, corpus and regressions: they
/// share one format, so each is replayed under every policy.
fn all_interleaving_inputs() -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for t in Target::ALL.into_iter().filter(|t| t.policy().is_some()) {
        out.extend(inputs("corpus", t));
        out.extend(inputs("regressions", t));
    }
    out
}

#[test]
fn the_committed_corpus_has_seeds_for_every_target() {
    for t in Target::ALL {
        assert!(
            inputs("corpus", t).len() >= 10,
            "{t}: fewer than 10 seeds in fuzz/corpus/{t}"
        );
    }
}

#[test]
fn fixed_violates_nothing_on_any_interleaving_input() {
    let all = all_interleaving_inputs();
    assert!(all.len() >= 40, "{} inputs", all.len());
    for (path, bytes) in all {
        let result = Target::InterleavingFixed.check(&bytes);
        assert!(
            matches!(result, Ok(Checked::Ran { .. })),
            "{}: {result:?}",
            path.display()
        );
    }
}

/// Under `legacy` and `snapshot`, any input fires at most the policy's own
/// invariant; every regression input of their target fires exactly it.
#[test]
fn faulty_policies_fire_only_their_own_invariant() {
    for target in [Target::InterleavingLegacy, Target::InterleavingSnapshot] {
        let policy = target.policy().unwrap();
        let own = target.expected_violation().unwrap();
        let only_own: InvariantSet = [own].into_iter().collect();
        for (path, bytes) in all_interleaving_inputs() {
            let fired = fuzzing::fired(policy, &decode_interleaving(&bytes));
            assert!(
                fired.is_empty() || fired == only_own,
                "{} under {policy}: {fired}",
                path.display()
            );
        }
        let regressions = inputs("regressions", target);
        assert!(
            !regressions.is_empty(),
            "fuzz/regressions/{target} holds the campaign's findings"
        );
        for (path, bytes) in regressions {
            let failure = target.check(&bytes).unwrap_err();
            assert_eq!(failure.invariant(), Some(own), "{}", path.display());
        }
        // The corpus of a target never crashes it (libFuzzer would stop at
        // once when loading it).
        for (path, bytes) in inputs("corpus", target) {
            assert!(target.check(&bytes).is_ok(), "{}", path.display());
        }
    }
}

#[test]
fn parse_targets_never_fail_on_their_inputs() {
    for target in [Target::ScenarioParse, Target::StepParse] {
        let mut parsed = 0;
        for kind in ["corpus", "regressions"] {
            for (path, bytes) in inputs(kind, target) {
                match target.check(&bytes) {
                    Ok(Checked::Parsed) => parsed += 1,
                    Ok(Checked::Refused(_)) => {}
                    other => panic!("{}: {other:?}", path.display()),
                }
            }
        }
        assert!(parsed >= 10, "{target}: only {parsed} inputs parse");
    }
}

#[test]
fn regressions_of_parse_targets_and_fixed_are_replayed_too() {
    // A regression input of a target that must never fail is a fixed bug:
    // it must pass now.
    for target in [
        Target::InterleavingFixed,
        Target::ScenarioParse,
        Target::StepParse,
    ] {
        for (path, bytes) in inputs("regressions", target) {
            assert!(
                target.check(&bytes).is_ok(),
                "{}: {:?}",
                path.display(),
                target.check(&bytes)
            );
        }
    }
}

#[test]
fn every_regression_converts_to_a_scenario_that_passes() {
    let registry = Registry::builtin();
    for target in [Target::InterleavingLegacy, Target::InterleavingSnapshot] {
        for (path, bytes) in inputs("regressions", target) {
            let Conversion::Counterexample {
                scenario,
                file_name,
                invariant,
                decoded,
                until_violation,
                shrunk,
            } = fuzzing::convert(target, &bytes, "input")
            else {
                panic!("{}: no counterexample", path.display());
            };
            assert_eq!(Some(invariant), target.expected_violation());
            assert!(shrunk <= until_violation && until_violation <= decoded);
            assert!(file_name.starts_with(&format!("{}-{}-", target.policy().unwrap(), invariant)));
            let back =
                scenario::parse(Path::new(&file_name), &scenario.to_toml(), &registry).unwrap();
            assert_eq!(back, *scenario);
            let run = back.run(&target.policy().unwrap());
            assert!(run.passed(), "{}: {:?}", path.display(), run.mismatches);
            assert!(run.fired.contains(invariant));
        }
    }
}

#[test]
fn decoding_reads_the_documented_format() {
    // 2 GPUs, 2 slots of size 1; create a; configure; takeover; create b gpus=2.
    let case = decode_interleaving(&[1, 1, 1, 1, 0, 0, 6, 0, 10, 11, 12, 1, 1, 2]);
    assert_eq!(case.device, Device::uniform(2, 2, 1).unwrap());
    assert_eq!(
        case.actions,
        vec![
            Action::begin(Op::CreateVm, 0),
            Action::end(Op::CreateVm, 0),
            Action::begin(Op::ConfigureKube, 0),
            Action::end(Op::ConfigureKube, 0),
            Action::takeover(),
            Action::begin(Op::CreateVm, 1).with_option(StepOption::Gpus(2)),
        ]
    );
    // Missing bytes read as the lowest value; no bytes at all is a 1-GPU
    // device with one slot of size 0 and no action.
    assert_eq!(
        decode_interleaving(&[]),
        Interleaving {
            device: Device::new(1, &[0]).unwrap(),
            actions: vec![]
        }
    );
    // Values wrap around their range: 200 GPUs is 200 % 8 + 1.
    assert_eq!(decode_interleaving(&[200]).device.gpus(), 1);
    assert_eq!(decode_interleaving(&[203]).device.gpus(), 4);
}

#[test]
fn decoding_never_panics_and_stays_in_range() {
    // A deterministic byte soup of many lengths (no wall clock, no seed).
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for len in 0..2_000 {
        let bytes: Vec<u8> = (0..len % 700)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let case = decode_interleaving(&bytes);
        assert!((1..=8).contains(&case.device.gpus()));
        assert!((1..=8).contains(&case.device.vms()));
        assert!(case.actions.len() <= fuzzing::MAX_FUZZ_ACTIONS);
        for a in &case.actions {
            assert!(usize::from(a.vm) < case.device.vms());
        }
        assert_eq!(
            encode_interleaving(&case).map(|b| decode_interleaving(&b)),
            Some(case.clone())
        );
        for t in Target::ALL {
            let _ = t.check(&bytes);
        }
    }
}

#[test]
fn encoding_refuses_what_the_decoder_cannot_produce() {
    let d = Device::uniform(2, 2, 1).unwrap();
    let bad_slot = Interleaving {
        device: d,
        actions: vec![Action::begin(Op::CreateVm, 5)],
    };
    assert_eq!(encode_interleaving(&bad_slot), None);
    let malformed = Interleaving {
        device: d,
        actions: vec![Action::end(Op::KubeTakeover, 0)],
    };
    assert_eq!(encode_interleaving(&malformed), None);
    let too_many_slots = Interleaving {
        device: Device::uniform(2, 9, 1).unwrap(),
        actions: vec![],
    };
    assert_eq!(encode_interleaving(&too_many_slots), None);
}

#[test]
fn the_legacy_and_snapshot_failures_name_their_invariant() {
    // The documented stop-then-takeover case: create a, configure, stop a, takeover.
    let bytes = [0, 0, 1, 0, 6, 10, 11, 3, 8, 12];
    let failure = Target::InterleavingLegacy.check(&bytes).unwrap_err();
    // One GPU and one slot are said in the singular.
    assert!(
        failure
            .to_string()
            .starts_with("under legacy on 1 GPU and 1 VM slot, "),
        "{failure}"
    );
    let Failure::Violation {
        policy, violation, ..
    } = &failure
    else {
        panic!("{failure:?}")
    };
    assert_eq!(policy, "legacy");
    assert_eq!(violation.invariant, Invariant::NoStealAfterDealloc);
    assert_eq!(violation.step_index, 6);
    assert_eq!(violation.step, "kube-takeover");
    assert!(Target::InterleavingFixed.check(&bytes).is_ok());
    assert!(Target::InterleavingSnapshot.check(&bytes).is_ok());
    // The configure race: begin configure, create a, end configure.
    let race = [1, 0, 1, 10, 0, 6, 11];
    let failure = Target::InterleavingSnapshot.check(&race).unwrap_err();
    assert_eq!(failure.invariant(), Some(Invariant::NoDoubleClaim));
    assert!(Target::InterleavingLegacy.check(&race).is_ok());
}

#[test]
fn a_parse_target_input_converts_to_a_report_not_a_scenario() {
    let conversion = fuzzing::convert(Target::StepParse, b"stop-vm a provisioned", "x");
    assert_eq!(conversion, Conversion::Parser(Ok(Checked::Parsed)));
    let conversion = fuzzing::convert(Target::StepParse, b"stop-vm", "x");
    assert!(matches!(
        conversion,
        Conversion::Parser(Ok(Checked::Refused(_)))
    ));
    let conversion = fuzzing::convert(Target::InterleavingFixed, &[0, 0, 1, 0, 6], "x");
    assert_eq!(
        conversion,
        Conversion::NoViolation {
            policy: "fixed".to_string(),
            gpus: 1,
            vms: 1,
            actions: 2
        }
    );
}

#[test]
fn scenario_parse_refuses_bytes_that_are_not_utf8_as_gpuclaim_run_does() {
    // Would parse if the bad byte were replaced: only the UTF-8 check
    // refuses it.
    let bytes = b"name = \"x\"\nsource = \"caf\xe9\"\ngpus = 1\nsteps = [\"create-vm a\"]\n";
    assert_eq!(
        Target::ScenarioParse.check(bytes),
        Ok(Checked::Refused(
            "fuzz-input.toml:2:14: not valid UTF-8: byte 0xE9 (byte offset 24); a scenario file is UTF-8 text"
                .to_string()
        ))
    );
    // On every committed input, the target refuses exactly what the file
    // reader refuses, with the same message.
    let registry = Registry::builtin();
    for kind in ["corpus", "regressions"] {
        for (path, bytes) in inputs(kind, Target::ScenarioParse) {
            let read = scenario::parse_bytes(Path::new("fuzz-input.toml"), &bytes, &registry);
            match (Target::ScenarioParse.check(&bytes), read) {
                (Ok(Checked::Parsed), Ok(_)) => {}
                (Ok(Checked::Refused(m)), Err(e)) => assert_eq!(m, e.to_string()),
                (checked, read) => panic!("{}: {checked:?} but {read:?}", path.display()),
            }
        }
    }
}

#[test]
fn target_names_are_the_cargo_fuzz_binaries() {
    let manifest =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/Cargo.toml"))
            .unwrap();
    let names: BTreeSet<&str> = Target::ALL.iter().map(|t| t.name()).collect();
    for name in &names {
        assert!(
            manifest.contains(&format!("name = \"{name}\"")),
            "fuzz/Cargo.toml has no [[bin]] {name}"
        );
        assert_eq!(Target::from_name(name).map(|t| t.name()), Some(*name));
    }
}

/// The named seeds are the cases their names say: the documented cases of
/// MODEL.md, with their documented outcomes under `fixed`.
#[test]
fn named_seeds_are_the_documented_cases() {
    use gpuclaim::model::VmNames;
    use gpuclaim::trace::{run_actions, trace_to_steps};
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/interleaving_fixed");
    let cases: [(&str, &[&str], &[&str]); 5] = [
        (
            "doc-1gpu-vm-then-kube",
            &["create-vm a", "configure-kube"],
            &["a"],
        ),
        (
            "doc-1gpu-kube-then-vm",
            // A begin that fails with no-gpu is written as the begin alone.
            &["configure-kube", "begin create-vm a"],
            &["kube"],
        ),
        (
            "doc-2gpu-one-vm-then-kube",
            &["create-vm a", "configure-kube"],
            &["a", "kube"],
        ),
        (
            "doc-2gpu-two-vms-then-kube",
            &["create-vm a", "create-vm b", "configure-kube"],
            &["a", "b"],
        ),
        (
            "doc-2gpu-stop-then-start",
            &[
                "create-vm a",
                "create-vm b",
                "configure-kube",
                "stop-vm a",
                "start-vm a",
            ],
            &["a", "b"],
        ),
    ];
    for (file, steps, owners) in cases {
        let case = decode_interleaving(&std::fs::read(dir.join(file)).unwrap());
        let names = VmNames::letters(case.device.vms());
        let run = run_actions(&Builtin::Fixed, &case.device, &names, &case.actions);
        let written: Vec<String> = trace_to_steps(&run.trace, &names)
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(written, steps, "{file}");
        let got: Vec<String> = (0..case.device.gpus())
            .map(|g| run.state.owner(&case.device, &names, g))
            .collect();
        assert_eq!(got, owners, "{file}");
        assert!(run.fired.is_empty(), "{file}");
    }
}

/// Every input of the version 2 targets (device updates), corpus and
/// regressions.
fn all_update_inputs() -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for t in [
        Target::InterleavingUpdates,
        Target::InterleavingUnmanagedUpdate,
    ] {
        out.extend(inputs("corpus", t));
        out.extend(inputs("regressions", t));
    }
    out
}

#[test]
fn the_update_targets_read_version_2_under_their_policies() {
    use gpuclaim::fuzzing::Format;
    assert_eq!(Target::InterleavingUpdates.policy(), Some(Builtin::Fixed));
    assert_eq!(
        Target::InterleavingUnmanagedUpdate.policy(),
        Some(Builtin::UnmanagedUpdate)
    );
    for t in Target::ALL {
        let expected = match t {
            Target::InterleavingUpdates | Target::InterleavingUnmanagedUpdate => Some(Format::V2),
            Target::ScenarioParse | Target::StepParse => None,
            _ => Some(Format::V1),
        };
        assert_eq!(t.format(), expected, "{t}");
    }
    assert_eq!(Target::InterleavingUpdates.expected_violation(), None);
    assert_eq!(
        Target::InterleavingUnmanagedUpdate.expected_violation(),
        Some(Invariant::HoldsMatchState)
    );
}

/// `fixed` fires nothing on any version 2 input, under the target that
/// runs it (which must never fail) as under its own check.
#[test]
fn fixed_violates_nothing_on_any_update_input() {
    let all = all_update_inputs();
    assert!(all.len() >= 25, "{} inputs", all.len());
    let mut updated = 0;
    for (path, bytes) in all {
        let result = Target::InterleavingUpdates.check(&bytes);
        assert!(
            matches!(result, Ok(Checked::Ran { .. })),
            "{}: {result:?}",
            path.display()
        );
        let case = decode_interleaving_v2(&bytes);
        assert!(case.device.updates(), "{}", path.display());
        if case.actions.contains(&Action::begin(Op::UpdateDevice, 0)) {
            updated += 1;
        }
    }
    assert!(updated >= 20, "only {updated} inputs ask for an update");
}

/// Under `unmanaged-update` any version 2 input fires only what MODEL.md
/// says it violates; every regression input fires its target's invariant
/// first; the corpus never crashes the target.
#[test]
fn unmanaged_update_fires_only_its_invariants() {
    let target = Target::InterleavingUnmanagedUpdate;
    let policy = target.policy().unwrap();
    let own = target.expected_violation().unwrap();
    let allowed: InvariantSet = [
        Invariant::HoldsMatchState,
        Invariant::NoStealAfterDealloc,
        Invariant::UpdateRestartsVms,
    ]
    .into_iter()
    .collect();
    assert_eq!(target.may_violate(), allowed);
    for (path, bytes) in all_update_inputs() {
        let fired = fuzzing::fired(policy, &decode_interleaving_v2(&bytes));
        assert_eq!(
            fired.union(allowed),
            allowed,
            "{} under {policy}: {fired}",
            path.display()
        );
    }
    let regressions = inputs("regressions", target);
    assert!(
        !regressions.is_empty(),
        "fuzz/regressions/{target} holds the campaign's findings"
    );
    for (path, bytes) in regressions {
        let failure = target.check(&bytes).unwrap_err();
        assert_eq!(failure.invariant(), Some(own), "{}", path.display());
        // The same bytes under `fixed` (the managed flow) fire nothing.
        assert!(
            Target::InterleavingUpdates.check(&bytes).is_ok(),
            "{}",
            path.display()
        );
    }
    for (path, bytes) in inputs("corpus", target) {
        assert!(target.check(&bytes).is_ok(), "{}", path.display());
    }
}

#[test]
fn every_unmanaged_update_regression_converts_to_a_scenario_that_passes() {
    let registry = Registry::builtin();
    let target = Target::InterleavingUnmanagedUpdate;
    let mut count = 0;
    for (path, bytes) in inputs("regressions", target) {
        let Conversion::Counterexample {
            scenario,
            file_name,
            invariant,
            decoded,
            until_violation,
            shrunk,
        } = fuzzing::convert(target, &bytes, "input")
        else {
            panic!("{}: no counterexample", path.display());
        };
        assert_eq!(Some(invariant), target.expected_violation());
        assert!(shrunk <= until_violation && until_violation <= decoded);
        assert!(file_name.starts_with("unmanaged-update-holds-match-state-"));
        // The shrunk steps keep an update's begin: the violation is there.
        assert!(
            scenario
                .steps
                .iter()
                .any(|s| s.to_string().contains("update-device")),
            "{}: {:?}",
            path.display(),
            scenario.steps
        );
        let back = scenario::parse(Path::new(&file_name), &scenario.to_toml(), &registry).unwrap();
        assert_eq!(back, *scenario);
        let run = back.run(&Builtin::UnmanagedUpdate);
        assert!(run.passed(), "{}: {:?}", path.display(), run.mismatches);
        assert!(run.fired.contains(invariant));
        count += 1;
    }
    assert!(count >= 1);
}

#[test]
fn version_2_decoding_reads_the_documented_format() {
    // 2 GPUs, 2 slots of size 1; create a; configure; update; takeover.
    let bytes = [1, 1, 1, 1, 0, 0, 6, 0, 10, 11, 13, 14, 12];
    let case = decode_interleaving_v2(&bytes);
    assert_eq!(
        case.device,
        Device::uniform(2, 2, 1).unwrap().with_updates(true)
    );
    assert_eq!(
        case.actions,
        vec![
            Action::begin(Op::CreateVm, 0),
            Action::end(Op::CreateVm, 0),
            Action::begin(Op::ConfigureKube, 0),
            Action::end(Op::ConfigureKube, 0),
            Action::begin(Op::UpdateDevice, 0),
            Action::end(Op::UpdateDevice, 0),
            Action::takeover(),
        ]
    );
    assert_eq!(encode_interleaving_v2(&case), Some(bytes.to_vec()));
    // Kinds 0..=12 name the same actions in both formats; a kind byte is
    // read modulo 15 in version 2 and modulo 13 in version 1.
    let v1 = decode_interleaving(&bytes[..10]);
    assert_eq!(decode_interleaving_v2(&bytes[..10]).actions, v1.actions);
    assert!(!v1.device.updates());
    assert_eq!(
        decode_interleaving_v2(&[0, 0, 1, 15, 28]).actions,
        vec![
            Action::begin(Op::CreateVm, 0),
            Action::begin(Op::UpdateDevice, 0)
        ]
    );
    assert_eq!(
        decode_interleaving(&[0, 0, 1, 15, 28]).actions,
        vec![Action::begin(Op::StartVm, 0), Action::begin(Op::StartVm, 0)]
    );
    assert_eq!(
        decode_interleaving_v2(&[]),
        Interleaving {
            device: Device::new(1, &[0]).unwrap().with_updates(true),
            actions: vec![]
        }
    );
}

#[test]
fn version_2_decoding_never_panics_and_round_trips() {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut updates = 0;
    for len in 0..2_000 {
        let bytes: Vec<u8> = (0..len % 700)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let case = decode_interleaving_v2(&bytes);
        assert!((1..=8).contains(&case.device.gpus()));
        assert!((1..=8).contains(&case.device.vms()));
        assert!(case.device.updates());
        assert!(case.actions.len() <= fuzzing::MAX_FUZZ_ACTIONS);
        updates += case
            .actions
            .iter()
            .filter(|a| a.op == Op::UpdateDevice)
            .count();
        assert_eq!(
            encode_interleaving_v2(&case).map(|b| decode_interleaving_v2(&b)),
            Some(case.clone())
        );
        // Neither encoder writes the other format's device.
        assert_eq!(encode_interleaving(&case), None);
        let v1 = decode_interleaving(&bytes);
        assert_eq!(encode_interleaving_v2(&v1), None);
        // `fixed` never fires on a version 2 input.
        assert!(Target::InterleavingUpdates.check(&bytes).is_ok());
    }
    assert!(updates > 10_000, "{updates} update steps decoded");
}

#[test]
fn the_unmanaged_update_failure_names_its_invariant() {
    // create a; configure; update (the documented case of MODEL.md with
    // Kubernetes configured and a VM holding a GPU at the update).
    let bytes = [1, 1, 1, 1, 0, 0, 6, 0, 10, 11, 13, 14];
    let failure = Target::InterleavingUnmanagedUpdate
        .check(&bytes)
        .unwrap_err();
    let Failure::Violation {
        policy, violation, ..
    } = &failure
    else {
        panic!("{failure:?}")
    };
    assert_eq!(policy, "unmanaged-update");
    assert_eq!(violation.invariant, Invariant::HoldsMatchState);
    assert_eq!(violation.step_index, 4);
    assert_eq!(violation.step, "begin update-device");
    // The whole run fires all three of MODEL.md's invariants for it.
    assert_eq!(
        fuzzing::fired(Builtin::UnmanagedUpdate, &decode_interleaving_v2(&bytes)),
        Target::InterleavingUnmanagedUpdate.may_violate()
    );
    assert!(Target::InterleavingUpdates.check(&bytes).is_ok());
    // Read as version 1 the same bytes never update: nothing fires.
    assert!(Target::InterleavingFixed.check(&bytes).is_ok());
    // No VM holds a GPU at the update, a deallocated one freed it:
    // Kubernetes takes it at the end, `no-steal-after-dealloc` comes first.
    // 2 GPUs, 1 slot of size 1; create a; configure; stop a; update.
    let steal = [1, 0, 1, 0, 6, 10, 11, 3, 8, 13, 14];
    let failure = Target::InterleavingUnmanagedUpdate
        .check(&steal)
        .unwrap_err();
    assert_eq!(failure.invariant(), Some(Invariant::NoStealAfterDealloc));
}
