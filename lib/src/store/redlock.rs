//! Redlock: one lock over N independent Redis masters, held when a majority holds it.
//!
//! Each primitive fans out to every node at once, each call bounded by the node timeout, and
//! counts the answers. A lock is granted when at least N/2 + 1 nodes granted it and time is left:
//! `ttl - elapsed - drift > 0`. A failed attempt is released on every node before the call
//! returns, so no node keeps a key of it.

use std::time::Duration;

use futures_util::future::join_all;
use redis::RedisError;
use tokio::time::Instant;

use super::{Acquire, AcquireRequest, BoxFuture, Owned, Releases, Store, StoreError, StoreResult};
use crate::status::{LockState, LockStatus};

pub(crate) struct RedlockStore {
    nodes: Vec<Box<dyn Store>>,
    node_timeout: Duration,
    drift_factor: f64,
}

impl RedlockStore {
    pub(crate) fn new(
        nodes: Vec<Box<dyn Store>>,
        node_timeout: Duration,
        drift_factor: f64,
    ) -> Self {
        Self {
            nodes,
            node_timeout,
            drift_factor,
        }
    }

    /// A majority: N/2 + 1.
    fn quorum(&self) -> usize {
        self.nodes.len() / 2 + 1
    }

    /// Runs `call` on every node at once, each bounded by the node timeout.
    async fn on_all<'a, T>(
        &'a self,
        call: impl Fn(&'a dyn Store) -> BoxFuture<'a, StoreResult<T>>,
    ) -> Vec<StoreResult<T>> {
        join_all(self.nodes.iter().map(|node| {
            let fut = call(node.as_ref());
            async move {
                match tokio::time::timeout(self.node_timeout, fut).await {
                    Ok(result) => result,
                    Err(_) => Err(StoreError::Redis(timed_out())),
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
                StoreError::Quorum { source, .. } => source,
            }),
        }
    }
}

fn timed_out() -> RedisError {
    RedisError::from(std::io::Error::from(std::io::ErrorKind::TimedOut))
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
    fn acquire<'a>(&'a self, req: AcquireRequest<'a>) -> BoxFuture<'a, StoreResult<Acquire>> {
        Box::pin(async move {
            let started = Instant::now();
            // Plain SET NX on each node: no waiter registration (waiters poll), no fencing.
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
            let in_time = ttl > started.elapsed() + crate::lease::drift(ttl, self.drift_factor);
            if granted >= self.quorum() && in_time {
                return Ok(Acquire::Granted { fence: None });
            }
            // Not granted: take back what was granted, on every node (a node that timed out
            // may still apply the SET; this release then follows it on the same connection).
            let _ = self.on_all(|node| node.release(req.key, req.token)).await;
            if granted >= self.quorum() {
                // A majority, but too late to be worth anything.
                return Err(StoreError::Redis(timed_out()));
            }
            if held > 0 {
                return Ok(Acquire::Held { pttl: None });
            }
            Err(self.quorum_error(granted, errors))
        })
    }

    fn release<'a>(&'a self, key: &'a str, value: &'a str) -> BoxFuture<'a, StoreResult<Owned>> {
        Box::pin(async move {
            let (answers, errors) = split(self.on_all(|node| node.release(key, value)).await);
            if answers.contains(&Owned::Done) {
                return Ok(Owned::Done);
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
    ) -> BoxFuture<'a, StoreResult<Owned>> {
        Box::pin(async move {
            let (answers, errors) = split(self.on_all(|node| node.extend(key, value, ttl)).await);
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

    fn force_release<'a>(&'a self, key: &'a str) -> BoxFuture<'a, StoreResult<bool>> {
        Box::pin(async move {
            let (answers, errors) = split(self.on_all(|node| node.force_release(key)).await);
            if answers.is_empty() {
                return Err(self.quorum_error(0, errors));
            }
            Ok(answers.contains(&true))
        })
    }

    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, StoreResult<Option<String>>> {
        Box::pin(async move {
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

    fn status<'a>(&'a self, key: &'a str) -> BoxFuture<'a, StoreResult<LockStatus>> {
        Box::pin(async move {
            let (answers, errors) = split(self.on_all(|node| node.status(key)).await);
            if answers.len() < self.quorum() {
                return Err(self.quorum_error(answers.len(), errors));
            }
            let held: Vec<&LockStatus> = answers
                .iter()
                .filter(|s| s.state == LockState::Held)
                .collect();
            let majority = held.len() >= self.quorum();
            Ok(LockStatus {
                state: if majority {
                    LockState::Held
                } else {
                    LockState::Free
                },
                ttl: held.iter().filter_map(|s| s.ttl).min().filter(|_| majority),
                fencing_counter: None,
                waiters: 0,
            })
        })
    }

    fn cancel_wait<'a>(
        &'a self,
        _key: &'a str,
        _waiter: &'a str,
    ) -> BoxFuture<'a, StoreResult<()>> {
        Box::pin(std::future::ready(Ok(())))
    }

    fn releases(&self) -> Option<Releases> {
        // Waiters poll (with the holder's expiry as a bound): a release on N nodes is not one
        // event to announce.
        None
    }

    fn supports_fencing(&self) -> bool {
        false
    }

    fn drift_factor(&self) -> f64 {
        self.drift_factor
    }
}
