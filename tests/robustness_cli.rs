//! What a hostile user can do to gpuclaim's commands (issue 19): a failing
//! standard output, bad paths among good ones, files that never end. Each
//! command runs with a deadline, so that a hang fails the test instead of
//! stalling it.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

mod common;
use common::bin;

fn scratch(name: &str) -> PathBuf {
    common::scratch("robust-cli", name)
}

use common::run_bounded;

const TINY: &str =
    "name = \"tiny\"\nseeds = 1\nhorizon_hours = 1\n[grid]\ngpus = [1]\npolicies = [\"fixed\"]\n";

#[test]
fn a_full_standard_output_is_an_error_not_a_panic() {
    let Some(bin) = bin() else { return };
    if !std::path::Path::new("/dev/full").exists() {
        eprintln!("SKIPPED: no /dev/full");
        return;
    }
    let dir = scratch("dev-full");
    let cfg = dir.join("tiny.toml");
    std::fs::write(&cfg, TINY).unwrap();
    let scenario = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scenarios/doc-1gpu-kube-then-vm.toml"
    );
    let out_dir = dir.join("out");
    let explore_out = dir.join("explore.csv");
    let explore_cx = dir.join("cx");
    let empty = dir.join("empty.bin");
    std::fs::write(&empty, b"").unwrap();
    let commands: Vec<Vec<&std::ffi::OsStr>> = vec![
        vec!["simulate".as_ref()],
        vec!["replay".as_ref(), scenario.as_ref()],
        vec![
            "replay".as_ref(),
            "--gpus".as_ref(),
            "2".as_ref(),
            "--vms".as_ref(),
            "2".as_ref(),
            "--policy".as_ref(),
            "legacy".as_ref(),
            "--seed".as_ref(),
            "1".as_ref(),
            "--run".as_ref(),
            "0".as_ref(),
        ],
        vec![
            "sweep".as_ref(),
            cfg.as_os_str(),
            "--out".as_ref(),
            out_dir.as_os_str(),
        ],
        vec!["run".as_ref(), scenario.as_ref()],
        vec![
            "check".as_ref(),
            "--gpus".as_ref(),
            "1".as_ref(),
            "--vms".as_ref(),
            "1".as_ref(),
            "--policy".as_ref(),
            "fixed".as_ref(),
        ],
        vec![
            "explore".as_ref(),
            "--gpus".as_ref(),
            "1".as_ref(),
            "--vms".as_ref(),
            "1".as_ref(),
            "--policy".as_ref(),
            "fixed".as_ref(),
            "--runs".as_ref(),
            "2".as_ref(),
            "--steps".as_ref(),
            "5".as_ref(),
            "--out".as_ref(),
            explore_out.as_os_str(),
            "--counterexamples".as_ref(),
            explore_cx.as_os_str(),
        ],
        vec![
            "from-fuzz".as_ref(),
            "interleaving_fixed".as_ref(),
            empty.as_os_str(),
        ],
    ];
    for args in commands {
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap();
        let out = run_bounded(Command::new(bin).args(&args).stdout(full));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        // The last line; `sweep` says what it runs on standard error first.
        assert_eq!(
            err.lines().last(),
            Some(
                "gpuclaim: error: writing to standard output: No space left on device (os error 28)"
            ),
            "{args:?}: {err}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn stdout_of(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

#[test]
fn run_refuses_a_missing_path_by_name_and_runs_the_rest() {
    let Some(bin) = bin() else { return };
    let dir = scratch("run-missing");
    let scenario = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scenarios/doc-1gpu-kube-then-vm.toml"
    );
    std::fs::copy(scenario, dir.join("a.toml")).unwrap();
    std::fs::copy(scenario, dir.join("z.toml")).unwrap();
    let out = run_bounded(
        Command::new(bin)
            .current_dir(&dir)
            .args(["run", "a.toml", "missing.toml", "z.toml"])
            .stdout(Stdio::piped()),
    );
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stdout_of(&out),
        "PASS    a.toml [fixed] 1-GPU device: Kubernetes first, then a GPU VM\n\
         PASS    a.toml [legacy] 1-GPU device: Kubernetes first, then a GPU VM\n\
         REFUSED missing.toml\n        missing.toml: no such file or folder\n\
         PASS    z.toml [fixed] 1-GPU device: Kubernetes first, then a GPU VM\n\
         PASS    z.toml [legacy] 1-GPU device: Kubernetes first, then a GPU VM\n\
         4 passed, 0 failed, 1 refused\n"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[cfg(unix)]
#[test]
fn run_refuses_an_unreadable_folder_by_name_and_runs_the_rest() {
    use std::os::unix::fs::PermissionsExt;
    let Some(bin) = bin() else { return };
    let dir = scratch("run-unreadable");
    let scenario = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scenarios/doc-1gpu-kube-then-vm.toml"
    );
    std::fs::create_dir_all(dir.join("s/locked")).unwrap();
    std::fs::copy(scenario, dir.join("s/a.toml")).unwrap();
    std::fs::copy(scenario, dir.join("s/locked/b.toml")).unwrap();
    let locked = dir.join("s/locked");
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).unwrap();
    if std::fs::read_dir(&locked).is_ok() {
        // Root reads any folder: nothing to refuse.
        eprintln!("SKIPPED: an unreadable folder can be read (root)");
        std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o755)).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        return;
    }
    let out = run_bounded(
        Command::new(bin)
            .current_dir(&dir)
            .args(["run", "s"])
            .stdout(Stdio::piped()),
    );
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stdout_of(&out),
        "PASS    s/a.toml [fixed] 1-GPU device: Kubernetes first, then a GPU VM\n\
         PASS    s/a.toml [legacy] 1-GPU device: Kubernetes first, then a GPU VM\n\
         REFUSED s/locked\n        s/locked: cannot read the folder: Permission denied (os error 13)\n\
         2 passed, 0 failed, 1 refused\n"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Every command that reads a file refuses a FIFO by name at once, instead
/// of waiting for a writer that never comes.
#[cfg(target_os = "linux")]
#[test]
fn fifos_are_refused_by_name_not_waited_on() {
    let Some(bin) = bin() else { return };
    let dir = scratch("fifos");
    for name in ["f.toml", "f.csv", "f.bin"] {
        let made = Command::new("mkfifo").arg(dir.join(name)).status().unwrap();
        assert!(made.success());
    }
    std::fs::write(
        dir.join("trace.toml"),
        format!("{TINY}[trace]\npath = \"f.csv\"\npreset = \"openb\"\n")
            .replace("gpus = [1]\npolicies = [\"fixed\"]\n", "gpus = [1]\n"),
    )
    .unwrap();
    let fifo = |name: &str, what: &str| {
        format!("{name}: a FIFO, not a regular file; {what} is read only from a regular file")
    };
    for (args, message) in [
        (&["replay", "f.toml"][..], fifo("f.toml", "a scenario file")),
        (&["sweep", "f.toml"], fifo("f.toml", "a sweep file")),
        (
            &["simulate", "--trace", "f.csv", "--preset", "openb"],
            fifo("f.csv", "a trace"),
        ),
        (
            &["from-fuzz", "scenario_parse", "f.bin"],
            fifo("f.bin", "a fuzz input"),
        ),
        (
            &["audit", "f.csv", "--policy", "fixed"],
            fifo("f.csv", "a history"),
        ),
        (
            &["--allocators", "f.toml", "run", "f.toml"],
            fifo("f.toml", "an allocators file"),
        ),
        (
            &["nightly", "--config", "f.toml"],
            format!(
                "f.toml: cannot read it: {}",
                fifo("f.toml", "a nightly configuration").trim_start_matches("f.toml: ")
            ),
        ),
        (
            &["sweep", "trace.toml"],
            format!("trace.toml:7:8: trace.path: {}", fifo("f.csv", "a trace")),
        ),
    ] {
        let out = run_bounded(
            Command::new(bin)
                .current_dir(&dir)
                .args(args)
                .stdout(Stdio::piped()),
        );
        assert_eq!(
            (
                out.status.code(),
                String::from_utf8_lossy(&out.stderr).into_owned()
            ),
            (Some(2), format!("gpuclaim: error: {message}\n")),
            "{args:?}"
        );
    }
    let out = run_bounded(
        Command::new(bin)
            .current_dir(&dir)
            .args(["run", "f.toml", "/dev/zero"])
            .stdout(Stdio::piped()),
    );
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stdout_of(&out),
        format!(
            "REFUSED f.toml\n        {}\nREFUSED /dev/zero\n        /dev/zero: a device, not a regular file; a scenario file is read only from a regular file\n0 passed, 0 failed, 2 refused\n",
            fifo("f.toml", "a scenario file")
        )
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn inputs_past_their_size_limit_are_refused() {
    let Some(bin) = bin() else { return };
    let dir = scratch("big");
    let big = vec![b'#'; (1 << 20) + 1];
    std::fs::write(dir.join("big.toml"), &big).unwrap();
    let out = run_bounded(
        Command::new(bin)
            .current_dir(&dir)
            .args(["run", "big.toml"])
            .stdout(Stdio::piped()),
    );
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stdout_of(&out),
        "REFUSED big.toml\n        big.toml: more than 1048576 bytes; a scenario file may have at most 1048576 bytes\n0 passed, 0 failed, 1 refused\n"
    );
    let out = run_bounded(
        Command::new(bin)
            .current_dir(&dir)
            .args(["sweep", "big.toml"])
            .stdout(Stdio::piped()),
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "gpuclaim: error: big.toml: more than 1048576 bytes; a sweep file may have at most 1048576 bytes\n"
    );
    // At the limit, the file is read (and parsed: all comments).
    std::fs::write(dir.join("big.toml"), &big[1..]).unwrap();
    let out = run_bounded(
        Command::new(bin)
            .current_dir(&dir)
            .args(["run", "big.toml"])
            .stdout(Stdio::piped()),
    );
    assert!(
        !stdout_of(&out).contains("more than 1048576 bytes"),
        "{}",
        stdout_of(&out)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn file_names_are_printed_with_control_characters_escaped() {
    let Some(bin) = bin() else { return };
    let dir = scratch("names");
    let scenario = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scenarios/doc-1gpu-kube-then-vm.toml"
    );
    let forged = "a.toml\nPASS    \u{1b}[32mforged.toml";
    std::fs::copy(scenario, dir.join(forged)).unwrap();
    let out = run_bounded(
        Command::new(bin)
            .current_dir(&dir)
            .args(["run", forged])
            .stdout(Stdio::piped()),
    );
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        stdout_of(&out),
        "PASS    a.toml\\nPASS    \\u{1b}[32mforged.toml [fixed] 1-GPU device: Kubernetes first, then a GPU VM\n\
         PASS    a.toml\\nPASS    \\u{1b}[32mforged.toml [legacy] 1-GPU device: Kubernetes first, then a GPU VM\n\
         2 passed, 0 failed, 0 refused\n"
    );
    let out = run_bounded(
        Command::new(bin)
            .current_dir(&dir)
            .args(["replay", forged])
            .stdout(Stdio::piped()),
    );
    assert!(
        stdout_of(&out).starts_with(
            "a.toml\\nPASS    \\u{1b}[32mforged.toml: 1-GPU device: Kubernetes first, then a GPU VM\n"
        ),
        "{}",
        stdout_of(&out)
    );
    std::fs::write(dir.join("e\nPASS.bin"), b"").unwrap();
    let out = run_bounded(
        Command::new(bin)
            .current_dir(&dir)
            .args(["from-fuzz", "interleaving_fixed", "e\nPASS.bin"])
            .stdout(Stdio::piped()),
    );
    assert_eq!(
        stdout_of(&out),
        "e\\nPASS.bin: no invariant fires under fixed (1 GPU, 1 VM slot, 0 actions decoded); nothing to shrink, no file written\n"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn smaller_messages_say_what_is_meant() {
    let Some(bin) = bin() else { return };
    // clap's own message for a u8 said "not in 0..=255".
    let out = run_bounded(
        Command::new(bin)
            .args(["simulate", "--gpus", "256"])
            .stdout(Stdio::piped()),
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("error: invalid value '256' for '--gpus <GPUS>': 256 is not in 1..=8\n"),
        "{err}"
    );
    let out = run_bounded(
        Command::new(bin)
            .args(["simulate", "--size", "256"])
            .stdout(Stdio::piped()),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("error: invalid value '256' for '--size <SIZE>': 256 is not in 0..=8\n"),
        "{err}"
    );
    // "1 GPUs, 1 VM slots, 0 actions" before.
    let dir = scratch("one-gpu");
    std::fs::write(dir.join("e.bin"), b"").unwrap();
    let out = run_bounded(
        Command::new(bin)
            .current_dir(&dir)
            .args(["from-fuzz", "interleaving_fixed", "e.bin"])
            .stdout(Stdio::piped()),
    );
    assert_eq!(
        stdout_of(&out),
        "e.bin: no invariant fires under fixed (1 GPU, 1 VM slot, 0 actions decoded); nothing to shrink, no file written\n"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn explore_refuses_an_output_file_that_is_the_counterexamples_folder_before_working() {
    let Some(bin) = bin() else { return };
    let dir = scratch("explore-paths");
    let out = run_bounded(
        Command::new(bin)
            .current_dir(&dir)
            .args([
                "explore", "--gpus", "2", "--vms", "2", "--policy", "legacy", "--runs", "10",
                "--steps", "10", "--seed", "1", "--out", "rw/cx",
            ])
            .args(["--counterexamples", "./rw/cx/"])
            .stdout(Stdio::piped()),
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "gpuclaim: error: --out rw/cx would be the folder --counterexamples ./rw/cx/ (or one of its parents); give the runs' file another path\n"
    );
    assert_eq!(out.status.code(), Some(2));
    // Nothing was made: the refusal came before the work.
    assert!(!dir.join("rw").exists());
    let _ = std::fs::remove_dir_all(&dir);
}
