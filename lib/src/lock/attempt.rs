//! The one path every lock attempt takes, from `lock_key` and from the guard API alike: send
//! the request, log the attempt, map the answer, and leave the cleanup armed while the lock may
//! hold our token.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tracing::Instrument;
use tracing::field::Empty;

use super::cleanup::Leftovers;
use super::meter::{Acquired, Primitive};
use super::token::new_token;
use super::{Core, Op, outcome_unknown};
use crate::error::{LockError, Result};
use crate::report::event_at;
use crate::store::{Acquire, AcquireRequest, Expiry, Shape};

/// How an attempt that got an answer ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The lock is ours; `sent` is when the request left, the start of the lease.
    Granted { fence: Option<u64>, sent: Instant },
    /// Someone holds it; `pttl` is the holder's time left when known.
    Held { pttl: Option<Duration> },
}

impl Core {
    /// Makes one lock attempt for `key` (as the caller gave it; `req.key` is the wire key).
    ///
    /// Each attempt is logged at the instance's level with the key, the expiry and the outcome
    /// (never the token). `leftovers` stays armed for the lock while it may hold our token:
    /// granted (until the caller settles it) or no answer (timed out, connection lost, or this
    /// future dropped); a grant also ends the waiter registration.
    pub(crate) async fn attempt(
        &self,
        key: &str,
        req: AcquireRequest<'_>,
        leftovers: &mut Leftovers<'_>,
    ) -> Result<Outcome> {
        let registered_before = leftovers.registered;
        leftovers.in_flight = true;
        leftovers.registered |= req.waiter.is_some();
        let sent = Instant::now();
        let answer = self.call(Op::Attempt, key, self.store.acquire(req)).await;
        self.answered(key, &req, sent, answer, registered_before, leftovers)
    }

    /// Reads the answer to the attempt `req` sent at `sent` (alone, or in a batch), logs it and
    /// leaves `leftovers` armed while the lock may hold our token. `registered_before`: the
    /// waiter was registered before this attempt.
    pub(crate) fn answered(
        &self,
        key: &str,
        req: &AcquireRequest<'_>,
        sent: Instant,
        answer: Result<Acquire>,
        registered_before: bool,
        leftovers: &mut Leftovers<'_>,
    ) -> Result<Outcome> {
        let level = self.config.log_level;
        let expires = req.expiry.as_duration();
        let primitive = Primitive::of(req.shape);
        let (outcome, result) = match answer {
            Ok(Acquire::Granted { fence }) => {
                // The script takes a granted waiter off the queue.
                leftovers.registered = false;
                ("acquired", Ok(Outcome::Granted { fence, sent }))
            }
            Ok(Acquire::Held { pttl }) => {
                leftovers.in_flight = false;
                self.meter.contended(primitive, key);
                ("locked", Ok(Outcome::Held { pttl }))
            }
            Ok(Acquire::WrongType(found)) => {
                leftovers.in_flight = false;
                tracing::error!(key = ?key, found = %found, "lock key holds a non-string value");
                let key = key.to_owned();
                ("wrong type", Err(LockError::WrongType { key, found }))
            }
            Err(err) => {
                // Refused, or answered with an error: nothing was taken or registered.
                let unknown = outcome_unknown(&err);
                leftovers.in_flight = unknown;
                leftovers.registered = registered_before || unknown;
                ("error", Err(err))
            }
        };
        event_at!(level, key = ?key, ?expires, outcome, "lock attempt");
        result
    }

    /// Locks `key` for `expires` with `value` (or a fresh token) if no one holds it: the seed
    /// API's `lock_key`, one attempt with the Node original's command. Returns the value.
    /// A `lock.acquire` span, counted in the metrics as a try of a lock.
    pub(crate) async fn lock_key(
        self: &Arc<Self>,
        key: String,
        expires: Duration,
        value: Option<String>,
    ) -> Result<String> {
        let span = tracing::info_span!(
            "lock.acquire",
            key = %key,
            primitive = Primitive::Lock.as_str(),
            mode = "lock_key",
            outcome = Empty,
            wait_ms = Empty,
            attempts = 1,
            error = Empty,
        );
        let began = Instant::now();
        let result = self
            .lock_key_in(&key, expires, value)
            .instrument(span.clone())
            .await;
        let outcome = Acquired::of(&result, false);
        let wait = began.elapsed();
        self.meter.acquired(Primitive::Lock, &key, outcome, wait);
        if !span.is_disabled() {
            span.record("outcome", outcome.as_str());
            span.record("wait_ms", wait.as_secs_f64() * 1e3);
            if let (Err(err), Acquired::Error) = (&result, outcome) {
                span.record("error", tracing::field::display(err));
            }
        }
        result
    }

    async fn lock_key_in(
        self: &Arc<Self>,
        key: &str,
        expires: Duration,
        value: Option<String>,
    ) -> Result<String> {
        let (wire, expiry, value, generated) = self.lock_input(key, expires, value)?;
        let request = AcquireRequest {
            key: &wire,
            shape: &Shape::Mutex,
            token: &value,
            expiry,
            waiter: None,
            fencing: false,
            holder: None,
            probe: false,
        };
        let within = expiry.as_duration();
        let mut leftovers =
            Leftovers::at(self, key, &wire, within).ours(generated.then_some(&*value));
        match self.attempt(key, request, &mut leftovers).await? {
            Outcome::Granted { .. } => {
                leftovers.settle();
                Ok(value)
            }
            Outcome::Held { .. } => Err(LockError::Locked {
                key: key.to_owned(),
            }),
        }
    }

    /// A `lock_key` call's input, checked before any I/O: the wire key, the expiry as sent, the
    /// value (the caller's, or a fresh token) and whether it was generated here.
    pub(crate) fn lock_input<'k>(
        &self,
        key: &'k str,
        expires: Duration,
        value: Option<String>,
    ) -> Result<(Cow<'k, str>, Expiry, String, bool)> {
        let wire = self.wire_key(key)?;
        let expiry = self.check_expires(expires)?;
        let (value, generated) = match value {
            Some(value) => {
                self.check_value(&value)?;
                (value, false)
            }
            None => (new_token()?, true),
        };
        Ok((wire, expiry, value, generated))
    }
}
