//! The stores: the only code that speaks to a backend. Each implements the same small set of
//! atomic primitives ([`Store`]); the lock logic above them (validation, waiting, renewal,
//! fencing, guards) is written once. A store owns its connection setup, its scripts and its
//! wire protocol, and hands the logic typed values only: [`Acquire`], [`Owned`], [`Wake`](listen::Wake),
//! [`StoreError`].
//!
//! - [`redis_store`]: one Redis server, a Cluster or a Sentinel group, on any redis-rs connection;
//! - [`memory`]: the in-process fallback;
//! - [`redlock`]: a quorum over independent Redis masters, built on [`redis_store`] stores.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use redis::{ErrorKind, RedisError, ServerErrorKind};

use crate::error::{InvalidInput, UnavailableReason};
use crate::status::LockStatus;

pub(crate) mod listen;
pub(crate) mod memory;
pub(crate) mod redis_store;
pub(crate) mod redlock;

/// What a store call can fail with, classified where it happened.
#[derive(Debug, Clone)]
pub(crate) enum StoreError {
    /// The backend could not be reached in time; the command may or may not have run.
    Unavailable {
        reason: UnavailableReason,
        source: Option<RedisError>,
    },
    /// A key holds a value of the wrong type (a list where a lock should be, ...), named as
    /// `TYPE` names it, or `non-string`; `companion` names the key when it is not the lock key
    /// but one of its companions. The key was left untouched.
    WrongType {
        found: String,
        companion: Option<String>,
    },
    /// Redlock: too few nodes agreed.
    Quorum {
        granted: usize,
        needed: usize,
        /// A node's error, when errors (rather than refusals) kept the quorum from forming.
        source: Option<RedisError>,
    },
    /// Any other error the server answered with.
    Redis(RedisError),
}

impl StoreError {
    /// No answer within `after`; the command may still run.
    pub(crate) fn timeout(after: Duration) -> Self {
        Self::Unavailable {
            reason: UnavailableReason::Timeout(after),
            source: None,
        }
    }

    /// Whether the call ran out of time (an attempt sent again may still get through).
    pub(crate) fn is_timeout(&self) -> bool {
        match self {
            Self::Unavailable { reason, .. } => matches!(reason, UnavailableReason::Timeout(_)),
            Self::Quorum { source, .. } => source.as_ref().is_some_and(RedisError::is_timeout),
            Self::WrongType { .. } | Self::Redis(_) => false,
        }
    }
}

/// Classifies a redis-rs error: connection trouble is `Unavailable`, `WRONGTYPE` is
/// `WrongType`, anything else `Redis`.
impl From<RedisError> for StoreError {
    fn from(err: RedisError) -> Self {
        if let Some(reason) = unavailable_reason(&err) {
            return Self::Unavailable {
                reason,
                source: Some(err),
            };
        }
        if server_code(&err) == Some("WRONGTYPE") {
            // Our scripts say "WRONGTYPE key holds a <type>, not a lock"; Redis's own message
            // names no type.
            let found = err
                .detail()
                .and_then(|d| d.split_once("holds a "))
                .and_then(|(_, rest)| rest.split(',').next())
                .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_lowercase()))
                .unwrap_or("non-string");
            return Self::WrongType {
                found: found.to_owned(),
                companion: None,
            };
        }
        Self::Redis(err)
    }
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unavailable { reason, .. } => reason.fmt(f),
            Self::WrongType { found, companion } => match companion {
                Some(key) => write!(f, "companion key {key:?} holds a {found}"),
                None => write!(f, "the key holds a {found}"),
            },
            Self::Quorum {
                granted, needed, ..
            } => write!(f, "{granted} of the {needed} nodes needed agreed"),
            Self::Redis(err) => err.fmt(f),
        }
    }
}

/// The error codes a Redis server answers with, as `redis.call` inside a script may meet them.
const SERVER_CODES: [&str; 20] = [
    "WRONGTYPE",
    "NOSCRIPT",
    "OOM",
    "READONLY",
    "NOPERM",
    "BUSY",
    "BUSYKEY",
    "LOADING",
    "MASTERDOWN",
    "CLUSTERDOWN",
    "TRYAGAIN",
    "CROSSSLOT",
    "MOVED",
    "ASK",
    "NOREPLICAS",
    "MISCONF",
    "NOAUTH",
    "WRONGPASS",
    "EXECABORT",
    "UNKILLABLE",
];

/// The Redis error code of a server error, wherever it stands in the reply. Redis 7 returns the
/// error a command met inside a script as is (`WRONGTYPE Operation against ...`); Redis 6.2
/// wraps it (`ERR Error running script (call to f_...): @user_script:11: WRONGTYPE Operation
/// against ...`, the code sometimes with a `-` in front): there the code of the command inside
/// counts, not the `ERR` around it.
pub(crate) fn server_code(err: &RedisError) -> Option<&str> {
    let code = err.code()?;
    if code != "ERR" {
        return Some(code);
    }
    let inner = err.detail().and_then(|detail| {
        if !detail.starts_with("Error running script") {
            return None;
        }
        detail.split(": ").skip(1).find_map(|part| {
            let word = part
                .trim_start()
                .trim_start_matches('-')
                .split(' ')
                .next()?;
            SERVER_CODES.iter().copied().find(|known| *known == word)
        })
    });
    Some(inner.unwrap_or(code))
}

/// Why a redis-rs error means the server could not be used, if it does.
fn unavailable_reason(err: &RedisError) -> Option<UnavailableReason> {
    if err.is_timeout() {
        return Some(UnavailableReason::Timeout(Duration::ZERO));
    }
    if err.is_connection_refusal() {
        return Some(UnavailableReason::Refused);
    }
    if is_tls_failure(err) {
        return Some(UnavailableReason::Tls);
    }
    match err.kind() {
        ErrorKind::Io | ErrorKind::ClusterConnectionNotFound => {
            Some(UnavailableReason::Disconnected)
        }
        ErrorKind::Server(
            ServerErrorKind::BusyLoading
            | ServerErrorKind::ClusterDown
            | ServerErrorKind::MasterDown
            | ServerErrorKind::TryAgain,
        ) => Some(UnavailableReason::NotReady),
        // The same met inside a script, which Redis 6.2 reports wrapped in an ERR.
        ErrorKind::Server(_) => match server_code(err) {
            Some("LOADING" | "CLUSTERDOWN" | "MASTERDOWN" | "TRYAGAIN") => {
                Some(UnavailableReason::NotReady)
            }
            _ => None,
        },
        _ => None,
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

/// The result of a store call.
pub(crate) type StoreResult<T> = Result<T, StoreError>;

/// A boxed, sendable future: what a [`Store`] method returns, so stores can sit behind `dyn`.
pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The reply of a store call.
pub(crate) type Reply<'a, T> = BoxFuture<'a, StoreResult<T>>;

/// Runs `fut`, failing with [`StoreError::timeout`] if it takes longer than `timeout`: for
/// stores whose connection does not bound its calls itself.
pub(crate) async fn bounded<T>(
    timeout: Duration,
    fut: impl Future<Output = StoreResult<T>>,
) -> StoreResult<T> {
    tokio::time::timeout(timeout, fut)
        .await
        .unwrap_or_else(|_elapsed| Err(StoreError::timeout(timeout)))
}

/// The answer of a store asked for what it does not keep: an error, never a panic.
pub(crate) fn not_kept<'a, T: Send + 'a>(what: &'static str) -> Reply<'a, T> {
    let err = RedisError::from((
        ErrorKind::Client,
        "this store does not keep",
        what.to_owned(),
    ));
    Box::pin(std::future::ready(Err(StoreError::Redis(err))))
}

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

/// What a hold is at its key, which tells a store what data it keeps there and which of its
/// scripts apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Shape {
    /// A mutex: the key holds the token, as the Node original writes it.
    Mutex,
    /// `count` permits of a counting semaphore of `limit` permits. The key is a lease set: a
    /// sorted set of holds, each with its own expiry (see [`Share`]).
    Permits { count: u32, limit: u32 },
    /// A read hold of a read-write lock: one share of a lease set with no limit, which no
    /// write hold may share.
    Read,
    /// The write hold of a read-write lock: the lease set alone.
    Write,
    /// Several mutexes taken together, all holding one token: all the wire keys, sorted and
    /// without repeats (the request's `key` is the first).
    Multi { keys: Vec<String> },
}

/// A hold in a lease set, as the set's admission rule sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Share {
    /// `count` shares out of at most `limit` (`u32::MAX` for readers: no limit).
    Shared { count: u32, limit: u32 },
    /// The set alone.
    Exclusive,
}

impl Shape {
    /// Whether the key is a lease set (semaphore, read-write lock) rather than mutexes.
    pub(crate) fn share(&self) -> Option<Share> {
        match *self {
            Self::Permits { count, limit } => Some(Share::Shared { count, limit }),
            Self::Read => Some(Share::Shared {
                count: 1,
                limit: u32::MAX,
            }),
            Self::Write => Some(Share::Exclusive),
            Self::Mutex | Self::Multi { .. } => None,
        }
    }

    /// What the primitive is called in errors and logs.
    #[allow(
        dead_code,
        reason = "no caller since the in-memory store keeps every shape; kept for the stores \
                  that answer not-kept"
    )]
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Self::Mutex => "lock",
            Self::Permits { .. } => "semaphore",
            Self::Read | Self::Write => "read-write lock",
            Self::Multi { .. } => "multi-key lock",
        }
    }
}

/// A lease set at a key (a semaphore or a read-write lock), as a snapshot taken in one step.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SetStatus {
    /// Live shared holds, and the shares they hold in all.
    pub(crate) holds: u32,
    pub(crate) shares: u64,
    /// Whether an exclusive hold (a writer) holds the set.
    pub(crate) exclusive: bool,
    /// Time left of the hold that expires last; `None` when there is none.
    pub(crate) ttl: Option<Duration>,
    /// Waiters registered (live).
    pub(crate) waiters: u64,
    /// The last fencing token drawn, if any (and the counter still exists).
    pub(crate) fencing_counter: Option<u64>,
    /// The key holds a value of another type (named as `TYPE` names it): not a lease set.
    pub(crate) wrong_type: Option<String>,
}

/// One lock attempt.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AcquireRequest<'a> {
    /// The wire key.
    pub(crate) key: &'a str,
    /// What is taken there.
    pub(crate) shape: &'a Shape,
    pub(crate) token: &'a str,
    pub(crate) expiry: Expiry,
    /// Register (or stay registered) as this waiter when the lock is held, and take a lock
    /// handed to it.
    pub(crate) waiter: Option<WaiterRegistration<'a>>,
    /// Draw a fencing token with the lock.
    pub(crate) fencing: bool,
    /// The holder label to keep next to the lock (a mutex only), checked by the lock logic;
    /// `None` for none. The lock's own value stays the token.
    pub(crate) holder: Option<&'a str>,
    /// A refusal needs no diagnosis (no `TYPE` round trip to tell a lock from a key of
    /// another type): Redlock's attempts on its nodes, where one such key is one refusal of N.
    pub(crate) probe: bool,
}

/// A waiting acquisition, as its registration describes it: what a release needs to hand it
/// the lock, and what its cancellation needs to take the registration back.
#[derive(Debug, Clone)]
pub(crate) struct Waiter {
    /// The waiter's id, unique to this acquisition.
    pub(crate) id: String,
    /// The token the lock is taken with.
    pub(crate) token: String,
    /// The lock's expiry.
    pub(crate) expiry: Expiry,
    pub(crate) fencing: bool,
    /// A release may give the lock to this waiter outright (when its client hears the
    /// announcement); `false` when the waiter must take it with an attempt of its own (after
    /// `WAIT`, which must follow a write on the waiter's own connection).
    pub(crate) direct: bool,
    /// How long a registration lasts without being refreshed.
    pub(crate) lease: Duration,
}

/// A waiter's attempt: who it is, and whether it registered before in the same acquisition.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WaiterRegistration<'a> {
    pub(crate) waiter: &'a Waiter,
    pub(crate) registered: bool,
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
    /// Release only: a retry found the key no longer holding the value, after a first try whose
    /// answer was lost with its connection; that first try most likely released it.
    Vanished,
}

/// One seed call of a batch ([`Store::seed_batch`]), checked by the lock logic: keys are wire
/// keys.
#[derive(Debug, Clone, Copy)]
pub(crate) enum SeedOp<'a> {
    /// A lock attempt with the Node original's command (a mutex, no waiter, fencing or label).
    Lock(AcquireRequest<'a>),
    /// A compare-and-delete ([`Store::release`] of a mutex).
    Release { key: &'a str, value: &'a str },
    /// A force release ([`Store::force_release`]).
    ForceRelease { key: &'a str },
    /// A read ([`Store::get`]).
    Get { key: &'a str },
}

/// The answer to one [`SeedOp`], as its own store call gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SeedAnswer {
    Lock(Acquire),
    Release(Owned),
    ForceRelease(bool),
    Get(Option<String>),
}

impl SeedOp<'_> {
    /// The op as its own store call: what a store that cannot pipeline sends, and what a
    /// pipelining store falls back to for an op the batch could not settle.
    pub(crate) fn run_alone<'a, S: Store + ?Sized>(
        &'a self,
        store: &'a S,
    ) -> Reply<'a, SeedAnswer> {
        match *self {
            Self::Lock(req) => {
                let reply = store.acquire(req);
                Box::pin(async move { reply.await.map(SeedAnswer::Lock) })
            }
            Self::Release { key, value } => {
                let reply = store.release(key, value, &Shape::Mutex);
                Box::pin(async move { reply.await.map(SeedAnswer::Release) })
            }
            Self::ForceRelease { key } => {
                let reply = store.force_release(key);
                Box::pin(async move { reply.await.map(SeedAnswer::ForceRelease) })
            }
            Self::Get { key } => {
                let reply = store.get(key);
                Box::pin(async move { reply.await.map(SeedAnswer::Get) })
            }
        }
    }
}

/// Runs each of `ops` as its own store call, all at once; the answers in order.
pub(crate) fn each_alone<'a, S: Store + ?Sized>(
    store: &'a S,
    ops: &'a [SeedOp<'a>],
) -> BoxFuture<'a, Vec<StoreResult<SeedAnswer>>> {
    Box::pin(futures_util::future::join_all(
        ops.iter().map(|op| op.run_alone(store)),
    ))
}

/// What a store can do beyond the primitives every store has.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Traits {
    /// A short name for `Debug` output: `redis`, `memory`, `redlock`.
    pub(crate) name: &'static str,
    /// Whether it can issue fencing tokens (Redlock cannot: its nodes count independently).
    pub(crate) fencing: bool,
    /// Whether it keeps lease sets (semaphores, read-write locks). Redlock does not: a count
    /// kept by independent masters is not one count.
    pub(crate) lease_sets: bool,
    /// The share of a ttl taken off as clock-drift margin (a lease's validity is
    /// `ttl - elapsed - (ttl * factor + 2 ms)`).
    pub(crate) drift_factor: f64,
}

/// The atomic primitives every store provides. Keys are wire keys (prefix included). Every
/// call ends within the command timeout the store was built with, failing with
/// [`StoreError::Unavailable`] if the backend does not answer in time.
pub(crate) trait Store: Send + Sync + 'static {
    /// Takes the lock if it is free (see [`AcquireRequest`]).
    fn acquire<'a>(&'a self, req: AcquireRequest<'a>) -> Reply<'a, Acquire>;

    /// Ends the hold of `value` at `key` (a `shape` hold), in one atomic step, waking or
    /// handing the key to waiters if any. For a mutex: deletes `key` if it holds `value`.
    fn release<'a>(&'a self, key: &'a str, value: &'a str, shape: &'a Shape) -> Reply<'a, Owned>;

    /// Sets a new expiry on the hold of `value` at `key` (a `shape` hold), if it still exists;
    /// never creates it.
    fn extend<'a>(
        &'a self,
        key: &'a str,
        value: &'a str,
        ttl: Duration,
        shape: &'a Shape,
    ) -> Reply<'a, Owned>;

    /// Deletes `key` whatever it holds; `true` if there was a key.
    fn force_release<'a>(&'a self, key: &'a str) -> Reply<'a, bool>;

    /// Reads the value at `key`.
    fn get<'a>(&'a self, key: &'a str) -> Reply<'a, Option<String>>;

    /// A read-only snapshot of the lock.
    fn status<'a>(&'a self, key: &'a str) -> Reply<'a, LockStatus>;

    /// A read-only snapshot of the lease set (semaphore, read-write lock) at `key`.
    fn set_status<'a>(&'a self, key: &'a str) -> Reply<'a, SetStatus>;

    /// Drops a waiter's registration (for a `shape` hold at `key`), passing on what was handed
    /// to it (a mutex reserved for it or given to it with its token; a wake-up it will not use).
    fn cancel_wait<'a>(
        &'a self,
        key: &'a str,
        waiter: &'a Waiter,
        shape: &'a Shape,
    ) -> Reply<'a, ()>;

    /// Listens for what concerns the waiter `waiter` on the wire key `key`, if this store can
    /// tell it (else waiters poll). A waiter listens before its first attempt, so a release
    /// right after it is not missed.
    fn listen(&self, key: &str, waiter: &str) -> Option<listen::Listener>;

    /// Waits until `replicas` replicas acknowledged this connection's writes, at most `timeout`
    /// (Redis `WAIT`); how many did, or `None` where the store has no replicas to ask.
    fn wait_replicas<'a>(&'a self, _replicas: u32, _timeout: Duration) -> Reply<'a, Option<u32>> {
        Box::pin(std::future::ready(Ok(None)))
    }

    /// Runs several seed calls, each answered as its own call would be (in order). A store
    /// that can sends them together (one round trip, one timeout); by default each is its own
    /// call, all running at once.
    fn seed_batch<'a>(
        &'a self,
        ops: &'a [SeedOp<'a>],
    ) -> BoxFuture<'a, Vec<StoreResult<SeedAnswer>>> {
        each_alone(self, ops)
    }

    /// Checks that this store can work with the wire key `key`.
    fn check_key(&self, _key: &str) -> Result<(), InvalidInput> {
        Ok(())
    }

    /// Checks that this store can hold `value` as a lock's value.
    fn check_value(&self, _value: &str) -> Result<(), InvalidInput> {
        Ok(())
    }

    /// What this store can do.
    fn traits(&self) -> Traits;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_are_unavailable_and_server_errors_are_not() {
        let io = |kind| StoreError::from(RedisError::from(std::io::Error::from(kind)));
        let reason = |err: StoreError| match err {
            StoreError::Unavailable { reason, .. } => Some(reason),
            _ => None,
        };
        assert_eq!(
            reason(io(std::io::ErrorKind::ConnectionRefused)),
            Some(UnavailableReason::Refused)
        );
        assert_eq!(
            reason(io(std::io::ErrorKind::ConnectionReset)),
            Some(UnavailableReason::Disconnected)
        );
        assert!(matches!(
            reason(io(std::io::ErrorKind::TimedOut)),
            Some(UnavailableReason::Timeout(_))
        ));
        let denied =
            RedisError::from((ErrorKind::Server(ServerErrorKind::ResponseError), "NOPERM"));
        assert!(matches!(StoreError::from(denied), StoreError::Redis(_)));
    }

    /// A server error as it comes off the wire.
    fn reply(line: &str) -> RedisError {
        match redis::parse_redis_value(format!("-{line}\r\n").as_bytes()) {
            Ok(redis::Value::ServerError(err)) => RedisError::from(err),
            other => panic!("not a server error: {other:?}"),
        }
    }

    #[test]
    fn codes_are_found_in_the_bare_form_and_in_redis_6_script_errors() {
        let wrapped = |code: &str| {
            format!(
                "ERR Error running script (call to f_0123456789abcdef0123456789abcdef01234567): \
                 @user_script:11: {code} something went wrong"
            )
        };
        for code in SERVER_CODES {
            // 7.x
            assert_eq!(server_code(&reply(&format!("{code} detail"))), Some(code));
            // 6.2, with and without the dash that some codes keep there
            assert_eq!(server_code(&reply(&wrapped(code))), Some(code), "{code}");
            let dashed = wrapped(&format!("-{code}"));
            assert_eq!(server_code(&reply(&dashed)), Some(code), "{code}");
        }
        // 6.2 names the script twice for some errors: the code still counts.
        let twice = "ERR Error running script (call to f_ab): @user_script:1: @user_script: 1: \
                     -READONLY You can't write against a read only replica.";
        assert_eq!(server_code(&reply(twice)), Some("READONLY"));
        // A plain ERR, and a script's own error, stay ERR.
        assert_eq!(server_code(&reply("ERR syntax error")), Some("ERR"));
        let own = "ERR Error running script (call to f_ab): @user_script:3: user_script:3: \
                   attempt to compare nil with number";
        assert_eq!(server_code(&reply(own)), Some("ERR"));
    }

    #[test]
    fn a_wrong_type_inside_a_script_is_wrong_type_on_every_version() {
        let bare = "WRONGTYPE Operation against a key holding the wrong kind of value";
        let wrapped = format!("ERR Error running script (call to f_ab): @user_script:11: {bare}");
        for line in [bare, wrapped.as_str()] {
            assert!(
                matches!(StoreError::from(reply(line)), StoreError::WrongType { .. }),
                "{line}"
            );
        }
        let ours = "WRONGTYPE key holds a list, not a lock";
        match StoreError::from(reply(ours)) {
            StoreError::WrongType { found, .. } => assert_eq!(found, "list"),
            other => panic!("{other:?}"),
        }
        let loading = "ERR Error running script (call to f_ab): @user_script:2: -LOADING Redis \
                       is loading the dataset in memory";
        assert!(matches!(
            StoreError::from(reply(loading)),
            StoreError::Unavailable {
                reason: UnavailableReason::NotReady,
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
            let err = StoreError::from(RedisError::from(io));
            assert!(
                matches!(
                    err,
                    StoreError::Unavailable {
                        reason: UnavailableReason::Tls,
                        ..
                    }
                ),
                "{message}: {err:?}"
            );
        }
    }

    #[test]
    fn whole_seconds_go_as_ex_and_the_rest_as_px() {
        let ms = Duration::from_millis;
        for (expires, wire) in [
            (Duration::from_secs(10), Expiry::Seconds(10)),
            (ms(1500), Expiry::Millis(1500)),
            (Duration::from_micros(1500), Expiry::Millis(1)),
            (Duration::from_micros(2_000_900), Expiry::Seconds(2)),
        ] {
            assert_eq!(Expiry::from_duration(expires), wire, "{expires:?}");
        }
        assert_eq!(Expiry::Millis(250).as_duration(), ms(250));
        assert_eq!(Expiry::Seconds(3).as_millis(), 3000);
    }
}
