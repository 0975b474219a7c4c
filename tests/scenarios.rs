//! Scenario files: every committed one passes, round-trips through TOML,
//! and malformed files are refused with the file, line, column and what was
//! expected.

use std::path::{Path, PathBuf};

use gpuclaim::Registry;
use gpuclaim::scenario::{self, Scenario};
use gpuclaim::trace::StepSpec;

fn committed() -> Vec<PathBuf> {
    scenario::collect_files(&[PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scenarios")]).unwrap()
}

#[test]
fn every_committed_scenario_passes_under_each_policy() {
    let reg = Registry::builtin();
    let files = committed();
    assert!(
        files.len() >= 17,
        "the documented cases and the rule scenarios are there"
    );
    for f in files {
        let s = scenario::load(&f, &reg).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            s.expect.is_some(),
            "{}: every committed scenario says what must hold",
            f.display()
        );
        for p in s.policy_names() {
            let run = s.run(&reg.get(&p).unwrap());
            assert!(
                run.passed(),
                "{} [{p}]: {:?}\n{}",
                f.display(),
                run.mismatches,
                run.render_trace()
            );
        }
    }
}

#[test]
fn every_committed_scenario_round_trips() {
    let reg = Registry::builtin();
    for f in committed() {
        let s = scenario::load(&f, &reg).unwrap();
        let text = s.to_toml();
        let again = scenario::parse(Path::new("round-trip.toml"), &text, &reg)
            .unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(s, again, "{}", f.display());
    }
}

#[test]
fn documented_case_with_wrong_expectation_fails_with_the_differing_keys() {
    let reg = Registry::builtin();
    let text = r#"
name = "wrong on purpose"
gpus = 1
steps = ["configure-kube", "create-vm a"]
[expect]
outcomes = ["ok", "ok"]
vm.a = "running"
kube-gpus = 1
"#;
    let s = scenario::parse(Path::new("x.toml"), text, &reg).unwrap();
    let run = s.run(&reg.get("fixed").unwrap());
    let keys: Vec<(&str, &str, &str)> = run
        .mismatches
        .iter()
        .map(|m| (m.key.as_str(), m.expected.as_str(), m.actual.as_str()))
        .collect();
    assert_eq!(
        keys,
        vec![
            ("outcomes", "[ok, ok]", "[ok, no-gpu]"),
            ("vm.a", "running", "failed")
        ]
    );
}

fn refused(text: &str) -> String {
    let reg = Registry::builtin();
    match scenario::parse(Path::new("scenarios/bad.toml"), text, &reg) {
        Ok(s) => panic!("accepted: {s:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn bad_toml_is_refused_with_line_and_column() {
    let msg = refused("name = \"x\"\ngpus = 1\nsteps = [\"create-vm a\"\n");
    assert_eq!(
        msg,
        "scenarios/bad.toml:3:23: not valid TOML: unclosed array, expected `]`"
    );
}

#[test]
fn unknown_operation_names_the_step_and_line() {
    let msg =
        refused("name = \"x\"\ngpus = 1\nsteps = [\n  \"create-vm a\",\n  \"crate-vm b\",\n]\n");
    assert_eq!(
        msg,
        "scenarios/bad.toml:5:3: step 2: unknown operation `crate-vm`; expected one of create-vm, start-vm, stop-vm, remove-vm, configure-kube or kube-takeover"
    );
}

#[test]
fn unknown_vm_state_is_refused() {
    let msg = refused(
        "name = \"x\"\ngpus = 1\nsteps = [\"create-vm a\"]\n[expect]\nvm.a = \"sleeping\"\n",
    );
    assert!(
        msg.starts_with(
            "scenarios/bad.toml:5:8: unknown VM state `sleeping`; expected one of absent, creating"
        ),
        "{msg}"
    );
}

#[test]
fn wrong_number_of_outcomes_is_refused() {
    let msg = refused(
        "name = \"x\"\ngpus = 1\nsteps = [\"create-vm a\", \"configure-kube\"]\n[expect]\noutcomes = [\"ok\"]\n",
    );
    assert_eq!(
        msg,
        "scenarios/bad.toml:5:12: [expect] lists 1 outcome but there are 2 steps; expected one outcome per step"
    );
}

#[test]
fn an_empty_policy_list_is_refused_at_the_list() {
    let msg = refused("name = \"x\"\ngpus = 1\npolicies = []\nsteps = [\"create-vm a\"]\n");
    assert_eq!(
        msg,
        "scenarios/bad.toml:3:12: `policies` is empty; list at least one policy (fixed, legacy, snapshot, unmanaged-update), or leave the key out to run under fixed and legacy"
    );
}

#[test]
fn a_policy_listed_twice_is_refused_at_the_second() {
    let msg = refused(
        "name = \"x\"\ngpus = 1\npolicies = [\"fixed\", \"legacy\", \"fixed\"]\nsteps = [\"create-vm a\"]\n",
    );
    assert_eq!(
        msg,
        "scenarios/bad.toml:3:32: policy `fixed` is listed twice in `policies` (items 1 and 3); a scenario runs once under each policy"
    );
}

#[test]
fn expectations_for_a_policy_the_scenario_does_not_run_are_refused() {
    let msg = refused(
        "name = \"x\"\ngpus = 1\nsteps = [\"create-vm a\"]\n[expect]\nvm.a = \"running\"\n\n[expect.snapshot]\nvm.a = \"failed\"\n",
    );
    assert_eq!(
        msg,
        "scenarios/bad.toml:7:9: [expect.snapshot] overrides the expectations for policy `snapshot`, which this scenario does not run (its policies are fixed, legacy); add `snapshot` to `policies` or remove the section"
    );
    let msg = refused(
        "name = \"x\"\ngpus = 1\npolicies = [\"snapshot\"]\nsteps = [\"create-vm a\"]\n[expect.fixed]\nvm.a = \"running\"\n",
    );
    assert!(
        msg.starts_with("scenarios/bad.toml:5:9: [expect.fixed] overrides the expectations for policy `fixed`, which this scenario does not run (its policies are snapshot);"),
        "{msg}"
    );
}

#[test]
fn expectations_that_disagree_with_the_device_are_refused_at_their_value() {
    let head = "name = \"x\"\ngpus = 1\nsteps = [\"create-vm a\"]\n[expect]\nvm.a = \"running\"\n";
    let cases: &[(&str, &str)] = &[
        (
            "gpus = [\"a\", \"free\", \"free\"]\n",
            "6:8: [expect] gpus lists 3 owners but the device has 1 GPU; expected one owner per GPU",
        ),
        (
            "kube-gpus = 5\n",
            "6:13: [expect] kube-gpus = 5 but the device has 1 GPU",
        ),
        (
            "gpus = [\"free+free\"]\n",
            "6:9: [expect] gpus: owner `free` is listed twice in `free+free`; name each owner of a GPU once",
        ),
        (
            "gpus = [\"a+none\"]\n",
            "6:9: [expect] gpus: `a+none`: `none` means the GPU is in no set, so it stands alone",
        ),
        (
            "gpus = [\"a+zed\"]\n",
            "6:9: [expect] gpus: unknown owner `zed`; expected free, kube, none or a VM of this scenario, joined by `+` when several",
        ),
        (
            "outcomes = [\"ok\", \"ok\"]\n",
            "6:12: [expect] lists 2 outcomes but there is 1 step; expected one outcome per step",
        ),
        // In an override table, at the override's value.
        (
            "\n[expect.legacy]\nkube = \"configured\"\nkube-gpus = 2\n",
            "9:13: [expect.legacy] kube-gpus = 2 but the device has 1 GPU",
        ),
    ];
    for (tail, want) in cases {
        let msg = refused(&format!("{head}{tail}"));
        assert_eq!(msg, format!("scenarios/bad.toml:{want}"));
    }
}

#[test]
fn text_that_is_not_utf8_is_refused_at_its_first_bad_byte() {
    let reg = Registry::builtin();
    let bytes = b"name = \"x\"\ngpus = 1\nsteps = [\n  \"create-vm a\",\n  \"st\xffop-vm a\",\n]\n";
    let msg = scenario::parse_bytes(Path::new("scenarios/bad.toml"), bytes, &reg)
        .unwrap_err()
        .to_string();
    assert_eq!(
        msg,
        "scenarios/bad.toml:5:6: not valid UTF-8: byte 0xFF (byte offset 52); a scenario file is UTF-8 text"
    );
    // Columns count characters, as TOML errors do; the file may also end
    // inside a character.
    let msg = scenario::parse_bytes(
        Path::new("f.toml"),
        &["name = \"é".as_bytes(), b"\xe2\x82"].concat(),
        &reg,
    );
    let msg = msg.unwrap_err().to_string();
    assert_eq!(
        msg,
        "f.toml:1:10: not valid UTF-8: the file ends inside a character (byte offset 10); a scenario file is UTF-8 text"
    );
}

#[test]
fn gpuclaim_run_refuses_a_file_that_is_not_utf8_at_its_first_bad_byte() {
    let dir = std::env::temp_dir().join(format!("gpuclaim-not-utf8-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("latin1.toml");
    std::fs::write(&file, b"name = \"caf\xe9\"\ngpus = 1\nsteps = []\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gpuclaim"))
        .arg("run")
        .arg(&file)
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(2), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "{}:1:12: not valid UTF-8: byte 0xE9 (byte offset 11)",
            file.display()
        )),
        "{stdout}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn control_characters_are_quoted_escaped() {
    // TOML escapes put a NUL in a step and an ESC in a policy name.
    let msg = refused("name = \"x\"\ngpus = 1\nsteps = [\"create-vm\\u0000 a\"]\n");
    assert_eq!(
        msg,
        "scenarios/bad.toml:3:10: step 1: unknown operation `create-vm\\u{0}`; expected one of create-vm, start-vm, stop-vm, remove-vm, configure-kube or kube-takeover"
    );
    let msg = refused(
        "name = \"x\"\ngpus = 1\npolicies = [\"fi\\u001bxed\"]\nsteps = [\"create-vm a\"]\n",
    );
    assert!(
        msg.starts_with("scenarios/bad.toml:3:13: unknown policy `fi\\u{1b}xed`;"),
        "{msg}"
    );
    assert_eq!(
        StepSpec::parse("stop-vm a\tfast\u{7}")
            .unwrap_err()
            .to_string(),
        "unknown option `fast\\u{7}` for stop-vm; expected `provisioned`"
    );
}

#[test]
fn other_refusals() {
    let cases: &[(&str, &str)] = &[
        (
            "name = \"x\"\ngpus = 1\nsteps = []\ncolour = 1\n",
            "4:1: unknown key `colour`",
        ),
        (
            "name = \"x\"\ngpus = 1\nsteps = []\npolicies = [\"fixed\", \"lgacy\"]\n",
            "4:22: unknown policy `lgacy`",
        ),
        (
            "name = \"x\"\ngpus = 9\nsteps = []\n",
            "2:8: `gpus` must be an integer from 1 to 8",
        ),
        (
            "name = \" \"\ngpus = 1\nsteps = []\n",
            "1:8: `name` must not be empty (it is shown in reports)",
        ),
        (
            "name = \"x\"\ngpus = 0\nsteps = []\n",
            "2:8: `gpus` must be an integer from 1 to 8",
        ),
        (
            "gpus = 1\nsteps = []\n",
            "bad.toml: missing top-level key `name` (one line, shown in reports)",
        ),
        (
            "name = \"x\"\nsteps = []\n",
            "bad.toml: missing top-level key `gpus` (1 to 8)",
        ),
        (
            "name = \"x\"\ngpus = 1\n",
            "bad.toml: missing top-level key `steps` (a list of step strings)",
        ),
        (
            "name = \"x\"\ngpus = 1\nsteps = [\"create-vm 9a\"]\n",
            "3:10: step 1: malformed VM name `9a`",
        ),
        (
            "name = \"x\"\ngpus = 1\nsteps = [\"stop-vm a fast\"]\n",
            "step 1: unknown option `fast` for stop-vm",
        ),
        (
            "name = \"x\"\ngpus = 1\nsteps = [\"end stop-vm a provisioned\"]\n",
            "an end step takes no option",
        ),
        (
            "name = \"x\"\ngpus = 1\nsteps = [\"create-vm a gpus=2\"]\n",
            "3:10: step 1: gpus=2 but the device has 1 GPU",
        ),
        (
            "name = \"x\"\ngpus = 1\nsteps = [\"begin kube-takeover\"]\n",
            "kube-takeover is an internal event",
        ),
        (
            "name = \"x\"\ngpus = 1\nsteps = [\"configure-kube a\"]\n",
            "`configure-kube` takes no option, found `a`",
        ),
        (
            "name = \"x\"\ngpus = 1\nsteps = []\n[vms]\na = 2\n",
            "5:5: `vms.a` must be a size from 0 to 1",
        ),
        (
            "name = \"x\"\ngpus = 1\nsteps = []\n[vms]\n\"a b\" = 1\n",
            "malformed VM name `a b` in [vms]",
        ),
        (
            "name = \"x\"\ngpus = 1\nsteps = []\n[expect]\nviolations = [\"no-double-clam\"]\n",
            "unknown invariant `no-double-clam`",
        ),
        (
            "name = \"x\"\ngpus = 1\nsteps = []\n[expect]\nkube = \"on\"\n",
            "unknown Kubernetes state `on`",
        ),
        (
            "name = \"x\"\ngpus = 1\nsteps = []\n[expect.fixed]\nkub = \"configured\"\n",
            "unknown key `kub` in [expect.fixed]",
        ),
        (
            "name = \"x\"\ngpus = 1\nsteps = []\n[expect]\nnope = 1\n",
            "unknown key `nope` in [expect]",
        ),
        (
            "name = \"x\"\ngpus = 2\nsteps = []\n[expect]\ngpus = [\"a\"]\n",
            "5:8: [expect] gpus lists 1 owner but the device has 2 GPUs; expected one owner per GPU",
        ),
        (
            "name = \"x\"\ngpus = 1\nsteps = []\n[expect]\ngpus = [\"zed\"]\n",
            "5:9: [expect] gpus: unknown owner `zed`",
        ),
        (
            "name = \"x\"\ngpus = 1\nsteps = \"create-vm a\"\n",
            "`steps` must be an array, found string",
        ),
        (
            "name = \"x\"\ngpus = 1\nsteps = [1]\n",
            "`steps` must be a string, found integer",
        ),
    ];
    for (text, want) in cases {
        let msg = refused(text);
        assert!(msg.contains(want), "expected {want:?} in {msg:?}");
        assert!(msg.starts_with("scenarios/bad.toml"), "{msg}");
    }
}

#[test]
fn refused_files_do_not_stop_the_others() {
    let dir = std::env::temp_dir().join(format!("gpuclaim-refused-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("a-bad.toml"),
        "name = \"x\"\ngpus = 1\nsteps = [\"fly a\"]\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("b-good.toml"),
        "name = \"y\"\ngpus = 1\nsteps = [\"create-vm a\"]\n[expect]\nvm.a = \"running\"\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gpuclaim"))
        .arg("run")
        .arg(&dir)
        .arg("--csv")
        .arg(dir.join("out.csv"))
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(2), "{stdout}");
    assert!(
        stdout.contains("a-bad.toml:3:10: step 1: unknown operation `fly`"),
        "{stdout}"
    );
    assert!(
        stdout.contains("PASS    ") && stdout.ends_with("2 passed, 0 failed, 1 refused\n"),
        "{stdout}"
    );
    let csv = std::fs::read_to_string(dir.join("out.csv")).unwrap();
    assert_eq!(
        csv.lines().count(),
        4,
        "header, the refused file, two policies:\n{csv}"
    );
    assert!(csv.lines().nth(1).unwrap().contains(",refused,"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn cli_exit_codes() {
    let dir = std::env::temp_dir().join(format!("gpuclaim-exit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = "name = \"y\"\ngpus = 1\nsteps = [\"create-vm a\"]\n[expect]\nvm.a = \"running\"\n";
    std::fs::write(dir.join("good.toml"), good).unwrap();
    std::fs::write(dir.join("wrong.toml"), good.replace("running", "failed")).unwrap();
    let code = |p: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_gpuclaim"))
            .arg("run")
            .arg(dir.join(p))
            .output()
            .unwrap()
    };
    assert_eq!(code("good.toml").status.code(), Some(0));
    let wrong = code("wrong.toml");
    assert_eq!(wrong.status.code(), Some(1));
    let text = String::from_utf8(wrong.stdout).unwrap();
    assert!(
        text.contains("vm.a: expected failed, got running"),
        "{text}"
    );
    assert!(
        text.contains("0  begin create-vm a"),
        "the trace is shown: {text}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn folders_with_no_scenario_files_are_named_plainly() {
    let dir = std::env::temp_dir().join(format!("gpuclaim-empty-{}", std::process::id()));
    let (a, b) = (dir.join("a"), dir.join("b c"));
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gpuclaim"))
        .arg("run")
        .arg(&a)
        .arg(&b)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8(out.stderr).unwrap(),
        format!(
            "gpuclaim: error: no scenario files (*.toml) under {}, {}\n",
            a.display(),
            b.display()
        )
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn scenario_defaults() {
    let reg = Registry::builtin();
    let s: Scenario = scenario::parse(
        Path::new("x"),
        "name = \"x\"\ngpus = 2\nsteps = [\"create-vm b\", \"create-vm a\"]\n[vms]\nc = 2\n",
        &reg,
    )
    .unwrap();
    assert_eq!(s.policy_names(), vec!["fixed", "legacy"]);
    assert_eq!(s.vm_names().as_slice(), &["a", "b", "c"]);
    assert_eq!(s.device().sizes(), &[1, 1, 2]);
}

/// A name may hold control characters (TOML escapes); `run` and `replay`
/// print them escaped, so a name cannot ring the bell or recolour the
/// terminal. The CSV keeps the name as written.
#[test]
fn names_with_control_characters_print_escaped() {
    let dir = std::env::temp_dir().join(format!("gpuclaim-ctl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("ctl.toml");
    std::fs::write(
        &file,
        "name = \"bell\\u0007 \\u001b[31mred\"\ngpus = 1\npolicies = [\"fixed\"]\nsteps = [\"create-vm a\"]\n",
    )
    .unwrap();
    let bin = env!("CARGO_BIN_EXE_gpuclaim");
    let out = std::process::Command::new(bin)
        .arg("run")
        .arg(&file)
        .arg("--csv")
        .arg(dir.join("out.csv"))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        format!(
            "PASS    {} [fixed] bell\\u{{7}} \\u{{1b}}[31mred\n1 passed, 0 failed, 0 refused\n",
            file.display()
        )
    );
    let csv = std::fs::read_to_string(dir.join("out.csv")).unwrap();
    assert!(
        csv.contains(",bell\u{7} \u{1b}[31mred,fixed,pass,"),
        "{csv}"
    );
    let out = std::process::Command::new(bin)
        .arg("replay")
        .arg(&file)
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        stdout.lines().next(),
        Some(format!("{}: bell\\u{{7}} \\u{{1b}}[31mred", file.display()).as_str())
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A symbolic link that loops back up the tree is not followed again: each
/// scenario file runs once.
#[test]
fn a_folder_link_loop_runs_each_file_once() {
    let dir = std::env::temp_dir().join(format!("gpuclaim-loop-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    std::fs::write(
        dir.join("ok.toml"),
        "name = \"ok\"\ngpus = 1\npolicies = [\"fixed\"]\nsteps = [\"create-vm a\"]\n",
    )
    .unwrap();
    std::os::unix::fs::symlink(&dir, dir.join("sub").join("loop")).unwrap();
    let files = gpuclaim::scenario::collect_files(std::slice::from_ref(&dir)).unwrap();
    assert_eq!(files, [dir.join("ok.toml")]);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gpuclaim"))
        .arg("run")
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(
        String::from_utf8(out.stdout)
            .unwrap()
            .ends_with("\n1 passed, 0 failed, 0 refused\n")
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A path that cannot be searched is refused by name and the others are
/// still found (the library's search, which `run` and nightly share).
#[test]
fn find_scenarios_refuses_a_bad_path_by_name_and_finds_the_rest() {
    use gpuclaim::scenario::{Found, find_scenarios};
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let missing = root.join("no-such-folder");
    let found = find_scenarios(&[missing.clone(), root.join("scenarios")]);
    let Found::Refused(e) = &found[0] else {
        panic!("the missing path comes first, refused")
    };
    assert_eq!(
        e.to_string(),
        format!("{}: no such file or folder", missing.display())
    );
    let files: Vec<_> = found[1..]
        .iter()
        .map(|f| match f {
            Found::File(p) => p.clone(),
            Found::Refused(e) => panic!("{e}"),
        })
        .collect();
    assert_eq!(files, committed());
    let err = gpuclaim::scenario::collect_files(std::slice::from_ref(&missing)).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("{}: no such file or folder", missing.display())
    );
}
