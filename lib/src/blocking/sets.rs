//! The blocking twins of [`crate::Semaphore`] and [`crate::RwLock`]: the same calls without
//! `.await`, holds as blocking [`LockGuard`]s (released when dropped).

use super::{LockGuard, RedisLock};
use crate::error::Result;
use crate::lock::acquire::{Mode, SetKind};
use crate::lock::options::AcquireOptions;
use crate::status::{RwLockStatus, SemaphoreStatus};

/// A counting semaphore whose permits expire, for blocking code: [`crate::Semaphore`] without
/// `.await`. Made by [`RedisLock::semaphore`].
///
/// # Examples
///
/// ```
/// let locks = ac_redislock::blocking::RedisLock::in_memory()?;
/// let encoders = locks.semaphore("encoders", 2);
/// let one = encoders.acquire()?;
/// let two = encoders.acquire()?;
/// assert!(encoders.try_acquire().is_err()); // both permits are taken
/// drop(one); // released before drop returns
/// let three = encoders.try_acquire()?;
/// # Ok::<(), ac_redislock::LockError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Semaphore {
    client: RedisLock,
    key: String,
    limit: u32,
}

impl Semaphore {
    pub(super) fn new(client: RedisLock, key: String, limit: u32) -> Self {
        Self { client, key, limit }
    }

    /// See [`crate::Semaphore::key`].
    ///
    /// # Examples
    ///
    /// ```
    /// let locks = ac_redislock::blocking::RedisLock::in_memory()?;
    /// assert_eq!(locks.semaphore("encoders", 3).key(), "encoders");
    /// # Ok::<(), ac_redislock::LockError>(())
    /// ```
    #[must_use]
    pub fn key(&self) -> &str {
        &self.key
    }

    /// See [`crate::Semaphore::limit`].
    ///
    /// # Examples
    ///
    /// ```
    /// let locks = ac_redislock::blocking::RedisLock::in_memory()?;
    /// assert_eq!(locks.semaphore("encoders", 3).limit(), 3);
    /// # Ok::<(), ac_redislock::LockError>(())
    /// ```
    #[must_use]
    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// Takes a permit, waiting; see [`crate::Semaphore::acquire`].
    ///
    /// # Errors
    ///
    /// As [`crate::Semaphore::acquire`].
    ///
    /// # Examples
    ///
    /// ```
    /// let locks = ac_redislock::blocking::RedisLock::in_memory()?;
    /// let permit = locks.semaphore("encoders", 3).acquire()?;
    /// permit.release()?;
    /// # Ok::<(), ac_redislock::LockError>(())
    /// ```
    pub fn acquire(&self) -> Result<LockGuard> {
        self.acquire_with(AcquireOptions::new())
    }

    /// See [`crate::Semaphore::acquire_with`].
    ///
    /// # Errors
    ///
    /// As [`crate::Semaphore::acquire_with`].
    ///
    /// # Examples
    ///
    /// ```
    /// use ac_redislock::AcquireOptions;
    /// let locks = ac_redislock::blocking::RedisLock::in_memory()?;
    /// let gpus = locks.semaphore("gpus", 4);
    /// let three = gpus.acquire_with(AcquireOptions::new().permits(3))?;
    /// assert_eq!(gpus.status()?.held, 3);
    /// # Ok::<(), ac_redislock::LockError>(())
    /// ```
    pub fn acquire_with(&self, options: AcquireOptions) -> Result<LockGuard> {
        self.take(options, Mode::Wait)
    }

    /// See [`crate::Semaphore::try_acquire`].
    ///
    /// # Errors
    ///
    /// As [`crate::Semaphore::try_acquire`].
    ///
    /// # Examples
    ///
    /// ```
    /// let locks = ac_redislock::blocking::RedisLock::in_memory()?;
    /// let only = locks.semaphore("encoders", 1);
    /// let permit = only.try_acquire()?;
    /// assert_eq!(only.try_acquire().unwrap_err().code(), 423);
    /// # Ok::<(), ac_redislock::LockError>(())
    /// ```
    pub fn try_acquire(&self) -> Result<LockGuard> {
        self.try_acquire_with(AcquireOptions::new())
    }

    /// See [`crate::Semaphore::try_acquire_with`].
    ///
    /// # Errors
    ///
    /// As [`crate::Semaphore::try_acquire_with`].
    ///
    /// # Examples
    ///
    /// ```
    /// use ac_redislock::AcquireOptions;
    /// let locks = ac_redislock::blocking::RedisLock::in_memory()?;
    /// let two = locks.semaphore("gpus", 2).try_acquire_with(AcquireOptions::new().permits(2))?;
    /// # Ok::<(), ac_redislock::LockError>(())
    /// ```
    pub fn try_acquire_with(&self, options: AcquireOptions) -> Result<LockGuard> {
        self.take(options, Mode::Try)
    }

    /// See [`crate::Semaphore::status`].
    ///
    /// # Errors
    ///
    /// As [`crate::Semaphore::status`].
    ///
    /// # Examples
    ///
    /// ```
    /// let locks = ac_redislock::blocking::RedisLock::in_memory()?;
    /// let encoders = locks.semaphore("encoders", 3);
    /// let permit = encoders.acquire()?;
    /// let status = encoders.status()?;
    /// assert_eq!((status.held, status.limit, status.waiters), (1, 3, 0));
    /// # Ok::<(), ac_redislock::LockError>(())
    /// ```
    pub fn status(&self) -> Result<SemaphoreStatus> {
        let handle = self.async_handle();
        self.client.run(async move { handle.status().await })
    }

    fn async_handle(&self) -> crate::Semaphore {
        self.client.locks.semaphore(self.key.clone(), self.limit)
    }

    fn take(&self, options: AcquireOptions, mode: Mode) -> Result<LockGuard> {
        let kind = SetKind::Semaphore { limit: self.limit };
        let target = self
            .client
            .locks
            .core()
            .set_target(&self.key, kind, options.permits)?;
        self.client.acquire_target(target, options, mode)
    }
}

/// A read-write lock for blocking code: [`crate::RwLock`] without `.await`. Made by
/// [`RedisLock::rw_lock`].
///
/// # Examples
///
/// ```
/// let locks = ac_redislock::blocking::RedisLock::in_memory()?;
/// let catalog = locks.rw_lock("catalog");
/// let first = catalog.read()?;
/// let second = catalog.read()?; // readers share
/// assert!(catalog.try_write().is_err());
/// drop((first, second));
/// let writing = catalog.try_write()?;
/// # Ok::<(), ac_redislock::LockError>(())
/// ```
#[derive(Debug, Clone)]
pub struct RwLock {
    client: RedisLock,
    key: String,
}

impl RwLock {
    pub(super) fn new(client: RedisLock, key: String) -> Self {
        Self { client, key }
    }

    /// See [`crate::RwLock::key`].
    ///
    /// # Examples
    ///
    /// ```
    /// let locks = ac_redislock::blocking::RedisLock::in_memory()?;
    /// assert_eq!(locks.rw_lock("catalog").key(), "catalog");
    /// # Ok::<(), ac_redislock::LockError>(())
    /// ```
    #[must_use]
    pub fn key(&self) -> &str {
        &self.key
    }

    /// See [`crate::RwLock::read`].
    ///
    /// # Errors
    ///
    /// As [`crate::RwLock::read`].
    ///
    /// # Examples
    ///
    /// ```
    /// let locks = ac_redislock::blocking::RedisLock::in_memory()?;
    /// let reading = locks.rw_lock("catalog").read()?;
    /// # Ok::<(), ac_redislock::LockError>(())
    /// ```
    pub fn read(&self) -> Result<LockGuard> {
        self.read_with(AcquireOptions::new())
    }

    /// See [`crate::RwLock::read_with`].
    ///
    /// # Errors
    ///
    /// As [`crate::RwLock::read_with`].
    ///
    /// # Examples
    ///
    /// ```
    /// use ac_redislock::AcquireOptions;
    /// let locks = ac_redislock::blocking::RedisLock::in_memory()?;
    /// let reading = locks.rw_lock("catalog").read_with(AcquireOptions::new().auto_renew(true))?;
    /// # Ok::<(), ac_redislock::LockError>(())
    /// ```
    pub fn read_with(&self, options: AcquireOptions) -> Result<LockGuard> {
        self.take(SetKind::Read, options, Mode::Wait)
    }

    /// See [`crate::RwLock::try_read`].
    ///
    /// # Errors
    ///
    /// As [`crate::RwLock::try_read`].
    ///
    /// # Examples
    ///
    /// ```
    /// let locks = ac_redislock::blocking::RedisLock::in_memory()?;
    /// let writing = locks.rw_lock("catalog").write()?;
    /// assert_eq!(locks.rw_lock("catalog").try_read().unwrap_err().code(), 423);
    /// # Ok::<(), ac_redislock::LockError>(())
    /// ```
    pub fn try_read(&self) -> Result<LockGuard> {
        self.try_read_with(AcquireOptions::new())
    }

    /// See [`crate::RwLock::try_read_with`].
    ///
    /// # Errors
    ///
    /// As [`crate::RwLock::try_read_with`].
    ///
    /// # Examples
    ///
    /// ```
    /// use ac_redislock::AcquireOptions;
    /// use std::time::Duration;
    /// let locks = ac_redislock::blocking::RedisLock::in_memory()?;
    /// let options = AcquireOptions::new().ttl(Duration::from_secs(2));
    /// let reading = locks.rw_lock("catalog").try_read_with(options)?;
    /// # Ok::<(), ac_redislock::LockError>(())
    /// ```
    pub fn try_read_with(&self, options: AcquireOptions) -> Result<LockGuard> {
        self.take(SetKind::Read, options, Mode::Try)
    }

    /// See [`crate::RwLock::write`].
    ///
    /// # Errors
    ///
    /// As [`crate::RwLock::write`].
    ///
    /// # Examples
    ///
    /// ```
    /// let locks = ac_redislock::blocking::RedisLock::in_memory()?;
    /// let writing = locks.rw_lock("catalog").write()?;
    /// # Ok::<(), ac_redislock::LockError>(())
    /// ```
    pub fn write(&self) -> Result<LockGuard> {
        self.write_with(AcquireOptions::new())
    }

    /// See [`crate::RwLock::write_with`].
    ///
    /// # Errors
    ///
    /// As [`crate::RwLock::write_with`].
    ///
    /// # Examples
    ///
    /// ```
    /// use ac_redislock::AcquireOptions;
    /// let locks = ac_redislock::blocking::RedisLock::in_memory()?;
    /// let writing = locks.rw_lock("catalog").write_with(AcquireOptions::new().fencing(true))?;
    /// assert!(writing.fencing_token().is_some());
    /// # Ok::<(), ac_redislock::LockError>(())
    /// ```
    pub fn write_with(&self, options: AcquireOptions) -> Result<LockGuard> {
        self.take(SetKind::Write, options, Mode::Wait)
    }

    /// See [`crate::RwLock::try_write`].
    ///
    /// # Errors
    ///
    /// As [`crate::RwLock::try_write`].
    ///
    /// # Examples
    ///
    /// ```
    /// let locks = ac_redislock::blocking::RedisLock::in_memory()?;
    /// let reading = locks.rw_lock("catalog").read()?;
    /// assert_eq!(locks.rw_lock("catalog").try_write().unwrap_err().code(), 423);
    /// # Ok::<(), ac_redislock::LockError>(())
    /// ```
    pub fn try_write(&self) -> Result<LockGuard> {
        self.try_write_with(AcquireOptions::new())
    }

    /// See [`crate::RwLock::try_write_with`].
    ///
    /// # Errors
    ///
    /// As [`crate::RwLock::try_write_with`].
    ///
    /// # Examples
    ///
    /// ```
    /// use ac_redislock::AcquireOptions;
    /// let locks = ac_redislock::blocking::RedisLock::in_memory()?;
    /// let writing = locks.rw_lock("catalog").try_write_with(AcquireOptions::new().fencing(true))?;
    /// # Ok::<(), ac_redislock::LockError>(())
    /// ```
    pub fn try_write_with(&self, options: AcquireOptions) -> Result<LockGuard> {
        self.take(SetKind::Write, options, Mode::Try)
    }

    /// See [`crate::RwLock::status`].
    ///
    /// # Errors
    ///
    /// As [`crate::RwLock::status`].
    ///
    /// # Examples
    ///
    /// ```
    /// let locks = ac_redislock::blocking::RedisLock::in_memory()?;
    /// let catalog = locks.rw_lock("catalog");
    /// let reading = catalog.read()?;
    /// let status = catalog.status()?;
    /// assert_eq!((status.readers, status.writer), (1, false));
    /// # Ok::<(), ac_redislock::LockError>(())
    /// ```
    pub fn status(&self) -> Result<RwLockStatus> {
        let handle = self.client.locks.rw_lock(self.key.clone());
        self.client.run(async move { handle.status().await })
    }

    fn take(&self, kind: SetKind, options: AcquireOptions, mode: Mode) -> Result<LockGuard> {
        let core = self.client.locks.core();
        let target = core.set_target(&self.key, kind, options.permits)?;
        self.client.acquire_target(target, options, mode)
    }
}
