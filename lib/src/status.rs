//! [`LockStatus`]: what [`RedisLock::status`](crate::RedisLock::status) reports about a lock,
//! without its value.

use std::time::{Duration, SystemTime};

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
/// The holder is named only when it gave a label
/// ([`AcquireOptions::holder`](crate::AcquireOptions::holder)); a lock taken without one (by
/// the seed API, a Node worker, or an acquire without a label) shows `holder: None`, as does
/// every lock on Redlock unless a majority of its nodes agree on the label.
///
/// # Examples
///
/// ```no_run
/// # async fn run(locks: ac_redislock::RedisLock) -> ac_redislock::Result<()> {
/// let status = locks.status("jobs:42").await?;
/// if let Some(ttl) = status.ttl {
///     println!("{} for {ttl:?} more", status.state.as_str());
/// }
/// if let (Some(holder), Some(held_for)) = (&status.holder, status.held_for) {
///     println!("held by {holder} for {held_for:?}");
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
    /// The holder's label, when the lock is held and its holder gave one
    /// ([`AcquireOptions::holder`](crate::AcquireOptions::holder)). Reported only while the
    /// key holds the value the label was written with: a lock taken after ours ended (by
    /// another client, a waiter it was handed to, or a Node worker's plain `SET NX`) never
    /// shows our label. It is not the lock's value, and cannot release it.
    pub holder: Option<String>,
    /// How long the labelled holder has held the lock, measured on the server's clock alone
    /// (from the grant to this snapshot), so no clock skew between hosts counts; `None`
    /// without a [`holder`](Self::holder). A lock extended or renewed keeps its start.
    pub held_for: Option<Duration>,
    /// When the labelled holder took the lock, by the server's clock (the in-memory store's:
    /// this host's); `None` without a [`holder`](Self::holder). Prefer
    /// [`held_for`](Self::held_for) for a duration: this one is off by the server's clock skew.
    pub held_since: Option<SystemTime>,
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
