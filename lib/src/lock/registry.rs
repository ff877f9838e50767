//! What a client has going: its live guards and its background cleanups, for
//! `Core::close` (in `cleanup`), which stops new work, releases what the
//! guards still hold and waits (within the command timeout) for every cleanup in flight.
//!
//! A guard registers when it is made and takes itself out when it is released, detached or
//! dropped; whoever takes a guard's entry out (the guard, or `close`) is the one that releases
//! its lock, so it is released once. A cleanup holds a [`Ticket`] from the moment it is sent to
//! the background until it ends, also when its runtime drops it unrun.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::AbortHandle;
use tokio::time::Instant;

use super::lease::{Held, Lease};
use crate::error::{LeftBehind, LockError, LossReason, UnavailableReason};

/// A live guard's entry: what `close` needs to release its lock.
pub(crate) struct Hold {
    pub(crate) held: Arc<Held>,
    pub(crate) lease: Arc<Lease>,
    pub(crate) watchdog: Option<AbortHandle>,
}

impl Hold {
    /// Stops the renewal.
    pub(crate) fn stop(&self) {
        if let Some(watchdog) = &self.watchdog {
            watchdog.abort();
        }
    }

    /// Stops the renewal and ends the lease for `reason`; returns how long the lock may still
    /// live in Redis (the time its release may be tried), zero if the lease had ended.
    pub(crate) fn end(&self, reason: LossReason) -> Duration {
        self.stop();
        if !self.lease.is_held() {
            self.lease.end(reason);
            return Duration::ZERO;
        }
        let within = self
            .lease
            .valid_until()
            .saturating_duration_since(Instant::now());
        self.lease.end(reason);
        within
    }
}

#[derive(Default)]
struct State {
    next: u64,
    holds: HashMap<u64, Hold>,
    /// The key (as the caller gave it) of each cleanup in flight.
    pending: HashMap<u64, String>,
    /// Cleanups that failed, with the instant their lock (or registration) expires, for
    /// `close` to report while it has not; at most [`MAX_FAILED`], the oldest dropped first.
    failed: Vec<(LeftBehind, Instant)>,
}

/// How many failed cleanups a client remembers for `close` (a long outage must not grow it
/// without bound).
const MAX_FAILED: usize = 1024;

/// The registry of one client (shared by its clones).
#[derive(Default)]
pub(crate) struct Registry {
    closed: AtomicBool,
    /// Acquisitions in progress: each may still leave a cleanup behind.
    acquiring: AtomicUsize,
    state: Mutex<State>,
    /// Woken when the client closes.
    closing: Notify,
    /// Woken when a cleanup or an acquisition ends.
    ended: Notify,
}

impl Registry {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Resolves once the client is closed.
    pub(crate) async fn until_closed(&self) {
        let closing = self.closing.notified();
        tokio::pin!(closing);
        // Registered before reading the flag, so a close in between still wakes us.
        closing.as_mut().enable();
        if !self.is_closed() {
            closing.await;
        }
    }

    /// Notes an acquisition starting (see [`settle`](Self::settle)).
    pub(crate) fn enter(&self) {
        self.acquiring.fetch_add(1, Ordering::AcqRel);
    }

    /// Notes an acquisition ended, after it sent its cleanup (if any) to the background.
    pub(crate) fn leave(&self) {
        self.acquiring.fetch_sub(1, Ordering::AcqRel);
        self.wake_settle();
    }

    /// Wakes [`settle`](Self::settle), which only runs once the client is closed: the
    /// acquisitions and cleanups of an open client pay no wake-up.
    fn wake_settle(&self) {
        if self.is_closed() {
            self.ended.notify_waiters();
        }
    }

    /// Registers a guard's hold; refused once the client is closed.
    pub(crate) fn hold(&self, hold: Hold) -> Result<u64, Hold> {
        let mut state = self.state();
        if self.is_closed() {
            return Err(hold);
        }
        state.next += 1;
        let id = state.next;
        state.holds.insert(id, hold);
        Ok(id)
    }

    /// Takes a guard's hold out: `None` if `close` took it first.
    pub(crate) fn take(&self, id: u64) -> Option<Hold> {
        self.state().holds.remove(&id)
    }

    /// Notes a cleanup sent to the background, for what may live at `key` for `within`.
    pub(crate) fn ticket(self: &Arc<Self>, key: String, within: Duration) -> Ticket {
        let mut state = self.state();
        state.next += 1;
        let id = state.next;
        state.pending.insert(id, key);
        Ticket {
            registry: Arc::clone(self),
            id,
            until: Instant::now() + within,
            open: true,
        }
    }

    /// Closes: no guard registers from now on. Returns the holds still registered.
    pub(crate) fn close(&self) -> Vec<Hold> {
        let holds = {
            let mut state = self.state();
            self.closed.store(true, Ordering::Release);
            state.holds.drain().map(|(_, hold)| hold).collect()
        };
        self.closing.notify_waiters();
        holds
    }

    /// Waits until no acquisition is in progress (a closed client's end quickly: refused, or
    /// woken from their wait) and no cleanup is in flight, or `deadline` passes; returns what
    /// failed and has not expired yet, and what is still in flight. Only after
    /// [`close`](Self::close): before, nothing wakes it.
    pub(crate) async fn settle(&self, deadline: Instant) -> Vec<LeftBehind> {
        loop {
            let ended = self.ended.notified();
            tokio::pin!(ended);
            ended.as_mut().enable();
            if !self.busy() || tokio::time::timeout_at(deadline, ended).await.is_err() {
                break;
            }
        }
        let mut state = self.state();
        let now = Instant::now();
        let mut left: Vec<LeftBehind> = std::mem::take(&mut state.failed)
            .into_iter()
            .filter(|(_, until)| *until > now)
            .map(|(left, _)| left)
            .collect();
        let mut pending: Vec<&String> = state.pending.values().collect();
        pending.sort();
        left.extend(
            pending
                .into_iter()
                .map(|key| LeftBehind::new(key.clone(), None)),
        );
        left
    }
    /// Whether a cleanup is in flight.
    pub(crate) fn busy(&self) -> bool {
        self.acquiring.load(Ordering::Acquire) > 0 || !self.state().pending.is_empty()
    }
}

/// A cleanup in flight. Dropped without [`finish`](Self::finish) (its task dropped unrun, as a
/// runtime does when it shuts down), it counts as failed.
pub(crate) struct Ticket {
    registry: Arc<Registry>,
    id: u64,
    /// When what the cleanup undoes expires on its own.
    until: Instant,
    open: bool,
}

impl Ticket {
    /// The cleanup ended; `cause` is the error that left something behind, if any.
    pub(crate) fn finish(mut self, cause: Option<LockError>) {
        self.end(cause);
    }

    fn end(&mut self, cause: Option<LockError>) {
        if !std::mem::take(&mut self.open) {
            return;
        }
        let mut state = self.registry.state();
        let Some(key) = state.pending.remove(&self.id) else {
            return;
        };
        if let Some(cause) = cause {
            let now = Instant::now();
            state.failed.retain(|(_, until)| *until > now);
            if state.failed.len() >= MAX_FAILED {
                state.failed.remove(0);
            }
            state
                .failed
                .push((LeftBehind::new(key, Some(cause)), self.until));
        }
        drop(state);
        self.registry.wake_settle();
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if self.open {
            // Never finished: the task was dropped before it could run to its end.
            self.end(Some(LockError::Unavailable {
                reason: UnavailableReason::Shutdown,
                source: None,
            }));
        }
    }
}
