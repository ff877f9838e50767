//! The stores: the only code that speaks to a backend. Each implements the same small set of
//! atomic primitives; the lock logic above them is written once.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use redis::RedisResult;

pub(crate) mod memory;
pub(crate) mod redis_store;

/// A boxed, sendable future: what a [`Store`] method returns, so stores can sit behind `dyn`.
pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// An expiry as it goes on the wire: whole seconds use `EX` (as the Node original does),
/// anything else `PX`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expiry {
    Seconds(u64),
    Millis(u64),
}

impl Expiry {
    /// Picks the wire form for a validated expiry (at least 1 ms). Sub-millisecond parts are
    /// dropped, so the lock never outlives what was asked.
    pub(crate) fn from_duration(expires: Duration) -> Self {
        let millis = u64::try_from(expires.as_millis()).unwrap_or(u64::MAX);
        if millis % 1000 == 0 {
            Self::Seconds(millis / 1000)
        } else {
            Self::Millis(millis)
        }
    }

    /// The expiry as a `Duration`, exactly as sent.
    pub(crate) fn as_duration(self) -> Duration {
        match self {
            Self::Seconds(secs) => Duration::from_secs(secs),
            Self::Millis(millis) => Duration::from_millis(millis),
        }
    }
}

/// The result of one lock attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Acquire {
    /// The key was free and now holds our value.
    Granted,
    /// The key holds a lock (a string).
    Held,
    /// The key holds a value of another type, named as `TYPE` names it.
    WrongType(String),
}

/// The result of a compare-and-delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Release {
    Released,
    /// The key holds another value.
    NotOwner,
    /// The key does not exist.
    NotHeld,
}

/// The atomic primitives every store provides. Keys are wire keys (prefix included).
pub(crate) trait Store: Send + Sync + 'static {
    /// Sets `key` to `value` with `expiry` if the key does not exist.
    fn acquire<'a>(
        &'a self,
        key: &'a str,
        value: &'a str,
        expiry: Expiry,
    ) -> BoxFuture<'a, RedisResult<Acquire>>;

    /// Deletes `key` if it holds `value`, in one atomic step.
    fn release<'a>(&'a self, key: &'a str, value: &'a str) -> BoxFuture<'a, RedisResult<Release>>;

    /// Deletes `key` whatever it holds; `true` if there was a key.
    fn force_release<'a>(&'a self, key: &'a str) -> BoxFuture<'a, RedisResult<bool>>;

    /// Reads the value at `key`.
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, RedisResult<Option<String>>>;

    /// Whether calls need the client's command timeout (false for in-process stores).
    fn does_io(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_seconds_go_as_ex_and_the_rest_as_px() {
        assert_eq!(
            Expiry::from_duration(Duration::from_secs(10)),
            Expiry::Seconds(10)
        );
        assert_eq!(
            Expiry::from_duration(Duration::from_millis(1500)),
            Expiry::Millis(1500)
        );
        assert_eq!(
            Expiry::from_duration(Duration::from_micros(1500)),
            Expiry::Millis(1)
        );
        assert_eq!(
            Expiry::from_duration(Duration::from_micros(2_000_900)),
            Expiry::Seconds(2)
        );
        assert_eq!(
            Expiry::Millis(250).as_duration(),
            Duration::from_millis(250)
        );
    }
}
