//! Lock metrics, through the [`metrics`](https://docs.rs/metrics) facade (cargo feature
//! `metrics`, off by default).
//!
//! With the feature on, every client reports what its locks do to the recorder the program
//! installed (the Prometheus exporter `metrics-exporter-prometheus`, an OpenTelemetry bridge,
//! StatsD, ...); with no recorder installed the facade drops them. With the feature off, none
//! of this is compiled in.
//!
//! | name | type | labels | what it counts |
//! |---|---|---|---|
//! | `redislock_acquisitions_total` | counter | `primitive`, `outcome` | acquisitions ended: `granted`, `locked` (a try found it held), `timed_out` (a wait gave up), `error` |
//! | `redislock_acquire_wait_seconds` | histogram | `primitive`, `outcome` | time from the call to that end |
//! | `redislock_hold_seconds` | histogram | `primitive` | time from the grant to the end of the lease (released, lost or closed) |
//! | `redislock_contended_attempts_total` | counter | `primitive` | attempts that found the lock held |
//! | `redislock_handoffs_total` | counter | `primitive` | locks a waiter was given by the release before it, with no attempt of its own |
//! | `redislock_renewals_total` | counter | `primitive` | leases extended (by the watchdog or `extend`) |
//! | `redislock_renewal_failures_total` | counter | `primitive` | extensions that failed (backend error, or the lock was gone) |
//! | `redislock_leases_lost_total` | counter | `primitive`, `reason` | leases that ended before their release: `expired`, `deleted`, `taken_over`, `unavailable`, `max_hold` |
//! | `redislock_backend_errors_total` | counter | `kind` | failed calls: `timeout`, `refused`, `disconnected`, `not_ready`, `shutdown`, `tls`, `quorum`, `redis`, `not_closed` |
//! | `redislock_holds` | gauge | `primitive` | guards of this process whose lease has not ended |
//! | `redislock_waiters` | gauge | `primitive` | acquisitions of this process waiting for a release |
//!
//! `primitive` is `lock`, `semaphore`, `read`, `write` (the two holds of a read-write lock) or
//! `multi` (`acquire_all`). The seed API's `lock_key` counts as a `lock` acquisition.
//!
//! No label takes an unbounded value: never a token, and a lock's key only where the client
//! was built with
//! [`RedisLockBuilder::metrics_key_label`](crate::RedisLockBuilder::metrics_key_label) (then
//! every per-lock series gains a `key` label, with the key as the caller gave it; use it for
//! a few known keys, not for one key per job).
//!
//! Series appear on first use. Call [`describe`] once, after installing the recorder, to give
//! them their units and help texts.
//!
//! # Examples
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! // Any recorder of the `metrics` facade; here nothing more than the name table.
//! ac_redislock::metrics::describe();
//! let locks = ac_redislock::RedisLock::from_url("redis://127.0.0.1/")?;
//! let guard = locks.acquire("jobs:42").await?;
//! guard.release().await?;
//! assert_eq!(ac_redislock::metrics::ACQUISITIONS, "redislock_acquisitions_total");
//! # Ok(()) }
//! ```

use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};

/// Acquisitions ended, by `primitive` and `outcome` (counter).
///
/// # Examples
///
/// ```
/// assert!(ac_redislock::metrics::ACQUISITIONS.ends_with("_total"));
/// ```
pub const ACQUISITIONS: &str = "redislock_acquisitions_total";
/// Time from an acquire call to its end, by `primitive` and `outcome` (histogram, seconds).
///
/// # Examples
///
/// ```
/// assert!(ac_redislock::metrics::ACQUIRE_WAIT.ends_with("_seconds"));
/// ```
pub const ACQUIRE_WAIT: &str = "redislock_acquire_wait_seconds";
/// Time from a grant to the end of its lease, by `primitive` (histogram, seconds).
///
/// # Examples
///
/// ```
/// assert!(ac_redislock::metrics::HOLD.ends_with("_seconds"));
/// ```
pub const HOLD: &str = "redislock_hold_seconds";
/// Attempts that found the lock held, by `primitive` (counter).
///
/// # Examples
///
/// ```
/// assert!(ac_redislock::metrics::CONTENDED.ends_with("_total"));
/// ```
pub const CONTENDED: &str = "redislock_contended_attempts_total";
/// Locks handed to a waiting acquisition by the release before it, by `primitive` (counter).
///
/// # Examples
///
/// ```
/// assert!(ac_redislock::metrics::HANDOFFS.ends_with("_total"));
/// ```
pub const HANDOFFS: &str = "redislock_handoffs_total";
/// Leases extended, by the watchdog or `extend`, by `primitive` (counter).
///
/// # Examples
///
/// ```
/// assert!(ac_redislock::metrics::RENEWALS.ends_with("_total"));
/// ```
pub const RENEWALS: &str = "redislock_renewals_total";
/// Extensions that failed, by `primitive` (counter).
///
/// # Examples
///
/// ```
/// assert!(ac_redislock::metrics::RENEWAL_FAILURES.ends_with("_total"));
/// ```
pub const RENEWAL_FAILURES: &str = "redislock_renewal_failures_total";
/// Leases that ended before their release, by `primitive` and `reason` (counter).
///
/// # Examples
///
/// ```
/// assert!(ac_redislock::metrics::LEASES_LOST.ends_with("_total"));
/// ```
pub const LEASES_LOST: &str = "redislock_leases_lost_total";
/// Calls that failed on the backend, by `kind` (counter).
///
/// # Examples
///
/// ```
/// assert!(ac_redislock::metrics::BACKEND_ERRORS.ends_with("_total"));
/// ```
pub const BACKEND_ERRORS: &str = "redislock_backend_errors_total";
/// Guards of this process whose lease has not ended, by `primitive` (gauge).
///
/// # Examples
///
/// ```
/// assert_eq!(ac_redislock::metrics::HOLDS, "redislock_holds");
/// ```
pub const HOLDS: &str = "redislock_holds";
/// Acquisitions of this process waiting for a release, by `primitive` (gauge).
///
/// # Examples
///
/// ```
/// assert_eq!(ac_redislock::metrics::WAITERS, "redislock_waiters");
/// ```
pub const WAITERS: &str = "redislock_waiters";

/// Gives every metric of this crate its unit and help text, in the recorder installed now
/// (call it once, after installing the recorder; without one it does nothing).
///
/// # Examples
///
/// ```
/// ac_redislock::metrics::describe();
/// ```
pub fn describe() {
    describe_counter!(
        ACQUISITIONS,
        Unit::Count,
        "Lock acquisitions ended, by primitive and outcome (granted, locked, timed_out, error)"
    );
    describe_histogram!(
        ACQUIRE_WAIT,
        Unit::Seconds,
        "Time from an acquire call to its end, by primitive and outcome"
    );
    describe_histogram!(
        HOLD,
        Unit::Seconds,
        "Time from a grant to the end of its lease (released, lost or closed)"
    );
    describe_counter!(
        CONTENDED,
        Unit::Count,
        "Lock attempts that found the lock held"
    );
    describe_counter!(
        HANDOFFS,
        Unit::Count,
        "Locks handed to a waiting acquisition by the release before it"
    );
    describe_counter!(
        RENEWALS,
        Unit::Count,
        "Leases extended (watchdog renewals and extend calls)"
    );
    describe_counter!(
        RENEWAL_FAILURES,
        Unit::Count,
        "Lease extensions that failed"
    );
    describe_counter!(
        LEASES_LOST,
        Unit::Count,
        "Leases that ended before their release, by reason"
    );
    describe_counter!(
        BACKEND_ERRORS,
        Unit::Count,
        "Lock calls that failed on the backend, by kind"
    );
    describe_gauge!(
        HOLDS,
        Unit::Count,
        "Guards of this process whose lease has not ended"
    );
    describe_gauge!(
        WAITERS,
        Unit::Count,
        "Acquisitions of this process waiting for a release"
    );
}
