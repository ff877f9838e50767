//! Arguments of [`RedisLock::lock_key`](crate::RedisLock::lock_key) and
//! [`RedisLock::release_lock`](crate::RedisLock::release_lock), named after the original's
//! `params` objects.

use std::time::Duration;

/// The default expiry of a lock: 10 seconds, as in the Node original.
pub const DEFAULT_EXPIRES: Duration = Duration::from_secs(10);

/// What to lock: the original's `{ redisKey, expires, value }`.
///
/// # Default
///
/// - `expires`: [`DEFAULT_EXPIRES`] (10 s). Sent as `EX <seconds>` when it is a whole number of
///   seconds, otherwise as `PX <milliseconds>`; parts below a millisecond are dropped.
/// - `value`: a fresh token, 40 hex characters from 160 random bits of the OS.
///
/// # Examples
///
/// ```
/// use ac_redislock::LockParams;
/// use std::time::Duration;
///
/// let params = LockParams::new("jobs:42")
///     .expires(Duration::from_secs(30))
///     .value("worker-7");
/// assert_eq!(params.key(), "jobs:42");
/// ```
#[derive(Clone, PartialEq, Eq)]
#[must_use = "the params do nothing until passed to `lock_key`"]
pub struct LockParams {
    pub(crate) key: String,
    pub(crate) expires: Duration,
    pub(crate) value: Option<String>,
}

impl LockParams {
    /// Starts the params for `key`, with the default expiry and a generated value.
    ///
    /// # Examples
    ///
    /// ```
    /// let params = ac_redislock::LockParams::new("jobs:42");
    /// ```
    pub fn new(key: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            expires: DEFAULT_EXPIRES,
            value: None,
        }
    }

    /// Sets how long the lock lives unless released (the original's `expires`, there in seconds).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let params = ac_redislock::LockParams::new("jobs:42").expires(Duration::from_millis(1500));
    /// ```
    pub fn expires(mut self, expires: Duration) -> Self {
        self.expires = expires;
        self
    }

    /// Sets the value stored under the key, instead of a generated token.
    ///
    /// Anyone who knows the value can release the lock, so a value shared by several workers
    /// makes them one owner. Prefer the generated token unless Node workers need a known value.
    ///
    /// # Examples
    ///
    /// ```
    /// let params = ac_redislock::LockParams::new("jobs:42").value("worker-7");
    /// ```
    pub fn value(mut self, value: impl Into<String>) -> Self {
        self.value = Some(value.into());
        self
    }

    /// Returns the key.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(ac_redislock::LockParams::new("k").key(), "k");
    /// ```
    #[must_use]
    pub fn key(&self) -> &str {
        &self.key
    }
}

impl std::fmt::Debug for LockParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LockParams")
            .field("key", &self.key)
            .field("expires", &self.expires)
            .field("value", &self.value.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// What to release: the original's `{ redisKey, value, suppressMismatch }`.
///
/// With a value, the release is an atomic compare-and-delete: the key is deleted only if it
/// still holds that value. Without one, it is a **force release**: the key is deleted whoever
/// holds it, as the original does.
///
/// # Default
///
/// - `value`: none (force release).
/// - `suppress_mismatch`: the instance's setting
///   ([`RedisLockBuilder::suppress_mismatch`](crate::RedisLockBuilder::suppress_mismatch)).
///
/// # Examples
///
/// ```
/// use ac_redislock::ReleaseParams;
///
/// let params = ReleaseParams::new("jobs:42")
///     .value("0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c")
///     .suppress_mismatch(true);
/// assert_eq!(params.key(), "jobs:42");
/// ```
#[derive(Clone, PartialEq, Eq)]
#[must_use = "the params do nothing until passed to `release_lock`"]
pub struct ReleaseParams {
    pub(crate) key: String,
    pub(crate) value: Option<String>,
    pub(crate) suppress_mismatch: Option<bool>,
}

impl ReleaseParams {
    /// Starts the params for `key`, with no value (a force release until [`value`](Self::value)
    /// is set).
    ///
    /// # Examples
    ///
    /// ```
    /// let params = ac_redislock::ReleaseParams::new("jobs:42");
    /// ```
    pub fn new(key: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            value: None,
            suppress_mismatch: None,
        }
    }

    /// Sets the value the lock must still hold to be released (what `lock_key` returned).
    ///
    /// # Examples
    ///
    /// ```
    /// let params = ac_redislock::ReleaseParams::new("jobs:42").value("worker-7");
    /// ```
    pub fn value(mut self, value: impl Into<String>) -> Self {
        self.value = Some(value.into());
        self
    }

    /// Overrides the instance's `suppress_mismatch` for this call: when `true`, a mismatch
    /// ([`NotOwner`](crate::LockError::NotOwner) or [`NotHeld`](crate::LockError::NotHeld)) is
    /// neither logged nor returned.
    ///
    /// # Examples
    ///
    /// ```
    /// let params = ac_redislock::ReleaseParams::new("jobs:42")
    ///     .value("worker-7")
    ///     .suppress_mismatch(true);
    /// ```
    pub fn suppress_mismatch(mut self, suppress: bool) -> Self {
        self.suppress_mismatch = Some(suppress);
        self
    }

    /// Returns the key.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(ac_redislock::ReleaseParams::new("k").key(), "k");
    /// ```
    #[must_use]
    pub fn key(&self) -> &str {
        &self.key
    }
}

impl std::fmt::Debug for ReleaseParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReleaseParams")
            .field("key", &self.key)
            .field("value", &self.value.as_ref().map(|_| "<redacted>"))
            .field("suppress_mismatch", &self.suppress_mismatch)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let lock = format!("{:?}", LockParams::new("k").value("secret-token"));
        let release = format!("{:?}", ReleaseParams::new("k").value("secret-token"));
        assert!(!lock.contains("secret-token"), "{lock}");
        assert!(!release.contains("secret-token"), "{release}");
        assert!(lock.contains("<redacted>"));
    }
}
