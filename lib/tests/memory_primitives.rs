//! Semaphores, read-write locks and multi-key locks on the in-memory store, through the public
//! API of both faces: admission, strict FIFO order, wake-ups on release (not polling), expiry,
//! fencing, renewal, and a concurrency check.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ac_redislock::{
    AcquireOptions, LockError, LossReason, RedisLock, ReleaseParams, RetryPolicy, Semaphore,
};
use tokio::time::Instant;

/// A wake-up explains a return within this; a 5 s backoff (jittered: at least 2.5 s) does not.
const WOKEN_WITHIN: Duration = Duration::from_millis(50);

/// A wait that only a wake-up can end quickly: the first retry would come after 2.5 s at the
/// earliest.
fn long_backoff() -> AcquireOptions {
    AcquireOptions::new()
        .retry(RetryPolicy::fixed(Duration::from_secs(5)))
        .wait(Duration::from_secs(20))
}

fn is_locked(result: &ac_redislock::Result<ac_redislock::LockGuard>) -> bool {
    matches!(result, Err(LockError::Locked { .. }))
}

/// Waits until the semaphore at `sem` has `n` waiters registered.
async fn until_waiters(sem: &Semaphore, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while sem.status().await.unwrap().waiters != n {
        assert!(Instant::now() < deadline, "never {n} waiters");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Semaphores

#[tokio::test]
async fn a_semaphore_admits_up_to_its_limit() {
    let locks = RedisLock::in_memory();
    let sem = locks.semaphore("sem:limit", 3);
    let mut permits = Vec::new();
    for _ in 0..3 {
        permits.push(sem.try_acquire().await.unwrap());
    }
    let err = sem.try_acquire().await.unwrap_err();
    assert!(matches!(err, LockError::Locked { .. }), "{err:?}");
    assert_eq!(err.code(), 423);
    let status = sem.status().await.unwrap();
    assert_eq!((status.held, status.holders, status.limit), (3, 3, 3));
    permits.pop().unwrap().release().await.unwrap();
    let again = sem.try_acquire().await.unwrap();
    again.release().await.unwrap();
    for permit in permits {
        permit.release().await.unwrap();
    }
    let status = sem.status().await.unwrap();
    assert_eq!((status.held, status.holders, status.ttl), (0, 0, None));
}

#[tokio::test]
async fn several_permits_are_taken_in_one_step() {
    let locks = RedisLock::in_memory();
    let sem = locks.semaphore("sem:permits", 3);
    let two = sem
        .acquire_with(AcquireOptions::new().permits(2))
        .await
        .unwrap();
    let more = sem.try_acquire_with(AcquireOptions::new().permits(2)).await;
    assert!(is_locked(&more), "{more:?}");
    let one = sem.try_acquire().await.unwrap();
    let status = sem.status().await.unwrap();
    assert_eq!((status.held, status.holders), (3, 2));
    // More permits than the limit, or none, is refused before anything is sent.
    for permits in [0, 4] {
        let err = sem
            .try_acquire_with(AcquireOptions::new().permits(permits))
            .await
            .unwrap_err();
        assert!(matches!(err, LockError::InvalidInput(_)), "{err:?}");
    }
    two.release().await.unwrap();
    one.release().await.unwrap();
}

#[tokio::test]
async fn a_detached_permit_comes_back_only_when_its_lease_ends() {
    let locks = RedisLock::in_memory();
    let sem = locks.semaphore("sem:detached", 1);
    let start = Instant::now();
    let options = AcquireOptions::new().ttl(Duration::from_millis(200));
    let _token = sem.try_acquire_with(options).await.unwrap().detach();
    assert!(is_locked(&sem.try_acquire().await));
    tokio::time::sleep_until(start + Duration::from_millis(120)).await;
    assert!(
        is_locked(&sem.try_acquire().await),
        "back before its lease ended"
    );
    tokio::time::sleep_until(start + Duration::from_millis(260)).await;
    sem.try_acquire().await.unwrap().release().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiter_is_woken_by_a_release() {
    let locks = RedisLock::in_memory();
    let sem = locks.semaphore("sem:wake", 1);
    let held = sem.acquire().await.unwrap();
    let waiting = {
        let sem = sem.clone();
        tokio::spawn(async move {
            let permit = sem.acquire_with(long_backoff()).await.unwrap();
            (permit, Instant::now())
        })
    };
    until_waiters(&sem, 1).await;
    let released = Instant::now();
    held.release().await.unwrap();
    let (permit, took) = waiting.await.unwrap();
    let after = took - released;
    assert!(after < WOKEN_WITHIN, "served {after:?} after the release");
    permit.release().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiters_are_served_in_the_order_they_came() {
    let locks = RedisLock::in_memory();
    let sem = locks.semaphore("sem:fifo", 2);
    let a = sem.acquire().await.unwrap();
    let b = sem.acquire().await.unwrap();
    let spawn = |permits: u32| {
        let sem = sem.clone();
        tokio::spawn(async move {
            let options = long_backoff().permits(permits);
            sem.acquire_with(options).await.unwrap()
        })
    };
    // First a waiter wanting both permits, then one wanting one.
    let big = spawn(2);
    until_waiters(&sem, 1).await;
    let small = spawn(1);
    until_waiters(&sem, 2).await;
    // One permit free: enough for the later waiter, but the first comes first.
    a.release().await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !big.is_finished() && !small.is_finished(),
        "someone jumped the line"
    );
    assert!(
        is_locked(&sem.try_acquire().await),
        "a newcomer jumped the line"
    );
    b.release().await.unwrap();
    let big = tokio::time::timeout(Duration::from_secs(1), big)
        .await
        .expect("the first waiter is served once both permits are free")
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!small.is_finished(), "both permits are taken");
    big.release().await.unwrap();
    let small = tokio::time::timeout(Duration::from_secs(1), small)
        .await
        .expect("then the second")
        .unwrap();
    small.release().await.unwrap();
}

#[tokio::test]
async fn a_lower_limit_admits_once_few_enough_are_held() {
    let locks = RedisLock::in_memory();
    let three = locks.semaphore("sem:lowered", 3);
    let two = locks.semaphore("sem:lowered", 2);
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(three.try_acquire().await.unwrap());
    }
    assert!(is_locked(&two.try_acquire().await), "3 held");
    held.pop().unwrap().release().await.unwrap();
    assert!(is_locked(&two.try_acquire().await), "2 held");
    held.pop().unwrap().release().await.unwrap();
    let entered = two.try_acquire().await.unwrap();
    // The old limit still lets its handles in up to 3.
    assert!(is_locked(&two.try_acquire().await));
    let old = three.try_acquire().await.unwrap();
    for guard in [entered, old, held.pop().unwrap()] {
        guard.release().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn semaphore_status() {
    let locks = RedisLock::in_memory();
    let sem = locks.semaphore("sem:status", 3);
    let ttl = Duration::from_secs(5);
    let two = sem
        .acquire_with(AcquireOptions::new().permits(2).ttl(ttl))
        .await
        .unwrap();
    let waiting = {
        let sem = sem.clone();
        tokio::spawn(async move { sem.acquire_with(long_backoff().permits(2)).await })
    };
    until_waiters(&sem, 1).await;
    let status = sem.status().await.unwrap();
    assert_eq!(
        (status.limit, status.held, status.holders, status.waiters),
        (3, 2, 1, 1)
    );
    assert!(
        status.ttl.is_some_and(|t| t <= ttl && t > ttl / 2),
        "{status:?}"
    );
    two.release().await.unwrap();
    let next = waiting.await.unwrap().unwrap();
    let status = sem.status().await.unwrap();
    assert_eq!((status.held, status.holders, status.waiters), (2, 1, 0));
    next.release().await.unwrap();
    // A semaphore is not a lock: a lock's handles see a key of another type.
    let lock = locks.acquire("sem:status:lock").await.unwrap();
    let err = locks
        .semaphore("sem:status:lock", 3)
        .status()
        .await
        .unwrap_err();
    assert!(matches!(err, LockError::WrongType { .. }), "{err:?}");
    let err = locks
        .semaphore("sem:status:lock", 3)
        .try_acquire()
        .await
        .unwrap_err();
    assert!(matches!(err, LockError::WrongType { .. }), "{err:?}");
    lock.release().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn never_more_than_the_limit_at_once() {
    const TASKS: usize = 12;
    const SECTIONS: usize = 2000;
    let locks = RedisLock::in_memory();
    let sem = locks.semaphore("sem:concurrent", 3);
    let inside = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let started = Arc::new(AtomicUsize::new(0));
    let finished = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            let (sem, inside, most) = (sem.clone(), Arc::clone(&inside), Arc::clone(&most));
            let (started, finished) = (Arc::clone(&started), Arc::clone(&finished));
            tokio::spawn(async move {
                while started.fetch_add(1, Ordering::SeqCst) < SECTIONS {
                    let options = AcquireOptions::new().wait(Duration::from_secs(60));
                    let permit = sem.acquire_with(options).await.unwrap();
                    let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    tokio::task::yield_now().await;
                    inside.fetch_sub(1, Ordering::SeqCst);
                    permit.release().await.unwrap();
                    finished.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(finished.load(Ordering::SeqCst), SECTIONS);
    let most = most.load(Ordering::SeqCst);
    assert!(most <= 3, "{most} at once");
    assert_eq!(most, 3, "the limit was never reached");
    let status = sem.status().await.unwrap();
    assert_eq!((status.held, status.waiters), (0, 0));
}

// ---------------------------------------------------------------------------------------------
// Read-write locks

#[tokio::test]
async fn readers_share_and_a_writer_is_alone() {
    let locks = RedisLock::in_memory();
    let rw = locks.rw_lock("rw:share");
    let first = rw.read().await.unwrap();
    let second = rw.try_read().await.unwrap();
    assert!(is_locked(&rw.try_write().await));
    let status = rw.status().await.unwrap();
    assert_eq!((status.readers, status.writer), (2, false));
    first.release().await.unwrap();
    second.release().await.unwrap();

    let writing = rw.try_write().await.unwrap();
    assert!(is_locked(&rw.try_read().await));
    assert!(is_locked(&rw.try_write().await));
    let status = rw.status().await.unwrap();
    assert_eq!(
        (status.readers, status.writer, status.waiters),
        (0, true, 0)
    );
    writing.release().await.unwrap();
    let status = rw.status().await.unwrap();
    assert_eq!(
        (status.readers, status.writer, status.ttl),
        (0, false, None)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_writer_holds_back_new_readers_and_is_served_when_readers_leave() {
    let locks = RedisLock::in_memory();
    let rw = locks.rw_lock("rw:writer-waits");
    let reading = rw.read().await.unwrap();
    let writer = {
        let rw = rw.clone();
        tokio::spawn(async move {
            let options = long_backoff().fencing(true);
            let guard = rw.write_with(options).await.unwrap();
            (guard, Instant::now())
        })
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while rw.status().await.unwrap().waiters != 1 {
        assert!(Instant::now() < deadline, "the writer never waited");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    // A stream of readers does not starve the writer: new ones wait behind it.
    assert!(is_locked(&rw.try_read().await));
    let released = Instant::now();
    reading.release().await.unwrap();
    let (writing, took) = writer.await.unwrap();
    let after = took - released;
    assert!(
        after < WOKEN_WITHIN,
        "served {after:?} after the last reader left"
    );
    assert!(writing.fencing_token().is_some());
    writing.release().await.unwrap();
}

#[tokio::test]
async fn writers_fencing_tokens_increase() {
    let locks = RedisLock::in_memory();
    let rw = locks.rw_lock("rw:fence");
    let mut last = 0;
    for _ in 0..3 {
        let writing = rw
            .write_with(AcquireOptions::new().fencing(true))
            .await
            .unwrap();
        let fence = writing.fencing_token().unwrap();
        assert!(fence > last, "{fence} after {last}");
        last = fence;
        writing.release().await.unwrap();
    }
    assert_eq!(rw.status().await.unwrap().fencing_counter, Some(last));
    // A writer that does not ask gets none; readers may not ask.
    let writing = rw.try_write().await.unwrap();
    assert_eq!(writing.fencing_token(), None);
    writing.release().await.unwrap();
    let err = rw
        .read_with(AcquireOptions::new().fencing(true))
        .await
        .unwrap_err();
    assert!(matches!(err, LockError::InvalidInput(_)), "{err:?}");
    let err = locks
        .semaphore("rw:fence:sem", 2)
        .try_acquire_with(AcquireOptions::new().fencing(true))
        .await
        .unwrap_err();
    assert!(matches!(err, LockError::InvalidInput(_)), "{err:?}");
}

#[tokio::test]
async fn a_hold_is_extended_and_released_as_its_own_lease() {
    let locks = RedisLock::in_memory();
    let rw = locks.rw_lock("rw:lease");
    let reading = rw
        .read_with(AcquireOptions::new().ttl(Duration::from_millis(300)))
        .await
        .unwrap();
    let other = rw.read().await.unwrap();
    reading.extend(Duration::from_secs(20)).await.unwrap();
    let ttl = rw.status().await.unwrap().ttl.unwrap();
    assert!(ttl > Duration::from_secs(15), "{ttl:?}");
    other.release().await.unwrap();
    reading.release().await.unwrap();
    // Gone on its own: renewal finds it gone.
    let short = rw
        .read_with(AcquireOptions::new().ttl(Duration::from_millis(100)))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    let err = short.extend(Duration::from_secs(1)).await.unwrap_err();
    assert!(matches!(err, LockError::Lost { .. }), "{err:?}");
}

// ---------------------------------------------------------------------------------------------
// Several keys

#[tokio::test]
async fn acquire_all_holds_every_key() {
    let locks = RedisLock::in_memory();
    let both = locks.acquire_all(&["multi:b", "multi:a"]).await.unwrap();
    assert_eq!(both.keys(), ["multi:a", "multi:b"]);
    assert_eq!(both.key(), "multi:a");
    for key in ["multi:a", "multi:b"] {
        assert!(is_locked(&locks.try_acquire(key).await), "{key}");
        let value = locks.get_lock(key).await.unwrap();
        assert_eq!(value.as_deref(), Some(both.token()), "{key}");
    }
    both.release().await.unwrap();
    for key in ["multi:a", "multi:b"] {
        locks
            .try_acquire(key)
            .await
            .unwrap()
            .release()
            .await
            .unwrap();
    }
    // Repeats count once.
    let once = locks
        .try_acquire_all(&["multi:c", "multi:c"])
        .await
        .unwrap();
    assert_eq!(once.keys(), ["multi:c"]);
    once.release().await.unwrap();
}

#[tokio::test]
async fn one_held_key_takes_nothing() {
    let locks = RedisLock::in_memory();
    let b = locks.acquire("multi2:b").await.unwrap();
    let err = locks
        .try_acquire_all(&["multi2:a", "multi2:b"])
        .await
        .unwrap_err();
    assert!(matches!(err, LockError::Locked { .. }), "{err:?}");
    assert_eq!(locks.get_lock("multi2:a").await.unwrap(), None);
    locks
        .try_acquire("multi2:a")
        .await
        .unwrap()
        .release()
        .await
        .unwrap();
    b.release().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_acquire_all_is_woken_when_the_blocking_key_is_released() {
    let locks = RedisLock::in_memory();
    // The blocking key is not the first: the waiter listens under the first.
    let b = locks.acquire("multi3:b").await.unwrap();
    let waiting = {
        let locks = locks.clone();
        tokio::spawn(async move {
            let keys = ["multi3:a", "multi3:b"];
            let guard = locks.acquire_all_with(&keys, long_backoff()).await.unwrap();
            (guard, Instant::now())
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!waiting.is_finished());
    let released = Instant::now();
    b.release().await.unwrap();
    let (both, took) = waiting.await.unwrap();
    let after = took - released;
    assert!(after < WOKEN_WITHIN, "served {after:?} after the release");
    both.release().await.unwrap();
}

#[tokio::test]
async fn extend_extends_every_key() {
    let locks = RedisLock::in_memory();
    let keys = ["multi4:a", "multi4:b"];
    let options = AcquireOptions::new().ttl(Duration::from_secs(1));
    let both = locks.acquire_all_with(&keys, options).await.unwrap();
    both.extend(Duration::from_secs(30)).await.unwrap();
    for key in keys {
        let ttl = locks.status(key).await.unwrap().ttl.unwrap();
        assert!(ttl > Duration::from_secs(25), "{key}: {ttl:?}");
    }
    both.release().await.unwrap();
}

#[tokio::test]
async fn a_key_deleted_behind_its_back_loses_the_guard() {
    let locks = RedisLock::in_memory();
    let both = locks.acquire_all(&["multi5:a", "multi5:b"]).await.unwrap();
    locks
        .release_lock(ReleaseParams::new("multi5:b"))
        .await
        .unwrap();
    let err = both.extend(Duration::from_secs(10)).await.unwrap_err();
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
    assert!(!both.is_held());

    // The watchdog finds it too.
    let options = AcquireOptions::new()
        .ttl(Duration::from_millis(300))
        .auto_renew(true);
    let renewed = locks
        .acquire_all_with(&["multi5:c", "multi5:d"], options)
        .await
        .unwrap();
    locks
        .release_lock(ReleaseParams::new("multi5:c"))
        .await
        .unwrap();
    let reason = tokio::time::timeout(Duration::from_secs(2), renewed.lost())
        .await
        .expect("renewal reports the loss");
    assert_eq!(reason, LossReason::Deleted);
    // The other key is still ours until released (or expired).
    assert_eq!(
        locks.get_lock("multi5:d").await.unwrap().as_deref(),
        Some(renewed.token())
    );
    drop(renewed.release().await);
    assert_eq!(locks.get_lock("multi5:d").await.unwrap(), None);
}

// ---------------------------------------------------------------------------------------------
// The blocking face

#[test]
fn blocking_semaphore_rwlock_and_several_keys() {
    let locks = ac_redislock::blocking::RedisLock::in_memory().unwrap();
    let sem = locks.semaphore("b:sem", 2);
    let one = sem.acquire().unwrap();
    let two = sem.try_acquire().unwrap();
    assert_eq!(sem.try_acquire().unwrap_err().code(), 423);
    assert_eq!(sem.status().unwrap().held, 2);
    drop(one);
    let three = sem.try_acquire().unwrap();
    drop((two, three));
    assert_eq!(sem.status().unwrap().held, 0);

    let rw = locks.rw_lock("b:rw");
    let reading = rw.read().unwrap();
    assert_eq!(rw.try_write().unwrap_err().code(), 423);
    drop(reading);
    let writing = rw.write_with(AcquireOptions::new().fencing(true)).unwrap();
    assert!(writing.fencing_token().is_some());
    assert_eq!(rw.try_read().unwrap_err().code(), 423);
    writing.release().unwrap();

    let both = locks.acquire_all(&["b:y", "b:x"]).unwrap();
    assert_eq!(both.keys(), ["b:x", "b:y"]);
    assert!(locks.try_acquire("b:y").is_err());
    both.release().unwrap();
    locks.try_acquire("b:y").unwrap().release().unwrap();
}

#[test]
fn a_blocking_waiter_is_woken_by_a_drop() {
    let locks = ac_redislock::blocking::RedisLock::in_memory().unwrap();
    let sem = locks.semaphore("b:wake", 1);
    let held = sem.acquire().unwrap();
    let waiter = {
        let sem = sem.clone();
        std::thread::spawn(move || {
            let permit = sem.acquire_with(long_backoff()).unwrap();
            (permit, std::time::Instant::now())
        })
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while sem.status().unwrap().waiters != 1 {
        assert!(std::time::Instant::now() < deadline, "never waited");
        std::thread::sleep(Duration::from_millis(2));
    }
    let released = std::time::Instant::now();
    drop(held);
    let (permit, took) = waiter.join().unwrap();
    let after = took - released;
    assert!(after < WOKEN_WITHIN, "served {after:?} after the release");
    permit.release().unwrap();
}
