//! Test support: our own redis-server processes, a connection wrapper that records what is
//! sent, fixtures that run one behaviour on every store, and log capture.
#![allow(dead_code, unreachable_pub)]

pub mod cluster;
pub mod sentinel;
pub mod server;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use ac_redislock::{RedisLock, RedisLockBuilder};
use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::{Cmd, Pipeline, RedisFuture, Value};

pub use server::{Listen, RedisServer};

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

/// The ACL rules of the least-privileged user the crate works with: the README's line. Every
/// behaviour test on the shared server runs as this user.
pub const LOCKER_ACL: &str = "on >locker-secret resetkeys ~* resetchannels \
    &ac-redislock:released -@all +get +set +del +type +pttl +pexpire +exists +time +zadd +zrem \
    +zcard +zrange +zremrangebyscore +publish +subscribe +evalsha +eval +script|load +ping \
    +hello +select";

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

/// What the restricted user also needs in a Redis Cluster: the slot map and redirections.
pub const LOCKER_CLUSTER_ACL: &str =
    "+cluster|slots +cluster|shards +cluster|nodes +asking +readonly";

/// The shared server's URL for the restricted user.
pub fn locker_url(server: &RedisServer) -> String {
    format!("{}?user=locker&pass=locker-secret", server.url())
}

fn shared_base() -> PathBuf {
    server::per_process_dir(Path::new(env!("CARGO_TARGET_TMPDIR")), "shared")
}

/// A key no other test uses: `<what>:<pid>:<n>`.
pub fn unique_key(what: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!(
        "test:{what}:{}:{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A plain connection to a server, for checks and for playing the Node original.
pub async fn locker_conn(server: &RedisServer) -> MultiplexedConnection {
    redis::Client::open(locker_url(server))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// A plain connection (default user) to a server.
pub async fn raw_conn(server: &RedisServer) -> MultiplexedConnection {
    redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// A connection that records every command it sends (as RESP bytes) before passing it on:
/// proof of what went on the wire, and of what did not.
#[derive(Clone)]
pub struct Recorder<C> {
    inner: C,
    sent: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl<C> Recorder<C> {
    pub fn new(inner: C) -> Self {
        Self {
            inner,
            sent: Arc::default(),
        }
    }

    pub fn log(&self) -> SentLog {
        SentLog(self.sent.clone())
    }
}

impl<C: ConnectionLike + Send> ConnectionLike for Recorder<C> {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        self.sent.lock().unwrap().push(cmd.get_packed_command());
        self.inner.req_packed_command(cmd)
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        self.sent
            .lock()
            .unwrap()
            .push(pipeline.get_packed_pipeline());
        self.inner.req_packed_commands(pipeline, offset, count)
    }

    fn get_db(&self) -> i64 {
        self.inner.get_db()
    }
}

/// What a [`Recorder`] has sent.
#[derive(Clone)]
pub struct SentLog(Arc<Mutex<Vec<Vec<u8>>>>);

impl SentLog {
    pub fn count(&self) -> usize {
        self.0.lock().unwrap().len()
    }

    pub fn bytes(&self) -> usize {
        self.0.lock().unwrap().iter().map(Vec::len).sum()
    }

    pub fn commands(&self) -> Vec<Vec<u8>> {
        self.0.lock().unwrap().clone()
    }

    /// The command names sent, upper-cased (`SET`, `EVALSHA`, ...).
    pub fn names(&self) -> Vec<String> {
        self.commands()
            .iter()
            .map(|packed| {
                let text = String::from_utf8_lossy(packed);
                text.split("\r\n")
                    .nth(2)
                    .unwrap_or_default()
                    .to_ascii_uppercase()
            })
            .collect()
    }

    pub fn clear(&self) {
        self.0.lock().unwrap().clear();
    }
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

/// A plain connection for checks, to a single server or to the cluster.
#[derive(Clone)]
pub enum RawConn {
    Single(MultiplexedConnection),
    Cluster(redis::cluster_async::ClusterConnection),
}

impl ConnectionLike for RawConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(conn) => conn.req_packed_command(cmd),
            Self::Cluster(conn) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(conn) => conn.req_packed_commands(pipeline, offset, count),
            Self::Cluster(conn) => conn.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(conn) => conn.get_db(),
            Self::Cluster(conn) => conn.get_db(),
        }
    }
}

/// A client on one backend, with access to what it sent (Redis) and a raw connection.
pub struct Fixture {
    pub locks: RedisLock,
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
    pub async fn new(backend: Backend) -> Self {
        Self::with(backend, |builder| builder).await
    }

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

    pub fn sent(&self) -> Option<&SentLog> {
        self.sent.as_ref()
    }

    /// A plain connection to the same server or cluster, for checks (not in memory).
    pub fn raw(&self) -> Option<RawConn> {
        self.raw.clone()
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

/// Captures the `tracing` output of the current thread while the returned guard lives.
///
/// One global subscriber (installed on first use) writes into the buffer of the thread the
/// event happens on, if that thread is capturing. A global subscriber, unlike a per-thread
/// default, keeps every callsite enabled whatever other tests run in parallel.
pub struct Logs {
    buf: Arc<Mutex<Vec<u8>>>,
}

thread_local! {
    static CAPTURE: std::cell::RefCell<Option<Arc<Mutex<Vec<u8>>>>> =
        const { std::cell::RefCell::new(None) };
}

impl Logs {
    pub fn capture() -> Self {
        static INSTALLED: OnceLock<()> = OnceLock::new();
        INSTALLED.get_or_init(|| {
            let subscriber = tracing_subscriber::fmt()
                .with_max_level(tracing::Level::TRACE)
                .with_ansi(false)
                .with_writer(|| LogWriter)
                .finish();
            tracing::subscriber::set_global_default(subscriber)
                .expect("no other global tracing subscriber in tests");
        });
        let buf: Arc<Mutex<Vec<u8>>> = Arc::default();
        CAPTURE.with(|c| *c.borrow_mut() = Some(buf.clone()));
        Self { buf }
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.buf.lock().unwrap()).into_owned()
    }

    /// The captured lines that contain `needle`.
    pub fn lines_with(&self, needle: &str) -> Vec<String> {
        self.text()
            .lines()
            .filter(|l| l.contains(needle))
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for Logs {
    fn drop(&mut self) {
        CAPTURE.with(|c| *c.borrow_mut() = None);
    }
}

struct LogWriter;

impl std::io::Write for LogWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        CAPTURE.with(|c| {
            if let Some(buf) = c.borrow().as_ref() {
                buf.lock().unwrap().extend_from_slice(data);
            }
        });
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Waits until `count` waiters are registered for `key` (the `{key}:waiters` set), polling, so
/// a test that needs a registered waiter does not rely on a fixed sleep on a loaded machine.
/// Panics after ten seconds.
pub async fn wait_for_waiters<C: ConnectionLike + Send>(conn: &mut C, key: &str, count: usize) {
    let waiters = format!("{{{key}}}:waiters");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let registered: usize = redis::cmd("ZCARD")
            .arg(&waiters)
            .query_async(conn)
            .await
            .expect("ZCARD");
        if registered >= count {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{registered} of {count} waiters registered for {key} after 10 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}
