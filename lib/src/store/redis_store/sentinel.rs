//! A connection to the current master of a Redis Sentinel group: asks the sentinels for the
//! master, keeps a multiplexed connection to it, and asks again after the connection breaks or
//! the node says it is no longer the master (`READONLY`) — that is, after a failover. Also
//! [`SentinelMaster`], how to log in to that master, which the sentinels do not tell.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::sentinel::{SentinelClient, SentinelNodeConnectionInfo};
use redis::{
    AsyncConnectionConfig, Cmd, Pipeline, RedisConnectionInfo, RedisError, RedisFuture,
    RedisResult, Value,
};

use crate::error::{InvalidInput, Result};

/// How to log in to the master of a Sentinel group (and, after a failover, to the replica that
/// takes its place): user name, password, database and TLS, for
/// [`RedisLockBuilder::build_sentinel_with`](crate::RedisLockBuilder::build_sentinel_with).
///
/// The sentinels hand out only the master's address; these settings are what the client adds
/// to reach it, for its commands and for its wake-up (pub/sub) connection alike. The
/// sentinels' own user name and password, if they have one (`requirepass` in
/// `sentinel.conf`), go in their URLs instead: `redis://:sentinel-password@host:26379/`.
///
/// Its `Debug` never shows the password.
///
/// # Default
///
/// No user name, no password, database 0, no TLS: what
/// [`build_sentinel`](crate::RedisLockBuilder::build_sentinel) uses.
///
/// # Examples
///
/// ```
/// use ac_redislock::SentinelMaster;
///
/// let master = SentinelMaster::new()
///     .username("locker")
///     .password("s3cret")
///     .db(2);
/// assert!(!format!("{master:?}").contains("s3cret"));
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SentinelMaster {
    username: Option<String>,
    password: Option<String>,
    db: u32,
    tls: bool,
}

impl fmt::Debug for SentinelMaster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SentinelMaster")
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("db", &self.db)
            .field("tls", &self.tls)
            .finish()
    }
}

impl SentinelMaster {
    /// Settings for a master without password, on database 0, without TLS (the default).
    ///
    /// # Examples
    ///
    /// ```
    /// let master = ac_redislock::SentinelMaster::new();
    /// assert_eq!(master, ac_redislock::SentinelMaster::default());
    /// ```
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Logs in as this ACL user (`AUTH user password`); it needs a
    /// [`password`](Self::password).
    ///
    /// # Examples
    ///
    /// ```
    /// let master = ac_redislock::SentinelMaster::new().username("locker").password("s3cret");
    /// ```
    #[must_use]
    pub fn username(mut self, username: impl Into<String>) -> Self {
        self.username = Some(username.into());
        self
    }

    /// Logs in with this password: the master's `requirepass` (the one the sentinels know as
    /// `sentinel auth-pass`), or the [`username`](Self::username)'s ACL password.
    ///
    /// # Examples
    ///
    /// ```
    /// let password = std::env::var("REDIS_MASTER_PASSWORD").unwrap_or_default();
    /// let master = ac_redislock::SentinelMaster::new().password(password);
    /// ```
    #[must_use]
    pub fn password(mut self, password: impl Into<String>) -> Self {
        self.password = Some(password.into());
        self
    }

    /// Locks in database `db` of the master (`SELECT db`) instead of 0.
    ///
    /// # Examples
    ///
    /// ```
    /// let master = ac_redislock::SentinelMaster::new().db(3);
    /// ```
    #[must_use]
    pub fn db(mut self, db: u32) -> Self {
        self.db = db;
        self
    }

    /// Reaches the master over TLS (its `tls-port` must be the port the sentinels announce,
    /// as with `tls-replication yes`). Its certificate is checked against the builder's
    /// [`tls_root_certificate`](crate::RedisLockBuilder::tls_root_certificate) if given, the
    /// system's roots otherwise, and
    /// [`tls_client_certificate`](crate::RedisLockBuilder::tls_client_certificate) is presented
    /// if given. Never a fallback to plaintext.
    ///
    /// # Examples
    ///
    /// ```
    /// let master = ac_redislock::SentinelMaster::new().password("s3cret").tls(true);
    /// ```
    #[cfg(feature = "tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
    #[must_use]
    pub fn tls(mut self, tls: bool) -> Self {
        self.tls = tls;
        self
    }

    /// Whether the master is reached over TLS.
    pub(crate) fn uses_tls(&self) -> bool {
        self.tls
    }

    /// The settings as redis-rs takes them for the master's connections.
    pub(crate) fn node_info(&self) -> Result<SentinelNodeConnectionInfo> {
        if self.username.is_some() && self.password.is_none() {
            return Err(InvalidInput::Setting {
                name: "SentinelMaster::username",
                reason: "a user name needs a password",
            }
            .into());
        }
        let mut redis = RedisConnectionInfo::default().set_db(i64::from(self.db));
        if let Some(username) = &self.username {
            redis = redis.set_username(username);
        }
        if let Some(password) = &self.password {
            redis = redis.set_password(password);
        }
        let mut info = SentinelNodeConnectionInfo::default().set_redis_connection_info(redis);
        if self.tls {
            info = info.set_tls_mode(redis::TlsMode::Secure);
        }
        Ok(info)
    }

    /// The user name and password, for redis-rs's `SentinelClientBuilder`.
    #[cfg(feature = "tls")]
    pub(crate) fn credentials(&self) -> (Option<&str>, Option<&str>) {
        (self.username.as_deref(), self.password.as_deref())
    }

    /// The database number.
    #[cfg(feature = "tls")]
    pub(crate) fn database(&self) -> u32 {
        self.db
    }
}

/// A cheap, cloneable handle; clones share the connection.
#[derive(Clone)]
pub(crate) struct SentinelConnection {
    inner: Arc<Inner>,
}

struct Inner {
    sentinel: tokio::sync::Mutex<SentinelClient>,
    current: Mutex<Option<MultiplexedConnection>>,
    timeout: Duration,
}

impl SentinelConnection {
    pub(crate) fn new(sentinel: SentinelClient, timeout: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                sentinel: tokio::sync::Mutex::new(sentinel),
                current: Mutex::new(None),
                timeout,
            }),
        }
    }

    fn cached(&self) -> Option<MultiplexedConnection> {
        self.inner
            .current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The connection to the master, asking the sentinels when there is none.
    async fn connection(&self) -> RedisResult<MultiplexedConnection> {
        if let Some(conn) = self.cached() {
            return Ok(conn);
        }
        let mut sentinel = self.inner.sentinel.lock().await;
        // Another call may have connected while this one waited.
        if let Some(conn) = self.cached() {
            return Ok(conn);
        }
        let client = sentinel.async_get_client().await?;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.inner.timeout))
            .set_response_timeout(Some(self.inner.timeout));
        let conn = client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        *self.inner.current.lock().unwrap_or_else(|p| p.into_inner()) = Some(conn.clone());
        Ok(conn)
    }

    /// The current master's client, for the pub/sub subscriber.
    pub(crate) async fn master_client(&self) -> RedisResult<redis::Client> {
        self.inner.sentinel.lock().await.async_get_client().await
    }

    /// Forgets the connection after an error that says it no longer leads to the master.
    fn after<T>(&self, result: &RedisResult<T>) {
        if let Err(err) = result
            && (err.is_io_error() || err.is_unrecoverable_error() || is_not_master(err))
        {
            *self.inner.current.lock().unwrap_or_else(|p| p.into_inner()) = None;
        }
    }
}

fn is_not_master(err: &RedisError) -> bool {
    matches!(err.code(), Some("READONLY" | "MASTERDOWN" | "LOADING"))
}

impl ConnectionLike for SentinelConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let mut conn = self.connection().await?;
            let result = conn.req_packed_command(cmd).await;
            self.after(&result);
            result
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            let mut conn = self.connection().await?;
            let result = conn.req_packed_commands(pipeline, offset, count).await;
            self.after(&result);
            result
        })
    }

    fn get_db(&self) -> i64 {
        self.cached().map_or(0, |conn| conn.get_db())
    }
}
