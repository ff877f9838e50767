//! The uncontended test: lock + release pairs, each task rotating over keys of its own.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Instant;

use ac_redislock::{LockParams, RedisLock, ReleaseParams};
use redis::Value;
use redis::aio::MultiplexedConnection;

use crate::cpu;
use crate::{
    KEYS_PER_TASK, MEASURE_ROUND, PHASE_MEASURE, PHASE_STOP, PHASE_WARMUP, RAW_RELEASE, TTL,
    WARMUP, lib_release,
};

/// The fixed value of the raw baseline (its keys are its own: no one else ever meets it).
const RAW_TOKEN: &str = "bench-raw-token-0123456789abcdef01234567";

/// The implementations of the uncontended test, in the order of the tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Impl {
    Raw,
    RawPlain,
    OursUrl,
    OursSeedUrl,
    Ours,
    OursSeed,
    Rslock,
    Permit,
    Read,
    Write,
    Multi,
}

impl Impl {
    pub(crate) const ALL: [Self; 11] = [
        Self::Raw,
        Self::RawPlain,
        Self::OursUrl,
        Self::OursSeedUrl,
        Self::Ours,
        Self::OursSeed,
        Self::Rslock,
        Self::Permit,
        Self::Read,
        Self::Write,
        Self::Multi,
    ];

    /// The other primitives, each measured against the lock's guard API (from_url).
    pub(crate) const PRIMITIVES: [Self; 4] = [Self::Permit, Self::Read, Self::Write, Self::Multi];

    /// The rows of ours, each measured against raw (and rslock).
    pub(crate) const OURS: [Self; 4] =
        [Self::OursUrl, Self::OursSeedUrl, Self::Ours, Self::OursSeed];

    /// The row's label (at most 40 characters).
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Raw => "raw (SET NX PX + release.lua)",
            Self::RawPlain => "raw, plain compare-and-delete",
            Self::OursUrl => "ours, guard API, from_url",
            Self::OursSeedUrl => "ours, seed API, from_url",
            Self::Ours => "ours, guard API, new(multiplexed conn)",
            Self::OursSeed => "ours, seed API, new(multiplexed conn)",
            Self::Rslock => "rslock (default settings)",
            Self::Permit => "semaphore permit (limit 3), from_url",
            Self::Read => "read-write lock, read hold, from_url",
            Self::Write => "read-write lock, write hold, from_url",
            Self::Multi => "acquire_all, 2 keys, from_url",
        }
    }

    /// The row's label without `ours, `, for the goals.
    pub(crate) fn short_name(self) -> &'static str {
        let name = self.name();
        name.strip_prefix("ours, ").unwrap_or(name)
    }

    /// The part of its keys' names that tells the implementation.
    fn tag(self) -> &'static str {
        match self {
            Self::Raw => "raw",
            Self::RawPlain => "rawcad",
            Self::OursUrl => "ours-url",
            Self::OursSeedUrl => "seed-url",
            Self::Ours => "ours",
            Self::OursSeed => "seed",
            Self::Rslock => "rslock",
            Self::Permit => "sem",
            Self::Read => "read",
            Self::Write => "write",
            Self::Multi => "multi",
        }
    }
}

/// One implementation, ready to do lock + release pairs; clones share its connection.
#[derive(Clone)]
pub(crate) enum Pairer {
    /// The raw commands on a multiplexed connection; `true` for the library's release script,
    /// `false` for the plain compare-and-delete.
    Raw(MultiplexedConnection, bool),
    /// Ours, guard API: `try_acquire` then `LockGuard::release`.
    Guard(RedisLock),
    /// Ours, seed API: `lock_key` then `release_lock` with the value.
    Seed(RedisLock),
    Rslock(rslock::LockManager),
    /// Ours, another primitive, guard API on a `from_url` client.
    Primitive(Impl, RedisLock),
}

impl Pairer {
    /// Builds `which`: raw and `RedisLock::new` on a multiplexed connection of their own from
    /// `client`; `RedisLock::from_url` and rslock open theirs from `url`. Must run inside the
    /// Tokio runtime it is used on.
    pub(crate) async fn new(
        which: Impl,
        client: &redis::Client,
        url: &str,
    ) -> Result<Self, String> {
        let conn = || async {
            client
                .get_multiplexed_async_connection()
                .await
                .map_err(|e| format!("connecting for {}: {e}", which.name()))
        };
        let from_url =
            || RedisLock::from_url(url).map_err(|e| format!("from_url for {}: {e}", which.name()));
        Ok(match which {
            Impl::Raw => Self::Raw(conn().await?, true),
            Impl::RawPlain => Self::Raw(conn().await?, false),
            Impl::OursUrl => Self::Guard(from_url()?),
            Impl::OursSeedUrl => Self::Seed(from_url()?),
            Impl::Ours => Self::Guard(RedisLock::new(conn().await?)),
            Impl::OursSeed => Self::Seed(RedisLock::new(conn().await?)),
            Impl::Rslock => Self::Rslock(rslock::LockManager::new(vec![url.to_owned()])),
            Impl::Permit | Impl::Read | Impl::Write | Impl::Multi => {
                Self::Primitive(which, from_url()?)
            }
        })
    }

    /// One lock + release pair on a key no one else uses.
    async fn pair(&self, key: &str) -> Result<(), String> {
        match self {
            Self::Raw(conn, library_script) => {
                let mut conn = conn.clone();
                let set: Value = redis::cmd("SET")
                    .arg(key)
                    .arg(RAW_TOKEN)
                    .arg("NX")
                    .arg("PX")
                    .arg(TTL.as_millis() as u64)
                    .query_async(&mut conn)
                    .await
                    .map_err(|err| err.to_string())?;
                if set == Value::Nil {
                    return Err("SET NX refused".into());
                }
                let deleted: i64 = if *library_script {
                    lib_release(key, RAW_TOKEN).invoke_async(&mut conn).await
                } else {
                    RAW_RELEASE
                        .key(key)
                        .arg(RAW_TOKEN)
                        .invoke_async(&mut conn)
                        .await
                }
                .map_err(|err| err.to_string())?;
                if deleted == 1 {
                    Ok(())
                } else {
                    Err(format!("release script returned {deleted}"))
                }
            }
            Self::Guard(locks) => {
                let guard = locks.try_acquire(key).await.map_err(|e| e.to_string())?;
                guard.release().await.map_err(|e| e.to_string())
            }
            Self::Seed(locks) => {
                let token = locks
                    .lock_key(LockParams::new(key))
                    .await
                    .map_err(|e| e.to_string())?;
                locks
                    .release_lock(ReleaseParams::new(key).value(token))
                    .await
                    .map_err(|e| e.to_string())
            }
            Self::Primitive(which, locks) => {
                let guard = match which {
                    Impl::Permit => locks.semaphore(key, 3).try_acquire().await,
                    Impl::Read => locks.rw_lock(key).try_read().await,
                    Impl::Write => locks.rw_lock(key).try_write().await,
                    _ => {
                        let second = format!("{key}:b");
                        locks.try_acquire_all(&[key, second.as_str()]).await
                    }
                }
                .map_err(|e| e.to_string())?;
                guard.release().await.map_err(|e| e.to_string())
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

pub(crate) use crate::stats::median;

/// The median of the per-round ratios `a[i] / b[i]` (rounds of a and b with the same index ran
/// side by side in time, so the machine's drift between rounds cancels out of each ratio).
pub(crate) fn ratio(a: &[f64], b: &[f64]) -> f64 {
    let ratios: Vec<f64> = a
        .iter()
        .zip(b)
        .filter(|(_, b)| **b > 0.0)
        .map(|(a, b)| a / b)
        .collect();
    median(&ratios)
}

/// `median [min-max]` of `values`, each divided by `scale`, with `decimals`; `-` without values.
fn median_range(values: &[f64], scale: f64, decimals: usize, unit: &str) -> String {
    let min = values.iter().copied().reduce(f64::min);
    let max = values.iter().copied().reduce(f64::max);
    let (Some(min), Some(max)) = (min, max) else {
        return "-".to_owned();
    };
    format!(
        "{:.decimals$}{unit} [{:.decimals$}-{:.decimals$}]",
        median(values) / scale,
        min / scale,
        max / scale
    )
}

/// One uncontended figure: its rounds, and what went wrong in them.
#[derive(Debug, Clone, Default)]
pub(crate) struct Throughput {
    /// Pairs per second, one entry per round.
    pub(crate) rounds: Vec<f64>,
    /// Client CPU microseconds per pair, one entry per round (rounds without pairs left out).
    pub(crate) cpu: Vec<f64>,
    pub(crate) errors: u64,
    pub(crate) first_error: Option<String>,
    /// Lock keys still in Redis after the rounds (all should have been released).
    pub(crate) keys_left: i64,
}

impl Throughput {
    /// Adds a round and the count of its keys left in Redis.
    pub(crate) fn add(&mut self, round: Round, keys_left: Option<i64>) {
        self.rounds.push(round.pairs_per_sec);
        self.cpu.extend(round.cpu_us_per_pair);
        self.errors += round.errors;
        if self.first_error.is_none() {
            self.first_error = round.first_error;
        }
        self.keys_left += keys_left.unwrap_or(0);
    }

    /// `17.8k [15.8-19.6]`: pairs/s, the median and the range of the rounds, in thousands.
    pub(crate) fn cell(&self) -> String {
        median_range(&self.rounds, 1000.0, 1, "k")
    }

    /// `21.4 [19.9-23.0]`: client CPU µs per pair, the median and the range of the rounds.
    pub(crate) fn cpu_cell(&self) -> String {
        median_range(&self.cpu, 1.0, 1, "")
    }
}

/// The result of one uncontended round.
#[derive(Debug, Clone, Default)]
pub(crate) struct Round {
    pairs_per_sec: f64,
    /// Client CPU (user + system of this process) over the measured window, per pair.
    cpu_us_per_pair: Option<f64>,
    errors: u64,
    first_error: Option<String>,
}

/// Runs lock + release pairs from `tasks` tasks for [`WARMUP`] + [`MEASURE_ROUND`], on keys
/// `bench:{tag}:{task}:{j}`.
pub(crate) async fn uncontended(pairer: Pairer, tasks: usize, tag: &str) -> Round {
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
    let (start, cpu_start) = (Instant::now(), cpu::process_cpu());
    tokio::time::sleep(MEASURE_ROUND).await;
    phase.store(PHASE_STOP, Ordering::Relaxed);
    let (elapsed, cpu_used) = (
        start.elapsed(),
        cpu::process_cpu().saturating_sub(cpu_start),
    );
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
    out.cpu_us_per_pair = cpu::micros_per(cpu_used, pairs);
    out
}

/// One uncontended measurement's key prefix: `u:{runtime}:{implementation}:{tasks}:{round}`.
pub(crate) fn round_tag(runtime: &str, which: Impl, tasks: usize, round: usize) -> String {
    format!("u:{runtime}:{}:{tasks}:{round}", which.tag())
}

/// Counts the keys `bench:{tag}:*` still in Redis (all should have been released).
pub(crate) async fn keys_left(conn: &MultiplexedConnection, tag: &str) -> Option<i64> {
    count_keys(conn, &format!("bench:{tag}:*")).await
}

/// Counts the keys matching `pattern`.
pub(crate) async fn count_keys(conn: &MultiplexedConnection, pattern: &str) -> Option<i64> {
    let mut conn = conn.clone();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(pattern)
        .query_async(&mut conn)
        .await
        .ok()?;
    i64::try_from(keys.len()).ok()
}
