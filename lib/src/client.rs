//! [`RedisLock`], the client, and its builder.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use tracing::Level;

use crate::error::{InvalidInput, LockError, Result, UnavailableReason};
use crate::params::{LockParams, ReleaseParams};
use crate::store::memory::MemoryStore;
use crate::store::redis_store::{RedisStore, WakeSource};
use crate::store::{Acquire, AcquireRequest, BoxFuture, Expiry, Owned, Store, StoreResult};
use crate::token::new_token;

/// Default time a single Redis call may take before it fails with
/// [`Unavailable`](LockError::Unavailable): 3 seconds.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(3);
/// Default maximum key length in bytes, prefix included: 1 KiB.
pub const DEFAULT_MAX_KEY_LEN: usize = 1024;
/// Default maximum value length in bytes: 1 KiB.
pub const DEFAULT_MAX_VALUE_LEN: usize = 1024;
/// Default maximum expiry: 24 hours. Longer leases are almost always a bug (a unit mistake, or a
/// lock that outlives its holder by a day); raise it with
/// [`RedisLockBuilder::max_expires`] if you mean it.
pub const DEFAULT_MAX_EXPIRES: Duration = Duration::from_secs(24 * 60 * 60);

/// Default time a Redlock node may take to answer before it counts as failed: 50 ms, the upper
/// end of what the Redlock description suggests for a 10 s lease.
pub const DEFAULT_REDLOCK_NODE_TIMEOUT: Duration = Duration::from_millis(50);

/// Emits a `tracing` event at a level chosen at run time (the macros want a constant).
macro_rules! event_at {
    ($level:expr, $($rest:tt)+) => {{
        let level: ::tracing::Level = $level;
        if level == ::tracing::Level::ERROR {
            tracing::error!($($rest)+)
        } else if level == ::tracing::Level::WARN {
            tracing::warn!($($rest)+)
        } else if level == ::tracing::Level::INFO {
            tracing::info!($($rest)+)
        } else if level == ::tracing::Level::DEBUG {
            tracing::debug!($($rest)+)
        } else {
            tracing::trace!($($rest)+)
        }
    }};
}
pub(crate) use event_at;

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
    inner: Arc<Inner>,
}

struct Inner {
    store: Box<dyn Store>,
    config: Config,
}

#[derive(Debug, Clone)]
struct Config {
    suppress_mismatch: bool,
    log_level: Level,
    key_prefix: String,
    command_timeout: Duration,
    max_key_len: usize,
    max_value_len: usize,
    max_expires: Duration,
    redlock_node_timeout: Duration,
    drift_factor: f64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            suppress_mismatch: false,
            log_level: Level::DEBUG,
            key_prefix: String::new(),
            command_timeout: DEFAULT_COMMAND_TIMEOUT,
            max_key_len: DEFAULT_MAX_KEY_LEN,
            max_value_len: DEFAULT_MAX_VALUE_LEN,
            max_expires: DEFAULT_MAX_EXPIRES,
            redlock_node_timeout: DEFAULT_REDLOCK_NODE_TIMEOUT,
            drift_factor: crate::lease::DEFAULT_DRIFT_FACTOR,
        }
    }
}

impl fmt::Debug for RedisLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The connection is left out: its Debug output may show a password.
        f.debug_struct("RedisLock")
            .field("in_memory", &!self.inner.store.does_io())
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl RedisLock {
    /// Creates a client with default options on your redis-rs async connection.
    ///
    /// Any connection that implements redis-rs's [`ConnectionLike`] and is a cheap `Clone`
    /// handle works: `MultiplexedConnection`, `ConnectionManager` (which reconnects), or a
    /// cluster connection. Each call works on its own clone, so many calls share one connection
    /// concurrently.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let client = redis::Client::open("redis://127.0.0.1/")?;
    /// let conn = client.get_multiplexed_async_connection().await?;
    /// let locks = ac_redislock::RedisLock::new(conn);
    /// # Ok(()) }
    /// ```
    pub fn new<C>(conn: C) -> Self
    where
        C: ConnectionLike + Clone + Send + Sync + 'static,
    {
        let config = Config::default();
        let store = RedisStore::new(conn, WakeSource::None, false, config.command_timeout);
        Self::with_store(Box::new(store), config)
    }

    /// Creates a client with default options from a URL: `redis://[user:password@]host[:port][/db]`,
    /// `rediss://` for TLS, or `unix:///path/to/redis.sock`.
    ///
    /// The connection is opened on first use and re-opened after it breaks (a
    /// `ConnectionManager`), so a client made while Redis is down starts working when Redis
    /// comes back; until then each call fails with [`Unavailable`](LockError::Unavailable).
    ///
    /// # Errors
    ///
    /// [`InvalidInput`](LockError::InvalidInput) if the URL does not parse (the message never
    /// repeats the URL, which may hold a password), or if called outside a Tokio runtime.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn run() -> ac_redislock::Result<()> {
    /// let locks = ac_redislock::RedisLock::from_url("redis://127.0.0.1:6379/0")?;
    /// # Ok(()) }
    /// ```
    pub fn from_url(url: &str) -> Result<Self> {
        Self::builder().build_from_url(url)
    }

    /// Creates a client on an in-process store, the original's fallback when no Redis is given.
    ///
    /// It has the same semantics as Redis (expiry honoured, compare on release) but locks only
    /// within this process: each call to `in_memory` makes a new, empty store, shared by the
    /// clones of the returned client.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> ac_redislock::Result<()> {
    /// use ac_redislock::{LockParams, RedisLock};
    /// let locks = RedisLock::in_memory();
    /// let token = locks.lock_key(LockParams::new("jobs:42")).await?;
    /// assert_eq!(locks.get_lock("jobs:42").await?, Some(token));
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn in_memory() -> Self {
        Self::with_store(Box::<MemoryStore>::default(), Config::default())
    }

    /// Starts a builder for a client with options.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let locks = ac_redislock::RedisLock::builder()
    ///     .suppress_mismatch(true)
    ///     .command_timeout(Duration::from_secs(1))
    ///     .build_in_memory()?;
    /// # Ok::<(), ac_redislock::LockError>(())
    /// ```
    pub fn builder() -> RedisLockBuilder {
        RedisLockBuilder::default()
    }

    fn with_store(store: Box<dyn Store>, config: Config) -> Self {
        Self {
            inner: Arc::new(Inner { store, config }),
        }
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
        let wire = self.wire_key(&key)?;
        let expiry = self.check_expires(expires)?;
        let (value, generated) = match value {
            Some(value) => {
                self.check_value(&value)?;
                (value, false)
            }
            None => (new_token()?, true),
        };
        let level = self.inner.config.log_level;
        let expires = expiry.as_duration();
        let request = AcquireRequest {
            key: &wire,
            token: &value,
            expiry,
            waiter: None,
            fencing: false,
            probe: false,
        };
        match self.call(&key, self.inner.store.acquire(request)).await {
            Ok(Acquire::Granted { .. }) => {
                event_at!(level, key = ?key, ?expires, outcome = "acquired", "lock attempt");
                Ok(value)
            }
            Ok(Acquire::Held { .. }) => {
                event_at!(level, key = ?key, ?expires, outcome = "locked", "lock attempt");
                Err(LockError::Locked { key })
            }
            Ok(Acquire::WrongType(found)) => {
                event_at!(level, key = ?key, ?expires, outcome = "wrong type", "lock attempt");
                tracing::error!(key = ?key, found = %found, "lock key holds a non-string value");
                Err(LockError::WrongType { key, found })
            }
            Err(err) => {
                event_at!(level, key = ?key, ?expires, outcome = "error", "lock attempt");
                tracing::error!(key = ?key, error = %ErrorChain(&err), "lock attempt failed");
                if generated && outcome_unknown(&err) {
                    self.release_in_background(wire.into_owned(), value, expires);
                }
                Err(err)
            }
        }
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
        let wire = self.wire_key(&key)?;
        let Some(value) = value else {
            let existed = self
                .call(&key, self.inner.store.force_release(&wire))
                .await
                .inspect_err(|err| log_backend_error("force release", &key, err))?;
            tracing::debug!(key = ?key, existed, "force release");
            return Ok(());
        };
        self.check_value(&value)?;
        let outcome = self
            .call(&key, self.inner.store.release(&wire, &value))
            .await
            .inspect_err(|err| log_backend_error("release", &key, err))?;
        let mismatch = match outcome {
            Owned::Done => {
                tracing::debug!(key = ?key, "released");
                return Ok(());
            }
            Owned::NotOwner => LockError::NotOwner { key },
            Owned::NotHeld => LockError::NotHeld { key },
        };
        if suppress_mismatch.unwrap_or(self.inner.config.suppress_mismatch) {
            return Ok(());
        }
        tracing::warn!(error = %mismatch, "release mismatch");
        Err(mismatch)
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
        let wire = self.wire_key(key)?;
        self.check_value(value)?;
        let ttl = self.check_expires(expires)?.as_duration();
        let outcome = self
            .call(key, self.inner.store.extend(&wire, value, ttl))
            .await
            .inspect_err(|err| log_backend_error("extend", key, err))?;
        let mismatch = match outcome {
            Owned::Done => return Ok(()),
            Owned::NotOwner => LockError::NotOwner {
                key: key.to_owned(),
            },
            Owned::NotHeld => LockError::NotHeld {
                key: key.to_owned(),
            },
        };
        if !self.inner.config.suppress_mismatch {
            tracing::warn!(error = %mismatch, "extend mismatch");
        }
        Err(mismatch)
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
        let wire = self.wire_key(key)?;
        self.call(key, self.inner.store.get(&wire))
            .await
            .inspect_err(|err| log_backend_error("get", key, err))
    }

    /// Returns a snapshot of the lock at `key`: free, held or reserved for waiters, the time
    /// left, the fencing counter and the number of waiters. It never returns the lock's value.
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
    /// # Ok(()) }
    /// ```
    pub async fn status(&self, key: &str) -> Result<crate::status::LockStatus> {
        let wire = self.wire_key(key)?;
        self.call(key, self.inner.store.status(&wire))
            .await
            .inspect_err(|err| log_backend_error("status", key, err))
    }

    pub(crate) fn store(&self) -> &dyn Store {
        &*self.inner.store
    }

    pub(crate) fn command_timeout(&self) -> Duration {
        self.inner.config.command_timeout
    }

    pub(crate) fn log_level(&self) -> Level {
        self.inner.config.log_level
    }

    /// Runs one store call under the command timeout and maps its error.
    pub(crate) async fn call<T>(&self, key: &str, fut: BoxFuture<'_, StoreResult<T>>) -> Result<T> {
        let timeout = self.inner.config.command_timeout;
        let result = if self.inner.store.needs_timer() {
            tokio::time::timeout(timeout, fut)
                .await
                .map_err(|_| LockError::timeout(timeout))?
        } else {
            fut.await
        };
        result.map_err(|err| match LockError::from_store(err, key) {
            // The connection's own timer fired: it is the command timeout.
            LockError::Unavailable {
                reason: UnavailableReason::Timeout(after),
                source,
            } if after.is_zero() && self.inner.store.does_io() => LockError::Unavailable {
                reason: UnavailableReason::Timeout(timeout),
                source,
            },
            other => other,
        })
    }

    /// Sends a compare-and-delete for a lock attempt whose outcome is unknown, without waiting.
    ///
    /// The attempt is repeated while Redis does not answer (it may be frozen or slow, with our
    /// `SET` still queued), but never past `expiry`: by then the lock is gone anyway. Any answer,
    /// or any other error, ends it.
    fn release_in_background(&self, wire: String, value: String, expiry: Duration) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let this = self.clone();
        runtime.spawn(async move {
            let give_up = tokio::time::Instant::now() + expiry;
            let timeout = this.inner.config.command_timeout;
            while tokio::time::Instant::now() < give_up {
                let cleanup = this.inner.store.release(&wire, &value);
                match tokio::time::timeout(timeout, cleanup).await {
                    Ok(Ok(outcome)) => {
                        if outcome == Owned::Done {
                            tracing::debug!(key = ?wire, "released a lock whose attempt had failed");
                        }
                        return;
                    }
                    Ok(Err(err)) if err.is_timeout() => {}
                    Ok(Err(_)) => return,
                    Err(_elapsed) => {}
                }
            }
        });
    }

    /// Checks the key and adds the prefix.
    pub(crate) fn wire_key<'k>(&self, key: &'k str) -> Result<Cow<'k, str>> {
        let config = &self.inner.config;
        if key.is_empty() {
            return Err(InvalidInput::EmptyKey.into());
        }
        let len = config.key_prefix.len().saturating_add(key.len());
        if len > config.max_key_len {
            return Err(InvalidInput::KeyTooLong {
                len,
                max: config.max_key_len,
            }
            .into());
        }
        let wire = if config.key_prefix.is_empty() {
            Cow::Borrowed(key)
        } else {
            Cow::Owned(format!("{}{key}", config.key_prefix))
        };
        self.inner
            .store
            .check_key(&wire)
            .map_err(InvalidInput::KeyNotUsable)?;
        Ok(wire)
    }

    pub(crate) fn check_value(&self, value: &str) -> Result<()> {
        let max = self.inner.config.max_value_len;
        if value.is_empty() {
            return Err(InvalidInput::EmptyValue.into());
        }
        if value.starts_with(crate::scripts::HANDOFF_PREFIX) {
            return Err(InvalidInput::ReservedValue.into());
        }
        if value.len() > max {
            return Err(InvalidInput::ValueTooLong {
                len: value.len(),
                max,
            }
            .into());
        }
        Ok(())
    }

    pub(crate) fn check_expires(&self, expires: Duration) -> Result<Expiry> {
        let max = self.inner.config.max_expires;
        if expires < Duration::from_millis(1) {
            return Err(InvalidInput::ExpiryTooShort(expires).into());
        }
        if expires > max {
            return Err(InvalidInput::ExpiryTooLong { expires, max }.into());
        }
        Ok(Expiry::from_duration(expires))
    }
}

/// Whether a failed call may still have run on the server.
pub(crate) fn outcome_unknown(err: &LockError) -> bool {
    matches!(
        err,
        LockError::Unavailable {
            reason: UnavailableReason::Timeout(_) | UnavailableReason::Disconnected,
            ..
        }
    )
}

fn log_backend_error(operation: &str, key: &str, err: &LockError) {
    if err.is_backend() {
        tracing::error!(key = ?key, error = %ErrorChain(err), "{operation} failed");
    }
}

/// Displays an error followed by its sources, `a: b: c`.
pub(crate) struct ErrorChain<'a>(pub(crate) &'a (dyn std::error::Error + 'static));

impl fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut previous: Option<String> = None;
        let mut source = self.0.source();
        while let Some(err) = source {
            // Some errors (redis-rs's among them) repeat their source in their own message.
            let text = err.to_string();
            if !previous.as_deref().is_some_and(|p| p.ends_with(&text)) {
                write!(f, ": {text}")?;
            }
            previous = Some(text);
            source = err.source();
        }
        Ok(())
    }
}

/// Options for a [`RedisLock`]; finish with [`build`](Self::build),
/// [`build_from_url`](Self::build_from_url) or [`build_in_memory`](Self::build_in_memory).
///
/// # Default
///
/// - `suppress_mismatch`: `false` (mismatches on release are logged at warn and returned);
/// - `log_level`: [`Level::DEBUG`] for lock-attempt events (the original's `logLevel`);
/// - `key_prefix`: none, so keys are the same bytes the Node original uses;
/// - `command_timeout`: [`DEFAULT_COMMAND_TIMEOUT`] (3 s);
/// - `max_key_len`: [`DEFAULT_MAX_KEY_LEN`] (1 KiB, prefix included);
/// - `max_value_len`: [`DEFAULT_MAX_VALUE_LEN`] (1 KiB);
/// - `max_expires`: [`DEFAULT_MAX_EXPIRES`] (24 h);
/// - `redlock_node_timeout`: [`DEFAULT_REDLOCK_NODE_TIMEOUT`] (50 ms);
/// - `drift_factor`: 0.01.
///
/// # Examples
///
/// ```no_run
/// use std::time::Duration;
/// use tracing::Level;
///
/// # async fn run() -> ac_redislock::Result<()> {
/// let locks = ac_redislock::RedisLock::builder()
///     .suppress_mismatch(true)
///     .log_level(Level::INFO)
///     .key_prefix("myapp:")
///     .command_timeout(Duration::from_millis(500))
///     .build_from_url("redis://127.0.0.1/")?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Default)]
#[must_use = "the builder does nothing until one of its `build` methods is called"]
pub struct RedisLockBuilder {
    config: Config,
    pubsub: Vec<redis::Client>,
    tls: Option<TlsConfig>,
}

/// Certificates for `rediss://` connections. Its `Debug` shows no key material.
#[derive(Clone, Default)]
struct TlsConfig {
    root_cert: Option<Vec<u8>>,
    client: Option<(Vec<u8>, Vec<u8>)>,
}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConfig")
            .field("root_cert", &self.root_cert.as_ref().map(|_| "<pem>"))
            .field("client", &self.client.as_ref().map(|_| "<cert and key>"))
            .finish()
    }
}

impl RedisLockBuilder {
    /// Sets the instance default for `suppress_mismatch`; [`ReleaseParams::suppress_mismatch`]
    /// overrides it per call.
    ///
    /// # Examples
    ///
    /// ```
    /// let builder = ac_redislock::RedisLock::builder().suppress_mismatch(true);
    /// ```
    pub fn suppress_mismatch(mut self, suppress: bool) -> Self {
        self.config.suppress_mismatch = suppress;
        self
    }

    /// Sets the `tracing` level of the event logged for each lock attempt (the original's
    /// `logLevel`). Mismatches are always at warn, backend errors at error.
    ///
    /// # Examples
    ///
    /// ```
    /// let builder = ac_redislock::RedisLock::builder().log_level(tracing::Level::INFO);
    /// ```
    pub fn log_level(mut self, level: Level) -> Self {
        self.config.log_level = level;
        self
    }

    /// Sets a prefix added to every key on the wire (none by default). Node workers must use
    /// the same full key to share the locks.
    ///
    /// # Examples
    ///
    /// ```
    /// let builder = ac_redislock::RedisLock::builder().key_prefix("lock:");
    /// ```
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.config.key_prefix = prefix.into();
        self
    }

    /// Sets how long one Redis call may take before it fails with
    /// [`Unavailable`](LockError::Unavailable); also the connect timeout of clients made from a
    /// URL. No call waits longer than this on a dead server.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let builder = ac_redislock::RedisLock::builder().command_timeout(Duration::from_secs(1));
    /// ```
    pub fn command_timeout(mut self, timeout: Duration) -> Self {
        self.config.command_timeout = timeout;
        self
    }

    /// Sets the maximum key length in bytes, prefix included.
    ///
    /// # Examples
    ///
    /// ```
    /// let builder = ac_redislock::RedisLock::builder().max_key_len(256);
    /// ```
    pub fn max_key_len(mut self, max: usize) -> Self {
        self.config.max_key_len = max;
        self
    }

    /// Sets the maximum value length in bytes.
    ///
    /// # Examples
    ///
    /// ```
    /// let builder = ac_redislock::RedisLock::builder().max_value_len(4096);
    /// ```
    pub fn max_value_len(mut self, max: usize) -> Self {
        self.config.max_value_len = max;
        self
    }

    /// Sets the longest expiry `lock_key` accepts.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let builder = ac_redislock::RedisLock::builder().max_expires(Duration::from_secs(7 * 86_400));
    /// ```
    pub fn max_expires(mut self, max: Duration) -> Self {
        self.config.max_expires = max;
        self
    }

    /// Trusts the CA in `pem` (a PEM certificate) for `rediss://` URLs, instead of the system's
    /// root certificates. A server whose certificate does not chain to it is refused: there is
    /// never a fallback to plaintext.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let ca = std::fs::read("/etc/redis/ca.crt")?;
    /// # let _ = async {
    /// let locks = ac_redislock::RedisLock::builder()
    ///     .tls_root_certificate(ca)
    ///     .build_from_url("rediss://redis.internal:6380/")?;
    /// # Ok::<(), ac_redislock::LockError>(()) };
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
    pub fn tls_root_certificate(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.tls.get_or_insert_with(TlsConfig::default).root_cert = Some(pem.into());
        self
    }

    /// Presents this client certificate and key (both PEM) to `rediss://` servers that require
    /// one (`tls-auth-clients yes`).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let (cert, key) = (std::fs::read("client.crt")?, std::fs::read("client.key")?);
    /// let builder = ac_redislock::RedisLock::builder().tls_client_certificate(cert, key);
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
    pub fn tls_client_certificate(
        mut self,
        cert_pem: impl Into<Vec<u8>>,
        key_pem: impl Into<Vec<u8>>,
    ) -> Self {
        self.tls.get_or_insert_with(TlsConfig::default).client =
            Some((cert_pem.into(), key_pem.into()));
        self
    }

    /// Gives a client on your own connection ([`build`](Self::build)) a way to open its
    /// pub/sub connection, so that waiters wake up when a lock is released instead of polling.
    /// Clients made from a URL have it already. Call it again to add fallbacks (other nodes of
    /// a cluster): the subscriber moves to the next when one fails.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let client = redis::Client::open("redis://127.0.0.1/")?;
    /// let conn = client.get_multiplexed_async_connection().await?;
    /// let locks = ac_redislock::RedisLock::builder().pubsub_client(client).build(conn)?;
    /// # Ok(()) }
    /// ```
    pub fn pubsub_client(mut self, client: redis::Client) -> Self {
        self.pubsub.push(client);
        self
    }

    /// Sets how long a Redlock node may take to answer before it counts as failed
    /// ([`build_redlock`](Self::build_redlock)); default [`DEFAULT_REDLOCK_NODE_TIMEOUT`].
    /// Keep it far below the lease: the validity left after an attempt is the ttl minus the
    /// time the attempt took.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let builder = ac_redislock::RedisLock::builder().redlock_node_timeout(Duration::from_millis(20));
    /// ```
    pub fn redlock_node_timeout(mut self, timeout: Duration) -> Self {
        self.config.redlock_node_timeout = timeout;
        self
    }

    /// Sets the clock-drift margin as a share of the ttl (default 0.01: a lease's validity is
    /// `ttl - elapsed - (0.01 * ttl + 2 ms)`). Used by Redlock, where the nodes' clocks count.
    ///
    /// # Examples
    ///
    /// ```
    /// let builder = ac_redislock::RedisLock::builder().drift_factor(0.02);
    /// ```
    pub fn drift_factor(mut self, factor: f64) -> Self {
        self.config.drift_factor = factor;
        self
    }

    /// Builds a Redlock client over independent Redis masters, one URL each (see "Choosing a
    /// deployment" in the [crate docs](crate) for what it does and does not promise).
    ///
    /// A lock is granted when a majority (N/2 + 1) of the nodes granted it, each answering
    /// within the [node timeout](Self::redlock_node_timeout), and time is left of the lease
    /// (`ttl - elapsed - drift`); a failed attempt is released on every node before the call
    /// returns. Extending needs a majority too; releasing is sent to every node. The guard
    /// API, renewal and waiting work unchanged (waiters poll: there is no release wake-up
    /// across nodes). Fencing tokens are refused: independent counters cannot be monotonic.
    ///
    /// # Errors
    ///
    /// [`InvalidInput`](LockError::InvalidInput) for no URL, a bad URL, TLS and plain URLs
    /// mixed, or outside a Tokio runtime.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn run() -> ac_redislock::Result<()> {
    /// let locks = ac_redislock::RedisLock::builder().build_redlock(&[
    ///     "redis://10.0.0.1:6379/",
    ///     "redis://10.0.0.2:6379/",
    ///     "redis://10.0.0.3:6379/",
    /// ])?;
    /// let guard = locks.acquire("reports:daily").await?;
    /// # Ok(()) }
    /// ```
    pub fn build_redlock(self, urls: &[&str]) -> Result<RedisLock> {
        self.validate()?;
        if urls.is_empty() {
            return Err(InvalidInput::Url("Redlock needs at least one node URL".into()).into());
        }
        let tls = urls.iter().filter(|u| u.starts_with("rediss://")).count();
        if tls != 0 && tls != urls.len() {
            return Err(InvalidInput::Url(
                "Redlock nodes mix TLS (rediss://) and plain URLs; use one kind".into(),
            )
            .into());
        }
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(InvalidInput::NoRuntime.into());
        }
        let mut nodes: Vec<Box<dyn Store>> = Vec::with_capacity(urls.len());
        for url in urls {
            let client = open_client(url, self.tls.as_ref())?;
            let manager = self.connection_manager(client)?;
            let timeout = self.config.command_timeout;
            nodes.push(Box::new(RedisStore::new(
                manager,
                WakeSource::None,
                true,
                timeout,
            )));
        }
        let store = crate::store::redlock::RedlockStore::new(
            nodes,
            self.config.redlock_node_timeout,
            self.config.drift_factor,
        );
        Ok(RedisLock::with_store(Box::new(store), self.config))
    }

    /// Builds a Redlock client over your own connections, one per independent master (see
    /// [`build_redlock`](Self::build_redlock)).
    ///
    /// # Errors
    ///
    /// [`InvalidInput`](LockError::InvalidInput) for no connection or a bad setting.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn run(urls: Vec<String>) -> Result<(), Box<dyn std::error::Error>> {
    /// let mut conns = Vec::new();
    /// for url in &urls {
    ///     conns.push(redis::Client::open(url.as_str())?.get_multiplexed_async_connection().await?);
    /// }
    /// let locks = ac_redislock::RedisLock::builder().build_redlock_on(conns)?;
    /// # Ok(()) }
    /// ```
    pub fn build_redlock_on<C>(self, conns: Vec<C>) -> Result<RedisLock>
    where
        C: ConnectionLike + Clone + Send + Sync + 'static,
    {
        self.validate()?;
        if conns.is_empty() {
            return Err(InvalidInput::Url("Redlock needs at least one node".into()).into());
        }
        let timeout = self.config.command_timeout;
        let nodes = conns
            .into_iter()
            .map(|conn| {
                Box::new(RedisStore::new(conn, WakeSource::None, false, timeout)) as Box<dyn Store>
            })
            .collect();
        let store = crate::store::redlock::RedlockStore::new(
            nodes,
            self.config.redlock_node_timeout,
            self.config.drift_factor,
        );
        Ok(RedisLock::with_store(Box::new(store), self.config))
    }

    /// Builds a client on a Redis Cluster, from the URLs of some of its nodes (one is enough;
    /// the others are discovered). Every auxiliary key (waiters, fencing counter) shares its
    /// lock key's hash slot, redirections (`MOVED`, `ASK`) are followed, and scripts are loaded
    /// again on a node that does not know them. Release wake-ups come over pub/sub from one of
    /// the nodes, the next one if it fails.
    ///
    /// The connection is opened on first use; until the cluster answers, calls fail with
    /// [`Unavailable`](LockError::Unavailable). Keys with a `}` but no `{hash tag}` are refused
    /// ([`InvalidInput`](LockError::InvalidInput)): their auxiliary keys could not share their
    /// slot.
    ///
    /// # Errors
    ///
    /// [`InvalidInput`](LockError::InvalidInput) for no URL, a bad URL, or outside a Tokio
    /// runtime.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn run() -> ac_redislock::Result<()> {
    /// let locks = ac_redislock::RedisLock::builder()
    ///     .build_cluster(&["redis://10.0.0.1:7000/", "redis://10.0.0.2:7000/"])?;
    /// let guard = locks.acquire("{reports}:daily").await?;
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "cluster")]
    #[cfg_attr(docsrs, doc(cfg(feature = "cluster")))]
    pub fn build_cluster(self, urls: &[&str]) -> Result<RedisLock> {
        self.validate()?;
        if urls.is_empty() {
            return Err(InvalidInput::Url("a cluster needs at least one node URL".into()).into());
        }
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(InvalidInput::NoRuntime.into());
        }
        // Each URL is checked (and its password kept out of errors) as a single-node URL.
        let pubsub = urls
            .iter()
            .map(|url| open_client(url, self.tls.as_ref()))
            .collect::<Result<Vec<_>>>()?;
        let timeout = self.config.command_timeout;
        let mut cluster = redis::cluster::ClusterClient::builder(urls.iter().copied())
            .connection_timeout(timeout)
            .response_timeout(timeout)
            .overall_response_timeout(Some(timeout));
        #[cfg(feature = "tls")]
        if let Some(tls) = &self.tls {
            cluster = cluster.certs(redis::TlsCertificates {
                client_tls: tls
                    .client
                    .as_ref()
                    .map(|(cert, key)| redis::ClientTlsConfig {
                        client_cert: cert.clone(),
                        client_key: key.clone(),
                    }),
                root_cert: tls.root_cert.clone(),
            });
        }
        let cluster = cluster.build().map_err(|_| {
            InvalidInput::Url("the cluster node URLs could not be used together".into())
        })?;
        let config = redis::cluster::ClusterConfig::new()
            .set_connection_timeout(timeout)
            .set_response_timeout(timeout);
        let conn = cluster.get_pending_async_connection_with_config(config);
        let store = RedisStore::new(conn, WakeSource::Clients(pubsub), true, timeout);
        Ok(RedisLock::with_store(Box::new(store), self.config))
    }

    /// Builds a client on the master of a Redis Sentinel group: `sentinel_urls` are the
    /// sentinels (`redis://host:26379/`), `master_name` the group's name in their
    /// configuration. The sentinels are asked for the master on first use and again after a
    /// failover (a broken connection, or `READONLY` from a demoted master), so the same client
    /// keeps working on the new master.
    ///
    /// Replication to the replicas is asynchronous: a lock granted just before a failover may
    /// not have reached the replica that takes over. Ask for
    /// [`AcquireOptions::replicas`](crate::AcquireOptions::replicas) to wait for replicas to
    /// acknowledge it, and check [`LockGuard::replicas_acked`](crate::LockGuard::replicas_acked).
    ///
    /// # Errors
    ///
    /// [`InvalidInput`](LockError::InvalidInput) for no or bad URLs, or outside a Tokio
    /// runtime.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn run() -> ac_redislock::Result<()> {
    /// let locks = ac_redislock::RedisLock::builder().build_sentinel(
    ///     &["redis://10.0.0.1:26379/", "redis://10.0.0.2:26379/"],
    ///     "mymaster",
    /// )?;
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "sentinel")]
    #[cfg_attr(docsrs, doc(cfg(feature = "sentinel")))]
    pub fn build_sentinel(self, sentinel_urls: &[&str], master_name: &str) -> Result<RedisLock> {
        self.validate()?;
        if sentinel_urls.is_empty() {
            return Err(
                InvalidInput::Url("Sentinel needs at least one sentinel URL".into()).into(),
            );
        }
        for url in sentinel_urls {
            open_client(url, None)?;
        }
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(InvalidInput::NoRuntime.into());
        }
        let sentinel = redis::sentinel::SentinelClient::build(
            sentinel_urls.to_vec(),
            master_name,
            None,
            redis::sentinel::SentinelServerType::Master,
        )
        .map_err(|_| InvalidInput::Url("the sentinel URLs could not be used".into()))?;
        let conn = crate::sentinel::SentinelConnection::new(sentinel, self.config.command_timeout);
        let wake = WakeSource::Sentinel(conn.clone());
        let store = RedisStore::new(conn, wake, false, self.config.command_timeout);
        Ok(RedisLock::with_store(Box::new(store), self.config))
    }

    /// The reconnecting connection of a client made from a URL: one connection attempt per
    /// call, bounded like the reply by the command timeout, so the manager enforces the
    /// timeout itself, and a call that finds the connection broken starts the next attempt.
    fn connection_manager(&self, client: redis::Client) -> Result<ConnectionManager> {
        let timeout = self.config.command_timeout;
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(0);
        ConnectionManager::new_lazy_with_config(client, manager_config)
            .map_err(|err| InvalidInput::Url(err.to_string()).into())
    }

    /// Builds a client on your redis-rs async connection (see [`RedisLock::new`]).
    ///
    /// # Errors
    ///
    /// [`InvalidInput`](LockError::InvalidInput) if a setting is out of range.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let client = redis::Client::open("redis://127.0.0.1/")?;
    /// let conn = redis::aio::ConnectionManager::new(client).await?;
    /// let locks = ac_redislock::RedisLock::builder().suppress_mismatch(true).build(conn)?;
    /// # Ok(()) }
    /// ```
    pub fn build<C>(self, conn: C) -> Result<RedisLock>
    where
        C: ConnectionLike + Clone + Send + Sync + 'static,
    {
        self.validate()?;
        let wake = WakeSource::Clients(self.pubsub);
        let store = RedisStore::new(conn, wake, false, self.config.command_timeout);
        Ok(RedisLock::with_store(Box::new(store), self.config))
    }

    /// Builds a client from a URL (see [`RedisLock::from_url`]).
    ///
    /// # Errors
    ///
    /// [`InvalidInput`](LockError::InvalidInput) for a bad setting or URL, or outside a Tokio
    /// runtime.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn run() -> ac_redislock::Result<()> {
    /// let locks = ac_redislock::RedisLock::builder().build_from_url("unix:///run/redis.sock")?;
    /// # Ok(()) }
    /// ```
    pub fn build_from_url(self, url: &str) -> Result<RedisLock> {
        self.validate()?;
        let client = open_client(url, self.tls.as_ref())?;
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(InvalidInput::NoRuntime.into());
        }
        let timeout = self.config.command_timeout;
        let manager = self.connection_manager(client.clone())?;
        let store = RedisStore::new(manager, WakeSource::Clients(vec![client]), true, timeout);
        Ok(RedisLock::with_store(Box::new(store), self.config))
    }

    /// Builds a client on a new in-process store (see [`RedisLock::in_memory`]).
    ///
    /// # Errors
    ///
    /// [`InvalidInput`](LockError::InvalidInput) if a setting is out of range.
    ///
    /// # Examples
    ///
    /// ```
    /// let locks = ac_redislock::RedisLock::builder().key_prefix("test:").build_in_memory()?;
    /// # Ok::<(), ac_redislock::LockError>(())
    /// ```
    pub fn build_in_memory(self) -> Result<RedisLock> {
        self.validate()?;
        Ok(RedisLock::with_store(
            Box::<MemoryStore>::default(),
            self.config,
        ))
    }

    /// Checks the settings and `url` without connecting or needing a runtime.
    pub(crate) fn check(&self, url: &str) -> Result<()> {
        self.validate()?;
        open_client(url, self.tls.as_ref()).map(|_| ())
    }

    fn validate(&self) -> Result<()> {
        let config = &self.config;
        let bad = |name, reason| Err(InvalidInput::Setting { name, reason }.into());
        if config.command_timeout.is_zero() {
            return bad("command_timeout", "must be above zero");
        }
        if config.max_key_len == 0 {
            return bad("max_key_len", "must be above zero");
        }
        if config.key_prefix.len() >= config.max_key_len {
            return bad("key_prefix", "leaves no room for a key within max_key_len");
        }
        if config.max_value_len == 0 {
            return bad("max_value_len", "must be above zero");
        }
        if config.max_expires < Duration::from_millis(1) {
            return bad("max_expires", "must be at least 1ms");
        }
        if config.redlock_node_timeout.is_zero() {
            return bad("redlock_node_timeout", "must be above zero");
        }
        if !(0.0..0.5).contains(&config.drift_factor) {
            return bad("drift_factor", "must be at least 0 and below 0.5");
        }
        Ok(())
    }
}

/// Parses a Redis URL into a client without ever echoing the URL (it may carry a password).
fn open_client(url: &str, tls: Option<&TlsConfig>) -> Result<redis::Client> {
    let scheme = url.split_once("://").map(|(scheme, _)| scheme);
    match scheme {
        Some("redis" | "unix" | "redis+unix" | "valkey" | "valkey+unix") => {}
        Some("rediss" | "valkeys") if cfg!(feature = "tls") => {}
        Some("rediss" | "valkeys") => {
            return Err(InvalidInput::Url(
                "rediss:// needs the `tls` feature of ac-redislock".into(),
            )
            .into());
        }
        _ => {
            return Err(InvalidInput::Url(
                "expected redis://, rediss:// or unix:// followed by an address".into(),
            )
            .into());
        }
    }
    let tls_scheme = matches!(scheme, Some("rediss" | "valkeys"));
    if let Some(tls) = tls {
        if !tls_scheme {
            // Certificates mean TLS was wanted: never connect in plaintext instead.
            return Err(InvalidInput::Url(
                "TLS certificates were given for a URL without TLS: use rediss://".into(),
            )
            .into());
        }
        return open_tls_client(url, tls);
    }
    // redis-rs's error is dropped on purpose: nothing of the URL may come along.
    redis::Client::open(url).map_err(|_| {
        InvalidInput::Url(
            "it does not parse as redis://[user:password@]host[:port][/db] \
             (or rediss://, unix:///path)"
                .into(),
        )
        .into()
    })
}

#[cfg(feature = "tls")]
fn open_tls_client(url: &str, tls: &TlsConfig) -> Result<redis::Client> {
    let certificates = redis::TlsCertificates {
        client_tls: tls
            .client
            .as_ref()
            .map(|(cert, key)| redis::ClientTlsConfig {
                client_cert: cert.clone(),
                client_key: key.clone(),
            }),
        root_cert: tls.root_cert.clone(),
    };
    redis::Client::build_with_tls(url, certificates).map_err(|err| {
        let what = if err.kind() == redis::ErrorKind::InvalidClientConfig {
            "the certificates or the URL could not be used"
        } else {
            "it does not parse"
        };
        InvalidInput::Url(format!(
            "{what} (PEM certificates and a rediss:// URL are needed)"
        ))
        .into()
    })
}

#[cfg(not(feature = "tls"))]
fn open_tls_client(_url: &str, _tls: &TlsConfig) -> Result<redis::Client> {
    Err(InvalidInput::Url("rediss:// needs the `tls` feature of ac-redislock".into()).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_is_send_sync_static() {
        fn check<T: Send + Sync + 'static>() {}
        check::<RedisLock>();
        check::<RedisLockBuilder>();
    }

    #[test]
    fn bad_urls_are_typed_errors_that_never_echo_the_url() {
        for url in [
            "",
            "localhost:6379",
            "http://user:hunter2@host/",
            "redis://:hunter2@[::1:6379/",
            "redis://:hunter2@host:notaport/",
        ] {
            let err = open_client(url, None).unwrap_err();
            assert!(
                matches!(err, LockError::InvalidInput(InvalidInput::Url(_))),
                "{url}: {err:?}"
            );
            let shown = format!("{err} {err:?}");
            assert!(!shown.contains("hunter2"), "{url}: {shown}");
        }
    }

    #[test]
    fn from_url_outside_a_runtime_is_an_error_not_a_panic() {
        let err = RedisLock::from_url("redis://127.0.0.1:1/").unwrap_err();
        assert!(matches!(
            err,
            LockError::InvalidInput(InvalidInput::NoRuntime)
        ));
    }

    #[test]
    fn settings_out_of_range_are_rejected() {
        let cases = [
            RedisLock::builder().command_timeout(Duration::ZERO),
            RedisLock::builder().max_key_len(0),
            RedisLock::builder().max_key_len(4).key_prefix("long:"),
            RedisLock::builder().max_value_len(0),
            RedisLock::builder().max_expires(Duration::from_micros(10)),
        ];
        for builder in cases {
            let err = builder.build_in_memory().unwrap_err();
            assert!(
                matches!(err, LockError::InvalidInput(InvalidInput::Setting { .. })),
                "{err:?}"
            );
        }
    }

    #[test]
    fn error_chain_prints_sources() {
        let err = LockError::Unavailable {
            reason: UnavailableReason::Refused,
            source: Some(redis::RedisError::from(std::io::Error::from(
                std::io::ErrorKind::ConnectionRefused,
            ))),
        };
        let shown = ErrorChain(&err).to_string();
        assert!(
            shown.starts_with("Redis is unavailable: connection refused: "),
            "{shown}"
        );
    }
}
