//! What `redislock` tells the person on stderr when something goes wrong, shared by every
//! subcommand and the spinner: one-line errors (naming the servers for a backend error), the
//! exit code for a library error, the conflict message, and durations written for people.
//!
//! It imports only [`crate::exit`], so any module can use it without importing back the
//! modules that use it.

use std::fmt::{Display, Write as _};
use std::io::Write as _;
use std::sync::OnceLock;
use std::time::Duration;

use ac_redislock::{ErrorChain, LockError, LockStatus, RedisLock};

use crate::exit::Exit;

/// The servers this run talks to, as backend errors name them; see [`name_servers`].
static SERVERS: OnceLock<String> = OnceLock::new();

/// Records the servers the command line names, without passwords, for the error lines of
/// backend errors. Called once, before the first Redis call; every subcommand prints its
/// errors through this module, so none has to pass them along.
pub(crate) fn name_servers(urls: &[String], cluster: bool, sentinel: Option<&str>) {
    let list = urls
        .iter()
        .map(|url| without_secrets(url))
        .collect::<Vec<_>>()
        .join(", ");
    let several = urls.len() > 1;
    let named = match sentinel {
        Some(master) if several => format!("sentinels: {list}, master {master:?}"),
        Some(master) => format!("sentinel: {list}, master {master:?}"),
        None if cluster && several => format!("cluster nodes: {list}"),
        None if cluster => format!("cluster node: {list}"),
        None if several => format!("Redlock nodes: {list}"),
        None => format!("server: {list}"),
    };
    let _ = SERVERS.set(named);
}

/// A Redis URL as it may be shown: scheme, user name, host, port and path. The password and
/// the query (where `unix://` URLs may carry `pass=`) are left out.
fn without_secrets(url: &str) -> String {
    let Ok(url) = url::Url::parse(url.trim()) else {
        return "(an unreadable URL)".to_owned();
    };
    let mut shown = format!("{}://", url.scheme());
    if !url.username().is_empty() {
        let _ = write!(shown, "{}@", url.username());
    }
    shown.push_str(url.host_str().unwrap_or_default());
    if let Some(port) = url.port() {
        let _ = write!(shown, ":{port}");
    }
    shown.push_str(url.path());
    shown
}

/// `<error>: <cause>: ...` on one line, each cause once; a backend error ends with the
/// servers it came from, `(server: redis://host:6379/)`.
pub(crate) fn describe(err: &(dyn std::error::Error + 'static)) -> String {
    let mut line = ErrorChain(err).to_string().replace(['\n', '\r'], " ");
    let backend = matches!(
        err.downcast_ref::<LockError>(),
        Some(
            LockError::Unavailable { .. }
                | LockError::Redis(_)
                | LockError::QuorumNotReached { .. }
        )
    );
    if let Some(servers) = SERVERS.get().filter(|_| backend) {
        let _ = write!(line, " ({servers})");
    }
    line
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

/// Says who holds `key` (its holder label, when it has one) and for how long, for a conflict:
/// never the holder's value. A conflict is an outcome, not an error: with `quiet`, nothing is
/// printed (and Redis is not asked for the time left).
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
        Ok(LockStatus {
            ttl: Some(ttl),
            holder,
            ..
        }) => match holder {
            Some(holder) => format!(" ({}, for {} more)", printable(&holder), human(ttl)),
            None => format!(" (for {} more)", human(ttl)),
        },
        _ => String::new(),
    };
    let _ = writeln!(
        std::io::stderr().lock(),
        "redislock: {key:?} is locked by another owner{how_long}"
    );
    Exit::Conflict(conflict)
}

/// A holder label as it may reach a terminal: control characters (which labels set through the
/// library cannot hold, but anyone who can write to Redis can put there) escaped.
pub(crate) fn printable(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
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
    fn labels_reach_the_terminal_without_control_characters() {
        assert_eq!(printable("web-3:4121 job"), "web-3:4121 job");
        assert_eq!(printable("\u{1b}[2Jx\n"), "\\u{1b}[2Jx\\n");
    }

    #[test]
    fn human_durations() {
        assert_eq!(human(Duration::from_millis(350)), "350ms");
        assert_eq!(human(Duration::from_millis(1250)), "1.2s");
        assert_eq!(human(Duration::from_secs(245)), "4m05s");
    }

    #[test]
    fn urls_are_shown_without_passwords() {
        let cases = [
            (
                "redis://user:secret@host:6379/0",
                "redis://user@host:6379/0",
            ),
            ("redis://:secret@10.0.0.9:6379/", "redis://10.0.0.9:6379/"),
            ("rediss://worker@host", "rediss://worker@host"),
            (
                "unix:///run/redis.sock?db=1&pass=secret",
                "unix:///run/redis.sock",
            ),
            ("redis://[::1]:7000", "redis://[::1]:7000"),
            ("redis://127.0.0.1:6379", "redis://127.0.0.1:6379"),
            ("not a url: secret", "(an unreadable URL)"),
        ];
        for (url, shown) in cases {
            assert_eq!(without_secrets(url), shown, "{url}");
        }
    }
}
