//! Taking a lock as a guard: options checked, attempts made (waiting between them, woken on
//! release), the guard built with its lease and watchdog; and what `with_lock` does once the
//! work is done.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tracing::Instrument;
use tracing::field::Empty;

use super::attempt::Outcome;
use super::cleanup::Leftovers;
use super::guard::LockGuard;
use super::lease::{Held, Lease};
use super::meter::{Acquired, Primitive};
use super::options::{AcquireOptions, DEFAULT_MAX_HOLD, DEFAULT_WAIT};
use super::renew::Renewal;
use super::token::new_token;
use super::{Core, NO_SETS_ON_REDLOCK, Op};
use crate::drift::drift;
use crate::error::{InvalidInput, LockError, Result};
use crate::store::listen::{Listener, Wake};
use crate::store::{AcquireRequest, Expiry, Shape, Waiter, WaiterRegistration};

/// "Forever" for deadlines that an `Instant` cannot hold: a century.
const CENTURY: Duration = Duration::from_secs(100 * 365 * 86_400);

/// How an acquire call waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// One attempt.
    Try,
    /// Until the wait deadline.
    Wait,
    /// As `Wait`, with renewal on unless the options turn it off.
    WithLock,
}

/// What an acquisition takes: a key (or several) and the shape of the hold there.
#[derive(Debug)]
pub(crate) struct Target<'k> {
    /// The key as the caller gave it (of several, the first in wire order); borrowed, so that
    /// an acquisition copies it once, into its guard.
    pub(crate) key: Cow<'k, str>,
    pub(crate) wire: String,
    pub(crate) shape: Shape,
    /// Several keys: each as the caller gave it, in wire order (empty for one key).
    pub(crate) keys: Vec<String>,
}

impl Target<'_> {
    /// The same target, owning its key (to send it to another task).
    pub(crate) fn into_owned(self) -> Target<'static> {
        Target {
            key: Cow::Owned(self.key.into_owned()),
            wire: self.wire,
            shape: self.shape,
            keys: self.keys,
        }
    }
}

impl Mode {
    fn as_str(self) -> &'static str {
        match self {
            Self::Try => "try",
            Self::Wait => "wait",
            Self::WithLock => "with_lock",
        }
    }
}

/// What an acquisition did, for its span.
#[derive(Debug, Default)]
struct Progress {
    attempts: u32,
    /// Given the lock by a release, with no attempt of its own.
    handoff: bool,
}

/// Which lease-set primitive a key is used as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SetKind {
    /// A semaphore with this many permits.
    Semaphore { limit: u32 },
    /// A read hold of a read-write lock.
    Read,
    /// A write hold of a read-write lock.
    Write,
}

impl Core {
    /// The target of a mutex at `key`.
    pub(crate) fn mutex_target<'k>(&self, key: &'k str) -> Result<Target<'k>> {
        Ok(Target {
            key: Cow::Borrowed(key),
            wire: self.wire_key(key)?.into_owned(),
            shape: Shape::Mutex,
            keys: Vec::new(),
        })
    }

    /// The target of a hold of `kind` at `key` (a lease set), taking `permits` permits of a
    /// semaphore. Refused where the store keeps no lease sets (Redlock).
    pub(crate) fn set_target<'k>(
        &self,
        key: &'k str,
        kind: SetKind,
        permits: u32,
    ) -> Result<Target<'k>> {
        let what = match kind {
            SetKind::Semaphore { .. } => "a semaphore",
            SetKind::Read | SetKind::Write => "a read-write lock",
        };
        if !self.traits().lease_sets {
            return Err(InvalidInput::NotSupported {
                what,
                reason: NO_SETS_ON_REDLOCK,
            }
            .into());
        }
        let shape = match kind {
            SetKind::Semaphore { limit } => {
                if limit == 0 {
                    return Err(InvalidInput::Setting {
                        name: "limit",
                        reason: "a semaphore needs at least one permit",
                    }
                    .into());
                }
                if permits == 0 || permits > limit {
                    return Err(InvalidInput::Setting {
                        name: "permits",
                        reason: "must be at least 1 and at most the semaphore's limit",
                    }
                    .into());
                }
                Shape::Permits {
                    count: permits,
                    limit,
                }
            }
            SetKind::Read => Shape::Read,
            SetKind::Write => Shape::Write,
        };
        if permits != 1 && !matches!(shape, Shape::Permits { .. }) {
            return Err(permits_refused());
        }
        Ok(Target {
            key: Cow::Borrowed(key),
            wire: self.wire_key(key)?.into_owned(),
            shape,
            keys: Vec::new(),
        })
    }

    /// The target of the mutexes at `keys`, taken together (repeats count once).
    pub(crate) fn multi_target<S: AsRef<str>>(&self, keys: &[S]) -> Result<Target<'static>> {
        let mut pairs = Vec::with_capacity(keys.len());
        for key in keys {
            let key = key.as_ref();
            pairs.push((self.wire_key(key)?.into_owned(), key.to_owned()));
        }
        pairs.sort_unstable();
        pairs.dedup_by(|a, b| a.0 == b.0);
        let Some((wire, key)) = pairs.first().cloned() else {
            return Err(InvalidInput::Setting {
                name: "keys",
                reason: "give at least one key",
            }
            .into());
        };
        let (wires, keys): (Vec<String>, Vec<String>) = pairs.into_iter().unzip();
        Ok(Target {
            key: Cow::Owned(key),
            wire,
            shape: Shape::Multi { keys: wires },
            keys,
        })
    }

    /// Takes the lock at `key` as a guard, as `mode` says: one attempt, or waiting until the
    /// options' deadline (see [`acquire_target`](Self::acquire_target)).
    pub(crate) async fn acquire(
        self: &Arc<Self>,
        key: &str,
        options: &AcquireOptions,
        mode: Mode,
    ) -> Result<LockGuard> {
        let target = self.mutex_target(key)?;
        self.acquire_target(target, options, mode).await
    }

    /// Takes `target` as a guard, as `mode` says: one attempt, or waiting until the options'
    /// deadline. Whatever way it ends without a guard (given up, failed, cancelled), it leaves
    /// no lock and no waiter registration behind.
    ///
    /// Each acquisition is a `lock.acquire` span (key, primitive, mode, then outcome, wait,
    /// attempts, hand-off and fencing token; never the token) and is counted in the metrics
    /// (feature `metrics`).
    pub(crate) async fn acquire_target(
        self: &Arc<Self>,
        target: Target<'_>,
        options: &AcquireOptions,
        mode: Mode,
    ) -> Result<LockGuard> {
        let primitive = Primitive::of(&target.shape);
        let span = tracing::info_span!(
            "lock.acquire",
            key = %target.key,
            primitive = primitive.as_str(),
            mode = mode.as_str(),
            outcome = Empty,
            wait_ms = Empty,
            attempts = Empty,
            handoff = Empty,
            fencing_token = Empty,
            error = Empty,
        );
        let began = Instant::now();
        let mut progress = Progress::default();
        let result = self
            .acquire_target_in(&target, primitive, options, mode, &mut progress)
            .instrument(span.clone())
            .await;
        let waits = mode != Mode::Try && !options.wait.unwrap_or(DEFAULT_WAIT).is_zero();
        let outcome = Acquired::of(&result, waits);
        let wait = began.elapsed();
        self.meter().acquired(primitive, &target.key, outcome, wait);
        if !span.is_disabled() {
            span.record("outcome", outcome.as_str());
            span.record("wait_ms", wait.as_secs_f64() * 1e3);
            span.record("attempts", progress.attempts);
            span.record("handoff", progress.handoff);
            match &result {
                Ok(guard) => {
                    if let Some(fence) = guard.fencing_token() {
                        span.record("fencing_token", fence);
                    }
                }
                Err(err) if outcome == Acquired::Error => {
                    span.record("error", tracing::field::display(err));
                }
                Err(_) => {}
            }
        }
        result
    }

    /// [`acquire_target`](Self::acquire_target), within its span; `progress` counts the
    /// attempts.
    async fn acquire_target_in(
        self: &Arc<Self>,
        target: &Target<'_>,
        primitive: Primitive,
        options: &AcquireOptions,
        mode: Mode,
        progress: &mut Progress,
    ) -> Result<LockGuard> {
        let Target {
            key,
            wire,
            shape,
            keys,
        } = target;
        let (key, wire) = (&**key, wire.as_str());
        // Counted in the waiters gauge from its first wait to its end.
        let mut in_line = None;
        if options.permits != 1 && !matches!(shape, Shape::Permits { .. }) {
            return Err(permits_refused());
        }
        let ttl = self.check_lease_ttl(options.ttl)?;
        if let Some((_, timeout)) = options.replicas
            && (timeout.is_zero() || timeout >= self.config.command_timeout)
        {
            return Err(InvalidInput::Setting {
                name: "replicas",
                reason: "the WAIT timeout must be above zero and below the command timeout",
            }
            .into());
        }
        if options.fencing && !self.traits().fencing {
            return Err(InvalidInput::Setting {
                name: "fencing",
                reason: "Redlock cannot issue fencing tokens: its nodes count independently",
            }
            .into());
        }
        if options.fencing && !matches!(shape, Shape::Mutex | Shape::Write) {
            return Err(InvalidInput::Setting {
                name: "fencing",
                reason: "fencing tokens are for exclusive holds of one key: a lock or a \
                         write lock",
            }
            .into());
        }
        let holder = options.checked_holder(shape)?;
        let renewal = self.renewal(options, mode, ttl)?;
        let wait = match mode {
            Mode::Try => Duration::ZERO,
            Mode::Wait | Mode::WithLock => options.wait.unwrap_or(DEFAULT_WAIT),
        };
        let waiting = !wait.is_zero();
        let deadline = later(Instant::now(), wait);
        let (token, generated) = match &options.token {
            Some(token) => {
                self.check_value(token)?;
                (token.clone(), false)
            }
            None => (new_token()?, true),
        };
        let expiry = Expiry::from_duration(ttl);
        // A waiter refreshes its registration at each attempt; it must outlive the longest
        // sleep between two attempts plus a slow reply.
        let registration_lease =
            options.retry.max_delay().saturating_mul(3) + self.config.command_timeout * 2;
        let waiter = if waiting {
            Some(Waiter {
                id: new_token()?,
                token: token.clone(),
                expiry,
                fencing: options.fencing,
                // WAIT must follow a write of the waiter's own connection, and a label is
                // written with the lock: such a waiter takes the lock itself.
                direct: options.replicas.is_none() && holder.is_none(),
                lease: registration_lease,
            })
        } else {
            None
        };
        // Listen before the first attempt, so a release right after it is heard.
        let mut listener = waiter
            .as_ref()
            .and_then(|w| self.store().listen(wire, &w.id));
        // Made on the first wait only: a lock that is free costs no jitter seed.
        let mut delays = None;
        let mut leftovers = Leftovers::at(self, key, wire, ttl)
            .ours(generated.then_some(&*token))
            .shape(shape)
            .waiter(waiter.as_ref());
        let mut registered = false;
        loop {
            let request = AcquireRequest {
                key: wire,
                shape,
                token: &token,
                expiry,
                // A waiting acquisition registers with its first attempt: under contention
                // that saves a round trip and a command per grant; on a free lock the script
                // costs the server a few microseconds more than a plain SET NX.
                waiter: waiter
                    .as_ref()
                    .map(|waiter| WaiterRegistration { waiter, registered }),
                fencing: options.fencing,
                holder,
                probe: false,
            };
            // No later than the attempt's own send time: a lock given to this waiter after
            // this attempt was answered is held from no earlier than this.
            let sent = Instant::now();
            progress.attempts += 1;
            let (fence, start) = match self.attempt(key, request, &mut leftovers).await? {
                Outcome::Granted { fence, sent } => (fence, sent),
                Outcome::Held { pttl } => {
                    registered |= request.waiter.is_some();
                    if !waiting {
                        return Err(LockError::Locked {
                            key: key.to_owned(),
                        });
                    }
                    let now = Instant::now();
                    let next = delays.get_or_insert_with(|| options.retry.delays()).next();
                    let (true, Some(backoff)) = (now < deadline, next) else {
                        return Err(LockError::Locked {
                            key: key.to_owned(),
                        });
                    };
                    in_line.get_or_insert_with(|| self.meter().begin_wait(primitive, key));
                    let mut sleep = backoff.min(deadline - now);
                    if let Some(pttl) = pttl {
                        // Never sleep past the holder's expiry.
                        sleep = sleep.min(pttl + Duration::from_millis(1));
                    }
                    let heard = tokio::select! {
                        heard = wait_for_release(&mut listener, sleep) => heard,
                        // The next attempt is refused, and gives up.
                        () = self.registry().until_closed() => None,
                    };
                    match given(heard, options.fencing, sent, ttl) {
                        Some(fence) => {
                            // The lock holds our token: until the guard exists, `leftovers`
                            // releases it (the waiter's cancellation passes it on).
                            leftovers.in_flight = true;
                            progress.handoff = true;
                            self.meter().handed_off(primitive, key);
                            (fence, sent)
                        }
                        // Retry now: woken, timed out, or given the lock so long ago that its
                        // lease would be short (the next attempt finds it ours and counts the
                        // lease from there).
                        None => continue,
                    }
                }
            };
            // Until the guard exists, a failure (WAIT) or cancellation releases.
            let replicas = match options.replicas {
                Some((replicas, timeout)) => {
                    let wait = self.store().wait_replicas(replicas, timeout);
                    self.call(Op::WaitReplicas, key, wait).await?
                }
                None => None,
            };
            drop(in_line.take());
            let tally = self.meter().hold(primitive, key, start);
            let lease = Lease::new(start, ttl, self.traits().drift_factor, tally);
            let renewal = renewal.map(|(interval, max_hold)| Renewal {
                ttl,
                interval,
                hold_until: later(start, max_hold),
            });
            let held = Held {
                key: key.to_owned(),
                wire: wire.to_owned(),
                token: token.clone(),
                shape: shape.clone(),
                keys: keys.clone(),
            };
            // Refused if the client closed meanwhile: `leftovers` releases.
            let mut guard = LockGuard::new(Arc::clone(self), held, fence, lease, renewal)?;
            leftovers.settle();
            guard.set_replicas(replicas);
            return Ok(guard);
        }
    }

    /// The watchdog's interval and maximum hold, if renewal is on.
    fn renewal(
        &self,
        options: &AcquireOptions,
        mode: Mode,
        ttl: Duration,
    ) -> Result<Option<(Duration, Duration)>> {
        let on = options.auto_renew.unwrap_or(mode == Mode::WithLock);
        if !on {
            return Ok(None);
        }
        let interval = options.renew_interval.unwrap_or(ttl / 3);
        let validity = ttl.saturating_sub(drift(ttl, self.traits().drift_factor));
        if interval.is_zero() || interval >= validity {
            return Err(InvalidInput::Setting {
                name: "renew_interval",
                reason: "must be above zero and below the ttl minus its drift margin",
            }
            .into());
        }
        let max_hold = options.max_hold.unwrap_or(DEFAULT_MAX_HOLD);
        Ok(Some((interval, max_hold)))
    }
}

/// A permit count other than 1 for a lock that is not a semaphore.
fn permits_refused() -> LockError {
    InvalidInput::Setting {
        name: "permits",
        reason: "only a semaphore takes several permits",
    }
    .into()
}

/// `start + after`, or a century from `start` when that does not fit.
fn later(start: Instant, after: Duration) -> Instant {
    start.checked_add(after).unwrap_or_else(|| start + CENTURY)
}

/// What `with_lock` returns once the work is done and the guard's release answered: the work's
/// output, unless the lease did not hold all along. A release that failed on the backend
/// changes nothing (the work finished under the lease; the lock expires on its own).
pub(crate) fn after_work<T>(key: &str, output: T, released: Result<()>) -> Result<T> {
    match released {
        Ok(()) => Ok(output),
        Err(err @ (LockError::Lost { .. } | LockError::NotOwner { .. })) => Err(err),
        Err(err) => {
            tracing::warn!(key = ?key, error = %err, "release after work failed");
            Ok(output)
        }
    }
}

/// Sleeps for `sleep`, or until the listener hears something for this waiter.
async fn wait_for_release(listener: &mut Option<Listener>, sleep: Duration) -> Option<Wake> {
    match listener {
        Some(listener) => tokio::time::timeout(sleep, listener.next()).await.ok(),
        None => {
            tokio::time::sleep(sleep).await;
            None
        }
    }
}

/// The fencing token of a lock given to this waiter, if what it heard is such a grant and the
/// lease, counted from `sent` (its last attempt, answered before the grant), still has at least
/// half its `ttl` to run; a waiter that asked for a fencing token must have been given one.
fn given(heard: Option<Wake>, fencing: bool, sent: Instant, ttl: Duration) -> Option<Option<u64>> {
    match heard {
        Some(Wake::Granted { fence }) if fence.is_some() == fencing && sent.elapsed() < ttl / 2 => {
            Some(fence)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_fresh_grant_with_the_fence_asked_for_is_taken_as_is() {
        let ttl = Duration::from_secs(10);
        let now = Instant::now();
        let granted = |fence| Some(Wake::Granted { fence });
        assert_eq!(given(granted(None), false, now, ttl), Some(None));
        assert_eq!(given(granted(Some(9)), true, now, ttl), Some(Some(9)));
        // Asked for a fencing token and got none (or the reverse): confirm with an attempt.
        assert_eq!(given(granted(None), true, now, ttl), None);
        assert_eq!(given(granted(Some(9)), false, now, ttl), None);
        // Too old: confirm with an attempt, which counts the lease anew.
        let long_ago = now.checked_sub(Duration::from_secs(6)).unwrap_or(now);
        if long_ago < now {
            assert_eq!(given(granted(None), false, long_ago, ttl), None);
        }
        assert_eq!(given(Some(Wake::Retry), false, now, ttl), None);
        assert_eq!(given(None, false, now, ttl), None);
    }

    #[test]
    fn output_survives_a_failed_release_but_not_a_lost_lease() {
        let lost = LockError::Lost {
            key: "k".into(),
            reason: crate::error::LossReason::Deleted,
        };
        assert!(after_work("k", 7, Err(lost)).is_err());
        let down = LockError::Unavailable {
            reason: crate::error::UnavailableReason::Refused,
            source: None,
        };
        assert_eq!(after_work("k", 7, Err(down)).unwrap(), 7);
        assert_eq!(after_work("k", 7, Ok(())).unwrap(), 7);
    }
}
