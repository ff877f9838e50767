//! The history every process writes: one event a line, with a system-wide monotonic clock so
//! that events of different processes can be ordered.
//!
//! A line is `t_ns proc key op kind value`, tab-separated. `op` is what happened (`acquire`,
//! `cs_enter`, `write`, `fwrite`, `file`, `cs_exit`, `release`, `lost`, and the coordinator's
//! `kill`, `pause`, `resume`, `restart`); `kind` is Jepsen's `invoke`, `ok`, `fail` or `info`
//! (indeterminate).

use std::fmt;
use std::io::{BufRead, BufWriter, Write};
use std::path::Path;
use std::str::FromStr;

/// Nanoseconds on CLOCK_MONOTONIC: the same clock in every process of this machine.
pub(crate) fn now_ns() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(|t| {
            u64::try_from(t.tv_sec()).unwrap_or(0) * 1_000_000_000
                + u64::try_from(t.tv_nsec()).unwrap_or(0)
        })
        .unwrap_or(0)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Invoke,
    Ok,
    Fail,
    Info,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Invoke => "invoke",
            Self::Ok => "ok",
            Self::Fail => "fail",
            Self::Info => "info",
        })
    }
}

impl FromStr for Kind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "invoke" => Self::Invoke,
            "ok" => Self::Ok,
            "fail" => Self::Fail,
            "info" => Self::Info,
            other => return Err(format!("unknown kind {other:?}")),
        })
    }
}

/// One event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Event {
    pub(crate) t: u64,
    /// The worker (`w3`), or `nemesis`.
    pub(crate) proc: String,
    /// The lock key index (`-` for none).
    pub(crate) key: String,
    pub(crate) op: String,
    pub(crate) kind: Kind,
    /// A token, a fence, a counter value, or a note; `-` for none.
    pub(crate) value: String,
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}\t{}\t{}\t{}\t{}\t{}",
            self.t,
            self.proc,
            self.key,
            self.op,
            self.kind,
            self.value.replace(['\t', '\n'], " ")
        )
    }
}

impl FromStr for Event {
    type Err = String;
    fn from_str(line: &str) -> Result<Self, String> {
        let mut parts = line.splitn(6, '\t');
        let mut next = || parts.next().ok_or_else(|| format!("short line {line:?}"));
        Ok(Self {
            t: next()?
                .parse()
                .map_err(|_| format!("bad time in {line:?}"))?,
            proc: next()?.to_owned(),
            key: next()?.to_owned(),
            op: next()?.to_owned(),
            kind: next()?.parse()?,
            value: next()?.to_owned(),
        })
    }
}

/// Appends events to a file, flushing each line so a killed process loses nothing written.
pub(crate) struct Recorder {
    proc: String,
    out: BufWriter<std::fs::File>,
}

impl Recorder {
    pub(crate) fn create(path: &Path, proc: &str) -> std::io::Result<Self> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Ok(Self {
            proc: proc.to_owned(),
            out: BufWriter::new(file),
        })
    }

    pub(crate) fn record(
        &mut self,
        key: &str,
        op: &str,
        kind: Kind,
        value: impl fmt::Display,
    ) -> u64 {
        let t = now_ns();
        let event = Event {
            t,
            proc: self.proc.clone(),
            key: key.to_owned(),
            op: op.to_owned(),
            kind,
            value: value.to_string(),
        };
        let _ = writeln!(self.out, "{event}");
        let _ = self.out.flush();
        t
    }
}

/// Reads every `*.history` file of `dir`, merged and sorted by time. A torn last line (a
/// killed writer) is skipped.
pub(crate) fn read_all(dir: &Path) -> std::io::Result<Vec<Event>> {
    let mut events = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().and_then(|e| e.to_str()) != Some("history") {
            continue;
        }
        let file = std::io::BufReader::new(std::fs::File::open(&path)?);
        for line in file.lines() {
            if let Ok(event) = line?.parse::<Event>() {
                events.push(event);
            }
        }
    }
    events.sort_by_key(|e| e.t);
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip_and_the_clock_moves_forward() {
        let event = Event {
            t: now_ns(),
            proc: "w1".into(),
            key: "3".into(),
            op: "acquire".into(),
            kind: Kind::Ok,
            value: "abc\tdef".into(),
        };
        let parsed: Event = event.to_string().parse().unwrap();
        assert_eq!(parsed.value, "abc def");
        assert_eq!(parsed.kind, Kind::Ok);
        assert!(now_ns() >= event.t);
        assert!("1\tw1\t-\top".parse::<Event>().is_err());
    }
}
