//! Redlock over independent redis-servers started here: every subset of nodes down (killed) or
//! paused (SIGSTOP), for N = 3 and N = 5; the guard API on top.

mod support;

use std::time::Duration;

use ac_redislock::{AcquireOptions, LockError, LockParams, LossReason, RedisLock, ReleaseParams};
use support::{RedisServer, raw_conn, unique_key};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    Killed,
    Paused,
}

fn redlock(servers: &[RedisServer]) -> RedisLock {
    let urls: Vec<String> = servers.iter().map(RedisServer::url).collect();
    let urls: Vec<&str> = urls.iter().map(String::as_str).collect();
    RedisLock::builder()
        .redlock_node_timeout(Duration::from_millis(150))
        .command_timeout(Duration::from_secs(2))
        .build_redlock(&urls)
        .unwrap()
}

async fn keys_on(server: &RedisServer) -> Vec<String> {
    let mut conn = raw_conn(server).await;
    redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut conn)
        .await
        .unwrap()
}

/// For every subset of faulty nodes: granted exactly when a majority is healthy, and no key is
/// left on any node afterwards.
async fn every_subset(n: usize, fault: Fault) {
    let mut servers: Vec<RedisServer> = (0..n).map(|_| RedisServer::start()).collect();
    let needed = n / 2 + 1;
    let mut granted_masks = 0;
    for mask in 0u32..(1 << n) {
        let faulty: Vec<usize> = (0..n).filter(|i| mask & (1 << i) != 0).collect();
        for &i in &faulty {
            match fault {
                Fault::Killed => servers[i].kill(),
                Fault::Paused => servers[i].pause(),
            }
        }
        let healthy = n - faulty.len();
        let locks = redlock(&servers);
        let key = unique_key("mask");
        let result = locks.try_acquire(&key).await;
        if healthy >= needed {
            let guard = result.unwrap_or_else(|err| {
                panic!("n={n} {fault:?} {faulty:?}: a healthy majority must grant: {err:?}")
            });
            assert!(guard.is_held());
            granted_masks += 1;
            guard.release().await.unwrap();
        } else {
            match result {
                Err(LockError::QuorumNotReached {
                    granted,
                    needed: reported,
                    ..
                }) => {
                    assert_eq!(granted, healthy, "n={n} {fault:?} {faulty:?}");
                    assert_eq!(reported, needed);
                }
                other => panic!("n={n} {fault:?} {faulty:?}: expected QuorumNotReached: {other:?}"),
            }
        }
        for &i in &faulty {
            match fault {
                Fault::Killed => servers[i].restart(),
                Fault::Paused => servers[i].resume(),
            }
        }
        // A resumed node runs what was queued (the SET, then the release that followed it).
        if fault == Fault::Paused && !faulty.is_empty() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        for (i, server) in servers.iter().enumerate() {
            let left = keys_on(server).await;
            assert!(
                left.is_empty(),
                "n={n} {fault:?} {faulty:?}: node {i} kept {left:?}"
            );
        }
    }
    let expected: u32 = (0..(1u32 << n))
        .filter(|mask| n - mask.count_ones() as usize >= needed)
        .count() as u32;
    assert_eq!(granted_masks, expected);
}

#[tokio::test]
async fn three_nodes_every_subset_killed() {
    every_subset(3, Fault::Killed).await;
}

#[tokio::test]
async fn three_nodes_every_subset_paused() {
    every_subset(3, Fault::Paused).await;
}

#[tokio::test]
async fn five_nodes_every_subset_killed() {
    every_subset(5, Fault::Killed).await;
}

#[tokio::test]
async fn five_nodes_every_subset_paused() {
    every_subset(5, Fault::Paused).await;
}

#[tokio::test]
async fn a_lock_held_on_a_majority_is_refused_and_a_minority_hold_is_taken_back() {
    let servers: Vec<RedisServer> = (0..3).map(|_| RedisServer::start()).collect();
    let a = redlock(&servers);
    let b = redlock(&servers);
    let key = unique_key("held");
    let guard = a.try_acquire(&key).await.unwrap();
    let err = b.try_acquire(&key).await.unwrap_err();
    assert!(matches!(err, LockError::Locked { .. }), "{err:?}");
    // The refused attempt left nothing of its own: each node still holds A's token.
    for server in &servers {
        let mut conn = raw_conn(server).await;
        let value: Option<String> = redis::cmd("GET")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(value.as_deref(), Some(guard.token()));
    }
    assert_eq!(
        a.get_lock(&key).await.unwrap().as_deref(),
        Some(guard.token())
    );
    guard.release().await.unwrap();
    for server in &servers {
        assert!(keys_on(server).await.is_empty());
    }
    // The seed API works the same way.
    let token = b.lock_key(LockParams::new(&key)).await.unwrap();
    assert!(matches!(
        a.lock_key(LockParams::new(&key)).await,
        Err(LockError::Locked { .. })
    ));
    b.release_lock(ReleaseParams::new(&key).value(token))
        .await
        .unwrap();
}

#[tokio::test]
async fn the_guard_api_renews_extends_waits_and_reports_loss() {
    let mut servers: Vec<RedisServer> = (0..3).map(|_| RedisServer::start()).collect();
    let locks = redlock(&servers);
    let other = redlock(&servers);
    let key = unique_key("guard");

    // Renewal carries the lock through 3x its ttl.
    let options = AcquireOptions::new()
        .ttl(Duration::from_millis(600))
        .auto_renew(true);
    let guard = locks.acquire_with(&key, options).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1800)).await;
    assert!(guard.is_held());
    assert!(matches!(
        other.try_acquire(&key).await,
        Err(LockError::Locked { .. })
    ));
    // Extend needs a majority.
    assert!(guard.extend(Duration::from_secs(5)).await.unwrap() > Duration::from_secs(4));

    // A waiter polls its way to the lock once it is released.
    let waiter_key = key.clone();
    let waiter = tokio::spawn(async move {
        other
            .acquire_with(
                &waiter_key,
                AcquireOptions::new().wait(Duration::from_secs(10)),
            )
            .await
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    guard.release().await.unwrap();
    let guard = waiter.await.unwrap().unwrap();

    // Deleting the key on a majority of nodes is a lost lease at the next renewal.
    let options = AcquireOptions::new()
        .ttl(Duration::from_millis(900))
        .auto_renew(true);
    guard.release().await.unwrap();
    let guard = locks.acquire_with(&key, options).await.unwrap();
    for server in &servers[..2] {
        let mut conn = raw_conn(server).await;
        let _: i64 = redis::cmd("DEL")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    let reason = tokio::time::timeout(Duration::from_secs(3), guard.lost())
        .await
        .expect("loss not reported");
    assert_eq!(reason, LossReason::Deleted);

    // One node down: still a majority, through the same client.
    servers[0].kill();
    let guard = locks.acquire(&key).await.unwrap();
    assert!(guard.extend(Duration::from_secs(5)).await.is_ok());
    guard.release().await.unwrap();
    // Two down: no majority, and the lease cannot be extended either.
    let guard = locks.acquire(&key).await.unwrap();
    servers[1].kill();
    let err = guard.extend(Duration::from_secs(5)).await.unwrap_err();
    assert!(
        matches!(
            err,
            LockError::QuorumNotReached {
                granted: 1,
                needed: 2,
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn fencing_and_mixed_tls_are_refused_before_any_io() {
    let servers: Vec<RedisServer> = (0..3).map(|_| RedisServer::start()).collect();
    let locks = redlock(&servers);
    let err = locks
        .try_acquire_with("k", AcquireOptions::new().fencing(true))
        .await
        .unwrap_err();
    assert!(matches!(err, LockError::InvalidInput(_)), "{err:?}");
    assert!(err.to_string().contains("fencing"), "{err}");
    let err = RedisLock::builder()
        .build_redlock(&["redis://127.0.0.1:1/", "rediss://127.0.0.1:2/"])
        .unwrap_err();
    assert!(matches!(err, LockError::InvalidInput(_)), "{err:?}");
    let err = RedisLock::builder().build_redlock(&[]).unwrap_err();
    assert!(matches!(err, LockError::InvalidInput(_)), "{err:?}");
    for server in &servers {
        assert!(keys_on(server).await.is_empty());
    }
}
