//! Connection setup for the Redis store: URLs (plain, TLS, unix sockets), a Redis Cluster, a
//! Sentinel group, or the caller's own connection. Nothing here ever repeats a URL in an error:
//! it may carry a password.

use std::fmt;
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};

use super::RedisStore;
use super::wake::WakeSource;
use crate::error::{InvalidInput, LockError, Result};

/// What the builder tells a Redis store about its connections.
#[derive(Debug, Clone)]
pub(crate) struct Connect {
    /// How long one call may take; also the connect timeout.
    pub(crate) command_timeout: Duration,
    /// Certificates for `rediss://` URLs, if any were given.
    pub(crate) tls: Option<TlsConfig>,
    /// Clients to open the release subscriber with, for stores on the caller's connection.
    pub(crate) pubsub: Vec<redis::Client>,
}

/// Certificates for `rediss://` connections. Its `Debug` shows no key material.
#[derive(Clone, Default)]
pub(crate) struct TlsConfig {
    pub(crate) root_cert: Option<Vec<u8>>,
    pub(crate) client: Option<(Vec<u8>, Vec<u8>)>,
}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConfig")
            .field("root_cert", &self.root_cert.as_ref().map(|_| "<pem>"))
            .field("client", &self.client.as_ref().map(|_| "<cert and key>"))
            .finish()
    }
}

#[cfg(feature = "tls")]
impl TlsConfig {
    fn certificates(&self) -> redis::TlsCertificates {
        redis::TlsCertificates {
            client_tls: self
                .client
                .as_ref()
                .map(|(cert, key)| redis::ClientTlsConfig {
                    client_cert: cert.clone(),
                    client_key: key.clone(),
                }),
            root_cert: self.root_cert.clone(),
        }
    }
}

/// Fails with [`InvalidInput::NoRuntime`] outside a Tokio runtime: connections that spawn
/// their driver need one.
fn need_runtime() -> Result<()> {
    tokio::runtime::Handle::try_current()
        .map(|_| ())
        .map_err(|_| InvalidInput::NoRuntime.into())
}

/// A store on the caller's own connection; wake-ups come through `connect.pubsub`, if any.
pub(crate) fn on_connection<C>(conn: C, connect: &Connect) -> RedisStore<C>
where
    C: ConnectionLike + Clone + Send + Sync + 'static,
{
    let wake = WakeSource::Clients(connect.pubsub.clone());
    RedisStore::new(conn, wake, false, connect.command_timeout)
}

/// A store from a URL, on a reconnecting connection (opened on first use).
pub(crate) fn from_url(url: &str, connect: &Connect) -> Result<RedisStore<ConnectionManager>> {
    let client = open_client(url, connect.tls.as_ref())?;
    need_runtime()?;
    let manager = connection_manager(client.clone(), connect.command_timeout)?;
    let wake = WakeSource::Clients(vec![client]);
    Ok(RedisStore::new(
        manager,
        wake,
        true,
        connect.command_timeout,
    ))
}

/// A Redlock node from a URL: a reconnecting connection that wakes no one (a release on N
/// nodes is not one event, so Redlock waiters poll).
pub(crate) fn redlock_node(url: &str, connect: &Connect) -> Result<RedisStore<ConnectionManager>> {
    let client = open_client(url, connect.tls.as_ref())?;
    let manager = connection_manager(client, connect.command_timeout)?;
    Ok(RedisStore::new(
        manager,
        WakeSource::None,
        true,
        connect.command_timeout,
    ))
}

/// A Redlock node on the caller's own connection (waking no one, as [`redlock_node`]).
pub(crate) fn redlock_node_on<C>(conn: C, connect: &Connect) -> RedisStore<C>
where
    C: ConnectionLike + Clone + Send + Sync + 'static,
{
    RedisStore::new(conn, WakeSource::None, false, connect.command_timeout)
}

/// A store on a Redis Cluster, from the URLs of some of its nodes; wake-ups from any of them.
#[cfg(feature = "cluster")]
pub(crate) fn cluster(
    urls: &[&str],
    connect: &Connect,
) -> Result<RedisStore<redis::cluster_async::ClusterConnection>> {
    if urls.is_empty() {
        return Err(InvalidInput::Url("a cluster needs at least one node URL".into()).into());
    }
    need_runtime()?;
    // Each URL is checked (and its password kept out of errors) as a single-node URL.
    let pubsub = urls
        .iter()
        .map(|url| open_client(url, connect.tls.as_ref()))
        .collect::<Result<Vec<_>>>()?;
    let timeout = connect.command_timeout;
    let mut cluster = redis::cluster::ClusterClient::builder(urls.iter().copied())
        .connection_timeout(timeout)
        .response_timeout(timeout)
        .overall_response_timeout(Some(timeout));
    #[cfg(feature = "tls")]
    if let Some(tls) = &connect.tls {
        cluster = cluster.certs(tls.certificates());
    }
    let cluster = cluster.build().map_err(|_| {
        InvalidInput::Url("the cluster node URLs could not be used together".into())
    })?;
    let config = redis::cluster::ClusterConfig::new()
        .set_connection_timeout(timeout)
        .set_response_timeout(timeout);
    let conn = cluster.get_pending_async_connection_with_config(config);
    Ok(RedisStore::new(
        conn,
        WakeSource::Clients(pubsub),
        true,
        timeout,
    ))
}

/// A store on the master of a Sentinel group, asked of the sentinels again after a failover.
/// The sentinels' URLs carry their own credentials; `master` says how to log in to the master
/// (and wake-ups use the same). `connect.tls`, if given, is for the master, which must then be
/// reached over TLS.
#[cfg(feature = "sentinel")]
pub(crate) fn sentinel(
    sentinel_urls: &[&str],
    master_name: &str,
    master: &super::sentinel::SentinelMaster,
    connect: &Connect,
) -> Result<RedisStore<super::sentinel::SentinelConnection>> {
    use redis::sentinel::{SentinelClient, SentinelServerType};

    if sentinel_urls.is_empty() {
        return Err(InvalidInput::Url("Sentinel needs at least one sentinel URL".into()).into());
    }
    let sentinels = sentinel_urls
        .iter()
        .map(|url| open_client(url, None))
        .collect::<Result<Vec<_>>>()?;
    let node = master.node_info()?;
    need_runtime()?;
    // redis-rs takes the name as a `String` without its TLS feature, `impl AsRef<str>` with it.
    #[allow(clippy::unnecessary_to_owned)]
    let sentinel = match &connect.tls {
        None => SentinelClient::build(
            sentinel_urls.to_vec(),
            master_name.to_owned(),
            Some(node),
            SentinelServerType::Master,
        )
        .map_err(|_| InvalidInput::Url("the sentinel URLs could not be used".into()))?,
        // Certificates mean TLS was wanted: never connect in plaintext instead.
        Some(_) if !master.uses_tls() => {
            return Err(InvalidInput::Url(
                "TLS certificates were given for a Sentinel master reached without TLS: \
                 use SentinelMaster::tls(true)"
                    .into(),
            )
            .into());
        }
        Some(tls) => sentinel_with_certificates(&sentinels, master_name, master, tls)?,
    };
    let conn = super::sentinel::SentinelConnection::new(sentinel, connect.command_timeout);
    let wake = WakeSource::Sentinel(conn.clone());
    Ok(RedisStore::new(conn, wake, false, connect.command_timeout))
}

/// A Sentinel client whose master connections use `tls`'s certificates. redis-rs takes them
/// only through its `SentinelClientBuilder`, which has one user name and password for all
/// sentinels: their URLs must agree on them.
#[cfg(all(feature = "sentinel", feature = "tls"))]
fn sentinel_with_certificates(
    sentinels: &[redis::Client],
    master_name: &str,
    master: &super::sentinel::SentinelMaster,
    tls: &TlsConfig,
) -> Result<redis::sentinel::SentinelClient> {
    use redis::sentinel::{SentinelClientBuilder, SentinelServerType};

    let infos: Vec<&redis::ConnectionInfo> = sentinels
        .iter()
        .map(redis::Client::get_connection_info)
        .collect();
    let logins: Vec<(Option<String>, Option<String>)> = infos
        .iter()
        .map(|info| {
            let settings = info.redis_settings();
            (
                settings.username().map(str::to_owned),
                settings.password().map(str::to_owned),
            )
        })
        .collect();
    // There is at least one sentinel: `sentinel` checked.
    let (sentinel_user, sentinel_password) = logins.first().cloned().unwrap_or_default();
    if logins
        .iter()
        .any(|login| login.0 != sentinel_user || login.1 != sentinel_password)
    {
        return Err(InvalidInput::Url(
            "with TLS certificates for the master, every sentinel URL must carry the same \
             user name and password"
                .into(),
        )
        .into());
    }
    let addresses = infos.iter().map(|info| info.addr().clone());
    let unusable = |_: redis::RedisError| {
        InvalidInput::Url("the sentinel URLs or the certificates could not be used".into())
    };
    let mut builder =
        SentinelClientBuilder::new(addresses, master_name, SentinelServerType::Master)
            .map_err(unusable)?
            .set_client_to_redis_tls_mode(redis::TlsMode::Secure)
            .set_client_to_redis_db(i64::from(master.database()))
            .set_client_to_redis_certificates(tls.certificates());
    if let Some(user) = sentinel_user {
        builder = builder.set_client_to_sentinel_username(user);
    }
    if let Some(password) = sentinel_password {
        builder = builder.set_client_to_sentinel_password(password);
    }
    let (user, password) = master.credentials();
    if let Some(user) = user {
        builder = builder.set_client_to_redis_username(user);
    }
    if let Some(password) = password {
        builder = builder.set_client_to_redis_password(password);
    }
    Ok(builder.build().map_err(unusable)?)
}

#[cfg(all(feature = "sentinel", not(feature = "tls")))]
fn sentinel_with_certificates(
    _sentinels: &[redis::Client],
    _master_name: &str,
    _master: &super::sentinel::SentinelMaster,
    _tls: &TlsConfig,
) -> Result<redis::sentinel::SentinelClient> {
    Err(no_tls())
}

/// The reconnecting connection of a client made from a URL: one connection attempt per call,
/// bounded like the reply by the command timeout, so the manager enforces the timeout itself,
/// and a call that finds the connection broken starts the next attempt.
fn connection_manager(client: redis::Client, timeout: Duration) -> Result<ConnectionManager> {
    let manager_config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout))
        .set_number_of_retries(0);
    ConnectionManager::new_lazy_with_config(client, manager_config)
        .map_err(|err| InvalidInput::Url(err.to_string()).into())
}

/// Parses a Redis URL into a client without ever echoing the URL (it may carry a password).
fn open_client(url: &str, tls: Option<&TlsConfig>) -> Result<redis::Client> {
    let scheme = url.split_once("://").map(|(scheme, _)| scheme);
    match scheme {
        Some("redis" | "unix" | "redis+unix" | "valkey" | "valkey+unix") => {}
        Some("rediss" | "valkeys") if cfg!(feature = "tls") => {}
        Some("rediss" | "valkeys") => return Err(no_tls()),
        _ => {
            return Err(InvalidInput::Url(
                "expected redis://, rediss:// or unix:// followed by an address".into(),
            )
            .into());
        }
    }
    let tls_scheme = matches!(scheme, Some("rediss" | "valkeys"));
    if let Some(tls) = tls {
        if !tls_scheme {
            // Certificates mean TLS was wanted: never connect in plaintext instead.
            return Err(InvalidInput::Url(
                "TLS certificates were given for a URL without TLS: use rediss://".into(),
            )
            .into());
        }
        return open_tls_client(url, tls);
    }
    // redis-rs's error is dropped on purpose: nothing of the URL may come along.
    redis::Client::open(url).map_err(|_| {
        InvalidInput::Url(
            "it does not parse as redis://[user:password@]host[:port][/db] \
             (or rediss://, unix:///path)"
                .into(),
        )
        .into()
    })
}

fn no_tls() -> LockError {
    InvalidInput::Url("rediss:// needs the `tls` feature of ac-redislock".into()).into()
}

#[cfg(feature = "tls")]
fn open_tls_client(url: &str, tls: &TlsConfig) -> Result<redis::Client> {
    redis::Client::build_with_tls(url, tls.certificates()).map_err(|err| {
        let what = if err.kind() == redis::ErrorKind::InvalidClientConfig {
            "the certificates or the URL could not be used"
        } else {
            "it does not parse"
        };
        InvalidInput::Url(format!(
            "{what} (PEM certificates and a rediss:// URL are needed)"
        ))
        .into()
    })
}

#[cfg(not(feature = "tls"))]
fn open_tls_client(_url: &str, _tls: &TlsConfig) -> Result<redis::Client> {
    Err(no_tls())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_urls_are_typed_errors_that_never_echo_the_url() {
        for url in [
            "",
            "localhost:6379",
            "http://user:hunter2@host/",
            "redis://:hunter2@[::1:6379/",
            "redis://:hunter2@host:notaport/",
        ] {
            let err = open_client(url, None).unwrap_err();
            assert!(
                matches!(err, LockError::InvalidInput(InvalidInput::Url(_))),
                "{url}: {err:?}"
            );
            let shown = format!("{err} {err:?}");
            assert!(!shown.contains("hunter2"), "{url}: {shown}");
        }
    }

    #[test]
    fn certificates_with_a_plain_url_are_refused() {
        let tls = TlsConfig {
            root_cert: Some(b"-----BEGIN CERTIFICATE-----".to_vec()),
            client: None,
        };
        let err = open_client("redis://127.0.0.1/", Some(&tls)).unwrap_err();
        assert!(
            matches!(err, LockError::InvalidInput(InvalidInput::Url(ref why)) if why.contains("rediss://")),
            "{err:?}"
        );
        assert!(!format!("{tls:?}").contains("BEGIN"));
    }
}
