//! `redislock run`: hold a renewed lock while a command runs, and the command never outlives
//! the lock. The command is a process group of its own (see `child`): stopped as a whole when
//! the lease is lost or the maximum hold is reached, killed with redislock if redislock dies,
//! and waited for as a whole (a process it leaves behind in its group keeps the lock held).

use std::time::Duration;

use ac_redislock::{AcquireOptions, LockError, LockGuard, RedisLock};
use tokio::time::Instant;

use crate::child::{Event, Group, Reaper, Terminal};
use crate::cli::{Global, RunArgs};
use crate::exit::Exit;
use crate::report::{fail, human, print_error, report_conflict};
use crate::signals::Signals;
use crate::spinner::Spinner;

/// With no `--max-hold`, renew for as long as the command runs (a century).
const FOREVER: Duration = Duration::from_secs(100 * 365 * 86_400);

/// The shortest lease `run` takes. The lease is renewed every third of it; below this, one
/// slow renewal (a busy machine, a slow network) and the time to stop the command can eat a
/// whole lease, and the command would be stopped as for a lost lease.
const MIN_TTL: Duration = Duration::from_millis(100);

pub(crate) async fn run(locks: &RedisLock, global: &Global, args: RunArgs) -> Exit {
    let RunArgs {
        key,
        ttl,
        wait,
        nonblock,
        conflict_exit_code: conflict,
        holder,
        no_holder,
        fencing,
        keys,
        limit,
        shared,
        exclusive,
        grace,
        max_hold,
        command,
    } = args;
    if ttl < MIN_TTL {
        eprintln!(
            "redislock: error: --ttl {} is below run's minimum of {}: the lease is renewed every \
             third of it, and a shorter one can run out between two renewals",
            human(ttl),
            human(MIN_TTL)
        );
        return Exit::Usage;
    }
    // Listen before anything else, so no signal and no child's exit is missed.
    let (mut signals, mut reaper) = match Signals::new().and_then(|s| Ok((s, Reaper::new()?))) {
        Ok(both) => both,
        Err(err) => {
            print_error(&err);
            return Exit::Backend;
        }
    };
    let mut options = AcquireOptions::new()
        .ttl(ttl)
        .wait(if nonblock { Duration::ZERO } else { wait })
        .auto_renew(true)
        .max_hold(max_hold.unwrap_or(FOREVER))
        .fencing(fencing);
    // The first signal ends the wait: nothing is started, and the waiter's registration is
    // withdrawn (the acquisition, dropped, does it; the client's close waits for it).
    let what = What::of(locks, &key, keys, limit, shared, exclusive);
    // Only a lock of one key keeps a label (clap refuses --holder with the others).
    if matches!(what, What::Lock(_)) && !no_holder {
        options = options.holder(holder.unwrap_or_else(|| default_label(&command[0])));
    }
    let acquire = signals.or_first(what.acquire(locks, options));
    let acquired = if nonblock {
        acquire.await
    } else {
        Spinner::new(locks, &key, global.quiet)
            .around(acquire)
            .await
    };
    let guard = match acquired {
        Ok(Ok(guard)) => guard,
        Ok(Err(LockError::Locked { .. })) => {
            if let Some(held) = what.held() {
                if !global.quiet {
                    eprintln!("redislock: {held}");
                }
                return Exit::Conflict(conflict);
            }
            return report_conflict(locks, &key, conflict, global.quiet).await;
        }
        Ok(Err(err)) => return fail(&err, conflict),
        Err(signal) => {
            if !global.quiet {
                eprintln!("redislock: {signal} while waiting for {key:?}: the command was not run");
            }
            return Exit::Signal(signal as i32);
        }
    };
    let hold_until = max_hold.map(|max_hold| Instant::now() + max_hold);

    let env = [
        ("REDISLOCK_KEY", Some(key.clone())),
        ("REDISLOCK_TOKEN", Some(guard.token().to_owned())),
        (
            "REDISLOCK_FENCE",
            guard.fencing_token().map(|f| f.to_string()),
        ),
    ];
    let mut group = match Group::spawn(&command, &env, Terminal::foreground()) {
        Ok(group) => group,
        Err(err) => {
            eprintln!("redislock: error: cannot run {:?}: {err}", command[0]);
            release(guard).await;
            return match err.kind() {
                std::io::ErrorKind::NotFound => Exit::CommandNotFound,
                _ => Exit::CannotExecute,
            };
        }
    };

    let lost = guard.lost();
    tokio::pin!(lost);
    let max_hold_reached = async {
        match hold_until {
            Some(at) => tokio::time::sleep_until(at).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(max_hold_reached);
    let mut left_behind_noted = false;
    // Until the command has ended, and every process it left in its group too.
    let exit = loop {
        let stop_why = tokio::select! {
            event = group.next(&mut reaper), if group.ended().is_none() => match event {
                Event::Exited(_) => None,
                Event::Stopped(signal) => {
                    if group.suspend(signal) {
                        // Continued: the lease may have run out while redislock was stopped.
                        if guard.is_held() {
                            group.resume();
                            None
                        } else {
                            Some("the lease ran out while the command was suspended".to_owned())
                        }
                    } else {
                        None
                    }
                }
            },
            () = tokio::time::sleep(Duration::from_millis(20)), if group.ended().is_some() => None,
            signal = signals.next() => {
                group.signal(signal);
                None
            }
            reason = &mut lost => Some(format!("the lease on {key:?} was lost ({reason})")),
            () = &mut max_hold_reached => Some(format!(
                "the maximum hold time ({}) was reached",
                human(max_hold.unwrap_or_default())
            )),
        };
        if let Some(why) = stop_why {
            eprintln!("redislock: error: {why}; stopping the command");
            group.stop(&reaper, grace).await;
            drop(group);
            release(guard).await;
            return Exit::LeaseLost;
        }
        let Some(exit) = group.ended() else {
            continue;
        };
        if !group.alive(&reaper) {
            break exit;
        }
        if !left_behind_noted && !global.quiet {
            eprintln!(
                "redislock: note: the command exited; the lock is held until the processes it \
                 left in its process group end"
            );
        }
        left_behind_noted = true;
    };
    drop(group);
    match guard.release().await {
        Ok(()) => exit,
        Err(err @ (LockError::Lost { .. } | LockError::NotOwner { .. })) => {
            // The command finished, but the lease did not hold all along.
            print_error(&err);
            Exit::LeaseLost
        }
        Err(err) => {
            if !global.quiet {
                eprintln!("redislock: note: the lock will expire on its own: release failed");
            }
            print_error(&err);
            exit
        }
    }
}

/// What `run` holds: a lock, several together, a semaphore's permit, or a read or write hold.
enum What<'a> {
    Lock(&'a str),
    All(Vec<String>),
    Permit(ac_redislock::Semaphore),
    Read(ac_redislock::RwLock),
    Write(ac_redislock::RwLock),
}

impl<'a> What<'a> {
    /// From `run`'s options, which `clap` keeps apart (see `RunArgs`).
    fn of(
        locks: &RedisLock,
        key: &'a str,
        more: Vec<String>,
        limit: Option<u32>,
        shared: bool,
        exclusive: bool,
    ) -> Self {
        if let Some(limit) = limit {
            return Self::Permit(locks.semaphore(key, limit));
        }
        if shared {
            return Self::Read(locks.rw_lock(key));
        }
        if exclusive {
            return Self::Write(locks.rw_lock(key));
        }
        if more.is_empty() {
            return Self::Lock(key);
        }
        let mut keys = vec![key.to_owned()];
        keys.extend(more);
        Self::All(keys)
    }

    async fn acquire(
        &self,
        locks: &RedisLock,
        options: AcquireOptions,
    ) -> Result<LockGuard, LockError> {
        match self {
            Self::Lock(key) => locks.acquire_with(key, options).await,
            Self::All(keys) => locks.acquire_all_with(keys, options).await,
            Self::Permit(semaphore) => semaphore.acquire_with(options).await,
            Self::Read(rw) => rw.read_with(options).await,
            Self::Write(rw) => rw.write_with(options).await,
        }
    }

    /// What a conflict means, when it is not a plain lock held by another owner.
    fn held(&self) -> Option<String> {
        match self {
            Self::Lock(_) => None,
            Self::All(keys) => Some(format!("one of {keys:?} is locked by another owner")),
            Self::Permit(semaphore) => Some(format!(
                "all {} permits of {:?} are taken",
                semaphore.limit(),
                semaphore.key()
            )),
            Self::Read(rw) => Some(format!(
                "{:?} is being written (or a writer waits)",
                rw.key()
            )),
            Self::Write(rw) => Some(format!("{:?} is held by readers or a writer", rw.key())),
        }
    }
}

/// The holder label of a run with no --holder: `<host>:<pid> <command name>`, without the
/// command's arguments (they may hold secrets, and anyone who can read the Redis sees the
/// label), made to fit the library's rules: control characters replaced, at most
/// [`MAX_HOLDER_LEN`](ac_redislock::MAX_HOLDER_LEN) bytes.
fn default_label(program: &str) -> String {
    let host = nix::unistd::gethostname()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "localhost".to_owned());
    let name = std::path::Path::new(program)
        .file_name()
        .map_or_else(|| program.into(), |name| name.to_string_lossy());
    let label = format!("{host}:{} {name}", std::process::id());
    let mut fitted = String::with_capacity(label.len());
    for c in label.chars().map(|c| if c.is_control() { '?' } else { c }) {
        if fitted.len() + c.len_utf8() > ac_redislock::MAX_HOLDER_LEN {
            break;
        }
        fitted.push(c);
    }
    fitted
}

/// Releases at the end of a failed run; a failure only means the lock expires on its own.
async fn release(guard: LockGuard) {
    let _ = guard.release().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_label_names_host_pid_and_command_only() {
        let label = default_label("/usr/local/bin/backup.sh");
        let pid = std::process::id().to_string();
        assert!(label.ends_with(&format!(":{pid} backup.sh")), "{label}");
        assert!(!label.contains("/usr/local"), "{label}");
        let long = default_label(&"锁".repeat(400));
        assert!(long.len() <= ac_redislock::MAX_HOLDER_LEN, "{}", long.len());
        assert!(
            long.len() > ac_redislock::MAX_HOLDER_LEN - 4,
            "{}",
            long.len()
        );
        assert!(default_label("tab\there").ends_with(" tab?here"));
    }
}
