//! The blocking twin, from plain threads (no runtime) and from inside a runtime.

mod support;

use std::time::Duration;

use ac_redislock::blocking::RedisLock;
use ac_redislock::{LockError, LockParams, ReleaseParams};
use support::{shared, unique_key};

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
