//! A connection to the current master of a Redis Sentinel group: asks the sentinels for the
//! master, keeps a multiplexed connection to it, and asks again after the connection breaks or
//! the node says it is no longer the master (`READONLY`) — that is, after a failover.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::sentinel::SentinelClient;
use redis::{AsyncConnectionConfig, Cmd, Pipeline, RedisError, RedisFuture, RedisResult, Value};

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
