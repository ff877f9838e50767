//! A worker process: takes locks and, inside each critical section, does non-atomic
//! read-modify-writes on the resources, recording every step in its history.

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::LazyLock;
use std::time::Duration;

use ac_redislock::{AcquireOptions, LockError, LockGuard, LossReason, RedisLock, RetryPolicy};
use redis::AsyncCommands;
use redis::aio::MultiplexedConnection;

use crate::history::{Kind, Recorder};

/// How a worker releases, or what is broken about its lock (the controls).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// The library as it is.
    Safe,
    /// Control: release by a plain `DEL`, whoever holds the key.
    DelRelease,
    /// Control: the Node original's release, `GET` and then `DEL` if it matched.
    GetDelRelease,
    /// Control: every worker locks with the same token.
    ConstToken,
    /// Control: fencing tokens from a plain counter on the lock server (`INCR`), which starts
    /// again from 1 when Redis loses its data.
    CounterFence,
    /// Control: the resource accepts any fence (it does not check them).
    UncheckedResource,
    /// A permit of the semaphore (`WorkerConfig::limit`) at key 0.
    Semaphore,
    /// Control: a permit whose lease does not end (an hour, no renewal): a killed holder's
    /// permit is never given back.
    SemaphoreNoExpiry,
    /// Control: the odd-numbered workers use a limit one higher than the others, which the
    /// semaphore's documentation forbids: they enter when `limit` are held.
    SemaphoreMixedLimit,
    /// A read hold (or a write hold, for a writer) of the read-write lock at key 0.
    RwLock,
    /// Control: a writer takes a read hold, as a broken read-write lock would give it.
    RwLockWriterReads,
    /// A random subset of the keys, taken together with `acquire_all_with`.
    Multi,
    /// Control: the subset taken one key at a time in random order, holding the keys already
    /// taken while waiting for the next, with no rollback but the wait running out.
    MultiNoOrder,
}

impl Mode {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Safe => "safe",
            Self::DelRelease => "del-release",
            Self::GetDelRelease => "get-del-release",
            Self::ConstToken => "const-token",
            Self::CounterFence => "counter-fence",
            Self::UncheckedResource => "unchecked-resource",
            Self::Semaphore => "semaphore",
            Self::SemaphoreNoExpiry => "semaphore-no-expiry",
            Self::SemaphoreMixedLimit => "semaphore-mixed-limit",
            Self::RwLock => "rwlock",
            Self::RwLockWriterReads => "rwlock-writer-reads",
            Self::Multi => "multi",
            Self::MultiNoOrder => "multi-no-order",
        }
    }

    /// Whether the worker takes a semaphore, read-write or multi-key lock (`run_sets`) rather
    /// than one key's lock.
    pub(crate) fn is_set(self) -> bool {
        matches!(
            self,
            Self::Semaphore
                | Self::SemaphoreNoExpiry
                | Self::SemaphoreMixedLimit
                | Self::RwLock
                | Self::RwLockWriterReads
                | Self::Multi
                | Self::MultiNoOrder
        )
    }

    fn parse(s: &str) -> Result<Self, String> {
        [
            Self::Safe,
            Self::DelRelease,
            Self::GetDelRelease,
            Self::ConstToken,
            Self::CounterFence,
            Self::UncheckedResource,
            Self::Semaphore,
            Self::SemaphoreNoExpiry,
            Self::SemaphoreMixedLimit,
            Self::RwLock,
            Self::RwLockWriterReads,
            Self::Multi,
            Self::MultiNoOrder,
        ]
        .into_iter()
        .find(|m| m.name() == s)
        .ok_or_else(|| format!("unknown mode {s:?}"))
    }
}

/// What a worker is told, passed in an environment variable as `name=value` lines.
#[derive(Debug, Clone)]
pub(crate) struct WorkerConfig {
    pub(crate) id: usize,
    /// One URL: a single Redis; several: Redlock over them.
    pub(crate) lock_urls: Vec<String>,
    pub(crate) resource_url: String,
    pub(crate) dir: PathBuf,
    pub(crate) keys: usize,
    /// Critical sections to complete; 0 for "until the stop file appears".
    pub(crate) sections: usize,
    pub(crate) ttl: Duration,
    pub(crate) renew: bool,
    pub(crate) fencing: bool,
    pub(crate) cs_sleep_us: (u64, u64),
    pub(crate) post_cs_delay_us: (u64, u64),
    pub(crate) mode: Mode,
    pub(crate) seed: u64,
    pub(crate) node_timeout: Duration,
    /// The lock servers are the nodes of one Redis Cluster (`lock_urls`: its masters).
    pub(crate) cluster: bool,
    /// How long an acquire waits.
    pub(crate) wait: Duration,
    /// The semaphore's limit.
    pub(crate) limit: u32,
    /// A writer of the read-write lock (else a reader).
    pub(crate) writer: bool,
    /// How many keys a multi-key section takes (lowest, highest).
    pub(crate) subset: (u64, u64),
}

impl WorkerConfig {
    pub(crate) fn encode(&self) -> String {
        format!(
            "id={}\nlock_urls={}\nresource_url={}\ndir={}\nkeys={}\nsections={}\nttl_ms={}\n\
             renew={}\nfencing={}\ncs_sleep_us={},{}\npost_cs_delay_us={},{}\nmode={}\nseed={}\n\
             node_timeout_ms={}\ncluster={}\nwait_ms={}\nlimit={}\nwriter={}\nsubset={},{}",
            self.id,
            self.lock_urls.join(","),
            self.resource_url,
            self.dir.display(),
            self.keys,
            self.sections,
            self.ttl.as_millis(),
            self.renew,
            self.fencing,
            self.cs_sleep_us.0,
            self.cs_sleep_us.1,
            self.post_cs_delay_us.0,
            self.post_cs_delay_us.1,
            self.mode.name(),
            self.seed,
            self.node_timeout.as_millis(),
            self.cluster,
            self.wait.as_millis(),
            self.limit,
            self.writer,
            self.subset.0,
            self.subset.1,
        )
    }

    pub(crate) fn decode(text: &str) -> Result<Self, String> {
        let field = |name: &str| -> Result<&str, String> {
            text.lines()
                .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix('=')))
                .ok_or_else(|| format!("missing {name}"))
        };
        let num = |name: &str| -> Result<u64, String> {
            field(name)?.parse().map_err(|_| format!("bad {name}"))
        };
        let pair = |name: &str| -> Result<(u64, u64), String> {
            let (a, b) = field(name)?.split_once(',').ok_or(format!("bad {name}"))?;
            Ok((
                a.parse().map_err(|_| format!("bad {name}"))?,
                b.parse().map_err(|_| format!("bad {name}"))?,
            ))
        };
        Ok(Self {
            id: num("id")? as usize,
            lock_urls: field("lock_urls")?.split(',').map(str::to_owned).collect(),
            resource_url: field("resource_url")?.to_owned(),
            dir: PathBuf::from(field("dir")?),
            keys: num("keys")? as usize,
            sections: num("sections")? as usize,
            ttl: Duration::from_millis(num("ttl_ms")?),
            renew: field("renew")? == "true",
            fencing: field("fencing")? == "true",
            cs_sleep_us: pair("cs_sleep_us")?,
            post_cs_delay_us: pair("post_cs_delay_us")?,
            mode: Mode::parse(field("mode")?)?,
            seed: num("seed")?,
            node_timeout: Duration::from_millis(num("node_timeout_ms")?),
            cluster: field("cluster")? == "true",
            wait: Duration::from_millis(num("wait_ms")?),
            limit: u32::try_from(num("limit")?).map_err(|_| "bad limit".to_owned())?,
            writer: field("writer")? == "true",
            subset: pair("subset")?,
        })
    }
}

/// The write a fencing-aware resource does: accepted only with a fence at least the highest it
/// has accepted; the accepted fences are logged in order.
/// KEYS: fence, fenced counter, fence log. `ARGV[1]`: the fence; `ARGV[2]`: `1` to check it,
/// `0` to accept any (a control). Returns 1 accepted, 0 rejected.
static FENCED_WRITE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        "local last = tonumber(redis.call('GET', KEYS[1]) or '-1') \
         local fence = tonumber(ARGV[1]) \
         if ARGV[2] == '1' and fence < last then return 0 end \
         redis.call('SET', KEYS[1], ARGV[1]) \
         redis.call('INCR', KEYS[2]) \
         redis.call('RPUSH', KEYS[3], ARGV[1]) \
         return 1",
    )
});

/// A small xorshift generator.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub(crate) fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }

    pub(crate) fn between(&mut self, (low, high): (u64, u64)) -> u64 {
        low + self.below(high.saturating_sub(low) + 1)
    }
}

/// The lock key of index `i`, hash-tagged as a cluster would want.
pub(crate) fn lock_key(i: usize) -> String {
    format!("{{res:{i}}}")
}

async fn sleep_us(us: u64) {
    if us > 0 {
        tokio::time::sleep(Duration::from_micros(us)).await;
    }
}

/// Runs a worker to its end. Errors are for setup problems; lock and resource failures are
/// recorded and the worker goes on.
pub(crate) async fn run(cfg: WorkerConfig) -> Result<(), String> {
    let proc = format!("w{}", cfg.id);
    let mut rec = Recorder::create(&cfg.dir.join(format!("{proc}.history")), &proc)
        .map_err(|e| e.to_string())?;
    let builder = RedisLock::builder()
        .command_timeout(Duration::from_millis(800))
        .redlock_node_timeout(cfg.node_timeout);
    let urls: Vec<&str> = cfg.lock_urls.iter().map(String::as_str).collect();
    let locks = match urls.as_slice() {
        _ if cfg.cluster => builder.build_cluster(&urls),
        [url] => builder.build_from_url(url),
        _ => builder.build_redlock(&urls),
    }
    .map_err(|e| e.to_string())?;
    // Reconnects after a restart of the lock server (the counter-fence control needs it).
    let raw_lock = redis::Client::open(cfg.lock_urls[0].as_str())
        .map_err(|e| e.to_string())?
        .get_connection_manager()
        .await
        .map_err(|e| e.to_string())?;
    let resource = redis::Client::open(cfg.resource_url.as_str())
        .map_err(|e| e.to_string())?
        .get_multiplexed_async_connection()
        .await
        .map_err(|e| e.to_string())?;
    let mut rng = Rng::new(cfg.seed ^ (cfg.id as u64).rotate_left(17));
    if cfg.mode.is_set() {
        return run_sets(&cfg, &locks, &resource, &mut rng, &mut rec).await;
    }
    let stop = cfg.dir.join("stop");
    let mut done = 0usize;
    let mut stdout = std::io::stdout();
    while (cfg.sections == 0 || done < cfg.sections) && !stop.exists() {
        let k = rng.below(cfg.keys as u64) as usize;
        let key = k.to_string();
        let mut options = AcquireOptions::new()
            .ttl(cfg.ttl)
            .wait(cfg.wait)
            .retry(RetryPolicy::new().with_max_delay(Duration::from_millis(100)))
            .auto_renew(cfg.renew)
            .fencing(cfg.fencing);
        if cfg.mode == Mode::ConstToken {
            options = options.token("constant-token");
        }
        rec.record(&key, "acquire", Kind::Invoke, "-");
        let guard = match locks.acquire_with(&lock_key(k), options).await {
            Ok(guard) => guard,
            Err(LockError::Locked { .. }) => {
                rec.record(&key, "acquire", Kind::Fail, "locked");
                continue;
            }
            Err(err) => {
                let kind = if err.is_backend() {
                    Kind::Info
                } else {
                    Kind::Fail
                };
                rec.record(&key, "acquire", kind, err.to_string());
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let mut fence = guard.fencing_token();
        if cfg.mode == Mode::CounterFence {
            let mut conn = raw_lock.clone();
            fence = conn.incr(format!("naive-fence:{k}"), 1).await.ok();
        }
        rec.record(
            &key,
            "acquire",
            Kind::Ok,
            format!("{} {}", guard.token(), fence.map_or(-1, |f| f as i64)),
        );
        let _ = writeln!(stdout, "in {} {key}", cfg.id);
        let _ = stdout.flush();
        // Loss is recorded when it is noticed, even in the middle of the section.
        let watcher = {
            let lost = guard.lost();
            let mut rec = Recorder::create(&cfg.dir.join(format!("{proc}.history")), &proc)
                .map_err(|e| e.to_string())?;
            let key = key.clone();
            tokio::spawn(async move {
                let reason = lost.await;
                if reason != LossReason::Released {
                    rec.record(&key, "lost", Kind::Info, reason);
                }
            })
        };
        rec.record(&key, "cs_enter", Kind::Ok, "-");
        critical_section(&cfg, k, fence, &guard, &resource, &mut rng, &mut rec).await;
        rec.record(&key, "cs_exit", Kind::Invoke, "-");
        let _ = writeln!(stdout, "out {} {key}", cfg.id);
        let _ = stdout.flush();
        sleep_us(rng.between(cfg.post_cs_delay_us)).await;
        rec.record(&key, "release", Kind::Invoke, "-");
        let released = match cfg.mode {
            Mode::Safe
            | Mode::ConstToken
            | Mode::CounterFence
            | Mode::UncheckedResource
            | Mode::Semaphore
            | Mode::SemaphoreNoExpiry
            | Mode::SemaphoreMixedLimit
            | Mode::RwLock
            | Mode::RwLockWriterReads
            | Mode::Multi
            | Mode::MultiNoOrder => guard.release().await.map_err(|e| e.to_string()),
            Mode::DelRelease => {
                let _ = guard.detach();
                let mut conn = raw_lock.clone();
                conn.del::<_, i64>(lock_key(k))
                    .await
                    .map_err(|e| e.to_string())
                    .and_then(|n| {
                        if n == 1 {
                            Ok(())
                        } else {
                            Err("not held".into())
                        }
                    })
            }
            Mode::GetDelRelease => {
                let token = guard.detach();
                let mut conn = raw_lock.clone();
                let current: Option<String> = conn.get(lock_key(k)).await.unwrap_or(None);
                if current.as_deref() == Some(token.as_str()) {
                    // The original's window between the GET and the DEL.
                    sleep_us(rng.between(cfg.post_cs_delay_us)).await;
                    conn.del::<_, i64>(lock_key(k))
                        .await
                        .map_err(|e| e.to_string())
                        .map(|_| ())
                } else {
                    Err("mismatch".into())
                }
            }
        };
        watcher.abort();
        match released {
            Ok(()) => rec.record(&key, "release", Kind::Ok, "-"),
            Err(err) => rec.record(&key, "release", Kind::Fail, err),
        };
        done += 1;
    }
    Ok(())
}

/// The role a set worker records with its `acquire` and `cs_enter`: what kind of hold it takes.
fn role(cfg: &WorkerConfig) -> &'static str {
    match cfg.mode {
        Mode::RwLock | Mode::RwLockWriterReads if cfg.writer => "write",
        Mode::RwLock | Mode::RwLockWriterReads => "read",
        Mode::Multi => "all",
        Mode::MultiNoOrder => "one",
        _ => "permit",
    }
}

/// The hold's keys: key 0 for the semaphore and the read-write lock; a random subset, in
/// random order, for the multi-key modes.
fn pick_keys(cfg: &WorkerConfig, rng: &mut Rng) -> Vec<usize> {
    if !matches!(cfg.mode, Mode::Multi | Mode::MultiNoOrder) {
        return vec![0];
    }
    let mut all: Vec<usize> = (0..cfg.keys).collect();
    for i in (1..all.len()).rev() {
        all.swap(i, rng.below(i as u64 + 1) as usize);
    }
    let n = (rng.between(cfg.subset) as usize).clamp(1, cfg.keys.max(1));
    all.truncate(n);
    all
}

/// The name a hold's events carry: its keys, ascending, joined by `+`.
pub(crate) fn hold_name(keys: &[usize]) -> String {
    let mut keys = keys.to_vec();
    keys.sort_unstable();
    keys.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("+")
}

/// Records an acquire's answer; returns the guard if it was granted.
fn answered(
    rec: &mut Recorder,
    name: &str,
    result: Result<LockGuard, LockError>,
) -> Option<LockGuard> {
    match result {
        Ok(guard) => {
            rec.record(name, "acquire", Kind::Ok, guard.token());
            Some(guard)
        }
        Err(LockError::Locked { .. }) => {
            rec.record(name, "acquire", Kind::Fail, "locked");
            None
        }
        Err(err) => {
            let kind = if err.is_backend() {
                Kind::Info
            } else {
                Kind::Fail
            };
            rec.record(name, "acquire", kind, err);
            None
        }
    }
}

/// Releases a guard, recording it.
async fn release_recorded(rec: &mut Recorder, name: &str, guard: LockGuard) {
    rec.record(name, "release", Kind::Invoke, "-");
    match guard.release().await {
        Ok(()) => rec.record(name, "release", Kind::Ok, "-"),
        Err(err) => rec.record(name, "release", Kind::Fail, err),
    };
}

/// Takes the hold of one section: `(events' name, guard)` for each guard it took (one, but for
/// the one-key-at-a-time control), or nothing if the acquire failed (what it had taken is
/// given back).
async fn take_hold(
    cfg: &WorkerConfig,
    locks: &RedisLock,
    keys: &[usize],
    options: AcquireOptions,
    rec: &mut Recorder,
) -> Option<Vec<(String, LockGuard)>> {
    let role = role(cfg);
    if cfg.mode == Mode::MultiNoOrder {
        let mut taken = Vec::new();
        for &k in keys {
            let name = k.to_string();
            rec.record(&name, "acquire", Kind::Invoke, role);
            let result = locks.acquire_with(&lock_key(k), options.clone()).await;
            match answered(rec, &name, result) {
                Some(guard) => taken.push((name, guard)),
                None => {
                    for (name, guard) in taken {
                        release_recorded(rec, &name, guard).await;
                    }
                    return None;
                }
            }
        }
        return Some(taken);
    }
    let name = hold_name(keys);
    rec.record(&name, "acquire", Kind::Invoke, role);
    let result = match cfg.mode {
        Mode::Semaphore | Mode::SemaphoreNoExpiry => {
            locks
                .semaphore(lock_key(0), cfg.limit)
                .acquire_with(options)
                .await
        }
        Mode::SemaphoreMixedLimit => {
            let limit = cfg.limit + u32::from(cfg.id % 2 == 1);
            locks
                .semaphore(lock_key(0), limit)
                .acquire_with(options)
                .await
        }
        Mode::RwLock if cfg.writer => locks.rw_lock(lock_key(0)).write_with(options).await,
        Mode::RwLock | Mode::RwLockWriterReads => {
            locks.rw_lock(lock_key(0)).read_with(options).await
        }
        _ => {
            let wire: Vec<String> = keys.iter().map(|&k| lock_key(k)).collect();
            locks.acquire_all_with(&wire, options).await
        }
    };
    answered(rec, &name, result).map(|guard| vec![(name, guard)])
}

/// The sections of the semaphore, read-write and multi-key modes. Each records `acquire`
/// (invoked with its role: `permit`, `read`, `write`, `all`, or `one` per key for the
/// one-at-a-time control; answered with the token), `cs_enter`, the section's work, `cs_exit`
/// and `release`, under the name of its keys (`1+3+4`). The work: the semaphore's holders
/// sleep; the read-write lock's writers do the unfenced read-modify-write of counter 0 and its
/// readers read it; a multi-key holder does the read-modify-write of every key's counter.
async fn run_sets(
    cfg: &WorkerConfig,
    locks: &RedisLock,
    resource: &MultiplexedConnection,
    rng: &mut Rng,
    rec: &mut Recorder,
) -> Result<(), String> {
    let proc = format!("w{}", cfg.id);
    let stop = cfg.dir.join("stop");
    let mut done = 0usize;
    let mut stdout = std::io::stdout();
    let role = role(cfg);
    while (cfg.sections == 0 || done < cfg.sections) && !stop.exists() {
        let (ttl, renew) = if cfg.mode == Mode::SemaphoreNoExpiry {
            (Duration::from_secs(3600), false)
        } else {
            (cfg.ttl, cfg.renew)
        };
        let options = AcquireOptions::new()
            .ttl(ttl)
            .wait(cfg.wait)
            .retry(RetryPolicy::new().with_max_delay(Duration::from_millis(100)))
            .auto_renew(renew);
        let keys = pick_keys(cfg, rng);
        let name = hold_name(&keys);
        let Some(guards) = take_hold(cfg, locks, &keys, options, rec).await else {
            tokio::time::sleep(Duration::from_millis(5)).await;
            continue;
        };
        let _ = writeln!(stdout, "in {} {name}", cfg.id);
        let _ = stdout.flush();
        let mut watchers = Vec::new();
        for (held, guard) in &guards {
            let lost = guard.lost();
            let mut rec = Recorder::create(&cfg.dir.join(format!("{proc}.history")), &proc)
                .map_err(|e| e.to_string())?;
            let held = held.clone();
            watchers.push(tokio::spawn(async move {
                let reason = lost.await;
                if reason != LossReason::Released {
                    rec.record(&held, "lost", Kind::Info, reason);
                }
            }));
        }
        rec.record(&name, "cs_enter", Kind::Ok, role);
        let pause = rng.between(cfg.cs_sleep_us);
        let mut conn = resource.clone();
        match (cfg.mode, role) {
            (_, "write" | "all" | "one") => {
                read_modify_write(&keys, pause, &mut conn, rec).await;
            }
            (_, "read") => {
                let _: Result<Option<i64>, _> = conn.get("ctr:0").await;
                sleep_us(pause).await;
            }
            _ => sleep_us(pause).await,
        }
        rec.record(&name, "cs_exit", Kind::Invoke, "-");
        let _ = writeln!(stdout, "out {} {name}", cfg.id);
        let _ = stdout.flush();
        for (held, guard) in guards {
            release_recorded(rec, &held, guard).await;
        }
        for watcher in watchers {
            watcher.abort();
        }
        done += 1;
    }
    Ok(())
}

/// The unfenced read-modify-write of the counters of `keys`: all read, a pause, all written
/// with the value read + 1.
async fn read_modify_write(
    keys: &[usize],
    pause: u64,
    conn: &mut MultiplexedConnection,
    rec: &mut Recorder,
) {
    let mut read = Vec::new();
    for &k in keys {
        let value: Result<Option<i64>, _> = conn.get(format!("ctr:{k}")).await;
        match value {
            Ok(value) => read.push((k, value.unwrap_or(0))),
            Err(err) => {
                rec.record(&k.to_string(), "write", Kind::Fail, err);
            }
        }
    }
    sleep_us(pause).await;
    for (k, value) in read {
        let key = k.to_string();
        rec.record(&key, "write", Kind::Invoke, value + 1);
        match conn.set::<_, _, ()>(format!("ctr:{k}"), value + 1).await {
            Ok(()) => rec.record(&key, "write", Kind::Ok, value + 1),
            Err(err) => rec.record(&key, "write", Kind::Info, err),
        };
    }
}

/// The non-atomic work on the resources: fenced writes at the start and the end, an unfenced
/// counter (GET, pause, SET) and an explicit extend of the lease between them, and a file read
/// and rewritten. The worker goes on whatever the extend says, as a careless client would:
/// only the fences protect the resource then.
async fn critical_section(
    cfg: &WorkerConfig,
    k: usize,
    fence: Option<u64>,
    guard: &LockGuard,
    resource: &MultiplexedConnection,
    rng: &mut Rng,
    rec: &mut Recorder,
) {
    let key = k.to_string();
    let mut conn = resource.clone();
    // A fenced write first, so the resource learns the new fence at once, as a fencing-aware
    // client does; and one at the end, after the slow part, which a paused holder makes late.
    fenced_write(cfg, k, fence, &mut conn, rec).await;
    let counter = format!("ctr:{k}");
    let read: Result<Option<i64>, _> = conn.get(&counter).await;
    let pause = rng.between(cfg.cs_sleep_us);
    match read {
        Ok(value) => {
            let value = value.unwrap_or(0);
            sleep_us(pause).await;
            rec.record(&key, "write", Kind::Invoke, value + 1);
            match conn.set::<_, _, ()>(&counter, value + 1).await {
                Ok(()) => rec.record(&key, "write", Kind::Ok, value + 1),
                Err(err) => rec.record(&key, "write", Kind::Info, err),
            };
        }
        Err(err) => {
            rec.record(&key, "write", Kind::Fail, err);
        }
    }
    rec.record(&key, "extend", Kind::Invoke, "-");
    match guard.extend(cfg.ttl).await {
        Ok(_) => rec.record(&key, "extend", Kind::Ok, "-"),
        Err(err) if err.is_backend() => rec.record(&key, "extend", Kind::Info, err),
        Err(err) => rec.record(&key, "extend", Kind::Fail, err),
    };
    fenced_write(cfg, k, fence, &mut conn, rec).await;
    // The file: read it all, write it back with one more line (through a rename, so a killed
    // worker leaves the old file or the new one, never half of one).
    let path = cfg.dir.join(format!("res_{k}.log"));
    let before = tokio::fs::read_to_string(&path).await.unwrap_or_default();
    let line = format!("w{} {}\n", cfg.id, crate::history::now_ns());
    let temp = cfg.dir.join(format!("res_{k}.w{}.tmp", cfg.id));
    rec.record(&key, "file", Kind::Invoke, "-");
    let written = match tokio::fs::write(&temp, before + &line).await {
        Ok(()) => tokio::fs::rename(&temp, &path).await,
        Err(err) => Err(err),
    };
    match written {
        Ok(()) => rec.record(&key, "file", Kind::Ok, "-"),
        Err(err) => rec.record(&key, "file", Kind::Info, err),
    };
}

/// A write to the fencing-aware resource with the holder's fence, if it has one.
async fn fenced_write(
    cfg: &WorkerConfig,
    k: usize,
    fence: Option<u64>,
    conn: &mut MultiplexedConnection,
    rec: &mut Recorder,
) {
    let Some(fence) = fence else {
        return;
    };
    let key = k.to_string();
    rec.record(&key, "fwrite", Kind::Invoke, fence);
    let accepted: Result<i64, _> = FENCED_WRITE
        .key(format!("fence:{k}"))
        .key(format!("fctr:{k}"))
        .key(format!("flog:{k}"))
        .arg(fence)
        .arg(if cfg.mode == Mode::UncheckedResource {
            "0"
        } else {
            "1"
        })
        .invoke_async(conn)
        .await;
    match accepted {
        Ok(1) => rec.record(&key, "fwrite", Kind::Ok, fence),
        Ok(_) => rec.record(&key, "fwrite", Kind::Fail, fence),
        Err(err) => rec.record(&key, "fwrite", Kind::Info, err),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_round_trips() {
        let cfg = WorkerConfig {
            id: 3,
            lock_urls: vec!["unix:///a".into(), "unix:///b".into()],
            resource_url: "unix:///r".into(),
            dir: PathBuf::from("/tmp/x"),
            keys: 8,
            sections: 100,
            ttl: Duration::from_millis(1500),
            renew: true,
            fencing: false,
            cs_sleep_us: (0, 200),
            post_cs_delay_us: (5, 6),
            mode: Mode::GetDelRelease,
            seed: 42,
            node_timeout: Duration::from_millis(50),
            cluster: true,
            wait: Duration::from_millis(2500),
            limit: 3,
            writer: true,
            subset: (2, 4),
        };
        let back = WorkerConfig::decode(&cfg.encode()).unwrap();
        assert_eq!(back.encode(), cfg.encode());
    }
}
