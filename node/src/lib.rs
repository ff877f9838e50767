//! The native half of the Node package `ac-redislock`: a napi-rs addon over
//! [`ac_redislock::RedisLock`]. It maps types and nothing more; the lock logic is the crate's.
//!
//! JavaScript never calls this directly: `index.js` (the package's entry) wraps it with the
//! original's API (`init`, `lockKey`, `releaseLock`, `getLock`, `create`) and the lease API
//! (`acquire`, `using`), and turns the errors below into the original's error objects.
//!
//! # Errors across the boundary
//!
//! Every rejection carries the crate's error as `[Kind] message`, `Kind` being the
//! [`LockError`] variant (`Locked`, `NotOwner`, `NotHeld`, `Lost`, `WrongType`,
//! `InvalidInput`, `Unavailable`, `Redis`, ...); the message is the error with its causes
//! ([`ErrorChain`]). No message ever holds a lock token.
//!
//! The workspace lints hold here as everywhere: napi-rs's `#[napi]` expansions need no
//! `allow` (their FFI glue is marked by the macros themselves).

use std::sync::Arc;
use std::time::Duration;

use ac_redislock::{
    AcquireOptions, BatchCall, BatchOutput, ErrorChain, LockError, LockGuard, LockParams,
    LossReason, RedisLock, ReleaseParams,
};
use napi::bindgen_prelude::{Error, Float64Array, Result, Status};
use napi_derive::napi;
use tokio::sync::Mutex;

/// The longest expiry, key and value the package accepts. The original sets no limit of its
/// own; these are far above any real lock and keep a mistake from sending megabytes.
const MAX_EXPIRES: Duration = Duration::from_secs(10 * 365 * 24 * 60 * 60);
const MAX_KEY_LEN: usize = 64 * 1024;
const MAX_VALUE_LEN: usize = 64 * 1024;

/// Sets up the addon's Tokio runtime when Node loads it: one worker thread (plus the JavaScript
/// thread that submits the calls), so a call, its connection's task and its reply are handled
/// on one thread without waking another. Set `AC_REDISLOCK_WORKER_THREADS` for more.
#[napi_derive::module_init]
fn init_runtime() {
    let workers = std::env::var("AC_REDISLOCK_WORKER_THREADS")
        .ok()
        .and_then(|n| n.parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or(1);
    // If the runtime cannot be built here, napi-rs builds its default one on first use.
    if let Ok(runtime) = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .thread_name("ac-redislock")
        .enable_all()
        .build()
    {
        napi::bindgen_prelude::create_custom_tokio_runtime(runtime);
    }
}

/// The variant of a [`LockError`], as the JavaScript layer reads it.
fn kind(err: &LockError) -> &'static str {
    match err {
        LockError::Locked { .. } => "Locked",
        LockError::NotOwner { .. } => "NotOwner",
        LockError::NotHeld { .. } => "NotHeld",
        LockError::Lost { .. } => "Lost",
        LockError::WrongType { .. } => "WrongType",
        LockError::InvalidInput(_) => "InvalidInput",
        LockError::Unavailable { .. } | LockError::NotClosed(_) => "Unavailable",
        LockError::QuorumNotReached { .. } => "QuorumNotReached",
        LockError::Redis(_) => "Redis",
        _ => "Other",
    }
}

/// Turns a crate error into a JS rejection: `[Kind] message with its causes`.
fn to_js(err: &LockError) -> Error {
    Error::new(
        Status::GenericFailure,
        format!("[{}] {}", kind(err), ErrorChain(err)),
    )
}

/// A rejection for a bad argument that the crate never saw.
fn invalid(reason: &str) -> Error {
    Error::new(Status::InvalidArg, format!("[InvalidInput] {reason}"))
}

/// Milliseconds from JavaScript (a `number`) as a [`Duration`], refusing what is not a
/// finite, positive number.
fn millis(ms: f64, what: &str) -> Result<Duration> {
    if !ms.is_finite() || ms <= 0.0 {
        return Err(invalid(&format!(
            "{what} must be a positive number of milliseconds"
        )));
    }
    Duration::try_from_secs_f64(ms / 1000.0).map_err(|_| invalid(&format!("{what} is too large")))
}

/// The name of a [`LossReason`], as the lease's `lost()` promise resolves it.
fn loss_name(reason: LossReason) -> &'static str {
    match reason {
        LossReason::Expired => "expired",
        LossReason::Deleted => "deleted",
        LossReason::TakenOver => "takenOver",
        LossReason::Unavailable => "unavailable",
        LossReason::MaxHold => "maxHold",
        LossReason::Released => "released",
        LossReason::Closed => "closed",
        _ => "other",
    }
}

/// Options of a client, set once when it is made.
#[napi(object)]
pub struct ClientOptions {
    /// The instance default of the original's `suppressMismatch`. Default: `false`.
    pub suppress_mismatch: Option<bool>,
    /// No call waits longer than this for Redis, in milliseconds. Default: 3000.
    pub command_timeout_ms: Option<f64>,
    /// A PEM certificate (or several) to trust for `rediss://` besides the system's roots.
    pub tls_ca: Option<String>,
    /// A prefix added to every key on the wire (an ioredis client's `keyPrefix`). Default: none.
    pub key_prefix: Option<String>,
}

/// A lock client: one `RedisLock`, on Redis or in memory.
#[napi]
pub struct Client {
    locks: RedisLock,
}

/// Makes the builder with the package's limits and the caller's options.
fn builder(options: &ClientOptions) -> Result<ac_redislock::RedisLockBuilder> {
    let mut builder = RedisLock::builder()
        .max_expires(MAX_EXPIRES)
        .max_key_len(MAX_KEY_LEN)
        .max_value_len(MAX_VALUE_LEN)
        .suppress_mismatch(options.suppress_mismatch.unwrap_or(false));
    if let Some(ms) = options.command_timeout_ms {
        builder = builder.command_timeout(millis(ms, "commandTimeout")?);
    }
    if let Some(prefix) = &options.key_prefix {
        builder = builder.key_prefix(prefix.clone());
    }
    if let Some(ca) = &options.tls_ca {
        builder = builder.tls_root_certificate(ca.as_bytes().to_vec());
    }
    Ok(builder)
}

/// Makes a client on the in-process store: the original's fallback when no Redis is given.
#[napi]
pub fn in_memory(options: ClientOptions) -> Result<Client> {
    let locks = builder(&options)?
        .build_in_memory()
        .map_err(|err| to_js(&err))?;
    Ok(Client { locks })
}

/// Makes a client on the Redis at `url` (`redis://`, `rediss://`, `unix://`); it connects on
/// first use and reconnects by itself.
#[napi]
pub async fn connect(url: String, options: ClientOptions) -> Result<Client> {
    // Async so that it runs on the addon's Tokio runtime, which the connection needs.
    let locks = builder(&options)?
        .build_from_url(&url)
        .map_err(|err| to_js(&err))?;
    Ok(Client { locks })
}

/// What the calls of a batch resolved to, packed as [`Client::run_batch`] describes.
#[napi(object)]
pub struct BatchOutcome {
    /// Each call's text, one after the other: the value of a lock or a read, the error of a
    /// failed call as `[Kind] message`; nothing for a release or a free key.
    pub text: String,
    /// Two numbers per call: its status (0: done, no value; 1: a value; 2: an error) and the
    /// length of its text in UTF-16 code units (JavaScript's `length`).
    pub nums: Float64Array,
}

/// A batch call's kind: `lockKey`.
const OP_LOCK: f64 = 0.0;
/// A batch call's kind: `releaseLock`.
const OP_RELEASE: f64 = 1.0;
/// A batch call's kind: `getLock`.
const OP_GET: f64 = 2.0;
/// Added to a `releaseLock`'s kind: its mismatch is suppressed.
const SUPPRESS: f64 = 4.0;
/// The numbers per call of a batch's input.
const NUMS_IN: usize = 4;

/// One call's key and value (`None`: none) from a packed batch's text, from `at` on. An error
/// here means the lengths do not fit the text: the rest of the batch cannot be read.
fn unpack_text(
    [key_len, value_len]: [f64; 2],
    text: &str,
    at: &mut usize,
) -> Result<(Option<String>, Option<String>)> {
    let mut take = |len: f64| -> Result<Option<String>> {
        if len < 0.0 {
            return Ok(None);
        }
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "a length, checked against the text below"
        )]
        let end = at.saturating_add(len as usize);
        let part = text
            .get(*at..end)
            .ok_or_else(|| invalid("a batch's lengths do not fit its text"))?;
        *at = end;
        Ok(Some(part.to_owned()))
    };
    Ok((take(key_len)?, take(value_len)?))
}

/// One call of a packed batch from its kind, key, value and expiry; an error is that call's.
fn unpack_call(
    op: f64,
    key: Option<String>,
    value: Option<String>,
    expires_ms: f64,
) -> Result<BatchCall> {
    let key = key.ok_or_else(|| invalid("a batch call has no key"))?;
    let (kind, suppress) = if op >= SUPPRESS {
        (op - SUPPRESS, true)
    } else {
        (op, false)
    };
    let call = if kind == OP_LOCK {
        let params = LockParams::new(key).expires(millis(expires_ms, "expires")?);
        BatchCall::Lock(match value {
            Some(value) => params.value(value),
            None => params,
        })
    } else if kind == OP_RELEASE {
        let params = ReleaseParams::new(key).suppress_mismatch(suppress);
        BatchCall::Release(match value {
            Some(value) => params.value(value),
            None => params,
        })
    } else if kind == OP_GET {
        BatchCall::Get(key)
    } else {
        return Err(invalid("unknown batch call"));
    };
    Ok(call)
}

/// Appends one call's outcome to a packed batch outcome.
fn pack_outcome(text: &mut String, nums: &mut Vec<f64>, status: f64, part: &str) {
    text.push_str(part);
    nums.push(status);
    #[expect(clippy::cast_precision_loss, reason = "lengths stay far below 2^53")]
    nums.push(part.encode_utf16().count() as f64);
}

/// Options of [`Client::acquire`], in milliseconds.
#[napi(object)]
pub struct LeaseOptions {
    /// The lease. Default: 10 000.
    pub ttl_ms: Option<f64>,
    /// How long to wait for a held lock; 0 makes one attempt. Default: 10 000.
    pub wait_ms: Option<f64>,
    /// Renew in the background (every third of the ttl) until released. Default: `false`.
    pub auto_renew: Option<bool>,
    /// Draw a fencing token, strictly increasing per key. Default: `false`.
    pub fencing: Option<bool>,
    /// A label naming the holder, kept beside the lock for `status` to show
    /// ([`AcquireOptions::holder`]). Default: none.
    pub holder: Option<String>,
}

#[napi]
impl Client {
    /// The original's `lockKey`: `SET key value EX seconds NX`; resolves to the value stored.
    #[napi]
    pub async fn lock_key(
        &self,
        key: String,
        expires_ms: f64,
        value: Option<String>,
    ) -> Result<String> {
        let mut params = LockParams::new(key).expires(millis(expires_ms, "expires")?);
        if let Some(value) = value {
            params = params.value(value);
        }
        self.locks.lock_key(params).await.map_err(|err| to_js(&err))
    }

    /// The original's `releaseLock`: with a value an atomic compare-and-delete, without one a
    /// force release. `suppress_mismatch` overrides the client's setting for this call.
    #[napi]
    pub async fn release_lock(
        &self,
        key: String,
        value: Option<String>,
        suppress_mismatch: Option<bool>,
    ) -> Result<()> {
        let mut params = ReleaseParams::new(key);
        if let Some(value) = value {
            params = params.value(value);
        }
        if let Some(suppress) = suppress_mismatch {
            params = params.suppress_mismatch(suppress);
        }
        self.locks
            .release_lock(params)
            .await
            .map_err(|err| to_js(&err))
    }

    /// The original's `getLock`: the value stored at `key`, or `null`.
    #[napi]
    pub async fn get_lock(&self, key: String) -> Result<Option<String>> {
        self.locks.get_lock(&key).await.map_err(|err| to_js(&err))
    }

    /// Runs several seed calls at once and resolves when all have answered:
    /// [`RedisLock::batch`], each call answered exactly as its own method answers it.
    ///
    /// Packed, so that a batch crosses the boundary as two values each way rather than five
    /// per call: `text` holds each call's key, then its value if it has one (UTF-8 byte
    /// lengths); `nums` four numbers per call: its kind (0 lockKey, 1 releaseLock, 2 getLock;
    /// plus 4 for a release whose mismatch is suppressed), the key's length, the value's
    /// length (-1: none) and, for a lock, its expiry in ms. A call the addon refuses (a bad
    /// expiry, an unknown kind) answers with its error in its place.
    ///
    /// Why: each call across the boundary costs a promise and a wake-up of the JavaScript
    /// thread, and each call on its own costs a Redis command's bookkeeping and timer; the
    /// JavaScript layer gathers the calls made in one tick into one batch, which costs one of
    /// each, and the crate sends the batch to Redis as one pipeline.
    #[napi]
    pub async fn run_batch(&self, text: String, nums: Float64Array) -> Result<BatchOutcome> {
        if !nums.len().is_multiple_of(NUMS_IN) {
            return Err(invalid("a batch has four numbers per call"));
        }
        let n = nums.len() / NUMS_IN;
        let mut places: Vec<std::result::Result<(), String>> = Vec::with_capacity(n);
        let mut calls = Vec::with_capacity(n);
        let mut at = 0;
        for call in nums.chunks_exact(NUMS_IN) {
            let &[op, key_len, value_len, expires_ms] = call else {
                continue;
            };
            // Lengths that do not fit leave the rest unreadable: the whole batch fails.
            let (key, value) = unpack_text([key_len, value_len], &text, &mut at)?;
            match unpack_call(op, key, value, expires_ms) {
                Ok(call) => {
                    calls.push(call);
                    places.push(Ok(()));
                }
                Err(err) => places.push(Err(err.reason)),
            }
        }
        let mut results = self.locks.batch(calls).await.into_iter();
        let mut out = String::new();
        let mut out_nums = Vec::with_capacity(2 * n);
        for place in places {
            let outcome = place.and_then(|()| match results.next() {
                Some(Ok(BatchOutput::Lock(value) | BatchOutput::Get(Some(value)))) => {
                    Ok(Some(value))
                }
                Some(Ok(_)) => Ok(None),
                Some(Err(err)) => Err(to_js(&err).reason),
                None => Err(to_js(&LockError::Unavailable {
                    reason: ac_redislock::UnavailableReason::Shutdown,
                    source: None,
                })
                .reason),
            });
            match outcome {
                Ok(None) => pack_outcome(&mut out, &mut out_nums, 0.0, ""),
                Ok(Some(value)) => pack_outcome(&mut out, &mut out_nums, 1.0, &value),
                Err(err) => pack_outcome(&mut out, &mut out_nums, 2.0, &err),
            }
        }
        Ok(BatchOutcome {
            text: out,
            nums: Float64Array::new(out_nums),
        })
    }

    /// Takes the lock at `key` as a lease (waiting per the options) and returns it.
    #[napi]
    pub async fn acquire(&self, key: String, options: LeaseOptions) -> Result<Lease> {
        let mut acquire = AcquireOptions::new()
            .auto_renew(options.auto_renew.unwrap_or(false))
            .fencing(options.fencing.unwrap_or(false));
        if let Some(ms) = options.ttl_ms {
            acquire = acquire.ttl(millis(ms, "ttl")?);
        }
        if let Some(label) = options.holder {
            acquire = acquire.holder(label);
        }
        // A wait of 0 is one attempt.
        let wait = match options.wait_ms {
            None => Some(ac_redislock::DEFAULT_WAIT),
            Some(ms) if ms.abs() < f64::EPSILON => None,
            Some(ms) => Some(millis(ms, "wait")?),
        };
        let guard = match wait {
            Some(wait) => self.locks.acquire_with(&key, acquire.wait(wait)).await,
            None => self.locks.try_acquire_with(&key, acquire).await,
        }
        .map_err(|err| to_js(&err))?;
        Ok(Lease::new(guard))
    }

    /// Closes the client: stops new calls and releases what its leases still hold.
    #[napi]
    pub async fn close(&self) -> Result<()> {
        self.locks
            .close()
            .await
            .map_err(|err| to_js(&LockError::from(err)))
    }
}

/// A held lease: the JavaScript face of a [`LockGuard`].
#[napi]
pub struct Lease {
    key: String,
    token: String,
    fence: Option<u64>,
    guard: Arc<Mutex<Option<LockGuard>>>,
}

impl Lease {
    fn new(guard: LockGuard) -> Self {
        Self {
            key: guard.key().to_owned(),
            token: guard.token().to_owned(),
            fence: guard.fencing_token(),
            guard: Arc::new(Mutex::new(Some(guard))),
        }
    }
}

#[napi]
impl Lease {
    /// The key held.
    #[napi(getter)]
    pub fn key(&self) -> String {
        self.key.clone()
    }

    /// The value the key holds while the lease lasts (pass it to `releaseLock` elsewhere).
    #[napi(getter)]
    pub fn value(&self) -> String {
        self.token.clone()
    }

    /// The fencing token, when asked for; below 2^53 (it starts at the server's clock in
    /// microseconds), so a JavaScript number holds it exactly.
    #[napi(getter)]
    pub fn fencing_token(&self) -> Option<f64> {
        #[expect(clippy::cast_precision_loss, reason = "tokens stay below 2^53")]
        self.fence.map(|fence| fence as f64)
    }

    /// Whether the lease still holds (monotonic clock, drift margin included).
    #[napi(getter)]
    pub fn is_held(&self) -> bool {
        self.guard
            .try_lock()
            .map(|guard| guard.as_ref().is_some_and(LockGuard::is_held))
            .unwrap_or(true)
    }

    /// Milliseconds the lease has left, 0 once it ended.
    #[napi(getter)]
    pub fn remaining_ms(&self) -> f64 {
        self.guard.try_lock().map_or(0.0, |guard| {
            guard
                .as_ref()
                .map_or(0.0, |guard| guard.remaining().as_secs_f64() * 1000.0)
        })
    }

    /// Resolves with the reason the lease ended: `released` after a release, or the loss
    /// (`expired`, `deleted`, `takenOver`, `unavailable`, `maxHold`, `closed`).
    #[napi]
    pub async fn lost(&self) -> Result<String> {
        let lost = match self.guard.lock().await.as_ref() {
            Some(guard) => guard.lost(),
            None => return Ok(loss_name(LossReason::Released).to_owned()),
        };
        Ok(loss_name(lost.await).to_owned())
    }

    /// Sets the lease to `ttl_ms` from now if the key still holds it; resolves to the
    /// milliseconds it now has.
    #[napi]
    pub async fn extend(&self, ttl_ms: f64) -> Result<f64> {
        let ttl = millis(ttl_ms, "ttl")?;
        let guard = self.guard.lock().await;
        let Some(guard) = guard.as_ref() else {
            return Err(to_js(&LockError::Lost {
                key: self.key.clone(),
                reason: LossReason::Released,
            }));
        };
        let left = guard.extend(ttl).await.map_err(|err| to_js(&err))?;
        Ok(left.as_secs_f64() * 1000.0)
    }

    /// Releases the lock (atomic compare-and-delete; waiters are woken) and stops renewal.
    #[napi]
    pub async fn release(&self) -> Result<()> {
        let Some(guard) = self.guard.lock().await.take() else {
            return Err(to_js(&LockError::Lost {
                key: self.key.clone(),
                reason: LossReason::Released,
            }));
        };
        guard.release().await.map_err(|err| to_js(&err))
    }
}
