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

pub mod limits;
