//! A job that must never run twice at once, started by cron (or a CI schedule, or a systemd
//! timer) on several hosts: the async client, with the guard dropped where its function ends,
//! and [`RedisLock::close`] before `main` returns.
//!
//! ```text
//! cargo run --example cron_job -- redis://127.0.0.1/ [key]
//! ```
//!
//! It takes the lock (30 s lease, renewed while the job runs) or exits 3 at once if another run
//! holds it; does the job; and exits 0. Run it twice in a row: the second run finds the lock
//! free, because `close` waited for the dropped guard's release. Without the `close`, the
//! release would go to a runtime that is shutting down, and the next run would find the lock
//! taken for the rest of its 30 s.

use std::process::ExitCode;
use std::time::Duration;

use ac_redislock::{AcquireOptions, LockError, RedisLock};

/// Runs the job if this run gets the lock; returns whether it did.
async fn nightly_report(locks: &RedisLock, key: &str) -> ac_redislock::Result<bool> {
    let options = AcquireOptions::new()
        .ttl(Duration::from_secs(30))
        .auto_renew(true);
    let _guard = match locks.try_acquire_with(key, options).await {
        Ok(guard) => guard,
        Err(LockError::Locked { .. }) => return Ok(false),
        Err(err) => return Err(err),
    };
    // The job: a stand-in for the real work.
    tokio::time::sleep(Duration::from_millis(20)).await;
    Ok(true)
} // `_guard` is dropped here, on every path: its release goes to the background.

#[tokio::main]
async fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .unwrap_or_else(|| "redis://127.0.0.1/".to_owned());
    let key = args
        .next()
        .unwrap_or_else(|| "cron:nightly-report".to_owned());
    let locks = match RedisLock::from_url(&url) {
        Ok(locks) => locks,
        Err(err) => {
            eprintln!("cron_job: {err}");
            return ExitCode::from(2);
        }
    };
    let report = nightly_report(&locks, &key).await;
    // The dropped guard's release is sent and answered before the runtime goes.
    if let Err(err) = locks.close().await {
        eprintln!("cron_job: {err}");
    }
    match report {
        Ok(true) => {
            println!("cron_job: {key:?} done");
            ExitCode::SUCCESS
        }
        Ok(false) => {
            println!("cron_job: {key:?} is held by another run; skipped");
            ExitCode::from(3)
        }
        Err(err) => {
            eprintln!("cron_job: {}", ac_redislock::ErrorChain(&err));
            ExitCode::from(2)
        }
    }
}
