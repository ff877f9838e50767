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
