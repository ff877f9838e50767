//! Several mutexes taken together in memory: plain entries of the store, one per key, all
//! holding one token, taken and released in one step under the store's lock.
//!
//! A waiting multi-key acquisition listens on the board under its first key only (that is
//! what [`Store::listen`](crate::store::Store::listen) is given), so a refused attempt notes
//! the waiter under every one of its keys (`State::watchers`, with its registration's lease):
//! whichever key is released, force-released or found expired, the waiters noted there are
//! told to try again, and a refused retry notes them again. A grant or a cancellation takes
//! the notes back; the ones left behind by a waiter that vanished expire with its lease.

use std::time::{Duration, Instant};

use super::{State, Watcher, add, sweep, wrong_type};
use crate::store::{Acquire, AcquireRequest, Owned, StoreResult};

impl State {
    /// Whether a lease set holds any of `keys` (which are then left alone).
    fn any_set(&mut self, keys: &[String], now: Instant) -> bool {
        // Every key is looked at, so what expired at each is dropped.
        keys.iter()
            .fold(false, |found, key| self.set_held(key, now) | found)
    }

    /// One attempt at all of `keys` (sorted; `req.key` is the first): taken together if each is
    /// free or already holds the token (a retry), else none is taken and the answer is the
    /// time left of the held key that expires last (the earliest all could be free).
    pub(super) fn multi_acquire(
        &mut self,
        req: &AcquireRequest<'_>,
        keys: &[String],
        now: Instant,
    ) -> Acquire {
        if self.any_set(keys, now) {
            return Acquire::WrongType("zset".to_owned());
        }
        let mut held = None;
        for key in keys {
            if let Some(entry) = self.live(key, now)
                && entry.value != req.token
            {
                let pttl = entry.expires_at.saturating_duration_since(now);
                held = Some(held.map_or(pttl, |longest: Duration| longest.max(pttl)));
            }
        }
        if let Some(pttl) = held {
            if let Some(waiting) = req.waiter {
                let until = add(now, waiting.waiter.lease);
                self.watch(keys, &waiting.waiter.id, until, now);
            }
            return Acquire::Held { pttl: Some(pttl) };
        }
        let expires_at = add(now, req.expiry.as_duration());
        for key in keys {
            self.insert(key, req.token, expires_at, now);
        }
        if let Some(waiting) = req.waiter {
            self.unwatch(keys, &waiting.waiter.id);
        }
        // Fencing is refused for several keys before the store is asked.
        Acquire::Granted { fence: None }
    }

    /// Deletes every one of `keys` that holds `value`: `Done` if all did, else `NotOwner` if
    /// one holds another value (left alone), else `NotHeld`.
    pub(super) fn multi_release(
        &mut self,
        keys: &[String],
        value: &str,
        now: Instant,
    ) -> StoreResult<Owned> {
        if self.any_set(keys, now) {
            return Err(wrong_type("zset"));
        }
        let (mut not_held, mut not_owner) = (false, false);
        for key in keys {
            match self.live(key, now) {
                None => not_held = true,
                Some(entry) if entry.value != value => not_owner = true,
                Some(_) => {
                    self.entries.remove(key);
                    self.freed(key);
                }
            }
        }
        Ok(if not_owner {
            Owned::NotOwner
        } else if not_held {
            Owned::NotHeld
        } else {
            Owned::Done
        })
    }

    /// Sets every one of `keys` to expire `ttl` from now, if all hold `value`; else changes
    /// nothing and answers `NotOwner` (one holds another value) or `NotHeld` (one is gone).
    pub(super) fn multi_extend(
        &mut self,
        keys: &[String],
        value: &str,
        ttl: Duration,
        now: Instant,
    ) -> StoreResult<Owned> {
        if self.any_set(keys, now) {
            return Err(wrong_type("zset"));
        }
        let mut outcome = Owned::Done;
        for key in keys {
            match self.live(key, now) {
                None if outcome == Owned::Done => outcome = Owned::NotHeld,
                Some(entry) if entry.value != value => outcome = Owned::NotOwner,
                _ => {}
            }
        }
        if outcome == Owned::Done {
            let expires_at = add(now, ttl);
            for key in keys {
                if let Some(entry) = self.entries.get_mut(key) {
                    entry.expires_at = expires_at;
                }
            }
        }
        Ok(outcome)
    }

    /// Notes the waiter `waiter` under each of `keys`, until `until`.
    fn watch(&mut self, keys: &[String], waiter: &str, until: Instant, now: Instant) {
        for key in keys {
            if !self.watchers.contains_key(key) {
                sweep(&mut self.watchers, &mut self.watchers_sweep_at, |list| {
                    list.retain(|w| w.expires_at > now);
                    !list.is_empty()
                });
            }
            let list = self.watchers.entry(key.clone()).or_default();
            list.retain(|w| w.expires_at > now && w.waiter != waiter);
            list.push(Watcher {
                waiter: waiter.to_owned(),
                expires_at: until,
            });
        }
    }

    /// Takes back the notes of the waiter `waiter` under `keys`.
    pub(super) fn unwatch(&mut self, keys: &[String], waiter: &str) {
        for key in keys {
            if let Some(list) = self.watchers.get_mut(key) {
                list.retain(|w| w.waiter != waiter);
                if list.is_empty() {
                    self.watchers.remove(key);
                }
            }
        }
    }
}
