//! Read-write locks on a real Redis (and a Redis Cluster): readers share, a writer is alone, a
//! waiting writer holds back the readers that come after it and is woken when the readers
//! leave, the readers behind a writer are woken together, writers' fencing tokens increase,
//! and the status shows who holds and who waits.

mod support;

use std::time::Duration;

use ac_redislock::{AcquireOptions, InvalidInput, LockError, LockGuard, RetryPolicy, RwLock};
use redis::AsyncCommands;
use support::{Backend, Fixture, companion, unique_key};
use tokio::task::JoinHandle;
use tokio::time::Instant;

on_redis_and_cluster!(
    two_readers_hold_at_once,
    a_writer_is_refused_while_a_reader_holds,
    a_reader_is_refused_while_a_writer_holds,
    a_waiting_writer_holds_back_new_readers_and_is_woken_when_the_readers_leave,
    the_readers_behind_a_writer_are_woken_together,
    writers_fencing_tokens_strictly_increase,
    status_shows_readers_writer_and_waiters,
);

/// A wait that only a wake-up makes short: the fallback backoff is 5 to 10 s, and the holders'
/// leases (10 s) are longer than the wake-ups waited for.
fn woken_only() -> AcquireOptions {
    AcquireOptions::new()
        .wait(Duration::from_secs(30))
        .retry(RetryPolicy::fixed(Duration::from_secs(10)))
}

/// How soon after a release its waiter must have the lock: far below the 5 s backoff, so only
/// a wake-up explains it, with room for a loaded machine.
const WOKEN_WITHIN: Duration = Duration::from_millis(100);

fn spawn_read(rw: &RwLock, options: AcquireOptions) -> JoinHandle<Result<LockGuard, LockError>> {
    let rw = rw.clone();
    tokio::spawn(async move { rw.read_with(options).await })
}

fn spawn_write(rw: &RwLock, options: AcquireOptions) -> JoinHandle<Result<LockGuard, LockError>> {
    let rw = rw.clone();
    tokio::spawn(async move { rw.write_with(options).await })
}

/// Waits until `count` waiters are registered at the lock (its status counts them).
async fn wait_for_waiters(rw: &RwLock, count: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let waiters = rw.status().await.unwrap().waiters;
        if waiters >= count {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{waiters} of {count} waiters registered at {:?} after 10 s",
            rw.key()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn assert_locked(result: Result<LockGuard, LockError>, what: &str) {
    match result {
        Err(err @ LockError::Locked { .. }) => assert_eq!(err.code(), 423, "{what}"),
        Err(err) => panic!("{what}: expected Locked, got {err:?}"),
        Ok(guard) => panic!("{what}: expected Locked, got a hold ({:?})", guard.key()),
    }
}

async fn two_readers_hold_at_once(backend: Backend, key: String) {
    let fx = Fixture::new(backend).await;
    let rw = fx.locks.rw_lock(&key);
    let first = rw.try_read().await.unwrap();
    let second = fx
        .other_client()
        .await
        .rw_lock(&key)
        .try_read()
        .await
        .unwrap();
    let status = rw.status().await.unwrap();
    assert_eq!((status.readers, status.writer), (2, false));
    first.release().await.unwrap();
    assert_eq!(rw.status().await.unwrap().readers, 1);
    second.release().await.unwrap();
    let status = rw.status().await.unwrap();
    assert_eq!((status.readers, status.ttl), (0, None));
}

async fn a_writer_is_refused_while_a_reader_holds(backend: Backend, key: String) {
    let fx = Fixture::new(backend).await;
    let rw = fx.locks.rw_lock(&key);
    let reader = rw.try_read().await.unwrap();
    assert_locked(rw.try_write().await, "a writer with a reader in");
    let short = AcquireOptions::new().wait(Duration::from_millis(200));
    assert_locked(rw.write_with(short).await, "a writer waiting 200 ms");
    reader.release().await.unwrap();
    let writer = rw.try_write().await.unwrap();
    writer.release().await.unwrap();
}

async fn a_reader_is_refused_while_a_writer_holds(backend: Backend, key: String) {
    let fx = Fixture::new(backend).await;
    let rw = fx.locks.rw_lock(&key);
    let writer = rw.try_write().await.unwrap();
    assert_locked(rw.try_read().await, "a reader with a writer in");
    assert_locked(rw.try_write().await, "a second writer");
    let status = rw.status().await.unwrap();
    assert_eq!((status.readers, status.writer), (0, true));
    writer.release().await.unwrap();
    let reader = rw.try_read().await.unwrap();
    reader.release().await.unwrap();
    assert!(!rw.status().await.unwrap().writer);
}

/// No writer starvation: once a writer waits, readers that come after it wait behind it, and
/// the writer is woken when the last reader ahead of it leaves.
async fn a_waiting_writer_holds_back_new_readers_and_is_woken_when_the_readers_leave(
    backend: Backend,
    key: String,
) {
    let fx = Fixture::new(backend).await;
    let rw = fx.locks.rw_lock(&key);
    let first = rw.try_read().await.unwrap();
    let second = rw.try_read().await.unwrap();
    let writer = spawn_write(&fx.other_client().await.rw_lock(&key), woken_only());
    wait_for_waiters(&rw, 1).await;
    assert_locked(rw.try_read().await, "a new reader while a writer waits");

    // One reader left: the writer still waits, and is not woken for nothing.
    first.release().await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!writer.is_finished());
    assert_locked(rw.try_read().await, "a new reader while a writer waits");

    let released = Instant::now();
    second.release().await.unwrap();
    let writing = writer.await.unwrap().unwrap();
    let took = released.elapsed();
    assert!(
        took < WOKEN_WITHIN,
        "{backend:?}: the writer took {took:?} after the last reader left"
    );
    let status = rw.status().await.unwrap();
    assert_eq!(
        (status.readers, status.writer, status.waiters),
        (0, true, 0)
    );
    writing.release().await.unwrap();
}

/// A writer's release lets in every reader waiting behind it at once (each woken, none left
/// to its backoff), up to the next writer in line.
async fn the_readers_behind_a_writer_are_woken_together(backend: Backend, key: String) {
    let fx = Fixture::new(backend).await;
    let rw = fx.locks.rw_lock(&key);
    let writer = rw.try_write().await.unwrap();
    let others = fx.other_client().await.rw_lock(&key);
    let mut readers = Vec::new();
    for n in 1..=3 {
        readers.push(spawn_read(&others, woken_only()));
        wait_for_waiters(&rw, n).await;
    }
    let next_writer = spawn_write(&others, woken_only());
    wait_for_waiters(&rw, 4).await;
    let late_reader = spawn_read(&others, woken_only());
    wait_for_waiters(&rw, 5).await;

    let released = Instant::now();
    writer.release().await.unwrap();
    let mut reading = Vec::new();
    for reader in readers {
        reading.push(reader.await.unwrap().unwrap());
    }
    let took = released.elapsed();
    assert!(
        took < WOKEN_WITHIN,
        "{backend:?}: the readers took {took:?}"
    );
    // The next writer waits for them, and the reader behind it waits for it.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!next_writer.is_finished());
    assert!(!late_reader.is_finished());
    let status = rw.status().await.unwrap();
    assert_eq!(
        (status.readers, status.writer, status.waiters),
        (3, false, 2)
    );

    for guard in reading {
        guard.release().await.unwrap();
    }
    let writing = next_writer.await.unwrap().unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!late_reader.is_finished());
    writing.release().await.unwrap();
    late_reader.await.unwrap().unwrap().release().await.unwrap();
}

async fn writers_fencing_tokens_strictly_increase(backend: Backend, key: String) {
    let fx = Fixture::new(backend).await;
    let rw = fx.locks.rw_lock(&key);
    let other = fx.other_client().await.rw_lock(&key);
    let fenced = || AcquireOptions::new().fencing(true);
    let mut last = 0;
    for round in 0..5 {
        let handle = if round % 2 == 0 { &rw } else { &other };
        let writer = if round == 2 {
            handle.write_with(fenced()).await.unwrap()
        } else {
            handle.try_write_with(fenced()).await.unwrap()
        };
        let token = writer.fencing_token().expect("asked for one");
        assert!(token > last, "{token} after {last}");
        assert_eq!(rw.status().await.unwrap().fencing_counter, Some(token));
        last = token;
        writer.release().await.unwrap();
        // A reader in between draws none.
        let reader = rw.try_read().await.unwrap();
        assert_eq!(reader.fencing_token(), None);
        reader.release().await.unwrap();
    }
    // A writer that asked for none gets none, and the counter stays.
    let writer = rw.try_write().await.unwrap();
    assert_eq!(writer.fencing_token(), None);
    assert_eq!(rw.status().await.unwrap().fencing_counter, Some(last));
    writer.release().await.unwrap();
}

#[tokio::test]
async fn a_fencing_token_for_a_read_is_invalid_input() {
    let fx = Fixture::new(Backend::Redis).await;
    let key = unique_key("read-fence");
    let rw = fx.locks.rw_lock(&key);
    for result in [
        rw.try_read_with(AcquireOptions::new().fencing(true)).await,
        rw.read_with(AcquireOptions::new().fencing(true)).await,
        rw.try_write_with(AcquireOptions::new().permits(2)).await,
    ] {
        match result {
            Err(err @ LockError::InvalidInput(InvalidInput::Setting { .. })) => {
                assert_eq!(err.code(), 400);
            }
            other => panic!("expected InvalidInput, got {other:?}"),
        }
    }
    let mut raw = fx.raw().unwrap();
    let exists: bool = raw.exists(&key).await.unwrap();
    assert!(!exists, "nothing was sent");
}

async fn status_shows_readers_writer_and_waiters(backend: Backend, key: String) {
    let fx = Fixture::new(backend).await;
    let rw = fx.locks.rw_lock(&key);
    let status = rw.status().await.unwrap();
    assert_eq!(
        (status.readers, status.writer, status.waiters, status.ttl),
        (0, false, 0, None)
    );
    let reader = rw.try_read().await.unwrap();
    let writer = spawn_write(&rw, woken_only());
    wait_for_waiters(&rw, 1).await;
    let reader_behind = spawn_read(&fx.other_client().await.rw_lock(&key), woken_only());
    wait_for_waiters(&rw, 2).await;
    let status = rw.status().await.unwrap();
    assert_eq!(
        (status.readers, status.writer, status.waiters),
        (1, false, 2)
    );
    let ttl = status.ttl.expect("a reader holds");
    assert!(ttl > Duration::from_secs(8), "{ttl:?}");
    // Registrations: the writer's and the reader's, in arrival order.
    let mut raw = fx.raw().unwrap();
    let queue: Vec<String> = raw.zrange(companion(&key, "queue"), 0, -1).await.unwrap();
    assert_eq!(queue.len(), 2, "{queue:?}");
    assert!(queue[0].ends_with("|x|0"), "{queue:?}");
    assert!(queue[1].ends_with(&format!("|1|{}", u32::MAX)), "{queue:?}");

    reader.release().await.unwrap();
    let writing = writer.await.unwrap().unwrap();
    let status = rw.status().await.unwrap();
    assert_eq!(
        (status.readers, status.writer, status.waiters),
        (0, true, 1)
    );
    writing.release().await.unwrap();
    let reading = reader_behind.await.unwrap().unwrap();
    let status = rw.status().await.unwrap();
    assert_eq!(
        (status.readers, status.writer, status.waiters),
        (1, false, 0)
    );
    reading.release().await.unwrap();
}

/// A mutex, a semaphore and a read-write lock at one key: the key's type tells them apart (a
/// semaphore and a read-write lock are both lease sets, so those two share one).
#[tokio::test]
async fn a_lock_at_the_key_is_wrong_type() {
    let fx = Fixture::new(Backend::Redis).await;
    let key = unique_key("rw-mutex");
    let lock = fx.locks.try_acquire(&key).await.unwrap();
    let rw = fx.locks.rw_lock(&key);
    for result in [rw.try_read().await, rw.try_write().await] {
        match result {
            Err(LockError::WrongType { found, .. }) => assert_eq!(found, "string"),
            other => panic!("expected WrongType, got {other:?}"),
        }
    }
    assert!(matches!(
        rw.status().await,
        Err(LockError::WrongType { .. })
    ));
    lock.release().await.unwrap();
}
