//! The test harness of the `ac-redislock` workspace: `redis-server` processes of its own (on a
//! unix socket, a free TCP port or TLS, never the machine's 6379), a 3-master Redis Cluster, a
//! sentinel, a connection wrapper that records what is sent, capture of `tracing` logs, and the
//! module graph of a crate's source for the architecture tests.
//!
//! The library's integration tests, the CLI's tests, the demo example, the benchmark and the
//! torture tool all use it. It does not depend on `ac-redislock` (the library dev-depends on
//! it), and it is not published.
//!
//! Every process it starts dies with the process that started it, even on a crash (see
//! [`server::spawn_tied_to_this_process`]). `REDISLOCK_SERVER_BIN` and `REDISLOCK_CLI_BIN`
//! pick other `redis-server` and `redis-cli` binaries.
//!
//! ```no_run
//! use ac_redislock_testsupport::{Listen, RedisServer};
//!
//! // A private server on a unix socket in a temporary folder; killed when dropped.
//! let server = RedisServer::start_with(Listen::Unix, &[]);
//! let client = redis::Client::open(server.url()).unwrap();
//! # drop(client);
//! ```

pub mod cluster;
pub mod conn;
pub mod logs;
pub mod modules;
pub mod recorder;
pub mod sentinel;
pub mod server;

use std::sync::atomic::{AtomicUsize, Ordering};

pub use conn::{
    LOCKER_ACL, LOCKER_CLUSTER_ACL, RawConn, companion, locker_conn, locker_url, raw_conn,
    wait_for_waiters,
};
pub use logs::Logs;
pub use recorder::{LoseReply, LoseTrigger, Recorder, SentLog};
pub use server::{Listen, RedisServer};

/// A key no other test uses: `test:<what>:<pid>:<n>`.
pub fn unique_key(what: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!(
        "test:{what}:{}:{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}
