//! [`LockStatus`]: what [`RedisLock::status`](crate::RedisLock::status) reports about a lock,
//! without its value.

use std::time::Duration;

/// The state of the key of a lock.
///
/// # Examples
///
/// ```
/// use ac_redislock::LockState;
/// assert_ne!(LockState::Free, LockState::Held);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LockState {
    /// No key: anyone may take the lock.
    Free,
    /// Someone holds the lock.
    Held,
    /// Just released, and reserved for a moment for the waiters that were registered.
    Reserved,
    /// The key holds a Redis value of another type: it is not a lock.
    NotALock,
}

impl LockState {
    /// A short lowercase name: `free`, `held`, `reserved`, `not a lock`.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(ac_redislock::LockState::Held.as_str(), "held");
    /// ```
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Free => "free",
            Self::Held => "held",
            Self::Reserved => "reserved",
            Self::NotALock => "not a lock",
        }
    }
}

/// A snapshot of a lock, taken in one atomic step. It never contains the lock's value.
///
/// # Examples
///
/// ```no_run
/// # async fn run(locks: ac_redislock::RedisLock) -> ac_redislock::Result<()> {
/// let status = locks.status("jobs:42").await?;
/// if let Some(ttl) = status.ttl {
///     println!("{} for {ttl:?} more", status.state.as_str());
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LockStatus {
    /// Free, held, reserved for waiters, or not a lock.
    pub state: LockState,
    /// Time left before the key expires; `None` when there is no key or it has no expiry.
    pub ttl: Option<Duration>,
    /// The last fencing token drawn for this key, if any was (and the counter still exists).
    pub fencing_counter: Option<u64>,
    /// Waiters registered on the key (waiting acquires of this crate).
    pub waiters: u64,
}
