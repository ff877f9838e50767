//! The end of a program: a guard dropped as `main` ends frees its lock when the program closes
//! its client (async) or at once (blocking), tried as users' programs, in processes of their
//! own; and what `close` does and reports, with Redis up, down and frozen.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use ac_redislock::{AcquireOptions, LockError, LockParams, LossReason, RedisLock, ReleaseParams};
use redis::AsyncCommands;
use support::{Logs, RedisServer, raw_conn, unique_key, wait_for_waiters};

/// A plain connection to `server`, for checks.
fn admin(server: &RedisServer) -> redis::Connection {
    redis::Client::open(server.url())
        .and_then(|client| client.get_connection())
        .expect("an admin connection")
}

/// A call a closed client refused.
fn assert_shut_down<T: std::fmt::Debug>(result: &ac_redislock::Result<T>) {
    assert!(
        matches!(
            result,
            Err(LockError::Unavailable {
                reason: ac_redislock::UnavailableReason::Shutdown,
                ..
            })
        ),
        "{result:?}"
    );
}

/// The path of an example program of this package, which `cargo test` builds next to the test
/// binaries (`target/<profile>/examples/`).
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let profile = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test binary lives in target/<profile>/deps");
    let path = profile.join("examples").join(name);
    assert!(
        path.exists(),
        "{} is missing: `cargo test` builds the examples with the tests; when running this \
         test binary alone, first run `cargo build -p ac-redislock --examples`",
        path.display()
    );
    path
}

fn run_example(name: &str, url: &str, key: &str) -> Output {
    Command::new(example(name))
        .args([url, key])
        .output()
        .unwrap_or_else(|err| panic!("could not run the {name} example: {err}"))
}

/// Runs the example `name` 20 times in a row on one key, each run a process that takes the
/// lock (30 s lease) and ends with the guard dropped; checks that each run got the lock and
/// that the key was gone from Redis when the process had exited.
fn twenty_runs_leave_no_lock(name: &str) {
    let server = RedisServer::start();
    let key = unique_key(name);
    let mut admin = admin(&server);
    for run in 1..=20 {
        let output = run_example(name, &server.url(), &key);
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success() && stdout.contains("done"),
            "run {run}: {}\nstdout: {stdout}\nstderr: {stderr}",
            output.status
        );
        let pttl: i64 = redis::cmd("PTTL").arg(&key).query(&mut admin).unwrap();
        assert_eq!(
            pttl, -2,
            "run {run}: the lock outlived the process that dropped its guard (PTTL {pttl} ms)"
        );
    }
}

#[test]
fn a_guard_dropped_as_an_async_program_ends_is_released_by_close_before_exit() {
    twenty_runs_leave_no_lock("cron_job");
}

#[test]
fn a_blocking_guard_dropped_at_the_end_of_main_is_released_before_exit() {
    twenty_runs_leave_no_lock("blocking_cron_job");
}

/// Renewed 30 s leases, as a long job would take.
fn long_lease() -> AcquireOptions {
    AcquireOptions::new()
        .ttl(Duration::from_secs(30))
        .auto_renew(true)
}

#[tokio::test]
async fn close_with_redis_down_returns_within_the_command_timeout_and_names_what_is_left() {
    let mut server = RedisServer::start();
    let timeout = Duration::from_millis(500);
    let locks = RedisLock::builder()
        .command_timeout(timeout)
        .build_from_url(&server.url())
        .unwrap();
    let live_key = unique_key("down-live");
    let dropped_key = unique_key("down-dropped");
    let live = locks.acquire_with(&live_key, long_lease()).await.unwrap();
    let dropped = locks
        .acquire_with(&dropped_key, long_lease())
        .await
        .unwrap();

    server.kill();
    drop(dropped);
    let started = Instant::now();
    let err = locks.close().await.unwrap_err();
    let elapsed = started.elapsed();
    assert!(
        elapsed < timeout + Duration::from_millis(250),
        "close took {elapsed:?} with a {timeout:?} command timeout"
    );
    let mut left: Vec<&str> = err.left().iter().map(|left| left.key()).collect();
    left.sort_unstable();
    let mut expected = vec![dropped_key.as_str(), live_key.as_str()];
    expected.sort_unstable();
    assert_eq!(left, expected, "{err}");
    for left in err.left() {
        assert!(
            matches!(left.cause(), Some(LockError::Unavailable { .. })),
            "{:?}: {:?}",
            left.key(),
            left.cause()
        );
    }
    let text = err.to_string();
    assert!(
        text.contains("2 locks are left to expire on their own") && text.contains(&live_key),
        "{text}"
    );
    assert!(
        !text.contains(live.token()),
        "the report never shows a token"
    );
    let as_lock_error = LockError::from(err);
    assert_eq!(as_lock_error.code(), 503);
    assert!(as_lock_error.is_backend());

    // The live guard's lease ended with the close.
    assert!(!live.is_held());
    assert_eq!(live.lost().await, LossReason::Closed);
    match live.release().await {
        Err(LockError::Lost {
            reason: LossReason::Closed,
            ..
        }) => {}
        other => panic!("a guard released after close: {other:?}"),
    }
}

#[tokio::test]
async fn close_with_redis_frozen_reports_the_unanswered_release_which_lands_later() {
    let server = RedisServer::start();
    let mut raw = raw_conn(&server).await;
    let timeout = Duration::from_millis(400);
    let locks = RedisLock::builder()
        .command_timeout(timeout)
        .build_from_url(&server.url())
        .unwrap();
    let key = unique_key("frozen");
    let guard = locks.acquire_with(&key, long_lease()).await.unwrap();

    server.pause();
    drop(guard);
    let started = Instant::now();
    let err = locks.close().await.unwrap_err();
    let elapsed = started.elapsed();
    server.resume();
    assert!(
        elapsed >= timeout - Duration::from_millis(50) && elapsed < timeout * 2,
        "close took {elapsed:?} with a {timeout:?} command timeout"
    );
    assert_eq!(err.left().len(), 1, "{err}");
    assert_eq!(err.left()[0].key(), key);
    assert!(
        err.left()[0].cause().is_none(),
        "no answer yet: {:?}",
        err.left()[0].cause()
    );
    assert!(err.to_string().contains("no answer yet"), "{err}");

    // The release is still being tried while the runtime runs: it lands once Redis wakes.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let exists: bool = raw.exists(&key).await.unwrap();
        if !exists {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the release never landed after the server woke up"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn close_releases_what_guards_hold_cancels_their_work_and_refuses_new_work() {
    let server = RedisServer::start();
    let mut raw = raw_conn(&server).await;
    let locks = RedisLock::from_url(&server.url()).unwrap();
    let held_key = unique_key("held");
    let work_key = unique_key("work");
    let seed_key = unique_key("seed");
    let held = locks.acquire_with(&held_key, long_lease()).await.unwrap();
    let token = locks.lock_key(LockParams::new(&seed_key)).await.unwrap();

    // `with_lock` work in progress, on another clone of the client.
    let clone = locks.clone();
    let key = work_key.clone();
    let work = tokio::spawn(async move {
        clone
            .with_lock(&key, long_lease(), async |_guard| {
                tokio::time::sleep(Duration::from_secs(60)).await;
            })
            .await
    });
    let deadline = Instant::now() + Duration::from_secs(5);
    while !raw.exists::<_, bool>(&work_key).await.unwrap() {
        assert!(Instant::now() < deadline, "with_lock never took its lock");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    locks.close().await.unwrap();
    for key in [&held_key, &work_key] {
        let exists: bool = raw.exists(key).await.unwrap();
        assert!(!exists, "{key:?} is still locked after close");
    }
    assert_eq!(held.lost().await, LossReason::Closed);
    match tokio::time::timeout(Duration::from_secs(2), work).await {
        Ok(Ok(Err(LockError::Lost {
            reason: LossReason::Closed,
            ..
        }))) => {}
        other => panic!("with_lock during close: {other:?}"),
    }

    // A lock taken with `lock_key` is the caller's: close leaves it, and it can still be
    // released with its token.
    let value: Option<String> = raw.get(&seed_key).await.unwrap();
    assert_eq!(value.as_deref(), Some(token.as_str()));
    locks
        .release_lock(ReleaseParams::new(&seed_key).value(token))
        .await
        .unwrap();

    // Nothing new is taken, by any clone.
    let refused = [
        locks.try_acquire(&unique_key("after")).await.map(drop),
        locks
            .lock_key(LockParams::new(unique_key("after")))
            .await
            .map(drop),
        locks.clone().get_lock("anything").await.map(drop),
    ];
    for result in refused {
        assert_shut_down(&result);
    }
    locks.close().await.unwrap();
}

#[tokio::test]
async fn close_ends_a_waiting_acquisition_and_removes_its_place_in_the_queue() {
    let server = RedisServer::start();
    let mut raw = raw_conn(&server).await;
    let holder = RedisLock::from_url(&server.url()).unwrap();
    let waiter = RedisLock::from_url(&server.url()).unwrap();
    let key = unique_key("queue");
    let _held = holder.acquire_with(&key, long_lease()).await.unwrap();

    let client = waiter.clone();
    let wait_key = key.clone();
    let waiting = tokio::spawn(async move {
        let options = long_lease().wait(Duration::from_secs(60));
        client.acquire_with(&wait_key, options).await.map(drop)
    });
    wait_for_waiters(&mut raw, &key, 1).await;

    let started = Instant::now();
    waiter.close().await.unwrap();
    let result = tokio::time::timeout(Duration::from_secs(2), waiting)
        .await
        .expect("the waiting acquisition outlived the close")
        .unwrap();
    assert_shut_down(&result);
    assert!(started.elapsed() < Duration::from_secs(2));
    let queued: usize = redis::cmd("ZCARD")
        .arg(support::companion(&key, "waiters"))
        .query_async(&mut raw)
        .await
        .unwrap();
    assert_eq!(queued, 0, "the closed client's waiter is still queued");
}

#[tokio::test]
async fn a_waiting_acquire_refused_by_a_server_that_is_not_there_leaves_nothing_to_close() {
    // Nothing listens on this port: every attempt is refused, so no registration was made and
    // close has nothing to cancel (it once retried a cancellation until the lease would have
    // ended, and named the key as left behind).
    let port = support::server::free_port().expect("a free port");
    let locks = RedisLock::builder()
        .command_timeout(Duration::from_millis(500))
        .build_from_url(&format!("redis://127.0.0.1:{port}/"))
        .unwrap();
    let key = unique_key("refused");
    let options = long_lease().wait(Duration::from_millis(300));
    let err = locks.acquire_with(&key, options).await.unwrap_err();
    assert!(err.is_backend(), "{err:?}");
    let started = Instant::now();
    let closed = locks.close().await;
    assert!(closed.is_ok(), "{closed:?}");
    assert!(
        started.elapsed() < Duration::from_millis(200),
        "close took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_guard_dropped_while_held_says_so_once_at_debug_and_close_waits_for_its_release() {
    let logs = Logs::capture();
    let server = RedisServer::start();
    let mut raw = raw_conn(&server).await;
    let locks = RedisLock::from_url(&server.url()).unwrap();
    let key = unique_key("debug");
    let guard = locks.acquire(&key).await.unwrap();
    drop(guard);
    locks.close().await.unwrap();
    let exists: bool = raw.exists(&key).await.unwrap();
    assert!(!exists, "close returned before the dropped guard's release");
    let lines = logs.lines_with("released in the background");
    assert_eq!(lines.len(), 1, "{}", logs.text());
    assert!(
        lines[0].contains("DEBUG") && lines[0].contains("close()"),
        "{}",
        lines[0]
    );

    // A released guard, and one whose lease is already over, say nothing.
    let locks = RedisLock::from_url(&server.url()).unwrap();
    locks.acquire(&key).await.unwrap().release().await.unwrap();
    let short = AcquireOptions::new().ttl(Duration::from_millis(50));
    let expired = locks.acquire_with(&key, short).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(expired);
    locks.close().await.unwrap();
    assert_eq!(logs.lines_with("released in the background").len(), 1);
}

#[test]
fn a_blocking_guard_is_released_when_drop_returns() {
    let server = RedisServer::start();
    let mut admin = admin(&server);
    let locks = ac_redislock::blocking::RedisLock::from_url(&server.url()).unwrap();
    for _ in 0..20 {
        let key = unique_key("blocking-drop");
        let guard = locks.acquire_with(&key, long_lease()).unwrap();
        drop(guard);
        let exists: bool = redis::cmd("EXISTS").arg(&key).query(&mut admin).unwrap();
        assert!(!exists, "the dropped guard's lock was still there");
    }
}

#[test]
fn dropping_a_blocking_client_waits_for_its_background_release() {
    let server = RedisServer::start();
    let mut admin = admin(&server);
    let timeout = Duration::from_millis(300);
    let locks = ac_redislock::blocking::RedisLock::builder()
        .command_timeout(timeout)
        .build_from_url(&server.url())
        .unwrap();
    locks.get_lock("warm-up").unwrap();
    let key = unique_key("blocking-inflight");

    // The attempt times out with its SET queued in the frozen server: its release is sent to
    // the background, and is in flight when the client is dropped.
    server.pause();
    let err = locks.lock_key(LockParams::new(&key)).unwrap_err();
    assert!(err.is_backend(), "{err:?}");
    let wake_after = Duration::from_millis(150);
    let waker = std::thread::spawn({
        let pid = server.pid().expect("the server's pid");
        move || {
            std::thread::sleep(wake_after);
            let _ = Command::new("kill")
                .args(["-CONT", &pid.to_string()])
                .status();
        }
    });
    let started = Instant::now();
    drop(locks);
    let waited = started.elapsed();
    waker.join().unwrap();
    assert!(
        waited >= wake_after - Duration::from_millis(20),
        "the drop returned after {waited:?}, before the server woke and answered"
    );
    assert!(waited < timeout * 3, "the drop took {waited:?}");
    let exists: bool = redis::cmd("EXISTS").arg(&key).query(&mut admin).unwrap();
    assert!(!exists, "the timed-out attempt's lock was left behind");
}
