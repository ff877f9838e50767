//! Benchmark of `ac-redislock` against the same Redis commands sent raw and against the
//! `rslock` crate, all on one private `redis-server` that this program starts itself.
//!
//! Run it with:
//!
//! ```text
//! cargo run --release -p ac-redislock-bench
//! ```
//!
//! `REDISLOCK_SERVER_BIN` picks another `redis-server` binary, as in the library's tests.
//!
//! What it prints, for a current-thread Tokio runtime and for a multi-thread one with 2
//! workers (both built with `tokio::runtime::Builder`):
//!
//! 1. **Uncontended** lock + release pairs per second, each task rotating over keys of its own,
//!    from 1 task and from 64 tasks sharing one `MultiplexedConnection`, for:
//!    - *ours*: `try_acquire` then `LockGuard::release`;
//!    - *ours (seed API)*: `lock_key` then `release_lock` with the value;
//!    - *raw*: `SET key token NX PX 10000` then the library's release script
//!      (`lib/lua/prelude.lua` + `release.lua`, with the same keys and arguments the library sends) through
//!      `redis::Script::invoke_async`, no lock logic at all: the baseline of the ratio, which
//!      so measures what the library adds on the client;
//!    - *raw, plain compare-and-delete*: the same with the textbook one-line compare-and-delete
//!      script instead, for reference (it cannot hand a lock to a waiter);
//!    - *rslock* on its default settings (`LockManager::new` with the server URL, `lock` then
//!      `unlock`); it opens its own multiplexed connection, shared by the clones of one manager.
//! 2. **Contended**: 8 workers, each with its own client and connection, loop on one key
//!    (acquire, hold ~0 ms, release): acquisitions per second, takeover latency (from the holder
//!    calling release to the next holder's acquire returning; p50 and p99, over all grants and
//!    over grants to another worker), the share of grants that went to another worker, and
//!    per-worker grant counts.
//!
//! Each uncontended figure is the median of [`ROUNDS`] rounds of [`MEASURE_ROUND`], each after a
//! [`WARMUP`], with the implementations interleaved; each contended figure is measured for
//! [`MEASURE`] after a [`WARMUP`]. The whole run takes about three minutes. The figures depend on the
//! machine and on whatever else runs on it: they are indicative, not a CI gate.

use std::fmt::Write as _;
use std::process::Command;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, LazyLock, Mutex, PoisonError};
use std::time::{Duration, Instant};

use ac_redislock::{AcquireOptions, LockError, LockParams, RedisLock, ReleaseParams};
use ac_redislock_testsupport::server;
use redis::Value;
use redis::aio::MultiplexedConnection;

/// Time each measurement runs before it is measured (connections open, scripts load, tasks
/// start).
const WARMUP: Duration = Duration::from_millis(300);
/// Time each contended figure is measured for.
const MEASURE: Duration = Duration::from_secs(2);
/// Rounds of each uncontended figure, the implementations interleaved (a different order each
/// round), so that a burst of load from elsewhere does not land on one implementation only.
const ROUNDS: usize = 7;
/// Time each uncontended round is measured for.
const MEASURE_ROUND: Duration = Duration::from_secs(1);
/// Tasks sharing one multiplexed connection in the concurrent uncontended case.
const CONCURRENT_TASKS: usize = 64;
/// Keys each uncontended task rotates over (its own, so no two tasks ever meet on a key).
const KEYS_PER_TASK: usize = 16;
/// Workers fighting for one key in the contended case.
const CONTENDED_WORKERS: usize = 8;
/// How long a contended worker may still take to finish once the measurement is over.
const STOP_GRACE: Duration = Duration::from_secs(15);
/// The lock lifetime everywhere: 10 s, the library's default.
const TTL: Duration = Duration::from_secs(10);
/// The fixed value of the raw baseline.
const RAW_TOKEN: &str = "bench-raw-token-0123456789abcdef01234567";
/// The version of rslock in bench/Cargo.toml, for the output.
const RSLOCK: &str = "rslock 0.10";

/// The library's release script, sent raw: as the library sends it, with its prelude.
static LIB_RELEASE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(concat!(
        include_str!("../../lib/lua/prelude.lua"),
        include_str!("../../lib/lua/release.lua")
    ))
});

/// The textbook compare-and-delete, for reference.
static RAW_RELEASE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        "if redis.call('get',KEYS[1])==ARGV[1] then return redis.call('del',KEYS[1]) else return 0 end",
    )
});

/// Phases of a measurement, shared by the tasks through an atomic.
const PHASE_WARMUP: u8 = 0;
const PHASE_MEASURE: u8 = 1;
const PHASE_STOP: u8 = 2;

/// The Tokio runtimes measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flavor {
    CurrentThread,
    MultiThread2,
}

impl Flavor {
    fn name(self) -> &'static str {
        match self {
            Self::CurrentThread => "current-thread",
            Self::MultiThread2 => "multi-thread, 2 workers",
        }
    }

    fn tag(self) -> &'static str {
        match self {
            Self::CurrentThread => "ct",
            Self::MultiThread2 => "mt",
        }
    }

    fn runtime(self) -> std::io::Result<tokio::runtime::Runtime> {
        match self {
            Self::CurrentThread => tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build(),
            Self::MultiThread2 => tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build(),
        }
    }
}

/// The implementations of the uncontended test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Impl {
    Raw,
    RawPlain,
    Ours,
    OursSeed,
    Rslock,
}

impl Impl {
    const ALL: [Self; 5] = [
        Self::Raw,
        Self::RawPlain,
        Self::Ours,
        Self::OursSeed,
        Self::Rslock,
    ];

    fn name(self) -> &'static str {
        match self {
            Self::Raw => "raw (SET NX PX + release.lua)",
            Self::RawPlain => "raw, plain compare-and-delete",
            Self::Ours => "ours (try_acquire+release)",
            Self::OursSeed => "ours (seed API)",
            Self::Rslock => "rslock (default settings)",
        }
    }

    fn tag(self) -> &'static str {
        match self {
            Self::Raw => "raw",
            Self::RawPlain => "rawcad",
            Self::Ours => "ours",
            Self::OursSeed => "seed",
            Self::Rslock => "rslock",
        }
    }
}

/// One implementation, ready to do lock + release pairs; clones share its connection.
#[derive(Clone)]
enum Pairer {
    Raw(MultiplexedConnection, &'static redis::Script),
    Ours(RedisLock),
    OursSeed(RedisLock),
    Rslock(rslock::LockManager),
}

impl Pairer {
    /// Builds `which` on `conn` (rslock opens its own connection from `url`).
    fn new(which: Impl, conn: &MultiplexedConnection, url: &str) -> Self {
        match which {
            Impl::Raw => Self::Raw(conn.clone(), &LIB_RELEASE),
            Impl::RawPlain => Self::Raw(conn.clone(), &RAW_RELEASE),
            Impl::Ours => Self::Ours(RedisLock::new(conn.clone())),
            Impl::OursSeed => Self::OursSeed(RedisLock::new(conn.clone())),
            Impl::Rslock => Self::Rslock(rslock::LockManager::new(vec![url.to_owned()])),
        }
    }

    /// One lock + release pair on a key no one else uses.
    async fn pair(&self, key: &str) -> Result<(), String> {
        match self {
            Self::Raw(conn, script) => {
                let mut conn = conn.clone();
                let set: Value = redis::cmd("SET")
                    .arg(key)
                    .arg(RAW_TOKEN)
                    .arg("NX")
                    .arg("PX")
                    .arg(10_000)
                    .query_async(&mut conn)
                    .await
                    .map_err(|err| err.to_string())?;
                if set == Value::Nil {
                    return Err("SET NX refused".into());
                }
                let mut release = script.key(key);
                if std::ptr::eq(*script, &*LIB_RELEASE) {
                    // The keys and arguments the library sends.
                    release
                        .key(ac_redislock_testsupport::companion(key, "waiters"))
                        .arg(RAW_TOKEN)
                        .arg(200)
                        .arg("ac-redislock:released");
                } else {
                    release.arg(RAW_TOKEN);
                }
                let deleted: i64 = release
                    .invoke_async(&mut conn)
                    .await
                    .map_err(|err| err.to_string())?;
                if deleted == 1 {
                    Ok(())
                } else {
                    Err(format!("compare-and-delete returned {deleted}"))
                }
            }
            Self::Ours(locks) => {
                let guard = locks.try_acquire(key).await.map_err(|e| e.to_string())?;
                guard.release().await.map_err(|e| e.to_string())
            }
            Self::OursSeed(locks) => {
                let token = locks
                    .lock_key(LockParams::new(key))
                    .await
                    .map_err(|e| e.to_string())?;
                locks
                    .release_lock(ReleaseParams::new(key).value(token))
                    .await
                    .map_err(|e| e.to_string())
            }
            Self::Rslock(manager) => {
                let lock = manager.lock(key, TTL).await.map_err(|e| e.to_string())?;
                // Best effort, as rslock's own release: it reports nothing.
                manager.unlock(&lock).await;
                Ok(())
            }
        }
    }
}

/// One uncontended figure: its rounds, and what went wrong in them.
#[derive(Debug, Clone, Default)]
struct Throughput {
    /// Pairs per second, one entry per round.
    rounds: Vec<f64>,
    errors: u64,
    first_error: Option<String>,
    /// Lock keys still in Redis after the rounds (all should have been released).
    keys_left: i64,
}

impl Throughput {
    fn add(&mut self, round: Round, keys_left: Option<i64>) {
        self.rounds.push(round.pairs_per_sec);
        self.errors += round.errors;
        if self.first_error.is_none() {
            self.first_error = round.first_error;
        }
        self.keys_left += keys_left.unwrap_or(0);
    }

    fn sorted(&self) -> Vec<f64> {
        let mut rounds = self.rounds.clone();
        rounds.sort_by(f64::total_cmp);
        rounds
    }

    /// The median round (the lower middle one for an even count).
    fn median(&self) -> f64 {
        let sorted = self.sorted();
        sorted
            .get(sorted.len().saturating_sub(1) / 2)
            .copied()
            .unwrap_or(0.0)
    }

    /// `17.8k [15.8-19.6]`: the median and the range of the rounds, in thousands.
    fn cell(&self) -> String {
        let sorted = self.sorted();
        let (Some(min), Some(max)) = (sorted.first(), sorted.last()) else {
            return "-".to_owned();
        };
        format!(
            "{:.1}k [{:.1}-{:.1}]",
            self.median() / 1000.0,
            min / 1000.0,
            max / 1000.0
        )
    }
}

/// The result of one uncontended round.
#[derive(Debug, Clone, Default)]
struct Round {
    pairs_per_sec: f64,
    errors: u64,
    first_error: Option<String>,
}

/// Runs lock + release pairs from `tasks` tasks for [`WARMUP`] + [`MEASURE_ROUND`].
async fn uncontended(pairer: Pairer, tasks: usize, tag: &str) -> Round {
    let phase = Arc::new(AtomicU8::new(PHASE_WARMUP));
    let mut handles = Vec::with_capacity(tasks);
    for task in 0..tasks {
        let keys: Vec<String> = (0..KEYS_PER_TASK)
            .map(|j| format!("bench:{tag}:{task}:{j}"))
            .collect();
        let (pairer, phase) = (pairer.clone(), Arc::clone(&phase));
        handles.push(tokio::spawn(async move {
            let (mut pairs, mut errors, mut first_error) = (0u64, 0u64, None);
            for key in keys.iter().cycle() {
                let result = pairer.pair(key).await;
                match phase.load(Ordering::Relaxed) {
                    PHASE_WARMUP => {}
                    PHASE_MEASURE => match result {
                        Ok(()) => pairs += 1,
                        Err(err) => {
                            errors += 1;
                            first_error.get_or_insert(err);
                        }
                    },
                    _ => break,
                }
            }
            (pairs, errors, first_error)
        }));
    }
    tokio::time::sleep(WARMUP).await;
    phase.store(PHASE_MEASURE, Ordering::Relaxed);
    let start = Instant::now();
    tokio::time::sleep(MEASURE_ROUND).await;
    phase.store(PHASE_STOP, Ordering::Relaxed);
    let elapsed = start.elapsed();
    let mut out = Round::default();
    let mut pairs = 0u64;
    for handle in handles {
        match handle.await {
            Ok((p, e, first)) => {
                pairs += p;
                out.errors += e;
                if out.first_error.is_none() {
                    out.first_error = first;
                }
            }
            Err(err) => {
                out.errors += 1;
                out.first_error.get_or_insert(format!("task failed: {err}"));
            }
        }
    }
    out.pairs_per_sec = pairs as f64 / elapsed.as_secs_f64();
    out
}

/// Counts the keys of one measurement still in Redis (all should have been released).
async fn keys_left(conn: &MultiplexedConnection, tag: &str) -> Option<i64> {
    let mut conn = conn.clone();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("bench:{tag}:*"))
        .query_async(&mut conn)
        .await
        .ok()?;
    i64::try_from(keys.len()).ok()
}

/// What the contended workers record, on one monotonic clock, under one mutex.
#[derive(Debug, Default)]
struct Contention {
    /// When the last holder called release (recorded before the release is sent).
    last_release: Option<Instant>,
    last_holder: Option<usize>,
    /// Takeover latency of each measured grant that followed a release.
    takeovers: Vec<Duration>,
    /// The same, for grants to a worker other than the last holder.
    takeovers_other: Vec<Duration>,
    /// Measured grants, and those that went to another worker than the last holder.
    grants: u64,
    handovers: u64,
    per_worker: Vec<u64>,
    /// Grants in every phase (warm-up and the end included), for the server's command counts.
    all_grants: u64,
    /// How long each measured release call took.
    release_calls: Vec<Duration>,
    /// Waits that ended without the lock (ours: `Locked` after the wait; rslock: `lock()` used
    /// up its retries), and other errors.
    gave_up: u64,
    errors: u64,
    first_error: Option<String>,
}

impl Contention {
    fn new(workers: usize) -> Self {
        Self {
            per_worker: vec![0; workers],
            ..Self::default()
        }
    }

    /// Records a grant to `worker` at `now`, and the start of its release right after (the
    /// lock is held ~0 ms).
    fn granted(&mut self, worker: usize, now: Instant, measuring: bool) {
        self.all_grants += 1;
        if measuring {
            self.grants += 1;
            self.per_worker[worker] += 1;
            let other = self.last_holder.is_some_and(|last| last != worker);
            if other {
                self.handovers += 1;
            }
            if let Some(released) = self.last_release {
                let latency = now.saturating_duration_since(released);
                self.takeovers.push(latency);
                if other {
                    self.takeovers_other.push(latency);
                }
            }
        }
        self.last_holder = Some(worker);
        self.last_release = Some(Instant::now());
    }

    fn failed(&mut self, gave_up: bool, err: String, measuring: bool) {
        if !measuring {
            return;
        }
        if gave_up {
            self.gave_up += 1;
        } else {
            self.errors += 1;
            self.first_error.get_or_insert(err);
        }
    }
}

/// The summary of one contended measurement.
#[derive(Debug, Clone, Default)]
struct ContendedResult {
    acquisitions_per_sec: f64,
    p50: Option<Duration>,
    p99: Option<Duration>,
    p50_other: Option<Duration>,
    p99_other: Option<Duration>,
    handover_share: f64,
    min_worker: u64,
    max_worker: u64,
    release_p50: Option<Duration>,
    gave_up: u64,
    errors: u64,
    first_error: Option<String>,
    stuck_workers: usize,
    /// Server-side cost per grant over the whole run: (scripts run, PUBLISH, all commands
    /// including those inside scripts), from `INFO commandstats`.
    server_per_grant: Option<(f64, f64, f64)>,
}

/// The contended implementations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ContendedImpl {
    Ours,
    Rslock,
}

impl ContendedImpl {
    fn tag(self) -> &'static str {
        match self {
            Self::Ours => "ours",
            Self::Rslock => "rslock",
        }
    }
}

fn lock_state(state: &Mutex<Contention>) -> std::sync::MutexGuard<'_, Contention> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

/// [`CONTENDED_WORKERS`] workers, each with its own client, loop on one key.
async fn contended(
    which: ContendedImpl,
    url: &str,
    key: &str,
    admin: &MultiplexedConnection,
) -> ContendedResult {
    let mut admin = admin.clone();
    let _: redis::RedisResult<Value> = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async(&mut admin)
        .await;
    let state = Arc::new(Mutex::new(Contention::new(CONTENDED_WORKERS)));
    let phase = Arc::new(AtomicU8::new(PHASE_WARMUP));
    let mut handles = Vec::with_capacity(CONTENDED_WORKERS);
    for worker in 0..CONTENDED_WORKERS {
        let (state, phase, key) = (Arc::clone(&state), Arc::clone(&phase), key.to_owned());
        let url = url.to_owned();
        handles.push(tokio::spawn(async move {
            match which {
                ContendedImpl::Ours => ours_worker(worker, &url, &key, &state, &phase).await,
                ContendedImpl::Rslock => rslock_worker(worker, &url, &key, &state, &phase).await,
            }
        }));
    }
    tokio::time::sleep(WARMUP).await;
    phase.store(PHASE_MEASURE, Ordering::Relaxed);
    let start = Instant::now();
    tokio::time::sleep(MEASURE).await;
    phase.store(PHASE_STOP, Ordering::Relaxed);
    let elapsed = start.elapsed();
    let mut stuck_workers = 0;
    let deadline = tokio::time::Instant::now() + STOP_GRACE;
    for handle in handles {
        let abort = handle.abort_handle();
        if tokio::time::timeout_at(deadline, handle).await.is_err() {
            abort.abort();
            stuck_workers += 1;
        }
    }
    let stats = command_stats(&mut admin).await;
    let mut state = lock_state(&state);
    let server_per_grant = stats.filter(|_| state.all_grants > 0).map(|stats| {
        let per = |n: u64| n as f64 / state.all_grants as f64;
        (per(stats.scripts), per(stats.publish), per(stats.all))
    });
    state.takeovers.sort_unstable();
    state.takeovers_other.sort_unstable();
    state.release_calls.sort_unstable();
    ContendedResult {
        acquisitions_per_sec: state.grants as f64 / elapsed.as_secs_f64(),
        p50: percentile(&state.takeovers, 50.0),
        p99: percentile(&state.takeovers, 99.0),
        p50_other: percentile(&state.takeovers_other, 50.0),
        p99_other: percentile(&state.takeovers_other, 99.0),
        handover_share: if state.grants == 0 {
            0.0
        } else {
            state.handovers as f64 / state.grants as f64
        },
        min_worker: state.per_worker.iter().copied().min().unwrap_or(0),
        max_worker: state.per_worker.iter().copied().max().unwrap_or(0),
        release_p50: percentile(&state.release_calls, 50.0),
        gave_up: state.gave_up,
        errors: state.errors,
        first_error: state.first_error.take(),
        stuck_workers,
        server_per_grant,
    }
}

/// Command counts from `INFO commandstats`.
#[derive(Debug, Clone, Copy, Default)]
struct CommandStats {
    /// EVAL and EVALSHA calls.
    scripts: u64,
    publish: u64,
    /// Every command, those run inside scripts included (less INFO and CONFIG).
    all: u64,
}

async fn command_stats(conn: &mut MultiplexedConnection) -> Option<CommandStats> {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(conn)
        .await
        .ok()?;
    let mut stats = CommandStats::default();
    for line in info.lines() {
        // cmdstat_evalsha:calls=2161410,usec=...
        let Some((name, rest)) = line
            .strip_prefix("cmdstat_")
            .and_then(|l| l.split_once(':'))
        else {
            continue;
        };
        let Some(calls) = rest
            .split(',')
            .find_map(|field| field.strip_prefix("calls="))
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        match name {
            "info" | "config|resetstat" | "config" => continue,
            "eval" | "evalsha" => stats.scripts += calls,
            "publish" => stats.publish += calls,
            _ => {}
        }
        stats.all += calls;
    }
    Some(stats)
}

/// A contended worker on its own `RedisLock::from_url` client (release wake-ups over pub/sub).
async fn ours_worker(
    worker: usize,
    url: &str,
    key: &str,
    state: &Mutex<Contention>,
    phase: &AtomicU8,
) {
    let locks = match RedisLock::from_url(url) {
        Ok(locks) => locks,
        Err(err) => {
            lock_state(state).failed(false, err.to_string(), true);
            return;
        }
    };
    // Open the connection before the warm-up ends (the client connects lazily).
    let _ = locks.get_lock(key).await;
    let options = AcquireOptions::new().wait(Duration::from_secs(10));
    loop {
        let measuring = match phase.load(Ordering::Relaxed) {
            PHASE_WARMUP => false,
            PHASE_MEASURE => true,
            _ => break,
        };
        match locks.acquire_with(key, options.clone()).await {
            Ok(guard) => {
                let now = Instant::now();
                let measuring = phase.load(Ordering::Relaxed) == PHASE_MEASURE;
                lock_state(state).granted(worker, now, measuring);
                let sent = Instant::now();
                let released = guard.release().await;
                let took = sent.elapsed();
                let mut state = lock_state(state);
                if measuring {
                    state.release_calls.push(took);
                }
                if let Err(err) = released {
                    state.failed(false, format!("release: {err}"), measuring);
                }
            }
            Err(LockError::Locked { .. }) => {
                lock_state(state).failed(true, String::new(), measuring);
            }
            Err(err) => {
                lock_state(state).failed(false, err.to_string(), measuring);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// A contended worker on its own rslock `LockManager` (default retry: 3 tries, 0-200 ms apart);
/// when `lock()` gives up it is called again.
async fn rslock_worker(
    worker: usize,
    url: &str,
    key: &str,
    state: &Mutex<Contention>,
    phase: &AtomicU8,
) {
    let manager = rslock::LockManager::new(vec![url.to_owned()]);
    // Open the connection before the warm-up ends (the manager connects lazily).
    let _ = manager.query_redis_for_key_value(key.as_bytes()).await;
    loop {
        let measuring = match phase.load(Ordering::Relaxed) {
            PHASE_WARMUP => false,
            PHASE_MEASURE => true,
            _ => break,
        };
        match manager.lock(key, TTL).await {
            Ok(lock) => {
                let now = Instant::now();
                let measuring = phase.load(Ordering::Relaxed) == PHASE_MEASURE;
                lock_state(state).granted(worker, now, measuring);
                let sent = Instant::now();
                manager.unlock(&lock).await;
                let took = sent.elapsed();
                if measuring {
                    lock_state(state).release_calls.push(took);
                }
            }
            Err(rslock::LockError::Unavailable) => {
                lock_state(state).failed(true, String::new(), measuring);
            }
            Err(err) => {
                lock_state(state).failed(false, err.to_string(), measuring);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// Nearest-rank percentile of sorted samples.
fn percentile(sorted: &[Duration], p: f64) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// All the figures of one runtime.
struct RuntimeReport {
    flavor: Flavor,
    /// Per implementation (in [`Impl::ALL`] order): 1 task, 64 tasks.
    uncontended: Vec<(Impl, Throughput, Throughput)>,
    ours: ContendedResult,
    rslock: ContendedResult,
}

/// Runs every measurement on one runtime.
async fn run_runtime(flavor: Flavor, url: String) -> Result<RuntimeReport, String> {
    let client = redis::Client::open(url.as_str()).map_err(|e| e.to_string())?;
    let mut uncontended_rows: Vec<(Impl, Throughput, Throughput)> = Impl::ALL
        .iter()
        .map(|which| (*which, Throughput::default(), Throughput::default()))
        .collect();
    for (column, tasks) in [1, CONCURRENT_TASKS].into_iter().enumerate() {
        // Each implementation gets a multiplexed connection of its own for this column, kept
        // over the rounds: ours and raw run on it; rslock opens its own (the connection here
        // only checks that its keys were released).
        let mut pairers = Vec::with_capacity(Impl::ALL.len());
        for which in Impl::ALL {
            let conn = client
                .get_multiplexed_async_connection()
                .await
                .map_err(|e| e.to_string())?;
            let pairer = Pairer::new(which, &conn, &url);
            pairers.push((which, conn, pairer));
        }
        for round in 0..ROUNDS {
            for i in 0..pairers.len() {
                let (which, conn, pairer) = &pairers[(i + round) % pairers.len()];
                let tag = format!("u:{}:{}:{tasks}:{round}", flavor.tag(), which.tag());
                eprintln!(
                    "  [{}] uncontended {} x{tasks}, round {}",
                    flavor.tag(),
                    which.tag(),
                    round + 1
                );
                let result = uncontended(pairer.clone(), tasks, &tag).await;
                let left = keys_left(conn, &tag).await;
                if let Some(row) = uncontended_rows.iter_mut().find(|row| row.0 == *which) {
                    let cell = if column == 0 { &mut row.1 } else { &mut row.2 };
                    cell.add(result, left);
                }
            }
        }
    }
    let admin = client
        .get_multiplexed_async_connection()
        .await
        .map_err(|e| e.to_string())?;
    let mut contended_results = Vec::new();
    for which in [ContendedImpl::Ours, ContendedImpl::Rslock] {
        eprintln!("  [{}] contended {}", flavor.tag(), which.tag());
        let key = format!("bench:c:{}:{}", flavor.tag(), which.tag());
        contended_results.push(contended(which, &url, &key, &admin).await);
    }
    let rslock = contended_results.pop().unwrap_or_default();
    let ours = contended_results.pop().unwrap_or_default();
    Ok(RuntimeReport {
        flavor,
        uncontended: uncontended_rows,
        ours,
        rslock,
    })
}

/// `12,345`
fn thousands(value: f64) -> String {
    let n = value.round() as u64;
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `0.412 ms`, or `-` without samples.
fn ms(value: Option<Duration>) -> String {
    value.map_or_else(
        || "-".to_owned(),
        |d| format!("{:.3} ms", d.as_secs_f64() * 1000.0),
    )
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "MISSED" }
}

/// The table of one runtime.
fn render(report: &RuntimeReport) -> String {
    let mut out = String::new();
    let find = |which: Impl| {
        report
            .uncontended
            .iter()
            .find(|(w, _, _)| *w == which)
            .map(|(_, one, many)| (one.clone(), many.clone()))
            .unwrap_or_default()
    };
    let (raw1, raw64) = find(Impl::Raw);
    let (ours1, ours64) = find(Impl::Ours);
    let (seed1, seed64) = find(Impl::OursSeed);
    let (rs1, rs64) = find(Impl::Rslock);
    let _ = writeln!(
        out,
        "\n=== Tokio runtime: {} ===================================================",
        report.flavor.name()
    );
    let _ = writeln!(
        out,
        "\n1. Uncontended lock+release pairs/s: median [min-max] of {ROUNDS} rounds of {:.1} s (each after {:.1} s\n   warm-up), implementations interleaved; each task rotates over {KEYS_PER_TASK} keys of its own",
        MEASURE_ROUND.as_secs_f64(),
        WARMUP.as_secs_f64()
    );
    let _ = writeln!(
        out,
        "   {:<40} | {:>22} | {:>22}",
        "implementation", "1 task", "64 tasks, 1 connection"
    );
    let _ = writeln!(out, "   {:-<40}-+-{:->22}-+-{:->22}", "", "", "");
    for (which, one, many) in &report.uncontended {
        let _ = writeln!(
            out,
            "   {:<40} | {:>22} | {:>22}",
            which.name(),
            one.cell(),
            many.cell()
        );
    }
    // Rounds of different implementations that ran side by side in time are paired, and the
    // median of the per-round ratios is reported: the machine's drift between rounds (other
    // services, CPU steal) cancels out of each pair.
    let ratio = |a: &Throughput, b: &Throughput| {
        let mut ratios: Vec<f64> = a
            .rounds
            .iter()
            .zip(&b.rounds)
            .filter(|(_, b)| **b > 0.0)
            .map(|(a, b)| a / b)
            .collect();
        ratios.sort_by(f64::total_cmp);
        ratios
            .get(ratios.len().saturating_sub(1) / 2)
            .copied()
            .unwrap_or(0.0)
    };
    let _ = writeln!(out, "   {:-<40}-+-{:->22}-+-{:->22}", "", "", "");
    let (r1, r64) = (ratio(&ours1, &raw1), ratio(&ours64, &raw64));
    let _ = writeln!(
        out,
        "   {:<40} | {:>22} | {:>22}",
        "ratio ours/raw (goal >= 0.90)",
        format!("{r1:.2} {}", verdict(r1 >= 0.9)),
        format!("{r64:.2} {}", verdict(r64 >= 0.9))
    );
    let (s1, s64) = (ratio(&seed1, &raw1), ratio(&seed64, &raw64));
    let _ = writeln!(
        out,
        "   {:<40} | {:>22} | {:>22}",
        "ratio ours (seed API)/raw",
        format!("{s1:.2} {}", verdict(s1 >= 0.9)),
        format!("{s64:.2} {}", verdict(s64 >= 0.9))
    );
    let (v1, v64) = (ratio(&ours1, &rs1), ratio(&ours64, &rs64));
    let _ = writeln!(
        out,
        "   {:<40} | {:>22} | {:>22}",
        "ours/rslock (goal > 1: ahead)",
        format!("{v1:.2} {}", verdict(v1 > 1.0)),
        format!("{v64:.2} {}", verdict(v64 > 1.0))
    );
    for (which, one, many) in &report.uncontended {
        for (label, t) in [("1 task", one), ("64 tasks", many)] {
            if t.errors > 0 {
                let _ = writeln!(
                    out,
                    "   ! {} ({label}): {} failed pairs, first: {}",
                    which.name(),
                    t.errors,
                    t.first_error.as_deref().unwrap_or("?")
                );
            }
            if t.keys_left != 0 {
                let _ = writeln!(
                    out,
                    "   ! {} ({label}): {} lock keys left in Redis after the rounds",
                    which.name(),
                    t.keys_left
                );
            }
        }
    }
    let _ = writeln!(
        out,
        "   ours and raw run on the MultiplexedConnection given (RedisLock::new(conn.clone())); {RSLOCK}\n   opens its own multiplexed connection (LockManager::new with the URL, shared by the manager's\n   clones), which is its default behaviour. Key expiry 10 s everywhere. Ratios are the median of\n   per-round ratios (the implementations of a round run one after another, so drift cancels)."
    );

    let _ = writeln!(
        out,
        "\n2. Contended: {CONTENDED_WORKERS} workers, each with its own client and connection, one key, hold ~0 ms ({:.1} s after {:.1} s warm-up)",
        MEASURE.as_secs_f64(),
        WARMUP.as_secs_f64()
    );
    let (o, r) = (&report.ours, &report.rslock);
    let _ = writeln!(out, "   {:<48} | {:>22} | {:>22}", "", "ours", "rslock");
    let _ = writeln!(out, "   {:-<48}-+-{:->22}-+-{:->22}", "", "", "");
    let row = |out: &mut String, label: &str, a: String, b: String| {
        let _ = writeln!(out, "   {label:<48} | {a:>22} | {b:>22}");
    };
    row(
        &mut out,
        "acquisitions/s",
        thousands(o.acquisitions_per_sec),
        thousands(r.acquisitions_per_sec),
    );
    row(
        &mut out,
        "takeover p50, all grants (goal < 1 ms)",
        format!(
            "{} {}",
            ms(o.p50),
            verdict(o.p50.is_some_and(|d| d < Duration::from_millis(1)))
        ),
        ms(r.p50),
    );
    row(&mut out, "takeover p99, all grants", ms(o.p99), ms(r.p99));
    row(
        &mut out,
        "takeover p50, grants to another worker",
        ms(o.p50_other),
        ms(r.p50_other),
    );
    row(
        &mut out,
        "takeover p99, grants to another worker",
        ms(o.p99_other),
        ms(r.p99_other),
    );
    row(
        &mut out,
        "grants to another worker than the last holder",
        format!("{:.1} %", o.handover_share * 100.0),
        format!("{:.1} %", r.handover_share * 100.0),
    );
    row(
        &mut out,
        "per-worker grants min / max (goal min >= max/2)",
        format!(
            "{} / {} {}",
            o.min_worker,
            o.max_worker,
            verdict(o.max_worker > 0 && o.min_worker * 2 >= o.max_worker)
        ),
        format!("{} / {}", r.min_worker, r.max_worker),
    );
    row(
        &mut out,
        "release call p50 (part of the takeover)",
        ms(o.release_p50),
        ms(r.release_p50),
    );
    row(
        &mut out,
        "waits given up (ours: 10 s wait; rslock: lock)",
        o.gave_up.to_string(),
        r.gave_up.to_string(),
    );
    row(
        &mut out,
        "errors",
        o.errors.to_string(),
        r.errors.to_string(),
    );
    let server = |c: &ContendedResult, pick: fn((f64, f64, f64)) -> f64| {
        c.server_per_grant
            .map_or_else(|| "-".to_owned(), |v| format!("{:.1}", pick(v)))
    };
    row(
        &mut out,
        "Redis: scripts run per grant",
        server(o, |v| v.0),
        server(r, |v| v.0),
    );
    row(
        &mut out,
        "Redis: PUBLISH per grant",
        server(o, |v| v.1),
        server(r, |v| v.1),
    );
    row(
        &mut out,
        "Redis: commands per grant (incl. inside scripts)",
        server(o, |v| v.2),
        server(r, |v| v.2),
    );
    for (name, c) in [("ours", o), ("rslock", r)] {
        if let Some(err) = &c.first_error {
            let _ = writeln!(out, "   ! {name}: first error: {err}");
        }
        if c.stuck_workers > 0 {
            let _ = writeln!(
                out,
                "   ! {name}: {} workers had not stopped {} s after the end; aborted",
                c.stuck_workers,
                STOP_GRACE.as_secs()
            );
        }
    }
    let _ = writeln!(
        out,
        "   takeover = from the holder calling release() to the next holder's acquire returning (one\n   Instant clock, recorded under one mutex); it includes the release round trip.\n   ours: RedisLock::from_url per worker (wake-ups over pub/sub), acquire_with(wait 10 s), release().\n   rslock: LockManager::new per worker, lock() (default: 3 tries, random 0-200 ms sleeps; called\n   again when it gives up), unlock()."
    );
    out
}

/// Machine, CPU and server, for the top of the output.
fn machine() -> String {
    let nproc = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, model)| model.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned());
    let redis = Command::new(server::server_bin())
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|err| format!("unknown ({err})"));
    let load = std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.trim().to_owned())
        .unwrap_or_default();
    format!(
        "machine: nproc {nproc}; CPU {cpu}\nredis:   {redis}\nload:    {load} (/proc/loadavg at start)\n"
    )
}

fn main() -> std::process::ExitCode {
    let started = Instant::now();
    print!("ac-redislock benchmark\n{}", machine());
    let server = match server::RedisServer::try_start(server::Listen::Unix, &[], None) {
        Ok(server) => server,
        Err(err) => {
            eprintln!(
                "could not start {}: {err} (install redis-server or set REDISLOCK_SERVER_BIN)",
                server::server_bin()
            );
            return std::process::ExitCode::FAILURE;
        }
    };
    let url = server.url();
    println!(
        "server:  one private redis-server (pid {}), unix socket, no persistence; all implementations\n         and both runtimes run against it",
        server.pid().unwrap_or(0)
    );
    let mut failed = false;
    let mut reports = Vec::new();
    for flavor in [Flavor::CurrentThread, Flavor::MultiThread2] {
        eprintln!("running on the {} runtime ...", flavor.name());
        let runtime = match flavor.runtime() {
            Ok(runtime) => runtime,
            Err(err) => {
                eprintln!("could not build the {} runtime: {err}", flavor.name());
                failed = true;
                continue;
            }
        };
        match runtime.block_on(run_runtime(flavor, url.clone())) {
            Ok(report) => {
                print!("{}", render(&report));
                reports.push(report);
            }
            Err(err) => {
                eprintln!("{} runtime: {err}", flavor.name());
                failed = true;
            }
        }
        // Ends the tasks left (subscribers, connection drivers) before the next runtime.
        runtime.shutdown_timeout(Duration::from_secs(1));
    }
    drop(server);
    println!("\ntotal run time: {:.1} s", started.elapsed().as_secs_f64());
    if failed || reports.is_empty() {
        std::process::ExitCode::FAILURE
    } else {
        std::process::ExitCode::SUCCESS
    }
}
