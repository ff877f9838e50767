//! Seed calls sent together: one pipeline, one command timeout and one retry on a dead
//! connection for the lot, each call answered as its own store call would answer it.
//!
//! What a pipeline cannot settle goes on alone through the store's own method: a script the
//! server does not have (`NOSCRIPT`, after a flush or a failover: the single call sends it
//! again as `EVAL`) and a key of another type (the single call names which key). A refused
//! `SET NX` is followed by one more pipeline for all the refused: `TYPE` (a lock, or a key of
//! another type?) and, on a retry, `GET` (did our first try take it before the connection
//! broke?), as the single call does.
//!
//! A pipeline refused with `CROSSSLOT` (a Cluster behind a connection type this store cannot
//! recognise) goes again call by call, and so does every batch after it.

use std::sync::atomic::Ordering;

use redis::aio::ConnectionLike;
use redis::{FromRedisValue, RedisResult, Value};

use super::{RedisStore, Try, force_release_call, release_call, released, set_nx};
use crate::store::{
    Acquire, AcquireRequest, BoxFuture, SeedAnswer, SeedOp, StoreError, StoreResult, server_code,
};

/// Where one call of a batch stands after the pipeline.
enum Slot {
    Answered(StoreResult<SeedAnswer>),
    /// A `SET NX` refused: the follow-up decides.
    Refused,
    /// To be sent again alone.
    Alone,
}

impl<C> RedisStore<C>
where
    C: ConnectionLike + Clone + Send + Sync + 'static,
{
    /// The seed calls `ops` in one pipeline (see the module's header).
    pub(super) fn pipelined<'a>(
        &'a self,
        ops: &'a [SeedOp<'a>],
    ) -> BoxFuture<'a, Vec<StoreResult<SeedAnswer>>> {
        Box::pin(async move {
            let sent = self
                .call(move |mut conn, try_| async move { send(&mut conn, ops, try_).await })
                .await;
            let slots = match sent {
                Ok(slots) => slots,
                // A Cluster behind a connection type of the caller's, which this store cannot
                // tell from one server: the keys' slots differ. From now on each call goes
                // alone, routed to its slot's node.
                Err(StoreError::Redis(err)) if server_code(&err) == Some("CROSSSLOT") => {
                    self.no_pipelines.store(true, Ordering::Relaxed);
                    ops.iter().map(|_| Slot::Alone).collect()
                }
                Err(err) => return ops.iter().map(|_| Err(err.clone())).collect(),
            };
            // Those left go alone, all at once (after a flush or a refused pipeline, that can
            // be every call of the batch).
            futures_util::future::join_all(ops.iter().zip(slots).map(|(op, slot)| async move {
                match slot {
                    Slot::Answered(answer) => answer,
                    // `send` settles every refusal.
                    Slot::Alone | Slot::Refused => op.run_alone(self).await,
                }
            }))
            .await
        })
    }
}

/// Sends the pipeline and reads each answer; then the follow-up of the refused locks.
async fn send<C: ConnectionLike + Send>(
    conn: &mut C,
    ops: &[SeedOp<'_>],
    try_: Try,
) -> StoreResult<Vec<Slot>> {
    let mut pipe = redis::pipe();
    pipe.ignore_errors();
    for op in ops {
        add(&mut pipe, op);
    }
    let replies: Vec<RedisResult<Value>> = pipe.query_async(conn).await?;
    if replies.len() != ops.len() {
        return Err(StoreError::Redis(redis::RedisError::from((
            redis::ErrorKind::Client,
            "a pipeline's answers do not match its commands",
        ))));
    }
    let mut slots: Vec<Slot> = ops
        .iter()
        .zip(replies)
        .map(|(op, reply)| read(op, reply, try_))
        .collect();
    let refused: Vec<usize> = (0..slots.len())
        .filter(|&i| matches!(slots[i], Slot::Refused))
        .collect();
    if !refused.is_empty() {
        follow_up(conn, ops, &refused, &mut slots, try_).await?;
    }
    Ok(slots)
}

/// Adds one call's command, as its own store call sends it.
fn add(pipe: &mut redis::Pipeline, op: &SeedOp<'_>) {
    match *op {
        SeedOp::Lock(req) => {
            pipe.add_command(set_nx(&req));
        }
        SeedOp::Release { key, value } => {
            pipe.add_command(release_call(key, value).evalsha().clone());
        }
        SeedOp::ForceRelease { key } => {
            pipe.add_command(force_release_call(key).evalsha().clone());
        }
        SeedOp::Get { key } => {
            pipe.cmd("GET").arg(key);
        }
    }
}

/// Reads one call's answer.
fn read(op: &SeedOp<'_>, reply: RedisResult<Value>, try_: Try) -> Slot {
    let value = match reply {
        Ok(value) => value,
        Err(err) => {
            // A script the server lost, or a key of another type (which the call alone names).
            let scripted = matches!(op, SeedOp::Release { .. } | SeedOp::ForceRelease { .. });
            return match server_code(&err) {
                Some("NOSCRIPT" | "WRONGTYPE") if scripted => Slot::Alone,
                _ => Slot::Answered(Err(StoreError::from(err))),
            };
        }
    };
    let answer = match *op {
        SeedOp::Lock(req) => {
            if value != Value::Nil {
                return Slot::Answered(Ok(SeedAnswer::Lock(Acquire::Granted { fence: None })));
            }
            if req.probe && try_ == Try::First {
                return Slot::Answered(Ok(SeedAnswer::Lock(Acquire::Held { pttl: None })));
            }
            return Slot::Refused;
        }
        SeedOp::Release { .. } => {
            i64::from_redis_value(value).map(|code| SeedAnswer::Release(released(code, try_)))
        }
        SeedOp::ForceRelease { .. } => {
            i64::from_redis_value(value).map(|deleted| SeedAnswer::ForceRelease(deleted > 0))
        }
        SeedOp::Get { .. } => Option::<Vec<u8>>::from_redis_value(value).map(|bytes| {
            SeedAnswer::Get(bytes.map(|bytes| {
                String::from_utf8(bytes)
                    .unwrap_or_else(|err| String::from_utf8_lossy(err.as_bytes()).into_owned())
            }))
        }),
    };
    Slot::Answered(answer.map_err(|err| StoreError::from(redis::RedisError::from(err))))
}

/// Settles the refused locks at `refused` with one more pipeline: on a retry, `GET` (the lock
/// holding our token is ours: the first try took it); unless a probe, `TYPE` (a lock, or a key
/// of another type that would otherwise look locked forever).
async fn follow_up<C: ConnectionLike + Send>(
    conn: &mut C,
    ops: &[SeedOp<'_>],
    refused: &[usize],
    slots: &mut [Slot],
    try_: Try,
) -> StoreResult<()> {
    let lock = |i: usize| match ops[i] {
        SeedOp::Lock(req) => Some(req),
        _ => None,
    };
    let mut pipe = redis::pipe();
    pipe.ignore_errors();
    for req in refused.iter().filter_map(|&i| lock(i)) {
        if try_ == Try::Retry {
            pipe.cmd("GET").arg(req.key);
        }
        if !req.probe {
            pipe.cmd("TYPE").arg(req.key);
        }
    }
    let mut replies = pipe
        .query_async::<Vec<RedisResult<Value>>>(conn)
        .await?
        .into_iter();
    for &i in refused {
        let Some(req) = lock(i) else { continue };
        slots[i] = Slot::Answered(settle_refusal(&req, &mut replies, try_));
    }
    Ok(())
}

/// One refused lock's answer from its follow-up replies (taken from `replies` in order).
fn settle_refusal(
    req: &AcquireRequest<'_>,
    replies: &mut impl Iterator<Item = RedisResult<Value>>,
    try_: Try,
) -> StoreResult<SeedAnswer> {
    let mut next = || -> StoreResult<Value> {
        replies
            .next()
            .unwrap_or_else(|| Ok(Value::Nil))
            .map_err(StoreError::from)
    };
    let ours = if try_ == Try::Retry {
        let held = Option::<Vec<u8>>::from_redis_value(next()?)
            .map_err(|err| StoreError::from(redis::RedisError::from(err)))?;
        held.as_deref() == Some(req.token.as_bytes())
    } else {
        false
    };
    let kind = if req.probe {
        None
    } else {
        Some(
            String::from_redis_value(next()?)
                .map_err(|err| StoreError::from(redis::RedisError::from(err)))?,
        )
    };
    let acquire = if ours {
        Acquire::Granted { fence: None }
    } else {
        match kind.as_deref() {
            // "none": the holder let go between the two commands; still a refusal.
            None | Some("string" | "none") => Acquire::Held { pttl: None },
            Some(other) => Acquire::WrongType(other.to_owned()),
        }
    };
    Ok(SeedAnswer::Lock(acquire))
}
