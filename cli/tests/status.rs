//! `redislock status`: the holder label of a held lock (given with `lock --holder`, or the
//! default of `run`), and `status --watch`: a refresh a second, on a pipe and on a terminal,
//! ended promptly by a signal or a closed stdout.

mod common;

use std::io::{Read, Write};
use std::process::{Child, ChildStdout, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{code, key, on_a_terminal, redislock, run, stderr, stdout, wait_until_held};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// A child killed when the test ends, passed or failed, so that a failing test leaves no
/// `redislock status --watch` (or `run`) behind.
struct Killed(Child);

impl std::ops::Deref for Killed {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Killed {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Killed {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn send(pid: u32, signal: Signal) {
    kill(Pid::from_raw(pid as i32), signal).unwrap();
}

fn wait_exit(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "still running after {within:?}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// What a child writes on `out`, gathered by a thread, with when each chunk came.
#[derive(Clone, Default)]
struct Gathered(Arc<Mutex<Chunks>>);

/// The text so far, and when it reached each length.
type Chunks = (String, Vec<(Instant, usize)>);

impl Gathered {
    fn from(mut out: impl Read + Send + 'static) -> Self {
        let gathered = Self::default();
        let into = gathered.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = out.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let mut inner = into.0.lock().unwrap();
                inner.0.push_str(&String::from_utf8_lossy(&buf[..n]));
                let len = inner.0.len();
                inner.1.push((Instant::now(), len));
            }
        });
        gathered
    }

    fn text(&self) -> String {
        self.0.lock().unwrap().0.clone()
    }

    /// Waits (up to 10 s) until `done` holds for the text so far.
    fn wait_for(&self, what: &str, done: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let text = self.text();
            if done(&text) {
                return text;
            }
            assert!(Instant::now() < deadline, "no {what} after 10 s: {text:?}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// When the text first reached `len` bytes.
    fn reached(&self, len: usize) -> Instant {
        let inner = self.0.lock().unwrap();
        inner.1.iter().find(|(_, at)| *at >= len).unwrap().0
    }
}

#[test]
fn status_shows_the_label_given_with_lock_and_never_the_token() {
    let k = key("label");
    let out = run(&["lock", &k, "--ttl", "30s", "--holder", "web-3:4121 nightly"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let token = stdout(&out);
    // The lock's value is the token printed, as without a label.
    assert_eq!(stdout(&run(&["get", &k])), token);
    let line = stdout(&run(&["status", &k]));
    assert!(
        line.starts_with(&format!("{k}: held by web-3:4121 nightly for ")),
        "{line}"
    );
    assert!(line.contains("s left"), "{line}");
    let json = stdout(&run(&["status", &k, "--json"]));
    assert!(
        json.contains(r#""holder":"web-3:4121 nightly","held_for_ms":"#),
        "{json}"
    );
    assert!(json.contains(r#""held_since_ms":1"#), "{json}");
    // A conflict names the holder.
    let conflict = run(&["run", &k, "--nonblock", "--", "true"]);
    assert_eq!(code(&conflict), 1);
    let said = stderr(&conflict);
    assert!(
        said.contains("is locked by another owner (web-3:4121 nightly, for "),
        "{said}"
    );
    for shown in [&line, &json, &said] {
        assert!(!shown.contains(&token), "the token was printed: {shown}");
    }
    assert_eq!(code(&run(&["release", &k, "--value", &token])), 0);
    assert_eq!(stdout(&run(&["status", &k])), format!("{k}: free"));
    assert!(stdout(&run(&["status", &k, "--json"])).contains(r#""holder":null"#));
    // Without --holder: the Node original's lock, no label.
    let token = stdout(&run(&["lock", &k, "--ttl", "30s"]));
    let line = stdout(&run(&["status", &k]));
    assert!(line.starts_with(&format!("{k}: held, ")), "{line}");
    assert_eq!(code(&run(&["release", &k, "--value", &token])), 0);
    // A bad label is a usage error, before anything is taken.
    let out = run(&["lock", &k, "--holder", ""]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("bad holder label"),
        "{}",
        stderr(&out)
    );
    assert_eq!(code(&run(&["get", &k])), 1);
}

#[test]
fn run_labels_its_lock_with_host_pid_and_command_unless_told_otherwise() {
    let k = key("run-label");
    for (extra, want) in [
        (vec![], None),
        (vec!["--holder", "nightly-backup"], Some("nightly-backup")),
        (vec!["--no-holder"], Some("")),
    ] {
        let mut holder = Killed(
            redislock()
                .args(["run", &k])
                .args(&extra)
                .args(["--", "sh", "-c", "exec sleep 30"])
                .spawn()
                .unwrap(),
        );
        wait_until_held(&k);
        let line = stdout(&run(&["status", &k]));
        match want {
            None => {
                let pid = holder.id();
                assert!(line.contains(&format!(":{pid} sh for ")), "{line}");
                assert!(
                    !line.contains("exec sleep"),
                    "the arguments are shown: {line}"
                );
            }
            Some("") => assert!(line.starts_with(&format!("{k}: held, ")), "{line}"),
            Some(label) => assert!(line.contains(&format!("held by {label} for ")), "{line}"),
        }
        send(holder.id(), Signal::SIGTERM);
        wait_exit(&mut holder, Duration::from_secs(10));
        assert_eq!(stdout(&run(&["status", &k])), format!("{k}: free"));
    }
}

#[test]
fn watch_on_a_pipe_prints_a_line_a_second_and_a_signal_ends_it() {
    let k = key("watch-pipe");
    let token = stdout(&run(&["lock", &k, "--ttl", "60s", "--holder", "w1"]));
    for (signal, want) in [(Signal::SIGINT, 130), (Signal::SIGTERM, 143)] {
        let mut watch = Killed(
            redislock()
                .args(["status", &k, "--watch"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        );
        let out = Gathered::from(watch.stdout.take().unwrap());
        let text = out.wait_for("two refreshes", |t| t.lines().count() >= 2);
        let lines: Vec<&str> = text.lines().collect();
        for line in &lines[..2] {
            assert!(line.starts_with(&format!("{k}: held by w1 for ")), "{line}");
            assert!(!line.contains('\x1b'), "escapes on a pipe: {line:?}");
        }
        // A second apart (the refresh), not back to back.
        let first = out.reached(lines[0].len() + 1);
        let second = out.reached(lines[0].len() + lines[1].len() + 2);
        let apart = second - first;
        assert!(
            apart >= Duration::from_millis(700) && apart < Duration::from_secs(3),
            "{apart:?}"
        );
        let sent = Instant::now();
        send(watch.id(), signal);
        let status = wait_exit(&mut watch, Duration::from_secs(5));
        assert!(
            sent.elapsed() < Duration::from_millis(500),
            "{:?}",
            sent.elapsed()
        );
        assert_eq!(status.code(), Some(want), "{signal}");
    }
    // The watch changed nothing.
    assert_eq!(stdout(&run(&["get", &k])), token);
}

#[test]
fn watch_follows_the_lock_and_json_gives_one_object_a_refresh() {
    let k = key("watch-json");
    let mut watch = Killed(
        redislock()
            .args(["status", &k, "--watch", "--json"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let out = Gathered::from(watch.stdout.take().unwrap());
    out.wait_for("a free lock", |t| t.contains(r#""state":"free""#));
    let token = stdout(&run(&["lock", &k, "--ttl", "60s", "--holder", "w2"]));
    let text = out.wait_for("the holder", |t| t.contains(r#""holder":"w2""#));
    for line in text.lines() {
        assert!(line.starts_with('{') && line.ends_with('}'), "{line}");
    }
    assert_eq!(code(&run(&["release", &k, "--value", &token])), 0);
    out.wait_for("the release", |t| {
        t.lines()
            .last()
            .is_some_and(|l| l.contains(r#""state":"free""#))
    });
    send(watch.id(), Signal::SIGINT);
    assert_eq!(
        wait_exit(&mut watch, Duration::from_secs(5)).code(),
        Some(130)
    );
}

#[test]
fn watch_ends_promptly_when_its_stdout_is_closed() {
    let k = key("watch-closed");
    let mut watch = Killed(
        redislock()
            .args(["status", &k, "--watch"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut pipe: ChildStdout = watch.stdout.take().unwrap();
    let mut first = [0u8; 8];
    pipe.read_exact(&mut first).unwrap();
    let closed = Instant::now();
    drop(pipe);
    let status = wait_exit(&mut watch, Duration::from_secs(5));
    assert!(
        closed.elapsed() < Duration::from_secs(3),
        "{:?}",
        closed.elapsed()
    );
    assert_eq!(status.code(), Some(3));
    let mut err = String::new();
    watch
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(err.contains("cannot print to stdout"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn watch_on_a_terminal_redraws_in_place_until_ctrl_c() {
    let k = key("watch-tty");
    let token = stdout(&run(&[
        "lock",
        &k,
        "--ttl",
        "60s",
        "--holder",
        "web-3:4121",
    ]));
    let mut term = Killed(on_a_terminal(&format!(
        "stty cols 120 rows 30; exec '{}' status '{k}' --watch",
        env!("CARGO_BIN_EXE_redislock")
    )));
    let out = Gathered::from(term.stdout.take().unwrap());
    // Two refreshes drawn over the first: the cursor goes back up over its three lines (what
    // the lock is, its details, the refresh) and clears them.
    let text = out.wait_for("two redraws", |t| t.matches("\x1b[3A\r\x1b[J").count() >= 2);
    let first: Vec<&str> = text.lines().take(3).collect();
    assert!(
        first[0].starts_with(&format!("{k}: held by web-3:4121 for ")),
        "{text:?}"
    );
    assert!(
        first[1].starts_with("  ") && first[1].contains("s left"),
        "{text:?}"
    );
    assert!(first[2].contains("Ctrl-C to stop"), "{text:?}");
    let sent = Instant::now();
    term.stdin.as_mut().unwrap().write_all(b"\x03").unwrap();
    let status = wait_exit(&mut term, Duration::from_secs(5));
    assert!(
        sent.elapsed() < Duration::from_millis(1000),
        "{:?}",
        sent.elapsed()
    );
    assert_eq!(status.code(), Some(130), "{status}");
    assert!(!out.text().contains(&token));
    assert_eq!(code(&run(&["release", &k, "--value", &token])), 0);
}

#[test]
fn status_of_a_semaphore_shows_its_holders() {
    let k = key("sem");
    let mut runs: Vec<Killed> = (0..2)
        .map(|_| {
            Killed(
                redislock()
                    .args(["run", &k, "--limit", "3", "--", "sleep", "30"])
                    .spawn()
                    .unwrap(),
            )
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    let line = loop {
        let line = stdout(&run(&["status", &k]));
        if line.contains("2 holders") {
            break line;
        }
        assert!(Instant::now() < deadline, "{line}");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(
        line.starts_with(&format!(
            "{k}: lease set (semaphore or read-write lock), 2 holders, "
        )),
        "{line}"
    );
    let json = stdout(&run(&["status", &k, "--json"]));
    assert!(
        json.contains(r#""lease_set":{"holders":2,"writer":false"#),
        "{json}"
    );
    for child in &mut runs {
        send(child.id(), Signal::SIGTERM);
        wait_exit(child, Duration::from_secs(10));
    }
}
