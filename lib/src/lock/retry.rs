//! [`RetryPolicy`]: how long a waiting acquire sleeps between attempts when no wake-up comes.

use std::time::Duration;

/// The backoff between attempts of a waiting [`acquire`](crate::RedisLock::acquire): jittered,
/// exponential, capped.
///
/// Most waits do not depend on it: a waiter wakes as soon as the lock is released (see
/// [`AcquireOptions`](crate::AcquireOptions)), and never sleeps past the moment the holder's
/// lease expires. The backoff is the fallback for a wake-up that cannot come (a Node worker
/// releasing with GET and DEL, a lost connection), so a lost notification never strands a
/// waiter.
///
/// A value type: `Copy`, with `with_*` setters; each acquire makes its own sequence of delays.
///
/// # Default
///
/// - `min_delay`: 10 ms (the first sleep);
/// - `max_delay`: 500 ms (the cap);
/// - `factor`: 2 (each sleep doubles);
/// - `jitter`: on: each sleep is drawn uniformly from [delay/2, delay], so waiters that started
///   together spread out;
/// - `max_attempts`: none (the wait deadline ends the wait).
///
/// # Examples
///
/// ```
/// use ac_redislock::RetryPolicy;
/// use std::time::Duration;
///
/// let policy = RetryPolicy::new()
///     .with_min_delay(Duration::from_millis(50))
///     .with_max_delay(Duration::from_secs(2))
///     .with_max_attempts(20);
/// let first: Vec<Duration> = policy.without_jitter().delays().take(3).collect();
/// assert_eq!(first, [Duration::from_millis(50), Duration::from_millis(100), Duration::from_millis(200)]);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
#[must_use]
pub struct RetryPolicy {
    min_delay: Duration,
    max_delay: Duration,
    factor: u32,
    jitter: bool,
    max_attempts: Option<u32>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self::new()
    }
}

impl RetryPolicy {
    /// The default policy (see [`RetryPolicy`]).
    ///
    /// # Examples
    ///
    /// ```
    /// let policy = ac_redislock::RetryPolicy::new();
    /// ```
    pub const fn new() -> Self {
        Self {
            min_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(500),
            factor: 2,
            jitter: true,
            max_attempts: None,
        }
    }

    /// A constant delay between attempts (still jittered unless [`without_jitter`](Self::without_jitter)).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let policy = ac_redislock::RetryPolicy::fixed(Duration::from_millis(100));
    /// ```
    pub const fn fixed(delay: Duration) -> Self {
        Self {
            min_delay: delay,
            max_delay: delay,
            factor: 1,
            jitter: true,
            max_attempts: None,
        }
    }

    /// Sets the first delay.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let policy = ac_redislock::RetryPolicy::new().with_min_delay(Duration::from_millis(1));
    /// ```
    pub const fn with_min_delay(mut self, delay: Duration) -> Self {
        self.min_delay = delay;
        self
    }

    /// Sets the longest delay.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let policy = ac_redislock::RetryPolicy::new().with_max_delay(Duration::from_secs(1));
    /// ```
    pub const fn with_max_delay(mut self, delay: Duration) -> Self {
        self.max_delay = delay;
        self
    }

    /// Sets the growth factor (1 for a constant delay).
    ///
    /// # Examples
    ///
    /// ```
    /// let policy = ac_redislock::RetryPolicy::new().with_factor(3);
    /// ```
    pub const fn with_factor(mut self, factor: u32) -> Self {
        self.factor = factor;
        self
    }

    /// Turns jitter off: every waiter sleeps the same delays.
    ///
    /// # Examples
    ///
    /// ```
    /// let policy = ac_redislock::RetryPolicy::new().without_jitter();
    /// ```
    pub const fn without_jitter(mut self) -> Self {
        self.jitter = false;
        self
    }

    /// Limits the number of attempts after the first one; the wait ends with
    /// [`Locked`](crate::LockError::Locked) when they are used up, even before the deadline.
    ///
    /// # Examples
    ///
    /// ```
    /// let policy = ac_redislock::RetryPolicy::new().with_max_attempts(5);
    /// ```
    pub const fn with_max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = Some(attempts);
        self
    }

    /// The longest single delay.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// assert_eq!(ac_redislock::RetryPolicy::new().max_delay(), Duration::from_millis(500));
    /// ```
    #[must_use]
    pub const fn max_delay(&self) -> Duration {
        self.max_delay
    }

    /// The delays this policy sleeps between attempts, in order; finite when
    /// [`with_max_attempts`](Self::with_max_attempts) is set.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let policy = ac_redislock::RetryPolicy::fixed(Duration::from_millis(5)).with_max_attempts(2);
    /// assert_eq!(policy.delays().count(), 2);
    /// ```
    pub fn delays(&self) -> impl Iterator<Item = Duration> + Send + use<> {
        let policy = *self;
        let mut next = policy.min_delay.min(policy.max_delay);
        let mut rng = Jitter::seeded();
        let mut attempts = 0u32;
        std::iter::from_fn(move || {
            if policy.max_attempts.is_some_and(|max| attempts >= max) {
                return None;
            }
            attempts = attempts.saturating_add(1);
            let delay = next;
            next = next
                .saturating_mul(policy.factor.max(1))
                .min(policy.max_delay);
            Some(if policy.jitter {
                rng.between(delay / 2, delay)
            } else {
                delay
            })
        })
    }
}

/// A small xorshift generator for jitter, seeded from the OS once per sequence.
pub(crate) struct Jitter(u64);

impl Jitter {
    pub(crate) fn seeded() -> Self {
        let seed = super::token::random_u64().unwrap_or_else(|| {
            // No OS randomness: jitter still varies between processes and calls.
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos());
            u64::from(nanos) ^ u64::from(std::process::id()).rotate_left(32)
        });
        Self(seed | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A duration drawn uniformly from `[low, high]`.
    pub(crate) fn between(&mut self, low: Duration, high: Duration) -> Duration {
        let span = high.saturating_sub(low).as_nanos();
        if span == 0 {
            return low;
        }
        let offset = u128::from(self.next()) % (span + 1);
        low + Duration::from_nanos(u64::try_from(offset).unwrap_or(u64::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_sequence_doubles_to_the_cap() {
        let delays: Vec<u64> = RetryPolicy::new()
            .without_jitter()
            .delays()
            .take(8)
            .map(|d| d.as_millis() as u64)
            .collect();
        assert_eq!(delays, [10, 20, 40, 80, 160, 320, 500, 500]);
    }

    #[test]
    fn jitter_stays_within_half_to_full_and_varies() {
        let policy = RetryPolicy::fixed(Duration::from_millis(100));
        let delays: Vec<Duration> = policy.delays().take(1000).collect();
        assert!(
            delays
                .iter()
                .all(|d| (Duration::from_millis(50)..=Duration::from_millis(100)).contains(d))
        );
        let distinct: std::collections::HashSet<_> = delays.iter().collect();
        assert!(
            distinct.len() > 900,
            "jitter barely varies: {}",
            distinct.len()
        );
    }

    #[test]
    fn max_attempts_ends_the_sequence_and_overflow_is_capped() {
        assert_eq!(RetryPolicy::new().with_max_attempts(3).delays().count(), 3);
        let huge = RetryPolicy::new()
            .with_min_delay(Duration::MAX)
            .with_max_delay(Duration::MAX)
            .with_factor(u32::MAX)
            .without_jitter();
        assert!(huge.delays().take(5).all(|d| d == Duration::MAX));
    }
}
