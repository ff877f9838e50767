//! The scenarios: servers, workers, a fault schedule (the nemesis), then the checkers and a
//! verdict.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use redis::AsyncCommands;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::check::{self, Findings, Resources};
use crate::history::{self, Kind, Recorder};
use crate::proxy::{Fault, Proxy, Upstream};
use crate::server::{Listen, RedisServer};
use crate::worker::{Mode, Rng, WorkerConfig};

/// Where the locks live.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Topology {
    Single,
    Redlock(usize),
    /// A Redis Cluster of this many masters.
    Cluster(usize),
}

/// The fault schedule.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Nemesis {
    None,
    /// SIGKILL a worker inside its critical section, until `count` kills have hit one; a new
    /// worker replaces each.
    KillHolder {
        count: usize,
    },
    /// SIGSTOP a holder for `pause`, then SIGCONT, `count` times.
    PauseHolder {
        count: usize,
        pause: Duration,
    },
    /// SIGSTOP the (first) lock server for `pause`, `count` times.
    PauseRedis {
        count: usize,
        pause: Duration,
    },
    /// SIGKILL the lock server and start it again at once: empty, unless the scenario's
    /// `lock_server_args` turn persistence on.
    RestartRedis {
        count: usize,
    },
    /// Kill, pause or cut off (a blackhole in front of it) a random minority of the Redlock
    /// nodes for `hold`, `count` times.
    RedlockMinority {
        count: usize,
        hold: Duration,
    },
    /// Half the workers reach Redis through a proxy that delays (5 to 100 ms) or resets their
    /// connections, `count` times.
    ProxyDelayReset {
        count: usize,
    },
    /// Half the workers reach Redis through a proxy that blackholes them for `hold`, then
    /// delivers what it held, `count` times.
    ProxyBlackhole {
        count: usize,
        hold: Duration,
    },
    /// SIGKILL a worker holding a hold (from its grant to its release), until `count` kills
    /// have hit one; a new worker of the same role replaces each; `gap` after each kill, so
    /// that the victim's hold has run out before the next (each kill is measured alone).
    KillSpaced {
        count: usize,
        gap: Duration,
    },
    /// No fault: the workers run for this long.
    Idle(Duration),
}

/// What must hold for a scenario to be green.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Judge {
    /// No violation at all.
    Safe,
    /// A deliberately broken lock: the checker of `Figure` must find violations.
    Control(Figure),
    /// Holders paused past their lease: every pause noticed, no stale fenced write accepted;
    /// lock-level overlaps (and unfenced lost updates) are expected and reported.
    Fenced,
}

/// A checker's figure, which a control must show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Figure {
    Overlaps,
    LostUpdates,
    Inversions,
    StaleAccepted,
    ForeignReleases,
    ForeignExtends,
    /// Semaphore permits of killed holders never given back.
    PermitsLeaked,
    /// Semaphore grants beyond the limit.
    OverLimit,
    /// Read-write lock holds granted beside a writer.
    WriterOverlaps,
    /// Waits that ran out on a cycle of the wait-for graph.
    Deadlocks,
}

/// Which primitive the workers take, and so which checkers judge the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Primitive {
    /// One key's lock: the original checkers (overlaps, lost updates, fencing, ...).
    Lock,
    /// A semaphore of this limit on key 0.
    Semaphore(u32),
    /// A read-write lock on key 0; the first `writers` workers write.
    RwLock { writers: usize },
    /// Several keys at once.
    Multi,
}

impl Figure {
    fn name(self) -> &'static str {
        match self {
            Self::Overlaps => "overlaps",
            Self::LostUpdates => "lost",
            Self::Inversions => "inversions",
            Self::StaleAccepted => "stale_fenced_accepted",
            Self::ForeignReleases => "foreign_releases",
            Self::ForeignExtends => "foreign_extends",
            Self::PermitsLeaked => "permits_leaked",
            Self::OverLimit => "over_limit",
            Self::WriterOverlaps => "writer_overlaps",
            Self::Deadlocks => "deadlocks",
        }
    }

    fn of(self, f: &Findings) -> u64 {
        match self {
            Self::Overlaps => f.overlaps,
            Self::LostUpdates => f.lost_updates + f.lost_file_writes,
            Self::Inversions => f.inversions,
            Self::StaleAccepted => f.stale_accepted,
            Self::ForeignReleases => f.foreign_releases,
            Self::ForeignExtends => f.foreign_extends,
            // Figures of the set checkers, judged in sets.rs.
            Self::PermitsLeaked | Self::OverLimit | Self::WriterOverlaps | Self::Deadlocks => 0,
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Scenario {
    pub(crate) name: &'static str,
    pub(crate) topology: Topology,
    pub(crate) workers: usize,
    pub(crate) keys: usize,
    /// Per worker; 0 = until the nemesis is done.
    pub(crate) sections: usize,
    pub(crate) ttl: Duration,
    pub(crate) renew: bool,
    pub(crate) fencing: bool,
    pub(crate) cs_sleep_us: (u64, u64),
    pub(crate) post_cs_delay_us: (u64, u64),
    pub(crate) mode: Mode,
    pub(crate) nemesis: Nemesis,
    pub(crate) judge: Judge,
    /// Extra `redis-server` arguments for the lock servers (persistence, say).
    pub(crate) lock_server_args: &'static [&'static str],
    pub(crate) primitive: Primitive,
    /// How long an acquire waits.
    pub(crate) wait: Duration,
    /// Keys per multi-key hold (lowest, highest).
    pub(crate) subset: (u64, u64),
    /// With `sections` 0: once the nemesis is done, the run goes on until the workers have
    /// completed this many sections in all (0: it stops at once).
    pub(crate) total_sections: usize,
}

impl Scenario {
    pub(crate) fn safe(name: &'static str) -> Self {
        Self {
            name,
            topology: Topology::Single,
            workers: 8,
            keys: 8,
            sections: 100,
            ttl: Duration::from_secs(2),
            renew: true,
            fencing: true,
            cs_sleep_us: (0, 200),
            post_cs_delay_us: (0, 0),
            mode: Mode::Safe,
            nemesis: Nemesis::None,
            judge: Judge::Safe,
            lock_server_args: &[],
            primitive: Primitive::Lock,
            wait: Duration::from_secs(10),
            subset: (1, 1),
            total_sections: 0,
        }
    }
}

/// One scenario's outcome.
#[derive(Debug, Clone)]
pub(crate) struct Outcome {
    pub(crate) name: &'static str,
    pub(crate) seed: u64,
    pub(crate) findings: Findings,
    pub(crate) faults: String,
    pub(crate) takeover: Option<(f64, f64, f64)>,
    pub(crate) detect: Option<(f64, f64, f64)>,
    pub(crate) detected: Option<(u64, u64)>,
    pub(crate) verdict: String,
    pub(crate) green: bool,
    pub(crate) seconds: f64,
    /// Where the histories were kept: a failed scenario (or `--keep`) keeps them.
    pub(crate) kept: Option<PathBuf>,
    /// The figures of a semaphore, read-write or multi-key run, printed instead of the lock
    /// checkers' ones.
    pub(crate) set_figures: Option<String>,
}

/// The workers of a run, and which of them hold a lock right now.
struct Crew {
    dir: PathBuf,
    base: WorkerConfig,
    /// The proxy's URL, for the even-numbered workers.
    proxied: Option<String>,
    next_id: usize,
    children: Vec<(usize, tokio::process::Child)>,
    /// worker id -> (pid, key) while it is inside a critical section.
    holders: Arc<Mutex<HashMap<usize, (u32, String)>>>,
    /// The writers of a read-write lock run.
    writers: std::collections::HashSet<usize>,
    /// Critical sections completed by all workers (as they report them).
    completed: Arc<std::sync::atomic::AtomicUsize>,
}

impl Crew {
    fn spawn(&mut self) -> Result<(), String> {
        self.spawn_as(false)
    }

    /// Starts a worker; a writer, in a read-write lock run.
    fn spawn_as(&mut self, writer: bool) -> Result<(), String> {
        let id = self.next_id;
        self.next_id += 1;
        if writer {
            self.writers.insert(id);
        }
        let lock_urls = match &self.proxied {
            Some(url) if id.is_multiple_of(2) => vec![url.clone()],
            _ => self.base.lock_urls.clone(),
        };
        let cfg = WorkerConfig {
            id,
            lock_urls,
            seed: self.base.seed.wrapping_add(id as u64 * 7919),
            writer,
            ..self.base.clone()
        };
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let mut child = tokio::process::Command::new(exe)
            .arg("worker")
            .env("TORTURE_WORKER", cfg.encode())
            .stdout(Stdio::piped())
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start a worker: {e}"))?;
        let pid = child.id().unwrap_or(0);
        if let Some(stdout) = child.stdout.take() {
            let holders = Arc::clone(&self.holders);
            let completed = Arc::clone(&self.completed);
            tokio::spawn(async move {
                let mut lines = BufReader::new(stdout).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let mut parts = line.split(' ');
                    let (Some(what), Some(_id), Some(key)) =
                        (parts.next(), parts.next(), parts.next())
                    else {
                        continue;
                    };
                    let mut holders = holders.lock().unwrap_or_else(|p| p.into_inner());
                    match what {
                        "in" => {
                            holders.insert(id, (pid, key.to_owned()));
                        }
                        _ => {
                            holders.remove(&id);
                            completed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                    }
                }
                holders
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&id);
            });
        }
        self.children.push((id, child));
        Ok(())
    }

    /// A worker inside a critical section, picked at random; waits up to 5 s for one.
    async fn holder(&self, rng: &mut Rng) -> Option<(usize, u32)> {
        for _ in 0..500 {
            {
                let holders = self.holders.lock().unwrap_or_else(|p| p.into_inner());
                if !holders.is_empty() {
                    let mut ids: Vec<usize> = holders.keys().copied().collect();
                    ids.sort_unstable();
                    let id = ids[rng.below(ids.len() as u64) as usize];
                    return holders.get(&id).map(|(pid, _)| (id, *pid));
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        None
    }

    /// Waits for a killed worker to be gone; returns whether it died inside a critical
    /// section, as its history tells.
    async fn reap(&mut self, id: usize) -> bool {
        if let Some((_, child)) = self.children.iter_mut().find(|(i, _)| *i == id) {
            let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
        }
        let history = std::fs::read_to_string(self.dir.join(format!("w{id}.history")));
        history.is_ok_and(|text| {
            text.lines()
                .rev()
                .filter_map(|line| line.parse::<history::Event>().ok())
                .find(|e| e.op == "cs_enter" || e.op == "cs_exit")
                .is_some_and(|e| e.op == "cs_enter")
        })
    }

    /// Whether a killed worker died holding a hold (granted and not yet released), as its
    /// history tells; waits for it to be gone first.
    async fn reap_holder(&mut self, id: usize) -> bool {
        if let Some((_, child)) = self.children.iter_mut().find(|(i, _)| *i == id) {
            let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
        }
        let history = std::fs::read_to_string(self.dir.join(format!("w{id}.history")));
        history.is_ok_and(|text| {
            text.lines()
                .rev()
                .filter_map(|line| line.parse::<history::Event>().ok())
                .find(|e| {
                    (e.op == "acquire" && e.kind == Kind::Ok)
                        || (e.op == "release" && e.kind == Kind::Invoke)
                })
                .is_some_and(|e| e.op == "acquire")
        })
    }

    /// Waits until the workers have completed `total` sections in all, for at most `limit`,
    /// and no longer than 20 s without one completed.
    async fn await_completed(&self, total: usize, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        let (mut seen, mut progress) = (0, tokio::time::Instant::now());
        loop {
            let done = self.completed.load(std::sync::atomic::Ordering::Relaxed);
            let now = tokio::time::Instant::now();
            if done != seen {
                (seen, progress) = (done, now);
            }
            if done >= total || now >= deadline || now - progress > Duration::from_secs(20) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Tells the workers to stop after their current section and waits for all of them, for
    /// at most `limit` each; returns how many had to be killed (stuck).
    async fn finish(&mut self, until_done: bool, limit: Duration) -> u64 {
        if !until_done {
            let _ = std::fs::write(self.dir.join("stop"), "stop");
        }
        let mut stuck = 0;
        for (_, child) in &mut self.children {
            let waited = tokio::time::timeout(limit, child.wait()).await;
            if waited.is_err() {
                stuck += 1;
                let _ = child.start_kill();
            }
        }
        stuck
    }
}

fn signal(pid: u32, signal: Signal) {
    if let Ok(pid) = i32::try_from(pid) {
        let _ = kill(Pid::from_raw(pid), signal);
    }
}

/// Runs one scenario and judges it.
pub(crate) async fn run(s: &Scenario, seed: u64, keep: bool) -> Result<Outcome, String> {
    let started = std::time::Instant::now();
    let dir = tempfile::Builder::new()
        .prefix(&format!("torture-{}-", s.name))
        .tempdir()
        .map_err(|e| e.to_string())?;
    let resource = RedisServer::start();
    let lock_server = || RedisServer::start_with(Listen::Unix, s.lock_server_args);
    let mut cluster_urls = None;
    let mut lock_servers: Vec<RedisServer> = match s.topology {
        Topology::Single => vec![lock_server()],
        Topology::Redlock(n) => (0..n).map(|_| lock_server()).collect(),
        Topology::Cluster(n) => {
            let cluster = tokio::task::block_in_place(|| crate::cluster::Cluster::start(n, None));
            cluster_urls = Some(cluster.urls());
            cluster.nodes
        }
    };
    // Redlock nodes that can be cut off sit behind a proxy each.
    let mut node_proxies = Vec::new();
    if matches!(s.nemesis, Nemesis::RedlockMinority { .. }) {
        for server in &lock_servers {
            node_proxies.push(
                Proxy::start(Upstream::Unix(server.socket()))
                    .await
                    .map_err(|e| e.to_string())?,
            );
        }
    }
    let lock_urls = if let Some(urls) = &cluster_urls {
        urls.clone()
    } else if node_proxies.is_empty() {
        lock_servers.iter().map(RedisServer::url).collect()
    } else {
        node_proxies.iter().map(Proxy::url).collect()
    };
    let base = WorkerConfig {
        id: 0,
        lock_urls,
        resource_url: resource.url(),
        dir: dir.path().to_owned(),
        keys: s.keys,
        sections: s.sections,
        ttl: s.ttl,
        renew: s.renew,
        fencing: s.fencing,
        cs_sleep_us: s.cs_sleep_us,
        post_cs_delay_us: s.post_cs_delay_us,
        mode: s.mode,
        seed,
        node_timeout: Duration::from_millis(100),
        cluster: cluster_urls.is_some(),
        wait: s.wait,
        limit: match s.primitive {
            Primitive::Semaphore(limit) => limit,
            _ => 1,
        },
        writer: false,
        subset: s.subset,
    };
    let proxy = match s.nemesis {
        Nemesis::ProxyDelayReset { .. } | Nemesis::ProxyBlackhole { .. } => Some(
            Proxy::start(Upstream::Unix(lock_servers[0].socket()))
                .await
                .map_err(|e| e.to_string())?,
        ),
        _ => None,
    };
    let mut crew = Crew {
        dir: dir.path().to_owned(),
        base,
        proxied: proxy.as_ref().map(Proxy::url),
        next_id: 0,
        children: Vec::new(),
        holders: Arc::default(),
        writers: std::collections::HashSet::new(),
        completed: Arc::default(),
    };
    let writers = match s.primitive {
        Primitive::RwLock { writers } => writers,
        _ => 0,
    };
    for i in 0..s.workers {
        crew.spawn_as(i < writers)?;
    }
    let mut nemesis = Recorder::create(&dir.path().join("nemesis.history"), "nemesis")
        .map_err(|e| e.to_string())?;
    let mut rng = Rng::new(seed);
    let proxies = Proxies {
        single: proxy.as_ref(),
        nodes: &node_proxies,
    };
    let faults = run_nemesis(
        s,
        &mut crew,
        &mut lock_servers,
        &proxies,
        &mut nemesis,
        &mut rng,
    )
    .await?;
    if s.sections == 0 && s.total_sections > 0 {
        crew.await_completed(s.total_sections, Duration::from_secs(900))
            .await;
    }
    let stuck = crew
        .finish(
            matches!(s.nemesis, Nemesis::None) && s.sections > 0,
            if s.primitive == Primitive::Lock {
                Duration::from_secs(600)
            } else {
                // A worker between sections stops at once; one waiting, within its wait.
                s.wait + Duration::from_secs(20)
            },
        )
        .await;
    let end_of_run = history::now_ns();
    if s.primitive != Primitive::Lock {
        let lock_urls: Vec<String> = match &cluster_urls {
            Some(urls) => urls.clone(),
            None => lock_servers.iter().map(RedisServer::url).collect(),
        };
        return crate::sets::judge_run(crate::sets::Run {
            scenario: s,
            seed,
            dir,
            keep,
            resource: &resource,
            lock_urls: &lock_urls,
            cluster: cluster_urls.is_some(),
            faults,
            stuck,
            end_of_run,
            started,
        })
        .await;
    }

    let resources = read_resources(&resource, s.keys, dir.path()).await?;
    let events = history::read_all(dir.path()).map_err(|e| e.to_string())?;
    let findings = check::check(&events, &resources, end_of_run);
    let (takeover, faults) = match s.nemesis {
        Nemesis::KillHolder { .. } => {
            let (latencies, holder_kills) = check::takeovers(&events, "kill");
            (
                check::percentiles(latencies),
                format!("{faults}(in-section:{holder_kills})"),
            )
        }
        _ => (None, faults),
    };
    let (detected, detect) = match s.nemesis {
        Nemesis::PauseHolder { .. } => {
            let (pauses, detected, latencies) = check::detections(&events);
            (Some((detected, pauses)), check::percentiles(latencies))
        }
        _ => (None, None),
    };
    let (verdict, green) = judge(s, &findings, detected, takeover);
    let kept = (keep || !green).then(|| dir.keep());
    Ok(Outcome {
        name: s.name,
        seed,
        findings,
        faults,
        takeover,
        detect,
        detected,
        verdict,
        green,
        seconds: started.elapsed().as_secs_f64(),
        kept,
        set_figures: None,
    })
}

fn judge(
    s: &Scenario,
    f: &Findings,
    detected: Option<(u64, u64)>,
    takeover: Option<(f64, f64, f64)>,
) -> (String, bool) {
    match s.judge {
        Judge::Safe => {
            // After a kill the lock must be free again within its ttl, the waiter's backoff
            // (100 ms at most here) and a margin.
            let bound_ms = s.ttl.as_millis() as f64 + 100.0 + 300.0;
            let slow = takeover.is_some_and(|(_, _, max)| max > bound_ms);
            if f.violations() == 0 && !slow && f.sections > 0 {
                ("PASS".into(), true)
            } else if slow {
                (format!("FAIL(takeover max over {bound_ms} ms)"), false)
            } else {
                ("FAIL".into(), false)
            }
        }
        Judge::Control(figure) => {
            let found = figure.of(f);
            if found > 0 {
                (format!("CAUGHT({}={found})", figure.name()), true)
            } else {
                (
                    format!("FAIL(control not caught: {}=0)", figure.name()),
                    false,
                )
            }
        }
        Judge::Fenced => {
            let all_noticed = detected.is_some_and(|(d, p)| p > 0 && d == p);
            let ok = f.inversions == 0
                && f.stale_accepted == 0
                && f.foreign_releases == 0
                && f.foreign_extends == 0
                && (detected.is_none() || all_noticed);
            let note = format!(
                "lock-level overlaps={} and unfenced lost updates={} are possible under this fault",
                f.overlaps, f.lost_updates
            );
            if ok {
                (format!("PASS(fenced; {note})"), true)
            } else {
                (format!("FAIL; {note}"), false)
            }
        }
    }
}

/// The proxies the nemesis can switch: one in front of the single server (for half the
/// workers), or one in front of each Redlock node (for all of them).
struct Proxies<'a> {
    single: Option<&'a Proxy>,
    nodes: &'a [Proxy],
}

/// Applies the fault schedule, recording each fault; returns a summary like `kill:10`.
async fn run_nemesis(
    s: &Scenario,
    crew: &mut Crew,
    servers: &mut [RedisServer],
    proxies: &Proxies<'_>,
    rec: &mut Recorder,
    rng: &mut Rng,
) -> Result<String, String> {
    let gap = |rng: &mut Rng, base_ms: u64| Duration::from_millis(base_ms + rng.below(base_ms));
    match s.nemesis {
        Nemesis::None => Ok("none".into()),
        Nemesis::KillHolder { count } => {
            // Until `count` kills hit a worker inside its section: the report of a holder can
            // be a moment late, and a worker that had just left it is killed all the same.
            let (mut done, mut in_section) = (0, 0);
            while in_section < count && done < count * 3 {
                tokio::time::sleep(gap(rng, 150)).await;
                let Some((id, pid)) = crew.holder(rng).await else {
                    continue;
                };
                rec.record("-", "kill", Kind::Info, format!("w{id}"));
                signal(pid, Signal::SIGKILL);
                crew.holders
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&id);
                if crew.reap(id).await {
                    in_section += 1;
                }
                crew.spawn()?;
                done += 1;
            }
            // Let the last takeover happen before stopping.
            tokio::time::sleep(s.ttl + Duration::from_millis(500)).await;
            Ok(format!("kill:{done}"))
        }
        Nemesis::PauseHolder { count, pause } => {
            let mut done = 0;
            for _ in 0..count {
                tokio::time::sleep(gap(rng, 100)).await;
                let Some((id, pid)) = crew.holder(rng).await else {
                    continue;
                };
                rec.record("-", "pause", Kind::Info, format!("w{id}"));
                signal(pid, Signal::SIGSTOP);
                tokio::time::sleep(pause).await;
                rec.record("-", "resume", Kind::Info, format!("w{id}"));
                signal(pid, Signal::SIGCONT);
                done += 1;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
            Ok(format!("pause-holder:{done}"))
        }
        Nemesis::PauseRedis { count, pause } => {
            for _ in 0..count {
                tokio::time::sleep(gap(rng, 300)).await;
                rec.record("-", "pause", Kind::Info, "redis");
                servers[0].pause();
                tokio::time::sleep(pause).await;
                servers[0].resume();
                rec.record("-", "resume", Kind::Info, "redis");
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
            Ok(format!("pause-redis:{count}"))
        }
        Nemesis::RestartRedis { count } => {
            for _ in 0..count {
                tokio::time::sleep(gap(rng, 400)).await;
                rec.record("-", "restart", Kind::Info, "redis");
                servers[0].restart();
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
            Ok(format!("restart-redis:{count}"))
        }
        Nemesis::RedlockMinority { count, hold } => {
            let n = servers.len();
            let mut tally = [0usize; 3];
            for _ in 0..count {
                tokio::time::sleep(gap(rng, 200)).await;
                let faulty = 1 + rng.below((n / 2) as u64) as usize;
                let mut nodes: Vec<usize> = (0..n).collect();
                for i in (1..n).rev() {
                    nodes.swap(i, rng.below(i as u64 + 1) as usize);
                }
                let nodes = &nodes[..faulty];
                let how = rng.below(3) as usize;
                tally[how] += 1;
                let what = ["kill", "pause", "cut"][how];
                rec.record("-", what, Kind::Info, format!("nodes {nodes:?}"));
                for &i in nodes {
                    match how {
                        0 => servers[i].kill(),
                        1 => servers[i].pause(),
                        _ => proxies.nodes[i].set(Fault::Blackhole),
                    }
                }
                tokio::time::sleep(hold).await;
                for &i in nodes {
                    match how {
                        0 => servers[i].restart(),
                        1 => servers[i].resume(),
                        _ => proxies.nodes[i].set(Fault::Pass),
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
            Ok(format!(
                "redlock-minority-kill:{}+pause:{}+cut:{}",
                tally[0], tally[1], tally[2]
            ))
        }
        Nemesis::ProxyDelayReset { count } => {
            let proxy = proxies.single.ok_or("no proxy")?;
            let mut resets = 0;
            for _ in 0..count {
                tokio::time::sleep(gap(rng, 200)).await;
                let fault = match rng.below(4) {
                    0 => Fault::Delay(Duration::from_millis(5)),
                    1 => Fault::Delay(Duration::from_millis(30)),
                    2 => Fault::Delay(Duration::from_millis(100)),
                    _ => {
                        resets += 1;
                        Fault::Reset
                    }
                };
                rec.record("-", "proxy", Kind::Info, format!("{fault:?}"));
                proxy.set(fault);
                tokio::time::sleep(Duration::from_millis(300)).await;
                proxy.set(Fault::Pass);
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
            Ok(format!("proxy-delay:{}+reset:{resets}", count - resets))
        }
        Nemesis::KillSpaced {
            count,
            gap: gap_after,
        } => {
            let (mut done, mut holding, mut misses) = (0, 0, 0);
            while holding < count && done < count * 3 && misses < 3 {
                tokio::time::sleep(gap(rng, 100)).await;
                // Nobody holding for 5 s, three times: the workers are stuck (a control that
                // leaked every permit, or a broken primitive); the checkers will tell.
                let Some((id, pid)) = crew.holder(rng).await else {
                    misses += 1;
                    continue;
                };
                rec.record("-", "kill", Kind::Info, format!("w{id}"));
                signal(pid, Signal::SIGKILL);
                crew.holders
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&id);
                if crew.reap_holder(id).await {
                    holding += 1;
                }
                let writer = crew.writers.contains(&id);
                crew.spawn_as(writer)?;
                done += 1;
                tokio::time::sleep(gap_after).await;
            }
            Ok(format!("kill:{done}"))
        }
        Nemesis::Idle(how_long) => {
            tokio::time::sleep(how_long).await;
            Ok("none".into())
        }
        Nemesis::ProxyBlackhole { count, hold } => {
            let proxy = proxies.single.ok_or("no proxy")?;
            for _ in 0..count {
                tokio::time::sleep(gap(rng, 300)).await;
                rec.record("-", "proxy", Kind::Info, "blackhole");
                proxy.set(Fault::Blackhole);
                tokio::time::sleep(hold).await;
                proxy.set(Fault::Pass);
                rec.record("-", "proxy", Kind::Info, "heal");
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
            Ok(format!("proxy-blackhole:{count}"))
        }
    }
}

pub(crate) async fn read_resources(
    resource: &RedisServer,
    keys: usize,
    dir: &Path,
) -> Result<Resources, String> {
    let mut conn = redis::Client::open(resource.url())
        .map_err(|e| e.to_string())?
        .get_multiplexed_async_connection()
        .await
        .map_err(|e| e.to_string())?;
    let mut out = Resources::default();
    for k in 0..keys {
        let key = k.to_string();
        let counter: Option<i64> = conn
            .get(format!("ctr:{k}"))
            .await
            .map_err(|e| e.to_string())?;
        out.counter.insert(key.clone(), counter.unwrap_or(0));
        let log: Vec<u64> = conn
            .lrange(format!("flog:{k}"), 0, -1)
            .await
            .map_err(|e| e.to_string())?;
        out.fence_log.insert(key.clone(), log);
        let lines = std::fs::read_to_string(dir.join(format!("res_{k}.log")))
            .map(|text| text.lines().count() as i64)
            .unwrap_or(0);
        out.file_lines.insert(key, lines);
    }
    Ok(out)
}
