//! `RedisLock::batch`: seed calls sent together, each answered as its own method answers it,
//! on every store; on one Redis server, one pipeline for the lot. Faults on private servers:
//! down, frozen (the cleanup of a lock whose answer never came), a reply lost with its
//! connection (the retry recognises what the first try did), the script cache flushed, keys
//! of another type.

mod support;

use std::time::Duration;

use ac_redislock::{
    BatchCall, BatchOutput, LockError, LockParams, RedisLock, ReleaseParams, UnavailableReason,
};
use redis::AsyncCommands;
use support::{Backend, Fixture, LoseReply, RedisServer, raw_conn, unique_key};

on_every_store!(
    each_call_is_answered_as_its_own_method_answers_it,
    bad_input_fails_its_own_call_only,
    a_closed_client_sends_only_the_releases,
    many_contenders_in_batches_get_each_key_once,
);

fn lock(key: &str) -> BatchCall {
    BatchCall::Lock(LockParams::new(key))
}

fn lock_with(key: &str, value: &str) -> BatchCall {
    BatchCall::Lock(LockParams::new(key).value(value))
}

fn release(key: &str, value: &str) -> BatchCall {
    BatchCall::Release(ReleaseParams::new(key).value(value))
}

/// A lock taken and released, so the server has the release script.
async fn load_scripts(locks: &RedisLock) {
    let warm = unique_key("warm");
    let token = locks.lock_key(LockParams::new(&warm)).await.unwrap();
    locks
        .release_lock(ReleaseParams::new(&warm).value(token))
        .await
        .unwrap();
}

/// The releases of `keys`, each with its token.
fn releases(keys: &[String], tokens: &[String]) -> Vec<BatchCall> {
    keys.iter()
        .zip(tokens)
        .map(|(key, token)| release(key, token))
        .collect()
}

async fn each_call_is_answered_as_its_own_method_answers_it(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let locks = &fx.locks;
    let [free, held, mine, theirs, gone, forced, quiet] =
        ["free", "held", "mine", "theirs", "gone", "forced", "quiet"].map(unique_key);
    for (key, value) in [
        (&held, "other"),
        (&mine, "me"),
        (&theirs, "them"),
        (&forced, "anyone"),
        (&quiet, "them"),
    ] {
        locks
            .lock_key(LockParams::new(key).value(value))
            .await
            .unwrap();
    }

    let results = locks
        .batch([
            lock(&free),
            lock_with(&held, "me"),
            release(&mine, "me"),
            release(&theirs, "me"),
            release(&gone, "me"),
            BatchCall::Release(ReleaseParams::new(&forced)),
            BatchCall::Release(
                ReleaseParams::new(&quiet)
                    .value("me")
                    .suppress_mismatch(true),
            ),
            BatchCall::Get(held.clone()),
            BatchCall::Get(unique_key("nobody")),
        ])
        .await;
    assert_eq!(results.len(), 9);
    let mut results = results.into_iter();
    let mut next = || results.next().unwrap();

    let token = match next() {
        Ok(BatchOutput::Lock(token)) => token,
        other => panic!("free key: {other:?}"),
    };
    assert_eq!(token.len(), 40, "a generated 160-bit token");
    assert_eq!(locks.get_lock(&free).await.unwrap(), Some(token));

    let err = next().unwrap_err();
    assert!(matches!(err, LockError::Locked { .. }), "{err:?}");
    assert_eq!(err.code(), 423);
    assert_eq!(
        locks.get_lock(&held).await.unwrap().as_deref(),
        Some("other")
    );

    assert_eq!(next().unwrap(), BatchOutput::Release);
    assert_eq!(locks.get_lock(&mine).await.unwrap(), None);

    let err = next().unwrap_err();
    assert!(matches!(err, LockError::NotOwner { .. }), "{err:?}");
    assert_eq!(
        locks.get_lock(&theirs).await.unwrap().as_deref(),
        Some("them"),
        "a mismatch leaves the lock alone"
    );
    let err = next().unwrap_err();
    assert!(matches!(err, LockError::NotHeld { .. }), "{err:?}");

    assert_eq!(next().unwrap(), BatchOutput::Release, "force release");
    assert_eq!(locks.get_lock(&forced).await.unwrap(), None);
    assert_eq!(next().unwrap(), BatchOutput::Release, "suppressed mismatch");
    assert_eq!(
        locks.get_lock(&quiet).await.unwrap().as_deref(),
        Some("them")
    );

    assert_eq!(next().unwrap(), BatchOutput::Get(Some("other".to_owned())));
    assert_eq!(next().unwrap(), BatchOutput::Get(None));

    if let Some(mut raw) = fx.raw() {
        // The Node original's command and expiry: SET key value EX 10 NX.
        let ttl: i64 = raw.ttl(&free).await.unwrap();
        assert!((9..=10).contains(&ttl), "TTL {ttl}");
    }
}

async fn bad_input_fails_its_own_call_only(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let key = unique_key("good");
    let results = fx
        .locks
        .batch([
            lock(""),
            BatchCall::Lock(LockParams::new(&key).expires(Duration::ZERO)),
            lock_with(&key, ""),
            lock(&key),
            BatchCall::Get(String::new()),
        ])
        .await;
    for (i, result) in results.iter().enumerate() {
        if i == 3 {
            assert!(matches!(result, Ok(BatchOutput::Lock(_))), "{result:?}");
        } else {
            let err = result.as_ref().unwrap_err();
            assert!(
                matches!(err, LockError::InvalidInput(_)),
                "call {i}: {err:?}"
            );
            assert_eq!(err.code(), 400);
        }
    }
    // Nothing but the good call was sent.
    let mut got = fx.locks.get_lock(&key).await.unwrap();
    assert!(got.take().is_some_and(|value| value.len() == 40));
    assert!(fx.locks.batch(Vec::new()).await.is_empty());
}

/// As each method alone: a closed client sends the releases with a value, and refuses the
/// rest, a force release included.
async fn a_closed_client_sends_only_the_releases(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let key = unique_key("closing");
    let token = fx.locks.lock_key(LockParams::new(&key)).await.unwrap();
    fx.locks.close().await.unwrap();
    let forced = ReleaseParams::new(unique_key("forced"));
    let alone = fx.locks.release_lock(forced.clone()).await.unwrap_err();
    let results = fx
        .locks
        .batch([
            lock(&unique_key("after")),
            BatchCall::Get(key.clone()),
            BatchCall::Release(forced),
            release(&key, &token),
        ])
        .await;
    assert!(
        matches!(
            alone,
            LockError::Unavailable {
                reason: UnavailableReason::Shutdown,
                ..
            }
        ),
        "{alone:?}"
    );
    for result in &results[..3] {
        assert!(
            matches!(
                result,
                Err(LockError::Unavailable {
                    reason: UnavailableReason::Shutdown,
                    ..
                })
            ),
            "{result:?}"
        );
    }
    assert_eq!(results[3].as_ref().unwrap(), &BatchOutput::Release);
    if let Some(mut raw) = fx.raw() {
        let exists: bool = raw.exists(&key).await.unwrap();
        assert!(!exists, "the release went out");
    }
}

/// Eight clients, each sending batches over the same 16 keys: every key is taken exactly once
/// per round, whoever's batch gets there first.
async fn many_contenders_in_batches_get_each_key_once(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let keys: Vec<String> = (0..16).map(|_| unique_key("contended")).collect();
    let mut clients = Vec::new();
    for _ in 0..8 {
        clients.push(fx.other_client().await);
    }
    for _round in 0..3 {
        let tasks: Vec<_> = clients
            .iter()
            .map(|locks| {
                let locks = locks.clone();
                let calls: Vec<BatchCall> = keys.iter().map(|key| lock(key)).collect();
                tokio::spawn(async move { locks.batch(calls).await })
            })
            .collect();
        let mut winners = vec![Vec::new(); keys.len()];
        for task in tasks {
            for (i, result) in task.await.unwrap().into_iter().enumerate() {
                match result {
                    Ok(BatchOutput::Lock(token)) => winners[i].push(token),
                    Err(LockError::Locked { .. }) => {}
                    other => panic!("{other:?}"),
                }
            }
        }
        for (key, won) in keys.iter().zip(&winners) {
            assert_eq!(won.len(), 1, "{key}: {won:?}");
            assert_eq!(fx.locks.get_lock(key).await.unwrap().as_ref(), won.first());
        }
        let releases = keys
            .iter()
            .zip(&winners)
            .map(|(key, won)| release(key, &won[0]));
        for result in fx.locks.batch(releases).await {
            assert_eq!(result.unwrap(), BatchOutput::Release);
        }
    }
}

/// On one Redis server the batch is one pipeline: one round trip for the lot, and one more
/// only for the refused locks (`TYPE`, to tell a lock from a key of another type).
#[tokio::test]
async fn one_server_sends_the_batch_as_one_pipeline() {
    let fx = Fixture::new(Backend::Redis).await;
    let keys: Vec<String> = (0..5).map(|_| unique_key("pipelined")).collect();
    let before = fx.sent_count();
    let results = fx.locks.batch(keys.iter().map(|key| lock(key))).await;
    assert_eq!(fx.sent_count() - before, 1, "one pipeline");
    let tokens: Vec<String> = results
        .into_iter()
        .map(|result| match result {
            Ok(BatchOutput::Lock(token)) => token,
            other => panic!("{other:?}"),
        })
        .collect();

    let before = fx.sent_count();
    let mut calls: Vec<BatchCall> = keys.iter().map(|key| lock(key)).collect();
    calls.extend(
        keys.iter()
            .zip(&tokens)
            .map(|(key, token)| release(key, token)),
    );
    let results = fx.locks.batch(calls).await;
    assert_eq!(
        fx.sent_count() - before,
        2,
        "one pipeline, and one for the refusals' TYPE"
    );
    for result in &results[..5] {
        assert!(
            matches!(result, Err(LockError::Locked { .. })),
            "{result:?}"
        );
    }
    for result in &results[5..] {
        assert_eq!(result.as_ref().unwrap(), &BatchOutput::Release);
    }
}

/// A key of another type is named in its call's error, as the call alone names it; the other
/// calls are not disturbed.
#[tokio::test]
async fn keys_of_another_type_fail_their_own_calls() {
    let fx = Fixture::new(Backend::Redis).await;
    let mut raw = fx.raw().unwrap();
    let list = unique_key("list");
    let _: () = raw.rpush(&list, "x").await.unwrap();
    let fine = unique_key("fine");
    let results = fx
        .locks
        .batch([
            lock(&list),
            release(&list, "v"),
            lock(&fine),
            BatchCall::Get(list.clone()),
        ])
        .await;
    // As each call alone reports it: the scripts and the refused SET name the type, a GET
    // can only say it is not a string.
    let alone = fx.locks.get_lock(&list).await.unwrap_err();
    for (i, expected) in [(0, "list"), (1, "list"), (3, "non-string")] {
        let err = results[i].as_ref().unwrap_err();
        match err {
            LockError::WrongType { key, found } => {
                assert_eq!(key, &list, "call {i}");
                assert_eq!(found, expected, "call {i}");
            }
            other => panic!("call {i}: {other:?}"),
        }
    }
    assert!(
        matches!(&alone, LockError::WrongType { found, .. } if found == "non-string"),
        "{alone:?}"
    );
    assert!(matches!(results[2], Ok(BatchOutput::Lock(_))));
    let len: i64 = raw.llen(&list).await.unwrap();
    assert_eq!(len, 1, "the list is untouched");
}

/// After `SCRIPT FLUSH` (a restart, a failover), the releases of a batch meet NOSCRIPT and go
/// again alone, as `EVAL`: still released.
#[tokio::test]
async fn releases_survive_a_flushed_script_cache() {
    let server = RedisServer::start();
    let locks = RedisLock::from_url(&server.url()).unwrap();
    let keys: Vec<String> = (0..3).map(|_| unique_key("flushed")).collect();
    let tokens: Vec<String> = locks
        .batch(keys.iter().map(|key| lock(key)))
        .await
        .into_iter()
        .map(|result| match result {
            Ok(BatchOutput::Lock(token)) => token,
            other => panic!("{other:?}"),
        })
        .collect();
    // Loads the release script, then loses it.
    load_scripts(&locks).await;
    let mut raw = raw_conn(&server).await;
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut raw)
        .await
        .unwrap();
    let results = locks.batch(releases(&keys, &tokens)).await;
    for (key, result) in keys.iter().zip(results) {
        assert_eq!(result.unwrap(), BatchOutput::Release, "{key}");
        let exists: bool = raw.exists(key).await.unwrap();
        assert!(!exists, "{key}");
    }
}

/// A server that is down fails every call of the batch as unavailable, never as locked.
#[tokio::test]
async fn a_server_down_fails_every_call_as_unavailable() {
    let mut server = RedisServer::start();
    let url = server.url();
    server.kill();
    let locks = RedisLock::builder()
        .command_timeout(Duration::from_millis(500))
        .build_from_url(&url)
        .unwrap();
    let key = unique_key("down");
    let results = locks
        .batch([
            lock(&key),
            release(&key, "v"),
            BatchCall::Release(ReleaseParams::new(&key)),
            BatchCall::Get(key.clone()),
        ])
        .await;
    for result in results {
        let err = result.unwrap_err();
        assert!(matches!(err, LockError::Unavailable { .. }), "{err:?}");
        assert_eq!(err.code(), 503);
    }
}

/// A batch whose answer never comes (the server frozen past the command timeout) fails as
/// unavailable; a lock it may have taken with a generated token is released in the background
/// once the server answers again, as `lock_key`'s is.
#[tokio::test]
async fn a_frozen_server_times_out_and_the_locks_taken_are_cleaned_up() {
    let server = RedisServer::start();
    let locks = RedisLock::builder()
        .command_timeout(Duration::from_millis(300))
        .build_from_url(&server.url())
        .unwrap();
    let keys: Vec<String> = (0..3).map(|_| unique_key("frozen")).collect();
    // Connected before the freeze.
    locks.get_lock(&keys[0]).await.unwrap();
    server.pause();
    let results = locks.batch(keys.iter().map(|key| lock(key))).await;
    server.resume();
    for result in results {
        let err = result.unwrap_err();
        assert!(
            matches!(
                err,
                LockError::Unavailable {
                    reason: UnavailableReason::Timeout(_),
                    ..
                }
            ),
            "{err:?}"
        );
    }
    // The SETs ran once the server woke; the cleanups release them.
    let mut raw = raw_conn(&server).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    for key in &keys {
        loop {
            let exists: bool = raw.exists(key).await.unwrap();
            if !exists {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{key} still held after its batch timed out"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A batch whose replies were lost with their connection after it ran is sent again, and the
/// retry reads what the first try did: a lock holding its own token is granted (not locked),
/// a lock it no longer finds was released by the first try (not a mismatch).
#[tokio::test]
async fn a_retried_batch_recognises_what_its_first_try_did() {
    let server = RedisServer::start();
    let conn = LoseReply::new(raw_conn(&server).await);
    let trigger = conn.trigger();
    let locks = RedisLock::new(conn);
    // Loads the scripts.
    load_scripts(&locks).await;

    let keys: Vec<String> = (0..3).map(|_| unique_key("lost")).collect();
    trigger.arm("SET");
    let results = locks.batch(keys.iter().map(|key| lock(key))).await;
    assert!(trigger.fired());
    let mut tokens = Vec::new();
    for (key, result) in keys.iter().zip(results) {
        match result {
            Ok(BatchOutput::Lock(token)) => {
                assert_eq!(locks.get_lock(key).await.unwrap().as_ref(), Some(&token));
                tokens.push(token);
            }
            other => panic!("{key}: {other:?}"),
        }
    }

    trigger.arm("EVALSHA");
    let results = locks.batch(releases(&keys, &tokens)).await;
    assert!(trigger.fired());
    for (key, result) in keys.iter().zip(results) {
        assert_eq!(result.unwrap(), BatchOutput::Release, "{key}");
        assert_eq!(locks.get_lock(key).await.unwrap(), None);
    }
}
