//! Redis Cluster specifics (the behaviour and lease suites also run on a cluster, as
//! `on_cluster::*` in their own files): redirections while a slot moves, scripts flushed on
//! every node, keys that cannot keep their auxiliary keys in their slot, `build_cluster`.

mod support;

use std::time::Duration;

use ac_redislock::{AcquireOptions, LockError, LockParams, RedisLock, ReleaseParams};
use redis::AsyncCommands;
use support::cluster::Cluster;
use support::shared_cluster;
use support::{companion, unique_key, wait_for_waiters};

fn build(cluster: &Cluster) -> RedisLock {
    let urls = cluster.urls();
    let urls: Vec<&str> = urls.iter().map(String::as_str).collect();
    RedisLock::builder().build_cluster(&urls).unwrap()
}

/// The node id and port of every master, and which owns `slot`.
fn owner_of(cluster: &Cluster, slot: u16) -> (usize, Vec<String>) {
    let mut ids = Vec::new();
    let mut owner = None;
    for (i, node) in cluster.nodes.iter().enumerate() {
        let mut conn = redis::Client::open(node.url())
            .unwrap()
            .get_connection()
            .unwrap();
        let id: String = redis::cmd("CLUSTER").arg("MYID").query(&mut conn).unwrap();
        let count: i64 = redis::cmd("CLUSTER")
            .arg("COUNTKEYSINSLOT")
            .arg(slot)
            .query(&mut conn)
            .unwrap_or(-1);
        // Only the owner answers for the slot; others redirect (error) or count 0.
        let nodes: String = redis::cmd("CLUSTER").arg("NODES").query(&mut conn).unwrap();
        let myself = nodes
            .lines()
            .find(|l| l.contains("myself"))
            .unwrap()
            .to_owned();
        let owns = myself.split_whitespace().skip(8).any(|range| {
            let (start, end) = range.split_once('-').unwrap_or((range, range));
            match (start.parse::<u16>(), end.parse::<u16>()) {
                (Ok(start), Ok(end)) => (start..=end).contains(&slot),
                _ => false,
            }
        });
        if owns {
            owner = Some(i);
        }
        let _ = count;
        ids.push(id);
    }
    (owner.expect("no owner for the slot"), ids)
}

fn cmd(cluster: &Cluster, node: usize, args: &[&str]) -> redis::Value {
    let mut conn = redis::Client::open(cluster.nodes[node].url())
        .unwrap()
        .get_connection()
        .unwrap();
    let mut cmd = redis::cmd(args[0]);
    for arg in &args[1..] {
        cmd.arg(*arg);
    }
    cmd.query(&mut conn)
        .unwrap_or_else(|err| panic!("{args:?} on node {node}: {err}"))
}

/// Moves `slot` and its keys from its owner to another master, the way `redis-cli --cluster
/// reshard` does. Returns the new owner.
fn move_slot(cluster: &Cluster, slot: u16) -> usize {
    let (from, ids) = owner_of(cluster, slot);
    let to = (from + 1) % cluster.nodes.len();
    let slot_s = slot.to_string();
    cmd(
        cluster,
        to,
        &["CLUSTER", "SETSLOT", &slot_s, "IMPORTING", &ids[from]],
    );
    cmd(
        cluster,
        from,
        &["CLUSTER", "SETSLOT", &slot_s, "MIGRATING", &ids[to]],
    );
    loop {
        let keys = match cmd(cluster, from, &["CLUSTER", "GETKEYSINSLOT", &slot_s, "100"]) {
            redis::Value::Array(keys) => keys,
            other => panic!("{other:?}"),
        };
        if keys.is_empty() {
            break;
        }
        let port = cluster.nodes[to].port().to_string();
        let mut migrate = vec!["MIGRATE", "127.0.0.1", &port, "", "0", "5000", "KEYS"];
        let names: Vec<String> = keys
            .iter()
            .map(|k| match k {
                redis::Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
                other => panic!("{other:?}"),
            })
            .collect();
        migrate.extend(names.iter().map(String::as_str));
        cmd(cluster, from, &migrate);
    }
    for node in 0..cluster.nodes.len() {
        cmd(
            cluster,
            node,
            &["CLUSTER", "SETSLOT", &slot_s, "NODE", &ids[to]],
        );
    }
    to
}

#[tokio::test]
async fn a_lock_follows_its_slot_to_another_master() {
    // A private cluster: the slot moves.
    let cluster = Cluster::start(3, None);
    let locks = build(&cluster);
    let other = build(&cluster);
    let key = unique_key("moving");
    let options = AcquireOptions::new()
        .ttl(Duration::from_secs(5))
        .fencing(true);
    let guard = locks.acquire_with(&key, options.clone()).await.unwrap();
    let first_fence = guard.fencing_token().unwrap();
    let mut raw = cluster.conn().await;
    let slot: u16 = redis::cmd("CLUSTER")
        .arg("KEYSLOT")
        .arg(&key)
        .query_async(&mut raw)
        .await
        .unwrap();
    move_slot(&cluster, slot);

    // The clients' slot maps are stale: every call is redirected (MOVED) and must still work.
    assert!(guard.extend(Duration::from_secs(5)).await.is_ok());
    assert!(matches!(
        other.try_acquire(&key).await,
        Err(LockError::Locked { .. })
    ));
    guard.release().await.unwrap();
    let guard = other.acquire_with(&key, options).await.unwrap();
    assert!(
        guard.fencing_token().unwrap() > first_fence,
        "the fencing counter moved with the slot"
    );
    guard.release().await.unwrap();
    let token = locks.lock_key(LockParams::new(&key)).await.unwrap();
    locks
        .release_lock(ReleaseParams::new(&key).value(token))
        .await
        .unwrap();
}

#[tokio::test]
async fn scripts_flushed_on_every_node_are_loaded_again() {
    let cluster = shared_cluster();
    let locks = build(cluster);
    for i in 0..20 {
        let key = unique_key(&format!("flush{i}"));
        let guard = locks
            .acquire_with(&key, AcquireOptions::new().fencing(true))
            .await
            .unwrap();
        cluster.on_every_node(redis::cmd("SCRIPT").arg("FLUSH"));
        guard.extend(Duration::from_secs(5)).await.unwrap();
        cluster.on_every_node(redis::cmd("SCRIPT").arg("FLUSH"));
        guard.release().await.unwrap();
    }
}

#[tokio::test]
async fn keys_that_cannot_share_a_slot_with_their_waiters_are_refused() {
    let cluster = shared_cluster();
    let locks = build(cluster);
    for key in ["a}b", "}x", "a{}b}"] {
        let err = locks.try_acquire(key).await.unwrap_err();
        assert!(matches!(err, LockError::InvalidInput(_)), "{key}: {err:?}");
        assert!(err.to_string().contains("hash tag"), "{err}");
    }
    // With a hash tag they are fine, as is any key without `}`.
    for key in ["{jobs}:a}b", "plain:key", "{user:7}"] {
        let guard = locks.try_acquire(key).await.unwrap();
        guard.release().await.unwrap();
    }
    // A single server takes them all.
    let single = RedisLock::in_memory();
    single
        .try_acquire("a}b")
        .await
        .unwrap()
        .release()
        .await
        .unwrap();
}

#[tokio::test]
async fn auxiliary_keys_live_in_the_lock_keys_slot() {
    let cluster = shared_cluster();
    let locks = build(cluster);
    let mut raw = cluster.conn().await;
    let key = unique_key("slots");
    let holder = locks.acquire(&key).await.unwrap();
    let waiter_locks = build(cluster);
    let waiter_key = key.clone();
    let waiter = tokio::spawn(async move {
        waiter_locks
            .acquire_with(&waiter_key, AcquireOptions::new().fencing(true))
            .await
    });
    wait_for_waiters(&mut raw, &key, 1).await;
    let slot: i64 = redis::cmd("CLUSTER")
        .arg("KEYSLOT")
        .arg(&key)
        .query_async(&mut raw)
        .await
        .unwrap();
    let waiters = companion(&key, "waiters");
    let waiters_slot: i64 = redis::cmd("CLUSTER")
        .arg("KEYSLOT")
        .arg(&waiters)
        .query_async(&mut raw)
        .await
        .unwrap();
    assert_eq!(slot, waiters_slot);
    let registered: i64 = raw.zcard(&waiters).await.unwrap();
    assert_eq!(registered, 1);
    holder.release().await.unwrap();
    let guard = waiter.await.unwrap().unwrap();
    let fence_key = companion(&key, "fence");
    let fence_slot: i64 = redis::cmd("CLUSTER")
        .arg("KEYSLOT")
        .arg(&fence_key)
        .query_async(&mut raw)
        .await
        .unwrap();
    assert_eq!(slot, fence_slot);
    let stored: u64 = raw.get(&fence_key).await.unwrap();
    assert_eq!(Some(stored), guard.fencing_token());
    guard.release().await.unwrap();
}
