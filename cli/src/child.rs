//! The command of `redislock run` as the operating system sees it: a process group of its own,
//! tied to redislock's life, with the terminal handed to it; signals to the whole group; and
//! the reaping of every process that ends in it.
//!
//! Why a group of its own: a stop must reach the command's children too (a shell's steps), and
//! a signal sent to redislock's group (a supervisor, `kill -TERM -PGID`) must reach the command
//! once, through redislock, not twice. Why the terminal is handed over: a group that is not the
//! terminal's foreground cannot read it and does not get Ctrl-C; with the terminal, it gets
//! Ctrl-C, Ctrl-\ and Ctrl-Z straight from it (and redislock does not), as under flock(1).
//!
//! Linux only: the parent-death signal and the child subreaper are Linux features.

use std::fs::File;
use std::io;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::prctl;
use nix::sys::signal::{SigSet, SigmaskHow, Signal, kill, pthread_sigmask, sigprocmask};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{Pid, getpgrp, getpid, getppid, tcgetpgrp, tcsetpgrp};
use tokio::signal::unix::{SignalKind, signal};

use crate::exit::Exit;

/// How often a group is checked for members while redislock waits for it to empty.
const POLL: Duration = Duration::from_millis(20);

/// The controlling terminal, while this process is in its foreground group.
pub(crate) struct Terminal {
    tty: Arc<File>,
    /// redislock's own group, which gets the terminal back.
    own: Pid,
}

impl Terminal {
    /// The terminal, if there is one and this process is in its foreground group.
    pub(crate) fn foreground() -> Option<Self> {
        let tty = File::options()
            .read(true)
            .write(true)
            .open("/dev/tty")
            .ok()?;
        let own = getpgrp();
        (tcgetpgrp(&tty).ok()? == own).then(|| Self {
            tty: Arc::new(tty),
            own,
        })
    }

    /// Makes `group` the foreground group. SIGTTOU is blocked meanwhile: a process outside the
    /// foreground group may then change it (POSIX), instead of being stopped.
    fn give(&self, group: Pid) {
        let mut ttou = SigSet::empty();
        ttou.add(Signal::SIGTTOU);
        let mut old = SigSet::empty();
        if pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&ttou), Some(&mut old)).is_ok() {
            let _ = tcsetpgrp(&*self.tty, group);
            let _ = pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&old), None);
        }
    }

    /// Gives the terminal back to redislock's group.
    fn take_back(&self) {
        self.give(self.own);
    }

    fn is_ours(&self) -> bool {
        tcgetpgrp(&*self.tty).is_ok_and(|group| group == self.own)
    }
}

/// What happened to the command's group leader (the command itself).
pub(crate) enum Event {
    Exited(Exit),
    Stopped(Signal),
}

/// Listens for SIGCHLD and reaps: the command, and every orphan of its tree (redislock is
/// their subreaper, so a process left behind in the group is seen to end).
pub(crate) struct Reaper {
    chld: tokio::signal::unix::Signal,
}

impl Reaper {
    /// Starts listening, before the command is spawned, so no exit is missed; and makes this
    /// process the subreaper of its descendants.
    pub(crate) fn new() -> io::Result<Self> {
        prctl::set_child_subreaper(true).map_err(io::Error::from)?;
        Ok(Self {
            chld: signal(SignalKind::child())?,
        })
    }

    /// Reaps every child that has changed state; returns what happened to `leader`, if
    /// anything.
    fn reap(&self, leader: Pid) -> Option<Event> {
        let mut event = None;
        let flags = WaitPidFlag::WNOHANG | WaitPidFlag::WUNTRACED;
        loop {
            match waitpid(None::<Pid>, Some(flags)) {
                Ok(WaitStatus::Exited(pid, code)) if pid == leader => {
                    event = Some(Event::Exited(Exit::Child(
                        u8::try_from(code).unwrap_or(u8::MAX),
                    )));
                }
                Ok(WaitStatus::Signaled(pid, signal, _)) if pid == leader => {
                    event = Some(Event::Exited(Exit::Signal(signal as i32)));
                }
                Ok(WaitStatus::Stopped(pid, signal)) if pid == leader => {
                    event = event.or(Some(Event::Stopped(signal)));
                }
                Ok(WaitStatus::StillAlive) | Err(_) => return event,
                // An orphan of the tree, reaped; or a state change of no interest.
                Ok(_) => {}
            }
        }
    }
}

/// The command, running in a process group of its own.
pub(crate) struct Group {
    /// The command's pid, which is also the group's id.
    leader: Pid,
    terminal: Option<Terminal>,
    /// How the command ended, once it has.
    ended: Option<Exit>,
}

impl Group {
    /// Starts `command` (with `env`) as the leader of a new process group, which gets the
    /// terminal if redislock has it.
    pub(crate) fn spawn(
        command: &[String],
        env: &[(&str, Option<String>)],
        terminal: Option<Terminal>,
    ) -> io::Result<Self> {
        let mut cmd = Command::new(&command[0]);
        cmd.args(&command[1..]).process_group(0);
        for (name, value) in env {
            match value {
                Some(value) => cmd.env(name, value),
                None => cmd.env_remove(name),
            };
        }
        tie_to_parent(&mut cmd, terminal.as_ref().map(|t| Arc::clone(&t.tty)));
        let child = cmd.spawn()?;
        let leader = Pid::from_raw(i32::try_from(child.id()).map_err(io::Error::other)?);
        // The exit is reaped by `Reaper`, not through `child`.
        drop(child);
        Ok(Self {
            leader,
            terminal,
            ended: None,
        })
    }

    /// Sends `signal` to every process of the group.
    pub(crate) fn signal(&self, signal: Signal) {
        let _ = kill(Pid::from_raw(-self.leader.as_raw()), signal);
    }

    /// Whether a process of the group is still there (reaping what has ended first).
    pub(crate) fn alive(&mut self, reaper: &Reaper) -> bool {
        if let Some(Event::Exited(exit)) = reaper.reap(self.leader) {
            self.ended = Some(exit);
        }
        !matches!(
            kill(Pid::from_raw(-self.leader.as_raw()), None),
            Err(Errno::ESRCH)
        )
    }

    /// How the command ended, if it has.
    pub(crate) fn ended(&self) -> Option<Exit> {
        self.ended
    }

    /// Waits for the next thing that happens to the command (its exit, or a stop).
    pub(crate) async fn next(&mut self, reaper: &mut Reaper) -> Event {
        if let Some(exit) = self.ended {
            return Event::Exited(exit);
        }
        loop {
            match reaper.reap(self.leader) {
                Some(Event::Exited(exit)) => {
                    self.ended = Some(exit);
                    return Event::Exited(exit);
                }
                Some(stopped) => return stopped,
                None => {
                    reaper.chld.recv().await;
                }
            }
        }
    }

    /// Waits until the group is empty (every process of it ended and reaped).
    pub(crate) async fn emptied(&mut self, reaper: &Reaper) {
        while self.alive(reaper) {
            tokio::time::sleep(POLL).await;
        }
    }

    /// Handles the command stopped by `signal`. Stopped from the terminal (Ctrl-Z, or reading
    /// it from the background), redislock takes the terminal back and stops its own group, so
    /// the shell sees the job stopped, and returns `true` once continued (`fg`, `bg`): the
    /// caller then [`resume`](Self::resume)s the command, or stops it if the lease ran out
    /// meanwhile. A stop sent by someone else (SIGSTOP), or with no terminal, is left as it is.
    pub(crate) fn suspend(&self, signal: Signal) -> bool {
        let Some(terminal) = &self.terminal else {
            return false;
        };
        if !matches!(signal, Signal::SIGTSTP | Signal::SIGTTIN | Signal::SIGTTOU) {
            return false;
        }
        terminal.take_back();
        // Stops here until the shell continues redislock's group.
        let _ = kill(Pid::from_raw(0), Signal::SIGTSTP);
        true
    }

    /// Continues the command after [`suspend`](Self::suspend), with the terminal if redislock
    /// was continued in the foreground.
    pub(crate) fn resume(&self) {
        if let Some(terminal) = &self.terminal
            && terminal.is_ours()
        {
            terminal.give(self.leader);
        }
        self.signal(Signal::SIGCONT);
    }

    /// Stops the whole group: SIGTERM (and SIGCONT, for a stopped command), then SIGKILL to
    /// what is left after `grace`; returns once the group is empty.
    pub(crate) async fn stop(&mut self, reaper: &Reaper, grace: Duration) {
        self.signal(Signal::SIGTERM);
        self.signal(Signal::SIGCONT);
        if tokio::time::timeout(grace, self.emptied(reaper))
            .await
            .is_err()
        {
            self.signal(Signal::SIGKILL);
            self.emptied(reaper).await;
        }
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        if let Some(terminal) = &self.terminal {
            terminal.take_back();
        }
    }
}

/// Ties the command to redislock: it is killed (SIGKILL) the moment redislock dies, however
/// it dies, and it takes the terminal before it runs.
#[allow(unsafe_code)]
fn tie_to_parent(cmd: &mut Command, tty: Option<Arc<File>>) {
    let parent = getpid();
    let hook = move || -> io::Result<()> {
        // Dies with the thread that spawned it: the main thread of redislock, whose runtime
        // runs on it (current-thread), so it lives as long as redislock does.
        prctl::set_pdeathsig(Signal::SIGKILL)?;
        // Redislock may have died before the line above: then nothing would kill us later.
        if getppid() != parent {
            return Err(Errno::ESRCH.into());
        }
        if let Some(tty) = &tty {
            // SIGTTOU blocked: a background group may then take the terminal (POSIX). The
            // mask is reset before exec, as `Command` reset it after the fork.
            let mut ttou = SigSet::empty();
            ttou.add(Signal::SIGTTOU);
            sigprocmask(SigmaskHow::SIG_BLOCK, Some(&ttou), None)?;
            tcsetpgrp(&**tty, getpid())?;
            sigprocmask(SigmaskHow::SIG_UNBLOCK, Some(&ttou), None)?;
        }
        Ok(())
    };
    // SAFETY: the hook runs in the child between fork and exec, where only async-signal-safe
    // calls are sound. It makes only system calls (prctl, getppid, sigprocmask, tcsetpgrp via
    // ioctl, getpid) on values built before the fork (a pid, a shared file); it allocates
    // nothing (an error is an errno, which `io::Error` holds without allocating), takes no lock
    // and touches no state another thread could have held at the fork.
    unsafe {
        cmd.pre_exec(hook);
    }
}
