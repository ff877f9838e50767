//! What `redislock` prints on stdout (a lock's value, a status line), written so that a failed
//! write is an error the caller can act on, never a panic.
//!
//! `println!` panics when stdout is a pipe whose reader is gone (`redislock lock k | true`),
//! and a stdout closed by the caller (`redislock lock k >&-`) is reopened on `/dev/null` by
//! Rust's runtime before `main`, so a write there succeeds and the value is silently lost. Both
//! come back here as an `Err`: SIGPIPE stays ignored (Rust's default), so the first gives
//! `EPIPE`; the second is seen before the runtime starts and gives `EBADF`.

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, fcntl};

/// Writes `line` and a newline to stdout and flushes it.
///
/// # Errors
///
/// Any write or flush error: `EPIPE` for a pipe nobody reads, `EBADF` for a stdout that was
/// closed when the process started.
pub(crate) fn print_line(line: &str) -> io::Result<()> {
    if CLOSED_AT_START.load(Ordering::Relaxed) {
        return Err(Errno::EBADF.into());
    }
    let mut out = io::stdout().lock();
    writeln!(out, "{line}")?;
    out.flush()
}

/// Whether file descriptor 1 was closed when the process started.
static CLOSED_AT_START: AtomicBool = AtomicBool::new(false);

/// Looks at file descriptor 1 before Rust's runtime reopens it: an entry in `.init_array`
/// runs before `main`, where the runtime does that.
///
/// SAFETY: the section holds a pointer to a function of the type the loader calls there
/// (its arguments, if any, are ignored, as the C ABI allows), and that function needs nothing
/// set up before it runs. The `unsafe_code` lint is allowed for this item only. Where
/// `.init_array` is not run this way, a closed stdout goes unnoticed (the value goes to
/// `/dev/null`), as before.
#[cfg(any(target_os = "linux", target_os = "android"))]
#[allow(unsafe_code)]
#[unsafe(link_section = ".init_array")]
#[used]
static SEE_STDOUT_AT_START: extern "C" fn() = see_stdout_at_start;

/// Records whether stdout is closed. Only a system call and an atomic store: nothing here
/// needs Rust's runtime, which is not set up yet.
#[cfg_attr(
    not(any(target_os = "linux", target_os = "android")),
    expect(dead_code, reason = "called before main only where .init_array is run")
)]
extern "C" fn see_stdout_at_start() {
    let closed = fcntl(io::stdout(), FcntlArg::F_GETFD) == Err(Errno::EBADF);
    CLOSED_AT_START.store(closed, Ordering::Relaxed);
}
