//! The Redis store: the primitives over any redis-rs async connection (one server, a Redis
//! Cluster, the master of a Sentinel group), plus release wake-ups over pub/sub when it has a
//! client to open a subscriber connection with.
//!
//! - `connect`: connection setup (URL, TLS, Cluster, Sentinel, the caller's connection);
//! - `protocol`: companion keys, reservations, release announcements;
//! - `scripts`: the Lua scripts, with the shared prelude;
//! - `wake`: the subscriber that turns announcements into wake-ups;
//! - `sentinel`: a connection that follows a Sentinel group's master.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use redis::Value;
use redis::aio::ConnectionLike;

use super::listen::Listener;
use super::{
    Acquire, AcquireRequest, BoxFuture, Expiry, Owned, Reply, SeedAnswer, SeedOp, SetStatus, Shape,
    Store, StoreError, StoreResult, Traits, Waiter, bounded, each_alone,
};
use crate::drift::DEFAULT_DRIFT_FACTOR;
use crate::error::{InvalidInput, UnavailableReason};
use crate::status::{LockState, LockStatus};
use protocol::{Companion, Companions, HANDOFF_RESERVATION};
use wake::{WakeHub, WakeSource};

mod batch;
pub(crate) mod connect;
mod lease_set;
mod multi;
mod protocol;
mod scripts;
#[cfg(feature = "sentinel")]
pub(crate) mod sentinel;
mod wake;

/// A store over a cloneable redis-rs connection (multiplexed, `ConnectionManager`, cluster).
/// Each call works on its own clone, so calls run concurrently on one multiplexed connection.
pub(crate) struct RedisStore<C> {
    conn: C,
    wake: Option<WakeHub>,
    /// The command timeout: no call takes longer.
    timeout: Duration,
    /// The connection fails a call that takes longer than the timeout by itself, so no timer
    /// of our own is needed.
    bounded: bool,
    /// A Redis Cluster connection: keys must keep their companion keys in their slot.
    cluster: bool,
    /// A batch's pipeline was refused with `CROSSSLOT`: the connection routes by slot (a
    /// Cluster this store could not recognise), so batches go call by call.
    no_pipelines: AtomicBool,
}

impl<C: 'static> RedisStore<C> {
    /// A store; with a wake source, waiters are woken over pub/sub on a connection of its own.
    /// `bounded` says the connection already fails calls after the command timeout; a
    /// `MultiplexedConnection` is made so here (on this store's copy of the handle).
    fn new(mut conn: C, wake: WakeSource, bounded: bool, timeout: Duration) -> Self {
        let any: &mut dyn std::any::Any = &mut conn;
        let bounded = match any.downcast_mut::<redis::aio::MultiplexedConnection>() {
            Some(multiplexed) => {
                // Cheaper than a second timer around every call.
                multiplexed.set_response_timeout(timeout);
                true
            }
            None => bounded,
        };
        #[cfg(feature = "cluster")]
        let cluster = (&conn as &dyn std::any::Any).is::<redis::cluster_async::ClusterConnection>();
        #[cfg(not(feature = "cluster"))]
        let cluster = false;
        Self {
            conn,
            wake: WakeHub::new(wake),
            timeout,
            bounded,
            cluster,
            no_pipelines: AtomicBool::new(false),
        }
    }
}

/// Which try of a call this is: its first, or its one retry after the connection was found
/// dead. A retry's command may follow one that reached Redis before the connection broke, so
/// each operation reads a retry's answer with that in mind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Try {
    First,
    Retry,
}

impl<C> RedisStore<C>
where
    C: ConnectionLike + Clone + Send + Sync + 'static,
{
    /// Runs `work` on a clone of the connection, within the command timeout; a timeout the
    /// connection reports itself is reported as the command timeout.
    ///
    /// A try that finds the connection dead (closed while idle, killed, reset, or a reconnect
    /// that had failed) is made once more on a fresh connection, within what is left of the
    /// same timeout: a `ConnectionManager` opens one as soon as its connection fails, a
    /// Sentinel connection asks the sentinels again. The retry is not made after a timeout.
    ///
    /// Every store call's future is allocated, so its size counts: the connection is cloned
    /// straight into the try, `work` should borrow what it needs rather than copy it, and what
    /// only some calls need (a timer for connections that do not bound their calls, the retry)
    /// is boxed apart.
    ///
    /// (Written as functions returning `async` blocks rather than `async fn`s: an `async fn`
    /// keeps each argument twice in its future.)
    #[allow(
        clippy::manual_async_fn,
        reason = "an `async fn` keeps each argument twice in its future"
    )]
    fn call<'s, T, F>(
        &'s self,
        work: impl Fn(C, Try) -> F + 's,
    ) -> impl Future<Output = StoreResult<T>> + 's
    where
        T: 's,
        F: Future<Output = StoreResult<T>> + 's,
    {
        async move {
            let started = Instant::now();
            let first = if self.bounded {
                work(self.conn.clone(), Try::First).await
            } else {
                Box::pin(bounded(self.timeout, work(self.conn.clone(), Try::First))).await
            };
            // Moved whole into a function, so that nothing of the first try lives on in this
            // future while the retry runs.
            let err = match to_retry(first, self.timeout) {
                Ok(err) => err,
                Err(answer) => return answer,
            };
            Box::pin(self.retry(&work, err, started)).await
        }
    }

    /// The one retry of a call whose first try found the connection dead.
    #[allow(
        clippy::manual_async_fn,
        reason = "an `async fn` keeps each argument twice in its future"
    )]
    fn retry<'s, T, F>(
        &'s self,
        work: &'s impl Fn(C, Try) -> F,
        first: StoreError,
        started: Instant,
    ) -> impl Future<Output = StoreResult<T>> + 's
    where
        T: 's,
        F: Future<Output = StoreResult<T>> + 's,
    {
        async move {
            let left = self.timeout.saturating_sub(started.elapsed());
            if left.is_zero() {
                return Err(first);
            }
            tracing::debug!(error = %first, "connection found dead; trying once more");
            let result = bounded(left, work(self.conn.clone(), Try::Retry)).await;
            result.map_err(|err| as_command_timeout(err, self.timeout))
        }
    }
}

/// The error of a first try that failed because the connection it was given was dead (to be
/// retried), or else the call's answer: the try's own, a timeout the connection reported
/// itself given as the command timeout.
fn to_retry<T>(first: StoreResult<T>, timeout: Duration) -> Result<StoreError, StoreResult<T>> {
    match first {
        Err(
            err @ StoreError::Unavailable {
                reason: UnavailableReason::Disconnected | UnavailableReason::Refused,
                ..
            },
        ) => Ok(err),
        other => Err(other.map_err(|err| as_command_timeout(err, timeout))),
    }
}

/// A timeout the connection reported itself (it knows no duration), as the command timeout.
fn as_command_timeout(err: StoreError, timeout: Duration) -> StoreError {
    match err {
        StoreError::Unavailable {
            reason: UnavailableReason::Timeout(after),
            source,
        } if after.is_zero() => StoreError::Unavailable {
            reason: UnavailableReason::Timeout(timeout),
            source,
        },
        other => other,
    }
}

impl<C> Store for RedisStore<C>
where
    C: ConnectionLike + Clone + Send + Sync + 'static,
{
    fn acquire<'a>(&'a self, req: AcquireRequest<'a>) -> Reply<'a, Acquire> {
        if let Some(share) = req.shape.share() {
            return self.set_acquire(req, share);
        }
        if let Shape::Multi { keys } = req.shape {
            return self.multi_acquire(req, keys);
        }
        Box::pin(async move {
            let req = &req;
            self.call(move |mut conn, try_| async move {
                // A labelled lock writes its label in the same step: scripted too.
                if req.waiter.is_some() || req.fencing || req.holder.is_some() {
                    let client = self.wake.as_ref().map_or("", WakeHub::id);
                    return acquire_script(&mut conn, req, client, try_).await;
                }
                if set_nx(req).query_async::<Value>(&mut conn).await? != Value::Nil {
                    return Ok(Acquire::Granted { fence: None });
                }
                if try_ == Try::Retry {
                    // The first SET may have landed before the connection broke: the lock holding
                    // our token is ours, not someone else's.
                    let held: Option<Vec<u8>> = redis::cmd("GET")
                        .arg(req.key)
                        .query_async(&mut conn)
                        .await?;
                    if held.as_deref() == Some(req.token.as_bytes()) {
                        return Ok(Acquire::Granted { fence: None });
                    }
                }
                if req.probe {
                    return Ok(Acquire::Held { pttl: None });
                }
                // Refused. SET NX only tests existence, so tell a lock from a key of another type
                // (a list, say) that would otherwise look locked forever. This costs a round trip
                // on the refused path only.
                let kind: String = redis::cmd("TYPE")
                    .arg(req.key)
                    .query_async(&mut conn)
                    .await?;
                Ok(match kind.as_str() {
                    // "none": the holder let go between the two commands; still a refusal.
                    "string" | "none" => Acquire::Held { pttl: None },
                    _ => Acquire::WrongType(kind),
                })
            })
            .await
        })
    }

    fn release<'a>(&'a self, key: &'a str, value: &'a str, shape: &'a Shape) -> Reply<'a, Owned> {
        if let Some(share) = shape.share() {
            return self.set_release(key, value, share);
        }
        if let Shape::Multi { keys } = shape {
            return self.multi_release(keys, value);
        }
        Box::pin(self.call(move |mut conn, try_| async move {
            let call = release_call(key, value);
            let code: i64 = invoke(&call, &mut conn, key, Touches::FENCE).await?;
            Ok(released(code, try_))
        }))
    }

    fn extend<'a>(
        &'a self,
        key: &'a str,
        value: &'a str,
        ttl: Duration,
        shape: &'a Shape,
    ) -> Reply<'a, Owned> {
        if let Some(share) = shape.share() {
            return self.set_extend(key, value, ttl, share);
        }
        if let Shape::Multi { keys } = shape {
            return self.multi_extend(keys, value, ttl);
        }
        Box::pin(self.call(move |mut conn, _try| async move {
            let code: i64 = scripts::EXTEND
                .key(key)
                .key(Companion::holder(key))
                .arg(value)
                .arg(Expiry::from_duration(ttl).as_millis())
                .invoke_async(&mut conn)
                .await?;
            Ok(owned(code))
        }))
    }

    fn force_release<'a>(&'a self, key: &'a str) -> Reply<'a, bool> {
        Box::pin(self.call(move |mut conn, _try| async move {
            let deleted: i64 = force_release_call(key).invoke_async(&mut conn).await?;
            Ok(deleted > 0)
        }))
    }

    fn get<'a>(&'a self, key: &'a str) -> Reply<'a, Option<String>> {
        Box::pin(self.call(move |mut conn, _try| async move {
            let bytes: Option<Vec<u8>> = redis::cmd("GET").arg(key).query_async(&mut conn).await?;
            // Locks are strings; a value that is not UTF-8 (written by another client) is shown
            // with replacement characters rather than failing the read.
            Ok(bytes.map(|bytes| {
                String::from_utf8(bytes)
                    .unwrap_or_else(|err| String::from_utf8_lossy(err.as_bytes()).into_owned())
            }))
        }))
    }

    fn status<'a>(&'a self, key: &'a str) -> Reply<'a, LockStatus> {
        Box::pin(self.call(move |mut conn, _try| async move {
            let companions = Companions::of(key);
            let (state, pttl, fence, waiters, label, since, now): StatusReply = scripts::STATUS
                .key(key)
                .key(companions.waiters)
                .key(companions.fence)
                .key(companions.holder)
                .invoke_async(&mut conn)
                .await?;
            let held = held_by(&label, since, now);
            Ok(LockStatus {
                state: match state {
                    0 => LockState::Free,
                    1 => LockState::Held,
                    2 => LockState::Reserved,
                    _ => LockState::NotALock,
                },
                ttl: u64::try_from(pttl).ok().map(Duration::from_millis),
                fencing_counter: u64::try_from(fence).ok(),
                waiters,
                holder: held.as_ref().map(|(label, _, _)| label.clone()),
                held_for: held.as_ref().map(|&(_, held_for, _)| held_for),
                held_since: held.map(|(_, _, since)| since),
            })
        }))
    }

    fn set_status<'a>(&'a self, key: &'a str) -> Reply<'a, SetStatus> {
        self.lease_set_status(key)
    }

    fn cancel_wait<'a>(
        &'a self,
        key: &'a str,
        waiter: &'a Waiter,
        shape: &'a Shape,
    ) -> Reply<'a, ()> {
        if let Some(share) = shape.share() {
            return self.set_cancel_wait(key, waiter, share);
        }
        if let Shape::Multi { keys } = shape {
            return self.multi_cancel_wait(keys, waiter);
        }
        Box::pin(self.call(move |mut conn, _try| async move {
            let companions = Companions::of(key);
            let client = self.wake.as_ref().map_or("", WakeHub::id);
            let call = scripts::CANCEL_WAIT
                .key(key)
                .key(companions.waiters)
                .key(companions.fence)
                .key(companions.holder)
                .arg(&waiter.id)
                .arg(protocol::registration(waiter, client))
                .arg(&waiter.token)
                .arg(millis(HANDOFF_RESERVATION));
            let _: i64 = invoke(&call, &mut conn, key, Touches::ALL).await?;
            Ok(())
        }))
    }

    fn listen(&self, key: &str, waiter: &str) -> Option<Listener> {
        self.wake.as_ref().and_then(|hub| hub.listen(key, waiter))
    }

    fn wait_replicas<'a>(&'a self, replicas: u32, timeout: Duration) -> Reply<'a, Option<u32>> {
        Box::pin(self.call(move |mut conn, _try| async move {
            let acked: u32 = redis::cmd("WAIT")
                .arg(replicas)
                .arg(millis(timeout).max(1))
                .query_async(&mut conn)
                .await?;
            Ok(Some(acked))
        }))
    }

    fn seed_batch<'a>(
        &'a self,
        ops: &'a [SeedOp<'a>],
    ) -> BoxFuture<'a, Vec<StoreResult<SeedAnswer>>> {
        // A Cluster routes each command to its slot's node: there, each call goes alone.
        if self.cluster || ops.len() < 2 || self.no_pipelines.load(Ordering::Relaxed) {
            return each_alone(self, ops);
        }
        self.pipelined(ops)
    }

    fn check_key(&self, key: &str) -> Result<(), InvalidInput> {
        protocol::check_key(key)?;
        if self.cluster {
            protocol::check_cluster_key(key)?;
        }
        Ok(())
    }

    fn check_value(&self, value: &str) -> Result<(), InvalidInput> {
        protocol::check_value(value)
    }

    fn traits(&self) -> Traits {
        Traits {
            name: if self.cluster {
                "redis cluster"
            } else {
                "redis"
            },
            fencing: true,
            lease_sets: true,
            drift_factor: DEFAULT_DRIFT_FACTOR,
        }
    }
}

/// The scripted attempt: waiting (registers the waiter, heard on the channel of `client`) or
/// fencing.
async fn acquire_script<C: ConnectionLike + Send>(
    conn: &mut C,
    req: &AcquireRequest<'_>,
    client: &str,
    try_: Try,
) -> StoreResult<Acquire> {
    let (waiter, lease, member, registered) = match req.waiter {
        Some(w) => (
            w.waiter.id.as_str(),
            millis(w.waiter.lease).max(1),
            protocol::registration(w.waiter, client),
            w.registered,
        ),
        None => ("", 0, String::new(), false),
    };
    let call = scripts::ACQUIRE
        .key(req.key)
        .key(Companion::waiters(req.key))
        .key(Companion::fence(req.key))
        .key(Companion::holder(req.key))
        .arg(req.token)
        .arg(req.expiry.as_millis())
        .arg(waiter)
        .arg(lease)
        .arg(if req.fencing { "1" } else { "0" })
        .arg(if try_ == Try::Retry { "1" } else { "0" })
        .arg(member)
        .arg(if registered { "1" } else { "0" })
        .arg(req.holder.unwrap_or(""));
    let touches = Touches {
        waiters: req.waiter.is_some(),
        fence: req.fencing,
    };
    let (granted, number): (i64, i64) = invoke(&call, conn, req.key, touches).await?;
    Ok(if granted == 1 {
        Acquire::Granted {
            fence: u64::try_from(number).ok().filter(|_| req.fencing),
        }
    } else {
        // PTTL: -2 no key (it just went), -1 no expiry (not ours to judge): unknown.
        Acquire::Held {
            pttl: u64::try_from(number).ok().map(Duration::from_millis),
        }
    })
}

/// What `status.lua` answers: state, pttl, fencing counter, waiters, holder label (bytes; empty
/// for none), the hold's start and the server's time (ms; -1 without a label).
type StatusReply = (i64, i64, i64, u64, Vec<u8>, i64, i64);

/// The holder label of a status reply, if it has one, with how long it has been held (both
/// times are the server's, so no clock of this host counts) and since when (server time).
fn held_by(label: &[u8], since: i64, now: i64) -> Option<(String, Duration, SystemTime)> {
    if label.is_empty() {
        return None;
    }
    let since = u64::try_from(since).ok()?;
    let now = u64::try_from(now).ok()?;
    // Labels are text; one written by another client that is not UTF-8 is shown with
    // replacement characters rather than failing the status.
    let label = String::from_utf8_lossy(label).into_owned();
    let held_for = Duration::from_millis(now.saturating_sub(since));
    Some((
        label,
        held_for,
        SystemTime::UNIX_EPOCH + Duration::from_millis(since),
    ))
}

/// The companion keys a script call reads or writes, besides the lock key.
#[derive(Debug, Clone, Copy)]
struct Touches {
    waiters: bool,
    fence: bool,
}

impl Touches {
    /// `release.lua` passes over a waiters key of another type, but reads the fencing counter
    /// when it gives the lock to a waiter that asked for a fencing token.
    const FENCE: Self = Self {
        waiters: false,
        fence: true,
    };
    const ALL: Self = Self {
        waiters: true,
        fence: true,
    };
}

/// Runs a script `call` on the lock at `key`. When Redis says a key holds the wrong type, the
/// error names which: the lock key, or the companion key (of those the call `touches`) that was
/// overwritten with another type (see [`invoke_expecting`]).
fn invoke<'a, T, C>(
    call: &'a scripts::Call<'_>,
    conn: &'a mut C,
    key: &'a str,
    touches: Touches,
) -> impl Future<Output = StoreResult<T>> + 'a
where
    T: redis::FromRedisValue + 'a,
    C: ConnectionLike + Send,
{
    invoke_expecting(call, conn, move || {
        let mut expected = vec![Expected::key(key, "string")];
        if touches.waiters {
            expected.push(Expected::companion(Companion::waiters(key), "zset"));
        }
        if touches.fence {
            expected.push(Expected::companion(Companion::fence(key), "string"));
        }
        expected
    })
}

/// A key a script may find holding a type it cannot use: its name, the type it must hold when
/// it exists, and whether an error names it in full (a companion, or another key of a
/// multi-key lock) rather than as the lock's own key.
pub(super) struct Expected {
    key: String,
    kind: &'static str,
    named: bool,
}

impl Expected {
    /// The lock's own key, which the error names as the caller gave it.
    pub(super) fn key(key: &str, kind: &'static str) -> Self {
        Self {
            key: key.to_owned(),
            kind,
            named: false,
        }
    }

    /// A key the error names in full.
    pub(super) fn companion(key: impl ToString, kind: &'static str) -> Self {
        Self {
            key: key.to_string(),
            kind,
            named: true,
        }
    }
}

/// Runs a script `call`. When Redis says a key holds the wrong type, one round trip (on that
/// path only) asks the `TYPE` of each key `expected` lists, and the error names the first that
/// holds another type than it must; `found` as Redis said it if none can be told.
#[allow(
    clippy::manual_async_fn,
    reason = "an `async fn` keeps each argument twice in its future"
)]
pub(super) fn invoke_expecting<'a, T, C>(
    call: &'a scripts::Call<'_>,
    conn: &'a mut C,
    expected: impl FnOnce() -> Vec<Expected> + Send + 'a,
) -> impl Future<Output = StoreResult<T>> + 'a
where
    T: redis::FromRedisValue + 'a,
    C: ConnectionLike + Send,
{
    async move {
        match call.invoke_async(conn).await.map_err(StoreError::from) {
            // Boxed: the diagnosis is rare, and would otherwise enlarge every call's future.
            Err(StoreError::WrongType { found, .. }) => {
                Err(Box::pin(wrong_type(conn, found, expected())).await)
            }
            other => other,
        }
    }
}

/// Which of `expected` holds a type it cannot use; `found` if none can be told.
async fn wrong_type<C: ConnectionLike + Send>(
    conn: &mut C,
    found: String,
    expected: Vec<Expected>,
) -> StoreError {
    let mut pipe = redis::pipe();
    for Expected { key, .. } in &expected {
        pipe.cmd("TYPE").arg(key);
    }
    let types: redis::RedisResult<Vec<String>> = pipe.query_async(conn).await;
    let types = types.unwrap_or_default();
    for (Expected { key, kind, named }, held) in expected.into_iter().zip(types) {
        if held != kind && held != "none" {
            return StoreError::WrongType {
                found: held,
                companion: named.then_some(key),
            };
        }
    }
    StoreError::WrongType {
        found,
        companion: None,
    }
}

/// The Node original's exact command: `SET key value EX seconds NX` (`PX` for milliseconds).
fn set_nx(req: &AcquireRequest<'_>) -> redis::Cmd {
    // Sized up front: one allocation for the arguments, one for their offsets.
    let size = req.key.len() + req.token.len() + 32;
    let mut cmd = redis::Cmd::with_capacity(6, size);
    cmd.arg("SET").arg(req.key).arg(req.token);
    match req.expiry {
        Expiry::Seconds(secs) => cmd.arg("EX").arg(secs),
        Expiry::Millis(millis) => cmd.arg("PX").arg(millis),
    };
    cmd.arg("NX");
    cmd
}

/// The release of the mutex at `key` held with `value`: `release.lua` (with its head).
fn release_call<'a>(key: &'a str, value: &'a str) -> scripts::Call<'static> {
    scripts::RELEASE
        .key(key)
        .key(Companion::waiters(key))
        .key(Companion::fence(key))
        .key(Companion::holder(key))
        .arg(value)
        .arg(millis(HANDOFF_RESERVATION))
}

/// The force release of `key`: `force_release.lua`.
fn force_release_call(key: &str) -> scripts::Call<'static> {
    scripts::FORCE_RELEASE
        .key(key)
        .key(Companion::waiters(key))
        .key(Companion::holder(key))
}

/// What a release script's `code` means, for the try it answered: on a retry, a lock no longer
/// held with the value was most likely released by the first try, whose answer was lost.
fn released(code: i64, try_: Try) -> Owned {
    match owned(code) {
        Owned::NotHeld | Owned::NotOwner if try_ == Try::Retry => Owned::Vanished,
        outcome => outcome,
    }
}

/// What a compare-and-something script returned: 1 done, 0 no key, -1 another value.
fn owned(code: i64) -> Owned {
    match code {
        1 => Owned::Done,
        0 => Owned::NotHeld,
        _ => Owned::NotOwner,
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
