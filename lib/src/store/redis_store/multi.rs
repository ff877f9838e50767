//! Several mutexes taken together on Redis ([`Shape::Multi`](crate::store::Shape::Multi)), all
//! or none. Each key stays a mutex in the Node original's format (it holds the token, with PX
//! expiry), so single-key callers, their waiters, hand-offs and Node workers all keep working
//! with a key a multi-key lock holds.
//!
//! - **One server** (or keys that share a Cluster hash slot): one atomic script per operation
//!   (`lua/multi_*.lua`).
//! - **Cluster, keys in several slots**: the keys are grouped by hash slot and the groups taken
//!   one after another in ascending slot order, each with the one-slot script. When a group is
//!   held, the groups taken so far are released (handed to their waiters) and the attempt is
//!   refused, registered on the held group's key only. Nothing is ever held while waiting, so
//!   callers with overlapping sets never deadlock. A failure midway releases what this attempt
//!   took when the failure is certain (an error reply); when its outcome is unknown (timeout,
//!   connection lost), the lock logic's cleanup releases every key still holding the token.
//!
//! A waiter registers for a reservation only (its registration's ttl is 0): a release of the
//! key it waits on reserves that key for it and wakes it (`w<waiter id>` on its client's
//! channel), and its next attempt takes every key or passes the reservation on.

use std::future::Future;
use std::time::Duration;

use redis::aio::ConnectionLike;
use redis::{ErrorKind, FromRedisValue, RedisError};

use super::protocol::{self, Companion, HANDOFF_RESERVATION};
use super::scripts::{self, Call};
use super::{Expected, RedisStore, Try, WakeHub, invoke_expecting, millis, owned};
use crate::store::{
    Acquire, AcquireRequest, Owned, Reply, StoreError, StoreResult, Waiter, server_code,
};

/// Keys one script call takes: all of a lock's on one server, one hash slot's on a Cluster.
type Group<'k> = Vec<&'k str>;

/// How many hash slots a Redis Cluster has.
const SLOTS: u16 = 16_384;

impl<C> RedisStore<C>
where
    C: ConnectionLike + Clone + Send + Sync + 'static,
{
    /// One attempt at all of `keys` (wire keys, sorted; `req.key` is the first).
    pub(super) fn multi_acquire<'a>(
        &'a self,
        req: AcquireRequest<'a>,
        keys: &'a [String],
    ) -> Reply<'a, Acquire> {
        Box::pin(async move {
            let req = &req;
            let client = self.wake.as_ref().map_or("", WakeHub::id);
            let member = req
                .waiter
                .map(|w| protocol::reservation_registration(w.waiter, client))
                .unwrap_or_default();
            let member = member.as_str();
            self.call(move |conn, try_| {
                self.grouped(conn, keys, move |conn, groups| {
                    acquire_groups(conn, req, member, groups, try_)
                })
            })
            .await
        })
    }

    /// Releases every key of `keys` that holds `value`, handing each to its waiters.
    pub(super) fn multi_release<'a>(
        &'a self,
        keys: &'a [String],
        value: &'a str,
    ) -> Reply<'a, Owned> {
        Box::pin(self.call(move |conn, try_| {
            self.grouped(conn, keys, move |mut conn, groups| async move {
                let outcome = release_groups(&mut conn, &groups, value, first(keys)).await?;
                Ok(match outcome {
                    // The first try may have released them before the connection broke.
                    Owned::NotHeld | Owned::NotOwner if try_ == Try::Retry => Owned::Vanished,
                    outcome => outcome,
                })
            })
        }))
    }

    /// Extends every key of `keys`, if all hold `value`.
    ///
    /// On a Cluster with keys in several slots this goes slot group by slot group, each checked
    /// and extended in one step, and stops at the first group not wholly held: the groups
    /// before it were extended (harmless: they hold our token, and the guard, told the lock is
    /// lost, releases them). Across slots it is not one atomic step.
    pub(super) fn multi_extend<'a>(
        &'a self,
        keys: &'a [String],
        value: &'a str,
        ttl: Duration,
    ) -> Reply<'a, Owned> {
        let ttl = crate::store::Expiry::from_duration(ttl).as_millis();
        Box::pin(self.call(move |conn, _try| {
            self.grouped(conn, keys, move |mut conn, groups| async move {
                for group in &groups {
                    let mut call = scripts::MULTI_EXTEND.keys(group.len());
                    for key in group {
                        call = call.key(*key);
                    }
                    let call = call.arg(value).arg(ttl);
                    let code: i64 = run(&call, &mut conn, group, first(keys)).await?;
                    if code != 1 {
                        return Ok(owned(code));
                    }
                }
                Ok(Owned::Done)
            })
        }))
    }

    /// Drops a waiter's registrations, passing on any key reserved for it.
    pub(super) fn multi_cancel_wait<'a>(
        &'a self,
        keys: &'a [String],
        waiter: &'a Waiter,
    ) -> Reply<'a, ()> {
        Box::pin(async move {
            let client = self.wake.as_ref().map_or("", WakeHub::id);
            let member = protocol::reservation_registration(waiter, client);
            let member = member.as_str();
            self.call(move |conn, _try| {
                self.grouped(conn, keys, move |mut conn, groups| async move {
                    cancel_groups(&mut conn, &groups, &waiter.id, member).await
                })
            })
            .await
        })
    }

    /// The groups of `keys` one script call each takes: one on one server, one per hash slot
    /// (in ascending slot order) on a Cluster.
    fn groups<'k>(&self, keys: &'k [String]) -> Vec<Group<'k>> {
        if self.cluster {
            by_slot(keys)
        } else {
            vec![keys.iter().map(String::as_str).collect()]
        }
    }

    /// Runs `op` on the groups of `keys`. A server this store does not know to be in a Cluster
    /// (a cluster connection behind a wrapper) refuses keys of several slots with CROSSSLOT,
    /// before the script runs: then `op` runs once more, with one group per slot.
    #[allow(
        clippy::manual_async_fn,
        reason = "an `async fn` keeps each argument twice in its future"
    )]
    fn grouped<'s, 'k, T, F, Fut>(
        &'s self,
        conn: C,
        keys: &'k [String],
        op: F,
    ) -> impl Future<Output = StoreResult<T>>
    where
        F: Fn(C, Vec<Group<'k>>) -> Fut + 's,
        Fut: Future<Output = StoreResult<T>>,
    {
        async move {
            if keys.is_empty() {
                let err = RedisError::from((ErrorKind::Client, "a multi-key lock needs keys"));
                return Err(StoreError::Redis(err));
            }
            match op(conn.clone(), self.groups(keys)).await {
                Err(err) if !self.cluster && cross_slot(&err) => op(conn, by_slot(keys)).await,
                other => other,
            }
        }
    }
}

/// The first key of a lock, which errors name as the lock's key.
fn first(keys: &[String]) -> &str {
    keys.first().map_or("", String::as_str)
}

/// Whether the server refused keys of several hash slots in one call.
fn cross_slot(err: &StoreError) -> bool {
    matches!(err, StoreError::Redis(err) if server_code(err) == Some("CROSSSLOT"))
}

/// Takes the groups one after another; on the first held, gives back the groups taken and
/// answers as that group did (registered there).
async fn acquire_groups<C: ConnectionLike + Send>(
    mut conn: C,
    req: &AcquireRequest<'_>,
    member: &str,
    groups: Vec<Group<'_>>,
    try_: Try,
) -> StoreResult<Acquire> {
    for (at, group) in groups.iter().enumerate() {
        match acquire_group(&mut conn, req, member, group, try_).await {
            Ok(Acquire::Granted { .. }) => {}
            Ok(refused) => {
                // Nothing is held while waiting.
                release_groups(&mut conn, &groups[..at], req.token, req.key).await?;
                // A registration of an earlier attempt may sit in a group not reached this
                // time (the groups before were taken, which took it out; the held group made
                // it anew): it goes, with any reservation made for it there.
                if let Some(w) = req.waiter
                    && (w.registered || try_ == Try::Retry)
                    && at + 1 < groups.len()
                {
                    cancel_groups(&mut conn, &groups[at + 1..], &w.waiter.id, member).await?;
                }
                return Ok(refused);
            }
            Err(err) => {
                // An error reply (a key of another type, a command refused): this attempt's
                // groups go back now, as the lock logic sends no cleanup for a certain
                // failure. An unknown outcome (timeout, connection lost) is left to that
                // cleanup, which releases every key still holding the token.
                if !matches!(err, StoreError::Unavailable { .. }) && at > 0 {
                    let _ = release_groups(&mut conn, &groups[..at], req.token, req.key).await;
                }
                return Err(err);
            }
        }
    }
    Ok(Acquire::Granted { fence: None })
}

/// One group's attempt (`multi_acquire.lua`).
async fn acquire_group<C: ConnectionLike + Send>(
    conn: &mut C,
    req: &AcquireRequest<'_>,
    member: &str,
    group: &[&str],
    try_: Try,
) -> StoreResult<Acquire> {
    let (waiter, lease, registered) = match req.waiter {
        Some(w) => (
            w.waiter.id.as_str(),
            millis(w.waiter.lease).max(1),
            w.registered,
        ),
        None => ("", 0, false),
    };
    let call = with_companions(scripts::MULTI_ACQUIRE.keys(3 * group.len()), group)
        .arg(req.token)
        .arg(req.expiry.as_millis())
        .arg(waiter)
        .arg(lease)
        .arg(member)
        .arg(flag(try_ == Try::Retry))
        .arg(flag(registered))
        .arg(millis(HANDOFF_RESERVATION));
    let (granted, pttl): (i64, i64) = run(&call, conn, group, req.key).await?;
    Ok(if granted == 1 {
        Acquire::Granted { fence: None }
    } else {
        // PTTL: -2 no key (it just went), -1 no expiry (not ours to judge): unknown.
        Acquire::Held {
            pttl: u64::try_from(pttl).ok().map(Duration::from_millis),
        }
    })
}

/// Releases the keys of `groups` that hold `token` (`multi_release.lua`, one call per group),
/// all groups even when one fails (then its error is the answer): done if every key held it,
/// else not the owner if any key holds another value, else not held.
async fn release_groups<C: ConnectionLike + Send>(
    conn: &mut C,
    groups: &[Group<'_>],
    token: &str,
    first: &str,
) -> StoreResult<Owned> {
    let mut worst = 1;
    let mut failed = None;
    for group in groups {
        let call = with_companions(scripts::MULTI_RELEASE.keys(3 * group.len()), group)
            .arg(token)
            .arg(millis(HANDOFF_RESERVATION));
        match run::<i64, _>(&call, conn, group, first).await {
            Ok(code) => worst = worst.min(code),
            Err(err) => failed = failed.or(Some(err)),
        }
    }
    match failed {
        Some(err) => Err(err),
        None => Ok(owned(worst)),
    }
}

/// Drops the registration `member` of the waiter `waiter` from the keys of `groups`, passing on
/// keys reserved for it (`multi_cancel.lua`, one call per group), all groups even when one
/// fails (then its error is the answer).
async fn cancel_groups<C: ConnectionLike + Send>(
    conn: &mut C,
    groups: &[Group<'_>],
    waiter: &str,
    member: &str,
) -> StoreResult<()> {
    let mut failed = None;
    for group in groups {
        let call = with_companions(scripts::MULTI_CANCEL.keys(3 * group.len()), group)
            .arg(waiter)
            .arg(member)
            .arg(millis(HANDOFF_RESERVATION));
        let removed: StoreResult<i64> = call.invoke_async(conn).await.map_err(StoreError::from);
        if let Err(err) = removed {
            failed = failed.or(Some(err));
        }
    }
    failed.map_or(Ok(()), Err)
}

/// Adds each key of `group` to `call` with its waiters and fencing keys.
fn with_companions<'s>(mut call: Call<'s>, group: &[&str]) -> Call<'s> {
    for &key in group {
        call = call
            .key(key)
            .key(Companion::waiters(key))
            .key(Companion::fence(key));
    }
    call
}

fn flag(on: bool) -> &'static str {
    if on { "1" } else { "0" }
}

/// Runs a script `call` on the keys of `group`. When Redis says a key holds the wrong type,
/// the error names which: the lock's key (`first`) as the lock's, another of its keys or a
/// companion by its full name.
async fn run<T, C>(call: &Call<'_>, conn: &mut C, group: &[&str], first: &str) -> StoreResult<T>
where
    T: FromRedisValue,
    C: ConnectionLike + Send,
{
    invoke_expecting(call, conn, || {
        let mut expected = Vec::with_capacity(group.len() * 3);
        for &key in group {
            expected.push(if key == first {
                Expected::key(key, "string")
            } else {
                Expected::companion(key, "string")
            });
            expected.push(Expected::companion(Companion::waiters(key), "zset"));
            expected.push(Expected::companion(Companion::fence(key), "string"));
        }
        expected
    })
    .await
}

/// `keys` by Redis Cluster hash slot, in ascending slot order, each group in the order of
/// `keys`: the fixed order in which every caller takes them.
fn by_slot(keys: &[String]) -> Vec<Group<'_>> {
    let mut slotted: Vec<(u16, &str)> = keys.iter().map(|k| (slot(k), k.as_str())).collect();
    // Stable: a slot's keys keep their order.
    slotted.sort_by_key(|&(slot, _)| slot);
    let mut groups: Vec<Group<'_>> = Vec::new();
    let mut last = None;
    for (slot, key) in slotted {
        match groups.last_mut() {
            Some(group) if last == Some(slot) => group.push(key),
            _ => groups.push(vec![key]),
        }
        last = Some(slot);
    }
    groups
}

/// The Redis Cluster hash slot of `key`: CRC16 (XMODEM) of its hash tag, or of the whole key
/// without one, modulo 16384. (redis-rs computes it too, but keeps the number to itself.)
fn slot(key: &str) -> u16 {
    let hashed = protocol::hash_tag(key).unwrap_or(key);
    crc16(hashed.as_bytes()) % SLOTS
}

/// CRC16-CCITT (XMODEM), as Redis Cluster uses it.
fn crc16(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &byte in bytes {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 == 0 {
                crc << 1
            } else {
                (crc << 1) ^ 0x1021
            };
        }
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_redis_clusters() {
        // The CRC16 check value, and slots Redis documents (`CLUSTER KEYSLOT`).
        assert_eq!(crc16(b"123456789"), 0x31C3);
        assert_eq!(slot("foo"), 12_182);
        assert_eq!(slot("bar"), 5_061);
        assert_eq!(slot("somekey"), 11_058);
        assert_eq!(slot("{user1000}.following"), slot("user1000"));
        assert_eq!(slot("foo{}{bar}"), crc16(b"foo{}{bar}") % SLOTS);
        #[cfg(feature = "cluster")]
        for key in [
            "foo",
            "a{b}c",
            "{}x",
            "test:multi:1:2",
            "x{y}{z}",
            "",
            "ключ",
        ] {
            assert_eq!(
                redis::cluster_routing::Slot::new(slot(key)),
                Some(redis::cluster_routing::Slot::for_key(key)),
                "{key:?}"
            );
        }
    }

    #[test]
    fn groups_go_by_ascending_slot_and_keep_a_slots_keys_together() {
        let keys: Vec<String> = ["a", "b", "{b}2", "c", "{b}1", "{a}x"]
            .iter()
            .map(ToString::to_string)
            .collect();
        let groups = by_slot(&keys);
        let slots: Vec<u16> = groups.iter().map(|g| slot(g[0])).collect();
        assert!(slots.windows(2).all(|w| w[0] < w[1]), "{slots:?}");
        for group in &groups {
            assert!(group.iter().all(|k| slot(k) == slot(group[0])));
        }
        let b = groups.iter().find(|g| g.contains(&"b")).unwrap();
        assert_eq!(b.as_slice(), ["b", "{b}2", "{b}1"]);
        assert_eq!(groups.iter().map(Vec::len).sum::<usize>(), keys.len());
    }
}
