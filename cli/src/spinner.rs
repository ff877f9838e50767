//! A one-line progress display while waiting for a lock: elapsed time and the holder's lease
//! left. Only on a terminal, and not with `--quiet`.

use std::future::Future;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use ac_redislock::RedisLock;

use crate::report::{human, printable};

const FRAMES: [char; 10] = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
const TICK: Duration = Duration::from_millis(100);
/// The holder's lease is read from Redis this often (every fifth tick).
const STATUS_EVERY: usize = 5;

pub(crate) struct Spinner<'a> {
    locks: &'a RedisLock,
    key: &'a str,
    enabled: bool,
}

impl<'a> Spinner<'a> {
    pub(crate) fn new(locks: &'a RedisLock, key: &'a str, quiet: bool) -> Self {
        Self {
            locks,
            key,
            enabled: !quiet && std::io::stderr().is_terminal(),
        }
    }

    /// Awaits `fut`, showing the spinner meanwhile (after a short delay, so a lock that is free
    /// shows nothing).
    pub(crate) async fn around<T>(self, fut: impl Future<Output = T>) -> T {
        if !self.enabled {
            return fut.await;
        }
        tokio::pin!(fut);
        let started = Instant::now();
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + TICK * 3, TICK);
        let mut holder_left: Option<Duration> = None;
        let mut holder: Option<String> = None;
        let mut shown = false;
        let mut tick = 0usize;
        let result = loop {
            tokio::select! {
                result = &mut fut => break result,
                _ = ticker.tick() => {
                    if tick.is_multiple_of(STATUS_EVERY) {
                        let status = self.locks.status(self.key).await.ok();
                        holder_left = status.as_ref().and_then(|s| s.ttl);
                        holder = status.and_then(|s| s.holder).map(|h| printable(&h));
                    }
                    let lease = holder_left.map_or_else(String::new, |t| match &holder {
                        Some(holder) => format!("; held by {holder}, {} left", human(t)),
                        None => format!("; holder's lease: {} left", human(t)),
                    });
                    eprint!(
                        "\r\x1b[2K{} waiting for {:?}: {}{lease}",
                        FRAMES[tick % FRAMES.len()],
                        self.key,
                        human(started.elapsed()),
                    );
                    let _ = std::io::stderr().flush();
                    shown = true;
                    tick += 1;
                }
            }
        };
        if shown {
            eprint!("\r\x1b[2K");
            let _ = std::io::stderr().flush();
        }
        result
    }
}
