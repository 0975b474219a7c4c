//! Distributions of durations and delays, sampled by inverse transform from
//! the project's named generator ([`crate::seed::Rng`]), so that a stream
//! of draws is pinned by the algorithm and the seed alone.

use rand::RngExt;

use crate::seed::Rng;

/// A distribution of a non-negative time, in minutes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Dist {
    /// Always this value.
    Const(f64),
    /// Uniform on `[low, high)`.
    Uniform(f64, f64),
    /// Exponential with this mean (`-mean * ln(1 - u)`, `u` uniform on `[0, 1)`).
    Exp(f64),
    /// Never happens (an infinite time).
    Never,
}

impl Dist {
    /// One draw. `Const` and `Never` draw nothing from `rng`, so a
    /// deterministic distribution leaves the stream untouched.
    #[inline]
    pub fn sample(&self, rng: &mut Rng) -> f64 {
        match *self {
            Dist::Const(v) => v,
            Dist::Uniform(lo, hi) => lo + (hi - lo) * rng.random::<f64>(),
            Dist::Exp(mean) => -mean * (1.0 - rng.random::<f64>()).ln(),
            Dist::Never => f64::INFINITY,
        }
    }

    /// The mean: infinite for `Never`.
    pub fn mean(&self) -> f64 {
        match *self {
            Dist::Const(v) | Dist::Exp(v) => v,
            Dist::Uniform(lo, hi) => (lo + hi) / 2.0,
            Dist::Never => f64::INFINITY,
        }
    }

    /// Whether every parameter is finite and non-negative (and `low <= high`).
    pub fn is_valid(&self) -> bool {
        match *self {
            Dist::Const(v) | Dist::Exp(v) => v.is_finite() && v >= 0.0,
            Dist::Uniform(lo, hi) => lo.is_finite() && hi.is_finite() && 0.0 <= lo && lo <= hi,
            Dist::Never => true,
        }
    }
}

impl std::fmt::Display for Dist {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Dist::Const(v) => write!(f, "{v}"),
            Dist::Uniform(lo, hi) => write!(f, "uniform({lo},{hi})"),
            Dist::Exp(m) => write!(f, "exp(mean={m})"),
            Dist::Never => f.write_str("never"),
        }
    }
}

/// `true` with probability `p`; draws nothing when `p` is 0 or 1.
#[inline]
pub fn bernoulli(rng: &mut Rng, p: f64) -> bool {
    if p <= 0.0 {
        false
    } else if p >= 1.0 {
        true
    } else {
        rng.random::<f64>() < p
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seed;

    #[test]
    fn samples_follow_their_laws() {
        let mut rng = seed::rng(1);
        let n = 200_000;
        let mean = (0..n)
            .map(|_| Dist::Exp(60.0).sample(&mut rng))
            .sum::<f64>()
            / n as f64;
        // Standard error 60 / sqrt(200000) = 0.134; 1.0 is over 7 of them.
        assert!((mean - 60.0).abs() < 1.0, "{mean}");
        for _ in 0..1000 {
            let u = Dist::Uniform(5.0, 20.0).sample(&mut rng);
            assert!((5.0..20.0).contains(&u));
        }
        let before = rng.clone();
        assert_eq!(Dist::Const(3.0).sample(&mut rng), 3.0);
        assert_eq!(Dist::Never.sample(&mut rng), f64::INFINITY);
        assert!(!bernoulli(&mut rng, 0.0) && bernoulli(&mut rng, 1.0));
        // Deterministic draws leave the stream untouched.
        assert_eq!(rng, before);
        assert!(!Dist::Uniform(3.0, 2.0).is_valid() && !Dist::Exp(f64::NAN).is_valid());
    }
}
