//! What the metrics cost: pairs per second of the library built without the feature `metrics`
//! and with it (a Prometheus recorder installed), on one private `redis-server`, in one run.
//!
//! ```text
//! cargo run --release -p ac-redislock-bench --bin metrics-cost
//! ```
//!
//! It builds the `pairs` program twice, `cargo build --release` without and with
//! `--features metrics` (each copy kept as `target/release/pairs-off` and `pairs-on`), starts
//! one `redis-server` (unix socket, no persistence), then for [`ROUNDS`] rounds runs, once per
//! setting (current-thread and multi-thread runtime, 1 and 50 tasks): the copy without the
//! feature, the copy with it and a Prometheus recorder (histograms with buckets, upkeep every
//! second), and the copy with it but no recorder installed, in a rotating order, each for a
//! warm-up of [`WARMUP_MS`] and a window of [`MEASURE_MS`]. It prints per setting the median
//! pairs/s and the median of the per-round ratios to the copy without (goal >= 0.97 with the
//! recorder), the client CPU per pair of each, and checks that the copy with the recorder
//! counted every pair it made.
//!
//! `REDISLOCK_SERVER_BIN` picks another `redis-server` binary, as in the library's tests;
//! `METRICS_COST_ROUNDS` sets the rounds.

use std::path::{Path, PathBuf};
use std::process::Command;

use ac_redislock_bench::stats::median;
use ac_redislock_testsupport::server;

const ROUNDS: usize = 16;
const WARMUP_MS: u64 = 700;
const MEASURE_MS: u64 = 2_000;
/// Each setting: runtime, tasks.
const SETTINGS: [(&str, u32); 4] = [("ct", 1), ("ct", 50), ("mt", 1), ("mt", 50)];

fn main() -> Result<(), String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .ok_or("no workspace root")?
        .to_owned();
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let off = build(&root, &target, false)?;
    let on = build(&root, &target, true)?;
    let rounds = std::env::var("METRICS_COST_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(ROUNDS);

    let server = server::RedisServer::try_start(server::Listen::Unix, &[], None)
        .map_err(|e| format!("could not start {}: {e}", server::server_bin()))?;
    let url = server.url();
    println!(
        "metrics cost: {rounds} rounds, {WARMUP_MS} ms warm-up + {MEASURE_MS} ms per run, \
         try_acquire + release on RedisLock::from_url, redis-server over a unix socket"
    );
    // Per setting and variant: pairs/s and CPU per pair, one of each per round.
    let mut rates = vec![[vec![], vec![], vec![]]; SETTINGS.len()];
    let mut cpus = vec![[vec![], vec![], vec![]]; SETTINGS.len()];
    for round in 0..rounds {
        for (i, (runtime, tasks)) in SETTINGS.iter().enumerate() {
            for step in 0..VARIANTS.len() {
                // A different variant first in each round and setting.
                let v = (round + i + step) % VARIANTS.len();
                let (exe, recorder) = match VARIANTS[v] {
                    Variant::Off => (&off, "prometheus"),
                    Variant::On => (&on, "prometheus"),
                    Variant::OnWithoutRecorder => (&on, "none"),
                };
                let (rate, cpu, counted) = measure(exe, &url, runtime, *tasks, recorder)?;
                if VARIANTS[v] == Variant::On {
                    // Warm-up and window together: at least the window's pairs.
                    let window = rate * MEASURE_MS as f64 / 1e3;
                    match counted {
                        Some(counted) if counted as f64 >= window * 0.99 => {}
                        other => {
                            return Err(format!("counted {other:?} grants, made {window:.0}+"));
                        }
                    }
                }
                rates[i][v].push(rate);
                cpus[i][v].push(cpu);
            }
        }
        eprintln!("round {} of {rounds} done", round + 1);
    }
    println!();
    println!(
        "| runtime | tasks | pairs/s off | on | on/off (goal >= 0.97) | on, no recorder / off \
         | CPU µs/pair off | on | on, no recorder |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let mut met = true;
    for (((runtime, tasks), rate), cpu) in SETTINGS.iter().zip(&rates).zip(&cpus) {
        let ratios =
            |v: usize| -> Vec<f64> { rate[v].iter().zip(&rate[0]).map(|(a, b)| a / b).collect() };
        let (on_ratios, bare_ratios) = (ratios(1), ratios(2));
        let ratio = median(&on_ratios);
        met &= ratio >= 0.97;
        println!(
            "| {} | {tasks} | {:.0} | {:.0} | {:.3} ({:.3}-{:.3}) {} | {:.3} | {:.2} | {:.2} | {:.2} |",
            if *runtime == "ct" {
                "current-thread"
            } else {
                "multi-thread"
            },
            median(&rate[0]),
            median(&rate[1]),
            ratio,
            min(&on_ratios),
            max(&on_ratios),
            if ratio >= 0.97 { "met" } else { "MISSED" },
            median(&bare_ratios),
            median(&cpu[0]),
            median(&cpu[1]),
            median(&cpu[2]),
        );
    }
    println!();
    println!(
        "goal (metrics on within 3% of off, every setting): {}",
        if met { "met" } else { "MISSED" }
    );
    Ok(())
}

/// What a run measures: the library without the feature, with it and a Prometheus recorder,
/// and with it but no recorder installed (what the feature costs by itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Variant {
    Off,
    On,
    OnWithoutRecorder,
}

const VARIANTS: [Variant; 3] = [Variant::Off, Variant::On, Variant::OnWithoutRecorder];

/// Builds `pairs` in release, with the feature `metrics` or without, and keeps a copy of it.
fn build(root: &Path, target: &Path, metrics: bool) -> Result<PathBuf, String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root).args([
        "build",
        "--release",
        "-p",
        "ac-redislock-bench",
        "--bin",
        "pairs",
    ]);
    if metrics {
        cmd.args(["--features", "metrics"]);
    }
    let status = cmd.status().map_err(|e| format!("cargo build: {e}"))?;
    if !status.success() {
        return Err(format!("cargo build of pairs failed: {status}"));
    }
    let built = target.join("release").join("pairs");
    let copy = target
        .join("release")
        .join(if metrics { "pairs-on" } else { "pairs-off" });
    std::fs::copy(&built, &copy).map_err(|e| format!("copy {}: {e}", built.display()))?;
    Ok(copy)
}

/// Runs one copy once: pairs/s, CPU µs per pair, grants counted (with metrics).
fn measure(
    exe: &Path,
    url: &str,
    runtime: &str,
    tasks: u32,
    recorder: &str,
) -> Result<(f64, f64, Option<u64>), String> {
    let out = Command::new(exe)
        .env("PAIRS_RECORDER", recorder)
        .args([
            url,
            runtime,
            &tasks.to_string(),
            &WARMUP_MS.to_string(),
            &MEASURE_MS.to_string(),
        ])
        .output()
        .map_err(|e| format!("{}: {e}", exe.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} failed: {}",
            exe.display(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let line = String::from_utf8_lossy(&out.stdout);
    let mut fields = line.split_whitespace();
    let mut next = || fields.next().ok_or_else(|| format!("short line {line:?}"));
    let rate = next()?.parse::<f64>().map_err(|e| e.to_string())?;
    let cpu = next()?.parse::<f64>().map_err(|e| e.to_string())?;
    let counted = next()?.parse::<u64>().ok();
    Ok((rate, cpu, counted))
}

fn min(values: &[f64]) -> f64 {
    values.iter().copied().fold(f64::INFINITY, f64::min)
}

fn max(values: &[f64]) -> f64 {
    values.iter().copied().fold(f64::NEG_INFINITY, f64::max)
}
