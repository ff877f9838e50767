//! Locks on Redis that many workers share: take key K for T seconds, learn when someone else
//! holds it, release it only while it is still yours.
//!
//! This is the Rust successor of the Node package `ac-redislock`. It keeps the original's API
//! ([`lock_key`](RedisLock::lock_key), [`release_lock`](RedisLock::release_lock),
//! [`get_lock`](RedisLock::get_lock), error 423, `suppress_mismatch`, an in-memory fallback)
//! and its wire format, so Node and Rust workers respect each other's locks on the same Redis.
//! Where the original is unsafe, this crate is not: release is one atomic compare-and-delete,
//! and a Redis that is down is reported as [`Unavailable`](LockError::Unavailable), never as
//! locked.
//!
//! A lock here is a **lease**, not a mutex: it ends when it is released *or* when its expiry
//! passes, whatever its holder is doing. Pick an expiry longer than the work, and release when
//! done.
//!
//! # Guarantees
//!
//! - **Mutual exclusion on one Redis**: while a lock's expiry has not passed, `lock_key` on the
//!   same key fails with [`Locked`](LockError::Locked) for everyone, Node workers included. It
//!   rests on Redis's `SET NX` and on Redis keeping the key; a Redis restart without
//!   persistence, a failover to a replica that had not received the key, or an eviction policy
//!   other than `noeviction` can lose a lock.
//! - **Owner-only release**: a release with a value deletes the key only if it still holds that
//!   value, in one atomic step. A worker whose lock expired and was taken by another never
//!   deletes the other's lock.
//! - **Expiry is Redis's clock**: the expiry runs on the server. A holder that pauses (GC, a
//!   stopped process, a slow network) past its expiry may still believe it holds the lock; only
//!   resources that check a fencing token can reject its late writes.
//! - **Fencing**: with [`AcquireOptions::fencing`], each grant carries a token that strictly
//!   increases per key. A resource that rejects writes with a lower token than one it has seen
//!   is safe even against a holder that paused past its lease.
//! - **No secrets in output**: tokens and values never appear in errors, `Debug` output or logs.
//!
//! # Quick start
//!
//! ```no_run
//! use ac_redislock::{LockError, LockParams, RedisLock, ReleaseParams};
//! use std::time::Duration;
//!
//! # async fn run() -> ac_redislock::Result<()> {
//! let locks = RedisLock::from_url("redis://127.0.0.1/")?;
//! match locks.lock_key(LockParams::new("jobs:42").expires(Duration::from_secs(30))).await {
//!     Ok(token) => {
//!         // ... do job 42 ...
//!         locks.release_lock(ReleaseParams::new("jobs:42").value(token)).await?;
//!     }
//!     Err(LockError::Locked { .. }) => { /* another worker is on it */ }
//!     Err(err) => return Err(err),
//! }
//! # Ok(()) }
//! ```
//!
//! # Leases
//!
//! For new code, take the lock as a [`LockGuard`] with [`RedisLock::try_acquire`],
//! [`RedisLock::acquire`] (waits, woken on release) or [`RedisLock::with_lock`] (runs a future
//! under a renewed lock). A guard knows its deadline on the monotonic clock, can
//! [`extend`](LockGuard::extend) it, renews itself when asked (a watchdog), tells its holder when
//! the lease is [`lost`](LockGuard::lost), and can carry a [fencing
//! token](LockGuard::fencing_token) for resources that reject late writes.
//!
//! ```no_run
//! use ac_redislock::{AcquireOptions, RedisLock};
//! use std::time::Duration;
//!
//! # async fn run(locks: RedisLock) -> ac_redislock::Result<()> {
//! let options = AcquireOptions::new().ttl(Duration::from_secs(10)).auto_renew(true);
//! let guard = locks.acquire_with("reports:daily", options).await?;
//! // ... work; guard.is_held() before anything irreversible ...
//! guard.release().await?;
//! # Ok(()) }
//! ```
//!
//! # More than a mutex
//!
//! The same guards, waiting and wake-ups serve a counting semaphore whose permits expire
//! ([`RedisLock::semaphore`], [`Semaphore`]), a read-write lock ([`RedisLock::rw_lock`],
//! [`RwLock`]: a waiting writer holds back later readers) and several locks taken all or none
//! ([`RedisLock::acquire_all`]). Their waiters are served in arrival order.
//!
//! ```no_run
//! # async fn run(locks: ac_redislock::RedisLock) -> ac_redislock::Result<()> {
//! let permit = locks.semaphore("encoders", 3).acquire().await?; // at most 3 at once
//! permit.release().await?;
//! let both = locks.acquire_all(&["accounts:1", "accounts:2"]).await?;
//! both.release().await?;
//! # Ok(()) }
//! ```
//!
//! A guard that is dropped instead releases its lock in the background, on the runtime. At the
//! end of a program, await [`RedisLock::close`] before `main` returns, so that release is sent
//! before the runtime goes (see [`LockGuard`]'s drop behaviour); the blocking client's guards
//! release before their `drop` returns.
//!
//! # Supported servers
//!
//! Tested on every change against Redis 7.x and 6.2 (single server, Cluster, Sentinel, Redlock;
//! TLS on 7.x). Redis 6.0 and Valkey are expected to work and are not tested; before 6.0 is not
//! supported (ACL users need 6.0). Errors met inside the scripts are recognised on both
//! versions. See the README's "Supported servers" for managed services.
//!
//! # Choosing a deployment
//!
//! - **One Redis** ([`RedisLock::from_url`]): mutual exclusion while Redis keeps the key. A restart
//!   without persistence, or an eviction policy other than `noeviction`, can lose held locks.
//! - **Sentinel** ([`RedisLockBuilder::build_sentinel`]): the client follows the master through
//!   failovers. Replication is asynchronous, so a failover right after a grant can lose it; ask
//!   for [`AcquireOptions::replicas`] and check [`LockGuard::replicas_acked`]. A master with a
//!   password, a database other than 0 or TLS: [`RedisLockBuilder::build_sentinel_with`] and
//!   [`SentinelMaster`] (the sentinels' own password goes in their URLs).
//! - **Redis Cluster** ([`RedisLockBuilder::build_cluster`], or [`RedisLock::new`] with a cluster
//!   connection): as Sentinel, per key slot. Waiter and fencing keys share the key's slot.
//! - **Redlock** ([`RedisLockBuilder::build_redlock`]): held when a majority of N independent
//!   masters granted it in time, so it survives the loss, pause or partition of a minority.
//!   It does *not* survive a node restarting without persistence right away (the same lock can
//!   then be granted to a second majority: delay restarts by more than the longest ttl), nor
//!   large clock jumps on the nodes; and it has no fencing tokens (independent counters cannot
//!   be monotonic), so a paused holder cannot be fenced off.
//!
//! In every deployment a holder that pauses past its lease can still act as if it held the lock;
//! only a resource that checks [fencing tokens](LockGuard::fencing_token) is safe against that.
//!
//! # Coming from the Node original
//!
//! | Node `ac-redislock`                         | this crate                                          |
//! |---------------------------------------------|-----------------------------------------------------|
//! | `init({ redis })` / `create()`              | [`RedisLock::new`], [`RedisLock::from_url`], [`RedisLock::builder`] |
//! | `init({})` (no redis: node-cache)           | [`RedisLock::in_memory`]                            |
//! | `lockKey({ redisKey, expires, value })`     | [`RedisLock::lock_key`] with [`LockParams`] (`expires` is a `Duration`) |
//! | error `423` / `resource_locked`             | [`LockError::Locked`], [`code()`](LockError::code) `== 423` |
//! | `releaseLock({ redisKey, value, suppressMismatch })` | [`RedisLock::release_lock`] with [`ReleaseParams`] |
//! | `releaseLock_valueMismatch`                 | [`LockError::NotOwner`] or [`LockError::NotHeld`]   |
//! | `getLock({ redisKey })`                     | [`RedisLock::get_lock`]                             |
//! | `logger`, `logLevel`                        | `tracing` subscribers, [`RedisLockBuilder::log_level`] |
//! | `redisDown`, status 503                     | [`LockError::Unavailable`], `code() == 503`         |
//!
//! # Features
//!
//! | feature | default | what it adds |
//! |---------|---------|--------------|
//! | `tls`   | yes     | `rediss://` URLs, through rustls and the system's root certificates |
//! | `cluster` | yes   | [`RedisLockBuilder::build_cluster`]; cluster connections recognised by [`RedisLock::new`] |
//! | `sentinel` | yes  | [`RedisLockBuilder::build_sentinel`], [`RedisLockBuilder::build_sentinel_with`] and [`SentinelMaster`] |

#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]
#![cfg_attr(docsrs, feature(doc_cfg))]

// Faces: what users call. Each is a thin adapter over the lock logic.
pub mod blocking;
mod builder;
mod client;
// The lock logic: one core under every face; it knows no wire format.
mod lock;
// The stores: the only code that speaks to a backend.
mod store;
// The vocabulary every layer shares: errors, status snapshots, the drift margin, reporting.
mod drift;
mod error;
mod report;
mod status;

pub use builder::{Async, Flavor, RedisLockBuilder};
pub use client::{RedisLock, RwLock, Semaphore};
pub use error::{
    CloseError, InvalidInput, LeftBehind, LockError, LossReason, Result, UnavailableReason,
};
pub use lock::batch::{BatchCall, BatchOutput};
pub use lock::guard::LockGuard;
#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub use lock::metrics;
pub use lock::options::{
    AcquireOptions, DEFAULT_MAX_HOLD, DEFAULT_TTL, DEFAULT_WAIT, MAX_HOLDER_LEN,
};
pub use lock::params::{DEFAULT_EXPIRES, LockParams, ReleaseParams};
pub use lock::retry::RetryPolicy;
pub use lock::{
    DEFAULT_COMMAND_TIMEOUT, DEFAULT_MAX_EXPIRES, DEFAULT_MAX_KEY_LEN, DEFAULT_MAX_VALUE_LEN,
};
pub use report::ErrorChain;
pub use status::{LockState, LockStatus, RwLockStatus, SemaphoreStatus};
#[cfg(feature = "sentinel")]
pub use store::redis_store::sentinel::SentinelMaster;
pub use store::redlock::DEFAULT_NODE_TIMEOUT as DEFAULT_REDLOCK_NODE_TIMEOUT;

/// The README's examples, compiled as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;

#[cfg(test)]
mod tests {
    /// Every public type can be shared between tasks and threads and held in a `'static`.
    #[test]
    fn public_types_are_send_sync_static() {
        fn check<T: Send + Sync + 'static>() {}
        check::<crate::RedisLock>();
        check::<crate::RedisLockBuilder>();
        check::<crate::LockGuard>();
        check::<crate::LockError>();
        check::<crate::CloseError>();
        check::<crate::blocking::RedisLock>();
        check::<crate::blocking::RedisLockBuilder>();
        check::<crate::blocking::LockGuard>();
    }
}
