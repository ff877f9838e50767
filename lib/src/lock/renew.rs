//! The renewal watchdog: a task per renewed guard that extends the lease every interval, and
//! ends the lease (once) when a renewal shows it is gone or cannot be made in time.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tracing::Instrument;

use super::lease::{Held, Lease};
use super::{Core, Op, op_span};
use crate::error::LossReason;
use crate::store::{Owned, bounded};

/// After a failed renewal, try again this often (at most) until the deadline.
const RETRY_AFTER_ERROR: Duration = Duration::from_millis(100);

/// What the watchdog needs to renew a lease.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Renewal {
    pub(crate) ttl: Duration,
    pub(crate) interval: Duration,
    pub(crate) hold_until: Instant,
}

/// Renews the lease until the guard stops this task (release or drop), the lease ends, or
/// `hold_until` is reached (then the lease runs out and is reported as
/// [`LossReason::MaxHold`]).
pub(crate) async fn watchdog(
    core: Arc<Core>,
    held: Arc<Held>,
    lease: Arc<Lease>,
    renewal: Renewal,
) {
    let Held {
        key,
        wire,
        token,
        shape,
        ..
    } = &*held;
    let Renewal {
        ttl,
        interval,
        hold_until,
    } = renewal;
    let mut next = Instant::now() + interval;
    loop {
        tokio::time::sleep_until(next.min(lease.valid_until())).await;
        // Woke up too late (paused, starved) or renewals kept failing: the lease is gone,
        // reported as what the deadline was set to mean.
        if let Some(reason) = lease.ended() {
            if !matches!(reason, LossReason::Released | LossReason::Closed) {
                tracing::warn!(key = ?key, %reason, "lease lost");
            }
            return;
        }
        let now = Instant::now();
        if now < next {
            continue;
        }
        if now >= hold_until {
            // Stop renewing; the lease runs out at its deadline, reported as MaxHold.
            lease.at_deadline(LossReason::MaxHold);
            tracing::warn!(key = ?key, "maximum hold time reached; renewal stopped");
            return;
        }
        // No renewal may outlast the lease it renews.
        let budget = lease.valid_until().saturating_duration_since(now);
        let attempt = bounded(budget, core.store().extend(wire, token, ttl, shape));
        let span = op_span!("lock.renew", key, held.primitive());
        let outcome = core
            .call(Op::Renew, key, attempt)
            .instrument(span.clone())
            .await;
        let renewed = matches!(outcome, Ok(Owned::Done | Owned::Vanished));
        core.meter().renewed(held.primitive(), key, renewed);
        if !span.is_disabled() {
            let ended = match &outcome {
                Ok(Owned::Done | Owned::Vanished) => Ok(()),
                Ok(Owned::NotHeld) => Err("not_held"),
                Ok(Owned::NotOwner) => Err("not_owner"),
                Err(err) => {
                    span.record("error", tracing::field::display(err));
                    Err("error")
                }
            };
            span.record("outcome", ended.err().unwrap_or("ok"));
        }
        match outcome {
            // (`Vanished` answers a release, never an extend.)
            Ok(Owned::Done | Owned::Vanished) => {
                lease.renewed(now, ttl);
                next = now + interval;
            }
            Ok(Owned::NotHeld) => return report(&lease, key, LossReason::Deleted),
            Ok(Owned::NotOwner) => return report(&lease, key, LossReason::TakenOver),
            Err(_logged) => {
                // Tried again until the deadline.
                lease.at_deadline(LossReason::Unavailable);
                next = Instant::now() + RETRY_AFTER_ERROR.min(interval);
            }
        }
    }
}

fn report(lease: &Lease, key: &str, reason: LossReason) {
    if lease.end(reason) {
        tracing::warn!(key = ?key, %reason, "lease lost");
    }
}
