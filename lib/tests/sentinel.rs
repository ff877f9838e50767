//! Redis Sentinel: a master, a replica and a sentinel started here; locks through the sentinel,
//! replica acknowledgement (WAIT), and a failover under a held lock. Also a group with
//! passwords, as production runs it: the master's (`requirepass`, `masterauth`, `sentinel
//! auth-pass`) and the sentinel's own, with the master's database and an ACL user.

mod support;

use std::time::{Duration, Instant};

use ac_redislock::{
    AcquireOptions, ErrorChain, LockError, LockGuard, LockParams, RedisLock, ReleaseParams,
    SentinelMaster,
};
use support::sentinel::{Auth, Group, MASTER, Sentinel};
use support::unique_key;

/// The master's password in the groups with passwords.
const MASTER_PASSWORD: &str = "master-secret-4f1a";
/// The sentinel's own password in those groups.
const SENTINEL_PASSWORD: &str = "sentinel-secret-9c2e";
/// The database the password tests lock in.
const DB: u32 = 3;

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
        ..
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
    let mut group = Group::start();
    let locks = through(&group.sentinel);
    let other = through(&group.sentinel);
    let key = unique_key("failover");
    let guard = held_across_a_failover(&mut group, &locks, &other, &key).await;
    // The holder's client too.
    let value = until_ok(|| locks.get_lock(&key)).await;
    assert_eq!(value.as_deref(), Some(guard.token()));
    assert!(guard.extend(Duration::from_secs(30)).await.is_ok());
    guard.release().await.unwrap();
    take_and_release(&other, &key).await;
}

/// One attempt at `key` that must succeed, and its release.
async fn take_and_release(locks: &RedisLock, key: &str) {
    let guard = locks.try_acquire(key).await.unwrap();
    guard.release().await.unwrap();
}

/// Takes `key` with `locks`, acknowledged by the replica, fails the group over, and waits (up
/// to 20 s) until `other` finds it held on the new master. Until then its errors are backend
/// errors (Unavailable, never Locked), and show no password. Returns the guard.
async fn held_across_a_failover(
    group: &mut Group,
    locks: &RedisLock,
    other: &RedisLock,
    key: &str,
) -> LockGuard {
    let options = AcquireOptions::new()
        .ttl(Duration::from_secs(30))
        .replicas(1, Duration::from_millis(500));
    let guard = locks.acquire_with(key, options).await.unwrap();
    assert_eq!(guard.replicas_acked(), Some(1));

    group.fail_over();

    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match other.try_acquire(key).await {
            Err(LockError::Locked { .. }) => return guard,
            Err(err) => {
                assert!(err.is_backend(), "{err:?}");
                assert_hides(&err, &[MASTER_PASSWORD, SENTINEL_PASSWORD]);
                assert!(Instant::now() < deadline, "no new master: {err:?}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Ok(_) => panic!("the acknowledged lock was lost in the failover"),
        }
    }
}

/// `call`'s value once it succeeds, trying for up to 20 s: a client's first call after a
/// failover may still meet the dead master's connection, and fail as a backend error.
async fn until_ok<T, F: Future<Output = ac_redislock::Result<T>>>(
    mut call: impl FnMut() -> F,
) -> T {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match call().await {
            Ok(value) => return value,
            Err(err) => {
                assert!(err.is_backend(), "{err:?}");
                assert!(Instant::now() < deadline, "{err:?}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// A group with both passwords.
fn group_with_passwords() -> Group {
    Group::start_with(Auth::passwords(MASTER_PASSWORD, SENTINEL_PASSWORD))
}

/// A client through the group's sentinel (its URL has the sentinel's password) that logs in to
/// the master with `master`.
fn through_with(group: &Group, master: &SentinelMaster) -> RedisLock {
    RedisLock::builder()
        .command_timeout(Duration::from_secs(1))
        .build_sentinel_with(&[&group.sentinel.url()], MASTER, master)
        .unwrap()
}

/// The master's settings in the password tests.
fn master_settings() -> SentinelMaster {
    SentinelMaster::new().password(MASTER_PASSWORD).db(DB)
}

/// A connection to `server` of the group, logged in, on `db`.
async fn data_conn(
    group: &Group,
    server: &support::RedisServer,
    db: u32,
) -> redis::aio::MultiplexedConnection {
    let url = group.url_of(server);
    let url = if url.contains('?') {
        format!("{url}&db={db}")
    } else {
        format!("{url}?db={db}")
    };
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

async fn get(conn: &mut redis::aio::MultiplexedConnection, key: &str) -> Option<String> {
    redis::cmd("GET").arg(key).query_async(conn).await.unwrap()
}

/// How many connections `server` has subscribed to the release channel.
async fn subscribers(group: &Group, server: &support::RedisServer) -> u64 {
    let mut conn = data_conn(group, server, 0).await;
    let counts: Vec<(String, u64)> = redis::cmd("PUBSUB")
        .arg("NUMSUB")
        .arg("ac-redislock:released")
        .query_async(&mut conn)
        .await
        .unwrap();
    counts.first().map_or(0, |(_, n)| *n)
}

/// Waits (up to 10 s) until `server` has a subscriber on the release channel.
async fn wait_for_subscriber(group: &Group, server: &support::RedisServer) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while subscribers(group, server).await == 0 {
        assert!(Instant::now() < deadline, "no wake-up subscriber logged in");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Asserts that none of `secrets` shows in the error's Display, Debug or chain.
fn assert_hides(err: &LockError, secrets: &[&str]) {
    let shown = format!("{err} | {err:?} | {}", ErrorChain(err));
    for secret in secrets {
        assert!(!shown.contains(secret), "{secret} shown: {shown}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_master_with_a_password_is_reached_with_its_own_credentials_not_the_sentinels() {
    let group = group_with_passwords();
    let key = unique_key("sentinel-auth");

    // As before: without the master's settings, the master refuses; a clear error, typed.
    let without = RedisLock::builder()
        .command_timeout(Duration::from_secs(1))
        .build_sentinel(&[&group.sentinel.url()], MASTER)
        .unwrap();
    let err = without.lock_key(LockParams::new(&key)).await.unwrap_err();
    assert!(
        matches!(&err, LockError::Redis(e) if e.code() == Some("NOAUTH")),
        "{err:?}"
    );
    assert_hides(&err, &[MASTER_PASSWORD, SENTINEL_PASSWORD]);

    // With them: the lock is on the master, in its database.
    let locks = through_with(&group, &master_settings());
    let token = locks.lock_key(LockParams::new(&key)).await.unwrap();
    let mut on_master = data_conn(&group, &group.master, DB).await;
    assert_eq!(get(&mut on_master, &key).await, Some(token.clone()));
    let mut db0 = data_conn(&group, &group.master, 0).await;
    assert_eq!(get(&mut db0, &key).await, None, "database {DB}, not 0");

    // A waiter is woken by the release over a pub/sub connection that logged in too.
    let waiter = {
        let locks = locks.clone();
        let key = key.clone();
        tokio::spawn(async move {
            let options = AcquireOptions::new().wait(Duration::from_secs(10));
            let started = Instant::now();
            let guard = locks.acquire_with(&key, options).await;
            (guard, started.elapsed())
        })
    };
    wait_for_subscriber(&group, &group.master).await;
    locks
        .release_lock(ReleaseParams::new(&key).value(token))
        .await
        .unwrap();
    let (guard, waited) = waiter.await.unwrap();
    let guard = guard.unwrap();
    assert!(waited < Duration::from_secs(5), "{waited:?}");
    assert_eq!(
        get(&mut on_master, &key).await.as_deref(),
        Some(guard.token())
    );
    guard.release().await.unwrap();

    // An ACL user (on both data nodes: ACLs are not replicated).
    for server in [&group.master, &group.replica] {
        let mut conn = data_conn(&group, server, 0).await;
        let () = redis::cmd("ACL")
            .arg(&[
                "SETUSER",
                "locker",
                "on",
                ">locker-secret-77",
                "~*",
                "&*",
                "+@all",
            ])
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    let as_user = through_with(
        &group,
        &SentinelMaster::new()
            .username("locker")
            .password("locker-secret-77"),
    );
    take_and_release(&as_user, &key).await;

    // The blocking client takes the same settings.
    let url = group.sentinel.url();
    let blocking_key = key.clone();
    let token = tokio::task::spawn_blocking(move || {
        let locks = ac_redislock::blocking::RedisLock::builder()
            .build_sentinel_with(&[&url], MASTER, &master_settings())
            .unwrap();
        locks.lock_key(LockParams::new(&blocking_key)).unwrap()
    })
    .await
    .unwrap();
    assert_eq!(get(&mut on_master, &key).await, Some(token));
}

#[tokio::test]
async fn a_wrong_password_is_a_clear_error_that_never_shows_it() {
    let group = group_with_passwords();
    let key = unique_key("sentinel-wrong");
    let wrong = "wrong-password-0d9b";

    let locks = through_with(&group, &SentinelMaster::new().password(wrong));
    let err = locks.lock_key(LockParams::new(&key)).await.unwrap_err();
    // redis-rs reads WRONGPASS as a failed authentication.
    assert!(
        matches!(&err, LockError::Redis(e) if e.kind() == redis::ErrorKind::AuthenticationFailed),
        "{err:?}"
    );
    let shown = ErrorChain(&err).to_string();
    assert!(shown.contains("authentication failed"), "{shown}");
    assert_hides(&err, &[wrong, MASTER_PASSWORD, SENTINEL_PASSWORD]);

    // The master's password given to the sentinel instead: the sentinel refuses it.
    let misplaced = RedisLock::builder()
        .command_timeout(Duration::from_secs(1))
        .build_sentinel_with(
            &[&support::sentinel::with_password(
                &group.sentinel.bare_url(),
                Some(MASTER_PASSWORD),
            )],
            MASTER,
            &master_settings(),
        )
        .unwrap();
    let err = misplaced.lock_key(LockParams::new(&key)).await.unwrap_err();
    assert!(
        matches!(&err, LockError::Redis(e) if e.kind() == redis::ErrorKind::AuthenticationFailed),
        "{err:?}"
    );
    assert_hides(&err, &[MASTER_PASSWORD, SENTINEL_PASSWORD]);

    // TLS asked for, against a master that speaks plaintext: fails closed, as unavailable.
    #[cfg(feature = "tls")]
    {
        let over_tls = through_with(&group, &master_settings().tls(true));
        let err = over_tls.lock_key(LockParams::new(&key)).await.unwrap_err();
        assert!(err.is_backend(), "{err:?}");
        assert_hides(&err, &[MASTER_PASSWORD, SENTINEL_PASSWORD]);
    }

    // A user name without a password is a bad setting, said at build time.
    let err = RedisLock::builder()
        .build_sentinel_with(
            &[&group.sentinel.url()],
            MASTER,
            &SentinelMaster::new().username("locker"),
        )
        .unwrap_err();
    assert!(matches!(err, LockError::InvalidInput(_)), "{err:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn with_passwords_the_holder_follows_a_failover_and_wakes_on_the_new_master() {
    let mut group = group_with_passwords();
    let locks = through_with(&group, &master_settings());
    let other = through_with(&group, &master_settings());
    let key = unique_key("sentinel-auth-failover");
    // The other client reaches the new master (logged in, same database): the lock is there.
    let guard = held_across_a_failover(&mut group, &locks, &other, &key).await;
    let mut on_new = data_conn(&group, &group.replica, DB).await;
    assert_eq!(get(&mut on_new, &key).await.as_deref(), Some(guard.token()));
    // The holder's guard renews on the new master.
    until_ok(|| guard.extend(Duration::from_secs(30))).await;

    // A waiter on the other client is woken through the new master's pub/sub.
    let waiter = {
        let key = key.clone();
        tokio::spawn(async move {
            let options = AcquireOptions::new().wait(Duration::from_secs(15));
            other.acquire_with(&key, options).await
        })
    };
    wait_for_subscriber(&group, &group.replica).await;
    guard.release().await.unwrap();
    let woken = waiter.await.unwrap().unwrap();
    assert_eq!(get(&mut on_new, &key).await.as_deref(), Some(woken.token()));
    woken.release().await.unwrap();
}
