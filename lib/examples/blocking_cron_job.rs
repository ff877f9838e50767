//! [`cron_job`](../cron_job.rs) for code without an async runtime: the blocking client, whose
//! guard releases its lock when it is dropped, before the program goes on (here: ends).
//!
//! ```text
//! cargo run --example blocking_cron_job -- redis://127.0.0.1/ [key]
//! ```
//!
//! It takes the lock (30 s lease, renewed while the job runs) or exits 3 at once if another run
//! holds it; does the job; and exits 0 with the guard dropped at the end of `main`, which
//! releases the lock: the next run finds it free.

use std::process::ExitCode;
use std::time::Duration;

use ac_redislock::blocking::RedisLock;
use ac_redislock::{AcquireOptions, LockError};

fn main() -> ExitCode {
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
            eprintln!("blocking_cron_job: {err}");
            return ExitCode::from(2);
        }
    };
    let options = AcquireOptions::new()
        .ttl(Duration::from_secs(30))
        .auto_renew(true);
    let _guard = match locks.try_acquire_with(&key, options) {
        Ok(guard) => guard,
        Err(LockError::Locked { .. }) => {
            println!("blocking_cron_job: {key:?} is held by another run; skipped");
            return ExitCode::from(3);
        }
        Err(err) => {
            eprintln!("blocking_cron_job: {}", ac_redislock::ErrorChain(&err));
            return ExitCode::from(2);
        }
    };
    // The job: a stand-in for the real work.
    std::thread::sleep(Duration::from_millis(20));
    println!("blocking_cron_job: {key:?} done");
    ExitCode::SUCCESS
} // `_guard` is dropped here and releases the lock before `main` returns; then `locks`.
