//! Judging a run of the semaphore, the read-write lock or the multi-key lock: their checkers
//! over the holds of the history (check.rs), the keys left on the lock servers, and a verdict.

use std::time::{Duration, Instant};

use ac_redislock::RedisLock;
use tempfile::TempDir;

use crate::check::{self, Needs};
use crate::history::{self, Event};
use crate::scenario::{Figure, Judge, Nemesis, Outcome, Primitive, Scenario, read_resources};
use crate::server::RedisServer;
use crate::worker::lock_key;

/// Waits longer than this are a writer starved. Justification: a writer waits at most for the
/// holds granted before it (the waiters are served in order, and a waiting writer holds back
/// the readers that come after it): up to 11 others' sections of a few ms each, one killed
/// holder's lease (1 s: kills are spaced so that at most one is pending), the waiters' longest
/// backoff (100 ms) and the scheduling of 13 processes on 2 cores. 5 s is over twice that.
pub(crate) const WRITER_WAIT_BOUND_MS: f64 = 5_000.0;

/// What `judge_run` needs of a finished run.
pub(crate) struct Run<'a> {
    pub(crate) scenario: &'a Scenario,
    pub(crate) seed: u64,
    pub(crate) dir: TempDir,
    pub(crate) keep: bool,
    pub(crate) resource: &'a RedisServer,
    pub(crate) lock_urls: &'a [String],
    pub(crate) cluster: bool,
    pub(crate) faults: String,
    /// Workers that did not stop on their own and were killed.
    pub(crate) stuck: u64,
    pub(crate) end_of_run: u64,
    pub(crate) started: Instant,
}

/// Keys on the lock servers, and live waiter registrations among them.
#[derive(Debug, Clone, Copy, Default)]
struct Leftovers {
    keys: u64,
    registrations: u64,
}

/// Every key of the lock servers (every node of a cluster), and the registrations not yet
/// expired among them (a lock's `waiters` and a lease set's `alive` companions, sorted sets
/// scored by each registration's expiry, server ms).
async fn leftovers(urls: &[String]) -> Result<Leftovers, String> {
    let mut out = Leftovers::default();
    for url in urls {
        let mut conn = redis::Client::open(url.as_str())
            .map_err(|e| e.to_string())?
            .get_multiplexed_async_connection()
            .await
            .map_err(|e| e.to_string())?;
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg("*")
            .query_async(&mut conn)
            .await
            .map_err(|e| e.to_string())?;
        let (secs, micros): (u64, u64) = redis::cmd("TIME")
            .query_async(&mut conn)
            .await
            .map_err(|e| e.to_string())?;
        let now_ms = secs * 1000 + micros / 1000;
        for key in &keys {
            let kind: String = redis::cmd("TYPE")
                .arg(key)
                .query_async(&mut conn)
                .await
                .map_err(|e| e.to_string())?;
            // A lock's waiters, a lease set's live registrations: scored by their expiry.
            if kind == "zset"
                && (key.starts_with("ac-redislock:waiters:")
                    || key.starts_with("ac-redislock:alive:"))
            {
                let live: u64 = redis::cmd("ZCOUNT")
                    .arg(key)
                    .arg(format!("({now_ms}"))
                    .arg("+inf")
                    .query_async(&mut conn)
                    .await
                    .map_err(|e| e.to_string())?;
                out.registrations += live;
            }
        }
        out.keys += keys.len() as u64;
    }
    Ok(out)
}

/// The leftovers at the end of the run, and once they had time to expire (up to `within`):
/// a killed worker's hold lasts its lease, its registration as a waiter a few seconds.
async fn leftovers_until_gone(
    urls: &[String],
    within: Duration,
) -> Result<(Leftovers, Leftovers), String> {
    let at_end = leftovers(urls).await?;
    let deadline = Instant::now() + within;
    let mut now = at_end;
    while (now.keys > 0 || now.registrations > 0) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        now = leftovers(urls).await?;
    }
    Ok((at_end, now))
}

/// The permits held at the end, as the semaphore's status says (expired ones not counted).
async fn permits_held(url: &str, limit: u32) -> Result<u64, String> {
    let locks = RedisLock::builder()
        .build_from_url(url)
        .map_err(|e| e.to_string())?;
    let status = locks
        .semaphore(lock_key(0), limit)
        .status()
        .await
        .map_err(|e| e.to_string())?;
    Ok(status.held)
}

fn ms(p: Option<(f64, f64, f64)>) -> String {
    p.map_or("-".into(), |(a, b, c)| format!("{a:.1}/{b:.1}/{c:.1}"))
}

fn count(events: &[Event], op: &str, role: Option<&str>) -> u64 {
    events
        .iter()
        .filter(|e| e.op == op && role.is_none_or(|r| e.value == r))
        .count() as u64
}

/// Checks a finished run of a set primitive and judges it.
pub(crate) async fn judge_run(run: Run<'_>) -> Result<Outcome, String> {
    let s = run.scenario;
    let events = history::read_all(run.dir.path()).map_err(|e| e.to_string())?;
    let resources = read_resources(run.resource, s.keys, run.dir.path()).await?;
    let findings = check::check(&events, &resources, run.end_of_run);
    let ttl_ns = u64::try_from(s.ttl.as_nanos()).unwrap_or(u64::MAX);
    let holds = check::holds(&events, ttl_ns);
    let sections = count(&events, "cs_exit", None);
    let kills = matches!(s.nemesis, Nemesis::KillSpaced { .. });
    // After a kill, the hold must be free within its lease, the waiters' longest backoff
    // (100 ms) and a margin, as for the lock's kill-holder.
    let free_bound_ms = s.ttl.as_millis() as f64 + 100.0 + 300.0;
    let needs = match s.primitive {
        Primitive::Semaphore(limit) => Needs::Permit(u64::from(limit)),
        Primitive::RwLock { .. } => Needs::ReadWrite,
        _ => Needs::Keys,
    };
    let (latencies, holder_kills, never_freed) =
        check::frees_after_kills(&events, &holds, "kill", needs);
    let frees = check::percentiles(latencies);
    let slow_free = frees.is_some_and(|(_, _, max)| max > free_bound_ms);
    let faults = if kills {
        format!("{}(holding:{holder_kills})", run.faults)
    } else {
        run.faults.clone()
    };
    // A control leaves what it leaves (the leaked permits, say): no waiting for it.
    let expiry = match s.judge {
        Judge::Control(_) => Duration::ZERO,
        _ => Duration::from_secs(10),
    };
    let (at_end, left) = leftovers_until_gone(run.lock_urls, expiry).await?;
    let left_figures = format!(
        "keys_at_end={} registrations_at_end={} keys_left={} registrations_left={}",
        at_end.keys, at_end.registrations, left.keys, left.registrations
    );
    let nothing_left = left.keys == 0 && left.registrations == 0;
    let common = format!(
        "lost={} indeterminate={} acquire_errors={} losses_noticed={} stuck_workers={}",
        findings.lost_updates,
        findings.indeterminate,
        findings.acquire_errors,
        findings.losses_noticed,
        run.stuck
    );
    let mut problems: Vec<String> = Vec::new();
    if sections == 0 {
        problems.push("no sections".into());
    }
    if findings.lost_updates > 0 {
        problems.push(format!("lost={}", findings.lost_updates));
    }
    if run.stuck > 0 {
        problems.push(format!("stuck_workers={}", run.stuck));
    }
    if slow_free {
        problems.push(format!("freed after a kill over {free_bound_ms} ms"));
    }
    if let Nemesis::KillSpaced { count, .. } = s.nemesis
        && holder_kills < count as u64
    {
        problems.push(format!("only {holder_kills} of {count} kills hit a holder"));
    }
    if never_freed > 0 {
        problems.push(format!("never_freed={never_freed}"));
    }
    if !nothing_left {
        problems.push("keys left".into());
    }
    let (figures, control): (String, &[(&str, u64)]) = match s.primitive {
        Primitive::Semaphore(limit) => {
            let (over, most) = check::over_limit(&holds, u64::from(limit));
            let (_, timeouts) = check::waits(&events, "permit");
            let held = match (run.cluster, run.lock_urls.first()) {
                (false, Some(url)) => permits_held(url, limit)
                    .await
                    .map_or_else(|_| "error".into(), |n| n.to_string()),
                _ => "-".into(),
            };
            if over > 0 {
                problems.push(format!("over_limit={over}"));
            }
            if timeouts > 0 {
                problems.push(format!("acquire_timeouts={timeouts}"));
            }
            (
                format!(
                    "limit={limit} max_concurrent={most} over_limit={over} \
                     permit_return_ms={} permits_leaked={never_freed} held_at_end={held} \
                     acquire_timeouts={timeouts} {common} {left_figures}",
                    ms(frees)
                ),
                &[("permits_leaked", never_freed), ("over_limit", over)],
            )
        }
        Primitive::RwLock { .. } => {
            let (conflicts, _, most_readers) = check::rw_conflicts(&holds);
            let (writer_waits, writer_timeouts) = check::waits(&events, "write");
            let (_, reader_timeouts) = check::waits(&events, "read");
            let writer_waits = check::percentiles(writer_waits);
            if conflicts > 0 {
                problems.push(format!("writer_overlaps={conflicts}"));
            }
            if writer_waits.is_some_and(|(_, _, max)| max > WRITER_WAIT_BOUND_MS) {
                problems.push(format!("a writer waited over {WRITER_WAIT_BOUND_MS} ms"));
            }
            if writer_timeouts + reader_timeouts > 0 {
                problems.push(format!("timeouts={}", writer_timeouts + reader_timeouts));
            }
            (
                format!(
                    "reads={} writes={} writer_overlaps={conflicts} max_readers={most_readers} \
                     writer_wait_ms={} writer_timeouts={writer_timeouts} \
                     reader_timeouts={reader_timeouts} free_after_kill_ms={} \
                     never_freed={never_freed} {common} {left_figures}",
                    count(&events, "cs_enter", Some("read")),
                    count(&events, "cs_enter", Some("write")),
                    ms(writer_waits),
                    ms(frees)
                ),
                &[("writer_overlaps", conflicts)],
            )
        }
        Primitive::Multi | Primitive::Lock => {
            let overlaps = check::key_overlaps(&holds);
            let found = check::deadlocks(&events, &holds);
            if overlaps > 0 {
                problems.push(format!("overlaps={overlaps}"));
            }
            if found.ran_out > 0 {
                problems.push(format!("acquire_timeouts={}", found.ran_out));
            }
            (
                format!(
                    "keys={} overlaps={overlaps} deadlocks={} behind_deadlock={} \
                     acquire_timeouts={} free_after_kill_ms={} never_freed={never_freed} \
                     {common} {left_figures}",
                    s.keys,
                    found.on_cycle,
                    found.behind,
                    found.ran_out,
                    ms(frees)
                ),
                &[("deadlocks", found.on_cycle)],
            )
        }
    };
    let (verdict, green) = match s.judge {
        Judge::Control(figure) => {
            let name = match figure {
                Figure::PermitsLeaked => "permits_leaked",
                Figure::OverLimit => "over_limit",
                Figure::WriterOverlaps => "writer_overlaps",
                _ => "deadlocks",
            };
            let control = control
                .iter()
                .find(|(n, _)| *n == name)
                .map_or(0, |(_, value)| *value);
            if control > 0 {
                (format!("CAUGHT({name}={control})"), true)
            } else {
                (format!("FAIL(control not caught: {name}=0)"), false)
            }
        }
        _ if problems.is_empty() => ("PASS".into(), true),
        _ => (format!("FAIL({})", problems.join(", ")), false),
    };
    let kept = (run.keep || !green).then(|| run.dir.keep());
    Ok(Outcome {
        name: s.name,
        seed: run.seed,
        findings: check::Findings {
            sections,
            ..findings
        },
        faults,
        takeover: frees,
        detect: None,
        detected: None,
        verdict,
        green,
        seconds: run.started.elapsed().as_secs_f64(),
        kept,
        set_figures: Some(figures),
    })
}
