//! Bad input to the semaphore, the read-write lock and `acquire_all`: each case is a typed
//! `InvalidInput` error, raised before any byte is sent, on every store; and Redlock refuses
//! the primitives it cannot keep, saying why.

mod support;

use ac_redislock::{AcquireOptions, InvalidInput, LockError, RedisLock};
use support::{Backend, Fixture, unique_key};

on_every_store!(bad_input_to_the_primitives_is_refused_before_any_io);

/// Asserts that `result` is `InvalidInput` matching `want`, and that nothing was sent.
fn assert_refused<T: std::fmt::Debug>(
    fx: &Fixture,
    case: &str,
    result: Result<T, LockError>,
    want: impl Fn(&InvalidInput) -> bool,
) {
    match &result {
        Err(LockError::InvalidInput(reason)) if want(reason) => {
            let text = result.unwrap_err().to_string();
            assert!(
                text.starts_with("invalid input: ") && !text.contains('\n'),
                "{text}"
            );
        }
        other => panic!("{case}: expected InvalidInput, got {other:?}"),
    }
    assert_eq!(fx.sent_count(), 0, "{case}: bytes were sent to Redis");
}

fn setting(name: &'static str) -> impl Fn(&InvalidInput) -> bool {
    move |reason| matches!(reason, InvalidInput::Setting { name: n, .. } if *n == name)
}

async fn bad_input_to_the_primitives_is_refused_before_any_io(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let locks = &fx.locks;
    let key = unique_key("primitive-input");

    let none = locks.semaphore(key.as_str(), 0);
    assert_refused(&fx, "limit 0", none.try_acquire().await, setting("limit"));
    let three = locks.semaphore(key.as_str(), 3);
    for permits in [0, 4] {
        let options = AcquireOptions::new().permits(permits);
        let result = three.try_acquire_with(options.clone()).await;
        assert_refused(
            &fx,
            &format!("{permits} permits"),
            result,
            setting("permits"),
        );
        let result = three.acquire_with(options).await;
        assert_refused(
            &fx,
            &format!("{permits} permits, waiting"),
            result,
            setting("permits"),
        );
    }
    let fenced = AcquireOptions::new().fencing(true);
    let result = three.try_acquire_with(fenced.clone()).await;
    assert_refused(&fx, "fencing a permit", result, setting("fencing"));
    let empty = locks.semaphore("", 3);
    assert_refused(
        &fx,
        "semaphore, empty key",
        empty.try_acquire().await,
        |r| *r == InvalidInput::EmptyKey,
    );
    assert_refused(
        &fx,
        "semaphore status, empty key",
        empty.status().await,
        |r| *r == InvalidInput::EmptyKey,
    );

    let rw = locks.rw_lock(key.as_str());
    let result = rw.try_read_with(fenced.clone()).await;
    assert_refused(&fx, "fencing a read", result, setting("fencing"));
    let two = AcquireOptions::new().permits(2);
    let result = rw.try_write_with(two.clone()).await;
    assert_refused(&fx, "two permits of a write", result, setting("permits"));
    let result = locks.try_acquire_with(&key, two.clone()).await;
    assert_refused(&fx, "two permits of a lock", result, setting("permits"));

    let no_keys: [&str; 0] = [];
    let result = locks.try_acquire_all(&no_keys).await;
    assert_refused(&fx, "no keys", result, setting("keys"));
    let result = locks.acquire_all(&["a", ""]).await;
    assert_refused(&fx, "an empty key among several", result, |r| {
        *r == InvalidInput::EmptyKey
    });
    let result = locks.try_acquire_all_with(&["a", "b"], fenced).await;
    assert_refused(&fx, "fencing several keys", result, setting("fencing"));
    let result = locks.try_acquire_all_with(&["a", "b"], two).await;
    assert_refused(&fx, "permits of several keys", result, setting("permits"));
}

#[tokio::test]
async fn redlock_refuses_semaphores_and_read_write_locks_saying_why() {
    // Nothing listens on these ports: a refusal that tried the network would be Unavailable.
    let locks = RedisLock::builder()
        .build_redlock(&[
            "redis://127.0.0.1:1/",
            "redis://127.0.0.1:2/",
            "redis://127.0.0.1:3/",
        ])
        .unwrap();
    let not_supported = |result: Result<_, LockError>, what: &str| match result {
        Err(LockError::InvalidInput(InvalidInput::NotSupported { what: w, reason })) => {
            assert_eq!(w, what);
            assert!(reason.contains("count independently"), "{reason}");
        }
        other => panic!("{what}: {other:?}"),
    };
    not_supported(
        locks.semaphore("k", 3).try_acquire().await.map(drop),
        "a semaphore",
    );
    not_supported(
        locks.semaphore("k", 3).status().await.map(drop),
        "a semaphore",
    );
    not_supported(
        locks.rw_lock("k").try_read().await.map(drop),
        "a read-write lock",
    );
    not_supported(
        locks.rw_lock("k").write().await.map(drop),
        "a read-write lock",
    );
    not_supported(
        locks.rw_lock("k").status().await.map(drop),
        "a read-write lock",
    );
    let err = locks.semaphore("k", 3).try_acquire().await.unwrap_err();
    assert_eq!(err.code(), 400);
    assert!(
        err.to_string().contains("a semaphore cannot be used here"),
        "{err}"
    );
}
