//! The stores: the only code that speaks to a backend. Each implements the same small set of
//! atomic primitives; the lock logic above them (waiting, renewal, fencing) is written once.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use redis::RedisError;
use tokio::sync::broadcast;

pub(crate) mod memory;
pub(crate) mod redis_store;
pub(crate) mod redlock;

/// What a store call can fail with: a Redis error, or (Redlock) too few nodes agreeing.
#[derive(Debug)]
pub(crate) enum StoreError {
    Redis(RedisError),
    Quorum {
        granted: usize,
        needed: usize,
        /// A node's error, when errors (rather than refusals) kept the quorum from forming.
        source: Option<RedisError>,
    },
}

impl From<RedisError> for StoreError {
    fn from(err: RedisError) -> Self {
        Self::Redis(err)
    }
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Redis(err) => err.fmt(f),
            Self::Quorum {
                granted, needed, ..
            } => write!(f, "{granted} of the {needed} nodes needed agreed"),
        }
    }
}

impl StoreError {
    pub(crate) fn is_timeout(&self) -> bool {
        match self {
            Self::Redis(err) => err.is_timeout(),
            Self::Quorum { source, .. } => source.as_ref().is_some_and(RedisError::is_timeout),
        }
    }
}

/// The result of a store call.
pub(crate) type StoreResult<T> = Result<T, StoreError>;

/// A boxed, sendable future: what a [`Store`] method returns, so stores can sit behind `dyn`.
pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// An expiry as it goes on the wire: whole seconds use `EX` (as the Node original does),
/// anything else `PX`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expiry {
    Seconds(u64),
    Millis(u64),
}

impl Expiry {
    /// Picks the wire form for a validated expiry (at least 1 ms). Sub-millisecond parts are
    /// dropped, so the lock never outlives what was asked.
    pub(crate) fn from_duration(expires: Duration) -> Self {
        let millis = u64::try_from(expires.as_millis()).unwrap_or(u64::MAX);
        if millis % 1000 == 0 {
            Self::Seconds(millis / 1000)
        } else {
            Self::Millis(millis)
        }
    }

    /// The expiry as a `Duration`, exactly as sent.
    pub(crate) fn as_duration(self) -> Duration {
        match self {
            Self::Seconds(secs) => Duration::from_secs(secs),
            Self::Millis(millis) => Duration::from_millis(millis),
        }
    }

    pub(crate) fn as_millis(self) -> u64 {
        match self {
            Self::Seconds(secs) => secs.saturating_mul(1000),
            Self::Millis(millis) => millis,
        }
    }
}

/// One lock attempt.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AcquireRequest<'a> {
    /// The wire key.
    pub(crate) key: &'a str,
    pub(crate) token: &'a str,
    pub(crate) expiry: Expiry,
    /// Register (or stay registered) as this waiter when the lock is held, and take a lock
    /// reserved for waiters.
    pub(crate) waiter: Option<WaiterRegistration<'a>>,
    /// Draw a fencing token with the lock.
    pub(crate) fencing: bool,
    /// A first probe of a waiting acquire: a refusal needs no diagnosis (the next attempt, a
    /// script, will tell a key of another type).
    pub(crate) probe: bool,
}

/// A waiter's identity and how long its registration lasts without being refreshed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WaiterRegistration<'a> {
    pub(crate) id: &'a str,
    pub(crate) lease: Duration,
}

/// The result of one lock attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Acquire {
    /// The key was free and now holds our value.
    Granted { fence: Option<u64> },
    /// The key holds a lock (a string); `pttl` is the holder's time left when known.
    Held { pttl: Option<Duration> },
    /// The key holds a value of another type, named as `TYPE` names it.
    WrongType(String),
}

/// The result of a compare-and-something on a lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Owned {
    /// The key held our value; the operation was done.
    Done,
    /// The key holds another value (left untouched).
    NotOwner,
    /// The key does not exist.
    NotHeld,
}

impl Owned {
    pub(crate) fn from_script(code: i64) -> Self {
        match code {
            1 => Self::Done,
            0 => Self::NotHeld,
            _ => Self::NotOwner,
        }
    }
}

/// Release announcements: the wire keys of locks released while waiters were registered.
pub(crate) type Releases = broadcast::Receiver<Arc<str>>;

/// The atomic primitives every store provides. Keys are wire keys (prefix included).
pub(crate) trait Store: Send + Sync + 'static {
    /// Takes the lock if it is free (see [`AcquireRequest`]).
    fn acquire<'a>(&'a self, req: AcquireRequest<'a>) -> BoxFuture<'a, StoreResult<Acquire>>;

    /// Deletes `key` if it holds `value`, in one atomic step (handing it to waiters if any).
    fn release<'a>(&'a self, key: &'a str, value: &'a str) -> BoxFuture<'a, StoreResult<Owned>>;

    /// Sets a new expiry on `key` if it holds `value`; never creates the key.
    fn extend<'a>(
        &'a self,
        key: &'a str,
        value: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, StoreResult<Owned>>;

    /// Deletes `key` whatever it holds; `true` if there was a key.
    fn force_release<'a>(&'a self, key: &'a str) -> BoxFuture<'a, StoreResult<bool>>;

    /// Reads the value at `key`.
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, StoreResult<Option<String>>>;

    /// A read-only snapshot of the lock.
    fn status<'a>(&'a self, key: &'a str) -> BoxFuture<'a, StoreResult<crate::status::LockStatus>>;

    /// Drops a waiter's registration.
    fn cancel_wait<'a>(&'a self, key: &'a str, waiter: &'a str) -> BoxFuture<'a, StoreResult<()>>;

    /// Subscribes to release announcements, if this store can make them. Waiters subscribe
    /// before their first attempt, so a release right after it is not missed.
    fn releases(&self) -> Option<Releases>;

    /// Waits until `replicas` replicas acknowledged this connection's writes, at most `timeout`
    /// (Redis `WAIT`); how many did, or `None` where the store has no replicas to ask.
    fn wait_replicas<'a>(
        &'a self,
        _replicas: u32,
        _timeout: Duration,
    ) -> BoxFuture<'a, StoreResult<Option<u32>>> {
        Box::pin(std::future::ready(Ok(None)))
    }

    /// Checks that this store can work with the wire key `key`; the reason if not.
    fn check_key(&self, _key: &str) -> Result<(), &'static str> {
        Ok(())
    }

    /// The share of a ttl taken off as clock-drift margin (the lease's validity is
    /// `ttl - elapsed - (ttl * factor + 2 ms)`).
    fn drift_factor(&self) -> f64 {
        crate::lease::DEFAULT_DRIFT_FACTOR
    }

    /// Whether this store can issue fencing tokens (Redlock cannot: its nodes' counters are
    /// independent).
    fn supports_fencing(&self) -> bool {
        true
    }

    /// Whether calls need the client's own timer for the command timeout: false for in-process
    /// stores, and for connections that enforce it themselves.
    fn needs_timer(&self) -> bool {
        true
    }

    /// Whether the store talks to a server (false for the in-process store).
    fn does_io(&self) -> bool {
        true
    }
}

/// The key of an auxiliary structure of the lock at `key`, in the same Redis Cluster hash slot:
/// `key` + suffix when `key` has a hash tag (its tag still comes first), else `{key}` + suffix.
///
/// A key with a `}` but no hash tag cannot be wrapped (its `}` would end the tag early); such a
/// key gets `key` + suffix, which is fine on a single Redis but not in a cluster.
pub(crate) fn aux_key(key: &str, suffix: &str) -> String {
    let wrap = !(has_hash_tag(key) || key.contains('}'));
    let mut aux = String::with_capacity(key.len() + suffix.len() + 2);
    if wrap {
        aux.push('{');
    }
    aux.push_str(key);
    if wrap {
        aux.push('}');
    }
    aux.push_str(suffix);
    aux
}

/// Whether `key`'s auxiliary keys land in its Redis Cluster hash slot: true unless it has a `}`
/// and no hash tag.
pub(crate) fn cluster_safe(key: &str) -> bool {
    has_hash_tag(key) || !key.contains('}')
}

/// Whether Redis Cluster hashes `key` by a `{tag}`: a `{` followed later by a `}` with at least
/// one byte between them.
fn has_hash_tag(key: &str) -> bool {
    key.find('{')
        .and_then(|open| key[open + 1..].find('}'))
        .is_some_and(|len| len > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_seconds_go_as_ex_and_the_rest_as_px() {
        assert_eq!(
            Expiry::from_duration(Duration::from_secs(10)),
            Expiry::Seconds(10)
        );
        assert_eq!(
            Expiry::from_duration(Duration::from_millis(1500)),
            Expiry::Millis(1500)
        );
        assert_eq!(
            Expiry::from_duration(Duration::from_micros(1500)),
            Expiry::Millis(1)
        );
        assert_eq!(
            Expiry::from_duration(Duration::from_micros(2_000_900)),
            Expiry::Seconds(2)
        );
        assert_eq!(
            Expiry::Millis(250).as_duration(),
            Duration::from_millis(250)
        );
        assert_eq!(Expiry::Seconds(3).as_millis(), 3000);
    }

    /// Redis Cluster's rule: hash the part between the first `{` and the next `}` if it is not
    /// empty. An auxiliary key must land in the same slot as its lock key.
    fn hash_part(key: &str) -> &str {
        if let Some(open) = key.find('{')
            && let Some(len) = key[open + 1..].find('}')
            && len > 0
        {
            return &key[open + 1..open + 1 + len];
        }
        key
    }

    #[test]
    fn auxiliary_keys_share_the_lock_keys_hash_slot() {
        for key in [
            "jobs:42",
            "jobs{42}",
            "{user:1}:lock",
            "{",
            "}{x}",
            "x{y",
            "a{b}c{d}",
        ] {
            let aux = aux_key(key, ":waiters");
            assert_eq!(hash_part(&aux), hash_part(key), "{key:?} -> {aux:?}");
            assert_ne!(aux, key);
        }
        assert_eq!(aux_key("jobs:42", ":fence"), "{jobs:42}:fence");
        assert_eq!(aux_key("jobs{42}", ":fence"), "jobs{42}:fence");
        // No tag but a `}`: cannot share a slot; kept as is.
        assert_eq!(aux_key("a{}b", ":fence"), "a{}b:fence");
    }
}
