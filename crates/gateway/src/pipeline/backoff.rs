//! Retry delays with jitter: exponential growth, each wait drawn from `[d/2, d]` ("equal
//! jitter"). Hundreds of boxes that lost the hub at the same moment (a maintenance restart)
//! would otherwise come back in lock-step and knock it over again.

use std::time::Duration;

/// The waits between retries of one upload.
#[derive(Debug, Clone)]
pub(super) struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    /// Starts at `initial`, doubles up to `max`.
    pub(super) fn new(initial: Duration, max: Duration) -> Backoff {
        Backoff { next: initial, max: max.max(initial) }
    }

    /// The next wait: uniform in `[d/2, d]` for the current ceiling `d`, which then doubles.
    pub(super) fn wait(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        jittered(d, random_unit())
    }
}

/// `d/2 + u * d/2` for `u` in `[0, 1)`.
fn jittered(d: Duration, u: f64) -> Duration {
    let half = d / 2;
    half + half.mul_f64(u.clamp(0.0, 1.0))
}

/// A uniform draw in `[0, 1)` from the system RNG (no seedable RNG: boxes must not agree).
fn random_unit() -> f64 {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 4];
    match ring::rand::SystemRandom::new().fill(&mut b) {
        Ok(()) => f64::from(u32::from_le_bytes(b)) / (f64::from(u32::MAX) + 1.0),
        // No entropy: fall back to the middle of the range rather than failing a retry.
        Err(_) => 0.5,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_lie_between_half_and_the_ceiling_which_doubles_to_the_max() {
        let mut b = Backoff::new(Duration::from_millis(400), Duration::from_millis(3000));
        let ceilings = [400u64, 800, 1600, 3000, 3000];
        for c in ceilings {
            let w = b.wait().as_millis() as u64;
            assert!(w >= c / 2 && w <= c, "wait {w} ms outside [{}, {c}]", c / 2);
        }
        assert_eq!(jittered(Duration::from_secs(2), 0.0), Duration::from_secs(1));
        assert_eq!(jittered(Duration::from_secs(2), 0.5), Duration::from_millis(1500));
    }

    #[test]
    fn draws_differ_so_boxes_do_not_retry_in_step() {
        let draws: std::collections::BTreeSet<u64> =
            (0..64).map(|_| (random_unit() * 1e9) as u64).collect();
        assert!(draws.len() > 32, "only {} distinct draws of 64", draws.len());
        assert!(draws.iter().all(|&d| d < 1_000_000_000));
    }
}
