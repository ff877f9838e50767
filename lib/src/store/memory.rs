//! The in-memory store: the Node original's in-process fallback (node-cache), with the same
//! semantics as Redis: expiry honoured, compare on release and extend, fencing tokens, release
//! announcements. For tests and single-process programs; it locks nothing across processes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::listen::{Board, Listener};
use super::{
    Acquire, AcquireRequest, Owned, Reply, SetStatus, Shape, Store, Traits, Waiter, not_kept,
};
use crate::drift::DEFAULT_DRIFT_FACTOR;
use crate::status::{LockState, LockStatus};

pub(crate) struct MemoryStore {
    state: Mutex<State>,
    /// The waiters of this store, woken on each release of their key.
    board: Arc<Board>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self {
            state: Mutex::default(),
            board: Arc::new(Board::default()),
        }
    }
}

#[derive(Default)]
struct State {
    entries: HashMap<String, Entry>,
    /// Last fencing token per key. Kept for the store's lifetime so tokens never go back.
    fences: HashMap<String, u64>,
    /// Size at which the next insert sweeps out expired entries; doubles with the live set,
    /// so sweeping costs O(1) amortised and expired keys never pile up.
    sweep_at: usize,
}

struct Entry {
    value: String,
    expires_at: Instant,
}

const MIN_SWEEP: usize = 64;

/// Far enough to stand for "never" without overflowing `Instant`.
fn add(now: Instant, ttl: Duration) -> Instant {
    now.checked_add(ttl)
        .unwrap_or_else(|| now + Duration::from_secs(86_400 * 365))
}

impl State {
    /// The live entry at `key`, dropping it first if it has expired.
    fn live(&mut self, key: &str, now: Instant) -> Option<&mut Entry> {
        if self.entries.get(key).is_some_and(|e| e.expires_at <= now) {
            self.entries.remove(key);
        }
        self.entries.get_mut(key)
    }

    fn insert(&mut self, key: &str, value: &str, expires_at: Instant, now: Instant) {
        if self.entries.len() >= self.sweep_at.max(MIN_SWEEP) {
            self.entries.retain(|_, e| e.expires_at > now);
            self.sweep_at = self.entries.len() * 2;
        }
        self.entries.insert(
            key.to_owned(),
            Entry {
                value: value.to_owned(),
                expires_at,
            },
        );
    }
}

impl MemoryStore {
    fn with_state<T>(&self, f: impl FnOnce(&mut State, Instant) -> T) -> T {
        // A panic while holding this lock cannot leave the map half-changed (every change is
        // one insert or remove), so a poisoned lock is safe to keep using.
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut state, Instant::now())
    }

    /// Wakes every waiter on `key`: waiters are not registered here, so every release is
    /// announced to all.
    fn announce(&self, key: &str) {
        self.board.retry_key(key);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.with_state(|state, _| state.entries.len())
    }
}

fn ready<'a, T: Send + 'a>(value: T) -> Reply<'a, T> {
    Box::pin(std::future::ready(Ok(value)))
}

impl Store for MemoryStore {
    fn acquire<'a>(&'a self, req: AcquireRequest<'a>) -> Reply<'a, Acquire> {
        if *req.shape != Shape::Mutex {
            return not_kept(req.shape.name());
        }
        let outcome = self.with_state(|state, now| {
            if let Some(holder) = state.live(req.key, now) {
                let pttl = holder.expires_at.saturating_duration_since(now);
                return Acquire::Held { pttl: Some(pttl) };
            }
            let expires_at = add(now, req.expiry.as_duration());
            state.insert(req.key, req.token, expires_at, now);
            let fence = req.fencing.then(|| {
                let last = state.fences.entry(req.key.to_owned()).or_insert(0);
                *last += 1;
                *last
            });
            Acquire::Granted { fence }
        });
        ready(outcome)
    }

    fn release<'a>(&'a self, key: &'a str, value: &'a str, shape: &'a Shape) -> Reply<'a, Owned> {
        if *shape != Shape::Mutex {
            return not_kept(shape.name());
        }
        let outcome = self.with_state(|state, now| match state.live(key, now) {
            None => Owned::NotHeld,
            Some(entry) if entry.value != value => Owned::NotOwner,
            Some(_) => {
                state.entries.remove(key);
                Owned::Done
            }
        });
        if outcome == Owned::Done {
            self.announce(key);
        }
        ready(outcome)
    }

    fn extend<'a>(
        &'a self,
        key: &'a str,
        value: &'a str,
        ttl: Duration,
        shape: &'a Shape,
    ) -> Reply<'a, Owned> {
        if *shape != Shape::Mutex {
            return not_kept(shape.name());
        }
        let outcome = self.with_state(|state, now| match state.live(key, now) {
            None => Owned::NotHeld,
            Some(entry) if entry.value != value => Owned::NotOwner,
            Some(entry) => {
                entry.expires_at = add(now, ttl);
                Owned::Done
            }
        });
        ready(outcome)
    }

    fn force_release<'a>(&'a self, key: &'a str) -> Reply<'a, bool> {
        let existed = self.with_state(|state, now| {
            let live = state.live(key, now).is_some();
            state.entries.remove(key);
            live
        });
        if existed {
            self.announce(key);
        }
        ready(existed)
    }

    fn get<'a>(&'a self, key: &'a str) -> Reply<'a, Option<String>> {
        let value = self.with_state(|state, now| state.live(key, now).map(|e| e.value.clone()));
        ready(value)
    }

    fn status<'a>(&'a self, key: &'a str) -> Reply<'a, LockStatus> {
        let status = self.with_state(|state, now| {
            let ttl = state
                .live(key, now)
                .map(|entry| entry.expires_at.saturating_duration_since(now));
            LockStatus {
                state: if ttl.is_some() {
                    LockState::Held
                } else {
                    LockState::Free
                },
                ttl,
                fencing_counter: state.fences.get(key).copied(),
                waiters: 0,
            }
        });
        ready(status)
    }

    fn set_status<'a>(&'a self, _key: &'a str) -> Reply<'a, SetStatus> {
        not_kept("semaphores or read-write locks")
    }

    fn cancel_wait<'a>(
        &'a self,
        _key: &'a str,
        _waiter: &'a Waiter,
        _shape: &'a Shape,
    ) -> Reply<'a, ()> {
        // Waiters are not registered here: every release is announced.
        ready(())
    }

    fn listen(&self, key: &str, waiter: &str) -> Option<Listener> {
        Some(self.board.listen(key, waiter))
    }

    fn traits(&self) -> Traits {
        Traits {
            name: "memory",
            fencing: true,
            lease_sets: true,
            drift_factor: DEFAULT_DRIFT_FACTOR,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::Expiry;
    use super::*;

    fn request<'a>(key: &'a str, expiry: Expiry) -> AcquireRequest<'a> {
        AcquireRequest {
            key,
            shape: &Shape::Mutex,
            token: "v",
            expiry,
            waiter: None,
            fencing: false,
            probe: false,
        }
    }

    #[tokio::test]
    async fn expired_entries_are_swept_as_new_ones_arrive() {
        let store = MemoryStore::default();
        let fill = async |prefix: &str, count: usize, expiry: Expiry| {
            for i in 0..count {
                let key = format!("{prefix}{i}");
                store.acquire(request(&key, expiry)).await.unwrap();
            }
        };
        fill("short", 1000, Expiry::Millis(1)).await;
        tokio::time::sleep(Duration::from_millis(5)).await;
        fill("long", 1100, Expiry::Seconds(60)).await;
        // Without sweeping the map would hold 2,100 entries; the 1,000 expired ones must go.
        assert!(store.len() <= 1100, "{} entries left", store.len());
    }
}
