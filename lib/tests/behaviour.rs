//! The seed API's behaviour, run on every store: the shared redis-server of this binary and the
//! in-memory store. Each behaviour is an `async fn(Backend)`; `on_every_store!` makes a test of
//! it per store.

mod support;

use std::collections::HashSet;
use std::time::Duration;

use ac_redislock::{LockError, LockParams, RedisLock, ReleaseParams};
use redis::AsyncCommands;
use support::{Backend, Fixture, Logs, unique_key};

on_every_store!(
    lock_returns_a_fresh_token_that_get_lock_sees,
    lock_with_a_given_value_stores_that_value,
    second_lock_is_refused_with_423_and_changes_nothing,
    expiry_frees_the_key,
    release_with_the_right_value_frees_the_key,
    release_with_a_wrong_value_is_not_owner_and_keeps_the_lock,
    mismatch_suppressed_per_call_is_silent_and_keeps_the_lock,
    mismatch_suppressed_per_instance_can_be_overridden_per_call,
    release_after_expiry_is_not_held,
    expired_lock_taken_by_another_is_never_released_by_the_first,
    release_without_value_is_a_force_release,
    get_lock_of_a_free_key_is_none,
    binary_unsafe_keys_and_values_round_trip,
    sixty_four_contenders_exactly_one_winner,
    key_prefix_is_added_on_the_wire_only,
    lock_attempts_are_logged_at_the_chosen_level_without_the_token,
    mismatch_is_logged_at_warn_unless_suppressed,
    clones_share_the_store_and_instances_are_independent_options,
    extend_lock_moves_the_expiry_only_for_the_holder_and_never_recreates,
);

const SHORT: Duration = Duration::from_millis(150);

async fn lock_returns_a_fresh_token_that_get_lock_sees(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let key = unique_key("fresh");
    let token = fx.locks.lock_key(LockParams::new(&key)).await.unwrap();
    assert_eq!(token.len(), 40, "160-bit hex token: {}", token.len());
    assert!(token.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(fx.locks.get_lock(&key).await.unwrap(), Some(token.clone()));

    let other_key = unique_key("fresh");
    let other = fx
        .locks
        .lock_key(LockParams::new(&other_key))
        .await
        .unwrap();
    assert_ne!(token, other, "each lock gets its own token");

    if let Some(mut raw) = fx.raw() {
        // The default expiry is 10 s, as in the original.
        let ttl: i64 = raw.ttl(&key).await.unwrap();
        assert!((9..=10).contains(&ttl), "TTL {ttl}");
    }
}

async fn lock_with_a_given_value_stores_that_value(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let key = unique_key("given");
    let value = fx
        .locks
        .lock_key(LockParams::new(&key).value("worker-7"))
        .await
        .unwrap();
    assert_eq!(value, "worker-7");
    assert_eq!(
        fx.locks.get_lock(&key).await.unwrap().as_deref(),
        Some("worker-7")
    );
}

async fn second_lock_is_refused_with_423_and_changes_nothing(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let key = unique_key("second");
    let first = fx
        .locks
        .lock_key(LockParams::new(&key).expires(Duration::from_secs(5)))
        .await
        .unwrap();
    let err = fx
        .locks
        .lock_key(
            LockParams::new(&key)
                .expires(Duration::from_secs(60))
                .value("intruder"),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, LockError::Locked { key: k } if *k == key),
        "{err:?}"
    );
    assert_eq!(err.code(), 423);
    assert!(!err.is_backend());
    assert_eq!(fx.locks.get_lock(&key).await.unwrap(), Some(first));
    if let Some(mut raw) = fx.raw() {
        let ttl: i64 = raw.ttl(&key).await.unwrap();
        assert!(
            (1..=5).contains(&ttl),
            "the refused attempt must not touch the TTL: {ttl}"
        );
    }
}

async fn expiry_frees_the_key(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let key = unique_key("expiry");
    fx.locks
        .lock_key(LockParams::new(&key).expires(SHORT))
        .await
        .unwrap();
    assert!(matches!(
        fx.locks.lock_key(LockParams::new(&key)).await,
        Err(LockError::Locked { .. })
    ));
    tokio::time::sleep(SHORT * 3).await;
    assert_eq!(fx.locks.get_lock(&key).await.unwrap(), None);
    fx.locks
        .lock_key(LockParams::new(&key))
        .await
        .expect("free again after its expiry");
}

async fn release_with_the_right_value_frees_the_key(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let key = unique_key("release");
    let token = fx.locks.lock_key(LockParams::new(&key)).await.unwrap();
    fx.locks
        .release_lock(ReleaseParams::new(&key).value(&token))
        .await
        .unwrap();
    assert_eq!(fx.locks.get_lock(&key).await.unwrap(), None);
    fx.locks
        .lock_key(LockParams::new(&key))
        .await
        .expect("free again after release");
}

async fn release_with_a_wrong_value_is_not_owner_and_keeps_the_lock(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let key = unique_key("wrong");
    let token = fx.locks.lock_key(LockParams::new(&key)).await.unwrap();
    let err = fx
        .locks
        .release_lock(ReleaseParams::new(&key).value("not-the-token"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, LockError::NotOwner { key: k } if *k == key),
        "{err:?}"
    );
    assert!(err.is_mismatch());
    // The error never carries the holder's token.
    assert!(!format!("{err} {err:?}").contains(&token));
    assert_eq!(fx.locks.get_lock(&key).await.unwrap(), Some(token));
}

async fn mismatch_suppressed_per_call_is_silent_and_keeps_the_lock(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let key = unique_key("suppress");
    let token = fx.locks.lock_key(LockParams::new(&key)).await.unwrap();
    fx.locks
        .release_lock(
            ReleaseParams::new(&key)
                .value("not-the-token")
                .suppress_mismatch(true),
        )
        .await
        .expect("a suppressed mismatch is Ok");
    assert_eq!(fx.locks.get_lock(&key).await.unwrap(), Some(token));
    // A missing key is a mismatch too, suppressed the same way.
    fx.locks
        .release_lock(
            ReleaseParams::new(unique_key("missing"))
                .value("x")
                .suppress_mismatch(true),
        )
        .await
        .expect("a suppressed missing key is Ok");
}

async fn mismatch_suppressed_per_instance_can_be_overridden_per_call(backend: Backend) {
    let fx = Fixture::with(backend, |b| b.suppress_mismatch(true)).await;
    let key = unique_key("instance");
    let token = fx.locks.lock_key(LockParams::new(&key)).await.unwrap();
    fx.locks
        .release_lock(ReleaseParams::new(&key).value("not-the-token"))
        .await
        .expect("the instance suppresses mismatches");
    let err = fx
        .locks
        .release_lock(
            ReleaseParams::new(&key)
                .value("not-the-token")
                .suppress_mismatch(false),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, LockError::NotOwner { .. }), "{err:?}");
    assert_eq!(fx.locks.get_lock(&key).await.unwrap(), Some(token));
}

async fn release_after_expiry_is_not_held(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let key = unique_key("after-expiry");
    let token = fx
        .locks
        .lock_key(LockParams::new(&key).expires(SHORT))
        .await
        .unwrap();
    tokio::time::sleep(SHORT * 3).await;
    let err = fx
        .locks
        .release_lock(ReleaseParams::new(&key).value(&token))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, LockError::NotHeld { key: k } if *k == key),
        "{err:?}"
    );
    assert_eq!(err.code(), 410);
    assert!(err.is_mismatch());
}

/// The Node original's race: A's lock expires, B takes it, A's release must not delete B's lock.
async fn expired_lock_taken_by_another_is_never_released_by_the_first(backend: Backend) {
    let a = Fixture::new(backend).await;
    // B is another client on the same store: a second connection on Redis, a clone in memory.
    let b_locks = match backend {
        Backend::Redis | Backend::Cluster => Fixture::new(backend).await.locks.clone(),
        Backend::Memory => a.locks.clone(),
    };
    let key = unique_key("race");
    let a_token = a
        .locks
        .lock_key(LockParams::new(&key).expires(SHORT))
        .await
        .unwrap();
    tokio::time::sleep(SHORT * 3).await;
    let b_token = b_locks
        .lock_key(LockParams::new(&key).expires(Duration::from_secs(10)))
        .await
        .expect("A's lock expired, so B gets it");
    let err = a
        .locks
        .release_lock(ReleaseParams::new(&key).value(&a_token))
        .await
        .unwrap_err();
    assert!(matches!(err, LockError::NotOwner { .. }), "{err:?}");
    assert_eq!(
        b_locks.get_lock(&key).await.unwrap(),
        Some(b_token),
        "B's lock must survive A's late release"
    );
}

async fn release_without_value_is_a_force_release(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let key = unique_key("force");
    fx.locks
        .lock_key(LockParams::new(&key).value("someone-else"))
        .await
        .unwrap();
    fx.locks
        .release_lock(ReleaseParams::new(&key))
        .await
        .unwrap();
    assert_eq!(fx.locks.get_lock(&key).await.unwrap(), None);
    // Releasing a free key this way is fine too.
    fx.locks
        .release_lock(ReleaseParams::new(&key))
        .await
        .unwrap();
    fx.locks.lock_key(LockParams::new(&key)).await.unwrap();
}

async fn get_lock_of_a_free_key_is_none(backend: Backend) {
    let fx = Fixture::new(backend).await;
    assert_eq!(fx.locks.get_lock(&unique_key("none")).await.unwrap(), None);
}

async fn binary_unsafe_keys_and_values_round_trip(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let odd = [
        "nul\0byte",
        "crlf\r\ninjection SET x y\r\n",
        "tabs\tand spaces  ",
        "ünïcödé 🔒 锁",
        "{hash}tag",
        "glob*?[chars]",
        "quote\"'`$(echo)",
        "\u{7f}\u{1b}[31m",
        "*3\r\n$3\r\nDEL\r\n",
    ];
    for (i, text) in odd.iter().enumerate() {
        let key = format!("{}:{text}", unique_key("odd"));
        let value = format!("v{i}:{text}");
        let got = fx
            .locks
            .lock_key(LockParams::new(&key).value(&value))
            .await
            .unwrap();
        assert_eq!(got, value);
        assert_eq!(
            fx.locks.get_lock(&key).await.unwrap().as_deref(),
            Some(&*value)
        );
        assert!(matches!(
            fx.locks.lock_key(LockParams::new(&key)).await,
            Err(LockError::Locked { .. })
        ));
        if let Some(mut raw) = fx.raw() {
            let stored: Vec<u8> = raw.get(key.as_bytes()).await.unwrap();
            assert_eq!(stored, value.as_bytes(), "stored byte for byte");
        }
        let err = fx
            .locks
            .release_lock(ReleaseParams::new(&key).value(format!("{value}x")))
            .await
            .unwrap_err();
        assert!(
            matches!(err, LockError::NotOwner { .. }),
            "{text:?}: {err:?}"
        );
        fx.locks
            .release_lock(ReleaseParams::new(&key).value(&value))
            .await
            .unwrap();
        assert_eq!(fx.locks.get_lock(&key).await.unwrap(), None, "{text:?}");
    }
}

async fn sixty_four_contenders_exactly_one_winner(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let key = unique_key("contend");
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..64 {
        let locks = fx.locks.clone();
        let key = key.clone();
        tasks.spawn(async move {
            locks
                .lock_key(LockParams::new(&key).value(format!("task-{i}")))
                .await
        });
    }
    let mut winners = Vec::new();
    let mut refused = 0;
    while let Some(result) = tasks.join_next().await {
        match result.unwrap() {
            Ok(value) => winners.push(value),
            Err(LockError::Locked { .. }) => refused += 1,
            Err(other) => panic!("unexpected error: {other:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "winners: {winners:?}");
    assert_eq!(refused, 63);
    assert_eq!(
        fx.locks.get_lock(&key).await.unwrap(),
        Some(winners[0].clone())
    );
}

async fn key_prefix_is_added_on_the_wire_only(backend: Backend) {
    let prefixed = Fixture::with(backend, |b| b.key_prefix("app:")).await;
    let key = unique_key("prefix");
    let token = prefixed
        .locks
        .lock_key(LockParams::new(&key))
        .await
        .unwrap();
    assert_eq!(
        prefixed.locks.get_lock(&key).await.unwrap(),
        Some(token.clone())
    );
    let err = prefixed
        .locks
        .lock_key(LockParams::new(&key))
        .await
        .unwrap_err();
    // The error names the key as the caller gave it.
    assert!(
        matches!(&err, LockError::Locked { key: k } if *k == key),
        "{err:?}"
    );
    if let Some(mut raw) = prefixed.raw() {
        let stored: Option<String> = raw.get(format!("app:{key}")).await.unwrap();
        assert_eq!(stored, Some(token.clone()));
        let bare: Option<String> = raw.get(&key).await.unwrap();
        assert_eq!(bare, None);
        // Without the prefix, the same name is a different lock.
        let plain = Fixture::new(backend).await;
        plain.locks.lock_key(LockParams::new(&key)).await.unwrap();
    }
    prefixed
        .locks
        .release_lock(ReleaseParams::new(&key).value(token))
        .await
        .unwrap();
}

async fn lock_attempts_are_logged_at_the_chosen_level_without_the_token(backend: Backend) {
    let logs = Logs::capture();
    let fx = Fixture::with(backend, |b| b.log_level(tracing::Level::INFO)).await;
    let key = unique_key("logged");
    let token = fx.locks.lock_key(LockParams::new(&key)).await.unwrap();
    let _ = fx
        .locks
        .lock_key(LockParams::new(&key).value("second"))
        .await;
    let _ = fx
        .locks
        .release_lock(ReleaseParams::new(&key).value("wrong"))
        .await;
    fx.locks
        .release_lock(ReleaseParams::new(&key).value(&token))
        .await
        .unwrap();

    let attempts = logs.lines_with("lock attempt");
    assert_eq!(attempts.len(), 2, "{attempts:#?}");
    assert!(attempts[0].contains(" INFO ") && attempts[0].contains("outcome=\"acquired\""));
    assert!(attempts[1].contains(" INFO ") && attempts[1].contains("outcome=\"locked\""));
    assert!(
        attempts
            .iter()
            .all(|l| l.contains(&key) && l.contains("expires=10s"))
    );
    let text = logs.text();
    assert!(
        !text.contains(&token),
        "the token leaked into the logs:\n{text}"
    );
    assert!(
        !text.contains("second"),
        "a value leaked into the logs:\n{text}"
    );
}

async fn mismatch_is_logged_at_warn_unless_suppressed(backend: Backend) {
    let logs = Logs::capture();
    let fx = Fixture::new(backend).await;
    let key = unique_key("warn");
    let token = fx.locks.lock_key(LockParams::new(&key)).await.unwrap();
    let _ = fx
        .locks
        .release_lock(ReleaseParams::new(&key).value("wrong-1"))
        .await;
    fx.locks
        .release_lock(
            ReleaseParams::new(&key)
                .value("wrong-2")
                .suppress_mismatch(true),
        )
        .await
        .unwrap();
    let warnings = logs.lines_with(" WARN ");
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    assert!(
        warnings[0].contains("held by another owner"),
        "{}",
        warnings[0]
    );
    let text = logs.text();
    assert!(!text.contains(&token) && !text.contains("wrong-1") && !text.contains("wrong-2"));
}

async fn clones_share_the_store_and_instances_are_independent_options(backend: Backend) {
    let strict = Fixture::new(backend).await;
    let lenient = Fixture::with(backend, |b| b.suppress_mismatch(true)).await;
    let key = unique_key("instances");
    let token = strict.locks.lock_key(LockParams::new(&key)).await.unwrap();
    let clone = strict.locks.clone();
    assert!(matches!(
        clone.lock_key(LockParams::new(&key)).await,
        Err(LockError::Locked { .. })
    ));
    // Two instances with different options: one suppresses, the other does not.
    lenient
        .locks
        .release_lock(ReleaseParams::new(&key).value("wrong"))
        .await
        .unwrap();
    assert!(
        strict
            .locks
            .release_lock(ReleaseParams::new(&key).value("wrong"))
            .await
            .is_err()
    );
    clone
        .release_lock(ReleaseParams::new(&key).value(token))
        .await
        .unwrap();
}

/// Many sequential lock/release cycles on one key: every token differs and every cycle works.
#[tokio::test]
async fn a_thousand_cycles_give_a_thousand_distinct_tokens() {
    for backend in [Backend::Redis, Backend::Memory] {
        let fx = Fixture::new(backend).await;
        let key = unique_key("cycles");
        let mut seen = HashSet::new();
        for _ in 0..1000 {
            let token = fx.locks.lock_key(LockParams::new(&key)).await.unwrap();
            assert!(seen.insert(token.clone()));
            fx.locks
                .release_lock(ReleaseParams::new(&key).value(token))
                .await
                .unwrap();
        }
    }
}

/// The in-memory store is per instance: two `in_memory()` clients do not see each other.
#[tokio::test]
async fn in_memory_stores_are_separate() {
    let a = RedisLock::in_memory();
    let b = RedisLock::in_memory();
    a.lock_key(LockParams::new("k")).await.unwrap();
    b.lock_key(LockParams::new("k")).await.unwrap();
}

async fn extend_lock_moves_the_expiry_only_for_the_holder_and_never_recreates(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let key = unique_key("extend-lock");
    let token = fx
        .locks
        .lock_key(LockParams::new(&key).expires(SHORT))
        .await
        .unwrap();
    fx.locks
        .extend_lock(&key, &token, Duration::from_secs(30))
        .await
        .unwrap();
    tokio::time::sleep(SHORT * 3).await;
    assert_eq!(
        fx.locks.get_lock(&key).await.unwrap(),
        Some(token.clone()),
        "extended"
    );
    let err = fx
        .locks
        .extend_lock(&key, "not-the-token", Duration::from_secs(30))
        .await
        .unwrap_err();
    assert!(matches!(err, LockError::NotOwner { .. }), "{err:?}");
    fx.locks
        .release_lock(ReleaseParams::new(&key).value(&token))
        .await
        .unwrap();
    let err = fx
        .locks
        .extend_lock(&key, &token, Duration::from_secs(30))
        .await
        .unwrap_err();
    assert!(matches!(err, LockError::NotHeld { .. }), "{err:?}");
    assert_eq!(
        fx.locks.get_lock(&key).await.unwrap(),
        None,
        "extend re-created the lock"
    );
}
