//! The blocking twin of [`crate::RedisLock`], for code without an async runtime.
//!
//! [`RedisLock`] here has the same methods as the async client, without `.await`. Each client
//! owns a small Tokio runtime (one worker thread) that runs the calls and keeps the connection
//! alive between them; a call blocks the calling thread until its answer arrives.
//!
//! # Inside an async runtime
//!
//! Calling these methods from async code does not panic, but it blocks the runtime's worker
//! thread for the whole call (on a current-thread runtime: the whole runtime). Use the async
//! [`crate::RedisLock`] there. Creating and dropping a blocking client inside a runtime is
//! fine: its own runtime is shut down in the background.
//!
//! # Examples
//!
//! ```
//! use ac_redislock::blocking::RedisLock;
//! use ac_redislock::{LockParams, ReleaseParams};
//!
//! let locks = RedisLock::in_memory()?;
//! let token = locks.lock_key(LockParams::new("jobs:42"))?;
//! locks.release_lock(ReleaseParams::new("jobs:42").value(token))?;
//! # Ok::<(), ac_redislock::LockError>(())
//! ```

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tracing::Level;

use crate::error::{LockError, Result, UnavailableReason};
use crate::lease::LossReason;
use crate::options::AcquireOptions;
use crate::params::{LockParams, ReleaseParams};

/// A blocking client for locks on Redis: [`crate::RedisLock`] without `.await`.
///
/// Clones share the connection and the background runtime.
///
/// # Examples
///
/// ```no_run
/// use ac_redislock::blocking::RedisLock;
/// use ac_redislock::{LockParams, ReleaseParams};
///
/// let locks = RedisLock::from_url("redis://127.0.0.1/")?;
/// let token = locks.lock_key(LockParams::new("jobs:42"))?;
/// // ... the job ...
/// locks.release_lock(ReleaseParams::new("jobs:42").value(token))?;
/// # Ok::<(), ac_redislock::LockError>(())
/// ```
#[derive(Clone, Debug)]
pub struct RedisLock {
    locks: crate::RedisLock,
    background: Arc<Background>,
}

/// The runtime that runs a blocking client's calls.
#[derive(Debug)]
struct Background {
    runtime: Option<tokio::runtime::Runtime>,
}

impl Background {
    fn start() -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("ac-redislock")
            .enable_all()
            .build()
            .map_err(|err| LockError::Unavailable {
                reason: UnavailableReason::Shutdown,
                source: Some(err.into()),
            })?;
        Ok(Self {
            runtime: Some(runtime),
        })
    }

    fn handle(&self) -> Option<&tokio::runtime::Handle> {
        self.runtime.as_ref().map(tokio::runtime::Runtime::handle)
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        // Never blocks and is allowed inside an async context, unlike dropping the runtime.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl RedisLock {
    /// Creates a client with default options from a URL (see
    /// [`crate::RedisLock::from_url`]).
    ///
    /// # Errors
    ///
    /// [`InvalidInput`](LockError::InvalidInput) if the URL does not parse.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let locks = ac_redislock::blocking::RedisLock::from_url("redis://127.0.0.1/")?;
    /// # Ok::<(), ac_redislock::LockError>(())
    /// ```
    pub fn from_url(url: &str) -> Result<Self> {
        Self::builder().build_from_url(url)
    }

    /// Creates a client on a new in-process store (see [`crate::RedisLock::in_memory`]).
    ///
    /// # Errors
    ///
    /// [`Unavailable`](LockError::Unavailable) if the background runtime cannot start (the
    /// system is out of threads).
    ///
    /// # Examples
    ///
    /// ```
    /// let locks = ac_redislock::blocking::RedisLock::in_memory()?;
    /// # Ok::<(), ac_redislock::LockError>(())
    /// ```
    pub fn in_memory() -> Result<Self> {
        Self::builder().build_in_memory()
    }

    /// Starts a builder for a client with options.
    ///
    /// # Examples
    ///
    /// ```
    /// let locks = ac_redislock::blocking::RedisLock::builder()
    ///     .suppress_mismatch(true)
    ///     .build_in_memory()?;
    /// # Ok::<(), ac_redislock::LockError>(())
    /// ```
    pub fn builder() -> RedisLockBuilder {
        RedisLockBuilder::default()
    }

    /// Runs `fut` on the background runtime and waits for its result on this thread.
    fn run<T, F>(&self, fut: F) -> Result<T>
    where
        T: Send + 'static,
        F: Future<Output = Result<T>> + Send + 'static,
    {
        let shut_down = || LockError::Unavailable {
            reason: UnavailableReason::Shutdown,
            source: None,
        };
        let handle = self.background.handle().ok_or_else(shut_down)?;
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        handle.spawn(async move {
            let _ = tx.send(fut.await);
        });
        rx.recv().unwrap_or_else(|_| Err(shut_down()))
    }

    /// Locks a key; see [`crate::RedisLock::lock_key`].
    ///
    /// # Errors
    ///
    /// As [`crate::RedisLock::lock_key`].
    ///
    /// # Examples
    ///
    /// ```
    /// use ac_redislock::LockParams;
    /// let locks = ac_redislock::blocking::RedisLock::in_memory()?;
    /// let token = locks.lock_key(LockParams::new("jobs:42"))?;
    /// assert_eq!(locks.lock_key(LockParams::new("jobs:42")).unwrap_err().code(), 423);
    /// # Ok::<(), ac_redislock::LockError>(())
    /// ```
    pub fn lock_key(&self, params: LockParams) -> Result<String> {
        let locks = self.locks.clone();
        self.run(async move { locks.lock_key(params).await })
    }

    /// Releases a lock; see [`crate::RedisLock::release_lock`].
    ///
    /// # Errors
    ///
    /// As [`crate::RedisLock::release_lock`].
    ///
    /// # Examples
    ///
    /// ```
    /// use ac_redislock::{LockParams, ReleaseParams};
    /// let locks = ac_redislock::blocking::RedisLock::in_memory()?;
    /// let token = locks.lock_key(LockParams::new("jobs:42"))?;
    /// locks.release_lock(ReleaseParams::new("jobs:42").value(token))?;
    /// # Ok::<(), ac_redislock::LockError>(())
    /// ```
    pub fn release_lock(&self, params: ReleaseParams) -> Result<()> {
        let locks = self.locks.clone();
        self.run(async move { locks.release_lock(params).await })
    }

    /// Reads a lock's value; see [`crate::RedisLock::get_lock`].
    ///
    /// # Errors
    ///
    /// As [`crate::RedisLock::get_lock`].
    ///
    /// # Examples
    ///
    /// ```
    /// let locks = ac_redislock::blocking::RedisLock::in_memory()?;
    /// assert_eq!(locks.get_lock("jobs:42")?, None);
    /// # Ok::<(), ac_redislock::LockError>(())
    /// ```
    pub fn get_lock(&self, key: &str) -> Result<Option<String>> {
        let locks = self.locks.clone();
        let key = key.to_owned();
        self.run(async move { locks.get_lock(&key).await })
    }

    /// Extends a lock held with `value`; see [`crate::RedisLock::extend_lock`].
    ///
    /// # Errors
    ///
    /// As [`crate::RedisLock::extend_lock`].
    ///
    /// # Examples
    ///
    /// ```
    /// use ac_redislock::LockParams;
    /// use std::time::Duration;
    /// let locks = ac_redislock::blocking::RedisLock::in_memory()?;
    /// let token = locks.lock_key(LockParams::new("jobs:42"))?;
    /// locks.extend_lock("jobs:42", &token, Duration::from_secs(60))?;
    /// # Ok::<(), ac_redislock::LockError>(())
    /// ```
    pub fn extend_lock(&self, key: &str, value: &str, expires: Duration) -> Result<()> {
        let locks = self.locks.clone();
        let (key, value) = (key.to_owned(), value.to_owned());
        self.run(async move { locks.extend_lock(&key, &value, expires).await })
    }

    /// Returns a snapshot of a lock; see [`crate::RedisLock::status`].
    ///
    /// # Errors
    ///
    /// As [`crate::RedisLock::status`].
    ///
    /// # Examples
    ///
    /// ```
    /// use ac_redislock::LockState;
    /// let locks = ac_redislock::blocking::RedisLock::in_memory()?;
    /// assert_eq!(locks.status("jobs:42")?.state, LockState::Free);
    /// # Ok::<(), ac_redislock::LockError>(())
    /// ```
    pub fn status(&self, key: &str) -> Result<crate::LockStatus> {
        let locks = self.locks.clone();
        let key = key.to_owned();
        self.run(async move { locks.status(&key).await })
    }

    /// Makes one attempt to take a lock as a guard; see [`crate::RedisLock::try_acquire`].
    ///
    /// # Errors
    ///
    /// As [`crate::RedisLock::try_acquire`].
    ///
    /// # Examples
    ///
    /// ```
    /// let locks = ac_redislock::blocking::RedisLock::in_memory()?;
    /// let guard = locks.try_acquire("jobs:42")?;
    /// assert!(locks.try_acquire("jobs:42").is_err());
    /// guard.release()?;
    /// # Ok::<(), ac_redislock::LockError>(())
    /// ```
    pub fn try_acquire(&self, key: &str) -> Result<LockGuard> {
        self.try_acquire_with(key, AcquireOptions::new())
    }

    /// [`try_acquire`](Self::try_acquire) with options; see
    /// [`crate::RedisLock::try_acquire_with`].
    ///
    /// # Errors
    ///
    /// As [`crate::RedisLock::try_acquire_with`].
    ///
    /// # Examples
    ///
    /// ```
    /// use ac_redislock::AcquireOptions;
    /// let locks = ac_redislock::blocking::RedisLock::in_memory()?;
    /// let guard = locks.try_acquire_with("jobs:42", AcquireOptions::new().fencing(true))?;
    /// assert_eq!(guard.fencing_token(), Some(1));
    /// # Ok::<(), ac_redislock::LockError>(())
    /// ```
    pub fn try_acquire_with(&self, key: &str, options: AcquireOptions) -> Result<LockGuard> {
        let locks = self.locks.clone();
        let key = key.to_owned();
        let guard = self.run(async move { locks.try_acquire_with(&key, options).await })?;
        Ok(self.wrap(guard))
    }

    /// Takes a lock as a guard, waiting for it; see [`crate::RedisLock::acquire`].
    ///
    /// # Errors
    ///
    /// As [`crate::RedisLock::acquire`].
    ///
    /// # Examples
    ///
    /// ```
    /// let locks = ac_redislock::blocking::RedisLock::in_memory()?;
    /// let guard = locks.acquire("jobs:42")?;
    /// guard.release()?;
    /// # Ok::<(), ac_redislock::LockError>(())
    /// ```
    pub fn acquire(&self, key: &str) -> Result<LockGuard> {
        self.acquire_with(key, AcquireOptions::new())
    }

    /// [`acquire`](Self::acquire) with options; see [`crate::RedisLock::acquire_with`].
    ///
    /// # Errors
    ///
    /// As [`crate::RedisLock::acquire_with`].
    ///
    /// # Examples
    ///
    /// ```
    /// use ac_redislock::AcquireOptions;
    /// use std::time::Duration;
    /// let locks = ac_redislock::blocking::RedisLock::in_memory()?;
    /// let options = AcquireOptions::new().wait(Duration::from_millis(100));
    /// let guard = locks.acquire_with("jobs:42", options.clone())?;
    /// assert!(locks.acquire_with("jobs:42", options).is_err());
    /// # Ok::<(), ac_redislock::LockError>(())
    /// ```
    pub fn acquire_with(&self, key: &str, options: AcquireOptions) -> Result<LockGuard> {
        let locks = self.locks.clone();
        let key = key.to_owned();
        let guard = self.run(async move { locks.acquire_with(&key, options).await })?;
        Ok(self.wrap(guard))
    }

    /// Runs `work` while holding the lock at `key`, renewed in the background (unless `options`
    /// turns renewal off), and releases it afterwards.
    ///
    /// A blocking closure cannot be cancelled: if the lease is lost while it runs, it runs to
    /// its end, its output is dropped and the call returns [`Lost`](LockError::Lost). Check
    /// [`LockGuard::is_held`] inside long work.
    ///
    /// # Errors
    ///
    /// As [`crate::RedisLock::with_lock`].
    ///
    /// # Examples
    ///
    /// ```
    /// use ac_redislock::AcquireOptions;
    /// let locks = ac_redislock::blocking::RedisLock::in_memory()?;
    /// let answer = locks.with_lock("jobs:42", AcquireOptions::new(), |guard| {
    ///     assert!(guard.is_held());
    ///     42
    /// })?;
    /// assert_eq!(answer, 42);
    /// # Ok::<(), ac_redislock::LockError>(())
    /// ```
    pub fn with_lock<T>(
        &self,
        key: &str,
        options: AcquireOptions,
        work: impl FnOnce(&LockGuard) -> T,
    ) -> Result<T> {
        let options = match options.auto_renew {
            Some(_) => options,
            None => options.auto_renew(true),
        };
        let guard = self.acquire_with(key, options)?;
        let value = work(&guard);
        if let Some(reason) = guard.loss_reason() {
            drop(guard);
            return Err(LockError::Lost {
                key: key.to_owned(),
                reason,
            });
        }
        match guard.release() {
            Ok(()) => Ok(value),
            Err(err @ (LockError::Lost { .. } | LockError::NotOwner { .. })) => Err(err),
            Err(err) => {
                tracing::warn!(key = ?key, error = %err, "release after work failed");
                Ok(value)
            }
        }
    }

    fn wrap(&self, guard: crate::LockGuard) -> LockGuard {
        LockGuard {
            guard: Arc::new(guard),
            client: self.clone(),
        }
    }
}

/// A held lock for blocking code: [`crate::LockGuard`] without `.await`.
///
/// # Drop behaviour
///
/// As [`crate::LockGuard`]: renewal stops and a release is sent in the background.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// let locks = ac_redislock::blocking::RedisLock::in_memory()?;
/// let guard = locks.acquire("jobs:42")?;
/// guard.extend(Duration::from_secs(30))?;
/// assert!(guard.is_held());
/// guard.release()?;
/// # Ok::<(), ac_redislock::LockError>(())
/// ```
#[clippy::has_significant_drop]
#[must_use = "dropping the guard releases the lock in the background; keep it while working"]
#[derive(Debug)]
pub struct LockGuard {
    guard: Arc<crate::LockGuard>,
    client: RedisLock,
}

impl LockGuard {
    /// See [`crate::LockGuard::key`].
    ///
    /// # Examples
    ///
    /// ```
    /// let locks = ac_redislock::blocking::RedisLock::in_memory()?;
    /// assert_eq!(locks.acquire("jobs:42")?.key(), "jobs:42");
    /// # Ok::<(), ac_redislock::LockError>(())
    /// ```
    #[must_use]
    pub fn key(&self) -> &str {
        self.guard.key()
    }

    /// See [`crate::LockGuard::token`].
    ///
    /// # Examples
    ///
    /// ```
    /// let locks = ac_redislock::blocking::RedisLock::in_memory()?;
    /// let guard = locks.acquire("jobs:42")?;
    /// assert_eq!(locks.get_lock("jobs:42")?.as_deref(), Some(guard.token()));
    /// # Ok::<(), ac_redislock::LockError>(())
    /// ```
    #[must_use]
    pub fn token(&self) -> &str {
        self.guard.token()
    }

    /// See [`crate::LockGuard::fencing_token`].
    ///
    /// # Examples
    ///
    /// ```
    /// let locks = ac_redislock::blocking::RedisLock::in_memory()?;
    /// assert_eq!(locks.acquire("jobs:42")?.fencing_token(), None);
    /// # Ok::<(), ac_redislock::LockError>(())
    /// ```
    #[must_use]
    pub fn fencing_token(&self) -> Option<u64> {
        self.guard.fencing_token()
    }

    /// See [`crate::LockGuard::replicas_acked`].
    ///
    /// # Examples
    ///
    /// ```
    /// let locks = ac_redislock::blocking::RedisLock::in_memory()?;
    /// assert_eq!(locks.acquire("jobs:42")?.replicas_acked(), None);
    /// # Ok::<(), ac_redislock::LockError>(())
    /// ```
    #[must_use]
    pub fn replicas_acked(&self) -> Option<u32> {
        self.guard.replicas_acked()
    }

    /// See [`crate::LockGuard::valid_until`].
    ///
    /// # Examples
    ///
    /// ```
    /// let locks = ac_redislock::blocking::RedisLock::in_memory()?;
    /// assert!(locks.acquire("jobs:42")?.valid_until() > std::time::Instant::now());
    /// # Ok::<(), ac_redislock::LockError>(())
    /// ```
    #[must_use]
    pub fn valid_until(&self) -> std::time::Instant {
        self.guard.valid_until()
    }

    /// See [`crate::LockGuard::remaining`].
    ///
    /// # Examples
    ///
    /// ```
    /// let locks = ac_redislock::blocking::RedisLock::in_memory()?;
    /// assert!(locks.acquire("jobs:42")?.remaining() > std::time::Duration::ZERO);
    /// # Ok::<(), ac_redislock::LockError>(())
    /// ```
    #[must_use]
    pub fn remaining(&self) -> Duration {
        self.guard.remaining()
    }

    /// See [`crate::LockGuard::is_held`].
    ///
    /// # Examples
    ///
    /// ```
    /// let locks = ac_redislock::blocking::RedisLock::in_memory()?;
    /// assert!(locks.acquire("jobs:42")?.is_held());
    /// # Ok::<(), ac_redislock::LockError>(())
    /// ```
    #[must_use]
    pub fn is_held(&self) -> bool {
        self.guard.is_held()
    }

    /// Returns how the lease ended, if it has (no waiting, no I/O).
    ///
    /// # Examples
    ///
    /// ```
    /// let locks = ac_redislock::blocking::RedisLock::in_memory()?;
    /// assert_eq!(locks.acquire("jobs:42")?.loss_reason(), None);
    /// # Ok::<(), ac_redislock::LockError>(())
    /// ```
    #[must_use]
    pub fn loss_reason(&self) -> Option<LossReason> {
        self.guard.ended()
    }

    /// Blocks until the lease ends or `timeout` passes; returns how it ended, if it did.
    ///
    /// # Examples
    ///
    /// ```
    /// use ac_redislock::{AcquireOptions, LossReason};
    /// use std::time::Duration;
    /// let locks = ac_redislock::blocking::RedisLock::in_memory()?;
    /// let guard = locks.acquire_with("jobs:42", AcquireOptions::new().ttl(Duration::from_millis(50)))?;
    /// assert_eq!(guard.wait_lost(Duration::from_secs(1)), Some(LossReason::Expired));
    /// # Ok::<(), ac_redislock::LockError>(())
    /// ```
    #[must_use]
    pub fn wait_lost(&self, timeout: Duration) -> Option<LossReason> {
        let lost = self.guard.lost();
        self.client
            .run(async move { Ok(tokio::time::timeout(timeout, lost).await.ok()) })
            .ok()
            .flatten()
    }

    /// See [`crate::LockGuard::extend`].
    ///
    /// # Errors
    ///
    /// As [`crate::LockGuard::extend`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let locks = ac_redislock::blocking::RedisLock::in_memory()?;
    /// let guard = locks.acquire("jobs:42")?;
    /// assert!(guard.extend(Duration::from_secs(60))? > Duration::from_secs(50));
    /// # Ok::<(), ac_redislock::LockError>(())
    /// ```
    pub fn extend(&self, ttl: Duration) -> Result<Duration> {
        let guard = Arc::clone(&self.guard);
        self.client.run(async move { guard.extend(ttl).await })
    }

    /// See [`crate::LockGuard::release`].
    ///
    /// # Errors
    ///
    /// As [`crate::LockGuard::release`].
    ///
    /// # Examples
    ///
    /// ```
    /// let locks = ac_redislock::blocking::RedisLock::in_memory()?;
    /// locks.acquire("jobs:42")?.release()?;
    /// assert_eq!(locks.get_lock("jobs:42")?, None);
    /// # Ok::<(), ac_redislock::LockError>(())
    /// ```
    pub fn release(self) -> Result<()> {
        let Self { guard, client } = self;
        match Arc::try_unwrap(guard) {
            Ok(guard) => client.run(async move { guard.release().await }),
            // Unreachable: calls on a blocking guard finish before they return.
            Err(_shared) => Ok(()),
        }
    }
}

/// Options for a blocking [`RedisLock`]: the same as [`crate::RedisLockBuilder`].
///
/// # Examples
///
/// ```no_run
/// use std::time::Duration;
/// let locks = ac_redislock::blocking::RedisLock::builder()
///     .command_timeout(Duration::from_secs(1))
///     .build_from_url("redis://127.0.0.1/")?;
/// # Ok::<(), ac_redislock::LockError>(())
/// ```
#[derive(Debug, Clone, Default)]
#[must_use = "the builder does nothing until one of its `build` methods is called"]
pub struct RedisLockBuilder {
    inner: crate::RedisLockBuilder,
}

impl RedisLockBuilder {
    /// See [`crate::RedisLockBuilder::suppress_mismatch`].
    ///
    /// # Examples
    ///
    /// ```
    /// let builder = ac_redislock::blocking::RedisLock::builder().suppress_mismatch(true);
    /// ```
    pub fn suppress_mismatch(self, suppress: bool) -> Self {
        self.map(|b| b.suppress_mismatch(suppress))
    }

    /// See [`crate::RedisLockBuilder::log_level`].
    ///
    /// # Examples
    ///
    /// ```
    /// let builder = ac_redislock::blocking::RedisLock::builder().log_level(tracing::Level::INFO);
    /// ```
    pub fn log_level(self, level: Level) -> Self {
        self.map(|b| b.log_level(level))
    }

    /// See [`crate::RedisLockBuilder::key_prefix`].
    ///
    /// # Examples
    ///
    /// ```
    /// let builder = ac_redislock::blocking::RedisLock::builder().key_prefix("lock:");
    /// ```
    pub fn key_prefix(self, prefix: impl Into<String>) -> Self {
        self.map(|b| b.key_prefix(prefix))
    }

    /// See [`crate::RedisLockBuilder::command_timeout`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let builder = ac_redislock::blocking::RedisLock::builder().command_timeout(Duration::from_secs(1));
    /// ```
    pub fn command_timeout(self, timeout: Duration) -> Self {
        self.map(|b| b.command_timeout(timeout))
    }

    /// See [`crate::RedisLockBuilder::max_key_len`].
    ///
    /// # Examples
    ///
    /// ```
    /// let builder = ac_redislock::blocking::RedisLock::builder().max_key_len(256);
    /// ```
    pub fn max_key_len(self, max: usize) -> Self {
        self.map(|b| b.max_key_len(max))
    }

    /// See [`crate::RedisLockBuilder::max_value_len`].
    ///
    /// # Examples
    ///
    /// ```
    /// let builder = ac_redislock::blocking::RedisLock::builder().max_value_len(4096);
    /// ```
    pub fn max_value_len(self, max: usize) -> Self {
        self.map(|b| b.max_value_len(max))
    }

    /// See [`crate::RedisLockBuilder::max_expires`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let builder = ac_redislock::blocking::RedisLock::builder().max_expires(Duration::from_secs(3600));
    /// ```
    pub fn max_expires(self, max: Duration) -> Self {
        self.map(|b| b.max_expires(max))
    }

    /// See [`crate::RedisLockBuilder::tls_root_certificate`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let ca = std::fs::read("/etc/redis/ca.crt").unwrap();
    /// let builder = ac_redislock::blocking::RedisLock::builder().tls_root_certificate(ca);
    /// ```
    #[cfg(feature = "tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
    pub fn tls_root_certificate(self, pem: impl Into<Vec<u8>>) -> Self {
        self.map(|b| b.tls_root_certificate(pem))
    }

    /// See [`crate::RedisLockBuilder::tls_client_certificate`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let (cert, key) = (std::fs::read("client.crt").unwrap(), std::fs::read("client.key").unwrap());
    /// let builder = ac_redislock::blocking::RedisLock::builder().tls_client_certificate(cert, key);
    /// ```
    #[cfg(feature = "tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
    pub fn tls_client_certificate(
        self,
        cert_pem: impl Into<Vec<u8>>,
        key_pem: impl Into<Vec<u8>>,
    ) -> Self {
        self.map(|b| b.tls_client_certificate(cert_pem, key_pem))
    }

    fn map(self, f: impl FnOnce(crate::RedisLockBuilder) -> crate::RedisLockBuilder) -> Self {
        Self {
            inner: f(self.inner),
        }
    }

    /// Builds a client from a URL (see [`crate::RedisLock::from_url`]).
    ///
    /// # Errors
    ///
    /// [`InvalidInput`](LockError::InvalidInput) for a bad setting or URL.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let locks = ac_redislock::blocking::RedisLock::builder().build_from_url("redis://127.0.0.1/")?;
    /// # Ok::<(), ac_redislock::LockError>(())
    /// ```
    pub fn build_from_url(self, url: &str) -> Result<RedisLock> {
        // Bad input costs no thread.
        self.inner.check(url)?;
        let background = Background::start()?;
        let locks = {
            let handle = background.handle().ok_or(LockError::Unavailable {
                reason: UnavailableReason::Shutdown,
                source: None,
            })?;
            // The connection's tasks must be spawned on the background runtime.
            let _entered = handle.enter();
            self.inner.build_from_url(url)?
        };
        Ok(RedisLock {
            locks,
            background: Arc::new(background),
        })
    }

    /// Builds a client on a new in-process store (see [`crate::RedisLock::in_memory`]).
    ///
    /// # Errors
    ///
    /// [`InvalidInput`](LockError::InvalidInput) for a bad setting.
    ///
    /// # Examples
    ///
    /// ```
    /// let locks = ac_redislock::blocking::RedisLock::builder().build_in_memory()?;
    /// # Ok::<(), ac_redislock::LockError>(())
    /// ```
    pub fn build_in_memory(self) -> Result<RedisLock> {
        let locks = self.inner.build_in_memory()?;
        Ok(RedisLock {
            locks,
            background: Arc::new(Background::start()?),
        })
    }
}
