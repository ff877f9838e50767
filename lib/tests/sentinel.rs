//! Redis Sentinel: a master, a replica and a sentinel started here; locks through the sentinel,
//! replica acknowledgement (WAIT), and a failover under a held lock.

mod support;

use std::time::{Duration, Instant};

use ac_redislock::{AcquireOptions, LockError, LockParams, RedisLock, ReleaseParams};
use support::sentinel::{Group, MASTER, Sentinel};
use support::unique_key;

fn through(sentinel: &Sentinel) -> RedisLock {
    RedisLock::builder()
        .command_timeout(Duration::from_secs(1))
        .build_sentinel(&[&sentinel.url()], MASTER)
        .unwrap()
}

#[tokio::test]
async fn locks_go_to_the_master_and_wait_reports_the_replicas() {
    let Group {
        master,
        replica,
        sentinel,
    } = Group::start();
    let locks = through(&sentinel);
    let key = unique_key("sentinel");
    let token = locks.lock_key(LockParams::new(&key)).await.unwrap();
    let mut on_master = redis::Client::open(master.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let stored: Option<String> = redis::cmd("GET")
        .arg(&key)
        .query_async(&mut on_master)
        .await
        .unwrap();
    assert_eq!(stored, Some(token.clone()));
    locks
        .release_lock(ReleaseParams::new(&key).value(token))
        .await
        .unwrap();

    let options = AcquireOptions::new().replicas(1, Duration::from_millis(500));
    let guard = locks.acquire_with(&key, options).await.unwrap();
    assert_eq!(guard.replicas_acked(), Some(1));
    let mut on_replica = redis::Client::open(replica.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let copied: Option<String> = redis::cmd("GET")
        .arg(&key)
        .query_async(&mut on_replica)
        .await
        .unwrap();
    assert_eq!(
        copied.as_deref(),
        Some(guard.token()),
        "acknowledged means on the replica"
    );
    // Two replicas cannot acknowledge: there is one. The guard says so, after the timeout.
    guard.release().await.unwrap();
    let options = AcquireOptions::new().replicas(2, Duration::from_millis(200));
    let guard = locks.acquire_with(&key, options).await.unwrap();
    assert_eq!(guard.replicas_acked(), Some(1));
    guard.release().await.unwrap();

    let err = locks
        .acquire_with(
            &key,
            AcquireOptions::new().replicas(1, Duration::from_secs(5)),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, LockError::InvalidInput(_)),
        "WAIT longer than the command timeout: {err:?}"
    );
}

#[tokio::test]
async fn the_same_client_follows_a_failover_and_an_acknowledged_lock_survives_it() {
    let Group {
        mut master,
        replica: _replica,
        sentinel,
    } = Group::start();
    let locks = through(&sentinel);
    let other = through(&sentinel);
    let key = unique_key("failover");
    let options = AcquireOptions::new()
        .ttl(Duration::from_secs(30))
        .replicas(1, Duration::from_millis(500));
    let guard = locks.acquire_with(&key, options).await.unwrap();
    assert_eq!(guard.replicas_acked(), Some(1));

    let old = master.port().to_string();
    master.kill();
    sentinel.wait_until(|reply| reply.contains("127.0.0.1") && !reply.contains(&old));

    // The same clients reach the new master; until then errors are Unavailable, never Locked.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match other.try_acquire(&key).await {
            Err(LockError::Locked { .. }) => break,
            Err(err) => {
                assert!(err.is_backend(), "{err:?}");
                assert!(Instant::now() < deadline, "no new master: {err:?}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Ok(_) => panic!("the acknowledged lock was lost in the failover"),
        }
    }
    // The holder's client too (its first call after the failover may still meet the dead
    // master's connection, and fail as Unavailable).
    let value = loop {
        match locks.get_lock(&key).await {
            Ok(value) => break value,
            Err(err) => {
                assert!(err.is_backend(), "{err:?}");
                assert!(Instant::now() < deadline, "{err:?}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    assert_eq!(value.as_deref(), Some(guard.token()));
    assert!(guard.extend(Duration::from_secs(30)).await.is_ok());
    guard.release().await.unwrap();
    other
        .try_acquire(&key)
        .await
        .unwrap()
        .release()
        .await
        .unwrap();
}
