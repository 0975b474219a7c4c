//! `gpuclaim::audit` and `gpuclaim audit` on the example histories of
//! `examples/histories/`: the lines they diverge at under `fixed` and
//! `legacy`, refusals of malformed files with `file:line`, and the exit
//! statuses a user sees.

use std::path::{Path, PathBuf};

use gpuclaim::audit::{self, Finding, Format, parse_history};
use gpuclaim::{Fixed, Invariant, Legacy, Outcome};

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/histories")
        .join(name)
}

fn load(name: &str) -> audit::History {
    audit::load(&example(name), None).expect("the example reads")
}

#[test]
fn clean_histories_conform_in_both_formats() {
    let csv = load("clean.csv");
    let jsonl = load("clean.jsonl");
    // The same steps and recorded owners, whatever the format.
    let facts = |h: &audit::History| {
        h.entries
            .iter()
            .map(|e| (e.step.clone(), e.outcome, e.owners.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(facts(&csv), facts(&jsonl));
    assert_eq!(csv.entries.len(), 14);
    assert_eq!(csv.entries[0].line, 7);
    assert_eq!(jsonl.entries[0].line, 4);
    for history in [&csv, &jsonl] {
        for report in [
            audit::audit(history, &Fixed),
            audit::audit(history, &Legacy),
        ] {
            assert!(report.conforms(), "{}", report.render());
            assert_eq!(report.checked, 14);
            assert_eq!(
                report.state_text,
                "gpu0=free gpu1=b | a:absent b:running | kube:configured"
            );
        }
    }
}

#[test]
fn takeover_diverges_at_the_event_line() {
    let history = load("takeover.csv");
    let fixed = audit::audit(&history, &Fixed);
    let d = fixed.divergence.as_ref().expect("fixed has no takeover");
    assert_eq!(d.line, 11);
    assert_eq!(fixed.checked, 4);
    assert_eq!(d.text, "2021-03-01T11:30:00Z,kube-takeover,ok,kube kube");
    assert_eq!(
        d.before,
        "gpu0=free gpu1=kube | a:stopped | kube:configured"
    );
    assert_eq!(d.expected_outcome, Outcome::Rejected);
    assert_eq!(d.expected_owners, ["free", "kube"]);
    assert_eq!(d.recorded_outcome, Outcome::Ok);
    assert_eq!(
        d.recorded_owners.as_deref(),
        Some(&["kube".to_string(), "kube".to_string()][..])
    );
    assert_eq!(
        d.findings,
        [
            Finding::NotAllowed {
                recorded: Outcome::Ok
            },
            Finding::Owner {
                gpu: 0,
                expected: "free".into(),
                recorded: "kube".into()
            }
        ]
    );

    let legacy = audit::audit(&history, &Legacy);
    let d = legacy.divergence.as_ref().expect("the takeover steals");
    assert_eq!(d.line, 11);
    assert_eq!(d.expected_outcome, Outcome::Ok);
    assert_eq!(d.expected_owners, ["kube", "kube"]);
    assert_eq!(
        d.findings,
        [Finding::Invariant(Invariant::NoStealAfterDealloc)]
    );

    let jsonl = load("takeover.jsonl");
    for report in [audit::audit(&jsonl, &Fixed), audit::audit(&jsonl, &Legacy)] {
        assert_eq!(report.divergence.map(|d| d.line), Some(9));
    }
}

#[test]
fn an_unlogged_takeover_shows_at_the_failed_start() {
    let history = load("takeover-unlogged.csv");
    for report in [
        audit::audit(&history, &Fixed),
        audit::audit(&history, &Legacy),
    ] {
        let d = report.divergence.expect("diverges");
        assert_eq!(d.line, 12);
        assert_eq!(
            d.findings,
            [
                Finding::Outcome {
                    expected: Outcome::Ok,
                    recorded: Outcome::NoGpu
                },
                Finding::Owner {
                    gpu: 0,
                    expected: "a".into(),
                    recorded: "kube".into()
                }
            ]
        );
    }
}

#[test]
fn an_allocator_from_the_registry_audits_like_the_builtin() {
    let registry = gpuclaim::Registry::builtin();
    let legacy = registry.resolve("legacy").unwrap();
    let history = load("takeover.csv");
    assert_eq!(
        audit::audit(&history, &legacy),
        audit::audit(&history, &Legacy)
    );
}

#[test]
fn malformed_histories_are_refused_with_file_and_line() {
    let head = "# device: gpus=2 vms=a:1,b:1\ntime,step,outcome,gpus\n";
    let csv_cases = [
        (
            "0,create-vm a,ok,\n1,reboot-vm a,ok,\n",
            "h.csv:4: unknown operation `reboot-vm`; expected one of create-vm, start-vm, stop-vm, remove-vm, configure-kube or kube-takeover",
        ),
        (
            "0,create-vm a,fine,\n",
            "h.csv:3: unknown outcome `fine`; expected ok, no-gpu or rejected",
        ),
        (
            "0,create-vm a,ok,a free kube\n",
            "h.csv:3: gpus lists 3 owners (`a free kube`) but the device has 2 GPUs; expected one owner per GPU, in GPU order",
        ),
        (
            "0,create-vm z,ok,\n",
            "h.csv:3: unknown VM `z`; the device line names a, b",
        ),
        (
            "10,create-vm a,ok,\n# a comment\n9,create-vm b,ok,\n",
            "h.csv:5: time `9` is before `10` on line 3; times must not go backwards",
        ),
        (
            "0,create-vm a,ok,\n# device: gpus=1\n",
            "h.csv:4: a second device line (the first is on line 1); a history names its device once",
        ),
    ];
    for (body, want) in csv_cases {
        let got = parse_history(Path::new("h.csv"), &format!("{head}{body}"));
        assert_eq!(got.unwrap_err().to_string(), want, "{body}");
    }
    let got = parse_history(Path::new("h.csv"), "time,step,outcome\n0,create-vm a,ok\n");
    assert_eq!(
        got.unwrap_err().to_string(),
        "h.csv:1: no device line; a history starts with a comment line such as `# device: gpus=2 vms=a:1,b:1`"
    );
    let got = parse_history(
        Path::new("h.jsonl"),
        "# device: gpus=1\n{\"time\": 0, \"step\": \"configure-kube\", \"outcome\": \"ok\"}\n{\"time\": 1, \"step\": \"create-vm a\" \"outcome\": \"no-gpu\"}\n",
    );
    assert_eq!(
        got.unwrap_err().to_string(),
        "h.jsonl:3:35: not valid JSON: expected `,` or `}`; each line is one JSON object"
    );
    let got = audit::parse_history_as(Path::new("h.log"), "# device: gpus=1\n", Format::Csv);
    assert_eq!(
        got.unwrap_err().to_string(),
        "h.log: no steps: the history has a device line but no step lines"
    );
}

#[cfg(feature = "cli")]
mod cli {
    use std::path::{Path, PathBuf};
    use std::process::{Command, Output};

    use super::example;

    fn gpuclaim(args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_gpuclaim"))
            .args(args)
            .output()
            .expect("the binary runs")
    }

    fn s(p: &Path) -> &str {
        p.to_str().unwrap()
    }

    fn tmp(name: &str, text: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("gpuclaim-audit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn conforming_history_exits_0() {
        for name in ["clean.csv", "clean.jsonl"] {
            let o = gpuclaim(&["audit", s(&example(name))]);
            let out = String::from_utf8(o.stdout).unwrap();
            assert_eq!(o.status.code(), Some(0), "{out}");
            assert!(out.contains("conforms: 14 lines"), "{out}");
        }
    }

    #[test]
    fn diverging_history_exits_1_naming_the_line() {
        let file = example("takeover.csv");
        let o = gpuclaim(&["audit", s(&file), "--policy", "legacy"]);
        assert_eq!(o.status.code(), Some(1));
        let out = String::from_utf8(o.stdout).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines[1],
            format!(
                "DIVERGES at {}:11 (time 2021-03-01T11:30:00Z), after 4 lines that conformed",
                file.display()
            )
        );
        assert_eq!(
            &lines[2..],
            [
                "  line:     2021-03-01T11:30:00Z,kube-takeover,ok,kube kube",
                "  before:   gpu0=free gpu1=kube | a:stopped | kube:configured",
                "  expected: ok; gpus kube kube; fires no-steal-after-dealloc",
                "  recorded: ok; gpus kube kube",
                "  - invariant no-steal-after-dealloc fires",
            ]
        );
        let o = gpuclaim(&["audit", s(&file)]);
        assert_eq!(o.status.code(), Some(1));
        let out = String::from_utf8(o.stdout).unwrap();
        assert!(
            out.contains(
                "  - the model does not allow this step in the state reached (rejected); the history says ok\n"
            ),
            "{out}"
        );
    }

    #[test]
    fn refused_inputs_exit_2() {
        let bad = tmp(
            "bad.csv",
            "# device: gpus=1 vms=a\ntime,step,outcome\n0,create-vm a,maybe\n",
        );
        let o = gpuclaim(&["audit", s(&bad)]);
        assert_eq!(o.status.code(), Some(2));
        assert_eq!(
            String::from_utf8(o.stderr).unwrap(),
            format!(
                "gpuclaim: error: {}:3: unknown outcome `maybe`; expected ok, no-gpu or rejected\n",
                bad.display()
            )
        );
        assert!(o.stdout.is_empty());

        let text = "# device: gpus=1 vms=a\n{\"time\": 0, \"step\": \"create-vm a\", \"outcome\": \"ok\", \"gpus\": \"a\"}\n";
        let log = tmp("history.log", text);
        let o = gpuclaim(&["audit", s(&log)]);
        assert_eq!(o.status.code(), Some(2));
        let o = gpuclaim(&["audit", s(&log), "--format", "jsonl"]);
        assert_eq!(o.status.code(), Some(0));

        let o = gpuclaim(&["audit", s(&example("clean.csv")), "--policy", "nope"]);
        assert_eq!(o.status.code(), Some(2));
        let err = String::from_utf8(o.stderr).unwrap();
        assert!(err.contains("unknown allocator `nope`"), "{err}");
    }
}
