//! The Redis store: the primitives over any redis-rs async connection.

use redis::aio::ConnectionLike;
use redis::{RedisResult, Value};

use super::{Acquire, BoxFuture, Expiry, Release, Store};
use crate::scripts;

/// A store over a cloneable redis-rs connection (multiplexed, `ConnectionManager`, cluster).
/// Each call works on its own clone, so calls run concurrently on one multiplexed connection.
pub(crate) struct RedisStore<C> {
    conn: C,
}

impl<C> RedisStore<C> {
    pub(crate) fn new(conn: C) -> Self {
        Self { conn }
    }
}

impl<C> Store for RedisStore<C>
where
    C: ConnectionLike + Clone + Send + Sync + 'static,
{
    fn acquire<'a>(
        &'a self,
        key: &'a str,
        value: &'a str,
        expiry: Expiry,
    ) -> BoxFuture<'a, RedisResult<Acquire>> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            // The Node original's exact command: SET key value EX seconds NX (PX for
            // milliseconds).
            let mut cmd = redis::cmd("SET");
            cmd.arg(key).arg(value);
            match expiry {
                Expiry::Seconds(secs) => cmd.arg("EX").arg(secs),
                Expiry::Millis(millis) => cmd.arg("PX").arg(millis),
            };
            cmd.arg("NX");
            match cmd.query_async::<Value>(&mut conn).await? {
                Value::Nil => {}
                _ => return Ok(Acquire::Granted),
            }
            // Refused. SET NX only tests existence, so tell a lock from a key of another type
            // (a list, say) that would otherwise look locked forever. This costs a round trip
            // on the refused path only.
            let kind: String = redis::cmd("TYPE").arg(key).query_async(&mut conn).await?;
            Ok(match kind.as_str() {
                // "none": the holder let go between the two commands; still a refusal.
                "string" | "none" => Acquire::Held,
                _ => Acquire::WrongType(kind),
            })
        })
    }

    fn release<'a>(&'a self, key: &'a str, value: &'a str) -> BoxFuture<'a, RedisResult<Release>> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let outcome: i64 = scripts::RELEASE
                .key(key)
                .arg(value)
                .invoke_async(&mut conn)
                .await?;
            Ok(match outcome {
                1 => Release::Released,
                0 => Release::NotHeld,
                _ => Release::NotOwner,
            })
        })
    }

    fn force_release<'a>(&'a self, key: &'a str) -> BoxFuture<'a, RedisResult<bool>> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let deleted: i64 = scripts::FORCE_RELEASE
                .key(key)
                .invoke_async(&mut conn)
                .await?;
            Ok(deleted > 0)
        })
    }

    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, RedisResult<Option<String>>> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let bytes: Option<Vec<u8>> = redis::cmd("GET").arg(key).query_async(&mut conn).await?;
            // Locks are strings; a value that is not UTF-8 (written by another client) is shown
            // with replacement characters rather than failing the read.
            Ok(bytes.map(|bytes| {
                String::from_utf8(bytes)
                    .unwrap_or_else(|err| String::from_utf8_lossy(err.as_bytes()).into_owned())
            }))
        })
    }
}
