//! The lock logic: one core under every face. [`Core`] holds what a client shares (its store
//! and settings) and does what every operation needs: validation, the call wrapper (error
//! mapping and logging), and the seed operations. The rest of the logic sits beside it:
//!
//! - `attempt`: the one path every lock attempt takes (seed API and guards alike);
//! - `acquire`: waiting, woken on release, and taking a lock as a guard;
//! - `cleanup`: the one background path that undoes what an acquisition or a dropped guard
//!   left in the store;
//! - `registry`: what a client has going (live guards, background cleanups), for closing it;
//! - `guard`, `lease`, `renew`: a held lease, its state and its renewal watchdog;
//! - `options`, `params`, `retry`, `token`: the value types the faces pass in.
//!
//! Nothing here knows a wire format: the store ([`crate::store`]) hands back typed values.

use std::borrow::Cow;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tracing::{Instrument, Level};

use crate::drift::drift;
use crate::error::{InvalidInput, LockError, Result, UnavailableReason};
use crate::report::ErrorChain;
use crate::status::LockStatus;
use crate::store::{Expiry, Owned, SetStatus, Shape, Store, StoreError, StoreResult, Traits};
use meter::{Meter, Primitive};
use registry::Registry;

pub(crate) mod acquire;
pub(crate) mod attempt;
pub(crate) mod batch;
pub(crate) mod cleanup;
pub(crate) mod guard;
pub(crate) mod lease;
pub(crate) mod meter;
#[cfg(feature = "metrics")]
pub mod metrics;
pub(crate) mod options;
pub(crate) mod params;
pub(crate) mod registry;
pub(crate) mod renew;
pub(crate) mod retry;
pub(crate) mod token;

/// Default time a single Redis call may take before it fails with
/// [`Unavailable`](LockError::Unavailable): 3 seconds.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(3);
/// Default maximum key length in bytes, prefix included: 1 KiB.
pub const DEFAULT_MAX_KEY_LEN: usize = 1024;
/// Default maximum value length in bytes: 1 KiB.
pub const DEFAULT_MAX_VALUE_LEN: usize = 1024;
/// Default maximum expiry: 24 hours. Longer leases are almost always a bug (a unit mistake, or a
/// lock that outlives its holder by a day); raise it with
/// [`RedisLockBuilder::max_expires`](crate::RedisLockBuilder::max_expires) if you mean it.
pub const DEFAULT_MAX_EXPIRES: Duration = Duration::from_secs(24 * 60 * 60);

/// The settings of the lock logic (the builder's, minus what only the stores use).
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) suppress_mismatch: bool,
    pub(crate) log_level: Level,
    pub(crate) key_prefix: String,
    pub(crate) command_timeout: Duration,
    pub(crate) max_key_len: usize,
    pub(crate) max_value_len: usize,
    pub(crate) max_expires: Duration,
    /// Label metric series with the lock's key (feature `metrics`).
    pub(crate) metrics_keys: bool,
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
            metrics_keys: false,
        }
    }
}

impl Config {
    /// Checks that the settings are in range.
    pub(crate) fn validate(&self) -> Result<()> {
        let bad = |name, reason| Err(InvalidInput::Setting { name, reason }.into());
        if self.command_timeout.is_zero() {
            return bad("command_timeout", "must be above zero");
        }
        if self.max_key_len == 0 {
            return bad("max_key_len", "must be above zero");
        }
        if self.key_prefix.len() >= self.max_key_len {
            return bad("key_prefix", "leaves no room for a key within max_key_len");
        }
        if self.max_value_len == 0 {
            return bad("max_value_len", "must be above zero");
        }
        if self.max_expires < Duration::from_millis(1) {
            return bad("max_expires", "must be at least 1ms");
        }
        Ok(())
    }
}

/// What a call is, for its log line: `"{name} failed"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Attempt,
    Release,
    ForceRelease,
    Extend,
    Renew,
    Get,
    Status,
    WaitReplicas,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Self::Attempt => "lock attempt",
            Self::Release => "release",
            Self::ForceRelease => "force release",
            Self::Extend => "extend",
            Self::Renew => "lease renewal",
            Self::Get => "get",
            Self::Status => "status",
            Self::WaitReplicas => "replica wait",
        }
    }
}

/// What a client shares between its clones, its guards and its background tasks: the store,
/// the settings, and the registry of what is held and in flight.
pub(crate) struct Core {
    store: Box<dyn Store>,
    config: Config,
    registry: Arc<Registry>,
    meter: Meter,
}

impl Core {
    pub(crate) fn new(store: Box<dyn Store>, config: Config) -> Arc<Self> {
        Arc::new(Self {
            store,
            meter: Meter::new(config.metrics_keys),
            config,
            registry: Arc::default(),
        })
    }

    pub(crate) fn registry(&self) -> &Registry {
        &self.registry
    }

    pub(crate) fn config(&self) -> &Config {
        &self.config
    }

    pub(crate) fn meter(&self) -> &Meter {
        &self.meter
    }

    pub(crate) fn store(&self) -> &dyn Store {
        &*self.store
    }

    pub(crate) fn traits(&self) -> Traits {
        self.store.traits()
    }

    /// Checks the key and adds the prefix.
    pub(crate) fn wire_key<'k>(&self, key: &'k str) -> Result<Cow<'k, str>> {
        let config = &self.config;
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
        self.store.check_key(&wire)?;
        Ok(wire)
    }

    /// Checks a lock value the caller chose.
    pub(crate) fn check_value(&self, value: &str) -> Result<()> {
        let max = self.config.max_value_len;
        if value.is_empty() {
            return Err(InvalidInput::EmptyValue.into());
        }
        if value.len() > max {
            return Err(InvalidInput::ValueTooLong {
                len: value.len(),
                max,
            }
            .into());
        }
        self.store.check_value(value)?;
        Ok(())
    }

    /// Checks an expiry: at least 1 ms, at most the maximum.
    pub(crate) fn check_expires(&self, expires: Duration) -> Result<Expiry> {
        let max = self.config.max_expires;
        if expires < Duration::from_millis(1) {
            return Err(InvalidInput::ExpiryTooShort(expires).into());
        }
        if expires > max {
            return Err(InvalidInput::ExpiryTooLong { expires, max }.into());
        }
        Ok(Expiry::from_duration(expires))
    }

    /// Checks a lease ttl: an expiry (see [`check_expires`](Self::check_expires)) long enough to
    /// leave a validity after the drift margin.
    pub(crate) fn check_lease_ttl(&self, ttl: Duration) -> Result<Duration> {
        let ttl = self.check_expires(ttl)?.as_duration();
        if ttl <= drift(ttl, self.traits().drift_factor) + Duration::from_millis(1) {
            return Err(InvalidInput::ExpiryTooShort(ttl).into());
        }
        Ok(ttl)
    }

    /// Runs one store call (which ends within the command timeout), maps its error to what
    /// happened to the lock or to the connection, and logs a backend error with its cause.
    /// Once the client is closed, only releases are sent; the rest fail with
    /// [`Shutdown`](UnavailableReason::Shutdown).
    pub(crate) async fn call<T>(
        &self,
        op: Op,
        key: &str,
        fut: impl Future<Output = StoreResult<T>>,
    ) -> Result<T> {
        self.open_for(op)?;
        fut.await.map_err(|err| self.failed(op, key, err))
    }

    /// Whether a call `op` may still be sent: once the client is closed, only releases are;
    /// the rest fail with [`Shutdown`](UnavailableReason::Shutdown).
    pub(crate) fn open_for(&self, op: Op) -> Result<()> {
        if op != Op::Release && self.registry.is_closed() {
            return Err(LockError::Unavailable {
                reason: UnavailableReason::Shutdown,
                source: None,
            });
        }
        Ok(())
    }

    /// What a failed store call means for the lock at `key` (counted, and logged with its
    /// cause when the backend failed).
    pub(crate) fn failed(&self, op: Op, key: &str, err: StoreError) -> LockError {
        let err = lock_error(err, key);
        self.meter.failed(key, &err);
        if err.is_backend() {
            let chain = ErrorChain(&err);
            match op {
                // The watchdog tries again until the lease runs out.
                Op::Renew => tracing::warn!(key = ?key, error = %chain, "{} failed", op.name()),
                _ => tracing::error!(key = ?key, error = %chain, "{} failed", op.name()),
            }
        }
        err
    }

    /// Releases the lock at `key` (prefix added here) if it holds `value`; the seed API's
    /// release, and its force release when `value` is `None`.
    pub(crate) async fn release_lock(
        &self,
        key: String,
        value: Option<String>,
        suppress_mismatch: Option<bool>,
    ) -> Result<()> {
        let span = op_span!("lock.release", key, Primitive::Lock);
        let result = self
            .release_lock_in(&key, value, suppress_mismatch)
            .instrument(span.clone())
            .await;
        span_end(&span, &result);
        result
    }

    async fn release_lock_in(
        &self,
        key: &str,
        value: Option<String>,
        suppress_mismatch: Option<bool>,
    ) -> Result<()> {
        let wire = self.wire_key(key)?;
        let Some(value) = value else {
            let existed = self
                .call(Op::ForceRelease, key, self.store.force_release(&wire))
                .await?;
            tracing::debug!(key = ?key, existed, "force release");
            return Ok(());
        };
        self.check_value(&value)?;
        let outcome = self
            .call(
                Op::Release,
                key,
                self.store.release(&wire, &value, &Shape::Mutex),
            )
            .await?;
        let suppress = suppress_mismatch.unwrap_or(self.config.suppress_mismatch);
        mismatch(Op::Release, key, outcome, suppress, suppress)
    }

    /// Sets the lock at `key` to expire `expires` from now if it holds `value`; the seed API's
    /// extend. A mismatch is never silenced (the caller must know its lock is gone), only its
    /// log line.
    pub(crate) async fn extend_lock(
        &self,
        key: &str,
        value: &str,
        expires: Duration,
    ) -> Result<()> {
        let span = op_span!("lock.extend", key, Primitive::Lock);
        let result = self
            .extend_lock_in(key, value, expires)
            .instrument(span.clone())
            .await;
        span_end(&span, &result);
        result
    }

    async fn extend_lock_in(&self, key: &str, value: &str, expires: Duration) -> Result<()> {
        let wire = self.wire_key(key)?;
        self.check_value(value)?;
        let ttl = self.check_expires(expires)?.as_duration();
        let outcome = self
            .call(
                Op::Extend,
                key,
                self.store.extend(&wire, value, ttl, &Shape::Mutex),
            )
            .await?;
        mismatch(
            Op::Extend,
            key,
            outcome,
            self.config.suppress_mismatch,
            false,
        )
    }

    /// Reads the value of the lock at `key`.
    pub(crate) async fn get_lock(&self, key: &str) -> Result<Option<String>> {
        let wire = self.wire_key(key)?;
        self.call(Op::Get, key, self.store.get(&wire)).await
    }

    /// A snapshot of the lock at `key`.
    pub(crate) async fn status(&self, key: &str) -> Result<LockStatus> {
        let wire = self.wire_key(key)?;
        self.call(Op::Status, key, self.store.status(&wire)).await
    }

    /// A snapshot of the lease set (semaphore, read-write lock) at `key`; `what` names it for
    /// the error where the store keeps none.
    pub(crate) async fn set_status(&self, key: &str, what: &'static str) -> Result<SetStatus> {
        let wire = self.wire_key(key)?;
        if !self.traits().lease_sets {
            return Err(InvalidInput::NotSupported {
                what,
                reason: NO_SETS_ON_REDLOCK,
            }
            .into());
        }
        let status = self
            .call(Op::Status, key, self.store.set_status(&wire))
            .await?;
        match status.wrong_type {
            Some(found) => Err(LockError::WrongType {
                key: key.to_owned(),
                found,
            }),
            None => Ok(status),
        }
    }
}

/// A span for `op` (`lock.release`, `lock.extend`, `lock.renew`) on the hold at `key`; its
/// `outcome` is recorded by [`span_end`].
macro_rules! op_span {
    ($name:literal, $key:expr, $primitive:expr) => {
        tracing::info_span!(
            $name,
            key = %$key,
            primitive = $primitive.as_str(),
            outcome = tracing::field::Empty,
            error = tracing::field::Empty,
        )
    };
}
pub(crate) use op_span;

/// Records how an owner-checked operation ended on its span: `ok`, `not_owner`, `not_held`,
/// `lost` or `error` (with the error; never a token).
pub(crate) fn span_end<T>(span: &tracing::Span, result: &Result<T>) {
    if span.is_disabled() {
        return;
    }
    let outcome = match result {
        Ok(_) => "ok",
        Err(LockError::NotOwner { .. }) => "not_owner",
        Err(LockError::NotHeld { .. }) => "not_held",
        Err(LockError::Lost { .. }) => "lost",
        Err(err) => {
            span.record("error", tracing::field::display(err));
            "error"
        }
    };
    span.record("outcome", outcome);
}

/// Why Redlock keeps no semaphores or read-write locks.
pub(crate) const NO_SETS_ON_REDLOCK: &str = "Redlock's masters count independently, so a count \
     of holders kept on them is not one count (each majority of masters can admit a different \
     set of holders); use one Redis, Sentinel or a Cluster";

/// The seed API's mismatch rule: a mismatch ([`NotOwner`](LockError::NotOwner) or
/// [`NotHeld`](LockError::NotHeld)) is logged at warn unless `quiet`, and returned unless
/// `swallow`.
fn mismatch(op: Op, key: &str, outcome: Owned, quiet: bool, swallow: bool) -> Result<()> {
    let Err(mismatch) = owned(outcome, key) else {
        tracing::debug!(key = ?key, "{} done", op.name());
        return Ok(());
    };
    if !quiet {
        tracing::warn!(error = %mismatch, "{} mismatch", op.name());
    }
    if swallow { Ok(()) } else { Err(mismatch) }
}

/// What an owner-checked operation found, as an error when it was not done: the key held
/// another value ([`NotOwner`](LockError::NotOwner)) or none ([`NotHeld`](LockError::NotHeld)).
/// A release whose first try was lost with its connection and whose retry found the key no
/// longer holding the value counts as done: that first try is what most likely released it.
pub(crate) fn owned(outcome: Owned, key: &str) -> Result<()> {
    match outcome {
        Owned::Done => Ok(()),
        Owned::Vanished => {
            tracing::debug!(key = ?key, "released by a try whose answer was lost");
            Ok(())
        }
        Owned::NotOwner => Err(LockError::NotOwner {
            key: key.to_owned(),
        }),
        Owned::NotHeld => Err(LockError::NotHeld {
            key: key.to_owned(),
        }),
    }
}

/// What a store error means for the lock at `key`.
fn lock_error(err: StoreError, key: &str) -> LockError {
    match err {
        StoreError::Unavailable { reason, source } => LockError::Unavailable { reason, source },
        StoreError::WrongType { found, companion } => LockError::WrongType {
            key: companion.unwrap_or_else(|| key.to_owned()),
            found,
        },
        StoreError::Quorum {
            granted,
            needed,
            source,
        } => LockError::QuorumNotReached {
            granted,
            needed,
            source,
        },
        StoreError::Redis(err) => LockError::Redis(err),
    }
}

/// Whether a failed call may still have run on the server: it timed out, or the connection
/// broke after the command was sent.
pub(crate) fn outcome_unknown(err: &LockError) -> bool {
    matches!(
        err,
        LockError::Unavailable {
            reason: UnavailableReason::Timeout(_) | UnavailableReason::Disconnected,
            ..
        }
    )
}
