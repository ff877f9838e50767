//! Serves the lock metrics for Prometheus while workers contend for one lock.
//!
//! ```text
//! cargo run -p ac-redislock --features metrics --example prometheus -- \
//!     redis://127.0.0.1:6379/ 127.0.0.1:9898 4
//! curl -s http://127.0.0.1:9898/metrics | grep redislock_
//! ```
//!
//! Arguments, all optional: the Redis URL (`redis://127.0.0.1:6379/`), the address to serve
//! `/metrics` on (`127.0.0.1:9898`), the number of workers (4). Each worker has its own client
//! and loops: wait for the lock `demo:prometheus` (up to 200 ms), hold it 5 ms, release it;
//! a tenth of the time it tries once instead, and one hold in fifty outlives its 100 ms lease
//! without renewal, so that every outcome shows. Stop it with Ctrl-C.

use std::net::SocketAddr;
use std::time::Duration;

use ac_redislock::{AcquireOptions, LockError, RedisLock};
use metrics_exporter_prometheus::PrometheusBuilder;

const KEY: &str = "demo:prometheus";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .unwrap_or_else(|| "redis://127.0.0.1:6379/".to_owned());
    let addr: SocketAddr = args.next().as_deref().unwrap_or("127.0.0.1:9898").parse()?;
    let workers: usize = args.next().as_deref().unwrap_or("4").parse()?;

    // The recorder first: a client reports to the recorder installed when it reports.
    PrometheusBuilder::new()
        .with_http_listener(addr)
        .set_buckets(&[0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0])?
        .install()?;
    ac_redislock::metrics::describe();

    for worker in 0..workers {
        let locks = RedisLock::from_url(&url)?;
        tokio::spawn(async move {
            let mut round: u64 = 0;
            loop {
                round += 1;
                let outcome = if round % 10 == worker as u64 % 10 {
                    locks.try_acquire(KEY).await
                } else {
                    let options = AcquireOptions::new()
                        .ttl(Duration::from_millis(100))
                        .wait(Duration::from_millis(200));
                    locks.acquire_with(KEY, options).await
                };
                match outcome {
                    Ok(guard) => {
                        let hold = if round.is_multiple_of(50) { 150 } else { 5 };
                        tokio::time::sleep(Duration::from_millis(hold)).await;
                        // A hold past its lease ends in a lost lease: the release says so.
                        let _ = guard.release().await;
                    }
                    Err(LockError::Locked { .. }) => {}
                    Err(err) => {
                        eprintln!("worker {worker}: {err}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        });
    }
    println!("serving metrics on http://{addr}/metrics ({workers} workers on {KEY})");
    tokio::signal::ctrl_c().await?;
    Ok(())
}
