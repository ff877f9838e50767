//! Every lock has companion keys of its own (its waiters, its fencing counter): locks `K` and
//! `{K}` never share them, a user's key named like a companion of old leaves the lock alone,
//! keys in the companions' namespace are refused, and a companion overwritten with another type
//! is the key the error names.

mod support;

use std::time::Duration;

use ac_redislock::{AcquireOptions, InvalidInput, LockError, LockParams, RedisLock, RetryPolicy};
use redis::AsyncCommands;
use support::{Backend, Fixture, companion, unique_key};
use tokio::time::Instant;

on_every_store!(
    locks_k_and_braced_k_keep_their_waiters_apart,
    locks_k_and_braced_k_draw_their_own_fencing_tokens,
);

/// A wait that only a wake-up makes short: the fallback backoff is 5 s.
fn woken_only() -> AcquireOptions {
    AcquireOptions::new()
        .wait(Duration::from_secs(20))
        .retry(RetryPolicy::fixed(Duration::from_secs(5)))
}

async fn locks_k_and_braced_k_keep_their_waiters_apart(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let plain = unique_key("pair");
    let braced = format!("{{{plain}}}");
    let holder_plain = fx.locks.acquire(&plain).await.unwrap();
    let holder_braced = fx.locks.acquire(&braced).await.unwrap();
    let spawn_waiter = |locks: RedisLock, key: String| {
        tokio::spawn(async move {
            let guard = locks.acquire_with(&key, woken_only()).await?;
            Ok::<_, LockError>(guard.detach())
        })
    };
    let waiter_plain = spawn_waiter(fx.other_client().await, plain.clone());
    let waiter_braced = spawn_waiter(fx.other_client().await, braced.clone());
    if backend == Backend::Memory {
        // Waiters do not register in memory: every release wakes the waiters of its key.
        tokio::time::sleep(Duration::from_millis(200)).await;
    } else {
        let deadline = Instant::now() + Duration::from_secs(10);
        while fx.locks.status(&plain).await.unwrap().waiters < 1
            || fx.locks.status(&braced).await.unwrap().waiters < 1
        {
            assert!(Instant::now() < deadline, "the waiters never registered");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // Each key counts its own waiter, not the other's.
        assert_eq!(fx.locks.status(&plain).await.unwrap().waiters, 1);
        assert_eq!(fx.locks.status(&braced).await.unwrap().waiters, 1);
    }

    // Releasing one goes to its own waiter, at once, and leaves the other key alone.
    let released = Instant::now();
    holder_plain.release().await.unwrap();
    let token = waiter_plain.await.unwrap().unwrap();
    assert!(
        released.elapsed() < Duration::from_secs(2),
        "{backend:?}: the waiter of {plain:?} took {:?}",
        released.elapsed()
    );
    assert_eq!(fx.locks.get_lock(&plain).await.unwrap(), Some(token));
    assert_eq!(
        fx.locks.get_lock(&braced).await.unwrap().as_deref(),
        Some(holder_braced.token())
    );
    assert!(!waiter_braced.is_finished());

    let released = Instant::now();
    holder_braced.release().await.unwrap();
    waiter_braced.await.unwrap().unwrap();
    assert!(released.elapsed() < Duration::from_secs(2));
}

async fn locks_k_and_braced_k_draw_their_own_fencing_tokens(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let plain = unique_key("fence-pair");
    let braced = format!("{{{plain}}}");
    let fenced = || AcquireOptions::new().fencing(true);
    let guard_plain = fx.locks.try_acquire_with(&plain, fenced()).await.unwrap();
    let guard_braced = fx.locks.try_acquire_with(&braced, fenced()).await.unwrap();
    // Each key's counter holds its own last token: two counters, not one.
    let counter = async |key: &str| fx.locks.status(key).await.unwrap().fencing_counter;
    assert_eq!(counter(&plain).await, guard_plain.fencing_token());
    assert_eq!(counter(&braced).await, guard_braced.fencing_token());
    guard_plain.release().await.unwrap();
    guard_braced.release().await.unwrap();
}

/// `{report}:waiters` and `{report}:fence` were the companions of lock `report` before; a
/// user's keys there are only keys now, and the lock works around them untouched.
#[tokio::test]
async fn a_user_key_named_like_an_old_companion_leaves_the_lock_alone() {
    let fx = Fixture::new(Backend::Redis).await;
    let mut raw = fx.raw().unwrap();
    let lock = unique_key("report");
    let old_waiters = format!("{{{lock}}}:waiters");
    let old_fence = format!("{{{lock}}}:fence");
    let _: () = raw.rpush(&old_waiters, "the user's").await.unwrap();
    let _: () = raw.set(&old_fence, "the user's too").await.unwrap();

    let holder = fx
        .locks
        .acquire_with(&lock, AcquireOptions::new().fencing(true))
        .await
        .unwrap();
    assert!(holder.fencing_token().is_some());
    let waiter = {
        let (locks, lock) = (fx.other_client().await, lock.clone());
        tokio::spawn(async move {
            locks
                .acquire_with(&lock, woken_only())
                .await
                .map(|g| g.detach())
        })
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while fx.locks.status(&lock).await.unwrap().waiters < 1 {
        assert!(Instant::now() < deadline, "the waiter never registered");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    holder.release().await.unwrap();
    waiter.await.unwrap().unwrap();

    let list: Vec<String> = raw.lrange(&old_waiters, 0, -1).await.unwrap();
    assert_eq!(list, ["the user's"]);
    let value: String = raw.get(&old_fence).await.unwrap();
    assert_eq!(value, "the user's too");
}

/// Lock keys in the companions' namespace are refused before any I/O: no lock is a companion.
#[tokio::test]
async fn keys_in_the_companions_namespace_are_refused() {
    for backend in [Backend::Redis, Backend::Cluster] {
        let fx = Fixture::new(backend).await;
        let key = format!("ac-redislock:waiters:{{{}}}", unique_key("x"));
        let before = fx.sent_count();
        let err = fx.locks.lock_key(LockParams::new(&key)).await.unwrap_err();
        assert!(
            matches!(err, LockError::InvalidInput(InvalidInput::KeyNotUsable(_))),
            "{backend:?}: {err:?}"
        );
        assert!(err.to_string().contains("reserved"), "{err}");
        assert_eq!(fx.sent_count(), before, "{backend:?}: something was sent");
    }
}

/// A companion that something else overwrote with another type: the error names it, not the
/// lock, and nothing is written; releasing the lock still works.
#[tokio::test]
async fn a_companion_of_another_type_is_the_key_the_error_names() {
    let fx = Fixture::new(Backend::Redis).await;
    let mut raw = fx.raw().unwrap();
    let lock = unique_key("named");
    let waiters = companion(&lock, "waiters");
    let _: () = raw.set(&waiters, "oops").await.unwrap();

    let holder = fx.locks.acquire(&lock).await.unwrap();
    let other = fx.other_client().await;
    let options = AcquireOptions::new().wait(Duration::from_secs(1));
    let err = other.acquire_with(&lock, options).await.unwrap_err();
    assert!(
        matches!(&err, LockError::WrongType { key, found } if *key == waiters && found == "string"),
        "{err:?}"
    );
    assert!(err.to_string().contains(&waiters), "{err}");
    // The release passes the broken companion over.
    holder.release().await.unwrap();
    assert_eq!(fx.locks.get_lock(&lock).await.unwrap(), None);
    let value: String = raw.get(&waiters).await.unwrap();
    assert_eq!(value, "oops", "the companion is left as it was");

    let fence = companion(&lock, "fence");
    let _: () = raw.rpush(&fence, "x").await.unwrap();
    let err = fx
        .locks
        .try_acquire_with(&lock, AcquireOptions::new().fencing(true))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, LockError::WrongType { key, found } if *key == fence && found == "list"),
        "{err:?}"
    );
    assert_eq!(
        fx.locks.get_lock(&lock).await.unwrap(),
        None,
        "a refused attempt writes nothing"
    );
}
