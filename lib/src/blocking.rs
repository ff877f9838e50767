//! The blocking twin of [`crate::RedisLock`], for code without an async runtime.
//!
//! [`RedisLock`] here has the same methods as the async client, without `.await`, and is built
//! on the same stores by the same builder ([`RedisLockBuilder`] is the async builder of the
//! [`Blocking`] flavor). Each client owns a small Tokio runtime (one worker thread) that runs
//! the calls and keeps the connection alive between them; a call blocks the calling thread
//! until its answer arrives.
//!
//! # Inside an async runtime
//!
//! Calling these methods from async code does not panic, but it blocks the runtime's worker
//! thread for the whole call (on a current-thread runtime: the whole runtime). Use the async
//! [`crate::RedisLock`] there. Creating and dropping a blocking client inside a runtime does
//! not panic either: its own runtime is shut down in the background.
//!
//! # Dropping
//!
//! A [`LockGuard`] releases its lock before its `drop` returns. The last clone of a
//! [`RedisLock`], dropped, first waits (at most the command timeout) for the releases it still
//! has in flight in the background: those of attempts that timed out, whose `SET` may have
//! landed. So a program that ends with its guard and client going out of scope leaves no lock
//! behind, and needs no [`close`](RedisLock::close).
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

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::runtime::Runtime;

use crate::builder::{Flavor, sealed};
use crate::error::{CloseError, LockError, LossReason, Result, UnavailableReason};
use crate::lock::Core;
use crate::lock::acquire::{Mode, SetKind, Target, after_work};
use crate::lock::batch::{BatchCall, BatchOutput};
use crate::lock::options::AcquireOptions;
use crate::lock::params::{LockParams, ReleaseParams};
use crate::report::ErrorChain;
use crate::status::{RwLockStatus, SemaphoreStatus};

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

/// The runtime that runs a blocking client's calls, and the lock logic it runs them for.
struct Background {
    runtime: Option<Runtime>,
    core: Arc<Core>,
}

impl fmt::Debug for Background {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Background")
            .field("running", &self.runtime.is_some())
            .finish_non_exhaustive()
    }
}

impl Background {
    fn handle(&self) -> Option<&tokio::runtime::Handle> {
        self.runtime.as_ref().map(Runtime::handle)
    }
}

impl Drop for Background {
    /// The last clone is gone: the releases still in flight in the background (of acquisitions
    /// that failed or timed out) are waited for, within the command timeout, before the
    /// runtime goes.
    fn drop(&mut self) {
        let Some(runtime) = self.runtime.take() else {
            return;
        };
        if self.core.busy() {
            let core = Arc::clone(&self.core);
            let patience = core.config().command_timeout + Duration::from_millis(100);
            let closed = run_on(runtime.handle(), Some(patience), async move {
                core.close().await.map_err(LockError::from)
            });
            if let Err(err) = closed {
                tracing::warn!(error = %ErrorChain(&err), "blocking client dropped");
            }
        }
        // Never blocks and is allowed inside an async context, unlike dropping the runtime.
        runtime.shutdown_background();
    }
}

/// Runs `fut` on `handle` and waits on this thread for its result, at most `patience` if
/// given. Never panics, inside an async runtime either (it blocks that thread).
fn run_on<T, F>(handle: &tokio::runtime::Handle, patience: Option<Duration>, fut: F) -> Result<T>
where
    T: Send + 'static,
    F: Future<Output = Result<T>> + Send + 'static,
{
    let shut_down = || LockError::Unavailable {
        reason: UnavailableReason::Shutdown,
        source: None,
    };
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    handle.spawn(async move {
        let _ = tx.send(fut.await);
    });
    match patience {
        Some(patience) => rx
            .recv_timeout(patience)
            .unwrap_or_else(|_| Err(shut_down())),
        None => rx.recv().unwrap_or_else(|_| Err(shut_down())),
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

    /// Starts a builder for a client with options: the async client's builder, whose `build`
    /// methods (every kind of store: URL, your own connection, Cluster, Sentinel, Redlock, in
    /// memory) make a blocking client.
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
        let handle = self.background.handle().ok_or(LockError::Unavailable {
            reason: UnavailableReason::Shutdown,
            source: None,
        })?;
        run_on(handle, None, fut)
    }

    /// Closes the client; see [`crate::RedisLock::close`]. A blocking client closes itself
    /// when its last clone is dropped (its guards release as they drop), so this is only
    /// needed to learn what could not be released, or to stop work shared with other threads.
    ///
    /// # Errors
    ///
    /// As [`crate::RedisLock::close`].
    ///
    /// # Examples
    ///
    /// ```
    /// let locks = ac_redislock::blocking::RedisLock::in_memory()?;
    /// locks.close()?;
    /// assert!(locks.acquire("jobs:42").unwrap_err().is_backend());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn close(&self) -> Result<(), CloseError> {
        let core = Arc::clone(self.locks.core());
        match self.run(async move { core.close().await.map_err(LockError::from) }) {
            Err(LockError::NotClosed(err)) => Err(err),
            // Otherwise the runtime is gone (it cannot be while `self` lives), and with it
            // everything that was in flight.
            Ok(()) | Err(_) => Ok(()),
        }
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

    /// Runs several seed calls at once; see [`crate::RedisLock::batch`].
    ///
    /// # Errors
    ///
    /// As [`crate::RedisLock::batch`]: each result carries its own call's errors.
    ///
    /// # Examples
    ///
    /// ```
    /// use ac_redislock::{BatchCall, BatchOutput, LockParams};
    /// let locks = ac_redislock::blocking::RedisLock::in_memory()?;
    /// let results = locks.batch([
    ///     BatchCall::Lock(LockParams::new("jobs:1").value("me")),
    ///     BatchCall::Lock(LockParams::new("jobs:1").value("you")),
    ///     BatchCall::Get("jobs:1".to_owned()),
    /// ]);
    /// assert_eq!(results[0].as_ref().ok(), Some(&BatchOutput::Lock("me".to_owned())));
    /// assert_eq!(results[1].as_ref().unwrap_err().code(), 423);
    /// # Ok::<(), ac_redislock::LockError>(())
    /// ```
    pub fn batch(&self, calls: impl IntoIterator<Item = BatchCall>) -> Vec<Result<BatchOutput>> {
        let locks = self.locks.clone();
        let calls: Vec<BatchCall> = calls.into_iter().collect();
        let count = calls.len();
        // Only a client that has shut down fails the whole batch: then each call fails so.
        self.run(async move { Ok(locks.batch(calls).await) })
            .unwrap_or_else(|_| {
                (0..count)
                    .map(|_| {
                        Err(LockError::Unavailable {
                            reason: UnavailableReason::Shutdown,
                            source: None,
                        })
                    })
                    .collect()
            })
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
        self.acquire_in(key, options, Mode::Try)
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
        self.acquire_in(key, options, Mode::Wait)
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
        let guard = self.acquire_in(key, options, Mode::WithLock)?;
        let output = work(&guard);
        if let Some(reason) = guard.loss_reason() {
            drop(guard);
            return Err(LockError::Lost {
                key: key.to_owned(),
                reason,
            });
        }
        after_work(key, output, guard.release())
    }

    /// A counting semaphore at `key` with `limit` permits; see
    /// [`crate::RedisLock::semaphore`].
    ///
    /// # Examples
    ///
    /// ```
    /// let locks = ac_redislock::blocking::RedisLock::in_memory()?;
    /// let permit = locks.semaphore("encoders", 3).acquire()?;
    /// # Ok::<(), ac_redislock::LockError>(())
    /// ```
    #[must_use]
    pub fn semaphore(&self, key: impl Into<String>, limit: u32) -> Semaphore {
        Semaphore::new(self.clone(), key.into(), limit)
    }

    /// A read-write lock at `key`; see [`crate::RedisLock::rw_lock`].
    ///
    /// # Examples
    ///
    /// ```
    /// let locks = ac_redislock::blocking::RedisLock::in_memory()?;
    /// let reading = locks.rw_lock("catalog").read()?;
    /// # Ok::<(), ac_redislock::LockError>(())
    /// ```
    #[must_use]
    pub fn rw_lock(&self, key: impl Into<String>) -> RwLock {
        RwLock::new(self.clone(), key.into())
    }

    /// Takes the locks at all of `keys` together, waiting; see
    /// [`crate::RedisLock::acquire_all`].
    ///
    /// # Errors
    ///
    /// As [`crate::RedisLock::acquire_all`].
    ///
    /// # Examples
    ///
    /// ```
    /// let locks = ac_redislock::blocking::RedisLock::in_memory()?;
    /// let both = locks.acquire_all(&["accounts:1", "accounts:2"])?;
    /// assert!(locks.try_acquire("accounts:2").is_err());
    /// both.release()?;
    /// # Ok::<(), ac_redislock::LockError>(())
    /// ```
    pub fn acquire_all<S: AsRef<str>>(&self, keys: &[S]) -> Result<LockGuard> {
        self.acquire_all_with(keys, AcquireOptions::new())
    }

    /// See [`crate::RedisLock::acquire_all_with`].
    ///
    /// # Errors
    ///
    /// As [`crate::RedisLock::acquire_all_with`].
    ///
    /// # Examples
    ///
    /// ```
    /// use ac_redislock::AcquireOptions;
    /// let locks = ac_redislock::blocking::RedisLock::in_memory()?;
    /// let both = locks.acquire_all_with(&["a", "b"], AcquireOptions::new().auto_renew(true))?;
    /// # Ok::<(), ac_redislock::LockError>(())
    /// ```
    pub fn acquire_all_with<S: AsRef<str>>(
        &self,
        keys: &[S],
        options: AcquireOptions,
    ) -> Result<LockGuard> {
        let target = self.locks.core().multi_target(keys)?;
        self.acquire_target(target, options, Mode::Wait)
    }

    /// One attempt at the locks at all of `keys` together; see
    /// [`crate::RedisLock::try_acquire_all`].
    ///
    /// # Errors
    ///
    /// As [`crate::RedisLock::try_acquire_all`].
    ///
    /// # Examples
    ///
    /// ```
    /// let locks = ac_redislock::blocking::RedisLock::in_memory()?;
    /// let b = locks.acquire("b")?;
    /// assert!(locks.try_acquire_all(&["a", "b"]).is_err());
    /// assert!(locks.try_acquire("a").is_ok(), "nothing was left taken");
    /// # Ok::<(), ac_redislock::LockError>(())
    /// ```
    pub fn try_acquire_all<S: AsRef<str>>(&self, keys: &[S]) -> Result<LockGuard> {
        self.try_acquire_all_with(keys, AcquireOptions::new())
    }

    /// See [`crate::RedisLock::try_acquire_all_with`].
    ///
    /// # Errors
    ///
    /// As [`crate::RedisLock::try_acquire_all_with`].
    ///
    /// # Examples
    ///
    /// ```
    /// use ac_redislock::AcquireOptions;
    /// use std::time::Duration;
    /// let locks = ac_redislock::blocking::RedisLock::in_memory()?;
    /// let options = AcquireOptions::new().ttl(Duration::from_secs(30));
    /// let both = locks.try_acquire_all_with(&["a", "b"], options)?;
    /// # Ok::<(), ac_redislock::LockError>(())
    /// ```
    pub fn try_acquire_all_with<S: AsRef<str>>(
        &self,
        keys: &[S],
        options: AcquireOptions,
    ) -> Result<LockGuard> {
        let target = self.locks.core().multi_target(keys)?;
        self.acquire_target(target, options, Mode::Try)
    }

    /// Takes the lock as the async client does, in `mode`, on the background runtime.
    fn acquire_in(&self, key: &str, options: AcquireOptions, mode: Mode) -> Result<LockGuard> {
        let target = self.locks.core().mutex_target(key)?;
        self.acquire_target(target, options, mode)
    }

    /// Takes `target` as the async client does, in `mode`, on the background runtime.
    fn acquire_target(
        &self,
        target: Target<'_>,
        options: AcquireOptions,
        mode: Mode,
    ) -> Result<LockGuard> {
        let core = std::sync::Arc::clone(self.locks.core());
        let target = target.into_owned();
        let guard = self.run(async move { core.acquire_target(target, &options, mode).await })?;
        Ok(LockGuard {
            guard: Arc::new(guard),
            client: self.clone(),
            released: false,
        })
    }
}

/// A held lock for blocking code: [`crate::LockGuard`] without `.await`.
///
/// # Drop behaviour
///
/// Dropping a guard that still holds its lock releases it before `drop` returns: renewal
/// stops, the release is sent and its answer awaited (at most the command timeout, or twice
/// that when the connection must be made again). An error is logged, not raised: the lock then
/// expires at the end of its ttl. So a guard that goes out of scope at the end of `main`, or on
/// an early return, frees its lock, as a context manager does in Python. Use
/// [`release`](Self::release) to see the error.
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
#[must_use = "dropping the guard releases the lock; keep it while working"]
#[derive(Debug)]
pub struct LockGuard {
    guard: Arc<crate::LockGuard>,
    client: RedisLock,
    released: bool,
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

    /// See [`crate::LockGuard::keys`].
    ///
    /// # Examples
    ///
    /// ```
    /// let locks = ac_redislock::blocking::RedisLock::in_memory()?;
    /// assert_eq!(locks.acquire_all(&["b", "a"])?.keys(), ["a", "b"]);
    /// # Ok::<(), ac_redislock::LockError>(())
    /// ```
    #[must_use]
    pub fn keys(&self) -> &[String] {
        self.guard.keys()
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
    pub fn release(mut self) -> Result<()> {
        self.released = true;
        let guard = Arc::clone(&self.guard);
        self.client.run(async move { guard.release_held().await })
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        let guard = Arc::clone(&self.guard);
        match self.client.run(async move { guard.release_held().await }) {
            // A backend error was logged where it happened.
            Ok(()) | Err(LockError::Unavailable { .. } | LockError::Redis(_)) => {}
            Err(err) => {
                tracing::debug!(key = ?self.guard.key(), error = %ErrorChain(&err), "guard dropped")
            }
        }
    }
}

/// Options for a blocking [`RedisLock`]: [`crate::RedisLockBuilder`] of the [`Blocking`]
/// flavor, with every setting and every `build` method of the async builder, each `build`
/// method returning a blocking client.
///
/// # Examples
///
/// ```no_run
/// use std::time::Duration;
/// let locks = ac_redislock::blocking::RedisLock::builder()
///     .command_timeout(Duration::from_secs(1))
///     .build_cluster(&["redis://10.0.0.1:7000/", "redis://10.0.0.2:7000/"])?;
/// # Ok::<(), ac_redislock::LockError>(())
/// ```
pub type RedisLockBuilder = crate::RedisLockBuilder<Blocking>;

/// The [`Flavor`] of [`crate::RedisLockBuilder`] that makes a blocking [`RedisLock`]: the
/// store is set up inside the client's own runtime, which then runs its calls.
///
/// # Examples
///
/// ```
/// let builder: ac_redislock::RedisLockBuilder<ac_redislock::blocking::Blocking> =
///     ac_redislock::blocking::RedisLock::builder();
/// let locks = builder.build_in_memory()?;
/// # Ok::<(), ac_redislock::LockError>(())
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Blocking;

impl sealed::Sealed for Blocking {}

impl Flavor for Blocking {
    type Client = RedisLock;

    fn runtime() -> Result<Option<Runtime>> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("ac-redislock")
            .enable_all()
            .build()
            .map_err(|err| LockError::Unavailable {
                reason: UnavailableReason::Shutdown,
                source: Some(err.into()),
            })?;
        Ok(Some(runtime))
    }

    fn wrap(locks: crate::RedisLock, runtime: Option<Runtime>) -> RedisLock {
        let core = Arc::clone(locks.core());
        RedisLock {
            locks,
            background: Arc::new(Background { runtime, core }),
        }
    }
}

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
    fn new(client: RedisLock, key: String, limit: u32) -> Self {
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
    fn new(client: RedisLock, key: String) -> Self {
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
