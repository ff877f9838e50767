//! `redislock status`: one snapshot of a lock (holder label, how long it has been held, time
//! left, fencing counter, waiters), as a line or as JSON; with `--watch`, one a second until a
//! signal: redrawn in place on a terminal, one line per refresh anywhere else.
//!
//! It never prints a lock's value: the library's status has none.

use std::fmt::Write as _;
use std::io::{self, IsTerminal};
use std::time::{Duration, SystemTime};

use ac_redislock::{LockError, LockState, LockStatus, RedisLock, RwLockStatus};

use crate::cli::StatusArgs;
use crate::exit::{DEFAULT_CONFLICT, Exit};
use crate::output::{print_line, print_text};
use crate::report::{describe, error_line, fail, human, print_error, printable};
use crate::signals::Signals;

/// How often `--watch` refreshes.
const REFRESH: Duration = Duration::from_secs(1);

/// `redislock status KEY [--json] [--watch]`.
pub(crate) async fn status(locks: &RedisLock, args: StatusArgs) -> Exit {
    if args.watch {
        return watch(locks, &args).await;
    }
    let text = match snapshot(locks, &args.key).await {
        Ok(snapshot) => snapshot.text(&args.key, args.json),
        Err(err) => return fail(&err, DEFAULT_CONFLICT),
    };
    match print_line(&text) {
        Ok(()) => Exit::Success,
        Err(err) => unprinted(&err),
    }
}

/// A lock's status, and the lease set's when the key is one.
struct Snapshot {
    status: LockStatus,
    set: Option<RwLockStatus>,
}

/// The status of the lock at `key`.
async fn snapshot(locks: &RedisLock, key: &str) -> Result<Snapshot, LockError> {
    let status = locks.status(key).await?;
    // A key that is not a lock may be a semaphore's or a read-write lock's lease set: one more
    // call, on that path only. Anything else (a list, Redlock, which keeps no lease sets) is
    // shown as not a lock.
    let set = match status.state {
        LockState::NotALock => locks.rw_lock(key).status().await.ok(),
        _ => None,
    };
    Ok(Snapshot { status, set })
}

impl Snapshot {
    /// As `status` prints it: a line, or a JSON object.
    fn text(&self, key: &str, json: bool) -> String {
        if json {
            return to_json(key, &self.status, self.set.as_ref());
        }
        let (head, details) = self.parts(key);
        let mut line = head;
        for detail in details {
            let _ = write!(line, ", {detail}");
        }
        line
    }

    /// What the lock is (`jobs:42: held by web-3:4121 for 12.4s`), then its details
    /// (`17.6s left`, `fencing counter 7`, `2 waiting`).
    fn parts(&self, key: &str) -> (String, Vec<String>) {
        let Self { status, set } = self;
        if let Some(set) = set {
            return set_parts(key, set);
        }
        let mut head = format!("{key}: {}", status.state.as_str());
        if let Some(holder) = &status.holder {
            let _ = write!(head, " by {}", printable(holder));
            if let Some(held_for) = status.held_for {
                let _ = write!(head, " for {}", human(held_for));
            }
        }
        let mut details = Vec::new();
        if let Some(ttl) = status.ttl {
            details.push(format!("{} left", human(ttl)));
        } else if status.state == LockState::Held {
            details.push("no expiry".to_owned());
        }
        if let Some(fence) = status.fencing_counter {
            details.push(format!("fencing counter {fence}"));
        }
        if status.waiters > 0 {
            details.push(format!("{} waiting", status.waiters));
        }
        (head, details)
    }
}

/// A semaphore's or read-write lock's key: `encoders: lease set (semaphore or read-write
/// lock), 2 holders`, then `9.8s left`, `1 waiting`.
fn set_parts(key: &str, set: &RwLockStatus) -> (String, Vec<String>) {
    let holders = match (set.writer, set.readers) {
        (true, _) => "held by a writer".to_owned(),
        (false, 0) => "free".to_owned(),
        (false, 1) => "1 holder".to_owned(),
        (false, n) => format!("{n} holders"),
    };
    let head = format!("{key}: lease set (semaphore or read-write lock), {holders}");
    let mut details = Vec::new();
    if let Some(ttl) = set.ttl {
        details.push(format!("{} left", human(ttl)));
    }
    if let Some(fence) = set.fencing_counter {
        details.push(format!("fencing counter {fence}"));
    }
    if set.waiters > 0 {
        details.push(format!("{} waiting", set.waiters));
    }
    (head, details)
}

/// One JSON object: key, state, held, ttl_ms, fencing_counter, waiters, holder, held_for_ms,
/// held_since_ms (Unix ms, the server's clock), and lease_set (null for a lock).
fn to_json(key: &str, status: &LockStatus, set: Option<&RwLockStatus>) -> String {
    let or_null = |value: Option<String>| value.unwrap_or_else(|| "null".to_owned());
    let ttl = or_null(status.ttl.map(|t| t.as_millis().to_string()));
    let fence = or_null(status.fencing_counter.map(|f| f.to_string()));
    let holder = or_null(status.holder.as_deref().map(json_string));
    let held_for = or_null(status.held_for.map(|d| d.as_millis().to_string()));
    let held_since = or_null(status.held_since.and_then(|since| {
        let ms = since
            .duration_since(SystemTime::UNIX_EPOCH)
            .ok()?
            .as_millis();
        Some(ms.to_string())
    }));
    let lease_set = or_null(set.map(|set| {
        format!(
            r#"{{"holders":{},"writer":{},"ttl_ms":{},"fencing_counter":{},"waiters":{}}}"#,
            set.readers,
            set.writer,
            or_null(set.ttl.map(|t| t.as_millis().to_string())),
            or_null(set.fencing_counter.map(|f| f.to_string())),
            set.waiters
        )
    }));
    format!(
        r#"{{"key":{},"state":"{}","held":{},"ttl_ms":{ttl},"fencing_counter":{fence},"waiters":{},"holder":{holder},"held_for_ms":{held_for},"held_since_ms":{held_since},"lease_set":{lease_set}}}"#,
        json_string(key),
        status.state.as_str(),
        status.state == LockState::Held,
        status.waiters
    )
}

/// A JSON string literal.
fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `--watch`: a snapshot a second until SIGINT, SIGTERM (or any signal `Signals` handles),
/// which ends it with 128 + N as a signal ends a wait; a stdout that cannot be written ends it
/// with 3, as for `status`. A first snapshot that fails ends it as `status` would; a later one
/// is shown in its place, and the next refresh tries again (Redis may come back).
async fn watch(locks: &RedisLock, args: &StatusArgs) -> Exit {
    let mut signals = match Signals::new() {
        Ok(signals) => signals,
        Err(err) => {
            print_error(&err);
            return Exit::Backend;
        }
    };
    let mut screen = Screen::new(!args.json && io::stdout().is_terminal());
    let mut ticker = tokio::time::interval(REFRESH);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut first = true;
    loop {
        let taken = signals
            .or_first(async {
                ticker.tick().await;
                snapshot(locks, &args.key).await
            })
            .await;
        let shown = match taken {
            Err(signal) => return Exit::Signal(signal as i32),
            Ok(Ok(snapshot)) if screen.terminal => screen.show(&snapshot.parts(&args.key)),
            Ok(Ok(snapshot)) => print_line(&snapshot.text(&args.key, args.json)),
            Ok(Err(err)) if first || matches!(err, LockError::InvalidInput(_)) => {
                return fail(&err, DEFAULT_CONFLICT);
            }
            Ok(Err(err)) => {
                let line = format!("{}: error: {}", args.key, describe(&err));
                if screen.terminal {
                    screen.show(&(line, Vec::new()))
                } else {
                    print_line(&line)
                }
            }
        };
        first = false;
        if let Err(err) = shown {
            return unprinted(&err);
        }
    }
}

/// Where `--watch` draws: a terminal, where each refresh replaces the last, or anything else,
/// where each is a line of its own (printed as `status` prints it).
struct Screen {
    terminal: bool,
    /// Lines drawn by the last refresh on the terminal, to move back over.
    drawn: usize,
}

impl Screen {
    fn new(terminal: bool) -> Self {
        Self { terminal, drawn: 0 }
    }

    /// Draws a status on the terminal over the last: what the lock is, its details on a line
    /// of their own, and when it was taken.
    fn show(&mut self, (head, details): &(String, Vec<String>)) -> io::Result<()> {
        let mut lines = vec![head.clone()];
        if !details.is_empty() {
            lines.push(format!("  {}", details.join(", ")));
        }
        lines.push(format!(
            "  every {}s, {} UTC; Ctrl-C to stop",
            REFRESH.as_secs(),
            clock(SystemTime::now())
        ));
        // Each line cut to the terminal's width, so that none wraps and the cursor can be moved
        // back over exactly the lines drawn.
        let width = terminal_size::terminal_size_of(io::stdout())
            .map(|(w, _)| usize::from(w.0))
            .filter(|&w| w > 0);
        let mut out = String::new();
        if self.drawn > 0 {
            // Up to the first line drawn, and clear from there down.
            let _ = write!(out, "\x1b[{}A\r\x1b[J", self.drawn);
        }
        for line in &lines {
            out.extend(fit(line, width));
            out.push('\n');
        }
        print_text(&out)?;
        self.drawn = lines.len();
        Ok(())
    }
}

/// `line` cut to fit within `width` columns (a character a column), if a width is known.
fn fit(line: &str, width: Option<usize>) -> impl Iterator<Item = char> + '_ {
    let max = width.map_or(usize::MAX, |w| w.saturating_sub(1).max(1));
    line.chars().take(max)
}

/// The time of day of `at`, UTC: `05:12:03`.
fn clock(at: SystemTime) -> String {
    let secs = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let day = secs % 86_400;
    format!("{:02}:{:02}:{:02}", day / 3600, (day / 60) % 60, day % 60)
}

/// A failed write on stdout: reported, with the exit for it.
fn unprinted(err: &io::Error) -> Exit {
    error_line(format_args!("cannot print to stdout: {err}"));
    Exit::Backend
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings_escape_what_json_requires() {
        assert_eq!(json_string("a\"b\\c\nd\u{1}"), r#""a\"b\\c\nd\u0001""#);
        assert_eq!(json_string("锁"), "\"锁\"");
    }

    #[test]
    fn lines_are_cut_to_the_width_and_the_clock_is_utc() {
        assert_eq!(fit("abcdef", Some(4)).collect::<String>(), "abc");
        assert_eq!(fit("abcdef", None).collect::<String>(), "abcdef");
        assert_eq!(fit("abc", Some(1)).collect::<String>(), "a");
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(86_400 * 3 + 5 * 3600 + 12 * 60 + 3);
        assert_eq!(clock(at), "05:12:03");
    }
}
