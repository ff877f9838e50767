//! What the CLI's test binaries share: the redis-server of one binary, the real `redislock`
//! pointed at it, and checks on processes.
// Each test binary compiles this module and uses a part of it.
#![allow(dead_code, unreachable_pub)]

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use ac_redislock_testsupport::server::{self, Listen, RedisServer};

pub fn server() -> &'static RedisServer {
    static SERVER: OnceLock<RedisServer> = OnceLock::new();
    SERVER.get_or_init(|| {
        let base = server::per_process_dir(Path::new(env!("CARGO_TARGET_TMPDIR")), "cli");
        RedisServer::try_start(Listen::Unix, &[], Some(&base))
            .unwrap_or_else(|err| panic!("could not start redis-server: {err}"))
    })
}

/// A key no other test uses.
pub use ac_redislock_testsupport::unique_key as key;

/// `redislock` with REDIS_URL pointing at the test server.
pub fn redislock() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_redislock"));
    cmd.env("REDIS_URL", server().url()).stdin(Stdio::null());
    cmd
}

pub fn run(args: &[&str]) -> Output {
    redislock().args(args).output().unwrap()
}

pub fn code(output: &Output) -> i32 {
    output.status.code().unwrap_or(-1)
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// Waits (up to 10 s) until `key` is held.
pub fn wait_until_held(key: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while code(&run(&["get", key])) != 0 {
        assert!(Instant::now() < deadline, "{key} never got locked");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A connection to the test server, for checks.
pub fn redis() -> redis::Connection {
    redis::Client::open(server().url())
        .and_then(|client| client.get_connection())
        .expect("a connection to the test server")
}

/// How many waiters are queued for `key`.
pub fn waiters(key: &str) -> usize {
    redis::cmd("ZCARD")
        .arg(ac_redislock_testsupport::conn::companion(key, "waiters"))
        .query(&mut redis())
        .expect("ZCARD")
}

/// Waits (up to 10 s) until `count` waiters are queued for `key`.
pub fn wait_for_waiters(key: &str, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while waiters(key) < count {
        assert!(Instant::now() < deadline, "{key} never got {count} waiters");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Whether process `pid` runs: it exists and is not a zombie (a zombie has ended; its parent,
/// or init, has not reaped it yet).
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        // `pid (comm) state ...`; comm may hold spaces and parentheses.
        stat.rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X")
    })
}

/// Waits until the file at `path` holds a pid, and returns it.
pub fn read_pid(path: &Path) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(pid) = std::fs::read_to_string(path)
            .ok()
            .and_then(|text| text.trim().parse().ok())
        {
            return pid;
        }
        assert!(
            Instant::now() < deadline,
            "{} never got a pid",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// `sh_command` run on a pseudo-terminal of its own (util-linux `script`), in the foreground
/// of it, as if typed in a terminal; what is written to the returned child's stdin is typed
/// (`"\x03"` is Ctrl-C), and its stdout is what the terminal shows. `script -e` exits with the
/// command's code.
pub fn on_a_terminal(sh_command: &str) -> std::process::Child {
    Command::new("script")
        .args(["-q", "-f", "-e", "-c", sh_command, "/dev/null"])
        .env("REDIS_URL", server().url())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("`script` (util-linux) runs a command on a pseudo-terminal; install util-linux")
}

/// The times (µs since the epoch, one per line) written to `path` by a section of a test.
pub fn stamps(path: &Path) -> Vec<u64> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.trim().parse().ok())
        .collect()
}

/// One line on stderr, with the prefix, no panic, the code wanted; returns the line.
pub fn one_error_line(output: &Output, want_code: i32) -> String {
    let err = stderr(output);
    assert_eq!(code(output), want_code, "stderr: {err}");
    assert!(!err.contains("panicked"), "{err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(lines[0].starts_with("redislock: error: "), "{err}");
    lines[0].to_owned()
}
