//! A held lock ([`Held`]) and the state of its lease, shared by its guard, its watchdog and
//! anyone awaiting its loss.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use super::meter::{HoldTally, Primitive};
use crate::drift::drift;
use crate::error::LossReason;
use crate::store::Shape;

/// A held lock: its key as the caller gave it, its wire key, its token and what it holds there
/// (shared by its guard, its watchdog and the client's registry).
pub(crate) struct Held {
    pub(crate) key: String,
    pub(crate) wire: String,
    pub(crate) token: String,
    pub(crate) shape: Shape,
    /// A multi-key lock: every key as the caller gave it, in the order of the wire keys (empty
    /// for one key).
    pub(crate) keys: Vec<String>,
}

impl Held {
    /// Which primitive this hold is, for metrics and spans.
    pub(crate) fn primitive(&self) -> Primitive {
        Primitive::of(&self.shape)
    }
}

/// The instant a lease granted by a command sent at `start` stops being trusted.
pub(crate) fn valid_until(start: Instant, ttl: Duration, factor: f64) -> Instant {
    start + ttl.saturating_sub(drift(ttl, factor))
}

#[derive(Debug, Clone, Copy)]
struct State {
    valid_until: Instant,
    /// When the command behind `valid_until` was sent; later renewals win.
    since: Instant,
    ended: Option<LossReason>,
    /// What a passed deadline will be reported as: `Expired`, or what the watchdog knows more
    /// (renewals failing, the maximum hold reached).
    at_deadline: LossReason,
}

/// Shared lease state. Loss futures sleep on `changed` and recheck the state when woken.
#[derive(Debug)]
pub(crate) struct Lease {
    state: Mutex<State>,
    changed: Notify,
    drift_factor: f64,
    /// The hold's metric series, told when the lease ends.
    tally: HoldTally,
}

impl Lease {
    pub(crate) fn new(
        start: Instant,
        ttl: Duration,
        drift_factor: f64,
        tally: HoldTally,
    ) -> Arc<Self> {
        Arc::new(Self {
            drift_factor,
            tally,
            state: Mutex::new(State {
                valid_until: valid_until(start, ttl, drift_factor),
                since: start,
                ended: None,
                at_deadline: LossReason::Expired,
            }),
            changed: Notify::new(),
        })
    }

    fn state(&self) -> State {
        *self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Applies `change` under the lock; wakes the loss futures if it returns true.
    fn update(&self, change: impl FnOnce(&mut State) -> bool) -> bool {
        let changed = change(&mut self.state.lock().unwrap_or_else(|p| p.into_inner()));
        if changed {
            self.changed.notify_waiters();
        }
        changed
    }

    pub(crate) fn valid_until(&self) -> Instant {
        self.state().valid_until
    }

    /// How the lease ended, if it has; a passed deadline counts as (and is recorded as) what
    /// [`at_deadline`](Self::at_deadline) set, [`LossReason::Expired`] by default.
    pub(crate) fn ended(&self) -> Option<LossReason> {
        let state = self.state();
        if state.ended.is_some() {
            return state.ended;
        }
        if Instant::now() >= state.valid_until {
            self.end(state.at_deadline);
            return self.state().ended;
        }
        None
    }

    /// Sets what the deadline passing will be reported as.
    pub(crate) fn at_deadline(&self, reason: LossReason) {
        self.update(|state| {
            state.at_deadline = reason;
            false
        });
    }

    pub(crate) fn is_held(&self) -> bool {
        self.ended().is_none()
    }

    /// Records a renewal sent at `start` with `ttl`, unless the lease already ended or a later
    /// renewal was recorded.
    pub(crate) fn renewed(&self, start: Instant, ttl: Duration) {
        self.update(|state| {
            if state.ended.is_some() || start < state.since {
                return false;
            }
            state.since = start;
            state.valid_until = valid_until(start, ttl, self.drift_factor);
            state.at_deadline = LossReason::Expired;
            true
        });
    }

    /// Ends the lease for `reason`; only the first end counts. Returns whether this call ended it.
    pub(crate) fn end(&self, reason: LossReason) -> bool {
        let ended = self.update(|state| {
            if state.ended.is_some() {
                return false;
            }
            state.ended = Some(reason);
            true
        });
        if ended {
            self.tally.ended(reason);
        }
        ended
    }

    /// Resolves when the lease ends, with the reason.
    pub(crate) fn until_ended(
        self: &Arc<Self>,
    ) -> impl Future<Output = LossReason> + Send + 'static {
        let lease = Arc::clone(self);
        async move {
            loop {
                let changed = lease.changed.notified();
                tokio::pin!(changed);
                // Registered before reading the state, so a change in between still wakes us.
                changed.as_mut().enable();
                if let Some(reason) = lease.ended() {
                    return reason;
                }
                let deadline = lease.valid_until();
                tokio::select! {
                    () = changed => {}
                    () = tokio::time::sleep_until(deadline) => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drift::DEFAULT_DRIFT_FACTOR;
    use crate::lock::meter::{Meter, Primitive};

    fn tally() -> HoldTally {
        Meter::default().hold(Primitive::Lock, "k", Instant::now())
    }

    #[tokio::test(start_paused = true)]
    async fn a_lease_without_renewal_ends_at_its_deadline_exactly_once() {
        let start = Instant::now();
        let lease = Lease::new(
            start,
            Duration::from_secs(10),
            DEFAULT_DRIFT_FACTOR,
            tally(),
        );
        assert_eq!(lease.valid_until(), start + Duration::from_millis(9898));
        let lost = tokio::spawn(lease.until_ended());
        tokio::time::sleep(Duration::from_millis(9897)).await;
        assert!(lease.is_held());
        tokio::time::sleep(Duration::from_millis(2)).await;
        assert!(!lease.is_held());
        assert_eq!(lost.await.unwrap(), LossReason::Expired);
        assert!(
            !lease.end(LossReason::TakenOver),
            "a second end does not count"
        );
        assert_eq!(lease.ended(), Some(LossReason::Expired));
    }

    #[tokio::test(start_paused = true)]
    async fn renewals_move_the_deadline_and_stale_ones_are_ignored() {
        let start = Instant::now();
        let ttl = Duration::from_secs(3);
        let lease = Lease::new(start, ttl, DEFAULT_DRIFT_FACTOR, tally());
        let lost = tokio::spawn(lease.until_ended());
        tokio::time::sleep(Duration::from_secs(2)).await;
        let renewal = Instant::now();
        lease.renewed(renewal, ttl);
        lease.renewed(start, Duration::from_secs(100)); // older than the one recorded
        assert_eq!(
            lease.valid_until(),
            valid_until(renewal, ttl, DEFAULT_DRIFT_FACTOR)
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(
            lease.is_held(),
            "the renewal carried it past the first deadline"
        );
        lease.end(LossReason::TakenOver);
        assert_eq!(lost.await.unwrap(), LossReason::TakenOver);
        lease.renewed(Instant::now(), ttl);
        assert_eq!(
            lease.ended(),
            Some(LossReason::TakenOver),
            "no renewal after the end"
        );
    }
}
