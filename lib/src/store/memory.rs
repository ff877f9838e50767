//! The in-memory store: the Node original's in-process fallback (node-cache), with the same
//! semantics as Redis: expiry honoured, compare on release. For tests and single-process
//! programs; it locks nothing across processes.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use redis::RedisResult;

use super::{Acquire, BoxFuture, Expiry, Release, Store};

#[derive(Default)]
pub(crate) struct MemoryStore {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    entries: HashMap<String, Entry>,
    /// Size at which the next insert sweeps out expired entries; doubles with the live set,
    /// so sweeping costs O(1) amortised and expired keys never pile up.
    sweep_at: usize,
}

struct Entry {
    value: String,
    expires_at: Instant,
}

const MIN_SWEEP: usize = 64;

impl State {
    /// The live entry at `key`, dropping it first if it has expired.
    fn live(&mut self, key: &str, now: Instant) -> Option<&Entry> {
        if self.entries.get(key).is_some_and(|e| e.expires_at <= now) {
            self.entries.remove(key);
        }
        self.entries.get(key)
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

    #[cfg(test)]
    fn len(&self) -> usize {
        self.with_state(|state, _| state.entries.len())
    }
}

impl Store for MemoryStore {
    fn acquire<'a>(
        &'a self,
        key: &'a str,
        value: &'a str,
        expiry: Expiry,
    ) -> BoxFuture<'a, RedisResult<Acquire>> {
        let outcome = self.with_state(|state, now| {
            if state.live(key, now).is_some() {
                return Acquire::Held;
            }
            // The expiry is capped by the client well below Instant's range; saturate anyway.
            let expires_at = now
                .checked_add(expiry.as_duration())
                .unwrap_or(now + std::time::Duration::from_secs(86_400 * 365));
            state.insert(key, value, expires_at, now);
            Acquire::Granted
        });
        Box::pin(std::future::ready(Ok(outcome)))
    }

    fn release<'a>(&'a self, key: &'a str, value: &'a str) -> BoxFuture<'a, RedisResult<Release>> {
        let outcome = self.with_state(|state, now| match state.live(key, now) {
            None => Release::NotHeld,
            Some(entry) if entry.value != value => Release::NotOwner,
            Some(_) => {
                state.entries.remove(key);
                Release::Released
            }
        });
        Box::pin(std::future::ready(Ok(outcome)))
    }

    fn force_release<'a>(&'a self, key: &'a str) -> BoxFuture<'a, RedisResult<bool>> {
        let existed = self.with_state(|state, now| {
            let live = state.live(key, now).is_some();
            state.entries.remove(key);
            live
        });
        Box::pin(std::future::ready(Ok(existed)))
    }

    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, RedisResult<Option<String>>> {
        let value = self.with_state(|state, now| state.live(key, now).map(|e| e.value.clone()));
        Box::pin(std::future::ready(Ok(value)))
    }

    fn does_io(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn expired_entries_are_swept_as_new_ones_arrive() {
        let store = MemoryStore::default();
        for i in 0..1000 {
            let key = format!("short{i}");
            store.acquire(&key, "v", Expiry::Millis(1)).await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
        for i in 0..1100 {
            let key = format!("long{i}");
            store.acquire(&key, "v", Expiry::Seconds(60)).await.unwrap();
        }
        // Without sweeping the map would hold 2,100 entries; the 1,000 expired ones must go.
        assert!(store.len() <= 1100, "{} entries left", store.len());
    }
}
