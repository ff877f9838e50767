//! The one background path: undoing, without making the caller wait, what an acquisition or a
//! dropped guard left in the store. An attempt whose answer never came (timed out, connection
//! lost, future cancelled) may have taken the lock; a waiter that gives up is still registered;
//! a guard dropped without `release` still holds its lock. And closing the client, which
//! waits for that path to finish.

use std::sync::Arc;
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::time::Instant;

use super::lease::Held;
use super::{Core, lock_error};
use crate::error::{CloseError, LockError, LossReason};
use crate::report::ErrorChain;
use crate::store::{Shape, StoreError, Waiter};

/// The pause between two tries of a waiter's cancellation while Redis cannot be reached.
const CANCEL_PAUSE: Duration = Duration::from_millis(50);

/// What to undo at a key, in this order: delete the lock if it still holds `token` (handing it
/// to a waiter if any), then drop the registration of `waiter` (passing on a lock handed to
/// it).
pub(crate) struct Cleanup {
    /// The key as the caller gave it.
    pub(crate) key: String,
    /// The wire key.
    pub(crate) wire: String,
    pub(crate) token: Option<String>,
    pub(crate) waiter: Option<Waiter>,
    /// What the token holds (or would hold) at the key.
    pub(crate) shape: Shape,
    /// How long the lock can live: the release is not retried past it (by then the lock is
    /// gone anyway).
    pub(crate) within: Duration,
}

impl Cleanup {
    /// The release of a held lock, which may live for `within` more.
    pub(crate) fn release(held: &Held, within: Duration) -> Self {
        Self {
            key: held.key.clone(),
            wire: held.wire.clone(),
            token: Some(held.token.clone()),
            waiter: None,
            shape: held.shape.clone(),
            within,
        }
    }
}

impl Core {
    /// Runs `cleanup` in the background on `runtime`, tracked until it ends (see
    /// [`close`](Core::close)). The release is sent once, and again while Redis does not answer
    /// (it may be frozen or slow, with the `SET` still queued), but not past `cleanup.within`;
    /// any answer, or any other error, ends it. If `runtime` has shut down, nothing runs and
    /// the lock expires on its own.
    pub(crate) fn spawn_cleanup(self: &Arc<Self>, runtime: &Handle, cleanup: Cleanup) {
        let core = Arc::clone(self);
        let ticket = self.registry.ticket(cleanup.key.clone(), cleanup.within);
        runtime.spawn(async move {
            let cause = core.clean_up(cleanup).await;
            ticket.finish(cause);
        });
    }

    /// Does what `cleanup` says; returns the error that left something behind, if any.
    async fn clean_up(&self, cleanup: Cleanup) -> Option<LockError> {
        let Cleanup {
            key,
            wire,
            token,
            waiter,
            shape,
            within,
        } = cleanup;
        let mut cause = None;
        if let Some(token) = token {
            let give_up = Instant::now() + within;
            loop {
                match self.store().release(&wire, &token, &shape).await {
                    Err(err) if err.is_timeout() && Instant::now() < give_up => {}
                    Ok(_) => break,
                    Err(err) => {
                        let err = lock_error(err, &key);
                        let error = ErrorChain(&err);
                        tracing::warn!(key = ?key, error = %error, "background release failed; the lock expires on its own");
                        cause = Some(err);
                        break;
                    }
                }
            }
        }
        if let Some(waiter) = waiter {
            // Tried again while Redis cannot be reached, until the registration has expired:
            // a release in between would give the lock to this waiter, which is gone.
            let give_up = Instant::now() + waiter.lease;
            loop {
                match self.store().cancel_wait(&wire, &waiter, &shape).await {
                    Ok(()) => break,
                    Err(StoreError::Unavailable { .. }) if Instant::now() < give_up => {
                        tokio::time::sleep(CANCEL_PAUSE).await;
                    }
                    Err(err) => {
                        let err = lock_error(err, &key);
                        let error = ErrorChain(&err);
                        tracing::debug!(key = ?key, error = %error, "waiter registration left to expire");
                        cause = cause.or(Some(err));
                        break;
                    }
                }
            }
        }
        cause
    }
}

impl Core {
    /// Closes the client: new calls are refused (releases excepted), waiting acquisitions give
    /// up, each guard still held has its renewal stopped, its lease ended as
    /// [`LossReason::Closed`] and its lock released; then waits, until the command timeout has
    /// passed, for every background cleanup in flight (those just sent, and earlier ones).
    pub(crate) async fn close(self: &Arc<Self>) -> Result<(), CloseError> {
        let deadline = Instant::now() + self.config.command_timeout;
        let holds = self.registry.close();
        if !holds.is_empty() {
            let runtime = Handle::current();
            for hold in holds {
                let within = hold.end(LossReason::Closed);
                self.spawn_cleanup(&runtime, Cleanup::release(&hold.held, within));
            }
        }
        let left = self.registry.settle(deadline).await;
        if left.is_empty() {
            Ok(())
        } else {
            Err(CloseError::new(left))
        }
    }

    /// Whether anything is still in flight in the background.
    pub(crate) fn busy(&self) -> bool {
        self.registry.busy()
    }
}

/// What an acquisition may have left in the store while it runs: a lock that may hold our
/// token (an attempt in flight, or granted but not yet handed over as a guard) and a waiter
/// registration. Dropped while either is set, it sends a [`Cleanup`] to the background, so an
/// acquisition that fails, gives up or is cancelled leaves nothing behind. While it lives, the
/// client counts an acquisition in progress, which `close` waits for.
pub(crate) struct Leftovers<'a> {
    core: &'a Arc<Core>,
    key: &'a str,
    wire: &'a str,
    /// The token, when a lock holding it is ours to delete: it was made here. A token the
    /// caller chose may also stand for another lock of the caller's; that one is left alone.
    ours: Option<&'a str>,
    waiter: Option<&'a Waiter>,
    shape: &'a Shape,
    /// How long the lock can live.
    within: Duration,
    /// The lock may hold our token.
    pub(crate) in_flight: bool,
    /// The waiter is registered.
    pub(crate) registered: bool,
}

impl<'a> Leftovers<'a> {
    /// Nothing left yet at `key` (`wire` on the wire), for a lock that would hold `ours` (if it
    /// is ours to delete) for at most `within`, and for the waiter `waiter`, if the acquisition
    /// waits.
    pub(crate) fn at(core: &'a Arc<Core>, key: &'a str, wire: &'a str, within: Duration) -> Self {
        core.registry.enter();
        Self {
            core,
            key,
            wire,
            ours: None,
            waiter: None,
            shape: &Shape::Mutex,
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

    /// What the acquisition takes at the key (a mutex unless said).
    pub(crate) fn shape(mut self, shape: &'a Shape) -> Self {
        self.shape = shape;
        self
    }

    /// The waiter the acquisition registers as, if it waits.
    pub(crate) fn waiter(mut self, waiter: Option<&'a Waiter>) -> Self {
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
        self.send_cleanup();
        self.core.registry.leave();
    }
}

impl Leftovers<'_> {
    fn send_cleanup(&self) {
        let token = self.ours.filter(|_| self.in_flight).map(str::to_owned);
        let waiter = self.waiter.filter(|_| self.registered).cloned();
        if token.is_none() && waiter.is_none() {
            return;
        }
        let Ok(runtime) = Handle::try_current() else {
            return;
        };
        let cleanup = Cleanup {
            key: self.key.to_owned(),
            wire: self.wire.to_owned(),
            token,
            waiter,
            shape: self.shape.clone(),
            within: self.within,
        };
        self.core.spawn_cleanup(&runtime, cleanup);
    }
}
