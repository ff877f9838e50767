//! One measurement for `metrics-cost` (see `metrics_cost.rs`): uncontended lock + release
//! pairs (`try_acquire`, then `LockGuard::release`, on `RedisLock::from_url`), from `TASKS`
//! tasks rotating over keys of their own, for `MEASURE_MS` after `WARMUP_MS`.
//!
//! ```text
//! pairs URL ct|mt TASKS WARMUP_MS MEASURE_MS
//! ```
//!
//! Prints one line: pairs per second, client CPU microseconds per pair, and, when built with
//! the feature `metrics`, the granted acquisitions the Prometheus recorder counted (`-`
//! without it). Built with the feature, it installs that recorder first (histograms with
//! buckets), as a service that exports its metrics would, with its upkeep every second;
//! unless `PAIRS_RECORDER=none`, which measures the feature with no recorder installed.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ac_redislock::RedisLock;
use ac_redislock_bench::cpu;

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, runtime, tasks, warmup, measure] = args.as_slice() else {
        return Err("usage: pairs URL ct|mt TASKS WARMUP_MS MEASURE_MS".into());
    };
    let number = |s: &str| s.parse::<u64>().map_err(|e| format!("{s}: {e}"));
    let tasks = usize::try_from(number(tasks)?).map_err(|e| e.to_string())?;
    let warmup = Duration::from_millis(number(warmup)?);
    let measure = Duration::from_millis(number(measure)?);
    let recorder = install_recorder()?;
    let runtime = match runtime.as_str() {
        "ct" => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        "mt" => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build(),
        other => return Err(format!("runtime {other}: ct or mt")),
    }
    .map_err(|e| e.to_string())?;
    let (pairs_per_s, cpu_per_pair) = runtime.block_on(run(url, tasks, warmup, measure))?;
    println!(
        "{pairs_per_s:.0} {cpu_per_pair:.3} {}",
        recorder.map_or_else(|| "-".to_owned(), |granted| granted().to_string())
    );
    Ok(())
}

async fn run(
    url: &str,
    tasks: usize,
    warmup: Duration,
    measure: Duration,
) -> Result<(f64, f64), String> {
    let locks = RedisLock::from_url(url).map_err(|e| e.to_string())?;
    let pairs = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut handles = Vec::with_capacity(tasks);
    for task in 0..tasks {
        let (locks, pairs, stop) = (locks.clone(), Arc::clone(&pairs), Arc::clone(&stop));
        let keys: Vec<String> = (0..16).map(|i| format!("bench:mc:{task}:{i}")).collect();
        handles.push(tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let guard = locks.try_acquire(&keys[i % keys.len()]).await?;
                guard.release().await?;
                pairs.fetch_add(1, Ordering::Relaxed);
                i += 1;
            }
            Ok::<(), ac_redislock::LockError>(())
        }));
    }
    tokio::time::sleep(warmup).await;
    let (start, before, cpu_before) = (
        Instant::now(),
        pairs.load(Ordering::Relaxed),
        cpu::process_cpu(),
    );
    tokio::time::sleep(measure).await;
    let (done, cpu_used) = (
        pairs.load(Ordering::Relaxed) - before,
        cpu::process_cpu() - cpu_before,
    );
    let elapsed = start.elapsed();
    stop.store(true, Ordering::Relaxed);
    for handle in handles {
        handle
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("a pair failed: {e}"))?;
    }
    let per_pair = cpu::micros_per(cpu_used, done).unwrap_or(0.0);
    Ok((done as f64 / elapsed.as_secs_f64(), per_pair))
}

/// With the feature: installs the Prometheus recorder, and returns how to read the granted
/// acquisitions it counted.
#[cfg(feature = "metrics")]
fn install_recorder() -> Result<Option<Box<dyn Fn() -> u64>>, String> {
    if std::env::var("PAIRS_RECORDER").as_deref() == Ok("none") {
        return Ok(None);
    }
    let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
        .set_buckets(&[0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0])
        .map_err(|e| e.to_string())?
        .install_recorder()
        .map_err(|e| e.to_string())?;
    ac_redislock::metrics::describe();
    // What `install` (with its HTTP listener) does in a service: drain the histograms'
    // samples into their summaries now and then (every 5 s there; here every second, as the
    // runs are short), so that they do not pile up.
    let upkeep = handle.clone();
    std::thread::spawn(move || {
        loop {
            std::thread::sleep(Duration::from_secs(1));
            upkeep.run_upkeep();
        }
    });
    Ok(Some(Box::new(move || {
        handle
            .render()
            .lines()
            .filter(|line| {
                line.starts_with(ac_redislock::metrics::ACQUISITIONS)
                    && line.contains("outcome=\"granted\"")
            })
            .filter_map(|line| line.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    })))
}

#[cfg(not(feature = "metrics"))]
fn install_recorder() -> Result<Option<Box<dyn Fn() -> u64>>, String> {
    Ok(None)
}
