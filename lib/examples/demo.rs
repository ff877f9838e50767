//! The main demo: a job queue where several workers pull the same jobs and every job is done
//! exactly once.
//!
//! ```text
//! cargo run --example demo
//! ```
//!
//! Each worker walks all jobs in its own random order. For each job it takes the job's lock
//! with `lock_key`; if it gets it and the job is not done yet, it does the job (a few
//! milliseconds of "work" that appends a line to the job's result file) and releases the lock.
//! At the end the demo counts the lines of every result file: one line each means every job was
//! done exactly once; it fails otherwise.
//!
//! Where the locks live:
//! - `REDIS_URL` when it is set (workers are separate processes);
//! - otherwise a private `redis-server` started for the run, if one is on PATH (processes too);
//! - otherwise the in-memory store, with the workers as tasks in this one process.
//!
//! `cargo run --example demo -- --without-locks` runs the same workers without the locks, to
//! show what the locks prevent: jobs done twice.

use std::fs::OpenOptions;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};

use ac_redislock::{LockError, LockParams, RedisLock, ReleaseParams};
use ac_redislock_testsupport::server;

const WORKERS: usize = 4;
const JOBS: usize = 200;
const URL_VAR: &str = "DEMO_WORKER_REDIS_URL";

/// What one worker did.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    done: usize,
    already_done: usize,
    locked: usize,
}

impl Tally {
    fn to_line(self) -> String {
        format!(
            "done={} already_done={} locked={}",
            self.done, self.already_done, self.locked
        )
    }

    fn from_line(line: &str) -> Option<Self> {
        let mut tally = Self::default();
        for field in line.split_whitespace() {
            let (name, value) = field.split_once('=')?;
            let value: usize = value.parse().ok()?;
            match name {
                "done" => tally.done = value,
                "already_done" => tally.already_done = value,
                "locked" => tally.locked = value,
                _ => return None,
            }
        }
        Some(tally)
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let result = match args.get(1).map(String::as_str) {
        Some("--worker") => worker_process(&args[2..]).await,
        None => coordinate(true).await,
        Some("--without-locks") => coordinate(false).await,
        Some(other) => Err(format!("unknown argument {other:?}; try --without-locks").into()),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("demo: error: {err}");
            ExitCode::FAILURE
        }
    }
}

type DemoResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

async fn coordinate(use_locks: bool) -> DemoResult<ExitCode> {
    let jobs_dir = tempfile::tempdir()?;
    let run = format!("demo:{}:{}", std::process::id(), unix_millis());
    let started = Instant::now();

    let mut _private_server = None;
    let redis_url = match std::env::var("REDIS_URL") {
        Ok(url) if !url.is_empty() => {
            println!("Locks on the Redis in REDIS_URL ({}).", redact(&url));
            Some(url)
        }
        _ if server::server_available() => {
            let server = server::RedisServer::try_start(server::Listen::Unix, &[], None)?;
            let url = server.url();
            println!("Locks on a private redis-server started for this run ({url}).");
            _private_server = Some(server);
            Some(url)
        }
        _ => {
            println!(
                "No REDIS_URL and no redis-server on PATH: running on the in-memory store, \
                 which locks within this one process only."
            );
            None
        }
    };

    if !use_locks {
        println!("WITHOUT LOCKS: workers only check whether a job is done before doing it.");
    }
    let tallies = match &redis_url {
        Some(url) => {
            println!(
                "{WORKERS} worker processes pull the same {JOBS} jobs, each in its own order.\n"
            );
            run_processes(url, jobs_dir.path(), &run, use_locks).await?
        }
        None => {
            println!("{WORKERS} worker tasks pull the same {JOBS} jobs, each in its own order.\n");
            let locks = RedisLock::in_memory();
            let mut tasks = tokio::task::JoinSet::new();
            for worker in 1..=WORKERS {
                let (locks, dir, run) = (locks.clone(), jobs_dir.path().to_owned(), run.clone());
                tasks.spawn(async move { work(&locks, &dir, &run, worker, use_locks).await });
            }
            let mut tallies = Vec::new();
            while let Some(tally) = tasks.join_next().await {
                tallies.push(tally??);
            }
            tallies
        }
    };

    let mut refusals = 0;
    for (i, tally) in tallies.iter().enumerate() {
        println!(
            "  worker {}: did {:3} jobs; skipped {:3} already done and {:3} locked by another worker",
            i + 1,
            tally.done,
            tally.already_done,
            tally.locked
        );
        refusals += tally.locked;
    }
    // How many times each job was done: the lines in its result file.
    let mut once = 0;
    let mut more = 0;
    for job in 0..JOBS {
        match std::fs::read_to_string(result_path(jobs_dir.path(), job)) {
            Ok(text) if text.lines().count() == 1 => once += 1,
            Ok(_) => more += 1,
            Err(err) if err.kind() == ErrorKind::NotFound => {}
            Err(err) => return Err(err.into()),
        }
    }
    let never = JOBS - once - more;
    println!(
        "\njobs: {JOBS}; done exactly once: {once}; done more than once: {more}; never done: \
         {never}; lock refusals (423): {refusals}; {:.2} s",
        started.elapsed().as_secs_f64()
    );
    if once == JOBS {
        println!("OK: every job was done exactly once.");
        Ok(ExitCode::SUCCESS)
    } else {
        println!("FAILED: some jobs were done more than once or not at all.");
        Ok(ExitCode::FAILURE)
    }
}

/// Starts the worker processes (this same binary with `--worker`) and collects their tallies.
async fn run_processes(
    url: &str,
    dir: &Path,
    run: &str,
    use_locks: bool,
) -> DemoResult<Vec<Tally>> {
    let exe = std::env::current_exe()?;
    let mut children = Vec::new();
    for worker in 1..=WORKERS {
        let child = tokio::process::Command::new(&exe)
            .arg("--worker")
            .arg(worker.to_string())
            .arg(dir)
            .arg(run)
            .arg(if use_locks { "locks" } else { "no-locks" })
            // The URL goes by environment, not argv: it may hold a password.
            .env(URL_VAR, url)
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        children.push(child);
    }
    let mut tallies = Vec::new();
    for (i, child) in children.into_iter().enumerate() {
        let output = child.wait_with_output().await?;
        let text = String::from_utf8_lossy(&output.stdout);
        let tally = text
            .lines()
            .find_map(Tally::from_line)
            .filter(|_| output.status.success())
            .ok_or_else(|| format!("worker {} failed ({})", i + 1, output.status))?;
        tallies.push(tally);
    }
    Ok(tallies)
}

/// `--worker <n> <jobs dir> <run> locks|no-locks`: one worker process.
async fn worker_process(args: &[String]) -> DemoResult<ExitCode> {
    let [worker, dir, run, mode] = args else {
        return Err("usage: demo --worker <n> <jobs dir> <run> locks|no-locks".into());
    };
    let url = std::env::var(URL_VAR)?;
    let locks = RedisLock::from_url(&url)?;
    let use_locks = mode == "locks";
    let tally = work(&locks, Path::new(dir), run, worker.parse()?, use_locks).await?;
    println!("{}", tally.to_line());
    Ok(ExitCode::SUCCESS)
}

/// One worker: walks every job in its own order and does those it can lock and finds undone.
async fn work(
    locks: &RedisLock,
    dir: &Path,
    run: &str,
    worker: usize,
    use_locks: bool,
) -> DemoResult<Tally> {
    let mut tally = Tally::default();
    let mut rng = Rng::new(worker as u64 ^ u64::from(std::process::id()) ^ unix_millis());
    let mut order: Vec<usize> = (0..JOBS).collect();
    for i in (1..order.len()).rev() {
        order.swap(i, rng.below(i + 1));
    }
    for job in order {
        let result_file = result_path(dir, job);
        if result_file.exists() {
            tally.already_done += 1;
            continue;
        }
        let key = format!("{run}:job:{job}");
        let token = if use_locks {
            match locks
                .lock_key(LockParams::new(&key).expires(Duration::from_secs(10)))
                .await
            {
                Ok(token) => Some(token),
                Err(LockError::Locked { .. }) => {
                    tally.locked += 1;
                    continue;
                }
                Err(err) => return Err(err.into()),
            }
        } else {
            None
        };
        // Someone may have finished the job between our check and our lock.
        if result_file.exists() {
            tally.already_done += 1;
        } else {
            // The "work": a few milliseconds, then the result.
            tokio::time::sleep(Duration::from_millis(1 + rng.below(4) as u64)).await;
            let mut file = OpenOptions::new()
                .append(true)
                .create(true)
                .open(&result_file)?;
            writeln!(file, "job {job} done by worker {worker}")?;
            tally.done += 1;
        }
        if let Some(token) = token {
            locks
                .release_lock(ReleaseParams::new(&key).value(token))
                .await?;
        }
    }
    Ok(tally)
}

fn result_path(dir: &Path, job: usize) -> PathBuf {
    dir.join(format!("job-{job:04}.txt"))
}

fn unix_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Hides a password in a Redis URL (`user:***@host`, `pass=***`).
fn redact(url: &str) -> String {
    let mut out = url.to_owned();
    if let Some((scheme, rest)) = url.split_once("://") {
        let authority_end = rest.find('/').unwrap_or(rest.len());
        if let Some(at) = rest[..authority_end].rfind('@') {
            let userinfo = &rest[..at];
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            out = format!("{scheme}://{user}:***@{}", &rest[at + 1..]);
        }
    }
    if let Some(start) = out.find("pass=").or_else(|| out.find("password=")) {
        let value_start = start + out[start..].find('=').unwrap_or(0) + 1;
        let value_end = out[value_start..]
            .find('&')
            .map_or(out.len(), |i| value_start + i);
        out.replace_range(value_start..value_end, "***");
    }
    out
}

/// A small xorshift generator: enough to shuffle the job order.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed | 1)
    }

    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}
