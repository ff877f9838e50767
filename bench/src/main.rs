//! Benchmark of `ac-redislock` against the same Redis commands sent raw and against the
//! `rslock` crate, all on one private `redis-server` (unix socket, no persistence) that this
//! program starts itself; it measures what issue 15 asks, in one run, with every ratio taken
//! within the run.
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
//!    from 1 task and from [`CONCURRENT_TASKS`] tasks sharing one client, for:
//!    - *raw*: `SET key token NX PX 10000` then the library's release script
//!      (`lib/lua/release_head.lua` + `prelude.lua` + `release.lua`) through `redis::Script::invoke_async` on a
//!      `MultiplexedConnection`, with keys: the lock key, its `waiters`, `fence` and `holder`
//!      companions, and arguments: the token, 200 (what the library sends; a script that takes
//!      fewer ignores the rest). No lock logic at all: the baseline of the ratios, which so measure what the
//!      library adds on the client;
//!    - *raw, plain compare-and-delete*: the same with the textbook one-line compare-and-delete
//!      script instead, for reference (it cannot hand a lock to a waiter);
//!    - *ours*, guard API (`try_acquire` then `LockGuard::release`) and seed API (`lock_key`
//!      then `release_lock` with the value), each on `RedisLock::from_url(url)` (the client as
//!      users build it, a `ConnectionManager` inside) and on `RedisLock::new(conn)` with a
//!      `MultiplexedConnection`;
//!    - *rslock* on its default settings (`LockManager::new` with the server URL, `lock` then
//!      `unlock`); it opens its own multiplexed connection, shared by the clones of one manager.
//!
//!    For each figure also the **client CPU time per pair**: the user + system time of this
//!    process (`getrusage(RUSAGE_SELF)`; the `redis-server` is another process) over the
//!    measured window, divided by the pairs. Ratios: pairs/s ours/raw per row of ours (goal
//!    >= 0.90), client CPU ours/raw, pairs/s ours/rslock.
//! 2. **Contended**, for each of [`CONTENDED_WORKERS`] workers, each with its own client and
//!    connection, looping on one key (acquire, hold ~0 ms, release):
//!    - *ours*: `RedisLock::from_url` per worker, `acquire_with(key, wait 10 s)`, `release()`;
//!    - *raw spin*: a `MultiplexedConnection` per worker, `SET key token NX PX 10000` again and
//!      again without sleeping until it succeeds, then the library's release script as above,
//!      a token per worker;
//!    - *rslock*: a `LockManager` per worker, `lock()` (called again when it gives up),
//!      `unlock()`.
//!
//!    Figures: acquisitions per second; takeover latency (from the holder calling release to
//!    the next holder's acquire returning; p50 and p99, over all grants and over grants to
//!    another worker); wait (from a worker starting its acquire attempt to its grant; p50, p99,
//!    max); per-worker grants (min, max, min/max); the share of grants that went to another
//!    worker; the grants that went back to the releasing worker while another worker's attempt,
//!    started before that release, was in progress; client CPU per grant; Redis commands per
//!    grant from `INFO commandstats` after `CONFIG RESETSTAT` (scripts, `PUBLISH`, `SET` calls,
//!    failed `SET NX` where every `SET` is an attempt, all commands including those inside
//!    scripts); errors and keys left.
//!
//! Then the goals (met / MISSED) per runtime, and all of them side by side at the end.
//!
//! Each uncontended figure is the median of [`ROUNDS`] rounds of [`MEASURE_ROUND`], each after a
//! [`WARMUP`], with the implementations interleaved (a different order each round); ratios are
//! the medians of per-round ratios. Each contended figure is one measurement of [`MEASURE`]
//! after a [`WARMUP`], the implementations one after another for each worker count. The whole
//! run takes about five minutes. The figures depend on the machine and on whatever else runs on
//! it: they are indicative, not a CI gate.
//!
//! While working on one side, `BENCH_ONLY=uncontended` or `BENCH_ONLY=contended` runs only
//! that part (the goal lines of the other part then read "-").

mod contended;
mod report;
mod uncontended;

use ac_redislock_bench::{cpu, stats};

use std::process::Command;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use ac_redislock_testsupport::{companion, server};

use crate::contended::{ContendedImpl, contended};
use crate::report::{RuntimeReport, render, render_summary};
use crate::uncontended::{Impl, Pairer, Throughput, count_keys, keys_left, round_tag, uncontended};

/// Time each measurement runs before it is measured (connections open, scripts load, tasks
/// start).
const WARMUP: Duration = Duration::from_millis(300);
/// Time each contended figure is measured for.
const MEASURE: Duration = Duration::from_secs(2);
/// Rounds of each uncontended figure, the implementations interleaved (a different order each
/// round), so that a burst of load from elsewhere does not land on one implementation only.
const ROUNDS: usize = 9;
/// Time each uncontended round is measured for.
const MEASURE_ROUND: Duration = Duration::from_secs(1);
/// Tasks sharing one client in the concurrent uncontended case (the issue's table uses 50).
const CONCURRENT_TASKS: usize = 50;
/// Keys each uncontended task rotates over (its own, so no two tasks ever meet on a key).
const KEYS_PER_TASK: usize = 16;
/// Worker counts fighting for one key in the contended case.
const CONTENDED_WORKERS: [usize; 2] = [8, 64];
/// How long a contended worker may still take to finish once the measurement is over.
const STOP_GRACE: Duration = Duration::from_secs(15);
/// The lock lifetime everywhere: 10 s, the library's default.
const TTL: Duration = Duration::from_secs(10);
/// The reservation a release gives the waiter it hands the lock to, in ms: the library's
/// second argument to its release script.
const RELEASE_RESERVATION_MS: u64 = 200;
/// The version of rslock in bench/Cargo.toml, for the output.
const RSLOCK: &str = "rslock 0.10";

/// The library's release script, sent raw: as the library sends it, with its prelude.
static LIB_RELEASE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(concat!(
        include_str!("../../lib/lua/release_head.lua"),
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

/// The library's release script for `key` held with `token`, with the keys and arguments the
/// library sends: keys the lock key, `companion(key, "waiters")`, `companion(key, "fence")`;
/// arguments the token and [`RELEASE_RESERVATION_MS`].
fn lib_release(key: &str, token: &str) -> redis::ScriptInvocation<'static> {
    let mut invocation = LIB_RELEASE.key(key);
    invocation
        .key(companion(key, "waiters"))
        .key(companion(key, "fence"))
        .key(companion(key, "holder"))
        .arg(token)
        .arg(RELEASE_RESERVATION_MS);
    invocation
}

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

/// Nearest-rank percentile of sorted samples.
fn percentile(sorted: &[Duration], p: f64) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// Runs every measurement on one runtime.
async fn run_runtime(flavor: Flavor, url: String) -> Result<RuntimeReport, String> {
    let client = redis::Client::open(url.as_str()).map_err(|e| e.to_string())?;
    let admin = client
        .get_multiplexed_async_connection()
        .await
        .map_err(|e| e.to_string())?;
    let mut uncontended_rows: Vec<(Impl, Throughput, Throughput)> = Impl::ALL
        .iter()
        .map(|which| (*which, Throughput::default(), Throughput::default()))
        .collect();
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    let uncontended_columns: &[usize] = if only == "contended" {
        &[]
    } else {
        &[1, CONCURRENT_TASKS]
    };
    for (column, &tasks) in uncontended_columns.iter().enumerate() {
        // Each implementation gets a client of its own for this column, kept over the rounds
        // (raw and RedisLock::new: a multiplexed connection; from_url and rslock open theirs).
        let mut pairers = Vec::with_capacity(Impl::ALL.len());
        for which in Impl::ALL {
            pairers.push((which, Pairer::new(which, &client, &url).await?));
        }
        for round in 0..ROUNDS {
            for i in 0..pairers.len() {
                let (which, pairer) = &pairers[(i + round) % pairers.len()];
                let tag = round_tag(flavor.tag(), *which, tasks, round);
                eprintln!(
                    "  [{}] uncontended {} x{tasks}, round {}",
                    flavor.tag(),
                    which.name(),
                    round + 1
                );
                let result = uncontended(pairer.clone(), tasks, &tag).await;
                let left = keys_left(&admin, &tag).await;
                if let Some(row) = uncontended_rows.iter_mut().find(|row| row.0 == *which) {
                    let cell = if column == 0 { &mut row.1 } else { &mut row.2 };
                    cell.add(result, left);
                }
            }
        }
    }
    let mut contended_results = Vec::new();
    let contended_workers: &[usize] = if only == "uncontended" {
        &[]
    } else {
        &CONTENDED_WORKERS
    };
    for &workers in contended_workers {
        let mut results = Vec::new();
        for which in ContendedImpl::ALL {
            eprintln!("  [{}] contended {} x{workers}", flavor.tag(), which.name());
            let key = format!("bench:c:{}:{}:{workers}", flavor.tag(), which.tag());
            results.push((which, contended(which, workers, &url, &key, &admin).await));
        }
        contended_results.push((workers, results));
    }
    Ok(RuntimeReport {
        flavor,
        uncontended: uncontended_rows,
        contended: contended_results,
        keys_left: count_keys(&admin, "*").await,
    })
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
    if !reports.is_empty() {
        print!("{}", render_summary(&reports));
    }
    println!("\ntotal run time: {:.1} s", started.elapsed().as_secs_f64());
    if failed || reports.is_empty() {
        std::process::ExitCode::FAILURE
    } else {
        std::process::ExitCode::SUCCESS
    }
}
