//! The subcommands other than `run`: each takes parsed arguments, talks to Redis through the
//! library, prints its result and returns how to exit.

use std::io;

use ac_redislock::{
    AcquireOptions, LockError, LockParams, RedisLock, ReleaseParams, SentinelMaster,
};

use crate::cli::{Cli, Command, ExtendArgs, Global, KeyArg, LockArgs, ReleaseArgs};
use crate::exit::{DEFAULT_CONFLICT, Exit};
use crate::output::print_line;
use crate::report::{describe, error_line, fail, name_servers, print_error, report_conflict};
use crate::run::run;
use crate::signals::Signals;
use crate::spinner::Spinner;
use crate::status::status;

pub(crate) async fn dispatch(cli: Cli) -> Exit {
    let Cli { global, command } = cli;
    name_servers(&global.urls, global.cluster, global.sentinel.as_deref());
    let locks = match connect(&global) {
        Ok(locks) => locks,
        Err(err) => return fail(&err, DEFAULT_CONFLICT),
    };
    let exit = match command {
        Command::Run(args) => run(&locks, &global, args).await,
        Command::Lock(args) => lock(&locks, &global, args).await,
        Command::Release(args) => release(&locks, args).await,
        Command::Get(args) => get(&locks, args).await,
        Command::Status(args) => status(&locks, args).await,
        Command::Extend(args) => extend(&locks, args).await,
    };
    // What the library still has in flight (the release of an attempt whose answer was lost,
    // a waiter registration to remove) is finished before the process exits.
    if let Err(err) = locks.close().await
        && !global.quiet
    {
        eprintln!("redislock: note: {err}");
    }
    exit
}

/// The client the global options describe: one Redis, Redlock over several, a cluster or a
/// Sentinel group.
fn connect(global: &Global) -> ac_redislock::Result<RedisLock> {
    let builder = RedisLock::builder().command_timeout(global.timeout);
    let urls: Vec<&str> = global.urls.iter().map(String::as_str).collect();
    if let Some(master) = &global.sentinel {
        let mut settings = SentinelMaster::new().db(global.master_db.unwrap_or(0));
        if let Some(user) = &global.master_user {
            settings = settings.username(user);
        }
        if let Some(password) = &global.master_password() {
            settings = settings.password(password.expose());
        }
        builder.build_sentinel_with(&urls, master, &settings)
    } else if global.cluster {
        builder.build_cluster(&urls)
    } else if let [url] = urls.as_slice() {
        builder.build_from_url(url)
    } else {
        builder.build_redlock(&urls)
    }
}

async fn lock(locks: &RedisLock, global: &Global, args: LockArgs) -> Exit {
    let LockArgs {
        key,
        ttl,
        value,
        holder,
        wait,
        conflict_exit_code,
    } = args;
    let result = if let (Some(label), true) = (&holder, wait.is_zero()) {
        // One attempt, labelled: the library's try (a script that writes the label with the
        // lock; the lock's value is the same).
        let mut options = AcquireOptions::new().ttl(ttl).holder(label);
        if let Some(value) = value {
            options = options.token(value);
        }
        locks
            .try_acquire_with(&key, options)
            .await
            .map(ac_redislock::LockGuard::detach)
    } else if wait.is_zero() {
        // One attempt: the Node original's command, exactly.
        let mut params = LockParams::new(&key).expires(ttl);
        if let Some(value) = value {
            params = params.value(value);
        }
        locks.lock_key(params).await
    } else {
        let mut options = AcquireOptions::new().ttl(ttl).wait(wait);
        if let Some(value) = value {
            options = options.token(value);
        }
        if let Some(label) = holder {
            options = options.holder(label);
        }
        // As flock(1), the first signal ends the wait; the waiter's place is withdrawn.
        let mut signals = match Signals::new() {
            Ok(signals) => signals,
            Err(err) => {
                print_error(&err);
                return Exit::Backend;
            }
        };
        let acquire = signals.or_first(locks.acquire_with(&key, options));
        match Spinner::new(locks, &key, global.quiet)
            .around(acquire)
            .await
        {
            Ok(acquired) => acquired.map(ac_redislock::LockGuard::detach),
            Err(signal) => {
                if !global.quiet {
                    eprintln!("redislock: {signal} while waiting for {key:?}: not locked");
                }
                return Exit::Signal(signal as i32);
            }
        }
    };
    match result {
        Ok(value) => match print_line(&value) {
            Ok(()) => Exit::Success,
            Err(err) => release_unprinted(locks, &key, value, &err).await,
        },
        Err(LockError::Locked { .. }) => {
            report_conflict(locks, &key, conflict_exit_code, global.quiet).await
        }
        Err(err) => fail(&err, conflict_exit_code),
    }
}

/// A lock whose value could not be printed (a closed pipe, a closed stdout) is one nobody can
/// release: it is released here, with that value, so never another owner's lock.
async fn release_unprinted(locks: &RedisLock, key: &str, value: String, err: &io::Error) -> Exit {
    match locks
        .release_lock(ReleaseParams::new(key).value(value))
        .await
    {
        Ok(()) => error_line(format_args!("{}; the lock was released", unprinted(err))),
        Err(release) => error_line(format_args!(
            "{}; releasing the lock failed, so it may stay until its ttl ends: {}",
            unprinted(err),
            describe(&release)
        )),
    }
    Exit::Backend
}

/// What a failed write on stdout is called in an error line.
fn unprinted(err: &io::Error) -> String {
    format!("cannot print to stdout: {err}")
}

/// Prints `line` on stdout; a failed write is reported, with the exit for it.
fn print_result(line: &str) -> Exit {
    match print_line(line) {
        Ok(()) => Exit::Success,
        Err(err) => {
            error_line(unprinted(&err));
            Exit::Backend
        }
    }
}

async fn release(locks: &RedisLock, args: ReleaseArgs) -> Exit {
    let ReleaseArgs {
        key,
        value,
        force: _,
        suppress_mismatch,
    } = args;
    let mut params = ReleaseParams::new(&key).suppress_mismatch(suppress_mismatch);
    if let Some(value) = value {
        params = params.value(value);
    }
    match locks.release_lock(params).await {
        Ok(()) => Exit::Success,
        Err(err) => fail(&err, DEFAULT_CONFLICT),
    }
}

async fn get(locks: &RedisLock, args: KeyArg) -> Exit {
    match locks.get_lock(&args.key).await {
        Ok(Some(value)) => print_result(&value),
        Ok(None) => Exit::Conflict(1),
        Err(err) => fail(&err, DEFAULT_CONFLICT),
    }
}

async fn extend(locks: &RedisLock, args: ExtendArgs) -> Exit {
    match locks.extend_lock(&args.key, &args.value, args.ttl).await {
        Ok(()) => Exit::Success,
        Err(err) => fail(&err, DEFAULT_CONFLICT),
    }
}
