//! Backend faults on private redis-servers: down, frozen, killed and restarted, script cache
//! flushed, commands denied, replies lost with their connection. A backend failure is never
//! reported as `Locked`.

mod support;

use std::time::{Duration, Instant};

use ac_redislock::{
    AcquireOptions, LockError, LockParams, LossReason, RedisLock, ReleaseParams, UnavailableReason,
};
use redis::AsyncCommands;
use support::{Listen, Logs, LoseReply, LoseTrigger, Recorder, RedisServer, raw_conn, unique_key};

fn assert_unavailable(what: &str, err: &LockError) {
    assert!(
        matches!(err, LockError::Unavailable { .. }),
        "{what}: expected Unavailable, got {err:?}"
    );
    assert_eq!(err.code(), 503, "{what}");
    assert!(err.is_backend());
}

/// Runs the three calls against a dead backend and checks each fails fast as Unavailable.
async fn assert_all_calls_unavailable(locks: &RedisLock, timeout: Duration) {
    let key = unique_key("down");
    let started = Instant::now();
    let err = locks.lock_key(LockParams::new(&key)).await.unwrap_err();
    assert_unavailable("lock_key", &err);
    let err = locks
        .release_lock(ReleaseParams::new(&key).value("v"))
        .await
        .unwrap_err();
    assert_unavailable("release_lock", &err);
    let err = locks
        .release_lock(ReleaseParams::new(&key))
        .await
        .unwrap_err();
    assert_unavailable("force release", &err);
    let err = locks.get_lock(&key).await.unwrap_err();
    assert_unavailable("get_lock", &err);
    let elapsed = started.elapsed();
    assert!(
        elapsed < timeout * 4 + Duration::from_secs(1),
        "four calls took {elapsed:?} with a {timeout:?} timeout"
    );
}

#[tokio::test]
async fn nothing_listening_on_the_port_is_unavailable_within_the_timeout() {
    let logs = Logs::capture();
    let port = support::server::free_port().unwrap();
    let timeout = Duration::from_millis(500);
    let locks = RedisLock::builder()
        .command_timeout(timeout)
        .build_from_url(&format!("redis://127.0.0.1:{port}/"))
        .unwrap();
    assert_all_calls_unavailable(&locks, timeout).await;
    let err = locks.lock_key(LockParams::new("k")).await.unwrap_err();
    assert!(
        matches!(
            err,
            LockError::Unavailable {
                reason: UnavailableReason::Refused | UnavailableReason::Timeout(_),
                ..
            }
        ),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(text.starts_with("Redis is unavailable: "), "{text}");
    // Backend errors are logged at error, with the cause.
    let errors = logs.lines_with(" ERROR ");
    assert!(
        errors.iter().any(|l| l.contains("lock attempt failed")),
        "{errors:#?}"
    );
    assert!(
        errors.iter().any(|l| l.contains("release failed")),
        "{errors:#?}"
    );
    assert!(errors.iter().any(|l| l.contains("get failed")));
}

#[tokio::test]
async fn a_missing_unix_socket_is_unavailable_within_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let timeout = Duration::from_millis(500);
    let locks = RedisLock::builder()
        .command_timeout(timeout)
        .build_from_url(&format!("unix://{}/nope.sock", dir.path().display()))
        .unwrap();
    assert_all_calls_unavailable(&locks, timeout).await;
}

#[tokio::test]
async fn a_frozen_server_times_out_and_a_timed_out_attempt_leaves_no_lock() {
    let server = RedisServer::start();
    let mut raw = raw_conn(&server).await;
    let timeout = Duration::from_millis(300);
    let locks = RedisLock::builder()
        .command_timeout(timeout)
        .build_from_url(&server.url())
        .unwrap();
    locks
        .lock_key(LockParams::new(unique_key("warm")))
        .await
        .unwrap();

    let generated = unique_key("frozen-generated");
    let given = unique_key("frozen-given");
    server.pause();
    let started = Instant::now();
    let err = locks
        .lock_key(LockParams::new(&generated))
        .await
        .unwrap_err();
    let elapsed = started.elapsed();
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
    assert!(
        elapsed >= timeout - Duration::from_millis(50) && elapsed < timeout * 5,
        "timed out after {elapsed:?}, timeout {timeout:?}"
    );
    let err = locks
        .lock_key(LockParams::new(&given).value("mine"))
        .await
        .unwrap_err();
    assert_unavailable("lock with a given value", &err);
    server.resume();

    // Both SETs were in the socket and ran once the server woke up. The one with a generated
    // token (which the caller never saw) was released in the background; the one with the
    // caller's own value stays until its expiry, releasable by the caller.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let left: Option<String> = raw.get(&generated).await.unwrap();
    assert_eq!(
        left, None,
        "the timed-out attempt left a lock nobody can release"
    );
    let left: Option<String> = raw.get(&given).await.unwrap();
    assert_eq!(left.as_deref(), Some("mine"));
    locks
        .release_lock(ReleaseParams::new(&given).value("mine"))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_frozen_server_times_out_on_a_users_own_connection_too() {
    let server = RedisServer::start();
    let timeout = Duration::from_millis(300);
    let locks = RedisLock::builder()
        .command_timeout(timeout)
        .build(raw_conn(&server).await)
        .unwrap();
    server.pause();
    let started = Instant::now();
    let err = locks.get_lock("k").await.unwrap_err();
    assert!(
        matches!(
            err,
            LockError::Unavailable {
                reason: UnavailableReason::Timeout(t),
                ..
            } if t == timeout
        ),
        "{err:?}"
    );
    assert!(started.elapsed() < timeout * 5);
    server.resume();
    assert_eq!(locks.get_lock("k").await.unwrap(), None);
}

#[tokio::test]
async fn killed_and_restarted_redis_errors_then_recovers_without_a_new_client() {
    let mut server = RedisServer::start();
    let timeout = Duration::from_millis(500);
    let locks = RedisLock::builder()
        .command_timeout(timeout)
        .build_from_url(&server.url())
        .unwrap();
    let key = unique_key("restart");
    locks.lock_key(LockParams::new(&key)).await.unwrap();

    server.kill();
    for _ in 0..3 {
        let err = locks.lock_key(LockParams::new(&key)).await.unwrap_err();
        assert_unavailable("lock while down", &err);
        let err = locks.get_lock(&key).await.unwrap_err();
        assert_unavailable("get while down", &err);
    }

    server.restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    let token = loop {
        match locks.lock_key(LockParams::new(&key)).await {
            Ok(token) => break token,
            Err(err) => {
                // Until the client has reconnected: Unavailable, never Locked.
                assert_unavailable("lock while reconnecting", &err);
                assert!(
                    Instant::now() < deadline,
                    "no recovery within 10 s: {err:?}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    // The restarted server kept nothing (no persistence), so the old lock was lost and the key
    // was free; the documented guarantee, shown.
    assert_eq!(locks.get_lock(&key).await.unwrap(), Some(token.clone()));
    assert!(matches!(
        locks.lock_key(LockParams::new(&key)).await,
        Err(LockError::Locked { .. })
    ));
    locks
        .release_lock(ReleaseParams::new(&key).value(token))
        .await
        .unwrap();
}

#[tokio::test]
async fn script_flush_between_calls_is_transparent() {
    let server = RedisServer::start();
    let mut admin = raw_conn(&server).await;
    let recorder = Recorder::new(raw_conn(&server).await);
    let sent = recorder.log();
    let locks = RedisLock::new(recorder);
    for i in 0..200 {
        let key = unique_key("flush");
        let token = locks.lock_key(LockParams::new(&key)).await.unwrap();
        let _: () = redis::cmd("SCRIPT")
            .arg("FLUSH")
            .query_async(&mut admin)
            .await
            .unwrap();
        if i % 2 == 0 {
            locks
                .release_lock(ReleaseParams::new(&key).value(&token))
                .await
                .unwrap_or_else(|err| panic!("release after SCRIPT FLUSH #{i}: {err:?}"));
        } else {
            locks
                .release_lock(ReleaseParams::new(&key))
                .await
                .unwrap_or_else(|err| panic!("force release after SCRIPT FLUSH #{i}: {err:?}"));
        }
        assert_eq!(locks.get_lock(&key).await.unwrap(), None);
    }
    // Each release met NOSCRIPT and was sent again as EVAL with the script's text.
    let names = sent.names();
    let evals = names.iter().filter(|n| *n == "EVAL").count();
    assert_eq!(evals, 200, "{names:?}");
}

/// A connection that has the server flush its script cache after every command it passes on:
/// a flush that always lands between a NOSCRIPT and whatever the client does next.
#[derive(Clone)]
struct FlushAfterEveryCommand(redis::aio::MultiplexedConnection);

impl redis::aio::ConnectionLike for FlushAfterEveryCommand {
    fn req_packed_command<'a>(
        &'a mut self,
        cmd: &'a redis::Cmd,
    ) -> redis::RedisFuture<'a, redis::Value> {
        Box::pin(async move {
            let reply = self.0.req_packed_command(cmd).await;
            let _: () = redis::cmd("SCRIPT")
                .arg("FLUSH")
                .query_async(&mut self.0)
                .await?;
            reply
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<redis::Value>> {
        self.0.req_packed_commands(pipeline, offset, count)
    }

    fn get_db(&self) -> i64 {
        self.0.get_db()
    }
}

/// A flush that races the reload (another client's `SCRIPT FLUSH`, a failover between two
/// calls) does not surface as an error: loading the script and trying EVALSHA again would meet
/// NOSCRIPT a second time; sending the script's text cannot. Found by the cluster tests, where
/// one test flushes the shared cluster's scripts while others run.
#[tokio::test]
async fn a_flush_racing_the_reload_is_transparent() {
    let server = RedisServer::start();
    let locks = RedisLock::new(FlushAfterEveryCommand(raw_conn(&server).await));
    for i in 0..20 {
        let key = unique_key("flush-race");
        let guard = locks
            .acquire_with(&key, AcquireOptions::new().fencing(true))
            .await
            .unwrap_or_else(|err| panic!("acquire #{i}: {err:?}"));
        guard
            .extend(Duration::from_secs(5))
            .await
            .unwrap_or_else(|err| panic!("extend #{i}: {err:?}"));
        assert!(guard.fencing_token().is_some());
        assert_eq!(
            locks.status(&key).await.unwrap().fencing_counter,
            guard.fencing_token()
        );
        guard
            .release()
            .await
            .unwrap_or_else(|err| panic!("release #{i}: {err:?}"));
        assert_eq!(locks.get_lock(&key).await.unwrap(), None);
    }
}

#[tokio::test]
async fn a_denied_command_is_a_redis_error_not_locked() {
    let server = RedisServer::start();
    let mut admin = raw_conn(&server).await;
    // A user that may read but not write.
    let _: () = redis::cmd("ACL")
        .arg(&[
            "SETUSER",
            "reader",
            "on",
            ">secret-pw",
            "~*",
            "+get",
            "+ping",
            "+hello",
        ])
        .query_async(&mut admin)
        .await
        .unwrap();
    let url = format!(
        "unix://{}?user=reader&pass=secret-pw",
        server.socket().display()
    );
    let locks = RedisLock::from_url(&url).unwrap();
    let err = locks.lock_key(LockParams::new("k")).await.unwrap_err();
    assert!(matches!(err, LockError::Redis(_)), "{err:?}");
    assert_eq!(err.code(), 502);
    assert!(err.to_string().contains("NOPERM"), "{err}");
    assert!(!format!("{err} {err:?}").contains("secret-pw"));
    assert_eq!(locks.get_lock("k").await.unwrap(), None, "reads still work");
}

#[tokio::test]
async fn a_wrong_password_is_an_error_that_does_not_show_the_password() {
    let server = RedisServer::start_with(Listen::Unix, &["--requirepass", "right-pw"]);
    let url = format!("unix://{}?pass=wrong-pw-123", server.socket().display());
    let locks = RedisLock::builder()
        .command_timeout(Duration::from_millis(500))
        .build_from_url(&url)
        .unwrap();
    let err = locks.lock_key(LockParams::new("k")).await.unwrap_err();
    assert!(err.is_backend(), "{err:?}");
    assert!(!matches!(err, LockError::Locked { .. }));
    let mut chain = format!("{err} {err:?} {locks:?}");
    let mut source = std::error::Error::source(&err);
    while let Some(inner) = source {
        chain.push_str(&inner.to_string());
        source = inner.source();
    }
    assert!(!chain.contains("wrong-pw-123"), "{chain}");
}

/// A client on a connection that can lose a reply on cue, with the scripts loaded (a fenced
/// lock taken and released), so that the command whose reply is lost runs.
async fn losing_client(server: &RedisServer) -> (RedisLock, LoseTrigger) {
    let conn = LoseReply::new(raw_conn(server).await);
    let trigger = conn.trigger();
    let locks = RedisLock::new(conn);
    let options = AcquireOptions::new().fencing(true);
    let guard = locks
        .try_acquire_with(&unique_key("warm"), options)
        .await
        .unwrap();
    guard.release().await.unwrap();
    (locks, trigger)
}

/// A lock attempt whose reply was lost with its connection after it reached Redis is retried,
/// and the retry finds the lock holding its own token: granted, not "locked". Both for the
/// Node original's `SET NX` and for the scripted attempt, which returns the fencing token the
/// lost attempt drew.
#[tokio::test]
async fn a_retried_attempt_recognises_its_own_lock() {
    let server = RedisServer::start();
    let (locks, trigger) = losing_client(&server).await;
    let options = || AcquireOptions::new().fencing(true);

    let key = unique_key("lost-set");
    trigger.arm("SET");
    let token = locks.lock_key(LockParams::new(&key)).await.unwrap();
    assert!(trigger.fired());
    assert_eq!(locks.get_lock(&key).await.unwrap(), Some(token));

    let key = unique_key("lost-script");
    trigger.arm("EVALSHA");
    let guard = locks.try_acquire_with(&key, options()).await.unwrap();
    assert!(trigger.fired());
    let drawn = locks.status(&key).await.unwrap().fencing_counter;
    assert!(drawn.is_some());
    assert_eq!(
        guard.fencing_token(),
        drawn,
        "the token the lost attempt drew"
    );
    guard.release().await.unwrap();
}

/// A release whose reply was lost after it deleted the lock is retried; the retry finds the key
/// gone, and the release is reported done (for a guard: if its lease still held when it was
/// sent; if not, the lease was lost first, and that is what is reported).
#[tokio::test]
async fn a_retried_release_whose_first_try_landed_is_done() {
    let server = RedisServer::start();
    let mut raw = raw_conn(&server).await;
    let (locks, trigger) = losing_client(&server).await;

    let key = unique_key("lost-release");
    let token = locks.lock_key(LockParams::new(&key)).await.unwrap();
    trigger.arm("EVALSHA");
    locks
        .release_lock(ReleaseParams::new(&key).value(token))
        .await
        .unwrap();
    assert!(trigger.fired());
    let left: Option<String> = raw.get(&key).await.unwrap();
    assert_eq!(left, None);

    let guard = locks.try_acquire(&key).await.unwrap();
    trigger.arm("EVALSHA");
    guard.release().await.unwrap();
    assert!(trigger.fired());

    // Past the lease's deadline (the key still there for the drift margin): lost, not done.
    let options = AcquireOptions::new().ttl(Duration::from_secs(3));
    let guard = locks.try_acquire_with(&key, options).await.unwrap();
    tokio::time::sleep(guard.remaining() + Duration::from_millis(5)).await;
    assert!(!guard.is_held());
    let left: Option<String> = raw.get(&key).await.unwrap();
    assert!(left.is_some(), "the test needs the key still in Redis");
    trigger.arm("EVALSHA");
    let err = guard.release().await.unwrap_err();
    assert!(trigger.fired());
    assert!(
        matches!(
            err,
            LockError::Lost {
                reason: LossReason::Expired,
                ..
            }
        ),
        "{err:?}"
    );
}
