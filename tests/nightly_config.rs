//! `gpuclaim nightly --config FILE`: allocators under test named in a
//! file, external ones from --allocators among them. An allocator that
//! gives what the file says passes; one that does not fails the run,
//! named in junit.xml and index.html; a name the registry does not know
//! and a malformed file are refused with exit status 2.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("gpuclaim-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn allocators_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/allocators/allocators.toml")
}

/// Whether `python3` runs; the tests of the Python allocators say they
/// were skipped when it does not.
fn python3() -> bool {
    let found = Command::new("python3")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        eprintln!("SKIPPED: no python3 on PATH, which the example allocators need");
    }
    found
}

/// `gpuclaim [--allocators FILE] nightly --config CONFIG --out OUT`.
fn nightly(allocators: bool, config: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gpuclaim"));
    if allocators {
        cmd.arg("--allocators").arg(allocators_file());
    }
    cmd.arg("nightly")
        .arg("--config")
        .arg(config)
        .arg("--out")
        .arg(out)
        .args(extra)
        .output()
        .unwrap()
}

/// Check and explore only, on two small devices, with a small budget.
fn config_for(allocator: &str) -> String {
    format!(
        "seed = 7\n\
         [[allocator]]\n\
         name = \"fixed\"\n\
         clean = true\n\
         [[allocator]]\n\
         name = \"py-buggy\"\n\
         {allocator}\n\
         [check]\n\
         devices = [{{ gpus = 1, sizes = [1] }}, {{ gpus = 2, sizes = [2] }}]\n\
         [explore]\n\
         budget = 1\n\
         steps = 20\n\
         block = 100\n\
         devices = [{{ gpus = 1, sizes = [1] }}, {{ gpus = 2, sizes = [2] }}]\n"
    )
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn an_external_allocator_that_is_not_clean_fails_the_run_by_name() {
    if !python3() {
        return;
    }
    let dir = temp_dir("nightly-config-buggy");
    let config = dir.join("nightly.toml");
    std::fs::write(&config, config_for("clean = true")).unwrap();
    let out = dir.join("out");
    let o = nightly(true, &config, &out, &[]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));

    let junit = std::fs::read_to_string(out.join("junit.xml")).unwrap();
    // Exactly the four py-buggy cases fail, with what was expected and
    // what was found.
    assert!(
        junit.starts_with(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
             <testsuites name=\"gpuclaim nightly\" tests=\"8\" failures=\"4\" skipped=\"0\" errors=\"0\">\n"
        ),
        "{junit}"
    );
    let failed: Vec<(&str, &str)> = junit
        .split("<testcase ")
        .skip(1)
        .filter_map(|case| {
            let name = case.split("\" time=").next()?;
            let message = case
                .split("<failure message=\"")
                .nth(1)?
                .split('"')
                .next()?;
            Some((name, message))
        })
        .collect();
    let checker = "expected [] but the checker found [no-steal-after-dealloc]";
    let campaign = "expected [] but the campaign found [no-steal-after-dealloc]";
    assert_eq!(
        failed,
        [
            ("classname=\"check\" name=\"py-buggy G=1 V=1", checker),
            (
                "classname=\"check\" name=\"py-buggy G=2 V=1 sizes=[2]",
                checker
            ),
            ("classname=\"explore\" name=\"py-buggy G=1 V=1", campaign),
            (
                "classname=\"explore\" name=\"py-buggy G=2 V=1 sizes=[2]",
                campaign
            ),
        ],
        "{junit}"
    );

    let html = std::fs::read_to_string(out.join("index.html")).unwrap();
    assert!(
        html.contains("<strong>FAIL</strong>: 4 passed, 4 failed, 0 not run"),
        "{html}"
    );
    for suite in ["check", "explore"] {
        for device in ["G=1 V=1", "G=2 V=1 sizes=[2]"] {
            let row = format!(
                "<tr class=\"fail\"><td>{suite}</td><td>py-buggy {device}</td><td>fail <a href="
            );
            assert!(html.contains(&row), "{row}\n{html}");
            let row = format!("<tr class=\"pass\"><td>{suite}</td><td>fixed {device}</td><td>pass");
            assert!(html.contains(&row), "{row}\n{html}");
        }
    }
    assert!(
        html.contains("<li>allocators under test: fixed (clean), py-buggy (clean)</li>"),
        "{html}"
    );
    let csv = std::fs::read_to_string(out.join("summary.csv")).unwrap();
    assert_eq!(
        csv.lines().count(),
        9,
        "a header and a row per case:\n{csv}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_external_allocator_that_is_caught_as_expected_passes() {
    if !python3() {
        return;
    }
    let dir = temp_dir("nightly-config-caught");
    let config = dir.join("nightly.toml");
    std::fs::write(&config, config_for("catch = [\"no-steal-after-dealloc\"]")).unwrap();
    let out = dir.join("out");
    let o = nightly(true, &config, &out, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let junit = std::fs::read_to_string(out.join("junit.xml")).unwrap();
    assert!(
        junit.contains(
            "<testsuites name=\"gpuclaim nightly\" tests=\"8\" failures=\"0\" skipped=\"0\" errors=\"0\">"
        ),
        "{junit}"
    );
    assert!(
        junit.contains("<testcase classname=\"explore\" name=\"py-buggy G=2 V=1 sizes=[2]\" time="),
        "{junit}"
    );
    let html = std::fs::read_to_string(out.join("index.html")).unwrap();
    assert!(
        html.contains("<strong>PASS</strong>: 8 passed, 0 failed, 0 not run"),
        "{html}"
    );
    // The counterexample the checker found is on the page, as a scenario
    // under py-buggy.
    assert!(
        html.contains(
            "py-buggy violates no-steal-after-dealloc: shortest counterexample from check"
        ),
        "{html}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_unknown_allocator_is_refused_with_the_known_names() {
    let dir = temp_dir("nightly-config-unknown");
    let config = dir.join("nightly.toml");
    std::fs::write(
        &config,
        "[[allocator]]\nname = \"fixed\"\nclean = true\n\n[[allocator]]\nname = \"py-buggy\"\nclean = true\n",
    )
    .unwrap();
    let out = dir.join("out");
    // Without --allocators, py-buggy is not known.
    let o = nightly(false, &config, &out, &[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert_eq!(
        stderr(&o),
        format!(
            "gpuclaim: error: {}:6:8: unknown allocator `py-buggy`; known: fixed, legacy, snapshot, unmanaged-update (allocators in other processes are named in an allocators file given with --allocators)\n",
            config.display()
        )
    );
    assert!(!out.exists(), "nothing ran, nothing was written");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_malformed_config_names_line_and_column() {
    let dir = temp_dir("nightly-config-malformed");
    let config = dir.join("nightly.toml");
    std::fs::write(
        &config,
        "seed = 1\n\n[check]\ndevices = [{ gpus = 2, sizes = [2, 1, 1] }]\nbudget = 3\n",
    )
    .unwrap();
    let out = dir.join("out");
    let o = nightly(false, &config, &out, &[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert_eq!(
        stderr(&o),
        format!(
            "gpuclaim: error: {}:5:1: unknown field `budget`, expected `devices` (a nightly file has seed, [[allocator]] entries and the tables [scenarios], [check], [explore], [fuzz], [sweep]; see nightly.toml)\n",
            config.display()
        )
    );
    // A flag for a suite the file does not run is refused too.
    std::fs::write(&config, "[[allocator]]\nname = \"fixed\"\nclean = true\n").unwrap();
    let o = nightly(false, &config, &out, &["--budget", "1"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert_eq!(
        stderr(&o),
        "gpuclaim: error: --budget: the configuration runs no explore suite (add the [explore] table to it)\n"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
