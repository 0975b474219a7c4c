//! End to end: `gpuclaim nightly` writes the three reports; the page opens
//! in headless Chromium and shows the results table and its plots; a
//! scenario changed to expect the wrong result makes the run exit 1 and is
//! named in junit.xml and index.html.

use std::path::{Path, PathBuf};
use std::process::Command;

fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("gpuclaim-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn nightly(out: &Path, scenarios: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_gpuclaim"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["nightly", "--budget", "1", "--out"])
        .arg(out)
        .arg("--scenarios")
        .arg(scenarios)
        .output()
        .unwrap()
}

fn committed_scenarios() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios")
}

/// Debian's Chromium, if installed (`.ci/run` installs it).
fn chromium() -> Option<PathBuf> {
    [
        "/usr/bin/chromium",
        "/usr/bin/chromium-browser",
        "/usr/bin/google-chrome",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
}

#[test]
fn nightly_wrong_expectation_exits_1_and_is_named() {
    let dir = temp_dir("nightly-wrong");
    let scen = dir.join("scenarios");
    std::fs::create_dir_all(&scen).unwrap();
    for entry in std::fs::read_dir(committed_scenarios()).unwrap() {
        let p = entry.unwrap().path();
        std::fs::copy(&p, scen.join(p.file_name().unwrap())).unwrap();
    }
    let victim = scen.join("doc-1gpu-kube-then-vm.toml");
    let text = std::fs::read_to_string(&victim).unwrap();
    std::fs::write(
        &victim,
        text.replace("vm.a = \"failed\"", "vm.a = \"running\""),
    )
    .unwrap();
    // And a file that is refused: the CSV says why, not only that it was.
    std::fs::write(
        scen.join("zz-refused.toml"),
        "name = \"x\"\ngpus = 1\nsteps = [\"fly a\"]\n",
    )
    .unwrap();
    let out = dir.join("out");
    let o = nightly(&out, &scen);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let junit = std::fs::read_to_string(out.join("junit.xml")).unwrap();
    assert!(
        junit.contains("doc-1gpu-kube-then-vm.toml [fixed]\" time="),
        "{junit}"
    );
    assert!(
        junit.contains("<failure message=\"vm.a: expected running, got failed\""),
        "{junit}"
    );
    let html = std::fs::read_to_string(out.join("index.html")).unwrap();
    assert!(
        html.contains("doc-1gpu-kube-then-vm.toml [legacy]</td><td>fail"),
        "{html}"
    );
    let csv = std::fs::read_to_string(out.join("summary.csv")).unwrap();
    assert_eq!(
        csv.matches(",fail,").count(),
        3,
        "one failure per policy, and the refused file:\n{csv}"
    );
    assert!(
        csv.contains(&format!(
            "file refused: {}:3:10: step 1: unknown operation `fly`",
            scen.join("zz-refused.toml").display()
        )),
        "{csv}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn nightly_page_opens_in_headless_chromium() {
    let dir = temp_dir("nightly-page");
    let out = dir.join("out");
    let o = nightly(&out, &committed_scenarios());
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let page = out.join("index.html");
    let Some(chromium) = chromium() else {
        eprintln!(
            "SKIPPED the browser part: no Chromium at /usr/bin/chromium (install Debian's `chromium`; .ci/run does). \
             The report files were still checked."
        );
        assert!(
            std::fs::read_to_string(&page)
                .unwrap()
                .contains("<table id=\"results\">")
        );
        return;
    };
    let profile = dir.join("profile");
    let dom = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("running chromium");
    let dom = String::from_utf8_lossy(&dom.stdout);
    // The DOM as the browser built it: the verdict, the results table with
    // a row per case, and the plots.
    assert!(dom.contains("<strong>PASS</strong>"), "{dom}");
    assert!(dom.contains("<table id=\"results\">"), "{dom}");
    let rows = dom.matches("<tr class=\"pass\">").count();
    assert!(
        rows >= 34,
        "a row per scenario and policy at least, got {rows}"
    );
    assert!(dom.contains("<svg"), "the plots are on the page");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Ctrl-C during the run: the process finishes the job at hand, writes
/// complete reports in which what did not run is marked so, and exits 1.
#[test]
fn interrupted_nightly_leaves_complete_reports() {
    use std::io::{BufRead, BufReader};
    let dir = temp_dir("nightly-interrupt");
    let out = dir.join("out");
    let mut child = Command::new(env!("CARGO_BIN_EXE_gpuclaim"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["nightly", "--budget", "600", "--out"])
        .arg(&out)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    // Wait until the checks have started, then interrupt: the random
    // campaigns (100 s each with this budget) cannot have finished.
    for line in lines.by_ref() {
        let line = line.unwrap();
        let started = line.trim_start().starts_with("check");
        seen.push(line);
        if started {
            break;
        }
    }
    let kill = Command::new("kill")
        .arg("-INT")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(kill.success());
    seen.extend(lines.map(|l| l.unwrap()));
    let status = child.wait().unwrap();
    let log = seen.join("\n");
    assert_eq!(status.code(), Some(1), "{log}");
    assert!(log.contains("interrupted: these did not run:"), "{log}");
    assert!(log.contains("  explore / legacy G=2 V=3"), "{log}");
    let junit = std::fs::read_to_string(out.join("junit.xml")).unwrap();
    assert!(junit.ends_with("</testsuites>\n"), "complete XML");
    assert!(
        junit.contains("<skipped message=\"interrupted before it ran\"/>"),
        "{junit}"
    );
    let html = std::fs::read_to_string(out.join("index.html")).unwrap();
    assert!(html.ends_with("</html>\n"));
    assert!(html.contains("interrupted by Ctrl-C"), "the page says so");
    assert!(html.contains("<strong>INCOMPLETE</strong>") || html.contains("<strong>FAIL</strong>"));
    // No temporary file is left behind.
    let names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.contains(".tmp-")), "{names:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}
