//! The signals `redislock` handles rather than dying of them: while it waits for a lock, the
//! first ends the wait cleanly (the waiter's place withdrawn); while `run`'s command runs, each
//! is passed on to it.

use std::future::Future;
use std::task::Poll;

use nix::sys::signal::Signal;
use tokio::signal::unix::{SignalKind, signal};

/// The signals redislock handles: while it waits, the first ends the wait; while the command
/// runs, each is passed on to the command's process group. Together they are every signal
/// whose default would end redislock and that a process can catch (SIGPIPE is ignored, as in
/// every Rust program; SIGKILL cannot be caught, and takes the command down with it).
pub(crate) struct Signals {
    streams: Vec<(Signal, tokio::signal::unix::Signal)>,
}

impl Signals {
    const HANDLED: [Signal; 7] = [
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGQUIT,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
        Signal::SIGALRM,
    ];

    pub(crate) fn new() -> std::io::Result<Self> {
        let streams = Self::HANDLED
            .into_iter()
            .map(|sig| Ok((sig, signal(SignalKind::from_raw(sig as i32))?)))
            .collect::<std::io::Result<_>>()?;
        Ok(Self { streams })
    }

    /// Runs `fut` until it ends, or until the first signal, which drops it: for a wait that a
    /// signal ends, as in flock(1).
    pub(crate) async fn or_first<T>(&mut self, fut: impl Future<Output = T>) -> Result<T, Signal> {
        tokio::select! {
            output = fut => Ok(output),
            signal = self.next() => Err(signal),
        }
    }

    /// The next signal received.
    pub(crate) async fn next(&mut self) -> Signal {
        std::future::poll_fn(|cx| {
            for (sig, stream) in &mut self.streams {
                if stream.poll_recv(cx).is_ready() {
                    return Poll::Ready(*sig);
                }
            }
            Poll::Pending
        })
        .await
    }
}
