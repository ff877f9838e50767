//! The renewal watchdog: a task per renewed guard that extends the lease every interval, and
//! ends the lease (once) when a renewal shows it is gone or cannot be made in time.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::client::RedisLock;
use crate::guard::Renewal;
use crate::lease::{Lease, LossReason};
use crate::store::Owned;

/// After a failed renewal, try again this often (at most) until the deadline.
const RETRY_AFTER_ERROR: Duration = Duration::from_millis(100);

/// Renews the lease until the guard stops this task (release or drop), the lease ends, or
/// `hold_until` is reached (then the lease runs out and is reported as
/// [`LossReason::MaxHold`]).
pub(crate) async fn watchdog(
    locks: RedisLock,
    key: String,
    wire: String,
    token: String,
    lease: Arc<Lease>,
    renewal: Renewal,
) {
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
            if reason != LossReason::Released {
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
        let budget = locks
            .command_timeout()
            .min(lease.valid_until().saturating_duration_since(now));
        let attempt = locks.store().extend(&wire, &token, ttl);
        match tokio::time::timeout(budget, attempt).await {
            Ok(Ok(Owned::Done)) => {
                lease.renewed(now, ttl);
                next = now + interval;
            }
            Ok(Ok(Owned::NotHeld)) => {
                report(&lease, &key, LossReason::Deleted);
                return;
            }
            Ok(Ok(Owned::NotOwner)) => {
                report(&lease, &key, LossReason::TakenOver);
                return;
            }
            Ok(Err(err)) => {
                tracing::warn!(key = ?key, error = %err, "lease renewal failed; retrying");
                lease.at_deadline(LossReason::Unavailable);
                next = Instant::now() + RETRY_AFTER_ERROR.min(interval);
            }
            Err(_elapsed) => {
                tracing::warn!(key = ?key, "lease renewal timed out; retrying");
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
