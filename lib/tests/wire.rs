//! Wire compatibility with the Node original: its exact commands, issued with a plain redis
//! connection (`SET key value EX seconds NX`, `GET`, `DEL`), against our client on the same
//! server, and the exact bytes our client sends.

mod support;

use std::time::Duration;

use ac_redislock::{LockError, LockParams, RedisLock, ReleaseParams};
use redis::AsyncCommands;
use redis::aio::MultiplexedConnection;
use support::{Recorder, raw_conn, shared, unique_key};

/// What the Node library sends for `lockKey({ redisKey, expires, value })`.
async fn node_lock_key(
    node: &mut MultiplexedConnection,
    key: &str,
    value: &str,
    expires_secs: u64,
) -> Result<String, u16> {
    let reply: Option<String> = redis::cmd("SET")
        .arg(key)
        .arg(value)
        .arg("EX")
        .arg(expires_secs)
        .arg("NX")
        .query_async(node)
        .await
        .unwrap();
    match reply.as_deref() {
        Some("OK") => Ok(value.to_owned()),
        _ => Err(423),
    }
}

/// What the Node library sends for `releaseLock({ redisKey, value })`: GET, then DEL on a match.
async fn node_release_lock(
    node: &mut MultiplexedConnection,
    key: &str,
    value: &str,
) -> Result<(), &'static str> {
    let current: Option<String> = node.get(key).await.unwrap();
    if current.as_deref() != Some(value) {
        return Err("releaseLock_valueMismatch");
    }
    let _: i64 = node.del(key).await.unwrap();
    Ok(())
}

async fn rust_client() -> RedisLock {
    RedisLock::new(raw_conn(shared()).await)
}

#[tokio::test]
async fn a_lock_taken_by_node_is_locked_for_us_and_releasable_with_its_value() {
    let mut node = raw_conn(shared()).await;
    let locks = rust_client().await;
    let key = unique_key("node-first");
    let value = "de6d9bc6-5e57-4b5e-801b-d04917ec9d98"; // the original's UUIDv4 form
    node_lock_key(&mut node, &key, value, 10).await.unwrap();

    let err = locks.lock_key(LockParams::new(&key)).await.unwrap_err();
    assert!(matches!(err, LockError::Locked { .. }), "{err:?}");
    assert_eq!(err.code(), 423);
    assert_eq!(locks.get_lock(&key).await.unwrap().as_deref(), Some(value));

    let err = locks
        .release_lock(ReleaseParams::new(&key).value("not-node's"))
        .await
        .unwrap_err();
    assert!(matches!(err, LockError::NotOwner { .. }));
    locks
        .release_lock(ReleaseParams::new(&key).value(value))
        .await
        .unwrap();
    let left: Option<String> = node.get(&key).await.unwrap();
    assert_eq!(left, None);
    assert_eq!(
        node_lock_key(&mut node, &key, "again", 10).await,
        Ok("again".into())
    );
}

#[tokio::test]
async fn a_lock_taken_by_us_is_locked_for_node_and_releasable_by_node() {
    let mut node = raw_conn(shared()).await;
    let locks = rust_client().await;
    let key = unique_key("rust-first");
    let token = locks.lock_key(LockParams::new(&key)).await.unwrap();

    assert_eq!(
        node_lock_key(&mut node, &key, "node-value", 10).await,
        Err(423)
    );
    let kind: String = redis::cmd("TYPE")
        .arg(&key)
        .query_async(&mut node)
        .await
        .unwrap();
    assert_eq!(kind, "string", "the value is stored as a plain string");
    let stored: Option<String> = node.get(&key).await.unwrap();
    assert_eq!(stored.as_deref(), Some(token.as_str()));
    let ttl: i64 = node.ttl(&key).await.unwrap();
    assert!((9..=10).contains(&ttl), "default expiry of 10 s: {ttl}");

    assert_eq!(
        node_release_lock(&mut node, &key, "wrong").await,
        Err("releaseLock_valueMismatch")
    );
    node_release_lock(&mut node, &key, &token).await.unwrap();
    locks
        .lock_key(LockParams::new(&key))
        .await
        .expect("free after Node released it");
}

#[tokio::test]
async fn node_force_release_frees_our_lock_and_ours_frees_node_lock() {
    let mut node = raw_conn(shared()).await;
    let locks = rust_client().await;
    let key = unique_key("force");
    locks.lock_key(LockParams::new(&key)).await.unwrap();
    let _: i64 = node.del(&key).await.unwrap(); // releaseLock without a value
    let token = locks.lock_key(LockParams::new(&key)).await.unwrap();
    locks.release_lock(ReleaseParams::new(&key)).await.unwrap();
    node_lock_key(&mut node, &key, "node", 10).await.unwrap();
    assert!(
        locks
            .get_lock(&key)
            .await
            .unwrap()
            .is_some_and(|v| v != token)
    );
    locks.release_lock(ReleaseParams::new(&key)).await.unwrap();
    let left: Option<String> = node.get(&key).await.unwrap();
    assert_eq!(left, None);
}

#[tokio::test]
async fn lock_key_sends_the_originals_exact_command() {
    let recorder = Recorder::new(raw_conn(shared()).await);
    let sent = recorder.log();
    let locks = RedisLock::new(recorder);
    let key = unique_key("exact");

    locks
        .lock_key(LockParams::new(&key).value("v1"))
        .await
        .unwrap();
    let expected = redis::cmd("SET")
        .arg(&key)
        .arg("v1")
        .arg("EX")
        .arg(10)
        .arg("NX")
        .get_packed_command();
    assert_eq!(sent.commands(), vec![expected], "whole seconds go as EX");

    sent.clear();
    let key2 = unique_key("exact");
    locks
        .lock_key(
            LockParams::new(&key2)
                .value("v2")
                .expires(Duration::from_millis(1500)),
        )
        .await
        .unwrap();
    let expected = redis::cmd("SET")
        .arg(&key2)
        .arg("v2")
        .arg("PX")
        .arg(1500)
        .arg("NX")
        .get_packed_command();
    assert_eq!(sent.commands(), vec![expected], "milliseconds go as PX");

    // A refused attempt costs one more round trip, to tell a lock from a key of another type.
    sent.clear();
    let _ = locks.lock_key(LockParams::new(&key).value("v3")).await;
    assert_eq!(sent.names(), ["SET", "TYPE"]);

    // Release with a value is one EVALSHA (the compare-and-delete script), get is one GET.
    // (Once the server has the script: the first release on a fresh server adds an EVAL.)
    let _ = locks
        .release_lock(ReleaseParams::new(unique_key("warm")).value("v"))
        .await;
    sent.clear();
    locks
        .release_lock(ReleaseParams::new(&key).value("v1"))
        .await
        .unwrap();
    locks.get_lock(&key).await.unwrap();
    assert_eq!(sent.names(), ["EVALSHA", "GET"]);
}

#[tokio::test]
async fn node_workers_and_rust_workers_never_share_a_job() {
    // 8 "Node" contenders on raw connections and 8 Rust contenders race for each of 50 keys.
    let locks = rust_client().await;
    for round in 0..50 {
        let key = unique_key(&format!("mixed-{round}"));
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..8 {
            let mut node = raw_conn(shared()).await;
            let node_key = key.clone();
            tasks.spawn(async move {
                node_lock_key(&mut node, &node_key, &format!("node-{i}"), 10)
                    .await
                    .is_ok()
            });
            let locks = locks.clone();
            let key = key.clone();
            tasks.spawn(async move { locks.lock_key(LockParams::new(&key)).await.is_ok() });
        }
        let winners = tasks.join_all().await.into_iter().filter(|w| *w).count();
        assert_eq!(winners, 1, "round {round}");
    }
}
