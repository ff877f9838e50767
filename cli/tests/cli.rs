//! The real `redislock` binary against a real redis-server started here.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use ac_redislock_testsupport::{cluster, sentinel, server};
use cluster::Cluster;
use common::{code, key, one_error_line, redislock, run, stderr, stdout, wait_until_held};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use server::RedisServer;

/// One line on stderr, with the prefix, and no panic.
fn assert_one_line_error(output: &Output, want_code: i32, want_text: &str) {
    let line = one_error_line(output, want_code);
    assert!(line.contains(want_text), "{line}");
}

#[test]
fn eight_concurrent_runs_increment_a_shared_counter_exactly_400_times() {
    let dir = tempfile::tempdir().unwrap();
    let counter = dir.path().join("counter");
    std::fs::write(&counter, "0").unwrap();
    let lock_key = key("counter");
    // A read, a pause, then a write: without the lock, concurrent increments get lost.
    let increment = format!(
        "n=$(cat '{0}'); sleep 0.002; echo $((n + 1)) > '{0}'",
        counter.display()
    );
    let workers: Vec<_> = (0..8)
        .map(|_| {
            let (lock_key, increment) = (lock_key.clone(), increment.clone());
            std::thread::spawn(move || {
                for _ in 0..50 {
                    let out = run(&[
                        "run", &lock_key, "--wait", "60s", "--", "sh", "-c", &increment,
                    ]);
                    assert_eq!(code(&out), 0, "{}", stderr(&out));
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().unwrap();
    }
    assert_eq!(std::fs::read_to_string(&counter).unwrap().trim(), "400");
}

#[test]
fn the_same_increments_without_the_lock_lose_updates() {
    // The control for the test above: it proves the workload does race.
    let dir = tempfile::tempdir().unwrap();
    let counter = dir.path().join("counter");
    std::fs::write(&counter, "0").unwrap();
    let increment = format!(
        "n=$(cat '{0}'); sleep 0.002; echo $((n + 1)) > '{0}'",
        counter.display()
    );
    let workers: Vec<_> = (0..8)
        .map(|_| {
            let increment = increment.clone();
            std::thread::spawn(move || {
                for _ in 0..50 {
                    let status = Command::new("sh")
                        .args(["-c", &increment])
                        .status()
                        .unwrap();
                    assert!(status.success());
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().unwrap();
    }
    let count: u32 = std::fs::read_to_string(&counter)
        .unwrap()
        .trim()
        .parse()
        .unwrap_or(0);
    assert!(count < 400, "no update was lost without a lock: {count}");
}

#[test]
fn the_commands_exit_code_passes_through() {
    for want in [0, 3, 42] {
        let out = run(&[
            "run",
            &key("code"),
            "--",
            "sh",
            "-c",
            &format!("exit {want}"),
        ]);
        assert_eq!(code(&out), want, "{}", stderr(&out));
    }
    let out = run(&["run", &key("signal"), "--", "sh", "-c", "kill -KILL $$"]);
    assert_eq!(code(&out), 137, "killed by SIGKILL: 128 + 9");
    let out = run(&["run", &key("missing"), "--", "/no/such/command"]);
    assert_eq!(code(&out), 127);
}

#[test]
fn the_command_gets_key_token_and_fence_in_its_environment() {
    let k = key("env");
    let out = run(&[
        "run",
        &k,
        "--fencing",
        "--",
        "sh",
        "-c",
        "echo \"$REDISLOCK_KEY|$REDISLOCK_TOKEN|$REDISLOCK_FENCE\"",
    ]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let line = stdout(&out);
    let parts: Vec<&str> = line.split('|').collect();
    assert_eq!(parts[0], k);
    assert_eq!(parts[1].len(), 40, "token: {line}");
    assert!(
        parts[2].parse::<u64>().is_ok_and(|f| f > 0),
        "fence: {line}"
    );
    // Released afterwards.
    assert_eq!(code(&run(&["get", &k])), 1);
}

#[test]
fn nonblock_on_a_held_key_gives_the_conflict_code_at_once() {
    let k = key("nonblock");
    let token = stdout(&run(&["lock", &k, "--ttl", "30s"]));
    let started = Instant::now();
    let out = run(&["run", &k, "--nonblock", "--", "true"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(
        stderr(&out).contains("is locked by another owner"),
        "{}",
        stderr(&out)
    );
    assert!(
        !stderr(&out).contains(&token),
        "the holder's token was printed"
    );
    let out = run(&["run", &k, "-n", "-E", "75", "--", "true"]);
    assert_eq!(code(&out), 75);
    let out = run(&["lock", &k, "-E", "75"]);
    assert_eq!(code(&out), 75);
}

#[test]
fn wait_gives_up_at_its_deadline() {
    let k = key("wait");
    let _token = stdout(&run(&["lock", &k, "--ttl", "30s"]));
    let started = Instant::now();
    let out = run(&["run", &k, "--wait", "700ms", "--", "true"]);
    let elapsed = started.elapsed();
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(elapsed >= Duration::from_millis(700), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
}

#[test]
fn a_waiting_run_gets_the_lock_when_it_is_released() {
    let k = key("waits");
    let token = stdout(&run(&["lock", &k, "--ttl", "30s"]));
    let waiter = redislock()
        .args(["run", &k, "--wait", "20s", "--", "sh", "-c", "exit 7"])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(code(&run(&["release", &k, "--value", &token])), 0);
    let out = waiter.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(7));
}

#[test]
fn kill_9_of_a_run_frees_the_key_within_its_ttl() {
    let k = key("kill9");
    let mut holder = redislock()
        .args(["run", &k, "--ttl", "2s", "--", "sleep", "30"])
        .spawn()
        .unwrap();
    wait_until_held(&k);
    kill(Pid::from_raw(holder.id() as i32), Signal::SIGKILL).unwrap();
    holder.wait().unwrap();
    let killed = Instant::now();
    let out = run(&["lock", &k, "--wait", "10s", "--ttl", "1s"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let freed = killed.elapsed();
    assert!(
        freed <= Duration::from_millis(2500),
        "free after {freed:?}, ttl 2 s"
    );
}

#[test]
fn sigterm_reaches_the_command() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("got-term");
    let k = key("sigterm");
    let script = format!(
        "trap 'echo term > \"{}\"; exit 9' TERM; sleep 30 & wait",
        marker.display()
    );
    let mut holder = redislock()
        .args(["run", &k, "--", "sh", "-c", &script])
        .spawn()
        .unwrap();
    wait_until_held(&k);
    std::thread::sleep(Duration::from_millis(200)); // let the trap be set
    kill(Pid::from_raw(holder.id() as i32), Signal::SIGTERM).unwrap();
    let status = holder.wait().unwrap();
    assert_eq!(status.code(), Some(9), "the command's own exit code");
    assert_eq!(std::fs::read_to_string(&marker).unwrap().trim(), "term");
    assert_eq!(
        code(&run(&["get", &k])),
        1,
        "released after the command ended"
    );
}

#[test]
fn a_lease_deleted_behind_a_run_stops_the_command_with_exit_4() {
    let k = key("lost");
    let started = Instant::now();
    let holder = redislock()
        .args([
            "run", &k, "--ttl", "1s", "--grace", "1s", "--", "sleep", "30",
        ])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until_held(&k);
    assert_eq!(code(&run(&["release", &k, "--force"])), 0);
    let out = holder.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(stderr(&out).contains("was lost"), "{}", stderr(&out));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the command was not stopped"
    );
}

#[test]
fn lock_get_status_extend_release() {
    let k = key("seed");
    let out = run(&["lock", &k, "--ttl", "5s", "--value", "worker-7"]);
    assert_eq!((code(&out), stdout(&out)), (0, "worker-7".to_owned()));
    assert_eq!(stdout(&run(&["get", &k])), "worker-7");

    let out = run(&["status", &k, "--json"]);
    let json = stdout(&out);
    assert!(
        json.starts_with(&format!(
            r#"{{"key":"{k}","state":"held","held":true,"ttl_ms":"#
        )),
        "{json}"
    );
    assert!(!json.contains("worker-7"), "status shows the value: {json}");
    assert!(stdout(&run(&["status", &k])).contains(": held, "));

    assert_eq!(
        code(&run(&["extend", &k, "--value", "worker-7", "--ttl", "60s"])),
        0
    );
    let out = run(&["extend", &k, "--value", "other", "--ttl", "60s"]);
    assert_one_line_error(&out, 5, "held by another owner");
    let out = run(&["release", &k, "--value", "other"]);
    assert_one_line_error(&out, 5, "held by another owner");
    assert_eq!(
        code(&run(&[
            "release",
            &k,
            "--value",
            "other",
            "--suppress-mismatch"
        ])),
        0
    );
    assert_eq!(code(&run(&["release", &k, "--value", "worker-7"])), 0);
    assert_eq!(stdout(&run(&["status", &k])), format!("{k}: free"));
    let out = run(&["release", &k, "--value", "worker-7"]);
    assert_one_line_error(&out, 5, "not held");
}

#[test]
fn bad_input_is_one_clear_line_with_the_right_code() {
    let out = run(&["run", "", "--", "true"]);
    assert_one_line_error(&out, 2, "the key is empty");
    let out = run(&["run", &key("ttl0"), "--ttl", "0", "--", "true"]);
    assert_one_line_error(&out, 2, "below run's minimum of 100ms");
    let out = run(&["run", &key("ttl5ms"), "--ttl", "5ms", "--", "true"]);
    assert_one_line_error(&out, 2, "--ttl 5ms is below run's minimum of 100ms");
    let out = run(&["lock", &key("ttl0"), "--ttl", "0s"]);
    assert_one_line_error(&out, 2, "expiry");
    let out = run(&["--url", "http://user:hunter2@example.com/", "lock", "k"]);
    assert_one_line_error(&out, 2, "bad Redis URL");
    assert!(!stderr(&out).contains("hunter2"));

    let port = server::free_port().unwrap();
    let url = format!("redis://:hunter2@127.0.0.1:{port}/");
    let out = run(&[
        "--url",
        &url,
        "--timeout",
        "500ms",
        "run",
        "k",
        "--",
        "true",
    ]);
    assert_one_line_error(&out, 3, "Redis is unavailable");
    assert!(!stderr(&out).contains("hunter2"), "{}", stderr(&out));

    // Usage errors from the argument parser: code 2, no panic.
    for args in [
        vec!["run", "k"],
        vec!["run", "k", "--ttl", "ten", "--", "true"],
        vec!["release", "k"],
        vec!["frobnicate"],
    ] {
        let out = run(&args);
        assert_eq!(code(&out), 2, "{args:?}: {}", stderr(&out));
        assert!(!stderr(&out).contains("panicked"));
    }
}

#[test]
fn every_subcommand_has_help_with_an_example() {
    for sub in ["run", "lock", "release", "get", "status", "extend"] {
        let out = run(&[sub, "--help"]);
        assert_eq!(code(&out), 0);
        let help = stdout(&out);
        assert!(help.contains("Example"), "{sub}: {help}");
        assert!(help.contains(&format!("redislock {sub}")), "{sub}: {help}");
    }
}

#[test]
fn several_urls_are_redlock_and_need_a_majority() {
    let mut nodes: Vec<RedisServer> = (0..3).map(|_| RedisServer::start()).collect();
    let k = key("redlock");
    let args = |nodes: &[RedisServer], rest: &[&str]| -> Output {
        let mut cmd = redislock();
        cmd.env_remove("REDIS_URL").args(["--timeout", "500ms"]);
        for node in nodes {
            cmd.arg("--url").arg(node.url());
        }
        cmd.args(rest).output().unwrap()
    };
    let out = args(&nodes, &["run", &k, "--", "sh", "-c", "exit 7"]);
    assert_eq!(code(&out), 7, "{}", stderr(&out));
    let token = stdout(&args(&nodes, &["lock", &k, "--ttl", "30s"]));
    assert_eq!(token.len(), 40);
    // Every node holds it.
    for node in &nodes {
        let mut conn = redis::Client::open(node.url())
            .unwrap()
            .get_connection()
            .unwrap();
        let value: Option<String> = redis::cmd("GET").arg(&k).query(&mut conn).unwrap();
        assert_eq!(value.as_deref(), Some(token.as_str()));
    }
    assert_eq!(code(&args(&nodes, &["lock", &k])), 1, "held on a majority");
    assert_eq!(code(&args(&nodes, &["release", &k, "--value", &token])), 0);
    nodes[0].kill();
    let out = args(&nodes, &["run", &k, "--", "true"]);
    assert_eq!(code(&out), 0, "one node down of three: {}", stderr(&out));
    nodes[1].kill();
    let out = args(&nodes, &["run", &k, "--", "true"]);
    assert_one_line_error(&out, 3, "quorum not reached: 1 node agreed, 2 needed");
}

#[test]
fn cluster_urls_lock_on_the_cluster() {
    let base = server::per_process_dir(Path::new(env!("CARGO_TARGET_TMPDIR")), "cli-cluster");
    let cluster = Cluster::start(3, Some(&base));
    let k = key("cluster");
    let node = cluster.urls()[1].clone();
    let cli = |rest: &[&str]| -> Output {
        redislock()
            .env_remove("REDIS_URL")
            .args(["--cluster", "--url", &node])
            .args(rest)
            .output()
            .unwrap()
    };
    let out = cli(&[
        "run",
        &k,
        "--fencing",
        "--",
        "sh",
        "-c",
        "test -n \"$REDISLOCK_FENCE\"",
    ]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let token = stdout(&cli(&["lock", &k, "--ttl", "30s"]));
    assert_eq!(token.len(), 40, "{token}");
    assert!(stdout(&cli(&["status", &k])).contains(": held"));
    assert_eq!(code(&cli(&["release", &k, "--value", &token])), 0);
    let out = cli(&["lock", "a}b"]);
    assert_one_line_error(&out, 2, "hash tag");
    let out = redislock()
        .args(["--cluster", "--sentinel", "m", "get", "k"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 2, "--cluster with --sentinel is a usage error");
}

/// The value of `key` in database `db` of `server` of the Sentinel group.
fn get_in(group: &sentinel::Group, server: &RedisServer, db: u32, key: &str) -> Option<String> {
    let url = format!("{}&db={db}", group.url_of(server));
    let mut conn = redis::Client::open(url)
        .and_then(|client| client.get_connection())
        .expect("a connection to the group");
    redis::cmd("GET").arg(key).query(&mut conn).expect("GET")
}

#[test]
fn sentinel_with_passwords_locks_on_the_master_and_follows_a_failover() {
    const MASTER_PASSWORD: &str = "cli-master-secret-51";
    const SENTINEL_PASSWORD: &str = "cli-sentinel-secret-73";
    const WRONG: &str = "cli-wrong-secret-88";
    let mut group = sentinel::Group::start_with(sentinel::Auth::passwords(
        MASTER_PASSWORD,
        SENTINEL_PASSWORD,
    ));
    let url = group.sentinel.url();
    let cli = |password: Option<&str>, rest: &[&str]| -> Output {
        let mut cmd = redislock();
        cmd.env_remove("REDIS_URL")
            .env_remove("REDISLOCK_MASTER_PASSWORD")
            .args([
                "--sentinel",
                sentinel::MASTER,
                "--url",
                &url,
                "--master-db",
                "2",
            ]);
        if let Some(password) = password {
            cmd.env("REDISLOCK_MASTER_PASSWORD", password);
        }
        cmd.args(rest).output().unwrap()
    };
    let assert_hidden = |out: &Output| {
        let shown = format!("{}{}", stdout(out), stderr(out));
        for secret in [MASTER_PASSWORD, SENTINEL_PASSWORD, WRONG] {
            assert!(!shown.contains(secret), "{secret} shown: {shown}");
        }
    };

    // The password from the environment; the lock in the master's database 2.
    let k = key("sentinel-auth");
    let out = cli(Some(MASTER_PASSWORD), &["lock", &k, "--ttl", "60s"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let token = stdout(&out);
    assert_eq!(get_in(&group, &group.master, 2, &k), Some(token.clone()));
    assert_eq!(get_in(&group, &group.master, 0, &k), None);
    let out = cli(Some(MASTER_PASSWORD), &["status", &k]);
    assert!(stdout(&out).contains(": held"), "{}", stderr(&out));

    // No master password: the master refuses, in one line. A wrong one likewise (given on the
    // command line this time), and neither password is ever printed.
    let out = cli(None, &["get", &k]);
    assert_one_line_error(&out, 3, "Authentication required");
    assert_hidden(&out);
    let mut cmd = redislock();
    let out = cmd
        .env_remove("REDIS_URL")
        .env_remove("REDISLOCK_MASTER_PASSWORD")
        .args(["--sentinel", sentinel::MASTER, "--url", &url])
        .args(["--master-password", WRONG, "get", &k])
        .output()
        .unwrap();
    assert_one_line_error(&out, 3, "authentication failed");
    assert_hidden(&out);
    // The sentinel's password missing from its URL: the sentinel refuses.
    let out = redislock()
        .env_remove("REDIS_URL")
        .env("REDISLOCK_MASTER_PASSWORD", MASTER_PASSWORD)
        .args([
            "--sentinel",
            sentinel::MASTER,
            "--url",
            &group.sentinel.bare_url(),
        ])
        .args(["get", &k])
        .output()
        .unwrap();
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    assert_hidden(&out);

    // Failover: once the lock is on the replica, the replica takes over; the holder's value
    // releases it there, and new locks go there too.
    let deadline = Instant::now() + Duration::from_secs(10);
    while get_in(&group, &group.replica, 2, &k).as_deref() != Some(token.as_str()) {
        assert!(Instant::now() < deadline, "never replicated");
        std::thread::sleep(Duration::from_millis(20));
    }
    group.fail_over();
    let out = cli(Some(MASTER_PASSWORD), &["release", &k, "--value", &token]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(get_in(&group, &group.replica, 2, &k), None);
    let out = cli(Some(MASTER_PASSWORD), &["lock", &k]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(get_in(&group, &group.replica, 2, &k), Some(stdout(&out)));
}

#[test]
fn the_master_password_variable_is_read_only_with_sentinel_and_never_shown() {
    let secret = "cli-env-secret-19";
    // Exported for Sentinel runs, it does not get in the way of others.
    let out = redislock()
        .env("REDISLOCK_MASTER_PASSWORD", secret)
        .args(["get", &key("env")])
        .output()
        .unwrap();
    assert_eq!(code(&out), 1, "free: {}", stderr(&out));
    let out = redislock()
        .env("REDISLOCK_MASTER_PASSWORD", secret)
        .arg("--help")
        .output()
        .unwrap();
    assert_eq!(code(&out), 0);
    assert!(stdout(&out).contains("REDISLOCK_MASTER_PASSWORD"));
    assert!(!stdout(&out).contains(secret));
    // The options themselves need --sentinel.
    let out = run(&["--master-password", secret, "get", "k"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(!stderr(&out).contains(secret), "{}", stderr(&out));
}
