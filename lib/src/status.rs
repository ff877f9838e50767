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

/// A snapshot of a semaphore (see [`Semaphore::status`](crate::Semaphore::status)), taken in
/// one atomic step. Expired permits are not counted. It never contains a token.
///
/// # Examples
///
/// ```no_run
/// # async fn run(locks: ac_redislock::RedisLock) -> ac_redislock::Result<()> {
/// let status = locks.semaphore("encoders", 3).status().await?;
/// println!("{} of {} permits taken, {} waiting", status.held, status.limit, status.waiters);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SemaphoreStatus {
    /// The limit of the handle that asked.
    pub limit: u32,
    /// Permits taken now (a holder may take several).
    pub held: u64,
    /// Holders now.
    pub holders: u32,
    /// Time left of the permit that expires last; `None` when none is taken.
    pub ttl: Option<Duration>,
    /// Waiting acquisitions, in line.
    pub waiters: u64,
}

/// A snapshot of a read-write lock (see [`RwLock::status`](crate::RwLock::status)), taken in
/// one atomic step. Expired holds are not counted. It never contains a token.
///
/// # Examples
///
/// ```no_run
/// # async fn run(locks: ac_redislock::RedisLock) -> ac_redislock::Result<()> {
/// let status = locks.rw_lock("catalog").status().await?;
/// if status.writer {
///     println!("being written; {} waiting", status.waiters);
/// } else {
///     println!("{} readers", status.readers);
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RwLockStatus {
    /// Read holds now.
    pub readers: u32,
    /// Whether a writer holds it.
    pub writer: bool,
    /// Time left of the hold that expires last; `None` when it is free.
    pub ttl: Option<Duration>,
    /// Waiting acquisitions (readers and writers), in line.
    pub waiters: u64,
    /// The last fencing token drawn for a writer, if any was (and the counter still exists).
    pub fencing_counter: Option<u64>,
}
