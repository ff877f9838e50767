//! A lease set in memory (a semaphore or a read-write lock at one key): its holds, each with
//! its own token, share and expiry, and its queue of waiting acquisitions in arrival order.
//! Admission is strict FIFO (see [`Taken::admits`]); the store around it decides when to call
//! [`LeaseSet::walk`] and delivers the wake-ups it names.
//!
//! (Its items are `pub(crate)` in a private module, so only the store reaches them: a
//! `pub(super)` would count as a use of the store's module, which uses this one.)

use std::collections::VecDeque;
use std::time::Instant;

use crate::store::Share;

/// The holds and the queue at one key.
#[derive(Debug, Default)]
pub(crate) struct LeaseSet {
    holds: Vec<Hold>,
    queue: VecDeque<Registration>,
}

#[derive(Debug)]
struct Hold {
    token: String,
    share: Share,
    expires_at: Instant,
}

/// A waiting acquisition, in line.
#[derive(Debug)]
struct Registration {
    /// The waiter's id (its mailbox on the board).
    waiter: String,
    share: Share,
    /// Refreshed at each of the waiter's attempts; a registration past it is dead.
    expires_at: Instant,
    /// Told to try again since its last attempt: a walk need not tell it again.
    woken: bool,
}

/// What is taken, or spoken for, ahead of an acquisition: live holds, plus the registrations
/// ahead of it in the queue (all of them for an acquisition not in the queue).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Taken {
    /// Holds and registrations counted.
    entries: usize,
    /// Whether one of them is exclusive.
    exclusive: bool,
    /// The shares of the shared ones.
    shares: u64,
}

impl Taken {
    pub(crate) fn add(&mut self, share: Share) {
        self.entries += 1;
        match share {
            Share::Exclusive => self.exclusive = true,
            Share::Shared { count, .. } => self.shares += u64::from(count),
        }
    }

    /// The admission rule: an exclusive hold enters when nothing is taken or spoken for; a
    /// shared one when nothing exclusive is, and its count fits under its limit with the
    /// shares already counted. Each acquisition is judged by its own limit, so a handle with a
    /// lower limit waits until the holds admitted under a higher one are few enough.
    pub(crate) fn admits(&self, want: Share) -> bool {
        match want {
            Share::Exclusive => self.entries == 0,
            Share::Shared { count, limit } => {
                !self.exclusive && self.shares + u64::from(count) <= u64::from(limit)
            }
        }
    }
}

/// How an attempt on a set ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Attempt {
    Granted,
    Held,
}

/// A waiting acquisition's attempt: who it is and until when its registration lasts.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Waiting<'a> {
    pub(crate) id: &'a str,
    pub(crate) until: Instant,
}

impl LeaseSet {
    /// Drops expired holds and dead registrations; whether any were dropped (an expiry
    /// noticed, after which waiters may enter).
    pub(crate) fn prune(&mut self, now: Instant) -> bool {
        let before = self.holds.len() + self.queue.len();
        self.holds.retain(|h| h.expires_at > now);
        self.queue.retain(|r| r.expires_at > now);
        self.holds.len() + self.queue.len() != before
    }

    /// Whether anything is left: no holds and no registrations.
    pub(crate) fn is_empty(&self) -> bool {
        self.holds.is_empty() && self.queue.is_empty()
    }

    /// Whether anything holds the set (after [`prune`](Self::prune)).
    pub(crate) fn is_held(&self) -> bool {
        !self.holds.is_empty()
    }

    /// Whether anything in the set is still alive at `now` (for the sweep).
    pub(crate) fn is_alive(&self, now: Instant) -> bool {
        self.holds.iter().any(|h| h.expires_at > now)
            || self.queue.iter().any(|r| r.expires_at > now)
    }

    /// What the holds take.
    fn held(&self) -> Taken {
        let mut taken = Taken::default();
        for hold in &self.holds {
            taken.add(hold.share);
        }
        taken
    }

    /// One attempt at a hold of `share` with `token`, until `expires_at` (on a retry that finds
    /// the token holding already, its expiry is renewed). A waiter in the queue is judged
    /// against the holds and the registrations ahead of it, anyone else against all of them;
    /// a grant takes the waiter out of the queue, a refusal puts it at the tail or refreshes
    /// its place.
    pub(crate) fn attempt(
        &mut self,
        token: &str,
        share: Share,
        expires_at: Instant,
        waiting: Option<Waiting<'_>>,
    ) -> Attempt {
        let place = waiting.and_then(|w| self.queue.iter().position(|r| r.waiter == w.id));
        if let Some(hold) = self.holds.iter_mut().find(|h| h.token == token) {
            hold.expires_at = expires_at;
            if let Some(place) = place {
                self.queue.remove(place);
            }
            return Attempt::Granted;
        }
        let mut taken = self.held();
        for ahead in self.queue.iter().take(place.unwrap_or(self.queue.len())) {
            taken.add(ahead.share);
        }
        if taken.admits(share) {
            self.holds.push(Hold {
                token: token.to_owned(),
                share,
                expires_at,
            });
            if let Some(place) = place {
                self.queue.remove(place);
            }
            return Attempt::Granted;
        }
        if let Some(waiting) = waiting {
            match place.and_then(|place| self.queue.get_mut(place)) {
                Some(registration) => {
                    registration.expires_at = waiting.until;
                    registration.woken = false;
                }
                None => self.queue.push_back(Registration {
                    waiter: waiting.id.to_owned(),
                    share,
                    expires_at: waiting.until,
                    woken: false,
                }),
            }
        }
        Attempt::Held
    }

    /// Ends the hold of `token`; whether there was one.
    pub(crate) fn release(&mut self, token: &str) -> bool {
        let before = self.holds.len();
        self.holds.retain(|h| h.token != token);
        self.holds.len() != before
    }

    /// Moves the expiry of the hold of `token`, if it is there; whether it was.
    pub(crate) fn extend(&mut self, token: &str, expires_at: Instant) -> bool {
        match self.holds.iter_mut().find(|h| h.token == token) {
            Some(hold) => {
                hold.expires_at = expires_at;
                true
            }
            None => false,
        }
    }

    /// Takes the waiter `waiter` out of the queue.
    pub(crate) fn cancel(&mut self, waiter: &str) {
        self.queue.retain(|r| r.waiter != waiter);
    }

    /// The waiters that can enter now, not told yet since their last attempt, in queue order:
    /// from the head, each admitted one counted as a holder, stopping at the first that
    /// cannot enter (strict FIFO). They are marked as told.
    pub(crate) fn walk(&mut self, wake: &mut Vec<String>) {
        let mut taken = self.held();
        for registration in &mut self.queue {
            if !taken.admits(registration.share) {
                break;
            }
            taken.add(registration.share);
            if !registration.woken {
                registration.woken = true;
                wake.push(registration.waiter.clone());
            }
        }
    }

    /// When the first hold expires.
    pub(crate) fn earliest(&self) -> Option<Instant> {
        self.holds.iter().map(|h| h.expires_at).min()
    }

    /// The live shared holds, the shares they hold, and whether an exclusive hold holds the
    /// set, at `now`.
    pub(crate) fn counts(&self, now: Instant) -> (u32, u64, bool) {
        let mut holds = 0u32;
        let mut shares = 0u64;
        let mut exclusive = false;
        for hold in self.holds.iter().filter(|h| h.expires_at > now) {
            match hold.share {
                Share::Shared { count, .. } => {
                    holds = holds.saturating_add(1);
                    shares += u64::from(count);
                }
                Share::Exclusive => exclusive = true,
            }
        }
        (holds, shares, exclusive)
    }

    /// The latest expiry of the holds live at `now`.
    pub(crate) fn latest_at(&self, now: Instant) -> Option<Instant> {
        self.holds
            .iter()
            .map(|h| h.expires_at)
            .filter(|&at| at > now)
            .max()
    }

    /// The registrations live at `now`.
    pub(crate) fn waiters(&self, now: Instant) -> u64 {
        self.queue.iter().filter(|r| r.expires_at > now).count() as u64
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const WRITE: Share = Share::Exclusive;
    const READ: Share = Share::Shared {
        count: 1,
        limit: u32::MAX,
    };

    fn permits(count: u32, limit: u32) -> Share {
        Share::Shared { count, limit }
    }

    fn taken(shares: &[Share]) -> Taken {
        let mut taken = Taken::default();
        for &share in shares {
            taken.add(share);
        }
        taken
    }

    #[test]
    fn the_admission_rule() {
        // An exclusive hold wants nothing taken or spoken for.
        assert!(taken(&[]).admits(WRITE));
        assert!(!taken(&[READ]).admits(WRITE));
        assert!(!taken(&[WRITE]).admits(WRITE));
        // Shared holds share, up to their limit, never with an exclusive one.
        assert!(taken(&[READ, READ]).admits(READ));
        assert!(!taken(&[WRITE]).admits(READ));
        assert!(!taken(&[READ, WRITE]).admits(READ));
        assert!(taken(&[permits(1, 3), permits(1, 3)]).admits(permits(1, 3)));
        assert!(!taken(&[permits(1, 3), permits(1, 3)]).admits(permits(2, 3)));
        assert!(taken(&[permits(2, 4)]).admits(permits(2, 4)));
        // Judged by the caller's limit: a lower one waits for the holds to be few enough.
        let three = taken(&[permits(1, 3), permits(1, 3), permits(1, 3)]);
        assert!(!three.admits(permits(1, 2)));
        assert!(taken(&[permits(1, 3)]).admits(permits(1, 2)));
        // No overflow at the largest counts.
        assert!(taken(&[permits(u32::MAX, u32::MAX)]).admits(permits(0, u32::MAX)));
        assert!(!taken(&[permits(u32::MAX, u32::MAX)]).admits(permits(1, u32::MAX)));
    }

    fn far() -> Instant {
        Instant::now() + Duration::from_secs(60)
    }

    fn wait(id: &str) -> Option<Waiting<'_>> {
        Some(Waiting { id, until: far() })
    }

    #[test]
    fn waiters_are_served_in_order_and_newcomers_queue_behind_them() {
        let mut set = LeaseSet::default();
        let limit = |count| permits(count, 3);
        assert_eq!(set.attempt("a", limit(2), far(), None), Attempt::Granted);
        // Wants 2 of the 1 left: waits.
        assert_eq!(set.attempt("b", limit(2), far(), wait("wb")), Attempt::Held);
        // One would fit, but b is ahead: a try is refused, a waiter queues behind b.
        assert_eq!(set.attempt("c", limit(1), far(), None), Attempt::Held);
        assert_eq!(set.attempt("c", limit(1), far(), wait("wc")), Attempt::Held);
        let mut wake = Vec::new();
        set.walk(&mut wake);
        assert!(wake.is_empty(), "{wake:?}");
        assert!(set.release("a"));
        set.walk(&mut wake);
        // b (2) and c (1) fit in 3: both woken, in order.
        assert_eq!(wake, ["wb", "wc"]);
        // Told once until they try again.
        wake.clear();
        set.walk(&mut wake);
        assert!(wake.is_empty(), "{wake:?}");
        // c tries first: b's place ahead of it is counted, and 2 + 1 fits.
        assert_eq!(
            set.attempt("c", limit(1), far(), wait("wc")),
            Attempt::Granted
        );
        assert_eq!(
            set.attempt("b", limit(2), far(), wait("wb")),
            Attempt::Granted
        );
        assert_eq!(set.waiters(Instant::now()), 0);
        assert_eq!(set.counts(Instant::now()), (2, 3, false));
    }

    #[test]
    fn the_walk_stops_at_the_first_waiter_that_cannot_enter() {
        let mut set = LeaseSet::default();
        assert_eq!(set.attempt("r1", READ, far(), None), Attempt::Granted);
        assert_eq!(set.attempt("w", WRITE, far(), wait("ww")), Attempt::Held);
        // A reader behind a waiting writer waits too.
        assert_eq!(set.attempt("r2", READ, far(), wait("wr2")), Attempt::Held);
        assert_eq!(set.attempt("r3", READ, far(), None), Attempt::Held);
        let mut wake = Vec::new();
        set.walk(&mut wake);
        assert!(wake.is_empty());
        set.release("r1");
        set.walk(&mut wake);
        // The writer alone: the reader behind it is not woken.
        assert_eq!(wake, ["ww"]);
        assert_eq!(set.attempt("w", WRITE, far(), wait("ww")), Attempt::Granted);
        wake.clear();
        set.walk(&mut wake);
        assert!(wake.is_empty());
        set.release("w");
        set.walk(&mut wake);
        assert_eq!(wake, ["wr2"]);
    }

    #[test]
    fn a_cancelled_waiter_lets_the_next_by_and_newcomers_cannot_pass_a_woken_one() {
        let mut set = LeaseSet::default();
        assert_eq!(set.attempt("w1", WRITE, far(), None), Attempt::Granted);
        assert_eq!(set.attempt("w2", WRITE, far(), wait("a")), Attempt::Held);
        assert_eq!(set.attempt("r", READ, far(), wait("b")), Attempt::Held);
        set.release("w1");
        let mut wake = Vec::new();
        set.walk(&mut wake);
        assert_eq!(wake, ["a"]);
        // a gives up: b can enter now.
        set.cancel("a");
        wake.clear();
        set.walk(&mut wake);
        assert_eq!(wake, ["b"]);
        // A newcomer cannot pass b, woken and not yet in; b enters, and a retry of its token
        // finds the hold its own.
        assert_eq!(set.attempt("w3", WRITE, far(), None), Attempt::Held);
        assert_eq!(set.attempt("r", READ, far(), wait("b")), Attempt::Granted);
        assert_eq!(set.attempt("r", READ, far(), wait("b")), Attempt::Granted);
        assert_eq!(set.counts(Instant::now()), (1, 1, false));
    }

    #[test]
    fn expired_holds_and_dead_registrations_are_pruned() {
        let mut set = LeaseSet::default();
        let now = Instant::now();
        let soon = now + Duration::from_millis(5);
        assert_eq!(set.attempt("w", WRITE, soon, None), Attempt::Granted);
        let dead = Some(Waiting {
            id: "dead",
            until: soon,
        });
        assert_eq!(set.attempt("r", READ, far(), dead), Attempt::Held);
        assert_eq!(set.attempt("r2", READ, far(), wait("live")), Attempt::Held);
        assert_eq!(set.earliest(), Some(soon));
        assert_eq!(set.latest_at(now), Some(soon));
        assert!(!set.prune(now));
        let later = soon + Duration::from_millis(1);
        assert!(set.prune(later));
        assert!(!set.is_held());
        assert_eq!(set.waiters(later), 1);
        let mut wake = Vec::new();
        set.walk(&mut wake);
        assert_eq!(wake, ["live"]);
        set.cancel("live");
        assert!(set.is_empty());
        assert!(!set.extend("w", far()));
    }
}
