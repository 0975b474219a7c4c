//! Seeds and generators. A run is a function of its configuration and its
//! seed: the per-run seed comes from the master seed and the run's index
//! through a fixed mixing function, and the generator is a named algorithm
//! (Xoshiro256++) whose stream does not change between versions of `rand`.

use rand::SeedableRng;

/// The generator every engine uses.
pub type Rng = rand::rngs::Xoshiro256PlusPlus;

/// SplitMix64's finaliser: a fixed bijection on `u64` with good avalanche.
pub const fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The seed of run `index` of a campaign with master seed `master`.
pub const fn run_seed(master: u64, index: u64) -> u64 {
    splitmix64(master ^ splitmix64(index))
}

/// A generator for one run.
pub fn rng(seed: u64) -> Rng {
    Rng::seed_from_u64(seed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::RngExt;

    #[test]
    fn seeds_and_streams_are_pinned() {
        // Values pinned so that a change of mixing function or generator
        // (which would change every published run) fails here.
        // SplitMix64's published first output for state 0.
        assert_eq!(splitmix64(0), 0xe220_a839_7b1d_cdaf);
        assert_eq!(run_seed(0, 0), 12035550249420947055);
        let mut r = rng(42);
        let first: u64 = r.random();
        assert_eq!(first, PINNED_FIRST);
    }
    const PINNED_FIRST: u64 = 15021278609987233951;
}
