//! Test support of the library's integration tests: the servers shared by the tests of one
//! binary, and fixtures that run one behaviour on every store. The harness itself (servers,
//! cluster, sentinel, recorder, log capture) is the `ac-redislock-testsupport` crate,
//! re-exported here; what stays here needs the library or `CARGO_TARGET_TMPDIR` (which only
//! exists when compiling a test).
// Each test binary compiles this module and uses a part of it.
#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ac_redislock::{RedisLock, RedisLockBuilder};
// The whole harness, under the paths the tests use (`support::RedisServer`,
// `support::server::free_port`, ...). A glob, so that no binary warns about the parts it does
// not use.
pub use ac_redislock_testsupport::*;

/// The server shared by the tests of one test binary, started on first use. It dies with the
/// process (see `server::spawn_tied_to_this_process`). It has the restricted user
/// [`LOCKER_ACL`], as which [`Fixture`] clients connect.
pub fn shared() -> &'static RedisServer {
    static SHARED: OnceLock<RedisServer> = OnceLock::new();
    SHARED.get_or_init(|| {
        let base = shared_base();
        let server = match RedisServer::try_start(Listen::Unix, &[], Some(&base)) {
            Ok(server) => server,
            Err(err) => panic!(
                "could not start {} for the tests ({err}); install it (apt-get install \
                 redis-server) or set REDISLOCK_SERVER_BIN",
                server::server_bin()
            ),
        };
        let mut admin = redis::Client::open(server.url())
            .and_then(|client| client.get_connection())
            .unwrap_or_else(|err| panic!("no admin connection to the shared server: {err}"));
        let mut acl = redis::cmd("ACL");
        acl.arg("SETUSER").arg("locker");
        for rule in LOCKER_ACL.split_whitespace() {
            acl.arg(rule);
        }
        let _: () = acl
            .query(&mut admin)
            .unwrap_or_else(|err| panic!("ACL SETUSER locker {LOCKER_ACL}: {err}"));
        server
    })
}

/// The cluster shared by the tests of one test binary, started on first use, with the
/// restricted user of the suites (plus what a cluster client needs) on every node.
pub fn shared_cluster() -> &'static cluster::Cluster {
    static SHARED: OnceLock<cluster::Cluster> = OnceLock::new();
    SHARED.get_or_init(|| {
        let base = server::per_process_dir(Path::new(env!("CARGO_TARGET_TMPDIR")), "cluster");
        let cluster = cluster::Cluster::start(3, Some(&base));
        let mut acl = redis::cmd("ACL");
        acl.arg("SETUSER").arg("locker");
        for rule in LOCKER_ACL
            .split_whitespace()
            .chain(LOCKER_CLUSTER_ACL.split_whitespace())
        {
            acl.arg(rule);
        }
        cluster.on_every_node(&acl);
        cluster
    })
}

fn shared_base() -> PathBuf {
    server::per_process_dir(Path::new(env!("CARGO_TARGET_TMPDIR")), "shared")
}

/// The stores a behaviour runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The shared redis-server of this test binary, through a recorded multiplexed connection.
    Redis,
    /// The shared 3-master Redis Cluster of this test binary, through a recorded cluster
    /// connection.
    Cluster,
    /// `RedisLock::in_memory`.
    Memory,
}

/// A client on one backend, with access to what it sent (Redis) and a raw connection.
pub struct Fixture {
    /// The client under test.
    pub locks: RedisLock,
    /// The store it runs on.
    pub backend: Backend,
    sent: Option<SentLog>,
    raw: Option<RawConn>,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        // A failing behaviour shows the end of the shared server's log.
        if std::thread::panicking() && self.backend != Backend::Memory {
            eprintln!(
                "---- shared redis-server log ({}) ----\n{}\n----",
                shared().log_path().display(),
                shared().log_tail(40)
            );
        }
    }
}

impl Fixture {
    /// A client with the default options on `backend`.
    pub async fn new(backend: Backend) -> Self {
        Self::with(backend, |builder| builder).await
    }

    /// A client on `backend`, with `options` applied to its builder.
    pub async fn with(
        backend: Backend,
        options: impl FnOnce(RedisLockBuilder) -> RedisLockBuilder,
    ) -> Self {
        let builder = options(RedisLock::builder());
        match backend {
            Backend::Redis => {
                let server = shared();
                let raw = raw_conn(server).await;
                // The client runs as the restricted user; checks use the default user.
                let recorder = Recorder::new(locker_conn(server).await);
                let sent = recorder.log();
                let pubsub = redis::Client::open(locker_url(server)).unwrap();
                Self {
                    locks: builder.pubsub_client(pubsub).build(recorder).unwrap(),
                    backend,
                    sent: Some(sent),
                    raw: Some(RawConn::Single(raw)),
                }
            }
            Backend::Cluster => {
                let cluster = shared_cluster();
                let raw = cluster.conn().await;
                let locker =
                    redis::cluster::ClusterClient::new(cluster.urls_as("locker", "locker-secret"))
                        .unwrap()
                        .get_async_connection()
                        .await
                        .unwrap();
                let recorder = Recorder::new(locker);
                let sent = recorder.log();
                let mut builder = builder;
                for url in cluster.urls_as("locker", "locker-secret") {
                    builder = builder.pubsub_client(redis::Client::open(url).unwrap());
                }
                Self {
                    locks: builder.build(recorder).unwrap(),
                    backend,
                    sent: Some(sent),
                    raw: Some(RawConn::Cluster(raw)),
                }
            }
            Backend::Memory => Self {
                locks: builder.build_in_memory().unwrap(),
                backend,
                sent: None,
                raw: None,
            },
        }
    }

    /// Commands this fixture's client has sent (always 0 in memory: it has no wire).
    pub fn sent_count(&self) -> usize {
        self.sent.as_ref().map_or(0, SentLog::count)
    }

    /// What this fixture's client has sent (`None` in memory).
    pub fn sent(&self) -> Option<&SentLog> {
        self.sent.as_ref()
    }

    /// A plain connection to the same server or cluster, for checks (not in memory).
    pub fn raw(&self) -> Option<RawConn> {
        self.raw.clone()
    }

    /// A second client on the same store: with its own connection on Redis, a clone in memory
    /// (a new in-memory client would be another store).
    pub async fn other_client(&self) -> RedisLock {
        match self.backend {
            Backend::Redis | Backend::Cluster => Fixture::new(self.backend).await.locks.clone(),
            Backend::Memory => self.locks.clone(),
        }
    }
}

/// Runs each named behaviour `async fn name(backend: Backend)` once per store, as
/// `on_redis::name`, `on_cluster::name` and `in_memory::name`.
#[macro_export]
macro_rules! on_every_store {
    ($($name:ident),* $(,)?) => {
        mod on_redis {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name($crate::support::Backend::Redis).await;
                }
            )*
        }
        mod on_cluster {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name($crate::support::Backend::Cluster).await;
                }
            )*
        }
        mod in_memory {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name($crate::support::Backend::Memory).await;
                }
            )*
        }
    };
}

/// Runs each named behaviour `async fn name(backend: Backend, key: String)` on the shared
/// Redis, and on the shared Cluster with a key that has a hash tag and one that has none.
#[macro_export]
macro_rules! on_redis_and_cluster {
    ($($name:ident),* $(,)?) => {
        mod on_redis {
            $(
                #[tokio::test]
                async fn $name() {
                    let key = $crate::support::unique_key(stringify!($name));
                    super::$name($crate::support::Backend::Redis, key).await;
                }
            )*
        }
        mod on_cluster {
            $(
                #[tokio::test]
                async fn $name() {
                    let key = $crate::support::unique_key(stringify!($name));
                    super::$name($crate::support::Backend::Cluster, key).await;
                }
            )*
        }
        mod on_cluster_with_hash_tag {
            $(
                #[tokio::test]
                async fn $name() {
                    let tag = $crate::support::unique_key(stringify!($name));
                    let key = format!("user{{{tag}}}:k");
                    super::$name($crate::support::Backend::Cluster, key).await;
                }
            )*
        }
    };
}

/// The seed API once round: `lock_key` on `key` (granted), a second `lock_key` (refused), and
/// `release_lock` with the value; returns the value the lock held.
pub async fn seed_round(locks: &RedisLock, key: &str) -> String {
    let value = locks
        .lock_key(ac_redislock::LockParams::new(key))
        .await
        .unwrap();
    let second = locks.lock_key(ac_redislock::LockParams::new(key)).await;
    assert!(second.is_err(), "a second lock_key on {key}: {second:?}");
    locks
        .release_lock(ac_redislock::ReleaseParams::new(key).value(value.clone()))
        .await
        .unwrap();
    value
}
