//! Lease sets on Redis: the semaphore and the read-write lock. (To be written: see the design
//! in the helper prompt.)

use std::time::Duration;

use redis::aio::ConnectionLike;

use super::RedisStore;
use crate::store::{Acquire, AcquireRequest, Owned, Reply, SetStatus, Share, Waiter, not_kept};

impl<C> RedisStore<C>
where
    C: ConnectionLike + Clone + Send + Sync + 'static,
{
    /// One attempt at a hold of `share` (see [`Store::acquire`](crate::store::Store::acquire)).
    pub(super) fn set_acquire<'a>(
        &'a self,
        _req: AcquireRequest<'a>,
        _share: Share,
    ) -> Reply<'a, Acquire> {
        not_kept("lease sets")
    }

    /// Ends the hold of `value`.
    pub(super) fn set_release<'a>(
        &'a self,
        _key: &'a str,
        _value: &'a str,
        _share: Share,
    ) -> Reply<'a, Owned> {
        not_kept("lease sets")
    }

    /// Extends the hold of `value`.
    pub(super) fn set_extend<'a>(
        &'a self,
        _key: &'a str,
        _value: &'a str,
        _ttl: Duration,
        _share: Share,
    ) -> Reply<'a, Owned> {
        not_kept("lease sets")
    }

    /// Drops a waiter's registration.
    pub(super) fn set_cancel_wait<'a>(
        &'a self,
        _key: &'a str,
        _waiter: &'a Waiter,
        _share: Share,
    ) -> Reply<'a, ()> {
        not_kept("lease sets")
    }

    /// A snapshot of the set.
    pub(super) fn lease_set_status<'a>(&'a self, _key: &'a str) -> Reply<'a, SetStatus> {
        not_kept("lease sets")
    }
}
