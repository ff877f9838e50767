//! What `redislock` tells the person on stderr when something goes wrong, shared by every
//! subcommand and the spinner: one-line errors, the exit code for a library error, the
//! conflict message, and durations written for people.
//!
//! It imports only [`crate::exit`], so any module can use it without importing back the
//! modules that use it.

use std::fmt::Display;
use std::io::Write as _;
use std::time::Duration;

use ac_redislock::{ErrorChain, LockError, LockStatus, RedisLock};

use crate::exit::Exit;

/// `<error>: <cause>: ...` on one line, each cause once.
pub(crate) fn describe(err: &(dyn std::error::Error + 'static)) -> String {
    ErrorChain(err).to_string().replace(['\n', '\r'], " ")
}

/// Prints `redislock: error: <text>` on stderr. A stderr that cannot be written is not
/// reported anywhere, and never a panic.
pub(crate) fn error_line(text: impl Display) {
    let _ = writeln!(std::io::stderr().lock(), "redislock: error: {text}");
}

/// Prints `redislock: error: <error>: <cause>: ...` on one line, each cause once.
pub(crate) fn print_error(err: &(dyn std::error::Error + 'static)) {
    error_line(describe(err));
}

/// Reports a library error and picks the exit code.
pub(crate) fn fail(err: &LockError, conflict: u8) -> Exit {
    print_error(err);
    Exit::for_error(err, conflict)
}

/// Says who holds `key` and for how long, for a conflict: never the holder's value. A
/// conflict is an outcome, not an error: with `quiet`, nothing is printed (and Redis is not
/// asked for the time left).
pub(crate) async fn report_conflict(
    locks: &RedisLock,
    key: &str,
    conflict: u8,
    quiet: bool,
) -> Exit {
    if quiet {
        return Exit::Conflict(conflict);
    }
    let how_long = match locks.status(key).await {
        Ok(LockStatus { ttl: Some(ttl), .. }) => format!(" (for {} more)", human(ttl)),
        _ => String::new(),
    };
    let _ = writeln!(
        std::io::stderr().lock(),
        "redislock: {key:?} is locked by another owner{how_long}"
    );
    Exit::Conflict(conflict)
}

/// `1.2s`, `350ms`, `4m05s`.
pub(crate) fn human(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{:.1}s", d.as_secs_f64())
    } else {
        format!("{}m{:02}s", ms / 60_000, (ms / 1000) % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_durations() {
        assert_eq!(human(Duration::from_millis(350)), "350ms");
        assert_eq!(human(Duration::from_millis(1250)), "1.2s");
        assert_eq!(human(Duration::from_secs(245)), "4m05s");
    }
}
