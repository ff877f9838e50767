//! `redislock run` with a semaphore (`--limit`), a read-write lock (`--shared`, `--exclusive`)
//! and several keys (`--key`), the real binary against a real redis-server started here.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{code, key, redis, redislock, run, stderr};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// A section that appends `+` when it starts and `-` when it ends to `log` (one line each,
/// appended atomically by `echo >>`), sleeping `secs` between.
fn section(log: &Path, secs: &str) -> String {
    format!(
        "echo + >> '{0}'; sleep {secs}; echo - >> '{0}'",
        log.display()
    )
}

/// The most sections open at once in a `section` log.
fn most_at_once(log: &Path) -> usize {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let (mut open, mut most) = (0usize, 0usize);
    for line in text.lines() {
        match line.trim() {
            "+" => {
                open += 1;
                most = most.max(open);
            }
            "-" => open = open.saturating_sub(1),
            _ => {}
        }
    }
    most
}

/// Starts `count` runs of `args` then the section, and waits for them all; returns their codes.
fn runs_at_once(count: usize, args: &[&str], sh: &str) -> Vec<i32> {
    let children: Vec<_> = (0..count)
        .map(|_| {
            redislock()
                .args(args)
                .args(["--", "sh", "-c", sh])
                .spawn()
                .unwrap()
        })
        .collect();
    children
        .into_iter()
        .map(|child| {
            child
                .wait_with_output()
                .unwrap()
                .status
                .code()
                .unwrap_or(-1)
        })
        .collect()
}

#[test]
fn limit_lets_at_most_n_commands_run_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("sections");
    let k = key("limit");
    let args = ["run", &k, "--limit", "2", "--wait", "30s"];
    let codes = runs_at_once(6, &args, &section(&log, "0.3"));
    assert_eq!(codes, vec![0; 6]);
    assert_eq!(
        most_at_once(&log),
        2,
        "{}",
        std::fs::read_to_string(&log).unwrap()
    );
}

#[test]
fn without_a_limit_the_same_commands_overlap() {
    // The control of the test above: the workload does run more than 2 at once when nothing
    // holds it back, so the check there can fail.
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("sections");
    let children: Vec<_> = (0..6)
        .map(|_| {
            std::process::Command::new("sh")
                .args(["-c", &section(&log, "0.3")])
                .spawn()
                .unwrap()
        })
        .collect();
    for mut child in children {
        child.wait().unwrap();
    }
    assert!(most_at_once(&log) > 2);
}

#[test]
fn a_full_semaphore_is_a_conflict_and_a_killed_holder_frees_its_permit() {
    let k = key("full");
    let mut holder = redislock()
        .args([
            "run", &k, "--limit", "1", "--ttl", "1s", "--", "sleep", "30",
        ])
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let out = loop {
        let out = run(&["run", &k, "--limit", "1", "--nonblock", "--", "true"]);
        if code(&out) == 1 || Instant::now() > deadline {
            break out;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(stderr(&out).contains("all 1 permits"), "{}", stderr(&out));
    kill(Pid::from_raw(holder.id() as i32), Signal::SIGKILL).unwrap();
    holder.wait().unwrap();
    let killed = Instant::now();
    let out = run(&["run", &k, "--limit", "1", "--wait", "10s", "--", "true"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let freed = killed.elapsed();
    assert!(
        freed < Duration::from_millis(1800),
        "free after {freed:?}, ttl 1 s"
    );
}

#[test]
fn shared_runs_share_and_an_exclusive_one_is_alone() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("readers");
    let k = key("rw");
    let codes = runs_at_once(3, &["run", &k, "--shared"], &section(&log, "0.5"));
    assert_eq!(codes, vec![0; 3]);
    assert_eq!(most_at_once(&log), 3, "readers did not share");

    let mut reader = redislock()
        .args(["run", &k, "--shared", "--", "sleep", "30"])
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let out = loop {
        let out = run(&["run", &k, "--exclusive", "--nonblock", "--", "true"]);
        if code(&out) == 1 || Instant::now() > deadline {
            break out;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(stderr(&out).contains("held by readers"), "{}", stderr(&out));
    reader.kill().unwrap();
    reader.wait().unwrap();
}

#[test]
fn more_keys_are_held_together_and_freed_together() {
    let a = key("multi-a");
    let b = key("multi-b");
    let mut holder = redislock()
        .args(["run", &a, "--key", &b, "--", "sleep", "30"])
        .spawn()
        .unwrap();
    common::wait_until_held(&a);
    common::wait_until_held(&b);
    let out = run(&["run", &b, "--nonblock", "--", "true"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let out = run(&["run", &b, "--key", "free-one", "--nonblock", "--", "true"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let left: Option<String> = redis::cmd("GET")
        .arg("free-one")
        .query(&mut redis())
        .unwrap();
    assert_eq!(left, None, "a refused run took a key");
    // SIGTERM to redislock: the command is stopped and both keys are released.
    kill(Pid::from_raw(holder.id() as i32), Signal::SIGTERM).unwrap();
    holder.wait().unwrap();
    let out = run(&["run", &a, "--key", &b, "--wait", "5s", "--", "true"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
}

#[test]
fn conflicting_options_are_usage_errors() {
    let k = key("usage");
    for args in [
        vec!["run", &k, "--limit", "0", "--", "true"],
        vec!["run", &k, "--limit", "2", "--shared", "--", "true"],
        vec!["run", &k, "--shared", "--exclusive", "--", "true"],
        vec!["run", &k, "--key", "other", "--limit", "2", "--", "true"],
        vec!["run", &k, "--shared", "--fencing", "--", "true"],
    ] {
        let out = run(&args);
        assert_eq!(code(&out), 2, "{args:?}: {}", stderr(&out));
    }
}
