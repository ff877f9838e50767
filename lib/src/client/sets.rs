//! The handles of the lease-set primitives: [`Semaphore`] (at most N holders at once) and
//! [`RwLock`] (many readers or one writer). Each is a key and the client it was made from;
//! making one sends nothing. Their holds are [`LockGuard`]s, with everything a lock's guard
//! has: a lease that is renewed, extended, released (also on drop, in the background) and
//! reported lost.

use std::fmt;
use std::sync::Arc;

use crate::error::Result;
use crate::lock::Core;
use crate::lock::acquire::{Mode, SetKind};
use crate::lock::guard::LockGuard;
use crate::lock::options::AcquireOptions;
use crate::status::{RwLockStatus, SemaphoreStatus};

/// A counting semaphore whose permits expire: at most `limit` permits are held at once,
/// across every process that uses the key.
///
/// Made by [`RedisLock::semaphore`](crate::RedisLock::semaphore). Each permit is a lease of
/// its own, with its own token and expiry, judged by the Redis server's clock: a holder that
/// crashes gives its permit back when its lease ends, never later. Several permits are taken
/// in one atomic step ([`AcquireOptions::permits`]). Waiters are woken when a permit frees and
/// are served in the order they came: a waiter that wants more permits than are free holds
/// back the ones behind it.
///
/// Every process using a key must use the same limit. Lowering it takes effect for the
/// handles with the new limit at once: none of them enters while more than the new limit is
/// held, so once the holders admitted under the old limit are gone, never more than the new
/// limit hold at once.
///
/// Not available on Redlock: a count kept by independent masters is not one count (each
/// majority of masters could admit a different set of holders), so it is refused with
/// [`InvalidInput::NotSupported`](crate::InvalidInput::NotSupported).
///
/// # Examples
///
/// ```no_run
/// # async fn run(locks: ac_redislock::RedisLock) -> ac_redislock::Result<()> {
/// let encoders = locks.semaphore("encoders", 3);
/// let permit = encoders.acquire().await?; // waits while 3 are taken
/// // ... at most 3 of these run at once, across all hosts ...
/// permit.release().await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Semaphore {
    core: Arc<Core>,
    key: String,
    limit: u32,
}

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Semaphore")
            .field("key", &self.key)
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

impl Semaphore {
    pub(crate) fn new(core: Arc<Core>, key: String, limit: u32) -> Self {
        Self { core, key, limit }
    }

    /// Returns the key, as given (without the instance's prefix).
    ///
    /// # Examples
    ///
    /// ```
    /// # let locks = ac_redislock::RedisLock::in_memory();
    /// assert_eq!(locks.semaphore("encoders", 3).key(), "encoders");
    /// ```
    #[must_use]
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Returns the limit: how many permits may be held at once.
    ///
    /// # Examples
    ///
    /// ```
    /// # let locks = ac_redislock::RedisLock::in_memory();
    /// assert_eq!(locks.semaphore("encoders", 3).limit(), 3);
    /// ```
    #[must_use]
    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// Takes one permit, waiting up to 10 s for it, with the default [`AcquireOptions`].
    ///
    /// # Errors
    ///
    /// [`Locked`](crate::LockError::Locked) when the wait ends with no permit free;
    /// [`InvalidInput`](crate::LockError::InvalidInput) for a limit of 0, or on Redlock;
    /// [`WrongType`](crate::LockError::WrongType) if the key holds something else (a lock, a
    /// list); otherwise as [`RedisLock::acquire`](crate::RedisLock::acquire).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`RedisLock::acquire`](crate::RedisLock::acquire).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn run(locks: ac_redislock::RedisLock) -> ac_redislock::Result<()> {
    /// let permit = locks.semaphore("encoders", 3).acquire().await?;
    /// permit.release().await?;
    /// # Ok(()) }
    /// ```
    pub async fn acquire(&self) -> Result<LockGuard> {
        self.acquire_with(AcquireOptions::new()).await
    }

    /// [`acquire`](Self::acquire) with options: how many permits
    /// ([`permits`](AcquireOptions::permits)), lease, wait, renewal. Fencing tokens are
    /// refused: permits are not exclusive.
    ///
    /// # Errors
    ///
    /// As [`acquire`](Self::acquire); [`InvalidInput`](crate::LockError::InvalidInput) for
    /// options out of range (permits 0 or above the limit, fencing).
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
    /// let options = AcquireOptions::new().permits(2).auto_renew(true);
    /// let two = locks.semaphore("gpus", 8).acquire_with(options).await?;
    /// # two.release().await }
    /// ```
    pub async fn acquire_with(&self, options: AcquireOptions) -> Result<LockGuard> {
        self.take(options, Mode::Wait).await
    }

    /// Makes one attempt to take a permit, with the default [`AcquireOptions`].
    ///
    /// # Errors
    ///
    /// [`Locked`](crate::LockError::Locked) if no permit is free (or others wait for one);
    /// otherwise as [`acquire`](Self::acquire).
    ///
    /// # Cancel safety
    ///
    /// As [`acquire`](Self::acquire).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn run(locks: ac_redislock::RedisLock) -> ac_redislock::Result<()> {
    /// if let Ok(permit) = locks.semaphore("encoders", 3).try_acquire().await {
    ///     permit.release().await?;
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn try_acquire(&self) -> Result<LockGuard> {
        self.try_acquire_with(AcquireOptions::new()).await
    }

    /// [`try_acquire`](Self::try_acquire) with options (the wait is ignored: one attempt).
    ///
    /// # Errors
    ///
    /// As [`acquire_with`](Self::acquire_with).
    ///
    /// # Cancel safety
    ///
    /// As [`acquire`](Self::acquire).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use ac_redislock::AcquireOptions;
    /// # async fn run(locks: ac_redislock::RedisLock) -> ac_redislock::Result<()> {
    /// let three = locks
    ///     .semaphore("gpus", 8)
    ///     .try_acquire_with(AcquireOptions::new().permits(3))
    ///     .await?;
    /// # three.release().await }
    /// ```
    pub async fn try_acquire_with(&self, options: AcquireOptions) -> Result<LockGuard> {
        self.take(options, Mode::Try).await
    }

    /// A snapshot: permits held, holders, waiters (expired permits are not counted), and this
    /// handle's limit.
    ///
    /// # Errors
    ///
    /// [`WrongType`](crate::LockError::WrongType) if the key is not a semaphore; as
    /// [`RedisLock::status`](crate::RedisLock::status) otherwise.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn run(locks: ac_redislock::RedisLock) -> ac_redislock::Result<()> {
    /// let status = locks.semaphore("encoders", 3).status().await?;
    /// assert!(status.held <= 3);
    /// # Ok(()) }
    /// ```
    pub async fn status(&self) -> Result<SemaphoreStatus> {
        let status = self.core.set_status(&self.key, "a semaphore").await?;
        Ok(SemaphoreStatus {
            limit: self.limit,
            held: status.shares,
            holders: status.holds,
            ttl: status.ttl,
            waiters: status.waiters,
        })
    }

    async fn take(&self, options: AcquireOptions, mode: Mode) -> Result<LockGuard> {
        let kind = SetKind::Semaphore { limit: self.limit };
        let target = self.core.set_target(&self.key, kind, options.permits)?;
        self.core.acquire_target(target, &options, mode).await
    }
}

/// A read-write lock: many readers at once, or one writer alone, across every process that
/// uses the key.
///
/// Made by [`RedisLock::rw_lock`](crate::RedisLock::rw_lock). Each read hold is a lease of its
/// own, so a crashed reader frees its share when its lease ends. Waiters are served in the
/// order they came, so a waiting writer holds back the readers that come after it: a stream
/// of readers never starves a writer. Writers may ask for a fencing token
/// ([`AcquireOptions::fencing`]); a read hold has none.
///
/// Not available on Redlock, for the reason given at [`Semaphore`].
///
/// # Examples
///
/// ```no_run
/// # async fn run(locks: ac_redislock::RedisLock) -> ac_redislock::Result<()> {
/// let catalog = locks.rw_lock("catalog");
/// let reading = catalog.read().await?; // shared with other readers
/// reading.release().await?;
/// let writing = catalog.write().await?; // alone
/// writing.release().await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RwLock {
    core: Arc<Core>,
    key: String,
}

impl fmt::Debug for RwLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RwLock")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl RwLock {
    pub(crate) fn new(core: Arc<Core>, key: String) -> Self {
        Self { core, key }
    }

    /// Returns the key, as given (without the instance's prefix).
    ///
    /// # Examples
    ///
    /// ```
    /// # let locks = ac_redislock::RedisLock::in_memory();
    /// assert_eq!(locks.rw_lock("catalog").key(), "catalog");
    /// ```
    #[must_use]
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Takes a read hold, waiting up to 10 s, with the default [`AcquireOptions`].
    ///
    /// # Errors
    ///
    /// [`Locked`](crate::LockError::Locked) when the wait ends while a writer holds the lock
    /// or waits for it; [`InvalidInput`](crate::LockError::InvalidInput) on Redlock;
    /// otherwise as [`RedisLock::acquire`](crate::RedisLock::acquire).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`RedisLock::acquire`](crate::RedisLock::acquire).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn run(locks: ac_redislock::RedisLock) -> ac_redislock::Result<()> {
    /// let reading = locks.rw_lock("catalog").read().await?;
    /// # reading.release().await }
    /// ```
    pub async fn read(&self) -> Result<LockGuard> {
        self.read_with(AcquireOptions::new()).await
    }

    /// [`read`](Self::read) with options (fencing refused: a read hold is shared).
    ///
    /// # Errors
    ///
    /// As [`read`](Self::read); [`InvalidInput`](crate::LockError::InvalidInput) for options
    /// out of range.
    ///
    /// # Cancel safety
    ///
    /// As [`read`](Self::read).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use ac_redislock::AcquireOptions;
    /// # async fn run(locks: ac_redislock::RedisLock) -> ac_redislock::Result<()> {
    /// let reading = locks.rw_lock("catalog").read_with(AcquireOptions::new().auto_renew(true)).await?;
    /// # reading.release().await }
    /// ```
    pub async fn read_with(&self, options: AcquireOptions) -> Result<LockGuard> {
        self.take(SetKind::Read, options, Mode::Wait).await
    }

    /// Makes one attempt to take a read hold.
    ///
    /// # Errors
    ///
    /// [`Locked`](crate::LockError::Locked) if a writer holds it or waits; otherwise as
    /// [`read`](Self::read).
    ///
    /// # Cancel safety
    ///
    /// As [`read`](Self::read).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn run(locks: ac_redislock::RedisLock) -> ac_redislock::Result<()> {
    /// let reading = locks.rw_lock("catalog").try_read().await?;
    /// # reading.release().await }
    /// ```
    pub async fn try_read(&self) -> Result<LockGuard> {
        self.try_read_with(AcquireOptions::new()).await
    }

    /// [`try_read`](Self::try_read) with options.
    ///
    /// # Errors
    ///
    /// As [`read_with`](Self::read_with).
    ///
    /// # Cancel safety
    ///
    /// As [`read`](Self::read).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use ac_redislock::AcquireOptions;
    /// use std::time::Duration;
    /// # async fn run(locks: ac_redislock::RedisLock) -> ac_redislock::Result<()> {
    /// let options = AcquireOptions::new().ttl(Duration::from_secs(2));
    /// let reading = locks.rw_lock("catalog").try_read_with(options).await?;
    /// # reading.release().await }
    /// ```
    pub async fn try_read_with(&self, options: AcquireOptions) -> Result<LockGuard> {
        self.take(SetKind::Read, options, Mode::Try).await
    }

    /// Takes the write hold, waiting up to 10 s, with the default [`AcquireOptions`].
    ///
    /// # Errors
    ///
    /// [`Locked`](crate::LockError::Locked) when the wait ends while others hold the lock or
    /// wait ahead; otherwise as [`read`](Self::read).
    ///
    /// # Cancel safety
    ///
    /// As [`read`](Self::read).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn run(locks: ac_redislock::RedisLock) -> ac_redislock::Result<()> {
    /// let writing = locks.rw_lock("catalog").write().await?;
    /// # writing.release().await }
    /// ```
    pub async fn write(&self) -> Result<LockGuard> {
        self.write_with(AcquireOptions::new()).await
    }

    /// [`write`](Self::write) with options, a fencing token among them.
    ///
    /// # Errors
    ///
    /// As [`write`](Self::write); [`InvalidInput`](crate::LockError::InvalidInput) for options
    /// out of range.
    ///
    /// # Cancel safety
    ///
    /// As [`read`](Self::read).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use ac_redislock::AcquireOptions;
    /// # async fn run(locks: ac_redislock::RedisLock) -> ac_redislock::Result<()> {
    /// let writing = locks.rw_lock("catalog").write_with(AcquireOptions::new().fencing(true)).await?;
    /// let fence = writing.fencing_token().expect("asked for one");
    /// # writing.release().await }
    /// ```
    pub async fn write_with(&self, options: AcquireOptions) -> Result<LockGuard> {
        self.take(SetKind::Write, options, Mode::Wait).await
    }

    /// Makes one attempt to take the write hold.
    ///
    /// # Errors
    ///
    /// [`Locked`](crate::LockError::Locked) if anyone holds it or waits; otherwise as
    /// [`write`](Self::write).
    ///
    /// # Cancel safety
    ///
    /// As [`read`](Self::read).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn run(locks: ac_redislock::RedisLock) -> ac_redislock::Result<()> {
    /// let writing = locks.rw_lock("catalog").try_write().await?;
    /// # writing.release().await }
    /// ```
    pub async fn try_write(&self) -> Result<LockGuard> {
        self.try_write_with(AcquireOptions::new()).await
    }

    /// [`try_write`](Self::try_write) with options.
    ///
    /// # Errors
    ///
    /// As [`write_with`](Self::write_with).
    ///
    /// # Cancel safety
    ///
    /// As [`read`](Self::read).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use ac_redislock::AcquireOptions;
    /// # async fn run(locks: ac_redislock::RedisLock) -> ac_redislock::Result<()> {
    /// let writing = locks.rw_lock("catalog").try_write_with(AcquireOptions::new().fencing(true)).await?;
    /// # writing.release().await }
    /// ```
    pub async fn try_write_with(&self, options: AcquireOptions) -> Result<LockGuard> {
        self.take(SetKind::Write, options, Mode::Try).await
    }

    /// A snapshot: readers, writer, waiters (expired holds are not counted) and the writers'
    /// fencing counter.
    ///
    /// # Errors
    ///
    /// [`WrongType`](crate::LockError::WrongType) if the key is not a read-write lock; as
    /// [`RedisLock::status`](crate::RedisLock::status) otherwise.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn run(locks: ac_redislock::RedisLock) -> ac_redislock::Result<()> {
    /// let status = locks.rw_lock("catalog").status().await?;
    /// assert!(!(status.writer && status.readers > 0));
    /// # Ok(()) }
    /// ```
    pub async fn status(&self) -> Result<RwLockStatus> {
        let status = self.core.set_status(&self.key, "a read-write lock").await?;
        Ok(RwLockStatus {
            readers: status.holds,
            writer: status.exclusive,
            ttl: status.ttl,
            waiters: status.waiters,
            fencing_counter: status.fencing_counter,
        })
    }

    async fn take(&self, kind: SetKind, options: AcquireOptions, mode: Mode) -> Result<LockGuard> {
        let target = self.core.set_target(&self.key, kind, options.permits)?;
        self.core.acquire_target(target, &options, mode).await
    }
}
