//! The Redis store: the primitives over any redis-rs async connection, plus release wake-ups
//! over pub/sub when it has a client to open a subscriber connection with.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures_util::StreamExt;
use redis::aio::ConnectionLike;
use redis::{RedisResult, Value};
use tokio::sync::broadcast;

use super::{
    Acquire, AcquireRequest, BoxFuture, Expiry, Owned, Releases, Store, StoreResult, aux_key,
};
use crate::scripts::{self, RELEASED_CHANNEL};
use crate::status::{LockState, LockStatus};

/// How long a released lock stays reserved for the waiter it was handed to. A woken waiter takes
/// it within a round trip; the reservation only matters when that waiter has died, and then it
/// delays the next taker by at most this much.
pub(crate) const HANDOFF_RESERVATION: Duration = Duration::from_millis(200);

const WAITERS: &str = ":waiters";
const FENCE: &str = ":fence";

/// A store over a cloneable redis-rs connection (multiplexed, `ConnectionManager`, cluster).
/// Each call works on its own clone, so calls run concurrently on one multiplexed connection.
pub(crate) struct RedisStore<C> {
    conn: C,
    wake: Option<WakeHub>,
    /// The connection fails a call that takes longer than the command timeout by itself.
    bounded: bool,
    /// A Redis Cluster connection: keys must keep their auxiliary keys in their slot.
    cluster: bool,
}

impl<C: 'static> RedisStore<C> {
    /// A store; with `client`, waiters are woken over pub/sub on a connection of its own.
    /// `bounded` says the connection already fails calls after the command timeout; a
    /// `MultiplexedConnection` is made so here (on this store's copy of the handle).
    pub(crate) fn new(mut conn: C, wake: WakeSource, bounded: bool, timeout: Duration) -> Self {
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
            wake: match wake {
                WakeSource::Clients(clients) if clients.is_empty() => None,
                WakeSource::None => None,
                source => Some(WakeHub::new(source)),
            },
            bounded,
            cluster,
        }
    }
}

impl<C> Store for RedisStore<C>
where
    C: ConnectionLike + Clone + Send + Sync + 'static,
{
    fn acquire<'a>(&'a self, req: AcquireRequest<'a>) -> BoxFuture<'a, StoreResult<Acquire>> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            if req.waiter.is_some() || req.fencing {
                return Ok(acquire_script(&mut conn, req).await?);
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

    fn release<'a>(&'a self, key: &'a str, value: &'a str) -> BoxFuture<'a, StoreResult<Owned>> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let code: i64 = scripts::RELEASE
                .key(key)
                .key(aux_key(key, WAITERS))
                .arg(value)
                .arg(HANDOFF_RESERVATION.as_millis() as u64)
                .arg(RELEASED_CHANNEL)
                .invoke_async(&mut conn)
                .await?;
            Ok(Owned::from_script(code))
        })
    }

    fn extend<'a>(
        &'a self,
        key: &'a str,
        value: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, StoreResult<Owned>> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let code: i64 = scripts::EXTEND
                .key(key)
                .arg(value)
                .arg(Expiry::from_duration(ttl).as_millis())
                .invoke_async(&mut conn)
                .await?;
            Ok(Owned::from_script(code))
        })
    }

    fn force_release<'a>(&'a self, key: &'a str) -> BoxFuture<'a, StoreResult<bool>> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let deleted: i64 = scripts::FORCE_RELEASE
                .key(key)
                .key(aux_key(key, WAITERS))
                .arg(RELEASED_CHANNEL)
                .invoke_async(&mut conn)
                .await?;
            Ok(deleted > 0)
        })
    }

    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, StoreResult<Option<String>>> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let bytes: Option<Vec<u8>> = redis::cmd("GET").arg(key).query_async(&mut conn).await?;
            // Locks are strings; a value that is not UTF-8 (written by another client) is shown
            // with replacement characters rather than failing the read.
            Ok::<_, super::StoreError>(bytes.map(|bytes| {
                String::from_utf8(bytes)
                    .unwrap_or_else(|err| String::from_utf8_lossy(err.as_bytes()).into_owned())
            }))
        })
    }

    fn status<'a>(&'a self, key: &'a str) -> BoxFuture<'a, StoreResult<LockStatus>> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let (state, pttl, fence, waiters): (i64, i64, i64, u64) = scripts::STATUS
                .key(key)
                .key(aux_key(key, WAITERS))
                .key(aux_key(key, FENCE))
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

    fn cancel_wait<'a>(&'a self, key: &'a str, waiter: &'a str) -> BoxFuture<'a, StoreResult<()>> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let _: i64 = scripts::CANCEL_WAIT
                .key(key)
                .key(aux_key(key, WAITERS))
                .arg(waiter)
                .arg(HANDOFF_RESERVATION.as_millis() as u64)
                .arg(RELEASED_CHANNEL)
                .invoke_async(&mut conn)
                .await?;
            Ok(())
        })
    }

    fn releases(&self) -> Option<Releases> {
        self.wake.as_ref().and_then(WakeHub::subscribe)
    }

    fn wait_replicas<'a>(
        &'a self,
        replicas: u32,
        timeout: Duration,
    ) -> BoxFuture<'a, StoreResult<Option<u32>>> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let acked: u32 = redis::cmd("WAIT")
                .arg(replicas)
                .arg(timeout.as_millis().max(1) as u64)
                .query_async(&mut conn)
                .await?;
            Ok(Some(acked))
        })
    }

    fn needs_timer(&self) -> bool {
        !self.bounded
    }

    fn check_key(&self, key: &str) -> Result<(), &'static str> {
        if self.cluster && !super::cluster_safe(key) {
            return Err(
                "in Redis Cluster a key with `}` needs a {hash tag}: its waiter and \
                        fencing keys must share its slot",
            );
        }
        Ok(())
    }
}

/// The scripted attempt: waiting (registers the waiter) or fencing.
async fn acquire_script<C: ConnectionLike + Send>(
    conn: &mut C,
    req: AcquireRequest<'_>,
) -> RedisResult<Acquire> {
    let (waiter, lease) = match req.waiter {
        Some(w) => (w.id, w.lease.as_millis().max(1) as u64),
        None => ("", 0),
    };
    let (granted, number): (i64, i64) = scripts::ACQUIRE
        .key(req.key)
        .key(aux_key(req.key, WAITERS))
        .key(aux_key(req.key, FENCE))
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

/// Where release announcements can be heard.
pub(crate) enum WakeSource {
    /// Nowhere: waiters poll.
    None,
    /// These nodes, in turn (one is enough; the next is for when it fails).
    Clients(Vec<redis::Client>),
    /// The current master of a Sentinel group, asked anew on each reconnection.
    #[cfg(feature = "sentinel")]
    Sentinel(crate::sentinel::SentinelConnection),
}

impl WakeSource {
    /// A client to subscribe with on attempt `attempt`.
    async fn client(&self, attempt: usize) -> Option<redis::Client> {
        match self {
            Self::None => None,
            Self::Clients(clients) => clients.get(attempt % clients.len().max(1)).cloned(),
            #[cfg(feature = "sentinel")]
            Self::Sentinel(sentinel) => sentinel.master_client().await.ok(),
        }
    }
}

/// Release announcements from Redis pub/sub: one subscriber connection per client, opened on
/// the first wait and kept (re-opened after it breaks, on the next node of a cluster or the new
/// master of a Sentinel group) until the client is dropped. In a cluster a PUBLISH reaches the
/// subscribers of every node, and replicas pass it on from their master.
struct WakeHub {
    source: Arc<WakeSource>,
    tx: broadcast::Sender<Arc<str>>,
    task: OnceLock<AbortOnDrop>,
}

impl WakeHub {
    fn new(source: WakeSource) -> Self {
        Self {
            source: Arc::new(source),
            tx: broadcast::channel(1024).0,
            task: OnceLock::new(),
        }
    }

    fn subscribe(&self) -> Option<Releases> {
        let rx = self.tx.subscribe();
        if self.task.get().is_none() {
            let runtime = tokio::runtime::Handle::try_current().ok()?;
            // One subscriber even when several waiters start at once.
            self.task.get_or_init(|| {
                let (source, tx) = (Arc::clone(&self.source), self.tx.clone());
                AbortOnDrop(runtime.spawn(subscriber(source, tx)).abort_handle())
            });
        }
        Some(rx)
    }
}

/// Aborts a task when dropped: the subscriber dies with its client.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Forwards release announcements to the hub; reconnects with a capped backoff, trying the
/// source's clients in turn.
async fn subscriber(source: Arc<WakeSource>, tx: broadcast::Sender<Arc<str>>) {
    let mut backoff = Duration::from_millis(50);
    for attempt in 0.. {
        let Some(client) = source.client(attempt).await else {
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(2));
            continue;
        };
        let connect = tokio::time::timeout(Duration::from_secs(5), client.get_async_pubsub());
        if let Ok(Ok(mut pubsub)) = connect.await
            && pubsub.subscribe(RELEASED_CHANNEL).await.is_ok()
        {
            backoff = Duration::from_millis(50);
            // Releases may have gone unheard while we were away: wake every waiter once ("").
            let _ = tx.send(Arc::from(""));
            let mut messages = pubsub.into_on_message();
            while let Some(message) = messages.next().await {
                let key = String::from_utf8_lossy(message.get_payload_bytes());
                let _ = tx.send(Arc::from(key.as_ref()));
            }
            tracing::debug!("release subscription lost; reconnecting");
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}
