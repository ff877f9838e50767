//! The contended test: workers, each with its own client and connection, loop on one key
//! (acquire, hold ~0 ms, release).

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use ac_redislock::{AcquireOptions, LockError, RedisLock};
use redis::Value;
use redis::aio::MultiplexedConnection;

use crate::cpu;
use crate::uncontended::count_keys;
use crate::{
    MEASURE, PHASE_MEASURE, PHASE_STOP, PHASE_WARMUP, STOP_GRACE, TTL, WARMUP, lib_release,
    percentile,
};

/// How long ours waits in one `acquire_with` call.
const OURS_WAIT: Duration = Duration::from_secs(10);

/// The contended implementations, in the order of the tables (and of the runs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ContendedImpl {
    Ours,
    RawSpin,
    Rslock,
}

impl ContendedImpl {
    pub(crate) const ALL: [Self; 3] = [Self::Ours, Self::RawSpin, Self::Rslock];

    /// The column's header.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Ours => "ours",
            Self::RawSpin => "raw spin",
            Self::Rslock => "rslock",
        }
    }

    /// The part of its key's name that tells the implementation.
    pub(crate) fn tag(self) -> &'static str {
        match self {
            Self::Ours => "ours",
            Self::RawSpin => "rawspin",
            Self::Rslock => "rslock",
        }
    }

    /// Whether every `SET` the server runs for it is a client's `SET NX` attempt, so that
    /// `SET` calls less grants are the failed attempts (ours runs its `SET`s inside scripts).
    pub(crate) fn sets_are_attempts(self) -> bool {
        matches!(self, Self::RawSpin | Self::Rslock)
    }
}

/// What the contended workers record, on one monotonic clock, under one mutex.
#[derive(Debug, Default)]
struct Contention {
    /// When the last holder called release (recorded before the release is sent).
    last_release: Option<Instant>,
    last_holder: Option<usize>,
    /// Per worker: when its acquire attempt in progress started (`None` between attempts).
    /// rslock's `lock()` called again after it gave up continues the same attempt.
    waiting_since: Vec<Option<Instant>>,
    /// Takeover latency of each measured grant that followed a release.
    takeovers: Vec<Duration>,
    /// The same, for grants to a worker other than the last holder.
    takeovers_other: Vec<Duration>,
    /// Wait of each measured grant: from the start of the worker's attempt to the grant.
    waits: Vec<Duration>,
    /// Measured grants, and those that went to another worker than the last holder.
    grants: u64,
    handovers: u64,
    /// Measured grants to the last holder while another worker's attempt, started before that
    /// holder called release, was still in progress.
    returned_while_waiting: u64,
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
            waiting_since: vec![None; workers],
            ..Self::default()
        }
    }

    /// `worker` starts an acquire attempt now (or goes on with the one in progress).
    fn attempt(&mut self, worker: usize) {
        self.waiting_since[worker].get_or_insert_with(Instant::now);
    }

    /// `worker`'s attempt ended without the lock.
    fn abandon(&mut self, worker: usize) {
        self.waiting_since[worker] = None;
    }

    /// Records a grant to `worker` at `now`, and the start of its release right after (the
    /// lock is held ~0 ms).
    fn granted(&mut self, worker: usize, now: Instant, measuring: bool) {
        self.all_grants += 1;
        let since = self.waiting_since[worker].take();
        if measuring {
            self.grants += 1;
            self.per_worker[worker] += 1;
            if let Some(since) = since {
                self.waits.push(now.saturating_duration_since(since));
            }
            let other = self.last_holder.is_some_and(|last| last != worker);
            if other {
                self.handovers += 1;
            }
            if let Some(released) = self.last_release {
                let latency = now.saturating_duration_since(released);
                self.takeovers.push(latency);
                if other {
                    self.takeovers_other.push(latency);
                } else if self.last_holder == Some(worker) {
                    let someone_waited = self
                        .waiting_since
                        .iter()
                        .enumerate()
                        .any(|(w, s)| w != worker && s.is_some_and(|since| since < released));
                    if someone_waited {
                        self.returned_while_waiting += 1;
                    }
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

/// Server-side cost per grant over the whole measurement (warm-up and end included), from
/// `INFO commandstats`.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ServerPerGrant {
    /// EVAL and EVALSHA calls.
    pub(crate) scripts: f64,
    pub(crate) publish: f64,
    /// `SET` calls, those inside scripts included.
    pub(crate) set: f64,
    /// Every command, those run inside scripts included.
    pub(crate) all: f64,
}

/// The summary of one contended measurement.
#[derive(Debug, Clone, Default)]
pub(crate) struct ContendedResult {
    pub(crate) acquisitions_per_sec: f64,
    pub(crate) p50: Option<Duration>,
    pub(crate) p99: Option<Duration>,
    pub(crate) p50_other: Option<Duration>,
    pub(crate) p99_other: Option<Duration>,
    pub(crate) wait_p50: Option<Duration>,
    pub(crate) wait_p99: Option<Duration>,
    pub(crate) wait_max: Option<Duration>,
    pub(crate) grants: u64,
    pub(crate) handover_share: f64,
    pub(crate) returned_while_waiting: u64,
    pub(crate) min_worker: u64,
    pub(crate) max_worker: u64,
    pub(crate) release_p50: Option<Duration>,
    pub(crate) gave_up: u64,
    pub(crate) errors: u64,
    pub(crate) first_error: Option<String>,
    pub(crate) stuck_workers: usize,
    /// Client CPU (user + system of this process) over the measured window, per grant.
    pub(crate) cpu_us_per_grant: Option<f64>,
    pub(crate) server_per_grant: Option<ServerPerGrant>,
    /// Keys of the measurement (the lock key and its companions) left in Redis at the end.
    pub(crate) keys_left: Option<i64>,
}

impl ContendedResult {
    /// `min / max` of the per-worker grants, 0 without grants.
    pub(crate) fn fairness(&self) -> f64 {
        if self.max_worker == 0 {
            0.0
        } else {
            self.min_worker as f64 / self.max_worker as f64
        }
    }

    /// The share of the grants returned to the releasing worker while another waited.
    pub(crate) fn returned_share(&self) -> f64 {
        if self.grants == 0 {
            0.0
        } else {
            self.returned_while_waiting as f64 / self.grants as f64
        }
    }
}

fn lock_state(state: &Mutex<Contention>) -> std::sync::MutexGuard<'_, Contention> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Where a worker is.
fn current_phase(phase: &AtomicU8) -> u8 {
    phase.load(Ordering::Relaxed)
}

/// `workers` workers of `which`, each with its own client, loop on `key` for [`WARMUP`] +
/// [`MEASURE`].
pub(crate) async fn contended(
    which: ContendedImpl,
    workers: usize,
    url: &str,
    key: &str,
    admin: &MultiplexedConnection,
) -> ContendedResult {
    let mut admin = admin.clone();
    let _: redis::RedisResult<Value> = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async(&mut admin)
        .await;
    let state = Arc::new(Mutex::new(Contention::new(workers)));
    let phase = Arc::new(AtomicU8::new(PHASE_WARMUP));
    let mut handles = Vec::with_capacity(workers);
    for worker in 0..workers {
        let (state, phase, key) = (Arc::clone(&state), Arc::clone(&phase), key.to_owned());
        let url = url.to_owned();
        handles.push(tokio::spawn(async move {
            match which {
                ContendedImpl::Ours => ours_worker(worker, &url, &key, &state, &phase).await,
                ContendedImpl::RawSpin => raw_spin_worker(worker, &url, &key, &state, &phase).await,
                ContendedImpl::Rslock => rslock_worker(worker, &url, &key, &state, &phase).await,
            }
        }));
    }
    tokio::time::sleep(WARMUP).await;
    phase.store(PHASE_MEASURE, Ordering::Relaxed);
    let (start, cpu_start) = (Instant::now(), cpu::process_cpu());
    tokio::time::sleep(MEASURE).await;
    phase.store(PHASE_STOP, Ordering::Relaxed);
    let (elapsed, cpu_used) = (
        start.elapsed(),
        cpu::process_cpu().saturating_sub(cpu_start),
    );
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
    // The lock key, and its companions (whose names hold it).
    let keys_left = count_keys(&admin, &format!("*{key}*")).await;
    let mut state = lock_state(&state);
    let server_per_grant = stats.filter(|_| state.all_grants > 0).map(|stats| {
        let per = |n: u64| n as f64 / state.all_grants as f64;
        ServerPerGrant {
            scripts: per(stats.scripts),
            publish: per(stats.publish),
            set: per(stats.set),
            all: per(stats.all),
        }
    });
    state.takeovers.sort_unstable();
    state.takeovers_other.sort_unstable();
    state.waits.sort_unstable();
    state.release_calls.sort_unstable();
    ContendedResult {
        acquisitions_per_sec: state.grants as f64 / elapsed.as_secs_f64(),
        p50: percentile(&state.takeovers, 50.0),
        p99: percentile(&state.takeovers, 99.0),
        p50_other: percentile(&state.takeovers_other, 50.0),
        p99_other: percentile(&state.takeovers_other, 99.0),
        wait_p50: percentile(&state.waits, 50.0),
        wait_p99: percentile(&state.waits, 99.0),
        wait_max: state.waits.last().copied(),
        grants: state.grants,
        handover_share: if state.grants == 0 {
            0.0
        } else {
            state.handovers as f64 / state.grants as f64
        },
        returned_while_waiting: state.returned_while_waiting,
        min_worker: state.per_worker.iter().copied().min().unwrap_or(0),
        max_worker: state.per_worker.iter().copied().max().unwrap_or(0),
        release_p50: percentile(&state.release_calls, 50.0),
        gave_up: state.gave_up,
        errors: state.errors,
        first_error: state.first_error.take(),
        stuck_workers,
        cpu_us_per_grant: cpu::micros_per(cpu_used, state.grants),
        server_per_grant,
        keys_left,
    }
}

/// Command counts from `INFO commandstats`.
#[derive(Debug, Clone, Copy, Default)]
struct CommandStats {
    /// EVAL and EVALSHA calls.
    scripts: u64,
    publish: u64,
    set: u64,
    /// Every command, those run inside scripts included (less INFO and CONFIG).
    all: u64,
}

/// Reads the command counts since the last `CONFIG RESETSTAT`.
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
            "set" => stats.set += calls,
            _ => {}
        }
        stats.all += calls;
    }
    Some(stats)
}

/// A contended worker on its own `RedisLock::from_url` client (release wake-ups over pub/sub):
/// `acquire_with(key, wait 10 s)`, then `release()`.
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
    let options = AcquireOptions::new().wait(OURS_WAIT);
    loop {
        let measuring = match current_phase(phase) {
            PHASE_WARMUP => false,
            PHASE_MEASURE => true,
            _ => break,
        };
        lock_state(state).attempt(worker);
        match locks.acquire_with(key, options.clone()).await {
            Ok(guard) => {
                let now = Instant::now();
                let measuring = current_phase(phase) == PHASE_MEASURE;
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
                let mut state = lock_state(state);
                state.abandon(worker);
                state.failed(true, String::new(), measuring);
            }
            Err(err) => {
                {
                    let mut state = lock_state(state);
                    state.abandon(worker);
                    state.failed(false, err.to_string(), measuring);
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// A contended worker on its own `MultiplexedConnection`, sending the commands raw: `SET key
/// token NX PX 10000` again and again, no sleep, until it succeeds, then the library's release
/// script; each worker has a token of its own. At the end of the measurement it leaves an
/// attempt in progress.
async fn raw_spin_worker(
    worker: usize,
    url: &str,
    key: &str,
    state: &Mutex<Contention>,
    phase: &AtomicU8,
) {
    let connected = match redis::Client::open(url) {
        Ok(client) => client.get_multiplexed_async_connection().await,
        Err(err) => Err(err),
    };
    let mut conn = match connected {
        Ok(conn) => conn,
        Err(err) => {
            lock_state(state).failed(false, err.to_string(), true);
            return;
        }
    };
    let token = format!("bench-spin-token-{worker:04}-0123456789abcdef012");
    'attempts: loop {
        let measuring = match current_phase(phase) {
            PHASE_WARMUP => false,
            PHASE_MEASURE => true,
            _ => break,
        };
        lock_state(state).attempt(worker);
        loop {
            let set: redis::RedisResult<Value> = redis::cmd("SET")
                .arg(key)
                .arg(&token)
                .arg("NX")
                .arg("PX")
                .arg(TTL.as_millis() as u64)
                .query_async(&mut conn)
                .await;
            match set {
                Ok(Value::Nil) if current_phase(phase) == PHASE_STOP => {
                    lock_state(state).abandon(worker);
                    break 'attempts;
                }
                Ok(Value::Nil) => {}
                Ok(_) => break,
                Err(err) => {
                    {
                        let mut state = lock_state(state);
                        state.abandon(worker);
                        state.failed(false, err.to_string(), measuring);
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue 'attempts;
                }
            }
        }
        let now = Instant::now();
        let measuring = current_phase(phase) == PHASE_MEASURE;
        lock_state(state).granted(worker, now, measuring);
        let sent = Instant::now();
        let released: redis::RedisResult<i64> =
            lib_release(key, &token).invoke_async(&mut conn).await;
        let took = sent.elapsed();
        let mut state = lock_state(state);
        if measuring {
            state.release_calls.push(took);
        }
        match released {
            Ok(1) => {}
            Ok(other) => state.failed(false, format!("release returned {other}"), measuring),
            Err(err) => state.failed(false, format!("release: {err}"), measuring),
        }
    }
}

/// A contended worker on its own rslock `LockManager` (default retry: 3 tries, 0-200 ms apart);
/// when `lock()` gives up it is called again, in the same attempt.
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
        let measuring = match current_phase(phase) {
            PHASE_WARMUP => false,
            PHASE_MEASURE => true,
            _ => break,
        };
        lock_state(state).attempt(worker);
        match manager.lock(key, TTL).await {
            Ok(lock) => {
                let now = Instant::now();
                let measuring = current_phase(phase) == PHASE_MEASURE;
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
                {
                    let mut state = lock_state(state);
                    state.abandon(worker);
                    state.failed(false, err.to_string(), measuring);
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}
