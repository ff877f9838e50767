//! What the real `redislock` binary prints, and what it does when it cannot print: a closed or
//! broken stdout, `-q`, and error lines that say what is true (against a real redis-server).

mod common;

use std::process::{Command, Output, Stdio};

use ac_redislock_testsupport::server::free_port;
use common::{code, key, one_error_line, redislock, run, server, stderr, stdout};

const BIN: &str = env!("CARGO_BIN_EXE_redislock");

/// `redislock ARGS` with the read end of its stdout pipe closed before it writes, as in
/// `redislock lock k | true`.
///
/// The read end is closed before the child is started, and never leaves this process: a read
/// end kept open while the child starts could be inherited, for the moment between `fork` and
/// `exec`, by a process another test thread starts, and the child's write would then succeed.
fn run_into_a_closed_pipe(args: &[&str]) -> Output {
    let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
    drop(read);
    redislock()
        .args(args)
        .stdout(Stdio::from(write))
        .stderr(Stdio::piped())
        .output()
        .unwrap()
}

/// `redislock ARGS >&-`: started with its stdout closed.
fn run_with_stdout_closed(args: &[&str]) -> Output {
    Command::new("sh")
        .args(["-c", "exec \"$0\" \"$@\" >&-", BIN])
        .args(args)
        .env("REDIS_URL", server().url())
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// The value Redis holds at `key`, read without the binary.
fn held(key: &str) -> Option<String> {
    let mut conn = redis::Client::open(server().url())
        .unwrap()
        .get_connection()
        .unwrap();
    redis::cmd("GET").arg(key).query(&mut conn).unwrap()
}

/// Whether `text` has a word of 40 hex digits: a token `redislock` made.
fn has_a_token(text: &str) -> bool {
    text.split(|c: char| !c.is_ascii_hexdigit())
        .any(|word| word.len() == 40)
}

/// `lock`, started by `start` so that its value cannot be printed, by one attempt (the Node
/// original's SET NX) and with `--wait` (a guard, detached): one error line with `cause` and
/// no token, and the lock released.
fn assert_an_unprinted_lock_is_released(start: fn(&[&str]) -> Output, cause: &str) {
    for extra in [&[][..], &["--wait", "5s"]] {
        let k = key("unprinted");
        let out = start(&[&["lock", &k, "--ttl", "30s"], extra].concat());
        let line = one_error_line(&out, 3);
        assert!(line.contains("cannot print to stdout: "), "{line}");
        assert!(line.contains(cause), "{line}");
        assert!(line.contains("the lock was released"), "{line}");
        assert!(!has_a_token(&line), "a token on stderr: {line}");
        assert_eq!(held(&k), None, "{extra:?}: the lock was kept");
    }
}

#[test]
fn a_lock_printed_into_a_closed_pipe_is_released_and_fails() {
    assert_an_unprinted_lock_is_released(run_into_a_closed_pipe, "Broken pipe");
}

#[test]
fn a_lock_with_stdout_closed_is_released_and_fails() {
    assert_an_unprinted_lock_is_released(run_with_stdout_closed, "Bad file descriptor");
    // A value given with --value is not printed on stderr either.
    let k = key("closed-value");
    let out = run_with_stdout_closed(&["lock", &k, "--value", "worker-7-secret"]);
    let line = one_error_line(&out, 3);
    assert!(!line.contains("worker-7-secret"), "{line}");
    assert_eq!(held(&k), None);
}

#[test]
fn a_lock_printed_to_dev_null_is_kept() {
    // Sent to /dev/null on purpose, the value is written: the lock is the caller's.
    let k = key("devnull");
    let status = redislock()
        .args(["lock", &k, "--value", "kept", "--ttl", "30s"])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(0));
    assert_eq!(held(&k).as_deref(), Some("kept"));
}

#[test]
fn get_and_status_fail_on_a_closed_stdout_and_leave_the_lock() {
    let k = key("print");
    assert_eq!(code(&run(&["lock", &k, "--value", "the-value-7"])), 0);
    assert_eq!(stdout(&run(&["get", &k])), "the-value-7");
    for args in [
        vec!["get", &k],
        vec!["status", &k],
        vec!["status", &k, "--json"],
    ] {
        for out in [run_into_a_closed_pipe(&args), run_with_stdout_closed(&args)] {
            let line = one_error_line(&out, 3);
            assert!(line.contains("cannot print to stdout"), "{args:?}: {line}");
            assert!(!line.contains("the-value-7"), "{args:?}: {line}");
        }
    }
    assert_eq!(held(&k).as_deref(), Some("the-value-7"));
    // extend and release print nothing on stdout: a closed one changes nothing for them.
    let extend = ["extend", &k, "--value", "the-value-7", "--ttl", "20s"];
    for out in [
        run_into_a_closed_pipe(&extend),
        run_with_stdout_closed(&extend),
    ] {
        assert_eq!((code(&out), stderr(&out)), (0, String::new()));
    }
    let out = run_with_stdout_closed(&["release", &k, "--value", "the-value-7"]);
    assert_eq!((code(&out), stderr(&out)), (0, String::new()));
    assert_eq!(held(&k), None);
}

#[test]
fn quiet_silences_a_conflict_but_keeps_its_exit_code() {
    let k = key("quiet");
    let token = stdout(&run(&["lock", &k, "--ttl", "30s"]));
    assert_eq!(token.len(), 40, "{token}");
    let cases: [(&[&str], i32); 5] = [
        (&["-q", "run", &k, "--nonblock", "--", "true"], 1),
        (
            &["--quiet", "run", &k, "--nonblock", "-E", "75", "--", "true"],
            75,
        ),
        (&["-q", "run", &k, "--wait", "300ms", "--", "true"], 1),
        (&["-q", "lock", &k], 1),
        (&["lock", &k, "--wait", "300ms", "-q", "-E", "75"], 75),
    ];
    for (args, want) in cases {
        let out = run(args);
        assert_eq!(code(&out), want, "{args:?}: {}", stderr(&out));
        assert_eq!(stderr(&out), "", "{args:?}");
        assert_eq!(stdout(&out), "", "{args:?}");
    }
    // Without -q the conflict is still said.
    for args in [
        vec!["run", &k, "--nonblock", "--", "true"],
        vec!["lock", &k],
    ] {
        let out = run(&args);
        assert_eq!(code(&out), 1, "{args:?}");
        assert!(
            stderr(&out).starts_with(&format!("redislock: {k:?} is locked by another owner")),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    // Errors are still printed with -q.
    let out = run(&["-q", "extend", &k, "--value", "not-it", "--ttl", "5s"]);
    one_error_line(&out, 5);
    assert_eq!(held(&k), Some(token));
}

#[test]
fn a_wrong_value_says_the_lock_is_someone_elses_without_claiming_a_release() {
    let k = key("owner");
    assert_eq!(
        code(&run(&["lock", &k, "--value", "mine", "--ttl", "30s"])),
        0
    );
    for args in [
        ["extend", &k, "--value", "other", "--ttl", "60s"].as_slice(),
        ["release", &k, "--value", "other"].as_slice(),
    ] {
        let line = one_error_line(&run(args), 5);
        assert!(line.contains("held by another owner"), "{line}");
        assert!(!line.contains("released"), "{args:?}: {line}");
        assert!(!line.contains("mine"), "the holder's value: {line}");
    }
    assert_eq!(held(&k).as_deref(), Some("mine"));
}

/// `redislock` with no REDIS_URL, so only the given `--url`s count.
fn without_env(args: &[&str]) -> Output {
    redislock()
        .env_remove("REDIS_URL")
        .args(["--timeout", "500ms"])
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn a_connection_error_names_the_server() {
    let port = free_port().unwrap();
    let url = format!("redis://127.0.0.1:{port}/");
    let lock = ["lock", "k"].as_slice();
    let run_true = ["run", "k", "--", "true"].as_slice();
    let get = ["get", "k"].as_slice();
    for sub in [lock, run_true, get] {
        let out = without_env(&[&["--url", url.as_str()], sub].concat());
        let line = one_error_line(&out, 3);
        assert!(line.contains("Redis is unavailable"), "{line}");
        assert!(
            line.contains(&format!("127.0.0.1:{port}")),
            "{sub:?}: {line}"
        );
    }
    // A refused unix socket shows its path.
    let out = without_env(&["--url", "unix:///nonexistent/redis.sock", "get", "k"]);
    let line = one_error_line(&out, 3);
    assert!(line.contains("unix:///nonexistent/redis.sock"), "{line}");
}

#[test]
fn a_connection_error_never_shows_a_password() {
    let port = free_port().unwrap();
    let other = free_port().unwrap();
    let secret = "hunter2-secret";
    let with_user = format!("redis://worker:{secret}@127.0.0.1:{port}/0");
    let out = without_env(&["--url", &with_user, "lock", "k"]);
    let line = one_error_line(&out, 3);
    assert!(
        line.contains(&format!("redis://worker@127.0.0.1:{port}/0")),
        "{line}"
    );
    let without_user = format!("redis://:{secret}@127.0.0.1:{port}/");
    let in_unix_query = format!("unix:///nonexistent/redis.sock?pass={secret}");
    let two = format!("redis://:{secret}@127.0.0.1:{other}");
    let tls = format!("rediss://:{secret}@127.0.0.1:{other}");
    for urls in [
        vec![with_user.as_str()],
        vec![without_user.as_str()],
        vec![in_unix_query.as_str()],
        vec![tls.as_str()],
        vec![without_user.as_str(), two.as_str(), in_unix_query.as_str()],
    ] {
        for sub in [
            vec!["lock", "k"],
            vec!["run", "k", "--", "true"],
            vec!["get", "k"],
            vec!["status", "k", "--json"],
            vec!["extend", "k", "--value", "v", "--ttl", "5s"],
            vec!["release", "k", "--force"],
        ] {
            // From --url and from REDIS_URL alike.
            let mut args: Vec<&str> = urls.iter().flat_map(|url| ["--url", url]).collect();
            args.extend(&sub);
            let from_env = redislock()
                .env("REDIS_URL", urls.join(","))
                .args(["--timeout", "500ms"])
                .args(&sub)
                .output()
                .unwrap();
            for out in [without_env(&args), from_env] {
                let line = one_error_line(&out, 3);
                assert!(
                    line.contains("127.0.0.1:") || line.contains("unix://"),
                    "{line}"
                );
                assert!(!stderr(&out).contains(secret), "{urls:?} {sub:?}: {line}");
                assert!(!stdout(&out).contains(secret), "{urls:?} {sub:?}");
            }
        }
    }
}

#[test]
fn redlock_names_its_nodes_and_counts_the_ones_that_agreed() {
    let (a, b) = (free_port().unwrap(), free_port().unwrap());
    let out = without_env(&[
        "--url",
        &format!("redis://127.0.0.1:{a}"),
        "--url",
        &format!("redis://127.0.0.1:{b}"),
        "--url",
        &server().url(),
        "lock",
        &key("redlock"),
    ]);
    let line = one_error_line(&out, 3);
    assert!(
        line.contains("Redlock quorum not reached: 1 node agreed, 2 needed"),
        "{line}"
    );
    for node in [
        format!("127.0.0.1:{a}"),
        format!("127.0.0.1:{b}"),
        server().url(),
    ] {
        assert!(line.contains(&node), "{node}: {line}");
    }
}
