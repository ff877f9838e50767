//! The metrics (feature `metrics`): each counts what it claims, on every store, read from a
//! real recorder of the `metrics` facade; and the Prometheus example serves figures that move
//! while its workers contend.
//!
//! The tests of this binary share one global recorder: each client labels its series with the
//! key (`metrics_key_label`), and each test reads only its own keys' series.

mod support;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use ac_redislock::metrics as names;
use ac_redislock::{AcquireOptions, LockError, LossReason, RedisLock, ReleaseParams};
use metrics_util::MetricKind;
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use support::{Backend, Fixture, Listen, RedisServer, server, unique_key};

on_every_store!(
    ten_grants_and_five_refusals_are_counted_exactly,
    a_wait_that_gives_up_is_timed_out_and_counted_as_waiting_meanwhile,
    extends_count_as_renewals_and_a_deleted_lock_as_a_failure_and_a_loss,
    every_way_to_lose_a_lease_is_counted_with_its_reason,
    semaphores_read_write_locks_and_several_keys_have_their_own_primitive,
);

/// What the recorder has seen, summed over its snapshots (a snapshot empties the recorder's
/// counters and gauges, so every read goes through here).
#[derive(Default)]
struct Totals {
    counters: HashMap<Series, u64>,
    gauges: HashMap<Series, f64>,
    histograms: HashMap<Series, Vec<f64>>,
}

type Series = (String, Vec<(String, String)>);

fn totals() -> &'static Mutex<(Snapshotter, Totals)> {
    static TOTALS: OnceLock<Mutex<(Snapshotter, Totals)>> = OnceLock::new();
    TOTALS.get_or_init(|| {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        recorder
            .install()
            .unwrap_or_else(|_| panic!("a recorder was installed before this one"));
        names::describe();
        Mutex::new((snapshotter, Totals::default()))
    })
}

/// The series `name` whose labels include `labels` (the key among them), summed over its
/// other labels.
fn read<T>(name: &str, labels: &[(&str, &str)], pick: impl Fn(&Totals, &Series) -> T) -> Vec<T> {
    let mut guard = totals().lock().unwrap_or_else(|p| p.into_inner());
    let (snapshotter, totals) = &mut *guard;
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let (kind, key) = key.into_parts();
        let labels = key
            .labels()
            .map(|l| (l.key().to_owned(), l.value().to_owned()))
            .collect();
        let series = (key.name().to_owned(), labels);
        match (kind, value) {
            (MetricKind::Counter, DebugValue::Counter(n)) => {
                *totals.counters.entry(series).or_default() += n;
            }
            (MetricKind::Gauge, DebugValue::Gauge(v)) => {
                *totals.gauges.entry(series).or_default() += v.into_inner();
            }
            (MetricKind::Histogram, DebugValue::Histogram(values)) => totals
                .histograms
                .entry(series)
                .or_default()
                .extend(values.into_iter().map(|v| v.into_inner())),
            _ => {}
        }
    }
    let all: Vec<&Series> = totals
        .counters
        .keys()
        .chain(totals.gauges.keys())
        .chain(totals.histograms.keys())
        .collect();
    all.into_iter()
        .filter(|(n, series_labels)| {
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| series_labels.iter().any(|(sk, sv)| sk == k && sv == v))
        })
        .map(|series| pick(totals, series))
        .collect()
}

fn counter(name: &str, labels: &[(&str, &str)]) -> u64 {
    read(name, labels, |t, s| t.counters.get(s).copied().unwrap_or(0))
        .into_iter()
        .sum()
}

fn gauge(name: &str, labels: &[(&str, &str)]) -> f64 {
    read(name, labels, |t, s| t.gauges.get(s).copied().unwrap_or(0.0))
        .into_iter()
        .sum()
}

fn samples(name: &str, labels: &[(&str, &str)]) -> Vec<f64> {
    read(name, labels, |t, s| {
        t.histograms.get(s).cloned().unwrap_or_default()
    })
    .into_iter()
    .flatten()
    .collect()
}

/// A client on `backend` whose series carry their key, with the recorder installed first.
async fn fixture(backend: Backend) -> Fixture {
    totals();
    Fixture::with(backend, |builder| builder.metrics_key_label(true)).await
}

fn short(ms: u64) -> AcquireOptions {
    AcquireOptions::new().ttl(Duration::from_millis(ms))
}

async fn ten_grants_and_five_refusals_are_counted_exactly(backend: Backend) {
    let fx = fixture(backend).await;
    let key = unique_key("metrics-counts");
    let k = ("key", key.as_str());
    for _ in 0..10 {
        let guard = fx.locks.try_acquire(&key).await.unwrap();
        assert_eq!(gauge(names::HOLDS, &[k, ("primitive", "lock")]), 1.0);
        guard.release().await.unwrap();
    }
    // Another client (not labelled by key) holds it; five tries find it held.
    let other = fx.other_client().await;
    let held = other.try_acquire(&key).await.unwrap();
    for _ in 0..5 {
        let err = fx.locks.try_acquire(&key).await.unwrap_err();
        assert!(matches!(err, LockError::Locked { .. }), "{err:?}");
    }
    held.release().await.unwrap();

    let lock = ("primitive", "lock");
    // In memory the other client is a clone of this one, so its grant is counted here too.
    let others = u64::from(backend == Backend::Memory);
    assert_eq!(
        counter(names::ACQUISITIONS, &[k, lock, ("outcome", "granted")]),
        10 + others
    );
    assert_eq!(
        counter(names::ACQUISITIONS, &[k, lock, ("outcome", "locked")]),
        5
    );
    assert_eq!(
        counter(names::ACQUISITIONS, &[k, ("outcome", "timed_out")]),
        0
    );
    assert_eq!(counter(names::ACQUISITIONS, &[k, ("outcome", "error")]), 0);
    assert_eq!(counter(names::CONTENDED, &[k, lock]), 5);
    let waits = samples(names::ACQUIRE_WAIT, &[k, lock]);
    assert_eq!(
        waits.len() as u64,
        15 + others,
        "one per acquisition: {waits:?}"
    );
    assert!(
        waits.iter().all(|w| *w >= 0.0 && *w < 3.0),
        "waits in seconds: {waits:?}"
    );
    let holds = samples(names::HOLD, &[k, lock]);
    assert_eq!(holds.len() as u64, 10 + others, "one per grant: {holds:?}");
    assert_eq!(gauge(names::HOLDS, &[k, lock]), 0.0, "all released");
    assert_eq!(counter(names::LEASES_LOST, &[k]), 0, "no lease was lost");
    assert_eq!(counter(names::HANDOFFS, &[k]), 0);

    // The seed API counts as tries of a lock.
    support::seed_round(&fx.locks, &key).await;
    assert_eq!(
        counter(names::ACQUISITIONS, &[k, lock, ("outcome", "granted")]),
        11 + others
    );
    assert_eq!(
        counter(names::ACQUISITIONS, &[k, lock, ("outcome", "locked")]),
        6
    );

    // A batch counts each of its calls as its method would: one grant, two tries found held,
    // one contended attempt each.
    let results = fx
        .locks
        .batch([
            ac_redislock::BatchCall::Lock(ac_redislock::LockParams::new(&key)),
            ac_redislock::BatchCall::Lock(ac_redislock::LockParams::new(&key)),
            ac_redislock::BatchCall::Lock(ac_redislock::LockParams::new(&key)),
        ])
        .await;
    let Ok(ac_redislock::BatchOutput::Lock(token)) = &results[0] else {
        panic!("{results:?}");
    };
    fx.locks
        .release_lock(ReleaseParams::new(&key).value(token))
        .await
        .unwrap();
    assert_eq!(
        counter(names::ACQUISITIONS, &[k, lock, ("outcome", "granted")]),
        12 + others
    );
    assert_eq!(
        counter(names::ACQUISITIONS, &[k, lock, ("outcome", "locked")]),
        8
    );
    assert_eq!(counter(names::CONTENDED, &[k, lock]), 8);
}

async fn a_wait_that_gives_up_is_timed_out_and_counted_as_waiting_meanwhile(backend: Backend) {
    let fx = fixture(backend).await;
    let key = unique_key("metrics-wait");
    let k = ("key", key.as_str());
    let other = fx.other_client().await;
    let held = other.try_acquire(&key).await.unwrap();
    let waiting = {
        let locks = fx.locks.clone();
        let key = key.clone();
        tokio::spawn(async move {
            let options = AcquireOptions::new().wait(Duration::from_millis(600));
            locks.acquire_with(&key, options).await
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(gauge(names::WAITERS, &[k, ("primitive", "lock")]), 1.0);
    let err = waiting.await.unwrap().unwrap_err();
    assert!(matches!(err, LockError::Locked { .. }), "{err:?}");
    assert_eq!(gauge(names::WAITERS, &[k]), 0.0);
    assert_eq!(
        counter(names::ACQUISITIONS, &[k, ("outcome", "timed_out")]),
        1
    );
    let waits = samples(names::ACQUIRE_WAIT, &[k, ("outcome", "timed_out")]);
    assert_eq!(waits.len(), 1);
    assert!(
        (0.55..3.0).contains(&waits[0]),
        "waited its 600 ms: {waits:?}"
    );
    assert!(counter(names::CONTENDED, &[k]) >= 1);

    // A waiter given the lock on release is a hand-off, and granted.
    let waiting = {
        let locks = fx.locks.clone();
        let key = key.clone();
        tokio::spawn(async move {
            let options = AcquireOptions::new().wait(Duration::from_secs(5));
            locks.acquire_with(&key, options).await
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    held.release().await.unwrap();
    let guard = waiting.await.unwrap().unwrap();
    // In memory the other client is a clone of this one: its grant is counted here too.
    let others = u64::from(backend == Backend::Memory);
    assert_eq!(
        counter(names::ACQUISITIONS, &[k, ("outcome", "granted")]),
        1 + others
    );
    let handoffs = counter(names::HANDOFFS, &[k, ("primitive", "lock")]);
    match backend {
        // Given by the release, with no attempt of its own.
        Backend::Redis => assert_eq!(handoffs, 1),
        // Woken to try again: no hand-off there.
        Backend::Memory => assert_eq!(handoffs, 0),
        // Given directly only when its subscriber sits on the key's node.
        Backend::Cluster => assert!(handoffs <= 1, "{handoffs}"),
    }
    guard.release().await.unwrap();
    assert_eq!(gauge(names::WAITERS, &[k]), 0.0);
}

async fn extends_count_as_renewals_and_a_deleted_lock_as_a_failure_and_a_loss(backend: Backend) {
    let fx = fixture(backend).await;
    let key = unique_key("metrics-renew");
    let k = ("key", key.as_str());
    let guard = fx.locks.try_acquire_with(&key, short(2_000)).await.unwrap();
    for _ in 0..3 {
        guard.extend(Duration::from_secs(2)).await.unwrap();
    }
    assert_eq!(counter(names::RENEWALS, &[k, ("primitive", "lock")]), 3);
    assert_eq!(counter(names::RENEWAL_FAILURES, &[k]), 0);
    // Force-released behind the holder's back.
    fx.locks
        .release_lock(ReleaseParams::new(key.as_str()))
        .await
        .unwrap();
    let err = guard.extend(Duration::from_secs(2)).await.unwrap_err();
    assert!(matches!(err, LockError::Lost { .. }), "{err:?}");
    assert_eq!(counter(names::RENEWAL_FAILURES, &[k]), 1);
    assert_eq!(counter(names::LEASES_LOST, &[k, ("reason", "deleted")]), 1);
    assert_eq!(gauge(names::HOLDS, &[k]), 0.0, "a lost lease is no hold");
    drop(guard);
    assert_eq!(counter(names::LEASES_LOST, &[k]), 1, "counted once");

    // The watchdog's renewals count too.
    let options = short(300).auto_renew(true);
    let guard = fx.locks.acquire_with(&key, options).await.unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;
    guard.release().await.unwrap();
    let renewals = counter(names::RENEWALS, &[k]);
    assert!(
        (3 + 4..=3 + 8).contains(&renewals),
        "about one renewal per 100 ms: {renewals}"
    );
}

async fn every_way_to_lose_a_lease_is_counted_with_its_reason(backend: Backend) {
    let fx = fixture(backend).await;
    let other = fx.other_client().await;
    let lost = |key: &str, reason: &str| {
        counter(
            names::LEASES_LOST,
            &[("key", key), ("reason", reason), ("primitive", "lock")],
        )
    };

    // Expired: held past its lease without renewal.
    let expired = unique_key("metrics-expired");
    let guard = fx
        .locks
        .try_acquire_with(&expired, short(200))
        .await
        .unwrap();
    assert_eq!(guard.lost().await, LossReason::Expired);
    assert_eq!(lost(&expired, "expired"), 1);
    drop(guard);

    // Taken over: the key expired and another client took it; the watchdog finds out.
    let taken = unique_key("metrics-taken");
    let options = short(300)
        .auto_renew(true)
        .renew_interval(Duration::from_millis(250));
    let guard = fx.locks.acquire_with(&taken, options).await.unwrap();
    let wire_delete = fx
        .locks
        .release_lock(ReleaseParams::new(taken.as_str()))
        .await;
    wire_delete.unwrap();
    let thief = other.try_acquire_with(&taken, short(5_000)).await.unwrap();
    assert_eq!(guard.lost().await, LossReason::TakenOver);
    assert_eq!(lost(&taken, "taken_over"), 1);
    assert_eq!(
        counter(names::RENEWAL_FAILURES, &[("key", taken.as_str())]),
        1
    );
    drop(guard);
    thief.release().await.unwrap();

    // Maximum hold: the watchdog stops, the lease runs out.
    let max_hold = unique_key("metrics-max-hold");
    let options = short(300)
        .auto_renew(true)
        .max_hold(Duration::from_millis(400));
    let guard = fx.locks.acquire_with(&max_hold, options).await.unwrap();
    assert_eq!(guard.lost().await, LossReason::MaxHold);
    assert_eq!(lost(&max_hold, "max_hold"), 1);
    drop(guard);

    // Released and dropped guards lose nothing.
    let fine = unique_key("metrics-fine");
    fx.locks
        .try_acquire(&fine)
        .await
        .unwrap()
        .release()
        .await
        .unwrap();
    drop(fx.locks.try_acquire(&fine).await.unwrap());
    assert_eq!(counter(names::LEASES_LOST, &[("key", fine.as_str())]), 0);
    assert_eq!(samples(names::HOLD, &[("key", fine.as_str())]).len(), 2);
}

async fn semaphores_read_write_locks_and_several_keys_have_their_own_primitive(backend: Backend) {
    let fx = fixture(backend).await;
    let key = unique_key("metrics-primitives");
    let k = ("key", key.as_str());
    let granted = |primitive: &str| {
        counter(
            names::ACQUISITIONS,
            &[k, ("primitive", primitive), ("outcome", "granted")],
        )
    };
    let semaphore = fx.locks.semaphore(&key, 2);
    let a = semaphore.try_acquire().await.unwrap();
    let b = semaphore.try_acquire().await.unwrap();
    assert!(semaphore.try_acquire().await.is_err());
    assert_eq!(granted("semaphore"), 2);
    assert_eq!(
        counter(names::CONTENDED, &[k, ("primitive", "semaphore")]),
        1
    );
    assert_eq!(gauge(names::HOLDS, &[k, ("primitive", "semaphore")]), 2.0);
    a.release().await.unwrap();
    b.release().await.unwrap();

    let rw = unique_key("metrics-rw");
    let r = ("key", rw.as_str());
    let rw_lock = fx.locks.rw_lock(&rw);
    let reader = rw_lock.try_read().await.unwrap();
    assert!(rw_lock.try_write().await.is_err());
    reader.release().await.unwrap();
    rw_lock.try_write().await.unwrap().release().await.unwrap();
    let rw_counts = |primitive: &str, outcome: &str| {
        counter(
            names::ACQUISITIONS,
            &[r, ("primitive", primitive), ("outcome", outcome)],
        )
    };
    assert_eq!(rw_counts("read", "granted"), 1);
    assert_eq!(rw_counts("write", "locked"), 1);
    assert_eq!(rw_counts("write", "granted"), 1);

    // Several keys: labelled with the first in wire order.
    let (x, y) = (format!("{key}:a"), format!("{key}:b"));
    let guard = fx.locks.try_acquire_all(&[&x, &y]).await.unwrap();
    guard.release().await.unwrap();
    assert_eq!(
        counter(
            names::ACQUISITIONS,
            &[
                ("key", x.as_str()),
                ("primitive", "multi"),
                ("outcome", "granted")
            ]
        ),
        1
    );
}

/// A server of this test's own, which it kills while a client holds a lock there: the lease
/// is lost as `unavailable`, and the failed calls are backend errors by kind.
#[tokio::test]
async fn a_holder_whose_redis_is_killed_loses_its_lease_as_unavailable() {
    totals();
    let mut server = RedisServer::start_with(Listen::Unix, &[]);
    let locks = RedisLock::builder()
        .metrics_key_label(true)
        .command_timeout(Duration::from_millis(200))
        .build_from_url(&server.url())
        .unwrap();
    let key = unique_key("metrics-killed");
    let k = ("key", key.as_str());
    let options = short(600).auto_renew(true);
    let guard = locks.acquire_with(&key, options).await.unwrap();
    server.kill();
    assert_eq!(guard.lost().await, LossReason::Unavailable);
    assert_eq!(
        counter(names::LEASES_LOST, &[k, ("reason", "unavailable")]),
        1
    );
    assert!(counter(names::RENEWAL_FAILURES, &[k]) >= 1);
    let errors = counter(names::BACKEND_ERRORS, &[k]);
    let by_kind: u64 = ["refused", "disconnected", "timeout"]
        .iter()
        .map(|kind| counter(names::BACKEND_ERRORS, &[k, ("kind", kind)]))
        .sum();
    assert!(
        errors >= 1 && by_kind == errors,
        "{errors} errors, {by_kind} by kind"
    );
    drop(guard);
}

/// The Prometheus example, run as a program against a server of this test's own: its
/// `/metrics` page lists the crate's series, and the counts grow between two scrapes.
#[test]
fn the_prometheus_example_serves_figures_that_move() {
    let server = RedisServer::start_with(Listen::Tcp, &[]);
    let port = server::free_port().unwrap();
    let example = example_path("prometheus");
    let mut cmd = Command::new(&example);
    cmd.arg(server.tcp_url())
        .arg(format!("127.0.0.1:{port}"))
        .arg("4")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    let child = server::spawn_tied_to_this_process(cmd)
        .unwrap_or_else(|err| panic!("could not run {}: {err}", example.display()));
    let _stop = Stop(child);
    let first = scrape_when_up(port);
    std::thread::sleep(Duration::from_millis(700));
    let second = scrape_when_up(port);
    let figure = |page: &str, series: &str| -> f64 {
        page.lines()
            .filter(|line| line.starts_with(series))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    let granted = r#"redislock_acquisitions_total{primitive="lock",outcome="granted"}"#;
    let (before, after) = (figure(&first, granted), figure(&second, granted));
    assert!(before > 0.0, "granted counted: {first}");
    assert!(after > before, "the count grows: {before} then {after}");
    for series in [
        "redislock_contended_attempts_total",
        "redislock_handoffs_total",
        "redislock_acquire_wait_seconds_bucket",
        "redislock_hold_seconds_count",
        "redislock_holds",
        "redislock_waiters",
    ] {
        assert!(second.contains(series), "{series} served: {second}");
    }
    assert!(
        figure(&second, "redislock_contended_attempts_total") > 0.0,
        "four workers on one lock contend"
    );
    assert!(
        second.contains("# TYPE redislock_acquisitions_total counter"),
        "typed for Prometheus: {second}"
    );
}

/// Kills the example when the test ends, passed or failed.
struct Stop(Child);

impl Drop for Stop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// An example of this package, built by `cargo test` next to the test binaries.
fn example_path(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/<test binary> -> target/<profile>/examples/<name>
    let path = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(|profile| profile.join("examples").join(name))
        .unwrap();
    assert!(
        path.exists(),
        "{} not built: `cargo build -p ac-redislock --features metrics --example prometheus` \
         (or run every test of the package: `cargo test -p ac-redislock --features metrics`)",
        path.display()
    );
    path
}

/// `GET /metrics` on 127.0.0.1:`port`, tried for up to 20 s while the example starts.
fn scrape_when_up(port: u16) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        match scrape(port) {
            Ok(page) if page.contains("redislock_acquisitions_total") => return page,
            Ok(_) | Err(_) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(100));
            }
            other => panic!("no metrics page on port {port}: {other:?}"),
        }
    }
}

fn scrape(port: u16) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")?;
    let mut page = String::new();
    stream.read_to_string(&mut page)?;
    Ok(page)
}
