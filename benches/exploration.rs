//! Exploration benchmarks (`cargo bench --bench exploration`): random-walk
//! steps per second and checker states per second, on one and two threads.
//! Figures and the machine are recorded in BENCHMARKS.md, "Exploration".

use divan::Bencher;
use divan::counter::ItemsCount;
use gpuclaim::check::Checker;
use gpuclaim::explore::{Campaign, WalkConfig, Walker};
use gpuclaim::{Builtin, Device};

fn main() {
    divan::main();
}

const WALK_RUNS: u64 = 65_536;
const WALK_STEPS: usize = 50;

/// One walker on the calling thread: the engine alone, G=2, V=4, `fixed`,
/// every invariant checked after every step, distinct states counted.
#[divan::bench(sample_count = 20)]
fn walk_one_core(b: Bencher) {
    let device = Device::uniform(2, 4, 1).unwrap();
    let config = WalkConfig {
        device,
        steps: WALK_STEPS,
        swarm: false,
    };
    let policy = Builtin::Fixed;
    let mut walker = Walker::new(&policy, config);
    b.counter(ItemsCount::new(WALK_RUNS as usize * WALK_STEPS))
        .bench_local(|| {
            let mut total = 0;
            for i in 0..WALK_RUNS {
                total += walker.walk(gpuclaim::seed::run_seed(1, i)).steps;
            }
            assert_eq!(total, WALK_RUNS as usize * WALK_STEPS);
        });
}

/// A whole explore campaign (rayon pool, records collected in run order),
/// G=2, V=4, `fixed`, on 1 and 2 threads.
#[divan::bench(args = [1, 2], sample_count = 20)]
fn walk_campaign(b: Bencher, threads: usize) {
    let device = Device::uniform(2, 4, 1).unwrap();
    let policy = Builtin::Fixed;
    b.counter(ItemsCount::new(WALK_RUNS as usize * WALK_STEPS))
        .bench_local(|| {
            Campaign::new(&policy, device)
                .runs(WALK_RUNS)
                .steps(WALK_STEPS)
                .seed(1)
                .threads(threads)
                .run()
        });
}

/// The exhaustive checker on G=2, V=6 under `fixed` (1,497,289 states), on
/// 1 and 2 threads; the counter is distinct states.
#[divan::bench(args = [1, 2], sample_count = 10, sample_size = 1)]
fn check_g2_v6(b: Bencher, threads: usize) {
    let device = Device::uniform(2, 6, 1).unwrap();
    let policy = Builtin::Fixed;
    b.counter(ItemsCount::new(1_497_289usize)).bench_local(|| {
        let r = Checker::new(&policy, device)
            .threads(threads)
            .run()
            .unwrap();
        assert_eq!(r.unique_states, 1_497_289);
    });
}

/// The exhaustive checker on G=2, V=7 under `fixed` (8,025,750 states),
/// the smallest device whose check takes over a second on one core here;
/// on 1 and 2 threads, the counter is distinct states.
#[divan::bench(args = [1, 2], sample_count = 5, sample_size = 1)]
fn check_g2_v7(b: Bencher, threads: usize) {
    let device = Device::uniform(2, 7, 1).unwrap();
    let policy = Builtin::Fixed;
    b.counter(ItemsCount::new(8_025_750usize)).bench_local(|| {
        let r = Checker::new(&policy, device)
            .threads(threads)
            .run()
            .unwrap();
        assert_eq!(r.unique_states, 8_025_750);
    });
}

/// The floor under both engines: `model::for_each_enabled` and
/// `model::step` (with its invariant check) over every transition of the
/// 43,887 states of G=2, V=4 under `fixed` (258,558 transitions), with no
/// engine around them. The counter is transitions.
#[divan::bench(sample_count = 20)]
fn model_transitions_g2_v4(b: Bencher) {
    use gpuclaim::model;
    let device = Device::uniform(2, 4, 1).unwrap();
    let policy = Builtin::Fixed;
    let mut seen = std::collections::HashSet::new();
    let mut queue = vec![device.initial()];
    seen.insert(device.initial());
    while let Some(s) = queue.pop() {
        for a in model::enabled(&policy, &device, &s) {
            let next = model::step(&policy, &device, &s, a).state;
            if seen.insert(next) {
                queue.push(next);
            }
        }
    }
    let mut states: Vec<_> = seen.into_iter().collect();
    let packer = gpuclaim::pack::Packer::new(&device);
    states.sort_by_key(|s| packer.pack(s));
    b.counter(ItemsCount::new(258_558usize)).bench_local(|| {
        let mut n = 0u64;
        for s in &states {
            model::for_each_enabled(&policy, &device, s, |a| {
                let t = model::step(&policy, &device, s, a);
                n += u64::from(t.violations.is_empty());
            });
        }
        assert_eq!(n, 258_558);
        divan::black_box(n)
    });
}

/// The memory floor under the checker on G=2, V=7: a visited set of the
/// size the check ends with (1,861,276 buckets, 119 MB), empty,
/// probed once per transition of that check (77,820,567) at keys that
/// scatter like the checker's, each probe's bucket prefetched 64 probes
/// ahead (with the next bucket) as the checker does, and nothing else: no
/// successors, no insertions, no growth. The counter is probes. On two
/// threads each probes half the keys: what the machine's memory gives two
/// cores at once, against which the checker's two threads are measured.
#[divan::bench(args = [1, 2], sample_count = 3, sample_size = 1)]
fn visited_probe_floor_g2_v7(b: Bencher, threads: u64) {
    use gpuclaim::pack::SharedKeySet;
    const PROBES: u64 = 77_820_567;
    const AHEAD: u64 = 64;
    let set = SharedKeySet::with_capacity(11_167_650, 3);
    assert_eq!(set.bytes(), 119_121_664);
    // Odd multiples of a large odd constant: distinct keys, spread over
    // every bucket by the set's own hash.
    let key = |i: u64| i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 14;
    let probe = |from: u64, to: u64| {
        let mut found = 0u64;
        for i in from..to {
            set.prefetch(set.home(key(i + AHEAD)));
            let k = key(i);
            found += u64::from(set.found_untagged(k, set.home(k)));
        }
        found
    };
    b.counter(ItemsCount::new(PROBES as usize)).bench_local(|| {
        let share = PROBES.div_ceil(threads);
        let found: u64 = std::thread::scope(|s| {
            let workers: Vec<_> = (0..threads)
                .map(|t| s.spawn(move || probe(t * share, ((t + 1) * share).min(PROBES))))
                .collect();
            workers
                .into_iter()
                .map(|w| w.join().expect("a probing thread"))
                .sum()
        });
        assert_eq!(found, 0);
        divan::black_box(found)
    });
}
