//! Who holds it: the opt-in holder label of `AcquireOptions::holder`, kept in a companion key
//! next to the lock and reported by `status` with how long it has been held. Shown while held;
//! gone with the lock (release, expiry, force release); kept by extend; never shown on a new
//! holder (another client, a waiter the lock was handed to, a Node worker's `SET NX`); the
//! lock's value stays the token; bad labels are refused before any command.

mod support;

use std::time::{Duration, SystemTime};

use ac_redislock::{
    AcquireOptions, InvalidInput, LockError, LockState, LockStatus, MAX_HOLDER_LEN, RedisLock,
    ReleaseParams, RetryPolicy,
};
use redis::AsyncCommands;
use support::{Backend, Fixture, LoseReply, RedisServer, companion, raw_conn, unique_key};
use tokio::time::Instant;

on_every_store!(
    a_label_is_shown_while_held_with_held_for_and_ttl,
    the_label_goes_with_a_release,
    the_label_goes_with_a_force_release,
    the_label_goes_with_an_expiry,
    extend_and_renewal_keep_the_label,
    another_holder_never_shows_the_old_label,
    a_waiter_handed_the_lock_shows_its_own_label_or_none,
    without_a_label_there_is_none,
    bad_labels_are_refused_before_any_command,
);

mod wire {
    on_redis_and_cluster!(
        the_value_stays_the_token_and_the_label_sits_in_the_slot,
        a_node_worker_taking_the_key_never_shows_our_label,
        no_label_sends_the_node_command_and_writes_no_companion,
    );
    use super::*;
}

fn labelled(label: &str) -> AcquireOptions {
    AcquireOptions::new().holder(label)
}

/// Whether the holder companion of `key` exists (always `false` in memory: it has none).
async fn companion_exists(fx: &Fixture, key: &str) -> bool {
    let Some(mut raw) = fx.raw() else {
        return false;
    };
    raw.exists(companion(key, "holder")).await.unwrap()
}

async fn a_label_is_shown_while_held_with_held_for_and_ttl(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let key = unique_key("shown");
    let before = SystemTime::now();
    let guard = fx
        .locks
        .try_acquire_with(&key, labelled("web-3:4121 backup.sh"))
        .await
        .unwrap();
    let status = fx.locks.status(&key).await.unwrap();
    assert_eq!(status.state, LockState::Held);
    assert_eq!(status.holder.as_deref(), Some("web-3:4121 backup.sh"));
    let ttl = status.ttl.unwrap();
    assert!(
        ttl > Duration::from_secs(8) && ttl <= Duration::from_secs(10),
        "{ttl:?}"
    );
    assert!(
        status.held_for.unwrap() < Duration::from_secs(2),
        "{status:?}"
    );
    // The server's clock is this host's here: the start is within a few seconds of ours.
    let since = status.held_since.unwrap();
    let skew = since
        .duration_since(before)
        .unwrap_or_else(|early| early.duration());
    assert!(skew < Duration::from_secs(2), "{since:?} vs {before:?}");

    tokio::time::sleep(Duration::from_millis(400)).await;
    let later = fx.locks.status(&key).await.unwrap();
    let held_for = later.held_for.unwrap();
    assert!(held_for >= Duration::from_millis(350), "{held_for:?}");
    assert!(held_for < Duration::from_secs(5), "{held_for:?}");
    assert_eq!(
        later.held_since, status.held_since,
        "the start does not move"
    );
    assert_eq!(
        companion_exists(&fx, &key).await,
        backend != Backend::Memory
    );
    guard.release().await.unwrap();
}

/// A free lock: no holder, no times.
fn assert_free(status: &LockStatus) {
    assert_eq!(status.state, LockState::Free, "{status:?}");
    assert_eq!(status.holder, None, "{status:?}");
    assert_eq!(status.held_for, None, "{status:?}");
    assert_eq!(status.held_since, None, "{status:?}");
}

async fn the_label_goes_with_a_release(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let key = unique_key("released");
    let guard = fx
        .locks
        .try_acquire_with(&key, labelled("a"))
        .await
        .unwrap();
    guard.release().await.unwrap();
    assert_free(&fx.locks.status(&key).await.unwrap());
    assert!(!companion_exists(&fx, &key).await);
    // The seed API's release too.
    let guard = fx
        .locks
        .try_acquire_with(&key, labelled("a"))
        .await
        .unwrap();
    let token = guard.detach();
    fx.locks
        .release_lock(ReleaseParams::new(&key).value(token))
        .await
        .unwrap();
    assert_free(&fx.locks.status(&key).await.unwrap());
    assert!(!companion_exists(&fx, &key).await);
}

async fn the_label_goes_with_a_force_release(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let key = unique_key("forced");
    let guard = fx
        .locks
        .try_acquire_with(&key, labelled("a"))
        .await
        .unwrap();
    fx.locks
        .release_lock(ReleaseParams::new(&key))
        .await
        .unwrap();
    assert_free(&fx.locks.status(&key).await.unwrap());
    assert!(!companion_exists(&fx, &key).await);
    drop(guard.detach());
}

async fn the_label_goes_with_an_expiry(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let key = unique_key("expired");
    let options = labelled("a").ttl(Duration::from_millis(300));
    let guard = fx.locks.try_acquire_with(&key, options).await.unwrap();
    assert_eq!(
        fx.locks.status(&key).await.unwrap().holder.as_deref(),
        Some("a")
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_free(&fx.locks.status(&key).await.unwrap());
    // The companion had the lock's expiry.
    assert!(!companion_exists(&fx, &key).await);
    drop(guard.detach());
}

async fn extend_and_renewal_keep_the_label(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let key = unique_key("extended");
    let short = Duration::from_millis(600);
    let guard = fx
        .locks
        .try_acquire_with(&key, labelled("a").ttl(short))
        .await
        .unwrap();
    guard.extend(Duration::from_secs(10)).await.unwrap();
    tokio::time::sleep(short + Duration::from_millis(300)).await;
    let status = fx.locks.status(&key).await.unwrap();
    assert_eq!(status.holder.as_deref(), Some("a"), "{status:?}");
    assert!(status.held_for.unwrap() >= short, "{status:?}");
    if let Some(mut raw) = fx.raw() {
        let pttl: i64 = raw.pttl(companion(&key, "holder")).await.unwrap();
        assert!(pttl > 5_000, "the companion was not extended: {pttl}");
    }
    guard.release().await.unwrap();

    // The watchdog renews both.
    let renewed = labelled("b").ttl(short).auto_renew(true);
    let guard = fx.locks.try_acquire_with(&key, renewed).await.unwrap();
    tokio::time::sleep(short * 3).await;
    let status = fx.locks.status(&key).await.unwrap();
    assert_eq!(status.holder.as_deref(), Some("b"), "{status:?}");
    guard.release().await.unwrap();
}

async fn another_holder_never_shows_the_old_label(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let other = fx.other_client().await;
    let key = unique_key("next");
    // Released, then taken by another client with its own label, or with none.
    let guard = fx
        .locks
        .try_acquire_with(&key, labelled("a"))
        .await
        .unwrap();
    guard.release().await.unwrap();
    let next = other.try_acquire_with(&key, labelled("b")).await.unwrap();
    assert_eq!(
        fx.locks.status(&key).await.unwrap().holder.as_deref(),
        Some("b")
    );
    next.release().await.unwrap();
    let guard = fx
        .locks
        .try_acquire_with(&key, labelled("a"))
        .await
        .unwrap();
    guard.release().await.unwrap();
    let unlabelled = other.try_acquire(&key).await.unwrap();
    let status = fx.locks.status(&key).await.unwrap();
    assert_eq!(status.state, LockState::Held);
    assert_eq!((status.holder, status.held_for), (None, None));
    unlabelled.release().await.unwrap();

    // Expired, then taken by a waiting client without a label (the scripted attempt).
    let short = labelled("a").ttl(Duration::from_millis(300));
    let guard = fx.locks.try_acquire_with(&key, short).await.unwrap();
    let waiting = AcquireOptions::new()
        .wait(Duration::from_secs(10))
        .retry(RetryPolicy::fixed(Duration::from_millis(50)));
    let next = other.acquire_with(&key, waiting).await.unwrap();
    let status = fx.locks.status(&key).await.unwrap();
    assert_eq!(status.state, LockState::Held);
    assert_eq!(status.holder, None, "{status:?}");
    next.release().await.unwrap();
    drop(guard.detach());
}

async fn a_waiter_handed_the_lock_shows_its_own_label_or_none(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let key = unique_key("handed");
    // The fallback backoff is long: only a hand-off makes the waits short.
    let woken = |options: AcquireOptions| {
        options
            .wait(Duration::from_secs(20))
            .retry(RetryPolicy::fixed(Duration::from_secs(5)))
    };
    for waiter_label in [Some("b"), None] {
        let holder = fx
            .locks
            .try_acquire_with(&key, labelled("a"))
            .await
            .unwrap();
        let other = fx.other_client().await;
        let options = match waiter_label {
            Some(label) => woken(labelled(label)),
            None => woken(AcquireOptions::new()),
        };
        let key2 = key.clone();
        let waiter = tokio::spawn(async move { other.acquire_with(&key2, options).await });
        if let Some(mut raw) = fx.raw() {
            support::wait_for_waiters(&mut raw, &key, 1).await;
        } else {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let released = Instant::now();
        holder.release().await.unwrap();
        let guard = waiter.await.unwrap().unwrap();
        assert!(
            released.elapsed() < Duration::from_secs(3),
            "{backend:?}: the waiter took {:?}",
            released.elapsed()
        );
        let status = fx.locks.status(&key).await.unwrap();
        assert_eq!(status.state, LockState::Held);
        assert_eq!(status.holder.as_deref(), waiter_label, "{status:?}");
        assert_eq!(status.held_for.is_some(), waiter_label.is_some());
        guard.release().await.unwrap();
        assert_free(&fx.locks.status(&key).await.unwrap());
    }
}

async fn without_a_label_there_is_none(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let key = unique_key("bare");
    let fenced = AcquireOptions::new().fencing(true);
    for options in [AcquireOptions::new(), fenced] {
        let guard = fx.locks.try_acquire_with(&key, options).await.unwrap();
        let status = fx.locks.status(&key).await.unwrap();
        assert_eq!(status.state, LockState::Held);
        assert_eq!(
            (status.holder, status.held_for, status.held_since),
            (None, None, None)
        );
        assert!(!companion_exists(&fx, &key).await);
        assert_eq!(
            fx.locks.get_lock(&key).await.unwrap().as_deref(),
            Some(guard.token())
        );
        guard.release().await.unwrap();
    }
}

async fn bad_labels_are_refused_before_any_command(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let key = unique_key("bad");
    let sent = fx.sent_count();
    for bad in [
        String::new(),
        "x".repeat(MAX_HOLDER_LEN + 1),
        "line\nbreak".to_owned(),
        "\u{1b}[2Jclear".to_owned(),
    ] {
        for err in [
            fx.locks
                .try_acquire_with(&key, labelled(&bad))
                .await
                .unwrap_err(),
            fx.locks
                .acquire_with(&key, labelled(&bad))
                .await
                .unwrap_err(),
        ] {
            assert!(
                matches!(err, LockError::InvalidInput(InvalidInput::HolderLabel(_))),
                "{bad:?}: {err:?}"
            );
        }
    }
    // The longest label is taken.
    let longest = "x".repeat(MAX_HOLDER_LEN);
    let guard = fx
        .locks
        .try_acquire_with(&key, labelled(&longest))
        .await
        .unwrap();
    let status = fx.locks.status(&key).await.unwrap();
    assert_eq!(status.holder.as_deref(), Some(longest.as_str()));
    guard.release().await.unwrap();
    let after_good = fx.sent_count();
    // Primitives that keep no label refuse one.
    let other = unique_key("bad-prims");
    let refused = [
        fx.locks
            .semaphore(&other, 2)
            .try_acquire_with(labelled("a"))
            .await
            .unwrap_err(),
        fx.locks
            .rw_lock(&other)
            .try_read_with(labelled("a"))
            .await
            .unwrap_err(),
        fx.locks
            .try_acquire_all_with(&[other.as_str(), "x"], labelled("a"))
            .await
            .unwrap_err(),
    ];
    for err in refused {
        assert!(
            matches!(err, LockError::InvalidInput(InvalidInput::HolderLabel(_))),
            "{err:?}"
        );
    }
    assert_eq!(
        fx.sent_count(),
        after_good,
        "a refused label sent something"
    );
    if backend != Backend::Memory {
        assert!(after_good > sent, "the good label was sent");
    }
}

/// The first 16 hex digits of the SHA-1 of `token`, as the companion keeps it. (redis-rs
/// computes the SHA-1 the server uses for a script; any text will do.)
fn digest(token: &str) -> String {
    redis::Script::new(token).get_hash()[..16].to_owned()
}

async fn the_value_stays_the_token_and_the_label_sits_in_the_slot(backend: Backend, key: String) {
    let fx = Fixture::new(backend).await;
    let mut raw = fx.raw().unwrap();
    let guard = fx
        .locks
        .try_acquire_with(&key, labelled("web-3:4121 | run"))
        .await
        .unwrap();
    // The lock's value is exactly the token, as the Node original reads it.
    let value: Option<String> = raw.get(&key).await.unwrap();
    assert_eq!(value.as_deref(), Some(guard.token()));
    let stored: String = raw.get(companion(&key, "holder")).await.unwrap();
    assert!(
        !stored.contains(guard.token()),
        "the companion holds the token"
    );
    let mut fields = stored.splitn(3, '|');
    assert_eq!(
        fields.next(),
        Some(digest(guard.token()).as_str()),
        "{stored}"
    );
    let since: u64 = fields.next().unwrap().parse().unwrap();
    let now_ms = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    assert!(now_ms.abs_diff(since) < 5_000, "{since} vs {now_ms}");
    assert_eq!(fields.next(), Some("web-3:4121 | run"));
    // Same expiry as the lock.
    let lock_pttl: i64 = raw.pttl(&key).await.unwrap();
    let label_pttl: i64 = raw.pttl(companion(&key, "holder")).await.unwrap();
    assert!(
        (lock_pttl - label_pttl).abs() < 50,
        "{lock_pttl} vs {label_pttl}"
    );
    if backend == Backend::Cluster {
        let slot = |name: &str| redis::cmd("CLUSTER").arg("KEYSLOT").arg(name).clone();
        let (mut a, mut b) = (raw.clone(), raw.clone());
        let lock_slot: i64 = slot(&key).query_async(&mut a).await.unwrap();
        let label_slot: i64 = slot(&companion(&key, "holder"))
            .query_async(&mut b)
            .await
            .unwrap();
        assert_eq!(lock_slot, label_slot);
    }
    guard.release().await.unwrap();
}

async fn a_node_worker_taking_the_key_never_shows_our_label(backend: Backend, key: String) {
    let fx = Fixture::new(backend).await;
    let mut node = fx.raw().unwrap();
    let guard = fx
        .locks
        .try_acquire_with(&key, labelled("a"))
        .await
        .unwrap();
    // The Node original releases with GET then DEL, which leaves the companion behind...
    let _: i64 = node.del(&key).await.unwrap();
    assert!(companion_exists(&fx, &key).await);
    // ...and takes the key with a plain SET NX and a value of its own.
    let set: Option<String> = redis::cmd("SET")
        .arg(&key)
        .arg("de6d9bc6-5e57-4b5e-801b-d04917ec9d98")
        .arg("EX")
        .arg(10)
        .arg("NX")
        .query_async(&mut node)
        .await
        .unwrap();
    assert_eq!(set.as_deref(), Some("OK"));
    let status = fx.locks.status(&key).await.unwrap();
    assert_eq!(status.state, LockState::Held);
    assert_eq!(
        (status.holder, status.held_for, status.held_since),
        (None, None, None),
        "a stale label was shown for the Node worker's lock"
    );
    // The same with the companion outliving an expired lock of ours.
    let _: i64 = node.del(&key).await.unwrap();
    let set: Option<String> = redis::cmd("SET")
        .arg(&key)
        .arg(guard.token())
        .arg("EX")
        .arg(10)
        .arg("NX")
        .query_async(&mut node)
        .await
        .unwrap();
    assert_eq!(set.as_deref(), Some("OK"));
    // The control: the same companion is shown for the value it was written for.
    assert_eq!(
        fx.locks.status(&key).await.unwrap().holder.as_deref(),
        Some("a")
    );
    guard.release().await.unwrap();
}

async fn no_label_sends_the_node_command_and_writes_no_companion(backend: Backend, key: String) {
    let fx = Fixture::new(backend).await;
    let sent = fx.sent().unwrap().clone();
    sent.clear();
    let guard = fx.locks.try_acquire(&key).await.unwrap();
    assert_eq!(
        sent.names(),
        ["SET"],
        "the try is the Node original's SET NX"
    );
    let packed = String::from_utf8(sent.commands()[0].clone()).unwrap();
    assert!(
        packed.ends_with("\r\nEX\r\n$2\r\n10\r\n$2\r\nNX\r\n"),
        "{packed}"
    );
    assert!(!companion_exists(&fx, &key).await);
    guard.release().await.unwrap();
    // With a label, the try is the script.
    sent.clear();
    let guard = fx
        .locks
        .try_acquire_with(&key, labelled("a"))
        .await
        .unwrap();
    // (EVAL follows where a Cluster node did not have the script yet.)
    let names = sent.names();
    assert_eq!(names[0], "EVALSHA", "{names:?}");
    assert!(names.iter().all(|n| n.starts_with("EVAL")), "{names:?}");
    guard.release().await.unwrap();
}

/// Redlock: each node keeps the label with its lock; it is shown while a majority of nodes
/// agree on it.
#[tokio::test]
async fn redlock_shows_the_label_a_majority_of_nodes_keeps() {
    let servers: Vec<RedisServer> = (0..3).map(|_| RedisServer::start()).collect();
    let urls: Vec<String> = servers.iter().map(RedisServer::url).collect();
    let urls: Vec<&str> = urls.iter().map(String::as_str).collect();
    let locks = RedisLock::builder().build_redlock(&urls).unwrap();
    let key = unique_key("redlock");
    let guard = locks.try_acquire_with(&key, labelled("w1")).await.unwrap();
    let status = locks.status(&key).await.unwrap();
    assert_eq!(status.holder.as_deref(), Some("w1"));
    assert!(status.held_for.unwrap() < Duration::from_secs(2));
    // One node loses it: two of three still agree.
    let mut first = raw_conn(&servers[0]).await;
    let _: i64 = first.del(companion(&key, "holder")).await.unwrap();
    assert_eq!(
        locks.status(&key).await.unwrap().holder.as_deref(),
        Some("w1")
    );
    // Two do: no majority, no label (the lock itself is still held).
    let mut second = raw_conn(&servers[1]).await;
    let _: i64 = second.del(companion(&key, "holder")).await.unwrap();
    let status = locks.status(&key).await.unwrap();
    assert_eq!(status.state, LockState::Held);
    assert_eq!(status.holder, None);
    guard.release().await.unwrap();
    for server in &servers {
        let mut conn = raw_conn(server).await;
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg("*")
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(keys.is_empty(), "left on a node: {keys:?}");
    }
}

/// A labelled attempt whose reply was lost with its connection after it ran is retried; the
/// retry finds the lock holding its own token, and the label is the attempt's, with one start.
/// Dropped while waiting, a labelled acquisition leaves neither a registration nor a label.
#[tokio::test]
async fn a_labelled_attempt_whose_reply_was_lost_keeps_its_label() {
    let server = RedisServer::start();
    let conn = LoseReply::new(raw_conn(&server).await);
    let trigger = conn.trigger();
    let locks = RedisLock::new(conn);
    // The scripts loaded, so that the command whose reply is lost runs.
    let warm = locks
        .try_acquire_with(&unique_key("warm"), labelled("w"))
        .await
        .unwrap();
    warm.release().await.unwrap();

    let key = unique_key("lost-labelled");
    trigger.arm("EVALSHA");
    let guard = locks.try_acquire_with(&key, labelled("w1")).await.unwrap();
    assert!(trigger.fired());
    let status = locks.status(&key).await.unwrap();
    assert_eq!(status.holder.as_deref(), Some("w1"), "{status:?}");
    assert_eq!(
        locks.get_lock(&key).await.unwrap().as_deref(),
        Some(guard.token())
    );

    // A labelled waiter that gives up: nothing of it stays.
    let other = RedisLock::new(raw_conn(&server).await);
    let waiting = labelled("w2").wait(Duration::from_secs(30));
    let key2 = key.clone();
    let waiter = tokio::spawn(async move { other.acquire_with(&key2, waiting).await });
    let mut raw = raw_conn(&server).await;
    support::wait_for_waiters(&mut raw, &key, 1).await;
    waiter.abort();
    let _ = waiter.await;
    guard.release().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let status = locks.status(&key).await.unwrap();
        if status.state == LockState::Free && status.waiters == 0 {
            assert_eq!(status.holder, None);
            break;
        }
        assert!(Instant::now() < deadline, "{status:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        !raw.exists::<_, bool>(companion(&key, "holder"))
            .await
            .unwrap()
    );
}
