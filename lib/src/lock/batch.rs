//! Seed calls in a batch: several `lock_key`, `release_lock` and `get_lock` calls checked,
//! logged, counted and answered each as its own call is, but sent together, so a store that can
//! pipeline them (one Redis server) spends one round trip and one command timeout on the lot.

use std::borrow::Cow;
use std::sync::Arc;

use tokio::time::Instant;
use tracing::Instrument;

use super::attempt::Outcome;
use super::cleanup::Leftovers;
use super::meter::{Acquired, Primitive};
use super::params::{LockParams, ReleaseParams};
use super::{Core, Op, mismatch};
use crate::error::{LockError, Result};
use crate::store::{AcquireRequest, Expiry, SeedAnswer, SeedOp, Shape, StoreResult};

/// One call of a batch ([`RedisLock::batch`](crate::RedisLock::batch)): the seed API's
/// `lock_key`, `release_lock` or `get_lock`, with the same parameters.
///
/// # Examples
///
/// ```
/// use ac_redislock::{BatchCall, LockParams, ReleaseParams};
///
/// let calls = [
///     BatchCall::Lock(LockParams::new("jobs:1")),
///     BatchCall::Release(ReleaseParams::new("jobs:0").value("token-of-jobs-0")),
///     BatchCall::Get("jobs:2".to_owned()),
/// ];
/// assert_eq!(calls.len(), 3);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum BatchCall {
    /// [`RedisLock::lock_key`](crate::RedisLock::lock_key).
    Lock(LockParams),
    /// [`RedisLock::release_lock`](crate::RedisLock::release_lock).
    Release(ReleaseParams),
    /// [`RedisLock::get_lock`](crate::RedisLock::get_lock), of this key.
    Get(String),
}

/// What one call of a batch returned, as its own method returns it.
///
/// # Examples
///
/// ```
/// use ac_redislock::BatchOutput;
///
/// let answer = BatchOutput::Lock("token".to_owned());
/// if let BatchOutput::Lock(value) = &answer {
///     assert_eq!(value, "token");
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BatchOutput {
    /// A `Lock` call took the lock: the value stored (given, or the generated token).
    Lock(String),
    /// A `Release` call released the lock (or found a mismatch it was told to suppress).
    Release,
    /// A `Get` call's value: what the key holds, `None` when no one holds it.
    Get(Option<String>),
}

/// A call of a batch, checked: what it sends and what its answer needs.
enum Checked<'k> {
    Lock {
        key: &'k str,
        wire: Cow<'k, str>,
        value: String,
        generated: bool,
        expiry: Expiry,
    },
    Release {
        key: &'k str,
        wire: Cow<'k, str>,
        value: String,
        suppress: bool,
    },
    ForceRelease {
        key: &'k str,
        wire: Cow<'k, str>,
    },
    Get {
        key: &'k str,
        wire: Cow<'k, str>,
    },
}

impl Checked<'_> {
    /// What the store is asked.
    fn op(&self) -> SeedOp<'_> {
        match self {
            Self::Lock {
                wire,
                value,
                expiry,
                ..
            } => SeedOp::Lock(AcquireRequest {
                key: wire,
                shape: &Shape::Mutex,
                token: value,
                expiry: *expiry,
                waiter: None,
                fencing: false,
                holder: None,
                probe: false,
            }),
            Self::Release { wire, value, .. } => SeedOp::Release { key: wire, value },
            Self::ForceRelease { wire, .. } => SeedOp::ForceRelease { key: wire },
            Self::Get { wire, .. } => SeedOp::Get { key: wire },
        }
    }

    /// The call it is, as [`Core::call`] names it (which a closed client refuses).
    fn kind(&self) -> Op {
        match self {
            Self::Lock { .. } => Op::Attempt,
            Self::Release { .. } => Op::Release,
            Self::ForceRelease { .. } => Op::ForceRelease,
            Self::Get { .. } => Op::Get,
        }
    }
}

impl Core {
    /// Runs the seed calls `calls` as one batch (one `lock.batch` span); the answers come in
    /// the calls' order.
    pub(crate) async fn batch(self: &Arc<Self>, calls: &[BatchCall]) -> Vec<Result<BatchOutput>> {
        let span = tracing::info_span!("lock.batch", calls = calls.len());
        self.batch_in(calls).instrument(span).await
    }

    async fn batch_in(self: &Arc<Self>, calls: &[BatchCall]) -> Vec<Result<BatchOutput>> {
        // Checked first, as each call checks its input before any I/O: each call's place is
        // its index among those sent, or its error.
        let mut sent: Vec<Checked<'_>> = Vec::with_capacity(calls.len());
        let places: Vec<Result<usize>> = calls
            .iter()
            .map(|call| {
                let checked = self.check(call)?;
                self.open_for(checked.kind())?;
                sent.push(checked);
                Ok(sent.len() - 1)
            })
            .collect();
        let ops: Vec<SeedOp<'_>> = sent.iter().map(Checked::op).collect();
        // The locks' cleanups, armed while their answer is out: a lock whose answer never
        // comes (timeout, lost connection, this future dropped) is released in the background
        // if it holds a token generated here, as `lock_key` does.
        let mut leftovers: Vec<Option<Leftovers<'_>>> = sent
            .iter()
            .map(|checked| match checked {
                Checked::Lock {
                    key,
                    wire,
                    value,
                    generated,
                    expiry,
                } => {
                    let mut leftovers = Leftovers::at(self, key, wire, expiry.as_duration())
                        .ours(generated.then_some(value.as_str()));
                    leftovers.in_flight = true;
                    Some(leftovers)
                }
                _ => None,
            })
            .collect();
        let began = Instant::now();
        let mut answers: Vec<Option<StoreResult<SeedAnswer>>> = if ops.is_empty() {
            Vec::new()
        } else {
            self.store()
                .seed_batch(&ops)
                .await
                .into_iter()
                .map(Some)
                .collect()
        };
        places
            .into_iter()
            .map(|place| {
                let i = place?;
                let answer = answers
                    .get_mut(i)
                    .and_then(Option::take)
                    .unwrap_or_else(|| {
                        Err(crate::store::StoreError::timeout(
                            self.config().command_timeout,
                        ))
                    });
                self.answer(&sent[i], &ops[i], leftovers[i].take(), answer, began)
            })
            .collect()
    }

    /// Checks one call as its own method does, before any I/O.
    fn check<'k>(&self, call: &'k BatchCall) -> Result<Checked<'k>> {
        Ok(match call {
            BatchCall::Lock(params) => {
                let (wire, expiry, value, generated) =
                    self.lock_input(&params.key, params.expires, params.value.clone())?;
                Checked::Lock {
                    key: &params.key,
                    wire,
                    value,
                    generated,
                    expiry,
                }
            }
            BatchCall::Release(params) => {
                let wire = self.wire_key(&params.key)?;
                match &params.value {
                    None => Checked::ForceRelease {
                        key: &params.key,
                        wire,
                    },
                    Some(value) => {
                        self.check_value(value)?;
                        Checked::Release {
                            key: &params.key,
                            wire,
                            value: value.clone(),
                            suppress: params
                                .suppress_mismatch
                                .unwrap_or(self.config().suppress_mismatch),
                        }
                    }
                }
            }
            BatchCall::Get(key) => Checked::Get {
                key,
                wire: self.wire_key(key)?,
            },
        })
    }

    /// One call's result from its store answer, as its own method makes it.
    fn answer(
        &self,
        checked: &Checked<'_>,
        op: &SeedOp<'_>,
        leftovers: Option<Leftovers<'_>>,
        answer: StoreResult<SeedAnswer>,
        began: Instant,
    ) -> Result<BatchOutput> {
        match checked {
            Checked::Lock { key, value, .. } => {
                let (SeedOp::Lock(req), Some(mut leftovers)) = (op, leftovers) else {
                    return Err(mismatched());
                };
                let answer = match answer {
                    Ok(SeedAnswer::Lock(acquire)) => Ok(acquire),
                    Ok(_) => Err(mismatched()),
                    Err(err) => Err(self.failed(Op::Attempt, key, err)),
                };
                let result = match self.answered(key, req, began, answer, false, &mut leftovers) {
                    Ok(Outcome::Granted { .. }) => {
                        leftovers.settle();
                        Ok(BatchOutput::Lock(value.clone()))
                    }
                    Ok(Outcome::Held { .. }) => Err(LockError::Locked {
                        key: (*key).to_owned(),
                    }),
                    Err(err) => Err(err),
                };
                let outcome = Acquired::of(&result, false);
                self.meter()
                    .acquired(Primitive::Lock, key, outcome, began.elapsed());
                result
            }
            Checked::Release { key, suppress, .. } => match answer {
                Ok(SeedAnswer::Release(owned)) => {
                    mismatch(Op::Release, key, owned, *suppress, *suppress)
                        .map(|()| BatchOutput::Release)
                }
                Ok(_) => Err(mismatched()),
                Err(err) => Err(self.failed(Op::Release, key, err)),
            },
            Checked::ForceRelease { key, .. } => match answer {
                Ok(SeedAnswer::ForceRelease(existed)) => {
                    tracing::debug!(key = ?key, existed, "force release");
                    Ok(BatchOutput::Release)
                }
                Ok(_) => Err(mismatched()),
                Err(err) => Err(self.failed(Op::ForceRelease, key, err)),
            },
            Checked::Get { key, .. } => match answer {
                Ok(SeedAnswer::Get(value)) => Ok(BatchOutput::Get(value)),
                Ok(_) => Err(mismatched()),
                Err(err) => Err(self.failed(Op::Get, key, err)),
            },
        }
    }
}

/// A store that answered a call with another call's kind of answer: a bug, reported as an
/// error rather than a panic.
fn mismatched() -> LockError {
    LockError::Redis(redis::RedisError::from((
        redis::ErrorKind::Client,
        "a batch's answer does not fit its call",
    )))
}
