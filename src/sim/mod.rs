//! The time-driven simulator (MODEL.md "Time"): the event engine, its
//! distributions, trace workloads, and sweeps over grids of configurations
//! with per-grid-point statistics, sharding and merging.

pub mod dist;
pub mod engine;

pub use dist::Dist;
pub use engine::{
    Counters, Durations, Poisson, SimConfig, SimError, Simulator, TraceRequest, Workload, simulate,
};
#[cfg(feature = "plots")]
pub mod plot;
pub mod stats;
pub mod sweep;
pub mod tracefile;

/// Upper bounds on sizes, so that a slip (`1e300`) is refused with a message
/// instead of running without end. No legitimate use comes near them: the
/// example sweeps simulate 720 hours at up to 0.5 arrivals per hour, and the
/// openb trace spans about 3,600 hours.
pub mod limits {
    /// Simulated hours of a run: 114 years. Trace times (after their unit)
    /// are bounded by it too.
    pub const MAX_HORIZON_HOURS: f64 = 1e6;
    /// Poisson arrivals per hour.
    pub const MAX_ARRIVAL_PER_HOUR: f64 = 1e6;
    /// Expected poisson arrivals of one run (arrivals per hour times the
    /// horizon): each is at least one event of the engine.
    pub const MAX_EXPECTED_ARRIVALS: f64 = 1e8;
    /// Expected on/off cycles of one run (VM slots times the horizon over
    /// the mean on period plus the mean off period): each is at least two
    /// events, and nothing else bounds them, so short periods would keep
    /// the clock near one instant.
    pub const MAX_EXPECTED_CYCLES: f64 = 1e8;
}
