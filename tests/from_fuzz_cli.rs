//! `gpuclaim from-fuzz`: every regression input of the faulty policies
//! becomes a scenario file that `gpuclaim run` passes; inputs with nothing
//! to shrink write nothing and say so.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn gpuclaim(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gpuclaim"))
        .args(args)
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn temp(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("gpuclaim-from-fuzz-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn fuzz_dir(kind: &str, target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join(kind)
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}

#[test]
fn every_regression_becomes_a_scenario_that_gpuclaim_run_passes() {
    for (target, invariant) in [
        ("interleaving_legacy", "no-steal-after-dealloc"),
        ("interleaving_snapshot", "no-double-claim"),
    ] {
        let out = temp(target);
        let out_s = out.to_str().unwrap();
        let inputs = fuzz_dir("regressions", target);
        assert!(!inputs.is_empty());
        for input in &inputs {
            let o = gpuclaim(&["from-fuzz", target, input.to_str().unwrap(), "--out", out_s]);
            let text = stdout(&o);
            assert_eq!(o.status.code(), Some(0), "{text}");
            assert!(text.contains(&format!("{invariant} under")), "{text}");
            assert!(text.contains("replay: gpuclaim run "), "{text}");
        }
        let written: Vec<PathBuf> = std::fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert!(!written.is_empty());
        for f in &written {
            let name = f.file_name().unwrap().to_str().unwrap();
            let policy = target.trim_start_matches("interleaving_");
            assert!(
                name.starts_with(&format!("{policy}-{invariant}-")) && name.ends_with(".toml"),
                "{name}"
            );
            let text = std::fs::read_to_string(f).unwrap();
            assert!(
                text.contains(&format!("violations = [\"{invariant}\"]")),
                "{text}"
            );
        }
        // The whole folder passes `gpuclaim run`.
        let run = gpuclaim(&["run", out_s]);
        assert_eq!(run.status.code(), Some(0), "{}", stdout(&run));
        assert!(
            stdout(&run).contains(&format!("{} passed, 0 failed, 0 refused", written.len())),
            "{}",
            stdout(&run)
        );
        std::fs::remove_dir_all(&out).unwrap();
    }
}

#[test]
fn the_same_input_gives_the_same_file() {
    let input = &fuzz_dir("regressions", "interleaving_legacy")[0];
    let (a, b) = (temp("same-a"), temp("same-b"));
    for out in [&a, &b] {
        let o = gpuclaim(&[
            "from-fuzz",
            "interleaving_legacy",
            input.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]);
        assert_eq!(o.status.code(), Some(0));
    }
    let read = |d: &Path| {
        let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| {
                let p = e.unwrap().path();
                (
                    p.file_name().unwrap().to_string_lossy().into_owned(),
                    std::fs::read(&p).unwrap(),
                )
            })
            .collect();
        v.sort();
        v
    };
    assert_eq!(read(&a), read(&b));
    assert_eq!(read(&a).len(), 1);
    std::fs::remove_dir_all(&a).unwrap();
    std::fs::remove_dir_all(&b).unwrap();
}

#[test]
fn an_input_with_no_violation_writes_nothing_and_says_so() {
    let out = temp("none");
    let input = &fuzz_dir("corpus", "interleaving_fixed")[0];
    let o = gpuclaim(&[
        "from-fuzz",
        "interleaving_fixed",
        input.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0));
    assert!(
        stdout(&o).contains("no invariant fires under fixed"),
        "{}",
        stdout(&o)
    );
    assert!(stdout(&o).contains("no file written"));
    assert!(!out.exists(), "nothing is written, not even the folder");

    for target in ["scenario_parse", "step_parse"] {
        let input = &fuzz_dir("corpus", target)[0];
        let o = gpuclaim(&[
            "from-fuzz",
            target,
            input.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]);
        assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
        assert!(stdout(&o).contains("nothing to shrink"), "{}", stdout(&o));
        assert!(!out.exists());
    }
}

#[test]
fn from_fuzz_and_run_both_refuse_a_scenario_that_is_not_utf8() {
    let dir = temp("not-utf8");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("latin1.toml");
    std::fs::write(
        &file,
        b"name = \"x\"\nsource = \"caf\xe9\"\ngpus = 1\nsteps = [\"create-vm a\"]\n",
    )
    .unwrap();
    let file_s = file.to_str().unwrap();
    let o = gpuclaim(&["from-fuzz", "scenario_parse", file_s]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert!(
        stdout(&o).contains(
            "the input is refused without a panic (latin1.toml:2:14: not valid UTF-8: byte 0xE9 (byte offset 24);"
        ),
        "{}",
        stdout(&o)
    );
    let o = gpuclaim(&["run", file_s]);
    assert_eq!(o.status.code(), Some(2), "{}", stdout(&o));
    assert!(
        stdout(&o).contains(&format!(
            "{file_s}:2:14: not valid UTF-8: byte 0xE9 (byte offset 24);"
        )),
        "{}",
        stdout(&o)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn errors_exit_2() {
    let o = gpuclaim(&["from-fuzz", "interleaving", "Cargo.toml"]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8(o.stderr).unwrap();
    assert!(
        err.contains("unknown fuzz target `interleaving`; expected one of interleaving_fixed"),
        "{err}"
    );
    let o = gpuclaim(&["from-fuzz", "step_parse", "/no/such/input"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8(o.stderr)
            .unwrap()
            .contains("reading /no/such/input")
    );
}
