//! Plain connections for checks, and the least-privileged user the suites run as.

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::{Cmd, Pipeline, RedisFuture, Value};

use crate::server::RedisServer;

/// The ACL rules of the least-privileged user the library works with: the README's line. Every
/// behaviour test on the shared server runs as this user (`locker`, password `locker-secret`).
pub const LOCKER_ACL: &str = "on >locker-secret resetkeys ~* resetchannels \
    &ac-redislock:released &ac-redislock:wake:* -@all +get +set +del +type +pttl +pexpire \
    +exists +time +zadd +zrem +zcard +zrange +zremrangebyscore +publish \
    +pubsub|numsub +subscribe +evalsha +eval +script|load +ping +hello +select";

/// What the restricted user also needs in a Redis Cluster: the slot map and redirections.
pub const LOCKER_CLUSTER_ACL: &str =
    "+cluster|slots +cluster|shards +cluster|nodes +asking +readonly";

/// A server's URL for the restricted user of [`LOCKER_ACL`] (which must have been created on
/// it).
pub fn locker_url(server: &RedisServer) -> String {
    format!("{}?user=locker&pass=locker-secret", server.url())
}

/// A plain connection to a server as the restricted user, for checks and for playing the Node
/// original.
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

/// A plain connection for checks, to a single server or to a cluster.
#[derive(Clone)]
pub enum RawConn {
    /// A connection to one server.
    Single(MultiplexedConnection),
    /// A connection to a Redis Cluster.
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

/// The name of the `kind` (`"waiters"`, `"fence"`) companion key of the lock at `key`, as the
/// README documents it, written here from that text, so tests check the wire against it:
/// `ac-redislock:<kind>:{<tag>}:<key>` for a key with a hash tag, `ac-redislock:<kind>:{<key>}`
/// for one without a tag or `}`, `ac-redislock:<kind>:{}:<key>` for the rest.
#[must_use]
pub fn companion(key: &str, kind: &str) -> String {
    let tag = key
        .find('{')
        .and_then(|open| {
            key[open + 1..]
                .find('}')
                .map(|len| &key[open + 1..open + 1 + len])
        })
        .filter(|tag| !tag.is_empty());
    match tag {
        Some(tag) => format!("ac-redislock:{kind}:{{{tag}}}:{key}"),
        None if !key.contains('}') => format!("ac-redislock:{kind}:{{{key}}}"),
        None => format!("ac-redislock:{kind}:{{}}:{key}"),
    }
}

/// Waits until `count` waiters are registered for `key` (its waiters companion key), polling,
/// so a test that needs a registered waiter does not rely on a fixed sleep on a loaded machine.
/// Panics after ten seconds.
pub async fn wait_for_waiters<C: ConnectionLike + Send>(conn: &mut C, key: &str, count: usize) {
    let waiters = companion(key, "waiters");
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
