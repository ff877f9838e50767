//! `redislock run` as flock(1) users count on it: the command runs only while the lock is held
//! (it dies with a SIGKILLed redislock; a lost lease or the maximum hold stops its whole process
//! group; a process it leaves in its group keeps the lock held), and signals mean what they
//! mean (the first ends a wait; while the command runs, each reaches it exactly once, sent to
//! redislock, to its process group or typed on a terminal). The real binary, a real
//! redis-server, and pseudo-terminals from util-linux `script`.

mod common;

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{
    alive, code, key, on_a_terminal, read_pid, redislock, run, stamps, stderr, stdout,
    wait_for_waiters, wait_until_held, waiters,
};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// Every signal redislock handles; the default of each would end a process.
const HANDLED: [Signal; 7] = [
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGALRM,
];

/// A bash script that counts the signals it gets, one line per signal in the file given as its
/// argument, writes its pid to `<file>.pid` once ready, and exits 0 when `<file>.stop` exists.
const COUNTER: &str = r#"ulimit -c 0; exec 2>/dev/null
f="$1"
for s in INT TERM HUP QUIT USR1 USR2 ALRM; do trap "echo $s >> '$f'" "$s"; done
echo $$ > "$f.pid"
while [ ! -e "$f.stop" ]; do sleep 0.02; done
"#;

fn send(pid: u32, signal: Signal) {
    kill(Pid::from_raw(pid as i32), signal).unwrap();
}

fn send_to_group(pgid: u32, signal: Signal) {
    kill(Pid::from_raw(-(pgid as i32)), signal).unwrap();
}

/// The counter's file in `dir`, with the script beside it.
fn counter(dir: &Path) -> (PathBuf, PathBuf) {
    let script = dir.join("counter.sh");
    std::fs::write(&script, COUNTER).unwrap();
    (script, dir.join("signals"))
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Waits until `path` has `count` lines, then a little more, so a duplicate would show.
fn wait_for_lines(path: &Path, count: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(5);
    while lines(path).len() < count {
        assert!(
            Instant::now() < deadline,
            "{} lines expected in {}, got {:?}",
            count,
            path.display(),
            lines(path)
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(150));
    lines(path)
}

fn wait_exit(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "still running after {within:?}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// After a wait on `key` ended by `signal`: `holder` still holds it, and no waiter is queued.
fn assert_wait_withdrawn(key: &str, holder: &str, signal: Signal) {
    assert_eq!(
        stdout(&run(&["get", key])),
        holder,
        "{signal}: holder touched"
    );
    assert_eq!(waiters(key), 0, "{signal}: the waiter is still queued");
}

#[test]
fn each_signal_ends_the_wait_at_once_runs_nothing_and_withdraws_the_waiter() {
    let dir = tempfile::tempdir().unwrap();
    for signal in HANDLED {
        let k = key("wait-signal");
        let holder = stdout(&run(&["lock", &k, "--ttl", "60s"]));
        let marker = dir.path().join(format!("ran-{signal}"));
        let mut waiting = redislock()
            .args(["run", &k, "--wait", "30s", "--", "touch"])
            .arg(&marker)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        wait_for_waiters(&k, 1);
        let sent = Instant::now();
        send(waiting.id(), signal);
        let status = wait_exit(&mut waiting, Duration::from_secs(5));
        let took = sent.elapsed();
        assert_eq!(
            status.code(),
            Some(128 + signal as i32),
            "{signal}: {status}"
        );
        assert!(
            took < Duration::from_millis(100),
            "{signal}: exited after {took:?}"
        );
        assert!(!marker.exists(), "{signal}: the command ran");
        assert_wait_withdrawn(&k, &holder, signal);
    }
}

#[test]
fn a_signal_ends_a_lock_wait_too_and_withdraws_the_waiter() {
    for signal in [Signal::SIGINT, Signal::SIGTERM] {
        let k = key("lock-wait-signal");
        let holder = stdout(&run(&["lock", &k, "--ttl", "60s"]));
        let mut waiting = redislock()
            .args(["lock", &k, "--wait", "30s"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        wait_for_waiters(&k, 1);
        send(waiting.id(), signal);
        let status = wait_exit(&mut waiting, Duration::from_secs(5));
        assert_eq!(status.code(), Some(128 + signal as i32), "{signal}");
        assert_wait_withdrawn(&k, &holder, signal);
    }
}

#[test]
fn ctrl_c_on_a_terminal_ends_the_wait_with_130() {
    let dir = tempfile::tempdir().unwrap();
    let k = key("wait-ctrl-c");
    let _holder = stdout(&run(&["lock", &k, "--ttl", "60s"]));
    let marker = dir.path().join("ran");
    let mut term = on_a_terminal(&format!(
        "exec '{}' run '{k}' --wait 30s -- touch '{}'",
        env!("CARGO_BIN_EXE_redislock"),
        marker.display()
    ));
    wait_for_waiters(&k, 1);
    let sent = Instant::now();
    term.stdin.as_mut().unwrap().write_all(b"\x03").unwrap();
    let status = wait_exit(&mut term, Duration::from_secs(5));
    assert!(sent.elapsed() < Duration::from_millis(500));
    assert_eq!(status.code(), Some(130), "{status}");
    assert!(!marker.exists(), "the command ran");
    assert_eq!(waiters(&k), 0);
}

#[test]
fn a_signal_reaches_the_command_once_whether_sent_to_redislock_or_to_its_group() {
    let dir = tempfile::tempdir().unwrap();
    let (script, signals) = counter(dir.path());
    let k = key("count");
    // A process group of its own, as a shell gives each job.
    let mut holder = redislock()
        .args(["run", &k, "--"])
        .arg("bash")
        .arg(&script)
        .arg(&signals)
        .process_group(0)
        .spawn()
        .unwrap();
    read_pid(&signals.with_extension("pid"));
    let mut expected = Vec::new();
    for signal in HANDLED {
        send(holder.id(), signal);
        expected.push(signal.as_str().trim_start_matches("SIG").to_owned());
        assert_eq!(
            wait_for_lines(&signals, expected.len()),
            expected,
            "{signal} to redislock"
        );
        send_to_group(holder.id(), signal);
        expected.push(signal.as_str().trim_start_matches("SIG").to_owned());
        assert_eq!(
            wait_for_lines(&signals, expected.len()),
            expected,
            "{signal} to the group"
        );
    }
    std::fs::write(signals.with_extension("stop"), "").unwrap();
    let status = wait_exit(&mut holder, Duration::from_secs(5));
    assert_eq!(
        status.code(),
        Some(0),
        "redislock outlived every signal, then exited"
    );
    assert_eq!(code(&run(&["get", &k])), 1, "released");
}

#[test]
fn keys_typed_on_a_terminal_reach_the_command_once() {
    let dir = tempfile::tempdir().unwrap();
    let (script, signals) = counter(dir.path());
    let k = key("typed");
    let mut term = on_a_terminal(&format!(
        "exec '{}' run '{k}' -- bash '{}' '{}'",
        env!("CARGO_BIN_EXE_redislock"),
        script.display(),
        signals.display()
    ));
    read_pid(&signals.with_extension("pid"));
    let typed = term.stdin.as_mut().unwrap();
    typed.write_all(b"\x03").unwrap(); // Ctrl-C
    assert_eq!(wait_for_lines(&signals, 1), ["INT"]);
    typed.write_all(b"\x1c").unwrap(); // Ctrl-backslash
    assert_eq!(wait_for_lines(&signals, 2), ["INT", "QUIT"]);
    std::fs::write(signals.with_extension("stop"), "").unwrap();
    let status = wait_exit(&mut term, Duration::from_secs(5));
    assert_eq!(status.code(), Some(0), "{status}");
}

#[test]
fn a_command_on_a_terminal_reads_a_line_from_it() {
    let k = key("read");
    let mut term = on_a_terminal(&format!(
        "exec '{}' run '{k}' -- sh -c 'read line; echo \"got:$line\"'",
        env!("CARGO_BIN_EXE_redislock"),
    ));
    wait_until_held(&k);
    term.stdin.as_mut().unwrap().write_all(b"hello\n").unwrap();
    let status = wait_exit(&mut term, Duration::from_secs(5));
    let mut shown = String::new();
    std::io::Read::read_to_string(term.stdout.as_mut().unwrap(), &mut shown).unwrap();
    assert_eq!(status.code(), Some(0), "{status}: {shown}");
    assert!(shown.contains("got:hello"), "{shown:?}");
}

#[test]
fn max_hold_stops_the_command_at_about_its_time() {
    let k = key("max-hold");
    let started = Instant::now();
    let out = run(&[
        "run",
        &k,
        "--ttl",
        "30s",
        "--max-hold",
        "1s",
        "--grace",
        "1s",
        "--",
        "sleep",
        "15",
    ]);
    let took = started.elapsed();
    assert_eq!(code(&out), 4, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("maximum hold time"),
        "{}",
        stderr(&out)
    );
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(3),
        "stopped after {took:?}"
    );
    assert_eq!(code(&run(&["get", &k])), 1, "released");
}

/// The bash script of a section: writes its pid to `<file>.pid`, then the time (µs) per line
/// to `<file>` every 10 ms, forever.
const STAMPER: &str = r#"f="$1"; echo $$ > "$f.pid"
while :; do echo "${EPOCHREALTIME/[.,]/}" >> "$f"; sleep 0.01; done
"#;

#[test]
fn the_command_dies_with_a_sigkilled_redislock_and_never_overlaps_the_next_holder() {
    let dir = tempfile::tempdir().unwrap();
    let stamper = dir.path().join("stamper.sh");
    std::fs::write(&stamper, STAMPER).unwrap();
    for round in 0..20 {
        let k = key("kill9-overlap");
        let first = dir.path().join(format!("first-{round}"));
        let second = dir.path().join(format!("second-{round}"));
        let mut holder = redislock()
            .args(["run", &k, "--ttl", "300ms", "--", "bash"])
            .arg(&stamper)
            .arg(&first)
            .spawn()
            .unwrap();
        let command = read_pid(&first.with_extension("pid"));
        while stamps(&first).is_empty() {
            std::thread::sleep(Duration::from_millis(2));
        }
        send(holder.id(), Signal::SIGKILL);
        let killed = Instant::now();
        holder.wait().unwrap();
        while alive(command) {
            assert!(
                killed.elapsed() < Duration::from_millis(100),
                "round {round}: the command outlived redislock by 100 ms"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        let out = redislock()
            .args(["run", &k, "--wait", "5s", "--", "bash", "-c"])
            .arg(format!(
                "echo \"${{EPOCHREALTIME/[.,]/}}\" >> '{}'",
                second.display()
            ))
            .output()
            .unwrap();
        assert_eq!(code(&out), 0, "round {round}: {}", stderr(&out));
        let first_last = stamps(&first).last().copied().unwrap();
        let second_first = stamps(&second)[0];
        assert!(
            first_last < second_first,
            "round {round}: the killed run's command wrote at {first_last} after the next \
             holder started at {second_first}"
        );
    }
}

#[test]
fn a_lost_lease_stops_every_process_of_the_commands_tree() {
    let dir = tempfile::tempdir().unwrap();
    for round in 0..20 {
        let k = key("lost-tree");
        let shell_pid = dir.path().join(format!("shell-{round}"));
        let child_pid = dir.path().join(format!("child-{round}"));
        let script = format!(
            "echo $$ > '{}'; sh -c 'echo $$ > \"{}\"; exec sleep 30'; true",
            shell_pid.display(),
            child_pid.display()
        );
        let mut holder = redislock()
            .args([
                "run", &k, "--ttl", "300ms", "--grace", "2s", "--", "bash", "-c",
            ])
            .arg(&script)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let shell = read_pid(&shell_pid);
        let child = read_pid(&child_pid);
        assert_eq!(code(&run(&["release", &k, "--force"])), 0);
        let status = wait_exit(&mut holder, Duration::from_secs(5));
        assert_eq!(status.code(), Some(4), "round {round}");
        for (what, pid) in [("bash", shell), ("its child", child)] {
            assert!(
                !alive(pid),
                "round {round}: {what} ({pid}) outlived redislock's exit"
            );
        }
    }
}

#[test]
fn a_process_left_in_the_group_keeps_the_lock_until_it_ends() {
    let dir = tempfile::tempdir().unwrap();
    let left = dir.path().join("left");
    let k = key("background");
    let started = Instant::now();
    let mut holder = redislock()
        .args(["run", &k, "--", "sh", "-c"])
        .arg(format!("sleep 1 & echo $! > '{}'", left.display()))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let sleeper = read_pid(&left);
    std::thread::sleep(Duration::from_millis(300));
    assert!(alive(sleeper));
    assert_eq!(
        code(&run(&["get", &k])),
        0,
        "held while the left process runs"
    );
    let status = wait_exit(&mut holder, Duration::from_secs(5));
    assert_eq!(status.code(), Some(0));
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert!(!alive(sleeper));
    assert_eq!(
        code(&run(&["get", &k])),
        1,
        "released once the group is empty"
    );
    let mut err = String::new();
    std::io::Read::read_to_string(holder.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(err.contains("held until the processes it left"), "{err}");
}

/// What a terminal shows, read as it comes.
struct Screen(std::sync::Arc<std::sync::Mutex<String>>);

impl Screen {
    fn of(child: &mut Child) -> Self {
        let shown = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let mut out = child.stdout.take().unwrap();
        let sink = shown.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 1024];
            while let Ok(n @ 1..) = std::io::Read::read(&mut out, &mut buf) {
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Self(shown)
    }

    fn wait_for(&self, text: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.0.lock().unwrap().contains(text) {
            assert!(
                Instant::now() < deadline,
                "{text:?} never shown; the terminal shows {:?}",
                self.0.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

#[test]
fn ctrl_z_stops_the_command_with_redislock_and_fg_continues_both() {
    let k = key("suspend");
    let mut term = on_a_terminal("PS1='$ ' exec bash --norc --noprofile -i");
    let screen = Screen::of(&mut term);
    let typed = term.stdin.as_mut().unwrap();
    writeln!(
        typed,
        "'{}' run '{k}' -- sh -c 'read line; echo \"got:$line\"'",
        env!("CARGO_BIN_EXE_redislock")
    )
    .unwrap();
    wait_until_held(&k);
    std::thread::sleep(Duration::from_millis(300));
    typed.write_all(b"\x1a").unwrap(); // Ctrl-Z
    screen.wait_for("Stopped");
    assert_eq!(code(&run(&["get", &k])), 0, "still held while suspended");
    typed.write_all(b"fg\n").unwrap();
    std::thread::sleep(Duration::from_millis(300));
    typed.write_all(b"hello\n").unwrap();
    screen.wait_for("got:hello");
    typed.write_all(b"echo \"exit:$?\"; exit\n").unwrap();
    screen.wait_for("exit:0");
    wait_exit(&mut term, Duration::from_secs(5));
    assert_eq!(code(&run(&["get", &k])), 1, "released");
}
