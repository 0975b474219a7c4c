//! Throughput of the time-driven simulator: model actions (begin steps, end
//! steps, internal events) per second on one core, `poisson` workload on a
//! 2-GPU device. Run with `cargo bench --bench sim`; divan reports
//! `item/s`, one item being one model action.

use divan::Bencher;
use divan::counter::ItemsCount;
use gpuclaim::Builtin;
use gpuclaim::sim::{Dist, Durations, Poisson, SimConfig, Simulator, Workload};

fn main() {
    divan::main();
}

/// A busy 2-GPU device for a year: 1 VM arrival an hour, lifetime 24 h,
/// on 2 h, off 1 h, Kubernetes at 24 h, takeover mean 60 min.
fn config() -> SimConfig<'static> {
    SimConfig {
        gpus: 2,
        vm_slots: 24,
        horizon: 365.0 * 24.0 * 60.0,
        kube_at: Some(24.0 * 60.0),
        takeover: Dist::Exp(60.0),
        durations: Durations::ASSUMED,
        workload: Workload::Poisson(Poisson::with_rates(1.0, 24.0, 2.0, 1.0, 0.2)),
    }
}

#[divan::bench(args = [Builtin::Fixed, Builtin::Legacy])]
fn poisson_2gpu_year(bencher: Bencher, policy: Builtin) {
    let config = config();
    let mut sim = Simulator::new();
    let steps = sim.run(&policy, &config, 1).unwrap().steps();
    bencher
        .counter(ItemsCount::new(steps))
        .bench_local(|| sim.run(&policy, divan::black_box(&config), 1).unwrap());
}

/// Many short runs: the per-run cost (seeding five generators, clearing the
/// queue) counts here, as in a sweep with a short horizon.
#[divan::bench(args = [Builtin::Fixed, Builtin::Legacy])]
fn poisson_2gpu_month(bencher: Bencher, policy: Builtin) {
    let mut config = config();
    config.horizon = 30.0 * 24.0 * 60.0;
    let mut sim = Simulator::new();
    let steps = sim.run(&policy, &config, 1).unwrap().steps();
    bencher
        .counter(ItemsCount::new(steps))
        .bench_local(|| sim.run(&policy, divan::black_box(&config), 1).unwrap());
}
