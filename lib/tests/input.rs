//! Bad input: every case is a typed `InvalidInput` error, raised before any byte is sent to
//! Redis, on every store; and the limits themselves work (exactly at the maximum is fine).

mod support;

use std::time::Duration;

use ac_redislock::{
    DEFAULT_MAX_EXPIRES, DEFAULT_MAX_KEY_LEN, DEFAULT_MAX_VALUE_LEN, InvalidInput, LockError,
    LockParams, ReleaseParams,
};
use support::{Backend, Fixture, unique_key};

on_every_store!(
    every_bad_input_is_rejected_before_any_io,
    limits_are_inclusive,
    configured_limits_apply,
);

/// Asserts that `result` is `InvalidInput` matching `want`, and that nothing was sent.
fn assert_rejected<T: std::fmt::Debug>(
    fx: &Fixture,
    case: &str,
    result: Result<T, LockError>,
    want: impl Fn(&InvalidInput) -> bool,
) {
    match result {
        Err(LockError::InvalidInput(reason)) if want(&reason) => {
            // The message is one readable line.
            let text = LockError::InvalidInput(reason).to_string();
            assert!(
                text.starts_with("invalid input: ") && !text.contains('\n'),
                "{text}"
            );
        }
        other => panic!("{case}: expected InvalidInput, got {other:?}"),
    }
    assert_eq!(fx.sent_count(), 0, "{case}: bytes were sent to Redis");
}

async fn every_bad_input_is_rejected_before_any_io(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let locks = &fx.locks;
    let long_key = "k".repeat(DEFAULT_MAX_KEY_LEN + 1);
    // 342 three-byte characters: 1,026 bytes although only 342 chars.
    let long_unicode_key = "锁".repeat(342);
    let long_value = "v".repeat(DEFAULT_MAX_VALUE_LEN + 1);
    let is_empty_key = |r: &InvalidInput| *r == InvalidInput::EmptyKey;
    let is_long_key = |r: &InvalidInput| matches!(r, InvalidInput::KeyTooLong { .. });

    assert_rejected(
        &fx,
        "lock empty key",
        locks.lock_key(LockParams::new("")).await,
        is_empty_key,
    );
    assert_rejected(
        &fx,
        "release empty key",
        locks.release_lock(ReleaseParams::new("").value("v")).await,
        is_empty_key,
    );
    assert_rejected(
        &fx,
        "force release empty key",
        locks.release_lock(ReleaseParams::new("")).await,
        is_empty_key,
    );
    assert_rejected(&fx, "get empty key", locks.get_lock("").await, is_empty_key);

    assert_rejected(
        &fx,
        "lock long key",
        locks.lock_key(LockParams::new(&long_key)).await,
        |r| {
            *r == InvalidInput::KeyTooLong {
                len: 1025,
                max: 1024,
            }
        },
    );
    assert_rejected(
        &fx,
        "lock long unicode key",
        locks.lock_key(LockParams::new(&long_unicode_key)).await,
        |r| {
            *r == InvalidInput::KeyTooLong {
                len: 1026,
                max: 1024,
            }
        },
    );
    assert_rejected(
        &fx,
        "release long key",
        locks
            .release_lock(ReleaseParams::new(&long_key).value("v"))
            .await,
        is_long_key,
    );
    assert_rejected(
        &fx,
        "get long key",
        locks.get_lock(&long_key).await,
        is_long_key,
    );

    for expires in [
        Duration::ZERO,
        Duration::from_nanos(1),
        Duration::from_micros(999),
    ] {
        assert_rejected(
            &fx,
            &format!("expires {expires:?}"),
            locks.lock_key(LockParams::new("k").expires(expires)).await,
            |r| matches!(r, InvalidInput::ExpiryTooShort(_)),
        );
    }
    for expires in [
        DEFAULT_MAX_EXPIRES + Duration::from_millis(1),
        Duration::from_secs(u64::MAX),
        Duration::MAX,
    ] {
        assert_rejected(
            &fx,
            &format!("expires {expires:?}"),
            locks.lock_key(LockParams::new("k").expires(expires)).await,
            |r| matches!(r, InvalidInput::ExpiryTooLong { .. }),
        );
    }

    assert_rejected(
        &fx,
        "lock empty value",
        locks.lock_key(LockParams::new("k").value("")).await,
        |r| *r == InvalidInput::EmptyValue,
    );
    assert_rejected(
        &fx,
        "release empty value",
        locks.release_lock(ReleaseParams::new("k").value("")).await,
        |r| *r == InvalidInput::EmptyValue,
    );
    assert_rejected(
        &fx,
        "lock long value",
        locks
            .lock_key(LockParams::new("k").value(&long_value))
            .await,
        |r| {
            *r == InvalidInput::ValueTooLong {
                len: 1025,
                max: 1024,
            }
        },
    );
    assert_rejected(
        &fx,
        "release long value",
        locks
            .release_lock(ReleaseParams::new("k").value(&long_value))
            .await,
        |r| matches!(r, InvalidInput::ValueTooLong { .. }),
    );

    // The client still works afterwards.
    let key = unique_key("after-bad-input");
    locks.lock_key(LockParams::new(&key)).await.unwrap();
}

async fn limits_are_inclusive(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let prefix = unique_key("max");
    let key = format!("{prefix}{}", "k".repeat(DEFAULT_MAX_KEY_LEN - prefix.len()));
    assert_eq!(key.len(), DEFAULT_MAX_KEY_LEN);
    let value = "v".repeat(DEFAULT_MAX_VALUE_LEN);
    let got = fx
        .locks
        .lock_key(
            LockParams::new(&key)
                .value(&value)
                .expires(DEFAULT_MAX_EXPIRES),
        )
        .await
        .unwrap();
    assert_eq!(got, value);
    assert_eq!(fx.locks.get_lock(&key).await.unwrap(), Some(value.clone()));
    fx.locks
        .release_lock(ReleaseParams::new(&key).value(&value))
        .await
        .unwrap();
    // The smallest expiry, 1 ms, is accepted (and gone soon after).
    let short = unique_key("one-ms");
    fx.locks
        .lock_key(LockParams::new(&short).expires(Duration::from_millis(1)))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(fx.locks.get_lock(&short).await.unwrap(), None);
}

async fn configured_limits_apply(backend: Backend) {
    let fx = Fixture::with(backend, |b| {
        b.key_prefix("app:")
            .max_key_len(16)
            .max_value_len(8)
            .max_expires(Duration::from_secs(60))
    })
    .await;
    // "app:" + 12 bytes = 16: fits; 13 does not.
    assert_rejected(
        &fx,
        "prefix + key over max",
        fx.locks.lock_key(LockParams::new("k".repeat(13))).await,
        |r| *r == InvalidInput::KeyTooLong { len: 17, max: 16 },
    );
    assert_rejected(
        &fx,
        "value over max",
        fx.locks
            .lock_key(LockParams::new("k").value("123456789"))
            .await,
        |r| matches!(r, InvalidInput::ValueTooLong { len: 9, max: 8 }),
    );
    assert_rejected(
        &fx,
        "expires over max",
        fx.locks
            .lock_key(LockParams::new("k").expires(Duration::from_secs(61)))
            .await,
        |r| matches!(r, InvalidInput::ExpiryTooLong { .. }),
    );
    // The generated token (40 characters) is not held to max_value_len.
    let key = format!("{}", std::process::id() % 1_000_000_000);
    let token = fx
        .locks
        .lock_key(LockParams::new(&key).expires(Duration::from_secs(60)))
        .await
        .unwrap();
    assert_eq!(token.len(), 40);
    fx.locks
        .release_lock(ReleaseParams::new(&key))
        .await
        .unwrap();
}

/// Redis only: the in-memory store holds nothing but locks.
#[tokio::test]
async fn a_key_of_another_type_is_a_clear_error_and_is_left_untouched() {
    let fx = Fixture::new(Backend::Redis).await;
    let mut raw = fx.raw().unwrap();
    let key = unique_key("list");
    let _: i64 = redis::cmd("RPUSH")
        .arg(&key)
        .arg(&["a", "b", "c"])
        .query_async(&mut raw)
        .await
        .unwrap();

    let err = fx.locks.lock_key(LockParams::new(&key)).await.unwrap_err();
    assert!(
        matches!(&err, LockError::WrongType { found, .. } if found == "list"),
        "{err:?}"
    );
    assert!(!matches!(err, LockError::Locked { .. }));
    assert_eq!(
        err.to_string(),
        format!("key {key:?} holds a Redis list value, not a lock")
    );

    let err = fx
        .locks
        .release_lock(ReleaseParams::new(&key).value("v"))
        .await
        .unwrap_err();
    assert!(matches!(err, LockError::WrongType { .. }), "{err:?}");
    let err = fx
        .locks
        .release_lock(ReleaseParams::new(&key))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, LockError::WrongType { found, .. } if found == "list"),
        "force release must not delete a list: {err:?}"
    );
    let err = fx.locks.get_lock(&key).await.unwrap_err();
    assert!(matches!(err, LockError::WrongType { .. }), "{err:?}");

    let list: Vec<String> = redis::cmd("LRANGE")
        .arg(&key)
        .arg(0)
        .arg(-1)
        .query_async(&mut raw)
        .await
        .unwrap();
    assert_eq!(list, ["a", "b", "c"], "the list is untouched");
}

/// The behaviour suites run as the restricted user of `support::LOCKER_ACL` (the README's ACL
/// line); this checks that the user really is restricted, so that those runs prove the crate
/// needs nothing more.
#[tokio::test]
async fn the_restricted_user_of_the_suites_can_do_nothing_else() {
    let mut locker = support::locker_conn(support::shared()).await;
    for cmd in [
        redis::cmd("FLUSHALL"),
        redis::cmd("KEYS").arg("*").clone(),
        redis::cmd("CONFIG").arg("GET").arg("*").clone(),
        redis::cmd("SCRIPT").arg("FLUSH").clone(),
        redis::cmd("INCR").arg("x").clone(),
        redis::cmd("SUBSCRIBE").arg("other-channel").clone(),
    ] {
        let err = cmd
            .query_async::<redis::Value>(&mut locker)
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some("NOPERM"), "{cmd:?}: {err}");
    }
    // And it is the user the fixtures use: a lock taken through them shows up as its work.
    let fx = Fixture::new(Backend::Redis).await;
    let key = unique_key("acl");
    fx.locks.lock_key(LockParams::new(&key)).await.unwrap();
    let mut raw = fx.raw().unwrap();
    let clients: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(&mut raw)
        .await
        .unwrap();
    assert!(clients.contains("user=locker"), "{clients}");
}
