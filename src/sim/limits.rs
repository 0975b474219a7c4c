//! Upper bounds on the settings of a simulator run, and the one check that
//! applies them ([`check`]): `simulate`, sweep files and
//! [`Simulator::run`](crate::sim::Simulator::run) all refuse through it,
//! so that a value one front end accepts can never panic or run without
//! end in another. No legitimate use comes near the bounds: the example
//! sweeps simulate 720 hours at up to 0.5 arrivals per hour, and the openb
//! trace spans about 3,600 hours.

use crate::report::{count, number};
use crate::sim::engine::{MINUTES_PER_HOUR, SimConfig, Workload};

/// Simulated hours of a run: 114 years. Trace times (after their unit)
/// and the time Kubernetes is configured are bounded by it too.
pub const MAX_HORIZON_HOURS: f64 = 1e6;
/// Poisson arrivals per hour.
pub const MAX_ARRIVAL_PER_HOUR: f64 = 1e6;
/// Expected poisson arrivals of one run (arrivals per hour times the
/// horizon): each is at least one event of the engine.
pub const MAX_EXPECTED_ARRIVALS: f64 = 1e8;
/// Expected off periods of one run (VM slots times the horizon over the
/// mean off period). Every off period ends in a `start-vm`, and a start
/// that fails is followed by another off period, so this bounds on/off
/// cycles and failed starts' retries alike: short off periods would
/// otherwise keep the clock near one instant.
pub const MAX_EXPECTED_OFF_PERIODS: f64 = 1e8;

/// Events one run may process, whatever the settings: the bounds above
/// keep an accepted run far below it (each arrival and each off period is
/// a handful of events), so it only stops a run that would not end, such
/// as one under an allocator whose internal event keeps enabling itself.
pub const MAX_EVENTS_PER_RUN: u64 = 10_000_000_000;

/// Grid points of one sweep (the product of its lists' lengths): the
/// points are held in memory, about 100 bytes each.
pub const MAX_GRID_POINTS: u64 = 1_000_000;

/// Kubernetes configured at `hours`: 0 to [`MAX_HORIZON_HOURS`].
pub fn kube_at_hours(what: &str, hours: f64) -> Result<(), String> {
    if (0.0..=MAX_HORIZON_HOURS).contains(&hours) {
        Ok(())
    } else {
        Err(format!(
            "{what} {}: expected hours from 0 to {MAX_HORIZON_HOURS:e}, or never",
            number(hours)
        ))
    }
}

/// The mean delay of the takeover, minutes: positive and finite.
pub fn takeover_mean_minutes(what: &str, minutes: f64) -> Result<(), String> {
    if minutes > 0.0 && minutes.is_finite() {
        Ok(())
    } else {
        Err(format!(
            "{what} {}: expected a positive, finite number of minutes",
            number(minutes)
        ))
    }
}

/// Refuses off periods so short that a run would have more than
/// [`MAX_EXPECTED_OFF_PERIODS`], with a message naming the setting `off`.
pub fn off_periods(
    (off, off_hours): (&str, f64),
    slots: usize,
    horizon_hours: f64,
) -> Result<(), String> {
    let periods = slots as f64 * horizon_hours / off_hours;
    if periods > MAX_EXPECTED_OFF_PERIODS {
        return Err(format!(
            "{off} {} with {} over a horizon of {} hours makes {periods:.2e} expected off periods per run (each ends in a start, retried after a failed one), more than {MAX_EXPECTED_OFF_PERIODS:e}; use a longer off period or a shorter horizon",
            number(off_hours),
            count(slots as u64, "VM slot", "VM slots"),
            number(horizon_hours)
        ));
    }
    Ok(())
}

/// Refuses a poisson rate whose expected arrivals over the horizon pass
/// [`MAX_EXPECTED_ARRIVALS`], with a message naming the setting `what`.
pub fn arrivals(what: &str, per_hour: f64, horizon_hours: f64) -> Result<(), String> {
    if per_hour * horizon_hours > MAX_EXPECTED_ARRIVALS {
        return Err(format!(
            "{what} {} over a horizon of {} hours is {:e} expected arrivals per run, more than {MAX_EXPECTED_ARRIVALS:e}",
            number(per_hour),
            number(horizon_hours),
            per_hour * horizon_hours
        ));
    }
    Ok(())
}

/// Refuses what would make a run meaningless, panic or never end: a
/// distribution with a negative, NaN or infinite parameter; a horizon or
/// Kubernetes time that is negative, NaN or past [`MAX_HORIZON_HOURS`];
/// and, for a poisson workload, a stop probability outside 0 to 1, more
/// than [`MAX_EXPECTED_ARRIVALS`] expected arrivals, or more than
/// [`MAX_EXPECTED_OFF_PERIODS`] expected off periods.
pub fn check(config: &SimConfig<'_>) -> Result<(), String> {
    let most = MAX_HORIZON_HOURS * MINUTES_PER_HOUR;
    let minutes = |name: &str, t: f64| {
        if (0.0..=most).contains(&t) {
            Ok(())
        } else {
            Err(format!(
                "{name} {t} minutes: expected a time from 0 to {most:e} minutes"
            ))
        }
    };
    minutes("horizon", config.horizon)?;
    if let Some(t) = config.kube_at {
        minutes("kube_at", t)?;
    }
    let d = &config.durations;
    let mut dists = vec![
        ("takeover", config.takeover),
        ("durations.create", d.create),
        ("durations.start", d.start),
        ("durations.stop", d.stop),
        ("durations.remove", d.remove),
        ("durations.configure", d.configure),
    ];
    if let Workload::Poisson(p) = &config.workload {
        dists.extend([
            ("interarrival", p.interarrival),
            ("lifetime", p.lifetime),
            ("on", p.on),
            ("off", p.off),
        ]);
    }
    for (name, dist) in dists {
        if !dist.is_valid() {
            return Err(format!(
                "{name} {dist}: expected finite, non-negative parameters (and low <= high)"
            ));
        }
    }
    let Workload::Poisson(p) = &config.workload else {
        return Ok(());
    };
    if !(0.0..=1.0).contains(&p.provisioned_probability) {
        return Err(format!(
            "provisioned_probability {}: expected a probability from 0 to 1",
            p.provisioned_probability
        ));
    }
    let arrivals = config.horizon / p.interarrival.mean();
    if arrivals > MAX_EXPECTED_ARRIVALS {
        return Err(format!(
            "interarrival {} over a horizon of {} minutes is {arrivals:.2e} expected arrivals, more than {MAX_EXPECTED_ARRIVALS:e}",
            p.interarrival, config.horizon
        ));
    }
    let periods = config.vm_slots as f64 * config.horizon / p.off.mean();
    if periods > MAX_EXPECTED_OFF_PERIODS {
        return Err(format!(
            "off {} with {} over a horizon of {} minutes makes {periods:.2e} expected off periods (each ends in a start, retried after a failed one), more than {MAX_EXPECTED_OFF_PERIODS:e}; use a longer off period or a shorter horizon",
            p.off,
            count(config.vm_slots as u64, "VM slot", "VM slots"),
            config.horizon
        ));
    }
    Ok(())
}
