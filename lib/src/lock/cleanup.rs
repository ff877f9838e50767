//! The one background path: undoing, without making the caller wait, what an acquisition or a
//! dropped guard left in the store. An attempt whose answer never came (timed out, connection
//! lost, future cancelled) may have taken the lock; a waiter that gives up is still registered;
//! a guard dropped without `release` still holds its lock.

use std::sync::Arc;
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::time::Instant;

use super::Core;

/// What to undo at a key, in this order: delete the lock if it still holds `token` (handing it
/// to a waiter if any), then drop the waiter registration `waiter`.
pub(crate) struct Cleanup {
    /// The wire key.
    pub(crate) wire: String,
    pub(crate) token: Option<String>,
    pub(crate) waiter: Option<String>,
    /// How long the lock can live: the release is not retried past it (by then the lock is
    /// gone anyway).
    pub(crate) within: Duration,
}

impl Core {
    /// Runs `cleanup` in the background on `runtime`. The release is sent once, and again while
    /// Redis does not answer (it may be frozen or slow, with the `SET` still queued), but not
    /// past `cleanup.within`; any answer, or any other error, ends it. If `runtime` has shut down,
    /// nothing runs and the lock expires on its own.
    pub(crate) fn spawn_cleanup(self: &Arc<Self>, runtime: &Handle, cleanup: Cleanup) {
        let core = Arc::clone(self);
        runtime.spawn(async move {
            let Cleanup {
                wire,
                token,
                waiter,
                within,
            } = cleanup;
            if let Some(token) = token {
                let give_up = Instant::now() + within;
                loop {
                    match core.store().release(&wire, &token).await {
                        Err(err) if err.is_timeout() && Instant::now() < give_up => {}
                        Ok(_) | Err(_) => break,
                    }
                }
            }
            if let Some(waiter) = waiter {
                let _ = core.store().cancel_wait(&wire, &waiter).await;
            }
        });
    }
}

/// What an acquisition may have left in the store while it runs: a lock that may hold our
/// token (an attempt in flight, or granted but not yet handed over as a guard) and a waiter
/// registration. Dropped while either is set, it sends a [`Cleanup`] to the background, so an
/// acquisition that fails, gives up or is cancelled leaves nothing behind.
pub(crate) struct Leftovers<'a> {
    core: &'a Arc<Core>,
    wire: &'a str,
    /// The token, when a lock holding it is ours to delete: it was made here. A token the
    /// caller chose may also stand for another lock of the caller's; that one is left alone.
    ours: Option<&'a str>,
    waiter: Option<&'a str>,
    /// How long the lock can live.
    within: Duration,
    /// The lock may hold our token.
    pub(crate) in_flight: bool,
    /// The waiter is registered.
    pub(crate) registered: bool,
}

impl<'a> Leftovers<'a> {
    /// Nothing left yet at `wire`, for a lock that would hold `ours` (if it is ours to delete)
    /// for at most `within`, and for the waiter `waiter`, if the acquisition waits.
    pub(crate) fn at(core: &'a Arc<Core>, wire: &'a str, within: Duration) -> Self {
        Self {
            core,
            wire,
            ours: None,
            waiter: None,
            within,
            in_flight: false,
            registered: false,
        }
    }

    /// The token the lock would hold, if it was made here.
    pub(crate) fn ours(mut self, token: Option<&'a str>) -> Self {
        self.ours = token;
        self
    }

    /// The waiter id the acquisition registers with, if it waits.
    pub(crate) fn waiter(mut self, waiter: Option<&'a str>) -> Self {
        self.waiter = waiter;
        self
    }

    /// The acquisition ended well (a guard or a token now stands for the lock): nothing to
    /// undo.
    pub(crate) fn settle(mut self) {
        self.in_flight = false;
        self.registered = false;
    }
}

impl Drop for Leftovers<'_> {
    fn drop(&mut self) {
        let token = self.ours.filter(|_| self.in_flight).map(str::to_owned);
        let waiter = self.waiter.filter(|_| self.registered).map(str::to_owned);
        if token.is_none() && waiter.is_none() {
            return;
        }
        let Ok(runtime) = Handle::try_current() else {
            return;
        };
        let cleanup = Cleanup {
            wire: self.wire.to_owned(),
            token,
            waiter,
            within: self.within,
        };
        self.core.spawn_cleanup(&runtime, cleanup);
    }
}
