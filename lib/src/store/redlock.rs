//! Redlock: one lock over N independent Redis masters, held when a majority holds it.
//!
//! Each primitive fans out to every node at once, each call bounded by the node timeout, and
//! counts the answers. A lock is granted when at least N/2 + 1 nodes granted it and time is left:
//! `ttl - elapsed - drift > 0`. A failed attempt is released on every node before the call
//! returns, so no node keeps a key of it.

use std::future::Future;
use std::time::Duration;

use futures_util::future::join_all;
use redis::aio::ConnectionLike;
use tokio::time::Instant;

use super::listen::Listener;
use super::redis_store::connect::{self, Connect};
use super::{
    Acquire, AcquireRequest, Owned, Reply, SetStatus, Shape, Store, StoreError, StoreResult,
    Traits, Waiter, bounded, not_kept,
};
use crate::drift::drift;
use crate::error::{InvalidInput, Result};
use crate::status::{LockState, LockStatus};

/// Default time a Redlock node may take to answer before it counts as failed: 50 ms, the upper
/// end of what the Redlock description suggests for a 10 s lease.
pub const DEFAULT_NODE_TIMEOUT: Duration = Duration::from_millis(50);

/// What the builder tells a Redlock store, besides its nodes' connections.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RedlockOptions {
    /// How long a node may take to answer before it counts as failed.
    pub(crate) node_timeout: Duration,
    /// The clock-drift margin, as a share of the ttl.
    pub(crate) drift_factor: f64,
}

impl Default for RedlockOptions {
    fn default() -> Self {
        Self {
            node_timeout: DEFAULT_NODE_TIMEOUT,
            drift_factor: crate::drift::DEFAULT_DRIFT_FACTOR,
        }
    }
}

impl RedlockOptions {
    /// Checks that the options are in range.
    pub(crate) fn validate(&self) -> Result<()> {
        let bad = |name, reason| Err(InvalidInput::Setting { name, reason }.into());
        if self.node_timeout.is_zero() {
            return bad("redlock_node_timeout", "must be above zero");
        }
        if !(0.0..0.5).contains(&self.drift_factor) {
            return bad("drift_factor", "must be at least 0 and below 0.5");
        }
        Ok(())
    }
}

pub(crate) struct RedlockStore {
    nodes: Vec<Box<dyn Store>>,
    options: RedlockOptions,
    /// The command timeout: no call takes longer.
    timeout: Duration,
}

impl RedlockStore {
    /// A Redlock store over independent masters, one URL each (all TLS or all plain), each on
    /// a reconnecting connection.
    pub(crate) fn from_urls(
        urls: &[&str],
        connect: &Connect,
        options: RedlockOptions,
    ) -> Result<Self> {
        if urls.is_empty() {
            return Err(InvalidInput::Url("Redlock needs at least one node URL".into()).into());
        }
        let tls = urls.iter().filter(|u| u.starts_with("rediss://")).count();
        if tls != 0 && tls != urls.len() {
            return Err(InvalidInput::Url(
                "Redlock nodes mix TLS (rediss://) and plain URLs; use one kind".into(),
            )
            .into());
        }
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(InvalidInput::NoRuntime.into());
        }
        let nodes = urls
            .iter()
            .map(|url| Ok(Box::new(connect::redlock_node(url, connect)?) as Box<dyn Store>))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self::new(nodes, connect, options))
    }

    /// A Redlock store over the caller's own connections, one per independent master.
    pub(crate) fn on_connections<C>(
        conns: Vec<C>,
        connect: &Connect,
        options: RedlockOptions,
    ) -> Result<Self>
    where
        C: ConnectionLike + Clone + Send + Sync + 'static,
    {
        if conns.is_empty() {
            return Err(InvalidInput::Url("Redlock needs at least one node".into()).into());
        }
        let nodes = conns
            .into_iter()
            .map(|conn| Box::new(connect::redlock_node_on(conn, connect)) as Box<dyn Store>)
            .collect();
        Ok(Self::new(nodes, connect, options))
    }

    fn new(nodes: Vec<Box<dyn Store>>, connect: &Connect, options: RedlockOptions) -> Self {
        Self {
            nodes,
            options,
            timeout: connect.command_timeout,
        }
    }

    /// A majority: N/2 + 1.
    fn quorum(&self) -> usize {
        self.nodes.len() / 2 + 1
    }

    /// Runs `call` on every node at once, each bounded by the node timeout.
    async fn on_all<'a, T>(
        &'a self,
        call: impl Fn(&'a dyn Store) -> Reply<'a, T>,
    ) -> Vec<StoreResult<T>> {
        join_all(self.nodes.iter().map(|node| {
            let fut = call(node.as_ref());
            async move {
                match tokio::time::timeout(self.options.node_timeout, fut).await {
                    Ok(result) => result,
                    Err(_elapsed) => Err(StoreError::from(timed_out())),
                }
            }
        }))
        .await
    }

    /// The error for too few answers: the nodes that agreed, the majority, a node's error.
    fn quorum_error(&self, granted: usize, results: Vec<StoreError>) -> StoreError {
        StoreError::Quorum {
            granted,
            needed: self.quorum(),
            source: results.into_iter().find_map(|err| match err {
                StoreError::Redis(err) => Some(err),
                StoreError::Unavailable { source, .. } | StoreError::Quorum { source, .. } => {
                    source
                }
                StoreError::WrongType { .. } => None,
            }),
        }
    }

    /// Runs one Redlock operation within the command timeout.
    fn call<'a, T: Send + 'a>(
        &'a self,
        fut: impl Future<Output = StoreResult<T>> + Send + 'a,
    ) -> Reply<'a, T> {
        Box::pin(bounded(self.timeout, fut))
    }
}

/// A node's missing answer, as the error redis-rs gives for its own timeouts.
fn timed_out() -> redis::RedisError {
    redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::TimedOut))
}

/// The node status to report the holder label from: of the label that at least `quorum` of the
/// `held` nodes report (each node reports a label only while its key holds the value the label
/// was written with), the node that has held it the shortest (so "held for" is never
/// overstated). `None` when no label has a majority.
fn agreed_holder<'s>(held: &[&'s LockStatus], quorum: usize) -> Option<&'s LockStatus> {
    held.iter().copied().find_map(|status| {
        let label = status.holder.as_ref()?;
        let agreeing = held
            .iter()
            .filter(|other| other.holder.as_ref() == Some(label));
        if agreeing.clone().count() < quorum {
            return None;
        }
        agreeing.copied().min_by_key(|other| other.held_for)
    })
}

/// Splits results into the values and the errors.
fn split<T>(results: Vec<StoreResult<T>>) -> (Vec<T>, Vec<StoreError>) {
    let mut values = Vec::new();
    let mut errors = Vec::new();
    for result in results {
        match result {
            Ok(value) => values.push(value),
            Err(err) => errors.push(err),
        }
    }
    (values, errors)
}

impl Store for RedlockStore {
    fn acquire<'a>(&'a self, req: AcquireRequest<'a>) -> Reply<'a, Acquire> {
        self.call(async move {
            let started = Instant::now();
            // Plain SET NX on each node: no waiter registration (waiters poll), no fencing. A
            // holder label goes to each node with the lock (the script's attempt there).
            let attempt = AcquireRequest {
                waiter: None,
                fencing: false,
                probe: true,
                ..req
            };
            let (answers, errors) = split(self.on_all(|node| node.acquire(attempt)).await);
            let granted = answers
                .iter()
                .filter(|a| matches!(a, Acquire::Granted { .. }))
                .count();
            let held = answers
                .iter()
                .filter(|a| matches!(a, Acquire::Held { .. }))
                .count();
            let ttl = req.expiry.as_duration();
            let in_time = ttl > started.elapsed() + drift(ttl, self.options.drift_factor);
            if granted >= self.quorum() && in_time {
                return Ok(Acquire::Granted { fence: None });
            }
            // Not granted: take back what was granted, on every node (a node that timed out
            // may still apply the SET; this release then follows it on the same connection).
            let _ = self
                .on_all(|node| node.release(req.key, req.token, req.shape))
                .await;
            if granted >= self.quorum() {
                // A majority, but too late to be worth anything.
                return Err(StoreError::timeout(self.timeout));
            }
            if held > 0 {
                return Ok(Acquire::Held { pttl: None });
            }
            Err(self.quorum_error(granted, errors))
        })
    }

    fn release<'a>(&'a self, key: &'a str, value: &'a str, shape: &'a Shape) -> Reply<'a, Owned> {
        self.call(async move {
            let (answers, errors) =
                split(self.on_all(|node| node.release(key, value, shape)).await);
            if answers.contains(&Owned::Done) {
                return Ok(Owned::Done);
            }
            // Only retries found the lock gone after tries whose answers were lost: the guard
            // judges that by its lease, as on one Redis.
            if answers.contains(&Owned::Vanished) {
                return Ok(Owned::Vanished);
            }
            if answers.is_empty() {
                return Err(self.quorum_error(0, errors));
            }
            Ok(if answers.contains(&Owned::NotOwner) {
                Owned::NotOwner
            } else {
                Owned::NotHeld
            })
        })
    }

    fn extend<'a>(
        &'a self,
        key: &'a str,
        value: &'a str,
        ttl: Duration,
        shape: &'a Shape,
    ) -> Reply<'a, Owned> {
        self.call(async move {
            let (answers, errors) = split(
                self.on_all(|node| node.extend(key, value, ttl, shape))
                    .await,
            );
            let extended = answers.iter().filter(|a| **a == Owned::Done).count();
            if extended >= self.quorum() {
                return Ok(Owned::Done);
            }
            if answers.len() < self.quorum() {
                // Errors kept the majority from answering: the lease may still hold.
                return Err(self.quorum_error(extended, errors));
            }
            Ok(if answers.contains(&Owned::NotOwner) {
                Owned::NotOwner
            } else {
                Owned::NotHeld
            })
        })
    }

    fn force_release<'a>(&'a self, key: &'a str) -> Reply<'a, bool> {
        self.call(async move {
            let (answers, errors) = split(self.on_all(|node| node.force_release(key)).await);
            if answers.is_empty() {
                return Err(self.quorum_error(0, errors));
            }
            Ok(answers.contains(&true))
        })
    }

    fn get<'a>(&'a self, key: &'a str) -> Reply<'a, Option<String>> {
        self.call(async move {
            let (answers, errors) = split(self.on_all(|node| node.get(key)).await);
            if answers.len() < self.quorum() {
                return Err(self.quorum_error(answers.len(), errors));
            }
            // The value a majority holds, if any.
            Ok(answers.iter().flatten().find_map(|value| {
                let holders = answers
                    .iter()
                    .filter(|other| other.as_deref() == Some(value.as_str()))
                    .count();
                (holders >= self.quorum()).then(|| value.clone())
            }))
        })
    }

    fn status<'a>(&'a self, key: &'a str) -> Reply<'a, LockStatus> {
        self.call(async move {
            let (answers, errors) = split(self.on_all(|node| node.status(key)).await);
            if answers.len() < self.quorum() {
                return Err(self.quorum_error(answers.len(), errors));
            }
            let held: Vec<&LockStatus> = answers
                .iter()
                .filter(|s| s.state == LockState::Held)
                .collect();
            let majority = held.len() >= self.quorum();
            let labelled = agreed_holder(&held, self.quorum()).filter(|_| majority);
            Ok(LockStatus {
                state: if majority {
                    LockState::Held
                } else {
                    LockState::Free
                },
                ttl: held.iter().filter_map(|s| s.ttl).min().filter(|_| majority),
                fencing_counter: None,
                waiters: 0,
                holder: labelled.and_then(|s| s.holder.clone()),
                held_for: labelled.and_then(|s| s.held_for),
                held_since: labelled.and_then(|s| s.held_since),
            })
        })
    }

    fn set_status<'a>(&'a self, _key: &'a str) -> Reply<'a, SetStatus> {
        // Refused before any call (see `Traits::lease_sets`).
        not_kept("semaphores or read-write locks")
    }

    fn cancel_wait<'a>(
        &'a self,
        _key: &'a str,
        _waiter: &'a Waiter,
        _shape: &'a Shape,
    ) -> Reply<'a, ()> {
        Box::pin(std::future::ready(Ok(())))
    }

    fn listen(&self, _key: &str, _waiter: &str) -> Option<Listener> {
        // Waiters poll (with the holder's expiry as a bound): a release on N nodes is not one
        // event to announce.
        None
    }

    fn traits(&self) -> Traits {
        Traits {
            name: "redlock",
            fencing: false,
            lease_sets: false,
            drift_factor: self.options.drift_factor,
        }
    }

    fn check_key(&self, key: &str) -> std::result::Result<(), InvalidInput> {
        self.nodes.iter().try_for_each(|node| node.check_key(key))
    }

    fn check_value(&self, value: &str) -> std::result::Result<(), InvalidInput> {
        self.nodes
            .iter()
            .try_for_each(|node| node.check_value(value))
    }
}
