//! [`LockGuard`]: a held lease, with its deadline, extension, release and loss signal.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::time::Instant;
use tracing::Instrument;

use super::cleanup::Cleanup;
use super::lease::{Held, Lease};
use super::registry::Hold;
use super::renew::{Renewal, watchdog};
use super::{Core, Op, op_span, owned, span_end};
use crate::error::{LockError, LossReason, Result, UnavailableReason};
use crate::store::Owned;

/// A held lock: a lease on a key that ends when it is released, when its deadline passes
/// without renewal, or when Redis says it is gone.
///
/// Made by [`RedisLock::acquire`](crate::RedisLock::acquire) and
/// [`RedisLock::try_acquire`](crate::RedisLock::try_acquire) (and their `_with` forms); also
/// the hold of a semaphore's permits ([`Semaphore`](crate::Semaphore)), of a read-write lock
/// ([`RwLock`](crate::RwLock)) and of several keys at once
/// ([`acquire_all`](crate::RedisLock::acquire_all)), with the same lease, renewal and loss.
/// The documented way to end it is [`release`](Self::release)`.await`.
///
/// # Guarantees
///
/// - While [`is_held`](Self::is_held) is true, the lock was granted (or last renewed) by a
///   command sent less than `ttl - drift` ago, so the key can only be someone else's if Redis
///   lost it (a restart without persistence, a failover, an eviction) or its clock ran fast.
///   The drift margin is 1% of the ttl plus 2 ms.
/// - The deadline is on the monotonic clock: wall-clock jumps on this machine do not move it.
/// - Holding a guard does **not** stop this process from pausing (GC, swap, SIGSTOP) past its
///   deadline and then writing as if it still held the lock. Resources that must never accept
///   such a late write check the [fencing token](Self::fencing_token).
/// - Loss is signalled once: [`lost`](Self::lost) futures resolve with the first reason, and
///   [`is_held`](Self::is_held) stays false afterwards.
///
/// # Drop behaviour
///
/// Dropping a held guard stops its renewal at once and sends its release to the background, on
/// the runtime it was acquired on; it never blocks and never panics (a `debug` event says so).
/// The release then needs that runtime to run a little longer: a runtime that shuts down right
/// after, as `#[tokio::main]` does when `main` returns, drops it unsent, and the lock stays
/// until its ttl runs out. There is no async `Drop` that could outlive the runtime. So a
/// program that ends does one of:
///
/// - [`release`](Self::release)`.await` each guard (the documented way to end one);
/// - [`RedisLock::with_lock`](crate::RedisLock::with_lock), which releases for you;
/// - [`RedisLock::close`](crate::RedisLock::close)`.await` before `main` returns: it waits for
///   the background releases of dropped guards and releases what the live ones still hold.
///
/// A program that does none of these leaves its lock for one lease (its next run, or any other
/// worker, finds it [`Locked`](LockError::Locked) until then). The blocking guard
/// ([`blocking::LockGuard`](crate::blocking::LockGuard)) releases on drop before it returns.
///
/// # Examples
///
/// ```no_run
/// # async fn run(locks: ac_redislock::RedisLock) -> ac_redislock::Result<()> {
/// let guard = locks.acquire("jobs:42").await?;
/// // ... work, checking guard.is_held() before anything irreversible ...
/// guard.release().await?;
/// # Ok(()) }
/// ```
#[clippy::has_significant_drop]
#[must_use = "dropping the guard releases the lock in the background; keep it while working"]
pub struct LockGuard {
    core: Arc<Core>,
    held: Arc<Held>,
    /// This guard's entry in the client's registry.
    id: u64,
    fence: Option<u64>,
    lease: Arc<Lease>,
    renews: bool,
    runtime: Option<Handle>,
    replicas: Option<u32>,
}

impl LockGuard {
    /// Makes the guard of a granted lock: starts its watchdog (if `renewal`) and registers it
    /// with the client. Refused with [`Shutdown`](UnavailableReason::Shutdown) once the client
    /// is closed (the caller then releases the lock).
    pub(crate) fn new(
        core: Arc<Core>,
        held: Held,
        fence: Option<u64>,
        lease: Arc<Lease>,
        renewal: Option<Renewal>,
    ) -> Result<Self> {
        let held = Arc::new(held);
        let runtime = Handle::try_current().ok();
        let watchdog = match (&runtime, renewal) {
            (Some(runtime), Some(renewal)) => {
                let task = watchdog(
                    Arc::clone(&core),
                    Arc::clone(&held),
                    Arc::clone(&lease),
                    renewal,
                );
                Some(runtime.spawn(task).abort_handle())
            }
            _ => None,
        };
        let renews = watchdog.is_some();
        let hold = Hold {
            held: Arc::clone(&held),
            lease: Arc::clone(&lease),
            watchdog,
        };
        let id = match core.registry().hold(hold) {
            Ok(id) => id,
            Err(hold) => {
                hold.end(LossReason::Closed);
                return Err(LockError::Unavailable {
                    reason: UnavailableReason::Shutdown,
                    source: None,
                });
            }
        };
        Ok(Self {
            core,
            held,
            id,
            fence,
            lease,
            renews,
            runtime,
            replicas: None,
        })
    }

    pub(crate) fn set_replicas(&mut self, replicas: Option<u32>) {
        self.replicas = replicas;
    }

    /// Returns how many replicas acknowledged the grant, when
    /// [`AcquireOptions::replicas`](crate::AcquireOptions::replicas) asked for it (`None`
    /// otherwise, and on stores without replicas). Fewer than asked means a failover now may
    /// lose the lock.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use ac_redislock::AcquireOptions;
    /// use std::time::Duration;
    /// # async fn run(locks: ac_redislock::RedisLock) -> ac_redislock::Result<()> {
    /// let options = AcquireOptions::new().replicas(1, Duration::from_millis(100));
    /// let guard = locks.acquire_with("jobs:42", options).await?;
    /// if guard.replicas_acked() < Some(1) {
    ///     eprintln!("not yet on a replica: a failover now could lose this lock");
    /// }
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn replicas_acked(&self) -> Option<u32> {
        self.replicas
    }

    /// Returns the key, as given to `acquire` (without the instance's prefix).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn run(locks: ac_redislock::RedisLock) -> ac_redislock::Result<()> {
    /// let guard = locks.acquire("jobs:42").await?;
    /// assert_eq!(guard.key(), "jobs:42");
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn key(&self) -> &str {
        &self.held.key
    }

    /// Returns every key this guard holds, as given (without the instance's prefix): the one
    /// key of a lock, semaphore permit or read-write hold; all the keys of
    /// [`acquire_all`](crate::RedisLock::acquire_all), in the order they were taken in.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn run(locks: ac_redislock::RedisLock) -> ac_redislock::Result<()> {
    /// let both = locks.acquire_all(&["b", "a"]).await?;
    /// assert_eq!(both.keys(), ["a", "b"]);
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn keys(&self) -> &[String] {
        if self.held.keys.is_empty() {
            std::slice::from_ref(&self.held.key)
        } else {
            &self.held.keys
        }
    }

    /// Returns the token the key holds: what `release_lock` or another process (a Node worker,
    /// the CLI) needs to release or extend this lock. Keep it as secret as the lock matters.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn run(locks: ac_redislock::RedisLock) -> ac_redislock::Result<()> {
    /// let guard = locks.acquire("jobs:42").await?;
    /// assert_eq!(locks.get_lock("jobs:42").await?.as_deref(), Some(guard.token()));
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn token(&self) -> &str {
        &self.held.token
    }

    /// Returns the fencing token, when asked for with
    /// [`AcquireOptions::fencing`](crate::AcquireOptions::fencing).
    ///
    /// Tokens strictly increase per key across all clients of one Redis. Pass the token with
    /// every write to the protected resource, and have the resource reject a write whose token
    /// is lower than one it already accepted: that is what makes a paused, expired holder
    /// harmless.
    ///
    /// The counter lives next to the key (same hash slot), expires a day after its last use,
    /// and never goes below the Redis server's clock in microseconds. So if Redis loses it (a
    /// restart without persistence, an eviction) tokens still go on above every earlier one,
    /// unless the server's clock was set back. The in-memory store counts from 1 per store.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use ac_redislock::AcquireOptions;
    /// # async fn run(locks: ac_redislock::RedisLock) -> ac_redislock::Result<()> {
    /// let guard = locks.acquire_with("ledger", AcquireOptions::new().fencing(true)).await?;
    /// let fence = guard.fencing_token().expect("asked for one");
    /// // storage.write_if_newer(fence, record) ...
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn fencing_token(&self) -> Option<u64> {
        self.fence
    }

    /// Returns the instant after which the lease must be assumed lost: the send time of the
    /// grant (or last renewal) plus the ttl, minus the drift margin, on the monotonic clock.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn run(locks: ac_redislock::RedisLock) -> ac_redislock::Result<()> {
    /// let guard = locks.acquire("jobs:42").await?;
    /// assert!(guard.valid_until() > std::time::Instant::now());
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn valid_until(&self) -> std::time::Instant {
        self.lease.valid_until().into_std()
    }

    /// Returns the time left until [`valid_until`](Self::valid_until), zero once it passed or the
    /// lease was lost.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn run(locks: ac_redislock::RedisLock) -> ac_redislock::Result<()> {
    /// let guard = locks.acquire("jobs:42").await?;
    /// if guard.remaining() < std::time::Duration::from_secs(1) {
    ///     guard.extend(std::time::Duration::from_secs(10)).await?;
    /// }
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn remaining(&self) -> Duration {
        if !self.lease.is_held() {
            return Duration::ZERO;
        }
        self.lease
            .valid_until()
            .saturating_duration_since(Instant::now())
    }

    /// Returns whether the lease still holds: not lost, not released, deadline not passed. No I/O.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn run(locks: ac_redislock::RedisLock) -> ac_redislock::Result<()> {
    /// let guard = locks.acquire("jobs:42").await?;
    /// if guard.is_held() {
    ///     // commit the work
    /// }
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn is_held(&self) -> bool {
        self.lease.is_held()
    }

    /// Returns a future that resolves when the lease ends, with the reason: the deadline
    /// passed, a renewal found the key gone or taken, or renewals failed until the deadline.
    /// It resolves with [`LossReason::Released`] if the guard is released or dropped first.
    ///
    /// The future owns what it needs (no borrow of the guard), so it can be selected on while
    /// the work uses the guard, or moved to another task.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping it changes nothing.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use ac_redislock::AcquireOptions;
    /// # async fn run(locks: ac_redislock::RedisLock) -> ac_redislock::Result<()> {
    /// # async fn work() {}
    /// let guard = locks.acquire_with("jobs:42", AcquireOptions::new().auto_renew(true)).await?;
    /// tokio::select! {
    ///     () = work() => guard.release().await?,
    ///     reason = guard.lost() => eprintln!("stopped: {reason}"),
    /// }
    /// # Ok(()) }
    /// ```
    pub fn lost(&self) -> impl Future<Output = LossReason> + Send + 'static {
        self.lease.until_ended()
    }

    /// Sets the lease to `ttl` from now, if the key still holds this guard's token (an atomic
    /// compare-and-PEXPIRE), and returns the new validity.
    ///
    /// # Errors
    ///
    /// - [`Lost`](LockError::Lost) if the lease already ended here, or the key is gone from
    ///   Redis: an expired lock is never re-created;
    /// - [`NotOwner`](LockError::NotOwner) if another owner holds the key (the lease ends);
    /// - [`InvalidInput`](LockError::InvalidInput) for a ttl out of range;
    /// - [`Unavailable`](LockError::Unavailable) or [`Redis`](LockError::Redis): the lease is
    ///   unchanged and still ends at its deadline.
    ///
    /// # Cancel safety
    ///
    /// If dropped, the extension may or may not have happened; the deadline known here is not
    /// moved, so it stays on the safe side.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// # async fn run(locks: ac_redislock::RedisLock) -> ac_redislock::Result<()> {
    /// let guard = locks.acquire("jobs:42").await?;
    /// let validity = guard.extend(Duration::from_secs(30)).await?;
    /// assert!(validity <= Duration::from_secs(30));
    /// # Ok(()) }
    /// ```
    pub async fn extend(&self, ttl: Duration) -> Result<Duration> {
        let span = op_span!("lock.extend", self.held.key, self.held.primitive());
        let result = self.extend_in(ttl).instrument(span.clone()).await;
        span_end(&span, &result);
        result
    }

    async fn extend_in(&self, ttl: Duration) -> Result<Duration> {
        let ttl = self.core.check_lease_ttl(ttl)?;
        if let Some(reason) = self.lease.ended() {
            return Err(self.lost_error(reason));
        }
        let start = Instant::now();
        let Held {
            key,
            wire,
            token,
            shape,
            ..
        } = &*self.held;
        let extend = self.core.store().extend(wire, token, ttl, shape);
        let outcome = self.core.call(Op::Extend, key, extend).await;
        let meter = self.core.meter();
        meter.renewed(
            self.held.primitive(),
            key,
            matches!(outcome, Ok(Owned::Done)),
        );
        match owned(outcome?, key) {
            Ok(()) => {
                self.lease.renewed(start, ttl);
                Ok(self.remaining())
            }
            Err(err) => {
                let reason = match err {
                    LockError::NotOwner { .. } => LossReason::TakenOver,
                    _ => LossReason::Deleted,
                };
                self.lease.end(reason);
                Err(self.lease_error(err, reason))
            }
        }
    }

    /// Releases the lock (an atomic compare-and-delete; waiters are woken) and stops renewal.
    ///
    /// # Errors
    ///
    /// - [`Lost`](LockError::Lost) if the key was already gone: the lease ended before this
    ///   release, so the work may have overlapped with another holder's;
    /// - [`NotOwner`](LockError::NotOwner) if another owner holds the key (not deleted);
    /// - [`Unavailable`](LockError::Unavailable) or [`Redis`](LockError::Redis): the lock then
    ///   expires at the end of its ttl.
    ///
    /// # Cancel safety
    ///
    /// If dropped, the release may or may not have happened; the lock expires in any case.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn run(locks: ac_redislock::RedisLock) -> ac_redislock::Result<()> {
    /// let guard = locks.acquire("jobs:42").await?;
    /// guard.release().await?;
    /// # Ok(()) }
    /// ```
    pub async fn release(self) -> Result<()> {
        self.release_held().await
    }

    /// [`release`](Self::release), for a guard that is shared (the blocking face's): the
    /// first call releases, later ones find the lease ended.
    pub(crate) async fn release_held(&self) -> Result<()> {
        let span = op_span!("lock.release", self.held.key, self.held.primitive());
        let result = self.release_in().instrument(span.clone()).await;
        span_end(&span, &result);
        result
    }

    async fn release_in(&self) -> Result<()> {
        let Some(hold) = self.core.registry().take(self.id) else {
            // The client was closed, which released the lock.
            let reason = self.lease.ended().unwrap_or(LossReason::Closed);
            return Err(self.lost_error(reason));
        };
        hold.stop();
        let ended_when_sent = self.lease.ended();
        let Held {
            key,
            wire,
            token,
            shape,
            ..
        } = &*self.held;
        let release = self.core.store().release(wire, token, shape);
        let outcome = self.core.call(Op::Release, key, release).await;
        let lost_before = self.lease.ended();
        self.lease.end(LossReason::Released);
        match (outcome?, ended_when_sent) {
            // A retry found the key gone after a try whose answer was lost: that try released
            // it if the lease still held when it was sent; otherwise the lease was lost first.
            (Owned::Vanished, Some(reason)) => Err(self.lost_error(reason)),
            (outcome, _) => owned(outcome, key)
                .map_err(|err| self.lease_error(err, lost_before.unwrap_or(LossReason::Deleted))),
        }
    }

    /// Lets go of the guard without releasing the lock: renewal stops, and the lock stays until
    /// its expiry or until someone releases it with the returned token (a CLI call, another
    /// process). Returns the token. (If the client was closed first, the close already
    /// released the lock.)
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use ac_redislock::ReleaseParams;
    /// # async fn run(locks: ac_redislock::RedisLock) -> ac_redislock::Result<()> {
    /// let token = locks.acquire("deploy").await?.detach();
    /// // ... later, maybe in another process:
    /// locks.release_lock(ReleaseParams::new("deploy").value(token)).await?;
    /// # Ok(()) }
    /// ```
    #[must_use = "the token is the only way to release the lock before it expires"]
    pub fn detach(self) -> String {
        if let Some(hold) = self.core.registry().take(self.id) {
            hold.end(LossReason::Released);
        }
        self.held.token.clone()
    }

    /// How the lease ended, if it has.
    pub(crate) fn ended(&self) -> Option<LossReason> {
        self.lease.ended()
    }

    fn lost_error(&self, reason: LossReason) -> LockError {
        LockError::Lost {
            key: self.held.key.clone(),
            reason,
        }
    }

    /// What a mismatch means for a guard: the key gone is a lost lease (for `reason`); the key
    /// held by another owner stays [`NotOwner`](LockError::NotOwner).
    fn lease_error(&self, mismatch: LockError, reason: LossReason) -> LockError {
        match mismatch {
            LockError::NotHeld { .. } => self.lost_error(reason),
            other => other,
        }
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        // Gone already if released, detached, or taken by a close.
        let Some(hold) = self.core.registry().take(self.id) else {
            return;
        };
        let within = hold.end(LossReason::Released);
        let Some(runtime) = &self.runtime else {
            return;
        };
        if !within.is_zero() {
            tracing::debug!(
                key = ?self.held.key,
                "guard dropped while held: its lock is released in the background; \
                 release the guard, or await RedisLock::close() before the program ends, \
                 to be sure it is"
            );
        }
        self.core
            .spawn_cleanup(runtime, Cleanup::release(&self.held, within));
    }
}

impl fmt::Debug for LockGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockGuard")
            .field("key", &self.held.key)
            .field("token", &"<redacted>")
            .field("fencing_token", &self.fence)
            .field("held", &self.is_held())
            .field("renewing", &self.renews)
            .finish()
    }
}
