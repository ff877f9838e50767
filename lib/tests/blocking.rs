//! The blocking twin, from plain threads (no runtime) and from inside a runtime, on every kind
//! of store the async client has: one Redis, in memory, Redlock, Redis Cluster, Sentinel.

mod support;

use std::time::Duration;

use ac_redislock::blocking::RedisLock;
use ac_redislock::{AcquireOptions, InvalidInput, LockError, LockParams, ReleaseParams};
use support::sentinel::{Group, MASTER};
use support::{RedisServer, shared, shared_cluster, unique_key};

/// The value at `key` on the server at `url`, read with a plain connection.
fn value_at(url: &str, key: &str) -> Option<String> {
    let mut conn = redis::Client::open(url).unwrap().get_connection().unwrap();
    redis::cmd("GET").arg(key).query(&mut conn).unwrap()
}

fn clients() -> Vec<(&'static str, RedisLock)> {
    vec![
        ("redis", RedisLock::from_url(&shared().url()).unwrap()),
        ("memory", RedisLock::in_memory().unwrap()),
    ]
}

#[test]
fn the_seed_api_works_without_a_runtime() {
    for (name, locks) in clients() {
        let key = unique_key("blocking");
        let token = locks
            .lock_key(LockParams::new(&key).expires(Duration::from_millis(200)))
            .unwrap();
        let err = locks.lock_key(LockParams::new(&key)).unwrap_err();
        assert!(matches!(err, LockError::Locked { .. }), "{name}: {err:?}");
        assert_eq!(err.code(), 423);
        assert_eq!(locks.get_lock(&key).unwrap(), Some(token.clone()), "{name}");
        let err = locks
            .release_lock(ReleaseParams::new(&key).value("wrong"))
            .unwrap_err();
        assert!(matches!(err, LockError::NotOwner { .. }), "{name}: {err:?}");
        locks
            .release_lock(ReleaseParams::new(&key).value(&token))
            .unwrap();
        assert_eq!(locks.get_lock(&key).unwrap(), None, "{name}");

        // Expiry, then a late release is NotHeld.
        let token = locks
            .lock_key(LockParams::new(&key).expires(Duration::from_millis(100)))
            .unwrap();
        std::thread::sleep(Duration::from_millis(300));
        let err = locks
            .release_lock(ReleaseParams::new(&key).value(token))
            .unwrap_err();
        assert!(matches!(err, LockError::NotHeld { .. }), "{name}: {err:?}");
        // Bad input is still checked first.
        let err = locks.lock_key(LockParams::new("")).unwrap_err();
        assert!(matches!(err, LockError::InvalidInput(_)), "{name}: {err:?}");
    }
}

#[test]
fn builder_options_apply() {
    let locks = RedisLock::builder()
        .suppress_mismatch(true)
        .key_prefix("b:")
        .build_from_url(&shared().url())
        .unwrap();
    let key = unique_key("blocking-options");
    let token = locks.lock_key(LockParams::new(&key)).unwrap();
    locks
        .release_lock(ReleaseParams::new(&key).value("wrong"))
        .expect("suppressed by the instance");
    let plain = RedisLock::from_url(&shared().url()).unwrap();
    assert_eq!(plain.get_lock(&format!("b:{key}")).unwrap(), Some(token));
}

#[test]
fn threads_contend_with_exactly_one_winner() {
    let locks = RedisLock::from_url(&shared().url()).unwrap();
    let key = unique_key("blocking-threads");
    let winners: usize = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..16)
            .map(|_| {
                let locks = locks.clone();
                let key = key.clone();
                scope.spawn(move || locks.lock_key(LockParams::new(&key)).is_ok())
            })
            .collect();
        handles
            .into_iter()
            .map(|h| usize::from(h.join().unwrap()))
            .sum()
    });
    assert_eq!(winners, 1);
}

#[test]
fn redis_down_is_unavailable() {
    let port = support::server::free_port().unwrap();
    let locks = RedisLock::builder()
        .command_timeout(Duration::from_millis(300))
        .build_from_url(&format!("redis://127.0.0.1:{port}/"))
        .unwrap();
    let err = locks.lock_key(LockParams::new("k")).unwrap_err();
    assert!(matches!(err, LockError::Unavailable { .. }), "{err:?}");
    assert_eq!(err.code(), 503);
}

/// Inside a runtime the calls block the worker thread but work, and creating and dropping the
/// client there does not panic (the documented behaviour).
#[tokio::test(flavor = "current_thread")]
async fn inside_a_current_thread_runtime_it_works_and_drops_cleanly() {
    for (name, locks) in clients() {
        let key = unique_key("in-runtime");
        let token = locks.lock_key(LockParams::new(&key)).unwrap();
        assert_eq!(locks.get_lock(&key).unwrap(), Some(token.clone()), "{name}");
        locks
            .release_lock(ReleaseParams::new(&key).value(token))
            .unwrap();
        drop(locks);
    }
    let locks = RedisLock::from_url(&shared().url()).unwrap();
    drop(locks);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inside_a_multi_thread_runtime_it_works() {
    let locks = RedisLock::from_url(&shared().url()).unwrap();
    let key = unique_key("in-mt-runtime");
    locks.lock_key(LockParams::new(&key)).unwrap();
    assert!(locks.get_lock(&key).unwrap().is_some());
}

#[test]
fn guards_work_without_a_runtime() {
    use ac_redislock::LossReason;
    for (name, locks) in clients() {
        let other = match name {
            "redis" => RedisLock::from_url(&shared().url()).unwrap(),
            _ => locks.clone(),
        };
        let key = unique_key("blocking-guard");
        let guard = locks.try_acquire(&key).unwrap();
        assert!(guard.is_held(), "{name}");
        assert_eq!(guard.key(), key);
        assert_eq!(
            locks.get_lock(&key).unwrap().as_deref(),
            Some(guard.token())
        );
        assert!(matches!(
            other.try_acquire(&key),
            Err(LockError::Locked { .. })
        ));
        assert!(guard.extend(Duration::from_secs(20)).unwrap() > Duration::from_secs(19));
        assert_eq!(guard.loss_reason(), None);
        guard.release().unwrap();
        assert_eq!(locks.get_lock(&key).unwrap(), None, "{name}");

        // Renewal carries it through 3x its ttl; deleting it behind its back is noticed.
        let options = AcquireOptions::new()
            .ttl(Duration::from_millis(300))
            .auto_renew(true);
        let guard = locks.acquire_with(&key, options).unwrap();
        std::thread::sleep(Duration::from_millis(900));
        assert!(guard.is_held(), "{name}");
        other.release_lock(ReleaseParams::new(&key)).unwrap();
        assert_eq!(
            guard.wait_lost(Duration::from_secs(2)),
            Some(LossReason::Deleted),
            "{name}"
        );
        assert_eq!(guard.loss_reason(), Some(LossReason::Deleted));
        drop(guard);

        // A waiter in another thread wakes when the holder releases.
        let holder = locks.acquire(&key).unwrap();
        let waiter = {
            let other = other.clone();
            let key = key.clone();
            std::thread::spawn(move || {
                let options = AcquireOptions::new()
                    .wait(Duration::from_secs(30))
                    .retry(ac_redislock::RetryPolicy::fixed(Duration::from_secs(10)));
                other.acquire_with(&key, options).map(|g| g.fencing_token())
            })
        };
        std::thread::sleep(Duration::from_millis(200));
        let released = std::time::Instant::now();
        holder.release().unwrap();
        waiter.join().unwrap().unwrap();
        assert!(released.elapsed() < Duration::from_secs(5), "{name}");

        // with_lock returns the work's output and releases.
        let n = locks
            .with_lock(&key, AcquireOptions::new().fencing(true), |guard| {
                guard.fencing_token().unwrap()
            })
            .unwrap();
        assert!(n > 0);
        assert_eq!(locks.get_lock(&key).unwrap(), None, "{name}");

        // Dropping a guard releases it.
        let guard = locks.acquire(&key).unwrap();
        drop(guard);
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        while locks.get_lock(&key).unwrap().is_some() {
            assert!(
                std::time::Instant::now() < deadline,
                "{name}: not released on drop"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

#[test]
fn with_lock_reports_a_lease_lost_while_the_closure_ran() {
    let locks = RedisLock::from_url(&shared().url()).unwrap();
    let other = RedisLock::from_url(&shared().url()).unwrap();
    let key = unique_key("blocking-with-lock-lost");
    let options = AcquireOptions::new()
        .ttl(Duration::from_millis(400))
        .renew_interval(Duration::from_millis(100));
    let err = locks
        .with_lock(&key, options, |guard| {
            other.release_lock(ReleaseParams::new(guard.key())).unwrap();
            std::thread::sleep(Duration::from_millis(400));
            "done"
        })
        .unwrap_err();
    assert!(matches!(err, LockError::Lost { .. }), "{err:?}");
}

#[test]
fn redlock_without_a_runtime() {
    let mut servers: Vec<RedisServer> = (0..3).map(|_| RedisServer::start()).collect();
    let urls: Vec<String> = servers.iter().map(RedisServer::url).collect();
    let urls: Vec<&str> = urls.iter().map(String::as_str).collect();
    let build = || {
        RedisLock::builder()
            .redlock_node_timeout(Duration::from_millis(150))
            .command_timeout(Duration::from_secs(2))
            .build_redlock(&urls)
            .unwrap()
    };
    let (locks, other) = (build(), build());
    let key = unique_key("blocking-redlock");

    let guard = locks.try_acquire(&key).unwrap();
    for url in &urls {
        assert_eq!(value_at(url, &key).as_deref(), Some(guard.token()), "{url}");
    }
    assert!(matches!(
        other.try_acquire(&key),
        Err(LockError::Locked { .. })
    ));
    let fenced = locks.try_acquire_with(&unique_key("fenced"), AcquireOptions::new().fencing(true));
    assert!(
        matches!(
            fenced,
            Err(LockError::InvalidInput(InvalidInput::Setting {
                name: "fencing",
                ..
            }))
        ),
        "{fenced:?}"
    );
    guard.release().unwrap();
    for url in &urls {
        assert_eq!(value_at(url, &key), None, "{url}");
    }

    // A minority down: still granted. A majority down: no quorum, and nothing left behind.
    servers[0].kill();
    locks.try_acquire(&key).unwrap().release().unwrap();
    servers[1].kill();
    match locks.try_acquire(&key) {
        Err(LockError::QuorumNotReached {
            granted, needed, ..
        }) => {
            assert_eq!((granted, needed), (1, 2));
        }
        other => panic!("a majority down must be QuorumNotReached: {other:?}"),
    }
    assert_eq!(value_at(urls[2], &key), None);
}

#[test]
fn cluster_without_a_runtime() {
    let cluster = shared_cluster();
    let urls = cluster.urls_as("locker", "locker-secret");
    let urls: Vec<&str> = urls.iter().map(String::as_str).collect();
    let build = || RedisLock::builder().build_cluster(&urls).unwrap();
    let (locks, other) = (build(), build());
    let key = format!("{{{}}}:job", unique_key("blocking-cluster"));

    // A waiter in another thread is woken by the release, over pub/sub from a cluster node.
    let holder = locks
        .acquire_with(&key, AcquireOptions::new().fencing(true))
        .unwrap();
    let first = holder.fencing_token().unwrap();
    let waiter = {
        let (other, key) = (other.clone(), key.clone());
        std::thread::spawn(move || {
            let options = AcquireOptions::new()
                .fencing(true)
                .wait(Duration::from_secs(30))
                .retry(ac_redislock::RetryPolicy::fixed(Duration::from_secs(10)));
            other.acquire_with(&key, options).map(|g| g.fencing_token())
        })
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while locks.status(&key).unwrap().waiters == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the waiter never registered"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let released = std::time::Instant::now();
    holder.release().unwrap();
    let second = waiter.join().unwrap().unwrap().unwrap();
    assert!(
        released.elapsed() < Duration::from_secs(5),
        "{:?}",
        released.elapsed()
    );
    assert!(
        second > first,
        "fencing tokens go up: {first} then {second}"
    );

    // A key whose companions could not share its slot is refused before any I/O.
    let err = locks.try_acquire("jobs}42").unwrap_err();
    assert!(
        matches!(err, LockError::InvalidInput(InvalidInput::KeyNotUsable(_))),
        "{err:?}"
    );
}

#[test]
fn sentinel_without_a_runtime() {
    let group = Group::start();
    let locks = RedisLock::builder()
        .command_timeout(Duration::from_secs(1))
        .build_sentinel(&[&group.sentinel.url()], MASTER)
        .unwrap();
    let key = unique_key("blocking-sentinel");
    let options = AcquireOptions::new().replicas(1, Duration::from_millis(500));
    let guard = locks.acquire_with(&key, options).unwrap();
    assert_eq!(guard.replicas_acked(), Some(1));
    let token = Some(guard.token().to_owned());
    assert_eq!(value_at(&group.master.url(), &key), token, "on the master");
    assert_eq!(
        value_at(&group.replica.url(), &key),
        token,
        "copied to the replica"
    );
    guard.release().unwrap();
    assert_eq!(value_at(&group.master.url(), &key), None);
}
