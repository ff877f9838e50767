//! The command line, as clap sees it. No Redis I/O here.

use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::duration;

/// A distributed flock(1) on Redis: run a command while holding a lock that every host sharing
/// the Redis respects, or take, inspect and release locks from shell scripts.
///
/// Locks are shared with the ac-redislock libraries for Rust and Node: same keys, same values.
#[derive(Debug, Parser)]
#[command(name = "redislock", version, about, max_term_width = 100)]
#[command(after_help = "\
Examples:
  redislock run nightly-backup --ttl 30s -- ./backup.sh
  redislock run deploy --nonblock -E 75 -- make deploy
  TOKEN=$(redislock lock jobs:42 --ttl 5m) && ... && redislock release jobs:42 --value \"$TOKEN\"
  redislock status jobs:42 --json
  redislock status jobs:42 --watch
  redislock --url redis://a:6379 --url redis://b:6379 --url redis://c:6379 run job -- ./job
  redislock --cluster --url redis://node1:7000 run job -- ./job
  redislock --sentinel mymaster --url redis://sentinel1:26379 run job -- ./job
  REDISLOCK_MASTER_PASSWORD=... redislock --sentinel mymaster \\
      --url redis://:sentinel-password@sentinel1:26379 --master-db 2 run job -- ./job

Exit codes: 0 ok; 1 held elsewhere or the wait ran out (-E changes it); 2 usage; 3 Redis
unavailable or error, or stdout not writable; 4 lease lost during `run`; 5 not the owner
(release, extend); 126/127 command not executable / not found; 128+N command killed by
signal N; otherwise the command's own code.")]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) global: Global,
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// Options every subcommand takes.
#[derive(Debug, Args)]
pub(crate) struct Global {
    /// Redis URL, such as redis://127.0.0.1:6379/0 or redis://user:password@host:6379, rediss://
    /// for TLS, or unix:///path/to/redis.sock. The password is never printed. Give it several
    /// times (or comma-separated in REDIS_URL) for Redlock over independent masters, a lock held
    /// when a majority holds it; with --cluster or --sentinel, for the nodes or sentinels.
    #[arg(
        long = "url",
        global = true,
        env = "REDIS_URL",
        value_delimiter = ',',
        default_value = "redis://127.0.0.1:6379",
        hide_env_values = true
    )]
    pub(crate) urls: Vec<String>,

    /// The URLs are nodes of a Redis Cluster (one is enough).
    #[arg(long, global = true, conflicts_with = "sentinel")]
    pub(crate) cluster: bool,

    /// The URLs are sentinels; lock on the master they know by this name. A sentinel's own
    /// password goes in its URL (redis://:password@host:26379); the master's in
    /// --master-password.
    #[arg(long, global = true, value_name = "MASTER")]
    pub(crate) sentinel: Option<String>,

    /// With --sentinel: the master's ACL user name (needs --master-password).
    #[arg(long, global = true, value_name = "USER", requires = "sentinel")]
    pub(crate) master_user: Option<String>,

    /// With --sentinel: the master's password (its requirepass, the sentinels' auth-pass),
    /// never sent to the sentinels. Prefer the environment variable REDISLOCK_MASTER_PASSWORD
    /// (read only with --sentinel): a command line can be seen by other users. Never printed.
    #[arg(long, global = true, value_name = "PASSWORD", requires = "sentinel")]
    pub(crate) master_password: Option<Secret>,

    /// With --sentinel: the master's database number (default 0).
    #[arg(long, global = true, value_name = "N", requires = "sentinel")]
    pub(crate) master_db: Option<u32>,

    /// Longest time one Redis call may take (500ms, 3s, ...).
    #[arg(long, global = true, value_name = "DURATION", default_value = "3s", value_parser = duration::parse)]
    pub(crate) timeout: Duration,

    /// Print nothing but errors: no progress line while waiting, no notes, no line for a lock
    /// held elsewhere (its exit code tells it).
    #[arg(short, long, global = true)]
    pub(crate) quiet: bool,
}

/// A password from the command line or the environment; its `Debug` never shows it.
#[derive(Clone)]
pub(crate) struct Secret(String);

impl Secret {
    /// The password itself, for the one place that sends it.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(Self(text.to_owned()))
    }
}

/// Where the master's password is read from when --master-password is not given. Read by
/// hand rather than by clap, so that a variable exported for `--sentinel` runs does not make
/// every other run a usage error.
pub(crate) const MASTER_PASSWORD_ENV: &str = "REDISLOCK_MASTER_PASSWORD";

impl Global {
    /// The master's password: --master-password, else a non-empty
    /// [`MASTER_PASSWORD_ENV`].
    pub(crate) fn master_password(&self) -> Option<Secret> {
        self.master_password.clone().or_else(|| {
            std::env::var(MASTER_PASSWORD_ENV)
                .ok()
                .filter(|password| !password.is_empty())
                .map(Secret)
        })
    }
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run a command while holding the lock, renewed in the background.
    ///
    /// The command gets REDISLOCK_KEY, REDISLOCK_TOKEN and, with --fencing, REDISLOCK_FENCE in
    /// its environment, and runs as a process group of its own, killed if redislock dies. A
    /// signal ends the wait (exit 128+N); while the command runs, SIGINT, SIGTERM, SIGHUP,
    /// SIGQUIT, SIGUSR1, SIGUSR2 and SIGALRM reach its group once. If the lease is lost or
    /// --max-hold is reached, the group gets SIGTERM, then SIGKILL after --grace, and redislock
    /// exits with 4. Otherwise redislock releases the lock once the group is empty and exits
    /// with the command's code.
    #[command(after_help = "\
Examples:
  redislock run nightly-backup --ttl 30s -- ./backup.sh --full
  redislock run deploy --nonblock -E 75 -- make deploy     # exit 75 if a deploy is running
  redislock run report --wait 5m --fencing -- sh -c 'upload --fence \"$REDISLOCK_FENCE\"'
  redislock run encoders --limit 3 --wait 1h -- ffmpeg -i in.mov out.mp4   # at most 3 at once
  redislock run catalog --shared -- ./read-catalog.sh      # readers share...
  redislock run catalog --exclusive -- ./rebuild-catalog.sh  # ...a writer is alone
  redislock run accounts:1 --key accounts:2 -- ./transfer.sh 1 2   # both keys or none")]
    Run(RunArgs),

    /// Take a lock and print its value (a fresh token unless --value is given).
    ///
    /// The lock stays until its ttl ends or it is released with that value. A held lock exits
    /// with the conflict code and says for how long it is held (not with -q). A value that
    /// cannot be printed (stdout closed, or a pipe nobody reads) releases the lock at once and
    /// exits with 3.
    #[command(after_help = "\
Examples:
  TOKEN=$(redislock lock jobs:42 --ttl 5m)
  redislock lock jobs:42 --value worker-7 --wait 30s")]
    Lock(LockArgs),

    /// Release a lock: with --value only if it still holds that value, with --force whoever
    /// holds it.
    #[command(after_help = "\
Examples:
  redislock release jobs:42 --value \"$TOKEN\"
  redislock release jobs:42 --force          # admin: whoever holds it")]
    Release(ReleaseArgs),

    /// Print the value a lock holds; exit 1 if no one holds it.
    ///
    /// Anyone who can run this can release the lock with what it prints.
    #[command(after_help = "Example:\n  redislock get jobs:42")]
    Get(KeyArg),

    /// Show whether a lock is held, by whom (its holder label, when it has one) and for how
    /// long, the time left, its fencing counter and its waiters. Never shows the lock's value.
    ///
    /// A semaphore's or read-write lock's key shows its holders instead. With --watch, the
    /// status is shown again every second until Ctrl-C (or another signal: exit 128+N).
    #[command(after_help = "\
Examples:
  redislock status jobs:42
  redislock status jobs:42 --json
  redislock status jobs:42 --watch           # redrawn every second; Ctrl-C to stop
  redislock status jobs:42 --watch | tee log # one line a second")]
    Status(StatusArgs),

    /// Set a lock's ttl anew, if it still holds --value.
    #[command(after_help = "Example:\n  redislock extend jobs:42 --value \"$TOKEN\" --ttl 5m")]
    Extend(ExtendArgs),
}

/// A lock key.
#[derive(Debug, Args)]
pub(crate) struct KeyArg {
    /// The lock's key, as the Rust and Node libraries name it.
    pub(crate) key: String,
}

#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// The lock's key.
    pub(crate) key: String,

    /// Lease: how long the lock outlives a redislock that dies (kill -9, power loss). At least
    /// 100ms: it is renewed every third of it.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = duration::parse)]
    pub(crate) ttl: Duration,

    /// How long to wait for a held lock before giving up with the conflict code.
    #[arg(short, long, value_name = "DURATION", default_value = "10s", value_parser = duration::parse, conflicts_with = "nonblock")]
    pub(crate) wait: Duration,

    /// Do not wait: fail at once with the conflict code if the lock is held.
    #[arg(short, long)]
    pub(crate) nonblock: bool,

    /// Exit code when the lock is held or the wait runs out (default 1, as flock).
    #[arg(short = 'E', long, value_name = "CODE", default_value_t = crate::exit::DEFAULT_CONFLICT)]
    pub(crate) conflict_exit_code: u8,

    /// The holder label `redislock status` shows while the command runs (at most 256 bytes,
    /// no control characters; anyone who can read the Redis sees it). Default:
    /// `<host>:<pid> <command name>`, the command's name without its arguments.
    #[arg(long, value_name = "LABEL", conflicts_with_all = ["no_holder", "keys", "limit", "shared", "exclusive"])]
    pub(crate) holder: Option<String>,

    /// Take the lock without a holder label.
    #[arg(long)]
    pub(crate) no_holder: bool,

    /// Draw a fencing token and pass it to the command as REDISLOCK_FENCE.
    #[arg(long)]
    pub(crate) fencing: bool,

    /// Another key to hold with KEY, all or none (repeat it: --key B --key C). Two runs with
    /// overlapping keys never deadlock.
    #[arg(long = "key", value_name = "KEY", conflicts_with_all = ["limit", "shared", "exclusive", "fencing"])]
    pub(crate) keys: Vec<String>,

    /// KEY is a semaphore: at most N commands hold it at once, across all hosts (every run on
    /// KEY must give the same N). A run killed with -9 frees its permit when its lease ends.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..), conflicts_with_all = ["shared", "exclusive", "fencing"])]
    pub(crate) limit: Option<u32>,

    /// KEY is a read-write lock: take a read hold, shared with other --shared runs, never
    /// with an --exclusive one.
    #[arg(long, conflicts_with_all = ["exclusive", "fencing"])]
    pub(crate) shared: bool,

    /// KEY is a read-write lock: take its write hold, alone. A waiting --exclusive run holds
    /// back the --shared runs that come after it.
    #[arg(long)]
    pub(crate) exclusive: bool,

    /// After a lost lease: time between SIGTERM and SIGKILL to the command.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = duration::parse)]
    pub(crate) grace: Duration,

    /// Stop renewing after this long (the command is then stopped as for a lost lease).
    /// Default: renew for as long as the command runs.
    #[arg(long, value_name = "DURATION", value_parser = duration::parse)]
    pub(crate) max_hold: Option<Duration>,

    /// The command and its arguments, after `--`.
    #[arg(required = true, num_args = 1.., last = true, value_name = "COMMAND")]
    pub(crate) command: Vec<String>,
}

#[derive(Debug, Args)]
pub(crate) struct LockArgs {
    /// The lock's key.
    pub(crate) key: String,

    /// How long the lock lives unless released.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = duration::parse)]
    pub(crate) ttl: Duration,

    /// The value to store, instead of a fresh token (a Node worker may expect a known value).
    #[arg(long)]
    pub(crate) value: Option<String>,

    /// A holder label for `redislock status` to show (at most 256 bytes, no control
    /// characters). Without it, the lock is the Node original's SET NX alone.
    #[arg(long, value_name = "LABEL")]
    pub(crate) holder: Option<String>,

    /// How long to wait for a held lock (default: one attempt).
    #[arg(short, long, value_name = "DURATION", default_value = "0s", value_parser = duration::parse)]
    pub(crate) wait: Duration,

    /// Exit code when the lock is held or the wait runs out.
    #[arg(short = 'E', long, value_name = "CODE", default_value_t = crate::exit::DEFAULT_CONFLICT)]
    pub(crate) conflict_exit_code: u8,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("how").required(true).args(["value", "force"])))]
pub(crate) struct ReleaseArgs {
    /// The lock's key.
    pub(crate) key: String,

    /// Release only if the lock holds this value (what `lock` printed).
    #[arg(long)]
    pub(crate) value: Option<String>,

    /// Release whoever holds the lock.
    #[arg(long)]
    pub(crate) force: bool,

    /// Exit 0, silently, if the lock is not held with --value (the original's suppressMismatch).
    #[arg(long, conflicts_with = "force")]
    pub(crate) suppress_mismatch: bool,
}

#[derive(Debug, Args)]
pub(crate) struct StatusArgs {
    /// The lock's key.
    pub(crate) key: String,

    /// Print one JSON object: key, state, held, ttl_ms, fencing_counter, waiters, holder,
    /// held_for_ms, held_since_ms (Unix ms, the server's clock), lease_set.
    #[arg(long)]
    pub(crate) json: bool,

    /// Show the status again every second until interrupted: redrawn in place on a terminal,
    /// one line (or JSON object) per refresh otherwise. Ctrl-C exits with 130, SIGTERM with
    /// 143.
    #[arg(long)]
    pub(crate) watch: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ExtendArgs {
    /// The lock's key.
    pub(crate) key: String,

    /// The value the lock must hold.
    #[arg(long)]
    pub(crate) value: String,

    /// The new ttl, from now.
    #[arg(long, value_name = "DURATION", value_parser = duration::parse)]
    pub(crate) ttl: Duration,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn run_takes_the_command_after_the_double_dash() {
        let cli =
            Cli::try_parse_from(["redislock", "run", "k", "--nonblock", "--", "ls", "-l"]).unwrap();
        let Command::Run(run) = cli.command else {
            panic!("not run")
        };
        assert!(run.nonblock);
        assert_eq!(run.command, ["ls", "-l"]);
        assert_eq!(run.ttl, Duration::from_secs(30));
        assert!(
            Cli::try_parse_from(["redislock", "run", "k"]).is_err(),
            "no command"
        );
        assert!(
            Cli::try_parse_from(["redislock", "run", "k", "-n", "-w", "1s", "--", "x"]).is_err(),
            "--wait and --nonblock together"
        );
    }

    #[test]
    fn the_master_options_go_with_sentinel_and_the_password_is_never_shown() {
        let cli = Cli::try_parse_from([
            "redislock",
            "--sentinel",
            "m",
            "--master-user",
            "locker",
            "--master-password",
            "hunter2-master",
            "--master-db",
            "2",
            "get",
            "k",
        ])
        .unwrap();
        assert_eq!(cli.global.master_user.as_deref(), Some("locker"));
        assert_eq!(
            cli.global.master_password.as_ref().map(Secret::expose),
            Some("hunter2-master")
        );
        assert_eq!(cli.global.master_db, Some(2));
        assert!(!format!("{cli:?}").contains("hunter2"));
        for without_sentinel in [
            ["redislock", "--master-user", "u", "get", "k"],
            ["redislock", "--master-password", "p", "get", "k"],
            ["redislock", "--master-db", "2", "get", "k"],
        ] {
            assert!(
                Cli::try_parse_from(without_sentinel).is_err(),
                "{without_sentinel:?}"
            );
        }
    }

    #[test]
    fn release_needs_value_or_force() {
        assert!(Cli::try_parse_from(["redislock", "release", "k"]).is_err());
        assert!(Cli::try_parse_from(["redislock", "release", "k", "--force"]).is_ok());
        assert!(Cli::try_parse_from(["redislock", "release", "k", "--value", "v"]).is_ok());
        assert!(
            Cli::try_parse_from([
                "redislock",
                "release",
                "k",
                "--force",
                "--suppress-mismatch"
            ])
            .is_err()
        );
    }
}
