//! The nightly run ([`run`]): the suites a [`NightlyConfig`] names, in
//! order, each case judged against what MODEL.md (or the configuration)
//! says its allocator must give, into a [`Report`]. Writing the report's
//! files, printing progress and deciding when to stop belong to the
//! caller, through an [`Observer`].
//!
//! An allocator that fails during a case (an allocator in another process
//! that died, hung or garbled a reply: [`crate::external::AllocatorFailure`])
//! makes that case fail with the failure's message; the run goes on.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use super::config::{ExploreSuite, NightlyConfig, UnderTest, names};
use super::{Case, Plot, Report, Status, Suite};
use crate::check::{self, Checker};
use crate::counterexample;
use crate::explore::{self, Campaign};
use crate::external;
use crate::fuzzing::Target;
use crate::invariant::Invariant;
use crate::model::Device;
use crate::policy::{Allocator, Builtin, Registry};
use crate::scenario;
use crate::sim::sweep::{Plan, SweepError, SweepOptions, run_sweep_until};

/// What a caller sees of a run as it goes, and how it stops one. Every
/// method but the error type has a default that does nothing.
pub trait Observer {
    /// What [`Observer::suite_done`] may fail with (writing files, say).
    type Error;

    /// Whether to stop: asked before each case and between the blocks of
    /// a campaign. The case at hand finishes; every case not begun is
    /// recorded as not run.
    fn interrupted(&self) -> bool {
        false
    }

    /// A case that ran, as it is added to its suite.
    fn case(&mut self, _suite: &str, _case: &Case) {}

    /// A suite is complete: `report` holds it and every suite before it
    /// (after the last one, the whole report [`run`] returns). An error
    /// ends the run with it.
    fn suite_done(&mut self, _report: &Report) -> Result<(), Self::Error> {
        Ok(())
    }
}

/// Sees nothing and never stops the run.
impl Observer for () {
    type Error = std::convert::Infallible;
}

/// What a run needs besides its configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// The folder the sweep suite writes its runs and plots to (the
    /// command writes `OUT/sweep`).
    pub sweep_out: PathBuf,
    /// Lines added to the report's notes after the version, budget, seed
    /// and allocators.
    pub notes: Vec<String>,
}

/// Runs the suites of `config` in order (scenarios, check, explore,
/// fuzz-corpus, sweep: those it names), the allocators' names resolved in
/// `registry`, and returns the report. `observer` sees each case and each
/// finished suite and can stop the run; an error of its `suite_done`
/// ends the run with that error.
///
/// ```
/// use gpuclaim::nightly::{NightlyConfig, Options, run};
/// use gpuclaim::{Device, Registry};
///
/// let config = NightlyConfig {
///     scenarios: None,
///     check: Some(vec![Device::new(2, &[2]).unwrap()]),
///     explore: None,
///     fuzz: None,
///     sweep: None,
///     ..NightlyConfig::default()
/// };
/// let options = Options { sweep_out: "unused".into(), notes: vec![] };
/// let Ok(report) = run(&config, &Registry::builtin(), &options, &mut ());
/// assert!(report.clean());
/// assert_eq!(report.totals(), (4, 0, 0));
/// ```
pub fn run<O: Observer>(
    config: &NightlyConfig,
    registry: &Registry,
    options: &Options,
    observer: &mut O,
) -> Result<Report, O::Error> {
    let mut notes = vec![format!("gpuclaim {}", env!("CARGO_PKG_VERSION"))];
    if let Some(e) = &config.explore {
        notes.push(format!(
            "budget {} s for random campaigns, master seed {}",
            e.budget, config.seed
        ));
    }
    if config.check.is_some() || config.explore.is_some() {
        let under: Vec<String> = config
            .allocators
            .iter()
            .map(|a| format!("{} ({})", a.name, a.describe()))
            .collect();
        notes.push(format!("allocators under test: {}", under.join(", ")));
    }
    notes.extend(options.notes.iter().cloned());
    let mut report = Report {
        title: "gpuclaim nightly".into(),
        notes,
        ..Report::default()
    };
    let mut runner = Runner { observer };
    if let Some(dir) = &config.scenarios {
        let suite = runner.scenario_suite(dir, registry);
        runner.finish(&mut report, suite)?;
    }
    if let Some(devices) = &config.check {
        let suite = runner.check_suite(devices, &config.allocators, registry);
        runner.finish(&mut report, suite)?;
    }
    if let Some(explore) = &config.explore {
        let suite = runner.explore_suite(explore, config.seed, &config.allocators, registry);
        runner.finish(&mut report, suite)?;
    }
    if let Some(fuzz) = &config.fuzz {
        let suite = runner.fuzz_corpus_suite(fuzz);
        runner.finish(&mut report, suite)?;
    }
    if let Some(sweep) = &config.sweep {
        let (suite, plots) = runner.sweep_suite(sweep, &options.sweep_out, registry);
        report.plots.extend(plots);
        runner.finish(&mut report, suite)?;
    }
    Ok(report)
}

/// A case's name for a device: `G=2 V=3` when every slot has size 1, else
/// with the sizes, `G=2 V=3 sizes=[2,1,1]`.
pub fn device_name(device: &Device) -> String {
    let sizes = device.sizes();
    let updates = if device.updates() { " updates" } else { "" };
    if sizes.iter().all(|&s| s == 1) {
        format!("G={} V={}{updates}", device.gpus(), sizes.len())
    } else {
        let list: Vec<String> = sizes.iter().map(|s| s.to_string()).collect();
        format!(
            "G={} V={} sizes=[{}]{updates}",
            device.gpus(),
            sizes.len(),
            list.join(",")
        )
    }
}

/// The allocator a case runs: a built-in one by static dispatch, any
/// other through the registry's shared one.
enum Resolved {
    Builtin(Builtin),
    Other(Arc<dyn Allocator>),
}

fn resolve(registry: &Registry, name: &str) -> Result<Resolved, String> {
    let allocator = registry.resolve(name).map_err(|e| e.to_string())?;
    Ok(match registry.builtin_named(name) {
        Some(b) => Resolved::Builtin(b),
        None => Resolved::Other(allocator),
    })
}

/// Runs `$body` with `$a` bound to the resolved allocator as `&impl
/// Allocator`, monomorphised for the built-ins.
macro_rules! with_resolved {
    ($resolved:expr, |$a:ident| $body:expr) => {
        match $resolved {
            Resolved::Builtin(b) => {
                let $a = b;
                $body
            }
            Resolved::Other(arc) => {
                let $a: &dyn Allocator = &**arc;
                $body
            }
        }
    };
}

struct Runner<'o, O> {
    observer: &'o mut O,
}

impl<O: Observer> Runner<'_, O> {
    fn stopped(&self) -> bool {
        self.observer.interrupted()
    }

    fn finish(&mut self, report: &mut Report, suite: Suite) -> Result<(), O::Error> {
        report.suites.push(suite);
        self.observer.suite_done(report)
    }

    /// Adds a case that ran to its suite and shows it to the observer.
    fn record(&mut self, suite: &mut Suite, case: Case) {
        self.observer.case(&suite.name, &case);
        suite.cases.push(case);
    }

    /// Every scenario file under each of its policies, one case each; a
    /// refused file is one failed case.
    fn scenario_suite(&mut self, dir: &Path, registry: &Registry) -> Suite {
        let mut suite = Suite::new("scenarios");
        // A path that cannot be searched (an unreadable folder) is a failed
        // case of its own; the files found elsewhere still run.
        let mut files = Vec::new();
        for found in scenario::find_scenarios(&[dir.to_path_buf()]) {
            match found {
                scenario::Found::File(f) => files.push(f),
                scenario::Found::Refused(e) => suite.cases.push(failed_case(
                    "scenario",
                    &e.file.display().to_string(),
                    format!("cannot read scenarios: {e}"),
                    String::new(),
                )),
            }
        }
        for file in files {
            let name = file.display().to_string();
            if self.stopped() {
                suite.cases.push(not_run("scenario", &name));
                continue;
            }
            let start = Instant::now();
            let scenario = match scenario::load(&file, registry) {
                Ok(s) => s,
                Err(e) => {
                    let case = failed_case(
                        "scenario",
                        &name,
                        format!("file refused: {e}"),
                        e.to_string(),
                    );
                    self.record(&mut suite, case);
                    continue;
                }
            };
            let policies = scenario.policy_names();
            let mut cases = Vec::new();
            for policy_name in &policies {
                let class = format!("scenario.{policy_name}");
                let case_name = format!("{name} [{policy_name}]");
                let policy = registry
                    .get(policy_name)
                    .expect("policy names are checked when the file is read");
                let case = guarded(&class, &case_name, || {
                    let run = scenario.run(&policy);
                    let facts = format!(
                        "{}; steps={} actions={} violations=[{}]",
                        scenario.name,
                        scenario.steps.len(),
                        run.trace.len(),
                        run.fired
                    );
                    let status = if run.passed() {
                        Status::Passed
                    } else {
                        let message: Vec<String> =
                            run.mismatches.iter().map(|m| m.to_string()).collect();
                        Status::Failed {
                            message: message.join("; "),
                            detail: format!(
                                "{}\ntrace under {}:\n{}",
                                scenario.name,
                                run.policy,
                                run.render_trace()
                            ),
                        }
                    };
                    Case {
                        class: class.clone(),
                        name: case_name.clone(),
                        status,
                        seconds: 0.0,
                        facts,
                        counterexample: None,
                    }
                });
                cases.push(case);
            }
            // The file's time, shared among its runs.
            let share = start.elapsed().as_secs_f64() / cases.len().max(1) as f64;
            for mut case in cases {
                case.seconds = share;
                self.record(&mut suite, case);
            }
        }
        suite
    }

    /// The exhaustive checker on each device under each allocator: the
    /// invariants it finds must be exactly the expected ones.
    fn check_suite(
        &mut self,
        devices: &[Device],
        allocators: &[UnderTest],
        registry: &Registry,
    ) -> Suite {
        let mut suite = Suite::new("check");
        for under in allocators {
            let resolved = resolve(registry, &under.name);
            for device in devices {
                let name = format!("{} {}", under.name, device_name(device));
                if self.stopped() {
                    suite.cases.push(not_run("check", &name));
                    continue;
                }
                let want = under.want(device);
                let case = match &resolved {
                    Err(e) => failed_case("check", &name, e.clone(), String::new()),
                    Ok(r) => guarded("check", &name, || {
                        with_resolved!(r, |a| check_case(a, device, &want, &name))
                    }),
                };
                self.record(&mut suite, case);
            }
        }
        suite
    }

    /// Seeded random campaigns per allocator and device. Each gets an
    /// equal share of the budget, spent in blocks of runs (odd blocks
    /// swarm), each block a campaign reproducible with `gpuclaim explore`
    /// and the seed it names.
    fn explore_suite(
        &mut self,
        explore: &ExploreSuite,
        seed: u64,
        allocators: &[UnderTest],
        registry: &Registry,
    ) -> Suite {
        let mut suite = Suite::new("explore");
        let campaigns = (allocators.len() * explore.devices.len()).max(1);
        let share = explore.budget / campaigns as f64;
        for under in allocators {
            let resolved = resolve(registry, &under.name);
            for device in &explore.devices {
                let name = format!("{} {}", under.name, device_name(device));
                if self.stopped() {
                    suite.cases.push(not_run("explore", &name));
                    continue;
                }
                let want = under.want(device);
                let case = match &resolved {
                    Err(e) => failed_case("explore", &name, e.clone(), String::new()),
                    Ok(r) => {
                        let campaign = CampaignCase {
                            device: *device,
                            want: &want,
                            name: &name,
                            seed,
                            share,
                            steps: explore.steps,
                            block: explore.block,
                        };
                        let observer = &*self.observer;
                        let stop = || observer.interrupted();
                        guarded("explore", &name, || {
                            with_resolved!(r, |a| campaign.run(a, &stop))
                        })
                    }
                };
                self.record(&mut suite, case);
            }
        }
        suite
    }

    /// Replays every committed fuzz input (corpus and regressions) through
    /// the library function its target wraps ([`Target::ALL`], the update
    /// targets included): `fixed` inputs fire nothing, with or without
    /// updates; `legacy`/`snapshot`/`unmanaged-update` regressions fire
    /// their target's invariant first ([`Target::expected_violation`]);
    /// the parser inputs never fail.
    fn fuzz_corpus_suite(&mut self, fuzz: &Path) -> Suite {
        let mut suite = Suite::new("fuzz-corpus");
        for target in Target::ALL {
            for kind in ["corpus", "regressions"] {
                let dir = fuzz.join(kind).join(target.name());
                let name = format!("{target} {kind}");
                // A target may have no regressions yet; a missing corpus is a failure.
                if kind == "regressions" && !dir.is_dir() {
                    continue;
                }
                if self.stopped() {
                    suite.cases.push(not_run("fuzz", &name));
                    continue;
                }
                let mut files: Vec<PathBuf> = match std::fs::read_dir(&dir) {
                    Ok(entries) => entries
                        .filter_map(|e| e.ok().map(|e| e.path()))
                        .filter(|p| p.is_file())
                        .collect(),
                    Err(e) => {
                        suite.cases.push(failed_case(
                            "fuzz",
                            &name,
                            format!("cannot read {}: {e}", dir.display()),
                            String::new(),
                        ));
                        continue;
                    }
                };
                files.sort();
                let start = Instant::now();
                let mut problems = Vec::new();
                for file in &files {
                    let bytes = match crate::report::read_input(
                        file,
                        crate::report::input_limits::FUZZ_INPUT_BYTES,
                        "a fuzz input",
                    ) {
                        Ok(b) => b,
                        Err(e) => {
                            problems.push(e.to_string());
                            continue;
                        }
                    };
                    let result = target.check(&bytes);
                    let ok = match (&result, kind, target.expected_violation()) {
                        (Ok(_), _, _) => kind == "corpus" || target.expected_violation().is_none(),
                        (Err(f), "regressions", Some(inv)) => f.invariant() == Some(inv),
                        (Err(_), _, _) => false,
                    };
                    if !ok {
                        let what = match &result {
                            Ok(_) => {
                                "passed, but a regression input must fire its target's invariant"
                                    .to_string()
                            }
                            Err(f) => f.to_string(),
                        };
                        problems.push(format!("{}: {what}", file.display()));
                    }
                }
                let facts = format!("inputs={}", files.len());
                let status = if problems.is_empty() {
                    Status::Passed
                } else {
                    Status::Failed {
                        message: format!("{} of {} inputs regressed", problems.len(), files.len()),
                        detail: problems.join("\n"),
                    }
                };
                let case = Case {
                    class: "fuzz".into(),
                    name,
                    status,
                    seconds: start.elapsed().as_secs_f64(),
                    facts,
                    counterexample: None,
                };
                self.record(&mut suite, case);
            }
        }
        suite
    }

    /// Runs the sweep and checks what MODEL.md says of its policies;
    /// returns the cases and the plots it drew.
    fn sweep_suite(
        &mut self,
        config: &Path,
        out: &Path,
        registry: &Registry,
    ) -> (Suite, Vec<Plot>) {
        let mut suite = Suite::new("sweep");
        let name = config.display().to_string();
        let names = [
            "fixed is clean",
            "legacy is caught",
            "legacy fails more starts",
        ];
        if self.stopped() {
            for n in names {
                suite.cases.push(not_run("sweep", &format!("{name}: {n}")));
            }
            return (suite, Vec::new());
        }
        let start = Instant::now();
        let observer = &*self.observer;
        let written = external::catch(|| {
            Plan::load(config, registry).and_then(|plan| {
                let options = SweepOptions {
                    out: out.to_path_buf(),
                    threads: None,
                    shard: None,
                };
                // Asked between batches: an interrupt is heard within about
                // a second, not at the end of the sweep.
                run_sweep_until(&plan, registry, &options, &|_| {}, &|| {
                    observer.interrupted()
                })
            })
        });
        let seconds = start.elapsed().as_secs_f64();
        let written = match written {
            Ok(Ok(w)) => w,
            Ok(Err(SweepError::Interrupted { .. })) => {
                for n in names {
                    suite.cases.push(not_run("sweep", &format!("{name}: {n}")));
                }
                return (suite, Vec::new());
            }
            Ok(Err(e)) => {
                suite.cases.push(failed_case(
                    "sweep",
                    &name,
                    format!("the sweep did not run: {e}"),
                    e.to_string(),
                ));
                return (suite, Vec::new());
            }
            Err(failure) => {
                suite
                    .cases
                    .push(allocator_failed("sweep", &name, &failure, seconds));
                return (suite, Vec::new());
            }
        };
        let share = seconds / names.len() as f64;
        let count = |key: &str| written.violations.get(key).copied().unwrap_or(0);
        let fixed: Vec<String> = written
            .violations
            .iter()
            .filter(|(k, v)| k.starts_with("fixed ") && **v > 0)
            .map(|(k, v)| format!("{k}: {v} steps"))
            .collect();
        let mut cases = vec![verdict(
            &format!("{name}: {}", names[0]),
            fixed.is_empty(),
            format!("runs={}", written.runs),
            || {
                (
                    "fixed violated an invariant in the sweep".into(),
                    fixed.join("\n"),
                )
            },
            share,
        )];
        let caught = count("legacy no-steal-after-dealloc");
        cases.push(verdict(
            &format!("{name}: {}", names[1]),
            caught > 0,
            format!("no-steal-after-dealloc steps={caught}"),
            || {
                (
                    "legacy never violated no-steal-after-dealloc: the harness stopped catching it"
                        .into(),
                    String::new(),
                )
            },
            share,
        ));
        let comparison = start_failures_by_rate(&written.dir.join("summary.csv"));
        let (ok, facts, detail) = match &comparison {
            Ok(rows) if !rows.is_empty() => {
                let lower: Vec<String> = rows
                    .iter()
                    .filter(|(_, f, l)| l <= f)
                    .map(|(r, f, l)| format!("arrival {r}/h: fixed {f:.3}, legacy {l:.3}"))
                    .collect();
                let all: Vec<String> = rows
                    .iter()
                    .map(|(r, f, l)| format!("{r}/h {f:.2}<{l:.2}"))
                    .collect();
                (
                    lower.is_empty(),
                    format!("start failure fraction fixed<legacy: {}", all.join(" ")),
                    lower.join("\n"),
                )
            }
            Ok(_) => (
                false,
                String::new(),
                "summary.csv has no fixed/legacy pair of start failure fractions".into(),
            ),
            Err(e) => (false, String::new(), e.clone()),
        };
        cases.push(verdict(
            &format!("{name}: {}", names[2]),
            ok,
            facts,
            || {
                (
                    "legacy's start failure fraction is not above fixed's at every arrival rate"
                        .into(),
                    detail.clone(),
                )
            },
            share,
        ));
        for case in cases {
            self.record(&mut suite, case);
        }
        let mut plots = Vec::new();
        for (file, title) in [
            (
                "failures.svg",
                "VM create and start failures against arrival rate",
            ),
            ("gpu_hours.svg", "GPU-hours: VMs, Kubernetes, idle"),
        ] {
            if let Ok(svg) = std::fs::read_to_string(written.dir.join(file)) {
                plots.push(Plot {
                    title: format!("{title} ({name})"),
                    svg,
                });
            }
        }
        (suite, plots)
    }
}

/// Runs a case; an allocator that fails inside it makes the case fail
/// with the failure's first line as its message and the whole failure
/// (request, action, trace so far) as its detail.
fn guarded(class: &str, name: &str, case: impl FnOnce() -> Case) -> Case {
    let start = Instant::now();
    external::catch(case).unwrap_or_else(|failure| {
        allocator_failed(class, name, &failure, start.elapsed().as_secs_f64())
    })
}

fn allocator_failed(
    class: &str,
    name: &str,
    failure: &external::AllocatorFailure,
    seconds: f64,
) -> Case {
    let text = failure.to_string();
    let first = text.lines().next().unwrap_or_default();
    Case {
        seconds,
        ..failed_case(class, name, format!("allocator error: {first}"), text)
    }
}

fn failed_case(class: &str, name: &str, message: String, detail: String) -> Case {
    Case {
        class: class.into(),
        name: name.into(),
        status: Status::Failed { message, detail },
        seconds: 0.0,
        facts: String::new(),
        counterexample: None,
    }
}

fn not_run(class: &str, name: &str) -> Case {
    Case {
        class: class.into(),
        name: name.into(),
        status: Status::NotRun {
            reason: "interrupted before it ran".into(),
        },
        seconds: 0.0,
        facts: String::new(),
        counterexample: None,
    }
}

/// How to check `device` from the command line, for a counterexample's
/// `source`: `gpuclaim check` takes slots of one size only.
fn check_command(policy: &str, device: &Device) -> String {
    let sizes = device.sizes();
    match sizes.first() {
        Some(&s) if sizes.iter().any(|&x| x != s) => {
            format!(
                "gpuclaim nightly, check case {policy} {}",
                device_name(device)
            )
        }
        size => {
            let size = match size {
                Some(&s) if s != 1 => format!(" --size {s}"),
                _ => String::new(),
            };
            format!(
                "gpuclaim check --gpus {} --vms {}{size} --policy {policy}{}",
                device.gpus(),
                sizes.len(),
                if device.updates() { " --updates" } else { "" }
            )
        }
    }
}

/// One exhaustive check: the invariants found must be `want`, exactly.
fn check_case<A: Allocator + ?Sized>(
    policy: &A,
    device: &Device,
    want: &[Invariant],
    name: &str,
) -> Case {
    let start = Instant::now();
    let result = Checker::new(policy, *device).run();
    let seconds = start.elapsed().as_secs_f64();
    let report = match result {
        Err(e) => {
            return Case {
                seconds,
                ..failed_case(
                    "check",
                    name,
                    format!("the check did not run: {e}"),
                    e.to_string(),
                )
            };
        }
        Ok(r) => r,
    };
    let found: Vec<Invariant> = report.violations.iter().map(|f| f.invariant).collect();
    let counterexample = report.violations.first().map(|f| {
        counterexample::scenario_from_actions(
            policy,
            device,
            &f.counterexample,
            &format!(
                "{} violates {}: shortest counterexample from check",
                policy.name(),
                f.invariant
            ),
            &check_command(policy.name(), device),
        )
        .to_toml()
    });
    let facts = format!(
        "states={} transitions={} depth={} found={}",
        report.unique_states,
        report.transitions,
        report.max_depth,
        names(&found)
    );
    let problems: Vec<String> = (found != want)
        .then(|| {
            format!(
                "expected {} but the checker found {}",
                names(want),
                names(&found)
            )
        })
        .into_iter()
        .collect();
    let status = Status::from_problems(&problems, || facts.clone());
    Case {
        class: "check".into(),
        name: name.into(),
        status,
        seconds,
        facts,
        counterexample,
    }
}

/// One campaign of the explore suite.
struct CampaignCase<'a> {
    device: Device,
    want: &'a [Invariant],
    name: &'a str,
    seed: u64,
    /// Seconds it may take (it runs at least one block).
    share: f64,
    steps: usize,
    block: u64,
}

impl CampaignCase<'_> {
    /// Blocks of runs while the share lasts and `stop` says go on; the
    /// invariants found must be `want`, and the shortest shrunk
    /// counterexample as short as the checker's.
    fn run<A: Allocator + ?Sized>(&self, policy: &A, stop: &dyn Fn() -> bool) -> Case {
        let (device, block, seed) = (self.device, self.block, self.seed);
        let start = Instant::now();
        let mut blocks = 0u64;
        let mut found: Vec<explore::Counterexample> = Vec::new();
        let mut failing = 0u64;
        // Every invariant any run violated (a run is shrunk against its
        // first only, and some invariants never fire first).
        let mut fired = crate::invariant::InvariantSet::EMPTY;
        // At least one block, then more while the share lasts.
        while blocks == 0 || (start.elapsed().as_secs_f64() < self.share && !stop()) {
            let report = Campaign::new(policy, device)
                .runs(block)
                .steps(self.steps)
                .seed(seed.wrapping_add(blocks))
                .swarm(blocks % 2 == 1)
                .run();
            failing += report.failing_runs();
            for r in &report.runs {
                fired = fired.union(r.summary.fired);
            }
            for c in report.counterexamples {
                match found
                    .iter_mut()
                    .find(|f| f.invariant == c.invariant && f.actions == c.actions)
                {
                    Some(f) => f.runs += c.runs,
                    None => found.push(c),
                }
            }
            blocks += 1;
        }
        let invs: Vec<Invariant> = fired.iter().collect();
        // The shortest counterexample must be as short as the checker's.
        let shortest = found.iter().min_by_key(|c| (c.actions.len(), c.first_run));
        let checker_len = self
            .want
            .first()
            .and_then(|inv| check::shortest_counterexample(policy, &device, *inv))
            .map(|t| t.len());
        let seconds = start.elapsed().as_secs_f64();
        let facts = format!(
            "runs={} ({} of {block}, seeds {}..={}, odd blocks --swarm) failing={failing} found={} shortest={}",
            blocks * block,
            crate::report::count(blocks, "block", "blocks"),
            seed,
            seed.wrapping_add(blocks - 1),
            names(&invs),
            shortest.map_or("-".to_string(), |c| format!("{} actions", c.actions.len()))
        );
        let mut problems = Vec::new();
        if invs != self.want {
            problems.push(format!(
                "expected {} but the campaign found {}",
                names(self.want),
                names(&invs)
            ));
        }
        if let (Some(c), Some(n)) = (shortest, checker_len)
            && c.actions.len() != n
        {
            problems.push(format!(
                "shortest shrunk counterexample has {} actions, the checker's {n}",
                c.actions.len()
            ));
        }
        let counterexample = shortest.map(|c| {
            counterexample::scenario_from_actions(
                policy,
                &device,
                &c.actions,
                &format!(
                    "{} violates {}: shrunk counterexample from nightly explore",
                    policy.name(),
                    c.invariant
                ),
                &format!(
                    "gpuclaim nightly explore campaign {}, {} runs led to it",
                    self.name, c.runs
                ),
            )
            .to_toml()
        });
        let status = Status::from_problems(&problems, || facts.clone());
        Case {
            class: "explore".into(),
            name: self.name.into(),
            status,
            seconds,
            facts,
            counterexample,
        }
    }
}

fn verdict(
    name: &str,
    ok: bool,
    facts: String,
    failure: impl FnOnce() -> (String, String),
    seconds: f64,
) -> Case {
    let status = if ok {
        Status::Passed
    } else {
        let (message, detail) = failure();
        Status::Failed { message, detail }
    };
    Case {
        class: "sweep".into(),
        name: name.into(),
        status,
        seconds,
        facts,
        counterexample: None,
    }
}

/// (arrival rate, fixed's mean start failure fraction, legacy's) for every
/// rate where the summary has both, in file order.
fn start_failures_by_rate(summary: &Path) -> Result<Vec<(String, f64, f64)>, String> {
    let mut reader =
        csv::Reader::from_path(summary).map_err(|e| format!("{}: {e}", summary.display()))?;
    let header = reader
        .headers()
        .map_err(|e| format!("{}: {e}", summary.display()))?
        .clone();
    let col = |n: &str| {
        header
            .iter()
            .position(|h| h == n)
            .ok_or_else(|| format!("{}: no column {n}", summary.display()))
    };
    let (policy, rate, frac) = (
        col("policy")?,
        col("arrival_per_hour")?,
        col("start_failure_fraction.mean")?,
    );
    let mut fixed: Vec<(String, f64)> = Vec::new();
    let mut legacy: Vec<(String, f64)> = Vec::new();
    for row in reader.records() {
        let row = row.map_err(|e| format!("{}: {e}", summary.display()))?;
        let Ok(value) = row[frac].parse::<f64>() else {
            continue;
        };
        match &row[policy] {
            "fixed" => fixed.push((row[rate].to_string(), value)),
            "legacy" => legacy.push((row[rate].to_string(), value)),
            _ => {}
        }
    }
    Ok(fixed
        .into_iter()
        .filter_map(|(r, f)| {
            legacy
                .iter()
                .find(|(lr, _)| *lr == r)
                .map(|(_, l)| (r, f, *l))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nightly::config::Expectation;
    use crate::{Policy, State};

    /// A config with only the check and explore suites.
    fn small(allocators: Vec<UnderTest>, devices: Vec<Device>) -> NightlyConfig {
        NightlyConfig {
            seed: 1,
            allocators,
            scenarios: None,
            check: Some(devices.clone()),
            explore: Some(ExploreSuite {
                devices,
                budget: 0.0,
                steps: 20,
                block: 50,
            }),
            fuzz: None,
            sweep: None,
        }
    }

    fn options() -> Options {
        Options {
            sweep_out: "unused".into(),
            notes: vec!["extra".into()],
        }
    }

    fn statuses(report: &Report) -> Vec<(String, String, String)> {
        report
            .cases()
            .map(|(s, c)| {
                let word = match &c.status {
                    Status::Passed => "pass".to_string(),
                    Status::Failed { message, .. } => format!("fail: {message}"),
                    Status::NotRun { reason } => format!("not run: {reason}"),
                };
                (s.name.clone(), c.name.clone(), word)
            })
            .collect()
    }

    fn own(v: &[(&str, &str, &str)]) -> Vec<(String, String, String)> {
        v.iter()
            .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
            .collect()
    }

    #[test]
    fn device_names() {
        assert_eq!(device_name(&Device::new(2, &[1, 1, 1]).unwrap()), "G=2 V=3");
        assert_eq!(device_name(&Device::new(1, &[]).unwrap()), "G=1 V=0");
        assert_eq!(
            device_name(&Device::new(2, &[2, 1, 1]).unwrap()),
            "G=2 V=3 sizes=[2,1,1]"
        );
        assert_eq!(
            check_command("legacy", &Device::new(2, &[2]).unwrap()),
            "gpuclaim check --gpus 2 --vms 1 --size 2 --policy legacy"
        );
        assert_eq!(
            check_command("legacy", &Device::new(2, &[]).unwrap()),
            "gpuclaim check --gpus 2 --vms 0 --policy legacy"
        );
        assert_eq!(
            check_command("legacy", &Device::new(2, &[2, 1]).unwrap()),
            "gpuclaim nightly, check case legacy G=2 V=2 sizes=[2,1]"
        );
    }

    /// The built-ins on the mixed devices of the default: each gives
    /// exactly what the default expects.
    #[test]
    fn builtins_on_two_gpu_vms_give_what_is_expected() {
        let config = small(
            NightlyConfig::default().allocators,
            vec![Device::new(2, &[2]).unwrap(), Device::new(1, &[]).unwrap()],
        );
        let Ok(report) = run(&config, &Registry::builtin(), &options(), &mut ());
        assert_eq!(
            statuses(&report),
            own(&[
                ("check", "fixed G=2 V=1 sizes=[2]", "pass"),
                ("check", "fixed G=1 V=0", "pass"),
                ("check", "legacy G=2 V=1 sizes=[2]", "pass"),
                ("check", "legacy G=1 V=0", "pass"),
                ("check", "snapshot G=2 V=1 sizes=[2]", "pass"),
                ("check", "snapshot G=1 V=0", "pass"),
                ("check", "unmanaged-update G=2 V=1 sizes=[2]", "pass"),
                ("check", "unmanaged-update G=1 V=0", "pass"),
                ("explore", "fixed G=2 V=1 sizes=[2]", "pass"),
                ("explore", "fixed G=1 V=0", "pass"),
                ("explore", "legacy G=2 V=1 sizes=[2]", "pass"),
                ("explore", "legacy G=1 V=0", "pass"),
                ("explore", "snapshot G=2 V=1 sizes=[2]", "pass"),
                ("explore", "snapshot G=1 V=0", "pass"),
                ("explore", "unmanaged-update G=2 V=1 sizes=[2]", "pass"),
                ("explore", "unmanaged-update G=1 V=0", "pass"),
            ])
        );
        assert_eq!(
            report.notes,
            [
                format!("gpuclaim {}", env!("CARGO_PKG_VERSION")),
                "budget 0 s for random campaigns, master seed 1".into(),
                "allocators under test: fixed (clean), legacy (catch [no-steal-after-dealloc]), snapshot (catch [no-double-claim]), unmanaged-update (catch [holds-match-state, no-steal-after-dealloc, update-restarts-vms] with updates)".into(),
                "extra".into(),
            ]
        );
        let (_, legacy) = report
            .cases()
            .find(|(s, c)| s.name == "check" && c.name == "legacy G=2 V=1 sizes=[2]")
            .unwrap();
        assert_eq!(
            legacy.facts,
            "states=34 transitions=70 depth=7 found=[no-steal-after-dealloc]"
        );
        assert!(
            legacy
                .counterexample
                .as_ref()
                .unwrap()
                .contains("gpuclaim check --gpus 2 --vms 1 --size 2 --policy legacy"),
        );
    }

    #[test]
    fn a_wrong_expectation_fails_the_case_with_both_lists() {
        let config = small(
            vec![UnderTest {
                name: "legacy".into(),
                expect: Expectation::Clean,
                catch_with_updates: false,
            }],
            vec![Device::new(1, &[1]).unwrap()],
        );
        let Ok(report) = run(&config, &Registry::builtin(), &options(), &mut ());
        assert_eq!(
            statuses(&report),
            own(&[
                (
                    "check",
                    "legacy G=1 V=1",
                    "fail: expected [] but the checker found [no-steal-after-dealloc]"
                ),
                (
                    "explore",
                    "legacy G=1 V=1",
                    "fail: expected [] but the campaign found [no-steal-after-dealloc]"
                ),
            ])
        );
    }

    /// An allocator that fails (as an allocator in another process does
    /// when its child dies) at the end of its first stop.
    struct DiesAtStop;
    impl Policy for DiesAtStop {
        fn name(&self) -> &str {
            "dies-at-stop"
        }
        fn release(&self, _state: &mut State, _vm: usize) {
            external::fail(external::AllocatorFailure {
                allocator: "dies-at-stop".into(),
                command: "none".into(),
                reason: "the child exited".into(),
                request: None,
                action: Some("end stop-vm a".into()),
                trace: vec!["begin create-vm a".into()],
            })
        }
    }

    #[test]
    fn an_allocator_failure_fails_its_case_and_the_run_goes_on() {
        let mut registry = Registry::builtin();
        registry.register(Arc::new(DiesAtStop));
        let config = small(
            vec![
                UnderTest {
                    name: "dies-at-stop".into(),
                    expect: Expectation::Clean,
                    catch_with_updates: false,
                },
                UnderTest {
                    name: "fixed".into(),
                    expect: Expectation::Clean,
                    catch_with_updates: false,
                },
            ],
            vec![Device::new(1, &[1]).unwrap()],
        );
        let Ok(report) = run(&config, &registry, &options(), &mut ());
        let failed = "fail: allocator error: allocator `dies-at-stop` (none): the child exited";
        assert_eq!(
            statuses(&report),
            own(&[
                ("check", "dies-at-stop G=1 V=1", failed),
                ("check", "fixed G=1 V=1", "pass"),
                ("explore", "dies-at-stop G=1 V=1", failed),
                ("explore", "fixed G=1 V=1", "pass"),
            ])
        );
        let (_, case) = report.cases().next().unwrap();
        let Status::Failed { detail, .. } = &case.status else {
            unreachable!()
        };
        assert_eq!(
            detail,
            "allocator `dies-at-stop` (none): the child exited\n  at action: end stop-vm a\n  trace so far: begin create-vm a"
        );
    }

    #[test]
    fn an_unknown_name_fails_its_cases() {
        let config = small(
            vec![UnderTest {
                name: "nope".into(),
                expect: Expectation::Clean,
                catch_with_updates: false,
            }],
            vec![Device::new(1, &[1]).unwrap()],
        );
        let Ok(report) = run(&config, &Registry::builtin(), &options(), &mut ());
        let failed = "fail: unknown allocator `nope`; known: fixed, legacy, snapshot, unmanaged-update (allocators in other processes are named in an allocators file given with --allocators)";
        assert_eq!(
            statuses(&report),
            own(&[
                ("check", "nope G=1 V=1", failed),
                ("explore", "nope G=1 V=1", failed),
            ])
        );
    }

    /// Stops after its first case; counts the suites it saw end.
    struct StopAfterOne {
        cases: usize,
        suites: Vec<usize>,
    }
    impl Observer for StopAfterOne {
        type Error = String;
        fn interrupted(&self) -> bool {
            self.cases >= 1
        }
        fn case(&mut self, _suite: &str, _case: &Case) {
            self.cases += 1;
        }
        fn suite_done(&mut self, report: &Report) -> Result<(), String> {
            self.suites.push(report.suites.len());
            if report.suites.len() == 2 {
                return Err("disk full".into());
            }
            Ok(())
        }
    }

    #[test]
    fn an_interrupted_run_lists_what_did_not_run_and_an_observer_error_ends_it() {
        let config = small(
            NightlyConfig::default().allocators,
            vec![Device::new(1, &[1]).unwrap()],
        );
        let mut observer = StopAfterOne {
            cases: 0,
            suites: vec![],
        };
        let result = run(&config, &Registry::builtin(), &options(), &mut observer);
        assert_eq!(result, Err("disk full".to_string()));
        assert_eq!(observer.suites, [1, 2]);
        assert_eq!(observer.cases, 1);

        let mut observer = StopAfterOne {
            cases: 0,
            suites: vec![],
        };
        let mut config = config;
        config.explore = None;
        let report = run(&config, &Registry::builtin(), &options(), &mut observer).unwrap();
        let not_run = "not run: interrupted before it ran";
        assert_eq!(
            statuses(&report),
            own(&[
                ("check", "fixed G=1 V=1", "pass"),
                ("check", "legacy G=1 V=1", not_run),
                ("check", "snapshot G=1 V=1", not_run),
                ("check", "unmanaged-update G=1 V=1", not_run),
            ])
        );
    }
}
