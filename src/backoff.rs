//! Retry delays, one rule for every retry loop (the outbox's messages,
//! presence subscriptions): the delay doubles with each failed attempt from
//! a first delay up to a cap, and each delay is spread at random by up to
//! ±[`JITTER_PERCENT`] so that many nodes that failed together (a buddy's
//! node went away, a network came back) do not all retry in the same
//! instant.
//!
//! Pure: [`Backoff::next_delay`] is a function of the attempt number and a
//! random `u64` the caller passes in, so a test can name the exact delay.
//! [`Jitter`] is the small generator the state machines keep for those
//! numbers, seeded from the OS or, for a reproducible run, by the caller.

use std::time::Duration;

/// How far jitter may move a delay from its nominal value, in percent
/// either way.
pub const JITTER_PERCENT: u32 = 20;

/// An exponential backoff: `first`, doubling with each attempt, never over
/// `cap`, jittered by ±[`JITTER_PERCENT`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    first: Duration,
    cap: Duration,
}

impl Backoff {
    /// A backoff starting at `first` (attempt 0) and growing to `cap`.
    pub const fn new(first: Duration, cap: Duration) -> Self {
        Self { first, cap }
    }

    /// The delay before jitter: `first · 2^attempt`, at most the cap.
    pub fn nominal(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt).unwrap_or(u32::MAX);
        self.first.saturating_mul(factor).min(self.cap)
    }

    /// The delay before retry number `attempt` (0 after the first
    /// failure): the nominal delay moved by `jitter` (any `u64`, uniformly
    /// spread over ±[`JITTER_PERCENT`]: 0 gives the least, `u64::MAX`
    /// nearly the most), never over the cap.
    pub fn next_delay(&self, attempt: u32, jitter: u64) -> Duration {
        spread(self.nominal(attempt), jitter).min(self.cap)
    }
}

/// `nominal` moved by `jitter` (any `u64`, uniformly spread over
/// ±[`JITTER_PERCENT`]: 0 gives the least, `u64::MAX` nearly the most):
/// for a period many nodes started together, so they do not keep it in
/// step (a large group's catch-up, `node::groups::sync::SyncPlan`).
pub fn spread(nominal: Duration, jitter: u64) -> Duration {
    let nominal = nominal.as_nanos();
    let swing = nominal * u128::from(JITTER_PERCENT) / 100;
    let offset = (2 * swing * u128::from(jitter)) >> 64;
    Duration::from_nanos(u64::try_from(nominal - swing + offset).unwrap_or(u64::MAX))
}

/// A small generator of the random numbers [`Backoff::next_delay`] and
/// [`spread`] take (splitmix64). Not for secrets: it only spreads retries in time.
#[derive(Debug, Clone)]
pub struct Jitter(u64);

impl Jitter {
    /// A generator whose numbers follow from `seed`, for runs that must
    /// come out the same every time (tests, the simulator).
    #[cfg(any(test, feature = "test-util"))]
    pub const fn seeded(seed: u64) -> Self {
        Self(seed)
    }

    /// A generator seeded by the OS, so that nodes do not retry in step.
    /// Should the OS fail to give random bytes, the clock seeds it.
    pub fn from_entropy() -> Self {
        let mut b = [0u8; 8];
        if getrandom::fill(&mut b).is_err() {
            b = crate::clock::unix_ms().to_le_bytes();
        }
        Self(u64::from_le_bytes(b))
    }

    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

impl Default for Jitter {
    /// Seeded by the OS ([`Jitter::from_entropy`]).
    fn default() -> Self {
        Self::from_entropy()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);
    const B: Backoff = Backoff::new(SECOND, Duration::from_secs(300));

    #[test]
    fn the_nominal_delay_doubles_from_the_first_up_to_the_cap() {
        let secs: Vec<u64> = (0..12).map(|a| B.nominal(a).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]);
        assert_eq!(B.nominal(31), Duration::from_secs(300));
        assert_eq!(B.nominal(u32::MAX), Duration::from_secs(300), "no overflow");
    }

    #[test]
    fn jitter_spreads_a_delay_by_twenty_percent_either_way() {
        assert_eq!(B.next_delay(0, 0), Duration::from_millis(800));
        assert_eq!(B.next_delay(0, 1 << 63), SECOND);
        assert_eq!(
            B.next_delay(0, u64::MAX),
            Duration::from_nanos(1_199_999_999)
        );
        assert_eq!(B.next_delay(3, 0), Duration::from_millis(6400));
        assert_eq!(B.next_delay(3, 1 << 62), Duration::from_millis(7200));
    }

    #[test]
    fn jitter_never_takes_a_delay_over_the_cap() {
        let cap = Duration::from_secs(300);
        assert_eq!(B.next_delay(20, 0), Duration::from_secs(240));
        assert_eq!(B.next_delay(20, u64::MAX), cap);
        // 256 s + 20 % would be 307.2 s.
        assert_eq!(B.next_delay(8, u64::MAX), cap);
    }

    #[test]
    fn delays_from_a_generator_stay_in_bounds_and_spread() {
        let mut j = Jitter::seeded(7);
        for attempt in 0..12 {
            let nominal = B.nominal(attempt);
            let mut seen = std::collections::BTreeSet::new();
            for _ in 0..200 {
                let d = B.next_delay(attempt, j.next_u64());
                assert!(d >= nominal * 4 / 5, "{d:?} under {nominal:?} - 20 %");
                assert!(d <= nominal * 6 / 5, "{d:?} over {nominal:?} + 20 %");
                assert!(d <= Duration::from_secs(300));
                seen.insert(d);
            }
            assert!(
                seen.len() > 50,
                "attempt {attempt}: {} distinct",
                seen.len()
            );
        }
    }

    #[test]
    fn a_seed_gives_the_same_numbers_and_two_seeds_differ() {
        let run = |seed| {
            let mut j = Jitter::seeded(seed);
            (0..4).map(|_| j.next_u64()).collect::<Vec<_>>()
        };
        assert_eq!(run(1), run(1));
        assert_ne!(run(1), run(2));
    }
}
