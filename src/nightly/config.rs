//! What a nightly run runs ([`NightlyConfig`]): the allocators under test
//! and what each must give, the devices of the exhaustive checks and of
//! the random campaigns, which suites run, the campaigns' budget and the
//! master seed. Built in ([`NightlyConfig::default`], the run of
//! `gpuclaim nightly` without `--config`) or read from a TOML file
//! ([`NightlyConfig::load`]; `nightly.toml` at the repository's root is
//! the built-in one, commented). A file's errors name its line and column.

use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::invariant::Invariant;
use crate::model::Device;
use crate::policy::{Builtin, Registry};
use crate::sim::sweep::{Num, Whole};

/// The master seed when a configuration names none.
pub const DEFAULT_SEED: u64 = 2026;
/// The random campaigns' seconds when a configuration names none.
pub const DEFAULT_BUDGET: f64 = 30.0;
/// The longest budget, in seconds (a day).
pub const MAX_BUDGET: f64 = 86_400.0;
/// Actions per walk of a campaign when a configuration names none.
pub const DEFAULT_STEPS: usize = 50;
/// Runs per block of a campaign when a configuration names none.
pub const DEFAULT_BLOCK: u64 = 5_000;
/// The most actions per walk, and the most runs per block.
const MAX_STEPS: u64 = 100_000;
const MAX_BLOCK: u64 = 1_000_000;

/// What an allocator under test must give in the check and explore
/// suites.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expectation {
    /// No invariant may fire.
    Clean,
    /// Exactly these invariants must be found (in [`Invariant::ALL`]
    /// order, each once), on every device where a VM needs a GPU.
    Catch(Vec<Invariant>),
}

impl Expectation {
    /// The invariants that must be found on `device`, exactly. A device
    /// on which no VM slot needs a GPU (no slot, or only slots of size 0)
    /// has no VM to take part in a GPU bug, so every allocator must come
    /// out clean there.
    pub fn on(&self, device: &Device) -> Vec<Invariant> {
        match self {
            Expectation::Catch(invs) if device.sizes().iter().any(|&s| s > 0) => invs.clone(),
            _ => Vec::new(),
        }
    }

    /// `clean`, or `catch [a, b]`, for notes and messages.
    pub fn describe(&self) -> String {
        match self {
            Expectation::Clean => "clean".into(),
            Expectation::Catch(invs) => format!("catch {}", names(invs)),
        }
    }
}

/// Invariant names as a list: `[a, b]`, `[]` for none.
pub fn names(invs: &[Invariant]) -> String {
    let v: Vec<&str> = invs.iter().map(|i| i.name()).collect();
    format!("[{}]", v.join(", "))
}

/// An allocator under test: a name the [`Registry`] knows, and what it
/// must give.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnderTest {
    pub name: String,
    pub expect: Expectation,
    /// `with-updates = true`: what it must catch shows only in a device
    /// update (as `unmanaged-update`'s), so the catch list is judged on
    /// devices with `updates = true`, and on the others it must be clean.
    pub catch_with_updates: bool,
}

impl UnderTest {
    /// `clean`, `catch [a, b]`, or `catch [a, b] with updates`.
    pub fn describe(&self) -> String {
        if self.catch_with_updates {
            format!("{} with updates", self.expect.describe())
        } else {
            self.expect.describe()
        }
    }

    /// The invariants it must violate on `device`.
    pub fn want(&self, device: &Device) -> Vec<Invariant> {
        if self.catch_with_updates && !device.updates() {
            Vec::new()
        } else {
            self.expect.on(device)
        }
    }
}

/// The random campaigns: per allocator and device, seeded walks in blocks
/// of runs (odd blocks swarm), each campaign given an equal share of the
/// budget and at least one block.
#[derive(Clone, Debug, PartialEq)]
pub struct ExploreSuite {
    pub devices: Vec<Device>,
    /// Seconds for all the campaigns together, 0 to [`MAX_BUDGET`].
    pub budget: f64,
    /// Actions per walk.
    pub steps: usize,
    /// Runs per block.
    pub block: u64,
}

/// The whole nightly run. A suite runs when it is `Some`; they run in the
/// order of the fields.
#[derive(Clone, Debug, PartialEq)]
pub struct NightlyConfig {
    /// The random campaigns' master seed: block `k` of each campaign runs
    /// `gpuclaim explore --seed SEED+k`.
    pub seed: u64,
    /// The allocators of the check and explore suites, in the order their
    /// cases run.
    pub allocators: Vec<UnderTest>,
    /// Every scenario file of this folder, under each of its policies.
    pub scenarios: Option<PathBuf>,
    /// The exhaustive checker on each device, under each allocator.
    pub check: Option<Vec<Device>>,
    pub explore: Option<ExploreSuite>,
    /// The fuzz workspace whose `corpus/` and `regressions/` are replayed.
    pub fuzz: Option<PathBuf>,
    /// A sweep file whose `fixed` must be clean, `legacy` caught and
    /// `legacy`'s start failures higher than `fixed`'s.
    pub sweep: Option<PathBuf>,
}

impl Default for NightlyConfig {
    /// The run of `gpuclaim nightly` without `--config` (paths relative
    /// to the working folder): every scenario; `fixed` clean, `legacy`
    /// catching exactly `no-steal-after-dealloc` and `snapshot` exactly
    /// `no-double-claim`, checked on every device of 1 or 2 GPUs with 0 to
    /// 3 VM slots of size 1 and on 2 GPUs with slots of sizes `[2]` and
    /// `[2, 1, 1]`, explored on 3 slots of size 1 with 1 and 2 GPUs and on
    /// the same two mixed devices; the fuzz corpus; the legacy-versus-fixed
    /// sweep.
    fn default() -> Self {
        let device = |gpus: u8, sizes: &[u8]| Device::new(gpus, sizes).expect("a valid device");
        let mixed = [device(2, &[2]), device(2, &[2, 1, 1])];
        let updating = [
            device(2, &[1, 1, 1]).with_updates(true),
            device(2, &[2, 1]).with_updates(true),
        ];
        let mut check = Vec::new();
        for gpus in 1..=2u8 {
            for vms in 0..=3usize {
                check.push(device(gpus, &vec![1; vms]));
            }
        }
        check.extend(mixed);
        check.extend(updating);
        let mut explore = vec![device(1, &[1, 1, 1]), device(2, &[1, 1, 1])];
        explore.extend(mixed);
        explore.push(updating[0]);
        NightlyConfig {
            seed: DEFAULT_SEED,
            allocators: [
                (Builtin::Fixed, Expectation::Clean),
                (
                    Builtin::Legacy,
                    Expectation::Catch(vec![Invariant::NoStealAfterDealloc]),
                ),
                (
                    Builtin::Snapshot,
                    Expectation::Catch(vec![Invariant::NoDoubleClaim]),
                ),
                (
                    Builtin::UnmanagedUpdate,
                    Expectation::Catch(vec![
                        Invariant::HoldsMatchState,
                        Invariant::NoStealAfterDealloc,
                        Invariant::UpdateRestartsVms,
                    ]),
                ),
            ]
            .into_iter()
            .map(|(b, expect)| UnderTest {
                name: b.to_string(),
                expect,
                catch_with_updates: b == Builtin::UnmanagedUpdate,
            })
            .collect(),
            scenarios: Some("scenarios".into()),
            check: Some(check),
            explore: Some(ExploreSuite {
                devices: explore,
                budget: DEFAULT_BUDGET,
                steps: DEFAULT_STEPS,
                block: DEFAULT_BLOCK,
            }),
            fuzz: Some("fuzz".into()),
            sweep: Some("sweeps/legacy-vs-fixed-2gpu.toml".into()),
        }
    }
}

/// Why a nightly configuration file was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The reason is part of the message and deliberately not the error's
    /// `source()`: the binary prints the whole chain, which would repeat it.
    #[error("{file}: cannot read it: {error}")]
    Read { file: String, error: std::io::Error },
    #[error("{file}:{line}:{column}: {message}")]
    At {
        file: String,
        line: usize,
        column: usize,
        message: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    seed: Option<Whole>,
    #[serde(default)]
    allocator: Vec<Spanned<RawAllocator>>,
    scenarios: Option<Spanned<RawFolder>>,
    check: Option<Spanned<RawCheck>>,
    explore: Option<Spanned<RawExplore>>,
    fuzz: Option<Spanned<RawFolder>>,
    sweep: Option<Spanned<RawSweep>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAllocator {
    name: Spanned<String>,
    clean: Option<Spanned<bool>>,
    catch: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(rename = "with-updates", default)]
    with_updates: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFolder {
    dir: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSweep {
    file: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCheck {
    devices: Spanned<Vec<Spanned<RawDevice>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExplore {
    devices: Spanned<Vec<Spanned<RawDevice>>>,
    budget: Option<Spanned<Num>>,
    steps: Option<Spanned<Whole>>,
    block: Option<Spanned<Whole>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDevice {
    gpus: Spanned<Whole>,
    sizes: Spanned<Vec<Spanned<Whole>>>,
    /// Whether `update-device` is an action there (MODEL.md version 2).
    #[serde(default)]
    updates: bool,
}

/// Errors at a place in one file's text.
struct Reader<'a> {
    file: &'a str,
    text: &'a str,
    /// The folder relative paths start from.
    dir: &'a Path,
}

impl Reader<'_> {
    fn err(&self, span: Option<Range<usize>>, message: impl Into<String>) -> ConfigError {
        let (line, column) = crate::scenario::line_column(self.text, span.map_or(0, |s| s.start));
        ConfigError::At {
            file: self.file.to_string(),
            line,
            column,
            message: message.into(),
        }
    }

    fn path(&self, p: &Spanned<String>, key: &str) -> Result<PathBuf, ConfigError> {
        if p.get_ref().is_empty() {
            return Err(self.err(Some(p.span()), format!("`{key}` is empty; give a path")));
        }
        Ok(self.dir.join(p.get_ref()))
    }

    fn devices(
        &self,
        list: &Spanned<Vec<Spanned<RawDevice>>>,
        table: &str,
    ) -> Result<Vec<Device>, ConfigError> {
        if list.get_ref().is_empty() {
            return Err(self.err(
                Some(list.span()),
                format!("{table}.devices is empty; give at least one device, e.g. {{ gpus = 2, sizes = [2, 1, 1] }}"),
            ));
        }
        let mut devices: Vec<Device> = Vec::new();
        for (i, d) in list.get_ref().iter().enumerate() {
            let raw = d.get_ref();
            let gpus = u8::try_from(raw.gpus.get_ref().0).map_err(|_| {
                self.err(
                    Some(raw.gpus.span()),
                    format!("gpus {}: a device has 1 to 8 GPUs", raw.gpus.get_ref().0),
                )
            })?;
            let mut sizes = Vec::new();
            for s in raw.sizes.get_ref() {
                sizes.push(u8::try_from(s.get_ref().0).map_err(|_| {
                    self.err(
                        Some(s.span()),
                        format!("size {}: more GPUs than a device has", s.get_ref().0),
                    )
                })?);
            }
            let device = Device::new(gpus, &sizes)
                .map_err(|e| self.err(Some(d.span()), e.to_string()))?
                .with_updates(raw.updates);
            if let Some(j) = devices.iter().position(|x| *x == device) {
                return Err(self.err(
                    Some(d.span()),
                    format!(
                        "{table}.devices lists this device twice (items {} and {}); give each once, or its cases run twice",
                        j + 1,
                        i + 1
                    ),
                ));
            }
            devices.push(device);
        }
        Ok(devices)
    }
}

impl NightlyConfig {
    /// Reads a configuration file; its paths are relative to the file's
    /// folder, and its allocator names must be known to `registry`.
    pub fn load(path: &Path, registry: &Registry) -> Result<NightlyConfig, ConfigError> {
        let bytes = crate::report::read_input(
            path,
            crate::report::input_limits::NIGHTLY_CONFIG_BYTES,
            "a nightly configuration",
        )
        .map_err(|e| ConfigError::Read {
            file: path.display().to_string(),
            error: match e {
                crate::report::InputError::Io { error, .. } => error,
                other => std::io::Error::other(other.reason()),
            },
        })?;
        Self::parse_bytes(path, &bytes, registry)
    }

    /// As [`NightlyConfig::load`], from bytes already read: text that is
    /// not UTF-8 is refused at its first invalid byte.
    pub fn parse_bytes(
        path: &Path,
        bytes: &[u8],
        registry: &Registry,
    ) -> Result<NightlyConfig, ConfigError> {
        match crate::report::utf8(bytes) {
            Ok(text) => Self::parse(path, text, registry),
            Err(bad) => {
                let shown = path.display().to_string();
                let r = Reader {
                    file: &shown,
                    text: bad.valid,
                    dir: Path::new("."),
                };
                Err(r.err(
                    Some(bad.offset..bad.offset),
                    format!(
                        "not valid UTF-8: {} (byte offset {}); a nightly file is UTF-8 text",
                        bad.what, bad.offset
                    ),
                ))
            }
        }
    }

    /// As [`NightlyConfig::load`], from text already read.
    pub fn parse(
        path: &Path,
        text: &str,
        registry: &Registry,
    ) -> Result<NightlyConfig, ConfigError> {
        let shown = path.display().to_string();
        let dir = path.parent().unwrap_or(Path::new(""));
        let r = Reader {
            file: &shown,
            text,
            dir,
        };
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            r.err(
                e.span(),
                format!(
                    "{} (a nightly file has seed, [[allocator]] entries and the tables [scenarios], [check], [explore], [fuzz], [sweep]; see nightly.toml)",
                    e.message().trim()
                ),
            )
        })?;

        let mut allocators: Vec<UnderTest> = Vec::new();
        for entry in &raw.allocator {
            let a = entry.get_ref();
            let name = a.name.get_ref();
            registry
                .resolve(name)
                .map_err(|e| r.err(Some(a.name.span()), e.to_string()))?;
            if allocators.iter().any(|u| &u.name == name) {
                return Err(r.err(
                    Some(a.name.span()),
                    format!("allocator `{name}` is named twice; give each allocator once"),
                ));
            }
            let expect = match (&a.clean, &a.catch) {
                (Some(c), None) if *c.get_ref() => Expectation::Clean,
                (Some(c), None) => {
                    return Err(r.err(
                        Some(c.span()),
                        format!("allocator `{name}`: `clean = false` says nothing; give the invariants it must violate as catch = [...]"),
                    ));
                }
                (None, Some(list)) => {
                    let mut invs: Vec<Invariant> = Vec::new();
                    for item in list.get_ref() {
                        let inv = Invariant::from_name(item.get_ref()).ok_or_else(|| {
                            let known: Vec<&str> =
                                Invariant::ALL.iter().map(|i| i.name()).collect();
                            r.err(
                                Some(item.span()),
                                format!(
                                    "unknown invariant `{}`; known: {}",
                                    item.get_ref(),
                                    known.join(", ")
                                ),
                            )
                        })?;
                        if invs.contains(&inv) {
                            return Err(
                                r.err(Some(item.span()), format!("catch lists {inv} twice"))
                            );
                        }
                        invs.push(inv);
                    }
                    if invs.is_empty() {
                        return Err(r.err(
                            Some(list.span()),
                            format!("allocator `{name}`: catch is empty; an allocator that must violate nothing is clean = true"),
                        ));
                    }
                    invs.sort();
                    Expectation::Catch(invs)
                }
                (Some(_), Some(list)) => {
                    return Err(r.err(
                        Some(list.span()),
                        format!("allocator `{name}`: give clean = true or catch = [...], not both"),
                    ));
                }
                (None, None) => {
                    return Err(r.err(
                        Some(entry.span()),
                        format!("allocator `{name}`: say what it must give: clean = true, or catch = [\"INVARIANT\", ...]"),
                    ));
                }
            };
            allocators.push(UnderTest {
                name: name.clone(),
                expect,
                catch_with_updates: a.with_updates,
            });
        }

        let check = match &raw.check {
            Some(c) => Some(r.devices(&c.get_ref().devices, "check")?),
            None => None,
        };
        let explore = match &raw.explore {
            Some(e) => {
                let e = e.get_ref();
                let budget = match &e.budget {
                    Some(b)
                        if !(b.get_ref().0.is_finite()
                            && (0.0..=MAX_BUDGET).contains(&b.get_ref().0)) =>
                    {
                        return Err(r.err(
                            Some(b.span()),
                            format!("explore.budget must be a number of seconds from 0 to {MAX_BUDGET} (a day)"),
                        ));
                    }
                    Some(b) => b.get_ref().0,
                    None => DEFAULT_BUDGET,
                };
                let steps = match &e.steps {
                    Some(s) if !(1..=MAX_STEPS).contains(&s.get_ref().0) => {
                        return Err(r.err(
                            Some(s.span()),
                            format!("explore.steps must be 1 to {MAX_STEPS} actions a walk"),
                        ));
                    }
                    Some(s) => s.get_ref().0 as usize,
                    None => DEFAULT_STEPS,
                };
                let block = match &e.block {
                    Some(b) if !(1..=MAX_BLOCK).contains(&b.get_ref().0) => {
                        return Err(r.err(
                            Some(b.span()),
                            format!("explore.block must be 1 to {MAX_BLOCK} runs"),
                        ));
                    }
                    Some(b) => b.get_ref().0,
                    None => DEFAULT_BLOCK,
                };
                Some(ExploreSuite {
                    devices: r.devices(&e.devices, "explore")?,
                    budget,
                    steps,
                    block,
                })
            }
            None => None,
        };
        if allocators.is_empty() {
            let table = raw
                .check
                .as_ref()
                .map(|c| (c.span(), "[check]"))
                .or(raw.explore.as_ref().map(|e| (e.span(), "[explore]")));
            if let Some((span, table)) = table {
                return Err(r.err(
                    Some(span),
                    format!("{table} runs the allocators under test, but there is no [[allocator]] entry"),
                ));
            }
        }
        let folder = |t: &Option<Spanned<RawFolder>>, key: &str| {
            t.as_ref()
                .map(|f| r.path(&f.get_ref().dir, key))
                .transpose()
        };
        Ok(NightlyConfig {
            seed: raw.seed.map_or(DEFAULT_SEED, |s| s.0),
            allocators,
            scenarios: folder(&raw.scenarios, "scenarios.dir")?,
            check,
            explore,
            fuzz: folder(&raw.fuzz, "fuzz.dir")?,
            sweep: raw
                .sweep
                .as_ref()
                .map(|s| r.path(&s.get_ref().file, "sweep.file"))
                .transpose()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<NightlyConfig, String> {
        NightlyConfig::parse(Path::new("n.toml"), text, &Registry::builtin())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn the_committed_file_is_the_default() {
        let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("nightly.toml");
        let text = std::fs::read_to_string(&file).unwrap();
        // Relative to the working folder, as the default's paths are.
        let config =
            NightlyConfig::parse(Path::new("nightly.toml"), &text, &Registry::builtin()).unwrap();
        assert_eq!(config, NightlyConfig::default());
    }

    #[test]
    fn the_default_runs_what_it_says() {
        let c = NightlyConfig::default();
        let check = c.check.unwrap();
        assert_eq!(check.len(), 12);
        assert_eq!(check[8].sizes(), &[2]);
        assert_eq!(check[9].sizes(), &[2, 1, 1]);
        assert!(!check[9].updates());
        assert_eq!(
            (check[10].sizes(), check[10].updates()),
            (&[1, 1, 1][..], true)
        );
        assert_eq!(
            (check[11].sizes(), check[11].updates()),
            (&[2, 1][..], true)
        );
        let explore = c.explore.unwrap();
        assert_eq!(explore.devices.len(), 5);
        assert!(explore.devices[4].updates());
        assert_eq!(
            (explore.budget, explore.steps, explore.block),
            (30.0, 50, 5_000)
        );
        let names: Vec<String> = c
            .allocators
            .iter()
            .map(|a| format!("{} {}", a.name, a.describe()))
            .collect();
        assert_eq!(
            names,
            [
                "fixed clean",
                "legacy catch [no-steal-after-dealloc]",
                "snapshot catch [no-double-claim]",
                "unmanaged-update catch [holds-match-state, no-steal-after-dealloc, update-restarts-vms] with updates"
            ]
        );
    }

    #[test]
    fn a_small_file() {
        let c = parse(
            "seed = 7\n[[allocator]]\nname = \"legacy\"\ncatch = [\"no-steal-after-dealloc\"]\n\
             [check]\ndevices = [{ gpus = 2, sizes = [2, 1, 1] }]\n\
             [explore]\ndevices = [{ gpus = 1, sizes = [] }]\nbudget = 1\nsteps = 20\nblock = 100\n",
        )
        .unwrap();
        assert_eq!(
            c,
            NightlyConfig {
                seed: 7,
                allocators: vec![UnderTest {
                    name: "legacy".into(),
                    expect: Expectation::Catch(vec![Invariant::NoStealAfterDealloc]),
                    catch_with_updates: false,
                }],
                scenarios: None,
                check: Some(vec![Device::new(2, &[2, 1, 1]).unwrap()]),
                explore: Some(ExploreSuite {
                    devices: vec![Device::new(1, &[]).unwrap()],
                    budget: 1.0,
                    steps: 20,
                    block: 100,
                }),
                fuzz: None,
                sweep: None,
            }
        );
    }

    #[test]
    fn paths_are_relative_to_the_file() {
        let c = NightlyConfig::parse(
            Path::new("ci/n.toml"),
            "[scenarios]\ndir = \"s\"\n[fuzz]\ndir = \"/abs/fuzz\"\n[sweep]\nfile = \"x.toml\"\n",
            &Registry::builtin(),
        )
        .unwrap();
        assert_eq!(c.scenarios, Some(PathBuf::from("ci/s")));
        assert_eq!(c.fuzz, Some(PathBuf::from("/abs/fuzz")));
        assert_eq!(c.sweep, Some(PathBuf::from("ci/x.toml")));
        assert!(c.allocators.is_empty() && c.check.is_none() && c.explore.is_none());
    }

    #[test]
    fn refusals_name_line_and_column() {
        let alloc = "[[allocator]]\nname = \"fixed\"\nclean = true\n";
        for (text, want) in [
            (
                "seed = 1\nbudget = 3\n".to_string(),
                "n.toml:2:1: unknown field `budget`, expected one of `seed`, `allocator`, `scenarios`, `check`, `explore`, `fuzz`, `sweep` (a nightly file has seed, [[allocator]] entries and the tables [scenarios], [check], [explore], [fuzz], [sweep]; see nightly.toml)",
            ),
            (
                "[[allocator]]\nname = \"nope\"\nclean = true\n".into(),
                "n.toml:2:8: unknown allocator `nope`; known: fixed, legacy, snapshot, unmanaged-update (allocators in other processes are named in an allocators file given with --allocators)",
            ),
            (
                "[[allocator]]\nname = \"fixed\"\ncatch = [\"no-steal\"]\n".into(),
                "n.toml:3:10: unknown invariant `no-steal`; known: no-double-claim, conservation, holds-match-state, no-steal-after-dealloc, update-restarts-vms",
            ),
            (
                "[[allocator]]\nname = \"fixed\"\n".into(),
                "n.toml:1:1: allocator `fixed`: say what it must give: clean = true, or catch = [\"INVARIANT\", ...]",
            ),
            (
                "[[allocator]]\nname = \"fixed\"\nclean = true\ncatch = [\"conservation\"]\n"
                    .into(),
                "n.toml:4:9: allocator `fixed`: give clean = true or catch = [...], not both",
            ),
            (
                "[[allocator]]\nname = \"fixed\"\ncatch = []\n".into(),
                "n.toml:3:9: allocator `fixed`: catch is empty; an allocator that must violate nothing is clean = true",
            ),
            (
                format!("{alloc}{alloc}"),
                "n.toml:5:8: allocator `fixed` is named twice; give each allocator once",
            ),
            (
                format!("{alloc}[check]\ndevices = [{{ gpus = 1, sizes = [2] }}]\n"),
                "n.toml:5:12: VM slot 0 asks for 2 GPUs but the device has only 1",
            ),
            (
                format!(
                    "{alloc}[check]\ndevices = [\n  {{ gpus = 1, sizes = [] }},\n  {{ gpus = 1, sizes = [] }},\n]\n"
                ),
                "n.toml:7:3: check.devices lists this device twice (items 1 and 2); give each once, or its cases run twice",
            ),
            (
                format!("{alloc}[explore]\ndevices = []\n"),
                "n.toml:5:11: explore.devices is empty; give at least one device, e.g. { gpus = 2, sizes = [2, 1, 1] }",
            ),
            (
                format!("{alloc}[explore]\ndevices = [{{ gpus = 1, sizes = [1] }}]\nbudget = -1\n"),
                "n.toml:6:10: explore.budget must be a number of seconds from 0 to 86400 (a day)",
            ),
            (
                format!("{alloc}[check]\ndevices = [{{ gpus = 1, size = [1] }}]\n"),
                "n.toml:5:24: unknown field `size`, expected one of `gpus`, `sizes`, `updates` (a nightly file has seed, [[allocator]] entries and the tables [scenarios], [check], [explore], [fuzz], [sweep]; see nightly.toml)",
            ),
            (
                "[check]\ndevices = [{ gpus = 1, sizes = [1] }]\n".into(),
                "n.toml:1:1: [check] runs the allocators under test, but there is no [[allocator]] entry",
            ),
        ] {
            assert_eq!(parse(&text).unwrap_err(), want, "{text}");
        }
    }

    #[test]
    fn no_vm_that_needs_a_gpu_means_clean() {
        let catch = Expectation::Catch(vec![Invariant::NoDoubleClaim]);
        assert_eq!(catch.on(&Device::new(2, &[]).unwrap()), vec![]);
        assert_eq!(catch.on(&Device::new(2, &[0, 0]).unwrap()), vec![]);
        assert_eq!(
            catch.on(&Device::new(2, &[0, 2]).unwrap()),
            vec![Invariant::NoDoubleClaim]
        );
        assert_eq!(
            Expectation::Clean.on(&Device::new(1, &[1]).unwrap()),
            vec![]
        );
    }
}
