//! A storm: six looping `redislock run` workers on one key, 1 s leases, sections of 0.5 to
//! 1.5 s (renewed), and random redislock processes (half the time the holder) SIGKILLed for
//! 30 s. Each section stamps the time every 10 ms; no two sections may overlap, killed ones
//! included (their command dies with redislock, so its last stamp comes before the lock can be
//! anyone else's). Its own test binary, so its load does not bend the timing of the other CLI
//! tests.

mod common;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Child;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{key, redislock, stamps};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

const WORKERS: usize = 6;
const STORM: Duration = Duration::from_secs(30);

/// A section: stamps the time (µs) in the file `$1` every 10 ms for `$2` µs.
const SECTION: &str = r#"f="$1"; long="$2"; start=${EPOCHREALTIME/[.,]/}
while :; do
  now=${EPOCHREALTIME/[.,]/}; echo "$now" >> "$f"
  [ $((now - start)) -ge "$long" ] && break
  sleep 0.01
done
"#;

/// A small xorshift generator: the storm needs variety, not quality.
struct Dice(u64);

impl Dice {
    fn new(salt: u64) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        Self((nanos ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15)) | 1)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

#[test]
fn sigkills_in_a_storm_of_runs_never_let_two_sections_overlap() {
    let dir = tempfile::tempdir().unwrap();
    let section = dir.path().join("section.sh");
    std::fs::write(&section, SECTION).unwrap();
    let k = key("storm");
    // Each worker's redislock process and its section's file.
    let running: Arc<Mutex<HashMap<usize, (u32, PathBuf)>>> = Arc::default();
    let over = Arc::new(AtomicBool::new(false));
    let files: Arc<Mutex<Vec<PathBuf>>> = Arc::default();
    let killed = Arc::new(AtomicUsize::new(0));

    let workers: Vec<_> = (0..WORKERS)
        .map(|worker| {
            let (section, k, dir) = (section.clone(), k.clone(), dir.path().to_owned());
            let (running, over, files) = (running.clone(), over.clone(), files.clone());
            std::thread::spawn(move || {
                let mut dice = Dice::new(worker as u64 + 1);
                let mut round = 0;
                while !over.load(Ordering::Relaxed) {
                    let file = dir.join(format!("w{worker}-{round}"));
                    round += 1;
                    let long_us = 500_000 + dice.below(1_000_000);
                    let mut child: Child = redislock()
                        .args([
                            "-q", "run", &k, "--ttl", "1s", "--wait", "20s", "--", "bash",
                        ])
                        .arg(&section)
                        .arg(&file)
                        .arg(long_us.to_string())
                        .spawn()
                        .unwrap();
                    files.lock().unwrap().push(file.clone());
                    running.lock().unwrap().insert(worker, (child.id(), file));
                    child.wait().unwrap();
                    running.lock().unwrap().remove(&worker);
                }
            })
        })
        .collect();

    let started = Instant::now();
    let mut dice = Dice::new(99);
    while started.elapsed() < STORM {
        std::thread::sleep(Duration::from_millis(200 + dice.below(600)));
        // Half the time the holder (whose section has begun), else any of them.
        let holder = dice.below(2) == 0;
        let pids: Vec<u32> = running
            .lock()
            .unwrap()
            .values()
            .filter(|(_, file)| !holder || file.exists())
            .map(|(pid, _)| *pid)
            .collect();
        if pids.is_empty() {
            continue;
        }
        let pid = pids[dice.below(pids.len() as u64) as usize];
        if kill(Pid::from_raw(pid as i32), Signal::SIGKILL).is_ok() {
            killed.fetch_add(1, Ordering::Relaxed);
        }
    }
    over.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.join().unwrap();
    }

    let mut sections: Vec<(u64, u64, String)> = files
        .lock()
        .unwrap()
        .iter()
        .filter_map(|file| {
            let stamps = stamps(file);
            let name = file.file_name().unwrap().to_string_lossy().into_owned();
            Some((*stamps.first()?, *stamps.last()?, name))
        })
        .collect();
    sections.sort();
    let mut overlaps = Vec::new();
    for pair in sections.windows(2) {
        let ((_, end, a), (start, _, b)) = (&pair[0], &pair[1]);
        if start <= end {
            overlaps.push(format!("{a} ran until {end}, {b} started at {start}"));
        }
    }
    let killed = killed.load(Ordering::Relaxed);
    eprintln!(
        "storm: {} sections ran, {killed} redislock processes SIGKILLed, {} overlaps",
        sections.len(),
        overlaps.len()
    );
    assert!(overlaps.is_empty(), "overlapping sections: {overlaps:#?}");
    assert!(
        sections.len() >= 15 && killed >= 20,
        "the storm was too small to mean anything: {} sections, {killed} kills",
        sections.len()
    );
}
