//! An interrupt reaches nightly's sweep suite between its batches (issue
//! 19, defect 11): the sweep's cases are listed as not run, so the run is
//! not clean (the command exits 1), instead of the sweep running to its end.

use std::cell::Cell;

use gpuclaim::Registry;
use gpuclaim::nightly::{Case, NightlyConfig, Observer, Options, Report, Status, run};

/// Says stop from its `after`-th question on.
struct StopAfter {
    asked: Cell<u32>,
    after: u32,
}

impl Observer for StopAfter {
    type Error = std::convert::Infallible;
    fn interrupted(&self) -> bool {
        self.asked.set(self.asked.get() + 1);
        self.asked.get() >= self.after
    }
    fn case(&mut self, _suite: &str, _case: &Case) {}
    fn suite_done(&mut self, _report: &Report) -> Result<(), Self::Error> {
        Ok(())
    }
}

#[test]
fn an_interrupt_during_the_sweep_lists_its_cases_as_not_run() {
    let dir = std::env::temp_dir().join(format!("gpuclaim-nightly-stop-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("long.toml");
    // A sweep of 200,000 runs: minutes if it ran to its end.
    std::fs::write(
        &cfg,
        "name = \"long\"\nseeds = 100000\nhorizon_hours = 1\n[grid]\ngpus = [1]\npolicies = [\"fixed\", \"legacy\"]\n",
    )
    .unwrap();
    let config = NightlyConfig {
        scenarios: None,
        check: None,
        explore: None,
        fuzz: None,
        sweep: Some(cfg.clone()),
        ..NightlyConfig::default()
    };
    let options = Options {
        sweep_out: dir.join("out"),
        notes: Vec::new(),
    };
    // Asked before the suite, before the first batch, then stop.
    let mut observer = StopAfter {
        asked: Cell::new(0),
        after: 3,
    };
    let Ok(report) = run(&config, &Registry::builtin(), &options, &mut observer);
    let sweep = report.suites.iter().find(|s| s.name == "sweep").unwrap();
    let statuses: Vec<(&str, &Status)> = sweep
        .cases
        .iter()
        .map(|c| (c.name.as_str(), &c.status))
        .collect();
    let name = cfg.display().to_string();
    let not_run = Status::NotRun {
        reason: "interrupted before it ran".into(),
    };
    assert_eq!(
        statuses,
        vec![
            (format!("{name}: fixed is clean").as_str(), &not_run),
            (format!("{name}: legacy is caught").as_str(), &not_run),
            (
                format!("{name}: legacy fails more starts").as_str(),
                &not_run
            ),
        ]
    );
    assert!(!report.clean());
    // Asked once before the suite and twice by the sweep itself (before
    // its first batch and its second): the stop came from inside it.
    assert_eq!(observer.asked.get(), 3);
    assert!(!dir.join("out/long/runs.csv").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_sweep_file_past_the_limits_is_a_failed_case_not_a_crash() {
    let dir = std::env::temp_dir().join(format!("gpuclaim-nightly-bad-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("bad.toml");
    // Accepted by the checks before, then a panic in the engine (exit 101,
    // no sweep suite in junit.xml).
    std::fs::write(
        &cfg,
        "name = \"t\"\nseeds = 1\nhorizon_hours = 1\n[grid]\ngpus = [1]\ntakeover_mean_minutes = [inf]\n",
    )
    .unwrap();
    let config = NightlyConfig {
        scenarios: None,
        check: None,
        explore: None,
        fuzz: None,
        sweep: Some(cfg.clone()),
        ..NightlyConfig::default()
    };
    let options = Options {
        sweep_out: dir.join("out"),
        notes: Vec::new(),
    };
    let Ok(report) = run(&config, &Registry::builtin(), &options, &mut ());
    let sweep = report.suites.iter().find(|s| s.name == "sweep").unwrap();
    let message = format!(
        "the sweep did not run: {}:6:25: grid.takeover_mean_minutes: inf is not a positive, finite number of minutes",
        cfg.display()
    );
    assert!(
        matches!(&sweep.cases[..], [c] if matches!(&c.status, Status::Failed { message: m, .. } if *m == message)),
        "{:?}",
        sweep.cases
    );
    assert!(report.junit_xml().contains("<testsuite name=\"sweep\""));
    let _ = std::fs::remove_dir_all(&dir);
}
