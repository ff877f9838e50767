//! Heap allocations per lock + release pair, from 50 tasks on one client (multi-thread runtime,
//! 2 workers), for the raw commands, the seed API and the guard API: the client-side cost
//! that the pairs/s figures of the benchmark do not show by themselves.
//!
//! ```text
//! cargo run --release -p ac-redislock-bench --example allocations
//! ```
//!
//! Every allocation (and reallocation) of the process is counted by a wrapper around the
//! system allocator, over 3 s after a 1 s warm-up; redis-server is another process.
#![allow(
    unsafe_code,
    reason = "a counting GlobalAlloc must implement an unsafe trait; it only forwards to System"
)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use ac_redislock::{LockParams, RedisLock, ReleaseParams};
use ac_redislock_testsupport::{companion, server};

/// Counts allocations, then lets the system allocator do the work.
struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call is forwarded unchanged to `System`, which upholds the trait's contract.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's guarantees for `layout` are passed on as they are.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: as for `dealloc`; `new_size` is the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const TASKS: usize = 50;

/// The library's release script, as `main.rs` sends it raw.
static RELEASE: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
    redis::Script::new(concat!(
        include_str!("../../lib/lua/prelude.lua"),
        include_str!("../../lib/lua/release.lua")
    ))
});

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Raw,
    Seed,
    Guard,
}

async fn pair(mode: Mode, locks: &RedisLock, conn: &redis::aio::MultiplexedConnection, key: &str) {
    match mode {
        Mode::Raw => {
            let mut conn = conn.clone();
            let set: Option<String> = redis::cmd("SET")
                .arg(key)
                .arg("raw-token")
                .arg("NX")
                .arg("PX")
                .arg(10_000)
                .query_async(&mut conn)
                .await
                .expect("SET");
            assert!(set.is_some(), "SET NX refused");
            let released: i64 = RELEASE
                .key(key)
                .key(companion(key, "waiters"))
                .key(companion(key, "fence"))
                .arg("raw-token")
                .arg(200)
                .invoke_async(&mut conn)
                .await
                .expect("release");
            assert_eq!(released, 1);
        }
        Mode::Seed => {
            let value = locks
                .lock_key(LockParams::new(key))
                .await
                .expect("lock_key");
            locks
                .release_lock(ReleaseParams::new(key).value(value))
                .await
                .expect("release_lock");
        }
        Mode::Guard => {
            let guard = locks.try_acquire(key).await.expect("try_acquire");
            guard.release().await.expect("release");
        }
    }
}

/// Allocations per pair for `mode`, and pairs per second.
async fn measure(mode: Mode, url: &str) -> (f64, f64) {
    let locks = RedisLock::from_url(url).expect("from_url");
    let conn = redis::Client::open(url)
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let stop = Arc::new(AtomicBool::new(false));
    let pairs = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::with_capacity(TASKS);
    for task in 0..TASKS {
        let (locks, conn) = (locks.clone(), conn.clone());
        let (stop, pairs) = (Arc::clone(&stop), Arc::clone(&pairs));
        tasks.push(tokio::spawn(async move {
            let keys: Vec<String> = (0..16).map(|j| format!("alloc:{task}:{j}")).collect();
            for key in keys.iter().cycle() {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                pair(mode, &locks, &conn, key).await;
                pairs.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (allocations, done) = (
        ALLOCATIONS.load(Ordering::Relaxed),
        pairs.load(Ordering::Relaxed),
    );
    let window = Duration::from_secs(3);
    tokio::time::sleep(window).await;
    let allocations = ALLOCATIONS.load(Ordering::Relaxed) - allocations;
    let done = pairs.load(Ordering::Relaxed) - done;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.expect("task");
    }
    let done = done.max(1) as f64;
    (allocations as f64 / done, done / window.as_secs_f64())
}

fn main() {
    let server = server::RedisServer::try_start(server::Listen::Unix, &[], None)
        .expect("start redis-server (install it or set REDISLOCK_SERVER_BIN)");
    let url = server.url();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    println!(
        "allocations per lock + release pair, {TASKS} tasks on one client, multi-thread runtime"
    );
    for (mode, name) in [
        (Mode::Raw, "raw (SET NX PX + release.lua)"),
        (Mode::Seed, "ours, seed API, from_url"),
        (Mode::Guard, "ours, guard API, from_url"),
    ] {
        let (per_pair, rate) = runtime.block_on(measure(mode, &url));
        println!(
            "  {name:<32} {per_pair:>6.1}   ({:.0}k pairs/s)",
            rate / 1000.0
        );
    }
}
