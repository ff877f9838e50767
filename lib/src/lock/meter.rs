//! What the lock logic reports to the metrics facade ([`Meter`]), and the labels it uses.
//!
//! With the cargo feature `metrics` off, [`Meter`] holds nothing and its methods are empty:
//! nothing is compiled in. With it on, each series' handle is registered once per client, on
//! first use, and kept (an update is then an atomic add), unless the client labels series with
//! their key (`RedisLockBuilder::metrics_key_label`): those are registered at each update.

use std::time::Duration;

use crate::error::{LockError, LossReason};
use crate::store::Shape;

/// Which primitive a hold is: the `primitive` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Primitive {
    Lock,
    Semaphore,
    Read,
    Write,
    Multi,
}

impl Primitive {
    pub(crate) fn of(shape: &Shape) -> Self {
        match shape {
            Shape::Mutex => Self::Lock,
            Shape::Permits { .. } => Self::Semaphore,
            Shape::Read => Self::Read,
            Shape::Write => Self::Write,
            Shape::Multi { .. } => Self::Multi,
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Lock => "lock",
            Self::Semaphore => "semaphore",
            Self::Read => "read",
            Self::Write => "write",
            Self::Multi => "multi",
        }
    }
}

/// How an acquisition ended: the `outcome` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Acquired {
    Granted,
    /// A try found it held.
    Locked,
    /// A wait gave up.
    TimedOut,
    Error,
}

impl Acquired {
    /// The outcome of an acquisition that `waited` (or was one try) and ended with `result`.
    pub(crate) fn of<T>(result: &Result<T, LockError>, waited: bool) -> Self {
        match result {
            Ok(_) => Self::Granted,
            Err(LockError::Locked { .. }) if waited => Self::TimedOut,
            Err(LockError::Locked { .. }) => Self::Locked,
            Err(_) => Self::Error,
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Granted => "granted",
            Self::Locked => "locked",
            Self::TimedOut => "timed_out",
            Self::Error => "error",
        }
    }
}

/// Reports to the metrics facade; one per client, shared by its clones, guards and tasks.
#[derive(Debug, Default, Clone)]
pub(crate) struct Meter {
    #[cfg(feature = "metrics")]
    on: std::sync::Arc<on::Handles>,
}

/// An acquisition waiting for a release (the `redislock_waiters` gauge), until dropped.
#[derive(Debug)]
pub(crate) struct Waiting<'a> {
    #[cfg(feature = "metrics")]
    meter: &'a Meter,
    #[cfg(feature = "metrics")]
    primitive: Primitive,
    #[cfg(feature = "metrics")]
    key: &'a str,
    #[cfg(not(feature = "metrics"))]
    _key: std::marker::PhantomData<&'a str>,
}

impl Drop for Waiting<'_> {
    #[inline]
    fn drop(&mut self) {
        #[cfg(feature = "metrics")]
        self.meter.on.waiting(self.primitive, self.key, false);
    }
}

/// A hold's series, for its lease to report when it ends (once).
#[derive(Debug)]
pub(crate) struct HoldTally {
    #[cfg(feature = "metrics")]
    meter: Meter,
    #[cfg(feature = "metrics")]
    primitive: Primitive,
    /// The key, where series are labelled with it.
    #[cfg(feature = "metrics")]
    key: Option<String>,
    #[cfg(feature = "metrics")]
    began: tokio::time::Instant,
}

impl HoldTally {
    /// The lease ended for `reason`.
    #[inline]
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn ended(&self, reason: LossReason) {
        #[cfg(feature = "metrics")]
        self.meter.on.hold_ended(
            self.primitive,
            self.key.as_deref().unwrap_or_default(),
            self.began.elapsed(),
            reason,
        );
    }
}

impl Meter {
    /// A meter whose per-lock series carry a `key` label if `keys`.
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn new(keys: bool) -> Self {
        Self {
            #[cfg(feature = "metrics")]
            on: std::sync::Arc::new(on::Handles::new(keys)),
        }
    }

    /// A guard began to hold, its lease counted from `began`: counted now, and its tally for
    /// when its lease ends.
    #[inline]
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn hold(&self, p: Primitive, key: &str, began: tokio::time::Instant) -> HoldTally {
        #[cfg(feature = "metrics")]
        self.on.hold_began(p, key);
        HoldTally {
            #[cfg(feature = "metrics")]
            meter: self.clone(),
            #[cfg(feature = "metrics")]
            primitive: p,
            #[cfg(feature = "metrics")]
            key: self.on.keys.then(|| key.to_owned()),
            #[cfg(feature = "metrics")]
            began,
        }
    }

    /// An acquisition ended after `wait`.
    #[inline]
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn acquired(&self, p: Primitive, key: &str, outcome: Acquired, wait: Duration) {
        #[cfg(feature = "metrics")]
        self.on.acquired(p, key, outcome, wait);
    }

    /// An attempt found the lock held.
    #[inline]
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn contended(&self, p: Primitive, key: &str) {
        #[cfg(feature = "metrics")]
        self.on.contended(p, key);
    }

    /// A waiter was given the lock by a release.
    #[inline]
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn handed_off(&self, p: Primitive, key: &str) {
        #[cfg(feature = "metrics")]
        self.on.handed_off(p, key);
    }

    /// A lease extension succeeded (`ok`) or failed.
    #[inline]
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn renewed(&self, p: Primitive, key: &str, ok: bool) {
        #[cfg(feature = "metrics")]
        self.on.renewed(p, key, ok);
    }

    /// An acquisition began to wait for a release; it stops when the value is dropped.
    #[inline]
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn begin_wait<'a>(&'a self, p: Primitive, key: &'a str) -> Waiting<'a> {
        #[cfg(feature = "metrics")]
        self.on.waiting(p, key, true);
        Waiting {
            #[cfg(feature = "metrics")]
            meter: self,
            #[cfg(feature = "metrics")]
            primitive: p,
            #[cfg(feature = "metrics")]
            key,
            #[cfg(not(feature = "metrics"))]
            _key: std::marker::PhantomData,
        }
    }

    /// A call failed; counted if the backend failed it.
    #[inline]
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn failed(&self, key: &str, err: &LockError) {
        #[cfg(feature = "metrics")]
        self.on.failed(key, err);
    }
}

#[cfg(feature = "metrics")]
mod on {
    use std::sync::OnceLock;
    use std::time::Duration;

    use metrics::{Counter, Gauge, Histogram, Label};

    use crate::error::{LockError, LossReason, UnavailableReason};
    use crate::lock::meter::{Acquired, Primitive};
    use crate::lock::metrics::{
        ACQUIRE_WAIT, ACQUISITIONS, BACKEND_ERRORS, CONTENDED, HANDOFFS, HOLD, HOLDS, LEASES_LOST,
        RENEWAL_FAILURES, RENEWALS, WAITERS,
    };

    const PRIMITIVES: usize = 5;
    const OUTCOMES: usize = 4;
    const REASONS: usize = 5;
    const KINDS: usize = 9;

    type Cells<T, const N: usize> = [OnceLock<T>; N];

    /// The `reason` label of a lost lease; `None` for the ends that are no loss.
    fn loss_label(reason: LossReason) -> Option<&'static str> {
        match reason {
            LossReason::Expired => Some("expired"),
            LossReason::Deleted => Some("deleted"),
            LossReason::TakenOver => Some("taken_over"),
            LossReason::Unavailable => Some("unavailable"),
            LossReason::MaxHold => Some("max_hold"),
            LossReason::Released | LossReason::Closed => None,
        }
    }

    /// The `kind` label of a backend error; `None` for an error that is not the backend's.
    fn backend_label(err: &LockError) -> Option<&'static str> {
        Some(match err {
            LockError::Unavailable { reason, .. } => match reason {
                UnavailableReason::Timeout(_) => "timeout",
                UnavailableReason::Refused => "refused",
                UnavailableReason::Disconnected => "disconnected",
                UnavailableReason::NotReady => "not_ready",
                UnavailableReason::Shutdown => "shutdown",
                UnavailableReason::Tls => "tls",
            },
            LockError::QuorumNotReached { .. } => "quorum",
            LockError::Redis(_) => "redis",
            LockError::NotClosed(_) => "not_closed",
            _ => return None,
        })
    }

    /// The handles of one client's series, registered on first use (all but those with a
    /// `key` label, which are registered at each update).
    #[derive(Debug, Default)]
    pub(crate) struct Handles {
        pub(crate) keys: bool,
        acquisitions: [Cells<Counter, OUTCOMES>; PRIMITIVES],
        waits: [Cells<Histogram, OUTCOMES>; PRIMITIVES],
        holds_for: Cells<Histogram, PRIMITIVES>,
        contended: Cells<Counter, PRIMITIVES>,
        handoffs: Cells<Counter, PRIMITIVES>,
        renewals: Cells<Counter, PRIMITIVES>,
        renewal_failures: Cells<Counter, PRIMITIVES>,
        lost: [Cells<Counter, REASONS>; PRIMITIVES],
        backend: Cells<Counter, KINDS>,
        holds: Cells<Gauge, PRIMITIVES>,
        waiters: Cells<Gauge, PRIMITIVES>,
    }

    /// The labels of a series: static pairs, and the key where the client asked for it.
    fn labels(pairs: &[(&'static str, &'static str)], key: Option<&str>) -> Vec<Label> {
        let mut labels: Vec<Label> = pairs
            .iter()
            .map(|&(name, value)| Label::from_static_parts(name, value))
            .collect();
        if let Some(key) = key {
            labels.push(Label::new("key", key.to_owned()));
        }
        labels
    }

    fn primitive(p: Primitive) -> (usize, [(&'static str, &'static str); 1]) {
        (p as usize, [("primitive", p.as_str())])
    }

    fn reason_index(label: &str) -> usize {
        match label {
            "expired" => 0,
            "deleted" => 1,
            "taken_over" => 2,
            "unavailable" => 3,
            _ => 4,
        }
    }

    fn kind_index(label: &str) -> usize {
        match label {
            "timeout" => 0,
            "refused" => 1,
            "disconnected" => 2,
            "not_ready" => 3,
            "shutdown" => 4,
            "tls" => 5,
            "quorum" => 6,
            "redis" => 7,
            _ => 8,
        }
    }

    /// Runs `update` on the series `name` with `pairs` (plus the key, if labelled by key):
    /// the handle kept in `cell`, or, with a key label, one registered now.
    macro_rules! with {
        ($self:ident, $kind:ident, $cell:expr, $name:expr, $pairs:expr, $key:expr, |$h:ident| $update:expr) => {{
            if $self.keys {
                let $h = metrics::$kind!($name, labels(&$pairs, Some($key)));
                $update;
            } else {
                let $h = $cell.get_or_init(|| metrics::$kind!($name, labels(&$pairs, None)));
                $update;
            }
        }};
    }

    impl Handles {
        pub(crate) fn new(keys: bool) -> Self {
            Self {
                keys,
                ..Self::default()
            }
        }

        pub(crate) fn acquired(&self, p: Primitive, key: &str, outcome: Acquired, wait: Duration) {
            let pairs = [("primitive", p.as_str()), ("outcome", outcome.as_str())];
            let (p, o) = (p as usize, outcome as usize);
            with!(
                self,
                counter,
                self.acquisitions[p][o],
                ACQUISITIONS,
                pairs,
                key,
                |h| h.increment(1)
            );
            with!(
                self,
                histogram,
                self.waits[p][o],
                ACQUIRE_WAIT,
                pairs,
                key,
                |h| h.record(wait)
            );
        }

        pub(crate) fn contended(&self, p: Primitive, key: &str) {
            let (i, pairs) = primitive(p);
            with!(
                self,
                counter,
                self.contended[i],
                CONTENDED,
                pairs,
                key,
                |h| h.increment(1)
            );
        }

        pub(crate) fn handed_off(&self, p: Primitive, key: &str) {
            let (i, pairs) = primitive(p);
            with!(self, counter, self.handoffs[i], HANDOFFS, pairs, key, |h| h
                .increment(1));
        }

        pub(crate) fn renewed(&self, p: Primitive, key: &str, ok: bool) {
            let (i, pairs) = primitive(p);
            if ok {
                with!(self, counter, self.renewals[i], RENEWALS, pairs, key, |h| h
                    .increment(1));
            } else {
                with!(
                    self,
                    counter,
                    self.renewal_failures[i],
                    RENEWAL_FAILURES,
                    pairs,
                    key,
                    |h| h.increment(1)
                );
            }
        }

        pub(crate) fn hold_began(&self, p: Primitive, key: &str) {
            let (i, pairs) = primitive(p);
            with!(self, gauge, self.holds[i], HOLDS, pairs, key, |h| h
                .increment(1.0));
        }

        pub(crate) fn hold_ended(
            &self,
            p: Primitive,
            key: &str,
            held: Duration,
            reason: LossReason,
        ) {
            let (i, pairs) = primitive(p);
            with!(self, gauge, self.holds[i], HOLDS, pairs, key, |h| h
                .decrement(1.0));
            with!(self, histogram, self.holds_for[i], HOLD, pairs, key, |h| h
                .record(held));
            if let Some(reason) = loss_label(reason) {
                let pairs = [("primitive", p.as_str()), ("reason", reason)];
                let r = reason_index(reason);
                with!(
                    self,
                    counter,
                    self.lost[i][r],
                    LEASES_LOST,
                    pairs,
                    key,
                    |h| h.increment(1)
                );
            }
        }

        pub(crate) fn waiting(&self, p: Primitive, key: &str, began: bool) {
            let (i, pairs) = primitive(p);
            let delta = if began { 1.0 } else { -1.0 };
            with!(self, gauge, self.waiters[i], WAITERS, pairs, key, |h| h
                .increment(delta));
        }

        pub(crate) fn failed(&self, key: &str, err: &LockError) {
            let Some(kind) = backend_label(err) else {
                return;
            };
            let pairs = [("kind", kind)];
            with!(
                self,
                counter,
                self.backend[kind_index(kind)],
                BACKEND_ERRORS,
                pairs,
                key,
                |h| h.increment(1)
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Without the feature, a client carries nothing for metrics and reports nothing.
    #[test]
    #[cfg(not(feature = "metrics"))]
    fn without_the_feature_the_meter_is_nothing() {
        assert_eq!(size_of::<Meter>(), 0);
        assert_eq!(size_of::<HoldTally>(), 0);
        assert_eq!(size_of::<Waiting<'_>>(), 0);
    }

    #[test]
    fn a_wait_that_ends_locked_timed_out_only_if_it_waited() {
        let locked: Result<(), LockError> = Err(LockError::Locked { key: "k".into() });
        assert_eq!(Acquired::of(&locked, false), Acquired::Locked);
        assert_eq!(Acquired::of(&locked, true), Acquired::TimedOut);
        assert_eq!(
            Acquired::of(&Ok::<(), LockError>(()), true),
            Acquired::Granted
        );
        let down: Result<(), LockError> = Err(LockError::Unavailable {
            reason: crate::error::UnavailableReason::Refused,
            source: None,
        });
        assert_eq!(Acquired::of(&down, true), Acquired::Error);
    }
}
