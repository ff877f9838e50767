//! The clock-drift margin taken off every lease: the lock logic judges a guard's validity with
//! it, and the Redlock store judges whether a majority came in time.

use std::time::Duration;

/// The share of a ttl taken off every lease for clock drift between us and Redis, by default:
/// 1%, plus 2 ms, as Redlock's analysis suggests.
pub(crate) const DEFAULT_DRIFT_FACTOR: f64 = 0.01;

/// The margin taken off a lease of `ttl` for clock drift: `ttl * factor + 2 ms`.
pub(crate) fn drift(ttl: Duration, factor: f64) -> Duration {
    let share = Duration::try_from_secs_f64(ttl.as_secs_f64() * factor).unwrap_or(ttl);
    share.saturating_add(Duration::from_millis(2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drift_is_one_percent_plus_two_ms() {
        let default = |ttl| drift(ttl, DEFAULT_DRIFT_FACTOR);
        assert_eq!(default(Duration::from_secs(10)), Duration::from_millis(102));
        assert_eq!(
            default(Duration::from_millis(100)),
            Duration::from_millis(3)
        );
        assert_eq!(
            drift(Duration::from_secs(10), 0.05),
            Duration::from_millis(502)
        );
    }
}
