//! Release wake-ups for the Redis store: one subscriber connection per client, listening on
//! [`RELEASED_CHANNEL`], its messages decoded into [`Release`] values and broadcast to the
//! waiters of this process.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::broadcast;

use super::protocol::{self, RELEASED_CHANNEL};
use crate::store::{Release, Releases};

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
    source: Arc<WakeSource>,
    tx: broadcast::Sender<Release>,
    task: OnceLock<AbortOnDrop>,
}

impl WakeHub {
    /// A hub for `source`, or `None` when it can hear nothing.
    pub(crate) fn new(source: WakeSource) -> Option<Self> {
        match source {
            WakeSource::None => None,
            WakeSource::Clients(ref clients) if clients.is_empty() => None,
            source => Some(Self {
                source: Arc::new(source),
                tx: broadcast::channel(1024).0,
                task: OnceLock::new(),
            }),
        }
    }

    /// A receiver of the announcements; starts the subscriber on first use.
    pub(crate) fn subscribe(&self) -> Option<Releases> {
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
async fn subscriber(source: Arc<WakeSource>, tx: broadcast::Sender<Release>) {
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
            // Releases may have gone unheard while we were away: wake every waiter once.
            let _ = tx.send(Release::MayHaveMissed);
            let mut messages = pubsub.into_on_message();
            while let Some(message) = messages.next().await {
                if let Some(release) = protocol::decode(message.get_payload_bytes()) {
                    let _ = tx.send(release);
                }
            }
            tracing::debug!("release subscription lost; reconnecting");
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}
