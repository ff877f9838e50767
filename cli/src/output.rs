//! What `redislock` prints on stdout (a lock's value, a status line), written so that a failed
//! write is an error the caller can act on, never a panic.
//!
//! `println!` panics when stdout is a pipe whose reader is gone (`redislock lock k | true`),
//! and a stdout closed by the caller (`redislock lock k >&-`) is reopened on `/dev/null` by
//! Rust's runtime before `main`, so a write there succeeds and the value is silently lost. Both
//! come back here as an `Err`: SIGPIPE stays ignored (Rust's default), so the first gives
//! `EPIPE`; the second is recognised by the `/dev/null` the runtime put in its place, and gives
//! `EBADF`.

use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::sys::stat::{SFlag, fstat};

/// Writes `line` and a newline to stdout and flushes it.
///
/// # Errors
///
/// Any write or flush error: `EPIPE` for a pipe nobody reads, `EBADF` for a stdout that was
/// closed when the process started.
pub(crate) fn print_line(line: &str) -> io::Result<()> {
    if closed_at_start() {
        return Err(Errno::EBADF.into());
    }
    let mut out = io::stdout().lock();
    writeln!(out, "{line}")?;
    out.flush()
}

/// Writes `text` as it is (a redrawn screen: escapes and newlines included) to stdout and
/// flushes it; errors as [`print_line`]'s.
pub(crate) fn print_text(text: &str) -> io::Result<()> {
    if closed_at_start() {
        return Err(Errno::EBADF.into());
    }
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()
}

/// Whether stdout was closed when the process started. Rust's runtime then opened `/dev/null`
/// in its place, for reading and writing (`O_RDWR`), which no shell redirection does
/// (`>/dev/null` opens it write-only): so that is what is looked for. Only `1<>/dev/null` looks
/// the same, and is taken for a closed stdout too (the lock is then released: nothing is lost).
fn closed_at_start() -> bool {
    let Ok(flags) = fcntl(io::stdout(), FcntlArg::F_GETFL) else {
        return true;
    };
    if OFlag::from_bits_truncate(flags) & OFlag::O_ACCMODE != OFlag::O_RDWR {
        return false;
    }
    let (Ok(stdout), Ok(null)) = (fstat(io::stdout()), std::fs::metadata("/dev/null")) else {
        return false;
    };
    SFlag::from_bits_truncate(stdout.st_mode) & SFlag::S_IFMT == SFlag::S_IFCHR
        && stdout.st_rdev == null.rdev()
}
