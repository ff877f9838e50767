//! Several mutexes taken together on Redis. (To be written: see the design in the issue's
//! helper prompt.)

use std::time::Duration;

use redis::aio::ConnectionLike;

use super::RedisStore;
use crate::store::{Acquire, AcquireRequest, Owned, Reply, Waiter, not_kept};

impl<C> RedisStore<C>
where
    C: ConnectionLike + Clone + Send + Sync + 'static,
{
    /// One attempt at all of `keys` (wire keys, sorted; `req.key` is the first).
    pub(super) fn multi_acquire<'a>(
        &'a self,
        _req: AcquireRequest<'a>,
        _keys: &'a [String],
    ) -> Reply<'a, Acquire> {
        not_kept("multi-key locks")
    }

    /// Releases every key of `keys` that holds `value`.
    pub(super) fn multi_release<'a>(
        &'a self,
        _keys: &'a [String],
        _value: &'a str,
    ) -> Reply<'a, Owned> {
        not_kept("multi-key locks")
    }

    /// Extends every key of `keys`, if all hold `value`.
    pub(super) fn multi_extend<'a>(
        &'a self,
        _keys: &'a [String],
        _value: &'a str,
        _ttl: Duration,
    ) -> Reply<'a, Owned> {
        not_kept("multi-key locks")
    }

    /// Drops a waiter's registrations.
    pub(super) fn multi_cancel_wait<'a>(
        &'a self,
        _keys: &'a [String],
        _waiter: &'a Waiter,
    ) -> Reply<'a, ()> {
        not_kept("multi-key locks")
    }
}
