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
use std::time::Duration;

use redis::Value;
use redis::aio::ConnectionLike;

use super::{
    Acquire, AcquireRequest, Expiry, Owned, Releases, Reply, Store, StoreError, StoreResult,
    Traits, bounded,
};
use crate::drift::DEFAULT_DRIFT_FACTOR;
use crate::error::{InvalidInput, UnavailableReason};
use crate::status::{LockState, LockStatus};
use protocol::{Companions, HANDOFF_RESERVATION, RELEASED_CHANNEL, waiters_key};
use wake::{WakeHub, WakeSource};

pub(crate) mod connect;
mod protocol;
mod scripts;
#[cfg(feature = "sentinel")]
mod sentinel;
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
        }
    }
}

impl<C> RedisStore<C>
where
    C: ConnectionLike + Clone + Send + Sync + 'static,
{
    /// Runs `work` on a clone of the connection, within the command timeout. A timeout the
    /// connection reports itself is reported as the command timeout.
    ///
    /// The two cases are two futures: a call on a connection that bounds its calls itself
    /// (the usual case) carries no timer, which keeps its allocation small.
    fn call<'a, T, F>(&'a self, work: impl FnOnce(C) -> F + Send + 'a) -> Reply<'a, T>
    where
        T: Send + 'a,
        F: Future<Output = StoreResult<T>> + Send + 'a,
    {
        let conn = self.conn.clone();
        let timeout = self.timeout;
        if self.bounded {
            Box::pin(async move {
                work(conn)
                    .await
                    .map_err(|err| as_command_timeout(err, timeout))
            })
        } else {
            Box::pin(async move {
                let result = bounded(timeout, work(conn)).await;
                result.map_err(|err| as_command_timeout(err, timeout))
            })
        }
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
        self.call(move |mut conn| async move {
            if req.waiter.is_some() || req.fencing {
                return acquire_script(&mut conn, req).await;
            }
            // The Node original's exact command: SET key value EX seconds NX (PX for
            // milliseconds).
            let mut cmd = redis::cmd("SET");
            cmd.arg(req.key).arg(req.token);
            match req.expiry {
                Expiry::Seconds(secs) => cmd.arg("EX").arg(secs),
                Expiry::Millis(millis) => cmd.arg("PX").arg(millis),
            };
            cmd.arg("NX");
            if cmd.query_async::<Value>(&mut conn).await? != Value::Nil {
                return Ok(Acquire::Granted { fence: None });
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
    }

    fn release<'a>(&'a self, key: &'a str, value: &'a str) -> Reply<'a, Owned> {
        self.call(move |mut conn| async move {
            let code: i64 = hand_off(&scripts::RELEASE, key, value)
                .invoke_async(&mut conn)
                .await?;
            Ok(owned(code))
        })
    }

    fn extend<'a>(&'a self, key: &'a str, value: &'a str, ttl: Duration) -> Reply<'a, Owned> {
        self.call(move |mut conn| async move {
            let code: i64 = scripts::EXTEND
                .key(key)
                .arg(value)
                .arg(Expiry::from_duration(ttl).as_millis())
                .invoke_async(&mut conn)
                .await?;
            Ok(owned(code))
        })
    }

    fn force_release<'a>(&'a self, key: &'a str) -> Reply<'a, bool> {
        self.call(move |mut conn| async move {
            let deleted: i64 = scripts::FORCE_RELEASE
                .key(key)
                .key(waiters_key(key))
                .arg(RELEASED_CHANNEL)
                .invoke_async(&mut conn)
                .await?;
            Ok(deleted > 0)
        })
    }

    fn get<'a>(&'a self, key: &'a str) -> Reply<'a, Option<String>> {
        self.call(move |mut conn| async move {
            let bytes: Option<Vec<u8>> = redis::cmd("GET").arg(key).query_async(&mut conn).await?;
            // Locks are strings; a value that is not UTF-8 (written by another client) is shown
            // with replacement characters rather than failing the read.
            Ok(bytes.map(|bytes| {
                String::from_utf8(bytes)
                    .unwrap_or_else(|err| String::from_utf8_lossy(err.as_bytes()).into_owned())
            }))
        })
    }

    fn status<'a>(&'a self, key: &'a str) -> Reply<'a, LockStatus> {
        self.call(move |mut conn| async move {
            let companions = Companions::of(key);
            let (state, pttl, fence, waiters): (i64, i64, i64, u64) = scripts::STATUS
                .key(key)
                .key(companions.waiters)
                .key(companions.fence)
                .invoke_async(&mut conn)
                .await?;
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
            })
        })
    }

    fn cancel_wait<'a>(&'a self, key: &'a str, waiter: &'a str) -> Reply<'a, ()> {
        self.call(move |mut conn| async move {
            let _: i64 = hand_off(&scripts::CANCEL_WAIT, key, waiter)
                .invoke_async(&mut conn)
                .await?;
            Ok(())
        })
    }

    fn releases(&self) -> Option<Releases> {
        self.wake.as_ref().and_then(WakeHub::subscribe)
    }

    fn wait_replicas<'a>(&'a self, replicas: u32, timeout: Duration) -> Reply<'a, Option<u32>> {
        self.call(move |mut conn| async move {
            let acked: u32 = redis::cmd("WAIT")
                .arg(replicas)
                .arg(millis(timeout).max(1))
                .query_async(&mut conn)
                .await?;
            Ok(Some(acked))
        })
    }

    fn check_key(&self, key: &str) -> Result<(), InvalidInput> {
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
            drift_factor: DEFAULT_DRIFT_FACTOR,
        }
    }
}

/// The scripted attempt: waiting (registers the waiter) or fencing.
async fn acquire_script<C: ConnectionLike + Send>(
    conn: &mut C,
    req: AcquireRequest<'_>,
) -> StoreResult<Acquire> {
    let (waiter, lease) = match req.waiter {
        Some(w) => (w.id, millis(w.lease).max(1)),
        None => ("", 0),
    };
    let companions = Companions::of(req.key);
    let (granted, number): (i64, i64) = scripts::ACQUIRE
        .key(req.key)
        .key(companions.waiters)
        .key(companions.fence)
        .arg(req.token)
        .arg(req.expiry.as_millis())
        .arg(waiter)
        .arg(lease)
        .arg(if req.fencing { "1" } else { "0" })
        .invoke_async(conn)
        .await?;
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

/// A call of a script that may hand the lock at `key` to a waiter (`release.lua`,
/// `cancel_wait.lua`): the lock and its waiters, `id` (the caller's value or waiter id), and the
/// reservation and channel of the hand-off.
fn hand_off<'s>(script: &'s scripts::LuaScript, key: &str, id: &str) -> scripts::Call<'s> {
    script
        .key(key)
        .key(waiters_key(key))
        .arg(id)
        .arg(millis(HANDOFF_RESERVATION))
        .arg(RELEASED_CHANNEL)
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
