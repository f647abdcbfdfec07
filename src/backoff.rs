//! The server's one retry policy: exponential backoff with jitter.
//!
//! Every loop that waits before trying again waits with a [`Backoff`]: a publish the
//! bus refused, a record whose handling failed, a Kafka consumer that cannot start, a
//! reader task restarted after a panic, a DynamoDB batch read that was throttled. So
//! they all grow the same way, and the jitter (a real random factor, not a clock or
//! an id) keeps instances that failed at the same moment from retrying in lockstep.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Waits that double from `first` up to `max`, each scaled by a random factor in
/// [0.75, 1.25).
#[derive(Debug, Clone)]
pub struct Backoff {
    /// The next delay, before jitter.
    next: Duration,
    /// Where the delay stops growing.
    max: Duration,
}

impl Default for Backoff {
    /// 100 ms, doubling up to 5 s: for a service that is briefly unreachable.
    fn default() -> Backoff {
        Backoff::new(Duration::from_millis(100), Duration::from_secs(5))
    }
}

impl Backoff {
    pub const fn new(first: Duration, max: Duration) -> Backoff {
        Backoff { next: first, max }
    }

    /// The next delay, before jitter (for a log line).
    pub fn upcoming(&self) -> Duration {
        self.next
    }

    /// The delay to wait now (jittered); the following one is twice as long.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next.mul_f64(0.75 + fastrand::f64() / 2.0);
        self.next = (self.next * 2).min(self.max);
        delay
    }

    /// Sleeps for the next delay. `false` when shut down instead.
    pub async fn wait(&mut self, shutdown: &CancellationToken) -> bool {
        let delay = self.next_delay();
        tokio::select! {
            _ = tokio::time::sleep(delay) => true,
            _ = shutdown.cancelled() => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap_each_within_a_quarter_of_it() {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_millis(800));
        for base in [100u64, 200, 400, 800, 800, 800] {
            let delay = backoff.next_delay();
            let (low, high) = (base * 3 / 4, base * 5 / 4);
            assert!(
                Duration::from_millis(low) <= delay && delay < Duration::from_millis(high),
                "{delay:?} outside [{low}, {high}) ms"
            );
        }
    }

    #[test]
    fn the_jitter_is_random() {
        let delays: std::collections::HashSet<Duration> =
            (0..20).map(|_| Backoff::default().next_delay()).collect();
        assert!(delays.len() > 1, "20 first delays were all {delays:?}");
    }
}
