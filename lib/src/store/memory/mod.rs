//! The in-memory store: the Node original's in-process fallback (node-cache), with the same
//! semantics as Redis: expiry honoured, compare on release and extend, fencing tokens, release
//! announcements. For tests and single-process programs; it locks nothing across processes.
//!
//! What a key holds, each kept as the Redis store keeps it:
//!
//! - a **mutex**: an entry holding the token, with its expiry;
//! - a **lease set** (a semaphore or a read-write lock, `sets`): holds with their own tokens,
//!   shares and expiries, and a queue of waiters admitted in strict FIFO order;
//! - a **multi-key lock** (`multi`): plain mutex entries, one per key, all holding one token.
//!
//! A key is a mutex or a lease set, never both: an attempt of one kind on a key held as the
//! other is answered as Redis answers it, with the other's Redis type (`string` for a mutex,
//! `zset` for a lease set). What a key is follows from what holds it; a lease set's queue is
//! kept beside it, as Redis keeps waiters in a companion key, and types nothing.
//!
//! Wake-ups, decided under the store's lock and delivered to the board once it is released:
//! a mutex release (or force release) tells every waiter of the key to try again, and the
//! multi-key waiters that wait for it (each multi-key waiter is noted under every one of its
//! keys when refused, since the board knows it under its first key only); a lease set tells,
//! after each change, only the waiters at the head of its queue that can enter now.

mod multi;
mod sets;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use super::listen::{Board, Listener, Wake};
use super::{
    Acquire, AcquireRequest, Owned, Reply, SetStatus, Shape, Share, Store, StoreError, StoreResult,
    Traits, Waiter,
};
use crate::drift::DEFAULT_DRIFT_FACTOR;
use crate::status::{LockState, LockStatus};
use sets::{Attempt, LeaseSet, Waiting};

pub(crate) struct MemoryStore {
    state: Mutex<State>,
    /// The waiters of this store, woken as their keys free up.
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
    /// Mutexes (multi-key locks among them), by key.
    entries: HashMap<String, Entry>,
    /// Lease sets, by key.
    sets: HashMap<String, LeaseSet>,
    /// Last fencing token per key. Kept for the store's lifetime so tokens never go back.
    fences: HashMap<String, u64>,
    /// Multi-key waiters refused at a key, by key: woken when it frees up.
    watchers: HashMap<String, Vec<Watcher>>,
    /// Size at which the next new key of each map sweeps out what is dead there; doubles with
    /// the live set, so sweeping costs O(1) amortised and expired keys never pile up.
    sweep_at: usize,
    sets_sweep_at: usize,
    watchers_sweep_at: usize,
    /// Wake-ups decided by the current call, delivered once the lock is released.
    wakes: Wakes,
}

struct Entry {
    value: String,
    expires_at: Instant,
    /// The holder label given with the lock, kept with it (so gone with it), and when the hold
    /// began.
    holder: Option<Holder>,
}

/// A holder label and the start of its hold.
struct Holder {
    label: String,
    since: Instant,
    since_wall: SystemTime,
}

/// A multi-key waiter noted at one of its keys.
struct Watcher {
    waiter: String,
    /// Its registration's lease: past it, the waiter is gone.
    expires_at: Instant,
}

#[derive(Default)]
struct Wakes {
    /// Keys whose waiters all try again (a mutex freed).
    keys: Vec<String>,
    /// Waiters told to try again.
    waiters: Vec<String>,
}

const MIN_SWEEP: usize = 64;

/// Far enough to stand for "never" without overflowing `Instant`.
fn add(now: Instant, ttl: Duration) -> Instant {
    now.checked_add(ttl)
        .unwrap_or_else(|| now + Duration::from_secs(86_400 * 365))
}

/// Sweeps `map` with `alive` once it has reached `*at` entries (at least [`MIN_SWEEP`]), and
/// sets the next size at twice what is left.
fn sweep<V>(map: &mut HashMap<String, V>, at: &mut usize, mut alive: impl FnMut(&mut V) -> bool) {
    if map.len() >= (*at).max(MIN_SWEEP) {
        map.retain(|_, value| alive(value));
        *at = map.len() * 2;
    }
}

/// The error of a call that meets a key of the other kind, named by its Redis type.
fn wrong_type(found: &str) -> StoreError {
    StoreError::WrongType {
        found: found.to_owned(),
        companion: None,
    }
}

impl State {
    /// The live entry at `key`, dropping it first if it has expired (which frees the key for
    /// the multi-key waiters noted there).
    fn live(&mut self, key: &str, now: Instant) -> Option<&mut Entry> {
        if self.entries.get(key).is_some_and(|e| e.expires_at <= now) {
            self.entries.remove(key);
            self.wake_watchers(key);
        }
        self.entries.get_mut(key)
    }

    fn insert(&mut self, key: &str, value: &str, expires_at: Instant, now: Instant) {
        if !self.entries.contains_key(key) {
            sweep(&mut self.entries, &mut self.sweep_at, |e| {
                e.expires_at > now
            });
        }
        self.entries.insert(
            key.to_owned(),
            Entry {
                value: value.to_owned(),
                expires_at,
                holder: None,
            },
        );
    }

    /// The mutex at `key` was deleted: its waiters try again.
    fn freed(&mut self, key: &str) {
        self.wakes.keys.push(key.to_owned());
        self.wake_watchers(key);
    }

    /// Tells the multi-key waiters noted at `key` to try again (a refused attempt notes them
    /// again).
    fn wake_watchers(&mut self, key: &str) {
        if let Some(watchers) = self.watchers.remove(key) {
            let waiters = watchers.into_iter().map(|w| w.waiter);
            self.wakes.waiters.extend(waiters);
        }
    }

    /// Draws the next fencing token of `key`.
    fn next_fence(&mut self, key: &str) -> u64 {
        let last = self.fences.entry(key.to_owned()).or_insert(0);
        *last += 1;
        *last
    }

    /// Whether a lease set holds `key`, after dropping what expired there (then waking whoever
    /// can enter now) and the set itself if nothing is left.
    fn set_held(&mut self, key: &str, now: Instant) -> bool {
        let Some(set) = self.sets.get_mut(key) else {
            return false;
        };
        if set.prune(now) {
            set.walk(&mut self.wakes.waiters);
        }
        let held = set.is_held();
        if set.is_empty() {
            self.sets.remove(key);
        }
        held
    }

    /// After a change to the set at `key`: wakes whoever can enter now, and drops the set if
    /// nothing is left.
    fn settle_set(&mut self, key: &str) {
        if let Some(set) = self.sets.get_mut(key) {
            set.walk(&mut self.wakes.waiters);
            if set.is_empty() {
                self.sets.remove(key);
            }
        }
    }

    fn mutex_acquire(&mut self, req: &AcquireRequest<'_>, now: Instant) -> Acquire {
        if self.set_held(req.key, now) {
            return Acquire::WrongType("zset".to_owned());
        }
        if let Some(holder) = self.live(req.key, now) {
            let pttl = holder.expires_at.saturating_duration_since(now);
            return Acquire::Held { pttl: Some(pttl) };
        }
        let expires_at = add(now, req.expiry.as_duration());
        self.insert(req.key, req.token, expires_at, now);
        if let (Some(label), Some(entry)) = (req.holder, self.entries.get_mut(req.key)) {
            entry.holder = Some(Holder {
                label: label.to_owned(),
                since: now,
                since_wall: SystemTime::now(),
            });
        }
        let fence = req.fencing.then(|| self.next_fence(req.key));
        Acquire::Granted { fence }
    }

    fn mutex_release(&mut self, key: &str, value: &str, now: Instant) -> StoreResult<Owned> {
        if self.set_held(key, now) {
            return Err(wrong_type("zset"));
        }
        Ok(match self.live(key, now) {
            None => Owned::NotHeld,
            Some(entry) if entry.value != value => Owned::NotOwner,
            Some(_) => {
                self.entries.remove(key);
                self.freed(key);
                Owned::Done
            }
        })
    }

    fn mutex_extend(
        &mut self,
        key: &str,
        value: &str,
        ttl: Duration,
        now: Instant,
    ) -> StoreResult<Owned> {
        if self.set_held(key, now) {
            return Err(wrong_type("zset"));
        }
        Ok(match self.live(key, now) {
            None => Owned::NotHeld,
            Some(entry) if entry.value != value => Owned::NotOwner,
            Some(entry) => {
                entry.expires_at = add(now, ttl);
                Owned::Done
            }
        })
    }

    /// One attempt at a hold of `share` in the lease set at `req.key`.
    fn set_acquire(&mut self, req: &AcquireRequest<'_>, share: Share, now: Instant) -> Acquire {
        if !self.set_held(req.key, now) && self.live(req.key, now).is_some() {
            return Acquire::WrongType("string".to_owned());
        }
        let expires_at = add(now, req.expiry.as_duration());
        let waiting = req.waiter.map(|w| Waiting {
            id: &w.waiter.id,
            until: add(now, w.waiter.lease),
        });
        if !self.sets.contains_key(req.key) {
            sweep(&mut self.sets, &mut self.sets_sweep_at, |set| {
                set.is_alive(now)
            });
        }
        let set = self.sets.entry(req.key.to_owned()).or_default();
        let attempt = set.attempt(req.token, share, expires_at, waiting);
        let pttl = set.earliest().map(|at| at.saturating_duration_since(now));
        self.settle_set(req.key);
        match attempt {
            Attempt::Granted => Acquire::Granted {
                fence: req.fencing.then(|| self.next_fence(req.key)),
            },
            Attempt::Held => Acquire::Held { pttl },
        }
    }

    fn set_release(&mut self, key: &str, value: &str, now: Instant) -> StoreResult<Owned> {
        if !self.set_held(key, now) {
            if self.live(key, now).is_some() {
                return Err(wrong_type("string"));
            }
            return Ok(Owned::NotHeld);
        }
        let released = self.sets.get_mut(key).is_some_and(|set| set.release(value));
        self.settle_set(key);
        Ok(if released {
            Owned::Done
        } else {
            Owned::NotHeld
        })
    }

    fn set_extend(
        &mut self,
        key: &str,
        value: &str,
        ttl: Duration,
        now: Instant,
    ) -> StoreResult<Owned> {
        if !self.set_held(key, now) {
            if self.live(key, now).is_some() {
                return Err(wrong_type("string"));
            }
            return Ok(Owned::NotHeld);
        }
        let expires_at = add(now, ttl);
        let extended = self
            .sets
            .get_mut(key)
            .is_some_and(|set| set.extend(value, expires_at));
        Ok(if extended {
            Owned::Done
        } else {
            Owned::NotHeld
        })
    }

    fn set_cancel(&mut self, key: &str, waiter: &str, now: Instant) {
        if let Some(set) = self.sets.get_mut(key) {
            set.prune(now);
            set.cancel(waiter);
        }
        self.settle_set(key);
    }

    fn set_status(&self, key: &str, now: Instant) -> SetStatus {
        let Some(set) = self.sets.get(key) else {
            return self.not_a_set(key, now);
        };
        let (holds, shares, exclusive) = set.counts(now);
        let Some(latest) = set.latest_at(now) else {
            return SetStatus {
                waiters: set.waiters(now),
                ..self.not_a_set(key, now)
            };
        };
        SetStatus {
            holds,
            shares,
            exclusive,
            ttl: Some(latest.saturating_duration_since(now)),
            waiters: set.waiters(now),
            fencing_counter: self.fences.get(key).copied(),
            wrong_type: None,
        }
    }

    /// The status of a key no lease set holds: free, or a mutex.
    fn not_a_set(&self, key: &str, now: Instant) -> SetStatus {
        let mutex = self.entries.get(key).is_some_and(|e| e.expires_at > now);
        SetStatus {
            fencing_counter: self.fences.get(key).copied(),
            wrong_type: mutex.then(|| "string".to_owned()),
            ..SetStatus::default()
        }
    }
}

impl MemoryStore {
    /// Runs `f` on the state under its lock, then delivers the wake-ups it decided.
    fn with_state<T>(&self, f: impl FnOnce(&mut State, Instant) -> T) -> T {
        let (out, wakes) = {
            // A panic while holding this lock leaves every map whole (each change is one
            // insert, remove or retain), at worst with a registration or a note to wake that
            // outlives its use until it expires: a poisoned lock is safe to keep using.
            let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            let out = f(&mut state, Instant::now());
            (out, std::mem::take(&mut state.wakes))
        };
        for key in &wakes.keys {
            self.board.retry_key(key);
        }
        for waiter in &wakes.waiters {
            self.board.deliver(waiter, Wake::Retry);
        }
        out
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.with_state(|state, _| state.entries.len())
    }
}

fn ready<'a, T: Send + 'a>(value: T) -> Reply<'a, T> {
    answer(Ok(value))
}

fn answer<'a, T: Send + 'a>(result: StoreResult<T>) -> Reply<'a, T> {
    Box::pin(std::future::ready(result))
}

impl Store for MemoryStore {
    fn acquire<'a>(&'a self, req: AcquireRequest<'a>) -> Reply<'a, Acquire> {
        let outcome = self.with_state(|state, now| match (req.shape.share(), req.shape) {
            (Some(share), _) => state.set_acquire(&req, share, now),
            (None, Shape::Multi { keys }) => state.multi_acquire(&req, keys, now),
            (None, _) => state.mutex_acquire(&req, now),
        });
        ready(outcome)
    }

    fn release<'a>(&'a self, key: &'a str, value: &'a str, shape: &'a Shape) -> Reply<'a, Owned> {
        answer(self.with_state(|state, now| match (shape.share(), shape) {
            (Some(_), _) => state.set_release(key, value, now),
            (None, Shape::Multi { keys }) => state.multi_release(keys, value, now),
            (None, _) => state.mutex_release(key, value, now),
        }))
    }

    fn extend<'a>(
        &'a self,
        key: &'a str,
        value: &'a str,
        ttl: Duration,
        shape: &'a Shape,
    ) -> Reply<'a, Owned> {
        answer(self.with_state(|state, now| match (shape.share(), shape) {
            (Some(_), _) => state.set_extend(key, value, ttl, now),
            (None, Shape::Multi { keys }) => state.multi_extend(keys, value, ttl, now),
            (None, _) => state.mutex_extend(key, value, ttl, now),
        }))
    }

    fn force_release<'a>(&'a self, key: &'a str) -> Reply<'a, bool> {
        answer(self.with_state(|state, now| {
            // As on Redis: a lock library does not delete what is not a lock.
            if state.set_held(key, now) {
                return Err(wrong_type("zset"));
            }
            let live = state.live(key, now).is_some();
            if live {
                state.entries.remove(key);
                state.freed(key);
            }
            Ok(live)
        }))
    }

    fn get<'a>(&'a self, key: &'a str) -> Reply<'a, Option<String>> {
        answer(self.with_state(|state, now| {
            if state.set_held(key, now) {
                return Err(wrong_type("zset"));
            }
            Ok(state.live(key, now).map(|e| e.value.clone()))
        }))
    }

    fn status<'a>(&'a self, key: &'a str) -> Reply<'a, LockStatus> {
        let status = self.with_state(|state, now| {
            let fencing_counter = state.fences.get(key).copied();
            if let Some(latest) = state.sets.get(key).and_then(|set| set.latest_at(now)) {
                return LockStatus {
                    state: LockState::NotALock,
                    ttl: Some(latest.saturating_duration_since(now)),
                    fencing_counter,
                    waiters: 0,
                    holder: None,
                    held_for: None,
                    held_since: None,
                };
            }
            let live = state.live(key, now).map(|entry| &*entry);
            let ttl = live
                .as_ref()
                .map(|entry| entry.expires_at.saturating_duration_since(now));
            let holder = live.and_then(|entry| entry.holder.as_ref());
            LockStatus {
                state: if ttl.is_some() {
                    LockState::Held
                } else {
                    LockState::Free
                },
                ttl,
                fencing_counter,
                waiters: 0,
                holder: holder.map(|h| h.label.clone()),
                held_for: holder.map(|h| now.saturating_duration_since(h.since)),
                held_since: holder.map(|h| h.since_wall),
            }
        });
        ready(status)
    }

    fn set_status<'a>(&'a self, key: &'a str) -> Reply<'a, SetStatus> {
        ready(self.with_state(|state, now| state.set_status(key, now)))
    }

    fn cancel_wait<'a>(
        &'a self,
        key: &'a str,
        waiter: &'a Waiter,
        shape: &'a Shape,
    ) -> Reply<'a, ()> {
        self.with_state(|state, now| match (shape.share(), shape) {
            (Some(_), _) => state.set_cancel(key, &waiter.id, now),
            (None, Shape::Multi { keys }) => state.unwatch(keys, &waiter.id),
            // Mutex waiters are not registered here: every release is announced.
            (None, _) => {}
        });
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
    use super::super::{Expiry, WaiterRegistration};
    use super::*;

    fn request<'a>(key: &'a str, expiry: Expiry) -> AcquireRequest<'a> {
        AcquireRequest {
            key,
            shape: &Shape::Mutex,
            token: "v",
            expiry,
            waiter: None,
            fencing: false,
            holder: None,
            probe: false,
        }
    }

    const TEN: Expiry = Expiry::Seconds(10);

    fn waiter(id: &str) -> Waiter {
        Waiter {
            id: id.to_owned(),
            token: format!("t-{id}"),
            expiry: TEN,
            fencing: false,
            direct: true,
            lease: Duration::from_secs(10),
        }
    }

    /// One attempt at `key`, as `shape`, with `token`; waiting as `waiter` if given.
    async fn attempt(
        store: &MemoryStore,
        key: &str,
        shape: &Shape,
        token: &str,
        waiter: Option<&Waiter>,
    ) -> Acquire {
        let req = AcquireRequest {
            key,
            shape,
            token,
            expiry: TEN,
            waiter: waiter.map(|waiter| WaiterRegistration {
                waiter,
                registered: false,
            }),
            fencing: false,
            holder: None,
            probe: false,
        };
        store.acquire(req).await.unwrap()
    }

    /// Whether `listener` hears a wake-up within a short while.
    async fn hears(listener: &mut Listener) -> bool {
        tokio::time::timeout(Duration::from_millis(30), listener.next())
            .await
            .is_ok()
    }

    fn granted(acquire: &Acquire) -> bool {
        matches!(acquire, Acquire::Granted { .. })
    }

    #[tokio::test]
    async fn a_release_wakes_only_the_waiters_that_can_enter_now() {
        let store = MemoryStore::default();
        let (w, r1, r2) = (waiter("w"), waiter("r1"), waiter("r2"));
        let mut hear_w = store.listen("rw", "w").unwrap();
        let mut hear_r1 = store.listen("rw", "r1").unwrap();
        let mut hear_r2 = store.listen("rw", "r2").unwrap();
        assert!(granted(
            &attempt(&store, "rw", &Shape::Read, "r0", None).await
        ));
        // A writer waits for the reader; readers behind it wait for the writer.
        let held = attempt(&store, "rw", &Shape::Write, &w.token, Some(&w)).await;
        assert!(matches!(held, Acquire::Held { pttl: Some(_) }), "{held:?}");
        for r in [&r1, &r2] {
            let held = attempt(&store, "rw", &Shape::Read, &r.token, Some(r)).await;
            assert!(matches!(held, Acquire::Held { .. }), "{held:?}");
        }
        assert_eq!(store.set_status("rw").await.unwrap().waiters, 3);
        let done = store.release("rw", "r0", &Shape::Read).await.unwrap();
        assert_eq!(done, Owned::Done);
        // The writer alone is told.
        assert!(hears(&mut hear_w).await);
        assert!(!hears(&mut hear_r1).await && !hears(&mut hear_r2).await);
        let write = Acquire::Granted { fence: None };
        assert_eq!(
            attempt(&store, "rw", &Shape::Write, &w.token, Some(&w)).await,
            write
        );
        store.release("rw", &w.token, &Shape::Write).await.unwrap();
        // Both readers can enter together: both are told, the writer is gone.
        assert!(hears(&mut hear_r1).await && hears(&mut hear_r2).await);
        assert!(!hears(&mut hear_w).await);
        for r in [&r1, &r2] {
            assert!(granted(
                &attempt(&store, "rw", &Shape::Read, &r.token, Some(r)).await
            ));
        }
        let status = store.set_status("rw").await.unwrap();
        assert_eq!((status.holds, status.shares, status.waiters), (2, 2, 0));
    }

    #[tokio::test]
    async fn a_cancelled_waiter_passes_its_turn_on() {
        let store = MemoryStore::default();
        let shape = Shape::Permits { count: 2, limit: 2 };
        let one = Shape::Permits { count: 1, limit: 2 };
        let (big, small) = (waiter("big"), waiter("small"));
        let mut hear_small = store.listen("sem", "small").unwrap();
        assert!(granted(&attempt(&store, "sem", &one, "h", None).await));
        // big wants both permits; small, behind it, may not pass it.
        let _ = attempt(&store, "sem", &shape, &big.token, Some(&big)).await;
        let _ = attempt(&store, "sem", &one, &small.token, Some(&small)).await;
        assert!(!hears(&mut hear_small).await);
        store.cancel_wait("sem", &big, &shape).await.unwrap();
        assert!(hears(&mut hear_small).await);
        assert!(granted(
            &attempt(&store, "sem", &one, &small.token, Some(&small)).await
        ));
        // Nothing left once all are gone.
        store.release("sem", "h", &one).await.unwrap();
        store.release("sem", &small.token, &one).await.unwrap();
        assert!(store.with_state(|state, _| state.sets.is_empty()));
    }

    #[tokio::test]
    async fn writers_draw_fencing_tokens_and_holds_end_as_asked() {
        let store = MemoryStore::default();
        let mut req = request("fenced", TEN);
        req.shape = &Shape::Write;
        req.fencing = true;
        assert_eq!(
            store.acquire(req).await.unwrap(),
            Acquire::Granted { fence: Some(1) }
        );
        assert_eq!(
            store.release("fenced", "v", &Shape::Write).await.unwrap(),
            Owned::Done
        );
        assert_eq!(
            store.release("fenced", "v", &Shape::Write).await.unwrap(),
            Owned::NotHeld
        );
        assert_eq!(
            store.acquire(req).await.unwrap(),
            Acquire::Granted { fence: Some(2) }
        );
        let ttl = Duration::from_millis(1);
        let extend = store.extend("fenced", "v", ttl, &Shape::Write);
        assert_eq!(extend.await.unwrap(), Owned::Done);
        tokio::time::sleep(Duration::from_millis(5)).await;
        // Expired: never re-created.
        let extend = store.extend("fenced", "v", TEN.as_duration(), &Shape::Write);
        assert_eq!(extend.await.unwrap(), Owned::NotHeld);
        let status = store.set_status("fenced").await.unwrap();
        assert_eq!(status.fencing_counter, Some(2));
        assert!(!status.exclusive && status.ttl.is_none());
    }

    #[tokio::test]
    async fn a_key_is_a_mutex_or_a_lease_set_never_both() {
        let store = MemoryStore::default();
        let zset = Some("zset".to_owned());
        assert!(granted(
            &attempt(&store, "m", &Shape::Mutex, "v", None).await
        ));
        let string = Acquire::WrongType("string".to_owned());
        assert_eq!(attempt(&store, "m", &Shape::Read, "r", None).await, string);
        let status = store.set_status("m").await.unwrap();
        assert_eq!(status.wrong_type.as_deref(), Some("string"));
        let release = store.release("m", "v", &Shape::Read).await;
        assert!(
            matches!(release, Err(StoreError::WrongType { .. })),
            "{release:?}"
        );

        assert!(granted(
            &attempt(&store, "s", &Shape::Read, "r", None).await
        ));
        let zset_held = Acquire::WrongType("zset".to_owned());
        assert_eq!(
            attempt(&store, "s", &Shape::Mutex, "v", None).await,
            zset_held
        );
        let multi = Shape::Multi {
            keys: vec!["a".to_owned(), "s".to_owned()],
        };
        assert_eq!(attempt(&store, "a", &multi, "v", None).await, zset_held);
        assert_eq!(store.get("a").await.unwrap(), None, "nothing taken");
        for err in [
            store.get("s").await.err(),
            store.force_release("s").await.err(),
            store.release("s", "r", &Shape::Mutex).await.err(),
        ] {
            match err {
                Some(StoreError::WrongType { found, .. }) => assert_eq!(Some(found), zset),
                other => panic!("{other:?}"),
            }
        }
        let status = store.status("s").await.unwrap();
        assert_eq!(status.state, LockState::NotALock);
        // Once the set is gone, the key is free for a mutex.
        store.release("s", "r", &Shape::Read).await.unwrap();
        assert!(granted(
            &attempt(&store, "s", &Shape::Mutex, "v", None).await
        ));
    }

    #[tokio::test]
    async fn a_multi_key_waiter_is_woken_by_any_of_its_keys() {
        let store = MemoryStore::default();
        let keys = vec!["a".to_owned(), "b".to_owned(), "c".to_owned()];
        let multi = Shape::Multi { keys: keys.clone() };
        let m = waiter("m");
        // Listens under its first key only, as the lock logic does.
        let mut hear = store.listen("a", "m").unwrap();
        for (key, token) in [("b", "x"), ("c", "y")] {
            assert!(granted(
                &attempt(&store, key, &Shape::Mutex, token, None).await
            ));
        }
        let held = attempt(&store, "a", &multi, &m.token, Some(&m)).await;
        assert!(matches!(held, Acquire::Held { pttl: Some(_) }), "{held:?}");
        assert_eq!(store.get("a").await.unwrap(), None, "nothing taken");
        store.release("c", "y", &Shape::Mutex).await.unwrap();
        assert!(hears(&mut hear).await);
        let held = attempt(&store, "a", &multi, &m.token, Some(&m)).await;
        assert!(matches!(held, Acquire::Held { .. }), "{held:?}");
        store.force_release("b").await.unwrap();
        assert!(hears(&mut hear).await);
        assert!(granted(
            &attempt(&store, "a", &multi, &m.token, Some(&m)).await
        ));
        for key in &keys {
            assert_eq!(store.get(key).await.unwrap().as_deref(), Some("t-m"));
        }
        assert!(store.with_state(|state, _| state.watchers.is_empty()));
        // One key gone: extend changes nothing, release takes the rest.
        store.force_release("b").await.unwrap();
        let extend = store.extend("a", "t-m", Duration::from_secs(60), &multi);
        assert_eq!(extend.await.unwrap(), Owned::NotHeld);
        assert!(granted(
            &attempt(&store, "b", &Shape::Mutex, "z", None).await
        ));
        let extend = store.extend("a", "t-m", Duration::from_secs(60), &multi);
        assert_eq!(extend.await.unwrap(), Owned::NotOwner);
        let release = store.release("a", "t-m", &multi).await.unwrap();
        assert_eq!(release, Owned::NotOwner);
        assert_eq!(store.get("a").await.unwrap(), None);
        assert_eq!(store.get("b").await.unwrap().as_deref(), Some("z"));
        assert_eq!(store.get("c").await.unwrap(), None);
    }

    #[tokio::test]
    async fn dead_lease_sets_and_notes_are_swept() {
        let store = MemoryStore::default();
        let read = Shape::Read;
        for i in 0..1000 {
            let key = format!("short{i}");
            let mut req = request(&key, Expiry::Millis(1));
            req.shape = &read;
            store.acquire(req).await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
        for i in 0..1100 {
            let key = format!("long{i}");
            let mut req = request(&key, TEN);
            req.shape = &read;
            store.acquire(req).await.unwrap();
        }
        let sets = store.with_state(|state, _| state.sets.len());
        assert!(sets <= 1100, "{sets} sets left");
        // Notes of multi-key waiters that vanished go too.
        assert!(granted(
            &attempt(&store, "~held", &Shape::Mutex, "x", None).await
        ));
        let refused = async |prefix: &str, lease: Duration| {
            let mut m = waiter(prefix);
            m.lease = lease;
            for i in 0..1000 {
                let first = format!("{prefix}{i}");
                let multi = Shape::Multi {
                    keys: vec![first.clone(), "~held".to_owned()],
                };
                let held = attempt(&store, &first, &multi, "v", Some(&m)).await;
                assert!(matches!(held, Acquire::Held { .. }), "{held:?}");
            }
        };
        refused("n", Duration::from_millis(1)).await;
        tokio::time::sleep(Duration::from_millis(5)).await;
        refused("p", TEN.as_duration()).await;
        let notes = store.with_state(|state, _| state.watchers.len());
        assert!(notes <= 1001, "{notes} keys with notes left");
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
