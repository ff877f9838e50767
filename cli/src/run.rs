//! `redislock run`: hold a renewed lock while a command runs.

use std::io::ErrorKind;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::time::Duration;

use ac_redislock::{AcquireOptions, LockError, LockGuard, RedisLock};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::process::{Child, Command};
use tokio::signal::unix::{SignalKind, signal};

use crate::cli::{Global, RunArgs};
use crate::exit::Exit;
use crate::report::{fail, print_error, report_conflict};
use crate::spinner::Spinner;

/// With no `--max-hold`, renew for as long as the command runs (a century).
const FOREVER: Duration = Duration::from_secs(100 * 365 * 86_400);

pub(crate) async fn run(locks: &RedisLock, global: &Global, args: RunArgs) -> Exit {
    let RunArgs {
        key,
        ttl,
        wait,
        nonblock,
        conflict_exit_code: conflict,
        fencing,
        grace,
        max_hold,
        command,
    } = args;
    // Listen for signals before anything else, so none is lost between the lock and the child.
    let mut signals = match Signals::new() {
        Ok(signals) => signals,
        Err(err) => {
            print_error(&err);
            return Exit::Backend;
        }
    };
    let options = AcquireOptions::new()
        .ttl(ttl)
        .wait(if nonblock { Duration::ZERO } else { wait })
        .auto_renew(true)
        .max_hold(max_hold.unwrap_or(FOREVER))
        .fencing(fencing);
    let acquired = if nonblock {
        locks.try_acquire_with(&key, options).await
    } else {
        Spinner::new(locks, &key, global.quiet)
            .around(locks.acquire_with(&key, options))
            .await
    };
    let guard = match acquired {
        Ok(guard) => guard,
        Err(LockError::Locked { .. }) => {
            return report_conflict(locks, &key, conflict, global.quiet).await;
        }
        Err(err) => return fail(&err, conflict),
    };

    let mut child = match spawn(&command, &guard) {
        Ok(child) => child,
        Err(err) => {
            eprintln!("redislock: error: cannot run {:?}: {err}", command[0]);
            release(guard).await;
            return match err.kind() {
                ErrorKind::NotFound => Exit::CommandNotFound,
                _ => Exit::CannotExecute,
            };
        }
    };
    let lost = guard.lost();
    tokio::pin!(lost);
    loop {
        tokio::select! {
            status = child.wait() => {
                let exit = match status {
                    Ok(status) => exit_of(status),
                    Err(err) => {
                        print_error(&err);
                        Exit::Backend
                    }
                };
                return match guard.release().await {
                    Ok(()) => exit,
                    Err(err @ LockError::Lost { .. }) | Err(err @ LockError::NotOwner { .. }) => {
                        // The command finished, but the lease did not hold all along.
                        print_error(&err);
                        Exit::LeaseLost
                    }
                    Err(err) => {
                        if !global.quiet {
                            eprintln!(
                                "redislock: note: the lock will expire on its own: release failed"
                            );
                        }
                        print_error(&err);
                        exit
                    }
                };
            }
            signal = signals.next() => forward(&child, signal),
            reason = &mut lost => {
                eprintln!(
                    "redislock: error: the lease on {key:?} was lost ({reason}); stopping the command"
                );
                stop(&mut child, grace).await;
                release(guard).await;
                return Exit::LeaseLost;
            }
        }
    }
}

fn spawn(command: &[String], guard: &LockGuard) -> std::io::Result<Child> {
    let mut cmd = Command::new(&command[0]);
    cmd.args(&command[1..])
        .env("REDISLOCK_KEY", guard.key())
        .env("REDISLOCK_TOKEN", guard.token());
    match guard.fencing_token() {
        Some(fence) => cmd.env("REDISLOCK_FENCE", fence.to_string()),
        None => cmd.env_remove("REDISLOCK_FENCE"),
    };
    cmd.spawn()
}

/// Releases at the end of a failed run; a failure only means the lock expires on its own.
async fn release(guard: LockGuard) {
    let _ = guard.release().await;
}

fn exit_of(status: ExitStatus) -> Exit {
    match (status.code(), status.signal()) {
        (Some(code), _) => Exit::Child(u8::try_from(code).unwrap_or(u8::MAX)),
        (None, Some(signal)) => Exit::Signal(signal),
        (None, None) => Exit::Backend,
    }
}

fn pid_of(child: &Child) -> Option<Pid> {
    child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .map(Pid::from_raw)
}

fn forward(child: &Child, signal: Signal) {
    if signal == Signal::SIGINT && in_foreground() {
        // Ctrl-C on the terminal already reached the command: it is in our process group.
        return;
    }
    if let Some(pid) = pid_of(child) {
        let _ = kill(pid, signal);
    }
}

/// Whether this process is in the terminal's foreground process group.
fn in_foreground() -> bool {
    nix::unistd::tcgetpgrp(std::io::stdin()).is_ok_and(|group| group == nix::unistd::getpgrp())
}

/// SIGTERM, then SIGKILL if the command has not ended after `grace`.
async fn stop(child: &mut Child, grace: Duration) {
    if let Some(pid) = pid_of(child) {
        let _ = kill(pid, Signal::SIGTERM);
    }
    if tokio::time::timeout(grace, child.wait()).await.is_err() {
        let _ = child.kill().await;
    }
}

/// The signals passed on to the command.
struct Signals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
    quit: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> std::io::Result<Self> {
        Ok(Self {
            int: signal(SignalKind::interrupt())?,
            term: signal(SignalKind::terminate())?,
            hup: signal(SignalKind::hangup())?,
            quit: signal(SignalKind::quit())?,
        })
    }

    async fn next(&mut self) -> Signal {
        tokio::select! {
            _ = self.int.recv() => Signal::SIGINT,
            _ = self.term.recv() => Signal::SIGTERM,
            _ = self.hup.recv() => Signal::SIGHUP,
            _ = self.quit.recv() => Signal::SIGQUIT,
        }
    }
}
