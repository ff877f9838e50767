//! The tracing spans: one per acquire, renew, extend and release, with the key, the primitive,
//! the outcome, the wait and the attempts as fields, the attempt events inside them, and never
//! a token or a password. Read with a capturing layer on a `tracing-subscriber` registry, set
//! as the default of each test's thread (the tests' runtimes are current-thread, so every task
//! of a test runs there).

mod support;

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ac_redislock::{AcquireOptions, LockError, RedisLock, ReleaseParams};
use support::{Backend, Fixture, server, unique_key};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

on_every_store!(
    acquire_extend_release_and_renew_are_spans_with_their_outcome,
    a_wait_is_one_span_with_its_attempts_and_its_end,
    the_seed_api_has_the_same_spans,
    a_batch_is_one_span_with_its_calls_events_and_no_token,
);

/// A span as the layer saw it: its name, its fields as recorded (last value wins), and the
/// messages of the events inside it.
#[derive(Debug, Clone, Default)]
struct Seen {
    name: &'static str,
    fields: BTreeMap<String, String>,
    events: Vec<String>,
}

#[derive(Clone, Default)]
struct Capture {
    spans: Arc<Mutex<Vec<(Id, Seen)>>>,
    /// Every field of every span and event, as text, for the leak checks.
    text: Arc<Mutex<String>>,
}

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Capture {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, _ctx: Context<'_, S>) {
        let mut seen = Seen {
            name: attrs.metadata().name(),
            ..Seen::default()
        };
        attrs.record(&mut Fields(&mut seen.fields));
        self.text.lock().unwrap().push_str(&format!("{seen:?}"));
        self.spans.lock().unwrap().push((id.clone(), seen));
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, _ctx: Context<'_, S>) {
        let mut spans = self.spans.lock().unwrap();
        if let Some((_, seen)) = spans.iter_mut().rev().find(|(sid, _)| sid == id) {
            values.record(&mut Fields(&mut seen.fields));
            self.text
                .lock()
                .unwrap()
                .push_str(&format!("{:?}", seen.fields));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut fields = BTreeMap::new();
        event.record(&mut Fields(&mut fields));
        self.text.lock().unwrap().push_str(&format!("{fields:?}"));
        let message = fields.get("message").cloned().unwrap_or_default();
        if let Some(span) = ctx.event_span(event) {
            let id = span.id();
            let mut spans = self.spans.lock().unwrap();
            if let Some((_, seen)) = spans.iter_mut().rev().find(|(sid, _)| *sid == id) {
                seen.events.push(message);
            }
        }
    }
}

impl Capture {
    /// Starts capturing on this thread until the returned guard drops.
    fn start() -> (Self, tracing::subscriber::DefaultGuard) {
        let capture = Self::default();
        let subscriber = tracing_subscriber::registry().with(capture.clone());
        let guard = tracing::subscriber::set_default(subscriber);
        (capture, guard)
    }

    /// The spans named `name` whose `key` field is `key`, in order of creation.
    fn spans(&self, name: &str, key: &str) -> Vec<Seen> {
        self.spans
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, seen)| {
                seen.name == name && seen.fields.get("key").map(String::as_str) == Some(key)
            })
            .map(|(_, seen)| seen.clone())
            .collect()
    }

    fn assert_never_contains(&self, secret: &str) {
        let text = self.text.lock().unwrap();
        assert!(!text.is_empty());
        assert!(!text.contains(secret), "a span or event carries {secret:?}");
    }
}

fn field<'a>(seen: &'a Seen, name: &str) -> &'a str {
    seen.fields
        .get(name)
        .map(String::as_str)
        .unwrap_or_else(|| panic!("no field {name} in {seen:?}"))
}

async fn acquire_extend_release_and_renew_are_spans_with_their_outcome(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let (capture, _on) = Capture::start();
    let key = unique_key("spans");
    let options = AcquireOptions::new()
        .ttl(Duration::from_millis(600))
        .auto_renew(true)
        .renew_interval(Duration::from_millis(100))
        .fencing(true);
    let guard = fx.locks.try_acquire_with(&key, options).await.unwrap();
    let token = guard.token().to_owned();
    // A second try finds it held.
    let err = fx.locks.try_acquire(&key).await.unwrap_err();
    assert!(matches!(err, LockError::Locked { .. }), "{err:?}");
    tokio::time::sleep(Duration::from_millis(350)).await;
    guard.extend(Duration::from_secs(1)).await.unwrap();
    guard.release().await.unwrap();

    let acquires = capture.spans("lock.acquire", &key);
    assert_eq!(acquires.len(), 2, "{acquires:#?}");
    let granted = &acquires[0];
    assert_eq!(field(granted, "primitive"), "lock");
    assert_eq!(field(granted, "mode"), "try");
    assert_eq!(field(granted, "outcome"), "granted");
    assert_eq!(field(granted, "attempts"), "1");
    assert_eq!(field(granted, "handoff"), "false");
    assert_eq!(
        field(granted, "fencing_token"),
        guard_fence(&fx, &key).await.to_string()
    );
    let wait: f64 = field(granted, "wait_ms").parse().unwrap();
    assert!((0.0..3_000.0).contains(&wait), "{wait}");
    assert!(
        granted.events.iter().any(|e| e == "lock attempt"),
        "the attempt event is inside the span: {granted:?}"
    );
    assert_eq!(field(&acquires[1], "outcome"), "locked");
    assert!(!acquires[1].fields.contains_key("fencing_token"));

    let renewals = capture.spans("lock.renew", &key);
    assert!(
        (2..=5).contains(&renewals.len()),
        "one per 100 ms: {renewals:#?}"
    );
    assert!(renewals.iter().all(|r| field(r, "outcome") == "ok"));
    let extends = capture.spans("lock.extend", &key);
    assert_eq!(extends.len(), 1);
    assert_eq!(field(&extends[0], "outcome"), "ok");
    let releases = capture.spans("lock.release", &key);
    assert_eq!(releases.len(), 1);
    assert_eq!(field(&releases[0], "outcome"), "ok");
    assert_eq!(field(&releases[0], "primitive"), "lock");
    capture.assert_never_contains(&token);

    // A release that finds the lock gone says so.
    let guard = fx.locks.try_acquire(&key).await.unwrap();
    fx.locks
        .release_lock(ReleaseParams::new(key.as_str()))
        .await
        .unwrap();
    assert!(guard.release().await.is_err());
    let releases = capture.spans("lock.release", &key);
    assert_eq!(field(releases.last().unwrap(), "outcome"), "lost");
}

/// The fencing counter of `key`, which the one grant with fencing drew.
async fn guard_fence(fx: &Fixture, key: &str) -> u64 {
    fx.locks.status(key).await.unwrap().fencing_counter.unwrap()
}

async fn a_wait_is_one_span_with_its_attempts_and_its_end(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let other = fx.other_client().await;
    let (capture, _on) = Capture::start();
    let key = unique_key("spans-wait");
    let held = other.try_acquire(&key).await.unwrap();
    let options = AcquireOptions::new().wait(Duration::from_millis(400));
    let err = fx.locks.acquire_with(&key, options).await.unwrap_err();
    assert!(matches!(err, LockError::Locked { .. }), "{err:?}");
    let waiting = {
        let locks = fx.locks.clone();
        let key = key.clone();
        tokio::spawn(async move {
            let options = AcquireOptions::new().wait(Duration::from_secs(5));
            locks.acquire_with(&key, options).await
        })
    };
    tokio::time::sleep(Duration::from_millis(150)).await;
    held.release().await.unwrap();
    waiting.await.unwrap().unwrap().release().await.unwrap();

    let acquires: Vec<Seen> = capture
        .spans("lock.acquire", &key)
        .into_iter()
        .filter(|s| field(s, "mode") == "wait")
        .collect();
    assert_eq!(acquires.len(), 2, "{acquires:#?}");
    let gave_up = &acquires[0];
    assert_eq!(field(gave_up, "outcome"), "timed_out");
    let attempts: u32 = field(gave_up, "attempts").parse().unwrap();
    assert!(attempts >= 2, "tried again while waiting: {gave_up:?}");
    let wait: f64 = field(gave_up, "wait_ms").parse().unwrap();
    assert!((380.0..3_000.0).contains(&wait), "{wait}");
    let woken = &acquires[1];
    assert_eq!(field(woken, "outcome"), "granted");
    if backend == Backend::Redis {
        // Given by the release: no attempt after it.
        assert_eq!(field(woken, "handoff"), "true", "{woken:?}");
    }
}

async fn the_seed_api_has_the_same_spans(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let (capture, _on) = Capture::start();
    let key = unique_key("spans-seed");
    let value = support::seed_round(&fx.locks, &key).await;
    let acquires = capture.spans("lock.acquire", &key);
    assert_eq!(acquires.len(), 2);
    assert_eq!(field(&acquires[0], "mode"), "lock_key");
    assert_eq!(field(&acquires[0], "outcome"), "granted");
    assert_eq!(field(&acquires[1], "outcome"), "locked");
    let releases = capture.spans("lock.release", &key);
    assert_eq!(releases.len(), 1);
    assert_eq!(field(&releases[0], "outcome"), "ok");
    capture.assert_never_contains(&value);
}

async fn a_batch_is_one_span_with_its_calls_events_and_no_token(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let (capture, _on) = Capture::start();
    let key = unique_key("spans-batch");
    let results = fx
        .locks
        .batch([
            ac_redislock::BatchCall::Lock(ac_redislock::LockParams::new(&key)),
            ac_redislock::BatchCall::Lock(ac_redislock::LockParams::new(&key)),
            ac_redislock::BatchCall::Get(key.clone()),
        ])
        .await;
    let Ok(ac_redislock::BatchOutput::Lock(token)) = &results[0] else {
        panic!("{results:?}");
    };
    let batches: Vec<Seen> = capture
        .spans
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, seen)| seen.name == "lock.batch")
        .map(|(_, seen)| seen.clone())
        .collect();
    assert_eq!(batches.len(), 1, "{batches:?}");
    assert_eq!(field(&batches[0], "calls"), "3");
    // Each lock call's attempt is logged inside it, as `lock_key`'s is inside its span.
    let attempts = batches[0]
        .events
        .iter()
        .filter(|message| message.as_str() == "lock attempt")
        .count();
    assert_eq!(attempts, 2, "{batches:?}");
    capture.assert_never_contains(token);
}

/// A client whose server is not there: the span ends in `error`, with the error, and nothing
/// it records carries the password of the URL.
#[tokio::test]
async fn a_refused_acquire_is_an_error_span_without_the_password() {
    let port = server::free_port().unwrap();
    let locks = RedisLock::from_url(&format!(
        "redis://user:span-secret-password@127.0.0.1:{port}/"
    ))
    .unwrap();
    let (capture, _on) = Capture::start();
    let key = unique_key("spans-refused");
    let err = locks.try_acquire(&key).await.unwrap_err();
    assert!(err.is_backend(), "{err:?}");
    let acquires = capture.spans("lock.acquire", &key);
    assert_eq!(acquires.len(), 1);
    assert_eq!(field(&acquires[0], "outcome"), "error");
    assert!(!field(&acquires[0], "error").is_empty());
    capture.assert_never_contains("span-secret-password");
}
