//! The guard API of [`RedisLock`]: `try_acquire`, `acquire`, `with_lock`, and the waiting loop
//! behind them.

use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;

use crate::client::{RedisLock, outcome_unknown};
use crate::error::{InvalidInput, LockError, Result};
use crate::guard::{LockGuard, Renewal};
use crate::lease::{Lease, drift};
use crate::options::{AcquireOptions, DEFAULT_MAX_HOLD, DEFAULT_WAIT};
use crate::store::{Acquire, AcquireRequest, Expiry, Releases, WaiterRegistration};
use crate::token::new_token;

/// How an acquire call waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// One attempt.
    Try,
    /// Until the wait deadline.
    Wait,
    /// As `Wait`, with renewal on unless the options turn it off.
    WithLock,
}

impl RedisLock {
    /// Makes one attempt to take the lock at `key` with the default
    /// [`AcquireOptions`] (10 s lease, no renewal), and returns its guard.
    ///
    /// # Errors
    ///
    /// [`Locked`](LockError::Locked) if someone holds it; otherwise as
    /// [`lock_key`](Self::lock_key).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: if the future is dropped after the lock was granted in Redis but before the
    /// guard was returned, a release is sent in the background, so no key is left behind.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use ac_redislock::LockError;
    /// # async fn run(locks: ac_redislock::RedisLock) -> ac_redislock::Result<()> {
    /// match locks.try_acquire("jobs:42").await {
    ///     Ok(guard) => guard.release().await?,
    ///     Err(LockError::Locked { .. }) => { /* busy: skip */ }
    ///     Err(err) => return Err(err),
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn try_acquire(&self, key: &str) -> Result<LockGuard> {
        self.acquire_guard(key, &AcquireOptions::new(), Mode::Try)
            .await
    }

    /// [`try_acquire`](Self::try_acquire) with options (the wait is ignored: one attempt).
    ///
    /// # Errors
    ///
    /// As [`try_acquire`](Self::try_acquire); [`InvalidInput`](LockError::InvalidInput) for
    /// options out of range.
    ///
    /// # Cancel safety
    ///
    /// As [`try_acquire`](Self::try_acquire).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use ac_redislock::AcquireOptions;
    /// use std::time::Duration;
    /// # async fn run(locks: ac_redislock::RedisLock) -> ac_redislock::Result<()> {
    /// let options = AcquireOptions::new().ttl(Duration::from_secs(30)).fencing(true);
    /// let guard = locks.try_acquire_with("jobs:42", options).await?;
    /// # Ok(()) }
    /// ```
    pub async fn try_acquire_with(&self, key: &str, options: AcquireOptions) -> Result<LockGuard> {
        self.acquire_guard(key, &options, Mode::Try).await
    }

    /// Takes the lock at `key`, waiting up to 10 s for it, with the default [`AcquireOptions`].
    ///
    /// # Waiting
    ///
    /// A waiter is woken when the lock is released, within about a round trip to Redis, and
    /// the lock is then handed to the waiters rather than to a newcomer or to the releasing
    /// worker coming straight back. How: the waiter registers next to the key (a sorted set in
    /// the key's hash slot); a release that finds registered waiters leaves the key reserved
    /// for them for a moment (`ac-redislock:handoff`, 200 ms at most) and publishes the key on
    /// the pub/sub channel `ac-redislock:released`; every client listens on one subscriber
    /// connection of its own. The chosen waiter leaves the queue, so a waiter whose process
    /// died costs at most one reservation. Pub/sub was chosen over a blocking list pop because
    /// one connection serves any number of waiters and keys, and waiters never hold a
    /// connection blocked.
    ///
    /// Wake-ups can be missed (a Node worker releasing with GET and DEL, a client made with
    /// [`RedisLock::new`] and no [`pubsub_client`](crate::RedisLockBuilder::pubsub_client), a
    /// lost subscriber connection), so a waiter also retries on the
    /// [`RetryPolicy`](crate::RetryPolicy) backoff, and never sleeps past the moment the
    /// holder's lease expires.
    ///
    /// # Errors
    ///
    /// [`Locked`](LockError::Locked) when the wait ends (deadline or attempts used up); a
    /// backend error ends the wait at once. Otherwise as [`lock_key`](Self::lock_key).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping the future leaves no key and no task behind (an attempt in flight
    /// is released, the waiter registration removed, in the background).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn run(locks: ac_redislock::RedisLock) -> ac_redislock::Result<()> {
    /// let guard = locks.acquire("jobs:42").await?;
    /// guard.release().await?;
    /// # Ok(()) }
    /// ```
    pub async fn acquire(&self, key: &str) -> Result<LockGuard> {
        self.acquire_guard(key, &AcquireOptions::new(), Mode::Wait)
            .await
    }

    /// [`acquire`](Self::acquire) with options: lease, wait, retry policy, renewal, fencing.
    ///
    /// # Errors
    ///
    /// As [`acquire`](Self::acquire); [`InvalidInput`](LockError::InvalidInput) for options out
    /// of range.
    ///
    /// # Cancel safety
    ///
    /// As [`acquire`](Self::acquire).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use ac_redislock::AcquireOptions;
    /// use std::time::Duration;
    /// # async fn run(locks: ac_redislock::RedisLock) -> ac_redislock::Result<()> {
    /// let options = AcquireOptions::new()
    ///     .ttl(Duration::from_secs(5))
    ///     .wait(Duration::from_secs(60))
    ///     .auto_renew(true);
    /// let guard = locks.acquire_with("reports:daily", options).await?;
    /// # Ok(()) }
    /// ```
    pub async fn acquire_with(&self, key: &str, options: AcquireOptions) -> Result<LockGuard> {
        self.acquire_guard(key, &options, Mode::Wait).await
    }

    /// Runs `work` while holding the lock at `key`, renewed in the background, and returns its
    /// output; the lock is released afterwards.
    ///
    /// Renewal is on unless `options` turns it off. If the lease is lost while `work` runs,
    /// `work` is cancelled (its future dropped at its next `.await`) and the call returns
    /// [`Lost`](LockError::Lost). `work` gets the guard, for its fencing token or
    /// [`is_held`](LockGuard::is_held).
    ///
    /// # Errors
    ///
    /// As [`acquire_with`](Self::acquire_with); [`Lost`](LockError::Lost) or
    /// [`NotOwner`](LockError::NotOwner) if the lease ended before `work` finished.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future drops `work` and the guard, which releases the lock in the
    /// background.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use ac_redislock::AcquireOptions;
    /// # async fn send_report(fence: Option<u64>) -> u32 { 7 }
    /// # async fn run(locks: ac_redislock::RedisLock) -> ac_redislock::Result<()> {
    /// let sent = locks
    ///     .with_lock("reports:daily", AcquireOptions::new().fencing(true), async |guard| {
    ///         send_report(guard.fencing_token()).await
    ///     })
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn with_lock<T>(
        &self,
        key: &str,
        options: AcquireOptions,
        work: impl AsyncFnOnce(&LockGuard) -> T,
    ) -> Result<T> {
        let guard = self.acquire_guard(key, &options, Mode::WithLock).await?;
        let lost = guard.lost();
        let value = tokio::select! {
            biased;
            value = work(&guard) => value,
            reason = lost => {
                return Err(LockError::Lost { key: key.to_owned(), reason });
            }
        };
        match guard.release().await {
            Ok(()) => Ok(value),
            Err(err @ (LockError::Lost { .. } | LockError::NotOwner { .. })) => Err(err),
            Err(err) => {
                // The work finished under the lease; the lock will expire on its own.
                tracing::warn!(key = ?key, error = %err, "release after work failed");
                Ok(value)
            }
        }
    }

    /// Checks a lease ttl: within the expiry limits, and long enough to leave a validity after
    /// the drift margin.
    pub(crate) fn check_lease_ttl(&self, ttl: Duration) -> Result<Duration> {
        let ttl = self.check_expires(ttl)?.as_duration();
        if ttl <= drift(ttl, self.store().drift_factor()) + Duration::from_millis(1) {
            return Err(InvalidInput::ExpiryTooShort(ttl).into());
        }
        Ok(ttl)
    }

    async fn acquire_guard(
        &self,
        key: &str,
        options: &AcquireOptions,
        mode: Mode,
    ) -> Result<LockGuard> {
        let wire = self.wire_key(key)?.into_owned();
        let ttl = self.check_lease_ttl(options.ttl)?;
        if let Some((_, timeout)) = options.replicas
            && (timeout.is_zero() || timeout >= self.command_timeout())
        {
            return Err(InvalidInput::Setting {
                name: "replicas",
                reason: "the WAIT timeout must be above zero and below the command timeout",
            }
            .into());
        }
        if options.fencing && !self.store().supports_fencing() {
            return Err(InvalidInput::Setting {
                name: "fencing",
                reason: "Redlock cannot issue fencing tokens: its nodes count independently",
            }
            .into());
        }
        let renewal = self.renewal(options, mode, ttl)?;
        let wait = match mode {
            Mode::Try => Duration::ZERO,
            Mode::Wait | Mode::WithLock => options.wait.unwrap_or(DEFAULT_WAIT),
        };
        let waiting = !wait.is_zero();
        let started = Instant::now();
        let deadline = started
            .checked_add(wait)
            .unwrap_or_else(|| started + Duration::from_secs(100 * 365 * 86_400));
        let token = match &options.token {
            Some(token) => {
                self.check_value(token)?;
                token.clone()
            }
            None => new_token()?,
        };
        let waiter_id = if waiting { Some(new_token()?) } else { None };
        // Subscribe before the first attempt, so a release right after it is heard.
        let mut releases = if waiting {
            self.store().releases()
        } else {
            None
        };
        let registration = waiter_id.as_deref().map(|id| WaiterRegistration {
            id,
            // A waiter refreshes its registration at each attempt; it must outlive the longest
            // sleep between two attempts plus a slow reply.
            lease: options.retry.max_delay().saturating_mul(3) + self.command_timeout() * 2,
        });
        // Made on the first wait only: a lock that is free costs no jitter seed.
        let mut delays = None;
        let mut cleanup = Cleanup::new(self, &wire, &token, waiter_id.as_deref());
        let level = self.log_level();
        let mut first = true;
        loop {
            let register = waiting && !first;
            let request = AcquireRequest {
                key: &wire,
                token: &token,
                expiry: Expiry::from_duration(ttl),
                waiter: registration.filter(|_| register),
                fencing: options.fencing,
                probe: waiting && first,
            };
            cleanup.in_flight = true;
            cleanup.registered |= register;
            let sent = Instant::now();
            let outcome = self.call(key, self.store().acquire(request)).await;
            match outcome {
                Ok(Acquire::Granted { fence }) => {
                    // Granted; a failing WAIT below returns the error and the cleanup releases.
                    cleanup.registered = false;
                    let replicas = match options.replicas {
                        Some((replicas, timeout)) => {
                            self.call(key, self.store().wait_replicas(replicas, timeout))
                                .await?
                        }
                        None => None,
                    };
                    cleanup.disarm();
                    drop(cleanup);
                    crate::client::event_at!(level, key = ?key, ttl = ?ttl, outcome = "acquired", "lock attempt");
                    let lease = Lease::new(sent, ttl, self.store().drift_factor());
                    let renewal = renewal.map(|(interval, max_hold)| Renewal {
                        ttl,
                        interval,
                        hold_until: sent
                            .checked_add(max_hold)
                            .unwrap_or_else(|| sent + Duration::from_secs(100 * 365 * 86_400)),
                    });
                    let mut guard = LockGuard::new(
                        self.clone(),
                        key.to_owned(),
                        wire,
                        token,
                        fence,
                        lease,
                        renewal,
                    );
                    guard.set_replicas(replicas);
                    return Ok(guard);
                }
                Ok(Acquire::Held { pttl }) => {
                    cleanup.in_flight = false;
                    crate::client::event_at!(level, key = ?key, ttl = ?ttl, outcome = "locked", "lock attempt");
                    if !waiting {
                        return Err(LockError::Locked {
                            key: key.to_owned(),
                        });
                    }
                    if first {
                        // The probe (plain SET NX) failed: register as a waiter right away.
                        first = false;
                        continue;
                    }
                    let now = Instant::now();
                    let next = delays.get_or_insert_with(|| options.retry.delays()).next();
                    let (true, Some(backoff)) = (now < deadline, next) else {
                        return Err(LockError::Locked {
                            key: key.to_owned(),
                        });
                    };
                    let mut sleep = backoff.min(deadline - now);
                    if let Some(pttl) = pttl {
                        // Never sleep past the holder's expiry.
                        sleep = sleep.min(pttl + Duration::from_millis(1));
                    }
                    let waiter = waiter_id.as_deref().unwrap_or_default();
                    wait_for_release(&mut releases, &wire, waiter, sleep).await;
                }
                Ok(Acquire::WrongType(found)) => {
                    cleanup.in_flight = false;
                    return Err(LockError::WrongType {
                        key: key.to_owned(),
                        found,
                    });
                }
                Err(err) => {
                    cleanup.in_flight = outcome_unknown(&err);
                    tracing::error!(key = ?key, error = %crate::client::ErrorChain(&err), "lock attempt failed");
                    return Err(err);
                }
            }
        }
    }

    /// The watchdog's interval and maximum hold, if renewal is on.
    fn renewal(
        &self,
        options: &AcquireOptions,
        mode: Mode,
        ttl: Duration,
    ) -> Result<Option<(Duration, Duration)>> {
        let on = options.auto_renew.unwrap_or(mode == Mode::WithLock);
        if !on {
            return Ok(None);
        }
        let interval = options.renew_interval.unwrap_or(ttl / 3);
        let validity = ttl.saturating_sub(drift(ttl, self.store().drift_factor()));
        if interval.is_zero() || interval >= validity {
            return Err(InvalidInput::Setting {
                name: "renew_interval",
                reason: "must be above zero and below the ttl minus its drift margin",
            }
            .into());
        }
        let max_hold = options.max_hold.unwrap_or(DEFAULT_MAX_HOLD);
        Ok(Some((interval, max_hold)))
    }
}

/// Sleeps for `sleep`, or until the lock is handed to this waiter or its key is released to
/// all waiters.
async fn wait_for_release(
    releases: &mut Option<Releases>,
    wire: &str,
    waiter: &str,
    sleep: Duration,
) {
    let timer = tokio::time::sleep(sleep);
    tokio::pin!(timer);
    while let Some(rx) = releases.as_mut() {
        tokio::select! {
            () = &mut timer => return,
            message = rx.recv() => match message {
                Ok(message) if is_for(&message, wire, waiter) => return,
                Ok(_) => {}
                Err(RecvError::Lagged(_)) => return,
                Err(RecvError::Closed) => *releases = None,
            },
        }
    }
    timer.await;
}

/// Whether a release announcement concerns this waiter: the lock was handed to it (`w<id>`),
/// its key was freed for everyone (`k<key>`), or announcements may have been missed (`""`,
/// after the subscriber reconnects).
fn is_for(message: &str, wire: &str, waiter: &str) -> bool {
    match message.split_at_checked(1) {
        None => true,
        Some(("w", id)) => id == waiter,
        Some(("k", key)) => key == wire,
        Some(_) => false,
    }
}

/// Undoes what an acquire left in Redis when it ends without a guard (given up, failed or
/// cancelled): a lock that may have been granted by an attempt whose reply never came, and the
/// waiter registration. Runs in the background from `Drop`, so it also covers cancellation.
struct Cleanup<'a> {
    locks: &'a RedisLock,
    wire: &'a str,
    token: &'a str,
    waiter: Option<&'a str>,
    in_flight: bool,
    registered: bool,
    disarmed: bool,
}

impl<'a> Cleanup<'a> {
    fn new(locks: &'a RedisLock, wire: &'a str, token: &'a str, waiter: Option<&'a str>) -> Self {
        Self {
            locks,
            wire,
            token,
            waiter,
            in_flight: false,
            registered: false,
            disarmed: false,
        }
    }

    fn disarm(&mut self) {
        self.disarmed = true;
    }
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        if self.disarmed || !(self.in_flight || self.registered) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let locks = self.locks.clone();
        let wire = self.wire.to_owned();
        let token = self.in_flight.then(|| self.token.to_owned());
        let waiter = self.waiter.filter(|_| self.registered).map(str::to_owned);
        runtime.spawn(async move {
            let timeout = locks.command_timeout();
            if let Some(token) = token {
                let release = locks.store().release(&wire, &token);
                let _ = tokio::time::timeout(timeout, release).await;
            }
            if let Some(waiter) = waiter {
                let cancel = locks.store().cancel_wait(&wire, &waiter);
                let _ = tokio::time::timeout(timeout, cancel).await;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::is_for;

    #[test]
    fn announcements_wake_only_their_waiters() {
        assert!(is_for("wabc", "jobs:1", "abc"));
        assert!(!is_for("wabd", "jobs:1", "abc"));
        assert!(is_for("kjobs:1", "jobs:1", "abc"));
        assert!(!is_for("kjobs:2", "jobs:1", "abc"));
        assert!(
            is_for("", "jobs:1", "abc"),
            "after a reconnect, everyone retries"
        );
        assert!(!is_for("xjobs:1", "jobs:1", "abc"));
    }
}
