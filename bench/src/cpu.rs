//! Client CPU time: the user + system time of this process (all its threads; the
//! `redis-server` is another process and is not counted), from `getrusage(RUSAGE_SELF)`.

use std::time::Duration;

use nix::sys::resource::{UsageWho, getrusage};
use nix::sys::time::{TimeVal, TimeValLike};

/// The CPU time this process has used so far, user + system, to the microsecond (zero if
/// `getrusage` fails, which it does not for `RUSAGE_SELF`).
///
/// ```
/// let used = ac_redislock_bench::cpu::process_cpu();
/// assert!(ac_redislock_bench::cpu::process_cpu() >= used);
/// ```
pub fn process_cpu() -> Duration {
    getrusage(UsageWho::RUSAGE_SELF).map_or(Duration::ZERO, |usage| {
        micros(usage.user_time()) + micros(usage.system_time())
    })
}

/// A `timeval` as a [`Duration`].
fn micros(time: TimeVal) -> Duration {
    Duration::from_micros(u64::try_from(time.num_microseconds()).unwrap_or(0))
}

/// Microseconds of CPU per operation over a window: `cpu` used for `ops` operations, or `None`
/// without operations.
///
/// ```
/// use std::time::Duration;
/// let per = ac_redislock_bench::cpu::micros_per(Duration::from_millis(2), 1_000);
/// assert_eq!(per, Some(2.0));
/// ```
pub fn micros_per(cpu: Duration, ops: u64) -> Option<f64> {
    (ops > 0).then(|| cpu.as_secs_f64() * 1e6 / ops as f64)
}
