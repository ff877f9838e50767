//! The lock as a lease: guards, extend, renewal with a loss signal, waiting with wake-on-release,
//! fencing tokens, `with_lock`. Run on every store where the behaviour is the same; the
//! Redis-only parts (hand-off, restarts, leftovers in Redis) below.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ac_redislock::{
    AcquireOptions, LockError, LockParams, LockState, LossReason, RedisLock, ReleaseParams,
    RetryPolicy,
};
use redis::AsyncCommands;
use support::{Backend, Fixture, RedisServer, companion, raw_conn, unique_key, wait_for_waiters};
use tokio::time::Instant;

on_every_store!(
    try_acquire_gives_a_guard_and_refuses_a_second,
    renewal_carries_a_lock_through_three_times_its_ttl,
    without_renewal_the_lease_is_lost_at_its_deadline,
    a_lock_deleted_behind_the_holder_is_reported_lost_within_one_interval,
    a_lock_taken_over_is_reported_as_taken_over,
    extend_moves_the_deadline_and_after_expiry_is_lost_creating_nothing,
    extend_of_a_foreign_lock_is_not_owner,
    dropping_a_guard_releases_the_lock,
    max_hold_stops_renewal_and_reports_it,
    fencing_tokens_strictly_increase_across_clients,
    a_waiter_wakes_on_release_long_before_its_backoff,
    the_wait_deadline_ends_a_wait_with_locked,
    with_lock_returns_the_output_and_releases,
    with_lock_cancels_the_work_when_the_lease_is_lost,
    bad_options_are_rejected_before_any_io,
    status_reports_state_ttl_fencing_and_waiters_never_the_value,
    a_chosen_token_and_a_detached_guard,
);

fn ttl(ms: u64) -> AcquireOptions {
    AcquireOptions::new().ttl(Duration::from_millis(ms))
}

async fn try_acquire_gives_a_guard_and_refuses_a_second(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let other = fx.other_client().await;
    let key = unique_key("guard");
    let before = std::time::Instant::now();
    let guard = fx.locks.try_acquire(&key).await.unwrap();
    assert_eq!(guard.key(), key);
    assert_eq!(guard.token().len(), 40);
    assert_eq!(guard.fencing_token(), None);
    assert!(guard.is_held());
    // Deadline: the send time + 10 s - (100 ms + 2 ms) of drift.
    let valid = guard.valid_until().duration_since(before);
    assert!(valid <= Duration::from_millis(9898 + 50), "{valid:?}");
    assert!(valid >= Duration::from_millis(9800), "{valid:?}");
    assert!(guard.remaining() <= Duration::from_millis(9898));
    assert_eq!(
        fx.locks.get_lock(&key).await.unwrap().as_deref(),
        Some(guard.token())
    );
    assert!(
        !format!("{guard:?}").contains(guard.token()),
        "Debug shows the token"
    );

    let err = other.try_acquire(&key).await.unwrap_err();
    assert!(matches!(err, LockError::Locked { .. }), "{err:?}");
    // The seed API sees the guard's lock too, and the other way round.
    assert!(matches!(
        other.lock_key(LockParams::new(&key)).await,
        Err(LockError::Locked { .. })
    ));
    guard.release().await.unwrap();
    assert_eq!(fx.locks.get_lock(&key).await.unwrap(), None);
    let token = other.lock_key(LockParams::new(&key)).await.unwrap();
    assert!(fx.locks.try_acquire(&key).await.is_err());
    other
        .release_lock(ReleaseParams::new(&key).value(token))
        .await
        .unwrap();
}

async fn renewal_carries_a_lock_through_three_times_its_ttl(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let other = fx.other_client().await;
    let key = unique_key("renew");
    let guard = fx
        .locks
        .acquire_with(&key, ttl(300).auto_renew(true))
        .await
        .unwrap();
    let lost = guard.lost();
    tokio::pin!(lost);
    let hold = tokio::time::sleep(Duration::from_millis(1000));
    tokio::select! {
        reason = &mut lost => panic!("lost while renewing: {reason}"),
        () = hold => {}
    }
    assert!(guard.is_held());
    assert!(guard.remaining() > Duration::from_millis(50));
    assert!(matches!(
        other.try_acquire(&key).await,
        Err(LockError::Locked { .. })
    ));
    guard.release().await.unwrap();
    assert_eq!(lost.await, LossReason::Released);
    assert_eq!(fx.locks.get_lock(&key).await.unwrap(), None);
}

async fn without_renewal_the_lease_is_lost_at_its_deadline(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let key = unique_key("deadline");
    let started = Instant::now();
    let guard = fx.locks.acquire_with(&key, ttl(200)).await.unwrap();
    assert_eq!(guard.lost().await, LossReason::Expired);
    let elapsed = started.elapsed();
    // 200 ms minus the drift margin (2 ms + 2 ms).
    assert!(elapsed >= Duration::from_millis(190), "{elapsed:?}");
    assert!(!guard.is_held());
    assert_eq!(guard.remaining(), Duration::ZERO);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let err = guard.release().await.unwrap_err();
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

async fn a_lock_deleted_behind_the_holder_is_reported_lost_within_one_interval(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let other = fx.other_client().await;
    let key = unique_key("deleted");
    let interval = Duration::from_millis(200);
    let guard = fx
        .locks
        .acquire_with(&key, ttl(2000).auto_renew(true).renew_interval(interval))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(250)).await;
    other.release_lock(ReleaseParams::new(&key)).await.unwrap(); // force release
    let deleted = Instant::now();
    assert_eq!(guard.lost().await, LossReason::Deleted);
    let detected = deleted.elapsed();
    // At the next renewal (one interval, plus slack for a loaded machine), far below the
    // 2 s TTL at which a lease that only watched its deadline would notice.
    assert!(
        detected <= interval + Duration::from_millis(300),
        "detected after {detected:?}, interval {interval:?}"
    );
    assert!(!guard.is_held());
    let err = guard.extend(Duration::from_secs(1)).await.unwrap_err();
    assert!(matches!(err, LockError::Lost { .. }), "{err:?}");
}

async fn a_lock_taken_over_is_reported_as_taken_over(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let other = fx.other_client().await;
    let key = unique_key("taken");
    let guard = fx
        .locks
        .acquire_with(
            &key,
            ttl(2000)
                .auto_renew(true)
                .renew_interval(Duration::from_millis(100)),
        )
        .await
        .unwrap();
    other.release_lock(ReleaseParams::new(&key)).await.unwrap();
    let thief = other.try_acquire(&key).await.unwrap();
    assert_eq!(guard.lost().await, LossReason::TakenOver);
    // The watchdog stopped and never touched the new owner's lock.
    assert!(thief.is_held());
    assert_eq!(
        other.get_lock(&key).await.unwrap().as_deref(),
        Some(thief.token())
    );
    let err = guard.release().await.unwrap_err();
    assert!(matches!(err, LockError::NotOwner { .. }), "{err:?}");
    assert!(other.get_lock(&key).await.unwrap().is_some());
    thief.release().await.unwrap();
}

async fn extend_moves_the_deadline_and_after_expiry_is_lost_creating_nothing(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let key = unique_key("extend");
    let guard = fx.locks.acquire_with(&key, ttl(300)).await.unwrap();
    let before = guard.valid_until();
    let validity = guard.extend(Duration::from_secs(5)).await.unwrap();
    assert!(validity > Duration::from_millis(4800), "{validity:?}");
    assert!(guard.valid_until() > before);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(guard.is_held(), "extended past the first deadline");
    if let Some(mut raw) = fx.raw() {
        let pttl: i64 = raw.pttl(&key).await.unwrap();
        assert!((4000..=5000).contains(&pttl), "PTTL {pttl}");
    }
    guard.release().await.unwrap();

    let key = unique_key("extend-late");
    let guard = fx.locks.acquire_with(&key, ttl(100)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let err = guard.extend(Duration::from_secs(10)).await.unwrap_err();
    assert!(matches!(err, LockError::Lost { .. }), "{err:?}");
    assert_eq!(err.code(), 410);
    assert_eq!(
        fx.locks.get_lock(&key).await.unwrap(),
        None,
        "extend re-created it"
    );
    if let Some(mut raw) = fx.raw() {
        let exists: bool = raw.exists(&key).await.unwrap();
        assert!(!exists);
    }
}

async fn extend_of_a_foreign_lock_is_not_owner(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let other = fx.other_client().await;
    let key = unique_key("foreign");
    let guard = fx.locks.acquire_with(&key, ttl(5000)).await.unwrap();
    other.release_lock(ReleaseParams::new(&key)).await.unwrap();
    let token = other.lock_key(LockParams::new(&key)).await.unwrap();
    let err = guard.extend(Duration::from_secs(60)).await.unwrap_err();
    assert!(matches!(err, LockError::NotOwner { .. }), "{err:?}");
    assert!(!guard.is_held());
    assert_eq!(other.get_lock(&key).await.unwrap(), Some(token));
    if let Some(mut raw) = fx.raw() {
        let pttl: i64 = raw.pttl(&key).await.unwrap();
        assert!(
            pttl <= 10_000,
            "the foreign lock's expiry was not touched: {pttl}"
        );
    }
}

async fn dropping_a_guard_releases_the_lock(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let key = unique_key("drop");
    let guard = fx
        .locks
        .acquire_with(&key, AcquireOptions::new().auto_renew(true))
        .await
        .unwrap();
    let lost = guard.lost();
    drop(guard);
    assert_eq!(lost.await, LossReason::Released);
    let deadline = Instant::now() + Duration::from_secs(2);
    while fx.locks.get_lock(&key).await.unwrap().is_some() {
        assert!(
            Instant::now() < deadline,
            "the dropped guard's lock is still there"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn max_hold_stops_renewal_and_reports_it(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let key = unique_key("max-hold");
    let started = Instant::now();
    let guard = fx
        .locks
        .acquire_with(
            &key,
            ttl(200)
                .auto_renew(true)
                .max_hold(Duration::from_millis(500)),
        )
        .await
        .unwrap();
    assert_eq!(guard.lost().await, LossReason::MaxHold);
    let elapsed = started.elapsed();
    assert!(
        (Duration::from_millis(500)..Duration::from_millis(1200)).contains(&elapsed),
        "{elapsed:?}"
    );
}

async fn fencing_tokens_strictly_increase_across_clients(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let key = unique_key("fence");
    let mut clients = vec![fx.locks.clone()];
    for _ in 0..3 {
        clients.push(fx.other_client().await);
    }
    // Tokens are recorded while the lock is held, so the list is in grant order.
    let granted = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = tokio::task::JoinSet::new();
    for locks in clients {
        let (key, granted) = (key.clone(), granted.clone());
        tasks.spawn(async move {
            let options = AcquireOptions::new()
                .fencing(true)
                .wait(Duration::from_secs(30));
            for _ in 0..250 {
                let guard = locks.acquire_with(&key, options.clone()).await.unwrap();
                granted.lock().unwrap().push(guard.fencing_token().unwrap());
                guard.release().await.unwrap();
            }
        });
    }
    tasks.join_all().await;
    let granted = granted.lock().unwrap();
    assert_eq!(granted.len(), 1000);
    for pair in granted.windows(2) {
        assert!(pair[0] < pair[1], "fencing went {} -> {}", pair[0], pair[1]);
    }
}

async fn a_waiter_wakes_on_release_long_before_its_backoff(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let other = fx.other_client().await;
    let key = unique_key("wake");
    let holder = fx.locks.acquire_with(&key, ttl(30_000)).await.unwrap();
    // The waiter's only timed retry would come after 10 s, and the holder's lease is 30 s.
    let options = AcquireOptions::new()
        .wait(Duration::from_secs(60))
        .retry(RetryPolicy::fixed(Duration::from_secs(10)).without_jitter());
    let waiter = tokio::spawn(async move { other.acquire_with(&key, options).await });
    tokio::time::sleep(Duration::from_millis(300)).await; // let it register and sleep
    assert!(!waiter.is_finished());
    holder.release().await.unwrap();
    let released = Instant::now();
    tokio::select! {
        got = waiter => {
            let guard = got.unwrap().expect("the waiter gets the lock");
            assert!(guard.is_held());
            eprintln!("woken {:?} after the release", released.elapsed());
        }
        () = tokio::time::sleep(Duration::from_secs(5)) => {
            panic!("the waiter was not woken by the release");
        }
    }
}

async fn the_wait_deadline_ends_a_wait_with_locked(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let other = fx.other_client().await;
    let key = unique_key("deadline-wait");
    let _holder = fx.locks.acquire_with(&key, ttl(10_000)).await.unwrap();
    let started = Instant::now();
    let err = other
        .acquire_with(&key, AcquireOptions::new().wait(Duration::from_millis(300)))
        .await
        .unwrap_err();
    let elapsed = started.elapsed();
    assert!(matches!(err, LockError::Locked { .. }), "{err:?}");
    assert!(
        (Duration::from_millis(290)..Duration::from_millis(1500)).contains(&elapsed),
        "{elapsed:?}"
    );
    // Attempts are bounded by the retry policy too.
    let started = Instant::now();
    let err = other
        .acquire_with(
            &key,
            AcquireOptions::new()
                .wait(Duration::from_secs(30))
                .retry(RetryPolicy::fixed(Duration::from_millis(10)).with_max_attempts(3)),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, LockError::Locked { .. }), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(2));
    if let Some(mut raw) = fx.raw() {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let waiters: bool = raw.exists(companion(&key, "waiters")).await.unwrap();
        assert!(!waiters, "a waiter that gave up is still registered");
    }
}

async fn with_lock_returns_the_output_and_releases(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let key = unique_key("with-lock");
    let locks = fx.locks.clone();
    let seen_key = key.clone();
    let answer = fx
        .locks
        .with_lock(&key, AcquireOptions::new().fencing(true), async |guard| {
            assert!(guard.is_held());
            assert!(guard.fencing_token().is_some());
            assert!(locks.try_acquire(&seen_key).await.is_err());
            42
        })
        .await
        .unwrap();
    assert_eq!(answer, 42);
    assert_eq!(fx.locks.get_lock(&key).await.unwrap(), None);
}

async fn with_lock_cancels_the_work_when_the_lease_is_lost(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let other = fx.other_client().await;
    let key = unique_key("with-lock-lost");
    let finished = Arc::new(Mutex::new(false));
    let flag = finished.clone();
    let started = Instant::now();
    let options = ttl(600).renew_interval(Duration::from_millis(100));
    let result = fx
        .locks
        .with_lock(&key, options, async |_guard| {
            other.release_lock(ReleaseParams::new(&key)).await.unwrap();
            tokio::time::sleep(Duration::from_secs(10)).await;
            *flag.lock().unwrap() = true;
        })
        .await;
    let err = result.unwrap_err();
    assert!(
        matches!(
            err,
            LockError::Lost {
                reason: LossReason::Deleted,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert!(!*finished.lock().unwrap(), "the work ran on after the loss");
}

async fn bad_options_are_rejected_before_any_io(backend: Backend) {
    let fx = Fixture::new(backend).await;
    for (what, options) in [
        ("ttl 0", ttl(0)),
        ("ttl below the drift margin", ttl(2)),
        (
            "ttl above the maximum",
            AcquireOptions::new().ttl(Duration::from_secs(86_401)),
        ),
        (
            "renew interval 0",
            AcquireOptions::new()
                .auto_renew(true)
                .renew_interval(Duration::ZERO),
        ),
        (
            "renew interval above the validity",
            ttl(1000)
                .auto_renew(true)
                .renew_interval(Duration::from_millis(990)),
        ),
    ] {
        let err = fx.locks.acquire_with("k", options).await.unwrap_err();
        assert!(matches!(err, LockError::InvalidInput(_)), "{what}: {err:?}");
    }
    let err = fx.locks.try_acquire("").await.unwrap_err();
    assert!(matches!(err, LockError::InvalidInput(_)), "{err:?}");
    assert_eq!(fx.sent_count(), 0);
}

/// Redis only: a release coming straight back to acquire does not barge past a waiter: the lock
/// is handed to the registered waiter.
#[tokio::test]
async fn a_released_lock_goes_to_the_waiter_not_to_the_releaser_coming_back() {
    for round in 0..20 {
        let a = Fixture::new(Backend::Redis).await;
        let b = Fixture::new(Backend::Redis).await;
        let key = unique_key("handoff");
        let a_guard = a.locks.acquire(&key).await.unwrap();
        let b_locks = b.locks.clone();
        let b_key = key.clone();
        let b_wait = tokio::spawn(async move { b_locks.acquire(&b_key).await });
        let mut raw = a.raw().expect("a Redis fixture");
        wait_for_waiters(&mut raw, &key, 1).await; // B is registered and asleep
        a_guard.release().await.unwrap();
        // A comes straight back, with no pause at all.
        let a_again = a.locks.try_acquire(&key).await;
        assert!(
            matches!(a_again, Err(LockError::Locked { .. })),
            "round {round}: the releaser took it back: {a_again:?}"
        );
        let b_guard = b_wait.await.unwrap().unwrap();
        assert!(b_guard.is_held());
        b_guard.release().await.unwrap();
    }
}

/// Redis only: a waiter that crashes while registered (its process killed: no clean-up runs)
/// costs the lock at most one reservation, not one per release for as long as its
/// registration lives. Found by the torture tool's kill-holder runs, where a worker killed
/// just after leaving its critical section held up later takeovers.
#[tokio::test]
async fn a_crashed_waiter_costs_at_most_one_reservation() {
    // A server of its own, so that no other test's client listens on it.
    let server = RedisServer::start();
    let url = server.url();
    let locks = RedisLock::from_url(&url).unwrap();
    let key = unique_key("crashed-waiter");
    let holder = locks.acquire_with(&key, ttl(30_000)).await.unwrap();
    // The waiter lives in a "process" of its own: a runtime on its own thread, which dies
    // without running anything more (no clean-up; its connections close, as the kernel closes
    // a killed process's sockets).
    let (die, dying) = std::sync::mpsc::channel::<()>();
    let waiter_key = key.clone();
    let process = std::thread::spawn(move || {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async {
            let crashed = RedisLock::from_url(&url).unwrap();
            // A registration that outlives this test (its lease is 3 x its longest backoff).
            let options = AcquireOptions::new()
                .wait(Duration::from_secs(60))
                .retry(RetryPolicy::new().with_max_delay(Duration::from_secs(20)));
            // Dropped only as the runtime dies, when its clean-up can no longer run.
            tokio::spawn(async move { crashed.acquire_with(&waiter_key, options).await });
        });
        dying.recv().unwrap();
        runtime.shutdown_background();
    });
    let mut raw = raw_conn(&server).await;
    wait_for_waiters(&mut raw, &key, 1).await;
    let listening = || {
        let mut raw = raw.clone();
        async move {
            let channels: Vec<String> = redis::cmd("PUBSUB")
                .arg("CHANNELS")
                .arg("ac-redislock:wake:*")
                .query_async(&mut raw)
                .await
                .unwrap();
            channels.len()
        }
    };
    // Both clients listen for hand-offs to their waiters (the holder's since its acquire).
    let deadline = Instant::now() + Duration::from_secs(5);
    while listening().await < 2 {
        assert!(Instant::now() < deadline, "the clients do not listen");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    die.send(()).unwrap();
    process.join().unwrap();
    // The dead waiter does not, once the server has seen its connection close.
    let deadline = Instant::now() + Duration::from_secs(5);
    while listening().await > 1 {
        assert!(Instant::now() < deadline, "the dead waiter still listens");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // The first release hands the lock to the dead waiter, which never takes it: the
    // reservation runs out by itself.
    holder.release().await.unwrap();
    assert_eq!(locks.status(&key).await.unwrap().state, LockState::Reserved);
    tokio::time::sleep(Duration::from_millis(250)).await;
    // The later releases are not held up by it again.
    for round in 0..3 {
        let guard = locks.try_acquire(&key).await.unwrap();
        guard.release().await.unwrap();
        let status = locks.status(&key).await.unwrap();
        assert_eq!(
            (status.state, status.waiters),
            (LockState::Free, 0),
            "round {round}: the dead waiter was handed the lock again"
        );
    }
}

/// Options for a waiter that does not poll during the test: its first sleep is 5 s.
fn patient() -> AcquireOptions {
    AcquireOptions::new().wait(Duration::from_secs(30)).retry(
        RetryPolicy::new()
            .with_min_delay(Duration::from_secs(5))
            .with_max_delay(Duration::from_secs(5)),
    )
}

/// Redis only: a release gives the lock to the waiting client outright, with its fencing
/// token: the waiter returns on the announcement, without a command of its own.
#[tokio::test]
async fn a_waiter_is_given_the_lock_without_a_round_trip_of_its_own() {
    let a = Fixture::new(Backend::Redis).await;
    let b = Fixture::new(Backend::Redis).await;
    let key = unique_key("given");
    let holder = a
        .locks
        .acquire_with(&key, ttl(30_000).fencing(true))
        .await
        .unwrap();
    let b_locks = b.locks.clone();
    let b_key = key.clone();
    let waiting = tokio::spawn(async move {
        b_locks
            .acquire_with(&b_key, patient().ttl(Duration::from_secs(20)).fencing(true))
            .await
    });
    let mut raw = a.raw().expect("a Redis fixture");
    wait_for_waiters(&mut raw, &key, 1).await;
    let sent = b.sent().expect("a Redis fixture");
    sent.clear();
    let first = holder.fencing_token().unwrap();
    let released = Instant::now();
    holder.release().await.unwrap();
    let guard = waiting.await.unwrap().unwrap();
    let took = released.elapsed();
    assert!(
        sent.names().is_empty(),
        "the waiter sent {:?}",
        sent.names()
    );
    assert!(took < Duration::from_secs(1), "woken after {took:?}");
    let fence = guard.fencing_token().unwrap();
    assert!(fence > first, "{fence} after {first}");
    let status = a.locks.status(&key).await.unwrap();
    assert_eq!(status.fencing_counter, Some(fence));
    let value: Option<String> = raw.get(&key).await.unwrap();
    assert_eq!(
        value.as_deref(),
        Some(guard.token()),
        "the lock holds the waiter's token"
    );
    let pttl: i64 = raw.pttl(&key).await.unwrap();
    assert!(
        pttl > 15_000 && pttl <= 20_000,
        "the waiter's ttl: {pttl} ms"
    );
    assert_eq!(status.waiters, 0);
    guard.release().await.unwrap();
    assert_eq!(a.locks.status(&key).await.unwrap().state, LockState::Free);
}

/// Redis only: a waiter that gives up just as the lock is given to it (the announcement
/// never read) passes the lock on, even with a token of its own choosing (which its clean-up
/// does not release).
#[tokio::test]
async fn a_waiter_given_the_lock_as_it_gives_up_passes_it_on() {
    let a = Fixture::new(Backend::Redis).await;
    let b = Fixture::new(Backend::Redis).await;
    let c = Fixture::new(Backend::Redis).await;
    let key = unique_key("given-up");
    let holder = a.locks.acquire_with(&key, ttl(30_000)).await.unwrap();
    let mut raw = a.raw().expect("a Redis fixture");
    // B waits first, then C.
    let mut b_waiting = Box::pin(b.locks.acquire_with(&key, patient().token("b-chose-this")));
    assert!(
        tokio::time::timeout(Duration::from_millis(50), &mut b_waiting)
            .await
            .is_err()
    );
    wait_for_waiters(&mut raw, &key, 1).await;
    let c_locks = c.locks.clone();
    let c_key = key.clone();
    let c_waiting = tokio::spawn(async move { c_locks.acquire_with(&c_key, patient()).await });
    wait_for_waiters(&mut raw, &key, 2).await;
    // The lock goes to B, which is not polled again: it gives up without reading the news.
    holder.release().await.unwrap();
    let value: Option<String> = raw.get(&key).await.unwrap();
    assert_eq!(value.as_deref(), Some("b-chose-this"));
    drop(b_waiting);
    let c_guard = tokio::time::timeout(Duration::from_secs(2), c_waiting)
        .await
        .expect("C was not given the lock B gave up")
        .unwrap()
        .unwrap();
    let value: Option<String> = raw.get(&key).await.unwrap();
    assert_eq!(value.as_deref(), Some(c_guard.token()));
    c_guard.release().await.unwrap();
    let status = a.locks.status(&key).await.unwrap();
    assert_eq!((status.state, status.waiters), (LockState::Free, 0));
}

/// Redis only: a holder whose Redis restarts (without persistence) learns it lost the lock.
#[tokio::test]
async fn redis_restarted_under_a_held_lock_is_reported_lost() {
    let mut server = RedisServer::start();
    let locks = RedisLock::builder()
        .command_timeout(Duration::from_millis(300))
        .build_from_url(&server.url())
        .unwrap();
    let key = unique_key("restart");
    let guard = locks
        .acquire_with(
            &key,
            ttl(3000)
                .auto_renew(true)
                .renew_interval(Duration::from_millis(200)),
        )
        .await
        .unwrap();
    server.restart();
    let restarted = Instant::now();
    let reason = tokio::time::timeout(Duration::from_secs(5), guard.lost())
        .await
        .expect("the loss was not reported within 5 s");
    assert!(
        matches!(reason, LossReason::Deleted | LossReason::Unavailable),
        "{reason:?}"
    );
    assert!(!guard.is_held());
    eprintln!(
        "restart detected after {:?} ({reason})",
        restarted.elapsed()
    );
}

/// Redis only: 400 acquires cancelled at random points, contended and not, leave no key and no
/// task behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_hundred_cancelled_acquires_leave_no_keys_and_no_tasks() {
    let server = RedisServer::start();
    let mut raw = raw_conn(&server).await;
    let locks = RedisLock::from_url(&server.url()).unwrap();
    let metrics = tokio::runtime::Handle::current().metrics();
    // Warm up: the connection and the subscriber task exist from here on.
    let warm = locks.acquire("warm-up").await.unwrap();
    warm.release().await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let tasks_before = metrics.num_alive_tasks();

    let holder = locks.acquire_with("contended", ttl(30_000)).await.unwrap();
    let mut jitter = 0u64;
    let mut cancelled = tokio::task::JoinSet::new();
    for i in 0..400u64 {
        jitter = jitter
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let after = Duration::from_micros((jitter >> 33) % 3000);
        let locks = locks.clone();
        cancelled.spawn(async move {
            if i % 2 == 0 {
                // Waiting on a held lock: registered as a waiter when cancelled.
                let acquire = locks.acquire_with(
                    "contended",
                    AcquireOptions::new().wait(Duration::from_secs(30)),
                );
                assert!(tokio::time::timeout(after, acquire).await.is_err());
            } else {
                // A free key: cancelled before, during or after the grant.
                let key = format!("free:{i}");
                let _ = tokio::time::timeout(after, locks.try_acquire(&key)).await;
            }
        });
    }
    cancelled.join_all().await;
    holder.release().await.unwrap();

    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg("*")
            .query_async(&mut raw)
            .await
            .unwrap();
        let tasks = metrics.num_alive_tasks();
        if keys.is_empty() && tasks <= tasks_before {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "left behind: keys {keys:?}, tasks {tasks} (before: {tasks_before})"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// No renewal task outlives its guard, released or dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewal_tasks_end_with_their_guards() {
    let fx = Fixture::new(Backend::Redis).await;
    let metrics = tokio::runtime::Handle::current().metrics();
    let warm = fx.locks.acquire(&unique_key("warm")).await.unwrap();
    warm.release().await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let before = metrics.num_alive_tasks();
    let mut guards = Vec::new();
    for _ in 0..50 {
        let options = ttl(1000).auto_renew(true);
        guards.push(
            fx.locks
                .acquire_with(&unique_key("tasks"), options)
                .await
                .unwrap(),
        );
    }
    assert!(
        metrics.num_alive_tasks() >= before + 50,
        "a watchdog per guard"
    );
    for (i, guard) in guards.into_iter().enumerate() {
        if i % 2 == 0 {
            guard.release().await.unwrap();
        } else {
            drop(guard);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(3);
    while metrics.num_alive_tasks() > before {
        assert!(
            Instant::now() < deadline,
            "{} tasks alive, {before} before",
            metrics.num_alive_tasks()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn status_reports_state_ttl_fencing_and_waiters_never_the_value(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let other = fx.other_client().await;
    let key = unique_key("status");
    let status = fx.locks.status(&key).await.unwrap();
    assert_eq!(status.state, LockState::Free);
    assert_eq!(
        (status.ttl, status.fencing_counter, status.waiters),
        (None, None, 0)
    );

    let guard = fx
        .locks
        .acquire_with(&key, ttl(5000).fencing(true))
        .await
        .unwrap();
    let status = fx.locks.status(&key).await.unwrap();
    assert_eq!(status.state, LockState::Held);
    assert!(
        status.ttl.is_some_and(|t| t > Duration::from_secs(4)),
        "{status:?}"
    );
    assert_eq!(status.fencing_counter, guard.fencing_token());
    assert!(!format!("{status:?}").contains(guard.token()));

    if backend != Backend::Memory {
        let waiting_key = key.clone();
        let waiter = tokio::spawn(async move { other.acquire(&waiting_key).await });
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(fx.locks.status(&key).await.unwrap().waiters, 1);
        guard.release().await.unwrap();
        waiter.await.unwrap().unwrap().release().await.unwrap();
    } else {
        guard.release().await.unwrap();
    }
    assert_eq!(fx.locks.status(&key).await.unwrap().state, LockState::Free);
}

async fn a_chosen_token_and_a_detached_guard(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let key = unique_key("chosen");
    let guard = fx
        .locks
        .acquire_with(&key, AcquireOptions::new().token("deploy-42"))
        .await
        .unwrap();
    assert_eq!(guard.token(), "deploy-42");
    let token = guard.detach();
    assert_eq!(token, "deploy-42");
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Detached: not released on drop; the token releases it.
    assert_eq!(
        fx.locks.get_lock(&key).await.unwrap().as_deref(),
        Some("deploy-42")
    );
    fx.locks
        .release_lock(ReleaseParams::new(&key).value(token))
        .await
        .unwrap();
    let err = fx
        .locks
        .acquire_with(&key, AcquireOptions::new().token(""))
        .await
        .unwrap_err();
    assert!(matches!(err, LockError::InvalidInput(_)), "{err:?}");
}
