//! The printed report: fixed-width tables per runtime, the goals, and a summary of the goals.

use std::fmt::Write as _;
use std::time::Duration;

use crate::contended::{ContendedImpl, ContendedResult};
use crate::uncontended::{Impl, Throughput, ratio};
use crate::{
    CONCURRENT_TASKS, CONTENDED_WORKERS, Flavor, KEYS_PER_TASK, MEASURE, MEASURE_ROUND, ROUNDS,
    RSLOCK, WARMUP,
};

/// Ours/raw pairs/s at least this, uncontended.
const GOAL_UNCONTENDED_RATIO: f64 = 0.90;
/// Ours/raw spin acquisitions/s at least this, 8 workers.
const GOAL_CONTENDED_RATIO: f64 = 0.90;
/// Per-worker grants min/max at least this, 8 workers.
const GOAL_FAIRNESS: f64 = 0.90;
/// Wait p99 under this, 8 workers.
const GOAL_WAIT_P99: Duration = Duration::from_millis(2);
/// Takeover p50 under this, every worker count.
const GOAL_TAKEOVER_P50: Duration = Duration::from_micros(100);
/// The worker count the fairness and throughput goals are set at.
const GOAL_WORKERS: usize = 8;

/// All the figures of one runtime.
pub(crate) struct RuntimeReport {
    pub(crate) flavor: Flavor,
    /// Per implementation (in [`Impl::ALL`] order): 1 task, [`CONCURRENT_TASKS`] tasks.
    pub(crate) uncontended: Vec<(Impl, Throughput, Throughput)>,
    /// Per worker count (in [`CONTENDED_WORKERS`] order), per implementation (in
    /// [`ContendedImpl::ALL`] order).
    pub(crate) contended: Vec<(usize, Vec<(ContendedImpl, ContendedResult)>)>,
    /// Keys left in the whole database once the runtime's measurements are over.
    pub(crate) keys_left: Option<i64>,
}

impl RuntimeReport {
    fn uncontended(&self, which: Impl) -> (Throughput, Throughput) {
        self.uncontended
            .iter()
            .find(|(w, _, _)| *w == which)
            .map(|(_, one, many)| (one.clone(), many.clone()))
            .unwrap_or_default()
    }

    fn contended(&self, workers: usize, which: ContendedImpl) -> ContendedResult {
        self.contended
            .iter()
            .find(|(n, _)| *n == workers)
            .and_then(|(_, results)| results.iter().find(|(w, _)| *w == which))
            .map(|(_, result)| result.clone())
            .unwrap_or_default()
    }

    /// Every goal, with the figure it was judged on.
    pub(crate) fn goals(&self) -> Vec<Goal> {
        let mut goals = Vec::new();
        let (raw1, raw_many) = self.uncontended(Impl::Raw);
        for which in Impl::OURS {
            let (one, many) = self.uncontended(which);
            for (tasks, ours, raw) in [(1, &one, &raw1), (CONCURRENT_TASKS, &many, &raw_many)] {
                let r = ratio(&ours.rounds, &raw.rounds);
                goals.push(Goal {
                    label: format!(
                        "uncontended, {tasks} task{}, {}: pairs/s ours/raw >= {GOAL_UNCONTENDED_RATIO:.2}",
                        if tasks == 1 { "" } else { "s" },
                        which.short_name()
                    ),
                    value: format!("{r:.2}"),
                    met: r >= GOAL_UNCONTENDED_RATIO,
                });
            }
        }
        let ours = self.contended(GOAL_WORKERS, ContendedImpl::Ours);
        let raw = self.contended(GOAL_WORKERS, ContendedImpl::RawSpin);
        let r = if raw.acquisitions_per_sec > 0.0 {
            ours.acquisitions_per_sec / raw.acquisitions_per_sec
        } else {
            0.0
        };
        goals.push(Goal {
            label: format!(
                "{GOAL_WORKERS} workers: acquisitions/s ours/raw spin >= {GOAL_CONTENDED_RATIO:.2}"
            ),
            value: format!("{r:.2}"),
            met: r >= GOAL_CONTENDED_RATIO,
        });
        goals.push(Goal {
            label: format!(
                "{GOAL_WORKERS} workers: ours per-worker grants min/max >= {GOAL_FAIRNESS:.2}"
            ),
            value: format!("{:.2}", ours.fairness()),
            met: ours.fairness() >= GOAL_FAIRNESS,
        });
        goals.push(Goal {
            label: format!(
                "{GOAL_WORKERS} workers: ours wait p99 < {} ms",
                GOAL_WAIT_P99.as_millis()
            ),
            value: ms(ours.wait_p99),
            met: ours.wait_p99.is_some_and(|d| d < GOAL_WAIT_P99),
        });
        goals.push(Goal {
            label: format!(
                "{GOAL_WORKERS} workers: ours grants returned to the releaser while others waited = 0"
            ),
            value: ours.returned_while_waiting.to_string(),
            met: ours.grants > 0 && ours.returned_while_waiting == 0,
        });
        for workers in CONTENDED_WORKERS {
            let ours = self.contended(workers, ContendedImpl::Ours);
            goals.push(Goal {
                label: format!(
                    "{workers} workers: ours takeover p50 < {:.1} ms",
                    GOAL_TAKEOVER_P50.as_secs_f64() * 1000.0
                ),
                value: ms(ours.p50),
                met: ours.p50.is_some_and(|d| d < GOAL_TAKEOVER_P50),
            });
        }
        goals
    }
}

/// One goal of the issue and how this run did on it.
pub(crate) struct Goal {
    pub(crate) label: String,
    pub(crate) value: String,
    pub(crate) met: bool,
}

/// `12,345`
fn thousands(value: f64) -> String {
    let n = value.round() as u64;
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `0.412 ms`, or `-` without samples.
fn ms(value: Option<Duration>) -> String {
    value.map_or_else(
        || "-".to_owned(),
        |d| format!("{:.3} ms", d.as_secs_f64() * 1000.0),
    )
}

/// `met` or `MISSED`.
pub(crate) fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "MISSED" }
}

/// Width of the label column of the uncontended tables.
const LABEL: usize = 40;
/// Width of a value column of the uncontended tables.
const CELL: usize = 22;
/// Width of a ratio column.
const RATIO: usize = 11;
/// Width of the label column of the contended tables.
const CLABEL: usize = 50;
/// Width of a value column of the contended tables.
const CCELL: usize = 15;

/// The tables of one runtime.
pub(crate) fn render(report: &RuntimeReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n=== Tokio runtime: {} ===================================================",
        report.flavor.name()
    );
    render_uncontended(&mut out, report);
    for (section, (workers, results)) in report.contended.iter().enumerate() {
        render_contended(&mut out, section + 2, *workers, results);
    }
    let _ = writeln!(out, "\n   Goals ({}):", report.flavor.name());
    let goals = report.goals();
    let label = goals
        .iter()
        .map(|g| g.label.chars().count())
        .max()
        .unwrap_or(0);
    for goal in goals {
        let _ = writeln!(
            out,
            "   {:<label$} {:>9}  {}",
            goal.label,
            goal.value,
            verdict(goal.met)
        );
    }
    match report.keys_left {
        Some(0) => {
            let _ = writeln!(out, "   keys left in Redis after this runtime: 0");
        }
        Some(n) => {
            let _ = writeln!(out, "   ! keys left in Redis after this runtime: {n}");
        }
        None => {
            let _ = writeln!(out, "   ! keys left in Redis after this runtime: unknown");
        }
    }
    out
}

/// Section 1: the uncontended pairs/s, client CPU per pair and ratios.
fn render_uncontended(out: &mut String, report: &RuntimeReport) {
    let many = format!("{CONCURRENT_TASKS} tasks, 1 client");
    let _ = writeln!(
        out,
        "\n1. Uncontended: lock + release pairs, each task rotating over {KEYS_PER_TASK} keys of its own. Median\n   [min-max] of {ROUNDS} rounds of {:.1} s (each after {:.1} s warm-up), the {} implementations\n   interleaved in every round (a different order each round).",
        MEASURE_ROUND.as_secs_f64(),
        WARMUP.as_secs_f64(),
        Impl::ALL.len()
    );
    let rule = |out: &mut String| {
        let _ = writeln!(out, "   {:-<LABEL$}-+-{:-<CELL$}-+-{:-<CELL$}", "", "", "");
    };
    let header = |out: &mut String, title: &str| {
        let _ = writeln!(
            out,
            "   {title:<LABEL$} | {:>CELL$} | {many:>CELL$}",
            "1 task"
        );
    };
    header(out, "1a. pairs/s");
    rule(out);
    for (which, one, many) in &report.uncontended {
        let _ = writeln!(
            out,
            "   {:<LABEL$} | {:>CELL$} | {:>CELL$}",
            which.name(),
            one.cell(),
            many.cell()
        );
    }
    let _ = writeln!(out);
    header(out, "1b. client CPU µs per pair");
    rule(out);
    for (which, one, many) in &report.uncontended {
        let _ = writeln!(
            out,
            "   {:<LABEL$} | {:>CELL$} | {:>CELL$}",
            which.name(),
            one.cpu_cell(),
            many.cpu_cell()
        );
    }
    let _ = writeln!(out);
    let group = 2 * RATIO + 3;
    let header = format!(
        "   {:<LABEL$} | {:^group$} | {:^group$} | {:^group$}",
        "1c. ratios, median of per-round ratios",
        format!("pairs/s ours/raw, goal >= {GOAL_UNCONTENDED_RATIO:.2}"),
        "client CPU/pair ours/raw",
        "pairs/s ours/rslock"
    );
    let _ = writeln!(out, "{}", header.trim_end());
    let tasks = format!("{CONCURRENT_TASKS} tasks");
    let _ = writeln!(
        out,
        "   {:<LABEL$} | {:>RATIO$} | {:>RATIO$} | {:>RATIO$} | {:>RATIO$} | {:>RATIO$} | {:>RATIO$}",
        "", "1 task", tasks, "1 task", tasks, "1 task", tasks
    );
    let _ = writeln!(
        out,
        "   {:-<LABEL$}-+-{:-<RATIO$}-+-{:-<RATIO$}-+-{:-<RATIO$}-+-{:-<RATIO$}-+-{:-<RATIO$}-+-{:-<RATIO$}",
        "", "", "", "", "", "", ""
    );
    let (raw1, raw_many) = report.uncontended(Impl::Raw);
    let (rs1, rs_many) = report.uncontended(Impl::Rslock);
    for which in Impl::OURS {
        let (one, many) = report.uncontended(which);
        let goal = |r: f64| format!("{r:.2} {}", verdict(r >= GOAL_UNCONTENDED_RATIO));
        let _ = writeln!(
            out,
            "   {:<LABEL$} | {:>RATIO$} | {:>RATIO$} | {:>RATIO$.2} | {:>RATIO$.2} | {:>RATIO$.2} | {:>RATIO$.2}",
            which.name(),
            goal(ratio(&one.rounds, &raw1.rounds)),
            goal(ratio(&many.rounds, &raw_many.rounds)),
            ratio(&one.cpu, &raw1.cpu),
            ratio(&many.cpu, &raw_many.cpu),
            ratio(&one.rounds, &rs1.rounds),
            ratio(&many.rounds, &rs_many.rounds),
        );
    }
    let (mutex1, mutex_many) = report.uncontended(Impl::OursUrl);
    let _ = writeln!(
        out,
        "\n   {:<LABEL$} | {:>RATIO$} | {:>RATIO$}",
        "1d. pairs/s, ratio to the lock", "1 task", tasks
    );
    let _ = writeln!(
        out,
        "   {:-<LABEL$}-+-{:-<RATIO$}-+-{:-<RATIO$}",
        "", "", ""
    );
    for which in Impl::PRIMITIVES {
        let (one, many) = report.uncontended(which);
        let _ = writeln!(
            out,
            "   {:<LABEL$} | {:>RATIO$.2} | {:>RATIO$.2}",
            which.name(),
            ratio(&one.rounds, &mutex1.rounds),
            ratio(&many.rounds, &mutex_many.rounds),
        );
    }
    for (which, one, many) in &report.uncontended {
        for (label, t) in [("1 task", one), ("many tasks", many)] {
            if t.errors > 0 {
                let _ = writeln!(
                    out,
                    "   ! {} ({label}): {} failed pairs, first: {}",
                    which.name(),
                    t.errors,
                    t.first_error.as_deref().unwrap_or("?")
                );
            }
            if t.keys_left != 0 {
                let _ = writeln!(
                    out,
                    "   ! {} ({label}): {} lock keys left in Redis after the rounds",
                    which.name(),
                    t.keys_left
                );
            }
        }
    }
    let _ = writeln!(
        out,
        "   raw: SET key token NX PX 10000, then the library's release script (release_head.lua + prelude.lua + release.lua;
   keys: the lock key, its waiters, fence and holder companions; args: token, 200) through
   Script::invoke_async: the baseline of the ratios. raw, plain: the one-line compare-and-delete
   script instead. ours, guard API: try_acquire + LockGuard::release; seed API: lock_key +
   release_lock(value). from_url: RedisLock::from_url(url), the client as users build it (a
   ConnectionManager inside); new(multiplexed conn): RedisLock::new on a MultiplexedConnection.
   rslock: {RSLOCK}, LockManager::new(url), lock + unlock. Raw and new() get a MultiplexedConnection
   each, from_url and rslock open their own; in the {CONCURRENT_TASKS}-task column all tasks share that one
   client. Key expiry 10 s everywhere. Client CPU: getrusage(RUSAGE_SELF) user + system time of
   this process (redis-server not included) over the measured second, divided by its pairs;
   CPU/pair ours/raw above 1 means ours costs more. 1 task has one round trip in flight at a
   time, so it follows the machine's wake-up latency; on a VM that can jump between two modes
   (client and server on the same CPU or not) from one round to the next: read the ranges.
   Other primitives (1d): try_acquire + release of a semaphore permit (limit 3, each task on keys
   of its own, so never full), a read hold, a write hold, and acquire_all of 2 keys (key and
   key:b), each on a RedisLock::from_url client; ratio to the lock's guard API from_url row."
    );
}

/// Section 2 or 3: the contended figures for one worker count.
fn render_contended(
    out: &mut String,
    section: usize,
    workers: usize,
    results: &[(ContendedImpl, ContendedResult)],
) {
    let _ = writeln!(
        out,
        "\n{section}. Contended: {workers} workers, each with its own client and connection, one key, hold ~0 ms\n   ({:.1} s after {:.1} s warm-up; the implementations one after another)",
        MEASURE.as_secs_f64(),
        WARMUP.as_secs_f64()
    );
    let mut line = format!("   {:<CLABEL$}", "");
    for (which, _) in results {
        let _ = write!(line, " | {:>CCELL$}", which.name());
    }
    let _ = writeln!(out, "{line}");
    let mut rule = format!("   {:-<CLABEL$}", "");
    for _ in results {
        let _ = write!(rule, "-+-{:-<CCELL$}", "");
    }
    let _ = writeln!(out, "{rule}");
    let row = |out: &mut String,
               label: &str,
               cell: &dyn Fn(ContendedImpl, &ContendedResult) -> String| {
        let mut line = format!("   {label:<CLABEL$}");
        for (which, result) in results {
            let _ = write!(line, " | {:>CCELL$}", cell(*which, result));
        }
        let _ = writeln!(out, "{line}");
    };
    row(out, "acquisitions/s", &|_, r| {
        thousands(r.acquisitions_per_sec)
    });
    row(out, "takeover p50, all grants", &|_, r| ms(r.p50));
    row(out, "takeover p99, all grants", &|_, r| ms(r.p99));
    row(out, "takeover p50, grants to another worker", &|_, r| {
        ms(r.p50_other)
    });
    row(out, "takeover p99, grants to another worker", &|_, r| {
        ms(r.p99_other)
    });
    row(out, "wait p50", &|_, r| ms(r.wait_p50));
    row(out, "wait p99", &|_, r| ms(r.wait_p99));
    row(out, "wait max", &|_, r| ms(r.wait_max));
    row(out, "per-worker grants min / max", &|_, r| {
        format!("{} / {}", r.min_worker, r.max_worker)
    });
    row(out, "per-worker grants min/max ratio", &|_, r| {
        format!("{:.2}", r.fairness())
    });
    row(
        out,
        "grants to another worker than the last holder",
        &|_, r| format!("{:.1} %", r.handover_share * 100.0),
    );
    row(
        out,
        "grants back to the releaser while another waited",
        &|_, r| {
            format!(
                "{} ({:.1} %)",
                r.returned_while_waiting,
                r.returned_share() * 100.0
            )
        },
    );
    row(out, "release call p50 (part of the takeover)", &|_, r| {
        ms(r.release_p50)
    });
    row(out, "client CPU µs per grant", &|_, r| {
        r.cpu_us_per_grant
            .map_or_else(|| "-".to_owned(), |v| format!("{v:.1}"))
    });
    let server = |pick: fn(&crate::contended::ServerPerGrant) -> f64| {
        move |_: ContendedImpl, r: &ContendedResult| {
            r.server_per_grant
                .as_ref()
                .map_or_else(|| "-".to_owned(), |s| format!("{:.1}", pick(s)))
        }
    };
    row(
        out,
        "Redis per grant: scripts run (EVAL/EVALSHA)",
        &server(|s| s.scripts),
    );
    row(out, "Redis per grant: PUBLISH", &server(|s| s.publish));
    row(
        out,
        "Redis per grant: SET calls (incl. inside scripts)",
        &server(|s| s.set),
    );
    row(
        out,
        "Redis per grant: failed SET NX (SET calls - 1)",
        &|which, r| match r.server_per_grant {
            Some(s) if which.sets_are_attempts() => format!("{:.1}", s.set - 1.0),
            _ => "-".to_owned(),
        },
    );
    row(
        out,
        "Redis per grant: commands (incl. inside scripts)",
        &server(|s| s.all),
    );
    row(
        out,
        "waits given up (ours: 10 s wait; rslock: lock())",
        &|_, r| r.gave_up.to_string(),
    );
    row(out, "errors", &|_, r| r.errors.to_string());
    for (which, c) in results {
        if let Some(err) = &c.first_error {
            let _ = writeln!(out, "   ! {}: first error: {err}", which.name());
        }
        if c.stuck_workers > 0 {
            let _ = writeln!(
                out,
                "   ! {}: {} workers had not stopped {} s after the end; aborted",
                which.name(),
                c.stuck_workers,
                crate::STOP_GRACE.as_secs()
            );
        }
        match c.keys_left {
            Some(0) => {}
            Some(n) => {
                let _ = writeln!(
                    out,
                    "   ! {}: {n} keys of the lock left in Redis",
                    which.name()
                );
            }
            None => {
                let _ = writeln!(out, "   ! {}: keys left unknown", which.name());
            }
        }
    }
    if section == 2 {
        let _ = writeln!(
            out,
            "   takeover: from the holder calling release() to the next holder's acquire returning (one
   Instant clock, under one mutex; it includes the release round trip). wait: from a worker
   starting its acquire attempt to its grant (rslock: from its first lock() call of the attempt,
   the calls after it gave up included). Back to the releaser while another waited: a grant to the
   last holder while another worker's attempt, started before that release, was in progress.
   Per-grant counts: acquisitions/s, takeover, wait, grants and client CPU (getrusage, as in 1)
   over the measured window; Redis figures from INFO commandstats after CONFIG RESETSTAT, over
   the whole measurement (warm-up and end included) divided by its grants.
   ours: RedisLock::from_url per worker (wake-ups over pub/sub), acquire_with(wait 10 s), release().
   raw spin: a MultiplexedConnection per worker, SET key token NX PX 10000 again and again (no
   sleep) until it succeeds, then the library's release script as in 1 (own token per worker).
   rslock: LockManager::new per worker, lock() (default: 3 tries, random 0-200 ms sleeps; called
   again when it gives up), unlock()."
        );
    }
}

/// The goals of every runtime side by side, at the end of the output.
pub(crate) fn render_summary(reports: &[RuntimeReport]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n=== Goals of issue 15, every runtime ==================================================="
    );
    let goals: Vec<Vec<Goal>> = reports.iter().map(RuntimeReport::goals).collect();
    let Some(first) = goals.first() else {
        return out;
    };
    let label = first
        .iter()
        .map(|g| g.label.chars().count())
        .max()
        .unwrap_or(0);
    let cell = reports
        .iter()
        .map(|r| r.flavor.name().len())
        .chain(
            goals
                .iter()
                .flatten()
                .map(|g| g.value.len() + 1 + verdict(g.met).len()),
        )
        .max()
        .unwrap_or(0);
    let mut header = format!("   {:<label$}", "goal");
    let mut rule = format!("   {:-<label$}", "");
    for report in reports {
        let _ = write!(header, " | {:>cell$}", report.flavor.name());
        let _ = write!(rule, "-+-{:-<cell$}", "");
    }
    let _ = writeln!(out, "{header}\n{rule}");
    for (i, goal) in first.iter().enumerate() {
        let mut line = format!("   {:<label$}", goal.label);
        for per_runtime in &goals {
            let cell_text = per_runtime
                .get(i)
                .map(|g| format!("{} {}", g.value, verdict(g.met)))
                .unwrap_or_default();
            let _ = write!(line, " | {cell_text:>cell$}");
        }
        let _ = writeln!(out, "{line}");
    }
    out
}
