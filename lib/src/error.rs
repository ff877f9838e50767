//! The one error type of the crate, [`LockError`], and the reasons it carries.

use std::fmt;
use std::time::Duration;

use redis::{ErrorKind, RedisError, ServerErrorKind};

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

    /// A release with a value found the key held under a different value.
    ///
    /// This and [`NotHeld`](Self::NotHeld) are what the original calls a mismatch; both are
    /// silenced by `suppress_mismatch`. The other holder's value is never part of the error.
    #[error("lock {key:?} is held by another owner, not released")]
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
        reason: crate::lease::LossReason,
    },

    /// The key exists but holds a Redis value that is not a string (a list, a hash, ...), so it
    /// is not a lock. The value was left untouched.
    #[error("key {key:?} holds a Redis {found} value, not a lock")]
    WrongType {
        /// The key as the caller gave it.
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
    /// The outcome of the command is unknown; a lock attempt that timed out may still land, in
    /// which case this crate releases it in the background when it generated the token itself.
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
    #[error("Redlock quorum not reached: {granted} of {needed} nodes needed")]
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
    /// [`InvalidInput`](Self::InvalidInput), `502` for [`Redis`](Self::Redis) and `500` for
    /// [`Entropy`](Self::Entropy).
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
            Self::Unavailable { .. } | Self::QuorumNotReached { .. } => 503,
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
    /// [`Unavailable`](Self::Unavailable), [`QuorumNotReached`](Self::QuorumNotReached) or
    /// [`Redis`](Self::Redis).
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
            Self::Unavailable { .. } | Self::Redis(_) | Self::QuorumNotReached { .. }
        )
    }

    /// Classifies a store error.
    pub(crate) fn from_store(err: crate::store::StoreError, key: &str) -> Self {
        match err {
            crate::store::StoreError::Redis(err) => Self::from_redis(err, key),
            crate::store::StoreError::Quorum {
                granted,
                needed,
                source,
            } => Self::QuorumNotReached {
                granted,
                needed,
                source,
            },
        }
    }

    /// Classifies a redis-rs error: connection trouble becomes `Unavailable`, `WRONGTYPE`
    /// becomes `WrongType`, anything else `Redis`.
    pub(crate) fn from_redis(err: RedisError, key: &str) -> Self {
        if let Some(reason) = UnavailableReason::classify(&err) {
            return Self::Unavailable {
                reason,
                source: Some(err),
            };
        }
        if err.code() == Some("WRONGTYPE") {
            // Our scripts say "WRONGTYPE key holds a <type>, not a lock"; Redis's own message
            // names no type.
            let found = err
                .detail()
                .and_then(|d| d.split_once("holds a "))
                .and_then(|(_, rest)| rest.split(',').next())
                .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_lowercase()))
                .unwrap_or("non-string");
            return Self::WrongType {
                key: key.to_owned(),
                found: found.to_owned(),
            };
        }
        Self::Redis(err)
    }

    pub(crate) fn timeout(after: Duration) -> Self {
        Self::Unavailable {
            reason: UnavailableReason::Timeout(after),
            source: None,
        }
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
    /// The client's background runtime is gone (only the blocking client has one).
    Shutdown,
    /// The TLS handshake failed: the server's certificate is not trusted or not for this host,
    /// or the server wants a client certificate. A configuration problem more than an outage;
    /// the `source` says which.
    Tls,
}

impl UnavailableReason {
    fn classify(err: &RedisError) -> Option<Self> {
        if err.is_timeout() {
            return Some(Self::Timeout(Duration::ZERO));
        }
        if err.is_connection_refusal() {
            return Some(Self::Refused);
        }
        if is_tls_failure(err) {
            return Some(Self::Tls);
        }
        match err.kind() {
            ErrorKind::Io | ErrorKind::ClusterConnectionNotFound => Some(Self::Disconnected),
            ErrorKind::Server(
                ServerErrorKind::BusyLoading
                | ServerErrorKind::ClusterDown
                | ServerErrorKind::MasterDown
                | ServerErrorKind::TryAgain,
            ) => Some(Self::NotReady),
            _ => None,
        }
    }
}

/// Whether a redis-rs I/O error is a failed TLS handshake. redis-rs keeps the rustls error
/// behind an `Arc` that cannot be downcast, so its message is what tells: rustls names every
/// certificate problem ("invalid peer certificate: ...", "received fatal alert:
/// CertificateRequired", ...).
fn is_tls_failure(err: &RedisError) -> bool {
    if !err.is_io_error() {
        return false;
    }
    let text = err.to_string();
    text.contains("certificate") || text.contains("Certificate") || text.contains("fatal alert")
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
    /// The lock value starts like the marker this crate uses for a lock reserved for a waiter.
    #[error("values starting with `ac-redislock:handoff:` are reserved")]
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
    /// The call needs a Tokio runtime and was made outside one.
    #[error("no Tokio runtime: call this inside a runtime, or use `ac_redislock::blocking`")]
    NoRuntime,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_is_send_sync_static() {
        fn check<T: Send + Sync + 'static>() {}
        check::<LockError>();
    }

    #[test]
    fn codes() {
        let key = || "k".to_owned();
        assert_eq!(LockError::Locked { key: key() }.code(), 423);
        assert_eq!(LockError::NotOwner { key: key() }.code(), 409);
        assert_eq!(LockError::NotHeld { key: key() }.code(), 410);
        assert_eq!(LockError::InvalidInput(InvalidInput::EmptyKey).code(), 400);
        assert_eq!(LockError::timeout(Duration::from_secs(1)).code(), 503);
    }

    #[test]
    fn io_errors_are_unavailable_and_server_errors_are_not() {
        let refused = RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert!(matches!(
            LockError::from_redis(refused, "k"),
            LockError::Unavailable {
                reason: UnavailableReason::Refused,
                ..
            }
        ));
        let reset = RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        assert!(matches!(
            LockError::from_redis(reset, "k"),
            LockError::Unavailable {
                reason: UnavailableReason::Disconnected,
                ..
            }
        ));
        let timed_out = RedisError::from(std::io::Error::from(std::io::ErrorKind::TimedOut));
        assert!(matches!(
            LockError::from_redis(timed_out, "k"),
            LockError::Unavailable {
                reason: UnavailableReason::Timeout(_),
                ..
            }
        ));
    }

    #[test]
    fn certificate_failures_are_tls_errors() {
        for message in [
            "invalid peer certificate: UnknownIssuer",
            "received fatal alert: CertificateRequired",
        ] {
            let io = std::io::Error::new(std::io::ErrorKind::InvalidData, message);
            let err = LockError::from_redis(RedisError::from(io), "k");
            assert!(
                matches!(
                    err,
                    LockError::Unavailable {
                        reason: UnavailableReason::Tls,
                        ..
                    }
                ),
                "{message}: {err:?}"
            );
        }
    }

    #[test]
    fn display_names_the_key_in_debug_form() {
        let err = LockError::Locked {
            key: "a\r\nb".into(),
        };
        assert_eq!(err.to_string(), r#"lock "a\r\nb" is held by another owner"#);
    }
}
