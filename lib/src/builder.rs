//! [`RedisLockBuilder`]: a client's settings and the stores it can be built on, for both
//! flavors of client (async and blocking: see [`Flavor`]); and the constructors of
//! [`RedisLock`]. Each `build_*` method hands the settings to one store's connection setup.

use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use redis::aio::ConnectionLike;
use tokio::runtime::Runtime;
use tracing::Level;

use crate::client::RedisLock;
use crate::error::Result;
use crate::lock::{Config, Core};
use crate::store::Store;
use crate::store::memory::MemoryStore;
use crate::store::redis_store::connect::{self, Connect, TlsConfig};
#[cfg(feature = "sentinel")]
use crate::store::redis_store::sentinel::SentinelMaster;
use crate::store::redlock::{RedlockOptions, RedlockStore};

pub(crate) mod sealed {
    /// Keeps [`Flavor`](super::Flavor) to this crate's two flavors.
    pub trait Sealed {}
}

/// Which client a [`RedisLockBuilder`] makes: [`Async`] (the default) makes a [`RedisLock`],
/// [`blocking::Blocking`](crate::blocking::Blocking) makes a
/// [`blocking::RedisLock`](crate::blocking::RedisLock). Both get every setting and every kind
/// of store of the builder; this trait is sealed.
///
/// # Examples
///
/// ```
/// fn in_memory<F: ac_redislock::Flavor>(
///     builder: ac_redislock::RedisLockBuilder<F>,
/// ) -> ac_redislock::Result<F::Client> {
///     builder.key_prefix("test:").build_in_memory()
/// }
/// let locks: ac_redislock::blocking::RedisLock =
///     in_memory(ac_redislock::blocking::RedisLock::builder())?;
/// # Ok::<(), ac_redislock::LockError>(())
/// ```
pub trait Flavor: sealed::Sealed + Sized {
    /// The client the builder's `build` methods return.
    type Client;

    /// The runtime the client runs its calls on, if it brings its own; the store is set up
    /// inside it.
    #[doc(hidden)]
    fn runtime() -> Result<Option<Runtime>>;

    /// The client around the async one.
    #[doc(hidden)]
    fn wrap(locks: RedisLock, runtime: Option<Runtime>) -> Self::Client;
}

/// The flavor of [`RedisLockBuilder`] that makes the async [`RedisLock`]: the default.
///
/// # Examples
///
/// ```
/// let builder: ac_redislock::RedisLockBuilder<ac_redislock::Async> = ac_redislock::RedisLock::builder();
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Async;

impl sealed::Sealed for Async {}

impl Flavor for Async {
    type Client = RedisLock;

    fn runtime() -> Result<Option<Runtime>> {
        Ok(None)
    }

    fn wrap(locks: RedisLock, _runtime: Option<Runtime>) -> RedisLock {
        locks
    }
}

impl RedisLock {
    /// Creates a client with default options on your redis-rs async connection.
    ///
    /// Any connection that implements redis-rs's [`ConnectionLike`] and is a cheap `Clone`
    /// handle works: `MultiplexedConnection`, `ConnectionManager` (which reconnects), or a
    /// cluster connection. Each call works on its own clone, so many calls share one connection
    /// concurrently. A call that finds the connection dead is sent once more, which succeeds
    /// on a `ConnectionManager` or a cluster connection (they open a fresh one); a
    /// `MultiplexedConnection` stays broken once it broke, so prefer a `ConnectionManager`.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let client = redis::Client::open("redis://127.0.0.1/")?;
    /// let conn = client.get_multiplexed_async_connection().await?;
    /// let locks = ac_redislock::RedisLock::new(conn);
    /// # Ok(()) }
    /// ```
    pub fn new<C>(conn: C) -> Self
    where
        C: ConnectionLike + Clone + Send + Sync + 'static,
    {
        let config = Config::default();
        let connect = Connect {
            command_timeout: config.command_timeout,
            tls: None,
            pubsub: Vec::new(),
        };
        let store = connect::on_connection(conn, &connect);
        Self::from_core(Core::new(Box::new(store), config))
    }

    /// Creates a client with default options from a URL: `redis://[user:password@]host[:port][/db]`,
    /// `rediss://` for TLS, or `unix:///path/to/redis.sock`.
    ///
    /// The connection is opened on first use and re-opened after it breaks (a
    /// `ConnectionManager`), so a client made while Redis is down starts working when Redis
    /// comes back; until then each call fails with [`Unavailable`](crate::LockError::Unavailable).
    /// A connection that died while unused (closed by Redis's `timeout` or a proxy, killed, lost
    /// in a restart) costs no error: the call that finds it dead is sent once more on a fresh
    /// connection, within the same command timeout.
    ///
    /// # Errors
    ///
    /// [`InvalidInput`](crate::LockError::InvalidInput) if the URL does not parse (the message never
    /// repeats the URL, which may hold a password), or if called outside a Tokio runtime.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn run() -> ac_redislock::Result<()> {
    /// let locks = ac_redislock::RedisLock::from_url("redis://127.0.0.1:6379/0")?;
    /// # Ok(()) }
    /// ```
    pub fn from_url(url: &str) -> Result<Self> {
        Self::builder().build_from_url(url)
    }

    /// Creates a client on an in-process store, the original's fallback when no Redis is given.
    ///
    /// It has the same semantics as Redis (expiry honoured, compare on release) but locks only
    /// within this process: each call to `in_memory` makes a new, empty store, shared by the
    /// clones of the returned client.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> ac_redislock::Result<()> {
    /// use ac_redislock::{LockParams, RedisLock};
    /// let locks = RedisLock::in_memory();
    /// let token = locks.lock_key(LockParams::new("jobs:42")).await?;
    /// assert_eq!(locks.get_lock("jobs:42").await?, Some(token));
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn in_memory() -> Self {
        Self::from_core(Core::new(Box::<MemoryStore>::default(), Config::default()))
    }

    /// Starts a builder for a client with options.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let locks = ac_redislock::RedisLock::builder()
    ///     .suppress_mismatch(true)
    ///     .command_timeout(Duration::from_secs(1))
    ///     .build_in_memory()?;
    /// # Ok::<(), ac_redislock::LockError>(())
    /// ```
    pub fn builder() -> RedisLockBuilder {
        RedisLockBuilder::default()
    }
}

/// Options for a [`RedisLock`] (or, as [`blocking::RedisLockBuilder`](crate::blocking::RedisLockBuilder),
/// for a [`blocking::RedisLock`](crate::blocking::RedisLock)); finish with one of the `build`
/// methods, one per kind of store: [`build_from_url`](Self::build_from_url),
/// [`build`](Self::build) (your own connection), [`build_cluster`](Self::build_cluster),
/// [`build_sentinel`](Self::build_sentinel) (and [`build_sentinel_with`](Self::build_sentinel_with)),
/// [`build_redlock`](Self::build_redlock),
/// [`build_redlock_on`](Self::build_redlock_on), [`build_in_memory`](Self::build_in_memory).
///
/// The [`Flavor`] parameter says which client the `build` methods make; it is [`Async`]
/// unless the builder came from [`blocking::RedisLock::builder`](crate::blocking::RedisLock::builder).
///
/// # Default
///
/// - `suppress_mismatch`: `false` (mismatches on release are logged at warn and returned);
/// - `log_level`: [`Level::DEBUG`] for lock-attempt events (the original's `logLevel`);
/// - `key_prefix`: none, so keys are the same bytes the Node original uses;
/// - `command_timeout`: [`DEFAULT_COMMAND_TIMEOUT`](crate::DEFAULT_COMMAND_TIMEOUT) (3 s);
/// - `max_key_len`: [`DEFAULT_MAX_KEY_LEN`](crate::DEFAULT_MAX_KEY_LEN) (1 KiB, prefix included);
/// - `max_value_len`: [`DEFAULT_MAX_VALUE_LEN`](crate::DEFAULT_MAX_VALUE_LEN) (1 KiB);
/// - `max_expires`: [`DEFAULT_MAX_EXPIRES`](crate::DEFAULT_MAX_EXPIRES) (24 h);
/// - `redlock_node_timeout`: [`DEFAULT_REDLOCK_NODE_TIMEOUT`](crate::DEFAULT_REDLOCK_NODE_TIMEOUT) (50 ms);
/// - `drift_factor`: 0.01.
///
/// # Examples
///
/// ```no_run
/// use std::time::Duration;
/// use tracing::Level;
///
/// # async fn run() -> ac_redislock::Result<()> {
/// let locks = ac_redislock::RedisLock::builder()
///     .suppress_mismatch(true)
///     .log_level(Level::INFO)
///     .key_prefix("myapp:")
///     .command_timeout(Duration::from_millis(500))
///     .build_from_url("redis://127.0.0.1/")?;
/// # Ok(()) }
/// ```
#[must_use = "the builder does nothing until one of its `build` methods is called"]
pub struct RedisLockBuilder<F: Flavor = Async> {
    config: Config,
    tls: Option<TlsConfig>,
    pubsub: Vec<redis::Client>,
    redlock: RedlockOptions,
    flavor: PhantomData<fn() -> F>,
}

impl<F: Flavor> Default for RedisLockBuilder<F> {
    fn default() -> Self {
        Self {
            config: Config::default(),
            tls: None,
            pubsub: Vec::new(),
            redlock: RedlockOptions::default(),
            flavor: PhantomData,
        }
    }
}

impl<F: Flavor> Clone for RedisLockBuilder<F> {
    fn clone(&self) -> Self {
        Self {
            config: self.config.clone(),
            tls: self.tls.clone(),
            pubsub: self.pubsub.clone(),
            redlock: self.redlock,
            flavor: PhantomData,
        }
    }
}

impl<F: Flavor> fmt::Debug for RedisLockBuilder<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisLockBuilder")
            .field("config", &self.config)
            .field("tls", &self.tls)
            .field("pubsub_clients", &self.pubsub.len())
            .field("redlock", &self.redlock)
            .finish()
    }
}

impl<F: Flavor> RedisLockBuilder<F> {
    /// Sets the instance default for `suppress_mismatch`; [`ReleaseParams::suppress_mismatch`](crate::ReleaseParams::suppress_mismatch)
    /// overrides it per call.
    ///
    /// # Examples
    ///
    /// ```
    /// let builder = ac_redislock::RedisLock::builder().suppress_mismatch(true);
    /// ```
    pub fn suppress_mismatch(mut self, suppress: bool) -> Self {
        self.config.suppress_mismatch = suppress;
        self
    }

    /// Sets the `tracing` level of the event logged for each lock attempt (the original's
    /// `logLevel`). Mismatches are always at warn, backend errors at error.
    ///
    /// # Examples
    ///
    /// ```
    /// let builder = ac_redislock::RedisLock::builder().log_level(tracing::Level::INFO);
    /// ```
    pub fn log_level(mut self, level: Level) -> Self {
        self.config.log_level = level;
        self
    }

    /// Sets a prefix added to every key on the wire (none by default). Node workers must use
    /// the same full key to share the locks.
    ///
    /// # Examples
    ///
    /// ```
    /// let builder = ac_redislock::RedisLock::builder().key_prefix("lock:");
    /// ```
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.config.key_prefix = prefix.into();
        self
    }

    /// Sets how long one Redis call may take before it fails with
    /// [`Unavailable`](crate::LockError::Unavailable); also the connect timeout of clients made from a
    /// URL. No call waits longer than this on a dead server.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let builder = ac_redislock::RedisLock::builder().command_timeout(Duration::from_secs(1));
    /// ```
    pub fn command_timeout(mut self, timeout: Duration) -> Self {
        self.config.command_timeout = timeout;
        self
    }

    /// Sets the maximum key length in bytes, prefix included.
    ///
    /// # Examples
    ///
    /// ```
    /// let builder = ac_redislock::RedisLock::builder().max_key_len(256);
    /// ```
    pub fn max_key_len(mut self, max: usize) -> Self {
        self.config.max_key_len = max;
        self
    }

    /// Sets the maximum value length in bytes.
    ///
    /// # Examples
    ///
    /// ```
    /// let builder = ac_redislock::RedisLock::builder().max_value_len(4096);
    /// ```
    pub fn max_value_len(mut self, max: usize) -> Self {
        self.config.max_value_len = max;
        self
    }

    /// Sets the longest expiry `lock_key` accepts.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let builder = ac_redislock::RedisLock::builder().max_expires(Duration::from_secs(7 * 86_400));
    /// ```
    pub fn max_expires(mut self, max: Duration) -> Self {
        self.config.max_expires = max;
        self
    }

    /// Labels this client's metric series with the lock's key, as the caller gave it (off by
    /// default: see [`metrics`](crate::metrics)). Each key is a series of its own in the
    /// recorder, kept for the life of the program: turn it on for a few known keys, never
    /// for keys made per job.
    ///
    /// # Examples
    ///
    /// ```
    /// let builder = ac_redislock::RedisLock::builder().metrics_key_label(true);
    /// ```
    #[cfg(feature = "metrics")]
    #[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
    pub fn metrics_key_label(mut self, on: bool) -> Self {
        self.config.metrics_keys = on;
        self
    }

    /// Trusts the CA in `pem` (a PEM certificate) for `rediss://` URLs, instead of the system's
    /// root certificates. A server whose certificate does not chain to it is refused: there is
    /// never a fallback to plaintext.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let ca = std::fs::read("/etc/redis/ca.crt")?;
    /// # let _ = async {
    /// let locks = ac_redislock::RedisLock::builder()
    ///     .tls_root_certificate(ca)
    ///     .build_from_url("rediss://redis.internal:6380/")?;
    /// # Ok::<(), ac_redislock::LockError>(()) };
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
    pub fn tls_root_certificate(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.tls.get_or_insert_with(TlsConfig::default).root_cert = Some(pem.into());
        self
    }

    /// Presents this client certificate and key (both PEM) to `rediss://` servers that require
    /// one (`tls-auth-clients yes`).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let (cert, key) = (std::fs::read("client.crt")?, std::fs::read("client.key")?);
    /// let builder = ac_redislock::RedisLock::builder().tls_client_certificate(cert, key);
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
    pub fn tls_client_certificate(
        mut self,
        cert_pem: impl Into<Vec<u8>>,
        key_pem: impl Into<Vec<u8>>,
    ) -> Self {
        self.tls.get_or_insert_with(TlsConfig::default).client =
            Some((cert_pem.into(), key_pem.into()));
        self
    }

    /// Gives a client on your own connection ([`build`](Self::build)) a way to open its
    /// pub/sub connection, so that waiters wake up when a lock is released instead of polling.
    /// Clients made from a URL have it already. Call it again to add fallbacks (other nodes of
    /// a cluster): the subscriber moves to the next when one fails.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let client = redis::Client::open("redis://127.0.0.1/")?;
    /// let conn = client.get_multiplexed_async_connection().await?;
    /// let locks = ac_redislock::RedisLock::builder().pubsub_client(client).build(conn)?;
    /// # Ok(()) }
    /// ```
    pub fn pubsub_client(mut self, client: redis::Client) -> Self {
        self.pubsub.push(client);
        self
    }

    /// Sets how long a Redlock node may take to answer before it counts as failed
    /// ([`build_redlock`](Self::build_redlock)); default [`DEFAULT_REDLOCK_NODE_TIMEOUT`](crate::DEFAULT_REDLOCK_NODE_TIMEOUT).
    /// Keep it far below the lease: the validity left after an attempt is the ttl minus the
    /// time the attempt took.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let builder = ac_redislock::RedisLock::builder().redlock_node_timeout(Duration::from_millis(20));
    /// ```
    pub fn redlock_node_timeout(mut self, timeout: Duration) -> Self {
        self.redlock.node_timeout = timeout;
        self
    }

    /// Sets the clock-drift margin as a share of the ttl (default 0.01: a lease's validity is
    /// `ttl - elapsed - (0.01 * ttl + 2 ms)`). Used by Redlock, where the nodes' clocks count.
    ///
    /// # Examples
    ///
    /// ```
    /// let builder = ac_redislock::RedisLock::builder().drift_factor(0.02);
    /// ```
    pub fn drift_factor(mut self, factor: f64) -> Self {
        self.redlock.drift_factor = factor;
        self
    }

    /// Builds a client from a URL (see [`RedisLock::from_url`]).
    ///
    /// # Errors
    ///
    /// [`InvalidInput`](crate::LockError::InvalidInput) for a bad setting or URL, or outside a Tokio
    /// runtime.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn run() -> ac_redislock::Result<()> {
    /// let locks = ac_redislock::RedisLock::builder().build_from_url("unix:///run/redis.sock")?;
    /// # Ok(()) }
    /// ```
    pub fn build_from_url(self, url: &str) -> Result<F::Client> {
        self.finish(|connect| Ok(Box::new(connect::from_url(url, connect)?)))
    }

    /// Builds a client on your redis-rs async connection (see [`RedisLock::new`]).
    ///
    /// # Errors
    ///
    /// [`InvalidInput`](crate::LockError::InvalidInput) if a setting is out of range.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let client = redis::Client::open("redis://127.0.0.1/")?;
    /// let conn = redis::aio::ConnectionManager::new(client).await?;
    /// let locks = ac_redislock::RedisLock::builder().suppress_mismatch(true).build(conn)?;
    /// # Ok(()) }
    /// ```
    pub fn build<C>(self, conn: C) -> Result<F::Client>
    where
        C: ConnectionLike + Clone + Send + Sync + 'static,
    {
        self.finish(|connect| Ok(Box::new(connect::on_connection(conn, connect))))
    }

    /// Builds a client on a Redis Cluster, from the URLs of some of its nodes (one is enough;
    /// the others are discovered). Every auxiliary key (waiters, fencing counter) shares its
    /// lock key's hash slot, redirections (`MOVED`, `ASK`) are followed, and scripts are loaded
    /// again on a node that does not know them. Release wake-ups come over pub/sub from one of
    /// the nodes, the next one if it fails.
    ///
    /// The connection is opened on first use; until the cluster answers, calls fail with
    /// [`Unavailable`](crate::LockError::Unavailable). Keys with a `}` but no `{hash tag}` are refused
    /// ([`InvalidInput`](crate::LockError::InvalidInput)): their auxiliary keys could not share their
    /// slot.
    ///
    /// # Errors
    ///
    /// [`InvalidInput`](crate::LockError::InvalidInput) for no URL, a bad URL, or outside a Tokio
    /// runtime.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn run() -> ac_redislock::Result<()> {
    /// let locks = ac_redislock::RedisLock::builder()
    ///     .build_cluster(&["redis://10.0.0.1:7000/", "redis://10.0.0.2:7000/"])?;
    /// let guard = locks.acquire("{reports}:daily").await?;
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "cluster")]
    #[cfg_attr(docsrs, doc(cfg(feature = "cluster")))]
    pub fn build_cluster(self, urls: &[&str]) -> Result<F::Client> {
        self.finish(|connect| Ok(Box::new(connect::cluster(urls, connect)?)))
    }

    /// Builds a client on the master of a Redis Sentinel group: `sentinel_urls` are the
    /// sentinels (`redis://host:26379/`), `master_name` the group's name in their
    /// configuration. The sentinels are asked for the master on first use and again after a
    /// failover (a broken connection, or `READONLY` from a demoted master), so the same client
    /// keeps working on the new master.
    ///
    /// A sentinel that has a password of its own (`requirepass` in `sentinel.conf`) gets it
    /// in its URL: `redis://:sentinel-password@host:26379/`. That password is for the
    /// sentinel only; a master with a password (`requirepass`, known to the sentinels as
    /// `sentinel auth-pass`), a database other than 0, or TLS needs
    /// [`build_sentinel_with`](Self::build_sentinel_with). This method logs in to the master
    /// with no password, on database 0, without TLS.
    ///
    /// Replication to the replicas is asynchronous: a lock granted just before a failover may
    /// not have reached the replica that takes over. Ask for
    /// [`AcquireOptions::replicas`](crate::AcquireOptions::replicas) to wait for replicas to
    /// acknowledge it, and check [`LockGuard::replicas_acked`](crate::LockGuard::replicas_acked).
    ///
    /// # Errors
    ///
    /// [`InvalidInput`](crate::LockError::InvalidInput) for no or bad URLs, TLS certificates
    /// given (they are for the master: see [`SentinelMaster::tls`](crate::SentinelMaster::tls)),
    /// or outside a Tokio runtime.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn run() -> ac_redislock::Result<()> {
    /// let locks = ac_redislock::RedisLock::builder().build_sentinel(
    ///     &["redis://10.0.0.1:26379/", "redis://:sentinel-password@10.0.0.2:26379/"],
    ///     "mymaster",
    /// )?;
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "sentinel")]
    #[cfg_attr(docsrs, doc(cfg(feature = "sentinel")))]
    pub fn build_sentinel(self, sentinel_urls: &[&str], master_name: &str) -> Result<F::Client> {
        self.build_sentinel_with(sentinel_urls, master_name, &SentinelMaster::new())
    }

    /// Builds a client on the master of a Redis Sentinel group, as
    /// [`build_sentinel`](Self::build_sentinel), logging in to the master with `master`: its
    /// user name and password, database and TLS. The same settings are used for the replica
    /// that takes over after a failover, and for the wake-up (pub/sub) connection.
    ///
    /// The sentinels' own credentials stay in their URLs (`redis://:sentinel-password@host:26379/`):
    /// the master's password is never sent to a sentinel, nor the sentinels' to the master.
    /// A wrong master password fails each call with [`LockError::Redis`](crate::LockError::Redis)
    /// (`WRONGPASS`, or `NOAUTH` when none was given); no error shows a password.
    ///
    /// With [`SentinelMaster::tls`](crate::SentinelMaster::tls), the builder's
    /// [`tls_root_certificate`](Self::tls_root_certificate) and
    /// [`tls_client_certificate`](Self::tls_client_certificate) apply to the master; the
    /// sentinel URLs then must all carry the same user name and password.
    ///
    /// # Errors
    ///
    /// [`InvalidInput`](crate::LockError::InvalidInput) for no or bad URLs, a user name without a
    /// password, certificates for a master reached without TLS, or outside a Tokio runtime.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use ac_redislock::SentinelMaster;
    ///
    /// # async fn run() -> ac_redislock::Result<()> {
    /// let password = std::env::var("REDIS_MASTER_PASSWORD").unwrap_or_default();
    /// let locks = ac_redislock::RedisLock::builder().build_sentinel_with(
    ///     &["redis://:sentinel-password@10.0.0.1:26379/", "redis://:sentinel-password@10.0.0.2:26379/"],
    ///     "mymaster",
    ///     &SentinelMaster::new().password(password).db(2),
    /// )?;
    /// let guard = locks.acquire("reports:daily").await?;
    /// # Ok(()) }
    /// ```
    ///
    /// The blocking client takes the same settings:
    ///
    /// ```no_run
    /// # fn run() -> ac_redislock::Result<()> {
    /// let locks = ac_redislock::blocking::RedisLock::builder().build_sentinel_with(
    ///     &["redis://10.0.0.1:26379/"],
    ///     "mymaster",
    ///     &ac_redislock::SentinelMaster::new().username("locker").password("s3cret"),
    /// )?;
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "sentinel")]
    #[cfg_attr(docsrs, doc(cfg(feature = "sentinel")))]
    pub fn build_sentinel_with(
        self,
        sentinel_urls: &[&str],
        master_name: &str,
        master: &SentinelMaster,
    ) -> Result<F::Client> {
        self.finish(|connect| {
            Ok(Box::new(connect::sentinel(
                sentinel_urls,
                master_name,
                master,
                connect,
            )?))
        })
    }

    /// Builds a Redlock client over independent Redis masters, one URL each (see "Choosing a
    /// deployment" in the [crate docs](crate) for what it does and does not promise).
    ///
    /// A lock is granted when a majority (N/2 + 1) of the nodes granted it, each answering
    /// within the [node timeout](Self::redlock_node_timeout), and time is left of the lease
    /// (`ttl - elapsed - drift`); a failed attempt is released on every node before the call
    /// returns. Extending needs a majority too; releasing is sent to every node. The guard
    /// API, renewal and waiting work unchanged (waiters poll: there is no release wake-up
    /// across nodes). Fencing tokens are refused: independent counters cannot be monotonic.
    ///
    /// # Errors
    ///
    /// [`InvalidInput`](crate::LockError::InvalidInput) for no URL, a bad URL, TLS and plain URLs
    /// mixed, or outside a Tokio runtime.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn run() -> ac_redislock::Result<()> {
    /// let locks = ac_redislock::RedisLock::builder().build_redlock(&[
    ///     "redis://10.0.0.1:6379/",
    ///     "redis://10.0.0.2:6379/",
    ///     "redis://10.0.0.3:6379/",
    /// ])?;
    /// let guard = locks.acquire("reports:daily").await?;
    /// # Ok(()) }
    /// ```
    pub fn build_redlock(self, urls: &[&str]) -> Result<F::Client> {
        let options = self.redlock;
        self.finish(|connect| Ok(Box::new(RedlockStore::from_urls(urls, connect, options)?)))
    }

    /// Builds a Redlock client over your own connections, one per independent master (see
    /// [`build_redlock`](Self::build_redlock)).
    ///
    /// # Errors
    ///
    /// [`InvalidInput`](crate::LockError::InvalidInput) for no connection or a bad setting.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn run(urls: Vec<String>) -> Result<(), Box<dyn std::error::Error>> {
    /// let mut conns = Vec::new();
    /// for url in &urls {
    ///     conns.push(redis::Client::open(url.as_str())?.get_multiplexed_async_connection().await?);
    /// }
    /// let locks = ac_redislock::RedisLock::builder().build_redlock_on(conns)?;
    /// # Ok(()) }
    /// ```
    pub fn build_redlock_on<C>(self, conns: Vec<C>) -> Result<F::Client>
    where
        C: ConnectionLike + Clone + Send + Sync + 'static,
    {
        let options = self.redlock;
        self.finish(|connect| {
            Ok(Box::new(RedlockStore::on_connections(
                conns, connect, options,
            )?))
        })
    }

    /// Builds a client on a new in-process store (see [`RedisLock::in_memory`]).
    ///
    /// # Errors
    ///
    /// [`InvalidInput`](crate::LockError::InvalidInput) if a setting is out of range.
    ///
    /// # Examples
    ///
    /// ```
    /// let locks = ac_redislock::RedisLock::builder().key_prefix("test:").build_in_memory()?;
    /// # Ok::<(), ac_redislock::LockError>(())
    /// ```
    pub fn build_in_memory(self) -> Result<F::Client> {
        self.finish(|_| Ok(Box::<MemoryStore>::default()))
    }

    /// Checks the settings, sets up the store with `store` (inside the flavor's runtime, if it
    /// brings one) and makes the client.
    fn finish(self, store: impl FnOnce(&Connect) -> Result<Box<dyn Store>>) -> Result<F::Client> {
        self.config.validate()?;
        self.redlock.validate()?;
        let connect = Connect {
            command_timeout: self.config.command_timeout,
            tls: self.tls,
            pubsub: self.pubsub,
        };
        let runtime = F::runtime()?;
        let store = {
            // Connections spawn their tasks on the runtime they are made in.
            let _entered = runtime.as_ref().map(Runtime::enter);
            store(&connect)
        };
        let store = match store {
            Ok(store) => store,
            Err(err) => {
                // Never blocks, and is allowed inside an async context, unlike a plain drop.
                if let Some(runtime) = runtime {
                    runtime.shutdown_background();
                }
                return Err(err);
            }
        };
        let locks = RedisLock::from_core(Core::new(store, self.config));
        Ok(F::wrap(locks, runtime))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{InvalidInput, LockError};

    #[test]
    fn from_url_outside_a_runtime_is_an_error_not_a_panic() {
        let err = RedisLock::from_url("redis://127.0.0.1:1/").unwrap_err();
        assert!(matches!(
            err,
            LockError::InvalidInput(InvalidInput::NoRuntime)
        ));
    }

    #[test]
    fn settings_out_of_range_are_rejected() {
        let cases = [
            RedisLock::builder().command_timeout(Duration::ZERO),
            RedisLock::builder().max_key_len(0),
            RedisLock::builder().max_key_len(4).key_prefix("long:"),
            RedisLock::builder().max_value_len(0),
            RedisLock::builder().max_expires(Duration::from_micros(10)),
            RedisLock::builder().redlock_node_timeout(Duration::ZERO),
            RedisLock::builder().drift_factor(0.5),
        ];
        for builder in cases {
            let err = builder.build_in_memory().unwrap_err();
            assert!(
                matches!(err, LockError::InvalidInput(InvalidInput::Setting { .. })),
                "{err:?}"
            );
        }
    }

    #[cfg(all(feature = "sentinel", feature = "tls"))]
    #[tokio::test]
    async fn sentinel_certificates_are_for_a_master_reached_over_tls() {
        use crate::SentinelMaster;
        const CA: &[u8] = b"-----BEGIN CERTIFICATE-----";
        let sentinels = ["redis://:s1@127.0.0.1:1/", "redis://:s1@127.0.0.2:1/"];
        let master = SentinelMaster::new().password("hunter2-master");

        // Certificates, and a master reached in plaintext: refused, never ignored.
        let err = RedisLock::builder()
            .tls_root_certificate(CA)
            .build_sentinel_with(&sentinels, "m", &master)
            .unwrap_err();
        assert!(
            matches!(&err, LockError::InvalidInput(InvalidInput::Url(why)) if why.contains("tls(true)")),
            "{err:?}"
        );

        // Over TLS, the certificates go through redis-rs's builder: one sentinel login for all.
        let master = master.tls(true);
        let err = RedisLock::builder()
            .tls_root_certificate(CA)
            .build_sentinel_with(
                &["redis://:s1@127.0.0.1:1/", "redis://:s2@127.0.0.2:1/"],
                "m",
                &master,
            )
            .unwrap_err();
        assert!(
            matches!(&err, LockError::InvalidInput(InvalidInput::Url(why)) if why.contains("same")),
            "{err:?}"
        );
        let shown = format!("{err} {err:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("s2"),
            "{shown}"
        );
    }

    #[cfg(feature = "sentinel")]
    #[test]
    fn sentinel_master_settings_never_show_the_password() {
        let master = crate::SentinelMaster::new()
            .username("locker")
            .password("hunter2-master")
            .db(4);
        let shown = format!("{master:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(
            shown.contains("locker") && shown.contains("<redacted>"),
            "{shown}"
        );
    }
}
