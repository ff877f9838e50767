//! Semaphores on a real Redis (and a Redis Cluster): at most `limit` permits held at once,
//! several taken in one step, permits that come back when their holder vanishes, waiters woken
//! on release and served in the order they came, registrations that leave with their waiter,
//! renewal and loss, wrong types, and a count of concurrent holders under contention.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ac_redislock::{
    AcquireOptions, InvalidInput, LockError, LockGuard, LossReason, RedisLock, RetryPolicy,
    Semaphore,
};
use redis::AsyncCommands;
use support::{Backend, Fixture, RawConn, companion, raw_conn, unique_key};
use tokio::task::JoinHandle;
use tokio::time::Instant;

on_redis_and_cluster!(
    a_limit_of_3_admits_3_and_refuses_the_4th,
    several_permits_are_taken_at_once,
    a_waiter_is_woken_on_release,
    a_waiter_that_came_first_wanting_2_is_served_before_a_later_one_wanting_1,
    a_lower_limit_enters_only_below_it,
    a_timed_out_or_cancelled_waiter_leaves_no_registration,
    a_permit_removed_behind_its_back_is_lost,
    status_counts_the_waiters,
);

/// A wait that only a wake-up makes short: the fallback backoff is 5 to 10 s, and the holders'
/// leases (10 s) are longer than the wake-ups waited for.
fn woken_only() -> AcquireOptions {
    AcquireOptions::new()
        .wait(Duration::from_secs(30))
        .retry(RetryPolicy::fixed(Duration::from_secs(10)))
}

/// How soon after a release its waiter must have its permit: far below the 5 s backoff, so
/// only a wake-up explains it, with room for a loaded machine.
const WOKEN_WITHIN: Duration = Duration::from_millis(100);

fn spawn_acquire(
    sem: &Semaphore,
    options: AcquireOptions,
) -> JoinHandle<Result<LockGuard, LockError>> {
    let sem = sem.clone();
    tokio::spawn(async move { sem.acquire_with(options).await })
}

/// Waits until `count` waiters are registered at the semaphore (its status counts them).
async fn wait_for_waiters(sem: &Semaphore, count: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let waiters = sem.status().await.unwrap().waiters;
        if waiters >= count {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{waiters} of {count} waiters registered at {:?} after 10 s",
            sem.key()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn assert_locked(result: Result<LockGuard, LockError>, what: &str) {
    match result {
        Err(err @ LockError::Locked { .. }) => assert_eq!(err.code(), 423, "{what}"),
        Err(err) => panic!("{what}: expected Locked, got {err:?}"),
        Ok(guard) => panic!("{what}: expected Locked, got a permit ({:?})", guard.key()),
    }
}

async fn a_limit_of_3_admits_3_and_refuses_the_4th(backend: Backend, key: String) {
    let fx = Fixture::new(backend).await;
    let sem = fx.locks.semaphore(&key, 3);
    let mut permits = Vec::new();
    for _ in 0..3 {
        permits.push(sem.try_acquire().await.unwrap());
    }
    assert_locked(sem.try_acquire().await, "a 4th permit");
    // Another client counts the same permits.
    let other = fx.other_client().await.semaphore(&key, 3);
    assert_locked(
        other.try_acquire().await,
        "a 4th permit from another client",
    );
    let status = sem.status().await.unwrap();
    assert_eq!((status.held, status.holders, status.limit), (3, 3, 3));

    // One back, one more in.
    permits.pop().unwrap().release().await.unwrap();
    let again = other.try_acquire().await.unwrap();
    assert_locked(sem.try_acquire().await, "a 4th permit after one came back");
    again.release().await.unwrap();
    for permit in permits {
        permit.release().await.unwrap();
    }
    let status = sem.status().await.unwrap();
    assert_eq!((status.held, status.holders, status.ttl), (0, 0, None));
    // An empty semaphore leaves no key behind.
    let mut raw = fx.raw().unwrap();
    let exists: bool = raw.exists(&key).await.unwrap();
    assert!(!exists);
}

async fn several_permits_are_taken_at_once(backend: Backend, key: String) {
    let fx = Fixture::new(backend).await;
    let sem = fx.locks.semaphore(&key, 3);
    let two = sem
        .try_acquire_with(AcquireOptions::new().permits(2))
        .await
        .unwrap();
    let status = sem.status().await.unwrap();
    assert_eq!((status.held, status.holders), (2, 1));
    let ttl = status.ttl.expect("a permit is held");
    assert!(
        ttl > Duration::from_secs(9) && ttl <= Duration::from_secs(10),
        "{ttl:?}"
    );
    // 2 + 2 > 3, 2 + 1 <= 3.
    assert_locked(
        sem.try_acquire_with(AcquireOptions::new().permits(2)).await,
        "2 more permits",
    );
    let one = sem.try_acquire().await.unwrap();
    let status = sem.status().await.unwrap();
    assert_eq!((status.held, status.holders), (3, 2));
    // Released, the 2 come back at once.
    two.release().await.unwrap();
    let status = sem.status().await.unwrap();
    assert_eq!((status.held, status.holders), (1, 1));
    let two = sem
        .try_acquire_with(AcquireOptions::new().permits(2))
        .await
        .unwrap();
    // The key's own expiry is its latest permit's.
    let mut raw = fx.raw().unwrap();
    let pttl: i64 = raw.pttl(&key).await.unwrap();
    assert!(pttl > 9_000 && pttl <= 10_000, "{pttl}");
    two.release().await.unwrap();
    one.release().await.unwrap();
}

#[tokio::test]
async fn permits_and_limits_out_of_range_are_invalid_input() {
    let fx = Fixture::new(Backend::Redis).await;
    let key = unique_key("range");
    let invalid = |result: Result<LockGuard, LockError>, what: &str| match result {
        Err(err @ LockError::InvalidInput(InvalidInput::Setting { .. })) => {
            assert_eq!(err.code(), 400, "{what}");
        }
        other => panic!("{what}: expected InvalidInput, got {other:?}"),
    };
    let sem = fx.locks.semaphore(&key, 3);
    invalid(
        sem.try_acquire_with(AcquireOptions::new().permits(0)).await,
        "0 permits",
    );
    invalid(
        sem.try_acquire_with(AcquireOptions::new().permits(4)).await,
        "4 permits of 3",
    );
    invalid(
        sem.acquire_with(AcquireOptions::new().permits(4)).await,
        "waiting for 4 permits of 3",
    );
    invalid(
        fx.locks.semaphore(&key, 0).try_acquire().await,
        "a limit of 0",
    );
    invalid(
        sem.try_acquire_with(AcquireOptions::new().fencing(true))
            .await,
        "a fencing token for a permit",
    );
    // Nothing was sent for any of them.
    let mut raw = fx.raw().unwrap();
    let exists: bool = raw.exists(&key).await.unwrap();
    assert!(!exists);
}

/// A holder that vanished (its guard detached, nothing released) keeps its permit for its
/// lease, judged by the server's clock, and not a moment longer.
#[tokio::test]
async fn a_vanished_holders_permit_comes_back_when_its_lease_ends() {
    for backend in [Backend::Redis, Backend::Cluster] {
        let fx = Fixture::new(backend).await;
        let key = unique_key("vanished");
        let sem = fx.locks.semaphore(&key, 1);
        let options = AcquireOptions::new().ttl(Duration::from_millis(300));
        let granted = Instant::now();
        let _ = sem
            .try_acquire_with(options.clone())
            .await
            .unwrap()
            .detach();
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert_locked(sem.try_acquire().await, "the permit before its lease ended");
        assert_eq!(sem.status().await.unwrap().held, 1);
        tokio::time::sleep(Duration::from_millis(300).saturating_sub(granted.elapsed())).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        let permit = sem.try_acquire().await.unwrap();
        permit.release().await.unwrap();

        // A waiter is not left sleeping past the vanished holder's lease: it comes in when the
        // lease ends, though no release wakes it and its backoff is 5 s or more.
        let _ = sem
            .try_acquire_with(options.clone())
            .await
            .unwrap()
            .detach();
        let started = Instant::now();
        let permit = sem.acquire_with(woken_only()).await.unwrap();
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(250) && waited < Duration::from_secs(2),
            "{backend:?}: waited {waited:?} for a 300 ms lease"
        );
        permit.release().await.unwrap();
    }
}

async fn a_waiter_is_woken_on_release(backend: Backend, key: String) {
    let fx = Fixture::new(backend).await;
    let sem = fx.locks.semaphore(&key, 2);
    let first = sem.try_acquire().await.unwrap();
    let second = sem.try_acquire().await.unwrap();
    let waiter = spawn_acquire(&fx.other_client().await.semaphore(&key, 2), woken_only());
    wait_for_waiters(&sem, 1).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!waiter.is_finished());

    let released = Instant::now();
    first.release().await.unwrap();
    let permit = waiter.await.unwrap().unwrap();
    let took = released.elapsed();
    assert!(
        took < WOKEN_WITHIN,
        "{backend:?}: the waiter took {took:?} after the release"
    );
    let status = sem.status().await.unwrap();
    assert_eq!((status.held, status.waiters), (2, 0));
    permit.release().await.unwrap();
    second.release().await.unwrap();
}

async fn a_waiter_that_came_first_wanting_2_is_served_before_a_later_one_wanting_1(
    backend: Backend,
    key: String,
) {
    let fx = Fixture::new(backend).await;
    let sem = fx.locks.semaphore(&key, 3);
    let a = sem.try_acquire().await.unwrap();
    let b = sem.try_acquire().await.unwrap();
    let c = sem.try_acquire().await.unwrap();
    let others = fx.other_client().await.semaphore(&key, 3);
    let wants_two = spawn_acquire(&others, woken_only().permits(2));
    wait_for_waiters(&sem, 1).await;
    let wants_one = spawn_acquire(&others, woken_only());
    wait_for_waiters(&sem, 2).await;

    // One permit free: not enough for the first in line, and the second waits behind it.
    a.release().await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!wants_two.is_finished());
    assert!(
        !wants_one.is_finished(),
        "{backend:?}: the later waiter went ahead of the first"
    );
    // Nor may a newcomer take it.
    assert_locked(sem.try_acquire().await, "a newcomer while two wait");
    assert_eq!(sem.status().await.unwrap().held, 2);

    // Two free: the first in line, woken.
    let released = Instant::now();
    b.release().await.unwrap();
    let two = wants_two.await.unwrap().unwrap();
    assert!(
        released.elapsed() < WOKEN_WITHIN,
        "{:?}",
        released.elapsed()
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!wants_one.is_finished());
    let status = sem.status().await.unwrap();
    assert_eq!((status.held, status.holders, status.waiters), (3, 2, 1));

    let released = Instant::now();
    c.release().await.unwrap();
    let one = wants_one.await.unwrap().unwrap();
    assert!(
        released.elapsed() < WOKEN_WITHIN,
        "{:?}",
        released.elapsed()
    );
    one.release().await.unwrap();
    two.release().await.unwrap();
}

/// Every handle judges by its own limit: with 3 held under a limit of 3, a handle with a limit
/// of 2 enters only once at most 1 is held.
async fn a_lower_limit_enters_only_below_it(backend: Backend, key: String) {
    let fx = Fixture::new(backend).await;
    let three = fx.locks.semaphore(&key, 3);
    let two = fx.locks.semaphore(&key, 2);
    let mut held = vec![
        three.try_acquire().await.unwrap(),
        three.try_acquire().await.unwrap(),
        three.try_acquire().await.unwrap(),
    ];
    assert_locked(two.try_acquire().await, "limit 2 with 3 held");
    held.pop().unwrap().release().await.unwrap();
    assert_locked(two.try_acquire().await, "limit 2 with 2 held");
    // Limit 3 still has room for one.
    let third = three.try_acquire().await.unwrap();
    third.release().await.unwrap();
    held.pop().unwrap().release().await.unwrap();
    let lower = two.try_acquire().await.unwrap();
    assert_locked(two.try_acquire().await, "limit 2 with 2 held again");
    lower.release().await.unwrap();
    for permit in held {
        permit.release().await.unwrap();
    }
}

async fn members(raw: &mut RawConn, key: &str) -> Vec<String> {
    raw.zrange(key, 0, -1).await.unwrap()
}

/// Waits until neither queue companion of `key` has a member.
async fn wait_for_no_registration(raw: &mut RawConn, key: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let queue = members(raw, &companion(key, "queue")).await;
        let alive = members(raw, &companion(key, "alive")).await;
        if queue.is_empty() && alive.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "registrations left at {key:?}: {queue:?}, {alive:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn a_timed_out_or_cancelled_waiter_leaves_no_registration(backend: Backend, key: String) {
    let fx = Fixture::new(backend).await;
    let mut raw = fx.raw().unwrap();
    let sem = fx.locks.semaphore(&key, 1);
    let holder = sem.try_acquire().await.unwrap();

    // Timed out.
    let short = AcquireOptions::new().wait(Duration::from_millis(300));
    assert_locked(sem.acquire_with(short).await, "a 300 ms wait");
    wait_for_no_registration(&mut raw, &key).await;

    // Cancelled while registered: its registration is in both companions, one member.
    let waiter = spawn_acquire(&sem, woken_only());
    wait_for_waiters(&sem, 1).await;
    let queue = members(&mut raw, &companion(&key, "queue")).await;
    let alive = members(&mut raw, &companion(&key, "alive")).await;
    assert_eq!(queue.len(), 1, "{queue:?}");
    assert_eq!(queue, alive);
    assert!(queue[0].ends_with("|1|1"), "{queue:?}");
    waiter.abort();
    assert!(waiter.await.unwrap_err().is_cancelled());
    wait_for_no_registration(&mut raw, &key).await;
    assert_eq!(sem.status().await.unwrap().waiters, 0);

    // And the permit comes back to no one: the next taker gets it at once.
    holder.release().await.unwrap();
    let permit = sem.try_acquire().await.unwrap();
    permit.release().await.unwrap();
}

/// A waiter that died without cancelling (its registration written here, as a killed process
/// leaves it) holds back newcomers only until its registration expires; then the next script
/// drops it from both companions.
#[tokio::test]
async fn a_dead_waiters_registration_holds_back_only_until_it_expires() {
    for backend in [Backend::Redis, Backend::Cluster] {
        let fx = Fixture::new(backend).await;
        let mut raw = fx.raw().unwrap();
        let key = unique_key("dead-waiter");
        let (secs, micros): (u64, u64) = redis::cmd("TIME").query_async(&mut raw).await.unwrap();
        let now_ms = secs * 1000 + micros / 1000;
        let dead = "deadbeef|0123456789abcdef|1|1";
        let (queue, alive) = (companion(&key, "queue"), companion(&key, "alive"));
        let _: () = raw
            .zadd(&queue, dead, secs * 1_000_000 + micros)
            .await
            .unwrap();
        let _: () = raw.zadd(&alive, dead, now_ms + 300).await.unwrap();

        let sem = fx.locks.semaphore(&key, 1);
        assert_eq!(sem.status().await.unwrap().waiters, 1);
        assert_locked(
            sem.try_acquire().await,
            "a newcomer behind a registered waiter",
        );
        tokio::time::sleep(Duration::from_millis(350)).await;
        assert_eq!(sem.status().await.unwrap().waiters, 0, "{backend:?}");
        let permit = sem.try_acquire().await.unwrap();
        assert!(members(&mut raw, &queue).await.is_empty());
        assert!(members(&mut raw, &alive).await.is_empty());
        permit.release().await.unwrap();
    }
}

#[tokio::test]
async fn renewal_keeps_a_permit_past_its_ttl() {
    for backend in [Backend::Redis, Backend::Cluster] {
        let fx = Fixture::new(backend).await;
        let key = unique_key("renewed");
        let sem = fx.locks.semaphore(&key, 1);
        let options = AcquireOptions::new()
            .ttl(Duration::from_millis(600))
            .auto_renew(true);
        let permit = sem.try_acquire_with(options).await.unwrap();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(permit.is_held());
        let status = sem.status().await.unwrap();
        assert_eq!((status.held, status.holders), (1, 1), "{backend:?}");
        assert_locked(sem.try_acquire().await, "a second permit of 1");
        // extend works on a permit too.
        permit.extend(Duration::from_secs(5)).await.unwrap();
        let ttl = sem.status().await.unwrap().ttl.unwrap();
        assert!(ttl > Duration::from_secs(4), "{ttl:?}");
        permit.release().await.unwrap();
        assert_eq!(sem.status().await.unwrap().held, 0);
    }
}

async fn a_permit_removed_behind_its_back_is_lost(backend: Backend, key: String) {
    let fx = Fixture::new(backend).await;
    let mut raw = fx.raw().unwrap();
    let sem = fx.locks.semaphore(&key, 2);
    let options = AcquireOptions::new()
        .ttl(Duration::from_millis(900))
        .auto_renew(true);
    let permit = sem.try_acquire_with(options).await.unwrap();
    let other = sem.try_acquire().await.unwrap();
    let member = format!("1|{}", permit.token());
    let removed: i64 = raw.zrem(&key, &member).await.unwrap();
    assert_eq!(removed, 1, "the permit is the member {member:?}");
    let reason = tokio::time::timeout(Duration::from_secs(3), permit.lost())
        .await
        .expect("the loss is reported");
    assert_eq!(reason, LossReason::Deleted);
    assert!(!permit.is_held());
    match permit.release().await {
        Err(LockError::Lost { .. }) => {}
        other => panic!("expected Lost, got {other:?}"),
    }
    // The other permit is untouched.
    let status = sem.status().await.unwrap();
    assert_eq!((status.held, status.holders), (1, 1));
    other.release().await.unwrap();
}

async fn status_counts_the_waiters(backend: Backend, key: String) {
    let fx = Fixture::new(backend).await;
    let sem = fx.locks.semaphore(&key, 1);
    let holder = sem.try_acquire().await.unwrap();
    assert_eq!(sem.status().await.unwrap().waiters, 0);
    let mut first = spawn_acquire(&sem, woken_only());
    let mut second = spawn_acquire(&fx.other_client().await.semaphore(&key, 1), woken_only());
    wait_for_waiters(&sem, 2).await;
    let status = sem.status().await.unwrap();
    assert_eq!(
        (status.held, status.holders, status.waiters, status.limit),
        (1, 1, 2, 1)
    );
    // Served one after the other, each on the release before it.
    holder.release().await.unwrap();
    let (one, other) = tokio::select! {
        one = &mut first => (one, second),
        one = &mut second => (one, first),
    };
    let one = one.unwrap().unwrap();
    assert_eq!(sem.status().await.unwrap().waiters, 1);
    one.release().await.unwrap();
    let other = other.await.unwrap().unwrap();
    let status = sem.status().await.unwrap();
    assert_eq!((status.held, status.waiters), (1, 0));
    other.release().await.unwrap();
}

/// A key that holds a lock (a string), or a list, is not a semaphore: every call says so, and
/// none waits on it or changes it.
#[tokio::test]
async fn a_lock_or_a_list_at_the_key_is_wrong_type() {
    for backend in [Backend::Redis, Backend::Cluster] {
        let fx = Fixture::new(backend).await;
        let mut raw = fx.raw().unwrap();
        let wrong = |result: Result<LockGuard, LockError>, found: &str, what: &str| match result {
            Err(err @ LockError::WrongType { .. }) => {
                assert_eq!(err.code(), 409, "{what}");
                let LockError::WrongType { found: got, .. } = err else {
                    unreachable!()
                };
                assert_eq!(got, found, "{backend:?}: {what}");
            }
            other => panic!("{backend:?}: {what}: expected WrongType, got {other:?}"),
        };

        let key = unique_key("mutex-there");
        let lock = fx.locks.try_acquire(&key).await.unwrap();
        let sem = fx.locks.semaphore(&key, 3);
        wrong(sem.try_acquire().await, "string", "try_acquire");
        let started = Instant::now();
        wrong(sem.acquire_with(woken_only()).await, "string", "acquire");
        assert!(started.elapsed() < Duration::from_secs(2));
        match sem.status().await {
            Err(LockError::WrongType { found, .. }) => assert_eq!(found, "string"),
            other => panic!("status: expected WrongType, got {other:?}"),
        }
        // The lock is untouched, and a lock call on the semaphore's key is refused the same.
        assert_eq!(
            fx.locks.get_lock(&key).await.unwrap().as_deref(),
            Some(lock.token())
        );
        lock.release().await.unwrap();
        let key = unique_key("sem-there");
        let permit = fx.locks.semaphore(&key, 3).try_acquire().await.unwrap();
        wrong(
            fx.locks.try_acquire(&key).await,
            "zset",
            "a lock on a semaphore",
        );
        permit.release().await.unwrap();

        let key = unique_key("list-there");
        let _: () = raw.rpush(&key, "item").await.unwrap();
        let sem = fx.locks.semaphore(&key, 3);
        wrong(sem.try_acquire().await, "list", "a list");
        let len: usize = raw.llen(&key).await.unwrap();
        assert_eq!(len, 1);

        // A companion of another type is named.
        let key = unique_key("queue-taken");
        let queue = companion(&key, "queue");
        let _: () = raw.set(&queue, "not a queue").await.unwrap();
        let sem = fx.locks.semaphore(&key, 1);
        let holder = sem.try_acquire().await;
        match holder {
            Err(LockError::WrongType { key, found }) => {
                assert_eq!((key.as_str(), found.as_str()), (queue.as_str(), "string"));
            }
            other => panic!("expected WrongType for the queue, got {other:?}"),
        }
        let _: () = raw.del(&queue).await.unwrap();
    }
}

/// A script call whose reply was lost with its connection after it ran is retried: the retry
/// finds the permit it took (one permit, not two), and a retried release that finds it gone
/// counts as done.
#[tokio::test]
async fn a_retried_attempt_recognises_its_own_permit() {
    let server = support::shared();
    let conn = support::LoseReply::new(raw_conn(server).await);
    let trigger = conn.trigger();
    let locks = RedisLock::new(conn);
    let key = unique_key("lost-reply");
    let sem = locks.semaphore(&key, 1);
    // The scripts loaded first, so the EVALSHA whose reply is lost runs.
    sem.try_acquire().await.unwrap().release().await.unwrap();

    trigger.arm("EVALSHA");
    let permit = sem.try_acquire().await.unwrap();
    assert!(trigger.fired());
    let status = sem.status().await.unwrap();
    assert_eq!((status.held, status.holders), (1, 1));

    trigger.arm("EVALSHA");
    permit.release().await.unwrap();
    assert!(trigger.fired());
    assert_eq!(sem.status().await.unwrap().held, 0);
}

/// 12 tasks, each with a client of its own, share a semaphore of 3 for 2,000 sections: never
/// more than 3 inside at once. The control: the same tasks without the semaphore are caught
/// by the same counter.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twelve_clients_never_hold_more_than_3_permits() {
    const TASKS: usize = 12;
    const SECTIONS: usize = 2_000;
    const LIMIT: u32 = 3;
    let key = unique_key("contended");
    let inside = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));

    let section = {
        let (inside, most) = (Arc::clone(&inside), Arc::clone(&most));
        move || {
            let (inside, most) = (Arc::clone(&inside), Arc::clone(&most));
            async move {
                let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_micros(500)).await;
                inside.fetch_sub(1, Ordering::SeqCst);
            }
        }
    };

    // The control: no semaphore.
    let mut tasks = Vec::new();
    for _ in 0..TASKS {
        let section = section.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..20 {
                section().await;
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert!(
        most.load(Ordering::SeqCst) > LIMIT as usize,
        "the counter never saw more than {LIMIT} inside without the semaphore"
    );
    most.store(0, Ordering::SeqCst);

    let mut clients = Vec::new();
    for _ in 0..TASKS {
        clients.push(Fixture::new(Backend::Redis).await.locks.clone());
    }
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (i, locks) in clients.into_iter().enumerate() {
        let (section, done, key) = (section.clone(), Arc::clone(&done), key.clone());
        let rounds = SECTIONS / TASKS + usize::from(i < SECTIONS % TASKS);
        tasks.push(tokio::spawn(async move {
            let sem = locks.semaphore(&key, LIMIT);
            let options = AcquireOptions::new().wait(Duration::from_secs(60));
            for _ in 0..rounds {
                let permit = sem.acquire_with(options.clone()).await.unwrap();
                section().await;
                permit.release().await.unwrap();
                done.fetch_add(1, Ordering::SeqCst);
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(done.load(Ordering::SeqCst), SECTIONS);
    let most = most.load(Ordering::SeqCst);
    assert!(most <= LIMIT as usize, "{most} held permits at once");
    assert!(most >= 2, "the sections never overlapped: {most}");
    eprintln!("{SECTIONS} sections in {:?}", started.elapsed());
    let fx = Fixture::new(Backend::Redis).await;
    let status = fx.locks.semaphore(&key, LIMIT).status().await.unwrap();
    assert_eq!((status.held, status.waiters), (0, 0));
}

/// A waiter whose process dies while it waits (no clean-up runs; its connections close) holds
/// back the waiters behind it for a moment only, not for its registration's lease: the release
/// that would wake it finds no one listening for it, and wakes the next one too, which takes
/// the permit a fraction of a second later. (Its lease here is over a minute.)
#[tokio::test]
async fn a_waiter_that_died_holds_back_the_next_one_for_a_moment_only() {
    // A server of its own, so that no other test's client listens on it.
    let server = support::RedisServer::start();
    let url = server.url();
    let locks = RedisLock::from_url(&url).unwrap();
    let key = unique_key("died-waiting");
    let sem = locks.semaphore(key.as_str(), 1);
    let holder = sem
        .acquire_with(AcquireOptions::new().ttl(Duration::from_secs(30)))
        .await
        .unwrap();
    // The dying waiter lives in a "process" of its own: a runtime on its own thread that dies
    // without running anything more.
    let (die, dying) = std::sync::mpsc::channel::<()>();
    let (dying_url, dying_key) = (url.clone(), key.clone());
    let process = std::thread::spawn(move || {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async {
            let crashed = RedisLock::from_url(&dying_url).unwrap();
            let options = AcquireOptions::new()
                .wait(Duration::from_secs(120))
                .retry(RetryPolicy::new().with_max_delay(Duration::from_secs(20)));
            tokio::spawn(async move {
                crashed
                    .semaphore(dying_key.as_str(), 1)
                    .acquire_with(options)
                    .await
            });
        });
        dying.recv().unwrap();
        runtime.shutdown_background();
    });
    wait_for_waiters(&sem, 1).await;
    let next = spawn_acquire(&sem, woken_only());
    wait_for_waiters(&sem, 2).await;
    die.send(()).unwrap();
    process.join().unwrap();
    // Once the server has seen the dead client's subscriber go.
    let mut raw = raw_conn(&server).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let channels: Vec<String> = redis::cmd("PUBSUB")
            .arg("CHANNELS")
            .arg("ac-redislock:wake:*")
            .query_async(&mut raw)
            .await
            .unwrap();
        if channels.len() == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "{channels:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let released = Instant::now();
    holder.release().await.unwrap();
    let permit = tokio::time::timeout(Duration::from_secs(3), next)
        .await
        .expect("the next waiter was held back by the dead one")
        .unwrap()
        .unwrap();
    let took = released.elapsed();
    assert!(took < Duration::from_millis(800), "took {took:?}");
    assert_eq!(sem.status().await.unwrap().waiters, 0);
    permit.release().await.unwrap();
}
