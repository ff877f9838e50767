//! [`RedisLock`], the async face: the seed API of the Node original and the guard API, each a
//! thin adapter over the lock logic's [`Core`]. Its constructors are in `builder.rs`.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::error::{CloseError, LockError, Result};
use crate::lock::Core;
use crate::lock::acquire::{Mode, after_work};
use crate::lock::batch::{BatchCall, BatchOutput};
use crate::lock::guard::LockGuard;
use crate::lock::options::AcquireOptions;
use crate::lock::params::{LockParams, ReleaseParams};
use crate::status::LockStatus;

pub(crate) mod sets;

pub use sets::{RwLock, Semaphore};

/// A client for locks on Redis: the Rust form of the Node package `ac-redislock`.
///
/// A `RedisLock` is a cheap handle: clone it freely, share it between tasks. Any number of
/// independent instances may exist (the original's `create()`), each with its own options.
///
/// It is built on
/// - your own redis-rs async connection: [`RedisLock::new`] (multiplexed, `ConnectionManager`,
///   cluster connections all plug in);
/// - a URL: [`RedisLock::from_url`], with automatic reconnection;
/// - no Redis at all: [`RedisLock::in_memory`], the original's in-process fallback;
/// - options through [`RedisLock::builder`].
///
/// The seed API keeps the original's names: [`lock_key`](Self::lock_key),
/// [`release_lock`](Self::release_lock), [`get_lock`](Self::get_lock). Keys and values go on the
/// wire as the original sends them, so Node and Rust workers respect each other's locks.
///
/// # Which store should you use?
///
/// The in-memory store locks nothing across processes: use it for tests and for programs that
/// run as one process. Everything that must not run twice across workers needs Redis.
///
/// # Runtime
///
/// The async methods need a Tokio runtime with its time driver enabled (the default with
/// `#[tokio::main]`). Code without a runtime uses [`blocking::RedisLock`](crate::blocking::RedisLock).
///
/// # Examples
///
/// ```no_run
/// use ac_redislock::{LockParams, RedisLock, ReleaseParams};
///
/// # async fn run() -> ac_redislock::Result<()> {
/// let locks = RedisLock::from_url("redis://127.0.0.1/")?;
/// let token = locks.lock_key(LockParams::new("jobs:42")).await?;
/// // ... the job ...
/// locks.release_lock(ReleaseParams::new("jobs:42").value(token)).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisLock {
    core: Arc<Core>,
}

impl fmt::Debug for RedisLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The connection is left out: its Debug output may show a password.
        f.debug_struct("RedisLock")
            .field("store", &self.core.traits().name)
            .field("config", self.core.config())
            .finish_non_exhaustive()
    }
}

impl RedisLock {
    pub(crate) fn from_core(core: Arc<Core>) -> Self {
        Self { core }
    }

    pub(crate) fn core(&self) -> &Arc<Core> {
        &self.core
    }

    /// Locks `params.key` for `params.expires` if no one holds it, and returns the value the
    /// lock holds: the one you gave, or a fresh token.
    ///
    /// On Redis this sends the Node original's command, `SET key value EX seconds NX` (`PX
    /// milliseconds` when the expiry is not whole seconds). Each attempt is logged at the
    /// instance's level with the key, the expiry and the outcome; the value never is.
    ///
    /// # Errors
    ///
    /// - [`Locked`](LockError::Locked) (code 423) if the key is held;
    /// - [`WrongType`](LockError::WrongType) if the key holds a non-string value;
    /// - [`InvalidInput`](LockError::InvalidInput) for an empty or too long key or value, or an
    ///   expiry below 1 ms or above the maximum, before anything is sent;
    /// - [`Unavailable`](LockError::Unavailable) (code 503) or [`Redis`](LockError::Redis) when
    ///   the backend fails. A backend failure is never reported as `Locked`. When the call timed
    ///   out or the connection broke, the `SET` may still have landed: if the value was
    ///   generated here, a compare-and-delete for it is sent in the background, so no lock is
    ///   left behind that nobody can release.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future before it completes may still leave the lock taken (if the `SET`
    /// already reached Redis), until its expiry.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use ac_redislock::{LockError, LockParams, RedisLock};
    /// use std::time::Duration;
    ///
    /// # async fn run(locks: RedisLock) -> ac_redislock::Result<()> {
    /// match locks.lock_key(LockParams::new("jobs:42").expires(Duration::from_secs(30))).await {
    ///     Ok(token) => println!("mine until released or 30 s pass"),
    ///     Err(err) if err.code() == 423 => println!("someone else has it"),
    ///     Err(err) => return Err(err),
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn lock_key(&self, params: LockParams) -> Result<String> {
        let LockParams {
            key,
            expires,
            value,
        } = params;
        self.core.lock_key(key, expires, value).await
    }

    /// Releases a lock.
    ///
    /// - **With a value**: one atomic compare-and-delete (a Lua script, EVALSHA, sent again as
    ///   EVAL with the script's text on NOSCRIPT). The key is deleted only if it still holds that
    ///   value, so a lock that expired and was taken by someone else is never deleted (the Node
    ///   original's GET-then-DEL can do that).
    /// - **Without a value**: a **force release**, an unconditional `DEL` (the original's
    ///   behaviour), whoever holds the lock. Use it for admin tools, not in workers.
    ///
    /// # Errors
    ///
    /// - [`NotOwner`](LockError::NotOwner) if the key holds another value, [`NotHeld`](LockError::NotHeld)
    ///   if it does not exist (expired or released). These are the original's "mismatch": logged
    ///   at warn and returned, or, when `suppress_mismatch` holds (per call, else per instance),
    ///   neither logged nor returned. The key is left untouched either way.
    /// - [`WrongType`](LockError::WrongType) if the key holds a non-string value (left untouched).
    /// - [`InvalidInput`](LockError::InvalidInput) for a bad key or value, before any I/O.
    /// - [`Unavailable`](LockError::Unavailable) or [`Redis`](LockError::Redis) from the backend.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future may or may not release the lock; it expires in any case.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use ac_redislock::{RedisLock, ReleaseParams};
    ///
    /// # async fn run(locks: RedisLock, token: String) -> ac_redislock::Result<()> {
    /// locks.release_lock(ReleaseParams::new("jobs:42").value(token)).await?;
    /// // Several workers racing for one job: not releasing someone else's lock is normal.
    /// locks
    ///     .release_lock(ReleaseParams::new("jobs:43").value("stale").suppress_mismatch(true))
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn release_lock(&self, params: ReleaseParams) -> Result<()> {
        let ReleaseParams {
            key,
            value,
            suppress_mismatch,
        } = params;
        self.core.release_lock(key, value, suppress_mismatch).await
    }

    /// Runs several seed calls ([`lock_key`](Self::lock_key), [`release_lock`](Self::release_lock),
    /// [`get_lock`](Self::get_lock)) at once and returns their results in the calls' order,
    /// each exactly what its own method would have returned: a lock taken is
    /// `Ok(BatchOutput::Lock(value))`, a held one `Err(LockError::Locked)`, and so on. Each call
    /// is checked, logged and counted as its own method does; one failing does not fail the
    /// others.
    ///
    /// On one Redis server (or a Sentinel group's master) the calls go out as one pipeline:
    /// one round trip and one command timeout for the lot, which is what makes many
    /// independent locks cheap (a worker claiming 50 jobs at once, a service answering many
    /// callers). On a Cluster, on Redlock and in memory, each call is sent on its own, all at
    /// once. The calls are not a transaction: each is atomic, not the batch.
    ///
    /// # Errors
    ///
    /// Each result carries its own call's errors, as its method documents them; a backend
    /// that cannot be reached fails every call sent to it.
    ///
    /// # Cancel safety
    ///
    /// As each call's own: if dropped, a lock taken with a generated value is released in the
    /// background; releases may or may not have happened.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use ac_redislock::{BatchCall, BatchOutput, LockError, LockParams};
    /// # async fn run(locks: ac_redislock::RedisLock) -> ac_redislock::Result<()> {
    /// // Claim whichever of these jobs no one else has.
    /// let calls: Vec<BatchCall> = (1..=3)
    ///     .map(|n| BatchCall::Lock(LockParams::new(format!("jobs:{n}"))))
    ///     .collect();
    /// for (n, result) in (1..=3).zip(locks.batch(calls).await) {
    ///     match result {
    ///         Ok(BatchOutput::Lock(token)) => println!("jobs:{n} is ours ({} chars)", token.len()),
    ///         Err(LockError::Locked { .. }) => println!("jobs:{n} is taken"),
    ///         Err(err) => return Err(err),
    ///         Ok(_) => unreachable!("a lock call answers with a lock"),
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn batch(
        &self,
        calls: impl IntoIterator<Item = BatchCall>,
    ) -> Vec<Result<BatchOutput>> {
        let calls: Vec<BatchCall> = calls.into_iter().collect();
        self.core.batch(&calls).await
    }

    /// Sets the lock at `key` to expire `expires` from now, if it still holds `value` (an
    /// atomic compare-and-PEXPIRE): the seed-style form of
    /// [`LockGuard::extend`](crate::LockGuard::extend), for a lock taken with `lock_key` or by
    /// another process. An expired lock is never re-created.
    ///
    /// # Errors
    ///
    /// [`NotOwner`](LockError::NotOwner) if the key holds another value,
    /// [`NotHeld`](LockError::NotHeld) if it does not exist (both logged at warn unless the
    /// instance suppresses mismatches; never silenced: the caller must know its lock is gone);
    /// [`InvalidInput`](LockError::InvalidInput) for a bad key, value or expiry; backend errors.
    ///
    /// # Cancel safety
    ///
    /// If dropped, the extension may or may not have happened.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use ac_redislock::LockParams;
    /// use std::time::Duration;
    /// # async fn run(locks: ac_redislock::RedisLock) -> ac_redislock::Result<()> {
    /// let token = locks.lock_key(LockParams::new("jobs:42")).await?;
    /// locks.extend_lock("jobs:42", &token, Duration::from_secs(60)).await?;
    /// # Ok(()) }
    /// ```
    pub async fn extend_lock(&self, key: &str, value: &str, expires: Duration) -> Result<()> {
        self.core.extend_lock(key, value, expires).await
    }

    /// Returns the value the lock at `key` holds, or `None` if no one holds it.
    ///
    /// A value that is not valid UTF-8 (written by another client) comes back with replacement
    /// characters. Just after a release with waiters, the key briefly holds a reservation for
    /// one of them, `ac-redislock:handoff:<waiter>` (see [`acquire`](Self::acquire)).
    ///
    /// # Errors
    ///
    /// [`InvalidInput`](LockError::InvalidInput) for a bad key; [`WrongType`](LockError::WrongType)
    /// if the key holds a non-string value; [`Unavailable`](LockError::Unavailable) or
    /// [`Redis`](LockError::Redis) from the backend.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn run(locks: ac_redislock::RedisLock) -> ac_redislock::Result<()> {
    /// if locks.get_lock("jobs:42").await?.is_some() {
    ///     println!("jobs:42 is taken");
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn get_lock(&self, key: &str) -> Result<Option<String>> {
        self.core.get_lock(key).await
    }

    /// Returns a snapshot of the lock at `key`: free, held or reserved for waiters, the time
    /// left, the fencing counter, the number of waiters, and the holder's label with how long
    /// it has held the lock when it gave one ([`AcquireOptions::holder`]). It never returns the
    /// lock's value.
    ///
    /// # Errors
    ///
    /// [`InvalidInput`](LockError::InvalidInput) for a bad key; [`Unavailable`](LockError::Unavailable)
    /// or [`Redis`](LockError::Redis) from the backend.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use ac_redislock::LockState;
    /// # async fn run(locks: ac_redislock::RedisLock) -> ac_redislock::Result<()> {
    /// let status = locks.status("jobs:42").await?;
    /// if status.state == LockState::Held {
    ///     println!("held for {:?} more, {} waiting", status.ttl, status.waiters);
    /// }
    /// if let (Some(holder), Some(held_for)) = (status.holder, status.held_for) {
    ///     println!("held by {holder} for {held_for:?}");
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn status(&self, key: &str) -> Result<LockStatus> {
        self.core.status(key).await
    }

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
        self.core
            .acquire(key, &AcquireOptions::new(), Mode::Try)
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
        self.core.acquire(key, &options, Mode::Try).await
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
        self.core
            .acquire(key, &AcquireOptions::new(), Mode::Wait)
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
        self.core.acquire(key, &options, Mode::Wait).await
    }

    /// A counting semaphore at `key` with `limit` permits: at most `limit` holders at once
    /// (see [`Semaphore`]). Sends nothing; a limit of 0 is refused when a permit is asked for.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn run(locks: ac_redislock::RedisLock) -> ac_redislock::Result<()> {
    /// let permit = locks.semaphore("encoders", 3).acquire().await?;
    /// // ... at most 3 of these run at once, across all hosts ...
    /// permit.release().await?;
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn semaphore(&self, key: impl Into<String>, limit: u32) -> Semaphore {
        Semaphore::new(Arc::clone(&self.core), key.into(), limit)
    }

    /// A read-write lock at `key`: many readers or one writer (see [`RwLock`]). Sends nothing.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn run(locks: ac_redislock::RedisLock) -> ac_redislock::Result<()> {
    /// let catalog = locks.rw_lock("catalog");
    /// let reading = catalog.read().await?;
    /// reading.release().await?;
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn rw_lock(&self, key: impl Into<String>) -> RwLock {
        RwLock::new(Arc::clone(&self.core), key.into())
    }

    /// Takes the locks at all of `keys` together, all or none, waiting up to 10 s, with the
    /// default [`AcquireOptions`]; one guard holds, renews and releases them all, and losing
    /// any one is losing the guard.
    ///
    /// Each key is an ordinary lock (the Node original's format), so single-key callers and
    /// Node workers see each one held. On one Redis, or where the keys share a Redis Cluster
    /// hash slot, the keys are taken in one atomic script. On a Cluster with keys in several
    /// slots they are taken slot by slot, in one fixed order, and what was taken is given back
    /// when a later slot is held: two callers with overlapping sets never deadlock, and a
    /// failure leaves nothing behind. Repeated keys count once. Fencing tokens are refused
    /// (ask per key instead).
    ///
    /// # Errors
    ///
    /// [`Locked`](LockError::Locked) (naming the first key) when the wait ends with any key
    /// held; [`InvalidInput`](LockError::InvalidInput) for no keys or a bad key; otherwise as
    /// [`acquire`](Self::acquire).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`acquire`](Self::acquire): what was taken is released in the
    /// background.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn run(locks: ac_redislock::RedisLock) -> ac_redislock::Result<()> {
    /// let both = locks.acquire_all(&["accounts:1", "accounts:2"]).await?;
    /// // ... move money between the two accounts ...
    /// both.release().await?;
    /// # Ok(()) }
    /// ```
    pub async fn acquire_all<S: AsRef<str>>(&self, keys: &[S]) -> Result<LockGuard> {
        self.acquire_all_with(keys, AcquireOptions::new()).await
    }

    /// [`acquire_all`](Self::acquire_all) with options.
    ///
    /// # Errors
    ///
    /// As [`acquire_all`](Self::acquire_all); [`InvalidInput`](LockError::InvalidInput) for
    /// options out of range.
    ///
    /// # Cancel safety
    ///
    /// As [`acquire_all`](Self::acquire_all).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use ac_redislock::AcquireOptions;
    /// # async fn run(locks: ac_redislock::RedisLock) -> ac_redislock::Result<()> {
    /// let keys = ["accounts:1", "accounts:2"];
    /// let both = locks.acquire_all_with(&keys, AcquireOptions::new().auto_renew(true)).await?;
    /// # both.release().await }
    /// ```
    pub async fn acquire_all_with<S: AsRef<str>>(
        &self,
        keys: &[S],
        options: AcquireOptions,
    ) -> Result<LockGuard> {
        let target = self.core.multi_target(keys)?;
        self.core.acquire_target(target, &options, Mode::Wait).await
    }

    /// Makes one attempt to take the locks at all of `keys` together, all or none (see
    /// [`acquire_all`](Self::acquire_all)).
    ///
    /// # Errors
    ///
    /// [`Locked`](LockError::Locked) if any key is held; otherwise as
    /// [`acquire_all`](Self::acquire_all).
    ///
    /// # Cancel safety
    ///
    /// As [`acquire_all`](Self::acquire_all).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn run(locks: ac_redislock::RedisLock) -> ac_redislock::Result<()> {
    /// if let Ok(both) = locks.try_acquire_all(&["accounts:1", "accounts:2"]).await {
    ///     both.release().await?;
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn try_acquire_all<S: AsRef<str>>(&self, keys: &[S]) -> Result<LockGuard> {
        self.try_acquire_all_with(keys, AcquireOptions::new()).await
    }

    /// [`try_acquire_all`](Self::try_acquire_all) with options (the wait is ignored).
    ///
    /// # Errors
    ///
    /// As [`acquire_all_with`](Self::acquire_all_with).
    ///
    /// # Cancel safety
    ///
    /// As [`acquire_all`](Self::acquire_all).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use ac_redislock::AcquireOptions;
    /// use std::time::Duration;
    /// # async fn run(locks: ac_redislock::RedisLock) -> ac_redislock::Result<()> {
    /// let options = AcquireOptions::new().ttl(Duration::from_secs(30));
    /// let both = locks.try_acquire_all_with(&["a", "b"], options).await?;
    /// # both.release().await }
    /// ```
    pub async fn try_acquire_all_with<S: AsRef<str>>(
        &self,
        keys: &[S],
        options: AcquireOptions,
    ) -> Result<LockGuard> {
        let target = self.core.multi_target(keys)?;
        self.core.acquire_target(target, &options, Mode::Try).await
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
        let guard = self.core.acquire(key, &options, Mode::WithLock).await?;
        let lost = guard.lost();
        let output = tokio::select! {
            biased;
            output = work(&guard) => output,
            reason = lost => {
                return Err(LockError::Lost { key: key.to_owned(), reason });
            }
        };
        after_work(key, output, guard.release().await)
    }

    /// Closes the client, for the end of a program: stops new work, releases what its guards
    /// still hold, and waits for the releases in flight in the background (those of guards
    /// dropped earlier, and of acquisitions that failed or were cancelled), at most for the
    /// command timeout. Returns what it could not release.
    ///
    /// Why: a dropped guard's release runs in the background on the runtime. A runtime that
    /// shuts down right after (as `#[tokio::main]` does when `main` returns) drops it unsent,
    /// and the lock stays for one lease. Await `close` before `main` returns and it is sent
    /// and answered. ([`with_lock`](Self::with_lock), and guards ended with
    /// [`release`](LockGuard::release), need no close.)
    ///
    /// What it does, in order:
    /// - the client and all its clones are closed: every call made from now on fails with
    ///   [`Unavailable`](LockError::Unavailable) ([`Shutdown`](crate::UnavailableReason::Shutdown)),
    ///   except releases, which are still sent; acquisitions waiting for a lock give up the same
    ///   way (their waiter registration is removed);
    /// - each guard still held stops renewing and its lock is released; the guard's lease ends
    ///   as [`LossReason::Closed`](crate::LossReason::Closed) (so [`with_lock`](Self::with_lock)
    ///   work in progress is cancelled and returns [`Lost`](LockError::Lost));
    /// - it waits until every background release has its answer, or the command timeout has
    ///   passed since the call.
    ///
    /// Locks taken with [`lock_key`](Self::lock_key) are the caller's (their token may be meant
    /// for another process): `close` leaves them alone. Calling `close` again waits for what is
    /// still in flight.
    ///
    /// # Errors
    ///
    /// [`CloseError`] naming each lock (or waiting-queue place) left in Redis until it expires:
    /// its release failed (Redis down), or had no answer within the command timeout (it is
    /// still tried while the runtime runs). It converts into [`LockError::NotClosed`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use ac_redislock::{AcquireOptions, RedisLock};
    /// use std::time::Duration;
    ///
    /// async fn nightly_report(locks: &RedisLock) -> ac_redislock::Result<()> {
    ///     let options = AcquireOptions::new().ttl(Duration::from_secs(30)).auto_renew(true);
    ///     let guard = locks.acquire_with("reports:nightly", options).await?;
    ///     // ... the work; a `?` here drops the guard ...
    ///     Ok(())
    /// } // the guard is dropped here: its release goes to the background
    ///
    /// #[tokio::main]
    /// async fn main() -> Result<(), Box<dyn std::error::Error>> {
    ///     let locks = RedisLock::from_url("redis://127.0.0.1/")?;
    ///     let report = nightly_report(&locks).await;
    ///     locks.close().await?; // that release is sent and answered before the runtime goes
    ///     Ok(report?)
    /// }
    /// ```
    pub async fn close(&self) -> Result<(), CloseError> {
        self.core.close().await
    }
}
