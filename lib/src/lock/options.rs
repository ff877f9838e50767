//! [`AcquireOptions`]: how [`acquire`](crate::RedisLock::acquire_with),
//! [`try_acquire`](crate::RedisLock::try_acquire_with) and
//! [`with_lock`](crate::RedisLock::with_lock) take a lock.

use std::time::Duration;

use super::retry::RetryPolicy;
use crate::error::{InvalidInput, Result};
use crate::store::Shape;

/// Default lease of a guard: 10 seconds, as `lock_key`'s default expiry.
pub const DEFAULT_TTL: Duration = Duration::from_secs(10);
/// Default wait of [`acquire`](crate::RedisLock::acquire): 10 seconds.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(10);
/// Default longest time a renewed lock is held: 1 hour. After it, renewal stops and the lease
/// runs out, so a holder that hangs cannot keep a lock forever.
pub const DEFAULT_MAX_HOLD: Duration = Duration::from_secs(60 * 60);
/// Longest holder label ([`AcquireOptions::holder`]): 256 bytes.
pub const MAX_HOLDER_LEN: usize = 256;

/// Options for taking a lock as a guard.
///
/// The lease (`ttl`) and the wait are separate: the ttl is how long the lock lives without
/// renewal, the wait is how long [`acquire`](crate::RedisLock::acquire_with) tries before it
/// gives up with [`Locked`](crate::LockError::Locked).
///
/// # Default
///
/// - `ttl`: [`DEFAULT_TTL`] (10 s);
/// - `wait`: [`DEFAULT_WAIT`] (10 s) for `acquire` and `with_lock`; `try_acquire` never waits;
/// - `retry`: [`RetryPolicy::new`] (10 ms doubling to 500 ms, jittered), the fallback when no
///   release wake-up comes;
/// - `auto_renew`: off for `acquire` and `try_acquire`, on for `with_lock`;
/// - `renew_interval`: a third of the ttl;
/// - `max_hold`: [`DEFAULT_MAX_HOLD`] (1 h) when renewing;
/// - `fencing`: off;
/// - `token`: a fresh token (160 random bits);
/// - `replicas`: none (no `WAIT` after the grant);
/// - `permits`: 1 (semaphores only);
/// - `holder`: none (no label; the lock is the Node original's `SET NX` alone).
///
/// # Examples
///
/// ```
/// use ac_redislock::{AcquireOptions, RetryPolicy};
/// use std::time::Duration;
///
/// let options = AcquireOptions::new()
///     .ttl(Duration::from_secs(30))
///     .wait(Duration::from_secs(5))
///     .retry(RetryPolicy::new().with_max_delay(Duration::from_secs(1)))
///     .auto_renew(true)
///     .max_hold(Duration::from_secs(600))
///     .fencing(true);
/// assert_eq!(options.ttl_value(), Duration::from_secs(30));
/// ```
#[derive(Debug, Clone, PartialEq)]
#[must_use]
pub struct AcquireOptions {
    pub(crate) ttl: Duration,
    pub(crate) wait: Option<Duration>,
    pub(crate) retry: RetryPolicy,
    pub(crate) auto_renew: Option<bool>,
    pub(crate) renew_interval: Option<Duration>,
    pub(crate) max_hold: Option<Duration>,
    pub(crate) fencing: bool,
    pub(crate) token: Option<String>,
    pub(crate) replicas: Option<(u32, Duration)>,
    pub(crate) permits: u32,
    pub(crate) holder: Option<String>,
}

impl Default for AcquireOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl AcquireOptions {
    /// The default options (see [`AcquireOptions`]).
    ///
    /// # Examples
    ///
    /// ```
    /// let options = ac_redislock::AcquireOptions::new();
    /// ```
    pub fn new() -> Self {
        Self {
            ttl: DEFAULT_TTL,
            wait: None,
            retry: RetryPolicy::new(),
            auto_renew: None,
            renew_interval: None,
            max_hold: None,
            fencing: false,
            token: None,
            replicas: None,
            permits: 1,
            holder: None,
        }
    }

    /// Sets the lease: how long the lock lives unless renewed or released.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let options = ac_redislock::AcquireOptions::new().ttl(Duration::from_secs(30));
    /// ```
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// Returns the lease set with [`ttl`](Self::ttl).
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(ac_redislock::AcquireOptions::new().ttl_value(), ac_redislock::DEFAULT_TTL);
    /// ```
    #[must_use]
    pub fn ttl_value(&self) -> Duration {
        self.ttl
    }

    /// Sets how long a waiting acquire tries before it gives up. `Duration::ZERO` makes one
    /// attempt. Ignored by `try_acquire`, which never waits.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let options = ac_redislock::AcquireOptions::new().wait(Duration::from_secs(60));
    /// ```
    pub fn wait(mut self, wait: Duration) -> Self {
        self.wait = Some(wait);
        self
    }

    /// Sets the backoff between attempts when no release wake-up comes.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let options = ac_redislock::AcquireOptions::new()
    ///     .retry(ac_redislock::RetryPolicy::fixed(Duration::from_millis(100)));
    /// ```
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Turns the renewal watchdog on or off: while on, the lock is extended every
    /// [`renew_interval`](Self::renew_interval) until the guard is released or dropped, or
    /// [`max_hold`](Self::max_hold) is reached.
    ///
    /// # Examples
    ///
    /// ```
    /// let options = ac_redislock::AcquireOptions::new().auto_renew(true);
    /// ```
    pub fn auto_renew(mut self, on: bool) -> Self {
        self.auto_renew = Some(on);
        self
    }

    /// Sets how often the watchdog renews (default: a third of the ttl).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let options = ac_redislock::AcquireOptions::new()
    ///     .auto_renew(true)
    ///     .renew_interval(Duration::from_secs(2));
    /// ```
    pub fn renew_interval(mut self, interval: Duration) -> Self {
        self.renew_interval = Some(interval);
        self
    }

    /// Sets the longest time the watchdog keeps the lock, counted from the grant; then renewal
    /// stops and the lease runs out (reported as [`LossReason::MaxHold`](crate::LossReason::MaxHold)).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let options = ac_redislock::AcquireOptions::new()
    ///     .auto_renew(true)
    ///     .max_hold(Duration::from_secs(24 * 3600));
    /// ```
    pub fn max_hold(mut self, max_hold: Duration) -> Self {
        self.max_hold = Some(max_hold);
        self
    }

    /// Asks for a fencing token with the lock (see [`LockGuard::fencing_token`](crate::LockGuard::fencing_token)).
    ///
    /// # Examples
    ///
    /// ```
    /// let options = ac_redislock::AcquireOptions::new().fencing(true);
    /// ```
    pub fn fencing(mut self, on: bool) -> Self {
        self.fencing = on;
        self
    }

    /// Sets the value the lock holds instead of a fresh token, for a lock shared with a Node
    /// worker that expects a known value, or handed between processes.
    ///
    /// Anyone who knows the value can release and extend the lock, so holders that share a
    /// value are one owner. Prefer the fresh token.
    ///
    /// # Examples
    ///
    /// ```
    /// let options = ac_redislock::AcquireOptions::new().token("deploy-42");
    /// ```
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// After the grant, waits until `replicas` replicas acknowledged it, at most `timeout`
    /// (Redis `WAIT`), and reports how many did on the guard
    /// ([`LockGuard::replicas_acked`](crate::LockGuard::replicas_acked)). With Sentinel, a
    /// lock its replicas acknowledged survives a failover to one of them; without, a failover
    /// may lose it. Costs up to `timeout` per acquire; the wait blocks the connection's other
    /// commands meanwhile. `timeout` must be below the client's command timeout.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let options = ac_redislock::AcquireOptions::new().replicas(1, Duration::from_millis(100));
    /// ```
    pub fn replicas(mut self, replicas: u32, timeout: Duration) -> Self {
        self.replicas = Some((replicas, timeout));
        self
    }

    /// Semaphores only: takes `permits` permits at once, in one atomic step (all or none).
    /// Other locks refuse a count other than 1; a semaphore refuses 0 and more than its limit.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use ac_redislock::AcquireOptions;
    /// # async fn run(locks: ac_redislock::RedisLock) -> ac_redislock::Result<()> {
    /// let gpus = locks.semaphore("gpus", 8);
    /// let four = gpus.acquire_with(AcquireOptions::new().permits(4)).await?;
    /// # four.release().await }
    /// ```
    pub fn permits(mut self, permits: u32) -> Self {
        self.permits = permits;
        self
    }

    /// Labels the holder, for [`RedisLock::status`](crate::RedisLock::status) and
    /// `redislock status` to show who holds the lock: a host and a pid, a worker's name, a job.
    /// Opt-in; locks of one key only.
    ///
    /// The label is kept next to the lock, in a companion key of its own in the lock key's hash
    /// slot (`ac-redislock:holder:{<key>}`), with the lock's expiry: extended with it, gone
    /// when it is released, force-released or expires. The lock's own value stays the token,
    /// so Node workers sharing the lock see nothing new. With the label the companion keeps a
    /// short digest of the token (so a lock someone else took after ours expired never shows
    /// our label) and the server's time of the grant: never the token itself. Anyone who can
    /// read the Redis can read the label: put no secret in it.
    ///
    /// Costs: a try with a label is a script (the label is written in the same step) instead of
    /// the plain `SET NX`; a waiting acquire with a label, when a release hands it the lock,
    /// takes it with one more round trip of its own (so its label is written with it) rather
    /// than being given it outright. Without a label nothing changes.
    ///
    /// # Errors
    ///
    /// The acquire fails with [`InvalidInput::HolderLabel`] when the label is empty, longer
    /// than [`MAX_HOLDER_LEN`] bytes or holds a control character, or when it is given for a
    /// semaphore, a read-write lock or several keys (which keep no label).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use ac_redislock::AcquireOptions;
    /// # async fn run(locks: ac_redislock::RedisLock) -> ac_redislock::Result<()> {
    /// let label = format!("web-3:{}", std::process::id());
    /// let guard = locks
    ///     .acquire_with("jobs:42", AcquireOptions::new().holder(label))
    ///     .await?;
    /// let status = locks.status("jobs:42").await?;
    /// assert!(status.holder.as_deref().is_some_and(|h| h.starts_with("web-3:")));
    /// # guard.release().await }
    /// ```
    pub fn holder(mut self, label: impl Into<String>) -> Self {
        self.holder = Some(label.into());
        self
    }

    /// The holder label to send for a hold of `shape`, checked (see [`holder`](Self::holder)).
    pub(crate) fn checked_holder(&self, shape: &Shape) -> Result<Option<&str>> {
        let Some(label) = self.holder.as_deref() else {
            return Ok(None);
        };
        check_holder(label)?;
        if *shape != Shape::Mutex {
            return Err(InvalidInput::HolderLabel(
                "only a lock of one key keeps a holder label (not a semaphore, a read-write \
                 lock or several keys)",
            )
            .into());
        }
        Ok(Some(label))
    }
}

/// Checks a holder label: not empty, at most [`MAX_HOLDER_LEN`] bytes, no control character
/// (it is printed on terminals).
fn check_holder(label: &str) -> std::result::Result<(), InvalidInput> {
    let reason = if label.is_empty() {
        "it is empty"
    } else if label.len() > MAX_HOLDER_LEN {
        "it is longer than 256 bytes"
    } else if label.chars().any(char::is_control) {
        "it holds a control character"
    } else {
        return Ok(());
    };
    Err(InvalidInput::HolderLabel(reason))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holder_labels_are_checked() {
        assert_eq!(check_holder("web-3:4121 backup.sh"), Ok(()));
        assert_eq!(check_holder("锁 worker"), Ok(()));
        assert_eq!(check_holder(&"x".repeat(MAX_HOLDER_LEN)), Ok(()));
        for bad in [
            String::new(),
            "x".repeat(MAX_HOLDER_LEN + 1),
            "a\nb".to_owned(),
            "\u{1b}[31mred".to_owned(),
            "tab\there".to_owned(),
            "del\u{7f}".to_owned(),
        ] {
            assert!(
                matches!(check_holder(&bad), Err(InvalidInput::HolderLabel(_))),
                "{bad:?}"
            );
        }
        let options = AcquireOptions::new().holder("w");
        assert_eq!(options.checked_holder(&Shape::Mutex).unwrap(), Some("w"));
        assert!(options.checked_holder(&Shape::Write).is_err());
        assert_eq!(
            AcquireOptions::new().checked_holder(&Shape::Read).unwrap(),
            None
        );
    }
}
