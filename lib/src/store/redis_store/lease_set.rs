//! Lease sets on Redis: the semaphore and the read-write lock, one Lua script per primitive
//! (`lua/set_*.lua`, each with `prelude.lua` and `lease_set.lua` in front).
//!
//! The wire format (`lua/lease_set.lua` states it for the Lua side):
//!
//! - **The key** is a sorted set of holds: `<count>|<token>` for a shared hold of `count`
//!   shares (a semaphore's permits; 1 for a reader), `x|<token>` for the exclusive one (a
//!   writer), each scored by its expiry in the server's milliseconds (`TIME`, inside the
//!   script). Every script that writes drops the expired holds before it decides anything;
//!   after a change the key's own expiry is its latest hold's, so an abandoned set
//!   disappears.
//! - **Waiters** register in two companions in the key's hash slot
//!   ([`Companion::queue`], [`Companion::alive`]), with the same member
//!   `<waiter id>|<client id>|<count or x>|<limit>` ([`protocol::set_registration`]): the
//!   queue scored by arrival (server µs at the first registration; a refresh keeps it), and
//!   `alive` scored by the registration's expiry (server ms, [`Waiter::lease`] from each
//!   attempt). A registration whose expiry passed is dead, dropped from both by the next
//!   script that reads them.
//! - **Admission** is strict FIFO. With H the live holds and A the live waiters ahead of the
//!   caller (all of them for a caller not in the queue): the exclusive hold enters iff H and A
//!   are empty; `count` shares out of `limit` iff no exclusive hold is in H or A and the shares
//!   of H and A plus `count` are at most `limit`. A waiting writer holds back the readers
//!   after it; a waiter wanting many permits, the waiters behind it. Each handle's limit is
//!   its own: one with a lower limit enters only while the set holds at most that.
//! - **Wake-ups**: after a release, a grant that took a waiter out of the queue, a
//!   cancellation, or a purge of expired holds or dead registrations, the queue is walked from
//!   its head and each waiter that can enter now (counting those woken before it as holding)
//!   is sent `w<waiter id>` on its client's channel ([`WAKE_PREFIX`](protocol::WAKE_PREFIX)),
//!   which the client's subscriber turns into a retry; the walk stops at the first that cannot.
//!   No lease-set waiter is given a hold outright (no `g` announcements): it takes it with its
//!   own attempt. Waiters of a polling client (no client id) are counted and not sent anything.
//!   A waiter that dies without cancelling (its process killed: a dropped or timed-out
//!   acquisition cancels in the background) is found by the walk that would wake it: no
//!   subscriber of its client hears the `PUBLISH` (it answers 0 receivers). Its registration
//!   then lives 200 ms more at most and the walk goes on past it, so the waiters behind it are
//!   woken, and the first of them enters once those 200 ms have passed (an attempt refused
//!   reports the earliest expiry of the holds and registrations ahead of it, and never sleeps
//!   past it). A live waiter whose subscriber sits on another Cluster node hears the message
//!   all the same and comes at once, keeping its place. A waiter of a polling client is only
//!   dropped when its registration expires.
//! - **Retries** (an attempt whose first try may have landed before the connection broke): a
//!   hold of ours already in the set is ours, granted (its lease counted anew). On a first try,
//!   a token already holding is refused (one member cannot stand for two holds). A release
//!   retried that finds no hold is [`Owned::Vanished`].
//! - **Wrong types**: every script raises `WRONGTYPE` on a key of another type before it
//!   writes anything but purges; [`set_invoke`] then names the key that holds the wrong type
//!   (the set must be a zset, the queue and leases zsets, the counter a string). The status
//!   names the type instead ([`SetStatus::wrong_type`]).
//!
//! Everything stays within the README's least-privilege ACL (ZRANGE, ZADD, ZREM,
//! ZREMRANGEBYSCORE, PEXPIRE, TIME, TYPE, GET, SET, PUBLISH), and within Redis 6.2's commands.

use std::future::Future;
use std::time::Duration;

use redis::aio::ConnectionLike;

use super::protocol::{self, Companion};
use super::wake::WakeHub;
use super::{Expected, RedisStore, Try, invoke_expecting, millis, scripts};
use crate::store::{Acquire, AcquireRequest, Owned, Reply, SetStatus, Share, StoreResult, Waiter};

impl<C> RedisStore<C>
where
    C: ConnectionLike + Clone + Send + Sync + 'static,
{
    /// One attempt at a hold of `share` (see [`Store::acquire`](crate::store::Store::acquire)):
    /// `lua/set_acquire.lua`.
    pub(super) fn set_acquire<'a>(
        &'a self,
        req: AcquireRequest<'a>,
        share: Share,
    ) -> Reply<'a, Acquire> {
        Box::pin(async move {
            let req = &req;
            let client = self.wake.as_ref().map_or("", WakeHub::id);
            let hold = protocol::hold(share, req.token);
            let (registration, lease) = match req.waiter {
                Some(w) => (
                    protocol::set_registration(w.waiter, client, share),
                    millis(w.waiter.lease).max(1),
                ),
                None => (String::new(), 0),
            };
            let limit = match share {
                Share::Shared { limit, .. } => limit,
                Share::Exclusive => 0,
            };
            let fencing = req.fencing && share == Share::Exclusive;
            let (hold, registration) = (&hold, &registration);
            self.call(move |mut conn, try_| async move {
                let call = scripts::SET_ACQUIRE
                    .key(req.key)
                    .key(Companion::queue(req.key))
                    .key(Companion::alive(req.key))
                    .key(Companion::fence(req.key))
                    .arg(hold)
                    .arg(req.expiry.as_millis())
                    .arg(limit)
                    .arg(registration)
                    .arg(lease)
                    .arg(if fencing { "1" } else { "0" })
                    .arg(if try_ == Try::Retry { "1" } else { "0" });
                let (granted, number): (i64, i64) = set_invoke(&call, &mut conn, req.key).await?;
                Ok(if granted == 1 {
                    Acquire::Granted {
                        fence: u64::try_from(number).ok().filter(|_| fencing),
                    }
                } else {
                    // -1: nothing to wait for but a wake-up (or the backoff).
                    Acquire::Held {
                        pttl: u64::try_from(number).ok().map(Duration::from_millis),
                    }
                })
            })
            .await
        })
    }

    /// Ends the hold of `value`: `lua/set_release.lua`.
    pub(super) fn set_release<'a>(
        &'a self,
        key: &'a str,
        value: &'a str,
        share: Share,
    ) -> Reply<'a, Owned> {
        Box::pin(async move {
            let hold = &protocol::hold(share, value);
            self.call(move |mut conn, try_| async move {
                let call = scripts::SET_RELEASE
                    .key(key)
                    .key(Companion::queue(key))
                    .key(Companion::alive(key))
                    .arg(hold);
                let removed: i64 = set_invoke(&call, &mut conn, key).await?;
                Ok(match (removed, try_) {
                    (1, _) => Owned::Done,
                    // The first try most likely ended it before the connection broke.
                    (_, Try::Retry) => Owned::Vanished,
                    _ => Owned::NotHeld,
                })
            })
            .await
        })
    }

    /// Extends the hold of `value`: `lua/set_extend.lua`.
    pub(super) fn set_extend<'a>(
        &'a self,
        key: &'a str,
        value: &'a str,
        ttl: Duration,
        share: Share,
    ) -> Reply<'a, Owned> {
        Box::pin(async move {
            let hold = &protocol::hold(share, value);
            self.call(move |mut conn, _try| async move {
                let call = scripts::SET_EXTEND
                    .key(key)
                    .key(Companion::queue(key))
                    .key(Companion::alive(key))
                    .arg(hold)
                    .arg(millis(ttl).max(1));
                let extended: i64 = set_invoke(&call, &mut conn, key).await?;
                Ok(if extended == 1 {
                    Owned::Done
                } else {
                    Owned::NotHeld
                })
            })
            .await
        })
    }

    /// Drops a waiter's registration, waking whom its leaving lets in: `lua/set_cancel.lua`.
    pub(super) fn set_cancel_wait<'a>(
        &'a self,
        key: &'a str,
        waiter: &'a Waiter,
        share: Share,
    ) -> Reply<'a, ()> {
        Box::pin(async move {
            let client = self.wake.as_ref().map_or("", WakeHub::id);
            let registration = &protocol::set_registration(waiter, client, share);
            self.call(move |mut conn, _try| async move {
                let call = scripts::SET_CANCEL
                    .key(key)
                    .key(Companion::queue(key))
                    .key(Companion::alive(key))
                    .arg(registration);
                let _: i64 = set_invoke(&call, &mut conn, key).await?;
                Ok(())
            })
            .await
        })
    }

    /// A snapshot of the set: `lua/set_status.lua`.
    pub(super) fn lease_set_status<'a>(&'a self, key: &'a str) -> Reply<'a, SetStatus> {
        Box::pin(self.call(move |mut conn, _try| async move {
            let (kind, holds, shares, exclusive, ttl, waiters, fence): (
                String,
                u32,
                u64,
                i64,
                i64,
                u64,
                i64,
            ) = scripts::SET_STATUS
                .key(key)
                .key(Companion::queue(key))
                .key(Companion::alive(key))
                .key(Companion::fence(key))
                .invoke_async(&mut conn)
                .await?;
            if kind != "zset" && kind != "none" {
                return Ok(SetStatus {
                    wrong_type: Some(kind),
                    ..SetStatus::default()
                });
            }
            Ok(SetStatus {
                holds,
                shares,
                exclusive: exclusive == 1,
                ttl: u64::try_from(ttl).ok().map(Duration::from_millis),
                waiters,
                fencing_counter: u64::try_from(fence).ok(),
                wrong_type: None,
            })
        }))
    }
}

/// Runs a lease-set script `call` on the set at `key`. When Redis says a key holds the wrong
/// type, the error names which: the set (a zset), its queue or leases (zsets), its fencing
/// counter (a string).
fn set_invoke<'a, T, C>(
    call: &'a scripts::Call<'_>,
    conn: &'a mut C,
    key: &'a str,
) -> impl Future<Output = StoreResult<T>> + 'a
where
    T: redis::FromRedisValue + 'a,
    C: ConnectionLike + Send,
{
    invoke_expecting(call, conn, move || {
        vec![
            Expected::key(key, "zset"),
            Expected::companion(Companion::queue(key), "zset"),
            Expected::companion(Companion::alive(key), "zset"),
            Expected::companion(Companion::fence(key), "string"),
        ]
    })
}
