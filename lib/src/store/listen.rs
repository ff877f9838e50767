//! Where waiters hear that they may go on: a board of this process's waiters, one mailbox
//! each, filled by a store when a release concerns them. A store that announces releases
//! (pub/sub, or the in-memory store's own releases) delivers to the board; a waiter holds a
//! [`Listener`] while it waits.
//!
//! A delivery reaches its one waiter (or the waiters of one key), never every waiter of the
//! process: the cost of a hand-off does not grow with the number of waiting tasks.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::Notify;

/// What a waiter hears.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wake {
    /// The lock was given to this waiter: it holds the waiter's token (for its ttl, counted
    /// from no later than the waiter's last attempt), with this fencing token if it asked.
    Granted { fence: Option<u64> },
    /// Try again now: the lock was reserved for this waiter or freed for all, or wake-ups may
    /// have been missed.
    Retry,
}

/// The waiters of this process, by waiter id.
#[derive(Default)]
pub(crate) struct Board {
    slots: Mutex<HashMap<Arc<str>, Slot>>,
}

struct Slot {
    /// The wire key waited for.
    key: Arc<str>,
    mailbox: Arc<Mailbox>,
}

#[derive(Default)]
struct Mailbox {
    /// What was heard and not yet read; a grant is never overwritten by a retry.
    wake: Mutex<Option<Wake>>,
    notify: Notify,
}

impl Mailbox {
    fn put(&self, wake: Wake) {
        {
            let mut slot = self.wake.lock().unwrap_or_else(PoisonError::into_inner);
            if !matches!(*slot, Some(Wake::Granted { .. })) {
                *slot = Some(wake);
            }
        }
        self.notify.notify_one();
    }
}

impl Board {
    fn slots(&self) -> std::sync::MutexGuard<'_, HashMap<Arc<str>, Slot>> {
        // Every change is one insert or remove: a poisoned map is whole.
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A listener for the waiter `waiter` on the wire key `key`, until it is dropped.
    pub(crate) fn listen(self: &Arc<Self>, key: &str, waiter: &str) -> Listener {
        let id: Arc<str> = Arc::from(waiter);
        let mailbox = Arc::new(Mailbox::default());
        let slot = Slot {
            key: Arc::from(key),
            mailbox: Arc::clone(&mailbox),
        };
        self.slots().insert(Arc::clone(&id), slot);
        Listener {
            board: Arc::clone(self),
            id,
            mailbox,
        }
    }

    /// Delivers `wake` to the waiter `waiter`, if it listens here.
    pub(crate) fn deliver(&self, waiter: &str, wake: Wake) {
        let mailbox = self.slots().get(waiter).map(|s| Arc::clone(&s.mailbox));
        if let Some(mailbox) = mailbox {
            mailbox.put(wake);
        }
    }

    /// Tells every waiter on the wire key `key` to try again.
    pub(crate) fn retry_key(&self, key: &str) {
        let mailboxes: Vec<_> = self
            .slots()
            .values()
            .filter(|s| &*s.key == key)
            .map(|s| Arc::clone(&s.mailbox))
            .collect();
        for mailbox in mailboxes {
            mailbox.put(Wake::Retry);
        }
    }

    /// Tells every waiter to try again (wake-ups may have been missed).
    pub(crate) fn retry_all(&self) {
        let mailboxes: Vec<_> = self
            .slots()
            .values()
            .map(|s| Arc::clone(&s.mailbox))
            .collect();
        for mailbox in mailboxes {
            mailbox.put(Wake::Retry);
        }
    }

    /// Whether a waiter listens on `key` (for tests).
    #[cfg(test)]
    fn listens(&self, key: &str) -> bool {
        self.slots().values().any(|s| &*s.key == key)
    }
}

/// One waiter's ear on a [`Board`]; leaves the board when dropped.
pub(crate) struct Listener {
    board: Arc<Board>,
    id: Arc<str>,
    mailbox: Arc<Mailbox>,
}

impl Listener {
    /// What was heard since the last call, waiting for it if nothing was.
    pub(crate) async fn next(&mut self) -> Wake {
        loop {
            let heard = self
                .mailbox
                .wake
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            if let Some(wake) = heard {
                return wake;
            }
            // A delivery between the check and here leaves a permit: no wake-up is lost.
            self.mailbox.notify.notified().await;
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let mut slots = self.board.slots();
        // Only our own slot: ids are unique, but be exact.
        if slots
            .get(&self.id)
            .is_some_and(|s| Arc::ptr_eq(&s.mailbox, &self.mailbox))
        {
            slots.remove(&self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_delivery_reaches_its_waiter_only_and_a_grant_is_kept() {
        let board = Arc::new(Board::default());
        let mut a = board.listen("k1", "a");
        let mut b = board.listen("k1", "b");
        let mut c = board.listen("k2", "c");
        board.deliver("a", Wake::Granted { fence: Some(7) });
        // A retry after a grant does not hide it.
        board.retry_key("k1");
        assert_eq!(a.next().await, Wake::Granted { fence: Some(7) });
        assert_eq!(b.next().await, Wake::Retry);
        let quiet = tokio::time::timeout(std::time::Duration::from_millis(20), c.next()).await;
        assert!(quiet.is_err(), "k2's waiter heard k1's release");
        board.retry_all();
        assert_eq!(c.next().await, Wake::Retry);
        // Heard before anyone waits: kept for the next call.
        board.deliver("b", Wake::Retry);
        assert_eq!(b.next().await, Wake::Retry);
        drop((a, b, c));
        assert!(!board.listens("k1") && !board.listens("k2"));
        // A delivery to a waiter that left is dropped.
        board.deliver("a", Wake::Retry);
    }
}
