//! Release wake-ups for the Redis store: one subscriber connection per client, listening on
//! the client's own channel (hand-offs to its waiters) and on [`RELEASED_CHANNEL`] (keys freed
//! for all), its messages decoded and delivered to the one waiter of this process they
//! concern.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures_util::StreamExt;

use super::protocol::{self, Announcement, RELEASED_CHANNEL, WAKE_PREFIX};
use crate::store::listen::{Board, Listener, Wake};

/// Where release announcements can be heard.
pub(crate) enum WakeSource {
    /// Nowhere: waiters poll.
    None,
    /// These nodes, in turn (one is enough; the next is for when it fails).
    Clients(Vec<redis::Client>),
    /// The current master of a Sentinel group, asked anew on each reconnection.
    #[cfg(feature = "sentinel")]
    Sentinel(super::sentinel::SentinelConnection),
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
pub(crate) struct WakeHub {
    shared: Arc<Shared>,
    task: OnceLock<AbortOnDrop>,
}

/// What the hub and its subscriber task share.
struct Shared {
    source: WakeSource,
    /// This client's id, random: its waiters register with it, and releases announce their
    /// hand-offs on its channel.
    id: String,
    board: Arc<Board>,
}

impl WakeHub {
    /// A hub for `source`, or `None` when it can hear nothing.
    pub(crate) fn new(source: WakeSource) -> Option<Self> {
        match source {
            WakeSource::None => None,
            WakeSource::Clients(ref clients) if clients.is_empty() => None,
            source => Some(Self {
                shared: Arc::new(Shared {
                    source,
                    id: client_id(),
                    board: Arc::new(Board::default()),
                }),
                task: OnceLock::new(),
            }),
        }
    }

    /// The id this client's waiters register with.
    pub(crate) fn id(&self) -> &str {
        &self.shared.id
    }

    /// A listener for the waiter `waiter` on the wire key `key`; starts the subscriber on
    /// first use.
    pub(crate) fn listen(&self, key: &str, waiter: &str) -> Option<Listener> {
        if self.task.get().is_none() {
            let runtime = tokio::runtime::Handle::try_current().ok()?;
            // One subscriber even when several waiters start at once.
            self.task.get_or_init(|| {
                let shared = Arc::clone(&self.shared);
                AbortOnDrop(runtime.spawn(subscriber(shared)).abort_handle())
            });
        }
        Some(self.shared.board.listen(key, waiter))
    }
}

/// A fresh client id: 16 hex digits of OS randomness (a fixed one if the OS has none: ids
/// only keep clients' wake-ups apart, they guard nothing).
fn client_id() -> String {
    let mut bytes = [0u8; 8];
    let _ = getrandom::fill(&mut bytes);
    format!("{:016x}", u64::from_ne_bytes(bytes))
}

/// Aborts a task when dropped: the subscriber dies with its client.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Delivers announcements to the hub's waiters; reconnects with a capped backoff, trying the
/// source's clients in turn.
async fn subscriber(shared: Arc<Shared>) {
    let own = format!("{WAKE_PREFIX}{}", shared.id);
    let mut backoff = Duration::from_millis(50);
    let mut warned = false;
    for attempt in 0.. {
        let Some(client) = shared.source.client(attempt).await else {
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(2));
            continue;
        };
        let connect = tokio::time::timeout(Duration::from_secs(5), client.get_async_pubsub());
        if let Ok(Ok(mut pubsub)) = connect.await
            && pubsub.subscribe(RELEASED_CHANNEL).await.is_ok()
        {
            backoff = Duration::from_millis(50);
            if let Err(err) = pubsub.subscribe(&own).await
                && !warned
            {
                // An ACL without the channel: releases then reserve the lock for our waiters,
                // which find it by polling.
                tracing::warn!(error = %err, "cannot listen for hand-offs on {WAKE_PREFIX}*; waiters will poll");
                warned = true;
            }
            // Releases may have gone unheard while we were away: wake every waiter once.
            shared.board.retry_all();
            let mut messages = pubsub.into_on_message();
            while let Some(message) = messages.next().await {
                match protocol::decode(message.get_payload_bytes()) {
                    Some(Announcement::Granted { waiter, fence }) => {
                        shared.board.deliver(&waiter, Wake::Granted { fence });
                    }
                    Some(Announcement::Reserved(waiter)) => {
                        shared.board.deliver(&waiter, Wake::Retry);
                    }
                    Some(Announcement::Freed(key)) => shared.board.retry_key(&key),
                    None => {}
                }
            }
            tracing::debug!("release subscription lost; reconnecting");
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}
