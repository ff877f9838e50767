//! The one error type of the crate, [`LockError`], and the reasons it carries.

use std::fmt;
use std::time::Duration;

use redis::RedisError;

/// A `Result` whose error is [`LockError`].
///
/// # Examples
///
/// ```
/// fn parse_job(id: &str) -> ac_redislock::Result<u64> {
///     id.parse().map_err(|_| ac_redislock::InvalidInput::EmptyKey.into())
/// }
/// assert!(parse_job("x").is_err());
/// ```
pub type Result<T, E = LockError> = std::result::Result<T, E>;

/// Everything that can go wrong with a lock call.
///
/// The variants fall in three groups, so that callers can match on what happened to the lock
/// apart from what happened to the connection:
///
/// - **lock outcomes**: [`Locked`](Self::Locked) (code 423, as in the Node original),
///   [`NotOwner`](Self::NotOwner), [`NotHeld`](Self::NotHeld), [`Lost`](Self::Lost) and
///   [`WrongType`](Self::WrongType);
/// - **input errors**: [`InvalidInput`](Self::InvalidInput), raised before any byte is sent;
/// - **backend errors**: [`Unavailable`](Self::Unavailable) (code 503: refused, closed or timed
///   out) and [`Redis`](Self::Redis) (any other server error).
///
/// A backend failure is never reported as `Locked`. No variant ever contains a lock token.
///
/// `Display` describes this layer only; the underlying Redis error, if any, is the
/// [`source`](std::error::Error::source). Print the whole chain with `{:#}` through `anyhow`, or
/// walk `source()`.
///
/// # Examples
///
/// ```no_run
/// use ac_redislock::{LockError, LockParams, RedisLock};
///
/// # async fn run(locks: RedisLock) -> ac_redislock::Result<()> {
/// match locks.lock_key(LockParams::new("jobs:42")).await {
///     Ok(token) => { /* do the job, then release with `token` */ }
///     Err(LockError::Locked { .. }) => { /* another worker has it: skip */ }
///     Err(err) if err.is_backend() => return Err(err), // Redis trouble, not a lock outcome
///     Err(err) => return Err(err),
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LockError {
    /// The key is already locked by someone else. [`code`](Self::code) is 423, the original's
    /// `resource_locked`.
    #[error("lock {key:?} is held by another owner")]
    Locked {
        /// The key as the caller gave it (without the instance's prefix).
        key: String,
    },

    /// A release or an extend with a value found the key held under a different value: the
    /// lock was left as it was.
    ///
    /// This and [`NotHeld`](Self::NotHeld) are what the original calls a mismatch; both are
    /// silenced by `suppress_mismatch`. The other holder's value is never part of the error.
    ///
    /// # Examples
    ///
    /// ```
    /// use ac_redislock::LockError;
    /// let err = LockError::NotOwner { key: "jobs:42".into() };
    /// assert_eq!(
    ///     err.to_string(),
    ///     r#"lock "jobs:42" is held by another owner, under a different value"#
    /// );
    /// ```
    #[error("lock {key:?} is held by another owner, under a different value")]
    NotOwner {
        /// The key as the caller gave it.
        key: String,
    },

    /// A release with a value found no key: it expired or was released already.
    #[error("lock {key:?} is not held: it expired or was already released")]
    NotHeld {
        /// The key as the caller gave it.
        key: String,
    },

    /// A guard's lease ended before the operation: its deadline passed, Redis no longer has the
    /// key, or renewals failed. An expired lock is never re-created.
    #[error("the lease on {key:?} was lost: {reason}")]
    Lost {
        /// The key as the caller gave it.
        key: String,
        /// How the lease ended.
        reason: LossReason,
    },

    /// The key exists but holds a Redis value that is not a string (a list, a hash, ...), so it
    /// is not a lock; or one of the lock's companion keys (`ac-redislock:waiters:...`,
    /// `ac-redislock:fence:...`) was overwritten with a value of another type. The value was
    /// left untouched.
    #[error("key {key:?} holds a Redis {found} value, not a lock")]
    WrongType {
        /// The key that holds it: the lock's key as the caller gave it, or the full name of the
        /// companion key.
        key: String,
        /// The Redis type found at the key, as `TYPE` names it (`"list"`, `"hash"`, ...), or
        /// `"non-string"` when Redis only said WRONGTYPE.
        found: String,
    },

    /// The arguments or the configuration were rejected before anything was sent to Redis.
    #[error("invalid input: {0}")]
    InvalidInput(#[from] InvalidInput),

    /// Redis could not be reached in time: connection refused, closed or lost, or no reply
    /// within the command timeout. [`code`](Self::code) is 503, the original's `redisDown`.
    ///
    /// A connection that died while the client was not using it (closed by Redis's `timeout`
    /// or a proxy while idle, killed, lost in a restart or failover) is not an error: the call
    /// that finds it dead is sent once more on a fresh connection, within the same command
    /// timeout, and answers as usual. What is left to see here:
    ///
    /// - Redis down or unreachable: refused on the fresh connection too;
    /// - no reply within the command timeout (a frozen or overloaded server, a network that
    ///   drops packets): not retried, the time is spent;
    /// - the fresh connection breaking as well;
    /// - your own `MultiplexedConnection` ([`RedisLock::new`](crate::RedisLock::new)), which
    ///   cannot be replaced once it broke: use a `ConnectionManager`.
    ///
    /// After a timeout or a broken connection, the command may still have run. A lock attempt
    /// that did is released in the background when this crate generated its token itself. A
    /// call retried after its first try's reply was lost reads the answer in that light: an
    /// attempt that finds the lock holding its own token is granted; a release that finds the
    /// key no longer holding its value counts as done (for a guard: if its lease still held).
    #[error("Redis is unavailable: {reason}")]
    Unavailable {
        /// Why the call failed.
        reason: UnavailableReason,
        /// The client error, when there is one (none for this crate's own timeout).
        #[source]
        source: Option<RedisError>,
    },

    /// Redlock: fewer nodes than a majority granted the lock (or agreed to extend it), because
    /// nodes failed or did not answer in time. Every node was asked to release what it granted.
    ///
    /// # Examples
    ///
    /// ```
    /// use ac_redislock::LockError;
    /// let err = LockError::QuorumNotReached { granted: 1, needed: 2, source: None };
    /// assert_eq!(err.to_string(), "Redlock quorum not reached: 1 node agreed, 2 needed");
    /// ```
    #[error("Redlock quorum not reached: {granted} {} agreed, {needed} needed", nodes(*.granted))]
    QuorumNotReached {
        /// Nodes that agreed.
        granted: usize,
        /// The majority needed: N/2 + 1.
        needed: usize,
        /// A node's error, when one failed.
        #[source]
        source: Option<RedisError>,
    },

    /// Redis answered with an error this crate does not map to a lock outcome (for example
    /// `NOPERM` from an ACL, or `OOM`). The server's message is the `source`.
    #[error("Redis replied with an error{}", code_suffix(.0))]
    Redis(#[source] RedisError),

    /// The operating system's random number generator failed, so no token could be made.
    #[error("the operating system's random number generator failed")]
    Entropy(#[source] std::io::Error),

    /// [`RedisLock::close`](crate::RedisLock::close) could not release everything: the locks it
    /// names stay in Redis until they expire. [`code`](Self::code) is 503.
    #[error(transparent)]
    NotClosed(#[from] CloseError),
}

/// `node` or `nodes`, as `count` asks.
fn nodes(count: usize) -> &'static str {
    if count == 1 { "node" } else { "nodes" }
}

fn code_suffix(err: &RedisError) -> String {
    match err.code() {
        Some(code) => format!(" ({code})"),
        None => String::new(),
    }
}

impl LockError {
    /// Returns an HTTP-style status code for the error.
    ///
    /// `423` (Locked) and `503` (Unavailable) are the codes of the Node original; the others
    /// follow the same idea: `409` for [`NotOwner`](Self::NotOwner) and
    /// [`WrongType`](Self::WrongType), `410` for [`NotHeld`](Self::NotHeld) and
    /// [`Lost`](Self::Lost), `400` for
    /// [`InvalidInput`](Self::InvalidInput), `502` for [`Redis`](Self::Redis), `503` for
    /// [`NotClosed`](Self::NotClosed) and `500` for [`Entropy`](Self::Entropy).
    ///
    /// # Examples
    ///
    /// ```
    /// use ac_redislock::LockError;
    /// let err = LockError::Locked { key: "jobs:42".into() };
    /// assert_eq!(err.code(), 423);
    /// ```
    #[must_use]
    pub fn code(&self) -> u16 {
        match self {
            Self::Locked { .. } => 423,
            Self::NotOwner { .. } | Self::WrongType { .. } => 409,
            Self::NotHeld { .. } | Self::Lost { .. } => 410,
            Self::InvalidInput(_) => 400,
            Self::Unavailable { .. } | Self::QuorumNotReached { .. } | Self::NotClosed(_) => 503,
            Self::Redis(_) => 502,
            Self::Entropy(_) => 500,
        }
    }

    /// Returns `true` for the original's "mismatch" on release: [`NotOwner`](Self::NotOwner) or
    /// [`NotHeld`](Self::NotHeld).
    ///
    /// # Examples
    ///
    /// ```
    /// use ac_redislock::LockError;
    /// assert!(LockError::NotHeld { key: "k".into() }.is_mismatch());
    /// assert!(!LockError::Locked { key: "k".into() }.is_mismatch());
    /// ```
    #[must_use]
    pub fn is_mismatch(&self) -> bool {
        matches!(self, Self::NotOwner { .. } | Self::NotHeld { .. })
    }

    /// Returns `true` when the error comes from the backend rather than from the lock:
    /// [`Unavailable`](Self::Unavailable), [`QuorumNotReached`](Self::QuorumNotReached),
    /// [`Redis`](Self::Redis) or [`NotClosed`](Self::NotClosed).
    ///
    /// # Examples
    ///
    /// ```
    /// use ac_redislock::{LockError, UnavailableReason};
    /// let err = LockError::Unavailable { reason: UnavailableReason::Refused, source: None };
    /// assert!(err.is_backend());
    /// ```
    #[must_use]
    pub fn is_backend(&self) -> bool {
        matches!(
            self,
            Self::Unavailable { .. }
                | Self::Redis(_)
                | Self::QuorumNotReached { .. }
                | Self::NotClosed(_)
        )
    }
}

/// Why a lease ended before it was released.
///
/// # Examples
///
/// ```
/// use ac_redislock::LossReason;
/// assert_eq!(LossReason::TakenOver.to_string(), "another owner holds the lock");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LossReason {
    /// The validity deadline passed without a renewal: the holder must assume someone else may
    /// have the lock now.
    Expired,
    /// Redis no longer has the key: it expired there, was force-released, or Redis lost it (a
    /// restart without persistence, a failover, an eviction).
    Deleted,
    /// The key holds another owner's token.
    TakenOver,
    /// Renewals failed on backend errors until the validity deadline passed.
    Unavailable,
    /// The watchdog stopped at the maximum hold time and the lease then ran out.
    MaxHold,
    /// The guard was released or dropped: the lease ended normally. Only
    /// [`LockGuard::lost`](crate::LockGuard::lost) futures still pending at that moment see this.
    Released,
    /// The client was closed ([`RedisLock::close`](crate::RedisLock::close)) while the guard
    /// still held its lock: the lock was released for it.
    Closed,
}

impl fmt::Display for LossReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Expired => "the lease expired before it was renewed",
            Self::Deleted => "the key is gone from Redis",
            Self::TakenOver => "another owner holds the lock",
            Self::Unavailable => "Redis could not be reached to renew the lease in time",
            Self::MaxHold => "the maximum hold time was reached",
            Self::Released => "the lock was released",
            Self::Closed => "the client was closed, which released the lock",
        })
    }
}

/// Why Redis was [`Unavailable`](LockError::Unavailable).
///
/// # Examples
///
/// ```
/// use ac_redislock::UnavailableReason;
/// use std::time::Duration;
/// let reason = UnavailableReason::Timeout(Duration::from_secs(3));
/// assert_eq!(reason.to_string(), "no reply within 3s");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum UnavailableReason {
    /// No reply within the command timeout (the duration). The command may still run.
    Timeout(Duration),
    /// The server refused the connection, or its socket does not exist.
    Refused,
    /// The connection broke or could not be set up (reset, closed, I/O error).
    Disconnected,
    /// The server is up but cannot serve yet: loading its data set, cluster down, master down
    /// or a slot migrating (`LOADING`, `CLUSTERDOWN`, `MASTERDOWN`, `TRYAGAIN`).
    NotReady,
    /// The client was closed ([`RedisLock::close`](crate::RedisLock::close)), or the blocking
    /// client's background runtime is gone.
    Shutdown,
    /// The TLS handshake failed: the server's certificate is not trusted or not for this host,
    /// or the server wants a client certificate. A configuration problem more than an outage;
    /// the `source` says which.
    Tls,
}

impl fmt::Display for UnavailableReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Timeout(after) if after.is_zero() => f.write_str("the connection timed out"),
            Self::Timeout(after) => write!(f, "no reply within {after:?}"),
            Self::Refused => f.write_str("connection refused"),
            Self::Disconnected => f.write_str("connection lost"),
            Self::NotReady => f.write_str("the server is not ready"),
            Self::Shutdown => f.write_str("the client was shut down"),
            Self::Tls => f.write_str("the TLS handshake failed"),
        }
    }
}

/// What [`RedisLock::close`](crate::RedisLock::close) could not finish: locks this client
/// still holds in Redis (or places it holds in a lock's waiting queue), each until it expires.
///
/// Each is named by its key, with the error that stopped its release, or none when Redis had
/// not answered within the command timeout (the release is still being tried, as long as the
/// runtime runs). Converts into [`LockError::NotClosed`], so `?` works in functions returning
/// [`Result`].
///
/// # Examples
///
/// ```no_run
/// # async fn run(locks: ac_redislock::RedisLock) {
/// if let Err(err) = locks.close().await {
///     for left in err.left() {
///         eprintln!("{:?} stays locked until it expires ({:?})", left.key(), left.cause());
///     }
/// }
/// # }
/// ```
#[derive(Debug)]
pub struct CloseError {
    left: Vec<LeftBehind>,
}

impl CloseError {
    pub(crate) fn new(left: Vec<LeftBehind>) -> Self {
        Self { left }
    }

    /// Returns what stays behind in Redis, one entry per lock (or waiting-queue place).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn run(locks: ac_redislock::RedisLock) {
    /// let left = locks.close().await.err().map_or(0, |err| err.left().len());
    /// println!("{left} locks stay until they expire");
    /// # }
    /// ```
    #[must_use]
    pub fn left(&self) -> &[LeftBehind] {
        &self.left
    }
}

impl fmt::Display for CloseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (n, s) = match self.left.len() {
            1 => (1, " is"),
            n => (n, "s are"),
        };
        write!(f, "closed, but {n} lock{s} left to expire on their own:")?;
        for (i, left) in self.left.iter().enumerate() {
            let sep = if i == 0 { " " } else { "; " };
            match &left.cause {
                Some(cause) => write!(f, "{sep}{:?} ({cause})", left.key)?,
                None => write!(f, "{sep}{:?} (no answer yet)", left.key)?,
            }
        }
        Ok(())
    }
}

impl std::error::Error for CloseError {}

/// One lock (or waiting-queue place) that [`RedisLock::close`](crate::RedisLock::close) could
/// not release; see [`CloseError`].
///
/// # Examples
///
/// ```no_run
/// # async fn run(locks: ac_redislock::RedisLock) {
/// if let Err(err) = locks.close().await {
///     let keys: Vec<&str> = err.left().iter().map(|left| left.key()).collect();
///     eprintln!("left to expire: {keys:?}");
/// }
/// # }
/// ```
#[derive(Debug)]
pub struct LeftBehind {
    key: String,
    cause: Option<LockError>,
}

impl LeftBehind {
    pub(crate) fn new(key: String, cause: Option<LockError>) -> Self {
        Self { key, cause }
    }

    /// Returns the key, as the caller gave it (without the instance's prefix).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn run(locks: ac_redislock::RedisLock) {
    /// if let Err(err) = locks.close().await {
    ///     println!("first left: {:?}", err.left()[0].key());
    /// }
    /// # }
    /// ```
    #[must_use]
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Returns the error that stopped the release, or `None` when Redis had not answered by the
    /// end of the close (the release is still being tried in the background while the runtime
    /// runs).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn run(locks: ac_redislock::RedisLock) {
    /// if let Err(err) = locks.close().await {
    ///     let unanswered = err.left().iter().filter(|left| left.cause().is_none()).count();
    ///     println!("{unanswered} releases still waiting for Redis");
    /// }
    /// # }
    /// ```
    #[must_use]
    pub fn cause(&self) -> Option<&LockError> {
        self.cause.as_ref()
    }
}

/// What was wrong with the input, found before any I/O.
///
/// # Examples
///
/// ```
/// use ac_redislock::{InvalidInput, LockError};
/// let err = LockError::from(InvalidInput::EmptyKey);
/// assert_eq!(err.to_string(), "invalid input: the key is empty");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidInput {
    /// The key is the empty string.
    #[error("the key is empty")]
    EmptyKey,
    /// The key (with the instance's prefix) is longer than the configured maximum.
    #[error("the key is {len} bytes long, more than the maximum of {max}")]
    KeyTooLong {
        /// The key's length in bytes.
        len: usize,
        /// The configured maximum.
        max: usize,
    },
    /// The key cannot be used with this backend (a Redis Cluster key with a `}` but no hash
    /// tag); the reason says why.
    #[error("the key cannot be used: {0}")]
    KeyNotUsable(&'static str),
    /// The lock value is the empty string.
    #[error("the value is empty")]
    EmptyValue,
    /// The lock value starts like the marker the Redis store writes into a lock it reserves for
    /// a waiter, so it could be taken for one.
    #[error("the value starts with the prefix reserved for locks handed to a waiter")]
    ReservedValue,
    /// The lock value is longer than the configured maximum.
    #[error("the value is {len} bytes long, more than the maximum of {max}")]
    ValueTooLong {
        /// The value's length in bytes.
        len: usize,
        /// The configured maximum.
        max: usize,
    },
    /// The expiry is below one millisecond (zero included).
    #[error("the expiry {0:?} is below the minimum of 1ms")]
    ExpiryTooShort(Duration),
    /// The expiry is above the configured maximum.
    #[error("the expiry {expires:?} is above the maximum of {max:?}")]
    ExpiryTooLong {
        /// The expiry asked for.
        expires: Duration,
        /// The configured maximum.
        max: Duration,
    },
    /// A setting of the client builder is out of range.
    #[error("bad setting {name}: {reason}")]
    Setting {
        /// The builder method's name.
        name: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The Redis URL could not be parsed or names an unsupported scheme. The URL itself is not
    /// repeated, as it may carry a password.
    #[error("bad Redis URL: {0}")]
    Url(String),
    /// The backend cannot keep this kind of lock (a semaphore or a read-write lock on
    /// Redlock); the reason says why.
    #[error("{what} cannot be used here: {reason}")]
    NotSupported {
        /// What was asked for: `a semaphore`, `a read-write lock`, ...
        what: &'static str,
        /// Why this backend cannot keep it.
        reason: &'static str,
    },
    /// The holder label ([`AcquireOptions::holder`](crate::AcquireOptions::holder)) cannot be
    /// used: empty, longer than [`MAX_HOLDER_LEN`](crate::MAX_HOLDER_LEN) bytes, holding a
    /// control character, or given for a primitive that keeps none; the reason says which.
    #[error("bad holder label: {0}")]
    HolderLabel(&'static str),
    /// The call needs a Tokio runtime and was made outside one.
    #[error("no Tokio runtime: call this inside a runtime, or use `ac_redislock::blocking`")]
    NoRuntime,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes() {
        let key = || "k".to_owned();
        assert_eq!(LockError::Locked { key: key() }.code(), 423);
        assert_eq!(LockError::NotOwner { key: key() }.code(), 409);
        assert_eq!(LockError::NotHeld { key: key() }.code(), 410);
        assert_eq!(LockError::InvalidInput(InvalidInput::EmptyKey).code(), 400);
        let timeout = LockError::Unavailable {
            reason: UnavailableReason::Timeout(Duration::from_secs(1)),
            source: None,
        };
        assert_eq!(timeout.code(), 503);
    }

    #[test]
    fn display_names_the_key_in_debug_form() {
        let err = LockError::Locked {
            key: "a\r\nb".into(),
        };
        assert_eq!(err.to_string(), r#"lock "a\r\nb" is held by another owner"#);
    }

    #[test]
    fn not_owner_claims_no_operation() {
        // Release and extend both return it: the message must be true for either.
        let shown = LockError::NotOwner { key: "k".into() }.to_string();
        assert!(shown.contains("held by another owner"), "{shown}");
        for claim in ["release", "extend", "renew"] {
            assert!(!shown.contains(claim), "{shown}");
        }
    }

    #[test]
    fn quorum_counts_the_nodes_that_agreed() {
        let shown = |granted, needed| {
            LockError::QuorumNotReached {
                granted,
                needed,
                source: None,
            }
            .to_string()
        };
        assert_eq!(
            shown(0, 2),
            "Redlock quorum not reached: 0 nodes agreed, 2 needed"
        );
        assert_eq!(
            shown(1, 2),
            "Redlock quorum not reached: 1 node agreed, 2 needed"
        );
        assert_eq!(
            shown(2, 3),
            "Redlock quorum not reached: 2 nodes agreed, 3 needed"
        );
    }
}
